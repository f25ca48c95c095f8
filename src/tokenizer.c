/* Tokenizers from GGUF metadata: vocabulary loading and validation, special-token partitioning, the SPM and
 * byte-level BPE encoders (priority-queue merges, as llama.cpp's llama-vocab), and decoding back to bytes.
 *
 * Both encoders keep a linked list of symbols over the input and a heap of candidate merges of neighbours;
 * a popped candidate whose symbols changed since it was pushed is stale and skipped. SPM merges the
 * neighbour pair whose concatenation is the vocabulary entry of highest score, BPE the pair of lowest merge
 * rank; ties go to the leftmost pair. Merging stops when no candidate is left. */
#include "vklora/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "platform.h"
#include "tokenizer_internal.h"
#include "unicode.h"

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_MERGES "tokenizer.ggml.merges"

/* ---- hashing ---- */

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t tok_table_size_for(uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    return cap;
}

static const char *tok_text(const vkl_tokenizer *t, int32_t id) { return t->arena + t->text_off[id]; }

/* Characters a = s[0..na) and b = s[na..na+nb). */
static uint64_t pair_hash(const char *s, size_t na, size_t nb) {
    return hash_u64(hash_bytes(s, na + nb) + na);
}

static bool pair_possible(const vkl_tokenizer *t, const char *s, size_t na, size_t nb) {
    uint64_t h = pair_hash(s, na, nb) & t->pair_mask;
    return (t->pair_bits[h >> 6] >> (h & 63)) & 1;
}

/* Characters are split as the SPM encoder splits its text, so a token's pairs are the text's pairs. */
static void build_pair_bits(vkl_tokenizer *t) {
    uint64_t n_pairs = 0;
    for (int32_t i = 0; i < t->n_vocab; i++) n_pairs += t->text_len[i];
    uint64_t bits = 1 << 16;
    while (bits < 16 * n_pairs && bits < (1ull << 32)) bits <<= 1;
    t->pair_bits = vkl_calloc(bits / 64, sizeof(uint64_t));
    t->pair_mask = bits - 1;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        const char *s = tok_text(t, i);
        size_t n = t->text_len[i];
        size_t a = VKL_MIN(vkl_utf8_len((uint8_t)s[0]), n);
        for (size_t p = a; p < n;) {
            size_t b = VKL_MIN(vkl_utf8_len((uint8_t)s[p]), n - p);
            uint64_t h = pair_hash(s + p - a, a, b) & t->pair_mask;
            t->pair_bits[h >> 6] |= 1ull << (h & 63);
            p += b;
            a = b;
        }
    }
}

int32_t vkl_tokenizer_find(const vkl_tokenizer *t, const char *s, size_t n) {
    if (n > t->max_token_len) return -1;
    for (uint64_t i = hash_bytes(s, n) & t->map_mask;; i = (i + 1) & t->map_mask) {
        int32_t id = t->map[i];
        if (id < 0) return -1;
        if (t->text_len[id] == n && memcmp(tok_text(t, id), s, n) == 0) return id;
    }
}

/* A text spelled by several ids maps to the last of them, as llama.cpp's token_to_id does. */
void tok_map_insert(vkl_tokenizer *t, int32_t id) {
    const char *s = tok_text(t, id);
    size_t n = t->text_len[id];
    for (uint64_t i = hash_bytes(s, n) & t->map_mask;; i = (i + 1) & t->map_mask) {
        int32_t o = t->map[i];
        if (o < 0 || (t->text_len[o] == n && memcmp(tok_text(t, o), s, n) == 0)) {
            t->map[i] = id;
            return;
        }
    }
}

static const merge_slot *merge_find(const vkl_tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const merge_slot *m = &t->merges[i];
        if (m->key == key) return m;
        if (m->key == UINT64_MAX) return NULL;
    }
}

/* The first listing of a pair sets its rank (later duplicates are ignored, as in llama.cpp). */
void tok_merge_insert(vkl_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t result) {
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    for (uint64_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        merge_slot *m = &t->merges[i];
        if (m->key == key) {
            if (t->hf_bpe) { /* Hugging Face collects the merges into a hash map: the last listing wins */
                m->rank = rank;
                m->result = result;
            }
            return;
        }
        if (m->key == UINT64_MAX) {
            m->key = key;
            m->rank = rank;
            m->result = result;
            return;
        }
    }
}

/* ---- loading ---- */

static const char *gguf_name(const vkl_gguf *g) { return g->path ? g->path : "<memory>"; }

/* An optional boolean key: absent keeps *out; present with another type is an error. */
static bool get_opt_bool(const vkl_gguf *g, const char *key, bool *out, vkl_err *err) {
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    if (!v) return true;
    if (v->type != VKL_GGUF_BOOL) {
        vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: expected a bool, got %s", gguf_name(g), key,
                    vkl_gguf_type_name(v->type));
        return false;
    }
    *out = v->v.u64 != 0;
    return true;
}

/* An optional token id: absent keeps *out; -1 and 0xFFFFFFFF (what converters write for "none") give -1. */
static bool get_opt_id(const vkl_gguf *g, const char *key, int32_t n_vocab, int32_t *out, vkl_err *err) {
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    if (!v) return true;
    int64_t id;
    if (!vkl_gguf_get_i64(g, key, &id)) {
        uint64_t u;
        if (!vkl_gguf_get_u64(g, key, &u)) {
            vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: expected an integer token id, got %s", gguf_name(g),
                        key, vkl_gguf_type_name(v->type));
            return false;
        }
        id = u > (uint64_t)INT64_MAX ? -1 : (int64_t)u;
    }
    if (id == -1 || id == 0xFFFFFFFFll) {
        *out = -1;
        return true;
    }
    if (id < 0 || id >= n_vocab) {
        vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: %lld is not a token id (the vocabulary has %d tokens)",
                    gguf_name(g), key, (long long)id, n_vocab);
        return false;
    }
    *out = (int32_t)id;
    return true;
}

/* A required or optional array with the given element type. Returns false (err set) on a wrong type or a
 * missing required key; *out is NULL when an optional key is absent. */
static bool get_array(const vkl_gguf *g, const char *key, vkl_gguf_type elem, bool required, const char *what,
                      const vkl_gguf_value **out, vkl_err *err) {
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    *out = NULL;
    if (!v) {
        if (!required) return true;
        vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: missing (expected %s)", gguf_name(g), key, what);
        return false;
    }
    if (v->type != VKL_GGUF_ARRAY || v->v.arr.elem_type != elem) {
        bool arr = v->type == VKL_GGUF_ARRAY;
        vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: expected %s, got %s%s", gguf_name(g), key, what,
                    arr ? "an array of " : "a single ", vkl_gguf_type_name(arr ? v->v.arr.elem_type : v->type));
        return false;
    }
    *out = v;
    return true;
}

