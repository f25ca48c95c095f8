// Shared by attention[_back].comp, attention[_back]_tile.comp and attention_flash[_back].comp: the push-constant
// block (mirrors vkl_attn_push in src/ops/nn_push.h), the tensor bindings and index helpers. Scalar kernels: DMAX
// (a -D define: 64, 128 or 256) sizes the per-lane vectors, D <= DMAX is a push value, and the loops over D stay
// loops (fully unrolled guarded scalar loops took lavapipe's LLVM 10-40 s to compile per pipeline). Tile kernels
// (-DATTN_TILE): DV4 (a -D define) bounds D/4, rows are read as vec4 through RGBA32F texel views, all offsets are
// multiples of 4. Flash kernels (ATTN_FLASH): storage buffers, D padded in shared memory (common/attn_flash.glsl).
//   q, out, dout, dq: [n_seq, T, n_head, D]   k, v, dk, dv: [n_seq, S, n_head_kv, D]
//   lse: [n_seq, n_head, T]                   seg: int32 [n_seq, T]
#ifndef VKL_ATTN_GLSL
#define VKL_ATTN_GLSL

#if !defined(DMAX) && !defined(ATTN_TILE) && !defined(ATTN_FLASH)
#error "attn.glsl: define DMAX (scalar kernels), ATTN_TILE and DV4, or ATTN_FLASH (common/attn_flash.glsl)"
#endif

layout(push_constant) uniform Push {
    uint n_seq, T, S, n_head, n_head_kv, D, pos0;
    float scale;
    uint q_off, k_off, v_off, seg_off, out_off, lse_off, dout_off;
    uint dq_off, dv_off;
    uint flags;
    uint window;   // 0: no sliding window
    float softcap; // 0: scores are not capped
    uint r0, r1;   // scalar kernels: keys (forward, dq) or queries (dk/dv) [r0, r1) in this dispatch
    uint delta_off; // tile backward with HAS_DELTA: Di = dOi.Oi, lse's layout (the dq pass writes, dk/dv reads)
    uint pad1;
} p;

#define HAS_SEG 1u
#define HAS_LSE 2u
#define MERGE 4u // scalar kernels, a slice after the first: merge with out/lse (forward), dq += (dq)
#define HAS_DELTA 8u
#define FEAT_SOFTCAP 16u // tile kernels' FEAT only: the scores are soft-capped

#ifdef ATTN_TILE
// lavapipe runs both sides of a branch even when its condition is the same on every lane (it masks lanes instead
// of jumping), so the tile kernels, its kernels, take their optional features from a specialization constant set
// by the host from the same push values: the code of a feature a pipeline was not made for is gone, not masked.
layout(constant_id = 3) const uint FEAT = 0u; // HAS_SEG | HAS_DELTA | FEAT_SOFTCAP
#define USE_SEG ((FEAT & HAS_SEG) != 0u)
#define USE_DELTA ((FEAT & HAS_DELTA) != 0u)
#define USE_CAP ((FEAT & FEAT_SOFTCAP) != 0u)
#else
#define USE_SEG ((p.flags & HAS_SEG) != 0u)
#define USE_CAP (p.softcap > 0.0)
#endif

#ifdef ATTN_TILE
#extension GL_KHR_shader_subgroup_shuffle : require
layout(binding = 0) uniform samplerBuffer tq;
layout(binding = 1) uniform samplerBuffer tk;
layout(binding = 2) uniform samplerBuffer tv;

// Rows that every lane of a subgroup reads (a key/value row in the forward and dq, a query row in dk/dv) are
// fetched once per subgroup: lane l fetches texels l, l + SG, ... of the row (row_own), and each use takes
// texel d from its owner by subgroupShuffle at a constant lane (row_at; a vector broadcast once the loops
// unroll). That is ceil(D/4 / SG) gathers a lane instead of D/4. SG is the pipeline's fixed subgroup size (a
// specialization constant set by the host) and the workgroup a multiple of it, so every lane is there.
layout(constant_id = 1) const uint SG = 8u;
const uint CW = (DV4 + SG - 1u) / SG; // texels of a row each lane owns

void row_own(samplerBuffer t, int base, uint D4, out vec4 own[CW]) {
    [[unroll]] for (uint c = 0u; c < CW; c++)
        own[c] = texelFetch(t, base + int(min(c * SG + gl_SubgroupInvocationID, D4 - 1u)));
}
// Texel d of the row (d < DV4; past D4 the last texel again, as in row_own).
#define row_at(own, d) subgroupShuffle(own[(d) / SG], (d) % SG)
#else
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
#endif
layout(std430, binding = 3) readonly buffer G { int seg[]; };

const int INT_BIG = 0x7fffffff;
const float NEG_BIG = -3.402823466e38; // -FLT_MAX: exp(NEG_BIG - s) is 0 and NEG_BIG - NEG_BIG is 0, never NaN

uint q_row(uint b, uint t, uint h) { return ((b * p.T + t) * p.n_head + h) * p.D; }
uint kv_row(uint b, uint j, uint g) { return ((b * p.S + j) * p.n_head_kv + g) * p.D; }
uint lse_idx(uint b, uint h, uint t) { return p.lse_off + (b * p.n_head + h) * p.T + t; }
// First key query t of sequence b may see: its packing segment's start and, with a sliding window, its position
// minus window - 1 (key j is visible when pos0 + t - j < window).
int first_key(uint b, uint t) {
    int lo = USE_SEG ? max(seg[p.seg_off + b * p.T + t], 0) : 0;
    return p.window != 0u ? max(lo, int(p.pos0 + t) - int(p.window) + 1) : lo;
}
// Last query whose window still reaches key j (queries past it see only later keys): INT_BIG without a window.
int last_query(uint j) { return p.window != 0u ? int(j + p.window) - 1 - int(p.pos0) : INT_BIG; }

// tanh for any finite x, to about one float ulp absolute: exp(-2|x|) never overflows, and below |x| = 1/16 (where
// 1 - exp(-2|x|) would cancel) a Taylor series to x^7 (next term < 4e-13 relative).
float attn_tanh(float x) {
    float a = abs(x), t;
    if (a < 0.0625) {
        float a2 = a * a;
        t = a * (1.0 + a2 * (-1.0 / 3.0 + a2 * (2.0 / 15.0 - a2 * (17.0 / 315.0))));
    } else {
        float e = exp(-2.0 * a);
        t = (1.0 - e) / (1.0 + e);
    }
    return x < 0.0 ? -t : t;
}
// The score a softmax sees: softcap * tanh(s / softcap) when soft-capping is on, else s.
float cap_score(float s) { return USE_CAP ? p.softcap * attn_tanh(s / p.softcap) : s; }
// The same, with the derivative of the capped score by the raw one in *dcap (1 - tanh^2; 1 when off).
float cap_score_d(float s, out float dcap) {
    dcap = 1.0;
    if (!USE_CAP) return s;
    float t = attn_tanh(s / p.softcap);
    dcap = 1.0 - t * t;
    return p.softcap * t;
}

#endif
