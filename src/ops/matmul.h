/* Host side of the matrix products: the weight matmul that decodes GGUF blocks in the shader (forward and the
 * transposed product of the backward), and a strided fp32 GEMM for LoRA adapters and everything else. */
#ifndef VKLORA_OPS_MATMUL_H
#define VKLORA_OPS_MATMUL_H

#include "ops/nn.h"

/* y[M, N] = x[M, K] · W[N, K]^T (+ bias[N]) (+ y if accumulate).
 * W is a GGUF weight of `wtype`: N rows of K elements (K a multiple of the block size), decoded in the shader;
 * the base model is never expanded to fp32 in device memory. x, y fp32 row-major with row strides K and N.
 * The shader reads W as 32-bit words: its buffer must extend to the next multiple of 4 bytes after the last row.
 * Splits over N and M so that no binding exceeds maxStorageBufferRange (nor maxTexelBufferElements). Kernel
 * variant: on CPU devices subgroup outer products read through texel buffers ("texel"; needs K % 4 == 0 and x,
 * and an f32 W, at 16-byte offsets, else register tiles "regtile"), on GPUs cooperative matrices ("coopmat": f16
 * operands, f32 accumulation, the tile shape from the device's VK_KHR_cooperative_matrix list; only when this build
 * has those shaders) or else shared-memory tiles ("tiled"); VKLORA_MATMUL=texel|regtile|tiled|coopmat|auto forces
 * one (coopmat where it cannot run is an input error saying why). Views whose offsets are multiples of 16 (with
 * K % 4 == 0) take the faster vec4 paths. */
vkl_status vkl_op_matmul(vkl_vk *vk, vkl_op_cache *c, uint32_t wtype, vkl_tview w, vkl_tview x, vkl_tview bias,
                         vkl_tview y, uint32_t M, uint32_t N, uint32_t K, bool accumulate, vkl_err *err);

/* A low-rank term the weight products add to their result: the second factor of a LoRA branch. For vkl_op_matmul_lr
 * y[m, n] += scale * sum_j u[m, j] * v[n, j] (u = xa: M x r, v = B: N x r); for vkl_op_matmul_t_lr
 * dx[m, k] += scale * sum_j u[m, j] * v[j, k] (u = dxa: M x r, v = A: r x K); fp32, rows back to back. The texel
 * kernels add it after their k loop, before their one store, when r % 4 == 0 and u and v start on 16-byte boundaries
 * (such a thin product run alone costs as many stores as the weight product); otherwise, and in the other variants,
 * a gemm adds it after the product. vkl_op_variant_used("lowrank", "fused" or "gemm") records which. mask (NULL:
 * none) is LoRA dropout on the term alone, as operand 3 of vkl_gemm_dropout (element (m, k) of dx, (m, n) of y):
 * the transposed texel kernel takes it fused, the forward always by the gemm. */
typedef struct vkl_mm_lowrank {
    vkl_tview u, v;
    uint32_t r;
    float scale;
    const struct vkl_gemm_dropout *mask;
} vkl_mm_lowrank;
/* vkl_op_matmul plus the low-rank term lr (NULL: none). */
vkl_status vkl_op_matmul_lr(vkl_vk *vk, vkl_op_cache *c, uint32_t wtype, vkl_tview w, vkl_tview x, vkl_tview bias,
                            vkl_tview y, uint32_t M, uint32_t N, uint32_t K, bool accumulate,
                            const vkl_mm_lowrank *lr, vkl_err *err);
/* The kernel variant vkl_op_matmul would run for these arguments ("texel", "regtile", "tiled" or "coopmat"; static
 * string). */
vkl_status vkl_op_matmul_kernel(const vkl_vk *vk, uint32_t wtype, vkl_tview w, vkl_tview x, uint32_t K,
                                const char **name, vkl_err *err);

/* The transposed product of the backward: dx[M, K] (+)= dy[M, N] · W[N, K] (W as above, read column-wise).
 * Kernel per VKLORA_MATMUL (auto resolves as for vkl_op_matmul: texel on CPU devices, coopmat on GPUs that have
 * cooperative matrices, tiled on other GPUs): texel = subgroup outer products through texel views (when K % 4 == 0
 * and an f32 W is 16-byte aligned, else regtile); coopmat = f16 panels in shared memory, f32 accumulation, each dy
 * row scaled by a power of two (an input error saying why where it cannot run); tiled = shared-memory tiles, each
 * weight block decoded once per workgroup, fp32; regtile = register tiles from storage buffers. */
vkl_status vkl_op_matmul_t(vkl_vk *vk, vkl_op_cache *c, uint32_t wtype, vkl_tview w, vkl_tview dy, vkl_tview dx,
                           uint32_t M, uint32_t N, uint32_t K, bool accumulate, vkl_err *err);
/* vkl_op_matmul_t plus the low-rank term lr (NULL: none; see vkl_mm_lowrank). */
vkl_status vkl_op_matmul_t_lr(vkl_vk *vk, vkl_op_cache *c, uint32_t wtype, vkl_tview w, vkl_tview dy, vkl_tview dx,
                              uint32_t M, uint32_t N, uint32_t K, bool accumulate, const vkl_mm_lowrank *lr,
                              vkl_err *err);

/* Strided GEMM: C[m, n] = alpha * sum_k A(m, k) * B(k, n) + beta * C[m, n], with
 * A(m, k) = a[m * a_rs + k * a_cs], B(k, n) = b[k * b_rs + n * b_cs], C[m, n] = c[m * c_rs + n] (elements), fp32
 * in memory. Covers x·A^T, (xA)·B^T, dy^T·xa, ... of the LoRA forward and backward without transposing copies.
 * Kernel per VKLORA_MATMUL (auto: texel on CPU devices, coopmat on GPUs that have cooperative matrices, tiled on
 * other GPUs): texel = register tiles reading A and B through R32F texel views; regtile = the same from storage
 * buffers; tiled = shared-memory tiles (square, or tall / wide when N / M is the small rank r), fp32; coopmat = f16
 * panels in shared memory with f32 accumulation, each A row and B column scaled by a power of two into f16's range
 * first (an input error saying why where it cannot run). Every kernel applies the same dropout mask. */
typedef struct vkl_gemm_shape {
    uint32_t M, N, K;
    uint32_t a_rs, a_cs, b_rs, b_cs, c_rs;
    float alpha, beta;
} vkl_gemm_shape;
vkl_status vkl_op_gemm(vkl_vk *vk, vkl_op_cache *c, const vkl_gemm_shape *s, vkl_tview a, vkl_tview b, vkl_tview cm,
                       vkl_err *err);

/* Inverted dropout fused into the GEMM (LoRA's lora_dropout) on one operand: 1 = A, 2 = B, 3 = the product before
 * it is added to C. Element (i, j) of that operand ((m, k) of A, (k, n) of B, (m, n) of C) is kept with probability
 * 1 - p and scaled by 1 / (1 - p); its draw is counter base + i*si + j*sj of the Philox stream `key`
 * (include/vklora/rng.h), so the backward regenerates the forward's mask without storing it. */
typedef struct vkl_gemm_dropout {
    uint32_t operand, key;
    float p;
    uint32_t base, si, sj;
} vkl_gemm_dropout;
/* vkl_op_gemm with dropout (d NULL or d->p == 0: exactly vkl_op_gemm, no extra cost). */
vkl_status vkl_op_gemm_dropout(vkl_vk *vk, vkl_op_cache *c, const vkl_gemm_shape *s, const vkl_gemm_dropout *d,
                               vkl_tview a, vkl_tview b, vkl_tview cm, vkl_err *err);

#endif
