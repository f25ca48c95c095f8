/* `vklora info`: describes a GGUF file (architecture, hyper-parameters, tokenizer, tensor types and table) as text
 * or as one JSON object. Reads metadata only: no Vulkan device is created. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vklora/gguf.h"
#include "vklora/hf.h"
#include "vklora/model.h"
#include "vklora/quant.h"

static void help(void) {
    printf("usage: vklora info MODEL.gguf|HF_FOLDER [--json] [--no-tensors]\n\n"
           "Describe a GGUF file (version 2 or 3): architecture and hyper-parameters, tokenizer and special\n"
           "tokens, parameter count, bytes per tensor type, and the tensor table (shape in ggml order, ne[0]\n"
           "first; offsets relative to the data section). Vocabulary-only files are accepted.\n\n"
           "  --json        print one JSON object instead of text (keys: path, gguf_version, architecture,\n"
           "                hparams, tokenizer, n_tensors, n_params, types, tensors, metadata_keys, ...);\n"
           "                absent values are null\n"
           "  --no-tensors  leave out the tensor table\n"
           "  -h, --help    this text\n\n"
           "exit codes: 0 ok, 2 bad usage or a missing/malformed file (the reason goes to stderr)\n");
}

/* Hyper-parameters; has_* false when neither the file nor a default gives the value. */
typedef struct {
    const char *arch;
    bool has_layer, has_embd, has_head, has_head_kv, has_ff, has_ctx, has_rope_base, has_rope_dim, has_rms,
        has_norm, has_vocab;
    uint64_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_ctx, rope_dim, vocab;
    double rope_base, rms_eps, norm_eps;
} hparams;

static bool arch_u64(const vkl_gguf *g, const char *arch, const char *suffix, uint64_t *out) {
    char key[256];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    return vkl_gguf_get_u64(g, key, out);
}

/* float32 metadata widened to double prints as 9.99999974737875e-06; report the shortest decimal that reads back
 * as the same float (1e-05), which is what the converter that wrote the file was given. */
static double shortest_f32(double v) {
    float f = (float)v;
    if ((double)f != v) return v;
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtof(buf, NULL) == f) return strtod(buf, NULL);
    }
    return v;
}

static bool arch_f64(const vkl_gguf *g, const char *arch, const char *suffix, double *out) {
    char key[256];
    snprintf(key, sizeof(key), "%s.%s", arch, suffix);
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    if (!vkl_gguf_get_f64(g, key, out)) return false;
    if (v->type == VKL_GGUF_FLOAT32) *out = shortest_f32(*out);
    return true;
}

static void read_hparams(const vkl_gguf *g, hparams *h) {
    memset(h, 0, sizeof(*h));
    const vkl_gguf_value *tokens = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING);
    h->arch = vkl_gguf_get_str(g, "general.architecture");
    if (h->arch) {
        const char *a = h->arch;
        h->has_layer = arch_u64(g, a, "block_count", &h->n_layer);
        h->has_embd = arch_u64(g, a, "embedding_length", &h->n_embd);
        h->has_head = arch_u64(g, a, "attention.head_count", &h->n_head);
        h->has_head_kv = arch_u64(g, a, "attention.head_count_kv", &h->n_head_kv);
        if (!h->has_head_kv && h->has_head) { /* no key means plain multi-head attention */
            h->has_head_kv = true;
            h->n_head_kv = h->n_head;
        }
        h->has_ff = arch_u64(g, a, "feed_forward_length", &h->n_ff);
        h->has_ctx = arch_u64(g, a, "context_length", &h->n_ctx);
        h->has_rope_base = true;
        if (!arch_f64(g, a, "rope.freq_base", &h->rope_base)) h->rope_base = 10000.0;
        h->has_rope_dim = arch_u64(g, a, "rope.dimension_count", &h->rope_dim);
        if (!h->has_rope_dim && h->has_embd && h->has_head && h->n_head) {
            h->has_rope_dim = true;
            h->rope_dim = h->n_embd / h->n_head;
        }
        h->has_rms = arch_f64(g, a, "attention.layer_norm_rms_epsilon", &h->rms_eps);
        h->has_norm = arch_f64(g, a, "attention.layer_norm_epsilon", &h->norm_eps);
        h->has_vocab = arch_u64(g, a, "vocab_size", &h->vocab);
    }
    if (tokens) { /* the token list is the vocabulary; <arch>.vocab_size only stands in when it is missing */
        h->has_vocab = true;
        h->vocab = tokens->v.arr.count;
    }
}

