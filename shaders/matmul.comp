#version 450
// y[m, n] (+)= sum_k x[m, k] * W[n, k] (+ bias[n]) with W a GGUF weight decoded here (-DDATA_A_<TYPE>), in three
// kernel variants: MM_TEXEL (subgroup outer products fed by texel buffers, CPU devices), MM_REGTILE (barrier-free
// register tiles from storage buffers, CPU devices and views the texel kernel cannot take) and MM_TILED
// (shared-memory tiles, GPUs).
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if defined(MM_TEXEL)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

layout(local_size_x_id = 0) in;

// Mirrors vkl_matmul_push in src/ops/matmul_push.h (64 bytes).
layout(push_constant) uniform Push {
    uint M, N, K;
    uint w_byte_off;
    uint x_off;
    uint y_off;
    uint y_stride;
    uint b_off;
    uint flags;
    uint lr_r, u_off, v_off; // FLAG_LOWRANK: rank (a multiple of 4), first texel of u's and of v's rows
    float lr_scale;
    uint pad0, pad1, pad2;
} p;

#define FLAG_BIAS 1u
#define FLAG_ACC 2u
#define FLAG_X_VEC4 4u // x rows (and f32 weight rows) start on 16-byte boundaries
#define FLAG_LOWRANK 8u // texel: y += lr_scale * u·v^T (the LoRA branch, u = xa, v = B) before the store
#if defined(MM_TEXEL)
// CPU devices run both sides of a branch even when every lane takes the same one (lavapipe masks lanes instead of
// jumping): the texel kernel takes the store's flags from a specialization constant (the host sets it to the
// push flags' FLAG_BIAS | FLAG_ACC), so a pipeline without them has no loads of bias or y at all.
layout(constant_id = 2) const uint FEAT = 0u;
#define STORE_HAS(f) ((FEAT & (f)) != 0u)
#else
#define STORE_HAS(f) ((p.flags & (f)) != 0u)
#endif

