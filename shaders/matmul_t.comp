#version 450
// The transposed weight product of the backward: dx[m, k] (+)= sum_n dy[m, n] * W[n, k], W a GGUF weight
// (-DDATA_A_<TYPE>) read column-wise: each invocation owns TM rows x TK consecutive k, decoding per weight row n
// TK/4 vec4s of codes and one affine map shared by all its rows (TK divides DQ_DM_RUN). -DMMT_TEXEL builds the
// variant for CPU devices: subgroup outer products fed by texel buffers (see matmul.comp's MM_TEXEL); -DMMT_TILED
// the shared-memory tiles for GPUs without cooperative matrices.
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if defined(MMT_TEXEL)
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

layout(local_size_x_id = 0) in;

// Mirrors vkl_matmul_t_push in src/ops/matmul_push.h (72 bytes).
layout(push_constant) uniform Push {
    uint M, N, K;
    uint w_byte_off;
    uint dy_off;
    uint dy_stride;
    uint dx_off;
    uint flags;
    uint lr_r, u_off, v_off; // FLAG_LOWRANK: rank (a multiple of 4), first texel of u's and of v's rows
    float lr_scale;
    // FLAG_LR_DROP (texel): the LoRA dropout mask on the low-rank term, element (m, k) of this dispatch drawing
    // counter d_base + m*d_si + k*d_sj of stream d_key (kept: d_scale, else 0)
    uint d_key, d_base, d_si, d_sj;
    float d_p, d_scale;
} p;

#define FLAG_ACC 2u
#define FLAG_DY_VEC4 4u // texel variant: dy is bound as RGBA32F (N % 4 == 0, 16-byte aligned rows)
#define FLAG_LOWRANK 8u // texel: dx += lr_scale * u·v (the LoRA branch, u = dxa, v = A) before the store
#define FLAG_PREFETCH 16u // texel, Q5_K/Q6_K, FEAT only: touch the weight rows ahead (MMT_PREFETCH)
#define FLAG_LR_DROP 32u // texel: the low-rank term is masked by LoRA dropout (a FEAT bit only, see above)
#define FLAG_NEVER 0x80000000u // never set by the host (see MMT_PREFETCH)
#if defined(MMT_TEXEL)
// As in matmul.comp: the texel kernel (CPU devices, where both sides of a uniform branch run) takes FLAG_ACC and
// FLAG_DY_VEC4 from a specialization constant the host sets to the push flags' values (and FLAG_PREFETCH).
layout(constant_id = 2) const uint FEAT = 0u;
#define HAS_FLAG(f) ((FEAT & (f)) != 0u)
#else
#define HAS_FLAG(f) ((p.flags & (f)) != 0u)
#endif

#if defined(MMT_TEXEL)
// Texel fetches are vector gathers on CPU devices (storage loads at computed addresses are per-lane loops), and a
// fetch costs about the same at any width (see matmul.comp).
#if defined(DATA_A_F32)
layout(binding = 0) uniform samplerBuffer tex_w4; // RGBA32F: K % 4 == 0, rows 16-byte aligned
#define A_WORD(i) floatBitsToUint(texelFetch(tex_w4, int((i) >> 2u))[(i) & 3u])
#else
layout(binding = 0) uniform usamplerBuffer tex_w;
#if (defined(DATA_A_F16) || defined(DATA_A_BF16)) && defined(MMT_WIDE_H)
// RGBA32UI (K % 8 == 0, the weight 16-byte aligned): a lane's 8 consecutive halves of a row in one fetch
#define A_WORD(i) texelFetch(tex_w, int((i) >> 2u))[(i) & 3u]
#elif defined(DATA_A_F16) || defined(DATA_A_BF16)
#define A_WORD(i) texelFetch(tex_w, int(i)).x // R32UI words
#else
// The quantized types as RGBA32UI texels (16 bytes a fetch): Q4_K/Q5_K blocks are 16-byte aligned (MMT_WIDE_K);
// Q8_0/Q4_0/Q6_K blocks only 2-byte aligned, so a lane's 16 code bytes are cut out of the two texels that cover them
// (MMT_WIDE_U, common/span.glsl).
#define A_WORD(i) texelFetch(tex_w, int((i) >> 2u))[(i) & 3u]
#if defined(DATA_A_Q4_K) || defined(DATA_A_Q5_K)
#define MMT_WIDE_K 1
#else
#define MMT_WIDE_U 1
#include "common/span.glsl"
#endif
#endif
#endif
layout(binding = 1) uniform samplerBuffer tex_dy; // R32F
// The low-rank term (FLAG_LOWRANK) as RGBA32F texels: u rows of lr_r floats, v rows of K; bound to dy's buffer
// when unused.
layout(binding = 3) uniform samplerBuffer tex_u4;
layout(binding = 4) uniform samplerBuffer tex_v4;
#else
layout(std430, binding = 0) readonly buffer A { uint data_a[]; };
layout(std430, binding = 1) readonly buffer DY { float data_dy[]; };
#define A_WORD(i) data_a[i]
#endif
layout(std430, binding = 2) buffer DX { float data_dx[]; };

