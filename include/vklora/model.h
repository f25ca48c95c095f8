/* A llama-family model (architectures `llama` and `qwen2`) read from GGUF: hyper-parameters, tensor map and
 * shape checks (host side), and its weights on the device, kept in their GGUF types. */
#ifndef VKLORA_MODEL_H
#define VKLORA_MODEL_H

#include "vklora/common.h"
#include "vklora/gguf.h"

struct vkl_vk;

typedef enum { VKL_ARCH_LLAMA = 0, VKL_ARCH_QWEN2 = 1 } vkl_arch;

typedef struct vkl_hparams {
    vkl_arch arch;
    const char *arch_name; /* general.architecture, owned by the gguf */
    uint32_t n_layer;      /* L */
    uint32_t n_embd;       /* C: model width */
    uint32_t n_head;       /* H */
    uint32_t n_head_kv;    /* KVH */
    uint32_t head_dim;     /* D = C / H */
    uint32_t n_ff;         /* F */
    uint32_t n_vocab;      /* V */
    uint32_t n_ctx_train;
    uint32_t rope_dim;     /* dims rotated per head (<= D) */
    float rope_base;
    float rms_eps;
    bool rope_neox;        /* qwen2: NeoX pairs (i, i + rope_dim/2); llama GGUF: adjacent pairs */
    bool tied_output;      /* no output.weight: the head reuses token_embd */
} vkl_hparams;

/* One weight: where it is in the file and, once uploaded, on the device. */
typedef struct vkl_weight {
    const vkl_gguf_tensor *t; /* NULL when absent (optional tensors); name and shape as in the file */
    const void *data;         /* the bytes in `type`: t->data (the mapping), or `owned` after quantize-on-load */
    void *owned;              /* malloc'd bytes this weight owns (vkl_model_quantize), freed with the model */
    uint32_t type;            /* ggml type (may differ from t->type after vkl_model_quantize) */
    uint64_t rows, cols;      /* ne[1], ne[0]: `rows` output features of `cols` inputs each */
    uint64_t bytes;
    struct vkl_buffer *buf;   /* device copy (NULL before upload); shared by tied weights */
} vkl_weight;

typedef struct vkl_layer_weights {
    vkl_weight attn_norm;                /* (C) F32 */
    vkl_weight wq, wk, wv, wo;           /* (C, C) (KVH*D, C) (KVH*D, C) (C, C): rows x cols */
    vkl_weight bq, bk, bv;               /* qwen2 biases (C) (KVH*D) (KVH*D), F32; absent for llama */
    vkl_weight ffn_norm;                 /* (C) */
    vkl_weight w_gate, w_up, w_down;     /* (F, C) (F, C) (C, F) */
} vkl_layer_weights;

typedef struct vkl_model {
    vkl_gguf *gguf; /* owned */
    vkl_hparams hp;
    vkl_weight tok_embd;    /* (V, C) */
    vkl_weight output_norm; /* (C) */
    vkl_weight output;      /* (V, C); == tok_embd's tensor when tied */
    vkl_layer_weights *layers;
    uint64_t n_params;
    struct vkl_vk *vk;      /* set by upload */
    uint64_t device_bytes;  /* weights on the device */
} vkl_model;

/* Open a GGUF and check that it is a supported llama-family model: every tensor present with the right shape and
 * a supported type (quantized rows a multiple of the block size). No device work. */
vkl_status vkl_model_load(const char *path, vkl_model **out, vkl_err *err);
/* Read and validate the hyper-parameters only (used by `info` too). */
vkl_status vkl_hparams_read(const vkl_gguf *g, vkl_hparams *hp, vkl_err *err);
/* Copy every weight to the device in its type (w->data; see vkl_model_quantize in vklora/quantize.h). */
vkl_status vkl_model_upload(vkl_model *m, struct vkl_vk *vk, vkl_err *err);
/* Every weight present in the model (the tied head once, as tok_embd) into ws, which holds at least
 * VKL_MODEL_MAX_WEIGHTS(m) pointers; returns the count. */
#define VKL_MODEL_MAX_WEIGHTS(m) (3 + 12 * (size_t)(m)->hp.n_layer)
int vkl_model_weights(vkl_model *m, vkl_weight **ws);
/* The projection that LoRA module `module` (vkl_target_module bit number: q k v o gate up down) adapts. */
vkl_weight *vkl_layer_projection(vkl_layer_weights *L, uint32_t module);
void vkl_model_free(vkl_model *m);

#endif
