/* A run's metrics.jsonl read back, and line charts of it written as SVG by hand (no library): several runs on one
 * chart with a legend, labelled axes, gaps for NaN, every value also kept in data-points so it can be read back. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if VKL_HAVE_CAIRO
#include <cairo.h>
#endif

#include "platform.h"
#include "vklora/knobs.h"
#include "vklora/safetensors.h"

const char *const vkl_metric_names[VKL_METRIC_COUNT] = {"loss",      "eval_loss",         "lr",
                                                         "grad_norm", "tokens_per_second", "device_bytes"};

int vkl_metric_from_name(const char *name) {
    for (int i = 0; i < VKL_METRIC_COUNT; i++)
        if (!strcmp(name, vkl_metric_names[i])) return i;
    return -1;
}

void vkl_metrics_free(vkl_metrics *m) {
    free(m->step);
    for (int i = 0; i < VKL_METRIC_COUNT; i++) free(m->v[i]);
    memset(m, 0, sizeof(*m));
}

static double num_or_nan(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : NAN;
}

vkl_status vkl_metrics_read(const char *path, vkl_metrics *m, vkl_err *err) {
    memset(m, 0, sizeof(*m));
    char file[4200];
    if (vkl_os_path_kind(path) == VKL_PATH_DIR) snprintf(file, sizeof(file), "%s/metrics.jsonl", path);
    else snprintf(file, sizeof(file), "%s", path);
    FILE *f = vkl_os_fopen(file, "rb"); /* UTF-8 paths on Windows too */
    if (!f) return vkl_err_set(err, VKL_ERR_INPUT, "%s: cannot open (no metrics yet? a run writes one line per step)", file);
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    while (vkl_os_getline(&line, &cap, f) >= 0) {
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            m->skipped++;
            continue;
        }
        if (m->n == alloc) {
            alloc = alloc ? alloc * 2 : 64;
            m->step = vkl_realloc(m->step, alloc * sizeof(double));
            for (int i = 0; i < VKL_METRIC_COUNT; i++) m->v[i] = vkl_realloc(m->v[i], alloc * sizeof(double));
        }
        m->step[m->n] = num_or_nan(o, "step");
        for (int i = 0; i < VKL_METRIC_COUNT; i++) m->v[i][m->n] = num_or_nan(o, vkl_metric_names[i]);
        m->n++;
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return VKL_OK;
}

/* ---- a growing string ---- */

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) VKL_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int k = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->p && (size_t)k < room) {
            b->len += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->p = vkl_realloc(b->p, b->cap);
    }
}

/* Text as XML character data / attribute value: markup characters escaped, control characters and bytes that are
 * not UTF-8 replaced by '?' (XML 1.0 allows neither), so any label gives a well-formed document. */
static void sb_xml(sbuf *b, const char *s) {
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    while (*u) {
        unsigned c = *u;
        if (c == '&') sb_printf(b, "&amp;");
        else if (c == '<') sb_printf(b, "&lt;");
        else if (c == '>') sb_printf(b, "&gt;");
        else if (c == '"') sb_printf(b, "&quot;");
        else if (c == '\'') sb_printf(b, "&#39;");
        else if (c < 0x20) sb_printf(b, "?");
        else if (c < 0x80) sb_printf(b, "%c", (char)c);
        else {
            int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
            bool ok = len > 0 && !(c >= 0xF5);
            for (int i = 1; ok && i < len; i++) ok = (u[i] & 0xC0) == 0x80;
            if (ok && len == 3 && c == 0xE0 && u[1] < 0xA0) ok = false;        /* overlong */
            if (ok && len == 3 && c == 0xED && u[1] >= 0xA0) ok = false;       /* surrogates */
            if (ok && len == 4 && c == 0xF0 && u[1] < 0x90) ok = false;        /* overlong */
            if (ok && len == 4 && c == 0xF4 && u[1] >= 0x90) ok = false;       /* > U+10FFFF */
            if (ok && len == 3 && c == 0xEF && u[1] == 0xBF && (u[2] == 0xBE || u[2] == 0xBF)) ok = false; /* U+FFFE/F */
            if (!ok) {
                sb_printf(b, "?");
            } else {
                sb_printf(b, "%.*s", len, (const char *)u);
                u += len - 1;
            }
        }
        u++;
    }
}

/* A legend entry fits the space right of the plot: a long label is cut at a character boundary and ends in "...";
 * the whole label stays in data-label and in the entry's <title> (a tooltip). */
