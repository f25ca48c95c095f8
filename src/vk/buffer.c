/* Device and host buffers: memory-type choice, accounting, staging uploads/downloads (chunked, any size),
 * fills, texel buffer views (cached), and the binding-range limit used to split large tensors. */
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"

#define STAGING_BYTES (64ull << 20)

typedef struct vkl_texel_view {
    VkBuffer buffer;
    uint64_t offset, range;
    VkFormat format;
    VkBufferView view;
} vkl_texel_view;

static int32_t find_memory_type(const vkl_vk *vk, uint32_t bits, VkMemoryPropertyFlags want,
                                VkMemoryPropertyFlags avoid) {
    for (uint32_t i = 0; i < vk->mem_props.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = vk->mem_props.memoryTypes[i].propertyFlags;
        if ((bits & (1u << i)) && (f & want) == want && !(f & avoid)) return (int32_t)i;
    }
    return -1;
}

vkl_status vkl_buffer_create(vkl_vk *vk, uint64_t size, vkl_mem_kind kind, vkl_buffer *out, vkl_err *err) {
    memset(out, 0, sizeof(*out));
    if (size == 0) size = 4;
    size = (size + 15) & ~15ull; /* fills and vec4 loads may touch the tail */
    if (size > vk->info.max_buffer_size || size > vk->info.max_allocation_size)
        return vkl_err_set(err, VKL_ERR_RUNTIME,
                           "vulkan: a buffer of %.1f MiB exceeds the device's limit (max buffer %.1f MiB, max "
                           "allocation %.1f MiB)",
                           size / 1048576.0, vk->info.max_buffer_size / 1048576.0,
                           vk->info.max_allocation_size / 1048576.0);
    VkBufferCreateInfo bci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
        .size = size,
        .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                 VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        .sharingMode = VK_SHARING_MODE_EXCLUSIVE,
    };
    VKL_VK_TRY(vk, vkCreateBuffer(vk->device, &bci, NULL, &out->buffer), err);
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(vk->device, out->buffer, &req);
    int32_t type;
    if (kind == VKL_MEM_DEVICE) {
        /* Prefer device-local memory the host cannot see (the big VRAM heap on discrete GPUs); on unified-memory
         * devices (integrated, lavapipe) device-local memory is also host-visible and gets mapped below. */
        type = find_memory_type(vk, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
        if (type < 0) type = find_memory_type(vk, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
        if (type < 0) type = find_memory_type(vk, req.memoryTypeBits, 0, 0);
    } else {
        VkMemoryPropertyFlags hv = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
        type = find_memory_type(vk, req.memoryTypeBits, hv | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0);
        if (type < 0) type = find_memory_type(vk, req.memoryTypeBits, hv, 0);
    }
    if (type < 0) {
        vkDestroyBuffer(vk->device, out->buffer, NULL);
        out->buffer = VK_NULL_HANDLE;
        return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: no suitable memory type for a %s buffer",
                           kind == VKL_MEM_DEVICE ? "device" : "host");
    }
    VkMemoryAllocateInfo mai = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
        .allocationSize = req.size,
        .memoryTypeIndex = (uint32_t)type,
    };
    VkResult r = vkAllocateMemory(vk->device, &mai, NULL, &out->memory);
    if (r != VK_SUCCESS) {
        vkDestroyBuffer(vk->device, out->buffer, NULL);
        out->buffer = VK_NULL_HANDLE;
        if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
            return vkl_err_set(err, VKL_ERR_RUNTIME,
                               "vulkan: out of %s memory allocating %.1f MiB (%.1f MiB already allocated by vklora; "
                               "the device reports %.1f MiB): lower per_device_train_batch_size or max_seq_length, "
                               "or enable use_gradient_checkpointing",
                               r == VK_ERROR_OUT_OF_DEVICE_MEMORY ? "device" : "host", req.size / 1048576.0,
                               vk->device_bytes / 1048576.0, vk->info.device_local_bytes / 1048576.0);
        return vkl_vk_check(vk, r, "vkAllocateMemory", __FILE__, __LINE__, err);
    }
    VKL_VK_TRY(vk, vkBindBufferMemory(vk->device, out->buffer, out->memory, 0), err);
    out->size = size;
    out->kind = kind;
    if (vk->mem_props.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT &&
        vk->mem_props.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) {
        VKL_VK_TRY(vk, vkMapMemory(vk->device, out->memory, 0, VK_WHOLE_SIZE, 0, &out->mapped), err);
    }
    if (kind == VKL_MEM_DEVICE) {
        vk->device_bytes += size;
        if (vk->device_bytes > vk->device_bytes_peak) vk->device_bytes_peak = vk->device_bytes;
    }
    return VKL_OK;
}

