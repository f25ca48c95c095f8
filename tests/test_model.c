/* Model-level tests: loading and validating llama/qwen2 GGUFs, the real stories260K figures (greedy tokens and
 * NLL from ../shared/data), random models of every weight type against the scalar reference forward, and the
 * eval/generate/bench commands as a script would call them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "vklora/gguf.h"
#include "vklora/model.h"
#include "forward.h"
#include "ops/ops.h"
#include "ref/model.h"
#include "vk/vk.h"
#include "vklora/quant.h"

static cJSON *load_expected(void) {
    char *buf = t_read_file(t_data_path("models/stories260K.expected.json"), NULL);
    cJSON *j = buf ? cJSON_Parse(buf) : NULL;
    free(buf);
    return j;
}

static cJSON *run_json(const char *args, int *rc) {
    char cmd[8192], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "%s %s", t_vklora_bin(), args);
    *rc = t_run(cmd, &out, &err);
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    if (*rc || !j) fprintf(stderr, "    command: %s\n    exit %d\n    stderr: %s\n    stdout: %.400s\n", cmd, *rc,
                           err ? err : "", out ? out : "");
    free(out);
    free(err);
    return j;
}

static int test_load_stories(void) {
    vkl_model *m;
    vkl_err err = {0};
    T_ASSERT(vkl_model_load(t_data_path("models/stories260K.gguf"), &m, &err) == VKL_OK, "%s", err.msg);
    const vkl_hparams *hp = &m->hp;
    T_ASSERT(hp->arch == VKL_ARCH_LLAMA && hp->n_layer == 5 && hp->n_embd == 64 && hp->n_head == 8 &&
                 hp->n_head_kv == 4 && hp->head_dim == 8 && hp->n_ff == 172 && hp->n_vocab == 512,
             "hparams");
    T_ASSERT(hp->rope_base == 10000.0f && hp->rope_dim == 8 && !hp->rope_neox, "rope");
    T_ASSERT(m->layers[4].w_down.rows == 64 && m->layers[4].w_down.cols == 172, "ffn_down shape");
    vkl_model_free(m);
    return 0;
}

/* Uploading a model again to its device keeps its buffers (nothing allocated twice); another device is refused. */
static int test_upload_twice(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_model *m;
    vkl_err err = {0};
    T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(m, vk, &err), "%s", err.msg);
    uint64_t bytes = vk->device_bytes;
    const vkl_buffer *head = m->output.buf;
    T_ASSERT(!vkl_model_upload(m, vk, &err) && vk->device_bytes == bytes && m->output.buf == head,
             "a second upload allocated again (%llu -> %llu bytes): %s", (unsigned long long)bytes,
             (unsigned long long)vk->device_bytes, err.msg);
    vkl_vk *other = NULL;
    vkl_vk_options opt = {.validation = !getenv("VKL_TEST_NO_VALIDATION")};
    T_ASSERT(!vkl_vk_create(&opt, &other, &err), "%s", err.msg);
    vkl_status st = vkl_model_upload(m, other, &err);
    vkl_vk_destroy(other);
    T_ASSERT(st == VKL_ERR_INPUT && strstr(err.msg, "already uploaded"), "another device: %d %s", st, err.msg);
    vkl_model_free(m);
    return 0;
}

