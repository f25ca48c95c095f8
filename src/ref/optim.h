/* Scalar twins of the optimizer ops (src/ops/optim.h). */
#ifndef VKLORA_REF_OPTIM_H
#define VKLORA_REF_OPTIM_H

#include "ops/optim.h"

double vkl_ref_sumsq(const float *x, uint64_t n);
/* The AdamW step of shaders/adamw.comp in double, with h->sumsq as the squared gradient norm. */
void vkl_ref_adamw(float *p, const float *g, float *m1, float *m2, const vkl_adamw_hyper *h, uint64_t n);

#endif
