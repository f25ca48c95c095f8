/* Data parallelism (src/dp.c, src/dist.c): a micro-batch split over devices gives one device's gradients with
 * dropout on (the masks follow the row inside the whole micro-batch); `devices` in one process equals one device to
 * float rounding and repeats bit for bit; uneven shares do not change the result; under mpirun the ranks equal the
 * one-process run, a killed rank ends the job cleanly and the job resumes from the last checkpoint. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "train.h"
#include "vk/vk.h"
#include "vklora/safetensors.h"
#include "vklora/trainer.h"

/* One device with B = 4 against two training states of B = 2 on the same device (rows 0..1 and 2..3), summed on the
 * host, dropout 0.25: the same gradient to float rounding; without the second state's row base the masks differ. */
static int test_split_gradients(void) {
    vkl_vk *vk = t_vk();
    T_ASSERT(vk, "no device");
    vkl_err err = {0};
    vkl_model *m;
    T_ASSERT(!vkl_model_load(t_data_path("models/stories260K.gguf"), &m, &err), "%s", err.msg);
    T_ASSERT(!vkl_model_upload(m, vk, &err), "%s", err.msg);
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, VKL_TM_ALL, 8, 16, false, &l, &err), "%s", err.msg);
    vkl_lora_init(l, 11);
    t_rng_seed(99);
    t_lora_random_b(l, 0.05f); /* B != 0, so that every gradient depends on the masks */
    /* T = 24: rows that are not a multiple of 16 crash the texel matmul_t on Debian 13's lavapipe (LLVM 19), see
     * `vklora bench --train --batch 2 --ctx 21` there; 21 runs on Debian 12 */
    const uint32_t B = 4, T = 24, R = B * T, V = m->hp.n_vocab;
    int32_t *tok = malloc(R * 4), *pos = malloc(R * 4), *seg = malloc(R * 4), *tgt = malloc(R * 4);
    for (uint32_t i = 0; i < R; i++) {
        tok[i] = (int32_t)(t_rng_u32() % V);
        pos[i] = (int32_t)(i % T);
        seg[i] = 0;
    }
    for (uint32_t i = 0; i < R; i++) tgt[i] = (i + 1) % T && i % 7 ? tok[i + 1] : -1;
    uint64_t n = l->n_params;
    float *one = malloc(n * 4), *sum = malloc(n * 4), *part = malloc(n * 4);
    const float scale = 1.0f / 50;
    double nll_one = 0, nll_split = 0, nll_based = 0, s;
    vkl_train_dev *t;
    T_ASSERT(!vkl_train_dev_create(vk, m, l, B, T, VKL_GRAD_CKPT_OFF, &t, &err), "%s", err.msg);
    T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
    vkl_train_set_dropout(t, 0.25f, 5, 3 * 65536 + 1);
    T_ASSERT(!vkl_train_micro_step(t, tok, pos, seg, tgt, scale, &nll_one, &err), "%s", err.msg);
    T_ASSERT(!vkl_train_dev_read(t, NULL, NULL, NULL, one, &err), "%s", err.msg);
    vkl_train_dev_destroy(t);
    double rel[2];
    for (int with_base = 1; with_base >= 0; with_base--) {
        memset(sum, 0, n * 4);
        nll_split = 0;
        for (uint32_t half = 0; half < 2; half++) {
            T_ASSERT(!vkl_train_dev_create(vk, m, l, B / 2, T, VKL_GRAD_CKPT_OFF, &t, &err), "%s", err.msg);
            T_ASSERT(!vkl_train_dev_load_params(t, NULL, NULL, &err), "%s", err.msg);
            t->row_base = with_base ? half * (B / 2) * T : 0;
            vkl_train_set_dropout(t, 0.25f, 5, 3 * 65536 + 1);
            size_t off = (size_t)half * (B / 2) * T;
            T_ASSERT(!vkl_train_micro_step(t, tok + off, pos + off, seg + off, tgt + off, scale, &s, &err), "%s",
                     err.msg);
            nll_split += s;
            T_ASSERT(!vkl_train_dev_read(t, NULL, NULL, NULL, part, &err), "%s", err.msg);
            for (uint64_t k = 0; k < n; k++) sum[k] += part[k];
            vkl_train_dev_destroy(t);
        }
        rel[with_base] = t_max_rel_err(sum, one, n);
        if (with_base) nll_based = nll_split;
    }
    T_ASSERT(fabs(nll_based - nll_one) <= 1e-5 * fabs(nll_one), "NLL %.9g split vs %.9g", nll_based, nll_one);
    T_ASSERT(rel[1] < 1e-5, "gradient of the split micro-batch vs one device: rel err %.3g", rel[1]);
    T_ASSERT(rel[0] > 1e-3, "the row base changes nothing (rel %.3g): the masks would not follow the rows", rel[0]);
    free(tok), free(pos), free(seg), free(tgt), free(one), free(sum), free(part);
    vkl_lora_free(l);
    vkl_model_free(m);
    return 0;
}

