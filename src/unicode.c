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
static bool is_letter_or_mark(uint32_t c) {
    unsigned k = vkl_ucpt_class(c);
    return k == VKL_UCAT_LETTER || k == VKL_UCAT_MARK;
}
/* [^\s\p{L}\p{M}\p{N}] */
static bool is_other_no_mark(uint32_t c) { return is_other(c) && vkl_ucpt_class(c) != VKL_UCAT_MARK; }
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

/* LLAMA3 / QWEN2 (max_digits 1) / QWEN35 (marks: letter runs take \p{M} too, symbol runs do not). */
static void split_llama3(const uint32_t *cpts, size_t b, size_t e, size_t max_digits, bool marks, word_list *w) {
    bool (*word)(uint32_t) = marks ? is_letter_or_mark : is_letter;
    bool (*other)(uint32_t) = marks ? is_other_no_mark : is_other;
    size_t p = b;
    while (p < e) {
        uint32_t c = cpts[p];
        size_t q;
        size_t k = contraction(cpts, p, e, true);
        if (k) {
            q = p + k;
        } else if (!is_crlf(c) && !is_number(c) && (word(c) || (p + 1 < e && word(cpts[p + 1])))) {
            /* [^\r\n\p{L}\p{N}]?\p{L}+ : one optional lead that is not a letter, then letters */
            q = p + 1;
            while (q < e && word(cpts[q])) q++;
        } else if (is_number(c)) { /* \p{N}{1,3} (\p{N} for Qwen) */
            q = p;
            while (q < e && q - p < max_digits && is_number(cpts[q])) q++;
        } else if ((c == ' ' && p + 1 < e && other(cpts[p + 1])) || other(c)) {
            /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
            q = p + (c == ' ');
            while (q < e && other(cpts[q])) q++;
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

/* Tekken's and o200k's cased letter classes as llama.cpp matches them: it rewrites [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
 * into (?=\p{L})[^a-z] and [\p{Ll}\p{Lm}\p{Lo}\p{M}] into (?=\p{L})[^A-Z], and its std::regex path reads every
 * non-ASCII letter as one collapsed byte, so such a letter is in both classes, whatever its case. */
static bool is_cased_upper(uint32_t c) { return is_letter(c) && !(c >= 'a' && c <= 'z'); }
static bool is_cased_lower(uint32_t c) { return is_letter(c) && !(c >= 'A' && c <= 'Z'); }

/* <Up>*<Lo>+ then <Up>+<Lo>* at s, as a backtracking matcher takes them: the upper run is greedy and gives back
 * code points one at a time until a lower run can start, so the first alternative ends the lower run that starts
 * at the last <Lo> code point of the upper run (or just after it). Returns the end, s if neither matches. */
static size_t cased_word(const uint32_t *cpts, size_t s, size_t e) {
    size_t u = s;
    while (u < e && is_cased_upper(cpts[u])) u++;
    for (size_t k = u + 1; k-- > s;) {
        if (k < e && is_cased_lower(cpts[k])) {
            size_t q = k;
            while (q < e && is_cased_lower(cpts[q])) q++;
            return q;
        }
    }
    return u; /* <Up>+<Lo>*: no <Lo> follows, or the first alternative would have taken it */
}

/* The alternatives of the tekken / o200k regexes after the letter runs, at p (no letter run starts there): the end
 * of \p{N}{1,max_digits} | ' ?[^\s\p{L}\p{N}]+[\r\n/]*' | \s*[\r\n]+ | \s+(?!\S) | \s+. */
static size_t cased_rest(const uint32_t *cpts, size_t p, size_t e, size_t max_digits) {
    uint32_t c = cpts[p];
    size_t q = p;
    if (is_number(c)) {
        while (q < e && q - p < max_digits && is_number(cpts[q])) q++;
    } else if ((c == ' ' && p + 1 < e && is_other(cpts[p + 1])) || is_other(c)) {
        q = p + (c == ' ');
        while (q < e && is_other(cpts[q])) q++;
        while (q < e && (is_crlf(cpts[q]) || cpts[q] == '/')) q++;
    } else {
        size_t r = p, last_crlf = 0;
        while (r < e && vkl_ucpt_is_space(cpts[r])) {
            if (is_crlf(cpts[r])) last_crlf = r + 1;
            r++;
        }
        q = last_crlf ? last_crlf : whitespace_run(cpts, p, e);
    }
    return q;
}

/* TEKKEN (max_digits 1) and GPT4O (max_digits 3, contractions after a letter run). Apart from the letter runs,
 * the alternatives are LLAMA3's, with '/' joining CR and LF after a symbol run. */
static void split_cased(const uint32_t *cpts, size_t b, size_t e, size_t max_digits, bool contractions,
                        word_list *w) {
    size_t p = b;
    while (p < e) {
        uint32_t c = cpts[p];
        size_t q = p;
        /* [^\r\n\p{L}\p{N}]? before the letters: a lead that is no letter only starts a word if a letter follows */
        size_t s = !is_crlf(c) && !is_letter(c) && !is_number(c) && p + 1 < e && is_letter(cpts[p + 1]) ? p + 1 : p;
        if (is_letter(cpts[s])) {
            q = cased_word(cpts, s, e);
            if (contractions) q += contraction(cpts, q, e, true);
        } else {
            q = cased_rest(cpts, p, e, max_digits);
        }
        if (q == p) q = p + 1; /* unreachable: every code point is a letter, number, space or other */
        emit(w, q - p);
        p = q;
    }
}

/* The exact classes: 1 for \p{Lu} / \p{Lt}, 2 for \p{Ll}, 0 for other letters (\p{Lm}, \p{Lo}) and non-letters. */
static unsigned letter_case(uint32_t c) {
    size_t lo = 0, hi = vkl_letter_case_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (vkl_letter_case[mid][1] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < vkl_letter_case_n && vkl_letter_case[lo][0] <= c ? vkl_letter_case[lo][2] : 0;
}
/* [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and [\p{Ll}\p{Lm}\p{Lo}\p{M}] */
static bool is_exact_upper(uint32_t c) {
    unsigned k = vkl_ucpt_class(c);
    return k == VKL_UCAT_MARK || (k == VKL_UCAT_LETTER && letter_case(c) != 2);
}
static bool is_exact_lower(uint32_t c) {
    unsigned k = vkl_ucpt_class(c);
    return k == VKL_UCAT_MARK || (k == VKL_UCAT_LETTER && letter_case(c) != 1);
}

/* <Up>*<Lo>+ at s as a backtracking engine takes it: the greedy upper run gives back code points until a lower run
 * can start. Returns the end, or s when there is no match. */
static size_t exact_upper_lower(const uint32_t *cpts, size_t s, size_t e) {
    size_t u = s;
    while (u < e && is_exact_upper(cpts[u])) u++;
    for (size_t k = u + 1; k-- > s;) {
        if (k < e && is_exact_lower(cpts[k])) {
            size_t q = k;
            while (q < e && is_exact_lower(cpts[q])) q++;
            return q;
        }
    }
    return s;
}

/* tokenizer.json's tekken / o200k regex, alternative by alternative in the regex's order:
 *   P?<Up>*<Lo>+C? | P?<Up>+<Lo>*C? | \p{N}{1,max_digits} | ' ?[^\s\p{L}\p{N}]+[\r\n/]*' | \s*[\r\n]+ | \s+(?!\S) | \s+
 * with P = [^\r\n\p{L}\p{N}] (tried taken first, then empty) and C an optional contraction. */
static void split_cased_exact(const uint32_t *cpts, size_t b, size_t e, size_t max_digits, bool contractions,
                              word_list *w) {
    size_t p = b;
    while (p < e) {
        uint32_t c = cpts[p];
        size_t q = p;
        bool lead = !is_crlf(c) && !is_letter(c) && !is_number(c) && p + 1 < e;
        size_t m = 0;
        /* first alternative: with the lead taken, then without */
        if (lead && (m = exact_upper_lower(cpts, p + 1, e)) > p + 1)
            q = m;
        else if ((m = exact_upper_lower(cpts, p, e)) > p)
            q = m;
        else {
            /* second alternative: P?<Up>+<Lo>* */
            size_t s = lead && is_exact_upper(cpts[p + 1]) ? p + 1 : is_exact_upper(c) ? p : SIZE_MAX;
            if (s != SIZE_MAX) {
                q = s;
                while (q < e && is_exact_upper(cpts[q])) q++;
                while (q < e && is_exact_lower(cpts[q])) q++;
            }
        }
        if (q > p) {
            if (contractions) q += contraction(cpts, q, e, true);
        } else {
            q = cased_rest(cpts, p, e, max_digits);
        }
        if (q == p) q = p + 1;
        emit(w, q - p);
        p = q;
    }
}

/* [\p{P}\$\+<=>\^~\|]+ and Falcon's class, which adds the backtick. */
static bool is_default_punct(uint32_t c) {
    return vkl_ucpt_class(c) == VKL_UCAT_PUNCT || (c < 0x80 && c && strchr("$+<=>^~|", (int)c));
}
static bool is_falcon_punct(uint32_t c) { return c == '`' || is_default_punct(c); }
static bool is_punct(uint32_t c) { return vkl_ucpt_class(c) == VKL_UCAT_PUNCT; }
static bool is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static bool is_newline(uint32_t c) { return c == '\n'; }

/* A class given as sorted, disjoint inclusive ranges. */
typedef struct {
    uint32_t lo, hi;
} cpt_range;

static bool in_ranges(const cpt_range *r, size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (c < r[mid].lo)
            hi = mid;
        else if (c > r[mid].hi)
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

/* DeepSeek LLM's split regexes (its tokenizer.json) name these classes literally. llama.cpp matches them with
 * std::wregex on text whose non-ASCII whitespace was replaced by U+000B, so a White_Space code point inside a
 * range (U+3000 below) only ever matches \s. The letters are Unicode's cased letters (L&). */
static const cpt_range deepseek_letters[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},       {0xD8, 0xF6},
    {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},     {0x295, 0x2AF},     {0x370, 0x373},
    {0x376, 0x377},     {0x37B, 0x37D},     {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},
    {0x38C, 0x38C},     {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},   {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},   {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},   {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B},   {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},   {0x1FD6, 0x1FDB},
    {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},   {0x2102, 0x2102},   {0x2107, 0x2107},
    {0x210A, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},
    {0x2128, 0x2128},   {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},   {0x2C7E, 0x2CE4},
    {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},   {0xA680, 0xA69B},   {0xA722, 0xA76F},
    {0xA771, 0xA787},   {0xA78B, 0xA78E},   {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},
    {0xFF21, 0xFF3A},   {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
/* ASCII punctuation and symbols, their fullwidth forms, quotation marks, CJK punctuation. */
static const cpt_range deepseek_punct[] = {
    {0x21, 0x2F}, {0x3A, 0x7E}, {0x2018, 0x201F}, {0x3000, 0x3002}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
};
/* CJK ideographs (and everything from U+0800 up to them) and Hangul. */
static const cpt_range deepseek_cjk[] = {{0x800, 0x9FA5}, {0xAC00, 0xD7FF}};

static bool is_deepseek_letter(uint32_t c) {
    return in_ranges(deepseek_letters, VKL_ARRAY_LEN(deepseek_letters), c);
}
static bool is_deepseek_punct(uint32_t c) {
    return !vkl_ucpt_is_space(c) && in_ranges(deepseek_punct, VKL_ARRAY_LEN(deepseek_punct), c);
}
static bool is_deepseek_cjk(uint32_t c) {
    return !vkl_ucpt_is_space(c) && in_ranges(deepseek_cjk, VKL_ARRAY_LEN(deepseek_cjk), c);
}

/* Split into the matches of '[class]+' and the text between them (a run of in-class and out-of-class code points
 * alternately). */
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

/* '[class]' without '+': every in-class code point alone, the text between them whole. */
static void split_singles(const uint32_t *cpts, size_t b, size_t e, bool (*in_class)(uint32_t), word_list *w) {
    size_t gap = b;
    for (size_t p = b; p < e; p++) {
        if (!in_class(cpts[p])) continue;
        emit(w, p - gap);
        emit(w, 1);
        gap = p + 1;
    }
    emit(w, e - gap);
}

/* '\s?[class]+' (the class holds no whitespace): the leftmost match starts at a whitespace followed by the
 * class, or at the class itself. */
static void split_space_runs(const uint32_t *cpts, size_t b, size_t e, bool (*in_class)(uint32_t), word_list *w) {
    size_t gap = b, p = b;
    while (p < e) {
        size_t q = p;
        if (vkl_ucpt_is_space(cpts[p]) && p + 1 < e && in_class(cpts[p + 1]))
            q = p + 1;
        else if (!in_class(cpts[p])) {
            p++;
            continue;
        }
        while (q < e && in_class(cpts[q])) q++;
        emit(w, p - gap);
        emit(w, q - p);
        p = gap = q;
    }
    emit(w, e - gap);
}

/* '\s+$': the whitespace that ends the piece. */
static void split_trailing_space(const uint32_t *cpts, size_t b, size_t e, word_list *w) {
    size_t r = e;
    while (r > b && vkl_ucpt_is_space(cpts[r - 1])) r--;
    emit(w, r - b);
    emit(w, e - r);
}

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

typedef enum {
    PASS_PUNCT,          /* [\p{P}\$\+<=>\^~\|]+ */
    PASS_PUNCT_FALCON,   /* [\p{P}\$\+<=>\^~\|`]+ */
    PASS_GPT2,
    PASS_NUMBER_RUNS,    /* \p{N}+ */
    PASS_NUMBER_SINGLE,  /* \p{N} */
    PASS_TRIPLES,        /* [0-9][0-9][0-9] */
    PASS_LLAMA3,
    PASS_QWEN2,
    PASS_QWEN35,
    PASS_CRLF_SINGLE,    /* [\r\n] */
    PASS_SPACE_LETTERS,  /* \s?\p{L}+ */
    PASS_SPACE_PUNCT,    /* \s?\p{P}+ */
    PASS_DS_LETTERS,     /* \s?<DeepSeek letters>+ */
    PASS_DS_PUNCT,       /* \s?<DeepSeek punctuation>+ */
    PASS_TRAILING_SPACE, /* \s+$ */
    PASS_CJK,            /* <DeepSeek CJK>+ */
    PASS_NEWLINES,       /* [^\n]+|[\n]+ */
    PASS_TEKKEN,
    PASS_GPT4O,
    PASS_TEKKEN_EXACT,
    PASS_GPT4O_EXACT,
} pass_kind;

static void run_pass(pass_kind pass, const uint32_t *cpts, size_t b, size_t e, word_list *w) {
    switch (pass) {
    case PASS_PUNCT: split_runs(cpts, b, e, is_default_punct, w); break;
    case PASS_PUNCT_FALCON: split_runs(cpts, b, e, is_falcon_punct, w); break;
    case PASS_GPT2: split_gpt2(cpts, b, e, w); break;
    case PASS_NUMBER_RUNS: split_runs(cpts, b, e, is_number, w); break;
    case PASS_NUMBER_SINGLE: split_singles(cpts, b, e, is_number, w); break;
    case PASS_TRIPLES: split_digit_triples(cpts, b, e, w); break;
    case PASS_LLAMA3: split_llama3(cpts, b, e, 3, false, w); break;
    case PASS_QWEN2: split_llama3(cpts, b, e, 1, false, w); break;
    case PASS_QWEN35: split_llama3(cpts, b, e, 1, true, w); break;
    case PASS_CRLF_SINGLE: split_singles(cpts, b, e, is_crlf, w); break;
    case PASS_SPACE_LETTERS: split_space_runs(cpts, b, e, is_letter, w); break;
    case PASS_SPACE_PUNCT: split_space_runs(cpts, b, e, is_punct, w); break;
    case PASS_DS_LETTERS: split_space_runs(cpts, b, e, is_deepseek_letter, w); break;
    case PASS_DS_PUNCT: split_space_runs(cpts, b, e, is_deepseek_punct, w); break;
    case PASS_TRAILING_SPACE: split_trailing_space(cpts, b, e, w); break;
    case PASS_CJK: split_runs(cpts, b, e, is_deepseek_cjk, w); break;
    case PASS_NEWLINES: split_runs(cpts, b, e, is_newline, w); break;
    case PASS_TEKKEN: split_cased(cpts, b, e, 1, false, w); break;
    case PASS_GPT4O: split_cased(cpts, b, e, 3, true, w); break;
    case PASS_TEKKEN_EXACT: split_cased_exact(cpts, b, e, 1, false, w); break;
    case PASS_GPT4O_EXACT: split_cased_exact(cpts, b, e, 3, true, w); break;
    }
}

#define MAX_PASSES 6
static const struct {
    uint8_t n;
    pass_kind pass[MAX_PASSES];
} chains[] = {
    [VKL_PRETOK_DEFAULT] = {4, {PASS_PUNCT, PASS_GPT2, PASS_NUMBER_RUNS, PASS_TRIPLES}},
    [VKL_PRETOK_GPT2] = {1, {PASS_GPT2}},
    [VKL_PRETOK_LLAMA3] = {1, {PASS_LLAMA3}},
    [VKL_PRETOK_QWEN2] = {1, {PASS_QWEN2}},
    [VKL_PRETOK_QWEN35] = {1, {PASS_QWEN35}},
    [VKL_PRETOK_FALCON] = {3, {PASS_PUNCT_FALCON, PASS_GPT2, PASS_TRIPLES}},
    [VKL_PRETOK_STARCODER] = {2, {PASS_NUMBER_SINGLE, PASS_GPT2}},
    [VKL_PRETOK_DEEPSEEK_LLM] = {6, {PASS_CRLF_SINGLE, PASS_DS_LETTERS, PASS_DS_PUNCT, PASS_TRAILING_SPACE, PASS_CJK,
                                     PASS_NUMBER_RUNS}},
    [VKL_PRETOK_DEEPSEEK_CODER] = {5, {PASS_CRLF_SINGLE, PASS_SPACE_LETTERS, PASS_SPACE_PUNCT, PASS_CJK,
                                       PASS_NUMBER_SINGLE}},
    [VKL_PRETOK_NEWLINES] = {1, {PASS_NEWLINES}},
    [VKL_PRETOK_TEKKEN] = {1, {PASS_TEKKEN}},
    [VKL_PRETOK_GPT4O] = {1, {PASS_GPT4O}},
    [VKL_PRETOK_TEKKEN_EXACT] = {1, {PASS_TEKKEN_EXACT}},
    [VKL_PRETOK_GPT4O_EXACT] = {1, {PASS_GPT4O_EXACT}},
};

size_t vkl_pretokenize(vkl_pretok kind, const uint32_t *cpts, size_t n, size_t *lens) {
    if (n == 0) return 0;
    if ((unsigned)kind >= VKL_ARRAY_LEN(chains)) kind = VKL_PRETOK_DEFAULT;
    const pass_kind *chain = chains[kind].pass;
    size_t n_pass = chains[kind].n;

    word_list out = {lens, 0};
    if (n_pass == 1) {
        run_pass(chain[0], cpts, 0, n, &out);
        return out.n;
    }
    /* Later passes refine the pieces of earlier ones: ping-pong between lens and a scratch list. */
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

/* ---- NFC ----
 * Canonical decomposition (tables fully expanded; Hangul arithmetically), canonical ordering of each run of
 * non-starters (a stable sort by combining class), then canonical composition: a character combines with the last
 * starter when no character between them is blocked (same or higher class, or a starter). */

enum { HANGUL_S = 0xAC00, HANGUL_L = 0x1100, HANGUL_V = 0x1161, HANGUL_T = 0x11A7, HANGUL_LN = 19, HANGUL_VN = 21,
       HANGUL_TN = 28, HANGUL_NN = HANGUL_VN * HANGUL_TN, HANGUL_SN = HANGUL_LN * HANGUL_NN };

static unsigned nfc_ccc(uint32_t c) {
    if (c < 0x300) return 0;
    size_t lo = 0, hi = vkl_nfc_ccc_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (vkl_nfc_ccc[mid][0] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < vkl_nfc_ccc_n && vkl_nfc_ccc[lo][0] == c ? vkl_nfc_ccc[lo][1] : 0;
}

static const uint32_t *nfc_decomp(uint32_t c, size_t *len) {
    size_t lo = 0, hi = vkl_nfc_decomp_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (vkl_nfc_decomp[mid][0] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < vkl_nfc_decomp_n && vkl_nfc_decomp[lo][0] == c) {
        *len = vkl_nfc_decomp[lo][2];
        return vkl_nfc_decomp_pool + vkl_nfc_decomp[lo][1];
    }
    return NULL;
}

/* The primary composite of a + b, or 0. */
static uint32_t nfc_compose(uint32_t a, uint32_t b) {
    if (a >= HANGUL_L && a < HANGUL_L + HANGUL_LN && b >= HANGUL_V && b < HANGUL_V + HANGUL_VN)
        return HANGUL_S + ((a - HANGUL_L) * HANGUL_VN + (b - HANGUL_V)) * HANGUL_TN;
    if (a >= HANGUL_S && a < HANGUL_S + HANGUL_SN && (a - HANGUL_S) % HANGUL_TN == 0 && b > HANGUL_T &&
        b < HANGUL_T + HANGUL_TN)
        return a + (b - HANGUL_T);
    uint64_t key = (uint64_t)a << 32 | b;
    size_t lo = 0, hi = vkl_nfc_compose_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (vkl_nfc_compose[mid][0] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < vkl_nfc_compose_n && vkl_nfc_compose[lo][0] == key ? (uint32_t)vkl_nfc_compose[lo][1] : 0;
}

static void nfc_push(uint32_t **out, size_t *cap, size_t *n, uint32_t c) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *out = vkl_realloc(*out, *cap * sizeof(uint32_t));
    }
    (*out)[(*n)++] = c;
}

size_t vkl_nfc(const uint32_t *cpts, size_t n, uint32_t **out, size_t *cap) {
    bool simple = true;
    for (size_t i = 0; i < n && simple; i++) simple = cpts[i] < 0x300;
    size_t m = 0;
    if (simple) {
        for (size_t i = 0; i < n; i++) nfc_push(out, cap, &m, cpts[i]);
        return m;
    }
    /* decompose */
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cpts[i];
        if (c >= HANGUL_S && c < HANGUL_S + HANGUL_SN) {
            uint32_t s = c - HANGUL_S;
            nfc_push(out, cap, &m, HANGUL_L + s / HANGUL_NN);
            nfc_push(out, cap, &m, HANGUL_V + (s % HANGUL_NN) / HANGUL_TN);
            if (s % HANGUL_TN) nfc_push(out, cap, &m, HANGUL_T + s % HANGUL_TN);
            continue;
        }
        size_t len;
        const uint32_t *d = c < 0xC0 ? NULL : nfc_decomp(c, &len);
        if (!d) {
            nfc_push(out, cap, &m, c);
            continue;
        }
        for (size_t k = 0; k < len; k++) nfc_push(out, cap, &m, d[k]);
    }
    uint32_t *s = *out;
    /* canonical ordering: insertion sort inside each run of non-starters (runs are short) */
    for (size_t i = 1; i < m; i++) {
        unsigned ci = nfc_ccc(s[i]);
        if (ci == 0) continue;
        size_t j = i;
        while (j > 0) {
            unsigned cj = nfc_ccc(s[j - 1]);
            if (cj == 0 || cj <= ci) break;
            uint32_t t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
            j--;
        }
    }
    /* compose */
    size_t starter = SIZE_MAX, w = 0;
    int last_ccc = -1; /* class of the last character kept after the starter; -1: none yet */
    for (size_t i = 0; i < m; i++) {
        uint32_t c = s[i];
        unsigned cc = nfc_ccc(c);
        if (starter != SIZE_MAX && (last_ccc == -1 || (last_ccc != 0 && (unsigned)last_ccc < cc))) {
            uint32_t comp = nfc_compose(s[starter], c);
            if (comp) {
                s[starter] = comp;
                continue;
            }
        }
        if (cc == 0) {
            starter = w;
            last_ccc = -1;
        } else {
            last_ccc = (int)cc;
        }
        s[w++] = c;
    }
    return w;
}
