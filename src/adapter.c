/* Adapter files (see include/vklora/adapter.h for both layouts): GGUF for llama.cpp and PEFT's safetensors
 * directory, written atomically and read back with every name, shape, rank and dtype checked against the base. */
#include "vklora/adapter.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "platform.h"
#include "vklora/gguf.h"
#include "vklora/quant.h"
#include "vklora/safetensors.h"

#define PEFT_WEIGHTS "adapter_model.safetensors"
#define PEFT_CONFIG "adapter_config.json"
/* adapter_config.json is a few hundred bytes; this only stops a huge file from being read into memory. */
#define MAX_CONFIG_BYTES (4u << 20)

static const char *arch_name(vkl_arch a) { return vkl_arch_get(a)->name; }

static bool is_attn(uint32_t module) { return module <= 3 || module == 7; }

/* B of q_proj / k_proj is stored in GGUF row order; HF's row order differs where llama.cpp's converter permuted
 * q and k for adjacent-pair RoPE (llama, mistral3; see adapter.h). */
static bool needs_permute(const vkl_model *base, uint32_t module) {
    return !base->hp.rope_neox && (module == 0 || module == 1);
}

/* The other way round: a model read from a Hugging Face folder keeps HF's q/k rows (include/vklora/hf.h), while
 * llama.cpp's adapter GGUF is in its permuted order for the families it permutes. */
static bool gguf_permute(const vkl_model *base, uint32_t module) {
    return base->hp.qk_hf_rows && (module == 0 || module == 1);
}

void vkl_adapter_peft_name(uint32_t layer, uint32_t module, bool is_b, char *buf, size_t size) {
    snprintf(buf, size, "base_model.model.model.layers.%u.%s.%s.lora_%c.weight", layer,
             is_attn(module) ? "self_attn" : "mlp", vkl_target_module_names[module], is_b ? 'B' : 'A');
}

void vkl_adapter_peft_bias_name(uint32_t layer, uint32_t module, char *buf, size_t size) {
    snprintf(buf, size, "base_model.model.model.layers.%u.%s.%s.bias", layer, is_attn(module) ? "self_attn" : "mlp",
             vkl_target_module_names[module]);
}

static void gguf_name(uint32_t layer, uint32_t module, bool is_b, char *buf, size_t size) {
    snprintf(buf, size, "blk.%u.%s.weight.lora_%c", layer, vkl_target_module_gguf_names[module], is_b ? 'b' : 'a');
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Writers */

vkl_status vkl_adapter_save_gguf(const vkl_lora *l, const vkl_model *base, const char *path, vkl_err *err) {
    vkl_status st = vkl_lora_check_base(l, base, err);
    if (st) return st;
    if (l->n_bias)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "adapter: %s: llama.cpp's LoRA adapters hold only lora_a/lora_b, not the %u biases trained "
                           "with bias=\"%s\": use the PEFT files, or `vklora merge` them into the model",
                           path, l->n_bias, vkl_lora_bias_names[l->bias]);
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_str(w, "general.architecture", arch_name(l->arch));
    vkl_gguf_writer_set_str(w, "general.type", "adapter");
    char name[256];
    snprintf(name, sizeof(name), "%s LoRA", l->base_model ? l->base_model : "vklora");
    vkl_gguf_writer_set_str(w, "general.name", name);
    vkl_gguf_writer_set_str(w, "adapter.type", "lora");
    /* llama.cpp applies alpha_file / r (r = lora_b's ne[0]): make that our scale whatever the scale rule. */
    vkl_gguf_writer_set_f32(w, "adapter.lora.alpha", (float)((double)l->scale * l->r));
    vkl_gguf_writer_set_f64(w, "vklora.lora.alpha", l->alpha);
    vkl_gguf_writer_set_bool(w, "vklora.lora.use_rslora", l->use_rslora);
    vkl_gguf_writer_set_f64(w, "vklora.lora.dropout", l->dropout);
    float **copies = vkl_calloc(l->n_slots ? l->n_slots : 1, sizeof(*copies)); /* B of q/k in llama.cpp's rows */
    for (uint32_t i = 0; i < l->n_slots && !st; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        char tn[96];
        int64_t ne_a[2] = {s->in, l->r}, ne_b[2] = {l->r, s->out};
        gguf_name(s->layer, s->module, false, tn, sizeof(tn));
        st = vkl_gguf_writer_add_tensor(w, tn, VKL_TYPE_F32, 2, ne_a, l->params + s->a_off, err);
        gguf_name(s->layer, s->module, true, tn, sizeof(tn));
        const float *B = l->params + s->b_off;
        if (gguf_permute(base, s->module)) {
            const uint32_t D = base->hp.head_dim;
            float *g = copies[i] = vkl_malloc((size_t)s->out * l->r * sizeof(float));
            for (uint32_t row = 0; row < s->out; row++)
                memcpy(g + (size_t)row * l->r, B + (size_t)vkl_adapter_hf_row_of_gguf_row(row, D) * l->r,
                       l->r * sizeof(float));
            B = g;
        }
        if (!st) st = vkl_gguf_writer_add_tensor(w, tn, VKL_TYPE_F32, 2, ne_b, B, err);
    }
    if (!st) st = vkl_gguf_writer_write(w, path, err);
    vkl_gguf_writer_free(w);
    for (uint32_t i = 0; i < l->n_slots; i++) free(copies[i]);
    free(copies);
    return st;
}

