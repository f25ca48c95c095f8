/* Tests of the flash-attention kernels (shaders/attention_flash*.comp) in both variants, f32 "flash" and f16
 * cooperative-matrix "coopmat", forward and backward against the double-precision scalar twin (src/ref/nn.c) on odd
 * shapes, and of the flash backward against central finite differences of the flash forward on the device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/nn.h"
#include "ref/nn.h"

/* ---- device tensors of one case, FPAD bytes into their buffers: 12 (a binding-alignment remainder to handle; the
 * flash kernels take any 4-byte offset) or 16 ---- */

static uint64_t FPAD = 12;
#define FPOOL 16
typedef struct {
    vkl_buffer b[FPOOL];
    uint64_t bytes[FPOOL];
    int n;
} fpool;

static vkl_tview fup(vkl_vk *vk, fpool *p, const void *data, uint64_t bytes) {
    if (p->n == FPOOL) return vkl_tv_none();
    vkl_err err = {0};
    uint64_t size = FPAD + bytes + 4;
    if (vkl_buffer_create(vk, size, VKL_MEM_DEVICE, &p->b[p->n], &err)) {
        fprintf(stderr, "    buffer: %s\n", err.msg);
        return vkl_tv_none();
    }
    p->bytes[p->n] = bytes;
    char *z = vkl_calloc(1, size);
    if (data) memcpy(z + FPAD, data, bytes);
    vkl_status st = vkl_buffer_upload(vk, &p->b[p->n], 0, z, size, &err);
    free(z);
    if (st) {
        fprintf(stderr, "    upload: %s\n", err.msg);
        vkl_buffer_destroy(vk, &p->b[p->n]);
        return vkl_tv_none();
    }
    return vkl_tv(&p->b[p->n++], FPAD);
}
static bool fdown(vkl_vk *vk, vkl_tview t, void *dst, uint64_t bytes) {
    vkl_err err = {0};
    if (vkl_buffer_download(vk, t.buf, t.offset, dst, bytes, &err)) {
        fprintf(stderr, "    download: %s\n", err.msg);
        return false;
    }
    return true;
}
static void fpool_free(vkl_vk *vk, fpool *p) {
    for (int i = 0; i < p->n; i++) vkl_buffer_destroy(vk, &p->b[i]);
    p->n = 0;
}

/* ---- cases ---- */

typedef struct {
    uint32_t n_seq, T, S, n_head, n_head_kv, D, pos0;
    int seg;         /* packing boundaries at T/3 and 2T/3 (shifted per sequence) */
    uint32_t window; /* 0: none */
    float softcap;   /* 0: off */
    float dscale;    /* dout magnitude (gradients far below and above f16's comfortable range) */
} fcfg;

/* T not a multiple of any block, GQA 1, 2 and 4, D from odd values to 256, KV-cache decode (pos0 > 0 with T 1 and
 * 5), windows shorter than T (down to 1), soft-capping, packing segments (with one query whose range is empty, see
 * fmake), several sequences, and gradients of 1e-7 and 1e4 (f16 holds neither well without the row scaling). */
static const fcfg fcfgs[] = {
    {1, 37, 37, 4, 2, 64, 0, 1, 0, 0, 1},          {2, 23, 30, 4, 1, 5, 7, 0, 0, 0, 1},
    {1, 41, 45, 8, 2, 80, 4, 1, 9, 0, 1},           {1, 19, 19, 2, 2, 96, 0, 0, 5, 30.0f, 1},
    {2, 29, 29, 4, 4, 128, 0, 1, 0, 1.5f, 1},       {1, 1, 40, 4, 1, 64, 39, 0, 0, 0, 1},
    {2, 5, 21, 6, 2, 36, 16, 1, 7, 0, 1},           {1, 17, 17, 4, 1, 256, 0, 1, 13, 50.0f, 1},
    {1, 33, 33, 2, 1, 12, 0, 0, 0, 0, 1e-7f},       {1, 27, 31, 4, 2, 64, 4, 1, 6, 2.0f, 1e4f},
    {3, 13, 13, 2, 1, 7, 0, 1, 1, 0, 1},
};

