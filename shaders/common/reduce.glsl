// Workgroup-wide sum and max for the per-row ops (rmsnorm, cross_entropy): subgroup reductions first, then one
// shared slot per subgroup; the subgroup size is whatever the device runs (never assumed).
// The includer declares `layout(constant_id = 0) const uint WG` (the workgroup size, spec constant 0) and enables
// GL_KHR_shader_subgroup_arithmetic.
#ifndef VKL_REDUCE_GLSL
#define VKL_REDUCE_GLSL

// A subgroup has at least one lane, so WG slots always suffice.
shared float red_buf[WG];

float wg_sum(float v) {
    v = subgroupAdd(v);
    if (subgroupElect()) red_buf[gl_SubgroupID] = v;
    barrier();
    float s = 0.0;
    for (uint i = 0u; i < gl_NumSubgroups; i++) s += red_buf[i];
    barrier(); // red_buf is reused by the next reduction
    return s;
}

float wg_max(float v) {
    v = subgroupMax(v);
    if (subgroupElect()) red_buf[gl_SubgroupID] = v;
    barrier();
    float s = red_buf[0];
    for (uint i = 1u; i < gl_NumSubgroups; i++) s = max(s, red_buf[i]);
    barrier();
    return s;
}

#endif
