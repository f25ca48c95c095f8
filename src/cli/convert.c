/* `vklora convert`: a Hugging Face model folder (config.json, safetensors, tokenizer.json) as a GGUF that llama.cpp
 * and vklora load, optionally converted to a llama-quantize mix on the way. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vklora/quantize.h"

static const char *HELP =
    "usage: vklora convert HF_DIR OUT.gguf [--type TYPE] [--json]\n\n"
    "Writes the model of a Hugging Face folder (LlamaForCausalLM, MistralForCausalLM, Qwen2/Qwen3ForCausalLM,\n"
    "Gemma2/Gemma3ForCausalLM, Gemma3ForConditionalGeneration's text model, Phi3ForCausalLM,\n"
    "Mistral3ForConditionalGeneration's text model) as llama.cpp's converter would: its tensor names and metadata\n"
    "keys, q/k rows permuted for llama-style RoPE, Gemma's norms as 1 + w, the rope tables, and the tokenizer from\n"
    "tokenizer.json / tokenizer_config.json (tokens, types, merges or scores, pre-tokenizer, special ids, chat\n"
    "template). OUT is written atomically.\n"
    "  --type TYPE  keep (default: each tensor in its dtype, BF16/F16/F32) or q4_k_m q5_k_m q6_k q8_0 q4_0 f16\n"
    "               bf16 f32 (llama-quantize's rules, see 'vklora quantize --help')\n"
    "  --json       print the per-tensor report as JSON (as 'vklora quantize --json')\n"
    "Training needs no conversion: every command's --model (and a config's \"model\") takes the folder itself.\n";

int vkl_cmd_convert(int argc, char **argv) {
    const char *pos[2] = {0}, *type = "keep";
    int n_pos = 0;
    bool json = false;
    const vkl_cli_opt opts[] = {{"--type", VKL_OPT_STR, &type, 0, 0}, {"--json", VKL_OPT_FLAG, &json, 0, 0}};
    int prc = vkl_cli_parse_pos("convert", argc, argv, opts, VKL_ARRAY_LEN(opts), HELP, pos, 2, &n_pos);
    if (prc >= 0) return prc;
    if (n_pos < 2) return vkl_cli_usage("convert", "HF_DIR and OUT.gguf are required");
    int mode = vkl_quant_mode_from_name(type);
    if (mode < 0)
        return vkl_cli_usage("convert", "unknown --type '%s' (expected keep q4_k_m q5_k_m q6_k q8_0 q4_0 f16 bf16 f32)",
                             type);
    vkl_err err = {0};
    vkl_quant_report rep;
    if (vkl_convert_folder(pos[0], pos[1], (vkl_quant_mode)mode, &rep, &err))
        return vkl_cli_fail("convert", err.status, "%s", err.msg);
    vkl_cli_print_quant_report(&rep, json, pos[1]);
    vkl_quant_report_free(&rep);
    return 0;
}