static int test_load_errors(void) {
    vkl_model *m;
    vkl_err err = {0};
    /* a vocabulary-only GGUF is not a model */
    T_ASSERT(vkl_model_load(t_data_path("vocab/ggml-vocab-llama-spm.gguf"), &m, &err) == VKL_ERR_INPUT, "vocab");
    T_ASSERT(strstr(err.msg, "token_embd.weight"), "%s", err.msg);
    /* a wrong shape, an unsupported architecture and an unsupported type, written with the GGUF writer */
    vkl_gguf *g;
    vkl_err_clear(&err);
    T_ASSERT(vkl_gguf_open(t_data_path("models/stories260K.gguf"), &g, &err) == VKL_OK, "%s", err.msg);
    for (int variant = 0; variant < 3; variant++) {
        vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
        for (uint64_t i = 0; i < g->n_kv; i++) {
            const char *k = g->kv[i].key.str;
            if (variant == 1 && !strcmp(k, "general.architecture"))
                vkl_gguf_writer_set_str(w, k, "gpt-neox");
            else
                vkl_gguf_writer_set_value(w, k, &g->kv[i].value);
        }
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const vkl_gguf_tensor *t = &g->tensors[i];
            int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
            uint32_t type = t->type;
            const void *data = t->data;
            void *tmp = NULL;
            if (variant == 0 && !strcmp(t->name.str, "blk.2.ffn_up.weight")) ne[1] = 171; /* one row short */
            if (variant == 2 && !strcmp(t->name.str, "blk.1.attn_q.weight")) {
                type = VKL_TYPE_I32; /* same size, type vklora cannot compute with */
                tmp = NULL;
            }
            T_ASSERT(vkl_gguf_writer_add_tensor(w, t->name.str, type, t->n_dims, ne, data, &err) == VKL_OK, "%s",
                     err.msg);
            free(tmp);
        }
        char path[512];
        snprintf(path, sizeof(path), "%s/bad-model-%d.gguf", t_tmpdir(), variant);
        T_ASSERT(vkl_gguf_writer_write(w, path, &err) == VKL_OK, "%s", err.msg);
        vkl_gguf_writer_free(w);
        vkl_err_clear(&err);
        T_ASSERT(vkl_model_load(path, &m, &err) == VKL_ERR_INPUT, "variant %d accepted", variant);
        const char *want[] = {"blk.2.ffn_up.weight", "gpt-neox", "blk.1.attn_q.weight"};
        T_ASSERT(strstr(err.msg, want[variant]), "variant %d: %s", variant, err.msg);
        /* and through the CLI: exit 2, message on stderr */
        char cmd[1024], *out = NULL, *e = NULL;
        snprintf(cmd, sizeof(cmd), "%s eval --model %s --text %s", t_vklora_bin(), path,
                 t_data_path("datasets/tinystories_sample.txt"));
        T_ASSERT(t_run(cmd, &out, &e) == 2, "eval on a bad model must exit 2");
        T_ASSERT(e && strstr(e, want[variant]), "stderr: %s", e ? e : "");
        free(out);
        free(e);
    }
    vkl_gguf_close(g);
    return 0;
}

static int test_stories_eval(void) {
    cJSON *expd = load_expected();
    T_ASSERT(expd, "expected.json");
    cJSON *e;
    int checked = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(expd, "nll")) {
        int window = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "window"));
        double want = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "mean_nll_nats"));
        char args[2048];
        snprintf(args, sizeof(args), "eval --model %s --text %s --ctx %d --max-windows 1 --json",
                 t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"), window);
        int rc;
        cJSON *j = run_json(args, &rc);
        T_ASSERT(rc == 0 && j, "eval failed");
        double got = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "mean_nll"));
        double scored = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "tokens_scored"));
        T_ASSERT(scored == window - 1, "scored %g tokens, expected %d", scored, window - 1);
        T_ASSERT(fabs(got - want) <= 1e-4 * want, "window %d: mean NLL %.9f, expected %.9f (rel %.2e)", window, got,
                 want, fabs(got - want) / want);
        T_ASSERT(fabs(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "perplexity")) - exp(got)) < 1e-9 * exp(got),
                 "perplexity");
        cJSON_Delete(j);
        checked++;
    }
    cJSON_Delete(expd);
    T_ASSERT(checked == 2, "expected two windows in expected.json");
    return 0;
}

