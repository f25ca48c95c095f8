/* Scalar reference of the transformer ops (src/ref/nn.h): the math is written once in double; the float entry
 * points convert their arguments, so float and double results differ only by the final rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ref/nn.h"
#include "vklora/quant.h"

static double *to_d(const float *x, uint64_t n) {
    if (!x) return NULL;
    double *d = vkl_malloc(n * sizeof(double));
    for (uint64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* Copy back and free. */
static void from_d(float *dst, double *src, uint64_t n) {
    if (dst && src)
        for (uint64_t i = 0; i < n; i++) dst[i] = (float)src[i];
    free(src);
}

bool vkl_ref_get_rows(uint32_t type, const void *table, const int32_t *ids, uint32_t n_ids, uint32_t n, float *out) {
    uint64_t row_bytes;
    if (!vkl_type_row_bytes(type, n, &row_bytes)) return false;
    for (uint32_t i = 0; i < n_ids; i++)
        if (!vkl_ref_dequantize(type, (const uint8_t *)table + (uint64_t)ids[i] * row_bytes, out + (uint64_t)i * n, n))
            return false;
    return true;
}

/* ---- RMSNorm ---- */

void vkl_ref_rmsnorm_f64(const double *x, const double *w, double *y, double *rstd, uint32_t rows, uint32_t n,
                         double eps) {
    for (uint32_t r = 0; r < rows; r++) {
        const double *xr = x + (uint64_t)r * n;
        double *yr = y + (uint64_t)r * n;
        double ss = 0;
        for (uint32_t i = 0; i < n; i++) ss += xr[i] * xr[i];
        double rs = 1.0 / sqrt(ss / n + eps);
        if (rstd) rstd[r] = rs;
        for (uint32_t i = 0; i < n; i++) yr[i] = xr[i] * rs * w[i];
    }
}

void vkl_ref_rmsnorm(const float *x, const float *w, float *y, float *rstd, uint32_t rows, uint32_t n, float eps) {
    uint64_t m = (uint64_t)rows * n;
    double *xd = to_d(x, m), *wd = to_d(w, n), *yd = vkl_malloc(m * sizeof(double) + 1);
    double *rd = rstd ? vkl_malloc(rows * sizeof(double) + 1) : NULL;
    vkl_ref_rmsnorm_f64(xd, wd, yd, rd, rows, n, eps);
    from_d(y, yd, m);
    from_d(rstd, rd, rows);
    free(xd);
    free(wd);
}

/* y = x r w with r = (mean(x^2) + eps)^-1/2 and dr/dx_i = -r^3 x_i / n give
 * dx_i = r (w_i dy_i - x_i r^2 sum_j(w_j dy_j x_j) / n),  dw_i = sum_rows dy_i x_i r. */
void vkl_ref_rmsnorm_back_f64(const double *x, const double *w, const double *rstd, const double *dy, double *dx,
                              bool accumulate, double *dw, uint32_t rows, uint32_t n) {
    for (uint32_t r = 0; r < rows; r++) {
        const double *xr = x + (uint64_t)r * n, *dyr = dy + (uint64_t)r * n;
        double *dxr = dx + (uint64_t)r * n;
        double rs = rstd[r], dot = 0;
        for (uint32_t i = 0; i < n; i++) dot += w[i] * dyr[i] * xr[i];
        double c = rs * rs * dot / n;
        for (uint32_t i = 0; i < n; i++) {
            double g = rs * (w[i] * dyr[i] - xr[i] * c);
            dxr[i] = accumulate ? dxr[i] + g : g;
            if (dw) dw[i] += dyr[i] * xr[i] * rs;
        }
    }
}

