/* llama-family model loading: hyper-parameters from GGUF metadata with llama.cpp's defaults, the tensor map with
 * shape and type checks, and the upload of every weight to the device in its own GGUF type. */
#include "vklora/model.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"
#include "vklora/config.h"
#include "vklora/hf.h"
#include "vklora/quant.h"
#include "vklora/tokenizer.h"

/* ---- architectures ---- */

#define M7 (VKL_TM_Q | VKL_TM_K | VKL_TM_V | VKL_TM_O | VKL_TM_GATE | VKL_TM_UP | VKL_TM_DOWN)

static const vkl_arch_desc ARCHS[VKL_ARCH_COUNT] = {
    [VKL_ARCH_LLAMA] = {.arch = VKL_ARCH_LLAMA, .name = "llama", .modules = M7,
                        .examples = "Llama 2, Llama 3.0-3.3, Mistral 7B, Mistral-Nemo, SmolLM2, TinyLlama, "
                                    "DeepSeek-R1-Distill-Llama"},
    [VKL_ARCH_QWEN2] = {.arch = VKL_ARCH_QWEN2, .name = "qwen2", .rope_neox = true, .qkv_bias = true, .modules = M7,
                        .examples = "Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen"},
    [VKL_ARCH_QWEN3] = {.arch = VKL_ARCH_QWEN3, .name = "qwen3", .rope_neox = true, .qk_norm = true, .modules = M7,
                        .examples = "Qwen3 0.6B-32B (dense)"},
    [VKL_ARCH_GEMMA2] = {.arch = VKL_ARCH_GEMMA2, .name = "gemma2", .rope_neox = true, .act = VKL_ACT_GELU_TANH,
                         .post_norms = true, .embd_scale = true, .swa_period = 2, .softcaps = true,
                         .big_query_layers = 46, .modules = M7, .examples = "Gemma 2 2B/9B/27B"},
    [VKL_ARCH_GEMMA3] = {.arch = VKL_ARCH_GEMMA3, .name = "gemma3", .rope_neox = true, .act = VKL_ACT_GELU_TANH,
                         .qk_norm = true, .post_norms = true, .embd_scale = true, .swa_period = 6, .softcaps = true,
                         .big_query_layers = 62, .modules = M7, .examples = "Gemma 3 270M-27B (text)"},
    [VKL_ARCH_PHI3] = {.arch = VKL_ARCH_PHI3, .name = "phi3", .rope_neox = true, .fused_qkv = true,
                       .fused_gate_up = true, .modules = VKL_TM_QKV | VKL_TM_O | VKL_TM_GATE_UP | VKL_TM_DOWN,
                       .examples = "Phi-3-mini, Phi-3.5-mini, Phi-4, Phi-4-mini"},
    [VKL_ARCH_MISTRAL3] = {.arch = VKL_ARCH_MISTRAL3, .name = "mistral3", .attn_temp = true, .modules = M7,
                           .examples = "Mistral Small 3.x, Ministral 3 (text)"},
};

/* Families we know and refuse, with the reason. */
static const struct {
    const char *name, *why;
} REFUSED[] = {
    {"qwen2moe", "mixture-of-experts"}, {"qwen3moe", "mixture-of-experts"}, {"mixtral", "mixture-of-experts"},
    {"deepseek2", "mixture-of-experts with multi-head latent attention"}, {"llama4", "mixture-of-experts"},
    {"phimoe", "mixture-of-experts"}, {"gpt-oss", "mixture-of-experts"}, {"gptoss", "mixture-of-experts"},
    {"qwen35", "hybrid attention (gated delta-net layers)"}, {"qwen35moe", "hybrid attention"},
    {"qwen3next", "hybrid attention (gated delta-net layers) and mixture-of-experts"},
    {"gemma3n", "per-layer embeddings and AltUp"}, {"gemma4", "not yet supported"},
    {"clip", "a vision tower (mmproj file)"}, {"mllama", "a vision model"}, {"qwen2vl", "a vision model"},
    {"qwen3vl", "a vision model"},
};

const vkl_arch_desc *vkl_arch_find(const char *name) {
    for (int i = 0; i < VKL_ARCH_COUNT; i++)
        if (!strcmp(ARCHS[i].name, name)) return &ARCHS[i];
    return NULL;
}

const vkl_arch_desc *vkl_arch_get(vkl_arch a) { return a < VKL_ARCH_COUNT ? &ARCHS[a] : NULL; }

/* ---- hyper-parameters ---- */

