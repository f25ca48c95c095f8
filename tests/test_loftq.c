/* LoftQ initialisation (src/loftq.c): the residual falls by the Eckart-Young margin, s·B·A is the exact rank-r SVD of
 * W - Q, the bytes are the real quantizer's output, randomized SVD agrees with dgesdd, and the model-level pass. */
#if VKL_HAVE_LAPACK
#include <cblas.h>
#include <lapacke.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "vklora/loftq.h"
#include "vklora/quant.h"

#if VKL_HAVE_LAPACK

/* W = (rank-`rank` product) + noise: a structured part as trained weights have, plus unstructured noise, so the
 * quantization residual is not trivially low-rank. */
static float *make_w(uint32_t m, uint32_t n, uint32_t rank, float noise, uint64_t seed) {
    t_rng_seed(seed);
    float *P = malloc(sizeof(float) * m * rank), *Qm = malloc(sizeof(float) * rank * n), *W = malloc(sizeof(float) * m * n);
    for (size_t i = 0; i < (size_t)m * rank; i++) P[i] = t_rng_uniform(-1, 1);
    for (size_t i = 0; i < (size_t)rank * n; i++) Qm[i] = t_rng_uniform(-1, 1) / sqrtf((float)n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)rank, 1.0f, P, (int)rank, Qm, (int)n,
                0.0f, W, (int)n);
    for (size_t i = 0; i < (size_t)m * n; i++) W[i] += noise * t_rng_uniform(-1, 1);
    free(P);
    free(Qm);
    return W;
}

/* ||W - (Q + s·B·A)||_F in double, Q decoded from the bytes. */
static double residual_of(const float *W, const void *q, uint32_t type, const float *A, const float *B, uint32_t m,
                          uint32_t n, uint32_t r, float s) {
    float *Q = malloc(sizeof(float) * m * n);
    vkl_ref_dequantize(type, q, Q, (uint64_t)m * n);
    double sum = 0;
    for (uint32_t i = 0; i < m; i++)
        for (uint32_t j = 0; j < n; j++) {
            double ba = 0;
            for (uint32_t k = 0; k < r; k++) ba += (double)B[i * r + k] * A[(size_t)k * n + j];
            double d = (double)W[(size_t)i * n + j] - Q[(size_t)i * n + j] - s * ba;
            sum += d * d;
        }
    free(Q);
    return sqrt(sum);
}

static uint64_t qbytes(uint32_t type, uint32_t m, uint32_t n) {
    uint64_t b = 0;
    vkl_type_row_bytes(type, n, &b);
    return b * m;
}

/* For each shape, bits and iteration count: the reported residuals are the true ones; one round removes at least
 * the share r / min(m, n) of ||W - Q||^2 (Eckart-Young: the top r of min(m, n) squared singular values hold at least
 * their average share), and three rounds end no worse than one but for 0.5% (the quantizers' data-chosen scales
 * make each quantize step a near-projection only). */
