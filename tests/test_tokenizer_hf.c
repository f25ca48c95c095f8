/* tokenizer.json tests: the real Llama 3.1, Qwen3 and Gemma 3 files of ../shared/data/hf against the ids and texts
 * Hugging Face's Rust tokenizers library gives (tests/hf_tokenizer_vectors/, tools/gen_hf_tokenizer_vectors.js),
 * hand-built files for the flags and components the real ones do not use, NFC, malformed files, the CLI. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "unicode.h"
#include "vklora/data.h"
#include "vklora/tokenizer.h"

static cJSON *read_json(const char *path) {
    size_t len;
    char *text = t_read_file(path, &len);
    if (!text) {
        fprintf(stderr, "    cannot read %s\n", path);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) fprintf(stderr, "    %s: invalid JSON\n", path);
    return j;
}

static const char *vectors_path(const char *name) {
    static char buf[1024];
    snprintf(buf, sizeof(buf), "%s/tests/hf_tokenizer_vectors/%s.json", VKL_SOURCE_ROOT, name);
    return buf;
}

static void print_esc(const char *s, size_t n) {
    for (size_t i = 0; i < n && i < 160; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", stderr);
        else if (c < 0x20 || c == 0x7F)
            fprintf(stderr, "\\x%02X", c);
        else
            fputc(c, stderr);
    }
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "      %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

/* ids of a JSON array (malloc'd). */
static int32_t *json_ids(const cJSON *a, size_t *n) {
    *n = (size_t)cJSON_GetArraySize(a);
    int32_t *v = malloc((*n + 1) * sizeof(int32_t));
    size_t i = 0;
    for (const cJSON *e = a ? a->child : NULL; e; e = e->next) v[i++] = (int32_t)e->valuedouble;
    return v;
}

static int failures_shown;

static bool check_encode(const vkl_tokenizer *tok, const char *text, bool add_special, const cJSON *want) {
    int32_t *ids = NULL;
    size_t n = 0, nw;
    vkl_err err = {0};
    if (vkl_tokenize(tok, text, strlen(text), add_special, true, &ids, &n, &err)) {
        fprintf(stderr, "    tokenize failed: %s\n", err.msg);
        return false;
    }
    int32_t *w = json_ids(want, &nw);
    bool ok = n == nw && (n == 0 || !memcmp(ids, w, n * sizeof(int32_t)));
    if (!ok && failures_shown++ < 6) {
        fprintf(stderr, "    encode%s mismatch for \"", add_special ? " (special tokens)" : "");
        print_esc(text, strlen(text));
        fprintf(stderr, "\"\n");
        print_ids("hf    ", w, nw);
        print_ids("vklora", ids, n);
    }
    free(ids);
    free(w);
    return ok;
}

/* The expected text of a decode: "decoded" (or "decoded_skip_special"), or its "_hex" twin (UTF-8 bytes in hex)
 * where the text holds a NUL, which a C string from cJSON cannot (malloc'd). */
static char *want_text(const cJSON *o, const char *key, size_t *len) {
    const cJSON *s = cJSON_GetObjectItem(o, key);
    if (cJSON_IsString(s)) {
        *len = strlen(s->valuestring);
        return strdup(s->valuestring);
    }
    char hk[64];
    snprintf(hk, sizeof(hk), "%s_hex", key);
    const cJSON *h = cJSON_GetObjectItem(o, hk);
    const char *x = cJSON_IsString(h) ? h->valuestring : "";
    *len = strlen(x) / 2;
    char *b = malloc(*len + 1);
    for (size_t i = 0; i < *len; i++) {
        unsigned v;
        sscanf(x + 2 * i, "%2x", &v);
        b[i] = (char)v;
    }
    b[*len] = 0;
    return b;
}

