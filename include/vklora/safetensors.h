/* safetensors reader and writer (the format of Hugging Face / PEFT adapter weights), for F32, F16 and BF16 tensors.
 * The reader treats the file as untrusted; the writer streams to a temporary file renamed into place. */
#ifndef VKLORA_SAFETENSORS_H
#define VKLORA_SAFETENSORS_H

#include <cjson/cJSON.h>

#include "vklora/common.h"

/* Header lengths past this are rejected before anything is parsed (the reference implementation's limit). */
#define VKL_ST_MAX_HEADER (100u << 20)
#define VKL_ST_MAX_DIMS 8

typedef enum { VKL_ST_F32 = 0, VKL_ST_F16, VKL_ST_BF16, VKL_ST_DTYPE_COUNT } vkl_st_dtype;

const char *vkl_st_dtype_name(vkl_st_dtype t); /* "F32", "F16", "BF16" */
uint32_t vkl_st_dtype_size(vkl_st_dtype t);

typedef struct {
    char *name;                       /* owned */
    vkl_st_dtype dtype;
    uint32_t n_dims;                  /* 0 for a scalar */
    uint64_t shape[VKL_ST_MAX_DIMS];  /* row-major (torch) order: shape[n_dims-1] is contiguous */
    uint64_t n_elems;
    uint64_t begin, end;              /* data_offsets, relative to the data section */
    const void *data;                 /* into the mapping; may be unaligned */
} vkl_st_tensor;

typedef struct vkl_safetensors {
    char *path;
    uint64_t file_size;
    uint64_t header_len;   /* N: the JSON header's length */
    uint64_t data_offset;  /* 8 + N */
    uint64_t n_tensors;
    vkl_st_tensor *tensors; /* in header order */
    cJSON *metadata;        /* the "__metadata__" object (string values only), or NULL; owned */
    const uint8_t *map;
    void *priv;
} vkl_safetensors;

/* Open and validate a file:
 *   u64 N (little-endian) | N bytes of JSON { name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..} }
 *   (padded with spaces) | data section.
 * Checks: N fits in the file and is at most VKL_ST_MAX_HEADER; the header is one JSON object and nothing but
 * whitespace follows it; names are unique; dtype is F32/F16/BF16; shape entries are non-negative integers whose
 * product times the dtype size equals end - begin without overflow; begin <= end <= data size; no two tensors
 * share a byte. Errors name the file and the byte offset or the tensor key. */
vkl_status vkl_safetensors_open(const char *path, vkl_safetensors **out, vkl_err *err);
/* The same on a caller-owned buffer that must outlive the handle; `name` is used in messages. */
vkl_status vkl_safetensors_open_memory(const void *buf, uint64_t size, const char *name, vkl_safetensors **out,
                                       vkl_err *err);
void vkl_safetensors_close(vkl_safetensors *st);
int64_t vkl_safetensors_find(const vkl_safetensors *st, const char *name); /* index or -1 */
const char *vkl_safetensors_metadata(const vkl_safetensors *st, const char *key); /* NULL if absent */
/* Convert a tensor's elements to fp32 into dst (t->n_elems floats). */
void vkl_st_tensor_to_f32(const vkl_st_tensor *t, float *dst);

/* ---- Writer: tensors are referenced (not copied) until write returns, laid out in add order, 8-byte aligned
 * header as the reference implementation writes it. ---- */
typedef struct vkl_st_writer vkl_st_writer;

vkl_st_writer *vkl_st_writer_new(void);
void vkl_st_writer_free(vkl_st_writer *w);
/* A "__metadata__" string entry (a later call with the same key replaces the value). */
void vkl_st_writer_set_metadata(vkl_st_writer *w, const char *key, const char *value);
vkl_status vkl_st_writer_add(vkl_st_writer *w, const char *name, vkl_st_dtype dtype, uint32_t n_dims,
                             const uint64_t *shape, const void *data, vkl_err *err);
/* Write atomically (temp file next to `path`, fsync, rename). */
vkl_status vkl_st_writer_write(vkl_st_writer *w, const char *path, vkl_err *err);
/* Serialize into a malloc'd buffer (tests). */
vkl_status vkl_st_writer_to_memory(vkl_st_writer *w, uint8_t **buf, uint64_t *size, vkl_err *err);

/* Write `size` bytes to `path` atomically (temp file + fsync + rename); `what` prefixes error messages. */
vkl_status vkl_write_file_atomic(const char *path, const void *data, size_t size, const char *what, vkl_err *err);

#endif
