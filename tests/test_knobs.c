/* Learning the knobs: vklora explain (from the config table), the LoRA guide's advice lines and the overfitting
 * watch, vklora plot on awkward metrics files, and vklora sweep (2x2 on stories260K: tables, curves, skip, resume). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "vklora/config.h"
#include "vklora/knobs.h"

/* ---- helpers ---- */

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    fputs(text, f);
    fclose(f);
    return 0;
}

/* The SVG parsed as XML by Python's xml.etree (a real parser, so a malformed document fails): a JSON object
 * {label: [[x, y], ...]} from each <g class="series">'s polylines' data-points, plus "_best": [x, y] when marked. */
static cJSON *svg_series(const char *svg_path) {
    char py[600], cmd[2000], *out = NULL, *err = NULL;
    snprintf(py, sizeof(py), "%s/svg_series.py", t_tmpdir());
    if (write_text(py,
                   "import json, sys, xml.etree.ElementTree as ET\n"
                   "ns = '{http://www.w3.org/2000/svg}'\n"
                   "root = ET.parse(sys.argv[1]).getroot()\n"
                   "assert root.tag == ns + 'svg', root.tag\n"
                   "out = {}\n"
                   "for g in root.iter(ns + 'g'):\n"
                   "    if g.get('class') == 'series':\n"
                   "        pts = []\n"
                   "        for pl in g.iter(ns + 'polyline'):\n"
                   "            px = pl.get('points').split()\n"
                   "            dp = [[float(v) for v in p.split(',')] for p in pl.get('data-points').split()]\n"
                   "            assert len(px) == len(dp)\n"
                   "            pts += dp\n"
                   "        assert g.get('data-label') not in out\n"
                   "        out[g.get('data-label')] = pts\n"
                   "    if g.get('class') == 'best':\n"
                   "        out['_best'] = [float(g.get('data-x')), float(g.get('data-y'))]\n"
                   "print(json.dumps(out))\n"))
        return NULL;
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s'", py, svg_path);
    int rc = t_run(cmd, &out, &err);
    cJSON *j = rc == 0 && out ? cJSON_Parse(out) : NULL;
    if (!j) fprintf(stderr, "    %s: not parsed as SVG/XML (exit %d): %s\n", svg_path, rc, err ? err : "");
    free(out);
    free(err);
    return j;
}

/* Every finite (step, metric) of a run's metrics.jsonl equals the series' points, in order. */
static int series_matches_metrics(const cJSON *pts, const char *run_dir, const char *metric) {
    vkl_metrics m;
    vkl_err e = {0};
    T_ASSERT(vkl_metrics_read(run_dir, &m, &e) == VKL_OK, "%s", e.msg);
    int mi = vkl_metric_from_name(metric);
    size_t k = 0;
    int n = cJSON_GetArraySize(pts);
    for (size_t i = 0; i < m.n; i++) {
        double v = m.v[mi][i];
        if (!isfinite(v)) continue;
        const cJSON *p = cJSON_GetArrayItem(pts, (int)k++);
        if (!p || fabs(cJSON_GetArrayItem(p, 0)->valuedouble - m.step[i]) > 0 ||
            fabs(cJSON_GetArrayItem(p, 1)->valuedouble - v) > 1e-8 * fabs(v)) {
            vkl_metrics_free(&m);
            T_FAIL("%s: point %zu of the curve (of %d) is not step %g %s %.9g", run_dir, k - 1, n, m.step[i], metric, v);
        }
    }
    vkl_metrics_free(&m);
    T_ASSERT((int)k == n && k > 0, "%s: %zu %s values in metrics.jsonl, %d points in the chart", run_dir, k, metric, n);
    return 0;
}

/* ---- explain ---- */

static int test_explain(void) {
    cJSON *j = NULL;
    char *err = NULL;
    T_ASSERT(t_cli("explain lr --json", &j, NULL) == 0 && j, "explain lr");
    const cJSON *k = cJSON_GetObjectItem(j, "knob"), *g = cJSON_GetObjectItem(j, "guide"),
                *d = cJSON_GetObjectItem(j, "default");
    T_ASSERT(cJSON_IsString(k) && !strcmp(k->valuestring, "training.learning_rate"), "knob");
    T_ASSERT(cJSON_IsString(g) && strstr(g->valuestring, "5e-5 to 1e-4"), "guide advice");
    T_ASSERT(cJSON_IsNumber(d) && d->valuedouble == 2e-4, "default");
    cJSON_Delete(j);
    T_ASSERT(t_cli("explain rank --json", &j, NULL) == 0 && j, "explain rank");
    T_ASSERT(!strcmp(cJSON_GetObjectItem(j, "knob")->valuestring, "lora.r") &&
                 strstr(cJSON_GetObjectItem(j, "cost")->valuestring, "memory"),
             "rank is lora.r with a memory cost");
    cJSON_Delete(j);
    /* an unknown knob: exit 2 with the nearest name */
    T_ASSERT(t_cli("explain lerning_rate", NULL, &err) == 2 && err && strstr(err, "did you mean 'learning_rate'"),
             "unknown knob: %s", err ? err : "");
    free(err);
    /* one table: every knob `config --help` lists is explained, and the guide text is the same in both */
    char cmd[1200], *help = NULL, *list = NULL;
    snprintf(cmd, sizeof(cmd), "%s config --help", t_vklora_bin());
    T_ASSERT(t_run(cmd, &help, NULL) == 0 && help, "config --help");
    T_ASSERT(t_cli("explain --json", &j, NULL) == 0 && cJSON_GetArraySize(j) > 30, "explain --json lists the knobs");
    const cJSON *e;
    int with_guide = 0;
    cJSON_ArrayForEach(e, j) {
        const char *name = cJSON_GetObjectItem(e, "knob")->valuestring;
        char needle[300];
        snprintf(needle, sizeof(needle), "\n  %s", name);
        T_ASSERT(strstr(help, needle), "config --help lacks %s", name);
        const cJSON *ge = cJSON_GetObjectItem(e, "guide");
        if (cJSON_IsString(ge)) {
            with_guide++;
            T_ASSERT(strstr(help, ge->valuestring), "config --help lacks the guide text of %s", name);
        }
    }
    T_ASSERT(with_guide >= 10, "guide advice on %d knobs", with_guide);
    /* configs/README.md's key tables cover the same table: every knob has its row */
    char readme_path[600];
    snprintf(readme_path, sizeof(readme_path), "%s/configs/README.md", VKL_SOURCE_ROOT);
    char *readme = t_read_file(readme_path, NULL);
    T_ASSERT(readme, "%s", readme_path);
    cJSON_ArrayForEach(e, j) {
        char row[300];
        snprintf(row, sizeof(row), "| `%s` |", cJSON_GetObjectItem(e, "knob")->valuestring);
        T_ASSERT(strstr(readme, row), "configs/README.md has no row %s", row);
    }
    free(readme);
    cJSON_Delete(j);
    snprintf(cmd, sizeof(cmd), "%s explain", t_vklora_bin());
    T_ASSERT(t_run(cmd, &list, NULL) == 0 && list && strstr(list, "lora.lora_alpha") && strstr(list, "training.advice"),
             "explain lists the knobs");
    free(list);
    free(help);
    return 0;
}

