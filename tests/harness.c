/* Shared helpers for the tests: data paths, temporary directory, deterministic random data, error metrics,
 * running the CLI, and the one Vulkan context (validation layer on) that device tests share. */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "vk/vk.h"

const char *t_data_path(const char *rel) {
    static char bufs[8][4096];
    static int next;
    char *b = bufs[next++ % 8];
    const char *dir = getenv("VKL_DATA_DIR");
    if (dir && *dir)
        snprintf(b, sizeof(bufs[0]), "%s/%s", dir, rel);
    else
        snprintf(b, sizeof(bufs[0]), "%s/../shared/data/%s", VKL_SOURCE_ROOT, rel);
    return b;
}

#ifdef _WIN32
const char *t_vklora_bin(void) { return VKL_BUILD_ROOT "/vklora.exe"; }
#else
const char *t_vklora_bin(void) { return VKL_BUILD_ROOT "/vklora"; }
#endif

static char tmpdir[256];

const char *t_tmpdir(void) {
    if (!tmpdir[0]) {
#ifdef _WIN32
        const char *base = getenv("TEMP");
        snprintf(tmpdir, sizeof(tmpdir), "%s/vklora-test-XXXXXX", base && *base ? base : ".");
        for (char *c = tmpdir; *c; c++)
            if (*c == '\\') *c = '/';
        if (_mktemp_s(tmpdir, strlen(tmpdir) + 1) != 0 || _mkdir(tmpdir) != 0) {
            perror("temporary directory");
            abort();
        }
#else
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/vklora-test-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            abort();
        }
#endif
    }
    return tmpdir;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

void t_rng_seed(uint64_t seed) { rng_state = seed ? seed * 0x9E3779B97F4A7C15ull : 0x9E3779B97F4A7C15ull; }

uint32_t t_rng_u32(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (uint32_t)(x >> 32);
}

float t_rng_uniform(float lo, float hi) { return lo + (hi - lo) * ((t_rng_u32() >> 8) * (1.0f / 16777216.0f)); }

double t_max_rel_err(const float *a, const float *b, size_t n) {
    double maxdiff = 0, maxref = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > maxdiff || d != d) maxdiff = d != d ? INFINITY : d;
        if (fabs(b[i]) > maxref) maxref = fabs(b[i]);
    }
    return maxdiff / maxref;
}

char *t_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    buf[got] = 0;
    fclose(f);
    if (len) *len = got;
    return buf;
}

int t_run(const char *cmd, char **out, char **err) {
    char o[512], e[512], full[8192];
    snprintf(o, sizeof(o), "%s/run.out", t_tmpdir());
    snprintf(e, sizeof(e), "%s/run.err", t_tmpdir());
#ifdef _WIN32
    /* cmd.exe: "..." instead of '...', NUL for /dev/null; the outer quotes are the pair cmd /c strips */
    char win[8192];
    size_t k = 0;
    for (const char *c = cmd; *c && k + 1 < sizeof(win); c++) win[k++] = *c == '\'' ? '"' : *c;
    win[k] = 0;
    snprintf(full, sizeof(full), "\"%s >\"%s\" 2>\"%s\" <NUL\"", win, o, e);
    fflush(NULL);
    int st = system(full);
    if (out) *out = t_read_file(o, NULL);
    if (err) *err = t_read_file(e, NULL);
    return st;
#else
    snprintf(full, sizeof(full), "%s >%s 2>%s </dev/null", cmd, o, e);
    int st = system(full);
    if (out) *out = t_read_file(o, NULL);
    if (err) *err = t_read_file(e, NULL);
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
#endif
}

static vkl_vk *shared_vk;
static bool vk_failed;

struct vkl_vk *t_vk(void) {
    if (shared_vk || vk_failed) return shared_vk;
    vkl_vk_options opt = {.device = getenv("VKL_TEST_DEVICE"), .validation = !getenv("VKL_TEST_NO_VALIDATION")};
    vkl_err err = {0};
    if (vkl_vk_create(&opt, &shared_vk, &err) != VKL_OK) {
        fprintf(stderr, "    cannot create the Vulkan test context: %s\n", err.msg);
        vk_failed = true;
        shared_vk = NULL;
    }
    return shared_vk;
}

struct vkl_vk *t_vk_if_created(void) { return shared_vk; }

void t_cleanup(void) {
    if (shared_vk) vkl_vk_destroy(shared_vk);
    shared_vk = NULL;
    if (tmpdir[0] && !getenv("VKL_TEST_KEEP_TMP")) {
        char cmd[512];
#ifdef _WIN32
        snprintf(cmd, sizeof(cmd), "rmdir /s /q \"%s\"", tmpdir);
#else
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
#endif
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    }
}
