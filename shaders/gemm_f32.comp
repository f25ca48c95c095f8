#version 450
// Strided fp32 GEMM for the LoRA adapters and other small products: C[m, n] = alpha * sum_k A(m, k) B(k, n)
// + beta * C[m, n], A(m, k) = a[m*a_rs + k*a_cs], B(k, n) = b[k*b_rs + n*b_cs]; a register tile per invocation.
// -DGEMM_TEXEL reads A and B through R32F uniform texel buffers (CPU devices: a texel fetch is one vector
// gather, a storage load at a computed address a per-lane loop).
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;

// Mirrors vkl_gemm_push in src/ops/matmul_push.h (64 bytes).
layout(push_constant) uniform Push {
    uint M, N, K;
    uint a_off, a_rs, a_cs;
    uint b_off, b_rs, b_cs;
    uint c_off, c_rs;
    uint flags;
    float alpha, beta;
    uint pad0, pad1;
#ifdef DROPOUT
    // Mirrors the tail of vkl_gemm_drop_push: inverted dropout on one operand (1 = A, 2 = B, 3 = the new
    // product before it is added to C); element (i, j) of that operand uses counter d_base + i*d_si + j*d_sj.
    uint d_key, d_mode, d_base, d_si, d_sj;
    float d_p, d_scale, d_pad;
#endif
} p;

#ifdef DROPOUT
#include "common/rng.glsl"
float keep(uint i, uint j) { return rng_uniform(p.d_key, p.d_base + i * p.d_si + j * p.d_sj) >= p.d_p ? p.d_scale : 0.0; }
// The dropped operand (= d_mode) as a specialization constant: CPU devices run both sides of a branch on a push
// constant (lavapipe masks lanes instead of jumping), so with d_mode every dispatch drew the masks of all three
// modes, 96 Philox draws a step of 4 k where mode 1 needs 64 and mode 2 (dA's x) 32.
layout(constant_id = 2) const uint DMODE = 0u;
#endif

#define FLAG_ACC 2u

#ifdef GEMM_TEXEL
layout(binding = 0) uniform samplerBuffer tex_a;
layout(binding = 1) uniform samplerBuffer tex_b;
#define LOAD_A(i) texelFetch(tex_a, int(i)).x
#define LOAD_B(i) texelFetch(tex_b, int(i)).x
// Vector fetches, set by the host per dispatch (a fetch costs about the same at any width on CPU devices): an operand
// whose elements run contiguously along one dimension is bound as RGBA32F and read 4 elements a fetch. VEC_A_K: A
// along k (a_cs == 1), VEC_A_M: along m (a_rs == 1); VEC_B_K: B along k (b_rs == 1), VEC_B_N: along n (b_cs == 1).
// The host sets one only when K (and M or N for the second kind), the operand's offset and its other stride are
// multiples of 4.
layout(constant_id = 1) const uint VEC = 0u;
#define VEC_A_K 1u // = VKL_GEMM_VEC_A_K
#define VEC_A_M 2u // = VKL_GEMM_VEC_A_M
#define VEC_B_K 4u // = VKL_GEMM_VEC_B_K
#define VEC_B_N 8u // = VKL_GEMM_VEC_B_N
#define HAS_VEC(f) ((VEC & (f)) != 0u)
#define FETCH4_A(i) texelFetch(tex_a, int((i) >> 2u))
#define FETCH4_B(i) texelFetch(tex_b, int((i) >> 2u))
#else
#define HAS_VEC(f) false
#define FETCH4_A(i) vec4(0.0)
#define FETCH4_B(i) vec4(0.0)
#endif
#ifndef GEMM_TEXEL
layout(std430, binding = 0) readonly buffer A { float data_a[]; };
layout(std430, binding = 1) readonly buffer B { float data_b[]; };
#define LOAD_A(i) data_a[i]
#define LOAD_B(i) data_b[i]
#endif
layout(std430, binding = 2) buffer C { float data_c[]; };

#define TM 16u // = VKL_GEMM_TM
#define TN 8u // = VKL_GEMM_TN

