/* The Vulkan compute runtime: instance/device (through volk), device properties, buffers with staging,
 * compute pipelines from embedded SPIR-V, command recording with barriers, fences and timestamp queries. */
#ifndef VKLORA_VK_H
#define VKLORA_VK_H

#include <volk.h>

#include <stdio.h>

#include "vklora/common.h"

/* One entry of vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR: (M x K) * (K x N) + (M x N) on matrices of the
 * given component types (VkComponentTypeKHR values) and scope (VkScopeKHR). */
typedef struct vkl_coopmat_shape {
    uint32_t M, N, K;
    uint32_t a_type, b_type, c_type, result_type;
    uint32_t scope;
    bool saturating;
} vkl_coopmat_shape;
#define VKL_MAX_COOPMAT_SHAPES 32
/* VkComponentTypeKHR / VkScopeKHR values vklora asks for (Debian 12's headers predate the extension). */
#define VKL_COMPONENT_FLOAT16 0u
#define VKL_COMPONENT_FLOAT32 1u
#define VKL_SCOPE_SUBGROUP 3u
/* "f16", "f32", "bf16", "s8", "u32", ... for a VkComponentTypeKHR value; "type N" for one it does not know. */
const char *vkl_coopmat_type_name(uint32_t type, char buf[16]);
/* Whether this build has the cooperative-matrix shaders (meson found a glslc that compiles GL_KHR_cooperative_matrix). */
bool vkl_coopmat_built(void);

/* Everything the rest of the program may ask about a device. Filled once; never assume a subgroup size or a
 * buffer range: read them here. */
typedef struct vkl_device_info {
    uint32_t index;
    char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    uint32_t vendor_id, device_id;
    const char *vendor;      /* "NVIDIA", "AMD", "Intel", "Mesa", ... */
    const char *type;        /* "discrete", "integrated", "virtual", "cpu", "other" */
    VkPhysicalDeviceType vk_type;
    char driver_name[VK_MAX_DRIVER_NAME_SIZE];
    char driver_info[VK_MAX_DRIVER_INFO_SIZE];
    uint32_t driver_version; /* raw */
    uint32_t driver_id;      /* VkDriverId (0 before Vulkan 1.2) */
    uint32_t api_version;
    uint64_t device_local_bytes; /* sum of device-local heaps */
    uint32_t subgroup_size, min_subgroup_size, max_subgroup_size;
    bool subgroup_size_control, compute_full_subgroups;
    bool subgroup_basic, subgroup_arithmetic, subgroup_shuffle, subgroup_ballot;
    bool fp16_arith, storage_16bit, storage_8bit, int8_arith, int_dot_product;
    bool cooperative_matrix, buffer_device_address, push_descriptor;
    /* VK_KHR_cooperative_matrix with its feature, compute-stage support and what its shaders need (the Vulkan memory
     * model, shaderFloat16): vkl_vk_create enables it. coopmat[] lists the device's shapes (up to 32). */
    bool coopmat_usable;
    uint32_t n_coopmat;
    vkl_coopmat_shape coopmat[VKL_MAX_COOPMAT_SHAPES];
    uint32_t max_storage_buffer_range;
    uint32_t max_texel_buffer_elements;
    uint64_t max_buffer_size;          /* VkPhysicalDeviceMaintenance4Properties, or max allocation if absent */
    uint64_t max_allocation_size;
    uint32_t max_shared_memory;
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_count[3];
    uint32_t max_push_constants;
    uint64_t min_storage_offset_align;
    uint64_t min_texel_offset_align;
    float timestamp_period_ns;
    bool timestamps;
    /* Loop iterations one shader invocation may run in total, 0 = no limit. Mesa's llvmpipe stops every loop of
     * an invocation after 65535 iterations counted together (its loop limiter), silently: ops whose loops could
     * run longer split their work or refuse with a message. */
    uint32_t max_loop_iterations;
} vkl_device_info;

/* Enumerate every device on a temporary instance. *infos is malloc'd. A machine without a Vulkan loader or
 * driver gets VKL_ERR_RUNTIME with a message naming the packages to install. */
