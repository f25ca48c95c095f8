/* The training loop: model, tokenizer and data; LoRA layout and init; device state; optimizer steps with
 * gradient accumulation and the learning-rate schedule; evaluation; atomic checkpoints (adapter, optimizer state,
 * data position) and exact resume; metrics.jsonl; the progress line; final adapter files. */
#include "vklora/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"
#include "dp.h"
#include "platform.h"
#include "train.h"
#include "vk/vk.h"
#include "vklora/adapter.h"
#include "vklora/data.h"
#include "vklora/knobs.h"
#include "vklora/loftq.h"
#include "vklora/lora.h"
#include "vklora/quantize.h"
#include "vklora/safetensors.h"
#include "vklora/tokenizer.h"

#define OPT_MAGIC "VKLOPT01"

typedef struct {
    const vkl_config *c;
    const vkl_trainer_opts *o;
    vkl_model *m;
    vkl_tokenizer *tok;
    vkl_dataset *train, *eval;
    vkl_lora *lora;
    vkl_vk *vk;          /* the first device (of this process) */
    vkl_dp *dp;          /* every device of the job (data parallelism; one device: the plain single-device path) */
    vkl_train_dev *dev;  /* the first device's state: the optimizer, moments and parameters checkpoints read */
    bool writer;         /* rank 0 (or no MPI): writes output_dir, metrics, checkpoints and adapters */
    uint32_t B, T;
    int64_t total_steps;
    /* data position: the next micro-batch is batch `batch_idx` of epoch `epoch` */
    uint32_t epoch, batch_idx;
    vkl_data_plan *plan; /* of `epoch` */
    uint32_t *perm;
    vkl_batch *mbs;      /* gradient_accumulation_steps micro-batches */
    FILE *log;           /* progress and log lines */
    bool tty;
} trainer;

static vkl_status mkdir_p(const char *path, vkl_err *err) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (!vkl_os_is_sep(*p)) continue;
        char sep = *p;
        *p = 0;
        if (!vkl_os_mkdir(buf) && errno != EEXIST)
            return vkl_err_set(err, VKL_ERR_RUNTIME, "train: cannot create directory %s: %s", buf, strerror(errno));
        *p = sep;
    }
    if (!vkl_os_mkdir(buf) && errno != EEXIST)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "train: cannot create directory %s: %s", buf, strerror(errno));
    return VKL_OK;
}

static vkl_status rm_rf(const char *path) {
    vkl_os_dir *d = vkl_os_opendir(path);
    if (!d) return vkl_os_remove(path) || errno == ENOENT ? VKL_OK : VKL_ERR_RUNTIME;
    const char *name;
    char sub[4096];
    while ((name = vkl_os_readdir(d))) {
        snprintf(sub, sizeof(sub), "%s/%s", path, name);
        rm_rf(sub);
    }
    vkl_os_closedir(d);
    return vkl_os_rmdir(path) ? VKL_OK : VKL_ERR_RUNTIME;
}

/* Make renames inside `dir` durable (a crash after a rename must not bring the old name back). */
static void fsync_dir(const char *dir) { vkl_os_sync_dir(dir); }

static bool path_exists(const char *path) { return vkl_os_path_kind(path) != VKL_PATH_NONE; }

/* ---- output files: temporary names, atomic publishing, recovery after a crash ----
 * Every file goes through a temporary name: `<file>.tmp-XXXXXX` (vkl_write_file_atomic, the GGUF writer),
 * `checkpoint-N.tmp/` (a checkpoint being written), `checkpoint-N.old/` (the one it replaces, during the swap),
 * `adapter.tmp/` (the final adapter files being staged) with the marker `adapter.publish` (the staged set is
 * complete and is being renamed into place). A run that starts (or resumes) in an output directory first finishes
 * or undoes whatever a killed run left, so the directory holds the old adapter files or the new ones, never a
 * mix, and no temporary of ours. */

#define ADAPTER_STAGING "adapter.tmp"
#define ADAPTER_MARKER "adapter.publish"
static const char *const adapter_files[] = {"adapter.gguf", "adapter_model.safetensors", "adapter_config.json"};
static const char *const output_files[] = {"adapter.gguf", "adapter_model.safetensors", "adapter_config.json",
                                           "config.json", "metrics.jsonl", ADAPTER_MARKER};

/* The marker lists the new set, one name per line: files of the set are renamed from the staging directory (those
 * already moved are skipped), adapter files not in the set are removed (a run with trained biases writes no
 * adapter.gguf, and an older one must not stay beside the new PEFT files). Idempotent, so a crash inside it is
 * finished by the next run. */
static vkl_status apply_publish(const char *dir, const char *set, vkl_err *err) {
    char from[4400], to[4400];
    for (size_t i = 0; i < VKL_ARRAY_LEN(adapter_files); i++) {
        const char *f = adapter_files[i];
        bool in_set = false;
        for (const char *p = set; (p = strstr(p, f)); p += strlen(f))
            if ((p == set || p[-1] == '\n') && (p[strlen(f)] == '\n' || !p[strlen(f)])) in_set = true;
        snprintf(from, sizeof(from), "%s/" ADAPTER_STAGING "/%s", dir, f);
        snprintf(to, sizeof(to), "%s/%s", dir, f);
        if (in_set && path_exists(from) && !vkl_os_replace(from, to))
            return vkl_err_set(err, VKL_ERR_RUNTIME, "train: cannot rename %s to %s: %s", from, to, strerror(errno));
        if (!in_set && !vkl_os_remove(to) && errno != ENOENT)
            return vkl_err_set(err, VKL_ERR_RUNTIME, "train: cannot remove the outdated %s: %s", to, strerror(errno));
        vkl_fault_point();
    }
    fsync_dir(dir);
    snprintf(to, sizeof(to), "%s/" ADAPTER_MARKER, dir);
    vkl_os_remove(to);
    snprintf(from, sizeof(from), "%s/" ADAPTER_STAGING, dir);
    rm_rf(from);
    fsync_dir(dir);
    return VKL_OK;
}

