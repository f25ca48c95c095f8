/* libFuzzer: both tokenizer kinds (SentencePiece: llama-spm; byte-level BPE: llama-bpe, gpt-2, qwen2) on arbitrary
 * bytes, with and without special-token parsing, and back: detokenize(tokenize(x)) == x for valid UTF-8 x without
 * special tokens is checked by the unit tests; here every id that comes out must detokenize. Byte 0 picks the
 * vocabulary and the flags. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const vocabs[] = {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-llama-bpe.gguf",
                                         "vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-qwen2.gguf"};
    static vkl_tokenizer *tok[4];
    if (size < 1) return 0;
    int v = data[0] % 4;
    if (!tok[v]) tok[v] = fz_tokenizer(vocabs[v]);
    bool add_bos = data[0] & 0x10, special = data[0] & 0x20;
    vkl_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (vkl_tokenize(tok[v], (const char *)data + 1, size - 1, add_bos, special, &ids, &n, &err) == VKL_OK) {
        char *text = NULL;
        size_t len = 0;
        vkl_err e2 = {0};
        if (vkl_detokenize(tok[v], ids, n, special, &text, &len, &e2) != VKL_OK) {
            fprintf(stderr, "detokenize refused ids from tokenize: %s\n", e2.msg);
            abort();
        }
        free(text);
    } else if (!err.msg[0]) {
        abort();
    }
    free(ids);
    return 0;
}