static bool get_u32(const vkl_gguf *g, const char *arch, const char *suffix, uint32_t *out, bool required,
                    uint32_t def, vkl_err *err) {
    char key[160];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    uint64_t v;
    if (!vkl_gguf_get_u64(g, key, &v)) {
        if (vkl_gguf_find_key(g, key) >= 0) {
            vkl_err_set(err, VKL_ERR_INPUT, "model: %s: metadata key %s: expected an unsigned integer", g->path, key);
            return false;
        }
        if (required) {
            vkl_err_set(err, VKL_ERR_INPUT, "model: %s: missing metadata key %s", g->path, key);
            return false;
        }
        v = def;
    }
    if (v > (1u << 30)) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: metadata key %s = %" PRIu64 " is out of range", g->path, key, v);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* A float key: absent gives def; present but not a finite number, or outside [lo, hi], is an error. */
static bool get_f32(const vkl_gguf *g, const char *arch, const char *suffix, float *out, float def, double lo,
                    double hi, vkl_err *err) {
    char key[160];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    double v;
    if (!vkl_gguf_get_f64(g, key, &v)) {
        if (vkl_gguf_find_key(g, key) >= 0) {
            vkl_err_set(err, VKL_ERR_INPUT, "model: %s: metadata key %s: expected a number", g->path, key);
            return false;
        }
        *out = def;
        return true;
    }
    if (!isfinite(v) || v < lo || v > hi) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: metadata key %s = %g: expected %g..%g", g->path, key, v, lo, hi);
        return false;
    }
    *out = (float)v;
    return true;
}

void vkl_hparams_free(vkl_hparams *hp) {
    free(hp->layer);
    hp->layer = NULL;
}

/* Which layers use the sliding window: attention.sliding_window_pattern as a per-layer bool array, or a period p
 * (layer l local iff l % p < p - 1), else the family's default period. */
static vkl_status read_swa_pattern(const vkl_gguf *g, vkl_hparams *hp, vkl_err *err) {
    const char *arch = hp->arch_name;
    char key[160];
    snprintf(key, sizeof(key), "%s.attention.sliding_window_pattern", arch);
    const vkl_gguf_value *arr = vkl_gguf_get_arr(g, key, VKL_GGUF_BOOL);
    if (arr) {
        if (arr->v.arr.count != hp->n_layer)
            return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: %s has %" PRIu64 " entries, expected one per layer (%u)",
                               g->path, key, (uint64_t)arr->v.arr.count, hp->n_layer);
        const uint8_t *b = arr->v.arr.data;
        for (uint32_t l = 0; l < hp->n_layer; l++) hp->layer[l].window = b[l] ? hp->n_swa : 0;
        return VKL_OK;
    }
    uint32_t period;
    if (!get_u32(g, arch, "attention.sliding_window_pattern", &period, false, hp->desc->swa_period, err))
        return err->status;
    for (uint32_t l = 0; l < hp->n_layer; l++)
        hp->layer[l].window = (period == 0 || l % period < period - 1) ? hp->n_swa : 0;
    return VKL_OK;
}

static vkl_status read_rope_scaling(const vkl_gguf *g, vkl_hparams *hp, vkl_err *err) {
    const char *arch = hp->arch_name;
    char key[160];
    snprintf(key, sizeof(key), "%s.rope.scaling.type", arch);
    const char *type = vkl_gguf_get_str(g, key);
    if (vkl_gguf_find_key(g, key) >= 0 && !type)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: metadata key %s: expected a string", g->path, key);
    float factor;
    if (!get_f32(g, arch, "rope.scaling.factor", &factor, 0.0f, 0.0, 1e6, err)) return err->status;
    if (factor == 0.0f && !get_f32(g, arch, "rope.scale_linear", &factor, 0.0f, 0.0, 1e6, err)) return err->status;
    hp->rope_factor = factor == 0.0f ? 1.0f : factor;
    /* llama.cpp reads a missing type as "linear", which with no factor is no scaling */
    if (!type || !strcmp(type, "linear")) hp->rope_scaling = hp->rope_factor != 1.0f ? VKL_ROPE_SCALING_LINEAR
                                                                                      : VKL_ROPE_SCALING_NONE;
    else if (!strcmp(type, "none")) hp->rope_scaling = VKL_ROPE_SCALING_NONE, hp->rope_factor = 1.0f;
    else if (!strcmp(type, "yarn")) hp->rope_scaling = VKL_ROPE_SCALING_YARN;
    else if (!strcmp(type, "longrope")) hp->rope_scaling = VKL_ROPE_SCALING_LONGROPE;
    else
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: %s '%s' is not supported (supported: none, linear, yarn, "
                           "longrope)", g->path, key, type);
    if (!get_u32(g, arch, "rope.scaling.original_context_length", &hp->rope_orig_ctx, false, hp->n_ctx_train, err) ||
        !get_f32(g, arch, "rope.scaling.yarn_beta_fast", &hp->yarn_beta_fast, 32.0f, -1e6, 1e6, err) ||
        !get_f32(g, arch, "rope.scaling.yarn_beta_slow", &hp->yarn_beta_slow, 1.0f, -1e6, 1e6, err) ||
        !get_f32(g, arch, "rope.scaling.yarn_log_multiplier", &hp->yarn_log_mul, 0.0f, -1e6, 1e6, err) ||
        !get_f32(g, arch, "rope.scaling.attn_factor", &hp->rope_attn_factor, 1.0f, 1e-6, 1e6, err))
        return err->status;
    if (hp->rope_scaling == VKL_ROPE_SCALING_YARN && hp->rope_orig_ctx == 0)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: yarn rope scaling needs %s.rope.scaling."
                           "original_context_length > 0", g->path, arch);
    return VKL_OK;
}