/* Token ids: 0xFFFFFFFF is llama.cpp's "no such token". */
static bool token_id(const vkl_gguf *g, const char *key, int64_t *id) {
    if (!vkl_gguf_get_i64(g, key, id)) return false;
    return *id != 0xFFFFFFFFll && *id >= 0;
}

static const struct {
    const char *name, *key;
} special_tokens[] = {
    {"bos", "tokenizer.ggml.bos_token_id"},
    {"eos", "tokenizer.ggml.eos_token_id"},
    {"unk", "tokenizer.ggml.unknown_token_id"},
    {"pad", "tokenizer.ggml.padding_token_id"},
    {"sep", "tokenizer.ggml.seperator_token_id"}, /* sic: llama.cpp's spelling */
    {"eot", "tokenizer.ggml.eot_token_id"},
};

typedef struct {
    uint64_t count, bytes;
} type_total;

static uint64_t n_elements(const vkl_gguf_tensor *t) {
    return (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
}

static const char *type_name(uint32_t type) {
    const vkl_type_traits *tr = vkl_type_traits_get(type);
    return tr ? tr->name : "?";
}

/* Strings from the file go into JSON; replace bytes that are not UTF-8 so the output stays valid JSON text. */
static char *utf8_clean(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(3 * n + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        int len = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && p + len <= end;
        for (int i = 1; ok && i < len; i++) ok = (p[i] & 0xC0) == 0x80;
        if (ok) {
            memcpy(o, p, (size_t)len);
            o += len;
            p += len;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD */
            o += 3;
            p++;
        }
    }
    *o = '\0';
    return out;
}

static void json_str(cJSON *obj, const char *key, const char *val) {
    if (!val) {
        cJSON_AddNullToObject(obj, key);
        return;
    }
    char *c = utf8_clean(val);
    cJSON_AddStringToObject(obj, key, c ? c : "");
    free(c);
}

static void json_num(cJSON *obj, const char *key, bool has, double v) {
    if (has) cJSON_AddNumberToObject(obj, key, v);
    else cJSON_AddNullToObject(obj, key);
}

/* Whether vklora trains this file's architecture, with what it reads from it, or why not. Adapters and
 * vocabulary-only files have no answer (NULL). */
static char *training_support(const vkl_gguf *g, bool *supported) {
    const char *type = vkl_gguf_get_str(g, "general.type");
    if ((type && !strcmp(type, "adapter")) || g->n_tensors == 0) return NULL;
    vkl_hparams hp;
    vkl_err err = {0};
    char buf[2200];
    *supported = vkl_hparams_read(g, &hp, &err) == VKL_OK;
    if (!*supported) {
        const char *m = strstr(err.msg, ": architecture");
        snprintf(buf, sizeof(buf), "%s", m ? m + 2 : err.msg);
        return vkl_strdup(buf);
    }
    const vkl_arch_desc *d = hp.desc;
    uint32_t n_local = 0;
    for (uint32_t l = 0; l < hp.n_layer; l++) n_local += hp.layer[l].window != 0;
    static const char *const scaling[] = {"none", "linear", "yarn", "longrope"};
    snprintf(buf, sizeof(buf), "%s family (%s); head_dim %u, rope %u dims %s, scaling %s%s%s%s%s%s",
             d->name, d->examples, hp.head_dim, hp.rope_dim, hp.rope_neox ? "neox" : "normal",
             scaling[hp.rope_scaling], d->qk_norm ? ", q/k norms" : "", d->post_norms ? ", post-norms" : "",
             d->act == VKL_ACT_GELU_TANH ? ", GELU(tanh)" : "", d->fused_qkv ? ", fused qkv/gate_up" : "",
             hp.attn_softcap > 0 || hp.final_softcap > 0 ? ", soft-caps" : "");
    if (vkl_gguf_find_tensor(g, "rope_freqs.weight") >= 0)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ", rope_freqs (Llama 3.1+)");
    if (vkl_gguf_find_tensor(g, "rope_factors_long.weight") >= 0)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ", longrope factors (original context %u)",
                 hp.rope_orig_ctx);
    if (n_local)
        snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ", sliding window %u on %u of %u layers", hp.n_swa,
                 n_local, hp.n_layer);
    vkl_hparams_free(&hp);
    return vkl_strdup(buf);
}

