/* `vklora sweep CONFIG --grid knob=v1,v2 ...`: every combination of the grid trained into DIR/<knob=value,...>/,
 * resumable, then a table (sweep.md, sweep.json) and the eval-loss curves side by side (sweep.svg). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifndef _WIN32
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "cli/cli.h"
#include "platform.h"
#include "vk/vk.h"
#include "vklora/knobs.h"
#include "vklora/safetensors.h"
#include "vklora/trainer.h"

static const char *HELP =
    "usage: vklora sweep CONFIG.json --grid knob=v1,v2,... [--grid ...] [--set key=value ...] [--out DIR]\n"
    "                    [--devices LIST] [--json]\n\n"
    "Trains every combination of the grid's values (first --grid slowest) into DIR/<knob=value,...>/, then writes\n"
    "DIR/sweep.md (a table: knob values, final training loss, best eval loss and its step, overfitting, tokens/s,\n"
    "peak device memory, wall time), DIR/sweep.json (the same data) and DIR/sweep.svg (the eval-loss curves side by\n"
    "side, best run marked; training loss when the config has no eval split), and prints the table.\n"
    "Resumable: rerun the same command and finished runs are skipped, an interrupted run resumes from its last\n"
    "checkpoint (save_steps sets how often there is one). Ctrl-C checkpoints the current run and exits 130.\n"
    "Runs go one after another on one device; with several GPUs (or --devices), one run per device in parallel\n"
    "(each run's output then goes to DIR/<run>/train.log).\n\n"
    "  --grid knob=LIST  a knob (as in the config: learning_rate, lr, r, lora.lora_alpha, ...) and its values,\n"
    "                    comma-separated; a value may be JSON (--grid 'target_modules=[\"q\",\"v\"],[\"q\",\"k\",\"v\",\"o\"]')\n"
    "  --set key=value   override a config key for every run (repeatable)\n"
    "  --out DIR         where the runs and the summary go (default: the config's output_dir + \"-sweep\")\n"
    "  --devices LIST    comma-separated device indices or names to run on in parallel (see vklora devices);\n"
    "                    default: every GPU when there are several, else the config's device\n"
    "  --json            print sweep.json on stdout instead of the table (progress goes to stderr)\n\n"
    "To compare eval loss, the config needs an eval split (eval_ratio or eval_path) and eval_steps > 0.\n";

#define MAX_RUNS 4096
#define RUN_FILE "sweep-run.json"

typedef struct {
    char name[1024];
    char dir[4200];
    const char **sets;   /* base sets, grid sets, output_dir, resume (n_sets) */
    int n_sets;
    char *owned[20];     /* strings this run allocated for sets */
    int n_owned;
    const char **values; /* grid values, one per grid knob */
    cJSON *config;       /* resolved config JSON */
    bool done, failed, interrupted;
    double wall_s;       /* over every attempt recorded in RUN_FILE */
    char error[600];
} run;

typedef struct {
    const char *exe, *cfg;
    run *runs;
    size_t n_runs;
    const int *dev_of_run;
    const char *device;
    int dev;
    bool json;
    volatile sig_atomic_t *stop;
} worker;

static vkl_status mkdirs(const char *path, vkl_err *err) {
    char buf[4200];
    snprintf(buf, sizeof(buf), "%s", path);
    for (size_t i = 1; buf[i - 1]; i++) {
        if (!buf[i] || vkl_os_is_sep(buf[i])) {
            char ch = buf[i];
            buf[i] = 0;
            if (vkl_os_path_kind(buf) != VKL_PATH_DIR && !vkl_os_mkdir(buf) && vkl_os_path_kind(buf) != VKL_PATH_DIR)
                return vkl_err_set(err, VKL_ERR_RUNTIME, "sweep: cannot create %s: %s", buf, strerror(errno));
            buf[i] = ch;
            if (!ch) break;
        }
    }
    return VKL_OK;
}

