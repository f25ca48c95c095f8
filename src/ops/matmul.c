/* Host side of the matrix products (shaders/matmul*.comp, matmul_t*.comp, gemm_*.comp): kernel-variant choice per
 * device, argument checks, and splitting into dispatches whose bindings fit maxStorageBufferRange. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/matmul.h"
#include "ops/coopmat.h"
#include "ops/matmul_push.h"
#include "vklora/quant.h"

/* Kernel variants of the forward matmul. CPU devices want barrier-free register tiles (lavapipe runs barriers
 * ~20x slower, see PERF.md), best fed by texel buffers and shared across a subgroup (texel); views that kernel
 * cannot read (K % 4 != 0, x not 16-byte aligned, no shuffles) take plain register tiles (regtile). GPUs want
 * shared-memory tiles. VKLORA_MATMUL forces one, so every variant can be tested on any device. */
typedef enum { MM_REGTILE, MM_TILED, MM_TEXEL, MM_COOPMAT, MM_N_VARIANTS } mm_variant;
static const char *const variant_names[MM_N_VARIANTS] = {"regtile", "tiled", "texel", "coopmat"};

/* Invocation indices are uint in the shaders: keep them (and tile counts) well inside 32 bits. */
#define MAX_TILES (1ull << 30)

static const char *type_suffix(uint32_t type) {
    switch (type) {
    case VKL_TYPE_F32: return "f32";
    case VKL_TYPE_F16: return "f16";
    case VKL_TYPE_BF16: return "bf16";
    case VKL_TYPE_Q8_0: return "q8_0";
    case VKL_TYPE_Q4_0: return "q4_0";
    case VKL_TYPE_Q4_K: return "q4_k";
    case VKL_TYPE_Q5_K: return "q5_k";
    case VKL_TYPE_Q6_K: return "q6_k";
    default: return NULL;
    }
}

/* ---- cooperative matrices (shaders/matmul_coopmat.comp) ---- */

/* Shared memory of the coopmat kernels for one shape: the f16 x and weight panels, one f32 tile per subgroup and
 * the row scales (strides as in the shaders; matmul_t's panels have the same size). */
static uint64_t coopmat_shared_bytes(const vkl_coopmat_shape *c) {
    uint64_t bm = VKL_MM_COOP_WM * VKL_MM_COOP_RM * c->M, bn = VKL_MM_COOP_WN * VKL_MM_COOP_RN * c->N;
    uint64_t sa = VKL_MM_COOP_KT * c->K + 8, so = c->N + 4;
    return (bm + bn) * sa * 2 + (uint64_t)VKL_MM_COOP_WM * VKL_MM_COOP_WN * c->M * so * 4 + bm * 4;
}

/* The shape the coopmat kernel runs with: among the device's subgroup-scope f16 x f16 + f32 -> f32 shapes, the
 * largest (M*N*K) whose shared memory and workgroup fit and whose rows keep the 16-byte alignment cooperative
 * loads from shared memory need (K % 8 == 0, N % 4 == 0). NULL when this build or this device has none. */
static const vkl_coopmat_shape *coopmat_shape(const vkl_vk *vk, uint32_t *sg, uint32_t *required_sg) {
    const vkl_device_info *d = &vk->info;
    *sg = vkl_op_default_subgroup(vk, required_sg); /* the size it runs with, and whether the pipeline requests it */
    /* subgroupMax gives each row's scale before its f16 rounding */
    if (!vkl_coopmat_built() || !d->coopmat_usable || !*sg || !d->subgroup_arithmetic ||
        (uint64_t)*sg * VKL_MM_COOP_WM * VKL_MM_COOP_WN > d->max_workgroup_invocations)
        return NULL;
    const vkl_coopmat_shape *best = NULL;
    for (uint32_t i = 0; i < d->n_coopmat; i++) {
        const vkl_coopmat_shape *c = &d->coopmat[i];
        if (c->a_type != VKL_COMPONENT_FLOAT16 || c->b_type != VKL_COMPONENT_FLOAT16 ||
            c->c_type != VKL_COMPONENT_FLOAT32 || c->result_type != VKL_COMPONENT_FLOAT32 ||
            c->scope != VKL_SCOPE_SUBGROUP || c->saturating || !c->M || !c->N || c->K % 8 || c->N % 4 ||
            coopmat_shared_bytes(c) > d->max_shared_memory)
            continue;
        if (!best || (uint64_t)c->M * c->N * c->K > (uint64_t)best->M * best->N * best->K) best = c;
    }
    return best;
}

/* Both coopmat kernels (shaders/matmul_coopmat.comp, matmul_t_coopmat.comp): a workgroup of WM x WN subgroups, the
 * device's tile shape as specialization constants 2..4; *rows x *cols is one workgroup's output tile. Returns the
 * workgroup size. */
static uint32_t coopmat_desc(vkl_pipeline_desc *desc, const vkl_coopmat_shape *cs, uint32_t sg, uint32_t required_sg,
                             uint32_t *rows, uint32_t *cols) {
    uint32_t wg = VKL_MM_COOP_WM * VKL_MM_COOP_WN * sg;
    *rows = VKL_MM_COOP_WM * VKL_MM_COOP_RM * cs->M;
    *cols = VKL_MM_COOP_WN * VKL_MM_COOP_RN * cs->N;
    desc->required_subgroup_size = required_sg;
    desc->n_spec = 5;
    desc->spec[0] = wg;
    desc->spec[1] = sg;
    desc->spec[2] = cs->M;
    desc->spec[3] = cs->N;
    desc->spec[4] = cs->K;
    return wg;
}

/* *forced (may be NULL): whether VKLORA_MATMUL named the variant rather than leaving it to the device. */
static vkl_status pick_variant(const vkl_vk *vk, mm_variant *v, bool *forced, vkl_err *err) {
    const char *env = getenv("VKLORA_MATMUL");
    if (forced) *forced = false;
    if (env && *env && strcmp(env, "auto")) {
        for (int i = 0; i < MM_N_VARIANTS; i++) {
            if (!strcmp(env, variant_names[i])) {
                *v = (mm_variant)i;
                if (forced) *forced = true;
                return VKL_OK;
            }
        }
        return vkl_err_set(err, VKL_ERR_INPUT, "VKLORA_MATMUL=%s: expected auto, texel, regtile, tiled or coopmat",
                           env);
    }
    /* GPUs take cooperative matrices when they have them. lavapipe emulates them with subgroup operations, far
     * slower than its texel kernel, so CPU devices keep that (VKLORA_MATMUL=coopmat still runs them there). */
    uint32_t sg, req;
    if (vk->info.vk_type == VK_PHYSICAL_DEVICE_TYPE_CPU) *v = MM_TEXEL;
    else *v = coopmat_shape(vk, &sg, &req) ? MM_COOPMAT : MM_TILED;
    return VKL_OK;
}

/* VKLORA_MATMUL=coopmat where the cooperative-matrix kernel cannot run: say why. */
const char *vkl_coopmat_why_not(const vkl_vk *vk) {
    const vkl_device_info *d = &vk->info;
    return !vkl_coopmat_built() ? "this build has no cooperative-matrix shaders (its glslc could not compile "
                                  "GL_KHR_cooperative_matrix; see `vklora devices`)"
           : !d->cooperative_matrix ? "the device lacks VK_KHR_cooperative_matrix"
           : !d->coopmat_usable ? "the device lacks the cooperativeMatrix feature in compute shaders, "
                                  "shaderFloat16 or the Vulkan memory model"
                                : "the device lists no subgroup-scope f16 x f16 -> f32 shape this kernel "
                                  "can use (see `vklora devices`), or no usable subgroup size";
}

static vkl_status coopmat_unavailable(const vkl_vk *vk, vkl_err *err) {
    return vkl_err_set(err, VKL_ERR_INPUT, "VKLORA_MATMUL=coopmat: device %u (%s): %s", vk->info.index,
                       vk->info.name, vkl_coopmat_why_not(vk));
}

/* src/ops/coopmat.h: the same choices for the other coopmat kernels (attention). */
const vkl_coopmat_shape *vkl_coopmat_pick(const vkl_vk *vk, uint32_t *sg, uint32_t *required_sg) {
    return coopmat_shape(vk, sg, required_sg);
}
uint32_t vkl_coopmat_desc(vkl_pipeline_desc *desc, const vkl_coopmat_shape *cs, uint32_t sg, uint32_t required_sg,
                          uint32_t *rows, uint32_t *cols) {
    return coopmat_desc(desc, cs, sg, required_sg, rows, cols);
}

/* The subgroup size the texel kernel is specialized for (0: it cannot run), and whether the pipeline must
 * request it. Its shuffles need every lane of a known-size subgroup: a device with one subgroup size gives it;
 * one with several must let us require a size. */
