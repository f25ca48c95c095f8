#version 450
// Cross-entropy over logits [rows, V], one workgroup per row: max, sum of exp, nll = log(sum) + max - x[target],
// and optionally dlogits = (softmax - onehot(target)) * grad_scale. target < 0: ignored row (nll 0, zero
// gradient); target >= V: nll NaN (so a bad target shows in the loss) and a zero gradient.
// dlogits may alias logits: a lane writes only the elements it read itself, after the last reduction.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 256;

// Mirrors vkl_xent_push in src/ops/nn_push.h.
layout(push_constant) uniform Push {
    uint rows, V;
    uint logits_off, targets_off, nll_off, dlogits_off;
    uint has_nll, has_grad;
    float grad_scale;
    uint pad0, pad1, pad2;
} p;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer T { int targets[]; };
layout(std430, binding = 2) writeonly buffer N { float nll[]; };
layout(std430, binding = 3) writeonly buffer DX { float dx[]; };

#include "common/reduce.glsl"
#include "common/grid.glsl"

void main() {
    uint row = wg_linear();
    if (row >= p.rows) return; // uniform over the workgroup
    uint lid = gl_LocalInvocationID.x;
    uint xb = p.logits_off + row * p.V, ob = p.dlogits_off + row * p.V;
    int tgt = targets[p.targets_off + row];
    bool ignored = tgt < 0, bad = tgt >= int(p.V);
    float xt = (!ignored && !bad) ? x[xb + uint(tgt)] : 0.0; // read before any lane writes dlogits

    float mx = -3.402823466e38;
    for (uint i = lid; i < p.V; i += WG) mx = max(mx, x[xb + i]);
    mx = wg_max(mx);
    float se = 0.0;
    for (uint i = lid; i < p.V; i += WG) se += exp(x[xb + i] - mx);
    se = wg_sum(se);

    if (p.has_nll != 0u && lid == 0u)
        nll[p.nll_off + row] = ignored ? 0.0 : bad ? uintBitsToFloat(0x7fc00000u) : log(se) + mx - xt;
    if (p.has_grad == 0u) return;
    float inv = p.grad_scale / se;
    for (uint i = lid; i < p.V; i += WG) {
        float gr = 0.0;
        if (!ignored && !bad) gr = exp(x[xb + i] - mx) * inv - (int(i) == tgt ? p.grad_scale : 0.0);
        dx[ob + i] = gr;
    }
}