#define A_BYTE_OFFSET p.w_byte_off
#include "common/quant.glsl"
#if defined(MMT_TEXEL)
#include "common/grid.glsl"
#include "common/rng.glsl"
#endif

void store_dx(uint m, uint k, float v) {
    uint i = p.dx_off + m * p.K + k;
    if (HAS_FLAG(FLAG_ACC)) v += data_dx[i];
    data_dx[i] = v;
}

#if defined(MMT_TEXEL)
// One subgroup of SG lanes computes TR*SG rows of dx by SG*4*TQ consecutive k. Per weight row n, lane l fetches
// dy[m0 + r*SG + l, n] and decodes 4*TQ consecutive weights W[n, kl..] (one affine map: 4*TQ divides
// DQ_DM_RUN), then takes every dy value from its owner with subgroupShuffle at a constant lane index. SG is
// the pipeline's subgroup size (specialization constant 1); the workgroup is a whole number of subgroups.
layout(constant_id = 1) const uint SG = 8u;
#if defined(DATA_A_F32)
// f32 weight rows carry half the k of a bf16 row per byte: 32 dx rows share each one's stream from memory (alternating
// runs: 0.80-0.93x the time of 16 rows at the step's shapes, 2048 x {1536, 512} x {512, 1536}, and 0.71-0.97x at
// 512 x 4096 x 4096; bf16 gained nothing from it)
#define TILE_M 32u // (= VKL_MMT_TEXEL_ROWS_F32)
#else
#define TILE_M 16u // dx rows per subgroup tile (= VKL_MMT_TEXEL_ROWS) when SG <= 16
#endif
#if defined(DATA_A_Q4_K)
#define TQ 4u // vec4 of k per lane (= VKL_MMT_TEXEL_TQ_WIDE): 16 codes, one texel's worth of a sub-block
#elif defined(MMT_WIDE_K) || defined(MMT_WIDE_U)
// vec4 of k per lane (= VKL_MMT_TEXEL_TQ_32): Q5_K a whole sub-block, two texels of codes and two of high bits;
// Q6_K a pair of runs, from three texels of low bits, three of high bits and two of scales and d (against five to
// six texels per run of 16); Q8_0 and Q4_0 a whole block, from the three (two) texels that cover it (against three
// per 16 k). Measured on lavapipe (LLVM 15), 512x4096x4096, against 16 k per lane: 0.5x the time for Q5_K,
// 0.86-0.93x for Q6_K, 0.80-0.84x for Q8_0, 0.92-1.0x for Q4_0; 1.1x for Q4_K, which keeps 16.
#define TQ 8u
#else
#define TQ 2u // vec4 of k per lane (= VKL_MMT_TEXEL_TQ); MMT_WIDE_H reads them as one texel of 8 halves
#endif
const uint TR = SG >= TILE_M ? 1u : TILE_M / SG;
const uint NACC = TR * SG * TQ;

// This lane's 4*TQ consecutive weights of row n, from k = kl (clamped inside the row; see main).
uint kq[TQ];
uint nbpr, ibk, iq;
#if defined(MMT_WIDE_K)
uint wsub, whalf; // this lane's sub-block and, with 16 k per lane, which 16 of its 32 codes
#endif

