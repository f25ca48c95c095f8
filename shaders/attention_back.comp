#version 450
// Causal GQA attention backward (FlashAttention-2 style), probabilities recomputed from q, k and the saved lse:
//   P_ij = exp(cap(scale q_i.k_j) - lse_i), Di = dout_i.out_i, dS_ij = P_ij (dout_i.v_j - Di) cap'
// (cap = softcap * tanh(. / softcap) when soft-capping, cap' = 1 - tanh^2; else identity and 1)
// -DDQ:   one lane per (query, head): dq_i = scale * sum_j dS_ij k_j            (written)
// -DDKDV: one lane per (key, kv head), summing the queries of every head in its GQA group:
//         dk_j += scale * sum_i dS_ij q_i,  dv_j += sum_i P_ij dout_i
// Each output element has exactly one writer, so no atomics. Long sequences come in slices [r0, r1) of the walked
// side, one dispatch each (llvmpipe's loop limit): dq adds up over key slices (MERGE: +=), dk/dv always add. As in the forward, the lanes of a workgroup share
// one (sequence, head) and walk the union of their ranges so the loads of the other side are uniform; with a
// sliding window those ranges (keys of a query, queries of a key) are the window, not the whole sequence.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;

#include "common/attn.glsl"
#include "common/grid.glsl"

layout(std430, binding = 4) readonly buffer O { float o[]; };
layout(std430, binding = 5) readonly buffer L { float lse[]; };
layout(std430, binding = 6) readonly buffer DO { float dout[]; };

#if defined(DQ)
layout(std430, binding = 7) buffer DQb { float dq[]; };

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

    float qv[DMAX], dov[DMAX], acc[DMAX];
    uint qb = live ? q_row(b, t, h) : 0u;
    float di = 0.0;
    [[dont_unroll]] for (uint d = 0u; d < p.D; d++) {
        bool ok = live;
        qv[d] = ok ? q[p.q_off + qb + d] * p.scale : 0.0;
        dov[d] = ok ? dout[p.dout_off + qb + d] : 0.0;
        if (ok) di += dov[d] * o[p.out_off + qb + d];
        acc[d] = 0.0;
    }
    float lse_t = live ? lse[lse_idx(b, h, t)] : 0.0;
    for (int j = j0; j <= j1; j++) {
        uint kb = kv_row(b, uint(j), g);
        float s = 0.0, dp = 0.0;
        [[dont_unroll]] for (uint d = 0u; d < p.D; d++)
            {
                s += qv[d] * k[p.k_off + kb + d];
                dp += dov[d] * v[p.v_off + kb + d];
            }
        float dcap;
        s = cap_score_d(s, dcap);
        bool inr = j >= jlo && j <= jhi;
        float pj = inr ? exp(s - lse_t) : 0.0;
        float ds = pj * (dp - di) * dcap;
        [[dont_unroll]] for (uint d = 0u; d < p.D; d++)
            acc[d] += ds * k[p.k_off + kb + d];
    }
    if (!live) return;
    bool add = (p.flags & MERGE) != 0u;
    [[dont_unroll]] for (uint d = 0u; d < p.D; d++)
        dq[p.dq_off + qb + d] = (add ? dq[p.dq_off + qb + d] : 0.0) + acc[d] * p.scale;
}

#elif defined(DKDV)
layout(std430, binding = 7) buffer DK { float dk[]; };
layout(std430, binding = 8) buffer DV { float dv[]; };

void main() {
    uint n_jb = (p.S + WG - 1u) / WG;
    uint wid = wg_linear();
    if (wid >= p.n_seq * p.n_head_kv * n_jb) return;
    uint jb = wid % n_jb, g = (wid / n_jb) % p.n_head_kv, b = wid / (n_jb * p.n_head_kv);
    uint group = p.n_head / p.n_head_kv;
    uint j = jb * WG + gl_LocalInvocationID.x;
    bool live = j < p.S;
    // Query i sees key j when seg_i <= j <= pos0 + i, so only queries i >= j - pos0 can contribute.
    // With a window, queries past last_query(j) no longer reach key j.
    int ilo = live ? max(int(j) - int(p.pos0), 0) : INT_BIG;
    int ihi = live ? min(last_query(j), int(p.T) - 1) : -1;
    int i0 = max(subgroupMin(ilo), int(p.r0)), i1 = min(subgroupMax(ihi), int(p.r1) - 1);

    float kv[DMAX], vv[DMAX], dka[DMAX], dva[DMAX];
    uint kb = live ? kv_row(b, j, g) : 0u;
    [[dont_unroll]] for (uint d = 0u; d < p.D; d++) {
        bool ok = live;
        kv[d] = ok ? k[p.k_off + kb + d] : 0.0;
        vv[d] = ok ? v[p.v_off + kb + d] : 0.0;
        dka[d] = 0.0;
        dva[d] = 0.0;
    }
    for (int i = i0; i <= i1; i++) {
        bool inr = i >= ilo && i <= ihi && first_key(b, uint(i)) <= int(j);
        for (uint h = g * group; h < (g + 1u) * group; h++) {
            uint qb = q_row(b, uint(i), h);
            float s = 0.0, dp = 0.0, di = 0.0;
            [[dont_unroll]] for (uint d = 0u; d < p.D; d++)
                {
                    float dod = dout[p.dout_off + qb + d];
                    s += q[p.q_off + qb + d] * kv[d];
                    dp += dod * vv[d];
                    di += dod * o[p.out_off + qb + d];
                }
            float dcap;
            s = cap_score_d(s * p.scale, dcap);
            float pij = inr ? exp(s - lse[lse_idx(b, h, uint(i))]) : 0.0;
            float ds = pij * (dp - di) * dcap;
            [[dont_unroll]] for (uint d = 0u; d < p.D; d++)
                {
                    dva[d] += pij * dout[p.dout_off + qb + d];
                    dka[d] += ds * q[p.q_off + qb + d];
                }
        }
    }
    if (!live) return;
    [[dont_unroll]] for (uint d = 0u; d < p.D; d++)
        {
            dk[p.dq_off + kb + d] += dka[d] * p.scale;
            dv[p.dv_off + kb + d] += dva[d];
        }
}
#else
#error "attention_back.comp: define DQ or DKDV"
#endif