static bool check_decode(const vkl_tokenizer *tok, const cJSON *ids_json, bool skip_special, const char *want,
                         size_t want_len) {
    size_t n;
    int32_t *ids = json_ids(ids_json, &n);
    char *text = NULL;
    size_t len = 0;
    vkl_err err = {0};
    bool ok = !vkl_detokenize(tok, ids, n, !skip_special, &text, &len, &err);
    if (!ok)
        fprintf(stderr, "    detokenize failed: %s\n", err.msg);
    else
        ok = len == want_len && !memcmp(text, want, len);
    if (!ok && failures_shown++ < 6) {
        fprintf(stderr, "    decode%s mismatch\n", skip_special ? " (skip special)" : "");
        print_ids("ids", ids, n);
        fprintf(stderr, "      hf    : \"");
        print_esc(want, want_len);
        fprintf(stderr, "\"\n      vklora: \"");
        if (text) print_esc(text, len);
        fprintf(stderr, "\"\n");
    }
    free(ids);
    free(text);
    return ok;
}

/* Every case of a vectors file: encode without / with special tokens, decode both ways, then the id lists. */
static int run_vectors(const vkl_tokenizer *tok, const cJSON *v, const char *name) {
    int bad = 0, total = 0;
    failures_shown = 0;
    const cJSON *cases = cJSON_GetObjectItem(v, "cases");
    T_ASSERT(cJSON_GetArraySize(cases) > 5, "%s: no cases", name);
    for (const cJSON *c = cases->child; c; c = c->next) {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *ids = cJSON_GetObjectItem(c, "ids"), *ids_sp = cJSON_GetObjectItem(c, "ids_special");
        total += 4;
        bad += !check_encode(tok, text, false, ids);
        bad += !check_encode(tok, text, true, ids_sp);
        size_t l1, l2;
        char *w1 = want_text(c, "decoded", &l1), *w2 = want_text(c, "decoded_skip_special", &l2);
        bad += !check_decode(tok, ids, false, w1, l1);
        bad += !check_decode(tok, ids_sp, true, w2, l2);
        free(w1);
        free(w2);
    }
    const cJSON *decodes = cJSON_GetObjectItem(v, "decodes");
    for (const cJSON *d = decodes ? decodes->child : NULL; d; d = d->next) {
        const cJSON *ids = cJSON_GetObjectItem(d, "ids");
        total += 2;
        size_t l1, l2;
        char *w1 = want_text(d, "decoded", &l1), *w2 = want_text(d, "decoded_skip_special", &l2);
        bad += !check_decode(tok, ids, false, w1, l1);
        bad += !check_decode(tok, ids, true, w2, l2);
        free(w1);
        free(w2);
    }
    T_ASSERT(bad == 0, "%s: %d of %d checks differ from Hugging Face's tokenizers", name, bad, total);
    fprintf(stderr, "    %s: %d/%d encode and decode checks equal Hugging Face's tokenizers\n", name, total, total);
    return 0;
}

static vkl_tokenizer *load_hf(const char *path) {
    vkl_tokenizer *tok = NULL;
    vkl_err err = {0};
    if (vkl_tokenizer_load_hf(path, &tok, &err)) fprintf(stderr, "    %s\n", err.msg);
    return tok;
}

/* Loads the tokenizer once, runs its vectors and hands it to check() for the file's own properties. */
static int real_file(const char *name, const char *path, int (*check)(const vkl_tokenizer *tok)) {
    vkl_tokenizer *tok = load_hf(path);
    T_ASSERT(tok, "%s: load failed", name);
    cJSON *v = read_json(vectors_path(name));
    int rc = v ? run_vectors(tok, v, name) : 1;
    cJSON_Delete(v);
    if (!rc) rc = check(tok);
    vkl_tokenizer_free(tok);
    return rc;
}

static int check_llama31(const vkl_tokenizer *tok) {
    int32_t bos = vkl_tokenizer_bos(tok), eos = vkl_tokenizer_eos(tok);
    bool adds = vkl_tokenizer_adds_bos(tok), adds_eos = vkl_tokenizer_adds_eos(tok);
    vkl_chat_template tmpl = vkl_data_resolve_template(VKL_TEMPLATE_AUTO, vkl_tokenizer_chat_template(tok));
    T_ASSERT(bos == 128000 && adds && !adds_eos, "bos %d adds_bos %d adds_eos %d", bos, adds, adds_eos);
    T_ASSERT(eos == 128009, "eos %d (tokenizer_config.json names <|eot_id|>)", eos);
    T_ASSERT(vkl_tokenizer_n_vocab(tok) == 128256, "n_vocab %d", vkl_tokenizer_n_vocab(tok));
    T_ASSERT(vkl_tokenizer_token_type(tok, 128009) == VKL_TOKEN_CONTROL, "<|eot_id|> type");
    T_ASSERT(!strcmp(vkl_tokenizer_pre_name(tok), "llama-bpe"), "pre %s", vkl_tokenizer_pre_name(tok));
    /* this packaging's tokenizer_config.json carries Llama 3's short template (no tools, no date) */
    T_ASSERT(tmpl == VKL_TEMPLATE_LLAMA3, "template %s", vkl_chat_template_names[tmpl]);
    return 0;
}

