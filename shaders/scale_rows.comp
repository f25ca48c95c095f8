#version 450
// Row-wise scaling y[r, :] = factors[r] * x[r, :] over rows of n (y may alias x); one invocation per element.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

// Mirrors vkl_scale_rows_push in src/ops/nn_push.h.
layout(push_constant) uniform Push {
    uint rows, n;
    uint x_off, f_off, y_off;
    uint pad0, pad1, pad2;
} p;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer F { float factors[]; };
layout(std430, binding = 2) writeonly buffer Y { float y[]; };

#include "common/grid.glsl"

void main() {
    uint i = inv_linear();
    uint r = i / p.n;
    if (r >= p.rows) return;
    y[p.y_off + i] = factors[p.f_off + r] * x[p.x_off + i];
}