typedef struct {
    vkl_attn_shape s;
    size_t nq, nkv, nl;
    float *q, *k, *v, *dout, *out, *lse, *dq, *dk, *dv, *dk0, *dv0;
    int32_t *seg;
} fdata;

static void frnd(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = t_rng_uniform(lo, hi);
}
static double *to_d(const float *x, size_t n) {
    double *y = vkl_calloc(n ? n : 1, sizeof(double));
    for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}
static void to_f(const double *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
}

/* Random inputs and the double-precision reference outputs (forward and backward) of one case. */
static void fmake(const fcfg *c, fdata *a) {
    memset(a, 0, sizeof(*a));
    a->s = (vkl_attn_shape){c->n_seq, c->T, c->S, c->n_head, c->n_head_kv, c->D, c->pos0,
                            1.0f / sqrtf((float)c->D), c->window, c->softcap};
    a->nq = (size_t)c->n_seq * c->T * c->n_head * c->D;
    a->nkv = (size_t)c->n_seq * c->S * c->n_head_kv * c->D;
    a->nl = (size_t)c->n_seq * c->n_head * c->T;
    float **all[] = {&a->q, &a->dout, &a->out, &a->dq};
    for (size_t i = 0; i < 4; i++) *all[i] = vkl_calloc(a->nq, 4);
    float **kv[] = {&a->k, &a->v, &a->dk, &a->dv, &a->dk0, &a->dv0};
    for (size_t i = 0; i < 6; i++) *kv[i] = vkl_calloc(a->nkv, 4);
    a->lse = vkl_calloc(a->nl, 4);
    /* scores of a few units: neither flat nor one-hot */
    frnd(a->q, a->nq, -2, 2), frnd(a->k, a->nkv, -2, 2), frnd(a->v, a->nkv, -1, 1);
    frnd(a->dout, a->nq, -c->dscale, c->dscale);
    frnd(a->dk0, a->nkv, -0.5f * c->dscale, 0.5f * c->dscale), frnd(a->dv0, a->nkv, -0.5f * c->dscale, 0.5f * c->dscale);
    if (c->seg) {
        a->seg = vkl_calloc((size_t)c->n_seq * c->T, 4);
        for (uint32_t b = 0; b < c->n_seq; b++)
            for (uint32_t t = 0; t < c->T; t++) {
                uint32_t b1 = c->T / 3 + b, b2 = 2 * c->T / 3 + b, start = 0;
                if (t >= b2 && b2 > b1) start = b2;
                else if (t >= b1 && b1 > 0) start = b1;
                a->seg[(size_t)b * c->T + t] = (int32_t)(start ? c->pos0 + start : 0);
            }
        /* one query whose range is empty (its segment starts past its own position): out 0, lse -inf */
        if (c->T > 2) a->seg[1] = (int32_t)(c->pos0 + 2);
    }
    double *q = to_d(a->q, a->nq), *k = to_d(a->k, a->nkv), *v = to_d(a->v, a->nkv), *dout = to_d(a->dout, a->nq);
    double *out = vkl_calloc(a->nq, 8), *lse = vkl_calloc(a->nl, 8), *dq = vkl_calloc(a->nq, 8);
    double *dk = to_d(a->dk0, a->nkv), *dv = to_d(a->dv0, a->nkv);
    vkl_ref_attention_f64(&a->s, q, k, v, a->seg, out, lse);
    vkl_ref_attention_back_f64(&a->s, q, k, v, a->seg, out, lse, dout, dq, dk, dv);
    to_f(out, a->out, a->nq), to_f(lse, a->lse, a->nl), to_f(dq, a->dq, a->nq);
    to_f(dk, a->dk, a->nkv), to_f(dv, a->dv, a->nkv);
    free(q), free(k), free(v), free(dout), free(out), free(lse), free(dq), free(dk), free(dv);
}
static void ffree(fdata *a) {
    free(a->q), free(a->k), free(a->v), free(a->dout), free(a->out), free(a->lse), free(a->dq), free(a->dk);
    free(a->dv), free(a->dk0), free(a->dv0), free(a->seg);
}