static const char *refusal_of(const char *arch) {
    for (size_t i = 0; i < VKL_ARRAY_LEN(REFUSED); i++)
        if (!strcmp(REFUSED[i].name, arch)) return REFUSED[i].why;
    return NULL;
}

vkl_status vkl_hparams_read(const vkl_gguf *g, vkl_hparams *hp, vkl_err *err) {
    memset(hp, 0, sizeof(*hp));
    const char *arch = vkl_gguf_get_str(g, "general.architecture");
    if (!arch) return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: missing general.architecture (is this a model, "
                                  "or a vocabulary-only GGUF?)", g->path);
    hp->arch_name = arch;
    const vkl_arch_desc *d = vkl_arch_find(arch);
    if (!d) {
        char list[256] = "";
        for (int i = 0; i < VKL_ARCH_COUNT; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", ARCHS[i].name);
        const char *why = refusal_of(arch);
        if (why)
            return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: architecture '%s' (%s) is not supported (supported: %s)",
                               g->path, arch, why, list);
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: architecture '%s' is not supported (supported: %s)",
                           g->path, arch, list);
    }
    hp->desc = d;
    hp->arch = d->arch;
    hp->rope_neox = d->rope_neox;
    /* a Hugging Face folder's q/k rows rotate halves (include/vklora/hf.h) */
    bool neox;
    if (vkl_gguf_get_bool(g, "vklora.rope_neox", &neox) && neox) hp->rope_neox = true;
    hp->qk_hf_rows = hp->rope_neox && !d->rope_neox;
    if (!get_u32(g, arch, "block_count", &hp->n_layer, true, 0, err) ||
        !get_u32(g, arch, "embedding_length", &hp->n_embd, true, 0, err) ||
        !get_u32(g, arch, "attention.head_count", &hp->n_head, true, 0, err) ||
        !get_u32(g, arch, "feed_forward_length", &hp->n_ff, true, 0, err) ||
        !get_u32(g, arch, "context_length", &hp->n_ctx_train, false, 2048, err))
        return err->status;
    if (hp->n_layer == 0 || hp->n_embd == 0 || hp->n_head == 0 || hp->n_ff == 0)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: block_count, embedding_length, head_count and "
                           "feed_forward_length must be positive", g->path);
    /* Every layer holds at least its norms and projections as tensors: a count past that cannot be real, and it
     * would size allocations before any tensor is looked at. */
    if (g->n_tensors == 0)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: the file has no tensors (missing token_embd.weight and "
                           "every layer): a vocabulary-only GGUF is not a model", g->path);
    if ((uint64_t)hp->n_layer * 6 > g->n_tensors)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: %s.block_count = %u, but the file has only %" PRIu64
                           " tensors (a layer needs at least 6)", g->path, arch, hp->n_layer, (uint64_t)g->n_tensors);
    if (hp->n_head > hp->n_embd)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: %s.attention.head_count = %u exceeds embedding_length = %u",
                           g->path, arch, hp->n_head, hp->n_embd);
    if (!get_u32(g, arch, "attention.head_count_kv", &hp->n_head_kv, false, hp->n_head, err)) return err->status;
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: %s.attention.head_count_kv = %u must divide head_count = %u",
                           g->path, arch, hp->n_head_kv, hp->n_head);
    uint32_t key_len, val_len, def_len = hp->n_embd / hp->n_head;
    if (!get_u32(g, arch, "attention.key_length", &key_len, false, def_len, err) ||
        !get_u32(g, arch, "attention.value_length", &val_len, false, key_len, err))
        return err->status;
    if (key_len == 0 || val_len != key_len)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: attention.key_length %u and value_length %u: vklora needs "
                           "them equal and positive", g->path, key_len, val_len);
    if (key_len > 256)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: head dimension %u: the attention kernels support up to 256",
                           g->path, key_len);
    hp->head_dim = key_len;
    if (!get_u32(g, arch, "rope.dimension_count", &hp->rope_dim, false, hp->head_dim, err)) return err->status;
    if (hp->rope_dim > hp->head_dim || hp->rope_dim % 2 || hp->rope_dim == 0)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: rope.dimension_count %u must be even, positive and <= "
                           "head dim %u", g->path, hp->rope_dim, hp->head_dim);
    if (!get_f32(g, arch, "rope.freq_base", &hp->rope_base, 10000.0f, 1e-3, 1e12, err) ||
        !get_f32(g, arch, "rope.freq_base_swa", &hp->rope_base_swa, 10000.0f, 1e-3, 1e12, err) ||
        !get_f32(g, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps, 1e-5f, 1e-30, 1.0, err))
        return err->status;
    if (!(hp->rms_eps > 0))
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: layer_norm_rms_epsilon must be positive", g->path);
    if (read_rope_scaling(g, hp, err)) return err->status;
    /* Gemma: soft-caps (llama.cpp's defaults for gemma2 when absent: 50 and 30; gemma3 caps only if given) */
    hp->query_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = d->embd_scale ? sqrtf((float)hp->n_embd) : 1.0f;
    if (d->softcaps) {
        bool g2 = d->arch == VKL_ARCH_GEMMA2;
        if (!get_f32(g, arch, "attn_logit_softcapping", &hp->attn_softcap, g2 ? 50.0f : 0.0f, 0.0, 1e6, err) ||
            !get_f32(g, arch, "final_logit_softcapping", &hp->final_softcap, g2 ? 30.0f : 0.0f, 0.0, 1e6, err))
            return err->status;
        if (!g2) hp->attn_softcap = 0.0f; /* gemma3 dropped attention soft-capping */
    }
    if (d->big_query_layers && hp->n_layer == d->big_query_layers)
        hp->query_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    if (d->attn_temp && !get_f32(g, arch, "attention.temperature_scale", &hp->attn_temp_scale, 0.0f, 0.0, 1e6, err))
        return err->status;
    if (hp->attn_temp_scale != 0.0f && hp->rope_orig_ctx == 0)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: attention.temperature_scale needs "
                           "rope.scaling.original_context_length > 0", g->path);
    hp->layer = vkl_calloc(hp->n_layer, sizeof(*hp->layer));
    if (d->swa_period) {
        char key[160];
        snprintf(key, sizeof(key), "%s.attention.sliding_window", arch);
        bool has = vkl_gguf_find_key(g, key) >= 0;
        /* gemma2 defaults to 4096; gemma3 without the key has no local layers */
        if (!get_u32(g, arch, "attention.sliding_window", &hp->n_swa, false, d->arch == VKL_ARCH_GEMMA2 ? 4096 : 0,
                     err))
            goto fail;
        if (hp->n_swa && (has || d->arch == VKL_ARCH_GEMMA2) && read_swa_pattern(g, hp, err)) goto fail;
        for (uint32_t l = 0; l < hp->n_layer; l++)
            hp->layer[l].rope = (d->arch == VKL_ARCH_GEMMA3 && hp->layer[l].window) ? 1 : 0;
    }
    const vkl_gguf_value *toks = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING);
    uint32_t vocab = toks ? (uint32_t)VKL_MIN(toks->v.arr.count, 1u << 30) : 0;
    if (!get_u32(g, arch, "vocab_size", &hp->n_vocab, false, vocab, err)) goto fail;
    return VKL_OK;
