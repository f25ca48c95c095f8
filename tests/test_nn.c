/* Tests of the transformer ops (src/ops/nn.c + shaders) against the scalar reference (src/ref/nn.c), and of every
 * reference backward against central finite differences of the reference forward in double. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ops/nn.h"
#include "ref/nn.h"
#include "vklora/quant.h"

/* ---- per-case arena: device buffers and host arrays freed after the case, pass or fail ---- */

#define POOL_MAX 64
/* Every tensor sits 12 bytes into its buffer (bindings must round down to the alignment); the attention tests
 * also use 16, which the vec4 tile kernels need. */
static uint64_t PAD_FRONT = 12;
typedef struct tbuf {
    vkl_buffer b;
    uint64_t bytes;
} tbuf;
static tbuf pool[POOL_MAX];
static int n_pool;
static void *hpool[1024];
static int n_hpool;

static void *halloc(size_t bytes) {
    void *p = vkl_calloc(1, bytes ? bytes : 1);
    if (n_hpool < (int)VKL_ARRAY_LEN(hpool)) hpool[n_hpool++] = p;
    return p;
}
static float *hf(size_t n) { return halloc(n * sizeof(float)); }
static double *hd(size_t n) { return halloc(n * sizeof(double)); }

static void pool_free(vkl_vk *vk) {
    for (int i = 0; i < n_pool; i++) vkl_buffer_destroy(vk, &pool[i].b);
    n_pool = 0;
    for (int i = 0; i < n_hpool; i++) free(hpool[i]);
    n_hpool = 0;
}

/* A device tensor holding `bytes` of data (NULL: zeros), or NULL on failure (message printed). */
static tbuf *tb_new(vkl_vk *vk, const void *data, uint64_t bytes) {
    if (n_pool == POOL_MAX) return NULL;
    tbuf *t = &pool[n_pool];
    vkl_err err = {0};
    uint64_t size = PAD_FRONT + bytes + 4;
    if (vkl_buffer_create(vk, size, VKL_MEM_DEVICE, &t->b, &err)) {
        fprintf(stderr, "    buffer: %s\n", err.msg);
        return NULL;
    }
    n_pool++;
    t->bytes = bytes;
    void *z = vkl_calloc(1, size);
    if (data) memcpy((char *)z + PAD_FRONT, data, bytes);
    vkl_status st = vkl_buffer_upload(vk, &t->b, 0, z, size, &err);
    free(z);
    if (st) {
        fprintf(stderr, "    upload: %s\n", err.msg);
        return NULL;
    }
    return t;
}
static vkl_tview tv(const tbuf *t) { return t ? vkl_tv(&t->b, PAD_FRONT) : vkl_tv_none(); }
static bool tb_get(vkl_vk *vk, const tbuf *t, void *dst) {
    vkl_err err = {0};
    if (vkl_buffer_download(vk, &t->b, PAD_FRONT, dst, t->bytes, &err)) {
        fprintf(stderr, "    download: %s\n", err.msg);
        return false;
    }
    return true;
}

static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = t_rng_uniform(lo, hi);
}

/* Runs a case once with the device's binding limit and once with VKLORA_MAX_BIND_BYTES = small_bind (when not
 * 0) so the chunked paths run; the variable is cleared whatever the outcome. */
typedef int (*nn_case)(vkl_vk *vk, vkl_op_cache *c, int chunked);
static int run2(nn_case fn, const char *small_bind) {
    vkl_vk *vk = t_vk();
    if (!vk) return 1;
    vkl_op_cache cache = {0};
    int rc = fn(vk, &cache, 0);
    if (!rc && small_bind) {
        setenv("VKLORA_MAX_BIND_BYTES", small_bind, 1);
        rc = fn(vk, &cache, 1);
        unsetenv("VKLORA_MAX_BIND_BYTES");
    }
    vkl_op_cache_destroy(vk, &cache);
    pool_free(vk);
    return rc;
}

#define T_OP(call)                                                                \
    do {                                                                          \
        vkl_err err_ = {0};                                                       \
        vkl_status st_ = (call);                                                  \
        T_ASSERT(st_ == VKL_OK, "%s", err_.msg);                                  \
    } while (0)
#define T_CLOSE(got, want, n, tol, what)                                                               \
    do {                                                                                               \
        double e_ = t_max_rel_err((got), (want), (n));                                                 \
        T_ASSERT(e_ <= (tol), "%s: max relative error %.3g > %.3g", (what), e_, (double)(tol));        \
    } while (0)
#define T_NEW(var, data, bytes)                                                   \
    tbuf *var = tb_new(vk, (data), (bytes));                                      \
    T_ASSERT(var != NULL, "cannot create the device tensor " #var)

/* ======================================= reference vs finite differences ================================== */

/* Max |a - b| / max|b| for doubles. */
static double rel_err_d(const double *a, const double *b, size_t n) {
    double md = 0, mr = 1e-300;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs(b[i]) > mr) mr = fabs(b[i]);
    }
    return md / mr;
}
static double dot_d(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
static void rnd_d(double *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = t_rng_uniform((float)lo, (float)hi);
}

/* Central differences of a scalar loss over every element of x (h = 1e-5: truncation ~h^2 = 1e-10, rounding
 * ~1e-16/h = 1e-11, both far below the 1e-6 bound). */
typedef double (*loss_fn)(void *ctx);
static void fd_grad(loss_fn f, void *ctx, double *x, size_t n, double *g) {
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = f(ctx);
        x[i] = x0 - h;
        double lm = f(ctx);
        x[i] = x0;
        g[i] = (lp - lm) / (2 * h);
    }
}
#define FD_TOL 1e-6

typedef struct {
    double *x, *w, *R, *y;
    uint32_t rows, n;
} rms_ctx;
static double rms_loss(void *p) {
    rms_ctx *c = p;
    vkl_ref_rmsnorm_f64(c->x, c->w, c->y, NULL, c->rows, c->n, 1e-5);
    return dot_d(c->y, c->R, (size_t)c->rows * c->n);
}

static int test_fd_rmsnorm(void) {
    t_rng_seed(11);
    rms_ctx c = {.rows = 3, .n = 7};
    size_t m = 21;
    c.x = hd(m), c.w = hd(7), c.R = hd(m), c.y = hd(m);
    rnd_d(c.x, m, -2, 2), rnd_d(c.w, 7, 0.5, 1.5), rnd_d(c.R, m, -1, 1);
    double *rstd = hd(3), *dx = hd(m), *dw = hd(7), *fx = hd(m), *fw = hd(7);
    vkl_ref_rmsnorm_f64(c.x, c.w, c.y, rstd, 3, 7, 1e-5);
    vkl_ref_rmsnorm_back_f64(c.x, c.w, rstd, c.R, dx, false, dw, 3, 7);
    fd_grad(rms_loss, &c, c.x, m, fx);
    fd_grad(rms_loss, &c, c.w, 7, fw);
    double ex = rel_err_d(dx, fx, m), ew = rel_err_d(dw, fw, 7);
    T_ASSERT(ex < FD_TOL && ew < FD_TOL, "rmsnorm backward vs finite differences: dx %.3g, dw %.3g", ex, ew);
    pool_free(NULL);
    return 0;
}

typedef struct {
    double *x, *R, *y;
    const int32_t *pos;
    const double *freqs;
    double mscale;
    uint32_t rows, heads, hd, rd;
    bool neox;
} rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    size_t m = (size_t)c->rows * c->heads * c->hd;
    memcpy(c->y, c->x, m * sizeof(double));
    vkl_ref_rope_f64(c->y, c->pos, c->rows, c->heads, c->hd, c->rd, c->neox, c->freqs, c->mscale, false);
    return dot_d(c->y, c->R, m);
}

/* The RoPE backward is the inverse rotation (times mscale) applied to the output gradient: checked on a plain
 * table and on a random non-geometric one with mscale != 1, partial rotary (6 of 10 dims), both layouts. */
static int test_fd_rope(void) {
    t_rng_seed(12);
    static const int32_t pos[3] = {0, 5, 1234};
    double plain[3], rnd[3];
    vkl_rope_freqs_base(10000.0, 6, plain);
    for (int i = 0; i < 3; i++) rnd[i] = exp(t_rng_uniform(-9, 0));
    for (int kind = 0; kind < 4; kind++) {
        bool neox = kind & 1;
        rope_ctx c = {.pos = pos, .freqs = kind & 2 ? rnd : plain, .mscale = kind & 2 ? 1.37 : 1.0, .rows = 3,
                      .heads = 2, .hd = 10, .rd = 6, .neox = neox};
        size_t m = 60;
        c.x = hd(m), c.R = hd(m), c.y = hd(m);
        rnd_d(c.x, m, -1, 1), rnd_d(c.R, m, -1, 1);
        double *g = hd(m), *f = hd(m);
        memcpy(g, c.R, m * sizeof(double));
        vkl_ref_rope_f64(g, pos, 3, 2, 10, 6, neox, c.freqs, c.mscale, true);
        fd_grad(rope_loss, &c, c.x, m, f);
        double e = rel_err_d(g, f, m);
        T_ASSERT(e < FD_TOL, "rope (neox %d, table %d) inverse vs finite differences: %.3g", neox, kind >> 1, e);
    }
    pool_free(NULL);
    return 0;
}

typedef struct {
    vkl_attn_shape s;
    double *q, *k, *v, *R, *out;
    const int32_t *seg;
} attn_ctx;
static double attn_loss(void *p) {
    attn_ctx *c = p;
    vkl_ref_attention_f64(&c->s, c->q, c->k, c->v, c->seg, c->out, NULL);
    return dot_d(c->out, c->R, (size_t)c->s.n_seq * c->s.T * c->s.n_head * c->s.D);
}

/* One shape, plain and with the Gemma 2/3 options: a window of 3 positions (shorter than the first document, the
 * KV-cache prefix partly out of reach), window 1 (keys 0 and 1 are then seen by no query), soft-capping at 1.2 on
 * scores of a few units (tanh far from linear), alone and with the window. */
