/* `vklora plot RUN_DIR...`: one metric of several runs against step on one chart, as SVG (written by our own code,
 * src/plot.c), from each run's metrics.jsonl. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "platform.h"
#include "vklora/knobs.h"

static const char *HELP =
    "usage: vklora plot RUN_DIR... [--out FILE.svg] [--metric loss|eval_loss|lr|grad_norm|tokens_per_second|"
    "device_bytes] [--title T] [--json]\n\n"
    "Draws one metric against step from each run's metrics.jsonl (RUN_DIR, or a metrics file itself), every run\n"
    "on the same chart with a legend (the run directory's name) and labelled axes. A step whose value is NaN or\n"
    "missing is a gap in its line; eval_loss joins the evaluations. Default: --metric loss --out curves.svg.\n"
    "--out FILE.png draws the same chart as PNG when the build has cairo (libcairo2-dev; else an error says so).\n\n"
    "  --out FILE      where to write the chart, .svg or .png (written atomically: a browser tab can reload it)\n"
    "  --metric NAME   which metrics.jsonl field to draw\n"
    "  --title T       chart title (default: the metric's name)\n"
    "  --json          print {\"out\": ..., \"runs\": [{\"dir\", \"points\", \"skipped_lines\"}]} on stdout\n";

/* The legend name of a run: its directory's last component (the parent's for a metrics.jsonl path). */
static void base_name(const char *path, char *buf, size_t cap) {
    size_t n = strlen(path);
    for (int pass = 0; pass < 2; pass++) {
        while (n > 1 && vkl_os_is_sep(path[n - 1])) n--;
        size_t s = n;
        while (s > 0 && !vkl_os_is_sep(path[s - 1])) s--;
        snprintf(buf, cap, "%.*s", (int)(n - s), path + s);
        if (pass || strcmp(buf, "metrics.jsonl") || s == 0) return;
        n = s;
    }
}

int vkl_cmd_plot(int argc, char **argv) {
    const char *out = "curves.svg", *metric_name = "loss", *title = NULL;
    bool json = false;
    const char **runs = vkl_calloc((size_t)argc + 1, sizeof(char *));
    size_t n_runs = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (vkl_cli_is_help(a)) {
            fputs(HELP, stdout);
            free(runs);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--out") || !strcmp(a, "--metric") || !strcmp(a, "--title")) {
            if (i + 1 >= argc) {
                free(runs);
                return vkl_cli_usage("plot", "%s needs a value", a);
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--out")) out = v;
            else if (!strcmp(a, "--metric")) metric_name = v;
            else title = v;
        } else if (a[0] == '-' && a[1]) {
            free(runs);
            return vkl_cli_usage("plot", "unknown option '%s'", a);
        } else {
            runs[n_runs++] = a;
        }
    }
    int metric = vkl_metric_from_name(metric_name);
    if (!n_runs) rc = vkl_cli_usage("plot", "at least one RUN_DIR is required");
    else if (metric < 0)
        rc = vkl_cli_usage("plot", "--metric %s: expected loss, eval_loss, lr, grad_norm, tokens_per_second or "
                                   "device_bytes", metric_name);
    if (rc) {
        free(runs);
        return rc;
    }
    vkl_metrics *m = vkl_calloc(n_runs, sizeof(vkl_metrics));
    vkl_plot_series *s = vkl_calloc(n_runs, sizeof(vkl_plot_series));
    double **xs = vkl_calloc(n_runs, sizeof(double *)), **ys = vkl_calloc(n_runs, sizeof(double *));
    char (*labels)[256] = vkl_calloc(n_runs, 256);
    vkl_err err = {0};
    cJSON *doc = json ? cJSON_CreateObject() : NULL, *jr = json ? cJSON_AddArrayToObject(doc, "runs") : NULL;
    for (size_t r = 0; r < n_runs; r++) {
        if (vkl_metrics_read(runs[r], &m[r], &err)) {
            rc = vkl_cli_fail("plot", err.status, "%s", err.msg);
            goto done;
        }
        /* only the steps that have the metric, so eval_loss joins its evaluations; NaN stays in as a gap */
        xs[r] = vkl_malloc((m[r].n + 1) * sizeof(double));
        ys[r] = vkl_malloc((m[r].n + 1) * sizeof(double));
        size_t k = 0;
        for (size_t i = 0; i < m[r].n; i++) {
            double v = m[r].v[metric][i];
            if (metric == VKL_METRIC_EVAL_LOSS && !isfinite(v)) continue;
            xs[r][k] = m[r].step[i];
            ys[r][k++] = v;
        }
        base_name(runs[r], labels[r], sizeof(labels[r]));
        s[r] = (vkl_plot_series){labels[r], k, xs[r], ys[r]};
        if (m[r].skipped) fprintf(stderr, "vklora plot: %s: %zu line(s) of metrics.jsonl skipped (not JSON)\n", runs[r],
                                  m[r].skipped);
        if (jr) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "dir", runs[r]);
            cJSON_AddNumberToObject(o, "points", (double)k);
            cJSON_AddNumberToObject(o, "skipped_lines", (double)m[r].skipped);
            cJSON_AddItemToArray(jr, o);
        }
    }
    vkl_plot p = {.title = title ? title : metric_name, .x_label = "step", .y_label = metric_name, .series = s,
                  .n_series = n_runs, .mark_series = -1};
    size_t olen = strlen(out);
    const char *ext = olen >= 4 ? out + olen - 4 : "";
    bool png = ext[0] == '.' && (ext[1] | 32) == 'p' && (ext[2] | 32) == 'n' && (ext[3] | 32) == 'g';
    if (png ? vkl_plot_write_png(&p, out, &err) : vkl_plot_write_svg(&p, out, &err)) {
        rc = vkl_cli_fail("plot", err.status, "%s", err.msg);
        goto done;
    }
    if (doc) {
        cJSON_AddStringToObject(doc, "out", out);
        vkl_cli_print_json(doc);
        doc = NULL;
    } else {
        printf("wrote %s (%s of %zu run%s)\n", out, metric_name, n_runs, n_runs == 1 ? "" : "s");
    }
done:
    cJSON_Delete(doc);
    for (size_t r = 0; r < n_runs; r++) {
        vkl_metrics_free(&m[r]);
        free(xs[r]);
        free(ys[r]);
    }
    free(m);
    free(s);
    free(xs);
    free(ys);
    free(labels);
    free(runs);
    return rc;
}
