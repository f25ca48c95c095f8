/* vklora-mkmodel: writes a small llama/qwen2 GGUF with random weights and a self-contained SentencePiece-style
 * vocabulary, in any supported weight type. It makes the README's default model and the test models. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vklora/gguf.h"
#include "vklora/model.h"
#include "vklora/quant.h"

typedef struct {
    const char *out;
    const char *arch;
    int type;
    uint32_t dim, layers, heads, kv_heads, ff, ctx;
    uint32_t head_dim, rope_dim, vocab, window, swa_period;
    uint64_t seed;
    float std;
    float rope_base, rope_base_swa, eps;
    bool tied, rope_freqs, longrope;
    float attn_softcap, final_softcap;
    const char *scaling; /* NULL, "linear", "yarn" */
    float scaling_factor;
    uint32_t orig_ctx;
    float attn_temp;
} opts;

/* The shapes of models people fine-tune (random weights; vocabulary padded to the real size). */
static const struct preset {
    const char *name;
    opts o;
} PRESETS[] = {
    {"llama-3.2-1b", {.arch = "llama", .dim = 2048, .layers = 16, .heads = 32, .kv_heads = 8, .ff = 8192,
                      .ctx = 131072, .vocab = 128256, .rope_base = 500000.0f, .rope_freqs = true, .tied = true}},
    {"qwen2.5-0.5b", {.arch = "qwen2", .dim = 896, .layers = 24, .heads = 14, .kv_heads = 2, .ff = 4864,
                      .ctx = 32768, .vocab = 151936, .rope_base = 1000000.0f, .eps = 1e-6f, .tied = true}},
    {"qwen3-0.6b", {.arch = "qwen3", .dim = 1024, .layers = 28, .heads = 16, .kv_heads = 8, .head_dim = 128,
                    .ff = 3072, .ctx = 40960, .vocab = 151936, .rope_base = 1000000.0f, .eps = 1e-6f, .tied = true}},
    {"gemma-3-1b", {.arch = "gemma3", .dim = 1152, .layers = 26, .heads = 4, .kv_heads = 1, .head_dim = 256,
                    .ff = 6912, .ctx = 32768, .vocab = 262144, .rope_base = 1000000.0f, .rope_base_swa = 10000.0f,
                    .window = 512, .swa_period = 6, .eps = 1e-6f, .tied = true}},
    {"phi-4-mini", {.arch = "phi3", .dim = 3072, .layers = 32, .heads = 24, .kv_heads = 8, .ff = 8192,
                    .ctx = 131072, .orig_ctx = 4096, .vocab = 200064, .rope_dim = 96, .rope_base = 10000.0f,
                    .longrope = true, .tied = true}},
    {"mistral-nemo-like", {.arch = "llama", .dim = 5120, .layers = 2, .heads = 32, .kv_heads = 8, .head_dim = 128,
                           .ff = 14336, .ctx = 131072, .vocab = 131072, .rope_base = 1000000.0f}},
};

static const char *HELP =
    "usage: vklora-mkmodel OUT.gguf [--preset NAME] [--arch llama|qwen2|qwen3|gemma2|gemma3|phi3|mistral3]\n"
    "                      [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k]\n"
    "                      [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ff N] [--ctx N] [--seed S] [--std X]\n"
    "                      [--head-dim N] [--rope-dim N] [--vocab N] [--rope-base X] [--tied] [--rope-freqs]\n"
    "                      [--window N] [--swa-period N] [--softcap ATTN,FINAL] [--scaling linear|yarn --factor X\n"
    "                      --orig-ctx N] [--longrope] [--attn-temp X]\n\n"
    "Presets (real shapes and vocabulary sizes): llama-3.2-1b (rope_freqs, tied), qwen2.5-0.5b (biases, tied),\n"
    "qwen3-0.6b, gemma-3-1b (window 512, 5 local : 1 global), phi-4-mini (fused qkv/gate_up, partial rotary,\n"
    "longrope), mistral-nemo-like (head_dim 128 with 32 heads in width 5120; 2 layers). Options after --preset\n"
    "override it.\n\n"
    "Writes a llama-family GGUF with random weights (normal with std 1/sqrt(fan-in) by default, --std X for a fixed\n"
    "std; embeddings std 1; norms near 1) and a built-in\n"
    "SentencePiece-style vocabulary (control tokens, 256 byte-fallback tokens, characters and common English\n"
    "word pieces). 2D weights use --type (row length must be a multiple of its block size); norms stay F32.\n";