#if defined(MM_TEXEL)
// Uniform texel buffers: on CPU devices a texel fetch is one vector gather, a storage load with a computed
// address a per-lane loop (PERF.md), and a fetch costs about the same whatever its width. x is read as RGBA32F
// texels (K % 4 == 0, rows 16-byte aligned); an f32 weight likewise, every other type as RGBA32UI texels (16 bytes
// a fetch; the host binds that view): Q4_K/Q5_K (MM_WIDE_K) and F16/BF16 (MM_WIDE_H, K % 8 == 0) on 16-byte aligned
// blocks and rows, Q8_0/Q4_0/Q6_K (MM_WIDE_U), whose blocks are only 2-byte aligned, through common/span.glsl.
#if defined(DATA_A_F32)
layout(binding = 0) uniform samplerBuffer tex_w4;
#define A_WORD(i) floatBitsToUint(texelFetch(tex_w4, int((i) >> 2u))[(i) & 3u])
#else
layout(binding = 0) uniform usamplerBuffer tex_w;
#define A_WORD(i) texelFetch(tex_w, int((i) >> 2u))[(i) & 3u]
#if defined(DATA_A_Q4_K) || defined(DATA_A_Q5_K)
#define MM_WIDE_K 1
#elif defined(DATA_A_F16) || defined(DATA_A_BF16)
#define MM_WIDE_H 1
#else
#define MM_WIDE_U 1
#endif
#endif
layout(binding = 1) uniform samplerBuffer tex_x4;
// The low-rank term (FLAG_LOWRANK), rows of lr_r floats as RGBA32F texels; bound to x's view when unused.
layout(binding = 4) uniform samplerBuffer tex_u4;
layout(binding = 5) uniform samplerBuffer tex_v4;
#else
layout(std430, binding = 0) readonly buffer A { uint data_a[]; };
layout(std430, binding = 0) readonly buffer A4 { uvec4 data_a4[]; };
// The same range seen two ways: vec4 loads when the rows are 16-byte aligned (one vector load per lane instead
// of four scalar ones), floats otherwise (odd K, unaligned views).
layout(std430, binding = 1) readonly buffer X { float data_x[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 data_x4[]; };
#define A_WORD(i) data_a[i]
#endif
layout(std430, binding = 2) readonly buffer Bias { float data_b[]; };
layout(std430, binding = 3) buffer Y { float data_y[]; };
#define A_BYTE_OFFSET p.w_byte_off
#include "common/quant.glsl"
#if defined(MM_TEXEL)
#include "common/grid.glsl"
#endif

#if !defined(MM_TEXEL)
// Four consecutive activations starting at float offset off (a multiple of 4 when xv4). Callers pass xv4 as a
// literal, so after inlining each loop is specialised and the branch disappears.
vec4 load_x4(const bool xv4, uint off) {
    if (xv4) return data_x4[off >> 2];
    return vec4(data_x[off], data_x[off + 1u], data_x[off + 2u], data_x[off + 3u]);
}

// Four consecutive f32/f16/bf16 weights from element e. An f32 weight whose rows are 16-byte aligned (vec4
// paths only) is read with one vector load: a computed-address load costs a per-lane loop on CPU devices.
vec4 load_w4(const bool vec, uint e) {
#if defined(DATA_A_F32)
    if (vec) return uintBitsToFloat(data_a4[(A_BYTE_OFFSET >> 4) + (e >> 2)]);
#endif
    return dequant_codes4(e, 0u);
}
#endif

void store_y(uint m, uint n, float v) {
    if (STORE_HAS(FLAG_BIAS)) v += data_b[p.b_off + n];
    uint i = p.y_off + m * p.y_stride + n;
    if (STORE_HAS(FLAG_ACC)) v += data_y[i];
    data_y[i] = v;
}

#if defined(MM_REGTILE)
// Each invocation owns TM x rows by TN weight rows. Rows past M/N are clamped to the last one for loading (no
// branches in the K loop) and skipped at the store. The quantized path accumulates code*x over a run of
// DQ_DM_RUN elements that share one affine map, then applies it once: value = code*dm.x + dm.y, so
// sum value*x = dm.x * sum code*x + dm.y * sum x.
#define TM 8u // = VKL_MM_REGTILE_TM
#define TN 8u // = VKL_MM_REGTILE_TN

void kloop(const bool xv4, uint m0, uint n0, inout float acc[TM][TN]) {
    uint xb[TM];
    [[unroll]] for (uint i = 0u; i < TM; i++) xb[i] = p.x_off + min(m0 + i, p.M - 1u) * p.K;
    uint nbpr = p.K / BLOCK_SIZE;
    uint wb[TN];
    [[unroll]] for (uint j = 0u; j < TN; j++) wb[j] = min(n0 + j, p.N - 1u) * nbpr;
#if DQ_IS_SCALAR
    uint k4 = p.K & ~3u;
    for (uint k = 0u; k < k4; k += 4u) {
        vec4 xv[TM];
        [[unroll]] for (uint i = 0u; i < TM; i++) xv[i] = load_x4(xv4, xb[i] + k);
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            vec4 w = load_w4(xv4, wb[j] + k);
            [[unroll]] for (uint i = 0u; i < TM; i++) acc[i][j] += dot(xv[i], w);
        }
    }
    for (uint k = k4; k < p.K; k++) {
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            float w = dequant_elem(wb[j] + k, 0u);
            [[unroll]] for (uint i = 0u; i < TM; i++) acc[i][j] += data_x[xb[i] + k] * w;
        }
    }
