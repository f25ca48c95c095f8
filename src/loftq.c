/* LoftQ initialisation: rank-r SVD (exact LAPACK dgesdd, or a randomized range finder for large weights) and the
 * quantize / fit-the-residual alternation of PEFT's loftq_init, with the real GGUF quantizers. */
#include "vklora/loftq.h"

#if VKL_HAVE_LAPACK
#include <cblas.h>
#include <lapacke.h>
#endif
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "platform.h"
#include "vklora/quant.h"
#include "vklora/rng.h"

/* Below this m·n·min(m, n) a full dgesdd takes well under a second; above it the randomized path is far cheaper. */
#define EXACT_MAX_WORK (1ull << 27)
/* Subspace iterations of the randomized path. The quantization residual has a nearly flat spectrum, where the
 * sketch alone captures noticeably less energy than the exact SVD; 4 rounds bring it within ~1% (tests check it). */
#define POWER_ITERS 4
#define MAX_ITERS 64

bool vkl_loftq_available(void) { return VKL_HAVE_LAPACK; }

#if !VKL_HAVE_LAPACK
static vkl_status no_lapack(vkl_err *err) {
    return vkl_err_set(err, VKL_ERR_INPUT, "loftq: this vklora was built without LAPACK, which LoftQ's SVD needs: drop "
                       "lora.loftq_config, or rebuild with LAPACKE and CBLAS installed (Debian: liblapacke-dev "
                       "libblas-dev; meson -Dloftq=enabled)");
}
#else
static uint32_t sketch_cols(uint32_t r, uint32_t mn) {
    uint32_t k = r + VKL_MAX(10u, r / 2);
    return k < mn ? k : mn;
}

static vkl_status svd_exact(const float *M, uint32_t m, uint32_t n, uint32_t r, float *U, float *S, float *Vt,
                            vkl_err *err) {
    uint32_t mn = VKL_MIN(m, n);
    double *a = vkl_malloc((size_t)m * n * sizeof(double));
    double *s = vkl_malloc((size_t)mn * sizeof(double));
    double *u = vkl_malloc((size_t)m * mn * sizeof(double));
    double *vt = vkl_malloc((size_t)mn * n * sizeof(double));
    for (size_t i = 0; i < (size_t)m * n; i++) a[i] = M[i];
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)m, (lapack_int)n, a, (lapack_int)n, s, u,
                                     (lapack_int)mn, vt, (lapack_int)n);
    vkl_status st = VKL_OK;
    if (info != 0) {
        st = vkl_err_set(err, VKL_ERR_RUNTIME, "loftq: LAPACKE_dgesdd on a %u x %u matrix failed (info %d)%s", m, n,
                         (int)info, info > 0 ? ": the SVD did not converge" : "");
    } else {
        for (uint32_t i = 0; i < m; i++)
            for (uint32_t j = 0; j < r; j++) U[(size_t)i * r + j] = (float)u[(size_t)i * mn + j];
        for (uint32_t j = 0; j < r; j++) {
            S[j] = (float)s[j];
            for (uint32_t c = 0; c < n; c++) Vt[(size_t)j * n + c] = (float)vt[(size_t)j * n + c];
        }
    }
    free(a);
    free(s);
    free(u);
    free(vt);
    return st;
}

/* Replace the columns of Y (rows x k, row-major) by an orthonormal basis of their span. */
static vkl_status orthonormalize(float *Y, uint32_t rows, uint32_t k, float *tau, vkl_err *err) {
    lapack_int info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, (lapack_int)rows, (lapack_int)k, Y, (lapack_int)k, tau);
    if (info == 0)
        info = LAPACKE_sorgqr(LAPACK_ROW_MAJOR, (lapack_int)rows, (lapack_int)k, (lapack_int)k, Y, (lapack_int)k, tau);
    if (info != 0)
        return vkl_err_set(err, VKL_ERR_RUNTIME, "loftq: QR of a %u x %u sketch failed (LAPACK info %d)", rows, k,
                           (int)info);
    return VKL_OK;
}