void vkl_ref_rmsnorm_back(const float *x, const float *w, const float *rstd, const float *dy, float *dx,
                          bool accumulate, float *dw, uint32_t rows, uint32_t n) {
    uint64_t m = (uint64_t)rows * n;
    double *xd = to_d(x, m), *wd = to_d(w, n), *rd = to_d(rstd, rows), *dyd = to_d(dy, m), *dxd = to_d(dx, m);
    double *dwd = to_d(dw, n);
    vkl_ref_rmsnorm_back_f64(xd, wd, rd, dyd, dxd, accumulate, dwd, rows, n);
    from_d(dx, dxd, m);
    from_d(dw, dwd, n);
    free(xd);
    free(wd);
    free(rd);
    free(dyd);
}

/* ---- RoPE ---- */

void vkl_ref_rope_f64(double *x, const int32_t *pos, uint32_t rows, uint32_t n_heads, uint32_t head_dim,
                      uint32_t rope_dim, bool neox, const double *freqs, double mscale, bool inverse) {
    uint32_t np = rope_dim / 2;
    for (uint32_t r = 0; r < rows; r++) {
        for (uint32_t i = 0; i < np; i++) {
            double theta = pos[r] * freqs[i];
            double c = mscale * cos(theta), s = mscale * (inverse ? -sin(theta) : sin(theta));
            uint32_t i0 = neox ? i : 2 * i, i1 = neox ? i + np : 2 * i + 1;
            for (uint32_t h = 0; h < n_heads; h++) {
                double *xh = x + ((uint64_t)r * n_heads + h) * head_dim;
                double x0 = xh[i0], x1 = xh[i1];
                xh[i0] = x0 * c - x1 * s;
                xh[i1] = x0 * s + x1 * c;
            }
        }
    }
}

void vkl_ref_rope(float *x, const int32_t *pos, uint32_t rows, uint32_t n_heads, uint32_t head_dim,
                  uint32_t rope_dim, bool neox, const double *freqs, double mscale, bool inverse) {
    uint64_t m = (uint64_t)rows * n_heads * head_dim;
    double *xd = to_d(x, m);
    vkl_ref_rope_f64(xd, pos, rows, n_heads, head_dim, rope_dim, neox, freqs, mscale, inverse);
    from_d(x, xd, m);
}

/* ---- attention ---- */

static uint64_t q_idx(const vkl_attn_shape *s, uint32_t b, uint32_t t, uint32_t h) {
    return (((uint64_t)b * s->T + t) * s->n_head + h) * s->D;
}
static uint64_t kv_idx(const vkl_attn_shape *s, uint32_t b, uint32_t j, uint32_t g) {
    return (((uint64_t)b * s->S + j) * s->n_head_kv + g) * s->D;
}
static double dotd(const double *a, const double *b, uint32_t n) {
    double r = 0;
    for (uint32_t i = 0; i < n; i++) r += a[i] * b[i];
    return r;
}
/* Keys [*lo, *hi] seen by query t of sequence b (empty when lo > hi): from its segment start, and with a window
 * only keys j with pos0 + t - j < window. */
static void key_range(const vkl_attn_shape *s, const int32_t *seg, uint32_t b, uint32_t t, int64_t *lo, int64_t *hi) {
    *lo = seg && seg[(uint64_t)b * s->T + t] > 0 ? seg[(uint64_t)b * s->T + t] : 0;
    *hi = (int64_t)s->pos0 + t;
    if (s->window && *hi - (int64_t)s->window + 1 > *lo) *lo = *hi - (int64_t)s->window + 1;
}
/* The score the softmax sees (soft-capped when softcap > 0) and its derivative by the raw score. */
static double cap_score(const vkl_attn_shape *s, double raw, double *dcap) {
    if (!(s->softcap > 0)) {
        if (dcap) *dcap = 1;
        return raw;
    }
    double t = tanh(raw / s->softcap);
    if (dcap) *dcap = 1 - t * t;
    return s->softcap * t;
}

