/* Vulkan instance and device creation through volk: device enumeration and property/feature query, device
 * choice, the validation layer and its message counter, VkResult names and device-loss reporting. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if !defined(_WIN32)
#include <unistd.h>
#endif

#include "vk/vk.h"

#define INSTALL_HINT                                                                                  \
    "install a Vulkan loader and driver, e.g. on Debian/Ubuntu: apt-get install libvulkan1 "          \
    "mesa-vulkan-drivers (lavapipe runs on the CPU) or your GPU vendor's Vulkan driver"

const char *vkl_vk_result_name(VkResult r) {
    switch (r) {
#define C(x) case x: return #x
        C(VK_SUCCESS); C(VK_NOT_READY); C(VK_TIMEOUT); C(VK_EVENT_SET); C(VK_EVENT_RESET); C(VK_INCOMPLETE);
        C(VK_ERROR_OUT_OF_HOST_MEMORY); C(VK_ERROR_OUT_OF_DEVICE_MEMORY); C(VK_ERROR_INITIALIZATION_FAILED);
        C(VK_ERROR_DEVICE_LOST); C(VK_ERROR_MEMORY_MAP_FAILED); C(VK_ERROR_LAYER_NOT_PRESENT);
        C(VK_ERROR_EXTENSION_NOT_PRESENT); C(VK_ERROR_FEATURE_NOT_PRESENT); C(VK_ERROR_INCOMPATIBLE_DRIVER);
        C(VK_ERROR_TOO_MANY_OBJECTS); C(VK_ERROR_FORMAT_NOT_SUPPORTED); C(VK_ERROR_FRAGMENTED_POOL);
        C(VK_ERROR_UNKNOWN); C(VK_ERROR_OUT_OF_POOL_MEMORY); C(VK_ERROR_INVALID_EXTERNAL_HANDLE);
        C(VK_ERROR_FRAGMENTATION); C(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS); C(VK_PIPELINE_COMPILE_REQUIRED);
#undef C
    default: return "VkResult(unknown)";
    }
}

vkl_status vkl_vk_check(vkl_vk *vk, VkResult r, const char *call, const char *file, int line, vkl_err *err) {
    const char *hint = "";
    vkl_status st = VKL_ERR_RUNTIME;
    switch (r) {
    case VK_ERROR_DEVICE_LOST:
        if (vk) vk->device_lost = true;
        hint = " (the device was lost: a driver crash, a GPU reset or a shader that ran too long; "
               "try a smaller batch or sequence length, and check the driver's log)";
        break;
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
        hint = " (out of device memory: lower per_device_train_batch_size or max_seq_length, or enable "
               "use_gradient_checkpointing)";
        break;
    case VK_ERROR_OUT_OF_HOST_MEMORY: hint = " (out of host memory)"; break;
    case VK_ERROR_LAYER_NOT_PRESENT:
        hint = " (the validation layer is missing: apt-get install vulkan-validationlayers)";
        break;
    case VK_ERROR_INCOMPATIBLE_DRIVER: hint = " (" INSTALL_HINT ")"; break;
    default: break;
    }
    return vkl_err_set(err, st, "vulkan: %s failed with %s at %s:%d%s", call, vkl_vk_result_name(r), file, line,
                       hint);
}

static vkl_status load_loader(vkl_err *err) {
    static int loaded = -1;
    if (loaded < 0) loaded = volkInitialize() == VK_SUCCESS;
    if (!loaded)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: no Vulkan loader (libvulkan.so.1) found: " INSTALL_HINT);
    return VKL_OK;
}

#if !defined(_WIN32) && (defined(__x86_64__) || defined(__i386__))
/* "llvmpipe (LLVM 15.0.6, 256 bits)": the LLVM major version, 0 if the name does not say (the tuning below). */
static int llvmpipe_llvm_major(const char *name) {
    const char *s = strstr(name, "LLVM ");
    return s ? atoi(s + 5) : 0;
}
#endif

