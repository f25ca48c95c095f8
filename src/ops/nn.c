/* Host side of the transformer ops in src/ops/nn.h: argument checks, pipeline lookup, and dispatches split into
 * chunks (rows, elements or whole sequences) so that no binding exceeds maxStorageBufferRange. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/coopmat.h"
#include "ops/nn.h"
#include "ops/nn_push.h"
#include "vklora/quant.h"

#define NN_WG 64u    /* a multiple of every subgroup size in use (8..64), within Vulkan's guaranteed 128 */
#define XENT_WG 256u /* rows of up to 150k logits: more lanes per row, still within 1024 on every desktop GPU */
#define IDX_MAX (1ull << 30) /* elements per binding, so the shaders' uint index arithmetic cannot wrap */

/* Binding limits of this device: chunks are sized so that (offset rounded down to align) + data <= limit. */
typedef struct nn_lim {
    uint64_t align, limit;
} nn_lim;

static nn_lim lim_get(const vkl_vk *vk) {
    nn_lim l;
    l.align = VKL_MAX(VKL_MAX(vk->info.min_storage_offset_align, vk->info.min_texel_offset_align), 4);
    l.limit = vkl_max_bind_elems(vk, 1, 1); /* bytes; honours VKLORA_MAX_BIND_BYTES */
    return l;
}

/* How many units of `unit_bytes` one binding can hold (0 if not even one). */
static uint64_t lim_units(const nn_lim *l, uint64_t unit_bytes) {
    if (unit_bytes == 0) return IDX_MAX;
    if (l->limit <= l->align + 4) return 0;
    return (l->limit - l->align - 4) / unit_bytes;
}

/* Bind bytes [byte0, byte0 + bytes) of tv (rounded up to whole words): the binding starts at the aligned offset
 * at or below, *byte_off gets the distance from there. */
static vkl_binding bind_bytes(const nn_lim *l, vkl_tview tv, uint64_t byte0, uint64_t bytes, uint32_t *byte_off) {
    uint64_t pos = tv.offset + byte0, b = pos / l->align * l->align;
    *byte_off = (uint32_t)(pos - b);
    return (vkl_binding){.buf = tv.buf, .offset = b, .range = (pos - b + bytes + 3) / 4 * 4,
                         .texel_format = VK_FORMAT_UNDEFINED};
}

/* The same for fp32/int32 tensors: *elem_off is in 4-byte elements. */
static vkl_binding bind_elems(const nn_lim *l, vkl_tview tv, uint64_t elem0, uint64_t n, uint32_t *elem_off) {
    uint32_t bo;
    vkl_binding b = bind_bytes(l, tv, elem0 * 4, n * 4, &bo);
    *elem_off = bo / 4;
    return b;
}

/* An absent optional tensor: the shader never touches it (a push flag says so), but the slot needs a buffer. */
static vkl_binding bind_dummy(const vkl_buffer *any) {
    return (vkl_binding){.buf = any, .offset = 0, .range = 4, .texel_format = VK_FORMAT_UNDEFINED};
}

/* Product of up to three sizes, UINT64_MAX on overflow (which then fails every bounds check). */
static uint64_t mul3(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t r;
    if (!vkl_mul_u64(a, b, &r) || !vkl_mul_u64(r, c, &r)) return UINT64_MAX;
    return r;
}

static vkl_status check_view(const char *op, const char *name, vkl_tview tv, uint64_t bytes, bool required,
                             vkl_err *err) {
    if (!tv.buf) {
        if (!required) return VKL_OK;
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: %s is required", op, name);
    }
    uint64_t end;
    if (tv.offset % 4)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: %s: byte offset %llu is not a multiple of 4", op, name,
                           (unsigned long long)tv.offset);
    if (bytes == UINT64_MAX || !vkl_add_u64(tv.offset, bytes, &end) || end > tv.buf->size)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "%s: %s: %llu bytes from byte %llu do not fit its %llu-byte buffer", op, name,
                           (unsigned long long)bytes, (unsigned long long)tv.offset,
                           (unsigned long long)tv.buf->size);
    return VKL_OK;
}

static vkl_status get_pipe(vkl_vk *vk, vkl_op_cache *c, const char *shader, uint32_t n_bindings,
                           uint32_t push_size, uint32_t wg, const vkl_pipeline **out, vkl_err *err) {
    vkl_pipeline_desc desc = {.shader = shader, .n_bindings = n_bindings, .push_size = push_size, .n_spec = 1,
                              .spec = {wg}};
    for (uint32_t i = 0; i < n_bindings; i++) desc.bindings[i] = VKL_BIND_STORAGE;
    return vkl_op_cache_get(vk, c, &desc, out, err);
}

static uint32_t wg_size(const vkl_vk *vk, uint32_t want) {
    uint32_t m = vk->info.max_workgroup_invocations ? vk->info.max_workgroup_invocations : 128;
    return VKL_MIN(want, m);
}

static vkl_status need_subgroups(const vkl_vk *vk, const char *op, vkl_err *err) {
    if (vk->info.subgroup_arithmetic && vk->info.subgroup_basic) return VKL_OK;
    return vkl_err_set(err, VKL_ERR_RUNTIME,
                       "%s: device \"%s\" lacks subgroup arithmetic in compute shaders, which this op needs",
                       op, vk->info.name);
}

/* Dispatch n_wg workgroups, spilling from x into y past maxComputeWorkGroupCount[0]. */
static vkl_status dispatch(vkl_vk *vk, const vkl_pipeline *pipe, const vkl_binding *b, uint32_t nb,
                           const void *pc, uint32_t ps, uint64_t n_wg, vkl_err *err) {
    if (n_wg == 0) return VKL_OK;
    uint64_t mx = VKL_MAX(vk->info.max_workgroup_count[0], 1u), my = VKL_MAX(vk->info.max_workgroup_count[1], 1u);
    uint64_t gx = VKL_MIN(n_wg, mx), gy = (n_wg + gx - 1) / gx;
    if (gy > my)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: %llu workgroups exceed the device's grid %llux%llu",
                           pipe->name ? pipe->name : "op", (unsigned long long)n_wg, (unsigned long long)mx,
                           (unsigned long long)my);
    return vkl_cmd_dispatch(vk, pipe, b, nb, pc, ps, (uint32_t)gx, (uint32_t)gy, 1, err);
}

static vkl_status nn_begin(vkl_vk *vk, bool *own, vkl_err *err) {
    *own = !vk->recording;
    return *own ? vkl_cmd_begin(vk, err) : VKL_OK;
}

/* Submit even after a recording error so the command buffer leaves the recording state; err keeps the first
 * message. */
static vkl_status nn_end(vkl_vk *vk, bool own, vkl_status st, vkl_err *err) {
    if (own) {
        vkl_status st2 = vkl_cmd_submit_wait(vk, err);
        if (!st) st = st2;
    }
    return st;
}

static vkl_status too_big(const char *op, const char *what, uint64_t bytes, const nn_lim *l, vkl_err *err) {
    return vkl_err_set(err, VKL_ERR_INPUT,
                       "%s: %s (%llu bytes) does not fit one binding of at most %llu bytes on this device", op, what,
                       (unsigned long long)bytes, (unsigned long long)l->limit);
}

/* ---------------------------------------------------------------------------------------------------------- */

static const char *get_rows_shader(uint32_t type) {
    switch (type) {
    case VKL_TYPE_F32: return "get_rows_f32";
    case VKL_TYPE_F16: return "get_rows_f16";
    case VKL_TYPE_BF16: return "get_rows_bf16";
    case VKL_TYPE_Q8_0: return "get_rows_q8_0";
    case VKL_TYPE_Q4_0: return "get_rows_q4_0";
    case VKL_TYPE_Q4_K: return "get_rows_q4_k";
    case VKL_TYPE_Q5_K: return "get_rows_q5_k";
    case VKL_TYPE_Q6_K: return "get_rows_q6_k";
    default: return NULL;
    }
}

