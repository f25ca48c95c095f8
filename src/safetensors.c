/* safetensors reader (validating, mmap or memory) and streaming writer (temp file + rename).
 * File layout: u64 N little-endian, N bytes of UTF-8 JSON (one object; writers pad it with spaces so the data
 * section starts 8-byte aligned), then the data section. Each JSON entry but "__metadata__" is a tensor
 *   "name": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [begin, end]}
 * whose bytes are data[begin, end), row-major, little-endian. Everything the header claims is checked against
 * the file before it is used; the JSON value count is bounded before cJSON allocates anything. */
#include "vklora/safetensors.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "vklora/quant.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian and is read in place: a little-endian host is required"
#endif

/* cJSON spends about 64 bytes per value: this bounds its allocations at ~128 MiB for any header, while an
 * adapter of a 70B model with every module targeted needs about 10 values x 1,120 tensors. */
#define MAX_JSON_VALUES (2u << 20)
/* Integers beyond 2^53 do not survive cJSON's doubles exactly. */
#define MAX_JSON_INT 9007199254740992.0

static const char *const dtype_names[VKL_ST_DTYPE_COUNT] = {"F32", "F16", "BF16"};
static const uint32_t dtype_sizes[VKL_ST_DTYPE_COUNT] = {4, 2, 2};
/* Valid safetensors dtypes that vklora does not read, so the message can say "unsupported", not "unknown". */
static const char *const other_dtypes[] = {"F64", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8",
                                           "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",
                                           "C64"};

const char *vkl_st_dtype_name(vkl_st_dtype t) { return (unsigned)t < VKL_ST_DTYPE_COUNT ? dtype_names[t] : "?"; }
uint32_t vkl_st_dtype_size(vkl_st_dtype t) { return (unsigned)t < VKL_ST_DTYPE_COUNT ? dtype_sizes[t] : 0; }

typedef struct {
    bool mapped;
    size_t map_len;
} st_priv;

/* ---------------------------------------------------------------------------------------------------------- */
/* Reader */

/* Count the JSON values the header can hold (an upper bound: every value follows '[', ',' or ':' or is the root),
 * skipping string contents, so a header of a million "0," cannot make cJSON allocate gigabytes. */
static uint64_t count_json_values(const char *s, uint64_t n) {
    uint64_t count = 1;
    bool in_str = false;
    for (uint64_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == ',' || c == ':') {
            count++;
        }
    }
    return count;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* A JSON number that is a non-negative integer representable exactly. */
static bool json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0) || d > MAX_JSON_INT || d != floor(d)) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct {
    const vkl_st_tensor *t;
} by_begin;
static int cmp_begin(const void *a, const void *b) {
    const vkl_st_tensor *x = ((const by_begin *)a)->t, *y = ((const by_begin *)b)->t;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static vkl_status parse_tensor(vkl_safetensors *st, const cJSON *e, vkl_st_tensor *t, uint64_t data_size,
                               vkl_err *err) {
    const char *name = e->string;
    const char *path = st->path;
    if (!cJSON_IsObject(e))
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': expected an object {dtype, shape, "
                           "data_offsets}", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': missing or non-string \"dtype\"", path,
                           name);
    int dtype = -1;
    for (int i = 0; i < VKL_ST_DTYPE_COUNT; i++)
        if (!strcmp(dt->valuestring, dtype_names[i])) dtype = i;
    if (dtype < 0) {
        bool known = false;
        for (size_t i = 0; i < VKL_ARRAY_LEN(other_dtypes); i++)
            if (!strcmp(dt->valuestring, other_dtypes[i])) known = true;
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': %s dtype \"%.32s\" (vklora reads F32, "
                           "F16 and BF16)", path, name, known ? "unsupported" : "unknown", dt->valuestring);
    }
    t->dtype = (vkl_st_dtype)dtype;
    if (!cJSON_IsArray(sh))
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': missing or non-array \"shape\"", path,
                           name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > VKL_ST_MAX_DIMS)
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': shape has %d dimensions, at most %d "
                           "supported", path, name, nd, VKL_ST_MAX_DIMS);
    t->n_dims = (uint32_t)nd;
    uint64_t n = 1;
    int d = 0;
    for (const cJSON *v = sh->child; v; v = v->next, d++) {
        if (!json_uint(v, &t->shape[d]))
            return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': shape[%d] is not a non-negative "
                               "integer", path, name, d);
        if (!vkl_mul_u64(n, t->shape[d], &n))
            return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': element count overflows", path,
                               name);
    }
    t->n_elems = n;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_uint(off->child, &t->begin) ||
        !json_uint(off->child->next, &t->end))
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': \"data_offsets\" must be [begin, end] "
                           "with non-negative integers", path, name);
    if (t->begin > t->end)
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                           "]: begin is past end", path, name, t->begin, t->end);
    if (t->end > data_size)
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
                           "] end past the data section (%" PRIu64 " bytes from file byte %" PRIu64 "; the file is "
                           "truncated or the header is wrong)", path, name, t->begin, t->end, data_size,
                           st->data_offset);
    uint64_t bytes;
    if (!vkl_mul_u64(n, dtype_sizes[dtype], &bytes) || bytes != t->end - t->begin) {
        char shape[160];
        int p = 0;
        for (uint32_t i = 0; i < t->n_dims && p < (int)sizeof(shape) - 24; i++)
            p += snprintf(shape + p, sizeof(shape) - (size_t)p, "%s%" PRIu64, i ? ", " : "", t->shape[i]);
        shape[p] = '\0';
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s': shape [%s] of %s needs %" PRIu64
                           " elements x %u bytes, but data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64
                           " bytes", path, name, shape, dtype_names[dtype], n, dtype_sizes[dtype], t->begin, t->end,
                           t->end - t->begin);
    }
    t->name = vkl_strdup(name);
    t->data = st->map + st->data_offset + t->begin;
    return VKL_OK;
}

