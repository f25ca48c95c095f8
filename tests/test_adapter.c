/* Tests of the LoRA layout and initialisation, the safetensors reader/writer (round trips and malformed files), and
 * the adapter files: GGUF for llama.cpp and PEFT (with the llama q/k row permutation checked by tests/ref_adapter.py). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "vklora/adapter.h"
#include "vklora/gguf.h"
#include "vklora/lora.h"
#include "vklora/quant.h"
#include "vklora/safetensors.h"

#define STORIES "models/stories260K.gguf"

static vkl_model *load_model(const char *path) {
    vkl_err err = {0};
    vkl_model *m = NULL;
    if (vkl_model_load(path, &m, &err)) fprintf(stderr, "    %s\n", err.msg);
    return m;
}

/* A small qwen2 model made by vklora-mkmodel (cached for the run). */
static const char *qwen2_path(void) {
    static char path[512];
    if (!path[0]) {
        snprintf(path, sizeof(path), "%s/qwen2-tiny.gguf", t_tmpdir());
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "%s/vklora-mkmodel %s --arch qwen2 --dim 64 --layers 2 --heads 4 --kv-heads 2 "
                 "--ff 96 --seed 3", VKL_BUILD_ROOT, path);
        if (t_run(cmd, NULL, NULL) != 0) path[0] = '\0';
    }
    return path[0] ? path : NULL;
}

static void fill_random(vkl_lora *l, uint64_t seed) {
    t_rng_seed(seed);
    for (uint64_t i = 0; i < l->n_params; i++) l->params[i] = t_rng_uniform(-1.0f, 1.0f);
}

static bool contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

/* ---- layout ---- */

static int test_layout(void) {
    vkl_model *m = load_model(t_data_path(STORIES));
    T_ASSERT(m, "stories260K loads");
    const vkl_hparams *hp = &m->hp;
    T_ASSERT(hp->arch == VKL_ARCH_LLAMA && hp->n_layer == 5 && hp->n_embd == 64 && hp->n_head == 8 &&
                 hp->n_head_kv == 4 && hp->head_dim == 8,
             "stories260K hparams: L %u C %u H %u KVH %u D %u", hp->n_layer, hp->n_embd, hp->n_head, hp->n_head_kv,
             hp->head_dim);
    const uint32_t C = hp->n_embd, QD = hp->n_head * hp->head_dim, KVD = hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    const uint32_t want_in[VKL_TM_COUNT] = {C, C, C, QD, C, C, F};
    const uint32_t want_out[VKL_TM_COUNT] = {QD, KVD, KVD, C, F, F, C};
    const uint32_t masks[] = {VKL_TM_ALL, VKL_TM_Q | VKL_TM_V, VKL_TM_DOWN, VKL_TM_O | VKL_TM_GATE | VKL_TM_K};
    const uint32_t ranks[] = {8, 4, 1, 3};
    for (size_t mi = 0; mi < VKL_ARRAY_LEN(masks); mi++) {
        vkl_err err = {0};
        vkl_lora *l;
        T_ASSERT(vkl_lora_create(m, masks[mi], ranks[mi], 16.0, false, &l, &err) == VKL_OK, "%s", err.msg);
        const uint32_t r = ranks[mi];
        T_ASSERT(l->n_slots == hp->n_layer * (uint32_t)__builtin_popcount(masks[mi]), "slot count %u", l->n_slots);
        T_ASSERT(fabsf(l->scale - 16.0f / (float)r) < 1e-6f, "scale alpha / r");
        uint64_t off = 0, per_layer = 0;
        for (uint32_t mod = 0; mod < VKL_TM_COUNT; mod++)
            if (masks[mi] & (1u << mod)) per_layer += (uint64_t)r * (want_in[mod] + want_out[mod]);
        uint32_t i = 0;
        for (uint32_t layer = 0; layer < hp->n_layer; layer++)
            for (uint32_t mod = 0; mod < VKL_TM_COUNT; mod++) {
                const vkl_lora_slot *s = vkl_lora_slot_get(l, layer, mod);
                if (!(masks[mi] & (1u << mod))) {
                    T_ASSERT(s == NULL, "no slot for unmasked module %u", mod);
                    continue;
                }
                T_ASSERT(s == &l->slots[i], "slots ordered by layer then module (slot %u)", i);
                T_ASSERT(s->layer == layer && s->module == mod, "slot %u identity", i);
                T_ASSERT(s->in == want_in[mod] && s->out == want_out[mod], "layer %u module %u: %u -> %u, want %u -> %u",
                         layer, mod, s->in, s->out, want_in[mod], want_out[mod]);
                T_ASSERT(s->a_off == off, "slot %u: A at %llu, want %llu", i, (unsigned long long)s->a_off,
                         (unsigned long long)off);
                T_ASSERT(s->b_off == off + (uint64_t)r * s->in, "slot %u: B right after A", i);
                off = s->b_off + (uint64_t)s->out * r;
                i++;
            }
        T_ASSERT(l->n_params == off && off == per_layer * hp->n_layer, "n_params %llu", (unsigned long long)off);
        T_ASSERT(vkl_lora_slot_get(l, hp->n_layer, 0) == NULL && vkl_lora_slot_get(l, 0, VKL_TM_COUNT) == NULL,
                 "out-of-range lookups give NULL");
        T_ASSERT(l->base_model && *l->base_model, "base_model set");
        vkl_lora_free(l);
    }
    /* The full stories260K layout at r = 8, by hand: per layer 8 * ((64+64) + 2*(64+32) + (64+64) + 2*(64+172)
     * + (172+64)) = 8 * 1156. */
    {
        vkl_err err = {0};
        vkl_lora *l;
        T_ASSERT(vkl_lora_create(m, VKL_TM_ALL, 8, 16.0, false, &l, &err) == VKL_OK, "%s", err.msg);
        T_ASSERT(F == 172, "stories260K n_ff %u", F);
        T_ASSERT(l->n_params == 5ull * 8 * 1156, "n_params %llu", (unsigned long long)l->n_params);
        vkl_lora_free(l);
    }
    vkl_err err = {0};
    vkl_lora *l = NULL;
    T_ASSERT(vkl_lora_create(m, 0, 8, 16, false, &l, &err) == VKL_ERR_INPUT && contains(err.msg, "mask"), "%s",
             err.msg);
    vkl_err_clear(&err);
    T_ASSERT(vkl_lora_create(m, 0x80, 8, 16, false, &l, &err) == VKL_ERR_INPUT, "bit 7 rejected");
    vkl_err_clear(&err);
    T_ASSERT(vkl_lora_create(m, VKL_TM_Q, 0, 16, false, &l, &err) == VKL_ERR_INPUT && contains(err.msg, "rank"),
             "%s", err.msg);
    vkl_err_clear(&err);
    T_ASSERT(vkl_lora_create(m, VKL_TM_Q, 8, 0, false, &l, &err) == VKL_ERR_INPUT && contains(err.msg, "alpha"),
             "%s", err.msg);
    vkl_err_clear(&err);
    T_ASSERT(vkl_lora_create(m, VKL_TM_Q, 16, 32, true, &l, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(fabsf(l->scale - 8.0f) < 1e-6f, "rsLoRA scale alpha / sqrt(r) = 32 / 4, got %g", l->scale);
    vkl_lora_free(l);
    vkl_model_free(m);
    return 0;
}

/* ---- init ---- */

static int test_init(void) {
    vkl_model *m = load_model(t_data_path(STORIES));
    T_ASSERT(m, "model");
    vkl_err err = {0};
    vkl_lora *l, *l2;
    T_ASSERT(vkl_lora_create(m, VKL_TM_ALL, 16, 16, false, &l, &err) == VKL_OK, "%s", err.msg);
    T_ASSERT(vkl_lora_create(m, VKL_TM_ALL, 16, 16, false, &l2, &err) == VKL_OK, "%s", err.msg);
    for (uint64_t i = 0; i < l->n_params; i++) l->params[i] = 7.0f; /* init must overwrite B too */
    vkl_lora_init(l, 1234);
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        const float *A = l->params + s->a_off, *B = l->params + s->b_off;
        const uint64_t n = (uint64_t)l->r * s->in;
        const double bound = 1.0 / sqrt((double)s->in);
        double sum = 0, sum2 = 0, amax = 0;
        for (uint64_t j = 0; j < n; j++) {
            T_ASSERT(fabs(A[j]) <= bound, "slot %u A[%llu] = %g outside +-%g", i, (unsigned long long)j, A[j], bound);
            sum += A[j];
            sum2 += (double)A[j] * A[j];
            amax = fmax(amax, fabs(A[j]));
        }
        const double mean = sum / n, var = sum2 / n - mean * mean, want_var = bound * bound / 3;
        /* U(-b, b): mean 0 with std b / sqrt(3n); 5 sigma keeps the test deterministic and still sharp. */
        T_ASSERT(fabs(mean) < 5 * bound / sqrt(3.0 * n), "slot %u mean %g (bound %g, n %llu)", i, mean, bound,
                 (unsigned long long)n);
        T_ASSERT(fabs(var / want_var - 1) < 0.15, "slot %u variance %g, want %g", i, var, want_var);
        T_ASSERT(amax > 0.95 * bound, "slot %u max |A| %g should approach the bound %g", i, amax, bound);
        for (uint64_t j = 0; j < (uint64_t)s->out * l->r; j++) T_ASSERT(B[j] == 0.0f, "slot %u B[%llu] != 0", i,
                                                                        (unsigned long long)j);
    }
    /* Same seed, same values; another seed, other values; slots differ from each other. */
    vkl_lora_init(l2, 1234);
    T_ASSERT(!memcmp(l->params, l2->params, l->n_params * sizeof(float)), "same seed reproduces");
    vkl_lora_init(l2, 1235);
    uint64_t same = 0;
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        for (uint64_t j = 0; j < (uint64_t)l->r * s->in; j++) same += l->params[s->a_off + j] == l2->params[s->a_off + j];
    }
    T_ASSERT(same < 16, "%llu equal A values across seeds", (unsigned long long)same);
    const vkl_lora_slot *s0 = &l->slots[0], *s1 = vkl_lora_slot_get(l, 1, 0), *sk = vkl_lora_slot_get(l, 0, 1);
    T_ASSERT(memcmp(l->params + s0->a_off, l->params + s1->a_off, 64 * sizeof(float)) != 0, "layers differ");
    T_ASSERT(memcmp(l->params + s0->a_off, l->params + sk->a_off, 64 * sizeof(float)) != 0, "modules differ");
    vkl_lora_free(l);
    vkl_lora_free(l2);
    vkl_model_free(m);
    return 0;
}