static int print_json(const vkl_gguf *g, const hparams *h, const type_total *types, uint64_t n_params,
                      bool tensors) {
    cJSON *doc = cJSON_CreateObject();
    json_str(doc, "path", g->path);
    cJSON_AddNumberToObject(doc, "gguf_version", g->version);
    json_str(doc, "architecture", h->arch);
    json_str(doc, "name", vkl_gguf_get_str(g, "general.name"));
    cJSON *hp = cJSON_AddObjectToObject(doc, "hparams");
    json_num(hp, "n_layer", h->has_layer, (double)h->n_layer);
    json_num(hp, "n_embd", h->has_embd, (double)h->n_embd);
    json_num(hp, "n_head", h->has_head, (double)h->n_head);
    json_num(hp, "n_head_kv", h->has_head_kv, (double)h->n_head_kv);
    json_num(hp, "n_ff", h->has_ff, (double)h->n_ff);
    json_num(hp, "n_ctx_train", h->has_ctx, (double)h->n_ctx);
    json_num(hp, "rope_freq_base", h->has_rope_base, h->rope_base);
    json_num(hp, "rope_dim", h->has_rope_dim, (double)h->rope_dim);
    json_num(hp, "rms_eps", h->has_rms, h->rms_eps);
    json_num(hp, "norm_eps", h->has_norm, h->norm_eps);
    json_num(hp, "vocab_size", h->has_vocab, (double)h->vocab);

    cJSON *tok = cJSON_AddObjectToObject(doc, "tokenizer");
    const vkl_gguf_value *tokens = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING);
    json_str(tok, "model", vkl_gguf_get_str(g, "tokenizer.ggml.model"));
    json_str(tok, "pre", vkl_gguf_get_str(g, "tokenizer.ggml.pre"));
    json_num(tok, "vocab_size", tokens != NULL, tokens ? (double)tokens->v.arr.count : 0);
    const vkl_gguf_value *merges = vkl_gguf_get_arr(g, "tokenizer.ggml.merges", VKL_GGUF_STRING);
    json_num(tok, "n_merges", merges != NULL, merges ? (double)merges->v.arr.count : 0);
    for (size_t i = 0; i < VKL_ARRAY_LEN(special_tokens); i++) {
        char key[32];
        int64_t id;
        snprintf(key, sizeof(key), "%s_id", special_tokens[i].name);
        bool has = token_id(g, special_tokens[i].key, &id);
        json_num(tok, key, has, (double)id);
    }
    bool flag;
    if (vkl_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag)) cJSON_AddBoolToObject(tok, "add_bos", flag);
    else cJSON_AddNullToObject(tok, "add_bos");
    if (vkl_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &flag)) cJSON_AddBoolToObject(tok, "add_eos", flag);
    else cJSON_AddNullToObject(tok, "add_eos");
    cJSON_AddBoolToObject(tok, "chat_template", vkl_gguf_get_str(g, "tokenizer.chat_template") != NULL);
    bool sup;
    char *ts = training_support(g, &sup);
    if (ts) {
        cJSON *tr = cJSON_AddObjectToObject(doc, "training");
        cJSON_AddBoolToObject(tr, "supported", sup);
        json_str(tr, sup ? "features" : "reason", ts);
    } else {
        cJSON_AddNullToObject(doc, "training");
    }
    free(ts);

    cJSON_AddNumberToObject(doc, "alignment", g->alignment);
    cJSON_AddNumberToObject(doc, "data_offset", (double)g->data_offset);
    cJSON_AddNumberToObject(doc, "file_size", (double)g->file_size);
    cJSON_AddNumberToObject(doc, "n_tensors", (double)g->n_tensors);
    cJSON_AddNumberToObject(doc, "n_params", (double)n_params);
    cJSON *ty = cJSON_AddObjectToObject(doc, "types");
    for (uint32_t t = 0; t < VKL_TYPE_COUNT; t++) {
        if (!types[t].count) continue;
        cJSON *o = cJSON_AddObjectToObject(ty, type_name(t));
        cJSON_AddNumberToObject(o, "count", (double)types[t].count);
        cJSON_AddNumberToObject(o, "bytes", (double)types[t].bytes);
    }
    if (tensors) {
        cJSON *arr = cJSON_AddArrayToObject(doc, "tensors");
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const vkl_gguf_tensor *t = &g->tensors[i];
            cJSON *o = cJSON_CreateObject();
            json_str(o, "name", t->name.str);
            cJSON *shape = cJSON_AddArrayToObject(o, "shape");
            for (uint32_t d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->ne[d]));
            cJSON_AddStringToObject(o, "type", type_name(t->type));
            cJSON_AddNumberToObject(o, "offset", (double)t->offset);
            cJSON_AddNumberToObject(o, "bytes", (double)t->size);
            cJSON_AddItemToArray(arr, o);
        }
    }
    cJSON_AddNumberToObject(doc, "metadata_keys", (double)g->n_kv);
    vkl_cli_print_json(doc);
    return 0;
}