static vkl_status parse(vkl_safetensors *st, vkl_err *err) {
    const char *path = st->path;
    if (st->file_size < 8)
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: file is %" PRIu64 " bytes, too short for the 8-byte "
                           "header length", path, st->file_size);
    uint64_t N;
    memcpy(&N, st->map, 8);
    if (N > st->file_size - 8)
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: byte 0: header length %" PRIu64 " runs past the end "
                           "of the file (%" PRIu64 " bytes); not a safetensors file, or truncated", path, N,
                           st->file_size);
    if (N > VKL_ST_MAX_HEADER)
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: byte 0: header length %" PRIu64 " exceeds the "
                           "limit of %u bytes", path, N, VKL_ST_MAX_HEADER);
    st->header_len = N;
    st->data_offset = 8 + N;
    const char *h = (const char *)st->map + 8;
    uint64_t i0 = 0;
    while (i0 < N && is_ws(h[i0])) i0++;
    if (i0 == N || h[i0] != '{')
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: byte %" PRIu64 ": the header must be a JSON object "
                           "starting with '{'", path, 8 + i0);
    if (count_json_values(h, N) > MAX_JSON_VALUES)
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: the header holds more than %u JSON values", path,
                           MAX_JSON_VALUES);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(h, (size_t)N, &end, false);
    if (!root) {
        uint64_t at = end && end >= h && end <= h + N ? (uint64_t)(end - h) : 0;
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: byte %" PRIu64 ": the JSON header does not parse",
                           path, 8 + at);
    }
    vkl_status rc = VKL_OK;
    for (uint64_t i = (uint64_t)(end - h); i < N; i++)
        if (!is_ws(h[i])) {
            rc = vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: byte %" PRIu64 ": unexpected 0x%02x after the JSON "
                             "header (only space padding may follow)", path, 8 + i, (unsigned)(uint8_t)h[i]);
            goto done;
        }
    if (!cJSON_IsObject(root)) {
        rc = vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: byte %" PRIu64 ": the header is not a JSON object",
                         path, 8 + i0);
        goto done;
    }
    uint64_t count = 0;
    for (const cJSON *e = root->child; e; e = e->next) count++;
    st->tensors = vkl_calloc(count ? count : 1, sizeof(*st->tensors));
    const uint64_t data_size = st->file_size - st->data_offset;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (st->metadata) {
                rc = vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: \"__metadata__\" appears twice", path);
                goto done;
            }
            bool ok = cJSON_IsObject(e);
            for (const cJSON *m = ok ? e->child : NULL; m; m = m->next) ok = ok && cJSON_IsString(m);
            if (!ok) {
                rc = vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: \"__metadata__\" must be an object of strings",
                                 path);
                goto done;
            }
            /* Keys must be unique, as tensor names are: lookups would return the first, a writer keep the last. */
            uint64_t nm = 0;
            for (const cJSON *m = e->child; m; m = m->next) nm++;
            if (nm > 1) {
                const char **keys = vkl_malloc(nm * sizeof(*keys));
                uint64_t k = 0;
                for (const cJSON *m = e->child; m; m = m->next) keys[k++] = m->string;
                qsort(keys, nm, sizeof(*keys), cmp_str_ptr);
                for (k = 1; k < nm && !rc; k++)
                    if (!strcmp(keys[k - 1], keys[k]))
                        rc = vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: \"__metadata__\" key '%.200s' appears "
                                         "twice (expected unique keys)", path, keys[k]);
                free(keys);
                if (rc) goto done;
            }
            st->metadata = cJSON_Duplicate(e, true);
            continue;
        }
        if ((rc = parse_tensor(st, e, &st->tensors[st->n_tensors], data_size, err))) goto done;
        st->n_tensors++;
    }
    if (st->n_tensors) {
        /* Names must be unique: cJSON keeps duplicate keys, and a reader picking either would be a guess. */
        const char **names = vkl_malloc(st->n_tensors * sizeof(*names));
        for (uint64_t i = 0; i < st->n_tensors; i++) names[i] = st->tensors[i].name;
        qsort(names, st->n_tensors, sizeof(*names), cmp_str_ptr);
        for (uint64_t i = 1; i < st->n_tensors && !rc; i++)
            if (!strcmp(names[i - 1], names[i]))
                rc = vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensor '%s' appears twice in the header", path,
                                 names[i]);
        free(names);
        if (rc) goto done;
        by_begin *order = vkl_malloc(st->n_tensors * sizeof(*order));
        for (uint64_t i = 0; i < st->n_tensors; i++) order[i].t = &st->tensors[i];
        qsort(order, st->n_tensors, sizeof(*order), cmp_begin);
        const vkl_st_tensor *prev = NULL;
        for (uint64_t i = 0; i < st->n_tensors && !rc; i++) {
            const vkl_st_tensor *t = order[i].t;
            if (t->begin == t->end) continue;
            if (prev && t->begin < prev->end)
                rc = vkl_err_set(err, VKL_ERR_INPUT, "safetensors: %s: tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' "
                                 "[%" PRIu64 ", %" PRIu64 ") overlap in the data section", path, prev->name,
                                 prev->begin, prev->end, t->name, t->begin, t->end);
            prev = t;
        }
        free(order);
    }
