/* Shared helpers for the tests: data paths, temporary directory, deterministic random data, error metrics,
 * running the CLI, and the one Vulkan context (validation layer on) that device tests share. */
#include "harness.h"

#include "vklora/config.h"
#include "vklora/lora.h"
#include "vklora/trainer.h"
#undef system /* harness.h sends the tests' system() to t_system on Windows; here it is the C library's */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifndef _WIN32
#include <sys/wait.h>
#include <unistd.h>
#endif

#include <cjson/cJSON.h>

#include "platform.h"
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
#ifdef _WIN32
static char *unix_name(const char *win);
#endif

const char *t_tmpdir(void) {
    if (!tmpdir[0]) {
#ifdef _WIN32
        /* Under Wine with the current drive mapped to / (Z:), a rooted path without a drive ("/tmp/...") names the
         * same file on the Windows and the Linux side, so paths the tests write into specs for python3 work on both */
        const char *base = getenv("TEMP");
        char *wine_tmp = unix_name("\\tmp");
        if (wine_tmp && !strcmp(wine_tmp, "/tmp")) base = "/tmp";
        free(wine_tmp);
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

bool t_same_run_file(const char *run_a, const char *run_b, const char *file) {
    char a[1200], b[1200];
    snprintf(a, sizeof(a), "%s/%s/%s", t_tmpdir(), run_a, file);
    snprintf(b, sizeof(b), "%s/%s/%s", t_tmpdir(), run_b, file);
    return t_same_file(a, b);
}

void t_lora_random_b(vkl_lora *l, float amp) {
    for (uint32_t i = 0; i < l->n_slots; i++)
        for (uint64_t k = 0; k < (uint64_t)l->slots[i].out * l->r; k++)
            l->params[l->slots[i].b_off + k] = t_rng_uniform(-amp, amp);
}

int t_read_losses(const char *dir, double *loss, int cap) {
    char path[1200];
    snprintf(path, sizeof(path), "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (n < cap && fgets(line, sizeof(line), f)) {
        cJSON *j = cJSON_Parse(line);
        loss[n++] = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "loss"));
        cJSON_Delete(j);
    }
    fclose(f);
    return n;
}

