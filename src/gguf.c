/* GGUF v2/v3 reader (validating, mmap or memory) and writer (in-memory layout, atomic temp-file + rename).
 * File layout (little-endian):
 *   "GGUF" u32 version, u64 n_tensors, u64 n_kv
 *   n_kv x { string key, u32 value_type, value }        string = u64 len + bytes (no NUL)
 *                                                       array  = u32 elem_type + u64 count + elements
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   zero padding to general.alignment (u32, default 32), then the data section; each tensor's offset is
 *   relative to the data section, a multiple of the alignment, and (as llama.cpp requires) exactly the previous
 *   tensor's end padded to the alignment: no gaps, no overlaps.
 * Every count read from the file is checked against the bytes that remain before anything is allocated, so
 * host memory stays within a small multiple of the file size whatever the file claims. */
#include "vklora/gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "vklora/quant.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader copies little-endian values straight from the file: a little-endian host is required"
#endif

/* Files in the wild nest arrays at most twice; the limit only has to stop a recursion bomb. */
/* ggml's GGML_MAX_NAME: a tensor name is at most 63 bytes. */
#define VKL_GGUF_MAX_NAME 64
#define MAX_ARRAY_DEPTH 8

static const char *const type_names[VKL_GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64",
};

/* Bytes of one scalar of each type in the file; 0 for string and array (variable). */
static const uint8_t scalar_size[VKL_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *vkl_gguf_type_name(vkl_gguf_type t) {
    return (unsigned)t < VKL_GGUF_TYPE_COUNT ? type_names[t] : "unknown";
}

/* Smallest encoding of one value of a type: bounds how many elements the remaining bytes can hold. */
static uint64_t min_value_size(vkl_gguf_type t) {
    if (t == VKL_GGUF_STRING) return 8;      /* length only */
    if (t == VKL_GGUF_ARRAY) return 4 + 8;   /* elem type + count, no elements */
    return scalar_size[t];
}

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; } /* caller checks overflow */

/* ---------------------------------------------------------------------------------------------------------
 * Reader internals
 * ------------------------------------------------------------------------------------------------------- */

/* Bump allocator for strings and decoded arrays: one free at close, no per-value bookkeeping. */
typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char mem[];
} arena_chunk;

typedef struct {
    arena_chunk *head;
} arena;