static int fd_attention_case(uint32_t window, float softcap) {
    /* GQA (4 heads on 2 KV heads), a KV-cache prefix (pos0 2, S 8 > T) and a packing boundary in sequence 1. */
    static const int32_t seg[2 * 5] = {0, 0, 0, 0, 0, 0, 0, 4, 4, 4};
    attn_ctx c = {.s = {.n_seq = 2, .T = 5, .S = 8, .n_head = 4, .n_head_kv = 2, .D = 6, .pos0 = 2,
                        .window = window, .softcap = softcap},
                  .seg = seg};
    c.s.scale = 1.0f / sqrtf(6.0f);
    size_t nq = 2 * 5 * 4 * 6, nkv = 2 * 8 * 2 * 6;
    c.q = hd(nq), c.k = hd(nkv), c.v = hd(nkv), c.R = hd(nq), c.out = hd(nq);
    rnd_d(c.q, nq, -1.5, 1.5), rnd_d(c.k, nkv, -1.5, 1.5), rnd_d(c.v, nkv, -1, 1), rnd_d(c.R, nq, -1, 1);
    double *lse = hd(2 * 4 * 5), *dq = hd(nq), *dk = hd(nkv), *dv = hd(nkv);
    double *fq = hd(nq), *fk = hd(nkv), *fv = hd(nkv);
    vkl_ref_attention_f64(&c.s, c.q, c.k, c.v, seg, c.out, lse);
    vkl_ref_attention_back_f64(&c.s, c.q, c.k, c.v, seg, c.out, lse, c.R, dq, dk, dv);
    fd_grad(attn_loss, &c, c.q, nq, fq);
    fd_grad(attn_loss, &c, c.k, nkv, fk);
    fd_grad(attn_loss, &c, c.v, nkv, fv);
    double eq = rel_err_d(dq, fq, nq), ek = rel_err_d(dk, fk, nkv), ev = rel_err_d(dv, fv, nkv);
    T_ASSERT(eq < FD_TOL && ek < FD_TOL && ev < FD_TOL,
             "attention backward (window %u, softcap %g) vs finite differences: dq %.3g, dk %.3g, dv %.3g", window,
             (double)softcap, eq, ek, ev);
    /* Keys past pos0 + T - 1 are never seen (nor, with window 1, keys 0 and 1 before the first query's position):
     * their gradients must be exactly zero, as the differences say. */
    T_ASSERT(dk[(size_t)(7 * 2) * 6] == 0.0 && fabs(fk[(size_t)(7 * 2) * 6]) < 1e-9, "unseen key got a gradient");
    if (window == 1)
        T_ASSERT(dk[0] == 0.0 && dv[2 * 6] == 0.0 && fabs(fk[0]) < 1e-9, "key outside every window got a gradient");
    pool_free(NULL);
    return 0;
}
static int test_fd_attention(void) {
    t_rng_seed(13);
    static const struct {
        uint32_t window;
        float softcap;
    } var[] = {{0, 0}, {3, 0}, {1, 0}, {0, 1.2f}, {3, 1.2f}};
    for (size_t i = 0; i < VKL_ARRAY_LEN(var); i++)
        if (fd_attention_case(var[i].window, var[i].softcap)) return 1;
    return 0;
}

typedef struct {
    double *g, *u, *R, *h;
    size_t n;
} swi_ctx;
static double swi_loss(void *p) {
    swi_ctx *c = p;
    vkl_ref_swiglu_f64(c->g, c->u, c->h, c->n);
    return dot_d(c->h, c->R, c->n);
}

static int test_fd_swiglu(void) {
    t_rng_seed(14);
    swi_ctx c = {.n = 33};
    c.g = hd(33), c.u = hd(33), c.R = hd(33), c.h = hd(33);
    rnd_d(c.g, 33, -6, 6), rnd_d(c.u, 33, -2, 2), rnd_d(c.R, 33, -1, 1);
    double *dg = hd(33), *du = hd(33), *fg = hd(33), *fu = hd(33);
    vkl_ref_swiglu_back_f64(c.g, c.u, c.R, dg, du, 33);
    fd_grad(swi_loss, &c, c.g, 33, fg);
    fd_grad(swi_loss, &c, c.u, 33, fu);
    double eg = rel_err_d(dg, fg, 33), eu = rel_err_d(du, fu, 33);
    T_ASSERT(eg < FD_TOL && eu < FD_TOL, "swiglu backward vs finite differences: dg %.3g, du %.3g", eg, eu);
    pool_free(NULL);
    return 0;
}

typedef struct {
    double *x, *nll;
    const int32_t *tg;
    uint32_t rows, V;
    double scale;
} xent_ctx;
static double xent_loss(void *p) {
    xent_ctx *c = p;
    vkl_ref_cross_entropy_f64(c->x, c->tg, c->rows, c->V, c->nll, NULL, 1.0);
    double s = 0;
    for (uint32_t r = 0; r < c->rows; r++) s += c->nll[r];
    return s * c->scale;
}

static int test_fd_cross_entropy(void) {
    t_rng_seed(15);
    static const int32_t tg[4] = {3, -1, 0, 10};
    xent_ctx c = {.tg = tg, .rows = 4, .V = 11, .scale = 0.37};
    c.x = hd(44), c.nll = hd(4);
    rnd_d(c.x, 44, -4, 4);
    double *dl = hd(44), *f = hd(44);
    vkl_ref_cross_entropy_f64(c.x, tg, 4, 11, c.nll, dl, c.scale);
    fd_grad(xent_loss, &c, c.x, 44, f);
    double e = rel_err_d(dl, f, 44);
    T_ASSERT(e < FD_TOL, "cross-entropy gradient vs finite differences: %.3g", e);
    for (int i = 11; i < 22; i++) T_ASSERT(dl[i] == 0.0, "ignored row has a gradient at %d", i);
    pool_free(NULL);
    return 0;
}

/* ============================================ device vs reference ========================================= */

/* get_rows: every weight type; rows quantized with the reference quantizer; the shader decodes the same bytes
 * with the same float operations (DQ_PRECISE), so the result must be bit-identical. */
static int case_get_rows(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    static const uint32_t types[] = {VKL_TYPE_F32, VKL_TYPE_F16, VKL_TYPE_BF16, VKL_TYPE_Q8_0,
                                     VKL_TYPE_Q4_0, VKL_TYPE_Q4_K, VKL_TYPE_Q5_K, VKL_TYPE_Q6_K};
    t_rng_seed(20 + chunked);
    for (size_t ti = 0; ti < VKL_ARRAY_LEN(types); ti++) {
        uint32_t type = types[ti];
        const vkl_type_traits *tr = vkl_type_traits_get(type);
        /* Scalar types get a row length that is not a multiple of 4 (the shader's tail path). */
        uint32_t n = tr->block_size == 1 ? 171 : 512, rows = 50, n_ids = 37;
        uint64_t row_bytes;
        T_ASSERT(vkl_type_row_bytes(type, n, &row_bytes), "row bytes");
        float *src = hf((size_t)rows * n);
        fill(src, (size_t)rows * n, -3, 3);
        uint8_t *q = halloc(rows * row_bytes + 4);
        T_ASSERT(vkl_ref_quantize(type, src, q, (uint64_t)rows * n), "quantize %s", tr->name);
        int32_t *ids = halloc(n_ids * sizeof(int32_t));
        for (uint32_t i = 0; i < n_ids; i++) ids[i] = (int32_t)(t_rng_u32() % rows);
        ids[0] = 0, ids[1] = rows - 1, ids[2] = ids[3]; /* first, last and a repeat */
        float *want = hf((size_t)n_ids * n), *got = hf((size_t)n_ids * n);
        T_ASSERT(vkl_ref_get_rows(type, q, ids, n_ids, n, want), "reference get_rows %s", tr->name);
        T_NEW(bt, q, rows * row_bytes);
        T_NEW(bi, ids, n_ids * 4);
        T_NEW(bo, NULL, (uint64_t)n_ids * n * 4);
        T_OP(vkl_op_get_rows(vk, c, type, tv(bt), rows, tv(bi), tv(bo), n_ids, n, &err_));
        T_ASSERT(tb_get(vk, bo, got), "download");
        T_ASSERT(!memcmp(got, want, (size_t)n_ids * n * 4), "get_rows %s (chunked %d) differs from the reference: "
                 "max relative error %.3g", tr->name, chunked, t_max_rel_err(got, want, (size_t)n_ids * n));
    }
    return 0;
}
static int test_get_rows(void) { return run2(case_get_rows, "4096"); }

/* RMSNorm: fp32 sums of 172 squares differ from double by <~ 172 * 2^-24 relative in the worst case (~1e-5),
 * typically far less; out-of-place, in-place (y aliasing x) and with rstd. */
#define NORM_TOL 2e-6
static int case_rmsnorm(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    t_rng_seed(30 + chunked);
    uint32_t rows = 37, n = 172;
    size_t m = (size_t)rows * n;
    float *x = hf(m), *w = hf(n), *y = hf(m), *r = hf(rows), *gy = hf(m), *gr = hf(rows);
    fill(x, m, -2, 2), fill(w, n, 0.5f, 1.5f);
    for (uint32_t i = 0; i < n; i++) x[5 * n + i] *= 1e-3f; /* a small-norm row: eps matters */
    vkl_ref_rmsnorm(x, w, y, r, rows, n, 1e-5f);
    T_NEW(bx, x, m * 4);
    T_NEW(bw, w, n * 4);
    T_NEW(by, NULL, m * 4);
    T_NEW(br, NULL, rows * 4);
    T_OP(vkl_op_rmsnorm(vk, c, tv(bx), tv(bw), tv(by), tv(br), rows, n, 1e-5f, &err_));
    T_ASSERT(tb_get(vk, by, gy) && tb_get(vk, br, gr), "download");
    T_CLOSE(gy, y, m, NORM_TOL, "rmsnorm y");
    T_CLOSE(gr, r, rows, NORM_TOL, "rmsnorm rstd");
    T_OP(vkl_op_rmsnorm(vk, c, tv(bx), tv(bw), tv(bx), vkl_tv_none(), rows, n, 1e-5f, &err_));
    T_ASSERT(tb_get(vk, bx, gy), "download");
    T_CLOSE(gy, y, m, NORM_TOL, "rmsnorm in place");
    return 0;
}
/* Every kernel (VKLORA_NORM): a row per workgroup, and a row per subgroup where the device has one subgroup size,
 * which reads rows as vec4s when the views are 16-byte aligned (views 12 bytes into their buffers, then 16). */