/* RUN_FILE: the run's resolved config, whether it finished, and its wall time so far. */
static void write_run_file(run *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", r->name);
    cJSON_AddBoolToObject(o, "finished", r->done);
    cJSON_AddNumberToObject(o, "wall_s", r->wall_s);
    cJSON_AddItemToObject(o, "config", cJSON_Duplicate(r->config, true));
    char *txt = cJSON_Print(o);
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", r->dir, RUN_FILE);
    vkl_err e = {0};
    if (vkl_write_file_atomic(path, txt, strlen(txt), "sweep", &e))
        fprintf(stderr, "vklora sweep: %s\n", e.msg);
    free(txt);
    cJSON_Delete(o);
}

/* Returns 2 when the directory holds a run of another config (never mixed), else 0 with r->done / wall_s read. */
static int read_run_file(run *r) {
    char path[4300];
    snprintf(path, sizeof(path), "%s/%s", r->dir, RUN_FILE);
    char *txt = NULL;
    size_t len;
    vkl_err e = {0};
    if (vkl_os_path_kind(path) != VKL_PATH_FILE || vkl_read_file(path, &txt, &len, &e)) return 0;
    cJSON *o = cJSON_Parse(txt);
    free(txt);
    if (!o) return 0; /* unreadable: run it again (resuming from any checkpoint) */
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(o, "config");
    int rc = 0;
    if (cfg && !cJSON_Compare(cfg, r->config, true)) {
        fprintf(stderr,
                "vklora sweep: %s holds a run of a different config (the base config or --set changed): use another "
                "--out, or remove that directory to run it again\n",
                r->dir);
        rc = 2;
    } else {
        r->done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "finished"));
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "wall_s");
        if (cJSON_IsNumber(w)) r->wall_s = w->valuedouble;
    }
    cJSON_Delete(o);
    return rc;
}

/* One run in this process (the sequential path). Returns the train exit code. */
static int run_inprocess(run *r, const char *cfg, const char *device, bool json, volatile sig_atomic_t *stop) {
    const char **sets = vkl_calloc((size_t)r->n_sets + 1, sizeof(char *));
    memcpy(sets, r->sets, (size_t)r->n_sets * sizeof(char *));
    char devset[300];
    int n = r->n_sets;
    if (device) {
        snprintf(devset, sizeof(devset), "device=%s", device);
        sets[n++] = devset;
    }
    vkl_config c;
    vkl_err err = {0};
    int rc;
    if (vkl_config_load(cfg, sets, n, &c, &err)) {
        snprintf(r->error, sizeof(r->error), "%.590s", err.msg);
        free(sets);
        return 2;
    }
    free(sets);
    vkl_trainer_opts o = {.json_log = json, .stop = stop};
    vkl_trainer_result res;
    vkl_status st = vkl_trainer_run(&c, &o, &res, &err);
    if (st) {
        snprintf(r->error, sizeof(r->error), "%.590s", err.msg);
        rc = st;
    } else {
        rc = res.interrupted ? 130 : 0;
    }
    vkl_config_free(&c);
    return rc;
}

#ifndef _WIN32
/* A word for sh: single-quoted, with ' as '\''. */
static void shq(char *out, size_t cap, size_t *used, const char *s) {
    *used += (size_t)snprintf(out + *used, *used < cap ? cap - *used : 0, " '");
    for (; *s; s++) {
        if (*s == '\'') *used += (size_t)snprintf(out + *used, *used < cap ? cap - *used : 0, "'\\''");
        else if (*used + 1 < cap) out[(*used)++] = *s, out[*used] = 0;
    }
    *used += (size_t)snprintf(out + *used, *used < cap ? cap - *used : 0, "'");
}

