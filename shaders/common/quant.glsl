// GGUF weight-block decoders shared by every shader that reads weights (dequant, matmul, ...): one type per
// compile, chosen by -DDATA_A_F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q5_K/Q6_K; the same bytes decode as in src/ref/quant.c.
//
// Portability: no 8/16-bit storage. The weights are read as 32-bit words through a macro the includer defines,
//   #define A_WORD(i) data_a[i]            (uint: i-th 32-bit word of the bound weight range)
// so a texel-buffer variant can redefine it. Optional macros:
//   A_BYTE_OFFSET  byte offset of block 0 inside the bound range (an expression; even; a multiple of 4 for F32)
//   DQ_PRECISE     define as `precise` to forbid fma contraction, giving bit-equality with src/ref (dequant);
//                  a matmul leaves it empty and lets the compiler fuse.
// Interface (ib = block index, iqs = element index inside the block):
//   BLOCK_SIZE, BLOCK_BYTES               elements and bytes per block
//   float dequant_elem(ib, iqs)           one value
//   vec4  dequant_vec4(ib, iqs)           values iqs..iqs+3 (iqs % 4 == 0). They never cross a block for the
//                                         quantized types; for the scalar types (BLOCK_SIZE 1) they are elements
//                                         ib..ib+3, i.e. always "element ib*BLOCK_SIZE+iqs and the 3 after it".
//   vec4  dequant_codes4(ib, iqs)         the integer codes of those 4 values (as floats) and
//   vec2  dequant_dm(ib, iqs)             their affine map: value = code * dm.x + dm.y. dm is constant over
//                                         DQ_DM_RUN consecutive elements (32, or 16 for Q6_K) so a matmul can
//                                         accumulate code*activation and apply dm once per run.
#ifndef VKL_QUANT_GLSL
#define VKL_QUANT_GLSL

#ifndef A_BYTE_OFFSET
#define A_BYTE_OFFSET 0u
#endif
#ifndef DQ_PRECISE
#define DQ_PRECISE
#endif

// ---- byte access on 32-bit words (little-endian, as GGUF) ----
uint qa_u8(uint a) { return (A_WORD(a >> 2) >> ((a & 3u) * 8u)) & 0xFFu; }
uint qa_u16(uint a) { return (A_WORD(a >> 2) >> ((a & 2u) * 8u)) & 0xFFFFu; } // a even
// Four bytes at an even address: blocks of 18/34/210 bytes leave many fields only 2-byte aligned.
uint qa_u32(uint a) {
    uint w = a >> 2;
    if ((a & 2u) == 0u) return A_WORD(w);
    return (A_WORD(w) >> 16) | (A_WORD(w + 1u) << 16);
}
float qa_f16(uint a) { return unpackHalf2x16(qa_u16(a)).x; }
vec4 qa_bytes4(uint w) { return vec4(w & 0xFFu, (w >> 8) & 0xFFu, (w >> 16) & 0xFFu, w >> 24); }
vec4 qa_sbytes4(uint w) {
    int s = int(w);
    return vec4(bitfieldExtract(s, 0, 8), bitfieldExtract(s, 8, 8), bitfieldExtract(s, 16, 8), bitfieldExtract(s, 24, 8));
}

#if defined(DATA_A_F32)
#define BLOCK_SIZE 1u
#define BLOCK_BYTES 4u
#define DQ_DM_RUN 1u
float dequant_elem(uint ib, uint iqs) { return uintBitsToFloat(A_WORD((A_BYTE_OFFSET >> 2) + ib + iqs)); }
vec4 dequant_codes4(uint ib, uint iqs) {
    uint w = (A_BYTE_OFFSET >> 2) + ib + iqs;
    return uintBitsToFloat(uvec4(A_WORD(w), A_WORD(w + 1u), A_WORD(w + 2u), A_WORD(w + 3u)));
}
vec2 dequant_dm(uint ib, uint iqs) { return vec2(1.0, 0.0); }
#define DQ_HAS_MIN 0
#define DQ_IS_SCALAR 1

#elif defined(DATA_A_F16) || defined(DATA_A_BF16)
#define BLOCK_SIZE 1u
#define BLOCK_BYTES 2u
#define DQ_DM_RUN 1u
#if defined(DATA_A_F16)
float qa_half(uint h) { return unpackHalf2x16(h).x; }
vec2 qa_half2(uint w) { return unpackHalf2x16(w); }
#else
float qa_half(uint h) { return uintBitsToFloat(h << 16); }
vec2 qa_half2(uint w) { return uintBitsToFloat(uvec2(w << 16, w & 0xFFFF0000u)); }
#endif
float dequant_elem(uint ib, uint iqs) { return qa_half(qa_u16(A_BYTE_OFFSET + 2u * (ib + iqs))); }
vec4 dequant_codes4(uint ib, uint iqs) {
    uint a = A_BYTE_OFFSET + 2u * (ib + iqs);
    return vec4(qa_half2(qa_u32(a)), qa_half2(qa_u32(a + 4u)));
}
vec2 dequant_dm(uint ib, uint iqs) { return vec2(1.0, 0.0); }
#define DQ_HAS_MIN 0
#define DQ_IS_SCALAR 1