static int test_stories_generate(void) {
    cJSON *expd = load_expected();
    T_ASSERT(expd, "expected.json");
    cJSON *gr = cJSON_GetObjectItem(expd, "greedy");
    cJSON *want = cJSON_GetObjectItem(gr, "tokens");
    int n_want = cJSON_GetArraySize(want), n_prompt = cJSON_GetArraySize(cJSON_GetObjectItem(gr, "prompt_tokens"));
    char args[2048];
    snprintf(args, sizeof(args), "generate --model %s --prompt \"%s\" --temperature 0 --max-tokens %d --json",
             t_data_path("models/stories260K.gguf"), cJSON_GetStringValue(cJSON_GetObjectItem(gr, "prompt")),
             n_want - n_prompt);
    int rc;
    cJSON *j = run_json(args, &rc);
    T_ASSERT(rc == 0 && j, "generate failed");
    cJSON *got = cJSON_GetObjectItem(j, "tokens");
    T_ASSERT(cJSON_GetArraySize(got) == n_want, "got %d tokens, expected %d", cJSON_GetArraySize(got), n_want);
    for (int i = 0; i < n_want; i++) {
        int a = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(got, i));
        int b = (int)cJSON_GetNumberValue(cJSON_GetArrayItem(want, i));
        T_ASSERT(a == b, "token %d: got %d, expected %d", i, a, b);
    }
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItem(j, "text"));
    T_ASSERT(text && strstr(text, "Once upon a time, there was a little girl named Lily"), "text: %s", text);
    cJSON_Delete(j);
    /* sampling with a seed is reproducible */
    snprintf(args, sizeof(args), "generate --model %s --prompt \"Once\" --temperature 1 --seed 7 --max-tokens 20 --json",
             t_data_path("models/stories260K.gguf"));
    cJSON *a = run_json(args, &rc);
    T_ASSERT(rc == 0 && a, "sampled generate failed");
    cJSON *b = run_json(args, &rc);
    T_ASSERT(rc == 0 && b, "sampled generate failed");
    T_ASSERT(cJSON_Compare(cJSON_GetObjectItem(a, "tokens"), cJSON_GetObjectItem(b, "tokens"), true), "same seed");
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(expd);
    return 0;
}

/* The variants bench reported for one op ("kernels": {"matmul": "texel", ...}), NULL if absent or empty. */
static const char *bench_kernel(const cJSON *j, const char *op) {
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "kernels"), op));
    return v && *v ? v : NULL;
}

static int test_bench_json(void) {
    char args[1024];
    snprintf(args, sizeof(args), "bench --model %s --ctx 64 --iters 1 --json", t_data_path("models/stories260K.gguf"));
    int rc;
    cJSON *j = run_json(args, &rc);
    T_ASSERT(rc == 0 && j, "bench failed");
    T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "tokens_per_second")) > 0, "tokens/s");
    T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "peak_device_bytes")) > 0, "peak memory");
    /* the weight-matmul variants it ran (a CPU device without VKLORA_MATMUL: texel) */
    const char *mk = cJSON_GetStringValue(cJSON_GetObjectItem(j, "matmul_kernels"));
    T_ASSERT(mk && *mk, "matmul_kernels: the variants the run dispatched");
    T_ASSERT(bench_kernel(j, "matmul") && bench_kernel(j, "attention"), "kernels: every op's variants");
    cJSON_Delete(j);
    /* forced variants are the ones reported */
    setenv("VKLORA_MATMUL", "regtile", 1);
    setenv("VKLORA_ATTN", "scalar", 1);
    snprintf(args, sizeof(args), "bench --model %s --ctx 16 --iters 1 --json", t_data_path("models/stories260K.gguf"));
    j = run_json(args, &rc);
    unsetenv("VKLORA_MATMUL");
    unsetenv("VKLORA_ATTN");
    T_ASSERT(rc == 0 && j, "bench with VKLORA_MATMUL=regtile VKLORA_ATTN=scalar failed");
    const char *fm = bench_kernel(j, "matmul"), *fa = bench_kernel(j, "attention");
    T_ASSERT(fm && !strcmp(fm, "regtile") && fa && !strcmp(fa, "scalar"), "forced: matmul %s, attention %s",
             fm ? fm : "(none)", fa ? fa : "(none)");
    cJSON_Delete(j);
    snprintf(args, sizeof(args), "bench --model %s --train --ctx 32 --iters 1 --r 4 --json",
             t_data_path("models/stories260K.gguf"));
    j = run_json(args, &rc);
    T_ASSERT(rc == 0 && j, "bench --train failed");
    T_ASSERT(!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(j, "bench")), "train"), "kind");
    T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "tokens_per_second")) > 0, "tokens/s");
    T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "training_state_bytes_planned")) > 0, "plan");
    const char *mtk = cJSON_GetStringValue(cJSON_GetObjectItem(j, "matmul_t_kernels"));
    T_ASSERT(mtk && *mtk, "matmul_t_kernels: the transposed-product variants the run dispatched");
    T_ASSERT(bench_kernel(j, "matmul_t") && bench_kernel(j, "gemm") && bench_kernel(j, "attention_back"),
             "kernels of the training step: matmul_t, gemm (LoRA), attention_back");
    cJSON_Delete(j);
    /* 2 x 21 tokens: the LoRA products' xa views hold 42 x 16 = 672 floats, on which Debian 13's lavapipe (Mesa 26.1)
     * crashes in its texel gemm; the default variants must avoid it (gemm_texel_avoided in src/ops/matmul.c) */
    snprintf(args, sizeof(args), "bench --model %s --train --batch 2 --ctx 21 --iters 1 --json",
             t_data_path("models/stories260K.gguf"));
    j = run_json(args, &rc);
    T_ASSERT(rc == 0 && j, "bench --train --batch 2 --ctx 21 failed");
    cJSON_Delete(j);
    return 0;
}

