/* Chat templates: render a conversation (alpaca, chatml, llama-3, llama-2, mistral, plain) and tokenize it into
 * ids plus loss labels, splitting only at special tokens so the ids match llama.cpp's tokenization of the prompt. */
#include "vklora/data.h"

#include <stdlib.h>
#include <string.h>

/* ---- The encoder: text runs between special tokens, each with byte ranges that train ---- */

typedef struct {
    size_t off, len;
    bool train;
} text_seg;

typedef struct {
    const vkl_tokenizer *tok;
    bool all_train; /* not responses-only: every token trains */
    char *run;      /* text since the last special token */
    size_t run_len, run_cap;
    text_seg *segs;
    size_t n_segs, segs_cap;
    int32_t *ids, *labels;
    size_t n, cap;
    vkl_err *err;
    vkl_status st;
} encoder;

static void push_tok(encoder *e, int32_t id, bool train) {
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 256;
        e->ids = vkl_realloc(e->ids, e->cap * sizeof(int32_t));
        e->labels = vkl_realloc(e->labels, e->cap * sizeof(int32_t));
    }
    e->ids[e->n] = id;
    e->labels[e->n] = (train || e->all_train) ? id : -1;
    e->n++;
}

static void text(encoder *e, const char *s, size_t len, bool train) {
    if (!len) return;
    if (e->run_len + len > e->run_cap) {
        while (e->run_len + len > e->run_cap) e->run_cap = e->run_cap ? 2 * e->run_cap : 1024;
        e->run = vkl_realloc(e->run, e->run_cap);
    }
    memcpy(e->run + e->run_len, s, len);
    if (e->n_segs && e->segs[e->n_segs - 1].train == train) {
        e->segs[e->n_segs - 1].len += len;
    } else {
        if (e->n_segs == e->segs_cap) {
            e->segs_cap = e->segs_cap ? 2 * e->segs_cap : 16;
            e->segs = vkl_realloc(e->segs, e->segs_cap * sizeof(text_seg));
        }
        e->segs[e->n_segs++] = (text_seg){e->run_len, len, train};
    }
    e->run_len += len;
}

static void textz(encoder *e, const char *s, bool train) { text(e, s, strlen(s), train); }

/* Byte offsets of each token inside the run, by matching the pieces against the text. SentencePiece puts a space
 * in front of the run (and after user-defined tokens) that is not in the text: a piece's ' ' that does not match
 * is that inserted space. Returns false when the pieces do not spell the run (an unknown token). */
static bool align_pieces(const vkl_tokenizer *tok, const char *run, size_t len, const int32_t *ids, size_t n,
                         size_t *start, size_t *end) {
    char buf[256];
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t plen = vkl_token_to_piece(tok, ids[i], false, buf, sizeof(buf));
        if (plen > sizeof(buf)) return false;
        start[i] = at;
        for (size_t k = 0; k < plen; k++) {
            if (at < len && run[at] == buf[k])
                at++;
            else if (buf[k] != ' ')
                return false;
        }
        end[i] = at;
    }
    return at == len;
}

static bool overlaps_train(const encoder *e, size_t a, size_t b) {
    for (size_t s = 0; s < e->n_segs; s++) {
        const text_seg *g = &e->segs[s];
        if (g->train && a < g->off + g->len && b > g->off) return true;
    }
    return false;
}