#elif defined(DATA_A_Q8_0)
// d (fp16) | qs[32] (int8); value = q * d
#define BLOCK_SIZE 32u
#define BLOCK_BYTES 34u
#define DQ_DM_RUN 32u
uint dq_base(uint ib) { return A_BYTE_OFFSET + ib * BLOCK_BYTES; }
vec2 dequant_dm(uint ib, uint iqs) { return vec2(qa_f16(dq_base(ib)), 0.0); }
vec4 dequant_codes4(uint ib, uint iqs) { return qa_sbytes4(qa_u32(dq_base(ib) + 2u + iqs)); }
float dequant_code(uint ib, uint iqs) { return float(bitfieldExtract(int(qa_u8(dq_base(ib) + 2u + iqs)), 0, 8)); }
#define DQ_HAS_MIN 0

#elif defined(DATA_A_Q4_0)
// d (fp16) | qs[16]: element j in the low nibble of qs[j], element 16+j in the high nibble; value = (q - 8) * d
#define BLOCK_SIZE 32u
#define BLOCK_BYTES 18u
#define DQ_DM_RUN 32u
uint dq_base(uint ib) { return A_BYTE_OFFSET + ib * BLOCK_BYTES; }
vec2 dequant_dm(uint ib, uint iqs) { return vec2(qa_f16(dq_base(ib)), 0.0); }
vec4 dequant_codes4(uint ib, uint iqs) {
    uint w = qa_u32(dq_base(ib) + 2u + (iqs & 15u)) >> ((iqs & 16u) / 4u);
    return qa_bytes4(w & 0x0F0F0F0Fu) - 8.0;
}
float dequant_code(uint ib, uint iqs) {
    return float((qa_u8(dq_base(ib) + 2u + (iqs & 15u)) >> ((iqs & 16u) / 4u)) & 15u) - 8.0;
}
#define DQ_HAS_MIN 0

#elif defined(DATA_A_Q4_K) || defined(DATA_A_Q5_K)
// Q4_K: d, dmin (fp16) | scales[12] | qs[128]
// Q5_K: d, dmin (fp16) | scales[12] | qh[32] | qs[128]
// 8 sub-blocks of 32 with 6-bit scale and min (packed as in ggml's get_scale_min_k4); sub-blocks 2c and 2c+1
// share qs[32c..32c+31] (low, high nibble); Q5_K adds bit s of qh[l] as bit 4 of element l of sub-block s.
// value = (d*scale) * q - (dmin*min)
#define BLOCK_SIZE 256u
#define DQ_DM_RUN 32u
#if defined(DATA_A_Q4_K)
#define BLOCK_BYTES 144u
#define DQ_QS_OFF 16u
#else
#define BLOCK_BYTES 176u
#define DQ_QS_OFF 48u
#define DQ_QH_OFF 16u
#endif
uint dq_base(uint ib) { return A_BYTE_OFFSET + ib * BLOCK_BYTES; }
vec2 dequant_dm(uint ib, uint iqs) {
    uint base = dq_base(ib);
    uint s = iqs / 32u;
    uint sa = base + 4u; // the 12 scale bytes
    uint sc, m;
    if (s < 4u) {
        sc = qa_u8(sa + s) & 63u;
        m = qa_u8(sa + s + 4u) & 63u;
    } else {
        uint b8 = qa_u8(sa + s + 4u);
        sc = (b8 & 15u) | ((qa_u8(sa + s - 4u) >> 6) << 4);
        m = (b8 >> 4) | ((qa_u8(sa + s) >> 6) << 4);
    }
    vec2 dd = unpackHalf2x16(qa_u32(base)); // d, dmin
    return vec2(dd.x * float(sc), -(dd.y * float(m)));
}
vec4 dequant_codes4(uint ib, uint iqs) {
    uint base = dq_base(ib);
    uint l = iqs & 31u;
    uint w = (qa_u32(base + DQ_QS_OFF + 32u * (iqs / 64u) + l) >> (4u * ((iqs / 32u) & 1u))) & 0x0F0F0F0Fu;
#if defined(DATA_A_Q5_K)
    w |= ((qa_u32(base + DQ_QH_OFF + l) >> (iqs / 32u)) & 0x01010101u) << 4;
#endif
    return qa_bytes4(w);
}
// dequant_dm of sub-block s from the block's first 16 bytes (d, dmin and the 12 scale bytes) held in registers,
// for kernels that fetch 16-byte texels.
uint dq_head_byte(uvec4 h, uint b) { return (h[b >> 2u] >> (8u * (b & 3u))) & 0xFFu; }
vec2 dequant_head_dm(uvec4 h, uint s) {
    uint sc, m;
    if (s < 4u) {
        sc = dq_head_byte(h, 4u + s) & 63u;
        m = dq_head_byte(h, 8u + s) & 63u;
    } else {
        uint b8 = dq_head_byte(h, 8u + s);
        sc = (b8 & 15u) | ((dq_head_byte(h, s) >> 6) << 4);
        m = (b8 >> 4) | ((dq_head_byte(h, 4u + s) >> 6) << 4);
    }
    vec2 dd = unpackHalf2x16(h.x);
    return vec2(dd.x * float(sc), -(dd.y * float(m)));
}
float dequant_code(uint ib, uint iqs) {
    uint base = dq_base(ib);
    uint l = iqs & 31u;
    uint q = (qa_u8(base + DQ_QS_OFF + 32u * (iqs / 64u) + l) >> (4u * ((iqs / 32u) & 1u))) & 15u;
#if defined(DATA_A_Q5_K)
    q |= ((qa_u8(base + DQ_QH_OFF + l) >> (iqs / 32u)) & 1u) << 4;
#endif
    return float(q);
}
#define DQ_HAS_MIN 1

