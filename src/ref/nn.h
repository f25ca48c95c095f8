/* Scalar reference of every transformer op of src/ops/nn.h, forward and backward, accumulating in double: the
 * twins the shaders are tested against. Each op comes in double (_f64, used for finite differences) and float. */
#ifndef VKLORA_REF_NN_H
#define VKLORA_REF_NN_H

#include "ops/nn.h"

/* out[i, :] = row ids[i] of a `type` table with rows of n elements (ids must be valid rows). False for a type
 * without a reference dequantizer or a row length that is not a multiple of its block size. */
bool vkl_ref_get_rows(uint32_t type, const void *table, const int32_t *ids, uint32_t n_ids, uint32_t n, float *out);

/* y = x * rstd * w per row; rstd (optional) receives 1/sqrt(mean(x^2) + eps). y may alias x. */
void vkl_ref_rmsnorm(const float *x, const float *w, float *y, float *rstd, uint32_t rows, uint32_t n, float eps);
void vkl_ref_rmsnorm_f64(const double *x, const double *w, double *y, double *rstd, uint32_t rows, uint32_t n,
                         double eps);
/* dx = (or += when accumulate) the input gradient; dw += the weight gradient (dw optional). */
void vkl_ref_rmsnorm_back(const float *x, const float *w, const float *rstd, const float *dy, float *dx,
                          bool accumulate, float *dw, uint32_t rows, uint32_t n);
void vkl_ref_rmsnorm_back_f64(const double *x, const double *w, const double *rstd, const double *dy, double *dx,
                              bool accumulate, double *dw, uint32_t rows, uint32_t n);

/* RoPE in place, as vkl_op_rope with the table freqs[rope_dim/2] (angles and cos/sin in double). */
void vkl_ref_rope(float *x, const int32_t *pos, uint32_t rows, uint32_t n_heads, uint32_t head_dim,
                  uint32_t rope_dim, bool neox, const double *freqs, double mscale, bool inverse);
void vkl_ref_rope_f64(double *x, const int32_t *pos, uint32_t rows, uint32_t n_heads, uint32_t head_dim,
                      uint32_t rope_dim, bool neox, const double *freqs, double mscale, bool inverse);

/* Causal GQA attention as vkl_op_attention, sliding window and soft-capping included (seg and lse optional; lse is
 * -inf for a query that sees no key). */
void vkl_ref_attention(const vkl_attn_shape *s, const float *q, const float *k, const float *v, const int32_t *seg,
                       float *out, float *lse);
void vkl_ref_attention_f64(const vkl_attn_shape *s, const double *q, const double *k, const double *v,
                           const int32_t *seg, double *out, double *lse);
/* dq = ; dk, dv += (from the forward's out and lse). */
void vkl_ref_attention_back(const vkl_attn_shape *s, const float *q, const float *k, const float *v,
                            const int32_t *seg, const float *out, const float *lse, const float *dout, float *dq,
                            float *dk, float *dv);
void vkl_ref_attention_back_f64(const vkl_attn_shape *s, const double *q, const double *k, const double *v,
                                const int32_t *seg, const double *out, const double *lse, const double *dout,
                                double *dq, double *dk, double *dv);

void vkl_ref_swiglu(const float *g, const float *u, float *h, uint64_t n);
void vkl_ref_swiglu_f64(const double *g, const double *u, double *h, uint64_t n);
void vkl_ref_swiglu_back(const float *g, const float *u, const float *dh, float *dg, float *du, uint64_t n);
void vkl_ref_swiglu_back_f64(const double *g, const double *u, const double *dh, double *dg, double *du,
                             uint64_t n);

void vkl_ref_add(const float *a, const float *b, float alpha, float *y, uint64_t n);

/* h = gelu_tanh(g) * u and its backward, as vkl_op_geglu / vkl_op_geglu_back (dg, du may alias g, u). */
void vkl_ref_geglu(const float *g, const float *u, float *h, uint64_t n);
void vkl_ref_geglu_f64(const double *g, const double *u, double *h, uint64_t n);
void vkl_ref_geglu_back(const float *g, const float *u, const float *dh, float *dg, float *du, uint64_t n);
void vkl_ref_geglu_back_f64(const double *g, const double *u, const double *dh, double *dg, double *du,
                            uint64_t n);

/* y = cap * tanh(x / cap); backward from y: dx = dy * (1 - (y/cap)^2). */
void vkl_ref_softcap(const float *x, float *y, uint64_t n, float cap);
void vkl_ref_softcap_f64(const double *x, double *y, uint64_t n, double cap);
void vkl_ref_softcap_back(const float *y, const float *dy, float *dx, uint64_t n, float cap);
void vkl_ref_softcap_back_f64(const double *y, const double *dy, double *dx, uint64_t n, double cap);

/* y = s * x; y[r, :] = factors[r] * x[r, :]. */
void vkl_ref_scale(const float *x, float *y, uint64_t n, float s);
void vkl_ref_scale_rows(const float *x, const float *factors, float *y, uint32_t rows, uint32_t n);
void vkl_ref_scale_rows_f64(const double *x, const double *factors, double *y, uint32_t rows, uint32_t n);

/* nll and dlogits optional, as vkl_op_cross_entropy (target >= V: nll NaN, zero gradient). */
void vkl_ref_cross_entropy(const float *logits, const int32_t *targets, uint32_t rows, uint32_t V, float *nll,
                           float *dlogits, float grad_scale);
void vkl_ref_cross_entropy_f64(const double *logits, const int32_t *targets, uint32_t rows, uint32_t V, double *nll,
                               double *dlogits, double grad_scale);

#endif
