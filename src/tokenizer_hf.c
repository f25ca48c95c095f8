/* Hugging Face tokenizer.json (+ tokenizer_config.json) as a tokenizer source, token for token as Hugging Face's
 * Rust tokenizers library encodes and decodes: the file's parts mapped onto the BPE engine of src/tokenizer.c.
 *
 * tokenizer.json (the `tokenizers` library's serialization) holds a pipeline, run per encode:
 *   added tokens  added_tokens[]: {id, content, special, lstrip, rstrip, normalized, single_word}; split out of the
 *                 raw text first (normalized=false ones), then out of each normalized piece (normalized=true ones),
 *                 leftmost-longest, as HF's AddedVocabulary does. Special ones are kept as text when the caller
 *                 does not parse special tokens (HF's encode_special_tokens).
 *   normalizer    null | NFC | Replace{String} | Prepend | Sequence of these
 *   pre_tokenizer null | Split{Regex of a known pre-tokenizer, Isolated} | Split{String, any behavior} |
 *                 Digits | ByteLevel{add_prefix_space, use_regex} (last) | Metaspace | Sequence of these
 *   model         BPE: vocab {text: id}, merges ["a b"] or [["a","b"]], byte_fallback, fuse_unk, unk_token,
 *                 ignore_merges (WordPiece, Unigram, WordLevel are refused)
 *   post_processor TemplateProcessing | ByteLevel | RobertaProcessing | BertProcessing | Sequence: the ids put
 *                 before and after the text when special tokens are added
 *   decoder       ByteLevel | Replace{String} | ByteFallback | Fuse | Strip | Metaspace | Sequence
 * A Split regex is not compiled: it is recognised by its exact text and run by the matching hand-written splitter
 * of src/unicode.c (Llama 3, Qwen2/3, GPT-2, tekken, o200k), so an unknown regex is refused rather than
 * approximated.
 * tokenizer_config.json adds bos/eos/pad/unk tokens, add_bos_token / add_eos_token (for the tokenizer classes
 * whose transformers implementation rebuilds the post-processor from them) and chat_template. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "platform.h"
#include "tokenizer_internal.h"
#include "unicode.h"

enum { STRIP_LEFT = 1, STRIP_RIGHT = 2 }; /* as src/tokenizer.c's vkl_tokenizer_token_strip bits */

typedef enum { NORM_NFC, NORM_REPLACE, NORM_PREPEND } norm_kind;
typedef struct {
    norm_kind kind;
    uint32_t *from, *to; /* code points */
    size_t n_from, n_to;
} norm_step;

typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } split_behavior;
typedef enum { PRE_REGEX, PRE_STRING, PRE_DIGITS, PRE_BYTE_LEVEL, PRE_METASPACE } pre_kind;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } prepend_scheme;
typedef struct {
    pre_kind kind;
    vkl_pretok regex;       /* PRE_REGEX */
    uint32_t *pat;          /* PRE_STRING: the literal */
    size_t n_pat;
    split_behavior behavior; /* PRE_STRING, PRE_DIGITS (Isolated: one digit each, Contiguous: runs) */
    bool invert;             /* PRE_STRING: the pieces between matches are the delimiters */
    bool add_prefix_space;   /* PRE_BYTE_LEVEL */
    bool use_regex;          /* PRE_BYTE_LEVEL: GPT-2's regex */
    uint32_t replacement;    /* PRE_METASPACE */
    prepend_scheme prepend;  /* PRE_METASPACE */
    bool split;              /* PRE_METASPACE */
} pre_step;

typedef enum { DEC_BYTE_LEVEL, DEC_REPLACE, DEC_BYTE_FALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE } dec_kind;
typedef struct {
    dec_kind kind;
    char *from, *to; /* DEC_REPLACE (UTF-8) */
    size_t n_from, n_to;
    uint32_t content; /* DEC_STRIP: the character stripped; DEC_METASPACE: the replacement */
    size_t start, stop;
    prepend_scheme prepend;
} dec_step;

typedef struct {
    int32_t id;
    bool special, lstrip, rstrip, normalized, single_word;
} added_token;

/* A byte trie over added-token texts; node 0 is the root. */
typedef struct {
    int32_t child, sibling;
    int32_t added; /* index into added[], -1: no token ends here */
    uint8_t byte;
} trie_node;
typedef struct {
    trie_node *v;
    size_t n, cap;
} trie;

struct vkl_hf_pipeline {
    norm_step *norm;
    size_t n_norm;
    pre_step *pre;
    size_t n_pre;
    dec_step *dec;
    size_t n_dec;
    bool has_decoder;
    added_token *added;
    size_t n_added;
    trie tries[2]; /* [0]: added tokens matched in the raw text, [1]: in the normalized text */
    uint8_t *special; /* (V) 1 for special added tokens: skipped by decode without render_special */
    int32_t *prefix, *suffix; /* post-processor ids around one sequence */
    size_t n_prefix, n_suffix;
    char *chat_template;
    char *source; /* the tokenizer.json path */
};

void vkl_hf_pipeline_free(vkl_hf_pipeline *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_norm; i++) {
        free(p->norm[i].from);
        free(p->norm[i].to);
    }
    free(p->norm);
    for (size_t i = 0; i < p->n_pre; i++) free(p->pre[i].pat);
    free(p->pre);
    for (size_t i = 0; i < p->n_dec; i++) {
        free(p->dec[i].from);
        free(p->dec[i].to);
    }
    free(p->dec);
    free(p->added);
    free(p->tries[0].v);
    free(p->tries[1].v);
    free(p->special);
    free(p->prefix);
    free(p->suffix);
    free(p->chat_template);
    free(p->source);
    free(p);
}

/* ---- small helpers ---- */

static uint32_t *to_cpts(const char *s, size_t n, size_t *out_n) {
    uint32_t *c = vkl_malloc((n + 1) * sizeof(uint32_t));
    *out_n = vkl_utf8_to_cpts(s, n, c);
    return c;
}

typedef struct {
    uint32_t *v;
    size_t n, cap;
} cpt_vec;

static void cv_push(cpt_vec *v, uint32_t c) {
    v->v = tok_grow(v->v, &v->cap, v->n + 1, sizeof(uint32_t));
    v->v[v->n++] = c;
}

typedef struct {
    char *v;
    size_t n, cap;
} byte_vec;

static void bv_put(byte_vec *b, const char *s, size_t n) {
    b->v = tok_grow(b->v, &b->cap, b->n + n + 1, 1);
    memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = 0;
}

static void bv_cpt(byte_vec *b, uint32_t c) {
    char u[4];
    bv_put(b, u, vkl_utf8_encode(c, u));
}

static void bv_cpts(byte_vec *b, const uint32_t *c, size_t n) {
    for (size_t i = 0; i < n; i++) bv_cpt(b, c[i]);
}

/* Rust's \w (Unicode): letters, marks, decimal numbers, connector punctuation (_), the joiners. Approximated with
 * the category classes this project has: any \p{L}, \p{M}, \p{N}, '_' and U+203F/U+2040/U+FE33.. connectors. */
static bool is_word_char(uint32_t c) {
    unsigned k = vkl_ucpt_class(c);
    return k == VKL_UCAT_LETTER || k == VKL_UCAT_MARK || k == VKL_UCAT_NUMBER || c == '_' || c == 0x200C ||
           c == 0x200D || c == 0x203F || c == 0x2040 || c == 0x2054 || c == 0xFE33 || c == 0xFE34 ||
           (c >= 0xFE4D && c <= 0xFE4F) || c == 0xFF3F;
}

/* The code point that ends s[0..n) (n >= 1). */
static uint32_t last_cpt(const char *s, size_t n) {
    size_t b = n - 1;
    while (b > 0 && n - b < 4 && ((uint8_t)s[b] & 0xC0) == 0x80) b--;
    size_t adv;
    uint32_t c = vkl_utf8_decode((const uint8_t *)s + b, n - b, &adv);
    return b + adv == n ? c : 0xFFFD;
}

/* ---- added tokens: trie and leftmost-longest matching ---- */

static void trie_add(trie *t, const char *s, size_t n, int32_t added) {
    if (t->n == 0) {
        t->v = tok_grow(t->v, &t->cap, 1, sizeof(trie_node));
        t->v[t->n++] = (trie_node){-1, -1, -1, 0};
    }
    int32_t node = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = t->v[node].child;
        while (c >= 0 && t->v[c].byte != (uint8_t)s[i]) c = t->v[c].sibling;
        if (c < 0) {
            t->v = tok_grow(t->v, &t->cap, t->n + 1, sizeof(trie_node));
            c = (int32_t)t->n++;
            t->v[c] = (trie_node){-1, t->v[node].child, -1, (uint8_t)s[i]};
            t->v[node].child = c;
        }
        node = c;
    }
    t->v[node].added = added; /* the same text twice: the later token wins, as in HF's content -> id map */
}

