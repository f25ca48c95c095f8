#version 450
// Causal grouped-query attention forward with an online softmax: one lane per (query, head). The lanes of a
// workgroup are consecutive queries of one (sequence, head), so they walk the same keys (the union of their
// ranges, taken per subgroup) and the key/value loads are uniform; a lane outside its own range just skips the
// update. A sliding window narrows each lane's range (first_key), so the walk covers the window plus the
// subgroup's spread, not the whole prefix. Scores are soft-capped when asked (cap_score). Writes out and, when
// asked, lse = log-sum-exp of the final scores (-inf for a query with no key). Long sequences come in key slices
// [r0, r1), one dispatch each (llvmpipe's loop limit): a later slice (MERGE) folds its partial softmax into the
// out/lse the earlier ones left.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

#include "common/attn.glsl"
#include "common/grid.glsl"

layout(std430, binding = 4) buffer O { float o[]; };
layout(std430, binding = 5) buffer L { float lse[]; };

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
    int j0 = max(subgroupMin(jlo), int(p.r0)), j1 = min(subgroupMax(jhi), int(p.r1) - 1);

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
        s = cap_score(s);
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
    // This slice's softmax is (m, l, acc); the earlier slices' (lse_prev, 1, out_prev). Merged: weights wp and wc
    // relative to the larger maximum M.
    float wp = 0.0, wc = l > 0.0 ? 1.0 : 0.0, M = m;
    if ((p.flags & MERGE) != 0u) {
        float lp = lse[lse_idx(b, h, t)];
        if (lp > NEG_BIG) { // an earlier slice saw keys (else lse_prev = -inf)
            M = l > 0.0 ? max(m, lp) : lp;
            wp = exp(lp - M);
            wc = l > 0.0 ? exp(m - M) : 0.0;
        }
    }
    float L = wp + l * wc;
    float inv_l = L > 0.0 ? 1.0 / L : 0.0;
    [[dont_unroll]] for (uint d = 0u; d < p.D; d++) {
        float prev = wp > 0.0 ? o[p.out_off + qb + d] * wp : 0.0;
        o[p.out_off + qb + d] = (prev + acc[d] * wc) * inv_l;
    }
    if ((p.flags & HAS_LSE) != 0u) lse[lse_idx(b, h, t)] = L > 0.0 ? M + log(L) : uintBitsToFloat(0xff800000u);
}