/* bench --profile: every timed kernel is a shader the binary embeds (or "copy"), times are positive, the shares
 * sum to 1, and the training step's products and attention are among them; with --lora-dropout the step draws the
 * masks, so the dropout gemm is among them too (and not without). */
static int test_bench_profile(void) {
    char args[1024];
    int rc;
    for (int dp = 0; dp < 2; dp++) {
        snprintf(args, sizeof(args), "bench --model %s --train --ctx 32 --iters 2 --r 4 --profile --json%s",
                 t_data_path("models/stories260K.gguf"), dp ? " --lora-dropout 0.1" : "");
        cJSON *j = run_json(args, &rc);
        T_ASSERT(rc == 0 && j, "bench --profile%s failed", dp ? " --lora-dropout 0.1" : "");
        T_ASSERT(fabs(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "lora_dropout")) - (dp ? 0.1 : 0)) < 1e-6,
                 "lora_dropout in the JSON");
        const cJSON *p = cJSON_GetObjectItem(j, "profile"), *ks = cJSON_GetObjectItem(p, "kernels");
        T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(p, "ms_per_iter")) > 0 && cJSON_GetArraySize(ks) >= 8,
                 "profile: %d kernels", cJSON_GetArraySize(ks));
        double share = 0, last = INFINITY;
        bool gemm = false, attn_back = false, drop = false;
        for (const cJSON *k = ks->child; k; k = k->next) {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(k, "name"));
            double ms = cJSON_GetNumberValue(cJSON_GetObjectItem(k, "ms_per_iter"));
            T_ASSERT(name && (vkl_spirv_find(name) || !strcmp(name, "copy")), "unknown kernel name '%s'",
                     name ? name : "");
            T_ASSERT(ms >= 0 && ms <= last, "%s: %g ms, not in decreasing order", name, ms);
            T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(k, "dispatches")) > 0, "%s: dispatches", name);
            last = ms;
            share += cJSON_GetNumberValue(cJSON_GetObjectItem(k, "share"));
            gemm |= !strncmp(name, "gemm", 4);
            attn_back |= !strncmp(name, "attention_back", 14);
            drop |= strstr(name, "_drop") != NULL;
        }
        T_ASSERT(fabs(share - 1) < 1e-9 && gemm && attn_back, "shares sum to %.12f; gemm %d, attention_back %d",
                 share, gemm, attn_back);
        /* (the GPU variants, gemm tiled / coopmat, take the mask in the same pipeline) */
        const char *gv = bench_kernel(j, "gemm");
        bool named = gv && (strstr(gv, "texel") || strstr(gv, "regtile"));
        T_ASSERT(!named || drop == (dp == 1), "lora_dropout %s: a dropout kernel %s in the profile",
                 dp ? "0.1" : "0", drop ? "is" : "is not");
        cJSON_Delete(j);
    }
    return 0;
}

