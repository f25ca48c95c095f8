/* Push-constant blocks of shaders/matmul.comp, shaders/matmul_t.comp and shaders/gemm_f32.comp, with the tile
 * shapes the host must agree on. Each struct is mirrored field by field by a `Push` block in its shader. */
#ifndef VKLORA_OPS_MATMUL_PUSH_H
#define VKLORA_OPS_MATMUL_PUSH_H

#include <stdint.h>

/* Flags shared by the three shaders. */
#define VKL_MM_BIAS 1u       /* add bias[n] (matmul) */
#define VKL_MM_ACC 2u        /* y += ... instead of y = ... (matmul, matmul_t); for gemm: read C (beta != 0) */
#define VKL_MM_X_VEC4 4u     /* x rows (and f32 weight rows) start at 16-byte boundaries: vec4 loads;
                                matmul_t texel: dy is bound as RGBA32F */
#define VKL_MM_LOWRANK 8u    /* matmul, matmul_t texel: add the low-rank term (vkl_mm_lowrank) before the store */
#define VKL_MM_PREFETCH 16u  /* matmul_t texel, Q5_K/Q6_K: touch the weight rows a few steps ahead (FEAT only) */
#define VKL_MMT_LR_DROP 32u   /* matmul_t texel: the low-rank term is masked by LoRA dropout (FEAT bit only) */
#define VKL_MMT_PREFETCH_BYTES (4u << 20) /* ... for weights larger than this (smaller ones stay in cache) */
#define VKL_MMT_PREFETCH_ROW_BYTES 4096u  /* ... whose rows are at most this long (a row a page or less) */

/* Tile shapes compiled into the shaders (keep in sync with the #defines there). */
#define VKL_MM_REGTILE_TM 8  /* x rows per invocation, matmul regtile */
#define VKL_MM_REGTILE_TN 8  /* W rows per invocation, matmul regtile */
#define VKL_MM_REGTILE_WG 64
#define VKL_MM_TILED_BM 64   /* workgroup tile, matmul tiled: x rows */
#define VKL_MM_TILED_BN 64   /* W rows */
#define VKL_MM_TILED_WG 128  /* the tiled shader's thread layout is built for exactly this many invocations */
#define VKL_MM_TEXEL_ROWS 16 /* x rows per subgroup tile, matmul texel (when the subgroup has <= 16 lanes) */
#define VKL_MM_TEXEL_TC 8    /* W rows per lane: a subgroup tile covers TC * subgroup size W rows */
#define VKL_MM_TEXEL_ROWS_F32 32 /* the same two for f32 weights */
#define VKL_MM_TEXEL_TC_F32 4
#define VKL_MM_TEXEL_ROWS_TALL 64 /* and for F16, BF16 and Q6_K, whose weight fetches cost the most per value */
#define VKL_MM_TEXEL_TC_TALL 4
#define VKL_MM_TEXEL_MAX_SG 32 /* largest subgroup the texel kernel is built for (accumulators per lane) */
/* matmul coopmat: WM x WN subgroups per workgroup, each owning RM x RN cooperative-matrix tiles of the device's
 * LM x LN (x LK) shape; a staged k panel is KT * LK wide. Workgroup tile: (WM*RM*LM) x rows by (WN*RN*LN) W rows. */
#define VKL_MM_COOP_WM 2
#define VKL_MM_COOP_WN 2
#define VKL_MM_COOP_RM 2
#define VKL_MM_COOP_RN 2
#define VKL_MM_COOP_KT 2
#define VKL_MMT_TEXEL_ROWS 16 /* dx rows per subgroup tile, matmul_t texel (when the subgroup has <= 16 lanes) */
#define VKL_MMT_TEXEL_ROWS_F32 32 /* the same for f32 weights */
#define VKL_MMT_TEXEL_TQ 2    /* vec4 of consecutive k per lane: a subgroup tile covers 4 * TQ * subgroup size k */
#define VKL_MMT_TEXEL_TQ_WIDE 4 /* the same for Q4_K (16 codes, one texel) */
#define VKL_MMT_TEXEL_TQ_32 8   /* and the other quantized types: 32 k per lane (a sub-block, a block, two runs) */
#define VKL_MMT_TM 8         /* dy rows per invocation, matmul_t */
#define VKL_MMT_TK 16        /* consecutive k per invocation, matmul_t */
#define VKL_MMT_WG 64
#define VKL_GEMM_TM 16
#define VKL_GEMM_TN 8
#define VKL_GEMM_WG 64
/* gemm texel: vector fetches (specialization constant 1 of shaders/gemm_f32.comp, VEC) */
#define VKL_GEMM_VEC_A_K 1u /* A read 4 k a fetch (a_cs == 1) */
#define VKL_GEMM_VEC_A_M 2u /* A read 4 rows a fetch (a_rs == 1) */
#define VKL_GEMM_VEC_B_K 4u /* B read 4 k a fetch (b_rs == 1) */
#define VKL_GEMM_VEC_B_N 8u /* B read 4 columns a fetch (b_cs == 1) */
/* gemm skinny (shaders/gemm_skinny.comp, the texel gemm of a product with a narrow side): its row tiles, the widest
 * narrow side it takes (wider ones run gemm_f32's tiles) and its layout bits (specialization constant 2) */
