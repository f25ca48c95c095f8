/* Malformed GGUF files: truncations at every header byte, corrupted fields patched into a valid writer-built file
 * and into stories260K, and hand-built bombs. Each must fail with VKL_ERR_INPUT and a message naming the file and a
 * byte offset; a few also go through `vklora info` (exit 2, no crash). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vklora/gguf.h"
#include "vklora/quant.h"

/* Open `buf` in memory and require a clean input error naming `name`, a byte offset and (if given) `want`.
 * The bytes go into an allocation of exactly n bytes so that a sanitizer build catches any read past the end. */
static int expect_bad(const uint8_t *buf, uint64_t n, const char *name, const char *want) {
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    uint8_t *exact = malloc(n ? n : 1);
    if (n) memcpy(exact, buf, n);
    vkl_status st = vkl_gguf_open_memory(buf ? exact : NULL, n, name, &g, &err);
    free(exact);
    if (st == VKL_OK) vkl_gguf_close(g);
    if (getenv("VKL_TEST_VERBOSE")) fprintf(stderr, "    %s\n", err.msg);
    T_ASSERT(st == VKL_ERR_INPUT, "%s (%llu bytes) was accepted (status %d)", name, (unsigned long long)n, st);
    T_ASSERT(g == NULL, "%s: handle returned on failure", name);
    T_ASSERT(strstr(err.msg, "byte ") && strstr(err.msg, name), "%s: message lacks byte/name: %s", name, err.msg);
    T_ASSERT(!want || strstr(err.msg, want), "%s: expected '%s' in: %s", name, want, err.msg);
    return 0;
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* The valid base file: a handful of kv types and three tensors of different types. */
typedef struct {
    uint8_t *buf;
    uint64_t size, data_offset;
    uint64_t kv_off[8];  /* file offset of each key's length field */
    uint64_t val_off[8]; /* file offset of each value (after the type word) */
} base_file;

enum { KV_ARCH, KV_U32, KV_BOOL, KV_STRS, KV_NESTED, KV_F32, KV_ALIGN, N_KV };

static int make_base(base_file *b, uint32_t alignment) {
    vkl_err err = {0};
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_str(w, "general.architecture", "llama");
    vkl_gguf_writer_set_u32(w, "test.u32", 7);
    vkl_gguf_writer_set_bool(w, "test.bool", true);
    static const char *const strs[] = {"a", "bc", "def"};
    vkl_gguf_writer_set_arr_str(w, "test.strs", strs, 3);
    static const int32_t i12[] = {1, 2}, i3[] = {3};
    static const vkl_gguf_value inner[] = {{.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_INT32, 2, i12}},
                                           {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_INT32, 1, i3}}};
    vkl_gguf_value nested = {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_ARRAY, 2, inner}};
    vkl_gguf_writer_set_value(w, "test.nested", &nested);
    vkl_gguf_writer_set_f32(w, "test.f32", 1.5f);
    vkl_gguf_writer_set_u32(w, "general.alignment", alignment);
    static float fa[24], fb[2 * 34 / 4 + 1], fc[8];
    for (int i = 0; i < 24; i++) fa[i] = t_rng_uniform(-1, 1);
    for (size_t i = 0; i < VKL_ARRAY_LEN(fb); i++) fb[i] = t_rng_uniform(-1, 1);
    for (int i = 0; i < 8; i++) fc[i] = t_rng_uniform(-1, 1);
    int64_t na[2] = {8, 3}, nb[2] = {32, 2}, nc[1] = {8}; /* t.c ends before the 32-byte boundary */
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "t.a", VKL_TYPE_F32, 2, na, fa, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "t.b", VKL_TYPE_Q8_0, 2, nb, fb, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_gguf_writer_add_tensor(w, "t.c", VKL_TYPE_F16, 1, nc, fc, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_gguf_writer_to_memory(w, &b->buf, &b->size, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf_writer_free(w);

    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open_memory(b->buf, b->size, "base.gguf", &g, &err) == VKL_OK, "base file: %s", err.msg);
    T_ASSERT(g->n_kv == N_KV && g->n_tensors == 3, "base layout");
    for (int i = 0; i < N_KV; i++) {
        b->kv_off[i] = g->kv[i].file_offset;
        b->val_off[i] = g->kv[i].file_offset + 8 + g->kv[i].key.len + 4;
    }
    b->data_offset = g->data_offset;
    vkl_gguf_close(g);
    return 0;
}

