/* The optimizer ops: gradient norm by a fixed-order two-level reduction, and the AdamW step, both split so that
 * no binding exceeds maxStorageBufferRange. */
#include "ops/optim.h"

#include <string.h>

#define SUMSQ_WG 64u
#define SUMSQ_PER_INV 16u
#define SUMSQ_PER_WG (SUMSQ_WG * SUMSQ_PER_INV)
#define ADAMW_WG 64u

typedef struct {
    uint32_t n, out_offset, square, pad;
} sumsq_push;

typedef struct {
    uint32_t n, pad0, pad1, pad2;
} adamw_push;

static uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* vk may be NULL when only planning memory: assume the largest alignment Vulkan allows. */
static uint64_t align_of(const vkl_vk *vk) {
    if (!vk) return 256;
    return vk->info.min_storage_offset_align ? vk->info.min_storage_offset_align : 4;
}

static void grid(const vkl_vk *vk, uint64_t wgs, uint32_t *gx, uint32_t *gy) {
    uint64_t mx = vk->info.max_workgroup_count[0];
    *gx = (uint32_t)VKL_MIN(wgs, mx);
    *gy = (uint32_t)ceil_div(wgs, *gx);
}

/* Elements per first-level chunk: a multiple of SUMSQ_PER_WG so partial counts add up exactly. */
static uint64_t sumsq_chunk(const vkl_vk *vk) {
    uint64_t e = vkl_max_bind_elems(vk, 4, SUMSQ_PER_WG);
    uint64_t mx = (uint64_t)vk->info.max_workgroup_count[0] * vk->info.max_workgroup_count[1] * SUMSQ_PER_WG;
    return VKL_MIN(VKL_MIN(e, mx), 1ull << 30);
}

uint64_t vkl_op_sumsq_scratch_bytes(const vkl_vk *vk, uint64_t n) {
    /* two halves, each holding the first level's partials, plus alignment slack */
    uint64_t p1 = ceil_div(n ? n : 1, SUMSQ_PER_WG) + 1;
    return 2 * (p1 * 4 + align_of(vk));
}

static vkl_status pipe_get(vkl_vk *vk, vkl_op_cache *c, const char *shader, uint32_t nb, uint32_t push, uint32_t wg,
                           uint32_t n_spec, uint32_t spec1, const vkl_pipeline **p, vkl_err *err) {
    vkl_pipeline_desc d = {.shader = shader, .n_bindings = nb, .push_size = push, .n_spec = n_spec,
                           .spec = {wg, spec1}};
    for (uint32_t i = 0; i < nb; i++) d.bindings[i] = VKL_BIND_STORAGE;
    return vkl_op_cache_get(vk, c, &d, p, err);
}

/* One pass: partial sums of x[0..n) (bound as given) into out at float index out_off of `ob` (bound aligned). */
static vkl_status sumsq_pass(vkl_vk *vk, const vkl_pipeline *p, vkl_binding xb, uint64_t n, const vkl_buffer *ob,
                             uint64_t out_byte, uint64_t n_out, bool square, vkl_err *err) {
    uint64_t al = align_of(vk);
    uint64_t bind = out_byte / al * al;
    vkl_binding b[2] = {xb, {.buf = ob, .offset = bind, .range = out_byte - bind + n_out * 4}};
    sumsq_push pc = {(uint32_t)n, (uint32_t)((out_byte - bind) / 4), square, 0};
    uint32_t gx, gy;
    grid(vk, ceil_div(n, SUMSQ_PER_WG), &gx, &gy);
    return vkl_cmd_dispatch(vk, p, b, 2, &pc, sizeof(pc), gx, gy, 1, err);
}

