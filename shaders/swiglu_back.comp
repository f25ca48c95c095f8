#version 450
// SwiGLU backward: dg = dh * u * silu'(g) with silu'(g) = sig(g) * (1 + g * (1 - sig(g))), du = dh * silu(g).
// dg may alias g and du may alias u: every input element is read before the lane writes.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#include "common/eltwise.glsl"
#include "common/grid.glsl"

layout(std430, binding = 0) readonly buffer G { ELT g[]; };
layout(std430, binding = 1) readonly buffer U { ELT u[]; };
layout(std430, binding = 2) readonly buffer DH { ELT dh[]; };
layout(std430, binding = 3) writeonly buffer DG { ELT dg[]; };
layout(std430, binding = 4) writeonly buffer DU { ELT du[]; };

void main() {
    uint i = inv_linear();
    if (i >= p.n) return;
    ELT gv = g[p.a_off + i], uv = u[p.b_off + i], d = dh[p.c_off + i];
    ELT sg = 1.0 / (1.0 + exp(-gv));
    dg[p.d_off + i] = d * uv * sg * (1.0 + gv * (1.0 - sg));
    du[p.e_off + i] = d * gv * sg;
}
