/* The op pipeline cache and vkl_op_dequantize: GGUF blocks -> fp32 on the device with shaders/dequant.comp,
 * split into chunks so that no binding exceeds maxStorageBufferRange, for tensors of any size. */
#include <string.h>

#include "ops/ops.h"
#include "vklora/quant.h"

uint32_t vkl_op_default_subgroup(const vkl_vk *vk, uint32_t *required) {
    const vkl_device_info *d = &vk->info;
    *required = 0;
    if (d->min_subgroup_size == d->max_subgroup_size) return d->subgroup_size;
    if (!d->subgroup_size_control || d->subgroup_size < d->min_subgroup_size || d->subgroup_size > d->max_subgroup_size)
        return 0;
    *required = d->subgroup_size;
    return d->subgroup_size;
}

vkl_status vkl_op_cache_get(vkl_vk *vk, vkl_op_cache *cache, const vkl_pipeline_desc *desc, const vkl_pipeline **out,
                            vkl_err *err) {
    uint32_t wg = desc->n_spec ? desc->spec[0] : 0;
    for (uint32_t i = 0; i < cache->n; i++) {
        if (cache->entries[i].wg_size == wg && cache->entries[i].n_spec == desc->n_spec &&
            desc->n_spec <= VKL_MAX_SPEC &&
            !memcmp(cache->entries[i].spec, desc->spec, desc->n_spec * sizeof(uint32_t)) &&
            !strcmp(cache->entries[i].shader, desc->shader)) {
            *out = &cache->entries[i].pipe;
            return VKL_OK;
        }
    }
    const vkl_spirv *spv = vkl_spirv_find(desc->shader);
    if (!spv) return vkl_err_set(err, VKL_ERR_RUNTIME, "ops: no embedded shader named \"%s\"", desc->shader);
    if (cache->n == VKL_OP_CACHE_MAX)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "ops: pipeline cache full (%d pipelines) creating \"%s\"",
                           VKL_OP_CACHE_MAX, desc->shader);
    vkl_status st = vkl_pipeline_create(vk, desc, &cache->entries[cache->n].pipe, err);
    if (st) return st;
    cache->entries[cache->n].shader = spv->name;
    cache->entries[cache->n].wg_size = wg;
    cache->entries[cache->n].n_spec = desc->n_spec;
    memcpy(cache->entries[cache->n].spec, desc->spec, sizeof(desc->spec));
    *out = &cache->entries[cache->n++].pipe;
    return VKL_OK;
}

void vkl_op_cache_destroy(vkl_vk *vk, vkl_op_cache *cache) {
    for (uint32_t i = 0; i < cache->n; i++) vkl_pipeline_destroy(vk, &cache->entries[i].pipe);
    cache->n = 0;
}

const char *vkl_dequant_shader_name(uint32_t type) {
    switch (type) {
    case VKL_TYPE_F32: return "dequant_f32";
    case VKL_TYPE_F16: return "dequant_f16";
    case VKL_TYPE_BF16: return "dequant_bf16";
    case VKL_TYPE_Q8_0: return "dequant_q8_0";
    case VKL_TYPE_Q4_0: return "dequant_q4_0";
    case VKL_TYPE_Q4_K: return "dequant_q4_k";
    case VKL_TYPE_Q5_K: return "dequant_q5_k";
    case VKL_TYPE_Q6_K: return "dequant_q6_k";
    default: return NULL;
    }
}

#define DQ_PER_INVOCATION 4 /* values written by one invocation of dequant.comp */

/* Largest block count per dispatch: both bindings (with up to align-1 bytes of slack in front, because their
 * offsets are rounded down to the device's alignment, and the source rounded up to whole words) must fit the
 * binding limit; element counts stay below 2^30 so the shader's uint index arithmetic cannot wrap; and the
 * workgroup grid must fit maxComputeWorkGroupCount x*y. */
static uint64_t max_chunk_blocks(const vkl_vk *vk, const vkl_type_traits *t, uint64_t align, uint64_t limit,
                                 uint32_t wg) {
    if (limit <= align + 4) return 0;
    uint64_t by_src = (limit - align - 4) / t->type_size;
    uint64_t by_dst = (limit - align) / (4ull * t->block_size);
    uint64_t by_idx = (1ull << 30) / t->block_size;
    uint64_t max_wgs = (uint64_t)vk->info.max_workgroup_count[0] * VKL_MAX(vk->info.max_workgroup_count[1], 1u);
    uint64_t by_grid = max_wgs * wg * DQ_PER_INVOCATION / t->block_size;
    return VKL_MIN(VKL_MIN(by_src, by_dst), VKL_MIN(by_idx, by_grid));
}

