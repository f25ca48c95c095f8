#version 450
// y = s * x elementwise, s = p.alpha (y may alias x).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#include "common/eltwise.glsl"
#include "common/grid.glsl"

layout(std430, binding = 0) readonly buffer X { ELT x[]; };
layout(std430, binding = 1) writeonly buffer Y { ELT y[]; };

void main() {
    uint i = inv_linear();
    if (i >= p.n) return;
    y[p.b_off + i] = p.alpha * x[p.a_off + i];
}
