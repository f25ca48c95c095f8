#version 450
// fp32 GEMM with one narrow side, for CPU devices: C(m, n) = alpha * sum_k A(m, k) S(k, n) + beta * C(m, n), with
// A(m, k) = a[a_off + m*a_rs + k*a_cs] the wide operand (M rows: tokens or features), S(k, n) = b[b_off + k*b_rs +
// n*b_cs] the narrow one (N columns: the LoRA rank) and C(m, n) = c[c_off + m*c_rs + n*c_cs]. These are the LoRA
// products x·A^T, dy·B and dy^T·xa; the host swaps the operands of dxa^T·x (narrow M) into this form. The register
// tiles of gemm_f32.comp fetched each element of one operand once per 8 columns (a tile of the other side), so at
// rank 16 every lane fetched twice what it multiplied; here every fetched value serves a whole column tile, and
// S's values reach the lanes by subgroupShuffle instead of more fetches. No shared memory, no barriers.
//
// Layout (specialization constant 2): A_M, A contiguous along m (a_rs == 1; else along k, a_cs == 1); S_N, S
// contiguous along n (b_cs == 1; else along k, b_rs == 1). The host guarantees that K, the operands' offsets and
// their other strides are multiples of 4, and M too under A_M, N too under S_N. A subgroup computes SG columns.
//
// A along m (dy^T, x^T; main_m): lane l owns rows m0 + TR*l .. + TR-1, one texel holding 4 of them at one k, so a
// subgroup's fetch reads TR*SG consecutive floats of one k. Per step of 4 k the SG lanes also fetch the 4 x SG block
// of S, one texel each, and each S value is broadcast to every lane (subgroupShuffle at a constant lane index),
// where it serves TR rows.
// A along k (x, dy; main_k): see there.
//
// -DDROPOUT (gemm_skinny_drop): LoRA dropout on A, each element's mask drawn as it is fetched (see drop4).
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint SG = 16u; // the pipeline's subgroup size (the host requests or knows it)
layout(constant_id = 2) const uint LAYOUT = 0u;
#define A_M 1u // = VKL_GEMM_SKINNY_A_M
#define S_N 2u // = VKL_GEMM_SKINNY_S_N
#define HAS(f) ((LAYOUT & (f)) != 0u)
#define TR 4u // A along m: rows per lane (= VKL_GEMM_SKINNY_TR)
#define G 4u  // A along k: row fetches per step (= VKL_GEMM_SKINNY_G), SG/4 rows each
// one array type for each path's accumulators and the parameters that take them
const uint NACC_M = TR * SG;
const uint NACC_K = G * SG;

// Mirrors vkl_gemm_push in src/ops/matmul_push.h (64 bytes); its pad[0] is C's column stride here.
layout(push_constant) uniform Push {
    uint M, N, K;
    uint a_off, a_rs, a_cs;
    uint b_off, b_rs, b_cs;
    uint c_off, c_rs;
    uint flags;
    float alpha, beta;
    uint c_cs, pad1;
#ifdef DROPOUT
    // Mirrors the tail of vkl_gemm_drop_push: inverted dropout on A, the wide operand (the LoRA input x in x·A^T and,
    // transposed, in dxa^T·x); A(m, k) keeps with counter d_base + m*d_sm + k*d_sk (d_mode is unused here).
    uint d_key, d_mode, d_base, d_sm, d_sk;
    float d_p, d_scale, d_pad;
#endif
} p;
#define FLAG_ACC 2u

layout(binding = 0) uniform samplerBuffer tex_a4; // RGBA32F views: 4 floats a fetch
layout(binding = 1) uniform samplerBuffer tex_b4;
layout(std430, binding = 2) buffer C { float data_c[]; };

