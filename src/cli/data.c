/* `vklora data`: loads a training config's dataset exactly as `vklora train` does (config resolution, the model's
 * tokenizer and chat template) and shows rendered examples with their trained tokens, plus counts. Reads GGUF
 * metadata only: no weights, no Vulkan device. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "platform.h"
#include "unicode.h"
#include "vklora/config.h"
#include "vklora/data.h"
#include "vklora/gguf.h"
#include "vklora/hf.h"
#include "vklora/tokenizer.h"

#define CMD "data"

static const char *HELP =
    "usage: vklora data CONFIG.json [--set key=value ...] [--show N] [--json]\n\n"
    "Loads the dataset of a training config exactly as 'vklora train' would (same config resolution and --set\n"
    "overrides; the tokenizer and tokenizer.chat_template of `model`, which may be a vocabulary-only GGUF: no\n"
    "weights are read and no Vulkan device is used), then prints the first N training examples as the template\n"
    "rendered them, token by token, with the tokens that carry the loss marked, and counts.\n\n"
    "  --set key=value   override a config key (repeatable), e.g. --set dataset.template=qwen-3\n"
    "  --show N          examples to print (default 3; 0 = counts only)\n"
    "  --json            stdout is one JSON object:\n"
    "                    {\"examples\": [{\"text\": rendered text, \"tokens\": [ids], \"trained\": [0|1 per token]}],\n"
    "                     \"counts\": {\"examples\", \"tokens\", \"trained_tokens\", \"truncated\", \"dropped\"}}\n"
    "  -h, --help        this text\n\n"
    "Trained tokens are those whose label is not masked, excluding the first token of an example (nothing predicts\n"
    "it): their number is the loss terms of one epoch. On a terminal they are shown in green, otherwise between\n"
    "\u27e6 and \u27e7. \"text\" is the template's rendering (a BOS the tokenizer adds is in \"tokens\" only; text\n"
    "records and raw-text windows show their detokenized ids). Counts describe the training set after the\n"
    "evaluation split: examples and tokens kept; truncated = examples cut to max_seq_length; dropped = records\n"
    "that gave no example (no assistant turn, \"label\": false, or nothing trainable left).\n\n"
    "exit codes: 0 ok, 1 I/O failure, 2 bad usage, config, model vocabulary or dataset (the message names the\n"
    "file, row and field)\n";

/* Text made valid UTF-8 for JSON (a raw-text window can cut a character): bad bytes become U+FFFD. */
static char *valid_utf8(const char *s) {
    size_t n = strlen(s), o = 0;
    char *out = vkl_malloc(3 * n + 1);
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t c = vkl_utf8_decode((const uint8_t *)s + i, n - i, &adv);
        char enc[4];
        bool ok = adv && !(c >= 0xD800 && c <= 0xDFFF) && vkl_utf8_encode(c, enc) == adv && !memcmp(enc, s + i, adv);
        if (ok) {
            memcpy(out + o, s + i, adv);
            o += adv;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
        i += adv ? adv : 1;
    }
    out[o] = 0;
    return out;
}

static bool trained(const vkl_example *e, uint32_t i) { return i > 0 && e->labels[i] >= 0; }

static uint64_t dropped(const vkl_data_stats *s) {
    return s->n_skipped_no_assistant + s->n_skipped_rejected + s->n_dropped_untrainable;
}

/* The example's tokens, detokenized in stretches of equal training state, the trained ones marked. */
static void print_example(const vkl_tokenizer *tok, const vkl_example *e, bool tty) {
    for (uint32_t i = 0; i < e->n;) {
        uint32_t j = i;
        bool tr = trained(e, i);
        while (j < e->n && trained(e, j) == tr) j++;
        char *s = NULL;
        size_t len;
        vkl_err err = {0};
        if (vkl_detokenize(tok, e->tokens + i, j - i, true, &s, &len, &err)) s = vkl_strdup("<?>");
        if (tr) fputs(tty ? "\x1b[32;4m" : "\u27e6", stdout);
        fwrite(s, 1, strlen(s), stdout);
        if (tr) fputs(tty ? "\x1b[0m" : "\u27e7", stdout);
        free(s);
        i = j;
    }
    fputc('\n', stdout);
}