/* Finish or undo what a killed run left in `dir` (see above). Reports what it did on `log`. */
static vkl_status recover_output_dir(const char *dir, FILE *log, vkl_err *err) {
    char path[4400], other[4400];
    snprintf(path, sizeof(path), "%s/" ADAPTER_MARKER, dir);
    FILE *f = vkl_os_fopen(path, "rb");
    if (f) {
        char set[512];
        size_t n = fread(set, 1, sizeof(set) - 1, f);
        fclose(f);
        set[n] = 0;
        if (log) fprintf(log, "output: finishing the adapter files an interrupted run was publishing\n");
        if (apply_publish(dir, set, err)) return err->status;
    }
    vkl_os_dir *d = vkl_os_opendir(dir);
    if (!d) return VKL_OK;
    const char *nm;
    unsigned removed = 0;
    while ((nm = vkl_os_readdir(d))) {
        size_t len = strlen(nm);
        snprintf(path, sizeof(path), "%s/%s", dir, nm);
        bool ours = !strcmp(nm, ADAPTER_STAGING);
        if (!strncmp(nm, "checkpoint-", 11) && len > 15 && !strcmp(nm + len - 4, ".tmp")) ours = true;
        if (!strncmp(nm, "checkpoint-", 11) && len > 15 && !strcmp(nm + len - 4, ".old")) {
            /* killed between moving the old checkpoint aside and renaming the new one in: keep the old one */
            snprintf(other, sizeof(other), "%s/%.*s", dir, (int)(len - 4), nm);
            if (!path_exists(other) && vkl_os_replace(path, other)) continue;
            ours = true;
        }
        for (size_t i = 0; i < VKL_ARRAY_LEN(output_files) && !ours; i++) {
            size_t fl = strlen(output_files[i]);
            if (strncmp(nm, output_files[i], fl)) continue;
            if (!strcmp(nm + fl, ".tmp") || (!strncmp(nm + fl, ".tmp-", 5) && len == fl + 11)) ours = true;
        }
        if (!ours) continue;
        rm_rf(path);
        removed++;
    }
    vkl_os_closedir(d);
    if (removed) {
        fsync_dir(dir);
        if (log) fprintf(log, "output: removed %u temporary file(s) left by an interrupted run in %s\n", removed, dir);
    }
    return VKL_OK;
}

/* ---- data position ---- */

static vkl_status plan_epoch(trainer *t, uint32_t epoch, vkl_err *err) {
    vkl_data_plan_free(t->plan);
    t->plan = NULL;
    vkl_data_epoch_order(t->train, (uint64_t)t->c->seed, epoch, t->perm);
    if (vkl_data_plan_epoch(t->train, t->perm, t->B, t->T, t->c->packing, &t->plan, err)) return err->status;
    t->epoch = epoch;
    return VKL_OK;
}

/* Steps per epoch: a trailing partial accumulation still steps. */
static int64_t steps_in_epoch(const trainer *t, uint32_t epoch) {
    uint64_t nb = vkl_data_epoch_batches(t->train, (uint64_t)t->c->seed, epoch, t->B, t->T, t->c->packing);
    uint64_t acc = (uint64_t)t->c->gradient_accumulation_steps;
    return (int64_t)((nb + acc - 1) / acc);
}

/* Gather the micro-batches of the next optimizer step (they never span an epoch boundary). */
static vkl_status next_step_batches(trainer *t, uint32_t *n_mb, uint64_t *n_targets, vkl_err *err) {
    if (t->batch_idx >= t->plan->n_batches) {
        if (plan_epoch(t, t->epoch + 1, err)) return err->status;
        t->batch_idx = 0;
    }
    uint32_t n = 0;
    *n_targets = 0;
    while (n < (uint32_t)t->c->gradient_accumulation_steps && t->batch_idx < t->plan->n_batches) {
        if (vkl_data_fill_batch(t->train, t->plan, t->batch_idx, &t->mbs[n], err)) return err->status;
        *n_targets += t->mbs[n].n_targets;
        n++;
        t->batch_idx++;
    }
    *n_mb = n;
    return VKL_OK;
}

static double epoch_pos(const trainer *t) {
    return t->epoch + (t->plan && t->plan->n_batches ? (double)t->batch_idx / t->plan->n_batches : 0.0);
}

/* Mean NLL over the eval set (file order). */
static vkl_status evaluate(trainer *t, double *loss, vkl_err *err) {
    *loss = NAN;
    if (!t->eval) return VKL_OK;
    vkl_data_plan *p;
    if (vkl_data_plan_epoch(t->eval, NULL, t->B, t->T, false, &p, err)) return err->status;
    double sum = 0;
    uint64_t n = 0;
    vkl_status st = VKL_OK;
    vkl_dp_reset_nll(t->dp);
    for (uint32_t i = 0; i < p->n_batches && !st; i++) {
        st = vkl_data_fill_batch(t->eval, p, i, &t->mbs[0], err);
        if (!st) st = vkl_dp_eval_batch(t->dp, &t->mbs[0], err);
        n += t->mbs[0].n_targets;
    }
    if (!st) st = vkl_dp_nll(t->dp, &sum, err); /* each device's sum, added device by device */
    vkl_data_plan_free(p);
    if (!st && n) *loss = sum / (double)n;
    return st;
}

/* ---- checkpoints ---- */