vkl_status vkl_op_get_rows(vkl_vk *vk, vkl_op_cache *c, uint32_t type, vkl_tview table, uint64_t table_rows,
                           vkl_tview ids, vkl_tview out, uint32_t n_ids, uint32_t n, vkl_err *err) {
    const char *op = "get_rows";
    const vkl_type_traits *t = vkl_type_traits_get(type);
    const char *shader = get_rows_shader(type);
    if (!t || !shader)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: type %u (%s) has no get_rows shader", op, type,
                           t && t->name ? t->name : "unknown");
    uint64_t row_bytes;
    if (n == 0 || !vkl_type_row_bytes(type, n, &row_bytes))
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: row length %u is not a positive multiple of the %s block size %u",
                           op, n, t->name, t->block_size);
    uint64_t table_bytes = mul3(table_rows, row_bytes, 1);
    vkl_status st;
    if ((st = check_view(op, "table (read as whole 32-bit words)", table,
                         table_bytes == UINT64_MAX ? UINT64_MAX : (table_bytes + 3) / 4 * 4, true, err)) ||
        (st = check_view(op, "ids", ids, mul3(n_ids, 4, 1), true, err)) ||
        (st = check_view(op, "out", out, mul3(n_ids, n, 4), true, err)))
        return st;
    if (n_ids == 0) return VKL_OK;

    nn_lim l = lim_get(vk);
    uint64_t per_row = (n + 3) / 4;
    uint64_t id_chunk = VKL_MIN(VKL_MIN(lim_units(&l, 4ull * n), lim_units(&l, 4)), IDX_MAX / per_row);
    uint64_t tab_chunk = lim_units(&l, row_bytes);
    if (id_chunk == 0) return too_big(op, "one output row", 4ull * n, &l, err);
    if (tab_chunk == 0) return too_big(op, "one table row", row_bytes, &l, err);
    /* ids are int32: rows past INT32_MAX cannot be addressed, so they need no binding. */
    uint64_t reach = VKL_MIN(table_rows, (uint64_t)INT32_MAX);

    uint32_t wg = wg_size(vk, NN_WG);
    const vkl_pipeline *pipe;
    if ((st = get_pipe(vk, c, shader, 3, sizeof(vkl_get_rows_push), wg, &pipe, err))) return st;
    bool own;
    if ((st = nn_begin(vk, &own, err))) return st;
    for (uint64_t i0 = 0; i0 < n_ids && !st; i0 += id_chunk) {
        uint64_t ni = VKL_MIN(id_chunk, n_ids - i0);
        /* An empty table still runs one dispatch so every id writes its zero row. */
        for (uint64_t r0 = 0; (r0 < reach || r0 == 0) && !st; r0 += tab_chunk) {
            uint64_t nr = VKL_MIN(tab_chunk, reach - r0);
            vkl_get_rows_push pc = {.n_ids = (uint32_t)ni, .n = n, .table_row0 = (uint32_t)r0,
                                    .table_rows = (uint32_t)nr, .table_total = (uint32_t)reach};
            vkl_binding b[3];
            b[0] = nr ? bind_bytes(&l, table, r0 * row_bytes, nr * row_bytes, &pc.table_byte_off)
                      : bind_dummy(ids.buf);
            b[1] = bind_elems(&l, ids, i0, ni, &pc.ids_off);
            b[2] = bind_elems(&l, out, i0 * n, ni * n, &pc.out_off);
            st = dispatch(vk, pipe, b, 3, &pc, sizeof(pc), (ni * per_row + wg - 1) / wg, err);
        }
    }
    return nn_end(vk, own, st, err);
}

/* ---------------------------------------------------------------------------------------------------------- */

/* RMSNorm and its backward come in two kernels: a row per workgroup reduced through shared memory (GPUs), or a row
 * per subgroup reduced by subgroupAdd alone (-DSG_ROWS: CPU devices, whose one subgroup size the host knows; lavapipe
 * runs a workgroup with barriers as coroutines, several times slower). VKLORA_NORM=workgroup|subgroup|auto forces one
 * (subgroup falls back to workgroup on a device whose subgroup size varies). *rows gets the rows per workgroup,
 * *per_subgroup whether the row-per-subgroup kernel runs. */
static vkl_status norm_kernel(const vkl_vk *vk, const char *base, char *name, size_t n, uint32_t *wg, uint32_t *rows,
                              bool *per_subgroup, vkl_err *err) {
    const char *env = getenv("VKLORA_NORM");
    const vkl_device_info *d = &vk->info;
    bool sg;
    if (!env || !*env || !strcmp(env, "auto")) sg = d->vk_type == VK_PHYSICAL_DEVICE_TYPE_CPU;
    else if (!strcmp(env, "subgroup")) sg = true;
    else if (!strcmp(env, "workgroup")) sg = false;
    else return vkl_err_set(err, VKL_ERR_INPUT, "VKLORA_NORM=%s: expected auto, workgroup or subgroup", env);
    *wg = wg_size(vk, NN_WG);
    *rows = 1;
    sg = sg && d->min_subgroup_size == d->max_subgroup_size && d->subgroup_size >= 1 && d->subgroup_size <= *wg;
    if (sg) {
        *wg = *wg / d->subgroup_size * d->subgroup_size;
        *rows = *wg / d->subgroup_size;
    }
    snprintf(name, n, sg ? "%s_sg" : "%s", base);
    *per_subgroup = sg;
    return VKL_OK;
}

/* The row-per-subgroup kernels read rows as vec4s (their "_v4" build) when the row length and every row view's
 * offset in the binding are multiples of 4 floats: then divides those offsets by 4 and returns true. Records the
 * kernel that runs the dispatch: "workgroup", "subgroup" or "subgroup_vec4". */
static bool norm_vec4(const char *op, bool per_subgroup, uint32_t n, uint32_t **offs, uint32_t n_offs) {
    bool v4 = per_subgroup && n % 4 == 0;
    for (uint32_t i = 0; i < n_offs; i++) v4 = v4 && *offs[i] % 4 == 0;
    for (uint32_t i = 0; v4 && i < n_offs; i++) *offs[i] /= 4;
    vkl_op_variant_used(op, v4 ? "subgroup_vec4" : per_subgroup ? "subgroup" : "workgroup");
    return v4;
}

vkl_status vkl_op_rmsnorm(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview w, vkl_tview y, vkl_tview rstd,
                          uint32_t rows, uint32_t n, float eps, vkl_err *err) {
    const char *op = "rmsnorm";
    vkl_status st;
    if (n == 0) return vkl_err_set(err, VKL_ERR_INPUT, "%s: row length must be positive", op);
    if (!(eps >= 0.0f) || !isfinite(eps))
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: eps must be a finite value >= 0, got %g", op, (double)eps);
    uint64_t mat = mul3(rows, n, 4);
    if ((st = check_view(op, "x", x, mat, true, err)) || (st = check_view(op, "w", w, 4ull * n, true, err)) ||
        (st = check_view(op, "y", y, mat, true, err)) ||
        (st = check_view(op, "rstd", rstd, 4ull * rows, false, err)) || (st = need_subgroups(vk, op, err)))
        return st;
    if (rows == 0) return VKL_OK;
    nn_lim l = lim_get(vk);
    uint64_t chunk = VKL_MIN(lim_units(&l, 4ull * n), IDX_MAX / n);
    if (chunk == 0) return too_big(op, "one row", 4ull * n, &l, err);
    uint32_t wg, per_wg;
    char name[32];
    bool per_sg;
    if ((st = norm_kernel(vk, "rmsnorm", name, sizeof(name), &wg, &per_wg, &per_sg, err))) return st;
    char name4[40];
    snprintf(name4, sizeof(name4), "%s_v4", name);
    bool own;
    if ((st = nn_begin(vk, &own, err))) return st;
    for (uint64_t r0 = 0; r0 < rows && !st; r0 += chunk) {
        uint64_t nr = VKL_MIN(chunk, rows - r0);
        vkl_rmsnorm_push pc = {.rows = (uint32_t)nr, .n = n, .has_rstd = rstd.buf != NULL, .eps = eps};
        vkl_binding b[4] = {
            bind_elems(&l, x, r0 * n, nr * n, &pc.x_off),
            bind_elems(&l, w, 0, n, &pc.w_off),
            bind_elems(&l, y, r0 * n, nr * n, &pc.y_off),
            rstd.buf ? bind_elems(&l, rstd, r0, nr, &pc.rstd_off) : bind_dummy(x.buf),
        };
        uint32_t *offs[3] = {&pc.x_off, &pc.w_off, &pc.y_off};
        const vkl_pipeline *pipe;
        if ((st = get_pipe(vk, c, norm_vec4(op, per_sg, n, offs, 3) ? name4 : name, 4, sizeof(vkl_rmsnorm_push), wg,
                           &pipe, err)))
            break;
        st = dispatch(vk, pipe, b, 4, &pc, sizeof(pc), (nr + per_wg - 1) / per_wg, err);
    }
    return nn_end(vk, own, st, err);
}

