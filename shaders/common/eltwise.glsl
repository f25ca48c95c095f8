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

// -DELT_VEC4 (the "<name>_v4" pipelines): each invocation takes 4 consecutive elements as one vec4, with n and
// every offset counted in vec4s. On CPU devices a storage load or store at a computed address is a loop over the
// lanes, so a vec4 moves 4 elements for the cost of one. The host uses it when n and every offset are multiples
// of 4; the math below is componentwise either way.
#ifdef ELT_VEC4
#define ELT vec4
#else
#define ELT float
#endif
#endif