static vkl_status write_optimizer(trainer *t, const char *path, vkl_err *err) {
    uint64_t n = t->lora->n_params;
    size_t bytes = 16 + 3 * n * 4;
    uint8_t *buf = vkl_malloc(bytes);
    memcpy(buf, OPT_MAGIC, 8);
    memcpy(buf + 8, &n, 8);
    float *p = (float *)(buf + 16);
    vkl_status st = vkl_train_dev_read(t->dev, p, p + n, p + 2 * n, NULL, err);
    if (!st) st = vkl_write_file_atomic(path, buf, bytes, "checkpoint", err);
    free(buf);
    return st;
}

static vkl_status save_adapters(trainer *t, const char *dir, char *gguf_path, size_t gguf_cap, vkl_err *err) {
    char path[4400];
    snprintf(path, sizeof(path), "%s/adapter.gguf", dir);
    if (vkl_train_dev_read(t->dev, t->lora->params, NULL, NULL, NULL, err)) return err->status;
    /* llama.cpp's adapter format cannot carry trained biases: then only the PEFT files are written. */
    if (!t->lora->n_bias) {
        if (vkl_adapter_save_gguf(t->lora, t->m, path, err)) return err->status;
        if (gguf_path) snprintf(gguf_path, gguf_cap, "%s", path);
    }
    return vkl_adapter_save_peft(t->lora, t->m, dir, err);
}

static vkl_status save_checkpoint_files(trainer *t, int64_t step, const char *final, const char *tmp, vkl_err *err);

/* checkpoint-N is written as checkpoint-N.tmp and renamed in once complete; one that already exists (a rerun over
 * the same output) is moved aside to checkpoint-N.old first, so a crash at any point leaves a complete one. */
static vkl_status save_checkpoint(trainer *t, int64_t step, vkl_err *err) {
    char final[4096], tmp[4200];
    snprintf(final, sizeof(final), "%s/checkpoint-%lld", t->c->output_dir, (long long)step);
    snprintf(tmp, sizeof(tmp), "%s.tmp", final);
    rm_rf(tmp);
    vkl_status st = save_checkpoint_files(t, step, final, tmp, err);
    if (st) rm_rf(tmp); /* e.g. a full disk: leave no half-written checkpoint behind */
    return st;
}

static vkl_status save_checkpoint_files(trainer *t, int64_t step, const char *final, const char *tmp, vkl_err *err) {
    char path[4300];
    if (mkdir_p(tmp, err)) return err->status;
    snprintf(path, sizeof(path), "%s/optimizer.bin", tmp);
    if (write_optimizer(t, path, err) || save_adapters(t, tmp, NULL, 0, err)) return err->status;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "global_step", (double)step);
    cJSON_AddNumberToObject(s, "epoch", t->epoch);
    cJSON_AddNumberToObject(s, "batch_index", t->batch_idx);
    cJSON_AddNumberToObject(s, "total_steps", (double)t->total_steps);
    cJSON_AddNumberToObject(s, "seed", (double)t->c->seed);
    cJSON_AddNumberToObject(s, "n_params", (double)t->lora->n_params);
    cJSON_AddNumberToObject(s, "batch_size", t->B);
    cJSON_AddNumberToObject(s, "seq_len", t->T);
    cJSON_AddNumberToObject(s, "devices", t->dp->total); /* data parallelism: devices of the whole job */
    cJSON_AddNumberToObject(s, "mpi_ranks", t->dp->size);
    char *txt = cJSON_Print(s);
    cJSON_Delete(s);
    snprintf(path, sizeof(path), "%s/trainer_state.json", tmp);
    vkl_status st = vkl_write_file_atomic(path, txt, strlen(txt), "checkpoint", err);
    free(txt);
    if (st) return st;
    fsync_dir(tmp);
    char old[4200];
    snprintf(old, sizeof(old), "%s.old", final);
    rm_rf(old);
    vkl_fault_point();
    if (path_exists(final) && !vkl_os_replace(final, old))
        return vkl_err_set(err, VKL_ERR_RUNTIME, "train: cannot rename %s to %s: %s", final, old, strerror(errno));
    vkl_fault_point();
    if (!vkl_os_replace(tmp, final))
        return vkl_err_set(err, VKL_ERR_RUNTIME, "train: cannot rename %s to %s: %s", tmp, final, strerror(errno));
    fsync_dir(t->c->output_dir);
    vkl_fault_point();
    rm_rf(old);
    return VKL_OK;
}

/* The final adapter files: staged in adapter.tmp/, then published together under the marker (see
 * apply_publish); a failure before the marker leaves the previous files untouched. */
static vkl_status publish_adapters(trainer *t, const char *dir, char *gguf_path, size_t gguf_cap, vkl_err *err) {
    char staging[4400], marker[4400], set[256] = "";
    snprintf(staging, sizeof(staging), "%s/" ADAPTER_STAGING, dir);
    snprintf(marker, sizeof(marker), "%s/" ADAPTER_MARKER, dir);
    rm_rf(staging);
    vkl_status st = mkdir_p(staging, err);
    if (!st) st = save_adapters(t, staging, gguf_path, gguf_cap, err);
    for (size_t i = 0; !st && i < VKL_ARRAY_LEN(adapter_files); i++) {
        char p[4500];
        snprintf(p, sizeof(p), "%s/%s", staging, adapter_files[i]);
        if (path_exists(p)) snprintf(set + strlen(set), sizeof(set) - strlen(set), "%s\n", adapter_files[i]);
    }
    if (!st) {
        fsync_dir(staging);
        st = vkl_write_file_atomic(marker, set, strlen(set), "train", err);
    }
    if (st) {
        rm_rf(staging);
        return st;
    }
    fsync_dir(dir);
    vkl_fault_point();
    if (gguf_path && gguf_path[0]) snprintf(gguf_path, gguf_cap, "%s/adapter.gguf", dir);
    return apply_publish(dir, set, err);
}

