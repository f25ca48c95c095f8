/* Data parallelism over the devices of this process and the ranks of an MPI job (see dp.h): device setup with
 * model replicas, the split of each micro-batch into per-device rows, threaded micro-steps, and the fixed-order
 * host reduction of the flat LoRA gradients around one optimizer step. */
#include "dp.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dist.h"

#define CHUNK_FLOATS (1u << 22) /* gradients move through the host in chunks of 16 MiB per device */

/* ---- model replicas: the same host weights, their own device buffers ---- */

static vkl_model *model_replica(const vkl_model *m) {
    vkl_model *r = vkl_malloc(sizeof(*r));
    *r = *m;
    r->layers = vkl_malloc((size_t)m->hp.n_layer * sizeof(*r->layers));
    memcpy(r->layers, m->layers, (size_t)m->hp.n_layer * sizeof(*r->layers));
    r->vk = NULL;
    r->device_bytes = 0;
    vkl_weight **ws = vkl_calloc(VKL_MODEL_MAX_WEIGHTS(r), sizeof(*ws));
    int n = vkl_model_weights(r, ws);
    for (int i = 0; i < n; i++) ws[i]->buf = NULL, ws[i]->owned = NULL; /* the bytes stay the original's */
    r->output.buf = NULL;
    r->output.owned = NULL;
    free(ws);
    return r;
}

static void model_replica_free(vkl_model *r) {
    if (!r) return;
    vkl_weight **ws = vkl_calloc(VKL_MODEL_MAX_WEIGHTS(r), sizeof(*ws));
    int n = vkl_model_weights(r, ws);
    for (int i = 0; i < n; i++)
        if (r->vk && ws[i]->buf) {
            vkl_buffer_destroy(r->vk, ws[i]->buf);
            free(ws[i]->buf);
        }
    free(ws);
    free(r->layers);
    free(r);
}

/* ---- threads: one per extra device for each call ---- */

typedef enum { JOB_TRAIN, JOB_EVAL } job_kind;

typedef struct {
    vkl_dp *dp;
    int i;
    job_kind kind;
    const vkl_batch *b;
    float scale;
} job;

static void *run_job(void *p) {
    job *j = p;
    vkl_dp_worker *w = &j->dp->w[j->i];
    size_t off = (size_t)w->b0 * j->b->T;
    double s = 0, t0 = vkl_now_s();
    vkl_err_clear(&w->err);
    w->dev->row_base = w->b0 * j->b->T;
    if (j->kind == JOB_TRAIN)
        w->st = vkl_train_micro_step(w->dev, j->b->tokens + off, j->b->pos + off, j->b->seg + off, j->b->targets + off,
                                     j->scale, &s, &w->err);
    else
        w->st = vkl_train_eval_batch(w->dev, j->b->tokens + off, j->b->pos + off, j->b->seg + off,
                                     j->b->targets + off, &s, &w->err);
    w->busy_s = vkl_now_s() - t0;
    w->nll += s;
    return NULL;
}

/* Run the job on every device at once; the first failing device (in device order) reports. */
static vkl_status run_all(vkl_dp *dp, job_kind kind, const vkl_batch *b, float scale, vkl_err *err) {
    job jobs[VKL_MAX_DEVICES];
    pthread_t th[VKL_MAX_DEVICES];
    bool started[VKL_MAX_DEVICES] = {0};
    for (int i = 0; i < dp->n; i++) jobs[i] = (job){.dp = dp, .i = i, .kind = kind, .b = b, .scale = scale};
    for (int i = 1; i < dp->n; i++) started[i] = pthread_create(&th[i], NULL, run_job, &jobs[i]) == 0;
    run_job(&jobs[0]);
    for (int i = 1; i < dp->n; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else run_job(&jobs[i]); /* no thread: run it here */
    }
    for (int i = 0; i < dp->n; i++)
        if (dp->w[i].st) {
            if (dp->n > 1)
                return vkl_err_set(err, dp->w[i].st, "device %d (%s): %s", i, dp->w[i].vk->info.name,
                                   dp->w[i].err.msg);
            *err = dp->w[i].err;
            return err->status;
        }
    return VKL_OK;
}