done:
    cJSON_Delete(root);
    return rc;
}

static void free_contents(vkl_safetensors *st) {
    for (uint64_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->tensors);
    st->tensors = NULL;
    st->n_tensors = 0;
    cJSON_Delete(st->metadata);
    st->metadata = NULL;
}

void vkl_safetensors_close(vkl_safetensors *st) {
    if (!st) return;
    free_contents(st);
    st_priv *p = st->priv;
    if (p && p->mapped && st->map) vkl_os_unmap(st->map, p->map_len);
    free(p);
    free(st->path);
    free(st);
}

vkl_status vkl_safetensors_open_memory(const void *buf, uint64_t size, const char *name, vkl_safetensors **out,
                                       vkl_err *err) {
    *out = NULL;
    vkl_safetensors *st = vkl_calloc(1, sizeof(*st));
    st->path = vkl_strdup(name);
    st->priv = vkl_calloc(1, sizeof(st_priv));
    st->map = buf;
    st->file_size = size;
    vkl_status rc = parse(st, err);
    if (rc) {
        vkl_safetensors_close(st);
        return rc;
    }
    *out = st;
    return VKL_OK;
}

vkl_status vkl_safetensors_open(const char *path, vkl_safetensors **out, vkl_err *err) {
    *out = NULL;
    vkl_mapped_file mf;
    if (vkl_map_file(path, "safetensors", &mf, err)) return err->status;
    static const uint8_t empty[1];
    vkl_safetensors *st = vkl_calloc(1, sizeof(*st));
    st->path = vkl_strdup(path);
    st_priv *p = vkl_calloc(1, sizeof(*p));
    p->mapped = mf.data != NULL;
    p->map_len = (size_t)mf.size;
    st->priv = p;
    st->map = mf.data ? mf.data : empty;
    st->file_size = mf.size;
    vkl_status rc = parse(st, err);
    if (rc) {
        vkl_safetensors_close(st);
        return rc;
    }
    *out = st;
    return VKL_OK;
}