static void text_u64(const char *label, bool has, uint64_t v) {
    if (has) printf("  %-16s %" PRIu64 "\n", label, v);
    else printf("  %-16s -\n", label);
}

static void text_f64(const char *label, bool has, double v) {
    if (has) printf("  %-16s %g\n", label, v);
    else printf("  %-16s -\n", label);
}

static int print_text(const vkl_gguf *g, const hparams *h, const type_total *types, uint64_t n_params,
                      bool tensors) {
    const char *name = vkl_gguf_get_str(g, "general.name");
    printf("path:           %s\n", g->path);
    printf("gguf version:   %" PRIu32 " (%" PRIu64 " bytes, alignment %" PRIu32 ", data at byte %" PRIu64 ")\n",
           g->version, g->file_size, g->alignment, g->data_offset);
    printf("architecture:   %s%s%s%s\n", h->arch ? h->arch : "- (no general.architecture)", name ? " (" : "",
           name ? name : "", name ? ")" : "");
    bool sup;
    char *ts = training_support(g, &sup);
    if (ts) printf("training:       %s%s\n", sup ? "supported: " : "not supported: ", ts);
    free(ts);
    if (h->arch) {
        text_u64("n_layer", h->has_layer, h->n_layer);
        text_u64("n_embd", h->has_embd, h->n_embd);
        text_u64("n_head", h->has_head, h->n_head);
        text_u64("n_head_kv", h->has_head_kv, h->n_head_kv);
        text_u64("n_ff", h->has_ff, h->n_ff);
        text_u64("n_ctx_train", h->has_ctx, h->n_ctx);
        text_f64("rope_freq_base", h->has_rope_base, h->rope_base);
        text_u64("rope_dim", h->has_rope_dim, h->rope_dim);
        text_f64("rms_eps", h->has_rms, h->rms_eps);
        if (h->has_norm) text_f64("norm_eps", true, h->norm_eps);
        text_u64("vocab_size", h->has_vocab, h->vocab);
    }
    const char *model = vkl_gguf_get_str(g, "tokenizer.ggml.model");
    const char *pre = vkl_gguf_get_str(g, "tokenizer.ggml.pre");
    const vkl_gguf_value *tokens = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING);
    printf("tokenizer:      %s", model ? model : "-");
    if (pre) printf(", pre %s", pre);
    if (tokens) printf(", %" PRIu64 " tokens", tokens->v.arr.count);
    const vkl_gguf_value *merges = vkl_gguf_get_arr(g, "tokenizer.ggml.merges", VKL_GGUF_STRING);
    if (merges) printf(", %" PRIu64 " merges", merges->v.arr.count);
    printf("\n  special ids   ");
    int shown = 0;
    for (size_t i = 0; i < VKL_ARRAY_LEN(special_tokens); i++) {
        int64_t id;
        if (token_id(g, special_tokens[i].key, &id)) {
            printf(" %s %" PRId64, special_tokens[i].name, id);
            shown++;
        }
    }
    printf("%s\n", shown ? "" : " none");
    bool flag;
    if (vkl_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag)) printf("  add_bos_token  %s\n", flag ? "yes" : "no");
    if (vkl_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &flag)) printf("  add_eos_token  %s\n", flag ? "yes" : "no");
    printf("  chat template  %s\n", vkl_gguf_get_str(g, "tokenizer.chat_template") ? "yes" : "no");
    printf("metadata keys:  %" PRIu64 "\n", g->n_kv);
    printf("tensors:        %" PRIu64 ", %" PRIu64 " parameters\n", g->n_tensors, n_params);
    for (uint32_t t = 0; t < VKL_TYPE_COUNT; t++)
        if (types[t].count)
            printf("  %-8s %6" PRIu64 " tensors %14" PRIu64 " bytes\n", type_name(t), types[t].count, types[t].bytes);
    if (tensors && g->n_tensors) {
        int w = 4;
        for (uint64_t i = 0; i < g->n_tensors; i++)
            if (g->tensors[i].name.len > (uint64_t)w) w = g->tensors[i].name.len > 80 ? 80 : (int)g->tensors[i].name.len;
        printf("\n  %-*s %-24s %-8s %14s %14s\n", w, "name", "shape", "type", "offset", "bytes");
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const vkl_gguf_tensor *t = &g->tensors[i];
            char shape[128] = "[";
            for (uint32_t d = 0; d < t->n_dims; d++)
                snprintf(shape + strlen(shape), sizeof(shape) - strlen(shape), "%s%" PRId64, d ? ", " : "", t->ne[d]);
            snprintf(shape + strlen(shape), sizeof(shape) - strlen(shape), "]");
            printf("  %-*s %-24s %-8s %14" PRIu64 " %14" PRIu64 "\n", w, t->name.str, shape, type_name(t->type),
                   t->offset, t->size);
        }
    }
    return 0;
}