static uint32_t texel_subgroup(const vkl_vk *vk, uint32_t *required) {
    const vkl_device_info *d = &vk->info;
    *required = 0;
    if (!d->subgroup_basic || !d->subgroup_shuffle) return 0;
    if (d->min_subgroup_size == d->max_subgroup_size)
        return d->subgroup_size >= 1 && d->subgroup_size <= VKL_MM_TEXEL_MAX_SG ? d->subgroup_size : 0;
    if (!d->subgroup_size_control) return 0;
    /* 16 lanes fill a tile of 16 x rows with one row per lane; smaller subgroups take several rows. */
    uint32_t s = VKL_MAX(VKL_MIN(d->max_subgroup_size, 16u), d->min_subgroup_size);
    if (s > VKL_MM_TEXEL_MAX_SG) return 0;
    *required = s;
    return s;
}

/* Whether the texel kernel can read these views: x as RGBA32F texels (rows of whole, 16-byte aligned vec4),
 * an f32 weight likewise; the other weight types are read as 32-bit words like the storage-buffer kernels. */
static bool texel_fits(const vkl_vk *vk, uint32_t wtype, vkl_tview w, vkl_tview x, uint32_t K) {
    uint32_t req;
    return K % 4 == 0 && x.offset % 16 == 0 && (wtype != VKL_TYPE_F32 || w.offset % 16 == 0) &&
           texel_subgroup(vk, &req) != 0 && vk->info.max_texel_buffer_elements >= 1024;
}

/* The forward texel kernel reads every weight type but F32 as RGBA32UI texels (16 bytes a fetch, see matmul.comp).
 * Q4_K/Q5_K blocks (144, 176 bytes) and F16/BF16 rows (2K bytes, K % 8 == 0) stay on 16-byte boundaries when the
 * weight starts on one; Q8_0, Q4_0 and Q6_K blocks are cut out of the texels that cover them at any even offset.
 * The view ends on a whole texel, which must lie inside the buffer (model weights have a 16-byte tail). */
static bool texel_wide(uint32_t wtype) { return wtype != VKL_TYPE_F32; }

static bool mm_texel_fits(const vkl_vk *vk, uint32_t wtype, vkl_tview w, vkl_tview x, uint32_t K, uint64_t w_bytes) {
    bool half = wtype == VKL_TYPE_F16 || wtype == VKL_TYPE_BF16;
    bool aligned = half || wtype == VKL_TYPE_Q4_K || wtype == VKL_TYPE_Q5_K;
    return texel_fits(vk, wtype, w, x, K) && (!aligned || w.offset % 16 == 0) && (!half || K % 8 == 0) &&
           (!w.buf || (w.offset + w_bytes + 15) / 16 * 16 <= w.buf->size);
}

vkl_status vkl_op_matmul_kernel(const vkl_vk *vk, uint32_t wtype, vkl_tview w, vkl_tview x, uint32_t K,
                                const char **name, vkl_err *err) {
    mm_variant v = MM_REGTILE;
    vkl_status st = pick_variant(vk, &v, NULL, err);
    if (st) return st;
    if (v == MM_TEXEL && !mm_texel_fits(vk, wtype, w, x, K, 0)) v = MM_REGTILE;
    uint32_t sg, req;
    if (v == MM_COOPMAT && !coopmat_shape(vk, &sg, &req)) return coopmat_unavailable(vk, err);
    *name = variant_names[v];
    return VKL_OK;
}

/* Bytes one binding may cover, and the offset alignment every binding start is rounded down to. */
typedef struct {
    uint64_t limit, align;
} bind_limits;

static bind_limits get_limits(const vkl_vk *vk) {
    bind_limits b;
    b.limit = vkl_max_bind_elems(vk, 1, 1); /* honours VKLORA_MAX_BIND_BYTES */
    b.align = VKL_MAX(vk->info.min_storage_offset_align, 4);
    return b;
}

/* The same for the texel kernels' views: at most maxTexelBufferElements texels (counted as 4-byte ones: the R32F and
 * word views, conservative for RGBA32F), offsets also aligned for texel views. */
static bind_limits texel_limits(const vkl_vk *vk) {
    bind_limits b = get_limits(vk);
    b.limit = VKL_MIN(b.limit, (uint64_t)vk->info.max_texel_buffer_elements * 4);
    b.align = VKL_MAX(b.align, vk->info.min_texel_offset_align);
    return b;
}

/* Bind `bytes` at byte `pos` of buf from an offset rounded down to `align`; *rem gets what was rounded off. */
static vkl_binding bind_at(const vkl_buffer *buf, uint64_t pos, uint64_t bytes, uint64_t align, uint64_t *rem) {
    uint64_t off = pos / align * align;
    *rem = pos - off;
    return (vkl_binding){.buf = buf, .offset = off, .range = pos - off + bytes, .texel_format = VK_FORMAT_UNDEFINED};
}

/* A 1-D tile count folded into a 2-D grid past maxComputeWorkGroupCount[0]. */
static void grid_for(const vkl_vk *vk, uint64_t tiles, uint32_t wg, uint32_t *gx, uint32_t *gy) {
    uint64_t wgs = (tiles + wg - 1) / wg;
    uint64_t x = VKL_MIN(wgs, (uint64_t)vk->info.max_workgroup_count[0]);
    *gx = (uint32_t)x;
    *gy = (uint32_t)((wgs + x - 1) / x);
}

static uint64_t max_tiles(const vkl_vk *vk, uint32_t wg) {
    uint64_t g = (uint64_t)vk->info.max_workgroup_count[0] * vk->info.max_workgroup_count[1] * wg;
    return VKL_MIN(g, MAX_TILES);
}

static uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

/* Checks shared by matmul and matmul_t; *row_bytes gets the bytes of one weight row. */
static vkl_status check_weight(const char *op, uint32_t wtype, vkl_tview w, uint32_t N, uint32_t K,
                               uint64_t *row_bytes, vkl_err *err) {
    const vkl_type_traits *t = vkl_type_traits_get(wtype);
    if (!t || !type_suffix(wtype))
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: weight type %u (%s) is not supported (f32 f16 bf16 q8_0 q4_0 "
                           "q4_K q5_K q6_K are)", op, wtype, t && t->name ? t->name : "unknown");
    if (K == 0 || K % t->block_size)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: K = %u must be a positive multiple of the %s block size %u", op, K,
                           t->name, t->block_size);
    if (!w.buf || w.offset % 4)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: the weight view needs a buffer and an offset that is a multiple "
                           "of 4 (got %llu)", op, (unsigned long long)w.offset);
    uint64_t end;
    if (!vkl_type_row_bytes(wtype, K, row_bytes) || !vkl_mul_u64(*row_bytes, N, &end) ||
        !vkl_add_u64(w.offset, (end + 3) / 4 * 4, &end) || end > w.buf->size)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "%s: %u %s rows of %u elements from byte %llu (read as whole 32-bit words) do not fit "
                           "the %llu-byte weight buffer", op, N, t->name, K, (unsigned long long)w.offset,
                           (unsigned long long)w.buf->size);
    return VKL_OK;
}

/* A fp32 tensor of n elements at view v: present, 4-aligned, in bounds. */
static vkl_status check_f32(const char *op, const char *what, vkl_tview v, uint64_t n, vkl_err *err) {
    uint64_t bytes, end;
    if (!v.buf || v.offset % 4)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: %s needs a buffer and an offset that is a multiple of 4 (got %llu)",
                           op, what, (unsigned long long)v.offset);
    if (!vkl_mul_u64(n, 4, &bytes) || !vkl_add_u64(v.offset, bytes, &end) || end > v.buf->size)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: %s: %llu floats from byte %llu overrun the %llu-byte buffer", op,
                           what, (unsigned long long)n, (unsigned long long)v.offset,
                           (unsigned long long)v.buf->size);
    return VKL_OK;
}

static vkl_status begin_if_needed(vkl_vk *vk, bool *own, vkl_err *err) {
    *own = !vk->recording;
    return *own ? vkl_cmd_begin(vk, err) : VKL_OK;
}

/* Submit even after a recording error so the command buffer leaves the recording state; err keeps the first
 * message. */
static vkl_status end_if_owned(vkl_vk *vk, bool own, vkl_status st, vkl_err *err) {
    if (!own) return st;
    vkl_status st2 = vkl_cmd_submit_wait(vk, err);
    return st ? st : st2;
}

/* ---- dropout (vkl_gemm_dropout) ---- */

/* The counter of the dropped operand's element at (m0, n0, k0) of the product: its (i, j) is (m, k) of A, (k, n) of B
 * or (m, n) of the product. A dispatch over a block from there starts its counters at this base. */
static uint32_t dropout_base(const vkl_gemm_dropout *d, uint64_t m0, uint64_t n0, uint64_t k0) {
    uint64_t i0 = d->operand == 2 ? k0 : m0, j0 = d->operand == 1 ? k0 : n0;
    return (uint32_t)(d->base + i0 * d->si + j0 * d->sj);
}

/* The dropout push block of gemm_f32_drop / gemm_skinny_drop: g, then d's mask from counter base with strides si, sj
 * along the kernel's dropped operand. */
static vkl_gemm_drop_push drop_push(vkl_gemm_push g, const vkl_gemm_dropout *d, uint32_t base, uint32_t si,
                                    uint32_t sj) {
    return (vkl_gemm_drop_push){.g = g, .key = d->key, .mode = d->operand, .base = base, .si = si, .sj = sj,
                                .p = d->p, .scale = 1.0f / (1.0f - d->p)};
}