/* ---- safetensors ---- */

static int test_safetensors_roundtrip(void) {
    float f32[6] = {1.5f, -2.25f, 3.0f, 0.0f, -0.0f, 1e-20f};
    vkl_fp16 f16[4] = {vkl_f32_to_fp16(1.0f), vkl_f32_to_fp16(-0.5f), vkl_f32_to_fp16(65504.0f),
                       vkl_f32_to_fp16(0.25f)};
    vkl_bf16 bf16[3] = {vkl_f32_to_bf16(3.0f), vkl_f32_to_bf16(-1.0f / 128), vkl_f32_to_bf16(1e30f)};
    vkl_err err = {0};
    vkl_st_writer *w = vkl_st_writer_new();
    vkl_st_writer_set_metadata(w, "format", "pt");
    vkl_st_writer_set_metadata(w, "note", "quote \" backslash \\ newline \n");
    const uint64_t s23[2] = {2, 3}, s4[1] = {4}, s113[3] = {1, 1, 3}, s0[2] = {0, 5};
    T_ASSERT(!vkl_st_writer_add(w, "a.weight", VKL_ST_F32, 2, s23, f32, &err), "%s", err.msg);
    T_ASSERT(!vkl_st_writer_add(w, "h", VKL_ST_F16, 1, s4, f16, &err), "%s", err.msg);
    T_ASSERT(!vkl_st_writer_add(w, "empty", VKL_ST_F32, 2, s0, NULL, &err), "%s", err.msg);
    T_ASSERT(!vkl_st_writer_add(w, "b\"q", VKL_ST_BF16, 3, s113, bf16, &err), "%s", err.msg);
    T_ASSERT(vkl_st_writer_add(w, "h", VKL_ST_F16, 1, s4, f16, &err) == VKL_ERR_INPUT, "duplicate name refused");
    vkl_err_clear(&err);
    char path[512];
    snprintf(path, sizeof(path), "%s/rt.safetensors", t_tmpdir());
    T_ASSERT(!vkl_st_writer_write(w, path, &err), "%s", err.msg);
    uint8_t *mem;
    uint64_t memsize;
    T_ASSERT(!vkl_st_writer_to_memory(w, &mem, &memsize, &err), "%s", err.msg);
    vkl_st_writer_free(w);
    vkl_safetensors *st;
    T_ASSERT(!vkl_safetensors_open(path, &st, &err), "%s", err.msg);
    T_ASSERT(st->file_size == memsize, "file and memory serializations agree in size");
    FILE *f = fopen(path, "rb");
    uint8_t *disk = malloc(memsize);
    T_ASSERT(f && fread(disk, 1, memsize, f) == memsize, "read back");
    fclose(f);
    T_ASSERT(!memcmp(disk, mem, memsize), "file and memory serializations agree");
    free(disk);
    T_ASSERT(st->data_offset % 8 == 0, "data section 8-byte aligned (%llu)", (unsigned long long)st->data_offset);
    T_ASSERT(st->n_tensors == 4, "4 tensors");
    T_ASSERT(!strcmp(vkl_safetensors_metadata(st, "format"), "pt"), "metadata");
    T_ASSERT(!strcmp(vkl_safetensors_metadata(st, "note"), "quote \" backslash \\ newline \n"), "escaped metadata");
    int64_t ia = vkl_safetensors_find(st, "a.weight"), ih = vkl_safetensors_find(st, "h"),
            ib = vkl_safetensors_find(st, "b\"q"), ie = vkl_safetensors_find(st, "empty");
    T_ASSERT(ia >= 0 && ih >= 0 && ib >= 0 && ie >= 0 && vkl_safetensors_find(st, "nope") < 0, "find");
    const vkl_st_tensor *ta = &st->tensors[ia], *th = &st->tensors[ih], *tb = &st->tensors[ib];
    T_ASSERT(ta->dtype == VKL_ST_F32 && ta->n_dims == 2 && ta->shape[0] == 2 && ta->shape[1] == 3, "a shape");
    T_ASSERT(tb->dtype == VKL_ST_BF16 && tb->n_dims == 3 && tb->shape[2] == 3, "b shape");
    T_ASSERT(st->tensors[ie].n_elems == 0, "empty tensor");
    float out[6];
    vkl_st_tensor_to_f32(ta, out);
    T_ASSERT(!memcmp(out, f32, sizeof(f32)), "f32 exact");
    vkl_st_tensor_to_f32(th, out);
    T_ASSERT(out[0] == 1.0f && out[1] == -0.5f && out[2] == 65504.0f && out[3] == 0.25f, "f16 values");
    vkl_st_tensor_to_f32(tb, out);
    T_ASSERT(out[0] == 3.0f && out[1] == -1.0f / 128 && fabsf(out[2] / 1e30f - 1) < 1e-2f, "bf16 values");
    vkl_safetensors_close(st);
    /* The same bytes through the memory reader. */
    T_ASSERT(!vkl_safetensors_open_memory(mem, memsize, "<mem>", &st, &err), "%s", err.msg);
    T_ASSERT(st->n_tensors == 4, "memory reader");
    vkl_safetensors_close(st);
    /* Single-buffer atomic write replaces a file and leaves no temporary behind. */
    T_ASSERT(!vkl_write_file_atomic(path, "x", 1, "test", &err), "%s", err.msg);
    struct stat sb;
    T_ASSERT(stat(path, &sb) == 0 && sb.st_size == 1, "replaced");
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "ls %s | grep -c tmp-", t_tmpdir());
    char *o = NULL;
    t_run(cmd, &o, NULL);
    T_ASSERT(o && atoi(o) == 0, "no temporary files left: %s", o ? o : "");
    free(o);
    free(mem);
    return 0;
}