/* ---- shares ---- */

static uint32_t fnv32(const char *s, uint32_t h) {
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Seconds of one micro-step of one sequence on worker w (after a warm-up one that compiles the pipelines). */
static vkl_status time_one_sequence(vkl_dp *dp, int i, const vkl_lora *l, vkl_grad_ckpt ckpt, double *secs,
                                    vkl_err *err) {
    vkl_dp_worker *w = &dp->w[i];
    uint32_t T = dp->T, V = w->m->hp.n_vocab;
    int32_t *buf = vkl_malloc((size_t)T * 16);
    int32_t *tok = buf, *pos = buf + T, *seg = buf + 2 * T, *tgt = buf + 3 * T;
    for (uint32_t t = 0; t < T; t++) {
        tok[t] = (int32_t)((t * 7919u + 13u) % V);
        pos[t] = (int32_t)t;
        seg[t] = 0;
    }
    for (uint32_t t = 0; t < T; t++) tgt[t] = t + 1 < T ? tok[t + 1] : -1;
    vkl_train_dev *d = NULL;
    double s;
    vkl_status st = vkl_train_dev_create(w->vk, w->m, l, 1, T, ckpt, &d, err);
    if (!st) st = vkl_train_dev_load_params(d, NULL, NULL, err);
    for (int k = 0; k < 2 && !st; k++) {
        double t0 = vkl_now_s();
        st = vkl_train_micro_step(d, tok, pos, seg, tgt, 1.0f / (float)T, &s, err);
        *secs = vkl_now_s() - t0;
    }
    vkl_train_dev_destroy(d);
    free(buf);
    return st;
}

/* Whole sequences in proportion to the weights, at least one each, largest remainders first (ties: lower index):
 * a pure function of (B, weights), so every rank computes the same split. */
static void split_rows(uint32_t B, const double *wt, int n, uint32_t *rows) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += wt[i];
    uint32_t given = 0;
    double *rem = vkl_calloc((size_t)n, sizeof(double));
    for (int i = 0; i < n; i++) {
        double exact = (double)(B - (uint32_t)n) * wt[i] / sum; /* the rows beyond the one each device gets */
        rows[i] = 1 + (uint32_t)floor(exact);
        rem[i] = exact - floor(exact);
        given += rows[i];
    }
    while (given < B) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (rem[i] > rem[best]) best = i;
        rows[best]++;
        rem[best] = -1;
        given++;
    }
    free(rem);
}

/* ---- layer split ---- */

/* The layer ranges of this process's devices, from c->layer_split's shares (each at least one layer), or (auto) the
 * contiguous split that makes the largest fraction of a device's memory in use smallest (dynamic programming over
 * the split points; a device without a known size counts as unlimited). Logs the plan; refuses one that does not
 * fit. B: the sequences of each micro-batch this process runs. */
