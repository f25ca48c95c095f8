/* `vklora config`: load a training config (defaults, aliases, --set overrides), validate it and print the
 * resolved result as JSON, or the first error with its JSON path; --help is the full key reference. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vklora/config.h"

static const char *HELP =
    "usage: vklora config [CONFIG.json] [--set key=value ...] [--print] [--json]\n\n"
    "Loads a training config: Unsloth's notebook defaults, then CONFIG.json, then each --set in order.\n"
    "Keys use the Unsloth/TRL names. They may be written flat ({\"r\": 16, \"learning_rate\": 2e-4}) or grouped\n"
    "in sections \"model\", \"dataset\", \"lora\", \"training\" (or \"train\"); \"model\" and \"dataset\" may\n"
    "also be just a path string. Each setting may be given once (an alias counts as the same key).\n\n"
    "  --set key=value   override a key; key is flat (r) or dotted (lora.r); value is JSON when it parses\n"
    "                    (--set lora.r=8, --set target_modules='[\"q\",\"v\"]'), else a string (--set model=x.gguf)\n"
    "  --print           print the resolved config as JSON (canonical grouped names) on stdout\n"
    "  --json            machine-readable output: {\"ok\":true} (or the config with --print)\n\n"
    "Without --print, prints \"config OK: <path>\". Errors go to stderr (exit 2) and name the file, the JSON\n"
    "path, what was expected and what was found. Without CONFIG.json the defaults are used.\n\n"
    "keys (canonical path  [names also accepted]; default; accepted values; meaning):\n";

int vkl_cmd_config(int argc, char **argv) {
    const char *path = NULL;
    bool print = false, json = false;
    const char **sets = vkl_calloc((size_t)(argc > 0 ? argc : 1), sizeof(char *));
    int n_sets = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (vkl_cli_is_help(a)) {
            fputs(HELP, stdout);
            vkl_config_print_keys(stdout);
            goto out;
        } else if (!strcmp(a, "--print")) {
            print = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--set")) {
            if (i + 1 >= argc) {
                rc = vkl_cli_usage("config", "--set needs key=value");
                goto out;
            }
            sets[n_sets++] = argv[++i];
        } else if (!strncmp(a, "--set=", 6)) {
            sets[n_sets++] = a + 6;
        } else if (a[0] == '-' && a[1]) {
            rc = vkl_cli_usage("config", "unknown option '%s'", a);
            goto out;
        } else if (path) {
            rc = vkl_cli_usage("config", "one config file at a time ('%s' and '%s')", path, a);
            goto out;
        } else {
            path = a;
        }
    }

    vkl_config cfg;
    vkl_err err = {0};
    if (vkl_config_load(path, sets, n_sets, &cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        if (json) {
            cJSON *doc = cJSON_CreateObject();
            cJSON_AddFalseToObject(doc, "ok");
            cJSON_AddStringToObject(doc, "error", err.msg);
            vkl_cli_print_json(doc);
        }
        rc = err.status;
        goto out;
    }
    if (print) {
        vkl_cli_print_json(vkl_config_to_json(&cfg));
    } else if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddTrueToObject(doc, "ok");
        vkl_cli_print_json(doc);
    } else {
        printf("config OK: %s\n", path ? path : "<defaults>");
    }
    vkl_config_free(&cfg);
out:
    free(sets);
    return rc;
}