/* ---- the low-rank term (vkl_mm_lowrank) ---- */

/* u (M x r) and v (N x r, or r x N when transposed) present and in bounds; a mask on the product (operand 3). */
static vkl_status check_lowrank(const char *op, const vkl_mm_lowrank *lr, uint32_t M, uint32_t N, vkl_err *err) {
    if (lr->mask && lr->mask->operand != 3)
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: the low-rank term's dropout must be on the product (operand 3), "
                           "not operand %u", op, lr->mask->operand);
    vkl_status st = check_f32(op, "the low-rank term's u", lr->u, (uint64_t)M * lr->r, err);
    return st ? st : check_f32(op, "the low-rank term's v", lr->v, (uint64_t)N * lr->r, err);
}

/* The term's dropout when it drops anything (p > 0), else NULL. */
static const vkl_gemm_dropout *lowrank_mask(const vkl_mm_lowrank *lr) {
    return lr && lr->mask && lr->mask->p > 0 ? lr->mask : NULL;
}

/* Whether a texel kernel can read the term: rows of whole RGBA32F texels from 16-byte boundaries. */
static bool lowrank_texel_fits(const vkl_mm_lowrank *lr) {
    return lr->r % 4 == 0 && lr->u.offset % 16 == 0 && lr->v.offset % 16 == 0;
}

/* The term as a gemm after the product: out (M x N) += scale * u · v^T (forward) or u · v (transposed). */
static vkl_status lowrank_gemm(vkl_vk *vk, vkl_op_cache *c, const vkl_mm_lowrank *lr, bool transposed, vkl_tview out,
                               uint32_t M, uint32_t N, vkl_err *err) {
    vkl_gemm_shape s = {.M = M, .N = N, .K = lr->r, .a_rs = lr->r, .a_cs = 1, .b_rs = transposed ? N : 1,
                        .b_cs = transposed ? 1 : lr->r, .c_rs = N, .alpha = lr->scale, .beta = 1};
    vkl_op_variant_used("lowrank", "gemm");
    return vkl_op_gemm_dropout(vk, c, &s, lowrank_mask(lr), lr->u, lr->v, out, err);
}

/* ---- y = x · W^T ---- */

vkl_status vkl_op_matmul(vkl_vk *vk, vkl_op_cache *c, uint32_t wtype, vkl_tview w, vkl_tview x, vkl_tview bias,
                         vkl_tview y, uint32_t M, uint32_t N, uint32_t K, bool accumulate, vkl_err *err) {
    return vkl_op_matmul_lr(vk, c, wtype, w, x, bias, y, M, N, K, accumulate, NULL, err);
}

vkl_status vkl_op_matmul_lr(vkl_vk *vk, vkl_op_cache *c, uint32_t wtype, vkl_tview w, vkl_tview x, vkl_tview bias,
                            vkl_tview y, uint32_t M, uint32_t N, uint32_t K, bool accumulate,
                            const vkl_mm_lowrank *lr, vkl_err *err) {
    static const char op[] = "matmul";
    uint64_t row_bytes;
    vkl_status st = check_weight(op, wtype, w, N, K, &row_bytes, err);
    if (st) return st;
    if ((st = check_f32(op, "x", x, (uint64_t)M * K, err)) || (st = check_f32(op, "y", y, (uint64_t)M * N, err)) ||
        (bias.buf && (st = check_f32(op, "bias", bias, N, err))))
        return st;
    if (lr && !lr->r) lr = NULL;
    if (lr && (st = check_lowrank(op, lr, M, N, err))) return st;
    if (M == 0 || N == 0) return VKL_OK;
    mm_variant var = MM_REGTILE;
    if ((st = pick_variant(vk, &var, NULL, err))) return st;
    if (var == MM_TEXEL && !mm_texel_fits(vk, wtype, w, x, K, row_bytes * N)) var = MM_REGTILE;
    const bool fused = lr && var == MM_TEXEL && lowrank_texel_fits(lr) && !lowrank_mask(lr);
    const vkl_coopmat_shape *cs = NULL;
    uint32_t coop_sg = 0, coop_req = 0;
    if (var == MM_COOPMAT && !(cs = coopmat_shape(vk, &coop_sg, &coop_req))) return coopmat_unavailable(vk, err);

    char name[64];
    snprintf(name, sizeof(name), "matmul_%s_%s", type_suffix(wtype), variant_names[var]);
    uint32_t wg = var == MM_TILED ? VKL_MM_TILED_WG : VKL_MM_REGTILE_WG;
    vkl_pipeline_desc desc = {
        .shader = name,
        .n_bindings = 4,
        .bindings = {VKL_BIND_STORAGE, VKL_BIND_STORAGE, VKL_BIND_STORAGE, VKL_BIND_STORAGE},
        .push_size = sizeof(vkl_matmul_push),
        .n_spec = 1,
        .spec = {wg},
    };
    /* texel: subgroup tiles of tm x rows by tn weight rows, sg lanes each; workgroups of whole subgroups. */
    uint32_t sg = 0, tm = 0, tn = 0;
    if (var == MM_TEXEL) {
        sg = texel_subgroup(vk, &desc.required_subgroup_size);
        uint32_t rows = VKL_MM_TEXEL_ROWS, tc = VKL_MM_TEXEL_TC;
        if (wtype == VKL_TYPE_F32) {
            rows = VKL_MM_TEXEL_ROWS_F32;
            tc = VKL_MM_TEXEL_TC_F32;
        } else if (wtype == VKL_TYPE_F16 || wtype == VKL_TYPE_BF16 || wtype == VKL_TYPE_Q6_K) {
            rows = VKL_MM_TEXEL_ROWS_TALL;
            tc = VKL_MM_TEXEL_TC_TALL;
        }
        tm = sg >= rows ? sg : rows / sg * sg;
        tn = tc * sg;
        wg = VKL_MAX(wg, sg) / sg * sg;
        desc.n_bindings = 6; /* 4, 5: the low-rank term's u and v */
        desc.bindings[0] = desc.bindings[1] = desc.bindings[4] = desc.bindings[5] = VKL_BIND_TEXEL;
        desc.n_spec = 3;
        desc.spec[0] = wg;
        desc.spec[1] = sg;
        desc.spec[2] = (bias.buf ? VKL_MM_BIAS : 0) | (accumulate ? VKL_MM_ACC : 0); /* FEAT: the push's store flags */
    }
    /* coopmat: WM x WN subgroups; the tile shape from the device's list as specialization constants 2..4 */
    uint32_t bm = VKL_MM_TILED_BM, bn = VKL_MM_TILED_BN;
    if (var == MM_COOPMAT) wg = coopmat_desc(&desc, cs, coop_sg, coop_req, &bm, &bn);
    const vkl_pipeline *pipe;
    if ((st = vkl_op_cache_get(vk, c, &desc, &pipe, err))) return st;

    /* Chunk sizes: W rows (Nc) and x rows (Mc) per dispatch. x and W bind from 16-byte boundaries so that
     * their rows keep the vec4 alignment they have in the buffer; every other slack is one alignment step (+4
     * for the weight's rounding up to whole words). */
    /* a texel view holds at most maxTexelBufferElements texels (4-byte words for the weight) */
    bind_limits bl = var == MM_TEXEL ? texel_limits(vk) : get_limits(vk);
    uint64_t xalign = VKL_MAX(bl.align, 16);
    uint64_t fl = bl.limit > bl.align ? (bl.limit - bl.align) / 4 : 0; /* floats in a y or bias binding */
    uint64_t nc = bl.limit > xalign + 4 ? (bl.limit - xalign - 4) / row_bytes : 0;
    nc = VKL_MIN(VKL_MIN(nc, fl), (uint64_t)N);
    uint64_t mc = bl.limit > xalign ? (bl.limit - xalign) / ((uint64_t)K * 4) : 0;
    if (nc) mc = VKL_MIN(mc, 1 + (fl - nc) / N);
    mc = VKL_MIN(mc, (uint64_t)M);
    if (var == MM_TILED || var == MM_COOPMAT) {
        nc = VKL_MIN(nc, (uint64_t)vk->info.max_workgroup_count[0] * bn);
        mc = VKL_MIN(mc, (uint64_t)vk->info.max_workgroup_count[1] * bm);
    } else if (var == MM_TEXEL) {
        uint64_t mt = max_tiles(vk, wg) / sg; /* subgroup tiles */
        nc = VKL_MIN(nc, mt / 2 * tn);
        if (nc) mc = VKL_MIN(mc, mt / ceil_div(nc, tn) * tm);
        if (fused) { /* u's rows of this chunk, and v's */
            uint64_t rows = bl.limit > xalign ? (bl.limit - xalign) / ((uint64_t)lr->r * 4) : 0;
            nc = VKL_MIN(nc, rows);
            mc = VKL_MIN(mc, rows);
        }
    } else {
        uint64_t mt = max_tiles(vk, wg);
        nc = VKL_MIN(nc, mt / 2 * VKL_MM_REGTILE_TN);
        if (nc) mc = VKL_MIN(mc, mt / ceil_div(nc, VKL_MM_REGTILE_TN) * VKL_MM_REGTILE_TM);
    }
    if (!nc || !mc)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "matmul: a binding limit of %llu bytes cannot hold one weight row (%llu bytes) and one "
                           "activation row (K = %u)", (unsigned long long)bl.limit, (unsigned long long)row_bytes, K);

    bool own;
    if ((st = begin_if_needed(vk, &own, err))) return st;
    bool xv4 = K % 4 == 0 && x.offset % 16 == 0 && (wtype != VKL_TYPE_F32 || w.offset % 16 == 0);
    for (uint64_t m0 = 0; m0 < M && !st; m0 += mc) {
        uint64_t mn = VKL_MIN(mc, M - m0);
        for (uint64_t n0 = 0; n0 < N && !st; n0 += nc) {
            uint64_t nn = VKL_MIN(nc, N - n0);
            uint64_t wr, xr, yr, br = 0;
            vkl_binding b[6];
            b[0] = bind_at(w.buf, w.offset + n0 * row_bytes, 0, xalign, &wr);
            b[0].range = (wr + nn * row_bytes + 3) / 4 * 4;
            b[1] = bind_at(x.buf, x.offset + m0 * K * 4, mn * K * 4, xalign, &xr);
            b[2] = bias.buf ? bind_at(bias.buf, bias.offset + n0 * 4, nn * 4, bl.align, &br) : b[1];
            if (var == MM_TEXEL) {
                /* f32 rows are whole vec4 (K % 4 == 0, offsets checked by texel_fits); the texel_wide types' rows
                 * whole 16-byte texels (checked by mm_texel_fits) */
                b[0].texel_format = texel_wide(wtype) ? VK_FORMAT_R32G32B32A32_UINT : VK_FORMAT_R32G32B32A32_SFLOAT;
                b[0].range = (b[0].range + 15) / 16 * 16;
                b[1].texel_format = VK_FORMAT_R32G32B32A32_SFLOAT;
            }
            b[3] = bind_at(y.buf, y.offset + (m0 * N + n0) * 4, ((mn - 1) * N + nn) * 4, bl.align, &yr);
            uint64_t ur = 0, vr = 0;
            if (fused) {
                b[4] = bind_at(lr->u.buf, lr->u.offset + m0 * lr->r * 4, mn * lr->r * 4, xalign, &ur);
                b[5] = bind_at(lr->v.buf, lr->v.offset + n0 * lr->r * 4, nn * lr->r * 4, xalign, &vr);
                b[4].texel_format = b[5].texel_format = VK_FORMAT_R32G32B32A32_SFLOAT;
            } else {
                b[4] = b[5] = b[1];
            }
            vkl_matmul_push pc = {
                .M = (uint32_t)mn,
                .N = (uint32_t)nn,
                .K = K,
                .w_byte_off = (uint32_t)wr,
                .x_off = (uint32_t)(xr / 4),
                .y_off = (uint32_t)(yr / 4),
                .y_stride = N,
                .b_off = (uint32_t)(br / 4),
                .flags = (bias.buf ? VKL_MM_BIAS : 0) | (accumulate ? VKL_MM_ACC : 0) | (xv4 ? VKL_MM_X_VEC4 : 0) |
                         (fused ? VKL_MM_LOWRANK : 0),
                .lr_r = fused ? lr->r : 0,
                .u_off = (uint32_t)(ur / 16),
                .v_off = (uint32_t)(vr / 16),
                .lr_scale = fused ? lr->scale : 0.0f,
            };
            uint32_t gx, gy;
            if (var == MM_TILED || var == MM_COOPMAT) {
                gx = (uint32_t)ceil_div(nn, bn);
                gy = (uint32_t)ceil_div(mn, bm);
            } else if (var == MM_TEXEL) {
                grid_for(vk, ceil_div(nn, tn) * ceil_div(mn, tm) * sg, wg, &gx, &gy);
            } else {
                grid_for(vk, ceil_div(nn, VKL_MM_REGTILE_TN) * ceil_div(mn, VKL_MM_REGTILE_TM), wg, &gx, &gy);
            }
            st = vkl_cmd_dispatch(vk, pipe, b, desc.n_bindings, &pc, sizeof(pc), gx, gy, 1, err);
            vkl_op_variant_used("matmul", variant_names[var]);
        }
    }
    if (fused) vkl_op_variant_used("lowrank", "fused");
    else if (lr && !st) st = lowrank_gemm(vk, c, lr, false, y, M, N, err);
    return end_if_owned(vk, own, st, err);
}