#elif defined(DATA_A_Q6_K)
// ql[128] | qh[64] | scales[16] (int8) | d (fp16). Half h = iqs/128, quarter k = (iqs%128)/32, l = iqs%32:
// low 4 bits in ql[64h + 32(k&1) + l] (low nibble for k < 2, else high), top 2 bits in bits 2k..2k+1 of
// qh[32h + l]; value = (d*scale[iqs/16]) * (q - 32)
#define BLOCK_SIZE 256u
#define BLOCK_BYTES 210u
#define DQ_DM_RUN 16u
uint dq_base(uint ib) { return A_BYTE_OFFSET + ib * BLOCK_BYTES; }
vec2 dequant_dm(uint ib, uint iqs) {
    uint base = dq_base(ib);
    float sc = float(bitfieldExtract(int(qa_u8(base + 192u + iqs / 16u)), 0, 8));
    return vec2(qa_f16(base + 208u) * sc, 0.0);
}
vec4 dequant_codes4(uint ib, uint iqs) {
    uint base = dq_base(ib);
    uint h = iqs / 128u, k = (iqs / 32u) & 3u, l = iqs & 31u;
    uint lo = (qa_u32(base + 64u * h + 32u * (k & 1u) + l) >> (4u * (k / 2u))) & 0x0F0F0F0Fu;
    uint hi = (qa_u32(base + 128u + 32u * h + l) >> (2u * k)) & 0x03030303u;
    return qa_bytes4(lo | (hi << 4)) - 32.0;
}
float dequant_code(uint ib, uint iqs) {
    uint base = dq_base(ib);
    uint h = iqs / 128u, k = (iqs / 32u) & 3u, l = iqs & 31u;
    uint lo = (qa_u8(base + 64u * h + 32u * (k & 1u) + l) >> (4u * (k / 2u))) & 15u;
    uint hi = (qa_u8(base + 128u + 32u * h + l) >> (2u * k)) & 3u;
    return float(lo | (hi << 4)) - 32.0;
}
#define DQ_HAS_MIN 0

#else
#error "quant.glsl: define one of DATA_A_F32 DATA_A_F16 DATA_A_BF16 DATA_A_Q8_0 DATA_A_Q4_0 DATA_A_Q4_K DATA_A_Q5_K DATA_A_Q6_K"
#endif

#if !defined(DQ_IS_SCALAR)
#define DQ_IS_SCALAR 0
// Products are formed as in src/ref: (code * dm.x) rounded, then + dm.y rounded, unless the includer lets the
// compiler fuse them (DQ_PRECISE empty).
float dequant_elem(uint ib, uint iqs) {
    vec2 dm = dequant_dm(ib, iqs);
#if DQ_HAS_MIN
    DQ_PRECISE float r = dequant_code(ib, iqs) * dm.x + dm.y;
#else
    DQ_PRECISE float r = dequant_code(ib, iqs) * dm.x;
#endif
    return r;
}
vec4 dequant_vec4(uint ib, uint iqs) {
    vec2 dm = dequant_dm(ib, iqs);
#if DQ_HAS_MIN
    DQ_PRECISE vec4 r = dequant_codes4(ib, iqs) * dm.x + dm.y;
#else
    DQ_PRECISE vec4 r = dequant_codes4(ib, iqs) * dm.x;
#endif
    return r;
}
#else
vec4 dequant_vec4(uint ib, uint iqs) { return dequant_codes4(ib, iqs); }
#endif

#endif
