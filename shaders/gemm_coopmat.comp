#version 450
// Strided GEMM on cooperative matrices: C[m, n] = alpha * sum_k A(m, k) B(k, n) + beta * C[m, n], A(m, k) =
// a[m*a_rs + k*a_cs], B(k, n) = b[k*b_rs + n*b_cs] (the LoRA products of src/ops/lora_ops.c; the fp32 kernels are
// gemm_f32.comp and gemm_tiled.comp). Per step of BR = KT*LK reduction indices the workgroup stages a BM x BR panel
// of A and a BR x BN panel of B as f16 in shared memory, loading along whichever index is contiguous and applying the
// fused inverted dropout on the way (the same Philox counters as gemm_f32.comp: identical masks); each subgroup
// multiplies RM x RN tiles of LM x LN with f16 x f16 -> f32 coopMatMulAdd. The tile shape comes from the device's
// property list through specialization constants, as in matmul_coopmat.comp. Three workgroup layouts: square, tall
// (-DGEMM_TALL: narrow N, e.g. the rank r of x·A^T, one tile column) and wide (-DGEMM_WIDE: narrow M, e.g. dA).
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

// Mirrors vkl_gemm_drop_push in src/ops/matmul_push.h (96 bytes); d_mode 0 = no dropout.
layout(push_constant) uniform Push {
    uint M, N, K;
    uint a_off, a_rs, a_cs;
    uint b_off, b_rs, b_cs;
    uint c_off, c_rs;
    uint flags;
    float alpha, beta;
    uint pad0, pad1;
    uint d_key, d_mode, d_base, d_si, d_sj;
    float d_p, d_scale, d_pad;
} p;

#include "common/rng.glsl"
float keep(uint i, uint j) { return rng_uniform(p.d_key, p.d_base + i * p.d_si + j * p.d_sj) >= p.d_p ? p.d_scale : 0.0; }

#define FLAG_ACC 2u

layout(std430, binding = 0) readonly buffer A { float data_a[]; };
layout(std430, binding = 1) readonly buffer B { float data_b[]; };
layout(std430, binding = 2) buffer C { float data_c[]; };

// Workgroup layouts (= VKL_GEMM_COOP_* in src/ops/matmul_push.h): WM x WN subgroups (always 4, the workgroup size of
// the weight matmul's coopmat kernels), each owning RM x RN tiles.
#if defined(GEMM_TALL)
#define WM 4u
#define WN 1u
#define RM 2u
#define RN 1u
#elif defined(GEMM_WIDE)
#define WM 1u
#define WN 4u
#define RM 1u
#define RN 2u
#else
#define WM 2u
#define WN 2u
#define RM 2u
#define RN 2u
#endif
#define KT 2u // LK steps per staged panel
const uint BM = WM * RM * LM; // C rows
const uint BN = WN * RN * LN; // C columns
const uint BR = KT * LK;      // reduction indices per step
// Row strides in shared memory, in elements: 8 halves (16 bytes) of padding, rounded to whole 16 bytes, keep every
// row and every tile start 16-byte aligned, as cooperative-matrix loads from shared memory require (BN may be a
// single LN here).
const uint SA = BR + 8u;
const uint SB = (BN + 15u) / 8u * 8u;
const uint SO = LN + 4u;
const uint WG = WM * WN * SG;

shared float16_t sa[BM * SA]; // A panel: row m, column k (row-major A)
shared float16_t sb[BR * SB]; // B panel: row k, column n (row-major B)
shared float so[WM * WN * LM * SO];
// Per A row and per B column: the power of two 2^e that brings its largest |value| over this dispatch's K (times the
// dropout's 1 / (1 - p) when that operand is dropped) into [2^14, 2^15) before the f16 rounding, so that nothing
// overflows f16 (65504) and small values (gradients: dy, dxa) do not sink into f16's subnormals; the product is
// scaled back exactly by 2^-(e_m + e_n). Rows of zeros, infinities or NaNs keep 2^0.
shared int ea[BM];
shared int eb[BN];

int scale_exp(float mx) {
    if (!(mx > 0.0) || isinf(mx)) return 0;
    int e;
    frexp(mx, e); // mx = f * 2^e, f in [0.5, 1)
    return clamp(15 - e, -126, 126);
}