static uint64_t rng;
static double uniform01(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((rng >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}
static float normal(void) { return (float)(sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01())); }

/* Vocabulary: <unk> <s> </s>, <0x00>..<0xFF>, "▁" + printable ASCII, then every prefix of "▁word" for common
 * words, so the SPM merge loop can always build a word from adjacent pieces. Scores fall with the index. */
static const char *WORDS[] = {
    "the", "and", "a", "to", "was", "he", "she", "it", "of", "in", "they", "said", "his", "her", "you", "with",
    "on", "for", "that", "is", "one", "day", "had", "but", "so", "very", "little", "big", "happy", "play", "friend",
    "time", "once", "upon", "there", "saw", "went", "wanted", "mom", "dog", "cat", "sun", "tree", "ball", "fun",
    "loved", "what", "this", "we", "not", "be", "are", "at", "all", "from", "have", "an", "by", "or", "as", "do",
    "how", "if", "will", "up", "about", "out", "them", "then", "can", "like", "would", "make", "see", "him", "two",
    "more", "go", "no", "way", "could", "my", "than", "first", "been", "who", "its", "now", "people", "find",
    "ing", "ed", "er", "ly", "es", "tion",
};

typedef struct {
    char **s;
    uint32_t n, cap;
} strvec;

static int find(const strvec *v, const char *s) {
    for (uint32_t i = 0; i < v->n; i++)
        if (!strcmp(v->s[i], s)) return (int)i;
    return -1;
}
static void push(strvec *v, const char *s) {
    if (find(v, s) >= 0) return;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 512;
        v->s = realloc(v->s, v->cap * sizeof(char *));
    }
    v->s[v->n++] = strdup(s);
}

static void build_vocab(strvec *v, int32_t **types) {
    push(v, "<unk>");
    push(v, "<s>");
    push(v, "</s>");
    char buf[64];
    for (int b = 0; b < 256; b++) {
        snprintf(buf, sizeof(buf), "<0x%02X>", b);
        push(v, buf);
    }
    push(v, "\xe2\x96\x81"); /* ▁ */
    for (int c = 33; c < 127; c++) {
        buf[0] = (char)c, buf[1] = 0;
        push(v, buf);
        snprintf(buf, sizeof(buf), "\xe2\x96\x81%c", c);
        push(v, buf);
    }
    for (size_t w = 0; w < sizeof(WORDS) / sizeof(WORDS[0]); w++) {
        char word[64];
        snprintf(word, sizeof(word), "\xe2\x96\x81%s", WORDS[w]);
        for (size_t len = 4; len <= strlen(word); len++) { /* "▁" is 3 bytes */
            memcpy(buf, word, len);
            buf[len] = 0;
            push(v, buf);
        }
        for (size_t len = 2; len <= strlen(WORDS[w]); len++) { /* mid-word pieces */
            memcpy(buf, WORDS[w], len);
            buf[len] = 0;
            push(v, buf);
        }
    }
    *types = malloc(v->n * sizeof(int32_t));
    for (uint32_t i = 0; i < v->n; i++) (*types)[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
}

static int parse_u32(const char *s, uint32_t *out) {
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v == 0 || v > 1u << 20) return -1;
    *out = (uint32_t)v;
    return 0;
}

typedef struct {
    void **bufs;
    size_t n;
} arena;

static void *keep(arena *a, void *p) {
    a->bufs = realloc(a->bufs, (a->n + 1) * sizeof(void *));
    a->bufs[a->n++] = p;
    return p;
}

