/* Reference of the fused dropout GEMM: the same counter-based mask, applied to the chosen operand, then the
 * reference GEMM in double. */
#include "ref/dropout.h"

#include <stdlib.h>

#include "ref/matmul.h"
#include "vklora/rng.h"

float vkl_ref_dropout_keep(const vkl_gemm_dropout *d, uint32_t i, uint32_t j) {
    uint32_t idx = d->base + i * d->si + j * d->sj;
    return vkl_rng_uniform(d->key, idx) >= d->p ? 1.0f / (1.0f - d->p) : 0.0f;
}

void vkl_ref_gemm_dropout(const vkl_gemm_shape *s, const vkl_gemm_dropout *d, const float *a, const float *b,
                          float *c) {
    if (!d || d->operand == 0 || !(d->p > 0)) {
        vkl_ref_gemm(s, a, b, c);
        return;
    }
    if (d->operand == 3) {
        /* C = alpha * mask(A·B) + beta * C: form the product alone, then combine */
        float *prod = calloc((size_t)s->M * s->N, sizeof(float));
        vkl_gemm_shape p = *s;
        p.c_rs = s->N;
        p.alpha = 1;
        p.beta = 0;
        vkl_ref_gemm(&p, a, b, prod);
        for (uint32_t m = 0; m < s->M; m++)
            for (uint32_t n = 0; n < s->N; n++) {
                float *cv = &c[(size_t)m * s->c_rs + n];
                double v = (double)s->alpha * prod[(size_t)m * s->N + n] * vkl_ref_dropout_keep(d, m, n);
                *cv = (float)(v + (s->beta != 0 ? (double)s->beta * *cv : 0.0));
            }
        free(prod);
        return;
    }
    /* copy the dropped operand densely with its mask, then the plain reference */
    bool on_a = d->operand == 1;
    uint32_t R = on_a ? s->M : s->K, C = on_a ? s->K : s->N;
    float *x = malloc((size_t)R * C * sizeof(float));
    for (uint32_t i = 0; i < R; i++)
        for (uint32_t j = 0; j < C; j++) {
            float v = on_a ? a[(size_t)i * s->a_rs + (size_t)j * s->a_cs] : b[(size_t)i * s->b_rs + (size_t)j * s->b_cs];
            x[(size_t)i * C + j] = v * vkl_ref_dropout_keep(d, i, j);
        }
    vkl_gemm_shape q = *s;
    if (on_a) q.a_rs = C, q.a_cs = 1;
    else q.b_rs = C, q.b_cs = 1;
    vkl_ref_gemm(&q, on_a ? x : a, on_a ? b : x, c);
    free(x);
}