/* ---- dx = dy · W ---- */

vkl_status vkl_op_matmul_t(vkl_vk *vk, vkl_op_cache *c, uint32_t wtype, vkl_tview w, vkl_tview dy, vkl_tview dx,
                           uint32_t M, uint32_t N, uint32_t K, bool accumulate, vkl_err *err) {
    return vkl_op_matmul_t_lr(vk, c, wtype, w, dy, dx, M, N, K, accumulate, NULL, err);
}

vkl_status vkl_op_matmul_t_lr(vkl_vk *vk, vkl_op_cache *c, uint32_t wtype, vkl_tview w, vkl_tview dy, vkl_tview dx,
                              uint32_t M, uint32_t N, uint32_t K, bool accumulate, const vkl_mm_lowrank *lr,
                              vkl_err *err) {
    static const char op[] = "matmul_t";
    uint64_t row_bytes;
    vkl_status st = check_weight(op, wtype, w, N, K, &row_bytes, err);
    if (st) return st;
    if ((st = check_f32(op, "dy", dy, (uint64_t)M * N, err)) || (st = check_f32(op, "dx", dx, (uint64_t)M * K, err)))
        return st;
    if (lr && !lr->r) lr = NULL;
    if (lr && (st = check_lowrank(op, lr, M, K, err))) return st;
    if (M == 0) return VKL_OK;
    if (N == 0) {
        /* An empty sum: dx = 0, or unchanged when accumulating; then the low-rank term. */
        if (!accumulate && (st = vkl_buffer_fill(vk, (vkl_buffer *)dx.buf, dx.offset, (uint64_t)M * K * 4, 0, err)))
            return st;
        return lr ? lowrank_gemm(vk, c, lr, true, dx, M, K, err) : VKL_OK;
    }

    /* VKLORA_MATMUL picks the kernel here too: texel (CPU devices, when the views allow it), cooperative matrices
     * (coopmat: GPUs that have them), shared-memory tiles (tiled: other GPUs), or the register-tile kernel. */
    mm_variant var = MM_REGTILE;
    if ((st = pick_variant(vk, &var, NULL, err))) return st;
    /* dy is read as R32F texels (any 4-byte offset); W as for the forward */
    /* the quantized types as RGBA32UI texels, on the forward's conditions (mm_texel_fits); F16/BF16 too where those
     * hold (K % 8 == 0, 16-byte aligned: a lane's 8 halves in one fetch, MMT_WIDE_H), else as R32UI words */
    const bool half = wtype == VKL_TYPE_F16 || wtype == VKL_TYPE_BF16;
    const vkl_tview dyv = vkl_tv(dy.buf, 0);
    const bool wide_h = var == MM_TEXEL && half && mm_texel_fits(vk, wtype, w, dyv, K, row_bytes * N);
    const bool wide = vkl_type_traits_get(wtype)->block_size > 1;
    bool texel = var == MM_TEXEL && (wide ? mm_texel_fits(vk, wtype, w, dyv, K, row_bytes * N)
                                          : texel_fits(vk, wtype, w, dyv, K));
    const bool w_rgba_u = wide || wide_h; /* W bound as RGBA32UI texels */
    /* texel, Q5_K/Q6_K: touch the weight rows ahead when the weight is too large to stay in cache and its rows are
     * short (MMT_PREFETCH). Alternating runs, Q6_K, M 512: 0.86x the time at N 14336, K 4096 (3.4 KB rows), 0.7-0.9x
     * at N 4096, K 2048; no gain at K 8192 and 1.05x at K 14336 (11.8 KB rows, a page apart and more). */
    const bool prefetch_type = wtype == VKL_TYPE_Q5_K || wtype == VKL_TYPE_Q6_K;
    const bool prefetch = texel && prefetch_type && row_bytes * N > VKL_MMT_PREFETCH_BYTES &&
                          row_bytes <= VKL_MMT_PREFETCH_ROW_BYTES;
    const vkl_coopmat_shape *cs = NULL;
    uint32_t coop_sg = 0, coop_req = 0;
    if (var == MM_COOPMAT && !(cs = coopmat_shape(vk, &coop_sg, &coop_req))) return coopmat_unavailable(vk, err);
    const bool tiled = var == MM_TILED;
    const mm_variant ran = texel ? MM_TEXEL : cs ? MM_COOPMAT : tiled ? MM_TILED : MM_REGTILE;

    char name[64];
    snprintf(name, sizeof(name), "matmul_t_%s%s", type_suffix(wtype),
             wide_h ? "_texel_wide" : texel ? "_texel" : cs ? "_coopmat" : tiled ? "_tiled" : "");
    uint32_t wg = VKL_MMT_WG;
    vkl_pipeline_desc desc = {
        .shader = name,
        .n_bindings = 3,
        .bindings = {VKL_BIND_STORAGE, VKL_BIND_STORAGE, VKL_BIND_STORAGE},
        .push_size = sizeof(vkl_matmul_t_push),
        .n_spec = 1,
        .spec = {wg},
    };
    /* texel: subgroup tiles of tm dx rows by tk columns, sg lanes each; workgroups of whole subgroups */
    uint32_t sg = 1, tm = VKL_MMT_TM, tk = VKL_MMT_TK;
    if (texel) {
        sg = texel_subgroup(vk, &desc.required_subgroup_size);
        const uint32_t rows = wtype == VKL_TYPE_F32 ? VKL_MMT_TEXEL_ROWS_F32 : VKL_MMT_TEXEL_ROWS;
        tm = sg >= rows ? sg : rows / sg * sg;
        tk = 4 * (!wide ? VKL_MMT_TEXEL_TQ : wtype == VKL_TYPE_Q4_K ? VKL_MMT_TEXEL_TQ_WIDE : VKL_MMT_TEXEL_TQ_32) * sg;
        wg = VKL_MAX(wg, sg) / sg * sg;
        desc.n_bindings = 5; /* 3, 4: the low-rank term's u and v */
        desc.bindings[0] = desc.bindings[1] = desc.bindings[3] = desc.bindings[4] = VKL_BIND_TEXEL;
        desc.n_spec = 3; /* spec[2] (FEAT) per dispatch: the push's VKL_MM_ACC | VKL_MM_X_VEC4 */
        desc.spec[0] = wg;
        desc.spec[1] = sg;
    }
    /* coopmat: workgroup tiles of tm dx rows by tk columns (shaders/matmul_t_coopmat.comp), one workgroup each */
    if (cs) wg = coopmat_desc(&desc, cs, coop_sg, coop_req, &tm, &tk);
    /* tiled: likewise, tm x tk per workgroup of 128 (shaders/matmul_t.comp MMT_TILED) */
    if (tiled) {
        wg = desc.spec[0] = VKL_MMT_TILED_WG;
        tm = VKL_MMT_TILED_BM;
        tk = VKL_MMT_TILED_BK;
    }
    /* Nc weight rows and Mc dy/dx rows per dispatch; N chunks after the first accumulate into dx. */
    bind_limits bl = texel ? texel_limits(vk) : get_limits(vk);
    if (texel) bl.align = VKL_MAX(bl.align, 16); /* f32 weight rows keep their vec4 alignment inside the binding */
    uint64_t fl = bl.limit > bl.align ? (bl.limit - bl.align) / 4 : 0;
    uint64_t nc = bl.limit > bl.align + 4 ? (bl.limit - bl.align - 4) / row_bytes : 0;
    nc = VKL_MIN(VKL_MIN(nc, fl), (uint64_t)N);
    /* each invocation loops over its chunk's N rows: keep that under the device's loop limit (llvmpipe), less the
     * low-rank term's r / 4 steps and its mask's Philox rounds (10 for each of a lane's tm * tk / sg elements, if the
     * driver keeps them rolled) */
    const vkl_gemm_dropout *mask = texel ? lowrank_mask(lr) : NULL;
    if (vk->info.max_loop_iterations) {
        uint64_t lim = vk->info.max_loop_iterations, lr_loops = lr ? lr->r / 4 + 16 : 0;
        if (mask) lr_loops += 11ull * tm * tk / sg;
        nc = VKL_MIN(nc, lim > lr_loops ? (lim - lr_loops) / 2 : 0);
    }
    /* coopmat: ~21 loop iterations per 16 rows on lavapipe (its 8x8x8 shape; staging loops included) and ~1 per row
     * for the row scales */
    if (cs && vk->info.max_loop_iterations) nc = VKL_MIN(nc, (uint64_t)vk->info.max_loop_iterations / 8);
    uint64_t mc = fl / K;
    if (nc) mc = VKL_MIN(mc, 1 + (fl - nc) / N);
    uint64_t kgroups = ceil_div(K, tk);
    mc = VKL_MIN(mc, max_tiles(vk, wg) / sg / kgroups * tm);
    /* coopmat, tiled: a 2-D grid of (k tile, m tile) workgroups */
    if (cs || tiled) mc = VKL_MIN(mc, (uint64_t)vk->info.max_workgroup_count[1] * tm);
    if ((cs || tiled) && kgroups > vk->info.max_workgroup_count[0])
        return vkl_err_set(err, VKL_ERR_INPUT, "matmul_t: K = %u needs %llu workgroups in x, more than the device's %u",
                           K, (unsigned long long)kgroups, vk->info.max_workgroup_count[0]);
    mc = VKL_MIN(mc, (uint64_t)M);
    /* texel: the first N chunk of each M chunk adds the low-rank term, with v (r x K) in one binding */
    const bool fused = lr && texel && lowrank_texel_fits(lr) && (uint64_t)lr->r * K * 4 + bl.align <= bl.limit;
    if (fused) mc = VKL_MIN(mc, (bl.limit - bl.align) / ((uint64_t)lr->r * 4));
    /* texel: dy as RGBA32F texels (4 weight rows per fetch) when its rows, and every N chunk, are whole vec4 */
    bool dyv4 = texel && N % 4 == 0 && dy.offset % 16 == 0 && (nc == N || nc >= 4);
    if (dyv4 && nc < N) nc -= nc % 4;
    if (!nc || !mc)
        return vkl_err_set(err, VKL_ERR_INPUT,
                           "matmul_t: a binding limit of %llu bytes cannot hold one weight row (%llu bytes) and one "
                           "row of dx (K = %u)", (unsigned long long)bl.limit, (unsigned long long)row_bytes, K);

    bool own;
    if ((st = begin_if_needed(vk, &own, err))) return st;
    for (uint64_t m0 = 0; m0 < M && !st; m0 += mc) {
        uint64_t mn = VKL_MIN(mc, M - m0);
        for (uint64_t n0 = 0; n0 < N && !st; n0 += nc) {
            uint64_t nn = VKL_MIN(nc, N - n0);
            uint64_t wr, dyr, dxr, ur = 0, vr = 0;
            vkl_binding b[5];
            b[0] = bind_at(w.buf, w.offset + n0 * row_bytes, 0, bl.align, &wr);
            b[0].range = (wr + nn * row_bytes + 3) / 4 * 4;
            b[1] = bind_at(dy.buf, dy.offset + (m0 * N + n0) * 4, ((mn - 1) * N + nn) * 4, bl.align, &dyr);
            b[2] = bind_at(dx.buf, dx.offset + m0 * K * 4, mn * K * 4, bl.align, &dxr);
            if (texel) {
                b[0].texel_format = wtype == VKL_TYPE_F32 ? VK_FORMAT_R32G32B32A32_SFLOAT
                                    : w_rgba_u            ? VK_FORMAT_R32G32B32A32_UINT
                                                          : VK_FORMAT_R32_UINT;
                if (w_rgba_u) b[0].range = (b[0].range + 15) / 16 * 16; /* whole texels, inside (mm_texel_fits) */
                b[1].texel_format = dyv4 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT;
                b[3] = b[4] = b[1];
            }
            const bool lr_here = fused && n0 == 0, drop_here = lr_here && mask;
            if (lr_here) {
                b[3] = bind_at(lr->u.buf, lr->u.offset + m0 * lr->r * 4, mn * lr->r * 4, bl.align, &ur);
                b[4] = bind_at(lr->v.buf, lr->v.offset, (uint64_t)lr->r * K * 4, bl.align, &vr);
                b[3].texel_format = b[4].texel_format = VK_FORMAT_R32G32B32A32_SFLOAT;
            }
            vkl_matmul_t_push pc = {
                .M = (uint32_t)mn,
                .N = (uint32_t)nn,
                .K = K,
                .w_byte_off = (uint32_t)wr,
                .dy_off = (uint32_t)(dyr / 4),
                .dy_stride = N,
                .dx_off = (uint32_t)(dxr / 4),
                .flags = ((accumulate || n0 > 0) ? VKL_MM_ACC : 0) | (dyv4 ? VKL_MM_X_VEC4 : 0) |
                         (lr_here ? VKL_MM_LOWRANK : 0),
                .lr_r = lr_here ? lr->r : 0,
                .u_off = (uint32_t)(ur / 16),
                .v_off = (uint32_t)(vr / 16),
                .lr_scale = lr_here ? lr->scale : 0.0f,
            };
            if (drop_here) {
                /* the chunk's first row */
                pc.key = mask->key;
                pc.base = dropout_base(mask, m0, 0, 0);
                pc.si = mask->si;
                pc.sj = mask->sj;
                pc.p = mask->p;
                pc.scale = 1.0f / (1.0f - mask->p);
            }
            uint32_t gx, gy;
            if (cs || tiled) gx = (uint32_t)kgroups, gy = (uint32_t)ceil_div(mn, tm);
            else grid_for(vk, kgroups * ceil_div(mn, tm) * sg, wg, &gx, &gy);
            if (texel)
                desc.spec[2] = (pc.flags & (VKL_MM_ACC | VKL_MM_X_VEC4)) | (prefetch ? VKL_MM_PREFETCH : 0) |
                               (drop_here ? VKL_MMT_LR_DROP : 0);
            const vkl_pipeline *pipe;
            if ((st = vkl_op_cache_get(vk, c, &desc, &pipe, err))) break;
            st = vkl_cmd_dispatch(vk, pipe, b, desc.n_bindings, &pc, sizeof(pc), gx, gy, 1, err);
            vkl_op_variant_used("matmul_t", variant_names[ran]);
            if (texel && half) vkl_op_variant_used("matmul_t_half_fetch", wide_h ? "texel8" : "word");
            if (texel && prefetch_type) vkl_op_variant_used("matmul_t_prefetch", prefetch ? "on" : "off");
        }
    }
    if (fused) vkl_op_variant_used("lowrank", "fused");
    else if (lr && !st) st = lowrank_gemm(vk, c, lr, true, dx, M, K, err);
    return end_if_owned(vk, own, st, err);
}

