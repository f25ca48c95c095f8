/* Scalar twin of the dropout fused into shaders/gemm_f32.comp (-DDROPOUT): the keep factor of one element. */
#ifndef VKLORA_REF_DROPOUT_H
#define VKLORA_REF_DROPOUT_H

#include "ops/matmul.h"

/* 1/(1-p) when element (i, j) of the dropped operand is kept, else 0 (as the shader computes it). */
float vkl_ref_dropout_keep(const vkl_gemm_dropout *d, uint32_t i, uint32_t j);
/* vkl_ref_gemm with the dropout applied to operand d->operand (d may be NULL). */
void vkl_ref_gemm_dropout(const vkl_gemm_shape *s, const vkl_gemm_dropout *d, const float *a, const float *b,
                          float *c);

#endif