vkl_status vkl_op_rmsnorm_back(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview w, vkl_tview rstd, vkl_tview dy,
                               vkl_tview dx, bool accumulate, vkl_tview dw, uint32_t rows, uint32_t n,
                               vkl_err *err) {
    const char *op = "rmsnorm_back";
    vkl_status st;
    if (n == 0) return vkl_err_set(err, VKL_ERR_INPUT, "%s: row length must be positive", op);
    uint64_t mat = mul3(rows, n, 4);
    if ((st = check_view(op, "x", x, mat, true, err)) || (st = check_view(op, "w", w, 4ull * n, true, err)) ||
        (st = check_view(op, "rstd", rstd, 4ull * rows, true, err)) ||
        (st = check_view(op, "dy", dy, mat, true, err)) || (st = check_view(op, "dx", dx, mat, true, err)) ||
        (st = check_view(op, "dw", dw, 4ull * n, false, err)) || (st = need_subgroups(vk, op, err)))
        return st;
    if (rows == 0) return VKL_OK;
    nn_lim l = lim_get(vk);
    uint64_t chunk = VKL_MIN(lim_units(&l, 4ull * n), IDX_MAX / n);
    if (chunk == 0) return too_big(op, "one row", 4ull * n, &l, err);
    uint32_t wg, per_wg;
    char name[32];
    bool per_sg;
    if ((st = norm_kernel(vk, "rmsnorm_back", name, sizeof(name), &wg, &per_wg, &per_sg, err))) return st;
    char name4[40];
    snprintf(name4, sizeof(name4), "%s_v4", name);
    const vkl_pipeline *pdx, *pdw = NULL;
    if (dw.buf && (st = get_pipe(vk, c, "rmsnorm_back_dw", 5, sizeof(vkl_rmsnorm_back_push), wg, &pdw, err)))
        return st;
    bool own;
    if ((st = nn_begin(vk, &own, err))) return st;
    for (uint64_t r0 = 0; r0 < rows && !st; r0 += chunk) {
        uint64_t nr = VKL_MIN(chunk, rows - r0);
        vkl_rmsnorm_back_push pc = {.rows = (uint32_t)nr, .n = n, .accumulate = accumulate};
        vkl_binding b[5] = {
            bind_elems(&l, x, r0 * n, nr * n, &pc.x_off),
            bind_elems(&l, w, 0, n, &pc.w_off),
            bind_elems(&l, rstd, r0, nr, &pc.rstd_off),
            bind_elems(&l, dy, r0 * n, nr * n, &pc.dy_off),
            bind_elems(&l, dx, r0 * n, nr * n, &pc.dx_off),
        };
        vkl_rmsnorm_back_push p4 = pc; /* the dw pass below keeps the float offsets */
        uint32_t *offs[4] = {&p4.x_off, &p4.w_off, &p4.dy_off, &p4.dx_off};
        if ((st = get_pipe(vk, c, norm_vec4(op, per_sg, n, offs, 4) ? name4 : name, 5, sizeof(vkl_rmsnorm_back_push),
                           wg, &pdx, err)))
            break;
        st = dispatch(vk, pdx, b, 5, &p4, sizeof(p4), (nr + per_wg - 1) / per_wg, err);
        if (!st && pdw) {
            /* dw sums over this chunk's rows; successive chunks add to it (dispatches are serialized). */
            b[4] = bind_elems(&l, dw, 0, n, &pc.dw_off);
            st = dispatch(vk, pdw, b, 5, &pc, sizeof(pc), (n + wg - 1) / wg, err);
        }
    }
    return nn_end(vk, own, st, err);
}

/* ---------------------------------------------------------------------------------------------------------- */

void vkl_rope_pack_freqs(const double *f, uint32_t n, float *out) {
    for (uint32_t i = 0; i < n; i++) {
        out[2 * i] = (float)f[i];
        out[2 * i + 1] = (float)(f[i] - (double)out[2 * i]);
    }
}

void vkl_rope_freqs_base(double freq_base, uint32_t rope_dim, double *f) {
    for (uint32_t i = 0; i < rope_dim / 2; i++) f[i] = pow(freq_base, -2.0 * i / rope_dim);
}

vkl_status vkl_op_rope(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview pos, uint32_t rows, uint32_t n_heads,
                       uint32_t head_dim, const vkl_rope_params *rp, bool inverse, vkl_err *err) {
    const char *op = "rope";
    vkl_status st;
    if (!rp) return vkl_err_set(err, VKL_ERR_INPUT, "%s: parameters are required", op);
    uint32_t rope_dim = rp->rope_dim;
    if (n_heads == 0 || head_dim == 0 || rope_dim == 0 || rope_dim % 2 || rope_dim > head_dim)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "%s: need n_heads > 0 and an even rope_dim in 2..head_dim, got n_heads %u, head_dim %u, "
                           "rope_dim %u", op, n_heads, head_dim, rope_dim);
    if (!isfinite(rp->mscale))
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: mscale must be a finite number, got %g", op,
                           (double)rp->mscale);
    uint64_t row_elems = (uint64_t)n_heads * head_dim;
    if ((st = check_view(op, "x", x, mul3(rows, row_elems, 4), true, err)) ||
        (st = check_view(op, "pos", pos, 4ull * rows, true, err)) ||
        (st = check_view(op, "freqs (rope_dim/2 float pairs)", rp->freqs, 4ull * rope_dim, true, err)))
        return st;
    if (rows == 0) return VKL_OK;
    nn_lim l = lim_get(vk);
    uint32_t npairs = rope_dim / 2;
    uint64_t chunk = VKL_MIN(lim_units(&l, 4 * row_elems), IDX_MAX / row_elems);
    if (chunk == 0) return too_big(op, "one row", 4 * row_elems, &l, err);
    uint32_t wg = wg_size(vk, NN_WG);
    const vkl_pipeline *pipe;
    if ((st = get_pipe(vk, c, "rope", 3, sizeof(vkl_rope_push), wg, &pipe, err))) return st;
    bool own;
    if ((st = nn_begin(vk, &own, err))) return st;
    for (uint64_t r0 = 0; r0 < rows && !st; r0 += chunk) {
        uint64_t nr = VKL_MIN(chunk, rows - r0);
        vkl_rope_push pc = {.rows = (uint32_t)nr, .n_heads = n_heads, .head_dim = head_dim, .rope_dim = rope_dim,
                            .neox = rp->neox, .inverse = inverse, .mscale = rp->mscale};
        vkl_binding b[3] = {
            bind_elems(&l, x, r0 * row_elems, nr * row_elems, &pc.x_off),
            bind_elems(&l, pos, r0, nr, &pc.pos_off),
            bind_elems(&l, rp->freqs, 0, rope_dim, &pc.freqs_off),
        };
        st = dispatch(vk, pipe, b, 3, &pc, sizeof(pc), (nr * npairs + wg - 1) / wg, err);
    }
    return nn_end(vk, own, st, err);
}

/* ---------------------------------------------------------------------------------------------------------- */

static vkl_status attn_check(const char *op, const vkl_attn_shape *s, vkl_err *err) {
    if (s->n_head_kv == 0 || s->n_head == 0 || s->n_head % s->n_head_kv)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: n_head %u must be a positive multiple of n_head_kv %u", op,
                           s->n_head, s->n_head_kv);
    if (s->D == 0 || s->D > 256)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: head dimension %u is outside 1..256", op, s->D);
    if ((uint64_t)s->pos0 + s->T > s->S)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "%s: queries reach position pos0 + T = %llu but sequences hold S = %u keys", op,
                           (unsigned long long)s->pos0 + s->T, s->S);
    if (!isfinite(s->scale)) return vkl_err_set(err, VKL_ERR_INPUT, "%s: scale is not finite", op);
    if (!(s->softcap >= 0.0f) || !isfinite(s->softcap))
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: softcap %g: expected 0 (off) or a positive finite cap", op,
                           (double)s->softcap);
    return VKL_OK;
}

/* The window the kernels get: one that covers every key (window >= S > pos0 + t - j) is no window, which also
 * keeps their int arithmetic on positions + window from wrapping. */
static uint32_t attn_window(const vkl_attn_shape *s) { return s->window < s->S ? s->window : 0; }

static const char *attn_dmax(uint32_t D) { return D <= 64 ? "d64" : D <= 128 ? "d128" : "d256"; }

/* Kernel variants. scalar: one lane per query (or key) row, loops over D, storage-buffer loads; any D and any
 * 4-byte offset. tile: each lane owns R rows held as vec4 registers and reads the other side's rows through
 * RGBA32F texel views, so each row loaded feeds R rows (~10x on lavapipe, where texel fetches are vector gathers
 * and per-lane storage loads are scalar loops); it needs D % 4 == 0 and 16-byte aligned tensors. flash: the
 * FlashAttention-2 form for GPUs (shaders/attention_flash*.comp): a workgroup stages blocks of queries and keys in
 * shared memory and runs the block products as f32 FMA loops; any D and offset. coopmat: the same source with the
 * block products on cooperative matrices (f16 operands, f32 accumulation, the device's tile shape). auto: CPU
 * devices take tile (barriers and shared memory are slow on lavapipe, whose coopmat is an emulation); other devices
 * coopmat where the device has a usable shape and this build the shaders, else flash. VKLORA_ATTN=
 * auto|tile|scalar|flash|coopmat forces one; a variant that cannot run a shape falls back (coopmat to flash, flash
 * to tile, tile to scalar; a forced one says so on stderr once), and coopmat where it cannot run at all is an input
 * error saying why. Measured (tools/bench_attn.c, T 256, 8 heads on 4, D 64, forward / backward, 2 loaded cores):
 * Debian 12 lavapipe tile 16 / 57 ms, flash 551 / 1703 ms; Debian 13 lavapipe (coopmat emulated with subgroup
 * operations) tile 12 / 58 ms, flash 172 / 641 ms, coopmat 124 / 459 ms. So CPU devices keep tile; the flash
 * kernels are for GPUs, where no timing exists yet (no GPU here): lavapipe proves their correctness only. */
typedef enum { ATTN_SCALAR, ATTN_TILE, ATTN_FLASH, ATTN_COOPMAT } attn_variant;
static const char *const attn_variant_names[] = {"scalar", "tile", "flash", "coopmat"};

/* The device's cooperative-matrix shape when the attention kernels can use it: f16 rows in shared memory must
 * start 16-byte aligned, so every side a multiple of 8. */
