/* The inference forward graph of every supported architecture on the device: activation and KV-cache buffers planned up front from the model
 * and the context, one command buffer per forward, NLL scoring or last-position logits. */
#ifndef VKLORA_FORWARD_H
#define VKLORA_FORWARD_H

#include "ops/matmul.h"
#include "ops/nn.h"
#include "vklora/lora.h"
#include "vklora/model.h"

typedef struct vkl_fwd_dims {
    uint32_t max_seq; /* sequences per forward */
    uint32_t max_T;   /* tokens per sequence per forward */
    uint32_t n_ctx;   /* KV positions kept per sequence (>= max_T; = max_T when max_seq > 1) */
} vkl_fwd_dims;

typedef struct vkl_fwd {
    vkl_vk *vk;
    vkl_model *m;
    vkl_op_cache cache;
    vkl_fwd_dims dims;
    uint32_t logit_rows; /* rows of logits computed per output-head chunk */
    /* activations, [rows = max_seq * max_T] */
    vkl_buffer x;       /* (rows, C) residual stream */
    vkl_buffer xn;      /* (rows, C) normed input of the current sub-block */
    vkl_buffer q;       /* (rows, H*D) */
    vkl_buffer ao;      /* (rows, H*D) attention output */
    vkl_buffer g, u;    /* (rows, F) gate/up, g then holds silu(g)*u */
    vkl_buffer logits;  /* (logit_rows, V) */
    vkl_buffer ids;     /* int32 (rows) tokens, then positions at offset rows*4, then targets at rows*8 */
    vkl_buffer nll;     /* (rows) */
    vkl_buffer rope_tab;   /* two packed RoPE frequency tables: global layers, local layers */
    vkl_rope_params rope[2];
    vkl_buffer tfac;       /* (rows) attention temperature of each row's q (Mistral 3) */
    vkl_buffer lse;        /* (rows * H) attention logsumexp scratch */
    bool has_tfac;
    vkl_buffer *kc, *vc; /* per layer (max_seq * n_ctx, KVH*D) */
    uint64_t planned_bytes;
    /* optional LoRA adapter applied to every projection it covers */
    const vkl_lora *lora;
    float lora_scale;    /* the adapter's scale times the user's multiplier */
    vkl_buffer lp;       /* its flat parameter vector */
    vkl_buffer xa;       /* (rows, r) scratch */
} vkl_fwd;

/* Both RoPE frequency tables of the model (global layers, then local ones) for sequences of n_ctx tokens, in buf
 * (created here; the caller destroys it), and the parameters of each pointing into it. Shared with src/train.c. */
vkl_status vkl_rope_tables_create(vkl_vk *vk, const vkl_model *m, uint32_t n_ctx, vkl_buffer *buf,
                                  vkl_rope_params rp[2], vkl_err *err);
/* Mistral 3's attention temperature of each of R rows' q (by position) into buf; *any is false, and nothing is
 * uploaded, when every factor is 1 (always below the original context). */
vkl_status vkl_attn_temp_upload(vkl_vk *vk, const vkl_hparams *hp, const int32_t *pos, uint32_t R, vkl_buffer *buf,
                                bool *any, vkl_err *err);

/* Bytes of device memory the activations and KV cache need (weights not included). */
uint64_t vkl_fwd_plan_bytes(const vkl_hparams *hp, const vkl_fwd_dims *d, uint32_t *logit_rows);
vkl_status vkl_fwd_create(vkl_vk *vk, vkl_model *m, const vkl_fwd_dims *dims, vkl_fwd **out, vkl_err *err);
void vkl_fwd_destroy(vkl_fwd *f);
/* Apply adapter `l` (checked against the model) with its scale times `multiplier` (llama.cpp's --lora-scaled).
 * The adapter must outlive the forward. */
vkl_status vkl_fwd_set_adapter(vkl_fwd *f, const vkl_lora *l, float multiplier, vkl_err *err);

/* Run n_seq sequences of T tokens each (tokens[b*T + t]) at positions pos0 .. pos0+T-1 (pos0 > 0 only with
 * n_seq == 1: incremental decoding against the KV cache).
 * targets (optional, -1 = not scored) -> nll[b*T + t] (0 where not scored);
 * last_logits (optional) -> logits of the last position of each sequence, (n_seq, V). */
vkl_status vkl_fwd_run(vkl_fwd *f, const int32_t *tokens, uint32_t n_seq, uint32_t T, uint32_t pos0,
                       const int32_t *targets, float *nll, float *last_logits, vkl_err *err);

#endif
