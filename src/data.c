/* Dataset files -> examples: reads raw text, a JSON array or JSONL of alpaca / ShareGPT / messages / text records,
 * validates every record (errors name file, row, field), renders and tokenizes it, truncates, splits off eval. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data_internal.h"
#include "platform.h"
#include "vklora/data.h"
#include "vklora/rng.h"

/* A dataset is read whole; a cJSON tree costs several times the text, so bigger files are refused up front. */
#define MAX_DATA_FILE (1ull << 30)
#define MAX_TURNS 100000

/* ---- Building a dataset ---- */

typedef struct {
    size_t off; /* into store: tokens at off, labels at off + n */
    uint32_t n, row;
    char *text; /* rendered text when kept (the first keep_text examples), else NULL */
} item;

typedef struct {
    int32_t *store;
    size_t n_store, cap_store;
    item *items;
    size_t n_items, cap_items;
    uint32_t max_seq;
    uint32_t keep_text; /* examples whose text is kept */
    const vkl_tokenizer *tok; /* for the text of token-only examples */
    vkl_data_stats stats;
} builder;

/* text: the rendered example (NULL: detokenize the ids when the text is to be kept). */
static void add_example(builder *b, const int32_t *tok, const int32_t *lab, size_t n, uint32_t row,
                        const char *text) {
    if (n > b->max_seq) {
        n = b->max_seq;
        b->stats.n_truncated++;
    }
    uint64_t trainable = 0;
    for (size_t i = 1; i < n; i++) trainable += lab[i] >= 0;
    if (!trainable) {
        b->stats.n_dropped_untrainable++;
        return;
    }
    if (b->n_store + 2 * n > b->cap_store) {
        while (b->n_store + 2 * n > b->cap_store) b->cap_store = b->cap_store ? 2 * b->cap_store : 1 << 16;
        b->store = vkl_realloc(b->store, b->cap_store * sizeof(int32_t));
    }
    if (b->n_items == b->cap_items) {
        b->cap_items = b->cap_items ? 2 * b->cap_items : 256;
        b->items = vkl_realloc(b->items, b->cap_items * sizeof(item));
    }
    memcpy(b->store + b->n_store, tok, n * sizeof(int32_t));
    memcpy(b->store + b->n_store + n, lab, n * sizeof(int32_t));
    char *kept = NULL;
    if (b->n_items < b->keep_text) {
        if (text) {
            kept = vkl_strdup(text);
        } else if (b->tok) {
            size_t len;
            vkl_err derr = {0};
            if (vkl_detokenize(b->tok, tok, n, true, &kept, &len, &derr)) kept = NULL;
        }
    }
    b->items[b->n_items++] = (item){b->n_store, (uint32_t)n, row, kept};
    b->n_store += 2 * n;
    b->stats.n_tokens += n;
    b->stats.n_trainable += trainable;
}

static vkl_dataset *finish(builder *b) {
    vkl_dataset *d = vkl_calloc(1, sizeof(*d));
    d->store = b->store;
    d->n = (uint32_t)b->n_items;
    d->ex = vkl_calloc(b->n_items ? b->n_items : 1, sizeof(vkl_example));
    for (size_t i = 0; i < b->n_items; i++) {
        const item *it = &b->items[i];
        d->ex[i] = (vkl_example){d->store + it->off, d->store + it->off + it->n, it->n, it->row};
        d->max_len = VKL_MAX(d->max_len, it->n);
        if (it->text) {
            if (!d->text) d->text = vkl_calloc(b->n_items, sizeof(char *));
            d->text[i] = it->text;
        }
    }
    d->stats = b->stats;
    free(b->items);
    memset(b, 0, sizeof(*b));
    return d;
}

void vkl_dataset_free(vkl_dataset *d) {
    if (!d) return;
    free(d->path);
    free(d->ex);
    free(d->store);
    if (d->text)
        for (uint32_t i = 0; i < d->n; i++) free(d->text[i]);
    free(d->text);
    free(d);
}

