/* Command recording: one primary command buffer with push-descriptor dispatches, compute barriers,
 * timestamp queries, and a fenced submit that turns timeouts and device loss into errors. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"

VkBufferView vkl_texel_view_get(vkl_vk *vk, const vkl_buffer *b, uint64_t offset, uint64_t range, VkFormat fmt,
                                vkl_err *err);

/* A fence wait this long means a hung device or a driver bug; report it instead of hanging forever.
 * VKLORA_FENCE_TIMEOUT_S overrides it (lavapipe on a slow CPU can legitimately take minutes per submission). */
static uint64_t fence_timeout_ns(void) {
    double s = 1800.0;
    vkl_err e = {0};
    if (vkl_env_seconds("VKLORA_FENCE_TIMEOUT_S", &s, NULL, &e)) s = 1800.0; /* refused at vkl_vk_create */
    return (uint64_t)(s * 1e9);
}

vkl_status vkl_cmd_begin(vkl_vk *vk, vkl_err *err) {
    assert(!vk->recording && "vkl_cmd_begin while recording");
    if (vk->device_lost) return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: the device was lost earlier");
    VKL_VK_TRY(vk, vkResetCommandBuffer(vk->cmd, 0), err);
    VkCommandBufferBeginInfo bi = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT,
    };
    VKL_VK_TRY(vk, vkBeginCommandBuffer(vk->cmd, &bi), err);
    if (vk->query_pool) vkCmdResetQueryPool(vk->cmd, vk->query_pool, 0, vk->query_count);
    if (vk->prof) vkl_profile_begin(vk);
    vk->recording = true;
    vk->dispatched = false;
    vk->transfer_pending = false;
    return VKL_OK;
}

void vkl_cmd_barrier(vkl_vk *vk) {
    assert(vk->recording);
    /* Transfers are waited for only when one is pending: asynchronous copies stay out of the first scope and so
     * overlap with the compute that follows them. */
    VkPipelineStageFlags src = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT;
    VkAccessFlags src_access = VK_ACCESS_SHADER_WRITE_BIT;
    if (vk->transfer_pending) {
        src |= VK_PIPELINE_STAGE_TRANSFER_BIT;
        src_access |= VK_ACCESS_TRANSFER_WRITE_BIT;
    }
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = src_access,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                         VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    vkCmdPipelineBarrier(vk->cmd, src, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1,
                         &mb, 0, NULL, 0, NULL);
    vk->transfer_pending = false;
}

void vkl_cmd_copy(vkl_vk *vk, const vkl_buffer *src, uint64_t src_off, vkl_buffer *dst, uint64_t dst_off,
                  uint64_t n) {
    vkl_cmd_barrier(vk);
    VkBufferCopy c = {.srcOffset = src_off, .dstOffset = dst_off, .size = n};
    vkCmdCopyBuffer(vk->cmd, src->buffer, dst->buffer, 1, &c);
    if (vk->prof) vkl_profile_mark(vk, "copy"); /* asynchronous copies overlap with compute: not timed */
    vk->dispatched = true;
    vk->transfer_pending = true;
}

/* Asynchronous copies and their events. The event is set and reset with ALL_COMMANDS as its stage mask: set right
 * after the copy, whose preceding barrier already made it wait for all earlier work, so the event still signals
 * when the copy is done and later work never waits for it; and the reset then runs only after the wait that
 * consumed the event, and a later set only after that reset (an event's set, wait and reset must be ordered by
 * execution dependencies, as synchronization validation checks: with TRANSFER as the mask they were not, and a GPU
 * with a separate copy engine could reset the event before the wait saw it). */
void vkl_cmd_copy_async(vkl_vk *vk, const vkl_buffer *src, uint64_t src_off, vkl_buffer *dst, uint64_t dst_off,
                        uint64_t n, VkEvent ev) {
    vkl_cmd_barrier(vk); /* the data to copy was made by the work before */
    VkBufferCopy c = {.srcOffset = src_off, .dstOffset = dst_off, .size = n};
    vkCmdCopyBuffer(vk->cmd, src->buffer, dst->buffer, 1, &c);
    vkCmdSetEvent(vk->cmd, ev, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT);
    vk->dispatched = true; /* a barrier still precedes the next dispatch, but it leaves this copy out */
}

void vkl_cmd_wait_event(vkl_vk *vk, VkEvent ev) {
    assert(vk->recording);
    /* The copy read its source (a later write must wait: execution dependency) and wrote its destination (a later
     * read or write must see it: memory dependency). */
    VkMemoryBarrier mb = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                         VK_ACCESS_TRANSFER_WRITE_BIT,
    };
    /* srcStageMask must equal the set's stage mask */
    vkCmdWaitEvents(vk->cmd, 1, &ev, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                    VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 1, &mb, 0, NULL, 0, NULL);
    vkCmdResetEvent(vk->cmd, ev, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT);
}