/* ---- advice ---- */

static int advice_ids(const char *json, const vkl_advice_ctx *ctx, char *ids, size_t cap) {
    vkl_config c;
    vkl_err e = {0};
    if (vkl_config_from_json_string(json, "<test>", NULL, 0, &c, &e)) {
        fprintf(stderr, "    %s\n", e.msg);
        return -1;
    }
    vkl_advice a[VKL_ADVICE_MAX];
    int n = vkl_advice_check(&c, ctx, a);
    ids[0] = 0;
    for (int i = 0; i < n; i++) {
        strncat(ids, a[i].id, cap - strlen(ids) - 2);
        strncat(ids, " ", cap - strlen(ids) - 1);
        if (!a[i].text[0] || strchr(a[i].text, '\n')) return -1;
    }
    vkl_config_free(&c);
    return n;
}

static int test_advice_lines(void) {
    char ids[400];
    const vkl_advice_ctx one = {.total_steps = 60, .epochs = 1, .has_eval = false};
    const vkl_advice_ctx evald = {.total_steps = 60, .epochs = 1, .has_eval = true};
    /* each line from a config that should trigger it, and only that line */
    static const struct {
        const char *json, *id;
        int ctx; /* 0 = one epoch of 60 steps, 1 = 4 epochs of 15 steps with an eval split, 2 = 2 epochs, no eval */
    } cases[] = {
        {"{\"learning_rate\": 5e-3}", "learning_rate", 0},
        {"{\"learning_rate\": 1e-6}", "learning_rate", 0},
        {"{\"num_train_epochs\": 4, \"eval_ratio\": 0.1, \"eval_steps\": 5}", "epochs", 1},
        {"{\"lora_alpha\": 64}", "lora_alpha", 0},
        {"{\"lora_alpha\": 8}", "lora_alpha", 0},
        {"{\"r\": 4, \"lora_alpha\": 8}", "r", 0},
        {"{\"r\": 256, \"lora_alpha\": 256}", "r", 0},
        {"{\"warmup_steps\": 0}", "warmup", 0},
        {"{\"warmup_steps\": 30}", "warmup", 0},
        {"{\"weight_decay\": 0}", "weight_decay", 0},
        {"{\"weight_decay\": 0.5}", "weight_decay", 0},
        {"{\"num_train_epochs\": 2}", "no_eval", 2},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++) {
        vkl_advice_ctx ctx = cases[i].ctx == 0 ? one
                             : cases[i].ctx == 1 ? (vkl_advice_ctx){.total_steps = 60, .epochs = 4, .has_eval = true}
                                                 : (vkl_advice_ctx){.total_steps = 60, .epochs = 2, .has_eval = false};
        int n = advice_ids(cases[i].json, &ctx, ids, sizeof(ids));
        char want[64];
        snprintf(want, sizeof(want), "%s ", cases[i].id);
        T_ASSERT(n == 1 && !strcmp(ids, want), "%s: advice [%s], want [%s]", cases[i].json, ids, want);
        /* advice: false hides it */
        char off[300];
        snprintf(off, sizeof(off), "%.*s, \"advice\": false}", (int)strlen(cases[i].json) - 1, cases[i].json);
        T_ASSERT(advice_ids(off, &ctx, ids, sizeof(ids)) == 0, "%s: advice shown with advice false: %s", off, ids);
    }
    /* rsLoRA: alpha outside [r, 2r] is its own scale, no note */
    T_ASSERT(advice_ids("{\"r\": 64, \"lora_alpha\": 16, \"use_rslora\": true}", &one, ids, sizeof(ids)) == 0,
             "rslora: %s", ids);
    /* no default config triggers anything: the defaults (Unsloth's notebook: 60 steps), with and without eval,
     * and every config shipped in configs/ */
    T_ASSERT(advice_ids("{}", &one, ids, sizeof(ids)) == 0, "defaults: %s", ids);
    T_ASSERT(advice_ids("{\"eval_ratio\": 0.1, \"eval_steps\": 10}", &evald, ids, sizeof(ids)) == 0, "defaults: %s",
             ids);
    static const char *const shipped[] = {"demo.json", "full-example.json"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(shipped); i++) {
        char path[600];
        snprintf(path, sizeof(path), "%s/configs/%s", VKL_SOURCE_ROOT, shipped[i]);
        vkl_config c;
        vkl_err e = {0};
        T_ASSERT(vkl_config_load(path, NULL, 0, &c, &e) == VKL_OK, "%s", e.msg);
        int64_t steps = c.max_steps > 0 ? c.max_steps : 60;
        vkl_advice_ctx ctx = {.total_steps = steps, .epochs = c.num_train_epochs,
                              .has_eval = c.eval_ratio > 0 || c.eval_path};
        c.advice = true; /* what the knobs themselves would say, whatever the file's advice switch */
        vkl_advice a[VKL_ADVICE_MAX];
        int n = vkl_advice_check(&c, &ctx, a);
        bool lr_only = n == 1 && !strcmp(a[0].id, "learning_rate") && !strcmp(shipped[i], "demo.json");
        /* demo.json's tiny random model takes a 3e-3 step on purpose; its file turns the notes off */
        T_ASSERT(n == 0 || lr_only, "%s: %d advice line(s), first: %s", shipped[i], n, n ? a[0].text : "");
        vkl_config_free(&c);
        T_ASSERT(vkl_config_load(path, NULL, 0, &c, &e) == VKL_OK, "%s", e.msg);
        T_ASSERT(vkl_advice_check(&c, &ctx, a) == 0, "%s prints advice", shipped[i]);
        vkl_config_free(&c);
    }
    return 0;
}

