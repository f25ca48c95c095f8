/* The LoRA branch of a projection as strided GEMMs over the flat parameter vector (layout in vklora/lora.h):
 * forward y += s·(x·A^T)·B^T and its backward into dA, dB and dx. Shared by inference (forward.c) and training
 * (train.c); operands larger than a binding are processed in row blocks; dropout is fused into the GEMMs. */
#ifndef VKLORA_OPS_LORA_H
#define VKLORA_OPS_LORA_H

#include "ops/matmul.h"
#include "vklora/lora.h"

/* LoRA dropout on the branch's input x: probability p (0 = off, and then free), mask stream `key` (the caller keys
 * it by seed, step, micro-batch, layer and module); element (row, col) of x draws counter (row0 + row) * in + col,
 * where row0 is the first row of x inside the whole micro-batch (a device that runs rows [row0, row0 + R) of it
 * draws the masks one device running all rows would: the split over devices does not change them). */
typedef struct vkl_lora_dropout {
    float p;
    uint32_t key;
    uint32_t row0;
} vkl_lora_dropout;

/* The forward in two halves: vkl_op_lora_xa computes xa = dropout(x)·A^T; the weight product then adds
 * scale·xa·B^T as its low-rank term (vkl_op_matmul_lr with vkl_lora_term), fused into its kernel where it can. */
vkl_status vkl_op_lora_xa(vkl_vk *vk, vkl_op_cache *c, const vkl_lora_slot *sl, uint32_t r, vkl_tview params,
                          vkl_tview x, vkl_tview xa, uint32_t R, const vkl_lora_dropout *drop, vkl_err *err);
vkl_mm_lowrank vkl_lora_term(const vkl_lora_slot *sl, uint32_t r, float scale, vkl_tview params, vkl_tview xa);
/* Given dy (R x out) and the saved xa: dB += scale·dy^T·xa, dxa = scale·dy·B, dA += dxa^T·x, and dx += dxa·A
 * (masked by the dropout) unless dx has no buffer: then the transposed weight product adds that as its low-rank term
 * (vkl_op_matmul_t_lr with vkl_lora_term_back). dxa is R x r scratch. */
vkl_status vkl_op_lora_backward(vkl_vk *vk, vkl_op_cache *c, const vkl_lora_slot *sl, uint32_t r, float scale,
                                vkl_tview params, vkl_tview grads, vkl_tview x, vkl_tview xa, vkl_tview dy,
                                vkl_tview dxa, vkl_tview dx, uint32_t R, const vkl_lora_dropout *drop, vkl_err *err);
/* The term dxa·A, masked by x's dropout drop (NULL or p = 0: none); the term points at *mask, which must outlive
 * it. */
vkl_mm_lowrank vkl_lora_term_back(const vkl_lora_slot *sl, uint32_t r, vkl_tview params, vkl_tview dxa,
                                  const vkl_lora_dropout *drop, vkl_gemm_dropout *mask);

/* db[n] += sum over the R rows of dy[row, n] (dy is R x n): the gradient of a trained bias. `ones` holds at least
 * R floats equal to 1 (the reduction is a 1 x R by R x n product). */
vkl_status vkl_op_bias_grad(vkl_vk *vk, vkl_op_cache *c, vkl_tview dy, vkl_tview ones, vkl_tview db, uint32_t n,
                            uint32_t R, vkl_err *err);

#endif
