/* LoRA forward and backward as strided fp32 GEMMs (see ops/lora_ops.h). */
#include "ops/lora_ops.h"

/* Rows per GEMM call so that [rows, width] fp32 operands stay within the binding limit. */
static uint32_t rows_per_call(const vkl_vk *vk, uint64_t width, uint32_t R) {
    uint64_t lim = vkl_max_bind_elems(vk, 4, 1) / VKL_MAX(width, 1);
    return (uint32_t)VKL_MAX(1, VKL_MIN(lim, R));
}

static vkl_tview at(vkl_tview v, uint64_t bytes) { return vkl_tv(v.buf, v.offset + bytes); }

/* The mask of x's block starting at row r0, seen as operand `operand` of a GEMM whose (i, j) run along
 * (rows, cols) of x when rows_first, else (cols, rows). */
static vkl_gemm_dropout mask_of(const vkl_lora_dropout *d, uint32_t operand, uint32_t r0, uint32_t in) {
    vkl_gemm_dropout g = {.operand = operand, .key = d->key, .p = d->p, .base = (d->row0 + r0) * in, .si = in,
                          .sj = 1};
    return g;
}

static vkl_status check_dropout(const vkl_lora_dropout *d, uint32_t R, uint32_t in, vkl_err *err) {
    if (d && d->p > 0 && ((uint64_t)d->row0 + R) * in >= (1ull << 32))
        return vkl_err_set(err, VKL_ERR_INPUT, "lora: dropout counters need rows x in < 2^32 (%llu x %u)",
                           (unsigned long long)d->row0 + R, in);
    return VKL_OK;
}

vkl_status vkl_op_lora_xa(vkl_vk *vk, vkl_op_cache *c, const vkl_lora_slot *sl, uint32_t r, vkl_tview params,
                          vkl_tview x, vkl_tview xa, uint32_t R, const vkl_lora_dropout *drop, vkl_err *err) {
    const uint32_t in = sl->in;
    if (check_dropout(drop, R, in, err)) return err->status;
    const bool dp = drop && drop->p > 0;
    vkl_tview A = at(params, sl->a_off * 4);
    uint32_t step = rows_per_call(vk, in, R);
    for (uint32_t r0 = 0; r0 < R; r0 += step) {
        uint32_t n = VKL_MIN(step, R - r0);
        vkl_gemm_shape s1 = {.M = n, .N = r, .K = in, .a_rs = in, .a_cs = 1, .b_rs = 1, .b_cs = in, .c_rs = r,
                             .alpha = 1, .beta = 0};
        vkl_gemm_dropout m1 = dp ? mask_of(drop, 1, r0, in) : (vkl_gemm_dropout){0};
        if (vkl_op_gemm_dropout(vk, c, &s1, dp ? &m1 : NULL, at(x, (uint64_t)r0 * in * 4),
                                A, at(xa, (uint64_t)r0 * r * 4), err))
            return err->status;
    }
    return VKL_OK;
}

vkl_mm_lowrank vkl_lora_term(const vkl_lora_slot *sl, uint32_t r, float scale, vkl_tview params, vkl_tview xa) {
    return (vkl_mm_lowrank){.u = xa, .v = at(params, sl->b_off * 4), .r = r, .scale = scale};
}

vkl_mm_lowrank vkl_lora_term_back(const vkl_lora_slot *sl, uint32_t r, vkl_tview params, vkl_tview dxa,
                                  const vkl_lora_dropout *drop, vkl_gemm_dropout *mask) {
    const bool dp = drop && drop->p > 0;
    if (dp) *mask = mask_of(drop, 3, 0, sl->in);
    return (vkl_mm_lowrank){.u = dxa, .v = at(params, sl->a_off * 4), .r = r, .scale = 1, .mask = dp ? mask : NULL};
}

