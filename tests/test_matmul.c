/* Tests of the matrix products on the device against src/ref/matmul.c: every weight type x every kernel variant
 * (forced with VKLORA_MATMUL), the transposed product, the LoRA GEMM stride patterns, and the chunked paths. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/matmul.h"
#include "ref/dropout.h"
#include "ref/matmul.h"
#include "vklora/quant.h"

/* Error bound. Each output is an fp32 sum of K products (plus bias and the old y); recursive summation errs by
 * at most about K * u * sum|x_k||w_k| (u = FLT_EPSILON / 2), and the shader's different decoding order (the
 * affine map applied once per run, fused multiply-adds) adds a few more roundings per term. The bound
 * (K + 16) * FLT_EPSILON * S, S = sum|x||w| + |bias| + |y_old|, covers both with margin, yet is ~1e-4 of S
 * at K = 512: a wrong block, row or offset errs by a sizable fraction of S. */
static double tol_factor(uint32_t K) { return (K + 16.0) * FLT_EPSILON; }

/* The cooperative-matrix kernel rounds both operands to f16, multiplies them exactly (an f16 x f16 product fits
 * f32's 24-bit significand) and accumulates in f32. With x^ = x(1+a), w^ = w(1+b), |a|, |b| <= u16 = 2^-10 (the
 * worst a conversion may do, rounding toward zero; 2^-11 when it rounds to nearest), each term errs by at most
 * (2 u16 + u16^2) |x w| on top of the fp32 summation bound above: 2^-9 + 2^-20 more, ~2e-3 of S. The kernels
 * scale each x (dy) row by a power of two that puts its largest |value| in [2^14, 2^15) before rounding (exact, and
 * undone exactly), so nothing overflows and only values below 2^-29 of their row's largest fall into f16's
 * subnormals, erring by at most 2^-40 of it; weights in (-1, 1) err by at most 2^-25 absolutely there. Both are
 * ~2^-23 of S or less (S ~ K/4), inside the fp32 slack. Still ~2e-3 of S: a wrong block, row, tile or offset (or a
 * lost row scale: see row_scale) errs by a sizable fraction of S. Set by the coopmat tests. */
static double tol_operands;

/* Row m of x (forward) or dy (transposed product) is multiplied by row_scale * 1000^(m % 3) when row_scale != 0:
 * magnitudes far outside f16's range (1e6: overflow past 65504; 1e-9: below its smallest subnormal, 6e-8), which
 * the coopmat kernels must handle by scaling each row by a power of two before rounding to f16. */
static double row_scale;

static void scale_rows(float *v, uint32_t rows, uint32_t cols) {
    if (row_scale == 0) return;
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < cols; c++) v[(size_t)r * cols + c] *= (float)(row_scale * pow(1000, r % 3));
}

static const uint32_t all_types[] = {VKL_TYPE_F32,  VKL_TYPE_F16,  VKL_TYPE_BF16, VKL_TYPE_Q8_0,
                                     VKL_TYPE_Q4_0, VKL_TYPE_Q4_K, VKL_TYPE_Q5_K, VKL_TYPE_Q6_K};
static const char *const variants[] = {"regtile", "tiled", "texel"};

static void fill_uniform(float *v, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) v[i] = t_rng_uniform(lo, hi);
}

/* Device buffer holding `bytes` of host data at byte `off` (the bytes before it hold junk that must not be
 * read as data), padded to whole words and a little beyond. */
static int make_buf(vkl_vk *vk, vkl_buffer *b, const void *data, size_t bytes, uint64_t off) {
    vkl_err err = {0};
    size_t size = off + (bytes + 3) / 4 * 4 + 64;
    uint8_t *tmp = malloc(size);
    T_ASSERT(tmp, "out of memory");
    for (size_t i = 0; i < size; i++) tmp[i] = (uint8_t)(0x7F ^ i); /* junk, never zeros */
    if (data) memcpy(tmp + off, data, bytes);
    if (vkl_buffer_create(vk, size, VKL_MEM_DEVICE, b, &err) || vkl_buffer_upload(vk, b, 0, tmp, size, &err)) {
        free(tmp);
        T_FAIL("buffer: %s", err.msg);
    }
    free(tmp);
    return 0;
}

/* got vs want with per-element scale S[i]: fails when |got - want| > tol * S. */
static int compare(const char *what, const float *got, const float *want, const double *scale, size_t n,
                   uint32_t K) {
    double tol = tol_factor(K) + tol_operands, worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (scale[i] > 0 ? scale[i] : 1e-30);
        if (!(e <= worst)) worst = e, worst_i = i; /* NaN sticks */
    }
    if (getenv("VKL_TEST_VERBOSE"))
        fprintf(stderr, "    %s: worst error %.3g x S = %.3g x K*u*S\n", what, worst, worst / (K * FLT_EPSILON / 2));
    if (!(worst <= tol))
        T_FAIL("%s: element %zu: got %.9g, want %.9g (error %.3g x S, bound %.3g x S)", what, worst_i,
               got[worst_i], want[worst_i], worst, tol);
    return 0;
}

/* The decoded weights, to compute S. */
static float *decoded(uint32_t type, const void *q, uint32_t N, uint32_t K) {
    uint64_t rb;
    vkl_type_row_bytes(type, K, &rb);
    float *w = malloc((size_t)N * K * sizeof(float));
    if (!w) return NULL;
    for (uint32_t n = 0; n < N; n++) vkl_ref_dequantize(type, (const uint8_t *)q + n * rb, w + (size_t)n * K, K);
    return w;
}

typedef struct {
    uint32_t M, N, K;
    bool bias, acc;
    uint64_t w_off, x_off, y_off; /* byte offsets of the views (x_off % 16 != 0 takes the scalar-x path) */
    uint32_t lr;                  /* rank of a low-rank term (vkl_mm_lowrank), 0: none */
    uint64_t u_off, v_off;        /* its views' byte offsets (the texel kernels fuse it at multiples of 16) */
} mm_case;

#define LR_SCALE 0.75f

static int run_matmul(vkl_vk *vk, vkl_op_cache *cache, uint32_t type, const mm_case *c, const char *label) {
    const vkl_type_traits *t = vkl_type_traits_get(type);
    uint32_t M = c->M, N = c->N, K = c->K;
    uint64_t rb;
    T_ASSERT(vkl_type_row_bytes(type, K, &rb), "row bytes");
    size_t wbytes = (size_t)rb * N;
    float *wf = malloc((size_t)N * K * 4), *x = malloc((size_t)M * K * 4), *bias = malloc(N * 4);
    float *y0 = malloc((size_t)M * N * 4), *ref = malloc((size_t)M * N * 4), *got = malloc((size_t)M * N * 4);
    double *S = malloc((size_t)M * N * sizeof(double));
    void *wq = malloc(wbytes);
    T_ASSERT(wf && x && bias && y0 && ref && got && S && wq, "out of memory");
    fill_uniform(wf, (size_t)N * K, -1, 1);
    fill_uniform(x, (size_t)M * K, -1, 1);
    scale_rows(x, M, K);
    fill_uniform(bias, N, -1, 1);
    fill_uniform(y0, (size_t)M * N, -1, 1);
    T_ASSERT(vkl_ref_quantize(type, wf, wq, (uint64_t)N * K), "quantize %s", t->name);
    const uint32_t r = c->lr;
    float *u = malloc((size_t)M * r * 4 + 4), *v = malloc((size_t)N * r * 4 + 4);
    T_ASSERT(u && v, "out of memory");
    fill_uniform(u, (size_t)M * r, -1, 1);
    fill_uniform(v, (size_t)N * r, -1, 1);
    vkl_ref_lowrank rlr = {u, v, r, LR_SCALE, NULL};
    memcpy(ref, y0, (size_t)M * N * 4);
    T_ASSERT(vkl_ref_matmul_lr(type, wq, x, c->bias ? bias : NULL, ref, M, N, K, c->acc, r ? &rlr : NULL),
             "ref matmul");
    float *wd = decoded(type, wq, N, K);
    T_ASSERT(wd, "out of memory");
    for (uint32_t m = 0; m < M; m++)
        for (uint32_t n = 0; n < N; n++) {
            double s = 0;
            for (uint32_t k = 0; k < K; k++) s += fabs((double)x[(size_t)m * K + k] * wd[(size_t)n * K + k]);
            for (uint32_t j = 0; j < r; j++) s += fabs((double)LR_SCALE * u[(size_t)m * r + j] * v[(size_t)n * r + j]);
            if (c->bias) s += fabs(bias[n]);
            if (c->acc) s += fabs(y0[(size_t)m * N + n]);
            S[(size_t)m * N + n] = s;
        }

    vkl_buffer bw = {0}, bx = {0}, bb = {0}, by = {0}, bu = {0}, bv = {0};
    vkl_err err = {0};
    int rc = make_buf(vk, &bw, wq, wbytes, c->w_off) || make_buf(vk, &bx, x, (size_t)M * K * 4, c->x_off) ||
             make_buf(vk, &bb, bias, N * 4, 4) || make_buf(vk, &by, y0, (size_t)M * N * 4, c->y_off) ||
             make_buf(vk, &bu, u, (size_t)M * r * 4, c->u_off) || make_buf(vk, &bv, v, (size_t)N * r * 4, c->v_off);
    if (!rc) {
        vkl_mm_lowrank lr = {vkl_tv(&bu, c->u_off), vkl_tv(&bv, c->v_off), r, LR_SCALE, NULL};
        vkl_status st = vkl_op_matmul_lr(vk, cache, type, vkl_tv(&bw, c->w_off), vkl_tv(&bx, c->x_off),
                                         c->bias ? vkl_tv(&bb, 4) : vkl_tv_none(), vkl_tv(&by, c->y_off), M, N, K,
                                         c->acc, r ? &lr : NULL, &err);
        if (st) {
            fprintf(stderr, "    FAIL: %s: %s\n", label, err.msg);
            rc = 1;
        } else if (vkl_buffer_download(vk, &by, c->y_off, got, (size_t)M * N * 4, &err)) {
            fprintf(stderr, "    FAIL: download: %s\n", err.msg);
            rc = 1;
        } else {
            char what[160];
            snprintf(what, sizeof(what), "%s %s M=%u N=%u K=%u bias=%d acc=%d r=%u", label, t->name, M, N, K,
                     c->bias, c->acc, r);
            rc = compare(what, got, ref, S, (size_t)M * N, K + r);
        }
    }
    vkl_buffer_destroy(vk, &bw);
    vkl_buffer_destroy(vk, &bx);
    vkl_buffer_destroy(vk, &bb);
    vkl_buffer_destroy(vk, &by);
    vkl_buffer_destroy(vk, &bu);
    vkl_buffer_destroy(vk, &bv);
    free(wf), free(x), free(bias), free(y0), free(ref), free(got), free(S), free(wq), free(wd), free(u), free(v);
    return rc;
}