vkl_cpu_tune vkl_vk_cpu_tune(void) {
#if defined(_WIN32) || !(defined(__x86_64__) || defined(__i386__))
    return VKL_CPU_TUNE_NONE;
#else
    const char *w = getenv("LP_NATIVE_VECTOR_WIDTH"), *t = getenv("VKLORA_CPU_TUNE");
    if ((w && *w) || (t && !strcmp(t, "off"))) return VKL_CPU_TUNE_NONE;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f")) return VKL_CPU_TUNE_NONE;
    vkl_err err = {0};
    if (load_loader(&err)) return VKL_CPU_TUNE_NONE;
    setenv("LP_NATIVE_VECTOR_WIDTH", "512", 1);
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkInstance inst = VK_NULL_HANDLE;
    uint32_t n = 0, lp = 0, bad = 0;
    if (vkCreateInstance(&ci, NULL, &inst) == VK_SUCCESS) {
        volkLoadInstance(inst);
        if (vkEnumeratePhysicalDevices(inst, &n, NULL) == VK_SUCCESS && n) {
            VkPhysicalDevice *pd = vkl_calloc(n, sizeof(*pd));
            if (vkEnumeratePhysicalDevices(inst, &n, pd) != VK_SUCCESS) n = 0;
            for (uint32_t i = 0; i < n; i++) {
                VkPhysicalDeviceProperties p;
                vkGetPhysicalDeviceProperties(pd[i], &p);
                if (strncmp(p.deviceName, "llvmpipe", 8)) continue;
                lp++;
                int major = llvmpipe_llvm_major(p.deviceName);
                bad += major < 1 || major > 15;
            }
            free(pd);
        }
        vkDestroyInstance(inst, NULL);
    }
    if (!lp) {
        unsetenv("LP_NATIVE_VECTOR_WIDTH");
        return VKL_CPU_TUNE_NONE;
    }
    if (bad) {
        unsetenv("LP_NATIVE_VECTOR_WIDTH");
        setenv("VKLORA_CPU_TUNE", "off", 1);
        setenv("VKLORA_CPU_TUNE_NOTE", "LP_NATIVE_VECTOR_WIDTH left to the driver: its LLVM is newer than 15", 1);
        return VKL_CPU_TUNE_RERUN;
    }
    setenv("VKLORA_CPU_TUNE_NOTE", "LP_NATIVE_VECTOR_WIDTH=512 set by vklora (lavapipe on LLVM <= 15, AVX-512)", 1);
    return VKL_CPU_TUNE_WIDE;
#endif
}

bool vkl_vk_cpu_tune_main(char **argv) {
    if (vkl_vk_cpu_tune() != VKL_CPU_TUNE_RERUN) return true;
#if !defined(_WIN32)
    execv("/proc/self/exe", argv);
    execvp(argv[0], argv);
#endif
    (void)argv;
    return false;
}

const char *vkl_vk_cpu_tune_note(void) {
    const char *s = getenv("VKLORA_CPU_TUNE_NOTE");
    return s ? s : "";
}

static bool has_layer(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS) return false;
    VkLayerProperties *p = vkl_calloc(n, sizeof(*p));
    bool found = false;
    if (vkEnumerateInstanceLayerProperties(&n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(p[i].layerName, name);
    free(p);
    return found;
}

static bool has_instance_ext(const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, NULL) != VK_SUCCESS) return false;
    VkExtensionProperties *p = vkl_calloc(n, sizeof(*p));
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(p[i].extensionName, name);
    free(p);
    return found;
}

static bool has_layer_ext(const char *layer, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, NULL) != VK_SUCCESS) return false;
    VkExtensionProperties *p = vkl_calloc(n, sizeof(*p));
    bool found = false;
    if (vkEnumerateInstanceExtensionProperties(layer, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(p[i].extensionName, name);
    free(p);
    return found;
}

static bool has_device_ext(VkPhysicalDevice pd, const char *name) {
    uint32_t n = 0;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) != VK_SUCCESS) return false;
    VkExtensionProperties *p = vkl_calloc(n, sizeof(*p));
    bool found = false;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n, p) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++) found |= !strcmp(p[i].extensionName, name);
    free(p);
    return found;
}

/* Messages of every context of this process, so a command can fail when validation found anything. */
static _Atomic uint32_t validation_total;

uint32_t vkl_vk_validation_total(void) { return validation_total; }

static VKAPI_ATTR VkBool32 VKAPI_CALL debug_cb(VkDebugUtilsMessageSeverityFlagBitsEXT sev,
                                               VkDebugUtilsMessageTypeFlagsEXT type,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data, void *user) {
    (void)type;
    vkl_vk *vk = user;
    if (sev & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)) {
        if (vk) vk->validation_messages++;
        if (!vk || !vk->validation_expected) validation_total++;
        fprintf(stderr, "vulkan validation %s: %s\n",
                (sev & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) ? "error" : "warning",
                data && data->pMessage ? data->pMessage : "(no message)");
    }
    return VK_FALSE;
}

static uint32_t instance_api_version(void) {
    uint32_t v = VK_API_VERSION_1_0;
    if (vkEnumerateInstanceVersion) vkEnumerateInstanceVersion(&v);
    return v >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : v;
}

