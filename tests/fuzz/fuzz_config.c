/* libFuzzer: the training config (JSON with aliases, groups and --set overrides) on arbitrary text. The first line
 * of the input, when it starts with "--set ", is one override. */
#include "fuzz_common.h"
#include "vklora/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    const char *sets[1];
    int n_sets = 0;
    char *json = text;
    if (!strncmp(text, "--set ", 6)) {
        char *nl = strchr(text, '\n');
        if (nl) {
            *nl = 0;
            sets[n_sets++] = text + 6;
            json = nl + 1;
        }
    }
    vkl_err err = {0};
    vkl_config c;
    if (vkl_config_from_json_string(json, "fuzz.json", sets, n_sets, &c, &err) == VKL_OK) {
        vkl_err e2 = {0};
        (void)vkl_config_check_for_training(&c, &e2);
        cJSON *j = vkl_config_to_json(&c);
        cJSON_Delete(j);
        vkl_config_free(&c);
    } else if (!err.msg[0]) {
        abort();
    }
    free(text);
    return 0;
}