/* The folder form: tokenizer.json and tokenizer_config.json are found inside it. */
static int test_llama31(void) { return real_file("llama-3.1", t_data_path("hf/llama-3.1"), check_llama31); }

static int check_qwen3(const vkl_tokenizer *tok) {
    int32_t bos = vkl_tokenizer_bos(tok), eos = vkl_tokenizer_eos(tok), pad = vkl_tokenizer_pad(tok);
    vkl_chat_template tmpl = vkl_data_resolve_template(VKL_TEMPLATE_AUTO, vkl_tokenizer_chat_template(tok));
    T_ASSERT(bos == -1 && !vkl_tokenizer_adds_bos(tok), "bos %d", bos);
    T_ASSERT(eos == 151645 && pad == 151643, "eos %d pad %d", eos, pad);
    T_ASSERT(vkl_tokenizer_token_type(tok, vkl_tokenizer_find(tok, "<think>", 7)) == VKL_TOKEN_USER_DEFINED,
             "<think> is a non-special added token");
    T_ASSERT(!strcmp(vkl_tokenizer_pre_name(tok), "qwen2"), "pre %s", vkl_tokenizer_pre_name(tok));
    T_ASSERT(tmpl == VKL_TEMPLATE_QWEN3, "template %s", vkl_chat_template_names[tmpl]);
    return 0;
}

/* The file form: tokenizer_config.json is found beside it. */
static int test_qwen3(void) { return real_file("qwen3", t_data_path("hf/qwen3/tokenizer.json"), check_qwen3); }

static int check_gemma3(const vkl_tokenizer *tok) {
    int32_t bos = vkl_tokenizer_bos(tok), eos = vkl_tokenizer_eos(tok), pad = vkl_tokenizer_pad(tok);
    int32_t unk = vkl_tokenizer_unk(tok), byte_a = vkl_tokenizer_find(tok, "<0x41>", 6);
    vkl_chat_template tmpl = vkl_data_resolve_template(VKL_TEMPLATE_AUTO, vkl_tokenizer_chat_template(tok));
    char piece[16];
    size_t pn = vkl_token_to_piece(tok, byte_a, false, piece, sizeof(piece));
    T_ASSERT(bos == 2 && vkl_tokenizer_adds_bos(tok), "bos %d", bos);
    T_ASSERT(eos == 106 && pad == 0 && unk == 3, "eos %d pad %d unk %d", eos, pad, unk);
    T_ASSERT(vkl_tokenizer_token_type(tok, byte_a) == VKL_TOKEN_BYTE && pn == 1 && piece[0] == 'A', "<0x41>");
    T_ASSERT(tmpl == VKL_TEMPLATE_GEMMA3, "template %s", vkl_chat_template_names[tmpl]);
    return 0;
}

static int test_gemma3(void) { return real_file("gemma-3", t_data_path("hf/gemma-3"), check_gemma3); }

/* Hand-built files (their tokenizer.json is inside the vectors file): single_word, lstrip / rstrip, normalized
 * added tokens, Prepend + Replace + string Split, byte fallback with fused unk; Metaspace (prepend "first"),
 * ignore_merges, pair merges, unk without fusing; ByteLevel with add_prefix_space and GPT-2's regex, Roberta;
 * Digits (one each and in runs) after NFC. */
