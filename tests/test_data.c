/* Data pipeline tests: templates token for token, response masks, formats and auto-detection, malformed files,
 * truncation, eval split, epoch order and packed batches, on the shared datasets and four vocabularies. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vklora/config.h"
#include "vklora/data.h"
#include "vklora/gguf.h"
#include "vklora/tokenizer.h"

/* ---- helpers ---- */

/* Tokenizers are loaded once per run (the BPE vocabularies take a moment) and freed at exit with the process. */
typedef struct {
    const char *rel;
    vkl_tokenizer *tok;
    char *chat_template;
} tok_slot;
static tok_slot slots[] = {{"vocab/ggml-vocab-llama-bpe.gguf", NULL, NULL},
                           {"vocab/ggml-vocab-qwen2.gguf", NULL, NULL},
                           {"vocab/ggml-vocab-llama-spm.gguf", NULL, NULL},
                           {"models/stories260K.gguf", NULL, NULL},
                           {"vocab/ggml-vocab-phi-3.gguf", NULL, NULL}};
enum { LLAMA3, QWEN2, SPM, STORIES, PHI3 };

static vkl_tokenizer *get_tok(int which, const char **chat_template) {
    tok_slot *s = &slots[which];
    if (!s->tok) {
        vkl_err err = {0};
        vkl_gguf *g = NULL;
        if (vkl_gguf_open(t_data_path(s->rel), &g, &err) || vkl_tokenizer_load(g, &s->tok, &err)) {
            fprintf(stderr, "    %s: %s\n", s->rel, err.msg);
        } else {
            const char *ct = vkl_gguf_get_str(g, "tokenizer.chat_template");
            s->chat_template = ct ? strdup(ct) : NULL;
        }
        vkl_gguf_close(g);
    }
    if (chat_template) *chat_template = s->chat_template;
    return s->tok;
}

static const char *tok_text(const vkl_tokenizer *tok, int32_t id) {
    size_t len;
    const char *s = vkl_tokenizer_token_text(tok, id, &len);
    return s ? s : "";
}

static char *detok(const vkl_tokenizer *tok, const int32_t *ids, size_t n) {
    char *s = NULL;
    size_t len;
    vkl_err err = {0};
    if (vkl_detokenize(tok, ids, n, true, &s, &len, &err)) {
        fprintf(stderr, "    detokenize: %s\n", err.msg);
        return strdup("<detokenize failed>");
    }
    return s;
}

static size_t count_id(const int32_t *ids, size_t n, int32_t id) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ids[i] == id;
    return c;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", t_tmpdir(), name);
    return buf[k];
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = 0;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    return j;
}

/* The trained stretches (labels != -1, contiguous) of a sequence, each detokenized, joined with "|". */
static char *trained_spans(const vkl_tokenizer *tok, const int32_t *ids, const int32_t *labels, size_t n) {
    size_t cap = 1024, at = 0;
    char *out = calloc(1, cap);
    for (size_t i = 0; i < n;) {
        if (labels[i] < 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && labels[j] >= 0) {
            if (labels[j] != ids[j]) return strdup("<label differs from its token>");
            j++;
        }
        char *s = detok(tok, ids + i, j - i);
        size_t need = strlen(s) + 2;
        if (at + need >= cap) out = realloc(out, cap = 2 * (at + need));
        at += (size_t)sprintf(out + at, "%s%s", at ? "|" : "", s);
        free(s);
        i = j;
    }
    return out;
}

/* Encode msgs with tmpl; check the ids equal the tokenization of `expected` with every special token parsed
 * (bos_prefix: a BOS the encoder is expected to add in front), the text round-trips, and - responses-only - the
 * trained stretches read `spans`. */
static int check_chat(int which, vkl_chat_template tmpl, const vkl_message *msgs, size_t n_msgs, const char *expected,
                      bool bos_prefix, const char *spans) {
    vkl_tokenizer *tok = get_tok(which, NULL);
    T_ASSERT(tok, "tokenizer %d", which);
    vkl_err err = {0};
    int32_t *ids = NULL, *labels = NULL, *want = NULL;
    size_t n = 0, nw = 0;
    T_ASSERT(!vkl_data_encode_chat(tok, tmpl, msgs, n_msgs, false, false, &ids, &labels, &n, &err), "%s", err.msg);
    T_ASSERT(!vkl_tokenize(tok, expected, strlen(expected), false, true, &want, &nw, &err), "%s", err.msg);
    size_t off = bos_prefix ? 1 : 0;
    if (bos_prefix) T_ASSERT(n > 0 && ids[0] == vkl_tokenizer_bos(tok), "BOS first");
    T_ASSERT(n == nw + off, "%zu tokens, expected %zu", n, nw + off);
    for (size_t i = 0; i < nw; i++)
        T_ASSERT(ids[i + off] == want[i], "token %zu: %d '%s', expected %d '%s'", i + off, ids[i + off],
                 tok_text(tok, ids[i + off]), want[i], tok_text(tok, want[i]));
    for (size_t i = 0; i < n; i++) T_ASSERT(labels[i] == ids[i], "every token trains without responses-only");
    char *text = detok(tok, ids + off, n - off);
    T_ASSERT(!strcmp(text, expected), "detokenized:\n%s\nexpected:\n%s", text, expected);
    free(text);
    free(ids);
    free(labels);
    free(want);

    T_ASSERT(!vkl_data_encode_chat(tok, tmpl, msgs, n_msgs, true, false, &ids, &labels, &n, &err), "%s", err.msg);
    T_ASSERT(n == nw + off, "same tokens with responses-only");
    char *got = trained_spans(tok, ids, labels, n);
    T_ASSERT(!strcmp(got, spans), "trained spans:\n%s\nexpected:\n%s", got, spans);
    free(got);
    free(ids);
    free(labels);
    return 0;
}

#define MSG(r, s)                                                                                                      \
    { (r), (s), sizeof(s) - 1 }

static const vkl_message tiny_chat[] = {
    MSG(VKL_ROLE_SYSTEM, "You are an AI assistant."),
    MSG(VKL_ROLE_USER, "What is the meaning of life?"),
    MSG(VKL_ROLE_ASSISTANT, "The meaning of life is 42."),
    MSG(VKL_ROLE_USER, "That's ridiculous."),
    MSG(VKL_ROLE_ASSISTANT, "I agree."),
};

/* ---- templates ---- */

static int test_chatml_qwen2(void) {
    const char *want = "<|im_start|>system\nYou are an AI assistant.<|im_end|>\n"
                       "<|im_start|>user\nWhat is the meaning of life?<|im_end|>\n"
                       "<|im_start|>assistant\nThe meaning of life is 42.<|im_end|>\n"
                       "<|im_start|>user\nThat's ridiculous.<|im_end|>\n"
                       "<|im_start|>assistant\nI agree.<|im_end|>\n";
    if (check_chat(QWEN2, VKL_TEMPLATE_CHATML, tiny_chat, 5, want, false,
                   "The meaning of life is 42.<|im_end|>|I agree.<|im_end|>"))
        return 1;
    /* markup became single special ids: 5 <|im_start|> and 5 <|im_end|> */
    vkl_tokenizer *tok = get_tok(QWEN2, NULL);
    int32_t *ids, *labels;
    size_t n;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_encode_chat(tok, VKL_TEMPLATE_CHATML, tiny_chat, 5, false, false, &ids, &labels, &n, &err), "%s",
             err.msg);
    int32_t im_start = vkl_tokenizer_find(tok, "<|im_start|>", 12), im_end = vkl_tokenizer_find(tok, "<|im_end|>", 10);
    T_ASSERT(im_start >= 0 && im_end >= 0, "qwen2 has the chatml tokens");
    T_ASSERT(count_id(ids, n, im_start) == 5 && count_id(ids, n, im_end) == 5, "one id per marker");
    T_ASSERT(ids[0] == im_start, "qwen2 adds no BOS: got %d", ids[0]);
    free(ids);
    free(labels);
    return 0;
}

static int test_llama3_bpe(void) {
    const char *want =
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are an AI assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is the meaning of life?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nThe meaning of life is 42.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nThat's ridiculous.<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nI agree.<|eot_id|>";
    if (check_chat(LLAMA3, VKL_TEMPLATE_LLAMA3, tiny_chat, 5, want, false,
                   "The meaning of life is 42.<|eot_id|>|I agree.<|eot_id|>"))
        return 1;
    vkl_tokenizer *tok = get_tok(LLAMA3, NULL);
    int32_t *ids, *labels;
    size_t n;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_encode_chat(tok, VKL_TEMPLATE_LLAMA3, tiny_chat, 5, false, false, &ids, &labels, &n, &err), "%s",
             err.msg);
    T_ASSERT(vkl_tokenizer_adds_bos(tok) && ids[0] == vkl_tokenizer_bos(tok), "begins with BOS");
    T_ASSERT(count_id(ids, n, vkl_tokenizer_bos(tok)) == 1, "BOS exactly once");
    T_ASSERT(count_id(ids, n, vkl_tokenizer_find(tok, "<|eot_id|>", 10)) == 5, "5 <|eot_id|>");
    free(ids);
    free(labels);
    /* a vocabulary without the markers keeps them as text (what llama.cpp does with such a template) */
    vkl_tokenizer *spm = get_tok(STORIES, NULL);
    T_ASSERT(spm, "stories260K");
    T_ASSERT(!vkl_data_encode_chat(spm, VKL_TEMPLATE_LLAMA3, tiny_chat, 2, false, false, &ids, &labels, &n, &err), "%s",
             err.msg);
    char *text = detok(spm, ids, n);
    T_ASSERT(ids[0] == vkl_tokenizer_bos(spm) && count_id(ids, n, vkl_tokenizer_bos(spm)) == 1, "BOS added once");
    T_ASSERT(!strcmp(text, "<s><|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are an AI "
                           "assistant.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWhat is the meaning of "
                           "life?<|eot_id|>"),
             "%s", text);
    free(text);
    free(ids);
    free(labels);
    /* tool output is the "ipython" role and never trains */
    const vkl_message tool[] = {MSG(VKL_ROLE_USER, "Weather?"), MSG(VKL_ROLE_ASSISTANT, "{\"call\": 1}"),
                                MSG(VKL_ROLE_TOOL, "{\"t\": 20}"), MSG(VKL_ROLE_ASSISTANT, "It is 20.")};
    return check_chat(LLAMA3, VKL_TEMPLATE_LLAMA3, tool, 4,
                      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWeather?<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n{\"call\": 1}<|eot_id|>"
                      "<|start_header_id|>ipython<|end_header_id|>\n\n{\"t\": 20}<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\nIt is 20.<|eot_id|>",
                      false, "{\"call\": 1}<|eot_id|>|It is 20.<|eot_id|>");
}

static int test_llama2_spm(void) {
    const char *want = "<s>[INST] <<SYS>>\nYou are an AI assistant.\n<</SYS>>\n\nWhat is the meaning of life? [/INST]"
                       " The meaning of life is 42. </s><s>[INST] That's ridiculous. [/INST] I agree. </s>";
    return check_chat(SPM, VKL_TEMPLATE_LLAMA2, tiny_chat, 5, want, false,
                      "The meaning of life is 42. </s>|I agree. </s>");
}

