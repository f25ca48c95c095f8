#version 450
// RMSNorm forward, one workgroup (-DSG_ROWS: one subgroup) per row (common/row.glsl): y = x * rstd * w with
// rstd = 1/sqrt(mean(x^2) + eps), rstd saved for the backward. y may alias x: each lane writes only the elements it
// read itself, after the reduction.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

// Mirrors vkl_rmsnorm_push in src/ops/nn_push.h.
layout(push_constant) uniform Push {
    uint rows, n;
    uint x_off, w_off, y_off, rstd_off;
    uint has_rstd;
    float eps;
} p;

#include "common/grid.glsl"
#include "common/row.glsl"

layout(std430, binding = 0) readonly buffer X { RT x[]; };
layout(std430, binding = 1) readonly buffer W { RT w[]; };
layout(std430, binding = 2) writeonly buffer Y { RT y[]; };
layout(std430, binding = 3) writeonly buffer R { float rstd_out[]; };

void main() {
    uint row = ROW;
    if (row >= p.rows) return; // uniform over the workgroup (subgroup), so the barriers below stay uniform
    uint lid = LID;
    uint xb = p.x_off + row * ROW_N, yb = p.y_off + row * ROW_N;
    float ss = 0.0;
    for (uint i = lid; i < ROW_N; i += STRIDE) {
        RT v = x[xb + i];
        ss += RDOT(v, v);
    }
    ss = ROW_SUM(ss);
    float r = 1.0 / sqrt(ss / float(p.n) + p.eps);
    if (p.has_rstd != 0u && lid == 0u) rstd_out[p.rstd_off + row] = r;
    for (uint i = lid; i < ROW_N; i += STRIDE) y[yb + i] = x[xb + i] * r * w[p.w_off + i];
}