#include "common/grid.glsl"
#ifdef DROPOUT
#include "common/rng.glsl"
// A's elements (m, k .. k+3) with their dropout masks applied: each element is drawn once per dispatch (gemm_f32
// drew it once per 8 columns), since every fetched value serves all SG columns.
vec4 drop4(vec4 v, uint m, uint k) {
    uint c = p.d_base + m * p.d_sm + k * p.d_sk;
    [[unroll]] for (uint i = 0u; i < 4u; i++) v[i] *= rng_uniform(p.d_key, c + i * p.d_sk) >= p.d_p ? p.d_scale : 0.0;
    return v;
}
#define DROP4(v, m, k) drop4(v, m, k)
#else
#define DROP4(v, m, k) (v)
#endif

void store_c(uint m, uint col, float sum) {
    if (m < p.M && col < p.N) {
        uint ci = p.c_off + m * p.c_rs + col * p.c_cs;
        // A pipeline that did not get the subgroup size it was built for would compute garbage: make that loud.
        float v = gl_SubgroupSize != SG ? uintBitsToFloat(0x7FC00000u) : p.alpha * sum;
        // beta == 0 must not read C: it may hold garbage (NaN) that 0*NaN would propagate.
        if ((p.flags & FLAG_ACC) != 0u) v += p.beta * data_c[ci];
        data_c[ci] = v;
    }
}

// ---- A along m ----

// This lane's TR rows (from m) at 4 k (k + 4q ..) from texel ab[g] (one per group of 4 rows) into a[q*TR ..] (step
// q of 4).
void fetch_m(const int ab[TR / 4u], uint m, uint k, uint q, inout vec4 a[4u * TR]) {
    [[unroll]] for (uint g = 0u; g < TR / 4u; g++) {
        vec4 v[4];
        [[unroll]] for (uint kk = 0u; kk < 4u; kk++)
            v[kk] = texelFetch(tex_a4, ab[g] + int((4u * q + kk) * p.a_cs / 4u));
        [[unroll]] for (uint c = 0u; c < 4u; c++)
            a[q * TR + 4u * g + c] = DROP4(vec4(v[0][c], v[1][c], v[2][c], v[3][c]), m + 4u * g + c, k + 4u * q);
    }
}

// Step q of 4 k (rows a[q*TR ..]): this lane's texel s of the S block broadcast column by column into the outputs.
void step_m(const vec4 a[4u * TR], uint q, vec4 s, inout float acc[NACC_M]) {
    [[unroll]] for (uint n = 0u; n < SG; n++) {
        vec4 b;
        if (HAS(S_N)) {
            // lane l holds row k + l / (SG/4), columns 4 (l % (SG/4)) ..
            uint r = SG / 4u, c = n % 4u, l = n / 4u;
            b = vec4(subgroupShuffle(s[c], l), subgroupShuffle(s[c], r + l), subgroupShuffle(s[c], 2u * r + l),
                     subgroupShuffle(s[c], 3u * r + l));
        } else {
            b = subgroupShuffle(s, n); // lane l holds column l
        }
        [[unroll]] for (uint r = 0u; r < TR; r++) acc[r * SG + n] += dot(a[q * TR + r], b);
    }
}