#define LEGEND_CHARS 28
static void sb_legend_label(sbuf *b, const char *label) {
    const char *s = label ? label : "";
    size_t chars = 0, i = 0;
    while (s[i] && chars < LEGEND_CHARS) {
        i++;
        while ((s[i] & 0xC0) == 0x80) i++; /* continuation bytes of this character */
        chars++;
    }
    if (!s[i]) {
        sb_xml(b, s);
        return;
    }
    char *cut = vkl_malloc(i + 1);
    memcpy(cut, s, i);
    cut[i] = 0;
    sb_xml(b, cut);
    sb_printf(b, "...");
    free(cut);
}

/* A "nice" tick step (1, 2 or 5 x 10^k) giving about `want` ticks over span. */
static double nice_step(double span, int want) {
    double raw = span / want, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* The chart's geometry, shared by the SVG and PNG writers: canvas, plot area, data ranges and tick steps. */
typedef struct {
    double W, H, L, R, T, B, pw, ph;
    double x0, x1, y0, y1, xs, ys;
    size_t total; /* finite points */
} layout;

static void plot_layout(const vkl_plot *p, layout *g) {
    *g = (layout){.W = 860, .H = 500, .L = 78, .R = 250, .T = 44, .B = 56}; /* R holds the legend */
    g->pw = g->W - g->L - g->R;
    g->ph = g->H - g->T - g->B;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    size_t total = 0;
    for (size_t s = 0; s < p->n_series; s++)
        for (size_t i = 0; i < p->series[s].n; i++) {
            double x = p->series[s].x[i], y = p->series[s].y[i];
            if (!isfinite(x) || !isfinite(y)) continue;
            x0 = fmin(x0, x);
            x1 = fmax(x1, x);
            y0 = fmin(y0, y);
            y1 = fmax(y1, y);
            total++;
        }
    if (!total) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (x1 - x0 <= 0) x0 -= 1, x1 += 1;
    if (y1 - y0 <= 0) {
        double d = fabs(y0) > 0 ? fabs(y0) * 0.1 : 1;
        y0 -= d, y1 += d;
    } else {
        double pad = (y1 - y0) * 0.05;
        y0 -= pad, y1 += pad;
    }
    g->x0 = x0, g->x1 = x1, g->y0 = y0, g->y1 = y1, g->total = total;
    g->xs = nice_step(x1 - x0, 8);
    g->ys = nice_step(y1 - y0, 6);
}

char *vkl_plot_svg(const vkl_plot *p) {
    layout g;
    plot_layout(p, &g);
    const double W = g.W, H = g.H, L = g.L, T = g.T, pw = g.pw, ph = g.ph;
    const double x0 = g.x0, x1 = g.x1, y0 = g.y0, y1 = g.y1;
    const size_t total = g.total;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (T + ph - ((y) - y0) / (y1 - y0) * ph)
    sbuf b = {0};
    sb_printf(&b,
              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
              "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
              "font-family=\"sans-serif\" font-size=\"12\">\n"
              "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text class=\"title\" x=\"%.1f\" y=\"24\" "
              "text-anchor=\"middle\" font-size=\"15\">",
              W, H, W, H, L + pw / 2);
    sb_xml(&b, p->title);
    sb_printf(&b, "</text>\n");
    /* grid and ticks */
    const double xs = g.xs, ys = g.ys;
    sb_printf(&b, "<g class=\"axes\" stroke=\"#ddd\" stroke-width=\"1\">\n");
    for (double v = ceil(x0 / xs) * xs; v <= x1 + xs * 1e-9; v += xs)
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", PX(v), T, PX(v), T + ph);
    for (double v = ceil(y0 / ys) * ys; v <= y1 + ys * 1e-9; v += ys)
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", L, PY(v), L + pw, PY(v));
    sb_printf(&b, "</g>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", L,
              T, pw, ph);
    sb_printf(&b, "<g class=\"ticks\" fill=\"#333\">\n");
    for (double v = ceil(x0 / xs) * xs; v <= x1 + xs * 1e-9; v += xs)
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.6g</text>\n", PX(v), T + ph + 16,
                  fabs(v) < xs * 1e-6 ? 0.0 : v);
    for (double v = ceil(y0 / ys) * ys; v <= y1 + ys * 1e-9; v += ys)
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.6g</text>\n", L - 6, PY(v) + 4,
                  fabs(v) < ys * 1e-6 ? 0.0 : v);
    sb_printf(&b, "</g>\n<text class=\"xlabel\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", L + pw / 2, H - 14);
    sb_xml(&b, p->x_label);
    sb_printf(&b, "</text>\n<text class=\"ylabel\" transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">",
              T + ph / 2);
    sb_xml(&b, p->y_label);
    sb_printf(&b, "</text>\n");
    if (!total)
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n", L + pw / 2,
                  T + ph / 2);
    /* curves */
    for (size_t s = 0; s < p->n_series; s++) {
        const vkl_plot_series *ser = &p->series[s];
        const char *col = palette[s % VKL_ARRAY_LEN(palette)];
        sb_printf(&b, "<g class=\"series\" data-label=\"");
        sb_xml(&b, ser->label);
        sb_printf(&b, "\" stroke=\"%s\" fill=\"none\" stroke-width=\"1.8\">\n", col);
        size_t i = 0;
        while (i < ser->n) {
            while (i < ser->n && !(isfinite(ser->x[i]) && isfinite(ser->y[i]))) i++;
            size_t j = i;
            while (j < ser->n && isfinite(ser->x[j]) && isfinite(ser->y[j])) j++;
            if (j > i) {
                if (j - i == 1) /* a lone point has no line: a dot shows it */
                    sb_printf(&b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n", PX(ser->x[i]),
                              PY(ser->y[i]), col);
                sb_printf(&b, "<polyline points=\"");
                for (size_t k = i; k < j; k++) sb_printf(&b, "%s%.2f,%.2f", k > i ? " " : "", PX(ser->x[k]), PY(ser->y[k]));
                sb_printf(&b, "\" data-points=\"");
                for (size_t k = i; k < j; k++) sb_printf(&b, "%s%.9g,%.9g", k > i ? " " : "", ser->x[k], ser->y[k]);
                sb_printf(&b, "\"/>\n");
            }
            i = j;
        }
        sb_printf(&b, "</g>\n");
    }
    /* legend */
    double ly = T + 8;
    sb_printf(&b, "<g class=\"legend\">\n");
    for (size_t s = 0; s < p->n_series; s++, ly += 18) {
        const char *col = palette[s % VKL_ARRAY_LEN(palette)];
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>",
                  L + pw + 14, ly, L + pw + 36, ly, col);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\"><title>", L + pw + 42, ly + 4);
        sb_xml(&b, p->series[s].label);
        sb_printf(&b, "</title>");
        sb_legend_label(&b, p->series[s].label);
        sb_printf(&b, "%s</text>\n", p->mark_series == (int)s ? " (best)" : "");
    }
    sb_printf(&b, "</g>\n");
    if (p->mark_series >= 0 && (size_t)p->mark_series < p->n_series) {
        const vkl_plot_series *ser = &p->series[p->mark_series];
        if (p->mark_index < ser->n && isfinite(ser->x[p->mark_index]) && isfinite(ser->y[p->mark_index])) {
            double mx = ser->x[p->mark_index], my = ser->y[p->mark_index];
            sb_printf(&b,
                      "<g class=\"best\" data-x=\"%.9g\" data-y=\"%.9g\"><circle cx=\"%.2f\" cy=\"%.2f\" r=\"7\" "
                      "fill=\"none\" stroke=\"black\" stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\">best: ",
                      mx, my, PX(mx), PY(my), L + pw + 14, ly + 14);
            sb_legend_label(&b, ser->label);
            sb_printf(&b, "</text><text x=\"%.1f\" y=\"%.1f\">%.4g at step %.0f</text></g>\n", L + pw + 14, ly + 30, my,
                      mx);
        }
    }
    sb_printf(&b, "</svg>\n");