void vkl_ref_attention_f64(const vkl_attn_shape *s, const double *q, const double *k, const double *v,
                           const int32_t *seg, double *out, double *lse) {
    uint32_t group = s->n_head / s->n_head_kv;
    double *sc = vkl_malloc(((size_t)s->S + 1) * sizeof(double));
    for (uint32_t b = 0; b < s->n_seq; b++)
        for (uint32_t t = 0; t < s->T; t++)
            for (uint32_t h = 0; h < s->n_head; h++) {
                uint32_t g = h / group;
                const double *qi = q + q_idx(s, b, t, h);
                double *o = out + q_idx(s, b, t, h);
                int64_t lo, hi;
                key_range(s, seg, b, t, &lo, &hi);
                double m = -INFINITY, l = 0;
                for (int64_t j = lo; j <= hi; j++) {
                    sc[j] = cap_score(s, s->scale * dotd(qi, k + kv_idx(s, b, (uint32_t)j, g), s->D), NULL);
                    if (sc[j] > m) m = sc[j];
                }
                for (uint32_t d = 0; d < s->D; d++) o[d] = 0;
                for (int64_t j = lo; j <= hi; j++) {
                    double p = exp(sc[j] - m);
                    l += p;
                    const double *vj = v + kv_idx(s, b, (uint32_t)j, g);
                    for (uint32_t d = 0; d < s->D; d++) o[d] += p * vj[d];
                }
                if (l > 0)
                    for (uint32_t d = 0; d < s->D; d++) o[d] /= l;
                if (lse) lse[((uint64_t)b * s->n_head + h) * s->T + t] = l > 0 ? m + log(l) : -INFINITY;
            }
    free(sc);
}

void vkl_ref_attention_back_f64(const vkl_attn_shape *s, const double *q, const double *k, const double *v,
                                const int32_t *seg, const double *out, const double *lse, const double *dout,
                                double *dq, double *dk, double *dv) {
    uint32_t group = s->n_head / s->n_head_kv;
    for (uint32_t b = 0; b < s->n_seq; b++)
        for (uint32_t t = 0; t < s->T; t++)
            for (uint32_t h = 0; h < s->n_head; h++) {
                uint32_t g = h / group;
                uint64_t qo = q_idx(s, b, t, h);
                const double *qi = q + qo, *doi = dout + qo;
                double *dqi = dq + qo;
                double di = dotd(doi, out + qo, s->D), l = lse[((uint64_t)b * s->n_head + h) * s->T + t];
                int64_t lo, hi;
                key_range(s, seg, b, t, &lo, &hi);
                for (uint32_t d = 0; d < s->D; d++) dqi[d] = 0;
                for (int64_t j = lo; j <= hi; j++) {
                    uint64_t ko = kv_idx(s, b, (uint32_t)j, g);
                    double dcap, p = exp(cap_score(s, s->scale * dotd(qi, k + ko, s->D), &dcap) - l);
                    double ds = p * (dotd(doi, v + ko, s->D) - di) * dcap;
                    for (uint32_t d = 0; d < s->D; d++) {
                        dqi[d] += s->scale * ds * k[ko + d];
                        dk[ko + d] += s->scale * ds * qi[d];
                        dv[ko + d] += p * doi[d];
                    }
                }
            }
}

void vkl_ref_attention(const vkl_attn_shape *s, const float *q, const float *k, const float *v, const int32_t *seg,
                       float *out, float *lse) {
    uint64_t nq = (uint64_t)s->n_seq * s->T * s->n_head * s->D, nkv = (uint64_t)s->n_seq * s->S * s->n_head_kv * s->D;
    uint64_t nl = (uint64_t)s->n_seq * s->n_head * s->T;
    double *qd = to_d(q, nq), *kd = to_d(k, nkv), *vd = to_d(v, nkv), *od = vkl_malloc(nq * sizeof(double) + 1);
    double *ld = lse ? vkl_malloc(nl * sizeof(double) + 1) : NULL;
    vkl_ref_attention_f64(s, qd, kd, vd, seg, od, ld);
    from_d(out, od, nq);
    from_d(lse, ld, nl);
    free(qd);
    free(kd);
    free(vd);
}