static int test_mistral_spm(void) {
    const char *want = "<s>[INST] You are an AI assistant.\n\nWhat is the meaning of life? [/INST] The meaning of life "
                       "is 42.</s>[INST] That's ridiculous. [/INST] I agree.</s>";
    if (check_chat(SPM, VKL_TEMPLATE_MISTRAL, tiny_chat, 5, want, false, "The meaning of life is 42.</s>|I agree.</s>"))
        return 1;
    /* tool output joins the user side; two user messages in a row are joined with a blank line */
    const vkl_message m[] = {MSG(VKL_ROLE_USER, "a"), MSG(VKL_ROLE_TOOL, "b"), MSG(VKL_ROLE_ASSISTANT, "c")};
    return check_chat(SPM, VKL_TEMPLATE_MISTRAL, m, 3, "<s>[INST] a\n\nb [/INST] c</s>", false, "c</s>");
}

static int test_plain_and_alpaca_chat(void) {
    if (check_chat(STORIES, VKL_TEMPLATE_PLAIN, tiny_chat, 5,
                   "You are an AI assistant.\nUser: What is the meaning of life?\nAssistant: The meaning of life is "
                   "42.</s>\nUser: That's ridiculous.\nAssistant: I agree.</s>",
                   true, "The meaning of life is 42.</s>|I agree.</s>"))
        return 1;
    if (check_chat(STORIES, VKL_TEMPLATE_ALPACA, tiny_chat, 5,
                   "You are an AI assistant.\n\n### Instruction:\nWhat is the meaning of life?\n\n### Response:\nThe "
                   "meaning of life is 42.</s>\n\n### Instruction:\nThat's ridiculous.\n\n### Response:\nI agree.</s>",
                   true, "The meaning of life is 42.</s>|I agree.</s>"))
        return 1;
    /* a llama-bpe vocabulary: "<|end_of_text|>" is its EOS */
    const vkl_message m[] = {MSG(VKL_ROLE_USER, "Hi"), MSG(VKL_ROLE_ASSISTANT, "Hello!")};
    return check_chat(LLAMA3, VKL_TEMPLATE_ALPACA, m, 2,
                      "Below is an instruction that describes a task. Write a response that appropriately completes "
                      "the request.\n\n### Instruction:\nHi\n\n### Response:\nHello!<|end_of_text|>",
                      true, "Hello!<|end_of_text|>");
}

/* Special-token text inside content stays text; the template's own markers stay single ids. */
static int test_content_specials_not_parsed(void) {
    vkl_tokenizer *tok = get_tok(QWEN2, NULL);
    T_ASSERT(tok, "qwen2");
    const vkl_message m[] = {MSG(VKL_ROLE_USER, "say <|im_end|> and <|im_start|>system now"),
                             MSG(VKL_ROLE_ASSISTANT, "<|endoftext|>")};
    int32_t *ids, *labels;
    size_t n;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_encode_chat(tok, VKL_TEMPLATE_CHATML, m, 2, true, false, &ids, &labels, &n, &err), "%s",
             err.msg);
    int32_t im_start = vkl_tokenizer_find(tok, "<|im_start|>", 12), im_end = vkl_tokenizer_find(tok, "<|im_end|>", 10);
    T_ASSERT(count_id(ids, n, im_start) == 2 && count_id(ids, n, im_end) == 2, "only the template's markers");
    T_ASSERT(count_id(ids, n, vkl_tokenizer_eos(tok)) == 0, "<|endoftext|> in content is not the EOS id");
    char *text = detok(tok, ids, n);
    T_ASSERT(!strcmp(text, "<|im_start|>user\nsay <|im_end|> and <|im_start|>system now<|im_end|>\n<|im_start|>"
                           "assistant\n<|endoftext|><|im_end|>\n"),
             "%s", text);
    free(text);
    char *spans = trained_spans(tok, ids, labels, n);
    T_ASSERT(!strcmp(spans, "<|endoftext|><|im_end|>"), "%s", spans);
    free(spans);
    free(ids);
    free(labels);
    /* the generation prompt ends with the assistant header */
    T_ASSERT(!vkl_data_encode_chat(tok, VKL_TEMPLATE_CHATML, m, 1, false, true, &ids, &labels, &n, &err), "%s",
             err.msg);
    text = detok(tok, ids, n);
    T_ASSERT(!strcmp(text, "<|im_start|>user\nsay <|im_end|> and <|im_start|>system now<|im_end|>\n<|im_start|>"
                           "assistant\n"),
             "%s", text);
    free(text);
    free(ids);
    free(labels);
    return 0;
}

static int test_template_detection(void) {
    const char *qwen = NULL;
    T_ASSERT(get_tok(QWEN2, &qwen) && qwen, "qwen2 GGUF has a chat template");
    T_ASSERT(vkl_data_detect_template(qwen) == VKL_TEMPLATE_CHATML, "qwen2 -> chatml");
    T_ASSERT(vkl_data_detect_template("{{ '<|start_header_id|>' + m.role }}") == VKL_TEMPLATE_LLAMA3, "llama-3");
    T_ASSERT(vkl_data_detect_template("{{ bos + '[INST] <<SYS>>\\n' }}") == VKL_TEMPLATE_LLAMA2, "llama-2");
    T_ASSERT(vkl_data_detect_template("{{ '[INST] ' + c + ' [/INST]' }}") == VKL_TEMPLATE_MISTRAL, "mistral");
    T_ASSERT(vkl_data_detect_template("{{ m.content }}") == VKL_TEMPLATE_AUTO, "unknown");
    T_ASSERT(vkl_data_resolve_template(VKL_TEMPLATE_AUTO, NULL) == VKL_TEMPLATE_ALPACA, "no template -> alpaca");
    T_ASSERT(vkl_data_resolve_template(VKL_TEMPLATE_AUTO, "{{ x }}") == VKL_TEMPLATE_AUTO, "unknown stays unresolved");
    T_ASSERT(vkl_data_resolve_template(VKL_TEMPLATE_AUTO, qwen) == VKL_TEMPLATE_CHATML, "auto -> gguf's");
    T_ASSERT(vkl_data_resolve_template(VKL_TEMPLATE_PLAIN, qwen) == VKL_TEMPLATE_PLAIN, "explicit wins");
    return 0;
}

/* ---- the real templates of /work/shared/data/templates against jinja2 ---- */

/* strftime_now's time in these tests: 2025-03-04 05:06:07 UTC, so dates in system prompts are fixed. */
#define TEST_NOW 1741064767

typedef struct {
    const char *file;       /* under templates/ (or hf/.../tokenizer_config.json) */
    vkl_chat_template tmpl; /* what auto-detection must find */
    int vocab;              /* tokenizer slot used to tokenize */
    const char *headers[3]; /* markup right before an assistant body in the reference text */
    const char *ends[3];    /* end-of-turn markup closing it (NULL + eos: the EOS text) */
} real_template;

static const real_template real_templates[] = {
    {"meta-llama-Llama-3.1-8B-Instruct.jinja", VKL_TEMPLATE_LLAMA31, LLAMA3,
     {"<|start_header_id|>assistant<|end_header_id|>\n\n"}, {"<|eot_id|>"}},
    {"meta-llama-Llama-3.2-3B-Instruct.jinja", VKL_TEMPLATE_LLAMA32, LLAMA3,
     {"<|start_header_id|>assistant<|end_header_id|>\n\n"}, {"<|eot_id|>"}},
    {"Qwen-Qwen2.5-7B-Instruct.jinja", VKL_TEMPLATE_QWEN25, QWEN2, {"<|im_start|>assistant\n"}, {"<|im_end|>"}},
    {"Qwen-Qwen3-0.6B.jinja", VKL_TEMPLATE_QWEN3, QWEN2, {"<|im_start|>assistant\n"}, {"<|im_end|>"}},
    {"HuggingFaceTB-SmolLM3-3B.jinja", VKL_TEMPLATE_SMOLLM3, LLAMA3, {"<|im_start|>assistant\n"}, {"<|im_end|>"}},
    {"google-gemma-2-2b-it.jinja", VKL_TEMPLATE_GEMMA2, SPM, {"<start_of_turn>model\n"}, {"<end_of_turn>"}},
    {"hf/gemma-3/tokenizer_config.json", VKL_TEMPLATE_GEMMA3, SPM, {"<start_of_turn>model\n"}, {"<end_of_turn>"}},
    {"google-gemma-4-31B-it.jinja", VKL_TEMPLATE_GEMMA4, SPM, {"<|turn>model\n"}, {"<turn|>"}},
    {"microsoft-Phi-3.5-mini-instruct.jinja", VKL_TEMPLATE_PHI35, PHI3, {"<|assistant|>\n"}, {"<|end|>"}},
    {"mistralai-Mistral-Nemo-Instruct-2407.jinja", VKL_TEMPLATE_MISTRAL_NEMO, SPM, {"[/INST]"}, {NULL}},
    {"Mistral-Small-3.2-24B-Instruct-2506.jinja", VKL_TEMPLATE_MISTRAL_SMALL, SPM, {"[/INST]"}, {NULL}},
    {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", VKL_TEMPLATE_DEEPSEEK_R1, QWEN2,
     {"<｜Assistant｜>", "<｜tool▁outputs▁end｜>"}, {"<｜end▁of▁sentence｜>"}},
    {"openai-gpt-oss-120b.jinja", VKL_TEMPLATE_GPT_OSS, LLAMA3, {"<|start|>assistant<|channel|>final<|message|>"},
     {"<|end|>", "<|return|>"}},
};

typedef struct {
    const char *name;
    size_t n;
    vkl_message m[6];
    bool gen;
} conv;

static const conv real_convs[] = {
    {"user/assistant", 2, {MSG(VKL_ROLE_USER, "Hello, who are you?"), MSG(VKL_ROLE_ASSISTANT, "I am a model.")}, false},
    {"system", 3,
     {MSG(VKL_ROLE_SYSTEM, "You are terse."), MSG(VKL_ROLE_USER, "Name a colour."), MSG(VKL_ROLE_ASSISTANT, "Red.")}, false},
    {"multi-turn with system", 5,
     {MSG(VKL_ROLE_SYSTEM, "You are an AI assistant."), MSG(VKL_ROLE_USER, "What is the meaning of life?"),
      MSG(VKL_ROLE_ASSISTANT, "The meaning of life is 42."), MSG(VKL_ROLE_USER, "That's ridiculous."),
      MSG(VKL_ROLE_ASSISTANT, "I agree.")}, false},
    {"multi-turn, spaces and unicode", 4,
     {MSG(VKL_ROLE_USER, "  Grüße aus Köln!\n\n"), MSG(VKL_ROLE_ASSISTANT, "\n Hallo — 東京 🙂 \n"),
      MSG(VKL_ROLE_USER, "\tand \"quotes\" \\ too"), MSG(VKL_ROLE_ASSISTANT, "  Sure:\n- a\n- b  ")}, false},
    {"think blocks", 4,
     {MSG(VKL_ROLE_USER, "2+2?"), MSG(VKL_ROLE_ASSISTANT, "<think>\nadd them\n</think>\n\n4"),
      MSG(VKL_ROLE_USER, "3+3?"), MSG(VKL_ROLE_ASSISTANT, "<think>\n\nsix\n\n</think>\n\n\n6")}, false},
    {"system with /no_think", 3,
     {MSG(VKL_ROLE_SYSTEM, "Be brief. /no_think  "), MSG(VKL_ROLE_USER, "Hi"), MSG(VKL_ROLE_ASSISTANT, "Hello.")}, false},
    {"empty system", 3, {MSG(VKL_ROLE_SYSTEM, ""), MSG(VKL_ROLE_USER, "Hi"), MSG(VKL_ROLE_ASSISTANT, "Hello.")}, false},
    {"tool output", 4,
     {MSG(VKL_ROLE_USER, "Weather in Oslo?"), MSG(VKL_ROLE_TOOL, "{\"temp\": 3, \"sky\": \"grey\"}"),
      MSG(VKL_ROLE_ASSISTANT, "3 degrees and grey."), MSG(VKL_ROLE_USER, "Thanks")}, false},
    {"two users in a row", 3,
     {MSG(VKL_ROLE_USER, "First"), MSG(VKL_ROLE_USER, "Second"), MSG(VKL_ROLE_ASSISTANT, "Both read.")}, false},
    {"system later", 4,
     {MSG(VKL_ROLE_USER, "Hi"), MSG(VKL_ROLE_ASSISTANT, "Hello."), MSG(VKL_ROLE_SYSTEM, "Now be formal."),
      MSG(VKL_ROLE_ASSISTANT, "Good day.")}, false},
    {"generation prompt", 3,
     {MSG(VKL_ROLE_SYSTEM, "You are terse."), MSG(VKL_ROLE_USER, "Name a colour."), MSG(VKL_ROLE_ASSISTANT, "Red.")},
     true},
};