static int cmp_special(const void *a, const void *b, void *ctx) {
    const vkl_tokenizer *t = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (t->text_len[x] != t->text_len[y]) return t->text_len[x] > t->text_len[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static bool is_special_type(uint8_t type) {
    return type == VKL_TOKEN_CONTROL || type == VKL_TOKEN_USER_DEFINED || type == VKL_TOKEN_UNKNOWN;
}

static vkl_status load_merges(vkl_tokenizer *t, const vkl_gguf *g, vkl_err *err) {
    const vkl_gguf_value *m;
    if (!get_array(g, KEY_MERGES, VKL_GGUF_STRING, true, "an array of \"left right\" strings", &m, err))
        return VKL_ERR_INPUT;
    if (m->v.arr.count > MAX_VOCAB)
        return vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: %llu merges, at most %d supported", gguf_name(g),
                           KEY_MERGES, (unsigned long long)m->v.arr.count, MAX_VOCAB);
    const vkl_gguf_str *s = m->v.arr.data;
    uint64_t cap = tok_table_size_for(m->v.arr.count);
    t->merges = vkl_malloc(cap * sizeof(merge_slot));
    for (uint64_t i = 0; i < cap; i++) t->merges[i].key = UINT64_MAX;
    t->merge_mask = cap - 1;
    /* One exit, so that the scratch buffer is freed on every error (it leaked on a merge without a space). */
    vkl_status st = VKL_OK;
    char *buf = NULL;
    size_t buf_cap = 0;
    for (uint64_t i = 0; i < m->v.arr.count && !st; i++) {
        const char *w = s[i].str;
        size_t len = s[i].len;
        /* The separator is the first space after the first byte: "Ġ Ġ" splits into "Ġ" and "Ġ". */
        const char *sp = len > 1 ? memchr(w + 1, ' ', len - 1) : NULL;
        if (!sp) {
            st = vkl_err_set(err, VKL_ERR_INPUT,
                             "tokenizer: %s: %s[%llu]: \"%.64s\": expected two tokens separated by a space",
                             gguf_name(g), KEY_MERGES, (unsigned long long)i, w);
            break;
        }
        size_t nl = (size_t)(sp - w), nr = len - nl - 1;
        int32_t l = vkl_tokenizer_find(t, w, nl), r = vkl_tokenizer_find(t, sp + 1, nr);
        if (buf_cap < nl + nr) {
            buf_cap = 2 * (nl + nr);
            buf = vkl_realloc(buf, buf_cap);
        }
        memcpy(buf, w, nl);
        memcpy(buf + nl, sp + 1, nr);
        int32_t res = vkl_tokenizer_find(t, buf, nl + nr);
        if (l < 0 || r < 0 || res < 0)
            st = vkl_err_set(err, VKL_ERR_INPUT,
                             "tokenizer: %s: %s[%llu]: \"%.64s\": %s is not in %s (a merge must join two tokens into "
                             "a token)",
                             gguf_name(g), KEY_MERGES, (unsigned long long)i, w,
                             l < 0 ? "the left part" : r < 0 ? "the right part" : "the merged text", KEY_TOKENS);
        else
            tok_merge_insert(t, l, r, (int32_t)i, res);
    }
    free(buf);
    return st;
}

/* tokenizer.ggml.pre names, grouped by the regex list llama.cpp applies for them (names with the same list and
 * the same settings share a row; a name is refused rather than tokenized with another's rules). */
enum { PRE_IGNORE_MERGES = 1, PRE_ADD_BOS = 2 };
static const struct {
    const char *names;
    vkl_pretok pre;
    unsigned flags;
} pre_table[] = {
    {"default", VKL_PRETOK_DEFAULT, 0},
    {"llama3 llama-v3 llama-bpe falcon3 falcon-h1 pixtral midm-2.0 lfm2 jina-v5-nano", VKL_PRETOK_LLAMA3,
     PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"dbrx smaug-bpe glm4 chatglm-bpe", VKL_PRETOK_LLAMA3, 0},
    {"gpt-2 phi-2 jina-es jina-de gigachat jina-v2-es jina-v2-de a.x-4.0 mellum modern-bert jina-v1-en jina-v2-code "
     "roberta-bpe mpt olmo jais trillion granite-docling exaone4",
     VKL_PRETOK_GPT2, 0},
    {"starcoder refact command-r smollm codeshell exaone minerva-7b mellum2", VKL_PRETOK_STARCODER, 0},
    {"qwen2 deepseek-r1-qwen kormo f2llmv2 stablelm2 hunyuan solar-open megrez", VKL_PRETOK_QWEN2, 0},
    {"qwen35", VKL_PRETOK_QWEN35, 0},
    {"falcon", VKL_PRETOK_FALCON, 0},
    {"deepseek-llm", VKL_PRETOK_DEEPSEEK_LLM, 0},
    {"deepseek-coder", VKL_PRETOK_DEEPSEEK_CODER, 0},
    {"gemma4", VKL_PRETOK_NEWLINES, 0},
    {"tekken", VKL_PRETOK_TEKKEN, PRE_IGNORE_MERGES | PRE_ADD_BOS},
    {"gpt-4o llama4 kanana2 talkie minimax-m2", VKL_PRETOK_GPT4O, 0},
};

/* The next name of a space-separated list (copied NUL-terminated into out); NULL at the end of the list. */
static const char *next_name(const char *p, char *out, size_t cap) {
    if (!*p) return NULL;
    size_t k = strcspn(p, " ");
    snprintf(out, cap, "%.*s", (int)k, p);
    return p + k + (p[k] == ' ');
}

static bool list_has(const char *list, const char *name) {
    char buf[64];
    for (const char *p = list; (p = next_name(p, buf, sizeof(buf)));)
        if (!strcmp(buf, name)) return true;
    return false;
}

/* pre: tokenizer.ggml.pre, or what the tokenizer model implies (Gemma 4's "gemma4"). */
static vkl_status configure_pre(vkl_tokenizer *t, const vkl_gguf *g, const char *forced, vkl_err *err) {
    const vkl_gguf_value *v = vkl_gguf_get(g, KEY_PRE);
    if (!forced && v && v->type != VKL_GGUF_STRING)
        return vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: expected a string, got %s", gguf_name(g), KEY_PRE,
                           vkl_gguf_type_name(v->type));
    /* llama.cpp falls back to "default" when the key is missing (with a warning that quality suffers) */
    const char *pre = forced ? forced : v ? v->v.str.str : "default";
    t->pre_name = vkl_strdup(pre);
    for (size_t i = 0; i < VKL_ARRAY_LEN(pre_table); i++) {
        if (!list_has(pre_table[i].names, pre)) continue;
        unsigned f = pre_table[i].flags;
        t->pre = pre_table[i].pre;
        t->ignore_merges = f & PRE_IGNORE_MERGES; /* a word that is a token is kept whole */
        if (f & PRE_ADD_BOS) t->add_bos = true; /* a default: tokenizer.ggml.add_bos_token overrides it */
        if (t->pre == VKL_PRETOK_NEWLINES) {
            /* SentencePiece-style BPE: spaces become U+2581, merges run on UTF-8 characters, <0xNN> byte tokens */
            t->byte_encode = false;
            t->escape_spaces = true;
        }
        return VKL_OK;
    }
    return vkl_err_set(err, VKL_ERR_INPUT,
                       "tokenizer: %s: %s: unsupported pre-tokenizer \"%.64s\" (supported: default, llama-bpe, gpt-2, "
                       "qwen2, qwen35, falcon, mpt, starcoder, refact, command-r, deepseek-llm, deepseek-coder, "
                       "tekken, gpt-4o and names sharing their rules; the file is not tokenized with another "
                       "pre-tokenizer's rules)",
                       gguf_name(g), KEY_PRE, pre);
}