#undef PX
#undef PY
    return b.p;
}

vkl_status vkl_plot_write_svg(const vkl_plot *p, const char *path, vkl_err *err) {
    char *svg = vkl_plot_svg(p);
    vkl_status st = vkl_write_file_atomic(path, svg, strlen(svg), "plot", err);
    free(svg);
    return st;
}

bool vkl_plot_png_available(void) { return VKL_HAVE_CAIRO != 0; }

#if VKL_HAVE_CAIRO
static void set_hex(cairo_t *cr, const char *hex) {
    unsigned v = (unsigned)strtoul(hex + 1, NULL, 16);
    cairo_set_source_rgb(cr, ((v >> 16) & 255) / 255.0, ((v >> 8) & 255) / 255.0, (v & 255) / 255.0);
}

/* Text anchored like SVG's text-anchor: 0 start, 1 middle, 2 end. */
static void show_text(cairo_t *cr, double x, double y, int anchor, const char *text) {
    cairo_text_extents_t e;
    cairo_text_extents(cr, text, &e);
    cairo_move_to(cr, x - (anchor == 1 ? e.x_advance / 2 : anchor == 2 ? e.x_advance : 0), y);
    cairo_show_text(cr, text);
}

/* The legend text as the SVG shows it (cut to LEGEND_CHARS characters). */
static void legend_text(const char *label, const char *suffix, char *out, size_t cap) {
    const char *s = label ? label : "";
    size_t chars = 0, i = 0;
    while (s[i] && chars < LEGEND_CHARS) {
        i++;
        while ((s[i] & 0xC0) == 0x80) i++;
        chars++;
    }
    snprintf(out, cap, "%.*s%s%s", (int)i, s, s[i] ? "..." : "", suffix);
}

