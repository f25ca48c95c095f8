/* Layer split (issue 15): training states that each hold a range of layers (vkl_train_dev_create_layers, with
 * models uploaded by vkl_model_upload_layers) and pass the residual forward and its gradient back through host
 * memory give the whole state's loss and, summed, its LoRA gradients, in every checkpointing mode and with dropout;
 * each stage's gradient is zero outside its layers, and its device holds only its part of the weights. Whole runs
 * with `layer_split` over two or three logical devices give one device's losses and adapter bytes, also when the
 * model does not fit one device's memory (VKLORA_MEMORY_BUDGET), and bad splits are refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "train.h"
#include "vk/vk.h"
#include "vklora/config.h"
#include "vklora/trainer.h"

/* Whether flat parameter k belongs to an adapter or bias of a layer in [l0, l1). */
static bool param_in_layers(const vkl_lora *l, uint64_t k, uint32_t l0, uint32_t l1) {
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        uint64_t a = s->a_off, b = s->b_off;
        if ((k >= a && k < a + (uint64_t)l->r * s->in) || (k >= b && k < b + (uint64_t)s->out * l->r))
            return s->layer >= l0 && s->layer < l1;
    }
    return false;
}

static int test_stages_equal_whole(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    vkl_model *whole;
    T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &whole, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(whole, vk, &err), "%s", err.msg);
    const uint32_t L = whole->hp.n_layer;
    /* three stages of uneven size: [0, 2), [2, 4), [4, L) */
    const uint32_t cut[4] = {0, 2, 4, L};
    enum { NS = 3 };
    vkl_model *part[NS];
    uint64_t part_bytes = 0;
    for (int s = 0; s < NS; s++) {
        T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &part[s], &err), "%s", err.msg);
        T_ASSERT(!vkl_model_upload_layers(part[s], vk, cut[s], cut[s + 1], &err), "%s", err.msg);
        T_ASSERT(part[s]->device_bytes < whole->device_bytes, "stage %d holds %llu of %llu bytes", s,
                 (unsigned long long)part[s]->device_bytes, (unsigned long long)whole->device_bytes);
        part_bytes += part[s]->device_bytes;
    }
    /* each weight once, except the (tied) embedding that the first and the last stage both hold */
    T_ASSERT(part_bytes >= whole->device_bytes && part_bytes <= whole->device_bytes + whole->tok_embd.bytes + 8,
             "stages hold %llu bytes, the whole model %llu", (unsigned long long)part_bytes,
             (unsigned long long)whole->device_bytes);
    T_ASSERT(vkl_model_upload_layers(part[0], vk, 3, 3, &err) == VKL_ERR_INPUT && strstr(err.msg, "[3, 3)"), "%s",
             err.msg);
    vkl_err_clear(&err);

    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(whole, VKL_TM_ALL, 8, 16, false, &l, &err), "%s", err.msg);
    vkl_lora_init(l, 21);
    t_rng_seed(7);
    t_lora_random_b(l, 0.05f); /* B != 0, so that every gradient reaches A and the residual */
    const uint32_t B = 2, T = 19, R = B * T, V = whole->hp.n_vocab, C = whole->hp.n_embd;
    int32_t *tok = malloc(R * 4), *pos = malloc(R * 4), *seg = malloc(R * 4), *tgt = malloc(R * 4);
    for (uint32_t i = 0; i < R; i++) {
        tok[i] = (int32_t)(t_rng_u32() % V);
        pos[i] = (int32_t)(i % T);
        seg[i] = 0;
    }
    for (uint32_t i = 0; i < R; i++) tgt[i] = (i + 1) % T && i % 5 ? tok[i + 1] : -1;
    const uint64_t n = l->n_params;
    float *ref = malloc(n * 4), *sum = malloc(n * 4), *g = malloc(n * 4);
    float *x[NS + 1], *dx[NS + 1];
    for (int s = 0; s <= NS; s++) x[s] = malloc((size_t)R * C * 4), dx[s] = malloc((size_t)R * C * 4);
    const float scale = 1.0f / 31;
    for (int mode = 0; mode < VKL_GRAD_CKPT_COUNT; mode++) {
        vkl_grad_ckpt ck = (vkl_grad_ckpt)mode;
        vkl_train_dev *t;
        double nll_ref, nll_eval_ref;
        T_ASSERT(!vkl_train_dev_create(vk, whole, l, B, T, ck, &t, &err), "%s", err.msg);
        T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
        T_ASSERT(!vkl_train_eval_batch(t, tok, pos, seg, tgt, &nll_eval_ref, &err), "%s", err.msg);
        vkl_train_set_dropout(t, 0.25f, 3, 65536 * 2 + 1);
        T_ASSERT(!vkl_train_micro_step(t, tok, pos, seg, tgt, scale, &nll_ref, &err), "%s", err.msg);
        T_ASSERT(!vkl_train_dev_read(t, NULL, NULL, NULL, ref, &err), "%s", err.msg);
        vkl_train_dev_destroy(t);

        vkl_train_dev *st[NS];
        for (int s = 0; s < NS; s++) {
            T_ASSERT(!vkl_train_dev_create_layers(vk, part[s], l, B, T, ck, cut[s], cut[s + 1], &st[s], &err), "%s",
                     err.msg);
            /* fewer layers (and no head before the last): less memory, except that "unsloth" keeps two residual
             * buffers and one set of activations whatever the number of layers */
            uint64_t whole_plan = vkl_train_plan_bytes(&whole->hp, l, B, T, ck);
            T_ASSERT(s == NS - 1 && ck == VKL_GRAD_CKPT_UNSLOTH ? st[s]->planned_bytes == whole_plan
                                                                 : st[s]->planned_bytes < whole_plan,
                     "mode %d: stage %d plans %llu bytes, the whole state %llu", mode, s,
                     (unsigned long long)st[s]->planned_bytes, (unsigned long long)whole_plan);
            T_ASSERT(!vkl_train_dev_load_params(st[s], NULL, NULL, &err), "%s", err.msg);
        }
        /* evaluation: the forward through the stages */
        double nll_eval = 0, nll = 0, ns;
        for (int s = 0; s < NS; s++) {
            T_ASSERT(!vkl_train_stage_forward(st[s], tok, pos, seg, tgt, false, 0, x[s], x[s + 1], NULL, &ns, &err),
                     "%s", err.msg);
            nll_eval += ns;
        }
        /* a training micro-step: forward down the stages (the last also goes back), then back up */
        for (int s = 0; s < NS; s++) {
            vkl_train_set_dropout(st[s], 0.25f, 3, 65536 * 2 + 1);
            T_ASSERT(!vkl_train_stage_forward(st[s], tok, pos, seg, tgt, true, scale, x[s], x[s + 1], dx[s], &ns,
                                              &err),
                     "%s", err.msg);
            nll += ns;
        }
        for (int s = NS - 2; s >= 0; s--)
            T_ASSERT(!vkl_train_stage_backward(st[s], dx[s + 1], dx[s], &err), "%s", err.msg);
        T_ASSERT(vkl_train_stage_backward(st[NS - 1], dx[0], dx[1], &err) == VKL_ERR_INPUT, "the last stage's "
                 "backward is refused");
        vkl_err_clear(&err);
        memset(sum, 0, n * 4);
        for (int s = 0; s < NS; s++) {
            T_ASSERT(!vkl_train_dev_read(st[s], NULL, NULL, NULL, g, &err), "%s", err.msg);
            for (uint64_t k = 0; k < n; k++) {
                if (g[k] != 0 && !param_in_layers(l, k, cut[s], cut[s + 1]))
                    T_FAIL("mode %d: stage %d has gradient %g at parameter %llu outside its layers", mode, s, g[k],
                           (unsigned long long)k);
                sum[k] += g[k];
            }
            vkl_train_dev_destroy(st[s]);
        }
        double rel = t_max_rel_err(sum, ref, n);
        T_ASSERT(nll_eval == nll_eval_ref, "mode %d: eval NLL %.9g through stages vs %.9g", mode, nll_eval,
                 nll_eval_ref);
        T_ASSERT(nll == nll_ref, "mode %d: NLL %.9g through stages vs %.9g", mode, nll, nll_ref);
        T_ASSERT(rel == 0, "mode %d: summed stage gradients vs one state: rel err %.3g (want bit-identical)", mode,
                 rel);
    }
    for (int s = 0; s <= NS; s++) free(x[s]), free(dx[s]);
    free(tok), free(pos), free(seg), free(tgt), free(ref), free(sum), free(g);
    vkl_lora_free(l);
    for (int s = 0; s < NS; s++) vkl_model_free(part[s]);
    vkl_model_free(whole);
    return 0;
}

