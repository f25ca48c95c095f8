/* libFuzzer: the safetensors reader on arbitrary bytes, then the lookups the adapter loader makes. */
#include "fuzz_common.h"
#include "vklora/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    vkl_err err = {0};
    vkl_safetensors *st = NULL;
    if (vkl_safetensors_open_memory(copy, size, "fuzz.safetensors", &st, &err) == VKL_OK) {
        volatile uint8_t sum = 0;
        for (uint64_t i = 0; i < st->n_tensors; i++) {
            const vkl_st_tensor *t = &st->tensors[i];
            if (vkl_safetensors_find(st, t->name) < 0) abort();
            if (t->end > t->begin) sum ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->end - t->begin - 1];
        }
        (void)sum;
        (void)vkl_safetensors_metadata(st, "format");
        vkl_safetensors_close(st);
    } else if (!err.msg[0]) {
        abort();
    }
    free(copy);
    return 0;
}