/* The same chart as vkl_plot_svg, drawn by cairo into a PNG. */
vkl_status vkl_plot_write_png(const vkl_plot *p, const char *path, vkl_err *err) {
    layout g;
    plot_layout(p, &g);
    const double L = g.L, T = g.T, pw = g.pw, ph = g.ph, x0 = g.x0, x1 = g.x1, y0 = g.y0, y1 = g.y1;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (T + ph - ((y) - y0) / (y1 - y0) * ph)
    cairo_surface_t *cs = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)g.W, (int)g.H);
    cairo_t *cr = cairo_create(cs);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    char buf[600];
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_font_size(cr, 15);
    show_text(cr, L + pw / 2, 24, 1, p->title ? p->title : "");
    cairo_set_font_size(cr, 12);
    /* grid, frame, ticks */
    set_hex(cr, "#dddddd");
    cairo_set_line_width(cr, 1);
    for (double v = ceil(x0 / g.xs) * g.xs; v <= x1 + g.xs * 1e-9; v += g.xs) {
        cairo_move_to(cr, PX(v), T);
        cairo_line_to(cr, PX(v), T + ph);
    }
    for (double v = ceil(y0 / g.ys) * g.ys; v <= y1 + g.ys * 1e-9; v += g.ys) {
        cairo_move_to(cr, L, PY(v));
        cairo_line_to(cr, L + pw, PY(v));
    }
    cairo_stroke(cr);
    set_hex(cr, "#333333");
    cairo_rectangle(cr, L, T, pw, ph);
    cairo_stroke(cr);
    for (double v = ceil(x0 / g.xs) * g.xs; v <= x1 + g.xs * 1e-9; v += g.xs) {
        snprintf(buf, sizeof(buf), "%.6g", fabs(v) < g.xs * 1e-6 ? 0.0 : v);
        show_text(cr, PX(v), T + ph + 16, 1, buf);
    }
    for (double v = ceil(y0 / g.ys) * g.ys; v <= y1 + g.ys * 1e-9; v += g.ys) {
        snprintf(buf, sizeof(buf), "%.6g", fabs(v) < g.ys * 1e-6 ? 0.0 : v);
        show_text(cr, L - 6, PY(v) + 4, 2, buf);
    }
    show_text(cr, L + pw / 2, g.H - 14, 1, p->x_label ? p->x_label : "");
    cairo_save(cr);
    cairo_translate(cr, 18, T + ph / 2);
    cairo_rotate(cr, -M_PI / 2);
    show_text(cr, 0, 0, 1, p->y_label ? p->y_label : "");
    cairo_restore(cr);
    if (!g.total) {
        set_hex(cr, "#888888");
        show_text(cr, L + pw / 2, T + ph / 2, 1, "no data");
    }
    /* curves: a gap at every non-finite point, a dot for a lone one */
    cairo_set_line_width(cr, 1.8);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (size_t s = 0; s < p->n_series; s++) {
        const vkl_plot_series *ser = &p->series[s];
        set_hex(cr, palette[s % VKL_ARRAY_LEN(palette)]);
        size_t i = 0;
        while (i < ser->n) {
            while (i < ser->n && !(isfinite(ser->x[i]) && isfinite(ser->y[i]))) i++;
            size_t j = i;
            while (j < ser->n && isfinite(ser->x[j]) && isfinite(ser->y[j])) j++;
            if (j - i == 1) {
                cairo_arc(cr, PX(ser->x[i]), PY(ser->y[i]), 3, 0, 2 * M_PI);
                cairo_fill(cr);
            } else if (j > i) {
                cairo_move_to(cr, PX(ser->x[i]), PY(ser->y[i]));
                for (size_t k = i + 1; k < j; k++) cairo_line_to(cr, PX(ser->x[k]), PY(ser->y[k]));
                cairo_stroke(cr);
            }
            i = j;
        }
    }
    /* legend and the best mark */
    double ly = T + 8;
    for (size_t s = 0; s < p->n_series; s++, ly += 18) {
        set_hex(cr, palette[s % VKL_ARRAY_LEN(palette)]);
        cairo_set_line_width(cr, 3);
        cairo_move_to(cr, L + pw + 14, ly);
        cairo_line_to(cr, L + pw + 36, ly);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        legend_text(p->series[s].label, p->mark_series == (int)s ? " (best)" : "", buf, sizeof(buf));
        show_text(cr, L + pw + 42, ly + 4, 0, buf);
    }
    if (p->mark_series >= 0 && (size_t)p->mark_series < p->n_series) {
        const vkl_plot_series *ser = &p->series[p->mark_series];
        if (p->mark_index < ser->n && isfinite(ser->x[p->mark_index]) && isfinite(ser->y[p->mark_index])) {
            double mx = ser->x[p->mark_index], my = ser->y[p->mark_index];
            cairo_set_source_rgb(cr, 0, 0, 0);
            cairo_set_line_width(cr, 2);
            cairo_arc(cr, PX(mx), PY(my), 7, 0, 2 * M_PI);
            cairo_stroke(cr);
            legend_text(ser->label, "", buf, sizeof(buf));
            char line[700];
            snprintf(line, sizeof(line), "best: %s", buf);
            show_text(cr, L + pw + 14, ly + 14, 0, line);
            snprintf(line, sizeof(line), "%.4g at step %.0f", my, mx);
            show_text(cr, L + pw + 14, ly + 30, 0, line);
        }
    }