int vkl_cmd_data(int argc, char **argv) {
    const char *cfg = NULL;
    uint32_t show = 3;
    bool json = false;
    const char **sets = vkl_calloc((size_t)argc, sizeof(char *));
    int n_sets = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (vkl_cli_is_help(a)) {
            fputs(HELP, stdout);
            free(sets);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--show")) {
            if (i + 1 >= argc) rc = vkl_cli_usage(CMD, "%s needs a value", a);
            else if (!vkl_cli_parse_u32(CMD, a, argv[++i], 0, 1000000, &show)) rc = VKL_ERR_INPUT;
        } else if (!strcmp(a, "--set")) {
            if (i + 1 >= argc) rc = vkl_cli_usage(CMD, "%s needs a value", a);
            else sets[n_sets++] = argv[++i];
        } else if (a[0] == '-') {
            rc = vkl_cli_usage(CMD, "unknown option '%s'", a);
        } else if (!cfg) {
            cfg = a;
        } else {
            rc = vkl_cli_usage(CMD, "one config file expected, got '%s' and '%s'", cfg, a);
        }
        if (rc) {
            free(sets);
            return rc;
        }
    }
    if (!cfg) {
        free(sets);
        return vkl_cli_usage(CMD, "a config file is required");
    }
    vkl_config c;
    vkl_err err = {0};
    vkl_status st = vkl_config_load(cfg, sets, n_sets, &c, &err);
    free(sets);
    if (st) return vkl_cli_fail(CMD, st, "%s", err.msg);
    vkl_gguf *g = NULL;
    vkl_hf_model *hf = NULL; /* a Hugging Face folder: its tokenizer.json */
    vkl_tokenizer *tok = NULL;
    vkl_dataset *train = NULL, *eval = NULL;
    if ((st = vkl_config_check_for_training(&c, &err)) || (st = vkl_hf_open_any(c.model_path, &g, &hf, &err)) ||
        (st = hf ? vkl_tokenizer_load_hf(c.model_path, &tok, &err) : vkl_tokenizer_load(g, &tok, &err))) {
        rc = vkl_cli_fail(CMD, st, "%s", err.msg);
        goto done;
    }
    vkl_data_opts o;
    vkl_data_opts_from_config(&c, hf ? vkl_tokenizer_chat_template(tok) : vkl_gguf_get_str(g, "tokenizer.chat_template"),
                              &o);
    /* texts of the first `show` training examples: with a random eval split they are among the first few of
     * the file (past those, "text" falls back to the detokenized ids) */
    o.keep_text = !c.eval_path && c.eval_ratio > 0 ? show * 4 + 64 : show;
    if ((st = vkl_data_load_opts(&c, &o, tok, &train, &eval, &err))) {
        rc = vkl_cli_fail(CMD, st, "%s", err.msg);
        goto done;
    }
    uint32_t n_show = VKL_MIN(show, train->n);
    const vkl_data_stats *s = &train->stats;
    if (json) {
        cJSON *doc = cJSON_CreateObject(), *exs = cJSON_AddArrayToObject(doc, "examples");
        for (uint32_t k = 0; k < n_show; k++) {
            const vkl_example *e = &train->ex[k];
            char *raw = NULL;
            size_t len;
            if (!train->text || !train->text[k]) {
                if (vkl_detokenize(tok, e->tokens, e->n, true, &raw, &len, &err)) raw = vkl_strdup("");
            }
            char *text = valid_utf8(train->text && train->text[k] ? train->text[k] : raw);
            free(raw);
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "text", text);
            free(text);
            cJSON *ids = cJSON_AddArrayToObject(x, "tokens"), *tr = cJSON_AddArrayToObject(x, "trained");
            for (uint32_t i = 0; i < e->n; i++) {
                cJSON_AddItemToArray(ids, cJSON_CreateNumber(e->tokens[i]));
                cJSON_AddItemToArray(tr, cJSON_CreateNumber(trained(e, i)));
            }
            cJSON_AddItemToArray(exs, x);
        }
        cJSON *cnt = cJSON_AddObjectToObject(doc, "counts");
        cJSON_AddNumberToObject(cnt, "examples", train->n);
        cJSON_AddNumberToObject(cnt, "tokens", (double)s->n_tokens);
        cJSON_AddNumberToObject(cnt, "trained_tokens", (double)s->n_trainable);
        cJSON_AddNumberToObject(cnt, "truncated", (double)s->n_truncated);
        cJSON_AddNumberToObject(cnt, "dropped", (double)dropped(s));
        vkl_cli_print_json(doc);
    } else {
        bool tty = vkl_os_isatty(stdout);
        printf("dataset %s: %s records, template %s%s; tokenizer of %s\n", c.dataset_path,
               vkl_dataset_format_names[train->format], vkl_chat_template_names[train->tmpl],
               c.train_on_responses_only ? ", train_on_responses_only" : "", c.model_path);
        for (uint32_t k = 0; k < n_show; k++) {
            const vkl_example *e = &train->ex[k];
            uint32_t nt = 0;
            for (uint32_t i = 0; i < e->n; i++) nt += trained(e, i);
            printf("\n--- example %u (%s %u): %u tokens, %u trained%s\n", k + 1,
                   train->format == VKL_DATASET_TEXT && !strstr(c.dataset_path, ".json") ? "window" : "row", e->row,
                   e->n, nt, e->n == (uint32_t)c.max_seq_length ? " (may be truncated at max_seq_length)" : "");
            print_example(tok, e, tty);
        }
        printf("\n%u examples, %llu tokens, %llu trained tokens; %llu truncated, %llu dropped (%llu without an "
               "assistant turn, %llu with \"label\": false, %llu with nothing trainable)\n",
               train->n, (unsigned long long)s->n_tokens, (unsigned long long)s->n_trainable,
               (unsigned long long)s->n_truncated, (unsigned long long)dropped(s),
               (unsigned long long)s->n_skipped_no_assistant, (unsigned long long)s->n_skipped_rejected,
               (unsigned long long)s->n_dropped_untrainable);
        if (eval)
            printf("evaluation set: %u examples, %llu tokens, %llu trained tokens\n", eval->n,
                   (unsigned long long)eval->stats.n_tokens, (unsigned long long)eval->stats.n_trainable);
    }
done:
    vkl_dataset_free(train);
    vkl_dataset_free(eval);
    vkl_tokenizer_free(tok);
    vkl_hf_close_any(g, hf);
    vkl_config_free(&c);
    return rc;
}