/* `validation`: 0 off, 1 core and synchronization validation, 2 core only (see vkl_env_validation). */
static vkl_status create_instance(int validation, vkl_vk *vk, VkInstance *out, vkl_err *err) {
    uint32_t api = instance_api_version();
    if (api < VK_API_VERSION_1_2)
        return vkl_err_set(err, VKL_ERR_RUNTIME,
                           "vulkan: the Vulkan loader supports only API %u.%u; vklora needs 1.2 or newer: " INSTALL_HINT,
                           VK_API_VERSION_MAJOR(api), VK_API_VERSION_MINOR(api));
    const char *exts[5];
    uint32_t n_ext = 0;
    VkInstanceCreateFlags flags = 0;
    if (has_instance_ext(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        exts[n_ext++] = VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME;
        flags |= VK_INSTANCE_CREATE_ENUMERATE_PORTABILITY_BIT_KHR;
    }
    const char *layers[1];
    uint32_t n_layers = 0;
    if (validation) {
        if (!has_layer("VK_LAYER_KHRONOS_validation"))
            return vkl_err_set(err, VKL_ERR_RUNTIME,
                               "vulkan: validation was requested but VK_LAYER_KHRONOS_validation is not installed "
                               "(apt-get install vulkan-validationlayers)");
        if (!has_instance_ext(VK_EXT_DEBUG_UTILS_EXTENSION_NAME))
            return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: validation needs VK_EXT_debug_utils, which is missing");
        layers[n_layers++] = "VK_LAYER_KHRONOS_validation";
        exts[n_ext++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    }
    /* Synchronization validation (the layer's validate_sync setting) reports read/write hazards between commands,
     * e.g. an asynchronous copy and the dispatch that reads its destination, which lavapipe's in-order execution
     * would otherwise hide. VkValidationFeaturesEXT is how the layer of Debian 12 (1.3.239, before
     * VK_EXT_layer_settings) takes it from the application; newer layers still honour it. */
    static const VkValidationFeatureEnableEXT sync_enable[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkValidationFeaturesEXT vfeat = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = sync_enable,
    };
    bool sync = validation == 1;
    if (sync) {
        if (!has_layer_ext("VK_LAYER_KHRONOS_validation", VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME))
            return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: synchronization validation needs "
                               "VK_EXT_validation_features from the validation layer, which lacks it (update "
                               "vulkan-validationlayers, or set VKLORA_VALIDATION=core for the core checks only)");
        exts[n_ext++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
    }
    VkApplicationInfo app = {
        .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
        .pApplicationName = "vklora",
        .applicationVersion = VK_MAKE_VERSION(0, 1, 0),
        .pEngineName = "vklora",
        .apiVersion = api,
    };
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = debug_cb,
        .pUserData = vk,
        .pNext = sync ? &vfeat : NULL,
    };
    VkInstanceCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
        .pNext = validation ? &dbg : NULL,
        .flags = flags,
        .pApplicationInfo = &app,
        .enabledLayerCount = n_layers,
        .ppEnabledLayerNames = layers,
        .enabledExtensionCount = n_ext,
        .ppEnabledExtensionNames = exts,
    };
    VKL_VK_TRY(vk, vkCreateInstance(&ci, NULL, out), err);
    /* Load every entry point through the loader's trampolines (not volkLoadDevice's direct driver pointers): volk's
     * pointers are global, and trampolines dispatch on the handle, so several instances and devices (device
     * listing, tests, a second device) can coexist safely. The extra indirection costs nothing measurable. */
    volkLoadInstance(*out);
    if (validation && vk) {
        dbg.pNext = NULL;
        VKL_VK_TRY(vk, vkCreateDebugUtilsMessengerEXT(*out, &dbg, NULL, &vk->messenger), err);
    }
    return VKL_OK;
}

/* VK_KHR_cooperative_matrix, declared here: Debian 12's Vulkan headers (1.3.239) predate it (1.3.255). Layouts and
 * values as in vulkan_core.h. */
#define VKL_KHR_COOPMAT_NAME "VK_KHR_cooperative_matrix"
#define VKL_STYPE_COOPMAT_FEATURES ((VkStructureType)1000506000)
#define VKL_STYPE_COOPMAT_SHAPE ((VkStructureType)1000506001)
#define VKL_STYPE_COOPMAT_PROPERTIES ((VkStructureType)1000506002)
typedef struct {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix, cooperativeMatrixRobustBufferAccess;
} vkl_coopmat_features_khr;
typedef struct {
    VkStructureType sType;
    void *pNext;
    VkShaderStageFlags cooperativeMatrixSupportedStages;
} vkl_coopmat_properties_khr;
typedef struct {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    uint32_t AType, BType, CType, ResultType; /* VkComponentTypeKHR */
    VkBool32 saturatingAccumulation;
    uint32_t scope;                           /* VkScopeKHR */
} vkl_coopmat_shape_khr;
typedef VkResult(VKAPI_PTR *vkl_pfn_coopmat_props)(VkPhysicalDevice, uint32_t *, vkl_coopmat_shape_khr *);

