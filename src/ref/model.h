/* Scalar reference of the whole llama/qwen2 forward (src/forward.c's twin), built from the reference ops of
 * src/ref: the ground truth for random models in every weight type. */
#ifndef VKLORA_REF_MODEL_H
#define VKLORA_REF_MODEL_H

#include "vklora/model.h"

/* One sequence of T tokens at positions 0..T-1, weights read from w->data (the mapped GGUF, or the bytes of
 * quantize-on-load). logits (T x V) and nll (T, targets < 0 give 0) are optional. False when a weight type has
 * no reference decoder. */
bool vkl_ref_forward(const vkl_model *m, const int32_t *tokens, uint32_t T, const int32_t *targets, float *logits,
                     float *nll);

#endif