/* ---- whole runs ---- */

static const char *split_cfg(void) {
    static char path[600];
    if (path[0]) return path;
    snprintf(path, sizeof(path), "%s/split.json", t_tmpdir());
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"model\": \"%s\", \"dataset\": {\"path\": \"%s\"}, \"per_device_train_batch_size\": 4, "
            "\"gradient_accumulation_steps\": 2, \"max_seq_length\": 48, \"learning_rate\": 3e-3, \"lora_r\": 2, "
            "\"lora_alpha\": 4, \"use_gradient_checkpointing\": false, \"lora_dropout\": 0.1, \"max_steps\": 3, "
            "\"save_steps\": 2, \"eval_ratio\": 0.1, \"eval_steps\": 3, \"advice\": false}",
            t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"));
    fclose(f);
    return path;
}

/* Train with split.json and up to three --set overrides (NULL ends them) into output_dir OUT. */
static vkl_status split_run(const char *out, const char *set1, const char *set2, const char *set3,
                            vkl_trainer_result *res, vkl_err *err) {
    return t_train_run(split_cfg(), out, set1, set2, set3, res, err);
}

/* The files of a run that must not depend on how the model was spread (metrics.jsonl carries times). */
static int same_run(const char *a, const char *b) {
    static const char *const files[] = {"adapter.gguf", "adapter_model.safetensors", "checkpoint-2/optimizer.bin"};
    for (size_t i = 0; i < VKL_ARRAY_LEN(files); i++)
        T_ASSERT(t_same_run_file(a, b, files[i]), "%s differs between %s and %s", files[i], a, b);
    return 0;
}

