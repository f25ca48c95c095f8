#version 450
// Soft-capping backward from the capped output: dx = dy * (1 - (y/cap)^2), as (1 - r)(1 + r) with r = y/cap so
// that the factor keeps its relative accuracy where |y| nears cap. dx may alias dy.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
#include "common/eltwise.glsl"
#include "common/grid.glsl"

layout(std430, binding = 0) readonly buffer Y { float y[]; };
layout(std430, binding = 1) readonly buffer DY { float dy[]; };
layout(std430, binding = 2) writeonly buffer DX { float dx[]; };

void main() {
    uint i = inv_linear();
    if (i >= p.n) return;
    float r = y[p.a_off + i] / p.alpha;
    dx[p.c_off + i] = dy[p.b_off + i] * ((1.0 - r) * (1.0 + r));
}