void vkl_ref_attention_back(const vkl_attn_shape *s, const float *q, const float *k, const float *v,
                            const int32_t *seg, const float *out, const float *lse, const float *dout, float *dq,
                            float *dk, float *dv) {
    uint64_t nq = (uint64_t)s->n_seq * s->T * s->n_head * s->D, nkv = (uint64_t)s->n_seq * s->S * s->n_head_kv * s->D;
    uint64_t nl = (uint64_t)s->n_seq * s->n_head * s->T;
    double *qd = to_d(q, nq), *kd = to_d(k, nkv), *vd = to_d(v, nkv), *od = to_d(out, nq), *ld = to_d(lse, nl);
    double *dod = to_d(dout, nq), *dqd = vkl_malloc(nq * sizeof(double) + 1), *dkd = to_d(dk, nkv),
           *dvd = to_d(dv, nkv);
    vkl_ref_attention_back_f64(s, qd, kd, vd, seg, od, ld, dod, dqd, dkd, dvd);
    from_d(dq, dqd, nq);
    from_d(dk, dkd, nkv);
    from_d(dv, dvd, nkv);
    free(qd);
    free(kd);
    free(vd);
    free(od);
    free(ld);
    free(dod);
}

/* ---- SwiGLU, add ---- */

void vkl_ref_swiglu_f64(const double *g, const double *u, double *h, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) h[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
}

void vkl_ref_swiglu(const float *g, const float *u, float *h, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        double gd = g[i];
        h[i] = (float)(gd / (1.0 + exp(-gd)) * u[i]);
    }
}

void vkl_ref_swiglu_back_f64(const double *g, const double *u, const double *dh, double *dg, double *du,
                             uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        double gi = g[i], ui = u[i], d = dh[i], sg = 1.0 / (1.0 + exp(-gi));
        dg[i] = d * ui * sg * (1.0 + gi * (1.0 - sg));
        du[i] = d * gi * sg;
    }
}

void vkl_ref_swiglu_back(const float *g, const float *u, const float *dh, float *dg, float *du, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        double gi = g[i], ui = u[i], d = dh[i], sg = 1.0 / (1.0 + exp(-gi));
        double a = d * ui * sg * (1.0 + gi * (1.0 - sg)), b = d * gi * sg;
        dg[i] = (float)a; /* written after every read of element i, so dg may alias g and du may alias u */
        du[i] = (float)b;
    }
}

void vkl_ref_add(const float *a, const float *b, float alpha, float *y, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) y[i] = (float)((double)a[i] + (double)alpha * b[i]);
}

/* ---- GEGLU, soft-capping, scaling ---- */

/* PyTorch's gelu(approximate='tanh'); in double no term overflows for any float input (|x|^3 < 1e116). */
static double gelu_tanh(double x) {
    const double k = 0.79788456080286535588; /* sqrt(2/pi) */
    return 0.5 * x * (1.0 + tanh(k * (x + 0.044715 * x * x * x)));
}
static double gelu_tanh_grad(double x) {
    const double k = 0.79788456080286535588;
    double t = tanh(k * (x + 0.044715 * x * x * x));
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * 0.044715 * x * x);
}

void vkl_ref_geglu_f64(const double *g, const double *u, double *h, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) h[i] = gelu_tanh(g[i]) * u[i];
}

void vkl_ref_geglu(const float *g, const float *u, float *h, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) h[i] = (float)(gelu_tanh(g[i]) * u[i]);
}

void vkl_ref_geglu_back_f64(const double *g, const double *u, const double *dh, double *dg, double *du,
                            uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        double gi = g[i], ui = u[i], d = dh[i];
        dg[i] = d * ui * gelu_tanh_grad(gi);
        du[i] = d * gelu_tanh(gi);
    }
}