void tok_find_eot(vkl_tokenizer *t) {
    static const char *const names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                        "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>",
                                        "<end_of_utterance>"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(names) && t->eot < 0; i++)
        t->eot = vkl_tokenizer_find(t, names[i], strlen(names[i]));
}

static void set_type(vkl_tokenizer *t, const char *text, uint8_t type) {
    int32_t id = vkl_tokenizer_find(t, text, strlen(text));
    if (id >= 0) t->types[id] = type;
}

/* llama.cpp overrides some token types by their text, whatever the file says; the type decides whether a token is
 * split out of text without parse_special (user-defined) or only with it (control). */
static void fix_token_types(vkl_tokenizer *t, const vkl_gguf *g) {
    /* End-of-generation markers are control tokens. */
    static const char *const eog[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
                                      "<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>",
                                      "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>",
                                      "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~["};
    for (size_t i = 0; i < VKL_ARRAY_LEN(eog); i++) set_type(t, eog[i], VKL_TOKEN_CONTROL);
    /* So are fill-in-the-middle markers, unless the file names that marker's id. */
    static const struct {
        const char *key, *old_key, *names;
    } fim[] = {
        {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id",
         "<|fim_prefix|> <fim-prefix> <fim_prefix> <｜fim▁begin｜> <PRE> ▁<PRE> <|code_prefix|> <|prefix|>"},
        {"tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id",
         "<|fim_suffix|> <fim-suffix> <fim_suffix> <｜fim▁hole｜> <SUF> ▁<SUF> <|code_suffix|> <|suffix|>"},
        {"tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id",
         "<|fim_middle|> <fim-middle> <fim_middle> <｜fim▁end｜> <MID> ▁<MID> <|code_middle|> <|middle|>"},
        {"tokenizer.ggml.fim_pad_token_id", NULL, "<|fim_pad|> <fim-pad> <fim_pad> <PAD> [PAD]"},
        {"tokenizer.ggml.fim_rep_token_id", NULL, "<|fim_repo|> <|repo_name|> <fim-repo> <REPO> <reponame>"},
        {"tokenizer.ggml.fim_sep_token_id", NULL, "<|file_sep|>"},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(fim); i++) {
        if (vkl_gguf_get(g, fim[i].key) || (fim[i].old_key && vkl_gguf_get(g, fim[i].old_key))) continue;
        char name[64];
        for (const char *p = fim[i].names; (p = next_name(p, name, sizeof(name)));)
            set_type(t, name, VKL_TOKEN_CONTROL);
    }
    /* gpt-oss: these markers always render, as user-defined tokens. */
    static const char *const oss[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(oss); i++) set_type(t, oss[i], VKL_TOKEN_USER_DEFINED);
#define HAS(s) (vkl_tokenizer_find(t, s, strlen(s)) >= 0)
    /* o200k_harmony and solar-open end a message, not the generation, with <|end|>. */
    if (HAS("<|end|>") && ((HAS("<|return|>") && HAS("<|call|>")) || (HAS("<|calls|>") && HAS("<|flush|>"))))
        set_type(t, "<|end|>", VKL_TOKEN_USER_DEFINED);
    /* Gemma 4 (and paddleocr): </s> is plain text. */
    if (HAS("<|tool_response>") && HAS("</s>")) set_type(t, "</s>", VKL_TOKEN_NORMAL);
#undef HAS
}

/* Per-model strip flags (llama.cpp sets them by name: GGUF has no field for them): a token with LSTRIP swallows the
 * whitespace before it when it is split out of text, one with RSTRIP the whitespace after it. */
enum { STRIP_LEFT = 1, STRIP_RIGHT = 2 };

static void set_strip(vkl_tokenizer *t, const char *text, uint8_t flag, bool on) {
    int32_t id = vkl_tokenizer_find(t, text, strlen(text));
    if (id >= 0) t->strip[id] = on ? (t->strip[id] | flag) : (t->strip[id] & ~flag);
}

static bool contains(const char *s, const char *needle) { return s && strstr(s, needle); }
static bool contains_ci(const char *s, const char *needle) {
    size_t n = strlen(needle);
    for (; s && *s; s++)
        if (!strncasecmp(s, needle, n)) return true;
    return false;
}