/* `align` is a power of two <= 16: strings take 1, so a vocabulary of short tokens packs tightly. */
static void *arena_alloc(arena *a, size_t n, size_t align) {
    if (a->head) a->head->used = (a->head->used + align - 1) & ~(align - 1);
    if (!a->head || a->head->used > a->head->cap || a->head->cap - a->head->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        arena_chunk *c = vkl_malloc(sizeof(*c) + cap);
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    void *p = a->head->mem + a->head->used;
    a->head->used += n;
    return p;
}

static void arena_free(arena *a) {
    for (arena_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

typedef struct {
    arena ar;
    bool mapped;                  /* map is our mmap (unmap on close) rather than a caller's buffer */
    uint8_t *owned_map;           /* a writer view's serialized header (freed on close) */
    uint64_t view_data_size;      /* a writer view: the data section's size, whose bytes are elsewhere */
    const vkl_gguf_str **kv_sorted; /* keys sorted for duplicate detection and bsearch lookups */
    const vkl_gguf_str **t_sorted;  /* tensor names, same */
    uint64_t *t_info_offset;        /* file offset of each tensor info, for messages */
} gguf_priv;

typedef struct {
    const uint8_t *p;
    uint64_t size, pos;
    const char *name;
    vkl_err *err;
    arena *ar;
    const char *key; /* key being decoded, for messages; NULL outside the metadata */
} reader;

VKL_PRINTF(3, 4) static vkl_status rfail(reader *r, uint64_t off, const char *fmt, ...) {
    char what[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (r->key)
        return vkl_err_set(r->err, VKL_ERR_INPUT, "gguf: %s: byte %" PRIu64 ": key '%.200s': %s", r->name, off,
                           r->key, what);
    return vkl_err_set(r->err, VKL_ERR_INPUT, "gguf: %s: byte %" PRIu64 ": %s", r->name, off, what);
}

static uint64_t left(const reader *r) { return r->size - r->pos; }

static bool need(reader *r, uint64_t n, const char *what) {
    if (left(r) >= n) return true;
    rfail(r, r->pos, "file ends inside %s (expected %" PRIu64 " more bytes, %" PRIu64 " left)", what, n, left(r));
    return false;
}

static bool rd_u32(reader *r, uint32_t *v, const char *what) {
    if (!need(r, 4, what)) return false;
    memcpy(v, r->p + r->pos, 4);
    r->pos += 4;
    return true;
}

static bool rd_u64(reader *r, uint64_t *v, const char *what) {
    if (!need(r, 8, what)) return false;
    memcpy(v, r->p + r->pos, 8);
    r->pos += 8;
    return true;
}

static bool rd_str(reader *r, vkl_gguf_str *s, const char *what) {
    uint64_t at = r->pos, len;
    if (!rd_u64(r, &len, what)) return false;
    if (len > left(r)) {
        rfail(r, at, "%s length %" PRIu64 " runs past the end of the file (expected at most %" PRIu64 ")", what,
              len, left(r));
        return false;
    }
    char *c = arena_alloc(r->ar, (size_t)len + 1, 1);
    memcpy(c, r->p + r->pos, (size_t)len);
    c[len] = '\0';
    s->str = c;
    s->len = len;
    r->pos += len;
    return true;
}

static bool rd_value(reader *r, vkl_gguf_type type, vkl_gguf_value *out, int depth);

static bool rd_scalar(reader *r, vkl_gguf_type type, vkl_gguf_value *out) {
    uint64_t at = r->pos;
    uint8_t b[8] = {0};
    if (!need(r, scalar_size[type], type_names[type])) return false;
    memcpy(b, r->p + r->pos, scalar_size[type]);
    r->pos += scalar_size[type];
    out->type = type;
    switch (type) {
    case VKL_GGUF_UINT8: out->v.u64 = b[0]; break;
    case VKL_GGUF_INT8: out->v.i64 = (int8_t)b[0]; break;
    case VKL_GGUF_UINT16: { uint16_t x; memcpy(&x, b, 2); out->v.u64 = x; break; }
    case VKL_GGUF_INT16: { int16_t x; memcpy(&x, b, 2); out->v.i64 = x; break; }
    case VKL_GGUF_UINT32: { uint32_t x; memcpy(&x, b, 4); out->v.u64 = x; break; }
    case VKL_GGUF_INT32: { int32_t x; memcpy(&x, b, 4); out->v.i64 = x; break; }
    case VKL_GGUF_FLOAT32: { float x; memcpy(&x, b, 4); out->v.f64 = x; break; }
    case VKL_GGUF_UINT64: memcpy(&out->v.u64, b, 8); break;
    case VKL_GGUF_INT64: memcpy(&out->v.i64, b, 8); break;
    case VKL_GGUF_FLOAT64: memcpy(&out->v.f64, b, 8); break;
    case VKL_GGUF_BOOL:
        if (b[0] > 1) {
            rfail(r, at, "bool value %u (expected 0 or 1)", b[0]);
            return false;
        }
        out->v.u64 = b[0];
        break;
    default: return false; /* not reached: callers pass scalar types only */
    }
    return true;
}

static bool rd_array(reader *r, vkl_gguf_value *out, int depth) {
    uint64_t at = r->pos, count;
    uint32_t et;
    if (depth > MAX_ARRAY_DEPTH) {
        rfail(r, at, "arrays nested more than %d levels deep (expected at most %d)", MAX_ARRAY_DEPTH,
              MAX_ARRAY_DEPTH);
        return false;
    }
    if (!rd_u32(r, &et, "array element type")) return false;
    if (et >= VKL_GGUF_TYPE_COUNT) {
        rfail(r, at, "unknown array element type %" PRIu32 " (expected 0..%d)", et, VKL_GGUF_TYPE_COUNT - 1);
        return false;
    }
    uint64_t count_at = r->pos;
    if (!rd_u64(r, &count, "array count")) return false;
    uint64_t min = min_value_size((vkl_gguf_type)et);
    if (count > left(r) / min) {
        rfail(r, count_at,
              "array of %" PRIu64 " %s elements cannot fit in the %" PRIu64 " bytes left (expected at most %" PRIu64
              ")",
              count, type_names[et], left(r), left(r) / min);
        return false;
    }
    out->type = VKL_GGUF_ARRAY;
    out->v.arr.elem_type = (vkl_gguf_type)et;
    out->v.arr.count = count;
    out->v.arr.data = NULL;
    if (et == VKL_GGUF_STRING) {
        vkl_gguf_str *s = arena_alloc(r->ar, (size_t)count * sizeof(*s), 16);
        for (uint64_t i = 0; i < count; i++)
            if (!rd_str(r, &s[i], "array string")) return false;
        out->v.arr.data = s;
    } else if (et == VKL_GGUF_ARRAY) {
        vkl_gguf_value *v = arena_alloc(r->ar, (size_t)count * sizeof(*v), 16);
        for (uint64_t i = 0; i < count; i++)
            if (!rd_value(r, VKL_GGUF_ARRAY, &v[i], depth + 1)) return false;
        out->v.arr.data = v;
    } else {
        /* count * min <= left was checked above, so this cannot overflow */
        size_t n = (size_t)(count * min);
        uint8_t *d = arena_alloc(r->ar, n, 16);
        memcpy(d, r->p + r->pos, n);
        if (et == VKL_GGUF_BOOL)
            for (uint64_t i = 0; i < count; i++)
                if (d[i] > 1) {
                    rfail(r, r->pos + i, "bool array element %" PRIu64 " is %u (expected 0 or 1)", i, d[i]);
                    return false;
                }
        r->pos += n;
        out->v.arr.data = d;
    }
    return true;
}

static bool rd_value(reader *r, vkl_gguf_type type, vkl_gguf_value *out, int depth) {
    if (type == VKL_GGUF_STRING) {
        out->type = type;
        return rd_str(r, &out->v.str, "string value");
    }
    if (type == VKL_GGUF_ARRAY) return rd_array(r, out, depth);
    return rd_scalar(r, type, out);
}

/* Order by bytes, then length: names may hold NUL bytes, which strcmp would stop at. */
static int str_cmp(const vkl_gguf_str *a, const vkl_gguf_str *b) {
    uint64_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->str, b->str, (size_t)n);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int str_ptr_cmp(const void *pa, const void *pb) {
    return str_cmp(*(const vkl_gguf_str *const *)pa, *(const vkl_gguf_str *const *)pb);
}

static vkl_status parse(vkl_gguf *g, gguf_priv *pv, vkl_err *err) {
    reader rr = {.p = g->map, .size = g->file_size, .name = g->path, .err = err, .ar = &pv->ar};
    reader *r = &rr;

    /* ---- header ---- */
    if (r->size < 4 || memcmp(r->p, "GGUF", 4) != 0) {
        char got[32] = "";
        for (uint64_t i = 0; i < 4 && i < r->size; i++)
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%02x", r->p[i]);
        return rfail(r, 0, "not a GGUF file: magic is %s%s (expected \"GGUF\" = 47475546)", r->size ? "" : "empty",
                     got);
    }
    r->pos = 4;
    if (!rd_u32(r, &g->version, "the version")) return VKL_ERR_INPUT;
    if (g->version == 1)
        return rfail(r, 4, "GGUF version 1 is not supported: it uses 32-bit counts (expected version 2 or 3; "
                           "re-convert the model with a current llama.cpp)");
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && g->version >> 16)
            return rfail(r, 4, "version field %08" PRIx32 " looks byte-swapped: big-endian GGUF is not supported "
                               "(expected a little-endian file, version 2 or 3)", g->version);
        return rfail(r, 4, "unsupported GGUF version %" PRIu32 " (expected 2 or 3)", g->version);
    }
    uint64_t nt_at = r->pos;
    if (!rd_u64(r, &g->n_tensors, "the tensor count")) return VKL_ERR_INPUT;
    uint64_t nkv_at = r->pos;
    if (!rd_u64(r, &g->n_kv, "the metadata count")) return VKL_ERR_INPUT;
    /* A kv takes at least 8 (key length) + 4 (type) + 1 (smallest value) bytes, a tensor info at least
     * 8 (name length) + 4 (n_dims) + 8 (one ne) + 4 (type) + 8 (offset). */
    const uint64_t min_kv = 13, min_ti = 32;
    if (g->n_kv > left(r) / min_kv)
        return rfail(r, nkv_at, "%" PRIu64 " metadata entries cannot fit in the %" PRIu64
                     " bytes left (expected at most %" PRIu64 ")", g->n_kv, left(r), left(r) / min_kv);
    if (g->n_tensors > (left(r) - g->n_kv * min_kv) / min_ti)
        return rfail(r, nt_at, "%" PRIu64 " tensors cannot fit in the %" PRIu64 " bytes left (expected at most %" PRIu64
                     ")", g->n_tensors, left(r), (left(r) - g->n_kv * min_kv) / min_ti);

    /* ---- metadata ---- */
    g->kv = vkl_calloc((size_t)g->n_kv, sizeof(*g->kv));
    for (uint64_t i = 0; i < g->n_kv; i++) {
        vkl_gguf_kv *kv = &g->kv[i];
        kv->file_offset = r->pos;
        if (!rd_str(r, &kv->key, "a metadata key")) return VKL_ERR_INPUT;
        if (memchr(kv->key.str, 0, (size_t)kv->key.len))
            return rfail(r, kv->file_offset, "metadata key %" PRIu64 " holds a NUL byte (expected a text key)", i);
        r->key = kv->key.str;
        uint64_t type_at = r->pos;
        uint32_t type;
        if (!rd_u32(r, &type, "a value type")) return VKL_ERR_INPUT;
        if (type >= VKL_GGUF_TYPE_COUNT)
            return rfail(r, type_at, "unknown value type %" PRIu32 " (expected 0..%d)", type, VKL_GGUF_TYPE_COUNT - 1);
        if (!rd_value(r, (vkl_gguf_type)type, &kv->value, 1)) return VKL_ERR_INPUT;
        r->key = NULL;
    }
    pv->kv_sorted = vkl_malloc((size_t)g->n_kv * sizeof(*pv->kv_sorted));
    for (uint64_t i = 0; i < g->n_kv; i++) pv->kv_sorted[i] = &g->kv[i].key;
    qsort(pv->kv_sorted, (size_t)g->n_kv, sizeof(*pv->kv_sorted), str_ptr_cmp);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (!str_cmp(pv->kv_sorted[i - 1], pv->kv_sorted[i])) {
            const vkl_gguf_kv *a = (const vkl_gguf_kv *)pv->kv_sorted[i - 1];
            const vkl_gguf_kv *b = (const vkl_gguf_kv *)pv->kv_sorted[i];
            const vkl_gguf_kv *later = a->file_offset > b->file_offset ? a : b;
            const vkl_gguf_kv *first = a->file_offset > b->file_offset ? b : a;
            return rfail(r, later->file_offset, "duplicate key '%.200s', first defined at byte %" PRIu64
                         " (expected unique keys)", later->key.str, first->file_offset);
        }

    g->alignment = VKL_GGUF_DEFAULT_ALIGNMENT;
    int64_t ai = vkl_gguf_find_key(g, "general.alignment");
    if (ai >= 0) {
        const vkl_gguf_kv *kv = &g->kv[ai];
        if (kv->value.type != VKL_GGUF_UINT32)
            return rfail(r, kv->file_offset, "general.alignment has type %s (expected uint32)",
                         vkl_gguf_type_name(kv->value.type));
        uint64_t a = kv->value.v.u64;
        if (a == 0 || (a & (a - 1)))
            return rfail(r, kv->file_offset, "general.alignment is %" PRIu64 " (expected a power of two)", a);
        g->alignment = (uint32_t)a;
    }

    /* ---- tensor infos ---- */
    g->tensors = vkl_calloc((size_t)g->n_tensors, sizeof(*g->tensors));
    pv->t_info_offset = vkl_calloc((size_t)g->n_tensors, sizeof(*pv->t_info_offset));
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        vkl_gguf_tensor *t = &g->tensors[i];
        uint64_t at = pv->t_info_offset[i] = r->pos;
        if (!rd_str(r, &t->name, "a tensor name")) return VKL_ERR_INPUT;
        const char *nm = t->name.str;
        /* ggml keeps names in char[GGML_MAX_NAME = 64]: llama.cpp refuses longer ones, and lookups take C strings */
        if (t->name.len >= VKL_GGUF_MAX_NAME)
            return rfail(r, at, "tensor %" PRIu64 ": name of %" PRIu64 " bytes (expected at most %d, as ggml)", i,
                         t->name.len, VKL_GGUF_MAX_NAME - 1);
        if (memchr(nm, 0, (size_t)t->name.len))
            return rfail(r, at, "tensor %" PRIu64 ": name holds a NUL byte (expected a text name)", i);
        uint64_t nd_at = r->pos;
        if (!rd_u32(r, &t->n_dims, "a tensor's n_dims")) return VKL_ERR_INPUT;
        if (t->n_dims < 1 || t->n_dims > VKL_GGUF_MAX_DIMS)
            return rfail(r, nd_at, "tensor %" PRIu64 " '%.200s': n_dims %" PRIu32 " (expected 1..%d)", i, nm,
                         t->n_dims, VKL_GGUF_MAX_DIMS);
        uint64_t nel = 1;
        for (uint32_t d = 0; d < VKL_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint32_t d = 0; d < t->n_dims; d++) {
            uint64_t ne_at = r->pos, u;
            if (!rd_u64(r, &u, "a tensor dimension")) return VKL_ERR_INPUT;
            t->ne[d] = (int64_t)u;
            if (t->ne[d] < 0)
                return rfail(r, ne_at, "tensor %" PRIu64 " '%.200s': ne[%" PRIu32 "] = %" PRId64
                             " (expected a non-negative size)", i, nm, d, t->ne[d]);
            /* An empty tensor has no use in a model, and every loader down the line would have to special-case
             * it: refuse it here, once. */
            if (u == 0)
                return rfail(r, ne_at, "tensor %" PRIu64 " '%.200s': ne[%" PRIu32 "] = 0 (expected a positive size: "
                             "empty tensors are not allowed)", i, nm, d);
            if (!vkl_mul_u64(nel, u, &nel) || nel > INT64_MAX)
                return rfail(r, ne_at, "tensor %" PRIu64 " '%.200s': element count overflows at ne[%" PRIu32
                             "] = %" PRId64 " (expected a product of dimensions below 2^63)", i, nm, d, t->ne[d]);
        }
        uint64_t ty_at = r->pos;
        if (!rd_u32(r, &t->type, "a tensor type")) return VKL_ERR_INPUT;
        const vkl_type_traits *tr = vkl_type_traits_get(t->type);
        if (!tr)
            return rfail(r, ty_at, "tensor %" PRIu64 " '%.200s': unknown ggml type %" PRIu32
                         " (expected a type known to ggml, e.g. 0 = f32, 1 = f16)", i, nm, t->type);
        if ((uint64_t)t->ne[0] % tr->block_size)
            return rfail(r, at, "tensor %" PRIu64 " '%.200s': ne[0] = %" PRId64 " is not a multiple of the %s "
                         "block size (expected a multiple of %" PRIu32 ")", i, nm, t->ne[0], tr->name,
                         tr->block_size);
        uint64_t row;
        if (!vkl_type_row_bytes(t->type, (uint64_t)t->ne[0], &row) ||
            !vkl_mul_u64(row, (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3], &t->size))
            return rfail(r, at, "tensor %" PRIu64 " '%.200s': byte size overflows (expected < 2^64)", i, nm);
        uint64_t off_at = r->pos;
        if (!rd_u64(r, &t->offset, "a tensor offset")) return VKL_ERR_INPUT;
        if (t->offset % g->alignment)
            return rfail(r, off_at, "tensor %" PRIu64 " '%.200s': data offset %" PRIu64
                         " is not aligned (expected a multiple of %" PRIu32 ")", i, nm, t->offset, g->alignment);
    }

    /* ---- data section ---- */
    if (r->pos > UINT64_MAX - g->alignment) return rfail(r, r->pos, "header too large (expected the data section to start below 2^64)");
    g->data_offset = align_up(r->pos, g->alignment);
    /* Files without tensors (vocabularies) may end right after the metadata, without the padding. */
    uint64_t data_size = g->data_offset <= g->file_size ? g->file_size - g->data_offset : 0;
    if (pv->owned_map) data_size = pv->view_data_size;
    if (g->n_tensors && g->data_offset > g->file_size)
        return rfail(r, r->pos, "file ends inside the padding before the data section (expected %" PRIu64
                     " bytes, file has %" PRIu64 ")", g->data_offset, g->file_size);
    if (g->data_offset > g->file_size) g->data_offset = g->file_size; /* empty data section */
    /* As llama.cpp requires: tensor i's data starts where tensor i-1's ends, padded to the alignment, so the data
     * section holds no gaps (hidden bytes) and no overlaps. */
    uint64_t expect = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        vkl_gguf_tensor *t = &g->tensors[i];
        uint64_t end;
        if (!vkl_add_u64(t->offset, t->size, &end) || end > data_size)
            return rfail(r, pv->t_info_offset[i],
                         "tensor %" PRIu64 " '%.200s': data [%" PRIu64 ", +%" PRIu64
                         ") runs past the end of the data section (expected offset + size <= %" PRIu64
                         "; truncated file?)", i, t->name.str, t->offset, t->size, data_size);
        if (t->offset != expect) {
            const vkl_gguf_tensor *p = i ? &g->tensors[i - 1] : NULL;
            if (t->offset < expect)
                return rfail(r, pv->t_info_offset[i],
                             "tensor %" PRIu64 " '%.200s': data offset %" PRIu64 " overlaps tensor %" PRIu64
                             " '%.200s' [%" PRIu64 ", +%" PRIu64 ") (expected offset %" PRIu64 ": each tensor's data "
                             "follows the previous one's, padded to %" PRIu32 " bytes)", i, t->name.str, t->offset,
                             i - 1, p->name.str, p->offset, p->size, expect, g->alignment);
            return rfail(r, pv->t_info_offset[i],
                         "tensor %" PRIu64 " '%.200s': data offset %" PRIu64 " leaves a gap of %" PRIu64 " bytes "
                         "(expected offset %" PRIu64 ": each tensor's data follows the previous one's, padded to %"
                         PRIu32 " bytes)", i, t->name.str, t->offset, t->offset - expect, expect, g->alignment);
        }
        /* end <= data_size < 2^64 and the alignment is at most 2^31, so the padded end cannot wrap */
        expect = align_up(end, g->alignment);
        t->data = pv->owned_map ? NULL : g->map + g->data_offset + t->offset;
    }

    pv->t_sorted = vkl_malloc((size_t)g->n_tensors * sizeof(*pv->t_sorted));
    for (uint64_t i = 0; i < g->n_tensors; i++) pv->t_sorted[i] = &g->tensors[i].name;
    qsort(pv->t_sorted, (size_t)g->n_tensors, sizeof(*pv->t_sorted), str_ptr_cmp);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (!str_cmp(pv->t_sorted[i - 1], pv->t_sorted[i])) {
            const vkl_gguf_tensor *a = (const vkl_gguf_tensor *)pv->t_sorted[i - 1];
            const vkl_gguf_tensor *b = (const vkl_gguf_tensor *)pv->t_sorted[i];
            uint64_t ia = (uint64_t)(a - g->tensors), ib = (uint64_t)(b - g->tensors);
            uint64_t later = ia > ib ? ia : ib, first = ia > ib ? ib : ia;
            return rfail(r, pv->t_info_offset[later], "tensor %" PRIu64 ": duplicate name '%.200s', first used by "
                         "tensor %" PRIu64 " (expected unique names)", later, b->name.str, first);
        }

    return VKL_OK;
}