/* ---- strided GEMM ---- */

/* Floats spanned by an operand whose element (i, j) sits at i*si + j*sj, for i < ni, j < nj (ni, nj >= 1);
 * saturates instead of wrapping so absurd strides fail the bounds check. */
static uint64_t span(uint64_t ni, uint64_t si, uint64_t nj, uint64_t sj) {
    uint64_t r;
    if (!vkl_add_u64((ni - 1) * si, (nj - 1) * sj, &r) || !vkl_add_u64(r, 1, &r)) return UINT64_MAX;
    return r;
}

/* Halve the dimension of an operand that contributes more to its span (never below 1). */
static bool shrink(uint64_t *di, uint64_t si, uint64_t *dj, uint64_t sj) {
    uint64_t *d = (*di - 1) * si >= (*dj - 1) * sj ? di : dj;
    if (*d == 1) d = d == di ? dj : di;
    if (*d == 1) return false;
    *d = (*d + 1) / 2;
    return true;
}

/* The layout (0 square, 1 tall, 2 wide) among n whose workgroup tiles bm[l] x bn[l] cover M x N with the least padded
 * work (ties: the earlier). The LoRA products have the rank r (8..128) as N (x·A^T, dy^T·xa, dy·B) or M (dxa^T·x):
 * the tall and wide layouts keep those from filling a square tile with padding. */