static void set_strip_flags(vkl_tokenizer *t, const vkl_gguf *g) {
    const char *name = vkl_gguf_get_str(g, "general.name");
    const char *arch = vkl_gguf_get_str(g, "general.architecture");
    const char *pre = vkl_gguf_get_str(g, KEY_PRE);
    t->strip = vkl_calloc((size_t)t->n_vocab, 1);
    if (contains(pre, "jina-v2-de") || contains(pre, "jina-v2-es") || contains(pre, "jina-v2-code") ||
        contains(arch, "nomic-bert-moe") || contains(arch, "jina-bert-v3")) {
        set_strip(t, "<mask>", STRIP_LEFT, true);
    } else if (contains_ci(name, "phi-3") || contains_ci(name, "phi3")) {
        for (size_t k = 0; k < t->n_special; k++) t->strip[t->special[k]] |= STRIP_RIGHT;
        set_strip(t, "</s>", STRIP_RIGHT, true);
        set_strip(t, "<unk>", STRIP_RIGHT, false);
        set_strip(t, "<s>", STRIP_RIGHT, false);
        set_strip(t, "<|endoftext|>", STRIP_RIGHT, false);
    } else if (contains_ci(name, "modern-bert")) {
        set_strip(t, "[MASK]", STRIP_LEFT, true);
    }
}

void tok_build_byte_tokens(vkl_tokenizer *t) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        if (t->kind == VKL_TOKENIZER_SPM || !t->byte_encode) {
            char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
            char raw = (char)b;
            int32_t id = vkl_tokenizer_find(t, name, 6);
            /* SPM also takes a token spelled as the byte itself; BPE over UTF-8 only <0xNN> */
            t->byte_tok[b] = id >= 0 || t->kind != VKL_TOKENIZER_SPM ? id : vkl_tokenizer_find(t, &raw, 1);
        } else {
            char u[4];
            size_t n = vkl_utf8_encode(vkl_gpt2_byte_to_cpt((uint8_t)b), u);
            t->byte_tok[b] = vkl_tokenizer_find(t, u, n);
        }
    }
}

vkl_status vkl_tokenizer_load(const vkl_gguf *g, vkl_tokenizer **out, vkl_err *err) {
    *out = NULL;
    vkl_tokenizer *t = vkl_calloc(1, sizeof(*t));
    t->bos = t->eos = t->eot = t->unk = t->pad = -1;
    const char *name = gguf_name(g);

    const vkl_gguf_value *mv = vkl_gguf_get(g, KEY_MODEL);
    if (!mv || mv->type != VKL_GGUF_STRING) {
        if (!mv)
            vkl_err_set(err, VKL_ERR_INPUT,
                        "tokenizer: %s: %s: missing (expected \"llama\", \"gpt2\" or \"gemma4\"; the file has no "
                        "vocabulary)",
                        name, KEY_MODEL);
        else
            vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: expected a string, got %s", name, KEY_MODEL,
                        vkl_gguf_type_name(mv->type));
        goto fail;
    }
    const char *model = mv->v.str.str;
    if (!strcmp(model, "llama")) {
        t->kind = VKL_TOKENIZER_SPM;
        t->add_bos = true;
        t->add_space_prefix = true;
    } else if (!strcmp(model, "gpt2") || !strcmp(model, "gemma4")) {
        t->kind = VKL_TOKENIZER_BPE;
        t->byte_encode = true;
    } else {
        vkl_err_set(err, VKL_ERR_INPUT,
                    "tokenizer: %s: %s: unsupported tokenizer \"%.64s\" (supported: \"llama\" (SentencePiece), "
                    "\"gpt2\" (byte-level BPE), \"gemma4\" (BPE over UTF-8 with SentencePiece spaces))",
                    name, KEY_MODEL, model);
        goto fail;
    }
    t->model_name = vkl_strdup(model);

    const vkl_gguf_value *tv;
    if (!get_array(g, KEY_TOKENS, VKL_GGUF_STRING, true, "an array of strings", &tv, err)) goto fail;
    if (tv->v.arr.count == 0 || tv->v.arr.count > MAX_VOCAB) {
        vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: %llu tokens, expected 1..%d", name, KEY_TOKENS,
                    (unsigned long long)tv->v.arr.count, MAX_VOCAB);
        goto fail;
    }
    int32_t V = (int32_t)tv->v.arr.count;
    t->n_vocab = V;
    const vkl_gguf_str *strs = tv->v.arr.data;
    uint64_t arena_size = 0;
    for (int32_t i = 0; i < V; i++) {
        if (strs[i].len > UINT32_MAX / 2) {
            vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s[%d]: %llu bytes long, too long for a token", name,
                        KEY_TOKENS, i, (unsigned long long)strs[i].len);
            goto fail;
        }
        arena_size += strs[i].len + 1; /* bounded by the file: each string was read from it */
    }
    t->arena = vkl_malloc(arena_size);
    t->text_off = vkl_malloc((size_t)V * sizeof(uint64_t));
    t->text_len = vkl_malloc((size_t)V * sizeof(uint32_t));
    t->types = vkl_malloc((size_t)V);
    uint64_t off = 0;
    for (int32_t i = 0; i < V; i++) {
        memcpy(t->arena + off, strs[i].str, strs[i].len);
        t->arena[off + strs[i].len] = 0;
        t->text_off[i] = off;
        t->text_len[i] = (uint32_t)strs[i].len;
        if (t->text_len[i] > t->max_token_len) t->max_token_len = t->text_len[i];
        off += strs[i].len + 1;
    }

    const vkl_gguf_value *yv;
    if (!get_array(g, KEY_TYPES, VKL_GGUF_INT32, false, "an array of int32", &yv, err)) goto fail;
    if (yv && yv->v.arr.count != (uint64_t)V) {
        vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: %llu entries, expected one per token (%d)", name,
                    KEY_TYPES, (unsigned long long)yv->v.arr.count, V);
        goto fail;
    }
    for (int32_t i = 0; i < V; i++) {
        int32_t ty = yv ? ((const int32_t *)yv->v.arr.data)[i] : VKL_TOKEN_NORMAL;
        if (ty < 0 || ty > VKL_TOKEN_BYTE) {
            vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s[%d]: %d, expected a token type 0..6", name, KEY_TYPES,
                        i, ty);
            goto fail;
        }
        t->types[i] = (uint8_t)ty;
    }

    if (t->kind == VKL_TOKENIZER_SPM) {
        const vkl_gguf_value *sv;
        if (!get_array(g, KEY_SCORES, VKL_GGUF_FLOAT32, true, "an array of float32, one score per token", &sv, err))
            goto fail;
        if (sv->v.arr.count != (uint64_t)V) {
            vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s: %llu entries, expected one per token (%d)", name,
                        KEY_SCORES, (unsigned long long)sv->v.arr.count, V);
            goto fail;
        }
        t->scores = vkl_malloc((size_t)V * sizeof(float));
        memcpy(t->scores, sv->v.arr.data, (size_t)V * sizeof(float));
    }

    uint64_t cap = tok_table_size_for((uint64_t)V);
    t->map = vkl_malloc(cap * sizeof(int32_t));
    memset(t->map, 0xff, cap * sizeof(int32_t));
    t->map_mask = cap - 1;
    for (int32_t i = 0; i < V; i++) tok_map_insert(t, i);

    if (t->kind == VKL_TOKENIZER_BPE) {
        /* Gemma 4's model implies its pre-tokenizer (the file has no tokenizer.ggml.pre) */
        if (configure_pre(t, g, strcmp(model, "gemma4") ? NULL : "gemma4", err) || load_merges(t, g, err)) goto fail;
    } else {
        t->bos = 1 < V ? 1 : -1; /* SentencePiece's fixed layout: <unk> <s> </s> */
        t->eos = 2 < V ? 2 : -1;
        t->unk = 0;
    }

    if (!get_opt_id(g, "tokenizer.ggml.bos_token_id", V, &t->bos, err) ||
        !get_opt_id(g, "tokenizer.ggml.eos_token_id", V, &t->eos, err) ||
        !get_opt_id(g, "tokenizer.ggml.eot_token_id", V, &t->eot, err) ||
        !get_opt_id(g, "tokenizer.ggml.unknown_token_id", V, &t->unk, err) ||
        !get_opt_id(g, "tokenizer.ggml.padding_token_id", V, &t->pad, err) ||
        !get_opt_bool(g, "tokenizer.ggml.add_bos_token", &t->add_bos, err) ||
        !get_opt_bool(g, "tokenizer.ggml.add_eos_token", &t->add_eos, err) ||
        !get_opt_bool(g, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix, err))
        goto fail;
    if (t->kind == VKL_TOKENIZER_BPE) t->add_space_prefix = false; /* only SentencePiece adds one */
    if (t->pre == VKL_PRETOK_NEWLINES && t->kind == VKL_TOKENIZER_BPE) t->add_bos = true; /* as llama.cpp forces */
    if (t->eot < 0) tok_find_eot(t);
    fix_token_types(t, g);

    t->special = vkl_malloc((size_t)V * sizeof(int32_t));
    for (int32_t i = 0; i < V; i++)
        if (is_special_type(t->types[i]) && t->text_len[i] > 0) {
            t->special[t->n_special++] = i;
            t->special_first_byte[(uint8_t)tok_text(t, i)[0]] = true;
        }
    vkl_os_qsort_r(t->special, t->n_special, sizeof(int32_t), cmp_special, t);
    set_strip_flags(t, g);

    tok_build_byte_tokens(t);
    if (t->kind == VKL_TOKENIZER_SPM) build_pair_bits(t);
    *out = t;
    return VKL_OK;
