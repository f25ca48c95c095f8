/* Unicode helpers for the tokenizers: lenient UTF-8 decoding (as llama.cpp does it), code point classes from
 * the generated tables in unicode_data.c, GPT-2's byte<->unicode mapping and the BPE pre-tokenizer splitters. */
#ifndef VKLORA_UNICODE_H
#define VKLORA_UNICODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Code point classes: one per General Category major group, unassigned code points (Cn) apart.
 * The numbers are baked into src/unicode_data.c by tools/gen_unicode_tables.py. */
enum vkl_ucat {
    VKL_UCAT_UNASSIGNED = 0,
    VKL_UCAT_NUMBER = 1,    /* \p{N} */
    VKL_UCAT_LETTER = 2,    /* \p{L} */
    VKL_UCAT_SEPARATOR = 3, /* \p{Z} */
    VKL_UCAT_MARK = 4,      /* \p{M} */
    VKL_UCAT_PUNCT = 5,     /* \p{P} */
    VKL_UCAT_SYMBOL = 6,    /* \p{S} */
    VKL_UCAT_CONTROL = 7,   /* \p{C} without Cn */
};
#define VKL_UCAT_MASK 0x07u
#define VKL_UCAT_WHITESPACE 0x08u /* the White_Space property (\s) */

extern const char vkl_unicode_version[];
extern const uint16_t vkl_ucat_stage1[0x1100];
extern const uint8_t vkl_ucat_stage2[][256];

/* Class in bits 0-2 plus VKL_UCAT_WHITESPACE; code points past U+10FFFF read as unassigned. */
static inline unsigned vkl_ucpt_flags(uint32_t c) {
    return c < 0x110000 ? vkl_ucat_stage2[vkl_ucat_stage1[c >> 8]][c & 0xff] : 0;
}
static inline unsigned vkl_ucpt_class(uint32_t c) { return vkl_ucpt_flags(c) & VKL_UCAT_MASK; }
static inline bool vkl_ucpt_is_space(uint32_t c) { return (vkl_ucpt_flags(c) & VKL_UCAT_WHITESPACE) != 0; }

/* Byte length of a UTF-8 sequence from its lead byte, as llama.cpp's SPM splitter counts it: continuation and
 * invalid lead bytes count 1, 0xF8..0xFF count 4. The caller clamps to the bytes left. */
static inline size_t vkl_utf8_len(uint8_t lead) {
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[lead >> 4];
}

/* Decode one code point at s[0..n) (n >= 1). Lenient in the same way as llama.cpp: overlong forms and surrogates
 * decode to their value; a malformed or truncated sequence, or a value past U+10FFFF, yields U+FFFD and
 * consumes one byte. *adv receives the bytes consumed. */
uint32_t vkl_utf8_decode(const uint8_t *s, size_t n, size_t *adv);
/* Encode c (<= U+10FFFF) into out[0..4); returns the byte count. */
size_t vkl_utf8_encode(uint32_t c, char out[4]);
/* Decode a whole buffer into code points (cpts must hold n entries); returns the count. */
size_t vkl_utf8_to_cpts(const char *s, size_t n, uint32_t *cpts);

/* GPT-2's reversible byte -> code point mapping (printable bytes map to themselves, the other 68 to U+0100..). */
uint32_t vkl_gpt2_byte_to_cpt(uint8_t b);
/* The inverse: the byte for code point c, or -1 if c is not in the mapping's image. */
int vkl_gpt2_cpt_to_byte(uint32_t c);

/* BPE pre-tokenizers, chosen by tokenizer.ggml.pre. Each reproduces llama.cpp's list of regexes for that name: the
 * first regex splits the text into its matches and the text between them, each later regex splits every piece of
 * the previous one the same way. \s is the White_Space property, \p{..} a General Category major group. */