/* ---- whole runs ---- */

static const char *cfg_path(void) {
    static char path[600];
    if (path[0]) return path;
    snprintf(path, sizeof(path), "%s/dp.json", t_tmpdir());
    FILE *f = fopen(path, "w");
    fprintf(f,
            "{\"model\": \"%s\", \"dataset\": {\"path\": \"%s\"}, \"per_device_train_batch_size\": 4, "
            "\"gradient_accumulation_steps\": 2, \"max_seq_length\": 48, \"learning_rate\": 3e-3, "
            "\"use_gradient_checkpointing\": false, \"lora_dropout\": 0.1, \"max_steps\": 4, \"save_steps\": 2, "
            "\"advice\": false}",
            t_data_path("models/stories260K.gguf"), t_data_path("datasets/tinystories_sample.txt"));
    fclose(f);
    return path;
}

static vkl_status run(const char *out, const char *set1, const char *set2, vkl_err *err) {
    return t_train_run(cfg_path(), out, set1, set2, NULL, NULL, err);
}

static int read_losses(const char *out, double *loss, int cap) {
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/%s", t_tmpdir(), out);
    return t_read_losses(dir, loss, cap);
}

/* Every float of the run's PEFT adapter, in file order; count in *n. */
static float *adapter_floats(const char *out, size_t *n) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s/adapter_model.safetensors", t_tmpdir(), out);
    vkl_safetensors *st;
    vkl_err err = {0};
    *n = 0;
    if (vkl_safetensors_open(path, &st, &err)) return NULL;
    for (uint64_t i = 0; i < st->n_tensors; i++) *n += st->tensors[i].n_elems;
    float *v = malloc(*n * 4 + 4);
    size_t at = 0;
    for (uint64_t i = 0; i < st->n_tensors; i++) {
        vkl_st_tensor_to_f32(&st->tensors[i], v + at);
        at += st->tensors[i].n_elems;
    }
    vkl_safetensors_close(st);
    return v;
}


/* Loss curve and adapter of run `a` within `tol` relative of run `b`: each loss, and the adapter as a vector
 * (|a - b| / |b|, L2 norms); its largest single difference within 10 tol of the largest value (Adam turns a
 * rounding-size gradient difference on a coordinate whose gradient is tiny into an update-size one). */
static int close_runs(const char *a, const char *b, double tol) {
    double la[8], lb[8];
    int na = read_losses(a, la, 8), nb = read_losses(b, lb, 8);
    T_ASSERT(na == 4 && nb == 4, "metrics lines %d (%s) and %d (%s)", na, a, nb, b);
    for (int i = 0; i < na; i++)
        T_ASSERT(fabs(la[i] - lb[i]) <= tol * fabs(lb[i]), "step %d loss %.9g (%s) vs %.9g (%s)", i + 1, la[i], a,
                 lb[i], b);
    size_t fa, fb;
    float *pa = adapter_floats(a, &fa), *pb = adapter_floats(b, &fb);
    T_ASSERT(pa && pb && fa == fb && fa > 1000, "adapters of %s and %s", a, b);
    double rel = t_max_rel_err(pa, pb, fa), d2 = 0, b2 = 0;
    for (size_t i = 0; i < fa; i++) d2 += ((double)pa[i] - pb[i]) * ((double)pa[i] - pb[i]), b2 += (double)pb[i] * pb[i];
    free(pa), free(pb);
    printf("    adapter %s vs %s: relative L2 difference %.3g, largest difference / largest value %.3g\n", a, b,
           sqrt(d2 / b2), rel);
    T_ASSERT(sqrt(d2 / b2) <= tol && rel <= 10 * tol, "adapter %s vs %s: rel L2 %.3g, max %.3g", a, b, sqrt(d2 / b2),
             rel);
    return 0;
}

