/* LoRA dropout: the fused dropout GEMM against its scalar twin for every operand (and split bindings), the mask's
 * statistics, and the LoRA gradients under dropout against central differences of the same masked loss;
 * p = 0 is exactly the plain path; masks are a pure function of seed, step, layer and module. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ref/dropout.h"
#include "train.h"
#include "vk/vk.h"
#include "vklora/rng.h"

static int check_gemm(vkl_vk *vk, vkl_op_cache *c, uint32_t operand) {
    vkl_err err = {0};
    const uint32_t M = 37, N = 13, K = 45;
    /* A is used transposed (A(m,k) = a[k*M + m]) to exercise strides */
    vkl_gemm_shape s = {.M = M, .N = N, .K = K, .a_rs = 1, .a_cs = M, .b_rs = N, .b_cs = 1, .c_rs = N + 3,
                        .alpha = 0.75f, .beta = 1.0f};
    vkl_gemm_dropout d = {.operand = operand, .key = vkl_rng_key(7, operand), .p = 0.3f, .base = 1000,
                          .si = operand == 2 ? N : (operand == 1 ? K : N), .sj = 1};
    float *a = malloc(M * K * 4), *b = malloc(K * N * 4), *cm = malloc(M * (N + 3) * 4), *want = malloc(M * (N + 3) * 4);
    for (uint32_t i = 0; i < M * K; i++) a[i] = t_rng_uniform(-1, 1);
    for (uint32_t i = 0; i < K * N; i++) b[i] = t_rng_uniform(-1, 1);
    for (uint32_t i = 0; i < M * (N + 3); i++) cm[i] = want[i] = t_rng_uniform(-1, 1);
    vkl_ref_gemm_dropout(&s, &d, a, b, want);
    vkl_buffer ba, bb, bc;
    T_ASSERT(!vkl_buffer_create(vk, M * K * 4, VKL_MEM_DEVICE, &ba, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, K * N * 4, VKL_MEM_DEVICE, &bb, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_create(vk, M * (N + 3) * 4, VKL_MEM_DEVICE, &bc, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_upload(vk, &ba, 0, a, M * K * 4, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_upload(vk, &bb, 0, b, K * N * 4, &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_upload(vk, &bc, 0, cm, M * (N + 3) * 4, &err), "%s", err.msg);
    T_ASSERT(!vkl_op_gemm_dropout(vk, c, &s, &d, vkl_tv(&ba, 0), vkl_tv(&bb, 0), vkl_tv(&bc, 0), &err), "%s", err.msg);
    T_ASSERT(!vkl_buffer_download(vk, &bc, 0, cm, M * (N + 3) * 4, &err), "%s", err.msg);
    double e = t_max_rel_err(cm, want, M * (N + 3));
    /* fp32 sums of 45 products of O(1) terms vs double: ~1e-6; a wrong mask element moves a value by O(0.1) */
    T_ASSERT(e < 1e-5, "operand %u: max rel err %.3g", operand, e);
    vkl_buffer_destroy(vk, &ba), vkl_buffer_destroy(vk, &bb), vkl_buffer_destroy(vk, &bc);
    free(a), free(b), free(cm), free(want);
    return 0;
}

static int test_gemm_dropout(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_op_cache c = {0};
    t_rng_seed(31);
    int rc = 0;
    for (uint32_t op = 1; op <= 3 && !rc; op++) rc = check_gemm(vk, &c, op);
    /* split bindings: the per-chunk counter base must line up */
    setenv("VKLORA_MAX_BIND_BYTES", "1024", 1);
    for (uint32_t op = 1; op <= 3 && !rc; op++) rc = check_gemm(vk, &c, op);
    unsetenv("VKLORA_MAX_BIND_BYTES");
    vkl_op_cache_destroy(vk, &c);
    return rc;
}

static int test_mask_statistics(void) {
    vkl_gemm_dropout d = {.operand = 1, .key = vkl_rng_key(3407, 12), .p = 0.1f, .si = 1000, .sj = 1};
    uint32_t dropped = 0, n = 200000;
    for (uint32_t i = 0; i < n; i++) dropped += vkl_ref_dropout_keep(&d, i / 1000, i % 1000) == 0;
    double frac = (double)dropped / n;
    /* binomial: sd = sqrt(p(1-p)/n) = 6.7e-4; 5 sd */
    T_ASSERT(fabs(frac - 0.1) < 3.4e-3, "dropped fraction %.4f, expected 0.1", frac);
    T_ASSERT(vkl_ref_dropout_keep(&d, 0, 0) == 0 || fabs(vkl_ref_dropout_keep(&d, 0, 0) - 1 / 0.9f) < 1e-6, "scale");
    return 0;
}

/* A small model with LoRA on every projection; loss of one micro-batch with dropout as a function of the params. */
typedef struct {
    vkl_model *m;
    vkl_lora *l;
    vkl_train_dev *t;
    int32_t tok[24], tgt[24], pos[24], seg[24];
} fixture;

static int setup(fixture *f, vkl_grad_ckpt ckpt) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &f->m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(f->m, vk, &err), "%s", err.msg);
    T_ASSERT(!vkl_lora_create(f->m, VKL_TM_ALL, 4, 8, false, &f->l, &err), "%s", err.msg);
    vkl_lora_init(f->l, 2);
    t_rng_seed(77);
    t_lora_random_b(f->l, 0.1f);
    for (int i = 0; i < 24; i++) {
        f->tok[i] = (int32_t)(t_rng_u32() % f->m->hp.n_vocab);
        f->pos[i] = i;
        f->seg[i] = 0;
    }
    for (int i = 0; i < 24; i++) f->tgt[i] = i < 23 ? f->tok[i + 1] : -1;
    T_ASSERT(!vkl_train_dev_create(vk, f->m, f->l, 1, 24, ckpt, &f->t, &err), "%s", err.msg);
    return 0;
}

static void teardown(fixture *f) {
    vkl_train_dev_destroy(f->t);
    vkl_lora_free(f->l);
    vkl_model_free(f->m);
}

/* loss and (optionally) gradients with dropout p in stream `stream` */
static int loss_grad(fixture *f, float p, uint64_t stream, double *loss, float *grad) {
    vkl_err err = {0};
    T_ASSERT(!vkl_train_dev_load_params(f->t, NULL, NULL, &err), "%s", err.msg);
    vkl_train_set_dropout(f->t, p, 3407, stream);
    T_ASSERT(!vkl_train_micro_step(f->t, f->tok, f->pos, f->seg, f->tgt, 1.0f, loss, &err), "%s", err.msg);
    if (grad) T_ASSERT(!vkl_train_dev_read(f->t, NULL, NULL, NULL, grad, &err), "%s", err.msg);
    return 0;
}

static int test_lora_dropout_gradients(void) {
    fixture f;
    if (setup(&f, VKL_GRAD_CKPT_ON)) return 1;
    uint64_t n = f.l->n_params;
    float *g = malloc(n * 4), *g0 = malloc(n * 4), *g2 = malloc(n * 4);
    double l0, lp, lm, ld;
    /* p = 0 equals the plain path bit for bit */
    if (loss_grad(&f, 0.0f, 5, &l0, g0)) return 1;
    vkl_train_set_dropout(f.t, 0, 0, 0);
    vkl_err err = {0};
    double lplain;
    T_ASSERT(!vkl_train_dev_load_params(f.t, NULL, NULL, &err), "%s", err.msg);
    T_ASSERT(!vkl_train_micro_step(f.t, f.tok, f.pos, f.seg, f.tgt, 1.0f, &lplain, &err), "%s", err.msg);
    T_ASSERT(!vkl_train_dev_read(f.t, NULL, NULL, NULL, g2, &err), "%s", err.msg);
    T_ASSERT(l0 == lplain && !memcmp(g0, g2, n * 4), "p = 0 must be the plain path");
    /* with dropout: reproducible for a stream, different across streams, and the loss changes */
    if (loss_grad(&f, 0.25f, 5, &ld, g)) return 1;
    if (loss_grad(&f, 0.25f, 5, &lp, g2)) return 1;
    T_ASSERT(ld == lp && !memcmp(g, g2, n * 4), "same stream must give the same mask");
    if (loss_grad(&f, 0.25f, 6, &lm, NULL)) return 1;
    T_ASSERT(lm != ld && ld != l0, "masks must differ across streams and from no dropout");
    /* gradients vs central differences of the masked loss (same stream) on a spread of A and B entries */
    double worst = 0;
    int checked = 0;
    for (uint32_t si = 0; si < f.l->n_slots; si += 6) {
        const vkl_lora_slot *sl = &f.l->slots[si];
        uint64_t idx[2] = {sl->a_off + 3, sl->b_off + 5};
        for (int k = 0; k < 2; k++) {
            float orig = f.l->params[idx[k]], h = 2e-2f;
            f.l->params[idx[k]] = orig + h;
            if (loss_grad(&f, 0.25f, 5, &lp, NULL)) return 1;
            f.l->params[idx[k]] = orig - h;
            if (loss_grad(&f, 0.25f, 5, &lm, NULL)) return 1;
            f.l->params[idx[k]] = orig;
            double fd = (lp - lm) / (2 * h);
            /* fp32 loss sums of ~60 nats: noise ~1e-5 over 2h = 2.5e-4 absolute; curvature O(h^2) */
            double e = fabs(fd - g[idx[k]]) / (fabs(fd) + 1e-3);
            worst = fmax(worst, e);
            checked++;
        }
    }
    T_ASSERT(checked >= 10, "coverage");
    T_ASSERT(worst < 0.03, "LoRA gradient under dropout vs central differences: rel err %.3g", worst);
    free(g), free(g0), free(g2);
    teardown(&f);
    return 0;
}

const vkl_test_case vkl_tests_dropout[] = {
    {"dropout/gemm_vs_ref_every_operand", test_gemm_dropout},
    {"dropout/mask_statistics", test_mask_statistics},
    {"dropout/lora_gradients_fd_and_determinism", test_lora_dropout_gradients},
    {NULL, NULL},
};
