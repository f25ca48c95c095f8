/* GGUF reader/writer tests on the shared model and vocabulary files, writer round trips (byte-exact copies, every
 * value type, every ggml tensor type), atomic writes, and `vklora info` on real files. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifndef _WIN32
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "harness.h"
#include "vklora/gguf.h"
#include "vklora/quant.h"

static const char *const vocab_files[] = {
    "vocab/ggml-vocab-gpt-2.gguf",
    "vocab/ggml-vocab-llama-bpe.gguf",
    "vocab/ggml-vocab-llama-spm.gguf",
    "vocab/ggml-vocab-qwen2.gguf",
};

static uint8_t *read_all(const char *path, uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (uint64_t)n;
    return buf;
}

static int test_stories(void) {
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    const char *path = t_data_path("models/stories260K.gguf");
    T_ASSERT(vkl_gguf_open(path, &g, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(g->version == 3, "version %u", g->version);
    T_ASSERT(g->n_tensors == 48, "%llu tensors", (unsigned long long)g->n_tensors);
    T_ASSERT(g->alignment == 32, "alignment %u", g->alignment);
    T_ASSERT(g->file_size == 1185376, "size");
    T_ASSERT(!strcmp(vkl_gguf_get_str(g, "general.architecture"), "llama"), "arch");
    T_ASSERT(!strcmp(vkl_gguf_get_str(g, "tokenizer.ggml.model"), "llama"), "tokenizer model");

    uint64_t u;
    int64_t i;
    double d;
    bool b;
    T_ASSERT(vkl_gguf_get_u64(g, "llama.block_count", &u) && u == 5, "n_layer");
    T_ASSERT(vkl_gguf_get_u64(g, "llama.embedding_length", &u) && u == 64, "n_embd");
    T_ASSERT(vkl_gguf_get_u64(g, "llama.attention.head_count", &u) && u == 8, "n_head");
    T_ASSERT(vkl_gguf_get_i64(g, "llama.attention.head_count_kv", &i) && i == 4, "n_head_kv");
    T_ASSERT(vkl_gguf_get_u64(g, "llama.feed_forward_length", &u) && u == 172, "n_ff");
    T_ASSERT(vkl_gguf_get_f64(g, "llama.feed_forward_length", &d) && d == 172.0, "int as double");
    T_ASSERT(vkl_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &d) && d == (double)1e-5f, "eps %g", d);
    T_ASSERT(vkl_gguf_get_u64(g, "tokenizer.ggml.seperator_token_id", &u) && u == 4294967295u, "sep");
    T_ASSERT(!vkl_gguf_get_u64(g, "llama.rope.freq_base", &u), "absent key");
    T_ASSERT(!vkl_gguf_get_u64(g, "general.architecture", &u), "string as integer");
    T_ASSERT(!vkl_gguf_get_u64(g, "llama.attention.layer_norm_rms_epsilon", &u), "float as integer");
    T_ASSERT(!vkl_gguf_get_bool(g, "llama.block_count", &b), "integer as bool");
    T_ASSERT(!vkl_gguf_get_str(g, "llama.block_count"), "integer as string");
    T_ASSERT(vkl_gguf_get(g, "nope") == NULL && vkl_gguf_find_key(g, "nope") < 0, "missing key");

    const vkl_gguf_value *tok = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING);
    T_ASSERT(tok && tok->v.arr.count == 512, "vocab");
    const vkl_gguf_str *s = tok->v.arr.data;
    T_ASSERT(!strcmp(s[0].str, "<unk>") && !strcmp(s[1].str, "<s>") && !strcmp(s[2].str, "</s>"), "%s %s %s",
             s[0].str, s[1].str, s[2].str);
    T_ASSERT(!vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_INT32), "wrong element type");
    T_ASSERT(vkl_gguf_get_arr(g, "tokenizer.ggml.scores", VKL_GGUF_TYPE_COUNT) != NULL, "any element type");
    const vkl_gguf_value *tt = vkl_gguf_get_arr(g, "tokenizer.ggml.token_type", VKL_GGUF_INT32);
    T_ASSERT(tt && tt->v.arr.count == 512, "token types");
    T_ASSERT(((const int32_t *)tt->v.arr.data)[0] == 2 /* unknown */, "type of <unk>: %d",
             ((const int32_t *)tt->v.arr.data)[0]);

    uint64_t params = 0;
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        const vkl_gguf_tensor *t = &g->tensors[k];
        T_ASSERT(t->type == VKL_TYPE_F32, "%s type %u", t->name.str, t->type);
        T_ASSERT(vkl_gguf_find_tensor(g, t->name.str) == (int64_t)k, "find %s", t->name.str);
        T_ASSERT((const uint8_t *)t->data == g->map + g->data_offset + t->offset, "data pointer");
        params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    T_ASSERT(params == 292800, "params %llu", (unsigned long long)params);
    int64_t e = vkl_gguf_find_tensor(g, "token_embd.weight");
    T_ASSERT(e >= 0 && g->tensors[e].n_dims == 2 && g->tensors[e].ne[0] == 64 && g->tensors[e].ne[1] == 512, "embd");
    int64_t k = vkl_gguf_find_tensor(g, "blk.4.attn_k.weight");
    T_ASSERT(k >= 0 && g->tensors[k].ne[0] == 64 && g->tensors[k].ne[1] == 32, "wk shape (KV heads 4 x 8)");
    int64_t f = vkl_gguf_find_tensor(g, "blk.0.ffn_gate.weight");
    T_ASSERT(f >= 0 && g->tensors[f].ne[0] == 64 && g->tensors[f].ne[1] == 172, "ffn shape");
    T_ASSERT(vkl_gguf_find_tensor(g, "blk.5.attn_k.weight") < 0, "only 5 layers");
    /* values look like trained weights (finite, not all zero) */
    const float *w = g->tensors[e].data;
    double sum = 0;
    for (int j = 0; j < 64 * 512; j++) {
        T_ASSERT(isfinite(w[j]), "non-finite weight");
        sum += fabs(w[j]);
    }
    T_ASSERT(sum > 1.0, "embedding all zero");

    /* the memory reader sees the same file */
    uint64_t n;
    uint8_t *buf = read_all(path, &n);
    T_ASSERT(buf, "read %s", path);
    vkl_gguf *m = NULL;
    T_ASSERT(vkl_gguf_open_memory(buf, n, "mem.gguf", &m, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(m->n_kv == g->n_kv && m->n_tensors == g->n_tensors && m->data_offset == g->data_offset, "memory view");
    T_ASSERT(!memcmp(m->tensors[47].data, g->tensors[47].data, (size_t)g->tensors[47].size), "memory data");
    vkl_gguf_close(m);
    free(buf);
    vkl_gguf_close(g);
    return 0;
}

static int test_vocab_files(void) {
    static const struct {
        const char *model, *pre;
        uint64_t vocab;
    } want[] = {
        {"gpt2", "gpt-2", 50257},
        {"gpt2", "llama-bpe", 128256},
        {"llama", "default", 32000},
        {"gpt2", "qwen2", 151936},
    };
    for (size_t f = 0; f < VKL_ARRAY_LEN(vocab_files); f++) {
        vkl_err err = {0};
        vkl_gguf *g = NULL;
        T_ASSERT(vkl_gguf_open(t_data_path(vocab_files[f]), &g, &err) == VKL_OK, "%s", err.msg);
        T_ASSERT(g->n_tensors == 0 && g->version == 3, "%s", vocab_files[f]);
        T_ASSERT(g->data_offset <= g->file_size, "empty data section inside the file");
        const char *model = vkl_gguf_get_str(g, "tokenizer.ggml.model");
        const char *pre = vkl_gguf_get_str(g, "tokenizer.ggml.pre");
        T_ASSERT(model && !strcmp(model, want[f].model), "%s: model %s", vocab_files[f], model);
        T_ASSERT(pre && !strcmp(pre, want[f].pre), "%s: pre %s", vocab_files[f], pre);
        const vkl_gguf_value *tok = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING);
        T_ASSERT(tok && tok->v.arr.count == want[f].vocab, "%s: vocab", vocab_files[f]);
        const vkl_gguf_value *tt = vkl_gguf_get_arr(g, "tokenizer.ggml.token_type", VKL_GGUF_INT32);
        T_ASSERT(tt && tt->v.arr.count == want[f].vocab, "%s: token types", vocab_files[f]);
        if (!strcmp(want[f].model, "gpt2"))
            T_ASSERT(vkl_gguf_get_arr(g, "tokenizer.ggml.merges", VKL_GGUF_STRING), "%s: merges", vocab_files[f]);
        vkl_gguf_close(g);
    }
    /* spot checks of values inside the big arrays */
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open(t_data_path("vocab/ggml-vocab-llama-spm.gguf"), &g, &err) == VKL_OK, "%s", err.msg);
    bool b;
    T_ASSERT(vkl_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) && b, "add_bos");
    T_ASSERT(vkl_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b) && !b, "add_eos");
    const vkl_gguf_str *s = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING)->v.arr.data;
    T_ASSERT(!strcmp(s[1].str, "<s>") && !strcmp(s[29871].str, "\xe2\x96\x81"), "spm tokens '%s' '%s'", s[1].str,
             s[29871].str);
    vkl_gguf_close(g);
    T_ASSERT(vkl_gguf_open(t_data_path("vocab/ggml-vocab-gpt-2.gguf"), &g, &err) == VKL_OK, "%s", err.msg);
    s = vkl_gguf_get_arr(g, "tokenizer.ggml.tokens", VKL_GGUF_STRING)->v.arr.data;
    T_ASSERT(!strcmp(s[50256].str, "<|endoftext|>") && !strcmp(s[0].str, "!"), "gpt-2 tokens");
    vkl_gguf_close(g);
    return 0;
}

