/* Tokenizers read from GGUF metadata, token for token as llama.cpp tokenizes: SentencePiece-style
 * (tokenizer.ggml.model "llama"), byte-level BPE ("gpt2", with the pre-tokenizers of Llama 3, GPT-2, Qwen2 / 3.5,
 * Falcon, MPT, StarCoder, Refact, Command-R, DeepSeek LLM / Coder, Mistral's tekken, o200k's gpt-4o, "default"
 * and names sharing their rules) and
 * Gemma 4's BPE over UTF-8 ("gemma4"); or from a Hugging Face tokenizer.json, token for token as Hugging Face's
 * tokenizers library encodes and decodes (vkl_tokenizer_load_hf). Both kinds share one vkl_tokenizer API. */
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

/* Build a tokenizer from a Hugging Face tokenizer.json, token for token as Hugging Face's tokenizers library
 * encodes and decodes. path: the tokenizer.json file, or a folder holding one; tokenizer_config.json (and
 * chat_template.jinja) are read from the same folder when present. Supported: model BPE (vocab, merges as "a b"
 * strings or ["a","b"] pairs, byte_fallback, fuse_unk, unk_token, ignore_merges); normalizers NFC, Replace
 * (string pattern), Prepend, Sequence; pre-tokenizers Split (the exact regexes of Llama 3, Qwen2/3 and GPT-2, or
 * a string pattern with any behavior), Digits, ByteLevel, Metaspace, Sequence; post-processors TemplateProcessing,
 * ByteLevel, RobertaProcessing, BertProcessing, Sequence; decoders ByteLevel, ByteFallback, Fuse, Replace, Strip,
 * Metaspace, Sequence; added tokens with special / lstrip / rstrip / normalized / single_word. Anything else (a
 * WordPiece / Unigram / WordLevel model, another regex or component), malformed JSON, or a missing or mistyped
 * field is VKL_ERR_INPUT with a message naming the file and the JSON field.
 * With such a tokenizer, vkl_tokenize's add_bos adds the post-processor's tokens around the text (HF's
 * add_special_tokens; tokenizer_config.json's add_bos_token / add_eos_token replace them for the Llama and Gemma
 * tokenizer classes, as transformers does), parse_special=false keeps special added tokens as text (HF's
 * encode_special_tokens; non-special added tokens are always split out), and vkl_detokenize runs the file's
 * decoder (render_special=false skips special added tokens, HF's skip_special_tokens). BOS / EOS / PAD / UNK come
 * from tokenizer_config.json's bos_token ... (the post-processor's single token before / after the text when it
 * names none). Token types: special added tokens are CONTROL, other added tokens USER_DEFINED, <0xNN> with
 * byte_fallback BYTE, unk_token UNKNOWN, ids no entry names UNUSED (empty text). */
vkl_status vkl_tokenizer_load_hf(const char *path, vkl_tokenizer **out, vkl_err *err);
/* The chat template tokenizer_config.json (its "default" one when it lists several) or chat_template.jinja
 * holds, for vkl_data_resolve_template as the GGUF's tokenizer.chat_template; NULL when none, or for a tokenizer
 * loaded from a GGUF (read tokenizer.chat_template there). Owned by the tokenizer. */
const char *vkl_tokenizer_chat_template(const vkl_tokenizer *tok);
/* The tokenizer.json path a tokenizer was loaded from; NULL for a GGUF vocabulary. */
const char *vkl_tokenizer_source(const vkl_tokenizer *tok);

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
/* "llama", "gpt2" or "gemma4"; and the pre-tokenizer name as stored ("gemma4" for Gemma 4, NULL for SPM).
 * From tokenizer.json: "hf-bpe", and the name llama.cpp gives the pre-tokenizer its Split regex is
 * ("llama-bpe", "qwen2", "gpt-2"; "default" without one). */
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