/* Two logical devices (the same lavapipe twice) against one: same loss curve and adapter within 1e-5 relative
 * (only the order of the gradient sums differs); the two-device run twice gives the same bytes; uneven shares
 * (3 : 1 sequences) give the even split's result within 1e-5. */
static int test_devices_equal_one(void) {
    vkl_err err = {0};
    T_ASSERT(!run("one", NULL, NULL, &err), "one device: %s", err.msg);
    T_ASSERT(!run("two", "devices=[0,0]", NULL, &err), "two devices: %s", err.msg);
    T_ASSERT(!run("two-again", "devices=[0,0]", NULL, &err), "two devices again: %s", err.msg);
    T_ASSERT(!run("uneven", "devices=[0,0]", "device_shares=[3,1]", &err), "uneven shares: %s", err.msg);
    T_ASSERT(!run("measured", "devices=[0,0]", "device_shares=\"measure\"", &err), "measured shares: %s", err.msg);
    if (close_runs("two", "one", 1e-5) || close_runs("uneven", "two", 1e-5) || close_runs("measured", "two", 1e-5))
        return 1;
    T_ASSERT(t_same_run_file("two", "two-again", "adapter.gguf") &&
                 t_same_run_file("two", "two-again", "adapter_model.safetensors") &&
                 t_same_run_file("two", "two-again", "checkpoint-2/optimizer.bin"),
             "the same two-device run twice gave different bytes");
    /* a batch smaller than the device count, and a share list of the wrong length, are refused */
    vkl_err_clear(&err);
    T_ASSERT(run("bad", "devices=[0,0,0,0,0]", NULL, &err) == VKL_ERR_INPUT && strstr(err.msg, "at least one sequence"),
             "5 devices for 4 sequences: %s", err.msg);
    vkl_err_clear(&err);
    T_ASSERT(run("bad", "devices=[0,0]", "device_shares=[1,2,3]", &err) == VKL_ERR_INPUT &&
                 strstr(err.msg, "device_shares"),
             "3 shares for 2 devices: %s", err.msg);
    return 0;
}

/* bench --train --devices: each device's tokens/s on its share, the combined tokens/s and the scaling efficiency;
 * the 3 sequences split 2 + 1 (whole sequences, at least one each). */
static int test_bench_devices(void) {
    cJSON *j = NULL;
    char args[1024];
    snprintf(args, sizeof(args), "bench --model %s --train --devices 0,0 --batch 3 --ctx 32 --iters 1 --json",
             t_data_path("models/stories260K.gguf"));
    T_ASSERT(t_cli(args, &j, NULL) == 0 && j, "bench --devices");
    const cJSON *d = cJSON_GetObjectItem(j, "devices");
    T_ASSERT(cJSON_GetArraySize(d) == 2, "two devices listed");
    double seqs = 0, sum = 0;
    for (int i = 0; i < 2; i++) {
        const cJSON *e = cJSON_GetArrayItem(d, i);
        double tps = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "tokens_per_second"));
        T_ASSERT(tps > 0 && isfinite(tps), "device %d tokens/s %g", i, tps);
        seqs += cJSON_GetNumberValue(cJSON_GetObjectItem(e, "sequences"));
        sum += tps;
    }
    double tps = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "tokens_per_second"));
    double eff = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "scaling_efficiency"));
    T_ASSERT(seqs == 3, "sequences %g", seqs);
    T_ASSERT(tps > 0 && fabs(eff - tps / sum) < 1e-9 * eff, "efficiency %g vs %g / %g", eff, tps, sum);
    cJSON_Delete(j);
    snprintf(args, sizeof(args), "bench --model %s --devices 0,0", t_data_path("models/stories260K.gguf"));
    char *e = NULL;
    T_ASSERT(t_cli(args, NULL, &e) == 2 && e && strstr(e, "--devices goes with --train"), "%s", e ? e : "");
    free(e);
    return 0;
}

static bool exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* ---- MPI: mpirun -np 2 on this machine (both ranks on lavapipe) ---- */

/* Why the MPI tests cannot run here, or NULL. */
static const char *mpi_missing(void) {
    if (!VKL_HAVE_MPI) return "this build has no MPI (meson -Dmpi; libopenmpi-dev)";
    if (t_run("mpirun --version", NULL, NULL) != 0) return "no mpirun (openmpi-bin)";
    return NULL;
}