/* Shapes per type: odd M and N everywhere; odd K for the scalar types; for q4_0/q8_0 an odd block count, so
 * rows start 2 bytes off a word; K = 256 and 512 for the k-quants. All four bias/accumulate combinations. */
static void cases_for(uint32_t type, mm_case *cs, int *n) {
    const vkl_type_traits *t = vkl_type_traits_get(type);
    uint32_t k1, k2;
    if (t->block_size == 1) k1 = 67, k2 = 132;
    else if (t->block_size == 32) k1 = 96, k2 = 160;
    else k1 = 256, k2 = 512;
    *n = 0;
    cs[(*n)++] = (mm_case){7, 37, k1, false, false, 0, 0, 0, 0, 0, 0};
    cs[(*n)++] = (mm_case){1, 5, k1, true, false, 4, 4, 8, 0, 0, 0};
    cs[(*n)++] = (mm_case){37, 75, k2, true, true, 8, 16, 4, 0, 0, 0};
    cs[(*n)++] = (mm_case){66, 13, k2, false, true, 0, 32, 0, 0, 0, 0}; /* every row 16-byte aligned: vec4 paths */
    /* several partial subgroup tiles in both directions, every view the texel kernel takes (f32 included) */
    cs[(*n)++] = (mm_case){45, 70, t->block_size == 1 ? 132 : k1, true, true, 16, 48, 4, 0, 0, 0};
    if (t->block_size == 1) {
        cs[(*n)++] = (mm_case){5, 9, 3, true, false, 0, 0, 0, 0, 0, 0};
        /* K % 8 == 0 on 16-byte aligned views: the texel kernel's 8-halves-a-fetch path for f16/bf16 */
        cs[(*n)++] = (mm_case){7, 37, 136, false, false, 0, 0, 0, 0, 0, 0};
        cs[(*n)++] = (mm_case){45, 70, 200, true, true, 16, 48, 4, 0, 0, 0};
        /* three x tiles of the 64-row texel tile of f16/bf16 (the last one partial) */
        cs[(*n)++] = (mm_case){141, 37, 136, true, false, 0, 16, 0, 0, 0, 0};
    }
}

static int forward_variant(const char *variant) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    setenv("VKLORA_MATMUL", variant, 1);
    vkl_op_cache cache = {0};
    int rc = 0;
    t_rng_seed(11);
    for (size_t i = 0; i < VKL_ARRAY_LEN(all_types) && !rc; i++) {
        mm_case cs[10];
        int n, n_texel = 0;
        cases_for(all_types[i], cs, &n);
        for (int j = 0; j < n && !rc; j++) {
            /* the kernel the op will pick: texel falls back to regtile on views it cannot read */
            const char *kern = NULL;
            vkl_err err = {0};
            T_ASSERT(!vkl_op_matmul_kernel(vk, all_types[i], (vkl_tview){NULL, cs[j].w_off},
                                           (vkl_tview){NULL, cs[j].x_off}, cs[j].K, &kern, &err), "%s", err.msg);
            n_texel += !strcmp(kern, "texel");
            rc = run_matmul(vk, &cache, all_types[i], &cs[j], kern);
        }
        /* a device that can run it (shuffles, a usable subgroup size) must run it on the aligned cases */
        if (!rc && !strcmp(variant, "texel") && vk->info.subgroup_shuffle &&
            (vk->info.min_subgroup_size == vk->info.max_subgroup_size || vk->info.subgroup_size_control) &&
            vk->info.min_subgroup_size <= 32 && n_texel < 2)
            T_FAIL("texel: only %d of the %s cases took the texel kernel", n_texel, vkl_type_traits_get(all_types[i])->name);
    }
    vkl_op_cache_destroy(vk, &cache);
    unsetenv("VKLORA_MATMUL");
    return rc;
}

/* The chunked cases (a tiny pretend binding limit forces splits over M and N) of test_chunked, for one variant. */
typedef struct {
    uint32_t type, M, N, K;
} chunk_case;
static const chunk_case chunk_cases[] = {
    {VKL_TYPE_Q4_K, 13, 61, 512}, {VKL_TYPE_Q4_0, 9, 150, 96}, {VKL_TYPE_F16, 11, 70, 67},
    {VKL_TYPE_Q6_K, 5, 33, 256},  {VKL_TYPE_F32, 6, 40, 132},  {VKL_TYPE_BF16, 7, 45, 136},
};

static int chunked_matmul(vkl_vk *vk, vkl_op_cache *cache, const char *variant) {
    setenv("VKLORA_MATMUL", variant, 1);
    int rc = 0;
    for (size_t i = 0; i < VKL_ARRAY_LEN(chunk_cases) && !rc; i++) {
        mm_case c = {chunk_cases[i].M, chunk_cases[i].N, chunk_cases[i].K, true, i % 2 == 0, i % 2 ? 4 : 0, 16, 4, 0, 0, 0};
        rc = run_matmul(vk, cache, chunk_cases[i].type, &c, variant);
    }
    unsetenv("VKLORA_MATMUL");
    return rc;
}

static void set_small_bind_limit(const vkl_vk *vk) {
    uint64_t lim = VKL_MAX(4096u, 8 * vk->info.min_storage_offset_align);
    char lims[32];
    snprintf(lims, sizeof(lims), "%llu", (unsigned long long)lim);
    setenv("VKLORA_MAX_BIND_BYTES", lims, 1);
}

/* The cooperative-matrix kernel (VKLORA_MATMUL=coopmat) on every weight type and every shape of the other
 * variants, then split by a small binding limit. Where it cannot run (a build whose glslc lacks
 * GL_KHR_cooperative_matrix, e.g. Debian 12's; a device without VK_KHR_cooperative_matrix) the op must refuse with
 * the reason; VKL_TEST_REQUIRE_COOPMAT=1 (tools/chroot-trixie.sh sets it) makes that a failure. */
static int test_forward_coopmat(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    setenv("VKLORA_MATMUL", "coopmat", 1);
    const char *kern = NULL;
    vkl_err err = {0};
    vkl_status st = vkl_op_matmul_kernel(vk, VKL_TYPE_F32, (vkl_tview){NULL, 0}, (vkl_tview){NULL, 0}, 64, &kern, &err);
    unsetenv("VKLORA_MATMUL");
    if (st) {
        if (t_coopmat_refusal(st, err.msg, "VKLORA_MATMUL=coopmat")) return 1;
        return 0;
    }
    T_ASSERT(!strcmp(kern, "coopmat"), "VKLORA_MATMUL=coopmat picked %s", kern);
    tol_operands = ldexp(1, -9) + ldexp(1, -20);
    int rc = forward_variant("coopmat");
    if (!rc) {
        vkl_op_cache cache = {0};
        set_small_bind_limit(vk);
        t_rng_seed(15);
        rc = chunked_matmul(vk, &cache, "coopmat");
        unsetenv("VKLORA_MAX_BIND_BYTES");
        /* activations past f16's range (1e6..1e12) and below it (1e-9..1e-3) */
        static const double scales[] = {1e6, 1e-9};
        setenv("VKLORA_MATMUL", "coopmat", 1);
        for (size_t i = 0; i < VKL_ARRAY_LEN(scales) && !rc; i++) {
            row_scale = scales[i];
            /* no bias, no accumulation: S must be the product's own, or a lost product would pass */
            mm_case c1 = {37, 75, 132, false, false, 8, 16, 4, 0, 0, 0}, c2 = {13, 61, 512, false, false, 0, 0, 0, 0, 0, 0};
            rc = run_matmul(vk, &cache, VKL_TYPE_F16, &c1, "coopmat scaled") ||
                 run_matmul(vk, &cache, VKL_TYPE_Q4_K, &c2, "coopmat scaled");
        }
        row_scale = 0;
        unsetenv("VKLORA_MATMUL");
        vkl_op_cache_destroy(vk, &cache);
    }
    tol_operands = 0;
    return rc;
}

static int test_forward_regtile(void) { return forward_variant(variants[0]); }
static int test_forward_tiled(void) { return forward_variant(variants[1]); }
static int test_forward_texel(void) { return forward_variant(variants[2]); }

/* ---- dx = dy · W ---- */

/* LoRA dropout on run_matmul_t_lr's low-rank term (NULL: none). */
static const vkl_gemm_dropout *lr_mask;