static vkl_gguf *gguf_new(const char *name) {
    vkl_gguf *g = vkl_calloc(1, sizeof(*g));
    g->path = vkl_strdup(name ? name : "<memory>");
    g->priv = vkl_calloc(1, sizeof(gguf_priv));
    return g;
}

void vkl_gguf_close(vkl_gguf *g) {
    if (!g) return;
    gguf_priv *pv = g->priv;
    if (pv) {
        if (pv->mapped && g->map) vkl_os_unmap(g->map, g->file_size);
        free(pv->owned_map);
        arena_free(&pv->ar);
        free(pv->kv_sorted);
        free(pv->t_sorted);
        free(pv->t_info_offset);
        free(pv);
    }
    free(g->kv);
    free(g->tensors);
    free(g->path);
    free(g);
}

vkl_status vkl_gguf_open_memory(const void *buf, uint64_t size, const char *name, vkl_gguf **out, vkl_err *err) {
    *out = NULL;
    vkl_gguf *g = gguf_new(name);
    g->map = buf;
    g->file_size = buf ? size : 0;
    vkl_status st = parse(g, g->priv, err);
    if (st != VKL_OK) {
        vkl_gguf_close(g);
        return st;
    }
    *out = g;
    return VKL_OK;
}

vkl_status vkl_gguf_open(const char *path, vkl_gguf **out, vkl_err *err) {
    *out = NULL;
    vkl_mapped_file mf;
    if (vkl_map_file(path, "gguf", &mf, err)) return err->status;
    vkl_gguf *g = gguf_new(path);
    gguf_priv *pv = g->priv;
    g->map = mf.data;
    g->file_size = mf.size;
    pv->mapped = mf.data != NULL;
    vkl_status st = parse(g, pv, err);
    if (st != VKL_OK) {
        vkl_gguf_close(g);
        return st;
    }
    *out = g;
    return VKL_OK;
}