static void flush(encoder *e) {
    if (e->st || !e->run_len) goto done;
    int32_t *ids = NULL;
    size_t n = 0;
    e->st = vkl_tokenize(e->tok, e->run, e->run_len, false, false, &ids, &n, e->err);
    if (e->st) goto done;
    size_t *start = vkl_malloc((n + 1) * sizeof(size_t)), *end = vkl_malloc((n + 1) * sizeof(size_t));
    if (align_pieces(e->tok, e->run, e->run_len, ids, n, start, end)) {
        for (size_t i = 0; i < n; i++) {
            /* An empty piece (nothing to overlap) follows its neighbour. */
            bool tr = start[i] == end[i] ? (i ? e->labels[e->n - 1] >= 0 : false) : overlaps_train(e, start[i], end[i]);
            push_tok(e, ids[i], tr);
        }
    } else {
        /* The pieces do not spell the text (unknown tokens): tokenize the trained and untrained parts apart, so
         * the mask stays exact at the price of a token boundary at each switch. */
        for (size_t s = 0; s < e->n_segs && !e->st; s++) {
            int32_t *sid = NULL;
            size_t sn = 0;
            e->st = vkl_tokenize(e->tok, e->run + e->segs[s].off, e->segs[s].len, false, false, &sid, &sn, e->err);
            for (size_t i = 0; i < sn; i++) push_tok(e, sid[i], e->segs[s].train);
            free(sid);
        }
    }
    free(start);
    free(end);
    free(ids);
done:
    e->run_len = 0;
    e->n_segs = 0;
}

static void tok_id(encoder *e, int32_t id, bool train) {
    if (id < 0) return;
    flush(e);
    push_tok(e, id, train);
}

/* A template's own special marker: its single id when the vocabulary has it as a control or user-defined token,
 * else plain text (what llama.cpp does with a template whose markers the vocabulary lacks). */
static void special(encoder *e, const char *marker, bool train) {
    int32_t id = vkl_tokenizer_find(e->tok, marker, strlen(marker));
    vkl_token_type ty = id >= 0 ? vkl_tokenizer_token_type(e->tok, id) : VKL_TOKEN_UNDEFINED;
    if (ty == VKL_TOKEN_CONTROL || ty == VKL_TOKEN_USER_DEFINED)
        tok_id(e, id, train);
    else
        textz(e, marker, train);
}

/* ---- Templates ---- */

static const char *const chatml_roles[VKL_ROLE_COUNT] = {"system", "user", "assistant", "tool"};
static const char *const llama3_roles[VKL_ROLE_COUNT] = {"system", "user", "assistant", "ipython"};

static void render_chatml(encoder *e, const vkl_message *m, size_t n, bool gen) {
    for (size_t i = 0; i < n; i++) {
        bool a = m[i].role == VKL_ROLE_ASSISTANT;
        special(e, "<|im_start|>", false);
        textz(e, chatml_roles[m[i].role], false);
        textz(e, "\n", false);
        text(e, m[i].content, m[i].len, a);
        special(e, "<|im_end|>", a);
        textz(e, "\n", false);
    }
    if (gen) {
        special(e, "<|im_start|>", false);
        textz(e, "assistant\n", false);
    }
}

static void render_llama3(encoder *e, const vkl_message *m, size_t n, bool gen) {
    special(e, "<|begin_of_text|>", false);
    for (size_t i = 0; i < n; i++) {
        bool a = m[i].role == VKL_ROLE_ASSISTANT;
        special(e, "<|start_header_id|>", false);
        textz(e, llama3_roles[m[i].role], false);
        special(e, "<|end_header_id|>", false);
        textz(e, "\n\n", false);
        text(e, m[i].content, m[i].len, a);
        special(e, "<|eot_id|>", a);
    }
    if (gen) {
        special(e, "<|start_header_id|>", false);
        textz(e, "assistant", false);
        special(e, "<|end_header_id|>", false);
        textz(e, "\n\n", false);
    }
}

/* llama-2 and mistral alternate user and assistant strictly: fold the conversation into (user, assistant?) pairs,
 * tool messages on the user side, consecutive same-side messages joined with "\n\n". */
static void side_text(encoder *e, const vkl_message *m, size_t from, size_t to, bool train) {
    for (size_t k = from; k < to; k++) {
        if (k > from) textz(e, "\n\n", train);
        text(e, m[k].content, m[k].len, train);
    }
}