static const vkl_coopmat_shape *attn_coop_shape(const vkl_vk *vk, uint32_t *sg, uint32_t *req, const char **why) {
    const vkl_coopmat_shape *cs = vkl_coopmat_pick(vk, sg, req);
    if (!cs) {
        *why = vkl_coopmat_why_not(vk);
        return NULL;
    }
    if (cs->M % 8 || cs->N % 8 || cs->K % 8) {
        *why = "the device's matrix shape has a side that is not a multiple of 8, which the attention kernels need";
        return NULL;
    }
    return cs;
}

static vkl_status attn_pick(const vkl_vk *vk, const char *op, attn_variant *v, bool *forced, vkl_err *err) {
    const char *env = getenv("VKLORA_ATTN"), *why = NULL;
    uint32_t sg, req;
    *forced = env && *env && strcmp(env, "auto");
    if (!*forced) {
        *v = vk->info.vk_type == VK_PHYSICAL_DEVICE_TYPE_CPU ? ATTN_TILE
             : attn_coop_shape(vk, &sg, &req, &why)         ? ATTN_COOPMAT
                                                              : ATTN_FLASH;
        return VKL_OK;
    }
    for (int i = 0; i < (int)VKL_ARRAY_LEN(attn_variant_names); i++)
        if (!strcmp(env, attn_variant_names[i])) {
            *v = (attn_variant)i;
            if (*v == ATTN_COOPMAT && !attn_coop_shape(vk, &sg, &req, &why))
                return vkl_err_set(err, VKL_ERR_INPUT, "%s: VKLORA_ATTN=coopmat: device %u (%s): %s", op,
                                   vk->info.index, vk->info.name, why);
            return VKL_OK;
        }
    return vkl_err_set(err, VKL_ERR_INPUT, "%s: VKLORA_ATTN=%s: expected auto, tile, scalar, flash or coopmat", op,
                       env);
}

/* Loop iterations one invocation runs, counted as llvmpipe's loop limiter counts them (every iteration of every
 * loop), for the forward (pass 0), dq (1) and dk/dv (2) kernels; compared with the device's limit. A lane walks
 * the union of the ranges of its subgroup's rows, and a subgroup lies within a workgroup of `span` rows: with a
 * window, each query sees at most `window` keys and each key is seen by at most `window` queries, so that union
 * holds at most window + span - 1. */
static uint64_t attn_loop_iterations(const vkl_attn_shape *s, bool tile, int pass, uint64_t span) {
    uint64_t group = s->n_head / s->n_head_kv, keys = s->S, queries = s->T, d = s->D, w = attn_window(s);
    if (w) {
        keys = VKL_MIN(keys, w + span - 1);
        queries = VKL_MIN(queries, w + span - 1);
    }
    if (tile) {
        if (pass == 2) return (queries * group + VKL_ATTN_TILE_QB - 1) / VKL_ATTN_TILE_QB;
        return pass == 0 ? (keys + VKL_ATTN_TILE_KB - 1) / VKL_ATTN_TILE_KB : keys;
    }
    if (pass == 2) return queries * (1 + group * (1 + 3 * d));
    return keys * (1 + (pass ? 3 : 2) * d);
}

/* Items of the walked side (keys for the forward and dq passes, queries for dk/dv) per dispatch: all of them
 * (pos0 + T keys, T queries) when one invocation stays within the device's loop limit. Past it, the scalar kernels
 * (~D iterations per item) walk slices of at most *slice items, one dispatch each (each keeps ~3D iterations for
 * its prologue and epilogue); the tile kernels (one iteration per 4 keys in the forward, per key in dq, per 4
 * (query, head) pairs in dk/dv) are refused. */
static vkl_status attn_slice(const vkl_vk *vk, const char *op, const vkl_attn_shape *s, bool tile, int pass,
                             uint64_t span, uint32_t *slice, vkl_err *err) {
    uint64_t lim = vk->info.max_loop_iterations, n = attn_loop_iterations(s, tile, pass, span);
    *slice = pass == 2 ? s->T : s->pos0 + s->T;
    if (!lim || n <= lim) return VKL_OK;
    if (!tile) {
        uint64_t group = s->n_head / s->n_head_kv, d = s->D, over = 3 * d + 64;
        uint64_t per = pass == 2 ? 1 + group * (1 + 3 * d) : 1 + (pass ? 3 : 2) * d;
        if (lim > over + per) {
            *slice = (uint32_t)VKL_MIN((lim - over) / per, *slice);
            return VKL_OK;
        }
    }
    return vkl_err_set(err, VKL_ERR_INPUT,
                       "%s: %u x %u tokens with head dimension %u need %llu loop iterations in one shader invocation; "
                       "%s stops loops after %llu: use a shorter max_seq_length%s", op, s->T, s->S, s->D,
                       (unsigned long long)n, vk->info.driver_name, (unsigned long long)lim,
                       tile ? "" : " (or a model whose head dimension is a multiple of 4, which runs a leaner kernel)");
}

/* Head-dimension bucket of the tile kernels (D <= bucket; the padded vec4s are zeros) and rows per lane. A CPU
 * device wants many rows per lane (register tiles amortise the row loads; spills are cheap); on a GPU the
 * per-lane rows already take DV4 * 4 registers each, so one. Fixed per (device, bucket), which keeps the op cache
 * (keyed by shader and workgroup size) exact. Measured on lavapipe at D = 64, T = 512: see tools/bench_attn.c.
 * dk/dv at D 128 and 256 take 2 rows (1 before): each q/dout row a lane fetches and broadcasts then feeds 2 keys,
 * and the per-batch work (row fetches, the pair index, lse and Di) is paid once for both; `vklora-bench-attn
 * --profile` at T 2048, alternating, took 0.57-0.86x the dk/dv time at D 128 and 0.55-0.78x at D 256. The cost is
 * compile time, once per pipeline (Mesa caches it): cold, the backward's first dispatch took 3.4 -> 9.5 s at D 128
 * and 10 -> 34 s at D 256. More rows at D 64 (8 instead of 4: 0.8x, and 8 with 2 pairs a batch: 0.8-0.9x) took
 * 57 s and 24 s to compile, so D 64 keeps 4. The forward at D 256 takes 2 rows too (0.77-0.89x its time at T 2048
 * and at T 512 x 8, 2.5 s more to compile); the dq pass at D 256 gained nothing from 2. */
static uint32_t attn_tile_bucket(uint32_t D) { return D <= 16 ? 16 : D <= 64 ? 64 : D <= 128 ? 128 : 256; }
static uint32_t attn_tile_rows(const vkl_vk *vk, uint32_t bucket, int pass) {
    if (vk->info.vk_type != VK_PHYSICAL_DEVICE_TYPE_CPU) return 1;
    static const uint32_t rows[3][4] = {/* forward */ {4, 4, 2, 2}, /* dq */ {4, 4, 2, 1}, /* dk/dv */ {4, 4, 2, 2}};
    uint32_t bi = bucket <= 16 ? 0 : bucket <= 64 ? 1 : bucket <= 128 ? 2 : 3;
    const char *env = getenv("VKLORA_ATTN_ROWS"); /* tuning only: must stay fixed for the process */
    if (env && *env) {
        unsigned long r = strtoul(env, NULL, 10);
        if (r >= 1 && r <= 8) return (uint32_t)r;
    }
    return rows[pass][bi];
}

/* The tile kernels fetch the rows every lane reads once per subgroup and pass them around by shuffles at constant
 * lanes (row_own / row_at in shaders/common/attn.glsl). That needs shuffles, a subgroup size fixed when the
 * pipeline is made (the device's only size, or its default size required through subgroup size control with full
 * subgroups) and workgroups of whole subgroups. Returns that size (*required: whether the pipeline must ask for
 * it), 0 when there is none: the scalar kernels run. */
static uint32_t attn_tile_subgroup(const vkl_vk *vk, uint32_t wg, uint32_t *required) {
    const vkl_device_info *d = &vk->info;
    uint32_t sg = vkl_op_default_subgroup(vk, required);
    if (!d->subgroup_basic || !d->subgroup_shuffle || sg == 0 || wg % sg || (*required && !d->compute_full_subgroups))
        return *required = 0;
    return sg;
}

/* The tile kernels' optional features as their FEAT specialization constant: lavapipe would run the code of a
 * runtime-disabled feature anyway (it masks lanes instead of branching). */
static uint32_t attn_tile_feat(const vkl_attn_shape *s, vkl_tview seg, vkl_tview delta) {
    return (seg.buf ? VKL_ATTN_HAS_SEG : 0) | (s->softcap > 0 ? VKL_ATTN_FEAT_SOFTCAP : 0) |
           (delta.buf ? VKL_ATTN_HAS_DELTA : 0);
}

static vkl_status attn_tile_pipe(vkl_vk *vk, vkl_op_cache *c, const char *name, uint32_t n_bindings,
                                 const vkl_bind_kind *kinds, uint32_t wg, uint32_t rows, uint32_t feat,
                                 const vkl_pipeline **out, vkl_err *err) {
    uint32_t required, sg = attn_tile_subgroup(vk, wg, &required);
    vkl_pipeline_desc desc = {.shader = name, .n_bindings = n_bindings, .push_size = sizeof(vkl_attn_push),
                              .n_spec = 4, .spec = {wg, sg, rows, feat}, .required_subgroup_size = required};
    for (uint32_t i = 0; i < n_bindings; i++) desc.bindings[i] = kinds[i];
    return vkl_op_cache_get(vk, c, &desc, out, err);
}

