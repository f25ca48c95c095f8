/* `vklora quantize`: convert a full-precision llama/qwen2 GGUF into one of llama-quantize's mixes (per-tensor rules
 * in src/quantize.c), and the report printing shared with `vklora merge`. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vklora/quant.h"
#include "vklora/quantize.h"

static const char *HELP =
    "usage: vklora quantize IN.gguf OUT.gguf TYPE [--json]\n\n"
    "Quantizes a llama/qwen2 GGUF with llama.cpp's per-tensor rules (the file equals llama-quantize's without an\n"
    "importance matrix, tensor for tensor):\n"
    "  TYPE      q4_k_m q5_k_m q6_k q8_0 q4_0 f16 bf16 f32\n"
    "            _m mixes: attn_v and ffn_down of the first/last eighth of the layers and every third layer in\n"
    "            between get q6_K; output.weight (token_embd.weight for a tied head) gets q6_K (q8_0 in q8_0);\n"
    "            norms and biases stay f32. Rows that a block size does not divide fall back to q8_0, then f16.\n"
    "  --json    print {\"tensors\": [{\"name\", \"from\", \"type\", \"rel_rmse\", \"bytes\"}], \"file_type\",\n"
    "            \"bytes_in\", \"bytes_out\"}\n\n"
    "All metadata is copied (general.file_type set); OUT is written atomically. rel_rmse is the relative RMS error\n"
    "||dequant(new) - old|| / ||old|| of each tensor. An input tensor that is already quantized is not requantized\n"
    "(exit 2) unless it keeps its type.\n";

void vkl_cli_print_quant_report(const vkl_quant_report *r, bool json, const char *out_path) {
    if (json) {
        cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "tensors");
        for (uint32_t i = 0; i < r->n; i++) {
            const vkl_quant_tensor_info *t = &r->t[i];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", t->name);
            cJSON_AddStringToObject(e, "from", vkl_type_traits_get(t->from_type)->name);
            cJSON_AddStringToObject(e, "type", vkl_type_traits_get(t->to_type)->name);
            cJSON_AddNumberToObject(e, "rel_rmse", t->rel_rmse);
            cJSON_AddNumberToObject(e, "bytes", (double)t->bytes);
            if (t->adapted) cJSON_AddBoolToObject(e, "merged", true);
            cJSON_AddItemToArray(arr, e);
        }
        if (r->file_type >= 0) cJSON_AddNumberToObject(o, "file_type", r->file_type);
        cJSON_AddNumberToObject(o, "bytes_in", (double)r->bytes_in);
        cJSON_AddNumberToObject(o, "bytes_out", (double)r->bytes_out);
        cJSON_AddStringToObject(o, "output", out_path);
        vkl_cli_print_json(o);
        return;
    }
    for (uint32_t i = 0; i < r->n; i++) {
        const vkl_quant_tensor_info *t = &r->t[i];
        printf("%-36s %-5s -> %-5s rel_rmse %.3e%s\n", t->name, vkl_type_traits_get(t->from_type)->name,
               vkl_type_traits_get(t->to_type)->name, t->rel_rmse, t->adapted ? "  (merged)" : "");
    }
    printf("size %.2f MiB -> %.2f MiB, written to %s\n", r->bytes_in / 1048576.0, r->bytes_out / 1048576.0,
           out_path);
}

int vkl_cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int n_pos = 0;
    bool json = false;
    const vkl_cli_opt opts[] = {{"--json", VKL_OPT_FLAG, &json, 0, 0}};
    int prc = vkl_cli_parse_pos("quantize", argc, argv, opts, VKL_ARRAY_LEN(opts), HELP, pos, 3, &n_pos);
    if (prc >= 0) return prc;
    if (n_pos < 3) return vkl_cli_usage("quantize", "IN.gguf, OUT.gguf and TYPE are required");
    int mode = vkl_quant_mode_from_name(pos[2]);
    if (mode <= VKL_QUANT_KEEP)
        return vkl_cli_usage("quantize", "unknown TYPE '%s' (expected q4_k_m q5_k_m q6_k q8_0 q4_0 f16 bf16 f32)",
                             pos[2]);
    vkl_err err = {0};
    vkl_quant_report rep;
    if (vkl_quantize_file(pos[0], pos[1], (vkl_quant_mode)mode, &rep, &err))
        return vkl_cli_fail("quantize", err.status, "%s", err.msg);
    vkl_cli_print_quant_report(&rep, json, pos[1]);
    vkl_quant_report_free(&rep);
    return 0;
}
