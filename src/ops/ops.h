/* Host side of the compute ops: each op creates (and caches) its pipelines, binds buffer ranges within the
 * device limits and records dispatches. Push-constant structs here mirror the blocks in shaders/<op>.comp. */
#ifndef VKLORA_OPS_H
#define VKLORA_OPS_H

#include "vk/vk.h"

/* Pipelines of the ops, created on first use and kept until vkl_op_cache_destroy. Owned by the caller (one per
 * vkl_vk); keyed by shader name and specialization constants (workgroup size first). */
#define VKL_OP_CACHE_MAX 160
typedef struct vkl_op_cache {
    struct {
        const char *shader; /* points at the embedded SPIR-V's name (static storage) */
        uint32_t wg_size;
        uint32_t n_spec, spec[VKL_MAX_SPEC];
        vkl_pipeline pipe;
    } entries[VKL_OP_CACHE_MAX];
    uint32_t n;
} vkl_op_cache;

/* The device's default subgroup size as a size a pipeline can rely on: the device's only size, or its default size
 * required through subgroup size control (*required then set to it, else 0). 0: no such size. */
uint32_t vkl_op_default_subgroup(const vkl_vk *vk, uint32_t *required);

/* Find or create the pipeline for desc (matched on shader name and every spec constant). *out stays owned by the
 * cache. */
vkl_status vkl_op_cache_get(vkl_vk *vk, vkl_op_cache *cache, const vkl_pipeline_desc *desc, const vkl_pipeline **out,
                            vkl_err *err);
void vkl_op_cache_destroy(vkl_vk *vk, vkl_op_cache *cache);

/* ---- dequantize (shaders/dequant.comp, variants dequant_<type>) ---- */

/* Mirrors `Push` in shaders/dequant.comp. */
typedef struct vkl_dequant_push {
    uint32_t n_blocks;     /* blocks in this dispatch */
    uint32_t src_byte_off; /* byte offset of the first block inside the bound source range (even; x4 for f32) */
    uint32_t dst_elem_off; /* float offset of the first output inside the bound destination range */
    uint32_t pad;
} vkl_dequant_push;
_Static_assert(sizeof(vkl_dequant_push) == 16, "vkl_dequant_push must match the GLSL push-constant block");

/* Name of the dequant shader variant for a ggml type, or NULL if the type has none. */
const char *vkl_dequant_shader_name(uint32_t type);

/* Dequantize n elements (a multiple of the type's block size) of `type` starting at byte src_offset of src into
 * fp32 at byte dst_offset of dst. src_offset and dst_offset must be multiples of 4, and src must extend to the
 * next multiple of 4 bytes after the data (the shader reads whole 32-bit words). Any size: the work is split
 * into chunks whose bindings stay within maxStorageBufferRange, and within max_chunk_bytes when it is non-zero
 * (tests use it to force several chunks). Recorded into the current command buffer when vk is recording
 * (the caller submits), otherwise submitted and waited for here. */
vkl_status vkl_op_dequantize(vkl_vk *vk, vkl_op_cache *cache, uint32_t type, const vkl_buffer *src,
                             uint64_t src_offset, vkl_buffer *dst, uint64_t dst_offset, uint64_t n,
                             uint64_t max_chunk_bytes, vkl_err *err);

/* ---- kernel variants a process ran (src/ops/variants.c) ---- */

/* Records that `op` ("matmul", "gemm", "attention", ...) dispatched its kernel variant `variant` ("texel",
 * "coopmat", "tile", ...); call it at each dispatch site. Names are copied (up to 31 bytes). Thread-safe. */
void vkl_op_variant_used(const char *op, const char *variant);
/* Every op with its variants in first-use order, "matmul: texel; gemm: texel,regtile; ..." ("" if none). Returns
 * buf (always terminated, truncated to n). */
const char *vkl_op_variants_list(char *buf, size_t n);
/* The variants of one op, comma-separated ("" if it did not run). Returns buf. */
const char *vkl_op_variants_of(const char *op, char *buf, size_t n);
/* Copies up to max op names (first-use order) into names; returns how many. */
uint32_t vkl_op_variants_ops(char names[][32], uint32_t max);
/* Forgets every record (tests). */
void vkl_op_variants_reset(void);

#endif