static void destroy_views_of(vkl_vk *vk, VkBuffer buf) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < vk->n_views; i++) {
        if (buf == VK_NULL_HANDLE || vk->views[i].buffer == buf)
            vkDestroyBufferView(vk->device, vk->views[i].view, NULL);
        else
            vk->views[k++] = vk->views[i];
    }
    vk->n_views = k;
}

void vkl_buffer_views_destroy_all(vkl_vk *vk) {
    destroy_views_of(vk, VK_NULL_HANDLE);
    free(vk->views);
    vk->views = NULL;
    vk->cap_views = 0;
}

void vkl_buffer_destroy(vkl_vk *vk, vkl_buffer *b) {
    if (!b || !b->buffer) return;
    destroy_views_of(vk, b->buffer);
    if (b->mapped) vkUnmapMemory(vk->device, b->memory);
    vkDestroyBuffer(vk->device, b->buffer, NULL);
    if (b->memory) {
        vkFreeMemory(vk->device, b->memory, NULL);
        if (b->kind == VKL_MEM_DEVICE) vk->device_bytes -= VKL_MIN(vk->device_bytes, b->size);
    }
    memset(b, 0, sizeof(*b));
}

VkBufferView vkl_texel_view_get(vkl_vk *vk, const vkl_buffer *b, uint64_t offset, uint64_t range, VkFormat fmt,
                                vkl_err *err);
VkBufferView vkl_texel_view_get(vkl_vk *vk, const vkl_buffer *b, uint64_t offset, uint64_t range, VkFormat fmt,
                                vkl_err *err) {
    for (uint32_t i = 0; i < vk->n_views; i++) {
        vkl_texel_view *v = &vk->views[i];
        if (v->buffer == b->buffer && v->offset == offset && v->range == range && v->format == fmt) return v->view;
    }
    VkBufferViewCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
        .buffer = b->buffer,
        .format = fmt,
        .offset = offset,
        .range = range,
    };
    VkBufferView view;
    VkResult r = vkCreateBufferView(vk->device, &ci, NULL, &view);
    if (r != VK_SUCCESS) {
        vkl_vk_check(vk, r, "vkCreateBufferView", __FILE__, __LINE__, err);
        return VK_NULL_HANDLE;
    }
    if (vk->n_views == vk->cap_views) {
        vk->cap_views = vk->cap_views ? vk->cap_views * 2 : 64;
        vk->views = vkl_realloc(vk->views, vk->cap_views * sizeof(*vk->views));
    }
    vk->views[vk->n_views++] = (vkl_texel_view){b->buffer, offset, range, fmt, view};
    return view;
}

static vkl_status ensure_staging(vkl_vk *vk, vkl_err *err) {
    if (vk->staging) return VKL_OK;
    vkl_buffer *s = vkl_calloc(1, sizeof(*s));
    if (vkl_buffer_create(vk, STAGING_BYTES, VKL_MEM_HOST, s, err)) {
        free(s);
        return err->status;
    }
    vk->staging = s;
    return VKL_OK;
}

static vkl_status copy_now(vkl_vk *vk, VkBuffer src, uint64_t so, VkBuffer dst, uint64_t dof, uint64_t n,
                           vkl_err *err) {
    if (vkl_cmd_begin(vk, err)) return err->status;
    VkBufferCopy c = {.srcOffset = so, .dstOffset = dof, .size = n};
    vkCmdCopyBuffer(vk->cmd, src, dst, 1, &c);
    return vkl_cmd_submit_wait(vk, err);
}