static vkl_status plan_split(vkl_dp *dp, const vkl_config *c, vkl_model *m, const vkl_lora *l, uint32_t B,
                             vkl_grad_ckpt ckpt, FILE *log, vkl_err *err) {
    const uint32_t L = m->hp.n_layer;
    const int n = dp->n;
    if (n < 2)
        return vkl_err_set(err, VKL_ERR_INPUT, "layer_split: needs two or more devices in `devices` (this process has "
                           "%d)", n);
    if ((uint32_t)n > L)
        return vkl_err_set(err, VKL_ERR_INPUT, "layer_split: %d devices for the model's %u layers: each device needs "
                           "one layer at least", n, L);
    if (c->n_layer_split > 0 && c->n_layer_split != n)
        return vkl_err_set(err, VKL_ERR_INPUT, "layer_split: %d shares for %d devices", c->n_layer_split, n);
    /* cost[a * (L + 1) + b]: device bytes of the stage of layers [a, b) (weights and training state) */
    uint64_t *cost = vkl_calloc((size_t)(L + 1) * (L + 1), sizeof(uint64_t));
    for (uint32_t a = 0; a < L; a++)
        for (uint32_t b = a + 1; b <= L; b++)
            cost[a * (L + 1) + b] = vkl_model_layers_bytes(m, a, b) +
                                    vkl_train_plan_bytes_layers(&m->hp, l, B, dp->T, ckpt, a, b);
    double budget[VKL_MAX_DEVICES];
    for (int i = 0; i < n; i++) {
        uint64_t bb = vkl_vk_memory_budget(dp->w[i].vk);
        budget[i] = bb ? (double)bb : 1e300;
    }
    uint32_t end[VKL_MAX_DEVICES];
    if (c->n_layer_split > 0) {
        double sum = 0, cum = 0;
        for (int i = 0; i < n; i++) sum += c->layer_split[i];
        for (int i = 0; i < n; i++) {
            cum += c->layer_split[i];
            uint32_t lo = (i ? end[i - 1] : 0) + 1, hi = L - (uint32_t)(n - 1 - i);
            uint32_t e = (uint32_t)llround((double)L * cum / sum);
            end[i] = i == n - 1 ? L : VKL_MIN(VKL_MAX(e, lo), hi);
        }
    } else {
        /* best[i][e]: the smallest largest use over devices 0..i-1 holding layers [0, e); from[i][e]: their split */
        double *best = vkl_malloc((size_t)(n + 1) * (L + 1) * sizeof(double));
        uint32_t *from = vkl_calloc((size_t)(n + 1) * (L + 1), sizeof(uint32_t));
        for (size_t k = 0; k < (size_t)(n + 1) * (L + 1); k++) best[k] = INFINITY;
        best[0] = 0;
        for (int i = 1; i <= n; i++)
            for (uint32_t e = (uint32_t)i; e <= L; e++)
                for (uint32_t s0 = (uint32_t)i - 1; s0 < e; s0++) {
                    double prev = best[(size_t)(i - 1) * (L + 1) + s0];
                    double use = fmax(prev, (double)cost[s0 * (L + 1) + e] / budget[i - 1]);
                    /* ties: the earlier split point, so the plan is a pure function of the sizes */
                    if (use < best[(size_t)i * (L + 1) + e]) {
                        best[(size_t)i * (L + 1) + e] = use;
                        from[(size_t)i * (L + 1) + e] = s0;
                    }
                }
        uint32_t e = L;
        for (int i = n; i >= 1; i--) {
            end[i - 1] = e;
            e = from[(size_t)i * (L + 1) + e];
        }
        free(best);
        free(from);
    }
    vkl_status st = VKL_OK;
    int worst = -1;
    double worst_use = 0;
    if (log) fprintf(log, "layer split over %d devices (the rows of each micro-batch run on each in turn):\n", n);
    for (int i = 0; i < n; i++) {
        vkl_dp_worker *w = &dp->w[i];
        w->l0 = i ? end[i - 1] : 0;
        w->l1 = end[i];
        uint64_t wb = vkl_model_layers_bytes(m, w->l0, w->l1), need = cost[w->l0 * (L + 1) + w->l1];
        double use = (double)need / budget[i];
        if (use > worst_use) worst_use = use, worst = i;
        if (log) {
            fprintf(log, "  device %d: %s: layers %u..%u%s%s: weights %.1f MiB + training state %.1f MiB = %.1f MiB",
                    i, w->vk->info.name, w->l0, w->l1 - 1, w->l0 == 0 ? " + embedding" : "",
                    w->l1 == L ? " + head" : "", wb / 1048576.0, (need - wb) / 1048576.0, need / 1048576.0);
            if (budget[i] < 1e300) fprintf(log, " of %.1f MiB", budget[i] / 1048576.0);
            fprintf(log, "\n");
        }
    }
    if (worst >= 0 && worst_use > 1) {
        vkl_dp_worker *w = &dp->w[worst];
        st = vkl_err_set(err, VKL_ERR_RUNTIME,
                         "layer_split: the model does not fit these devices: device %d (%s) needs %.1f MiB for layers "
                         "%u..%u and has %.1f MiB; add a device, lower per_device_train_batch_size or max_seq_length, "
                         "or set use_gradient_checkpointing",
                         worst, w->vk->info.name, cost[w->l0 * (L + 1) + w->l1] / 1048576.0, w->l0, w->l1 - 1,
                         budget[worst] / 1048576.0);
    }
    free(cost);
    return st;
}

