/* Helpers shared by the subcommands: number parsing with clear messages, whole-file reads, and opening a model
 * session (device + weights + tokenizer). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "platform.h"
#include "vk/vk.h"

bool vkl_cli_parse_u32(const char *cmd, const char *opt, const char *val, uint32_t min, uint32_t max, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = val && *val ? strtoull(val, &end, 10) : 0;
    if (!val || !*val || *end || errno || val[0] == '-' || v < min || v > max) {
        vkl_cli_usage(cmd, "%s: expected an integer %u..%u, got '%s'", opt, min, max, val ? val : "");
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool vkl_cli_parse_f32(const char *cmd, const char *opt, const char *val, float min, float max, float *out) {
    char *end;
    errno = 0;
    double v = val && *val ? strtod(val, &end) : NAN;
    if (!val || !*val || *end || errno || !(v >= min && v <= max)) {
        vkl_cli_usage(cmd, "%s: expected a number %g..%g, got '%s'", opt, min, max, val ? val : "");
        return false;
    }
    *out = (float)v;
    return true;
}

int vkl_cli_parse(const char *cmd, int argc, char **argv, const vkl_cli_opt *opts, size_t n_opts, const char *help) {
    int n_pos = 0;
    return vkl_cli_parse_pos(cmd, argc, argv, opts, n_opts, help, NULL, 0, &n_pos);
}

int vkl_cli_parse_pos(const char *cmd, int argc, char **argv, const vkl_cli_opt *opts, size_t n_opts, const char *help,
                      const char **pos, int max_pos, int *n_pos) {
    *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (vkl_cli_is_help(a)) {
            fputs(help, stdout);
            return 0;
        }
        if (max_pos && (a[0] != '-' || !a[1])) {
            if (*n_pos == max_pos) return vkl_cli_usage(cmd, "unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        const vkl_cli_opt *o = NULL;
        for (size_t k = 0; k < n_opts && !o; k++)
            if (!strcmp(a, opts[k].name)) o = &opts[k];
        if (!o) return vkl_cli_usage(cmd, "unknown option '%s'", a);
        if (o->kind == VKL_OPT_FLAG) {
            *(bool *)o->dst = true;
            continue;
        }
        if (i + 1 >= argc) return vkl_cli_usage(cmd, "%s needs a value", a);
        const char *v = argv[++i];
        switch (o->kind) {
        case VKL_OPT_STR: *(const char **)o->dst = v; break;
        case VKL_OPT_U32:
            if (!vkl_cli_parse_u32(cmd, a, v, (uint32_t)o->min, (uint32_t)o->max, o->dst)) return VKL_ERR_INPUT;
            break;
        case VKL_OPT_F32:
            if (!vkl_cli_parse_f32(cmd, a, v, (float)o->min, (float)o->max, o->dst)) return VKL_ERR_INPUT;
            break;
        default: break;
        }
    }
    return -1;
}

vkl_status vkl_read_file(const char *path, char **data, size_t *len, vkl_err *err) {
    *data = NULL;
    *len = 0;
    FILE *f = vkl_os_fopen(path, "rb");
    if (!f) return vkl_err_set(err, VKL_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = vkl_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = vkl_realloc(buf, cap *= 2);
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return vkl_err_set(err, VKL_ERR_INPUT, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return VKL_OK;
}

vkl_status vkl_session_open(const char *model_path, const char *device, vkl_session *s, vkl_err *err) {
    memset(s, 0, sizeof(*s));
    if (vkl_model_load(model_path, &s->model, err)) return err->status;
    if (vkl_model_tokenizer(s->model, &s->tok, err)) goto fail;
    vkl_vk_options opt = {.device = device};
    if (vkl_vk_create(&opt, &s->vk, err)) goto fail;
    if (vkl_model_upload(s->model, s->vk, err)) goto fail;
    return VKL_OK;
fail:
    vkl_session_close(s);
    return err->status;
}

void vkl_session_close(vkl_session *s) {
    vkl_model_free(s->model); /* before the device: frees the weight buffers */
    vkl_tokenizer_free(s->tok);
    vkl_vk_destroy(s->vk);
    memset(s, 0, sizeof(*s));
}