/* One run as a child `vklora train` on the worker's device (the parallel path): output into the run directory. */
static int run_child(const worker *w, run *r) {
    size_t cap = 65536, used = 0;
    char *cmd = vkl_malloc(cap);
    cmd[0] = 0;
    used += (size_t)snprintf(cmd, cap, "exec");
    shq(cmd, cap, &used, w->exe);
    used += (size_t)snprintf(cmd + used, cap - used, " train");
    shq(cmd, cap, &used, w->cfg);
    for (int i = 0; i < r->n_sets; i++) {
        used += (size_t)snprintf(cmd + used, cap - used, " --set");
        shq(cmd, cap, &used, r->sets[i]);
    }
    char devset[300], log[4300];
    snprintf(devset, sizeof(devset), "device=%s", w->device);
    used += (size_t)snprintf(cmd + used, cap - used, " --set");
    shq(cmd, cap, &used, devset);
    used += (size_t)snprintf(cmd + used, cap - used, " --json >");
    snprintf(log, sizeof(log), "%s/train.json", r->dir);
    shq(cmd, cap, &used, log);
    used += (size_t)snprintf(cmd + used, cap - used, " 2>");
    snprintf(log, sizeof(log), "%s/train.log", r->dir);
    shq(cmd, cap, &used, log);
    int rc;
    if (used >= cap) {
        snprintf(r->error, sizeof(r->error), "command too long");
        rc = 2;
    } else {
        int status = system(cmd);
        rc = status == -1 ? 1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (rc && rc != 130) snprintf(r->error, sizeof(r->error), "vklora train exited %d: see %.500s", rc, log);
    }
    free(cmd);
    return rc;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    for (size_t i = 0; i < w->n_runs; i++) {
        if (w->dev_of_run[i] != w->dev) continue;
        if (*w->stop) break;
        run *r = &w->runs[i];
        fprintf(stderr, "sweep: %s on device %s\n", r->name, w->device);
        double t0 = vkl_now_s();
        int rc = run_child(w, r);
        r->wall_s += vkl_now_s() - t0;
        r->done = rc == 0;
        r->interrupted = rc == 130 || rc == 128 + 2;
        r->failed = !r->done && !r->interrupted;
        write_run_file(r);
        if (r->interrupted) *w->stop = 1;
    }
    return NULL;
}
#endif

/* ---- the summary ---- */

typedef struct {
    double final_loss, best_eval, best_step, tps, peak_bytes;
    bool overfit;
    int64_t overfit_step;
    size_t best_index; /* into the eval points */
    size_t n_eval;
    double *ex, *ey;   /* the eval (or loss) curve drawn in sweep.svg */
} run_stats;

static void stats_of(const run *r, bool use_eval, run_stats *s) {
    memset(s, 0, sizeof(*s));
    s->final_loss = s->best_eval = s->best_step = s->tps = NAN;
    vkl_metrics m;
    vkl_err e = {0};
    if (vkl_metrics_read(r->dir, &m, &e)) return;
    vkl_overfit_watch w;
    vkl_overfit_init(&w);
    double tps_sum = 0;
    size_t tps_n = 0;
    s->ex = vkl_malloc((m.n + 1) * sizeof(double));
    s->ey = vkl_malloc((m.n + 1) * sizeof(double));
    for (size_t i = 0; i < m.n; i++) {
        double loss = m.v[VKL_METRIC_LOSS][i], ev = m.v[VKL_METRIC_EVAL_LOSS][i];
        if (isfinite(loss)) s->final_loss = loss;
        vkl_overfit_train_loss(&w, loss);
        if (isfinite(ev)) {
            if (vkl_overfit_eval(&w, (int64_t)m.step[i], ev) && !s->overfit) {
                s->overfit = true;
                s->overfit_step = w.since_step;
            }
            if (!(ev >= s->best_eval)) s->best_eval = ev, s->best_step = m.step[i];
        }
        double y = use_eval ? ev : loss;
        if (!use_eval || isfinite(ev)) {
            if (isfinite(y) && (!isfinite(s->ey[s->best_index]) || s->n_eval == 0 || y < s->ey[s->best_index]))
                s->best_index = s->n_eval;
            s->ex[s->n_eval] = m.step[i];
            s->ey[s->n_eval++] = y;
        }
        if (isfinite(m.v[VKL_METRIC_TOKENS_PER_SECOND][i])) tps_sum += m.v[VKL_METRIC_TOKENS_PER_SECOND][i], tps_n++;
        double b = m.v[VKL_METRIC_DEVICE_BYTES][i];
        if (isfinite(b) && b > s->peak_bytes) s->peak_bytes = b;
    }
    if (tps_n) s->tps = tps_sum / (double)tps_n;
    vkl_metrics_free(&m);
}

