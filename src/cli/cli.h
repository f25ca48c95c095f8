/* The command-line front end: one file per subcommand, each `int vkl_cmd_<name>(int argc, char **argv)` returning
 * the process exit code (0 ok, 1 runtime failure, 2 usage/config/input error). Errors go to stderr; with
 * --json, stdout holds exactly one JSON document. */
#ifndef VKLORA_CLI_H
#define VKLORA_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "vklora/common.h"

int vkl_cmd_devices(int argc, char **argv);
int vkl_cmd_info(int argc, char **argv);
int vkl_cmd_config(int argc, char **argv);
int vkl_cmd_tokenize(int argc, char **argv);
int vkl_cmd_data(int argc, char **argv);

/* Print "vklora <cmd>: <message>" to stderr and return the exit code for `status`. */
int vkl_cli_fail(const char *cmd, vkl_status status, const char *fmt, ...) VKL_PRINTF(3, 4);
/* Usage error: message plus a pointer to --help; returns 2. */
int vkl_cli_usage(const char *cmd, const char *fmt, ...) VKL_PRINTF(2, 3);
/* Print a cJSON document (formatted) on stdout, followed by a newline, and delete it. */
void vkl_cli_print_json(cJSON *doc);
/* True if argv[i] is -h or --help. */
bool vkl_cli_is_help(const char *arg);

#endif

/* ---- shared by the commands that run a model ---- */
#include "vklora/model.h"
#include "vklora/tokenizer.h"
struct vkl_vk;

int vkl_cmd_eval(int argc, char **argv);
int vkl_cmd_generate(int argc, char **argv);
int vkl_cmd_bench(int argc, char **argv);
/* bench --train --devices LIST (src/cli/bench_dp.c): per-device and combined tokens/s, scaling efficiency. */
int vkl_bench_train_devices(const char *model_path, const char *devices, uint32_t batch, uint32_t ctx, uint32_t rank,
                            int ckpt, uint32_t iters, bool json); /* ckpt: a vkl_grad_ckpt */
int vkl_cmd_train(int argc, char **argv);
int vkl_cmd_quantize(int argc, char **argv);
int vkl_cmd_merge(int argc, char **argv);
int vkl_cmd_convert(int argc, char **argv);
int vkl_cmd_plot(int argc, char **argv);
int vkl_cmd_sweep(int argc, char **argv);
int vkl_cmd_explain(int argc, char **argv);
/* Print a quantize/merge report: one line per tensor, or JSON (src/cli/quantize.c). */
struct vkl_quant_report;
void vkl_cli_print_quant_report(const struct vkl_quant_report *r, bool json, const char *out_path);

/* Options of a subcommand, parsed from a table: `--name value` (or `--name` alone for flags). */
typedef enum { VKL_OPT_STR, VKL_OPT_U32, VKL_OPT_F32, VKL_OPT_FLAG } vkl_opt_kind;
typedef struct vkl_cli_opt {
    const char *name; /* "--model" */
    vkl_opt_kind kind;
    void *dst;        /* const char **, uint32_t *, float *, bool * */
    double min, max;  /* range of numbers */
} vkl_cli_opt;
/* Parse argv[1..] (argv[0] is the command). Returns -1 when the command should run, else the exit code to return
 * (0 after printing `help` for -h/--help, 2 after a usage message). */
int vkl_cli_parse(const char *cmd, int argc, char **argv, const vkl_cli_opt *opts, size_t n_opts, const char *help);
/* The same with up to max_pos positional arguments (anything not starting with '-') into pos[], counted in *n_pos;
 * one more is a usage error. */
int vkl_cli_parse_pos(const char *cmd, int argc, char **argv, const vkl_cli_opt *opts, size_t n_opts, const char *help,
                      const char **pos, int max_pos, int *n_pos);

/* Parse a non-negative integer option value (whole string, <= max); false with a usage message otherwise. */
bool vkl_cli_parse_u32(const char *cmd, const char *opt, const char *val, uint32_t min, uint32_t max, uint32_t *out);
bool vkl_cli_parse_f32(const char *cmd, const char *opt, const char *val, float min, float max, float *out);
/* Read a whole file (NUL-terminated copy; *len without the NUL). */
vkl_status vkl_read_file(const char *path, char **data, size_t *len, vkl_err *err);

/* A model ready to run: the device, the weights on it, the tokenizer. */
typedef struct vkl_session {
    struct vkl_vk *vk;
    vkl_model *model;
    vkl_tokenizer *tok;
} vkl_session;
vkl_status vkl_session_open(const char *model_path, const char *device, vkl_session *s, vkl_err *err);
void vkl_session_close(vkl_session *s);