/* ---- flash kernels (shaders/attention_flash.comp, attention_flash_back.comp) ---- */

/* One pass of the flash kernels (0 forward, 1 dq, 2 dk/dv) on this device and shape: blocks of b query rows and b
 * keys (BR = BC), D padded to dp, and the pipeline description with its specialization constants. */
typedef struct attn_flash_plan {
    bool coop;
    uint32_t wg, sg, lm, ln, lk, b, dp;
    vkl_pipeline_desc desc;
} attn_flash_plan;

static uint64_t ceil_div64(uint64_t a, uint64_t b) { return (a + b - 1) / b; }
static uint32_t gcd32(uint32_t a, uint32_t b) {
    while (b) {
        uint32_t t = a % b;
        a = b, b = t;
    }
    return a;
}
static uint32_t lcm32(uint32_t a, uint32_t b) { return a / gcd32(a, b) * b; }

/* Shared memory of one pass for block b, mirroring the arrays of the shaders (strides SD = DP + 8, SB = BC + 8,
 * SF = BC + 4, SO = DP + 4; ob bytes per operand element; scr the coopmat staging tiles). */
static uint64_t attn_flash_smem(int pass, uint64_t b, uint64_t dp, uint64_t ob, uint64_t scr) {
    uint64_t sd = dp + 8, sb = b + 8, sf = b + 4, so = dp + 4;
    if (pass == 0) return ob * (3 * b * sd + b * sb) + 4 * (b * sf + b * so + 5 * b) + scr;
    if (pass == 1) return ob * (4 * b * sd + b * sb) + 4 * (2 * b * sf + b * so + 6 * b) + scr;
    return ob * (4 * b * sd + 2 * b * sb) + 4 * (2 * b * sf + 7 * b) + scr;
}

/* Loop iterations of one block product (C[m, n] over k) per invocation, counted as llvmpipe counts them. */
static uint64_t attn_flash_prod(const attn_flash_plan *p, uint64_t m, uint64_t n, uint64_t k) {
    if (!p->coop) return ceil_div64(m * n, p->wg) * (k + 1) + 1;
    uint64_t tiles = (m / p->lm) * (n / p->ln);
    return ceil_div64(tiles, p->wg / p->sg) * (k / p->lk + 2 + ceil_div64((uint64_t)p->lm * p->ln, p->sg)) + 1;
}

/* Loop iterations one invocation of a pass runs (every iteration of every loop), for the device's loop limit.
 * The walk covers the union of a block's ranges: with a window, b rows see at most window + b - 1 keys (and b keys
 * are seen by at most window + b - 1 queries of each head). */
static uint64_t attn_flash_loops(const attn_flash_plan *p, const vkl_attn_shape *s, int pass) {
    uint64_t b = p->b, dp = p->dp, d = s->D, w = attn_window(s), wg = p->wg;
    uint64_t rows = ceil_div64(b, wg), stage = ceil_div64(b * dp, wg), rowwise = rows * (2 * b + 2);
    if (pass == 2) {
        uint64_t q = w ? VKL_MIN((uint64_t)s->T, w + b - 1) : s->T;
        uint64_t per = rows * (d + 1) + stage + 2 * attn_flash_prod(p, b, b, dp) + rowwise +
                       2 * attn_flash_prod(p, b, dp, b) + 2;
        return 3 * stage + 2 + (uint64_t)(s->n_head / s->n_head_kv) * (ceil_div64(q, b) + 1) * per;
    }
    uint64_t keys = (uint64_t)s->pos0 + s->T;
    if (w) keys = VKL_MIN(keys, w + b - 1);
    uint64_t per = stage + (pass ? 2 : 1) * attn_flash_prod(p, b, b, dp) + rowwise + attn_flash_prod(p, b, dp, b) + 1;
    return rows * (d + 1) + 4 * stage + b + 2 + (ceil_div64(keys, b) + 1) * per;
}

/* Plans a pass of the flash (coop false) or coopmat kernels; false with *why when this device or shape cannot run
 * it. Blocks: the largest of 32, 16, 8, 4 (multiples of the matrix shape's sides for coopmat) whose arrays fit the
 * device's shared memory. D is padded with zeros to a multiple of 4 (flash) or of the shape's N and K (coopmat). */
static bool attn_flash_plan_make(const vkl_vk *vk, const vkl_attn_shape *s, bool coop, int pass, attn_flash_plan *p,
                                 const char **why) {
    static const char *const names[2][3] = {
        {"attention_flash", "attention_flash_back_dq", "attention_flash_back_dkdv"},
        {"attention_flash_coopmat", "attention_flash_back_dq_coopmat", "attention_flash_back_dkdv_coopmat"}};
    memset(p, 0, sizeof(*p));
    p->coop = coop;
    p->sg = p->lm = p->ln = p->lk = 1;
    uint32_t unit = 4, dunit = 4, req = 0;
    if (coop) {
        const vkl_coopmat_shape *cs = attn_coop_shape(vk, &p->sg, &req, why);
        if (!cs) return false;
        uint32_t rows, cols;
        p->wg = vkl_coopmat_desc(&p->desc, cs, p->sg, req, &rows, &cols);
        p->lm = cs->M, p->ln = cs->N, p->lk = cs->K;
        dunit = lcm32(cs->N, cs->K);
        unit = lcm32(cs->M, dunit);
    } else {
        p->wg = wg_size(vk, NN_WG);
    }
    p->dp = (s->D + dunit - 1) / dunit * dunit;
    uint64_t ob = coop ? 2 : 4, scr = coop ? 4ull * (p->wg / p->sg) * p->lm * (p->ln + 4) : 0;
    uint32_t top = VKL_MAX(32u, unit);
    const char *env = getenv("VKLORA_ATTN_BLOCK"); /* tests and tuning only: a smaller largest block */
    if (env && *env) {
        unsigned long m = strtoul(env, NULL, 10);
        while (top > unit && top > m) top /= 2;
    }
    for (uint32_t b = top; b >= unit && !p->b; b /= 2)
        if (b % unit == 0 && attn_flash_smem(pass, b, p->dp, ob, scr) <= vk->info.max_shared_memory) p->b = b;
    if (!p->b) {
        *why = "its smallest blocks do not fit the device's shared memory at this head dimension";
        return false;
    }
    uint64_t lim = vk->info.max_loop_iterations;
    if (lim && attn_flash_loops(p, s, pass) > lim) {
        *why = "one invocation would pass the driver's loop limit at this sequence length";
        return false;
    }
    p->desc.shader = names[coop][pass];
    p->desc.n_bindings = pass == 0 ? 6 : pass == 1 ? 8 : 9;
    for (uint32_t i = 0; i < p->desc.n_bindings; i++) p->desc.bindings[i] = VKL_BIND_STORAGE;
    p->desc.push_size = sizeof(vkl_attn_push);
    p->desc.required_subgroup_size = req;
    p->desc.n_spec = 8;
    uint32_t spec[8] = {p->wg, p->sg, p->lm, p->ln, p->lk, p->b, p->b, p->dp};
    memcpy(p->desc.spec, spec, sizeof(spec));
    return true;
}

/* The variant that runs: a flash or coopmat choice whose passes (the forward, or dq and dk/dv) cannot run this
 * shape falls back (coopmat -> flash -> tile); a forced one says so once per process. */
static attn_variant attn_flash_choose(const vkl_vk *vk, const char *op, const vkl_attn_shape *s, attn_variant var,
                                      bool forced, bool back, attn_flash_plan *plans) {
    static _Atomic int noted;
    while (var == ATTN_FLASH || var == ATTN_COOPMAT) {
        const char *why = NULL;
        bool coop = var == ATTN_COOPMAT;
        bool ok = back ? attn_flash_plan_make(vk, s, coop, 1, &plans[0], &why) &&
                             attn_flash_plan_make(vk, s, coop, 2, &plans[1], &why)
                       : attn_flash_plan_make(vk, s, coop, 0, &plans[0], &why);
        if (ok) break;
        attn_variant next = coop ? ATTN_FLASH : ATTN_TILE;
        if (forced && !noted++)
            fprintf(stderr, "vklora: VKLORA_ATTN=%s: %s with %u x %u tokens, head dimension %u: the %s kernel cannot "
                    "run (%s); using %s\n", getenv("VKLORA_ATTN"), op, s->T, s->S, s->D, attn_variant_names[var],
                    why, attn_variant_names[next]);
        var = next;
    }
    return var;
}

/* Per-sequence sizes of the attention tensors (elements). */
typedef struct attn_sizes {
    uint64_t q, kv, lse, seg;
} attn_sizes;

static attn_sizes attn_sizes_of(const vkl_attn_shape *s) {
    attn_sizes z = {mul3(s->T, s->n_head, s->D), mul3(s->S, s->n_head_kv, s->D), mul3(s->n_head, s->T, 1), s->T};
    return z;
}

/* Sequences per dispatch: each binding holds whole sequences. */
static uint64_t attn_chunk_of(const nn_lim *l, const attn_sizes *z) {
    uint64_t c = VKL_MIN(lim_units(l, 4 * z->q), lim_units(l, 4 * z->kv));
    c = VKL_MIN(c, VKL_MIN(lim_units(l, 4 * z->lse), lim_units(l, 4 * z->seg)));
    return VKL_MIN(c, IDX_MAX / VKL_MAX(z->q, z->kv));
}

