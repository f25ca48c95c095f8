/* vklora's entry point: dispatches to one subcommand per file in src/cli/ and owns the exit code. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "platform.h"
#include "vk/vk.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"devices", vkl_cmd_devices, "list Vulkan devices with their limits and features"},
    {"info", vkl_cmd_info, "describe a GGUF file or model folder: architecture, hyper-parameters, tensors"},
    {"config", vkl_cmd_config, "resolve a training config (defaults, aliases, --set overrides) and print it"},
    {"tokenize", vkl_cmd_tokenize, "tokenize text with the vocabulary of a GGUF file: ids and pieces"},
    {"data", vkl_cmd_data, "a config's dataset as training sees it: rendered examples, trained tokens, counts"},
    {"eval", vkl_cmd_eval, "mean negative log-likelihood and perplexity of a text file"},
    {"generate", vkl_cmd_generate, "continue a prompt (greedy or sampled), streaming the text"},
    {"train", vkl_cmd_train, "fine-tune a LoRA adapter from a JSON config"},
    {"quantize", vkl_cmd_quantize, "convert a GGUF to a llama-quantize mix (q4_k_m, q8_0, f16, ...)"},
    {"merge", vkl_cmd_merge, "fold a LoRA adapter into its base model (optionally re-quantized)"},
    {"convert", vkl_cmd_convert, "write a Hugging Face model folder as a GGUF for llama.cpp"},
    {"sweep", vkl_cmd_sweep, "train every combination of a knob grid, then compare them in a table and a chart"},
    {"plot", vkl_cmd_plot, "draw runs' loss (or another metric) against step as SVG (or PNG)"},
    {"explain", vkl_cmd_explain, "what a config knob does, its default, range, cost and the LoRA guide's advice"},
    {"bench", vkl_cmd_bench, "forward tokens/s and peak device memory, as one JSON line"},
};

static void usage(FILE *f) {
    fprintf(f,
            "vklora %s - LoRA/QLoRA fine-tuning of llama-family models on any Vulkan device\n\n"
            "usage: vklora <command> [options]   (vklora <command> --help for details)\n\ncommands:\n",
            VKL_VERSION_STRING);
    for (size_t i = 0; i < VKL_ARRAY_LEN(commands); i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nexit codes: 0 success, 1 runtime failure, 2 usage, config or input error\n"
            "environment: VKLORA_VALIDATION=1 turns on the Vulkan validation layer;\n"
            "             VKLORA_DEVICE=<index|name> picks the device;\n"
            "             VKLORA_CPU_TUNE=off keeps vklora from setting LP_NATIVE_VECTOR_WIDTH=512 for lavapipe\n");
}

int vkl_cli_fail(const char *cmd, vkl_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vklora %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status == VKL_OK ? 1 : (int)status;
}

int vkl_cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vklora %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see 'vklora %s --help')\n", cmd);
    va_end(ap);
    return VKL_ERR_INPUT;
}

void vkl_cli_print_json(cJSON *doc) {
    char *s = cJSON_Print(doc);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    cJSON_Delete(doc);
}

bool vkl_cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

int main(int argc, char **argv) {
    vkl_os_init_args(&argc, &argv);
    if (argc < 2) {
        usage(stderr);
        return VKL_ERR_INPUT;
    }
    if (vkl_cli_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("vklora %s\n", VKL_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < VKL_ARRAY_LEN(commands); i++)
        if (!strcmp(argv[1], commands[i].name)) {
            /* Device tuning (src/vk/vk.h): before the first Vulkan call of a command that opens a device. When
             * the driver came up at a width it must not run at, this program runs again without it. */
            static const char *const device_cmds[] = {"devices", "eval", "generate", "train", "sweep", "bench"};
            for (size_t j = 0; j < VKL_ARRAY_LEN(device_cmds); j++)
                if (!strcmp(argv[1], device_cmds[j]) && !vkl_vk_cpu_tune_main(argv)) {
                    fprintf(stderr, "vklora: could not run again with lavapipe's default vector width; set "
                                    "VKLORA_CPU_TUNE=off\n");
                    return 1;
                }
            int rc = commands[i].run(argc - 1, argv + 1);
            /* With VKLORA_VALIDATION=1 a run the validation layer complained about does not pass as a success. */
            uint32_t msgs = vkl_vk_validation_total();
            if (msgs) {
                fprintf(stderr, "vklora: the Vulkan validation layer reported %u message(s) (see above)\n", msgs);
                if (rc == 0) rc = 1;
            }
            return rc;
        }
    fprintf(stderr, "vklora: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return VKL_ERR_INPUT;
}