static int test_overfit_watch(void) {
    vkl_overfit_watch w;
    /* train falls throughout; eval falls, then rises twice: fires at the second rise, once */
    const double evals[] = {3.0, 2.5, 2.2, 2.3, 2.4, 2.6};
    vkl_overfit_init(&w);
    int fired_at = -1, fires = 0;
    double train = 4.0;
    for (int e = 0; e < 6; e++) {
        for (int s = 0; s < 5; s++) vkl_overfit_train_loss(&w, train -= 0.05);
        if (vkl_overfit_eval(&w, (e + 1) * 5, evals[e])) fired_at = e, fires++;
    }
    T_ASSERT(fires == 1 && fired_at == 4, "fired %d times, at eval %d (want once, at eval 4)", fires, fired_at);
    char msg[600];
    vkl_overfit_message(&w, 30, msg, sizeof(msg));
    T_ASSERT(strstr(msg, "step 15") && strstr(msg, "weight_decay") && strstr(msg, "continues"), "message: %s", msg);
    /* eval rising while training loss also rises is not overfitting (divergence); a single rise is noise */
    vkl_overfit_init(&w);
    train = 2.0;
    for (int e = 0; e < 6; e++) {
        for (int s = 0; s < 5; s++) vkl_overfit_train_loss(&w, train += 0.05);
        T_ASSERT(!vkl_overfit_eval(&w, (e + 1) * 5, 2.0 + e), "fired while the training loss rose");
    }
    const double noisy[] = {3.0, 2.5, 2.6, 2.2, 2.3, 2.1};
    vkl_overfit_init(&w);
    train = 4.0;
    for (int e = 0; e < 6; e++) {
        for (int s = 0; s < 5; s++) vkl_overfit_train_loss(&w, train -= 0.05);
        T_ASSERT(!vkl_overfit_eval(&w, (e + 1) * 5, noisy[e]), "fired on single rises");
    }
    /* NaN is not a rise */
    vkl_overfit_init(&w);
    vkl_overfit_train_loss(&w, 2.0);
    T_ASSERT(!vkl_overfit_eval(&w, 1, NAN) && !vkl_overfit_eval(&w, 2, NAN), "NaN");
    return 0;
}

/* ---- sweep helpers ---- */

static int test_sweep_schedule(void) {
    for (size_t n_dev = 1; n_dev <= 4; n_dev++) {
        bool done[11] = {false, true, false, false, true, false, false, false, true, false, false};
        int dev[11];
        vkl_sweep_schedule(11, done, n_dev, dev);
        size_t per[4] = {0};
        for (int i = 0; i < 11; i++) {
            if (done[i]) {
                T_ASSERT(dev[i] == -1, "a finished run is scheduled");
                continue;
            }
            T_ASSERT(dev[i] >= 0 && (size_t)dev[i] < n_dev, "run %d on device %d of %zu", i, dev[i], n_dev);
            per[dev[i]]++;
        }
        size_t lo = 99, hi = 0;
        for (size_t d = 0; d < n_dev; d++) lo = per[d] < lo ? per[d] : lo, hi = per[d] > hi ? per[d] : hi;
        T_ASSERT(hi - lo <= 1 && lo * n_dev <= 8 && hi * n_dev >= 8, "%zu devices: %zu..%zu runs each", n_dev, lo, hi);
    }
    char **v;
    size_t n = vkl_sweep_split_values("[\"q\",\"v\"],[\"q\",\"k,\"],{\"a\":[1,2]},3e-4", &v);
    T_ASSERT(n == 4 && !strcmp(v[0], "[\"q\",\"v\"]") && !strcmp(v[1], "[\"q\",\"k,\"]") &&
                 !strcmp(v[2], "{\"a\":[1,2]}") && !strcmp(v[3], "3e-4"),
             "split: %zu", n);
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
    T_ASSERT(vkl_sweep_split_values("1,,2", &v) == 0 && vkl_sweep_split_values("[1,2", &v) == 0 &&
                 vkl_sweep_split_values("1]", &v) == 0 && vkl_sweep_split_values("", &v) == 0,
             "malformed lists are refused");
    const char *k[] = {"lr", "target_modules"}, *val[] = {"1e-4", "[\"q\",\"v/x\"]"};
    char name[200];
    vkl_sweep_run_name(k, val, 2, name, sizeof(name));
    T_ASSERT(!strcmp(name, "lr=1e-4,target_modules=__q_,_v_x__"), "run name %s", name);
    return 0;
}

