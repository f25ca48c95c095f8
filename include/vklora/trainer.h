/* `vklora train` as a library call: config in, adapter files, checkpoints and metrics out. The loop (data order,
 * gradient accumulation, schedule, evaluation, checkpoints, resume, progress) is here; the device work per step is
 * src/train.c. */
#ifndef VKLORA_TRAINER_H
#define VKLORA_TRAINER_H

#include <signal.h>

#include "vklora/config.h"

typedef struct vkl_trainer_opts {
    const char *resume_dir;     /* a checkpoint-STEP directory, or NULL (the config may also ask to resume) */
    bool json_log;              /* progress and log lines to stderr (stdout keeps the final JSON) */
    volatile sig_atomic_t *stop; /* set asynchronously (Ctrl-C): save a checkpoint and return */
    bool quiet;                 /* no progress output at all (tests) */
    int64_t stop_after;         /* > 0: behave as if interrupted once this many steps are done in total */
} vkl_trainer_opts;

typedef struct vkl_trainer_result {
    uint32_t batch_size, seq_len; /* the micro-batch shape used: B sequences of T tokens */
    uint32_t n_train, n_eval;     /* examples */
    int64_t steps_done;      /* optimizer steps completed in total (including before a resume) */
    int64_t total_steps;
    double first_loss, last_loss;
    double eval_loss_before, eval_loss_after; /* NAN when there is no eval set */
    double tokens_per_second; /* trained target tokens per second over this run */
    uint64_t peak_device_bytes;
    bool interrupted;
    char adapter_gguf[4400];
    char adapter_peft_dir[4096];
} vkl_trainer_result;

vkl_status vkl_trainer_run(const vkl_config *c, const vkl_trainer_opts *o, vkl_trainer_result *res, vkl_err *err);

#endif
