/* `vklora explain [KNOB]`: a knob's meaning, default, accepted values, cost and the LoRA guide's advice, from the
 * same table that loads configs and prints `vklora config --help` (src/config.c). */
#include <string.h>

#include "cli/cli.h"
#include "vklora/config.h"

static const char *HELP =
    "usage: vklora explain [KNOB] [--json]\n\n"
    "Explains one config knob: what it does, its default and accepted values, what a larger value costs and what\n"
    "the LoRA parameter guide advises. KNOB is a canonical path (lora.r), a flat key (r) or an alias (rank, lr).\n"
    "Without KNOB, lists every knob in one line each ([guide] marks those the guide has advice on).\n\n"
    "  --json   one JSON object {knob, names, default, accepted, meaning, cost, guide} (an array without KNOB)\n\n"
    "Examples: vklora explain learning_rate; vklora explain lora_alpha; vklora explain --json r\n";

int vkl_cmd_explain(int argc, char **argv) {
    const char *name = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (vkl_cli_is_help(a)) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            return vkl_cli_usage("explain", "unknown option '%s'", a);
        } else if (name) {
            return vkl_cli_usage("explain", "one knob at a time ('%s' and '%s')", name, a);
        } else {
            name = a;
        }
    }
    if (!name && !json) printf("knobs (vklora explain KNOB for one; vklora config --help for the full reference):\n");
    vkl_err err = {0};
    if (vkl_config_explain(stdout, name, json, &err)) return vkl_cli_fail("explain", err.status, "%s", err.msg);
    return 0;
}