fail:
    vkl_hparams_free(hp);
    return err->status;
}

/* ---- rope ---- */

static double yarn_corr_dim(uint32_t n_dims, uint32_t n_ctx_orig, double n_rot, double base) {
    return n_dims * log(n_ctx_orig / (n_rot * 2 * 3.14159265358979323846)) / (2 * log(base));
}

void vkl_rope_freqs(const vkl_model *m, uint32_t which, uint32_t n_ctx, double *f, float *mscale) {
    const vkl_hparams *hp = &m->hp;
    const uint32_t n = hp->rope_dim / 2;
    const double base = which == 1 ? hp->rope_base_swa : hp->rope_base;
    /* local layers (Gemma 3) use the plain base: llama.cpp's rope_freq_scale_train_swa is 1 */
    const vkl_rope_scaling sc = which == 1 ? VKL_ROPE_SCALING_NONE : hp->rope_scaling;
    const double scale = sc == VKL_ROPE_SCALING_NONE || sc == VKL_ROPE_SCALING_LONGROPE ? 1.0 : 1.0 / hp->rope_factor;
    double ms = which == 1 ? 1.0 : hp->rope_attn_factor;
    const float *ff = NULL;
    if (which == 0 && m->rope_freqs.t) ff = m->rope_freqs.data;
    else if (which == 0 && m->rope_long.t)
        ff = (n_ctx > hp->rope_orig_ctx ? m->rope_long.data : m->rope_short.data);
    double lo = 0, hi = 0;
    if (sc == VKL_ROPE_SCALING_YARN) {
        lo = VKL_MAX(0.0, floor(yarn_corr_dim(hp->rope_dim, hp->rope_orig_ctx, hp->yarn_beta_fast, base)));
        hi = VKL_MIN(hp->rope_dim - 1.0, ceil(yarn_corr_dim(hp->rope_dim, hp->rope_orig_ctx, hp->yarn_beta_slow, base)));
        /* llama.cpp: cos/sin scale by get_mscale(factor) = 0.1 ln(factor) + 1 (or its yarn_log_multiplier ratio) */
        double fac = hp->rope_factor;
        if (fac > 1.0) ms *= hp->yarn_log_mul != 0.0f ? 1.0 / (0.1 * hp->yarn_log_mul * log(fac) + 1.0) *
                                                            (0.1 * log(fac) + 1.0)
                                                      : 0.1 * log(fac) + 1.0;
    }
    for (uint32_t i = 0; i < n; i++) {
        double theta = pow(base, -2.0 * i / hp->rope_dim);
        if (ff) theta /= ff[i];
        double t = scale * theta;
        if (sc == VKL_ROPE_SCALING_YARN) {
            double y = (i - lo) / VKL_MAX(0.001, hi - lo);
            double mix = 1.0 - VKL_MIN(1.0, VKL_MAX(0.0, y));
            t = t * (1.0 - mix) + theta * mix;
        }
        f[i] = t;
    }
    *mscale = (float)ms;
}

