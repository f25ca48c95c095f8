// Shared by attention_flash.comp and attention_flash_back.comp (FlashAttention-2 blocks in shared memory), in two
// variants from one source: plain f32 block products as FMA loops, or (-DFLASH_COOPMAT) f16 x f16 -> f32
// cooperative-matrix products. Masks, scaling, soft-cap and softmax are written once and run in f32 either way.
// Specialization constants (set by src/ops/nn.c, which mirrors the shared-memory sizes below in attn_flash_smem):
//   0 WG (workgroup size)  1 SG (subgroup size; coopmat)  2..4 LM, LN, LK (the device's matrix shape; coopmat)
//   5 BR (query rows per block)  6 BC (keys per block)  7 DP (D padded: a multiple of LK and LN, zeros past D)
#ifndef VKL_ATTN_FLASH_GLSL
#define VKL_ATTN_FLASH_GLSL

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#ifdef FLASH_COOPMAT
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#endif

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64u;
layout(constant_id = 1) const uint SG = 32u;
layout(constant_id = 2) const uint LM = 16u;
layout(constant_id = 3) const uint LN = 16u;
layout(constant_id = 4) const uint LK = 16u;
layout(constant_id = 5) const uint BR = 16u;
layout(constant_id = 6) const uint BC = 16u;
layout(constant_id = 7) const uint DP = 64u;

#define ATTN_FLASH
#include "common/attn.glsl"
#include "common/grid.glsl"

// Row strides in shared memory (elements): operand rows padded by 8 (16 bytes of f16) and f32 rows by 4, so that
// every row and every tile start stays 16-byte aligned, as cooperative-matrix loads from shared memory require.
const uint SD = DP + 8u; // operand rows of DP (q, k, v, dout)
const uint SB = BC + 8u; // operand rows of BC (p, ds)
const uint SF = BC + 4u; // f32 rows of BC (scores, dp)
const uint SO = DP + 4u; // f32 rows of DP (out, dq, dk, dv accumulators)
const uint SCR = LN + 4u;

#ifdef FLASH_COOPMAT
#define OPT float16_t
const uint NSG = WG / SG;
shared float scr[NSG * LM * SCR]; // one LM x LN product tile per subgroup, on its way to an f32 accumulator
#else
#define OPT float
#endif

// The power of two that brings a row's largest |value| mx into [2^14, 2^15) before the f16 rounding (so nothing
// overflows 65504 and small gradients do not sink into f16's subnormals; the product is scaled back exactly);
// zeros, infinities and NaNs keep 1. The f32 variant needs none: 1.
float flash_scale(float mx) {
#ifdef FLASH_COOPMAT
    if (!(mx > 0.0) || isinf(mx)) return 1.0;
    int e;
    frexp(mx, e);
    return ldexp(1.0, clamp(15 - e, -126, 126));
#else
    return 1.0;
#endif
}

// Element (r, k) of an operand stored row-major (ROW: at r * stride + k) or transposed (COL: at k * stride + r).
#define IDX_ROW(st, r, k) ((r) * (st) + (k))
#define IDX_COL(st, r, k) ((k) * (st) + (r))
#define LAYOUT_ROW gl_CooperativeMatrixLayoutRowMajor
#define LAYOUT_COL gl_CooperativeMatrixLayoutColumnMajor

