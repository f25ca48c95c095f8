/* The LoRA parameter layout: one slot per (layer, adapted projection), each slot's A (r x in) then B (out x r) in
 * one flat fp32 vector, and PEFT's default initialisation drawn from the counter-based generator. */
#include "vklora/lora.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vklora/quant.h"
#include "vklora/rng.h"

bool vkl_lora_module_dims(const vkl_model *m, uint32_t layer, uint32_t module, uint32_t *in, uint32_t *out) {
    if (!m->layers || layer >= m->hp.n_layer || module >= VKL_TM_COUNT) return false;
    if (!(m->hp.desc->modules & (1u << module))) return false;
    if (module == 7 && !m->fused_qkv) return false;
    /* Phi-3's fused modules span their projections' rows: q|k|v of attn_qkv, gate|up of ffn_up. */
    uint32_t proj[3], n = vkl_module_projections(module, proj);
    vkl_layer_weights *L = &m->layers[layer];
    const vkl_weight *w = vkl_layer_projection(L, proj[0]);
    uint64_t rows = 0;
    for (uint32_t k = 0; k < n; k++) rows += vkl_layer_projection(L, proj[k])->rows;
    /* The weight is `rows` outputs of `cols` inputs each (GGUF ne = [cols, rows]). */
    if (rows == 0 || w->cols == 0 || rows > UINT32_MAX || w->cols > UINT32_MAX) return false;
    *in = (uint32_t)w->cols;
    *out = (uint32_t)rows;
    return true;
}

/* The mask of modules to adapt on this model: on Phi-3 (fused q/k/v and gate/up) the names of llama's projections
 * stand for the fused module that holds them, as long as all of them are named. */
vkl_status vkl_lora_resolve_modules(const vkl_model *m, uint32_t mask, uint32_t *out, vkl_err *err) {
    const vkl_arch_desc *d = m->hp.desc;
    uint32_t have = d->modules;
    if (d->fused_qkv && !m->fused_qkv) have = (have & ~VKL_TM_QKV) | VKL_TM_Q | VKL_TM_K | VKL_TM_V;
    if (have & VKL_TM_QKV) {
        uint32_t qkv = VKL_TM_Q | VKL_TM_K | VKL_TM_V;
        if ((mask & qkv) == qkv) mask = (mask & ~qkv) | VKL_TM_QKV;
    }
    if (have & VKL_TM_GATE_UP) {
        uint32_t gu = VKL_TM_GATE | VKL_TM_UP;
        if ((mask & gu) == gu) mask = (mask & ~gu) | VKL_TM_GATE_UP;
    }
    if (mask & ~have) {
        char list[256] = "", bad[256] = "";
        for (uint32_t i = 0; i < VKL_TM_COUNT; i++) {
            char *dst = (have & (1u << i)) ? list : (mask & (1u << i)) ? bad : NULL;
            if (dst) snprintf(dst + strlen(dst), 256 - strlen(dst), "%s%s", *dst ? ", " : "", vkl_target_module_names[i]);
        }
        return vkl_err_set(err, VKL_ERR_INPUT, "config: lora.target_modules: a %s model has no %s (its modules: %s%s)",
                           d->name, bad, list,
                           (have & (VKL_TM_QKV | VKL_TM_GATE_UP)) ? "; q/k/v and gate/up may only be named together"
                                                                   : "");
    }
    *out = mask;
    return VKL_OK;
}

float vkl_lora_scale_of(double alpha, uint32_t r, bool use_rslora) {
    return (float)(use_rslora ? alpha / sqrt((double)r) : alpha / (double)r);
}

static const char *base_name_of(const vkl_model *m) {
    const char *name = m->gguf ? vkl_gguf_get_str(m->gguf, "general.name") : NULL;
    if (name && *name) return name;
    const char *path = m->gguf && m->gguf->path ? m->gguf->path : "unknown";
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The slot each graph projection (0..6) uses: its own slot, or a row range of a fused module's slot (the shared A,
 * B's rows of that projection); `module` stays the fused module's so dropout draws one mask for the fused input. */
static void lora_build_proj(vkl_lora *l) {
    free(l->proj);
    l->proj = vkl_calloc((size_t)l->n_layer * VKL_PROJ_COUNT, sizeof(*l->proj));
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        vkl_lora_slot *p = &l->proj[(size_t)s->layer * VKL_PROJ_COUNT];
        /* one projection, or q|k|v / gate|up with the split recorded at creation in part[] (out != 0 marks a
         * projection that has an adapter) */
        uint32_t proj[3], n = vkl_module_projections(s->module, proj);
        uint64_t b = s->b_off;
        for (uint32_t k = 0; k < n; k++) {
            vkl_lora_slot v = *s;
            v.out = n == 1 ? s->out : s->part[k];
            v.b_off = b;
            b += (uint64_t)v.out * l->r;
            p[proj[k]] = v;
        }
    }
}

