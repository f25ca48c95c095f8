/* Hugging Face model folders as GGUF views (see include/vklora/hf.h): config.json's hyper-parameters become the
 * metadata keys llama.cpp's converter writes, the safetensors tensors its tensor names, without copying weights. */
#include "vklora/hf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "platform.h"
#include "vklora/adapter.h"
#include "vklora/lora.h"
#include "vklora/model.h"
#include "vklora/quant.h"
#include "vklora/quantize.h"
#include "vklora/safetensors.h"
#include "vklora/tokenizer.h"

/* config.json and the index are small; this only stops a huge file from being parsed. */
#define MAX_JSON_BYTES (64u << 20)
#define MAX_SHARDS 4096

struct vkl_hf_model {
    char *dir;
    char *arch_hf;         /* architectures[0] */
    vkl_safetensors **files;
    uint32_t n_files;
    void **owned;          /* buffers the view's tensors point at */
    size_t n_owned, cap_owned;
    vkl_gguf *g;
};

/* Hugging Face class -> GGUF architecture. Mistral3 is decided by its text config (see family_of). */
static const struct {
    const char *hf, *arch;
    bool text_config; /* a multimodal checkpoint: hyper-parameters under text_config, only its text model is read */
} FAMILIES[] = {
    {"LlamaForCausalLM", "llama", false},         {"MistralForCausalLM", "llama", false},
    {"Qwen2ForCausalLM", "qwen2", false},         {"Qwen3ForCausalLM", "qwen3", false},
    {"Gemma2ForCausalLM", "gemma2", false},       {"Gemma3ForCausalLM", "gemma3", false},
    {"Gemma3ForConditionalGeneration", "gemma3", true}, {"Phi3ForCausalLM", "phi3", false},
    {"Mistral3ForConditionalGeneration", "llama", true},
};

static const struct {
    const char *hf, *why;
} REFUSED[] = {
    {"MixtralForCausalLM", "mixture-of-experts"}, {"Qwen2MoeForCausalLM", "mixture-of-experts"},
    {"Qwen3MoeForCausalLM", "mixture-of-experts"}, {"PhiMoEForCausalLM", "mixture-of-experts"},
    {"DeepseekV3ForCausalLM", "mixture-of-experts with multi-head latent attention"},
    {"Llama4ForConditionalGeneration", "mixture-of-experts"}, {"GptOssForCausalLM", "mixture-of-experts"},
    {"Gemma3nForConditionalGeneration", "per-layer embeddings and AltUp"},
    {"Qwen3NextForCausalLM", "hybrid attention and mixture-of-experts"},
};

static void *own(vkl_hf_model *h, size_t bytes) {
    if (h->n_owned == h->cap_owned) {
        h->cap_owned = h->cap_owned ? 2 * h->cap_owned : 64;
        h->owned = vkl_realloc(h->owned, h->cap_owned * sizeof(*h->owned));
    }
    return h->owned[h->n_owned++] = vkl_calloc(1, bytes ? bytes : 1);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = vkl_malloc(n);
    bool sep = *dir && vkl_os_is_sep(dir[strlen(dir) - 1]);
    snprintf(p, n, "%s%s%s", dir, sep ? "" : "/", name);
    return p;
}

bool vkl_hf_is_folder(const char *path) { return vkl_os_path_kind(path) == VKL_PATH_DIR; }

/* Parse a JSON file; NULL with the error set. `what` names the file's role in messages. */
static cJSON *read_json(const char *path, vkl_err *err) {
    vkl_mapped_file mf;
    if (vkl_map_file(path, "hf", &mf, err)) return NULL;
    if (mf.size > MAX_JSON_BYTES) {
        vkl_unmap_file(&mf);
        vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: %" PRIu64 " bytes is too large for a JSON file here (at most %u)",
                    path, mf.size, MAX_JSON_BYTES);
        return NULL;
    }
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(mf.data, (size_t)mf.size, &end, false);
    if (!j || !cJSON_IsObject(j)) {
        uint64_t at = end ? (uint64_t)(end - (const char *)mf.data) : 0;
        vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: byte %" PRIu64 ": %s", path, at,
                    j ? "expected a JSON object" : "not valid JSON");
        cJSON_Delete(j);
        j = NULL;
    }
    vkl_unmap_file(&mf);
    return j;
}

/* ---- config.json fields ---- */

typedef struct cfg {
    const char *path;  /* config.json, for messages */
    const cJSON *root; /* the text model's config (root, or its text_config) */
    const char *where; /* "" or "text_config." */
    vkl_err *err;
} cfg;

static const cJSON *field(const cfg *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

/* An integer field in [lo, hi]; absent (or null): def, or an error when required. */
static bool cfg_u32(const cfg *c, const char *key, uint32_t *out, bool required, uint32_t def, uint32_t lo,
                    uint32_t hi) {
    const cJSON *v = field(c, key);
    if (!v) {
        if (required)
            return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: missing field \"%s%s\"", c->path, c->where, key);
        *out = def;
        return true;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi) || d != floor(d))
        return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%s%s\": expected an integer %u..%u", c->path,
                            c->where, key, lo, hi);
    *out = (uint32_t)d;
    return true;
}

static bool cfg_f64(const cfg *c, const cJSON *obj, const char *objname, const char *key, double *out, double def,
                    double lo, double hi) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return true;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= lo && d <= hi))
        return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%s%s%s\": expected a number in [%g, %g]", c->path,
                            c->where, objname, key, lo, hi);
    *out = d;
    return true;
}

static bool cfg_bool(const cfg *c, const char *key, bool *out, bool def) {
    const cJSON *v = field(c, key);
    if (!v) {
        *out = def;
        return true;
    }
    if (!cJSON_IsBool(v))
        return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%s%s\": expected true or false", c->path,
                            c->where, key);
    *out = cJSON_IsTrue(v);
    return true;
}

/* The hyper-parameters the tensor map and the checks need. */
typedef struct hp_hf {
    const vkl_arch_desc *d;
    uint32_t L, C, F, H, KVH, D, V, rope_dim;
    bool tied;
} hp_hf;

/* rope_scaling (transformers 4.x) or rope_parameters (5.x): the object, or NULL for none. */
static const cJSON *rope_object(const cfg *c, const char **name) {
    const cJSON *r = field(c, "rope_parameters");
    *name = "rope_parameters.";
    if (!r) {
        r = field(c, "rope_scaling");
        *name = "rope_scaling.";
    }
    return cJSON_IsObject(r) ? r : NULL;
}

static const char *rope_type_of(const cJSON *r) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "rope_type");
    if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(r, "type");
    return cJSON_IsString(t) ? t->valuestring : "default";
}

/* A list of n positive numbers from the rope object into a new F32 tensor of the view. */
static bool rope_factor_list(vkl_hf_model *h, const cfg *c, const cJSON *r, const char *rname, const char *key,
                             uint32_t n, float **out) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(r, key);
    if (!cJSON_IsArray(a) || (uint32_t)cJSON_GetArraySize(a) != n)
        return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%s%s%s\": expected a list of %u numbers (half the "
                            "rotary dimension)", c->path, c->where, rname, key, n);
    float *f = own(h, n * sizeof(float));
    uint32_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !(e->valuedouble > 0) || !isfinite(e->valuedouble))
            return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%s%s%s[%u]\": expected a positive number",
                                c->path, c->where, rname, key, i);
        f[i] = (float)e->valuedouble;
    }
    *out = f;
    return true;
}

/* Llama 3's rope_scaling (rope_type llama3) as llama.cpp's rope_freqs tensor. */
static bool llama3_rope_freqs(vkl_hf_model *h, const cfg *c, const cJSON *r, const char *rname, double base,
                              uint32_t rope_dim, float **out) {
    double factor = 8.0, lo = 1.0, hi = 4.0, orig = 8192;
    if (!cfg_f64(c, r, rname, "factor", &factor, 8.0, 1e-6, 1e6) ||
        !cfg_f64(c, r, rname, "low_freq_factor", &lo, 1.0, 1e-6, 1e6) ||
        !cfg_f64(c, r, rname, "high_freq_factor", &hi, 4.0, 1e-6, 1e6) ||
        !cfg_f64(c, r, rname, "original_max_position_embeddings", &orig, 8192, 1, 1e9))
        return false;
    if (!(hi > lo))
        return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%s%shigh_freq_factor\" must exceed "
                            "low_freq_factor", c->path, c->where, rname);
    float *f = own(h, rope_dim / 2 * sizeof(float));
    vkl_rope_llama3_factors(base, rope_dim, factor, lo, hi, orig, f);
    *out = f;
    return true;
}