static int norm_variants(nn_case fn, const char *op) {
    static const char *const env[] = {"workgroup", "subgroup", "subgroup"};
    static const char *const kinds[] = {"workgroup", "subgroup", "subgroup_vec4"};
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        setenv("VKLORA_NORM", env[i], 1);
        PAD_FRONT = i == 2 ? 16 : 12;
        vkl_op_variants_reset();
        rc = run2(fn, "2048");
        unsetenv("VKLORA_NORM");
        PAD_FRONT = 12;
        char ran[64];
        bool can = i == 0 || vk->info.min_subgroup_size == vk->info.max_subgroup_size;
        if (!rc && can && strcmp(vkl_op_variants_of(op, ran, sizeof(ran)), kinds[i]))
            T_FAIL("%s: VKLORA_NORM=%s with %s views ran [%s]", op, env[i], i == 2 ? "aligned" : "unaligned", ran);
    }
    return rc;
}
static int test_rmsnorm(void) { return norm_variants(case_rmsnorm, "rmsnorm"); }

static int case_rmsnorm_back(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    t_rng_seed(40 + chunked);
    uint32_t rows = 37, n = 172;
    size_t m = (size_t)rows * n;
    float *x = hf(m), *w = hf(n), *r = hf(rows), *dy = hf(m), *dx0 = hf(m), *dw0 = hf(n);
    float *dx = hf(m), *dw = hf(n), *gdx = hf(m), *gdw = hf(n), *y = hf(m);
    fill(x, m, -2, 2), fill(w, n, 0.5f, 1.5f), fill(dy, m, -1, 1), fill(dx0, m, -1, 1), fill(dw0, n, -1, 1);
    vkl_ref_rmsnorm(x, w, y, r, rows, n, 1e-5f);
    T_NEW(bx, x, m * 4);
    T_NEW(bw, w, n * 4);
    T_NEW(br, r, rows * 4);
    T_NEW(bdy, dy, m * 4);
    for (int acc = 0; acc < 2; acc++) {
        memcpy(dx, dx0, m * 4), memcpy(dw, dw0, n * 4);
        vkl_ref_rmsnorm_back(x, w, r, dy, dx, acc, dw, rows, n);
        T_NEW(bdx, dx0, m * 4);
        T_NEW(bdw, dw0, n * 4);
        T_OP(vkl_op_rmsnorm_back(vk, c, tv(bx), tv(bw), tv(br), tv(bdy), tv(bdx), acc, tv(bdw), rows, n, &err_));
        T_ASSERT(tb_get(vk, bdx, gdx) && tb_get(vk, bdw, gdw), "download");
        T_CLOSE(gdx, dx, m, NORM_TOL, acc ? "rmsnorm_back dx +=" : "rmsnorm_back dx =");
        T_CLOSE(gdw, dw, n, NORM_TOL, "rmsnorm_back dw");
    }
    return 0;
}
static int test_rmsnorm_back(void) { return norm_variants(case_rmsnorm_back, "rmsnorm_back"); }

/* RoPE frequency tables of the variants the op serves: plain base^(-2i/d); Llama 3's factor-scaled ones
 * (factor 8, low/high frequency factors 1/4, original context 8192: Meta's published rule); a random
 * non-geometric table in random order (longrope-like per-pair factors); linear scaling. */
enum { TAB_PLAIN, TAB_LLAMA3, TAB_RANDOM, TAB_LINEAR };
static void rope_table(int kind, double base, uint32_t rd, double *f) {
    vkl_rope_freqs_base(base, rd, f);
    for (uint32_t i = 0; i < rd / 2; i++) {
        if (kind == TAB_LLAMA3) {
            const double factor = 8, lo = 1, hi = 4, orig = 8192;
            double wavelen = 6.283185307179586 / f[i];
            if (wavelen > orig / lo) f[i] /= factor;
            else if (wavelen >= orig / hi) {
                double smooth = (orig / wavelen - lo) / (hi - lo);
                f[i] = (1 - smooth) * f[i] / factor + smooth * f[i];
            }
        } else if (kind == TAB_RANDOM) {
            f[i] = exp(t_rng_uniform(-12, 0.5f));
        } else if (kind == TAB_LINEAR) {
            f[i] *= 0.25;
        }
    }
}

/* RoPE: the shader's float-float angle keeps |cos/sin error| ~2e-7 (see shaders/rope.comp), so each rotated
 * value is within ~4e-7 of max|x|; 2e-6 leaves room for the products and still fails any plain-float angle
 * (4.9e-4 rad at position 8192). Positions reach 8191 and 100000. Every configuration runs forward and inverse
 * against the double reference, the dims past rope_dim must come back bit-identical, and the inverse after the
 * forward must give mscale^2 x. */
#define ROPE_TOL 2e-6
static int case_rope(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    static const struct {
        uint32_t heads, hd, rd;
        double base;
        bool neox;
        int table;
        float mscale;
    } cfg[] = {{8, 64, 64, 10000, false, TAB_PLAIN, 1},      {4, 80, 80, 1000000, true, TAB_PLAIN, 1},
               {3, 8, 8, 10000, false, TAB_PLAIN, 1},        {2, 64, 32, 500000, true, TAB_PLAIN, 1},
               {5, 80, 40, 10000, false, TAB_PLAIN, 1},      {4, 128, 128, 500000, false, TAB_LLAMA3, 1},
               {3, 128, 96, 10000, true, TAB_RANDOM, 1.19f}, {4, 32, 24, 10000, false, TAB_RANDOM, 0.83f},
               {2, 64, 64, 10000, true, TAB_LINEAR, 1.1386f}, {3, 96, 64, 10000, false, TAB_LLAMA3, 1.25f}};
    t_rng_seed(50 + chunked);
    uint32_t rows = 37;
    for (size_t ci = 0; ci < VKL_ARRAY_LEN(cfg); ci++) {
        uint32_t heads = cfg[ci].heads, hdim = cfg[ci].hd, rd = cfg[ci].rd;
        size_t m = (size_t)rows * heads * hdim;
        double *f = hd(rd / 2);
        float *packed = hf(rd);
        rope_table(cfg[ci].table, cfg[ci].base, rd, f);
        vkl_rope_pack_freqs(f, rd / 2, packed);
        T_NEW(bf, packed, rd * 4ull);
        vkl_rope_params rp = {.rope_dim = rd, .neox = cfg[ci].neox, .freqs = tv(bf), .mscale = cfg[ci].mscale};
        int32_t *pos = halloc(rows * sizeof(int32_t));
        for (uint32_t i = 0; i < rows; i++) pos[i] = (int32_t)(t_rng_u32() % 8192);
        pos[0] = 0, pos[1] = 1, pos[2] = 8191, pos[3] = 100000, pos[4] = 4097, pos[5] = 65537;
        T_NEW(bp, pos, rows * 4);
        float *x = hf(m), *want = hf(m), *got = hf(m);
        fill(x, m, -1, 1);
        for (int inverse = 0; inverse < 2; inverse++) {
            memcpy(want, x, m * 4);
            vkl_ref_rope(want, pos, rows, heads, hdim, rd, cfg[ci].neox, f, cfg[ci].mscale, inverse);
            T_NEW(bx, x, m * 4);
            T_OP(vkl_op_rope(vk, c, tv(bx), tv(bp), rows, heads, hdim, &rp, inverse, &err_));
            T_ASSERT(tb_get(vk, bx, got), "download");
            double e = t_max_rel_err(got, want, m);
            T_ASSERT(e <= ROPE_TOL, "rope config %zu (inverse %d, chunked %d): error %.3g > %.3g", ci, inverse,
                     chunked, e, ROPE_TOL);
            for (size_t r = 0; r < (size_t)rows * heads; r++)
                T_ASSERT(!memcmp(got + r * hdim + rd, x + r * hdim + rd, (hdim - rd) * 4ull),
                         "rope config %zu: a dim past rope_dim changed (head row %zu)", ci, r);
        }
        /* the inverse is the transpose: inverse(forward(x)) = mscale^2 x */
        T_NEW(bx, x, m * 4);
        T_OP(vkl_op_rope(vk, c, tv(bx), tv(bp), rows, heads, hdim, &rp, false, &err_));
        T_OP(vkl_op_rope(vk, c, tv(bx), tv(bp), rows, heads, hdim, &rp, true, &err_));
        T_ASSERT(tb_get(vk, bx, got), "download");
        double m2 = (double)cfg[ci].mscale * cfg[ci].mscale;
        for (size_t i = 0; i < m; i++) want[i] = (float)(m2 * x[i]);
        for (size_t r = 0; r < (size_t)rows * heads; r++) /* dims past rope_dim are not scaled */
            memcpy(want + r * hdim + rd, x + r * hdim + rd, (hdim - rd) * 4ull);
        double e = t_max_rel_err(got, want, m);
        T_ASSERT(e <= 2 * ROPE_TOL, "rope config %zu (chunked %d): inverse(forward(x)) differs from mscale^2 x by "
                 "%.3g", ci, chunked, e);
        pool_free(vk); /* the arena holds 64 buffers */
    }
    return 0;
}
static int test_rope(void) { return run2(case_rope, "4096"); }

