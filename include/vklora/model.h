/* A llama-family model (llama, qwen2, qwen3, gemma2, gemma3, phi3, mistral3) read from GGUF: hyper-parameters, tensor map and
 * shape checks (host side), and its weights on the device, kept in their GGUF types. */
#ifndef VKLORA_MODEL_H
#define VKLORA_MODEL_H

#include "vklora/common.h"
#include "vklora/gguf.h"

struct vkl_vk;
struct vkl_model;

typedef enum {
    VKL_ARCH_LLAMA = 0, /* Llama 1-3.3, Mistral 7B, Mistral-Nemo, SmolLM2, TinyLlama, DeepSeek-R1-Distill-Llama */
    VKL_ARCH_QWEN2,     /* Qwen2 / Qwen2.5, DeepSeek-R1-Distill-Qwen */
    VKL_ARCH_QWEN3,     /* Qwen3 (dense) */
    VKL_ARCH_GEMMA2,
    VKL_ARCH_GEMMA3,    /* the text model */
    VKL_ARCH_PHI3,      /* Phi-3, Phi-3.5-mini, Phi-4, Phi-4-mini */
    VKL_ARCH_MISTRAL3,  /* Mistral Small 3.x / Ministral 3 (text) */
    VKL_ARCH_COUNT
} vkl_arch;

typedef enum { VKL_ACT_SILU = 0, VKL_ACT_GELU_TANH = 1 } vkl_act;

/* What makes an architecture differ from llama's block. The graphs (src/forward.c, src/train.c, src/ref/model.c)
 * read this and the per-layer hyper-parameters, never the architecture's name: a family is one table entry in
 * src/model.c plus the ops it needs. */
typedef struct vkl_arch_desc {
    vkl_arch arch;
    const char *name;        /* general.architecture */
    const char *examples;    /* the models people download, for messages and `info` */
    bool rope_neox;          /* NeoX pairs (i, i + rope_dim/2); else adjacent pairs (llama.cpp's permuted q/k) */
    vkl_act act;             /* of the gated FFN: act(gate) * up */
    bool qkv_bias;           /* attn_q/k/v.bias present (Qwen2) */
    bool qk_norm;            /* attn_q_norm / attn_k_norm: RMSNorm over each head of q and k before RoPE */
    bool post_norms;         /* post_attention_norm / post_ffw_norm on each sub-block's output before the add */
    bool embd_scale;         /* token embeddings times sqrt(n_embd) */
    bool fused_qkv;          /* one attn_qkv weight: q rows, then k rows, then v rows */
    bool fused_gate_up;      /* one ffn_up weight of 2F rows: gate rows, then up rows */
    uint32_t swa_period;     /* default sliding-window pattern: layer l is local iff l % p < p - 1 (0: none) */
    bool softcaps;           /* reads attn_logit_softcapping / final_logit_softcapping */
    uint32_t big_query_layers; /* Gemma: with this layer count (the 27B) q scales by 1/sqrt(C/H), else 1/sqrt(D) */
    bool attn_temp;          /* attention.temperature_scale: q *= 1 + s*ln(1 + floor(pos / n_ctx_orig)) */
    uint32_t modules;        /* LoRA target modules it has (vkl_target_module mask) */
} vkl_arch_desc;

/* The description of architecture `name`, or NULL. */
const vkl_arch_desc *vkl_arch_find(const char *name);
const vkl_arch_desc *vkl_arch_get(vkl_arch a);

typedef enum { VKL_ROPE_SCALING_NONE = 0, VKL_ROPE_SCALING_LINEAR, VKL_ROPE_SCALING_YARN,
               VKL_ROPE_SCALING_LONGROPE } vkl_rope_scaling;

/* Per-layer attention settings. */
typedef struct vkl_layer_hp {
    uint32_t window; /* sliding window: a query at p sees keys j with p - j < window (0 = full causal) */
    uint32_t rope;   /* which rope table (vkl_hparams.rope_base[]): 0 global, 1 local (sliding-window) layers */
} vkl_layer_hp;