/* ---- plot ---- */

static int test_plot_edge_cases(void) {
    char dir[700], path[800], svg[800], args[3000];
    /* NaN / null, missing steps, a line without loss, garbage and a torn last line */
#ifdef _WIN32 /* Windows forbids < > " in names; the title below still carries them */
    snprintf(dir, sizeof(dir), "%s/plot-odd & run", t_tmpdir());
#else
    snprintf(dir, sizeof(dir), "%s/plot-odd & <\"run\">", t_tmpdir());
#endif
    T_ASSERT(mkdir(dir, 0777) == 0 || 1, "mkdir");
    snprintf(path, sizeof(path), "%s/metrics.jsonl", dir);
    T_ASSERT(write_text(path, "{\"step\": 1, \"loss\": 3.5, \"eval_loss\": null, \"lr\": 1e-4}\n"
                              "{\"step\": 2, \"loss\": null, \"eval_loss\": 3.1, \"lr\": 2e-4}\n"
                              "not json at all\n"
                              "{\"step\": 5, \"loss\": 2.75, \"eval_loss\": null, \"lr\": 2e-4}\n"
                              "{\"step\": 6, \"eval_loss\": 2.9}\n"
                              "{\"step\": 9, \"loss\": 2.5, \"eval_loss\": null, \"lr\": 1e-4}\n"
                              "{\"step\": 10, \"loss\": 2.25, \"eval_loss\": 2.8, \"lr\": 0}\n"
                              "{\"step\": 11, \"loss\": 2.2") == 0,
             "%s", path);
    /* one point */
    char one[700];
    snprintf(one, sizeof(one), "%s/plot-one", t_tmpdir());
    mkdir(one, 0777);
    snprintf(path, sizeof(path), "%s/metrics.jsonl", one);
    T_ASSERT(write_text(path, "{\"step\": 1, \"loss\": 4.0, \"eval_loss\": 4.5}\n") == 0, "%s", path);
    /* empty */
    char empty[700];
    snprintf(empty, sizeof(empty), "%s/plot-empty", t_tmpdir());
    mkdir(empty, 0777);
    snprintf(path, sizeof(path), "%s/metrics.jsonl", empty);
    T_ASSERT(write_text(path, "") == 0, "%s", path);
    static const char *const metrics[] = {"loss", "eval_loss", "lr"};
    for (size_t mi = 0; mi < 3; mi++) {
        snprintf(svg, sizeof(svg), "%s/plot-%s.svg", t_tmpdir(), metrics[mi]);
        snprintf(args, sizeof(args), "plot '%s' '%s' '%s' --metric %s --out '%s' --title 'a <b> & c' --json", dir, one,
                 empty, metrics[mi], svg);
        cJSON *j = NULL;
        T_ASSERT(t_cli(args, &j, NULL) == 0 && j, "plot --metric %s", metrics[mi]);
        cJSON_Delete(j);
        cJSON *s = svg_series(svg);
        T_ASSERT(s && cJSON_GetArraySize(s) == 3, "%s: three series", svg);
        const char *label = strrchr(dir, '/') + 1;
        T_ASSERT(cJSON_GetObjectItem(s, label), "%s: the label '%s' (escaped) reads back", svg, label);
        if (series_matches_metrics(cJSON_GetObjectItem(s, label), dir, metrics[mi])) return 1;
        if (mi < 2 && series_matches_metrics(cJSON_GetObjectItem(s, "plot-one"), one, metrics[mi])) return 1;
        T_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(s, "plot-empty")) == 0, "the empty run has no points");
        cJSON_Delete(s);
    }
    /* the loss curve has a gap at the null: two polylines */
    char *txt = t_read_file(svg, NULL);
    snprintf(svg, sizeof(svg), "%s/plot-loss.svg", t_tmpdir());
    free(txt);
    txt = t_read_file(svg, NULL);
    T_ASSERT(txt && strstr(txt, "data-points=\"1,3.5\"") && strstr(txt, "a &lt;b&gt; &amp; c"),
             "the null loss breaks the line; the title is escaped");
    free(txt);
    /* only empty runs: still a valid chart */
    snprintf(args, sizeof(args), "plot '%s' --out '%s/plot-only-empty.svg'", empty, t_tmpdir());
    T_ASSERT(t_cli(args, NULL, NULL) == 0, "plot of an empty run");
    snprintf(svg, sizeof(svg), "%s/plot-only-empty.svg", t_tmpdir());
    cJSON *s = svg_series(svg);
    T_ASSERT(s, "empty chart parses");
    cJSON_Delete(s);
    /* PNG: the same chart through cairo where the build has it, else a clear refusal (exit 2) naming the package */
    char png[800];
    snprintf(png, sizeof(png), "%s/plot.png", t_tmpdir());
    snprintf(args, sizeof(args), "plot '%s' '%s' '%s' --out '%s'", dir, one, empty, png);
    char *perr = NULL;
    int prc = t_cli(args, NULL, &perr);
    if (vkl_plot_png_available()) {
        size_t plen = 0;
        unsigned char *pb = (unsigned char *)t_read_file(png, &plen);
        T_ASSERT(prc == 0 && pb && plen > 2000 && !memcmp(pb, "\x89PNG\r\n\x1a\n", 8) && !memcmp(pb + 12, "IHDR", 4),
                 "plot --out x.png: exit %d, %zu bytes: %s", prc, plen, perr ? perr : "");
        uint32_t w = (uint32_t)pb[16] << 24 | pb[17] << 16 | pb[18] << 8 | pb[19];
        uint32_t h = (uint32_t)pb[20] << 24 | pb[21] << 16 | pb[22] << 8 | pb[23];
        T_ASSERT(w == 860 && h == 500, "PNG %ux%u", w, h);
        free(pb);
    } else {
        T_ASSERT(prc == 2 && perr && strstr(perr, "libcairo2-dev"), "PNG without cairo: exit %d: %s", prc,
                 perr ? perr : "");
    }
    free(perr);
    /* errors: no such run (2), unknown metric (2) */
    char *err = NULL;
    snprintf(args, sizeof(args), "plot '%s/nope'", t_tmpdir());
    T_ASSERT(t_cli(args, NULL, &err) == 2, "missing run: %s", err ? err : "");
    free(err);
    err = NULL;
    snprintf(args, sizeof(args), "plot '%s' --metric los", one);
    T_ASSERT(t_cli(args, NULL, &err) == 2 && strstr(err, "--metric los"), "bad metric: %s", err ? err : "");
    free(err);
    return 0;
}

