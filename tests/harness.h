/* Minimal test harness: each tests/test_*.c exports a NULL-terminated table of cases; tests/test_main.c runs
 * them (optionally filtered by a substring) and prints "N passed, N failed". A case returns 0 on success. */
#ifndef VKLORA_TEST_HARNESS_H
#define VKLORA_TEST_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdbool.h>

#include "vklora/common.h"

typedef struct {
    const char *name;
    int (*fn)(void);
} vkl_test_case;

/* Print the failure with its location and fail the current case. */
#define T_FAIL(...)                                                        \
    do {                                                                   \
        fprintf(stderr, "    FAIL %s:%d: ", __FILE__, __LINE__);           \
        fprintf(stderr, __VA_ARGS__);                                      \
        fprintf(stderr, "\n");                                             \
        return 1;                                                          \
    } while (0)

#define T_ASSERT(cond, ...)                                                \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "    assertion failed: %s\n", #cond);          \
            T_FAIL(__VA_ARGS__);                                           \
        }                                                                  \
    } while (0)

/* Path of a file in ../shared/data (VKL_DATA_DIR overrides). Returns a static buffer (one of 8 rotating). */
const char *t_data_path(const char *rel);
/* Path of the built vklora binary (for CLI tests). */
const char *t_vklora_bin(void);
/* Directory for temporary files of this test run (created on first use, removed at exit). */
const char *t_tmpdir(void);
/* Deterministic random numbers for test data (xorshift; never produces all zeros). */
void t_rng_seed(uint64_t seed);
uint32_t t_rng_u32(void);
float t_rng_uniform(float lo, float hi);
/* Max relative error: max|a-b| / max(max|b|, tiny). */
double t_max_rel_err(const float *a, const float *b, size_t n);
/* Whole file, NUL-terminated (malloc'd; NULL if unreadable); *len (optional) without the NUL. */
char *t_read_file(const char *path, size_t *len);
struct vkl_lora;
/* Every adapter's B (zero after vkl_lora_init) drawn uniformly from [-amp, amp) with t_rng, so that every gradient
 * reaches A and the layer inputs. */
void t_lora_random_b(struct vkl_lora *l, float amp);
/* The "loss" of each line of DIR/metrics.jsonl, in order, at most cap; -1 when the file cannot be opened. */
int t_read_losses(const char *dir, double *loss, int cap);
/* Whether two files exist and have the same bytes. */
bool t_same_file(const char *path_a, const char *path_b);
/* Whether file `file` has the same bytes in the output folders t_tmpdir()/run_a and t_tmpdir()/run_b. */
bool t_same_run_file(const char *run_a, const char *run_b, const char *file);
struct vkl_trainer_result;
/* vkl_trainer_run (quiet) of the config file `cfg` with output_dir=t_tmpdir()/OUT and up to three --set overrides
 * (a NULL ends them); res may be NULL. */
int t_train_run(const char *cfg, const char *out, const char *set1, const char *set2, const char *set3,
                struct vkl_trainer_result *res, vkl_err *err);
/* Run a shell command, capturing stdout and stderr (malloc'd, may be NULL) and the exit code. */
int t_run(const char *cmd, char **out, char **err);
struct cJSON;
/* Run vklora with `args`: its exit code; stdout parsed as JSON into *json when json is given (NULL if it is not
 * JSON); stderr into *err_out when given (the caller frees it), else printed with the command on failure. */
int t_cli(const char *args, struct cJSON **json, char **err_out);
/* The number at a dot-separated path of object keys ("hparams.n_layer"); NAN when it is missing or not a number. */
double t_json_num(const struct cJSON *o, const char *path);
/* Mean NLL of `vklora eval --model MODEL --text TEXT --ctx 64 --json [--adapter ADAPTER] [EXTRA]` (text NULL: the
 * TinyStories sample); NAN on failure (reported). */
double t_eval_nll(const char *model, const char *text, const char *adapter, const char *extra);
/* Whether VKL_TEST_REQUIRE_COOPMAT is set (tools/chroot-trixie.sh sets it): a cooperative-matrix test may not skip. */
bool t_coopmat_required(void);
/* A forced cooperative-matrix variant (forced: "VKLORA_MATMUL=coopmat" or "VKLORA_ATTN=coopmat") refused with status
 * st and message msg: the refusal must be the input error naming the switch, and is accepted with a printed note
 * unless t_coopmat_required(). Returns nonzero when that fails the test. */
int t_coopmat_refusal(int st, const char *msg, const char *forced);

/* The Vulkan context shared by the device tests: created once with the validation layer on.
 * Returns NULL (and the test fails) when no device can be created. */
struct vkl_vk;
struct vkl_vk *t_vk(void);

#ifdef _WIN32
/* Windows (MinGW): the few POSIX calls the tests make, on the C runtime's own. Commands given to t_run / system()
 * run in cmd.exe there: t_run turns '...' quoting into "..." and </dev/null into <NUL; other shell syntax (pipes to
 * ls/grep, cp, truncate, VAR=value prefixes, python3) is not available and those checks fail or are skipped. */
#include <direct.h>
#include <io.h>
#include <stdlib.h>
#include <sys/stat.h>
#define setenv(name, value, overwrite) _putenv_s((name), (value))
#define unsetenv(name) _putenv_s((name), "")
#define mkdir(path, mode) _mkdir(path)
/* system() as t_run runs commands: vklora's programs in cmd.exe, others on the Linux side under Wine */
int t_system(const char *cmd);
#define system(cmd) t_system(cmd)
/* rename() that replaces an existing target, as POSIX's does (the C runtime's refuses) */
int t_rename(const char *from, const char *to);
#define rename(from, to) t_rename(from, to)
#include <string.h>
static inline void *memmem(const void *h, size_t hn, const void *n, size_t nn) {
    for (size_t i = 0; nn <= hn && i <= hn - nn; i++)
        if (!memcmp((const char *)h + i, n, nn)) return (void *)((const char *)h + i);
    return NULL;
}
#endif

#endif