static int test_residual(void) {
    unsetenv("VKL_LOFTQ_SVD");
    const uint32_t shapes[][2] = {{72, 256}, {256, 512}};
    const uint32_t r = 8;
    const float s = 16.0f / r;
    for (size_t si = 0; si < VKL_ARRAY_LEN(shapes); si++) {
        uint32_t m = shapes[si][0], n = shapes[si][1];
        float *W = make_w(m, n, 4, 0.05f, 11 + si);
        float *A = malloc(sizeof(float) * r * n), *B = malloc(sizeof(float) * m * r);
        for (int bits = 4; bits <= 8; bits += 4) {
            int type = vkl_loftq_qtype(bits, n);
            T_ASSERT(type == (bits == 8 ? VKL_TYPE_Q8_0 : VKL_TYPE_Q4_K), "type for %d bits, %u cols", bits, n);
            void *q = malloc(qbytes((uint32_t)type, m, n));
            double after1 = 0;
            for (uint32_t iters = 1; iters <= 3; iters += 2) {
                vkl_err err = {0};
                double before, after;
                vkl_status st = vkl_loftq_matrix(W, m, n, r, s, (uint32_t)type, iters, 5, q, A, B, &before, &after,
                                                 &err);
                T_ASSERT(st == VKL_OK, "%s", err.msg);
                double check = residual_of(W, q, (uint32_t)type, A, B, m, n, r, s);
                T_ASSERT(fabs(check - after) <= 1e-4 * after, "%ux%u %d-bit iters %u: res_after %g, recomputed %g", m,
                         n, bits, iters, after, check);
                double bound = before * sqrt(1.0 - (double)r / VKL_MIN(m, n)) * (1 + 1e-5);
                printf("    %ux%u %d-bit iters %u: %.6g -> %.6g (bound %.6g)\n", m, n, bits, iters, before, after,
                       bound);
                T_ASSERT(after < bound, "%ux%u %d-bit iters %u: %g -> %g, expected < %g", m, n, bits, iters, before,
                         after, bound);
                if (iters == 1) after1 = after;
                else
                    T_ASSERT(after <= after1 * 1.005, "%ux%u %d-bit: 3 rounds %g vs 1 round %g", m, n, bits, after,
                             after1);
            }
            free(q);
        }
        free(A);
        free(B);
        free(W);
    }
    return 0;
}

/* The bytes are exactly vkl_ref_quantize of the last quantizer input: W for one round, W - s·B'·A' for three
 * rounds where (A', B') is the two-round result. */
static int test_bytes(void) {
    unsetenv("VKL_LOFTQ_SVD");
    const uint32_t m = 72, n = 96, r = 6; /* 96 columns: Q4_0 (not a multiple of 256) */
    const float s = 1.5f;
    float *W = make_w(m, n, 3, 0.1f, 21);
    int type = vkl_loftq_qtype(4, n);
    T_ASSERT(type == VKL_TYPE_Q4_0, "4 bits on 96 columns should be Q4_0, got %d", type);
    uint64_t qb = qbytes((uint32_t)type, m, n);
    void *q = malloc(qb), *ref = malloc(qb);
    float *A = malloc(sizeof(float) * r * n), *B = malloc(sizeof(float) * m * r);
    float *A2 = malloc(sizeof(float) * r * n), *B2 = malloc(sizeof(float) * m * r);
    float *X = malloc(sizeof(float) * m * n);
    vkl_err err = {0};
    double b, a;
    T_ASSERT(vkl_loftq_matrix(W, m, n, r, s, (uint32_t)type, 1, 9, q, A, B, &b, &a, &err) == VKL_OK, "%s", err.msg);
    vkl_ref_quantize((uint32_t)type, W, ref, (uint64_t)m * n);
    T_ASSERT(!memcmp(q, ref, qb), "one round: bytes differ from vkl_ref_quantize(W)");
    T_ASSERT(vkl_loftq_matrix(W, m, n, r, s, (uint32_t)type, 2, 9, q, A2, B2, &b, &a, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_loftq_matrix(W, m, n, r, s, (uint32_t)type, 3, 9, q, A, B, &b, &a, &err) == VKL_OK, "%s", err.msg);
    memcpy(X, W, sizeof(float) * m * n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)r, -s, B2, (int)r, A2, (int)n, 1.0f,
                X, (int)n);
    vkl_ref_quantize((uint32_t)type, X, ref, (uint64_t)m * n);
    T_ASSERT(!memcmp(q, ref, qb), "three rounds: bytes differ from vkl_ref_quantize(W - s·B2·A2)");
    /* ... and they changed: the later rounds did quantize something other than W. */
    vkl_ref_quantize((uint32_t)type, W, ref, (uint64_t)m * n);
    T_ASSERT(memcmp(q, ref, qb), "three rounds left the quantization of W unchanged");
    free(q);
    free(ref);
    free(A);
    free(B);
    free(A2);
    free(B2);
    free(X);
    free(W);
    return 0;
}