/* mkdir -p: every missing component of `dir`. */
static vkl_status make_dirs(const char *dir, vkl_err *err) {
    if (!*dir) return vkl_err_set(err, VKL_ERR_INPUT, "adapter: empty output directory name");
    char *p = vkl_strdup(dir);
    vkl_status st = VKL_OK;
    for (char *c = p + 1;; c++) {
        if (!vkl_os_is_sep(*c) && *c != '\0') continue;
        char saved = *c;
        *c = '\0';
        if (!vkl_os_mkdir(p) && errno != EEXIST) {
            st = vkl_err_set(err, VKL_ERR_RUNTIME, "adapter: cannot create directory %s: %s", p, strerror(errno));
        } else if (vkl_os_path_kind(p) != VKL_PATH_DIR) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s exists and is not a directory", p);
        }
        *c = saved;
        if (st || saved == '\0') break;
    }
    free(p);
    return st;
}

static char *join_path(const char *dir, const char *file) {
    size_t n = strlen(dir) + strlen(file) + 2;
    char *p = vkl_malloc(n);
    snprintf(p, n, "%s%s%s", dir, (*dir && dir[strlen(dir) - 1] == '/') ? "" : "/", file);
    return p;
}

/* PEFT's LoraConfig as save_pretrained writes it (sorted keys), with the fields every PEFT release since 0.10
 * accepts, so older releases that reject unknown keys still load it. */
static cJSON *peft_config_json(const vkl_lora *l) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "alpha_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(c, "auto_mapping");
    cJSON_AddStringToObject(c, "base_model_name_or_path", l->base_model ? l->base_model : "");
    cJSON_AddStringToObject(c, "bias", vkl_lora_bias_names[l->bias < VKL_BIAS_COUNT ? l->bias : 0]);
    cJSON_AddFalseToObject(c, "fan_in_fan_out");
    cJSON_AddTrueToObject(c, "inference_mode");
    cJSON_AddTrueToObject(c, "init_lora_weights");
    cJSON_AddNullToObject(c, "layer_replication");
    cJSON_AddNullToObject(c, "layers_pattern");
    cJSON_AddNullToObject(c, "layers_to_transform");
    cJSON_AddItemToObject(c, "loftq_config", cJSON_CreateObject());
    cJSON_AddNumberToObject(c, "lora_alpha", l->alpha);
    cJSON_AddNumberToObject(c, "lora_dropout", l->dropout);
    cJSON_AddNullToObject(c, "megatron_config");
    cJSON_AddStringToObject(c, "megatron_core", "megatron.core");
    cJSON_AddNullToObject(c, "modules_to_save");
    cJSON_AddStringToObject(c, "peft_type", "LORA");
    cJSON_AddNumberToObject(c, "r", l->r);
    cJSON_AddItemToObject(c, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(c, "revision");
    cJSON *tm = cJSON_AddArrayToObject(c, "target_modules");
    for (uint32_t m = 0; m < VKL_TM_COUNT; m++)
        if (l->target_modules & (1u << m)) cJSON_AddItemToArray(tm, cJSON_CreateString(vkl_target_module_names[m]));
    cJSON_AddStringToObject(c, "task_type", "CAUSAL_LM");
    cJSON_AddFalseToObject(c, "use_dora");
    cJSON_AddBoolToObject(c, "use_rslora", l->use_rslora);
    return c;
}

