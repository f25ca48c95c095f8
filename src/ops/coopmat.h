/* The cooperative-matrix choices src/ops/matmul.c makes for its kernels, shared with the other coopmat kernels
 * (attention in src/ops/nn.c) so that every op takes the same tile shape and subgroup size from the device. */
#ifndef VKLORA_OPS_COOPMAT_H
#define VKLORA_OPS_COOPMAT_H

#include "vk/vk.h"

/* The subgroup-scope f16 x f16 + f32 -> f32 shape the weight matmul runs with on this device (largest M*N*K that
 * fits its shared memory, K % 8 == 0, N % 4 == 0), with the subgroup size (*sg) and the size the pipeline must
 * require (*required_sg, 0: none); NULL when this build or this device has none. */
const vkl_coopmat_shape *vkl_coopmat_pick(const vkl_vk *vk, uint32_t *sg, uint32_t *required_sg);
/* Fills desc's subgroup size and specialization constants 0..4 (workgroup = WM x WN subgroups, subgroup size, M, N,
 * K) as the matmul kernels take them; *rows x *cols is the matmul's workgroup tile. Returns the workgroup size. */
uint32_t vkl_coopmat_desc(vkl_pipeline_desc *desc, const vkl_coopmat_shape *cs, uint32_t sg, uint32_t required_sg,
                          uint32_t *rows, uint32_t *cols);
/* Why vkl_coopmat_pick finds nothing on this device or build (a static sentence for an error message). */
const char *vkl_coopmat_why_not(const vkl_vk *vk);

#endif
