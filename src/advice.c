/* The LoRA parameter guide's advice built in: notes on a config at train start, the overfitting watch during
 * training, and the sweep's small pure parts (value lists, run names, which device runs which run). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vklora/knobs.h"

/* The guide's ranges. "Far" outside the typical learning rates is a factor 4 beyond either end, so Unsloth's
 * default 2e-4 (2x the upper end) passes without a note. */
#define LR_LO 5e-5
#define LR_HI 1e-4
#define LR_FAR 4.0
#define EPOCHS_MAX 3.0
#define R_LO 8
#define R_HI 128
#define WARMUP_LO 0.05
#define WARMUP_HI 0.10
#define WD_LO 0.001 /* 10x below the guide's 0.01 */
#define WD_HI 0.1   /* 10x above it (the guide's "raise against overfitting" stops there) */

static vkl_advice *add(vkl_advice *out, int *n, const char *id) {
    if (*n >= VKL_ADVICE_MAX) return NULL;
    out[*n].id = id;
    out[*n].text[0] = 0;
    return &out[(*n)++];
}

int vkl_advice_check(const vkl_config *c, const vkl_advice_ctx *ctx, vkl_advice out[VKL_ADVICE_MAX]) {
    int n = 0;
    if (!c->advice) return 0;
    vkl_advice *a;
    double lr = c->learning_rate;
    if (lr > LR_HI * LR_FAR && (a = add(out, &n, "learning_rate")))
        snprintf(a->text, sizeof(a->text),
                 "learning_rate %g is %.3gx the guide's typical upper end 1e-4 (typical 5e-5 to 1e-4; 2e-4 is "
                 "Unsloth's common default): a high rate trains faster but risks overfitting and an unstable loss",
                 lr, lr / LR_HI);
    else if (lr < LR_LO / LR_FAR && (a = add(out, &n, "learning_rate")))
        snprintf(a->text, sizeof(a->text),
                 "learning_rate %g is %.3gx below the guide's typical lower end 5e-5 (typical 5e-5 to 1e-4; 2e-4 "
                 "is Unsloth's common default): a low rate is stable but may undertrain in this many steps",
                 lr, LR_LO / lr);
    if (ctx->epochs > EPOCHS_MAX + 1e-9 && (a = add(out, &n, "epochs")))
        snprintf(a->text, sizeof(a->text),
                 "%.3g epochs: the guide suggests 1 to 3; more passes over the same data risk overfitting "
                 "(memorizing it) with little gain",
                 ctx->epochs);
    if (!c->use_rslora && (c->lora_alpha < c->r || c->lora_alpha > 2.0 * c->r) && (a = add(out, &n, "lora_alpha")))
        snprintf(a->text, sizeof(a->text),
                 "lora_alpha %g with r %d is outside the guide's r to 2r (%d to %d): the update is scaled by "
                 "alpha / r = %.3g, so it is %s",
                 c->lora_alpha, c->r, c->r, 2 * c->r, c->lora_alpha / c->r,
                 c->lora_alpha < c->r ? "damped (learns slowly)" : "amplified (acts like a higher learning rate)");
    if ((c->r < R_LO || c->r > R_HI) && (a = add(out, &n, "r")))
        snprintf(a->text, sizeof(a->text),
                 "r %d is outside the guide's suggested 8 to 128 (16 or 32 typical): %s", c->r,
                 c->r < R_LO ? "a small rank may not hold what the data has to teach"
                             : "a large rank costs memory and time and may overfit (use_rslora keeps its scale stable)");
    if (ctx->total_steps > 0) {
        int64_t w = vkl_config_warmup_steps(c, ctx->total_steps);
        double lo = WARMUP_LO * (double)ctx->total_steps, hi = WARMUP_HI * (double)ctx->total_steps;
        /* a whole number of steps cannot always land in the band: one step of slack either way */
        if (((double)w < floor(lo) || (double)w > ceil(hi)) && (a = add(out, &n, "warmup")))
            snprintf(a->text, sizeof(a->text),
                     "warmup is %lld of %lld steps (%.1f %%): the guide suggests 5 to 10 %% of the steps (warmup_ratio "
                     "0.05 to 0.1); %s",
                     (long long)w, (long long)ctx->total_steps, 100.0 * (double)w / (double)ctx->total_steps,
                     (double)w < lo ? "too short a ramp lets the first large updates disturb the base model"
                                    : "too long a ramp spends much of the run below the chosen learning rate");
    }
    if ((c->weight_decay < WD_LO || c->weight_decay > WD_HI + 1e-12) && (a = add(out, &n, "weight_decay")))
        snprintf(a->text, sizeof(a->text),
                 "weight_decay %g is far from the guide's starting point 0.01: %s", c->weight_decay,
                 c->weight_decay < WD_LO ? "without it nothing holds the adapter back from overfitting"
                                         : "a large decay pulls the adapter to zero and keeps it from learning");
    bool curve = ctx->has_eval && c->eval_steps > 0;
    if (ctx->epochs > 1.0 + 1e-9 && !curve && (a = add(out, &n, "no_eval")))
        snprintf(a->text, sizeof(a->text),
                 "%.3g epochs with %s: overfitting (eval loss rising while training loss falls) cannot be seen; "
                 "hold out data (eval_ratio 0.05 to 0.1, or eval_path) and set eval_steps",
                 ctx->epochs, ctx->has_eval ? "no evaluation during training (eval_steps is 0)" : "no eval split");
    return n;
}