int64_t vkl_safetensors_find(const vkl_safetensors *st, const char *name) {
    for (uint64_t i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return (int64_t)i;
    return -1;
}

const char *vkl_safetensors_metadata(const vkl_safetensors *st, const char *key) {
    const cJSON *v = st->metadata ? cJSON_GetObjectItemCaseSensitive(st->metadata, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void vkl_st_tensor_to_f32(const vkl_st_tensor *t, float *dst) {
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case VKL_ST_F32:
        memcpy(dst, src, t->n_elems * 4);
        break;
    case VKL_ST_F16:
        for (uint64_t i = 0; i < t->n_elems; i++) {
            vkl_fp16 h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = vkl_fp16_to_f32(h);
        }
        break;
    case VKL_ST_BF16:
        for (uint64_t i = 0; i < t->n_elems; i++) {
            vkl_bf16 h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = vkl_bf16_to_f32(h);
        }
        break;
    default:
        break;
    }
}

/* ---------------------------------------------------------------------------------------------------------- */
/* Writer */

typedef struct {
    char *name;
    vkl_st_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[VKL_ST_MAX_DIMS];
    const void *data;
    uint64_t bytes;
} wtensor;

struct vkl_st_writer {
    wtensor *t;
    size_t n_t, cap_t;
    char **meta_k, **meta_v;
    size_t n_meta;
};

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = vkl_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }
static void sb_printf(sbuf *b, const char *fmt, ...) VKL_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    sb_putn(b, tmp, (size_t)VKL_MIN(k, (int)sizeof(tmp) - 1));
}
/* A JSON string literal. */
static void sb_json_str(sbuf *b, const char *s) {
    sb_puts(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char e[2] = {'\\', (char)*c};
            sb_putn(b, e, 2);
        } else if (*c < 0x20) {
            sb_printf(b, "\\u%04x", *c);
        } else {
            sb_putn(b, (const char *)c, 1);
        }
    }
    sb_puts(b, "\"");
}

vkl_st_writer *vkl_st_writer_new(void) { return vkl_calloc(1, sizeof(vkl_st_writer)); }

void vkl_st_writer_free(vkl_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    for (size_t i = 0; i < w->n_meta; i++) {
        free(w->meta_k[i]);
        free(w->meta_v[i]);
    }
    free(w->meta_k);
    free(w->meta_v);
    free(w);
}

void vkl_st_writer_set_metadata(vkl_st_writer *w, const char *key, const char *value) {
    for (size_t i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta_k[i], key)) {
            free(w->meta_v[i]);
            w->meta_v[i] = vkl_strdup(value);
            return;
        }
    w->meta_k = vkl_realloc(w->meta_k, (w->n_meta + 1) * sizeof(char *));
    w->meta_v = vkl_realloc(w->meta_v, (w->n_meta + 1) * sizeof(char *));
    w->meta_k[w->n_meta] = vkl_strdup(key);
    w->meta_v[w->n_meta] = vkl_strdup(value);
    w->n_meta++;
}

vkl_status vkl_st_writer_add(vkl_st_writer *w, const char *name, vkl_st_dtype dtype, uint32_t n_dims,
                             const uint64_t *shape, const void *data, vkl_err *err) {
    if ((unsigned)dtype >= VKL_ST_DTYPE_COUNT || n_dims > VKL_ST_MAX_DIMS)
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: tensor '%s': bad dtype or %u dimensions", name, n_dims);
    if (!strcmp(name, "__metadata__"))
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: a tensor cannot be named __metadata__");
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: tensor '%s' added twice", name);
    uint64_t n = 1;
    for (uint32_t d = 0; d < n_dims; d++)
        if (!vkl_mul_u64(n, shape[d], &n))
            return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: tensor '%s': element count overflows", name);
    uint64_t bytes;
    if (!vkl_mul_u64(n, dtype_sizes[dtype], &bytes))
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: tensor '%s': size overflows", name);
    if (bytes && !data)
        return vkl_err_set(err, VKL_ERR_INPUT, "safetensors: tensor '%s': no data for %" PRIu64 " bytes", name, bytes);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 16;
        w->t = vkl_realloc(w->t, w->cap_t * sizeof(*w->t));
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof(*t));
    t->name = vkl_strdup(name);
    t->dtype = dtype;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < n_dims; d++) t->shape[d] = shape[d];
    t->data = data;
    t->bytes = bytes;
    return VKL_OK;
}

