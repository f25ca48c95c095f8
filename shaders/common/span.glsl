// Byte runs of GGUF blocks that are only 2-byte aligned (Q8_0's 34 bytes, Q4_0's 18, Q6_K's 210) read through an
// RGBA32UI texel view `tex_w` (the includer declares it). On CPU devices a texel fetch costs about the same at any
// width, so a run that starts at byte a is fetched as the 16-byte texels that cover it and its 32-bit words are cut
// out at o = a % 16 (even) with selects and a 16-bit funnel shift.
#ifndef VKL_SPAN_GLSL
#define VKL_SPAN_GLSL

const uint SPAN_NW = 12u; // words of up to 3 texels; a run that needs fewer leaves the rest 0, never selected

void span_fetch(int t, uint nt, out uint wd[SPAN_NW]) {
    [[unroll]] for (uint n = 0u; n < 3u; n++) {
        uvec4 v = n < nt ? texelFetch(tex_w, t + int(n)) : uvec4(0u);
        [[unroll]] for (uint e = 0u; e < 4u; e++) wd[4u * n + e] = v[e];
    }
}

// The word at byte o + 4i (o even, 0..16: a texel's offset, or one plus a 2-byte header; i a constant after
// unrolling) of the fetched texels.
uint span_word(const uint wd[SPAN_NW], uint o, const uint i) {
    uint q = o >> 2u;
    uint lo = wd[min(i, SPAN_NW - 1u)], hi = wd[min(i + 1u, SPAN_NW - 1u)];
    [[unroll]] for (uint s = 1u; s <= 4u; s++)
        if (q == s) {
            lo = wd[min(i + s, SPAN_NW - 1u)];
            hi = wd[min(i + s + 1u, SPAN_NW - 1u)];
        }
    return (o & 2u) == 0u ? lo : (lo >> 16) | (hi << 16);
}

uvec4 span_words4(const uint wd[SPAN_NW], uint o, const uint i) {
    return uvec4(span_word(wd, o, i), span_word(wd, o, i + 1u), span_word(wd, o, i + 2u), span_word(wd, o, i + 3u));
}

// The 16 bytes from byte a (even) of the view: two texels.
uvec4 span16(uint a) {
    uint wd[SPAN_NW];
    span_fetch(int(a >> 4u), 2u, wd);
    return span_words4(wd, a & 15u, 0u);
}

// The byte at a, and the 16-bit value at an even a: one texel.
uint span_u8(uint a) {
    uvec4 v = texelFetch(tex_w, int(a >> 4u));
    return (v[(a >> 2u) & 3u] >> (8u * (a & 3u))) & 0xFFu;
}
uint span_u16(uint a) {
    uvec4 v = texelFetch(tex_w, int(a >> 4u));
    uint w = v[(a >> 2u) & 3u];
    return (a & 2u) == 0u ? w & 0xFFFFu : w >> 16;
}

#endif