typedef enum {
    VKL_PRETOK_DEFAULT,   /* [\p{P}\$\+<=>\^~\|]+ ; GPT2 ; \p{N}+ ; [0-9][0-9][0-9] */
    VKL_PRETOK_GPT2,      /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    VKL_PRETOK_LLAMA3,    /* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                             ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    VKL_PRETOK_QWEN2,     /* as LLAMA3 with \p{N} single digits */
    VKL_PRETOK_QWEN35,    /* as QWEN2 with [\p{L}\p{M}]+ letter runs and [^\s\p{L}\p{M}\p{N}]+ symbol runs */
    VKL_PRETOK_FALCON,    /* [\p{P}\$\+<=>\^~\|`]+ ; GPT2 ; [0-9][0-9][0-9] */
    VKL_PRETOK_STARCODER, /* \p{N} ; GPT2 (also refact, command-r) */
    VKL_PRETOK_DEEPSEEK_LLM,   /* [\r\n] ; \s?<cased letters>+ ; \s?<ASCII and fullwidth punctuation>+ ; \s+$ ;
                                  <CJK and Hangul>+ ; \p{N}+ */
    VKL_PRETOK_DEEPSEEK_CODER, /* [\r\n] ; \s?\p{L}+ ; \s?\p{P}+ ; <CJK and Hangul>+ ; \p{N} */
    VKL_PRETOK_NEWLINES,       /* [^\n]+|[\n]+ (Gemma 4: BPE over whole lines) */
    VKL_PRETOK_TEKKEN,  /* [^\r\n\p{L}\p{N}]?<Up>*<Lo>+|[^\r\n\p{L}\p{N}]?<Up>+<Lo>*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|
                           \s*[\r\n]+|\s+(?!\S)|\s+ */
    VKL_PRETOK_GPT4O,   /* as TEKKEN with an optional contraction ('s 't 're 've 'm 'll 'd, any ASCII case) after
                           each letter run, and \p{N}{1,3} (o200k: Phi-4-mini, Llama 4, MiniMax-M2) */
    /* The same regexes as a regex engine with Unicode properties runs them (Hugging Face's tokenizers: Oniguruma):
     * <Up> is [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and <Lo> [\p{Ll}\p{Lm}\p{Lo}\p{M}] exactly, so ÜBER is one word. */
    VKL_PRETOK_TEKKEN_EXACT,       /* tekken's tokenizer.json regex (Mistral Nemo, Small 3.x) */
    VKL_PRETOK_GPT4O_EXACT,        /* o200k's tokenizer.json regex (Phi-4-mini, Llama 4) */
} vkl_pretok;
/* <Up> and <Lo> are llama.cpp's rewriting of [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and [\p{Ll}\p{Lm}\p{Lo}\p{M}]: <Up> is
 * \p{L} but a-z, <Lo> is \p{L} but A-Z. Its regex engine sees one class for all letters, so every non-ASCII
 * letter is both (ÜBER splits as Ü BER, unlike tokenizer.json's regex) and marks are neither. */
/* The DeepSeek classes are spelled out in src/unicode.c; <CJK and Hangul> is U+0800..U+9FA5, U+AC00..U+D7FF. */

/* Split cpts[0..n) into words. Writes each word's length in code points to lens (room for n entries) and
 * returns the number of words; the lengths sum to n. */
size_t vkl_pretokenize(vkl_pretok kind, const uint32_t *cpts, size_t n, size_t *lens);

/* Unicode canonical composition (NFC) of cpts[0..n) into *out (malloc'd / grown with vkl_realloc, capacity *cap);
 * returns the output length. Tables: src/unicode_nfc_data.c (tools/gen_unicode_nfc.py, Unicode 15.0). Text whose
 * code points are all below U+0300 is returned as it is (nothing there composes or reorders). */
size_t vkl_nfc(const uint32_t *cpts, size_t n, uint32_t **out, size_t *cap);
extern const uint32_t vkl_nfc_ccc[][2];
extern const size_t vkl_nfc_ccc_n;
extern const uint32_t vkl_nfc_decomp[][3];
extern const size_t vkl_nfc_decomp_n;
extern const uint32_t vkl_nfc_decomp_pool[];
extern const uint64_t vkl_nfc_compose[][2];
extern const size_t vkl_nfc_compose_n;
/* Letter case ranges {first, last, 1: Lu/Lt, 2: Ll} (src/unicode_nfc_data.c); other letters are Lm/Lo. */
extern const uint32_t vkl_letter_case[][3];
extern const size_t vkl_letter_case_n;

#endif