void main_m(uint t, uint tiles_m) {
    uint lane = gl_SubgroupInvocationID;
    uint m0 = (t % tiles_m) * (TR * SG) + TR * lane, n0 = (t / tiles_m) * SG;
    // Texel addresses. Rows and columns past M and N are clamped for loading (every lane takes part in the
    // shuffles) and skipped at the store; M % 4 == 0, so a group of 4 rows lies wholly inside or past M.
    int ab[TR / 4u];
    [[unroll]] for (uint g = 0u; g < TR / 4u; g++) ab[g] = int((p.a_off + min(m0 + 4u * g, p.M - 4u)) / 4u);
    int sb, sstep;
    if (HAS(S_N)) {
        uint kk = lane / (SG / 4u), cg = min(n0 + 4u * (lane % (SG / 4u)), p.N - 4u);
        sb = int((p.b_off + kk * p.b_rs + cg) / 4u);
        sstep = int(p.b_rs); // 4 k
    } else {
        sb = int((p.b_off + min(n0 + lane, p.N - 1u) * p.b_cs) / 4u);
        sstep = 1;
    }
    float acc[NACC_M];
    [[unroll]] for (uint j = 0u; j < NACC_M; j++) acc[j] = 0.0;
    // 4 steps (16 k) an iteration, then single steps
    uint k = 0u;
    for (; k + 16u <= p.K; k += 16u) {
        vec4 a[4u * TR], s[4];
        [[unroll]] for (uint q = 0u; q < 4u; q++) fetch_m(ab, m0, k, q, a);
        [[unroll]] for (uint q = 0u; q < 4u; q++) s[q] = texelFetch(tex_b4, sb + int(q) * sstep);
        [[unroll]] for (uint q = 0u; q < 4u; q++) step_m(a, q, s[q], acc);
        [[unroll]] for (uint g = 0u; g < TR / 4u; g++) ab[g] += 4 * int(p.a_cs);
        sb += 4 * sstep;
    }
    for (; k < p.K; k += 4u) {
        vec4 a[4u * TR];
        fetch_m(ab, m0, k, 0u, a);
        step_m(a, 0u, texelFetch(tex_b4, sb), acc);
        [[unroll]] for (uint g = 0u; g < TR / 4u; g++) ab[g] += int(p.a_cs);
        sb += sstep;
    }
    // No `break` here: it would keep the loop rolled and the accumulators in indexed memory.
    [[unroll]] for (uint r = 0u; r < TR; r++)
        [[unroll]] for (uint n = 0u; n < SG; n++) store_c(m0 + r, n0 + n, acc[r * SG + n]);
}

// ---- A along k ----
// Fetched a row per lane, A's rows would be TR*SG streams a multiple of 2 KiB apart (K 512, 1536, 4096 ...) whose
// lines share one or two cache sets and were evicted between the 4 steps that use each of them (perf: most samples
// on those loads). Here lanes come in groups of 4 along k: lane l = 4 rr + q fetches texel q of a 16-k line of row
// rr, so one fetch reads SG/4 rows' whole lines. G fetches give each lane G rows (m0 + g*SG/4 + rr) at its 4 k
// (4q .. of each 16); S is fetched the same way, and the value of column n that a lane needs comes from the lane of
// its position q that fetched n (a shuffle whose source differs per lane but is fixed once unrolled). Each lane sums
// its quarter of k; the quarters are added across lanes at the end.

// One step of 16 k from texel kt along k into acc (this lane's rows from m, m + RQ ..); tail: the lanes not in_k add
// zeros.
void step_k(const int ab[G], const int sb[4], uint m, int kt, bool tail, bool in_k, inout float acc[NACC_K]) {
    uint lane = gl_SubgroupInvocationID, q = lane % 4u, RQ = SG / 4u;
    vec4 a[G], t[4];
    [[unroll]] for (uint g = 0u; g < G; g++)
        a[g] = DROP4(texelFetch(tex_a4, ab[g] + kt), m + g * RQ, 4u * (uint(kt) + q));
    // S along k: t[j] = S(this lane's 4 k, column n0 + j*RQ + rr); along n: S(row 4q + j, columns n0 + 4rr ..)
    [[unroll]] for (uint j = 0u; j < 4u; j++) t[j] = texelFetch(tex_b4, sb[j] + (HAS(S_N) ? kt * int(p.b_rs) : kt));
    if (tail) {
        [[unroll]] for (uint g = 0u; g < G; g++) a[g] = in_k ? a[g] : vec4(0.0);
        [[unroll]] for (uint j = 0u; j < 4u; j++) t[j] = in_k ? t[j] : vec4(0.0);
    }
    [[unroll]] for (uint n = 0u; n < SG; n++) {
        vec4 b;
        if (HAS(S_N)) {
            uint src = (n / 4u) * 4u + q, c = n % 4u;
            b = vec4(subgroupShuffle(t[0][c], src), subgroupShuffle(t[1][c], src), subgroupShuffle(t[2][c], src),
                     subgroupShuffle(t[3][c], src));
        } else {
            b = subgroupShuffle(t[n / RQ], (n % RQ) * 4u + q);
        }
        [[unroll]] for (uint g = 0u; g < G; g++) acc[g * SG + n] += dot(a[g], b);
    }
}