/* A safetensors file from a header text and a data section of `data_len` bytes. */
static uint8_t *make_st(const char *header, uint64_t claimed_len, uint64_t data_len, uint64_t *size) {
    uint64_t n = strlen(header);
    *size = 8 + n + data_len;
    uint8_t *b = calloc(1, *size);
    memcpy(b, &claimed_len, 8);
    memcpy(b + 8, header, n);
    for (uint64_t i = 0; i < data_len; i++) b[8 + n + i] = (uint8_t)(i * 7);
    return b;
}

static int expect_st_error(const char *header, int64_t claimed_len, uint64_t data_len, const char *want) {
    uint64_t size;
    uint8_t *b = make_st(header, claimed_len < 0 ? strlen(header) : (uint64_t)claimed_len, data_len, &size);
    vkl_safetensors *st = NULL;
    vkl_err err = {0};
    vkl_status rc = vkl_safetensors_open_memory(b, size, "bad.safetensors", &st, &err);
    free(b);
    if (rc == VKL_OK) {
        vkl_safetensors_close(st);
        T_FAIL("accepted a malformed header: %s", header);
    }
    T_ASSERT(rc == VKL_ERR_INPUT && st == NULL, "input error, no handle");
    T_ASSERT(contains(err.msg, "bad.safetensors") && contains(err.msg, want), "header %.80s: message '%s' lacks '%s'",
             header, err.msg, want);
    return 0;
}

static int test_safetensors_malformed(void) {
    int fails = 0;
    const char *ok_entry = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    /* The good one first, so the failures below are about the one thing each changes. */
    {
        uint64_t size;
        uint8_t *b = make_st(ok_entry, strlen(ok_entry), 8, &size);
        vkl_safetensors *st;
        vkl_err err = {0};
        T_ASSERT(!vkl_safetensors_open_memory(b, size, "good", &st, &err), "%s", err.msg);
        vkl_safetensors_close(st);
        free(b);
    }
    {
        vkl_safetensors *st;
        vkl_err err = {0};
        T_ASSERT(vkl_safetensors_open_memory("abc", 3, "bad.safetensors", &st, &err) == VKL_ERR_INPUT &&
                     contains(err.msg, "too short"), "%s", err.msg);
    }
    fails += expect_st_error(ok_entry, 1000, 8, "byte 0: header length 1000 runs past the end");
    fails += expect_st_error(ok_entry, (int64_t)1 << 62, 8, "runs past the end");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",,}}", -1, 0, "the JSON header does not parse");
    fails += expect_st_error("[1, 2]", -1, 0, "must be a JSON object");
    fails += expect_st_error("   ", -1, 0, "must be a JSON object");
    fails += expect_st_error("{} x", -1, 0, "byte 11: unexpected 0x78");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", -1, 4,
                             "end past the data section");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", -1, 8,
                             "begin is past end");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", -1, 12,
                             "overlap");
    fails += expect_st_error("{\"t\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", -1, 8,
                             "unsupported dtype \"I64\"");
    fails += expect_st_error("{\"t\":{\"dtype\":\"Q9\",\"shape\":[1],\"data_offsets\":[0,8]}}", -1, 8,
                             "unknown dtype");
    fails += expect_st_error("{\"t\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,8]}}", -1, 8, "\"dtype\"");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", -1, 8,
                             "shape [3] of F32 needs 3 elements x 4 bytes");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}", -1, 8,
                             "span 4 bytes");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", -1, 8,
                             "shape[0] is not a non-negative integer");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", -1, 8,
                             "shape[0]");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                             "\"data_offsets\":[0,8]}}", -1, 8, "overflows");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", -1, 8,
                             "data_offsets");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}", -1, 8, "data_offsets");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,1e300]}}", -1, 8,
                             "data_offsets");
    fails += expect_st_error("{\"t\":[1]}", -1, 8, "tensor 't': expected an object");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", -1, 16,
                             "tensor 't' appears twice");
    fails += expect_st_error("{\"__metadata__\":{\"a\":1}}", -1, 0, "__metadata__");
    fails += expect_st_error("{\"t\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", -1,
                             4, "9 dimensions");
    /* A header of millions of tiny values is refused before cJSON builds it. */
    {
        const size_t n = 3u << 20;
        char *h = malloc(2 * n + 16);
        strcpy(h, "{\"x\":[");
        size_t p = strlen(h);
        for (size_t i = 0; i < n; i++) {
            h[p++] = '0';
            h[p++] = ',';
        }
        h[p - 1] = ']';
        h[p++] = '}';
        h[p] = '\0';
        fails += expect_st_error(h, -1, 0, "more than");
        free(h);
    }
    T_ASSERT(fails == 0, "%d malformed-header cases failed", fails);
    {
        vkl_safetensors *st;
        vkl_err err = {0};
        T_ASSERT(vkl_safetensors_open("/nonexistent/x.safetensors", &st, &err) == VKL_ERR_INPUT &&
                     contains(err.msg, "/nonexistent/x.safetensors"), "%s", err.msg);
    }
    /* Random corruption of a real header: every outcome must be a clean accept or a clean error. */
    {
        const uint64_t s[2] = {3, 5};
        float data[15] = {0};
        vkl_st_writer *w = vkl_st_writer_new();
        vkl_err err = {0};
        vkl_st_writer_add(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", VKL_ST_F32, 2, s, data,
                          &err);
        vkl_st_writer_add(w, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", VKL_ST_F32, 2, s, data,
                          &err);
        uint8_t *good;
        uint64_t size;
        vkl_st_writer_to_memory(w, &good, &size, &err);
        vkl_st_writer_free(w);
        uint8_t *b = malloc(size);
        t_rng_seed(99);
        int accepted = 0;
        for (int iter = 0; iter < 3000; iter++) {
            memcpy(b, good, size);
            int flips = 1 + (int)(t_rng_u32() % 4);
            for (int k = 0; k < flips; k++) {
                uint64_t at = t_rng_u32() % (iter < 200 ? 8 : size);
                b[at] = (uint8_t)t_rng_u32();
            }
            vkl_safetensors *st = NULL;
            vkl_err e2 = {0};
            if (vkl_safetensors_open_memory(b, size, "fuzz", &st, &e2) == VKL_OK) {
                accepted++;
                float tmp[15];
                for (uint64_t i = 0; i < st->n_tensors; i++)
                    if (st->tensors[i].n_elems <= 15) vkl_st_tensor_to_f32(&st->tensors[i], tmp);
                vkl_safetensors_close(st);
            } else {
                T_ASSERT(e2.msg[0] && st == NULL, "error without a message");
            }
        }
        T_ASSERT(accepted < 3000, "corruption is noticed");
        free(b);
        free(good);
    }
    return 0;
}