/* dy_off % 16 == 0 with N % 4 == 0 lets the texel kernel fetch dy as vec4. A low-rank term of rank r (0: none) with
 * u and v at byte offsets u_off and v_off (the texel kernel fuses it at multiples of 16), masked by lr_mask. */
static int run_matmul_t_lr(vkl_vk *vk, vkl_op_cache *cache, uint32_t type, uint32_t M, uint32_t N, uint32_t K,
                           bool acc, uint64_t w_off, uint64_t dy_off, uint32_t r, uint64_t u_off, uint64_t v_off) {
    const vkl_type_traits *t = vkl_type_traits_get(type);
    uint64_t rb;
    T_ASSERT(vkl_type_row_bytes(type, K, &rb), "row bytes");
    size_t wbytes = (size_t)rb * N;
    float *wf = malloc((size_t)N * K * 4), *dy = malloc((size_t)M * N * 4), *dx0 = malloc((size_t)M * K * 4);
    float *ref = malloc((size_t)M * K * 4), *got = malloc((size_t)M * K * 4);
    double *S = malloc((size_t)M * K * sizeof(double));
    void *wq = malloc(wbytes);
    T_ASSERT(wf && dy && dx0 && ref && got && S && wq, "out of memory");
    fill_uniform(wf, (size_t)N * K, -1, 1);
    fill_uniform(dy, (size_t)M * N, -1, 1);
    scale_rows(dy, M, N);
    fill_uniform(dx0, (size_t)M * K, -1, 1);
    T_ASSERT(vkl_ref_quantize(type, wf, wq, (uint64_t)N * K), "quantize");
    float *u = malloc((size_t)M * r * 4 + 4), *v = malloc((size_t)r * K * 4 + 4);
    T_ASSERT(u && v, "out of memory");
    fill_uniform(u, (size_t)M * r, -1, 1);
    fill_uniform(v, (size_t)r * K, -1, 1);
    vkl_ref_lowrank rlr = {u, v, r, LR_SCALE, lr_mask};
    memcpy(ref, dx0, (size_t)M * K * 4);
    T_ASSERT(vkl_ref_matmul_t_lr(type, wq, dy, ref, M, N, K, acc, r ? &rlr : NULL), "ref matmul_t");
    float *wd = decoded(type, wq, N, K);
    T_ASSERT(wd, "out of memory");
    for (uint32_t m = 0; m < M; m++)
        for (uint32_t k = 0; k < K; k++) {
            double s = acc ? fabs(dx0[(size_t)m * K + k]) : 0;
            for (uint32_t n = 0; n < N; n++) s += fabs((double)dy[(size_t)m * N + n] * wd[(size_t)n * K + k]);
            double t = 0;
            for (uint32_t j = 0; j < r; j++) t += fabs((double)LR_SCALE * u[(size_t)m * r + j] * v[(size_t)j * K + k]);
            S[(size_t)m * K + k] = s + t / (lr_mask ? 1.0 - lr_mask->p : 1.0);
        }
    vkl_buffer bw = {0}, bdy = {0}, bdx = {0}, bu = {0}, bv = {0};
    vkl_err err = {0};
    int rc = make_buf(vk, &bw, wq, wbytes, w_off) || make_buf(vk, &bdy, dy, (size_t)M * N * 4, dy_off) ||
             make_buf(vk, &bdx, dx0, (size_t)M * K * 4, 8) || make_buf(vk, &bu, u, (size_t)M * r * 4, u_off) ||
             make_buf(vk, &bv, v, (size_t)r * K * 4, v_off);
    if (!rc) {
        vkl_mm_lowrank lr = {vkl_tv(&bu, u_off), vkl_tv(&bv, v_off), r, LR_SCALE, lr_mask};
        if (vkl_op_matmul_t_lr(vk, cache, type, vkl_tv(&bw, w_off), vkl_tv(&bdy, dy_off), vkl_tv(&bdx, 8), M, N, K,
                               acc, r ? &lr : NULL, &err)) {
            fprintf(stderr, "    FAIL: matmul_t: %s\n", err.msg);
            rc = 1;
        } else if (vkl_buffer_download(vk, &bdx, 8, got, (size_t)M * K * 4, &err)) {
            fprintf(stderr, "    FAIL: download: %s\n", err.msg);
            rc = 1;
        } else {
            char what[128];
            snprintf(what, sizeof(what), "matmul_t %s M=%u N=%u K=%u acc=%d r=%u%s", t->name, M, N, K, acc, r,
                     lr_mask ? " masked" : "");
            rc = compare(what, got, ref, S, (size_t)M * K, N + r);
        }
    }
    vkl_buffer_destroy(vk, &bw);
    vkl_buffer_destroy(vk, &bdy);
    vkl_buffer_destroy(vk, &bdx);
    vkl_buffer_destroy(vk, &bu);
    vkl_buffer_destroy(vk, &bv);
    free(wf), free(dy), free(dx0), free(ref), free(got), free(S), free(wq), free(wd), free(u), free(v);
    return rc;
}

static int run_matmul_t(vkl_vk *vk, vkl_op_cache *cache, uint32_t type, uint32_t M, uint32_t N, uint32_t K,
                        bool acc, uint64_t w_off, uint64_t dy_off) {
    return run_matmul_t_lr(vk, cache, type, M, N, K, acc, w_off, dy_off, 0, 0, 0);
}

/* The transposed product on cooperative matrices (VKLORA_MATMUL=coopmat), every weight type, odd shapes, chunks over
 * N accumulating, with the f16-operand tolerance of the forward (tol_operands). Refused with the reason where it
 * cannot run, as test_forward_coopmat. */