/* Copy every kv (set_value) and tensor of `path`; the writer's standard layout must reproduce it exactly. */
static int roundtrip_file(const char *path) {
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open(path, &g, &err) == VKL_OK, "%s", err.msg);
    /* the byte-exact claim only holds for files in the standard layout: check that this one is */
    uint64_t expect = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        T_ASSERT(g->tensors[i].offset == expect, "%s: tensor %llu not at the standard offset", path,
                 (unsigned long long)i);
        expect = (g->tensors[i].offset + g->tensors[i].size + g->alignment - 1) / g->alignment * g->alignment;
    }
    if (g->n_tensors) T_ASSERT(g->data_offset + expect == g->file_size, "%s: trailing bytes", path);

    vkl_gguf_writer *w = vkl_gguf_writer_new(g->version, g->alignment);
    for (uint64_t i = 0; i < g->n_kv; i++) vkl_gguf_writer_set_value(w, g->kv[i].key.str, &g->kv[i].value);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const vkl_gguf_tensor *t = &g->tensors[i];
        T_ASSERT(vkl_gguf_writer_add_tensor(w, t->name.str, t->type, t->n_dims, t->ne, t->data, &err) == VKL_OK,
                 "%s", err.msg);
    }
    uint8_t *mem;
    uint64_t n;
    T_ASSERT(vkl_gguf_writer_to_memory(w, &mem, &n, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(n == g->file_size, "%s: size %llu vs %llu", path, (unsigned long long)n,
             (unsigned long long)g->file_size);
    for (uint64_t i = 0; i < n; i++)
        T_ASSERT(mem[i] == g->map[i], "%s: first difference at byte %llu", path, (unsigned long long)i);
    free(mem);

    char out[512];
    snprintf(out, sizeof(out), "%s/roundtrip.gguf", t_tmpdir());
    T_ASSERT(vkl_gguf_writer_write(w, out, &err) == VKL_OK, "%s", err.msg);
    uint8_t *disk = read_all(out, &n);
    T_ASSERT(disk && n == g->file_size && !memcmp(disk, g->map, (size_t)n), "%s: file copy differs", path);
    free(disk);
    vkl_gguf_writer_free(w);
    vkl_gguf_close(g);
    return 0;
}

static int test_roundtrip_stories(void) { return roundtrip_file(t_data_path("models/stories260K.gguf")); }

static int test_roundtrip_vocab(void) {
    for (size_t f = 0; f < VKL_ARRAY_LEN(vocab_files); f++)
        if (roundtrip_file(t_data_path(vocab_files[f]))) return 1;
    return 0;
}

/* ---- every value type and every tensor type through the writer and back ---- */

static bool values_equal(const vkl_gguf_value *a, const vkl_gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case VKL_GGUF_FLOAT32: return (float)a->v.f64 == (float)b->v.f64;
    case VKL_GGUF_FLOAT64: return a->v.f64 == b->v.f64;
    case VKL_GGUF_STRING: return a->v.str.len == b->v.str.len && !memcmp(a->v.str.str, b->v.str.str, a->v.str.len);
    case VKL_GGUF_ARRAY: {
        static const uint8_t esz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        vkl_gguf_type et = a->v.arr.elem_type;
        uint64_t n = a->v.arr.count;
        if (et != b->v.arr.elem_type || n != b->v.arr.count) return false;
        if (et == VKL_GGUF_STRING) {
            const vkl_gguf_str *x = a->v.arr.data, *y = b->v.arr.data;
            for (uint64_t i = 0; i < n; i++)
                if (x[i].len != y[i].len || memcmp(x[i].str, y[i].str, x[i].len)) return false;
            return true;
        }
        if (et == VKL_GGUF_ARRAY) {
            const vkl_gguf_value *x = a->v.arr.data, *y = b->v.arr.data;
            for (uint64_t i = 0; i < n; i++)
                if (!values_equal(&x[i], &y[i])) return false;
            return true;
        }
        return n == 0 || !memcmp(a->v.arr.data, b->v.arr.data, n * esz[et]);
    }
    case VKL_GGUF_INT8: case VKL_GGUF_INT16: case VKL_GGUF_INT32: case VKL_GGUF_INT64: return a->v.i64 == b->v.i64;
    default: return a->v.u64 == b->v.u64;
    }
}