/* The family of architectures[0]; NULL with the error set. */
static bool family_of(const cJSON *conf, const char *path, const char **hf, const char **arch, bool *text_config,
                      vkl_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(conf, "architectures");
    const cJSON *first = cJSON_IsArray(a) ? a->child : NULL;
    if (!cJSON_IsString(first))
        return !vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: field \"architectures\": expected a list holding the model "
                            "class (e.g. [\"LlamaForCausalLM\"])", path);
    *hf = first->valuestring;
    for (size_t i = 0; i < VKL_ARRAY_LEN(FAMILIES); i++)
        if (!strcmp(FAMILIES[i].hf, *hf)) {
            *arch = FAMILIES[i].arch;
            *text_config = FAMILIES[i].text_config;
            return true;
        }
    char list[512] = "";
    for (size_t i = 0; i < VKL_ARRAY_LEN(FAMILIES); i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", FAMILIES[i].hf);
    for (size_t i = 0; i < VKL_ARRAY_LEN(REFUSED); i++)
        if (!strcmp(REFUSED[i].hf, *hf))
            return !vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: field \"architectures\": %s (%s) is not supported "
                                "(supported: %s)", path, *hf, REFUSED[i].why, list);
    return !vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: field \"architectures\": %s is not supported (supported: %s)",
                        path, *hf, list);
}

/* config.json -> metadata of the view and the shapes the tensors must have. */
static bool read_config(vkl_hf_model *h, const cfg *c, const char *arch, vkl_hf_view view, vkl_gguf_writer *w,
                        hp_hf *hp, float **rope_freqs, float **rope_long, float **rope_short) {
    const vkl_arch_desc *d = vkl_arch_find(arch);
    hp->d = d;
    char key[160];
#define K(s) (snprintf(key, sizeof(key), "%s.%s", arch, s), key)
    uint32_t ctx = 0;
    double rms_eps = 1e-6;
    bool is_gemma = d->arch == VKL_ARCH_GEMMA2 || d->arch == VKL_ARCH_GEMMA3;
    if (!cfg_u32(c, "num_hidden_layers", &hp->L, true, 0, 1, 4096) ||
        !cfg_u32(c, "hidden_size", &hp->C, true, 0, 1, 1u << 20) ||
        !cfg_u32(c, "intermediate_size", &hp->F, true, 0, 1, 1u << 22) ||
        !cfg_u32(c, "num_attention_heads", &hp->H, true, 0, 1, 4096) ||
        !cfg_u32(c, "num_key_value_heads", &hp->KVH, false, hp->H, 1, 4096) ||
        !cfg_u32(c, "vocab_size", &hp->V, true, 0, 1, 1u << 24) ||
        !cfg_u32(c, "max_position_embeddings", &ctx, false, 2048, 1, 1u << 30) ||
        !cfg_f64(c, c->root, "", "rms_norm_eps", &rms_eps, d->arch == VKL_ARCH_PHI3 ? 1e-5 : 1e-6, 1e-30, 1) ||
        !cfg_bool(c, "tie_word_embeddings", &hp->tied, is_gemma))
        return false;
    if (hp->H % hp->KVH)
        return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%snum_key_value_heads\" = %u must divide "
                            "num_attention_heads = %u", c->path, c->where, hp->KVH, hp->H);
    if (!cfg_u32(c, "head_dim", &hp->D, false, hp->C / hp->H, 1, 4096)) return false;
    if (hp->D == 0)
        return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: hidden_size %u / num_attention_heads %u gives no head "
                            "dimension", c->path, hp->C, hp->H);
    hp->rope_dim = hp->D;
    double partial = 1.0;
    if (!cfg_f64(c, c->root, "", "partial_rotary_factor", &partial, 1.0, 1e-6, 1.0)) return false;
    if (partial != 1.0) hp->rope_dim = (uint32_t)(partial * hp->C) / hp->H;
    if (hp->rope_dim == 0 || hp->rope_dim % 2 || hp->rope_dim > hp->D)
        return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%spartial_rotary_factor\" gives %u rotary "
                            "dimensions of %u (expected an even number)", c->path, c->where, hp->rope_dim, hp->D);

    vkl_gguf_writer_set_u32(w, K("context_length"), ctx);
    vkl_gguf_writer_set_u32(w, K("embedding_length"), hp->C);
    vkl_gguf_writer_set_u32(w, K("feed_forward_length"), hp->F);
    vkl_gguf_writer_set_u32(w, K("block_count"), hp->L);
    vkl_gguf_writer_set_u32(w, K("attention.head_count"), hp->H);
    vkl_gguf_writer_set_u32(w, K("attention.head_count_kv"), hp->KVH);
    vkl_gguf_writer_set_u32(w, K("attention.key_length"), hp->D);
    vkl_gguf_writer_set_u32(w, K("attention.value_length"), hp->D);
    vkl_gguf_writer_set_u32(w, K("rope.dimension_count"), hp->rope_dim);
    vkl_gguf_writer_set_f32(w, K("attention.layer_norm_rms_epsilon"), (float)rms_eps);
    vkl_gguf_writer_set_u32(w, K("vocab_size"), hp->V);

    const char *rname;
    const cJSON *r = rope_object(c, &rname);
    double theta = 10000.0;
    const cJSON *theta_obj = r && cJSON_GetObjectItemCaseSensitive(r, "rope_theta") ? r : c->root;
    if (!cfg_f64(c, theta_obj, theta_obj == r ? rname : "", "rope_theta", &theta, 10000.0, 1e-3, 1e12)) return false;
    vkl_gguf_writer_set_f32(w, K("rope.freq_base"), (float)theta);
    const char *rt = r ? rope_type_of(r) : "default";
    double factor = 1.0, orig = ctx;
    if (r && (!cfg_f64(c, r, rname, "factor", &factor, 1.0, 1e-6, 1e6) ||
              !cfg_f64(c, r, rname, "original_max_position_embeddings", &orig, ctx, 1, 1e9)))
        return false;
    if (!strcmp(rt, "default")) {
    } else if (!strcmp(rt, "linear")) {
        vkl_gguf_writer_set_str(w, K("rope.scaling.type"), "linear");
        vkl_gguf_writer_set_f32(w, K("rope.scaling.factor"), (float)factor);
    } else if (!strcmp(rt, "llama3")) {
        if (!llama3_rope_freqs(h, c, r, rname, theta, hp->rope_dim, rope_freqs)) return false;
    } else if (!strcmp(rt, "yarn")) {
        double bf = 32.0, bs = 1.0, af = 0.0;
        if (!cfg_f64(c, r, rname, "beta_fast", &bf, 32.0, -1e6, 1e6) ||
            !cfg_f64(c, r, rname, "beta_slow", &bs, 1.0, -1e6, 1e6) ||
            !cfg_f64(c, r, rname, "attention_factor", &af, 0.0, 0.0, 1e6))
            return false;
        vkl_gguf_writer_set_str(w, K("rope.scaling.type"), "yarn");
        vkl_gguf_writer_set_f32(w, K("rope.scaling.factor"), (float)factor);
        vkl_gguf_writer_set_u32(w, K("rope.scaling.original_context_length"), (uint32_t)orig);
        vkl_gguf_writer_set_f32(w, K("rope.scaling.yarn_beta_fast"), (float)bf);
        vkl_gguf_writer_set_f32(w, K("rope.scaling.yarn_beta_slow"), (float)bs);
        /* Hugging Face's attention_factor is the whole cos/sin scale; llama.cpp multiplies its attn_factor by
         * 0.1 ln(factor) + 1 itself */
        if (af > 0)
            vkl_gguf_writer_set_f32(w, K("rope.scaling.attn_factor"),
                                    (float)(af / (factor > 1 ? 0.1 * log(factor) + 1 : 1.0)));
    } else if (!strcmp(rt, "longrope") || !strcmp(rt, "su")) {
        if (!rope_factor_list(h, c, r, rname, "long_factor", hp->rope_dim / 2, rope_long) ||
            !rope_factor_list(h, c, r, rname, "short_factor", hp->rope_dim / 2, rope_short))
            return false;
        /* Phi-3's magnitude correction for the extended context (its attention_factor default) */
        double s = ctx / orig, af = s > 1.0 ? sqrt(1 + log(s) / log(orig)) : 1.0;
        if (!cfg_f64(c, r, rname, "attention_factor", &af, af, 1e-6, 1e6)) return false;
        vkl_gguf_writer_set_u32(w, K("rope.scaling.original_context_length"), (uint32_t)orig);
        vkl_gguf_writer_set_f32(w, K("rope.scaling.attn_factor"), (float)af);
    } else {
        return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%s%srope_type\": \"%s\" is not supported "
                            "(supported: default, linear, llama3, yarn, longrope)", c->path, c->where, rname, rt);
    }

    if (d->softcaps) {
        double ac = 0, fc = 0, qpas = 0;
        bool g2 = d->arch == VKL_ARCH_GEMMA2;
        if (!cfg_f64(c, c->root, "", "attn_logit_softcapping", &ac, 0.0, 0.0, 1e6) ||
            !cfg_f64(c, c->root, "", "final_logit_softcapping", &fc, 0.0, 0.0, 1e6) ||
            !cfg_f64(c, c->root, "", "query_pre_attn_scalar", &qpas, hp->D, 1e-6, 1e9))
            return false;
        if (g2) vkl_gguf_writer_set_f32(w, K("attn_logit_softcapping"), (float)ac);
        else if (ac != 0)
            return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%sattn_logit_softcapping\": Gemma 3 has no "
                                "attention soft-capping (expected null)", c->path, c->where);
        vkl_gguf_writer_set_f32(w, K("final_logit_softcapping"), (float)fc);
        /* the graph scales queries by 1/sqrt(head_dim), or by 1/sqrt(hidden/heads) at the family's big layer
         * count (the 27B models), as llama.cpp does; any other query_pre_attn_scalar cannot be represented */
        double want = hp->L == d->big_query_layers ? (double)(hp->C / hp->H) : (double)hp->D;
        if (qpas != want)
            return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%squery_pre_attn_scalar\" = %g: vklora (like "
                                "llama.cpp) supports %g for this shape", c->path, c->where, qpas, want);
        uint32_t swa = 0;
        if (!cfg_u32(c, "sliding_window", &swa, false, g2 ? 4096 : 0, 0, 1u << 30)) return false;
        vkl_gguf_writer_set_u32(w, K("attention.sliding_window"), swa);
        const cJSON *types = field(c, "layer_types");
        if (cJSON_IsArray(types)) {
            if ((uint32_t)cJSON_GetArraySize(types) != hp->L)
                return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%slayer_types\": expected one entry per "
                                    "layer (%u)", c->path, c->where, hp->L);
            uint8_t *local = own(h, hp->L);
            uint32_t i = 0;
            for (const cJSON *e = types->child; e; e = e->next, i++) {
                bool sl = cJSON_IsString(e) && !strcmp(e->valuestring, "sliding_attention");
                if (!sl && !(cJSON_IsString(e) && !strcmp(e->valuestring, "full_attention")))
                    return !vkl_err_set(c->err, VKL_ERR_INPUT, "hf: %s: field \"%slayer_types[%u]\": expected "
                                        "\"sliding_attention\" or \"full_attention\"", c->path, c->where, i);
                local[i] = sl;
            }
            vkl_gguf_writer_set_arr(w, K("attention.sliding_window_pattern"), VKL_GGUF_BOOL, local, hp->L);
        } else {
            uint32_t period = 0;
            if (!cfg_u32(c, "sliding_window_pattern", &period, false, d->swa_period, 0, 1u << 20)) return false;
            vkl_gguf_writer_set_u32(w, K("attention.sliding_window_pattern"), period);
        }
        if (!g2) {
            double local_base = 10000.0;
            if (!cfg_f64(c, c->root, "", "rope_local_base_freq", &local_base, 10000.0, 1e-3, 1e12)) return false;
            vkl_gguf_writer_set_f32(w, K("rope.freq_base_swa"), (float)local_base);
        }
    }
    if (d->attn_temp) {
        double beta = 0;
        if (!cfg_f64(c, r, rname, "llama_4_scaling_beta", &beta, 0.0, 0.0, 1e6)) return false;
        vkl_gguf_writer_set_f32(w, K("attention.temperature_scale"), (float)beta);
        vkl_gguf_writer_set_u32(w, K("rope.scaling.original_context_length"), (uint32_t)orig);
    }
    /* Hugging Face's q/k rows rotate halves: the load view says so instead of permuting them */
    if (!d->rope_neox && view == VKL_HF_VIEW_LOAD) vkl_gguf_writer_set_bool(w, "vklora.rope_neox", true);