static int least_padded(uint64_t M, uint64_t N, const uint32_t *bm, const uint32_t *bn, int n) {
    int best = -1;
    uint64_t best_w = UINT64_MAX;
    for (int l = 0; l < n; l++) {
        if (!bm[l] || !bn[l]) continue;
        uint64_t w = ceil_div(M, bm[l]) * bm[l] * ceil_div(N, bn[l]) * bn[l];
        if (w < best_w) best = l, best_w = w;
    }
    return best;
}

/* shaders/gemm_tiled.comp: its three tile shapes. */
static int gemm_tiled_layout(uint64_t M, uint64_t N, uint32_t *bm, uint32_t *bn) {
    static const uint32_t tm[3] = {VKL_GEMM_TILED_SQ, VKL_GEMM_TILED_LONG, VKL_GEMM_TILED_SHORT};
    static const uint32_t tn[3] = {VKL_GEMM_TILED_SQ, VKL_GEMM_TILED_SHORT, VKL_GEMM_TILED_LONG};
    int l = least_padded(M, N, tm, tn, 3);
    *bm = tm[l];
    *bn = tn[l];
    return l;
}

/* shaders/gemm_coopmat.comp: subgroups (WM x WN) and tiles per subgroup (RM x RN) of each layout. */
static const uint32_t gemm_coop_lay[3][4] = {{2, 2, 2, 2}, {4, 1, 2, 1}, {1, 4, 1, 2}};

/* The coopmat layout for this shape among those whose shared memory fits the device (-1: none); *bm x *bn is its
 * workgroup tile. */
static int gemm_coop_layout(const vkl_vk *vk, const vkl_coopmat_shape *cs, uint64_t M, uint64_t N, uint32_t *bm,
                            uint32_t *bn) {
    uint32_t tm[3] = {0}, tn[3] = {0};
    for (int l = 0; l < 3; l++) {
        const uint32_t *w = gemm_coop_lay[l];
        uint64_t rows = (uint64_t)w[0] * w[2] * cs->M, cols = (uint64_t)w[1] * w[3] * cs->N;
        uint64_t br = (uint64_t)VKL_MM_COOP_KT * cs->K;
        /* the f16 panels (rows padded by 8 halves), one f32 tile per subgroup, the row and column exponents */
        uint64_t bytes = rows * (br + 8) * 2 + br * ((cols + 15) / 8 * 8) * 2 +
                         (uint64_t)VKL_MM_COOP_WM * VKL_MM_COOP_WN * cs->M * (cs->N + 4) * 4 + (rows + cols) * 4;
        if (bytes <= vk->info.max_shared_memory) tm[l] = (uint32_t)rows, tn[l] = (uint32_t)cols;
    }
    int l = least_padded(M, N, tm, tn, 3);
    if (l >= 0) *bm = tm[l], *bn = tn[l];
    return l;
}

/* Loop iterations per k of one gemm_coopmat invocation (for llvmpipe's per-invocation limit): the scale pass over
 * its share of A rows and B columns, and the staging loops of each panel of KT * LK (each staged element's Philox
 * rounds too when dropout is on and the driver keeps them rolled), rounded up with a margin. */
static uint64_t gemm_coop_loop_per_k(const vkl_coopmat_shape *cs, uint32_t sg, uint32_t bm, uint32_t bn, bool drop) {
    uint64_t wg = (uint64_t)VKL_MM_COOP_WM * VKL_MM_COOP_WN * sg, br = (uint64_t)VKL_MM_COOP_KT * cs->K;
    double scan = fmax((double)ceil_div(bm, wg), (double)ceil_div(bm, 4) / sg) +
                  fmax((double)ceil_div(bn, wg), (double)ceil_div(bn, 4) / sg);
    double stage = (double)(ceil_div(bm * br, wg) + ceil_div(br * bn, wg)) * (drop ? 11 : 1) / (double)br;
    return (uint64_t)(2 * (scan + stage)) + 2;
}

/* Whether auto leaves the texel gemm for regtile on this device. lavapipe after Mesa 22 (Debian 13's 26.1, LLVM 19)
 * crashes in the JIT-compiled texel gemm for some R32F view sizes (every 672-float view: vklora-bench-matmul --op gemm
 * --M 672 --N 8 --K 1), and there its storage-buffer gemm measured as fast; Mesa 22.3 (Debian 12) runs the texel one,
 * which is faster there. VKLORA_MATMUL=texel still forces it. */
static bool gemm_texel_avoided(const vkl_vk *vk) {
    return vk->info.driver_id == VK_DRIVER_ID_MESA_LLVMPIPE && VK_API_VERSION_MAJOR(vk->info.driver_version) > 22;
}

/* How an operand of a texel gemm can be read 4 floats a fetch: 1 along k (its k stride 1, its other stride a multiple
 * of 4 unless it has one row or column), 2 along its other index (that stride 1, the k stride and the count n_o
 * multiples of 4, so a texel never straddles the edge), 0 neither. Its offset (a multiple of 4) and K are the
 * caller's to check. */
static int vec_axis(uint32_t k_stride, uint32_t o_stride, uint64_t n_o) {
    if (k_stride == 1 && (n_o == 1 || o_stride % 4 == 0)) return 1;
    if (o_stride == 1 && k_stride % 4 == 0 && n_o % 4 == 0) return 2;
    return 0;
}

/* shaders/gemm_skinny.comp: the texel gemm of a product with a narrow side (the LoRA rank), when its operands allow
 * 4-float fetches and fit one binding each; *done says whether it ran. A narrow M (dA = dxa^T x) is computed as
 * C^T = B^T A^T: the wide operand becomes the kernel's A, the narrow one its S, and C is written transposed. A K
 * that is not a multiple of 4 leaves its last 1-3 steps to gemm_f32 (accumulating). Dropout (d, or NULL) is taken
 * when it falls on the wide operand (x in x·A^T and in dxa^T·x): gemm_skinny_drop draws its masks at the fetch. */