/* ---- GGUF adapter ---- */

static int check_same_lora(const vkl_lora *a, const vkl_lora *b) {
    T_ASSERT(a->r == b->r && a->target_modules == b->target_modules && a->n_slots == b->n_slots &&
                 a->n_params == b->n_params && a->n_layer == b->n_layer && a->arch == b->arch,
             "layout: r %u/%u mask %x/%x params %llu/%llu", a->r, b->r, a->target_modules, b->target_modules,
             (unsigned long long)a->n_params, (unsigned long long)b->n_params);
    T_ASSERT(a->use_rslora == b->use_rslora && a->alpha == b->alpha && a->scale == b->scale,
             "alpha %g/%g rslora %d/%d scale %.9g/%.9g", a->alpha, b->alpha, a->use_rslora, b->use_rslora, a->scale,
             b->scale);
    T_ASSERT(!memcmp(a->params, b->params, a->n_params * sizeof(float)), "parameters equal");
    return 0;
}

static int gguf_roundtrip(uint32_t mask, uint32_t r, double alpha, bool rslora) {
    vkl_model *m = load_model(t_data_path(STORIES));
    T_ASSERT(m, "model");
    vkl_err err = {0};
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, mask, r, alpha, rslora, &l, &err), "%s", err.msg);
    l->dropout = 0.05;
    fill_random(l, 7);
    char path[512];
    snprintf(path, sizeof(path), "%s/adapter-%x-%u-%d.gguf", t_tmpdir(), mask, r, rslora);
    T_ASSERT(!vkl_adapter_save_gguf(l, m, path, &err), "%s", err.msg);
    vkl_gguf *g;
    T_ASSERT(!vkl_gguf_open(path, &g, &err), "%s", err.msg);
    T_ASSERT(!strcmp(vkl_gguf_get_str(g, "general.architecture"), "llama"), "arch");
    T_ASSERT(!strcmp(vkl_gguf_get_str(g, "general.type"), "adapter"), "general.type");
    T_ASSERT(!strcmp(vkl_gguf_get_str(g, "adapter.type"), "lora"), "adapter.type");
    const vkl_gguf_value *av = vkl_gguf_get(g, "adapter.lora.alpha");
    T_ASSERT(av && av->type == VKL_GGUF_FLOAT32, "adapter.lora.alpha is float32");
    /* llama.cpp applies alpha_file / r with r from lora_b's ne[0]: that must be our scale. */
    T_ASSERT(fabs(av->v.f64 / r - l->scale) <= 1e-6 * l->scale, "alpha_file %g / r %u = %g, scale %g", av->v.f64, r,
             av->v.f64 / r, l->scale);
    if (rslora) T_ASSERT(fabs(av->v.f64 - alpha * sqrt((double)r)) <= 1e-5 * av->v.f64, "rsLoRA: alpha * sqrt(r)");
    else T_ASSERT(av->v.f64 == (float)alpha, "plain LoRA: alpha as is");
    T_ASSERT(g->n_tensors == 2ull * l->n_slots, "%llu tensors", (unsigned long long)g->n_tensors);
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        char name[128];
        snprintf(name, sizeof(name), "blk.%u.%s.weight.lora_a", s->layer, vkl_target_module_gguf_names[s->module]);
        int64_t ia = vkl_gguf_find_tensor(g, name);
        T_ASSERT(ia >= 0, "missing %s", name);
        const vkl_gguf_tensor *ta = &g->tensors[ia];
        T_ASSERT(ta->type == VKL_TYPE_F32 && ta->n_dims == 2 && ta->ne[0] == s->in && ta->ne[1] == r,
                 "%s ne [%lld, %lld], want [in %u, r %u]", name, (long long)ta->ne[0], (long long)ta->ne[1], s->in, r);
        T_ASSERT(!memcmp(ta->data, l->params + s->a_off, (size_t)r * s->in * 4), "%s data", name);
        snprintf(name, sizeof(name), "blk.%u.%s.weight.lora_b", s->layer, vkl_target_module_gguf_names[s->module]);
        int64_t ib = vkl_gguf_find_tensor(g, name);
        T_ASSERT(ib >= 0, "missing %s", name);
        const vkl_gguf_tensor *tb = &g->tensors[ib];
        T_ASSERT(tb->type == VKL_TYPE_F32 && tb->n_dims == 2 && tb->ne[0] == r && tb->ne[1] == s->out,
                 "%s ne [%lld, %lld], want [r %u, out %u]", name, (long long)tb->ne[0], (long long)tb->ne[1], r, s->out);
        T_ASSERT(!memcmp(tb->data, l->params + s->b_off, (size_t)r * s->out * 4), "%s data", name);
        /* llama.cpp's own check: a.ne[0] == W.ne[0], b.ne[1] == W.ne[1], a.ne[1] == b.ne[0]. */
        const vkl_layer_weights *L = &m->layers[s->layer];
        const vkl_weight *W[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        T_ASSERT(ta->ne[0] == W[s->module]->t->ne[0] && tb->ne[1] == W[s->module]->t->ne[1] && ta->ne[1] == tb->ne[0],
                 "%s passes llama.cpp's shape check", name);
    }
    vkl_gguf_close(g);
    vkl_lora *back;
    T_ASSERT(!vkl_adapter_load(path, m, &back, &err), "%s", err.msg);
    int rc = check_same_lora(l, back);
    T_ASSERT(back->dropout == 0.05, "dropout restored");
    vkl_lora_free(back);
    vkl_lora_free(l);
    vkl_model_free(m);
    return rc;
}