vkl_status vkl_adapter_save_peft(const vkl_lora *l, const vkl_model *base, const char *dir, vkl_err *err) {
    vkl_status st = vkl_lora_check_base(l, base, err);
    if (st) return st;
    const uint32_t D = base->hp.head_dim;
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        if (needs_permute(base, s->module) && (D % 2 || s->out % D))
            return vkl_err_set(err, VKL_ERR_INPUT, "adapter: blk.%u.%s: %u rows are not whole heads of even size %u, "
                               "so the HF row order is undefined", s->layer, vkl_target_module_gguf_names[s->module],
                               s->out, D);
    }
    if ((st = make_dirs(dir, err))) return st;
    vkl_st_writer *w = vkl_st_writer_new();
    vkl_st_writer_set_metadata(w, "format", "pt");
    float **copies = vkl_calloc(l->n_slots, sizeof(*copies));
    for (uint32_t i = 0; i < l->n_slots && !st; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        char tn[128];
        uint64_t shape_a[2] = {l->r, s->in}, shape_b[2] = {s->out, l->r};
        const float *B = l->params + s->b_off;
        if (needs_permute(base, s->module)) {
            float *hf = copies[i] = vkl_malloc((size_t)s->out * l->r * sizeof(float));
            for (uint32_t g = 0; g < s->out; g++)
                memcpy(hf + (size_t)vkl_adapter_hf_row_of_gguf_row(g, D) * l->r, B + (size_t)g * l->r,
                       l->r * sizeof(float));
            B = hf;
        }
        vkl_adapter_peft_name(s->layer, s->module, false, tn, sizeof(tn));
        st = vkl_st_writer_add(w, tn, VKL_ST_F32, 2, shape_a, l->params + s->a_off, err);
        vkl_adapter_peft_name(s->layer, s->module, true, tn, sizeof(tn));
        if (!st) st = vkl_st_writer_add(w, tn, VKL_ST_F32, 2, shape_b, B, err);
    }
    /* Trained biases are saved whole under the base layer's name, as PEFT's get_peft_model_state_dict does. */
    for (uint32_t i = 0; i < l->n_bias && !st; i++) {
        const vkl_lora_bias_slot *b = &l->bias_slots[i];
        char tn[128];
        uint64_t shape[1] = {b->n};
        vkl_adapter_peft_bias_name(b->layer, b->module, tn, sizeof(tn));
        st = vkl_st_writer_add(w, tn, VKL_ST_F32, 1, shape, l->params + b->off, err);
    }
    char *wpath = join_path(dir, PEFT_WEIGHTS), *cpath = join_path(dir, PEFT_CONFIG);
    if (!st) st = vkl_st_writer_write(w, wpath, err);
    if (!st) {
        cJSON *c = peft_config_json(l);
        char *text = cJSON_Print(c);
        size_t n = strlen(text);
        char *withnl = vkl_malloc(n + 2);
        memcpy(withnl, text, n);
        withnl[n] = '\n';
        st = vkl_write_file_atomic(cpath, withnl, n + 1, "adapter", err);
        free(withnl);
        cJSON_free(text);
        cJSON_Delete(c);
    }
    free(wpath);
    free(cpath);
    for (uint32_t i = 0; i < l->n_slots; i++) free(copies[i]);
    free(copies);
    vkl_st_writer_free(w);
    return st;
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Readers: both formats reduce to one table of source tensors per (layer, module), then one checked build. */

typedef enum { SRC_F32, SRC_F16, SRC_BF16 } src_dtype;

typedef struct {
    const char *name;  /* for messages; NULL = absent */
    const void *data;
    src_dtype dtype;
    uint64_t rows, cols; /* row-major: A is (r, in), B is (out, r) */
} src_tensor;