fail:
    vkl_tokenizer_free(t);
    return VKL_ERR_INPUT;
}

void vkl_tokenizer_free(vkl_tokenizer *t) {
    if (!t) return;
    free(t->model_name);
    free(t->pre_name);
    free(t->arena);
    free(t->text_off);
    free(t->text_len);
    free(t->scores);
    free(t->types);
    free(t->map);
    free(t->merges);
    free(t->special);
    free(t->pair_bits);
    free(t->strip);
    vkl_hf_pipeline_free(t->hf);
    free(t);
}

/* ---- shared encoder state ---- */

void tok_push_id(id_vec *o, int32_t id) {
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 64;
        o->v = vkl_realloc(o->v, o->cap * sizeof(int32_t));
    }
    o->v[o->n++] = id;
}

void tok_session_free(session *s) {
    free(s->sym);
    free(s->heap);
    free(s->buf);
    free(s->cpts);
    free(s->lens);
}

void *tok_grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    *cap = c;
    return vkl_realloc(p, c * elem);
}

static bool bigram_before(const bigram *a, const bigram *b) {
    return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static void heap_push(session *s, bigram b) {
    s->heap = tok_grow(s->heap, &s->heap_cap, s->heap_n + 1, sizeof(bigram));
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&b, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = b;
}

static bigram heap_pop(session *s) {
    bigram top = s->heap[0];
    bigram last = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bigram_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!bigram_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* Pop candidates until none is left, merging each one still current; add_pair pushes new candidates. */
typedef void (*add_pair_fn)(const vkl_tokenizer *t, session *s, int32_t left, int32_t right);

static void merge_all(const vkl_tokenizer *t, session *s, add_pair_fn add_pair) {
    while (s->heap_n) {
        bigram b = heap_pop(s);
        symbol *l = &s->sym[b.left], *r = &s->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue;
        l->n += r->n;
        l->id = b.result;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s->sym[r->next].prev = b.left;
        add_pair(t, s, l->prev, b.left);
        add_pair(t, s, b.left, l->next);
    }
}

static void init_symbols(session *s, size_t count) {
    s->sym = tok_grow(s->sym, &s->sym_cap, count, sizeof(symbol));
    s->heap_n = 0;
}

/* ---- SPM ---- */

static void spm_add_pair(const vkl_tokenizer *t, session *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const symbol *l = &s->sym[left], *r = &s->sym[right];
    int32_t id = vkl_tokenizer_find(t, s->buf + l->start, l->n + r->n);
    if (id < 0) return;
    heap_push(s, (bigram){t->scores[id], left, right, l->n + r->n, id});
}

static vkl_status spm_byte(const vkl_tokenizer *t, uint8_t b, id_vec *o, vkl_err *err) {
    int32_t id = t->byte_tok[b] >= 0 ? t->byte_tok[b] : t->unk;
    if (id < 0)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "tokenizer: the vocabulary has no token for byte 0x%02X (<0x%02X>) and no unknown token",
                           b, b);
    tok_push_id(o, id);
    return VKL_OK;
}

static vkl_status spm_encode(const vkl_tokenizer *t, session *s, const char *text, size_t len, bool space_prefix,
                             id_vec *o, vkl_err *err) {
    /* Escape: a leading space if asked, and every ' ' as U+2581 (3 bytes). */
    s->buf = tok_grow(s->buf, &s->buf_cap, 3 * len + 3, 1);
    size_t m = 0;
    if (space_prefix) {
        memcpy(s->buf, "\xE2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s->buf + m, "\xE2\x96\x81", 3);
            m += 3;
        } else {
            s->buf[m++] = text[i];
        }
    }
    if (m > MAX_TEXT) return vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: text of %zu bytes is too long", len);
    if (m == 0) return VKL_OK;

    init_symbols(s, m);
    int32_t count = 0;
    for (size_t i = 0; i < m;) {
        size_t n = VKL_MIN(vkl_utf8_len((uint8_t)s->buf[i]), m - i);
        s->sym[count] = (symbol){count - 1, count + 1, (uint32_t)i, (uint32_t)n, -1};
        count++;
        i += n;
    }
    s->sym[count - 1].next = -1;

    for (int32_t seg = 0; seg < count;) {
        /* The segment ends before the first pair that no token contains. */
        int32_t end = seg + 1;
        while (end < count && pair_possible(t, s->buf + s->sym[end - 1].start, s->sym[end - 1].n, s->sym[end].n))
            end++;
        s->sym[seg].prev = -1;
        s->sym[end - 1].next = -1;
        for (int32_t i = seg + 1; i < end; i++) spm_add_pair(t, s, i - 1, i);
        merge_all(t, s, spm_add_pair);

        for (int32_t i = seg; i >= 0; i = s->sym[i].next) {
            const symbol *y = &s->sym[i];
            int32_t id = y->id >= 0 ? y->id : vkl_tokenizer_find(t, s->buf + y->start, y->n);
            if (id >= 0) {
                tok_push_id(o, id);
                continue;
            }
            for (uint32_t k = 0; k < y->n; k++)
                if (spm_byte(t, (uint8_t)s->buf[y->start + k], o, err)) return err->status;
        }
        seg = end;
    }
    return VKL_OK;
}

/* ---- BPE ---- */

static void bpe_add_pair(const vkl_tokenizer *t, session *s, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const symbol *l = &s->sym[left], *r = &s->sym[right];
    if (l->id < 0 || r->id < 0) return;
    const merge_slot *mg = merge_find(t, l->id, r->id);
    if (!mg) return;
    heap_push(s, (bigram){-(double)mg->rank, left, right, l->n + r->n, mg->result});
}

/* tokenizer.json's BPE word (Hugging Face's merge_word): one symbol per character (byte-level: per byte, spelled
 * as its GPT-2 character); a character that is no token becomes its <0xNN> byte tokens when the model has
 * byte_fallback and all of them exist, else the unknown token (a run fused into one with fuse_unk), else nothing.
 * Byte tokens and the unknown token take part in the merges like any symbol. */
static void hf_word(const vkl_tokenizer *t, session *s, const uint8_t *w, size_t n, id_vec *o) {
    init_symbols(s, 2 * n + 1); /* a byte is one symbol, or two <0xNN> of its GPT-2 character */
    int32_t count = 0;
    bool unk_open = false; /* the last symbol is an unknown token that a following one may fuse into */
    for (size_t i = 0; i < n;) {
        size_t k = t->byte_encode ? 1 : VKL_MIN(vkl_utf8_len(w[i]), n - i);
        char u[4];
        const char *cs = (const char *)w + i;
        size_t cn = k;
        if (t->byte_encode) {
            cn = vkl_utf8_encode(vkl_gpt2_byte_to_cpt(w[i]), u);
            cs = u;
        }
        int32_t id = t->byte_encode ? t->byte_tok[w[i]] : vkl_tokenizer_find(t, cs, cn);
        if (id >= 0) {
            s->sym[count] = (symbol){count - 1, count + 1, (uint32_t)i, (uint32_t)k, id};
            count++;
            unk_open = false;
        } else {
            /* <0xNN> of each byte of the character as the vocabulary spells it (byte_tok holds them unless the
             * words are in GPT-2's byte characters) */
            int32_t fb[4];
            bool bytes = t->byte_fallback;
            for (size_t j = 0; j < cn && bytes; j++) {
                static const char hex[] = "0123456789ABCDEF";
                uint8_t b = (uint8_t)cs[j];
                char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
                fb[j] = t->byte_encode ? vkl_tokenizer_find(t, name, 6) : t->byte_tok[b];
                bytes = fb[j] >= 0;
            }
            if (bytes) {
                for (size_t j = 0; j < cn; j++) {
                    s->sym[count] = (symbol){count - 1, count + 1, (uint32_t)i, 1, fb[j]};
                    count++;
                }
                unk_open = false;
            } else if (t->unk >= 0) {
                if (unk_open && t->fuse_unk) {
                    s->sym[count - 1].n += (uint32_t)k;
                } else {
                    s->sym[count] = (symbol){count - 1, count + 1, (uint32_t)i, (uint32_t)k, t->unk};
                    count++;
                }
                unk_open = true;
            }
        }
        i += k;
    }
    if (count == 0) return;
    s->sym[count - 1].next = -1;
    for (int32_t i = 1; i < count; i++) bpe_add_pair(t, s, i - 1, i);
    merge_all(t, s, bpe_add_pair);
    for (int32_t i = 0; i >= 0; i = s->sym[i].next) tok_push_id(o, s->sym[i].id);
}

/* One pre-tokenized word, UTF-8 bytes w[0..n) (n >= 1). Byte-level BPE starts from one symbol per byte (its GPT-2
 * character), BPE over UTF-8 from one symbol per character. */
void tok_bpe_word(const vkl_tokenizer *t, session *s, const uint8_t *w, size_t n, id_vec *o) {
    /* A word that is a token stays whole: always with ignore_merges, and Gemma 4's runs of newlines. */
    bool newlines = t->pre == VKL_PRETOK_NEWLINES && w[0] == '\n';
    if (t->ignore_merges || newlines) {
        const char *spelled = (const char *)w;
        size_t m = n;
        if (t->byte_encode) {
            s->buf = tok_grow(s->buf, &s->buf_cap, 2 * n, 1);
            m = 0;
            for (size_t i = 0; i < n; i++) m += vkl_utf8_encode(vkl_gpt2_byte_to_cpt(w[i]), s->buf + m);
            spelled = s->buf;
        }
        int32_t id = vkl_tokenizer_find(t, spelled, m);
        if (id >= 0) {
            tok_push_id(o, id);
            return;
        }
    }
    if (t->hf_bpe) {
        hf_word(t, s, w, n, o);
        return;
    }
    init_symbols(s, n);
    int32_t count = 0;
    for (size_t i = 0; i < n; count++) {
        size_t k = t->byte_encode ? 1 : VKL_MIN(vkl_utf8_len(w[i]), n - i);
        int32_t id = t->byte_encode ? t->byte_tok[w[i]] : vkl_tokenizer_find(t, (const char *)w + i, k);
        s->sym[count] = (symbol){count - 1, count + 1, (uint32_t)i, (uint32_t)k, id};
        i += k;
    }
    s->sym[count - 1].next = -1;
    for (int32_t i = 1; i < count; i++) bpe_add_pair(t, s, i - 1, i);
    merge_all(t, s, bpe_add_pair);
    for (int32_t i = 0; i >= 0; i = s->sym[i].next) {
        const symbol *y = &s->sym[i];
        if (y->id >= 0) {
            tok_push_id(o, y->id);
            continue;
        }
        /* Only a single character can lack a token (merges always produce tokens). As llama.cpp does, spell it
         * in byte tokens and drop the bytes that have none: byte-level BPE tries each UTF-8 byte of the byte's
         * GPT-2 character as a one-byte token, BPE over UTF-8 the <0xNN> token of each byte. */
        if (!t->byte_encode) {
            for (uint32_t j = 0; j < y->n; j++)
                if (t->byte_tok[w[y->start + j]] >= 0) tok_push_id(o, t->byte_tok[w[y->start + j]]);
            continue;
        }
        char u[4];
        size_t k = vkl_utf8_encode(vkl_gpt2_byte_to_cpt(w[y->start]), u);
        for (size_t j = 0; j < k; j++) {
            int32_t id = vkl_tokenizer_find(t, u + j, 1);
            if (id >= 0) tok_push_id(o, id);
        }
    }
}

static vkl_status bpe_encode(const vkl_tokenizer *t, session *s, const char *text, size_t len, id_vec *o,
                             vkl_err *err) {
    (void)err;
    s->cpts = tok_grow(s->cpts, &s->cpt_cap, len, sizeof(uint32_t));
    size_t lens_cap = s->cpt_cap;
    s->lens = vkl_realloc(s->lens, lens_cap * sizeof(size_t));
    size_t nc = vkl_utf8_to_cpts(text, len, s->cpts);
    /* Replacing the code point equals replacing the byte first: neither ' ' nor U+2581's lead byte can complete
     * a broken sequence before it. */
    if (t->escape_spaces)
        for (size_t i = 0; i < nc; i++)
            if (s->cpts[i] == ' ') s->cpts[i] = 0x2581;
    size_t nw = vkl_pretokenize(t->pre, s->cpts, nc, s->lens);
    uint8_t *word = NULL;
    size_t word_cap = 0, c = 0;
    for (size_t i = 0; i < nw; i++) {
        /* Re-encode the word's code points: invalid input bytes became U+FFFD, as in llama.cpp. */
        word = tok_grow(word, &word_cap, 4 * s->lens[i], 1);
        size_t m = 0;
        for (size_t k = 0; k < s->lens[i]; k++) m += vkl_utf8_encode(s->cpts[c + k], (char *)word + m);
        c += s->lens[i];
        tok_bpe_word(t, s, word, m, o);
    }
    free(word);
    return VKL_OK;
}

/* ---- special tokens ---- */

typedef struct {
    int32_t id; /* -1: raw text */
    size_t off, len;
} fragment;

typedef struct {
    fragment *v;
    size_t n, cap;
} frag_vec;

static void push_frag(frag_vec *f, fragment x) {
    f->v = tok_grow(f->v, &f->cap, f->n + 1, sizeof(fragment));
    f->v[f->n++] = x;
}

/* isspace() in the C locale, which llama.cpp strips with. */
static bool is_c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* llama.cpp's tokenizer_st_partition: for each special token, longest text first, split every raw fragment at
 * each occurrence (the neighbouring whitespace goes with a token that strips it). User-defined tokens are split
 * out always, control and unknown ones only with parse_special. Tokens that do not occur anywhere in the text are
 * skipped cheaply first. */
static void partition(const vkl_tokenizer *t, const char *text, size_t len, bool parse_special, frag_vec *out) {
    out->n = 0;
    push_frag(out, (fragment){-1, 0, len});
    bool any = false;
    for (size_t i = 0; i < len && !any; i++) any = t->special_first_byte[(uint8_t)text[i]];
    if (!any) return;

    bool *occurs = vkl_calloc(t->n_special, 1);
    for (size_t i = 0; i < len; i++) {
        if (!t->special_first_byte[(uint8_t)text[i]]) continue;
        for (size_t k = 0; k < t->n_special; k++) {
            int32_t id = t->special[k];
            size_t n = t->text_len[id];
            if (!occurs[k] && n <= len - i && !memcmp(text + i, tok_text(t, id), n)) occurs[k] = true;
        }
    }
    frag_vec next = {0};
    for (size_t k = 0; k < t->n_special; k++) {
        int32_t id = t->special[k];
        uint8_t ty = t->types[id];
        if (!occurs[k] || (!parse_special && (ty == VKL_TOKEN_CONTROL || ty == VKL_TOKEN_UNKNOWN))) continue;
        const char *st = tok_text(t, id);
        size_t sn = t->text_len[id];
        next.n = 0;
        for (size_t f = 0; f < out->n; f++) {
            fragment fr = out->v[f];
            if (fr.id >= 0) {
                push_frag(&next, fr);
                continue;
            }
            size_t pos = fr.off, end = fr.off + fr.len;
            for (;;) {
                const char *hit = end - pos >= sn ? vkl_os_memmem(text + pos, end - pos, st, sn) : NULL;
                if (!hit) break;
                size_t at = (size_t)(hit - text), left_end = at;
                if (t->strip[id] & STRIP_LEFT)
                    while (left_end > pos && is_c_space(text[left_end - 1])) left_end--;
                if (left_end > pos) push_frag(&next, (fragment){-1, pos, left_end - pos});
                push_frag(&next, (fragment){id, at, sn});
                pos = at + sn;
                if (t->strip[id] & STRIP_RIGHT)
                    while (pos < end && is_c_space(text[pos])) pos++;
            }
            if (pos < end) push_frag(&next, (fragment){-1, pos, end - pos});
        }
        frag_vec tmp = *out;
        *out = next;
        next = tmp;
    }
    free(next.v);
    free(occurs);
}

vkl_status vkl_tokenize(const vkl_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                        int32_t **ids, size_t *n, vkl_err *err) {
    *ids = NULL;
    *n = 0;
    if (len > MAX_TEXT / 3)
        return vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: text of %zu bytes is too long (at most %d bytes at once)",
                           len, MAX_TEXT / 3);
    if (len && !text) return vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: NULL text of %zu bytes", len);
    id_vec o = {0};
    session s = {0};
    frag_vec frags = {0};
    vkl_status st = VKL_OK;

    if (t->hf) {
        st = vkl_hf_tokenize(t, text, len, add_bos, parse_special, &o, err);
        goto done;
    }
    if (add_bos && t->add_bos && t->bos >= 0) tok_push_id(&o, t->bos);
    if (len) partition(t, text, len, parse_special, &frags);
    bool prev_special = true; /* SPM puts a space in front of the text and of text after a special token */
    for (size_t f = 0; f < frags.n && !st; f++) {
        const fragment *fr = &frags.v[f];
        if (fr->id >= 0) {
            tok_push_id(&o, fr->id);
            prev_special = true;
        } else if (t->kind == VKL_TOKENIZER_SPM) {
            st = spm_encode(t, &s, text + fr->off, fr->len, t->add_space_prefix && prev_special, &o, err);
            prev_special = false;
        } else {
            st = bpe_encode(t, &s, text + fr->off, fr->len, &o, err);
        }
    }
    if (!st && add_bos && t->add_eos && t->eos >= 0) tok_push_id(&o, t->eos);
done:
    free(frags.v);
    tok_session_free(&s);
    if (st) {
        free(o.v);
        return st;
    }
    *ids = o.v;
    *n = o.n;
    return VKL_OK;
}