static int test_gguf_roundtrip(void) {
    return gguf_roundtrip(VKL_TM_ALL, 8, 16.0, false) || gguf_roundtrip(VKL_TM_Q | VKL_TM_V, 4, 8.0, false) ||
           gguf_roundtrip(VKL_TM_DOWN | VKL_TM_K, 3, 5.0, false);
}

static int test_gguf_rslora(void) { return gguf_roundtrip(VKL_TM_ALL, 16, 32.0, true) || gguf_roundtrip(VKL_TM_O, 5, 3, true); }

/* An adapter as another tool (llama.cpp's converter) writes it: only the standard keys. */
static int test_gguf_foreign(void) {
    vkl_model *m = load_model(t_data_path(STORIES));
    T_ASSERT(m, "model");
    vkl_err err = {0};
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, VKL_TM_Q | VKL_TM_UP, 4, 1, false, &l, &err), "%s", err.msg);
    fill_random(l, 11);
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    vkl_gguf_writer_set_str(w, "general.architecture", "llama");
    vkl_gguf_writer_set_str(w, "general.type", "adapter");
    vkl_gguf_writer_set_str(w, "adapter.type", "lora");
    vkl_gguf_writer_set_f32(w, "adapter.lora.alpha", 24.0f);
    /* F16 data: the reader converts it. */
    vkl_fp16 *h = malloc(l->n_params * sizeof(vkl_fp16));
    for (uint64_t i = 0; i < l->n_params; i++) h[i] = vkl_f32_to_fp16(l->params[i]);
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        char name[128];
        int64_t ne_a[2] = {s->in, 4}, ne_b[2] = {4, s->out};
        snprintf(name, sizeof(name), "blk.%u.%s.weight.lora_b", s->layer, vkl_target_module_gguf_names[s->module]);
        T_ASSERT(!vkl_gguf_writer_add_tensor(w, name, VKL_TYPE_F16, 2, ne_b, h + s->b_off, &err), "%s", err.msg);
        snprintf(name, sizeof(name), "blk.%u.%s.weight.lora_a", s->layer, vkl_target_module_gguf_names[s->module]);
        T_ASSERT(!vkl_gguf_writer_add_tensor(w, name, VKL_TYPE_F16, 2, ne_a, h + s->a_off, &err), "%s", err.msg);
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/foreign.gguf", t_tmpdir());
    T_ASSERT(!vkl_gguf_writer_write(w, path, &err), "%s", err.msg);
    vkl_gguf_writer_free(w);
    vkl_lora *back;
    T_ASSERT(!vkl_adapter_load(path, m, &back, &err), "%s", err.msg);
    T_ASSERT(back->r == 4 && back->target_modules == (VKL_TM_Q | VKL_TM_UP) && !back->use_rslora, "layout");
    T_ASSERT(back->scale == 6.0f, "scale = alpha_file / r = 24 / 4, got %g", back->scale);
    for (uint64_t i = 0; i < l->n_params; i++)
        T_ASSERT(back->params[i] == vkl_fp16_to_f32(h[i]), "param %llu converted from f16", (unsigned long long)i);
    free(h);
    vkl_lora_free(back);
    vkl_lora_free(l);
    vkl_model_free(m);
    return 0;
}

/* ---- PEFT ---- */

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return cJSON_Parse(buf);
}

static int test_peft_roundtrip(void) {
    vkl_model *m = load_model(t_data_path(STORIES));
    T_ASSERT(m, "model");
    vkl_err err = {0};
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, VKL_TM_ALL, 8, 16, true, &l, &err), "%s", err.msg);
    l->dropout = 0.1;
    l->bias = VKL_BIAS_NONE;
    fill_random(l, 21);
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/peft/nested/out", t_tmpdir());
    T_ASSERT(!vkl_adapter_save_peft(l, m, dir, &err), "%s", err.msg);
    char path[600];
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    vkl_safetensors *st;
    T_ASSERT(!vkl_safetensors_open(path, &st, &err), "%s", err.msg);
    T_ASSERT(st->n_tensors == 2ull * l->n_slots, "tensor count");
    T_ASSERT(vkl_safetensors_metadata(st, "format") && !strcmp(vkl_safetensors_metadata(st, "format"), "pt"),
             "format pt");
    static const char *const groups[] = {"self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp"};
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        char name[160];
        snprintf(name, sizeof(name), "base_model.model.model.layers.%u.%s.%s.lora_A.weight", s->layer,
                 groups[s->module], vkl_target_module_names[s->module]);
        int64_t ia = vkl_safetensors_find(st, name);
        T_ASSERT(ia >= 0, "missing %s", name);
        const vkl_st_tensor *ta = &st->tensors[ia];
        T_ASSERT(ta->dtype == VKL_ST_F32 && ta->n_dims == 2 && ta->shape[0] == 8 && ta->shape[1] == s->in,
                 "%s shape [%llu, %llu], want [r, in %u]", name, (unsigned long long)ta->shape[0],
                 (unsigned long long)ta->shape[1], s->in);
        T_ASSERT(!memcmp(ta->data, l->params + s->a_off, (size_t)8 * s->in * 4), "%s: A unchanged", name);
        snprintf(name, sizeof(name), "base_model.model.model.layers.%u.%s.%s.lora_B.weight", s->layer,
                 groups[s->module], vkl_target_module_names[s->module]);
        int64_t ib = vkl_safetensors_find(st, name);
        T_ASSERT(ib >= 0, "missing %s", name);
        const vkl_st_tensor *tb = &st->tensors[ib];
        T_ASSERT(tb->dtype == VKL_ST_F32 && tb->n_dims == 2 && tb->shape[0] == s->out && tb->shape[1] == 8,
                 "%s shape, want [out %u, r]", name, s->out);
        bool same = !memcmp(tb->data, l->params + s->b_off, (size_t)8 * s->out * 4);
        /* llama: q and k rows leave in HF order, so they differ from the GGUF order; the rest is unchanged. */
        T_ASSERT(same == (s->module > 1), "%s: B %s", name, same ? "not permuted" : "permuted");
    }
    vkl_safetensors_close(st);

    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    cJSON *c = read_json(path);
    T_ASSERT(c, "adapter_config.json parses");
    T_ASSERT(cJSON_GetObjectItem(c, "r")->valuedouble == 8, "r");
    T_ASSERT(cJSON_GetObjectItem(c, "lora_alpha")->valuedouble == 16, "lora_alpha");
    T_ASSERT(fabs(cJSON_GetObjectItem(c, "lora_dropout")->valuedouble - 0.1) < 1e-12, "lora_dropout");
    T_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(c, "use_rslora")), "use_rslora");
    T_ASSERT(!strcmp(cJSON_GetObjectItem(c, "peft_type")->valuestring, "LORA"), "peft_type");
    T_ASSERT(!strcmp(cJSON_GetObjectItem(c, "task_type")->valuestring, "CAUSAL_LM"), "task_type");
    T_ASSERT(!strcmp(cJSON_GetObjectItem(c, "bias")->valuestring, "none"), "bias");
    T_ASSERT(!strcmp(cJSON_GetObjectItem(c, "base_model_name_or_path")->valuestring, l->base_model), "base model");
    T_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(c, "fan_in_fan_out")), "fan_in_fan_out");
    T_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(c, "init_lora_weights")), "init_lora_weights");
    T_ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(c, "inference_mode")), "inference_mode");
    T_ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(c, "use_dora")), "use_dora");
    T_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c, "modules_to_save")), "modules_to_save");
    T_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c, "revision")), "revision");
    T_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c, "layers_to_transform")), "layers_to_transform");
    T_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c, "layers_pattern")), "layers_pattern");
    const cJSON *tm = cJSON_GetObjectItem(c, "target_modules");
    T_ASSERT(cJSON_GetArraySize(tm) == 7, "7 target modules");
    for (int i = 0; i < 7; i++)
        T_ASSERT(!strcmp(cJSON_GetArrayItem(tm, i)->valuestring, vkl_target_module_names[i]), "target %d", i);
    cJSON_Delete(c);

    /* Back through the directory and through the weights file: exactly the original vector. */
    vkl_lora *back;
    T_ASSERT(!vkl_adapter_load(dir, m, &back, &err), "%s", err.msg);
    int rc = check_same_lora(l, back);
    T_ASSERT(back->dropout == 0.1 && back->bias == VKL_BIAS_NONE, "dropout and bias restored");
    vkl_lora_free(back);
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    T_ASSERT(!vkl_adapter_load(path, m, &back, &err), "%s", err.msg);
    rc |= check_same_lora(l, back);
    vkl_lora_free(back);

    /* The same adapter stored as BF16 (as many trainers save it) imports as the rounded values. */
    {
        vkl_safetensors *src;
        T_ASSERT(!vkl_safetensors_open(path, &src, &err), "%s", err.msg);
        vkl_st_writer *w = vkl_st_writer_new();
        vkl_bf16 **bufs = calloc(src->n_tensors, sizeof(*bufs));
        for (uint64_t i = 0; i < src->n_tensors; i++) {
            const vkl_st_tensor *t = &src->tensors[i];
            float *f = malloc(t->n_elems * sizeof(float));
            vkl_st_tensor_to_f32(t, f);
            bufs[i] = malloc(t->n_elems * sizeof(vkl_bf16));
            for (uint64_t j = 0; j < t->n_elems; j++) bufs[i][j] = vkl_f32_to_bf16(f[j]);
            free(f);
            T_ASSERT(!vkl_st_writer_add(w, t->name, VKL_ST_BF16, t->n_dims, t->shape, bufs[i], &err), "%s", err.msg);
        }
        char bdir[600], bpath[700], cmd[1600];
        snprintf(bdir, sizeof(bdir), "%s/peft-bf16", t_tmpdir());
        mkdir(bdir, 0755);
        snprintf(bpath, sizeof(bpath), "%s/adapter_model.safetensors", bdir);
        T_ASSERT(!vkl_st_writer_write(w, bpath, &err), "%s", err.msg);
        vkl_st_writer_free(w);
        for (uint64_t i = 0; i < src->n_tensors; i++) free(bufs[i]);
        free(bufs);
        vkl_safetensors_close(src);
        snprintf(cmd, sizeof(cmd), "cp %s/adapter_config.json %s/", dir, bdir);
        T_ASSERT(t_run(cmd, NULL, NULL) == 0, "cp");
        T_ASSERT(!vkl_adapter_load(bdir, m, &back, &err), "%s", err.msg);
        T_ASSERT(back->n_params == l->n_params, "bf16 layout");
        for (uint64_t i = 0; i < l->n_params; i++)
            T_ASSERT(back->params[i] == vkl_bf16_to_f32(vkl_f32_to_bf16(l->params[i])), "bf16 param %llu",
                     (unsigned long long)i);
        vkl_lora_free(back);
    }
    vkl_lora_free(l);
    vkl_model_free(m);
    return rc;
}

