/* Compute pipelines from embedded SPIR-V: push-descriptor set layouts, push constants, specialization constants
 * (0 = workgroup size by convention) and an optional required subgroup size. */
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"

vkl_status vkl_pipeline_create(vkl_vk *vk, const vkl_pipeline_desc *desc, vkl_pipeline *out, vkl_err *err) {
    memset(out, 0, sizeof(*out));
    const vkl_spirv *spv = vkl_spirv_find(desc->shader);
    if (!spv) return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: no embedded shader named '%s'", desc->shader);
    if (desc->n_bindings > VKL_MAX_BINDINGS || desc->n_spec > VKL_MAX_SPEC || desc->push_size % 4 ||
        desc->push_size > vk->info.max_push_constants)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: pipeline '%s': bad descriptor (bindings %u, spec %u, push %u)",
                           desc->shader, desc->n_bindings, desc->n_spec, desc->push_size);
    if (desc->required_subgroup_size &&
        (!vk->info.subgroup_size_control || desc->required_subgroup_size < vk->info.min_subgroup_size ||
         desc->required_subgroup_size > vk->info.max_subgroup_size))
        return vkl_err_set(err, VKL_ERR_RUNTIME,
                           "vulkan: pipeline '%s' needs subgroup size %u; the device offers %u..%u%s", desc->shader,
                           desc->required_subgroup_size, vk->info.min_subgroup_size, vk->info.max_subgroup_size,
                           vk->info.subgroup_size_control ? "" : " without size control");
    out->name = spv->name; /* static storage: desc->shader may be a caller's buffer */
    out->n_bindings = desc->n_bindings;
    memcpy(out->bindings, desc->bindings, sizeof(out->bindings));
    out->push_size = desc->push_size;
    out->wg_size = desc->n_spec ? desc->spec[0] : 1;

    VkShaderModule module = VK_NULL_HANDLE;
    VkShaderModuleCreateInfo smci = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = spv->size,
        .pCode = spv->code,
    };
    VKL_VK_TRY(vk, vkCreateShaderModule(vk->device, &smci, NULL, &module), err);

    VkDescriptorSetLayoutBinding b[VKL_MAX_BINDINGS];
    for (uint32_t i = 0; i < desc->n_bindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = i,
            .descriptorType = desc->bindings[i] == VKL_BIND_TEXEL ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                                  : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    VkDescriptorSetLayoutCreateInfo dslci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .flags = VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR,
        .bindingCount = desc->n_bindings,
        .pBindings = b,
    };
    VkResult r = vkCreateDescriptorSetLayout(vk->device, &dslci, NULL, &out->set_layout);
    if (r == VK_SUCCESS) {
        VkPushConstantRange pcr = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .size = desc->push_size};
        VkPipelineLayoutCreateInfo plci = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
            .setLayoutCount = 1,
            .pSetLayouts = &out->set_layout,
            .pushConstantRangeCount = desc->push_size ? 1 : 0,
            .pPushConstantRanges = &pcr,
        };
        r = vkCreatePipelineLayout(vk->device, &plci, NULL, &out->layout);
    }
    if (r == VK_SUCCESS) {
        VkSpecializationMapEntry me[VKL_MAX_SPEC];
        for (uint32_t i = 0; i < desc->n_spec; i++)
            me[i] = (VkSpecializationMapEntry){.constantID = i, .offset = i * 4, .size = 4};
        VkSpecializationInfo si = {
            .mapEntryCount = desc->n_spec,
            .pMapEntries = me,
            .dataSize = desc->n_spec * 4,
            .pData = desc->spec,
        };
        VkPipelineShaderStageRequiredSubgroupSizeCreateInfo rss = {
            .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO,
            .requiredSubgroupSize = desc->required_subgroup_size,
        };
        VkComputePipelineCreateInfo cpci = {
            .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            .stage =
                {
                    .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                    .pNext = desc->required_subgroup_size ? &rss : NULL,
                    /* a kernel that asks for a subgroup size relies on every subgroup being full (shuffles at
                     * constant lanes): Vulkan guarantees it only with this flag */
                    .flags = desc->required_subgroup_size && vk->info.compute_full_subgroups &&
                                     desc->n_spec && desc->spec[0] % desc->required_subgroup_size == 0
                                 ? VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT
                                 : 0,
                    .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                    .module = module,
                    .pName = "main",
                    .pSpecializationInfo = desc->n_spec ? &si : NULL,
                },
            .layout = out->layout,
        };
        r = vkCreateComputePipelines(vk->device, vk->pipeline_cache, 1, &cpci, NULL, &out->pipeline);
    }
    vkDestroyShaderModule(vk->device, module, NULL);
    if (r != VK_SUCCESS) {
        vkl_pipeline_destroy(vk, out);
        return vkl_vk_check(vk, r, "vkCreateComputePipelines", __FILE__, __LINE__, err);
    }
    return VKL_OK;
}

void vkl_pipeline_destroy(vkl_vk *vk, vkl_pipeline *p) {
    if (!p) return;
    if (p->pipeline) vkDestroyPipeline(vk->device, p->pipeline, NULL);
    if (p->layout) vkDestroyPipelineLayout(vk->device, p->layout, NULL);
    if (p->set_layout) vkDestroyDescriptorSetLayout(vk->device, p->set_layout, NULL);
    memset(p, 0, sizeof(*p));
}