static int synthetic(const char *name) {
    cJSON *v = read_json(vectors_path(name));
    T_ASSERT(v, "%s", name);
    char path[512];
    snprintf(path, sizeof(path), "%s/%s.tokenizer.json", t_tmpdir(), name);
    char *js = cJSON_PrintUnformatted(cJSON_GetObjectItem(v, "tokenizer_json"));
    FILE *f = fopen(path, "wb");
    T_ASSERT(f && js, "write %s", path);
    fputs(js, f);
    fclose(f);
    free(js);
    vkl_tokenizer *tok = load_hf(path);
    int rc = tok ? run_vectors(tok, v, name) : 1;
    vkl_tokenizer_free(tok);
    cJSON_Delete(v);
    T_ASSERT(rc == 0, "%s", name);
    return 0;
}

static int test_synthetic_flags(void) { return synthetic("synthetic-flags"); }
static int test_synthetic_metaspace(void) { return synthetic("synthetic-metaspace"); }
static int test_synthetic_bytelevel(void) { return synthetic("synthetic-bytelevel"); }
static int test_synthetic_digits(void) { return synthetic("synthetic-digits") || synthetic("synthetic-digit-runs"); }

/* parse_special=false keeps special added tokens as text (HF's encode_special_tokens) but still splits out the
 * non-special ones; lstrip / rstrip go with the token; vkl_tokenizer_token_strip reports them. */
static int test_parse_special(void) {
    cJSON *v = read_json(vectors_path("synthetic-flags"));
    T_ASSERT(v, "vectors");
    char path[512];
    snprintf(path, sizeof(path), "%s/flags2.tokenizer.json", t_tmpdir());
    char *js = cJSON_PrintUnformatted(cJSON_GetObjectItem(v, "tokenizer_json"));
    FILE *f = fopen(path, "wb");
    T_ASSERT(f && js, "write");
    fputs(js, f);
    fclose(f);
    free(js);
    cJSON_Delete(v);
    vkl_tokenizer *tok = load_hf(path);
    T_ASSERT(tok, "load");
    int32_t spec = vkl_tokenizer_find(tok, "<spec>", 6), lr = vkl_tokenizer_find(tok, "[LR]", 4);
    int32_t l = vkl_tokenizer_find(tok, "[L]", 3);
    int32_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    vkl_err err = {0};
    const char *text = "x<spec>y [LR] z";
    int rc = 0;
    if (vkl_tokenize(tok, text, strlen(text), false, true, &a, &na, &err) ||
        vkl_tokenize(tok, text, strlen(text), false, false, &b, &nb, &err)) {
        fprintf(stderr, "    %s\n", err.msg);
        rc = 1;
    }
    bool a_spec = false, b_spec = false, b_lr = false;
    for (size_t i = 0; i < na; i++) a_spec |= a[i] == spec;
    for (size_t i = 0; i < nb; i++) {
        b_spec |= b[i] == spec;
        b_lr |= b[i] == lr;
    }
    unsigned strip_l = vkl_tokenizer_token_strip(tok, l), strip_lr = vkl_tokenizer_token_strip(tok, lr);
    free(a);
    free(b);
    vkl_tokenizer_free(tok);
    T_ASSERT(rc == 0, "tokenize");
    T_ASSERT(spec >= 0 && lr >= 0 && a_spec && !b_spec && b_lr, "special split %d / %d, [LR] kept %d", a_spec, b_spec,
             b_lr);
    T_ASSERT(strip_l == 1 && strip_lr == 3, "strip bits %u %u", strip_l, strip_lr);
    return 0;
}

static bool write_file(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    fputs(text, f);
    return fclose(f) == 0;
}

/* tokenizer_config.json: bos/eos as strings or {"content"} objects, add_bos_token / add_eos_token replacing the
 * post-processor for the Llama / Gemma tokenizer classes only, chat_template as a list (its "default"), and
 * chat_template.jinja winning over the config's. */