vkl_status vkl_lora_create(const vkl_model *m, uint32_t target_modules, uint32_t r, double alpha, bool use_rslora,
                           vkl_lora **out, vkl_err *err) {
    *out = NULL;
    if (target_modules == 0 || (target_modules & ~VKL_TM_MASK))
        return vkl_err_set(err, VKL_ERR_INPUT, "lora: target module mask 0x%x: expected a non-empty subset of 0x%x",
                           target_modules, VKL_TM_MASK);
    if (vkl_lora_resolve_modules(m, target_modules, &target_modules, err)) return err->status;
    if (r == 0 || r > VKL_LORA_MAX_R)
        return vkl_err_set(err, VKL_ERR_INPUT, "lora: rank %u: expected 1..%u", r, VKL_LORA_MAX_R);
    if (!(alpha > 0) || !isfinite(alpha))
        return vkl_err_set(err, VKL_ERR_INPUT, "lora: alpha %g: expected a positive number", alpha);
    const uint32_t L = m->hp.n_layer;
    if (L == 0 || !m->layers) return vkl_err_set(err, VKL_ERR_INPUT, "lora: the base model has no layers");

    vkl_lora *l = vkl_calloc(1, sizeof(*l));
    l->r = r;
    l->alpha = alpha;
    l->use_rslora = use_rslora;
    l->scale = vkl_lora_scale_of(alpha, r, use_rslora);
    l->dropout = 0.0;
    l->bias = VKL_BIAS_NONE;
    l->target_modules = target_modules;
    l->arch = m->hp.arch;
    l->n_layer = L;
    uint32_t per_layer = (uint32_t)__builtin_popcount(target_modules);
    l->slots = vkl_calloc((size_t)L * per_layer, sizeof(*l->slots));
    l->slot_of = vkl_malloc((size_t)L * VKL_TM_COUNT * sizeof(*l->slot_of));
    uint64_t off = 0;
    for (uint32_t layer = 0; layer < L; layer++) {
        for (uint32_t mod = 0; mod < VKL_TM_COUNT; mod++) {
            l->slot_of[layer * VKL_TM_COUNT + mod] = -1;
            if (!(target_modules & (1u << mod))) continue;
            vkl_lora_slot *s = &l->slots[l->n_slots];
            if (!vkl_lora_module_dims(m, layer, mod, &s->in, &s->out)) {
                vkl_lora_free(l);
                return vkl_err_set(err, VKL_ERR_INPUT, "lora: layer %u has no %s weight to adapt", layer,
                                   vkl_target_module_gguf_names[mod]);
            }
            s->layer = layer;
            s->module = mod;
            uint32_t proj[3], np = vkl_module_projections(mod, proj);
            for (uint32_t k = 0; np > 1 && k < np; k++)
                s->part[k] = (uint32_t)vkl_layer_projection(&m->layers[layer], proj[k])->rows;
            uint64_t na, nb;
            if (!vkl_mul_u64(r, s->in, &na) || !vkl_mul_u64(r, s->out, &nb) || !vkl_add_u64(off, na, &s->b_off) ||
                !vkl_add_u64(s->b_off, nb, &off)) {
                vkl_lora_free(l);
                return vkl_err_set(err, VKL_ERR_INPUT, "lora: parameter count overflows");
            }
            s->a_off = s->b_off - na;
            l->slot_of[layer * VKL_TM_COUNT + mod] = (int32_t)l->n_slots++;
        }
    }
    l->n_params = l->n_lora = off;
    lora_build_proj(l);
    l->bias_of = vkl_malloc((size_t)L * VKL_TM_COUNT * sizeof(*l->bias_of));
    for (uint32_t i = 0; i < L * VKL_TM_COUNT; i++) l->bias_of[i] = -1;
    if (off > SIZE_MAX / sizeof(float)) {
        vkl_lora_free(l);
        return vkl_err_set(err, VKL_ERR_INPUT, "lora: %" PRIu64 " parameters do not fit in host memory", off);
    }
    l->params = vkl_calloc((size_t)off, sizeof(float));
    l->base_model = vkl_strdup(base_name_of(m));
    *out = l;
    return VKL_OK;
}

void vkl_lora_init(vkl_lora *l, uint64_t seed) {
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        /* kaiming_uniform_(a = sqrt(5)) on an (r, in) weight: gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / in)
         * = 1 / sqrt(in). One stream per (layer, module), so a slot's values do not depend on the other slots. */
        const float bound = (float)(1.0 / sqrt((double)s->in));
        const uint32_t key = vkl_rng_key(seed, (uint64_t)s->layer * 8 + s->module);
        float *A = l->params + s->a_off;
        const uint64_t na = (uint64_t)l->r * s->in;
        for (uint64_t j = 0; j < na; j++) A[j] = (2.0f * vkl_rng_uniform(key, j) - 1.0f) * bound;
        /* B = 0 makes the adapted model start exactly as the base model. */
        memset(l->params + s->b_off, 0, (size_t)s->out * l->r * sizeof(float));
    }
}