static int test_transposed_coopmat(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    setenv("VKLORA_MATMUL", "coopmat", 1);
    vkl_op_cache cache = {0};
    vkl_buffer b = {0};
    vkl_err err = {0};
    T_ASSERT(!vkl_buffer_create(vk, 4096, VKL_MEM_DEVICE, &b, &err), "%s", err.msg);
    vkl_status st = vkl_op_matmul_t(vk, &cache, VKL_TYPE_F32, vkl_tv(&b, 0), vkl_tv(&b, 1024), vkl_tv(&b, 2048), 2, 2,
                                    4, false, &err);
    vkl_buffer_destroy(vk, &b);
    int rc = 0;
    if (st) {
        unsetenv("VKLORA_MATMUL");
        vkl_op_cache_destroy(vk, &cache);
        if (t_coopmat_refusal(st, err.msg, "VKLORA_MATMUL=coopmat")) return 1;
        return 0;
    }
    tol_operands = ldexp(1, -9) + ldexp(1, -20);
    t_rng_seed(16);
    for (size_t i = 0; i < VKL_ARRAY_LEN(all_types) && !rc; i++) {
        uint32_t type = all_types[i], bs = vkl_type_traits_get(type)->block_size;
        uint32_t k1 = bs == 1 ? 67 : bs == 32 ? 96 : 256, k2 = bs == 1 ? 13 : bs == 32 ? 160 : 512;
        rc = run_matmul_t(vk, &cache, type, 7, 37, k1, false, 0, 4) ||
             run_matmul_t(vk, &cache, type, 1, 3, k2, true, 4, 4) ||
             run_matmul_t(vk, &cache, type, 37, 130, k1, true, 8, 4) ||
             run_matmul_t(vk, &cache, type, 45, 70, k2, false, 16, 16);
    }
    if (!rc) {
        set_small_bind_limit(vk);
        for (size_t i = 0; i < VKL_ARRAY_LEN(chunk_cases) && !rc; i++)
            rc = run_matmul_t(vk, &cache, chunk_cases[i].type, chunk_cases[i].M, chunk_cases[i].N, chunk_cases[i].K,
                              i % 2 == 1, 4, 4);
        unsetenv("VKLORA_MAX_BIND_BYTES");
    }
    /* gradients below f16's range (1e-9..1e-3, as deep in a backward) and above it */
    static const double scales[] = {1e-9, 1e6};
    for (size_t i = 0; i < VKL_ARRAY_LEN(scales) && !rc; i++) {
        row_scale = scales[i];
        rc = run_matmul_t(vk, &cache, VKL_TYPE_Q6_K, 37, 130, 256, false, 8, 4) ||
             run_matmul_t(vk, &cache, VKL_TYPE_F32, 19, 33, 67, false, 0, 16);
    }
    row_scale = 0;
    tol_operands = 0;
    unsetenv("VKLORA_MATMUL");
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

static int test_transposed(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    vkl_op_cache cache = {0};
    int rc = 0;
    t_rng_seed(12);
    /* VKLORA_MATMUL=texel takes the texel kernel where K % 4 == 0 (and an f32 weight is 16-byte aligned), the
     * register-tile kernel elsewhere; regtile (like tiled) always takes the register-tile kernel. */
    static const char *const t_variants[] = {"regtile", "texel"};
    for (size_t v = 0; v < VKL_ARRAY_LEN(t_variants) && !rc; v++) {
        setenv("VKLORA_MATMUL", t_variants[v], 1);
        for (size_t i = 0; i < VKL_ARRAY_LEN(all_types) && !rc; i++) {
            uint32_t type = all_types[i], bs = vkl_type_traits_get(type)->block_size;
            uint32_t k1 = bs == 1 ? 67 : bs == 32 ? 96 : 256, k2 = bs == 1 ? 13 : bs == 32 ? 160 : 512;
            uint32_t k3 = bs == 1 ? 132 : k2; /* texel-ready for every type, with a partial last k tile */
            vkl_op_variants_reset();
            rc = run_matmul_t(vk, &cache, type, 7, 37, k1, false, 0, 4) ||
                 run_matmul_t(vk, &cache, type, 1, 3, k2, true, 4, 4) ||
                 run_matmul_t(vk, &cache, type, 37, 130, k1, true, 8, 4) ||
                 run_matmul_t(vk, &cache, type, 45, 70, k3, true, 16, 4) ||
                 run_matmul_t(vk, &cache, type, 19, 33, k3, false, 0, 16) ||
                 run_matmul_t(vk, &cache, type, 21, 36, k3, true, 16, 32); /* dy as vec4 */
            const bool half = type == VKL_TYPE_F16 || type == VKL_TYPE_BF16;
            /* K % 8 == 0 on 16-byte aligned weights: f16/bf16 read 8 halves a fetch (MMT_WIDE_H); the last k tile
             * partial (136 = 128 + 8), dy by floats and as vec4 */
            if (!rc && half)
                rc = run_matmul_t(vk, &cache, type, 37, 70, 136, true, 16, 4) ||
                     run_matmul_t(vk, &cache, type, 21, 72, 200, false, 0, 16);
            /* Q5_K/Q6_K weights past VKL_MMT_PREFETCH_BYTES (4.3 and 5.1 MB): the texel kernel touches rows ahead
             * (FLAG_PREFETCH), up to the last row; dy as vec4, the last k tile partial (2304 = 4.5 tiles of 512) */
            const bool pf = type == VKL_TYPE_Q5_K || type == VKL_TYPE_Q6_K;
            if (!rc && pf) rc = run_matmul_t(vk, &cache, type, 5, 2700, 2304, v == 1, 16, 32);
            /* a device that can run the texel kernel must have run it on the aligned cases of every type */
            char ran[64];
            const bool can_texel =
                vk->info.subgroup_shuffle &&
                (vk->info.min_subgroup_size == vk->info.max_subgroup_size || vk->info.subgroup_size_control) &&
                vk->info.min_subgroup_size <= 32;
            if (!rc && v == 1 && can_texel && !strstr(vkl_op_variants_of("matmul_t", ran, sizeof(ran)), "texel"))
                T_FAIL("matmul_t %s: the texel kernel never ran (ran: %s)", vkl_type_traits_get(type)->name, ran);
            if (!rc && v == 1 && can_texel && half &&
                !strstr(vkl_op_variants_of("matmul_t_half_fetch", ran, sizeof(ran)), "texel8"))
                T_FAIL("matmul_t %s: the 8-halves fetch never ran (ran: %s)", vkl_type_traits_get(type)->name, ran);
            if (!rc && v == 1 && can_texel && pf &&
                !strstr(vkl_op_variants_of("matmul_t_prefetch", ran, sizeof(ran)), "on"))
                T_FAIL("matmul_t %s: the weight rows were never touched ahead (ran: %s)",
                       vkl_type_traits_get(type)->name, ran);
        }
    }
    unsetenv("VKLORA_MATMUL");
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

/* ---- the low-rank term (the LoRA branch's second product, vkl_mm_lowrank) ---- */

/* Every weight type, forward and transposed, with a low-rank term on views the texel kernels fuse (r % 4 == 0,
 * 16-byte offsets) and on views they leave to a gemm (odd r, unaligned u), then split by a small binding limit; per
 * variant: texel must fuse where it can and fall back where it cannot, the other variants always take the gemm. */
static int lowrank_variant(vkl_vk *vk, vkl_op_cache *cache, const char *variant) {
    setenv("VKLORA_MATMUL", variant, 1);
    const bool texel = !strcmp(variant, "texel");
    int rc = 0;
    for (size_t i = 0; i < VKL_ARRAY_LEN(all_types) && !rc; i++) {
        uint32_t type = all_types[i], bs = vkl_type_traits_get(type)->block_size;
        uint32_t k1 = bs == 1 ? 132 : bs == 32 ? 96 : 256, k2 = bs == 1 ? 200 : bs == 32 ? 160 : 512;
        const mm_case cs[] = {
            {37, 75, k2, true, true, 8, 16, 4, 16, 16, 32},
            {45, 70, k1, true, false, 16, 48, 4, 8, 0, 16},
            {7, 37, k1, false, true, 0, 0, 0, 5, 4, 8},     /* odd rank: the gemm */
            {13, 21, k1, false, false, 0, 0, 0, 4, 4, 16}, /* u off a 16-byte boundary: the gemm */
        };
        vkl_op_variants_reset();
        for (size_t j = 0; j < VKL_ARRAY_LEN(cs) && !rc; j++) rc = run_matmul(vk, cache, type, &cs[j], variant);
        rc = rc || run_matmul_t_lr(vk, cache, type, 37, 130, k1, true, 8, 4, 16, 16, 0) ||
             run_matmul_t_lr(vk, cache, type, 21, 36, k1, false, 16, 32, 8, 0, 16) || /* dy as vec4 */
             run_matmul_t_lr(vk, cache, type, 7, 37, k1, true, 0, 4, 5, 4, 4);
        /* LoRA dropout on the term (dx's LoRA part of x's mask): fused (texel) and by the gemm (odd rank), with
         * lora_ops.c's counters (row stride K) and with strides that tell rows from columns apart */
        /* (one fused shape: each pipeline of the transposed texel kernel takes seconds to compile on lavapipe) */
        const vkl_gemm_dropout masks[] = {{3, 0x5eed, 0.3f, 12 * k1, k1, 1}, {3, 0xbeef, 0.5f, 7, 1, 37}};
        for (size_t j = 0; j < VKL_ARRAY_LEN(masks) && !rc; j++) {
            lr_mask = &masks[j];
            rc = run_matmul_t_lr(vk, cache, type, 37, 130, k1, true, 8, 4, 16, 16, 0) ||
                 run_matmul_t_lr(vk, cache, type, 7, 37, k1, true, 0, 4, 5, 4, 4);
        }
        lr_mask = NULL;
        char ran[64], mm[64];
        vkl_op_variants_of("lowrank", ran, sizeof(ran));
        vkl_op_variants_of("matmul", mm, sizeof(mm));
        /* texel reads every type here (mm: the forward's variants): then it must have fused, and fallen back */
        if (!rc && texel && !strcmp(mm, "texel") && (!strstr(ran, "fused") || !strstr(ran, "gemm")))
            T_FAIL("%s %s: the low-rank term ran as [%s], want fused and gemm", variant,
                   vkl_type_traits_get(type)->name, ran);
        if (!rc && !texel && strcmp(ran, "gemm"))
            T_FAIL("%s %s: the low-rank term ran as [%s], want gemm", variant, vkl_type_traits_get(type)->name, ran);
    }
    if (!rc) {
        set_small_bind_limit(vk);
        for (size_t i = 0; i < VKL_ARRAY_LEN(chunk_cases) && !rc; i++) {
            const chunk_case *k = &chunk_cases[i];
            mm_case c = {k->M, k->N, k->K, true, i % 2 == 0, i % 2 ? 4 : 0, 16, 4, 8, 16, 32};
            rc = run_matmul(vk, cache, k->type, &c, variant) ||
                 run_matmul_t_lr(vk, cache, k->type, k->M, k->N, k->K, i % 2 == 1, 4, 4, 8, 32, 16);
            /* masked: the chunks over M must continue the counters */
            const vkl_gemm_dropout mk = {3, 0x5eed, 0.3f, 5 * k->K, k->K, 1};
            lr_mask = &mk;
            rc = rc || (i < 2 && run_matmul_t_lr(vk, cache, k->type, k->M, k->N, k->K, true, 4, 4, 8, 32, 16));
            lr_mask = NULL;
        }
        unsetenv("VKLORA_MAX_BIND_BYTES");
    }
    unsetenv("VKLORA_MATMUL");
    return rc;
}

static int test_lowrank(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    vkl_op_cache cache = {0};
    t_rng_seed(17);
    int rc = 0;
    for (size_t v = 0; v < VKL_ARRAY_LEN(variants) && !rc; v++) rc = lowrank_variant(vk, &cache, variants[v]);
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

/* ---- strided GEMM ---- */

/* C (c_n floats, row stride c_rs) = alpha * A·B (+ beta * C), with dropout d (NULL: none), against the reference
 * (vkl_ref_gemm_dropout, double). C starts from a fixed pattern, so that two runs (two variants) start alike; got,
 * when given, receives the device's result. */
/* run_gemm_drop places A and B 4 and 12 bytes into their buffers (views off 16-byte boundaries); 16 and 32 while
 * this is set */
static bool gemm_views_aligned;

static int run_gemm_drop(vkl_vk *vk, vkl_op_cache *cache, const vkl_gemm_shape *s, const vkl_gemm_dropout *d,
                         const float *a, size_t a_n, const float *b, size_t b_n, const char *label, float *got_out) {
    size_t c_n = (size_t)(s->M - 1) * s->c_rs + s->N;
    float *c0 = malloc(c_n * 4), *ref = malloc(c_n * 4), *got = malloc(c_n * 4);
    double *S = malloc(c_n * sizeof(double));
    T_ASSERT(c0 && ref && got && S, "out of memory");
    for (size_t i = 0; i < c_n; i++) c0[i] = (float)sin(0.7 * (double)i + 0.3);
    memcpy(ref, c0, c_n * 4);
    vkl_ref_gemm_dropout(s, d, a, b, ref);
    /* a kept element is scaled by 1 / (1 - p): S bounds the dropped sum by the undropped one times that */
    double dscale = d && d->operand && d->p > 0 ? 1.0 / (1.0 - d->p) : 1.0;
    for (size_t i = 0; i < c_n; i++) S[i] = 0;
    for (uint32_t m = 0; m < s->M; m++)
        for (uint32_t n = 0; n < s->N; n++) {
            double acc = 0;
            for (uint32_t k = 0; k < s->K; k++)
                acc += fabs((double)a[(size_t)m * s->a_rs + (size_t)k * s->a_cs] *
                            b[(size_t)k * s->b_rs + (size_t)n * s->b_cs]);
            size_t ci = (size_t)m * s->c_rs + n;
            S[ci] = fabs(s->alpha) * acc * dscale + fabs(s->beta * c0[ci]);
        }
    vkl_buffer ba = {0}, bb = {0}, bc = {0};
    vkl_err err = {0};
    uint64_t oa = gemm_views_aligned ? 16 : 4, ob = gemm_views_aligned ? 32 : 12;
    int rc = make_buf(vk, &ba, a, a_n * 4, oa) || make_buf(vk, &bb, b, b_n * 4, ob) || make_buf(vk, &bc, c0, c_n * 4, 8);
    if (!rc) {
        if (vkl_op_gemm_dropout(vk, cache, s, d, vkl_tv(&ba, oa), vkl_tv(&bb, ob), vkl_tv(&bc, 8), &err)) {
            fprintf(stderr, "    FAIL: gemm %s: %s\n", label, err.msg);
            rc = 1;
        } else if (vkl_buffer_download(vk, &bc, 8, got, c_n * 4, &err)) {
            fprintf(stderr, "    FAIL: download: %s\n", err.msg);
            rc = 1;
        } else {
            /* Gaps between C rows (c_rs > N) must keep their old contents. */
            for (size_t i = 0; i < c_n && !rc; i++)
                if (i % s->c_rs >= s->N && got[i] != c0[i]) {
                    fprintf(stderr, "    FAIL: gemm %s: element %zu outside C changed\n", label, i);
                    rc = 1;
                }
            for (size_t i = 0; i < c_n; i++)
                if (i % s->c_rs >= s->N) S[i] = 1;
            char what[160];
            snprintf(what, sizeof(what), "gemm %s M=%u N=%u K=%u beta=%g drop=%u", label, s->M, s->N, s->K, s->beta,
                     d ? d->operand : 0);
            if (!rc) rc = compare(what, got, ref, S, c_n, s->K);
            if (!rc && got_out) memcpy(got_out, got, c_n * 4);
        }
    }
    vkl_buffer_destroy(vk, &ba);
    vkl_buffer_destroy(vk, &bb);
    vkl_buffer_destroy(vk, &bc);
    free(c0), free(ref), free(got), free(S);
    return rc;
}

static int run_gemm(vkl_vk *vk, vkl_op_cache *cache, const vkl_gemm_shape *s, const float *a, size_t a_n,
                    const float *b, size_t b_n, const char *label) {
    return run_gemm_drop(vk, cache, s, NULL, a, a_n, b, b_n, label, NULL);
}

/* A LoRA adapter's sizes: T tokens, d_in, d_out, rank r. */
typedef struct {
    uint32_t T, din, dout, r;
} lora_dims;
static const lora_dims lora_small = {37, 67, 43, 5};
/* ranks 16 and 8 over more tokens than a tall tile's rows (128) and more features than a wide tile's columns: every
 * layout of the tiled and coopmat kernels with partial tiles */
static const lora_dims lora_big[] = {{203, 150, 97, 16}, {141, 67, 130, 8}};
/* every row, K and offset a multiple of 4 floats: the texel gemm's vector fetches along k, m and n, and its narrow
 * kernel (gemm_skinny.comp) on every layout, with partial row tiles and a last step of 4-12 k */
static const lora_dims lora_aligned = {132, 68, 44, 16};
/* the same at ranks below and above a subgroup (partial and several column tiles), and with T = 130 tokens: the
 * gradients' K % 4 == 2 leaves 2 steps to gemm_f32 after the narrow kernel */
static const lora_dims lora_aligned_more[] = {{130, 72, 40, 8}, {68, 36, 52, 36}};

/* The products of a LoRA adapter (A [r, d_in], B [d_out, r]) on T tokens, forward and backward, with the
 * strides vklora's graph uses (src/ops/lora_ops.c): no transposing copies. Rows of dy and dxa (gradients) and of x
 * are multiplied by row_scale * 1000^(t % 3) when row_scale != 0 (magnitudes outside f16's range). */
static int lora_patterns_dims(vkl_vk *vk, vkl_op_cache *cache, lora_dims dm) {
    const uint32_t T = dm.T, din = dm.din, dout = dm.dout, r = dm.r;
    float *x = malloc((size_t)T * din * 4), *A = malloc((size_t)r * din * 4), *B = malloc((size_t)dout * r * 4);
    float *xa = malloc((size_t)T * r * 4), *dy = malloc((size_t)T * dout * 4), *dxa = malloc((size_t)T * r * 4);
    float *ones = malloc((size_t)T * 4);
    T_ASSERT(x && A && B && xa && dy && dxa && ones, "out of memory");
    fill_uniform(x, (size_t)T * din, -1, 1);
    fill_uniform(A, (size_t)r * din, -1, 1);
    fill_uniform(B, (size_t)dout * r, -1, 1);
    fill_uniform(xa, (size_t)T * r, -1, 1);
    fill_uniform(dy, (size_t)T * dout, -1, 1);
    fill_uniform(dxa, (size_t)T * r, -1, 1);
    for (uint32_t t = 0; t < T; t++) ones[t] = 1;
    scale_rows(x, T, din);
    scale_rows(dy, T, dout);
    scale_rows(dxa, T, r);
    struct {
        const char *label;
        vkl_gemm_shape s;
        const float *a, *b;
        size_t a_n, b_n;
    } pats[] = {
        /* xa = x · A^T */
        {"x*A^T", {T, r, din, din, 1, 1, din, r, 1.0f, 0.0f}, x, A, (size_t)T * din, (size_t)r * din},
        /* y += scale * xa · B^T (the residual-style accumulate) */
        {"xa*B^T", {T, dout, r, r, 1, 1, r, dout, 0.5f, 1.0f}, xa, B, (size_t)T * r, (size_t)dout * r},
        /* dB += dy^T · xa */
        {"dy^T*xa", {dout, r, T, 1, dout, r, 1, r, 0.5f, 1.0f}, dy, xa, (size_t)T * dout, (size_t)T * r},
        /* dA = dxa^T · x, written into rows padded to din + 3 */
        {"dxa^T*x", {r, din, T, 1, r, din, 1, din + 3, 1.0f, 0.0f}, dxa, x, (size_t)T * r, (size_t)T * din},
        /* dA += dxa^T · x with beta neither 0 nor 1 */
        {"dxa^T*x beta", {r, din, T, 1, r, din, 1, din, 1.0f, 0.25f}, dxa, x, (size_t)T * r, (size_t)T * din},
        /* dxa = dy · B */
        {"dy*B", {T, r, dout, dout, 1, r, 1, r, 1.0f, 0.0f}, dy, B, (size_t)T * dout, (size_t)dout * r},
        /* dx += dxa · A */
        {"dxa*A", {T, din, r, r, 1, din, 1, din, 1.0f, 1.0f}, dxa, A, (size_t)T * r, (size_t)r * din},
        /* the bias gradient: db += ones^T · dy */
        {"bias", {1, dout, T, T, 1, dout, 1, dout, 1.0f, 1.0f}, ones, dy, (size_t)T, (size_t)T * dout},
        /* beta = 1 without alpha scaling, K = 1 */
        {"outer", {T, dout, 1, r, 1, 1, r, dout, 1.0f, 1.0f}, xa, B, (size_t)T * r, (size_t)dout * r},
    };
    int rc = 0;
    for (size_t i = 0; i < VKL_ARRAY_LEN(pats) && !rc; i++)
        rc = run_gemm(vk, cache, &pats[i].s, pats[i].a, pats[i].a_n, pats[i].b, pats[i].b_n, pats[i].label);
    /* LoRA dropout on x, with lora_ops.c's counters (element (t, i) of x draws base + t*din + i): in x·A^T (operand
     * A) and dxa^T·x (operand B, the narrow kernel's wide side once swapped) */
    vkl_gemm_dropout dx1 = {.operand = 1, .key = 0x5eed, .p = 0.3f, .base = 11 * din, .si = din, .sj = 1};
    vkl_gemm_dropout dx2 = dx1;
    dx2.operand = 2;
    if (!rc) rc = run_gemm_drop(vk, cache, &pats[0].s, &dx1, x, pats[0].a_n, A, pats[0].b_n, "drop(x)*A^T", NULL);
    if (!rc) rc = run_gemm_drop(vk, cache, &pats[4].s, &dx2, dxa, pats[4].a_n, x, pats[4].b_n, "dxa^T*drop(x)", NULL);
    free(x), free(A), free(B), free(xa), free(dy), free(dxa), free(ones);
    return rc;
}

static int lora_patterns(vkl_vk *vk, vkl_op_cache *cache) { return lora_patterns_dims(vk, cache, lora_small); }

/* The fused dropout on each operand in the patterns lora_ops.c drops (x in x·A^T, x in dxa^T·x, the product
 * dxa·A), against the reference and against gemm_f32 (VKLORA_MATMUL=regtile): the masks must be the scalar
 * kernel's. A flipped mask element moves an output by a whole term (about 2/K of S here, K <= 150) or, for the
 * product, by the whole output: far past either tolerance. */
static int gemm_dropout_vs_scalar(vkl_vk *vk, vkl_op_cache *cache, const char *variant) {
    const uint32_t T = 150, din = 40, r = 16;
    float *x = malloc((size_t)T * din * 4), *A = malloc((size_t)r * din * 4), *dxa = malloc((size_t)T * r * 4);
    size_t big = (size_t)T * din;
    float *got = malloc(big * 4), *scalar = malloc(big * 4);
    T_ASSERT(x && A && dxa && got && scalar, "out of memory");
    fill_uniform(x, (size_t)T * din, -1, 1);
    fill_uniform(A, (size_t)r * din, -1, 1);
    fill_uniform(dxa, (size_t)T * r, -1, 1);
    struct {
        const char *label;
        vkl_gemm_shape s;
        vkl_gemm_dropout d;
        const float *a, *b;
        size_t a_n, b_n;
    } pats[] = {
        {"x*A^T", {T, r, din, din, 1, 1, din, r, 1.0f, 0.0f}, {1, 77, 0.3f, 11, din, 1}, x, A, big, (size_t)r * din},
        {"dxa^T*x", {r, din, T, 1, r, din, 1, din, 1.0f, 1.0f}, {2, 77, 0.3f, 11, din, 1}, dxa, x, (size_t)T * r, big},
        {"dxa*A", {T, din, r, r, 1, din, 1, din, 1.0f, 1.0f}, {3, 77, 0.5f, 11, din, 1}, dxa, A, (size_t)T * r,
         (size_t)r * din},
    };
    int rc = 0;
    for (size_t i = 0; i < VKL_ARRAY_LEN(pats) && !rc; i++) {
        const vkl_gemm_shape *s = &pats[i].s;
        size_t c_n = (size_t)(s->M - 1) * s->c_rs + s->N;
        setenv("VKLORA_MATMUL", "regtile", 1);
        rc = run_gemm_drop(vk, cache, s, &pats[i].d, pats[i].a, pats[i].a_n, pats[i].b, pats[i].b_n, "regtile",
                           scalar);
        setenv("VKLORA_MATMUL", variant, 1);
        rc = rc || run_gemm_drop(vk, cache, s, &pats[i].d, pats[i].a, pats[i].a_n, pats[i].b, pats[i].b_n, variant,
                                 got);
        if (rc) break;
        /* S: |alpha| sum |a b| / (1 - p) + |beta c0| is at least |scalar - beta c0|; use the larger of the two
         * results' magnitudes plus the sum bound through the shared compare with K */
        double *S = malloc(c_n * sizeof(double));
        T_ASSERT(S, "out of memory");
        for (uint32_t m = 0; m < s->M; m++)
            for (uint32_t n = 0; n < s->N; n++) {
                double acc = 0;
                for (uint32_t k = 0; k < s->K; k++)
                    acc += fabs((double)pats[i].a[(size_t)m * s->a_rs + (size_t)k * s->a_cs] *
                                pats[i].b[(size_t)k * s->b_rs + (size_t)n * s->b_cs]);
                S[(size_t)m * s->c_rs + n] = acc / (1.0 - pats[i].d.p) + 1.0;
            }
        char what[96];
        snprintf(what, sizeof(what), "gemm dropout %s vs regtile: %s", variant, pats[i].label);
        rc = compare(what, got, scalar, S, c_n, s->K);
        free(S);
    }
    unsetenv("VKLORA_MATMUL");
    free(x), free(A), free(dxa), free(got), free(scalar);
    return rc;
}

/* The dropout GEMM reads its operands through storage buffers (regtile) or texel views (texel) and is otherwise
 * the same code: both must give bit-identical results for every dropped operand (the dropout suite checks one
 * of them against the reference). */
static int gemm_dropout_variants_agree(vkl_vk *vk, vkl_op_cache *cache) {
    const uint32_t M = 19, N = 7, K = 45;
    float a[19 * 45], b[45 * 7], c0[19 * 7], got[2][19 * 7];
    fill_uniform(a, VKL_ARRAY_LEN(a), -1, 1);
    fill_uniform(b, VKL_ARRAY_LEN(b), -1, 1);
    fill_uniform(c0, VKL_ARRAY_LEN(c0), -1, 1);
    vkl_buffer ba = {0}, bb = {0}, bc = {0};
    vkl_err err = {0};
    int rc = make_buf(vk, &ba, a, sizeof(a), 4) || make_buf(vk, &bb, b, sizeof(b), 8);
    static const char *const g_variants[] = {"regtile", "texel"};
    for (uint32_t mode = 1; mode <= 3 && !rc; mode++) {
        vkl_gemm_shape s = {M, N, K, K, 1, N, 1, N, 0.75f, 1.0f};
        vkl_gemm_dropout d = {.operand = mode, .key = 99, .p = 0.3f, .base = 5, .si = mode == 3 ? N : K,
                              .sj = 1};
        if (mode == 2) d.si = N;
        for (int v = 0; v < 2 && !rc; v++) {
            setenv("VKLORA_MATMUL", g_variants[v], 1);
            rc = make_buf(vk, &bc, c0, sizeof(c0), 0);
            if (!rc && (vkl_op_gemm_dropout(vk, cache, &s, &d, vkl_tv(&ba, 4), vkl_tv(&bb, 8), vkl_tv(&bc, 0), &err) ||
                        vkl_buffer_download(vk, &bc, 0, got[v], sizeof(c0), &err))) {
                fprintf(stderr, "    FAIL: gemm dropout %s: %s\n", g_variants[v], err.msg);
                rc = 1;
            }
            vkl_buffer_destroy(vk, &bc);
        }
        if (!rc && memcmp(got[0], got[1], sizeof(c0))) {
            fprintf(stderr, "    FAIL: gemm dropout operand %u: regtile and texel results differ\n", mode);
            rc = 1;
        }
        /* the mask must have dropped something, or the dropout half of the comparison proves nothing */
        float plain[19 * 7];
        rc = rc || make_buf(vk, &bc, c0, sizeof(c0), 0);
        if (!rc && (vkl_op_gemm(vk, cache, &s, vkl_tv(&ba, 4), vkl_tv(&bb, 8), vkl_tv(&bc, 0), &err) ||
                    vkl_buffer_download(vk, &bc, 0, plain, sizeof(plain), &err))) {
            fprintf(stderr, "    FAIL: gemm: %s\n", err.msg);
            rc = 1;
        }
        vkl_buffer_destroy(vk, &bc);
        if (!rc && !memcmp(plain, got[0], sizeof(plain))) {
            fprintf(stderr, "    FAIL: gemm dropout operand %u: same result as without dropout\n", mode);
            rc = 1;
        }
    }
    unsetenv("VKLORA_MATMUL");
    vkl_buffer_destroy(vk, &ba);
    vkl_buffer_destroy(vk, &bb);
    return rc;
}

/* Whether the comma-separated list holds exactly the n names (in any order, each once). */
static bool same_names(const char *list, const char *const *names, size_t n) {
    size_t count = 0;
    for (const char *u = list; *u;) {
        size_t len = strcspn(u, ",");
        bool known = false;
        for (size_t i = 0; i < n && !known; i++) known = strlen(names[i]) == len && !strncmp(u, names[i], len);
        if (!known) return false;
        count++;
        u += len + (u[len] == ',');
    }
    return count == n;
}

static int test_gemm(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    vkl_op_cache cache = {0};
    t_rng_seed(13);
    /* storage-buffer operands (regtile, like tiled) and texel-view operands (texel) */
    int rc = 0;
    static const char *const g_variants[] = {"regtile", "texel"};
    for (size_t v = 0; v < VKL_ARRAY_LEN(g_variants) && !rc; v++) {
        setenv("VKLORA_MATMUL", g_variants[v], 1);
        bool texel = !strcmp(g_variants[v], "texel");
        char used[64];
        vkl_op_variants_reset();
        rc = lora_patterns(vk, &cache);
        /* the texel gemm reads the odd-sized operands a float a fetch, the aligned ones 4 floats a fetch */
        if (!rc && texel && strcmp(vkl_op_variants_of("gemm_fetch", used, sizeof(used)), "scalar")) {
            fprintf(stderr, "    FAIL: texel gemm on odd sizes: fetches \"%s\", expected \"scalar\"\n", used);
            rc = 1;
        }
        vkl_op_variants_reset();
        gemm_views_aligned = true;
        if (!rc) rc = lora_patterns_dims(vk, &cache, lora_aligned);
        for (size_t i = 0; i < VKL_ARRAY_LEN(lora_aligned_more) && !rc; i++)
            rc = lora_patterns_dims(vk, &cache, lora_aligned_more[i]);
        gemm_views_aligned = false;
        if (!rc && texel && !strstr(vkl_op_variants_of("gemm_fetch", used, sizeof(used)), "vec4")) {
            fprintf(stderr, "    FAIL: texel gemm on aligned sizes: fetches \"%s\", expected vec4 among them\n", used);
            rc = 1;
        }
        /* on lavapipe (shuffles, one subgroup size of 8 or 16) the narrow products (rank r, the bias) took the
         * narrow kernel, with dropout on x its dropout variant, the others (dx += dxa·A at d_in 68, the outer
         * product's K = 1) gemm_f32's tiles */
        static const char *const shapes[] = {"skinny", "skinny_drop", "tile"};
        if (!rc && texel && vk->info.driver_id == VK_DRIVER_ID_MESA_LLVMPIPE &&
            !same_names(vkl_op_variants_of("gemm_shape", used, sizeof(used)), shapes, VKL_ARRAY_LEN(shapes))) {
            fprintf(stderr, "    FAIL: texel gemm on aligned sizes: shapes \"%s\", expected skinny, skinny_drop and "
                    "tile\n", used);
            rc = 1;
        }
    }
    unsetenv("VKLORA_MATMUL");
    if (!rc) rc = gemm_dropout_variants_agree(vk, &cache);
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

static int long_loops(vkl_vk *vk, int mt_types, bool gemm, bool with_dropout);

/* Every LoRA product on one variant: the patterns at every size, the dropout masks against gemm_f32's, then again
 * split by a small binding limit (several dispatches over M, N and K, each chunk's dropout counters offset), then
 * over a K past llvmpipe's loop limit (with and without dropout). The registry of variants (ops.h) must show that
 * this variant, and only it, ran. */
static int gemm_variant(vkl_vk *vk, const char *variant) {
    vkl_op_cache cache = {0};
    t_rng_seed(17);
    setenv("VKLORA_MATMUL", variant, 1);
    vkl_op_variants_reset();
    int rc = lora_patterns(vk, &cache);
    for (size_t i = 0; i < VKL_ARRAY_LEN(lora_big) && !rc; i++) rc = lora_patterns_dims(vk, &cache, lora_big[i]);
    char used[64];
    vkl_op_variants_of("gemm", used, sizeof(used));
    if (!rc && strcmp(used, variant)) {
        fprintf(stderr, "    FAIL: VKLORA_MATMUL=%s ran the gemm variants \"%s\"\n", variant, used);
        rc = 1;
    }
    if (!rc) rc = gemm_dropout_vs_scalar(vk, &cache, variant);
    if (!rc) {
        set_small_bind_limit(vk);
        setenv("VKLORA_MATMUL", variant, 1);
        rc = lora_patterns(vk, &cache) || gemm_dropout_vs_scalar(vk, &cache, variant);
        unsetenv("VKLORA_MAX_BIND_BYTES");
    }
    /* K past llvmpipe's loop limit, with dropout (the most loop iterations per k): K chunks that accumulate */
    setenv("VKLORA_MATMUL", variant, 1);
    if (!rc) rc = long_loops(vk, 0, false, true);
    unsetenv("VKLORA_MATMUL");
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

/* The shared-memory GEMM (VKLORA_MATMUL=tiled: GPUs without cooperative matrices), fp32 like the reference. */
static int test_gemm_tiled(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    return gemm_variant(vk, "tiled");
}

/* The GEMM on cooperative matrices (f16 operands, f32 accumulation), with the f16-operand tolerance of the weight
 * products (tol_operands: each A row and B column is scaled by a power of two before its f16 rounding, so the bound
 * holds for any magnitude), then on gradients and activations far outside f16's range (rows of 1e-9..1e-3 and
 * 1e6..1e12: underflow and overflow without the scaling). Refused with the reason where it cannot run. */
static int test_gemm_coopmat(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    vkl_op_cache cache = {0};
    vkl_buffer b = {0};
    vkl_err err = {0};
    T_ASSERT(!vkl_buffer_create(vk, 4096, VKL_MEM_DEVICE, &b, &err), "%s", err.msg);
    setenv("VKLORA_MATMUL", "coopmat", 1);
    vkl_gemm_shape gs = {2, 2, 2, 2, 1, 2, 1, 2, 1.0f, 0.0f};
    vkl_status st = vkl_op_gemm(vk, &cache, &gs, vkl_tv(&b, 0), vkl_tv(&b, 1024), vkl_tv(&b, 2048), &err);
    unsetenv("VKLORA_MATMUL");
    vkl_buffer_destroy(vk, &b);
    vkl_op_cache_destroy(vk, &cache);
    if (st) {
        if (t_coopmat_refusal(st, err.msg, "VKLORA_MATMUL=coopmat")) return 1;
        return 0;
    }
    tol_operands = ldexp(1, -9) + ldexp(1, -20);
    int rc = gemm_variant(vk, "coopmat");
    static const double scales[] = {1e-9, 1e6};
    setenv("VKLORA_MATMUL", "coopmat", 1);
    for (size_t i = 0; i < VKL_ARRAY_LEN(scales) && !rc; i++) {
        row_scale = scales[i];
        rc = lora_patterns_dims(vk, &cache, lora_big[0]);
    }
    row_scale = 0;
    tol_operands = 0;
    unsetenv("VKLORA_MATMUL");
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

/* The transposed product on shared-memory tiles (VKLORA_MATMUL=tiled): every weight type, odd shapes, partial tiles
 * in both directions, accumulation, views 2 bytes off a word, then split by a small binding limit (N chunks
 * accumulating into dx, M chunks) and over N = 70001 rows (llvmpipe's loop limit). fp32 throughout: the fp32
 * bound. */
static int test_transposed_tiled(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    vkl_op_cache cache = {0};
    int rc = 0;
    t_rng_seed(18);
    setenv("VKLORA_MATMUL", "tiled", 1);
    vkl_op_variants_reset();
    for (size_t i = 0; i < VKL_ARRAY_LEN(all_types) && !rc; i++) {
        uint32_t type = all_types[i], bs = vkl_type_traits_get(type)->block_size;
        uint32_t k1 = bs == 1 ? 67 : bs == 32 ? 96 : 256, k2 = bs == 1 ? 13 : bs == 32 ? 160 : 512;
        rc = run_matmul_t(vk, &cache, type, 7, 37, k1, false, 0, 4) ||
             run_matmul_t(vk, &cache, type, 1, 3, k2, true, 4, 4) ||
             run_matmul_t(vk, &cache, type, 70, 130, k1, true, 8, 4) ||
             run_matmul_t(vk, &cache, type, 45, 21, k2, false, 16, 16);
    }
    char used[64];
    vkl_op_variants_of("matmul_t", used, sizeof(used));
    if (!rc && strcmp(used, "tiled")) {
        fprintf(stderr, "    FAIL: VKLORA_MATMUL=tiled ran the matmul_t variants \"%s\"\n", used);
        rc = 1;
    }
    if (!rc) {
        set_small_bind_limit(vk);
        for (size_t i = 0; i < VKL_ARRAY_LEN(chunk_cases) && !rc; i++)
            rc = run_matmul_t(vk, &cache, chunk_cases[i].type, chunk_cases[i].M, chunk_cases[i].N, chunk_cases[i].K,
                              i % 2 == 1, 4, 4);
        unsetenv("VKLORA_MAX_BIND_BYTES");
    }
    /* N past llvmpipe's loop limit: N chunks accumulating into dx */
    if (!rc) rc = long_loops(vk, 1, false, false);
    unsetenv("VKLORA_MATMUL");
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

/* ---- chunked paths: a tiny pretend binding limit forces splits over M, N (and K for the GEMM); chunks of
 * q4_0 and f16 rows start 2 bytes off a word. ---- */
static int test_chunked(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    set_small_bind_limit(vk);
    vkl_op_cache cache = {0};
    int rc = 0;
    t_rng_seed(14);
    const chunk_case *cs = chunk_cases;
    for (size_t v = 0; v < VKL_ARRAY_LEN(variants) && !rc; v++) rc = chunked_matmul(vk, &cache, variants[v]);
    for (size_t i = 0; i < VKL_ARRAY_LEN(chunk_cases) && !rc; i++)
        rc = run_matmul_t(vk, &cache, cs[i].type, cs[i].M, cs[i].N, cs[i].K, i % 2 == 1, 4, 4) ||
             run_matmul_t(vk, &cache, cs[i].type, cs[i].M, cs[i].N / 4 * 4, cs[i].K, i % 2 == 0, 0, 16);
    if (!rc) rc = lora_patterns(vk, &cache);
    unsetenv("VKLORA_MAX_BIND_BYTES");
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

/* ---- bad input is refused with a message, never dispatched ---- */
static int expect_input_error(vkl_status st, const vkl_err *err, const char *needle) {
    T_ASSERT(st == VKL_ERR_INPUT, "status %d (%s)", st, err->msg);
    T_ASSERT(strstr(err->msg, needle), "message \"%s\" lacks \"%s\"", err->msg, needle);
    return 0;
}

static int test_bad_input(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no Vulkan device");
    vkl_op_cache cache = {0};
    vkl_buffer b = {0};
    vkl_err err = {0};
    T_ASSERT(!vkl_buffer_create(vk, 4096, VKL_MEM_DEVICE, &b, &err), "%s", err.msg);
    vkl_tview v = vkl_tv(&b, 0);
    int rc = 0;
    vkl_err e1 = {0}, e2 = {0}, e3 = {0}, e4 = {0}, e5 = {0}, e6 = {0};
    rc |= expect_input_error(vkl_op_matmul(vk, &cache, VKL_TYPE_Q4_1, v, v, vkl_tv_none(), v, 1, 1, 32, false, &e1),
                             &e1, "not supported");
    rc |= expect_input_error(vkl_op_matmul(vk, &cache, VKL_TYPE_Q4_K, v, v, vkl_tv_none(), v, 1, 1, 128, false, &e2),
                             &e2, "multiple of the q4_K block size");
    rc |= expect_input_error(vkl_op_matmul(vk, &cache, VKL_TYPE_F32, v, v, vkl_tv_none(), v, 4, 4, 300, false, &e3),
                             &e3, "do not fit");
    rc |= expect_input_error(vkl_op_matmul_t(vk, &cache, VKL_TYPE_F32, v, vkl_tv(&b, 2), v, 1, 1, 1, false, &e4), &e4,
                             "multiple of 4");
    vkl_gemm_shape gs = {4, 4, 4, 4, 1, 1, 4, 2, 1.0f, 0.0f};
    rc |= expect_input_error(vkl_op_gemm(vk, &cache, &gs, v, v, v, &e5), &e5, "C row stride");
    setenv("VKLORA_MATMUL", "fastest", 1);
    rc |= expect_input_error(vkl_op_matmul(vk, &cache, VKL_TYPE_F32, v, v, vkl_tv_none(), v, 1, 1, 4, false, &e6),
                             &e6, "VKLORA_MATMUL=fastest");
    unsetenv("VKLORA_MATMUL");
    vkl_buffer_destroy(vk, &b);
    vkl_op_cache_destroy(vk, &cache);
    return rc;
}

/* Loops longer than llvmpipe's limit (65535 iterations per invocation) are split by the ops: the transposed
 * product over N = 70001 rows (a large vocabulary's output head; f32, then q8_0 weights: mt_types of them) and a GEMM
 * over K = 70001 rows (a LoRA gradient over many tokens; gemm: plain, with_dropout: with x's dropout) still give the
 * reference results, in whichever variant VKLORA_MATMUL selects. */
/* fp32 kernels: max |got - ref| under 1e-3 of max |ref| (sums of 70001 terms of O(1) round by ~sqrt(N) 2^-24 of
 * sum |terms|). The f16-operand kernels (tol_operands != 0) err by up to tol_operands of sum |terms| (S, times the
 * dropout's 1 / (1 - p) in sc), ~200x max |ref| here: checked per output against that. */
static int long_check(const char *what, const float *got, const float *ref, const double *S, double sc, size_t n) {
    if (tol_operands == 0) {
        double e = t_max_rel_err(got, ref, n);
        T_ASSERT(e < 1e-3, "%s: max rel err %.3g", what, e);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]) / (S[i] * sc);
        T_ASSERT(e <= tol_operands + 1e-4, "%s: output %zu errs by %.3g x S", what, i, e);
    }
    return 0;
}

static int long_loops(vkl_vk *vk, int mt_types, bool gemm, bool with_dropout) {
    vkl_err err = {0};
    vkl_op_cache c = {0};
    const uint32_t N = 70001, K = 32, M = 2;
    float *wf = malloc((size_t)N * K * 4), *dy = malloc((size_t)M * N * 4), *dx = malloc(M * K * 4),
          *ref = malloc(M * K * 4);
    t_rng_seed(5);
    for (size_t i = 0; i < (size_t)N * K; i++) wf[i] = t_rng_uniform(-1, 1);
    for (size_t i = 0; i < (size_t)M * N; i++) dy[i] = t_rng_uniform(-1, 1);
    double S[2 * 32];
    for (uint32_t m = 0; m < M; m++)
        for (uint32_t j = 0; j < K; j++) {
            S[m * K + j] = 0;
            for (uint32_t n = 0; n < N; n++) S[m * K + j] += fabs((double)dy[(size_t)m * N + n] * wf[(size_t)n * K + j]);
        }
    const uint32_t types[2] = {VKL_TYPE_F32, VKL_TYPE_Q8_0};
    for (int ti = 0; ti < mt_types && ti < 2; ti++) {
        uint64_t row;
        T_ASSERT(vkl_type_row_bytes(types[ti], K, &row), "row");
        void *w = malloc(row * N + 4);
        T_ASSERT(vkl_ref_quantize(types[ti], wf, w, (uint64_t)N * K), "quantize");
        T_ASSERT(vkl_ref_matmul_t(types[ti], w, dy, ref, M, N, K, false), "ref");
        vkl_buffer bw, bd, bx;
        T_ASSERT(!vkl_buffer_create(vk, row * N + 4, VKL_MEM_DEVICE, &bw, &err), "%s", err.msg);
        T_ASSERT(!vkl_buffer_create(vk, (uint64_t)M * N * 4, VKL_MEM_DEVICE, &bd, &err), "%s", err.msg);
        T_ASSERT(!vkl_buffer_create(vk, M * K * 4, VKL_MEM_DEVICE, &bx, &err), "%s", err.msg);
        T_ASSERT(!vkl_buffer_upload(vk, &bw, 0, w, row * N, &err), "%s", err.msg);
        T_ASSERT(!vkl_buffer_upload(vk, &bd, 0, dy, (uint64_t)M * N * 4, &err), "%s", err.msg);
        T_ASSERT(!vkl_op_matmul_t(vk, &c, types[ti], vkl_tv(&bw, 0), vkl_tv(&bd, 0), vkl_tv(&bx, 0), M, N, K, false,
                                  &err),
                 "%s", err.msg);
        T_ASSERT(!vkl_buffer_download(vk, &bx, 0, dx, M * K * 4, &err), "%s", err.msg);
        if (long_check(types[ti] == VKL_TYPE_F32 ? "matmul_t f32 over N = 70001" : "matmul_t q8_0 over N = 70001", dx,
                       ref, S, 1.0, M * K))
            return 1;
        vkl_buffer_destroy(vk, &bw), vkl_buffer_destroy(vk, &bd), vkl_buffer_destroy(vk, &bx);
        free(w);
    }
    if (!gemm && !with_dropout) {
        vkl_op_cache_destroy(vk, &c);
        free(wf), free(dy), free(dx), free(ref);
        return 0;
    }
    /* GEMM with K = N: C (M x K) = dy (M x N) · W (N x K) read as B(k=n, j) = wf[n*K + j] */
    vkl_gemm_shape g = {.M = M, .N = K, .K = N, .a_rs = N, .a_cs = 1, .b_rs = K, .b_cs = 1, .c_rs = K,
                        .alpha = 1, .beta = 0};
    vkl_ref_gemm(&g, dy, wf, ref);
    vkl_buffer ba, bb, bc;
    T_ASSERT(!vkl_buffer_create(vk, (uint64_t)M * N * 4, VKL_MEM_DEVICE, &ba, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, (uint64_t)N * K * 4, VKL_MEM_DEVICE, &bb, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, M * K * 4, VKL_MEM_DEVICE, &bc, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_upload(vk, &ba, 0, dy, (uint64_t)M * N * 4, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_upload(vk, &bb, 0, wf, (uint64_t)N * K * 4, &err), "%s", err.msg);
    if (gemm) {
        T_ASSERT(!vkl_op_gemm(vk, &c, &g, vkl_tv(&ba, 0), vkl_tv(&bb, 0), vkl_tv(&bc, 0), &err), "%s", err.msg);
        T_ASSERT(!vkl_buffer_download(vk, &bc, 0, dx, M * K * 4, &err), "%s", err.msg);
        if (long_check("gemm over K = 70001", dx, ref, S, 1.0, M * K)) return 1;
    }
    if (with_dropout) {
        /* the same with x's dropout on A: each staged element draws its Philox counter inside the k loop */
        vkl_gemm_dropout d = {.operand = 1, .key = 5, .p = 0.25f, .base = 3, .si = N, .sj = 1};
        vkl_ref_gemm_dropout(&g, &d, dy, wf, ref);
        T_ASSERT(!vkl_op_gemm_dropout(vk, &c, &g, &d, vkl_tv(&ba, 0), vkl_tv(&bb, 0), vkl_tv(&bc, 0), &err), "%s",
                 err.msg);
        T_ASSERT(!vkl_buffer_download(vk, &bc, 0, dx, M * K * 4, &err), "%s", err.msg);
        if (long_check("gemm with dropout over K = 70001", dx, ref, S, 1.0 / (1.0 - d.p), M * K)) return 1;
        /* and on B, the wide side of this narrow product (dxa^T·x's pattern: the texel gemm's narrow kernel draws
         * it at the fetch), over K = 70000 with A's rows 70000 apart (4-float fetches) */
        vkl_gemm_shape g2 = g;
        g2.K = g2.a_rs = N - 1;
        d.operand = 2;
        d.si = K;
        vkl_ref_gemm_dropout(&g2, &d, dy, wf, ref);
        for (uint32_t m = 0; m < M; m++)
            for (uint32_t j = 0; j < K; j++) {
                S[m * K + j] = 0;
                for (uint32_t n = 0; n < g2.K; n++)
                    S[m * K + j] += fabs((double)dy[(size_t)m * g2.a_rs + n] * wf[(size_t)n * K + j]);
            }
        T_ASSERT(!vkl_op_gemm_dropout(vk, &c, &g2, &d, vkl_tv(&ba, 0), vkl_tv(&bb, 0), vkl_tv(&bc, 0), &err), "%s",
                 err.msg);
        T_ASSERT(!vkl_buffer_download(vk, &bc, 0, dx, M * K * 4, &err), "%s", err.msg);
        if (long_check("gemm with dropout on B over K = 70000", dx, ref, S, 1.0 / (1.0 - d.p), M * K)) return 1;
    }
    vkl_buffer_destroy(vk, &ba), vkl_buffer_destroy(vk, &bb), vkl_buffer_destroy(vk, &bc);
    vkl_op_cache_destroy(vk, &c);
    free(wf), free(dy), free(dx), free(ref);
    return 0;
}

static int test_long_loops(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    return long_loops(vk, 2, true, true);
}

const vkl_test_case vkl_tests_matmul[] = {
    {"matmul/long_loops_split", test_long_loops},
    {"matmul/forward_regtile", test_forward_regtile},
    {"matmul/forward_tiled", test_forward_tiled},
    {"matmul/forward_texel", test_forward_texel},
    {"matmul/forward_coopmat", test_forward_coopmat},
    {"matmul/transposed", test_transposed},
    {"matmul/lowrank", test_lowrank},
    {"matmul/transposed_coopmat", test_transposed_coopmat},
    {"matmul/gemm_lora_patterns", test_gemm},
    {"matmul/gemm_tiled", test_gemm_tiled},
    {"matmul/gemm_coopmat", test_gemm_coopmat},
    {"matmul/transposed_tiled", test_transposed_tiled},
    {"matmul/chunked_small_bind_limit", test_chunked},
    {"matmul/bad_input", test_bad_input},
    {NULL, NULL},
};