static cJSON *num_or_null(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static void md_num(char *buf, size_t n, const char *fmt, double v) {
    if (isfinite(v)) snprintf(buf, n, fmt, v);
    else snprintf(buf, n, "-");
}

static int summarize(const char *dir, run *runs, size_t n_runs, char **grid_knobs, size_t n_grid, bool use_eval,
                     bool json) {
    run_stats *st = vkl_calloc(n_runs, sizeof(run_stats));
    int best = -1;
    for (size_t i = 0; i < n_runs; i++) {
        stats_of(&runs[i], use_eval, &st[i]);
        double key = use_eval ? st[i].best_eval : st[i].final_loss;
        double bkey = best < 0 ? INFINITY : use_eval ? st[best].best_eval : st[best].final_loss;
        if (isfinite(key) && key < bkey) best = (int)i;
    }
    /* sweep.json */
    cJSON *doc = cJSON_CreateObject(), *ja = cJSON_AddArrayToObject(doc, "knobs");
    for (size_t k = 0; k < n_grid; k++) cJSON_AddItemToArray(ja, cJSON_CreateString(grid_knobs[k]));
    cJSON_AddStringToObject(doc, "compared_by", use_eval ? "best eval_loss" : "final training loss (no eval split)");
    if (best >= 0) cJSON_AddStringToObject(doc, "best", runs[best].name);
    else cJSON_AddNullToObject(doc, "best");
    cJSON *jr = cJSON_AddArrayToObject(doc, "runs");
    for (size_t i = 0; i < n_runs; i++) {
        cJSON *o = cJSON_CreateObject(), *v = cJSON_AddObjectToObject(o, "values");
        cJSON_AddStringToObject(o, "name", runs[i].name);
        cJSON_AddStringToObject(o, "dir", runs[i].dir);
        for (size_t k = 0; k < n_grid; k++) {
            cJSON *pv = cJSON_Parse(runs[i].values[k]);
            cJSON_AddItemToObject(v, grid_knobs[k], pv ? pv : cJSON_CreateString(runs[i].values[k]));
        }
        cJSON_AddStringToObject(o, "status", runs[i].done ? "finished" : runs[i].interrupted ? "interrupted"
                                             : runs[i].failed ? "failed" : "not run");
        if (runs[i].error[0]) cJSON_AddStringToObject(o, "error", runs[i].error);
        cJSON_AddItemToObject(o, "final_loss", num_or_null(st[i].final_loss));
        cJSON_AddItemToObject(o, "best_eval_loss", num_or_null(st[i].best_eval));
        cJSON_AddItemToObject(o, "best_eval_step", num_or_null(st[i].best_step));
        cJSON_AddBoolToObject(o, "overfitting", st[i].overfit);
        if (st[i].overfit) cJSON_AddNumberToObject(o, "overfitting_from_step", (double)st[i].overfit_step);
        cJSON_AddItemToObject(o, "tokens_per_second", num_or_null(st[i].tps));
        cJSON_AddNumberToObject(o, "peak_device_bytes", st[i].peak_bytes);
        cJSON_AddNumberToObject(o, "wall_s", runs[i].wall_s);
        cJSON_AddItemToArray(jr, o);
    }
    char path[4300];
    vkl_err e = {0};
    char *txt = cJSON_Print(doc);
    snprintf(path, sizeof(path), "%s/sweep.json", dir);
    int rc = 0;
    if (vkl_write_file_atomic(path, txt, strlen(txt), "sweep", &e)) rc = vkl_cli_fail("sweep", e.status, "%s", e.msg);
    if (json && !rc) printf("%s\n", txt);
    free(txt);
    cJSON_Delete(doc);
    /* sweep.md */
    size_t cap = 4096 + n_runs * 2048, used = 0;
    char *md = vkl_malloc(cap);
    used += (size_t)snprintf(md + used, cap - used, "|");
    for (size_t k = 0; k < n_grid; k++) used += (size_t)snprintf(md + used, cap - used, " %s |", grid_knobs[k]);
    used += (size_t)snprintf(md + used, cap - used,
                             " final loss | best eval loss | at step | overfitting | tokens/s | peak MiB | wall s | "
                             "status |\n|");
    for (size_t k = 0; k < n_grid + 8; k++) used += (size_t)snprintf(md + used, cap - used, "---|");
    used += (size_t)snprintf(md + used, cap - used, "\n");
    for (size_t i = 0; i < n_runs; i++) {
        char a[32], b[32], c[32], d[32], f[32];
        md_num(a, sizeof(a), "%.4f", st[i].final_loss);
        md_num(b, sizeof(b), "%.4f", st[i].best_eval);
        md_num(c, sizeof(c), "%.0f", st[i].best_step);
        md_num(d, sizeof(d), "%.0f", st[i].tps);
        md_num(f, sizeof(f), "%.1f", st[i].peak_bytes / 1048576.0);
        used += (size_t)snprintf(md + used, cap - used, "|");
        for (size_t k = 0; k < n_grid; k++)
            used += (size_t)snprintf(md + used, cap - used, " %.200s |", runs[i].values[k]);
        char of[48];
        if (st[i].overfit) snprintf(of, sizeof(of), "yes (from step %lld)", (long long)st[i].overfit_step);
        else snprintf(of, sizeof(of), "no");
        if ((int)i == best && isfinite(st[i].best_eval)) {
            char bold[40];
            snprintf(bold, sizeof(bold), "**%.20s**", b);
            memcpy(b, bold, strlen(bold) + 1);
        }
        used += (size_t)snprintf(md + used, cap - used, " %s | %s | %s | %s | %s | %s | %.1f | %s |\n", a, b, c,
                                 of, d, f, runs[i].wall_s,
                                 runs[i].done ? ((int)i == best ? "finished, best" : "finished")
                                 : runs[i].interrupted ? "interrupted" : runs[i].failed ? "failed" : "not run");
    }
    if (!use_eval)
        used += (size_t)snprintf(md + used, cap - used,
                                 "\nNo eval split: runs are compared by their final training loss, which cannot show "
                                 "overfitting (set eval_ratio and eval_steps).\n");
    if (best >= 0)
        used += (size_t)snprintf(md + used, cap - used, "\nBest: %s (%s %.4f).\n", runs[best].name,
                                 use_eval ? "eval loss" : "final training loss",
                                 use_eval ? st[best].best_eval : st[best].final_loss);
    snprintf(path, sizeof(path), "%s/sweep.md", dir);
    if (!rc && vkl_write_file_atomic(path, md, used, "sweep", &e)) rc = vkl_cli_fail("sweep", e.status, "%s", e.msg);
    if (!json && !rc) fputs(md, stdout);
    free(md);
    /* sweep.svg */
    vkl_plot_series *s = vkl_calloc(n_runs, sizeof(vkl_plot_series));
    for (size_t i = 0; i < n_runs; i++) s[i] = (vkl_plot_series){runs[i].name, st[i].n_eval, st[i].ex, st[i].ey};
    vkl_plot p = {.title = use_eval ? "eval loss by run" : "training loss by run (no eval split)", .x_label = "step",
                  .y_label = use_eval ? "eval_loss" : "loss", .series = s, .n_series = n_runs, .mark_series = best,
                  .mark_index = best >= 0 ? st[best].best_index : 0};
    snprintf(path, sizeof(path), "%s/sweep.svg", dir);
    if (!rc && vkl_plot_write_svg(&p, path, &e)) rc = vkl_cli_fail("sweep", e.status, "%s", e.msg);
    if (!rc && !json) printf("\nwrote %s/sweep.md, %s/sweep.json, %s/sweep.svg\n", dir, dir, dir);
    for (size_t i = 0; i < n_runs; i++) free(st[i].ex), free(st[i].ey);
    free(st);
    free(s);
    return rc;
}

/* The devices to run on in parallel: --devices, else every GPU when there are several; NULL = one, as configured. */
static size_t pick_devices(const char *list, const vkl_config *c, char ***out) {
    *out = NULL;
    if (list) return vkl_sweep_split_values(list, out);
    if (c->device_index >= 0 || c->device_name || c->n_devices || c->devices_all || getenv("VKLORA_DEVICE"))
        return 0; /* the runs use the configured device(s) */
    vkl_device_info *infos = NULL;
    uint32_t n = 0;
    vkl_err e = {0};
    if (vkl_vk_list_devices(&infos, &n, &e)) return 0;
    size_t gpus = 0;
    for (uint32_t i = 0; i < n; i++) gpus += infos[i].vk_type != VK_PHYSICAL_DEVICE_TYPE_CPU;
    size_t k = 0;
    if (gpus >= 2) {
        *out = vkl_calloc(gpus, sizeof(char *));
        for (uint32_t i = 0; i < n; i++)
            if (infos[i].vk_type != VK_PHYSICAL_DEVICE_TYPE_CPU) {
                char buf[16];
                snprintf(buf, sizeof(buf), "%u", infos[i].index);
                (*out)[k++] = vkl_strdup(buf);
            }
    }
    free(infos);
    return k;
}

static volatile sig_atomic_t stop_flag;

int vkl_cmd_sweep(int argc, char **argv) {
    const char *cfg = NULL, *out_dir = NULL, *devices_opt = NULL;
    bool json = false;
    const char **sets = vkl_calloc((size_t)argc + 1, sizeof(char *));
    const char **grids = vkl_calloc((size_t)argc + 1, sizeof(char *));
    int n_sets = 0, n_grids = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (vkl_cli_is_help(a)) {
            fputs(HELP, stdout);
            free(sets);
            free(grids);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--set") || !strcmp(a, "--grid") || !strcmp(a, "--out") || !strcmp(a, "--devices")) {
            if (i + 1 >= argc) {
                rc = vkl_cli_usage("sweep", "%s needs a value", a);
                goto early;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--set")) sets[n_sets++] = v;
            else if (!strcmp(a, "--grid")) grids[n_grids++] = v;
            else if (!strcmp(a, "--out")) out_dir = v;
            else devices_opt = v;
        } else if (a[0] == '-' && a[1]) {
            rc = vkl_cli_usage("sweep", "unknown option '%s'", a);
            goto early;
        } else if (cfg) {
            rc = vkl_cli_usage("sweep", "one config file expected, got '%s' and '%s'", cfg, a);
            goto early;
        } else {
            cfg = a;
        }
    }
    if (!cfg) rc = vkl_cli_usage("sweep", "a config file is required");
    else if (!n_grids) rc = vkl_cli_usage("sweep", "at least one --grid knob=v1,v2,... is required");
    if (rc) {
    early:
        free(sets);
        free(grids);
        return rc;
    }

    /* the grid */
    char **gknob = vkl_calloc((size_t)n_grids, sizeof(char *)), **gcanon = vkl_calloc((size_t)n_grids, sizeof(char *));
    char ***gvals = vkl_calloc((size_t)n_grids, sizeof(char **));
    size_t *gn = vkl_calloc((size_t)n_grids, sizeof(size_t)), n_runs = 1;
    run *runs = NULL;
    char **devs = NULL;
    size_t n_devs = 0;
    int *dev_of_run = NULL;
    bool *done = NULL;
    vkl_config base;
    bool have_base = false;
    vkl_err err = {0};
    for (int g = 0; g < n_grids; g++) {
        const char *eq = strchr(grids[g], '=');
        if (!eq || eq == grids[g] || !eq[1]) {
            rc = vkl_cli_usage("sweep", "--grid %s: expected knob=v1,v2,...", grids[g]);
            goto done;
        }
        gknob[g] = vkl_malloc((size_t)(eq - grids[g]) + 1);
        memcpy(gknob[g], grids[g], (size_t)(eq - grids[g]));
        gknob[g][eq - grids[g]] = 0;
        cJSON *kj = vkl_config_knob_json(gknob[g]);
        if (!kj) {
            vkl_config_explain(stderr, gknob[g], false, &err);
            rc = vkl_cli_usage("sweep", "--grid %s: %s", grids[g], err.msg);
            goto done;
        }
        gcanon[g] = vkl_strdup(cJSON_GetObjectItemCaseSensitive(kj, "knob")->valuestring);
        cJSON_Delete(kj);
        if (!strcmp(gcanon[g], "training.output_dir") || !strcmp(gcanon[g], "training.resume_from_checkpoint")) {
            rc = vkl_cli_usage("sweep", "--grid %s: the sweep sets %s itself", grids[g], gcanon[g]);
            goto done;
        }
        for (int h = 0; h < g; h++)
            if (!strcmp(gcanon[h], gcanon[g])) {
                rc = vkl_cli_usage("sweep", "--grid %s and --grid %s are the same knob (%s)", gknob[h], gknob[g],
                                   gcanon[g]);
                goto done;
            }
        gn[g] = vkl_sweep_split_values(eq + 1, &gvals[g]);
        if (!gn[g]) {
            rc = vkl_cli_usage("sweep", "--grid %s: expected comma-separated values (no empty one)", grids[g]);
            goto done;
        }
        n_runs *= gn[g];
        if (n_runs > MAX_RUNS) {
            rc = vkl_cli_usage("sweep", "the grid has more than %d combinations", MAX_RUNS);
            goto done;
        }
    }
    if (vkl_config_load(cfg, sets, n_sets, &base, &err)) {
        rc = vkl_cli_fail("sweep", err.status, "%s", err.msg);
        goto done;
    }
    have_base = true;
    char default_out[4200];
    snprintf(default_out, sizeof(default_out), "%s-sweep", base.output_dir);
    if (!out_dir) out_dir = default_out;

    /* every run's sets and resolved config, checked before anything runs */
    runs = vkl_calloc(n_runs, sizeof(run));
    for (size_t i = 0; i < n_runs; i++) {
        run *r = &runs[i];
        r->values = vkl_calloc((size_t)n_grids, sizeof(char *));
        size_t rem = i;
        for (int g = n_grids - 1; g >= 0; g--) { /* the last grid varies fastest */
            r->values[g] = gvals[g][rem % gn[g]];
            rem /= gn[g];
        }
        vkl_sweep_run_name((const char *const *)gknob, r->values, (size_t)n_grids, r->name, sizeof(r->name));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(runs[j].name, r->name)) {
                rc = vkl_cli_usage("sweep", "two runs would share the directory name '%s'", r->name);
                goto done;
            }
        snprintf(r->dir, sizeof(r->dir), "%.3000s/%.1000s", out_dir, r->name);
        r->sets = vkl_calloc((size_t)(n_sets + n_grids + 2), sizeof(char *));
        for (int k = 0; k < n_sets; k++) r->sets[r->n_sets++] = sets[k];
        for (int g = 0; g < n_grids; g++) {
            size_t len = strlen(gcanon[g]) + strlen(r->values[g]) + 2;
            char *s = vkl_malloc(len);
            snprintf(s, len, "%s=%s", gcanon[g], r->values[g]);
            r->owned[r->n_owned++] = s;
            r->sets[r->n_sets++] = s;
        }
        size_t len = strlen(r->dir) + 32;
        char *s = vkl_malloc(len);
        snprintf(s, len, "training.output_dir=%s", r->dir);
        r->owned[r->n_owned++] = s;
        r->sets[r->n_sets++] = s;
        r->sets[r->n_sets++] = "training.resume_from_checkpoint=true";
        vkl_config c;
        if (vkl_config_load(cfg, r->sets, r->n_sets, &c, &err)) {
            rc = vkl_cli_fail("sweep", err.status, "run %s: %s", r->name, err.msg);
            goto done;
        }
        if (!rc && vkl_config_check_for_training(&c, &err)) rc = vkl_cli_fail("sweep", err.status, "%s", err.msg);
        r->config = vkl_config_to_json(&c);
        vkl_config_free(&c);
        if (rc) goto done;
    }
    if (mkdirs(out_dir, &err)) {
        rc = vkl_cli_fail("sweep", err.status, "%s", err.msg);
        goto done;
    }
    done = vkl_calloc(n_runs, sizeof(bool));
    size_t n_done = 0;
    for (size_t i = 0; i < n_runs; i++) {
        if ((rc = read_run_file(&runs[i]))) goto done;
        done[i] = runs[i].done;
        n_done += done[i];
    }
    n_devs = pick_devices(devices_opt, &base, &devs);
    if (devices_opt && !n_devs) {
        rc = vkl_cli_usage("sweep", "--devices %s: expected comma-separated device indices or names", devices_opt);
        goto done;
    }
#ifdef _WIN32
    if (n_devs > 1) {
        fprintf(stderr, "vklora sweep: parallel runs are not implemented on Windows; running on device %s only\n",
                devs[0]);
        n_devs = 1;
    }
#endif
    FILE *info = json ? stderr : stdout;
    fprintf(info, "sweep: %zu run%s in %s (%zu finished before, skipped)%s\n", n_runs, n_runs == 1 ? "" : "s", out_dir,
            n_done, n_devs > 1 ? ", one per device in parallel" : "");
    dev_of_run = vkl_calloc(n_runs, sizeof(int));
    vkl_sweep_schedule(n_runs, done, n_devs > 1 ? n_devs : 1, dev_of_run);
    vkl_os_on_interrupt(&stop_flag);
    bool any_failed = false, interrupted = false;
    for (size_t i = 0; i < n_runs; i++)
        if (dev_of_run[i] >= 0 && mkdirs(runs[i].dir, &err)) {
            rc = vkl_cli_fail("sweep", err.status, "%s", err.msg);
            vkl_os_on_interrupt(NULL);
            goto done;
        }
    if (n_devs <= 1) {
        for (size_t i = 0; i < n_runs && !stop_flag; i++) {
            if (dev_of_run[i] < 0) continue;
            run *r = &runs[i];
            fprintf(info, "\nsweep: run %zu/%zu: %s\n", i + 1, n_runs, r->name);
            fflush(info);
            double t0 = vkl_now_s();
            int trc = run_inprocess(r, cfg, n_devs ? devs[0] : NULL, json, &stop_flag);
            r->wall_s += vkl_now_s() - t0;
            r->done = trc == 0;
            r->interrupted = trc == 130;
            r->failed = !r->done && !r->interrupted;
            write_run_file(r);
            if (r->failed) fprintf(stderr, "vklora sweep: run %s failed: %s\n", r->name, r->error);
        }
    } else {
#ifndef _WIN32
        char exe[4096] = "";
        ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (k > 0) exe[k] = 0;
        else snprintf(exe, sizeof(exe), "%s", argv[-1]); /* main's argv[0]: the commands get argv + 1 */
        pthread_t *th = vkl_calloc(n_devs, sizeof(pthread_t));
        worker *w = vkl_calloc(n_devs, sizeof(worker));
        for (size_t d = 0; d < n_devs; d++) {
            w[d] = (worker){.exe = exe, .cfg = cfg, .runs = runs, .n_runs = n_runs, .dev_of_run = dev_of_run,
                            .device = devs[d], .dev = (int)d, .json = json, .stop = &stop_flag};
            if (pthread_create(&th[d], NULL, worker_main, &w[d])) worker_main(&w[d]), th[d] = 0;
        }
        for (size_t d = 0; d < n_devs; d++)
            if (th[d]) pthread_join(th[d], NULL);
        free(th);
        free(w);
        for (size_t i = 0; i < n_runs; i++)
            if (runs[i].failed) fprintf(stderr, "vklora sweep: run %s failed: %s\n", runs[i].name, runs[i].error);
#endif
    }
    vkl_os_on_interrupt(NULL);
    for (size_t i = 0; i < n_runs; i++) {
        any_failed |= runs[i].failed;
        interrupted |= runs[i].interrupted;
    }
    interrupted |= stop_flag != 0;
    bool use_eval = base.eval_steps > 0 && (base.eval_path || base.eval_ratio > 0);
    rc = summarize(out_dir, runs, n_runs, gknob, (size_t)n_grids, use_eval, json);
    if (interrupted) {
        fprintf(stderr, "vklora sweep: interrupted; rerun the same command to resume\n");
        rc = 130;
    } else if (!rc && any_failed) {
        rc = 1;
    }
done:
    if (have_base) vkl_config_free(&base);
    for (size_t i = 0; runs && i < n_runs; i++) {
        for (int k = 0; k < runs[i].n_owned; k++) free(runs[i].owned[k]);
        free(runs[i].sets);
        free(runs[i].values);
        cJSON_Delete(runs[i].config);
    }
    free(runs);
    for (int g = 0; g < n_grids; g++) {
        free(gknob[g]);
        free(gcanon[g]);
        for (size_t k = 0; k < gn[g]; k++) free(gvals[g][k]);
        free(gvals[g]);
    }
    for (size_t d = 0; d < n_devs; d++) free(devs[d]);
    free(devs);
    free(gknob);
    free(gcanon);
    free(gvals);
    free(gn);
    free(dev_of_run);
    free(done);
    free(sets);
    free(grids);
    return rc;
}