/* std < 0 means 1/sqrt(ne0): the fan-in scaling that keeps activations O(1), so a LoRA can steer the model. */
static int add_tensor(vkl_gguf_writer *w, arena *a, const char *name, int type, int64_t ne0, int64_t ne1,
                      float mean, float std) {
    uint64_t n = (uint64_t)ne0 * (uint64_t)ne1;
    if (std < 0) std = 1.0f / sqrtf((float)ne0);
    float *f = malloc(n * sizeof(float));
    for (uint64_t i = 0; i < n; i++) f[i] = mean + std * normal();
    int64_t ne[2] = {ne0, ne1};
    uint32_t n_dims = ne1 > 1 ? 2 : 1;
    vkl_err err = {0};
    const void *data = f;
    if (type != VKL_TYPE_F32) {
        uint64_t bytes;
        if (!vkl_type_row_bytes(type, (uint64_t)ne0, &bytes)) {
            free(f);
            fprintf(stderr, "vklora-mkmodel: %s: row length %lld is not a multiple of %s's block size %u\n", name,
                    (long long)ne0, vkl_type_traits_get(type)->name, vkl_type_traits_get(type)->block_size);
            return 2;
        }
        void *q = keep(a, malloc(bytes * (uint64_t)ne1));
        if (!vkl_ref_quantize(type, f, q, n)) {
            fprintf(stderr, "vklora-mkmodel: cannot quantize to %s\n", vkl_type_traits_get(type)->name);
            free(f);
            return 2;
        }
        free(f); /* only the quantized bytes stay: a preset of billions of weights fits in memory */
        data = q;
    } else {
        keep(a, f);
    }
    if (vkl_gguf_writer_add_tensor(w, name, (uint32_t)type, n_dims, ne, data, &err)) {
        fprintf(stderr, "vklora-mkmodel: %s\n", err.msg);
        return 1;
    }
    return 0;
}