#undef K
    return true;
}

/* ---- tensors ---- */

typedef enum { KIND_MATRIX, KIND_NORM, KIND_BIAS } tensor_kind;

/* Which families a layer tensor's mapping applies to. */
typedef enum { FOR_ALL, FOR_POST_NORMS, FOR_NO_POST_NORMS, FOR_FUSED_FFN, FOR_SPLIT_FFN } family_rule;

/* One layer tensor: its Hugging Face name after "layers.N.", its GGUF name after "blk.N.", its kind, whether it is
 * a q/k projection (rows permuted between the two conventions), and the families the mapping holds for. */
typedef struct layer_map {
    const char *hf, *gguf;
    tensor_kind kind;
    bool qk;
    family_rule rule;
} layer_map;

static const layer_map LAYER_TENSORS[] = {
    {"input_layernorm.weight", "attn_norm.weight", KIND_NORM, false, FOR_ALL},
    {"self_attn.q_proj.weight", "attn_q.weight", KIND_MATRIX, true, FOR_ALL},
    {"self_attn.k_proj.weight", "attn_k.weight", KIND_MATRIX, true, FOR_ALL},
    {"self_attn.v_proj.weight", "attn_v.weight", KIND_MATRIX, false, FOR_ALL},
    {"self_attn.qkv_proj.weight", "attn_qkv.weight", KIND_MATRIX, false, FOR_ALL},
    {"self_attn.o_proj.weight", "attn_output.weight", KIND_MATRIX, false, FOR_ALL},
    {"self_attn.q_proj.bias", "attn_q.bias", KIND_BIAS, true, FOR_ALL},
    {"self_attn.k_proj.bias", "attn_k.bias", KIND_BIAS, true, FOR_ALL},
    {"self_attn.v_proj.bias", "attn_v.bias", KIND_BIAS, false, FOR_ALL},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", KIND_NORM, false, FOR_ALL},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", KIND_NORM, false, FOR_ALL},
    {"post_attention_layernorm.weight", "post_attention_norm.weight", KIND_NORM, false, FOR_POST_NORMS},
    {"post_attention_layernorm.weight", "ffn_norm.weight", KIND_NORM, false, FOR_NO_POST_NORMS},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight", KIND_NORM, false, FOR_POST_NORMS},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight", KIND_NORM, false, FOR_POST_NORMS},
    {"mlp.gate_proj.weight", "ffn_gate.weight", KIND_MATRIX, false, FOR_SPLIT_FFN},
    {"mlp.up_proj.weight", "ffn_up.weight", KIND_MATRIX, false, FOR_SPLIT_FFN},
    {"mlp.gate_up_proj.weight", "ffn_up.weight", KIND_MATRIX, false, FOR_FUSED_FFN},
    {"mlp.down_proj.weight", "ffn_down.weight", KIND_MATRIX, false, FOR_ALL},
};

