/* UTF-8 decoding, GPT-2's byte mapping and the BPE pre-tokenizers as hand-written matchers over code points.
 * Each matcher follows its regex's alternation order (first alternative that matches wins, as in PCRE/ECMAScript). */
#include "unicode.h"

#include <stdlib.h>
#include <string.h>

#include "vklora/common.h"

uint32_t vkl_utf8_decode(const uint8_t *s, size_t n, size_t *adv) {
    uint8_t b0 = s[0];
    *adv = 1;
    if (b0 < 0x80) return b0;
    if ((b0 & 0xC0) == 0x80) return 0xFFFD; /* stray continuation byte */
    size_t len = (b0 & 0x20) == 0 ? 2 : (b0 & 0x10) == 0 ? 3 : (b0 & 0x08) == 0 ? 4 : 0;
    if (len == 0 || len > n) return 0xFFFD;
    uint32_t c = b0 & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0xFFFD;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if (c > 0x10FFFF) return 0xFFFD; /* llama.cpp throws here; a replacement keeps the text usable */
    *adv = len;
    return c;
}

size_t vkl_utf8_encode(uint32_t c, char out[4]) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

size_t vkl_utf8_to_cpts(const char *s, size_t n, uint32_t *cpts) {
    size_t i = 0, k = 0;
    while (i < n) {
        size_t adv;
        cpts[k++] = vkl_utf8_decode((const uint8_t *)s + i, n - i, &adv);
        i += adv;
    }
    return k;
}

/* ---- GPT-2 byte <-> unicode ---- */

/* Printable bytes map to themselves; the 68 others (0x00-0x20, 0x7F-0xA0, 0xAD) take U+0100.. in byte order. */
uint32_t vkl_gpt2_byte_to_cpt(uint8_t b) {
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x121 + (b - 0x7F);
    if (b == 0xAD) return 0x143;
    return b;
}

int vkl_gpt2_cpt_to_byte(uint32_t c) {
    if (c >= 0x100 && c <= 0x120) return (int)(c - 0x100);
    if (c >= 0x121 && c <= 0x142) return (int)(0x7F + (c - 0x121));
    if (c == 0x143) return 0xAD;
    if (c < 0x100 && vkl_gpt2_byte_to_cpt((uint8_t)c) == c) return (int)c;
    return -1;
}

/* ---- Pre-tokenizers ----
 * A matcher looks at one fragment cpts[b..e) and appends word lengths; the "default" chain runs several
 * matchers, each refining the fragments of the previous one (as llama.cpp applies its regex list). */

typedef struct {
    size_t *lens;
    size_t n;
} word_list;

static void emit(word_list *w, size_t len) {
    if (len) w->lens[w->n++] = len;
}