static vkl_status gemm_skinny(vkl_vk *vk, vkl_op_cache *c, const vkl_gemm_shape *s, const vkl_gemm_dropout *d,
                              vkl_tview a, vkl_tview b, vkl_tview cm, bool *done, vkl_err *err) {
    *done = false;
    uint32_t req, sg = texel_subgroup(vk, &req);
    const bool swap = s->M < s->N;
    const uint32_t M = swap ? s->N : s->M, N = swap ? s->M : s->N, K4 = s->K / 4 * 4;
    if (!sg || sg % 4 || K4 == 0 || N > VKL_GEMM_SKINNY_MAX_N) return VKL_OK;
    if (d && d->operand != (swap ? 2u : 1u)) return VKL_OK;
    const uint32_t a_rs = swap ? s->b_cs : s->a_rs, a_cs = swap ? s->b_rs : s->a_cs;
    const uint32_t b_rs = swap ? s->a_cs : s->b_rs, b_cs = swap ? s->a_rs : s->b_cs;
    const uint32_t c_rs = swap ? 1 : s->c_rs, c_cs = swap ? s->c_rs : 1;
    const vkl_tview va = swap ? b : a, vb = swap ? a : b;
    const int ax = vec_axis(a_cs, a_rs, M), sx = vec_axis(b_rs, b_cs, N);
    if (!ax || !sx) return VKL_OK;
    const uint32_t layout = (ax == 2 ? VKL_GEMM_SKINNY_A_M : 0) | (sx == 2 ? VKL_GEMM_SKINNY_S_N : 0);
    /* one binding per operand: A and S texel views, C a storage buffer */
    bind_limits bl = get_limits(vk), tx = texel_limits(vk);
    uint64_t sa = span(M, a_rs, K4, a_cs) * 4, sb = span(K4, b_rs, N, b_cs) * 4, sc = span(M, c_rs, N, c_cs) * 4;
    uint64_t tfit = tx.limit - VKL_MIN(tx.limit, tx.align);
    if (sa > tfit || sb > tfit || sc > bl.limit - VKL_MIN(bl.limit, bl.align)) return VKL_OK;
    uint64_t ar, br, cr;
    vkl_binding bd[3] = {bind_at(va.buf, va.offset, sa, tx.align, &ar), bind_at(vb.buf, vb.offset, sb, tx.align, &br),
                         bind_at(cm.buf, cm.offset, sc, bl.align, &cr)};
    if (ar % 16 || br % 16) return VKL_OK;
    /* the K loop (under one iteration per 4 k) within the device's loop limit (llvmpipe), the subgroups in the grid */
    if (vk->info.max_loop_iterations && K4 / 4 + 16 > vk->info.max_loop_iterations) return VKL_OK;
    uint64_t rows = layout & VKL_GEMM_SKINNY_A_M ? (uint64_t)VKL_GEMM_SKINNY_TR * sg
                                                  : (uint64_t)VKL_GEMM_SKINNY_G * (sg / 4);
    uint64_t tiles = ceil_div(M, rows) * ceil_div(N, sg);
    if (tiles * sg > max_tiles(vk, sg)) return VKL_OK;

    vkl_pipeline_desc desc = {
        .shader = d ? "gemm_skinny_drop" : "gemm_skinny",
        .n_bindings = 3,
        .bindings = {VKL_BIND_TEXEL, VKL_BIND_TEXEL, VKL_BIND_STORAGE},
        .push_size = d ? sizeof(vkl_gemm_drop_push) : sizeof(vkl_gemm_push),
        .n_spec = 3,
        .spec = {sg, sg, layout},
        .required_subgroup_size = req,
    };
    const vkl_pipeline *pipe;
    vkl_status st;
    if ((st = vkl_op_cache_get(vk, c, &desc, &pipe, err))) return st;
    bd[0].texel_format = bd[1].texel_format = VK_FORMAT_R32G32B32A32_SFLOAT;
    vkl_gemm_push pc = {.M = M, .N = N, .K = K4, .a_off = (uint32_t)(ar / 4), .a_rs = a_rs, .a_cs = a_cs,
                        .b_off = (uint32_t)(br / 4), .b_rs = b_rs, .b_cs = b_cs, .c_off = (uint32_t)(cr / 4),
                        .c_rs = c_rs, .flags = s->beta != 0.0f ? VKL_MM_ACC : 0, .alpha = s->alpha, .beta = s->beta,
                        .pad = {c_cs, 0}};
    uint32_t gx, gy;
    grid_for(vk, tiles * sg, sg, &gx, &gy);
    bool own;
    if ((st = begin_if_needed(vk, &own, err))) return st;
    if (d) {
        /* the kernel's A(m, k) is the dropped operand's (m, k), or (k, m) when swapped (B(k, n) of dxa^T·x) */
        vkl_gemm_drop_push dp = drop_push(pc, d, d->base, swap ? d->sj : d->si, swap ? d->si : d->sj);
        st = vkl_cmd_dispatch(vk, pipe, bd, 3, &dp, sizeof(dp), gx, gy, 1, err);
    } else {
        st = vkl_cmd_dispatch(vk, pipe, bd, 3, &pc, sizeof(pc), gx, gy, 1, err);
    }
    if (!st) {
        vkl_op_variant_used("gemm", variant_names[MM_TEXEL]);
        vkl_op_variant_used("gemm_fetch", "vec4");
        vkl_op_variant_used("gemm_shape", d ? "skinny_drop" : "skinny");
    }
    if (!st && K4 < s->K) {
        /* the last K % 4 steps, added to the result; the dropped operand's counters continue at k = K4 */
        vkl_gemm_shape t = *s;
        t.K = s->K - K4;
        t.beta = 1;
        vkl_gemm_dropout td;
        if (d) {
            td = *d;
            td.base = dropout_base(d, 0, 0, K4);
        }
        st = vkl_op_gemm_dropout(vk, c, &t, d ? &td : NULL, vkl_tv(a.buf, a.offset + (uint64_t)K4 * s->a_cs * 4),
                                 vkl_tv(b.buf, b.offset + (uint64_t)K4 * s->b_rs * 4), cm, err);
    }
    *done = true;
    return end_if_owned(vk, own, st, err);
}

vkl_status vkl_op_gemm(vkl_vk *vk, vkl_op_cache *c, const vkl_gemm_shape *s, vkl_tview a, vkl_tview b, vkl_tview cm,
                       vkl_err *err) {
    return vkl_op_gemm_dropout(vk, c, s, NULL, a, b, cm, err);
}

