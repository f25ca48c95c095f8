/* `vklora merge`: fold a LoRA adapter into its base model, W' = W + s·B·A, and write a plain GGUF that llama.cpp
 * and vklora load without the adapter (stored in the base's types or re-quantized with a llama-quantize mix). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "vklora/quantize.h"

static const char *HELP =
    "usage: vklora merge --model M --adapter A (--out OUT.gguf | --out-hf DIR) [--quantization Q] [--scale S]\n"
    "                    [--json]\n\n"
    "Adds each adapted projection's update to the base weight, W' = dequant(W) + S * s * B·A (s = alpha / r, or\n"
    "alpha / sqrt(r) for rsLoRA), and writes the model with every other tensor and all metadata copied.\n"
    "  --model M         base model: a GGUF or a Hugging Face folder (a folder's merge gets llama.cpp's q/k row\n"
    "                    order in OUT.gguf)\n"
    "  --adapter A       adapter.gguf (llama.cpp) or a PEFT directory / adapter_model.safetensors\n"
    "  --out OUT.gguf    merged model, written atomically\n"
    "  --out-hf DIR      merged model as a Hugging Face folder instead: DIR/config.json and DIR/model.safetensors\n"
    "                    (BF16 weights, F32 norms; quantized bases are dequantized), for transformers / PEFT users\n"
    "  --quantization Q  keep (default: each tensor in its own type; quantized ones are requantized after the\n"
    "                    merge), or a mix: q4_k_m q5_k_m q6_k q8_0 q4_0 f16 bf16 f32 (llama.cpp's rules, see\n"
    "                    'vklora quantize --help'); f32 keeps the merge exact\n"
    "  --scale S         multiply the adapter's scale by S (default 1; as eval --scale / llama.cpp --lora-scaled)\n"
    "  --json            print the per-tensor report as JSON (as 'vklora quantize --json')\n";

int vkl_cmd_merge(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *out = NULL, *out_hf = NULL, *quant = NULL;
    float scale = 1.0f;
    bool json = false;
    const vkl_cli_opt opts[] = {
        {"--model", VKL_OPT_STR, &model, 0, 0},     {"--adapter", VKL_OPT_STR, &adapter, 0, 0},
        {"--out", VKL_OPT_STR, &out, 0, 0},         {"--quantization", VKL_OPT_STR, &quant, 0, 0},
        {"--out-hf", VKL_OPT_STR, &out_hf, 0, 0},
        {"--scale", VKL_OPT_F32, &scale, -100, 100}, {"--json", VKL_OPT_FLAG, &json, 0, 0},
    };
    int prc = vkl_cli_parse("merge", argc, argv, opts, VKL_ARRAY_LEN(opts), HELP);
    if (prc >= 0) return prc;
    if (!model || !adapter || !out == !out_hf)
        return vkl_cli_usage("merge", "--model, --adapter and one of --out / --out-hf are required");
    vkl_err err = {0};
    if (out_hf) {
        if (quant) return vkl_cli_usage("merge", "--quantization applies to --out (a GGUF), not to --out-hf");
        if (vkl_merge_to_hf(model, adapter, out_hf, scale, &err))
            return vkl_cli_fail("merge", err.status, "%s", err.msg);
        if (json) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "out_hf", out_hf);
            char *text = cJSON_PrintUnformatted(j);
            printf("%s\n", text);
            free(text);
            cJSON_Delete(j);
        } else {
            printf("merged into %s (config.json, model.safetensors)\n", out_hf);
        }
        return 0;
    }
    if (!quant) quant = "keep";
    int mode = vkl_quant_mode_from_name(quant);
    if (mode < 0)
        return vkl_cli_usage("merge", "unknown --quantization '%s' (expected keep q4_k_m q5_k_m q6_k q8_0 q4_0 f16 "
                             "bf16 f32)", quant);
    vkl_quant_report rep;
    if (vkl_merge_file(model, adapter, out, (vkl_quant_mode)mode, scale, &rep, &err))
        return vkl_cli_fail("merge", err.status, "%s", err.msg);
    vkl_cli_print_quant_report(&rep, json, out);
    vkl_quant_report_free(&rep);
    return 0;
}
