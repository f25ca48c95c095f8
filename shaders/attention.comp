#version 450
// Causal grouped-query attention forward with an online softmax: one lane per (query, head). The lanes of a
// workgroup are consecutive queries of one (sequence, head), so they walk the same keys (the union of their
// ranges, taken per subgroup) and the key/value loads are uniform; a lane outside its own range just skips the
// update. Writes out and, when asked, lse = log-sum-exp of the scaled scores (-inf for a query with no key).
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

#include "common/attn.glsl"
#include "common/grid.glsl"

layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) writeonly buffer L { float lse[]; };

void main() {
    uint n_tb = (p.T + WG - 1u) / WG;
    uint wid = wg_linear();
    if (wid >= p.n_seq * p.n_head * n_tb) return;
    uint tb = wid % n_tb, h = (wid / n_tb) % p.n_head, b = wid / (n_tb * p.n_head);
    uint g = h / (p.n_head / p.n_head_kv);
    uint t = tb * WG + gl_LocalInvocationID.x;
    bool live = t < p.T;
    int jlo = live ? first_key(b, t) : INT_BIG;
    int jhi = live ? int(p.pos0 + t) : -1;
    int j0 = subgroupMin(jlo), j1 = subgroupMax(jhi);

    float qv[DMAX], acc[DMAX];
    uint qb = live ? q_row(b, t, h) : 0u;
    [[dont_unroll]] for (uint d = 0u; d < p.D; d++) {
        qv[d] = live ? q[p.q_off + qb + d] * p.scale : 0.0;
        acc[d] = 0.0;
    }
    float m = NEG_BIG, l = 0.0;
    for (int j = j0; j <= j1; j++) {
        uint kb = kv_row(b, uint(j), g);
        float s = 0.0;
        [[dont_unroll]] for (uint d = 0u; d < p.D; d++)
            s += qv[d] * k[p.k_off + kb + d];
        bool inr = j >= jlo && j <= jhi;
        float mn = inr ? max(m, s) : m;
        float corr = exp(m - mn);
        float pj = inr ? exp(s - mn) : 0.0;
        l = l * corr + pj;
        [[dont_unroll]] for (uint d = 0u; d < p.D; d++)
            acc[d] = acc[d] * corr + pj * v[p.v_off + kb + d];
        m = mn;
    }
    if (!live) return;
    float inv_l = l > 0.0 ? 1.0 / l : 0.0;
    [[dont_unroll]] for (uint d = 0u; d < p.D; d++)
        o[p.out_off + qb + d] = acc[d] * inv_l;
    if ((p.flags & HAS_LSE) != 0u) lse[lse_idx(b, h, t)] = l > 0.0 ? m + log(l) : uintBitsToFloat(0xff800000u);
}