/* Export, then let an independent numpy reading of the file (with llama.cpp's permute formula) compare it with the
 * flat vector. */
static int peft_python_check(const char *model_path, const char *tag, uint32_t mask, uint32_t r) {
    vkl_model *m = load_model(model_path);
    T_ASSERT(m, "model %s", model_path);
    vkl_err err = {0};
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, mask, r, 2 * r, false, &l, &err), "%s", err.msg);
    fill_random(l, 31);
    char dir[512], params[512], layout[512];
    snprintf(dir, sizeof(dir), "%s/peft-%s", t_tmpdir(), tag);
    snprintf(params, sizeof(params), "%s/params-%s.bin", t_tmpdir(), tag);
    snprintf(layout, sizeof(layout), "%s/layout-%s.json", t_tmpdir(), tag);
    T_ASSERT(!vkl_adapter_save_peft(l, m, dir, &err), "%s", err.msg);
    FILE *f = fopen(params, "wb");
    T_ASSERT(f && fwrite(l->params, sizeof(float), l->n_params, f) == l->n_params, "write params");
    fclose(f);
    f = fopen(layout, "w");
    T_ASSERT(f, "layout");
    fprintf(f, "{\"arch\": \"%s\", \"n_head\": %u, \"n_head_kv\": %u, \"r\": %u, \"slots\": [",
            m->hp.arch == VKL_ARCH_LLAMA ? "llama" : "qwen2", m->hp.n_head, m->hp.n_head_kv, r);
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        fprintf(f, "%s{\"layer\": %u, \"module\": \"%s\", \"a_off\": %llu, \"b_off\": %llu, \"in\": %u, \"out\": %u}",
                i ? ", " : "", s->layer, vkl_target_module_names[s->module], (unsigned long long)s->a_off,
                (unsigned long long)s->b_off, s->in, s->out);
    }
    fprintf(f, "]}\n");
    fclose(f);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/ref_adapter.py %s %s %s", VKL_SOURCE_ROOT, dir, params,
             layout);
    char *out = NULL, *errs = NULL;
    int rc = t_run(cmd, &out, &errs);
    int ok = rc == 0 && contains(out, "ok ");
    if (!ok) fprintf(stderr, "    ref_adapter.py (%d): %s %s\n", rc, out ? out : "", errs ? errs : "");
    free(out);
    free(errs);
    T_ASSERT(ok, "numpy check of the %s export", tag);
    /* And the import undoes the export exactly. */
    vkl_lora *back;
    T_ASSERT(!vkl_adapter_load(dir, m, &back, &err), "%s", err.msg);
    int same = check_same_lora(l, back);
    vkl_lora_free(back);
    vkl_lora_free(l);
    vkl_model_free(m);
    return same;
}

static int test_peft_permutation_llama(void) {
    return peft_python_check(t_data_path(STORIES), "llama", VKL_TM_ALL, 8) ||
           peft_python_check(t_data_path(STORIES), "llama-qk", VKL_TM_Q | VKL_TM_K, 3);
}

