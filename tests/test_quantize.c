/* Tests of whole-model quantization: llama.cpp's per-tensor mix rules, round-trip error per type, `vklora quantize`
 * output that loads and evaluates, quantize-on-load against the file, `vklora merge`, and bad input. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "forward.h"
#include "harness.h"
#include "ref/model.h"
#include "vk/vk.h"
#include "vklora/adapter.h"
#include "vklora/gguf.h"
#include "vklora/lora.h"
#include "vklora/quant.h"
#include "vklora/quantize.h"

static bool contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* A random F32 llama model with GQA, 4 layers, rows of 256 and 512 (every block size divides them). */
static const char *f32_model(void) {
    static char path[512];
    if (!path[0]) {
        snprintf(path, sizeof(path), "%s/qz-f32.gguf", t_tmpdir());
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --type f32 --dim 256 --ff 512 --layers 4 --heads 4 "
                 "--kv-heads 2 --seed 11 >/dev/null", VKL_BUILD_ROOT, path);
        if (t_run(cmd, NULL, NULL) != 0) path[0] = '\0';
    }
    return path[0] ? path : NULL;
}

/* Plain English over the mkmodel vocabulary: ~300 tokens, so eval scores several windows. */
static const char *text_file(void) {
    static char path[512];
    if (!path[0]) {
        snprintf(path, sizeof(path), "%s/qz-text.txt", t_tmpdir());
        FILE *f = fopen(path, "w");
        if (!f) return NULL;
        for (int i = 0; i < 6; i++)
            fprintf(f, "Once upon a time there was a little dog. He loved to play with the ball in the sun. "
                       "One day she saw a big cat in the tree and they went to find her friend. ");
        fclose(f);
    }
    return path;
}

static const char *TN(uint32_t type) { return vkl_type_traits_get(type)->name; }

/* ---- the mix rules ---- */

static uint32_t rule(const vkl_quant_layout *lay, vkl_quant_mode mode, const char *name, uint64_t ne0) {
    return vkl_quant_tensor_type(lay, mode, name, 2, ne0, VKL_TYPE_F32);
}

/* llama.cpp's use_more_bits(i, n), written out by hand for n = 8 and 32. */
static bool more_bits_8(int l) { return l == 0 || l == 3 || l == 6 || l == 7; }
static bool more_bits_32(int l) { return l < 4 || l >= 28 || (l >= 4 && (l - 4) % 3 == 2); }

