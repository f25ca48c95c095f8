/* `vklora tokenize`: tokenizes a string or a file with the vocabulary stored in a GGUF and prints the ids and
 * their pieces, as text or as one JSON object. Reads metadata only: no Vulkan device is created. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "platform.h"
#include "unicode.h"
#include "vklora/gguf.h"
#include "vklora/hf.h"
#include "vklora/tokenizer.h"

#define CMD "tokenize"

static void help(void) {
    printf("usage: vklora tokenize (--model MODEL.gguf | --tokenizer PATH) (--text TEXT | --file FILE) [--no-bos]\n"
           "                       [--no-parse-special] [--json]\n\n"
           "Tokenize TEXT (or the contents of FILE) with the tokenizer stored in MODEL.gguf (tokenizer.ggml.*:\n"
           "SentencePiece \"llama\" or byte-level BPE \"gpt2\"), the way llama.cpp does, or with a Hugging Face\n"
           "tokenizer.json, the way Hugging Face's tokenizers library does.\n\n"
           "  --model PATH          GGUF file with a vocabulary (a full model or a vocabulary-only file)\n"
           "  --tokenizer PATH      a tokenizer.json, or a folder holding one (and tokenizer_config.json)\n"
           "  --text TEXT           the text to tokenize\n"
           "  --file PATH           tokenize this file's bytes instead\n"
           "  --no-bos              do not add the BOS (and EOS) tokens the vocabulary asks for (tokenizer.json:\n"
           "                        the post-processor's tokens, Hugging Face's add_special_tokens=False)\n"
           "  --no-parse-special    treat text such as \"<s>\" or \"<|im_end|>\" as plain text rather than as\n"
           "                        control tokens (user-defined tokens are still matched)\n"
           "  --json                print {\"tokens\":[...], \"pieces\":[...], \"n_tokens\":N}\n"
           "  -h, --help            this text\n\n"
           "A piece is the text a token stands for; a piece that is not valid UTF-8 on its own (a lone byte of\n"
           "a multi-byte character) is shown as its vocabulary entry instead (e.g. <0xE2>).\n\n"
           "exit codes: 0 ok, 1 I/O failure, 2 bad usage or a missing/malformed file or vocabulary\n");
}

/* Whole UTF-8 characters only, no NUL: then the piece can go into JSON or onto a terminal as it is. */
static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t c = vkl_utf8_decode((const uint8_t *)s + i, n - i, &adv);
        char enc[4];
        if (c == 0 || (c >= 0xD800 && c <= 0xDFFF) || vkl_utf8_encode(c, enc) != adv || memcmp(enc, s + i, adv))
            return false;
        i += adv;
    }
    return true;
}

/* The piece of a token as a NUL-terminated string (malloc'd). */
static char *piece_string(const vkl_tokenizer *tok, int32_t id) {
    size_t n = vkl_token_to_piece(tok, id, true, NULL, 0);
    char *s = vkl_malloc(n + 1);
    vkl_token_to_piece(tok, id, true, s, n);
    s[n] = 0;
    if (valid_utf8(s, n)) return s;
    free(s);
    return vkl_strdup(vkl_tokenizer_token_text(tok, id, NULL));
}

static void print_quoted(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\t')
            fputs("\\t", stdout);
        else if (*p == '\r')
            fputs("\\r", stdout);
        else if (*p < 0x20 || *p == 0x7F)
            printf("\\x%02X", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static vkl_status read_file(const char *path, char **buf, size_t *len, vkl_err *err) {
    FILE *f = vkl_os_fopen(path, "rb");
    if (!f) return vkl_err_set(err, VKL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *b = vkl_malloc(cap);
    for (;;) {
        if (n == cap) b = vkl_realloc(b, cap *= 2);
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return vkl_err_set(err, VKL_ERR_RUNTIME, "%s: read error", path);
    }
    *buf = b;
    *len = n;
    return VKL_OK;
}

int vkl_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL, *hf = NULL;
    bool add_bos = true, parse_special = true, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (vkl_cli_is_help(a)) {
            help();
            return 0;
        } else if (!strcmp(a, "--model") || !strcmp(a, "--text") || !strcmp(a, "--file") ||
                   !strcmp(a, "--tokenizer")) {
            if (i + 1 >= argc) return vkl_cli_usage(CMD, "%s needs a value", a);
            const char **dst = a[2] == 'm' ? &model : !strcmp(a, "--text") ? &text : a[2] == 't' ? &hf : &file;
            if (*dst) return vkl_cli_usage(CMD, "%s given twice", a);
            *dst = argv[++i];
        } else if (!strcmp(a, "--no-bos")) {
            add_bos = false;
        } else if (!strcmp(a, "--no-parse-special")) {
            parse_special = false;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            return vkl_cli_usage(CMD, "unknown argument '%s'", a);
        }
    }
    if (!model == !hf) return vkl_cli_usage(CMD, "give exactly one of --model and --tokenizer");
    if (!text == !file) return vkl_cli_usage(CMD, "give exactly one of --text and --file");

    vkl_err err = {0};
    vkl_gguf *g = NULL;
    vkl_tokenizer *tok = NULL;
    char *buf = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n = 0;
    int rc = 0;
    /* --model: a GGUF's vocabulary, or a Hugging Face model folder's tokenizer.json */
    if (model && vkl_hf_is_folder(model)) hf = model;
    if (hf ? vkl_tokenizer_load_hf(hf, &tok, &err) : (vkl_gguf_open(model, &g, &err) || vkl_tokenizer_load(g, &tok, &err)))
        goto fail;
    if (file) {
        if (read_file(file, &buf, &len, &err)) goto fail;
    } else {
        len = strlen(text);
    }
    if (vkl_tokenize(tok, file ? buf : text, len, add_bos, parse_special, &ids, &n, &err)) goto fail;

    if (json) {
        cJSON *doc = cJSON_CreateObject();
        cJSON *jt = cJSON_AddArrayToObject(doc, "tokens");
        cJSON *jp = cJSON_AddArrayToObject(doc, "pieces");
        for (size_t i = 0; i < n; i++) {
            char *p = piece_string(tok, ids[i]);
            cJSON_AddItemToArray(jt, cJSON_CreateNumber(ids[i]));
            cJSON_AddItemToArray(jp, cJSON_CreateString(p));
            free(p);
        }
        cJSON_AddNumberToObject(doc, "n_tokens", (double)n);
        vkl_cli_print_json(doc);
    } else {
        for (size_t i = 0; i < n; i++) {
            char *p = piece_string(tok, ids[i]);
            printf("%8d  ", ids[i]);
            print_quoted(p);
            putchar('\n');
            free(p);
        }
        printf("n_tokens: %zu\n", n);
    }
    goto done;
fail:
    rc = vkl_cli_fail(CMD, err.status, "%s", err.msg);
done:
    free(ids);
    free(buf);
    vkl_tokenizer_free(tok);
    if (g) vkl_gguf_close(g);
    return rc;
}