/* ---- decoding ---- */

static size_t put(char *buf, size_t cap, size_t at, const char *s, size_t n) {
    if (at < cap) memcpy(buf + at, s, VKL_MIN(n, cap - at));
    return at + n;
}

size_t vkl_token_to_piece(const vkl_tokenizer *t, int32_t id, bool render_special, char *buf, size_t cap) {
    if (id < 0 || id >= t->n_vocab) return 0;
    const char *s = tok_text(t, id);
    size_t n = t->text_len[id];
    switch (t->types[id]) {
    case VKL_TOKEN_CONTROL:
    case VKL_TOKEN_UNKNOWN: return render_special ? put(buf, cap, 0, s, n) : 0;
    case VKL_TOKEN_USER_DEFINED: return put(buf, cap, 0, s, n);
    case VKL_TOKEN_NORMAL: break;
    case VKL_TOKEN_BYTE:
        if ((t->kind == VKL_TOKENIZER_SPM || !t->byte_encode) && n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') {
            char b = (char)strtol((char[3]){s[3], s[4], 0}, NULL, 16);
            return put(buf, cap, 0, &b, 1);
        }
        return 0;
    default: return 0; /* unused / undefined tokens render as nothing, as in llama.cpp */
    }
    size_t at = 0;
    if (t->kind == VKL_TOKENIZER_SPM || t->escape_spaces) {
        for (size_t i = 0; i < n;) {
            if (i + 3 <= n && !memcmp(s + i, "\xE2\x96\x81", 3)) {
                at = put(buf, cap, at, " ", 1);
                i += 3;
            } else {
                at = put(buf, cap, at, s + i, 1);
                i++;
            }
        }
        return at;
    }
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t c = vkl_utf8_decode((const uint8_t *)s + i, n - i, &adv);
        int b = vkl_gpt2_cpt_to_byte(c);
        if (b >= 0) {
            char ch = (char)b;
            at = put(buf, cap, at, &ch, 1);
        } else {
            at = put(buf, cap, at, s + i, adv); /* not a GPT-2 byte character: keep it as it is */
        }
        i += adv;
    }
    return at;
}