/* A template's text: a .jinja file, or the chat_template of a tokenizer_config.json (malloc'd). */
static char *load_template(const char *file) {
    char rel[256];
    if (!strncmp(file, "hf/", 3)) {
        cJSON *j = read_json(t_data_path(file));
        const cJSON *ct = cJSON_GetObjectItem(j, "chat_template");
        char *s = cJSON_IsString(ct) ? strdup(ct->valuestring) : NULL;
        cJSON_Delete(j);
        return s;
    }
    snprintf(rel, sizeof(rel), "templates/%s", file);
    return t_read_file(t_data_path(rel), NULL);
}

static char *token_piece(const vkl_tokenizer *tok, int32_t id) {
    if (id < 0) return strdup("");
    char buf[256];
    size_t n = vkl_token_to_piece(tok, id, true, buf, sizeof(buf));
    n = n < sizeof(buf) ? n : sizeof(buf) - 1;
    buf[n] = 0;
    return strdup(buf);
}

static const char *role_name(vkl_role r) {
    static const char *const names[] = {"system", "user", "assistant", "tool"};
    return names[r];
}

/* Whitespace a special token swallows as llama.cpp splits it out (Phi-3): bit 0 before it, bit 1 after it. */
static unsigned tok_strip(const vkl_tokenizer *tok, int32_t id) {
    vkl_token_type ty = vkl_tokenizer_token_type(tok, id);
    if (ty != VKL_TOKEN_CONTROL && ty != VKL_TOKEN_USER_DEFINED) return 0;
    size_t len;
    const char *t = vkl_tokenizer_token_text(tok, id, &len);
    char a[300], b[300];
    snprintf(a, sizeof(a), "\t %s", t);
    snprintf(b, sizeof(b), "%s\t ", t);
    unsigned f = 0;
    for (int side = 0; side < 2; side++) {
        int32_t *ids = NULL;
        size_t n = 0;
        vkl_err err = {0};
        const char *s = side ? b : a;
        if (!vkl_tokenize(tok, s, strlen(s), false, true, &ids, &n, &err) && n == 1 && ids[0] == id) f |= 1u << side;
        free(ids);
    }
    return f;
}

/* Byte ranges of text[0..len) that must train: from each assistant header to the end of the end marker after it. */
static size_t expected_regions(const real_template *rt, const char *text, const char *eos, size_t *a, size_t *b,
                               size_t max) {
    size_t k = 0;
    const char *p = text;
    while (k < max) {
        const char *best = NULL;
        size_t hl = 0;
        for (int h = 0; h < 3 && rt->headers[h]; h++) {
            const char *q = strstr(p, rt->headers[h]);
            if (q && (!best || q < best)) best = q, hl = strlen(rt->headers[h]);
        }
        if (!best) break;
        const char *body = best + hl, *end = NULL;
        size_t el = 0;
        for (int h = 0; h < 3; h++) {
            const char *m = rt->ends[h] ? rt->ends[h] : (h == 0 ? eos : NULL);
            if (!m || !*m) continue;
            const char *q = strstr(body, m);
            if (q && (!end || q < end)) end = q, el = strlen(m);
        }
        if (!end) break;
        a[k] = (size_t)(body - text);
        b[k] = (size_t)(end + el - text);
        k++;
        p = end + el;
    }
    return k;
}

/* Every case: the C rendering equals jinja2's byte for byte (or both raise); the ids equal llama.cpp-style
 * tokenization of jinja2's text; responses-only labels train exactly the tokens overlapping the assistant bodies
 * found in jinja2's text (header .. end marker). */
static int compare_with_jinja(const conv *convs, size_t nc, bool check_masks) {
    size_t nt = VKL_ARRAY_LEN(real_templates);
    char *tmpl_text[VKL_ARRAY_LEN(real_templates)];
    vkl_chat_encoding *enc = calloc(nt * nc, sizeof(vkl_chat_encoding));
    char **errs = calloc(nt * nc, sizeof(char *));
    cJSON *spec = cJSON_CreateObject(), *cases = cJSON_AddArrayToObject(spec, "cases");
    for (size_t t = 0; t < nt; t++) {
        const real_template *rt = &real_templates[t];
        tmpl_text[t] = load_template(rt->file);
        T_ASSERT(tmpl_text[t], "%s: cannot read the template", rt->file);
        T_ASSERT(vkl_data_detect_template(tmpl_text[t]) == rt->tmpl, "%s: detected as %s, expected %s", rt->file,
                 vkl_chat_template_names[vkl_data_detect_template(tmpl_text[t])], vkl_chat_template_names[rt->tmpl]);
        vkl_tokenizer *tok = get_tok(rt->vocab, NULL);
        T_ASSERT(tok, "%s", slots[rt->vocab].rel);
        char *bos = token_piece(tok, vkl_tokenizer_bos(tok)), *eos = token_piece(tok, vkl_tokenizer_eos(tok));
        for (size_t c = 0; c < nc; c++) {
            const conv *cv = &convs[c];
            vkl_chat_opts o = {.responses_only = true, .add_generation_prompt = cv->gen, .now = TEST_NOW};
            vkl_err err = {0};
            if (vkl_data_render_chat(tok, rt->tmpl, cv->m, cv->n, &o, &enc[t * nc + c], &err)) errs[t * nc + c] = strdup(err.msg);
            cJSON *k = cJSON_CreateObject();
            cJSON_AddStringToObject(k, "template", tmpl_text[t]);
            cJSON_AddStringToObject(k, "bos_token", bos);
            cJSON_AddStringToObject(k, "eos_token", eos);
            cJSON_AddNumberToObject(k, "now", TEST_NOW);
            cJSON_AddBoolToObject(k, "add_generation_prompt", cv->gen);
            cJSON *ms = cJSON_AddArrayToObject(k, "messages");
            for (size_t i = 0; i < cv->n; i++) {
                cJSON *m = cJSON_CreateObject();
                cJSON_AddStringToObject(m, "role", role_name(cv->m[i].role));
                cJSON_AddStringToObject(m, "content", cv->m[i].content);
                cJSON_AddItemToArray(ms, m);
            }
            cJSON_AddItemToArray(cases, k);
        }
        free(bos);
        free(eos);
    }
    char *js = cJSON_PrintUnformatted(spec);
    cJSON_Delete(spec);
    const char *in = tmp_path("chat_spec.json"), *outp = tmp_path("chat_ref.json");
    write_file(in, js);
    free(js);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/ref_chat_template.py %s %s", VKL_SOURCE_ROOT, in, outp);
    char *perr = NULL;
    int rc = t_run(cmd, NULL, &perr);
    T_ASSERT(rc == 0, "%s failed (python3-jinja2 is needed: apt-get install python3-jinja2): %s", cmd,
             perr ? perr : "");
    free(perr);
    cJSON *ref = read_json(outp);
    T_ASSERT(cJSON_GetArraySize(ref) == (int)(nt * nc), "reference: %d results", cJSON_GetArraySize(ref));

    int failures = 0, checked_masks = 0, checked_ids = 0, raised = 0;
    for (size_t t = 0; t < nt; t++) {
        const real_template *rt = &real_templates[t];
        vkl_tokenizer *tok = get_tok(rt->vocab, NULL);
        char *bos = token_piece(tok, vkl_tokenizer_bos(tok)), *eos = token_piece(tok, vkl_tokenizer_eos(tok));
        for (size_t c = 0; c < nc && failures < 5; c++) {
            const cJSON *r = cJSON_GetArrayItem(ref, (int)(t * nc + c));
            const cJSON *rtext = cJSON_GetObjectItem(r, "text"), *rerr = cJSON_GetObjectItem(r, "error");
            const vkl_chat_encoding *e = &enc[t * nc + c];
            const char *what = convs[c].name;
            if (rerr) {
                raised++;
                if (!errs[t * nc + c]) {
                    fprintf(stderr, "    %s / %s: jinja2 raises \"%s\", vklora renders:\n%s\n", rt->file, what,
                            rerr->valuestring, e->text);
                    failures++;
                } else if (!strstr(errs[t * nc + c], rerr->valuestring)) {
                    fprintf(stderr, "    %s / %s: error \"%s\" does not carry the template's \"%s\"\n", rt->file,
                            what, errs[t * nc + c], rerr->valuestring);
                    failures++;
                }
                continue;
            }
            if (errs[t * nc + c]) {
                fprintf(stderr, "    %s / %s: vklora fails (%s), jinja2 renders:\n%s\n", rt->file, what,
                        errs[t * nc + c], rtext->valuestring);
                failures++;
                continue;
            }
            const char *want = rtext->valuestring;
            if (e->text_len != strlen(want) || memcmp(e->text, want, e->text_len)) {
                size_t d = 0;
                while (d < e->text_len && want[d] && e->text[d] == want[d]) d++;
                fprintf(stderr, "    %s / %s: renderings differ at byte %zu:\n--- vklora:\n%s\n--- jinja2:\n%s\n",
                        rt->file, what, d, e->text, want);
                failures++;
                continue;
            }
            /* ids: llama.cpp strips a leading bos_token when the vocabulary adds BOS, then tokenizes with
             * special tokens parsed */
            const char *tt = want;
            if (vkl_tokenizer_adds_bos(tok) && *bos && !strncmp(tt, bos, strlen(bos))) tt += strlen(bos);
            int32_t *ids = NULL;
            size_t n = 0;
            vkl_err err = {0};
            T_ASSERT(!vkl_tokenize(tok, tt, strlen(tt), true, true, &ids, &n, &err), "%s", err.msg);
            bool same = n == e->n;
            for (size_t i = 0; same && i < n; i++) same = ids[i] == e->tokens[i];
            if (!same) {
                fprintf(stderr, "    %s / %s: %zu ids, the reference text gives %zu\n", rt->file, what, e->n, n);
                for (size_t i = 0; i < n || i < e->n; i++)
                    if (i >= n || i >= e->n || ids[i] != e->tokens[i]) {
                        fprintf(stderr, "      first difference at %zu: %d '%s' vs %d '%s'\n", i,
                                i < e->n ? e->tokens[i] : -1, i < e->n ? tok_text(tok, e->tokens[i]) : "",
                                i < n ? ids[i] : -1, i < n ? tok_text(tok, ids[i]) : "");
                        break;
                    }
                failures++;
                free(ids);
                continue;
            }
            free(ids);
            checked_ids++;
            if (!check_masks) continue;
            /* labels: a token trains iff its bytes overlap an assistant body of the reference text */
            size_t ra[8], rb[8], nr = expected_regions(rt, tt, eos, ra, rb, 8);
            size_t n_asst = 0;
            for (size_t i = 0; i < convs[c].n; i++) n_asst += convs[c].m[i].role == VKL_ROLE_ASSISTANT;
            size_t at = 0, len = strlen(tt);
            bool aligned = true;
            char piece[256];
            for (size_t i = 0; i < e->n && aligned; i++) {
                /* whitespace a special token swallows (Phi-3) has no token */
                if ((i && (tok_strip(tok, e->tokens[i - 1]) & 2)) ||
                    (tok_strip(tok, e->tokens[i]) & 1))
                    while (at < len && strchr(" \t\n\v\f\r", tt[at])) at++;
                size_t pl = vkl_token_to_piece(tok, e->tokens[i], true, piece, sizeof(piece)), s0 = at;
                if (i == 0 && vkl_tokenizer_adds_bos(tok) && e->tokens[0] == vkl_tokenizer_bos(tok))
                    continue; /* the BOS the tokenizer adds */
                for (size_t k = 0; k < pl && aligned; k++) {
                    if (at < len && tt[at] == piece[k]) at++;
                    else if (piece[k] != ' ') aligned = false;
                }
                if (!aligned)
                    fprintf(stderr, "    token %zu '%s' does not match the text at byte %zu\n", i,
                            tok_text(tok, e->tokens[i]), s0);
                bool want_train = false;
                for (size_t k = 0; k < nr; k++) want_train |= s0 < rb[k] && at > ra[k];
                if (s0 == at || i == 0) continue;
                if ((e->labels[i] >= 0) != want_train) {
                    fprintf(stderr, "    %s / %s: token %zu '%s' (bytes %zu..%zu) %s, expected %s\n", rt->file,
                            what, i, tok_text(tok, e->tokens[i]), s0, at, e->labels[i] >= 0 ? "trains" : "masked",
                            want_train ? "trained" : "masked");
                    failures++;
                    break;
                }
            }
            if (e->n && (tok_strip(tok, e->tokens[e->n - 1]) & 2))
                while (at < len && strchr(" \t\n\v\f\r", tt[at])) at++;
            T_ASSERT(aligned && at == len, "%s / %s: pieces do not spell the text", rt->file, what);
            T_ASSERT(nr >= 1 && nr <= n_asst, "%s / %s: %zu assistant bodies for %zu assistant messages", rt->file,
                     what, nr, n_asst);
            checked_masks++;
        }
        free(bos);
        free(eos);
    }
    for (size_t i = 0; i < nt * nc; i++) {
        vkl_chat_encoding_free(&enc[i]);
        free(errs[i]);
    }
    for (size_t t = 0; t < nt; t++) free(tmpl_text[t]);
    free(enc);
    free(errs);
    cJSON_Delete(ref);
    T_ASSERT(!failures, "%d cases differ from jinja2", failures);
    if (check_masks)
        T_ASSERT(raised >= 5 && checked_masks >= (int)(nt * 5), "%d raising cases, %d masks compared", raised,
                 checked_masks);
    T_ASSERT(raised < (int)(nt * nc) && checked_ids >= (int)nc, "%d raising cases, %d compared", raised, checked_ids);
    return 0;
}