/* ---- sweep on stories260K ---- */

static void sweep_args(char *buf, size_t cap, const char *out, const char *extra) {
    snprintf(buf, cap,
             "sweep %s/configs/demo.json --set model=%s --set dataset=%s --set max_steps=4 --set save_steps=2 "
             "--set eval_steps=2 --set eval_ratio=0.2 --set max_seq_length=32 --set per_device_train_batch_size=1 "
             "--set gradient_accumulation_steps=1 --set warmup_steps=0 --set plot_every=2 "
             "--grid learning_rate=1e-3,3e-3 --grid r=4,8 --out '%s' %s",
             VKL_SOURCE_ROOT, t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"),
             out, extra);
}

static const char *const run_names[4] = {"learning_rate=1e-3,r=4", "learning_rate=1e-3,r=8", "learning_rate=3e-3,r=4",
                                         "learning_rate=3e-3,r=8"};

/* The metrics lines without the timing fields, so two runs of one config compare equal. */
static char *metrics_core(const char *run_dir) {
    vkl_metrics m;
    vkl_err e = {0};
    if (vkl_metrics_read(run_dir, &m, &e)) return NULL;
    size_t cap = 64 + m.n * 200, used = 0;
    char *s = malloc(cap);
    s[0] = 0;
    for (size_t i = 0; i < m.n; i++)
        used += (size_t)snprintf(s + used, cap - used, "%g %.9g %.9g %.9g %.9g\n", m.step[i], m.v[VKL_METRIC_LOSS][i],
                                 m.v[VKL_METRIC_EVAL_LOSS][i], m.v[VKL_METRIC_LR][i], m.v[VKL_METRIC_GRAD_NORM][i]);
    vkl_metrics_free(&m);
    return s;
}