vkl_dataset *vkl_dataset_subset(const vkl_dataset *d, const uint32_t *keep, uint32_t n_keep) {
    builder b = {.max_seq = UINT32_MAX, .keep_text = d->text ? n_keep : 0};
    for (uint32_t k = 0; k < n_keep; k++) {
        const vkl_example *e = &d->ex[keep[k]];
        const char *t = d->text ? d->text[keep[k]] : NULL;
        b.keep_text = t ? b.keep_text : 0; /* texts stop where the source's stop */
        add_example(&b, e->tokens, e->labels, e->n, e->row, t);
    }
    vkl_dataset *s = finish(&b);
    s->path = d->path ? vkl_strdup(d->path) : NULL;
    s->format = d->format;
    s->tmpl = d->tmpl;
    s->pad_id = d->pad_id;
    s->stats.n_rows = n_keep;
    return s;
}

/* ---- Reading ---- */

typedef struct {
    const char *path;
    const vkl_data_opts *o;
    const vkl_tokenizer *tok;
    vkl_dataset_format format; /* resolved on the first record */
    vkl_chat_template tmpl;
    bool jsonl; /* rows are lines */
    builder b;
    vkl_message *msgs;
    size_t msgs_cap;
    char *scratch; /* alpaca's joined instruction + input */
    vkl_err *err;
} reader;

static vkl_status row_err(reader *r, uint64_t row, const char *fmt, ...) VKL_PRINTF(3, 4);
static vkl_status row_err(reader *r, uint64_t row, const char *fmt, ...) {
    char what[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return vkl_err_set(r->err, VKL_ERR_INPUT, "data: %s: %s %llu: %s", r->path, r->jsonl ? "line" : "row",
                       (unsigned long long)row, what);
}

static const char *json_kind(const cJSON *v) {
    if (!v) return "nothing (missing)";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

static vkl_status read_file(const char *path, char **buf, size_t *len, vkl_err *err) {
    *buf = NULL;
    *len = 0;
    FILE *f = vkl_os_fopen(path, "rb");
    if (!f) return vkl_err_set(err, VKL_ERR_INPUT, "data: %s: cannot open: %s", path, strerror(errno));
    vkl_status st = VKL_OK;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "data: %s: not a regular file", path);
    } else if ((unsigned long long)size > MAX_DATA_FILE) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "data: %s: %ld bytes: dataset files are read whole, at most %llu MiB",
                         path, size, MAX_DATA_FILE >> 20);
    } else {
        *buf = vkl_malloc((size_t)size + 1);
        if (fread(*buf, 1, (size_t)size, f) != (size_t)size) {
            st = vkl_err_set(err, VKL_ERR_RUNTIME, "data: %s: read error", path);
            free(*buf);
            *buf = NULL;
        } else {
            (*buf)[size] = 0;
            *len = (size_t)size;
        }
    }
    fclose(f);
    return st;
}

static bool has_ext(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    return n > e && !strcasecmp(path + n - e, ext);
}