static int test_peft_qwen2_not_permuted(void) {
    const char *q = qwen2_path();
    T_ASSERT(q, "vklora-mkmodel made a qwen2 model");
    vkl_model *m = load_model(q);
    T_ASSERT(m && m->hp.arch == VKL_ARCH_QWEN2, "qwen2 model loads");
    vkl_err err = {0};
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, VKL_TM_Q | VKL_TM_K, 4, 8, false, &l, &err), "%s", err.msg);
    fill_random(l, 5);
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/peft-qwen2-direct", t_tmpdir());
    T_ASSERT(!vkl_adapter_save_peft(l, m, dir, &err), "%s", err.msg);
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    vkl_safetensors *st;
    T_ASSERT(!vkl_safetensors_open(path, &st, &err), "%s", err.msg);
    for (uint32_t i = 0; i < l->n_slots; i++) {
        const vkl_lora_slot *s = &l->slots[i];
        char name[160];
        vkl_adapter_peft_name(s->layer, s->module, true, name, sizeof(name));
        int64_t ib = vkl_safetensors_find(st, name);
        T_ASSERT(ib >= 0 && !memcmp(st->tensors[ib].data, l->params + s->b_off, (size_t)s->out * 4 * 4),
                 "%s: qwen2 rows are not permuted", name);
    }
    vkl_safetensors_close(st);
    vkl_lora_free(l);
    vkl_model_free(m);
    return peft_python_check(q, "qwen2", VKL_TM_ALL, 4);
}

/* ---- malformed adapters ---- */

typedef struct {
    const char *name;
    int64_t ne0, ne1;
    uint32_t type;
} fake_tensor;

static float zeros_buf[1 << 16];

static int write_fake_gguf(const char *path, const char *arch, const char *gtype, const fake_tensor *ts, int n) {
    vkl_gguf_writer *w = vkl_gguf_writer_new(3, 0);
    if (arch) vkl_gguf_writer_set_str(w, "general.architecture", arch);
    if (gtype) vkl_gguf_writer_set_str(w, "general.type", gtype);
    vkl_gguf_writer_set_str(w, "adapter.type", "lora");
    vkl_gguf_writer_set_f32(w, "adapter.lora.alpha", 8.0f);
    vkl_err err = {0};
    for (int i = 0; i < n; i++) {
        int64_t ne[2] = {ts[i].ne0, ts[i].ne1};
        T_ASSERT(!vkl_gguf_writer_add_tensor(w, ts[i].name, ts[i].type, 2, ne, zeros_buf, &err), "%s", err.msg);
    }
    T_ASSERT(!vkl_gguf_writer_write(w, path, &err), "%s", err.msg);
    vkl_gguf_writer_free(w);
    return 0;
}

static int expect_load_error(const vkl_model *m, const char *path, const char *want) {
    vkl_err err = {0};
    vkl_lora *l = NULL;
    vkl_status rc = vkl_adapter_load(path, m, &l, &err);
    if (rc == VKL_OK) {
        vkl_lora_free(l);
        T_FAIL("%s: accepted, expected an error with '%s'", path, want);
    }
    T_ASSERT(l == NULL && rc == VKL_ERR_INPUT, "input error");
    T_ASSERT(contains(err.msg, want), "%s: message '%s' lacks '%s'", path, err.msg, want);
    return 0;
}

