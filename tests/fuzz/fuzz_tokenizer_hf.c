/* libFuzzer: Hugging Face tokenizer.json. Byte 0 even: the rest is a tokenizer.json for vkl_tokenizer_load_hf
 * (accepted files then tokenize a few strings, and every id they give and the first ids of the vocabulary must
 * detokenize). Byte 0 odd: the rest is text for the hand-built tokenizers of tests/hf_tokenizer_vectors (added-token
 * flags, Metaspace, ByteLevel) or the real Llama 3.1 file, with and without special tokens, and back. */
#include <cjson/cJSON.h>

#include "fuzz_common.h"

static void roundtrip(const vkl_tokenizer *tok, const char *text, size_t len, bool add, bool special) {
    vkl_err err = {0};
    int32_t *ids = NULL;
    size_t n = 0;
    if (vkl_tokenize(tok, text, len, add, special, &ids, &n, &err) == VKL_OK) {
        char *out = NULL;
        size_t olen = 0;
        vkl_err e2 = {0};
        if (vkl_detokenize(tok, ids, n, special, &out, &olen, &e2) != VKL_OK) {
            fprintf(stderr, "detokenize refused ids from tokenize: %s\n", e2.msg);
            abort();
        }
        free(out);
    } else if (!err.msg[0]) {
        abort();
    }
    free(ids);
}

/* The tokenizer_json object of a committed vectors file, loaded through an in-memory file. */
static vkl_tokenizer *synthetic(const char *name) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/hf_tokenizer_vectors/%s.json", VKL_SOURCE_ROOT, name);
    FILE *f = fopen(path, "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) abort();
    fclose(f);
    cJSON *j = cJSON_ParseWithLength(buf, (size_t)n);
    free(buf);
    char *js = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "tokenizer_json"));
    cJSON_Delete(j);
    if (!js) abort();
    char mpath[64];
    int fd = fz_memfile((const uint8_t *)js, strlen(js), mpath, sizeof(mpath));
    free(js);
    vkl_tokenizer *tok = NULL;
    vkl_err err = {0};
    if (vkl_tokenizer_load_hf(mpath, &tok, &err)) {
        fprintf(stderr, "fuzz: %s: %s\n", name, err.msg);
        abort();
    }
    close(fd);
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static vkl_tokenizer *toks[4];
    if (size < 1) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] & 1) {
        int k = (data[0] >> 1) % 4;
        if (!toks[k]) {
            static const char *const names[] = {"synthetic-flags", "synthetic-metaspace", "synthetic-bytelevel"};
            if (k < 3) {
                toks[k] = synthetic(names[k]);
            } else {
                vkl_err err = {0};
                if (vkl_tokenizer_load_hf(fz_data_path("hf/llama-3.1/tokenizer.json"), &toks[k], &err)) {
                    fprintf(stderr, "fuzz: %s\n", err.msg);
                    abort();
                }
            }
        }
        roundtrip(toks[k], text, len, data[0] & 0x10, data[0] & 0x20);
        return 0;
    }
    char path[64];
    int fd = fz_memfile((const uint8_t *)text, len, path, sizeof(path));
    vkl_tokenizer *tok = NULL;
    vkl_err err = {0};
    vkl_status st = vkl_tokenizer_load_hf(path, &tok, &err);
    close(fd);
    if (st != VKL_OK) {
        if (!err.msg[0] || tok) abort();
        return 0;
    }
    static const char *const samples[] = {"hello world", "  a\tb\n\nc  ", "<s>x</s> <unk>", "\xC3\xA9\xE2\x96\x81\xF0\x9F\x98\x80",
                                          "\xFF\xFE broken \xE2\x82", ""};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        roundtrip(tok, samples[i], strlen(samples[i]), true, true);
        roundtrip(tok, samples[i], strlen(samples[i]), false, false);
    }
    int32_t n_vocab = vkl_tokenizer_n_vocab(tok);
    int32_t ids[64];
    size_t n = 0;
    for (int32_t i = 0; i < n_vocab && n < 64; i++) ids[n++] = i;
    char *out = NULL;
    size_t olen = 0;
    if (vkl_detokenize(tok, ids, n, true, &out, &olen, &err) != VKL_OK) abort();
    free(out);
    vkl_tokenizer_free(tok);
    return 0;
}