bool vkl_coopmat_built(void) {
#ifdef VKL_HAVE_COOPMAT
    return true;
#else
    return false;
#endif
}

const char *vkl_coopmat_type_name(uint32_t type, char buf[16]) {
    static const char *const names[] = {"f16", "f32", "f64", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64"};
    if (type < VKL_ARRAY_LEN(names)) return names[type];
    if (type == 1000141000u) return "bf16";
    if (type == 1000491002u) return "e4m3";
    if (type == 1000491003u) return "e5m2";
    snprintf(buf, 16, "type %u", type);
    return buf;
}

/* The device's cooperative-matrix shapes (VK_KHR_cooperative_matrix listed and its feature on). */
static void query_coopmat_shapes(VkInstance inst, VkPhysicalDevice pd, vkl_device_info *d) {
    vkl_pfn_coopmat_props get =
        (vkl_pfn_coopmat_props)vkGetInstanceProcAddr(inst, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t n = 0;
    if (!get || get(pd, &n, NULL) != VK_SUCCESS || n == 0) return;
    vkl_coopmat_shape_khr *p = vkl_calloc(n, sizeof(*p));
    for (uint32_t i = 0; i < n; i++) p[i].sType = VKL_STYPE_COOPMAT_SHAPE;
    VkResult r = get(pd, &n, p);
    if (r == VK_SUCCESS || r == VK_INCOMPLETE) {
        d->n_coopmat = n < VKL_MAX_COOPMAT_SHAPES ? n : VKL_MAX_COOPMAT_SHAPES;
        for (uint32_t i = 0; i < d->n_coopmat; i++)
            d->coopmat[i] = (vkl_coopmat_shape){
                .M = p[i].MSize, .N = p[i].NSize, .K = p[i].KSize,
                .a_type = p[i].AType, .b_type = p[i].BType, .c_type = p[i].CType, .result_type = p[i].ResultType,
                .scope = p[i].scope, .saturating = p[i].saturatingAccumulation,
            };
    }
    free(p);
}

static const char *vendor_name(uint32_t id) {
    switch (id) {
    case 0x10DE: return "NVIDIA";
    case 0x1002: case 0x1022: return "AMD";
    case 0x8086: return "Intel";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x1010: return "Imagination";
    case 0x106B: return "Apple";
    case 0x10005: return "Mesa";
    default: return "unknown";
    }
}

static const char *type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "cpu";
    default: return "other";
    }
}