void vkl_rope_llama3_factors(double base, uint32_t rope_dim, double factor, double low, double high, double orig,
                             float *f) {
    for (uint32_t i = 0; i < rope_dim / 2; i++) {
        double freq = pow(base, -2.0 * i / rope_dim), wavelen = 2 * 3.14159265358979323846 / freq;
        if (wavelen < orig / high) f[i] = 1.0f;
        else if (wavelen > orig / low) f[i] = (float)factor;
        else {
            double smooth = (orig / wavelen - low) / (high - low);
            f[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
}

float vkl_attn_temp(const vkl_hparams *hp, int32_t pos) {
    if (hp->attn_temp_scale == 0.0f || pos < 0) return 1.0f;
    return (float)(log(floor((double)pos / hp->rope_orig_ctx) + 1.0) * hp->attn_temp_scale + 1.0);
}

/* Bind a tensor by name and check its shape (ggml order: ne0 = cols, ne1 = rows) and type. */
static vkl_status bind(vkl_model *m, vkl_weight *w, const char *name, uint64_t cols, uint64_t rows, bool required,
                       bool must_be_f32, vkl_err *err) {
    const vkl_gguf *g = m->gguf;
    int64_t i = vkl_gguf_find_tensor(g, name);
    memset(w, 0, sizeof(*w));
    if (i < 0) {
        if (required) return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: missing tensor '%s'", g->path, name);
        return VKL_OK;
    }
    const vkl_gguf_tensor *t = &g->tensors[i];
    uint64_t ne1 = t->n_dims > 1 ? (uint64_t)t->ne[1] : 1;
    bool extra = (t->n_dims > 2 && t->ne[2] != 1) || (t->n_dims > 3 && t->ne[3] != 1);
    if ((uint64_t)t->ne[0] != cols || ne1 != rows || extra)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "model: %s: tensor '%s' has shape [%lld, %lld], expected [%llu, %llu] (ggml order)", g->path,
                           name, (long long)t->ne[0], (long long)ne1, (unsigned long long)cols,
                           (unsigned long long)rows);
    const vkl_type_traits *tr = vkl_type_traits_get(t->type);
    if (!tr || !tr->supported)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "model: %s: tensor '%s' has type %s, which vklora cannot compute with (supported: f32 f16 "
                           "bf16 q8_0 q4_0 q4_K q5_K q6_K; convert the model to one of them, e.g. with llama.cpp's llama-quantize)",
                           g->path, name, tr ? tr->name : "unknown");
    if (must_be_f32 && t->type != VKL_TYPE_F32)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: tensor '%s' must be f32 (norms and biases), got %s", g->path,
                           name, tr->name);
    if (cols % tr->block_size)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: tensor '%s': row length %llu is not a multiple of %s's "
                           "block size %u", g->path, name, (unsigned long long)cols, tr->name, tr->block_size);
    w->t = t;
    w->data = t->data;
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    w->bytes = t->size;
    return VKL_OK;
}

/* Row range [row0, row0 + rows) of a bound fused weight as a weight of its own (Phi-3's attn_qkv and ffn_up). */
static vkl_weight row_view(const vkl_weight *fused, uint64_t row0, uint64_t rows) {
    vkl_weight w = *fused;
    uint64_t row_bytes = fused->bytes / fused->rows;
    w.row0 = row0;
    w.rows = rows;
    w.data = (const uint8_t *)fused->data + row0 * row_bytes;
    w.bytes = rows * row_bytes;
    return w;
}