vkl_status vkl_vk_list_devices(vkl_device_info **infos, uint32_t *count, vkl_err *err);

/* Device tuning chosen by the program (issue 13), for a process that has not loaded a Vulkan driver yet. lavapipe
 * runs vklora's CPU kernels about 20 % faster with LP_NATIVE_VECTOR_WIDTH=512 (16-lane subgroups) on CPUs with
 * AVX-512 (measured with Mesa 22.3.6 / LLVM 15), but Mesa 26.1 / LLVM 19 returns wrong texel fetches at that width,
 * and the driver reads the variable when it loads. So, when neither LP_NATIVE_VECTOR_WIDTH nor VKLORA_CPU_TUNE=off
 * is set and the CPU has AVX-512: set it to 512, load the driver and look at every llvmpipe device. WIDE: they
 * are all built on LLVM 15 or older (the variable stays). RERUN: one is newer or unknown; the driver is already
 * loaded at the wrong width, so the caller must run the program again (the variable is removed and
 * VKLORA_CPU_TUNE=off set for that run). NONE: nothing done (no llvmpipe, no loader, or the user chose). */
typedef enum { VKL_CPU_TUNE_NONE, VKL_CPU_TUNE_WIDE, VKL_CPU_TUNE_RERUN } vkl_cpu_tune;
vkl_cpu_tune vkl_vk_cpu_tune(void);
/* vkl_vk_cpu_tune for a program's main(): on RERUN it runs the program again with argv (this process's image, or
 * argv[0] without /proc) and only returns, false, when that failed; true otherwise. */
bool vkl_vk_cpu_tune_main(char **argv);
/* What vkl_vk_cpu_tune did in this process or its first run ("" if nothing), for reports. */
const char *vkl_vk_cpu_tune_note(void);
void vkl_device_info_print(FILE *f, const vkl_device_info *d); /* human-readable block (needs <stdio.h>) */

typedef struct vkl_vk_options {
    const char *device;   /* NULL/"auto": prefer discrete, then integrated, then virtual, then cpu; a number = index;
                             anything else = case-insensitive substring of the device name */
    bool validation;      /* also switched on by the environment variable VKLORA_VALIDATION=1 (core and
                             synchronization validation; =core for the core checks only) */
} vkl_vk_options;

typedef struct vkl_profiler vkl_profiler;

typedef struct vkl_vk {
    VkInstance instance;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkQueryPool query_pool;
    uint32_t query_count;
    vkl_profiler *prof;   /* per-kernel timing while a profile runs (NULL otherwise) */
    VkDebugUtilsMessengerEXT messenger;
    VkPipelineCache pipeline_cache;
    vkl_device_info info;
    VkPhysicalDeviceMemoryProperties mem_props;
    bool validation;
    bool validation_sync; /* the layer's synchronization validation is on too */
    uint32_t validation_messages; /* warnings and errors reported by the validation layer */
    bool validation_expected;     /* this context's messages are deliberate (a test of the counter): they are left
                                     out of vkl_vk_validation_total() */
    bool recording;
    bool device_lost;
    /* Staging buffer reused by uploads and downloads (host-visible, coherent). */
    struct vkl_buffer *staging;
    /* Memory accounting: current and peak bytes of device allocations made through vkl_buffer_create. */
    uint64_t device_bytes, device_bytes_peak;
    /* Cache of uniform texel buffer views, keyed by (buffer, offset, range, format); see vkl_binding. */
    struct vkl_texel_view *views;
    uint32_t n_views, cap_views;
    bool dispatched; /* a dispatch was recorded since vkl_cmd_begin: the next one needs a barrier */
    bool transfer_pending; /* a copy/fill the next barrier must wait for (async copies are left out) */
} vkl_vk;

vkl_status vkl_vk_create(const vkl_vk_options *opt, vkl_vk **out, vkl_err *err);
/* Device memory vklora plans against: the device-local heaps, or less when VKLORA_MEMORY_BUDGET (bytes, with an
 * optional K/M/G/T suffix; vkl_vk_create refuses a malformed value) asks for it (a shared GPU, or tests of the
 * out-of-memory messages). 0 = unknown. */