static int check_km(const vkl_quant_layout *lay, vkl_quant_mode mode, uint32_t base, bool (*more)(int)) {
    char n[64];
    for (uint32_t l = 0; l < lay->n_layer; l++) {
        uint32_t want = more((int)l) ? VKL_TYPE_Q6_K : base;
        snprintf(n, sizeof(n), "blk.%u.attn_v.weight", l);
        T_ASSERT(rule(lay, mode, n, 4096) == want, "%s: %s, want %s", n, TN(rule(lay, mode, n, 4096)), TN(want));
        snprintf(n, sizeof(n), "blk.%u.ffn_down.weight", l);
        T_ASSERT(rule(lay, mode, n, 11008) == want, "%s: %s, want %s", n, TN(rule(lay, mode, n, 11008)), TN(want));
        const char *plain[] = {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"};
        for (int i = 0; i < 5; i++) {
            snprintf(n, sizeof(n), "blk.%u.%s.weight", l, plain[i]);
            T_ASSERT(rule(lay, mode, n, 4096) == base, "%s: %s", n, TN(rule(lay, mode, n, 4096)));
        }
        snprintf(n, sizeof(n), "blk.%u.attn_norm.weight", l);
        T_ASSERT(vkl_quant_tensor_type(lay, mode, n, 1, 4096, VKL_TYPE_F32) == VKL_TYPE_F32, "norm stays f32");
        snprintf(n, sizeof(n), "blk.%u.attn_q.bias", l);
        T_ASSERT(vkl_quant_tensor_type(lay, mode, n, 1, 4096, VKL_TYPE_F32) == VKL_TYPE_F32, "bias stays f32");
    }
    T_ASSERT(rule(lay, mode, "output.weight", 4096) == VKL_TYPE_Q6_K, "output q6_K");
    T_ASSERT(rule(lay, mode, "token_embd.weight", 4096) == (lay->has_output ? base : VKL_TYPE_Q6_K), "token_embd");
    return 0;
}

static int test_mix_rules(void) {
    vkl_quant_layout l8 = {.arch = VKL_ARCH_LLAMA, .n_layer = 8, .n_head = 32, .n_head_kv = 8, .has_output = true};
    vkl_quant_layout l32 = {.arch = VKL_ARCH_QWEN2, .n_layer = 32, .n_head = 28, .n_head_kv = 4, .has_output = true};
    if (check_km(&l8, VKL_QUANT_Q4_K_M, VKL_TYPE_Q4_K, more_bits_8) ||
        check_km(&l8, VKL_QUANT_Q5_K_M, VKL_TYPE_Q5_K, more_bits_8) ||
        check_km(&l32, VKL_QUANT_Q4_K_M, VKL_TYPE_Q4_K, more_bits_32) ||
        check_km(&l32, VKL_QUANT_Q5_K_M, VKL_TYPE_Q5_K, more_bits_32))
        return 1;
    /* tied head: the embedding is the output and gets its rule */
    vkl_quant_layout tied = l8;
    tied.has_output = false;
    if (check_km(&tied, VKL_QUANT_Q4_K_M, VKL_TYPE_Q4_K, more_bits_8)) return 1;
    /* single-type mixes: no per-layer bumps; output q6_K except in q8_0 */
    const struct { vkl_quant_mode mode; uint32_t base, out; } single[] = {
        {VKL_QUANT_Q6_K, VKL_TYPE_Q6_K, VKL_TYPE_Q6_K}, {VKL_QUANT_Q8_0, VKL_TYPE_Q8_0, VKL_TYPE_Q8_0},
        {VKL_QUANT_Q4_0, VKL_TYPE_Q4_0, VKL_TYPE_Q6_K}, {VKL_QUANT_F16, VKL_TYPE_F16, VKL_TYPE_F16},
        {VKL_QUANT_BF16, VKL_TYPE_BF16, VKL_TYPE_BF16}, {VKL_QUANT_F32, VKL_TYPE_F32, VKL_TYPE_F32}};
    for (size_t i = 0; i < VKL_ARRAY_LEN(single); i++) {
        const char *mn = vkl_quant_mode_names[single[i].mode];
        T_ASSERT(rule(&l8, single[i].mode, "blk.0.attn_v.weight", 4096) == single[i].base, "%s attn_v", mn);
        T_ASSERT(rule(&l8, single[i].mode, "blk.7.ffn_down.weight", 4096) == single[i].base, "%s ffn_down", mn);
        T_ASSERT(rule(&l8, single[i].mode, "output.weight", 4096) == single[i].out, "%s output", mn);
        T_ASSERT(rule(&l8, single[i].mode, "token_embd.weight", 4096) == single[i].base, "%s token_embd", mn);
        T_ASSERT(rule(&tied, single[i].mode, "token_embd.weight", 4096) == single[i].out, "%s tied embd", mn);
        T_ASSERT(vkl_quant_tensor_type(&l8, single[i].mode, "output_norm.weight", 1, 4096, VKL_TYPE_F32) ==
                     VKL_TYPE_F32, "%s norm", mn);
    }
    /* f16 input to f32: a conversion too; and keep never changes anything */
    T_ASSERT(vkl_quant_tensor_type(&l8, VKL_QUANT_F32, "blk.0.attn_q.weight", 2, 64, VKL_TYPE_F16) == VKL_TYPE_F32,
             "f32 mix");
    T_ASSERT(vkl_quant_tensor_type(&l8, VKL_QUANT_KEEP, "blk.0.attn_q.weight", 2, 64, VKL_TYPE_F16) == VKL_TYPE_F16,
             "keep");
    /* llama 70B (80 layers, GQA): the q4_k_m attn_v that do not get q6_K get q5_K; not without GQA, not for qwen2 */
    vkl_quant_layout l70 = {.arch = VKL_ARCH_LLAMA, .n_layer = 80, .n_head = 64, .n_head_kv = 8, .has_output = true};
    T_ASSERT(rule(&l70, VKL_QUANT_Q4_K_M, "blk.0.attn_v.weight", 8192) == VKL_TYPE_Q6_K, "70B more bits");
    T_ASSERT(rule(&l70, VKL_QUANT_Q4_K_M, "blk.10.attn_v.weight", 8192) == VKL_TYPE_Q5_K, "70B attn_v bump");
    T_ASSERT(rule(&l70, VKL_QUANT_Q4_K_M, "blk.10.attn_q.weight", 8192) == VKL_TYPE_Q4_K, "70B attn_q");
    T_ASSERT(rule(&l70, VKL_QUANT_Q5_K_M, "blk.10.attn_v.weight", 8192) == VKL_TYPE_Q5_K, "70B q5_k_m");
    vkl_quant_layout l65 = l70;
    l65.n_head_kv = 64;
    T_ASSERT(rule(&l65, VKL_QUANT_Q4_K_M, "blk.10.attn_v.weight", 8192) == VKL_TYPE_Q4_K, "65B: no bump");
    l65 = l70;
    l65.arch = VKL_ARCH_QWEN2;
    T_ASSERT(rule(&l65, VKL_QUANT_Q4_K_M, "blk.10.attn_v.weight", 8192) == VKL_TYPE_Q4_K, "qwen2: no bump");
    /* fallbacks: rows of 288 (stories15M) are not whole 256-blocks, rows of 48 not whole 32-blocks */
    T_ASSERT(rule(&l8, VKL_QUANT_Q4_K_M, "blk.1.attn_q.weight", 288) == VKL_TYPE_Q8_0, "q4_K fallback");
    T_ASSERT(rule(&l8, VKL_QUANT_Q5_K_M, "blk.1.attn_q.weight", 288) == VKL_TYPE_Q8_0, "q5_K fallback");
    T_ASSERT(rule(&l8, VKL_QUANT_Q4_K_M, "blk.0.ffn_down.weight", 768) == VKL_TYPE_Q6_K, "768 = 3 blocks");
    T_ASSERT(rule(&l8, VKL_QUANT_Q4_K_M, "blk.0.ffn_down.weight", 800) == VKL_TYPE_Q8_0, "q6_K fallback");
    T_ASSERT(rule(&l8, VKL_QUANT_Q4_K_M, "output.weight", 288) == VKL_TYPE_Q8_0, "output fallback");
    T_ASSERT(rule(&l8, VKL_QUANT_Q4_0, "blk.1.attn_q.weight", 288) == VKL_TYPE_Q4_0, "q4_0 fits 288");
    T_ASSERT(rule(&l8, VKL_QUANT_Q4_K_M, "blk.1.attn_q.weight", 48) == VKL_TYPE_F16, "f16 last resort");
    T_ASSERT(rule(&l8, VKL_QUANT_Q4_0, "blk.1.attn_q.weight", 48) == VKL_TYPE_F16, "q4_0 last resort");
    T_ASSERT(rule(&l8, VKL_QUANT_Q8_0, "output.weight", 48) == VKL_TYPE_F16, "q8_0 last resort");
    /* file types as llama.cpp numbers them */
    T_ASSERT(vkl_quant_mode_ftype(VKL_QUANT_Q4_K_M) == 15 && vkl_quant_mode_ftype(VKL_QUANT_Q5_K_M) == 17 &&
                 vkl_quant_mode_ftype(VKL_QUANT_Q6_K) == 18 && vkl_quant_mode_ftype(VKL_QUANT_Q8_0) == 7 &&
                 vkl_quant_mode_ftype(VKL_QUANT_Q4_0) == 2 && vkl_quant_mode_ftype(VKL_QUANT_F16) == 1 &&
                 vkl_quant_mode_ftype(VKL_QUANT_BF16) == 32 && vkl_quant_mode_ftype(VKL_QUANT_F32) == 0,
             "LLAMA_FTYPE numbers");
    T_ASSERT(vkl_quant_mode_from_name("Q4_K_M") == VKL_QUANT_Q4_K_M && vkl_quant_mode_from_name("q3_k") < 0,
             "mode names");
    return 0;
}

/* ---- the row converter: same bytes as row-by-row reference quantization, on any thread count ---- */

static int test_rows_match_reference(void) {
    const uint64_t rows = 67, cols = 512;
    float *x = malloc(rows * cols * 4), *y = malloc(cols * 4);
    t_rng_seed(5);
    for (uint64_t i = 0; i < rows * cols; i++) x[i] = t_rng_uniform(-1, 1) * (1 + (float)(i % 97) / 10);
    const uint32_t types[] = {VKL_TYPE_F32, VKL_TYPE_F16, VKL_TYPE_BF16, VKL_TYPE_Q8_0,
                              VKL_TYPE_Q4_0, VKL_TYPE_Q4_K, VKL_TYPE_Q5_K, VKL_TYPE_Q6_K};
    for (size_t k = 0; k < VKL_ARRAY_LEN(types); k++) {
        uint64_t rb;
        T_ASSERT(vkl_type_row_bytes(types[k], cols, &rb), "row bytes");
        uint8_t *a = malloc(rows * rb), *b = malloc(rows * rb);
        vkl_err err = {0};
        double rel;
        T_ASSERT(!vkl_quantize_rows(VKL_TYPE_F32, x, types[k], a, rows, cols, NULL, &rel, &err), "%s", err.msg);
        double e2 = 0, r2 = 0;
        for (uint64_t r = 0; r < rows; r++) {
            T_ASSERT(vkl_ref_quantize(types[k], x + r * cols, b + r * rb, cols), "ref");
            vkl_ref_dequantize(types[k], b + r * rb, y, cols);
            for (uint64_t c = 0; c < cols; c++) {
                e2 += (y[c] - x[r * cols + c]) * (double)(y[c] - x[r * cols + c]);
                r2 += (double)x[r * cols + c] * x[r * cols + c];
            }
        }
        T_ASSERT(!memcmp(a, b, rows * rb), "%s: threaded bytes differ from row-by-row", TN(types[k]));
        T_ASSERT(fabs(rel - sqrt(e2 / r2)) <= 1e-9 + 1e-6 * rel, "%s: rel_rmse %g vs %g", TN(types[k]), rel,
                 sqrt(e2 / r2));
        free(a);
        free(b);
    }
    free(x);
    free(y);
    return 0;
}

/* ---- whole files ---- */

/* Round-trip bounds by type on normal(0, 1/sqrt(fan-in)) weights (relative RMS error, ~2x the measured value):
 * fp16 keeps 11 bits (2^-12 rms), bf16 8 bits, q8_0 a step of absmax/127 per 32, the k-quants 6/5/4 bits with
 * per-16/32 scales, q4_0 4 bits with one scale per 32. */
static double bound_of(uint32_t type) {
    switch (type) {
    case VKL_TYPE_F32: return 0;
    case VKL_TYPE_F16: return 4e-4;
    case VKL_TYPE_BF16: return 3e-3;
    case VKL_TYPE_Q8_0: return 8e-3;
    case VKL_TYPE_Q6_K: return 0.02;
    case VKL_TYPE_Q5_K: return 0.04;
    case VKL_TYPE_Q4_K: return 0.08;
    case VKL_TYPE_Q4_0: return 0.14;
    default: return -1;
    }
}

static int test_file_roundtrip(void) {
    const char *in = f32_model();
    T_ASSERT(in, "mkmodel");
    vkl_err err = {0};
    vkl_gguf *g;
    T_ASSERT(!vkl_gguf_open(in, &g, &err), "%s", err.msg);
    vkl_quant_layout lay = {.arch = VKL_ARCH_LLAMA, .n_layer = 4, .n_head = 4, .n_head_kv = 2, .has_output = true};
    for (int mode = 1; mode < VKL_QUANT_COUNT; mode++) {
        char out[512];
        snprintf(out, sizeof(out), "%s/qz-rt-%s.gguf", t_tmpdir(), vkl_quant_mode_names[mode]);
        vkl_quant_report rep;
        T_ASSERT(!vkl_quantize_file(in, out, (vkl_quant_mode)mode, &rep, &err), "%s", err.msg);
        T_ASSERT(rep.n == g->n_tensors, "every tensor reported");
        vkl_gguf *q;
        T_ASSERT(!vkl_gguf_open(out, &q, &err), "%s", err.msg);
        uint64_t ft;
        T_ASSERT(vkl_gguf_get_u64(q, "general.file_type", &ft) && (int)ft == vkl_quant_mode_ftype(mode), "file_type");
        T_ASSERT(q->n_kv >= g->n_kv && vkl_gguf_get_str(q, "tokenizer.ggml.model"), "metadata copied");
        float *x = NULL, *y = NULL;
        for (uint32_t i = 0; i < rep.n; i++) {
            const vkl_gguf_tensor *a = &g->tensors[i], *b = &q->tensors[i];
            uint32_t want = vkl_quant_tensor_type(&lay, (vkl_quant_mode)mode, a->name.str, a->n_dims,
                                                  (uint64_t)a->ne[0], a->type);
            T_ASSERT(!strcmp(a->name.str, b->name.str) && b->type == want && rep.t[i].to_type == want,
                     "%s %s: type %s, rule says %s", vkl_quant_mode_names[mode], a->name.str, TN(b->type), TN(want));
            double bound = bound_of(want);
            T_ASSERT(rep.t[i].rel_rmse <= bound, "%s %s (%s): rel_rmse %.3e > %.1e", vkl_quant_mode_names[mode],
                     a->name.str, TN(want), rep.t[i].rel_rmse, bound);
            if (want != VKL_TYPE_F32) T_ASSERT(rep.t[i].rel_rmse > 0, "a conversion has some error");
            /* the reported error is the error of the written bytes */
            uint64_t n = a->size / 4;
            x = realloc(x, n * 4), y = realloc(y, n * 4);
            T_ASSERT(vkl_ref_dequantize(b->type, b->data, y, n), "dequant");
            memcpy(x, a->data, n * 4);
            double e2 = 0, r2 = 0;
            for (uint64_t k = 0; k < n; k++) e2 += (y[k] - x[k]) * (double)(y[k] - x[k]), r2 += (double)x[k] * x[k];
            T_ASSERT(fabs(sqrt(e2 / r2) - rep.t[i].rel_rmse) <= 1e-6 * rep.t[i].rel_rmse + 1e-12, "rel_rmse");
        }
        free(x);
        free(y);
        vkl_gguf_close(q);
        vkl_quant_report_free(&rep);
    }
    vkl_gguf_close(g);
    return 0;
}

static double eval_nll(const char *model, const char *extra) { return t_eval_nll(model, text_file(), NULL, extra); }

/* `vklora quantize` files load and evaluate close to the F32 model: the random model's NLL moves by far less
 * than the weight error (the logits are sums over many weights whose errors are independent). Bounds are ~3x the
 * measured change. */
static int test_cli_quantize_eval(void) {
    const char *in = f32_model();
    T_ASSERT(in, "mkmodel");
    double base = eval_nll(in, NULL);
    T_ASSERT(isfinite(base) && base > 1, "f32 eval: %g", base);
    const struct { const char *type; double tol; } cases[] = {{"q8_0", 2e-3}, {"q4_k_m", 0.02}, {"f16", 2e-4}};
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++) {
        char out[512], cmd[2048], *so = NULL, *se = NULL;
        snprintf(out, sizeof(out), "%s/qz-cli-%s.gguf", t_tmpdir(), cases[i].type);
        snprintf(cmd, sizeof(cmd), "%s quantize %s %s %s --json", t_vklora_bin(), in, out, cases[i].type);
        int rc = t_run(cmd, &so, &se);
        T_ASSERT(rc == 0, "quantize %s: %d %s", cases[i].type, rc, se ? se : "");
        cJSON *j = cJSON_Parse(so);
        cJSON *ts = cJSON_GetObjectItem(j, "tensors");
        T_ASSERT(cJSON_IsArray(ts) && cJSON_GetArraySize(ts) == 3 + 9 * 4, "tensors listed");
        cJSON *t0 = cJSON_GetArrayItem(ts, 0);
        T_ASSERT(cJSON_IsString(cJSON_GetObjectItem(t0, "name")) && cJSON_IsString(cJSON_GetObjectItem(t0, "type")) &&
                     cJSON_IsNumber(cJSON_GetObjectItem(t0, "rel_rmse")), "tensor fields");
        cJSON_Delete(j);
        free(so);
        free(se);
        double v = eval_nll(out, NULL);
        T_ASSERT(fabs(v - base) <= cases[i].tol * base, "%s: mean NLL %.6f vs f32 %.6f", cases[i].type, v, base);
        fprintf(stderr, "    %s: mean NLL %.6f vs f32 %.6f\n", cases[i].type, v, base);
    }
    return 0;
}