static int test_real_templates(void) { return compare_with_jinja(real_convs, VKL_ARRAY_LEN(real_convs), true); }

/* Random conversations (roles in any order, contents made of whitespace of every kind, think tags, flags, quotes,
 * non-ASCII): renderings, raised exceptions and ids against jinja2. */
static int test_random_templates(void) {
    static const char *const pieces[] = {"Hello", " ", "\n", "\n\n", "  ", "<think>", "</think>", "/think",
                                         "/no_think", "émoji 🙂", "\t", "a", "<channel|>", "<|channel>", "x y z",
                                         "\u00a0", "\u3000", "\r\n", "\"q\"", "\\", "\u2028", ".", "\x1f"};
    enum { N = 40 };
    conv *convs = calloc(N, sizeof(conv));
    char *pool[N * 6] = {0};
    size_t np = 0;
    t_rng_seed(0xC4A7);
    for (size_t c = 0; c < N; c++) {
        conv *cv = &convs[c];
        cv->name = "random";
        cv->n = 1 + t_rng_u32() % 6;
        bool has_assistant = false;
        for (size_t i = 0; i < cv->n; i++) {
            /* mostly alternating user/assistant after an optional system message, sometimes anything */
            vkl_role role = t_rng_u32() % 4 == 0 ? (vkl_role)(t_rng_u32() % VKL_ROLE_COUNT)
                            : i == 0 && t_rng_u32() % 2 ? VKL_ROLE_SYSTEM
                                                        : (i % 2 ? VKL_ROLE_USER : VKL_ROLE_ASSISTANT);
            if (i + 1 == cv->n && !has_assistant) role = VKL_ROLE_ASSISTANT;
            has_assistant |= role == VKL_ROLE_ASSISTANT;
            char *text = calloc(1, 256);
            for (uint32_t k = 0, nk = t_rng_u32() % 8; k < nk; k++)
                strcat(text, pieces[t_rng_u32() % VKL_ARRAY_LEN(pieces)]);
            pool[np++] = text;
            cv->m[i] = (vkl_message){role, text, strlen(text)};
        }
    }
    int rc = compare_with_jinja(convs, N, false);
    for (size_t i = 0; i < np; i++) free(pool[i]);
    free(convs);
    return rc;
}

/* An unrecognised GGUF template is an error that names dataset.template once a record needs a template; text
 * data needs none; forcing a template works; dates come from SOURCE_DATE_EPOCH when no time is given. */
static int test_unknown_template(void) {
    vkl_tokenizer *tok = get_tok(LLAMA3, NULL);
    T_ASSERT(tok, "llama-bpe");
    const char *chat = tmp_path("unknown_tmpl.json"), *txt = tmp_path("unknown_tmpl.txt");
    write_file(chat, "[{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                     "\"content\": \"Hello.\"}]}]");
    write_file(txt, "Once upon a time there was a model.");
    vkl_data_opts o = {.format = VKL_DATASET_AUTO, .tmpl = VKL_TEMPLATE_AUTO, .max_seq_length = 64,
                       .train_on_responses_only = true};
    o.gguf_chat_template = "{% for m in messages %}<<{{ m.role }}>>{{ m.content }}{% endfor %}";
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(vkl_data_load_file(chat, &o, tok, &d, &err) == VKL_ERR_INPUT && !d, "unknown template refused");
    T_ASSERT(strstr(err.msg, "dataset.template") && strstr(err.msg, "tokenizer.chat_template") &&
                 strstr(err.msg, "<<{{ m.role }}>>") && strstr(err.msg, "qwen-3"),
             "%s", err.msg);
    T_ASSERT(!vkl_data_load_file(txt, &o, tok, &d, &err), "text needs no template: %s", err.msg);
    vkl_dataset_free(d);
    o.tmpl = VKL_TEMPLATE_GEMMA3;
    o.keep_text = 1;
    T_ASSERT(!vkl_data_load_file(chat, &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->tmpl == VKL_TEMPLATE_GEMMA3 && d->text && d->text[0], "template and kept text");
    T_ASSERT(!strcmp(d->text[0], "<|begin_of_text|><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
                                 "Hello.<end_of_turn>\n"),
             "%s", d->text[0]);
    vkl_dataset_free(d);

    const vkl_message m[] = {MSG(VKL_ROLE_USER, "Hi"), MSG(VKL_ROLE_ASSISTANT, "Hello.")};
    vkl_chat_opts co = {0};
    vkl_chat_encoding e;
    setenv("SOURCE_DATE_EPOCH", "1741064767", 1);
    vkl_status st = vkl_data_render_chat(tok, VKL_TEMPLATE_LLAMA32, m, 2, &co, &e, &err);
    unsetenv("SOURCE_DATE_EPOCH");
    T_ASSERT(!st, "%s", err.msg);
    T_ASSERT(strstr(e.text, "Today Date: 04 Mar 2025\n"), "%s", e.text);
    vkl_chat_encoding_free(&e);
    co.now = 1000000000; /* 2001-09-09 01:46:40 UTC */
    T_ASSERT(!vkl_data_render_chat(tok, VKL_TEMPLATE_GPT_OSS, m, 2, &co, &e, &err), "%s", err.msg);
    T_ASSERT(strstr(e.text, "Current date: 2001-09-09\n"), "%s", e.text);
    vkl_chat_encoding_free(&e);
    return 0;
}

/* ---- files ---- */

static vkl_data_opts opts(vkl_dataset_format f, vkl_chat_template t, uint32_t max_seq, bool resp) {
    vkl_data_opts o = {.format = f, .tmpl = t, .max_seq_length = max_seq, .train_on_responses_only = resp};
    return o;
}

static const char *first_with_input(const cJSON *arr, int *index) {
    int i = 0;
    for (const cJSON *r = arr->child; r; r = r->next, i++) {
        const cJSON *in = cJSON_GetObjectItem(r, "input");
        if (cJSON_IsString(in) && *in->valuestring) {
            *index = i;
            return in->valuestring;
        }
    }
    return NULL;
}

/* alpaca_en_demo.json: 999 rows, 412 with an input; the Stanford prompt token for token on two rows. */
static int test_alpaca_file(void) {
    static const char *pre_in = "Below is an instruction that describes a task, paired with an input that provides "
                                "further context. Write a response that appropriately completes the request.\n\n";
    static const char *pre_no = "Below is an instruction that describes a task. Write a response that appropriately "
                                "completes the request.\n\n";
    const char *path = t_data_path("datasets/alpaca_en_demo.json");
    cJSON *j = read_json(path);
    T_ASSERT(cJSON_GetArraySize(j) == 999, "999 rows");
    int with_input = 0;
    for (const cJSON *r = j->child; r; r = r->next) {
        const cJSON *in = cJSON_GetObjectItem(r, "input");
        with_input += cJSON_IsString(in) && *in->valuestring;
    }
    T_ASSERT(with_input == 412, "412 rows with input, counted %d", with_input);

    for (int which = SPM; which <= STORIES; which++) {
        vkl_tokenizer *tok = get_tok(which, NULL);
        T_ASSERT(tok, "tokenizer");
        vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_AUTO, 100000, true);
        vkl_dataset *d = NULL;
        vkl_err err = {0};
        T_ASSERT(!vkl_data_load_file(path, &o, tok, &d, &err), "%s", err.msg);
        T_ASSERT(d->format == VKL_DATASET_ALPACA && d->tmpl == VKL_TEMPLATE_ALPACA, "detected alpaca, template alpaca");
        T_ASSERT(d->n == 999 && d->stats.n_rows == 999 && d->stats.n_truncated == 0, "999 examples, got %u", d->n);
        int n_input_prompts = 0;
        for (uint32_t e = 0; e < d->n; e++) {
            const vkl_example *x = &d->ex[e];
            char *text = detok(tok, x->tokens, x->n);
            n_input_prompts += strstr(text, "\n\n### Input:\n") != NULL;
            free(text);
            T_ASSERT(x->row == e + 1, "rows are 1-based record indices");
        }
        T_ASSERT(n_input_prompts == 412, "%d examples carry \"### Input:\"", n_input_prompts);

        /* row 1 (no input) and the first row with an input, by hand */
        int idx = 0;
        first_with_input(j, &idx);
        int rows[2] = {0, idx};
        const char *eos = tok_text(tok, vkl_tokenizer_eos(tok));
        for (int k = 0; k < 2; k++) {
            const cJSON *r = cJSON_GetArrayItem(j, rows[k]);
            const char *ins = cJSON_GetObjectItem(r, "instruction")->valuestring;
            const char *in = cJSON_GetObjectItem(r, "input")->valuestring;
            const char *out = cJSON_GetObjectItem(r, "output")->valuestring;
            size_t cap = strlen(ins) + strlen(in) + strlen(out) + 1024;
            char *want = malloc(cap);
            if (*in)
                snprintf(want, cap, "%s### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n%s%s", pre_in, ins, in,
                         out, eos);
            else
                snprintf(want, cap, "%s### Instruction:\n%s\n\n### Response:\n%s%s", pre_no, ins, out, eos);
            const vkl_example *x = &d->ex[rows[k]];
            T_ASSERT(x->tokens[0] == vkl_tokenizer_bos(tok) && x->tokens[x->n - 1] == vkl_tokenizer_eos(tok),
                     "BOS ... EOS");
            int32_t *ids;
            size_t n;
            T_ASSERT(!vkl_tokenize(tok, want, strlen(want), true, true, &ids, &n, &err), "%s", err.msg);
            T_ASSERT(n == x->n && !memcmp(ids, x->tokens, n * sizeof(int32_t)), "row %d: ids differ (%zu vs %u)",
                     rows[k] + 1, n, x->n);
            free(ids);
            char *text = detok(tok, x->tokens + 1, x->n - 1);
            T_ASSERT(!strcmp(text, want), "row %d:\n%s\nexpected\n%s", rows[k] + 1, text, want);
            free(text);
            char *spans = trained_spans(tok, x->tokens, x->labels, x->n);
            snprintf(want, cap, "%s%s", out, eos);
            T_ASSERT(!strcmp(spans, want), "row %d trains:\n%s\nexpected\n%s", rows[k] + 1, spans, want);
            free(spans);
            free(want);
        }
        vkl_dataset_free(d);
    }
    cJSON_Delete(j);
    return 0;
}