/* The 8-byte length followed by the JSON header padded with spaces to a multiple of 8 bytes. */
static void build_header(const vkl_st_writer *w, sbuf *out, uint64_t *data_bytes) {
    sbuf j = {0};
    sb_puts(&j, "{");
    bool first = true;
    if (w->n_meta) {
        sb_puts(&j, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i) sb_puts(&j, ",");
            sb_json_str(&j, w->meta_k[i]);
            sb_puts(&j, ":");
            sb_json_str(&j, w->meta_v[i]);
        }
        sb_puts(&j, "}");
        first = false;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        if (!first) sb_puts(&j, ",");
        first = false;
        sb_json_str(&j, t->name);
        sb_printf(&j, ":{\"dtype\":\"%s\",\"shape\":[", dtype_names[t->dtype]);
        for (uint32_t d = 0; d < t->n_dims; d++) sb_printf(&j, "%s%" PRIu64, d ? "," : "", t->shape[d]);
        sb_printf(&j, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, off + t->bytes);
        off += t->bytes;
    }
    sb_puts(&j, "}");
    while ((8 + j.n) % 8) sb_puts(&j, " ");
    uint64_t N = j.n;
    sb_putn(out, (const char *)&N, 8);
    sb_putn(out, j.p, j.n);
    free(j.p);
    *data_bytes = off;
}

vkl_status vkl_st_writer_to_memory(vkl_st_writer *w, uint8_t **buf, uint64_t *size, vkl_err *err) {
    (void)err;
    sbuf h = {0};
    uint64_t data_bytes;
    build_header(w, &h, &data_bytes);
    uint8_t *p = vkl_malloc(h.n + data_bytes);
    memcpy(p, h.p, h.n);
    uint64_t pos = h.n;
    for (size_t i = 0; i < w->n_t; i++) {
        if (w->t[i].bytes) memcpy(p + pos, w->t[i].data, w->t[i].bytes);
        pos += w->t[i].bytes;
    }
    free(h.p);
    *buf = p;
    *size = pos;
    return VKL_OK;
}

typedef struct {
    const void *p;
    uint64_t n;
} part;

/* Stream the parts into a temporary file next to `path`, fsync it and rename it over `path`, so a reader never
 * sees a half-written file and a failed write leaves the previous one in place. */
static vkl_status write_parts_atomic(const char *path, const part *parts, size_t n_parts, const char *what,
                                     vkl_err *err) {
    size_t plen = strlen(path);
    char *tmp = vkl_malloc(plen + 16);
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    vkl_os_file fd;
    if (!vkl_os_create_temp(tmp, path, &fd)) {
        vkl_status st = vkl_err_create_failed(err, what, path, errno);
        free(tmp);
        return st;
    }
    vkl_fault_point();
    bool ok = true;
    for (size_t i = 0; ok && i < n_parts; i++) {
        /* in two halves, so that fault injection can stop a write in the middle of a part */
        uint64_t h = parts[i].n / 2;
        if (h) ok = vkl_os_write_all(fd, parts[i].p, h);
        if (i == 0) vkl_fault_point();
        if (ok && parts[i].n > h) ok = vkl_os_write_all(fd, (const uint8_t *)parts[i].p + h, parts[i].n - h);
    }
    vkl_fault_point();
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
    vkl_status st = VKL_OK;
    if (!ok) {
        vkl_os_remove(tmp);
        st = vkl_err_set(err, VKL_ERR_RUNTIME, "%s: %s: write failed: %s (the previous file, if any, is unchanged)",
                         what, path, strerror(e));
    }
    free(tmp);
    return st;
}

vkl_status vkl_write_file_atomic(const char *path, const void *data, size_t size, const char *what, vkl_err *err) {
    part p = {data, size};
    return write_parts_atomic(path, &p, 1, what, err);
}

vkl_status vkl_st_writer_write(vkl_st_writer *w, const char *path, vkl_err *err) {
    sbuf h = {0};
    uint64_t data_bytes;
    build_header(w, &h, &data_bytes);
    part *parts = vkl_malloc((w->n_t + 1) * sizeof(*parts));
    parts[0] = (part){h.p, h.n};
    for (size_t i = 0; i < w->n_t; i++) parts[i + 1] = (part){w->t[i].data, w->t[i].bytes};
    vkl_status st = write_parts_atomic(path, parts, w->n_t + 1, "safetensors", err);
    free(parts);
    free(h.p);
    return st;
}