static vkl_status attn_chunk(const char *op, const nn_lim *l, const attn_sizes *z, uint64_t *chunk, vkl_err *err) {
    uint64_t c = attn_chunk_of(l, z);
    if (c == 0)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "%s: one sequence's q (%llu bytes) or k/v (%llu bytes) does not fit one binding of at most "
                           "%llu bytes on this device; use shorter sequences", op,
                           (unsigned long long)(4 * z->q), (unsigned long long)(4 * z->kv),
                           (unsigned long long)l->limit);
    *chunk = c;
    return VKL_OK;
}

/* Whether the tile kernels can run: a fixed subgroup size (attn_tile_subgroup) and tensors they can read: vec4
 * rows (D % 4 == 0), every view 16-byte aligned (with D %
 * 4 == 0 every per-sequence chunk start stays so, and bind_bytes keeps the remainder a multiple of 16 because
 * the binding alignment is a multiple of 16 or divides it), and a texel binding of whole sequences within
 * maxTexelBufferElements. Sets *l to the limits the tile dispatches must use. */
static bool attn_tile_ok(const vkl_vk *vk, const vkl_attn_shape *s, const attn_sizes *z, const vkl_tview *tv,
                         uint32_t n, nn_lim *l) {
    uint32_t required;
    if (s->D % 4 || !attn_tile_subgroup(vk, wg_size(vk, NN_WG), &required)) return false;
    if (l->align % 16 && 16 % l->align) return false;
    for (uint32_t i = 0; i < n; i++)
        if (tv[i].buf && tv[i].offset % 16) return false;
    uint64_t texel_bytes = (uint64_t)vk->info.max_texel_buffer_elements * 16;
    if (texel_bytes < l->limit) l->limit = texel_bytes;
    return attn_chunk_of(l, z) > 0;
}

vkl_status vkl_op_attention(vkl_vk *vk, vkl_op_cache *c, const vkl_attn_shape *s, vkl_tview q, vkl_tview k,
                            vkl_tview v, vkl_tview seg, vkl_tview out, vkl_tview lse, vkl_err *err) {
    const char *op = "attention";
    vkl_status st;
    attn_variant var;
    bool forced;
    if ((st = attn_check(op, s, err)) || (st = attn_pick(vk, op, &var, &forced, err))) return st;
    attn_sizes z = attn_sizes_of(s);
    if ((st = check_view(op, "q", q, mul3(s->n_seq, z.q, 4), true, err)) ||
        (st = check_view(op, "k", k, mul3(s->n_seq, z.kv, 4), true, err)) ||
        (st = check_view(op, "v", v, mul3(s->n_seq, z.kv, 4), true, err)) ||
        (st = check_view(op, "seg", seg, mul3(s->n_seq, z.seg, 4), false, err)) ||
        (st = check_view(op, "out", out, mul3(s->n_seq, z.q, 4), true, err)) ||
        (st = check_view(op, "lse", lse, mul3(s->n_seq, z.lse, 4), false, err)) ||
        (st = need_subgroups(vk, op, err)))
        return st;
    if (s->n_seq == 0 || s->T == 0) return VKL_OK;
    nn_lim l = lim_get(vk);
    vkl_tview vec_views[4] = {q, k, v, out};
    attn_flash_plan fp;
    var = attn_flash_choose(vk, op, s, var, forced, false, &fp);
    bool flash = var == ATTN_FLASH || var == ATTN_COOPMAT;
    bool tile = var == ATTN_TILE && attn_tile_ok(vk, s, &z, vec_views, 4, &l);
    uint64_t chunk = 0;
    uint32_t wg = flash ? 1 : wg_size(vk, NN_WG), bucket = attn_tile_bucket(s->D);
    uint32_t rows = flash ? fp.b : tile ? attn_tile_rows(vk, bucket, 0) : 1, slice, keys = s->pos0 + s->T;
    if ((st = attn_chunk(op, &l, &z, &chunk, err)) ||
        (!flash && (st = attn_slice(vk, op, s, tile, 0, (uint64_t)wg * rows, &slice, err))))
        return st;
    if (flash) slice = keys; /* one dispatch: attn_flash_plan_make counted its loops */
    if (slice < keys && !lse.buf)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "%s: %u keys with head dimension %u go in slices of %u (%s's loop limit), which merge "
                           "through lse: pass an lse tensor", op, keys, s->D, slice, vk->info.driver_name);
    char name[40];
    const vkl_pipeline *pipe;
    if (flash) {
        st = vkl_op_cache_get(vk, c, &fp.desc, &pipe, err);
    } else if (tile) {
        static const vkl_bind_kind kinds[6] = {VKL_BIND_TEXEL,   VKL_BIND_TEXEL,   VKL_BIND_TEXEL,
                                               VKL_BIND_STORAGE, VKL_BIND_STORAGE, VKL_BIND_STORAGE};
        snprintf(name, sizeof(name), "attention_tile_d%u", bucket);
        st = attn_tile_pipe(vk, c, name, 6, kinds, wg, rows, attn_tile_feat(s, seg, vkl_tv_none()), &pipe, err);
    } else {
        snprintf(name, sizeof(name), "attention_%s", attn_dmax(s->D));
        st = get_pipe(vk, c, name, 6, sizeof(vkl_attn_push), wg, &pipe, err);
    }
    if (st) return st;
    uint64_t rows_per_wg = (uint64_t)wg * rows;
    bool own;
    if ((st = nn_begin(vk, &own, err))) return st;
    for (uint64_t b0 = 0; b0 < s->n_seq && !st; b0 += chunk) {
        uint64_t nb = VKL_MIN(chunk, s->n_seq - b0);
        vkl_attn_push pc = {.n_seq = (uint32_t)nb, .T = s->T, .S = s->S, .n_head = s->n_head,
                            .n_head_kv = s->n_head_kv, .D = s->D, .pos0 = s->pos0, .scale = s->scale,
                            .flags = (seg.buf ? VKL_ATTN_HAS_SEG : 0) | (lse.buf ? VKL_ATTN_HAS_LSE : 0),
                            .window = attn_window(s), .softcap = s->softcap};
        vkl_binding b[6] = {
            bind_elems(&l, q, b0 * z.q, nb * z.q, &pc.q_off),
            bind_elems(&l, k, b0 * z.kv, nb * z.kv, &pc.k_off),
            bind_elems(&l, v, b0 * z.kv, nb * z.kv, &pc.v_off),
            seg.buf ? bind_elems(&l, seg, b0 * z.seg, nb * z.seg, &pc.seg_off) : bind_dummy(q.buf),
            bind_elems(&l, out, b0 * z.q, nb * z.q, &pc.out_off),
            lse.buf ? bind_elems(&l, lse, b0 * z.lse, nb * z.lse, &pc.lse_off) : bind_dummy(q.buf),
        };
        if (tile)
            for (int i = 0; i < 3; i++) b[i].texel_format = VK_FORMAT_R32G32B32A32_SFLOAT;
        uint32_t flags = pc.flags;
        for (uint32_t r0 = 0; r0 < keys && !st; r0 += slice) {
            pc.r0 = r0, pc.r1 = VKL_MIN(keys - r0, slice) + r0;
            pc.flags = flags | (r0 ? VKL_ATTN_MERGE : 0);
            st = dispatch(vk, pipe, b, 6, &pc, sizeof(pc),
                          nb * s->n_head * ((s->T + rows_per_wg - 1) / rows_per_wg), err);
            vkl_op_variant_used(op, flash ? attn_variant_names[var] : tile ? "tile" : "scalar");
        }
    }
    return nn_end(vk, own, st, err);
}

