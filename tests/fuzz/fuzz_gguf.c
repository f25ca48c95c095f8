/* libFuzzer: the GGUF reader on arbitrary bytes, then every lookup a loader makes on what it accepted. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an allocation of exactly `size` bytes, so that ASan sees any read past the end */
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    if (vkl_gguf_open_memory(copy, size, "fuzz.gguf", &g, &err) == VKL_OK) {
        for (uint64_t i = 0; i < g->n_kv; i++) {
            const char *k = g->kv[i].key.str;
            uint64_t u;
            int64_t s;
            double d;
            bool b;
            (void)vkl_gguf_get_u64(g, k, &u), (void)vkl_gguf_get_i64(g, k, &s), (void)vkl_gguf_get_f64(g, k, &d);
            (void)vkl_gguf_get_bool(g, k, &b), (void)vkl_gguf_get_str(g, k);
            (void)vkl_gguf_get_arr(g, k, VKL_GGUF_TYPE_COUNT);
        }
        volatile uint8_t sum = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const vkl_gguf_tensor *t = &g->tensors[i];
            if (vkl_gguf_find_tensor(g, t->name.str) < 0) abort();
            if (t->size) sum ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->size - 1];
        }
        (void)sum;
        /* the tokenizer reads its vocabulary from the same metadata */
        vkl_tokenizer *tok = NULL;
        vkl_err e2 = {0};
        if (vkl_tokenizer_load(g, &tok, &e2) == VKL_OK) vkl_tokenizer_free(tok);
        vkl_gguf_close(g);
    } else if (!err.msg[0]) {
        abort(); /* a refusal must say why */
    }
    free(copy);
    return 0;
}