/* `mpirun -np 2 [ENV] vklora train dp.json --set output_dir=OUT EXTRA`: its exit code, stdout and stderr.
 * mpi_yield_when_idle: a rank waiting in a collective yields the core instead of spinning (2 ranks share 2 cores). */
static int mpirun_train(const char *env, const char *out, const char *extra, char **o, char **e) {
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 -np 2 %s %s train "
             "%s --set output_dir=%s/%s %s </dev/null",
             env ? env : "", t_vklora_bin(), cfg_path(), t_tmpdir(), out, extra ? extra : "");
    return t_run(cmd, o, e);
}

/* Two ranks equal two devices in one process bit for bit (the same devices, rows and summation order), and one
 * device within 1e-5; the same two-rank run twice gives the same bytes. */
static int test_mpi_equals_one_process(void) {
    const char *why = mpi_missing();
    if (why) {
        printf("    skipped: %s\n", why);
        return 0;
    }
    char *o = NULL, *e = NULL;
    T_ASSERT(mpirun_train(NULL, "mpi-a", NULL, &o, &e) == 0, "mpirun: %s", e ? e : "");
    T_ASSERT(o && strstr(o, "data parallelism: 2 devices over 2 MPI ranks") && strstr(o, "adapter written"),
             "rank 0's log: %s", o ? o : "");
    free(o), free(e);
    T_ASSERT(mpirun_train(NULL, "mpi-b", NULL, NULL, &e) == 0, "mpirun again: %s", e ? e : "");
    free(e);
    vkl_err err = {0};
    T_ASSERT(!run("mpi-two", "devices=[0,0]", NULL, &err), "two devices: %s", err.msg);
    T_ASSERT(!run("mpi-one", NULL, NULL, &err), "one device: %s", err.msg);
    static const char *const files[] = {"adapter.gguf", "adapter_model.safetensors", "checkpoint-2/optimizer.bin"};
    for (int i = 0; i < 3; i++) {
        T_ASSERT(t_same_run_file("mpi-a", "mpi-b", files[i]), "the same 2-rank run twice: %s differs", files[i]);
        T_ASSERT(t_same_run_file("mpi-a", "mpi-two", files[i]), "2 ranks vs 2 devices in one process: %s differs",
                 files[i]);
    }
    double la[8], lb[8];
    T_ASSERT(read_losses("mpi-a", la, 8) == 4 && read_losses("mpi-two", lb, 8) == 4, "metrics");
    for (int i = 0; i < 4; i++) T_ASSERT(la[i] == lb[i], "step %d: loss %.17g vs %.17g", i + 1, la[i], lb[i]);
    return close_runs("mpi-a", "mpi-one", 1e-5);
}

/* A rank killed after step 3 (save_steps 2): the job ends with a non-zero status and mpirun naming the rank, rank 0
 * leaves checkpoint-2 complete and no adapter; the same 2-rank job resumes from it and ends with the uninterrupted
 * run's bytes. */