/* One micro-batch (train) or its forward (eval) through the stages of a layer split, in order: each stage's output
 * residual is the next one's input; the last computes the loss and its own backward, then the gradient of each
 * boundary residual goes back up. The stages' buffers alternate so that a stage never reads what it writes. */
static vkl_status split_pass(vkl_dp *dp, const vkl_batch *b, bool train, float scale, vkl_err *err) {
    const int n = dp->n;
    const size_t off = (size_t)dp->w[0].b0 * b->T;
    float **xb = dp->xb;
    vkl_status st = VKL_OK;
    int at = 0;
    for (int i = 0; i < n && !st; i++) {
        vkl_dp_worker *w = &dp->w[at = i];
        double s = 0;
        w->dev->row_base = w->b0 * b->T;
        vkl_err_clear(&w->err);
        st = vkl_train_stage_forward(w->dev, b->tokens + off, b->pos + off, b->seg + off, b->targets + off, train,
                                     scale, i ? xb[i % 2] : NULL, i < n - 1 ? xb[(i + 1) % 2] : NULL,
                                     train && i == n - 1 ? xb[n % 2] : NULL, &s, &w->err);
        w->nll += s;
    }
    for (int i = n - 2; train && !st && i >= 0; i--)
        st = vkl_train_stage_backward(dp->w[at = i].dev, xb[i % 2], i ? xb[(i + 1) % 2] : NULL, &dp->w[i].err);
    if (st)
        return vkl_err_set(err, st, "device %d (%s, layers %u..%u): %s", at, dp->w[at].vk->info.name, dp->w[at].l0,
                           dp->w[at].l1 - 1, dp->w[at].err.msg);
    return VKL_OK;
}

static vkl_status resolve_specs(const vkl_config *c, char specs[VKL_MAX_DEVICES][300], int *n, vkl_err *err) {
    *n = 0;
    if (c->devices_all) {
        vkl_device_info *infos = NULL;
        uint32_t cnt = 0;
        if (vkl_vk_list_devices(&infos, &cnt, err)) return err->status;
        for (uint32_t i = 0; i < cnt && *n < VKL_MAX_DEVICES; i++) snprintf(specs[(*n)++], 300, "%u", infos[i].index);
        free(infos);
        if (!*n) return vkl_err_set(err, VKL_ERR_RUNTIME, "devices: \"all\": no Vulkan device found");
        return VKL_OK;
    }
    if (c->n_devices) {
        for (int i = 0; i < c->n_devices; i++) snprintf(specs[(*n)++], 300, "%s", c->devices[i]);
        return VKL_OK;
    }
    if (c->device_index >= 0) snprintf(specs[0], 300, "%d", c->device_index);
    else if (c->device_name) snprintf(specs[0], 300, "%s", c->device_name);
    else specs[0][0] = 0; /* auto (or VKLORA_DEVICE) */
    *n = 1;
    return VKL_OK;
}

vkl_status vkl_dp_open_first(const vkl_config *c, vkl_vk **vk, vkl_err *err) {
    *vk = NULL;
    if (vkl_dist_init(err)) return err->status;
    char specs[VKL_MAX_DEVICES][300];
    int n;
    if (resolve_specs(c, specs, &n, err)) return err->status;
    vkl_vk_options vo = {.device = specs[0][0] ? specs[0] : NULL};
    return vkl_vk_create(&vo, vk, err);
}

