/* Tests of the vklora command line as a script would use it: version, help of every command, exit codes of
 * usage errors, and `devices --json` on the test device. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "vklora/common.h"
#include "vklora/data.h"
#include "vklora/gguf.h"
#include "vklora/tokenizer.h"
#include "vk/vk.h"

static int run_bin(const char *args, char **out, char **err) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s %s", t_vklora_bin(), args);
    return t_run(cmd, out, err);
}

static int test_version_help(void) {
    char *out = NULL, *err = NULL;
    T_ASSERT(run_bin("--version", &out, &err) == 0, "exit");
    T_ASSERT(out && !strncmp(out, "vklora ", 7), "version: %s", out);
    free(out), free(err);
    T_ASSERT(run_bin("--help", &out, &err) == 0, "exit");
    T_ASSERT(strstr(out, "devices") && strstr(out, "info") && strstr(out, "config"), "help lists commands");
    free(out), free(err);
    const char *cmds[] = {"devices", "info", "config"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(cmds); i++) {
        char a[64];
        snprintf(a, sizeof(a), "%s --help", cmds[i]);
        T_ASSERT(run_bin(a, &out, &err) == 0, "%s --help exit", cmds[i]);
        T_ASSERT(out && strstr(out, "usage:"), "%s --help prints usage", cmds[i]);
        free(out), free(err);
    }
    return 0;
}

static int test_usage_errors(void) {
    char *out = NULL, *err = NULL;
    T_ASSERT(run_bin("", &out, &err) == 2, "no command: exit 2");
    free(out), free(err);
    T_ASSERT(run_bin("frobnicate", &out, &err) == 2, "unknown command: exit 2");
    T_ASSERT(err && strstr(err, "frobnicate"), "message names the command");
    T_ASSERT(!out || !*out, "nothing on stdout");
    free(out), free(err);
    T_ASSERT(run_bin("devices --bogus", &out, &err) == 2, "unknown flag: exit 2");
    T_ASSERT(err && strstr(err, "--bogus"), "message names the flag");
    free(out), free(err);
    return 0;
}

static int test_devices_json(void) {
    char *out = NULL, *err = NULL;
    T_ASSERT(run_bin("devices --json", &out, &err) == 0, "exit: %s", err ? err : "");
    cJSON *doc = cJSON_Parse(out);
    T_ASSERT(doc, "stdout is not JSON: %s", out);
    cJSON *devs = cJSON_GetObjectItem(doc, "devices");
    T_ASSERT(cJSON_IsArray(devs) && cJSON_GetArraySize(devs) >= 1, "devices array");
    bool found_cpu = false;
    cJSON *d;
    cJSON_ArrayForEach(d, devs) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(d, "type"));
        cJSON *lim = cJSON_GetObjectItem(d, "limits");
        T_ASSERT(type && lim, "fields");
        double range = cJSON_GetNumberValue(cJSON_GetObjectItem(lim, "max_storage_buffer_range"));
        double sg = cJSON_GetNumberValue(cJSON_GetObjectItem(d, "subgroup_size"));
        T_ASSERT(range > 0 && sg >= 1, "limits are real numbers");
        /* cooperative matrices: whether this build has the kernels (the same build as this binary), the shapes */
        cJSON *cm = cJSON_GetObjectItem(d, "cooperative_matrix");
        T_ASSERT(cJSON_IsObject(cm) && cJSON_IsBool(cJSON_GetObjectItem(cm, "usable")), "cooperative_matrix object");
        T_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(cm, "kernels_built")) == vkl_coopmat_built(), "kernels_built");
        cJSON *shapes = cJSON_GetObjectItem(cm, "shapes"), *sh;
        T_ASSERT(cJSON_IsArray(shapes), "cooperative_matrix.shapes");
        bool f16_f32 = false;
        cJSON_ArrayForEach(sh, shapes) {
            T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(sh, "M")) >= 1 &&
                         cJSON_GetNumberValue(cJSON_GetObjectItem(sh, "K")) >= 1, "shape sizes");
            const char *a = cJSON_GetStringValue(cJSON_GetObjectItem(sh, "a"));
            const char *r = cJSON_GetStringValue(cJSON_GetObjectItem(sh, "result"));
            T_ASSERT(a && r, "shape types");
            f16_f32 |= !strcmp(a, "f16") && !strcmp(r, "f32");
        }
        /* tools/chroot-trixie.sh: lavapipe with cooperative matrices lists f16 x f16 -> f32 */
        if (t_coopmat_required() && !strcmp(type, "cpu"))
            T_ASSERT(f16_f32 && cJSON_IsTrue(cJSON_GetObjectItem(cm, "usable")), "no usable f16 x f16 -> f32 shape");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(d, "name"));
        if (!strcmp(type, "cpu") && name && strstr(name, "llvmpipe")) {
            found_cpu = true;
            T_ASSERT(range == 134217728.0, "llvmpipe's maxStorageBufferRange is 128 MiB, got %.0f", range);
        }
    }
    /* CI runs on lavapipe; a GPU machine may not have it installed. */
    if (!getenv("VKL_TEST_DEVICE")) T_ASSERT(found_cpu, "llvmpipe not listed");
    cJSON_Delete(doc);
    free(out), free(err);
    T_ASSERT(run_bin("devices", &out, &err) == 0, "text exit");
    T_ASSERT(strstr(out, "subgroup size") && strstr(out, "maxStorageBufferRange"), "text output");
    T_ASSERT(strstr(out, vkl_coopmat_built() ? "coopmat kernels   built" : "coopmat kernels   not built"),
             "text output: whether the coopmat kernels are built");
    free(out), free(err);
    return 0;
}