static bool json_int(const cJSON *o, const char *k, int64_t *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble != floor(j->valuedouble)) return false;
    *v = (int64_t)j->valuedouble;
    return true;
}

/* Restore parameters, moments and the data position. Returns the completed step count in *step. */
static vkl_status load_checkpoint(trainer *t, const char *dir, int64_t *step, vkl_err *err) {
    char path[4200];
    snprintf(path, sizeof(path), "%s/trainer_state.json", dir);
    FILE *f = vkl_os_fopen(path, "rb");
    if (!f) return vkl_err_set(err, VKL_ERR_INPUT, "train: --resume %s: no trainer_state.json there", dir);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *s = cJSON_Parse(buf);
    int64_t gs = 0, ep = 0, bi = 0, np = 0, bs = 0, sl = 0, seed = 0;
    bool ok = s && json_int(s, "global_step", &gs) && json_int(s, "epoch", &ep) && json_int(s, "batch_index", &bi) &&
              json_int(s, "n_params", &np) && json_int(s, "batch_size", &bs) && json_int(s, "seq_len", &sl) &&
              json_int(s, "seed", &seed);
    int64_t n_dev = 1, n_ranks = 1; /* (absent in checkpoints of older versions: one device) */
    if (s) json_int(s, "devices", &n_dev), json_int(s, "mpi_ranks", &n_ranks);
    cJSON_Delete(s);
    /* another device count only changes the order of the gradient sums (float rounding), so it is allowed */
    if (ok && (n_dev != t->dp->total || n_ranks != t->dp->size) && t->log)
        fprintf(t->log, "note: %s was written by %lld device(s) on %lld rank(s), this run has %d on %d: the result "
                "equals the original run's to float rounding, not bit for bit\n", dir, (long long)n_dev,
                (long long)n_ranks, t->dp->total, t->dp->size);
    if (!ok) return vkl_err_set(err, VKL_ERR_INPUT, "train: %s: malformed trainer state", path);
    if ((uint64_t)np != t->lora->n_params || bs != t->B || sl != t->T || seed != t->c->seed)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "train: %s was written by a different run (parameters %lld vs %llu, batch %lld vs %u, "
                           "sequence %lld vs %u, seed %lld vs %lld): resume with the same config",
                           path, (long long)np, (unsigned long long)t->lora->n_params, (long long)bs, t->B,
                           (long long)sl, t->T, (long long)seed, (long long)t->c->seed);
    snprintf(path, sizeof(path), "%s/optimizer.bin", dir);
    f = vkl_os_fopen(path, "rb");
    if (!f) return vkl_err_set(err, VKL_ERR_INPUT, "train: %s: cannot open", path);
    uint64_t cnt = t->lora->n_params;
    size_t bytes = 16 + 3 * cnt * 4;
    uint8_t *data = vkl_malloc(bytes + 1);
    size_t got = fread(data, 1, bytes + 1, f);
    fclose(f);
    uint64_t n_file = 0;
    if (got >= 16) memcpy(&n_file, data + 8, 8);
    if (got != bytes || memcmp(data, OPT_MAGIC, 8) || n_file != cnt) {
        free(data);
        return vkl_err_set(err, VKL_ERR_INPUT, "train: %s: expected %zu bytes of optimizer state for %llu parameters",
                           path, bytes, (unsigned long long)cnt);
    }
    float *p = (float *)(data + 16);
    memcpy(t->lora->params, p, cnt * 4);
    vkl_status st = vkl_dp_load_params(t->dp, p + cnt, p + 2 * cnt, err);
    free(data);
    if (st) return st;
    if (plan_epoch(t, (uint32_t)ep, err)) return err->status;
    t->batch_idx = (uint32_t)bi;
    *step = gs;
    return VKL_OK;
}

/* Newest checkpoint-N in dir, or "" */
static void latest_checkpoint(const char *dir, char *out, size_t cap) {
    out[0] = 0;
    vkl_os_dir *d = vkl_os_opendir(dir);
    if (!d) return;
    long long best = -1;
    const char *name;
    while ((name = vkl_os_readdir(d))) {
        char *end;
        if (strncmp(name, "checkpoint-", 11)) continue;
        long long v = strtoll(name + 11, &end, 10);
        if (*end || v <= best) continue;
        best = v;
        snprintf(out, cap, "%s/%s", dir, name);
    }
    vkl_os_closedir(d);
}

/* Keep the metrics lines of steps <= step (a resumed run rewrites what came after); a line that does not parse
 * (torn by a crash or a full disk) is dropped, and every kept line ends with a newline. */
static vkl_status truncate_metrics(const char *path, int64_t step, vkl_err *err) {
    FILE *f = vkl_os_fopen(path, "rb");
    if (!f) return VKL_OK;
    char *line = NULL, *out = NULL;
    size_t cap = 0, n = 0, out_cap = 0;
    int64_t len;
    while ((len = vkl_os_getline(&line, &cap, f)) > 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)len);
        int64_t s;
        bool keep = j && json_int(j, "step", &s) && s <= step;
        cJSON_Delete(j);
        if (!keep) continue;
        if (line[len - 1] == '\n') len--;
        if (n + (size_t)len + 1 > out_cap) {
            out_cap = 2 * (n + (size_t)len + 1);
            out = vkl_realloc(out, out_cap);
        }
        memcpy(out + n, line, (size_t)len);
        n += (size_t)len;
        out[n++] = '\n';
    }
    bool rd_err = ferror(f);
    fclose(f);
    free(line);
    vkl_status st = rd_err ? vkl_err_set(err, VKL_ERR_RUNTIME, "train: cannot read %s", path)
                           : vkl_write_file_atomic(path, out ? out : "", n, "train", err);
    free(out);
    return st;
}