static void query_info(VkInstance inst, VkPhysicalDevice pd, uint32_t index, vkl_device_info *d) {
    memset(d, 0, sizeof(*d));
    d->index = index;
    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    uint32_t api = base.apiVersion < instance_api_version() ? base.apiVersion : instance_api_version();
    bool v13 = api >= VK_API_VERSION_1_3;
    bool v12 = api >= VK_API_VERSION_1_2;

    VkPhysicalDeviceSubgroupProperties sg = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceSubgroupSizeControlProperties sgc = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
    VkPhysicalDeviceMaintenance3Properties m3 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
    VkPhysicalDeviceMaintenance4Properties m4 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES};
    bool has_sgc = v13 || has_device_ext(pd, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    d->cooperative_matrix = has_device_ext(pd, VKL_KHR_COOPMAT_NAME);
    vkl_coopmat_properties_khr cmp = {.sType = VKL_STYPE_COOPMAT_PROPERTIES};
    if (d->cooperative_matrix) {
        sg.pNext = &cmp;
        cmp.pNext = &m3;
    } else {
        sg.pNext = &m3;
    }
    m3.pNext = v12 ? (void *)&drv : NULL;
    drv.pNext = has_sgc ? (void *)&sgc : NULL;
    sgc.pNext = v13 ? (void *)&m4 : NULL;
    VkPhysicalDeviceProperties2 p2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sg};
    vkGetPhysicalDeviceProperties2(pd, &p2);
    const VkPhysicalDeviceLimits *lim = &p2.properties.limits;

    snprintf(d->name, sizeof(d->name), "%s", base.deviceName);
    d->vendor_id = base.vendorID;
    d->device_id = base.deviceID;
    d->vendor = vendor_name(base.vendorID);
    d->vk_type = base.deviceType;
    d->type = type_name(base.deviceType);
    d->driver_version = base.driverVersion;
    d->api_version = base.apiVersion;
    if (v12) {
        snprintf(d->driver_name, sizeof(d->driver_name), "%s", drv.driverName);
        snprintf(d->driver_info, sizeof(d->driver_info), "%s", drv.driverInfo);
        d->driver_id = drv.driverID;
        if (drv.driverID == VK_DRIVER_ID_MESA_LLVMPIPE) d->max_loop_iterations = 65535;
    }
    d->subgroup_size = sg.subgroupSize;
    d->min_subgroup_size = d->max_subgroup_size = sg.subgroupSize;
    if (has_sgc && sgc.minSubgroupSize) {
        d->min_subgroup_size = sgc.minSubgroupSize;
        d->max_subgroup_size = sgc.maxSubgroupSize;
    }
    bool compute_sg = sg.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT;
    d->subgroup_basic = compute_sg && (sg.supportedOperations & VK_SUBGROUP_FEATURE_BASIC_BIT);
    d->subgroup_arithmetic = compute_sg && (sg.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
    d->subgroup_shuffle = compute_sg && (sg.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);
    d->subgroup_ballot = compute_sg && (sg.supportedOperations & VK_SUBGROUP_FEATURE_BALLOT_BIT);
    d->max_storage_buffer_range = lim->maxStorageBufferRange;
    d->max_texel_buffer_elements = lim->maxTexelBufferElements;
    d->max_allocation_size = m3.maxMemoryAllocationSize;
    d->max_buffer_size = v13 ? m4.maxBufferSize : m3.maxMemoryAllocationSize;
    d->max_shared_memory = lim->maxComputeSharedMemorySize;
    d->max_workgroup_invocations = lim->maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++) d->max_workgroup_count[i] = lim->maxComputeWorkGroupCount[i];
    d->max_push_constants = lim->maxPushConstantsSize;
    d->min_storage_offset_align = lim->minStorageBufferOffsetAlignment;
    d->min_texel_offset_align = lim->minTexelBufferOffsetAlignment;
    d->timestamp_period_ns = lim->timestampPeriod;

    VkPhysicalDeviceVulkan11Features f11 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
    VkPhysicalDeviceVulkan12Features f12 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
    VkPhysicalDeviceVulkan13Features f13 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES};
    VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
    vkl_coopmat_features_khr cmf = {.sType = VKL_STYPE_COOPMAT_FEATURES};
    if (v12) {
        f2.pNext = &f11;
        f11.pNext = &f12;
        f12.pNext = v13 ? &f13 : NULL;
        if (d->cooperative_matrix) {
            cmf.pNext = f12.pNext;
            f12.pNext = &cmf;
        }
    }
    vkGetPhysicalDeviceFeatures2(pd, &f2);
    d->storage_16bit = f11.storageBuffer16BitAccess;
    d->fp16_arith = f12.shaderFloat16;
    d->int8_arith = f12.shaderInt8;
    d->storage_8bit = f12.storageBuffer8BitAccess;
    d->buffer_device_address = f12.bufferDeviceAddress;
    d->subgroup_size_control = v13 && f13.subgroupSizeControl;
    d->compute_full_subgroups = v13 && f13.computeFullSubgroups;
    d->int_dot_product = v13 && f13.shaderIntegerDotProduct;
    /* the cooperative-matrix kernels also need f16 arithmetic and the Vulkan memory model (their SPIR-V uses it) */
    d->coopmat_usable = v12 && d->cooperative_matrix && cmf.cooperativeMatrix && f12.vulkanMemoryModel &&
                        f12.shaderFloat16 && (cmp.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT);
    if (d->cooperative_matrix && cmf.cooperativeMatrix) query_coopmat_shapes(inst, pd, d);
    d->push_descriptor = has_device_ext(pd, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    (void)d->int8_arith;

    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    for (uint32_t i = 0; i < mp.memoryHeapCount; i++)
        if (mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) d->device_local_bytes += mp.memoryHeaps[i].size;

    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, NULL);
    VkQueueFamilyProperties *qf = vkl_calloc(nq, sizeof(*qf));
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, qf);
    for (uint32_t i = 0; i < nq; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && qf[i].timestampValidBits) d->timestamps = true;
    free(qf);
}

static vkl_status enumerate(VkInstance inst, VkPhysicalDevice **pds, uint32_t *n, vkl_err *err) {
    *n = 0;
    *pds = NULL;
    VKL_VK_TRY(NULL, vkEnumeratePhysicalDevices(inst, n, NULL), err);
    if (*n == 0)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: no Vulkan device found: " INSTALL_HINT);
    *pds = vkl_calloc(*n, sizeof(**pds));
    VkResult r = vkEnumeratePhysicalDevices(inst, n, *pds);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        free(*pds);
        *pds = NULL;
        return vkl_vk_check(NULL, r, "vkEnumeratePhysicalDevices", __FILE__, __LINE__, err);
    }
    return VKL_OK;
}

