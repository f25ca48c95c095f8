/* `vklora train`: fine-tune a LoRA adapter from a JSON config; Ctrl-C saves a checkpoint and stops cleanly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dist.h"
#include "platform.h"
#include "vklora/config.h"
#include "vklora/trainer.h"

static const char *HELP =
    "usage: vklora train CONFIG.json [--set key=value ...] [--resume DIR] [--json]\n\n"
    "Fine-tunes a LoRA adapter on the GGUF base named in the config (kept in its GGUF types on the device, or quantized\n"
    "on load with model.quantization) and\n"
    "writes into output_dir: adapter.gguf (llama.cpp --lora), adapter_model.safetensors + adapter_config.json (PEFT),\n"
    "checkpoint-STEP/ every save_steps, metrics.jsonl (one line per step) and config.json (the resolved config).\n"
    "See 'vklora config --help' or configs/README.md for every key.\n\n"
    "  --set key=value   override a config key (repeatable), e.g. --set lora.r=8 --set max_steps=20\n"
    "  --resume DIR      continue from a checkpoint directory (same config): the loss curve and the final adapter\n"
    "                    equal an uninterrupted run on the same device\n"
    "  --stop-after N    save a checkpoint and stop once N steps are done (resume later with --resume)\n"
    "  --json            progress on stderr; one JSON summary on stdout at the end\n\n"
    "Ctrl-C saves a checkpoint at the current step and exits with code 130; a second Ctrl-C stops at once.\n";

static volatile sig_atomic_t stop_flag;

int vkl_cmd_train(int argc, char **argv) {
    const char *cfg = NULL, *resume = NULL;
    uint32_t stop_after = 0;
    const char **sets = vkl_calloc((size_t)argc, sizeof(char *));
    int n_sets = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (vkl_cli_is_help(a)) {
            fputs(HELP, stdout);
            free(sets);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--stop-after")) {
            if (i + 1 >= argc || !vkl_cli_parse_u32("train", a, argv[i + 1], 1, UINT32_MAX, &stop_after)) {
                free(sets);
                return i + 1 >= argc ? vkl_cli_usage("train", "%s needs a value", a) : 2;
            }
            i++;
        } else if (!strcmp(a, "--set") || !strcmp(a, "--resume")) {
            if (i + 1 >= argc) {
                free(sets);
                return vkl_cli_usage("train", "%s needs a value", a);
            }
            if (!strcmp(a, "--set")) sets[n_sets++] = argv[++i];
            else resume = argv[++i];
        } else if (a[0] == '-') {
            free(sets);
            return vkl_cli_usage("train", "unknown option '%s'", a);
        } else if (!cfg) {
            cfg = a;
        } else {
            free(sets);
            return vkl_cli_usage("train", "one config file expected, got '%s' and '%s'", cfg, a);
        }
    }
    if (!cfg) {
        free(sets);
        return vkl_cli_usage("train", "a config file is required");
    }
    vkl_config c;
    vkl_err err = {0};
    if (vkl_config_load(cfg, sets, n_sets, &c, &err)) {
        free(sets);
        return vkl_cli_fail("train", err.status, "%s", err.msg);
    }
    free(sets);
    vkl_os_on_interrupt(&stop_flag);
    vkl_trainer_opts o = {.resume_dir = resume, .json_log = json, .stop = &stop_flag, .stop_after = stop_after};
    vkl_trainer_result r;
    vkl_status st = vkl_trainer_run(&c, &o, &r, &err);
    vkl_os_on_interrupt(NULL);
    int rc = 0;
    if (st) {
        rc = vkl_cli_fail("train", st, "%s", err.msg);
    } else {
        if (json && vkl_dist_rank() == 0) { /* under mpirun: one summary, rank 0's */
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "steps", (double)r.steps_done);
            cJSON_AddNumberToObject(j, "total_steps", (double)r.total_steps);
            cJSON_AddNumberToObject(j, "first_loss", r.first_loss);
            cJSON_AddNumberToObject(j, "last_loss", r.last_loss);
            if (isnan(r.eval_loss_before)) cJSON_AddNullToObject(j, "eval_loss_before");
            else cJSON_AddNumberToObject(j, "eval_loss_before", r.eval_loss_before);
            if (isnan(r.eval_loss_after)) cJSON_AddNullToObject(j, "eval_loss_after");
            else cJSON_AddNumberToObject(j, "eval_loss_after", r.eval_loss_after);
            cJSON_AddNumberToObject(j, "tokens_per_second", r.tokens_per_second);
            cJSON_AddNumberToObject(j, "peak_device_bytes", (double)r.peak_device_bytes);
            cJSON_AddBoolToObject(j, "interrupted", r.interrupted);
            cJSON_AddStringToObject(j, "output_dir", c.output_dir);
            if (r.adapter_gguf[0]) cJSON_AddStringToObject(j, "adapter_gguf", r.adapter_gguf);
            else cJSON_AddNullToObject(j, "adapter_gguf");
            vkl_cli_print_json(j);
        }
        if (r.interrupted) rc = 130;
    }
    vkl_config_free(&c);
    return rc;
}