const vkl_lora_slot *vkl_lora_proj_slot(const vkl_lora *l, uint32_t layer, uint32_t proj) {
    if (!l->proj || layer >= l->n_layer || proj >= VKL_PROJ_COUNT) return NULL;
    const vkl_lora_slot *s = &l->proj[(size_t)layer * VKL_PROJ_COUNT + proj];
    return s->out ? s : NULL;
}

const vkl_lora_slot *vkl_lora_slot_get(const vkl_lora *l, uint32_t layer, uint32_t module) {
    if (layer >= l->n_layer || module >= VKL_TM_COUNT) return NULL;
    int32_t i = l->slot_of[layer * VKL_TM_COUNT + module];
    return i < 0 ? NULL : &l->slots[i];
}

/* The base bias tensor of (layer, module): only q/k/v have one in llama-family models (Qwen2). */
static const vkl_weight *base_bias(const vkl_model *m, uint32_t layer, uint32_t module) {
    const vkl_layer_weights *L = &m->layers[layer];
    const vkl_weight *w = module == 0 ? &L->bq : module == 1 ? &L->bk : module == 2 ? &L->bv : NULL;
    return w && w->t ? w : NULL;
}

vkl_status vkl_lora_add_biases(vkl_lora *l, const vkl_model *m, vkl_lora_bias mode, vkl_err *err) {
    l->bias = mode;
    if (mode == VKL_BIAS_NONE) return VKL_OK;
    if (l->n_bias) return vkl_err_set(err, VKL_ERR_INPUT, "lora: biases were added already");
    for (uint32_t layer = 0; layer < l->n_layer; layer++)
        for (uint32_t mod = 0; mod < VKL_TM_COUNT; mod++) {
            const vkl_weight *b = base_bias(m, layer, mod);
            if (!b || (mode == VKL_BIAS_LORA_ONLY && !vkl_lora_slot_get(l, layer, mod))) continue;
            if (b->type != VKL_TYPE_F32)
                return vkl_err_set(err, VKL_ERR_INPUT, "lora: blk.%u.%s.bias: expected an f32 bias", layer,
                                   vkl_target_module_gguf_names[mod]);
            l->bias_slots = vkl_realloc(l->bias_slots, (l->n_bias + 1) * sizeof(*l->bias_slots));
            vkl_lora_bias_slot *s = &l->bias_slots[l->n_bias];
            *s = (vkl_lora_bias_slot){.layer = layer, .module = mod, .n = (uint32_t)b->cols, .off = l->n_params};
            l->params = vkl_realloc(l->params, (size_t)(l->n_params + s->n) * sizeof(float));
            memcpy(l->params + s->off, b->data, (size_t)s->n * sizeof(float));
            l->n_params += s->n;
            l->bias_of[layer * VKL_TM_COUNT + mod] = (int32_t)l->n_bias++;
        }
    return VKL_OK;
}

const vkl_lora_bias_slot *vkl_lora_bias_get(const vkl_lora *l, uint32_t layer, uint32_t module) {
    if (layer >= l->n_layer || module >= VKL_TM_COUNT) return NULL;
    int32_t i = l->bias_of[layer * VKL_TM_COUNT + module];
    return i < 0 ? NULL : &l->bias_slots[i];
}

vkl_status vkl_lora_check_base(const vkl_lora *l, const vkl_model *m, vkl_err *err) {
    if (l->arch != m->hp.arch || l->n_layer != m->hp.n_layer)
        return vkl_err_set(err, VKL_ERR_INPUT, "lora: the adapter was made for a %s model with %u layers, the base "
                           "model is %s with %u layers", vkl_arch_get(l->arch)->name, l->n_layer,
                           m->hp.desc->name, m->hp.n_layer);
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        uint32_t in, out;
        if (!vkl_lora_module_dims(m, s->layer, s->module, &in, &out) || in != s->in || out != s->out)
            return vkl_err_set(err, VKL_ERR_INPUT, "lora: blk.%u.%s: the adapter is %u -> %u, the base model's weight "
                               "differs", s->layer, vkl_target_module_gguf_names[s->module], s->in, s->out);
    }
    return VKL_OK;
}

void vkl_lora_free(vkl_lora *l) {
    if (!l) return;
    free(l->slots);
    free(l->slot_of);
    free(l->proj);
    free(l->bias_slots);
    free(l->bias_of);
    free(l->params);
    free(l->base_model);
    free(l);
}