static float src_at(const src_tensor *t, uint64_t i) {
    const uint8_t *p = t->data;
    if (t->dtype == SRC_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return t->dtype == SRC_F16 ? vkl_fp16_to_f32(h) : vkl_bf16_to_f32(h);
}

typedef struct {
    const char *path; /* the file named in messages */
    src_tensor *a, *b; /* [n_layer * VKL_TM_COUNT] */
    bool hf_rows;      /* B of q/k is in HF row order (PEFT) and must be permuted for a llama base */
} src_set;

static vkl_status build_lora(const src_set *src, const vkl_model *base, double alpha, bool use_rslora,
                             bool alpha_is_scale_times_r, vkl_lora **out, vkl_err *err) {
    const uint32_t L = base->hp.n_layer;
    uint32_t mask = 0, r = 0;
    const char *r_from = NULL;
    for (uint32_t layer = 0; layer < L; layer++) {
        for (uint32_t mod = 0; mod < VKL_TM_COUNT; mod++) {
            const src_tensor *a = &src->a[layer * VKL_TM_COUNT + mod], *b = &src->b[layer * VKL_TM_COUNT + mod];
            if (!a->name && !b->name) continue;
            if (!a->name || !b->name)
                return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: '%s' has no matching %s tensor", src->path,
                                   a->name ? a->name : b->name, a->name ? "lora_b / lora_B" : "lora_a / lora_A");
            uint32_t in, outf;
            if (!vkl_lora_module_dims(base, layer, mod, &in, &outf))
                return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: '%s': the base model has no such weight",
                                   src->path, a->name);
            if (a->cols != in)
                return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: '%s' has %" PRIu64 " input features, the base "
                                   "model's blk.%u.%s takes %u (wrong base model?)", src->path, a->name, a->cols,
                                   layer, vkl_target_module_gguf_names[mod], in);
            if (b->rows != outf)
                return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: '%s' has %" PRIu64 " output features, the base "
                                   "model's blk.%u.%s gives %u (wrong base model?)", src->path, b->name, b->rows,
                                   layer, vkl_target_module_gguf_names[mod], outf);
            if (a->rows != b->cols)
                return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: rank of '%s' (%" PRIu64 ") differs from '%s' (%"
                                   PRIu64 ")", src->path, a->name, a->rows, b->name, b->cols);
            if (a->rows == 0 || a->rows > VKL_LORA_MAX_R)
                return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: '%s': rank %" PRIu64 " outside 1..%u", src->path,
                                   a->name, a->rows, VKL_LORA_MAX_R);
            if (!r_from) {
                r = (uint32_t)a->rows;
                r_from = a->name;
            } else if (a->rows != r) {
                return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: '%s' has rank %" PRIu64 " but '%s' has rank %u "
                                   "(per-module ranks are not supported)", src->path, a->name, a->rows, r_from, r);
            }
            if (((src->hf_rows && needs_permute(base, mod)) || (!src->hf_rows && gguf_permute(base, mod))) &&
                (base->hp.head_dim % 2 || outf % base->hp.head_dim))
                return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: '%s': rows are not whole heads", src->path,
                                   b->name);
            mask |= 1u << mod;
        }
    }
    if (!mask) return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: no LoRA tensors", src->path);
    if (alpha_is_scale_times_r && !(alpha > 0)) alpha = r; /* llama.cpp: a zero or missing alpha means scale 1 */
    vkl_lora *l;
    vkl_status st = vkl_lora_create(base, mask, r, alpha, use_rslora, &l, err);
    if (st) return st;
    const uint32_t D = base->hp.head_dim;
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        const src_tensor *a = &src->a[s->layer * VKL_TM_COUNT + s->module];
        const src_tensor *b = &src->b[s->layer * VKL_TM_COUNT + s->module];
        if (!a->name) continue; /* not adapted in this layer: A = B = 0 leaves the weight as it is */
        float *A = l->params + s->a_off, *B = l->params + s->b_off;
        for (uint64_t j = 0; j < (uint64_t)r * s->in; j++) A[j] = src_at(a, j);
        /* PEFT rows onto a llama.cpp-permuted model, or llama.cpp's rows onto a model in HF order */
        const bool from_hf = src->hf_rows && needs_permute(base, s->module);
        const bool to_hf = !src->hf_rows && gguf_permute(base, s->module);
        for (uint32_t g = 0; g < s->out; g++) {
            uint64_t from = from_hf ? vkl_adapter_hf_row_of_gguf_row(g, D) : g;
            uint64_t to = to_hf ? vkl_adapter_hf_row_of_gguf_row(g, D) : g;
            for (uint32_t k = 0; k < r; k++) B[to * r + k] = src_at(b, from * r + k);
        }
    }
    *out = l;
    return VKL_OK;
}