/* tools/bench_peft.py (the PyTorch + PEFT side of tools/gpu-check.sh) on the CPU with a tiny shape: PEFT where
 * transformers and peft import, else its plain-torch fallback, which must say it is not PEFT. Checks the LoRA
 * parameter count of rank 16 on all seven projections, a first loss near log(vocab) (random init), and the
 * figures gpu-check reads. */
static int test_bench_peft_cpu(void) {
    char cmd[2048], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tools/bench_peft.py --device cpu --preset tiny --ctx 24 --batch 2 "
             "--warmup 1 --steps 2 --json", VKL_SOURCE_ROOT);
    int rc = t_run(cmd, &out, &err);
    cJSON *j = rc == 0 && out ? cJSON_Parse(out) : NULL;
    if (!j) fprintf(stderr, "    command: %s\n    exit %d\n    stderr: %s\n    stdout: %.400s\n", cmd, rc,
                    err ? err : "", out ? out : "");
    free(out);
    free(err);
    T_ASSERT(j, "bench_peft.py failed");
    bool peft = t_run("/usr/bin/python3 -c 'import peft, transformers'", NULL, NULL) == 0;
    const char *impl = cJSON_GetStringValue(cJSON_GetObjectItem(j, "impl"));
    T_ASSERT(impl && (peft ? !strcmp(impl, "peft") : !strcmp(impl, "fallback (plain torch, not PEFT)")),
             "impl \"%s\" (peft importable: %d)", impl ? impl : "", peft);
    /* tiny: dim 64, 4 heads of 16, 2 kv heads, ff 160, 2 layers; r (in + out) per projection */
    const double r = 16, per_layer = r * ((64 + 64) + 2 * (64 + 32) + (64 + 64) + 3 * (64 + 160));
    double n_train = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "trainable_params"));
    T_ASSERT(n_train == 2 * per_layer, "trainable parameters %.0f, expected %.0f", n_train, 2 * per_layer);
    double l0 = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "loss_first"));
    T_ASSERT(fabs(l0 - log(320.0)) < 0.5, "first loss %g, expected near log(320) = %g", l0, log(320.0));
    T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "tokens_per_second")) > 0, "tokens/s");
    T_ASSERT(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "peak_memory_bytes")) > 0, "peak memory");
    cJSON_Delete(j);
    /* a bad argument is refused with exit 2 and a message */
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tools/bench_peft.py --device cpu --preset tiny --ctx 0",
             VKL_SOURCE_ROOT);
    rc = t_run(cmd, NULL, &err);
    T_ASSERT(rc == 2 && err && strstr(err, "--ctx"), "--ctx 0: exit %d, stderr %s", rc, err ? err : "");
    free(err);
    return 0;
}

/* The variant registry of src/ops/variants.c: first-use order, no duplicates, names copied and truncated, a full
 * table reported rather than silently dropped, output always terminated. */
