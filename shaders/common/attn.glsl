// Shared by attention[_back].comp and attention[_back]_tile.comp: the push-constant block (mirrors vkl_attn_push
// in src/ops/nn_push.h), the tensor bindings and index helpers. Scalar kernels: DMAX (a -D define: 64, 128 or
// 256) sizes the per-lane vectors, D <= DMAX is a push value, and the loops over D stay loops (fully unrolled
// guarded scalar loops took lavapipe's LLVM 10-40 s to compile per pipeline). Tile kernels (-DATTN_TILE): DV4
// (a -D define) bounds D/4, rows are read as vec4 through RGBA32F texel views, all offsets are multiples of 4.
//   q, out, dout, dq: [n_seq, T, n_head, D]   k, v, dk, dv: [n_seq, S, n_head_kv, D]
//   lse: [n_seq, n_head, T]                   seg: int32 [n_seq, T]
#ifndef VKL_ATTN_GLSL
#define VKL_ATTN_GLSL

#if !defined(DMAX) && !defined(ATTN_TILE)
#error "attn.glsl: define DMAX (scalar kernels) or ATTN_TILE and DV4"
#endif

layout(push_constant) uniform Push {
    uint n_seq, T, S, n_head, n_head_kv, D, pos0;
    float scale;
    uint q_off, k_off, v_off, seg_off, out_off, lse_off, dout_off;
    uint dq_off, dv_off;
    uint flags;
    uint pad0, pad1;
} p;

#define HAS_SEG 1u
#define HAS_LSE 2u

#ifdef ATTN_TILE
layout(binding = 0) uniform samplerBuffer tq;
layout(binding = 1) uniform samplerBuffer tk;
layout(binding = 2) uniform samplerBuffer tv;
#else
layout(std430, binding = 0) readonly buffer Q { float q[]; };
layout(std430, binding = 1) readonly buffer K { float k[]; };
layout(std430, binding = 2) readonly buffer V { float v[]; };
#endif
layout(std430, binding = 3) readonly buffer G { int seg[]; };

uint q_row(uint b, uint t, uint h) { return ((b * p.T + t) * p.n_head + h) * p.D; }
uint kv_row(uint b, uint j, uint g) { return ((b * p.S + j) * p.n_head_kv + g) * p.D; }
uint lse_idx(uint b, uint h, uint t) { return p.lse_off + (b * p.n_head + h) * p.T + t; }
// First key query t of sequence b may see.
int first_key(uint b, uint t) { return (p.flags & HAS_SEG) != 0u ? max(seg[p.seg_off + b * p.T + t], 0) : 0; }

const int INT_BIG = 0x7fffffff;
const float NEG_BIG = -3.402823466e38; // -FLT_MAX: exp(NEG_BIG - s) is 0 and NEG_BIG - NEG_BIG is 0, never NaN

#endif