static vkl_status svd_randomized(const float *M, uint32_t m, uint32_t n, uint32_t r, uint64_t seed, float *U,
                                 float *S, float *Vt, vkl_err *err) {
    uint32_t k = sketch_cols(r, VKL_MIN(m, n));
    float *Y = vkl_malloc((size_t)m * k * sizeof(float));  /* range basis of M: m x k */
    float *Z = vkl_malloc((size_t)n * k * sizeof(float));  /* range basis of M^T: n x k */
    float *tau = vkl_malloc((size_t)k * sizeof(float));
    float *Bs = vkl_malloc((size_t)k * n * sizeof(float)); /* Y^T M: k x n */
    float *Ub = vkl_malloc((size_t)k * r * sizeof(float));
    float *ub_full = NULL;
    vkl_status st;

    /* Gaussian test matrix (Box-Muller on Philox pairs): any distribution with full-rank sketches works, the
     * Gaussian one is what the error bounds are stated for. */
    uint32_t key = vkl_rng_key(seed, 0x4C6F6674ull);
    for (size_t i = 0; i < (size_t)n * k; i++) {
        uint32_t o[2];
        vkl_philox2x32(key, (uint32_t)i, (uint32_t)((uint64_t)i >> 32), o);
        double u1 = ((o[0] >> 8) + 0.5) * (1.0 / 16777216.0), u2 = (o[1] >> 8) * (1.0 / 16777216.0);
        Z[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)n, 1.0f, M, (int)n, Z, (int)k, 0.0f,
                Y, (int)k);
    if ((st = orthonormalize(Y, m, k, tau, err))) goto done;
    /* Subspace iteration with QR after every product: without it the columns collapse onto the top singular
     * vector in float precision. */
    for (int it = 0; it < POWER_ITERS; it++) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)k, (int)m, 1.0f, M, (int)n, Y, (int)k, 0.0f,
                    Z, (int)k);
        if ((st = orthonormalize(Z, n, k, tau, err))) goto done;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)k, (int)n, 1.0f, M, (int)n, Z, (int)k,
                    0.0f, Y, (int)k);
        if ((st = orthonormalize(Y, m, k, tau, err))) goto done;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)n, (int)m, 1.0f, Y, (int)k, M, (int)n, 0.0f, Bs,
                (int)n);
    /* M ≈ Y Bs and Bs = Ub S Vt, so M's leading triplets are (Y Ub, S, Vt). */
    ub_full = vkl_malloc((size_t)k * k * sizeof(float));
    float *s_small = vkl_malloc((size_t)k * sizeof(float));
    float *vt_small = vkl_malloc((size_t)k * n * sizeof(float));
    st = svd_exact(Bs, k, n, k, ub_full, s_small, vt_small, err);
    if (st == VKL_OK) {
        for (uint32_t i = 0; i < k; i++)
            for (uint32_t j = 0; j < r; j++) Ub[(size_t)i * r + j] = ub_full[(size_t)i * k + j];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)r, (int)k, 1.0f, Y, (int)k, Ub, (int)r,
                    0.0f, U, (int)r);
        memcpy(S, s_small, (size_t)r * sizeof(float));
        memcpy(Vt, vt_small, (size_t)r * n * sizeof(float));
    }
    free(s_small);
    free(vt_small);
done:
    free(Y);
    free(Z);
    free(tau);
    free(Bs);
    free(Ub);
    free(ub_full);
    return st;
}

#endif

vkl_status vkl_lowrank_svd(const float *M, uint32_t m, uint32_t n, uint32_t r, vkl_svd_method method, uint64_t seed,
                           float *U, float *S, float *Vt, vkl_err *err) {
    uint32_t mn = VKL_MIN(m, n);
    if (m == 0 || n == 0 || r == 0 || r > mn)
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: rank %u of a %u x %u matrix: expected 1..%u", r, m, n, mn);
    /* cblas and LAPACKE take int dimensions. */
    if ((uint64_t)m * n > (uint64_t)INT32_MAX)
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: %u x %u matrix exceeds 2^31 elements", m, n);
#if !VKL_HAVE_LAPACK
    (void)M, (void)method, (void)seed, (void)U, (void)S, (void)Vt;
    return no_lapack(err);
#else
    if (method == VKL_SVD_AUTO) {
        uint32_t k = sketch_cols(r, mn);
        bool small = (uint64_t)m * n * mn <= EXACT_MAX_WORK;
        method = (small || 2ull * k >= mn) ? VKL_SVD_EXACT : VKL_SVD_RANDOMIZED;
    }
    if (method == VKL_SVD_EXACT) return svd_exact(M, m, n, r, U, S, Vt, err);
    if (method == VKL_SVD_RANDOMIZED) return svd_randomized(M, m, n, r, seed, U, S, Vt, err);
    return vkl_err_set(err, VKL_ERR_INPUT, "loftq: unknown SVD method %d", (int)method);
#endif
}

