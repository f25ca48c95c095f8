#version 450
// Embedding gather: out[i, :] = dequant(table row ids[i]), table in GGUF blocks (-DDATA_A_<TYPE>). Each invocation
// writes 4 values. The host binds the table in row chunks; ids outside the bound chunk are left to another dispatch.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

// Mirrors vkl_get_rows_push in src/ops/nn_push.h.
layout(push_constant) uniform Push {
    uint n_ids;
    uint n;
    uint table_byte_off;
    uint table_row0;
    uint table_rows;
    uint table_total;
    uint ids_off;
    uint out_off;
} p;

layout(std430, binding = 0) readonly buffer A { uint data_a[]; };
layout(std430, binding = 1) readonly buffer I { int ids[]; };
layout(std430, binding = 2) writeonly buffer O { float data_o[]; };

// Byte offset of the current row inside the bound table range, read by the decoders through A_BYTE_OFFSET.
uint g_row_byte;
#define A_WORD(i) data_a[i]
#define A_BYTE_OFFSET g_row_byte
#define DQ_PRECISE precise
#include "common/quant.glsl"
#include "common/grid.glsl"

void main() {
    uint per_row = (p.n + 3u) / 4u;
    uint inv = inv_linear();
    uint r = inv / per_row;
    if (r >= p.n_ids) return;
    uint e = (inv % per_row) * 4u;
    uint o = p.out_off + r * p.n + e;
    uint cnt = min(4u, p.n - e);
    int id = ids[p.ids_off + r];
    if (id < 0 || uint(id) >= p.table_total) {
        // An invalid id (the caller validates; this keeps the output defined) reads as a row of zeros.
        for (uint k = 0u; k < cnt; k++) data_o[o + k] = 0.0;
        return;
    }
    if (uint(id) < p.table_row0 || uint(id) - p.table_row0 >= p.table_rows) return;
    g_row_byte = p.table_byte_off + (uint(id) - p.table_row0) * ((p.n / BLOCK_SIZE) * BLOCK_BYTES);
    if (cnt == 4u) {
        vec4 v = dequant_vec4(e / BLOCK_SIZE, e % BLOCK_SIZE);
        data_o[o] = v.x;
        data_o[o + 1u] = v.y;
        data_o[o + 2u] = v.z;
        data_o[o + 3u] = v.w;
    } else {
        // Only scalar types end a row mid-vec4; a vec4 read there could cross into the next row or past the range.
        for (uint k = 0u; k < cnt; k++) data_o[o + k] = dequant_elem((e + k) / BLOCK_SIZE, (e + k) % BLOCK_SIZE);
    }
}
