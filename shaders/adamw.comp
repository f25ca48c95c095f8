#version 450
// AdamW step over a slice of the flat LoRA vectors, as torch.optim.AdamW: decoupled weight decay, bias-corrected
// moments, eps added to sqrt(v_hat); gradients first scaled by the global-norm clip factor computed from the
// squared norm that sumsq.comp left in the hyper-parameter buffer (no host round trip inside a step).
layout(local_size_x_id = 0) in;

layout(binding = 0) buffer P { float p[]; };
layout(binding = 1) readonly buffer G { float g[]; };
layout(binding = 2) buffer M1 { float m1[]; };
layout(binding = 3) buffer M2 { float m2[]; };
// Mirrors vkl_adamw_hyper in src/ops/optim.h.
layout(binding = 4) readonly buffer Hyper {
    float lr, beta1, beta2, eps, weight_decay, bc1, bc2_sqrt, max_norm, sumsq;
} h;

layout(push_constant) uniform Push {
    uint n;
    uint pad0, pad1, pad2;
} pc;

#include "common/grid.glsl"

void main() {
    uint i = inv_linear();
    if (i >= pc.n) return;
    float norm = sqrt(h.sumsq);
    float clip = h.max_norm > 0.0 ? min(1.0, h.max_norm / (norm + 1e-6)) : 1.0;
    float gi = g[i] * clip;
    float pi = p[i] * (1.0 - h.lr * h.weight_decay);
    float mi = m1[i] + (gi - m1[i]) * (1.0 - h.beta1);
    float vi = m2[i] * h.beta2 + (1.0 - h.beta2) * gi * gi;
    float denom = sqrt(vi) / h.bc2_sqrt + h.eps;
    p[i] = pi - (h.lr / h.bc1) * (mi / denom);
    m1[i] = mi;
    m2[i] = vi;
}