/* Error of got against want relative to max|want|, lse compared where finite (-inf must stay -inf). */
static double lse_err(const float *got, const float *want, size_t n) {
    double e = 0, mx = 1e-30;
    for (size_t i = 0; i < n; i++) {
        if (isinf(want[i]) || isinf(got[i])) {
            if (got[i] != want[i]) return INFINITY;
            continue;
        }
        e = fmax(e, fabs((double)got[i] - want[i]));
        if (!(e == e)) return INFINITY;
        mx = fmax(mx, fabs(want[i]));
    }
    return e / mx;
}

/* Gradient error relative to max(max|want|, floor): with window 1 every query sees one key, its probability is 1
 * and dq is exactly 0 in exact arithmetic, so the f16 variant's rounding residue (~u |dout| |v|) is measured
 * against the gradients' natural size, the dout magnitude. */
static double grad_err(const float *got, const float *want, size_t n, double floor) {
    double e = t_max_rel_err(got, want, n), mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(want[i]));
    return mx >= floor || !isfinite(e) ? e : e * fmax(mx, 1e-30) / floor;
}

/* Tolerances (errors relative to the largest reference value).
 * flash: f32 operands and accumulation as the scalar kernels: dot products of <= 256 terms and softmax sums of
 * <= 45 keys against double; bounds as tests/test_nn.c (1e-5 forward, 2e-5 backward); measured <= 1.1e-6.
 * coopmat: every operand is rounded to f16 once (unit roundoff u = 2^-11 = 4.9e-4; the power-of-two scaling keeps
 * dout, dS and P / s out of f16's subnormals and below its overflow), products and sums in f32. A score
 * scale * q.k then errs by <= 2u of scale * sum|q_d k_d| (~1.3 here: |q|, |k| < 2), so probabilities by ~2.6u
 * relative; out = P V rounds P and V once more: <~ 4u = 2e-3 of max|out|, and lse by ~2.6u absolute on values of
 * 1..5. The backward chains two rounded products (dP = dO V^T, then dS or P / s rounded again into dS K, dS^T Qs,
 * P^T dO), and dS = P (dP - D) subtracts nearly equal terms, so twice: 8e-3 (16u). Bounds 4e-3 and 8e-3;
 * measured on the Debian 13 lavapipe (8x8x8): out 7.4e-4, lse 2.9e-4, dq 5.4e-4, dk 5.6e-4, dv 4.3e-4. */
#define FLASH_TOL_FWD 1e-5
#define FLASH_TOL_BACK 2e-5
#define COOP_TOL_FWD 4e-3
#define COOP_TOL_BACK 8e-3

static double g_worst[2][5]; /* [variant][out, lse, dq, dk, dv]: measured, printed with VKL_TEST_VERBOSE */

/* One case in one variant: forward and backward against the reference, and the op must have run the variant.
 * chunked: bindings of one or two sequences (VKLORA_MAX_BIND_BYTES), so several sequences go in several dispatches
 * with offsets into the bound ranges. */
