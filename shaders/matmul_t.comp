#version 450
// The transposed weight product of the backward: dx[m, k] (+)= sum_n dy[m, n] * W[n, k], W a GGUF weight
// (-DDATA_A_<TYPE>) read column-wise: each invocation owns TM rows x TK consecutive k, decoding per weight row n
// TK/4 vec4s of codes and one affine map shared by all its rows (TK divides DQ_DM_RUN).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;

// Mirrors vkl_matmul_t_push in src/ops/matmul_push.h (32 bytes).
layout(push_constant) uniform Push {
    uint M, N, K;
    uint w_byte_off;
    uint dy_off;
    uint dy_stride;
    uint dx_off;
    uint flags;
} p;

#define FLAG_ACC 2u

layout(std430, binding = 0) readonly buffer A { uint data_a[]; };
layout(std430, binding = 1) readonly buffer DY { float data_dy[]; };
layout(std430, binding = 2) buffer DX { float data_dx[]; };

#define A_WORD(i) data_a[i]
#define A_BYTE_OFFSET p.w_byte_off
#include "common/quant.glsl"

#define TM 8u // = VKL_MMT_TM
#define TK 16u // = VKL_MMT_TK
#define TK4 (TK / 4u)

void store_dx(uint m, uint k, float v) {
    uint i = p.dx_off + m * p.K + k;
    if ((p.flags & FLAG_ACC) != 0u) v += data_dx[i];
    data_dx[i] = v;
}

void main() {
    uint groups_k = (p.K + TK - 1u) / TK;
    uint tiles = groups_k * ((p.M + TM - 1u) / TM);
    uint t = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (t >= tiles) return;
    // Neighbouring lanes take neighbouring k of the same dy rows: adjacent weight bytes, identical dy loads.
    uint m0 = (t / groups_k) * TM, k0 = (t % groups_k) * TK;
    uint dyb[TM];
    [[unroll]] for (uint i = 0u; i < TM; i++) dyb[i] = p.dy_off + min(m0 + i, p.M - 1u) * p.dy_stride;
    vec4 acc[TM][TK4];
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint q = 0u; q < TK4; q++) acc[i][q] = vec4(0.0);

#if DQ_IS_SCALAR
    if (k0 + TK <= p.K) {
        for (uint n = 0u; n < p.N; n++) {
            vec4 w[TK4];
            [[unroll]] for (uint q = 0u; q < TK4; q++) w[q] = dequant_codes4(n * p.K + k0 + 4u * q, 0u);
            [[unroll]] for (uint i = 0u; i < TM; i++) {
                float d = data_dy[dyb[i] + n];
                [[unroll]] for (uint q = 0u; q < TK4; q++) acc[i][q] += d * w[q];
            }
        }
    } else {
        // The last group of an odd K: element by element, never reading past the row (or the bound range).
        for (uint n = 0u; n < p.N; n++) {
            vec4 w[TK4];
            [[unroll]] for (uint q = 0u; q < TK4; q++)
                [[unroll]] for (uint c = 0u; c < 4u; c++) {
                    uint k = min(k0 + 4u * q + c, p.K - 1u);
                    w[q][c] = dequant_elem(n * p.K + k, 0u);
                }
            [[unroll]] for (uint i = 0u; i < TM; i++) {
                float d = data_dy[dyb[i] + n];
                [[unroll]] for (uint q = 0u; q < TK4; q++) acc[i][q] += d * w[q];
            }
        }
    }
#else
    uint nbpr = p.K / BLOCK_SIZE;
    uint ibk = k0 / BLOCK_SIZE, iq = k0 % BLOCK_SIZE;
    for (uint n = 0u; n < p.N; n++) {
        uint ib = n * nbpr + ibk;
        vec2 dm = dequant_dm(ib, iq);
        vec4 c[TK4];
        [[unroll]] for (uint q = 0u; q < TK4; q++) c[q] = dequant_codes4(ib, iq + 4u * q);
        [[unroll]] for (uint i = 0u; i < TM; i++) {
            float d = data_dy[dyb[i] + n];
            float a = d * dm.x;
#if DQ_HAS_MIN
            float b = d * dm.y;
            [[unroll]] for (uint q = 0u; q < TK4; q++) acc[i][q] += a * c[q] + b;
#else
            [[unroll]] for (uint q = 0u; q < TK4; q++) acc[i][q] += a * c[q];
#endif
        }
    }
#endif

    // No `break` here: it would keep the loop rolled and the accumulators in indexed memory.
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint q = 0u; q < TK4; q++)
            [[unroll]] for (uint c = 0u; c < 4u; c++) {
                uint k = k0 + 4u * q + c;
                if (m0 + i < p.M && k < p.K) store_dx(m0 + i, k, acc[i][q][c]);
            }
}
