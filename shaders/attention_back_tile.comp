#version 450
// Causal GQA attention backward, register-tiled (same math and contract as attention_back.comp, sliding window
// and soft-capping included):
// -DDQ:   each lane owns R consecutive query rows of one head; every k/v row it loads feeds R rows. With
//         HAS_DELTA it also stores Di = dOi.Oi, which it computes anyway, for the dk/dv pass.
// -DDKDV: each lane owns R consecutive key rows of one KV head; every q/dout row it loads feeds R rows. Di comes
//         from the dq pass (HAS_DELTA) or is recomputed from out for each (query, head).
// Rows are vec4s through RGBA32F texel views, the rows every lane reads fetched once per subgroup (row_own);
// outputs have one writer each.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 2) const uint R = 2; // rows per lane

#define ATTN_TILE
#include "common/attn.glsl"
#include "common/grid.glsl"

layout(binding = 4) uniform samplerBuffer to;
layout(std430, binding = 5) readonly buffer L { float lse[]; };
layout(binding = 6) uniform samplerBuffer tdo;

#if defined(DQ)
layout(std430, binding = 7) writeonly buffer DQb { vec4 dq[]; };
layout(std430, binding = 8) writeonly buffer Db { float delta[]; };

void main() {
    uint rows = WG * R;
    uint n_tb = (p.T + rows - 1u) / rows;
    uint wid = wg_linear();
    if (wid >= p.n_seq * p.n_head * n_tb) return;
    uint tb = wid % n_tb, h = (wid / n_tb) % p.n_head, b = wid / (n_tb * p.n_head);
    uint g = h / (p.n_head / p.n_head_kv);
    uint t0 = tb * rows + gl_LocalInvocationID.x * R;
    uint D4 = p.D / 4u;

    int jlo[R], jhi[R];
    float di[R], lse_r[R];
    vec4 qv[R][DV4], dov[R][DV4], acc[R][DV4];
    int lo = INT_BIG, hi = -1;
    [[unroll]] for (uint r = 0u; r < R; r++) {
        uint t = t0 + r;
        bool live = t < p.T;
        jlo[r] = live ? first_key(b, t) : INT_BIG;
        jhi[r] = live ? int(p.pos0 + t) : -1;
        lo = min(lo, jlo[r]);
        hi = max(hi, jhi[r]);
        uint row = q_row(b, min(t, p.T - 1u), h);
        int qb = int((p.q_off + row) / 4u), ob = int((p.out_off + row) / 4u), db = int((p.dout_off + row) / 4u);
        di[r] = 0.0;
        // Zeros past D keep the padded part of every dot product at 0.
        [[unroll]] for (uint d = 0u; d < DV4; d++) {
            bool ok = live && d < D4;
            qv[r][d] = ok ? texelFetch(tq, qb + int(d)) * p.scale : vec4(0.0);
            dov[r][d] = ok ? texelFetch(tdo, db + int(d)) : vec4(0.0);
            if (ok) di[r] += dot(dov[r][d], texelFetch(to, ob + int(d)));
            acc[r][d] = vec4(0.0);
        }
        lse_r[r] = live ? lse[lse_idx(b, h, t)] : 0.0;
        // Every key slice computes the same Di: the first stores it.
        if (USE_DELTA && live && (p.flags & MERGE) == 0u)
            delta[p.delta_off + (b * p.n_head + h) * p.T + t] = di[r];
    }
    int j0 = subgroupMin(lo), j1 = subgroupMax(hi);
    int kvoff = int(p.k_off / 4u), vvoff = int(p.v_off / 4u);

    for (int j = j0; j <= j1; j++) {
        int row = int(kv_row(b, uint(j), g) / 4u);
        vec4 kown[CW], vown[CW], kd[DV4];
        row_own(tk, kvoff + row, D4, kown);
        row_own(tv, vvoff + row, D4, vown);
        float s[R], dp[R];
        [[unroll]] for (uint r = 0u; r < R; r++) s[r] = dp[r] = 0.0;
        [[unroll]] for (uint d = 0u; d < DV4; d++) {
            kd[d] = row_at(kown, d);
            vec4 vd = row_at(vown, d);
            [[unroll]] for (uint r = 0u; r < R; r++) {
                s[r] += dot(qv[r][d], kd[d]);
                dp[r] += dot(dov[r][d], vd);
            }
        }
        [[unroll]] for (uint r = 0u; r < R; r++) {
            float dcap, sc = cap_score_d(s[r], dcap);
            float pj = j >= jlo[r] && j <= jhi[r] ? exp(sc - lse_r[r]) : 0.0;
            float ds = pj * (dp[r] - di[r]) * dcap;
            [[unroll]] for (uint d = 0u; d < DV4; d++) acc[r][d] += ds * kd[d];
        }
    }

    [[unroll]] for (uint r = 0u; r < R; r++) {
        uint t = t0 + r;
        if (t >= p.T) break;
        uint qb = (p.dq_off + q_row(b, t, h)) / 4u;
        [[unroll]] for (uint d = 0u; d < DV4; d++)
            if (d < D4) dq[qb + d] = acc[r][d] * p.scale;
    }
}