/* Attention shapes: odd T, GQA ratios 2, 4 and 1, head dims 8, 64, 80 (and 136 on the 256-wide variant), KV-cache
 * decode (T 1, pos0 > 0, S > T), prefill with a cache prefix, and packing boundaries. */
typedef struct {
    uint32_t n_seq, T, S, n_head, n_head_kv, D, pos0;
    int seg_kind;    /* 0 none, 1 packing boundaries */
    uint32_t window; /* vkl_attn_shape.window */
    float softcap;   /* vkl_attn_shape.softcap */
} attn_cfg;
static const attn_cfg attn_cfgs[] = {
    {2, 5, 5, 8, 4, 64, 0, 1, 0, 0},  {1, 67, 67, 8, 2, 80, 0, 1, 0, 0}, {3, 1, 40, 8, 8, 8, 39, 0, 0, 0},
    {2, 5, 12, 4, 2, 64, 7, 1, 0, 0}, {2, 67, 70, 8, 4, 8, 3, 0, 0, 0},  {1, 9, 9, 2, 1, 136, 0, 1, 0, 0},
    {1, 7, 9, 4, 2, 6, 2, 1, 0, 0},   {1, 300, 300, 2, 1, 16, 0, 1, 0, 0},
};
/* Sliding windows and soft-capping (Gemma 2/3): window 1 (a query sees only itself), windows shorter than a packed
 * document (both limits active), a window past T but short of a KV-cache prefix (pos0 > 0), one covering every
 * key, strong soft-capping (cap 1.5 on scores of a few units) alone and with a window, Gemma 2's cap 50 with a
 * window at D 256 on one KV head, windows far shorter than T (whole key blocks skipped; 300 queries also span
 * several subgroups and workgroups), D 6 (scalar kernels only), and Gemma's D 256 on 4 heads per KV head at
 * T 150, which the scalar kernels (on llvmpipe) run in slices of keys and queries. */
static const attn_cfg attn_ws_cfgs[] = {
    {2, 37, 37, 4, 2, 64, 0, 1, 1, 0},    {2, 41, 45, 8, 2, 8, 4, 1, 5, 0},       {1, 23, 30, 4, 4, 20, 7, 0, 25, 0},
    {1, 19, 19, 2, 1, 12, 0, 1, 64, 0},   {2, 29, 29, 4, 2, 64, 0, 0, 0, 1.5f},   {1, 53, 60, 6, 2, 36, 7, 1, 9, 2.5f},
    {1, 37, 37, 4, 1, 256, 0, 1, 13, 50}, {1, 300, 300, 2, 1, 16, 0, 1, 40, 3.0f}, {1, 7, 9, 4, 2, 6, 2, 1, 3, 1.0f},
    {1, 150, 150, 4, 1, 256, 0, 1, 0, 50},
};

/* Kernel modes every attention configuration runs in: the scalar kernels, the tile kernels (16-byte aligned
 * tensors, D % 4 == 0, else the scalar fallback) and auto on unaligned tensors (the fallback). */
typedef struct {
    const char *env; /* VKLORA_ATTN */
    uint64_t pad;    /* PAD_FRONT */
} attn_mode;
static const attn_mode attn_modes[] = {{"scalar", 16}, {"tile", 16}, {"auto", 12}};

/* The kernel family a mode must have used, checked on the pipelines the op created. */
static bool attn_used(const vkl_op_cache *c, const attn_mode *m, uint32_t D) {
    bool tile = strcmp(m->env, "scalar") && m->pad % 16 == 0 && D % 4 == 0;
    bool any = false;
    for (uint32_t i = 0; i < c->n; i++) {
        if (strncmp(c->entries[i].shader, "attention", 9)) continue;
        any = true;
        if ((strstr(c->entries[i].shader, "_tile_") != NULL) != tile) return false;
    }
    return any;
}

typedef struct {
    vkl_attn_shape s;
    size_t nq, nkv, nl;
    float *q, *k, *v, *out, *lse, *dout;
    int32_t *seg;
} attn_data;

static void attn_make(const attn_cfg *cf, attn_data *a) {
    a->s = (vkl_attn_shape){cf->n_seq, cf->T, cf->S, cf->n_head, cf->n_head_kv, cf->D, cf->pos0,
                            1.0f / sqrtf((float)cf->D), cf->window, cf->softcap};
    a->nq = (size_t)cf->n_seq * cf->T * cf->n_head * cf->D;
    a->nkv = (size_t)cf->n_seq * cf->S * cf->n_head_kv * cf->D;
    a->nl = (size_t)cf->n_seq * cf->n_head * cf->T;
    a->q = hf(a->nq), a->k = hf(a->nkv), a->v = hf(a->nkv), a->dout = hf(a->nq);
    a->out = hf(a->nq), a->lse = hf(a->nl);
    /* Scores of a few units, so the softmax is neither flat nor one-hot. */
    fill(a->q, a->nq, -2, 2), fill(a->k, a->nkv, -2, 2), fill(a->v, a->nkv, -1, 1), fill(a->dout, a->nq, -1, 1);
    a->seg = NULL;
    if (cf->seg_kind) {
        a->seg = halloc((size_t)cf->n_seq * cf->T * sizeof(int32_t));
        for (uint32_t b = 0; b < cf->n_seq; b++)
            for (uint32_t t = 0; t < cf->T; t++) {
                /* documents start at query 0, T/3 and 2T/3 (shifted per sequence); keys before pos0 stay visible
                 * to the first document */
                uint32_t start = 0;
                uint32_t b1 = cf->T / 3 + b, b2 = 2 * cf->T / 3 + b;
                if (t >= b2 && b2 > b1) start = b2;
                else if (t >= b1 && b1 > 0) start = b1;
                a->seg[(size_t)b * cf->T + t] = (int32_t)(start ? cf->pos0 + start : 0);
            }
    }
    vkl_ref_attention(&a->s, a->q, a->k, a->v, a->seg, a->out, a->lse);
}

/* Bindings that hold one or two sequences, so n_seq > 1 shapes split. */
static uint64_t attn_small_bind(const attn_cfg *cf) {
    uint64_t q = (uint64_t)cf->T * cf->n_head * cf->D * 4, kv = (uint64_t)cf->S * cf->n_head_kv * cf->D * 4;
    return 2 * VKL_MAX(q, kv) + 256;
}

/* Forward: fp32 dot products of <= 136 terms and an online softmax over <= 72 keys against double; errors stay
 * ~1e-6 of max|out|, bound 1e-5. lse (values ~1..5) to 1e-5 relative. */
#define ATTN_TOL 1e-5
/* One forward case in one kernel mode; frees its buffers and pipelines (so attn_used sees only its own). */
static int attn_fwd_one(vkl_vk *vk, vkl_op_cache *c, const attn_cfg *cf, size_t ci, const attn_mode *mo,
                        int chunked) {
    PAD_FRONT = mo->pad;
    setenv("VKLORA_ATTN", mo->env, 1);
    attn_data a;
    attn_make(cf, &a);
    float *go = hf(a.nq), *gl = hf(a.nl);
    char small[32];
    snprintf(small, sizeof(small), "%llu", (unsigned long long)attn_small_bind(cf));
    int rc = 1;
    tbuf *bq = tb_new(vk, a.q, a.nq * 4), *bk = tb_new(vk, a.k, a.nkv * 4), *bv = tb_new(vk, a.v, a.nkv * 4);
    tbuf *bs = a.seg ? tb_new(vk, a.seg, a.nl / cf->n_head * 4) : NULL;
    tbuf *bo = tb_new(vk, NULL, a.nq * 4), *bl = tb_new(vk, NULL, a.nl * 4);
    if (!bq || !bk || !bv || !bo || !bl || (a.seg && !bs)) goto done;
    vkl_err err = {0};
    if (chunked) setenv("VKLORA_MAX_BIND_BYTES", small, 1);
    vkl_status st = vkl_op_attention(vk, c, &a.s, tv(bq), tv(bk), tv(bv), tv(bs), tv(bo), tv(bl), &err);
    unsetenv("VKLORA_MAX_BIND_BYTES");
    if (st) {
        fprintf(stderr, "    FAIL attention config %zu (%s): %s\n", ci, mo->env, err.msg);
        goto done;
    }
    if (!attn_used(c, mo, a.s.D)) {
        fprintf(stderr, "    FAIL attention config %zu: mode %s (pad %llu) ran the wrong kernel\n", ci, mo->env,
                (unsigned long long)mo->pad);
        goto done;
    }
    if (!tb_get(vk, bo, go) || !tb_get(vk, bl, gl)) goto done;
    double eo = t_max_rel_err(go, a.out, a.nq), el = t_max_rel_err(gl, a.lse, a.nl);
    if (eo > ATTN_TOL || el > ATTN_TOL) {
        fprintf(stderr,
                "    FAIL attention config %zu (%s, chunked %d, window %u, softcap %g): out error %.3g, lse error "
                "%.3g > %.3g\n",
                ci, mo->env, chunked, cf->window, (double)cf->softcap, eo, el, ATTN_TOL);
        goto done;
    }
    rc = 0;
done:
    unsetenv("VKLORA_ATTN");
    PAD_FRONT = 12;
    pool_free(vk);
    vkl_op_cache_destroy(vk, c);
    return rc;
}
/* Every configuration in every kernel mode, whole and split into one-or-two-sequence bindings. */
static int attn_fwd_cases(const attn_cfg *cfgs, size_t n_cfgs, uint32_t seed) {
    vkl_vk *vk = t_vk();
    if (!vk) return 1;
    vkl_op_cache cache = {0};
    int rc = 0;
    t_rng_seed(seed);
    for (size_t mi = 0; mi < VKL_ARRAY_LEN(attn_modes) && !rc; mi++)
        for (size_t ci = 0; ci < n_cfgs && !rc; ci++)
            for (int chunked = 0; chunked < 2 && !rc; chunked++)
                rc = attn_fwd_one(vk, &cache, &cfgs[ci], ci, &attn_modes[mi], chunked);
    return rc;
}
static int test_attention(void) { return attn_fwd_cases(attn_cfgs, VKL_ARRAY_LEN(attn_cfgs), 60); }