/* "base_model.model.model.layers.N.<self_attn|mlp>.<peft module>.lora_<A|B>[.default].weight" */
static bool parse_peft_name(const char *s, uint32_t *layer, uint32_t *mod, bool *is_b) {
    static const char prefix[] = "base_model.model.model.layers.";
    if (strncmp(s, prefix, sizeof(prefix) - 1)) return false;
    s += sizeof(prefix) - 1;
    uint64_t n = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 9) n = n * 10 + (uint64_t)(*s++ - '0'), digits++;
    if (!digits || *s++ != '.') return false;
    for (uint32_t m = 0; m < VKL_TM_COUNT; m++) {
        char head[64];
        snprintf(head, sizeof(head), "%s.%s.lora_", is_attn(m) ? "self_attn" : "mlp", vkl_target_module_names[m]);
        size_t k = strlen(head);
        if (strncmp(s, head, k)) continue;
        const char *rest = s + k;
        if ((rest[0] == 'A' || rest[0] == 'B') && (!strcmp(rest + 1, ".weight") || !strcmp(rest + 1,
                                                                                            ".default.weight"))) {
            *layer = (uint32_t)n;
            *mod = m;
            *is_b = rest[0] == 'B';
            return true;
        }
    }
    return false;
}

/* "base_model.model.model.layers.N.<self_attn|mlp>.<peft module>.bias" with N < L */
static bool parse_peft_bias_name(const char *s, uint32_t L, uint32_t *layer, uint32_t *mod) {
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t m = 0; m < VKL_TM_COUNT; m++) {
            char want[128];
            vkl_adapter_peft_bias_name(l, m, want, sizeof(want));
            if (!strcmp(s, want)) {
                *layer = l;
                *mod = m;
                return true;
            }
        }
    return false;
}