static int test_sweep_2x2(void) {
    char out[700], args[4000], path[1200], *err = NULL, *o = NULL;
    snprintf(out, sizeof(out), "%s/sweep-a", t_tmpdir());
    /* counts the fault points of the whole sweep for the kill below */
    sweep_args(args, sizeof(args), out, "");
    char cmd[5000];
    snprintf(cmd, sizeof(cmd), "VKLORA_FAULT_KILL_AT=0 '%s' %s", t_vklora_bin(), args);
    int rc = t_run(cmd, &o, &err);
    T_ASSERT(rc == 0, "sweep: exit %d: %s", rc, err ? err : "");
    T_ASSERT(o && strstr(o, "| learning_rate | r | final loss | best eval loss |") && strstr(o, "sweep.svg"),
             "the table is printed: %s", o ? o : "");
    const char *cnt = err ? strstr(err, " fault points") : NULL;
    while (cnt && cnt > err && cnt[-1] >= '0' && cnt[-1] <= '9') cnt--;
    long total = cnt ? strtol(cnt, NULL, 10) : 0;
    T_ASSERT(total > 40, "fault points %ld", total);
    free(o);
    free(err);
    o = err = NULL;
    /* four run directories, each trained, with its own curves.svg (plot_every) */
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s/adapter.gguf", out, run_names[i]);
        struct stat stt;
        T_ASSERT(stat(path, &stt) == 0, "%s", path);
        snprintf(path, sizeof(path), "%s/%s/curves.html", out, run_names[i]);
        T_ASSERT(stat(path, &stt) == 0, "%s", path);
        snprintf(path, sizeof(path), "%s/%s/curves.svg", out, run_names[i]);
        cJSON *c = svg_series(path);
        char dir[1000];
        snprintf(dir, sizeof(dir), "%s/%s", out, run_names[i]);
        T_ASSERT(c && series_matches_metrics(cJSON_GetObjectItem(c, "training loss"), dir, "loss") == 0 &&
                     series_matches_metrics(cJSON_GetObjectItem(c, "eval loss"), dir, "eval_loss") == 0,
                 "%s", path);
        cJSON_Delete(c);
    }
    /* sweep.svg: one eval-loss curve per run equal to its metrics.jsonl, the best one marked */
    snprintf(path, sizeof(path), "%s/sweep.svg", out);
    cJSON *svg = svg_series(path);
    T_ASSERT(svg && cJSON_GetArraySize(svg) == 5, "sweep.svg: 4 curves and the best mark");
    for (int i = 0; i < 4; i++) {
        char dir[1000];
        snprintf(dir, sizeof(dir), "%s/%s", out, run_names[i]);
        if (series_matches_metrics(cJSON_GetObjectItem(svg, run_names[i]), dir, "eval_loss")) return 1;
    }
    /* sweep.json: the same runs, the best is the lowest eval loss, and its mark sits on it */
    snprintf(path, sizeof(path), "%s/sweep.json", out);
    char *txt = t_read_file(path, NULL);
    cJSON *sj = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    T_ASSERT(sj && cJSON_GetArraySize(cJSON_GetObjectItem(sj, "runs")) == 4, "sweep.json");
    double best = INFINITY;
    const char *best_name = NULL;
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(sj, "runs")) {
        T_ASSERT(!strcmp(cJSON_GetObjectItem(r, "status")->valuestring, "finished"), "status");
        T_ASSERT(cJSON_IsNumber(cJSON_GetObjectItem(r, "final_loss")) &&
                     cJSON_GetObjectItem(r, "tokens_per_second")->valuedouble > 0 &&
                     cJSON_GetObjectItem(r, "peak_device_bytes")->valuedouble > 0 &&
                     cJSON_GetObjectItem(r, "wall_s")->valuedouble > 0 &&
                     cJSON_IsBool(cJSON_GetObjectItem(r, "overfitting")),
                 "run fields");
        double b = cJSON_GetObjectItem(r, "best_eval_loss")->valuedouble;
        if (b < best) best = b, best_name = cJSON_GetObjectItem(r, "name")->valuestring;
    }
    T_ASSERT(best_name && !strcmp(cJSON_GetObjectItem(sj, "best")->valuestring, best_name), "best run");
    const cJSON *mark = cJSON_GetObjectItem(svg, "_best");
    T_ASSERT(fabs(cJSON_GetArrayItem(mark, 1)->valuedouble - best) < 1e-8 * best, "the mark is at the best eval loss");
    cJSON_Delete(svg);
    snprintf(path, sizeof(path), "%s/sweep.md", out);
    txt = t_read_file(path, NULL);
    T_ASSERT(txt && strstr(txt, "finished, best") && strstr(txt, "| 3e-3 | 8 |"), "sweep.md: %s", txt ? txt : "");
    free(txt);
    char *ref[4];
    for (int i = 0; i < 4; i++) {
        char dir[1000];
        snprintf(dir, sizeof(dir), "%s/%s", out, run_names[i]);
        ref[i] = metrics_core(dir);
    }

    /* a rerun skips every finished run */
    snprintf(cmd, sizeof(cmd), "'%s' %s", t_vklora_bin(), args);
    rc = t_run(cmd, &o, &err);
    T_ASSERT(rc == 0 && o && strstr(o, "(4 finished before, skipped)") && !strstr(o, "sweep: run "),
             "rerun: exit %d: %s", rc, o ? o : "");
    free(o);
    free(err);
    o = err = NULL;

    /* killed mid-run (in the third run, after its checkpoint), then rerun: finished runs skipped, that run resumes */
    snprintf(out, sizeof(out), "%s/sweep-b", t_tmpdir());
    sweep_args(args, sizeof(args), out, "--json");
    long kill_at = total / 2 + total / 8;
    snprintf(cmd, sizeof(cmd), "VKLORA_FAULT_KILL_AT=%ld '%s' %s", kill_at, t_vklora_bin(), args);
    rc = t_run(cmd, &o, &err);
    T_ASSERT(rc == 137, "kill at %ld of %ld: exit %d", kill_at, total, rc);
    free(o);
    free(err);
    o = err = NULL;
    snprintf(path, sizeof(path), "%s/%s/checkpoint-2", out, run_names[2]);
    struct stat stt;
    T_ASSERT(stat(path, &stt) == 0, "the killed run has a checkpoint (%s): move kill_at", path);
    snprintf(cmd, sizeof(cmd), "'%s' %s", t_vklora_bin(), args);
    rc = t_run(cmd, &o, &err);
    T_ASSERT(rc == 0 && err && strstr(err, "(2 finished before, skipped)") && strstr(err, "resumed from") &&
                 strstr(err, run_names[2]) && !strstr(err, "sweep: run 1/4"),
             "resume: exit %d: %s", rc, err ? err : "");
    cJSON *j = o ? cJSON_Parse(o) : NULL;
    T_ASSERT(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "runs")) == 4, "--json prints sweep.json");
    cJSON_Delete(j);
    free(o);
    free(err);
    /* every run's curve equals the uninterrupted sweep's */
    for (int i = 0; i < 4; i++) {
        char dir[1000];
        snprintf(dir, sizeof(dir), "%s/%s", out, run_names[i]);
        char *got = metrics_core(dir);
        T_ASSERT(got && ref[i] && !strcmp(got, ref[i]), "%s: metrics differ from the uninterrupted sweep:\n%s\nvs\n%s",
                 run_names[i], got ? got : "", ref[i] ? ref[i] : "");
        free(got);
        free(ref[i]);
    }
    cJSON_Delete(sj);
    return 0;
}

