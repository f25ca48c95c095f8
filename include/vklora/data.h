/* Training data: dataset files (raw text, alpaca, ShareGPT, messages, text records) rendered with a chat template,
 * tokenized into examples with loss labels, split for evaluation, shuffled per epoch and packed into batches.
 *
 * Pipeline, and the choices made on the way (the trainer relies on them):
 *
 *  Files. "auto" reads *.txt as raw text; otherwise the first non-blank byte decides: '[' is one JSON array of
 *  records, '{' is JSONL (one record per line, blank lines skipped). *.jsonl is always JSONL. The record format
 *  ("auto") comes from the first record's keys: "conversations" -> sharegpt, "messages" -> messages,
 *  "instruction" -> alpaca, the configured text_field ("text") -> text. Every record is then parsed as that format.
 *  Errors name the file, the row (1-based record index in a JSON array, the line number in JSONL), the field as a
 *  JSON path and what was expected:  data: x.json: row 17: field "conversations[2].from": expected a string.
 *  Invalid JSON is reported as line:column. An empty dataset (nothing trainable left) is an error.
 *
 *  Records.
 *   - raw text (.txt): [BOS] + the whole file, tokenized once, cut into consecutive windows of max_seq_length
 *     tokens; each window is an example whose tokens all train (row = window number, 1-based). Special-token
 *     text in the file ("<|endoftext|>" between documents) becomes the special token: there it is a separator.
 *   - text records {text_field: "..."}: [BOS] + text + EOS, all trained (TRL appends EOS to language-modeling
 *     data so packed documents stay separated); special-token text in it stays text. train_on_responses_only
 *     does not apply: there is no response.
 *   - alpaca {instruction, input?, output, system?}: user = instruction, input = extra context, assistant = output.
 *     The alpaca template renders the Stanford Alpaca prompt; the other templates get one user turn
 *     "instruction\ninput" (LLaMA-Factory's joining) and one assistant turn.
 *   - ShareGPT {conversations: [{from, value}], system?}: from human|user -> user, gpt|assistant -> assistant,
 *     system -> system, function_call -> assistant (the model must produce the call, so it trains),
 *     observation|tool|ipython -> tool (the tool's answer is input, never trained). A top-level "system" string is
 *     the system turn when the conversation has none. "tools" is ignored.
 *   - messages {messages: [{role, content}]}: the same role names as ShareGPT.
 *     Both conversation formats also accept the other key pair ({role, content} in ShareGPT and vice versa).
 *   - A conversation without an assistant turn is skipped and counted (stats.n_skipped_no_assistant): there is
 *     nothing to learn a response from. A record with "label": false (KTO's undesirable answers) is skipped and
 *     counted (stats.n_skipped_rejected): supervised fine-tuning would teach exactly what it marks as bad.
 *
 *  Templates (see vkl_data_encode_chat for the exact strings). "auto" recognises the GGUF's
 *  tokenizer.chat_template by distinctive markup (vkl_data_detect_template): the families of real models
 *  (Llama 3.1/3.2, Qwen2.5, Qwen3, SmolLM3, Gemma 2/3/4, Phi-3.5, Mistral Nemo / Small 3, DeepSeek-R1 distills,
 *  gpt-oss) render byte for byte what the template renders in Hugging Face transformers (jinja2 with
 *  trim_blocks/lstrip_blocks; bos_token/eos_token = the tokenizer's BOS/EOS text as llama.cpp passes them;
 *  add_generation_prompt false; tools, enable_thinking, reasoning_effort and the like undefined; strftime_now
 *  defined, from vkl_chat_opts.now). Generic markup falls back to the first-generation templates (<|im_start|>
 *  chatml, <|start_header_id|> llama-3, [INST] with <<SYS>> llama-2, [INST] mistral, "### Instruction" alpaca).
 *  A model without a template gets alpaca (plain English markup works with any vocabulary); a template that is
 *  none of these is an error naming dataset.template, which forces one. The template used is in vkl_dataset.tmpl.
 *
 *  Tokenization. The template's special markers (<|im_start|>, <|eot_id|>, ...) become their single special-token
 *  ids when the vocabulary has them as control/user-defined tokens (else they stay text); BOS/EOS are the
 *  tokenizer's ids. Everything between two special tokens - markup text and content together - is tokenized in
 *  one piece with parse_special off, exactly as llama.cpp tokenizes the whole rendered prompt (special tokens split
 *  the text there too). So training ids equal inference ids, SentencePiece's space prefix lands where it lands at
 *  inference, and special-token text inside user content stays plain text. A special token that swallows the
 *  whitespace next to it in llama.cpp's tokenizer (Phi-3's RSTRIP tokens: "<|user|>\n" is one token) swallows it
 *  here too: the whitespace stays in the rendered text but gets no id. BOS is added once at the start when the
 *  tokenizer adds BOS and the rendered sequence does not already start with it.
 *
 *  Labels. labels[i] = tokens[i] where the loss applies, -1 where masked. Without train_on_responses_only every
 *  token trains (the HF default). With it, only tokens overlapping an assistant turn's body train: what the
 *  template renders after the assistant's header (the part Unsloth's response_part ends at) up to and including
 *  the end-of-turn token(s) it appends (<|im_end|>, <|eot_id|>, <end_of_turn>, <turn|>, <|end|>, <|return|>,
 *  EOS); the separator after that ("\n") and everything else stay masked. The body is the content as the
 *  template transforms it (trimmed for Llama 3.x and Gemma, thinking stripped for Gemma 4 and DeepSeek-R1) plus,
 *  for Qwen3 and SmolLM3 in /no_think mode, the <think>...</think> block the template writes in front of it. A
 *  token straddling markup and content trains. labels[0] is never a target (nothing predicts the first token),
 *  so "trainable" below means a label != -1 at index >= 1. `vklora data` shows the trained tokens of a config.
 *  Examples longer than max_seq_length keep their start (stats.n_truncated); examples with no trainable token
 *  left are dropped (stats.n_dropped_untrainable).
 *
 *  Batches. Each epoch visits the examples in a Fisher-Yates order drawn from the counter-based RNG (a pure
 *  function of seed and epoch). Rows are T tokens. Without packing a row holds one example; with packing whole
 *  examples are appended to the current row in epoch order until the next one does not fit (next-fit, examples
 *  are never split: each keeps its full prefix in view). Unused row tails and the rows past the end of the epoch in
 *  its last batch are padding (pad id, else EOS, else 0) with target -1. Since the number of packed rows depends on
 *  the order, vkl_data_epoch_batches gives the exact count per epoch. */