/* The generation prompt needs no markup here: a user turn already ends with "[/INST]". */
static void render_inst(encoder *e, const vkl_message *m, size_t n, bool llama2) {
    int32_t bos = vkl_tokenizer_bos(e->tok), eos = vkl_tokenizer_eos(e->tok);
    size_t i = 0;
    const vkl_message *sys = NULL;
    if (n && m[0].role == VKL_ROLE_SYSTEM) sys = &m[i++];
    bool first = true;
    if (!llama2) tok_id(e, bos, false);
    while (i < n || (first && sys)) {
        /* user side: everything up to the next assistant message (later system messages count as user text) */
        size_t u0 = i;
        while (i < n && m[i].role != VKL_ROLE_ASSISTANT) i++;
        size_t u1 = i, a0 = i;
        while (i < n && m[i].role == VKL_ROLE_ASSISTANT) i++;
        size_t a1 = i;
        if (llama2) tok_id(e, bos, false);
        textz(e, "[INST] ", false);
        if (first && sys) {
            if (llama2) {
                textz(e, "<<SYS>>\n", false);
                text(e, sys->content, sys->len, false);
                textz(e, "\n<</SYS>>\n\n", false);
            } else {
                text(e, sys->content, sys->len, false);
                textz(e, "\n\n", false);
            }
        }
        side_text(e, m, u0, u1, false);
        textz(e, " [/INST]", false);
        first = false;
        if (a1 > a0) {
            textz(e, " ", false);
            side_text(e, m, a0, a1, true);
            if (llama2) textz(e, " ", true);
            tok_id(e, eos, true);
        }
    }
}

static const char alpaca_pre_input[] = "Below is an instruction that describes a task, paired with an input that "
                                       "provides further context. Write a response that appropriately completes "
                                       "the request.";
static const char alpaca_pre_noinput[] = "Below is an instruction that describes a task. Write a response that "
                                         "appropriately completes the request.";

static void render_alpaca(encoder *e, const vkl_message *m, size_t n, bool gen) {
    int32_t eos = vkl_tokenizer_eos(e->tok);
    size_t i = 0;
    if (n && m[0].role == VKL_ROLE_SYSTEM) {
        text(e, m[0].content, m[0].len, false);
        i = 1;
    } else {
        bool has_input = false;
        for (size_t k = 0; k < n; k++) has_input |= m[k].role == VKL_ROLE_TOOL;
        textz(e, has_input ? alpaca_pre_input : alpaca_pre_noinput, false);
    }
    textz(e, "\n\n", false);
    for (; i < n; i++) {
        switch (m[i].role) {
        case VKL_ROLE_USER: textz(e, "### Instruction:\n", false); break;
        case VKL_ROLE_TOOL: textz(e, "### Input:\n", false); break;
        case VKL_ROLE_ASSISTANT: textz(e, "### Response:\n", false); break;
        default: break; /* a later system message is plain text */
        }
        bool a = m[i].role == VKL_ROLE_ASSISTANT;
        text(e, m[i].content, m[i].len, a);
        if (a) {
            tok_id(e, eos, true);
            if (i + 1 < n || gen) textz(e, "\n\n", false);
        } else {
            textz(e, "\n\n", false);
        }
    }
    if (gen) textz(e, "### Response:\n", false);
}

static void render_plain(encoder *e, const vkl_message *m, size_t n, bool gen) {
    int32_t eos = vkl_tokenizer_eos(e->tok);
    for (size_t i = 0; i < n; i++) {
        bool a = m[i].role == VKL_ROLE_ASSISTANT;
        switch (m[i].role) {
        case VKL_ROLE_USER: textz(e, "User: ", false); break;
        case VKL_ROLE_TOOL: textz(e, "Tool: ", false); break;
        case VKL_ROLE_ASSISTANT: textz(e, "Assistant: ", false); break;
        default: break;
        }
        text(e, m[i].content, m[i].len, a);
        if (a) {
            tok_id(e, eos, true);
            if (i + 1 < n || gen) textz(e, "\n", false);
        } else {
            textz(e, "\n", false);
        }
    }
    if (gen) textz(e, "Assistant: ", false);
}

