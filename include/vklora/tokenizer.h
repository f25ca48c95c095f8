/* Tokenizers read from GGUF metadata, token for token as llama.cpp tokenizes: SentencePiece-style
 * (tokenizer.ggml.model "llama"), byte-level BPE ("gpt2", with the pre-tokenizers of Llama 3, GPT-2, Qwen2 / 3.5,
 * Falcon, MPT, StarCoder, Refact, Command-R, DeepSeek LLM / Coder, Mistral's tekken, o200k's gpt-4o, "default"
 * and names sharing their rules) and
 * Gemma 4's BPE over UTF-8 ("gemma4"). */
#ifndef VKLORA_TOKENIZER_H
#define VKLORA_TOKENIZER_H

#include "vklora/common.h"
#include "vklora/gguf.h"

typedef struct vkl_tokenizer vkl_tokenizer;

typedef enum {
    VKL_TOKENIZER_SPM = 1, /* "llama": score-ordered bigram merges, byte fallback to <0xNN> */
    VKL_TOKENIZER_BPE = 2, /* "gpt2": byte-level BPE with ranked merges; "gemma4": the same over UTF-8 */
} vkl_tokenizer_kind;

/* tokenizer.ggml.token_type values. */
typedef enum {
    VKL_TOKEN_UNDEFINED = 0,
    VKL_TOKEN_NORMAL = 1,
    VKL_TOKEN_UNKNOWN = 2,
    VKL_TOKEN_CONTROL = 3,      /* <s>, </s>, <|eot_id|>: matched in text only with parse_special */
    VKL_TOKEN_USER_DEFINED = 4, /* always matched in text before normal tokenization */
    VKL_TOKEN_UNUSED = 5,
    VKL_TOKEN_BYTE = 6, /* <0xNN> */
} vkl_token_type;

/* Build a tokenizer from the GGUF's tokenizer.ggml.* keys. Copies everything it needs: the GGUF may be closed
 * afterwards. A missing or malformed vocabulary is VKL_ERR_INPUT with a message naming the key and what was
 * expected (e.g. "tokenizer: tokenizer.ggml.scores: 511 entries, expected one per token (512)"); so is a
 * tokenizer.ggml.model or tokenizer.ggml.pre this file does not implement (the message names it): such a
 * vocabulary is never tokenized with another one's rules. A BPE file without tokenizer.ggml.pre gets "default",
 * as in llama.cpp. */
vkl_status vkl_tokenizer_load(const vkl_gguf *g, vkl_tokenizer **out, vkl_err *err);
void vkl_tokenizer_free(vkl_tokenizer *tok);

/* Tokenize text[0..len) (UTF-8; invalid bytes are tolerated as llama.cpp does).
 * add_bos: add the special tokens the vocabulary asks for, as llama.cpp's add_special: BOS first when
 *   tokenizer.ggml.add_bos_token (default: true for SPM and llama-bpe, false otherwise; always for Gemma 4), EOS
 *   last when tokenizer.ggml.add_eos_token (default false).
 * parse_special: text of control/unknown tokens ("<s>", "<|im_end|>") becomes those tokens; user-defined
 *   tokens are split out either way, as in llama.cpp. Like llama.cpp, end-of-generation and fill-in-the-middle
 *   markers (</s>, <|endoftext|>, <|fim_prefix|>, ...) count as control tokens whatever the file's type says,
 *   and Phi-3's special tokens take the whitespace after them (vkl_tokenizer_token_strip).
 * *ids is malloc'd (free() it; NULL when *n is 0). */
vkl_status vkl_tokenize(const vkl_tokenizer *tok, const char *text, size_t len, bool add_bos, bool parse_special,
                        int32_t **ids, size_t *n, vkl_err *err);

/* ids -> text: byte tokens become their byte, SPM's (and Gemma 4's) U+2581 a space, byte-level BPE pieces their
 * bytes (a character outside GPT-2's byte map stays itself; llama.cpp prints an [UNK_BYTE_..] marker there). The
 * space SPM puts in front of the text (and after each special token) is removed again, so
 * detokenize(tokenize(x)) == x for valid UTF-8 x whose bytes the vocabulary can spell (and no whitespace next to
 * a special token that strips it). render_special: control/unknown tokens print their text, otherwise nothing.
 * *text is malloc'd and NUL-terminated (free() it); ids outside the vocabulary are VKL_ERR_INPUT. */
vkl_status vkl_detokenize(const vkl_tokenizer *tok, const int32_t *ids, size_t n, bool render_special, char **text,
                          size_t *len, vkl_err *err);

/* The bytes one token stands for (as vkl_detokenize renders it, without any space removal), snprintf-style:
 * writes at most cap bytes (no NUL) and returns the full length; 0 for ids outside the vocabulary. */
size_t vkl_token_to_piece(const vkl_tokenizer *tok, int32_t id, bool render_special, char *buf, size_t cap);

vkl_tokenizer_kind vkl_tokenizer_kind_of(const vkl_tokenizer *tok);
/* "llama", "gpt2" or "gemma4"; and the pre-tokenizer name as stored ("gemma4" for Gemma 4, NULL for SPM). */
const char *vkl_tokenizer_model_name(const vkl_tokenizer *tok);
const char *vkl_tokenizer_pre_name(const vkl_tokenizer *tok);
int32_t vkl_tokenizer_n_vocab(const vkl_tokenizer *tok);
/* Special ids, -1 when the vocabulary has none. EOT is tokenizer.ggml.eot_token_id, else a token spelled like
 * an end-of-turn marker (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, ...). */
int32_t vkl_tokenizer_bos(const vkl_tokenizer *tok);
int32_t vkl_tokenizer_eos(const vkl_tokenizer *tok);
int32_t vkl_tokenizer_eot(const vkl_tokenizer *tok);
int32_t vkl_tokenizer_unk(const vkl_tokenizer *tok);
int32_t vkl_tokenizer_pad(const vkl_tokenizer *tok);
bool vkl_tokenizer_adds_bos(const vkl_tokenizer *tok);
bool vkl_tokenizer_adds_eos(const vkl_tokenizer *tok);
/* The vocabulary entry as stored (e.g. "▁the", "Ġthe"), NUL-terminated; NULL for an id outside the vocabulary. */
const char *vkl_tokenizer_token_text(const vkl_tokenizer *tok, int32_t id, size_t *len);
vkl_token_type vkl_tokenizer_token_type(const vkl_tokenizer *tok, int32_t id);
/* Whitespace a special token swallows when it is split out of text (llama.cpp's per-model LSTRIP / RSTRIP, e.g.
 * Phi-3's tokens): bit 0 = the C-locale whitespace right before it, bit 1 = right after it. */
unsigned vkl_tokenizer_token_strip(const vkl_tokenizer *tok, int32_t id);
/* Id of the token spelled exactly text[0..len), or -1. */
int32_t vkl_tokenizer_find(const vkl_tokenizer *tok, const char *text, size_t len);

#endif
