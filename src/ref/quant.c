/* Scalar reference (de)quantizers for F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K and Q6_K, producing and reading the
 * same bytes as llama.cpp's ggml reference code (quantize_row_*_ref / dequantize_row_*). */
#include "vklora/quant.h"

#include <math.h>
#include <string.h>

/* The quantizers deliberately compute in float with llama.cpp's operation order: every comparison in the scale
 * searches depends on float rounding, and the bytes must match what llama.cpp writes. The build is ISO C11, so
 * the compiler does not contract a*b+c into an fma, which would change those roundings. */

#define GROUP_MAX_EPS 1e-15f

/* Round to nearest, ties to even, as ggml's nearest_int does with the 1.5*2^23 trick. ggml asserts on inputs
 * beyond 2^22; we clamp instead (and map NaN to 0) so garbage input cannot cause undefined behaviour. */
static int nearest_int(float f) {
    if (!(f >= -4194303.f)) f = f != f ? 0.f : -4194303.f;
    if (f > 4194303.f) f = 4194303.f;
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes of a Q4_K/Q5_K block: sub-blocks 0..3
 * keep theirs in the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 keep the low 4 bits in
 * the nibbles of bytes 8..11 and the top 2 bits in the spare high bits of bytes 0..7. */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

static void pack_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t *q) {
    if (j < 4) {
        q[j] = ls;
        q[j + 4] = lm;
    } else {
        q[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        q[j - 4] |= (uint8_t)((ls >> 4) << 6);
        q[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* ---- Dequantizers ---- */

static void dequant_q4_0(const vkl_block_q4_0 *b, float *y) {
    float d = vkl_fp16_to_f32(b->d);
    for (int j = 0; j < QK4_0 / 2; j++) {
        y[j] = (float)((b->qs[j] & 0xF) - 8) * d;
        y[j + QK4_0 / 2] = (float)((b->qs[j] >> 4) - 8) * d;
    }
}

static void dequant_q8_0(const vkl_block_q8_0 *b, float *y) {
    float d = vkl_fp16_to_f32(b->d);
    for (int j = 0; j < QK8_0; j++) y[j] = (float)b->qs[j] * d;
}

/* Q4_K: 8 sub-blocks of 32; sub-blocks 2c and 2c+1 share the 32 bytes qs[32c..32c+31] (low, high nibbles).
 * value = (d*scale) * q - (dmin*min). */
static void dequant_q4_K(const vkl_block_q4_K *b, float *y) {
    float d = vkl_fp16_to_f32(b->d), dmin = vkl_fp16_to_f32(b->dmin);
    for (int c = 0; c < 4; c++) {
        const uint8_t *q = b->qs + 32 * c;
        uint8_t sc, m;
        scale_min_k4(2 * c, b->scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        scale_min_k4(2 * c + 1, b->scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) y[64 * c + l] = d1 * (float)(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) y[64 * c + 32 + l] = d2 * (float)(q[l] >> 4) - m2;
    }
}

/* Q5_K: as Q4_K, plus a fifth bit for element l of sub-block s in bit s of qh[l]. */
static void dequant_q5_K(const vkl_block_q5_K *b, float *y) {
    float d = vkl_fp16_to_f32(b->d), dmin = vkl_fp16_to_f32(b->dmin);
    for (int c = 0; c < 4; c++) {
        const uint8_t *q = b->qs + 32 * c;
        uint8_t sc, m;
        scale_min_k4(2 * c, b->scales, &sc, &m);
        float d1 = d * sc, m1 = dmin * m;
        scale_min_k4(2 * c + 1, b->scales, &sc, &m);
        float d2 = d * sc, m2 = dmin * m;
        for (int l = 0; l < 32; l++) {
            int hi1 = (b->qh[l] >> (2 * c)) & 1, hi2 = (b->qh[l] >> (2 * c + 1)) & 1;
            y[64 * c + l] = d1 * (float)((q[l] & 0xF) + 16 * hi1) - m1;
            y[64 * c + 32 + l] = d2 * (float)((q[l] >> 4) + 16 * hi2) - m2;
        }
    }
}

/* Q6_K: two halves of 128; in half h, quarter k (32 elements) takes its low 4 bits from ql[64h + 32(k&1) + l]
 * (low nibble for k < 2, high for k >= 2) and its top 2 bits from bits 2k..2k+1 of qh[32h + l];
 * value = (d*scale[i/16]) * (q - 32). */
static void dequant_q6_K(const vkl_block_q6_K *b, float *y) {
    float d = vkl_fp16_to_f32(b->d);
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, k = (i % 128) / 32, l = i % 32;
        uint8_t lo = b->ql[64 * h + 32 * (k & 1) + l];
        int q = ((k >= 2 ? lo >> 4 : lo & 0xF) | (((b->qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
        y[i] = d * (float)b->scales[i / 16] * (float)q;
    }
}

bool vkl_ref_dequantize(uint32_t type, const void *src, float *dst, uint64_t n) {
    const vkl_type_traits *t = vkl_type_traits_get(type);
    if (!t || !t->supported || n % t->block_size) return false;
    const uint8_t *p = src;
    uint64_t nb = n / t->block_size;
    /* Blocks are copied out with memcpy: a GGUF mapping gives no alignment guarantee for 2-byte fields. */
    for (uint64_t i = 0; i < nb; i++, p += t->type_size) {
        float *y = dst + i * t->block_size;
        switch (type) {
        case VKL_TYPE_F32: memcpy(y, p, 4); break;
        case VKL_TYPE_F16: {
            vkl_fp16 h;
            memcpy(&h, p, 2);
            *y = vkl_fp16_to_f32(h);
            break;
        }
        case VKL_TYPE_BF16: {
            vkl_bf16 h;
            memcpy(&h, p, 2);
            *y = vkl_bf16_to_f32(h);
            break;
        }
        case VKL_TYPE_Q4_0: {
            vkl_block_q4_0 b;
            memcpy(&b, p, sizeof(b));
            dequant_q4_0(&b, y);
            break;
        }
        case VKL_TYPE_Q8_0: {
            vkl_block_q8_0 b;
            memcpy(&b, p, sizeof(b));
            dequant_q8_0(&b, y);
            break;
        }
        case VKL_TYPE_Q4_K: {
            vkl_block_q4_K b;
            memcpy(&b, p, sizeof(b));
            dequant_q4_K(&b, y);
            break;
        }
        case VKL_TYPE_Q5_K: {
            vkl_block_q5_K b;
            memcpy(&b, p, sizeof(b));
            dequant_q5_K(&b, y);
            break;
        }
        case VKL_TYPE_Q6_K: {
            vkl_block_q6_K b;
            memcpy(&b, p, sizeof(b));
            dequant_q6_K(&b, y);
            break;
        }
        default: return false;
        }
    }
    return true;
}

/* ---- Quantizers ---- */

/* Q4_0: d = (signed value of largest magnitude) / -8, so that value maps to q = 0 exactly. */
static void quant_q4_0(const float *x, vkl_block_q4_0 *y) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < QK4_0; j++) {
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    float d = max / -8;
    float id = d != 0.f ? 1.0f / d : 0.0f;
    y->d = vkl_f32_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; j++) {
        /* ggml truncates x*id + 8.5 toward zero; for finite input it lies in [0.5, 16.5]. The clamp only keeps
         * NaN/inf input from undefined float->int conversion. */
        float a = x[j] * id + 8.5f, b = x[j + QK4_0 / 2] * id + 8.5f;
        int q0 = a >= 0.f && a < 16.f ? (int)a : 15, q1 = b >= 0.f && b < 16.f ? (int)b : 15;
        y->qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void quant_q8_0(const float *x, vkl_block_q8_0 *y) {
    float amax = 0.f;
    for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127;
    float id = d != 0.f ? 1.0f / d : 0.0f;
    y->d = vkl_f32_to_fp16(d);
    for (int j = 0; j < QK8_0; j++) {
        float v = roundf(x[j] * id); /* ties away from zero, like ggml */
        y->qs[j] = (int8_t)(v >= -127.f && v <= 127.f ? v : 0.f);
    }
}

/* Fit x ≈ scale*L - the_min with L in 0..nmax by a weighted least-squares search over nstep+1 candidate
 * inverse scales around nmax/(max-min) (ggml's make_qkx2_quants). Returns the scale; *the_min >= 0. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min,
                           uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += w[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Symmetric fit x ≈ scale*(L - nmax), L in 0..2*nmax-1, weights x^2, trying 19 inverse scales around
 * -nmax/max (ggml's make_qx_quants with rmse_type 1 and no importance weights). */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0.f ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Shared first half of Q4_K/Q5_K: per sub-block scale/min search, then 6-bit quantization of those against the
 * fp16 super-scales d and dmin, then requantization of every value against the rounded scales. */
static void quant_k_scales(const float *x, int nmax, float rmin, float rdelta, int nstep, uint8_t *L,
                           vkl_fp16 *d_out, vkl_fp16 *dmin_out, uint8_t scales_out[K_SCALE_SIZE]) {
    float scales[QK_K / 32], mins[QK_K / 32], weights[32];
    uint8_t Laux[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales_out, 0, K_SCALE_SIZE);
    for (int j = 0; j < QK_K / 32; j++) {
        /* ggml stores nearest_int() into a uint8_t before clamping to 63: keep that wrap-around. */
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        pack_scale_min_k4(j, ls < 63 ? ls : 63, lm < 63 ? lm : 63, scales_out);
    }
    *d_out = vkl_f32_to_fp16(max_scale / 63.f);
    *dmin_out = vkl_f32_to_fp16(max_min / 63.f);
    float d_all = vkl_fp16_to_f32(*d_out), dmin_all = vkl_fp16_to_f32(*dmin_out);
    for (int j = 0; j < QK_K / 32; j++) {
        uint8_t sc, m;
        scale_min_k4(j, scales_out, &sc, &m);
        float d = d_all * sc;
        if (d == 0.f) continue; /* keep the search's L, as ggml does */
        float dm = dmin_all * m;
        for (int ii = 0; ii < 32; ii++) L[32 * j + ii] = (uint8_t)clampi(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax);
    }
}

static void quant_q4_K(const float *x, vkl_block_q4_K *y) {
    uint8_t L[QK_K];
    quant_k_scales(x, 15, -1.f, 0.1f, 20, L, &y->d, &y->dmin, y->scales);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) y->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
}

static void quant_q5_K(const float *x, vkl_block_q5_K *y) {
    uint8_t L[QK_K];
    quant_k_scales(x, 31, -0.5f, 0.1f, 15, L, &y->d, &y->dmin, y->scales);
    memset(y->qh, 0, sizeof(y->qh));
    for (int c = 0; c < 4; c++) {
        for (int l = 0; l < 32; l++) {
            int l1 = L[64 * c + l], l2 = L[64 * c + 32 + l];
            y->qh[l] |= (uint8_t)(((l1 >> 4) << (2 * c)) | ((l2 >> 4) << (2 * c + 1)));
            y->qs[32 * c + l] = (uint8_t)((l1 & 0xF) | ((l2 & 0xF) << 4));
        }
    }
}

static void quant_q6_K(const float *x, vkl_block_q6_K *y) {
    int8_t L[QK_K];
    float scales[QK_K / 16];
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ib++) {
        scales[ib] = fit_scale_sym(16, 32, x + 16 * ib, L + 16 * ib);
        float a = fabsf(scales[ib]);
        if (a > max_abs_scale) {
            max_abs_scale = a;
            max_scale = scales[ib];
        }
    }
    memset(y, 0, sizeof(*y));
    if (max_abs_scale < GROUP_MAX_EPS) return; /* all (near) zero: an all-zero block, d = +0 */
    float iscale = -128.f / max_scale;
    y->d = vkl_f32_to_fp16(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ib++) {
        int s = nearest_int(iscale * scales[ib]);
        y->scales[ib] = (int8_t)(s < 127 ? s : 127);
    }
    float d_all = vkl_fp16_to_f32(y->d);
    for (int j = 0; j < QK_K / 16; j++) {
        float d = d_all * y->scales[j];
        if (d == 0.f) continue;
        for (int ii = 0; ii < 16; ii++) L[16 * j + ii] = (int8_t)(clampi(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
    }
    for (int h = 0; h < 2; h++) {
        const int8_t *Lh = L + 128 * h;
        for (int l = 0; l < 32; l++) {
            y->ql[64 * h + l] = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
            y->ql[64 * h + 32 + l] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
            y->qh[32 * h + l] = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                          ((Lh[l + 96] >> 4) << 6));
        }
    }
}

bool vkl_ref_quantize(uint32_t type, const float *src, void *dst, uint64_t n) {
    const vkl_type_traits *t = vkl_type_traits_get(type);
    if (!t || !t->supported || n % t->block_size) return false;
    uint8_t *p = dst;
    uint64_t nb = n / t->block_size;
    for (uint64_t i = 0; i < nb; i++, p += t->type_size) {
        const float *x = src + i * t->block_size;
        switch (type) {
        case VKL_TYPE_F32: memcpy(p, x, 4); break;
        case VKL_TYPE_F16: {
            vkl_fp16 h = vkl_f32_to_fp16(*x);
            memcpy(p, &h, 2);
            break;
        }
        case VKL_TYPE_BF16: {
            vkl_bf16 h = vkl_f32_to_bf16(*x);
            memcpy(p, &h, 2);
            break;
        }
        case VKL_TYPE_Q4_0: {
            vkl_block_q4_0 b;
            quant_q4_0(x, &b);
            memcpy(p, &b, sizeof(b));
            break;
        }
        case VKL_TYPE_Q8_0: {
            vkl_block_q8_0 b;
            quant_q8_0(x, &b);
            memcpy(p, &b, sizeof(b));
            break;
        }
        case VKL_TYPE_Q4_K: {
            vkl_block_q4_K b;
            quant_q4_K(x, &b);
            memcpy(p, &b, sizeof(b));
            break;
        }
        case VKL_TYPE_Q5_K: {
            vkl_block_q5_K b;
            quant_q5_K(x, &b);
            memcpy(p, &b, sizeof(b));
            break;
        }
        case VKL_TYPE_Q6_K: {
            vkl_block_q6_K b;
            quant_q6_K(x, &b);
            memcpy(p, &b, sizeof(b));
            break;
        }
        default: return false;
        }
    }
    return true;
}