static bool rule_holds(family_rule r, const vkl_arch_desc *d) {
    switch (r) {
    case FOR_POST_NORMS: return d->post_norms;
    case FOR_NO_POST_NORMS: return !d->post_norms;
    case FOR_FUSED_FFN: return d->fused_gate_up;
    case FOR_SPLIT_FFN: return !d->fused_gate_up;
    default: return true;
    }
}

/* The torch shape [rows, cols] (cols 0 for a vector) a GGUF-named tensor must have. */
static void expect_shape(const hp_hf *hp, const char *gguf, uint64_t *rows, uint64_t *cols) {
    uint64_t C = hp->C, F = hp->F, QD = (uint64_t)hp->H * hp->D, KVD = (uint64_t)hp->KVH * hp->D;
    *cols = C;
    if (!strcmp(gguf, "token_embd.weight") || !strcmp(gguf, "output.weight")) *rows = hp->V;
    else if (!strcmp(gguf, "attn_q.weight")) *rows = QD;
    else if (!strcmp(gguf, "attn_k.weight") || !strcmp(gguf, "attn_v.weight")) *rows = KVD;
    else if (!strcmp(gguf, "attn_qkv.weight")) *rows = QD + 2 * KVD;
    else if (!strcmp(gguf, "attn_output.weight")) *rows = C, *cols = QD;
    else if (!strcmp(gguf, "ffn_gate.weight")) *rows = F;
    else if (!strcmp(gguf, "ffn_up.weight")) *rows = hp->d->fused_gate_up ? 2 * F : F;
    else if (!strcmp(gguf, "ffn_down.weight")) *rows = C, *cols = F;
    else if (!strcmp(gguf, "attn_q.bias")) *rows = QD, *cols = 0;
    else if (!strcmp(gguf, "attn_k.bias") || !strcmp(gguf, "attn_v.bias")) *rows = KVD, *cols = 0;
    else if (!strcmp(gguf, "attn_q_norm.weight") || !strcmp(gguf, "attn_k_norm.weight")) *rows = hp->D, *cols = 0;
    else *rows = C, *cols = 0; /* the other norms */
}

typedef struct entry {
    char gguf[96];
    uint32_t layer; /* UINT32_MAX before the layers, UINT32_MAX - 1 after them */
    uint32_t order; /* within a layer: index in LAYER_TENSORS */
    const vkl_st_tensor *t;
    const char *file;
    tensor_kind kind;
    bool permute; /* q/k of an adjacent-pair family in the convert view */
} entry;

static int entry_cmp(const void *a, const void *b) {
    const entry *x = a, *y = b;
    uint32_t lx = x->layer == UINT32_MAX ? 0 : x->layer == UINT32_MAX - 1 ? UINT32_MAX : x->layer + 1;
    uint32_t ly = y->layer == UINT32_MAX ? 0 : y->layer == UINT32_MAX - 1 ? UINT32_MAX : y->layer + 1;
    if (lx != ly) return lx < ly ? -1 : 1;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    return strcmp(x->gguf, y->gguf);
}

/* Map one safetensors name under the text model's prefix; false (no error) for tensors the view skips. */
static bool map_name(const hp_hf *hp, const char *prefix, const char *name, entry *e, bool *skip, const char *file,
                     vkl_err *err) {
    size_t pl = strlen(prefix);
    *skip = false;
    e->layer = UINT32_MAX;
    e->order = 0;
    e->kind = KIND_MATRIX;
    e->permute = false;
    const char *lm_head = "lm_head.weight";
    if (!strcmp(name, lm_head) || (strlen(name) > strlen(lm_head) &&
                                   !strcmp(name + strlen(name) - strlen(lm_head) - 1, ".lm_head.weight"))) {
        *skip = hp->tied;
        snprintf(e->gguf, sizeof(e->gguf), "output.weight");
        e->layer = UINT32_MAX - 1;
        e->order = 1;
        return true;
    }
    if (strncmp(name, prefix, pl)) {
        *skip = true; /* a vision tower, a projector: not the text model */
        return true;
    }
    const char *s = name + pl;
    if (!strcmp(s, "embed_tokens.weight")) {
        snprintf(e->gguf, sizeof(e->gguf), "token_embd.weight");
        return true;
    }
    if (!strcmp(s, "norm.weight")) {
        snprintf(e->gguf, sizeof(e->gguf), "output_norm.weight");
        e->layer = UINT32_MAX - 1;
        e->kind = KIND_NORM;
        return true;
    }
    unsigned l;
    int n = 0;
    if (sscanf(s, "layers.%u.%n", &l, &n) == 1 && n > 0 && l < hp->L) {
        const char *rest = s + n;
        if (!strcmp(rest, "self_attn.rotary_emb.inv_freq")) {
            *skip = true;
            return true;
        }
        for (uint32_t i = 0; i < VKL_ARRAY_LEN(LAYER_TENSORS); i++) {
            const layer_map *m = &LAYER_TENSORS[i];
            if (strcmp(rest, m->hf) || !rule_holds(m->rule, hp->d)) continue;
            snprintf(e->gguf, sizeof(e->gguf), "blk.%u.%s", l, m->gguf);
            e->layer = l;
            e->order = i;
            e->kind = m->kind;
            e->permute = !hp->d->rope_neox && m->qk;
            return true;
        }
    }
    return !vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: tensor '%s' is not part of a %s model vklora knows", file, name,
                        hp->d->name);
}

static uint32_t ggml_type_of(vkl_st_dtype t) {
    return t == VKL_ST_F32 ? VKL_TYPE_F32 : t == VKL_ST_F16 ? VKL_TYPE_F16 : VKL_TYPE_BF16;
}

/* Open the shards: model.safetensors.index.json's weight_map, else model.safetensors. */
static bool open_files(vkl_hf_model *h, vkl_err *err) {
    char *index = join(h->dir, "model.safetensors.index.json");
    bool ok = false;
    if (vkl_os_path_kind(index) == VKL_PATH_NONE) {
        char *single = join(h->dir, "model.safetensors");
        if (vkl_os_path_kind(single) == VKL_PATH_NONE) {
            vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: neither model.safetensors nor model.safetensors.index.json is "
                        "there (vklora reads safetensors weights, not PyTorch .bin files)", h->dir);
        } else {
            h->files = vkl_calloc(1, sizeof(*h->files));
            ok = !vkl_safetensors_open(single, &h->files[0], err);
            h->n_files = ok;
        }
        free(single);
        free(index);
        return ok;
    }
    cJSON *j = read_json(index, err);
    if (!j) goto done;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    if (!cJSON_IsObject(map)) {
        vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: field \"weight_map\": expected an object {tensor: shard file}", index);
        goto done;
    }
    /* distinct shard names, in first-seen order */
    const char **names = vkl_calloc(MAX_SHARDS, sizeof(*names));
    uint32_t n = 0;
    for (const cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !*e->valuestring || strchr(e->valuestring, '/') || strchr(e->valuestring, '\\') ||
            !strcmp(e->valuestring, "..")) {
            vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: field \"weight_map.%s\": expected a file name in the folder",
                        index, e->string);
            free(names);
            goto done;
        }
        uint32_t k = 0;
        while (k < n && strcmp(names[k], e->valuestring)) k++;
        if (k == n) {
            if (n == MAX_SHARDS) {
                vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: more than %u shards", index, MAX_SHARDS);
                free(names);
                goto done;
            }
            names[n++] = e->valuestring;
        }
    }
    h->files = vkl_calloc(n ? n : 1, sizeof(*h->files));
    for (uint32_t k = 0; k < n; k++) {
        char *p = join(h->dir, names[k]);
        if (vkl_os_path_kind(p) == VKL_PATH_NONE) {
            vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: the shard %s that %s names is missing", h->dir, names[k], index);
            free(p);
            free(names);
            goto done;
        }
        vkl_status st = vkl_safetensors_open(p, &h->files[k], err);
        free(p);
        if (st) {
            free(names);
            goto done;
        }
        h->n_files = k + 1;
    }
    /* every tensor the index names is in its shard */
    for (const cJSON *e = map->child; e; e = e->next) {
        uint32_t k = 0;
        while (strcmp(names[k], e->valuestring)) k++;
        if (vkl_safetensors_find(h->files[k], e->string) < 0) {
            vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: field \"weight_map.%s\" names %s, which has no such tensor", index,
                        e->string, names[k]);
            free(names);
            goto done;
        }
    }
    free(names);
    ok = true;
