#version 450
// Dequantize a range of GGUF blocks (type chosen by -DDATA_A_<TYPE>) into fp32: each invocation writes 4
// consecutive values. The host splits big tensors into chunks and dispatches in 2D past maxComputeWorkGroupCount.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

// Mirrors vkl_dequant_push in src/ops/ops.h (16 bytes).
layout(push_constant) uniform Push {
    uint n_blocks;
    uint src_byte_off;
    uint dst_elem_off;
    uint pad;
} p;

layout(std430, binding = 0) readonly buffer A { uint data_a[]; };
layout(std430, binding = 1) writeonly buffer D { float data_d[]; };

#define A_WORD(i) data_a[i]
#define A_BYTE_OFFSET p.src_byte_off
#define DQ_PRECISE precise
#include "common/quant.glsl"

void main() {
    uint inv = (gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x) * gl_WorkGroupSize.x + gl_LocalInvocationID.x;
    uint n = p.n_blocks * BLOCK_SIZE;
    uint e = inv * 4u;
    if (e >= n) return;
    uint o = p.dst_elem_off + e;
    if (e + 4u <= n) {
        vec4 v = dequant_vec4(e / BLOCK_SIZE, e % BLOCK_SIZE);
        data_d[o] = v.x;
        data_d[o + 1u] = v.y;
        data_d[o + 2u] = v.z;
        data_d[o + 3u] = v.w;
    } else {
        // Only the scalar types can end mid-vec4 (quantized blocks hold multiples of 4): reading a whole vec4
        // there would touch words past the bound range.
        for (uint k = e; k < n; k++) data_d[p.dst_elem_off + k] = dequant_elem(k / BLOCK_SIZE, k % BLOCK_SIZE);
    }
}