/* Longest token text starting at s[0..n): its added index and length; -1 when none. */
static int32_t trie_longest(const trie *t, const char *s, size_t n, size_t *len) {
    if (t->n == 0) return -1;
    int32_t node = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = t->v[node].child;
        while (c >= 0 && t->v[c].byte != (uint8_t)s[i]) c = t->v[c].sibling;
        if (c < 0) break;
        node = c;
        if (t->v[node].added >= 0) {
            best = t->v[node].added;
            *len = i + 1;
        }
    }
    return best;
}

typedef struct {
    int32_t id; /* -1: text */
    size_t off, len;
} hf_frag;

typedef struct {
    hf_frag *v;
    size_t n, cap;
} hf_frag_vec;

static void frag_push(hf_frag_vec *f, int32_t id, size_t off, size_t len) {
    f->v = tok_grow(f->v, &f->cap, f->n + 1, sizeof(hf_frag));
    f->v[f->n++] = (hf_frag){id, off, len};
}

/* HF's AddedVocabulary::find_matches over s[0..n): non-overlapping leftmost-longest matches; a single_word token
 * that touches a word character is dropped (the scan goes on after it), lstrip / rstrip take the whitespace
 * around the match into the token's split. Appends fragments with offsets relative to base. */
static void split_added(const vkl_hf_pipeline *p, const trie *tr, const char *s, size_t n, size_t base,
                        bool parse_special, hf_frag_vec *out) {
    size_t start_off = 0;
    for (size_t i = 0; i < n;) {
        size_t mlen = 0;
        int32_t a = trie_longest(tr, s + i, n - i, &mlen);
        if (a < 0) {
            i++;
            continue;
        }
        const added_token *at = &p->added[a];
        size_t start = i, stop = i + mlen;
        i = stop;
        if (at->special && !parse_special) continue;
        if (at->single_word) {
            bool start_space = start == 0 || !is_word_char(last_cpt(s, start));
            size_t adv;
            bool stop_space =
                stop == n || !is_word_char(vkl_utf8_decode((const uint8_t *)s + stop, n - stop, &adv));
            if (!start_space || !stop_space) continue;
        }
        if (at->lstrip) {
            size_t b = start;
            while (b > 0) {
                size_t k = b - 1;
                while (k > 0 && b - k < 4 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
                size_t adv;
                uint32_t c = vkl_utf8_decode((const uint8_t *)s + k, b - k, &adv);
                if (k + adv != b || !vkl_ucpt_is_space(c)) break;
                b = k;
            }
            start = VKL_MAX(b, start_off);
        }
        if (at->rstrip) {
            while (stop < n) {
                size_t adv;
                uint32_t c = vkl_utf8_decode((const uint8_t *)s + stop, n - stop, &adv);
                if (!vkl_ucpt_is_space(c)) break;
                stop += adv;
            }
        }
        if (start_off < start) frag_push(out, -1, base + start_off, start - start_off);
        frag_push(out, at->id, base + start, stop - start);
        start_off = stop;
    }
    if (start_off < n) frag_push(out, -1, base + start_off, n - start_off);
}

/* ---- normalizer ---- */

/* Replace every non-overlapping occurrence of from (leftmost first) with to. */
static void replace_cpts(cpt_vec *v, const uint32_t *from, size_t nf, const uint32_t *to, size_t nt) {
    if (nf == 0) return;
    cpt_vec o = {0};
    for (size_t i = 0; i < v->n;) {
        if (i + nf <= v->n && !memcmp(v->v + i, from, nf * sizeof(uint32_t))) {
            for (size_t k = 0; k < nt; k++) cv_push(&o, to[k]);
            i += nf;
        } else {
            cv_push(&o, v->v[i++]);
        }
    }
    free(v->v);
    *v = o;
}

static void normalize(const vkl_hf_pipeline *p, cpt_vec *v) {
    for (size_t k = 0; k < p->n_norm; k++) {
        const norm_step *st = &p->norm[k];
        switch (st->kind) {
        case NORM_NFC: {
            uint32_t *out = NULL;
            size_t cap = 0, m = vkl_nfc(v->v, v->n, &out, &cap);
            free(v->v);
            *v = (cpt_vec){out, m, cap};
            break;
        }
        case NORM_REPLACE: replace_cpts(v, st->from, st->n_from, st->to, st->n_to); break;
        case NORM_PREPEND:
            if (v->n) {
                cpt_vec o = {0};
                for (size_t i = 0; i < st->n_to; i++) cv_push(&o, st->to[i]);
                for (size_t i = 0; i < v->n; i++) cv_push(&o, v->v[i]);
                free(v->v);
                *v = o;
            }
            break;
        }
    }
}

/* ---- pre-tokenizer: a list of pieces over code points ---- */

typedef struct {
    cpt_vec c;
    size_t *len;
    size_t n, cap;
} piece_list;

static void pl_push(piece_list *pl, const uint32_t *c, size_t n) {
    if (n == 0) return; /* HF drops empty splits */
    for (size_t i = 0; i < n; i++) cv_push(&pl->c, c[i]);
    pl->len = tok_grow(pl->len, &pl->cap, pl->n + 1, sizeof(size_t));
    pl->len[pl->n++] = n;
}

static void pl_free(piece_list *pl) {
    free(pl->c.v);
    free(pl->len);
}

/* Matches of a literal (PRE_STRING) or of single numeric characters (PRE_DIGITS: Rust's char::is_numeric, \p{N}) in
 * c[0..n) as HF's Pattern::find_matches gives them: (offsets, is_match) runs covering the text; then the behavior
 * merges or drops the delimiters. */
static void split_literal(const pre_step *st, const uint32_t *c, size_t n, piece_list *out) {
    typedef struct {
        size_t a, b;
        bool m;
    } run;
    run *r = vkl_malloc((2 * n + 2) * sizeof(run));
    size_t nr = 0, prev = 0;
    if (st->kind == PRE_DIGITS) {
        for (size_t i = 0; i < n; i++) {
            if (vkl_ucpt_class(c[i]) != VKL_UCAT_NUMBER) continue;
            if (prev != i) r[nr++] = (run){prev, i, false};
            r[nr++] = (run){i, i + 1, true};
            prev = i + 1;
        }
    }
    for (size_t i = 0; st->kind == PRE_STRING && st->n_pat && i + st->n_pat <= n;) {
        if (!memcmp(c + i, st->pat, st->n_pat * sizeof(uint32_t))) {
            if (prev != i) r[nr++] = (run){prev, i, false};
            r[nr++] = (run){i, i + st->n_pat, true};
            i += st->n_pat;
            prev = i;
        } else {
            i++;
        }
    }
    if (prev != n || nr == 0) r[nr++] = (run){prev, n, false};
    if (st->invert)
        for (size_t i = 0; i < nr; i++) r[i].m = !r[i].m;
    run *o = vkl_malloc((nr + 1) * sizeof(run));
    size_t no = 0;
    bool prev_match = false;
    switch (st->behavior) {
    case SPLIT_ISOLATED:
        for (size_t i = 0; i < nr; i++) o[no++] = r[i];
        break;
    case SPLIT_REMOVED:
        for (size_t i = 0; i < nr; i++)
            if (!r[i].m) o[no++] = r[i];
        break;
    case SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < nr; i++) {
            if (r[i].m == prev_match && no)
                o[no - 1].b = r[i].b;
            else
                o[no++] = r[i];
            prev_match = r[i].m;
        }
        break;
    case SPLIT_MERGED_PREV:
        for (size_t i = 0; i < nr; i++) {
            if (r[i].m && !prev_match && no)
                o[no - 1].b = r[i].b;
            else
                o[no++] = r[i];
            prev_match = r[i].m;
        }
        break;
    case SPLIT_MERGED_NEXT:
        for (size_t i = nr; i-- > 0;) {
            if (r[i].m && !prev_match && no)
                o[no - 1].a = r[i].a;
            else
                o[no++] = r[i];
            prev_match = r[i].m;
        }
        for (size_t i = 0; i < no / 2; i++) {
            run x = o[i];
            o[i] = o[no - 1 - i];
            o[no - 1 - i] = x;
        }
        break;
    }
    for (size_t i = 0; i < no; i++) pl_push(out, c + o[i].a, o[i].b - o[i].a);
    free(o);
    free(r);
}