/* Backward: dk/dv sum up to 67 queries x 4 heads of products of recomputed probabilities; bound 2e-5 of max|grad|
 * (measured 2-3e-7 on lavapipe). dk/dv start from random values (they accumulate). */
#define ATTN_BACK_TOL 2e-5
static int attn_back_one(vkl_vk *vk, vkl_op_cache *c, const attn_cfg *cf, size_t ci, const attn_mode *mo,
                         int chunked) {
    PAD_FRONT = mo->pad;
    setenv("VKLORA_ATTN", mo->env, 1);
    attn_data a;
    attn_make(cf, &a);
    float *dq = hf(a.nq), *dk = hf(a.nkv), *dv = hf(a.nkv), *dk0 = hf(a.nkv), *dv0 = hf(a.nkv);
    float *gq = hf(a.nq), *gk = hf(a.nkv), *gv = hf(a.nkv);
    fill(dk0, a.nkv, -0.5f, 0.5f), fill(dv0, a.nkv, -0.5f, 0.5f);
    memcpy(dk, dk0, a.nkv * 4), memcpy(dv, dv0, a.nkv * 4);
    vkl_ref_attention_back(&a.s, a.q, a.k, a.v, a.seg, a.out, a.lse, a.dout, dq, dk, dv);
    char small[32];
    snprintf(small, sizeof(small), "%llu", (unsigned long long)attn_small_bind(cf));
    int rc = 1;
    tbuf *bq = tb_new(vk, a.q, a.nq * 4), *bk = tb_new(vk, a.k, a.nkv * 4), *bv = tb_new(vk, a.v, a.nkv * 4);
    tbuf *bs = a.seg ? tb_new(vk, a.seg, a.nl / cf->n_head * 4) : NULL;
    tbuf *bo = tb_new(vk, a.out, a.nq * 4), *bl = tb_new(vk, a.lse, a.nl * 4);
    tbuf *bdo = tb_new(vk, a.dout, a.nq * 4), *bdq = tb_new(vk, NULL, a.nq * 4);
    tbuf *bdk = tb_new(vk, dk0, a.nkv * 4), *bdv = tb_new(vk, dv0, a.nkv * 4);
    /* half the cases give the Di scratch (the tile kernels then pass Di from the dq pass to dk/dv), half not */
    bool use_delta = (ci + (size_t)chunked) % 2 == 1;
    tbuf *bdl = use_delta ? tb_new(vk, NULL, a.nl * 4) : NULL;
    if (!bq || !bk || !bv || !bo || !bl || !bdo || !bdq || !bdk || !bdv || (a.seg && !bs) || (use_delta && !bdl))
        goto done;
    vkl_err err = {0};
    if (chunked) setenv("VKLORA_MAX_BIND_BYTES", small, 1);
    vkl_status st = vkl_op_attention_back(vk, c, &a.s, tv(bq), tv(bk), tv(bv), tv(bs), tv(bo), tv(bl), tv(bdo),
                                          tv(bdq), tv(bdk), tv(bdv), tv(bdl), &err);
    unsetenv("VKLORA_MAX_BIND_BYTES");
    if (st) {
        fprintf(stderr, "    FAIL attention_back config %zu (%s): %s\n", ci, mo->env, err.msg);
        goto done;
    }
    if (!attn_used(c, mo, a.s.D)) {
        fprintf(stderr, "    FAIL attention_back config %zu: mode %s (pad %llu) ran the wrong kernel\n", ci, mo->env,
                (unsigned long long)mo->pad);
        goto done;
    }
    if (!tb_get(vk, bdq, gq) || !tb_get(vk, bdk, gk) || !tb_get(vk, bdv, gv)) goto done;
    double eq = t_max_rel_err(gq, dq, a.nq), ek = t_max_rel_err(gk, dk, a.nkv), ev = t_max_rel_err(gv, dv, a.nkv);
    if (eq > ATTN_BACK_TOL || ek > ATTN_BACK_TOL || ev > ATTN_BACK_TOL) {
        fprintf(stderr,
                "    FAIL attention_back config %zu (%s, chunked %d, window %u, softcap %g): dq %.3g, dk %.3g, dv "
                "%.3g > %.3g\n",
                ci, mo->env, chunked, cf->window, (double)cf->softcap, eq, ek, ev, ATTN_BACK_TOL);
        goto done;
    }
    rc = 0;
done:
    unsetenv("VKLORA_ATTN");
    PAD_FRONT = 12;
    pool_free(vk);
    vkl_op_cache_destroy(vk, c);
    return rc;
}
static int attn_back_cases(const attn_cfg *cfgs, size_t n_cfgs, uint32_t seed) {
    vkl_vk *vk = t_vk();
    if (!vk) return 1;
    vkl_op_cache cache = {0};
    int rc = 0;
    t_rng_seed(seed);
    for (size_t mi = 0; mi < VKL_ARRAY_LEN(attn_modes) && !rc; mi++)
        for (size_t ci = 0; ci < n_cfgs && !rc; ci++)
            for (int chunked = 0; chunked < 2 && !rc; chunked++)
                rc = attn_back_one(vk, &cache, &cfgs[ci], ci, &attn_modes[mi], chunked);
    return rc;
}
static int test_attention_back(void) { return attn_back_cases(attn_cfgs, VKL_ARRAY_LEN(attn_cfgs), 70); }

/* Sliding window and soft-capping, forward and backward, every kernel mode. */
static int test_attention_window_softcap(void) {
    return attn_fwd_cases(attn_ws_cfgs, VKL_ARRAY_LEN(attn_ws_cfgs), 61) ||
           attn_back_cases(attn_ws_cfgs, VKL_ARRAY_LEN(attn_ws_cfgs), 71);
}

/* Gemma-3-1B attention at training length: 4 heads on 1 KV head, D 256, T 512, one sequence, in the default
 * kernels on 16-byte aligned tensors (as the trainer's activations), forward and backward against the reference:
 * a global layer (window 0), a local one (window 512, which at T 512 reaches every key) and a window shorter than
 * T. On llvmpipe this also shows that the shapes fit its loop limit. A softmax over up to 512 keys of dot products
 * of 256 terms: same bounds as the small shapes (measured errors below them). */
static int test_attention_gemma3(void) {
    vkl_vk *vk = t_vk();
    if (!vk) return 1;
    vkl_op_cache cache = {0};
    static const attn_mode mo = {"auto", 16};
    static const attn_cfg cfgs[] = {
        {1, 512, 512, 4, 1, 256, 0, 0, 0, 0}, {1, 512, 512, 4, 1, 256, 0, 0, 512, 0}, {1, 512, 512, 4, 1, 256, 0, 1, 96, 0}};
    t_rng_seed(62);
    for (size_t ci = 0; ci < VKL_ARRAY_LEN(cfgs); ci++)
        if (attn_fwd_one(vk, &cache, &cfgs[ci], ci, &mo, 0) || attn_back_one(vk, &cache, &cfgs[ci], ci, &mo, 0))
            return 1;
    /* The scalar fallback (unaligned tensors) runs the global layer too: on llvmpipe in 5 key slices (forward),
     * 7 (dq) and 25 query slices (dk/dv). */
    static const attn_mode scalar = {"scalar", 16};
    if (attn_fwd_one(vk, &cache, &cfgs[0], 0, &scalar, 0) || attn_back_one(vk, &cache, &cfgs[0], 0, &scalar, 0))
        return 1;
    return 0;
}

/* SwiGLU and add: a handful of float operations per element against double; 1e-6 of max. g spans +-12 and
 * includes +-100 (exp overflow side). */
#define ELT_TOL 1e-6
static int case_swiglu(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    t_rng_seed(80 + chunked);
    size_t n = 37 * 172;
    float *g = hf(n), *u = hf(n), *dh = hf(n), *h = hf(n), *dg = hf(n), *du = hf(n), *got = hf(n), *got2 = hf(n);
    fill(g, n, -12, 12), fill(u, n, -2, 2), fill(dh, n, -1, 1);
    g[0] = -100, g[1] = 100;
    vkl_ref_swiglu(g, u, h, n);
    vkl_ref_swiglu_back(g, u, dh, dg, du, n);
    T_NEW(bg, g, n * 4);
    T_NEW(bu, u, n * 4);
    T_NEW(bdh, dh, n * 4);
    T_NEW(bh, NULL, n * 4);
    T_OP(vkl_op_swiglu(vk, c, tv(bg), tv(bu), tv(bh), n, &err_));
    T_ASSERT(tb_get(vk, bh, got), "download");
    T_CLOSE(got, h, n, ELT_TOL, "swiglu");
    /* backward in place: dg over g, du over u */
    T_OP(vkl_op_swiglu_back(vk, c, tv(bg), tv(bu), tv(bdh), tv(bg), tv(bu), n, &err_));
    T_ASSERT(tb_get(vk, bg, got) && tb_get(vk, bu, got2), "download");
    T_CLOSE(got, dg, n, ELT_TOL, "swiglu_back dg");
    T_CLOSE(got2, du, n, ELT_TOL, "swiglu_back du");
    return 0;
}
/* The elementwise ops run their vec4 build ("<shader>_v4") when the count and every view offset are multiples of 4
 * elements, else the scalar one: each case runs both ways (views 12 bytes into their buffers, then 16 with the
 * count rounded down to a multiple of 4), whole and in 1 KiB bindings, and checks which ran. */