/* 1-based line and column of byte `at` in text (column in bytes). */
static void line_col(const char *text, size_t at, size_t *line, size_t *col) {
    size_t l = 1, c = 1;
    for (size_t i = 0; i < at; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* ---- Records -> messages ---- */

static bool map_role(const char *s, vkl_role *out) {
    static const struct {
        const char *name;
        vkl_role role;
    } roles[] = {
        {"human", VKL_ROLE_USER},
        {"user", VKL_ROLE_USER},
        {"gpt", VKL_ROLE_ASSISTANT},
        {"assistant", VKL_ROLE_ASSISTANT},
        {"model", VKL_ROLE_ASSISTANT},
        {"system", VKL_ROLE_SYSTEM},
        {"function_call", VKL_ROLE_ASSISTANT},
        {"observation", VKL_ROLE_TOOL},
        {"tool", VKL_ROLE_TOOL},
        {"ipython", VKL_ROLE_TOOL},
        {"function", VKL_ROLE_TOOL},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(roles); i++)
        if (!strcmp(s, roles[i].name)) {
            *out = roles[i].role;
            return true;
        }
    return false;
}

static void push_msg(reader *r, size_t *n, vkl_role role, const char *s, size_t len) {
    if (*n == r->msgs_cap) {
        r->msgs_cap = r->msgs_cap ? 2 * r->msgs_cap : 16;
        r->msgs = vkl_realloc(r->msgs, r->msgs_cap * sizeof(vkl_message));
    }
    r->msgs[(*n)++] = (vkl_message){role, s, len};
}

/* The model's chat template is none vklora knows: say so, show its start, and name the way out. */
static vkl_status unknown_template(reader *r) {
    char start[81];
    size_t k = 0;
    for (const char *t = r->o->gguf_chat_template; t && *t && k < sizeof(start) - 1; t++)
        start[k++] = (*t == '\n' || *t == '\r' || *t == '\t') ? ' ' : *t;
    start[k] = 0;
    char names[512];
    size_t at = 0;
    for (int i = 1; i < VKL_TEMPLATE_COUNT && at < sizeof(names) - 32; i++)
        at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%s", i > 1 ? ", " : "", vkl_chat_template_names[i]);
    return vkl_err_set(r->err, VKL_ERR_INPUT,
                       "data: %s: the model's tokenizer.chat_template is not one vklora can render (it starts \"%s%s\"): "
                       "set dataset.template (--set dataset.template=NAME) to the format the model was trained on: %s",
                       r->path, start, r->o->gguf_chat_template && strlen(r->o->gguf_chat_template) > k ? "..." : "",
                       names);
}

static vkl_status encode_and_add(reader *r, uint64_t row, size_t n_msgs) {
    bool has_assistant = false;
    for (size_t i = 0; i < n_msgs; i++) has_assistant |= r->msgs[i].role == VKL_ROLE_ASSISTANT;
    if (!has_assistant) {
        r->b.stats.n_skipped_no_assistant++;
        return VKL_OK;
    }
    if (r->tmpl == VKL_TEMPLATE_AUTO) return unknown_template(r);
    vkl_chat_opts co = {.responses_only = r->o->train_on_responses_only, .now = r->o->now};
    vkl_chat_encoding enc;
    vkl_err terr = {0};
    if (vkl_data_render_chat(r->tok, r->tmpl, r->msgs, n_msgs, &co, &enc, &terr))
        return row_err(r, row, "%s%s", terr.msg,
                       r->o->tmpl == VKL_TEMPLATE_AUTO ? " (the model's chat template; dataset.template forces another)"
                                                       : "");
    add_example(&r->b, enc.tokens, enc.labels, enc.n, (uint32_t)row, enc.text);
    vkl_chat_encoding_free(&enc);
    return VKL_OK;
}

/* A text record or a raw document: [BOS] + text + EOS, all trained. */
static vkl_status add_text_doc(reader *r, uint64_t row, const char *s, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    vkl_err terr = {0};
    if (vkl_tokenize(r->tok, s, len, true, false, &ids, &n, &terr)) return row_err(r, row, "%s", terr.msg);
    int32_t eos = vkl_tokenizer_eos(r->tok);
    if (eos >= 0 && (n == 0 || ids[n - 1] != eos)) {
        ids = vkl_realloc(ids, (n + 1) * sizeof(int32_t));
        ids[n++] = eos;
    }
    add_example(&r->b, ids, ids, n, (uint32_t)row, NULL);
    free(ids);
    return VKL_OK;
}

static const char *opt_string(reader *r, uint64_t row, const cJSON *rec, const char *key, vkl_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsString(v)) {
        *st = row_err(r, row, "field \"%s\": expected a string, got %s", key, json_kind(v));
        return NULL;
    }
    return v->valuestring;
}

static const char *req_string(reader *r, uint64_t row, const cJSON *rec, const char *key, vkl_status *st) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!cJSON_IsString(v)) {
        *st = row_err(r, row, "field \"%s\": expected a string, got %s", key, json_kind(v));
        return NULL;
    }
    return v->valuestring;
}