int vkl_loftq_qtype(int bits, uint64_t in) {
    if (in == 0 || in % 32) return -1;
    if (bits == 4) return in % QK_K == 0 ? VKL_TYPE_Q4_K : VKL_TYPE_Q4_0;
    if (bits == 8) return VKL_TYPE_Q8_0;
    return -1;
}

#if VKL_HAVE_LAPACK
static vkl_status svd_method_from_env(vkl_svd_method *method, vkl_err *err) {
    const char *e = getenv("VKL_LOFTQ_SVD");
    *method = VKL_SVD_AUTO;
    if (!e || !*e || !strcmp(e, "auto")) return VKL_OK;
    if (!strcmp(e, "exact")) *method = VKL_SVD_EXACT;
    else if (!strcmp(e, "randomized")) *method = VKL_SVD_RANDOMIZED;
    else
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: VKL_LOFTQ_SVD=\"%s\": expected auto, exact or randomized", e);
    return VKL_OK;
}

/* The reference quantizers are scalar and dominate LoftQ on large weights (Q4_K of a 4096 x 14336 weight takes
 * seconds), so rows are split across threads; blocks never straddle rows, so the bytes do not depend on the split. */
typedef struct {
    uint32_t type;
    bool quantize; /* else dequantize */
    const float *src;
    void *bytes;
    float *dst;
    uint64_t row0, rows, cols, row_bytes;
    bool ok;
} quant_job;

static void *quant_worker(void *arg) {
    quant_job *j = arg;
    uint8_t *b = (uint8_t *)j->bytes + j->row0 * j->row_bytes;
    uint64_t off = j->row0 * j->cols, n = j->rows * j->cols;
    j->ok = j->quantize ? vkl_ref_quantize(j->type, j->src + off, b, n) : vkl_ref_dequantize(j->type, b, j->dst + off, n);
    return NULL;
}