int vkl_cmd_info(int argc, char **argv) {
    const char *path = NULL;
    bool json = false, tensors = true;
    for (int i = 1; i < argc; i++) {
        if (vkl_cli_is_help(argv[i])) {
            help();
            return 0;
        } else if (!strcmp(argv[i], "--json")) {
            json = true;
        } else if (!strcmp(argv[i], "--no-tensors")) {
            tensors = false;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return vkl_cli_usage("info", "unknown option '%s'", argv[i]);
        } else if (path) {
            return vkl_cli_usage("info", "one model file expected, got '%s' and '%s'", path, argv[i]);
        } else {
            path = argv[i];
        }
    }
    if (!path) return vkl_cli_usage("info", "missing MODEL.gguf");

    vkl_err err = {0};
    vkl_gguf *g = NULL;
    vkl_hf_model *hf = NULL;
    vkl_status st = vkl_hf_open_any(path, &g, &hf, &err);
    if (st != VKL_OK) return vkl_cli_fail("info", st, "%s", err.msg);

    hparams h;
    read_hparams(g, &h);
    type_total types[VKL_TYPE_COUNT] = {{0}};
    uint64_t n_params = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const vkl_gguf_tensor *t = &g->tensors[i];
        n_params += n_elements(t); /* each count < 2^63 (reader-checked); a sum that wraps needs an absurd file */
        types[t->type].count++;
        types[t->type].bytes += t->size;
    }
    int rc = json ? print_json(g, &h, types, n_params, tensors) : print_text(g, &h, types, n_params, tensors);
    vkl_hf_close_any(g, hf);
    return rc;
}