/* ---------------------------------------------------------------------------------------------------------
 * Lookups
 * ------------------------------------------------------------------------------------------------------- */

static int64_t find_sorted(const vkl_gguf_str *const *sorted, uint64_t n, const char *name) {
    if (!sorted || !name) return -1;
    vkl_gguf_str key = {name, strlen(name)};
    uint64_t lo = 0, hi = n;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = str_cmp(sorted[mid], &key);
        if (c == 0) return (int64_t)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

int64_t vkl_gguf_find_key(const vkl_gguf *g, const char *key) {
    const gguf_priv *pv = g->priv;
    int64_t i = find_sorted(pv->kv_sorted, g->n_kv, key);
    return i < 0 ? -1 : (int64_t)((const vkl_gguf_kv *)pv->kv_sorted[i] - g->kv);
}

int64_t vkl_gguf_find_tensor(const vkl_gguf *g, const char *name) {
    const gguf_priv *pv = g->priv;
    int64_t i = find_sorted(pv->t_sorted, g->n_tensors, name);
    return i < 0 ? -1 : (int64_t)((const vkl_gguf_tensor *)pv->t_sorted[i] - g->tensors);
}

const vkl_gguf_value *vkl_gguf_get(const vkl_gguf *g, const char *key) {
    int64_t i = vkl_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kv[i].value;
}

static bool is_unsigned(vkl_gguf_type t) {
    return t == VKL_GGUF_UINT8 || t == VKL_GGUF_UINT16 || t == VKL_GGUF_UINT32 || t == VKL_GGUF_UINT64;
}
static bool is_signed(vkl_gguf_type t) {
    return t == VKL_GGUF_INT8 || t == VKL_GGUF_INT16 || t == VKL_GGUF_INT32 || t == VKL_GGUF_INT64;
}

bool vkl_gguf_get_u64(const vkl_gguf *g, const char *key, uint64_t *out) {
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    if (!v) return false;
    if (is_unsigned(v->type)) { *out = v->v.u64; return true; }
    if (is_signed(v->type) && v->v.i64 >= 0) { *out = (uint64_t)v->v.i64; return true; }
    return false;
}

bool vkl_gguf_get_i64(const vkl_gguf *g, const char *key, int64_t *out) {
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    if (!v) return false;
    if (is_signed(v->type)) { *out = v->v.i64; return true; }
    if (is_unsigned(v->type) && v->v.u64 <= INT64_MAX) { *out = (int64_t)v->v.u64; return true; }
    return false;
}

bool vkl_gguf_get_f64(const vkl_gguf *g, const char *key, double *out) {
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    if (!v) return false;
    if (v->type == VKL_GGUF_FLOAT32 || v->type == VKL_GGUF_FLOAT64) *out = v->v.f64;
    else if (is_signed(v->type)) *out = (double)v->v.i64;
    else if (is_unsigned(v->type)) *out = (double)v->v.u64;
    else return false;
    return true;
}

bool vkl_gguf_get_bool(const vkl_gguf *g, const char *key, bool *out) {
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    if (!v || v->type != VKL_GGUF_BOOL) return false;
    *out = v->v.u64 != 0;
    return true;
}

const char *vkl_gguf_get_str(const vkl_gguf *g, const char *key) {
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    return v && v->type == VKL_GGUF_STRING ? v->v.str.str : NULL;
}

const vkl_gguf_value *vkl_gguf_get_arr(const vkl_gguf *g, const char *key, vkl_gguf_type elem_type) {
    const vkl_gguf_value *v = vkl_gguf_get(g, key);
    if (!v || v->type != VKL_GGUF_ARRAY) return NULL;
    if (elem_type != VKL_GGUF_TYPE_COUNT && v->v.arr.elem_type != elem_type) return NULL;
    return v;
}

/* ---------------------------------------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void b_put(bytes *b, const void *src, size_t n) {
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n) cap *= 2;
        b->p = vkl_realloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void b_u32(bytes *b, uint32_t v) { b_put(b, &v, 4); }
static void b_u64(bytes *b, uint64_t v) { b_put(b, &v, 8); }
static void b_str(bytes *b, const char *s, uint64_t len) {
    b_u64(b, len);
    b_put(b, s, (size_t)len);
}

typedef struct {
    char *key;
    bytes val; /* u32 type + encoded value, exactly as written to the file */
} wkv;