vkl_status vkl_dp_create(const vkl_config *c, vkl_vk *vk0, vkl_model *m, const vkl_lora *l, uint32_t B, uint32_t T,
                         vkl_grad_ckpt ckpt, FILE *log, vkl_dp **out, vkl_err *err) {
    *out = NULL;
    if (vkl_dist_init(err)) return err->status;
    vkl_dp *dp = vkl_calloc(1, sizeof(*dp));
    dp->rank = vkl_dist_rank();
    dp->size = vkl_dist_size();
    dp->B = B;
    dp->T = T;
    dp->n_params = l->n_params;
    char specs[VKL_MAX_DEVICES][300];
    vkl_status st = resolve_specs(c, specs, &dp->n, err);
    dp->w[0].vk = vk0;
    dp->w[0].m = m;
    dp->split = c->n_layer_split != 0;
    for (int i = 0; i < dp->n; i++) dp->w[i].l0 = 0, dp->w[i].l1 = m->hp.n_layer;
    for (int i = 1; !st && i < dp->n; i++) {
        vkl_dp_worker *w = &dp->w[i];
        vkl_vk_options vo = {.device = specs[i][0] ? specs[i] : NULL};
        if ((st = vkl_vk_create(&vo, &w->vk, err))) break;
        w->m = model_replica(m);
    }
    if (!st && dp->split && c->n_device_shares != 0)
        st = vkl_err_set(err, VKL_ERR_INPUT, "device_shares: splits the rows over devices; with layer_split every "
                         "device runs all the rows of its layers (leave device_shares at \"auto\")");
    /* with a layer split every device of this process runs the rows of this rank [rank_b0, rank_b0 + rank_rows):
     * split_rows over the ranks with equal weights */
    uint32_t rank_rows = 0, rank_b0 = 0;
    if (!st && dp->split) {
        if ((uint32_t)dp->size > B)
            st = vkl_err_set(err, VKL_ERR_INPUT, "devices: per_device_train_batch_size %u is the whole micro-batch, "
                             "split over %d MPI ranks: each needs at least one sequence", B, dp->size);
        double *even = vkl_malloc((size_t)dp->size * sizeof(double));
        uint32_t *rr = vkl_calloc((size_t)dp->size, sizeof(uint32_t));
        for (int r = 0; r < dp->size; r++) even[r] = 1;
        if (!st) split_rows(B, even, dp->size, rr);
        for (int r = 0; r < dp->rank; r++) rank_b0 += rr[r];
        rank_rows = rr[dp->rank];
        free(even);
        free(rr);
        if (!st) st = plan_split(dp, c, m, l, rank_rows, ckpt, log, err);
    }
    for (int i = 0; !st && i < dp->n; i++)
        if (dp->split) st = vkl_model_upload_layers(dp->w[i].m, dp->w[i].vk, dp->w[i].l0, dp->w[i].l1, err);
        else if (i) st = vkl_model_upload(dp->w[i].m, dp->w[i].vk, err);
    /* the devices of the whole job, rank by rank */
    uint32_t n_local = (uint32_t)dp->n;
    dp->rank_devices = vkl_calloc((size_t)dp->size, sizeof(uint32_t));
    if (!st) st = vkl_dist_allgather_u32(&n_local, 1, dp->rank_devices, err);
    for (int r = 0; !st && r < dp->size; r++) {
        if (r == dp->rank) dp->first = dp->total;
        dp->total += (int)dp->rank_devices[r];
    }
    if (!st && dp->total > VKL_MAX_SHARES)
        st = vkl_err_set(err, VKL_ERR_INPUT, "devices: %d devices in the job; at most %d", dp->total, VKL_MAX_SHARES);
    if (!st && !dp->split && (uint32_t)dp->total > B)
        st = vkl_err_set(err, VKL_ERR_INPUT,
                         "devices: per_device_train_batch_size %u is the whole micro-batch, split over %d devices "
                         "(all ranks): each needs at least one sequence; raise it to %d or more",
                         B, dp->total, dp->total);
    if (!st && c->n_device_shares > 0 && c->n_device_shares != dp->total)
        st = vkl_err_set(err, VKL_ERR_INPUT, "device_shares: %d values for %d devices (of all ranks, rank by rank)",
                         c->n_device_shares, dp->total);
    double *wt = NULL;
    if (!st) {
        dp->rows = vkl_calloc((size_t)dp->total, sizeof(uint32_t));
        wt = vkl_calloc((size_t)dp->total, sizeof(double));
        for (int i = 0; i < dp->total; i++) wt[i] = 1;
    }
    if (!st && c->n_device_shares > 0) {
        for (int i = 0; i < dp->total; i++) wt[i] = c->device_shares[i];
    } else if (!st && dp->total > 1 && !dp->split) {
        /* identical devices split evenly (reproducible); different ones by a measured speed */
        uint32_t h[VKL_MAX_DEVICES] = {0}, *all = vkl_calloc((size_t)dp->size * VKL_MAX_DEVICES, sizeof(uint32_t));
        for (int i = 0; i < dp->n; i++)
            h[i] = fnv32(dp->w[i].vk->info.driver_info, fnv32(dp->w[i].vk->info.name, 2166136261u));
        st = vkl_dist_allgather_u32(h, VKL_MAX_DEVICES, all, err);
        bool same = true;
        for (size_t k = 0; !st && k < (size_t)dp->size * VKL_MAX_DEVICES; k++)
            if (all[k]) same &= all[k] == all[0];
        free(all);
        if (!st && (!same || c->n_device_shares < 0)) {
            double speed[VKL_MAX_DEVICES] = {0}, *sp = vkl_calloc((size_t)dp->size * VKL_MAX_DEVICES, sizeof(double));
            for (int i = 0; !st && i < dp->n; i++) {
                double secs = 1;
                st = time_one_sequence(dp, i, l, ckpt, &secs, err);
                speed[i] = 1.0 / VKL_MAX(secs, 1e-6);
            }
            if (!st) st = vkl_dist_allgather_f64(speed, VKL_MAX_DEVICES, sp, err);
            for (int r = 0, g = 0; !st && r < dp->size; r++)
                for (int i = 0; i < VKL_MAX_DEVICES; i++)
                    if (sp[(size_t)r * VKL_MAX_DEVICES + i] > 0) wt[g++] = sp[(size_t)r * VKL_MAX_DEVICES + i];
            free(sp);
            dp->shares_measured = true;
        }
    }
    if (!st && !dp->split) split_rows(B, wt, dp->total, dp->rows);
    free(wt);
    uint32_t b0 = rank_b0;
    for (int g = 0; !st && !dp->split && g < dp->first; g++) b0 += dp->rows[g];
    for (int i = 0; !st && i < dp->n; i++) {
        vkl_dp_worker *w = &dp->w[i];
        w->b0 = b0;
        w->B = dp->split ? rank_rows : dp->rows[dp->first + i];
        if (!dp->split) b0 += w->B;
        if ((st = vkl_train_dev_create_layers(w->vk, w->m, l, w->B, T, ckpt, w->l0, w->l1, &w->dev, err))) break;
        if (log && dp->total > 1 && !dp->split)
            fprintf(log, "device %d: %s (%s): sequences %u..%u of every micro-batch of %u%s\n", dp->first + i,
                    w->vk->info.name, w->vk->info.type, w->b0, w->b0 + w->B - 1, B,
                    dp->shares_measured ? " (share by measured speed)" : c->n_device_shares ? " (device_shares)" : "");
    }
    if (!st && log && dp->total > 1 && !dp->split) {
        fprintf(log, "data parallelism: %d devices", dp->total);
        if (dp->size > 1) fprintf(log, " over %d MPI ranks (this rank's are listed above)", dp->size);
        fprintf(log, "; sequences per device of each micro-batch of %u:", B);
        for (int g = 0; g < dp->total; g++) fprintf(log, " %u", dp->rows[g]);
        fprintf(log, "\n");
        if (dp->size > 1)
            fprintf(log, "mpi: rank 0 writes metrics, checkpoints and adapters; if a rank fails, mpirun ends the job "
                         "and the last checkpoint resumes it (resume_from_checkpoint=true, the same -np)\n");
    }
    if (!st && dp->total > 1) {
        size_t chunk = (size_t)VKL_MIN((uint64_t)CHUNK_FLOATS, dp->n_params);
        dp->gbuf = vkl_malloc((size_t)dp->n * chunk * sizeof(float));
        if (dp->rank == 0) {
            dp->gall = dp->size > 1 ? vkl_malloc((size_t)dp->total * chunk * sizeof(float)) : NULL;
            dp->sum = vkl_malloc(chunk * sizeof(float));
        }
        dp->params = vkl_malloc((size_t)dp->n_params * sizeof(float));
    }
    if (!st && dp->split)
        for (int k = 0; k < 2; k++)
            dp->xb[k] = vkl_malloc((size_t)rank_rows * T * m->hp.n_embd * sizeof(float));
    if (st) {
        vkl_dp_destroy(dp);
        return st;
    }
    *out = dp;
    return VKL_OK;
}