uint64_t vkl_vk_memory_budget(const vkl_vk *vk);
void vkl_vk_destroy(vkl_vk *vk);

/* Warnings and errors the validation layer reported to any context of this process so far (but those of contexts
 * marked validation_expected). */
uint32_t vkl_vk_validation_total(void);

/* Turn a VkResult into an error message naming the call, and mark device loss. */
vkl_status vkl_vk_check(vkl_vk *vk, VkResult r, const char *call, const char *file, int line, vkl_err *err);
const char *vkl_vk_result_name(VkResult r);
#define VKL_VK_TRY(vk, call, err)                                                         \
    do {                                                                                  \
        VkResult vkl_r_ = (call);                                                         \
        if (vkl_r_ != VK_SUCCESS) return vkl_vk_check((vk), vkl_r_, #call, __FILE__, __LINE__, (err)); \
    } while (0)

/* ---- Buffers ---- */
typedef enum {
    VKL_MEM_DEVICE,   /* device-local; filled through staging */
    VKL_MEM_HOST,     /* host-visible, coherent, mapped: for staging, readback and host-resident activations */
} vkl_mem_kind;

typedef struct vkl_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    uint64_t size;
    vkl_mem_kind kind;
    void *mapped; /* non-NULL for host-visible memory */
} vkl_buffer;

vkl_status vkl_buffer_create(vkl_vk *vk, uint64_t size, vkl_mem_kind kind, vkl_buffer *out, vkl_err *err);
void vkl_buffer_destroy(vkl_vk *vk, vkl_buffer *b);
/* Blocking copies through the staging buffer (any size; chunked). Must not be called while recording. */
vkl_status vkl_buffer_upload(vkl_vk *vk, vkl_buffer *dst, uint64_t offset, const void *src, uint64_t n, vkl_err *err);
vkl_status vkl_buffer_download(vkl_vk *vk, const vkl_buffer *src, uint64_t offset, void *dst, uint64_t n,
                               vkl_err *err);
/* Fill with a 32-bit pattern (recorded into the current command buffer if recording, else executed now). */
vkl_status vkl_buffer_fill(vkl_vk *vk, vkl_buffer *b, uint64_t offset, uint64_t n, uint32_t value, vkl_err *err);

/* A binding of part of a buffer: storage buffer (offset, range) or, when `texel_format` is not
 * VK_FORMAT_UNDEFINED, a uniform texel buffer view of that range (views are cached per buffer range). */
typedef struct vkl_binding {
    const vkl_buffer *buf;
    uint64_t offset;
    uint64_t range;           /* 0 = the rest of the buffer (must not exceed maxStorageBufferRange) */
    VkFormat texel_format;    /* VK_FORMAT_UNDEFINED for a storage buffer */
} vkl_binding;

/* Largest number of `unit`-byte elements that can be bound at once starting anywhere (respecting
 * maxStorageBufferRange), rounded down to a multiple of `multiple` elements. */
uint64_t vkl_max_bind_elems(const vkl_vk *vk, uint64_t unit, uint64_t multiple);

/* ---- Pipelines ---- */
typedef enum { VKL_BIND_STORAGE = 0, VKL_BIND_TEXEL = 1 } vkl_bind_kind;

#define VKL_MAX_BINDINGS 12
#define VKL_MAX_SPEC 8

typedef struct vkl_pipeline_desc {
    const char *shader;                 /* name of an embedded SPIR-V module, e.g. "dequant_q4_k" */
    uint32_t n_bindings;
    vkl_bind_kind bindings[VKL_MAX_BINDINGS];
    uint32_t push_size;                 /* bytes of the push-constant block (multiple of 4, <= 128) */
    uint32_t n_spec;                    /* specialization constants 0..n_spec-1 (uint32) */
    uint32_t spec[VKL_MAX_SPEC];        /* spec[0] must be the workgroup size x by convention */
    uint32_t required_subgroup_size;    /* 0 = driver's choice; else needs subgroup size control */
} vkl_pipeline_desc;