static vkl_status bind_layer(vkl_model *m, uint32_t l, vkl_err *err) {
    const vkl_hparams *hp = &m->hp;
    const vkl_arch_desc *d = hp->desc;
    vkl_layer_weights *L = &m->layers[l];
    const uint64_t C = hp->n_embd, F = hp->n_ff, D = hp->head_dim, QD = (uint64_t)hp->n_head * D,
                   KVD = (uint64_t)hp->n_head_kv * D;
    char n[96];
#define NAME(s) (snprintf(n, sizeof(n), "blk.%u.%s", l, s), n)
    if (bind(m, &L->attn_norm, NAME("attn_norm.weight"), C, 1, true, true, err)) return err->status;
    snprintf(n, sizeof(n), "blk.%u.attn_qkv.weight", l);
    bool fused = d->fused_qkv && vkl_gguf_find_tensor(m->gguf, n) >= 0;
    if (l > 0 && fused != m->fused_qkv)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: layer %u mixes fused and separate q/k/v weights",
                           m->gguf->path, l);
    if (fused) {
        vkl_weight qkv;
        if (bind(m, &qkv, n, C, QD + 2 * KVD, true, false, err)) return err->status;
        L->wq = row_view(&qkv, 0, QD);
        L->wk = row_view(&qkv, QD, KVD);
        L->wv = row_view(&qkv, QD + KVD, KVD);
        m->fused_qkv = true;
    } else if (bind(m, &L->wq, NAME("attn_q.weight"), C, QD, true, false, err) ||
               bind(m, &L->wk, NAME("attn_k.weight"), C, KVD, true, false, err) ||
               bind(m, &L->wv, NAME("attn_v.weight"), C, KVD, true, false, err)) {
        return err->status;
    }
    if (bind(m, &L->wo, NAME("attn_output.weight"), QD, C, true, false, err) ||
        bind(m, &L->bq, NAME("attn_q.bias"), QD, 1, d->qkv_bias, true, err) ||
        bind(m, &L->bk, NAME("attn_k.bias"), KVD, 1, d->qkv_bias, true, err) ||
        bind(m, &L->bv, NAME("attn_v.bias"), KVD, 1, d->qkv_bias, true, err) ||
        bind(m, &L->q_norm, NAME("attn_q_norm.weight"), D, 1, d->qk_norm, true, err) ||
        bind(m, &L->k_norm, NAME("attn_k_norm.weight"), D, 1, d->qk_norm, true, err) ||
        bind(m, &L->attn_post_norm, NAME("post_attention_norm.weight"), C, 1, d->post_norms, true, err) ||
        bind(m, &L->ffn_norm, NAME("ffn_norm.weight"), C, 1, true, true, err) ||
        bind(m, &L->ffn_post_norm, NAME("post_ffw_norm.weight"), C, 1, d->post_norms, true, err) ||
        bind(m, &L->w_down, NAME("ffn_down.weight"), F, C, true, false, err))
        return err->status;
    if (!d->qkv_bias && (L->bq.t || L->bk.t || L->bv.t))
        return vkl_err_set(err, VKL_ERR_INPUT, "model: %s: blk.%u has q/k/v biases, which a %s model does not have",
                           m->gguf->path, l, d->name);
    if (d->fused_gate_up) {
        vkl_weight gu;
        if (bind(m, &gu, NAME("ffn_up.weight"), C, 2 * F, true, false, err)) return err->status;
        L->w_gate = row_view(&gu, 0, F);
        L->w_up = row_view(&gu, F, F);
    } else if (bind(m, &L->w_gate, NAME("ffn_gate.weight"), C, F, true, false, err) ||
               bind(m, &L->w_up, NAME("ffn_up.weight"), C, F, true, false, err)) {
        return err->status;
    }
#undef NAME
    return VKL_OK;
}