/* One pre-tokenizer step over every piece. origin: piece 0 starts at offset 0 of the original text. */
static void pre_step_run(const pre_step *st, piece_list *in, bool origin, piece_list *out, size_t **lens,
                         size_t *lens_cap) {
    size_t off = 0;
    for (size_t k = 0; k < in->n; k++) {
        const uint32_t *c = in->c.v + off;
        size_t n = in->len[k];
        off += n;
        switch (st->kind) {
        case PRE_REGEX: {
            *lens = tok_grow(*lens, lens_cap, n, sizeof(size_t));
            size_t nw = vkl_pretokenize(st->regex, c, n, *lens), at = 0;
            for (size_t w = 0; w < nw; w++) {
                pl_push(out, c + at, (*lens)[w]);
                at += (*lens)[w];
            }
            break;
        }
        case PRE_STRING:
        case PRE_DIGITS: split_literal(st, c, n, out); break;
        case PRE_BYTE_LEVEL: {
            cpt_vec tmp = {0};
            if (st->add_prefix_space && (n == 0 || c[0] != ' ')) cv_push(&tmp, ' ');
            for (size_t i = 0; i < n; i++) cv_push(&tmp, c[i]);
            if (st->use_regex) {
                *lens = tok_grow(*lens, lens_cap, tmp.n, sizeof(size_t));
                size_t nw = vkl_pretokenize(VKL_PRETOK_GPT2, tmp.v, tmp.n, *lens), at = 0;
                for (size_t w = 0; w < nw; w++) {
                    pl_push(out, tmp.v + at, (*lens)[w]);
                    at += (*lens)[w];
                }
            } else {
                pl_push(out, tmp.v, tmp.n);
            }
            free(tmp.v);
            break;
        }
        case PRE_METASPACE: {
            cpt_vec tmp = {0};
            bool starts = n > 0 && (c[0] == ' ' || c[0] == st->replacement);
            if (!starts && (st->prepend == PREPEND_ALWAYS || (st->prepend == PREPEND_FIRST && origin && k == 0)))
                cv_push(&tmp, st->replacement);
            for (size_t i = 0; i < n; i++) cv_push(&tmp, c[i] == ' ' ? st->replacement : c[i]);
            if (st->split) {
                pre_step lit = {.kind = PRE_STRING, .pat = (uint32_t[]){st->replacement}, .n_pat = 1,
                                .behavior = SPLIT_MERGED_NEXT};
                split_literal(&lit, tmp.v, tmp.n, out);
            } else {
                pl_push(out, tmp.v, tmp.n);
            }
            free(tmp.v);
            break;
        }
        }
    }
}

/* ---- encode ---- */

/* One stretch of normalized text between added tokens: pre-tokenize, then BPE per piece. */
static void encode_normalized(const vkl_tokenizer *t, const uint32_t *c, size_t n, bool origin, session *s,
                              id_vec *o) {
    const vkl_hf_pipeline *p = t->hf;
    piece_list a = {0}, b = {0};
    pl_push(&a, c, n);
    size_t *lens = NULL, lens_cap = 0;
    for (size_t k = 0; k < p->n_pre; k++) {
        b.c.n = 0;
        b.n = 0;
        pre_step_run(&p->pre[k], &a, origin, &b, &lens, &lens_cap);
        piece_list x = a;
        a = b;
        b = x;
    }
    byte_vec word = {0};
    size_t off = 0;
    for (size_t k = 0; k < a.n; k++) {
        word.n = 0;
        bv_cpts(&word, a.c.v + off, a.len[k]);
        off += a.len[k];
        if (word.n) tok_bpe_word(t, s, (const uint8_t *)word.v, word.n, o);
    }
    free(word.v);
    free(lens);
    pl_free(&a);
    pl_free(&b);
}

vkl_status vkl_hf_tokenize(const vkl_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                           id_vec *o, vkl_err *err) {
    (void)err;
    const vkl_hf_pipeline *p = t->hf;
    if (add_special)
        for (size_t i = 0; i < p->n_prefix; i++) tok_push_id(o, p->prefix[i]);
    hf_frag_vec raw = {0}, sub = {0};
    split_added(p, &p->tries[0], text, len, 0, parse_special, &raw);
    session s = {0};
    byte_vec nb = {0};
    for (size_t f = 0; f < raw.n; f++) {
        if (raw.v[f].id >= 0) {
            tok_push_id(o, raw.v[f].id);
            continue;
        }
        size_t nc;
        cpt_vec v = {0};
        v.v = to_cpts(text + raw.v[f].off, raw.v[f].len, &nc);
        v.n = nc;
        v.cap = raw.v[f].len + 1;
        normalize(p, &v);
        nb.n = 0;
        bv_cpts(&nb, v.v, v.n);
        free(v.v);
        sub.n = 0;
        split_added(p, &p->tries[1], nb.v ? nb.v : "", nb.n, 0, parse_special, &sub);
        for (size_t g = 0; g < sub.n; g++) {
            if (sub.v[g].id >= 0) {
                tok_push_id(o, sub.v[g].id);
                continue;
            }
            uint32_t *c = to_cpts(nb.v + sub.v[g].off, sub.v[g].len, &nc);
            encode_normalized(t, c, nc, raw.v[f].off == 0 && sub.v[g].off == 0, &s, o);
            free(c);
        }
    }
    if (add_special)
        for (size_t i = 0; i < p->n_suffix; i++) tok_push_id(o, p->suffix[i]);
    free(nb.v);
    free(raw.v);
    free(sub.v);
    tok_session_free(&s);
    return VKL_OK;
}

/* ---- decode ---- */

typedef struct {
    byte_vec *v;
    size_t n, cap;
} str_list;

static void sl_push(str_list *l, const char *s, size_t n) {
    l->v = tok_grow(l->v, &l->cap, l->n + 1, sizeof(byte_vec));
    l->v[l->n] = (byte_vec){0};
    bv_put(&l->v[l->n], s, n);
    l->n++;
}

static void sl_free(str_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].v);
    free(l->v);
    l->n = 0;
    l->v = NULL;
    l->cap = 0;
}

/* Bytes of one well-formed UTF-8 character at s[0..n), or 0 when it starts an ill-formed one; *bad receives the
 * length of the maximal ill-formed subpart then (Unicode's "substitution of maximal subparts", as Rust's
 * from_utf8_lossy replaces each with one U+FFFD). */
static size_t utf8_char(const uint8_t *s, size_t n, size_t *bad) {
    uint8_t b = s[0];
    *bad = 1;
    if (b < 0x80) return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        need = 1;
    else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (size_t k = 1; k <= need; k++) {
        if (k >= n) {
            *bad = k;
            return 0;
        }
        uint8_t c = s[k];
        if (c < (k == 1 ? lo : 0x80) || c > (k == 1 ? hi : 0xBF)) {
            *bad = k;
            return 0;
        }
    }
    return need + 1;
}

static void lossy_utf8(const char *s, size_t n, byte_vec *out) {
    for (size_t i = 0; i < n;) {
        size_t bad, k = utf8_char((const uint8_t *)s + i, n - i, &bad);
        if (k) {
            bv_put(out, s + i, k);
            i += k;
        } else {
            bv_put(out, "\xEF\xBF\xBD", 3);
            i += bad;
        }
    }
}

static bool byte_token(const byte_vec *t, uint8_t *b) {
    if (t->n != 6 || memcmp(t->v, "<0x", 3) || t->v[5] != '>') return false;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = t->v[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return false;
        v = v * 16 + d;
    }
    *b = (uint8_t)v;
    return true;
}

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t bad, k = utf8_char((const uint8_t *)s + i, n - i, &bad);
        if (!k) return false;
        i += k;
    }
    return true;
}