done:
    cJSON_Delete(j);
    free(index);
    return ok;
}

/* The text model's tensor prefix: the one under which embed_tokens.weight is found. */
static const char *text_prefix(const vkl_hf_model *h) {
    static const char *const prefixes[] = {"model.", "model.language_model.", "language_model.model."};
    for (size_t p = 0; p < VKL_ARRAY_LEN(prefixes); p++) {
        char name[96];
        snprintf(name, sizeof(name), "%sembed_tokens.weight", prefixes[p]);
        for (uint32_t f = 0; f < h->n_files; f++)
            if (vkl_safetensors_find(h->files[f], name) >= 0) return prefixes[p];
    }
    return "model.";
}

/* Add one mapped tensor to the view: matrices as they are (q/k permuted into llama.cpp's rows in the convert
 * view), vectors as F32 (Gemma's norms as 1 + w, as its RMSNorm computes). */
static bool add_tensor(vkl_hf_model *h, const hp_hf *hp, const entry *e, vkl_gguf_writer *w, vkl_err *err) {
    const vkl_st_tensor *t = e->t;
    uint64_t rows, cols;
    const char *base = e->layer < UINT32_MAX - 1 ? strchr(e->gguf + 4, '.') + 1 : e->gguf;
    expect_shape(hp, base, &rows, &cols);
    bool vec = cols == 0;
    if ((vec && (t->n_dims != 1 || t->shape[0] != rows)) ||
        (!vec && (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols))) {
        char got[64] = "";
        for (uint32_t i = 0; i < t->n_dims; i++)
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%" PRIu64, i ? ", " : "", t->shape[i]);
        if (vec)
            return !vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: tensor '%s' has shape [%s]; config.json implies [%" PRIu64
                                "]", e->file, t->name, got, rows);
        return !vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: tensor '%s' has shape [%s]; config.json implies [%" PRIu64
                            ", %" PRIu64 "]", e->file, t->name, got, rows, cols);
    }
    uint32_t D = hp->D;
    if (vec) {
        float *f = own(h, rows * sizeof(float));
        vkl_st_tensor_to_f32(t, f);
        if (e->kind == KIND_NORM && (hp->d->arch == VKL_ARCH_GEMMA2 || hp->d->arch == VKL_ARCH_GEMMA3))
            for (uint64_t i = 0; i < rows; i++) f[i] += 1.0f;
        if (e->permute) {
            float *p = own(h, rows * sizeof(float));
            for (uint64_t g = 0; g < rows; g++) p[g] = f[(g / D) * D + vkl_adapter_hf_row_of_gguf_row(g % D, D)];
            f = p;
        }
        int64_t ne[1] = {(int64_t)rows};
        return !vkl_gguf_writer_add_tensor(w, e->gguf, VKL_TYPE_F32, 1, ne, f, err);
    }
    const void *data = t->data;
    if (e->permute) {
        if (D % 2 || rows % D)
            return !vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: tensor '%s': %" PRIu64 " rows are not whole heads of even "
                                "size %u", e->file, t->name, rows, D);
        uint64_t rb = cols * vkl_st_dtype_size(t->dtype);
        uint8_t *p = own(h, rows * rb);
        for (uint64_t g = 0; g < rows; g++)
            memcpy(p + g * rb, (const uint8_t *)t->data + ((g / D) * D + vkl_adapter_hf_row_of_gguf_row(g % D, D)) * rb,
                   rb);
        data = p;
    }
    int64_t ne[2] = {(int64_t)cols, (int64_t)rows};
    return !vkl_gguf_writer_add_tensor(w, e->gguf, ggml_type_of(t->dtype), 2, ne, data, err);
}

/* ---- the tokenizer as llama.cpp's GGUF keys (the convert view) ---- */

/* tokenizer.json's merges as "a b" strings (both of its formats); NULL with the error set. */
static const char **read_merges(vkl_hf_model *h, const cJSON *model, const char *path, uint64_t *n, vkl_err *err) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(model, "merges");
    *n = cJSON_IsArray(m) ? (uint64_t)cJSON_GetArraySize(m) : 0;
    const char **out = own(h, (*n ? *n : 1) * sizeof(*out));
    uint64_t i = 0;
    for (const cJSON *e = m ? m->child : NULL; e; e = e->next, i++) {
        if (cJSON_IsString(e)) {
            out[i] = e->valuestring;
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            size_t a = strlen(e->child->valuestring), b = strlen(e->child->next->valuestring);
            char *s = own(h, a + b + 2);
            memcpy(s, e->child->valuestring, a);
            s[a] = ' ';
            memcpy(s + a + 1, e->child->next->valuestring, b + 1);
            out[i] = s;
        } else {
            vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: field \"model.merges[%" PRIu64 "]\": expected \"a b\" or [\"a\", "
                        "\"b\"]", path, i);
            return NULL;
        }
    }
    return out;
}

/* Write the folder's tokenizer (read by vkl_tokenizer_load_hf, so exactly what training used) as llama.cpp's
 * tokenizer.ggml.* keys: byte-level BPE as "gpt2" with its merges and the pre-tokenizer name llama.cpp gives its
 * regex; byte-fallback BPE (SentencePiece models converted by transformers) as "llama", each merged piece scored
 * by minus the rank of its best merge, so that SentencePiece's highest-score-first merging replays the BPE merge
 * order. Ids past the tokenizer's vocabulary up to the embedding's rows are [PAD<id>] (as llama.cpp's converter
 * pads them). */
static bool tokenizer_keys(vkl_hf_model *h, const char *dir, uint32_t V, vkl_gguf_writer *w, vkl_err *err) {
    vkl_tokenizer *tok = NULL;
    char *path = join(dir, "tokenizer.json");
    cJSON *j = NULL;
    bool ok = false;
    if (vkl_tokenizer_load_hf(dir, &tok, err) || !(j = read_json(path, err))) goto done;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    bool byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    uint32_t n = (uint32_t)vkl_tokenizer_n_vocab(tok);
    if (n > V) {
        vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: %u tokens, but the embedding has only %u rows (config.json "
                    "vocab_size)", path, n, V);
        goto done;
    }
    const char **texts = own(h, (size_t)V * sizeof(*texts));
    int32_t *types = own(h, (size_t)V * sizeof(*types));
    for (uint32_t i = 0; i < V; i++) {
        size_t len;
        const char *t = i < n ? vkl_tokenizer_token_text(tok, (int32_t)i, &len) : NULL;
        vkl_token_type ty = i < n ? vkl_tokenizer_token_type(tok, (int32_t)i) : VKL_TOKEN_UNUSED;
        if (!t || !*t || ty == VKL_TOKEN_UNUSED || ty == VKL_TOKEN_UNDEFINED) {
            char *pad = own(h, 24);
            snprintf(pad, 24, "[PAD%u]", i);
            t = pad;
            ty = VKL_TOKEN_UNUSED;
        }
        texts[i] = t;
        types[i] = (int32_t)ty;
    }
    uint64_t n_merges;
    const char **merges = read_merges(h, model, path, &n_merges, err);
    if (!merges) goto done;
    vkl_gguf_writer_set_str(w, "tokenizer.ggml.model", byte_fallback ? "llama" : "gpt2");
    if (!byte_fallback) {
        const char *pre = vkl_tokenizer_pre_name(tok);
        vkl_gguf_writer_set_str(w, "tokenizer.ggml.pre", pre ? pre : "default");
    }
    vkl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", texts, V);
    vkl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKL_GGUF_INT32, types, V);
    if (byte_fallback) {
        float *scores = own(h, (size_t)V * sizeof(float));
        for (uint64_t r = n_merges; r-- > 0;) { /* later ranks first, so each piece keeps its best (lowest) rank */
            const char *sp = strchr(merges[r], ' ');
            if (!sp) continue;
            size_t a = (size_t)(sp - merges[r]), b = strlen(sp + 1);
            char buf[512];
            if (a + b >= sizeof(buf)) continue;
            memcpy(buf, merges[r], a);
            memcpy(buf + a, sp + 1, b);
            int32_t id = vkl_tokenizer_find(tok, buf, a + b);
            if (id >= 0) scores[id] = -(float)(r + 1);
        }
        vkl_gguf_writer_set_arr(w, "tokenizer.ggml.scores", VKL_GGUF_FLOAT32, scores, V);
        /* transformers' Llama conversion prepends "▁" in its normalizer; Gemma's does not */
        const cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "normalizer");
        char *ntext = norm ? cJSON_PrintUnformatted(norm) : NULL;
        vkl_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", ntext && strstr(ntext, "\"Prepend\""));
        free(ntext);
    } else {
        vkl_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, n_merges);
    }
    const struct {
        const char *key;
        int32_t id;
    } ids[] = {{"tokenizer.ggml.bos_token_id", vkl_tokenizer_bos(tok)},
               {"tokenizer.ggml.eos_token_id", vkl_tokenizer_eos(tok)},
               {"tokenizer.ggml.unknown_token_id", vkl_tokenizer_unk(tok)},
               {"tokenizer.ggml.padding_token_id", vkl_tokenizer_pad(tok)}};
    for (size_t i = 0; i < VKL_ARRAY_LEN(ids); i++)
        if (ids[i].id >= 0) vkl_gguf_writer_set_u32(w, ids[i].key, (uint32_t)ids[i].id);
    vkl_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", vkl_tokenizer_adds_bos(tok));
    vkl_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", vkl_tokenizer_adds_eos(tok));
    const char *tmpl = vkl_tokenizer_chat_template(tok);
    if (tmpl) vkl_gguf_writer_set_str(w, "tokenizer.chat_template", tmpl);
    ok = true;
