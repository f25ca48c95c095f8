#version 450
// Causal GQA attention backward in the FlashAttention-2 form, probabilities recomputed from q, k and the saved lse
// exactly as attention_back.comp (P_ij = exp(cap(scale q_i.k_j) - lse_i), D_i = dout_i.out_i,
// dS_ij = P_ij (dout_i.v_j - D_i) cap'), on blocks in shared memory:
// -DDQ:   a workgroup owns BR query rows of one (sequence, head) and walks the key blocks they see:
//         S = Qs K^T, dP = dO V^T, dS elementwise, dQ += dS K; written dq = scale * dQ.
// -DDKDV: a workgroup owns BC keys of one (sequence, KV head) and walks, for every head of its GQA group, the query
//         blocks that can see them: S, dP as above, dV += P^T dO, dK += dS^T Qs; dk, dv += (each key has one
//         writer, so no atomics).
// Qs = q * scale, so dK needs no further scale. -DFLASH_COOPMAT: the five products on cooperative matrices with f16
// operands and f32 accumulation. Gradients can be tiny or huge, so before the f16 rounding dO is scaled per row,
// dS per row (dq: the product's rows) or per key (dk: a factor of the product's rows), and P / s_i per key (dv),
// each by a power of two (flash_scale) undone exactly on the f32 product.
#extension GL_GOOGLE_include_directive : require
#include "common/attn_flash.glsl"

layout(std430, binding = 4) readonly buffer Ob { float o[]; };
layout(std430, binding = 5) readonly buffer L { float lse[]; };
layout(std430, binding = 6) readonly buffer DO { float dout[]; };

shared OPT sq[BR * SD];  // q * scale
shared OPT sdo[BR * SD]; // dout * srs (row scale)
shared OPT sk[BC * SD];
shared OPT sv[BC * SD];
shared float ss[BR * SF];  // scores, then P (dq) or P / srs (dk/dv)
shared float sdp[BR * SF]; // dO V^T, then dS
shared int slo[BR], shi[BR];
shared float slse[BR], sdi[BR], srs[BR];

#define ST_S(r, c, x) ss[(r) * SF + (c)] = (x)   // S = Qs K^T
#define ST_DP(r, c, x) sdp[(r) * SF + (c)] = (x) // dP * srs = (dO * srs) V^T

// Row r of query t (t < T, else a dead row): its key range, lse, D = dout.out and the power of two for its dout row.
void load_row(uint b, uint h, uint t, uint r) {
    bool live = t < p.T;
    slo[r] = live ? first_key(b, t) : INT_BIG;
    shi[r] = live ? int(p.pos0 + t) : -1;
    float di = 0.0, mx = 0.0;
    uint qb = live ? q_row(b, t, h) : 0u;
    for (uint d = 0u; live && d < p.D; d++) {
        float x = dout[p.dout_off + qb + d];
        di += x * o[p.out_off + qb + d];
        mx = max(mx, abs(x));
    }
    sdi[r] = di;
    srs[r] = flash_scale(mx);
    slse[r] = live ? lse[lse_idx(b, h, t)] : 0.0;
}

// Stage the query-side rows t0.. of head h: q * scale and dout * srs (zeros past T and past D).
void stage_q(uint b, uint h, uint t0, uint tid) {
    for (uint e = tid; e < BR * DP; e += WG) {
        uint r = e / DP, d = e % DP, t = t0 + r;
        bool ok = t < p.T && d < p.D;
        uint qb = ok ? q_row(b, t, h) + d : 0u;
        sq[r * SD + d] = OPT(ok ? q[p.q_off + qb] * p.scale : 0.0);
        sdo[r * SD + d] = OPT(ok ? dout[p.dout_off + qb] * srs[r] : 0.0);
    }
}

// Stage keys j0.. of KV head g (zeros from jend on and past D).
void stage_kv(uint b, uint g, int j0, int jend, uint tid) {
    for (uint e = tid; e < BC * DP; e += WG) {
        uint c = e / DP, d = e % DP;
        int j = j0 + int(c);
        bool ok = j < jend && d < p.D;
        uint kb = ok ? kv_row(b, uint(j), g) + d : 0u;
        sk[c * SD + d] = OPT(ok ? k[p.k_off + kb] : 0.0);
        sv[c * SD + d] = OPT(ok ? v[p.v_off + kb] : 0.0);
    }
}

// Element (r, c) of the block: P and dS from the raw score ss and the scaled dO.V^T in sdp (0 and 0 when key j0 + c
// is outside row r's range).
void prob_ds(uint r, uint c, int j0, out float pr, out float ds) {
    int j = j0 + int(c);
    pr = 0.0;
    ds = 0.0;
    if (j < slo[r] || j > shi[r]) return;
    float dcap;
    float s = cap_score_d(ss[r * SF + c], dcap);
    pr = exp(s - slse[r]);
    ds = pr * (sdp[r * SF + c] / srs[r] - sdi[r]) * dcap;
}

#if defined(DQ)
layout(std430, binding = 7) buffer DQb { float dq[]; };

shared OPT sds[BR * SB]; // dS * sr2 (row scale)
shared float sdq[BR * SO];
shared float sr2[BR];
#define ST_DQ(r, c, x) sdq[(r) * SO + (c)] += (x) / sr2[r] // dQ += (dS * sr2) K / sr2