/* File offset of the tensor info of `name` (its length field), found by its encoded name. */
static uint64_t tensor_info(const base_file *b, const char *name) {
    uint8_t pat[64];
    uint64_t len = strlen(name);
    memcpy(pat, &len, 8);
    memcpy(pat + 8, name, len);
    const uint8_t *p = memmem(b->buf, b->data_offset, pat, 8 + len);
    return p ? (uint64_t)(p - b->buf) : 0;
}

/* Fields of a tensor info at `ti` for a name of `len` bytes and `nd` dims. */
#define TI_NDIMS(ti, len) ((ti) + 8 + (len))
#define TI_NE(ti, len, d) ((ti) + 8 + (len) + 4 + 8 * (d))
#define TI_TYPE(ti, len, nd) ((ti) + 8 + (len) + 4 + 8 * (nd))
#define TI_OFFSET(ti, len, nd) ((ti) + 8 + (len) + 4 + 8 * (nd) + 4)

static int test_truncated_header(void) {
    base_file b;
    if (make_base(&b, 32)) return 1;
    /* every prefix that ends before the data section starts */
    for (uint64_t k = 0; k < b.data_offset; k++)
        if (expect_bad(b.buf, k, "trunc.gguf", NULL)) {
            fprintf(stderr, "    at truncation length %llu\n", (unsigned long long)k);
            free(b.buf);
            return 1;
        }
    free(b.buf);
    return 0;
}

static int test_truncated_data(void) {
    base_file b;
    if (make_base(&b, 32)) return 1;
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open_memory(b.buf, b.size, "base.gguf", &g, &err) == VKL_OK, "%s", err.msg);
    /* cut inside each tensor: first byte, middle, last byte */
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const vkl_gguf_tensor *t = &g->tensors[i];
        uint64_t start = g->data_offset + t->offset;
        uint64_t cuts[3] = {start, start + t->size / 2, start + t->size - 1};
        for (int c = 0; c < 3; c++)
            if (expect_bad(b.buf, cuts[c], "trunc-data.gguf", "past the end")) {
                vkl_gguf_close(g);
                free(b.buf);
                return 1;
            }
    }
    /* the trailing padding after the last tensor carries no data: a file without it is still complete */
    const vkl_gguf_tensor *last = &g->tensors[g->n_tensors - 1];
    vkl_gguf *g2 = NULL;
    T_ASSERT(vkl_gguf_open_memory(b.buf, g->data_offset + last->offset + last->size, "nopad.gguf", &g2, &err) ==
                 VKL_OK, "%s", err.msg);
    vkl_gguf_close(g2);
    vkl_gguf_close(g);
    free(b.buf);
    return 0;
}

/* One corruption: patch a copy of the base file and check the error mentions `want`. */
typedef struct {
    const char *name, *want;
    uint64_t off;
    int width; /* 1, 4 or 8 bytes */
    uint64_t value;
} patch;

