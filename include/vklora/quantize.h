/* Whole-model quantization with llama.cpp's per-tensor rules (llama-quantize's q4_k_m, q5_k_m, ... mixes), applied
 * to a GGUF file, to a loaded model in memory (quantize-on-load), and to a base merged with a LoRA adapter.
 *
 * The mixes, as llama.cpp's llama_tensor_get_type decides them for a dense llama/qwen2 model without an importance
 * matrix (vklora never has one, so the *_ref row quantizers are used and the bytes equal llama-quantize's):
 *   - only 2D tensors whose name ends in "weight" and is not a norm are converted; 1D tensors (norms, biases) keep
 *     their type (F32);
 *   - output.weight, and token_embd.weight when the model has no output.weight (tied head), get Q6_K in every
 *     quantized mix except q8_0 (Q8_0); Q8_0 when the row length is not a multiple of 256;
 *   - q4_k_m / q5_k_m: attn_v and ffn_down of the "use_more_bits" layers (the first and last eighth, and every third
 *     layer in between) get Q6_K; llama's 70B layout (80 layers, GQA) bumps the remaining q4_k_m attn_v to Q5_K;
 *   - everything else gets the mix's default type (q4_k_m: Q4_K, q5_k_m: Q5_K, q6_k: Q6_K, q8_0, q4_0, f16, bf16,
 *     f32); the other rules of llama.cpp (GQA bumps for Q2_K/Q3_K/IQ mixes, MoE, Falcon) do not apply to these mixes.
 *   - Row lengths that a target's block does not divide fall back as llama.cpp does, except that its targets which
 *     vklora cannot compute with are replaced by the nearest supported type of higher precision: Q4_K -> (Q5_0)
 *     Q8_0, Q5_K -> (Q5_1) Q8_0, Q6_K -> Q8_0; a row length not a multiple of 32 -> F16 (llama.cpp's last resort;
 *     llama.cpp aborts there for q4_0/q8_0 targets, vklora also uses F16).
 * A tensor that is already quantized is never requantized by `quantize` or quantize-on-load (llama.cpp refuses it too
 * without --allow-requantize): that is an input error naming the tensor, unless its target type is its own type.
 * `merge` always dequantizes the adapted tensors, and requantizes whatever its --quantization asks for. */
#ifndef VKLORA_QUANTIZE_H
#define VKLORA_QUANTIZE_H

#include "vklora/common.h"
#include "vklora/config.h"
#include "vklora/model.h"

/* The model facts the rules look at. */
typedef struct vkl_quant_layout {
    vkl_arch arch;
    uint32_t n_layer, n_head, n_head_kv;
    bool has_output; /* output.weight present; without it token_embd is the head and gets the output rule */
} vkl_quant_layout;

/* general.file_type (LLAMA_FTYPE_MOSTLY_*) of a mix: f32 0, f16 1, q4_0 2, q8_0 7, q4_k_m 15, q5_k_m 17, q6_k 18,
 * bf16 32. -1 for keep. */
int vkl_quant_mode_ftype(vkl_quant_mode mode);
/* The mix named `name` (vkl_quant_mode_names spelling, case-insensitive), or -1. */
int vkl_quant_mode_from_name(const char *name);

/* Target type of one tensor under `mode` (keep: cur_type). `name` is the GGUF name ("blk.3.attn_v.weight"), ne0
 * the row length. */
uint32_t vkl_quant_tensor_type(const vkl_quant_layout *lay, vkl_quant_mode mode, const char *name, uint32_t n_dims,
                               uint64_t ne0, uint32_t cur_type);

/* A low-rank update added to every row before quantizing: row i += scale * B[i,:] . A (B rows x r, A r x cols). */
typedef struct vkl_quant_delta {
    const float *A, *B;
    uint32_t r;
    float scale;
} vkl_quant_delta;

/* Convert rows x cols elements from src_type to dst_type (both among vklora's supported types), row by row with
 * llama.cpp's reference quantizers, on several threads; the result does not depend on the thread count.
 * delta may be NULL. rel_rmse (may be NULL) receives ||dequant(dst) - x|| / ||x|| over the whole tensor, x being the
 * dequantized source plus the delta. */
vkl_status vkl_quantize_rows(uint32_t src_type, const void *src, uint32_t dst_type, void *dst, uint64_t rows,
                             uint64_t cols, const vkl_quant_delta *delta, double *rel_rmse, vkl_err *err);

/* What a whole-model conversion did, tensor by tensor, in file order. */
typedef struct vkl_quant_tensor_info {
    char *name;         /* owned */
    uint32_t from_type; /* type in the input */
    uint32_t to_type;   /* type written */
    bool adapted;       /* merge: a LoRA update was added */
    double rel_rmse;    /* relative RMS error of what is written vs the (merged) full-precision values; 0 copied */
    uint64_t bytes;     /* bytes written */
} vkl_quant_tensor_info;

typedef struct vkl_quant_report {
    uint32_t n;
    vkl_quant_tensor_info *t;
    int file_type;        /* general.file_type written (-1: the input's, unchanged) */
    uint64_t bytes_in, bytes_out;
} vkl_quant_report;
void vkl_quant_report_free(vkl_quant_report *r);

/* Quantize a llama/qwen2 GGUF into `out_path` with the mix `mode` (not keep): every metadata key copied in order,
 * general.file_type and general.quantization_version (2) set, tensors in input order, written atomically. */
vkl_status vkl_quantize_file(const char *in_path, const char *out_path, vkl_quant_mode mode, vkl_quant_report *rep,
                             vkl_err *err);

/* Merge a LoRA adapter (adapter.gguf or PEFT directory, see vkl_adapter_load) into its base:
 * W' = dequant(W) + scale * s * B·A for each adapted projection (s = the adapter's alpha / r or alpha / sqrt(r)),
 * stored as `mode` decides (keep: each tensor's own type; else the mix's rules). Other tensors are copied, or
 * converted by the mix. Metadata copied; general.file_type set unless keep. Written atomically. */
vkl_status vkl_merge_file(const char *model_path, const char *adapter_path, const char *out_path, vkl_quant_mode mode,
                          float scale, vkl_quant_report *rep, vkl_err *err);
/* A Hugging Face model folder as a GGUF that llama.cpp loads (its tensor names, metadata keys, q/k row order and
 * tokenizer keys; see vklora/hf.h), its tensors kept in their types (VKL_QUANT_KEEP) or converted to `mode`. */
vkl_status vkl_convert_folder(const char *dir, const char *out_path, vkl_quant_mode mode, vkl_quant_report *rep,
                              vkl_err *err);
/* The same merge written as a Hugging Face folder (config.json + model.safetensors in BF16, q/k rows and norms in
 * its conventions; see vkl_hf_export in vklora/hf.h), from a GGUF or a folder base. */
vkl_status vkl_merge_to_hf(const char *model_path, const char *adapter_path, const char *out_dir, float scale,
                           vkl_err *err);

/* Quantize-on-load: convert the weights of a loaded model (before vkl_model_upload) with the rules of `mode`;
 * converted weights own their bytes (vkl_weight.data/owned). keep does nothing. An already-quantized weight whose
 * target differs from its type is an input error (use "keep" or an F32/F16/BF16 base). */
vkl_status vkl_model_quantize(vkl_model *m, vkl_quant_mode mode, vkl_err *err);
/* "q4_K x 14, q6_K x 5, f32 x 9" over the model's weights (tied head counted once). */
void vkl_model_type_summary(const vkl_model *m, char *buf, size_t size);

#endif
