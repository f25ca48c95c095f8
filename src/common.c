/* Error context and allocation helpers shared by every module (see include/vklora/common.h). */
#include "vklora/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vkl_err_set(err, errno == ENOENT || errno == EACCES || errno == ENOTDIR ? VKL_ERR_INPUT
                                                                                       : VKL_ERR_RUNTIME,
                           "%s: %s: cannot open: %s", what, path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return vkl_err_set(err, VKL_ERR_RUNTIME, "%s: %s: cannot stat: %s", what, path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: %s: byte 0: not a regular file", what, path);
    }
    if (sb.st_size > 0) { /* mmap rejects a zero length; the parsers report an empty file */
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            return vkl_err_set(err, VKL_ERR_RUNTIME, "%s: %s: cannot map %lld bytes: %s", what, path,
                               (long long)sb.st_size, strerror(e));
        }
        out->data = m;
        out->size = (uint64_t)sb.st_size;
    }
    close(fd); /* the mapping keeps the file */
    return VKL_OK;
}

void vkl_unmap_file(vkl_mapped_file *f) {
    if (f->data) munmap((void *)f->data, (size_t)f->size);
    f->data = NULL;
    f->size = 0;
}

double vkl_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
