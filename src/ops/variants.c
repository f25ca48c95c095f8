/* Per-process registry of the kernel variants each op dispatched ("matmul" -> "texel", "attention" -> "tile", ...):
 * the ops record at their dispatch sites, `vklora bench` and the tests read it back. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "ops/ops.h"

/* Fixed capacity: a handful of ops with a handful of variants each. Names are copied (a caller may pass a stack
 * buffer) and truncated to the field size; a registration past capacity is counted in `dropped` and reported by
 * the listing rather than lost silently. */
#define VAR_MAX_OPS 32
#define VAR_MAX_PER_OP 8
#define VAR_NAME 32

typedef struct var_op {
    char op[VAR_NAME];
    char variant[VAR_MAX_PER_OP][VAR_NAME];
    uint64_t count[VAR_MAX_PER_OP];
    uint32_t n;
} var_op;

static struct {
    pthread_mutex_t lock;
    var_op ops[VAR_MAX_OPS];
    uint32_t n;
    uint64_t dropped;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void copy_name(char *dst, const char *src) {
    size_t n = strlen(src);
    if (n >= VAR_NAME) n = VAR_NAME - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static bool name_eq(const char *stored, const char *name) { return strncmp(stored, name, VAR_NAME - 1) == 0; }

void vkl_op_variant_used(const char *op, const char *variant) {
    if (!op || !variant) return;
    pthread_mutex_lock(&reg.lock);
    var_op *o = NULL;
    for (uint32_t i = 0; i < reg.n && !o; i++)
        if (name_eq(reg.ops[i].op, op)) o = &reg.ops[i];
    if (!o && reg.n < VAR_MAX_OPS) {
        o = &reg.ops[reg.n++];
        memset(o, 0, sizeof(*o));
        copy_name(o->op, op);
    }
    uint32_t v = 0;
    if (o) {
        while (v < o->n && !name_eq(o->variant[v], variant)) v++;
        if (v == o->n && o->n < VAR_MAX_PER_OP) copy_name(o->variant[o->n++], variant);
    }
    if (o && v < o->n) o->count[v]++;
    else reg.dropped++;
    pthread_mutex_unlock(&reg.lock);
}

/* Appends to buf at *len, never past n - 1 bytes (snprintf's truncation), keeping it terminated. */
static void append(char *buf, size_t n, size_t *len, const char *s) {
    if (*len + 1 >= n) return;
    int w = snprintf(buf + *len, n - *len, "%s", s);
    if (w > 0) *len = VKL_MIN(*len + (size_t)w, n - 1);
}

const char *vkl_op_variants_of(const char *op, char *buf, size_t n) {
    size_t len = 0;
    if (!n) return buf;
    buf[0] = '\0';
    pthread_mutex_lock(&reg.lock);
    for (uint32_t i = 0; i < reg.n; i++)
        if (name_eq(reg.ops[i].op, op))
            for (uint32_t v = 0; v < reg.ops[i].n; v++) {
                if (v) append(buf, n, &len, ",");
                append(buf, n, &len, reg.ops[i].variant[v]);
            }
    pthread_mutex_unlock(&reg.lock);
    return buf;
}

uint32_t vkl_op_variants_ops(char names[][32], uint32_t max) {
    pthread_mutex_lock(&reg.lock);
    uint32_t n = VKL_MIN(reg.n, max);
    for (uint32_t i = 0; i < n; i++) memcpy(names[i], reg.ops[i].op, VAR_NAME);
    pthread_mutex_unlock(&reg.lock);
    return n;
}

const char *vkl_op_variants_list(char *buf, size_t n) {
    size_t len = 0;
    if (!n) return buf;
    buf[0] = '\0';
    pthread_mutex_lock(&reg.lock);
    for (uint32_t i = 0; i < reg.n; i++) {
        const var_op *o = &reg.ops[i];
        if (i) append(buf, n, &len, "; ");
        append(buf, n, &len, o->op);
        append(buf, n, &len, ": ");
        for (uint32_t v = 0; v < o->n; v++) {
            if (v) append(buf, n, &len, ",");
            append(buf, n, &len, o->variant[v]);
        }
    }
    if (reg.dropped) {
        char more[48];
        snprintf(more, sizeof(more), "%s(%llu not recorded)", reg.n ? "; " : "", (unsigned long long)reg.dropped);
        append(buf, n, &len, more);
    }
    pthread_mutex_unlock(&reg.lock);
    return buf;
}

void vkl_op_variants_reset(void) {
    pthread_mutex_lock(&reg.lock);
    reg.n = 0;
    reg.dropped = 0;
    pthread_mutex_unlock(&reg.lock);
}