#ifndef VKLORA_DATA_H
#define VKLORA_DATA_H

#include "vklora/common.h"
#include "vklora/config.h"
#include "vklora/tokenizer.h"

/* ---- Examples and datasets ---- */

typedef struct vkl_example {
    const int32_t *tokens; /* (n) token ids */
    const int32_t *labels; /* (n) tokens[i] where the loss applies, -1 where masked */
    uint32_t n;            /* 2 <= n <= max_seq_length */
    uint32_t row;          /* source row: 1-based record index (JSON array), line (JSONL) or window (.txt) */
} vkl_example;

typedef struct vkl_data_stats {
    uint64_t n_rows;                 /* records (or .txt windows) read from the file */
    uint64_t n_skipped_no_assistant; /* conversations without an assistant turn */
    uint64_t n_skipped_rejected;     /* records with "label": false */
    uint64_t n_truncated;            /* examples cut to max_seq_length */
    uint64_t n_dropped_untrainable;  /* examples without a trainable token (after truncation) */
    uint64_t n_tokens;               /* tokens of the kept examples */
    uint64_t n_trainable;            /* of those, labels != -1 at index >= 1 (the loss terms of one epoch) */
} vkl_data_stats;

/* An immutable list of examples. Owns everything it points to; free with vkl_dataset_free. */
typedef struct vkl_dataset {
    char *path;                /* the source file */
    vkl_dataset_format format; /* as read (never AUTO) */
    vkl_chat_template tmpl;    /* as applied (never AUTO; PLAIN for text data, which uses no template) */
    uint32_t n;                /* examples */
    vkl_example *ex;           /* (n) in file order */
    uint32_t max_len;          /* longest example */
    int32_t pad_id;            /* token that fills padding: the tokenizer's pad, else EOS, else 0 */
    vkl_data_stats stats;
    int32_t *store; /* tokens and labels of every example (internal) */
    char **text;    /* (n) rendered text of the first vkl_data_opts.keep_text examples (NULL past them; text
                     * records and raw windows: their detokenized ids); NULL when none was kept */
} vkl_dataset;

/* How one file is read; vkl_data_opts_from_config fills it from a config. */
typedef struct vkl_data_opts {
    vkl_dataset_format format;      /* AUTO detects */
    vkl_chat_template tmpl;         /* AUTO resolves with gguf_chat_template */
    const char *gguf_chat_template; /* the model's tokenizer.chat_template, may be NULL */
    const char *text_field;         /* record key of text records; NULL = "text" */
    uint32_t max_seq_length;        /* >= 2 */
    bool train_on_responses_only;
    uint32_t keep_text; /* keep the rendered text of this many examples (vkl_dataset.text); 0 = none */
    int64_t now;        /* strftime_now's time (seconds since 1970, UTC); 0 = $SOURCE_DATE_EPOCH, else now (local) */
} vkl_data_opts;