vkl_status vkl_vk_list_devices(vkl_device_info **infos, uint32_t *count, vkl_err *err) {
    *infos = NULL;
    *count = 0;
    if (load_loader(err)) return err->status;
    VkInstance inst;
    if (create_instance(0, NULL, &inst, err)) return err->status;
    VkPhysicalDevice *pds;
    uint32_t n;
    vkl_status st = enumerate(inst, &pds, &n, err);
    if (st == VKL_OK) {
        *infos = vkl_calloc(n, sizeof(**infos));
        for (uint32_t i = 0; i < n; i++) query_info(inst, pds[i], i, &(*infos)[i]);
        *count = n;
        free(pds);
    }
    vkDestroyInstance(inst, NULL);
    return st;
}

void vkl_device_info_print(FILE *f, const vkl_device_info *d) {
    fprintf(f, "device %u: %s\n", d->index, d->name);
    fprintf(f, "  vendor            %s (0x%04x), device 0x%04x, type %s\n", d->vendor, d->vendor_id, d->device_id,
            d->type);
    fprintf(f, "  driver            %s %s (raw version 0x%08x)\n", d->driver_name, d->driver_info, d->driver_version);
    fprintf(f, "  Vulkan API        %u.%u.%u\n", VK_API_VERSION_MAJOR(d->api_version),
            VK_API_VERSION_MINOR(d->api_version), VK_API_VERSION_PATCH(d->api_version));
    fprintf(f, "  device memory     %.1f MiB (device-local heaps)\n", d->device_local_bytes / 1048576.0);
    fprintf(f, "  subgroup size     %u (min %u, max %u, size control %s)\n", d->subgroup_size, d->min_subgroup_size,
            d->max_subgroup_size, d->subgroup_size_control ? "yes" : "no");
    fprintf(f, "  features          fp16 arithmetic %s, 16-bit storage %s, 8-bit storage %s, int8 dot product %s,\n"
               "                    cooperative matrix %s, buffer device address %s, push descriptors %s\n",
            d->fp16_arith ? "yes" : "no", d->storage_16bit ? "yes" : "no", d->storage_8bit ? "yes" : "no",
            d->int_dot_product ? "yes" : "no", d->cooperative_matrix ? "yes" : "no",
            d->buffer_device_address ? "yes" : "no", d->push_descriptor ? "yes" : "no");
    fprintf(f, "  coopmat shapes    ");
    if (!d->n_coopmat) fprintf(f, "none");
    for (uint32_t i = 0; i < d->n_coopmat; i++) {
        const vkl_coopmat_shape *c = &d->coopmat[i];
        char b[4][16];
        fprintf(f, "%s%s%ux%ux%u %s*%s+%s->%s%s%s", i ? "," : "", i && i % 3 == 0 ? "\n                    " : i ? " " : "",
                c->M, c->N, c->K, vkl_coopmat_type_name(c->a_type, b[0]), vkl_coopmat_type_name(c->b_type, b[1]),
                vkl_coopmat_type_name(c->c_type, b[2]), vkl_coopmat_type_name(c->result_type, b[3]),
                c->scope == VKL_SCOPE_SUBGROUP ? "" : " (not subgroup scope)", c->saturating ? " saturating" : "");
    }
    fprintf(f, "\n  coopmat kernels   %s\n",
            !vkl_coopmat_built() ? "not built (this build's glslc cannot compile GL_KHR_cooperative_matrix)"
            : d->coopmat_usable ? "built; usable on this device (VKLORA_MATMUL=coopmat)"
                                : "built; this device cannot run them");
    fprintf(f, "  limits            maxStorageBufferRange %u B (%.0f MiB), maxTexelBufferElements %u,\n"
               "                    max shared memory %u B, max workgroup invocations %u, max allocation %.0f MiB\n",
            d->max_storage_buffer_range, d->max_storage_buffer_range / 1048576.0, d->max_texel_buffer_elements,
            d->max_shared_memory, d->max_workgroup_invocations, d->max_allocation_size / 1048576.0);
}

static int type_rank(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
    }
}

static vkl_status pick_device(const char *sel, const vkl_device_info *infos, uint32_t n, uint32_t *out,
                              vkl_err *err) {
    if (!sel || !*sel || !strcasecmp(sel, "auto")) {
        uint32_t best = 0;
        for (uint32_t i = 1; i < n; i++)
            if (type_rank(infos[i].vk_type) < type_rank(infos[best].vk_type)) best = i;
        *out = best;
        return VKL_OK;
    }
    char *end;
    long idx = strtol(sel, &end, 10);
    if (*end == '\0') {
        if (idx < 0 || (uint32_t)idx >= n)
            return vkl_err_set(err, VKL_ERR_INPUT, "vulkan: device index %ld out of range: %u device(s) (see 'vklora devices')",
                               idx, n);
        *out = (uint32_t)idx;
        return VKL_OK;
    }
    for (uint32_t i = 0; i < n; i++) {
        /* case-insensitive substring match on the name */
        size_t ls = strlen(sel), ln = strlen(infos[i].name);
        for (size_t k = 0; k + ls <= ln; k++)
            if (!strncasecmp(infos[i].name + k, sel, ls)) {
                *out = i;
                return VKL_OK;
            }
    }
    return vkl_err_set(err, VKL_ERR_INPUT, "vulkan: no device name contains \"%s\" (see 'vklora devices')", sel);
}

