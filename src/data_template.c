/* Chat templates: render a conversation the way a model's jinja chat template does (the families of
 * vkl_chat_template) and tokenize it into ids plus loss labels, splitting only at special tokens so the ids match
 * llama.cpp's tokenization of the rendered prompt. Also keeps the rendered text (vklora data, the tests). */
#include "vklora/data.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "platform.h"
#include "unicode.h"

/* ---- The encoder: text runs between special tokens, each with byte ranges that train ---- */

typedef struct {
    size_t off, len;
    bool train;
} text_seg;

typedef struct {
    const vkl_tokenizer *tok;
    vkl_chat_template tmpl;
    bool all_train; /* not responses-only: every token trains */
    int64_t now;    /* strftime_now's time */
    bool now_utc;   /* format `now` in UTC (given or SOURCE_DATE_EPOCH) rather than local time */
    char *run;      /* text since the last special token */
    size_t run_len, run_cap;
    text_seg *segs;
    size_t n_segs, segs_cap;
    int32_t *ids, *labels;
    size_t n, cap;
    bool prev_rstrip; /* the last token pushed swallows the whitespace after it */
    int32_t strip_ids[32]; /* strip_flags' cache */
    uint8_t strip_val[32];
    size_t n_strip;
    char *full; /* everything rendered, special tokens as their text */
    size_t full_len, full_cap;
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

static void append_full(encoder *e, const char *s, size_t len) {
    if (e->full_len + len + 1 > e->full_cap) {
        while (e->full_len + len + 1 > e->full_cap) e->full_cap = e->full_cap ? 2 * e->full_cap : 1024;
        e->full = vkl_realloc(e->full, e->full_cap);
    }
    memcpy(e->full + e->full_len, s, len);
    e->full_len += len;
    e->full[e->full_len] = 0;
}

static void text(encoder *e, const char *s, size_t len, bool train) {
    if (!len) return;
    append_full(e, s, len);
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

static bool c_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

/* Whether special token `id` swallows the whitespace before it (bit 0) or after it (bit 1) when the tokenizer
 * splits it out of text (llama.cpp's per-model LSTRIP / RSTRIP, e.g. Phi-3's tokens): asked of the tokenizer by
 * tokenizing the token's text with whitespace on one side. Cached per encoder. */
static unsigned strip_flags(encoder *e, int32_t id) {
    for (size_t k = 0; k < e->n_strip; k++)
        if (e->strip_ids[k] == id) return e->strip_val[k];
    unsigned flags = 0;
    size_t len;
    const char *t = vkl_tokenizer_token_text(e->tok, id, &len);
    if (t && len < 200) {
        char buf[256];
        for (int side = 0; side < 2; side++) {
            if (side == 0) {
                memcpy(buf, " \n", 2);
                memcpy(buf + 2, t, len);
            } else {
                memcpy(buf, t, len);
                memcpy(buf + len, " \n", 2);
            }
            int32_t *ids = NULL;
            size_t n = 0;
            vkl_err err = {0};
            if (!vkl_tokenize(e->tok, buf, len + 2, false, true, &ids, &n, &err) && n == 1 && ids[0] == id)
                flags |= 1u << side;
            free(ids);
        }
    }
    if (e->n_strip < VKL_ARRAY_LEN(e->strip_ids)) {
        e->strip_ids[e->n_strip] = id;
        e->strip_val[e->n_strip++] = (uint8_t)flags;
    }
    return flags;
}

/* Tokenize the run before the special token `next` (-1: none). A special token that strips whitespace (Phi-3's
 * RSTRIP after, LSTRIP before) swallows the run's neighbouring whitespace as llama.cpp's tokenizer does: it stays
 * in the rendered text but gets no token. */
static void flush(encoder *e, int32_t next) {
    size_t a = 0, b = e->run_len;
    if (e->prev_rstrip)
        while (a < b && c_space(e->run[a])) a++;
    if (next >= 0 && (strip_flags(e, next) & 1))
        while (b > a && c_space(e->run[b - 1])) b--;
    e->prev_rstrip = false;
    if (e->st || a == b) goto done;
    int32_t *ids = NULL;
    size_t n = 0;
    e->st = vkl_tokenize(e->tok, e->run + a, b - a, false, false, &ids, &n, e->err);
    if (e->st) goto done;
    size_t *start = vkl_malloc((n + 1) * sizeof(size_t)), *end = vkl_malloc((n + 1) * sizeof(size_t));
    if (align_pieces(e->tok, e->run + a, b - a, ids, n, start, end)) {
        for (size_t i = 0; i < n; i++) {
            /* An empty piece (nothing to overlap) follows its neighbour. */
            bool tr = start[i] == end[i] ? (i ? e->labels[e->n - 1] >= 0 : false)
                                         : overlaps_train(e, a + start[i], a + end[i]);
            push_tok(e, ids[i], tr);
        }
    } else {
        /* The pieces do not spell the text (unknown tokens): tokenize the trained and untrained parts apart, so
         * the mask stays exact at the price of a token boundary at each switch. */
        for (size_t s = 0; s < e->n_segs && !e->st; s++) {
            size_t s0 = VKL_MAX(e->segs[s].off, a), s1 = VKL_MIN(e->segs[s].off + e->segs[s].len, b);
            if (s0 >= s1) continue;
            int32_t *sid = NULL;
            size_t sn = 0;
            e->st = vkl_tokenize(e->tok, e->run + s0, s1 - s0, false, false, &sid, &sn, e->err);
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

/* A special token from the vocabulary. */
static void push_special(encoder *e, int32_t id, bool train) {
    flush(e, id);
    push_tok(e, id, train);
    e->prev_rstrip = (strip_flags(e, id) & 2) != 0;
}

/* A token by id (BOS, EOS): the template renders it as its text (bos_token / eos_token). */
static void tok_id(encoder *e, int32_t id, bool train) {
    if (id < 0) return; /* the vocabulary has none: jinja's bos_token is "" then */
    push_special(e, id, train);
    char buf[256];
    size_t n = vkl_token_to_piece(e->tok, id, true, buf, sizeof(buf));
    append_full(e, buf, VKL_MIN(n, sizeof(buf)));
}

/* A template's own special marker: its single id when the vocabulary has it as a control or user-defined token,
 * else plain text (what llama.cpp does with a template whose markers the vocabulary lacks). */
static void special(encoder *e, const char *marker, bool train) {
    size_t len = strlen(marker);
    int32_t id = vkl_tokenizer_find(e->tok, marker, len);
    vkl_token_type ty = id >= 0 ? vkl_tokenizer_token_type(e->tok, id) : VKL_TOKEN_UNDEFINED;
    if (ty == VKL_TOKEN_CONTROL || ty == VKL_TOKEN_USER_DEFINED) {
        push_special(e, id, train);
        append_full(e, marker, len);
    } else {
        text(e, marker, len, train);
    }
}

/* The template raised an exception (raise_exception in jinja): rendering fails with its message. */
static void fail(encoder *e, const char *fmt, ...) VKL_PRINTF(2, 3);
static void fail(encoder *e, const char *fmt, ...) {
    if (e->st) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    e->st = vkl_err_set(e->err, VKL_ERR_INPUT, "template %s: %s", vkl_chat_template_names[e->tmpl], msg);
}

/* ---- Python string semantics the templates rely on ---- */

typedef struct {
    const char *s;
    size_t len;
} str;

static str msg_str(const vkl_message *m) { return (str){m->content ? m->content : "", m->len}; }

/* Python's str.isspace() for one code point (what str.strip() with no argument removes). */
static bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

static str py_lstrip(str x) {
    while (x.len) {
        size_t adv;
        uint32_t c = vkl_utf8_decode((const uint8_t *)x.s, x.len, &adv);
        if (!adv || !py_space(c)) break;
        x.s += adv, x.len -= adv;
    }
    return x;
}

static str py_rstrip(str x) {
    while (x.len) {
        size_t k = x.len - 1;
        while (k && ((uint8_t)x.s[k] & 0xC0) == 0x80 && x.len - k < 4) k--;
        size_t adv;
        uint32_t c = vkl_utf8_decode((const uint8_t *)x.s + k, x.len - k, &adv);
        if (adv != x.len - k || !py_space(c)) break;
        x.len = k;
    }
    return x;
}

/* jinja's trim filter: str.strip() */
static str py_strip(str x) { return py_rstrip(py_lstrip(x)); }

static str lstrip_nl(str x) {
    while (x.len && x.s[0] == '\n') x.s++, x.len--;
    return x;
}

static str rstrip_nl(str x) {
    while (x.len && x.s[x.len - 1] == '\n') x.len--;
    return x;
}

static const char *str_find(str x, const char *needle) {
    size_t nl = strlen(needle);
    if (nl > x.len) return NULL;
    for (size_t i = 0; i + nl <= x.len; i++)
        if (!memcmp(x.s + i, needle, nl)) return x.s + i;
    return NULL;
}

static const char *str_rfind(str x, const char *needle) {
    size_t nl = strlen(needle);
    if (nl > x.len) return NULL;
    for (size_t i = x.len - nl + 1; i-- > 0;)
        if (!memcmp(x.s + i, needle, nl)) return x.s + i;
    return NULL;
}

static bool str_starts(str x, const char *p) { return x.len >= strlen(p) && !memcmp(x.s, p, strlen(p)); }
static bool str_ends(str x, const char *p) {
    size_t n = strlen(p);
    return x.len >= n && !memcmp(x.s + x.len - n, p, n);
}

/* x.split(sep)[-1] and x.split(sep)[0] */
static str after_last(str x, const char *sep) {
    const char *p = str_rfind(x, sep);
    if (!p) return x;
    size_t at = (size_t)(p - x.s) + strlen(sep);
    return (str){x.s + at, x.len - at};
}

static str before_first(str x, const char *sep) {
    const char *p = str_find(x, sep);
    return p ? (str){x.s, (size_t)(p - x.s)} : x;
}

static void put(encoder *e, str x, bool train) { text(e, x.s, x.len, train); }

/* strftime_now(fmt) for the two formats templates use ("%d %b %Y", "%Y-%m-%d"), in the C locale whatever the
 * process locale (Python's strftime in an unset locale gives the same). */
static void strftime_now(const encoder *e, const char *fmt, char *out, size_t cap) {
    static const char *const mon[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)e->now;
    struct tm tm;
    if (e->now_utc)
        vkl_os_time_utc(t, &tm);
    else
        vkl_os_time_local(t, &tm);
    size_t at = 0;
    out[0] = 0;
    for (const char *f = fmt; *f && at + 8 < cap; f++) {
        if (*f != '%' || !f[1]) {
            out[at++] = *f;
            continue;
        }
        f++;
        switch (*f) {
        case 'd': at += (size_t)snprintf(out + at, cap - at, "%02d", tm.tm_mday); break;
        case 'm': at += (size_t)snprintf(out + at, cap - at, "%02d", tm.tm_mon + 1); break;
        case 'Y': at += (size_t)snprintf(out + at, cap - at, "%04d", tm.tm_year + 1900); break;
        case 'b': at += (size_t)snprintf(out + at, cap - at, "%s", mon[tm.tm_mon]); break;
        default: out[at++] = '%', out[at++] = *f; break;
        }
    }
    out[at < cap ? at : cap - 1] = 0;
}

/* HF transformers' tojson (json.dumps, ensure_ascii=False) of a string: Llama 3.x renders tool output with it. */
static void put_json_string(encoder *e, str x, bool train) {
    textz(e, "\"", train);
    size_t from = 0;
    for (size_t i = 0; i < x.len; i++) {
        unsigned char c = (unsigned char)x.s[i];
        const char *rep = NULL;
        char buf[8];
        if (c == '"') rep = "\\\"";
        else if (c == '\\') rep = "\\\\";
        else if (c == '\n') rep = "\\n";
        else if (c == '\r') rep = "\\r";
        else if (c == '\t') rep = "\\t";
        else if (c == '\b') rep = "\\b";
        else if (c == '\f') rep = "\\f";
        else if (c < 0x20) snprintf(buf, sizeof(buf), "\\u%04x", c), rep = buf;
        if (!rep) continue;
        text(e, x.s + from, i - from, train);
        textz(e, rep, train);
        from = i + 1;
    }
    text(e, x.s + from, x.len - from, train);
    textz(e, "\"", train);
}

static const char *const role_names[VKL_ROLE_COUNT] = {"system", "user", "assistant", "tool"};

/* ---- Llama 3.1 / 3.2 (meta-llama/Llama-3.x-Instruct): a system turn with the dates always; contents trimmed ---- */

static void render_llama31(encoder *e, const vkl_message *m, size_t n, bool gen) {
    char date[64];
    if (e->tmpl == VKL_TEMPLATE_LLAMA32)
        strftime_now(e, "%d %b %Y", date, sizeof(date));
    else
        snprintf(date, sizeof(date), "26 Jul 2024"); /* 3.1 never asks strftime_now */
    tok_id(e, vkl_tokenizer_bos(e->tok), false);
    size_t i = 0;
    str sys = {"", 0};
    if (n && m[0].role == VKL_ROLE_SYSTEM) sys = py_strip(msg_str(&m[i++]));
    special(e, "<|start_header_id|>", false);
    textz(e, "system", false);
    special(e, "<|end_header_id|>", false);
    textz(e, "\n\nCutting Knowledge Date: December 2023\nToday Date: ", false);
    textz(e, date, false);
    textz(e, "\n\n", false);
    put(e, sys, false);
    special(e, "<|eot_id|>", false);
    for (; i < n; i++) {
        bool a = m[i].role == VKL_ROLE_ASSISTANT, tool = m[i].role == VKL_ROLE_TOOL;
        special(e, "<|start_header_id|>", false);
        textz(e, tool ? "ipython" : role_names[m[i].role], false);
        special(e, "<|end_header_id|>", false);
        textz(e, "\n\n", false);
        if (tool) /* `message.content is iterable` holds for a string: it goes through tojson */
            put_json_string(e, msg_str(&m[i]), false);
        else
            put(e, py_strip(msg_str(&m[i])), a);
        special(e, "<|eot_id|>", a);
    }
    if (gen) {
        special(e, "<|start_header_id|>", false);
        textz(e, "assistant", false);
        special(e, "<|end_header_id|>", false);
        textz(e, "\n\n", false);
    }
}

/* ---- ChatML families: Qwen2.5, Qwen3, SmolLM3 ---- */

static void im_start(encoder *e, const char *role) {
    special(e, "<|im_start|>", false);
    textz(e, role, false);
}

/* Qwen's tool results: consecutive tool messages share one user turn of <tool_response> blocks. */
static void qwen_tool(encoder *e, const vkl_message *m, size_t n, size_t i) {
    if (i == 0 || m[i - 1].role != VKL_ROLE_TOOL) im_start(e, "user");
    textz(e, "\n", false);
    special(e, "<tool_response>", false);
    textz(e, "\n", false);
    put(e, msg_str(&m[i]), false);
    textz(e, "\n", false);
    special(e, "</tool_response>", false);
    if (i + 1 == n || m[i + 1].role != VKL_ROLE_TOOL) {
        special(e, "<|im_end|>", false);
        textz(e, "\n", false);
    }
}

static void render_qwen25(encoder *e, const vkl_message *m, size_t n, bool gen) {
    im_start(e, "system\n");
    if (n && m[0].role == VKL_ROLE_SYSTEM)
        put(e, msg_str(&m[0]), false);
    else
        textz(e, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", false);
    special(e, "<|im_end|>", false);
    textz(e, "\n", false);
    for (size_t i = 0; i < n; i++) {
        if (m[i].role == VKL_ROLE_TOOL) {
            qwen_tool(e, m, n, i);
        } else if (!(m[i].role == VKL_ROLE_SYSTEM && i == 0)) {
            bool a = m[i].role == VKL_ROLE_ASSISTANT;
            im_start(e, role_names[m[i].role]);
            textz(e, "\n", false);
            put(e, msg_str(&m[i]), a);
            special(e, "<|im_end|>", a);
            textz(e, "\n", false);
        }
    }
    if (gen) im_start(e, "assistant\n");
}

/* Qwen3: reasoning is split off a "<think>...</think>" prefix of the content; the assistant turns after the last
 * real user query carry a <think> block when they are the last message or have reasoning, the earlier ones lose
 * it. enable_thinking is left undefined (it only changes the generation prompt). */
static void render_qwen3(encoder *e, const vkl_message *m, size_t n, bool gen) {
    if (n && m[0].role == VKL_ROLE_SYSTEM) {
        im_start(e, "system\n");
        put(e, msg_str(&m[0]), false);
        special(e, "<|im_end|>", false);
        textz(e, "\n", false);
    }
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        str c = msg_str(&m[k]);
        if (m[k].role == VKL_ROLE_USER && !(str_starts(c, "<tool_response>") && str_ends(c, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (m[i].role == VKL_ROLE_USER || (m[i].role == VKL_ROLE_SYSTEM && i > 0)) {
            im_start(e, role_names[m[i].role]);
            textz(e, "\n", false);
            put(e, msg_str(&m[i]), false);
            special(e, "<|im_end|>", false);
            textz(e, "\n", false);
        } else if (m[i].role == VKL_ROLE_ASSISTANT) {
            str content = msg_str(&m[i]), reasoning = {"", 0};
            if (str_find(content, "</think>")) {
                str whole = content;
                content = lstrip_nl(after_last(whole, "</think>"));
                reasoning = lstrip_nl(after_last(rstrip_nl(before_first(whole, "</think>")), "<think>"));
            }
            im_start(e, "assistant\n");
            if (i > last_query && (i + 1 == n || reasoning.len)) {
                special(e, "<think>", true);
                textz(e, "\n", true);
                put(e, lstrip_nl(rstrip_nl(reasoning)), true);
                textz(e, "\n", true);
                special(e, "</think>", true);
                textz(e, "\n\n", true);
                put(e, lstrip_nl(content), true);
            } else {
                put(e, content, true);
            }
            special(e, "<|im_end|>", true);
            textz(e, "\n", false);
        } else if (m[i].role == VKL_ROLE_TOOL) {
            qwen_tool(e, m, n, i);
        }
    }
    if (gen) im_start(e, "assistant\n");
}

static const char smollm3_think_a[] =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant "
    "involves thoroughly exploring questions through a systematic thinking process before providing "
    "the final precise and accurate solutions. This requires engaging in a comprehensive cycle of analysis, "
    "summarizing, exploration, reassessment, reflection, backtracking, and iteration to develop well-considered "
    "thinking process. Please structure your response into two main sections: Thought and Solution "
    "using the specified format: ";
static const char smollm3_think_b[] =
    " Thought section ";
static const char smollm3_think_c[] =
    " Solution section. In the Thought section, detail your reasoning process in steps. Each step should "
    "include detailed considerations such as analysing questions, summarizing relevant findings, brainstorming "
    "new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous "
    "steps. In the Solution section, based on various attempts, explorations, and reflections from "
    "the Thought section, systematically present the final solution that you deem correct. The Solution "
    "section should be logical, accurate, and concise and detail necessary steps needed to reach the "
    "conclusion.";

/* SmolLM3 (Unsloth's edit of HuggingFaceTB/SmolLM3-3B): enable_thinking undefined means true, so the reasoning
 * mode is /think unless the system message says /no_think (or /think); the flags are cut out of the system text. */
static void str_remove_all(const char *s, size_t len, const char *pat, char *out, size_t *out_len) {
    size_t pl = strlen(pat), o = 0;
    for (size_t i = 0; i < len;) {
        if (i + pl <= len && !memcmp(s + i, pat, pl)) {
            i += pl;
        } else {
            out[o++] = s[i++];
        }
    }
    *out_len = o;
}

static void render_smollm3(encoder *e, const vkl_message *m, size_t n, bool gen) {
    bool think = true;
    char *custom = NULL;
    str ci = {"", 0};
    if (n && m[0].role == VKL_ROLE_SYSTEM) {
        str sys = msg_str(&m[0]);
        if (str_find(sys, "/no_think"))
            think = false;
        else if (str_find(sys, "/think"))
            think = true;
        char *tmp = vkl_malloc(sys.len + 1);
        custom = vkl_malloc(sys.len + 1);
        size_t l1, l2;
        str_remove_all(sys.s, sys.len, "/no_think", tmp, &l1);
        str_remove_all(tmp, l1, "/think", custom, &l2);
        free(tmp);
        ci = py_rstrip((str){custom, l2});
    }
    im_start(e, "system\n");
    textz(e, "## Metadata\n\nKnowledge Cutoff Date: June 2025\nReasoning Mode: ", false);
    textz(e, think ? "/think" : "/no_think", false);
    textz(e, "\n\n## Custom Instructions\n\n", false);
    if (ci.len) {
        put(e, ci, false);
        textz(e, "\n\n", false);
    } else if (think) {
        textz(e, smollm3_think_a, false);
        special(e, "<think>", false);
        textz(e, smollm3_think_b, false);
        special(e, "</think>", false);
        textz(e, smollm3_think_c, false);
        textz(e, "\n\n", false);
    } else {
        textz(e, "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\n\n", false);
    }
    free(custom);
    special(e, "<|im_end|>", false);
    textz(e, "\n", false);
    for (size_t i = 0; i < n; i++) {
        if (m[i].role == VKL_ROLE_USER || m[i].role == VKL_ROLE_TOOL) {
            im_start(e, "user\n");
            put(e, msg_str(&m[i]), false);
            special(e, "<|im_end|>", false);
            textz(e, "\n", false);
        } else if (m[i].role == VKL_ROLE_ASSISTANT) {
            im_start(e, "assistant\n");
            if (!think) {
                special(e, "<think>", true);
                textz(e, "\n\n", true);
                special(e, "</think>", true);
                textz(e, "\n", true);
            }
            put(e, lstrip_nl(msg_str(&m[i])), true);
            special(e, "<|im_end|>", true);
            textz(e, "\n", false);
        }
    }
    if (gen) {
        im_start(e, "assistant\n");
        if (!think) {
            special(e, "<think>", false);
            textz(e, "\n\n", false);
            special(e, "</think>", false);
            textz(e, "\n", false);
        }
    }
}

/* ---- Gemma ---- */

/* Gemma 2 (and 1): no system role, strict user/model alternation. Gemma 3: the system text prefixes the first
 * user turn. Contents are trimmed. */
static void render_gemma23(encoder *e, const vkl_message *m, size_t n, bool gen) {
    bool g3 = e->tmpl == VKL_TEMPLATE_GEMMA3;
    tok_id(e, vkl_tokenizer_bos(e->tok), false);
    size_t first = 0;
    str prefix = {"", 0};
    if (n && m[0].role == VKL_ROLE_SYSTEM) {
        if (!g3) return fail(e, "System role not supported");
        prefix = msg_str(&m[0]);
        first = 1;
    }
    for (size_t i = first; i < n; i++) {
        if ((m[i].role == VKL_ROLE_USER) != ((i - first) % 2 == 0))
            return fail(e, "Conversation roles must alternate user/assistant/user/assistant/...");
        bool a = m[i].role == VKL_ROLE_ASSISTANT;
        special(e, "<start_of_turn>", false);
        textz(e, a ? "model" : role_names[m[i].role], false);
        textz(e, "\n", false);
        if (i == first && first) {
            put(e, prefix, false);
            textz(e, "\n\n", false);
        }
        put(e, py_strip(msg_str(&m[i])), a);
        special(e, "<end_of_turn>", a);
        textz(e, "\n", false);
    }
    if (gen) {
        special(e, "<start_of_turn>", false);
        textz(e, "model\n", false);
    }
}

/* Gemma 4's strip_thinking: drop every "<|channel>...<channel|>" thought block, then trim. */
static void put_gemma4_model(encoder *e, str c, bool train) {
    /* for part in text.split('<channel|>'): keep part.split('<|channel>')[0] when it has one, else the part */
    char *buf = vkl_malloc(c.len + 1);
    size_t o = 0;
    str rest = c;
    for (;;) {
        const char *end = str_find(rest, "<channel|>");
        str part = end ? (str){rest.s, (size_t)(end - rest.s)} : rest;
        part = before_first(part, "<|channel>");
        memcpy(buf + o, part.s, part.len);
        o += part.len;
        if (!end) break;
        size_t skip = (size_t)(end - rest.s) + strlen("<channel|>");
        rest = (str){rest.s + skip, rest.len - skip};
    }
    put(e, py_strip((str){buf, o}), train);
    free(buf);
}

/* Gemma 4 (google/gemma-4-*-it): "<|turn>role\n...<turn|>\n"; without tool calls, tool messages render nothing
 * and an assistant message right after an assistant message continues its turn (no new header). */
static void render_gemma4(encoder *e, const vkl_message *m, size_t n, bool gen) {
    tok_id(e, vkl_tokenizer_bos(e->tok), false);
    size_t i = 0;
    if (n && m[0].role == VKL_ROLE_SYSTEM) {
        special(e, "<|turn>", false);
        textz(e, "system\n", false);
        put(e, py_strip(msg_str(&m[0])), false);
        special(e, "<turn|>", false);
        textz(e, "\n", false);
        i = 1;
    }
    size_t first = i;
    for (; i < n; i++) {
        if (m[i].role == VKL_ROLE_TOOL) continue;
        bool a = m[i].role == VKL_ROLE_ASSISTANT;
        size_t j = i;
        while (j > first && m[j - 1].role == VKL_ROLE_TOOL) j--;
        bool cont = a && j > first && m[j - 1].role == VKL_ROLE_ASSISTANT;
        if (!cont) {
            special(e, "<|turn>", false);
            textz(e, a ? "model" : role_names[m[i].role], false);
            textz(e, "\n", false);
        }
        if (a)
            put_gemma4_model(e, msg_str(&m[i]), true);
        else
            put(e, py_strip(msg_str(&m[i])), false);
        special(e, "<turn|>", a);
        textz(e, "\n", false);
    }
    if (gen) {
        special(e, "<|turn>", false);
        textz(e, "model\n", false);
        special(e, "<|channel>", false);
        textz(e, "thought\n", false);
        special(e, "<channel|>", false);
    }
}

/* ---- Phi-3.5 (microsoft/Phi-3.5-mini-instruct): empty system messages and tool messages render nothing; the
 * conversation ends with eos_token (not trained: the assistant turn ends at <|end|>) ---- */

static void render_phi35(encoder *e, const vkl_message *m, size_t n, bool gen) {
    for (size_t i = 0; i < n; i++) {
        bool a = m[i].role == VKL_ROLE_ASSISTANT;
        if (m[i].role == VKL_ROLE_TOOL || (m[i].role == VKL_ROLE_SYSTEM && !m[i].len)) continue;
        special(e, m[i].role == VKL_ROLE_SYSTEM ? "<|system|>" : a ? "<|assistant|>" : "<|user|>", false);
        textz(e, "\n", false);
        put(e, msg_str(&m[i]), a);
        special(e, "<|end|>", a);
        textz(e, "\n", false);
    }
    if (gen) {
        special(e, "<|assistant|>", false);
        textz(e, "\n", false);
    } else {
        tok_id(e, vkl_tokenizer_eos(e->tok), false);
    }
}

/* ---- Mistral Nemo / Small 3.x: [INST] without spaces, strict alternation after an optional system message ---- */

static const char mistral_small_sys_a[] =
    "You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI, a French startup "
    "headquartered in Paris.\n"
    "Your knowledge base was last updated on 2023-10-01. The current date is ";
static const char mistral_small_sys_b[] =
    ".\n"
    "\n"
    "When you're not sure about some information or when the user's request requires up-to-date or "
    "specific data, you must use the available tools to fetch the information. Do not hesitate to use "
    "tools whenever they can provide a more accurate or complete response. If no relevant tools are "
    "available, then clearly state that you don't have the information and avoid making up anything.\n"
    "\n"
    "If the user's question is not clear, ambiguous, or does not provide enough context for you to "
    "accurately answer the question, you do not try to answer it right away and you rather ask the "
    "user to clarify their request (e.g. \"What are some good restaurants around me?\" => \"Where are "
    "you?\" or \"When is the next flight to Tokyo\" => \"Where do you travel from?\").\n"
    "You are always very attentive to dates, and when asked about information at specific dates, you "
    "discard information that is at another date.\n"
    "You follow these instructions in all languages, and always respond to the user in the language "
    "they use or request.\n"
    "Next sections describe the capabilities that you have.\n"
    "\n"
    "# WEB BROWSING INSTRUCTIONS\n"
    "\n"
    "You cannot perform any web search or access internet to open URLs, links etc. If it seems like "
    "the user is expecting you to do so, you clarify the situation and ask the user to copy paste the "
    "text directly in the chat.\n"
    "\n"
    "# MULTI-MODAL INSTRUCTIONS\n"
    "\n"
    "You have the ability to read images, but you cannot generate images. You also cannot transcribe "
    "audio files or videos.\n"
    "You cannot read nor transcribe audio files or videos.\n"
    "\n"
    "# TOOL CALLING INSTRUCTIONS\n"
    "\n"
    "You may have access to tools that you can use to fetch information or perform actions. You must "
    "use these tools in the following situations:\n"
    "\n"
    "1. When the request requires up-to-date information.\n"
    "2. When the request requires specific data that you do not have in your knowledge base.\n"
    "3. When the request involves actions that you cannot perform without tools.\n"
    "\n"
    "Always prioritize using tools to provide the most accurate and helpful response. If tools are "
    "not available, inform the user that you cannot perform the requested action at the moment.";

static bool mistral_alternates(encoder *e, const vkl_message *m, size_t from, size_t n) {
    size_t idx = 0;
    for (size_t i = from; i < n; i++) {
        if (m[i].role == VKL_ROLE_TOOL) continue;
        if ((m[i].role == VKL_ROLE_USER) != (idx % 2 == 0)) {
            fail(e, "After the optional system message, conversation roles must alternate "
                    "user/assistant/user/assistant/...");
            return false;
        }
        idx++;
    }
    return true;
}

/* Nemo puts the system message in front of the last user message only when that is the conversation's last
 * message: a training conversation that ends with the assistant loses it (what the template renders). */
static void render_mistral_nemo(encoder *e, const vkl_message *m, size_t n, bool gen) {
    (void)gen; /* the user turn already ends with [/INST] */
    size_t first = n && m[0].role == VKL_ROLE_SYSTEM ? 1 : 0;
    if (!mistral_alternates(e, m, first, n)) return;
    int32_t eos = vkl_tokenizer_eos(e->tok);
    tok_id(e, vkl_tokenizer_bos(e->tok), false);
    for (size_t i = first; i < n; i++) {
        if (m[i].role == VKL_ROLE_USER) {
            special(e, "[INST]", false);
            if (i + 1 == n && first) {
                put(e, msg_str(&m[0]), false);
                textz(e, "\n\n", false);
            }
            put(e, msg_str(&m[i]), false);
            special(e, "[/INST]", false);
        } else if (m[i].role == VKL_ROLE_ASSISTANT) {
            put(e, msg_str(&m[i]), true);
            tok_id(e, eos, true);
        } else if (m[i].role == VKL_ROLE_TOOL) {
            return fail(e, "Tool call IDs should be alphanumeric strings with length 9!");
        } else {
            return fail(e, "Only user and assistant roles are supported, with the exception of an initial optional "
                           "system message!");
        }
    }
}

/* Small 3.1/3.2: a [SYSTEM_PROMPT] block always, the template's default one (with strftime_now's date) when the
 * conversation has no system message; later system messages become [SYSTEM_PROMPT] blocks in place. */
static void render_mistral_small(encoder *e, const vkl_message *m, size_t n, bool gen) {
    (void)gen;
    size_t first = n && m[0].role == VKL_ROLE_SYSTEM ? 1 : 0;
    tok_id(e, vkl_tokenizer_bos(e->tok), false);
    if (!mistral_alternates(e, m, first, n)) return;
    int32_t eos = vkl_tokenizer_eos(e->tok);
    special(e, "[SYSTEM_PROMPT]", false);
    if (first) {
        put(e, msg_str(&m[0]), false);
    } else {
        char date[32];
        strftime_now(e, "%Y-%m-%d", date, sizeof(date));
        textz(e, mistral_small_sys_a, false);
        textz(e, date, false);
        textz(e, mistral_small_sys_b, false);
    }
    special(e, "[/SYSTEM_PROMPT]", false);
    for (size_t i = first; i < n; i++) {
        switch (m[i].role) {
        case VKL_ROLE_SYSTEM:
            special(e, "[SYSTEM_PROMPT]", false);
            put(e, msg_str(&m[i]), false);
            special(e, "[/SYSTEM_PROMPT]", false);
            break;
        case VKL_ROLE_USER:
            special(e, "[INST]", false);
            put(e, msg_str(&m[i]), false);
            special(e, "[/INST]", false);
            break;
        case VKL_ROLE_ASSISTANT:
            put(e, msg_str(&m[i]), true);
            tok_id(e, eos, true);
            break;
        default: return fail(e, "Tool call IDs should be alphanumeric strings with length 9!");
        }
    }
}

/* ---- DeepSeek-R1 distills: the last system message goes first, reasoning before </think> is dropped from
 * assistant messages; tool outputs are wrapped in the tool-output markers ---- */

static void render_deepseek_r1(encoder *e, const vkl_message *m, size_t n, bool gen) {
    str sys = {"", 0};
    for (size_t i = 0; i < n; i++)
        if (m[i].role == VKL_ROLE_SYSTEM) sys = msg_str(&m[i]);
    tok_id(e, vkl_tokenizer_bos(e->tok), false);
    put(e, sys, false);
    bool is_tool = false, output_first = true;
    for (size_t i = 0; i < n; i++) {
        str c = msg_str(&m[i]);
        switch (m[i].role) {
        case VKL_ROLE_USER:
            is_tool = false;
            special(e, "<｜User｜>", false);
            put(e, c, false);
            break;
        case VKL_ROLE_ASSISTANT:
            if (is_tool) {
                special(e, "<｜tool▁outputs▁end｜>", false);
                is_tool = false;
            } else {
                if (str_find(c, "</think>")) c = after_last(c, "</think>");
                special(e, "<｜Assistant｜>", false);
            }
            put(e, c, true);
            special(e, "<｜end▁of▁sentence｜>", true);
            break;
        case VKL_ROLE_TOOL:
            is_tool = true;
            if (output_first) {
                special(e, "<｜tool▁outputs▁begin｜>", false);
                output_first = false;
            } else {
                textz(e, "\n", false);
            }
            special(e, "<｜tool▁output▁begin｜>", false);
            put(e, c, false);
            special(e, "<｜tool▁output▁end｜>", false);
            break;
        default: break;
        }
    }
    if (is_tool) special(e, "<｜tool▁outputs▁end｜>", false);
    if (gen && !is_tool) {
        /* enable_thinking undefined: `not enable_thinking` holds, so the think block is closed at once */
        special(e, "<｜Assistant｜>", false);
        special(e, "<think>", false);
        textz(e, "\n", false);
        special(e, "</think>", false);
    }
}

/* ---- gpt-oss (harmony): a fixed system message (reasoning medium, strftime_now's date), the system message as
 * the developer's instructions, assistant messages in the final channel; the last one ends with <|return|> (the
 * token the model must learn to stop with), earlier ones with <|end|> ---- */

static void render_gpt_oss(encoder *e, const vkl_message *m, size_t n, bool gen) {
    char date[32];
    strftime_now(e, "%Y-%m-%d", date, sizeof(date));
    special(e, "<|start|>", false);
    textz(e, "system", false);
    special(e, "<|message|>", false);
    textz(e, "You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\nCurrent date: ",
          false);
    textz(e, date, false);
    textz(e, "\n\nReasoning: medium\n\n# Valid channels: analysis, commentary, final. Channel must be included for "
             "every message.",
          false);
    special(e, "<|end|>", false);
    size_t i = 0;
    if (n && m[0].role == VKL_ROLE_SYSTEM) {
        if (m[0].len) {
            special(e, "<|start|>", false);
            textz(e, "developer", false);
            special(e, "<|message|>", false);
            textz(e, "# Instructions\n\n", false);
            put(e, msg_str(&m[0]), false);
            textz(e, "\n\n", false);
            special(e, "<|end|>", false);
        }
        i = 1;
    }
    for (; i < n; i++) {
        str c = msg_str(&m[i]);
        if (m[i].role == VKL_ROLE_ASSISTANT) {
            if (str_find(c, "<|channel|>analysis<|message|>") || str_find(c, "<|channel|>final<|message|>"))
                return fail(e, "You have passed a message containing <|channel|> tags in the content field. Instead "
                               "of doing this, you should pass analysis messages (the string between '<|message|>' "
                               "and '<|end|>') in the 'thinking' field, and final messages (the string between "
                               "'<|message|>' and '<|end|>') in the 'content' field.");
            special(e, "<|start|>", false);
            textz(e, "assistant", false);
            special(e, "<|channel|>", false);
            textz(e, "final", false);
            special(e, "<|message|>", false);
            put(e, c, true);
            special(e, i + 1 == n && !gen ? "<|return|>" : "<|end|>", true);
        } else if (m[i].role == VKL_ROLE_TOOL) {
            return fail(e, "Message has tool role, but there was no previous assistant message with a tool call!");
        } else if (m[i].role == VKL_ROLE_USER) {
            special(e, "<|start|>", false);
            textz(e, "user", false);
            special(e, "<|message|>", false);
            put(e, c, false);
            special(e, "<|end|>", false);
        }
    }
    if (gen) {
        special(e, "<|start|>", false);
        textz(e, "assistant", false);
    }
}

/* ---- Templates of the first generation: chatml, llama-3, llama-2, mistral, alpaca, plain ---- */

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

/* ---- Rendering ---- */

static int64_t resolve_now(int64_t now, bool *utc) {
    *utc = true;
    if (now) return now;
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        char *end;
        long long v = strtoll(sde, &end, 10);
        if (!*end && v > 0) return v;
    }
    *utc = false;
    return (int64_t)time(NULL);
}

vkl_status vkl_data_render_chat(const vkl_tokenizer *tok, vkl_chat_template tmpl, const vkl_message *msgs,
                                size_t n_msgs, const vkl_chat_opts *o, vkl_chat_encoding *out, vkl_err *err) {
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < n_msgs; i++)
        if ((unsigned)msgs[i].role >= VKL_ROLE_COUNT || (msgs[i].len && !msgs[i].content))
            return vkl_err_set(err, VKL_ERR_INPUT, "data: message %zu: invalid role %d or NULL content", i,
                               (int)msgs[i].role);
    encoder e = {.tok = tok, .tmpl = tmpl, .all_train = !o->responses_only, .err = err};
    e.now = resolve_now(o->now, &e.now_utc);
    bool gen = o->add_generation_prompt;
    append_full(&e, "", 0);
    switch (tmpl) {
    case VKL_TEMPLATE_CHATML: render_chatml(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_LLAMA3: render_llama3(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_LLAMA2: render_inst(&e, msgs, n_msgs, true); break;
    case VKL_TEMPLATE_MISTRAL: render_inst(&e, msgs, n_msgs, false); break;
    case VKL_TEMPLATE_ALPACA: render_alpaca(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_PLAIN: render_plain(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_LLAMA31:
    case VKL_TEMPLATE_LLAMA32: render_llama31(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_QWEN25: render_qwen25(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_QWEN3: render_qwen3(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_SMOLLM3: render_smollm3(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_GEMMA2:
    case VKL_TEMPLATE_GEMMA3: render_gemma23(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_GEMMA4: render_gemma4(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_PHI35: render_phi35(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_MISTRAL_NEMO: render_mistral_nemo(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_MISTRAL_SMALL: render_mistral_small(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_DEEPSEEK_R1: render_deepseek_r1(&e, msgs, n_msgs, gen); break;
    case VKL_TEMPLATE_GPT_OSS: render_gpt_oss(&e, msgs, n_msgs, gen); break;
    default:
        free(e.full);
        return vkl_err_set(err, VKL_ERR_INPUT, "data: template %d is not a concrete template (resolve \"auto\" first)",
                           (int)tmpl);
    }
    flush(&e, -1);
    free(e.run);
    free(e.segs);
    if (e.st) {
        free(e.ids);
        free(e.labels);
        free(e.full);
        return e.st;
    }
    /* BOS once at the start, unless the template began with it already (llama.cpp strips a rendered bos_token
     * and lets the tokenizer add it: the same ids). */
    int32_t bos = vkl_tokenizer_bos(tok);
    if (vkl_tokenizer_adds_bos(tok) && bos >= 0 && (e.n == 0 || e.ids[0] != bos)) {
        push_tok(&e, bos, false); /* grows the arrays; moved to the front below */
        memmove(e.ids + 1, e.ids, (e.n - 1) * sizeof(int32_t));
        memmove(e.labels + 1, e.labels, (e.n - 1) * sizeof(int32_t));
        e.ids[0] = bos;
        e.labels[0] = o->responses_only ? -1 : bos;
    }
    out->tokens = e.ids;
    out->labels = e.labels;
    out->n = e.n;
    out->text = e.full;
    out->text_len = e.full_len;
    return VKL_OK;
}

void vkl_chat_encoding_free(vkl_chat_encoding *c) {
    if (!c) return;
    free(c->tokens);
    free(c->labels);
    free(c->text);
    memset(c, 0, sizeof(*c));
}

vkl_status vkl_data_encode_chat(const vkl_tokenizer *tok, vkl_chat_template tmpl, const vkl_message *msgs,
                                size_t n_msgs, bool responses_only, bool add_generation_prompt, int32_t **tokens,
                                int32_t **labels, size_t *n, vkl_err *err) {
    vkl_chat_opts o = {.responses_only = responses_only, .add_generation_prompt = add_generation_prompt};
    vkl_chat_encoding c;
    *tokens = *labels = NULL;
    *n = 0;
    vkl_status st = vkl_data_render_chat(tok, tmpl, msgs, n_msgs, &o, &c, err);
    if (st) return st;
    free(c.text);
    *tokens = c.tokens;
    *labels = c.labels;
    *n = c.n;
    return VKL_OK;
}

/* ---- Template choice ---- */

static bool has(const char *t, const char *s) { return strstr(t, s) != NULL; }

vkl_chat_template vkl_data_detect_template(const char *t) {
    if (!t) return VKL_TEMPLATE_AUTO;
    /* the most specific markup first: several families share <|im_start|>, <|start_header_id|> or [INST] */
    if (has(t, "<|start|>") && has(t, "<|channel|>")) return VKL_TEMPLATE_GPT_OSS;
    if (has(t, "<|turn>")) return VKL_TEMPLATE_GEMMA4;
    if (has(t, "<start_of_turn>")) return has(t, "first_user_prefix") ? VKL_TEMPLATE_GEMMA3 : VKL_TEMPLATE_GEMMA2;
    if (has(t, "<｜Assistant｜>")) return VKL_TEMPLATE_DEEPSEEK_R1;
    if (has(t, "<|im_start|>")) {
        if (has(t, "Reasoning Mode") || has(t, "SmolLM")) return VKL_TEMPLATE_SMOLLM3;
        if (has(t, "<think>") && has(t, "last_query_index")) return VKL_TEMPLATE_QWEN3;
        if (has(t, "You are Qwen, created by Alibaba Cloud")) return VKL_TEMPLATE_QWEN25;
        return VKL_TEMPLATE_CHATML;
    }
    if (has(t, "<|start_header_id|>")) {
        if (!has(t, "Cutting Knowledge Date")) return VKL_TEMPLATE_LLAMA3;
        return has(t, "strftime_now") ? VKL_TEMPLATE_LLAMA32 : VKL_TEMPLATE_LLAMA31;
    }
    if (has(t, "<|assistant|>") && has(t, "<|system|>") && has(t, "<|end|>")) return VKL_TEMPLATE_PHI35;
    if (has(t, "[SYSTEM_PROMPT]") && has(t, "[INST]")) return VKL_TEMPLATE_MISTRAL_SMALL;
    if (has(t, "[INST]")) {
        if (has(t, "<<SYS>>")) return VKL_TEMPLATE_LLAMA2;
        /* Nemo: "[INST]" + content + "[/INST]", no spaces around the content */
        if (has(t, "\"[INST]\" +") || has(t, "'[INST]' +")) return VKL_TEMPLATE_MISTRAL_NEMO;
        return VKL_TEMPLATE_MISTRAL;
    }
    if (has(t, "### Instruction")) return VKL_TEMPLATE_ALPACA;
    return VKL_TEMPLATE_AUTO;
}

vkl_chat_template vkl_data_resolve_template(vkl_chat_template requested, const char *gguf_chat_template) {
    if (requested != VKL_TEMPLATE_AUTO && (unsigned)requested < VKL_TEMPLATE_COUNT) return requested;
    if (!gguf_chat_template) return VKL_TEMPLATE_ALPACA;
    return vkl_data_detect_template(gguf_chat_template);
}
