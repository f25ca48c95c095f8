/* ggml type table (block sizes and bytes, as llama.cpp defines them) and half/bfloat conversions. */
#include "vklora/quant.h"

#include <ctype.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#define T(id, nm, bs, ts, sup) [id] = {nm, bs, ts, sup}
static const vkl_type_traits traits[VKL_TYPE_COUNT] = {
    T(VKL_TYPE_F32, "f32", 1, 4, true),
    T(VKL_TYPE_F16, "f16", 1, 2, true),
    T(VKL_TYPE_Q4_0, "q4_0", 32, 18, true),
    T(VKL_TYPE_Q4_1, "q4_1", 32, 20, false),
    T(VKL_TYPE_Q5_0, "q5_0", 32, 22, false),
    T(VKL_TYPE_Q5_1, "q5_1", 32, 24, false),
    T(VKL_TYPE_Q8_0, "q8_0", 32, 34, true),
    T(VKL_TYPE_Q8_1, "q8_1", 32, 36, false),
    T(VKL_TYPE_Q2_K, "q2_K", 256, 84, false),
    T(VKL_TYPE_Q3_K, "q3_K", 256, 110, false),
    T(VKL_TYPE_Q4_K, "q4_K", 256, 144, true),
    T(VKL_TYPE_Q5_K, "q5_K", 256, 176, true),
    T(VKL_TYPE_Q6_K, "q6_K", 256, 210, true),
    T(VKL_TYPE_Q8_K, "q8_K", 256, 292, false),
    T(VKL_TYPE_IQ2_XXS, "iq2_xxs", 256, 66, false),
    T(VKL_TYPE_IQ2_XS, "iq2_xs", 256, 74, false),
    T(VKL_TYPE_IQ3_XXS, "iq3_xxs", 256, 98, false),
    T(VKL_TYPE_IQ1_S, "iq1_s", 256, 50, false),
    T(VKL_TYPE_IQ4_NL, "iq4_nl", 32, 18, false),
    T(VKL_TYPE_IQ3_S, "iq3_s", 256, 110, false),
    T(VKL_TYPE_IQ2_S, "iq2_s", 256, 82, false),
    T(VKL_TYPE_IQ4_XS, "iq4_xs", 256, 136, false),
    T(VKL_TYPE_I8, "i8", 1, 1, false),
    T(VKL_TYPE_I16, "i16", 1, 2, false),
    T(VKL_TYPE_I32, "i32", 1, 4, false),
    T(VKL_TYPE_I64, "i64", 1, 8, false),
    T(VKL_TYPE_F64, "f64", 1, 8, false),
    T(VKL_TYPE_IQ1_M, "iq1_m", 256, 56, false),
    T(VKL_TYPE_BF16, "bf16", 1, 2, true),
    T(VKL_TYPE_TQ1_0, "tq1_0", 256, 54, false),
    T(VKL_TYPE_TQ2_0, "tq2_0", 256, 66, false),
};
#undef T

const vkl_type_traits *vkl_type_traits_get(uint32_t type) {
    if (type >= VKL_TYPE_COUNT || !traits[type].name) return NULL;
    return &traits[type];
}

bool vkl_type_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes) {
    const vkl_type_traits *t = vkl_type_traits_get(type);
    if (!t || n % t->block_size) return false;
    return vkl_mul_u64(n / t->block_size, t->type_size, bytes);
}

int vkl_type_from_name(const char *name) {
    for (int i = 0; i < VKL_TYPE_COUNT; i++)
        if (traits[i].name && !strcasecmp(traits[i].name, name)) return i;
    return -1;
}

/* IEEE binary16 <-> binary32 with round-to-nearest-even, handling subnormals, inf and NaN. */
float vkl_fp16_to_f32(vkl_fp16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: value = mant * 2^-24 */
            float f = (float)mant * 0x1p-24f;
            memcpy(&bits, &f, 4);
            bits |= sign;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

vkl_fp16 vkl_f32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx > 0x7f800000u) return (vkl_fp16)(sign | 0x7e00 | ((absx >> 13) & 0x3ff)); /* NaN stays NaN */
    if (absx >= 0x477ff000u) return (vkl_fp16)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (absx < 0x38800000u) { /* result is subnormal or zero: round(|f| * 2^24) */
        float a;
        memcpy(&a, &absx, 4);
        float r = nearbyintf(a * 0x1p24f); /* default rounding mode is nearest-even */
        return (vkl_fp16)(sign | (uint32_t)r);
    }
    uint32_t mant = absx & 0x7fffff;
    uint32_t exp = (absx >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* carries into the exponent correctly */
    return (vkl_fp16)(sign | h);
}

float vkl_bf16_to_f32(vkl_bf16 h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

vkl_bf16 vkl_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (vkl_bf16)((x >> 16) | 64); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1); /* round to nearest even, as ggml does */
    return (vkl_bf16)(x >> 16);
}