static vkl_status record_chunks(vkl_vk *vk, const vkl_pipeline *pipe, const vkl_type_traits *t,
                                const vkl_buffer *src, uint64_t src_offset, vkl_buffer *dst, uint64_t dst_offset,
                                uint64_t n_blocks, uint64_t chunk_blocks, uint64_t align, uint32_t wg, vkl_err *err) {
    for (uint64_t b0 = 0; b0 < n_blocks; b0 += chunk_blocks) {
        uint64_t nb = VKL_MIN(chunk_blocks, n_blocks - b0);
        uint64_t src_pos = src_offset + b0 * t->type_size;
        uint64_t dst_pos = dst_offset + b0 * t->block_size * 4;
        uint64_t src_bind = src_pos / align * align, dst_bind = dst_pos / align * align;
        uint64_t src_range = (src_pos - src_bind + nb * t->type_size + 3) / 4 * 4;
        uint64_t dst_range = dst_pos - dst_bind + nb * t->block_size * 4;
        vkl_binding binds[2] = {
            {.buf = src, .offset = src_bind, .range = src_range, .texel_format = VK_FORMAT_UNDEFINED},
            {.buf = dst, .offset = dst_bind, .range = dst_range, .texel_format = VK_FORMAT_UNDEFINED},
        };
        vkl_dequant_push pc = {
            .n_blocks = (uint32_t)nb,
            .src_byte_off = (uint32_t)(src_pos - src_bind),
            .dst_elem_off = (uint32_t)((dst_pos - dst_bind) / 4),
        };
        uint64_t invocations = (nb * t->block_size + DQ_PER_INVOCATION - 1) / DQ_PER_INVOCATION;
        uint64_t wgs = (invocations + wg - 1) / wg;
        uint64_t gx = VKL_MIN(wgs, (uint64_t)vk->info.max_workgroup_count[0]);
        uint64_t gy = (wgs + gx - 1) / gx;
        vkl_status st = vkl_cmd_dispatch(vk, pipe, binds, 2, &pc, sizeof(pc), (uint32_t)gx, (uint32_t)gy, 1, err);
        if (st) return st;
    }
    return VKL_OK;
}

vkl_status vkl_op_dequantize(vkl_vk *vk, vkl_op_cache *cache, uint32_t type, const vkl_buffer *src,
                             uint64_t src_offset, vkl_buffer *dst, uint64_t dst_offset, uint64_t n,
                             uint64_t max_chunk_bytes, vkl_err *err) {
    const vkl_type_traits *t = vkl_type_traits_get(type);
    const char *shader = vkl_dequant_shader_name(type);
    if (!t || !shader)
        return vkl_err_set(err, VKL_ERR_INPUT, "dequantize: type %u (%s) has no dequantize shader", type,
                           t ? t->name : "unknown");
    if (n % t->block_size)
        return vkl_err_set(err, VKL_ERR_INPUT, "dequantize: %llu elements is not a multiple of the %s block size %u",
                           (unsigned long long)n, t->name, t->block_size);
    if (src_offset % 4 || dst_offset % 4)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "dequantize: source offset %llu and destination offset %llu must be multiples of 4",
                           (unsigned long long)src_offset, (unsigned long long)dst_offset);
    uint64_t n_blocks = n / t->block_size, src_bytes, dst_bytes, src_end, dst_end;
    if (!vkl_mul_u64(n_blocks, t->type_size, &src_bytes) || !vkl_mul_u64(n, 4, &dst_bytes) ||
        !vkl_add_u64(src_offset, (src_bytes + 3) / 4 * 4, &src_end) || !vkl_add_u64(dst_offset, dst_bytes, &dst_end) ||
        src_end > src->size || dst_end > dst->size)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "dequantize: %llu %s elements from byte %llu of a %llu-byte buffer (reading whole words) "
                           "into byte %llu of a %llu-byte buffer: out of bounds",
                           (unsigned long long)n, t->name, (unsigned long long)src_offset,
                           (unsigned long long)src->size, (unsigned long long)dst_offset,
                           (unsigned long long)dst->size);
    if (n == 0) return VKL_OK;

    /* 64 lanes is a multiple of every subgroup size in use (8..64) without assuming one, and within the
     * 128-invocation minimum that Vulkan guarantees. */
    uint32_t wg = VKL_MIN(64u, vk->info.max_workgroup_invocations ? vk->info.max_workgroup_invocations : 64u);
    vkl_pipeline_desc desc = {
        .shader = shader,
        .n_bindings = 2,
        .bindings = {VKL_BIND_STORAGE, VKL_BIND_STORAGE},
        .push_size = sizeof(vkl_dequant_push),
        .n_spec = 1,
        .spec = {wg},
    };
    const vkl_pipeline *pipe;
    vkl_status st = vkl_op_cache_get(vk, cache, &desc, &pipe, err);
    if (st) return st;

    uint64_t align = VKL_MAX(vk->info.min_storage_offset_align, 4);
    /* vkl_max_bind_elems honours the VKLORA_MAX_BIND_BYTES test switch as well as the device limit. */
    uint64_t limit = vkl_max_bind_elems(vk, 1, 1);
    if (max_chunk_bytes && max_chunk_bytes < limit) limit = max_chunk_bytes;
    uint64_t chunk = max_chunk_blocks(vk, t, align, limit, wg);
    if (chunk == 0)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "dequantize: a binding limit of %llu bytes (offset alignment %llu) cannot hold one %s "
                           "block", (unsigned long long)limit, (unsigned long long)align, t->name);

    bool own = !vk->recording;
    if (own && (st = vkl_cmd_begin(vk, err))) return st;
    st = record_chunks(vk, pipe, t, src, src_offset, dst, dst_offset, n_blocks, chunk, align, wg, err);
    if (own) {
        /* Submit even after a recording error so the command buffer leaves the recording state; err keeps the
         * first message. */
        vkl_status st2 = vkl_cmd_submit_wait(vk, err);
        if (!st) st = st2;
    }
    return st;
}