vkl_status vkl_op_lora_backward(vkl_vk *vk, vkl_op_cache *c, const vkl_lora_slot *sl, uint32_t r, float scale,
                                vkl_tview params, vkl_tview grads, vkl_tview x, vkl_tview xa, vkl_tview dy,
                                vkl_tview dxa, vkl_tview dx, uint32_t R, const vkl_lora_dropout *drop, vkl_err *err) {
    const uint32_t in = sl->in, out = sl->out;
    if (check_dropout(drop, R, in, err)) return err->status;
    const bool dp = drop && drop->p > 0;
    vkl_tview A = at(params, sl->a_off * 4), B = at(params, sl->b_off * 4);
    vkl_tview dA = at(grads, sl->a_off * 4), dB = at(grads, sl->b_off * 4);
    uint32_t step = rows_per_call(vk, VKL_MAX(in, out), R);
    for (uint32_t r0 = 0; r0 < R; r0 += step) {
        uint32_t n = VKL_MIN(step, R - r0);
        vkl_tview xr = at(x, (uint64_t)r0 * in * 4), xar = at(xa, (uint64_t)r0 * r * 4);
        vkl_tview dyr = at(dy, (uint64_t)r0 * out * 4), dxr = at(dx, (uint64_t)r0 * in * 4);
        vkl_tview dxar = at(dxa, (uint64_t)r0 * r * 4); /* all R rows stay for a fused dx term */
        vkl_gemm_shape gB = {.M = out, .N = r, .K = n, .a_rs = 1, .a_cs = out, .b_rs = r, .b_cs = 1, .c_rs = r,
                             .alpha = scale, .beta = 1};
        vkl_gemm_shape gxa = {.M = n, .N = r, .K = out, .a_rs = out, .a_cs = 1, .b_rs = r, .b_cs = 1, .c_rs = r,
                              .alpha = scale, .beta = 0};
        vkl_gemm_shape gA = {.M = r, .N = in, .K = n, .a_rs = 1, .a_cs = r, .b_rs = in, .b_cs = 1, .c_rs = in,
                             .alpha = 1, .beta = 1};
        vkl_gemm_shape gx = {.M = n, .N = in, .K = r, .a_rs = r, .a_cs = 1, .b_rs = in, .b_cs = 1, .c_rs = in,
                             .alpha = 1, .beta = 1};
        /* xa already holds dropout(x)·A^T; dA needs dropout(x) again, dx the mask on its LoRA term */
        vkl_gemm_dropout mA = dp ? mask_of(drop, 2, r0, in) : (vkl_gemm_dropout){0};
        vkl_gemm_dropout mx = dp ? mask_of(drop, 3, r0, in) : (vkl_gemm_dropout){0};
        if (vkl_op_gemm(vk, c, &gB, dyr, xar, dB, err) || vkl_op_gemm(vk, c, &gxa, dyr, B, dxar, err) ||
            vkl_op_gemm_dropout(vk, c, &gA, dp ? &mA : NULL, dxar, xr, dA, err) ||
            (dx.buf && vkl_op_gemm_dropout(vk, c, &gx, dp ? &mx : NULL, dxar, A, dxr, err)))
            return err->status;
    }
    return VKL_OK;
}

vkl_status vkl_op_bias_grad(vkl_vk *vk, vkl_op_cache *c, vkl_tview dy, vkl_tview ones, vkl_tview db, uint32_t n,
                            uint32_t R, vkl_err *err) {
    uint32_t step = rows_per_call(vk, n, R);
    for (uint32_t r0 = 0; r0 < R; r0 += step) {
        uint32_t k = VKL_MIN(step, R - r0);
        vkl_gemm_shape g = {.M = 1, .N = n, .K = k, .a_rs = k, .a_cs = 1, .b_rs = n, .b_cs = 1, .c_rs = n,
                            .alpha = 1, .beta = 1};
        if (vkl_op_gemm(vk, c, &g, ones, at(dy, (uint64_t)r0 * n * 4), db, err)) return err->status;
    }
    return VKL_OK;
}