void vkl_dp_destroy(vkl_dp *dp) {
    if (!dp) return;
    for (int i = dp->n - 1; i >= 0; i--) {
        vkl_dp_worker *w = &dp->w[i];
        vkl_train_dev_destroy(w->dev);
        if (i) {
            model_replica_free(w->m);
            vkl_vk_destroy(w->vk);
        }
    }
    free(dp->rows);
    free(dp->rank_devices);
    free(dp->gbuf);
    free(dp->gall);
    free(dp->sum);
    free(dp->params);
    free(dp->xb[0]);
    free(dp->xb[1]);
    free(dp);
}

vkl_status vkl_dp_load_params(vkl_dp *dp, const float *m1, const float *m2, vkl_err *err) {
    for (int i = 0; i < dp->n; i++)
        if (vkl_train_dev_load_params(dp->w[i].dev, i ? NULL : m1, i ? NULL : m2, err)) return err->status;
    return VKL_OK;
}

void vkl_dp_reset_nll(vkl_dp *dp) {
    for (int i = 0; i < dp->n; i++) dp->w[i].nll = 0;
}

vkl_status vkl_dp_zero_grads(vkl_dp *dp, vkl_err *err) {
    vkl_dp_reset_nll(dp);
    for (int i = 0; i < dp->n; i++)
        if (vkl_train_zero_grads(dp->w[i].dev, err)) return err->status;
    return VKL_OK;
}