vkl_status vkl_detokenize(const vkl_tokenizer *t, const int32_t *ids, size_t n, bool render_special, char **text,
                          size_t *len, vkl_err *err) {
    *text = NULL;
    *len = 0;
    if (t->hf) return vkl_hf_detokenize(t, ids, n, !render_special, text, len, err);
    size_t cap = 256, at = 0;
    char *out = vkl_malloc(cap);
    bool strip = t->kind == VKL_TOKENIZER_SPM && t->add_space_prefix;
    bool remove_space = strip;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            free(out);
            return vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: token %zu: id %d is outside the vocabulary (0..%d)", i,
                               ids[i], t->n_vocab - 1);
        }
        size_t need = vkl_token_to_piece(t, ids[i], render_special, NULL, 0);
        if (at + need + 1 > cap) {
            while (at + need + 1 > cap) cap *= 2;
            out = vkl_realloc(out, cap);
        }
        vkl_token_to_piece(t, ids[i], render_special, out + at, need);
        /* Undo the space the encoder put in front of the text and of text following a special token. */
        if (remove_space && need && out[at] == ' ') {
            memmove(out + at, out + at + 1, need - 1);
            need--;
        }
        at += need;
        remove_space = strip && is_special_type(t->types[ids[i]]);
    }
    out[at] = 0;
    *text = out;
    *len = at;
    return VKL_OK;
}