static vkl_status load_gguf(const char *path, const vkl_model *base, vkl_lora **out, vkl_err *err) {
    vkl_gguf *g;
    vkl_status st = vkl_gguf_open(path, &g, err);
    if (st) return st;
    const uint32_t L = base->hp.n_layer;
    src_set src = {path, vkl_calloc((size_t)L * VKL_TM_COUNT, sizeof(src_tensor)),
                   vkl_calloc((size_t)L * VKL_TM_COUNT, sizeof(src_tensor)), false};
    const char *type = vkl_gguf_get_str(g, "general.type");
    const char *atype = vkl_gguf_get_str(g, "adapter.type");
    const char *arch = vkl_gguf_get_str(g, "general.architecture");
    const char *base_arch = arch_name(base->hp.arch);
    const vkl_gguf_value *alpha_v = vkl_gguf_get(g, "adapter.lora.alpha");
    double alpha = 0;
    if (!type || strcmp(type, "adapter")) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: general.type is %s%s%s, expected \"adapter\" (is this a "
                         "model rather than a LoRA adapter?)", path, type ? "\"" : "", type ? type : "missing",
                         type ? "\"" : "");
        goto done;
    }
    if (!atype || strcmp(atype, "lora")) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: adapter.type is %s, expected \"lora\"", path,
                         atype ? atype : "missing");
        goto done;
    }
    if (!arch || strcmp(arch, base_arch)) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: general.architecture is %s but the base model is %s "
                         "(wrong base model?)", path, arch ? arch : "missing", base_arch);
        goto done;
    }
    if (alpha_v) {
        if (alpha_v->type != VKL_GGUF_FLOAT32 || !isfinite(alpha_v->v.f64) || alpha_v->v.f64 < 0) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: adapter.lora.alpha must be a non-negative float32 "
                             "(llama.cpp reads it as one)", path);
            goto done;
        }
        alpha = alpha_v->v.f64;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const vkl_gguf_tensor *t = &g->tensors[i];
        uint32_t layer, mod;
        const char *rest;
        if (!vkl_gguf_projection_name(t->name.str, base->hp.desc, &layer, &mod, &rest) ||
            (strcmp(rest, ".weight.lora_a") && strcmp(rest, ".weight.lora_b"))) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: tensor '%s' is not a LoRA tensor vklora knows (expected "
                             "blk.N.<attn_q|attn_k|attn_v|attn_qkv|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_<a|b>)",
                             path, t->name.str);
            goto done;
        }
        bool is_b = rest[13] == 'b';
        if (layer >= L) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: tensor '%s': the base model has %u layers (wrong base "
                             "model?)", path, t->name.str, L);
            goto done;
        }
        if (t->type != VKL_TYPE_F32 && t->type != VKL_TYPE_F16 && t->type != VKL_TYPE_BF16) {
            const vkl_type_traits *tr = vkl_type_traits_get(t->type);
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: tensor '%s' has type %s; adapters must be f32, f16 or "
                             "bf16", path, t->name.str, tr ? tr->name : "unknown");
            goto done;
        }
        if (t->n_dims != 2) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: tensor '%s' has %u dimensions, expected 2", path,
                             t->name.str, t->n_dims);
            goto done;
        }
        src_tensor *d = is_b ? &src.b[layer * VKL_TM_COUNT + mod] : &src.a[layer * VKL_TM_COUNT + mod];
        d->name = t->name.str;
        d->data = t->data;
        d->dtype = t->type == VKL_TYPE_F32 ? SRC_F32 : t->type == VKL_TYPE_F16 ? SRC_F16 : SRC_BF16;
        /* ggml ne = [cols, rows]: lora_a [in, r] is A (r, in), lora_b [r, out] is B (out, r). */
        d->cols = (uint64_t)t->ne[0];
        d->rows = (uint64_t)t->ne[1];
    }
    st = build_lora(&src, base, alpha, false, true, out, err);
    if (!st) {
        /* vklora's own keys restore alpha and the rsLoRA flag exactly when they agree with adapter.lora.alpha
         * (which wins if someone edited it, as it is what llama.cpp applies). */
        vkl_lora *l = *out;
        double va, dropout;
        bool rs;
        if (vkl_gguf_get_f64(g, "vklora.lora.alpha", &va) && vkl_gguf_get_bool(g, "vklora.lora.use_rslora", &rs) &&
            va > 0 && isfinite(va)) {
            float s = vkl_lora_scale_of(va, l->r, rs);
            if (fabs((double)s - (double)l->scale) <= 1e-6 * fabs((double)s)) {
                l->alpha = va;
                l->use_rslora = rs;
                l->scale = s;
            }
        }
        if (vkl_gguf_get_f64(g, "vklora.lora.dropout", &dropout) && dropout >= 0 && dropout < 1) l->dropout = dropout;
    }
done:
    free(src.a);
    free(src.b);
    vkl_gguf_close(g);
    return st;
}

typedef struct {
    uint32_t r;
    double alpha, dropout;
    bool use_rslora;
    vkl_lora_bias bias;
} peft_cfg;