static bool is_letter(uint32_t c) { return vkl_ucpt_class(c) == VKL_UCAT_LETTER; }
static bool is_number(uint32_t c) { return vkl_ucpt_class(c) == VKL_UCAT_NUMBER; }
/* [^\s\p{L}\p{N}] */
static bool is_other(uint32_t c) {
    unsigned f = vkl_ucpt_flags(c);
    unsigned k = f & VKL_UCAT_MASK;
    return !(f & VKL_UCAT_WHITESPACE) && k != VKL_UCAT_LETTER && k != VKL_UCAT_NUMBER;
}
static bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
static uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Length of a contraction at cpts[p] ('s 't 're 've 'm 'll 'd), 0 if none. */
static size_t contraction(const uint32_t *cpts, size_t p, size_t e, bool fold_case) {
    if (cpts[p] != '\'' || p + 1 >= e) return 0;
    uint32_t c1 = fold_case ? ascii_lower(cpts[p + 1]) : cpts[p + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (p + 2 >= e) return 0;
    uint32_t c2 = fold_case ? ascii_lower(cpts[p + 2]) : cpts[p + 2];
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
}

/* \s+(?!\S) then \s+ at p: a whitespace run followed by more text gives back its last character, so that
 * the next word can start with it (" world"). Returns the end of the match, p if there is no whitespace. */
static size_t whitespace_run(const uint32_t *cpts, size_t p, size_t e) {
    size_t q = p;
    while (q < e && vkl_ucpt_is_space(cpts[q])) q++;
    if (q - p > 1 && q < e) return q - 1;
    return q;
}

static void split_gpt2(const uint32_t *cpts, size_t b, size_t e, word_list *w) {
    size_t p = b;
    while (p < e) {
        size_t start = p;
        size_t k = contraction(cpts, p, e, false);
        if (k) {
            emit(w, k);
            p += k;
            continue;
        }
        size_t q = p + (cpts[p] == ' ');
        if (q < e && is_letter(cpts[q])) { /* ' ?\p{L}+' */
            while (q < e && is_letter(cpts[q])) q++;
        } else if (q < e && is_number(cpts[q])) { /* ' ?\p{N}+' */
            while (q < e && is_number(cpts[q])) q++;
        } else if (q < e && is_other(cpts[q])) { /* ' ?[^\s\p{L}\p{N}]+' */
            while (q < e && is_other(cpts[q])) q++;
        } else {
            q = whitespace_run(cpts, p, e);
            if (q == p) q = p + 1; /* unreachable with complete classes; keeps progress guaranteed */
        }
        emit(w, q - start);
        p = q;
    }
}

static void split_llama3(const uint32_t *cpts, size_t b, size_t e, size_t max_digits, word_list *w) {
    size_t p = b;
    while (p < e) {
        uint32_t c = cpts[p];
        size_t q;
        size_t k = contraction(cpts, p, e, true);
        if (k) {
            q = p + k;
        } else if (!is_crlf(c) && !is_number(c) && (is_letter(c) || (p + 1 < e && is_letter(cpts[p + 1])))) {
            /* [^\r\n\p{L}\p{N}]?\p{L}+ : one optional non-letter lead, then letters */
            q = p + 1;
            while (q < e && is_letter(cpts[q])) q++;
        } else if (is_number(c)) { /* \p{N}{1,3} (\p{N} for Qwen2) */
            q = p;
            while (q < e && q - p < max_digits && is_number(cpts[q])) q++;
        } else if ((c == ' ' && p + 1 < e && is_other(cpts[p + 1])) || is_other(c)) {
            /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
            q = p + (c == ' ');
            while (q < e && is_other(cpts[q])) q++;
            while (q < e && is_crlf(cpts[q])) q++;
        } else {
            /* \s*[\r\n]+ ends at the last CR/LF of the whitespace run; else \s+(?!\S); else \s+ */
            size_t r = p, last_crlf = 0;
            while (r < e && vkl_ucpt_is_space(cpts[r])) {
                if (is_crlf(cpts[r])) last_crlf = r + 1;
                r++;
            }
            if (last_crlf)
                q = last_crlf;
            else
                q = whitespace_run(cpts, p, e);
            if (q == p) q = p + 1;
        }
        emit(w, q - p);
        p = q;
    }
}

/* [\p{P}\$\+<=>\^~\|]+ */
static bool is_default_punct(uint32_t c) {
    return vkl_ucpt_class(c) == VKL_UCAT_PUNCT || (c < 0x80 && c && strchr("$+<=>^~|", (int)c));
}

/* Split into maximal runs of in-class / out-of-class code points (a '[class]+' regex and its gaps). */
static void split_runs(const uint32_t *cpts, size_t b, size_t e, bool (*in_class)(uint32_t), word_list *w) {
    size_t p = b;
    while (p < e) {
        bool in = in_class(cpts[p]);
        size_t q = p + 1;
        while (q < e && in_class(cpts[q]) == in) q++;
        emit(w, q - p);
        p = q;
    }
}

static bool is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }

/* [0-9][0-9][0-9]: leftmost non-overlapping triples of ASCII digits; the text between stays whole. */
static void split_digit_triples(const uint32_t *cpts, size_t b, size_t e, word_list *w) {
    size_t gap = b, p = b;
    while (p + 3 <= e) {
        if (is_ascii_digit(cpts[p]) && is_ascii_digit(cpts[p + 1]) && is_ascii_digit(cpts[p + 2])) {
            emit(w, p - gap);
            emit(w, 3);
            p += 3;
            gap = p;
        } else {
            p++;
        }
    }
    emit(w, e - gap);
}

typedef enum { PASS_PUNCT, PASS_GPT2, PASS_NUMBER, PASS_TRIPLES, PASS_LLAMA3, PASS_QWEN2 } pass_kind;

static void run_pass(pass_kind pass, const uint32_t *cpts, size_t b, size_t e, word_list *w) {
    switch (pass) {
    case PASS_PUNCT: split_runs(cpts, b, e, is_default_punct, w); break;
    case PASS_GPT2: split_gpt2(cpts, b, e, w); break;
    case PASS_NUMBER: split_runs(cpts, b, e, is_number, w); break;
    case PASS_TRIPLES: split_digit_triples(cpts, b, e, w); break;
    case PASS_LLAMA3: split_llama3(cpts, b, e, 3, w); break;
    case PASS_QWEN2: split_llama3(cpts, b, e, 1, w); break;
    }
}

size_t vkl_pretokenize(vkl_pretok kind, const uint32_t *cpts, size_t n, size_t *lens) {
    static const pass_kind chain_default[] = {PASS_PUNCT, PASS_GPT2, PASS_NUMBER, PASS_TRIPLES};
    static const pass_kind chain_gpt2[] = {PASS_GPT2};
    static const pass_kind chain_llama3[] = {PASS_LLAMA3};
    static const pass_kind chain_qwen2[] = {PASS_QWEN2};
    const pass_kind *chain;
    size_t n_pass;
    switch (kind) {
    case VKL_PRETOK_GPT2: chain = chain_gpt2, n_pass = 1; break;
    case VKL_PRETOK_LLAMA3: chain = chain_llama3, n_pass = 1; break;
    case VKL_PRETOK_QWEN2: chain = chain_qwen2, n_pass = 1; break;
    default: chain = chain_default, n_pass = VKL_ARRAY_LEN(chain_default); break;
    }
    if (n == 0) return 0;

    word_list out = {lens, 0};
    if (n_pass == 1) {
        run_pass(chain[0], cpts, 0, n, &out);
        return out.n;
    }
    /* Later passes refine the fragments of earlier ones: ping-pong between lens and a scratch list. */
    size_t *scratch = vkl_malloc(n * sizeof(size_t));
    word_list cur = {(n_pass % 2) ? scratch : lens, 0}; /* so that the last pass writes lens */
    cur.lens[cur.n++] = n;
    for (size_t ps = 0; ps < n_pass; ps++) {
        word_list next = {cur.lens == lens ? scratch : lens, 0};
        size_t b = 0;
        for (size_t i = 0; i < cur.n; i++) {
            run_pass(chain[ps], cpts, b, b + cur.lens[i], &next);
            b += cur.lens[i];
        }
        cur = next;
    }
    free(scratch);
    return cur.n;
}