#else
    for (uint kb = 0u; kb < p.K; kb += DQ_DM_RUN) {
        uint ib = kb / BLOCK_SIZE, iq = kb % BLOCK_SIZE;
        float s[TM][TN];
        float xs[TM];
        [[unroll]] for (uint i = 0u; i < TM; i++) {
            xs[i] = 0.0;
            [[unroll]] for (uint j = 0u; j < TN; j++) s[i][j] = 0.0;
        }
        // Rolled: unrolling this too multiplies the code (and the driver's compile time) by up to 8.
        [[dont_unroll]] for (uint u = 0u; u < DQ_DM_RUN; u += 4u) {
            vec4 xv[TM];
            [[unroll]] for (uint i = 0u; i < TM; i++) {
                xv[i] = load_x4(xv4, xb[i] + kb + u);
#if DQ_HAS_MIN
                xs[i] += (xv[i].x + xv[i].y) + (xv[i].z + xv[i].w);
#endif
            }
            [[unroll]] for (uint j = 0u; j < TN; j++) {
                vec4 c = dequant_codes4(wb[j] + ib, iq + u);
                [[unroll]] for (uint i = 0u; i < TM; i++) s[i][j] += dot(xv[i], c);
            }
        }
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            vec2 dm = dequant_dm(wb[j] + ib, iq);
            [[unroll]] for (uint i = 0u; i < TM; i++) {
#if DQ_HAS_MIN
                acc[i][j] += s[i][j] * dm.x + xs[i] * dm.y;
#else
                acc[i][j] += s[i][j] * dm.x;
#endif
            }
        }
    }
#endif
}

void main() {
    uint tiles_n = (p.N + TN - 1u) / TN;
    uint tiles = tiles_n * ((p.M + TM - 1u) / TM);
    uint t = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    if (t >= tiles) return;
    // Neighbouring lanes take neighbouring weight rows of the same x rows, so their x loads coincide.
    uint m0 = (t / tiles_n) * TM, n0 = (t % tiles_n) * TN;
    float acc[TM][TN];
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint j = 0u; j < TN; j++) acc[i][j] = 0.0;
    if ((p.flags & FLAG_X_VEC4) != 0u) kloop(true, m0, n0, acc);
    else kloop(false, m0, n0, acc);
    // No `break` here: it would keep the loop rolled and the accumulators in indexed memory.
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint j = 0u; j < TN; j++)
            if (m0 + i < p.M && n0 + j < p.N) store_y(m0 + i, n0 + j, acc[i][j]);
}

#elif defined(MM_TILED)
// Classic shared-memory tiling for GPUs: a workgroup of exactly 128 invocations (the host passes 128 as spec
// constant 0) computes a BM x BN block; per BK step it stages BM x BK activations and BN x BK decoded weights in
// shared memory (each weight decoded once per workgroup), then every invocation accumulates TM x TN outputs.
// Invocation (tx, ty) owns rows ty + 8i and columns tx + 16j so that neighbours touch neighbouring addresses
// in shared memory (no bank conflicts) and in y (coalesced stores).
#define BM 64u // = VKL_MM_TILED_BM
#define BN 64u // = VKL_MM_TILED_BN
#define BK 16u
#define TM 8u
#define TN 4u
#define SXS (BM + 1u) // padded strides: the transposing stores below hit distinct banks
#define SWS (BN + 1u)
shared float sx[BK * SXS];
shared float sw[BK * SWS];

// Four activations of row m from column k; zeros past K (scalar types only end mid-vec4).
vec4 tile_x4(const bool xv4, uint m, uint k) {
    uint off = p.x_off + m * p.K + k;
    if (k + 4u <= p.K) return load_x4(xv4, off);
    vec4 v = vec4(0.0);
    for (uint c = 0u; c < 4u && k + c < p.K; c++) v[c] = data_x[off + c];
    return v;
}

vec4 tile_w4(uint n, uint k) {
#if DQ_IS_SCALAR
    if (k + 4u <= p.K) return dequant_vec4(n * p.K + k, 0u);
    vec4 v = vec4(0.0);
    for (uint c = 0u; c < 4u && k + c < p.K; c++) v[c] = dequant_elem(n * p.K + k + c, 0u);
    return v;
#else
    // K is a multiple of the block size (>= 32), so a BK step never crosses the end of a row.
    return dequant_vec4(n * (p.K / BLOCK_SIZE) + k / BLOCK_SIZE, k % BLOCK_SIZE);
#endif
}