/* One metrics line, whole or not at all: a failed or short write (a full disk) is cut back off and reported. */
static vkl_status metrics_append(vkl_os_file fd, const char *path, const char *line, vkl_err *err) {
    int64_t at = vkl_os_file_size(fd);
    size_t n = strlen(line), done = 0;
    char *buf = vkl_malloc(n + 1);
    memcpy(buf, line, n);
    buf[n++] = '\n';
    int e = 0;
    while (done < n) {
        if (done) vkl_fault_point(); /* (fault injection: a line cut in the middle) */
        int64_t k = vkl_os_write(fd, buf + done, done ? n - done : n / 2);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            e = k < 0 ? errno : EIO;
            break;
        }
        done += (size_t)k;
    }
    free(buf);
    if (done == n) return VKL_OK;
    if (at >= 0 && !vkl_os_truncate(fd, at)) { /* the torn line is repaired on resume (truncate_metrics) */ }
    return vkl_err_set(err, VKL_ERR_RUNTIME, "train: cannot append to %s: %s (the checkpoints stay valid; free some "
                       "space and resume)", path, strerror(e));
}

static void fmt_eta(double s, char *buf, size_t cap) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, cap, "--:--");
        return;
    }
    long v = (long)(s + 0.5);
    if (v >= 3600)
        snprintf(buf, cap, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
    else
        snprintf(buf, cap, "%02ld:%02ld", v / 60, v % 60);
}

static void trainer_free(trainer *t) {
    vkl_dp_destroy(t->dp); /* the devices' states and model replicas; the first device's model and vk below */
    vkl_model_free(t->m);
    vkl_vk_destroy(t->vk);
    vkl_lora_free(t->lora);
    vkl_dataset_free(t->train);
    vkl_dataset_free(t->eval);
    vkl_tokenizer_free(t->tok);
    vkl_data_plan_free(t->plan);
    free(t->perm);
    for (int i = 0; t->mbs && i < t->c->gradient_accumulation_steps; i++) {
        free(t->mbs[i].tokens);
        free(t->mbs[i].targets);
        free(t->mbs[i].pos);
        free(t->mbs[i].seg);
    }
    free(t->mbs);
}

/* LoftQ: each adapted weight becomes the quantized Q that LoftQ fitted A and B around (read from the file's full
 * precision values, whatever model.quantization did to the other weights). */
static vkl_status apply_loftq(trainer *t, vkl_err *err) {
    vkl_loftq_result *res;
    if (t->log)
        fprintf(t->log, "loftq: %d bits, %d iteration(s) on %u projections\n", t->c->loftq_bits, t->c->loftq_iter,
                t->lora->n_slots);
    if (vkl_loftq_init_model(t->m, t->lora, t->c->loftq_bits, t->c->loftq_iter, t->log, &res, err)) return err->status;
    for (uint32_t i = 0; i < res->n; i++) {
        vkl_loftq_weight *q = &res->weights[i];
        vkl_layer_weights *L = &t->m->layers[q->layer];
        /* a fused module (Phi-3's qkv, gate_up) was quantized whole: each projection takes its rows */
        uint32_t proj[3], n = vkl_module_projections(q->module, proj);
        uint64_t row_bytes = q->size / q->rows, row = 0;
        for (uint32_t k = 0; k < n; k++) {
            vkl_weight *w = vkl_layer_projection(L, proj[k]);
            uint64_t bytes = w->rows * row_bytes;
            void *b = vkl_malloc(bytes ? bytes : 1);
            memcpy(b, (const uint8_t *)q->bytes + row * row_bytes, bytes);
            row += w->rows;
            free(w->owned);
            w->owned = b;
            w->data = b;
            w->type = q->type;
            w->bytes = bytes;
        }
    }
    vkl_loftq_result_free(res);
    return VKL_OK;
}

/* Test hooks of a failed rank, once step S is done: VKLORA_FAULT_KILL_RANK="R:S" kills rank R (as kill -9 would),
 * VKLORA_FAULT_FAIL_RANK="R:S" makes it fail with an error (as a lost device would). */
static vkl_status fault_rank(int64_t step, vkl_err *err) {
    const char *v = getenv("VKLORA_FAULT_KILL_RANK");
    int r;
    long long s;
    if (v && sscanf(v, "%d:%lld", &r, &s) == 2 && r == vkl_dist_rank() && s == step) {
        fprintf(stderr, "vklora train: rank %d: killed by VKLORA_FAULT_KILL_RANK after step %lld (test hook)\n", r, s);
        fflush(stderr);
        vkl_os_kill_self();
    }
    v = getenv("VKLORA_FAULT_FAIL_RANK");
    if (v && sscanf(v, "%d:%lld", &r, &s) == 2 && r == vkl_dist_rank() && s == step)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "failed by VKLORA_FAULT_FAIL_RANK after step %lld (test hook)", s);
    return VKL_OK;
}

static const char *ckpt_name(vkl_grad_ckpt g) {
    return g == VKL_GRAD_CKPT_OFF ? "false" : g == VKL_GRAD_CKPT_ON ? "true" : "\"unsloth\"";
}