void main() {
    // A subgroup that did not get the size the pipeline was built for computes garbage: make that loud (and keep
    // its shared-memory indices in range).
    bool bad = gl_SubgroupSize != SG || gl_NumSubgroups != WM * WN;
    uint sid = min(gl_SubgroupID, WM * WN - 1u);
    uint sgm = sid % WM, sgn = sid / WM;
    uint tid = gl_LocalInvocationID.x, lane = gl_SubgroupInvocationID;
    uint mb = gl_WorkGroupID.y * BM, nb = gl_WorkGroupID.x * BN;
    // Along k when it is the operand's contiguous index (one subgroup per row, subgroupMax), else one invocation per
    // row walking k (neighbours then read neighbouring addresses). Rows past M / columns past N are clamped.
    bool a_kfast = p.a_cs <= p.a_rs, b_kfast = p.b_rs < p.b_cs;
    float da = p.d_mode == 1u ? p.d_scale : 1.0, db = p.d_mode == 2u ? p.d_scale : 1.0;
    if (a_kfast) {
        for (uint r = sid; r < BM; r += WM * WN) {
            uint o = p.a_off + min(mb + r, p.M - 1u) * p.a_rs;
            float mx = 0.0;
            for (uint k = lane; k < p.K; k += SG) mx = max(mx, abs(data_a[o + k * p.a_cs]));
            mx = subgroupMax(mx);
            if (lane == 0u) ea[r] = scale_exp(mx * da);
        }
    } else {
        for (uint r = tid; r < BM; r += WG) {
            uint o = p.a_off + min(mb + r, p.M - 1u) * p.a_rs;
            float mx = 0.0;
            for (uint k = 0u; k < p.K; k++) mx = max(mx, abs(data_a[o + k * p.a_cs]));
            ea[r] = scale_exp(mx * da);
        }
    }
    if (b_kfast) {
        for (uint c = sid; c < BN; c += WM * WN) {
            uint o = p.b_off + min(nb + c, p.N - 1u) * p.b_cs;
            float mx = 0.0;
            for (uint k = lane; k < p.K; k += SG) mx = max(mx, abs(data_b[o + k * p.b_rs]));
            mx = subgroupMax(mx);
            if (lane == 0u) eb[c] = scale_exp(mx * db);
        }
    } else {
        for (uint c = tid; c < BN; c += WG) {
            uint o = p.b_off + min(nb + c, p.N - 1u) * p.b_cs;
            float mx = 0.0;
            for (uint k = 0u; k < p.K; k++) mx = max(mx, abs(data_b[o + k * p.b_rs]));
            eb[c] = scale_exp(mx * db);
        }
    }
    barrier();

    coopmat<float, gl_ScopeSubgroup, LM, LN, gl_MatrixUseAccumulator> acc[RM * RN];
    [[unroll]] for (uint t = 0u; t < RM * RN; t++)
        acc[t] = coopmat<float, gl_ScopeSubgroup, LM, LN, gl_MatrixUseAccumulator>(0.0);
    for (uint k0 = 0u; k0 < p.K; k0 += BR) {
        // Elements past M, N or K are zeros. Scaling by 2^e is exact; the dropout product rounds as in gemm_f32.
        for (uint i = tid; i < BM * BR; i += WG) {
            uint r = a_kfast ? i / BR : i % BM, c = a_kfast ? i % BR : i / BM;
            uint m = mb + r, k = k0 + c;
            float v = 0.0;
            if (m < p.M && k < p.K) {
                v = data_a[p.a_off + m * p.a_rs + k * p.a_cs];
                if (p.d_mode == 1u) v *= keep(m, k);
                v = ldexp(v, ea[r]);
            }
            sa[r * SA + c] = float16_t(v);
        }
        for (uint i = tid; i < BR * BN; i += WG) {
            uint r = b_kfast ? i % BR : i / BN, c = b_kfast ? i / BR : i % BN;
            uint k = k0 + r, n = nb + c;
            float v = 0.0;
            if (k < p.K && n < p.N) {
                v = data_b[p.b_off + k * p.b_rs + n * p.b_cs];
                if (p.d_mode == 2u) v *= keep(k, n);
                v = ldexp(v, eb[c]);
            }
            sb[r * SB + c] = float16_t(v);
        }
        barrier();
        [[unroll]] for (uint kk = 0u; kk < BR; kk += LK) {
            coopmat<float16_t, gl_ScopeSubgroup, LM, LK, gl_MatrixUseA> a[RM];
            coopmat<float16_t, gl_ScopeSubgroup, LK, LN, gl_MatrixUseB> b[RN];
            [[unroll]] for (uint i = 0u; i < RM; i++)
                coopMatLoad(a[i], sa, ((sgm * RM + i) * LM) * SA + kk, SA, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint j = 0u; j < RN; j++)
                coopMatLoad(b[j], sb, kk * SB + (sgn * RN + j) * LN, SB, gl_CooperativeMatrixLayoutRowMajor);
            [[unroll]] for (uint i = 0u; i < RM; i++)
                [[unroll]] for (uint j = 0u; j < RN; j++) acc[i * RN + j] = coopMatMulAdd(a[i], b[j], acc[i * RN + j]);
        }
        barrier();
    }

    // Each subgroup writes its tiles through its own slice of `so`: scale back, alpha, the product's dropout, beta*C.
    uint base = sid * LM * SO;
    [[unroll]] for (uint i = 0u; i < RM; i++)
        [[unroll]] for (uint j = 0u; j < RN; j++) {
            coopMatStore(acc[i * RN + j], so, base, SO, gl_CooperativeMatrixLayoutRowMajor);
            subgroupMemoryBarrierShared();
            subgroupBarrier();
            for (uint e = lane; e < LM * LN; e += SG) {
                uint r = e / LN, c = e % LN;
                uint rl = (sgm * RM + i) * LM + r, cl = (sgn * RN + j) * LN + c;
                uint m = mb + rl, n = nb + cl;
                if (m < p.M && n < p.N) {
                    uint ci = p.c_off + m * p.c_rs + n;
                    float v = p.alpha * ldexp(ldexp(so[base + r * SO + c], -ea[rl]), -eb[cl]); // each |e| <= 126
                    if (p.d_mode == 3u) v *= keep(m, n);
                    // beta == 0 must not read C: it may hold garbage (NaN) that 0*NaN would propagate.
                    if ((p.flags & FLAG_ACC) != 0u) v += p.beta * data_c[ci];
                    data_c[ci] = bad ? uintBitsToFloat(0x7FC00000u) : v;
                }
            }
            subgroupMemoryBarrierShared();
            subgroupBarrier();
        }
}