static int test_sweep_errors(void) {
    char args[4000], out[700], *err = NULL;
    snprintf(out, sizeof(out), "%s/sweep-err", t_tmpdir());
    static const struct {
        const char *grid, *want;
    } cases[] = {
        {"--grid lerning_rate=1e-4,2e-4", "did you mean 'learning_rate'"},
        {"--grid lr=1e-4 --grid learning_rate=2e-4", "same knob"},
        {"--grid r=8,,16", "no empty one"},
        {"--grid r=8,0", "lora.r: expected an integer 1..1024"},
        {"--grid output_dir=a,b", "sets training.output_dir itself"},
        {"", "--grid"},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++) {
        snprintf(args, sizeof(args), "sweep %s/configs/demo.json --set model=%s --out '%s' %s", VKL_SOURCE_ROOT,
                 t_data_path("models/stories260K.gguf"), out, cases[i].grid);
        int rc = t_cli(args, NULL, &err);
        T_ASSERT(rc == 2 && err && strstr(err, cases[i].want), "%s: exit %d: %s", cases[i].grid, rc, err ? err : "");
        free(err);
        err = NULL;
    }
    struct stat st;
    T_ASSERT(stat(out, &st) != 0, "a refused sweep created %s", out);
    return 0;
}

/* The trainer prints the advice at the start (and not with advice false). */
static int test_train_prints_advice(void) {
    char args[3000], out[700], *err = NULL;
    snprintf(out, sizeof(out), "%s/advice-run", t_tmpdir());
    for (int off = 0; off < 2; off++) {
        snprintf(args, sizeof(args),
                 "train %s/configs/demo.json --set model=%s --set dataset=%s --set output_dir='%s' --set max_steps=1 "
                 "--set max_seq_length=32 --set per_device_train_batch_size=1 --set save_steps=0 --set eval_ratio=0 "
                 "--set eval_steps=0 --set lora_alpha=64 --set r=8 --set warmup_steps=0 --set advice=%s --json",
                 VKL_SOURCE_ROOT, t_data_path("models/stories260K.gguf"),
                 t_data_path("datasets/tinystories_sample.txt"), out, off ? "false" : "true");
        T_ASSERT(t_cli(args, NULL, &err) == 0, "train: %s", err ? err : "");
        bool shown = err && strstr(err, "advice: lora_alpha 64 with r 8") && strstr(err, "advice: learning_rate 0.003");
        T_ASSERT(off ? !strstr(err, "advice:") : shown, "advice=%s: %s", off ? "false" : "true", err ? err : "");
        free(err);
        err = NULL;
    }
    return 0;
}

/* A run that overfits a 3 KB text at a high rate: the note appears during training exactly where the watch over
 * its metrics.jsonl says (two rises of eval loss while training loss fell), and the run goes on to the end. */
static int test_train_overfit_note(void) {
    char data[700], out[700], args[3000], *err = NULL;
    size_t len = 0;
    char *text = t_read_file(t_data_path("datasets/tinystories_sample.txt"), &len);
    T_ASSERT(text && len > 3000, "dataset");
    text[3000] = 0;
    snprintf(data, sizeof(data), "%s/overfit.txt", t_tmpdir());
    T_ASSERT(write_text(data, text) == 0, "%s", data);
    free(text);
    snprintf(out, sizeof(out), "%s/overfit-run", t_tmpdir());
    snprintf(args, sizeof(args),
             "train %s/configs/demo.json --set model=%s --set dataset=%s --set output_dir='%s' --set max_steps=30 "
             "--set max_seq_length=32 --set per_device_train_batch_size=4 --set gradient_accumulation_steps=1 "
             "--set eval_ratio=0.3 --set eval_steps=3 --set learning_rate=2e-2 --set warmup_steps=0 --set save_steps=0 "
             "--set advice=true --json",
             VKL_SOURCE_ROOT, t_data_path("models/stories260K.gguf"), data, out);
    cJSON *j = NULL;
    T_ASSERT(t_cli(args, &j, &err) == 0 && j, "train: %s", err ? err : "");
    T_ASSERT(cJSON_GetObjectItem(j, "steps")->valuedouble == 30, "the run continues to its end");
    cJSON_Delete(j);
    vkl_metrics m;
    vkl_err e = {0};
    T_ASSERT(vkl_metrics_read(out, &m, &e) == VKL_OK, "%s", e.msg);
    vkl_overfit_watch w;
    vkl_overfit_init(&w);
    int64_t fired = -1;
    for (size_t i = 0; i < m.n; i++) {
        vkl_overfit_train_loss(&w, m.v[VKL_METRIC_LOSS][i]);
        if (isfinite(m.v[VKL_METRIC_EVAL_LOSS][i]) &&
            vkl_overfit_eval(&w, (int64_t)m.step[i], m.v[VKL_METRIC_EVAL_LOSS][i]) && fired < 0)
            fired = (int64_t)m.step[i];
    }
    vkl_metrics_free(&m);
    T_ASSERT(fired > 0, "this run was expected to overfit (eval loss up twice while training loss fell): %s",
             err ? err : "");
    char want[64];
    snprintf(want, sizeof(want), "at step %lld) while the training loss fell", (long long)fired);
    const char *line = err ? strstr(err, "advice: eval loss has risen for 2 evaluations") : NULL;
    T_ASSERT(line && strstr(line, want) && strstr(line, "lower learning_rate"), "the note at step %lld: %s",
             (long long)fired, err ? err : "");
    free(err);
    return 0;
}

/* The parallel path: two workers (both on device 0 here, as --devices allows) each running child `vklora train`
 * processes; every run finishes with its output in its own train.log. */