void main_k(uint t, uint tiles_m) {
    uint lane = gl_SubgroupInvocationID, q = lane % 4u, rr = lane / 4u, RQ = SG / 4u;
    uint m0 = (t % tiles_m) * (G * RQ), n0 = (t / tiles_m) * SG;
    int ab[G], sb[4];
    [[unroll]] for (uint g = 0u; g < G; g++) ab[g] = int((p.a_off + min(m0 + g * RQ + rr, p.M - 1u) * p.a_rs) / 4u + q);
    [[unroll]] for (uint j = 0u; j < 4u; j++) {
        if (HAS(S_N)) // rows 4q + j of each 16 k, columns n0 + 4rr .. (N % 4 == 0)
            sb[j] = int((p.b_off + (4u * q + j) * p.b_rs + min(n0 + 4u * rr, p.N - 4u)) / 4u);
        else
            sb[j] = int((p.b_off + min(n0 + j * RQ + rr, p.N - 1u) * p.b_cs) / 4u + q);
    }
    float acc[NACC_K];
    [[unroll]] for (uint j = 0u; j < NACC_K; j++) acc[j] = 0.0;
    // kt counts texels (4 k) along k; S along n is stepped by rows of 4 k (b_rs apart) in step_k
    int K4 = int(p.K / 4u), kt = 0;
    for (; kt + 4 <= K4; kt += 4) step_k(ab, sb, m0 + rr, kt, false, true, acc);
    if (kt < K4) {
        // the last 4-12 k: lanes past K fetch the rows' last texel instead (every fetch stays inside the views)
        // and add zeros
        bool in_k = kt + int(q) < K4;
        step_k(ab, sb, m0 + rr, in_k ? kt : K4 - 1 - int(q), true, in_k, acc);
    }
    // The quarters of k: two levels of halving (lane bit 0, then bit 1), each lane keeping one of each pair and
    // sending the other, leave in lane l the whole sum of output 4i + q (i < G*SG/4): 3/4 of the shuffles of
    // reducing every output on every lane.
    float v[NACC_K / 2u];
    bool up1 = (q & 1u) != 0u, up2 = (q & 2u) != 0u;
    [[unroll]] for (uint i = 0u; i < NACC_K / 2u; i++) {
        float keep = up1 ? acc[2u * i + 1u] : acc[2u * i], send = up1 ? acc[2u * i] : acc[2u * i + 1u];
        v[i] = keep + subgroupShuffleXor(send, 1u);
    }
    [[unroll]] for (uint i = 0u; i < NACC_K / 4u; i++) {
        float keep = up2 ? v[2u * i + 1u] : v[2u * i], send = up2 ? v[2u * i] : v[2u * i + 1u];
        uint o = 4u * i + q;
        store_c(m0 + (o / SG) * RQ + rr, n0 + o % SG, keep + subgroupShuffleXor(send, 2u));
    }
}

void main() {
    uint rows = HAS(A_M) ? TR * SG : G * (SG / 4u);
    uint tiles_m = (p.M + rows - 1u) / rows;
    uint tiles = tiles_m * ((p.N + SG - 1u) / SG);
    uint t = wg_linear() * (gl_WorkGroupSize.x / SG) + gl_SubgroupID;
    if (t >= tiles) return; // t is the same on every lane: whole subgroups leave, the shuffles stay complete
    if (HAS(A_M)) main_m(t, tiles_m);
    else main_k(t, tiles_m);
}