vkl_status vkl_trainer_run(const vkl_config *c, const vkl_trainer_opts *o, vkl_trainer_result *res, vkl_err *err) {
    memset(res, 0, sizeof(*res));
    res->eval_loss_before = res->eval_loss_after = NAN;
    if (vkl_config_check_for_training(c, err)) return err->status;
    /* Knobs whose device path is not built yet are refused rather than silently ignored. */
    trainer tt = {.c = c, .o = o}, *t = &tt;
    t->log = o->quiet ? NULL : (o->json_log ? stderr : stdout);
    /* an MPI job: rank 0 writes every file and the progress; the other ranks train their share quietly */
    vkl_status st = vkl_dist_init(err);
    if (st) return st;
    t->writer = vkl_dist_rank() == 0;
    if (!t->writer) t->log = NULL;
    t->tty = t->log && vkl_os_isatty(t->log);
    if ((st = vkl_model_load(c->model_path, &t->m, err))) goto done;
    /* QLoRA: the frozen base is stored in the requested mix (llama.cpp's rules) before it goes to the device. */
    if (c->quantization != VKL_QUANT_KEEP) {
        if ((st = vkl_model_quantize(t->m, c->quantization, err))) goto done;
        if (t->log) {
            char types[256];
            vkl_model_type_summary(t->m, types, sizeof(types));
            fprintf(t->log, "quantization %s: %s\n", vkl_quant_mode_names[c->quantization], types);
        }
    }
    if ((st = vkl_model_tokenizer(t->m, &t->tok, err))) goto done;
    if ((st = vkl_data_load(c, t->tok, vkl_model_chat_template(t->m, t->tok), &t->train, &t->eval, err)))
        goto done;
    t->B = (uint32_t)c->per_device_train_batch_size;
    /* Rows are max_seq_length tokens when packing; otherwise as long as the longest example needs. */
    uint32_t longest = VKL_MAX(t->train->max_len, t->eval ? t->eval->max_len : 0);
    t->T = c->packing ? (uint32_t)c->max_seq_length : VKL_MIN((uint32_t)c->max_seq_length, longest);
    if (t->T < 2) t->T = 2;
    if ((st = vkl_lora_create(t->m, c->target_modules, (uint32_t)c->r, c->lora_alpha, c->use_rslora, &t->lora, err)))
        goto done;
    t->lora->dropout = c->lora_dropout;
    vkl_lora_init(t->lora, (uint64_t)c->seed);
    if ((st = vkl_lora_add_biases(t->lora, t->m, c->bias, err))) goto done;
    if (c->loftq_bits && (st = apply_loftq(t, err))) goto done;
    if ((st = vkl_dp_open_first(c, &t->vk, err))) goto done;
    /* with a layer split, vkl_dp_create uploads each device's part once the split is planned */
    if (vkl_dp_caller_uploads(c) && (st = vkl_model_upload(t->m, t->vk, err))) goto done;
    vkl_grad_ckpt mode = c->gradient_checkpointing;
    if (t->log) {
        fprintf(t->log, "vklora train: %s (%s, %u layers, %.2fM parameters) on %s\n", c->model_path,
                t->m->hp.arch_name, t->m->hp.n_layer, t->m->n_params / 1e6, t->vk->info.name);
        fprintf(t->log, "data: %s: %u examples (%llu trainable tokens), template %s%s; eval: %u examples\n",
                c->dataset_path, t->train->n, (unsigned long long)t->train->stats.n_trainable,
                vkl_chat_template_names[t->train->tmpl], c->packing ? ", packed" : "", t->eval ? t->eval->n : 0);
        fprintf(t->log, "lora: r %d, alpha %g, scale %g%s, %u adapters, %u trained biases, %.3fM trainable "
                "parameters\n", c->r, c->lora_alpha, t->lora->scale, c->use_rslora ? " (rsLoRA)" : "",
                t->lora->n_slots, t->lora->n_bias, t->lora->n_params / 1e6);
        if (t->lora->n_bias)
            fprintf(t->log, "note: bias=\"%s\" trains %u biases; llama.cpp adapters cannot hold them, so only the PEFT "
                    "files are written (or merge with `vklora merge`)\n", vkl_lora_bias_names[c->bias], t->lora->n_bias);
        fprintf(t->log, "device memory plan for batch %u x %u tokens on one device (weights %.1f MiB):\n", t->B, t->T,
                vkl_model_layers_bytes(t->m, 0, t->m->hp.n_layer) / 1048576.0);
        for (int g = 0; g < VKL_GRAD_CKPT_COUNT; g++)
            fprintf(t->log, "  use_gradient_checkpointing %-9s %9.1f MiB%s\n", ckpt_name((vkl_grad_ckpt)g),
                    vkl_train_plan_bytes(&t->m->hp, t->lora, t->B, t->T, (vkl_grad_ckpt)g) / 1048576.0,
                    g == (int)mode ? "  <- selected" : "");
    }
    if ((st = vkl_dp_create(c, t->vk, t->m, t->lora, t->B, t->T, mode, t->log, &t->dp, err))) goto done;
    t->dev = vkl_dp_primary(t->dp);
    if ((st = vkl_dp_load_params(t->dp, NULL, NULL, err))) goto done;
    t->perm = vkl_malloc(t->train->n * sizeof(uint32_t));
    t->mbs = vkl_calloc((size_t)c->gradient_accumulation_steps, sizeof(vkl_batch));
    for (int i = 0; i < c->gradient_accumulation_steps; i++) {
        vkl_batch *b = &t->mbs[i];
        b->B = t->B;
        b->T = t->T;
        size_t n = (size_t)t->B * t->T;
        b->tokens = vkl_malloc(n * 4);
        b->targets = vkl_malloc(n * 4);
        b->pos = vkl_malloc(n * 4);
        b->seg = vkl_malloc(n * 4);
    }
    /* Total optimizer steps: max_steps, else epochs (fractional allowed) x steps per epoch. */
    if (c->max_steps > 0) {
        t->total_steps = c->max_steps;
    } else {
        double whole = floor(c->num_train_epochs), frac = c->num_train_epochs - whole;
        int64_t total = 0;
        for (uint32_t e = 0; e < (uint32_t)whole; e++) total += steps_in_epoch(t, e);
        if (frac > 0) total += (int64_t)ceil(frac * (double)steps_in_epoch(t, (uint32_t)whole));
        t->total_steps = total;
    }
    if (t->total_steps <= 0) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "train: %s yields no training step (examples %u, batch %u)",
                         c->dataset_path, t->train->n, t->B);
        goto done;
    }
    char path[4300];
    if (t->writer) {
        if ((st = mkdir_p(c->output_dir, err))) goto done;
        if ((st = recover_output_dir(c->output_dir, t->log, err))) goto done;
        cJSON *cj = vkl_config_to_json(c);
        char *txt = cJSON_Print(cj);
        cJSON_Delete(cj);
        snprintf(path, sizeof(path), "%s/config.json", c->output_dir);
        st = vkl_write_file_atomic(path, txt, strlen(txt), "train", err);
        free(txt);
        if (st) goto done;
    }
    /* the other ranks read a checkpoint only after rank 0 has recovered the output directory */
    if ((st = vkl_dist_barrier(err))) goto done;
    int64_t step = 0;
    char resume[4096] = "";
    if (o->resume_dir)
        snprintf(resume, sizeof(resume), "%s", o->resume_dir);
    else if (c->resume_from_checkpoint)
        snprintf(resume, sizeof(resume), "%s", c->resume_from_checkpoint);
    else if (c->resume_latest)
        latest_checkpoint(c->output_dir, resume, sizeof(resume));
    snprintf(path, sizeof(path), "%s/metrics.jsonl", c->output_dir);
    /* the LoRA guide's notes on this run (src/advice.c); the overfitting watch picks up a resumed run's history */
    vkl_overfit_watch watch;
    vkl_overfit_init(&watch);
    if (t->log && c->advice) {
        double epochs = c->max_steps > 0 ? (double)t->total_steps / (double)VKL_MAX(steps_in_epoch(t, 0), 1)
                                         : c->num_train_epochs;
        vkl_advice_ctx actx = {.total_steps = t->total_steps, .epochs = epochs, .has_eval = t->eval != NULL};
        vkl_advice notes[VKL_ADVICE_MAX];
        int n_notes = vkl_advice_check(c, &actx, notes);
        for (int i = 0; i < n_notes; i++) fprintf(t->log, "advice: %s\n", notes[i].text);
        if (n_notes) fprintf(t->log, "advice: (notes only; \"advice\": false hides them, vklora explain KNOB says more)\n");
    }
    if (resume[0]) {
        if ((st = load_checkpoint(t, resume, &step, err))) goto done;
        if (t->writer && (st = truncate_metrics(path, step, err))) goto done;
        if (t->log) fprintf(t->log, "resumed from %s at step %lld\n", resume, (long long)step);
        vkl_metrics hist;
        vkl_err herr = {0};
        if (!vkl_metrics_read(path, &hist, &herr)) {
            for (size_t i = 0; i < hist.n; i++) {
                vkl_overfit_train_loss(&watch, hist.v[VKL_METRIC_LOSS][i]);
                if (isfinite(hist.v[VKL_METRIC_EVAL_LOSS][i]))
                    vkl_overfit_eval(&watch, (int64_t)hist.step[i], hist.v[VKL_METRIC_EVAL_LOSS][i]);
            }
            vkl_metrics_free(&hist);
        }
    } else {
        if ((st = plan_epoch(t, 0, err))) goto done;
        t->batch_idx = 0;
        if (t->writer) vkl_os_remove(path);
    }
    vkl_os_file metrics = VKL_OS_NO_FILE;
    if (t->writer && !vkl_os_open_append(path, &metrics)) {
        st = vkl_err_set(err, VKL_ERR_RUNTIME, "train: cannot write %s: %s", path, strerror(errno));
        goto done;
    }
    if (step == 0 && t->eval) {
        if ((st = evaluate(t, &res->eval_loss_before, err))) goto close;
        if (t->log) fprintf(t->log, "eval loss before training: %.4f\n", res->eval_loss_before);
    }
    res->total_steps = t->total_steps;
    res->batch_size = t->B;
    res->seq_len = t->T;
    res->n_train = t->train->n;
    res->n_eval = t->eval ? t->eval->n : 0;
    double t_start = vkl_now_s(), tokens_done = 0;
    int64_t first_step = step;
    while (step < t->total_steps) {
        uint32_t n_mb = 0;
        uint64_t n_targets = 0;
        double t0 = vkl_now_s();
        if ((st = next_step_batches(t, &n_mb, &n_targets, err))) break;
        if ((st = vkl_dp_zero_grads(t->dp, err))) break;
        float scale = n_targets ? 1.0f / (float)n_targets : 0.0f;
        double nll = 0;
        /* each device runs its rows of every micro-batch; its gradient and NLL accumulate on its own */
        for (uint32_t i = 0; i < n_mb && !st; i++)
            st = vkl_dp_micro_step(t->dp, &t->mbs[i], scale, (float)c->lora_dropout, (uint64_t)c->seed,
                                   (uint64_t)step * 65536 + i, err);
        if (st || (st = vkl_dp_nll(t->dp, &nll, err))) break;
        double lr = vkl_config_lr_at(c, step, t->total_steps), gnorm;
        /* every rank stops at the same step when any was asked to (Ctrl-C, --stop-after) */
        bool stop = (o->stop && *o->stop) || (o->stop_after > 0 && step + 1 >= o->stop_after &&
                                                  step + 1 < t->total_steps);
        if ((st = vkl_dp_optimizer_step(t->dp, c, step + 1, lr, &gnorm, &stop, err))) break;
        step++;
        double loss = n_targets ? nll / (double)n_targets : NAN;
        if (step == first_step + 1) res->first_loss = loss;
        res->last_loss = loss;
        double dt = vkl_now_s() - t0;
        tokens_done += (double)n_mb * t->B * t->T;
        double tps = (double)n_mb * t->B * t->T / dt;
        double eval_loss = NAN;
        bool do_eval = t->eval && c->eval_steps > 0 && step % c->eval_steps == 0;
        if (do_eval && (st = evaluate(t, &eval_loss, err))) break;
        cJSON *mj = cJSON_CreateObject();
        cJSON_AddNumberToObject(mj, "step", (double)step);
        cJSON_AddNumberToObject(mj, "epoch", epoch_pos(t));
        cJSON_AddNumberToObject(mj, "loss", loss);
        if (do_eval) cJSON_AddNumberToObject(mj, "eval_loss", eval_loss);
        else cJSON_AddNullToObject(mj, "eval_loss");
        cJSON_AddNumberToObject(mj, "lr", lr);
        cJSON_AddNumberToObject(mj, "grad_norm", gnorm);
        cJSON_AddNumberToObject(mj, "tokens_per_second", tps);
        cJSON_AddNumberToObject(mj, "device_bytes", (double)vkl_dp_peak_bytes(t->dp));
        char *line = cJSON_PrintUnformatted(mj);
        cJSON_Delete(mj);
        if (t->writer) st = metrics_append(metrics, path, line, err);
        free(line);
        if (st) break;
        vkl_overfit_train_loss(&watch, loss);
        bool overfit_note = do_eval && vkl_overfit_eval(&watch, step, eval_loss) && c->advice;
        if (t->writer && c->plot_every > 0 && (step % c->plot_every == 0 || step == t->total_steps)) {
            vkl_err perr = {0};
            if (vkl_plot_run_curves(c->output_dir, &perr) && t->log)
                fprintf(t->log, "%swarning: curves.svg not written: %s\n", t->tty ? "\r\033[K" : "", perr.msg);
        }
        if (t->log && (step % c->logging_steps == 0 || step == t->total_steps || do_eval)) {
            char eta[32];
            double per = (vkl_now_s() - t_start) / (double)(step - first_step);
            fmt_eta(per * (double)(t->total_steps - step), eta, sizeof(eta));
            fprintf(t->log, "%sstep %lld/%lld | epoch %.2f | loss %.4f | lr %.3g | grad norm %.3f | %.0f tok/s | ETA %s "
                            "| mem %.0f MiB",
                    t->tty ? "\r\033[K" : "", (long long)step, (long long)t->total_steps, epoch_pos(t), loss, lr,
                    gnorm, tps, eta, vkl_dp_peak_bytes(t->dp) / 1048576.0);
            if (do_eval) fprintf(t->log, " | eval loss %.4f", eval_loss);
            fputs(t->tty && !do_eval ? "" : "\n", t->log);
            fflush(t->log);
        }
        if (overfit_note && t->log) {
            char note[600];
            vkl_overfit_message(&watch, step, note, sizeof(note));
            fprintf(t->log, "%sadvice: %s\n", t->tty ? "\r\033[K" : "", note);
            fflush(t->log);
        }
        if ((c->save_steps > 0 && step % c->save_steps == 0 && step < t->total_steps) || stop) {
            if (t->writer && (st = save_checkpoint(t, step, err))) break;
            if (stop) {
                res->interrupted = true;
                if (t->log)
                    fprintf(t->log, "%sinterrupted: checkpoint saved in %s/checkpoint-%lld\n", t->tty ? "\n" : "",
                            c->output_dir, (long long)step);
                break;
            }
        }
        if ((st = fault_rank(step, err))) break;
    }
    if (t->tty && !st) fputc('\n', t->log);
    res->steps_done = step;
    res->tokens_per_second = tokens_done / VKL_MAX(vkl_now_s() - t_start, 1e-9);
    if (!st && !res->interrupted) {
        if (t->writer &&
            (st = publish_adapters(t, c->output_dir, res->adapter_gguf, sizeof(res->adapter_gguf), err)))
            goto close;
        snprintf(res->adapter_peft_dir, sizeof(res->adapter_peft_dir), "%s", c->output_dir);
        if (t->eval && (st = evaluate(t, &res->eval_loss_after, err))) goto close;
        if (t->log && t->eval) fprintf(t->log, "eval loss after training: %.4f\n", res->eval_loss_after);
        if (t->log && res->adapter_gguf[0])
            fprintf(t->log, "adapter written: %s (llama.cpp) and %s/adapter_model.safetensors (PEFT)\n",
                    res->adapter_gguf, c->output_dir);
        else if (t->log)
            fprintf(t->log, "adapter written: %s/adapter_model.safetensors (PEFT)\n", c->output_dir);
    }
close:
    if (metrics != VKL_OS_NO_FILE) vkl_os_close(metrics);
done:
    res->peak_device_bytes = t->dp ? vkl_dp_peak_bytes(t->dp) : t->vk ? t->vk->device_bytes_peak : 0;
    if (st && vkl_dist_size() > 1) {
        /* the other ranks wait in a collective for this one: say why, and end the whole job (the checkpoints rank 0
         * wrote are complete: resume with the same -np) */
        fprintf(stderr, "vklora train: rank %d of %d failed: %s\nvklora train: ending the MPI job; the last checkpoint "
                "in %s is intact (resume with --resume DIR or resume_from_checkpoint=true and the same -np)\n",
                vkl_dist_rank(), vkl_dist_size(), err->msg, c->output_dir);
        vkl_dist_abort(st == VKL_ERR_INPUT ? 2 : 1);
    }
    trainer_free(t);
    return st;
}