void kloop(const bool xv4, inout float acc[TM][TN]) {
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % 16u, ty = tid / 16u;
    uint mb = gl_WorkGroupID.y * BM, nb = gl_WorkGroupID.x * BN;
    for (uint k0 = 0u; k0 < p.K; k0 += BK) {
        // BM*BK/4 = 256 vec4 of x and as many of W: two of each per invocation.
        [[unroll]] for (uint r = 0u; r < 2u; r++) {
            uint idx = tid + r * 128u;
            uint row = idx / (BK / 4u), kq = (idx % (BK / 4u)) * 4u;
            vec4 xv = tile_x4(xv4, min(mb + row, p.M - 1u), k0 + kq);
            vec4 wv = tile_w4(min(nb + row, p.N - 1u), k0 + kq);
            [[unroll]] for (uint c = 0u; c < 4u; c++) {
                sx[(kq + c) * SXS + row] = xv[c];
                sw[(kq + c) * SWS + row] = wv[c];
            }
        }
        barrier();
        [[unroll]] for (uint kk = 0u; kk < BK; kk++) {
            float a[TM], b[TN];
            [[unroll]] for (uint i = 0u; i < TM; i++) a[i] = sx[kk * SXS + ty + 8u * i];
            [[unroll]] for (uint j = 0u; j < TN; j++) b[j] = sw[kk * SWS + tx + 16u * j];
            [[unroll]] for (uint i = 0u; i < TM; i++)
                [[unroll]] for (uint j = 0u; j < TN; j++) acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
}

void main() {
    float acc[TM][TN];
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint j = 0u; j < TN; j++) acc[i][j] = 0.0;
    if ((p.flags & FLAG_X_VEC4) != 0u) kloop(true, acc);
    else kloop(false, acc);
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % 16u, ty = tid / 16u;
    uint mb = gl_WorkGroupID.y * BM, nb = gl_WorkGroupID.x * BN;
    [[unroll]] for (uint i = 0u; i < TM; i++) {
        uint m = mb + ty + 8u * i;
        [[unroll]] for (uint j = 0u; j < TN; j++) {
            uint n = nb + tx + 16u * j;
            if (m < p.M && n < p.N) store_y(m, n, acc[i][j]);
        }
    }
}

#elif defined(MM_TEXEL)
// One subgroup of SG lanes computes a tile of TR*SG x rows by TC*SG weight rows as a sum of outer products:
// per step of 4 k, lane l fetches x rows m0 + r*SG + l and weight rows n0 + c*SG + l (one gather each), then
// takes every x row from its owner with subgroupShuffle at a constant lane index (a vector broadcast after
// unrolling) and accumulates into outputs (m0 + r*SG + i, n0 + c*SG + l). No shared memory, no barriers; each
// fetched x vec4 feeds TC*SG*4 multiply-adds and each weight vec4 TR*SG*4. The loops over SG unroll once the
// specialization constant is known. The host passes SG = the pipeline's subgroup size (fixed by the device or
// requested with subgroup size control) and a workgroup size that is a multiple of SG.
layout(constant_id = 1) const uint SG = 8u;
#if defined(DATA_A_F32)
// f32 weights carry 4 values a fetch (the others 8 to 32): a taller tile shares each weight fetch over more rows
#define TILE_M 32u // x rows per subgroup tile (= VKL_MM_TEXEL_ROWS_F32) when SG <= 32
#define TC 4u      // weight rows per lane (= VKL_MM_TEXEL_TC_F32)
#elif defined(DATA_A_F16) || defined(DATA_A_BF16) || defined(DATA_A_Q6_K)
// Weights that are dear to fetch and decode (and, f16/bf16, many rows' streams to keep in flight): a tile of 64 x
// rows shares each fetched weight vec4 over 4x the products of 16 rows (512x4096x4096, alternating runs: 0.77-0.90x
// the time of 16x8 for f16 and bf16, 0.96-1.03x for Q6_K; Q4_K, Q5_K and Q8_0 were slower, so they keep 16x8)
#define TILE_M 64u // (= VKL_MM_TEXEL_ROWS_TALL)
#define TC 4u      // (= VKL_MM_TEXEL_TC_TALL)
#else
#define TILE_M 16u // x rows per subgroup tile (= VKL_MM_TEXEL_ROWS) when SG <= 16
#define TC 8u      // weight rows per lane (= VKL_MM_TEXEL_TC)
#endif
const uint TR = SG >= TILE_M ? 1u : TILE_M / SG; // x rows per lane
const uint NACC = TR * SG * TC;

#if defined(MM_WIDE_U)
#include "common/span.glsl"
#endif

// The TR*SG*TC products of one k step: a[r] are this lane's x rows, w[c] its weight rows.
void outer(const vec4 a[TR], const vec4 w[TC], inout float acc[NACC]) {
    [[unroll]] for (uint r = 0u; r < TR; r++)
        [[unroll]] for (uint i = 0u; i < SG; i++) {
            vec4 xi = subgroupShuffle(a[r], i);
            [[unroll]] for (uint c = 0u; c < TC; c++) acc[(r * SG + i) * TC + c] += dot(xi, w[c]);
        }
}

#if defined(MM_WIDE_H)
// The two steps of 4 k in one texel of 8 halves per weight row (q), x from texel xk of each of this lane's rows.
void half_steps(const uvec4 q[TC], const int xb[TR], int xk, inout float acc[NACC]) {
    [[unroll]] for (uint h = 0u; h < 2u; h++) {
        vec4 a[TR], w[TC];
        [[unroll]] for (uint r = 0u; r < TR; r++) a[r] = texelFetch(tex_x4, xb[r] + xk + int(h));
        [[unroll]] for (uint c = 0u; c < TC; c++) w[c] = vec4(qa_half2(q[c][2u * h]), qa_half2(q[c][2u * h + 1u]));
        outer(a, w, acc);
    }
}
#endif

void main() {
    uint lane = gl_SubgroupInvocationID;
    uint tiles_m = (p.M + TR * SG - 1u) / (TR * SG);
    uint tiles = tiles_m * ((p.N + TC * SG - 1u) / (TC * SG));
    uint t = wg_linear() * (gl_WorkGroupSize.x / SG) + gl_SubgroupID;
    if (t >= tiles) return; // t is the same on every lane: whole subgroups leave, the shuffles stay complete
    uvec2 tile = grouped_tile(t, tiles_m, tiles / tiles_m, TR * SG * p.K);
    uint m0 = tile.x * (TR * SG), n0 = tile.y * (TC * SG);
    uint K4 = p.K / 4u;
    // Rows past M/N are clamped for loading (every lane must take part in the shuffles) and skipped at the store.
    int xb[TR];
    [[unroll]] for (uint r = 0u; r < TR; r++) xb[r] = int(p.x_off / 4u + min(m0 + r * SG + lane, p.M - 1u) * K4);
    uint wr[TC];
    [[unroll]] for (uint c = 0u; c < TC; c++) wr[c] = min(n0 + c * SG + lane, p.N - 1u);
    float acc[NACC];
    [[unroll]] for (uint j = 0u; j < NACC; j++) acc[j] = 0.0;

#if defined(DATA_A_F32)
    int wb[TC];
    [[unroll]] for (uint c = 0u; c < TC; c++) wb[c] = int(p.w_byte_off / 16u + wr[c] * K4);
    // 4 steps at a time, each row's 4 texels (one 64-byte line) fetched back to back. Fetched one a step, a line was
    // evicted between its uses by the other rows' lines, which share its cache sets when rows are a multiple of
    // 2 KiB apart (K 512): perf put half the kernel's samples on the fetches' loads.
    int k = 0;
    for (; k + 4 <= int(K4); k += 4) {
        vec4 a[4][TR], w[4][TC];
        [[unroll]] for (uint r = 0u; r < TR; r++)
            [[unroll]] for (uint s = 0u; s < 4u; s++) a[s][r] = texelFetch(tex_x4, xb[r] + k + int(s));
        [[unroll]] for (uint c = 0u; c < TC; c++)
            [[unroll]] for (uint s = 0u; s < 4u; s++) w[s][c] = texelFetch(tex_w4, wb[c] + k + int(s));
        [[unroll]] for (uint s = 0u; s < 4u; s++) outer(a[s], w[s], acc);
    }
    for (; k < int(K4); k++) {
        vec4 a[TR], w[TC];
        [[unroll]] for (uint r = 0u; r < TR; r++) a[r] = texelFetch(tex_x4, xb[r] + k);
        [[unroll]] for (uint c = 0u; c < TC; c++) w[c] = texelFetch(tex_w4, wb[c] + k);
        outer(a, w, acc);
    }
#elif defined(MM_WIDE_H)
    int wt[TC];
    [[unroll]] for (uint c = 0u; c < TC; c++) wt[c] = int(p.w_byte_off / 16u + wr[c] * (p.K / 8u));
    // 4 texels (one 64-byte line) of each weight row at a time, fetched back to back, as for f32 above.
    int k = 0, K8 = int(p.K / 8u);
    for (; k + 4 <= K8; k += 4) {
        uvec4 q[4][TC];
        [[unroll]] for (uint c = 0u; c < TC; c++)
            [[unroll]] for (uint s = 0u; s < 4u; s++) q[s][c] = texelFetch(tex_w, wt[c] + k + int(s));
        [[unroll]] for (uint s = 0u; s < 4u; s++) half_steps(q[s], xb, 2 * (k + int(s)), acc);
    }
    for (; k < K8; k++) {
        uvec4 q[TC];
        [[unroll]] for (uint c = 0u; c < TC; c++) q[c] = texelFetch(tex_w, wt[c] + k);
        half_steps(q, xb, 2 * k, acc);
    }
#elif defined(MM_WIDE_K)
    // Q4_K / Q5_K, a pair of sub-blocks (64 k) at a time. Per weight row: one fetch of the 16-byte block head
    // (d, dmin and the 12 scale bytes) a block gives the affine maps of its 8 sub-blocks (fetched again for each
    // pair, 512x4096x4096 took 1.06-1.08x the time for Q4_K, 1.04-1.09x for Q5_K), two fetches the pair's 32 code
    // bytes (low nibbles: the first sub-block, high: the second) and, for Q5_K, two more the 32 high-bit bytes.
    // Each weight vec4 is then decoded from registers as in dequant_codes4/dequant_dm (quant.glsl): code * dm.x +
    // dm.y.
    const uint TPB = BLOCK_BYTES / 16u; // texels per block
    int wt[TC];
    [[unroll]] for (uint c = 0u; c < TC; c++) wt[c] = int(p.w_byte_off / 16u + wr[c] * (p.K / BLOCK_SIZE) * TPB);
    for (uint ib = 0u; ib < p.K / BLOCK_SIZE; ib++) {
        uvec4 hd[TC];
        [[unroll]] for (uint c = 0u; c < TC; c++) hd[c] = texelFetch(tex_w, wt[c] + int(ib * TPB));
        for (uint j = 0u; j < BLOCK_SIZE / 64u; j++) {
            uint kb = ib * BLOCK_SIZE + 64u * j;
            vec2 dm0[TC], dm1[TC];
            uvec4 q0[TC], q1[TC];
#if defined(DATA_A_Q5_K)
            uvec4 h0[TC], h1[TC];
#endif
            [[unroll]] for (uint c = 0u; c < TC; c++) {
                int t = wt[c] + int(ib * TPB);
                dm0[c] = dequant_head_dm(hd[c], 2u * j);
                dm1[c] = dequant_head_dm(hd[c], 2u * j + 1u);
                q0[c] = texelFetch(tex_w, t + int(DQ_QS_OFF / 16u + 2u * j));
                q1[c] = texelFetch(tex_w, t + int(DQ_QS_OFF / 16u + 2u * j + 1u));
#if defined(DATA_A_Q5_K)
                h0[c] = texelFetch(tex_w, t + int(DQ_QH_OFF / 16u));
                h1[c] = texelFetch(tex_w, t + int(DQ_QH_OFF / 16u + 1u));
#endif
            }
            // g: bit 3 picks the sub-block (nibble), bit 2 the half of its 32 codes, bits 0-1 the word. Rolled, as
            // below.
            [[dont_unroll]] for (uint g = 0u; g < 16u; g++) {
                uint hf = g >> 3u, e = g & 3u;
                bool lo = (g & 4u) == 0u;
                int xk = int((kb + 32u * hf) / 4u + (g & 7u));
                vec4 a[TR], w[TC];
                [[unroll]] for (uint r = 0u; r < TR; r++) a[r] = texelFetch(tex_x4, xb[r] + xk);
#if defined(DATA_A_Q5_K)
                uint hs = 2u * j + hf; // the sub-block's bit in qh
#endif
                [[unroll]] for (uint c = 0u; c < TC; c++) {
                    vec2 dm = hf == 0u ? dm0[c] : dm1[c];
                    uint cw = ((lo ? q0[c] : q1[c])[e] >> (4u * hf)) & 0x0F0F0F0Fu;
#if defined(DATA_A_Q5_K)
                    cw |= (((lo ? h0[c] : h1[c])[e] >> hs) & 0x01010101u) << 4;
#endif
                    w[c] = qa_bytes4(cw) * dm.x + dm.y;
                }
                outer(a, w, acc);
            }
        }
    }
#elif defined(MM_WIDE_U) && (defined(DATA_A_Q8_0) || defined(DATA_A_Q4_0))
    // A block (32 k) at a time: per weight row the texels that cover its bytes (3 for Q8_0's 34, 2 for Q4_0's 18),
    // then d and the code words cut out of them (span_word); each weight vec4 decoded as in quant.glsl.
#if defined(DATA_A_Q8_0)
    const uint NT = 3u;
#else
    const uint NT = 2u;
#endif
    uint nbpr = p.K / BLOCK_SIZE;
    for (uint ib = 0u; ib < nbpr; ib++) {
        float d[TC];
        uvec4 q0[TC];
#if defined(DATA_A_Q8_0)
        uvec4 q1[TC];
#endif
        [[unroll]] for (uint c = 0u; c < TC; c++) {
            uint a = p.w_byte_off + (wr[c] * nbpr + ib) * BLOCK_BYTES, o = a & 15u;
            uint wd[SPAN_NW];
            span_fetch(int(a >> 4u), NT, wd);
            d[c] = unpackHalf2x16(span_word(wd, o, 0u)).x;
            q0[c] = span_words4(wd, o + 2u, 0u); // the codes start 2 bytes in
#if defined(DATA_A_Q8_0)
            q1[c] = span_words4(wd, o + 2u, 4u);
#endif
        }
        // Rolled, as below.
        [[dont_unroll]] for (uint g = 0u; g < 8u; g++) {
            vec4 a[TR], w[TC];
#if defined(DATA_A_Q8_0)
            [[unroll]] for (uint r = 0u; r < TR; r++) a[r] = texelFetch(tex_x4, xb[r] + int(ib * 8u + g));
            [[unroll]] for (uint c = 0u; c < TC; c++) w[c] = qa_sbytes4((g < 4u ? q0[c] : q1[c])[g & 3u]) * d[c];
#else
            // element j (< 16) in the low nibble of code byte j, element 16 + j in its high nibble
            uint hf = g >> 2u, e = g & 3u;
            [[unroll]] for (uint r = 0u; r < TR; r++) a[r] = texelFetch(tex_x4, xb[r] + int(ib * 8u + 4u * hf + e));
            [[unroll]] for (uint c = 0u; c < TC; c++)
                w[c] = (qa_bytes4((q0[c][e] >> (4u * hf)) & 0x0F0F0F0Fu) - 8.0) * d[c];
#endif
            outer(a, w, acc);
        }
    }
#else // MM_WIDE_U, Q6_K
    // Q6_K, 32 k (two runs of 16 with their own scale) at a time: per weight row 3 texels cover the 32 low-bit
    // bytes (ql) and 3 the 32 high-bit bytes (qh) of the pair of runs, and once per block 2 texels the 16 scales
    // and d; the words are cut out of them (span_word) and decoded as in quant.glsl.
    uint nbpr = p.K / BLOCK_SIZE;
    for (uint ib = 0u; ib < nbpr; ib++) {
        uvec4 sc[TC];
        float d[TC];
        uint ob[TC];
        int tb[TC];
        [[unroll]] for (uint c = 0u; c < TC; c++) {
            uint a = p.w_byte_off + (wr[c] * nbpr + ib) * BLOCK_BYTES;
            tb[c] = int(a >> 4u);
            ob[c] = a & 15u;
            uint wd[SPAN_NW];
            span_fetch(tb[c] + 12, 2u, wd); // bytes 192..209: scales[16], d
            sc[c] = span_words4(wd, ob[c], 0u);
            d[c] = unpackHalf2x16(span_word(wd, ob[c], 4u)).x;
        }
        for (uint pr = 0u; pr < 8u; pr++) {
            uint h = pr >> 2u, k = pr & 3u;
            uvec4 l0[TC], l1[TC], h0[TC], h1[TC];
            [[unroll]] for (uint c = 0u; c < TC; c++) {
                uint wd[SPAN_NW];
                span_fetch(tb[c] + int(4u * h + 2u * (k & 1u)), 3u, wd); // ql[64h + 32(k&1) ..]
                l0[c] = span_words4(wd, ob[c], 0u);
                l1[c] = span_words4(wd, ob[c], 4u);
                span_fetch(tb[c] + int(8u + 2u * h), 3u, wd); // qh[32h ..]
                h0[c] = span_words4(wd, ob[c], 0u);
                h1[c] = span_words4(wd, ob[c], 4u);
            }
            // Rolled, as below.
            [[dont_unroll]] for (uint g = 0u; g < 8u; g++) {
                uint run = 2u * pr + (g >> 2u), e = g & 3u;
                bool lo = g < 4u;
                vec4 a[TR], w[TC];
                [[unroll]] for (uint r = 0u; r < TR; r++)
                    a[r] = texelFetch(tex_x4, xb[r] + int(ib * 64u + 8u * pr + g));
                [[unroll]] for (uint c = 0u; c < TC; c++) {
                    uint cl = ((lo ? l0[c] : l1[c])[e] >> (4u * (k >> 1u))) & 0x0F0F0F0Fu;
                    uint ch = ((lo ? h0[c] : h1[c])[e] >> (2u * k)) & 0x03030303u;
                    float s = float(bitfieldExtract(int(sc[c][run >> 2u]), int(8u * (run & 3u)), 8));
                    w[c] = (qa_bytes4(cl | (ch << 4)) - 32.0) * (d[c] * s);
                }
                outer(a, w, acc);
            }
        }
    }
#endif

    // The LoRA branch's y += s·xa·B^T is the same outer product over lr_r more k: u = xa rows (this lane's x rows),
    // v = B rows (its weight rows). Added here it costs no store of its own (stores dominate such a thin product
    // run alone: PERF.md).
    if ((p.flags & FLAG_LOWRANK) != 0u) {
        int R4 = int(p.lr_r / 4u);
        int ub[TR], vb[TC];
        [[unroll]] for (uint r = 0u; r < TR; r++) ub[r] = int(p.u_off) + int(min(m0 + r * SG + lane, p.M - 1u)) * R4;
        [[unroll]] for (uint c = 0u; c < TC; c++) vb[c] = int(p.v_off) + int(wr[c]) * R4;
        for (int j = 0; j < R4; j++) {
            vec4 a[TR], w[TC];
            [[unroll]] for (uint r = 0u; r < TR; r++) a[r] = texelFetch(tex_u4, ub[r] + j);
            [[unroll]] for (uint c = 0u; c < TC; c++) w[c] = texelFetch(tex_v4, vb[c] + j) * p.lr_scale;
            outer(a, w, acc);
        }
    }

    // A pipeline that did not get the subgroup size it was built for would compute garbage: make that loud.
    bool bad = gl_SubgroupSize != SG;
    // No `break` here: it would keep the loop rolled and the accumulators in indexed memory.
    [[unroll]] for (uint r = 0u; r < TR; r++)
        [[unroll]] for (uint i = 0u; i < SG; i++) {
            uint m = m0 + r * SG + i;
            [[unroll]] for (uint c = 0u; c < TC; c++) {
                uint n = n0 + c * SG + lane;
                float v = bad ? uintBitsToFloat(0x7FC00000u) : acc[(r * SG + i) * TC + c];
                if (m < p.M && n < p.N) store_y(m, n, v);
            }
        }
}

#else
#error "matmul.comp: define MM_TEXEL, MM_REGTILE or MM_TILED"
#endif