static int test_mpi_killed_rank(void) {
    const char *why = mpi_missing();
    if (why) {
        printf("    skipped: %s\n", why);
        return 0;
    }
    char *o = NULL, *e = NULL, path[1024];
    int rc = mpirun_train("-x VKLORA_FAULT_KILL_RANK=1:3", "mpi-kill", NULL, &o, &e);
    T_ASSERT(rc != 0, "the job with a killed rank exited 0");
    T_ASSERT(e && strstr(e, "rank 1: killed by VKLORA_FAULT_KILL_RANK after step 3") && strstr(e, "rank 1"),
             "stderr: %s", e ? e : "");
    T_ASSERT(o && strstr(o, "if a rank fails, mpirun ends the job"), "rank 0's log: %s", o ? o : "");
    free(o), free(e);
    static const char *const ck[] = {"checkpoint-2/trainer_state.json", "checkpoint-2/optimizer.bin",
                                     "checkpoint-2/adapter_model.safetensors"};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/mpi-kill/%s", t_tmpdir(), ck[i]);
        T_ASSERT(exists(path), "%s missing", path);
    }
    snprintf(path, sizeof(path), "%s/mpi-kill/adapter.gguf", t_tmpdir());
    T_ASSERT(!exists(path), "an adapter was published by the failed job");
    snprintf(path, sizeof(path), "%s/mpi-kill/checkpoint-4", t_tmpdir());
    T_ASSERT(!exists(path), "checkpoint-4 exists");
    T_ASSERT(mpirun_train(NULL, "mpi-kill", "--set resume_from_checkpoint=true", &o, &e) == 0, "resume: %s",
             e ? e : "");
    T_ASSERT(o && strstr(o, "resumed from") && strstr(o, "at step 2"), "resume log: %s", o ? o : "");
    free(o), free(e);
    vkl_err err = {0};
    T_ASSERT(!run("mpi-kill-ref", "devices=[0,0]", NULL, &err), "two devices: %s", err.msg);
    T_ASSERT(t_same_run_file("mpi-kill", "mpi-kill-ref", "adapter.gguf") &&
                 t_same_run_file("mpi-kill", "mpi-kill-ref", "adapter_model.safetensors"),
             "the resumed 2-rank job differs from the uninterrupted run");
    double la[8], lb[8];
    T_ASSERT(read_losses("mpi-kill", la, 8) == 4 && read_losses("mpi-kill-ref", lb, 8) == 4, "metrics lines");
    for (int i = 0; i < 4; i++) T_ASSERT(la[i] == lb[i], "step %d: loss %.17g vs %.17g", i + 1, la[i], lb[i]);
    return 0;
}

/* A rank that fails with an error (as a lost device would) after step 3 says so, names the intact checkpoint and
 * ends the whole job (MPI_Abort): no rank waits forever in a collective. */
static int test_mpi_failed_rank(void) {
    const char *why = mpi_missing();
    if (why) {
        printf("    skipped: %s\n", why);
        return 0;
    }
    char *e = NULL, path[1024];
    T_ASSERT(mpirun_train("-x VKLORA_FAULT_FAIL_RANK=1:3", "mpi-fail", NULL, NULL, &e) != 0, "the job exited 0");
    T_ASSERT(e && strstr(e, "rank 1 of 2 failed: failed by VKLORA_FAULT_FAIL_RANK after step 3") &&
                 strstr(e, "ending the MPI job; the last checkpoint in") && strstr(e, "mpi-fail is intact"),
             "stderr: %s", e ? e : "");
    free(e);
    snprintf(path, sizeof(path), "%s/mpi-fail/checkpoint-2/optimizer.bin", t_tmpdir());
    T_ASSERT(exists(path), "%s missing", path);
    snprintf(path, sizeof(path), "%s/mpi-fail/adapter.gguf", t_tmpdir());
    T_ASSERT(!exists(path), "an adapter was published by the failed job");
    return 0;
}

/* SIGUSR1 to mpirun (which forwards it to every rank; its Ctrl-C ends the job): every rank stops at the same step,
 * rank 0 saves a checkpoint there, the job exits 130. Sent once rank 0's metrics.jsonl has two steps (the launcher
 * may forward the ranks' output late, OpenMPI 5's in blocks). */
static int test_mpi_sigusr1(void) {
    const char *why = mpi_missing();
    if (why) {
        printf("    skipped: %s\n", why);
        return 0;
    }
    char cmd[4096];
    snprintf(cmd, sizeof(cmd),
             "cd %s && (mpirun --allow-run-as-root --oversubscribe --bind-to none --mca mpi_yield_when_idle 1 "
             "-np 2 %s train %s --set output_dir=%s/mpi-usr1 --set max_steps=400 --set save_steps=0 >usr1.log 2>&1 "
             "</dev/null & pid=$!; n=0; while [ \"$(cat mpi-usr1/metrics.jsonl 2>/dev/null | wc -l)\" -lt 2 ] && "
             "[ $n -lt 600 ]; do sleep 0.1; n=$((n+1)); done; kill -USR1 $pid; n=0; while kill -0 $pid 2>/dev/null && [ $n -lt 1200 ]; do "
             "sleep 0.1; n=$((n+1)); done; kill -9 $pid 2>/dev/null; wait $pid; echo $? > usr1.rc)",
             t_tmpdir(), t_vklora_bin(), cfg_path(), t_tmpdir());
    T_ASSERT(system(cmd) == 0, "sigusr1 script");
    char path[1024];
    snprintf(path, sizeof(path), "%s/usr1.rc", t_tmpdir());
    char *rc = t_read_file(path, NULL);
    T_ASSERT(rc && atoi(rc) == 130, "exit status after SIGUSR1: %s", rc ? rc : "?");
    free(rc);
    snprintf(path, sizeof(path), "%s/usr1.log", t_tmpdir());
    char *log = t_read_file(path, NULL);
    const char *at = log ? strstr(log, "interrupted: checkpoint saved in") : NULL;
    T_ASSERT(at, "log: %s", log ? log : "");
    const char *ck = strstr(at, "checkpoint-");
    int step = ck ? atoi(ck + 11) : 0;
    free(log);
    T_ASSERT(step >= 2 && step < 400, "checkpoint step %d", step);
    snprintf(path, sizeof(path), "%s/mpi-usr1/checkpoint-%d/optimizer.bin", t_tmpdir(), step);
    T_ASSERT(exists(path), "%s missing", path);
    return 0;
}