vkl_status vkl_op_attention_back(vkl_vk *vk, vkl_op_cache *c, const vkl_attn_shape *s, vkl_tview q, vkl_tview k,
                                 vkl_tview v, vkl_tview seg, vkl_tview out, vkl_tview lse, vkl_tview dout,
                                 vkl_tview dq, vkl_tview dk, vkl_tview dv, vkl_tview delta, vkl_err *err) {
    const char *op = "attention_back";
    vkl_status st;
    attn_variant var;
    bool forced;
    if ((st = attn_check(op, s, err)) || (st = attn_pick(vk, op, &var, &forced, err))) return st;
    attn_sizes z = attn_sizes_of(s);
    uint64_t qb = mul3(s->n_seq, z.q, 4), kvb = mul3(s->n_seq, z.kv, 4);
    if ((st = check_view(op, "q", q, qb, true, err)) || (st = check_view(op, "k", k, kvb, true, err)) ||
        (st = check_view(op, "v", v, kvb, true, err)) ||
        (st = check_view(op, "seg", seg, mul3(s->n_seq, z.seg, 4), false, err)) ||
        (st = check_view(op, "out", out, qb, true, err)) ||
        (st = check_view(op, "lse", lse, mul3(s->n_seq, z.lse, 4), true, err)) ||
        (st = check_view(op, "dout", dout, qb, true, err)) || (st = check_view(op, "dq", dq, qb, true, err)) ||
        (st = check_view(op, "dk", dk, kvb, true, err)) || (st = check_view(op, "dv", dv, kvb, true, err)) ||
        (st = check_view(op, "delta", delta, mul3(s->n_seq, z.lse, 4), false, err)) ||
        (st = need_subgroups(vk, op, err)))
        return st;
    if (s->n_seq == 0 || s->T == 0) return VKL_OK;
    nn_lim l = lim_get(vk);
    vkl_tview vec_views[8] = {q, k, v, out, dout, dq, dk, dv};
    attn_flash_plan fp[2];
    var = attn_flash_choose(vk, op, s, var, forced, true, fp);
    bool flash = var == ATTN_FLASH || var == ATTN_COOPMAT;
    bool tile = var == ATTN_TILE && attn_tile_ok(vk, s, &z, vec_views, 8, &l);
    uint64_t chunk = 0;
    uint32_t wg = flash ? 1 : wg_size(vk, NN_WG), bucket = attn_tile_bucket(s->D);
    uint32_t rdq = flash ? fp[0].b : tile ? attn_tile_rows(vk, bucket, 1) : 1;
    uint32_t rkv = flash ? fp[1].b : tile ? attn_tile_rows(vk, bucket, 2) : 1;
    uint32_t sdq, skv, keys = s->pos0 + s->T;
    if ((st = attn_chunk(op, &l, &z, &chunk, err)) ||
        (!flash && ((st = attn_slice(vk, op, s, tile, 1, (uint64_t)wg * rdq, &sdq, err)) ||
                    (st = attn_slice(vk, op, s, tile, 2, (uint64_t)wg * rkv, &skv, err)))))
        return st;
    if (flash) sdq = keys, skv = s->T; /* one dispatch each: attn_flash_plan_make counted their loops */
    char ndq[40], nkv[40];
    const vkl_pipeline *pdq, *pkv;
    if (flash) {
        if ((st = vkl_op_cache_get(vk, c, &fp[0].desc, &pdq, err)) ||
            (st = vkl_op_cache_get(vk, c, &fp[1].desc, &pkv, err)))
            return st;
    } else if (tile) {
        /* dq: 0-7 and delta at 8; dk/dv: 0-6, dk 7, dv 8, delta 9 */
        static const vkl_bind_kind kinds[10] = {VKL_BIND_TEXEL,   VKL_BIND_TEXEL,   VKL_BIND_TEXEL, VKL_BIND_STORAGE,
                                                VKL_BIND_TEXEL,   VKL_BIND_STORAGE, VKL_BIND_TEXEL, VKL_BIND_STORAGE,
                                                VKL_BIND_STORAGE, VKL_BIND_STORAGE};
        snprintf(ndq, sizeof(ndq), "attention_back_tile_dq_d%u", bucket);
        snprintf(nkv, sizeof(nkv), "attention_back_tile_dkdv_d%u", bucket);
        uint32_t feat = attn_tile_feat(s, seg, delta);
        if ((st = attn_tile_pipe(vk, c, ndq, 9, kinds, wg, rdq, feat, &pdq, err)) ||
            (st = attn_tile_pipe(vk, c, nkv, 10, kinds, wg, rkv, feat, &pkv, err)))
            return st;
    } else {
        snprintf(ndq, sizeof(ndq), "attention_back_dq_%s", attn_dmax(s->D));
        snprintf(nkv, sizeof(nkv), "attention_back_dkdv_%s", attn_dmax(s->D));
        if ((st = get_pipe(vk, c, ndq, 8, sizeof(vkl_attn_push), wg, &pdq, err)) ||
            (st = get_pipe(vk, c, nkv, 9, sizeof(vkl_attn_push), wg, &pkv, err)))
            return st;
    }
    uint64_t qrows = (uint64_t)wg * rdq, krows = (uint64_t)wg * rkv;
    bool own;
    if ((st = nn_begin(vk, &own, err))) return st;
    for (uint64_t b0 = 0; b0 < s->n_seq && !st; b0 += chunk) {
        uint64_t nb = VKL_MIN(chunk, s->n_seq - b0);
        vkl_attn_push pc = {.n_seq = (uint32_t)nb, .T = s->T, .S = s->S, .n_head = s->n_head,
                            .n_head_kv = s->n_head_kv, .D = s->D, .pos0 = s->pos0, .scale = s->scale,
                            .flags = (seg.buf ? VKL_ATTN_HAS_SEG : 0) | VKL_ATTN_HAS_LSE,
                            .window = attn_window(s), .softcap = s->softcap};
        vkl_binding b[10] = {
            bind_elems(&l, q, b0 * z.q, nb * z.q, &pc.q_off),
            bind_elems(&l, k, b0 * z.kv, nb * z.kv, &pc.k_off),
            bind_elems(&l, v, b0 * z.kv, nb * z.kv, &pc.v_off),
            seg.buf ? bind_elems(&l, seg, b0 * z.seg, nb * z.seg, &pc.seg_off) : bind_dummy(q.buf),
            bind_elems(&l, out, b0 * z.q, nb * z.q, &pc.out_off),
            bind_elems(&l, lse, b0 * z.lse, nb * z.lse, &pc.lse_off),
            bind_elems(&l, dout, b0 * z.q, nb * z.q, &pc.dout_off),
            bind_elems(&l, dq, b0 * z.q, nb * z.q, &pc.dq_off),
        };
        vkl_binding bd = {0};
        if (tile) {
            for (int i = 0; i < 7; i++)
                if (i != 3 && i != 5) b[i].texel_format = VK_FORMAT_R32G32B32A32_SFLOAT;
            bd = delta.buf ? bind_elems(&l, delta, b0 * z.lse, nb * z.lse, &pc.delta_off) : bind_dummy(lse.buf);
            b[8] = bd;
        }
        uint32_t flags = pc.flags, ndqb = tile ? 9 : 8, nkvb = tile ? 10 : 9;
        for (uint32_t r0 = 0; r0 < keys && !st; r0 += sdq) { /* dq: = then += over key slices */
            pc.r0 = r0, pc.r1 = VKL_MIN(keys - r0, sdq) + r0;
            pc.flags = flags | (r0 ? VKL_ATTN_MERGE : 0);
            st = dispatch(vk, pdq, b, ndqb, &pc, sizeof(pc), nb * s->n_head * ((s->T + qrows - 1) / qrows), err);
        }
        if (st) break;
        b[7] = bind_elems(&l, dk, b0 * z.kv, nb * z.kv, &pc.dq_off);
        b[8] = bind_elems(&l, dv, b0 * z.kv, nb * z.kv, &pc.dv_off);
        b[9] = bd;
        pc.flags = flags;
        for (uint32_t r0 = 0; r0 < s->T && !st; r0 += skv) { /* dk, dv: += over query slices */
            pc.r0 = r0, pc.r1 = VKL_MIN(s->T - r0, skv) + r0;
            st = dispatch(vk, pkv, b, nkvb, &pc, sizeof(pc), nb * s->n_head_kv * ((s->S + krows - 1) / krows),
                          err);
            vkl_op_variant_used(op, flash ? attn_variant_names[var] : tile ? "tile" : "scalar");
        }
    }
    return nn_end(vk, own, st, err);
}

/* ---------------------------------------------------------------------------------------------------------- */

/* Elementwise ops: up to 5 tensors of n fp32 each, split into element chunks. A chunk whose count and offsets are
 * all multiples of 4 runs the shader's "<shader>_v4" build when there is one (4 elements an invocation). */
static vkl_status eltwise(vkl_vk *vk, vkl_op_cache *c, const char *op, const char *shader, const vkl_tview *tv,
                          const char *const *names, uint32_t nt, uint64_t n, float alpha, vkl_err *err) {
    vkl_status st;
    for (uint32_t i = 0; i < nt; i++)
        if ((st = check_view(op, names[i], tv[i], mul3(n, 4, 1), true, err))) return st;
    if (n == 0) return VKL_OK;
    nn_lim l = lim_get(vk);
    uint64_t chunk = VKL_MIN(lim_units(&l, 4), IDX_MAX);
    if (chunk == 0) return too_big(op, "one element", 4, &l, err);
    if (chunk > 4) chunk -= chunk % 4; /* keeps every chunk start a multiple of 4 elements */
    uint32_t wg = wg_size(vk, NN_WG);
    char v4name[48];
    snprintf(v4name, sizeof(v4name), "%s_v4", shader);
    const bool has_v4 = vkl_spirv_find(v4name) != NULL;
    bool own;
    if ((st = nn_begin(vk, &own, err))) return st;
    for (uint64_t e0 = 0; e0 < n && !st; e0 += chunk) {
        uint64_t ne = VKL_MIN(chunk, n - e0);
        vkl_eltwise_push pc = {.n = (uint32_t)ne, .alpha = alpha};
        uint32_t *offs[5] = {&pc.a_off, &pc.b_off, &pc.c_off, &pc.d_off, &pc.e_off};
        vkl_binding b[5];
        bool v4 = has_v4 && ne % 4 == 0;
        for (uint32_t i = 0; i < nt; i++) {
            b[i] = bind_elems(&l, tv[i], e0, ne, offs[i]);
            v4 = v4 && *offs[i] % 4 == 0;
        }
        if (v4) {
            pc.n /= 4;
            for (uint32_t i = 0; i < nt; i++) *offs[i] /= 4;
        }
        const vkl_pipeline *pipe;
        if ((st = get_pipe(vk, c, v4 ? v4name : shader, nt, sizeof(vkl_eltwise_push), wg, &pipe, err))) break;
        st = dispatch(vk, pipe, b, nt, &pc, sizeof(pc), (pc.n + wg - 1) / wg, err);
        vkl_op_variant_used(op, v4 ? "vec4" : "scalar");
    }
    return nn_end(vk, own, st, err);
}