void vkl_ref_geglu_back(const float *g, const float *u, const float *dh, float *dg, float *du, uint64_t n) {
    for (uint64_t i = 0; i < n; i++) {
        double gi = g[i], ui = u[i], d = dh[i];
        double a = d * ui * gelu_tanh_grad(gi), b = d * gelu_tanh(gi);
        dg[i] = (float)a; /* written after every read of element i, so dg may alias g and du may alias u */
        du[i] = (float)b;
    }
}

void vkl_ref_softcap_f64(const double *x, double *y, uint64_t n, double cap) {
    for (uint64_t i = 0; i < n; i++) y[i] = cap * tanh(x[i] / cap);
}

void vkl_ref_softcap(const float *x, float *y, uint64_t n, float cap) {
    for (uint64_t i = 0; i < n; i++) y[i] = (float)((double)cap * tanh((double)x[i] / cap));
}

void vkl_ref_softcap_back_f64(const double *y, const double *dy, double *dx, uint64_t n, double cap) {
    for (uint64_t i = 0; i < n; i++) {
        double r = y[i] / cap;
        dx[i] = dy[i] * (1.0 - r * r);
    }
}

void vkl_ref_softcap_back(const float *y, const float *dy, float *dx, uint64_t n, float cap) {
    for (uint64_t i = 0; i < n; i++) {
        double r = (double)y[i] / cap;
        dx[i] = (float)(dy[i] * (1.0 - r * r));
    }
}

void vkl_ref_scale(const float *x, float *y, uint64_t n, float s) {
    for (uint64_t i = 0; i < n; i++) y[i] = (float)((double)s * x[i]);
}

void vkl_ref_scale_rows_f64(const double *x, const double *factors, double *y, uint32_t rows, uint32_t n) {
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t i = 0; i < n; i++) y[(uint64_t)r * n + i] = factors[r] * x[(uint64_t)r * n + i];
}

void vkl_ref_scale_rows(const float *x, const float *factors, float *y, uint32_t rows, uint32_t n) {
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t i = 0; i < n; i++)
            y[(uint64_t)r * n + i] = (float)((double)factors[r] * x[(uint64_t)r * n + i]);
}

/* ---- cross-entropy ---- */

void vkl_ref_cross_entropy_f64(const double *logits, const int32_t *targets, uint32_t rows, uint32_t V, double *nll,
                               double *dlogits, double grad_scale) {
    for (uint32_t r = 0; r < rows; r++) {
        const double *x = logits + (uint64_t)r * V;
        int32_t t = targets[r];
        bool use = t >= 0 && (uint32_t)t < V;
        double m = -INFINITY, se = 0;
        for (uint32_t i = 0; i < V; i++) m = x[i] > m ? x[i] : m;
        for (uint32_t i = 0; i < V; i++) se += exp(x[i] - m);
        double xt = use ? x[t] : 0;
        if (nll) nll[r] = t < 0 ? 0.0 : use ? log(se) + m - xt : NAN;
        if (dlogits) {
            double *dx = dlogits + (uint64_t)r * V;
            for (uint32_t i = 0; i < V; i++)
                dx[i] = use ? (exp(x[i] - m) / se - ((int32_t)i == t ? 1.0 : 0.0)) * grad_scale : 0.0;
        }
    }
}

void vkl_ref_cross_entropy(const float *logits, const int32_t *targets, uint32_t rows, uint32_t V, float *nll,
                           float *dlogits, float grad_scale) {
    uint64_t m = (uint64_t)rows * V;
    double *xd = to_d(logits, m);
    double *nd = nll ? vkl_malloc(rows * sizeof(double) + 1) : NULL;
    double *dd = dlogits ? vkl_malloc(m * sizeof(double) + 1) : NULL;
    vkl_ref_cross_entropy_f64(xd, targets, rows, V, nd, dd, grad_scale);
    from_d(nll, nd, rows);
    from_d(dlogits, dd, m);
    free(xd);
}