static void decode_step(const dec_step *st, str_list *in, str_list *out) {
    switch (st->kind) {
    case DEC_BYTE_LEVEL: {
        byte_vec bytes = {0}, res = {0};
        for (size_t i = 0; i < in->n; i++) {
            const byte_vec *tk = &in->v[i];
            size_t mark = bytes.n;
            bool all = true;
            for (size_t j = 0; j < tk->n && all;) {
                size_t adv;
                int b = vkl_gpt2_cpt_to_byte(vkl_utf8_decode((const uint8_t *)tk->v + j, tk->n - j, &adv));
                if (b < 0) {
                    all = false;
                    break;
                }
                char ch = (char)b;
                bv_put(&bytes, &ch, 1);
                j += adv;
            }
            if (!all) {
                bytes.n = mark;
                bv_put(&bytes, tk->v, tk->n);
            }
        }
        lossy_utf8(bytes.v ? bytes.v : "", bytes.n, &res);
        sl_push(out, res.v ? res.v : "", res.n);
        free(bytes.v);
        free(res.v);
        break;
    }
    case DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            byte_vec r = {0};
            const byte_vec *tk = &in->v[i];
            for (size_t j = 0; j < tk->n;) {
                if (st->n_from && j + st->n_from <= tk->n && !memcmp(tk->v + j, st->from, st->n_from)) {
                    bv_put(&r, st->to, st->n_to);
                    j += st->n_from;
                } else {
                    bv_put(&r, tk->v + j, 1);
                    j++;
                }
            }
            sl_push(out, r.v ? r.v : "", r.n);
            free(r.v);
        }
        break;
    case DEC_BYTE_FALLBACK: {
        byte_vec pend = {0};
        size_t n_pend = 0;
        for (size_t i = 0; i <= in->n; i++) {
            uint8_t b;
            if (i < in->n && byte_token(&in->v[i], &b)) {
                bv_put(&pend, (const char *)&b, 1);
                n_pend++;
                continue;
            }
            if (n_pend) {
                if (valid_utf8(pend.v, pend.n))
                    sl_push(out, pend.v, pend.n);
                else
                    for (size_t k = 0; k < n_pend; k++) sl_push(out, "\xEF\xBF\xBD", 3);
                pend.n = 0;
                n_pend = 0;
            }
            if (i < in->n) sl_push(out, in->v[i].v ? in->v[i].v : "", in->v[i].n);
        }
        free(pend.v);
        break;
    }
    case DEC_FUSE: {
        byte_vec r = {0};
        for (size_t i = 0; i < in->n; i++) bv_put(&r, in->v[i].v ? in->v[i].v : "", in->v[i].n);
        sl_push(out, r.v ? r.v : "", r.n);
        free(r.v);
        break;
    }
    case DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            size_t nc;
            uint32_t *c = to_cpts(in->v[i].v ? in->v[i].v : "", in->v[i].n, &nc);
            size_t a = 0, b = nc;
            for (size_t k = 0; k < st->start && k < nc && c[k] == st->content; k++) a = k + 1;
            for (size_t k = 0; k < st->stop && k < nc && c[nc - 1 - k] == st->content; k++) b = nc - 1 - k;
            byte_vec r = {0};
            if (a < b) bv_cpts(&r, c + a, b - a);
            sl_push(out, r.v ? r.v : "", r.n);
            free(r.v);
            free(c);
        }
        break;
    case DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            size_t nc;
            uint32_t *c = to_cpts(in->v[i].v ? in->v[i].v : "", in->v[i].n, &nc);
            byte_vec r = {0};
            for (size_t k = 0; k < nc; k++) {
                if (c[k] != st->content)
                    bv_cpt(&r, c[k]);
                else if (!(i == 0 && st->prepend != PREPEND_NEVER))
                    bv_put(&r, " ", 1);
            }
            sl_push(out, r.v ? r.v : "", r.n);
            free(r.v);
            free(c);
        }
        break;
    }
}

vkl_status vkl_hf_detokenize(const vkl_tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **text,
                             size_t *len, vkl_err *err) {
    const vkl_hf_pipeline *p = t->hf;
    str_list a = {0}, b = {0};
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) {
            sl_free(&a);
            return vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: token %zu: id %d is outside the vocabulary (0..%d)", i,
                               ids[i], t->n_vocab - 1);
        }
        if (t->types[ids[i]] == VKL_TOKEN_UNUSED) continue; /* an id nothing names: HF skips it */
        if (skip_special && p->special[ids[i]]) continue;
        size_t tl;
        const char *s = vkl_tokenizer_token_text(t, ids[i], &tl);
        sl_push(&a, s, tl);
    }
    byte_vec r = {0};
    if (p->has_decoder) {
        for (size_t k = 0; k < p->n_dec; k++) {
            decode_step(&p->dec[k], &a, &b);
            sl_free(&a);
            a = b;
            b = (str_list){0};
        }
        for (size_t i = 0; i < a.n; i++) bv_put(&r, a.v[i].v ? a.v[i].v : "", a.v[i].n);
    } else {
        for (size_t i = 0; i < a.n; i++) {
            if (i) bv_put(&r, " ", 1);
            bv_put(&r, a.v[i].v ? a.v[i].v : "", a.v[i].n);
        }
    }
    sl_free(&a);
    if (!r.v) bv_put(&r, "", 0);
    *text = r.v;
    *len = r.n;
    return VKL_OK;
}

/* ---- loading ---- */

typedef struct {
    const char *file; /* for messages */
    vkl_err *err;
} ctx;

static vkl_status bad(ctx *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static vkl_status bad(ctx *c, const char *field, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return vkl_err_set(c->err, VKL_ERR_INPUT, "tokenizer: %s: %s: %s", c->file, field, msg);
}

static const char *kind_of(const cJSON *j) {
    if (!j) return "nothing";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a bool";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    return "an object";
}

/* An optional bool: absent or null keeps *out. */
static bool opt_bool(ctx *c, const cJSON *o, const char *key, const char *path, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsBool(v)) {
        bad(c, path, "expected a bool, got %s", kind_of(v));
        return false;
    }
    *out = cJSON_IsTrue(v);
    return true;
}

/* An optional string: NULL when absent or null. */
static bool opt_str(ctx *c, const cJSON *o, const char *key, const char *path, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return true;
    if (!cJSON_IsString(v)) {
        bad(c, path, "expected a string, got %s", kind_of(v));
        return false;
    }
    *out = v->valuestring;
    return true;
}

static bool get_id(ctx *c, const cJSON *v, const char *path, int32_t *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > MAX_VOCAB ||
        v->valuedouble != (double)(int64_t)v->valuedouble) {
        bad(c, path, "expected a token id (an integer 0..%d), got %s", MAX_VOCAB,
            cJSON_IsNumber(v) ? "another number" : kind_of(v));
        return false;
    }
    *out = (int32_t)v->valuedouble;
    return true;
}

static const char *type_of(ctx *c, const cJSON *o, const char *path) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!cJSON_IsObject(o) || !cJSON_IsString(ty)) {
        char p[256];
        snprintf(p, sizeof(p), "%s.type", path);
        bad(c, p, "expected an object with a string \"type\", got %s", cJSON_IsObject(o) ? kind_of(ty) : kind_of(o));
        return NULL;
    }
    return ty->valuestring;
}

/* A {"String": "..."} pattern (Regex patterns are returned through *regex). */
static bool pattern_of(ctx *c, const cJSON *o, const char *path, const char **str, const char **regex) {
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    *str = cJSON_IsString(s) ? s->valuestring : NULL;
    *regex = cJSON_IsString(r) ? r->valuestring : NULL;
    if (!*str && !*regex) {
        char p[256];
        snprintf(p, sizeof(p), "%s.pattern", path);
        bad(c, p, "expected {\"String\": ...} or {\"Regex\": ...}, got %s", kind_of(pat));
        return false;
    }
    return true;
}

static bool one_cpt(ctx *c, const char *s, const char *path, uint32_t *out) {
    size_t n;
    uint32_t *cp = to_cpts(s, strlen(s), &n);
    bool ok = n == 1;
    if (ok)
        *out = cp[0];
    else
        bad(c, path, "expected one character, got \"%.32s\"", s);
    free(cp);
    return ok;
}

static bool parse_prepend_scheme(ctx *c, const cJSON *o, const char *path, prepend_scheme *out) {
    const char *ps;
    bool add = true;
    char p[256];
    snprintf(p, sizeof(p), "%s.prepend_scheme", path);
    if (!opt_str(c, o, "prepend_scheme", p, &ps)) return false;
    snprintf(p, sizeof(p), "%s.add_prefix_space", path);
    if (!opt_bool(c, o, "add_prefix_space", p, &add)) return false;
    if (!ps) {
        *out = add ? PREPEND_ALWAYS : PREPEND_NEVER; /* the older serialization */
        return true;
    }
    if (!strcmp(ps, "always"))
        *out = PREPEND_ALWAYS;
    else if (!strcmp(ps, "first"))
        *out = PREPEND_FIRST;
    else if (!strcmp(ps, "never"))
        *out = PREPEND_NEVER;
    else {
        snprintf(p, sizeof(p), "%s.prepend_scheme", path);
        bad(c, p, "expected \"always\", \"first\" or \"never\", got \"%.32s\"", ps);
        return false;
    }
    return true;
}

/* A pipeline component parser: the component o at JSON path `path`; arg is the parser's own extra (or NULL). */
typedef bool (*component_parser)(ctx *c, vkl_hf_pipeline *p, const cJSON *o, const char *path, void *arg);

/* A "Sequence" component: each entry of its array `key` through parse, named path.key[i] in messages. */
static bool parse_sequence(ctx *c, vkl_hf_pipeline *p, const cJSON *o, const char *path, const char *key,
                           component_parser parse, void *arg) {
    char sub[256];
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key);
    snprintf(sub, sizeof(sub), "%s.%s", path, key);
    if (!cJSON_IsArray(arr)) return bad(c, sub, "expected an array, got %s", kind_of(arr)), false;
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        snprintf(sub, sizeof(sub), "%s.%s[%d]", path, key, i);
        if (!parse(c, p, e, sub, arg)) return false;
    }
    return true;
}

