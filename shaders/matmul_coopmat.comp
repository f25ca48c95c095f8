#version 450
// y[m, n] (+)= sum_k x[m, k] * W[n, k] (+ bias[n]) on cooperative matrices (VK_KHR_cooperative_matrix): per BK step
// the workgroup decodes a BN x BK panel of the GGUF weight (-DDATA_A_<TYPE>) and a BM x BK panel of x into f16 in
// shared memory, then each subgroup multiplies RM x RN matrix tiles of LM x LN with f16 x f16 -> f32 coopMatMulAdd.
// The tile shape LM x LN x LK comes from the device's property list through specialization constants (8x8x8 on
// lavapipe, 16x16x16 on NVIDIA and AMD, Intel's own): never one vendor's shape compiled in.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

layout(local_size_x_id = 0) in;         // = WM * WN * SG
layout(constant_id = 1) const uint SG = 32u; // the subgroup size the pipeline runs with
layout(constant_id = 2) const uint LM = 16u; // one cooperative-matrix product: (LM x LK) * (LK x LN)
layout(constant_id = 3) const uint LN = 16u;
layout(constant_id = 4) const uint LK = 16u;

// Mirrors vkl_matmul_push in src/ops/matmul_push.h (64 bytes; the low-rank fields are the texel kernel's).
layout(push_constant) uniform Push {
    uint M, N, K;
    uint w_byte_off;
    uint x_off;
    uint y_off;
    uint y_stride;
    uint b_off;
    uint flags;
    uint lr_r, u_off, v_off;
    float lr_scale;
    uint pad0, pad1, pad2;
} p;

#define FLAG_BIAS 1u
#define FLAG_ACC 2u
#define FLAG_X_VEC4 4u

layout(std430, binding = 0) readonly buffer A { uint data_a[]; };
layout(std430, binding = 1) readonly buffer X { float data_x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 data_x4[]; };
layout(std430, binding = 2) readonly buffer Bias { float data_b[]; };
layout(std430, binding = 3) buffer Y { float data_y[]; };
#define A_WORD(i) data_a[i]
#define A_BYTE_OFFSET p.w_byte_off
#include "common/quant.glsl"

// Workgroup layout (= VKL_MM_COOP_* in src/ops/matmul_push.h): WM x WN subgroups, each owning RM x RN tiles.
#define WM 2u
#define WN 2u
#define RM 2u
#define RN 2u
#define KT 2u // LK steps per staged panel
const uint BM = WM * RM * LM;
const uint BN = WN * RN * LN;
const uint BK = KT * LK;
// Row strides in shared memory, in elements: 8 halves (16 bytes) of padding keep every row and every tile start
// 16-byte aligned, as cooperative-matrix loads from shared memory require, and spread rows over banks.
const uint SA = BK + 8u;
const uint SO = LN + 4u;
const uint WG = WM * WN * SG;

shared float16_t sx[BM * SA]; // x panel: row m, column k (row-major A)
shared float16_t sw[BN * SA]; // weight panel: row n, column k (B = W^T, column-major)
shared float so[WM * WN * LM * SO];
// Per x row: the power of two that brings the row's largest |value| into [2^14, 2^15) before the f16 rounding, so
// that no value overflows f16 (65504) and small ones (gradients) do not sink into f16's subnormals; the product row
// is scaled back exactly. Rows of zeros, infinities or NaNs keep 1.
shared float srow[BM];

float row_scale(float mx) {
    if (!(mx > 0.0) || isinf(mx)) return 1.0;
    int e;
    frexp(mx, e); // mx = f * 2^e, f in [0.5, 1)
    return ldexp(1.0, clamp(15 - e, -126, 126));
} // one accumulator tile per subgroup on its way to y