vkl_status vkl_model_load(const char *path, vkl_model **out, vkl_err *err) {
    *out = NULL;
    vkl_model *m = vkl_calloc(1, sizeof(*m));
    if (vkl_hf_is_folder(path)) {
        if (vkl_hf_open(path, VKL_HF_VIEW_LOAD, &m->hf, err)) goto fail;
        m->gguf = (vkl_gguf *)vkl_hf_gguf(m->hf);
    } else if (vkl_gguf_open(path, &m->gguf, err)) {
        goto fail;
    }
    vkl_hparams *hp = &m->hp;
    if (vkl_hparams_read(m->gguf, hp, err)) goto fail;
    const uint64_t C = hp->n_embd;
    /* The vocabulary size comes from the embedding when metadata lacks it. */
    int64_t ti = vkl_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (ti < 0) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: missing tensor 'token_embd.weight'", path);
        goto fail;
    }
    uint64_t V = m->gguf->tensors[ti].n_dims > 1 ? (uint64_t)m->gguf->tensors[ti].ne[1] : 0;
    if (hp->n_vocab && hp->n_vocab != V) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: token_embd.weight has %llu rows but the vocabulary has %u tokens",
                    path, (unsigned long long)V, hp->n_vocab);
        goto fail;
    }
    if (V == 0 || V > (1u << 24)) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: token_embd.weight: bad vocabulary size %llu", path,
                    (unsigned long long)V);
        goto fail;
    }
    hp->n_vocab = (uint32_t)V;
    if (bind(m, &m->tok_embd, "token_embd.weight", C, V, true, false, err) ||
        bind(m, &m->output_norm, "output_norm.weight", C, 1, true, true, err) ||
        bind(m, &m->output, "output.weight", C, V, false, false, err) ||
        bind(m, &m->rope_freqs, "rope_freqs.weight", hp->rope_dim / 2, 1, false, true, err) ||
        bind(m, &m->rope_long, "rope_factors_long.weight", hp->rope_dim / 2, 1, false, true, err) ||
        bind(m, &m->rope_short, "rope_factors_short.weight", hp->rope_dim / 2, 1, false, true, err))
        goto fail;
    if (!m->rope_long.t != !m->rope_short.t) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: rope_factors_long and rope_factors_short come in pairs", path);
        goto fail;
    }
    if (m->rope_long.t && m->rope_freqs.t) {
        vkl_err_set(err, VKL_ERR_INPUT, "model: %s: both rope_freqs and rope_factors_long/short are present", path);
        goto fail;
    }
    for (const vkl_weight *w = &m->rope_freqs; w <= &m->rope_short; w++)
        for (uint64_t i = 0; w->t && i < w->cols; i++) {
            float v = ((const float *)w->data)[i];
            if (!(v > 0) || !isfinite(v)) {
                vkl_err_set(err, VKL_ERR_INPUT, "model: %s: %s[%" PRIu64 "] = %g: rope factors must be positive", path,
                            w->t->name.str, i, v);
                goto fail;
            }
        }
    if (!m->output.t) {
        hp->tied_output = true;
        m->output = m->tok_embd;
    }
    m->layers = vkl_calloc(hp->n_layer, sizeof(*m->layers));
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if (bind_layer(m, l, err)) goto fail;
    for (uint64_t i = 0; i < m->gguf->n_tensors; i++) {
        uint64_t ne = 1;
        for (uint32_t d = 0; d < m->gguf->tensors[i].n_dims; d++) ne *= (uint64_t)m->gguf->tensors[i].ne[d];
        m->n_params += ne;
    }
    *out = m;
    return VKL_OK;
fail:
    vkl_model_free(m);
    return err->status;
}

int vkl_model_weights(vkl_model *m, vkl_weight **ws) {
    int n = 0;
    ws[n++] = &m->tok_embd;
    ws[n++] = &m->output_norm;
    if (!m->hp.tied_output) ws[n++] = &m->output;
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        vkl_layer_weights *L = &m->layers[l];
        vkl_weight *lw[] = {&L->attn_norm, &L->wq,     &L->wk,     &L->wv,     &L->wo,
                            &L->bq,        &L->bk,     &L->bv,     &L->q_norm, &L->k_norm,
                            &L->attn_post_norm, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down, &L->ffn_post_norm};
        for (size_t i = 0; i < VKL_ARRAY_LEN(lw); i++)
            if (lw[i]->t) ws[n++] = lw[i];
    }
    return n;
}

vkl_weight *vkl_layer_projection(vkl_layer_weights *L, uint32_t module) {
    vkl_weight *w[VKL_PROJ_COUNT] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return module < VKL_PROJ_COUNT ? w[module] : NULL;
}

uint32_t vkl_module_projections(uint32_t module, uint32_t proj[3]) {
    static const uint32_t fused[2][3] = {{0, 1, 2}, {4, 5, 0}};
    if (module < VKL_PROJ_COUNT) {
        proj[0] = module;
        return 1;
    }
    if (module > 8) return 0;
    memcpy(proj, fused[module - 7], sizeof(fused[0]));
    return module == 7 ? 3 : 2;
}

bool vkl_gguf_projection_name(const char *name, const vkl_arch_desc *desc, uint32_t *layer, uint32_t *module,
                              const char **rest) {
    if (strncmp(name, "blk.", 4)) return false;
    const char *s = name + 4;
    uint32_t n = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 9) n = n * 10 + (uint32_t)(*s++ - '0'), digits++;
    if (!digits || *s++ != '.') return false;
    /* the seven of llama, then attn_qkv (module 8's ffn_up is module 5's name: the family decides below) */
    for (uint32_t m = 0; m < 8; m++) {
        size_t k = strlen(vkl_target_module_gguf_names[m]);
        if (strncmp(s, vkl_target_module_gguf_names[m], k) || s[k] != '.') continue;
        *layer = n;
        *module = m == 5 && desc->fused_gate_up ? 8 : m;
        *rest = s + k;
        return true;
    }
    return false;
}

vkl_status vkl_model_upload(vkl_model *m, vkl_vk *vk, vkl_err *err) {
    return vkl_model_upload_layers(m, vk, 0, m->hp.n_layer, err);
}

/* Whether weight w is one a stage of layers [l0, l1) uses: its layers, the embedding on the first stage, the final
 * norm and the head (the embedding when tied) on the last. */
static bool stage_uses(vkl_model *m, const vkl_weight *w, uint32_t l0, uint32_t l1) {
    const uint32_t L = m->hp.n_layer;
    if (w == &m->tok_embd) return l0 == 0 || (m->hp.tied_output && l1 == L);
    if (w == &m->output_norm || w == &m->output) return l1 == L;
    /* a layer's weight lies inside m->layers[l] */
    const char *p = (const char *)w, *first = (const char *)&m->layers[l0], *end = (const char *)&m->layers[l1];
    return p >= first && p < end;
}