static bool ELT_ROUND4 = false;
static int run_elt(nn_case fn, const char *op) {
    int rc = 0;
    for (int v4 = 0; v4 < 2 && !rc; v4++) {
        PAD_FRONT = v4 ? 16 : 12;
        ELT_ROUND4 = v4;
        vkl_op_variants_reset();
        rc = run2(fn, "1024");
        char used[64];
        vkl_op_variants_of(op, used, sizeof(used));
        if (!rc && strcmp(used, v4 ? "vec4" : "scalar")) {
            fprintf(stderr, "    FAIL %s: %s views ran \"%s\"\n", op, v4 ? "aligned" : "unaligned", used);
            rc = 1;
        }
    }
    PAD_FRONT = 12;
    ELT_ROUND4 = false;
    return rc;
}
static int test_swiglu(void) { return run_elt(case_swiglu, "swiglu") || run_elt(case_swiglu, "swiglu_back"); }

static int case_add(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    t_rng_seed(90 + chunked);
    size_t n = 37 * 172 + 3;
    if (ELT_ROUND4) n -= n % 4;
    float *a = hf(n), *b = hf(n), *y = hf(n), *got = hf(n);
    fill(a, n, -2, 2), fill(b, n, -2, 2);
    vkl_ref_add(a, b, -0.37f, y, n);
    T_NEW(ba, a, n * 4);
    T_NEW(bb, b, n * 4);
    T_OP(vkl_op_add(vk, c, tv(ba), tv(bb), -0.37f, tv(ba), n, &err_)); /* in place over a */
    T_ASSERT(tb_get(vk, ba, got), "download");
    T_CLOSE(got, y, n, ELT_TOL, "add");
    return 0;
}
static int test_add(void) { return run_elt(case_add, "add"); }

/* Elementwise closeness for values of any magnitude: |got - want| <= tol * max(|want|, floor), NaN fails. */
static double worst_rel(const float *got, const float *want, size_t n, double floor_) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]) / fmax(fabs((double)want[i]), floor_);
        if (!(d <= w)) w = d == d ? d : INFINITY;
    }
    return w;
}

/* GEGLU: g spans +-12 (the gelu tail and the linear side) against double: a few float operations per element,
 * within ~1.2e-7 of max on lavapipe; 1e-6 bound. A second set of magnitudes (+-9.99, +-10, +-100, +-1e30, +-3e38,
 * tiny ones) must stay finite and within 1e-5 elementwise (the float exponent 2u, up to 87, carries ~|2u| * 6e-8
 * absolute error, so the tails are relatively less exact; measured 1.5e-6). */
#define GEGLU_TOL 1e-6
static int case_geglu(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    t_rng_seed(110 + chunked);
    size_t n = 37 * 172 + 5;
    float *g = hf(n), *u = hf(n), *dh = hf(n), *h = hf(n), *dg = hf(n), *du = hf(n), *got = hf(n), *got2 = hf(n);
    fill(g, n, -12, 12), fill(u, n, -2, 2), fill(dh, n, -1, 1);
    vkl_ref_geglu(g, u, h, n);
    vkl_ref_geglu_back(g, u, dh, dg, du, n);
    T_NEW(bg, g, n * 4);
    T_NEW(bu, u, n * 4);
    T_NEW(bdh, dh, n * 4);
    T_NEW(bh, NULL, n * 4);
    T_OP(vkl_op_geglu(vk, c, tv(bg), tv(bu), tv(bh), n, &err_));
    T_ASSERT(tb_get(vk, bh, got), "download");
    T_CLOSE(got, h, n, GEGLU_TOL, "geglu");
    /* in place over u */
    T_OP(vkl_op_geglu(vk, c, tv(bg), tv(bu), tv(bu), n, &err_));
    T_ASSERT(tb_get(vk, bu, got), "download");
    T_CLOSE(got, h, n, GEGLU_TOL, "geglu in place");
    /* backward in place: dg over g, du over u */
    T_NEW(bu2, u, n * 4);
    T_OP(vkl_op_geglu_back(vk, c, tv(bg), tv(bu2), tv(bdh), tv(bg), tv(bu2), n, &err_));
    T_ASSERT(tb_get(vk, bg, got) && tb_get(vk, bu2, got2), "download");
    T_CLOSE(got, dg, n, GEGLU_TOL, "geglu_back dg");
    T_CLOSE(got2, du, n, GEGLU_TOL, "geglu_back du");
    /* the device backward against central differences of the device forward (elementwise, so one perturbation
     * of every element at once): delta 1e-2 gives truncation ~2e-5 and rounding ~7e-5 of max|dg| ~2.3 */
    {
        const float delta = 1e-2f;
        float *gp = hf(n), *gm = hf(n), *hp_ = hf(n), *hm = hf(n), *fd = hf(n);
        for (size_t i = 0; i < n; i++) gp[i] = g[i] + delta, gm[i] = g[i] - delta;
        T_NEW(bgp, gp, n * 4);
        T_NEW(bgm, gm, n * 4);
        T_NEW(bu3, u, n * 4);
        T_OP(vkl_op_geglu(vk, c, tv(bgp), tv(bu3), tv(bgp), n, &err_));
        T_OP(vkl_op_geglu(vk, c, tv(bgm), tv(bu3), tv(bgm), n, &err_));
        T_ASSERT(tb_get(vk, bgp, hp_) && tb_get(vk, bgm, hm), "download");
        for (size_t i = 0; i < n; i++)
            fd[i] = (float)((double)dh[i] * ((double)hp_[i] - hm[i]) / ((double)gp[i] - gm[i]));
        T_CLOSE(got, fd, n, 5e-4, "geglu_back dg vs finite differences of the device forward");
    }

    static const float big[] = {-3e38f, 3e38f,  -1e30f, 1e30f, -1e5f,  1e5f,  -100.0f, 100.0f, -10.0f,
                                10.0f,  -9.99f, 9.99f,  -5.0f, 5.0f,   -1e-3f, 1e-3f, -1e-20f, 1e-20f,
                                0.0f,   -0.7f,  0.7f,   -3.0f, 3.0f,   -12.5f, 12.5f};
    size_t nb = VKL_ARRAY_LEN(big);
    float *bu_ = hf(nb), *bdh_ = hf(nb), *wh = hf(nb), *wdg = hf(nb), *wdu = hf(nb);
    float *gh = hf(nb), *gdg = hf(nb), *gdu = hf(nb);
    fill(bu_, nb, 0.5f, 1), fill(bdh_, nb, 0.5f, 1);
    vkl_ref_geglu(big, bu_, wh, nb);
    vkl_ref_geglu_back(big, bu_, bdh_, wdg, wdu, nb);
    T_NEW(xg, big, nb * 4);
    T_NEW(xu, bu_, nb * 4);
    T_NEW(xdh, bdh_, nb * 4);
    T_NEW(xh, NULL, nb * 4);
    T_NEW(xdg, NULL, nb * 4);
    T_NEW(xdu, NULL, nb * 4);
    T_OP(vkl_op_geglu(vk, c, tv(xg), tv(xu), tv(xh), nb, &err_));
    T_OP(vkl_op_geglu_back(vk, c, tv(xg), tv(xu), tv(xdh), tv(xdg), tv(xdu), nb, &err_));
    T_ASSERT(tb_get(vk, xh, gh) && tb_get(vk, xdg, gdg) && tb_get(vk, xdu, gdu), "download");
    /* floor 1e-30: the tails below that (gelu(-10) ~ 2e-37) may flush to zero */
    double eh = worst_rel(gh, wh, nb, 1e-30), edg = worst_rel(gdg, wdg, nb, 1e-30);
    double edu = worst_rel(gdu, wdu, nb, 1e-30);
    T_ASSERT(eh <= 1e-5 && edg <= 1e-5 && edu <= 1e-5,
             "geglu at large and small magnitudes: h %.3g, dg %.3g, du %.3g (elementwise relative)", eh, edg, edu);
    return 0;
}
static int test_geglu(void) { return run2(case_geglu, "1024"); }

/* Soft-capping at cap 30 (Gemma 2's final logits) and 50: x spans +-150 against double, within 1e-6 of max;
 * elementwise 1e-6 relative on tiny, boundary (|x/cap| = 0.625) and huge inputs, which must stay finite.
 * The backward from the device's y, in place over dy. */