// Four activations of row m from column k; zeros past K.
vec4 x4(bool xv4, uint m, uint k) {
    uint off = p.x_off + m * p.K + k;
    if (k + 4u <= p.K) {
        if (xv4) return data_x4[off >> 2];
        return vec4(data_x[off], data_x[off + 1u], data_x[off + 2u], data_x[off + 3u]);
    }
    vec4 v = vec4(0.0);
    for (uint c = 0u; c < 4u && k + c < p.K; c++) v[c] = data_x[off + c];
    return v;
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

void store_y(uint m, uint n, float v) {
    if ((p.flags & FLAG_BIAS) != 0u) v += data_b[p.b_off + n];
    uint i = p.y_off + m * p.y_stride + n;
    if ((p.flags & FLAG_ACC) != 0u) v += data_y[i];
    data_y[i] = v;
}

void main() {
    // A subgroup that did not get the size the pipeline was built for computes garbage: make that loud (and keep
    // its shared-memory indices in range).
    bool bad = gl_SubgroupSize != SG || gl_NumSubgroups != WM * WN;
    uint sid = min(gl_SubgroupID, WM * WN - 1u);
    uint sgm = sid % WM, sgn = sid / WM;
    uint tid = gl_LocalInvocationID.x;
    uint mb = gl_WorkGroupID.y * BM, nb = gl_WorkGroupID.x * BN;
    bool xv4 = (p.flags & FLAG_X_VEC4) != 0u;

    coopmat<float, gl_ScopeSubgroup, LM, LN, gl_MatrixUseAccumulator> acc[RM * RN];
    [[unroll]] for (uint t = 0u; t < RM * RN; t++)
        acc[t] = coopmat<float, gl_ScopeSubgroup, LM, LN, gl_MatrixUseAccumulator>(0.0);
    // One subgroup per x row: its largest magnitude (rows past M are clamped, as in the panels).
    uint lane = gl_SubgroupInvocationID;
    for (uint r = sid; r < BM; r += WM * WN) {
        uint xo = p.x_off + min(mb + r, p.M - 1u) * p.K;
        float mx = 0.0;
        for (uint k = lane; k < p.K; k += SG) mx = max(mx, abs(data_x[xo + k]));
        mx = subgroupMax(mx);
        if (lane == 0u) srow[r] = row_scale(mx);
    }
    barrier();
    for (uint k0 = 0u; k0 < p.K; k0 += BK) {
        // Stage both panels as f16 (rows past M/N are clamped: their outputs are never stored). Each weight value
        // is decoded once per workgroup.
        for (uint i = tid; i < BM * (BK / 4u); i += WG) {
            uint r = i / (BK / 4u), c = (i % (BK / 4u)) * 4u;
            f16vec4 v = f16vec4(x4(xv4, min(mb + r, p.M - 1u), k0 + c) * srow[r]);
            [[unroll]] for (uint e = 0u; e < 4u; e++) sx[r * SA + c + e] = v[e];
        }
        for (uint i = tid; i < BN * (BK / 4u); i += WG) {
            uint r = i / (BK / 4u), c = (i % (BK / 4u)) * 4u;
            f16vec4 v = f16vec4(w4(min(nb + r, p.N - 1u), k0 + c));
            [[unroll]] for (uint e = 0u; e < 4u; e++) sw[r * SA + c + e] = v[e];
        }
        barrier();
        [[unroll]] for (uint kk = 0u; kk < BK; kk += LK) {
            coopmat<float16_t, gl_ScopeSubgroup, LM, LK, gl_MatrixUseA> a[RM];
            coopmat<float16_t, gl_ScopeSubgroup, LK, LN, gl_MatrixUseB> b[RN];
            [[unroll]] for (uint i = 0u; i < RM; i++)
                coopMatLoad(a[i], sx, ((sgm * RM + i) * LM) * SA + kk, SA, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint j = 0u; j < RN; j++)
                coopMatLoad(b[j], sw, ((sgn * RN + j) * LN) * SA + kk, SA, gl_CooperativeMatrixLayoutColumnMajor);
            [[unroll]] for (uint i = 0u; i < RM; i++)
                [[unroll]] for (uint j = 0u; j < RN; j++) acc[i * RN + j] = coopMatMulAdd(a[i], b[j], acc[i * RN + j]);
        }
        barrier();
    }

    // Each subgroup writes its tiles through its own slice of `so`: bounds, bias and accumulation per element (a
    // direct coopMatStore could not skip rows past M or columns past N).
    uint base = sid * LM * SO;
    [[unroll]] for (uint i = 0u; i < RM; i++)
        [[unroll]] for (uint j = 0u; j < RN; j++) {
            coopMatStore(acc[i * RN + j], so, base, SO, gl_CooperativeMatrixLayoutRowMajor);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < LM * LN; e += SG) {
                uint r = e / LN, c = e % LN;
                uint rl = (sgm * RM + i) * LM + r;
                uint m = mb + rl, n = nb + (sgn * RN + j) * LN + c;
                float v = bad ? uintBitsToFloat(0x7FC00000u) : so[base + r * SO + c] * (1.0 / srow[rl]);
                if (m < p.M && n < p.N) store_y(m, n, v);
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
}