/* Device tuning (vkl_vk_cpu_tune in src/vk/vk.h): with neither LP_NATIVE_VECTOR_WIDTH nor VKLORA_CPU_TUNE set, a
 * command that opens a device runs lavapipe at 512 bits exactly when the CPU has AVX-512 and lavapipe is built on
 * LLVM 15 or older (measured right and faster there); on a newer LLVM it runs again at the driver's own width
 * (Mesa 26.1 / LLVM 19 computes wrong texel fetches at 512 bits). VKLORA_CPU_TUNE=off leaves the width alone. */
#ifndef _WIN32 /* used by test_cpu_tune and test_bench_tools, which skip Windows */
static int llvmpipe_name(const char *env, char *name, size_t n) {
    char *out = NULL, *err = NULL, cmd[4096];
    snprintf(cmd, sizeof(cmd), "LP_NATIVE_VECTOR_WIDTH= %s %s devices --json", env, t_vklora_bin());
    T_ASSERT(t_run(cmd, &out, &err) == 0, "%s: %s", cmd, err ? err : "");
    cJSON *doc = cJSON_Parse(out), *d;
    T_ASSERT(doc, "stdout is not JSON: %s", out);
    name[0] = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(doc, "devices")) {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(d, "name"));
        if (s && !strncmp(s, "llvmpipe", 8)) {
            snprintf(name, n, "%s", s);
            break;
        }
    }
    cJSON_Delete(doc);
    free(out), free(err);
    return 0;
}
#endif
static int test_cpu_tune(void) {
#if defined(_WIN32) || !(defined(__x86_64__) || defined(__i386__))
    return 0; /* not done there */
#else
    char tuned[256], plain[256];
    T_ASSERT(!llvmpipe_name("VKLORA_CPU_TUNE=", tuned, sizeof(tuned)), "tuned run");
    T_ASSERT(!llvmpipe_name("VKLORA_CPU_TUNE=off", plain, sizeof(plain)), "plain run");
    if (!tuned[0]) return 0; /* no lavapipe here */
    const char *llvm = strstr(tuned, "LLVM ");
    int major = llvm ? atoi(llvm + 5) : 0;
    __builtin_cpu_init();
    bool want512 = __builtin_cpu_supports("avx512f") && major >= 1 && major <= 15;
    T_ASSERT((strstr(tuned, "512 bits") != NULL) == want512, "LLVM %d, AVX-512 %d: the tuned run got \"%s\"", major,
             __builtin_cpu_supports("avx512f") != 0, tuned);
    T_ASSERT(!want512 || !strstr(plain, "512 bits"), "VKLORA_CPU_TUNE=off still got \"%s\"", plain);
    return 0;
#endif
}

/* The benchmark tools a script drives (tools/bench-types.sh, the README's figures): one JSON object on stdout with
 * --json, the device tuning of a training run (cli/cpu_tune's width), exit 2 on bad arguments. Not on Windows: the
 * bench tools are not part of the Windows build's tests. */