/* ---- overfitting watch ---- */

void vkl_overfit_init(vkl_overfit_watch *w) {
    memset(w, 0, sizeof(*w));
    w->last_eval = w->last_train = w->eval_at_since = NAN;
}

void vkl_overfit_train_loss(vkl_overfit_watch *w, double loss) {
    if (!isfinite(loss)) return;
    w->train_sum += loss;
    w->train_n++;
}

bool vkl_overfit_eval(vkl_overfit_watch *w, int64_t step, double eval_loss) {
    double train = w->train_n ? w->train_sum / (double)w->train_n : NAN;
    w->train_sum = 0;
    w->train_n = 0;
    bool fire = false;
    if (isfinite(eval_loss) && isfinite(train) && isfinite(w->last_eval) && isfinite(w->last_train) &&
        eval_loss > w->last_eval && train < w->last_train) {
        if (w->rising == 0) {
            w->since_step = w->step_last;
            w->eval_at_since = w->last_eval;
        }
        w->rising++;
        if (w->rising == VKL_OVERFIT_EVALS) fire = w->fired = true;
    } else {
        w->rising = 0;
    }
    w->last_eval = eval_loss;
    w->last_train = train;
    w->step_last = step;
    return fire;
}

void vkl_overfit_message(const vkl_overfit_watch *w, int64_t step, char *buf, size_t n) {
    snprintf(buf, n,
             "eval loss has risen for %d evaluations in a row (%.4f at step %lld -> %.4f at step %lld) while the "
             "training loss fell: the adapter is starting to overfit. Fewer epochs, a lower learning_rate or a "
             "higher weight_decay (or lora_dropout 0.1) should help (the run continues)",
             w->rising, w->eval_at_since, (long long)w->since_step, w->last_eval, (long long)step);
}

/* ---- sweeps ---- */

void vkl_sweep_schedule(size_t n_runs, const bool *done, size_t n_dev, int *dev_of_run) {
    size_t k = 0;
    for (size_t i = 0; i < n_runs; i++) {
        if (done && done[i]) {
            dev_of_run[i] = -1;
            continue;
        }
        dev_of_run[i] = n_dev ? (int)(k++ % n_dev) : -1;
    }
}

size_t vkl_sweep_split_values(const char *list, char ***items) {
    *items = NULL;
    size_t n = 0, cap = 0;
    int depth = 0;
    bool quote = false;
    const char *start = list;
    for (const char *p = list;; p++) {
        char ch = *p;
        if (quote) {
            if (ch == '\\' && p[1]) p++;
            else if (ch == '"') quote = false;
            else if (!ch) goto bad;
            continue;
        }
        if (ch == '"') quote = true;
        else if (ch == '[' || ch == '{') depth++;
        else if ((ch == ']' || ch == '}') && --depth < 0) goto bad;
        else if ((ch == ',' && depth == 0) || !ch) {
            if (!ch && depth) goto bad;
            size_t len = (size_t)(p - start);
            if (!len) goto bad;
            if (n == cap) *items = vkl_realloc(*items, (cap = cap ? cap * 2 : 8) * sizeof(char *));
            (*items)[n] = vkl_malloc(len + 1);
            memcpy((*items)[n], start, len);
            (*items)[n++][len] = 0;
            start = p + 1;
            if (!ch) return n;
        }
    }
bad:
    for (size_t i = 0; i < n; i++) free((*items)[i]);
    free(*items);
    *items = NULL;
    return 0;
}

void vkl_sweep_run_name(const char *const *knobs, const char *const *values, size_t n, char *out, size_t cap) {
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && used + 1 < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s=%s", i ? "," : "", knobs[i], values[i]);
    if (used >= cap) used = cap - 1;
    for (size_t i = 0; i < used; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (ch < 0x20 || strchr("/\\:*?\"<>| '[]{}", ch)) out[i] = '_';
    }
    if (!strcmp(out, ".") || !strcmp(out, "..")) out[0] = '_';
}
