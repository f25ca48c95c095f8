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
// -DROW_VEC4 (the "_sg_v4" builds): rows are read as vec4s (RT), n and every offset but rstd's in vec4 units from
// the host (n % 4 == 0, offsets multiples of 4 floats): on CPU devices a storage load at a computed address is a
// loop over the lanes, and a vec4 moves 4 floats for one. RDOT(a, b) sums a * b over the components.
#if defined(ROW_VEC4)
#define RT vec4
#define RDOT(a, b) dot(a, b)
#define ROW_N (p.n / 4u)
#else
#define RT float
#define RDOT(a, b) ((a) * (b))
#define ROW_N p.n
#endif
#endif