static int fcase(vkl_vk *vk, vkl_op_cache *c, const fcfg *cf, size_t ci, const char *variant, int chunked) {
    int coop = !strcmp(variant, "coopmat");
    fdata a;
    fmake(cf, &a);
    fpool p = {0};
    int rc = 1;
    float *go = vkl_calloc(a.nq, 4), *gl = vkl_calloc(a.nl, 4), *gq = vkl_calloc(a.nq, 4);
    float *gk = vkl_calloc(a.nkv, 4), *gv = vkl_calloc(a.nkv, 4);
    vkl_tview q = fup(vk, &p, a.q, a.nq * 4), k = fup(vk, &p, a.k, a.nkv * 4), v = fup(vk, &p, a.v, a.nkv * 4);
    vkl_tview seg = a.seg ? fup(vk, &p, a.seg, (size_t)cf->n_seq * cf->T * 4) : vkl_tv_none();
    vkl_tview out = fup(vk, &p, NULL, a.nq * 4), lse = fup(vk, &p, NULL, a.nl * 4);
    vkl_tview dout = fup(vk, &p, a.dout, a.nq * 4), dq = fup(vk, &p, NULL, a.nq * 4);
    vkl_tview dk = fup(vk, &p, a.dk0, a.nkv * 4), dv = fup(vk, &p, a.dv0, a.nkv * 4);
    if (!q.buf || !k.buf || !v.buf || !out.buf || !lse.buf || !dout.buf || !dq.buf || !dk.buf || !dv.buf ||
        (a.seg && !seg.buf))
        goto done;
    vkl_err err = {0};
    vkl_op_variants_reset();
    char small[32];
    uint64_t qb = (uint64_t)cf->T * cf->n_head * cf->D * 4, kvb = (uint64_t)cf->S * cf->n_head_kv * cf->D * 4;
    snprintf(small, sizeof(small), "%llu", (unsigned long long)(2 * VKL_MAX(qb, kvb) + 256));
    if (chunked) setenv("VKLORA_MAX_BIND_BYTES", small, 1);
    vkl_status st = vkl_op_attention(vk, c, &a.s, q, k, v, seg, out, lse, &err);
    if (!st) st = vkl_op_attention_back(vk, c, &a.s, q, k, v, seg, out, lse, dout, dq, dk, dv, vkl_tv_none(), &err);
    unsetenv("VKLORA_MAX_BIND_BYTES");
    if (st) {
        fprintf(stderr, "    FAIL %s case %zu (chunked %d): %s\n", variant, ci, chunked, err.msg);
        goto done;
    }
    char used[64], used_b[64];
    vkl_op_variants_of("attention", used, sizeof(used));
    vkl_op_variants_of("attention_back", used_b, sizeof(used_b));
    if (strcmp(used, variant) || strcmp(used_b, variant)) {
        fprintf(stderr, "    FAIL %s case %zu (D %u): ran forward \"%s\", backward \"%s\"\n", variant, ci, cf->D, used,
                used_b);
        goto done;
    }
    if (!fdown(vk, out, go, a.nq * 4) || !fdown(vk, lse, gl, a.nl * 4) || !fdown(vk, dq, gq, a.nq * 4) ||
        !fdown(vk, dk, gk, a.nkv * 4) || !fdown(vk, dv, gv, a.nkv * 4))
        goto done;
    /* the backward ran on the device's own out and lse (as in training), the reference on its own */
    double e[5] = {t_max_rel_err(go, a.out, a.nq), lse_err(gl, a.lse, a.nl), grad_err(gq, a.dq, a.nq, cf->dscale),
                   grad_err(gk, a.dk, a.nkv, cf->dscale), grad_err(gv, a.dv, a.nkv, cf->dscale)};
    double tf = coop ? COOP_TOL_FWD : FLASH_TOL_FWD, tb = coop ? COOP_TOL_BACK : FLASH_TOL_BACK;
    for (int i = 0; i < 5; i++) g_worst[coop][i] = fmax(g_worst[coop][i], e[i]);
    if (!(e[0] <= tf && e[1] <= tf && e[2] <= tb && e[3] <= tb && e[4] <= tb)) {
        fprintf(stderr,
                "    FAIL %s case %zu (chunked %d, n_seq %u T %u S %u heads %u/%u D %u pos0 %u seg %d window %u "
                "softcap %g dout x%g): out %.3g lse %.3g (tol %.3g), dq %.3g dk %.3g dv %.3g (tol %.3g)\n",
                variant, ci, chunked, cf->n_seq, cf->T, cf->S, cf->n_head, cf->n_head_kv, cf->D, cf->pos0, cf->seg,
                cf->window, (double)cf->softcap, (double)cf->dscale, e[0], e[1], tf, e[2], e[3], e[4], tb);
        static const char *const nm[3] = {"dq", "dk", "dv"};
        const float *gg[3] = {gq, gk, gv}, *ww[3] = {a.dq, a.dk, a.dv};
        for (int w = 0; w < 3; w++) { /* where the worst gradient error sits */
            size_t n = w ? a.nkv : a.nq, at = 0;
            for (size_t i = 1; i < n; i++)
                if (!(fabs(gg[w][i] - ww[w][i]) <= fabs(gg[w][at] - ww[w][at]))) at = i;
            fprintf(stderr, "      %s[%zu] (row %zu, d %zu): got %g, want %g\n", nm[w], at, at / cf->D, at % cf->D,
                    (double)gg[w][at], (double)ww[w][at]);
        }
        goto done;
    }
    /* the empty-range query: out exactly 0, lse -inf */
    if (a.seg && cf->T > 2) {
        for (uint32_t h = 0; h < cf->n_head; h++) {
            if (!isinf(gl[(size_t)h * cf->T + 1]) || gl[(size_t)h * cf->T + 1] > 0) {
                fprintf(stderr, "    FAIL %s case %zu: a query with no key got lse %g\n", variant, ci,
                        (double)gl[(size_t)h * cf->T + 1]);
                goto done;
            }
            for (uint32_t d = 0; d < cf->D; d++)
                if (go[((size_t)1 * cf->n_head + h) * cf->D + d] != 0.0f) {
                    fprintf(stderr, "    FAIL %s case %zu: a query with no key got out %g\n", variant, ci,
                            (double)go[((size_t)1 * cf->n_head + h) * cf->D + d]);
                    goto done;
                }
        }
    }
    rc = 0;
done:
    fpool_free(vk, &p);
    free(go), free(gl), free(gq), free(gk), free(gv);
    ffree(&a);
    return rc;
}