bool t_same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = t_read_file(a, &na), *y = t_read_file(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

int t_train_run(const char *cfg, const char *out, const char *set1, const char *set2, const char *set3,
                vkl_trainer_result *res, vkl_err *err) {
    char o[700];
    snprintf(o, sizeof(o), "output_dir=%s/%s", t_tmpdir(), out);
    const char *sets[4] = {o, set1, set2, set3};
    int n = 1;
    while (n < 4 && sets[n]) n++;
    vkl_config c;
    if (vkl_config_load(cfg, sets, n, &c, err)) return err->status;
    vkl_trainer_result r;
    vkl_trainer_opts op = {.quiet = true};
    vkl_status st = vkl_trainer_run(&c, &op, res ? res : &r, err);
    vkl_config_free(&c);
    return st;
}

#ifdef _WIN32
/* Under Wine, commands that are not vklora's own programs (python3 for the independent references, cp, truncate,
 * ls | grep, mkdir -p) run on the Linux side through /bin/sh: Wine starts Unix programs (`start /unix`, which does
 * not wait or pass the exit status on, so the script leaves its status in a file that is polled), and
 * wine_get_unix_file_name turns the Windows paths in the command (C:/users/...) into the Unix paths sh needs. On
 * real Windows there is no such bridge: those commands go to cmd.exe and fail, naming the command. */
#include <windows.h>

static char *unix_name(const char *win) {
    typedef char *(__cdecl * fn_t)(const wchar_t *);
    static fn_t fn;
    static bool looked;
    if (!looked) {
        looked = true;
        fn = (fn_t)(void (*)(void))GetProcAddress(GetModuleHandleA("kernel32.dll"), "wine_get_unix_file_name");
    }
    if (!fn) return NULL;
    wchar_t w[4096];
    if (!MultiByteToWideChar(CP_UTF8, 0, win, -1, w, 4096)) return NULL;
    char *u = fn(w);
    if (!u) return NULL;
    char *r = strdup(u);
    HeapFree(GetProcessHeap(), 0, u);
    return r;
}

static bool under_wine(void) {
    static int wine = -1;
    if (wine < 0) {
        char *u = unix_name(".");
        wine = u != NULL;
        free(u);
    }
    return wine;
}

/* system(): cmd.exe runs the command. Under Wine the start of cmd.exe itself failed now and then (system() -1 with
 * errno set, the program never run: model/cli_errors once in a CI run that passed alone and on the rerun), so such a
 * failed start is tried again, twice at most; a program's own exit status, -1 included (errno stays 0), never is. */
static int cmd_system(const char *cmd) {
    int st = -1;
    for (int tries = 0; tries < 3; tries++) {
        fflush(NULL);
        errno = 0;
        st = system(cmd);
        if (st != -1 || errno == 0) break;
        fprintf(stderr, "harness: cmd.exe did not start (%s)%s\n", strerror(errno), tries < 2 ? ", again" : "");
        Sleep(500);
    }
    return st;
}

/* Whether the command starts with one of vklora's Windows programs (run by cmd.exe). */
static bool own_program(const char *cmd) {
    while (*cmd == ' ' || *cmd == '\'' || *cmd == '"') cmd++;
    size_t n = strcspn(cmd, " '\"");
    const char *base = cmd + n;
    while (base > cmd && base[-1] != '/' && base[-1] != '\\') base--;
    return !strncmp(base, "vklora", 6) || (n > 4 && !strncmp(cmd + n - 4, ".exe", 4));
}

/* Runs `cmd` with /bin/sh on the Linux side (Wine only), stdout and stderr into the (Windows) files o and e; -1 when
 * that cannot be done. */
static int run_unix(const char *cmd, const char *o, const char *e) {
    static unsigned seq;
    char script[600], rc_path[600], body[16384];
    snprintf(script, sizeof(script), "%s/unix-%u.sh", t_tmpdir(), seq);
    snprintf(rc_path, sizeof(rc_path), "%s/unix-%u.rc", t_tmpdir(), seq++);
    /* Windows paths (X:/... or X:\...) in the command become Unix paths; vklora's .exe programs in it (after a
     * VAR=value prefix, in a subshell) run through Wine's loader */
    const char *loader = getenv("WINELOADER");
    size_t k = 0;
    for (const char *c = cmd; *c && k + 1024 < sizeof(body);) {
        if (c == cmd || c[-1] == ' ' || c[-1] == '(') { /* a word starts (maybe quoted) */
            const char *w = c + (*c == '\'' || *c == '"');
            size_t wn = strcspn(w, " '\")");
            if (wn > 4 && !strncmp(w + wn - 4, ".exe", 4))
                k += (size_t)snprintf(body + k, sizeof(body) - k, "%s ", loader && *loader ? loader : "wine");
        }
        bool drive = ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z')) && c[1] == ':' &&
                     (c[2] == '/' || c[2] == '\\') && (c == cmd || c[-1] == ' ' || c[-1] == '\'' || c[-1] == '"' ||
                                                        c[-1] == '=');
        if (!drive) {
            body[k++] = *c++;
            continue;
        }
        size_t n = strcspn(c, " '\"");
        char win[1024];
        snprintf(win, sizeof(win), "%.*s", (int)n, c);
        char *u = unix_name(win);
        k += (size_t)snprintf(body + k, sizeof(body) - k, "%s", u ? u : win);
        free(u);
        c += n;
    }
    body[k] = 0;
    char *uo = unix_name(o), *ue = unix_name(e), *ur = unix_name(rc_path), *us = unix_name(script);
    int rc = -1;
    FILE *f = fopen(script, "wb");
    if (uo && ue && ur && us && f) {
        fprintf(f, "(%s) >'%s' 2>'%s' </dev/null\necho $? >'%s.tmp' && mv '%s.tmp' '%s'\n", body, uo, ue, ur, ur, ur);
        fclose(f);
        f = NULL;
        char start[1400];
        snprintf(start, sizeof(start), "start /unix /bin/sh %s", us); /* (start keeps quotes in the argument) */
        if (cmd_system(start) == 0)
            for (int waited = 0; waited < 1200 * 20; waited++) { /* up to 20 minutes */
                char *s = t_read_file(rc_path, NULL);
                if (s) {
                    rc = atoi(s);
                    free(s);
                    break;
                }
                Sleep(50);
            }
    }
    if (f) fclose(f);
    free(uo), free(ue), free(ur), free(us);
    return rc;
}

int t_rename(const char *from, const char *to) { return vkl_os_replace(from, to) ? 0 : -1; }

int t_system(const char *cmd) {
    if (own_program(cmd) || !under_wine()) return cmd_system(cmd);
    char o[512], e[512];
    snprintf(o, sizeof(o), "%s/system.out", t_tmpdir());
    snprintf(e, sizeof(e), "%s/system.err", t_tmpdir());
    int rc = run_unix(cmd, o, e);
    char *text = t_read_file(o, NULL);
    if (text) fputs(text, stdout), free(text);
    text = t_read_file(e, NULL);
    if (text) fputs(text, stderr), free(text);
    return rc;
}
#endif

/* Each command gets its own output files, removed once read: under Wine a finished program's files can stay open
 * for a moment, and a redirection into them then fails before the next command runs, which would leave that command
 * reading the previous one's output (cli/devices_json once showed devices --bogus's message that way). */
static unsigned run_seq;

static void read_outputs(const char *o, const char *e, char **out, char **err) {
    if (out) *out = t_read_file(o, NULL);
    if (err) *err = t_read_file(e, NULL);
    remove(o);
    remove(e);
}

int t_run(const char *cmd, char **out, char **err) {
    char o[512], e[512], full[8192];
    unsigned seq = run_seq++;
    snprintf(o, sizeof(o), "%s/run%u.out", t_tmpdir(), seq);
    snprintf(e, sizeof(e), "%s/run%u.err", t_tmpdir(), seq);
#ifdef _WIN32
    int st;
    if (own_program(cmd) || !under_wine()) {
        /* cmd.exe: "..." instead of '...' (a " inside becomes \" for the program's argument parser), NUL for
         * /dev/null; the outer quotes are the pair cmd /c strips */
        char win[8192];
        size_t k = 0;
        bool single = false;
        for (const char *c = cmd; *c && k + 2 < sizeof(win); c++) {
            if (*c == '\'') single = !single;
            else if (*c == '"' && single) win[k++] = '\\';
            win[k++] = *c == '\'' ? '"' : *c;
        }
        win[k] = 0;
        snprintf(full, sizeof(full), "\"%s >\"%s\" 2>\"%s\" <NUL\"", win, o, e);
        st = cmd_system(full);
    } else {
        st = run_unix(cmd, o, e);
    }
    read_outputs(o, e, out, err);
    return st;
#else
    snprintf(full, sizeof(full), "%s >%s 2>%s </dev/null", cmd, o, e);
    int st = system(full);
    read_outputs(o, e, out, err);
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
        char win[256];
        snprintf(win, sizeof(win), "%s", tmpdir);
        for (char *c = win; *c; c++)
            if (*c == '/') *c = '\\';
        snprintf(cmd, sizeof(cmd), "rmdir /s /q \"%s\"", win);
#else
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
#endif
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    }
}

