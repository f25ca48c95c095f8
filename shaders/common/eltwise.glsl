// Push block of the elementwise shaders (swiglu*, geglu*, softcap*, scale, add); mirrors vkl_eltwise_push in
// src/ops/nn_push.h.
#ifndef VKL_ELTWISE_GLSL
#define VKL_ELTWISE_GLSL
layout(push_constant) uniform Push {
    uint n;
    uint a_off, b_off, c_off, d_off, e_off;
    float alpha;
    uint pad;
} p;
#endif