static int run_variant(const char *variant, uint32_t seed) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    vkl_op_cache cache = {0};
    setenv("VKLORA_ATTN", variant, 1);
    t_rng_seed(seed);
    int rc = 0;
    for (size_t ci = 0; ci < VKL_ARRAY_LEN(fcfgs) && !rc; ci++) rc = fcase(vk, &cache, &fcfgs[ci], ci, variant, 0);
    /* several sequences again, split into one-or-two-sequence bindings, 16-byte aligned */
    FPAD = 16;
    for (size_t ci = 0; ci < VKL_ARRAY_LEN(fcfgs) && !rc; ci++)
        if (fcfgs[ci].n_seq > 1) rc = fcase(vk, &cache, &fcfgs[ci], ci, variant, 1);
    FPAD = 12;
    unsetenv("VKLORA_ATTN");
    vkl_op_cache_destroy(vk, &cache);
    int coop = !strcmp(variant, "coopmat");
    if (getenv("VKL_TEST_VERBOSE"))
        fprintf(stderr, "    %s worst errors: out %.3g lse %.3g dq %.3g dk %.3g dv %.3g\n", variant, g_worst[coop][0],
                g_worst[coop][1], g_worst[coop][2], g_worst[coop][3], g_worst[coop][4]);
    return rc;
}

static int test_flash(void) { return run_variant("flash", 90); }

/* Where the coopmat variant cannot run (a build whose glslc lacks GL_KHR_cooperative_matrix, e.g. Debian 12's; a
 * device without it) VKLORA_ATTN=coopmat must be an input error naming the reason; VKL_TEST_REQUIRE_COOPMAT=1
 * (tools/chroot-trixie.sh sets it) makes that a failure. */