vkl_status vkl_dp_micro_step(vkl_dp *dp, const vkl_batch *b, float grad_scale, float dropout_p, uint64_t seed,
                             uint64_t stream, vkl_err *err) {
    for (int i = 0; i < dp->n; i++) vkl_train_set_dropout(dp->w[i].dev, dropout_p, seed, stream);
    if (dp->split) return split_pass(dp, b, true, grad_scale, err);
    return run_all(dp, JOB_TRAIN, b, grad_scale, err);
}

vkl_status vkl_dp_micro_step_alone(vkl_dp *dp, int i, const vkl_batch *b, float grad_scale, double *secs,
                                   vkl_err *err) {
    if (dp->split)
        return vkl_err_set(err, VKL_ERR_INPUT, "device %d alone: a device of a layer split holds only some layers", i);
    job j = {.dp = dp, .i = i, .kind = JOB_TRAIN, .b = b, .scale = grad_scale};
    run_job(&j);
    *secs = dp->w[i].busy_s;
    if (dp->w[i].st) *err = dp->w[i].err;
    return dp->w[i].st;
}

vkl_status vkl_dp_eval_batch(vkl_dp *dp, const vkl_batch *b, vkl_err *err) {
    if (dp->split) return split_pass(dp, b, false, 0, err);
    return run_all(dp, JOB_EVAL, b, 0, err);
}