/* ---- accessors ---- */

vkl_tokenizer_kind vkl_tokenizer_kind_of(const vkl_tokenizer *t) { return t->kind; }
const char *vkl_tokenizer_model_name(const vkl_tokenizer *t) { return t->model_name; }
const char *vkl_tokenizer_pre_name(const vkl_tokenizer *t) { return t->pre_name; }
int32_t vkl_tokenizer_n_vocab(const vkl_tokenizer *t) { return t->n_vocab; }
int32_t vkl_tokenizer_bos(const vkl_tokenizer *t) { return t->bos; }
int32_t vkl_tokenizer_eos(const vkl_tokenizer *t) { return t->eos; }
int32_t vkl_tokenizer_eot(const vkl_tokenizer *t) { return t->eot; }
int32_t vkl_tokenizer_unk(const vkl_tokenizer *t) { return t->unk; }
int32_t vkl_tokenizer_pad(const vkl_tokenizer *t) { return t->pad; }
bool vkl_tokenizer_adds_bos(const vkl_tokenizer *t) { return t->add_bos && t->bos >= 0; }
bool vkl_tokenizer_adds_eos(const vkl_tokenizer *t) { return t->add_eos && t->eos >= 0; }

const char *vkl_tokenizer_token_text(const vkl_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab) return NULL;
    if (len) *len = t->text_len[id];
    return tok_text(t, id);
}

vkl_token_type vkl_tokenizer_token_type(const vkl_tokenizer *t, int32_t id) {
    return id < 0 || id >= t->n_vocab ? VKL_TOKEN_UNDEFINED : (vkl_token_type)t->types[id];
}

unsigned vkl_tokenizer_token_strip(const vkl_tokenizer *t, int32_t id) {
    return id < 0 || id >= t->n_vocab ? 0u : t->strip[id];
}