static vkl_status read_peft_config(const char *path, peft_cfg *c, vkl_err *err) {
    FILE *f = vkl_os_fopen(path, "rb");
    if (!f)
        return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: cannot open: %s (a PEFT adapter needs its "
                           "adapter_config.json for r and lora_alpha)", path, strerror(errno));
    char *text = vkl_malloc(MAX_CONFIG_BYTES + 1);
    size_t n = fread(text, 1, MAX_CONFIG_BYTES + 1, f);
    fclose(f);
    vkl_status st = VKL_OK;
    cJSON *j = NULL;
    if (n > MAX_CONFIG_BYTES) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: larger than %u bytes", path, MAX_CONFIG_BYTES);
        goto done;
    }
    const char *end = NULL;
    j = cJSON_ParseWithLengthOpts(text, n, &end, false);
    if (!cJSON_IsObject(j)) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: byte %td: not a JSON object", path,
                         end && end >= text ? end - text : (ptrdiff_t)0);
        goto done;
    }
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "peft_type")) && !(cJSON_IsString(v) && !strcmp(v->valuestring,
                                                                                                 "LORA"))) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: peft_type: expected \"LORA\"", path);
        goto done;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "r");
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > VKL_LORA_MAX_R ||
        v->valuedouble != floor(v->valuedouble)) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: r: expected an integer 1..%u", path, VKL_LORA_MAX_R);
        goto done;
    }
    c->r = (uint32_t)v->valuedouble;
    c->alpha = 8; /* PEFT's default */
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha"))) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble)) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: lora_alpha: expected a positive number", path);
            goto done;
        }
        c->alpha = v->valuedouble;
    }
    c->dropout = 0;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout")) && cJSON_IsNumber(v) && v->valuedouble >= 0 &&
        v->valuedouble < 1)
        c->dropout = v->valuedouble;
    c->use_rslora = false;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "use_rslora")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsBool(v)) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: use_rslora: expected true or false", path);
            goto done;
        }
        c->use_rslora = cJSON_IsTrue(v);
    }
    c->bias = VKL_BIAS_NONE;
    if ((v = cJSON_GetObjectItemCaseSensitive(j, "bias")) && cJSON_IsString(v))
        for (int b = 0; b < VKL_BIAS_COUNT; b++)
            if (!strcmp(v->valuestring, vkl_lora_bias_names[b])) c->bias = (vkl_lora_bias)b;
    /* Options that change what the tensors mean: refuse them instead of loading something else. */
    static const char *const must_be_false[] = {"use_dora", "fan_in_fan_out"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(must_be_false); i++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, must_be_false[i]))) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: %s = true is not supported", path, must_be_false[i]);
            goto done;
        }
    static const char *const must_be_empty[] = {"rank_pattern", "alpha_pattern"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(must_be_empty); i++) {
        v = cJSON_GetObjectItemCaseSensitive(j, must_be_empty[i]);
        if (cJSON_IsObject(v) && v->child) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: %s: per-module ranks and alphas are not supported",
                             path, must_be_empty[i]);
            goto done;
        }
    }
done:
    cJSON_Delete(j);
    free(text);
    return st;
}

static vkl_status load_peft(const char *weights, const char *config, const vkl_model *base, vkl_lora **out,
                            vkl_err *err) {
    peft_cfg cfg = {0};
    vkl_status st = read_peft_config(config, &cfg, err);
    if (st) return st;
    vkl_safetensors *sf;
    if ((st = vkl_safetensors_open(weights, &sf, err))) return st;
    const uint32_t L = base->hp.n_layer;
    src_set src = {weights, vkl_calloc((size_t)L * VKL_TM_COUNT, sizeof(src_tensor)),
                   vkl_calloc((size_t)L * VKL_TM_COUNT, sizeof(src_tensor)), true};
    const vkl_st_tensor **biases = vkl_calloc((size_t)L * VKL_TM_COUNT, sizeof(*biases));
    uint32_t n_biases = 0;
    for (uint64_t i = 0; i < sf->n_tensors && !st; i++) {
        const vkl_st_tensor *t = &sf->tensors[i];
        uint32_t layer, mod;
        bool is_b;
        if (parse_peft_bias_name(t->name, L, &layer, &mod)) {
            if (t->dtype != VKL_ST_F32 || t->n_dims != 1)
                st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: bias '%s': expected a 1-D F32 tensor", weights,
                                 t->name);
            else if (biases[layer * VKL_TM_COUNT + mod])
                st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: bias '%s' appears twice", weights, t->name);
            else
                biases[layer * VKL_TM_COUNT + mod] = t, n_biases++;
            continue;
        }
        if (!parse_peft_name(t->name, &layer, &mod, &is_b)) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: tensor '%s' is not a LoRA weight vklora knows (expected "
                             "base_model.model.model.layers.N.<self_attn|mlp>.<q|k|v|o|gate|up|down>_proj.lora_<A|B>"
                             ".weight; modules_to_save, DoRA and embedding adapters are not supported)", weights,
                             t->name);
        } else if (layer >= L) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: tensor '%s': the base model has %u layers (wrong base "
                             "model?)", weights, t->name, L);
        } else if (t->n_dims != 2) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: tensor '%s' has %u dimensions, expected 2", weights,
                             t->name, t->n_dims);
        } else {
            src_tensor *d = is_b ? &src.b[layer * VKL_TM_COUNT + mod] : &src.a[layer * VKL_TM_COUNT + mod];
            if (d->name) {
                st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: '%s' and '%s' are the same weight", weights,
                                 d->name, t->name);
                break;
            }
            d->name = t->name;
            d->data = t->data;
            d->dtype = t->dtype == VKL_ST_F32 ? SRC_F32 : t->dtype == VKL_ST_F16 ? SRC_F16 : SRC_BF16;
            d->rows = t->shape[0];
            d->cols = t->shape[1];
        }
    }
    if (!st) st = build_lora(&src, base, cfg.alpha, cfg.use_rslora, false, out, err);
    if (!st && (*out)->r != cfg.r) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: r = %u but the tensors in %s have rank %u", config, cfg.r,
                         weights, (*out)->r);
        vkl_lora_free(*out);
        *out = NULL;
    }
    if (!st) {
        (*out)->dropout = cfg.dropout;
        (*out)->bias = cfg.bias;
    }
    /* Trained biases: lay them out as the trainer does, then take the file's values. */
    if (!st && n_biases) {
        vkl_lora *l = *out;
        st = vkl_lora_add_biases(l, base, VKL_BIAS_ALL, err);
        for (uint32_t k = 0; k < l->n_bias && !st; k++) {
            const vkl_lora_bias_slot *b = &l->bias_slots[k];
            const vkl_st_tensor *t = biases[b->layer * VKL_TM_COUNT + b->module];
            if (!t) continue; /* not trained: keeps the base value */
            if (t->shape[0] != b->n)
                st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: bias '%s' has %llu values, the base has %u",
                                 weights, t->name, (unsigned long long)t->shape[0], b->n);
            else
                memcpy(l->params + b->off, t->data, (size_t)b->n * sizeof(float));
        }
        for (uint32_t k = 0; k < L * VKL_TM_COUNT && !st; k++)
            if (biases[k] && !vkl_lora_bias_get(l, k / VKL_TM_COUNT, k % VKL_TM_COUNT))
                st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: bias '%s' has no bias in the base model", weights,
                                 biases[k]->name);
        l->bias = cfg.bias;
        if (st) {
            vkl_lora_free(l);
            *out = NULL;
        }
    }
    free(biases);
    free(src.a);
    free(src.b);
    vkl_safetensors_close(sf);
    return st;
}