static vkl_status alpaca_record(reader *r, uint64_t row, const cJSON *rec) {
    vkl_status st = VKL_OK;
    const char *instr = req_string(r, row, rec, "instruction", &st);
    const char *input = st ? NULL : opt_string(r, row, rec, "input", &st);
    const char *output = st ? NULL : req_string(r, row, rec, "output", &st);
    const char *system = st ? NULL : opt_string(r, row, rec, "system", &st);
    if (st) return st;
    size_t n = 0;
    if (system && *system) push_msg(r, &n, VKL_ROLE_SYSTEM, system, strlen(system));
    if (input && *input && r->tmpl != VKL_TEMPLATE_ALPACA) {
        /* One user turn "instruction\ninput", as LLaMA-Factory joins them. */
        size_t li = strlen(instr), ln = strlen(input);
        free(r->scratch);
        r->scratch = vkl_malloc(li + ln + 2);
        memcpy(r->scratch, instr, li);
        r->scratch[li] = '\n';
        memcpy(r->scratch + li + 1, input, ln + 1);
        push_msg(r, &n, VKL_ROLE_USER, r->scratch, li + ln + 1);
    } else {
        push_msg(r, &n, VKL_ROLE_USER, instr, strlen(instr));
        if (input && *input) push_msg(r, &n, VKL_ROLE_TOOL, input, strlen(input)); /* "### Input:" */
    }
    push_msg(r, &n, VKL_ROLE_ASSISTANT, output, strlen(output));
    return encode_and_add(r, row, n);
}

static vkl_status conv_record(reader *r, uint64_t row, const cJSON *rec) {
    bool sharegpt = r->format == VKL_DATASET_SHAREGPT;
    const char *key = sharegpt ? "conversations" : "messages";
    const char *rk = sharegpt ? "from" : "role", *ck = sharegpt ? "value" : "content";
    const char *rk2 = sharegpt ? "role" : "from", *ck2 = sharegpt ? "content" : "value";
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!cJSON_IsArray(arr))
        return row_err(r, row, "field \"%s\": expected an array of {%s, %s}, got %s", key, rk, ck, json_kind(arr));
    vkl_status st = VKL_OK;
    const char *system = opt_string(r, row, rec, "system", &st);
    if (st) return st;
    size_t n = 0;
    if (system && *system) push_msg(r, &n, VKL_ROLE_SYSTEM, system, strlen(system));
    int idx = 0;
    for (const cJSON *m = arr->child; m; m = m->next, idx++) {
        if (idx >= MAX_TURNS) return row_err(r, row, "field \"%s\": more than %d turns", key, MAX_TURNS);
        if (!cJSON_IsObject(m))
            return row_err(r, row, "field \"%s[%d]\": expected an object {%s, %s}, got %s", key, idx, rk, ck,
                           json_kind(m));
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, rk);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, ck);
        const char *used_rk = rk, *used_ck = ck;
        if (!role && !content) { /* the other format's key pair */
            role = cJSON_GetObjectItemCaseSensitive(m, rk2);
            content = cJSON_GetObjectItemCaseSensitive(m, ck2);
            if (role || content) used_rk = rk2, used_ck = ck2;
        }
        if (!cJSON_IsString(role))
            return row_err(r, row,
                           "field \"%s[%d].%s\": expected a string (human, user, gpt, assistant, system, "
                           "function_call, observation or tool), got %s",
                           key, idx, used_rk, json_kind(role));
        vkl_role ro;
        if (!map_role(role->valuestring, &ro))
            return row_err(r, row,
                           "field \"%s[%d].%s\": unknown role \"%.64s\": expected human, user, gpt, assistant, "
                           "system, function_call, observation or tool",
                           key, idx, used_rk, role->valuestring);
        if (!cJSON_IsString(content))
            return row_err(r, row, "field \"%s[%d].%s\": expected a string, got %s", key, idx, used_ck,
                           json_kind(content));
        /* A system turn after a top-level "system" replaces it rather than adding a second one. */
        if (ro == VKL_ROLE_SYSTEM && n == 1 && idx == 0 && r->msgs[0].role == VKL_ROLE_SYSTEM) n = 0;
        push_msg(r, &n, ro, content->valuestring, strlen(content->valuestring));
    }
    return encode_and_add(r, row, n);
}

static vkl_dataset_format detect_format(const cJSON *rec, const char *text_field) {
    if (cJSON_GetObjectItemCaseSensitive(rec, "conversations")) return VKL_DATASET_SHAREGPT;
    if (cJSON_GetObjectItemCaseSensitive(rec, "messages")) return VKL_DATASET_MESSAGES;
    if (cJSON_GetObjectItemCaseSensitive(rec, "instruction")) return VKL_DATASET_ALPACA;
    if (cJSON_GetObjectItemCaseSensitive(rec, text_field)) return VKL_DATASET_TEXT;
    return VKL_DATASET_AUTO;
}