/* Best rank-r approximation of M (m x n) by LAPACKE_dgesdd in double, independent of src/loftq.c. */
static double *exact_rank_r(const double *M, uint32_t m, uint32_t n, uint32_t r, double *sv) {
    uint32_t mn = VKL_MIN(m, n);
    double *a = malloc(sizeof(double) * m * n), *s = malloc(sizeof(double) * mn);
    double *u = malloc(sizeof(double) * m * mn), *vt = malloc(sizeof(double) * mn * n);
    memcpy(a, M, sizeof(double) * m * n);
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)m, (lapack_int)n, a, (lapack_int)n, s, u,
                                     (lapack_int)mn, vt, (lapack_int)n);
    double *out = calloc((size_t)m * n, sizeof(double));
    if (info == 0)
        for (uint32_t i = 0; i < m; i++)
            for (uint32_t k = 0; k < r; k++)
                for (uint32_t j = 0; j < n; j++) out[(size_t)i * n + j] += u[(size_t)i * mn + k] * s[k] * vt[(size_t)k * n + j];
    if (sv)
        for (uint32_t k = 0; k < mn; k++) sv[k] = s[k];
    free(a);
    free(s);
    free(u);
    free(vt);
    if (info != 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* One round: s·B·A equals the rank-r truncated SVD of W - Q (Q from the bytes), for Q4_K and Q8_0. */
static int test_matches_exact_svd(void) {
    unsetenv("VKL_LOFTQ_SVD");
    const uint32_t m = 72, n = 256, r = 8;
    const float s = 0.5f; /* != 1, so a missing division by s shows */
    float *W = make_w(m, n, 4, 0.05f, 31);
    float *A = malloc(sizeof(float) * r * n), *B = malloc(sizeof(float) * m * r), *Q = malloc(sizeof(float) * m * n);
    double *R = malloc(sizeof(double) * m * n);
    for (int bits = 4; bits <= 8; bits += 4) {
        uint32_t type = (uint32_t)vkl_loftq_qtype(bits, n);
        void *q = malloc(qbytes(type, m, n));
        vkl_err err = {0};
        double b, a;
        T_ASSERT(vkl_loftq_matrix(W, m, n, r, s, type, 1, 1, q, A, B, &b, &a, &err) == VKL_OK, "%s", err.msg);
        vkl_ref_dequantize(type, q, Q, (uint64_t)m * n);
        for (size_t i = 0; i < (size_t)m * n; i++) R[i] = (double)W[i] - Q[i];
        double *Rr = exact_rank_r(R, m, n, r, NULL);
        T_ASSERT(Rr, "reference dgesdd failed");
        double maxd = 0, maxv = 0;
        for (uint32_t i = 0; i < m; i++)
            for (uint32_t j = 0; j < n; j++) {
                double ba = 0;
                for (uint32_t k = 0; k < r; k++) ba += (double)B[i * r + k] * A[(size_t)k * n + j];
                maxd = fmax(maxd, fabs(s * ba - Rr[(size_t)i * n + j]));
                maxv = fmax(maxv, fabs(Rr[(size_t)i * n + j]));
            }
        free(Rr);
        free(q);
        T_ASSERT(maxd <= 1e-4 * maxv, "%d-bit: s·B·A vs rank-%u SVD of W-Q: max diff %g of max %g", bits, r, maxd,
                 maxv);
        /* The split is balanced: A's row j and B's column j have the same norm sqrt(S_j / s). */
        for (uint32_t k = 0; k < r; k++) {
            double na = 0, nb = 0;
            for (uint32_t j = 0; j < n; j++) na += (double)A[(size_t)k * n + j] * A[(size_t)k * n + j];
            for (uint32_t i = 0; i < m; i++) nb += (double)B[i * r + k] * B[i * r + k];
            T_ASSERT(fabs(sqrt(na) - sqrt(nb)) <= 1e-4 * sqrt(na), "factor %u: |A row| %g vs |B col| %g", k, sqrt(na),
                     sqrt(nb));
        }
    }
    free(A);
    free(B);
    free(Q);
    free(R);
    free(W);
    return 0;
}

static double tail_norm(const float *M, const float *U, const float *S, const float *Vt, uint32_t m, uint32_t n,
                        uint32_t r) {
    double sum = 0;
    for (uint32_t i = 0; i < m; i++)
        for (uint32_t j = 0; j < n; j++) {
            double v = 0;
            for (uint32_t k = 0; k < r; k++) v += (double)U[i * r + k] * S[k] * Vt[(size_t)k * n + j];
            double d = M[(size_t)i * n + j] - v;
            sum += d * d;
        }
    return sqrt(sum);
}

/* Randomized vs exact SVD. On a quantization residual (nearly flat spectrum, the hard case for a sketch) the
 * randomized tail ||M - M_r|| is within 1% of the optimum; on a matrix with a clear spectral gap it finds the same
 * singular values and the same rank-r approximation. End to end, forcing the randomized path changes LoftQ's final
 * residual by under 1%. */
static int test_randomized(void) {
    const uint32_t m = 200, n = 512, r = 16;
    float *W = make_w(m, n, 6, 0.05f, 41);
    float *M = malloc(sizeof(float) * m * n);
    void *q = malloc(qbytes(VKL_TYPE_Q4_K, m, n));
    vkl_ref_quantize(VKL_TYPE_Q4_K, W, q, (uint64_t)m * n);
    vkl_ref_dequantize(VKL_TYPE_Q4_K, q, M, (uint64_t)m * n);
    for (size_t i = 0; i < (size_t)m * n; i++) M[i] = W[i] - M[i];
    float *U = malloc(sizeof(float) * m * r), *S = malloc(sizeof(float) * r), *Vt = malloc(sizeof(float) * r * n);
    float *U2 = malloc(sizeof(float) * m * r), *S2 = malloc(sizeof(float) * r), *Vt2 = malloc(sizeof(float) * r * n);
    vkl_err err = {0};
    T_ASSERT(vkl_lowrank_svd(M, m, n, r, VKL_SVD_EXACT, 0, U, S, Vt, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_lowrank_svd(M, m, n, r, VKL_SVD_RANDOMIZED, 7, U2, S2, Vt2, &err) == VKL_OK, "%s", err.msg);
    double te = tail_norm(M, U, S, Vt, m, n, r), tr = tail_norm(M, U2, S2, Vt2, m, n, r);
    printf("    flat spectrum: exact tail %.6g, randomized %.6g (+%.3f%%)\n", te, tr, 100 * (tr / te - 1));
    T_ASSERT(tr >= te * (1 - 1e-5), "randomized tail %g beats the optimum %g: the exact path is wrong", tr, te);
    T_ASSERT(tr <= te * 1.01, "randomized tail %g vs exact %g", tr, te);

    /* Clear gap: rank-6 structure plus small noise. */
    T_ASSERT(vkl_lowrank_svd(W, m, n, 6, VKL_SVD_EXACT, 0, U, S, Vt, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_lowrank_svd(W, m, n, 6, VKL_SVD_RANDOMIZED, 3, U2, S2, Vt2, &err) == VKL_OK, "%s", err.msg);
    double *Wd = malloc(sizeof(double) * m * n), sv[200];
    for (size_t i = 0; i < (size_t)m * n; i++) Wd[i] = W[i];
    double *Wr = exact_rank_r(Wd, m, n, 6, sv);
    T_ASSERT(Wr, "reference dgesdd failed");
    for (uint32_t k = 0; k < 6; k++) {
        T_ASSERT(fabs(S[k] - sv[k]) <= 1e-5 * sv[0], "exact path singular value %u: %g vs %g", k, S[k], sv[k]);
        T_ASSERT(fabs(S2[k] - sv[k]) <= 1e-4 * sv[0], "randomized singular value %u: %g vs %g", k, S2[k], sv[k]);
    }
    double maxd = 0, maxv = 0;
    for (uint32_t i = 0; i < m; i++)
        for (uint32_t j = 0; j < n; j++) {
            double v = 0;
            for (uint32_t k = 0; k < 6; k++) v += (double)U2[i * 6 + k] * S2[k] * Vt2[(size_t)k * n + j];
            maxd = fmax(maxd, fabs(v - Wr[(size_t)i * n + j]));
            maxv = fmax(maxv, fabs(Wr[(size_t)i * n + j]));
        }
    free(Wr);
    free(Wd);
    T_ASSERT(maxd <= 1e-3 * maxv, "randomized rank-6 approximation: max diff %g of %g", maxd, maxv);

    /* End to end with the kill switch. */
    float *A = malloc(sizeof(float) * r * n), *B = malloc(sizeof(float) * m * r);
    double b1, a1, b2, a2;
    setenv("VKL_LOFTQ_SVD", "exact", 1);
    vkl_status st = vkl_loftq_matrix(W, m, n, r, 2.0f, VKL_TYPE_Q4_K, 2, 1, q, A, B, &b1, &a1, &err);
    setenv("VKL_LOFTQ_SVD", "randomized", 1);
    if (st == VKL_OK) st = vkl_loftq_matrix(W, m, n, r, 2.0f, VKL_TYPE_Q4_K, 2, 1, q, A, B, &b2, &a2, &err);
    setenv("VKL_LOFTQ_SVD", "fast", 1);
    vkl_err e2 = {0};
    vkl_status st2 = vkl_loftq_matrix(W, m, n, r, 2.0f, VKL_TYPE_Q4_K, 1, 1, q, A, B, &b2, &a2, &e2);
    unsetenv("VKL_LOFTQ_SVD");
    T_ASSERT(st == VKL_OK, "%s", err.msg);
    printf("    LoftQ 2 rounds: exact %.6g, randomized %.6g\n", a1, a2);
    T_ASSERT(fabs(a2 - a1) <= 0.01 * a1 && b1 == b2, "randomized LoftQ %g vs exact %g", a2, a1);
    T_ASSERT(st2 == VKL_ERR_INPUT && strstr(e2.msg, "VKL_LOFTQ_SVD"), "bad VKL_LOFTQ_SVD: %s", e2.msg);
    free(A);
    free(B);
    free(U);
    free(S);
    free(Vt);
    free(U2);
    free(S2);
    free(Vt2);
    free(M);
    free(q);
    free(W);
    return 0;
}

static int test_bad_input(void) {
    unsetenv("VKL_LOFTQ_SVD");
    const uint32_t m = 32, n = 64;
    float *W = make_w(m, n, 2, 0.1f, 51), A[8 * 64], B[32 * 8];
    uint8_t q[32 * 64 * 2];
    double b, a;
    vkl_err err = {0};
    T_ASSERT(vkl_loftq_matrix(W, m, n, 40, 1, VKL_TYPE_Q8_0, 1, 0, q, A, B, &b, &a, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "rank 40"), "rank > min(m, n): %s", err.msg);
    vkl_err_clear(&err);
    T_ASSERT(vkl_loftq_matrix(W, m, n, 4, 1, VKL_TYPE_Q4_K, 1, 0, q, A, B, &b, &a, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "multiple of 256"), "64 columns of Q4_K: %s", err.msg);
    vkl_err_clear(&err);
    T_ASSERT(vkl_loftq_matrix(W, m, n, 4, 1, VKL_TYPE_Q8_0, 0, 0, q, A, B, &b, &a, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "loftq_iter"), "0 iterations: %s", err.msg);
    vkl_err_clear(&err);
    W[5 * n + 7] = NAN;
    T_ASSERT(vkl_loftq_matrix(W, m, n, 4, 1, VKL_TYPE_Q8_0, 1, 0, q, A, B, &b, &a, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "row 5 column 7"), "NaN: %s", err.msg);
    T_ASSERT(vkl_loftq_qtype(4, 48) == -1 && vkl_loftq_qtype(3, 256) == -1 && vkl_loftq_qtype(8, 512) == VKL_TYPE_Q8_0,
             "vkl_loftq_qtype");
    free(W);
    return 0;
}

static const char *make_model(const char *type, int layers) {
    static char path[8][512];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 512, "%s/loftq-%s-%d.gguf", t_tmpdir(), type, layers);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --type %s --dim 256 --ff 512 --layers %d --heads 4 --seed 5",
             VKL_BUILD_ROOT, p, type, layers);
    char *o = NULL, *e = NULL;
    int rc = t_run(cmd, &o, &e);
    if (rc) fprintf(stderr, "    %s: %s%s\n", cmd, o ? o : "", e ? e : "");
    free(o);
    free(e);
    return rc ? NULL : p;
}

/* Every slot of a random F32 model: A and B land in l->params, the bytes have the planned type and size, and the
 * reported residuals are ||W - Q|| and ||W - (Q + s·B·A)|| recomputed from the GGUF's weights. */
static int test_model(void) {
    unsetenv("VKL_LOFTQ_SVD");
    const char *path = make_model("f32", 2);
    T_ASSERT(path, "vklora-mkmodel failed");
    vkl_model *m = NULL;
    vkl_lora *l = NULL;
    vkl_err err = {0};
    T_ASSERT(vkl_model_load(path, &m, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_lora_create(m, VKL_TM_ALL, 8, 16, false, &l, &err) == VKL_OK, "%s", err.msg);
    char *rep = NULL;
    size_t rep_len = 0;
    FILE *f = open_memstream(&rep, &rep_len);
    vkl_loftq_result *res = NULL;
    vkl_status st = vkl_loftq_init_model(m, l, 4, 2, f, &res, &err);
    fclose(f);
    T_ASSERT(st == VKL_OK, "%s", err.msg);
    T_ASSERT(res->n == l->n_slots && l->n_slots == 14, "%u results for %u slots", res->n, l->n_slots);
    int lines = 0;
    for (const char *c = rep; (c = strstr(c, "||W-(Q+sBA)||")); c++) lines++;
    T_ASSERT(lines == 14 && strstr(rep, "layer 1 module ffn_down (q4_K): ||W-Q|| = "), "report:\n%s", rep);
    for (uint32_t i = 0; i < res->n; i++) {
        const vkl_loftq_weight *w = &res->weights[i];
        const vkl_lora_slot *s = &l->slots[i];
        T_ASSERT(w->layer == s->layer && w->module == s->module && w->rows == s->out && w->cols == s->in,
                 "result %u is not slot %u", i, i);
        T_ASSERT(w->type == VKL_TYPE_Q4_K && w->size == qbytes(VKL_TYPE_Q4_K, s->out, s->in), "result %u type %u size %llu",
                 i, w->type, (unsigned long long)w->size);
        const vkl_layer_weights *L = &m->layers[s->layer];
        const vkl_weight *bw[VKL_TM_COUNT] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        const float *W = bw[s->module]->t->data;
        double after = residual_of(W, w->bytes, w->type, l->params + s->a_off, l->params + s->b_off, s->out, s->in,
                                   l->r, l->scale);
        T_ASSERT(fabs(after - w->res_after) <= 1e-4 * after, "slot %u: reported %g, recomputed %g", i, w->res_after,
                 after);
        T_ASSERT(w->res_after < w->res_before * sqrt(1.0 - 8.0 / VKL_MIN(s->in, s->out)) * 1.005,
                 "slot %u: %g -> %g", i, w->res_before, w->res_after);
    }
    vkl_loftq_result_free(res);
    free(rep);
    /* 8 bits: Q8_0 everywhere. */
    T_ASSERT(vkl_loftq_init_model(m, l, 8, 1, NULL, &res, &err) == VKL_OK, "%s", err.msg);
    for (uint32_t i = 0; i < res->n; i++)
        T_ASSERT(res->weights[i].type == VKL_TYPE_Q8_0 && res->weights[i].res_after < res->weights[i].res_before,
                 "8-bit slot %u", i);
    vkl_loftq_result_free(res);
    T_ASSERT(vkl_loftq_init_model(m, l, 3, 1, NULL, &res, &err) == VKL_ERR_INPUT && !res &&
                 strstr(err.msg, "loftq_bits 3"), "3 bits: %s", err.msg);
    vkl_lora_free(l);
    vkl_model_free(m);
    return 0;
}

/* A quantized base is refused with a message naming the tensor; an F16 base is accepted. */
static int test_model_types(void) {
    unsetenv("VKL_LOFTQ_SVD");
    const char *types[] = {"q8_0", "f16"};
    for (int t = 0; t < 2; t++) {
        const char *path = make_model(types[t], 1);
        T_ASSERT(path, "vklora-mkmodel failed");
        vkl_model *m = NULL;
        vkl_lora *l = NULL;
        vkl_err err = {0};
        T_ASSERT(vkl_model_load(path, &m, &err) == VKL_OK, "%s", err.msg);
        T_ASSERT(vkl_lora_create(m, VKL_TM_Q | VKL_TM_DOWN, 4, 8, true, &l, &err) == VKL_OK, "%s", err.msg);
        vkl_loftq_result *res = NULL;
        vkl_status st = vkl_loftq_init_model(m, l, 4, 1, NULL, &res, &err);
        if (t == 0) {
            T_ASSERT(st == VKL_ERR_INPUT && !res && strstr(err.msg, "blk.0.attn_q.weight is q8_0") &&
                         strstr(err.msg, "full-precision"), "q8_0 base: %s", err.msg);
        } else {
            T_ASSERT(st == VKL_OK && res->n == 2, "f16 base: %s", err.msg);
            for (uint32_t i = 0; i < res->n; i++)
                T_ASSERT(res->weights[i].res_after < res->weights[i].res_before, "f16 slot %u", i);
            vkl_loftq_result_free(res);
        }
        vkl_lora_free(l);
        vkl_model_free(m);
    }
    return 0;
}

#else
/* A build without LAPACK (-Dloftq=disabled, the MinGW cross build): LoftQ is refused with the reason, not run. */
static int test_refused(void) {
    vkl_err err = {0};
    float W[64 * 32], A[2 * 32], B[64 * 2], U[64 * 2], S[2], Vt[2 * 32];
    uint8_t q[64 * 34];
    for (size_t i = 0; i < VKL_ARRAY_LEN(W); i++) W[i] = t_rng_uniform(-1, 1);
    T_ASSERT(!vkl_loftq_available(), "vkl_loftq_available() in a build without LAPACK");
    T_ASSERT(vkl_lowrank_svd(W, 64, 32, 2, VKL_SVD_AUTO, 1, U, S, Vt, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "without LAPACK"), "svd: %s", err.msg);
    vkl_err_clear(&err);
    T_ASSERT(vkl_loftq_matrix(W, 64, 32, 2, 1.0f, VKL_TYPE_Q8_0, 1, 1, q, A, B, NULL, NULL, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "loftq_config"), "matrix: %s", err.msg);
    return 0;
}
#endif

const vkl_test_case vkl_tests_loftq[] = {
#if !VKL_HAVE_LAPACK
    {"loftq/refused_without_lapack", test_refused},
#else
    {"loftq/residual", test_residual},
    {"loftq/bytes", test_bytes},
    {"loftq/exact_svd", test_matches_exact_svd},
    {"loftq/randomized", test_randomized},
    {"loftq/bad_input", test_bad_input},
    {"loftq/model", test_model},
    {"loftq/model_types", test_model_types},
#endif
    {NULL, NULL},
};