done:
    cJSON_Delete(j); /* the writer copied every value it was given */
    free(path);
    vkl_tokenizer_free(tok);
    return ok;
}

vkl_status vkl_hf_open(const char *dir, vkl_hf_view view, vkl_hf_model **out, vkl_err *err) {
    *out = NULL;
    vkl_hf_model *h = vkl_calloc(1, sizeof(*h));
    h->dir = vkl_strdup(dir);
    char *cpath = join(dir, "config.json");
    cJSON *conf = NULL;
    vkl_gguf_writer *w = NULL;
    entry *es = NULL;
    if (vkl_os_path_kind(cpath) == VKL_PATH_NONE) {
        vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: no config.json: not a Hugging Face model folder (or a GGUF file)",
                    dir);
        goto fail;
    }
    if (!(conf = read_json(cpath, err))) goto fail;
    const char *hf = NULL, *arch = NULL;
    bool text_config = false;
    if (!family_of(conf, cpath, &hf, &arch, &text_config, err)) goto fail;
    h->arch_hf = vkl_strdup(hf);
    cfg c = {.path = cpath, .root = conf, .where = "", .err = err};
    if (text_config) {
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(conf, "text_config");
        if (!cJSON_IsObject(tc)) {
            vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: field \"text_config\": expected the text model's config (%s)",
                        cpath, hf);
            goto fail;
        }
        c.root = tc;
        c.where = "text_config.";
        /* Ministral 3 / Mistral Small 3.x with Llama 4's attention temperature: llama.cpp's mistral3 */
        const char *rn;
        const cJSON *r = rope_object(&c, &rn);
        if (!strcmp(hf, "Mistral3ForConditionalGeneration") && r &&
            cJSON_GetObjectItemCaseSensitive(r, "llama_4_scaling_beta"))
            arch = "mistral3";
    }
    w = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_str(w, "general.architecture", arch);
    {
        /* the folder's last path component names the model */
        size_t n = strlen(dir);
        while (n > 1 && vkl_os_is_sep(dir[n - 1])) n--;
        size_t b = n;
        while (b > 0 && !vkl_os_is_sep(dir[b - 1])) b--;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)VKL_MIN(n - b, sizeof(name) - 1), dir + b);
        vkl_gguf_writer_set_str(w, "general.name", name);
    }
    hp_hf hp = {0};
    float *rope_freqs = NULL, *rope_long = NULL, *rope_short = NULL;
    if (!read_config(h, &c, arch, view, w, &hp, &rope_freqs, &rope_long, &rope_short)) goto fail;
    if (view == VKL_HF_VIEW_CONVERT) {
        char *tj = join(dir, "tokenizer.json");
        bool has = vkl_os_path_kind(tj) != VKL_PATH_NONE;
        free(tj);
        if (has && !tokenizer_keys(h, dir, hp.V, w, err)) goto fail;
    }
    if (!open_files(h, err)) goto fail;

    const char *prefix = text_prefix(h);
    uint64_t total = 0;
    for (uint32_t f = 0; f < h->n_files; f++) total += h->files[f]->n_tensors;
    es = vkl_calloc(total + 3, sizeof(*es));
    size_t n = 0;
    for (uint32_t f = 0; f < h->n_files; f++)
        for (uint64_t i = 0; i < h->files[f]->n_tensors; i++) {
            const vkl_st_tensor *t = &h->files[f]->tensors[i];
            bool skip;
            entry *e = &es[n];
            if (!map_name(&hp, prefix, t->name, e, &skip, h->files[f]->path, err)) goto fail;
            if (skip) continue;
            e->t = t;
            e->file = h->files[f]->path;
            if (view == VKL_HF_VIEW_LOAD) e->permute = false;
            for (size_t k = 0; k < n; k++)
                if (!strcmp(es[k].gguf, e->gguf)) {
                    vkl_err_set(err, VKL_ERR_INPUT, "hf: %s: tensor '%s' is also in %s ('%s')", e->file, t->name,
                                es[k].file, es[k].t->name);
                    goto fail;
                }
            n++;
        }
    qsort(es, n, sizeof(*es), entry_cmp);
    for (size_t i = 0; i < n; i++)
        if (!add_tensor(h, &hp, &es[i], w, err)) goto fail;
    const struct {
        const char *name;
        const float *f;
    } tables[] = {{"rope_freqs.weight", rope_freqs}, {"rope_factors_long.weight", rope_long},
                  {"rope_factors_short.weight", rope_short}};
    for (size_t i = 0; i < VKL_ARRAY_LEN(tables); i++) {
        int64_t ne[1] = {hp.rope_dim / 2};
        if (tables[i].f && vkl_gguf_writer_add_tensor(w, tables[i].name, VKL_TYPE_F32, 1, ne, tables[i].f, err))
            goto fail;
    }
    if (vkl_gguf_writer_view(w, dir, &h->g, err)) goto fail;
    free(es);
    vkl_gguf_writer_free(w);
    cJSON_Delete(conf);
    free(cpath);
    *out = h;
    return VKL_OK;
fail:
    free(es);
    vkl_gguf_writer_free(w);
    cJSON_Delete(conf);
    free(cpath);
    vkl_hf_close(h);
    return err->status;
}

const vkl_gguf *vkl_hf_gguf(const vkl_hf_model *h) { return h->g; }

vkl_status vkl_hf_open_any(const char *path, vkl_gguf **g, vkl_hf_model **hf, vkl_err *err) {
    *g = NULL;
    *hf = NULL;
    if (!vkl_hf_is_folder(path)) return vkl_gguf_open(path, g, err);
    if (vkl_hf_open(path, VKL_HF_VIEW_LOAD, hf, err)) return err->status;
    *g = (*hf)->g;
    return VKL_OK;
}

void vkl_hf_close_any(vkl_gguf *g, vkl_hf_model *hf) {
    if (hf) vkl_hf_close(hf);
    else vkl_gguf_close(g);
}
const char *vkl_hf_architecture(const vkl_hf_model *h) { return h->arch_hf; }
const char *vkl_hf_dir(const vkl_hf_model *h) { return h->dir; }

