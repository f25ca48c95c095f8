/* `vklora devices`: list every Vulkan device with the limits and features vklora's kernels depend on. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vk/vk.h"

static const char *HELP =
    "usage: vklora devices [--json]\n\n"
    "Lists every Vulkan device: index, name, vendor, type, driver, API version, device-local memory,\n"
    "subgroup size (min/max with subgroup-size control), fp16/16-bit/8-bit storage, int8 dot product,\n"
    "cooperative matrix (with the device's matrix shapes and types, and whether this build has the\n"
    "cooperative-matrix kernels), buffer device address, maxStorageBufferRange and max shared memory.\n"
    "Pick one for other commands with --device <index|name> or VKLORA_DEVICE.\n\n"
    "  --json   print one JSON object {\"devices\": [...]}\n";

static cJSON *device_json(const vkl_device_info *d) {
    cJSON *o = cJSON_CreateObject();
    char buf[64];
    cJSON_AddNumberToObject(o, "index", d->index);
    cJSON_AddStringToObject(o, "name", d->name);
    cJSON_AddStringToObject(o, "vendor", d->vendor);
    snprintf(buf, sizeof(buf), "0x%04x", d->vendor_id);
    cJSON_AddStringToObject(o, "vendor_id", buf);
    snprintf(buf, sizeof(buf), "0x%04x", d->device_id);
    cJSON_AddStringToObject(o, "device_id", buf);
    cJSON_AddStringToObject(o, "type", d->type);
    cJSON_AddStringToObject(o, "driver_name", d->driver_name);
    cJSON_AddStringToObject(o, "driver_info", d->driver_info);
    cJSON_AddNumberToObject(o, "driver_version_raw", d->driver_version);
    snprintf(buf, sizeof(buf), "%u.%u.%u", VK_API_VERSION_MAJOR(d->api_version), VK_API_VERSION_MINOR(d->api_version),
             VK_API_VERSION_PATCH(d->api_version));
    cJSON_AddStringToObject(o, "api_version", buf);
    cJSON_AddNumberToObject(o, "device_local_bytes", (double)d->device_local_bytes);
    cJSON_AddNumberToObject(o, "subgroup_size", d->subgroup_size);
    cJSON_AddNumberToObject(o, "min_subgroup_size", d->min_subgroup_size);
    cJSON_AddNumberToObject(o, "max_subgroup_size", d->max_subgroup_size);
    cJSON_AddBoolToObject(o, "subgroup_size_control", d->subgroup_size_control);
    cJSON *f = cJSON_AddObjectToObject(o, "features");
    cJSON_AddBoolToObject(f, "fp16_arithmetic", d->fp16_arith);
    cJSON_AddBoolToObject(f, "storage_16bit", d->storage_16bit);
    cJSON_AddBoolToObject(f, "storage_8bit", d->storage_8bit);
    cJSON_AddBoolToObject(f, "int8_dot_product", d->int_dot_product);
    cJSON_AddBoolToObject(f, "cooperative_matrix", d->cooperative_matrix);
    cJSON_AddBoolToObject(f, "buffer_device_address", d->buffer_device_address);
    cJSON_AddBoolToObject(f, "push_descriptor", d->push_descriptor);
    cJSON_AddBoolToObject(f, "subgroup_shuffle", d->subgroup_shuffle);
    cJSON_AddBoolToObject(f, "subgroup_arithmetic", d->subgroup_arithmetic);
    /* cooperative matrices: the device's shapes, and whether this build and this device run the coopmat kernels */
    cJSON *cm = cJSON_AddObjectToObject(o, "cooperative_matrix");
    cJSON_AddBoolToObject(cm, "kernels_built", vkl_coopmat_built());
    cJSON_AddBoolToObject(cm, "usable", d->coopmat_usable);
    cJSON *shapes = cJSON_AddArrayToObject(cm, "shapes");
    for (uint32_t i = 0; i < d->n_coopmat; i++) {
        const vkl_coopmat_shape *c = &d->coopmat[i];
        char b[4][16];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "M", c->M);
        cJSON_AddNumberToObject(e, "N", c->N);
        cJSON_AddNumberToObject(e, "K", c->K);
        cJSON_AddStringToObject(e, "a", vkl_coopmat_type_name(c->a_type, b[0]));
        cJSON_AddStringToObject(e, "b", vkl_coopmat_type_name(c->b_type, b[1]));
        cJSON_AddStringToObject(e, "c", vkl_coopmat_type_name(c->c_type, b[2]));
        cJSON_AddStringToObject(e, "result", vkl_coopmat_type_name(c->result_type, b[3]));
        cJSON_AddStringToObject(e, "scope", c->scope == VKL_SCOPE_SUBGROUP ? "subgroup" : c->scope == 2 ? "workgroup"
                                            : c->scope == 1 ? "device" : "other");
        cJSON_AddBoolToObject(e, "saturating", c->saturating);
        cJSON_AddItemToArray(shapes, e);
    }
    cJSON *l = cJSON_AddObjectToObject(o, "limits");
    cJSON_AddNumberToObject(l, "max_storage_buffer_range", d->max_storage_buffer_range);
    cJSON_AddNumberToObject(l, "max_texel_buffer_elements", d->max_texel_buffer_elements);
    cJSON_AddNumberToObject(l, "max_shared_memory", d->max_shared_memory);
    cJSON_AddNumberToObject(l, "max_workgroup_invocations", d->max_workgroup_invocations);
    cJSON_AddNumberToObject(l, "max_allocation_size", (double)d->max_allocation_size);
    cJSON_AddNumberToObject(l, "max_buffer_size", (double)d->max_buffer_size);
    cJSON_AddNumberToObject(l, "min_storage_buffer_offset_alignment", (double)d->min_storage_offset_align);
    if (d->max_loop_iterations) cJSON_AddNumberToObject(l, "max_shader_loop_iterations", d->max_loop_iterations);
    else cJSON_AddNullToObject(l, "max_shader_loop_iterations");
    return o;
}

int vkl_cmd_devices(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (vkl_cli_is_help(argv[i])) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else {
            return vkl_cli_usage("devices", "unknown argument '%s'", argv[i]);
        }
    }
    vkl_device_info *infos = NULL;
    uint32_t n = 0;
    vkl_err err = {0};
    if (vkl_vk_list_devices(&infos, &n, &err)) return vkl_cli_fail("devices", err.status, "%s", err.msg);
    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(doc, "devices");
        for (uint32_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, device_json(&infos[i]));
        vkl_cli_print_json(doc);
    } else {
        for (uint32_t i = 0; i < n; i++) {
            if (i) putchar('\n');
            vkl_device_info_print(stdout, &infos[i]);
        }
    }
    free(infos);
    return 0;
}
