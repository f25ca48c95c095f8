/* Internal to the tokenizer: the vkl_tokenizer struct and the encoder pieces that src/tokenizer.c (GGUF vocabularies,
 * the merge engines) and src/tokenizer_hf.c (tokenizer.json: loading, normalizers, pre-tokenizers, decoders) share. */
#ifndef VKLORA_TOKENIZER_INTERNAL_H
#define VKLORA_TOKENIZER_INTERNAL_H

#include "unicode.h"
#include "vklora/tokenizer.h"

/* Token counts and lengths are int32 in the encoders; this also bounds host memory by the file's size. */
#define MAX_VOCAB 0x7FFFFFF0
#define MAX_TEXT 0x7FFFFFF0

typedef struct vkl_hf_pipeline vkl_hf_pipeline; /* src/tokenizer_hf.c */

typedef struct {
    uint64_t key; /* left id << 32 | right id; UINT64_MAX = empty slot */
    int32_t rank;
    int32_t result;
} merge_slot;

struct vkl_tokenizer {
    vkl_tokenizer_kind kind;
    vkl_pretok pre; /* BPE only */
    char *model_name;
    char *pre_name;
    int32_t n_vocab;
    char *arena;        /* every token text, NUL-terminated */
    uint64_t *text_off; /* (V) offset of each token's text in arena */
    uint32_t *text_len; /* (V) */
    float *scores;      /* (V) SPM only */
    uint8_t *types;     /* (V) vkl_token_type */
    uint32_t max_token_len;
    int32_t *map; /* text -> id, open addressing, -1 = empty */
    uint64_t map_mask;
    merge_slot *merges; /* BPE only */
    uint64_t merge_mask;
    /* SPM: the <0xNN> token of each byte; BPE: the token spelled as GPT-2's code point for the byte. */
    int32_t byte_tok[256];
    /* SPM: a Bloom-style bit set of the adjacent character pairs inside any token. Where the text has a pair that
     * is in no token, no merge can ever join across it, so the text is encoded in independent segments there
     * (same result, but small heaps that stay in cache). A false "present" only costs a missed cut. */
    uint64_t *pair_bits;
    uint64_t pair_mask;
    int32_t *special; /* control / user-defined / unknown token ids, longest text first */
    size_t n_special;
    bool special_first_byte[256];
    uint8_t *strip; /* (V) STRIP_LEFT / STRIP_RIGHT of special tokens */
    int32_t bos, eos, eot, unk, pad;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
    bool byte_encode;   /* BPE: words are matched in GPT-2's byte characters (false: raw UTF-8, <0xNN> bytes) */
    bool escape_spaces; /* BPE: ' ' is spelled U+2581 in the vocabulary (Gemma 4) */
    /* tokenizer.json's BPE (Hugging Face semantics): a merge pair listed twice takes its last rank (HF builds a hash
     * map); a character that is no token becomes its <0xNN> tokens (byte_fallback) before merging, else the unknown
     * token (consecutive ones fused into one with fuse_unk), else nothing. */
    bool hf_bpe, byte_fallback, fuse_unk;
    vkl_hf_pipeline *hf;   /* loaded from tokenizer.json: vkl_tokenize / vkl_detokenize run its pipeline */
};

typedef struct {
    int32_t *v;
    size_t n, cap;
} id_vec;

typedef struct {
    int32_t prev, next;
    uint32_t start, n; /* bytes of the (escaped) text; n = 0 once merged into the left neighbour */
    int32_t id;        /* token of the symbol's text, -1 unknown (single characters are looked up at the end) */
} symbol;

typedef struct {
    double prio; /* higher first: SPM score, or -rank for BPE */
    int32_t left, right;
    uint32_t size; /* bytes of left + right when pushed, to detect stale candidates */
    int32_t result;
} bigram;

typedef struct {
    symbol *sym;
    size_t sym_cap;
    bigram *heap;
    size_t heap_n, heap_cap;
    char *buf; /* SPM: escaped text; BPE: the word in GPT-2 characters (ignore_merges lookup) */
    size_t buf_cap;
    uint32_t *cpts;
    size_t *lens;
    size_t cpt_cap;
} session;

void tok_push_id(id_vec *o, int32_t id);
void tok_session_free(session *s);
void *tok_grow(void *p, size_t *cap, size_t need, size_t elem);
uint64_t tok_table_size_for(uint64_t n);
void tok_map_insert(vkl_tokenizer *t, int32_t id);
void tok_merge_insert(vkl_tokenizer *t, int32_t left, int32_t right, int32_t rank, int32_t result);
void tok_build_byte_tokens(vkl_tokenizer *t);
/* EOT by its usual spellings (<|eot_id|>, <|im_end|>, <end_of_turn>, ...) when none is set. */
void tok_find_eot(vkl_tokenizer *t);
/* One pre-tokenized word w[0..n) (n >= 1) through the BPE merges; ids appended to o. */
void tok_bpe_word(const vkl_tokenizer *t, session *s, const uint8_t *w, size_t n, id_vec *o);

/* src/tokenizer_hf.c */
vkl_status vkl_hf_tokenize(const vkl_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                           id_vec *o, vkl_err *err);
vkl_status vkl_hf_detokenize(const vkl_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **text,
                             size_t *len, vkl_err *err);
void vkl_hf_pipeline_free(vkl_hf_pipeline *p);

#endif
