/* Tests of the vklora command line as a script would use it: version, help of every command, exit codes of
 * usage errors, and `devices --json` on the test device. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "harness.h"
#include "vklora/common.h"

static int run_bin(const char *args, char **out, char **err) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s %s", t_vklora_bin(), args);
    return t_run(cmd, out, err);
}

static int test_version_help(void) {
    char *out = NULL, *err = NULL;
    T_ASSERT(run_bin("--version", &out, &err) == 0, "exit");
    T_ASSERT(out && !strncmp(out, "vklora ", 7), "version: %s", out);
    free(out), free(err);
    T_ASSERT(run_bin("--help", &out, &err) == 0, "exit");
    T_ASSERT(strstr(out, "devices") && strstr(out, "info") && strstr(out, "config"), "help lists commands");
    free(out), free(err);
    const char *cmds[] = {"devices", "info", "config"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(cmds); i++) {
        char a[64];
        snprintf(a, sizeof(a), "%s --help", cmds[i]);
        T_ASSERT(run_bin(a, &out, &err) == 0, "%s --help exit", cmds[i]);
        T_ASSERT(out && strstr(out, "usage:"), "%s --help prints usage", cmds[i]);
        free(out), free(err);
    }
    return 0;
}

static int test_usage_errors(void) {
    char *out = NULL, *err = NULL;
    T_ASSERT(run_bin("", &out, &err) == 2, "no command: exit 2");
    free(out), free(err);
    T_ASSERT(run_bin("frobnicate", &out, &err) == 2, "unknown command: exit 2");
    T_ASSERT(err && strstr(err, "frobnicate"), "message names the command");
    T_ASSERT(!out || !*out, "nothing on stdout");
    free(out), free(err);
    T_ASSERT(run_bin("devices --bogus", &out, &err) == 2, "unknown flag: exit 2");
    T_ASSERT(err && strstr(err, "--bogus"), "message names the flag");
    free(out), free(err);
    return 0;
}

static int test_devices_json(void) {
    char *out = NULL, *err = NULL;
    T_ASSERT(run_bin("devices --json", &out, &err) == 0, "exit: %s", err ? err : "");
    cJSON *doc = cJSON_Parse(out);
    T_ASSERT(doc, "stdout is not JSON: %s", out);
    cJSON *devs = cJSON_GetObjectItem(doc, "devices");
    T_ASSERT(cJSON_IsArray(devs) && cJSON_GetArraySize(devs) >= 1, "devices array");
    bool found_cpu = false;
    cJSON *d;
    cJSON_ArrayForEach(d, devs) {
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(d, "type"));
        cJSON *lim = cJSON_GetObjectItem(d, "limits");
        T_ASSERT(type && lim, "fields");
        double range = cJSON_GetNumberValue(cJSON_GetObjectItem(lim, "max_storage_buffer_range"));
        double sg = cJSON_GetNumberValue(cJSON_GetObjectItem(d, "subgroup_size"));
        T_ASSERT(range > 0 && sg >= 1, "limits are real numbers");
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(d, "name"));
        if (!strcmp(type, "cpu") && name && strstr(name, "llvmpipe")) {
            found_cpu = true;
            T_ASSERT(range == 134217728.0, "llvmpipe's maxStorageBufferRange is 128 MiB, got %.0f", range);
        }
    }
    /* CI runs on lavapipe; a GPU machine may not have it installed. */
    if (!getenv("VKL_TEST_DEVICE")) T_ASSERT(found_cpu, "llvmpipe not listed");
    cJSON_Delete(doc);
    free(out), free(err);
    T_ASSERT(run_bin("devices", &out, &err) == 0, "text exit");
    T_ASSERT(strstr(out, "subgroup size") && strstr(out, "maxStorageBufferRange"), "text output");
    free(out), free(err);
    return 0;
}

static int test_no_driver(void) {
    /* A machine without a Vulkan driver: point the loader at no ICD at all. */
    char *out = NULL, *err = NULL;
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "VK_DRIVER_FILES=/nonexistent.json VK_ICD_FILENAMES=/nonexistent.json %s devices",
             t_vklora_bin());
    int rc = t_run(cmd, &out, &err);
    T_ASSERT(rc == 1, "exit code %d, expected 1", rc);
    T_ASSERT(err && strstr(err, "mesa-vulkan-drivers"), "message names the package: %s", err ? err : "");
    free(out), free(err);
    return 0;
}

const vkl_test_case vkl_tests_cli[] = {
    {"cli/version_help", test_version_help},
    {"cli/usage_errors", test_usage_errors},
    {"cli/devices_json", test_devices_json},
    {"cli/no_driver", test_no_driver},
    {NULL, NULL},
};