#ifndef _WIN32
static cJSON *bench_json(const char *tool, const char *args) {
    char cmd[4096], *out = NULL, *err = NULL;
    /* the width unset, as for a user: the tool itself must choose it */
    snprintf(cmd, sizeof(cmd), "LP_NATIVE_VECTOR_WIDTH= VKLORA_CPU_TUNE= %s/%s %s --json", VKL_BUILD_ROOT, tool, args);
    int rc = t_run(cmd, &out, &err);
    cJSON *doc = rc == 0 && out ? cJSON_Parse(out) : NULL;
    if (!doc)
        fprintf(stderr, "    %s: exit %d\n    stdout: %.500s\n    stderr: %.500s\n", cmd, rc, out ? out : "",
                err ? err : "");
    free(out), free(err);
    return doc;
}
/* Whether a bench tool ran on the device a training run gets (`tuned`: its llvmpipe name, empty without one). */
static bool ran_like_training(const cJSON *doc, const char *tuned) {
    const char *dev = cJSON_GetStringValue(cJSON_GetObjectItem(doc, "device"));
    return dev && (!tuned[0] || strncmp(dev, "llvmpipe", 8) || !strcmp(dev, tuned));
}
static int test_bench_tools(void) {
    char tuned[256];
    T_ASSERT(!llvmpipe_name("VKLORA_CPU_TUNE=", tuned, sizeof(tuned)), "tuned run");
    cJSON *m = bench_json("vklora-bench-matmul", "--op matmul_t --type q4_k --M 7 --N 33 --K 256 --reps 2");
    T_ASSERT(m, "vklora-bench-matmul --json");
    T_ASSERT(t_json_num(m, "M") == 7 && t_json_num(m, "N") == 33 && t_json_num(m, "K") == 256 &&
                 t_json_num(m, "median_ms") > 0 && t_json_num(m, "gflops") > 0,
             "vklora-bench-matmul fields: %s", cJSON_PrintUnformatted(m));
    T_ASSERT(ran_like_training(m, tuned), "vklora-bench-matmul: %s, a training run on \"%s\"",
             cJSON_PrintUnformatted(m), tuned);
    cJSON_Delete(m);
    cJSON *a = bench_json("vklora-bench-attn", "--B 2 --T 37 --H 4 --KVH 2 --D 16 --reps 2 --window 20 --profile");
    T_ASSERT(a, "vklora-bench-attn --json");
    T_ASSERT(t_json_num(a, "T") == 37 && t_json_num(a, "KVH") == 2 && t_json_num(a, "window") == 20 &&
                 t_json_num(a, "forward_ms") > 0 && t_json_num(a, "backward_ms") > 0 &&
                 t_json_num(a, "forward_gflops") > 0,
             "vklora-bench-attn fields: %s", cJSON_PrintUnformatted(a));
    /* --check 1 (the default) compared with src/ref and failed the run past 2e-5 */
    T_ASSERT(t_json_num(a, "err_dk") >= 0 && t_json_num(a, "err_dk") < 2e-5, "vklora-bench-attn err_dk");
    const char *var = cJSON_GetStringValue(cJSON_GetObjectItem(a, "variant"));
    T_ASSERT(var && var[0], "vklora-bench-attn names the variant that ran");
    T_ASSERT(ran_like_training(a, tuned), "vklora-bench-attn: %s, a training run on \"%s\"",
             cJSON_PrintUnformatted(a), tuned);
    /* --profile: every kernel of the forward and the backward (at least one each) with its time and dispatches */
    cJSON *k, *ks = cJSON_GetObjectItem(a, "kernels");
    int n_fwd = 0, n_back = 0;
    cJSON_ArrayForEach(k, ks) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(k, "name"));
        T_ASSERT(name && t_json_num(k, "ms_per_iter") > 0 && t_json_num(k, "dispatches") >= 1,
                 "vklora-bench-attn --profile entry: %s", cJSON_PrintUnformatted(k));
        if (strstr(name, "attention_back")) n_back++;
        else if (strstr(name, "attention")) n_fwd++;
    }
    T_ASSERT(n_fwd >= 1 && n_back >= 1 && t_json_num(a, "untimed_dispatches") == 0,
             "vklora-bench-attn --profile kernels: %s", cJSON_PrintUnformatted(a));
    cJSON_Delete(a);
    const char *bad[] = {"vklora-bench-attn --T 0", "vklora-bench-attn --H 6 --KVH 4", "vklora-bench-attn --bogus 1",
                         "vklora-bench-matmul --op nope", "vklora-bench-matmul --type q4_k --K 100"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char cmd[4096], *out = NULL, *err = NULL;
        snprintf(cmd, sizeof(cmd), "%s/%s --json", VKL_BUILD_ROOT, bad[i]);
        int rc = t_run(cmd, &out, &err);
        T_ASSERT(rc == 2 && (!out || !out[0]) && err && strstr(err, "usage"), "%s: exit %d, stdout \"%s\"", bad[i],
                 rc, out ? out : "");
        free(out), free(err);
    }
    return 0;
}
#else
static int test_bench_tools(void) { return 0; }
#endif