vkl_status vkl_op_sumsq(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, uint64_t n, const vkl_buffer *scratch,
                        vkl_tview out, vkl_err *err) {
    if (n == 0) return vkl_err_set(err, VKL_ERR_RUNTIME, "sumsq: empty input");
    if (x.offset % align_of(vk) || out.offset % 4)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "sumsq: misaligned input or output offset");
    if (scratch->size < vkl_op_sumsq_scratch_bytes(vk, n))
        return vkl_err_set(err, VKL_ERR_RUNTIME, "sumsq: scratch buffer too small");
    const vkl_pipeline *p;
    if (pipe_get(vk, c, "sumsq", 2, sizeof(sumsq_push), SUMSQ_WG, 2, SUMSQ_PER_INV, &p, err)) return err->status;
    bool own = !vk->recording;
    if (own && vkl_cmd_begin(vk, err)) return err->status;
    vkl_status st = VKL_OK;
    uint64_t chunk = sumsq_chunk(vk);
    uint64_t count = ceil_div(n, SUMSQ_PER_WG); /* partials of the first level */
    uint64_t half = scratch->size / 2;
    bool direct = count == 1;
    for (uint64_t e0 = 0, w0 = 0; e0 < n && !st; e0 += chunk) {
        uint64_t ne = VKL_MIN(chunk, n - e0);
        vkl_binding xb = {.buf = x.buf, .offset = x.offset + e0 * 4, .range = ne * 4};
        if (direct)
            st = sumsq_pass(vk, p, xb, ne, out.buf, out.offset, 1, true, err);
        else
            st = sumsq_pass(vk, p, xb, ne, scratch, w0 * 4, ceil_div(ne, SUMSQ_PER_WG), true, err);
        w0 += ceil_div(ne, SUMSQ_PER_WG);
    }
    /* Reduce the partials, ping-ponging between the halves of the scratch buffer. */
    uint64_t src = 0;
    while (!st && !direct && count > 0) {
        uint64_t next = ceil_div(count, SUMSQ_PER_WG);
        vkl_binding xb = {.buf = scratch, .offset = src, .range = count * 4};
        if (next == 1) {
            st = sumsq_pass(vk, p, xb, count, out.buf, out.offset, 1, false, err);
            break;
        }
        uint64_t dst = src == 0 ? half / align_of(vk) * align_of(vk) : 0;
        st = sumsq_pass(vk, p, xb, count, scratch, dst, next, false, err);
        src = dst;
        count = next;
    }
    if (own) {
        vkl_err tmp = {0};
        vkl_status s2 = vkl_cmd_submit_wait(vk, st ? &tmp : err);
        if (!st) st = s2;
    }
    return st;
}

vkl_status vkl_op_adamw(vkl_vk *vk, vkl_op_cache *c, vkl_tview p, vkl_tview g, vkl_tview m1, vkl_tview m2,
                        vkl_tview hyper, uint64_t n, vkl_err *err) {
    uint64_t al = align_of(vk);
    if (p.offset % al || g.offset % al || m1.offset % al || m2.offset % al || hyper.offset % al)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "adamw: offsets must be multiples of %llu bytes",
                           (unsigned long long)al);
    const vkl_pipeline *pipe;
    if (pipe_get(vk, c, "adamw", 5, sizeof(adamw_push), ADAMW_WG, 1, 0, &pipe, err)) return err->status;
    bool own = !vk->recording;
    if (own && vkl_cmd_begin(vk, err)) return err->status;
    vkl_status st = VKL_OK;
    uint64_t chunk = VKL_MIN(vkl_max_bind_elems(vk, 4, ADAMW_WG), 1ull << 30);
    for (uint64_t e0 = 0; e0 < n && !st; e0 += chunk) {
        uint64_t ne = VKL_MIN(chunk, n - e0);
        vkl_binding b[5] = {
            {.buf = p.buf, .offset = p.offset + e0 * 4, .range = ne * 4},
            {.buf = g.buf, .offset = g.offset + e0 * 4, .range = ne * 4},
            {.buf = m1.buf, .offset = m1.offset + e0 * 4, .range = ne * 4},
            {.buf = m2.buf, .offset = m2.offset + e0 * 4, .range = ne * 4},
            {.buf = hyper.buf, .offset = hyper.offset, .range = sizeof(vkl_adamw_hyper)},
        };
        adamw_push pc = {(uint32_t)ne, 0, 0, 0};
        uint32_t gx, gy;
        grid(vk, ceil_div(ne, ADAMW_WG), &gx, &gy);
        st = vkl_cmd_dispatch(vk, pipe, b, 5, &pc, sizeof(pc), gx, gy, 1, err);
    }
    if (own) {
        vkl_err tmp = {0};
        vkl_status s2 = vkl_cmd_submit_wait(vk, st ? &tmp : err);
        if (!st) st = s2;
    }
    return st;
}