typedef struct {
    char *name;
    uint32_t n_dims, type;
    int64_t ne[VKL_GGUF_MAX_DIMS];
    const void *data;
    uint64_t size, offset;
} wtensor;

struct vkl_gguf_writer {
    uint32_t version, alignment;
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    vkl_err err; /* first misuse of a void setter, reported by write/to_memory */
};

vkl_gguf_writer *vkl_gguf_writer_new(uint32_t version, uint32_t alignment) {
    vkl_gguf_writer *w = vkl_calloc(1, sizeof(*w));
    w->version = version;
    w->alignment = alignment ? alignment : VKL_GGUF_DEFAULT_ALIGNMENT;
    if (version != 2 && version != 3)
        vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: version %" PRIu32 " (expected 2 or 3)", version);
    if (w->alignment & (w->alignment - 1))
        vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: alignment %" PRIu32 " (expected a power of two)",
                    w->alignment);
    /* Readers assume 32 unless told otherwise, so any other alignment has to be recorded in the file. */
    if (w->alignment != VKL_GGUF_DEFAULT_ALIGNMENT) vkl_gguf_writer_set_u32(w, "general.alignment", w->alignment);
    return w;
}

void vkl_gguf_writer_free(vkl_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val.p);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    free(w);
}

/* The slot for `key`, emptied: a duplicate key keeps its position so the file order stays the call order. */
static bytes *kv_slot(vkl_gguf_writer *w, const char *key) {
    if (!key) {
        vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: NULL metadata key");
        key = "";
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            w->kv[i].val.n = 0;
            return &w->kv[i].val;
        }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 16;
        w->kv = vkl_realloc(w->kv, w->cap_kv * sizeof(*w->kv));
    }
    wkv *kv = &w->kv[w->n_kv++];
    kv->key = vkl_strdup(key);
    kv->val = (bytes){0};
    return &kv->val;
}