#if defined(DATA_A_Q5_K) || defined(DATA_A_Q6_K)
// FLAG_PREFETCH: touching the weight rows PF_AHEAD ahead (in the dy-as-vec4 loop, N % 4 == 0 as in training). A
// tile reads SG*32 k (SG/8 blocks) of every weight row, and the Q5_K/Q6_K decode fetches a row's lines a few at a
// time, in texel fetches that each cover only one or two of them, so a weight that does not stay in cache is read at
// one miss's latency after another. One fetch per lane and line, every 4 rows, brings the lines in before their turn.
// Alternating runs on lavapipe (2 cores, 1 MiB L2 each): 512x14336x4096 (a 48 MB Q6_K weight) ran at 0.65-0.8x the
// speed of 512x4096x4096 without it and ~1.25x faster with it (Q5_K ~1.15x; 16 rows ahead gained less); a 0.6 MB
// weight lost ~4 % and rows of 11.8 KB (K 14336) ~5 %, so the host asks for it only past VKL_MMT_PREFETCH_BYTES, on
// rows of VKL_MMT_PREFETCH_ROW_BYTES or less. The fetched words feed `pf_sink`, tested against FLAG_NEVER at the
// end, so that no compiler drops the loads.
#define MMT_PREFETCH 1
#define PF_AHEAD 8u
// 64-byte lines a row's span (the tile's SG*4*TQ k) can touch
const uint PF_LINES = (SG * 4u * TQ * BLOCK_BYTES / BLOCK_SIZE + 63u) / 64u + 1u;
const uint PF_FETCHES = (4u * PF_LINES + SG - 1u) / SG;           // per lane, for 4 rows
uint pf_sink = 0u;

