/* `vklora generate`: text continuation with a KV cache; greedy at temperature 0, else top-k / top-p sampling. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "forward.h"
#include "vklora/adapter.h"
#include "vk/vk.h"

static const char *HELP =
    "usage: vklora generate --model M.gguf --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K]\n"
    "                       [--top-p P] [--seed S] [--adapter A [--scale S]] [--device D] [--json]\n\n"
    "Continues the prompt ([BOS] + encode(prompt), special tokens in the prompt are parsed) and streams the text.\n"
    "Stops after N new tokens, at the end-of-sequence/turn token, or at the context limit.\n\n"
    "  --max-tokens N    new tokens (default 128)\n"
    "  --temperature T   0 = greedy and deterministic (default 0.8)\n"
    "  --top-k K         keep the K most likely tokens (default 40; 0 = all)\n"
    "  --top-p P         then the smallest set with probability >= P (default 0.95)\n"
    "  --seed S          sampling seed (default 3407)\n"
    "  --adapter A       apply a LoRA adapter: adapter.gguf (llama.cpp) or a PEFT directory\n"
    "  --scale S         multiply the adapter's scale by S (default 1)\n"
    "  --json            print one object {\"text\", \"tokens\" (prompt included), \"n_prompt\", \"tokens_per_second\"}\n";

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

typedef struct {
    float logit;
    int32_t id;
} cand;

static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id - y->id;
}

static int32_t sample(const float *logits, uint32_t V, float temp, uint32_t top_k, float top_p, uint64_t *rng,
                      cand *tmp) {
    if (temp <= 0) {
        uint32_t best = 0;
        for (uint32_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return (int32_t)best;
    }
    for (uint32_t i = 0; i < V; i++) tmp[i] = (cand){logits[i], (int32_t)i};
    qsort(tmp, V, sizeof(cand), cand_cmp);
    uint32_t n = top_k && top_k < V ? top_k : V;
    double maxl = tmp[0].logit, sum = 0;
    double *p = vkl_malloc(n * sizeof(double));
    for (uint32_t i = 0; i < n; i++) sum += p[i] = exp((tmp[i].logit - maxl) / temp);
    double acc = 0;
    uint32_t keep = n;
    for (uint32_t i = 0; i < n; i++) {
        acc += p[i] / sum;
        if (acc >= top_p) {
            keep = i + 1;
            break;
        }
    }
    double total = 0;
    for (uint32_t i = 0; i < keep; i++) total += p[i];
    double r = (splitmix(rng) >> 11) * (1.0 / 9007199254740992.0) * total;
    int32_t id = tmp[keep - 1].id;
    for (uint32_t i = 0; i < keep; i++) {
        r -= p[i];
        if (r < 0) {
            id = tmp[i].id;
            break;
        }
    }
    free(p);
    return id;
}

int vkl_cmd_generate(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *device = NULL, *adapter = NULL;
    float scale = 1.0f;
    uint32_t max_tokens = 128, top_k = 40, seed = 3407;
    float temp = 0.8f, top_p = 0.95f;
    bool json = false;
    const vkl_cli_opt opts[] = {
        {"--model", VKL_OPT_STR, &model, 0, 0},           {"--prompt", VKL_OPT_STR, &prompt, 0, 0},
        {"--device", VKL_OPT_STR, &device, 0, 0},         {"--adapter", VKL_OPT_STR, &adapter, 0, 0},
        {"--scale", VKL_OPT_F32, &scale, -100, 100},      {"--max-tokens", VKL_OPT_U32, &max_tokens, 0, 1u << 20},
        {"--top-k", VKL_OPT_U32, &top_k, 0, 1u << 24},    {"--seed", VKL_OPT_U32, &seed, 0, UINT32_MAX},
        {"--temperature", VKL_OPT_F32, &temp, 0, 100},    {"--top-p", VKL_OPT_F32, &top_p, 0, 1},
        {"--json", VKL_OPT_FLAG, &json, 0, 0},
    };
    int prc = vkl_cli_parse("generate", argc, argv, opts, VKL_ARRAY_LEN(opts), HELP);
    if (prc >= 0) return prc;
    if (!model || !prompt) return vkl_cli_usage("generate", "--model and --prompt are required");
    vkl_err err = {0};
    vkl_session s;
    if (vkl_session_open(model, device, &s, &err)) return vkl_cli_fail("generate", err.status, "%s", err.msg);
    int32_t *tokens = NULL;
    size_t n_prompt = 0;
    vkl_fwd *f = NULL;
    vkl_lora *lora = NULL;
    float *logits = NULL;
    cand *tmp = NULL;
    char *text = NULL;
    int rc = 0;
    if (vkl_tokenize(s.tok, prompt, strlen(prompt), true, true, &tokens, &n_prompt, &err)) goto fail;
    if (n_prompt == 0) {
        vkl_err_set(&err, VKL_ERR_INPUT, "--prompt: the prompt has no tokens (and the vocabulary adds no BOS)");
        goto fail;
    }
    const uint32_t V = s.model->hp.n_vocab;
    uint32_t n_ctx = (uint32_t)VKL_MIN((uint64_t)n_prompt + max_tokens, (uint64_t)s.model->hp.n_ctx_train);
    if (n_prompt > n_ctx) {
        vkl_err_set(&err, VKL_ERR_INPUT, "--prompt: %zu tokens exceed the model's context of %u", n_prompt,
                    s.model->hp.n_ctx_train);
        goto fail;
    }
    vkl_fwd_dims dims = {.max_seq = 1, .max_T = (uint32_t)n_prompt, .n_ctx = n_ctx};
    if (vkl_fwd_create(s.vk, s.model, &dims, &f, &err)) goto fail;
    if (adapter && (vkl_adapter_load(adapter, s.model, &lora, &err) || vkl_fwd_set_adapter(f, lora, scale, &err)))
        goto fail;
    tokens = vkl_realloc(tokens, (size_t)n_ctx * 4 + 4);
    logits = vkl_malloc((size_t)V * 4);
    tmp = vkl_malloc((size_t)V * sizeof(cand));
    uint64_t rng = seed;
    size_t n = n_prompt, printed = 0;
    int32_t eos = vkl_tokenizer_eos(s.tok), eot = vkl_tokenizer_eot(s.tok);
    double t0 = vkl_now_s();
    if (vkl_fwd_run(f, tokens, 1, (uint32_t)n_prompt, 0, NULL, NULL, logits, &err)) goto fail;
    if (!json) {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    /* The prompt's text as the tokenizer renders it, so streamed output starts right after it. */
    size_t len;
    if (vkl_detokenize(s.tok, tokens, n_prompt, false, &text, &printed, &err)) goto fail;
    for (uint32_t k = 0; k < max_tokens && n < n_ctx; k++) {
        int32_t id = sample(logits, V, temp, top_k, top_p, &rng, tmp);
        tokens[n++] = id;
        if (id == eos || id == eot) break;
        if (!json) {
            free(text);
            text = NULL;
            if (vkl_detokenize(s.tok, tokens, n, false, &text, &len, &err)) goto fail;
            /* Print only whole UTF-8 characters: hold back a trailing incomplete sequence. */
            size_t end = len;
            size_t back = 0;
            while (back < 4 && end > printed && ((unsigned char)text[end - 1 - back] & 0xC0) == 0x80) back++;
            if (end > back && ((unsigned char)text[end - 1 - back] & 0x80)) {
                unsigned char lead = (unsigned char)text[end - 1 - back];
                size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
                if (back + 1 < need) end -= back + 1;
            }
            if (end > printed) {
                fwrite(text + printed, 1, end - printed, stdout);
                fflush(stdout);
                printed = end;
            }
        }
        if (n >= n_ctx) break;
        if (vkl_fwd_run(f, &tokens[n - 1], 1, 1, (uint32_t)(n - 1), NULL, NULL, logits, &err)) goto fail;
    }
    double dt = vkl_now_s() - t0;
    double tps = dt > 0 ? (double)(n - n_prompt) / dt : 0;
    free(text);
    text = NULL;
    if (vkl_detokenize(s.tok, tokens, n, false, &text, &len, &err)) goto fail;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", text);
        cJSON *arr = cJSON_AddArrayToObject(o, "tokens");
        for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(tokens[i]));
        cJSON_AddNumberToObject(o, "n_prompt", (double)n_prompt);
        cJSON_AddNumberToObject(o, "tokens_per_second", tps);
        vkl_cli_print_json(o);
    } else {
        if (len > printed) fwrite(text + printed, 1, len - printed, stdout);
        printf("\n");
        fflush(stdout);
        fprintf(stderr, "[%zu new tokens, %.1f tokens/s on %s]\n", n - n_prompt, tps, s.vk->info.name);
    }
    goto done;
fail:
    rc = vkl_cli_fail("generate", err.status, "%s", err.msg);
done:
    vkl_fwd_destroy(f);
    vkl_lora_free(lora);
    free(text);
    free(tmp);
    free(logits);
    free(tokens);
    vkl_session_close(&s);
    return rc;
}
