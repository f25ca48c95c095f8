// Linear workgroup / invocation index for dispatches that spill from x into y past maxComputeWorkGroupCount[0].
#ifndef VKL_GRID_GLSL
#define VKL_GRID_GLSL
uint wg_linear() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
uint inv_linear() { return wg_linear() * gl_WorkGroupSize.x + gl_LocalInvocationID.x; }
// Tile t of tiles_m x tiles_n in the order the texel products take them (CPU devices): in groups of x tiles (index m)
// whose rows, x_tile_floats each, fit about 512 KiB, m fastest within a group. A group's x rows stay in cache while
// its weight panels (index n) pass by once, and neighbouring subgroups share a weight panel; taking every x tile of a
// panel in turn streamed all of x once per panel. Returns (m tile, n tile).
uvec2 grouped_tile(uint t, uint tiles_m, uint tiles_n, uint x_tile_floats) {
    uint gm = clamp(131072u / x_tile_floats, 1u, tiles_m);
    uint per_group = gm * tiles_n, g = t / per_group, gi = t % per_group;
    uint gsz = min(gm, tiles_m - g * gm);
    return uvec2(g * gm + gi % gsz, gi / gsz);
}
#endif