static int test_config(void) {
    static const char *tj =
        "{\"added_tokens\": [{\"id\": 3, \"content\": \"<s>\", \"special\": true, \"normalized\": false},"
        " {\"id\": 4, \"content\": \"</s>\", \"special\": true, \"normalized\": false}],"
        " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}},"
        " {\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [3]}}},"
        " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [[\"a\", \"b\"]]}}";
    static const struct {
        const char *config, *jinja;
        int32_t want[4];
        size_t n_want;
        const char *template_start;
    } cases[] = {
        /* no config: the post-processor's BOS */
        {NULL, NULL, {3, 2}, 2, NULL},
        /* PreTrainedTokenizerFast ignores add_eos_token (the post-processor decides) */
        {"{\"tokenizer_class\": \"PreTrainedTokenizerFast\", \"add_eos_token\": true, \"eos_token\": \"</s>\"}", NULL,
         {3, 2}, 2, NULL},
        /* LlamaTokenizerFast rebuilds it: BOS and EOS, tokens given as AddedToken objects */
        {"{\"tokenizer_class\": \"LlamaTokenizerFast\", \"add_bos_token\": true, \"add_eos_token\": true,"
         " \"bos_token\": {\"__type\": \"AddedToken\", \"content\": \"<s>\"}, \"eos_token\": {\"content\": \"</s>\"},"
         " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"TOOLS\"},"
         " {\"name\": \"default\", \"template\": \"{{ bos_token }}DEFAULT\"}]}",
         NULL, {3, 2, 4}, 3, "{{ bos_token }}DEFAULT"},
        /* GemmaTokenizer without BOS; chat_template.jinja wins over the config's template */
        {"{\"tokenizer_class\": \"GemmaTokenizer\", \"add_bos_token\": false, \"chat_template\": \"CONFIG\"}",
         "JINJA {{ messages }}", {2}, 1, "JINJA {{ messages }}"},
    };
    for (size_t k = 0; k < VKL_ARRAY_LEN(cases); k++) {
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/config%zu", t_tmpdir(), k);
        mkdir(dir, 0755);
        T_ASSERT(write_file(dir, "tokenizer.json", tj), "write");
        if (cases[k].config) T_ASSERT(write_file(dir, "tokenizer_config.json", cases[k].config), "write");
        if (cases[k].jinja) T_ASSERT(write_file(dir, "chat_template.jinja", cases[k].jinja), "write");
        vkl_tokenizer *tok = load_hf(dir);
        T_ASSERT(tok, "case %zu: load", k);
        int32_t *ids = NULL;
        size_t n = 0;
        vkl_err err = {0};
        vkl_status st = vkl_tokenize(tok, "ab", 2, true, true, &ids, &n, &err);
        const char *tmpl = vkl_tokenizer_chat_template(tok);
        bool ok = !st && n == cases[k].n_want && !memcmp(ids, cases[k].want, n * sizeof(int32_t)) &&
                  (cases[k].template_start ? tmpl && !strcmp(tmpl, cases[k].template_start) : !tmpl);
        if (!ok) {
            print_ids("got", ids, n);
            fprintf(stderr, "    template: %s\n", tmpl ? tmpl : "(none)");
        }
        bool eos_ok = k < 2 || (k == 2 && vkl_tokenizer_eos(tok) == 4 && vkl_tokenizer_adds_eos(tok)) ||
                      (k == 3 && !vkl_tokenizer_adds_bos(tok));
        free(ids);
        vkl_tokenizer_free(tok);
        T_ASSERT(ok && eos_ok, "case %zu", k);
    }
    return 0;
}

/* Every Split regex the loader recognises, run by src/unicode.c's splitter, against the library's own Split
 * (Oniguruma) on 305 texts (tests/hf_tokenizer_vectors/splits.json): same pieces. Each regex also loads. */