vkl_status vkl_dp_nll(vkl_dp *dp, double *nll, vkl_err *err) {
    double mine[VKL_MAX_DEVICES] = {0}, *all = vkl_calloc((size_t)dp->size * VKL_MAX_DEVICES, sizeof(double));
    for (int i = 0; i < dp->n; i++) mine[i] = dp->w[i].nll;
    vkl_status st = vkl_dist_allgather_f64(mine, VKL_MAX_DEVICES, all, err);
    /* device by device, rank by rank (the padding past each rank's devices is zeros, adding nothing) */
    double s = 0;
    for (size_t k = 0; k < (size_t)dp->size * VKL_MAX_DEVICES; k++) s += all[k];
    free(all);
    *nll = s;
    return st;
}

vkl_status vkl_dp_optimizer_step(vkl_dp *dp, const vkl_config *c, int64_t step, double lr, double *grad_norm,
                                 bool *stop, vkl_err *err) {
    vkl_train_dev *primary = dp->w[0].dev;
    if (dp->total == 1) return vkl_train_optimizer_step(primary, c, step, lr, grad_norm, err);
    /* does any rank stop after this step? */
    uint32_t want = *stop, *all = vkl_calloc((size_t)dp->size, sizeof(uint32_t));
    vkl_status st = vkl_dist_allgather_u32(&want, 1, all, err);
    *stop = false;
    for (int r = 0; r < dp->size; r++) *stop |= all[r] != 0;
    free(all);
    if (st) return st;
    /* sum the gradients chunk by chunk: g_0 + g_1 + ... over the job's devices in order, on rank 0 */
    size_t chunk = (size_t)VKL_MIN((uint64_t)CHUNK_FLOATS, dp->n_params);
    size_t *counts = vkl_calloc((size_t)dp->size, sizeof(size_t));
    for (uint64_t off = 0; off < dp->n_params && !st; off += chunk) {
        size_t len = (size_t)VKL_MIN((uint64_t)chunk, dp->n_params - off);
        for (int i = 0; i < dp->n && !st; i++)
            st = vkl_buffer_download(dp->w[i].vk, &dp->w[i].dev->lg, off * 4, dp->gbuf + (size_t)i * len, len * 4,
                                     err);
        if (st) break;
        const float *g = dp->gbuf;
        if (dp->size > 1) {
            for (int r = 0; r < dp->size; r++) counts[r] = (size_t)dp->rank_devices[r] * len;
            st = vkl_dist_gather_f32(dp->gbuf, counts, dp->gall, err);
            g = dp->gall;
        }
        if (st || dp->rank != 0) continue;
        memcpy(dp->sum, g, len * 4);
        for (int d = 1; d < dp->total; d++) {
            const float *gd = g + (size_t)d * len;
            for (size_t k = 0; k < len; k++) dp->sum[k] += gd[k];
        }
        st = vkl_buffer_upload(dp->w[0].vk, &primary->lg, off * 4, dp->sum, len * 4, err);
    }
    free(counts);
    if (st) return st;
    double gn = 0;
    if (dp->rank == 0) {
        if ((st = vkl_train_optimizer_step(primary, c, step, lr, &gn, err))) return st;
        if ((st = vkl_train_dev_read(primary, dp->params, NULL, NULL, NULL, err))) return st;
    }
    if ((st = vkl_dist_bcast(&gn, sizeof(gn), err))) return st;
    if ((st = vkl_dist_bcast(dp->params, (size_t)dp->n_params * 4, err))) return st;
    for (int i = dp->rank == 0 ? 1 : 0; i < dp->n; i++)
        if ((st = vkl_train_dev_write(dp->w[i].dev, dp->params, NULL, err))) return st;
    *grad_norm = gn;
    return VKL_OK;
}

uint64_t vkl_dp_peak_bytes(const vkl_dp *dp) {
    uint64_t p = 0;
    for (int i = 0; i < dp->n; i++) p = VKL_MAX(p, dp->w[i].vk ? dp->w[i].vk->device_bytes_peak : 0);
    return p;
}