/* Two logical devices (lavapipe twice) with the layers split 1 : 1 and "auto", three split 2 : 1 : 2, in two
 * checkpointing modes:
 * the adapter, the optimizer state and the losses (eval included) are those of one device, bit for bit (the stages
 * compute exactly what one device computes; the summed gradients are disjoint). */
static int test_split_equals_one_device(void) {
    vkl_err err = {0};
    vkl_trainer_result one, two;
    T_ASSERT(!split_run("one", NULL, NULL, NULL, &one, &err), "one device: %s", err.msg);
    T_ASSERT(!split_run("half", "devices=[0,0]", "layer_split=[1,1]", NULL, &two, &err), "layer_split [1,1]: %s", err.msg);
    T_ASSERT(one.first_loss == two.first_loss && one.last_loss == two.last_loss &&
                 one.eval_loss_before == two.eval_loss_before,
             "losses %.9g %.9g (eval %.9g) one device, %.9g %.9g (eval %.9g) split", one.first_loss, one.last_loss,
             one.eval_loss_before, two.first_loss, two.last_loss, two.eval_loss_before);
    if (same_run("one", "half")) return 1;
    T_ASSERT(!split_run("auto", "devices=[0,0]", "layer_split=\"auto\"", NULL, NULL, &err), "auto: %s", err.msg);
    if (same_run("one", "auto")) return 1;
    /* offloaded checkpoints (the ring of two residual buffers and the host copies) over three devices */
    const char *unsloth = "use_gradient_checkpointing=\"unsloth\"";
    T_ASSERT(!split_run("one-unsloth", unsloth, NULL, NULL, NULL, &err), "%s", err.msg);
    T_ASSERT(!split_run("split-unsloth", unsloth, "devices=[0,0,0]", "layer_split=[2,1,2]", NULL, &err), "%s",
             err.msg);
    return same_run("one-unsloth", "split-unsloth");
}

/* A model that does not fit one device's memory (VKLORA_MEMORY_BUDGET below one device's need) is refused on one
 * device and trains with layer_split "auto" over two, giving the unconstrained run's bytes. */
static int test_split_larger_than_one_device(void) {
    vkl_err err = {0};
    /* one device's need at this config, from the same plan the trainer prints */
    vkl_model *m;
    T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &m, &err), "%s", err.msg);
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, VKL_TM_ALL, 2, 4, false, &l, &err), "%s", err.msg);
    uint64_t need = vkl_model_layers_bytes(m, 0, m->hp.n_layer) +
                    vkl_train_plan_bytes(&m->hp, l, 4, 48, VKL_GRAD_CKPT_OFF);
    vkl_lora_free(l);
    vkl_model_free(m);
    T_ASSERT(!split_run("ref", NULL, NULL, NULL, NULL, &err), "unconstrained: %s", err.msg);
    char budget[64];
    snprintf(budget, sizeof(budget), "%llu", (unsigned long long)(need * 7 / 10));
    setenv("VKLORA_MEMORY_BUDGET", budget, 1);
    vkl_status one = split_run("small-one", NULL, NULL, NULL, NULL, &err);
    char msg_one[sizeof(err.msg)];
    snprintf(msg_one, sizeof(msg_one), "%s", err.msg);
    vkl_err_clear(&err);
    vkl_status two = split_run("small-two", "devices=[0,0]", "layer_split=\"auto\"", NULL, NULL, &err);
    char msg_two[sizeof(err.msg)];
    snprintf(msg_two, sizeof(msg_two), "%s", err.msg);
    vkl_err_clear(&err);
    /* three devices at a tenth of the need: no split fits, and the message names the device and its layers */
    snprintf(budget, sizeof(budget), "%llu", (unsigned long long)(need / 10));
    setenv("VKLORA_MEMORY_BUDGET", budget, 1);
    vkl_status tiny = split_run("tiny", "devices=[0,0,0]", "layer_split=\"auto\"", NULL, NULL, &err);
    unsetenv("VKLORA_MEMORY_BUDGET");
    T_ASSERT(one == VKL_ERR_RUNTIME && strstr(msg_one, "MiB"), "one device at 70%% of its need: %d %s", one, msg_one);
    T_ASSERT(two == VKL_OK, "two devices at 70%% each: %s", msg_two);
    T_ASSERT(tiny == VKL_ERR_RUNTIME && strstr(err.msg, "does not fit") && strstr(err.msg, "layers"),
             "three devices at 10%%: %s", err.msg);
    return same_run("ref", "small-two");
}