vkl_status vkl_vk_create(const vkl_vk_options *opt, vkl_vk **out, vkl_err *err) {
    *out = NULL;
    int level;
    if (vkl_env_check(err) || vkl_env_validation(&level, err)) return err->status;
    if (load_loader(err)) return err->status;
    vkl_vk *vk = vkl_calloc(1, sizeof(*vk));
    /* Asked for by the caller (the tests) without a level: the full checks, synchronization included. */
    if (!level && opt && opt->validation) level = 1;
    vk->validation = level != 0;
    vk->validation_sync = level == 1;
    VkPhysicalDevice *pds = NULL;
    vkl_device_info *infos = NULL;
    uint32_t n = 0;
    if (create_instance(level, vk, &vk->instance, err)) goto fail;
    if (enumerate(vk->instance, &pds, &n, err)) goto fail;
    infos = vkl_calloc(n, sizeof(*infos));
    for (uint32_t i = 0; i < n; i++) query_info(vk->instance, pds[i], i, &infos[i]);
    const char *sel = opt && opt->device ? opt->device : getenv("VKLORA_DEVICE");
    uint32_t pick = 0;
    vkl_err perr = {0};
    if (pick_device(sel, infos, n, &pick, &perr)) {
        if (opt && opt->device) vkl_err_set(err, perr.status, "%s", perr.msg);
        else vkl_err_set(err, perr.status, "environment: VKLORA_DEVICE=\"%.64s\": %s", sel, perr.msg);
        goto fail;
    }
    vk->phys = pds[pick];
    vk->info = infos[pick];
    const vkl_device_info *d = &vk->info;
    if (d->api_version < VK_API_VERSION_1_2) {
        vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: device %u (%s) supports only Vulkan %u.%u; vklora needs 1.2",
                    d->index, d->name, VK_API_VERSION_MAJOR(d->api_version), VK_API_VERSION_MINOR(d->api_version));
        goto fail;
    }
    if (!d->push_descriptor) {
        vkl_err_set(err, VKL_ERR_RUNTIME,
                    "vulkan: device %u (%s) lacks VK_KHR_push_descriptor, which vklora needs; update the driver",
                    d->index, d->name);
        goto fail;
    }
    if (!d->subgroup_basic) {
        vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: device %u (%s) has no subgroup operations in compute shaders",
                    d->index, d->name);
        goto fail;
    }
    vkGetPhysicalDeviceMemoryProperties(vk->phys, &vk->mem_props);

    /* One compute queue: prefer a compute-only family (async compute on discrete GPUs), else any with compute. */
    uint32_t nq = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &nq, NULL);
    VkQueueFamilyProperties *qf = vkl_calloc(nq, sizeof(*qf));
    vkGetPhysicalDeviceQueueFamilyProperties(vk->phys, &nq, qf);
    int64_t fam = -1;
    for (uint32_t i = 0; i < nq && fam < 0; i++)
        if ((qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && !(qf[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) fam = i;
    for (uint32_t i = 0; i < nq && fam < 0; i++)
        if (qf[i].queueFlags & VK_QUEUE_COMPUTE_BIT) fam = i;
    bool ts = fam >= 0 && qf[fam].timestampValidBits > 0;
    free(qf);
    if (fam < 0) {
        vkl_err_set(err, VKL_ERR_RUNTIME, "vulkan: device %s has no compute queue", d->name);
        goto fail;
    }
    vk->queue_family = (uint32_t)fam;
    vk->info.timestamps = ts;

    /* Enable the optional features the device has; shaders pick variants from vk->info. */
    bool v13 = d->api_version >= VK_API_VERSION_1_3 && instance_api_version() >= VK_API_VERSION_1_3;
    VkPhysicalDeviceVulkan13Features f13 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES,
        .subgroupSizeControl = d->subgroup_size_control,
        .computeFullSubgroups = d->compute_full_subgroups,
        .shaderIntegerDotProduct = d->int_dot_product,
    };
    VkPhysicalDeviceVulkan12Features f12 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
        .pNext = v13 ? &f13 : NULL,
        .shaderFloat16 = d->fp16_arith,
        .shaderInt8 = d->int8_arith,
        .storageBuffer8BitAccess = d->storage_8bit,
        .vulkanMemoryModel = d->coopmat_usable,
    };
    /* cooperative matrices, for the coopmat kernel variants */
    vkl_coopmat_features_khr cmf = {.sType = VKL_STYPE_COOPMAT_FEATURES, .pNext = f12.pNext, .cooperativeMatrix = VK_TRUE};
    if (d->coopmat_usable) f12.pNext = &cmf;
    VkPhysicalDeviceVulkan11Features f11 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
        .pNext = &f12,
        .storageBuffer16BitAccess = d->storage_16bit,
    };
    VkPhysicalDeviceFeatures base_features;
    vkGetPhysicalDeviceFeatures(vk->phys, &base_features);
    VkPhysicalDeviceFeatures2 f2 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
        .pNext = &f11,
        .features = {.shaderInt64 = base_features.shaderInt64, .shaderInt16 = base_features.shaderInt16},
    };
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
        .queueFamilyIndex = vk->queue_family,
        .queueCount = 1,
        .pQueuePriorities = &prio,
    };
    const char *exts[] = {VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME, VKL_KHR_COOPMAT_NAME};
    VkDeviceCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .pNext = &f2,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &qci,
        .enabledExtensionCount = d->coopmat_usable ? 2 : 1,
        .ppEnabledExtensionNames = exts,
    };
    VkResult r = vkCreateDevice(vk->phys, &dci, NULL, &vk->device);
    if (r != VK_SUCCESS) {
        vkl_vk_check(vk, r, "vkCreateDevice", __FILE__, __LINE__, err);
        goto fail;
    }
    vkGetDeviceQueue(vk->device, vk->queue_family, 0, &vk->queue);

    VkCommandPoolCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
        .queueFamilyIndex = vk->queue_family,
    };
    r = vkCreateCommandPool(vk->device, &pci, NULL, &vk->cmd_pool);
    if (r == VK_SUCCESS) {
        VkCommandBufferAllocateInfo ai = {
            .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
            .commandPool = vk->cmd_pool,
            .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
            .commandBufferCount = 1,
        };
        r = vkAllocateCommandBuffers(vk->device, &ai, &vk->cmd);
    }
    if (r == VK_SUCCESS) {
        VkFenceCreateInfo fci = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        r = vkCreateFence(vk->device, &fci, NULL, &vk->fence);
    }
    if (r == VK_SUCCESS && ts) {
        vk->query_count = 256;
        VkQueryPoolCreateInfo qpi = {
            .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
            .queryType = VK_QUERY_TYPE_TIMESTAMP,
            .queryCount = vk->query_count,
        };
        r = vkCreateQueryPool(vk->device, &qpi, NULL, &vk->query_pool);
    }
    if (r == VK_SUCCESS) {
        VkPipelineCacheCreateInfo pcci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
        r = vkCreatePipelineCache(vk->device, &pcci, NULL, &vk->pipeline_cache);
    }
    if (r != VK_SUCCESS) {
        vkl_vk_check(vk, r, "creating the command pool, fence, query pool or pipeline cache", __FILE__, __LINE__, err);
        goto fail;
    }
    free(pds);
    free(infos);
    *out = vk;
    return VKL_OK;
