/* The platform layer (src/platform.h) on the OS the tests run on: UTF-8 paths through files, directories, mapping
 * and the atomic writers; errno of the failures callers report; a locked target on Windows leaves the old file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "platform.h"
#include "vklora/gguf.h"
#include "vklora/safetensors.h"

#ifdef _WIN32
#include <windows.h>
#endif

static bool has_temp_files(const char *dir) {
    vkl_os_dir *d = vkl_os_opendir(dir);
    bool found = false;
    for (const char *n; d && (n = vkl_os_readdir(d));)
        if (strstr(n, ".tmp-")) found = true;
    vkl_os_closedir(d);
    return found;
}

/* A folder and files with non-ASCII names (Latin, CJK, an emoji outside the BMP): created, written atomically,
 * listed back by name, mapped, renamed and removed. */
static int test_utf8_paths(void) {
    char dir[600], file[700], other[700];
    snprintf(dir, sizeof(dir), "%s/d\xc3\xafr-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x98\x80", t_tmpdir());
    T_ASSERT(vkl_os_mkdir(dir), "mkdir %s: %s", dir, strerror(errno));
    T_ASSERT(!vkl_os_mkdir(dir) && errno == EEXIST, "second mkdir: errno %d, want EEXIST", errno);
    T_ASSERT(vkl_os_path_kind(dir) == VKL_PATH_DIR, "path kind of the folder");
    snprintf(file, sizeof(file), "%s/\xc3\xa9t\xc3\xa9.bin", dir);
    uint8_t data[1000];
    for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)(t_rng_u32() | 1);
    vkl_err err = {0};
    T_ASSERT(vkl_write_file_atomic(file, data, sizeof(data), "test", &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_os_path_kind(file) == VKL_PATH_FILE, "path kind of the file");
    T_ASSERT(!has_temp_files(dir), "temporary file left behind");
    vkl_os_dir *d = vkl_os_opendir(dir);
    T_ASSERT(d, "opendir: %s", strerror(errno));
    const char *n = vkl_os_readdir(d);
    T_ASSERT(n && !strcmp(n, "\xc3\xa9t\xc3\xa9.bin") && !vkl_os_readdir(d), "listing: '%s'", n ? n : "(none)");
    vkl_os_closedir(d);
    vkl_mapped_file mf;
    T_ASSERT(vkl_map_file(file, "test", &mf, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(mf.size == sizeof(data) && !memcmp(mf.data, data, sizeof(data)), "mapped bytes");
    vkl_unmap_file(&mf);
    FILE *f = vkl_os_fopen(file, "rb");
    T_ASSERT(f && fgetc(f) == data[0], "fopen");
    fclose(f);
    snprintf(other, sizeof(other), "%s/\xe6\x96\x87\xe4\xbb\xb6.bin", dir);
    T_ASSERT(vkl_os_replace(file, other), "replace: %s", strerror(errno));
    T_ASSERT(vkl_os_path_kind(file) == VKL_PATH_NONE && errno == ENOENT, "old name gone (errno %d)", errno);
    T_ASSERT(vkl_os_remove(other), "remove: %s", strerror(errno));
    T_ASSERT(!vkl_os_remove(other) && errno == ENOENT, "second remove: errno %d, want ENOENT", errno);
    T_ASSERT(vkl_os_rmdir(dir), "rmdir: %s", strerror(errno));
    return 0;
}

/* Errors the callers turn into messages: a missing file is ENOENT (an input error), a folder is not a regular file,
 * a write into a missing folder fails naming the path. */
static int test_errors(void) {
    char path[600];
    snprintf(path, sizeof(path), "%s/no-such-file.gguf", t_tmpdir());
    vkl_err err = {0};
    vkl_mapped_file mf;
    T_ASSERT(vkl_map_file(path, "gguf", &mf, &err) == VKL_ERR_INPUT && strstr(err.msg, path) &&
                 strstr(err.msg, "cannot open"), "%s", err.msg);
    vkl_err_clear(&err);
    T_ASSERT(vkl_map_file(t_tmpdir(), "gguf", &mf, &err) == VKL_ERR_INPUT && strstr(err.msg, "not a regular file"),
             "a folder: %s", err.msg);
    vkl_err_clear(&err);
    snprintf(path, sizeof(path), "%s/missing/out.bin", t_tmpdir());
    T_ASSERT(vkl_write_file_atomic(path, "x", 1, "test", &err) == VKL_ERR_INPUT && strstr(err.msg, path) &&
                 strstr(err.msg, "folder does not exist"), "%s", err.msg);
    T_ASSERT(vkl_os_opendir(path) == NULL && errno == ENOENT, "opendir of a missing folder: errno %d", errno);
    return 0;
}

/* Paths longer than Windows' MAX_PATH (260): a folder chain of 7 x 60 characters, a GGUF written atomically there,
 * mapped, listed, replaced and removed (Windows needs the extended-length \\?\ form for this). A name too long for
 * the file system (one component of 300 characters) is an input error naming the path, with no file left. */
static int test_long_paths(void) {
    char dir[1200], file[1300], other[1300];
    snprintf(dir, sizeof(dir), "%s", t_tmpdir());
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(dir);
        snprintf(dir + n, sizeof(dir) - n, "/level-%d-", i);
        n = strlen(dir);
        memset(dir + n, 'a' + i, 51);
        dir[n + 51] = 0;
        T_ASSERT(vkl_os_mkdir(dir), "mkdir at %zu characters: %s", strlen(dir), strerror(errno));
    }
    T_ASSERT(strlen(dir) > 420, "the folder path has %zu characters", strlen(dir));
    snprintf(file, sizeof(file), "%s/adapter.gguf", dir);
    vkl_err err = {0};
    vkl_gguf_writer *gw = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_str(gw, "general.name", "long path");
    T_ASSERT(vkl_gguf_writer_write(gw, file, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf_writer_free(gw);
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open(file, &g, &err) == VKL_OK, "%s", err.msg);
    const char *name = vkl_gguf_get_str(g, "general.name");
    T_ASSERT(name && !strcmp(name, "long path"), "read back: %s", name ? name : "(none)");
    vkl_gguf_close(g);
    T_ASSERT(!has_temp_files(dir), "temporary file left behind");
    vkl_os_dir *d = vkl_os_opendir(dir);
    const char *n = d ? vkl_os_readdir(d) : NULL;
    T_ASSERT(n && !strcmp(n, "adapter.gguf"), "listing: '%s'", n ? n : "(none)");
    vkl_os_closedir(d);
    snprintf(other, sizeof(other), "%s/renamed.gguf", dir);
    T_ASSERT(vkl_os_replace(file, other), "replace: %s", strerror(errno));
    FILE *f = vkl_os_fopen(other, "rb");
    T_ASSERT(f && fgetc(f) == 'G', "fopen of the renamed file");
    fclose(f);
    T_ASSERT(vkl_os_remove(other), "remove: %s", strerror(errno));
    /* one component longer than any file system allows (255) */
    char bad[1700];
    size_t bn = (size_t)snprintf(bad, sizeof(bad), "%s/", dir);
    memset(bad + bn, 'z', 300);
    snprintf(bad + bn + 300, sizeof(bad) - bn - 300, ".gguf");
    vkl_err_clear(&err);
    T_ASSERT(vkl_write_file_atomic(bad, "x", 1, "adapter", &err) == VKL_ERR_INPUT && strstr(err.msg, bad) &&
                 strstr(err.msg, "unchanged"), "%s", err.msg);
    T_ASSERT(!has_temp_files(dir), "temporary file left behind");
    for (int i = 6; i >= 0; i--) {
        T_ASSERT(vkl_os_rmdir(dir), "rmdir %d: %s", i, strerror(errno));
        *strrchr(dir, '/') = 0;
    }
    return 0;
}

typedef struct {
    int sign;
} sort_ctx;

static int by_sign(const void *a, const void *b, void *ctx) {
    int p = *(const int *)a, q = *(const int *)b;
    return ((const sort_ctx *)ctx)->sign * ((p > q) - (p < q));
}

/* qsort_r's argument order (the context reaches the comparator), memmem, getline with and without a final
 * newline, the processor count and the clock. */
static int test_helpers(void) {
    int v[50];
    for (int i = 0; i < 50; i++) v[i] = (int)(t_rng_u32() % 1000);
    sort_ctx c = {-1};
    vkl_os_qsort_r(v, 50, sizeof(int), by_sign, &c);
    for (int i = 1; i < 50; i++) T_ASSERT(v[i - 1] >= v[i], "descending at %d", i);
    static const char hay[] = "abcabd\0abx";
    T_ASSERT(vkl_os_memmem(hay, sizeof(hay) - 1, "abd", 3) == hay + 3, "memmem");
    T_ASSERT(vkl_os_memmem(hay, sizeof(hay) - 1, "\0ab", 3) == hay + 6, "memmem over a NUL");
    T_ASSERT(!vkl_os_memmem(hay, sizeof(hay) - 1, "abz", 3), "memmem miss");
    char path[600];
    snprintf(path, sizeof(path), "%s/lines.txt", t_tmpdir());
    vkl_err err = {0};
    T_ASSERT(vkl_write_file_atomic(path, "one\ntwo two\nthree", 17, "test", &err) == VKL_OK, "%s", err.msg);
    FILE *f = vkl_os_fopen(path, "rb");
    T_ASSERT(f, "open");
    char *line = NULL;
    size_t cap = 0;
    T_ASSERT(vkl_os_getline(&line, &cap, f) == 4 && !strcmp(line, "one\n"), "line 1");
    T_ASSERT(vkl_os_getline(&line, &cap, f) == 8 && !strcmp(line, "two two\n"), "line 2");
    T_ASSERT(vkl_os_getline(&line, &cap, f) == 5 && !strcmp(line, "three"), "line 3 without newline");
    T_ASSERT(vkl_os_getline(&line, &cap, f) == -1, "end");
    free(line);
    fclose(f);
    T_ASSERT(vkl_os_cpu_count() >= 1, "cpu count");
    double t0 = vkl_os_now_s(), t1 = vkl_os_now_s();
    T_ASSERT(t1 >= t0, "monotonic clock");
    return 0;
}

/* Windows: another program holding the output file open without FILE_SHARE_DELETE (an editor, a scanner, llama.cpp
 * with the adapter mapped) makes the replace fail: a clear error naming the file, the old bytes intact, no
 * temporary left. POSIX has no such lock (rename replaces an open file), so there it is skipped. */
static int test_locked_target(void) {
#ifndef _WIN32
    printf("    skipped: POSIX has no mandatory file locks (rename replaces an open file)\n");
    return 0;
#else
    char dir[600], path[700];
    snprintf(dir, sizeof(dir), "%s/locked", t_tmpdir());
    T_ASSERT(vkl_os_mkdir(dir), "mkdir");
    snprintf(path, sizeof(path), "%s/adapter.gguf", dir);
    vkl_err err = {0};
    T_ASSERT(vkl_write_file_atomic(path, "old bytes", 9, "adapter", &err) == VKL_OK, "%s", err.msg);
    wchar_t w[700];
    MultiByteToWideChar(CP_UTF8, 0, path, -1, w, 700);
    HANDLE h = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    T_ASSERT(h != INVALID_HANDLE_VALUE, "open for the lock");
    vkl_gguf_writer *gw = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_str(gw, "general.name", "new");
    vkl_status st = vkl_gguf_writer_write(gw, path, &err);
    vkl_gguf_writer_free(gw);
    CloseHandle(h);
    T_ASSERT(st == VKL_ERR_RUNTIME && strstr(err.msg, path) && strstr(err.msg, "unchanged"), "locked: %s", err.msg);
    char *now = t_read_file(path, NULL);
    T_ASSERT(now && !strcmp(now, "old bytes"), "old file changed: %s", now ? now : "(unreadable)");
    free(now);
    T_ASSERT(!has_temp_files(dir), "temporary file left behind");
    return 0;
#endif
}

const vkl_test_case vkl_tests_platform[] = {
    {"platform/utf8_paths", test_utf8_paths},
    {"platform/errors", test_errors},
    {"platform/long_paths", test_long_paths},
    {"platform/helpers", test_helpers},
    {"platform/locked_target", test_locked_target},
    {NULL, NULL},
};