double t_json_num(const cJSON *o, const char *path) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    const cJSON *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cur && cJSON_IsNumber(cur) ? cur->valuedouble : NAN;
}

int t_cli(const char *args, cJSON **json, char **err_out) {
    char cmd[8192], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s %s", t_vklora_bin(), args);
    int rc = t_run(cmd, &out, &err);
    if (json) *json = out ? cJSON_Parse(out) : NULL;
    if (rc && !err_out) fprintf(stderr, "    command: %s\n    exit %d\n    stderr: %.2000s\n", cmd, rc, err ? err : "");
    if (err_out) *err_out = err;
    else free(err);
    free(out);
    return rc;
}

double t_eval_nll(const char *model, const char *text, const char *adapter, const char *extra) {
    char args[4096];
    snprintf(args, sizeof(args), "eval --model %s --text %s --ctx 64 --json%s%s %s", model,
             text ? text : t_data_path("datasets/tinystories_sample.txt"), adapter ? " --adapter " : "",
             adapter ? adapter : "", extra ? extra : "");
    cJSON *j;
    if (t_cli(args, &j, NULL)) {
        cJSON_Delete(j);
        return NAN;
    }
    const cJSON *n = cJSON_GetObjectItem(j, "mean_nll");
    double v = cJSON_IsNumber(n) ? n->valuedouble : NAN;
    cJSON_Delete(j);
    return v;
}

bool t_coopmat_required(void) {
    const char *req = getenv("VKL_TEST_REQUIRE_COOPMAT");
    return req && *req && strcmp(req, "0");
}

int t_coopmat_refusal(int st, const char *msg, const char *forced) {
    T_ASSERT(st == VKL_ERR_INPUT && strstr(msg, forced), "status %d: %s", st, msg);
    T_ASSERT(!t_coopmat_required(), "VKL_TEST_REQUIRE_COOPMAT is set, but %s", msg);
    fprintf(stderr, "    note: %s cannot run here: %s\n", forced, msg);
    return 0;
}