static int case_softcap(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    t_rng_seed(120 + chunked);
    static const float caps[] = {30.0f, 50.0f};
    for (size_t k = 0; k < VKL_ARRAY_LEN(caps); k++) {
        float cap = caps[k];
        size_t n = 37 * 172 + 1;
        float *x = hf(n), *y = hf(n), *dy = hf(n), *dx = hf(n), *got = hf(n);
        fill(x, n, -150, 150), fill(dy, n, -1, 1);
        static const float special[] = {-3e38f, 3e38f, -1e30f, 1e30f, 1e-30f, -1e-6f, 2e-3f, 0.0f, 600.0f};
        for (size_t i = 0; i < VKL_ARRAY_LEN(special); i++) x[i] = special[i];
        for (int i = 0; i < 8; i++) x[16 + i] = cap * (0.625f + (i - 4) * 1e-7f); /* the branch boundary */
        for (int i = 0; i < 64; i++) x[32 + i] = cap * t_rng_uniform(-0.7f, 0.7f) * (i % 2 ? 1e-4f : 1.0f);
        vkl_ref_softcap(x, y, n, cap);
        T_NEW(bx, x, n * 4);
        T_NEW(by, NULL, n * 4);
        T_OP(vkl_op_softcap(vk, c, tv(bx), tv(by), n, cap, &err_));
        T_ASSERT(tb_get(vk, by, got), "download");
        T_CLOSE(got, y, n, 1e-6, "softcap");
        double e = worst_rel(got, y, 96, 1e-37);
        T_ASSERT(e <= 1e-6, "softcap (cap %g) on special, boundary and small inputs: elementwise error %.3g", cap, e);
        /* in place */
        T_OP(vkl_op_softcap(vk, c, tv(bx), tv(bx), n, cap, &err_));
        T_ASSERT(tb_get(vk, bx, got), "download");
        T_CLOSE(got, y, n, 1e-6, "softcap in place");
        /* backward from the device's capped output (now in bx), dx over dy */
        vkl_ref_softcap_back(got, dy, dx, n, cap);
        T_NEW(bdy, dy, n * 4);
        T_OP(vkl_op_softcap_back(vk, c, tv(bx), tv(bdy), tv(bdy), n, cap, &err_));
        T_ASSERT(tb_get(vk, bdy, got), "download");
        T_CLOSE(got, dx, n, 1e-6, "softcap_back");
        /* the device backward against central differences of the device forward (one perturbation of every
         * element at once): y's rounding (~1e-5 at |y| ~ cap) over 2 delta = 4e-3 cap gives ~5e-5 of max|dx| ~1,
         * truncation delta^2 / cap^2 ~ 1e-6 */
        const float delta = 2e-3f * cap;
        float *xp = hf(n), *xm = hf(n), *yp = hf(n), *ym = hf(n), *fd = hf(n), *gdx = hf(n);
        for (size_t i = 0; i < n; i++) xp[i] = x[i] + delta, xm[i] = x[i] - delta;
        T_NEW(bxp, xp, n * 4);
        T_NEW(bxm, xm, n * 4);
        T_NEW(bys, y, n * 4);
        T_NEW(bdy2, dy, n * 4);
        T_OP(vkl_op_softcap(vk, c, tv(bxp), tv(bxp), n, cap, &err_));
        T_OP(vkl_op_softcap(vk, c, tv(bxm), tv(bxm), n, cap, &err_));
        T_OP(vkl_op_softcap_back(vk, c, tv(bys), tv(bdy2), tv(bdy2), n, cap, &err_));
        T_ASSERT(tb_get(vk, bxp, yp) && tb_get(vk, bxm, ym) && tb_get(vk, bdy2, gdx), "download");
        for (size_t i = 0; i < n; i++) {
            double span = (double)xp[i] - xm[i];
            fd[i] = span > 0 ? (float)((double)dy[i] * ((double)yp[i] - ym[i]) / span) : 0.0f;
        }
        T_CLOSE(gdx, fd, n, 5e-4, "softcap_back vs finite differences of the device forward");
    }
    return 0;
}
static int test_softcap(void) { return run2(case_softcap, "1024"); }

/* Scaling: one float product per element, so exact up to the final rounding (Gemma's sqrt(n_embd) and back). */
static int case_scale(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    t_rng_seed(130 + chunked);
    size_t n = 37 * 172 + 3;
    if (ELT_ROUND4) n -= n % 4;
    float s = sqrtf(2304.0f);
    float *x = hf(n), *y = hf(n), *got = hf(n);
    fill(x, n, -3, 3);
    vkl_ref_scale(x, y, n, s);
    T_NEW(bx, x, n * 4);
    T_NEW(by, NULL, n * 4);
    T_OP(vkl_op_scale(vk, c, tv(bx), tv(by), n, s, &err_));
    T_ASSERT(tb_get(vk, by, got), "download");
    T_ASSERT(!memcmp(got, y, n * 4), "scale differs from the reference: %.3g", t_max_rel_err(got, y, n));
    T_OP(vkl_op_scale(vk, c, tv(bx), tv(bx), n, s, &err_)); /* in place */
    T_ASSERT(tb_get(vk, bx, got), "download");
    T_ASSERT(!memcmp(got, y, n * 4), "scale in place differs from the reference");
    return 0;
}
static int test_scale(void) { return run_elt(case_scale, "scale"); }

/* Row scaling by a factor per row (attention temperature by position), odd shapes, in place too. */
static int case_scale_rows(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    t_rng_seed(140 + chunked);
    uint32_t rows = 53, n = 3 * 40 + 7;
    size_t m = (size_t)rows * n;
    float *x = hf(m), *f = hf(rows), *y = hf(m), *got = hf(m);
    fill(x, m, -3, 3), fill(f, rows, 0.5f, 2.5f);
    vkl_ref_scale_rows(x, f, y, rows, n);
    T_NEW(bx, x, m * 4);
    T_NEW(bf, f, rows * 4);
    T_NEW(by, NULL, m * 4);
    T_OP(vkl_op_scale_rows(vk, c, tv(bx), tv(bf), tv(by), rows, n, &err_));
    T_ASSERT(tb_get(vk, by, got), "download");
    T_ASSERT(!memcmp(got, y, m * 4), "scale_rows differs from the reference: %.3g", t_max_rel_err(got, y, m));
    T_OP(vkl_op_scale_rows(vk, c, tv(bx), tv(bf), tv(bx), rows, n, &err_)); /* in place */
    T_ASSERT(tb_get(vk, bx, got), "download");
    T_ASSERT(!memcmp(got, y, m * 4), "scale_rows in place differs from the reference");
    return 0;
}
static int test_scale_rows(void) { return run2(case_scale_rows, "2048"); }

/* Cross-entropy: fp32 sums of V exponentials (each lane sums V/256 terms, then a tree): nll within ~1e-6
 * relative, dlogits within 1e-6 of max. Rows: ignored targets, a row of large logits, and (unchunked) a
 * 151936-wide vocabulary. The gradient is also written in place over the logits. */
#define XENT_TOL 2e-6
static int case_xent(vkl_vk *vk, vkl_op_cache *c, int chunked) {
    t_rng_seed(100 + chunked);
    static const uint32_t Vs[] = {1000, 151936};
    for (size_t vi = 0; vi < (chunked ? 1u : 2u); vi++) {
        uint32_t V = Vs[vi], rows = vi ? 3 : 37;
        size_t m = (size_t)rows * V;
        float *x = hf(m), *nll = hf(rows), *dl = hf(m), *gn = hf(rows), *gd = hf(m);
        int32_t *tg = halloc(rows * sizeof(int32_t));
        fill(x, m, -5, 5);
        for (uint32_t r = 0; r < rows; r++) tg[r] = (int32_t)(t_rng_u32() % V);
        tg[1] = -1;
        for (uint32_t i = 0; i < V; i++) x[2 * (size_t)V + i] += 80.0f; /* exp without the max would overflow */
        if (rows > 5) tg[5] = -100;
        vkl_ref_cross_entropy(x, tg, rows, V, nll, dl, 1.0f / 33);
        T_NEW(bx, x, m * 4);
        T_NEW(bt, tg, rows * 4);
        T_NEW(bn, NULL, rows * 4);
        T_NEW(bd, NULL, m * 4);
        T_OP(vkl_op_cross_entropy(vk, c, tv(bx), tv(bt), rows, V, tv(bn), tv(bd), 1.0f / 33, &err_));
        T_ASSERT(tb_get(vk, bn, gn) && tb_get(vk, bd, gd), "download");
        T_CLOSE(gn, nll, rows, XENT_TOL, "cross_entropy nll");
        T_CLOSE(gd, dl, m, XENT_TOL, "cross_entropy dlogits");
        T_ASSERT(gn[1] == 0.0f, "ignored row has nll %g", gn[1]);
        /* in place, gradient only */
        T_OP(vkl_op_cross_entropy(vk, c, tv(bx), tv(bt), rows, V, vkl_tv_none(), tv(bx), 1.0f / 33, &err_));
        T_ASSERT(tb_get(vk, bx, gd), "download");
        T_CLOSE(gd, dl, m, XENT_TOL, "cross_entropy dlogits in place");
    }
    return 0;
}
static int test_cross_entropy(void) { return run2(case_xent, "8192"); }