void vkl_data_opts_from_config(const vkl_config *c, const char *gguf_chat_template, vkl_data_opts *o);

/* Load the training set (c->dataset_path) and the evaluation set: c->eval_path when given, else - when
 * c->eval_ratio > 0 - the last ceil(eval_ratio * n) examples of a seeded shuffle (seed c->seed) of the training
 * file's examples, else *eval = NULL. Both keep file order. Splitting that leaves no training example is an error.
 * gguf_chat_template may be NULL. On failure nothing is returned (both NULL). */
vkl_status vkl_data_load(const vkl_config *c, const vkl_tokenizer *tok, const char *gguf_chat_template,
                         vkl_dataset **train, vkl_dataset **eval, vkl_err *err);
/* The same with the file options given (o from vkl_data_opts_from_config(c, ...), then adjusted). */
vkl_status vkl_data_load_opts(const vkl_config *c, const vkl_data_opts *o, const vkl_tokenizer *tok,
                              vkl_dataset **train, vkl_dataset **eval, vkl_err *err);
/* Load one file. */
vkl_status vkl_data_load_file(const char *path, const vkl_data_opts *o, const vkl_tokenizer *tok, vkl_dataset **out,
                              vkl_err *err);
void vkl_dataset_free(vkl_dataset *d);

/* Split d into the examples whose index is in keep[0..n_keep) (in that order) - a new dataset with copies. */
vkl_dataset *vkl_dataset_subset(const vkl_dataset *d, const uint32_t *keep, uint32_t n_keep);

/* ---- Templates ---- */

typedef enum { VKL_ROLE_SYSTEM = 0, VKL_ROLE_USER, VKL_ROLE_ASSISTANT, VKL_ROLE_TOOL, VKL_ROLE_COUNT } vkl_role;

typedef struct vkl_message {
    vkl_role role;
    const char *content; /* UTF-8, not necessarily NUL-terminated */
    size_t len;
} vkl_message;

/* The template "auto" means: `requested` when not AUTO, else the one recognised in gguf_chat_template (NULL:
 * alpaca; unrecognised: AUTO, which vkl_data_load_file reports as an error once a record needs a template). */
vkl_chat_template vkl_data_resolve_template(vkl_chat_template requested, const char *gguf_chat_template);
/* Which template a GGUF chat_template text looks like; AUTO when none is recognised. */
vkl_chat_template vkl_data_detect_template(const char *gguf_chat_template);

/* Render and tokenize one conversation. tmpl must not be AUTO. The renderings ({c} = content, <eos> = the
 * tokenizer's EOS id, <bos> its BOS id; "T:" marks what trains under train_on_responses_only):
 *  chatml:  per message "<|im_start|>{role}\n" T:"{c}<|im_end|>" "\n"; roles system/user/assistant/tool.
 *  llama-3: "<|begin_of_text|>", per message "<|start_header_id|>{role}<|end_header_id|>\n\n" T:"{c}<|eot_id|>";
 *           the tool role is "ipython" (Llama 3.1).
 *  llama-2: "<bos>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]" T:" {assistant} <eos>" then
 *           "<bos>[INST] {user} [/INST]" ... (HF's template without strip()).
 *  mistral: "<bos>[INST] {user} [/INST]" T:" {assistant}<eos>" "[INST] {user} [/INST]" ...; a system message
 *           is put in front of the first user message followed by "\n\n".
 *           For llama-2 and mistral tool messages count as user messages and consecutive same-side messages are
 *           joined with "\n\n", since these formats strictly alternate.
 *  alpaca:  "{preamble}\n\n" then per message: user "### Instruction:\n{c}\n\n", tool "### Input:\n{c}\n\n",
 *           assistant "### Response:\n" T:"{c}<eos>" (+ "\n\n" when more follows). The preamble is a leading
 *           system message, else Stanford Alpaca's: "Below is an instruction that describes a task, paired with an
 *           input that provides further context. Write a response that appropriately completes the request." when
 *           the conversation has an input (tool) message, else "Below is an instruction that describes a task.
 *           Write a response that appropriately completes the request."
 *  plain:   system "{c}\n", user "User: {c}\n", tool "Tool: {c}\n", assistant "Assistant: " T:"{c}<eos>"
 *           (+ "\n" when more follows).
 *  The families of real models render what their template renders (see the top of this file; exceptions the
 *  template raises - Gemma 2's "System role not supported", alternation checks of Gemma and Mistral, tool
 *  messages Mistral and gpt-oss cannot place - are VKL_ERR_INPUT with the template's message). Choices where the
 *  template depends on a variable: Llama 3.1 "Today Date: 26 Jul 2024" (it never calls strftime_now), Llama 3.2,
 *  Mistral Small and gpt-oss the date of strftime_now; Qwen3 and DeepSeek-R1 split "<think>...</think>" off the
 *  content as their templates do; SmolLM3's reasoning mode is /think unless the system message has /no_think;
 *  gpt-oss renders no analysis channel (messages have no "thinking") and ends the last assistant message with
 *  <|return|>; tool messages are placed where the template places role "tool" (Gemma 4, Phi-3.5: nowhere).
 * add_generation_prompt appends the assistant header (for generation, not training).
 * *tokens and *labels are malloc'd (free()). */