static int test_splits(void) {
    static const struct {
        const char *name, *gguf_pre;
        vkl_pretok pre;
    } kinds[] = {{"llama3", "llama-bpe", VKL_PRETOK_LLAMA3}, {"qwen2", "qwen2", VKL_PRETOK_QWEN2},
                 {"gpt2", "gpt-2", VKL_PRETOK_GPT2},       {"tekken", "tekken", VKL_PRETOK_TEKKEN_EXACT},
                 {"gpt4o", "gpt-4o", VKL_PRETOK_GPT4O_EXACT}};
    cJSON *v = read_json(vectors_path("splits"));
    T_ASSERT(v, "splits.json");
    int bad = 0, total = 0, shown = 0, regexes = 0;
    for (const cJSON *r = cJSON_GetObjectItem(v, "regexes")->child; r; r = r->next) {
        const char *name = cJSON_GetObjectItem(r, "name")->valuestring;
        size_t k = 0;
        while (k < VKL_ARRAY_LEN(kinds) && strcmp(kinds[k].name, name)) k++;
        T_ASSERT(k < VKL_ARRAY_LEN(kinds), "unknown regex %s", name);
        regexes++;
        /* the loader maps the regex text to this splitter */
        cJSON *tj = cJSON_Parse("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                                "\"pre_tokenizer\": {\"type\": \"Split\", \"behavior\": \"Isolated\"}}");
        cJSON *pat = cJSON_AddObjectToObject(cJSON_GetObjectItem(tj, "pre_tokenizer"), "pattern");
        cJSON_AddStringToObject(pat, "Regex", cJSON_GetObjectItem(r, "regex")->valuestring);
        char path[512];
        snprintf(path, sizeof(path), "%s/split-%s-%d.json", t_tmpdir(), name, regexes);
        char *js = cJSON_PrintUnformatted(tj);
        cJSON_Delete(tj);
        FILE *f = fopen(path, "wb");
        T_ASSERT(f, "write");
        fputs(js, f);
        fclose(f);
        free(js);
        vkl_tokenizer *tok = load_hf(path);
        bool pre_ok = tok && !strcmp(vkl_tokenizer_pre_name(tok), kinds[k].gguf_pre);
        vkl_tokenizer_free(tok);
        T_ASSERT(pre_ok, "%s: the loader does not map the regex to %s", name, kinds[k].gguf_pre);
        for (const cJSON *c = cJSON_GetObjectItem(r, "cases")->child; c; c = c->next) {
            const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
            size_t n = strlen(text);
            uint32_t *cp = malloc((n + 1) * sizeof(uint32_t));
            size_t *lens = malloc((n + 1) * sizeof(size_t));
            size_t nc = vkl_utf8_to_cpts(text, n, cp), nw = vkl_pretokenize(kinds[k].pre, cp, nc, lens);
            const cJSON *pieces = cJSON_GetObjectItem(c, "pieces");
            bool ok = nw == (size_t)cJSON_GetArraySize(pieces);
            size_t at = 0, i = 0;
            for (const cJSON *p = pieces->child; p && ok; p = p->next, i++) {
                size_t pn = strlen(p->valuestring);
                uint32_t *pc = malloc((pn + 1) * sizeof(uint32_t));
                size_t pnc = vkl_utf8_to_cpts(p->valuestring, pn, pc);
                ok = lens[i] == pnc && !memcmp(pc, cp + at, pnc * sizeof(uint32_t));
                at += lens[i];
                free(pc);
            }
            total++;
            if (!ok) {
                bad++;
                if (shown++ < 6) {
                    fprintf(stderr, "    %s: \"", name);
                    print_esc(text, n);
                    fprintf(stderr, "\": hf %d pieces, vklora:", cJSON_GetArraySize(pieces));
                    size_t a = 0;
                    for (size_t w = 0; w < nw; w++) {
                        char buf[256];
                        size_t bl = 0;
                        for (size_t q = 0; q < lens[w] && bl + 4 < sizeof(buf); q++)
                            bl += vkl_utf8_encode(cp[a + q], buf + bl);
                        fprintf(stderr, " [");
                        print_esc(buf, bl);
                        fprintf(stderr, "]");
                        a += lens[w];
                    }
                    fprintf(stderr, "\n");
                }
            }
            free(cp);
            free(lens);
        }
    }
    cJSON_Delete(v);
    T_ASSERT(regexes >= 5, "%d regexes", regexes);
    T_ASSERT(bad == 0, "%d of %d splits differ from Hugging Face's", bad, total);
    return 0;
}

