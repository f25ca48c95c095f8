// The lanes that share one row of the per-row ops (rmsnorm and its backward): ROW is this lane's row, LID its index
// among the row's STRIDE lanes, ROW_SUM(v) the sum of v over them. Default: a row per workgroup, summed through
// shared memory (common/reduce.glsl). -DSG_ROWS (CPU devices): a row per subgroup, summed by subgroupAdd alone, with
// no shared memory and no barrier: lavapipe runs a workgroup that has barriers as coroutines, several times slower
// (PERF.md). The includer declares WG (spec constant 0), enables GL_KHR_shader_subgroup_arithmetic and includes
// common/grid.glsl.
#ifndef VKL_ROW_GLSL
#define VKL_ROW_GLSL
#if defined(SG_ROWS)
#define ROW (wg_linear() * gl_NumSubgroups + gl_SubgroupID)
#define LID gl_SubgroupInvocationID
#define STRIDE gl_SubgroupSize
#define ROW_SUM(v) subgroupAdd(v)
#else
#include "reduce.glsl"
#define ROW wg_linear()
#define LID gl_LocalInvocationID.x
#define STRIDE WG
#define ROW_SUM(v) wg_sum(v)
#endif
#endif