fail:
    free(pds);
    free(infos);
    vkl_vk_destroy(vk);
    return err->status;
}

uint64_t vkl_vk_memory_budget(const vkl_vk *vk) {
    uint64_t b = vk->info.device_local_bytes, v = 0;
    bool given = false;
    /* vkl_vk_create refused a malformed value; one set later is ignored here (no error path). */
    vkl_err e = {0};
    if (vkl_env_size("VKLORA_MEMORY_BUDGET", 1, &v, &given, &e) == VKL_OK && given && (b == 0 || v < b)) b = v;
    return b;
}

void vkl_buffer_views_destroy_all(vkl_vk *vk);

void vkl_vk_destroy(vkl_vk *vk) {
    if (!vk) return;
    if (vk->device) {
        vkDeviceWaitIdle(vk->device);
        if (vk->staging) {
            vkl_buffer_destroy(vk, vk->staging);
            free(vk->staging);
        }
        vkl_buffer_views_destroy_all(vk);
        if (vk->pipeline_cache) vkDestroyPipelineCache(vk->device, vk->pipeline_cache, NULL);
        if (vk->query_pool) vkDestroyQueryPool(vk->device, vk->query_pool, NULL);
        vkl_profile_stop(vk);
        if (vk->fence) vkDestroyFence(vk->device, vk->fence, NULL);
        if (vk->cmd_pool) vkDestroyCommandPool(vk->device, vk->cmd_pool, NULL);
        vkDestroyDevice(vk->device, NULL);
    }
    if (vk->messenger) {
        /* volk's global pointer may come from a later instance without debug utils: ask this instance. */
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(vk->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy) destroy(vk->instance, vk->messenger, NULL);
    }
    if (vk->instance) vkDestroyInstance(vk->instance, NULL);
    free(vk);
}
