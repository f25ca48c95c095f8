#version 450
// RMSNorm backward. Default variant, one workgroup (-DSG_ROWS: one subgroup) per row (common/row.glsl):
//   dx = rstd * (w*dy - x * rstd^2 * mean(w*dy*x))      (= or += by p.accumulate)
// -DDW variant, one invocation per column, looping over the rows of this dispatch:
//   dw[j] += sum_r dy[r,j] * x[r,j] * rstd[r]
// The host runs the dw variant after each row chunk, so no atomics are needed.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

// Mirrors vkl_rmsnorm_back_push in src/ops/nn_push.h.
layout(push_constant) uniform Push {
    uint rows, n;
    uint x_off, w_off, rstd_off, dy_off, dx_off, dw_off;
    uint accumulate;
    uint pad0, pad1, pad2;
} p;

#include "common/grid.glsl"

#ifdef DW
layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer W { float w[]; };
layout(std430, binding = 2) readonly buffer R { float rstd[]; };
layout(std430, binding = 3) readonly buffer DY { float dy[]; };
layout(std430, binding = 4) buffer DX { float dx[]; }; // dw

void main() {
    uint j = inv_linear();
    if (j >= p.n) return;
    float s = 0.0;
    for (uint r = 0u; r < p.rows; r++) s += dy[p.dy_off + r * p.n + j] * x[p.x_off + r * p.n + j] * rstd[p.rstd_off + r];
    dx[p.dw_off + j] += s;
}
#else
#include "common/row.glsl"
layout(std430, binding = 0) readonly buffer X { RT x[]; };
layout(std430, binding = 1) readonly buffer W { RT w[]; };
layout(std430, binding = 2) readonly buffer R { float rstd[]; };
layout(std430, binding = 3) readonly buffer DY { RT dy[]; };
layout(std430, binding = 4) buffer DX { RT dx[]; };

void main() {
    uint row = ROW;
    if (row >= p.rows) return;
    uint lid = LID;
    uint xb = p.x_off + row * ROW_N, db = p.dy_off + row * ROW_N, ob = p.dx_off + row * ROW_N;
    float dot_ = 0.0;
    for (uint i = lid; i < ROW_N; i += STRIDE) dot_ += RDOT(w[p.w_off + i] * dy[db + i], x[xb + i]);
    dot_ = ROW_SUM(dot_);
    float r = rstd[p.rstd_off + row];
    float c = r * r * dot_ / float(p.n);
    for (uint i = lid; i < ROW_N; i += STRIDE) {
        RT g = r * (w[p.w_off + i] * dy[db + i] - x[xb + i] * c);
        if (p.accumulate != 0u) g += dx[ob + i];
        dx[ob + i] = g;
    }
}
#endif