/* Quantize-on-load gives the bytes of `vklora quantize`, and the forward (reference and device) reads them. */
static int test_on_load_equals_file(void) {
    const char *in = f32_model();
    T_ASSERT(in, "mkmodel");
    vkl_err err = {0};
    const vkl_quant_mode modes[] = {VKL_QUANT_Q4_K_M, VKL_QUANT_Q5_K_M, VKL_QUANT_Q4_0, VKL_QUANT_BF16};
    for (size_t k = 0; k < VKL_ARRAY_LEN(modes); k++) {
        char out[512];
        snprintf(out, sizeof(out), "%s/qz-load-%s.gguf", t_tmpdir(), vkl_quant_mode_names[modes[k]]);
        vkl_quant_report rep;
        T_ASSERT(!vkl_quantize_file(in, out, modes[k], &rep, &err), "%s", err.msg);
        vkl_quant_report_free(&rep);
        vkl_model *a, *b;
        T_ASSERT(!vkl_model_load(in, &a, &err), "%s", err.msg);
        T_ASSERT(!vkl_model_quantize(a, modes[k], &err), "%s", err.msg);
        T_ASSERT(!vkl_model_load(out, &b, &err), "%s", err.msg);
        vkl_weight *wa[] = {&a->tok_embd, &a->output, &a->output_norm}, *wb[] = {&b->tok_embd, &b->output,
                                                                                &b->output_norm};
        for (int i = 0; i < 3; i++)
            T_ASSERT(wa[i]->type == wb[i]->type && wa[i]->bytes == wb[i]->bytes &&
                         !memcmp(wa[i]->data, wb[i]->data, wa[i]->bytes), "%s", wb[i]->t->name.str);
        for (uint32_t l = 0; l < a->hp.n_layer; l++) {
            vkl_layer_weights *A = &a->layers[l], *B = &b->layers[l];
            vkl_weight *la[] = {&A->attn_norm, &A->wq, &A->wk, &A->wv, &A->wo, &A->ffn_norm, &A->w_gate, &A->w_up,
                                &A->w_down};
            vkl_weight *lb[] = {&B->attn_norm, &B->wq, &B->wk, &B->wv, &B->wo, &B->ffn_norm, &B->w_gate, &B->w_up,
                                &B->w_down};
            for (size_t i = 0; i < VKL_ARRAY_LEN(la); i++)
                T_ASSERT(la[i]->type == lb[i]->type && la[i]->bytes == lb[i]->bytes &&
                             !memcmp(la[i]->data, lb[i]->data, la[i]->bytes),
                         "%s %s: on-load %s differs from the file's %s", vkl_quant_mode_names[modes[k]],
                         lb[i]->t->name.str, TN(la[i]->type), TN(lb[i]->type));
        }
        char sum[256];
        vkl_model_type_summary(a, sum, sizeof(sum));
        /* 4 layers: use_more_bits picks layers 2 and 3, so 2 attn_v + 2 ffn_down + output are q6_K */
        T_ASSERT(modes[k] != VKL_QUANT_Q4_K_M || !strcmp(sum, "f32 x 9, q4_K x 25, q6_K x 5"), "summary '%s'", sum);
        /* the reference forward reads the converted bytes: same logits from both models */
        const uint32_t T = 12, V = a->hp.n_vocab;
        int32_t tok[12];
        for (uint32_t i = 0; i < T; i++) tok[i] = (int32_t)((i * 37 + 5) % V);
        float *la = malloc((size_t)T * V * 4), *lb = malloc((size_t)T * V * 4);
        T_ASSERT(vkl_ref_forward(a, tok, T, NULL, la, NULL) && vkl_ref_forward(b, tok, T, NULL, lb, NULL), "ref");
        T_ASSERT(!memcmp(la, lb, (size_t)T * V * 4), "reference logits differ");
        if (modes[k] == VKL_QUANT_Q4_K_M) {
            /* and the device gets them too */
            vkl_vk *vk = t_vk();
            T_ASSERT(vk, "no device");
            T_ASSERT(!vkl_model_upload(a, vk, &err), "%s", err.msg);
            vkl_fwd *f;
            vkl_fwd_dims d = {.max_seq = 1, .max_T = T, .n_ctx = T};
            T_ASSERT(!vkl_fwd_create(vk, a, &d, &f, &err), "%s", err.msg);
            int32_t tgt[12];
            float nll[12];
            for (uint32_t i = 0; i < T; i++) tgt[i] = i + 1 < T ? tok[i + 1] : -1;
            T_ASSERT(f->logit_rows >= T, "one logits chunk");
            T_ASSERT(!vkl_fwd_run(f, tok, 1, T, 0, tgt, nll, NULL, &err), "%s", err.msg);
            T_ASSERT(!vkl_buffer_download(vk, &f->logits, 0, lb, (uint64_t)T * V * 4, &err), "%s", err.msg);
            double e = t_max_rel_err(lb, la, (size_t)T * V);
            T_ASSERT(e < 2e-4, "device logits of the on-load model: max rel err %.3g", e);
            vkl_fwd_destroy(f);
            /* quantizing after the upload is refused */
            T_ASSERT(vkl_model_quantize(a, VKL_QUANT_Q8_0, &err) == VKL_ERR_INPUT, "after upload");
            vkl_err_clear(&err);
        }
        free(la);
        free(lb);
        vkl_model_free(a);
        vkl_model_free(b);
    }
    /* an already-quantized base: its own mix is a no-op, another one is refused with the tensor's name */
    char q8[512];
    snprintf(q8, sizeof(q8), "%s/qz-load-q8.gguf", t_tmpdir());
    vkl_quant_report rep;
    T_ASSERT(!vkl_quantize_file(in, q8, VKL_QUANT_Q8_0, &rep, &err), "%s", err.msg);
    vkl_quant_report_free(&rep);
    vkl_model *m;
    T_ASSERT(!vkl_model_load(q8, &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_quantize(m, VKL_QUANT_Q8_0, &err), "%s", err.msg);
    T_ASSERT(m->layers[0].wq.owned == NULL, "nothing converted");
    T_ASSERT(vkl_model_quantize(m, VKL_QUANT_Q4_K_M, &err) == VKL_ERR_INPUT &&
                 contains(err.msg, "token_embd.weight' is already q8_0"), "refusal: %s", err.msg);
    vkl_model_free(m);
    return 0;
}

/* ---- merge ---- */

static int test_merge(void) {
    const char *in = f32_model();
    T_ASSERT(in, "mkmodel");
    vkl_err err = {0};
    vkl_model *m;
    T_ASSERT(!vkl_model_load(in, &m, &err), "%s", err.msg);
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, VKL_TM_ALL, 4, 8.0, false, &l, &err), "%s", err.msg);
    /* A like PEFT's init, B large enough that the adapter moves the NLL far more than the tolerances below */
    t_rng_seed(21);
    for (uint32_t s = 0; s < l->n_slots; s++) {
        const vkl_lora_slot *sl = &l->slots[s];
        float ka = 1.0f / sqrtf((float)sl->in);
        for (uint64_t i = 0; i < (uint64_t)l->r * sl->in; i++) l->params[sl->a_off + i] = t_rng_uniform(-ka, ka);
        for (uint64_t i = 0; i < (uint64_t)sl->out * l->r; i++) l->params[sl->b_off + i] = t_rng_uniform(-0.3f, 0.3f);
    }
    char ad[512];
    snprintf(ad, sizeof(ad), "%s/qz-adapter.gguf", t_tmpdir());
    T_ASSERT(!vkl_adapter_save_gguf(l, m, ad, &err), "%s", err.msg);
    vkl_lora_free(l);
    vkl_model_free(m);

    char extra[700];
    snprintf(extra, sizeof(extra), "--adapter %s", ad);
    double base = eval_nll(in, NULL), with = eval_nll(in, extra);
    T_ASSERT(isfinite(base) && isfinite(with) && fabs(with - base) > 0.01 * base,
             "the adapter changes the model: %g vs %g", with, base);

    char out[512], cmd[2048], *so = NULL, *se = NULL;
    /* f32: the merge is exact up to fp32 rounding of W + s·B·A, against W x + s·B(A x) on the device */
    snprintf(out, sizeof(out), "%s/qz-merged-f32.gguf", t_tmpdir());
    snprintf(cmd, sizeof(cmd), "%s merge --model %s --adapter %s --out %s --quantization f32 --json", t_vklora_bin(),
             in, ad, out);
    T_ASSERT(t_run(cmd, &so, &se) == 0, "merge: %s", se ? se : "");
    cJSON *j = cJSON_Parse(so);
    cJSON *ts = cJSON_GetObjectItem(j, "tensors");
    int merged = 0;
    for (int i = 0; i < cJSON_GetArraySize(ts); i++)
        merged += cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(ts, i), "merged"));
    T_ASSERT(merged == 7 * 4, "every projection merged: %d", merged);
    cJSON_Delete(j);
    free(so), free(se), so = se = NULL;
    double v = eval_nll(out, NULL);
    T_ASSERT(fabs(v - with) <= 1e-4 * fabs(with), "merged f32 %.7f vs base+adapter %.7f", v, with);
    /* keep on an F32 base writes the same file as f32 except general.file_type */
    vkl_quant_report rk;
    char outk[512];
    snprintf(outk, sizeof(outk), "%s/qz-merged-keep.gguf", t_tmpdir());
    T_ASSERT(!vkl_merge_file(in, ad, outk, VKL_QUANT_KEEP, 1.0f, &rk, &err), "%s", err.msg);
    vkl_gguf *gk, *gf;
    T_ASSERT(!vkl_gguf_open(outk, &gk, &err) && !vkl_gguf_open(out, &gf, &err), "%s", err.msg);
    for (uint64_t i = 0; i < gk->n_tensors; i++)
        T_ASSERT(gk->tensors[i].type == gf->tensors[i].type &&
                     !memcmp(gk->tensors[i].data, gf->tensors[i].data, gk->tensors[i].size), "keep == f32");
    vkl_gguf_close(gk);
    vkl_gguf_close(gf);
    vkl_quant_report_free(&rk);
    /* --scale 0 merges nothing: the base's bytes */
    vkl_quant_report r0;
    T_ASSERT(!vkl_merge_file(in, ad, outk, VKL_QUANT_KEEP, 0.0f, &r0, &err), "%s", err.msg);
    vkl_quant_report_free(&r0);
    vkl_gguf *g0, *gb;
    T_ASSERT(!vkl_gguf_open(outk, &g0, &err) && !vkl_gguf_open(in, &gb, &err), "%s", err.msg);
    for (uint64_t i = 0; i < g0->n_tensors; i++)
        T_ASSERT(!memcmp(g0->tensors[i].data, gb->tensors[i].data, gb->tensors[i].size), "scale 0");
    vkl_gguf_close(g0);
    vkl_gguf_close(gb);

    /* q8_0: the merged weights carry q8_0's rounding (~0.5% relative per weight, bound_of); quantizing the plain
     * base to q8_0 moves its NLL by d0, and the merged model's rounding is of the same size, so |merged - with|
     * stays within a few d0 (+ 2e-4 relative for a d0 that happens to be near 0) */
    snprintf(out, sizeof(out), "%s/qz-merged-q8.gguf", t_tmpdir());
    snprintf(cmd, sizeof(cmd), "%s merge --model %s --adapter %s --out %s --quantization q8_0", t_vklora_bin(), in,
             ad, out);
    T_ASSERT(t_run(cmd, NULL, &se) == 0, "merge q8_0: %s", se ? se : "");
    free(se), se = NULL;
    char q8[512];
    snprintf(q8, sizeof(q8), "%s/qz-cli-q8_0.gguf", t_tmpdir());
    vkl_quant_report rq;
    T_ASSERT(!vkl_quantize_file(in, q8, VKL_QUANT_Q8_0, &rq, &err), "%s", err.msg);
    vkl_quant_report_free(&rq);
    double d0 = fabs(eval_nll(q8, NULL) - base), vq = eval_nll(out, NULL);
    double tol = 4 * d0 + 2e-4 * fabs(with);
    fprintf(stderr, "    merge q8_0: %.6f vs %.6f (d0 %.2e, tol %.2e)\n", vq, with, d0, tol);
    T_ASSERT(fabs(vq - with) <= tol, "merged q8_0 %.6f vs base+adapter %.6f (tol %.2e)", vq, with, tol);
    return 0;
}

