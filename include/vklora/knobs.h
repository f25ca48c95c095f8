/* Learning the knobs: a run's metrics.jsonl read back, loss curves drawn as SVG (src/plot.c), the LoRA guide's
 * advice on a config and the overfitting watch (src/advice.c), and the sweep's grid and device schedule. */
#ifndef VKLORA_KNOBS_H
#define VKLORA_KNOBS_H

#include <stdio.h>

#include "vklora/config.h"

/* ---- metrics.jsonl ---- */

/* The metrics a run logs, one entry per line (per optimizer step), in file order. A value that is missing, null
 * or not a number is NAN (eval_loss is null on the steps without an evaluation). */
typedef enum {
    VKL_METRIC_LOSS = 0,
    VKL_METRIC_EVAL_LOSS,
    VKL_METRIC_LR,
    VKL_METRIC_GRAD_NORM,
    VKL_METRIC_TOKENS_PER_SECOND,
    VKL_METRIC_DEVICE_BYTES,
    VKL_METRIC_COUNT
} vkl_metric;
extern const char *const vkl_metric_names[VKL_METRIC_COUNT]; /* "loss", "eval_loss", ... as in metrics.jsonl */

typedef struct vkl_metrics {
    size_t n;
    double *step;                     /* NAN when a line has none */
    double *v[VKL_METRIC_COUNT];      /* v[metric][i] */
    size_t skipped;                   /* lines that were not a JSON object (a torn last line, garbage) */
} vkl_metrics;

/* Read RUN_DIR/metrics.jsonl or a metrics file itself. A missing file is VKL_ERR_INPUT; lines that do not parse
 * are counted in `skipped`, never fatal. */
vkl_status vkl_metrics_read(const char *path, vkl_metrics *m, vkl_err *err);
void vkl_metrics_free(vkl_metrics *m);
/* Metric by name ("loss", "eval_loss", "lr", "grad_norm", ...), or -1. */
int vkl_metric_from_name(const char *name);

/* ---- SVG line charts ---- */

typedef struct vkl_plot_series {
    const char *label;    /* legend text (escaped when written) */
    size_t n;
    const double *x, *y;  /* a point with a non-finite x or y is a gap in the line */
} vkl_plot_series;

typedef struct vkl_plot {
    const char *title, *x_label, *y_label;
    const vkl_plot_series *series;
    size_t n_series;
    int mark_series;      /* >= 0: mark this series' point mark_index (the best run) with a ring and a legend line */
    size_t mark_index;
} vkl_plot;

/* The chart as a standalone SVG document (malloc'd, NUL-terminated). Every series is a
 * <g class="series" data-label="..."> holding one <polyline> per unbroken segment; each polyline carries its data
 * as data-points="x,y x,y ..." (%.9g) next to the pixel coordinates, so tools and tests can read the values back.
 * Empty series, a single point, NaN and constant values all give a valid document. */
char *vkl_plot_svg(const vkl_plot *p);
/* Write it atomically to `path`. */
vkl_status vkl_plot_write_svg(const vkl_plot *p, const char *path, vkl_err *err);
/* The same chart as PNG through cairo, atomically; VKL_ERR_INPUT naming the package when built without cairo. */
vkl_status vkl_plot_write_png(const vkl_plot *p, const char *path, vkl_err *err);
bool vkl_plot_png_available(void);
/* RUN_DIR/curves.svg from RUN_DIR/metrics.jsonl: training loss and eval loss against step (what plot_every
 * rewrites during training). */
vkl_status vkl_plot_run_curves(const char *run_dir, vkl_err *err);

/* ---- the LoRA guide's advice ---- */

/* What a run looks like beyond its config. */
typedef struct vkl_advice_ctx {
    int64_t total_steps;   /* optimizer steps of the run */
    double epochs;         /* passes over the training data the run makes (from max_steps when that is set) */
    bool has_eval;         /* an eval split exists (eval_path or eval_ratio > 0) */
} vkl_advice_ctx;

typedef struct vkl_advice {
    const char *id;        /* stable name: "learning_rate", "epochs", "lora_alpha", "r", "warmup", "weight_decay",
                              "no_eval" */
    char text[400];        /* one line, without the "advice: " prefix */
} vkl_advice;
#define VKL_ADVICE_MAX 8

/* The guide's notes on this config (none when c->advice is false). Returns how many were written to out. */
int vkl_advice_check(const vkl_config *c, const vkl_advice_ctx *ctx, vkl_advice out[VKL_ADVICE_MAX]);

/* The overfitting watch: eval loss rising for VKL_OVERFIT_EVALS evaluations in a row while the training loss
 * (mean over the steps since the previous evaluation) falls. */
#define VKL_OVERFIT_EVALS 2
typedef struct vkl_overfit_watch {
    double train_sum;      /* training loss summed since the last evaluation */
    int64_t train_n;
    double last_eval, last_train; /* at the previous evaluation (NAN before the first) */
    int rising;            /* consecutive evaluations with eval up and train down */
    int64_t step_last;     /* step of the previous evaluation */
    int64_t since_step;    /* step of the evaluation before the rise began */
    double eval_at_since;  /* its eval loss */
    bool fired;            /* the condition has held at least once */
} vkl_overfit_watch;
void vkl_overfit_init(vkl_overfit_watch *w);
void vkl_overfit_train_loss(vkl_overfit_watch *w, double loss);
/* Feed an evaluation; true exactly when the condition starts holding (the caller prints one line then). */
bool vkl_overfit_eval(vkl_overfit_watch *w, int64_t step, double eval_loss);
/* The line printed then (without "advice: "). */
void vkl_overfit_message(const vkl_overfit_watch *w, int64_t step, char *buf, size_t n);

/* ---- sweeps ---- */

/* Assign the runs still to do to devices: dev_of_run[i] = the index into the n_dev devices that runs i, or -1 for a
 * run that is done. Pending runs go round-robin in order, so each device gets its share and runs them one at a time. */
void vkl_sweep_schedule(size_t n_runs, const bool *done, size_t n_dev, int *dev_of_run);
/* Split a --grid value list on the commas outside brackets, braces and quotes ("1e-4,2e-4", "[\"q\",\"v\"],[\"q\"]").
 * Returns the count (0 on an empty item or unbalanced brackets); items are malloc'd. */
size_t vkl_sweep_split_values(const char *list, char ***items);
/* A run directory name for knob=value pairs: "learning_rate=1e-4,r=8", with characters that are not safe in a file
 * name on any OS replaced by '_'. */
void vkl_sweep_run_name(const char *const *knobs, const char *const *values, size_t n, char *out, size_t cap);

#endif