void main() {
    FLASH_IDS
    uint n_qb = (p.T + BR - 1u) / BR;
    uint wid = wg_linear();
    if (wid >= p.n_seq * p.n_head * n_qb) return;
    uint qb = wid % n_qb, h = (wid / n_qb) % p.n_head, b = wid / (n_qb * p.n_head);
    uint g = h / (p.n_head / p.n_head_kv);
    uint t0 = qb * BR;

    for (uint r = tid; r < BR; r += WG) load_row(b, h, t0 + r, r);
    for (uint e = tid; e < BR * DP; e += WG) sdq[(e / DP) * SO + e % DP] = 0.0;
    barrier();
    stage_q(b, h, t0, tid);
    int jmin = INT_BIG, jmax = -1;
    for (uint r = 0u; r < BR; r++) {
        jmin = min(jmin, slo[r]);
        jmax = max(jmax, shi[r]);
    }
    barrier();

    for (int j0 = jmin; j0 <= jmax; j0 += int(BC)) {
        stage_kv(b, g, j0, jmax + 1, tid);
        barrier();
        BLOCK_PRODUCT(ST_S, sq, ROW, SD, sk, COL, SD, BR, BC, DP)
        BLOCK_PRODUCT(ST_DP, sdo, ROW, SD, sv, COL, SD, BR, BC, DP)
        for (uint r = tid; r < BR; r += WG) {
            float mx = 0.0;
            for (uint c = 0u; c < BC; c++) {
                float pr, ds;
                prob_ds(r, c, j0, pr, ds);
                ss[r * SF + c] = ds;
                mx = max(mx, abs(ds));
            }
            float rs = flash_scale(mx);
            sr2[r] = rs;
            for (uint c = 0u; c < BC; c++) sds[r * SB + c] = OPT(ss[r * SF + c] * rs);
        }
        barrier();
        BLOCK_PRODUCT(ST_DQ, sds, ROW, SB, sk, ROW, SD, BR, DP, BC)
    }

    for (uint e = tid; e < BR * DP; e += WG) {
        uint r = e / DP, d = e % DP, t = t0 + r;
        if (t >= p.T || d >= p.D) continue;
        dq[p.dq_off + q_row(b, t, h) + d] = bad ? NAN_F : sdq[r * SO + d] * p.scale;
    }
}

#elif defined(DKDV)
layout(std430, binding = 7) buffer DK { float dk[]; };
layout(std430, binding = 8) buffer DV { float dv[]; };

shared OPT spt[BR * SB];  // P / srs, scaled per key by sc1
shared OPT sdst[BR * SB]; // dS, scaled per key by sc2
shared float sc1[BC], sc2[BC];

// dV += (P / srs * sc1)^T (dO * srs) / sc1 and dK += (dS * sc2)^T Qs / sc2, straight into dv and dk: this workgroup
// is the only writer of its keys' rows, and each element always goes to the same invocation (no f32 accumulators
// of BC x DP in shared memory, so D 256 fits 32 KiB).
#define ST_KV(buf, off, sc, r, c, x)                                                                                \
    if (j0 + int(r) <= jlast && (c) < p.D) {                                                                        \
        uint at_ = off + kv_row(b, uint(j0) + (r), g) + (c);                                                        \
        buf[at_] += bad ? NAN_F : (x) / sc[r];                                                                      \
    }
#define ST_DV(r, c, x) ST_KV(dv, p.dv_off, sc1, r, c, x)
#define ST_DK(r, c, x) ST_KV(dk, p.dq_off, sc2, r, c, x)

void main() {
    FLASH_IDS
    uint n_kb = (p.S + BC - 1u) / BC;
    uint wid = wg_linear();
    if (wid >= p.n_seq * p.n_head_kv * n_kb) return;
    uint kb = wid % n_kb, g = (wid / n_kb) % p.n_head_kv, b = wid / (n_kb * p.n_head_kv);
    uint group = p.n_head / p.n_head_kv;
    int j0 = int(kb * BC), jlast = min(j0 + int(BC), int(p.S)) - 1;

    stage_kv(b, g, j0, jlast + 1, tid);
    // Queries that can see a key of this block: from the first key's position on (causal), up to the last query
    // whose window still reaches the last key.
    int i0 = max(j0 - int(p.pos0), 0), i1 = min(last_query(uint(jlast)), int(p.T) - 1);
    for (uint h = g * group; h < (g + 1u) * group; h++)
        for (int ib = i0; ib <= i1; ib += int(BR)) {
            barrier();
            for (uint r = tid; r < BR; r += WG) load_row(b, h, uint(ib) + r, r);
            barrier();
            stage_q(b, h, uint(ib), tid);
            barrier();
            BLOCK_PRODUCT(ST_S, sq, ROW, SD, sk, COL, SD, BR, BC, DP)
            BLOCK_PRODUCT(ST_DP, sdo, ROW, SD, sv, COL, SD, BR, BC, DP)
            // One lane per key: P / srs and dS down its column, each column scaled by its own power of two.
            for (uint c = tid; c < BC; c += WG) {
                float mx1 = 0.0, mx2 = 0.0;
                for (uint r = 0u; r < BR; r++) {
                    float pr, ds;
                    prob_ds(r, c, j0, pr, ds);
                    pr /= srs[r];
                    ss[r * SF + c] = pr;
                    sdp[r * SF + c] = ds;
                    mx1 = max(mx1, pr);
                    mx2 = max(mx2, abs(ds));
                }
                float c1 = flash_scale(mx1), c2 = flash_scale(mx2);
                sc1[c] = c1;
                sc2[c] = c2;
                for (uint r = 0u; r < BR; r++) {
                    spt[r * SB + c] = OPT(ss[r * SF + c] * c1);
                    sdst[r * SB + c] = OPT(sdp[r * SF + c] * c2);
                }
            }
            barrier();
            BLOCK_PRODUCT(ST_DV, spt, COL, SB, sdo, ROW, SD, BC, DP, BR)
            BLOCK_PRODUCT(ST_DK, sdst, COL, SB, sq, ROW, SD, BC, DP, BR)
        }
}
#else
#error "attention_flash_back.comp: define DQ or DKDV"
#endif