void prefetch_rows(uint n, uint lane, uint k0) {
    [[unroll]] for (uint c = 0u; c < PF_FETCHES; c++) {
        uint i = c * SG + lane;
        uint row = min(n + PF_AHEAD + min(i / PF_LINES, 3u), p.N - 1u);
        uint a = ((p.w_byte_off + (row * nbpr + k0 / BLOCK_SIZE) * BLOCK_BYTES) & ~63u) + 64u * (i % PF_LINES);
        uint last = (p.w_byte_off + p.N * nbpr * BLOCK_BYTES) / 16u - 1u; // the weight's last texel
        pf_sink ^= texelFetch(tex_w, int(min(a / 16u, last))).x;
    }
}
#endif
void w_row(uint n, out vec4 w[TQ]) {
#if defined(MMT_WIDE_K)
    // The block head gives the affine map (dequant_head_dm), one texel per 16 codes (low nibbles for an even
    // sub-block, high for an odd one) and, for Q5_K, one more per 16 their high bits.
    int t = int(p.w_byte_off / 16u + (n * nbpr + ibk) * (BLOCK_BYTES / 16u));
    vec2 dm = dequant_head_dm(texelFetch(tex_w, t), wsub);
    uvec4 q[TQ / 4u];
    [[unroll]] for (uint x = 0u; x < TQ / 4u; x++) q[x] = texelFetch(tex_w, t + int(DQ_QS_OFF / 16u + (wsub / 2u) * 2u + whalf + x));
#if defined(DATA_A_Q5_K)
    uvec4 h[TQ / 4u];
    [[unroll]] for (uint x = 0u; x < TQ / 4u; x++) h[x] = texelFetch(tex_w, t + int(DQ_QH_OFF / 16u + whalf + x));
#endif
    [[unroll]] for (uint j = 0u; j < TQ; j++) {
        uint cw = (q[j / 4u][j % 4u] >> (4u * (wsub & 1u))) & 0x0F0F0F0Fu;
#if defined(DATA_A_Q5_K)
        cw |= ((h[j / 4u][j % 4u] >> wsub) & 0x01010101u) << 4;
#endif
        w[j] = qa_bytes4(cw) * dm.x + dm.y;
    }
#elif defined(MMT_WIDE_U)
    // The lane's 32 consecutive k (a Q8_0/Q4_0 block, a pair of Q6_K runs), decoded as in quant.glsl.
    uint a = p.w_byte_off + (n * nbpr + ibk) * BLOCK_BYTES;
#if defined(DATA_A_Q8_0) || defined(DATA_A_Q4_0)
    // the lane's whole block (iq == 0): d, then the codes 2 bytes in, cut out of the texels that cover it
    uint o = a & 15u, wd[SPAN_NW];
#if defined(DATA_A_Q8_0)
    span_fetch(int(a >> 4u), 3u, wd); // 34 bytes from an even o <= 14
#else
    span_fetch(int(a >> 4u), 2u, wd); // 18 bytes
#endif
    float d = unpackHalf2x16(span_word(wd, o, 0u)).x;
    uvec4 q0 = span_words4(wd, o + 2u, 0u);
#if defined(DATA_A_Q8_0)
    uvec4 q1 = span_words4(wd, o + 2u, 4u);
    [[unroll]] for (uint j = 0u; j < TQ; j++) w[j] = qa_sbytes4((j < 4u ? q0 : q1)[j & 3u]) * d;
#else
    // element j (< 16) in the low nibble of code byte j, element 16 + j in its high nibble
    [[unroll]] for (uint j = 0u; j < TQ; j++) w[j] = (qa_bytes4((q0[j & 3u] >> (4u * (j >> 2u))) & 0x0F0F0F0Fu) - 8.0) * d;
#endif
#else
    // Q6_K: this lane's 32 k (iq a multiple of 32) are the runs iq/16 and iq/16 + 1, their codes' low bits at
    // ql[64h + 32(k&1) ..] (nibble k >> 1) and high bits at qh[32h ..] (bit pair k); the texels fetched cover each
    // 32-byte run at any even offset o of the block.
    uint h = iq / 128u, k = (iq / 32u) & 3u, o = a & 15u, run = iq / 16u;
    int tb = int(a >> 4u);
    uint wd[SPAN_NW];
    span_fetch(tb + 12, 2u, wd); // bytes 192..209: scales[16], d
    uvec4 sc = span_words4(wd, o, 0u);
    float d = unpackHalf2x16(span_word(wd, o, 4u)).x;
    float dd0 = d * float(bitfieldExtract(int(sc[run >> 2u]), int(8u * (run & 3u)), 8));
    float dd1 = d * float(bitfieldExtract(int(sc[(run + 1u) >> 2u]), int(8u * ((run + 1u) & 3u)), 8));
    span_fetch(tb + int(4u * h + 2u * (k & 1u)), 3u, wd);
    uvec4 l0 = span_words4(wd, o, 0u), l1 = span_words4(wd, o, 4u);
    span_fetch(tb + int(8u + 2u * h), 3u, wd);
    uvec4 h0 = span_words4(wd, o, 0u), h1 = span_words4(wd, o, 4u);
    [[unroll]] for (uint j = 0u; j < TQ; j++) {
        uint lw = (j < 4u ? l0 : l1)[j & 3u], hw = (j < 4u ? h0 : h1)[j & 3u];
        w[j] = (qa_bytes4(((lw >> (4u * (k >> 1u))) & 0x0F0F0F0Fu) | (((hw >> (2u * k)) & 0x03030303u) << 4)) - 32.0) *
               (j < 4u ? dd0 : dd1);
    }
#endif
#elif defined(DATA_A_F32)
    [[unroll]] for (uint q = 0u; q < TQ; q++) w[q] = texelFetch(tex_w4, int(p.w_byte_off / 16u + (n * p.K + kq[q]) / 4u));
#elif defined(MMT_WIDE_H)
    // kq[0] is this lane's first k, clamped to K - 8 (see main): the 8 halves of one texel
    uvec4 q = texelFetch(tex_w, int(p.w_byte_off / 16u + (n * p.K + kq[0]) / 8u));
    w[0] = vec4(qa_half2(q.x), qa_half2(q.y));
    w[1] = vec4(qa_half2(q.z), qa_half2(q.w));
#else // F16, BF16
    [[unroll]] for (uint q = 0u; q < TQ; q++) w[q] = dequant_codes4(n * p.K + kq[q], 0u);
#endif
}

