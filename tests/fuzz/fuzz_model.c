/* libFuzzer: the model loader (vkl_model_load: GGUF, hyper-parameters, weight table; everything before the first
 * Vulkan call) on arbitrary files. */
#include "fuzz_common.h"
#include "vklora/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fz_memfile(data, size, path, sizeof(path));
    vkl_err err = {0};
    vkl_model *m = NULL;
    if (vkl_model_load(path, &m, &err) == VKL_OK) vkl_model_free(m);
    else if (!err.msg[0]) abort();
    close(fd);
    return 0;
}