/* Alpaca records with a chat template: one user turn "instruction\ninput". */
static int test_alpaca_as_chat(void) {
    vkl_tokenizer *tok = get_tok(LLAMA3, NULL);
    T_ASSERT(tok, "llama-bpe");
    const char *path = tmp_path("alpaca_small.json");
    write_file(path, "[{\"instruction\": \"Add.\", \"input\": \"1 2\", \"output\": \"3\"},\n"
                     " {\"instruction\": \"Hi\", \"output\": \"Hello\", \"system\": \"Be brief.\"}]");
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_LLAMA3, 512, true);
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load_file(path, &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->n == 2, "2 examples");
    char *a = detok(tok, d->ex[0].tokens, d->ex[0].n), *b = detok(tok, d->ex[1].tokens, d->ex[1].n);
    T_ASSERT(!strcmp(a, "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nAdd.\n1 2<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\n3<|eot_id|>"),
             "%s", a);
    T_ASSERT(!strcmp(b, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                        "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"),
             "%s", b);
    free(a);
    free(b);
    vkl_dataset_free(d);
    return 0;
}

/* ShareGPT with tool calls (glaive): function_call trains as assistant, observation is a tool turn that does not. */
static int test_sharegpt_toolcall(void) {
    vkl_tokenizer *tok = get_tok(QWEN2, NULL);
    const char *ct = NULL;
    get_tok(QWEN2, &ct);
    T_ASSERT(tok, "qwen2");
    const char *path = t_data_path("datasets/sharegpt_glaive_toolcall_en_demo.json");
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_AUTO, 1u << 20, true);
    o.gguf_chat_template = ct;
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load_file(path, &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->format == VKL_DATASET_SHAREGPT && d->tmpl == VKL_TEMPLATE_CHATML, "sharegpt with the GGUF's chatml");
    cJSON *j = read_json(path);
    T_ASSERT((uint64_t)cJSON_GetArraySize(j) == d->stats.n_rows, "every row read");
    T_ASSERT(d->n + d->stats.n_skipped_no_assistant == d->stats.n_rows, "kept + skipped = rows");
    /* row 1 rebuilt here from the JSON with this test's own role table */
    const cJSON *conv = cJSON_GetObjectItem(cJSON_GetArrayItem(j, 0), "conversations");
    size_t cap = 1 << 16, at = 0, sat = 0;
    char *want = calloc(1, cap), *spans = calloc(1, cap);
    for (const cJSON *m = conv->child; m; m = m->next) {
        const char *from = cJSON_GetObjectItem(m, "from")->valuestring;
        const char *v = cJSON_GetObjectItem(m, "value")->valuestring;
        const char *role = !strcmp(from, "human")           ? "user"
                           : !strcmp(from, "gpt")           ? "assistant"
                           : !strcmp(from, "function_call") ? "assistant"
                           : !strcmp(from, "observation")   ? "tool"
                                                            : from;
        at += (size_t)snprintf(want + at, cap - at, "<|im_start|>%s\n%s<|im_end|>\n", role, v);
        if (!strcmp(role, "assistant"))
            sat += (size_t)snprintf(spans + sat, cap - sat, "%s%s<|im_end|>", sat ? "|" : "", v);
    }
    const vkl_example *x = &d->ex[0];
    T_ASSERT(x->row == 1, "row 1");
    char *text = detok(tok, x->tokens, x->n);
    T_ASSERT(!strcmp(text, want), "row 1:\n%s\nexpected\n%s", text, want);
    int32_t *ids;
    size_t n;
    T_ASSERT(!vkl_tokenize(tok, want, strlen(want), true, true, &ids, &n, &err), "%s", err.msg);
    T_ASSERT(n == x->n && !memcmp(ids, x->tokens, n * sizeof(int32_t)), "ids as llama.cpp tokenizes the prompt");
    free(ids);
    char *got = trained_spans(tok, x->tokens, x->labels, x->n);
    T_ASSERT(!strcmp(got, spans), "trains:\n%s\nexpected\n%s", got, spans);
    free(got);
    free(text);
    free(want);
    free(spans);
    cJSON_Delete(j);
    vkl_dataset_free(d);
    return 0;
}

/* messages (KTO demo): "label": false rows are skipped and counted. */
static int test_messages_kto(void) {
    vkl_tokenizer *tok = get_tok(LLAMA3, NULL);
    T_ASSERT(tok, "llama-bpe");
    const char *path = t_data_path("datasets/messages_kto_en_demo.json");
    cJSON *j = read_json(path);
    T_ASSERT(j, "parse");
    uint64_t n_false = 0, n_rows = 0;
    for (const cJSON *r = j->child; r; r = r->next, n_rows++) n_false += cJSON_IsFalse(cJSON_GetObjectItem(r, "label"));
    T_ASSERT(n_false > 0 && n_false < n_rows, "the demo has both labels");
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_AUTO, 1u << 20, false);
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load_file(path, &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->format == VKL_DATASET_MESSAGES && d->tmpl == VKL_TEMPLATE_ALPACA, "messages; no GGUF template: alpaca");
    T_ASSERT(d->stats.n_rows == n_rows && d->stats.n_skipped_rejected == n_false, "%llu of %llu skipped",
             (unsigned long long)d->stats.n_skipped_rejected, (unsigned long long)n_false);
    T_ASSERT(d->n == n_rows - n_false - d->stats.n_skipped_no_assistant - d->stats.n_dropped_untrainable, "counts");
    /* the first kept example is the first row with label true */
    int first = 0;
    for (const cJSON *r = j->child; r && cJSON_IsFalse(cJSON_GetObjectItem(r, "label")); r = r->next) first++;
    T_ASSERT(d->ex[0].row == (uint32_t)first + 1, "row of the first kept example");
    uint64_t total = 0;
    for (uint32_t i = 0; i < d->n; i++) total += d->ex[i].n;
    T_ASSERT(total == d->stats.n_tokens, "token count");
    /* that row by hand: alpaca's no-input prompt around the user and assistant messages */
    const cJSON *msgs = cJSON_GetObjectItem(cJSON_GetArrayItem(j, first), "messages");
    T_ASSERT(cJSON_GetArraySize(msgs) == 2, "one exchange");
    const char *u = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content")->valuestring;
    const char *a = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content")->valuestring;
    size_t cap = strlen(u) + strlen(a) + 512;
    char *want = malloc(cap);
    snprintf(want, cap,
             "<|begin_of_text|>Below is an instruction that describes a task. Write a response that appropriately "
             "completes the request.\n\n### Instruction:\n%s\n\n### Response:\n%s<|end_of_text|>",
             u, a);
    char *text = detok(tok, d->ex[0].tokens, d->ex[0].n);
    T_ASSERT(!strcmp(text, want), "row %d:\n%s\nexpected\n%s", first + 1, text, want);
    int32_t *ids;
    size_t n;
    T_ASSERT(!vkl_tokenize(tok, want, strlen(want), false, true, &ids, &n, &err), "%s", err.msg);
    T_ASSERT(n == d->ex[0].n && !memcmp(ids, d->ex[0].tokens, n * sizeof(int32_t)), "ids");
    free(ids);
    free(text);
    free(want);
    cJSON_Delete(j);
    vkl_dataset_free(d);
    return 0;
}

/* The tiny ShareGPT file through the config front door, with the qwen2 template and responses-only. */
static int test_load_config_sharegpt(void) {
    const char *ct = NULL;
    vkl_tokenizer *tok = get_tok(QWEN2, &ct);
    T_ASSERT(tok, "qwen2");
    vkl_config c;
    vkl_config_defaults(&c);
    c.dataset_path = strdup(t_data_path("datasets/sharegpt_chat_tiny.json"));
    c.train_on_responses_only = true;
    c.max_seq_length = 2048;
    vkl_dataset *tr = NULL, *ev = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load(&c, tok, ct, &tr, &ev, &err), "%s", err.msg);
    T_ASSERT(tr && !ev && tr->n == 1, "one example, no eval");
    char *spans = trained_spans(tok, tr->ex[0].tokens, tr->ex[0].labels, tr->ex[0].n);
    T_ASSERT(!strcmp(spans, "The meaning of life is 42.<|im_end|>|I agree.<|im_end|>"), "%s", spans);
    free(spans);
    vkl_dataset_free(tr);
    vkl_config_free(&c);
    return 0;
}

