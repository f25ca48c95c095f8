/* Error context and allocation helpers shared by every module (see include/vklora/common.h). */
#include "vklora/common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"

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

vkl_status vkl_map_file(const char *path, const char *what, vkl_mapped_file *out, vkl_err *err) {
    out->data = NULL;
    out->size = 0;
    const char *failed = "";
    if (vkl_os_map(path, &out->data, &out->size, &failed)) return VKL_OK;
    int e = errno;
    uint64_t size = out->size; /* the file's size when mapping it failed */
    out->size = 0;
    if (!strcmp(failed, "open"))
        return vkl_err_set(err, e == ENOENT || e == EACCES || e == ENOTDIR ? VKL_ERR_INPUT : VKL_ERR_RUNTIME,
                           "%s: %s: cannot open: %s", what, path, strerror(e));
    if (!strcmp(failed, "type"))
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: %s: byte 0: not a regular file", what, path);
    if (!strcmp(failed, "stat"))
        return vkl_err_set(err, VKL_ERR_RUNTIME, "%s: %s: cannot stat: %s", what, path, strerror(e));
    return vkl_err_set(err, VKL_ERR_RUNTIME, "%s: %s: cannot map %lld bytes: %s", what, path, (long long)size,
                       strerror(e));
}

void vkl_unmap_file(vkl_mapped_file *f) {
    vkl_os_unmap(f->data, f->size);
    f->data = NULL;
    f->size = 0;
}

double vkl_now_s(void) { return vkl_os_now_s(); }

/* ---- environment variables ---- */

bool vkl_parse_size(const char *s, uint64_t *out) {
    if (!s || !isdigit((unsigned char)*s)) return false;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++)
        if (!vkl_mul_u64(v, 10, &v) || !vkl_add_u64(v, (uint64_t)(*s - '0'), &v)) return false;
    unsigned shift = 0;
    switch (*s) {
    case 'k': case 'K': shift = 10; break;
    case 'm': case 'M': shift = 20; break;
    case 'g': case 'G': shift = 30; break;
    case 't': case 'T': shift = 40; break;
    default: break;
    }
    if (shift) {
        s++;
        if (*s == 'i' && (s[1] == 'B' || s[1] == 'b')) s += 2;
        else if (*s == 'B' || *s == 'b') s++;
    } else if (*s == 'B' || *s == 'b') {
        s++;
    }
    if (*s) return false;
    if (shift && v > (UINT64_MAX >> shift)) return false;
    *out = v << shift;
    return true;
}

static const char *env_value(const char *name, bool *given) {
    const char *v = getenv(name);
    if (given) *given = v && *v;
    return v && *v ? v : NULL;
}

vkl_status vkl_env_size(const char *name, uint64_t min, uint64_t *out, bool *given, vkl_err *err) {
    const char *v = env_value(name, given);
    if (!v) return VKL_OK;
    uint64_t x;
    if (!vkl_parse_size(v, &x) || x < min)
        return vkl_err_set(err, VKL_ERR_INPUT, "environment: %s=\"%.64s\": expected a size of at least %llu bytes: a "
                           "decimal integer with an optional K, M, G or T suffix (e.g. 512M, 6G)", name, v,
                           (unsigned long long)min);
    *out = x;
    return VKL_OK;
}

vkl_status vkl_env_uint(const char *name, uint64_t min, uint64_t max, uint64_t *out, bool *given, vkl_err *err) {
    const char *v = env_value(name, given);
    if (!v) return VKL_OK;
    uint64_t x = 0;
    const char *s = v;
    bool ok = isdigit((unsigned char)*s);
    for (; ok && isdigit((unsigned char)*s); s++)
        ok = vkl_mul_u64(x, 10, &x) && vkl_add_u64(x, (uint64_t)(*s - '0'), &x);
    if (!ok || *s || x < min || x > max)
        return vkl_err_set(err, VKL_ERR_INPUT, "environment: %s=\"%.64s\": expected a decimal integer in %llu..%llu",
                           name, v, (unsigned long long)min, (unsigned long long)max);
    *out = x;
    return VKL_OK;
}