vkl_status vkl_adapter_load(const char *path_or_dir, const vkl_model *base, vkl_lora **out, vkl_err *err) {
    *out = NULL;
    vkl_path_kind kind = vkl_os_path_kind(path_or_dir);
    if (kind == VKL_PATH_NONE)
        return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: %s", path_or_dir, strerror(errno));
    vkl_status st;
    if (kind == VKL_PATH_DIR) {
        char *w = join_path(path_or_dir, PEFT_WEIGHTS), *c = join_path(path_or_dir, PEFT_CONFIG);
        char *bin = join_path(path_or_dir, "adapter_model.bin");
        if (vkl_os_path_kind(w) == VKL_PATH_NONE)
            st = vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: no %s in this directory%s", path_or_dir, PEFT_WEIGHTS,
                             vkl_os_path_kind(bin) != VKL_PATH_NONE ? " (adapter_model.bin is a PyTorch pickle, which vklora does not "
                             "read: save it again with save_pretrained(..., safe_serialization=True))" : "");
        else
            st = load_peft(w, c, base, out, err);
        free(w);
        free(c);
        free(bin);
        return st;
    }
    if (kind != VKL_PATH_FILE)
        return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: not a file or directory", path_or_dir);
    char magic[4] = {0};
    FILE *f = vkl_os_fopen(path_or_dir, "rb");
    if (!f) return vkl_err_set(err, VKL_ERR_INPUT, "adapter: %s: cannot open: %s", path_or_dir, strerror(errno));
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    if (n == 4 && !memcmp(magic, "GGUF", 4)) return load_gguf(path_or_dir, base, out, err);
    /* Anything else is read as safetensors, whose reader explains what is wrong with a file that is not one. */
    char *dir = vkl_strdup(path_or_dir);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = '\0';
    else strcpy(dir, ".");
    char *c = join_path(dir, PEFT_CONFIG);
    st = load_peft(path_or_dir, c, base, out, err);
    free(c);
    free(dir);
    return st;
}
