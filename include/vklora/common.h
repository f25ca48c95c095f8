/* Shared basics for every vklora module: status codes, the error context, small helpers.
 * Library code never exits: it returns a vkl_status and fills a vkl_err; only main() maps that to an exit code. */
#ifndef VKLORA_COMMON_H
#define VKLORA_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define VKL_VERSION_STRING "0.1.0"

/* Status codes double as process exit codes: 0 ok, 1 runtime failure, 2 usage/config/input error. */
typedef enum {
    VKL_OK = 0,
    VKL_ERR_RUNTIME = 1, /* device lost, out of memory, I/O failure, missing driver feature */
    VKL_ERR_INPUT = 2,   /* bad CLI usage, config, GGUF, dataset ... */
} vkl_status;

/* An error context: the first message set wins (the root cause), later ones are ignored
 * unless the caller clears it. */
typedef struct vkl_err {
    vkl_status status;
    char msg[2048];
} vkl_err;

/* Set the message (printf-style) and return the status, so callers can write
 * `return vkl_err_set(err, VKL_ERR_INPUT, "gguf: %s: ...", path);` */
/* printf-style checks; MinGW builds use its C99 printf (__USE_MINGW_ANSI_STDIO), which gnu_printf describes */
#ifdef __MINGW32__
#define VKL_PRINTF(fmt, args) __attribute__((format(gnu_printf, fmt, args)))
#else
#define VKL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#endif
vkl_status vkl_err_set(vkl_err *err, vkl_status status, const char *fmt, ...) VKL_PRINTF(3, 4);
vkl_status vkl_err_setv(vkl_err *err, vkl_status status, const char *fmt, va_list ap);
void vkl_err_clear(vkl_err *err);

/* Allocation helpers that never return NULL for a non-zero size: they abort with a message,
 * since running out of host memory for bookkeeping is not a recoverable state.
 * Untrusted sizes (from files) must be validated before they reach these. */
void *vkl_malloc(size_t n);
void *vkl_calloc(size_t n, size_t size);
void *vkl_realloc(void *p, size_t n);
char *vkl_strdup(const char *s);

/* A whole file mapped read-only (regular files only; an empty file maps to size 0 and data NULL).
 * `what` prefixes messages ("gguf", "safetensors"): a missing or unreadable file is VKL_ERR_INPUT. */
typedef struct vkl_mapped_file {
    const void *data;
    uint64_t size;
} vkl_mapped_file;
vkl_status vkl_map_file(const char *path, const char *what, vkl_mapped_file *out, vkl_err *err);
void vkl_unmap_file(vkl_mapped_file *f);

/* Seconds on a monotonic clock, for measuring durations. */
double vkl_now_s(void);

/* Environment variables, parsed strictly: a value that is set but malformed is an input error naming the
 * variable (exit 2), never silently ignored. Unset or empty means "not given" (*given = false, *out untouched).
 * Sizes are decimal integers with an optional K, M, G or T suffix (powers of 1024; "KB"/"KiB" spellings too). */
bool vkl_parse_size(const char *s, uint64_t *out);
vkl_status vkl_env_size(const char *name, uint64_t min, uint64_t *out, bool *given, vkl_err *err);
vkl_status vkl_env_uint(const char *name, uint64_t min, uint64_t max, uint64_t *out, bool *given, vkl_err *err);
vkl_status vkl_env_seconds(const char *name, double *out, bool *given, vkl_err *err); /* decimal, > 0 */
/* One of `choices` (NULL-terminated); *index = its position. */
vkl_status vkl_env_choice(const char *name, const char *const *choices, int *index, bool *given, vkl_err *err);
/* Check every environment variable vklora reads (VKLORA_*), so a typo in a value fails before any work. */
vkl_status vkl_env_check(vkl_err *err);
/* VKLORA_VALIDATION: 0 = off, 1 = on (core + synchronization validation), 2 = core checks only. */
vkl_status vkl_env_validation(int *level, vkl_err *err);

/* The error of a file writer that could not create its temporary file next to `path` (errno e): an input error when
 * the folder is the user's to fix (missing, not a folder, read-only or not writable, a name too long for the file
 * system), with that said in words; a runtime error otherwise. The message names `what` and `path`. */
vkl_status vkl_err_create_failed(vkl_err *err, const char *what, const char *path, int e);

/* Fault injection for tests: with VKLORA_FAULT_KILL_AT=N the N-th call of vkl_fault_point() kills the process with
 * SIGKILL, as `kill -9` would. The file writers call it between the steps of every write and publish, so a test can
 * leave each state a crash could leave on disk; =0 reports the number of points at exit. Unset: a counter
 * increment, nothing else. */
void vkl_fault_point(void);

/* Overflow-checked arithmetic for sizes computed from untrusted input. Return false on overflow. */
static inline bool vkl_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool vkl_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

#define VKL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define VKL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VKL_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