void vkl_hf_close(vkl_hf_model *h) {
    if (!h) return;
    vkl_gguf_close(h->g);
    for (uint32_t f = 0; f < h->n_files; f++) vkl_safetensors_close(h->files[f]);
    free(h->files);
    for (size_t i = 0; i < h->n_owned; i++) free(h->owned[i]);
    free(h->owned);
    free(h->arch_hf);
    free(h->dir);
    free(h);
}

/* ---- export: a model (with an adapter merged) as a Hugging Face folder ---- */

static const char *hf_class_of(vkl_arch a) {
    static const char *const names[VKL_ARCH_COUNT] = {
        [VKL_ARCH_LLAMA] = "LlamaForCausalLM",   [VKL_ARCH_QWEN2] = "Qwen2ForCausalLM",
        [VKL_ARCH_QWEN3] = "Qwen3ForCausalLM",   [VKL_ARCH_GEMMA2] = "Gemma2ForCausalLM",
        [VKL_ARCH_GEMMA3] = "Gemma3ForCausalLM", [VKL_ARCH_PHI3] = "Phi3ForCausalLM",
        [VKL_ARCH_MISTRAL3] = "Mistral3ForConditionalGeneration"};
    return names[a];
}

static const char *model_type_of(vkl_arch a) {
    static const char *const names[VKL_ARCH_COUNT] = {
        [VKL_ARCH_LLAMA] = "llama",  [VKL_ARCH_QWEN2] = "qwen2",       [VKL_ARCH_QWEN3] = "qwen3",
        [VKL_ARCH_GEMMA2] = "gemma2", [VKL_ARCH_GEMMA3] = "gemma3_text", [VKL_ARCH_PHI3] = "phi3",
        [VKL_ARCH_MISTRAL3] = "mistral"};
    return names[a];
}

/* Llama 3's rope parameters back from the rope_freqs divisors: factor is the largest divisor, and the smoothly
 * interpolated band fixes low/high_freq_factor relative to original_max_position_embeddings (only their ratios
 * matter), taken as 8192 as Llama 3.1 has it. false when the table is not of that form. */
static bool llama3_params_of(const float *f, uint32_t n, double base, uint32_t rope_dim, double *factor, double *lo,
                             double *hi) {
    const double orig = 8192, two_pi = 2 * 3.14159265358979323846;
    *factor = f[n - 1];
    if (!(*factor > 1)) return false;
    /* the last frequency kept whole and the first divided by the full factor bound the band */
    int32_t last_one = -1, first_full = (int32_t)n;
    for (uint32_t i = 0; i < n; i++) {
        if (f[i] == 1.0f) last_one = (int32_t)i;
        if (f[i] == (float)*factor && first_full == (int32_t)n) first_full = (int32_t)i;
    }
    /* smooth_i = (1/f_i - 1/factor) / (1 - 1/factor) = (orig / wavelen_i - lo) / (hi - lo): a line in 1/wavelen
     * through two band points gives lo and hi */
    int32_t a = last_one + 1, b = first_full - 1;
    if (a > b) { /* no band: any lo, hi that put the boundary between the two neighbours */
        if (last_one < 0 || first_full >= (int32_t)n) return false;
        double wa = two_pi / pow(base, -2.0 * last_one / rope_dim), wb = two_pi / pow(base, -2.0 * first_full / rope_dim);
        *hi = orig / (wa * 1.0000001), *lo = orig / (wb / 1.0000001);
        return *hi > *lo;
    }
    if (a == b) return false;
    double xa = orig / (two_pi / pow(base, -2.0 * a / rope_dim)), xb = orig / (two_pi / pow(base, -2.0 * b / rope_dim));
    double sa = (1 / f[a] - 1 / *factor) / (1 - 1 / *factor), sb = (1 / f[b] - 1 / *factor) / (1 - 1 / *factor);
    if (sa == sb) return false;
    double span = (xa - xb) / (sa - sb); /* hi - lo */
    *lo = xa - sa * span;
    *hi = *lo + span;
    return *hi > *lo && *lo > 0;
}

static cJSON *export_config(const vkl_model *m, const char *dtype, vkl_err *err) {
    const vkl_hparams *hp = &m->hp;
    const vkl_arch_desc *d = hp->desc;
    cJSON *root = cJSON_CreateObject(), *c = root;
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString(hf_class_of(d->arch)));
    if (d->arch == VKL_ARCH_MISTRAL3) {
        cJSON_AddStringToObject(root, "model_type", "mistral3");
        c = cJSON_AddObjectToObject(root, "text_config");
    }
    cJSON_AddStringToObject(c, "model_type", model_type_of(d->arch));
    cJSON_AddNumberToObject(c, "hidden_size", hp->n_embd);
    cJSON_AddNumberToObject(c, "intermediate_size", hp->n_ff);
    cJSON_AddNumberToObject(c, "num_hidden_layers", hp->n_layer);
    cJSON_AddNumberToObject(c, "num_attention_heads", hp->n_head);
    cJSON_AddNumberToObject(c, "num_key_value_heads", hp->n_head_kv);
    cJSON_AddNumberToObject(c, "head_dim", hp->head_dim);
    cJSON_AddNumberToObject(c, "vocab_size", hp->n_vocab);
    cJSON_AddNumberToObject(c, "max_position_embeddings", hp->n_ctx_train);
    cJSON_AddNumberToObject(c, "rms_norm_eps", hp->rms_eps);
    cJSON_AddNumberToObject(c, "rope_theta", hp->rope_base);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", hp->tied_output);
    cJSON_AddStringToObject(c, "torch_dtype", dtype);
    cJSON_AddStringToObject(c, "hidden_act", d->act == VKL_ACT_GELU_TANH ? "gelu_pytorch_tanh" : "silu");
    if (d->arch == VKL_ARCH_GEMMA2 || d->arch == VKL_ARCH_GEMMA3) cJSON_AddStringToObject(c, "hidden_activation",
                                                                                          "gelu_pytorch_tanh");
    if (hp->rope_dim != hp->head_dim) cJSON_AddNumberToObject(c, "partial_rotary_factor",
                                                              (double)hp->rope_dim * hp->n_head / hp->n_embd);
    cJSON *rs = NULL;
    const uint32_t n = hp->rope_dim / 2;
    if (m->rope_freqs.t) {
        double factor, lo, hi;
        if (!llama3_params_of(m->rope_freqs.data, n, hp->rope_base, hp->rope_dim, &factor, &lo, &hi)) {
            cJSON_Delete(root);
            vkl_err_set(err, VKL_ERR_INPUT, "export: %s: its rope_freqs table is not of Llama 3's form, so config.json "
                        "cannot express it", m->gguf->path);
            return NULL;
        }
        rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        cJSON_AddNumberToObject(rs, "factor", factor);
        cJSON_AddNumberToObject(rs, "low_freq_factor", lo);
        cJSON_AddNumberToObject(rs, "high_freq_factor", hi);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", 8192);
    } else if (m->rope_long.t) {
        rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "longrope");
        cJSON_AddItemToObject(rs, "long_factor", cJSON_CreateFloatArray(m->rope_long.data, (int)n));
        cJSON_AddItemToObject(rs, "short_factor", cJSON_CreateFloatArray(m->rope_short.data, (int)n));
        cJSON_AddNumberToObject(rs, "attention_factor", hp->rope_attn_factor);
        cJSON_AddNumberToObject(c, "original_max_position_embeddings", hp->rope_orig_ctx);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", hp->rope_orig_ctx);
    } else if (hp->rope_scaling == VKL_ROPE_SCALING_LINEAR) {
        rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "linear");
        cJSON_AddNumberToObject(rs, "factor", hp->rope_factor);
    } else if (hp->rope_scaling == VKL_ROPE_SCALING_YARN) {
        rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "yarn");
        cJSON_AddNumberToObject(rs, "factor", hp->rope_factor);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", hp->rope_orig_ctx);
        cJSON_AddNumberToObject(rs, "beta_fast", hp->yarn_beta_fast);
        cJSON_AddNumberToObject(rs, "beta_slow", hp->yarn_beta_slow);
        if (hp->rope_attn_factor != 1.0f) /* the whole scale, as Hugging Face reads it (see read_config) */
            cJSON_AddNumberToObject(rs, "attention_factor", hp->rope_attn_factor * (hp->rope_factor > 1 ?
                                                            0.1 * log(hp->rope_factor) + 1 : 1.0));
    }
    if (hp->attn_temp_scale != 0.0f) {
        if (!rs) rs = cJSON_AddObjectToObject(c, "rope_scaling");
        cJSON_AddNumberToObject(rs, "llama_4_scaling_beta", hp->attn_temp_scale);
        if (!cJSON_GetObjectItemCaseSensitive(rs, "original_max_position_embeddings"))
            cJSON_AddNumberToObject(rs, "original_max_position_embeddings", hp->rope_orig_ctx);
    }
    if (d->softcaps) {
        if (hp->attn_softcap != 0.0f) cJSON_AddNumberToObject(c, "attn_logit_softcapping", hp->attn_softcap);
        else cJSON_AddNullToObject(c, "attn_logit_softcapping");
        if (hp->final_softcap != 0.0f) cJSON_AddNumberToObject(c, "final_logit_softcapping", hp->final_softcap);
        else cJSON_AddNullToObject(c, "final_logit_softcapping");
        bool big = hp->n_layer == d->big_query_layers;
        cJSON_AddNumberToObject(c, "query_pre_attn_scalar", big ? hp->n_embd / hp->n_head : hp->head_dim);
        cJSON_AddNumberToObject(c, "sliding_window", hp->n_swa);
        cJSON *types = cJSON_AddArrayToObject(c, "layer_types");
        for (uint32_t l = 0; l < hp->n_layer; l++)
            cJSON_AddItemToArray(types, cJSON_CreateString(hp->layer[l].window ? "sliding_attention" : "full_attention"));
        if (d->arch == VKL_ARCH_GEMMA3) cJSON_AddNumberToObject(c, "rope_local_base_freq", hp->rope_base_swa);
    }
    return root;
}

