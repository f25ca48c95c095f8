/* GGUF (versions 2 and 3) reader and writer.
 * The reader treats the file as untrusted: every count, length, offset and size is bounds-checked against
 * the file, and errors name the byte offset and what was expected. Tensor data is memory-mapped. */
#ifndef VKLORA_GGUF_H
#define VKLORA_GGUF_H

#include "vklora/common.h"

/* Metadata value types, numbered as in the GGUF specification. */
typedef enum {
    VKL_GGUF_UINT8 = 0,
    VKL_GGUF_INT8 = 1,
    VKL_GGUF_UINT16 = 2,
    VKL_GGUF_INT16 = 3,
    VKL_GGUF_UINT32 = 4,
    VKL_GGUF_INT32 = 5,
    VKL_GGUF_FLOAT32 = 6,
    VKL_GGUF_BOOL = 7,
    VKL_GGUF_STRING = 8,
    VKL_GGUF_ARRAY = 9,
    VKL_GGUF_UINT64 = 10,
    VKL_GGUF_INT64 = 11,
    VKL_GGUF_FLOAT64 = 12,
    VKL_GGUF_TYPE_COUNT
} vkl_gguf_type;

const char *vkl_gguf_type_name(vkl_gguf_type t);

#define VKL_GGUF_MAX_DIMS 4
#define VKL_GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the mapped file (not NUL-terminated in the file; the reader keeps a NUL-terminated copy). */
typedef struct {
    const char *str; /* NUL-terminated copy owned by the vkl_gguf */
    uint64_t len;
} vkl_gguf_str;

/* One metadata value. Arrays may nest (an array of arrays). */
typedef struct vkl_gguf_value {
    vkl_gguf_type type;
    union {
        uint64_t u64; /* every unsigned integer type and bool, widened */
        int64_t i64;  /* every signed integer type, widened */
        double f64;   /* float32 and float64, widened */
        vkl_gguf_str str;
        struct {
            vkl_gguf_type elem_type;
            uint64_t count;
            /* Elements decoded: for scalar element types a packed array of the file's element type
             * (uint8_t[], int32_t[], float[] ... as laid out in the file, little-endian host assumed);
             * for strings a vkl_gguf_str[]; for nested arrays a vkl_gguf_value[]. */
            const void *data;
        } arr;
    } v;
} vkl_gguf_value;

typedef struct {
    vkl_gguf_str key;
    vkl_gguf_value value;
    uint64_t file_offset; /* byte offset of the key's length field, for messages */
} vkl_gguf_kv;

typedef struct {
    vkl_gguf_str name;
    uint32_t n_dims;
    int64_t ne[VKL_GGUF_MAX_DIMS]; /* ggml order: ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint32_t type;                 /* a vkl_ggml_type (see quant.h) */
    uint64_t offset;               /* relative to the start of the data section */
    uint64_t size;                 /* bytes, from the type's block layout */
    const void *data;              /* points into the mapping; NULL for a writer-side tensor without data */
} vkl_gguf_tensor;

typedef struct vkl_gguf {
    char *path;
    uint32_t version;
    uint64_t n_kv;
    vkl_gguf_kv *kv;
    uint64_t n_tensors;
    vkl_gguf_tensor *tensors;
    uint32_t alignment;
    uint64_t data_offset; /* absolute file offset of the data section (file_size for a file without tensors
                           * that ends before the alignment padding, as llama.cpp's vocab files do) */
    uint64_t file_size;
    const uint8_t *map;   /* the whole file, read-only mapping */
    void *priv;           /* reader internals (string arena, ...) */
} vkl_gguf;

/* Open and fully validate a GGUF file. On failure returns VKL_ERR_INPUT (bad file) or VKL_ERR_RUNTIME (I/O)
 * with a message like "gguf: model.gguf: byte 1234: tensor 7 'blk.0.attn_q.weight': offset 99999 past
 * the end of the data section (size 4096)". */
vkl_status vkl_gguf_open(const char *path, vkl_gguf **out, vkl_err *err);
/* Same on a caller-owned memory buffer (not copied; must outlive the handle). `name` is used in messages. */
vkl_status vkl_gguf_open_memory(const void *buf, uint64_t size, const char *name, vkl_gguf **out, vkl_err *err);
void vkl_gguf_close(vkl_gguf *g);

/* Lookups. find_* return an index or -1. */
int64_t vkl_gguf_find_key(const vkl_gguf *g, const char *key);
const vkl_gguf_value *vkl_gguf_get(const vkl_gguf *g, const char *key);
int64_t vkl_gguf_find_tensor(const vkl_gguf *g, const char *name);

