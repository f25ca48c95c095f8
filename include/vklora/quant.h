/* ggml tensor types and quantization block layouts, bit-compatible with llama.cpp's ggml.
 * The scalar reference dequantizers/quantizers live in src/ref/quant.c; the GLSL decoders in
 * shaders/common/quant.glsl decode the same bytes the same way. */
#ifndef VKLORA_QUANT_H
#define VKLORA_QUANT_H

#include "vklora/common.h"

/* ggml_type numbering as stored in GGUF tensor infos. */
typedef enum {
    VKL_TYPE_F32 = 0,
    VKL_TYPE_F16 = 1,
    VKL_TYPE_Q4_0 = 2,
    VKL_TYPE_Q4_1 = 3,
    VKL_TYPE_Q5_0 = 6,
    VKL_TYPE_Q5_1 = 7,
    VKL_TYPE_Q8_0 = 8,
    VKL_TYPE_Q8_1 = 9,
    VKL_TYPE_Q2_K = 10,
    VKL_TYPE_Q3_K = 11,
    VKL_TYPE_Q4_K = 12,
    VKL_TYPE_Q5_K = 13,
    VKL_TYPE_Q6_K = 14,
    VKL_TYPE_Q8_K = 15,
    VKL_TYPE_IQ2_XXS = 16,
    VKL_TYPE_IQ2_XS = 17,
    VKL_TYPE_IQ3_XXS = 18,
    VKL_TYPE_IQ1_S = 19,
    VKL_TYPE_IQ4_NL = 20,
    VKL_TYPE_IQ3_S = 21,
    VKL_TYPE_IQ2_S = 22,
    VKL_TYPE_IQ4_XS = 23,
    VKL_TYPE_I8 = 24,
    VKL_TYPE_I16 = 25,
    VKL_TYPE_I32 = 26,
    VKL_TYPE_I64 = 27,
    VKL_TYPE_F64 = 28,
    VKL_TYPE_IQ1_M = 29,
    VKL_TYPE_BF16 = 30,
    VKL_TYPE_TQ1_0 = 34,
    VKL_TYPE_TQ2_0 = 35,
    VKL_TYPE_COUNT = 40 /* upper bound of the numbering; gaps are unknown types */
} vkl_ggml_type;

typedef struct {
    const char *name;     /* "q4_K" etc., llama.cpp's spelling; NULL for an unknown type */
    uint32_t block_size;  /* elements per block */
    uint32_t type_size;   /* bytes per block */
    bool supported;       /* vklora can dequantize/compute with it (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q5_K Q6_K) */
} vkl_type_traits;

/* NULL for an unknown type number. */
const vkl_type_traits *vkl_type_traits_get(uint32_t type);
/* Bytes of a row of n elements; false if n is not a multiple of the block size or on overflow. */
bool vkl_type_row_bytes(uint32_t type, uint64_t n, uint64_t *bytes);
/* Parse a type name (case-insensitive: "q4_k", "Q8_0", "f16", "bf16") or return -1. */
int vkl_type_from_name(const char *name);

#define QK4_0 32
#define QK8_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t vkl_fp16; /* IEEE half bits */
typedef uint16_t vkl_bf16; /* bfloat16 bits */

typedef struct {
    vkl_fp16 d;
    uint8_t qs[QK4_0 / 2]; /* low nibbles: elements 0..15, high nibbles: 16..31; value = (q - 8) * d */
} vkl_block_q4_0;
_Static_assert(sizeof(vkl_block_q4_0) == 18, "q4_0 block");

typedef struct {
    vkl_fp16 d;
    int8_t qs[QK8_0]; /* value = q * d */
} vkl_block_q8_0;
_Static_assert(sizeof(vkl_block_q8_0) == 34, "q8_0 block");

typedef struct {
    vkl_fp16 d;                  /* super-block scale for the 6-bit scales */
    vkl_fp16 dmin;               /* super-block scale for the 6-bit mins */
    uint8_t scales[K_SCALE_SIZE]; /* 8 scales and 8 mins, 6 bits each, packed */
    uint8_t qs[QK_K / 2];        /* 4-bit quants */
} vkl_block_q4_K;
_Static_assert(sizeof(vkl_block_q4_K) == 144, "q4_K block");

typedef struct {
    vkl_fp16 d;
    vkl_fp16 dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8]; /* 5th bit of each quant */
    uint8_t qs[QK_K / 2]; /* low 4 bits */
} vkl_block_q5_K;
_Static_assert(sizeof(vkl_block_q5_K) == 176, "q5_K block");

typedef struct {
    uint8_t ql[QK_K / 2];      /* low 4 bits */
    uint8_t qh[QK_K / 4];      /* high 2 bits */
    int8_t scales[QK_K / 16];  /* 8-bit scales of 16-element groups */
    vkl_fp16 d;                /* super-block scale */
} vkl_block_q6_K;
_Static_assert(sizeof(vkl_block_q6_K) == 210, "q6_K block");

/* Half/bfloat conversions (round-to-nearest-even on the way down, as ggml does). */
float vkl_fp16_to_f32(vkl_fp16 h);
vkl_fp16 vkl_f32_to_fp16(float f);
float vkl_bf16_to_f32(vkl_bf16 h);
vkl_bf16 vkl_f32_to_bf16(float f);

/* Reference dequantization of n elements (n a multiple of the block size) from `src` in `type` into `dst`.
 * Returns false for an unsupported type. */
bool vkl_ref_dequantize(uint32_t type, const void *src, float *dst, uint64_t n);
/* Reference quantization of n elements (n a multiple of the block size).
 * Algorithms follow llama.cpp's reference quantizers so the bytes match what llama.cpp would write. */
bool vkl_ref_quantize(uint32_t type, const float *src, void *dst, uint64_t n);

#endif