static int test_no_driver(void) {
    /* A machine without a Vulkan driver: point the loader at no ICD at all. */
    char *out = NULL, *err = NULL;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "VK_DRIVER_FILES=/nonexistent.json VK_ICD_FILENAMES=/nonexistent.json %s devices",
             t_vklora_bin());
    int rc = t_run(cmd, &out, &err);
    T_ASSERT(rc == 1, "exit code %d, expected 1", rc);
    T_ASSERT(err && strstr(err, "mesa-vulkan-drivers"), "message names the package: %s", err ? err : "");
    free(out), free(err);
    return 0;
}

/* ---- vklora data ---- */

/* tmp_file keeps 8 names: paths that must live longer are copied */
static char *tmp_keep(const char *name);

/* A copy of a vocabulary GGUF with tokenizer.chat_template set to `tmpl` (NULL: removed). */
static int write_vocab_with_template(const char *vocab_rel, const char *tmpl, const char *out) {
    vkl_gguf *g = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_gguf_open(t_data_path(vocab_rel), &g, &err), "%s", err.msg);
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key.str, "tokenizer.chat_template"))
            vkl_gguf_writer_set_value(w, g->kv[i].key.str, &g->kv[i].value);
    if (tmpl) vkl_gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);
    vkl_status st = vkl_gguf_writer_write(w, out, &err);
    vkl_gguf_writer_free(w);
    vkl_gguf_close(g);
    T_ASSERT(!st, "%s", err.msg);
    return 0;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static const char *tmp_file(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", t_tmpdir(), name);
    return buf[k];
}

/* Two conversations with an assistant turn and one without (dropped). */
static const char *const chat_jsonl =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"You are terse.\"}, {\"role\": \"user\", \"content\": "
    "\"Name a colour.\"}, {\"role\": \"assistant\", \"content\": \"Red.\"}]}\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"2+2?\"}, {\"role\": \"assistant\", \"content\": \"4\"}, "
    "{\"role\": \"user\", \"content\": \"and 3+3?\"}, {\"role\": \"assistant\", \"content\": \"6, of course.\"}]}\n"
    "{\"messages\": [{\"role\": \"user\", \"content\": \"no answer here\"}]}\n";

static char *tmp_keep(const char *name) { return strdup(tmp_file(name)); }

static cJSON *run_data_json(const char *args, int *rc, char **err) {
    char *out = NULL;
    *rc = run_bin(args, &out, err);
    cJSON *doc = out ? cJSON_Parse(out) : NULL;
    free(out);
    return doc;
}

/* For three template families: the JSON has the documented shape, the counts add up, the ids and the trained
 * flags equal the library's rendering of the same conversations with the template detected in the GGUF, and
 * nothing needs a Vulkan driver (the loader is pointed at no ICD). */