static void set_scalar(vkl_gguf_writer *w, const char *key, vkl_gguf_type t, const void *v) {
    bytes *b = kv_slot(w, key);
    b_u32(b, t);
    b_put(b, v, scalar_size[t]);
}

void vkl_gguf_writer_set_u8(vkl_gguf_writer *w, const char *key, uint8_t v) { set_scalar(w, key, VKL_GGUF_UINT8, &v); }
void vkl_gguf_writer_set_i8(vkl_gguf_writer *w, const char *key, int8_t v) { set_scalar(w, key, VKL_GGUF_INT8, &v); }
void vkl_gguf_writer_set_u16(vkl_gguf_writer *w, const char *key, uint16_t v) { set_scalar(w, key, VKL_GGUF_UINT16, &v); }
void vkl_gguf_writer_set_i16(vkl_gguf_writer *w, const char *key, int16_t v) { set_scalar(w, key, VKL_GGUF_INT16, &v); }
void vkl_gguf_writer_set_u32(vkl_gguf_writer *w, const char *key, uint32_t v) { set_scalar(w, key, VKL_GGUF_UINT32, &v); }
void vkl_gguf_writer_set_i32(vkl_gguf_writer *w, const char *key, int32_t v) { set_scalar(w, key, VKL_GGUF_INT32, &v); }
void vkl_gguf_writer_set_u64(vkl_gguf_writer *w, const char *key, uint64_t v) { set_scalar(w, key, VKL_GGUF_UINT64, &v); }
void vkl_gguf_writer_set_i64(vkl_gguf_writer *w, const char *key, int64_t v) { set_scalar(w, key, VKL_GGUF_INT64, &v); }
void vkl_gguf_writer_set_f32(vkl_gguf_writer *w, const char *key, float v) { set_scalar(w, key, VKL_GGUF_FLOAT32, &v); }
void vkl_gguf_writer_set_f64(vkl_gguf_writer *w, const char *key, double v) { set_scalar(w, key, VKL_GGUF_FLOAT64, &v); }

void vkl_gguf_writer_set_bool(vkl_gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0;
    set_scalar(w, key, VKL_GGUF_BOOL, &b);
}

void vkl_gguf_writer_set_str(vkl_gguf_writer *w, const char *key, const char *v) {
    bytes *b = kv_slot(w, key);
    b_u32(b, VKL_GGUF_STRING);
    if (!v) {
        vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: key '%s': NULL string", key ? key : "");
        v = "";
    }
    b_str(b, v, strlen(v));
}

void vkl_gguf_writer_set_arr(vkl_gguf_writer *w, const char *key, vkl_gguf_type elem_type, const void *data,
                             uint64_t count) {
    bytes *b = kv_slot(w, key);
    b_u32(b, VKL_GGUF_ARRAY);
    if ((unsigned)elem_type >= VKL_GGUF_TYPE_COUNT || !scalar_size[elem_type] || (count && !data)) {
        vkl_err_set(&w->err, VKL_ERR_INPUT,
                    "gguf writer: key '%s': set_arr takes scalar elements with data (got %s%s); use "
                    "set_arr_str or set_value", key ? key : "", vkl_gguf_type_name(elem_type),
                    count && !data ? ", NULL data" : "");
        b_u32(b, VKL_GGUF_UINT8);
        b_u64(b, 0);
        return;
    }
    b_u32(b, elem_type);
    b_u64(b, count);
    if (elem_type == VKL_GGUF_BOOL)
        for (uint64_t i = 0; i < count; i++)
            if (((const uint8_t *)data)[i] > 1) {
                vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: key '%s': bool element %" PRIu64 " is %u "
                            "(expected 0 or 1)", key ? key : "", i, ((const uint8_t *)data)[i]);
                break;
            }
    b_put(b, data, (size_t)(count * scalar_size[elem_type]));
}