static int parse_f32(const char *s, float *out) {
    char *end;
    float v = strtof(s, &end);
    if (!*s || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    opts o = {.arch = "llama", .type = VKL_TYPE_F32, .dim = 64, .layers = 2, .heads = 4, .kv_heads = 2, .ff = 172,
              .ctx = 512, .seed = 1, .std = 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint32_t *dst = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(HELP, stdout);
            return 0;
        } else if (a[0] != '-') {
            o.out = a;
            continue;
        } else if (!strcmp(a, "--tied")) {
            o.tied = true;
            continue;
        } else if (!strcmp(a, "--rope-freqs")) {
            o.rope_freqs = true;
            continue;
        } else if (!strcmp(a, "--longrope")) {
            o.longrope = true;
            continue;
        } else if (!v) {
            fprintf(stderr, "vklora-mkmodel: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--preset")) {
            size_t k = 0;
            while (k < sizeof(PRESETS) / sizeof(PRESETS[0]) && strcmp(PRESETS[k].name, v)) k++;
            if (k == sizeof(PRESETS) / sizeof(PRESETS[0])) {
                fprintf(stderr, "vklora-mkmodel: --preset: unknown preset '%s' (see --help)\n", v);
                return 2;
            }
            const char *out = o.out;
            int type = o.type;
            uint64_t seed = o.seed;
            o = PRESETS[k].o;
            o.out = out, o.type = type, o.seed = seed;
        } else if (!strcmp(a, "--arch")) {
            const char *known[] = {"llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "mistral3"};
            size_t k = 0;
            while (k < 7 && strcmp(known[k], v)) k++;
            if (k == 7) {
                fprintf(stderr, "vklora-mkmodel: --arch: expected llama, qwen2, qwen3, gemma2, gemma3, phi3 or "
                                "mistral3, got '%s'\n", v);
                return 2;
            }
            o.arch = known[k];
        } else if (!strcmp(a, "--type")) {
            o.type = vkl_type_from_name(v);
            if (o.type < 0 || !vkl_type_traits_get((uint32_t)o.type)->supported) {
                fprintf(stderr, "vklora-mkmodel: --type: unsupported type '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--seed")) {
            o.seed = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--std")) {
            o.std = strtof(v, NULL);
        } else if (!strcmp(a, "--rope-base") || !strcmp(a, "--factor") || !strcmp(a, "--attn-temp")) {
            float *f = !strcmp(a, "--rope-base") ? &o.rope_base : !strcmp(a, "--factor") ? &o.scaling_factor
                                                                                           : &o.attn_temp;
            if (parse_f32(v, f) || !(*f > 0)) {
                fprintf(stderr, "vklora-mkmodel: %s: expected a positive number, got '%s'\n", a, v);
                return 2;
            }
        } else if (!strcmp(a, "--softcap")) {
            if (sscanf(v, "%f,%f", &o.attn_softcap, &o.final_softcap) != 2 || o.attn_softcap < 0 ||
                o.final_softcap < 0) {
                fprintf(stderr, "vklora-mkmodel: --softcap: expected ATTN,FINAL (0 = off), got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--scaling")) {
            if (strcmp(v, "linear") && strcmp(v, "yarn")) {
                fprintf(stderr, "vklora-mkmodel: --scaling: expected linear or yarn, got '%s'\n", v);
                return 2;
            }
            o.scaling = !strcmp(v, "linear") ? "linear" : "yarn";
        } else if (!strcmp(a, "--dim")) dst = &o.dim;
        else if (!strcmp(a, "--layers")) dst = &o.layers;
        else if (!strcmp(a, "--heads")) dst = &o.heads;
        else if (!strcmp(a, "--kv-heads")) dst = &o.kv_heads;
        else if (!strcmp(a, "--ff")) dst = &o.ff;
        else if (!strcmp(a, "--ctx")) dst = &o.ctx;
        else if (!strcmp(a, "--head-dim")) dst = &o.head_dim;
        else if (!strcmp(a, "--rope-dim")) dst = &o.rope_dim;
        else if (!strcmp(a, "--vocab")) dst = &o.vocab;
        else if (!strcmp(a, "--window")) dst = &o.window;
        else if (!strcmp(a, "--swa-period")) dst = &o.swa_period;
        else if (!strcmp(a, "--orig-ctx")) dst = &o.orig_ctx;
        else {
            fprintf(stderr, "vklora-mkmodel: unknown option '%s'\n", a);
            return 2;
        }
        if (dst && parse_u32(v, dst)) {
            fprintf(stderr, "vklora-mkmodel: %s: expected a positive integer, got '%s'\n", a, v);
            return 2;
        }
        i++;
    }
    if (!o.out) {
        fputs(HELP, stderr);
        return 2;
    }
    if (!o.head_dim && o.dim % o.heads) {
        fprintf(stderr, "vklora-mkmodel: dim must be a multiple of heads (or give --head-dim)\n");
        return 2;
    }
    if (o.heads % o.kv_heads) {
        fprintf(stderr, "vklora-mkmodel: heads must be a multiple of kv-heads\n");
        return 2;
    }
    const char *A = o.arch;
    bool qwen2 = !strcmp(A, "qwen2"), qk_norm = !strcmp(A, "qwen3") || !strcmp(A, "gemma3");
    bool gemma = !strncmp(A, "gemma", 5), phi3 = !strcmp(A, "phi3");
    uint32_t hd = o.head_dim ? o.head_dim : o.dim / o.heads;
    uint32_t rope_dim = o.rope_dim ? o.rope_dim : hd;
    if (rope_dim > hd || rope_dim % 2) {
        fprintf(stderr, "vklora-mkmodel: --rope-dim must be even and at most the head dimension %u\n", hd);
        return 2;
    }
    if (!o.rope_base) o.rope_base = 10000.0f;
    if (!o.eps) o.eps = 1e-5f;
    rng = o.seed * 0x9E3779B97F4A7C15ull + 1;
    strvec vocab = {0};
    int32_t *types;
    build_vocab(&vocab, &types);
    if (o.vocab && o.vocab < vocab.n) {
        fprintf(stderr, "vklora-mkmodel: --vocab must be at least the built-in vocabulary's %u tokens\n", vocab.n);
        return 2;
    }
    /* pad to a real model's vocabulary size with unreachable pieces */
    uint32_t n_base = vocab.n;
    for (uint32_t i = n_base; i < o.vocab; i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "<extra_%u>", i - n_base);
        if (vocab.n == vocab.cap) {
            vocab.cap *= 2;
            vocab.s = realloc(vocab.s, vocab.cap * sizeof(char *));
        }
        vocab.s[vocab.n++] = strdup(buf);
    }
    types = realloc(types, vocab.n * sizeof(int32_t));
    for (uint32_t i = n_base; i < vocab.n; i++) types[i] = 4; /* USER_DEFINED-like: never produced by merges */
    float *scores = malloc(vocab.n * sizeof(float));
    for (uint32_t i = 0; i < vocab.n; i++) scores[i] = i < 259 ? 0.0f : -(float)i;

    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    char key[128];
    vkl_gguf_writer_set_str(w, "general.architecture", A);
    vkl_gguf_writer_set_str(w, "general.name", "vklora random test model");
#define KEY(suffix) (snprintf(key, sizeof(key), "%s." suffix, A), key)
    vkl_gguf_writer_set_u32(w, KEY("context_length"), o.ctx);
    vkl_gguf_writer_set_u32(w, KEY("embedding_length"), o.dim);
    vkl_gguf_writer_set_u32(w, KEY("block_count"), o.layers);
    vkl_gguf_writer_set_u32(w, KEY("feed_forward_length"), o.ff);
    vkl_gguf_writer_set_u32(w, KEY("rope.dimension_count"), rope_dim);
    vkl_gguf_writer_set_u32(w, KEY("attention.head_count"), o.heads);
    vkl_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), o.kv_heads);
    if (o.head_dim) {
        vkl_gguf_writer_set_u32(w, KEY("attention.key_length"), hd);
        vkl_gguf_writer_set_u32(w, KEY("attention.value_length"), hd);
    }
    vkl_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), o.eps);
    vkl_gguf_writer_set_f32(w, KEY("rope.freq_base"), o.rope_base);
    if (o.rope_base_swa) vkl_gguf_writer_set_f32(w, KEY("rope.freq_base_swa"), o.rope_base_swa);
    if (o.window) vkl_gguf_writer_set_u32(w, KEY("attention.sliding_window"), o.window);
    if (o.swa_period) vkl_gguf_writer_set_u32(w, KEY("attention.sliding_window_pattern"), o.swa_period);
    if (gemma || o.attn_softcap || o.final_softcap) {
        if (o.attn_softcap) vkl_gguf_writer_set_f32(w, KEY("attn_logit_softcapping"), o.attn_softcap);
        if (o.final_softcap) vkl_gguf_writer_set_f32(w, KEY("final_logit_softcapping"), o.final_softcap);
    }
    if (o.scaling) {
        vkl_gguf_writer_set_str(w, KEY("rope.scaling.type"), o.scaling);
        vkl_gguf_writer_set_f32(w, KEY("rope.scaling.factor"), o.scaling_factor ? o.scaling_factor : 4.0f);
    }
    if (o.orig_ctx || o.longrope || o.attn_temp)
        vkl_gguf_writer_set_u32(w, KEY("rope.scaling.original_context_length"), o.orig_ctx ? o.orig_ctx : o.ctx / 4);
    if (o.longrope) {
        /* Phi-3.5/4's attention factor sqrt(1 + ln(ctx / orig) / ln(orig)) */
        double orig = o.orig_ctx ? o.orig_ctx : o.ctx / 4;
        vkl_gguf_writer_set_f32(w, KEY("rope.scaling.attn_factor"),
                                (float)sqrt(1 + log(o.ctx / orig) / log(orig)));
    }
    if (o.attn_temp) vkl_gguf_writer_set_f32(w, KEY("attention.temperature_scale"), o.attn_temp);