#define N_ARR 7

typedef struct {
    const char *key;
    vkl_gguf_value v;
} expect_kv;

static int test_writer_all_types(void) {
    vkl_err err = {0};
    t_rng_seed(42);
    const uint32_t alignment = 64;
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, alignment);
    expect_kv ex[64];
    int nex = 0;
#define EX(k, ty, field, val) ex[nex++] = (expect_kv){k, {.type = ty, .v.field = val}}
    vkl_gguf_writer_set_u8(w, "s.u8", 255), EX("s.u8", VKL_GGUF_UINT8, u64, 255);
    vkl_gguf_writer_set_i8(w, "s.i8", -128), EX("s.i8", VKL_GGUF_INT8, i64, -128);
    vkl_gguf_writer_set_u16(w, "s.u16", 65535), EX("s.u16", VKL_GGUF_UINT16, u64, 65535);
    vkl_gguf_writer_set_i16(w, "s.i16", -32768), EX("s.i16", VKL_GGUF_INT16, i64, -32768);
    vkl_gguf_writer_set_u32(w, "s.u32", 0xFFFFFFFFu), EX("s.u32", VKL_GGUF_UINT32, u64, 0xFFFFFFFFu);
    vkl_gguf_writer_set_i32(w, "s.i32", INT32_MIN), EX("s.i32", VKL_GGUF_INT32, i64, INT32_MIN);
    vkl_gguf_writer_set_u64(w, "s.u64", UINT64_MAX), EX("s.u64", VKL_GGUF_UINT64, u64, UINT64_MAX);
    vkl_gguf_writer_set_i64(w, "s.i64", INT64_MIN), EX("s.i64", VKL_GGUF_INT64, i64, INT64_MIN);
    vkl_gguf_writer_set_f32(w, "s.f32", -1.25e-3f), EX("s.f32", VKL_GGUF_FLOAT32, f64, -1.25e-3f);
    vkl_gguf_writer_set_f64(w, "s.f64", 3.141592653589793), EX("s.f64", VKL_GGUF_FLOAT64, f64, 3.141592653589793);
    vkl_gguf_writer_set_bool(w, "s.true", true), EX("s.true", VKL_GGUF_BOOL, u64, 1);
    vkl_gguf_writer_set_bool(w, "s.false", false), EX("s.false", VKL_GGUF_BOOL, u64, 0);
    vkl_gguf_writer_set_str(w, "s.str", "h\xc3\xa9llo \xe2\x9c\x93"),
        EX("s.str", VKL_GGUF_STRING, str, ((vkl_gguf_str){"h\xc3\xa9llo \xe2\x9c\x93", 10}));
    vkl_gguf_writer_set_str(w, "s.empty", ""), EX("s.empty", VKL_GGUF_STRING, str, ((vkl_gguf_str){"", 0}));
    /* a duplicate key replaces the value in place */
    vkl_gguf_writer_set_u32(w, "s.dup", 1);
    vkl_gguf_writer_set_str(w, "s.dup", "second"), EX("s.dup", VKL_GGUF_STRING, str, ((vkl_gguf_str){"second", 6}));

    /* arrays of every scalar type, random contents */
    static uint8_t arrdata[VKL_GGUF_TYPE_COUNT][N_ARR * 8];
    static const char *const arrkeys[VKL_GGUF_TYPE_COUNT] = {
        "a.uint8", "a.int8", "a.uint16", "a.int16", "a.uint32", "a.int32", "a.float32",
        "a.bool", NULL, NULL, "a.uint64", "a.int64", "a.float64"};
    for (int t = 0; t < VKL_GGUF_TYPE_COUNT; t++) {
        if (!arrkeys[t]) continue;
        for (int i = 0; i < N_ARR * 8; i++) arrdata[t][i] = (uint8_t)t_rng_u32();
        if (t == VKL_GGUF_BOOL)
            for (int i = 0; i < N_ARR; i++) arrdata[t][i] &= 1;
        if (t == VKL_GGUF_FLOAT32 || t == VKL_GGUF_FLOAT64) /* keep NaN payloads out of the comparison */
            for (int i = 0; i < N_ARR; i++) {
                if (t == VKL_GGUF_FLOAT32) ((float *)arrdata[t])[i] = t_rng_uniform(-1e6f, 1e6f);
                else ((double *)arrdata[t])[i] = t_rng_uniform(-1, 1) * 1e-300;
            }
        vkl_gguf_writer_set_arr(w, arrkeys[t], (vkl_gguf_type)t, arrdata[t], N_ARR);
        ex[nex++] = (expect_kv){arrkeys[t], {.type = VKL_GGUF_ARRAY, .v.arr = {(vkl_gguf_type)t, N_ARR, arrdata[t]}}};
    }
    vkl_gguf_writer_set_arr(w, "a.empty", VKL_GGUF_INT32, NULL, 0);
    ex[nex++] = (expect_kv){"a.empty", {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_INT32, 0, NULL}}};
    static const char *const strs[] = {"alpha", "", "\xe2\x96\x81the", "<|endoftext|>"};
    vkl_gguf_writer_set_arr_str(w, "a.str", strs, 4);
    static const vkl_gguf_str sv[] = {{"alpha", 5}, {"", 0}, {"\xe2\x96\x81the", 6}, {"<|endoftext|>", 13}};
    ex[nex++] = (expect_kv){"a.str", {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_STRING, 4, sv}}};

    /* nested: [[1,2,3],[]] of int32, and [[["x","yz"]],[[]]] three levels deep */
    static const int32_t i3[] = {1, 2, 3};
    static const vkl_gguf_value inner[] = {
        {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_INT32, 3, i3}},
        {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_INT32, 0, NULL}},
    };
    vkl_gguf_value nested = {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_ARRAY, 2, inner}};
    vkl_gguf_writer_set_value(w, "n.int", &nested);
    ex[nex++] = (expect_kv){"n.int", nested};
    static const vkl_gguf_str xyz[] = {{"x", 1}, {"yz", 2}};
    static const vkl_gguf_value lvl3[] = {{.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_STRING, 2, xyz}}};
    static const vkl_gguf_value lvl3b[] = {{.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_STRING, 0, NULL}}};
    static const vkl_gguf_value lvl2[] = {
        {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_ARRAY, 1, lvl3}},
        {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_ARRAY, 1, lvl3b}},
    };
    vkl_gguf_value deep = {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_ARRAY, 2, lvl2}};
    vkl_gguf_writer_set_value(w, "n.deep", &deep);
    ex[nex++] = (expect_kv){"n.deep", deep};

    /* one tensor of every ggml type, shapes of 1..4 dims, random bytes */
    uint8_t *tdata[VKL_TYPE_COUNT] = {0};
    int n_types = 0;
    for (uint32_t ty = 0; ty < VKL_TYPE_COUNT; ty++) {
        const vkl_type_traits *tr = vkl_type_traits_get(ty);
        if (!tr) continue;
        char name[64];
        snprintf(name, sizeof(name), "t.%s", tr->name);
        uint32_t nd = 1 + ty % 4;
        int64_t ne[4] = {2 * (int64_t)tr->block_size, 3, 2, 2};
        uint64_t bytes = 2 * (uint64_t)tr->type_size;
        for (uint32_t dd = 1; dd < nd; dd++) bytes *= (uint64_t)ne[dd];
        tdata[ty] = malloc(bytes);
        for (uint64_t i = 0; i < bytes; i++) tdata[ty][i] = (uint8_t)t_rng_u32();
        T_ASSERT(vkl_gguf_writer_add_tensor(w, name, ty, nd, ne, tdata[ty], &err) == VKL_OK, "%s", err.msg);
        n_types++;
    }
    /* an empty tensor is refused (the reader refuses a zero dimension too) */
    int64_t ne0[1] = {0};
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "t.empty", VKL_TYPE_F32, 1, ne0, NULL, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "positive"), "empty tensor: %s", err.msg);
    vkl_err_clear(&err);

    uint8_t *buf;
    uint64_t n;
    T_ASSERT(vkl_gguf_writer_to_memory(w, &buf, &n, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open_memory(buf, n, "alltypes.gguf", &g, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(g->alignment == alignment && g->data_offset % alignment == 0, "alignment %u", g->alignment);
    uint64_t a;
    T_ASSERT(vkl_gguf_get_u64(g, "general.alignment", &a) && a == alignment, "general.alignment key written");
    T_ASSERT(g->n_kv == (uint64_t)nex + 1, "n_kv %llu vs %d", (unsigned long long)g->n_kv, nex + 1);
    T_ASSERT(!strcmp(g->kv[0].key.str, "general.alignment"), "alignment key first");
    for (int i = 0; i < nex; i++) {
        T_ASSERT(!strcmp(g->kv[i + 1].key.str, ex[i].key), "order: %s vs %s", g->kv[i + 1].key.str, ex[i].key);
        T_ASSERT(values_equal(&g->kv[i + 1].value, &ex[i].v), "value of %s", ex[i].key);
    }
    /* typed getters across widths and signs */
    int64_t si;
    uint64_t su;
    double d;
    bool bb;
    T_ASSERT(vkl_gguf_get_i64(g, "s.i8", &si) && si == -128 && !vkl_gguf_get_u64(g, "s.i8", &su), "i8");
    T_ASSERT(vkl_gguf_get_u64(g, "s.u64", &su) && su == UINT64_MAX && !vkl_gguf_get_i64(g, "s.u64", &si), "u64");
    T_ASSERT(vkl_gguf_get_i64(g, "s.u16", &si) && si == 65535, "u16 as i64");
    T_ASSERT(vkl_gguf_get_f64(g, "s.i64", &d) && d == (double)INT64_MIN, "i64 as double");
    T_ASSERT(vkl_gguf_get_f64(g, "s.f32", &d) && (float)d == -1.25e-3f, "f32");
    T_ASSERT(vkl_gguf_get_bool(g, "s.true", &bb) && bb && vkl_gguf_get_bool(g, "s.false", &bb) && !bb, "bool");
    T_ASSERT(!vkl_gguf_get_u64(g, "s.true", &su), "bool is not an integer");
    T_ASSERT(!strcmp(vkl_gguf_get_str(g, "s.dup"), "second"), "dup");
    T_ASSERT(vkl_gguf_get_arr(g, "n.deep", VKL_GGUF_ARRAY) && !vkl_gguf_get_arr(g, "s.str", VKL_GGUF_STRING), "arr");

    T_ASSERT(g->n_tensors == (uint64_t)n_types, "tensors");
    int seen = 0;
    for (uint32_t ty = 0; ty < VKL_TYPE_COUNT; ty++) {
        if (!tdata[ty]) continue;
        const vkl_gguf_tensor *t = &g->tensors[seen++];
        const vkl_type_traits *tr = vkl_type_traits_get(ty);
        T_ASSERT(t->type == ty && t->n_dims == 1 + ty % 4, "%s", t->name.str);
        T_ASSERT(t->ne[0] == 2 * (int64_t)tr->block_size, "%s ne0", t->name.str);
        for (uint32_t dd = t->n_dims; dd < 4; dd++) T_ASSERT(t->ne[dd] == 1, "unused dims are 1");
        T_ASSERT(t->offset % alignment == 0, "%s offset %llu", t->name.str, (unsigned long long)t->offset);
        T_ASSERT(!memcmp(t->data, tdata[ty], (size_t)t->size), "%s data", t->name.str);
    }

    /* writing the read file again gives the same bytes, also through the file writer (mmap reader) */
    vkl_gguf_writer *w2 = vkl_gguf_writer_new(3, 0);
    for (uint64_t i = 0; i < g->n_kv; i++) vkl_gguf_writer_set_value(w2, g->kv[i].key.str, &g->kv[i].value);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const vkl_gguf_tensor *t = &g->tensors[i];
        T_ASSERT(vkl_gguf_writer_add_tensor(w2, t->name.str, t->type, t->n_dims, t->ne, t->data, &err) == VKL_OK,
                 "%s", err.msg);
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/alltypes.gguf", t_tmpdir());
    T_ASSERT(vkl_gguf_writer_write(w2, path, &err) == VKL_OK, "%s", err.msg);
    uint64_t n2;
    uint8_t *disk = read_all(path, &n2);
    T_ASSERT(disk && n2 == n && !memcmp(disk, buf, (size_t)n), "re-written file differs");
    free(disk);
    vkl_gguf *g2 = NULL;
    T_ASSERT(vkl_gguf_open(path, &g2, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(g2->n_tensors == g->n_tensors && g2->alignment == alignment, "mmap reader");
    vkl_gguf_close(g2);

    vkl_gguf_writer_free(w2);
    vkl_gguf_close(g);
    free(buf);
    vkl_gguf_writer_free(w);
    for (uint32_t ty = 0; ty < VKL_TYPE_COUNT; ty++) free(tdata[ty]);
    return 0;
#undef EX
}

static int test_writer_version2(void) {
    vkl_err err = {0};
    vkl_gguf_writer *w = vkl_gguf_writer_new(2, 0);
    vkl_gguf_writer_set_str(w, "general.architecture", "llama");
    float data[32];
    for (int i = 0; i < 32; i++) data[i] = t_rng_uniform(-1, 1);
    int64_t ne[2] = {8, 4};
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "x", VKL_TYPE_F32, 2, ne, data, &err) == VKL_OK, "%s", err.msg);
    uint8_t *buf;
    uint64_t n;
    T_ASSERT(vkl_gguf_writer_to_memory(w, &buf, &n, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open_memory(buf, n, "v2.gguf", &g, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(g->version == 2 && g->n_tensors == 1 && !memcmp(g->tensors[0].data, data, sizeof(data)), "v2");
    T_ASSERT(g->data_offset % 32 == 0 && n == g->data_offset + 128, "layout");
    vkl_gguf_close(g);
    free(buf);
    vkl_gguf_writer_free(w);
    return 0;
}

static int test_writer_misuse(void) {
    vkl_err err = {0};
    float data[64] = {1};
    int64_t ne[2] = {32, 2};
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "a", VKL_TYPE_F32, 2, ne, data, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "a", VKL_TYPE_F32, 2, ne, data, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "twice"), "duplicate: %s", err.msg);
    vkl_err_clear(&err);
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "b", 4, 2, ne, data, &err) == VKL_ERR_INPUT, "type 4 is a gap");
    vkl_err_clear(&err);
    int64_t ne_bad[2] = {33, 1};
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "c", VKL_TYPE_Q8_0, 2, ne_bad, data, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "block"), "block size: %s", err.msg);
    vkl_err_clear(&err);
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "d", VKL_TYPE_F32, 5, ne, data, &err) == VKL_ERR_INPUT, "n_dims 5");
    vkl_err_clear(&err);
    int64_t ne_neg[1] = {-1};
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "e", VKL_TYPE_F32, 1, ne_neg, data, &err) == VKL_ERR_INPUT, "ne -1");
    vkl_err_clear(&err);
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "f", VKL_TYPE_F32, 1, ne, NULL, &err) == VKL_OK, "deferred");
    uint8_t *buf = NULL;
    uint64_t n;
    T_ASSERT(vkl_gguf_writer_to_memory(w, &buf, &n, &err) == VKL_ERR_INPUT && strstr(err.msg, "no data") && !buf,
             "missing data: %s", err.msg);
    vkl_gguf_writer_free(w);

    /* misuse of the void setters surfaces at write time */
    vkl_err_clear(&err);
    w = vkl_gguf_writer_new(3, 0);
    uint8_t bools[2] = {1, 7};
    vkl_gguf_writer_set_arr(w, "b", VKL_GGUF_BOOL, bools, 2);
    T_ASSERT(vkl_gguf_writer_to_memory(w, &buf, &n, &err) == VKL_ERR_INPUT && strstr(err.msg, "bool"), "%s", err.msg);
    vkl_gguf_writer_free(w);
    vkl_err_clear(&err);
    w = vkl_gguf_writer_new(1, 0);
    T_ASSERT(vkl_gguf_writer_to_memory(w, &buf, &n, &err) == VKL_ERR_INPUT && strstr(err.msg, "version"), "v1");
    vkl_gguf_writer_free(w);
    vkl_err_clear(&err);
    w = vkl_gguf_writer_new(3, 48);
    T_ASSERT(vkl_gguf_writer_to_memory(w, &buf, &n, &err) == VKL_ERR_INPUT && strstr(err.msg, "power of two"),
             "alignment 48");
    vkl_gguf_writer_free(w);
    vkl_err_clear(&err);
    w = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_u64(w, "general.alignment", 64);
    T_ASSERT(vkl_gguf_writer_to_memory(w, &buf, &n, &err) == VKL_ERR_INPUT && strstr(err.msg, "uint32"),
             "alignment as u64: %s", err.msg);
    vkl_gguf_writer_free(w);
    return 0;
}

