/* `vklora eval`: mean negative log-likelihood and perplexity of a text under a model, in windows of --ctx tokens. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "forward.h"
#include "vklora/adapter.h"
#include "vk/vk.h"

static const char *HELP =
    "usage: vklora eval --model M.gguf --text FILE [--ctx N] [--max-windows K] [--batch B] [--device D] [--json]\n\n"
    "Scores a text file: tokens = [BOS] + encode(text) (BOS only when the vocabulary adds one); the tokens are cut\n"
    "into consecutive, non-overlapping windows of N tokens (the last window may be shorter); in each window the\n"
    "positions 1..N-1 are scored given the window's earlier tokens (position 0 only conditions). Prints the mean\n"
    "negative log-likelihood in nats per scored token, the perplexity exp(mean NLL), the number of tokens scored\n"
    "and the speed.\n\n"
    "  --ctx N           window length (default: the model's training context, at most 2048)\n"
    "  --max-windows K   score only the first K windows\n"
    "  --batch B         windows per forward pass (default 1)\n"
    "  --adapter A       apply a LoRA adapter: adapter.gguf (llama.cpp) or a PEFT directory\n"
    "  --scale S         multiply the adapter's scale by S (default 1; llama.cpp's --lora-scaled)\n"
    "  --device D        Vulkan device index or name substring (default: VKLORA_DEVICE, else auto)\n"
    "  --json            print {\"mean_nll\", \"perplexity\", \"tokens_scored\", \"windows\", \"tokens_per_second\"}\n";

int vkl_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *device = NULL, *adapter = NULL;
    uint32_t ctx = 0, max_windows = UINT32_MAX, batch = 1;
    float scale = 1.0f;
    bool json = false;
    const vkl_cli_opt opts[] = {
        {"--model", VKL_OPT_STR, &model, 0, 0},         {"--text", VKL_OPT_STR, &text, 0, 0},
        {"--device", VKL_OPT_STR, &device, 0, 0},       {"--adapter", VKL_OPT_STR, &adapter, 0, 0},
        {"--scale", VKL_OPT_F32, &scale, -100, 100},    {"--ctx", VKL_OPT_U32, &ctx, 2, 1u << 20},
        {"--max-windows", VKL_OPT_U32, &max_windows, 1, UINT32_MAX},
        {"--batch", VKL_OPT_U32, &batch, 1, 4096},      {"--json", VKL_OPT_FLAG, &json, 0, 0},
    };
    int prc = vkl_cli_parse("eval", argc, argv, opts, VKL_ARRAY_LEN(opts), HELP);
    if (prc >= 0) return prc;
    if (!model || !text) return vkl_cli_usage("eval", "--model and --text are required");
    vkl_err err = {0};
    char *data;
    size_t len;
    if (vkl_read_file(text, &data, &len, &err)) return vkl_cli_fail("eval", err.status, "%s", err.msg);
    vkl_session s;
    if (vkl_session_open(model, device, &s, &err)) {
        free(data);
        return vkl_cli_fail("eval", err.status, "%s", err.msg);
    }
    int32_t *tokens = NULL;
    size_t n_tok = 0;
    vkl_fwd *f = NULL;
    vkl_lora *lora = NULL;
    float *nll = NULL;
    int32_t *targets = NULL;
    int rc = 0;
    if (vkl_tokenize(s.tok, data, len, true, false, &tokens, &n_tok, &err)) goto fail;
    if (n_tok < 2) {
        vkl_err_set(&err, VKL_ERR_INPUT, "%s: the text has %zu token(s); at least 2 are needed to score one", text,
                    n_tok);
        goto fail;
    }
    if (!ctx) ctx = VKL_MIN(VKL_MAX(s.model->hp.n_ctx_train, 2u), 2048u);
    uint64_t n_windows = (n_tok + ctx - 1) / ctx;
    if (n_tok % ctx == 1) n_windows--; /* a last window of one token scores nothing */
    if (n_windows > max_windows) n_windows = max_windows;
    batch = (uint32_t)VKL_MIN((uint64_t)batch, n_windows);
    vkl_fwd_dims dims = {.max_seq = batch, .max_T = ctx, .n_ctx = ctx};
    if (vkl_fwd_create(s.vk, s.model, &dims, &f, &err)) goto fail;
    if (adapter && (vkl_adapter_load(adapter, s.model, &lora, &err) || vkl_fwd_set_adapter(f, lora, scale, &err)))
        goto fail;
    nll = vkl_malloc((size_t)batch * ctx * 4);
    targets = vkl_malloc((size_t)batch * ctx * 4);
    double sum = 0, t0 = vkl_now_s();
    uint64_t scored = 0;
    for (uint64_t w = 0; w < n_windows;) {
        uint64_t start = w * ctx;
        uint32_t T = (uint32_t)VKL_MIN((uint64_t)ctx, n_tok - start);
        /* Full windows go in batches; a short last window runs alone. */
        uint32_t nb = 1;
        if (T == ctx)
            while (nb < batch && w + nb < n_windows && (w + nb + 1) * ctx <= n_tok) nb++;
        for (uint32_t b = 0; b < nb; b++)
            for (uint32_t t = 0; t < T; t++)
                targets[b * T + t] = t + 1 < T ? tokens[start + (uint64_t)b * ctx + t + 1] : -1;
        if (vkl_fwd_run(f, tokens + start, nb, T, 0, targets, nll, NULL, &err)) goto fail;
        for (uint32_t b = 0; b < nb; b++)
            for (uint32_t t = 0; t + 1 < T; t++) sum += nll[b * T + t];
        scored += (uint64_t)nb * (T - 1);
        w += nb;
    }
    double dt = vkl_now_s() - t0, mean = sum / (double)scored;
    double tps = dt > 0 ? (double)(scored + n_windows) / dt : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "mean_nll", mean);
        cJSON_AddNumberToObject(o, "perplexity", exp(mean));
        cJSON_AddNumberToObject(o, "tokens_scored", (double)scored);
        cJSON_AddNumberToObject(o, "windows", (double)n_windows);
        cJSON_AddNumberToObject(o, "ctx", ctx);
        cJSON_AddNumberToObject(o, "tokens_per_second", tps);
        cJSON_AddStringToObject(o, "device", s.vk->info.name);
        vkl_cli_print_json(o);
    } else {
        printf("model        %s\ntext         %s (%zu tokens)\nwindows      %llu of %u tokens\n", model, text, n_tok,
               (unsigned long long)n_windows, ctx);
        printf("mean NLL     %.6f nats/token\nperplexity   %.4f\ntokens       %llu scored\nspeed        %.1f "
               "tokens/s on %s\n",
               mean, exp(mean), (unsigned long long)scored, tps, s.vk->info.name);
    }
    goto done;
fail:
    rc = vkl_cli_fail("eval", err.status, "%s", err.msg);
done:
    vkl_fwd_destroy(f);
    vkl_lora_free(lora);
    free(nll);
    free(targets);
    free(tokens);
    free(data);
    vkl_session_close(&s);
    return rc;
}
