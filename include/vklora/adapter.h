/* Adapter files: llama.cpp's GGUF LoRA adapter (loads with `llama-cli --lora`) and PEFT's directory
 * (adapter_model.safetensors + adapter_config.json, loads with PeftModel.from_pretrained), both written and read.
 *
 * GGUF: general.architecture = the base's, general.type = "adapter", adapter.type = "lora", adapter.lora.alpha
 * (float32), tensors blk.N.<attn_q|...|ffn_down>.weight.lora_a (ggml ne [in, r]) and .lora_b (ne [r, out]), i.e.
 * A (r x in) and B (out x r) row-major, unchanged. llama.cpp scales by alpha / r with r read from the tensors, so
 * the file carries alpha = scale * r (alpha * sqrt(r) under rsLoRA); vklora.lora.* keys keep the original alpha,
 * rsLoRA flag and dropout for an exact round trip.
 *
 * PEFT: base_model.model.model.layers.N.{self_attn.{q,k,v,o}_proj|mlp.{gate,up,down}_proj}.lora_{A,B}.weight with
 * shapes [r, in] / [out, r]. llama.cpp's HF converter permutes the rows of q_proj and k_proj for the `llama`
 * architecture (rotary pairs (i, i + D/2) of each head become adjacent), so the GGUF's attn_q row g of head h is
 * HF row perm(g). B of q and k lives in GGUF row order here: export un-permutes its rows, import permutes them. */
#ifndef VKLORA_ADAPTER_H
#define VKLORA_ADAPTER_H

#include "vklora/common.h"
#include "vklora/lora.h"
#include "vklora/model.h"

/* Write the adapter as a llama.cpp GGUF (F32 tensors), atomically. */
vkl_status vkl_adapter_save_gguf(const vkl_lora *l, const vkl_model *base, const char *path, vkl_err *err);
/* Write `dir`/adapter_model.safetensors (F32) and `dir`/adapter_config.json, each atomically; creates `dir`. */
vkl_status vkl_adapter_save_peft(const vkl_lora *l, const vkl_model *base, const char *dir, vkl_err *err);
/* Read an adapter for `base`: a .gguf file, a PEFT directory, or a PEFT adapter_model.safetensors (its
 * adapter_config.json next to it), detected from the path and the file's magic. Every shape, the rank, the
 * architecture and the dtypes (F32/F16/BF16) are checked against the base model. Projections that the adapter
 * covers in some layers only get zero A and B in the others (no change to the model). */
vkl_status vkl_adapter_load(const char *path_or_dir, const vkl_model *base, vkl_lora **out, vkl_err *err);

/* Map a row of q_proj/k_proj between llama.cpp's GGUF order and the HF order for the `llama` architecture, with
 * head_dim D: GGUF row h*D + 2i + j holds HF row h*D + j*D/2 + i (j in {0, 1}, i < D/2). */
static inline uint32_t vkl_adapter_hf_row_of_gguf_row(uint32_t g, uint32_t head_dim) {
    uint32_t h = g / head_dim, w = g % head_dim;
    return h * head_dim + (w & 1u) * (head_dim / 2) + (w >> 1);
}

/* The PEFT tensor name of (layer, module, A or B) into buf. */
void vkl_adapter_peft_name(uint32_t layer, uint32_t module, bool is_b, char *buf, size_t size);
/* The PEFT name of a trained bias (base_model.model.model.layers.N.self_attn.q_proj.bias). */
void vkl_adapter_peft_bias_name(uint32_t layer, uint32_t module, char *buf, size_t size);

#endif