typedef struct vkl_hparams {
    vkl_arch arch;
    const vkl_arch_desc *desc;
    const char *arch_name; /* general.architecture, owned by the gguf */
    uint32_t n_layer;      /* L */
    uint32_t n_embd;       /* C: model width */
    uint32_t n_head;       /* H */
    uint32_t n_head_kv;    /* KVH */
    uint32_t head_dim;     /* D (attention.key_length; C / H unless given) */
    uint32_t n_ff;         /* F */
    uint32_t n_vocab;      /* V */
    uint32_t n_ctx_train;
    uint32_t rope_dim;     /* dims rotated per head (<= D) */
    float rope_base;       /* rope.freq_base (global layers) */
    float rope_base_swa;   /* rope.freq_base_swa (local layers; Gemma 3) */
    float rms_eps;
    bool rope_neox;        /* NeoX pairs (i, i + rope_dim/2); llama GGUF: adjacent pairs */
    bool qk_hf_rows;       /* q/k rows in Hugging Face's order although llama.cpp's permute them (a folder) */
    bool tied_output;      /* no output.weight: the head reuses token_embd */
    /* rope scaling (global layers; local layers of Gemma 3 use none) */
    vkl_rope_scaling rope_scaling;
    float rope_factor;         /* rope.scaling.factor (1 = none) */
    uint32_t rope_orig_ctx;    /* rope.scaling.original_context_length (n_ctx_train when absent) */
    float yarn_beta_fast, yarn_beta_slow, yarn_log_mul;
    float rope_attn_factor;    /* rope.scaling.attn_factor (1) */
    /* Gemma */
    float attn_softcap;        /* 0 = off */
    float final_softcap;       /* 0 = off */
    float query_scale;         /* scale of q·k (1/sqrt(D) unless the family says otherwise) */
    float embd_scale;          /* 1, or sqrt(n_embd) */
    float attn_temp_scale;     /* mistral3: attention.temperature_scale (0 = off) */
    uint32_t n_swa;            /* sliding window of local layers (0 = none) */
    vkl_layer_hp *layer;       /* [n_layer], owned (vkl_hparams_free) */
} vkl_hparams;

/* Frequencies f_i (theta_i = pos * f_i) of rope table `which` (0 global, 1 local) for sequences of n_ctx tokens
 * (Phi-3's longrope picks its factors by context), into f[rope_dim / 2], and the cos/sin multiplier. */
void vkl_rope_freqs(const struct vkl_model *m, uint32_t which, uint32_t n_ctx, double *f, float *mscale);
/* Llama 3's frequency-dependent rope scaling as llama.cpp's rope_freqs divisors f[rope_dim / 2]: wavelengths below
 * orig / high keep their frequency, above orig / low are divided by factor, and the band between interpolates. */
void vkl_rope_llama3_factors(double base, uint32_t rope_dim, double factor, double low, double high, double orig,
                             float *f);
/* Mistral 3's attention temperature of a position (1 when the model has none). */
float vkl_attn_temp(const vkl_hparams *hp, int32_t pos);

/* One weight: where it is in the file and, once uploaded, on the device. */
typedef struct vkl_weight {
    const vkl_gguf_tensor *t; /* NULL when absent (optional tensors); name and shape as in the file */
    const void *data;         /* the bytes in `type`: t->data (the mapping), or `owned` after quantize-on-load */
    void *owned;              /* malloc'd bytes this weight owns (vkl_model_quantize), freed with the model */
    uint32_t type;            /* ggml type (may differ from t->type after vkl_model_quantize) */
    uint64_t rows, cols;      /* ne[1], ne[0]: `rows` output features of `cols` inputs each */
    uint64_t bytes;
    uint64_t row0;            /* first row inside t (a row range of a fused tensor; 0 otherwise) */
    struct vkl_buffer *buf;   /* device copy (NULL before upload); shared by tied weights */
} vkl_weight;

typedef struct vkl_layer_weights {
    vkl_weight attn_norm;                /* (C) F32 */
    vkl_weight wq, wk, wv, wo;           /* (H*D, C) (KVH*D, C) (KVH*D, C) (C, H*D): rows x cols; with a fused
                                            attn_qkv, wq/wk/wv are row ranges of it (row0) */
    vkl_weight bq, bk, bv;               /* qwen2 biases (H*D) (KVH*D) (KVH*D), F32; absent otherwise */
    vkl_weight q_norm, k_norm;           /* (D) F32: qwen3, gemma3 */
    vkl_weight attn_post_norm;           /* (C) F32: gemma */
    vkl_weight ffn_norm;                 /* (C) */
    vkl_weight w_gate, w_up, w_down;     /* (F, C) (F, C) (C, F); phi3: gate and up are row ranges of ffn_up */
    vkl_weight ffn_post_norm;            /* (C) F32: gemma */
} vkl_layer_weights;