static vkl_status check_range(const char *what, const vkl_buffer *b, uint64_t off, uint64_t n, vkl_err *err) {
    uint64_t end;
    if (!vkl_add_u64(off, n, &end) || end > b->size)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: %s of %llu bytes at offset %llu exceeds the buffer (%llu bytes)",
                           what, (unsigned long long)n, (unsigned long long)off, (unsigned long long)b->size);
    return VKL_OK;
}

vkl_status vkl_buffer_upload(vkl_vk *vk, vkl_buffer *dst, uint64_t offset, const void *src, uint64_t n,
                             vkl_err *err) {
    if (check_range("upload", dst, offset, n, err)) return err->status;
    if (dst->mapped) {
        memcpy((uint8_t *)dst->mapped + offset, src, n);
        return VKL_OK;
    }
    if (ensure_staging(vk, err)) return err->status;
    for (uint64_t done = 0; done < n;) {
        uint64_t c = VKL_MIN(n - done, STAGING_BYTES);
        memcpy(vk->staging->mapped, (const uint8_t *)src + done, c);
        if (copy_now(vk, vk->staging->buffer, 0, dst->buffer, offset + done, c, err)) return err->status;
        done += c;
    }
    return VKL_OK;
}

vkl_status vkl_buffer_download(vkl_vk *vk, const vkl_buffer *src, uint64_t offset, void *dst, uint64_t n,
                               vkl_err *err) {
    if (check_range("download", src, offset, n, err)) return err->status;
    if (src->mapped) {
        memcpy(dst, (const uint8_t *)src->mapped + offset, n);
        return VKL_OK;
    }
    if (ensure_staging(vk, err)) return err->status;
    for (uint64_t done = 0; done < n;) {
        uint64_t c = VKL_MIN(n - done, STAGING_BYTES);
        if (copy_now(vk, src->buffer, offset + done, vk->staging->buffer, 0, c, err)) return err->status;
        memcpy((uint8_t *)dst + done, vk->staging->mapped, c);
        done += c;
    }
    return VKL_OK;
}

vkl_status vkl_buffer_fill(vkl_vk *vk, vkl_buffer *b, uint64_t offset, uint64_t n, uint32_t value, vkl_err *err) {
    if (check_range("fill", b, offset, n, err)) return err->status;
    if ((offset | n) & 3) return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: fill offset and size must be multiples of 4");
    bool was_recording = vk->recording;
    if (!was_recording && vkl_cmd_begin(vk, err)) return err->status;
    vkl_cmd_barrier(vk);
    vkCmdFillBuffer(vk->cmd, b->buffer, offset, n, value);
    vk->dispatched = true; /* the next dispatch must wait for the fill */
    vk->transfer_pending = true;
    if (!was_recording) return vkl_cmd_submit_wait(vk, err);
    return VKL_OK;
}

static uint64_t gcd_u64(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

uint64_t vkl_max_bind_elems(const vkl_vk *vk, uint64_t unit, uint64_t multiple) {
    uint64_t limit = vk->info.max_storage_buffer_range;
    /* Test switch: pretend the device binds less, so chunked paths run on small data. */
    uint64_t v = 0;
    bool given = false;
    vkl_err e = {0}; /* a malformed value was refused by vkl_vk_create */
    if (vkl_env_size("VKLORA_MAX_BIND_BYTES", 256, &v, &given, &e) == VKL_OK && given && v < limit) limit = v;
    uint64_t align = vk->info.min_storage_offset_align ? vk->info.min_storage_offset_align : 1;
    if (vk->info.min_texel_offset_align > align) align = vk->info.min_texel_offset_align;
    /* Chunks start at multiples of elems*unit bytes, so that must be a multiple of the offset alignment. */
    uint64_t m = multiple ? multiple : 1;
    uint64_t per_align = align / gcd_u64(align, unit); /* elements per aligned step */
    m = m / gcd_u64(m, per_align) * per_align;
    uint64_t elems = limit / unit;
    elems -= elems % m;
    return elems;
}
