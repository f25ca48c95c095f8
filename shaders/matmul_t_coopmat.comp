#version 450
// The transposed weight product of the backward on cooperative matrices: dx[m, k] (+)= sum_n dy[m, n] * W[n, k],
// W a GGUF weight (-DDATA_A_<TYPE>). Per step of BN weight rows the workgroup stages a BM x BN panel of dy and a
// BN x BK panel of decoded weights (rows n, columns k) as f16 in shared memory; each subgroup multiplies RM x RN
// tiles of LM x LN with f16 x f16 -> f32 coopMatMulAdd (reduction over n). The tile shape comes from the device's
// property list through specialization constants, as in matmul_coopmat.comp.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

layout(local_size_x_id = 0) in;              // = WM * WN * SG
layout(constant_id = 1) const uint SG = 32u; // the subgroup size the pipeline runs with
layout(constant_id = 2) const uint LM = 16u; // one cooperative-matrix product: (LM x LK) * (LK x LN)
layout(constant_id = 3) const uint LN = 16u;
layout(constant_id = 4) const uint LK = 16u;

// Mirrors the first 48 bytes of vkl_matmul_t_push in src/ops/matmul_push.h (the low-rank and dropout fields are
// the texel kernel's).
layout(push_constant) uniform Push {
    uint M, N, K;
    uint w_byte_off;
    uint dy_off;
    uint dy_stride;
    uint dx_off;
    uint flags;
    uint lr_r, u_off, v_off;
    float lr_scale;
} p;

#define FLAG_ACC 2u

layout(std430, binding = 0) readonly buffer A { uint data_a[]; };
layout(std430, binding = 1) readonly buffer DY { float data_dy[]; };
layout(std430, binding = 2) buffer DX { float data_dx[]; };
#define A_WORD(i) data_a[i]
#define A_BYTE_OFFSET p.w_byte_off
#include "common/quant.glsl"

// Workgroup layout (= VKL_MM_COOP_* in src/ops/matmul_push.h): WM x WN subgroups, each owning RM x RN tiles.
#define WM 2u
#define WN 2u
#define RM 2u
#define RN 2u
#define KT 2u // LK steps per staged panel
const uint BM = WM * RM * LM; // dx rows
const uint BK = WN * RN * LN; // dx columns (k)
const uint BR = KT * LK;      // weight rows (n) per step: the reduction
// Row strides in shared memory, in elements: 8 halves (16 bytes) of padding keep every row and every tile start
// 16-byte aligned, as cooperative-matrix loads from shared memory require.
const uint SA = BR + 8u;
const uint SB = BK + 8u;
const uint SO = LN + 4u;
const uint WG = WM * WN * SG;

shared float16_t sdy[BM * SA]; // dy panel: row m, column n (row-major A)
shared float16_t sw[BR * SB];  // weight panel: row n, column k (row-major B)
shared float so[WM * WN * LM * SO];
// Per dy row: the power of two that brings the row's largest |value| into [2^14, 2^15) before the f16 rounding, so
// that no value overflows f16 (65504) and small ones (gradients) do not sink into f16's subnormals; the product row
// is scaled back exactly. Rows of zeros, infinities or NaNs keep 1.
shared float srow[BM];

float row_scale(float mx) {
    if (!(mx > 0.0) || isinf(mx)) return 1.0;
    int e;
    frexp(mx, e); // mx = f * 2^e, f in [0.5, 1)
    return ldexp(1.0, clamp(15 - e, -126, 126));
}

// Four decoded weights of row n from column k; zeros past K (K is a multiple of 4 for the block types, so their
// vectors are either whole or wholly past the end).
vec4 w4(uint n, uint k) {
#if DQ_IS_SCALAR
    if (k + 4u <= p.K) return dequant_vec4(n * p.K + k, 0u);
    vec4 v = vec4(0.0);
    for (uint c = 0u; c < 4u && k + c < p.K; c++) v[c] = dequant_elem(n * p.K + k + c, 0u);
    return v;
#else
    if (k >= p.K) return vec4(0.0);
    return dequant_vec4(n * (p.K / BLOCK_SIZE) + k / BLOCK_SIZE, k % BLOCK_SIZE);
#endif
}

