/* vklora-mkmodel: writes a small llama/qwen2 GGUF with random weights and a self-contained SentencePiece-style
 * vocabulary, in any supported weight type. It makes the README's default model and the test models. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vklora/gguf.h"
#include "vklora/quant.h"

typedef struct {
    const char *out;
    const char *arch;
    int type;
    uint32_t dim, layers, heads, kv_heads, ff, ctx;
    uint64_t seed;
    float std;
} opts;

static const char *HELP =
    "usage: vklora-mkmodel OUT.gguf [--arch llama|qwen2] [--type f32|f16|bf16|q8_0|q4_0|q4_k|q5_k|q6_k]\n"
    "                      [--dim N] [--layers N] [--heads N] [--kv-heads N] [--ff N] [--ctx N] [--seed S] [--std X]\n\n"
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
    float *f = keep(a, malloc(n * sizeof(float)));
    for (uint64_t i = 0; i < n; i++) f[i] = mean + std * normal();
    int64_t ne[2] = {ne0, ne1};
    uint32_t n_dims = ne1 > 1 ? 2 : 1;
    vkl_err err = {0};
    const void *data = f;
    if (type != VKL_TYPE_F32) {
        uint64_t bytes;
        if (!vkl_type_row_bytes(type, (uint64_t)ne0, &bytes)) {
            fprintf(stderr, "vklora-mkmodel: %s: row length %lld is not a multiple of %s's block size %u\n", name,
                    (long long)ne0, vkl_type_traits_get(type)->name, vkl_type_traits_get(type)->block_size);
            return 2;
        }
        void *q = keep(a, malloc(bytes * (uint64_t)ne1));
        if (!vkl_ref_quantize(type, f, q, n)) {
            fprintf(stderr, "vklora-mkmodel: cannot quantize to %s\n", vkl_type_traits_get(type)->name);
            return 2;
        }
        data = q;
    }
    if (vkl_gguf_writer_add_tensor(w, name, (uint32_t)type, n_dims, ne, data, &err)) {
        fprintf(stderr, "vklora-mkmodel: %s\n", err.msg);
        return 1;
    }
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
        } else if (!v) {
            fprintf(stderr, "vklora-mkmodel: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--arch")) {
            if (strcmp(v, "llama") && strcmp(v, "qwen2")) {
                fprintf(stderr, "vklora-mkmodel: --arch: expected llama or qwen2, got '%s'\n", v);
                return 2;
            }
            o.arch = v;
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
        } else if (!strcmp(a, "--dim")) dst = &o.dim;
        else if (!strcmp(a, "--layers")) dst = &o.layers;
        else if (!strcmp(a, "--heads")) dst = &o.heads;
        else if (!strcmp(a, "--kv-heads")) dst = &o.kv_heads;
        else if (!strcmp(a, "--ff")) dst = &o.ff;
        else if (!strcmp(a, "--ctx")) dst = &o.ctx;
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
    if (o.dim % o.heads || o.heads % o.kv_heads) {
        fprintf(stderr, "vklora-mkmodel: dim must be a multiple of heads, and heads of kv-heads\n");
        return 2;
    }
    rng = o.seed * 0x9E3779B97F4A7C15ull + 1;
    strvec vocab = {0};
    int32_t *types;
    build_vocab(&vocab, &types);
    float *scores = malloc(vocab.n * sizeof(float));
    for (uint32_t i = 0; i < vocab.n; i++) scores[i] = i < 259 ? 0.0f : -(float)i;

    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    char key[128];
    const char *A = o.arch;
    uint32_t hd = o.dim / o.heads;
    vkl_gguf_writer_set_str(w, "general.architecture", A);
    vkl_gguf_writer_set_str(w, "general.name", "vklora random test model");
#define KEY(suffix) (snprintf(key, sizeof(key), "%s." suffix, A), key)
    vkl_gguf_writer_set_u32(w, KEY("context_length"), o.ctx);
    vkl_gguf_writer_set_u32(w, KEY("embedding_length"), o.dim);
    vkl_gguf_writer_set_u32(w, KEY("block_count"), o.layers);
    vkl_gguf_writer_set_u32(w, KEY("feed_forward_length"), o.ff);
    vkl_gguf_writer_set_u32(w, KEY("rope.dimension_count"), hd);
    vkl_gguf_writer_set_u32(w, KEY("attention.head_count"), o.heads);
    vkl_gguf_writer_set_u32(w, KEY("attention.head_count_kv"), o.kv_heads);
    vkl_gguf_writer_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), 1e-5f);
    vkl_gguf_writer_set_f32(w, KEY("rope.freq_base"), 10000.0f);
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
    uint32_t V = vocab.n, D = o.dim, KV = o.kv_heads * hd, F = o.ff;
    bool qwen = !strcmp(A, "qwen2");
    const float ws = o.std > 0 ? o.std : -1.0f; /* weight std: fixed, or fan-in scaled */
    rc |= add_tensor(w, &a, "token_embd.weight", o.type, D, V, 0, o.std > 0 ? o.std * 10 : 1.0f);
    for (uint32_t l = 0; l < o.layers && !rc; l++) {
        char n[96];
#define T(suffix, type, ne0, ne1, mean, std) \
    (snprintf(n, sizeof(n), "blk.%u." suffix, l), add_tensor(w, &a, n, type, ne0, ne1, mean, std))
        rc |= T("attn_norm.weight", VKL_TYPE_F32, D, 1, 1.0f, 0.1f);
        rc |= T("attn_q.weight", o.type, D, D, 0, ws);
        rc |= T("attn_k.weight", o.type, D, KV, 0, ws);
        rc |= T("attn_v.weight", o.type, D, KV, 0, ws);
        if (qwen) {
            rc |= T("attn_q.bias", VKL_TYPE_F32, D, 1, 0, 0.1f);
            rc |= T("attn_k.bias", VKL_TYPE_F32, KV, 1, 0, 0.1f);
            rc |= T("attn_v.bias", VKL_TYPE_F32, KV, 1, 0, 0.1f);
        }
        rc |= T("attn_output.weight", o.type, D, D, 0, ws);
        rc |= T("ffn_norm.weight", VKL_TYPE_F32, D, 1, 1.0f, 0.1f);
        rc |= T("ffn_gate.weight", o.type, D, F, 0, ws);
        rc |= T("ffn_up.weight", o.type, D, F, 0, ws);
        rc |= T("ffn_down.weight", o.type, F, D, 0, ws);
#undef T
    }
    if (!rc) rc |= add_tensor(w, &a, "output_norm.weight", VKL_TYPE_F32, D, 1, 1.0f, 0.1f);
    if (!rc) rc |= add_tensor(w, &a, "output.weight", o.type, D, V, 0, ws);
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