#define VKL_GEMM_SKINNY_TR 4 /* A along m: rows per lane */
#define VKL_GEMM_SKINNY_G 4 /* A along k: row fetches per step, of subgroup size / 4 rows each */
#define VKL_GEMM_SKINNY_MAX_N 256
#define VKL_GEMM_SKINNY_A_M 1u /* the wide operand contiguous along m (else along k) */
#define VKL_GEMM_SKINNY_S_N 2u /* the narrow operand contiguous along n (else along k) */
/* matmul_t tiled (shaders/matmul_t.comp MMT_TILED): workgroup tile of BM dx rows by BK columns, 128 invocations */
#define VKL_MMT_TILED_BM 64
#define VKL_MMT_TILED_BK 64
#define VKL_MMT_TILED_WG 128
/* gemm tiled (shaders/gemm_tiled.comp): workgroup tiles of square, tall (narrow N) and wide (narrow M) shape, 128
 * invocations each */
#define VKL_GEMM_TILED_WG 128
#define VKL_GEMM_TILED_SQ 64   /* BM = BN */
#define VKL_GEMM_TILED_LONG 128 /* tall: BM; wide: BN */
#define VKL_GEMM_TILED_SHORT 16 /* tall: BN; wide: BM */
/* gemm coopmat (shaders/gemm_coopmat.comp): VKL_MM_COOP_WM x WN = 4 subgroups as in the weight matmul, laid out
 * 2 x 2 with 2 x 2 tiles each (square), 4 x 1 with 2 x 1 (tall: 8 LM rows by LN columns) or 1 x 4 with 1 x 2 (wide:
 * LM rows by 8 LN columns); a staged k panel is VKL_MM_COOP_KT * LK wide. */

/* y[m, n] (+)= sum_k x[m, k] * W[n, k] (+ bias[n]) for the M x N block of one dispatch. Offsets are relative
 * to the bound ranges (the host binds aligned offsets and passes the remainder here). */
typedef struct vkl_matmul_push {
    uint32_t M, N, K;    /* rows of x and of W in this dispatch; K elements per row */
    uint32_t w_byte_off; /* byte offset of W row 0 (even; a multiple of 4 for f32) */
    uint32_t x_off;      /* float offset of x row 0 */
    uint32_t y_off;      /* float offset of y[0, 0] of this block */
    uint32_t y_stride;   /* floats between y rows (the full N) */
    uint32_t b_off;      /* float offset of bias[0] of this block */
    uint32_t flags;      /* VKL_MM_* */
    /* VKL_MM_LOWRANK (texel): y[m, n] += lr_scale * sum_j u[m, j] * v[n, j] over j < lr_r (a multiple of 4); u and v
     * are RGBA32F views whose rows are lr_r / 4 texels, u row 0 at texel u_off, v row 0 at texel v_off */
    uint32_t lr_r, u_off, v_off;
    float lr_scale;
    uint32_t pad[3];
} vkl_matmul_push;
_Static_assert(sizeof(vkl_matmul_push) == 64, "vkl_matmul_push must match Push in shaders/matmul.comp");

/* dx[m, k] (+)= sum_n dy[m, n] * W[n, k] for the M rows and N weight rows of one dispatch. */
typedef struct vkl_matmul_t_push {
    uint32_t M, N, K;     /* rows of dy in this dispatch, W rows in this dispatch, K */
    uint32_t w_byte_off;  /* byte offset of W row 0 */
    uint32_t dy_off;      /* float offset of dy[0, 0] of this block */
    uint32_t dy_stride;   /* floats between dy rows (the full N) */
    uint32_t dx_off;      /* float offset of dx row 0 */
    uint32_t flags;       /* VKL_MM_ACC, VKL_MM_X_VEC4, VKL_MM_LOWRANK */
    /* VKL_MM_LOWRANK (texel): dx[m, k] += lr_scale * sum_j u[m, j] * v[j, k] over j < lr_r (a multiple of 4); u and v
     * are RGBA32F views, u rows of lr_r / 4 texels from texel u_off, v rows of K / 4 texels from texel v_off */
    uint32_t lr_r, u_off, v_off;
    float lr_scale;
    /* VKL_MMT_LR_DROP (texel, a specialization-constant bit only): LoRA dropout on the low-rank term, dx element
     * (m, k) of this dispatch kept (times scale) when the uniform of counter base + m*si + k*sj of stream key is >= p */
    uint32_t key, base, si, sj;
    float p, scale;
} vkl_matmul_t_push;
_Static_assert(sizeof(vkl_matmul_t_push) == 72, "vkl_matmul_t_push must match Push in shaders/matmul_t.comp");

/* C[m, n] = alpha * sum_k A(m, k) B(k, n) + beta * C[m, n] over one dispatch's block; strides in floats. */
typedef struct vkl_gemm_push {
    uint32_t M, N, K;
    uint32_t a_off, a_rs, a_cs;
    uint32_t b_off, b_rs, b_cs;
    uint32_t c_off, c_rs;
    uint32_t flags; /* VKL_MM_ACC: C is read (beta != 0) */
    float alpha, beta;
    uint32_t pad[2]; /* gemm_skinny: pad[0] is C's column stride */
} vkl_gemm_push;
_Static_assert(sizeof(vkl_gemm_push) == 64, "vkl_gemm_push must match Push in shaders/gemm_f32.comp");

/* gemm_f32_drop and gemm_skinny_drop (-DDROPOUT): the same block followed by the dropout fields (gemm_skinny_drop:
 * si and sj are the counter strides along its A's m and k, mode unused). */
typedef struct vkl_gemm_drop_push {
    vkl_gemm_push g;
    uint32_t key, mode, base, si, sj;
    float p, scale, pad;
} vkl_gemm_drop_push;
_Static_assert(sizeof(vkl_gemm_drop_push) == 96, "vkl_gemm_drop_push must match Push in shaders/gemm_f32.comp");

#endif
