#version 450
// GELU(tanh)-gated FFN (Gemma): h = gelu_tanh(g) * u elementwise (h may alias g or u: each lane reads its
// element before writing it).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#include "common/eltwise.glsl"
#include "common/gelu.glsl"
#include "common/grid.glsl"

layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) readonly buffer U { float u[]; };
layout(std430, binding = 2) writeonly buffer H { float h[]; };

void main() {
    uint i = inv_linear();
    if (i >= p.n) return;
    h[p.c_off + i] = gelu_tanh(g[p.a_off + i]) * u[p.b_off + i];
}
