#version 450
// Test shader: writes Philox outputs and uniforms for indices base..base+n-1, compared with include/vklora/rng.h.
layout(local_size_x_id = 0) in;
layout(binding = 0) writeonly buffer Out { uint outv[]; };
layout(push_constant) uniform Push { uint key, base, n, pad; } p;
#include "common/rng.glsl"
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= p.n) return;
    uvec2 r = philox2x32(p.key, p.base + i, 0u);
    outv[3u * i] = r.x;
    outv[3u * i + 1u] = r.y;
    outv[3u * i + 2u] = floatBitsToUint(rng_uniform(p.key, p.base + i));
}