/* A tensor of the model's GGUF under its Hugging Face name, or false for tensors the folder does not hold. */
static bool hf_name_of(const vkl_hparams *hp, const char *gguf, char *out, size_t n, bool *qk) {
    *qk = false;
    const char *prefix = hp->desc->arch == VKL_ARCH_MISTRAL3 ? "model.language_model." : "model.";
    if (!strcmp(gguf, "token_embd.weight")) return snprintf(out, n, "%sembed_tokens.weight", prefix), true;
    if (!strcmp(gguf, "output_norm.weight")) return snprintf(out, n, "%snorm.weight", prefix), true;
    if (!strcmp(gguf, "output.weight")) return snprintf(out, n, "lm_head.weight"), true;
    unsigned l;
    int k = 0;
    if (sscanf(gguf, "blk.%u.%n", &l, &k) != 1 || k == 0) return false;
    const char *rest = gguf + k;
    for (uint32_t i = 0; i < VKL_ARRAY_LEN(LAYER_TENSORS); i++) {
        const layer_map *m = &LAYER_TENSORS[i];
        if (strcmp(rest, m->gguf) || !rule_holds(m->rule, hp->desc)) continue;
        snprintf(out, n, "%slayers.%u.%s", prefix, l, m->hf);
        *qk = m->qk;
        return true;
    }
    return false;
}

vkl_status vkl_hf_export(const vkl_model *m, const vkl_lora *lora, float scale, const char *dir, bool bf16,
                         vkl_err *err) {
    const vkl_gguf *g = m->gguf;
    const vkl_hparams *hp = &m->hp;
    cJSON *conf = export_config(m, bf16 ? "bfloat16" : "float32", err);
    if (!conf) return err->status;
    vkl_st_writer *w = vkl_st_writer_new();
    vkl_st_writer_set_metadata(w, "format", "pt");
    void **bufs = vkl_calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*bufs));
    char **names = vkl_calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*names));
    vkl_status st = VKL_OK;
    /* llama.cpp's q/k rows go back to Hugging Face's, unless they already are (a model read from a folder) */
    const bool unpermute = !hp->rope_neox;
    const uint32_t D = hp->head_dim;
    for (uint64_t i = 0; i < g->n_tensors && !st; i++) {
        const vkl_gguf_tensor *t = &g->tensors[i];
        char hf[160];
        bool qk;
        if (!hf_name_of(hp, t->name.str, hf, sizeof(hf), &qk)) continue; /* rope tables: config.json holds them */
        names[i] = vkl_strdup(hf);
        uint64_t cols = (uint64_t)t->ne[0], rows = t->n_dims > 1 ? (uint64_t)t->ne[1] : 1;
        bool vec = t->n_dims == 1;
        uint32_t layer, module;
        const char *rest;
        const vkl_lora_slot *slot = NULL;
        if (lora && vkl_gguf_projection_name(t->name.str, hp->desc, &layer, &module, &rest) && !strcmp(rest, ".weight"))
            slot = vkl_lora_slot_get(lora, layer, module);
        vkl_quant_delta delta;
        if (slot) {
            if (slot->in != cols || slot->out != rows) {
                st = vkl_err_set(err, VKL_ERR_INPUT, "export: adapter for '%s' is %u x %u, the tensor %" PRIu64
                                 " x %" PRIu64, t->name.str, slot->out, slot->in, rows, cols);
                break;
            }
            delta = (vkl_quant_delta){.A = lora->params + slot->a_off, .B = lora->params + slot->b_off, .r = lora->r,
                                      .scale = lora->scale * scale};
        }
        /* vectors (norms, biases) stay F32 as llama.cpp's do; Gemma's norms go back to its w of (1 + w) */
        uint32_t to = vec || !bf16 ? VKL_TYPE_F32 : VKL_TYPE_BF16;
        uint64_t esz = to == VKL_TYPE_F32 ? 4 : 2, rb = cols * esz;
        uint8_t *out = bufs[i] = vkl_malloc(rows * rb > 0 ? rows * rb : 1);
        if ((st = vkl_quantize_rows(t->type, t->data, to, out, rows, cols, slot ? &delta : NULL, NULL, err))) break;
        bool is_norm = vec && strstr(t->name.str, "norm.weight");
        if (is_norm && (hp->desc->arch == VKL_ARCH_GEMMA2 || hp->desc->arch == VKL_ARCH_GEMMA3))
            for (uint64_t j = 0; j < cols; j++) ((float *)out)[j] -= 1.0f;
        if (unpermute && qk) {
            uint64_t n_rows = vec ? cols : rows, rbytes = vec ? esz : rb;
            uint8_t *p = vkl_malloc(n_rows * rbytes);
            for (uint64_t r = 0; r < n_rows; r++)
                memcpy(p + ((r / D) * D + vkl_adapter_hf_row_of_gguf_row(r % D, D)) * rbytes, out + r * rbytes, rbytes);
            free(out);
            bufs[i] = out = p;
        }
        uint64_t shape[2] = {rows, cols};
        if (vec) shape[0] = cols;
        st = vkl_st_writer_add(w, hf, to == VKL_TYPE_F32 ? VKL_ST_F32 : VKL_ST_BF16, vec ? 1 : 2, shape, out, err);
    }
    char *cpath = join(dir, "config.json"), *wpath = join(dir, "model.safetensors");
    if (!st && !vkl_os_mkdir(dir) && errno != EEXIST)
        st = vkl_err_set(err, VKL_ERR_RUNTIME, "export: cannot create directory %s: %s", dir, strerror(errno));
    if (!st) st = vkl_st_writer_write(w, wpath, err);
    if (!st) {
        char *text = cJSON_Print(conf);
        st = vkl_write_file_atomic(cpath, text, strlen(text), "export", err);
        free(text);
    }
    free(cpath);
    free(wpath);
    for (uint64_t i = 0; i < g->n_tensors; i++) free(bufs[i]), free(names[i]);
    free(bufs);
    free(names);
    vkl_st_writer_free(w);
    cJSON_Delete(conf);
    return st;
}
