#version 450
// Causal GQA attention forward in the FlashAttention-2 form: a workgroup owns BR query rows of one (sequence, head)
// (Q * scale staged once), walks blocks of BC keys of its KV head staged in shared memory, S = Q K^T as a block
// product, the masks (causal from pos0, packing segments, sliding window), soft-cap and online softmax per row in
// f32, then O = O * corr + P V as a block product. Only the keys in the union of the block's row ranges are walked,
// so a sliding window bounds the walk. Writes out and lse exactly as attention.comp (out 0 and lse -inf for a query
// with no key). -DFLASH_COOPMAT: the products on cooperative matrices (f16 operands: q * scale, k, v and p in
// [0, 1]; f32 accumulation).
#extension GL_GOOGLE_include_directive : require
#include "common/attn_flash.glsl"

layout(std430, binding = 4) writeonly buffer O { float o[]; };
layout(std430, binding = 5) writeonly buffer L { float lse[]; };

shared OPT sq[BR * SD];
shared OPT sk[BC * SD];
shared OPT sv[BC * SD];
shared OPT sp[BR * SB];
shared float ss[BR * SF];
shared float so[BR * SO];
shared float sm[BR], sl[BR], scorr[BR];
shared int slo[BR], shi[BR];

#define ST_S(r, c, x) ss[(r) * SF + (c)] = (x)                            // S = Qs K^T
#define ST_O(r, c, x) so[(r) * SO + (c)] = so[(r) * SO + (c)] * scorr[r] + (x) // O = O * corr + P V

void main() {
    FLASH_IDS
    uint n_qb = (p.T + BR - 1u) / BR;
    uint wid = wg_linear();
    if (wid >= p.n_seq * p.n_head * n_qb) return;
    uint qb = wid % n_qb, h = (wid / n_qb) % p.n_head, b = wid / (n_qb * p.n_head);
    uint g = h / (p.n_head / p.n_head_kv);
    uint t0 = qb * BR;

    for (uint r = tid; r < BR; r += WG) {
        uint t = t0 + r;
        bool live = t < p.T;
        slo[r] = live ? first_key(b, t) : INT_BIG;
        shi[r] = live ? int(p.pos0 + t) : -1;
        sm[r] = NEG_BIG;
        sl[r] = 0.0;
    }
    for (uint e = tid; e < BR * DP; e += WG) {
        uint r = e / DP, d = e % DP, t = t0 + r;
        float x = t < p.T && d < p.D ? q[p.q_off + q_row(b, t, h) + d] * p.scale : 0.0;
        sq[r * SD + d] = OPT(x);
        so[r * SO + d] = 0.0;
    }
    barrier();
    int jmin = INT_BIG, jmax = -1;
    for (uint r = 0u; r < BR; r++) {
        jmin = min(jmin, slo[r]);
        jmax = max(jmax, shi[r]);
    }

    for (int j0 = jmin; j0 <= jmax; j0 += int(BC)) {
        for (uint e = tid; e < BC * DP; e += WG) {
            uint c = e / DP, d = e % DP;
            int j = j0 + int(c);
            bool ok = j <= jmax && d < p.D;
            uint kb = ok ? kv_row(b, uint(j), g) + d : 0u;
            sk[c * SD + d] = OPT(ok ? k[p.k_off + kb] : 0.0);
            sv[c * SD + d] = OPT(ok ? v[p.v_off + kb] : 0.0);
        }
        barrier();
        BLOCK_PRODUCT(ST_S, sq, ROW, SD, sk, COL, SD, BR, BC, DP)
        // Online softmax, one lane per row: the block's maximum joins the running one, the old sum and output rows
        // are rescaled by corr (in the product below).
        for (uint r = tid; r < BR; r += WG) {
            int lo = slo[r], hi = shi[r];
            float m = sm[r], mn = m;
            for (uint c = 0u; c < BC; c++) {
                int j = j0 + int(c);
                if (j >= lo && j <= hi) {
                    float s = cap_score(ss[r * SF + c]);
                    ss[r * SF + c] = s;
                    mn = max(mn, s);
                }
            }
            float corr = exp(m - mn), l = sl[r] * corr;
            for (uint c = 0u; c < BC; c++) {
                int j = j0 + int(c);
                float pj = j >= lo && j <= hi ? exp(ss[r * SF + c] - mn) : 0.0;
                l += pj;
                sp[r * SB + c] = OPT(pj);
            }
            sm[r] = mn;
            sl[r] = l;
            scorr[r] = corr;
        }
        barrier();
        BLOCK_PRODUCT(ST_O, sp, ROW, SB, sv, ROW, SD, BR, DP, BC)
    }

    for (uint e = tid; e < BR * DP; e += WG) {
        uint r = e / DP, d = e % DP, t = t0 + r;
        if (t >= p.T || d >= p.D) continue;
        float l = sl[r];
        o[p.out_off + q_row(b, t, h) + d] = bad ? NAN_F : l > 0.0 ? so[r * SO + d] / l : 0.0;
    }
    if ((p.flags & HAS_LSE) != 0u)
        for (uint r = tid; r < BR; r += WG) {
            uint t = t0 + r;
            float l = sl[r];
            if (t < p.T) lse[lse_idx(b, h, t)] = l > 0.0 ? sm[r] + log(l) : uintBitsToFloat(0xff800000u);
        }
}