static bool parse_normalizer(ctx *c, vkl_hf_pipeline *p, const cJSON *o, const char *path, void *unused) {
    (void)unused;
    if (!o || cJSON_IsNull(o)) return true;
    const char *ty = type_of(c, o, path);
    if (!ty) return false;
    char sub[256];
    if (!strcmp(ty, "Sequence")) return parse_sequence(c, p, o, path, "normalizers", parse_normalizer, NULL);
    norm_step st = {0};
    if (!strcmp(ty, "NFC")) {
        st.kind = NORM_NFC;
    } else if (!strcmp(ty, "Replace")) {
        const char *s, *re, *content;
        if (!pattern_of(c, o, path, &s, &re)) return false;
        snprintf(sub, sizeof(sub), "%s.pattern", path);
        if (!s) return bad(c, sub, "a Regex pattern is not supported (only {\"String\": ...})"), false;
        snprintf(sub, sizeof(sub), "%s.content", path);
        if (!opt_str(c, o, "content", sub, &content)) return false;
        if (!content) return bad(c, sub, "missing (expected a string)"), false;
        st.kind = NORM_REPLACE;
        st.from = to_cpts(s, strlen(s), &st.n_from);
        st.to = to_cpts(content, strlen(content), &st.n_to);
    } else if (!strcmp(ty, "Prepend")) {
        const char *pre;
        snprintf(sub, sizeof(sub), "%s.prepend", path);
        if (!opt_str(c, o, "prepend", sub, &pre)) return false;
        if (!pre) return bad(c, sub, "missing (expected a string)"), false;
        st.kind = NORM_PREPEND;
        st.to = to_cpts(pre, strlen(pre), &st.n_to);
    } else {
        snprintf(sub, sizeof(sub), "%s.type", path);
        return bad(c, sub,
                   "unsupported normalizer \"%.64s\" (supported: NFC, Replace with a String pattern, Prepend, Sequence)",
                   ty),
               false;
    }
    p->norm = vkl_realloc(p->norm, (p->n_norm + 1) * sizeof(norm_step));
    p->norm[p->n_norm++] = st;
    return true;
}

/* Split regexes recognised by their exact text, with the splitter that implements each. */
static const struct {
    const char *regex;
    vkl_pretok pre;
    const char *gguf_pre; /* what llama.cpp's converter calls this pre-tokenizer */
} known_regex[] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     VKL_PRETOK_LLAMA3, "llama-bpe"},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
     "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     VKL_PRETOK_QWEN2, "qwen2"},
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", VKL_PRETOK_GPT2, "gpt-2"},
#define UPPER "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define LOWER "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
#define LEAD "[^\\r\\n\\p{L}\\p{N}]?"
#define CONTR "(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
#define CONTR2 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
#define REST " ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
    {LEAD UPPER "*" LOWER "+|" LEAD UPPER "+" LOWER "*|\\p{N}|" REST, VKL_PRETOK_TEKKEN_EXACT, "tekken"},
    {LEAD UPPER "*" LOWER "+" CONTR "|" LEAD UPPER "+" LOWER "*" CONTR "|\\p{N}{1,3}|" REST, VKL_PRETOK_GPT4O_EXACT,
     "gpt-4o"},
    {LEAD UPPER "*" LOWER "+" CONTR2 "|" LEAD UPPER "+" LOWER "*" CONTR2 "|\\p{N}{1,3}|" REST, VKL_PRETOK_GPT4O_EXACT,
     "gpt-4o"},
#undef UPPER
#undef LOWER
#undef LEAD
#undef CONTR
#undef CONTR2
#undef REST
};

/* arg: const char ** receiving llama.cpp's name of the Split regex */
static bool parse_pre(ctx *c, vkl_hf_pipeline *p, const cJSON *o, const char *path, void *arg) {
    const char **gguf_pre = arg;
    if (!o || cJSON_IsNull(o)) return true;
    const char *ty = type_of(c, o, path);
    if (!ty) return false;
    char sub[256];
    if (p->n_pre && p->pre[p->n_pre - 1].kind == PRE_BYTE_LEVEL)
        return bad(c, path, "a pre-tokenizer after ByteLevel is not supported (ByteLevel must come last)"), false;
    if (!strcmp(ty, "Sequence")) return parse_sequence(c, p, o, path, "pretokenizers", parse_pre, gguf_pre);
    pre_step st = {0};
    if (!strcmp(ty, "Split")) {
        const char *s, *re, *beh;
        bool invert = false;
        if (!pattern_of(c, o, path, &s, &re)) return false;
        snprintf(sub, sizeof(sub), "%s.behavior", path);
        if (!opt_str(c, o, "behavior", sub, &beh)) return false;
        static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                            "Contiguous"};
        int b = -1;
        for (int i = 0; beh && i < 5; i++)
            if (!strcmp(beh, names[i])) b = i;
        if (b < 0)
            return bad(c, sub,
                       "expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous, got %s%.32s%s",
                       beh ? "\"" : "", beh ? beh : "nothing", beh ? "\"" : ""),
                   false;
        snprintf(sub, sizeof(sub), "%s.invert", path);
        if (!opt_bool(c, o, "invert", sub, &invert)) return false;
        if (re) {
            snprintf(sub, sizeof(sub), "%s.pattern.Regex", path);
            size_t k = 0;
            while (k < VKL_ARRAY_LEN(known_regex) && strcmp(known_regex[k].regex, re)) k++;
            if (k == VKL_ARRAY_LEN(known_regex))
                return bad(c, sub,
                           "unsupported split regex \"%.120s%s\" (supported: the exact regexes of Llama 3, Qwen2/3, "
                           "GPT-2, tekken (Mistral Nemo / Small 3) and o200k (Phi-4-mini, Llama 4); a regex is never "
                           "approximated by another)",
                           re, strlen(re) > 120 ? "..." : ""),
                       false;
            if (b != SPLIT_ISOLATED || invert)
                return bad(c, path, "a Split regex is supported with behavior Isolated and invert false only"),
                       false;
            st.kind = PRE_REGEX;
            st.regex = known_regex[k].pre;
            *gguf_pre = known_regex[k].gguf_pre;
        } else {
            st.kind = PRE_STRING;
            st.pat = to_cpts(s, strlen(s), &st.n_pat);
            st.behavior = (split_behavior)b;
            st.invert = invert;
        }
    } else if (!strcmp(ty, "Digits")) {
        bool individual = false;
        snprintf(sub, sizeof(sub), "%s.individual_digits", path);
        if (!opt_bool(c, o, "individual_digits", sub, &individual)) return false;
        st.kind = PRE_DIGITS;
        st.behavior = individual ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
    } else if (!strcmp(ty, "ByteLevel")) {
        st.kind = PRE_BYTE_LEVEL;
        st.use_regex = true; /* the library's default */
        snprintf(sub, sizeof(sub), "%s.add_prefix_space", path);
        if (!opt_bool(c, o, "add_prefix_space", sub, &st.add_prefix_space)) return false;
        snprintf(sub, sizeof(sub), "%s.use_regex", path);
        if (!opt_bool(c, o, "use_regex", sub, &st.use_regex)) return false;
        if (st.use_regex) *gguf_pre = "gpt-2";
    } else if (!strcmp(ty, "Metaspace")) {
        const char *rep;
        st.kind = PRE_METASPACE;
        st.split = true;
        snprintf(sub, sizeof(sub), "%s.replacement", path);
        if (!opt_str(c, o, "replacement", sub, &rep)) return false;
        if (!one_cpt(c, rep ? rep : "\xE2\x96\x81", sub, &st.replacement)) return false;
        snprintf(sub, sizeof(sub), "%s.split", path);
        if (!opt_bool(c, o, "split", sub, &st.split) || !parse_prepend_scheme(c, o, path, &st.prepend)) return false;
    } else {
        snprintf(sub, sizeof(sub), "%s.type", path);
        return bad(c, sub,
                   "unsupported pre-tokenizer \"%.64s\" (supported: Split, Digits, ByteLevel, Metaspace, Sequence)",
                   ty),
               false;
    }
    p->pre = vkl_realloc(p->pre, (p->n_pre + 1) * sizeof(pre_step));
    p->pre[p->n_pre++] = st;
    return true;
}