static int test_data_cmd(void) {
    static const struct {
        const char *vocab, *tmpl_file, *marker;
    } cases[] = {
        {"vocab/ggml-vocab-llama-bpe.gguf", "templates/meta-llama-Llama-3.1-8B-Instruct.jinja",
         "Cutting Knowledge Date: December 2023"},
        {"vocab/ggml-vocab-qwen2.gguf", "templates/Qwen-Qwen3-0.6B.jinja", "<think>\n\n</think>\n\n6, of course."},
        {"vocab/ggml-vocab-phi-3.gguf", "templates/microsoft-Phi-3.5-mini-instruct.jinja", "<|assistant|>\n4<|end|>"},
    };
    const char *data = tmp_file("chat.jsonl");
    write_text(data, chat_jsonl);
    for (size_t c = 0; c < VKL_ARRAY_LEN(cases); c++) {
        char *tmpl = t_read_file(t_data_path(cases[c].tmpl_file), NULL);
        T_ASSERT(tmpl, "%s", cases[c].tmpl_file);
        char gname[64], cname[64];
        snprintf(gname, sizeof(gname), "vocab_tmpl_%zu.gguf", c);
        snprintf(cname, sizeof(cname), "data_%zu.json", c);
        const char *gguf = tmp_file(gname), *cfg = tmp_file(cname);
        if (write_vocab_with_template(cases[c].vocab, tmpl, gguf)) return 1;
        char cfg_text[2048];
        snprintf(cfg_text, sizeof(cfg_text),
                 "{\"model\": \"%s\", \"dataset\": {\"path\": \"%s\", \"train_on_responses_only\": true}, "
                 "\"max_seq_length\": 512}",
                 gguf, data);
        write_text(cfg, cfg_text);
        char args[1024];
        snprintf(args, sizeof(args), "data %s --json --show 5", cfg);
        char cmd[2048];
        snprintf(cmd, sizeof(cmd), "VK_DRIVER_FILES=/nonexistent.json VK_ICD_FILENAMES=/nonexistent.json %s %s",
                 t_vklora_bin(), args);
        char *out = NULL, *err = NULL;
        int rc = t_run(cmd, &out, &err);
        T_ASSERT(rc == 0, "%s: exit %d: %s", cases[c].tmpl_file, rc, err ? err : "");
        cJSON *doc = cJSON_Parse(out);
        T_ASSERT(doc && cJSON_IsObject(doc) && cJSON_GetArraySize(doc) == 2, "stdout is one JSON object: %s", out);
        free(out), free(err);
        cJSON *exs = cJSON_GetObjectItem(doc, "examples"), *cnt = cJSON_GetObjectItem(doc, "counts");
        T_ASSERT(cJSON_IsArray(exs) && cJSON_GetArraySize(exs) == 2, "two examples (one conversation dropped)");
        double tokens = 0, trained = 0;
        /* the library's rendering of the same two conversations */
        vkl_gguf *g = NULL;
        vkl_tokenizer *tok = NULL;
        vkl_err verr = {0};
        T_ASSERT(!vkl_gguf_open(gguf, &g, &verr) && !vkl_tokenizer_load(g, &tok, &verr), "%s", verr.msg);
        vkl_chat_template tm = vkl_data_detect_template(vkl_gguf_get_str(g, "tokenizer.chat_template"));
        T_ASSERT(tm != VKL_TEMPLATE_AUTO, "recognised");
        const vkl_message convs[2][4] = {
            {{VKL_ROLE_SYSTEM, "You are terse.", 14}, {VKL_ROLE_USER, "Name a colour.", 14},
             {VKL_ROLE_ASSISTANT, "Red.", 4}},
            {{VKL_ROLE_USER, "2+2?", 4}, {VKL_ROLE_ASSISTANT, "4", 1}, {VKL_ROLE_USER, "and 3+3?", 8},
             {VKL_ROLE_ASSISTANT, "6, of course.", 13}}};
        const size_t n_msgs[2] = {3, 4};
        bool marker_seen = false;
        for (int k = 0; k < 2; k++) {
            cJSON *x = cJSON_GetArrayItem(exs, k);
            const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(x, "text"));
            cJSON *ids = cJSON_GetObjectItem(x, "tokens"), *tr = cJSON_GetObjectItem(x, "trained");
            T_ASSERT(text && cJSON_IsArray(ids) && cJSON_IsArray(tr), "example fields");
            marker_seen |= strstr(text, cases[c].marker) != NULL;
            vkl_chat_opts o = {.responses_only = true};
            vkl_chat_encoding e;
            T_ASSERT(!vkl_data_render_chat(tok, tm, convs[k], n_msgs[k], &o, &e, &verr), "%s", verr.msg);
            T_ASSERT(!strcmp(text, e.text), "text:\n%s\nlibrary:\n%s", text, e.text);
            T_ASSERT(cJSON_GetArraySize(ids) == (int)e.n && cJSON_GetArraySize(tr) == (int)e.n, "%d ids, library %zu",
                     cJSON_GetArraySize(ids), e.n);
            int n_tr = 0;
            for (size_t i = 0; i < e.n; i++) {
                int id = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(ids, (int)i));
                int t = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(tr, (int)i));
                T_ASSERT(id == e.tokens[i], "token %zu: %d, library %d", i, id, e.tokens[i]);
                T_ASSERT(t == (i > 0 && e.labels[i] >= 0), "trained flag %zu", i);
                n_tr += t;
            }
            T_ASSERT(n_tr > 0 && n_tr < (int)e.n, "responses only: some tokens train, not all");
            tokens += (double)e.n;
            trained += n_tr;
            vkl_chat_encoding_free(&e);
        }
        T_ASSERT(marker_seen, "%s: the rendering has \"%s\"", cases[c].tmpl_file, cases[c].marker);
        vkl_tokenizer_free(tok);
        vkl_gguf_close(g);
        T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "examples")) == 2, "examples");
        T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "tokens")) == tokens, "tokens");
        T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "trained_tokens")) == trained, "trained_tokens");
        T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "truncated")) == 0, "truncated");
        T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "dropped")) == 1, "dropped");
        cJSON_Delete(doc);
        free(tmpl);
    }
    return 0;
}

