#version 450
// SwiGLU gate: h = silu(g) * u elementwise (h may alias g or u: each lane reads its element before writing it).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#include "common/eltwise.glsl"
#include "common/grid.glsl"

layout(std430, binding = 0) readonly buffer G { ELT g[]; };
layout(std430, binding = 1) readonly buffer U { ELT u[]; };
layout(std430, binding = 2) writeonly buffer H { ELT h[]; };

void main() {
    uint i = inv_linear();
    if (i >= p.n) return;
    ELT gv = g[p.a_off + i];
    // g / (1 + e^-g): for g << 0 the exponential overflows to +inf and the quotient is -0, the right limit.
    h[p.c_off + i] = gv / (1.0 + exp(-gv)) * u[p.b_off + i];
}