static bool dir_has_temp_files(const char *dir) {
    DIR *d = opendir(dir);
    bool found = false;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".tmp-")) found = true;
    if (d) closedir(d);
    return found;
}

static int test_atomic_write(void) {
    vkl_err err = {0};
    float data[256];
    for (int i = 0; i < 256; i++) data[i] = t_rng_uniform(-1, 1);
    int64_t ne[2] = {64, 4};

    /* no such directory: fails with the path in the message, creates nothing */
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "x", VKL_TYPE_F32, 2, ne, data, &err) == VKL_OK, "%s", err.msg);
    char bad[512];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/out.gguf", t_tmpdir());
    T_ASSERT(vkl_gguf_writer_write(w, bad, &err) == VKL_ERR_INPUT, "write into a missing directory: an input error");
    T_ASSERT(strstr(err.msg, bad) && strstr(err.msg, "folder does not exist"), "message names the path and why: %s",
             err.msg);
    vkl_gguf_writer_free(w);

    /* a good file */
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/atomic", t_tmpdir());
    T_ASSERT(mkdir(dir, 0755) == 0, "mkdir");
    snprintf(path, sizeof(path), "%s/model.gguf", dir);
    w = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_str(w, "general.name", "old");
    vkl_err_clear(&err);
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "x", VKL_TYPE_F32, 2, ne, data, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_gguf_writer_write(w, path, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf_writer_free(w);
    uint64_t n_old;
    uint8_t *old = read_all(path, &n_old);
    T_ASSERT(old, "read back");

    /* a write that fails half-way (the file size limit hits while tensor data streams out) must leave the old
     * file as it was and no temporary file behind; run in a child so the limit does not leak */
#ifdef _WIN32
    printf("    skipped on Windows: the half-way failure needs fork and RLIMIT_FSIZE\n");
    uint64_t n_now;
    uint8_t *now;
#else
    static float big[1 << 16];
    for (size_t i = 0; i < VKL_ARRAY_LEN(big); i++) big[i] = (float)i;
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0, "fork");
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &rl);
        vkl_err e2 = {0};
        vkl_gguf_writer *w3 = vkl_gguf_writer_new(3, 0);
        vkl_gguf_writer_set_str(w3, "general.name", "new");
        int64_t nb[1] = {(int64_t)VKL_ARRAY_LEN(big)};
        vkl_gguf_writer_add_tensor(w3, "big", VKL_TYPE_F32, 1, nb, big, &e2);
        vkl_status st = vkl_gguf_writer_write(w3, path, &e2);
        _exit(st == VKL_ERR_RUNTIME && strstr(e2.msg, path) ? 0 : 3);
    }
    int status;
    T_ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
             "the failing write was not reported (status %d)", status);
    uint64_t n_now;
    uint8_t *now = read_all(path, &n_now);
    T_ASSERT(now && n_now == n_old && !memcmp(now, old, (size_t)n_old), "old file changed");
    T_ASSERT(!dir_has_temp_files(dir), "temporary file left behind");
    free(now);