/* Truncation and the plain-text output; without responses-only everything but the first token trains. */
static int test_data_cmd_text_and_truncation(void) {
    const char *data = tmp_file("chat2.jsonl"), *cfg = tmp_file("data_trunc.json");
    write_text(data, chat_jsonl);
    char cfg_text[1024];
    snprintf(cfg_text, sizeof(cfg_text),
             "{\"model\": \"%s\", \"dataset\": \"%s\", \"max_seq_length\": 16, \"chat_template\": \"chatml\"}",
             t_data_path("vocab/ggml-vocab-qwen2.gguf"), data);
    write_text(cfg, cfg_text);
    char args[1024];
    int rc;
    char *err = NULL;
    snprintf(args, sizeof(args), "data %s --json --show 1", cfg);
    cJSON *doc = run_data_json(args, &rc, &err);
    T_ASSERT(rc == 0 && doc, "exit %d: %s", rc, err ? err : "");
    free(err);
    cJSON *cnt = cJSON_GetObjectItem(doc, "counts"), *x = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "examples"), 0);
    T_ASSERT(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "examples")) == 1, "--show 1");
    T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "truncated")) == 2, "both kept examples truncated");
    T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "tokens")) == 32, "2 x 16 tokens");
    T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(cnt, "trained_tokens")) == 30, "all but the first of each");
    cJSON *tr = cJSON_GetObjectItem(x, "trained");
    T_ASSERT(cJSON_GetArraySize(tr) == 16 && cJSON_GetNumberValue(cJSON_GetArrayItem(tr, 0)) == 0 &&
                 cJSON_GetNumberValue(cJSON_GetArrayItem(tr, 1)) == 1,
             "trained flags");
    cJSON_Delete(doc);
    char *out = NULL;
    snprintf(args, sizeof(args), "data %s --show 2", cfg);
    rc = run_bin(args, &out, &err);
    T_ASSERT(rc == 0, "text exit %d: %s", rc, err ? err : "");
    T_ASSERT(strstr(out, "--- example 2") && strstr(out, "template chatml") && strstr(out, "2 truncated") &&
                 strstr(out, "1 dropped"),
             "text output:\n%s", out);
    free(out), free(err);
    /* responses only: the first conversation has no assistant token in its first 16 and is dropped too */
    snprintf(args, sizeof(args), "data %s --show 2 --set dataset.train_on_responses_only=true", cfg);
    rc = run_bin(args, &out, &err);
    T_ASSERT(rc == 0, "text exit %d: %s", rc, err ? err : "");
    T_ASSERT(strstr(out, "1 examples") && strstr(out, "2 dropped") && strstr(out, "1 with nothing trainable") &&
                 strstr(out, "\u27e64<|im_end|>\u27e7"),
             "text output:\n%s", out);
    free(out), free(err);
    return 0;
}