static vkl_status record(reader *r, uint64_t row, const cJSON *rec) {
    r->b.stats.n_rows++;
    if (!cJSON_IsObject(rec)) return row_err(r, row, "expected a JSON object (one record), got %s", json_kind(rec));
    const char *text_field = r->o->text_field ? r->o->text_field : "text";
    if (r->format == VKL_DATASET_AUTO) {
        r->format = detect_format(rec, text_field);
        if (r->format == VKL_DATASET_AUTO) {
            char keys[512];
            size_t at = 0;
            keys[0] = 0;
            for (const cJSON *k = rec->child; k && at < sizeof(keys) - 80; k = k->next)
                at += (size_t)snprintf(keys + at, sizeof(keys) - at, "%s\"%.40s\"", at ? ", " : "", k->string);
            return row_err(r, row,
                           "cannot tell the dataset format from the keys {%s}: expected \"instruction\" (alpaca), "
                           "\"conversations\" (sharegpt), \"messages\" or \"%s\" (text); set dataset.format",
                           keys, text_field);
        }
    }
    if (r->format != VKL_DATASET_TEXT) {
        const cJSON *label = cJSON_GetObjectItemCaseSensitive(rec, "label");
        if (cJSON_IsFalse(label)) {
            r->b.stats.n_skipped_rejected++;
            return VKL_OK;
        }
    }
    vkl_status st = VKL_OK;
    switch (r->format) {
    case VKL_DATASET_TEXT: {
        const char *s = req_string(r, row, rec, text_field, &st);
        return st ? st : add_text_doc(r, row, s, strlen(s));
    }
    case VKL_DATASET_ALPACA: return alpaca_record(r, row, rec);
    case VKL_DATASET_SHAREGPT:
    case VKL_DATASET_MESSAGES: return conv_record(r, row, rec);
    default: return row_err(r, row, "unknown dataset format %d", (int)r->format);
    }
}