/* Raw text: [BOS] + the whole file in windows of max_seq_length tokens, all trained; "<|endoftext|>" is parsed. */
static int test_raw_text_windows(void) {
    for (int which = QWEN2; which <= STORIES; which += 2) { /* qwen2 (BPE, no BOS) and stories260K (SPM, BOS) */
        vkl_tokenizer *tok = get_tok(which, NULL);
        T_ASSERT(tok, "tokenizer");
        const char *path = t_data_path("datasets/tinystories_sample.txt");
        FILE *f = fopen(path, "rb");
        T_ASSERT(f, "open");
        char buf[8192];
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = 0;
        int32_t *ids;
        size_t n;
        vkl_err err = {0};
        T_ASSERT(!vkl_tokenize(tok, buf, len, true, true, &ids, &n, &err), "%s", err.msg);
        const uint32_t T = 64;
        vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_CHATML, T, true);
        vkl_dataset *d = NULL;
        T_ASSERT(!vkl_data_load_file(path, &o, tok, &d, &err), "%s", err.msg);
        T_ASSERT(d->format == VKL_DATASET_TEXT && d->tmpl == VKL_TEMPLATE_PLAIN, "raw text");
        size_t windows = (n + T - 1) / T, last = n - (windows - 1) * T;
        T_ASSERT(d->stats.n_rows == windows, "%llu windows, expected %zu", (unsigned long long)d->stats.n_rows,
                 windows);
        T_ASSERT(d->n == windows - (last < 2), "a one-token tail window trains nothing and is dropped");
        size_t at = 0;
        for (uint32_t i = 0; i < d->n; i++) {
            const vkl_example *x = &d->ex[i];
            T_ASSERT(x->row == i + 1 && (x->n == T || i == d->n - 1), "window %u", i);
            T_ASSERT(!memcmp(x->tokens, ids + at, x->n * sizeof(int32_t)), "window %u tokens", i);
            T_ASSERT(!memcmp(x->labels, x->tokens, x->n * sizeof(int32_t)), "all trained");
            at += x->n;
        }
        T_ASSERT(at + (last < 2 ? last : 0) == n, "windows cover the text");
        T_ASSERT((ids[0] == vkl_tokenizer_bos(tok)) == vkl_tokenizer_adds_bos(tok), "BOS as the vocabulary asks");
        int32_t eot = vkl_tokenizer_find(tok, "<|endoftext|>", 13);
        if (which == QWEN2) T_ASSERT(eot >= 0 && count_id(ids, n, eot) == 5, "5 document separators parsed");
        free(ids);
        vkl_dataset_free(d);
    }
    return 0;
}

/* The big raw file goes through in one piece too. */
static int test_raw_text_shakespeare(void) {
    vkl_tokenizer *tok = get_tok(STORIES, NULL);
    T_ASSERT(tok, "stories260K");
    vkl_data_opts o = opts(VKL_DATASET_TEXT, VKL_TEMPLATE_AUTO, 256, false);
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load_file(t_data_path("datasets/tinyshakespeare.txt"), &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->n > 1000 && d->max_len == 256, "%u windows", d->n);
    T_ASSERT(d->ex[0].tokens[0] == vkl_tokenizer_bos(tok) && d->ex[1].tokens[0] != vkl_tokenizer_bos(tok),
             "one BOS for the whole text");
    char *head = detok(tok, d->ex[0].tokens + 1, 32);
    T_ASSERT(!strncmp(head, "First Citizen", 13), "%s", head);
    free(head);
    vkl_dataset_free(d);
    return 0;
}

/* Text records (JSONL and JSON array): [BOS] + text + EOS each. */
static int test_text_records(void) {
    vkl_tokenizer *tok = get_tok(SPM, NULL);
    T_ASSERT(tok, "spm");
    const char *p1 = tmp_path("text.jsonl");
    write_file(p1, "{\"body\": \"Hello world\"}\n\n{\"body\": \"Second line <s> here\", \"x\": 1}\r\n");
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_AUTO, 64, true);
    o.text_field = "body";
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load_file(p1, &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->format == VKL_DATASET_TEXT && d->n == 2, "2 text records");
    T_ASSERT(d->ex[0].row == 1 && d->ex[1].row == 3, "rows are line numbers: %u %u", d->ex[0].row, d->ex[1].row);
    char *a = detok(tok, d->ex[0].tokens, d->ex[0].n), *b = detok(tok, d->ex[1].tokens, d->ex[1].n);
    T_ASSERT(!strcmp(a, "<s>Hello world</s>"), "%s", a);
    T_ASSERT(count_id(d->ex[1].tokens, d->ex[1].n, vkl_tokenizer_bos(tok)) == 1, "<s> in the text is not BOS");
    T_ASSERT(!strcmp(b, "<s>Second line <s> here</s>"), "%s", b);
    for (uint32_t i = 0; i < d->ex[0].n; i++) T_ASSERT(d->ex[0].labels[i] == d->ex[0].tokens[i], "all trained");
    free(a);
    free(b);
    vkl_dataset_free(d);
    /* the same as a JSON array with the default field name, format forced */
    const char *p2 = tmp_path("text.json");
    write_file(p2, "[{\"text\": \"Hello world\"}]");
    o = opts(VKL_DATASET_TEXT, VKL_TEMPLATE_AUTO, 64, false);
    T_ASSERT(!vkl_data_load_file(p2, &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->n == 1 && d->ex[0].n == 4 && d->ex[0].tokens[3] == vkl_tokenizer_eos(tok), "BOS Hello world EOS");
    vkl_dataset_free(d);
    return 0;
}

/* Truncation keeps the start; untrainable examples are dropped and counted. */
static int test_truncation(void) {
    vkl_tokenizer *tok = get_tok(STORIES, NULL);
    T_ASSERT(tok, "stories260K");
    const char *path = t_data_path("datasets/alpaca_en_demo.json");
    vkl_dataset *full = NULL, *cut = NULL, *resp = NULL;
    vkl_err err = {0};
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_ALPACA, 1u << 20, false);
    T_ASSERT(!vkl_data_load_file(path, &o, tok, &full, &err), "%s", err.msg);
    o.max_seq_length = 64;
    T_ASSERT(!vkl_data_load_file(path, &o, tok, &cut, &err), "%s", err.msg);
    T_ASSERT(cut->n == full->n && cut->max_len == 64, "every example kept when all tokens train");
    uint64_t longer = 0;
    for (uint32_t i = 0; i < full->n; i++) {
        longer += full->ex[i].n > 64;
        uint32_t m = full->ex[i].n < 64 ? full->ex[i].n : 64;
        T_ASSERT(cut->ex[i].n == m && !memcmp(cut->ex[i].tokens, full->ex[i].tokens, m * sizeof(int32_t)),
                 "example %u keeps its start", i);
    }
    T_ASSERT(longer > 0 && cut->stats.n_truncated == longer, "%llu truncated, expected %llu",
             (unsigned long long)cut->stats.n_truncated, (unsigned long long)longer);
    /* responses-only: a prompt of 160 tokens or more leaves nothing to learn at max_seq_length 160 */
    const uint32_t L = 160;
    o.train_on_responses_only = true;
    o.max_seq_length = L;
    T_ASSERT(!vkl_data_load_file(path, &o, tok, &resp, &err), "%s", err.msg);
    vkl_dataset *full_resp = NULL;
    o.max_seq_length = 1u << 20;
    T_ASSERT(!vkl_data_load_file(path, &o, tok, &full_resp, &err), "%s", err.msg);
    T_ASSERT(full_resp->n == full->n, "nothing dropped untruncated");
    uint64_t dropped = 0;
    for (uint32_t i = 0, k = 0; i < full_resp->n; i++) {
        const vkl_example *x = &full_resp->ex[i];
        bool trains = false;
        for (uint32_t j = 1; j < x->n && j < L; j++) trains |= x->labels[j] >= 0;
        if (!trains) {
            dropped++;
            continue;
        }
        T_ASSERT(k < resp->n && resp->ex[k].row == x->row, "kept in order");
        T_ASSERT(!memcmp(resp->ex[k].labels, x->labels, resp->ex[k].n * sizeof(int32_t)), "same mask, cut");
        k++;
    }
    T_ASSERT(resp->stats.n_dropped_untrainable == dropped, "%llu dropped, expected %llu",
             (unsigned long long)resp->stats.n_dropped_untrainable, (unsigned long long)dropped);
    vkl_dataset_free(full_resp);
    T_ASSERT(resp->stats.n_dropped_untrainable > 0 && resp->n > 0, "some prompts fill %u tokens", L);
    T_ASSERT(resp->n + resp->stats.n_dropped_untrainable == full->n, "kept + dropped");
    for (uint32_t i = 0; i < resp->n; i++) {
        const vkl_example *x = &resp->ex[i];
        bool trains = false;
        for (uint32_t k = 1; k < x->n; k++) trains |= x->labels[k] >= 0;
        T_ASSERT(trains && x->n <= L, "kept examples train");
    }
    vkl_dataset_free(full);
    vkl_dataset_free(cut);
    vkl_dataset_free(resp);
    return 0;
}

/* Conversations without an assistant turn are skipped and counted; a file of only those is an error. */
static int test_no_assistant(void) {
    vkl_tokenizer *tok = get_tok(STORIES, NULL);
    T_ASSERT(tok, "stories260K");
    const char *p = tmp_path("noasst.json");
    write_file(p, "[{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]},"
                  " {\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": "
                  "\"yo\"}]}]");
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_PLAIN, 64, true);
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load_file(p, &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->n == 1 && d->ex[0].row == 2 && d->stats.n_skipped_no_assistant == 1, "row 1 skipped");
    vkl_dataset_free(d);
    write_file(p, "[{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}]");
    T_ASSERT(vkl_data_load_file(p, &o, tok, &d, &err) == VKL_ERR_INPUT && !d, "nothing trainable is an error");
    T_ASSERT(strstr(err.msg, "noasst.json") && strstr(err.msg, "no trainable example") &&
                 strstr(err.msg, "1 without an assistant turn"),
             "%s", err.msg);
    return 0;
}

