/* Internals shared by the data pipeline's source files (src/data*.c); not part of the public API. */
#ifndef VKLORA_DATA_INTERNAL_H
#define VKLORA_DATA_INTERNAL_H

#include <stdint.h>

/* RNG streams of the data pipeline, so the split and the epoch orders never draw the same numbers. */
#define VKL_DATA_STREAM_EPOCH 0x4441544100000000ull /* "DATA" << 32 | epoch */
#define VKL_DATA_STREAM_SPLIT 0x53504C4954000000ull /* "SPLIT" */

/* perm = a Fisher-Yates permutation of 0..n-1 drawn from Philox with `key`. */
void vkl_data_shuffle(uint32_t n, uint32_t key, uint32_t *perm);

#endif