typedef struct vkl_pipeline {
    const char *name;
    VkPipeline pipeline;
    VkPipelineLayout layout;
    VkDescriptorSetLayout set_layout;
    uint32_t n_bindings;
    vkl_bind_kind bindings[VKL_MAX_BINDINGS];
    uint32_t push_size;
    uint32_t wg_size; /* spec[0] */
} vkl_pipeline;

vkl_status vkl_pipeline_create(vkl_vk *vk, const vkl_pipeline_desc *desc, vkl_pipeline *out, vkl_err *err);
void vkl_pipeline_destroy(vkl_vk *vk, vkl_pipeline *p);

/* ---- Command recording ----
 * One primary command buffer: begin, record dispatches (a compute->compute memory barrier is inserted
 * before each dispatch that follows another), then submit and wait on the fence. */
vkl_status vkl_cmd_begin(vkl_vk *vk, vkl_err *err);
/* Asserts that n_bindings and push_size match the pipeline (programmer error otherwise). */
vkl_status vkl_cmd_dispatch(vkl_vk *vk, const vkl_pipeline *p, const vkl_binding *bindings, uint32_t n_bindings,
                            const void *push, uint32_t push_size, uint32_t gx, uint32_t gy, uint32_t gz,
                            vkl_err *err);
void vkl_cmd_barrier(vkl_vk *vk);
/* Copy between buffers inside the command buffer; later dispatches wait for it. */
void vkl_cmd_copy(vkl_vk *vk, const vkl_buffer *src, uint64_t src_off, vkl_buffer *dst, uint64_t dst_off,
                  uint64_t n);
/* A copy that later dispatches do NOT wait for, so it overlaps with them (activation offload): it waits for the
 * work before it, then signals `ev`. Before anything overwrites `src` (or reads `dst`), call vkl_cmd_wait_event. */
void vkl_cmd_copy_async(vkl_vk *vk, const vkl_buffer *src, uint64_t src_off, vkl_buffer *dst, uint64_t dst_off,
                        uint64_t n, VkEvent ev);
/* Wait for the copy that signalled `ev`, then reset it for reuse. */
void vkl_cmd_wait_event(vkl_vk *vk, VkEvent ev);
/* Write a timestamp (query index < vk->query_count) after all prior work. */
void vkl_cmd_timestamp(vkl_vk *vk, uint32_t query);
vkl_status vkl_cmd_submit_wait(vkl_vk *vk, vkl_err *err);
/* Nanoseconds between two timestamp queries of the last submission. */
vkl_status vkl_timestamp_ns(vkl_vk *vk, uint32_t q0, uint32_t q1, double *ns, vkl_err *err);

/* ---- Per-kernel timing (vklora bench --profile; src/vk/profile.c) ----
 * From the next submission on, every dispatch and copy is followed by a timestamp; each one's device time (since
 * the previous timestamp, barrier included) adds to its pipeline's total ("copy" for copies). */
typedef struct vkl_profile_entry {
    const char *name; /* a pipeline (kernel variant) name; valid until vkl_profile_stop */
    double ms;        /* total device time */
    uint64_t dispatches;
} vkl_profile_entry;
vkl_status vkl_profile_start(vkl_vk *vk, vkl_err *err);
void vkl_profile_stop(vkl_vk *vk); /* also done by vkl_vk_destroy */
/* The totals so far, longest first, up to max; returns how many; *total_ms their sum; *untimed the dispatches past
 * a submission's timestamp capacity (not timed). */
size_t vkl_profile_report(const vkl_vk *vk, vkl_profile_entry *out, size_t max, double *total_ms, uint64_t *untimed);
/* Hooks of src/vk/cmd.c. */
void vkl_profile_begin(vkl_vk *vk);
void vkl_profile_mark(vkl_vk *vk, const char *name);
vkl_status vkl_profile_collect(vkl_vk *vk, vkl_err *err);

/* ---- Embedded SPIR-V ---- */
typedef struct {
    const char *name;
    const uint32_t *code;
    size_t size; /* bytes */
} vkl_spirv;
const vkl_spirv *vkl_spirv_find(const char *name);
const vkl_spirv *vkl_spirv_all(size_t *count);

#endif
