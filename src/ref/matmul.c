/* Scalar reference of the weight matmul (forward and transposed) and of the strided GEMM, accumulating in
 * double so that its own rounding is negligible next to the fp32 shaders it checks. */
#include "ref/matmul.h"

#include <stdlib.h>

#include "ref/dropout.h"
#include "vklora/quant.h"

/* All N decoded rows at once: the reference favours simplicity over memory (tests use small shapes). */
static float *decode_rows(uint32_t wtype, const void *w, uint32_t N, uint32_t K) {
    uint64_t row_bytes;
    const vkl_type_traits *t = vkl_type_traits_get(wtype);
    if (!t || !t->supported || K == 0 || !vkl_type_row_bytes(wtype, K, &row_bytes)) return NULL;
    float *wf = malloc((size_t)N * K * sizeof(float) + 1);
    if (!wf) return NULL;
    for (uint32_t n = 0; n < N; n++) {
        if (!vkl_ref_dequantize(wtype, (const uint8_t *)w + (size_t)n * row_bytes, wf + (size_t)n * K, K)) {
            free(wf);
            return NULL;
        }
    }
    return wf;
}

bool vkl_ref_matmul(uint32_t wtype, const void *w, const float *x, const float *bias, float *y, uint32_t M,
                    uint32_t N, uint32_t K, bool accumulate) {
    return vkl_ref_matmul_lr(wtype, w, x, bias, y, M, N, K, accumulate, NULL);
}

bool vkl_ref_matmul_lr(uint32_t wtype, const void *w, const float *x, const float *bias, float *y, uint32_t M,
                       uint32_t N, uint32_t K, bool accumulate, const vkl_ref_lowrank *lr) {
    float *wf = decode_rows(wtype, w, N, K);
    if (!wf) return false;
    for (uint32_t m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * K;
        for (uint32_t n = 0; n < N; n++) {
            const float *wr = wf + (size_t)n * K;
            double s = 0;
            for (uint32_t k = 0; k < K; k++) s += (double)xr[k] * wr[k];
            if (lr) {
                double t = 0;
                for (uint32_t j = 0; j < lr->r; j++) t += (double)lr->u[(size_t)m * lr->r + j] * lr->v[(size_t)n * lr->r + j];
                s += lr->scale * t * (lr->mask ? vkl_ref_dropout_keep(lr->mask, m, n) : 1.0f);
            }
            if (bias) s += bias[n];
            float *yo = y + (size_t)m * N + n;
            if (accumulate) s += *yo;
            *yo = (float)s;
        }
    }
    free(wf);
    return true;
}

bool vkl_ref_matmul_t(uint32_t wtype, const void *w, const float *dy, float *dx, uint32_t M, uint32_t N,
                      uint32_t K, bool accumulate) {
    return vkl_ref_matmul_t_lr(wtype, w, dy, dx, M, N, K, accumulate, NULL);
}

bool vkl_ref_matmul_t_lr(uint32_t wtype, const void *w, const float *dy, float *dx, uint32_t M, uint32_t N,
                         uint32_t K, bool accumulate, const vkl_ref_lowrank *lr) {
    float *wf = decode_rows(wtype, w, N, K);
    if (!wf) return false;
    for (uint32_t m = 0; m < M; m++) {
        for (uint32_t k = 0; k < K; k++) {
            double s = 0;
            for (uint32_t n = 0; n < N; n++) s += (double)dy[(size_t)m * N + n] * wf[(size_t)n * K + k];
            if (lr) {
                double t = 0;
                for (uint32_t j = 0; j < lr->r; j++) t += (double)lr->u[(size_t)m * lr->r + j] * lr->v[(size_t)j * K + k];
                s += lr->scale * t * (lr->mask ? vkl_ref_dropout_keep(lr->mask, m, k) : 1.0f);
            }
            float *o = dx + (size_t)m * K + k;
            if (accumulate) s += *o;
            *o = (float)s;
        }
    }
    free(wf);
    return true;
}

void vkl_ref_gemm(const vkl_gemm_shape *s, const float *a, const float *b, float *c) {
    for (uint32_t m = 0; m < s->M; m++) {
        for (uint32_t n = 0; n < s->N; n++) {
            double acc = 0;
            for (uint32_t k = 0; k < s->K; k++)
                acc += (double)a[(size_t)m * s->a_rs + (size_t)k * s->a_cs] *
                       b[(size_t)k * s->b_rs + (size_t)n * s->b_cs];
            float *o = c + (size_t)m * s->c_rs + n;
            double v = s->alpha * acc;
            if (s->beta != 0.0f) v += (double)s->beta * *o;
            *o = (float)v;
        }
    }
}
