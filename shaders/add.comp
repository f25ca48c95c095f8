#version 450
// y = a + alpha * b elementwise (y may alias a or b).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#include "common/eltwise.glsl"
#include "common/grid.glsl"

layout(std430, binding = 0) readonly buffer A { ELT a[]; };
layout(std430, binding = 1) readonly buffer B { ELT b[]; };
layout(std430, binding = 2) writeonly buffer Y { ELT y[]; };

void main() {
    uint i = inv_linear();
    if (i >= p.n) return;
    y[p.c_off + i] = a[p.a_off + i] + p.alpha * b[p.b_off + i];
}