static int test_variant_registry(void) {
    char buf[1024], small[12], name[64];
    vkl_op_variants_reset();
    T_ASSERT(!strcmp(vkl_op_variants_list(buf, sizeof(buf)), ""), "empty: \"%s\"", buf);
    strcpy(name, "texel");
    vkl_op_variant_used("matmul", name);
    strcpy(name, "overwritten"); /* the registry keeps its own copy */
    vkl_op_variant_used("attention", "tile");
    vkl_op_variant_used("matmul", "coopmat");
    vkl_op_variant_used("matmul", "texel");
    T_ASSERT(!strcmp(vkl_op_variants_list(buf, sizeof(buf)), "matmul: texel,coopmat; attention: tile"), "list: %s",
             buf);
    T_ASSERT(!strcmp(vkl_op_variants_of("matmul", buf, sizeof(buf)), "texel,coopmat"), "of matmul: %s", buf);
    T_ASSERT(!strcmp(vkl_op_variants_of("gemm", buf, sizeof(buf)), ""), "of gemm: %s", buf);
    vkl_op_variants_list(small, sizeof(small));
    T_ASSERT(strlen(small) == sizeof(small) - 1 && !strncmp(small, "matmul: tex", 11), "truncated: %s", small);
    char ops[4][32];
    T_ASSERT(vkl_op_variants_ops(ops, 4) == 2 && !strcmp(ops[0], "matmul") && !strcmp(ops[1], "attention"), "ops");
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "v%d_with_a_name_longer_than_the_registry_keeps", i);
        vkl_op_variant_used("many", name);
    }
    vkl_op_variants_of("many", buf, sizeof(buf));
    T_ASSERT(!strncmp(buf, "v0_with_a_name_longer_than_the", 30) && !strstr(buf, "keeps"), "truncated name: %s", buf);
    T_ASSERT(strstr(vkl_op_variants_list(buf, sizeof(buf)), "(4 not recorded)"), "overflow reported: %s", buf);
    vkl_op_variants_reset();
    T_ASSERT(!strcmp(vkl_op_variants_list(buf, sizeof(buf)), ""), "reset: %s", buf);
    return 0;
}

static int test_cli_errors(void) {
    char cmd[2048], *out = NULL, *err = NULL;
    const char *cases[] = {
        "eval --model /nonexistent.gguf --text /etc/hostname",
        "eval --text /etc/hostname",
        "eval --model M --text T --ctx 1",
        "generate --model /nonexistent.gguf --prompt hi",
        "generate --prompt hi",
        "generate --model M --prompt hi --top-p 2",
        "bench --model M --ctx zero",
        "bench --model M --lora-dropout 0.1",
        "bench --model M --train --lora-dropout 1",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(cmd, sizeof(cmd), "%s %s", t_vklora_bin(), cases[i]);
        int rc = t_run(cmd, &out, &err);
        T_ASSERT(rc == 2, "'%s' exited %d, expected 2", cases[i], rc);
        T_ASSERT(err && *err, "'%s': no message", cases[i]);
        T_ASSERT(!out || !*out, "'%s': stdout not empty", cases[i]);
        free(out), free(err);
    }
    return 0;
}

/* Random models written by tools/mkmodel.c in every weight type (dims multiples of 256): the device forward equals
 * the scalar reference forward on the same quantized bytes. Bound: both decode identical weights; the device
 * accumulates in fp32 in another order than the double reference, so logits differ by ~sqrt(K)*2^-24 relative per
 * product over 3 layers of K <= 512: 2e-4 of the largest logit is ample and still catches any decoding error (a
 * wrong scale or nibble moves logits by whole percents). */