/* Errors: exit 2 with a message on stderr and nothing on stdout. */
static int test_data_cmd_errors(void) {
    char *data = tmp_keep("chat3.jsonl"), *gguf = tmp_keep("vocab_unknown.gguf"), *gemma = tmp_keep("vocab_gemma2.gguf");
    write_text(data, chat_jsonl);
    if (write_vocab_with_template("vocab/ggml-vocab-llama-bpe.gguf", "{{ messages[0].content }} -- my own format",
                                  gguf))
        return 1;
    char *tmpl = t_read_file(t_data_path("templates/google-gemma-2-2b-it.jinja"), NULL);
    T_ASSERT(tmpl, "gemma-2 template");
    int w = write_vocab_with_template("vocab/ggml-vocab-llama-spm.gguf", tmpl, gemma);
    free(tmpl);
    if (w) return 1;
    struct {
        const char *model, *extra, *want[2];
    } cases[] = {
        /* an unrecognised template names the key that forces one; forcing one works (below) */
        {gguf, "", {"dataset.template", "my own format"}},
        /* Gemma 2's template raises on a system message: its message, the row, the way out */
        {gemma, "", {"System role not supported", "line 1"}},
        {gguf, "--set dataset.template=nonsense", {"dataset.template", "nonsense"}},
        {gguf, "--bogus", {"--bogus", NULL}},
        {gguf, "--show x", {"--show", NULL}},
        {"/nonexistent/model.gguf", "", {"/nonexistent/model.gguf", NULL}},
    };
    for (size_t c = 0; c < VKL_ARRAY_LEN(cases); c++) {
        char cfg_text[1024], args[1024];
        const char *cfg = tmp_file("data_err.json");
        snprintf(cfg_text, sizeof(cfg_text), "{\"model\": \"%s\", \"dataset\": \"%s\"}", cases[c].model, data);
        write_text(cfg, cfg_text);
        snprintf(args, sizeof(args), "data %s --json %s", cfg, cases[c].extra);
        char *out = NULL, *err = NULL;
        int rc = run_bin(args, &out, &err);
        T_ASSERT(rc == 2, "case %zu: exit %d, expected 2 (%s)", c, rc, err ? err : "");
        T_ASSERT(!out || !*out, "case %zu: stdout stays empty: %s", c, out);
        for (int k = 0; k < 2; k++)
            T_ASSERT(!cases[c].want[k] || (err && strstr(err, cases[c].want[k])), "case %zu: \"%s\" in: %s", c,
                     cases[c].want[k], err ? err : "");
        free(out), free(err);
    }
    char *out = NULL, *err = NULL;
    T_ASSERT(run_bin("data --help", &out, &err) == 0 && strstr(out, "usage:"), "--help");
    free(out), free(err);
    T_ASSERT(run_bin("data", &out, &err) == 2, "no config: exit 2");
    free(out), free(err);
    /* the way out the message names */
    char cfg_text[1024], args[1024];
    const char *cfg = tmp_file("data_forced.json");
    snprintf(cfg_text, sizeof(cfg_text), "{\"model\": \"%s\", \"dataset\": \"%s\"}", gguf, data);
    write_text(cfg, cfg_text);
    snprintf(args, sizeof(args), "data %s --json --set dataset.template=llama-3.1", cfg);
    int rc;
    cJSON *doc = run_data_json(args, &rc, &err);
    T_ASSERT(rc == 0 && doc, "forced template: exit %d: %s", rc, err ? err : "");
    const char *text = cJSON_GetStringValue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "examples"), 0), "text"));
    T_ASSERT(text && strstr(text, "Cutting Knowledge Date"), "llama-3.1 rendering: %s", text ? text : "");
    cJSON_Delete(doc);
    free(err);
    free(data), free(gguf), free(gemma);
    return 0;
}

const vkl_test_case vkl_tests_cli[] = {
    {"cli/version_help", test_version_help},
    {"cli/usage_errors", test_usage_errors},
    {"cli/devices_json", test_devices_json},
    {"cli/no_driver", test_no_driver},
    {"cli/cpu_tune", test_cpu_tune},
    {"cli/bench_tools", test_bench_tools},
    {"cli/data_json", test_data_cmd},
    {"cli/data_text_truncation", test_data_cmd_text_and_truncation},
    {"cli/data_errors", test_data_cmd_errors},
    {NULL, NULL},
};
