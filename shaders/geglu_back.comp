#version 450
// GEGLU backward: dg = dh * u * gelu_tanh'(g), du = dh * gelu_tanh(g).
// dg may alias g and du may alias u: every input element is read before the lane writes.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#include "common/eltwise.glsl"
#include "common/gelu.glsl"
#include "common/grid.glsl"

layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer U { float u[]; };
layout(std430, binding = 2) readonly buffer DH { float dh[]; };
layout(std430, binding = 3) writeonly buffer DG { float dg[]; };
layout(std430, binding = 4) writeonly buffer DU { float du[]; };

void main() {
    uint i = inv_linear();
    if (i >= p.n) return;
    float gv = g[p.a_off + i], uv = u[p.b_off + i], d = dh[p.c_off + i];
    dg[p.d_off + i] = d * uv * gelu_tanh_grad(gv);
    du[p.e_off + i] = d * gelu_tanh(gv);
}
