/* LoRA adapters as PEFT defines them: y = W x + s · B (A (dropout(x))), A (r, in), B (out, r), s = alpha / r
 * (alpha / sqrt(r) with rsLoRA). Every A and B of the run lives in one flat fp32 vector (parameters, gradients
 * and AdamW moments share its layout), which is what the optimizer, checkpoints and exports walk. */
#ifndef VKLORA_LORA_H
#define VKLORA_LORA_H

#include "vklora/common.h"
#include "vklora/config.h"
#include "vklora/model.h"

/* One adapted projection. Module numbers are the bit numbers of vkl_target_module (0 = q ... 6 = down). */
typedef struct vkl_lora_slot {
    uint32_t layer;
    uint32_t module;
    uint32_t in, out;   /* the base weight is out rows x in cols (GGUF ne = [in, out]) */
    uint64_t a_off;     /* element offset of A: r x in, row-major */
    uint64_t b_off;     /* element offset of B: out x r, row-major */
    uint32_t part[3];   /* fused modules (qkv, gate_up): rows of each projection inside `out` */
} vkl_lora_slot;

/* A trained copy of a base-model bias (PEFT's bias = "all" / "lora_only"): n floats at `off`, after every A and B. */
typedef struct vkl_lora_bias_slot {
    uint32_t layer, module, n;
    uint64_t off;
} vkl_lora_bias_slot;

typedef struct vkl_lora {
    uint32_t r;
    double alpha;
    bool use_rslora;
    float scale;             /* alpha / r, or alpha / sqrt(r) */
    double dropout;          /* recorded for the PEFT config */
    vkl_lora_bias bias;      /* recorded for the PEFT config */
    uint32_t target_modules; /* vkl_target_module mask */
    vkl_arch arch;
    uint32_t n_layer;
    uint32_t n_slots;
    vkl_lora_slot *slots;    /* ordered by layer, then module number */
    int32_t *slot_of;        /* [n_layer * VKL_TM_COUNT]: slot index, or -1 */
    vkl_lora_slot *proj;     /* [n_layer * VKL_PROJ_COUNT]: what each graph projection uses (out = 0: none) */
    uint64_t n_lora;         /* floats of the A/B region [0, n_lora): weight decay applies there only */
    uint32_t n_bias;         /* trained biases, in [n_lora, n_params) */
    vkl_lora_bias_slot *bias_slots;
    int32_t *bias_of;        /* [n_layer * VKL_TM_COUNT]: bias slot index, or -1 */
    uint64_t n_params;
    float *params;           /* host copy, n_params floats */
    char *base_model;        /* base_model_name_or_path for PEFT (general.name or the GGUF's file name) */
} vkl_lora;

/* Largest rank accepted (training configs stop at 1024; imported adapters may go higher). */
#define VKL_LORA_MAX_R 4096

/* Lay out adapters for every layer and every module in target_modules of the model: slots ordered by layer, then
 * module number, each slot's A then its B. Parameters start at zero (vkl_lora_init draws them). dropout and bias
 * start at 0 / none; base_model is the GGUF's general.name, else its file name. */
vkl_status vkl_lora_create(const vkl_model *m, uint32_t target_modules, uint32_t r, double alpha, bool use_rslora,
                           vkl_lora **out, vkl_err *err);
/* PEFT's default init: A ~ kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0, drawn from the
 * counter-based generator (include/vklora/rng.h) keyed by seed, layer and module: reproducible on any machine. */
void vkl_lora_init(vkl_lora *l, uint64_t seed);
/* The adapter of graph projection `proj` (0..6: q k v o gate up down) of a layer, or NULL: a module's own slot, or
 * for a fused module (Phi-3) a view with the shared A and the projection's rows of B (module = the fused one). */
const vkl_lora_slot *vkl_lora_proj_slot(const vkl_lora *l, uint32_t layer, uint32_t proj);
/* Map a config's target-module mask onto the model (Phi-3: q+k+v -> qkv_proj, gate+up -> gate_up_proj); a module
 * the architecture does not have is an input error that lists the ones it has. */
vkl_status vkl_lora_resolve_modules(const vkl_model *m, uint32_t mask, uint32_t *out, vkl_err *err);
/* The slot of (layer, module), or NULL when that projection carries no adapter (or the numbers are out of range). */
const vkl_lora_slot *vkl_lora_slot_get(const vkl_lora *l, uint32_t layer, uint32_t module);
/* Train the base model's biases as PEFT's `bias` does: "all" every bias (Qwen2's q/k/v), "lora_only" those of the
 * projections that carry an adapter, "none" nothing. Each starts as a copy of the base bias (F32). */
vkl_status vkl_lora_add_biases(vkl_lora *l, const vkl_model *m, vkl_lora_bias mode, vkl_err *err);
/* The trained bias of (layer, module), or NULL. */
const vkl_lora_bias_slot *vkl_lora_bias_get(const vkl_lora *l, uint32_t layer, uint32_t module);
void vkl_lora_free(vkl_lora *l);

/* Input and output features of projection `module` (bit number) in the base model: q: C -> H*D, k, v: C -> KVH*D,
 * o: H*D -> C, gate, up: C -> F, down: F -> C, taken from the layer's weights. False for a bad layer/module. */
bool vkl_lora_module_dims(const vkl_model *m, uint32_t layer, uint32_t module, uint32_t *in, uint32_t *out);
/* The output scale the adapter applies: alpha / r, or alpha / sqrt(r) with rsLoRA. */
float vkl_lora_scale_of(double alpha, uint32_t r, bool use_rslora);
/* Check that the adapter was laid out for this base model (architecture, layer count, every slot's shape). */
vkl_status vkl_lora_check_base(const vkl_lora *l, const vkl_model *m, vkl_err *err);

#endif
