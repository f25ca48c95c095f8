#version 450
// Partial sums of squares: workgroup w writes sum(x[i]^2) over its slice of PER_WG consecutive elements to
// out[out_offset + w]. Run again on the partials until one value is left (the gradient norm squared).
// Fixed summation order: the result is bitwise reproducible on a device.
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_basic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 1) const uint PER_INV = 16; // elements per invocation

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) buffer Out { float outv[]; };

layout(push_constant) uniform Push {
    uint n;          // elements in this dispatch
    uint out_offset; // where partial 0 goes (in floats, inside the bound output range)
    uint square;     // 1: sum x^2 (first pass), 0: sum x (passes over partials)
    uint pad;
} pc;

#include "common/reduce.glsl"
#include "common/grid.glsl"

void main() {
    uint w = wg_linear();
    uint base = w * WG * PER_INV;
    if (base >= pc.n) return; // spare workgroups of a 2D grid (uniform per workgroup: no barrier is skipped by part)
    float s = 0.0;
    // Strided by WG so each sweep of the workgroup reads consecutive memory.
    for (uint j = 0u; j < PER_INV; j++) {
        uint i = base + j * WG + gl_LocalInvocationID.x;
        if (i < pc.n) {
            float v = x[i];
            s += pc.square != 0u ? v * v : v;
        }
    }
    s = wg_sum(s);
    if (gl_LocalInvocationID.x == 0u) outv[pc.out_offset + w] = s;
}
