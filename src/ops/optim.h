/* Host side of the optimizer ops: the global gradient norm (sumsq.comp, two-level fixed-order reduction) and the
 * AdamW step (adamw.comp) over the flat LoRA vectors. Scalar twins in src/ref/optim.h. */
#ifndef VKLORA_OPS_OPTIM_H
#define VKLORA_OPS_OPTIM_H

#include "ops/nn.h"

/* The optimizer's hyper-parameters live in a small device buffer (not push constants) so a recorded step reads
 * whatever the host last wrote, and sumsq can deposit the squared gradient norm next to them. */
typedef struct vkl_adamw_hyper {
    float lr, beta1, beta2, eps, weight_decay;
    float bc1;      /* 1 - beta1^t */
    float bc2_sqrt; /* sqrt(1 - beta2^t) */
    float max_norm; /* global-norm clip, 0 = off */
    float sumsq;    /* written on the device: sum of squared gradients */
    float pad[7];
} vkl_adamw_hyper;
_Static_assert(sizeof(vkl_adamw_hyper) == 64, "vkl_adamw_hyper must match the Hyper block in shaders/adamw.comp");
#define VKL_ADAMW_SUMSQ_OFFSET 32 /* byte offset of sumsq */
_Static_assert(offsetof(vkl_adamw_hyper, sumsq) == VKL_ADAMW_SUMSQ_OFFSET, "sumsq offset");

/* Bytes of scratch vkl_op_sumsq needs for n elements. */
uint64_t vkl_op_sumsq_scratch_bytes(const vkl_vk *vk /* NULL: worst case */, uint64_t n);
/* out (one float) = sum of x[i]^2 over n elements, in a fixed order (reproducible). scratch: see above. */
vkl_status vkl_op_sumsq(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, uint64_t n, const vkl_buffer *scratch,
                        vkl_tview out, vkl_err *err);
/* One AdamW step over n elements; `hyper` points at a vkl_adamw_hyper on the device. */
vkl_status vkl_op_adamw(vkl_vk *vk, vkl_op_cache *c, vkl_tview p, vkl_tview g, vkl_tview m1, vkl_tview m2,
                        vkl_tview hyper, uint64_t n, vkl_err *err);

#endif
