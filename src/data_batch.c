/* Epochs and batches: the per-epoch visiting order (Philox-driven Fisher-Yates), the row plan (one example per
 * row, or next-fit packing of whole examples) and the (B, T) batch arrays with next-token targets. */
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"
#include "vklora/data.h"
#include "vklora/rng.h"

void vkl_data_shuffle(uint32_t n, uint32_t key, uint32_t *perm) {
    for (uint32_t i = 0; i < n; i++) perm[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        /* 64 random bits make the modulo bias (i / 2^64) irrelevant. */
        uint32_t o[2];
        vkl_philox2x32(key, i, 0, o);
        uint64_t r = ((uint64_t)o[1] << 32) | o[0];
        uint32_t j = (uint32_t)(r % i);
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

void vkl_data_epoch_order(const vkl_dataset *d, uint64_t seed, uint32_t epoch, uint32_t *perm) {
    vkl_data_shuffle(d->n, vkl_rng_key(seed, VKL_DATA_STREAM_EPOCH | epoch), perm);
}

/* Rows of an epoch; calls place(row, example) for each example when given. Returns UINT64_MAX when an example
 * does not fit in T. */
static uint64_t walk_rows(const vkl_dataset *d, const uint32_t *perm, uint32_t T, bool packing,
                          void (*place)(void *ctx, uint64_t row, uint32_t ex), void *ctx) {
    uint64_t rows = 0;
    uint32_t used = 0; /* tokens in the open row; 0 = no open row */
    for (uint32_t k = 0; k < d->n; k++) {
        uint32_t i = perm ? perm[k] : k;
        uint32_t len = d->ex[i].n;
        if (len > T) return UINT64_MAX;
        if (!packing || used == 0 || used + len > T) {
            rows++;
            used = 0;
        }
        used += len;
        if (place) place(ctx, rows - 1, i);
    }
    return rows;
}

typedef struct {
    vkl_data_plan *p;
    uint32_t at;
} place_ctx;

static void place_item(void *vctx, uint64_t row, uint32_t ex) {
    place_ctx *c = vctx;
    c->p->row_start[row + 1] = c->at + 1;
    c->p->items[c->at++] = ex;
}

vkl_status vkl_data_plan_epoch(const vkl_dataset *d, const uint32_t *perm, uint32_t B, uint32_t T, bool packing,
                               vkl_data_plan **out, vkl_err *err) {
    *out = NULL;
    if (B == 0 || T == 0) return vkl_err_set(err, VKL_ERR_INPUT, "data: batch shape %ux%u: B and T must be >= 1", B, T);
    uint64_t rows = walk_rows(d, perm, T, packing, NULL, NULL);
    if (rows == UINT64_MAX)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "data: %s: an example of %u tokens does not fit in rows of T = %u (load the data with "
                           "max_seq_length <= T)",
                           d->path ? d->path : "?", d->max_len, T);
    vkl_data_plan *p = vkl_calloc(1, sizeof(*p));
    p->B = B;
    p->T = T;
    p->packing = packing;
    p->n_rows = (uint32_t)rows;
    p->n_batches = (uint32_t)((rows + B - 1) / B);
    p->row_start = vkl_calloc(rows + 1, sizeof(uint32_t));
    p->items = vkl_malloc((d->n ? d->n : 1) * sizeof(uint32_t));
    place_ctx c = {p, 0};
    walk_rows(d, perm, T, packing, place_item, &c);
    *out = p;
    return VKL_OK;
}

void vkl_data_plan_free(vkl_data_plan *p) {
    if (!p) return;
    free(p->row_start);
    free(p->items);
    free(p);
}

uint32_t vkl_data_batch_len(const vkl_dataset *d, const vkl_data_plan *p, uint32_t index) {
    uint32_t best = 0;
    for (uint64_t r = (uint64_t)index * p->B; r < (uint64_t)(index + 1) * p->B && r < p->n_rows; r++) {
        uint32_t len = 0;
        for (uint32_t k = p->row_start[r]; k < p->row_start[r + 1]; k++) len += d->ex[p->items[k]].n;
        best = VKL_MAX(best, len);
    }
    return best;
}

vkl_status vkl_data_fill_batch(const vkl_dataset *d, const vkl_data_plan *p, uint32_t index, vkl_batch *b,
                               vkl_err *err) {
    if (b->B != p->B || b->T == 0 || b->T > p->T)
        return vkl_err_set(err, VKL_ERR_INPUT, "data: batch of %ux%u does not match the plan's B = %u, T <= %u", b->B,
                           b->T, p->B, p->T);
    if (index >= p->n_batches)
        return vkl_err_set(err, VKL_ERR_INPUT, "data: batch %u of an epoch of %u batches", index, p->n_batches);
    uint32_t need = vkl_data_batch_len(d, p, index);
    if (need > b->T) return vkl_err_set(err, VKL_ERR_INPUT, "data: batch %u needs T >= %u, got %u", index, need, b->T);
    const uint32_t T = b->T;
    b->n_targets = 0;
    for (uint32_t r = 0; r < p->B; r++) {
        uint64_t row = (uint64_t)index * p->B + r;
        int32_t *tok = b->tokens + (size_t)r * T, *tgt = b->targets + (size_t)r * T;
        int32_t *pos = b->pos + (size_t)r * T, *seg = b->seg + (size_t)r * T;
        uint32_t t = 0;
        if (row < p->n_rows) {
            for (uint32_t k = p->row_start[row]; k < p->row_start[row + 1]; k++) {
                const vkl_example *e = &d->ex[p->items[k]];
                for (uint32_t j = 0; j < e->n; j++) {
                    tok[t + j] = e->tokens[j];
                    /* The last token of a document predicts nothing: the next one belongs to another document. */
                    tgt[t + j] = j + 1 < e->n ? e->labels[j + 1] : -1;
                    pos[t + j] = (int32_t)j;
                    seg[t + j] = (int32_t)t;
                    b->n_targets += tgt[t + j] >= 0;
                }
                t += e->n;
            }
        }
        /* Padding is its own segment, so real tokens never share attention with it. */
        for (uint32_t s = t; s < T; s++) {
            tok[s] = d->pad_id;
            tgt[s] = -1;
            pos[s] = (int32_t)(s - t);
            seg[s] = (int32_t)t;
        }
    }
    return VKL_OK;
}

uint64_t vkl_data_epoch_rows(const vkl_dataset *d, uint64_t seed, uint32_t epoch, uint32_t T, bool packing) {
    if (!d->n || T == 0) return 0;
    uint32_t *perm = vkl_malloc(d->n * sizeof(uint32_t));
    vkl_data_epoch_order(d, seed, epoch, perm);
    uint64_t rows = walk_rows(d, perm, T, packing, NULL, NULL);
    free(perm);
    return rows == UINT64_MAX ? 0 : rows;
}

uint64_t vkl_data_epoch_batches(const vkl_dataset *d, uint64_t seed, uint32_t epoch, uint32_t B, uint32_t T,
                                bool packing) {
    if (B == 0) return 0;
    return (vkl_data_epoch_rows(d, seed, epoch, T, packing) + B - 1) / B;
}