/* mpirun -np 2, each rank splitting the layers over two logical devices: the bytes of two devices with data
 * parallelism in one process (the rows split the same way; the zeros a stage adds for the other layers change no
 * sum). Skipped without MPI. */
static int test_split_under_mpi(void) {
    if (!VKL_HAVE_MPI || t_run("mpirun --version", NULL, NULL) != 0) {
        printf("    skipped: %s\n", VKL_HAVE_MPI ? "no mpirun (openmpi-bin)" : "this build has no MPI (meson -Dmpi)");
        return 0;
    }
    char cmd[4096], *o = NULL, *e = NULL;
    snprintf(cmd, sizeof(cmd),
             "mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -np 2 %s train %s "
             "--set output_dir=%s/mpi-split --set devices=[0,0] --set layer_split=[1,1] </dev/null",
             t_vklora_bin(), split_cfg(), t_tmpdir());
    int rc = t_run(cmd, &o, &e);
    T_ASSERT(rc == 0 && o && strstr(o, "layer split over 2 devices"), "mpirun: exit %d: %s%s", rc, o ? o : "",
             e ? e : "");
    free(o), free(e);
    vkl_err err = {0};
    T_ASSERT(!split_run("mpi-dp", "devices=[0,0]", NULL, NULL, NULL, &err), "two devices: %s", err.msg);
    return same_run("mpi-split", "mpi-dp");
}

/* Refusals: one device, more devices than layers, a share list of the wrong length, device_shares with a split,
 * a bad value (the element named). */
static int test_split_refusals(void) {
    vkl_err err = {0};
    static const struct {
        const char *set1, *set2, *want;
    } bad[] = {
        {"layer_split=\"auto\"", NULL, "two or more devices"},
        {"devices=[0,0,0,0,0,0]", "layer_split=\"auto\"", "one layer at least"},
        {"devices=[0,0]", "layer_split=[1,2,3]", "3 shares for 2 devices"},
    };
    for (size_t i = 0; i < VKL_ARRAY_LEN(bad); i++) {
        vkl_err_clear(&err);
        T_ASSERT(split_run("bad", bad[i].set1, bad[i].set2, NULL, NULL, &err) == VKL_ERR_INPUT &&
                     strstr(err.msg, bad[i].want),
                 "%s %s: %s", bad[i].set1, bad[i].set2 ? bad[i].set2 : "", err.msg);
    }
    vkl_err_clear(&err);
    T_ASSERT(split_run("bad", "devices=[0,0]", "layer_split=[1,-1]", NULL, NULL, &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "layer_split[1]"),
             "a negative share: %s", err.msg);
    vkl_err_clear(&err);
    vkl_config c;
    const char *sets[3] = {"devices=[0,0]", "layer_split=\"auto\"", "device_shares=[1,3]"};
    T_ASSERT(!vkl_config_load(split_cfg(), sets, 3, &c, &err), "%s", err.msg);
    vkl_trainer_result r;
    vkl_trainer_opts op = {.quiet = true};
    T_ASSERT(vkl_trainer_run(&c, &op, &r, &err) == VKL_ERR_INPUT && strstr(err.msg, "device_shares"), "%s", err.msg);
    vkl_config_free(&c);
    return 0;
}

const vkl_test_case vkl_tests_split[] = {
    {"split/stages_equal_whole", test_stages_equal_whole},
    {"split/train_equals_one_device", test_split_equals_one_device},
    {"split/model_larger_than_one_device", test_split_larger_than_one_device},
    {"split/under_mpi", test_split_under_mpi},
    {"split/refusals", test_split_refusals},
    {NULL, NULL},
};