void vkl_gguf_writer_set_arr_str(vkl_gguf_writer *w, const char *key, const char *const *strs, uint64_t count) {
    bytes *b = kv_slot(w, key);
    b_u32(b, VKL_GGUF_ARRAY);
    b_u32(b, VKL_GGUF_STRING);
    b_u64(b, count);
    for (uint64_t i = 0; i < count; i++) {
        const char *s = strs ? strs[i] : NULL;
        if (!s) {
            vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: key '%s': string %" PRIu64 " is NULL", key ? key : "",
                        i);
            s = "";
        }
        b_str(b, s, strlen(s));
    }
}

/* Encode a value without its type word; arrays recurse. */
static void put_value(vkl_gguf_writer *w, bytes *b, const vkl_gguf_value *v, const char *key, int depth) {
    switch (v->type) {
    case VKL_GGUF_UINT8: case VKL_GGUF_UINT16: case VKL_GGUF_UINT32: case VKL_GGUF_UINT64: case VKL_GGUF_BOOL:
        b_put(b, &v->v.u64, scalar_size[v->type]); /* little-endian: the low bytes come first */
        break;
    case VKL_GGUF_INT8: case VKL_GGUF_INT16: case VKL_GGUF_INT32: case VKL_GGUF_INT64:
        b_put(b, &v->v.i64, scalar_size[v->type]);
        break;
    case VKL_GGUF_FLOAT32: {
        float f = (float)v->v.f64;
        b_put(b, &f, 4);
        break;
    }
    case VKL_GGUF_FLOAT64: b_put(b, &v->v.f64, 8); break;
    case VKL_GGUF_STRING: b_str(b, v->v.str.str, v->v.str.len); break;
    case VKL_GGUF_ARRAY: {
        vkl_gguf_type et = v->v.arr.elem_type;
        uint64_t n = v->v.arr.count;
        if ((unsigned)et >= VKL_GGUF_TYPE_COUNT || depth > MAX_ARRAY_DEPTH || (n && !v->v.arr.data)) {
            vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: key '%s': bad array value (element type %d, depth %d)",
                        key, (int)et, depth);
            et = VKL_GGUF_UINT8;
            n = 0;
        }
        b_u32(b, et);
        b_u64(b, n);
        if (et == VKL_GGUF_STRING) {
            const vkl_gguf_str *s = v->v.arr.data;
            for (uint64_t i = 0; i < n; i++) b_str(b, s[i].str, s[i].len);
        } else if (et == VKL_GGUF_ARRAY) {
            const vkl_gguf_value *e = v->v.arr.data;
            for (uint64_t i = 0; i < n; i++) {
                if (e[i].type != VKL_GGUF_ARRAY) {
                    vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: key '%s': element %" PRIu64
                                " of an array of arrays has type %s", key, i, vkl_gguf_type_name(e[i].type));
                    vkl_gguf_value empty = {.type = VKL_GGUF_ARRAY, .v.arr = {VKL_GGUF_UINT8, 0, NULL}};
                    put_value(w, b, &empty, key, depth + 1);
                } else {
                    put_value(w, b, &e[i], key, depth + 1);
                }
            }
        } else {
            b_put(b, v->v.arr.data, (size_t)(n * scalar_size[et]));
        }
        break;
    }
    default:
        vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: key '%s': unknown value type %d", key, (int)v->type);
        b_put(b, &(uint8_t){0}, 1);
        break;
    }
}

void vkl_gguf_writer_set_value(vkl_gguf_writer *w, const char *key, const vkl_gguf_value *v) {
    bytes *b = kv_slot(w, key);
    if (!v || (unsigned)v->type >= VKL_GGUF_TYPE_COUNT) {
        vkl_err_set(&w->err, VKL_ERR_INPUT, "gguf writer: key '%s': %s value", key ? key : "",
                    v ? "unknown type of" : "NULL");
        b_u32(b, VKL_GGUF_UINT8);
        b_put(b, &(uint8_t){0}, 1);
        return;
    }
    b_u32(b, v->type);
    put_value(w, b, v, key ? key : "", 1);
}

vkl_status vkl_gguf_writer_add_tensor(vkl_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                      const int64_t *ne, const void *data, vkl_err *err) {
    if (!name) return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: tensor with a NULL name");
    if (strlen(name) >= VKL_GGUF_MAX_NAME)
        return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: tensor name '%s' is longer than %d bytes", name,
                           VKL_GGUF_MAX_NAME - 1);
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: tensor '%s' added twice (expected unique names)",
                               name);
    const vkl_type_traits *tr = vkl_type_traits_get(type);
    if (!tr) return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: tensor '%s': unknown type %" PRIu32, name, type);
    if (n_dims < 1 || n_dims > VKL_GGUF_MAX_DIMS)
        return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: tensor '%s': n_dims %" PRIu32 " (expected 1..%d)", name,
                           n_dims, VKL_GGUF_MAX_DIMS);
    wtensor t = {.n_dims = n_dims, .type = type, .data = data, .ne = {1, 1, 1, 1}};
    uint64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || !vkl_mul_u64(nel, (uint64_t)ne[d], &nel) || nel > INT64_MAX)
            return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: tensor '%s': ne[%" PRIu32 "] = %" PRId64
                               " (expected a positive size, element count below 2^63)", name, d, ne[d]);
        t.ne[d] = ne[d];
    }
    uint64_t row;
    if (!vkl_type_row_bytes(type, (uint64_t)t.ne[0], &row))
        return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: tensor '%s': ne[0] = %" PRId64 " (expected a multiple "
                           "of the %s block size %" PRIu32 ")", name, t.ne[0], tr->name, tr->block_size);
    if (!vkl_mul_u64(row, (uint64_t)t.ne[1] * (uint64_t)t.ne[2] * (uint64_t)t.ne[3], &t.size))
        return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: tensor '%s': byte size overflows", name);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 16;
        w->t = vkl_realloc(w->t, w->cap_t * sizeof(*w->t));
    }
    t.name = vkl_strdup(name);
    w->t[w->n_t++] = t;
    return VKL_OK;
}