#endif

    /* a writer with an error detected before any I/O also leaves it alone */
    w = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_arr(w, "bad", VKL_GGUF_STRING, NULL, 3);
    vkl_err_clear(&err);
    T_ASSERT(vkl_gguf_writer_write(w, path, &err) == VKL_ERR_INPUT, "bad writer");
    vkl_gguf_writer_free(w);
    now = read_all(path, &n_now);
    T_ASSERT(now && n_now == n_old && !memcmp(now, old, (size_t)n_old), "old file changed");
    free(now);

    /* a good write replaces it */
    w = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_str(w, "general.name", "new");
    vkl_err_clear(&err);
    T_ASSERT(vkl_gguf_writer_write(w, path, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf_writer_free(w);
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open(path, &g, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(!strcmp(vkl_gguf_get_str(g, "general.name"), "new") && g->n_tensors == 0, "replaced");
    vkl_gguf_close(g);
    T_ASSERT(!dir_has_temp_files(dir), "temporary file left behind");
    free(old);
    return 0;
}

/* ---- vklora info ---- */

static int test_cli_info_stories(void) {
    char cmd[1024], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof(cmd), "'%s' info --json '%s'", t_vklora_bin(), t_data_path("models/stories260K.gguf"));
    int rc = t_run(cmd, &out, &errs);
    T_ASSERT(rc == 0, "exit %d: %s", rc, errs ? errs : "");
    cJSON *j = cJSON_Parse(out);
    T_ASSERT(j, "stdout is not JSON: %.200s", out ? out : "");
    T_ASSERT(!strcmp(cJSON_GetObjectItem(j, "architecture")->valuestring, "llama"), "arch");
    T_ASSERT(t_json_num(j, "gguf_version") == 3 && t_json_num(j, "n_tensors") == 48 &&
                 t_json_num(j, "n_params") == 292800,
             "counts");
    T_ASSERT(t_json_num(j, "hparams.n_layer") == 5 && t_json_num(j, "hparams.n_embd") == 64 &&
                 t_json_num(j, "hparams.n_head") == 8 &&
                 t_json_num(j, "hparams.n_head_kv") == 4 && t_json_num(j, "hparams.n_ff") == 172 &&
                 t_json_num(j, "hparams.n_ctx_train") == 2048 && t_json_num(j, "hparams.vocab_size") == 512,
             "hparams");
    T_ASSERT(t_json_num(j, "hparams.rope_freq_base") == 10000 && t_json_num(j, "hparams.rope_dim") == 8,
             "rope defaults");
    T_ASSERT(fabs(t_json_num(j, "hparams.rms_eps") - 1e-5) < 1e-10, "eps");
    T_ASSERT(t_json_num(j, "tokenizer.vocab_size") == 512 && t_json_num(j, "tokenizer.bos_id") == 1 &&
                 t_json_num(j, "tokenizer.eos_id") == 2 && t_json_num(j, "tokenizer.unk_id") == 0,
             "tokenizer ids");
    cJSON *tok = cJSON_GetObjectItem(j, "tokenizer");
    T_ASSERT(!strcmp(cJSON_GetObjectItem(tok, "model")->valuestring, "llama"), "tokenizer model");
    T_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(tok, "sep_id")), "0xFFFFFFFF means no separator token");
    T_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(tok, "chat_template")), "no chat template");
    T_ASSERT(t_json_num(j, "types.f32.count") == 48 && t_json_num(j, "types.f32.bytes") == 292800 * 4, "types");
    T_ASSERT(t_json_num(j, "metadata_keys") == 19, "keys");
    cJSON *ts = cJSON_GetObjectItem(j, "tensors");
    T_ASSERT(cJSON_GetArraySize(ts) == 48, "tensor table");
    cJSON *t0 = cJSON_GetArrayItem(ts, 0);
    T_ASSERT(!strcmp(cJSON_GetObjectItem(t0, "name")->valuestring, "token_embd.weight") &&
                 cJSON_GetArraySize(cJSON_GetObjectItem(t0, "shape")) == 2 &&
                 cJSON_GetArrayItem(cJSON_GetObjectItem(t0, "shape"), 1)->valuedouble == 512 &&
                 !strcmp(cJSON_GetObjectItem(t0, "type")->valuestring, "f32") && t_json_num(t0, "bytes") == 131072,
             "tensor 0");
    cJSON_Delete(j);
    free(out);
    free(errs);

    /* --no-tensors drops the table; text mode names the figures */
    snprintf(cmd, sizeof(cmd), "'%s' info --json --no-tensors '%s'", t_vklora_bin(),
             t_data_path("models/stories260K.gguf"));
    T_ASSERT(t_run(cmd, &out, &errs) == 0, "--no-tensors");
    j = cJSON_Parse(out);
    T_ASSERT(j && !cJSON_GetObjectItem(j, "tensors") && t_json_num(j, "n_tensors") == 48, "--no-tensors output");
    cJSON_Delete(j);
    free(out);
    free(errs);
    snprintf(cmd, sizeof(cmd), "'%s' info '%s'", t_vklora_bin(), t_data_path("models/stories260K.gguf"));
    T_ASSERT(t_run(cmd, &out, &errs) == 0, "text");
    T_ASSERT(out && strstr(out, "llama") && strstr(out, "292800") && strstr(out, "blk.4.ffn_down.weight"),
             "text output: %.300s", out ? out : "");
    free(out);
    free(errs);
    return 0;
}