static int test_sweep_parallel(void) {
#ifdef _WIN32
    printf("    skipped on Windows: parallel sweep runs are POSIX-only (Windows runs them one after another)\n");
    return 0;
#else
    char out[700], args[4000], path[1200], *err = NULL, *o = NULL;
    snprintf(out, sizeof(out), "%s/sweep-par", t_tmpdir());
    snprintf(args, sizeof(args),
             "sweep %s/configs/demo.json --set model=%s --set dataset=%s --set max_steps=2 --set save_steps=0 "
             "--set eval_steps=1 --set eval_ratio=0.2 --set max_seq_length=32 --set per_device_train_batch_size=1 "
             "--set gradient_accumulation_steps=1 --set warmup_steps=0 --grid seed=1,2,3 --devices 0,0 --out '%s'",
             VKL_SOURCE_ROOT, t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"),
             out);
    char cmd[5000];
    snprintf(cmd, sizeof(cmd), "'%s' %s", t_vklora_bin(), args);
    int rc = t_run(cmd, &o, &err);
    T_ASSERT(rc == 0 && o && strstr(o, "one per device in parallel"), "exit %d: %s %s", rc, o ? o : "", err ? err : "");
    T_ASSERT(err && strstr(err, "sweep: seed=1 on device 0") && strstr(err, "sweep: seed=3 on device 0"), "%s", err);
    free(o);
    free(err);
    for (int s = 1; s <= 3; s++) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/seed=%d/train.log", out, s);
        T_ASSERT(stat(path, &st) == 0, "%s", path);
        snprintf(path, sizeof(path), "%s/seed=%d/adapter.gguf", out, s);
        T_ASSERT(stat(path, &st) == 0, "%s", path);
    }
    snprintf(path, sizeof(path), "%s/sweep.json", out);
    char *txt = t_read_file(path, NULL);
    T_ASSERT(txt && !strstr(txt, "\"failed\"") && !strstr(txt, "not run"), "sweep.json: %s", txt ? txt : "");
    free(txt);
    return 0;
#endif
}

/* Ctrl-C (SIGINT) in the middle of a sweep's first run: that run checkpoints, the sweep exits 130 with the table so
 * far; rerunning resumes the run from that checkpoint and finishes both. */
static int test_sweep_ctrl_c(void) {
#ifdef _WIN32
    printf("    skipped on Windows: the test harness has no kill -INT there (Ctrl-C under Wine: tools/test-windows.sh)\n");
    return 0;
#else
    char out[700], args[4000], cmd[6000], *o = NULL, *err = NULL;
    snprintf(out, sizeof(out), "%s/sweep-int", t_tmpdir());
    snprintf(args, sizeof(args),
             "sweep %s/configs/demo.json --set model=%s --set dataset=%s --set max_steps=40 --set save_steps=2 "
             "--set eval_steps=0 --set eval_ratio=0 --set max_seq_length=32 --set per_device_train_batch_size=1 "
             "--set gradient_accumulation_steps=1 --set warmup_steps=0 --grid seed=1,2 --out '%s'",
             VKL_SOURCE_ROOT, t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"),
             out);
    /* SIGINT once the first checkpoint exists (bounded wait), then the sweep's exit status */
    snprintf(cmd, sizeof(cmd),
             "'%s' %s >/dev/null 2>&1 & pid=$!; i=0; while [ ! -d '%s/seed=1/checkpoint-2' ] && [ $i -lt 600 ]; do "
             "sleep 0.1; i=$((i+1)); done; kill -INT $pid; wait $pid; echo \"rc=$?\"",
             t_vklora_bin(), args, out);
    T_ASSERT(t_run(cmd, &o, &err) == 0 && o && strstr(o, "rc=130"), "Ctrl-C: %s %s", o ? o : "", err ? err : "");
    free(o);
    free(err);
    o = err = NULL;
    char path[1200];
    snprintf(path, sizeof(path), "%s/sweep.json", out);
    char *txt = t_read_file(path, NULL);
    T_ASSERT(txt && strstr(txt, "\"interrupted\""), "sweep.json after Ctrl-C: %s", txt ? txt : "");
    free(txt);
    snprintf(cmd, sizeof(cmd), "'%s' %s", t_vklora_bin(), args);
    int rc = t_run(cmd, &o, &err);
    T_ASSERT(rc == 0 && o && strstr(o, "resumed from") && strstr(o, "seed=1/checkpoint-"), "rerun: exit %d: %s %s",
             rc, o ? o : "", err ? err : "");
    free(o);
    free(err);
    txt = t_read_file(path, NULL);
    T_ASSERT(txt && !strstr(txt, "\"interrupted\"") && strstr(txt, "\"finished\""), "sweep.json: %s", txt ? txt : "");
    free(txt);
    return 0;
#endif
}

const vkl_test_case vkl_tests_knobs[] = {
    {"knobs/explain", test_explain},
    {"knobs/advice_lines", test_advice_lines},
    {"knobs/overfit_watch", test_overfit_watch},
    {"knobs/sweep_schedule", test_sweep_schedule},
    {"knobs/plot_edge_cases", test_plot_edge_cases},
    {"knobs/sweep_errors", test_sweep_errors},
    {"knobs/train_prints_advice", test_train_prints_advice},
    {"knobs/train_overfit_note", test_train_overfit_note},
    {"knobs/sweep_parallel_devices", test_sweep_parallel},
    {"knobs/sweep_2x2_skip_kill_resume", test_sweep_2x2},
    {"knobs/sweep_ctrl_c_resume", test_sweep_ctrl_c},
    {NULL, NULL},
};
