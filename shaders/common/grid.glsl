// Linear workgroup / invocation index for dispatches that spill from x into y past maxComputeWorkGroupCount[0].
#ifndef VKL_GRID_GLSL
#define VKL_GRID_GLSL
uint wg_linear() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
uint inv_linear() { return wg_linear() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; }
#endif