static int test_cli_info_vocab(void) {
    static const double vocab[] = {50257, 128256, 32000, 151936};
    for (size_t f = 0; f < VKL_ARRAY_LEN(vocab_files); f++) {
        char cmd[1024], *out = NULL, *errs = NULL;
        snprintf(cmd, sizeof(cmd), "'%s' info --json '%s'", t_vklora_bin(), t_data_path(vocab_files[f]));
        int rc = t_run(cmd, &out, &errs);
        T_ASSERT(rc == 0, "%s: exit %d: %s", vocab_files[f], rc, errs ? errs : "");
        cJSON *j = cJSON_Parse(out);
        T_ASSERT(j, "%s: not JSON", vocab_files[f]);
        T_ASSERT(t_json_num(j, "n_tensors") == 0 && t_json_num(j, "n_params") == 0, "%s", vocab_files[f]);
        T_ASSERT(t_json_num(j, "tokenizer.vocab_size") == vocab[f] && t_json_num(j, "hparams.vocab_size") == vocab[f],
                 "%s: vocab", vocab_files[f]);
        cJSON_Delete(j);
        free(out);
        free(errs);
        snprintf(cmd, sizeof(cmd), "'%s' info '%s'", t_vklora_bin(), t_data_path(vocab_files[f]));
        T_ASSERT(t_run(cmd, &out, &errs) == 0, "%s: text mode", vocab_files[f]);
        free(out);
        free(errs);
    }
    /* the qwen2 vocabulary carries a chat template, the spm one add_bos */
    char cmd[1024], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof(cmd), "'%s' info --json '%s'", t_vklora_bin(), t_data_path("vocab/ggml-vocab-qwen2.gguf"));
    T_ASSERT(t_run(cmd, &out, &errs) == 0, "qwen2");
    cJSON *j = cJSON_Parse(out);
    T_ASSERT(j && cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "tokenizer"), "chat_template")), "template");
    T_ASSERT(t_json_num(j, "hparams.rope_freq_base") == 1e6 && t_json_num(j, "tokenizer.pad_id") == 151643,
             "qwen2 figures");
    cJSON_Delete(j);
    free(out);
    free(errs);
    return 0;
}

