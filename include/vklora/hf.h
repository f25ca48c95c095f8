/* Hugging Face model folders: config.json + model.safetensors (or shards listed by model.safetensors.index.json),
 * read as the GGUF that llama.cpp's converter would write for the same model, so every command takes a folder
 * wherever it takes a GGUF (vkl_model_load does the dispatch). The weights are not copied: 2-D tensors are the
 * safetensors bytes in their dtype (BF16, F16, F32) through the mapping; only the small 1-D tensors (norms, biases:
 * F32 as the graph wants them, Gemma's norms as 1 + w) and the rope factor tables are computed.
 *
 * Row order of q and k: llama.cpp's converter permutes the q/k rows of adjacent-pair-RoPE families (llama, Mistral)
 * so that its rope pairs (2i, 2i+1); Hugging Face rotates halves (i, i + D/2). The load view keeps Hugging Face's
 * rows and marks the model to use NeoX pairs instead (metadata key vklora.rope_neox), which is the same function
 * without a second copy of q and k; the convert view permutes them (copies) for a GGUF that llama.cpp reads. */
#ifndef VKLORA_HF_H
#define VKLORA_HF_H

#include "vklora/gguf.h"

typedef struct vkl_hf_model vkl_hf_model;

/* Whether `path` names a directory (a model folder rather than a GGUF file). */
bool vkl_hf_is_folder(const char *path);

typedef enum {
    VKL_HF_VIEW_LOAD,    /* Hugging Face q/k rows, vklora.rope_neox where the family's GGUF layout differs */
    VKL_HF_VIEW_CONVERT, /* llama.cpp's q/k rows, and tokenizer.json as tokenizer.ggml.* keys when the folder has
                            one: the GGUF vklora convert writes */
} vkl_hf_view;

/* Read dir/config.json, the safetensors index or file and their headers, and build the GGUF view. Errors
 * (VKL_ERR_INPUT) name the file and the field: an unsupported `architectures` entry, a missing shard, a tensor the
 * index names that its shard lacks, a shape or dtype that disagrees with config.json, a missing tensor. */
vkl_status vkl_hf_open(const char *dir, vkl_hf_view view, vkl_hf_model **out, vkl_err *err);
/* The GGUF view: metadata keys and tensor names as llama.cpp's converter writes them; tensor data points into the
 * folder's mappings and buffers owned by h, valid until vkl_hf_close. */
const vkl_gguf *vkl_hf_gguf(const vkl_hf_model *h);
/* The folder the view was read from. */
const char *vkl_hf_dir(const vkl_hf_model *h);
/* The folder's `architectures[0]` (e.g. "Qwen3ForCausalLM"). */
const char *vkl_hf_architecture(const vkl_hf_model *h);
void vkl_hf_close(vkl_hf_model *h);

/* Open `path` as a GGUF file or, when it is a folder, as its load view: *hf is then set and owns *g (close with
 * vkl_hf_close_any, which closes whichever was opened). For commands that read metadata only. */
vkl_status vkl_hf_open_any(const char *path, vkl_gguf **g, vkl_hf_model **hf, vkl_err *err);
void vkl_hf_close_any(vkl_gguf *g, vkl_hf_model *hf);

struct vkl_model;
struct vkl_lora;
/* Write model m as a Hugging Face folder: dir/config.json and dir/model.safetensors (BF16, or F32 when !bf16; norms
 * and biases F32), with `lora` (may be NULL) merged in at lora's scale times `scale`, q/k rows in Hugging Face's
 * order and Gemma's norms as w of its (1 + w). Quantized weights are dequantized. Files are written atomically. */
vkl_status vkl_hf_export(const struct vkl_model *m, const struct vkl_lora *lora, float scale, const char *dir,
                         bool bf16, vkl_err *err);

#endif
