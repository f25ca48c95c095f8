#version 450
// Runtime self-test: exercises push constants, specialization constants, storage and uniform texel buffers,
// and reports the subgroup size the shader actually runs with (the runtime must never assume one).
#extension GL_KHR_shader_subgroup_basic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const int ADD = 0;

layout(binding = 0) readonly buffer In { float x[]; };
layout(binding = 1) writeonly buffer Out { float y[]; };
layout(binding = 2) uniform samplerBuffer tex;
layout(binding = 3) writeonly buffer Out2 { float z[]; };
layout(binding = 4) writeonly buffer Info { uint info[]; };

layout(push_constant) uniform Push {
    uint n;
    float scale;
} pc;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i == 0) {
        info[0] = gl_SubgroupSize;
        info[1] = gl_WorkGroupSize.x;
    }
    if (i >= pc.n) return;
    y[i] = x[i] * pc.scale + float(ADD);
    z[i] = texelFetch(tex, int(i)).x;
}