void main() {
    // A subgroup that did not get the size the pipeline was built for computes garbage: make that loud (and keep
    // its shared-memory indices in range).
    bool bad = gl_SubgroupSize != SG || gl_NumSubgroups != WM * WN;
    uint sid = min(gl_SubgroupID, WM * WN - 1u);
    uint sgm = sid % WM, sgn = sid / WM;
    uint tid = gl_LocalInvocationID.x;
    uint mb = gl_WorkGroupID.y * BM, kb = gl_WorkGroupID.x * BK;

    coopmat<float, gl_ScopeSubgroup, LM, LN, gl_MatrixUseAccumulator> acc[RM * RN];
    [[unroll]] for (uint t = 0u; t < RM * RN; t++)
        acc[t] = coopmat<float, gl_ScopeSubgroup, LM, LN, gl_MatrixUseAccumulator>(0.0);
    // One subgroup per dy row: its largest magnitude over this dispatch's N (rows past M are clamped).
    uint lane = gl_SubgroupInvocationID;
    for (uint r = sid; r < BM; r += WM * WN) {
        uint o = p.dy_off + min(mb + r, p.M - 1u) * p.dy_stride;
        float mx = 0.0;
        for (uint n = lane; n < p.N; n += SG) mx = max(mx, abs(data_dy[o + n]));
        mx = subgroupMax(mx);
        if (lane == 0u) srow[r] = row_scale(mx);
    }
    barrier();
    for (uint n0 = 0u; n0 < p.N; n0 += BR) {
        // dy rows past M are clamped (never stored); weight rows past N are zeros, so are their dy columns.
        for (uint i = tid; i < BM * BR; i += WG) {
            uint r = i / BR, c = i % BR;
            uint m = min(mb + r, p.M - 1u), n = n0 + c;
            sdy[r * SA + c] = float16_t(n < p.N ? data_dy[p.dy_off + m * p.dy_stride + n] * srow[r] : 0.0);
        }
        for (uint i = tid; i < BR * (BK / 4u); i += WG) {
            uint r = i / (BK / 4u), c = (i % (BK / 4u)) * 4u;
            f16vec4 v = f16vec4(n0 + r < p.N ? w4(n0 + r, kb + c) : vec4(0.0));
            [[unroll]] for (uint e = 0u; e < 4u; e++) sw[r * SB + c + e] = v[e];
        }
        barrier();
        [[unroll]] for (uint kk = 0u; kk < BR; kk += LK) {
            coopmat<float16_t, gl_ScopeSubgroup, LM, LK, gl_MatrixUseA> a[RM];
            coopmat<float16_t, gl_ScopeSubgroup, LK, LN, gl_MatrixUseB> b[RN];
            [[unroll]] for (uint i = 0u; i < RM; i++)
                coopMatLoad(a[i], sdy, ((sgm * RM + i) * LM) * SA + kk, SA, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint j = 0u; j < RN; j++)
                coopMatLoad(b[j], sw, kk * SB + (sgn * RN + j) * LN, SB, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint i = 0u; i < RM; i++)
                [[unroll]] for (uint j = 0u; j < RN; j++) acc[i * RN + j] = coopMatMulAdd(a[i], b[j], acc[i * RN + j]);
        }
        barrier();
    }

    // Each subgroup writes its tiles through its own slice of `so`, with bounds and accumulation per element.
    uint base = sid * LM * SO;
    [[unroll]] for (uint i = 0u; i < RM; i++)
        [[unroll]] for (uint j = 0u; j < RN; j++) {
            coopMatStore(acc[i * RN + j], so, base, SO, gl_CooperativeMatrixLayoutRowMajor);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < LM * LN; e += SG) {
                uint r = e / LN, c = e % LN;
                uint rl = (sgm * RM + i) * LM + r;
                uint m = mb + rl, k = kb + (sgn * RN + j) * LN + c;
                float v = bad ? uintBitsToFloat(0x7FC00000u) : so[base + r * SO + c] * (1.0 / srow[rl]);
                if (m < p.M && k < p.K) {
                    uint o = p.dx_off + m * p.K + k;
                    data_dx[o] = (p.flags & FLAG_ACC) != 0u ? data_dx[o] + v : v;
                }
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
}