vkl_status vkl_op_swiglu(vkl_vk *vk, vkl_op_cache *c, vkl_tview g, vkl_tview u, vkl_tview h, uint64_t n,
                         vkl_err *err) {
    static const char *const names[] = {"g", "u", "h"};
    vkl_tview tv[3] = {g, u, h};
    return eltwise(vk, c, "swiglu", "swiglu", tv, names, 3, n, 0.0f, err);
}

vkl_status vkl_op_swiglu_back(vkl_vk *vk, vkl_op_cache *c, vkl_tview g, vkl_tview u, vkl_tview dh, vkl_tview dg,
                              vkl_tview du, uint64_t n, vkl_err *err) {
    static const char *const names[] = {"g", "u", "dh", "dg", "du"};
    vkl_tview tv[5] = {g, u, dh, dg, du};
    return eltwise(vk, c, "swiglu_back", "swiglu_back", tv, names, 5, n, 0.0f, err);
}

vkl_status vkl_op_add(vkl_vk *vk, vkl_op_cache *c, vkl_tview a, vkl_tview b, float alpha, vkl_tview y, uint64_t n,
                      vkl_err *err) {
    static const char *const names[] = {"a", "b", "y"};
    vkl_tview tv[3] = {a, b, y};
    return eltwise(vk, c, "add", "add", tv, names, 3, n, alpha, err);
}

vkl_status vkl_op_geglu(vkl_vk *vk, vkl_op_cache *c, vkl_tview g, vkl_tview u, vkl_tview h, uint64_t n,
                        vkl_err *err) {
    static const char *const names[] = {"g", "u", "h"};
    vkl_tview tv[3] = {g, u, h};
    return eltwise(vk, c, "geglu", "geglu", tv, names, 3, n, 0.0f, err);
}

vkl_status vkl_op_geglu_back(vkl_vk *vk, vkl_op_cache *c, vkl_tview g, vkl_tview u, vkl_tview dh, vkl_tview dg,
                             vkl_tview du, uint64_t n, vkl_err *err) {
    static const char *const names[] = {"g", "u", "dh", "dg", "du"};
    vkl_tview tv[5] = {g, u, dh, dg, du};
    return eltwise(vk, c, "geglu_back", "geglu_back", tv, names, 5, n, 0.0f, err);
}

static vkl_status check_cap(const char *op, float cap, vkl_err *err) {
    if (cap > 0.0f && isfinite(cap)) return VKL_OK;
    return vkl_err_set(err, VKL_ERR_INPUT, "%s: cap must be a finite number > 0, got %g", op, (double)cap);
}

vkl_status vkl_op_softcap(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview y, uint64_t n, float cap,
                          vkl_err *err) {
    static const char *const names[] = {"x", "y"};
    vkl_tview tv[2] = {x, y};
    vkl_status st = check_cap("softcap", cap, err);
    return st ? st : eltwise(vk, c, "softcap", "softcap", tv, names, 2, n, cap, err);
}

vkl_status vkl_op_softcap_back(vkl_vk *vk, vkl_op_cache *c, vkl_tview y, vkl_tview dy, vkl_tview dx, uint64_t n,
                               float cap, vkl_err *err) {
    static const char *const names[] = {"y", "dy", "dx"};
    vkl_tview tv[3] = {y, dy, dx};
    vkl_status st = check_cap("softcap_back", cap, err);
    return st ? st : eltwise(vk, c, "softcap_back", "softcap_back", tv, names, 3, n, cap, err);
}

vkl_status vkl_op_scale(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview y, uint64_t n, float s, vkl_err *err) {
    static const char *const names[] = {"x", "y"};
    vkl_tview tv[2] = {x, y};
    if (!isfinite(s)) return vkl_err_set(err, VKL_ERR_INPUT, "scale: factor must be finite, got %g", (double)s);
    return eltwise(vk, c, "scale", "scale", tv, names, 2, n, s, err);
}

vkl_status vkl_op_scale_rows(vkl_vk *vk, vkl_op_cache *c, vkl_tview x, vkl_tview factors, vkl_tview y,
                             uint32_t rows, uint32_t n, vkl_err *err) {
    const char *op = "scale_rows";
    vkl_status st;
    if (n == 0) return vkl_err_set(err, VKL_ERR_INPUT, "%s: row length must be positive", op);
    uint64_t mat = mul3(rows, n, 4);
    if ((st = check_view(op, "x", x, mat, true, err)) ||
        (st = check_view(op, "factors", factors, 4ull * rows, true, err)) ||
        (st = check_view(op, "y", y, mat, true, err)))
        return st;
    if (rows == 0) return VKL_OK;
    nn_lim l = lim_get(vk);
    uint64_t chunk = VKL_MIN(lim_units(&l, 4ull * n), IDX_MAX / n);
    if (chunk == 0) return too_big(op, "one row", 4ull * n, &l, err);
    uint32_t wg = wg_size(vk, NN_WG);
    const vkl_pipeline *pipe;
    if ((st = get_pipe(vk, c, "scale_rows", 3, sizeof(vkl_scale_rows_push), wg, &pipe, err))) return st;
    bool own;
    if ((st = nn_begin(vk, &own, err))) return st;
    for (uint64_t r0 = 0; r0 < rows && !st; r0 += chunk) {
        uint64_t nr = VKL_MIN(chunk, rows - r0);
        vkl_scale_rows_push pc = {.rows = (uint32_t)nr, .n = n};
        vkl_binding b[3] = {
            bind_elems(&l, x, r0 * n, nr * n, &pc.x_off),
            bind_elems(&l, factors, r0, nr, &pc.f_off),
            bind_elems(&l, y, r0 * n, nr * n, &pc.y_off),
        };
        st = dispatch(vk, pipe, b, 3, &pc, sizeof(pc), (nr * n + wg - 1) / wg, err);
    }
    return nn_end(vk, own, st, err);
}

/* ---------------------------------------------------------------------------------------------------------- */

vkl_status vkl_op_cross_entropy(vkl_vk *vk, vkl_op_cache *c, vkl_tview logits, vkl_tview targets, uint32_t rows,
                                uint32_t V, vkl_tview nll, vkl_tview dlogits, float grad_scale, vkl_err *err) {
    const char *op = "cross_entropy";
    vkl_status st;
    if (V == 0) return vkl_err_set(err, VKL_ERR_INPUT, "%s: vocabulary size must be positive", op);
    if (V > INT32_MAX) return vkl_err_set(err, VKL_ERR_INPUT, "%s: vocabulary size %u exceeds int32 targets", op, V);
    uint64_t mat = mul3(rows, V, 4);
    if ((st = check_view(op, "logits", logits, mat, true, err)) ||
        (st = check_view(op, "targets", targets, 4ull * rows, true, err)) ||
        (st = check_view(op, "nll", nll, 4ull * rows, false, err)) ||
        (st = check_view(op, "dlogits", dlogits, mat, false, err)) || (st = need_subgroups(vk, op, err)))
        return st;
    if (rows == 0 || (!nll.buf && !dlogits.buf)) return VKL_OK;
    nn_lim l = lim_get(vk);
    uint64_t chunk = VKL_MIN(lim_units(&l, 4ull * V), IDX_MAX / V);
    if (chunk == 0) return too_big(op, "one row of logits", 4ull * V, &l, err);
    uint32_t wg = wg_size(vk, XENT_WG);
    const vkl_pipeline *pipe;
    if ((st = get_pipe(vk, c, "cross_entropy", 4, sizeof(vkl_xent_push), wg, &pipe, err))) return st;
    bool own;
    if ((st = nn_begin(vk, &own, err))) return st;
    for (uint64_t r0 = 0; r0 < rows && !st; r0 += chunk) {
        uint64_t nr = VKL_MIN(chunk, rows - r0);
        vkl_xent_push pc = {.rows = (uint32_t)nr, .V = V, .has_nll = nll.buf != NULL,
                            .has_grad = dlogits.buf != NULL, .grad_scale = grad_scale};
        vkl_binding b[4] = {
            bind_elems(&l, logits, r0 * V, nr * V, &pc.logits_off),
            bind_elems(&l, targets, r0, nr, &pc.targets_off),
            nll.buf ? bind_elems(&l, nll, r0, nr, &pc.nll_off) : bind_dummy(logits.buf),
            dlogits.buf ? bind_elems(&l, dlogits, r0 * V, nr * V, &pc.dlogits_off) : bind_dummy(logits.buf),
        };
        st = dispatch(vk, pipe, b, 4, &pc, sizeof(pc), nr, err);
    }
    return nn_end(vk, own, st, err);
}