#elif defined(DKDV)
layout(std430, binding = 7) buffer DK { vec4 dk[]; };
layout(std430, binding = 8) buffer DV { vec4 dv[]; };
layout(std430, binding = 9) readonly buffer Db { float delta[]; };

// (query, head) pairs per accumulator update. On lavapipe (LLVM 15, 512 bits; B 2, T 512, 8/4 heads) against one:
// 0.8x the time of the whole backward at D 64, 0.86x at 128, 0.66x at 256; 8 gained no more and took lavapipe 13 s
// to compile. The dq pass taking keys 2 or 4 at a time the same way was slower (1.05-1.2x), so it takes one.
const uint QB = 4u; // = VKL_ATTN_TILE_QB

void main() {
    uint rows = WG * R;
    uint n_jb = (p.S + rows - 1u) / rows;
    uint wid = wg_linear();
    if (wid >= p.n_seq * p.n_head_kv * n_jb) return;
    uint jb = wid % n_jb, g = (wid / n_jb) % p.n_head_kv, b = wid / (n_jb * p.n_head_kv);
    uint group = p.n_head / p.n_head_kv;
    uint jr0 = jb * rows + gl_LocalInvocationID.x * R;
    uint D4 = p.D / 4u;

    int ilo[R];
    vec4 kv[R][DV4], vv[R][DV4], dka[R][DV4], dva[R][DV4];
    int lo = INT_BIG, hi = -1;
    [[unroll]] for (uint r = 0u; r < R; r++) {
        uint j = jr0 + r;
        bool live = j < p.S;
        // Query i sees key j when seg_i <= j <= pos0 + i, so only queries i >= j - pos0 can contribute.
        // With a window, queries past last_query(j) no longer reach key j (first_key masks them below).
        ilo[r] = live ? max(int(j) - int(p.pos0), 0) : INT_BIG;
        lo = min(lo, ilo[r]);
        if (live) hi = max(hi, min(last_query(j), int(p.T) - 1));
        uint row = kv_row(b, min(j, p.S - 1u), g);
        int kb = int((p.k_off + row) / 4u), vb = int((p.v_off + row) / 4u);
        [[unroll]] for (uint d = 0u; d < DV4; d++) {
            bool ok = live && d < D4;
            kv[r][d] = ok ? texelFetch(tk, kb + int(d)) : vec4(0.0);
            vv[r][d] = ok ? texelFetch(tv, vb + int(d)) : vec4(0.0);
            dka[r][d] = vec4(0.0);
            dva[r][d] = vec4(0.0);
        }
    }
    int i0 = subgroupMin(lo), i1 = subgroupMax(hi);
    int qoff = int(p.q_off / 4u), ooff = int(p.out_off / 4u), dooff = int(p.dout_off / 4u);

    // The (query, head) pairs, query-major, QB at a time: each accumulator update sums QB pairs' terms. The
    // accumulators do not fit the registers on CPU devices, so every update is a load and a store there, amortised
    // over QB multiply-adds instead of one.
    // A subgroup whose keys all lie past S has i0 = INT_BIG and i1 = -1: no pairs (i0 * group would wrap).
    int np0 = 0, np1 = 0;
    if (i0 <= i1) {
        np0 = i0 * int(group);
        np1 = (i1 + 1) * int(group);
    }
    for (int pb = np0; pb < np1; pb += int(QB)) {
        vec4 qown[QB][CW], doown[QB][CW];
        float s[QB][R], dp[QB][R], di[QB], l_i[QB];
        int iq[QB], fk[QB];
        bool live[QB];
        [[unroll]] for (uint u = 0u; u < QB; u++) {
            // pairs past the last one repeat it, masked out below
            int pr = min(pb + int(u), np1 - 1);
            live[u] = pb + int(u) < np1;
            iq[u] = pr / int(group);
            uint h = g * group + uint(pr % int(group));
            fk[u] = first_key(b, uint(iq[u]));
            int row = int(q_row(b, uint(iq[u]), h) / 4u);
            row_own(tq, qoff + row, D4, qown[u]);
            row_own(tdo, dooff + row, D4, doown[u]);
            di[u] = 0.0;
            if (USE_DELTA) {
                di[u] = delta[p.delta_off + (b * p.n_head + h) * p.T + uint(iq[u])];
            } else {
                vec4 oown[CW];
                row_own(to, ooff + row, D4, oown);
                // k and v are 0 past D, but out and dout are not: mask the padded part of Di.
                [[unroll]] for (uint d = 0u; d < DV4; d++) {
                    vec4 od = row_at(oown, d), dd = row_at(doown[u], d);
                    if (d < D4) di[u] += dot(dd, od);
                }
            }
            l_i[u] = lse[lse_idx(b, h, uint(iq[u]))];
            [[unroll]] for (uint r = 0u; r < R; r++) s[u][r] = dp[u][r] = 0.0;
        }
        [[unroll]] for (uint d = 0u; d < DV4; d++)
            [[unroll]] for (uint u = 0u; u < QB; u++) {
                vec4 qd = row_at(qown[u], d), dd = row_at(doown[u], d);
                [[unroll]] for (uint r = 0u; r < R; r++) {
                    s[u][r] += dot(qd, kv[r][d]);
                    dp[u][r] += dot(dd, vv[r][d]);
                }
            }
        float pij[QB][R], ds[QB][R];
        [[unroll]] for (uint u = 0u; u < QB; u++)
            [[unroll]] for (uint r = 0u; r < R; r++) {
                int j = int(jr0 + r);
                float dcap, sc = cap_score_d(s[u][r] * p.scale, dcap);
                pij[u][r] = live[u] && iq[u] >= ilo[r] && fk[u] <= j ? exp(sc - l_i[u]) : 0.0;
                ds[u][r] = pij[u][r] * (dp[u][r] - di[u]) * dcap;
            }
        [[unroll]] for (uint d = 0u; d < DV4; d++) {
            vec4 qd[QB], dd[QB];
            [[unroll]] for (uint u = 0u; u < QB; u++) {
                qd[u] = row_at(qown[u], d);
                dd[u] = row_at(doown[u], d);
            }
            [[unroll]] for (uint r = 0u; r < R; r++) {
                vec4 sv = pij[0][r] * dd[0], sk = ds[0][r] * qd[0];
                [[unroll]] for (uint u = 1u; u < QB; u++) {
                    sv += pij[u][r] * dd[u];
                    sk += ds[u][r] * qd[u];
                }
                dva[r][d] += sv;
                dka[r][d] += sk;
            }
        }
    }

    [[unroll]] for (uint r = 0u; r < R; r++) {
        uint j = jr0 + r;
        if (j >= p.S) break;
        uint row = kv_row(b, j, g);
        uint kb = (p.dq_off + row) / 4u, vb = (p.dv_off + row) / 4u;
        [[unroll]] for (uint d = 0u; d < DV4; d++)
            if (d < D4) {
                dk[kb + d] += dka[r][d] * p.scale;
                dv[vb + d] += dva[r][d];
            }
    }
}
#else
#error "attention_back_tile.comp: define DQ or DKDV"
#endif