vkl_status vkl_data_encode_chat(const vkl_tokenizer *tok, vkl_chat_template tmpl, const vkl_message *msgs,
                                size_t n_msgs, bool responses_only, bool add_generation_prompt, int32_t **tokens,
                                int32_t **labels, size_t *n, vkl_err *err) {
    *tokens = *labels = NULL;
    *n = 0;
    for (size_t i = 0; i < n_msgs; i++)
        if ((unsigned)msgs[i].role >= VKL_ROLE_COUNT || (msgs[i].len && !msgs[i].content))
            return vkl_err_set(err, VKL_ERR_INPUT, "data: message %zu: invalid role %d or NULL content", i,
                               (int)msgs[i].role);
    encoder e = {.tok = tok, .all_train = !responses_only, .err = err};
    switch (tmpl) {
    case VKL_TEMPLATE_CHATML: render_chatml(&e, msgs, n_msgs, add_generation_prompt); break;
    case VKL_TEMPLATE_LLAMA3: render_llama3(&e, msgs, n_msgs, add_generation_prompt); break;
    case VKL_TEMPLATE_LLAMA2: render_inst(&e, msgs, n_msgs, true); break;
    case VKL_TEMPLATE_MISTRAL: render_inst(&e, msgs, n_msgs, false); break;
    case VKL_TEMPLATE_ALPACA: render_alpaca(&e, msgs, n_msgs, add_generation_prompt); break;
    case VKL_TEMPLATE_PLAIN: render_plain(&e, msgs, n_msgs, add_generation_prompt); break;
    default:
        return vkl_err_set(err, VKL_ERR_INPUT, "data: template %d is not a concrete template (resolve \"auto\" first)",
                           (int)tmpl);
    }
    flush(&e);
    free(e.run);
    free(e.segs);
    if (e.st) {
        free(e.ids);
        free(e.labels);
        return e.st;
    }
    /* BOS once at the start, unless the template began with it already. */
    int32_t bos = vkl_tokenizer_bos(tok);
    if (vkl_tokenizer_adds_bos(tok) && bos >= 0 && (e.n == 0 || e.ids[0] != bos)) {
        push_tok(&e, bos, false); /* grows the arrays; moved to the front below */
        memmove(e.ids + 1, e.ids, (e.n - 1) * sizeof(int32_t));
        memmove(e.labels + 1, e.labels, (e.n - 1) * sizeof(int32_t));
        e.ids[0] = bos;
        e.labels[0] = responses_only ? -1 : bos;
    }
    *tokens = e.ids;
    *labels = e.labels;
    *n = e.n;
    return VKL_OK;
}

/* ---- Template choice ---- */

vkl_chat_template vkl_data_detect_template(const char *t) {
    if (!t) return VKL_TEMPLATE_AUTO;
    if (strstr(t, "<|im_start|>")) return VKL_TEMPLATE_CHATML;
    if (strstr(t, "<|start_header_id|>")) return VKL_TEMPLATE_LLAMA3;
    if (strstr(t, "[INST]")) return strstr(t, "<<SYS>>") ? VKL_TEMPLATE_LLAMA2 : VKL_TEMPLATE_MISTRAL;
    if (strstr(t, "### Instruction")) return VKL_TEMPLATE_ALPACA;
    return VKL_TEMPLATE_AUTO;
}

vkl_chat_template vkl_data_resolve_template(vkl_chat_template requested, const char *gguf_chat_template) {
    if (requested != VKL_TEMPLATE_AUTO && (unsigned)requested < VKL_TEMPLATE_COUNT) return requested;
    vkl_chat_template t = vkl_data_detect_template(gguf_chat_template);
    return t == VKL_TEMPLATE_AUTO ? VKL_TEMPLATE_ALPACA : t;
}