// Row group r: d is this lane's dy value; every lane's value reaches every lane by shuffles.
void row_products(float d, uint r, const vec4 w[TQ], inout vec4 acc[NACC]) {
    [[unroll]] for (uint i = 0u; i < SG; i++) {
        float di = subgroupShuffle(d, i);
        [[unroll]] for (uint q = 0u; q < TQ; q++) acc[(r * SG + i) * TQ + q] += di * w[q];
    }
}

void main() {
    uint lane = gl_SubgroupInvocationID;
    uint kt = SG * 4u * TQ;
    uint tiles_m = (p.M + TR * SG - 1u) / (TR * SG);
    uint tiles = tiles_m * ((p.K + kt - 1u) / kt);
    uint t = wg_linear() * (gl_WorkGroupSize.x / SG) + gl_SubgroupID;
    if (t >= tiles) return; // t is the same on every lane: whole subgroups leave, the shuffles stay complete
    // dy rows play x's part, weight columns the weight panels'
    uvec2 tile = grouped_tile(t, tiles_m, tiles / tiles_m, TR * SG * p.N);
    uint m0 = tile.x * (TR * SG), k0 = tile.y * kt;
    uint kl = k0 + lane * 4u * TQ;
    // Lanes past M or K load clamped rows/columns (they must take part in the shuffles); the store skips them.
    int dyb[TR];
    [[unroll]] for (uint r = 0u; r < TR; r++) dyb[r] = int(p.dy_off + min(m0 + r * SG + lane, p.M - 1u) * p.dy_stride);
    vec4 acc[NACC];
    [[unroll]] for (uint j = 0u; j < NACC; j++) acc[j] = vec4(0.0);
#if defined(MMT_WIDE_H)
    // K % 8 == 0: a lane's 8 k (TQ = 2) lie inside the row or wholly past it
    kq[0] = min(kl, p.K - 8u);
#elif DQ_IS_SCALAR
    // K % 4 == 0: every vec4 lies inside the row
    [[unroll]] for (uint q = 0u; q < TQ; q++) kq[q] = min(kl + 4u * q, p.K - 4u);
#else
    // K is a multiple of the block size, so K - 4*TQ is a valid, run-aligned start.
    uint klc = min(kl, p.K - 4u * TQ);
    nbpr = p.K / BLOCK_SIZE;
    ibk = klc / BLOCK_SIZE;
    iq = klc % BLOCK_SIZE;
#if defined(MMT_WIDE_K)
    wsub = iq / 32u;
    whalf = (iq % 32u) / 16u;
#endif
#endif
    // The LoRA branch's dx += dxa·A is the same product over lr_r more weight rows: u = dxa (this lane's dy rows), v
    // = A (rows of K floats, K % 4 == 0), 4 rows a step as below. In the same accumulators it costs no store of its
    // own; taken first, before the weight rows, it can be masked alone (LoRA dropout on x: dx's LoRA part is
    // mask * dxa·A), one Philox draw per element against the N multiply-adds the weight rows add to it.
    if ((p.flags & FLAG_LOWRANK) != 0u) {
        int R4 = int(p.lr_r / 4u), K4 = int(p.K / 4u);
        int ub[TR], vq[TQ];
        [[unroll]] for (uint r = 0u; r < TR; r++) ub[r] = int(p.u_off) + int(min(m0 + r * SG + lane, p.M - 1u)) * R4;
        // clamped inside the row, each vec4 on its own: the store skips k >= K
        [[unroll]] for (uint q = 0u; q < TQ; q++) vq[q] = int(p.v_off) + int(min(kl + 4u * q, p.K - 4u) / 4u);
        for (int j = 0; j < R4; j++) {
            vec4 d[TR];
            [[unroll]] for (uint r = 0u; r < TR; r++) d[r] = texelFetch(tex_u4, ub[r] + j) * p.lr_scale;
            vec4 w0[TQ], w1[TQ], w2[TQ], w3[TQ];
            [[unroll]] for (uint q = 0u; q < TQ; q++) {
                int t = vq[q] + 4 * j * K4;
                w0[q] = texelFetch(tex_v4, t);
                w1[q] = texelFetch(tex_v4, t + K4);
                w2[q] = texelFetch(tex_v4, t + 2 * K4);
                w3[q] = texelFetch(tex_v4, t + 3 * K4);
            }
            [[unroll]] for (uint r = 0u; r < TR; r++)
                [[unroll]] for (uint i = 0u; i < SG; i++) {
                    vec4 di = subgroupShuffle(d[r], i);
                    [[unroll]] for (uint q = 0u; q < TQ; q++)
                        acc[(r * SG + i) * TQ + q] += di.x * w0[q] + di.y * w1[q] + di.z * w2[q] + di.w * w3[q];
                }
        }
    }
    if (HAS_FLAG(FLAG_LR_DROP)) {
        // The draws in loops kept rolled (unrolled, a Philox per element made each pipeline take minutes to compile),
        // 32 into the bits of a word, each word stored once into keep (an indexed store costs a per-lane loop), then
        // applied at constant indices. Element f (4 acc index + component) is row f / (4 TQ) of the tile, column
        // kl + f % (4 TQ).
        uint keep[NACC / 8u];
        [[dont_unroll]] for (uint w = 0u; w < NACC / 8u; w++) {
            uint bits = 0u;
            [[dont_unroll]] for (uint b = 0u; b < 32u; b += 4u) {
                // 4 columns of one row (4 TQ is a multiple of 4)
                uint f = 32u * w + b;
                uint c = p.d_base + (m0 + f / (4u * TQ)) * p.d_si + (kl + f % (4u * TQ)) * p.d_sj;
                [[unroll]] for (uint e = 0u; e < 4u; e++)
                    bits |= rng_uniform(p.d_key, c + e * p.d_sj) >= p.d_p ? 1u << (b + e) : 0u;
            }
            keep[w] = bits;
        }
        [[unroll]] for (uint j = 0u; j < NACC; j++)
            [[unroll]] for (uint e = 0u; e < 4u; e++)
                acc[j][e] *= (keep[j / 8u] & (1u << (4u * (j % 8u) + e))) != 0u ? p.d_scale : 0.0;
    }
    if (HAS_FLAG(FLAG_DY_VEC4)) {
        // dy bound as RGBA32F (N % 4 == 0, rows 16-byte aligned): one gather brings 4 weight rows' worth.
        for (uint n = 0u; n < p.N; n += 4u) {
            vec4 d[TR];
            [[unroll]] for (uint r = 0u; r < TR; r++) d[r] = texelFetch(tex_dy, (dyb[r] + int(n)) >> 2);
            // The 4 rows' products are summed before they touch an accumulator: the accumulators do not fit the
            // registers, so each update is a load and a store on CPU devices, amortised here over 4 multiply-adds.
#if defined(MMT_PREFETCH)
            if (HAS_FLAG(FLAG_PREFETCH)) prefetch_rows(n, lane, k0);
#endif
            vec4 w0[TQ], w1[TQ], w2[TQ], w3[TQ];
            w_row(n, w0);
            w_row(n + 1u, w1);
            w_row(n + 2u, w2);
            w_row(n + 3u, w3);
            [[unroll]] for (uint r = 0u; r < TR; r++)
                [[unroll]] for (uint i = 0u; i < SG; i++) {
                    vec4 di = subgroupShuffle(d[r], i);
                    [[unroll]] for (uint q = 0u; q < TQ; q++)
                        acc[(r * SG + i) * TQ + q] += di.x * w0[q] + di.y * w1[q] + di.z * w2[q] + di.w * w3[q];
                }
        }
    } else {
        for (uint n = 0u; n < p.N; n++) {
            vec4 w[TQ];
            w_row(n, w);
            [[unroll]] for (uint r = 0u; r < TR; r++) row_products(texelFetch(tex_dy, dyb[r] + int(n)).x, r, w, acc);
        }
    }
    // A pipeline that did not get the subgroup size it was built for would compute garbage: make that loud.
    bool bad = gl_SubgroupSize != SG;
#if defined(MMT_PREFETCH)
    bad = bad || (pf_sink == 0x9E3779B9u && (p.flags & FLAG_NEVER) != 0u);
#endif
    // No `break` here: it would keep the loop rolled and the accumulators in indexed memory.
    [[unroll]] for (uint r = 0u; r < TR; r++)
        [[unroll]] for (uint i = 0u; i < SG; i++) {
            uint m = m0 + r * SG + i;
            [[unroll]] for (uint q = 0u; q < TQ; q++)
                [[unroll]] for (uint c = 0u; c < 4u; c++) {
                    uint k = kl + 4u * q + c;
                    float v = bad ? uintBitsToFloat(0x7FC00000u) : acc[(r * SG + i) * TQ + q][c];
                    if (m < p.M && k < p.K) store_dx(m, k, v);
                }
        }
}

