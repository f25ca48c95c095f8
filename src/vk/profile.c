/* Per-kernel device time from timestamp queries (vklora bench --profile): while a profile runs, each dispatch and
 * copy of a submission is followed by a timestamp; when the submission completes, each one's time (its timestamp
 * minus the previous one, so barrier and launch costs included) is added to its pipeline's total. */
#include <stdlib.h>
#include <string.h>

#include "vk/vk.h"

/* Timestamps per submission: a training step of a 32-layer model records a few thousand dispatches. Past this the
 * rest of the submission is counted as untimed rather than guessed. */
#define PROFILE_QUERIES 32768u
#define PROFILE_NAME 64

typedef struct prof_total {
    char name[PROFILE_NAME];
    double ns;
    uint64_t n;
} prof_total;

struct vkl_profiler {
    VkQueryPool pool;
    uint32_t used;                         /* timestamps written in this submission (0 = the start) */
    uint32_t total[PROFILE_QUERIES];       /* which total timestamp i ends (names are copied: a pipeline's may not
                                              outlive the recording) */
    uint64_t results[PROFILE_QUERIES];
    prof_total *totals;
    size_t n_totals, cap_totals;
    uint64_t untimed;
};

vkl_status vkl_profile_start(vkl_vk *vk, vkl_err *err) {
    if (vk->prof) return VKL_OK;
    if (!vk->info.timestamps || !(vk->info.timestamp_period_ns > 0))
        return vkl_err_set(err, VKL_ERR_RUNTIME, "profile: device %u (%s) has no timestamps on its compute queue",
                           vk->info.index, vk->info.name);
    vkl_profiler *p = calloc(1, sizeof(*p));
    if (!p) return vkl_err_set(err, VKL_ERR_RUNTIME, "profile: out of memory");
    VkQueryPoolCreateInfo qpi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                 .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                 .queryCount = PROFILE_QUERIES};
    VkResult r = vkCreateQueryPool(vk->device, &qpi, NULL, &p->pool);
    if (r != VK_SUCCESS) {
        free(p);
        return vkl_vk_check(vk, r, "vkCreateQueryPool (profile)", __FILE__, __LINE__, err);
    }
    vk->prof = p;
    return VKL_OK;
}

void vkl_profile_stop(vkl_vk *vk) {
    vkl_profiler *p = vk->prof;
    if (!p) return;
    vkDestroyQueryPool(vk->device, p->pool, NULL);
    free(p->totals);
    free(p);
    vk->prof = NULL;
}

/* (inside vkl_cmd_begin) */
void vkl_profile_begin(vkl_vk *vk) {
    vkl_profiler *p = vk->prof;
    vkCmdResetQueryPool(vk->cmd, p->pool, 0, PROFILE_QUERIES);
    vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, p->pool, 0);
    p->used = 1;
}

static prof_total *total_of(vkl_profiler *p, const char *name) {
    for (size_t i = 0; i < p->n_totals; i++)
        if (!strncmp(p->totals[i].name, name, PROFILE_NAME - 1)) return &p->totals[i];
    if (p->n_totals == p->cap_totals) {
        size_t cap = p->cap_totals ? 2 * p->cap_totals : 64;
        prof_total *t = realloc(p->totals, cap * sizeof(*t));
        if (!t) return NULL;
        p->totals = t;
        p->cap_totals = cap;
    }
    prof_total *t = &p->totals[p->n_totals++];
    memset(t, 0, sizeof(*t));
    strncpy(t->name, name, PROFILE_NAME - 1);
    return t;
}

/* (after each recorded dispatch or copy) */
void vkl_profile_mark(vkl_vk *vk, const char *name) {
    vkl_profiler *p = vk->prof;
    prof_total *t = p->used < PROFILE_QUERIES ? total_of(p, name) : NULL;
    if (!t) {
        p->untimed++;
        return;
    }
    p->total[p->used] = (uint32_t)(t - p->totals);
    vkCmdWriteTimestamp(vk->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, p->pool, p->used++);
}

/* (after the submission's fence) */
vkl_status vkl_profile_collect(vkl_vk *vk, vkl_err *err) {
    vkl_profiler *p = vk->prof;
    if (p->used < 2) return VKL_OK;
    VKL_VK_TRY(vk, vkGetQueryPoolResults(vk->device, p->pool, 0, p->used, sizeof(uint64_t) * p->used, p->results,
                                         sizeof(uint64_t), VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT), err);
    for (uint32_t i = 1; i < p->used; i++) {
        prof_total *t = &p->totals[p->total[i]];
        uint64_t d = p->results[i] >= p->results[i - 1] ? p->results[i] - p->results[i - 1] : 0;
        t->ns += (double)d * vk->info.timestamp_period_ns;
        t->n++;
    }
    p->used = 0;
    return VKL_OK;
}

static int by_time(const void *a, const void *b) {
    const vkl_profile_entry *x = a, *y = b;
    return x->ms < y->ms ? 1 : x->ms > y->ms ? -1 : strcmp(x->name, y->name);
}

size_t vkl_profile_report(const vkl_vk *vk, vkl_profile_entry *out, size_t max, double *total_ms, uint64_t *untimed) {
    const vkl_profiler *p = vk->prof;
    *total_ms = 0;
    *untimed = p ? p->untimed : 0;
    if (!p) return 0;
    vkl_profile_entry *all = malloc((p->n_totals ? p->n_totals : 1) * sizeof(*all));
    if (!all) return 0;
    for (size_t i = 0; i < p->n_totals; i++) {
        all[i] = (vkl_profile_entry){.name = p->totals[i].name, .ms = p->totals[i].ns / 1e6,
                                     .dispatches = p->totals[i].n};
        *total_ms += all[i].ms;
    }
    qsort(all, p->n_totals, sizeof(*all), by_time);
    size_t n = p->n_totals < max ? p->n_totals : max;
    memcpy(out, all, n * sizeof(*out));
    free(all);
    return n;
}