static bool quant_rows(uint32_t type, bool quantize, const float *src, void *bytes, float *dst, uint64_t rows,
                       uint64_t cols) {
    enum { MAX_THREADS = 64 };
    uint64_t row_bytes;
    if (!vkl_type_row_bytes(type, cols, &row_bytes)) return false;
    long ncpu = vkl_os_cpu_count();
    /* Threads only pay off with a few hundred thousand elements each. */
    uint64_t nt = VKL_MIN((uint64_t)(ncpu > 0 ? ncpu : 1), (uint64_t)MAX_THREADS);
    nt = VKL_MIN(nt, VKL_MAX(rows * cols / (1u << 18), 1));
    nt = VKL_MIN(nt, rows);
    quant_job jobs[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    bool started[MAX_THREADS] = {0};
    for (uint64_t t = 0; t < nt; t++) {
        uint64_t r0 = rows * t / nt, r1 = rows * (t + 1) / nt;
        jobs[t] = (quant_job){type, quantize, src, bytes, dst, r0, r1 - r0, cols, row_bytes, false};
        /* Thread 0 is the caller; a failed pthread_create falls back to running the job inline. */
        if (t > 0 && pthread_create(&th[t], NULL, quant_worker, &jobs[t]) == 0) started[t] = true;
    }
    for (uint64_t t = 0; t < nt; t++)
        if (!started[t]) quant_worker(&jobs[t]);
    bool ok = true;
    for (uint64_t t = 0; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        ok = ok && jobs[t].ok;
    }
    return ok;
}

static double frob(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

vkl_status vkl_loftq_matrix(const float *W, uint32_t out, uint32_t in, uint32_t r, float scale, uint32_t qtype,
                            uint32_t iters, uint64_t seed, void *q_bytes, float *A, float *B, double *res_before,
                            double *res_after, vkl_err *err) {
    const vkl_type_traits *tt = vkl_type_traits_get(qtype);
    if (!tt || !tt->supported)
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: type %u: expected a type vklora can quantize to", qtype);
    if (out == 0 || in == 0 || in % tt->block_size)
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: %u x %u weight: rows of %s need a multiple of %u elements", out,
                           in, tt->name, tt->block_size);
    if (r == 0 || r > VKL_MIN(out, in))
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: rank %u for a %u x %u weight: expected 1..%u", r, out, in,
                           VKL_MIN(out, in));
    if (!(scale > 0.0f) || !isfinite(scale))
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: LoRA scale %g: expected a finite positive number", scale);
    if (iters == 0 || iters > MAX_ITERS)
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: loftq_iter %u: expected 1..%d", iters, MAX_ITERS);
    if ((uint64_t)out * in > (uint64_t)INT32_MAX)
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: %u x %u weight exceeds 2^31 elements", out, in);
    size_t nel = (size_t)out * in;
    for (size_t i = 0; i < nel; i++)
        if (!isfinite(W[i]))
            return vkl_err_set(err, VKL_ERR_INPUT, "loftq: weight row %zu column %zu is %g: expected finite values",
                               i / in, i % in, W[i]);
    vkl_svd_method method;
    vkl_status st = svd_method_from_env(&method, err);
    if (st) return st;

    float *X = vkl_malloc(nel * sizeof(float)); /* quantizer input, then the residual W - Q */
    float *Qf = vkl_malloc(nel * sizeof(float));
    float *U = vkl_malloc((size_t)out * r * sizeof(float));
    float *S = vkl_malloc((size_t)r * sizeof(float));
    float *Vt = vkl_malloc((size_t)r * in * sizeof(float));
    for (uint32_t it = 0; it < iters; it++) {
        memcpy(X, W, nel * sizeof(float));
        if (it > 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)r, -scale, B, (int)r, A,
                        (int)in, 1.0f, X, (int)in);
        if (!quant_rows(qtype, true, X, q_bytes, NULL, out, in) || !quant_rows(qtype, false, NULL, q_bytes, Qf, out, in)) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "loftq: cannot quantize to %s", tt->name);
            goto done;
        }
        for (size_t i = 0; i < nel; i++) X[i] = W[i] - Qf[i];
        if (it == 0 && res_before) *res_before = frob(X, nel);
        if ((st = vkl_lowrank_svd(X, out, in, r, method, seed + it, U, S, Vt, err))) goto done;
        for (uint32_t j = 0; j < r; j++) {
            float f = (float)sqrt((double)S[j] / scale);
            for (uint32_t i = 0; i < out; i++) B[(size_t)i * r + j] = U[(size_t)i * r + j] * f;
            for (uint32_t c = 0; c < in; c++) A[(size_t)j * in + c] = Vt[(size_t)j * in + c] * f;
        }
    }
    /* X still holds W - Q of the last round. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, (int)r, -scale, B, (int)r, A, (int)in,
                1.0f, X, (int)in);
    if (res_after) *res_after = frob(X, nel);
done:
    free(X);
    free(Qf);
    free(U);
    free(S);
    free(Vt);
    return st;
}
#else
vkl_status vkl_loftq_matrix(const float *W, uint32_t out, uint32_t in, uint32_t r, float scale, uint32_t qtype,
                            uint32_t iters, uint64_t seed, void *q_bytes, float *A, float *B, double *res_before,
                            double *res_after, vkl_err *err) {
    (void)W, (void)out, (void)in, (void)r, (void)scale, (void)qtype, (void)iters, (void)seed, (void)q_bytes;
    (void)A, (void)B, (void)res_before, (void)res_after;
    return no_lapack(err);
}
#endif

/* The weight a module adapts; for Phi-3's fused modules its first projection, whose tensor is the fused one. */
static const vkl_weight *module_weight(const vkl_model *m, uint32_t layer, uint32_t module) {
    uint32_t proj[3];
    return vkl_module_projections(module, proj) ? vkl_layer_projection(&m->layers[layer], proj[0]) : NULL;
}

void vkl_loftq_result_free(vkl_loftq_result *res) {
    if (!res) return;
    for (uint32_t i = 0; i < res->n; i++) free(res->weights[i].bytes);
    free(res->weights);
    free(res);
}

