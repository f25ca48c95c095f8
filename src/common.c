/* Error context and allocation helpers shared by every module (see include/vklora/common.h). */
#include "vklora/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

vkl_status vkl_err_setv(vkl_err *err, vkl_status status, const char *fmt, va_list ap) {
    if (err && err->status == VKL_OK) {
        err->status = status;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return status;
}

vkl_status vkl_err_set(vkl_err *err, vkl_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vkl_err_setv(err, status, fmt, ap);
    va_end(ap);
    return status;
}

void vkl_err_clear(vkl_err *err) {
    if (err) {
        err->status = VKL_OK;
        err->msg[0] = '\0';
    }
}

static void oom(size_t n) {
    fprintf(stderr, "vklora: out of host memory allocating %zu bytes\n", n);
    abort();
}

void *vkl_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *vkl_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *vkl_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *vkl_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = vkl_malloc(n);
    memcpy(p, s, n);
    return p;
}