static int test_coopmat(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    fdata a;
    fmake(&fcfgs[0], &a);
    fpool p = {0};
    vkl_tview q = fup(vk, &p, a.q, a.nq * 4), k = fup(vk, &p, a.k, a.nkv * 4), v = fup(vk, &p, a.v, a.nkv * 4);
    vkl_tview out = fup(vk, &p, NULL, a.nq * 4);
    vkl_op_cache cache = {0};
    vkl_err err = {0};
    setenv("VKLORA_ATTN", "coopmat", 1);
    vkl_status st = q.buf && k.buf && v.buf && out.buf
                        ? vkl_op_attention(vk, &cache, &a.s, q, k, v, vkl_tv_none(), out, vkl_tv_none(), &err)
                        : VKL_ERR_RUNTIME;
    unsetenv("VKLORA_ATTN");
    vkl_op_cache_destroy(vk, &cache);
    fpool_free(vk, &p);
    ffree(&a);
    if (st) {
        if (t_coopmat_refusal(st, err.msg, "VKLORA_ATTN=coopmat")) return 1;
        return 0;
    }
    return run_variant("coopmat", 91);
}

/* ---- the flash backward against central differences of the flash forward, both on the device ---- */

/* L = sum(R * out) as the device computes it, for the current q, k, v. */
static bool fd_loss(vkl_vk *vk, vkl_op_cache *c, const vkl_attn_shape *s, vkl_tview *t, const fdata *a,
                    const float *R, float *out, double *L) {
    vkl_err err = {0};
    if (vkl_buffer_upload(vk, (vkl_buffer *)t[0].buf, t[0].offset, a->q, a->nq * 4, &err) ||
        vkl_buffer_upload(vk, (vkl_buffer *)t[1].buf, t[1].offset, a->k, a->nkv * 4, &err) ||
        vkl_buffer_upload(vk, (vkl_buffer *)t[2].buf, t[2].offset, a->v, a->nkv * 4, &err) ||
        vkl_op_attention(vk, c, s, t[0], t[1], t[2], t[3], t[4], vkl_tv_none(), &err)) {
        fprintf(stderr, "    %s\n", err.msg);
        return false;
    }
    if (!fdown(vk, t[4], out, a->nq * 4)) return false;
    double l = 0;
    for (size_t i = 0; i < a->nq; i++) l += (double)R[i] * out[i];
    *L = l;
    return true;
}

/* GQA 4 on 2, a KV-cache prefix, a packing boundary, with and without window and soft-cap. Each sampled element's
 * derivative is a central difference with h = 1e-2 of the f32 forward: truncation ~h^2 * |f'''| ~ 1e-4 and f32
 * rounding ~1e-7 * sum|R out| / h ~ 1e-4 relative, so the bound is 2e-3 of (|fd| + 1e-2), as tests/test_grad_fd.c. */