#elif defined(MMT_TILED)
// Shared-memory tiles for GPUs without cooperative matrices: a workgroup of 128 invocations computes BM dx rows by
// BK consecutive k. Per step of BR weight rows it stages the BM x BR panel of dy and decodes the BR x BK panel of W
// into shared memory (each weight block decoded once per workgroup, not once per invocation), then invocation
// (tx, ty) accumulates rows ty + 8i by columns tx + 16j from registers (neighbours read neighbouring banks and store
// neighbouring dx elements).
#define BM 64u // = VKL_MMT_TILED_BM
#define BK 64u // = VKL_MMT_TILED_BK
#define BR 16u
#define TM 8u
#define TK 4u
#define WG 128u // = VKL_MMT_TILED_WG
#define SDS (BM + 1u) // padded: the transposing stores of dy hit distinct banks
shared float sdy[BR * SDS]; // sdy[n][m]
shared float sw[BR * BK];   // sw[n][k]

// Four decoded weights of row n from column k; zeros past K (K is a multiple of 4 for the block types, and a
// block never ends inside a vec4).
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
    uint tid = gl_LocalInvocationID.x;
    uint tx = tid % 16u, ty = tid / 16u;
    uint mb = gl_WorkGroupID.y * BM, kb = gl_WorkGroupID.x * BK;
    float acc[TM][TK];
    [[unroll]] for (uint i = 0u; i < TM; i++)
        [[unroll]] for (uint j = 0u; j < TK; j++) acc[i][j] = 0.0;
    for (uint n0 = 0u; n0 < p.N; n0 += BR) {
        // dy: 16 neighbouring invocations read 16 neighbouring n of one row; zeros past M and N.
        [[dont_unroll]] for (uint q = 0u; q < BM * BR / WG; q++) {
            uint e = tid + q * WG;
            uint r = e / BR, c = e % BR;
            uint m = mb + r, n = n0 + c;
            sdy[c * SDS + r] = m < p.M && n < p.N ? data_dy[p.dy_off + m * p.dy_stride + n] : 0.0;
        }
        // W: BR x BK/4 vec4 decodes; rows past N are zeros.
        [[dont_unroll]] for (uint q = 0u; q < BR * BK / 4u / WG; q++) {
            uint e = tid + q * WG;
            uint r = e / (BK / 4u), c = (e % (BK / 4u)) * 4u;
            vec4 v = n0 + r < p.N ? w4(n0 + r, kb + c) : vec4(0.0);
            [[unroll]] for (uint j = 0u; j < 4u; j++) sw[r * BK + c + j] = v[j];
        }
        barrier();
        [[unroll]] for (uint nn = 0u; nn < BR; nn++) {
            float a[TM], b[TK];
            [[unroll]] for (uint i = 0u; i < TM; i++) a[i] = sdy[nn * SDS + ty + 8u * i];
            [[unroll]] for (uint j = 0u; j < TK; j++) b[j] = sw[nn * BK + tx + 16u * j];
            [[unroll]] for (uint i = 0u; i < TM; i++)
                [[unroll]] for (uint j = 0u; j < TK; j++) acc[i][j] += a[i] * b[j];
        }
        barrier();
    }
    [[unroll]] for (uint i = 0u; i < TM; i++) {
        uint m = mb + ty + 8u * i;
        [[unroll]] for (uint j = 0u; j < TK; j++) {
            uint k = kb + tx + 16u * j;
            if (m < p.M && k < p.K) store_dx(m, k, acc[i][j]);
        }
    }
}

#else
#define TM 8u // = VKL_MMT_TM
#define TK 16u // = VKL_MMT_TK
#define TK4 (TK / 4u)

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
#endif
