/* Scalar references of the gradient norm and the AdamW step, accumulating in double. */
#include "ref/optim.h"

#include <math.h>

double vkl_ref_sumsq(const float *x, uint64_t n) {
    double s = 0;
    for (uint64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

void vkl_ref_adamw(float *p, const float *g, float *m1, float *m2, const vkl_adamw_hyper *h, uint64_t n) {
    double norm = sqrt((double)h->sumsq);
    double clip = h->max_norm > 0 ? fmin(1.0, h->max_norm / (norm + 1e-6)) : 1.0;
    for (uint64_t i = 0; i < n; i++) {
        double gi = g[i] * clip;
        double pi = p[i] * (1.0 - (double)h->lr * h->weight_decay);
        double mi = m1[i] + (gi - m1[i]) * (1.0 - h->beta1);
        double vi = (double)m2[i] * h->beta2 + (1.0 - h->beta2) * gi * gi;
        double denom = sqrt(vi) / h->bc2_sqrt + h->eps;
        p[i] = (float)(pi - (h->lr / h->bc1) * (mi / denom));
        m1[i] = (float)mi;
        m2[i] = (float)vi;
    }
}