static int test_flash_fd(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    static const fcfg cfgs[] = {{2, 7, 9, 4, 2, 6, 2, 1, 0, 0, 1}, {2, 7, 9, 4, 2, 6, 2, 1, 3, 1.2f, 1}};
    setenv("VKLORA_ATTN", "flash", 1);
    t_rng_seed(92);
    vkl_op_cache cache = {0};
    int rc = 0;
    for (size_t ci = 0; ci < VKL_ARRAY_LEN(cfgs) && !rc; ci++) {
        fdata a;
        fmake(&cfgs[ci], &a);
        fpool p = {0};
        float *R = vkl_calloc(a.nq, 4), *out = vkl_calloc(a.nq, 4), *lse = vkl_calloc(a.nl, 4);
        float *gq = vkl_calloc(a.nq, 4), *gk = vkl_calloc(a.nkv, 4), *gv = vkl_calloc(a.nkv, 4);
        frnd(R, a.nq, -1, 1);
        vkl_tview t[5] = {fup(vk, &p, a.q, a.nq * 4), fup(vk, &p, a.k, a.nkv * 4), fup(vk, &p, a.v, a.nkv * 4),
                          a.seg ? fup(vk, &p, a.seg, (size_t)a.s.n_seq * a.s.T * 4) : vkl_tv_none(),
                          fup(vk, &p, NULL, a.nq * 4)};
        vkl_tview tl = fup(vk, &p, NULL, a.nl * 4), tR = fup(vk, &p, R, a.nq * 4);
        vkl_tview tdq = fup(vk, &p, NULL, a.nq * 4), tdk = fup(vk, &p, NULL, a.nkv * 4);
        vkl_tview tdv = fup(vk, &p, NULL, a.nkv * 4);
        vkl_err err = {0};
        rc = 1;
        if (!t[0].buf || !t[1].buf || !t[2].buf || !t[4].buf || !tl.buf || !tR.buf || !tdq.buf || !tdk.buf ||
            !tdv.buf || (a.seg && !t[3].buf))
            goto next;
        if (vkl_op_attention(vk, &cache, &a.s, t[0], t[1], t[2], t[3], t[4], tl, &err) ||
            vkl_op_attention_back(vk, &cache, &a.s, t[0], t[1], t[2], t[3], t[4], tl, tR, tdq, tdk, tdv, vkl_tv_none(),
                                  &err)) {
            fprintf(stderr, "    FAIL: %s\n", err.msg);
            goto next;
        }
        if (!fdown(vk, tdq, gq, a.nq * 4) || !fdown(vk, tdk, gk, a.nkv * 4) || !fdown(vk, tdv, gv, a.nkv * 4))
            goto next;
        double worst = 0;
        const float h = 1e-2f;
        for (int which = 0; which < 3; which++) {
            float *x = which == 0 ? a.q : which == 1 ? a.k : a.v, *g = which == 0 ? gq : which == 1 ? gk : gv;
            size_t n = which == 0 ? a.nq : a.nkv;
            for (int smp = 0; smp < 16; smp++) {
                size_t i = t_rng_u32() % n;
                float x0 = x[i];
                double L[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    x[i] = x0 + (sgn ? -h : h);
                    if (!fd_loss(vk, &cache, &a.s, t, &a, R, out, &L[sgn])) goto next;
                }
                x[i] = x0;
                double fd = (L[0] - L[1]) / (2 * h);
                worst = fmax(worst, fabs(fd - g[i]) / (fabs(fd) + 1e-2));
            }
        }
        if (worst > 2e-3) {
            fprintf(stderr, "    FAIL: flash backward (window %u, softcap %g) vs finite differences: %.3g > 2e-3\n",
                    cfgs[ci].window, (double)cfgs[ci].softcap, worst);
            goto next;
        }
        rc = 0;
    next:
        fpool_free(vk, &p);
        free(R), free(out), free(lse), free(gq), free(gk), free(gv);
        ffree(&a);
    }
    unsetenv("VKLORA_ATTN");
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

/* VKLORA_ATTN takes exactly its five values. */
static int test_attn_env(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    vkl_attn_shape s = {1, 1, 1, 1, 1, 4, 0, 0.5f, 0, 0};
    fpool p = {0};
    float x[4] = {1, 2, 3, 4};
    vkl_tview t = fup(vk, &p, x, sizeof(x));
    vkl_op_cache cache = {0};
    vkl_err err = {0};
    setenv("VKLORA_ATTN", "flashy", 1);
    vkl_status st = t.buf ? vkl_op_attention(vk, &cache, &s, t, t, t, vkl_tv_none(), t, vkl_tv_none(), &err) : 0;
    unsetenv("VKLORA_ATTN");
    vkl_op_cache_destroy(vk, &cache);
    fpool_free(vk, &p);
    T_ASSERT(st == VKL_ERR_INPUT && strstr(err.msg, "auto, tile, scalar, flash or coopmat"), "status %d: %s", st,
             err.msg);
    return 0;
}

const vkl_test_case vkl_tests_attn_flash[] = {
    {"attn_flash/flash_vs_ref", test_flash},
    {"attn_flash/coopmat_vs_ref", test_coopmat},
    {"attn_flash/flash_backward_vs_fd", test_flash_fd},
    {"attn_flash/env", test_attn_env},
    {NULL, NULL},
};