/* NFC against values from Python's unicodedata.normalize("NFC", ...) (Unicode 14/15 agree on these). */
static int test_nfc(void) {
    static const struct {
        uint32_t in[8], out[8];
        size_t n_in, n_out;
    } cases[] = {
        {{'e', 0x301}, {0xE9}, 2, 1},
        {{0x212B}, {0xC5}, 1, 1},                            /* singleton decomposition: Angstrom -> Å */
        {{0x2126}, {0x3A9}, 1, 1},                           /* Ohm -> Omega */
        {{0x1100, 0x1161, 0x11A8}, {0xAC01}, 3, 1},          /* Hangul L V T */
        {{'o', 0x323, 0x302}, {0x1ED9}, 3, 1},               /* ộ */
        {{'o', 0x302, 0x323}, {0x1ED9}, 3, 1},               /* reordered first */
        {{'q', 0x307, 0x323}, {'q', 0x323, 0x307}, 3, 3},    /* no composite: canonical order only */
        {{0x958}, {0x915, 0x93C}, 1, 2},                     /* composition exclusion stays decomposed */
        {{'a', 0x308, 0x301}, {0xE4, 0x301}, 3, 2},          /* ä then a blocked-free acute with no composite */
        {{0x1E0A, 0x323}, {0x1E0C, 0x307}, 2, 2},            /* Ḋ + dot below -> Ḍ + dot above */
        {{'A', 0x30A, 'b'}, {0xC5, 'b'}, 3, 2},
        {{0x301, 'e'}, {0x301, 'e'}, 2, 2},                  /* leading non-starter */
        {{0xAC00, 0x11A8}, {0xAC01}, 2, 1},                  /* LV + T */
    };
    for (size_t k = 0; k < VKL_ARRAY_LEN(cases); k++) {
        uint32_t *out = NULL;
        size_t cap = 0, n = vkl_nfc(cases[k].in, cases[k].n_in, &out, &cap);
        bool ok = n == cases[k].n_out && !memcmp(out, cases[k].out, n * sizeof(uint32_t));
        if (!ok) {
            fprintf(stderr, "    case %zu:", k);
            for (size_t i = 0; i < n; i++) fprintf(stderr, " U+%04X", out[i]);
            fprintf(stderr, "\n");
        }
        free(out);
        T_ASSERT(ok, "NFC case %zu", k);
    }
    return 0;
}

/* Malformed or unsupported files: VKL_ERR_INPUT naming the file and the JSON field. */
static int test_errors(void) {
    static const struct {
        const char *json, *want1, *want2;
    } cases[] = {
        {"{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "model.type", "WordPiece"},
        {"{\"model\": {\"type\": \"Unigram\", \"vocab\": [[\"a\", 0.0]]}}", "model.type", "Unigram"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [",
         "invalid JSON", "byte"},
        {"{\"model\": {\"type\": \"BPE\", \"merges\": []}}", "model.vocab", "expected an object"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}}", "model.merges", "expected an array"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a c\"]}}",
         "model.merges[0]", "right part"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}",
         "model.merges[0]", "merged text"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [[\"a\"]]}}",
         "model.merges[0]", "expected"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}", "model.vocab[\"a\"]", "token id"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"byte_fallback\": 1}}",
         "model.byte_fallback", "bool"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"dropout\": 0.1}}", "model.dropout",
         "not supported"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], \"unk_token\": \"<unk>\"}}",
         "model.unk_token", "not in model.vocab"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": 1}]}",
         "added_tokens[0].content", "string"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"added_tokens\": [{\"id\": 1, "
         "\"content\": \"x\", \"special\": \"yes\"}]}",
         "added_tokens[0].special", "bool"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
         "\"Split\", \"pattern\": {\"Regex\": \"\\\\s+\"}, \"behavior\": \"Isolated\"}}",
         "pre_tokenizer.pattern.Regex", "unsupported split regex"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": "
         "\"Sequence\", \"pretokenizers\": [{\"type\": \"Whitespace\"}]}}",
         "pre_tokenizer.pretokenizers[0].type", "Whitespace"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": "
         "\"Lowercase\"}}",
         "normalizer.type", "Lowercase"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"decoder\": {\"type\": "
         "\"WordPiece\"}}",
         "decoder.type", "WordPiece"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"post_processor\": {\"type\": "
         "\"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}], \"special_tokens\": {}}}",
         "post_processor.single[0]", "<s>"},
        {"{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": "
         "\"Replace\", \"pattern\": {\"Regex\": \" +\"}, \"content\": \" \"}}",
         "normalizer.pattern", "Regex"},
        {"[1, 2]", "expected a JSON object", "byte"},
    };
    for (size_t k = 0; k < VKL_ARRAY_LEN(cases); k++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/bad%zu.json", t_tmpdir(), k);
        FILE *f = fopen(path, "wb");
        T_ASSERT(f, "write");
        fputs(cases[k].json, f);
        fclose(f);
        vkl_tokenizer *tok = NULL;
        vkl_err err = {0};
        vkl_status st = vkl_tokenizer_load_hf(path, &tok, &err);
        bool ok = st == VKL_ERR_INPUT && !tok && strstr(err.msg, path) && strstr(err.msg, cases[k].want1) &&
                  strstr(err.msg, cases[k].want2);
        if (!ok) fprintf(stderr, "    case %zu: status %d: %s\n", k, st, err.msg);
        vkl_tokenizer_free(tok);
        T_ASSERT(ok, "case %zu", k);
    }
    /* a folder without tokenizer.json; a bad tokenizer_config.json beside a good tokenizer.json */
    vkl_tokenizer *tok = NULL;
    vkl_err err = {0};
    T_ASSERT(vkl_tokenizer_load_hf(t_tmpdir(), &tok, &err) == VKL_ERR_INPUT && strstr(err.msg, "tokenizer.json"),
             "empty folder: %s", err.msg);
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/cfgdir", t_tmpdir());
    mkdir(dir, 0755);
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "wb");
    fputs("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    f = fopen(path, "wb");
    fputs("{\"eos_token\": \"</s>\"}", f);
    fclose(f);
    err = (vkl_err){0};
    T_ASSERT(vkl_tokenizer_load_hf(dir, &tok, &err) == VKL_ERR_INPUT && strstr(err.msg, "tokenizer_config.json") &&
                 strstr(err.msg, "eos_token"),
             "config: %s", err.msg);
    return 0;
}