/* Header, metadata and tensor infos with the offsets of the standard layout (each tensor at the next aligned
 * offset, in add order); returns the total file size in *total. */
static vkl_status build_header(vkl_gguf_writer *w, bytes *h, uint64_t *total, vkl_err *err) {
    if (w->err.status != VKL_OK) return vkl_err_set(err, w->err.status, "%s", w->err.msg);
    uint32_t align = w->alignment;
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kv[i].key, "general.alignment")) continue;
        uint32_t type, a = 0;
        memcpy(&type, w->kv[i].val.p, 4);
        if (type == VKL_GGUF_UINT32) memcpy(&a, w->kv[i].val.p + 4, 4);
        if (type != VKL_GGUF_UINT32 || a == 0 || (a & (a - 1)))
            return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: general.alignment must be a uint32 power of two "
                               "(got type %s, value %" PRIu32 ")", vkl_gguf_type_name((vkl_gguf_type)type), a);
        align = a;
    }
    for (size_t i = 0; i < w->n_t; i++)
        if (!w->t[i].data && w->t[i].size)
            return vkl_err_set(err, VKL_ERR_INPUT, "gguf writer: tensor '%s' has no data", w->t[i].name);
    *h = (bytes){0};
    b_put(h, "GGUF", 4);
    b_u32(h, w->version);
    b_u64(h, w->n_t);
    b_u64(h, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        b_str(h, w->kv[i].key, strlen(w->kv[i].key));
        b_put(h, w->kv[i].val.p, w->kv[i].val.n);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        t->offset = off;
        off = align_up(off + t->size, align);
        b_str(h, t->name, strlen(t->name));
        b_u32(h, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) b_u64(h, (uint64_t)t->ne[d]);
        b_u32(h, t->type);
        b_u64(h, t->offset);
    }
    /* llama.cpp's vocabulary-only files end right after the metadata; pad only when a data section follows. */
    static const uint8_t zeros[256];
    while (w->n_t && h->n % align) b_put(h, zeros, VKL_MIN(align - h->n % align, sizeof(zeros)));
    *total = h->n + off;
    w->alignment = align;
    return VKL_OK;
}

vkl_status vkl_gguf_writer_to_memory(vkl_gguf_writer *w, uint8_t **buf, uint64_t *size, vkl_err *err) {
    bytes h;
    uint64_t total;
    *buf = NULL;
    *size = 0;
    vkl_status st = build_header(w, &h, &total, err);
    if (st != VKL_OK) return st;
    uint8_t *out = vkl_calloc(1, (size_t)total);
    memcpy(out, h.p, h.n);
    for (size_t i = 0; i < w->n_t; i++)
        if (w->t[i].size) memcpy(out + h.n + w->t[i].offset, w->t[i].data, (size_t)w->t[i].size);
    free(h.p);
    *buf = out;
    *size = total;
    return VKL_OK;
}

vkl_status vkl_gguf_writer_view(vkl_gguf_writer *w, const char *name, vkl_gguf **out, vkl_err *err) {
    bytes h;
    uint64_t total;
    *out = NULL;
    vkl_status st = build_header(w, &h, &total, err);
    if (st != VKL_OK) return st;
    /* parse the serialized header as a file whose data section (total - h.n bytes) lives in the writer's buffers */
    vkl_gguf *g = gguf_new(name);
    gguf_priv *pv = g->priv;
    pv->owned_map = h.p;
    pv->view_data_size = total - h.n;
    g->map = h.p;
    g->file_size = h.n;
    if ((st = parse(g, pv, err)) != VKL_OK) {
        vkl_gguf_close(g);
        return st;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) g->tensors[i].data = w->t[i].data;
    *out = g;
    return VKL_OK;
}

vkl_status vkl_gguf_writer_write(vkl_gguf_writer *w, const char *path, vkl_err *err) {
    bytes h;
    uint64_t total;
    vkl_status st = build_header(w, &h, &total, err);
    if (st != VKL_OK) return st;
    size_t plen = strlen(path);
    char *tmp = vkl_malloc(plen + 16);
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    vkl_os_file fd;
    if (!vkl_os_create_temp(tmp, path, &fd)) {
        st = vkl_err_create_failed(err, "gguf", path, errno);
        free(tmp);
        free(h.p);
        return st;
    }
    static const uint8_t zeros[4096];
    vkl_fault_point();
    bool ok = vkl_os_write_all(fd, h.p, h.n);
    vkl_fault_point();
    uint64_t pos = h.n;
    for (size_t i = 0; ok && i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        uint64_t at = h.n + t->offset;
        while (ok && pos < at) {
            uint64_t k = VKL_MIN(at - pos, sizeof(zeros));
            ok = vkl_os_write_all(fd, zeros, k);
            pos += k;
        }
        if (ok) ok = vkl_os_write_all(fd, t->data, t->size);
        pos += t->size;
    }
    while (ok && pos < total) {
        uint64_t k = VKL_MIN(total - pos, sizeof(zeros));
        ok = vkl_os_write_all(fd, zeros, k);
        pos += k;
    }
    if (ok) ok = vkl_os_sync(fd);
    int e = errno;
    if (!vkl_os_close(fd) && ok) {
        ok = false;
        e = errno;
    }
    if (ok && !vkl_os_replace(tmp, path)) {
        ok = false;
        e = errno;
    }
    if (ok) vkl_fault_point();
    if (!ok) {
        vkl_os_remove(tmp);
        st = vkl_err_set(err, VKL_ERR_RUNTIME, "gguf: %s: write failed: %s (the previous file, if any, is unchanged)",
                         path, strerror(e));
    }
    free(tmp);
    free(h.p);
    return st;
}
