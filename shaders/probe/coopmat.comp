#version 450
// Configure-time probe (meson.build): does this glslc compile GL_KHR_cooperative_matrix with f16 operands and an
// f32 accumulator, the types shaders/matmul_coopmat.comp uses? glslc before shaderc 2023.8 (Debian 12) cannot.
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

layout(local_size_x = 32) in;
layout(constant_id = 0) const uint LM = 16;
layout(std430, binding = 0) buffer Y { float y[]; };
shared float16_t sa[LM * LM];

void main() {
    coopmat<float16_t, gl_ScopeSubgroup, LM, LM, gl_MatrixUseA> a;
    coopmat<float16_t, gl_ScopeSubgroup, LM, LM, gl_MatrixUseB> b;
    coopmat<float, gl_ScopeSubgroup, LM, LM, gl_MatrixUseAccumulator> c = coopmat<float, gl_ScopeSubgroup, LM, LM, gl_MatrixUseAccumulator>(0.0);
    coopMatLoad(a, sa, 0, LM, gl_CooperativeMatrixLayoutRowMajor);
    coopMatLoad(b, sa, 0, LM, gl_CooperativeMatrixLayoutColumnMajor);
    c = coopMatMulAdd(a, b, c);
    coopMatStore(c, y, 0, LM, gl_CooperativeMatrixLayoutRowMajor);
}
