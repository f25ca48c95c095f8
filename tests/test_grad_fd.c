/* Finite-difference checks of the scalar twins whose backward is a separate op: the input gradient through a frozen
 * (quantized) weight, ref matmul_t, is the derivative of ref matmul for every weight type. (The device kernels are
 * compared with these twins in tests/test_matmul.c; the LoRA and transformer-op backwards have their own checks.)
 * Also the twins of the GEGLU, soft-capping and row-scaling backwards of the Gemma / Mistral graphs. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "ref/matmul.h"
#include "ref/nn.h"
#include "vklora/quant.h"

static int check_type(uint32_t type) {
    const uint32_t M = 3, N = 5, K = 256;
    uint64_t row;
    T_ASSERT(vkl_type_row_bytes(type, K, &row), "row bytes");
    float *wf = malloc(N * K * 4), *x = malloc(M * K * 4), *R = malloc(M * N * 4), *y = malloc(M * N * 4);
    float *dx = malloc(M * K * 4);
    void *w = malloc(row * N + 4);
    for (uint32_t i = 0; i < N * K; i++) wf[i] = t_rng_uniform(-1, 1);
    for (uint32_t i = 0; i < M * K; i++) x[i] = t_rng_uniform(-1, 1);
    for (uint32_t i = 0; i < M * N; i++) R[i] = t_rng_uniform(-1, 1);
    T_ASSERT(vkl_ref_quantize(type, wf, w, (uint64_t)N * K), "quantize");
    T_ASSERT(vkl_ref_matmul_t(type, w, R, dx, M, N, K, false), "matmul_t");
    double worst = 0;
    for (int t = 0; t < 12; t++) {
        uint32_t i = t_rng_u32() % (M * K);
        const float h = 1e-2f, orig = x[i];
        double L[2];
        for (int s = 0; s < 2; s++) {
            x[i] = orig + (s ? -h : h);
            T_ASSERT(vkl_ref_matmul(type, w, x, NULL, y, M, N, K, false), "matmul");
            double l = 0;
            for (uint32_t k = 0; k < M * N; k++) l += (double)R[k] * y[k];
            L[s] = l;
        }
        x[i] = orig;
        double fd = (L[0] - L[1]) / (2 * h);
        /* L is linear in x: only the fp32 rounding of y (~1e-7 * sum|R y|) over 2h remains */
        worst = fmax(worst, fabs(fd - dx[i]) / (fabs(fd) + 1e-2));
    }
    T_ASSERT(worst < 2e-3, "%s: matmul_t vs finite differences: rel err %.3g", vkl_type_traits_get(type)->name, worst);
    free(wf), free(x), free(R), free(y), free(dx), free(w);
    return 0;
}

static int test_matmul_t_fd(void) {
    const uint32_t types[] = {VKL_TYPE_F32, VKL_TYPE_F16, VKL_TYPE_BF16, VKL_TYPE_Q8_0,
                              VKL_TYPE_Q4_0, VKL_TYPE_Q4_K, VKL_TYPE_Q5_K, VKL_TYPE_Q6_K};
    t_rng_seed(41);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (check_type(types[i])) return 1;
    return 0;
}

/* ---- the elementwise ops of the Gemma / Mistral graphs: each backward twin against central differences of its
 * forward twin in double (h = 1e-5: truncation ~1e-10, rounding ~1e-11, bound 1e-6 of max|grad|) ---- */

static double fd_rel_err(const double *a, const double *b, size_t n) {
    double md = 0, mr = 1e-300;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= md)) md = d == d ? d : INFINITY;
        if (fabs(b[i]) > mr) mr = fabs(b[i]);
    }
    return md / mr;
}

/* d/dx[i] of sum_j R[j] y[j] where y = fwd(x) elementwise-in-rows: central differences element by element. */
typedef void (*fwd_fn)(const double *x, double *y, const void *ctx);
static void fd_of(fwd_fn f, const void *ctx, double *x, const double *R, size_t n, size_t ny, double *y,
                  double *g) {
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i], l[2];
        for (int s = 0; s < 2; s++) {
            x[i] = x0 + (s ? -h : h);
            f(x, y, ctx);
            l[s] = 0;
            for (size_t j = 0; j < ny; j++) l[s] += R[j] * y[j];
        }
        x[i] = x0;
        g[i] = (l[0] - l[1]) / (2 * h);
    }
}