/* A build without MPI refuses a multi-process launch (the launcher's environment) with exit 2 and says why. */
static int test_mpi_refused_without(void) {
    if (VKL_HAVE_MPI) {
        printf("    skipped: this build has MPI (the refusal is checked in builds without it)\n");
        return 0;
    }
    char cmd[2048], *e = NULL;
    snprintf(cmd, sizeof(cmd), "%s train %s --set output_dir=%s/nompi", t_vklora_bin(), cfg_path(), t_tmpdir());
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1); /* as OpenMPI's mpirun starts each process */
    int rc = t_run(cmd, NULL, &e);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    T_ASSERT(rc == 2 && e && strstr(e, "built without MPI"), "exit %d: %s", rc, e ? e : "");
    free(e);
    return 0;
}

/* The config keys: lists of indices and names, "all", the shares; bad values name the element. */
static int test_config_keys(void) {
    vkl_config c;
    vkl_err err = {0};
    const char *ok[] = {"devices=[0, \"Radeon\", 0]", "device_shares=[3, 1.5, 1]"};
    T_ASSERT(!vkl_config_load(NULL, ok, 2, &c, &err), "%s", err.msg);
    T_ASSERT(c.n_devices == 3 && !strcmp(c.devices[0], "0") && !strcmp(c.devices[1], "Radeon") && !c.devices_all,
             "devices parsed");
    T_ASSERT(c.n_device_shares == 3 && c.device_shares[1] == 1.5, "shares parsed");
    cJSON *j = vkl_config_to_json(&c);
    char *txt = cJSON_PrintUnformatted(cJSON_GetObjectItem(j, "devices"));
    T_ASSERT(!strcmp(txt, "[0,\"Radeon\",0]"), "resolved devices %s", txt);
    free(txt);
    cJSON_Delete(j);
    vkl_config_free(&c);
    const char *all[] = {"devices=\"all\"", "device_shares=\"measure\""};
    T_ASSERT(!vkl_config_load(NULL, all, 2, &c, &err) && c.devices_all && c.n_device_shares == -1, "%s", err.msg);
    vkl_config_free(&c);
    static const char *const bad[][2] = {{"devices=[]", "devices"},
                                         {"devices=[0, 1.5]", "devices[1]"},
                                         {"devices=\"auto\"", "devices"},
                                         {"device_shares=[1, 0]", "device_shares[1]"},
                                         {"device_shares=\"fast\"", "device_shares"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        vkl_err_clear(&err);
        T_ASSERT(vkl_config_load(NULL, &bad[i][0], 1, &c, &err) == VKL_ERR_INPUT && strstr(err.msg, bad[i][1]),
                 "%s: %s", bad[i][0], err.msg);
    }
    return 0;
}

const vkl_test_case vkl_tests_dp[] = {
    {"dp/config_keys", test_config_keys},
    {"dp/split_microbatch_gradients_dropout", test_split_gradients},
    {"dp/devices_equal_one_device", test_devices_equal_one},
    {"dp/bench_devices", test_bench_devices},
    {"dp/mpi_np2_equals_one_process", test_mpi_equals_one_process},
    {"dp/mpi_killed_rank_resumes", test_mpi_killed_rank},
    {"dp/mpi_failed_rank_aborts", test_mpi_failed_rank},
    {"dp/mpi_sigusr1_checkpoints", test_mpi_sigusr1},
    {"dp/mpi_refused_without_mpi", test_mpi_refused_without},
    {NULL, NULL},
};