/* `vklora tokenize --tokenizer` with a folder and --json; exit 2 naming the file for a bad one. */
static int test_cli(void) {
    char cmd[2048], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof(cmd), "%s tokenize --tokenizer '%s' --text 'Hello world<|eot_id|>' --json", t_vklora_bin(),
             t_data_path("hf/llama-3.1"));
    int rc = t_run(cmd, &out, &errs);
    bool ok = rc == 0 && out && strstr(out, "[128000, 9906, 1917, 128009]");
    if (!ok) fprintf(stderr, "    rc %d\n    out: %s\n    err: %s\n", rc, out ? out : "", errs ? errs : "");
    free(out);
    free(errs);
    T_ASSERT(ok, "tokenize --tokenizer");
    char path[512];
    snprintf(path, sizeof(path), "%s/wordpiece.json", t_tmpdir());
    FILE *f = fopen(path, "wb");
    fputs("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "%s tokenize --tokenizer '%s' --text x", t_vklora_bin(), path);
    out = errs = NULL;
    rc = t_run(cmd, &out, &errs);
    ok = rc == 2 && errs && strstr(errs, "wordpiece.json") && strstr(errs, "model.type");
    if (!ok) fprintf(stderr, "    rc %d\n    err: %s\n", rc, errs ? errs : "");
    free(out);
    free(errs);
    T_ASSERT(ok, "bad tokenizer.json: exit 2 naming the file and field");
    return 0;
}

const vkl_test_case vkl_tests_tokenizer_hf[] = {
    {"tokenizer_hf/llama-3.1_vs_hf_tokenizers", test_llama31},
    {"tokenizer_hf/qwen3_vs_hf_tokenizers", test_qwen3},
    {"tokenizer_hf/gemma-3_vs_hf_tokenizers", test_gemma3},
    {"tokenizer_hf/synthetic_added_token_flags", test_synthetic_flags},
    {"tokenizer_hf/synthetic_metaspace", test_synthetic_metaspace},
    {"tokenizer_hf/synthetic_bytelevel_roberta", test_synthetic_bytelevel},
    {"tokenizer_hf/synthetic_digits_nfc", test_synthetic_digits},
    {"tokenizer_hf/parse_special_and_strip", test_parse_special},
    {"tokenizer_hf/split_regexes_vs_hf", test_splits},
    {"tokenizer_hf/tokenizer_config", test_config},
    {"tokenizer_hf/nfc", test_nfc},
    {"tokenizer_hf/malformed_files", test_errors},
    {"tokenizer_hf/cli_tokenize", test_cli},
    {NULL, NULL},
};