/* Broken files: each rejected with the file, the row (or line) and the field in the message. */
static int test_malformed(void) {
    vkl_tokenizer *tok = get_tok(STORIES, NULL);
    T_ASSERT(tok, "stories260K");
    static const struct {
        const char *name, *text;
        vkl_dataset_format format;
        const char *expect[3];
    } cases[] = {
        {"bad1.json",
         "[{\"instruction\": \"a\", \"output\": \"b\"},\n {\"instruction\": \"a\" \"output\": 1}]",
         VKL_DATASET_AUTO,
         {"bad1.json", "invalid JSON at line 2, column 22", NULL}},
        {"bad2.json",
         "[{\"instruction\": \"a\", \"output\": \"b\"}, {\"instruction\": \"a\", \"output\": 7}]",
         VKL_DATASET_AUTO,
         {"bad2.json: row 2", "field \"output\": expected a string, got a number", NULL}},
        {"bad3.json",
         "[{\"instruction\": \"a\", \"output\": \"b\"}, {\"instruction\": \"a\"}]",
         VKL_DATASET_AUTO,
         {"row 2", "field \"output\": expected a string, got nothing (missing)", NULL}},
        {"bad4.json", "[]", VKL_DATASET_AUTO, {"bad4.json", "no trainable example (0 rows", NULL}},
        {"bad5.jsonl",
         "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"b\"}]}\n"
         "{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"b\"}]}\n"
         "{\"conversations\": {\"from\": \"human\", \"value\": \"a\"}}\n",
         VKL_DATASET_AUTO,
         {"bad5.jsonl: line 3", "field \"conversations\": expected an array of {from, value}", NULL}},
        {"bad6.json",
         "[{\"conversations\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"bot\", \"value\": "
         "\"b\"}]}]",
         VKL_DATASET_AUTO,
         {"row 1", "field \"conversations[1].from\": unknown role \"bot\"", NULL}},
        {"bad7.json",
         "[{\"messages\": [{\"role\": \"user\", \"content\": [1]}]}]",
         VKL_DATASET_AUTO,
         {"row 1", "field \"messages[0].content\": expected a string, got an array", NULL}},
        {"bad8.json",
         "[{\"instruction\": \"a\", \"output\": \"b\"}, [1, 2]]",
         VKL_DATASET_AUTO,
         {"row 2", "expected a JSON object (one record), got an array", NULL}},
        {"bad9.json",
         "[{\"prompt\": \"a\", \"answer\": \"b\"}]",
         VKL_DATASET_AUTO,
         {"row 1", "cannot tell the dataset format from the keys {\"prompt\", \"answer\"}", NULL}},
        {"bad10.json",
         "{\"text\": \"x\"}\n{\"text\": 1",
         VKL_DATASET_TEXT,
         {"bad10.json: line 2", "invalid JSON at column", NULL}},
        {"bad11.json",
         "[{\"instruction\": \"a\", \"output\": \"b\"}, {\"instruction\": \"a\", \"output\": \"b\"}]",
         VKL_DATASET_SHAREGPT,
         {"row 1", "field \"conversations\": expected an array of {from, value}, got nothing", NULL}},
        {"bad12.json", "hello", VKL_DATASET_AUTO, {"bad12.json: line 1, column 1", "expected JSON records", NULL}},
        {"bad13.json",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, 5]}",
         VKL_DATASET_AUTO,
         {"line 1", "field \"messages[1]\": expected an object {role, content}, got a number", NULL}},
        {"bad14.json",
         "[{\"instruction\": \"a\", \"output\": \"b\"}] x",
         VKL_DATASET_AUTO,
         {"invalid JSON at line 1, column", NULL, NULL}},
        {"bad15.json", "[\"a\", {\"unterminated", VKL_DATASET_AUTO, {"invalid JSON at line 1", NULL, NULL}},
        {"bad16.json", "", VKL_DATASET_AUTO, {"bad16.json: the file is empty", NULL, NULL}},
        {"bad17.txt", "", VKL_DATASET_AUTO, {"bad17.txt: no trainable example", NULL, NULL}},
        {"bad18.json",
         "[{\"text\": 5}]",
         VKL_DATASET_AUTO,
         {"row 1", "field \"text\": expected a string, got a number", NULL}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *p = tmp_path(cases[i].name);
        write_file(p, cases[i].text);
        vkl_data_opts o = opts(cases[i].format, VKL_TEMPLATE_AUTO, 64, false);
        vkl_dataset *d = (vkl_dataset *)1;
        vkl_err err = {0};
        vkl_status st = vkl_data_load_file(p, &o, tok, &d, &err);
        T_ASSERT(st == VKL_ERR_INPUT && d == NULL, "%s: accepted", cases[i].name);
        T_ASSERT(strstr(err.msg, cases[i].name), "%s: message without the file: %s", cases[i].name, err.msg);
        for (int k = 0; k < 3 && cases[i].expect[k]; k++)
            T_ASSERT(strstr(err.msg, cases[i].expect[k]), "%s: \"%s\" not in: %s", cases[i].name, cases[i].expect[k],
                     err.msg);
    }
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_AUTO, 64, false);
    T_ASSERT(vkl_data_load_file(tmp_path("missing.json"), &o, tok, &d, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "missing.json: cannot open"),
             "%s", err.msg);
    /* a deeply nested file is rejected by the parser's depth limit, not the stack */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = 0;
    write_file(tmp_path("deep.json"), deep);
    free(deep);
    T_ASSERT(vkl_data_load_file(tmp_path("deep.json"), &o, tok, &d, &err) == VKL_ERR_INPUT, "deep nesting");
    return 0;
}

/* Mutated files (flipped bytes, cuts, inserted quotes and brackets) load or fail cleanly, never crash. */
static int test_fuzz(void) {
    vkl_tokenizer *tok = get_tok(STORIES, NULL);
    T_ASSERT(tok, "stories260K");
    static const char *seeds[] = {
        "[{\"conversations\": [{\"from\": \"system\", \"value\": \"S\"}, {\"from\": \"human\", \"value\": "
        "\"Hi \\u00e9 <s>\"}, {\"from\": \"gpt\", \"value\": \"Yo\"}], \"system\": \"x\"}]",
        "{\"instruction\": \"a\", \"input\": \"b\", \"output\": \"c\"}\n{\"instruction\": \"d\", \"output\": \"e\"}\n",
        "[{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": \"r\"}], "
        "\"label\": true}]",
    };
    static const char noise[] = "\"[]{},:\\\n0a\xff\xc3";
    t_rng_seed(99);
    const char *p = tmp_path("fuzz.json");
    int ok = 0, rejected = 0;
    for (int it = 0; it < 600; it++) {
        const char *src = seeds[it % 3];
        size_t n = strlen(src);
        char buf[1024];
        memcpy(buf, src, n + 1);
        int edits = 1 + (int)(t_rng_u32() % 2);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = t_rng_u32() % n;
            switch (t_rng_u32() % 3) {
            case 0: buf[at] = noise[t_rng_u32() % (sizeof(noise) - 1)]; break;
            case 1: n = at; break;
            default:
                if (n + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = noise[t_rng_u32() % (sizeof(noise) - 1)];
                    n++;
                }
            }
            buf[n] = 0;
        }
        write_file(p, buf);
        uint32_t f = t_rng_u32() % (2 * VKL_DATASET_COUNT); /* half the time auto */
        vkl_data_opts o =
            opts(f < VKL_DATASET_COUNT ? (vkl_dataset_format)f : VKL_DATASET_AUTO,
                 (vkl_chat_template)(t_rng_u32() % VKL_TEMPLATE_COUNT), 2 + t_rng_u32() % 256, t_rng_u32() & 1);
        vkl_dataset *d = NULL;
        vkl_err err = {0};
        vkl_status st = vkl_data_load_file(p, &o, tok, &d, &err);
        T_ASSERT(st == VKL_OK || st == VKL_ERR_INPUT, "status %d: %s", st, err.msg);
        T_ASSERT((st == VKL_OK) == (d != NULL), "result iff ok");
        if (st) T_ASSERT(strstr(err.msg, "fuzz.json"), "message names the file: %s", err.msg);
        if (d) {
            for (uint32_t i = 0; i < d->n; i++) T_ASSERT(d->ex[i].n >= 2 && d->ex[i].n <= o.max_seq_length, "sizes");
            ok++;
        } else {
            rejected++;
        }
        vkl_dataset_free(d);
    }
    T_ASSERT(ok >= 10 && rejected >= 100, "both outcomes exercised (%d ok, %d rejected)", ok, rejected);
    return 0;
}

/* Auto-detection: the extension and the first record's keys. */
static int test_autodetect(void) {
    vkl_tokenizer *tok = get_tok(STORIES, NULL);
    T_ASSERT(tok, "stories260K");
    static const struct {
        const char *rel;
        vkl_dataset_format want;
    } files[] = {
        {"datasets/alpaca_en_demo.json", VKL_DATASET_ALPACA},
        {"datasets/sharegpt_chat_tiny.json", VKL_DATASET_SHAREGPT},
        {"datasets/sharegpt_glaive_toolcall_en_demo.json", VKL_DATASET_SHAREGPT},
        {"datasets/messages_kto_en_demo.json", VKL_DATASET_MESSAGES},
        {"datasets/tinystories_sample.txt", VKL_DATASET_TEXT},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_AUTO, 1u << 16, false);
        vkl_dataset *d = NULL;
        vkl_err err = {0};
        T_ASSERT(!vkl_data_load_file(t_data_path(files[i].rel), &o, tok, &d, &err), "%s", err.msg);
        T_ASSERT(d->format == files[i].want, "%s: format %d, expected %d", files[i].rel, d->format, files[i].want);
        vkl_dataset_free(d);
    }
    /* JSONL without the extension, messages with ShareGPT keys, records of a .dat file */
    const char *p = tmp_path("chat.dat");
    write_file(p,
               "  {\"messages\": [{\"from\": \"human\", \"value\": \"a\"}, {\"from\": \"gpt\", \"value\": \"b\"}]}\n");
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_PLAIN, 64, true);
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load_file(p, &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->format == VKL_DATASET_MESSAGES && d->n == 1, "JSONL messages");
    char *s = detok(tok, d->ex[0].tokens, d->ex[0].n);
    T_ASSERT(!strcmp(s, "<s>User: a\nAssistant: b</s>"), "%s", s);
    free(s);
    vkl_dataset_free(d);
    /* a .txt holding text, even when it starts like JSON */
    p = tmp_path("notes.txt");
    write_file(p, "{not json} just text");
    o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_AUTO, 64, false);
    T_ASSERT(!vkl_data_load_file(p, &o, tok, &d, &err), "%s", err.msg);
    T_ASSERT(d->format == VKL_DATASET_TEXT && d->n == 1, "raw text");
    vkl_dataset_free(d);
    return 0;
}

/* ---- split, order, batches ---- */

static int test_eval_split(void) {
    vkl_tokenizer *tok = get_tok(STORIES, NULL);
    T_ASSERT(tok, "stories260K");
    vkl_config c;
    vkl_config_defaults(&c);
    c.dataset_path = strdup(t_data_path("datasets/alpaca_en_demo.json"));
    c.max_seq_length = 1 << 16;
    c.eval_ratio = 0.1;
    c.seed = 3407;
    vkl_dataset *tr = NULL, *ev = NULL, *tr2 = NULL, *ev2 = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load(&c, tok, NULL, &tr, &ev, &err), "%s", err.msg);
    T_ASSERT(ev && ev->n == 100 && tr->n == 899, "ceil(0.1 * 999) = 100 eval, got %u + %u", tr->n, ev ? ev->n : 0);
    uint8_t seen[1000] = {0};
    for (uint32_t i = 0; i < tr->n; i++) seen[tr->ex[i].row]++;
    for (uint32_t i = 0; i < ev->n; i++) seen[ev->ex[i].row] += 2;
    for (int r = 1; r <= 999; r++) T_ASSERT(seen[r] == 1 || seen[r] == 2, "row %d in exactly one set", r);
    for (uint32_t i = 1; i < ev->n; i++) T_ASSERT(ev->ex[i].row > ev->ex[i - 1].row, "file order");
    bool contiguous = true;
    for (uint32_t i = 1; i < ev->n; i++) contiguous &= ev->ex[i].row == ev->ex[i - 1].row + 1;
    T_ASSERT(!contiguous, "the eval rows are a shuffle's, not the file's tail");
    /* deterministic for a seed, different for another */
    T_ASSERT(!vkl_data_load(&c, tok, NULL, &tr2, &ev2, &err), "%s", err.msg);
    for (uint32_t i = 0; i < ev->n; i++) T_ASSERT(ev->ex[i].row == ev2->ex[i].row, "same seed, same split");
    vkl_dataset_free(tr2);
    vkl_dataset_free(ev2);
    c.seed = 1;
    T_ASSERT(!vkl_data_load(&c, tok, NULL, &tr2, &ev2, &err), "%s", err.msg);
    bool same = true;
    for (uint32_t i = 0; i < ev->n; i++) same &= ev->ex[i].row == ev2->ex[i].row;
    T_ASSERT(!same, "another seed, another split");
    vkl_dataset_free(tr2);
    vkl_dataset_free(ev2);
    vkl_dataset_free(tr);
    vkl_dataset_free(ev);
    /* eval_path wins; a ratio that leaves nothing is an error */
    c.eval_path = strdup(t_data_path("datasets/sharegpt_chat_tiny.json"));
    T_ASSERT(!vkl_data_load(&c, tok, NULL, &tr, &ev, &err), "%s", err.msg);
    T_ASSERT(tr->n == 999 && ev->n == 1 && ev->format == VKL_DATASET_SHAREGPT, "separate eval file");
    vkl_dataset_free(tr);
    vkl_dataset_free(ev);
    free(c.eval_path);
    c.eval_path = NULL;
    free(c.dataset_path);
    c.dataset_path = strdup(t_data_path("datasets/sharegpt_chat_tiny.json"));
    c.eval_ratio = 0.5;
    T_ASSERT(vkl_data_load(&c, tok, NULL, &tr, &ev, &err) == VKL_ERR_INPUT && !tr && !ev, "no training example");
    T_ASSERT(strstr(err.msg, "eval_ratio") && strstr(err.msg, "sharegpt_chat_tiny.json"), "%s", err.msg);
    vkl_config_free(&c);
    return 0;
}