typedef struct vkl_model {
    vkl_gguf *gguf; /* owned, or the view of `hf` */
    struct vkl_hf_model *hf; /* owned: the Hugging Face folder the model was read from (NULL for a GGUF) */
    vkl_hparams hp;
    vkl_weight tok_embd;    /* (V, C) */
    vkl_weight output_norm; /* (C) */
    vkl_weight output;      /* (V, C); == tok_embd's tensor when tied */
    vkl_weight rope_freqs;  /* (rope_dim/2) F32: Llama 3.1+ frequency divisors */
    vkl_weight rope_long, rope_short; /* (rope_dim/2) F32: Phi-3 longrope factors */
    vkl_layer_weights *layers;
    uint64_t n_params;
    bool fused_qkv;         /* the file has attn_qkv (phi3): q/k/v are row ranges of it */
    struct vkl_vk *vk;      /* set by upload */
    uint64_t device_bytes;  /* weights on the device */
} vkl_model;

/* Open a GGUF and check that it is a supported llama-family model: every tensor present with the right shape and
 * a supported type (quantized rows a multiple of the block size). No device work. */
vkl_status vkl_model_load(const char *path, vkl_model **out, vkl_err *err);
/* Read and validate the hyper-parameters only (used by `info` too); free with vkl_hparams_free. */
vkl_status vkl_hparams_read(const vkl_gguf *g, vkl_hparams *hp, vkl_err *err);
void vkl_hparams_free(vkl_hparams *hp);
/* Copy every weight to the device in its type (w->data; see vkl_model_quantize in vklora/quantize.h). Weights already
 * on this device stay as they are (uploading again is free); a model lives on one device, so another device is an
 * input error (load the model again for it). */
vkl_status vkl_model_upload(vkl_model *m, struct vkl_vk *vk, vkl_err *err);
/* Only what a stage of a layer split over devices uses: layers [l0, l1), the embedding when l0 = 0, the final norm
 * and the head when l1 = n_layer (the others keep no device buffer). */
vkl_status vkl_model_upload_layers(vkl_model *m, struct vkl_vk *vk, uint32_t l0, uint32_t l1, vkl_err *err);
/* The device bytes vkl_model_upload_layers(m, vk, l0, l1) takes (its memory plan). */
uint64_t vkl_model_layers_bytes(vkl_model *m, uint32_t l0, uint32_t l1);
/* Every weight present in the model (the tied head once, as tok_embd) into ws, which holds at least
 * VKL_MODEL_MAX_WEIGHTS(m) pointers; returns the count. */
#define VKL_MODEL_MAX_WEIGHTS(m) (3 + 17 * (size_t)(m)->hp.n_layer)
int vkl_model_weights(vkl_model *m, vkl_weight **ws);
/* The projection `module` (0..6: q k v o gate up down) of a layer; NULL otherwise. */
vkl_weight *vkl_layer_projection(vkl_layer_weights *L, uint32_t module);
/* The graph projections (0..6) a LoRA module spans, in row order, into proj[3]; returns their count: one for llama's
 * seven, q k v for Phi-3's fused qkv (7), gate up for its fused gate_up (8); 0 for anything else. */
uint32_t vkl_module_projections(uint32_t module, uint32_t proj[3]);
/* A projection's llama.cpp tensor name "blk.N.<module><rest>" (module attn_q ... ffn_down or attn_qkv, followed by a
 * '.'): its layer, its LoRA module on this family (ffn_up is the fused gate_up module where desc fuses gate and up)
 * and *rest, the text after the module name (".weight", ".weight.lora_a", ...). false for any other name. */
bool vkl_gguf_projection_name(const char *name, const vkl_arch_desc *desc, uint32_t *layer, uint32_t *module,
                              const char **rest);
void vkl_model_free(vkl_model *m);

struct vkl_tokenizer;
/* The model's tokenizer: a folder's tokenizer.json (exactly Hugging Face's tokenization), else the GGUF's
 * vocabulary. */
vkl_status vkl_model_tokenizer(const vkl_model *m, struct vkl_tokenizer **out, vkl_err *err);
/* Its chat template: the folder's tokenizer_config.json / chat_template.jinja (through `tok`), else the GGUF's
 * tokenizer.chat_template; NULL when there is none. */
const char *vkl_model_chat_template(const vkl_model *m, const struct vkl_tokenizer *tok);

#endif
