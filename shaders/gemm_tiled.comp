#version 450
// Strided fp32 GEMM on shared-memory tiles, for GPUs without cooperative matrices: C[m, n] = alpha * sum_k A(m, k)
// B(k, n) + beta * C[m, n], A(m, k) = a[m*a_rs + k*a_cs], B(k, n) = b[k*b_rs + n*b_cs] (the LoRA products of
// src/ops/lora_ops.c, see gemm_f32.comp). Per step of BK reduction indices the workgroup stages a BM x BK panel of A
// and a BK x BN panel of B in shared memory, loading along whichever index is contiguous in memory and applying the
// fused inverted dropout (the same Philox counters as gemm_f32.comp, so the masks are identical); each invocation
// then accumulates TM x TN outputs from registers. Three tile shapes: square, tall (-DGEMM_TALL: narrow N, e.g. the
// rank r of x·A^T) and wide (-DGEMM_WIDE: narrow M, e.g. dA = dxa^T·x).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in; // = WG below (VKL_GEMM_TILED_WG)

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

// Tile shapes (= VKL_GEMM_TILED_* in src/ops/matmul_push.h): BM x BN outputs per workgroup, TM x TN per invocation,
// 128 invocations in every shape.
#if defined(GEMM_TALL)
#define BM 128u
#define BN 16u
#define TM 8u
#define TN 2u
#elif defined(GEMM_WIDE)
#define BM 16u
#define BN 128u
#define TM 2u
#define TN 8u
#else
#define BM 64u
#define BN 64u
#define TM 8u
#define TN 4u
#endif
#define BK 16u
#define TX (BN / TN) // invocation (tx, ty) owns rows ty + TY*i and columns tx + TX*j
#define TY (BM / TM)
#define WG (TX * TY)
// Padded strides: a transposing store (the contiguous index of A or B across the panel's other axis) hits distinct
// banks.
#define SAS (BM + 1u)
#define SBS (BN + 1u)
shared float sa[BK * SAS]; // sa[k][m]
shared float sb[BK * SBS]; // sb[k][n]

void main() {
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % TX, ty = tid / TX;
    uint mb = gl_WorkGroupID.y * BM, nb = gl_WorkGroupID.x * BN;
    // Neighbouring invocations load neighbouring addresses: along k when it is A's contiguous index, else along m
    // (dy^T, dxa^T); along n or k for B likewise.
    bool a_kfast = p.a_cs <= p.a_rs, b_kfast = p.b_rs < p.b_cs;
    float acc[TM][TN];
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint j = 0u; j < TN; j++) acc[i][j] = 0.0;
    for (uint k0 = 0u; k0 < p.K; k0 += BK) {
        // Elements past M, N or K are zeros.
        [[dont_unroll]] for (uint q = 0u; q < BM * BK / WG; q++) {
            uint e = tid + q * WG;
            uint r = a_kfast ? e / BK : e % BM, c = a_kfast ? e % BK : e / BM;
            uint m = mb + r, k = k0 + c;
            float v = 0.0;
            if (m < p.M && k < p.K) {
                v = data_a[p.a_off + m * p.a_rs + k * p.a_cs];
                if (p.d_mode == 1u) v *= keep(m, k);
            }
            sa[c * SAS + r] = v;
        }
        [[dont_unroll]] for (uint q = 0u; q < BK * BN / WG; q++) {
            uint e = tid + q * WG;
            uint r = b_kfast ? e % BK : e / BN, c = b_kfast ? e / BK : e % BN;
            uint k = k0 + r, n = nb + c;
            float v = 0.0;
            if (k < p.K && n < p.N) {
                v = data_b[p.b_off + k * p.b_rs + n * p.b_cs];
                if (p.d_mode == 2u) v *= keep(k, n);
            }
            sb[r * SBS + c] = v;
        }
        barrier();
        [[unroll]] for (uint kk = 0u; kk < BK; kk++) {
            float a[TM], b[TN];
            [[unroll]] for (uint i = 0u; i < TM; i++) a[i] = sa[kk * SAS + ty + TY * i];
            [[unroll]] for (uint j = 0u; j < TN; j++) b[j] = sb[kk * SBS + tx + TX * j];
            [[unroll]] for (uint i = 0u; i < TM; i++)
                [[unroll]] for (uint j = 0u; j < TN; j++) acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < TM; i++) {
        uint m = mb + ty + TY * i;
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            uint n = nb + tx + TX * j;
            if (m < p.M && n < p.N) {
                uint ci = p.c_off + m * p.c_rs + n;
                float v = p.alpha * acc[i][j];
                if (p.d_mode == 3u) v *= keep(m, n);
                // beta == 0 must not read C: it may hold garbage (NaN) that 0*NaN would propagate.
                if ((p.flags & FLAG_ACC) != 0u) v += p.beta * data_c[ci];
                data_c[ci] = v;
            }
        }
    }
}