/* Typed getters: return false when the key is absent or of an incompatible type (any integer type converts
 * to an integer when the value fits, any float/int converts to a double). */
bool vkl_gguf_get_u64(const vkl_gguf *g, const char *key, uint64_t *out);
bool vkl_gguf_get_i64(const vkl_gguf *g, const char *key, int64_t *out);
bool vkl_gguf_get_f64(const vkl_gguf *g, const char *key, double *out);
bool vkl_gguf_get_bool(const vkl_gguf *g, const char *key, bool *out);
const char *vkl_gguf_get_str(const vkl_gguf *g, const char *key); /* NULL if absent or not a string */
/* Array accessor: returns the array value (type ARRAY) or NULL. elem_type VKL_GGUF_TYPE_COUNT accepts any
 * element type. */
const vkl_gguf_value *vkl_gguf_get_arr(const vkl_gguf *g, const char *key, vkl_gguf_type elem_type);

/* ---- Writer ----
 * Builds a GGUF in memory (metadata + tensor infos) and streams tensor data to a temporary file that is renamed
 * over the destination only when everything is written, so a good file is never replaced by a partial one. */
typedef struct vkl_gguf_writer vkl_gguf_writer;

vkl_gguf_writer *vkl_gguf_writer_new(uint32_t version /* 3 */, uint32_t alignment /* 0 = default 32 */);
void vkl_gguf_writer_free(vkl_gguf_writer *w);
/* Metadata, written in call order. Keys must be unique (a duplicate replaces the earlier value in place). */
void vkl_gguf_writer_set_u8(vkl_gguf_writer *w, const char *key, uint8_t v);
void vkl_gguf_writer_set_i8(vkl_gguf_writer *w, const char *key, int8_t v);
void vkl_gguf_writer_set_u16(vkl_gguf_writer *w, const char *key, uint16_t v);
void vkl_gguf_writer_set_i16(vkl_gguf_writer *w, const char *key, int16_t v);
void vkl_gguf_writer_set_u32(vkl_gguf_writer *w, const char *key, uint32_t v);
void vkl_gguf_writer_set_i32(vkl_gguf_writer *w, const char *key, int32_t v);
void vkl_gguf_writer_set_u64(vkl_gguf_writer *w, const char *key, uint64_t v);
void vkl_gguf_writer_set_i64(vkl_gguf_writer *w, const char *key, int64_t v);
void vkl_gguf_writer_set_f32(vkl_gguf_writer *w, const char *key, float v);
void vkl_gguf_writer_set_f64(vkl_gguf_writer *w, const char *key, double v);
void vkl_gguf_writer_set_bool(vkl_gguf_writer *w, const char *key, bool v);
void vkl_gguf_writer_set_str(vkl_gguf_writer *w, const char *key, const char *v);
/* Array of scalars: `data` holds `count` elements of `elem_type` packed as in the file. */
void vkl_gguf_writer_set_arr(vkl_gguf_writer *w, const char *key, vkl_gguf_type elem_type, const void *data,
                             uint64_t count);
void vkl_gguf_writer_set_arr_str(vkl_gguf_writer *w, const char *key, const char *const *strs, uint64_t count);
/* Copy any value read from another file (including nested arrays). */
void vkl_gguf_writer_set_value(vkl_gguf_writer *w, const char *key, const vkl_gguf_value *v);
/* Add a tensor. `data` (of the size the type and shape imply) is referenced, not copied: it must stay valid
 * until vkl_gguf_writer_write returns; NULL is only accepted for an empty tensor (writing fails otherwise).
 * ne is in ggml order. Tensors are laid out in add order, each at the next aligned offset, the last one
 * padded too; a file without tensors ends right after the metadata (what llama.cpp writes). */
vkl_status vkl_gguf_writer_add_tensor(vkl_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                                      const int64_t *ne, const void *data, vkl_err *err);
/* Write atomically (temp file + rename). */
vkl_status vkl_gguf_writer_write(vkl_gguf_writer *w, const char *path, vkl_err *err);
/* The GGUF this writer would write, opened as a reader without serializing the tensor data: metadata and tensor
 * infos parsed (and validated) as from a file, each tensor's data pointing at the buffer given to add_tensor, which
 * must outlive the view (Hugging Face folders read in place). `name` is used in messages. */
vkl_status vkl_gguf_writer_view(vkl_gguf_writer *w, const char *name, vkl_gguf **out, vkl_err *err);
/* Serialize into a malloc'd buffer (for tests and round trips). */
vkl_status vkl_gguf_writer_to_memory(vkl_gguf_writer *w, uint8_t **buf, uint64_t *size, vkl_err *err);

#endif