static int test_cli_info_usage(void) {
    char cmd[1024], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof(cmd), "'%s' info --help", t_vklora_bin());
    T_ASSERT(t_run(cmd, &out, &errs) == 0 && out && strstr(out, "--no-tensors"), "help");
    free(out);
    free(errs);
    snprintf(cmd, sizeof(cmd), "'%s' info", t_vklora_bin());
    T_ASSERT(t_run(cmd, &out, &errs) == 2 && errs && *errs, "no file");
    free(out);
    free(errs);
    snprintf(cmd, sizeof(cmd), "'%s' info --bogus x.gguf", t_vklora_bin());
    T_ASSERT(t_run(cmd, &out, &errs) == 2 && errs && strstr(errs, "--bogus"), "bad option");
    free(out);
    free(errs);
    snprintf(cmd, sizeof(cmd), "'%s' info --json /nonexistent/model.gguf", t_vklora_bin());
    T_ASSERT(t_run(cmd, &out, &errs) == 2 && errs && strstr(errs, "/nonexistent/model.gguf"), "missing: %s",
             errs ? errs : "");
    T_ASSERT(!out || !*out, "nothing on stdout on failure");
    free(out);
    free(errs);
    return 0;
}

const vkl_test_case vkl_tests_gguf[] = {
    {"gguf/stories260K", test_stories},
    {"gguf/vocab_files", test_vocab_files},
    {"gguf/roundtrip_stories260K", test_roundtrip_stories},
    {"gguf/roundtrip_vocab", test_roundtrip_vocab},
    {"gguf/writer_all_types", test_writer_all_types},
    {"gguf/writer_version2", test_writer_version2},
    {"gguf/writer_misuse", test_writer_misuse},
    {"gguf/atomic_write", test_atomic_write},
    {"gguf/cli_info_stories260K", test_cli_info_stories},
    {"gguf/cli_info_vocab", test_cli_info_vocab},
    {"gguf/cli_info_usage", test_cli_info_usage},
    {NULL, NULL},
};