#undef KEY
    vkl_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    vkl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)vocab.s, vocab.n);
    vkl_gguf_writer_set_arr(w, "tokenizer.ggml.scores", VKL_GGUF_FLOAT32, scores, vocab.n);
    vkl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", VKL_GGUF_INT32, types, vocab.n);
    vkl_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    vkl_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    vkl_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    vkl_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    vkl_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false);

    arena a = {0};
    int rc = 0;
    uint32_t V = vocab.n, D = o.dim, QD = o.heads * hd, KV = o.kv_heads * hd, F = o.ff;
    const float ws = o.std > 0 ? o.std : -1.0f; /* weight std: fixed, or fan-in scaled */
    rc |= add_tensor(w, &a, "token_embd.weight", o.type, D, V, 0, o.std > 0 ? o.std * 10 : gemma ? 0.05f : 1.0f);
    if (!rc && (o.rope_freqs || o.longrope)) {
        /* per-pair factors: Llama 3's from its formula; longrope's a smooth random ramp >= 1 */
        uint32_t n = rope_dim / 2;
        const char *names[2] = {o.rope_freqs ? "rope_freqs.weight" : "rope_factors_long.weight",
                                "rope_factors_short.weight"};
        for (int k = 0; k < (o.longrope ? 2 : 1) && !rc; k++) {
            float *ff = keep(&a, malloc(n * sizeof(float)));
            /* Llama 3.1's rope_freqs: factor 32, low 1, high 4, original context 8192 */
            if (o.rope_freqs) vkl_rope_llama3_factors(o.rope_base, rope_dim, 32, 1, 4, 8192, ff);
            else
                for (uint32_t i = 0; i < n; i++)
                    ff[i] = 1.0f + (k == 0 ? 40.0f : 0.5f) * (float)i / n * (float)(0.5 + uniform01());
            int64_t ne[1] = {n};
            vkl_err err = {0};
            if (vkl_gguf_writer_add_tensor(w, names[k], VKL_TYPE_F32, 1, ne, ff, &err)) {
                fprintf(stderr, "vklora-mkmodel: %s\n", err.msg);
                rc = 1;
            }
        }
    }
    for (uint32_t l = 0; l < o.layers && !rc; l++) {
        char n[96];
#define T(suffix, type, ne0, ne1, mean, std) \
    (snprintf(n, sizeof(n), "blk.%u." suffix, l), add_tensor(w, &a, n, type, ne0, ne1, mean, std))
        rc |= T("attn_norm.weight", VKL_TYPE_F32, D, 1, 1.0f, 0.1f);
        if (phi3) {
            rc |= T("attn_qkv.weight", o.type, D, QD + 2 * KV, 0, ws);
        } else {
            rc |= T("attn_q.weight", o.type, D, QD, 0, ws);
            rc |= T("attn_k.weight", o.type, D, KV, 0, ws);
            rc |= T("attn_v.weight", o.type, D, KV, 0, ws);
        }
        if (qwen2) {
            rc |= T("attn_q.bias", VKL_TYPE_F32, QD, 1, 0, 0.1f);
            rc |= T("attn_k.bias", VKL_TYPE_F32, KV, 1, 0, 0.1f);
            rc |= T("attn_v.bias", VKL_TYPE_F32, KV, 1, 0, 0.1f);
        }
        if (qk_norm) {
            rc |= T("attn_q_norm.weight", VKL_TYPE_F32, hd, 1, 1.0f, 0.1f);
            rc |= T("attn_k_norm.weight", VKL_TYPE_F32, hd, 1, 1.0f, 0.1f);
        }
        rc |= T("attn_output.weight", o.type, QD, D, 0, ws);
        if (gemma) rc |= T("post_attention_norm.weight", VKL_TYPE_F32, D, 1, 1.0f, 0.1f);
        rc |= T("ffn_norm.weight", VKL_TYPE_F32, D, 1, 1.0f, 0.1f);
        if (phi3) {
            rc |= T("ffn_up.weight", o.type, D, 2 * F, 0, ws);
        } else {
            rc |= T("ffn_gate.weight", o.type, D, F, 0, ws);
            rc |= T("ffn_up.weight", o.type, D, F, 0, ws);
        }
        rc |= T("ffn_down.weight", o.type, F, D, 0, ws);
        if (gemma) rc |= T("post_ffw_norm.weight", VKL_TYPE_F32, D, 1, 1.0f, 0.1f);
#undef T
    }
    if (!rc) rc |= add_tensor(w, &a, "output_norm.weight", VKL_TYPE_F32, D, 1, 1.0f, 0.1f);
    if (!rc && !o.tied) rc |= add_tensor(w, &a, "output.weight", o.type, D, V, 0, ws);
    vkl_err err = {0};
    if (!rc && vkl_gguf_writer_write(w, o.out, &err)) {
        fprintf(stderr, "vklora-mkmodel: %s\n", err.msg);
        rc = 1;
    }
    vkl_gguf_writer_free(w);
    for (size_t i = 0; i < a.n; i++) free(a.bufs[i]);
    free(a.bufs);
    for (uint32_t i = 0; i < vocab.n; i++) free(vocab.s[i]);
    free(vocab.s);
    free(types);
    free(scores);
    if (!rc) printf("wrote %s (%s, %s, dim %u, %u layers, vocab %u)\n", o.out, A, vkl_type_traits_get(o.type)->name,
                    D, o.layers, V);
    return rc;
}