static vkl_status read_json_array(reader *r, const char *text, size_t len) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    vkl_status st = VKL_OK;
    if (root) { /* only whitespace may follow */
        while (end && end < text + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')) end++;
        if (end && end < text + len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0, line, col;
        line_col(text, at, &line, &col);
        return vkl_err_set(r->err, VKL_ERR_INPUT, "data: %s: invalid JSON at line %zu, column %zu (byte %zu)", r->path,
                           line, col, at);
    }
    if (!cJSON_IsArray(root)) {
        st = vkl_err_set(r->err, VKL_ERR_INPUT, "data: %s: expected a JSON array of records, got %s", r->path,
                         json_kind(root));
    } else {
        uint64_t row = 1;
        for (const cJSON *rec = root->child; rec && !st; rec = rec->next, row++) st = record(r, row, rec);
    }
    cJSON_Delete(root);
    return st;
}

static vkl_status read_jsonl(reader *r, const char *text, size_t len) {
    r->jsonl = true;
    uint64_t line = 1;
    vkl_status st = VKL_OK;
    for (size_t at = 0; at < len && !st; line++) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t ls = at, end = nl ? (size_t)(nl - text) : len;
        size_t a = at, b = end;
        while (a < b && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r')) b--;
        at = end + 1;
        if (a == b) continue;
        const char *perr = NULL;
        cJSON *rec = cJSON_ParseWithLengthOpts(text + a, b - a, &perr, false);
        if (rec && perr && perr < text + b) { /* a second value on the line */
            cJSON_Delete(rec);
            rec = NULL;
        }
        if (!rec) {
            size_t col = perr && perr >= text + a && perr <= text + b ? (size_t)(perr - text) - ls + 1 : 1;
            return row_err(r, line, "invalid JSON at column %zu (JSON lines: one record per line)", col);
        }
        st = record(r, line, rec);
        cJSON_Delete(rec);
    }
    return st;
}

/* Raw text: [BOS] + the whole text, cut into windows of max_seq_length tokens. Special-token text such as
 * "<|endoftext|>" between documents is parsed as the special token: in a raw pretraining-style file it is meant as
 * the separator, and there is no user content to protect. */
static vkl_status read_raw_text(reader *r, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    vkl_err terr = {0};
    vkl_status st = vkl_tokenize(r->tok, text, len, true, true, &ids, &n, &terr);
    if (st) return vkl_err_set(r->err, st, "data: %s: %s", r->path, terr.msg);
    uint32_t T = r->b.max_seq;
    uint64_t row = 1;
    for (size_t at = 0; at < n; at += T, row++) {
        size_t w = VKL_MIN((size_t)T, n - at);
        r->b.stats.n_rows++;
        add_example(&r->b, ids + at, ids + at, w, (uint32_t)row, NULL);
    }
    free(ids);
    return VKL_OK;
}

void vkl_data_opts_from_config(const vkl_config *c, const char *gguf_chat_template, vkl_data_opts *o) {
    memset(o, 0, sizeof(*o));
    o->format = c->dataset_format;
    o->tmpl = c->chat_template;
    o->gguf_chat_template = gguf_chat_template;
    o->text_field = c->text_field;
    o->max_seq_length = c->max_seq_length > 0 ? (uint32_t)c->max_seq_length : 0;
    o->train_on_responses_only = c->train_on_responses_only;
}

vkl_status vkl_data_load_file(const char *path, const vkl_data_opts *o, const vkl_tokenizer *tok, vkl_dataset **out,
                              vkl_err *err) {
    *out = NULL;
    if (!path) return vkl_err_set(err, VKL_ERR_INPUT, "data: no dataset path given (dataset.path)");
    if (o->max_seq_length < 2)
        return vkl_err_set(err, VKL_ERR_INPUT, "data: %s: max_seq_length %u: expected at least 2", path,
                           o->max_seq_length);
    if ((unsigned)o->format >= VKL_DATASET_COUNT || (unsigned)o->tmpl >= VKL_TEMPLATE_COUNT)
        return vkl_err_set(err, VKL_ERR_INPUT, "data: %s: invalid format %d or template %d", path, (int)o->format,
                           (int)o->tmpl);
    char *buf = NULL;
    size_t len = 0;
    vkl_status st = read_file(path, &buf, &len, err);
    if (st) return st;

    reader r = {.path = path, .o = o, .tok = tok, .format = o->format, .err = err};
    r.tmpl = vkl_data_resolve_template(o->tmpl, o->gguf_chat_template);
    r.b.max_seq = o->max_seq_length;
    r.b.keep_text = o->keep_text;
    r.b.tok = tok;

    const char *text = buf;
    size_t tlen = len;
    if (tlen >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) text += 3, tlen -= 3; /* UTF-8 byte order mark */
    size_t first = 0;
    while (first < tlen && (text[first] == ' ' || text[first] == '\t' || text[first] == '\r' || text[first] == '\n'))
        first++;
    char c0 = first < tlen ? text[first] : 0;
    bool records_wanted = o->format != VKL_DATASET_AUTO && o->format != VKL_DATASET_TEXT;
    bool json_ext = has_ext(path, ".json") || has_ext(path, ".jsonl");

    if (has_ext(path, ".jsonl")) {
        st = read_jsonl(&r, text, tlen);
    } else if ((has_ext(path, ".txt") && !records_wanted) || (!json_ext && !records_wanted && c0 != '[' && c0 != '{')) {
        r.format = VKL_DATASET_TEXT;
        st = read_raw_text(&r, text, tlen);
    } else if (c0 == '[') {
        st = read_json_array(&r, text, tlen);
    } else if (c0 == '{') {
        st = read_jsonl(&r, text, tlen);
    } else if (first == tlen) {
        st = vkl_err_set(err, VKL_ERR_INPUT, "data: %s: the file is empty", path);
    } else {
        size_t line, col;
        line_col(text, first, &line, &col);
        st = vkl_err_set(err, VKL_ERR_INPUT,
                         "data: %s: line %zu, column %zu: expected JSON records (a [ array or one { object per "
                         "line), got '%c'",
                         path, line, col, c0);
    }
    free(buf);
    free(r.msgs);
    free(r.scratch);
    if (!st && r.b.n_items == 0) {
        const vkl_data_stats *s = &r.b.stats;
        st = vkl_err_set(err, VKL_ERR_INPUT,
                         "data: %s: no trainable example (%llu rows; %llu without an assistant turn, %llu with "
                         "\"label\": false, %llu without a trainable token)",
                         path, (unsigned long long)s->n_rows, (unsigned long long)s->n_skipped_no_assistant,
                         (unsigned long long)s->n_skipped_rejected, (unsigned long long)s->n_dropped_untrainable);
    }
    if (st) {
        for (size_t i = 0; i < r.b.n_items; i++) free(r.b.items[i].text);
        free(r.b.store);
        free(r.b.items);
        return st;
    }
    vkl_dataset *d = finish(&r.b);
    d->path = vkl_strdup(path);
    d->format = r.format == VKL_DATASET_AUTO ? VKL_DATASET_TEXT : r.format;
    d->tmpl = d->format == VKL_DATASET_TEXT ? VKL_TEMPLATE_PLAIN : r.tmpl;
    int32_t pad = vkl_tokenizer_pad(tok), eos = vkl_tokenizer_eos(tok);
    d->pad_id = pad >= 0 ? pad : eos >= 0 ? eos : 0;
    *out = d;
    return VKL_OK;
}

vkl_status vkl_data_load(const vkl_config *c, const vkl_tokenizer *tok, const char *gguf_chat_template,
                         vkl_dataset **train, vkl_dataset **eval, vkl_err *err) {
    vkl_data_opts o;
    vkl_data_opts_from_config(c, gguf_chat_template, &o);
    return vkl_data_load_opts(c, &o, tok, train, eval, err);
}

vkl_status vkl_data_load_opts(const vkl_config *c, const vkl_data_opts *o, const vkl_tokenizer *tok,
                              vkl_dataset **train, vkl_dataset **eval, vkl_err *err) {
    *train = *eval = NULL;
    vkl_dataset *all = NULL;
    vkl_status st = vkl_data_load_file(c->dataset_path, o, tok, &all, err);
    if (st) return st;
    if (c->eval_path) {
        vkl_dataset *ev = NULL;
        vkl_data_opts eo = *o;
        eo.keep_text = 0;
        st = vkl_data_load_file(c->eval_path, &eo, tok, &ev, err);
        if (st) {
            vkl_dataset_free(all);
            return st;
        }
        *train = all;
        *eval = ev;
        return VKL_OK;
    }
    if (!(c->eval_ratio > 0)) {
        *train = all;
        return VKL_OK;
    }
    uint64_t n_eval = (uint64_t)ceil(c->eval_ratio * all->n);
    if (n_eval >= all->n) {
        st = vkl_err_set(err, VKL_ERR_INPUT,
                         "data: %s: eval_ratio %g of %u examples leaves no training example (lower "
                         "dataset.eval_ratio or give dataset.eval_path)",
                         all->path, c->eval_ratio, all->n);
        vkl_dataset_free(all);
        return st;
    }
    uint32_t *perm = vkl_malloc(all->n * sizeof(uint32_t));
    vkl_data_shuffle(all->n, vkl_rng_key((uint64_t)c->seed, VKL_DATA_STREAM_SPLIT), perm);
    /* Membership from the shuffle, order from the file: both sets stay in file order. */
    uint8_t *is_eval = vkl_calloc(all->n, 1);
    for (uint32_t k = all->n - (uint32_t)n_eval; k < all->n; k++) is_eval[perm[k]] = 1;
    uint32_t nt = 0, ne = 0;
    for (uint32_t i = 0; i < all->n; i++) {
        if (is_eval[i])
            perm[all->n - (uint32_t)n_eval + ne++] = i;
        else
            perm[nt++] = i;
    }
    *train = vkl_dataset_subset(all, perm, nt);
    *eval = vkl_dataset_subset(all, perm + nt, ne);
    /* The training side keeps the file's counters (rows, skips, truncations) that describe the whole read. */
    vkl_data_stats ts = (*train)->stats;
    (*train)->stats = all->stats;
    (*train)->stats.n_tokens = ts.n_tokens;
    (*train)->stats.n_trainable = ts.n_trainable;
    free(is_eval);
    free(perm);
    vkl_dataset_free(all);
    return VKL_OK;
}
