#version 450
// Rotary position embedding in place on x viewed as [rows, n_heads, head_dim]; one invocation per (row, pair i)
// computes the angle once and rotates that pair in every head. theta_i = pos * f_i with f_i from a per-pair
// frequency table, so every RoPE variant (plain base, Llama 3 factors, linear scaling, YaRN, longrope, per-layer
// bases) is this one shader; cos and sin are multiplied by mscale. inverse = rotate by -theta (the backward).
//
// Accuracy: theta reaches 8192 rad and more; a float product alone is off by up to ulp(8192)/2 = 4.9e-4 rad, and
// Vulkan only bounds sin/cos to 2^-11 absolute. So the angle is formed in float-float arithmetic (Dekker
// products; `precise` keeps the compiler from fusing or reassociating them): the host's float-float f_i (relative
// error ~1e-14) times the exact position, reduced by k*pi/2 in float-float; sin and cos of the remainder
// |r| <= pi/4 come from Taylor polynomials (truncation < 2e-9). The result is within ~2e-7 absolute of the exact
// cos/sin for |pos| up to ~1e6, which tests/test_nn.c checks against the double reference at positions up to
// 100000.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

// Mirrors vkl_rope_push in src/ops/nn_push.h.
layout(push_constant) uniform Push {
    uint rows, n_heads, head_dim, rope_dim;
    uint x_off, pos_off, freqs_off;
    uint neox, inverse;
    float mscale;
    uint pad0, pad1;
} p;

layout(std430, binding = 0) buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer P { int pos[]; };
layout(std430, binding = 2) readonly buffer F { float freqs[]; }; // rope_dim/2 float-float pairs (hi, lo)

#include "common/grid.glsl"

// ---- float-float arithmetic: a value is hi + lo with |lo| <= ulp(hi)/2 ----
vec2 ff_split(float a) {
    precise float c = 4097.0 * a; // 2^12 + 1 splits a 24-bit significand into two 12-bit halves
    precise float hi = c - (c - a);
    precise float lo = a - hi;
    return vec2(hi, lo);
}
vec2 ff_fast_two_sum(float a, float b) { // |a| >= |b|
    precise float s = a + b;
    precise float e = b - (s - a);
    return vec2(s, e);
}
vec2 ff_two_sum(float a, float b) {
    precise float s = a + b;
    precise float bb = s - a;
    precise float e = (a - (s - bb)) + (b - bb);
    return vec2(s, e);
}
vec2 ff_two_prod(float a, float b) {
    precise float pr = a * b;
    vec2 as = ff_split(a), bs = ff_split(b);
    precise float e = ((as.x * bs.x - pr) + as.x * bs.y + as.y * bs.x) + as.y * bs.y;
    return vec2(pr, e);
}
vec2 ff_mul(vec2 a, vec2 b) {
    vec2 pr = ff_two_prod(a.x, b.x);
    precise float e = pr.y + (a.x * b.y + a.y * b.x);
    return ff_fast_two_sum(pr.x, e);
}
vec2 ff_add(vec2 a, vec2 b) {
    vec2 s = ff_two_sum(a.x, b.x);
    precise float e = s.y + (a.y + b.y);
    return ff_fast_two_sum(s.x, e);
}

// cos and sin of pos * f_i.
vec2 rope_cos_sin(int ipos, uint i) {
    float pos_hi = float(ipos);
    uint fi = p.freqs_off + 2u * i;
    vec2 a = ff_mul(vec2(pos_hi, float(ipos - int(pos_hi))), vec2(freqs[fi], freqs[fi + 1u]));
    // a - k*pi/2 with pi/2 = PIO2_HI + PIO2_LO (the float nearest pi/2 and the float nearest the rest)
    const vec2 PIO2 = vec2(1.57079637050628662109375, -4.37113900018624283e-8);
    float k = floor(a.x * 0.636619772367581343 + 0.5);
    vec2 r2 = ff_add(a, -ff_mul(vec2(k, 0.0), PIO2));
    precise float r = r2.x + r2.y;
    precise float r_2 = r * r;
    precise float sn = r * (1.0 + r_2 * (-1.0 / 6.0 + r_2 * (1.0 / 120.0 + r_2 * (-1.0 / 5040.0 + r_2 * (1.0 / 362880.0)))));
    precise float cs = 1.0 + r_2 * (-0.5 + r_2 * (1.0 / 24.0 + r_2 * (-1.0 / 720.0 + r_2 * (1.0 / 40320.0 + r_2 * (-1.0 / 3628800.0)))));
    int q = int(k) & 3;
    if (q == 0) return vec2(cs, sn);
    if (q == 1) return vec2(-sn, cs);
    if (q == 2) return vec2(-cs, -sn);
    return vec2(sn, -cs);
}

void main() {
    uint npairs = p.rope_dim / 2u;
    uint inv = inv_linear();
    uint row = inv / npairs;
    if (row >= p.rows) return;
    uint i = inv % npairs;
    vec2 cs = p.mscale * rope_cos_sin(pos[p.pos_off + row], i);
    float c = cs.x, s = p.inverse != 0u ? -cs.y : cs.y;
    uint i0 = p.neox != 0u ? i : 2u * i;
    uint i1 = p.neox != 0u ? i + npairs : 2u * i + 1u;
    uint rb = p.x_off + row * p.n_heads * p.head_dim;
    for (uint h = 0u; h < p.n_heads; h++) {
        uint hb = rb + h * p.head_dim;
        float x0 = x[hb + i0], x1 = x[hb + i1];
        x[hb + i0] = x0 * c - x1 * s;
        x[hb + i1] = x0 * s + x1 * c;
    }
}