/* extra: more mkmodel options (they override the defaults before them) */
static int check_random_model_with(const char *type, const char *arch, const char *extra) {
    char path[512], cmd[1024];
    snprintf(path, sizeof(path), "%s/rand-%s-%s.gguf", t_tmpdir(), arch, type);
    snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --arch %s --type %s --dim 256 --ff 512 --layers 2 --heads 4 "
             "--kv-heads 2 --seed 3 %s >/dev/null", VKL_BUILD_ROOT, path, arch, type, extra);
    T_ASSERT(system(cmd) == 0, "mkmodel %s", type);
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    vkl_model *m;
    T_ASSERT(!vkl_model_load(path, &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(m, vk, &err), "%s", err.msg);
    const uint32_t T = 37, V = m->hp.n_vocab;
    int32_t tok[37], tgt[37];
    for (uint32_t i = 0; i < T; i++) tok[i] = (int32_t)(t_rng_u32() % V);
    for (uint32_t i = 0; i < T; i++) tgt[i] = i + 1 < T ? tok[i + 1] : -1;
    float *ref_logits = malloc((size_t)T * V * 4), *ref_nll = malloc(T * 4), *nll = malloc(T * 4);
    T_ASSERT(vkl_ref_forward(m, tok, T, tgt, ref_logits, ref_nll), "reference forward");
    vkl_fwd *f;
    vkl_fwd_dims d = {.max_seq = 1, .max_T = T, .n_ctx = T};
    T_ASSERT(!vkl_fwd_create(vk, m, &d, &f, &err), "%s", err.msg);
    T_ASSERT(!vkl_fwd_run(f, tok, 1, T, 0, tgt, nll, NULL, &err), "%s", err.msg);
    float *logits = malloc((size_t)T * V * 4);
    T_ASSERT(f->logit_rows >= T, "one logits chunk");
    T_ASSERT(!vkl_buffer_download(vk, &f->logits, 0, logits, (uint64_t)T * V * 4, &err), "%s", err.msg);
    double e = t_max_rel_err(logits, ref_logits, (size_t)T * V);
    T_ASSERT(e < 2e-4, "%s %s: logits max rel err %.3g", arch, type, e);
    for (uint32_t i = 0; i + 1 < T; i++)
        T_ASSERT(fabs(nll[i] - ref_nll[i]) < 1e-3, "%s %s: nll[%u] %.6f vs %.6f", arch, type, i, nll[i], ref_nll[i]);
    /* incremental decoding against the KV cache gives the same last logits as the full pass */
    vkl_fwd *g;
    vkl_fwd_dims d2 = {.max_seq = 1, .max_T = T, .n_ctx = T};
    T_ASSERT(!vkl_fwd_create(vk, m, &d2, &g, &err), "%s", err.msg);
    float *last = malloc((size_t)V * 4);
    T_ASSERT(!vkl_fwd_run(g, tok, 1, T - 3, 0, NULL, NULL, last, &err), "%s", err.msg);
    for (uint32_t p = T - 3; p < T; p++) T_ASSERT(!vkl_fwd_run(g, &tok[p], 1, 1, p, NULL, NULL, last, &err), "%s", err.msg);
    double e2 = t_max_rel_err(last, ref_logits + (size_t)(T - 1) * V, V);
    T_ASSERT(e2 < 2e-4, "%s %s: KV-cache decoding max rel err %.3g", arch, type, e2);
    free(last);
    vkl_fwd_destroy(g);
    vkl_fwd_destroy(f);
    vkl_model_free(m);
    free(ref_logits), free(ref_nll), free(nll), free(logits);
    return 0;
}

static int check_random_model(const char *type, const char *arch) {
    return check_random_model_with(type, arch, "");
}

/* Every architecture's features on the device against the scalar reference graph: Llama 3 rope_freqs with a
 * tied head, Qwen3's q/k norms with head_dim != C/H, Gemma 2's GELU, post-norms, soft-caps and alternating
 * windows, Gemma 3's 5:1-style pattern with its local rope base and linear scaling on global layers, Phi-3's
 * fused weights with partial rotary and longrope, Mistral 3's YaRN and attention temperature (positions past the
 * original context). */