static bool parse_decoder(ctx *c, vkl_hf_pipeline *p, const cJSON *o, const char *path, void *unused) {
    (void)unused;
    const char *ty = type_of(c, o, path);
    if (!ty) return false;
    char sub[256];
    if (!strcmp(ty, "Sequence")) return parse_sequence(c, p, o, path, "decoders", parse_decoder, NULL);
    dec_step st = {0};
    if (!strcmp(ty, "ByteLevel")) {
        st.kind = DEC_BYTE_LEVEL;
    } else if (!strcmp(ty, "ByteFallback")) {
        st.kind = DEC_BYTE_FALLBACK;
    } else if (!strcmp(ty, "Fuse")) {
        st.kind = DEC_FUSE;
    } else if (!strcmp(ty, "Replace")) {
        const char *s, *re, *content;
        if (!pattern_of(c, o, path, &s, &re)) return false;
        snprintf(sub, sizeof(sub), "%s.pattern", path);
        if (!s) return bad(c, sub, "a Regex pattern is not supported (only {\"String\": ...})"), false;
        snprintf(sub, sizeof(sub), "%s.content", path);
        if (!opt_str(c, o, "content", sub, &content)) return false;
        if (!content) return bad(c, sub, "missing (expected a string)"), false;
        st.kind = DEC_REPLACE;
        st.from = vkl_strdup(s);
        st.n_from = strlen(s);
        st.to = vkl_strdup(content);
        st.n_to = strlen(content);
    } else if (!strcmp(ty, "Strip")) {
        const char *content;
        st.kind = DEC_STRIP;
        snprintf(sub, sizeof(sub), "%s.content", path);
        if (!opt_str(c, o, "content", sub, &content)) return false;
        if (!one_cpt(c, content ? content : " ", sub, &st.content)) return false;
        const char *keys[2] = {"start", "stop"};
        size_t *dst[2] = {&st.start, &st.stop};
        for (int k = 0; k < 2; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
            snprintf(sub, sizeof(sub), "%s.%s", path, keys[k]);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6)
                return bad(c, sub, "expected a count 0..1000000, got %s", kind_of(v)), false;
            *dst[k] = (size_t)v->valuedouble;
        }
    } else if (!strcmp(ty, "Metaspace")) {
        const char *rep;
        st.kind = DEC_METASPACE;
        snprintf(sub, sizeof(sub), "%s.replacement", path);
        if (!opt_str(c, o, "replacement", sub, &rep)) return false;
        if (!one_cpt(c, rep ? rep : "\xE2\x96\x81", sub, &st.content)) return false;
        if (!parse_prepend_scheme(c, o, path, &st.prepend)) return false;
    } else {
        snprintf(sub, sizeof(sub), "%s.type", path);
        return bad(c, sub,
                   "unsupported decoder \"%.64s\" (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, "
                   "Metaspace, Sequence)",
                   ty),
               false;
    }
    p->dec = vkl_realloc(p->dec, (p->n_dec + 1) * sizeof(dec_step));
    p->dec[p->n_dec++] = st;
    return true;
}

static void ids_push(int32_t **v, size_t *n, int32_t id) {
    *v = vkl_realloc(*v, (*n + 1) * sizeof(int32_t));
    (*v)[(*n)++] = id;
}

/* Ids of one special token of a processor: TemplateProcessing's special_tokens[name].ids, or a [text, id] pair. */
static bool template_ids(ctx *c, const cJSON *specials, const char *name, const char *path, int32_t **v, size_t *n,
                         int32_t V) {
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(specials, name);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sp, "ids");
    if (!cJSON_IsArray(ids))
        return bad(c, path, "special token \"%.64s\" is not in special_tokens (with its \"ids\")", name), false;
    for (const cJSON *e = ids->child; e; e = e->next) {
        int32_t id;
        if (!get_id(c, e, path, &id)) return false;
        if (id >= V) return bad(c, path, "id %d of \"%.64s\" is outside the vocabulary (%d)", id, name, V), false;
        ids_push(v, n, id);
    }
    return true;
}

/* Prefix / suffix ids of the single-sequence template; nested processors wrap: a later one goes outside. */
/* arg: the int32_t vocabulary size */
static bool parse_post(ctx *c, vkl_hf_pipeline *p, const cJSON *o, const char *path, void *arg) {
    const int32_t V = *(const int32_t *)arg;
    if (!o || cJSON_IsNull(o)) return true;
    const char *ty = type_of(c, o, path);
    if (!ty) return false;
    char sub[256];
    int32_t *pre = NULL, *suf = NULL;
    size_t npre = 0, nsuf = 0;
    if (!strcmp(ty, "Sequence")) return parse_sequence(c, p, o, path, "processors", parse_post, arg);
    if (!strcmp(ty, "ByteLevel")) return true; /* trims offsets only */
    if (!strcmp(ty, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
        snprintf(sub, sizeof(sub), "%s.single", path);
        if (!cJSON_IsArray(single)) return bad(c, sub, "expected an array, got %s", kind_of(single)), false;
        bool seen_a = false;
        int i = 0;
        for (const cJSON *e = single->child; e; e = e->next, i++) {
            snprintf(sub, sizeof(sub), "%s.single[%d]", path, i);
            const cJSON *stok = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
            if (seq) {
                seen_a = true;
                continue;
            }
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(stok, "id");
            if (!cJSON_IsString(id)) {
                free(pre);
                free(suf);
                return bad(c, sub, "expected {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}"), false;
            }
            bool ok = seen_a ? template_ids(c, specials, id->valuestring, sub, &suf, &nsuf, V)
                             : template_ids(c, specials, id->valuestring, sub, &pre, &npre, V);
            if (!ok) {
                free(pre);
                free(suf);
                return false;
            }
        }
    } else if (!strcmp(ty, "RobertaProcessing") || !strcmp(ty, "BertProcessing")) {
        const char *keys[2] = {"cls", "sep"};
        for (int k = 0; k < 2; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
            snprintf(sub, sizeof(sub), "%s.%s", path, keys[k]);
            int32_t id;
            if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !get_id(c, cJSON_GetArrayItem(v, 1), sub, &id) ||
                id >= V) {
                free(pre);
                if (!c->err->status) bad(c, sub, "expected [\"text\", id] with an id in the vocabulary");
                return false;
            }
            if (k == 0)
                ids_push(&pre, &npre, id);
            else
                ids_push(&suf, &nsuf, id);
        }
    } else {
        snprintf(sub, sizeof(sub), "%s.type", path);
        return bad(c, sub,
                   "unsupported post-processor \"%.64s\" (supported: TemplateProcessing, ByteLevel, "
                   "RobertaProcessing, BertProcessing, Sequence)",
                   ty),
               false;
    }
    /* wrap: new prefix = this prefix + old prefix; new suffix = old suffix + this suffix */
    int32_t *np = vkl_malloc((npre + p->n_prefix + 1) * sizeof(int32_t));
    if (npre) memcpy(np, pre, npre * sizeof(int32_t));
    if (p->n_prefix) memcpy(np + npre, p->prefix, p->n_prefix * sizeof(int32_t));
    free(p->prefix);
    p->prefix = np;
    p->n_prefix += npre;
    for (size_t i = 0; i < nsuf; i++) ids_push(&p->suffix, &p->n_suffix, suf[i]);
    free(pre);
    free(suf);
    return true;
}

/* The whole file, NUL-terminated (malloc'd). */
static vkl_status read_all(const char *path, char **buf, size_t *len, vkl_err *err) {
    vkl_mapped_file m;
    vkl_status st = vkl_map_file(path, "tokenizer", &m, err);
    if (st) return st;
    if (m.size > MAX_TEXT) {
        vkl_unmap_file(&m);
        return vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %llu bytes, too large", path,
                           (unsigned long long)m.size);
    }
    char *b = vkl_malloc((size_t)m.size + 1);
    if (m.size) memcpy(b, m.data, (size_t)m.size);
    b[m.size] = 0;
    *buf = b;
    *len = (size_t)m.size;
    vkl_unmap_file(&m);
    return VKL_OK;
}