/* A weight's device buffer: its bytes and a tail, in whole 16-byte units. The shaders read whole 32-bit words and the
 * CPU kernels 16-byte texels (RGBA32UI views end on a whole texel), so the last block of a tensor whose size is not a
 * multiple of 16 needs that tail to stay inside the buffer. */
static uint64_t weight_buffer_bytes(const vkl_weight *w) { return (w->bytes + 4 + 15) / 16 * 16; }

uint64_t vkl_model_layers_bytes(vkl_model *m, uint32_t l0, uint32_t l1) {
    vkl_weight **all = vkl_calloc(VKL_MODEL_MAX_WEIGHTS(m), sizeof(*all));
    int n_all = vkl_model_weights(m, all);
    uint64_t total = 0;
    for (int i = 0; i < n_all; i++)
        if (stage_uses(m, all[i], l0, l1)) total += weight_buffer_bytes(all[i]);
    free(all);
    return total;
}

vkl_status vkl_model_upload_layers(vkl_model *m, vkl_vk *vk, uint32_t l0, uint32_t l1, vkl_err *err) {
    if (l0 >= l1 || l1 > m->hp.n_layer)
        return vkl_err_set(err, VKL_ERR_INPUT, "model: layers [%u, %u) are not a range of the model's %u", l0, l1,
                           m->hp.n_layer);
    vkl_weight **all = vkl_calloc(VKL_MODEL_MAX_WEIGHTS(m), sizeof(*all)), **ws = all;
    int n_all = vkl_model_weights(m, all), n = 0;
    bool on_device = false;
    for (int i = 0; i < n_all; i++) {
        on_device |= all[i]->buf != NULL;
        if (stage_uses(m, all[i], l0, l1) && !all[i]->buf) ws[n++] = all[i];
    }
    if (on_device && m->vk != vk) {
        free(all);
        return vkl_err_set(err, VKL_ERR_INPUT, "model: already uploaded to device %u (%s); load it again for "
                           "another device", m->vk->info.index, m->vk->info.name);
    }
    m->vk = vk;
    vkl_status st = VKL_OK;
    uint64_t total = 0, budget = vkl_vk_memory_budget(vk);
    for (int i = 0; i < n; i++) total += weight_buffer_bytes(ws[i]);
    if (budget && total > budget) {
        free(all);
        return vkl_err_set(err, VKL_ERR_RUNTIME,
                           "model: the weights need %.1f MiB of device memory, the device has %.1f MiB: use a smaller "
                           "or more strongly quantized model (vklora quantize)",
                           total / 1048576.0, budget / 1048576.0);
    }
    for (int i = 0; i < n && !st; i++) {
        vkl_weight *w = ws[i];
        w->buf = vkl_calloc(1, sizeof(vkl_buffer));
        st = vkl_buffer_create(vk, weight_buffer_bytes(w), VKL_MEM_DEVICE, w->buf, err);
        if (!st) st = vkl_buffer_upload(vk, w->buf, 0, w->data, w->bytes, err);
        if (!st) m->device_bytes += w->buf->size;
        if (st) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            vkl_err_clear(err);
            vkl_err_set(err, st, "model: uploading '%s': %s", w->t->name.str, msg);
        }
    }
    if (m->hp.tied_output) m->output.buf = m->tok_embd.buf;
    free(all);
    return st;
}

vkl_status vkl_model_tokenizer(const vkl_model *m, vkl_tokenizer **out, vkl_err *err) {
    if (m->hf) return vkl_tokenizer_load_hf(vkl_hf_dir(m->hf), out, err);
    return vkl_tokenizer_load(m->gguf, out, err);
}

const char *vkl_model_chat_template(const vkl_model *m, const vkl_tokenizer *tok) {
    return m->hf ? vkl_tokenizer_chat_template(tok) : vkl_gguf_get_str(m->gguf, "tokenizer.chat_template");
}

void vkl_model_free(vkl_model *m) {
    if (!m) return;
    if (m->layers) {
        vkl_weight **ws = vkl_calloc(VKL_MODEL_MAX_WEIGHTS(m), sizeof(*ws));
        int n = vkl_model_weights(m, ws); /* the tied head is listed once, as tok_embd: one free each */
        for (int i = 0; i < n; i++) {
            if (m->vk && ws[i]->buf) {
                vkl_buffer_destroy(m->vk, ws[i]->buf);
                free(ws[i]->buf);
                ws[i]->buf = NULL;
            }
            free(ws[i]->owned);
        }
        free(ws);
    }
    free(m->layers);
    vkl_hparams_free(&m->hp);
    if (m->hf) vkl_hf_close(m->hf); /* which owns the gguf view */
    else vkl_gguf_close(m->gguf);
    free(m);
}