static int test_epoch_order(void) {
    vkl_dataset d = {.n = 1000};
    uint32_t a[1000], b[1000], c[1000];
    vkl_data_epoch_order(&d, 42, 0, a);
    vkl_data_epoch_order(&d, 42, 0, b);
    T_ASSERT(!memcmp(a, b, sizeof(a)), "same seed and epoch, same order");
    uint8_t seen[1000] = {0};
    for (int i = 0; i < 1000; i++) T_ASSERT(a[i] < 1000 && !seen[a[i]]++, "a permutation");
    int fixed = 0;
    for (int i = 0; i < 1000; i++) fixed += a[i] == (uint32_t)i;
    T_ASSERT(fixed < 10, "shuffled (%d fixed points)", fixed);
    vkl_data_epoch_order(&d, 42, 1, b);
    vkl_data_epoch_order(&d, 43, 0, c);
    T_ASSERT(memcmp(a, b, sizeof(a)) && memcmp(a, c, sizeof(a)), "another epoch or seed, another order");
    /* roughly uniform: each element lands in the first half about half the time over many epochs */
    int first_half = 0;
    for (uint32_t e = 0; e < 400; e++) {
        vkl_data_epoch_order(&d, 7, e, a);
        for (int i = 0; i < 500; i++) first_half += a[i] == 0;
    }
    T_ASSERT(first_half > 150 && first_half < 250, "element 0 in the first half %d / 400 times", first_half);
    return 0;
}

/* Every batch of an epoch: targets are the next token's label inside the same document, seg/pos describe the
 * documents, padding trains nothing, and every trainable token is a target exactly once. */
static int check_epoch(const vkl_dataset *d, uint64_t seed, uint32_t epoch, uint32_t B, uint32_t T, bool packing) {
    uint32_t *perm = malloc(d->n * sizeof(uint32_t));
    vkl_data_epoch_order(d, seed, epoch, perm);
    vkl_data_plan *p = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_plan_epoch(d, perm, B, T, packing, &p, &err), "%s", err.msg);
    T_ASSERT(p->n_batches == vkl_data_epoch_batches(d, seed, epoch, B, T, packing), "batch count agrees");
    if (!packing) T_ASSERT(p->n_rows == d->n, "one example per row");
    vkl_batch b = {.B = B, .T = T};
    b.tokens = malloc(sizeof(int32_t) * B * T);
    b.targets = malloc(sizeof(int32_t) * B * T);
    b.pos = malloc(sizeof(int32_t) * B * T);
    b.seg = malloc(sizeof(int32_t) * B * T);
    uint8_t *seen = calloc(d->n, 1);
    uint32_t next = 0; /* position in perm: rows follow the epoch order */
    uint64_t targets = 0, pad_rows = 0;
    for (uint32_t k = 0; k < p->n_batches; k++) {
        T_ASSERT(!vkl_data_fill_batch(d, p, k, &b, &err), "%s", err.msg);
        uint32_t nt = 0;
        for (uint32_t r = 0; r < B; r++) {
            const int32_t *tok = b.tokens + r * T, *tgt = b.targets + r * T, *pos = b.pos + r * T, *seg = b.seg + r * T;
            uint32_t t = 0;
            if (k * B + r >= p->n_rows) pad_rows++;
            while (t < T) {
                T_ASSERT(seg[t] == (int32_t)t && pos[t] == 0, "a document starts at its seg");
                /* which example is this? the next one in epoch order, unless this is padding */
                bool is_doc = next < d->n && k * B + r < p->n_rows && t + d->ex[perm[next]].n <= T &&
                              !memcmp(tok + t, d->ex[perm[next]].tokens, d->ex[perm[next]].n * sizeof(int32_t));
                uint32_t len;
                if (is_doc && (t == 0 || packing)) {
                    const vkl_example *x = &d->ex[perm[next]];
                    T_ASSERT(!seen[perm[next]]++, "example %u placed twice", perm[next]);
                    next++;
                    len = x->n;
                    for (uint32_t j = 0; j < len; j++) {
                        int32_t want = j + 1 < len ? x->labels[j + 1] : -1;
                        T_ASSERT(tgt[t + j] == want, "target at %u", t + j);
                        T_ASSERT(seg[t + j] == (int32_t)t && pos[t + j] == (int32_t)j, "seg/pos in a document");
                        if (tgt[t + j] >= 0) T_ASSERT(tok[t + j + 1] == tgt[t + j], "target is the next token");
                    }
                } else {
                    len = T - t; /* padding to the end of the row */
                    for (uint32_t j = 0; j < len; j++)
                        T_ASSERT(tok[t + j] == d->pad_id && tgt[t + j] == -1 && seg[t + j] == (int32_t)t &&
                                     pos[t + j] == (int32_t)j,
                                 "padding at row %u, %u", r, t + j);
                }
                for (uint32_t j = 0; j < len; j++) nt += tgt[t + j] >= 0;
                t += len;
            }
        }
        T_ASSERT(nt == b.n_targets, "n_targets %u, counted %u", b.n_targets, nt);
        targets += nt;
    }
    T_ASSERT(next == d->n, "every example placed (%u of %u)", next, d->n);
    T_ASSERT(targets == d->stats.n_trainable, "%llu targets, %llu trainable tokens", (unsigned long long)targets,
             (unsigned long long)d->stats.n_trainable);
    T_ASSERT(pad_rows == (uint64_t)p->n_batches * B - p->n_rows, "padding rows only in the last batch");
    free(seen);
    free(b.tokens);
    free(b.targets);
    free(b.pos);
    free(b.seg);
    vkl_data_plan_free(p);
    free(perm);
    return 0;
}

static int test_batches(void) {
    vkl_tokenizer *tok = get_tok(STORIES, NULL);
    T_ASSERT(tok, "stories260K");
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_ALPACA, 256, true);
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load_file(t_data_path("datasets/alpaca_en_demo.json"), &o, tok, &d, &err), "%s", err.msg);
    if (check_epoch(d, 3407, 0, 4, 256, false)) return 1;
    if (check_epoch(d, 3407, 0, 3, 1024, true)) return 1;
    if (check_epoch(d, 3407, 1, 5, 700, true)) return 1;
    /* packing saves rows; its row count depends on the order but is exact for each epoch */
    uint64_t packed = vkl_data_epoch_rows(d, 3407, 0, 1024, true);
    T_ASSERT(packed < d->n / 2 && packed * 1024 >= d->stats.n_tokens, "%llu packed rows of %u examples",
             (unsigned long long)packed, d->n);
    T_ASSERT(vkl_data_epoch_rows(d, 3407, 0, 256, false) == d->n, "unpacked rows");
    T_ASSERT(vkl_data_epoch_batches(d, 3407, 0, 4, 256, false) == (d->n + 3) / 4, "ceil(n / B)");
    /* a short batch T: allowed when the rows fit, refused when not */
    vkl_data_plan *p = NULL;
    T_ASSERT(!vkl_data_plan_epoch(d, NULL, 2, 256, false, &p, &err), "%s", err.msg);
    uint32_t need = vkl_data_batch_len(d, p, 0);
    T_ASSERT(need == VKL_MAX(d->ex[0].n, d->ex[1].n), "batch length");
    int32_t buf[4][2 * 256];
    vkl_batch b = {.B = 2, .T = need, .tokens = buf[0], .targets = buf[1], .pos = buf[2], .seg = buf[3]};
    T_ASSERT(!vkl_data_fill_batch(d, p, 0, &b, &err), "%s", err.msg);
    b.T = need - 1;
    T_ASSERT(vkl_data_fill_batch(d, p, 0, &b, &err) == VKL_ERR_INPUT, "row does not fit");
    b.T = need;
    T_ASSERT(vkl_data_fill_batch(d, p, p->n_batches, &b, &err) == VKL_ERR_INPUT, "batch past the end");
    vkl_data_plan_free(p);
    T_ASSERT(vkl_data_plan_epoch(d, NULL, 2, 100, false, &p, &err) == VKL_ERR_INPUT && !p, "T below the longest");
    vkl_dataset_free(d);
    /* every token trains (labels[0] too): the last token of a packed document still has no target */
    o.train_on_responses_only = false;
    o.max_seq_length = 128;
    T_ASSERT(!vkl_data_load_file(t_data_path("datasets/sharegpt_glaive_toolcall_en_demo.json"), &o, tok, &d, &err),
             "%s", err.msg);
    if (check_epoch(d, 5, 2, 2, 512, true)) return 1;
    vkl_dataset_free(d);
    return 0;
}

/* Packed raw-text windows: every row is one window, no target crosses into the next window. */
static int test_batches_text(void) {
    vkl_tokenizer *tok = get_tok(STORIES, NULL);
    T_ASSERT(tok, "stories260K");
    vkl_data_opts o = opts(VKL_DATASET_AUTO, VKL_TEMPLATE_AUTO, 32, false);
    vkl_dataset *d = NULL;
    vkl_err err = {0};
    T_ASSERT(!vkl_data_load_file(t_data_path("datasets/tinystories_sample.txt"), &o, tok, &d, &err), "%s", err.msg);
    if (check_epoch(d, 1, 0, 4, 32, true)) return 1;
    T_ASSERT(vkl_data_epoch_rows(d, 1, 0, 32, true) == d->n, "full windows do not share rows");
    vkl_dataset_free(d);
    return 0;
}

const vkl_test_case vkl_tests_data[] = {
    {"data/template_chatml_qwen2", test_chatml_qwen2},
    {"data/template_llama3", test_llama3_bpe},
    {"data/template_llama2_spm", test_llama2_spm},
    {"data/template_mistral_spm", test_mistral_spm},
    {"data/template_plain_alpaca_chat", test_plain_and_alpaca_chat},
    {"data/content_specials_not_parsed", test_content_specials_not_parsed},
    {"data/template_detection", test_template_detection},
    {"data/template_real_vs_jinja2", test_real_templates},
    {"data/template_random_vs_jinja2", test_random_templates},
    {"data/unknown_template", test_unknown_template},
    {"data/alpaca_file", test_alpaca_file},
    {"data/alpaca_as_chat", test_alpaca_as_chat},
    {"data/sharegpt_toolcall", test_sharegpt_toolcall},
    {"data/messages_kto", test_messages_kto},
    {"data/load_config_sharegpt", test_load_config_sharegpt},
    {"data/raw_text_windows", test_raw_text_windows},
    {"data/raw_text_shakespeare", test_raw_text_shakespeare},
    {"data/text_records", test_text_records},
    {"data/truncation", test_truncation},
    {"data/no_assistant", test_no_assistant},
    {"data/malformed", test_malformed},
    {"data/fuzz", test_fuzz},
    {"data/autodetect", test_autodetect},
    {"data/eval_split", test_eval_split},
    {"data/epoch_order", test_epoch_order},
    {"data/batches", test_batches},
    {"data/batches_text", test_batches_text},
    {NULL, NULL},
};