// For r < MM, c < NN: ST(r, c, x) with x = sum_{k < KK} A(r, k) B(k, c), where ST is a statement macro that
// stores or accumulates x (with any row or column factor) into an f32 array or a buffer. Every invocation of the
// workgroup must reach it (it ends with a barrier), and a given (r, c) always goes to the same invocation, so ST may
// read-modify-write its element without further barriers. f32 variant: one output element per lane and step, an
// FMA loop over k from shared memory. coopmat: one LM x LN output tile per subgroup and step (MM, NN multiples of
// LM, LN and KK of LK); the tile goes through the subgroup's slice of scr so that ST applies per element in f32.
// Every subgroup runs the same number of steps (the last tile is recomputed by the spare ones, which store nothing):
// llvmpipe's cooperative matrices went wrong in loops whose trip count differed between the subgroups.
#ifdef FLASH_COOPMAT
#define BLOCK_PRODUCT(ST, A, ALAY, AST, B, BLAY, BST, MM, NN, KK)                                                    \
    for (uint t0_ = 0u; t0_ < ((MM) / LM) * ((NN) / LN); t0_ += NSG) {                                              \
        uint t_ = min(t0_ + sid, ((MM) / LM) * ((NN) / LN) - 1u);                                                   \
        bool w_ = t0_ + sid == t_;                                                                                  \
        uint tr_ = t_ / ((NN) / LN) * LM, tc_ = t_ % ((NN) / LN) * LN;                                             \
        coopmat<float, gl_ScopeSubgroup, LM, LN, gl_MatrixUseAccumulator> acc_ =                                   \
            coopmat<float, gl_ScopeSubgroup, LM, LN, gl_MatrixUseAccumulator>(0.0);                                 \
        for (uint k_ = 0u; k_ < (KK); k_ += LK) {                                                                  \
            coopmat<float16_t, gl_ScopeSubgroup, LM, LK, gl_MatrixUseA> a_;                                         \
            coopmat<float16_t, gl_ScopeSubgroup, LK, LN, gl_MatrixUseB> b_;                                         \
            coopMatLoad(a_, A, IDX_##ALAY(AST, tr_, k_), AST, LAYOUT_##ALAY);                                       \
            coopMatLoad(b_, B, IDX_##BLAY(BST, k_, tc_), BST, LAYOUT_##BLAY);                                       \
            acc_ = coopMatMulAdd(a_, b_, acc_);                                                                     \
        }                                                                                                           \
        coopMatStore(acc_, scr, sid * LM * SCR, SCR, gl_CooperativeMatrixLayoutRowMajor);                          \
        subgroupMemoryBarrierShared();                                                                              \
        subgroupBarrier();                                                                                          \
        for (uint e_ = lane; e_ < LM * LN; e_ += SG) {                                                              \
            uint r_ = tr_ + e_ / LN, c_ = tc_ + e_ % LN;                                                            \
            float s_ = scr[sid * LM * SCR + (e_ / LN) * SCR + e_ % LN];                                             \
            if (w_) ST(r_, c_, s_);                                                                                 \
        }                                                                                                           \
        subgroupMemoryBarrierShared();                                                                              \
        subgroupBarrier();                                                                                          \
    }                                                                                                               \
    barrier();
#else
#define BLOCK_PRODUCT(ST, A, ALAY, AST, B, BLAY, BST, MM, NN, KK)                                                    \
    for (uint e_ = tid; e_ < (MM) * (NN); e_ += WG) {                                                               \
        uint r_ = e_ / (NN), c_ = e_ % (NN);                                                                        \
        float s_ = 0.0;                                                                                             \
        for (uint k_ = 0u; k_ < (KK); k_++) s_ += A[IDX_##ALAY(AST, r_, k_)] * B[IDX_##BLAY(BST, k_, c_)];          \
        ST(r_, c_, s_);                                                                                             \
    }                                                                                                               \
    barrier();
#endif

// Per-workgroup invocation ids every kernel uses; `bad` flags a subgroup that did not get the size the pipeline
// was built for (its coopmat tiles would be garbage): the kernels then write NaN, loudly.
#ifdef FLASH_COOPMAT
#define FLASH_IDS                                                                                                   \
    uint tid = gl_LocalInvocationID.x;                                                                              \
    bool bad = gl_SubgroupSize != SG || gl_NumSubgroups != NSG;                                                     \
    uint sid = min(gl_SubgroupID, NSG - 1u), lane = gl_SubgroupInvocationID;
#else
#define FLASH_IDS                                                                                                   \
    uint tid = gl_LocalInvocationID.x;                                                                              \
    bool bad = false;
#endif

#define NAN_F uintBitsToFloat(0x7FC00000u)

#endif
