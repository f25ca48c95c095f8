/* libFuzzer: the dataset loader with chat templates. Input byte 0 picks the format, byte 1 the template, byte 2
 * the vocabulary (SentencePiece or byte-level BPE) and train_on_responses_only; the rest is the file. */
#include "fuzz_common.h"
#include "vklora/config.h"
#include "vklora/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static vkl_tokenizer *tok[2];
    if (!tok[0]) {
        tok[0] = fz_tokenizer("vocab/ggml-vocab-llama-spm.gguf");
        tok[1] = fz_tokenizer("vocab/ggml-vocab-llama-bpe.gguf");
    }
    if (size < 3) return 0;
    vkl_data_opts o = {
        .format = (vkl_dataset_format)(data[0] % VKL_DATASET_COUNT),
        .tmpl = (vkl_chat_template)(data[1] % VKL_TEMPLATE_COUNT),
        .max_seq_length = 2 + data[2] % 200,
        .train_on_responses_only = data[2] & 0x80,
    };
    if (o.format == VKL_DATASET_AUTO) o.format = VKL_DATASET_TEXT; /* AUTO looks at the file name, which has none */
    char path[64];
    int fd = fz_memfile(data + 3, size - 3, path, sizeof(path));
    vkl_err err = {0};
    vkl_dataset *ds = NULL;
    if (vkl_data_load_file(path, &o, tok[(data[2] >> 6) & 1], &ds, &err) == VKL_OK) vkl_dataset_free(ds);
    else if (!err.msg[0]) abort();
    close(fd);
    return 0;
}