/* ---- bad input: exit 2 with a message ---- */

static int expect_fail(const char *args, const char *msg) {
    char cmd[2048], *se = NULL;
    snprintf(cmd, sizeof(cmd), "%s %s", t_vklora_bin(), args);
    int rc = t_run(cmd, NULL, &se);
    T_ASSERT(rc == 2 && contains(se, msg), "'%s': exit %d, stderr: %s (wanted '%s')", args, rc, se ? se : "", msg);
    free(se);
    return 0;
}

static int test_bad_input(void) {
    const char *in = f32_model();
    T_ASSERT(in, "mkmodel");
    char a[2048], q8[512], out[512];
    snprintf(q8, sizeof(q8), "%s/qz-bad-q8.gguf", t_tmpdir());
    snprintf(out, sizeof(out), "%s/qz-bad-out.gguf", t_tmpdir());
    vkl_err err = {0};
    vkl_quant_report rep;
    T_ASSERT(!vkl_quantize_file(in, q8, VKL_QUANT_Q8_0, &rep, &err), "%s", err.msg);
    vkl_quant_report_free(&rep);
    snprintf(a, sizeof(a), "quantize %s %s q3_k", in, out);
    if (expect_fail(a, "unknown TYPE 'q3_k'")) return 1;
    snprintf(a, sizeof(a), "quantize %s %s keep", in, out);
    if (expect_fail(a, "unknown TYPE 'keep'")) return 1;
    snprintf(a, sizeof(a), "quantize %s %s", in, out);
    if (expect_fail(a, "are required")) return 1;
    snprintf(a, sizeof(a), "quantize %s %s q4_k_m", q8, out);
    if (expect_fail(a, "is already q8_0; requantizing to q4_K is not supported")) return 1;
    snprintf(a, sizeof(a), "quantize %s/missing.gguf %s q8_0", t_tmpdir(), out);
    if (expect_fail(a, "missing.gguf")) return 1;
    snprintf(a, sizeof(a), "merge --model %s --adapter %s/missing-adapter.gguf --out %s", in, t_tmpdir(), out);
    if (expect_fail(a, "missing-adapter.gguf")) return 1;
    snprintf(a, sizeof(a), "merge --model %s --adapter x --out %s --quantization q2_k", in, out);
    if (expect_fail(a, "unknown --quantization 'q2_k'")) return 1;
    snprintf(a, sizeof(a), "merge --model %s --out %s", in, out);
    if (expect_fail(a, "are required")) return 1;
    FILE *f = fopen(out, "rb");
    T_ASSERT(!f, "no output written by failed commands");
    return 0;
}