static int test_patched_fields(void) {
    base_file b;
    if (make_base(&b, 32)) return 1;
    uint64_t ta = tensor_info(&b, "t.a"), tb = tensor_info(&b, "t.b"), tc = tensor_info(&b, "t.c");
    T_ASSERT(ta && tb && tc, "tensor infos not found");
    const uint64_t big = 1ull << 63;
    const patch patches[] = {
        {"magic.gguf", "magic", 0, 1, 'X'},
        {"version1.gguf", "version 1", 4, 4, 1},
        {"version99.gguf", "version 99", 4, 4, 99},
        {"bigendian.gguf", "big-endian", 4, 4, 0x03000000},
        {"ntensors.gguf", "tensors cannot fit", 8, 8, big},
        {"nkv.gguf", "metadata entries cannot fit", 16, 8, big},
        {"nkv-plus1.gguf", NULL, 16, 8, N_KV + 1},
        {"keylen.gguf", "length", b.kv_off[KV_ARCH], 8, big},
        {"strlen.gguf", "runs past the end", b.val_off[KV_ARCH], 8, 1ull << 62},
        {"valtype.gguf", "unknown value type 13", b.val_off[KV_U32] - 4, 4, 13},
        {"valtype-max.gguf", "unknown value type", b.val_off[KV_U32] - 4, 4, 0xFFFFFFFFu},
        {"bool7.gguf", "bool value 7", b.val_off[KV_BOOL], 1, 7},
        {"arrtype.gguf", "unknown array element type 77", b.val_off[KV_STRS], 4, 77},
        {"arrcount.gguf", "cannot fit", b.val_off[KV_STRS] + 4, 8, 1ull << 62},
        {"arrstrlen.gguf", "runs past the end", b.val_off[KV_STRS] + 12, 8, 1ull << 40},
        {"nestedcount.gguf", "cannot fit", b.val_off[KV_NESTED] + 12 + 4, 8, big},
        {"align0.gguf", "power of two", b.val_off[KV_ALIGN], 4, 0},
        {"align3.gguf", "power of two", b.val_off[KV_ALIGN], 4, 3},
        {"aligntype.gguf", "expected uint32", b.val_off[KV_ALIGN] - 4, 4, VKL_GGUF_INT32},
        {"align1024.gguf", NULL, b.val_off[KV_ALIGN], 4, 1024}, /* moves the data section: tensors no longer fit */
        {"dupkey.gguf", "duplicate key 'test.f32'", b.kv_off[KV_U32] + 8 + 5, 1, 'f'}, /* test.u32 -> test.f32 */
        {"ndims0.gguf", "n_dims 0", TI_NDIMS(ta, 3), 4, 0},
        {"ndims5.gguf", "n_dims 5", TI_NDIMS(ta, 3), 4, 5},
        {"ne-negative.gguf", "non-negative", TI_NE(ta, 3, 0), 8, (uint64_t)-8},
        {"ne-overflow.gguf", "overflows", TI_NE(tb, 3, 1), 8, 1ull << 62},
        {"ne-blocksize.gguf", "block size", TI_NE(tb, 3, 0), 8, 31},
        {"type99.gguf", "unknown ggml type 99", TI_TYPE(ta, 3, 2), 4, 99},
        {"type4.gguf", "unknown ggml type 4", TI_TYPE(tc, 3, 1), 4, 4},
        {"offset-past-end.gguf", "past the end", TI_OFFSET(tc, 3, 1), 8, 1ull << 40},
        {"offset-wrap.gguf", "past the end", TI_OFFSET(tc, 3, 1), 8, UINT64_MAX - 31},
        {"misaligned.gguf", "not aligned", TI_OFFSET(tb, 3, 2), 8, 97},
        {"overlap.gguf", "overlaps", TI_OFFSET(tb, 3, 2), 8, 64},
        {"gap.gguf", "leaves a gap of 32 bytes", TI_OFFSET(tb, 3, 2), 8, 128}, /* llama.cpp refuses gaps */
        {"ne-zero.gguf", "ne[1] = 0", TI_NE(ta, 3, 1), 8, 0},
        {"ne-zero0.gguf", "ne[0] = 0", TI_NE(tc, 3, 0), 8, 0},
        {"dupname.gguf", "duplicate name 't.a'", tb + 8 + 2, 1, 'a'},
        {"name-nul.gguf", "NUL byte", tb + 8 + 1, 1, 0},
        {"key-nul.gguf", "NUL byte", b.kv_off[KV_U32] + 8 + 4, 1, 0},
        {"namelen.gguf", "runs past the end", tc, 8, 1ull << 50},
    };
    T_ASSERT(VKL_ARRAY_LEN(patches) >= 20, "coverage");
    uint8_t *copy = malloc(b.size);
    for (size_t i = 0; i < VKL_ARRAY_LEN(patches); i++) {
        const patch *p = &patches[i];
        memcpy(copy, b.buf, b.size);
        if (p->width == 1) copy[p->off] = (uint8_t)p->value;
        else if (p->width == 4) put_u32(copy + p->off, (uint32_t)p->value);
        else put_u64(copy + p->off, p->value);
        if (expect_bad(copy, b.size, p->name, p->want)) {
            free(copy);
            free(b.buf);
            return 1;
        }
    }
    /* the unpatched copy is fine (the patches above are what breaks it) */
    memcpy(copy, b.buf, b.size);
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open_memory(copy, b.size, "copy.gguf", &g, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf_close(g);
    /* a bool element inside an array */
    free(copy);
    free(b.buf);

    static const uint8_t bools[3] = {1, 0, 1};
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_arr(w, "b", VKL_GGUF_BOOL, bools, 3);
    uint8_t *buf;
    uint64_t n;
    T_ASSERT(vkl_gguf_writer_to_memory(w, &buf, &n, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf_writer_free(w);
    buf[n - 2] = 7;
    int rc = expect_bad(buf, n, "boolarr.gguf", "bool array element 1 is 7");
    free(buf);
    return rc;
}

/* Raw builders for shapes the writer refuses to produce. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} raw;

static void raw_put(raw *r, const void *src, size_t n) {
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2;
        r->p = realloc(r->p, r->cap);
    }
    memcpy(r->p + r->n, src, n);
    r->n += n;
}
static void raw_u32(raw *r, uint32_t v) { raw_put(r, &v, 4); }
static void raw_u64(raw *r, uint64_t v) { raw_put(r, &v, 8); }
static void raw_str(raw *r, const char *s) {
    raw_u64(r, strlen(s));
    raw_put(r, s, strlen(s));
}
static void raw_header(raw *r, uint64_t n_tensors, uint64_t n_kv) {
    raw_put(r, "GGUF", 4);
    raw_u32(r, 3);
    raw_u64(r, n_tensors);
    raw_u64(r, n_kv);
}

/* An array nested `depth` levels deep (one element per level), ending in an empty uint8 array. */
static raw nested_file(int depth) {
    raw r = {0};
    raw_header(&r, 0, 1);
    raw_str(&r, "bomb");
    raw_u32(&r, VKL_GGUF_ARRAY);
    for (int i = 1; i < depth; i++) {
        raw_u32(&r, VKL_GGUF_ARRAY);
        raw_u64(&r, 1);
    }
    raw_u32(&r, VKL_GGUF_UINT8);
    raw_u64(&r, 0);
    return r;
}

/* A tensor name of `len` bytes (ggml holds at most 63). */
static raw long_name_file(size_t len) {
    raw r = {0};
    raw_header(&r, 1, 0);
    char name[128];
    memset(name, 'x', len);
    name[len] = 0;
    raw_str(&r, name);
    raw_u32(&r, 1);
    raw_u64(&r, 8);
    raw_u32(&r, 0);
    raw_u64(&r, 0);
    static const uint8_t zeros[64];
    raw_put(&r, zeros, (32 - r.n % 32) % 32);
    raw_put(&r, zeros, 32);
    return r;
}

static int test_long_name(void) {
    raw ok = long_name_file(63), bad = long_name_file(64);
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open_memory(ok.p, ok.n, "name63.gguf", &g, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf_close(g);
    int rc = expect_bad(bad.p, bad.n, "name64.gguf", "name of 64 bytes");
    free(ok.p);
    free(bad.p);
    return rc;
}

static int test_bombs(void) {
    /* depth bomb: rejected without deep recursion; the limit itself (8) is accepted */
    raw r = nested_file(100000);
    int rc = expect_bad(r.p, r.n, "depth.gguf", "nested");
    free(r.p);
    if (rc) return 1;
    r = nested_file(9);
    rc = expect_bad(r.p, r.n, "depth9.gguf", "nested");
    free(r.p);
    if (rc) return 1;
    r = nested_file(8);
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open_memory(r.p, r.n, "depth8.gguf", &g, &err) == VKL_OK, "%s", err.msg);
    vkl_gguf_close(g);
    free(r.p);

    /* a million empty nested arrays is fine size-wise (bounded by the file) but an array count one past what the
     * bytes can hold is refused before any allocation */
    r = (raw){0};
    raw_header(&r, 0, 1);
    raw_str(&r, "many");
    raw_u32(&r, VKL_GGUF_ARRAY);
    raw_u32(&r, VKL_GGUF_ARRAY);
    raw_u64(&r, 1001);
    for (int i = 0; i < 1000; i++) {
        raw_u32(&r, VKL_GGUF_UINT8);
        raw_u64(&r, 0);
    }
    rc = expect_bad(r.p, r.n, "many.gguf", "expected at most 1000");
    free(r.p);
    if (rc) return 1;

    /* empty and tiny files */
    static const uint8_t gg[3] = {'G', 'G', 'U'};
    if (expect_bad(gg, 0, "empty.gguf", "magic")) return 1;
    if (expect_bad(gg, 3, "three.gguf", "magic")) return 1;
    if (expect_bad(NULL, 0, "null.gguf", "magic")) return 1;

    /* n_tensors exactly one more than the infos present: the next "info" is the padding */
    r = (raw){0};
    raw_header(&r, 2, 0);
    raw_str(&r, "x");
    raw_u32(&r, 1);
    raw_u64(&r, 8);
    raw_u32(&r, VKL_TYPE_F32);
    raw_u64(&r, 0);
    while (r.n % 32) raw_put(&r, "", 1);
    for (int i = 0; i < 8; i++) raw_u32(&r, 0x3f800000);
    rc = expect_bad(r.p, r.n, "ntensors-plus1.gguf", NULL);
    free(r.p);
    if (rc) return 1;

    /* element count overflow spread over all four dims, each small enough alone */
    r = (raw){0};
    raw_header(&r, 1, 0);
    raw_str(&r, "x");
    raw_u32(&r, 4);
    for (int d = 0; d < 4; d++) raw_u64(&r, 1ull << 16);
    raw_u32(&r, VKL_TYPE_F32);
    raw_u64(&r, 0);
    while (r.n % 32) raw_put(&r, "", 1);
    rc = expect_bad(r.p, r.n, "nel-overflow.gguf", "overflows");
    free(r.p);
    if (rc) return 1;

    /* byte size overflow with an element count that fits: 2^62 f64 elements are 2^65 bytes */
    r = (raw){0};
    raw_header(&r, 1, 0);
    raw_str(&r, "x");
    raw_u32(&r, 1);
    raw_u64(&r, 1ull << 62);
    raw_u32(&r, VKL_TYPE_F64);
    raw_u64(&r, 0);
    while (r.n % 32) raw_put(&r, "", 1);
    rc = expect_bad(r.p, r.n, "size-overflow.gguf", "overflows");
    free(r.p);
    return rc;
}

static uint8_t *read_all(const char *path, uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)n);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (uint64_t)n;
    return buf;
}

static int test_stories_corrupted(void) {
    uint64_t n;
    uint8_t *orig = read_all(t_data_path("models/stories260K.gguf"), &n);
    T_ASSERT(orig, "read stories260K");
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    T_ASSERT(vkl_gguf_open_memory(orig, n, "stories260K.gguf", &g, &err) == VKL_OK, "%s", err.msg);
    uint64_t data_offset = g->data_offset;
    /* every truncation inside the header (kv + tensor infos + padding) */
    for (uint64_t k = 0; k < data_offset; k++)
        if (expect_bad(orig, k, "stories260K-trunc.gguf", NULL)) {
            fprintf(stderr, "    at truncation length %llu\n", (unsigned long long)k);
            return 1;
        }
    /* and a few inside the data */
    uint64_t cuts[] = {data_offset + 1, data_offset + 131072, n / 2, n - 4, n - 1};
    for (size_t c = 0; c < VKL_ARRAY_LEN(cuts); c++)
        if (expect_bad(orig, cuts[c], "stories260K-trunc.gguf", "past the end")) return 1;

    uint8_t *copy = malloc(n);
    /* one more tensor than there are infos, and a bogus type on the last tensor */
    memcpy(copy, orig, n);
    put_u64(copy + 8, 49);
    if (expect_bad(copy, n, "stories260K-49.gguf", NULL)) return 1;
    memcpy(copy, orig, n);
    const vkl_gguf_tensor *last = &g->tensors[47];
    uint64_t type_at = data_offset; /* find the last info: name, n_dims, ne, type, offset just before padding */
    {
        uint8_t pat[64];
        memcpy(pat, &last->name.len, 8);
        memcpy(pat + 8, last->name.str, last->name.len);
        const uint8_t *p = memmem(orig, data_offset, pat, 8 + last->name.len);
        T_ASSERT(p, "last tensor info");
        type_at = (uint64_t)(p - orig) + 8 + last->name.len + 4 + 8 * last->n_dims;
    }
    put_u32(copy + type_at, 99);
    if (expect_bad(copy, n, "stories260K-type.gguf", "unknown ggml type 99")) return 1;
    memcpy(copy, orig, n);
    put_u64(copy + type_at + 4, n); /* offset far past the data */
    if (expect_bad(copy, n, "stories260K-offset.gguf", "past the end")) return 1;
    memcpy(copy, orig, n);
    put_u64(copy + type_at + 4, g->tensors[46].offset); /* on top of the previous tensor */
    if (expect_bad(copy, n, "stories260K-overlap.gguf", "overlaps")) return 1;
    free(copy);
    vkl_gguf_close(g);
    free(orig);
    return 0;
}

/* A few bad files through the CLI: clean exit 2 with a message, never a signal. */
static int test_cli_malformed(void) {
    base_file b;
    if (make_base(&b, 32)) return 1;
    uint64_t tb = tensor_info(&b, "t.b");
    struct {
        const char *file;
        uint64_t size, off;
        uint64_t value;
        int width;
    } cases[] = {
        {"cli-trunc.gguf", 40, 0, 0, 0},
        {"cli-magic.gguf", b.size, 0, 'Y', 1},
        {"cli-nkv.gguf", b.size, 16, 1ull << 63, 8},
        {"cli-overlap.gguf", b.size, TI_OFFSET(tb, 3, 2), 64, 8},
        {"cli-gap.gguf", b.size, TI_OFFSET(tb, 3, 2), 128, 8},
        {"cli-data.gguf", b.size - 40, 0, 0, 0},
        {"cli-empty.gguf", 0, 0, 0, 0},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(cases); i++) {
        char path[512], cmd[1024], *out = NULL, *errs = NULL;
        snprintf(path, sizeof(path), "%s/%s", t_tmpdir(), cases[i].file);
        uint8_t *copy = malloc(b.size);
        memcpy(copy, b.buf, b.size);
        if (cases[i].width == 1) copy[cases[i].off] = (uint8_t)cases[i].value;
        else if (cases[i].width == 8) put_u64(copy + cases[i].off, cases[i].value);
        FILE *f = fopen(path, "wb");
        T_ASSERT(f && fwrite(copy, 1, cases[i].size, f) == cases[i].size && fclose(f) == 0, "write %s", path);
        free(copy);
        for (int json = 0; json < 2; json++) {
            snprintf(cmd, sizeof(cmd), "'%s' info %s'%s'", t_vklora_bin(), json ? "--json " : "", path);
            int rc = t_run(cmd, &out, &errs);
            T_ASSERT(rc == 2, "%s: exit %d (want 2)%s", cases[i].file, rc, rc >= 128 ? " - killed by a signal" : "");
            T_ASSERT(errs && strstr(errs, cases[i].file) && strstr(errs, "byte"), "%s: stderr: %s", cases[i].file,
                     errs ? errs : "(none)");
            T_ASSERT(!out || !*out, "%s: stdout not empty on failure", cases[i].file);
            free(out);
            free(errs);
        }
    }
    free(b.buf);
    return 0;
}

const vkl_test_case vkl_tests_gguf_malformed[] = {
    {"gguf_malformed/truncated_header", test_truncated_header},
    {"gguf_malformed/truncated_data", test_truncated_data},
    {"gguf_malformed/patched_fields", test_patched_fields},
    {"gguf_malformed/bombs", test_bombs},
    {"gguf_malformed/long_tensor_name", test_long_name},
    {"gguf_malformed/stories260K_corrupted", test_stories_corrupted},
    {"gguf_malformed/cli", test_cli_malformed},
    {NULL, NULL},
};