static int test_malformed_adapters(void) {
    vkl_model *m = load_model(t_data_path(STORIES));
    T_ASSERT(m, "model");
    const int64_t C = m->hp.n_embd, KVD = (int64_t)m->hp.n_head_kv * m->hp.head_dim;
    char path[512];
    int fails = 0;
    const fake_tensor good[] = {{"blk.0.attn_q.weight.lora_a", C, 4, VKL_TYPE_F32},
                                {"blk.0.attn_q.weight.lora_b", 4, C, VKL_TYPE_F32},
                                {"blk.1.attn_k.weight.lora_a", C, 4, VKL_TYPE_F32},
                                {"blk.1.attn_k.weight.lora_b", 4, KVD, VKL_TYPE_F32}};
    snprintf(path, sizeof(path), "%s/fake-good.gguf", t_tmpdir());
    T_ASSERT(!write_fake_gguf(path, "llama", "adapter", good, 4), "write");
    {
        /* Partial coverage is legal: attn_q of layer 0 and attn_k of layer 1; the other layers get zeros. */
        vkl_err err = {0};
        vkl_lora *l;
        T_ASSERT(!vkl_adapter_load(path, m, &l, &err), "%s", err.msg);
        T_ASSERT(l->target_modules == (VKL_TM_Q | VKL_TM_K) && l->r == 4 && l->scale == 2.0f, "partial adapter");
        vkl_lora_free(l);
    }
    snprintf(path, sizeof(path), "%s/fake-arch.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "qwen2", "adapter", good, 4) || expect_load_error(m, path, "general.architecture");
    snprintf(path, sizeof(path), "%s/fake-type.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "model", good, 4) || expect_load_error(m, path, "general.type");
    fails |= expect_load_error(m, t_data_path(STORIES), "general.type");
    const fake_tensor missing_b[] = {good[0], good[1], good[2]};
    snprintf(path, sizeof(path), "%s/fake-missing-b.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "adapter", missing_b, 3) ||
             expect_load_error(m, path, "'blk.1.attn_k.weight.lora_a' has no matching lora_b");
    const fake_tensor wrong_in[] = {{"blk.0.attn_q.weight.lora_a", C + 8, 4, VKL_TYPE_F32}, good[1]};
    snprintf(path, sizeof(path), "%s/fake-in.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "adapter", wrong_in, 2) || expect_load_error(m, path, "input features");
    const fake_tensor wrong_out[] = {good[0], {"blk.0.attn_q.weight.lora_b", 4, KVD, VKL_TYPE_F32}};
    snprintf(path, sizeof(path), "%s/fake-out.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "adapter", wrong_out, 2) || expect_load_error(m, path, "output features");
    const fake_tensor wrong_r[] = {good[0], {"blk.0.attn_q.weight.lora_b", 5, C, VKL_TYPE_F32}};
    snprintf(path, sizeof(path), "%s/fake-r.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "adapter", wrong_r, 2) || expect_load_error(m, path, "rank");
    const fake_tensor mixed_r[] = {good[0], good[1], {"blk.1.attn_k.weight.lora_a", C, 2, VKL_TYPE_F32},
                                   {"blk.1.attn_k.weight.lora_b", 2, KVD, VKL_TYPE_F32}};
    snprintf(path, sizeof(path), "%s/fake-mixed-r.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "adapter", mixed_r, 4) || expect_load_error(m, path, "per-module ranks");
    const fake_tensor unknown[] = {good[0], good[1], {"output.weight.lora_a", C, 4, VKL_TYPE_F32}};
    snprintf(path, sizeof(path), "%s/fake-unknown.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "adapter", unknown, 3) ||
             expect_load_error(m, path, "'output.weight.lora_a' is not a LoRA tensor");
    const fake_tensor layer[] = {{"blk.99.attn_q.weight.lora_a", C, 4, VKL_TYPE_F32}};
    snprintf(path, sizeof(path), "%s/fake-layer.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "adapter", layer, 1) || expect_load_error(m, path, "5 layers");
    const fake_tensor quant[] = {{"blk.0.attn_q.weight.lora_a", C, 4, VKL_TYPE_Q8_0}, good[1]};
    snprintf(path, sizeof(path), "%s/fake-q8.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "adapter", quant, 2) || expect_load_error(m, path, "f32, f16 or bf16");
    snprintf(path, sizeof(path), "%s/fake-empty.gguf", t_tmpdir());
    fails |= write_fake_gguf(path, "llama", "adapter", good, 0) || expect_load_error(m, path, "no LoRA tensors");

    /* PEFT directories. */
    vkl_err err = {0};
    vkl_lora *l;
    T_ASSERT(!vkl_lora_create(m, VKL_TM_Q | VKL_TM_V, 4, 8, false, &l, &err), "%s", err.msg);
    fill_random(l, 3);
    char dir[512], file[700], cmd[1600];
    snprintf(dir, sizeof(dir), "%s/peft-bad", t_tmpdir());
    T_ASSERT(!vkl_adapter_save_peft(l, m, dir, &err), "%s", err.msg);
    snprintf(file, sizeof(file), "%s/adapter_config.json", dir);
    cJSON *c = read_json(file);
    T_ASSERT(c, "config");
    char *good_cfg = cJSON_Print(c);
    cJSON_ReplaceItemInObject(c, "r", cJSON_CreateNumber(8));
    char *text = cJSON_Print(c);
    T_ASSERT(!vkl_write_file_atomic(file, text, strlen(text), "test", &err), "%s", err.msg);
    fails |= expect_load_error(m, dir, "r = 8 but the tensors");
    free(text);
    cJSON_ReplaceItemInObject(c, "r", cJSON_CreateNumber(4));
    cJSON_ReplaceItemInObject(c, "fan_in_fan_out", cJSON_CreateTrue());
    text = cJSON_Print(c);
    T_ASSERT(!vkl_write_file_atomic(file, text, strlen(text), "test", &err), "%s", err.msg);
    fails |= expect_load_error(m, dir, "fan_in_fan_out = true is not supported");
    free(text);
    T_ASSERT(!vkl_write_file_atomic(file, "{\"r\": 4,", 8, "test", &err), "%s", err.msg);
    fails |= expect_load_error(m, dir, "not a JSON object");
    unlink(file);
    fails |= expect_load_error(m, dir, "adapter_config.json");
    T_ASSERT(!vkl_write_file_atomic(file, good_cfg, strlen(good_cfg), "test", &err), "%s", err.msg);
    {
        vkl_lora *back;
        T_ASSERT(!vkl_adapter_load(dir, m, &back, &err), "restored config loads: %s", err.msg);
        vkl_lora_free(back);
    }
    /* An extra tensor PEFT would write for modules_to_save. */
    {
        snprintf(file, sizeof(file), "%s/adapter_model.safetensors", dir);
        vkl_safetensors *st;
        T_ASSERT(!vkl_safetensors_open(file, &st, &err), "%s", err.msg);
        vkl_st_writer *w = vkl_st_writer_new();
        for (uint64_t i = 0; i < st->n_tensors; i++)
            vkl_st_writer_add(w, st->tensors[i].name, st->tensors[i].dtype, st->tensors[i].n_dims,
                              st->tensors[i].shape, st->tensors[i].data, &err);
        const uint64_t s[2] = {2, 2};
        vkl_st_writer_add(w, "base_model.model.lm_head.weight", VKL_ST_F32, 2, s, zeros_buf, &err);
        char extra[512];
        snprintf(extra, sizeof(extra), "%s/peft-extra", t_tmpdir());
        mkdir(extra, 0755);
        snprintf(file, sizeof(file), "%s/adapter_model.safetensors", extra);
        T_ASSERT(!vkl_st_writer_write(w, file, &err), "%s", err.msg);
        vkl_st_writer_free(w);
        vkl_safetensors_close(st);
        snprintf(cmd, sizeof(cmd), "cp %s/adapter_config.json %s/", dir, extra);
        T_ASSERT(t_run(cmd, NULL, NULL) == 0, "cp");
        fails |= expect_load_error(m, extra, "'base_model.model.lm_head.weight' is not a LoRA weight");
        /* Through the file path too (config found next to it). */
        fails |= expect_load_error(m, file, "lm_head");
    }
    /* A directory with only the pickle format. */
    {
        char bin[512];
        snprintf(bin, sizeof(bin), "%s/peft-bin", t_tmpdir());
        mkdir(bin, 0755);
        snprintf(file, sizeof(file), "%s/adapter_model.bin", bin);
        T_ASSERT(!vkl_write_file_atomic(file, "PK", 2, "test", &err), "%s", err.msg);
        fails |= expect_load_error(m, bin, "safe_serialization");
    }
    /* A truncated weights file is caught by the safetensors reader, named. */
    {
        snprintf(file, sizeof(file), "%s/adapter_model.safetensors", dir);
        snprintf(cmd, sizeof(cmd), "truncate -s -16 %s", file);
        T_ASSERT(t_run(cmd, NULL, NULL) == 0, "truncate");
        fails |= expect_load_error(m, dir, "end past the data section");
    }
    /* PEFT import against a base of another shape: qwen2 tiny has other widths. */
    const char *q = qwen2_path();
    if (q) {
        vkl_model *qm = load_model(q);
        T_ASSERT(qm, "qwen2");
        snprintf(path, sizeof(path), "%s/fake-good.gguf", t_tmpdir());
        fails |= expect_load_error(qm, path, "general.architecture is llama but the base model is qwen2");
        vkl_model_free(qm);
    }
    fails |= expect_load_error(m, "/nonexistent/adapter", "/nonexistent/adapter");
    cJSON_free(good_cfg);
    cJSON_Delete(c);
    vkl_lora_free(l);
    vkl_model_free(m);
    T_ASSERT(!fails, "malformed adapter cases failed");
    return 0;
}

/* The row map itself against the definition written out by hand for one head of 8. */
static int test_row_map(void) {
    /* HF head rows 0..3 are the first rotary half, 4..7 the second; GGUF interleaves them: 0 4 1 5 2 6 3 7. */
    const uint32_t want[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    for (uint32_t g = 0; g < 16; g++)
        T_ASSERT(vkl_adapter_hf_row_of_gguf_row(g, 8) == (g / 8) * 8 + want[g % 8], "row %u", g);
    bool seen[64] = {false};
    for (uint32_t g = 0; g < 64; g++) seen[vkl_adapter_hf_row_of_gguf_row(g, 16)] = true;
    for (int i = 0; i < 64; i++) T_ASSERT(seen[i], "a permutation: HF row %d hit", i);
    return 0;
}

const vkl_test_case vkl_tests_adapter[] = {
    {"adapter/lora_layout_stories260K", test_layout},
    {"adapter/lora_init_statistics", test_init},
    {"adapter/safetensors_roundtrip", test_safetensors_roundtrip},
    {"adapter/safetensors_malformed", test_safetensors_malformed},
    {"adapter/gguf_roundtrip", test_gguf_roundtrip},
    {"adapter/gguf_rslora_alpha", test_gguf_rslora},
    {"adapter/gguf_foreign_f16", test_gguf_foreign},
    {"adapter/peft_roundtrip", test_peft_roundtrip},
    {"adapter/peft_row_map", test_row_map},
    {"adapter/peft_permutation_llama_numpy", test_peft_permutation_llama},
    {"adapter/peft_qwen2_not_permuted", test_peft_qwen2_not_permuted},
    {"adapter/malformed_adapters", test_malformed_adapters},
    {NULL, NULL},
};