static vkl_status parse_file(const char *path, cJSON **out, vkl_err *err) {
    char *text;
    size_t len;
    *out = NULL;
    vkl_status st = read_all(path, &text, &len, err);
    if (st) return st;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (root) {
        while (end && end < text + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
        if (end && end < text + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root || !cJSON_IsObject(root)) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        cJSON_Delete(root);
        free(text);
        return vkl_err_set(err, VKL_ERR_INPUT, "tokenizer: %s: %s (byte %zu)", path,
                           root ? "expected a JSON object at the top" : "invalid JSON", at);
    }
    free(text);
    *out = root;
    return VKL_OK;
}

/* A special-token entry of tokenizer_config.json: "text", {"content": "text", ...} or null. */
static const char *config_token(const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(content) ? content->valuestring : NULL;
}

static bool is_dir(const char *path) {
    return vkl_os_path_kind(path) == VKL_PATH_DIR;
}

static bool exists(const char *path) {
    vkl_path_kind k = vkl_os_path_kind(path);
    return k != VKL_PATH_NONE && k != VKL_PATH_DIR;
}

/* tokenizer_config.json (optional): special tokens, add_bos/eos, chat template. */
static vkl_status load_config(vkl_tokenizer *t, const char *dir, vkl_err *err) {
    vkl_hf_pipeline *p = t->hf;
    char *path = vkl_malloc(strlen(dir) + 32);
    sprintf(path, "%s/tokenizer_config.json", dir);
    vkl_status st = VKL_OK;
    cJSON *cfg = NULL;
    if (exists(path)) {
        if ((st = parse_file(path, &cfg, err))) goto done;
        ctx c = {path, err};
        static const char *const keys[] = {"bos_token", "eos_token", "pad_token", "unk_token"};
        int32_t *dst[] = {&t->bos, &t->eos, &t->pad, &t->unk};
        for (int k = 0; k < 4; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, keys[k]);
            if (!v || cJSON_IsNull(v)) continue;
            const char *s = config_token(cfg, keys[k]);
            if (!s) {
                st = bad(&c, keys[k], "expected a string, {\"content\": ...} or null, got %s", kind_of(v));
                goto done;
            }
            int32_t id = vkl_tokenizer_find(t, s, strlen(s));
            if (id < 0) {
                st = bad(&c, keys[k], "\"%.64s\" is not a token of the tokenizer", s);
                goto done;
            }
            *dst[k] = id;
        }
        /* transformers rebuilds the post-processor from add_bos_token / add_eos_token for these classes only */
        const char *cls = NULL;
        if (!opt_str(&c, cfg, "tokenizer_class", "tokenizer_class", &cls)) {
            st = VKL_ERR_INPUT;
            goto done;
        }
        static const char *const rebuild[] = {"LlamaTokenizer", "LlamaTokenizerFast", "GemmaTokenizer",
                                              "GemmaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"};
        bool rebuilds = false;
        for (size_t i = 0; cls && i < VKL_ARRAY_LEN(rebuild); i++) rebuilds |= !strcmp(cls, rebuild[i]);
        bool add_bos = false, add_eos = false;
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
        const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
        if (!opt_bool(&c, cfg, "add_bos_token", "add_bos_token", &add_bos) ||
            !opt_bool(&c, cfg, "add_eos_token", "add_eos_token", &add_eos)) {
            st = VKL_ERR_INPUT;
            goto done;
        }
        if (rebuilds && (cJSON_IsBool(ab) || cJSON_IsBool(ae))) {
            p->n_prefix = p->n_suffix = 0;
            if (add_bos && t->bos >= 0) ids_push(&p->prefix, &p->n_prefix, t->bos);
            if (add_eos && t->eos >= 0) ids_push(&p->suffix, &p->n_suffix, t->eos);
        }
        /* chat_template: a string, or a list of {"name", "template"} (the one named "default" is used) */
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsString(ct)) {
            p->chat_template = vkl_strdup(ct->valuestring);
        } else if (cJSON_IsArray(ct)) {
            int i = 0;
            for (const cJSON *e = ct->child; e; e = e->next, i++) {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
                const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(e, "template");
                if (!cJSON_IsString(name) || !cJSON_IsString(tmpl)) {
                    char f[64];
                    snprintf(f, sizeof(f), "chat_template[%d]", i);
                    st = bad(&c, f, "expected {\"name\": string, \"template\": string}");
                    goto done;
                }
                if (!strcmp(name->valuestring, "default")) p->chat_template = vkl_strdup(tmpl->valuestring);
            }
        } else if (ct && !cJSON_IsNull(ct)) {
            st = bad(&c, "chat_template", "expected a string or a list of {name, template}, got %s", kind_of(ct));
            goto done;
        }
    }
    /* transformers saves the template beside the config in newer versions; that file wins */
    sprintf(path, "%s/chat_template.jinja", dir);
    if (exists(path)) {
        char *text;
        size_t len;
        if ((st = read_all(path, &text, &len, err))) goto done;
        free(p->chat_template);
        p->chat_template = text;
    }
done:
    cJSON_Delete(cfg);
    free(path);
    return st;
}

static bool add_text(char **arena, size_t *cap, size_t *used, const char *s, size_t n, uint64_t *off) {
    *arena = tok_grow(*arena, cap, *used + n + 1, 1);
    memcpy(*arena + *used, s, n);
    (*arena)[*used + n] = 0;
    *off = *used;
    *used += n + 1;
    return true;
}