vkl_status vkl_env_seconds(const char *name, double *out, bool *given, vkl_err *err) {
    const char *v = env_value(name, given);
    if (!v) return VKL_OK;
    /* digits with an optional fraction: no sign, exponent, hex, inf or nan */
    const char *s = v;
    size_t digits = 0;
    while (isdigit((unsigned char)*s)) s++, digits++;
    if (*s == '.')
        for (s++; isdigit((unsigned char)*s); s++) digits++;
    double x = digits && !*s ? strtod(v, NULL) : -1;
    if (!(x > 0) || !isfinite(x) || x > 1e9)
        return vkl_err_set(err, VKL_ERR_INPUT, "environment: %s=\"%.64s\": expected a positive number of seconds "
                           "(decimal, e.g. 600 or 2.5)", name, v);
    *out = x;
    return VKL_OK;
}

vkl_status vkl_env_choice(const char *name, const char *const *choices, int *index, bool *given, vkl_err *err) {
    const char *v = env_value(name, given);
    if (!v) return VKL_OK;
    for (int i = 0; choices[i]; i++)
        if (!strcmp(v, choices[i])) {
            *index = i;
            return VKL_OK;
        }
    char list[256] = "";
    for (int i = 0; choices[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", choices[i]);
    return vkl_err_set(err, VKL_ERR_INPUT, "environment: %s=\"%.64s\": expected one of %s", name, v, list);
}

vkl_status vkl_env_validation(int *level, vkl_err *err) {
    static const char *const names[] = {"0", "false", "no", "off", "1", "true", "yes", "on", "sync", "core", NULL};
    int i = 0;
    bool given;
    *level = 0;
    if (vkl_env_choice("VKLORA_VALIDATION", names, &i, &given, err)) return err->status;
    if (given) *level = i < 4 ? 0 : i < 9 ? 1 : 2;
    return VKL_OK;
}

vkl_status vkl_env_check(vkl_err *err) {
    uint64_t u;
    double d;
    int lvl;
    /* The kernel switches VKLORA_MATMUL and VKLORA_ATTN (and VKL_LOFTQ_SVD) are checked where they are read, in
     * src/ops and src/loftq.c, against the variants that exist there; VKLORA_DEVICE by the device choice. */
    if (vkl_env_validation(&lvl, err) || vkl_env_size("VKLORA_MEMORY_BUDGET", 1, &u, NULL, err) ||
        vkl_env_size("VKLORA_MAX_BIND_BYTES", 256, &u, NULL, err) ||
        vkl_env_seconds("VKLORA_FENCE_TIMEOUT_S", &d, NULL, err) ||
        vkl_env_uint("VKLORA_ATTN_ROWS", 1, 8, &u, NULL, err) ||
        vkl_env_uint("VKLORA_FAULT_KILL_AT", 0, UINT32_MAX, &u, NULL, err))
        return err->status;
    return VKL_OK;
}

vkl_status vkl_err_create_failed(vkl_err *err, const char *what, const char *path, int e) {
    const char *why = NULL;
    switch (e) {
    case ENOENT: why = "its folder does not exist"; break;
    case ENOTDIR: why = "a part of the folder path is not a folder"; break;
    case EACCES:
    case EPERM:
#ifdef EROFS
    case EROFS:
#endif
        why = "the folder is read-only or not writable by this user";
        break;
    case ENAMETOOLONG: why = "the path is too long for the file system"; break;
#ifdef _WIN32
    case EINVAL: why = "the name is not valid on this file system (or too long)"; break;
#endif
    default: break;
    }
    if (why)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: %s: cannot create a file there: %s (%s); the previous file, if "
                           "any, is unchanged", what, path, why, strerror(e));
    return vkl_err_set(err, VKL_ERR_RUNTIME, "%s: %s: cannot create a temporary file next to it: %s", what, path,
                       strerror(e));
}

static uint64_t fault_calls;

static void fault_report(void) { fprintf(stderr, "vklora: %llu fault points\n", (unsigned long long)fault_calls); }

void vkl_fault_point(void) {
    static uint64_t kill_at = UINT64_MAX;
    static bool read;
    if (!read) {
        read = true;
        vkl_err e = {0};
        uint64_t v;
        bool given;
        if (vkl_env_uint("VKLORA_FAULT_KILL_AT", 0, UINT32_MAX, &v, &given, &e) == VKL_OK && given) {
            kill_at = v;
            if (v == 0) atexit(fault_report); /* 0: count the points of a run and report them at exit */
        }
    }
    if (++fault_calls == kill_at) vkl_os_kill_self();
}