vkl_status vkl_loftq_init_model(const vkl_model *m, vkl_lora *l, int bits, int iters, FILE *report,
                                vkl_loftq_result **out, vkl_err *err) {
    *out = NULL;
#if !VKL_HAVE_LAPACK
    (void)m, (void)l, (void)iters, (void)report;
    return no_lapack(err);
#endif
    if (bits != 4 && bits != 8)
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: loftq_bits %d: expected 4 or 8", bits);
    if (iters < 1 || iters > MAX_ITERS)
        return vkl_err_set(err, VKL_ERR_INPUT, "loftq: loftq_iter %d: expected 1..%d", iters, MAX_ITERS);
    vkl_status st = vkl_lora_check_base(l, m, err);
    if (st) return st;

    vkl_loftq_result *res = vkl_calloc(1, sizeof(*res));
    res->weights = vkl_calloc(l->n_slots ? l->n_slots : 1, sizeof(vkl_loftq_weight));
    float *W = NULL;
    for (uint32_t si = 0; si < l->n_slots; si++) {
        const vkl_lora_slot *s = &l->slots[si];
        const vkl_weight *w = module_weight(m, s->layer, s->module);
        const char *name = vkl_target_module_gguf_names[s->module];
        const vkl_gguf_tensor *t = w->t;
        if (!t || !t->data) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "loftq: blk.%u.%s.weight has no data in the GGUF", s->layer, name);
            goto fail;
        }
        /* The tensor's own type: a weight converted at load time still has its full-precision original here. */
        if (t->type != VKL_TYPE_F32 && t->type != VKL_TYPE_F16 && t->type != VKL_TYPE_BF16) {
            const vkl_type_traits *tt = vkl_type_traits_get(t->type);
            st = vkl_err_set(err, VKL_ERR_INPUT,
                             "loftq: blk.%u.%s.weight is %s: LoftQ needs the full-precision weight (F32, F16 or "
                             "BF16); use an unquantized GGUF or drop lora.loftq_config",
                             s->layer, name, tt && tt->name ? tt->name : "an unknown type");
            goto fail;
        }
        int qtype = vkl_loftq_qtype(bits, s->in);
        if (qtype < 0) {
            st = vkl_err_set(err, VKL_ERR_INPUT,
                             "loftq: blk.%u.%s.weight rows have %u elements: %d-bit quantization needs a multiple of 32",
                             s->layer, name, s->in, bits);
            goto fail;
        }
        if (l->r > VKL_MIN(s->in, s->out)) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "loftq: lora.r %u exceeds min(%u, %u) of blk.%u.%s.weight", l->r,
                             s->out, s->in, s->layer, name);
            goto fail;
        }
        uint64_t nel = (uint64_t)s->out * s->in, qsize;
        if (!vkl_type_row_bytes((uint32_t)qtype, s->in, &qsize) || !vkl_mul_u64(qsize, s->out, &qsize)) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "loftq: blk.%u.%s.weight: size overflows", s->layer, name);
            goto fail;
        }
        W = vkl_realloc(W, nel * sizeof(float));
        if (!vkl_ref_dequantize(t->type, t->data, W, nel)) {
            st = vkl_err_set(err, VKL_ERR_INPUT, "loftq: blk.%u.%s.weight: cannot decode type %u", s->layer, name,
                             t->type);
            goto fail;
        }
        vkl_loftq_weight *o = &res->weights[res->n];
        o->layer = s->layer;
        o->module = s->module;
        o->type = (uint32_t)qtype;
        o->rows = s->out;
        o->cols = s->in;
        o->size = qsize;
        o->bytes = vkl_malloc(qsize);
        res->n++;
        /* A per-slot sketch seed keeps the randomized SVD reproducible run to run. */
        uint64_t seed = ((uint64_t)s->layer << 8) | s->module;
        vkl_err e = {0};
        st = vkl_loftq_matrix(W, s->out, s->in, l->r, l->scale, (uint32_t)qtype, (uint32_t)iters, seed, o->bytes,
                              l->params + s->a_off, l->params + s->b_off, &o->res_before, &o->res_after, &e);
        if (st) {
            vkl_err_set(err, st, "blk.%u.%s.weight: %s", s->layer, name, e.msg);
            goto fail;
        }
        if (report) {
            fprintf(report, "loftq: layer %u module %s (%s): ||W-Q|| = %.6g -> ||W-(Q+sBA)|| = %.6g\n", s->layer,
                    name, vkl_type_traits_get((uint32_t)qtype)->name, o->res_before, o->res_after);
            fflush(report);
        }
    }
    free(W);
    *out = res;
    return VKL_OK;
fail:
    free(W);
    vkl_loftq_result_free(res);
    return st;
}