static int test_every_architecture(void) {
    static const struct {
        const char *arch, *type, *extra;
    } cases[] = {
        {"llama", "q4_k", "--rope-freqs --tied --rope-base 500000"},
        {"llama", "f16", "--head-dim 96 --heads 4 --kv-heads 1 --scaling yarn --factor 8 --orig-ctx 16"},
        {"qwen3", "q8_0", "--head-dim 96 --tied --rope-base 1000000"},
        {"qwen2", "f32", "--head-dim 30"}, /* head_dim not a multiple of 4: the scalar attention kernels */
        {"gemma2", "f32", "--head-dim 96 --window 7 --softcap 5,3 --tied"},
        {"gemma3", "q6_k", "--layers 3 --kv-heads 1 --window 6 --swa-period 2 --rope-base 1000000 --tied "
                           "--scaling linear --factor 8"},
        {"phi3", "q4_0", "--rope-dim 48 --longrope --ctx 64 --orig-ctx 16"},
        {"phi3", "f32", "--rope-dim 48 --longrope --ctx 64 --orig-ctx 48"},
        {"mistral3", "bf16", "--head-dim 80 --heads 4 --kv-heads 2 --scaling yarn --factor 4 --orig-ctx 8 "
                             "--attn-temp 0.3"},
    };
    t_rng_seed(23);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (check_random_model_with(cases[i].type, cases[i].arch, cases[i].extra)) return 1;
    return 0;
}

static int test_random_models(void) {
    const char *types[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"};
    t_rng_seed(21);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (check_random_model(types[i], "llama")) return 1;
    return 0;
}

static int test_random_qwen2(void) {
    t_rng_seed(22);
    return check_random_model("q4_k", "qwen2") || check_random_model("f16", "qwen2");
}

/* A device too small for the job: clear messages and exit 1, before anything is allocated. */
static int test_memory_budget(void) {
    char cmd[2048], *out = NULL, *err = NULL;
    const char *M = t_data_path("models/stories260K.gguf"), *D = t_data_path("datasets/tinystories_sample.txt");
    snprintf(cmd, sizeof(cmd), "VKLORA_MEMORY_BUDGET=2M %s eval --model %s --text %s --ctx 512", t_vklora_bin(), M, D);
    T_ASSERT(t_run(cmd, &out, &err) == 1, "eval over budget must exit 1");
    T_ASSERT(err && strstr(err, "activations") && strstr(err, "shorter context"), "message: %s", err ? err : "");
    free(out), free(err);
    snprintf(cmd, sizeof(cmd), "VKLORA_MEMORY_BUDGET=500K %s generate --model %s --prompt hi", t_vklora_bin(), M);
    T_ASSERT(t_run(cmd, &out, &err) == 1, "weights over budget must exit 1");
    T_ASSERT(err && strstr(err, "weights need"), "message: %s", err ? err : "");
    free(out), free(err);
    char cfg[600];
    snprintf(cfg, sizeof(cfg), "%s/budget.json", t_tmpdir());
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"model\": \"%s\", \"dataset\": \"%s\", \"max_seq_length\": 256, \"output_dir\": \"%s/budget\"}", M, D,
            t_tmpdir());
    fclose(f);
    snprintf(cmd, sizeof(cmd), "VKLORA_MEMORY_BUDGET=3M %s train %s", t_vklora_bin(), cfg);
    T_ASSERT(t_run(cmd, &out, &err) == 1, "train over budget must exit 1");
    T_ASSERT(err && strstr(err, "use_gradient_checkpointing"), "message: %s", err ? err : "");
    free(out), free(err);
    return 0;
}

const vkl_test_case vkl_tests_model[] = {
    {"model/memory_budget_errors", test_memory_budget},
    {"model/bench_profile_kernels", test_bench_profile},
    {"model/load_stories260K", test_load_stories},
    {"model/load_errors", test_load_errors},
    {"model/upload_twice", test_upload_twice},
    {"model/stories260K_eval_nll", test_stories_eval},
    {"model/stories260K_greedy", test_stories_generate},
    {"model/random_models_every_type_vs_ref", test_random_models},
    {"model/random_qwen2_vs_ref", test_random_qwen2},
    {"model/every_architecture_vs_ref", test_every_architecture},
    {"model/bench_json", test_bench_json},
    {"model/variant_registry", test_variant_registry},
    {"model/bench_peft_cpu", test_bench_peft_cpu},
    {"model/cli_errors", test_cli_errors},
    {NULL, NULL},
};
