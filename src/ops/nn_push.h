/* Push-constant blocks of the transformer op shaders (shaders/get_rows.comp, rmsnorm*.comp, rope.comp,
 * attention*.comp, swiglu*.comp, geglu*.comp, softcap*.comp, scale*.comp, add.comp, cross_entropy.comp),
 * mirrored field by field and size-checked. */
#ifndef VKLORA_OPS_NN_PUSH_H
#define VKLORA_OPS_NN_PUSH_H

#include <stdint.h>

/* Offsets named *_off are float (or int32) element offsets inside the bound range: bindings start at the
 * device's offset alignment at or below the tensor, so the shader adds the remainder. */

/* shaders/get_rows.comp */
typedef struct vkl_get_rows_push {
    uint32_t n_ids;          /* ids (output rows) in this dispatch */
    uint32_t n;              /* elements per row */
    uint32_t table_byte_off; /* byte offset of table row table_row0 inside the bound table range */
    uint32_t table_row0;     /* first table row in the bound range */
    uint32_t table_rows;     /* table rows in the bound range */
    uint32_t table_total;    /* all table rows (clamped to INT32_MAX): ids outside 0..table_total-1 give zeros */
    uint32_t ids_off;
    uint32_t out_off;
} vkl_get_rows_push;
_Static_assert(sizeof(vkl_get_rows_push) == 32, "vkl_get_rows_push must match shaders/get_rows.comp");

/* shaders/rmsnorm.comp */
typedef struct vkl_rmsnorm_push {
    uint32_t rows, n;
    uint32_t x_off, w_off, y_off, rstd_off;
    uint32_t has_rstd;
    float eps;
} vkl_rmsnorm_push;
_Static_assert(sizeof(vkl_rmsnorm_push) == 32, "vkl_rmsnorm_push must match shaders/rmsnorm.comp");

/* shaders/rmsnorm_back.comp (both variants: dx per row, dw per column) */
typedef struct vkl_rmsnorm_back_push {
    uint32_t rows, n;
    uint32_t x_off, w_off, rstd_off, dy_off, dx_off, dw_off;
    uint32_t accumulate; /* dx += instead of = */
    uint32_t pad[3];
} vkl_rmsnorm_back_push;
_Static_assert(sizeof(vkl_rmsnorm_back_push) == 48, "vkl_rmsnorm_back_push must match shaders/rmsnorm_back.comp");

/* shaders/rope.comp. theta_i = pos * f_i with f_i read from the frequency table as a float-float pair
 * (hi, lo) so that the shader can form the angle to ~1e-12 relative (see the shader). */
typedef struct vkl_rope_push {
    uint32_t rows, n_heads, head_dim, rope_dim;
    uint32_t x_off, pos_off, freqs_off;
    uint32_t neox, inverse;
    float mscale;
    uint32_t pad[2];
} vkl_rope_push;
_Static_assert(sizeof(vkl_rope_push) == 48, "vkl_rope_push must match shaders/rope.comp");

/* shaders/attention.comp and shaders/attention_back.comp (dq and dk/dv variants) share one block. */
#define VKL_ATTN_HAS_SEG 1u
#define VKL_ATTN_HAS_LSE 2u
#define VKL_ATTN_MERGE 4u /* scalar kernels, a slice after the first: merge into out/lse (forward), dq += (dq) */
/* Only in the tile kernels' FEAT specialization constant (with VKL_ATTN_HAS_SEG): */
#define VKL_ATTN_HAS_DELTA 8u     /* the dq pass writes Di = dOi.Oi at delta_off, dk/dv reads it */
#define VKL_ATTN_FEAT_SOFTCAP 16u /* the scores are soft-capped */
/* The tile kernels' loop steps (shaders/attention_tile.comp KB, attention_back_tile.comp QB): keys per iteration of
 * the forward, (query, head) pairs per iteration of dk/dv; the dq pass takes one key an iteration. */
#define VKL_ATTN_TILE_KB 4u
#define VKL_ATTN_TILE_QB 4u
typedef struct vkl_attn_push {
    uint32_t n_seq; /* sequences in this dispatch */
    uint32_t T, S, n_head, n_head_kv, D, pos0;
    float scale;
    uint32_t q_off, k_off, v_off, seg_off, out_off, lse_off, dout_off;
    uint32_t dq_off; /* dq (dq pass) or dk (dk/dv pass) */
    uint32_t dv_off;
    uint32_t flags;  /* VKL_ATTN_HAS_* */
    uint32_t window; /* 0 = none */
    float softcap;   /* 0 = off */
    uint32_t r0, r1; /* scalar kernels: the slice of the walked side in this dispatch (keys for the forward and dq,
                        queries for dk/dv), so that one invocation stays within llvmpipe's loop limit */
    uint32_t delta_off; /* VKL_ATTN_HAS_DELTA: the delta binding's offset in floats (lse's layout) */
    uint32_t pad;
} vkl_attn_push;
_Static_assert(sizeof(vkl_attn_push) == 96, "vkl_attn_push must match shaders/common/attn.glsl");

/* shaders/swiglu.comp, swiglu_back.comp, geglu*.comp, softcap*.comp, scale.comp and add.comp (elementwise over n) */
typedef struct vkl_eltwise_push {
    uint32_t n;
    uint32_t a_off, b_off, c_off, d_off; /* swiglu: g u h; swiglu_back: g u dh dg, du in e_off; add: a b y */
    uint32_t e_off;                      /* geglu*: as swiglu*; softcap: x y; softcap_back: y dy dx; scale: x y */
    float alpha; /* add: alpha; softcap*: cap; scale: s */
    uint32_t pad;
} vkl_eltwise_push;
_Static_assert(sizeof(vkl_eltwise_push) == 32, "vkl_eltwise_push must match the elementwise shaders");

/* shaders/scale_rows.comp: y[r, :] = factors[r] * x[r, :] */
typedef struct vkl_scale_rows_push {
    uint32_t rows, n;
    uint32_t x_off, f_off, y_off;
    uint32_t pad[3];
} vkl_scale_rows_push;
_Static_assert(sizeof(vkl_scale_rows_push) == 32, "vkl_scale_rows_push must match shaders/scale_rows.comp");

/* shaders/cross_entropy.comp */
typedef struct vkl_xent_push {
    uint32_t rows, V;
    uint32_t logits_off, targets_off, nll_off, dlogits_off;
    uint32_t has_nll, has_grad;
    float grad_scale;
    uint32_t pad[3];
} vkl_xent_push;
_Static_assert(sizeof(vkl_xent_push) == 48, "vkl_xent_push must match shaders/cross_entropy.comp");

#endif