vkl_status vkl_tokenizer_load_hf(const char *path, vkl_tokenizer **out, vkl_err *err) {
    *out = NULL;
    char *file, *dir;
    if (is_dir(path)) {
        dir = vkl_strdup(path);
        file = vkl_malloc(strlen(path) + 32);
        sprintf(file, "%s/tokenizer.json", path);
    } else {
        file = vkl_strdup(path);
        const char *slash = strrchr(path, '/');
        dir = slash ? vkl_strdup(path) : vkl_strdup(".");
        if (slash) dir[slash - path] = 0;
        if (slash == path) strcpy(dir, "/");
    }
    vkl_tokenizer *t = vkl_calloc(1, sizeof(*t));
    t->bos = t->eos = t->eot = t->unk = t->pad = -1;
    vkl_hf_pipeline *p = t->hf = vkl_calloc(1, sizeof(*p));
    p->source = vkl_strdup(file);
    cJSON *root = NULL;
    ctx c = {file, err};
    vkl_status st = parse_file(file, &root, err);
    if (st) goto fail;
    st = VKL_ERR_INPUT;

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        bad(&c, "model", "expected an object, got %s", kind_of(model));
        goto fail;
    }
    const cJSON *mtype = cJSON_GetObjectItemCaseSensitive(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (mtype && !cJSON_IsString(mtype)) {
        bad(&c, "model.type", "expected a string, got %s", kind_of(mtype));
        goto fail;
    }
    if (mtype ? strcmp(mtype->valuestring, "BPE") != 0 : !merges) {
        bad(&c, "model.type",
            "unsupported tokenizer model \"%.64s\" (supported: BPE; WordPiece, Unigram and WordLevel are not)",
            mtype ? mtype->valuestring : "?");
        goto fail;
    }
    if (!cJSON_IsObject(vocab)) {
        bad(&c, "model.vocab", "expected an object {token: id}, got %s", kind_of(vocab));
        goto fail;
    }
    if (!cJSON_IsArray(merges)) {
        bad(&c, "model.merges", "expected an array, got %s", kind_of(merges));
        goto fail;
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0)) {
        bad(&c, "model.dropout", "BPE dropout (random merges) is not supported: expected null or 0");
        goto fail;
    }
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const char *s;
        char f[64];
        snprintf(f, sizeof(f), "model.%s", affixes[k]);
        if (!opt_str(&c, model, affixes[k], f, &s)) goto fail;
        if (s && *s) {
            bad(&c, f, "\"%.32s\" is not supported (expected null or \"\")", s);
            goto fail;
        }
    }
    const char *unk_token = NULL;
    if (!opt_str(&c, model, "unk_token", "model.unk_token", &unk_token) ||
        !opt_bool(&c, model, "fuse_unk", "model.fuse_unk", &t->fuse_unk) ||
        !opt_bool(&c, model, "byte_fallback", "model.byte_fallback", &t->byte_fallback) ||
        !opt_bool(&c, model, "ignore_merges", "model.ignore_merges", &t->ignore_merges))
        goto fail;

    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) {
        bad(&c, "added_tokens", "expected an array, got %s", kind_of(added));
        goto fail;
    }

    /* ids: the vocabulary's and the added tokens'; the vocabulary is as large as the largest id + 1 */
    int64_t V = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id;
        char f[160];
        snprintf(f, sizeof(f), "model.vocab[\"%.64s\"]", e->string ? e->string : "");
        if (!get_id(&c, e, f, &id)) goto fail;
        if (id + 1 > V) V = id + 1;
    }
    int ai = 0;
    size_t n_added = added ? (size_t)cJSON_GetArraySize(added) : 0;
    p->added = vkl_calloc(n_added + 1, sizeof(added_token));
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next, ai++) {
        char f[96];
        snprintf(f, sizeof(f), "added_tokens[%d].id", ai);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        added_token *at = &p->added[p->n_added];
        if (!cJSON_IsObject(e) || !get_id(&c, cJSON_GetObjectItemCaseSensitive(e, "id"), f, &at->id)) goto fail;
        snprintf(f, sizeof(f), "added_tokens[%d].content", ai);
        if (!cJSON_IsString(content)) {
            bad(&c, f, "expected a string, got %s", kind_of(content));
            goto fail;
        }
        at->normalized = true; /* AddedToken's default */
        static const char *const flags[] = {"special", "lstrip", "rstrip", "normalized", "single_word"};
        bool *dst[] = {&at->special, &at->lstrip, &at->rstrip, &at->normalized, &at->single_word};
        for (int k = 0; k < 5; k++) {
            snprintf(f, sizeof(f), "added_tokens[%d].%s", ai, flags[k]);
            if (!opt_bool(&c, e, flags[k], f, dst[k])) goto fail;
        }
        if (at->id + 1 > V) V = at->id + 1;
        p->n_added++;
    }
    if (V == 0) {
        bad(&c, "model.vocab", "empty (expected at least one token)");
        goto fail;
    }
    t->n_vocab = (int32_t)V;
    t->text_off = vkl_calloc((size_t)V, sizeof(uint64_t));
    t->text_len = vkl_calloc((size_t)V, sizeof(uint32_t));
    t->types = vkl_malloc((size_t)V);
    memset(t->types, VKL_TOKEN_UNUSED, (size_t)V);
    t->strip = vkl_calloc((size_t)V, 1);
    p->special = vkl_calloc((size_t)V, 1);
    uint8_t *in_model = vkl_calloc((size_t)V, 1);
    size_t arena_cap = 0, used = 0;
    add_text(&t->arena, &arena_cap, &used, "", 0, &t->text_off[0]); /* offset 0: the empty text of unused ids */
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id = (int32_t)e->valuedouble;
        const char *s = e->string ? e->string : "";
        size_t n = strlen(s);
        if (in_model[id]) {
            free(in_model);
            bad(&c, "model.vocab", "id %d is given to two tokens (\"%.64s\" and another)", id, s);
            goto fail;
        }
        in_model[id] = 1;
        add_text(&t->arena, &arena_cap, &used, s, n, &t->text_off[id]);
        t->text_len[id] = (uint32_t)n;
        t->types[id] = VKL_TOKEN_NORMAL;
    }
    ai = 0;
    for (const cJSON *e = added ? added->child : NULL; e; e = e->next, ai++) {
        const added_token *at = &p->added[ai];
        const char *s = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        size_t n = strlen(s);
        if (n == 0) continue; /* HF ignores empty added tokens */
        add_text(&t->arena, &arena_cap, &used, s, n, &t->text_off[at->id]);
        t->text_len[at->id] = (uint32_t)n;
        t->types[at->id] = at->special ? VKL_TOKEN_CONTROL : VKL_TOKEN_USER_DEFINED;
        t->strip[at->id] = (at->lstrip ? STRIP_LEFT : 0) | (at->rstrip ? STRIP_RIGHT : 0);
        p->special[at->id] = at->special;
    }
    for (int32_t i = 0; i < t->n_vocab; i++)
        if (t->text_len[i] > t->max_token_len) t->max_token_len = t->text_len[i];
    /* text -> id: the model's vocabulary wins over an added token spelled the same (merges resolve in it) */
    uint64_t cap = tok_table_size_for((uint64_t)V);
    t->map = vkl_malloc(cap * sizeof(int32_t));
    memset(t->map, 0xff, cap * sizeof(int32_t));
    t->map_mask = cap - 1;
    for (int pass = 0; pass < 2; pass++)
        for (int32_t i = 0; i < t->n_vocab; i++)
            if (t->text_len[i] && (in_model[i] != 0) == (pass == 1)) tok_map_insert(t, i);
    free(in_model);

    t->kind = VKL_TOKENIZER_BPE;
    t->hf_bpe = true;
    if (unk_token) {
        t->unk = vkl_tokenizer_find(t, unk_token, strlen(unk_token));
        if (t->unk < 0) {
            bad(&c, "model.unk_token", "\"%.64s\" is not in model.vocab", unk_token);
            goto fail;
        }
        t->types[t->unk] = VKL_TOKEN_UNKNOWN;
    }

    /* merges: "a b" strings or ["a", "b"] pairs */
    int64_t n_merges = cJSON_GetArraySize(merges);
    uint64_t mcap = tok_table_size_for((uint64_t)n_merges);
    t->merges = vkl_malloc(mcap * sizeof(merge_slot));
    for (uint64_t i = 0; i < mcap; i++) t->merges[i].key = UINT64_MAX;
    t->merge_mask = mcap - 1;
    {
        byte_vec buf = {0};
        int32_t rank = 0;
        for (const cJSON *e = merges->child; e; e = e->next, rank++) {
            const char *l, *r;
            size_t nl, nr;
            char f[64];
            snprintf(f, sizeof(f), "model.merges[%d]", rank);
            if (cJSON_IsString(e)) {
                const char *sp = strchr(e->valuestring, ' ');
                if (!sp || strchr(sp + 1, ' ')) {
                    free(buf.v);
                    bad(&c, f, "\"%.64s\": expected two tokens separated by one space", e->valuestring);
                    goto fail;
                }
                l = e->valuestring;
                nl = (size_t)(sp - l);
                r = sp + 1;
                nr = strlen(r);
            } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                       cJSON_IsString(e->child->next)) {
                l = e->child->valuestring;
                nl = strlen(l);
                r = e->child->next->valuestring;
                nr = strlen(r);
            } else {
                free(buf.v);
                bad(&c, f, "expected \"left right\" or [\"left\", \"right\"], got %s", kind_of(e));
                goto fail;
            }
            buf.n = 0;
            bv_put(&buf, l, nl);
            bv_put(&buf, r, nr);
            int32_t li = vkl_tokenizer_find(t, l, nl), ri = vkl_tokenizer_find(t, r, nr);
            int32_t res = vkl_tokenizer_find(t, buf.v, buf.n);
            if (li < 0 || ri < 0 || res < 0) {
                free(buf.v);
                bad(&c, f, "\"%.32s\" + \"%.32s\": %s is not in model.vocab (a merge must join two tokens into a token)",
                    l, r, li < 0 ? "the left part" : ri < 0 ? "the right part" : "the merged text");
                goto fail;
            }
            tok_merge_insert(t, li, ri, rank, res);
        }
        free(buf.v);
    }

    const char *gguf_pre = NULL;
    int32_t n_vocab = t->n_vocab;
    if (!parse_normalizer(&c, p, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer", NULL) ||
        !parse_pre(&c, p, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), "pre_tokenizer", &gguf_pre) ||
        !parse_post(&c, p, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "post_processor", &n_vocab))
        goto fail;
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (dec && !cJSON_IsNull(dec)) {
        p->has_decoder = true;
        if (!parse_decoder(&c, p, dec, "decoder", NULL)) goto fail;
    }
    t->byte_encode = p->n_pre && p->pre[p->n_pre - 1].kind == PRE_BYTE_LEVEL;
    /* ' ' is spelled U+2581 when a normalizer or Metaspace puts it there: pieces then print with spaces */
    for (size_t i = 0; i < p->n_norm; i++)
        if (p->norm[i].kind == NORM_REPLACE && p->norm[i].n_to == 1 && p->norm[i].to[0] == 0x2581)
            t->escape_spaces = true;
    for (size_t i = 0; i < p->n_pre; i++)
        if (p->pre[i].kind == PRE_METASPACE && p->pre[i].replacement == 0x2581) t->escape_spaces = true;
    t->model_name = vkl_strdup("hf-bpe");
    t->pre_name = vkl_strdup(gguf_pre ? gguf_pre : "default");

    /* <0xNN> byte tokens (byte_fallback) and GPT-2's byte characters (ByteLevel) */
    tok_build_byte_tokens(t);
    if (t->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (t->byte_tok[b] >= 0 && t->types[t->byte_tok[b]] == VKL_TOKEN_NORMAL)
                t->types[t->byte_tok[b]] = VKL_TOKEN_BYTE;

    /* added tokens into their tries; normalized ones are matched in their normalized spelling */
    for (size_t i = 0; i < p->n_added; i++) {
        const added_token *at = &p->added[i];
        size_t n;
        const char *s = vkl_tokenizer_token_text(t, at->id, &n);
        if (!n) continue;
        if (!at->normalized) {
            trie_add(&p->tries[0], s, n, (int32_t)i);
            continue;
        }
        cpt_vec v = {0};
        size_t nc;
        v.v = to_cpts(s, n, &nc);
        v.n = nc;
        v.cap = n + 1;
        normalize(p, &v);
        byte_vec b = {0};
        bv_cpts(&b, v.v, v.n);
        if (b.n) trie_add(&p->tries[1], b.v, b.n, (int32_t)i);
        free(v.v);
        free(b.v);
    }

    /* BOS / EOS: the post-processor's single tokens around the text; tokenizer_config.json may name them */
    if (p->n_prefix == 1) t->bos = p->prefix[0];
    if (p->n_suffix == 1) t->eos = p->suffix[0];
    if ((st = load_config(t, dir, err))) goto fail;
    t->add_bos = p->n_prefix > 0;
    t->add_eos = p->n_suffix > 0;
    if (p->n_prefix == 1) t->bos = p->prefix[0];
    if (p->n_suffix == 1 && t->eos < 0) t->eos = p->suffix[0];
    tok_find_eot(t);
    cJSON_Delete(root);
    free(file);
    free(dir);
    *out = t;
    return VKL_OK;
fail:
    cJSON_Delete(root);
    free(file);
    free(dir);
    vkl_tokenizer_free(t);
    return err->status ? err->status : VKL_ERR_INPUT;
}

const char *vkl_tokenizer_chat_template(const vkl_tokenizer *t) { return t->hf ? t->hf->chat_template : NULL; }

const char *vkl_tokenizer_source(const vkl_tokenizer *t) { return t->hf ? t->hf->source : NULL; }