vkl_status vkl_data_encode_chat(const vkl_tokenizer *tok, vkl_chat_template tmpl, const vkl_message *msgs,
                                size_t n_msgs, bool responses_only, bool add_generation_prompt, int32_t **tokens,
                                int32_t **labels, size_t *n, vkl_err *err);

typedef struct vkl_chat_opts {
    bool responses_only;
    bool add_generation_prompt;
    int64_t now; /* strftime_now's time (seconds since 1970, formatted in UTC); 0 = $SOURCE_DATE_EPOCH (UTC),
                  * else the current local time, as transformers and llama.cpp do */
} vkl_chat_opts;

typedef struct vkl_chat_encoding {
    int32_t *tokens, *labels; /* (n) as vkl_data_encode_chat */
    size_t n;
    char *text;      /* the template's rendering (NUL-terminated; without a BOS the tokenizer adds) */
    size_t text_len;
} vkl_chat_encoding;

/* vkl_data_encode_chat that also returns the rendered text. Free with vkl_chat_encoding_free. */
vkl_status vkl_data_render_chat(const vkl_tokenizer *tok, vkl_chat_template tmpl, const vkl_message *msgs,
                                size_t n_msgs, const vkl_chat_opts *o, vkl_chat_encoding *out, vkl_err *err);
void vkl_chat_encoding_free(vkl_chat_encoding *c);

/* ---- Epochs and batches ---- */

/* perm[0..d->n) = the visiting order of epoch `epoch`: Fisher-Yates driven by Philox keyed by (seed, epoch). */
void vkl_data_epoch_order(const vkl_dataset *d, uint64_t seed, uint32_t epoch, uint32_t *perm);

/* One micro-batch. The caller allocates the four (B, T) arrays and sets B and T. */
typedef struct vkl_batch {
    uint32_t B, T;
    int32_t *tokens;    /* (B, T) input ids */
    int32_t *targets;   /* (B, T) next token of the same document where its label trains, else -1 */
    int32_t *pos;       /* (B, T) position inside its document (RoPE position) */
    int32_t *seg;       /* (B, T) row index t of its document's first token: attention may look at [seg, t] */
    uint32_t n_targets; /* number of targets != -1 (the loss is their mean) */
} vkl_batch;

/* Which examples fill which rows in one epoch. */
typedef struct vkl_data_plan {
    uint32_t B, T;
    bool packing;
    uint32_t n_rows;     /* rows holding data */
    uint32_t n_batches;  /* ceil(n_rows / B) */
    uint32_t *row_start; /* (n_rows + 1) offsets into items */
    uint32_t *items;     /* (n) example indices, row after row */
} vkl_data_plan;

/* Plan an epoch over the order perm (NULL = file order). Every example must fit in T. */
vkl_status vkl_data_plan_epoch(const vkl_dataset *d, const uint32_t *perm, uint32_t B, uint32_t T, bool packing,
                               vkl_data_plan **out, vkl_err *err);
void vkl_data_plan_free(vkl_data_plan *p);
/* Fill batch `index` (0 <= index < n_batches). b->B must equal p->B; b->T may be below p->T as long as every row
 * of this batch fits (vkl_data_batch_len), for trainers that run short batches on short data. */
vkl_status vkl_data_fill_batch(const vkl_dataset *d, const vkl_data_plan *p, uint32_t index, vkl_batch *b,
                               vkl_err *err);
/* Tokens used by the longest row of batch `index`. */
uint32_t vkl_data_batch_len(const vkl_dataset *d, const vkl_data_plan *p, uint32_t index);

/* Rows and micro-batches epoch `epoch` yields (the same as planning it); 0 for an empty dataset or T too small. */
uint64_t vkl_data_epoch_rows(const vkl_dataset *d, uint64_t seed, uint32_t epoch, uint32_t T, bool packing);
uint64_t vkl_data_epoch_batches(const vkl_dataset *d, uint64_t seed, uint32_t epoch, uint32_t B, uint32_t T,
                                bool packing);

#endif