#define N_FD 41
typedef struct {
    const double *other; /* u (geglu, d/dg), g (geglu, d/du), factors (scale_rows) */
    double cap;
    uint32_t rows;
} fd_ctx;
static void geglu_dg_fwd(const double *g, double *h, const void *c) {
    vkl_ref_geglu_f64(g, ((const fd_ctx *)c)->other, h, N_FD);
}
static void geglu_du_fwd(const double *u, double *h, const void *c) {
    vkl_ref_geglu_f64(((const fd_ctx *)c)->other, u, h, N_FD);
}
static void softcap_fwd(const double *x, double *y, const void *c) {
    vkl_ref_softcap_f64(x, y, N_FD, ((const fd_ctx *)c)->cap);
}
static void scale_rows_fwd(const double *x, double *y, const void *c) {
    const fd_ctx *k = c;
    vkl_ref_scale_rows_f64(x, k->other, y, k->rows, N_FD / k->rows);
}

static void rnd(double *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = t_rng_uniform((float)lo, (float)hi);
}

/* GEGLU over g in +-6 (both tails and the curved middle), u in +-2. */
static int test_geglu_fd(void) {
    t_rng_seed(42);
    double g[N_FD], u[N_FD], R[N_FD], y[N_FD], dg[N_FD], du[N_FD], fg[N_FD], fu[N_FD];
    rnd(g, N_FD, -6, 6), rnd(u, N_FD, -2, 2), rnd(R, N_FD, -1, 1);
    g[0] = 0, g[1] = -0.5, g[2] = 0.5; /* the inflection region */
    vkl_ref_geglu_back_f64(g, u, R, dg, du, N_FD);
    fd_ctx cg = {.other = u}, cu = {.other = g};
    fd_of(geglu_dg_fwd, &cg, g, R, N_FD, N_FD, y, fg);
    fd_of(geglu_du_fwd, &cu, u, R, N_FD, N_FD, y, fu);
    double eg = fd_rel_err(dg, fg, N_FD), eu = fd_rel_err(du, fu, N_FD);
    T_ASSERT(eg < 1e-6 && eu < 1e-6, "geglu backward vs finite differences: dg %.3g, du %.3g", eg, eu);
    return 0;
}

/* Soft-capping: the backward works from the capped output y; x reaches 3 caps (the flat part). */
static int test_softcap_fd(void) {
    t_rng_seed(43);
    static const double caps[] = {30.0, 50.0, 0.7};
    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        double x[N_FD], R[N_FD], y[N_FD], yy[N_FD], dx[N_FD], f[N_FD];
        rnd(x, N_FD, -3 * caps[k], 3 * caps[k]), rnd(R, N_FD, -1, 1);
        fd_ctx c = {.cap = caps[k]};
        vkl_ref_softcap_f64(x, y, N_FD, caps[k]);
        vkl_ref_softcap_back_f64(y, R, dx, N_FD, caps[k]);
        fd_of(softcap_fwd, &c, x, R, N_FD, N_FD, yy, f);
        double e = fd_rel_err(dx, f, N_FD);
        T_ASSERT(e < 1e-6, "softcap (cap %g) backward vs finite differences: %.3g", caps[k], e);
    }
    return 0;
}

/* Row scaling is its own backward: dx = scale_rows(dy) with the same factors. */
static int test_scale_rows_fd(void) {
    t_rng_seed(44);
    for (uint32_t rows = 1; rows <= N_FD; rows += N_FD - 1) { /* N_FD is prime: one row of 41, 41 rows of 1 */
        double x[N_FD], R[N_FD], y[N_FD], dx[N_FD], f[N_FD], fac[N_FD];
        rnd(x, N_FD, -2, 2), rnd(R, N_FD, -1, 1), rnd(fac, rows, 0.5, 2.5);
        fd_ctx c = {.other = fac, .rows = rows};
        vkl_ref_scale_rows_f64(R, fac, dx, rows, N_FD / rows);
        fd_of(scale_rows_fwd, &c, x, R, N_FD, N_FD, y, f);
        double e = fd_rel_err(dx, f, N_FD);
        T_ASSERT(e < 1e-6, "scale_rows (%u rows) backward vs finite differences: %.3g", rows, e);
    }
    return 0;
}

const vkl_test_case vkl_tests_grad_fd[] = {
    {"grad_fd/ref_matmul_t_every_type", test_matmul_t_fd},
    {"grad_fd/ref_geglu", test_geglu_fd},
    {"grad_fd/ref_softcap", test_softcap_fd},
    {"grad_fd/ref_scale_rows", test_scale_rows_fd},
    {NULL, NULL},
};