vkl_status vkl_cmd_dispatch(vkl_vk *vk, const vkl_pipeline *p, const vkl_binding *bindings, uint32_t n_bindings,
                            const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz,
                            vkl_err *err) {
    assert(vk->recording && "dispatch outside vkl_cmd_begin/submit");
    assert(n_bindings == p->n_bindings && "binding count does not match the pipeline");
    assert(push_size == p->push_size && "push-constant size does not match the pipeline");
    if (gx == 0 || gy == 0 || gz == 0) return VKL_OK;
    const uint32_t *maxc = vk->info.max_workgroup_count;
    if (gx > maxc[0] || gy > maxc[1] || gz > maxc[2])
        return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: %s: dispatch %ux%ux%u exceeds the device's %ux%ux%u",
                           p->name, gx, gy, gz, maxc[0], maxc[1], maxc[2]);
    VkWriteDescriptorSet w[VKL_MAX_BINDINGS];
    VkDescriptorBufferInfo bi[VKL_MAX_BINDINGS];
    VkBufferView views[VKL_MAX_BINDINGS];
    for (uint32_t i = 0; i < n_bindings; i++) {
        const vkl_binding *b = &bindings[i];
        uint64_t range = b->range ? b->range : b->buf->size - b->offset;
        w[i] = (VkWriteDescriptorSet){
            .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
            .dstBinding = i,
            .descriptorCount = 1,
        };
        if (p->bindings[i] == VKL_BIND_TEXEL) {
            assert(b->texel_format != VK_FORMAT_UNDEFINED);
            views[i] = vkl_texel_view_get(vk, b->buf, b->offset, range, b->texel_format, err);
            if (!views[i]) return err->status;
            w[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
            w[i].pTexelBufferView = &views[i];
        } else {
            if (range > vk->info.max_storage_buffer_range)
                return vkl_err_set(err, VKL_ERR_RUNTIME,
                                   "vulkan: %s: binding %u covers %llu bytes, over maxStorageBufferRange %u (the op must "
                                   "split the tensor)",
                                   p->name, i, (unsigned long long)range, vk->info.max_storage_buffer_range);
            bi[i] = (VkDescriptorBufferInfo){.buffer = b->buf->buffer, .offset = b->offset, .range = range};
            w[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
            w[i].pBufferInfo = &bi[i];
        }
    }
    if (vk->dispatched) vkl_cmd_barrier(vk);
    vkCmdBindPipeline(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
    vkCmdPushDescriptorSetKHR(vk->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, n_bindings, w);
    if (push_size) vkCmdPushConstants(vk->cmd, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, push);
    vkCmdDispatch(vk->cmd, gx, gy, gz);
    if (vk->prof) vkl_profile_mark(vk, p->name);
    vk->dispatched = true;
    return VKL_OK;
}

void vkl_cmd_timestamp(vkl_vk *vk, uint32_t query) {
    assert(vk->recording);
    if (!vk->query_pool || query >= vk->query_count) return;
    vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, vk->query_pool, query);
}

vkl_status vkl_cmd_submit_wait(vkl_vk *vk, vkl_err *err) {
    assert(vk->recording);
    vk->recording = false;
    VKL_VK_TRY(vk, vkEndCommandBuffer(vk->cmd), err);
    VkSubmitInfo si = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
        .commandBufferCount = 1,
        .pCommandBuffers = &vk->cmd,
    };
    VKL_VK_TRY(vk, vkResetFences(vk->device, 1, &vk->fence), err);
    VKL_VK_TRY(vk, vkQueueSubmit(vk->queue, 1, &si, vk->fence), err);
    VkResult r = vkWaitForFences(vk->device, 1, &vk->fence, VK_TRUE, fence_timeout_ns());
    if (r == VK_TIMEOUT) {
        vk->device_lost = true;
        return vkl_err_set(err, VKL_ERR_RUNTIME,
                           "vulkan: the device did not finish a submission within %.0f s (hung device or driver; "
                           "VKLORA_FENCE_TIMEOUT_S raises the limit)",
                           fence_timeout_ns() / 1e9);
    }
    VKL_VK_TRY(vk, r, err);
    if (vk->prof) return vkl_profile_collect(vk, err);
    return VKL_OK;
}

vkl_status vkl_timestamp_ns(vkl_vk *vk, uint32_t q0, uint32_t q1, double *ns, vkl_err *err) {
    *ns = 0;
    if (!vk->query_pool || q0 >= vk->query_count || q1 >= vk->query_count)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: timestamps are not available on this device/queue");
    uint64_t t[2];
    VKL_VK_TRY(vk, vkGetQueryPoolResults(vk->device, vk->query_pool, q0, 1, 8, &t[0], 8,
                                         VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT), err);
    VKL_VK_TRY(vk, vkGetQueryPoolResults(vk->device, vk->query_pool, q1, 1, 8, &t[1], 8,
                                         VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT), err);
    *ns = (double)(t[1] - t[0]) * vk->info.timestamp_period_ns;
    return VKL_OK;
}