/* Bad arguments are input errors with a message, never a crash or a dispatch. */
static int test_errors(void) {
    vkl_vk *vk = t_vk();
    if (!vk) return 1;
    vkl_op_cache cache = {0};
    int rc = 1;
    tbuf *b = tb_new(vk, NULL, 4096);
    if (!b) goto done;
    vkl_err err = {0};
    vkl_attn_shape s = {1, 4, 4, 6, 4, 8, 0, 0.35f, 0, 0};
    if (vkl_op_attention(vk, &cache, &s, tv(b), tv(b), tv(b), vkl_tv_none(), tv(b), vkl_tv_none(), &err) !=
            VKL_ERR_INPUT || !strstr(err.msg, "n_head_kv")) {
        fprintf(stderr, "    FAIL: attention with 6 heads on 4 KV heads: %s\n", err.msg);
        goto done;
    }
    vkl_err_clear(&err);
    s = (vkl_attn_shape){1, 4, 3, 4, 4, 8, 0, 0.35f, 0, 0};
    if (vkl_op_attention(vk, &cache, &s, tv(b), tv(b), tv(b), vkl_tv_none(), tv(b), vkl_tv_none(), &err) !=
        VKL_ERR_INPUT) {
        fprintf(stderr, "    FAIL: attention with T > S accepted\n");
        goto done;
    }
    vkl_err_clear(&err);
    s = (vkl_attn_shape){1, 4, 4, 4, 4, 8, 0, 0.35f, 0, -50.0f};
    if (vkl_op_attention(vk, &cache, &s, tv(b), tv(b), tv(b), vkl_tv_none(), tv(b), vkl_tv_none(), &err) !=
            VKL_ERR_INPUT || !strstr(err.msg, "softcap")) {
        fprintf(stderr, "    FAIL: attention with softcap -50 accepted: %s\n", err.msg);
        goto done;
    }
    vkl_err_clear(&err);
    if (vkl_op_rmsnorm(vk, &cache, tv(b), tv(b), tv(b), vkl_tv_none(), 100, 100, 1e-5f, &err) != VKL_ERR_INPUT ||
        !strstr(err.msg, "do not fit")) {
        fprintf(stderr, "    FAIL: rmsnorm past the end of a buffer: %s\n", err.msg);
        goto done;
    }
    vkl_err_clear(&err);
    vkl_rope_params rp = {.rope_dim = 7, .freqs = tv(b), .mscale = 1.0f};
    if (vkl_op_rope(vk, &cache, tv(b), tv(b), 2, 2, 8, &rp, false, &err) != VKL_ERR_INPUT) {
        fprintf(stderr, "    FAIL: rope with an odd rope_dim accepted\n");
        goto done;
    }
    vkl_err_clear(&err);
    rp = (vkl_rope_params){.rope_dim = 8, .freqs = vkl_tv_none(), .mscale = 1.0f};
    if (vkl_op_rope(vk, &cache, tv(b), tv(b), 2, 2, 8, &rp, false, &err) != VKL_ERR_INPUT ||
        !strstr(err.msg, "freqs")) {
        fprintf(stderr, "    FAIL: rope without a frequency table: %s\n", err.msg);
        goto done;
    }
    vkl_err_clear(&err);
    rp = (vkl_rope_params){.rope_dim = 8, .freqs = vkl_tv(&b->b, b->b.size - 16), .mscale = 1.0f};
    if (vkl_op_rope(vk, &cache, tv(b), tv(b), 2, 2, 8, &rp, false, &err) != VKL_ERR_INPUT ||
        !strstr(err.msg, "freqs")) {
        fprintf(stderr, "    FAIL: rope with a frequency table past the end of its buffer: %s\n", err.msg);
        goto done;
    }
    vkl_err_clear(&err);
    if (vkl_op_softcap(vk, &cache, tv(b), tv(b), 4, 0.0f, &err) != VKL_ERR_INPUT || !strstr(err.msg, "cap")) {
        fprintf(stderr, "    FAIL: softcap with cap 0: %s\n", err.msg);
        goto done;
    }
    vkl_err_clear(&err);
    if (vkl_op_scale_rows(vk, &cache, tv(b), vkl_tv(&b->b, b->b.size - 8), tv(b), 4, 3, &err) != VKL_ERR_INPUT ||
        !strstr(err.msg, "factors")) {
        fprintf(stderr, "    FAIL: scale_rows with a short factor vector: %s\n", err.msg);
        goto done;
    }
    vkl_err_clear(&err);
    if (vkl_op_get_rows(vk, &cache, VKL_TYPE_Q4_K, tv(b), 1, tv(b), tv(b), 1, 100, &err) != VKL_ERR_INPUT) {
        fprintf(stderr, "    FAIL: get_rows with a row length that is not a multiple of 256 accepted\n");
        goto done;
    }
    vkl_err_clear(&err);
    if (vkl_op_add(vk, &cache, vkl_tv(&b->b, 2), tv(b), 1.0f, tv(b), 4, &err) != VKL_ERR_INPUT) {
        fprintf(stderr, "    FAIL: add at an unaligned offset accepted\n");
        goto done;
    }
    rc = 0;
done:
    vkl_op_cache_destroy(vk, &cache);
    pool_free(vk);
    return rc;
}

/* llvmpipe stops an invocation's loops after 65535 iterations in total: a shape past that must be split or refused
 * with a message, never computed wrongly. The scalar kernel at T = 600, D = 64 would need ~77k: it goes in key
 * slices merged through lse, so without lse it is refused. */
static int test_attention_loop_limit(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    if (!vk->info.max_loop_iterations) return 0; /* a GPU driver without the limit */
    vkl_err err = {0};
    vkl_attn_shape s = {.n_seq = 1, .T = 600, .S = 600, .n_head = 2, .n_head_kv = 1, .D = 64, .scale = 0.125f};
    uint64_t nq = (uint64_t)s.T * s.n_head * s.D, nkv = (uint64_t)s.S * s.n_head_kv * s.D;
    vkl_buffer q, kv, o;
    T_ASSERT(!vkl_buffer_create(vk, nq * 4, VKL_MEM_DEVICE, &q, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, nkv * 4, VKL_MEM_DEVICE, &kv, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, nq * 4, VKL_MEM_DEVICE, &o, &err), "%s", err.msg);
    vkl_op_cache c = {0};
    setenv("VKLORA_ATTN", "scalar", 1);
    vkl_status st = vkl_op_attention(vk, &c, &s, vkl_tv(&q, 0), vkl_tv(&kv, 0), vkl_tv(&kv, 0), vkl_tv_none(),
                                     vkl_tv(&o, 0), vkl_tv_none(), &err);
    unsetenv("VKLORA_ATTN");
    T_ASSERT(st == VKL_ERR_INPUT && strstr(err.msg, "lse"), "scalar at T=600, D=64 without lse: %s", err.msg);
    /* the tile kernel runs the same shape within the limit */
    vkl_err_clear(&err);
    T_ASSERT(!vkl_op_attention(vk, &c, &s, vkl_tv(&q, 0), vkl_tv(&kv, 0), vkl_tv(&kv, 0), vkl_tv_none(),
                               vkl_tv(&o, 0), vkl_tv_none(), &err),
             "%s", err.msg);
    vkl_op_cache_destroy(vk, &c);
    vkl_buffer_destroy(vk, &q), vkl_buffer_destroy(vk, &kv), vkl_buffer_destroy(vk, &o);
    /* A sliding window bounds the keys each invocation walks: the scalar kernels run T = 600 with window 64 in one
     * slice, and the tile kernels, refused at 70000 tokens, run them with window 100; forward and backward match
     * the reference (so the skipped blocks were the ones outside every window). */
    t_rng_seed(63);
    static const attn_mode scalar = {"scalar", 16}, tile = {"tile", 16};
    /* ... and with lse the scalar kernels run it in slices: forward 2 key slices, dq 2, dk/dv 4 query slices */
    static const attn_cfg t600 = {1, 600, 600, 2, 1, 64, 0, 1, 0, 0}, win600 = {1, 600, 600, 2, 1, 64, 0, 1, 64, 0};
    T_ASSERT(!attn_fwd_one(vk, &c, &t600, 0, &scalar, 0) && !attn_back_one(vk, &c, &t600, 0, &scalar, 0),
             "scalar kernels at T = 600 in slices");
    T_ASSERT(!attn_fwd_one(vk, &c, &win600, 1, &scalar, 0) && !attn_back_one(vk, &c, &win600, 1, &scalar, 0),
             "scalar kernels at T = 600 with window 64");
    attn_cfg long_ctx = {1, 70000, 70000, 2, 1, 4, 0, 1, 0, 0};
    s = (vkl_attn_shape){.n_seq = 1, .T = long_ctx.T, .S = long_ctx.S, .n_head = 2, .n_head_kv = 1, .D = 4,
                         .scale = 0.5f};
    nq = (uint64_t)s.T * s.n_head * s.D, nkv = (uint64_t)s.S * s.n_head_kv * s.D;
    T_ASSERT(!vkl_buffer_create(vk, nq * 4, VKL_MEM_DEVICE, &q, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, nkv * 4, VKL_MEM_DEVICE, &kv, &err), "%s", err.msg);
    vkl_buffer lse;
    T_ASSERT(!vkl_buffer_create(vk, (uint64_t)s.T * s.n_head * 4, VKL_MEM_DEVICE, &lse, &err), "%s", err.msg);
    /* the forward takes 4 keys an iteration (17,500 here), the dq pass one (70,000): refused before any dispatch */
    st = vkl_op_attention_back(vk, &c, &s, vkl_tv(&q, 0), vkl_tv(&kv, 0), vkl_tv(&kv, 0), vkl_tv_none(),
                               vkl_tv(&q, 0), vkl_tv(&lse, 0), vkl_tv(&q, 0), vkl_tv(&q, 0), vkl_tv(&kv, 0),
                               vkl_tv(&kv, 0), vkl_tv_none(), &err);
    vkl_op_cache_destroy(vk, &c);
    vkl_buffer_destroy(vk, &q), vkl_buffer_destroy(vk, &kv), vkl_buffer_destroy(vk, &lse);
    T_ASSERT(st == VKL_ERR_INPUT && strstr(err.msg, "loop iterations"), "tile backward at T=70000 without a window: %s",
             err.msg);
    long_ctx.window = 100;
    T_ASSERT(!attn_fwd_one(vk, &c, &long_ctx, 0, &tile, 0) && !attn_back_one(vk, &c, &long_ctx, 0, &tile, 0),
             "tile kernels at T = 70000 with window 100");
    /* dk/dv walks (query, head) pairs 4 an iteration: 64 query heads on one KV head at T = 4000 take 64,000 of
     * lavapipe's 65,535 (one an iteration was 260,000, refused); a count short of the kernel's would let lavapipe cut
     * the loop and dk/dv would miss the last queries */
    static const attn_cfg gqa64 = {1, 4000, 4000, 64, 1, 4, 0, 0, 0, 0};
    T_ASSERT(!attn_back_one(vk, &c, &gqa64, 0, &tile, 0), "tile dk/dv at T = 4000 with 64 query heads per KV head");
    vkl_op_cache_destroy(vk, &c);
    return 0;
}

const vkl_test_case vkl_tests_nn[] = {
    {"nn/attention_loop_limit", test_attention_loop_limit},
    {"nn/ref_fd_rmsnorm", test_fd_rmsnorm},
    {"nn/ref_fd_rope", test_fd_rope},
    {"nn/ref_fd_attention", test_fd_attention},
    {"nn/ref_fd_swiglu", test_fd_swiglu},
    {"nn/ref_fd_cross_entropy", test_fd_cross_entropy},
    {"nn/get_rows", test_get_rows},
    {"nn/rmsnorm", test_rmsnorm},
    {"nn/rmsnorm_back", test_rmsnorm_back},
    {"nn/rope", test_rope},
    {"nn/attention", test_attention},
    {"nn/attention_back", test_attention_back},
    {"nn/attention_window_softcap", test_attention_window_softcap},
    {"nn/attention_gemma3", test_attention_gemma3},
    {"nn/swiglu", test_swiglu},
    {"nn/add", test_add},
    {"nn/geglu", test_geglu},
    {"nn/softcap", test_softcap},
    {"nn/scale", test_scale},
    {"nn/scale_rows", test_scale_rows},
    {"nn/cross_entropy", test_cross_entropy},
    {"nn/errors", test_errors},
    {NULL, NULL},
};
