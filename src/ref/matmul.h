/* Scalar C twins of the matrix-product ops in src/ops/matmul.h, accumulating in double: the ground truth the
 * shaders are tested against. Weights are decoded with vkl_ref_dequantize, exactly as stored in the GGUF. */
#ifndef VKLORA_REF_MATMUL_H
#define VKLORA_REF_MATMUL_H

#include "ops/matmul.h"

/* y[M, N] (+)= x[M, K] · W[N, K]^T (+ bias[N]); w holds N rows of K elements of `wtype` (GGUF layout, rows
 * back to back); bias may be NULL. Returns false for an unsupported type, K not a multiple of the block size,
 * or when out of memory. */
bool vkl_ref_matmul(uint32_t wtype, const void *w, const float *x, const float *bias, float *y, uint32_t M,
                    uint32_t N, uint32_t K, bool accumulate);

/* dx[M, K] (+)= dy[M, N] · W[N, K]. Same conditions as vkl_ref_matmul. */
bool vkl_ref_matmul_t(uint32_t wtype, const void *w, const float *dy, float *dx, uint32_t M, uint32_t N,
                      uint32_t K, bool accumulate);

/* The low-rank term of vkl_mm_lowrank on host arrays: u is M x r; v is N x r (forward) or r x K (transposed); mask
 * (NULL: none) its dropout, operand 3 of vkl_gemm_dropout (element (m, n) of y, (m, k) of dx). */
typedef struct vkl_ref_lowrank {
    const float *u, *v;
    uint32_t r;
    float scale;
    const vkl_gemm_dropout *mask;
} vkl_ref_lowrank;
/* vkl_ref_matmul / vkl_ref_matmul_t plus the term lr (NULL: none), summed in double with the product. */
bool vkl_ref_matmul_lr(uint32_t wtype, const void *w, const float *x, const float *bias, float *y, uint32_t M,
                       uint32_t N, uint32_t K, bool accumulate, const vkl_ref_lowrank *lr);
bool vkl_ref_matmul_t_lr(uint32_t wtype, const void *w, const float *dy, float *dx, uint32_t M, uint32_t N,
                         uint32_t K, bool accumulate, const vkl_ref_lowrank *lr);

/* C = alpha * A·B + beta * C with the strides of s (see vkl_gemm_shape); beta == 0 ignores C's old contents. */
void vkl_ref_gemm(const vkl_gemm_shape *s, const float *a, const float *b, float *c);

#endif