void main() {
    uint tiles_n = (p.N + TN - 1u) / TN;
    uint tiles = tiles_n * ((p.M + TM - 1u) / TM);
    uint t = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (t >= tiles) return;
    uint m0 = (t / tiles_n) * TM, n0 = (t % tiles_n) * TN;
    // Rows/columns past the edge are clamped for loading (no branches in the K loop), skipped at the store.
    uint ab[TM], bb[TN];
    [[unroll]] for (uint i = 0u; i < TM; i++) ab[i] = p.a_off + min(m0 + i, p.M - 1u) * p.a_rs;
    [[unroll]] for (uint j = 0u; j < TN; j++) bb[j] = p.b_off + min(n0 + j, p.N - 1u) * p.b_cs;
    float acc[TM][TN];
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint j = 0u; j < TN; j++) acc[i][j] = 0.0;
    uint ak = 0u, bk = 0u, k = 0u;
    // Steps of 4 k: the products are summed before they touch an accumulator. The TM*TN accumulators do not fit a
    // CPU device's registers, so each update is a load and a store; a dot of 4 amortises it over 4 multiply-adds.
    for (; k + 4u <= p.K; k += 4u) {
        vec4 a[TM], b[TN];
        if (HAS_VEC(VEC_A_K)) {
            [[unroll]] for (uint i = 0u; i < TM; i++) a[i] = FETCH4_A(ab[i] + ak);
        } else if (HAS_VEC(VEC_A_M)) {
            // 4 rows of one k a fetch (M % 4 == 0: a group of 4 rows lies wholly inside or wholly past M)
            [[unroll]] for (uint g = 0u; g < TM / 4u; g++)
                [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
                    vec4 v = FETCH4_A(p.a_off + min(m0 + 4u * g, p.M - 4u) + ak + kk * p.a_cs);
                    [[unroll]] for (uint c = 0u; c < 4u; c++) a[4u * g + c][kk] = v[c];
                }
        } else {
            [[unroll]] for (uint i = 0u; i < TM; i++)
                a[i] = vec4(LOAD_A(ab[i] + ak), LOAD_A(ab[i] + ak + p.a_cs), LOAD_A(ab[i] + ak + 2u * p.a_cs),
                            LOAD_A(ab[i] + ak + 3u * p.a_cs));
        }
        if (HAS_VEC(VEC_B_K)) {
            [[unroll]] for (uint j = 0u; j < TN; j++) b[j] = FETCH4_B(bb[j] + bk);
        } else if (HAS_VEC(VEC_B_N)) {
            [[unroll]] for (uint g = 0u; g < TN / 4u; g++)
                [[unroll]] for (uint kk = 0u; kk < 4u; kk++) {
                    vec4 v = FETCH4_B(p.b_off + min(n0 + 4u * g, p.N - 4u) + bk + kk * p.b_rs);
                    [[unroll]] for (uint c = 0u; c < 4u; c++) b[4u * g + c][kk] = v[c];
                }
        } else {
            [[unroll]] for (uint j = 0u; j < TN; j++)
                b[j] = vec4(LOAD_B(bb[j] + bk), LOAD_B(bb[j] + bk + p.b_rs), LOAD_B(bb[j] + bk + 2u * p.b_rs),
                            LOAD_B(bb[j] + bk + 3u * p.b_rs));
        }
#ifdef DROPOUT
        if (DMODE == 1u)
            [[unroll]] for (uint i = 0u; i < TM; i++)
                a[i] *= vec4(keep(m0 + i, k), keep(m0 + i, k + 1u), keep(m0 + i, k + 2u), keep(m0 + i, k + 3u));
        if (DMODE == 2u)
            [[unroll]] for (uint j = 0u; j < TN; j++)
                b[j] *= vec4(keep(k, n0 + j), keep(k + 1u, n0 + j), keep(k + 2u, n0 + j), keep(k + 3u, n0 + j));
#endif
        [[unroll]] for (uint i = 0u; i < TM; i++)
            [[unroll]] for (uint j = 0u; j < TN; j++) acc[i][j] += dot(a[i], b[j]);
        ak += 4u * p.a_cs;
        bk += 4u * p.b_rs;
    }
    for (; k < p.K; k++) {
        float a[TM], b[TN];
        [[unroll]] for (uint i = 0u; i < TM; i++) a[i] = LOAD_A(ab[i] + ak);
        [[unroll]] for (uint j = 0u; j < TN; j++) b[j] = LOAD_B(bb[j] + bk);
#ifdef DROPOUT
        if (DMODE == 1u) [[unroll]] for (uint i = 0u; i < TM; i++) a[i] *= keep(m0 + i, k);
        if (DMODE == 2u) [[unroll]] for (uint j = 0u; j < TN; j++) b[j] *= keep(k, n0 + j);
#endif
        [[unroll]] for (uint i = 0u; i < TM; i++)
            [[unroll]] for (uint j = 0u; j < TN; j++) acc[i][j] += a[i] * b[j];
        ak += p.a_cs;
        bk += p.b_rs;
    }
    // No `break`/`continue` here: they would keep the loop rolled and the accumulators in indexed memory.
    [[unroll]] for (uint i = 0u; i < TM; i++) {
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            if (m0 + i < p.M && n0 + j < p.N) {
                uint ci = p.c_off + (m0 + i) * p.c_rs + n0 + j;
                float v = p.alpha * acc[i][j];
#ifdef DROPOUT
                if (DMODE == 3u) v *= keep(m0 + i, n0 + j);
#endif
                // beta == 0 must not read C: it may hold garbage (NaN) that 0*NaN would propagate.
                if ((p.flags & FLAG_ACC) != 0u) v += p.beta * data_c[ci];
                data_c[ci] = v;
            }
        }
    }
}