vkl_status vkl_op_gemm_dropout(vkl_vk *vk, vkl_op_cache *c, const vkl_gemm_shape *s, const vkl_gemm_dropout *d,
                               vkl_tview a, vkl_tview b, vkl_tview cm, vkl_err *err) {
    static const char op[] = "gemm";
    if (s->M == 0 || s->N == 0) return VKL_OK;
    if (s->K == 0) return vkl_err_set(err, VKL_ERR_INPUT, "gemm: K must be at least 1");
    if (s->M > 1 && s->c_rs < s->N)
        return vkl_err_set(err, VKL_ERR_INPUT, "gemm: C row stride %u is less than N = %u (rows would overlap)",
                           s->c_rs, s->N);
    vkl_status st;
    if ((st = check_f32(op, "A", a, span(s->M, s->a_rs, s->K, s->a_cs), err)) ||
        (st = check_f32(op, "B", b, span(s->K, s->b_rs, s->N, s->b_cs), err)) ||
        (st = check_f32(op, "C", cm, span(s->M, s->c_rs, s->N, 1), err)))
        return st;

    uint32_t wg = VKL_GEMM_WG;
    const bool drop = d && d->operand != 0 && d->p > 0;
    if (drop && (d->operand > 3 || !(d->p < 1)))
        return vkl_err_set(err, VKL_ERR_INPUT, "gemm: dropout operand %u / probability %g", d->operand, d->p);
    /* VKLORA_MATMUL=texel (auto on CPU devices) reads A and B through R32F texel views; regtile is gemm_f32 from
     * storage buffers; tiled (auto on GPUs without cooperative matrices) and coopmat (auto on GPUs with them) run
     * workgroup tiles of bm x bn in one of three layouts, and always take the dropout push block (mode 0: none). */
    mm_variant var = MM_REGTILE;
    bool forced;
    if ((st = pick_variant(vk, &var, &forced, err))) return st;
    const vkl_coopmat_shape *cs = NULL;
    uint32_t coop_sg = 0, coop_req = 0, bm = 0, bn = 0;
    int layout = -1;
    if (var == MM_COOPMAT) {
        cs = coopmat_shape(vk, &coop_sg, &coop_req);
        if (cs) layout = gemm_coop_layout(vk, cs, s->M, s->N, &bm, &bn);
        if (layout < 0) {
            /* auto on a GPU whose shared memory holds none of the gemm layouts: the fp32 tiles */
            if (!cs || forced) {
                if (cs)
                    return vkl_err_set(err, VKL_ERR_INPUT, "VKLORA_MATMUL=coopmat: device %u (%s): no gemm tile "
                                       "layout fits its %u bytes of shared memory", vk->info.index, vk->info.name,
                                       vk->info.max_shared_memory);
                return coopmat_unavailable(vk, err);
            }
            var = MM_TILED;
            cs = NULL;
        }
    }
    if (var == MM_TEXEL) {
        /* also where gemm_f32's texel views are avoided: its RGBA32F views ran every shape of the suite there, at
         * 1.5-2.9x regtile's speed on the LoRA shapes (Mesa 26.1, subgroup 8) */
        bool done;
        if ((st = gemm_skinny(vk, c, s, drop ? d : NULL, a, b, cm, &done, err)) || done) return st;
    }
    if (var == MM_TEXEL && !forced && gemm_texel_avoided(vk)) var = MM_REGTILE;
    if (var == MM_TILED) layout = gemm_tiled_layout(s->M, s->N, &bm, &bn);
    const bool texel = var == MM_TEXEL, tiles = var == MM_TILED || var == MM_COOPMAT;
    /* The per-invocation tiles (texel, regtile): a CPU device runs each workgroup on one thread, so a product of
     * few tiles ran on one core. The LoRA gradients dA = dxa^T x and dB = dy^T xa (r x in and out x r: 64 tiles at
     * r 16, in or out 512) were a single workgroup of 64. Smaller workgroups, down to the subgroup size, spread
     * such a product over up to 32 of them. */
    if (!tiles) {
        uint64_t nt = ceil_div(s->M, VKL_GEMM_TM) * ceil_div(s->N, VKL_GEMM_TN);
        while (wg / 2 >= VKL_MAX(vk->info.subgroup_size, 1) && nt < 32ull * wg) wg /= 2;
    }
    static const char *const names[2][2] = {{"gemm_f32", "gemm_f32_drop"}, {"gemm_f32_texel", "gemm_f32_drop_texel"}};
    static const char *const tile_names[2][3] = {{"gemm_tiled_sq", "gemm_tiled_tall", "gemm_tiled_wide"},
                                                 {"gemm_coopmat_sq", "gemm_coopmat_tall", "gemm_coopmat_wide"}};
    vkl_pipeline_desc desc = {
        .shader = tiles ? tile_names[cs != NULL][layout] : names[texel][drop],
        .n_bindings = 3,
        .bindings = {texel ? VKL_BIND_TEXEL : VKL_BIND_STORAGE, texel ? VKL_BIND_TEXEL : VKL_BIND_STORAGE,
                     VKL_BIND_STORAGE},
        .push_size = drop || tiles ? sizeof(vkl_gemm_drop_push) : sizeof(vkl_gemm_push),
        .n_spec = 1,
        .spec = {wg},
    };
    if (texel) desc.n_spec = 2; /* spec[1] (VEC) per dispatch, below */
    if (drop && !tiles) {
        /* gemm_f32's dropped operand (DMODE): a CPU device would draw every mode's mask behind a push constant */
        desc.n_spec = 3;
        desc.spec[2] = d->operand;
    }
    if (var == MM_TILED) wg = desc.spec[0] = VKL_GEMM_TILED_WG;
    if (cs) {
        /* 4 subgroups as in the weight matmul; the layout's own tile (gemm_coop_layout) replaces that kernel's */
        uint32_t r0, c0;
        wg = coopmat_desc(&desc, cs, coop_sg, coop_req, &r0, &c0);
    }
    const vkl_pipeline *pipe;
    if ((st = vkl_op_cache_get(vk, c, &desc, &pipe, err))) return st;

    /* Shrink the block (Mc, Nc, Kc) until each operand's span fits a binding and the tile count fits the grid;
     * K chunks after the first accumulate into C with beta = 1. */
    bind_limits bl = texel ? texel_limits(vk) : get_limits(vk);
    uint64_t fl = bl.limit > bl.align ? (bl.limit - bl.align) / 4 : 0;
    uint64_t mc = s->M, nc = s->N, kc = s->K, mt = max_tiles(vk, wg);
    for (;;) {
        bool shrunk;
        if (span(mc, s->a_rs, kc, s->a_cs) > fl) shrunk = shrink(&mc, s->a_rs, &kc, s->a_cs);
        else if (span(kc, s->b_rs, nc, s->b_cs) > fl) shrunk = shrink(&kc, s->b_rs, &nc, s->b_cs);
        else if (span(mc, s->c_rs, nc, 1) > fl) shrunk = shrink(&mc, s->c_rs, &nc, 1);
        else if (!tiles && ceil_div(mc, VKL_GEMM_TM) * ceil_div(nc, VKL_GEMM_TN) > mt) shrunk = shrink(&mc, 1, &nc, 1);
        else if (tiles && (ceil_div(nc, bn) > vk->info.max_workgroup_count[0] ||
                           ceil_div(mc, bm) > vk->info.max_workgroup_count[1]))
            shrunk = shrink(&mc, 1, &nc, 1);
        else break;
        if (!shrunk)
            return vkl_err_set(err, VKL_ERR_INPUT, "gemm: a binding limit of %llu bytes cannot hold one element",
                               (unsigned long long)bl.limit);
    }
    /* each invocation loops over its chunk's K: keep that under the device's loop limit (llvmpipe); later K chunks
     * accumulate */
    if (vk->info.max_loop_iterations) {
        uint64_t per_k = 2;
        /* tiled: one iteration per 16 k, plus each staged element's Philox rounds if the driver keeps them rolled */
        if (var == MM_TILED) per_k = drop ? 16 : 2;
        if (cs) per_k = gemm_coop_loop_per_k(cs, coop_sg, bm, bn, drop);
        kc = VKL_MIN(kc, VKL_MAX((uint64_t)vk->info.max_loop_iterations / per_k, 1));
    }

    bool own;
    if ((st = begin_if_needed(vk, &own, err))) return st;
    for (uint64_t m0 = 0; m0 < s->M && !st; m0 += mc) {
        uint64_t mn = VKL_MIN(mc, s->M - m0);
        for (uint64_t n0 = 0; n0 < s->N && !st; n0 += nc) {
            uint64_t nn = VKL_MIN(nc, s->N - n0);
            for (uint64_t k0 = 0; k0 < s->K && !st; k0 += kc) {
                uint64_t kn = VKL_MIN(kc, s->K - k0);
                uint64_t ar, br, cr;
                vkl_binding bd[3];
                bd[0] = bind_at(a.buf, a.offset + (m0 * s->a_rs + k0 * s->a_cs) * 4, span(mn, s->a_rs, kn, s->a_cs) * 4,
                                bl.align, &ar);
                bd[1] = bind_at(b.buf, b.offset + (k0 * s->b_rs + n0 * s->b_cs) * 4, span(kn, s->b_rs, nn, s->b_cs) * 4,
                                bl.align, &br);
                bd[2] = bind_at(cm.buf, cm.offset + (m0 * s->c_rs + n0) * 4, span(mn, s->c_rs, nn, 1) * 4, bl.align,
                                &cr);
                float beta = k0 ? 1.0f : s->beta;
                vkl_gemm_push pc = {
                    .M = (uint32_t)mn,
                    .N = (uint32_t)nn,
                    .K = (uint32_t)kn,
                    .a_off = (uint32_t)(ar / 4),
                    .a_rs = s->a_rs,
                    .a_cs = s->a_cs,
                    .b_off = (uint32_t)(br / 4),
                    .b_rs = s->b_rs,
                    .b_cs = s->b_cs,
                    .c_off = (uint32_t)(cr / 4),
                    .c_rs = s->c_rs,
                    .flags = beta != 0.0f ? VKL_MM_ACC : 0,
                    .alpha = s->alpha,
                    .beta = beta,
                };
                if (texel) {
                    /* vector fetches (shaders/gemm_f32.comp, VEC): the operand's offset, its other stride and the
                     * chunk's K (and M or N when the vector runs along them) multiples of 4; then whole texels */
                    uint32_t vec = 0;
                    if (kn % 4 == 0) {
                        int ax = pc.a_off % 4 ? 0 : vec_axis(s->a_cs, s->a_rs, mn);
                        int bx = pc.b_off % 4 ? 0 : vec_axis(s->b_rs, s->b_cs, nn);
                        vec |= (ax == 1 ? VKL_GEMM_VEC_A_K : 0) | (ax == 2 ? VKL_GEMM_VEC_A_M : 0) |
                               (bx == 1 ? VKL_GEMM_VEC_B_K : 0) | (bx == 2 ? VKL_GEMM_VEC_B_N : 0);
                    }
                    const VkFormat f1 = VK_FORMAT_R32_SFLOAT, f4 = VK_FORMAT_R32G32B32A32_SFLOAT;
                    bd[0].texel_format = vec & (VKL_GEMM_VEC_A_K | VKL_GEMM_VEC_A_M) ? f4 : f1;
                    bd[1].texel_format = vec & (VKL_GEMM_VEC_B_K | VKL_GEMM_VEC_B_N) ? f4 : f1;
                    vkl_op_variant_used("gemm_fetch", vec ? "vec4" : "scalar");
                    vkl_op_variant_used("gemm_shape", "tile");
                    if (vec != desc.spec[1]) {
                        desc.spec[1] = vec;
                        if ((st = vkl_op_cache_get(vk, c, &desc, &pipe, err))) break;
                    }
                }
                uint32_t gx, gy;
                if (tiles) gx = (uint32_t)ceil_div(nn, bn), gy = (uint32_t)ceil_div(mn, bm);
                else grid_for(vk, ceil_div(mn, VKL_GEMM_TM) * ceil_div(nn, VKL_GEMM_TN), wg, &gx, &gy);
                if (drop || tiles) {
                    /* from the chunk's first element of the dropped operand */
                    vkl_gemm_drop_push dp = drop ? drop_push(pc, d, dropout_base(d, m0, n0, k0), d->si, d->sj)
                                                 : (vkl_gemm_drop_push){.g = pc};
                    st = vkl_cmd_dispatch(vk, pipe, bd, 3, &dp, sizeof(dp), gx, gy, 1, err);
                } else {
                    st = vkl_cmd_dispatch(vk, pipe, bd, 3, &pc, sizeof(pc), gx, gy, 1, err);
                }
                vkl_op_variant_used("gemm", variant_names[var]);
            }
        }
    }
    return end_if_owned(vk, own, st, err);
}