/* ---- the trainer quantizes a full-precision base on load (QLoRA), and refuses to requantize ---- */

static int test_train_quantized(void) {
    const char *in = f32_model();
    T_ASSERT(in, "mkmodel");
    char cmd[3072], *so = NULL, *se = NULL, q8[512];
    const char *sets = "--set training.max_steps=2 --set training.per_device_train_batch_size=1 "
                       "--set training.max_seq_length=32 --set training.eval_steps=0 --set training.save_steps=0 "
                       "--set lora.r=4 --set training.logging_steps=1";
    snprintf(cmd, sizeof(cmd), "%s train %s/configs/demo.json --set model.path=%s --set model.quantization=q4_k_m "
             "--set dataset.path=%s --set dataset.eval_ratio=0 --set training.output_dir=%s/qz-train %s",
             t_vklora_bin(), VKL_SOURCE_ROOT, in, text_file(), t_tmpdir(), sets);
    int rc = t_run(cmd, &so, &se);
    T_ASSERT(rc == 0, "train q4_k_m: %d %s", rc, se ? se : "");
    T_ASSERT(contains(so, "quantization q4_k_m: f32 x 9, q4_K x 25, q6_K x 5"), "summary: %s", so ? so : "");
    free(so), free(se), so = se = NULL;
    snprintf(q8, sizeof(q8), "%s/qz-train-q8.gguf", t_tmpdir());
    vkl_err err = {0};
    vkl_quant_report rep;
    T_ASSERT(!vkl_quantize_file(in, q8, VKL_QUANT_Q8_0, &rep, &err), "%s", err.msg);
    vkl_quant_report_free(&rep);
    snprintf(cmd, sizeof(cmd), "%s train %s/configs/demo.json --set model.path=%s --set model.quantization=q4_0 "
             "--set dataset.path=%s --set dataset.eval_ratio=0 --set training.output_dir=%s/qz-train2 %s",
             t_vklora_bin(), VKL_SOURCE_ROOT, q8, text_file(), t_tmpdir(), sets);
    rc = t_run(cmd, &so, &se);
    T_ASSERT(rc == 2 && contains(se, "needs a full-precision base") && contains(se, "already q8_0"),
             "train q4_0 on a q8_0 base: %d %s", rc, se ? se : "");
    free(so), free(se);
    return 0;
}

const vkl_test_case vkl_tests_quantize[] = {
    {"quantize/mix_rules", test_mix_rules},
    {"quantize/rows_match_reference", test_rows_match_reference},
    {"quantize/file_roundtrip_bounds", test_file_roundtrip},
    {"quantize/cli_quantize_eval", test_cli_quantize_eval},
    {"quantize/on_load_equals_file", test_on_load_equals_file},
    {"quantize/merge", test_merge},
    {"quantize/bad_input", test_bad_input},
    {"quantize/train_quantized_base", test_train_quantized},
    {NULL, NULL},
};