#undef PX
#undef PY
    cairo_destroy(cr);
    /* atomically: a temporary next to the target, then renamed over it */
    char tmp[4300];
    snprintf(tmp, sizeof(tmp), "%s.tmp-png", path);
    cairo_status_t cst = cairo_surface_write_to_png(cs, tmp);
    cairo_surface_destroy(cs);
    if (cst != CAIRO_STATUS_SUCCESS) {
        vkl_os_remove(tmp);
        return vkl_err_set(err, VKL_ERR_RUNTIME, "plot: cannot write %s: %s", path, cairo_status_to_string(cst));
    }
    if (!vkl_os_replace(tmp, path)) {
        vkl_os_remove(tmp);
        return vkl_err_set(err, VKL_ERR_RUNTIME, "plot: cannot rename %s to %s", tmp, path);
    }
    return VKL_OK;
}
#else
vkl_status vkl_plot_write_png(const vkl_plot *p, const char *path, vkl_err *err) {
    (void)p;
    return vkl_err_set(err, VKL_ERR_INPUT,
                       "plot: %s: this build writes SVG only (PNG needs cairo at build time: apt-get install "
                       "libcairo2-dev, then reconfigure; or convert the SVG: rsvg-convert -o %s FILE.svg)",
                       path, path);
}
#endif

vkl_status vkl_plot_run_curves(const char *run_dir, vkl_err *err) {
    vkl_metrics m;
    vkl_status st = vkl_metrics_read(run_dir, &m, err);
    if (st) return st;
    /* eval_loss only where it was measured, so its line joins the evaluations */
    double *ex = vkl_malloc((m.n + 1) * sizeof(double)), *ey = vkl_malloc((m.n + 1) * sizeof(double));
    size_t ne = 0;
    for (size_t i = 0; i < m.n; i++)
        if (isfinite(m.v[VKL_METRIC_EVAL_LOSS][i])) ex[ne] = m.step[i], ey[ne++] = m.v[VKL_METRIC_EVAL_LOSS][i];
    vkl_plot_series s[2] = {{"training loss", m.n, m.step, m.v[VKL_METRIC_LOSS]}, {"eval loss", ne, ex, ey}};
    vkl_plot p = {.title = run_dir, .x_label = "step", .y_label = "loss", .series = s, .n_series = ne ? 2 : 1,
                  .mark_series = -1};
    char path[4200];
    snprintf(path, sizeof(path), "%s/curves.svg", run_dir);
    st = vkl_plot_write_svg(&p, path, err);
    /* a page that reloads the chart, for a browser tab left open on a running job */
    snprintf(path, sizeof(path), "%s/curves.html", run_dir);
    if (!st && vkl_os_path_kind(path) == VKL_PATH_NONE) {
        static const char page[] = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" "
                                   "content=\"15\"><title>vklora curves</title></head>\n<body><img src=\"curves.svg\" "
                                   "alt=\"loss curves\"></body></html>\n";
        st = vkl_write_file_atomic(path, page, sizeof(page) - 1, "plot", err);
    }
    free(ex);
    free(ey);
    vkl_metrics_free(&m);
    return st;
}
