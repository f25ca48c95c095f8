#version 450
// Causal GQA attention forward, register-tiled: each lane owns R consecutive query rows of one (sequence, head),
// so every key/value row it loads (vec4s through texel views, one fetch per subgroup: row_own) feeds R dot
// products.
// Keys go in blocks of KB with one online-softmax rescale per block. Same contract as attention.comp (the
// window narrows each row's key range, the walk covers the union of the subgroup's ranges; scores soft-capped).
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const uint WG = 64;
layout(constant_id = 2) const uint R = 4; // query rows per lane

#define ATTN_TILE
#include "common/attn.glsl"
#include "common/grid.glsl"

layout(std430, binding = 4) writeonly buffer O { vec4 o[]; };
layout(std430, binding = 5) writeonly buffer L { float lse[]; };

const int KB = 4; // keys per softmax block (= VKL_ATTN_TILE_KB): one rescale and one accumulator update per block

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
    float m[R], l[R];
    vec4 qv[R][DV4], acc[R][DV4];
    int lo = INT_BIG, hi = -1;
    [[unroll]] for (uint r = 0u; r < R; r++) {
        uint t = t0 + r;
        bool live = t < p.T;
        jlo[r] = live ? first_key(b, t) : INT_BIG;
        jhi[r] = live ? int(p.pos0 + t) : -1;
        lo = min(lo, jlo[r]);
        hi = max(hi, jhi[r]);
        int qb = int((p.q_off + q_row(b, min(t, p.T - 1u), h)) / 4u);
        // Lanes past D get q = 0, so the padded part of each dot product adds nothing.
        [[unroll]] for (uint d = 0u; d < DV4; d++) {
            qv[r][d] = live && d < D4 ? texelFetch(tq, qb + int(d)) * p.scale : vec4(0.0);
            acc[r][d] = vec4(0.0);
        }
        m[r] = NEG_BIG;
        l[r] = 0.0;
    }
    int j0 = subgroupMin(lo), j1 = subgroupMax(hi);
    int kvoff = int(p.k_off / 4u), vvoff = int(p.v_off / 4u);

    for (int jb = j0; jb <= j1; jb += KB) {
        float s[R][KB], cr[R];
        [[unroll]] for (int kk = 0; kk < KB; kk++) {
            // Keys past j1 reread row j1 (in bounds); the mask below drops them.
            vec4 kown[CW];
            row_own(tk, kvoff + int(kv_row(b, uint(min(jb + kk, j1)), g) / 4u), D4, kown);
            [[unroll]] for (uint r = 0u; r < R; r++) s[r][kk] = 0.0;
            [[unroll]] for (uint d = 0u; d < DV4; d++) {
                vec4 kd = row_at(kown, d);
                [[unroll]] for (uint r = 0u; r < R; r++) s[r][kk] += dot(qv[r][d], kd);
            }
            if (USE_CAP)
                [[unroll]] for (uint r = 0u; r < R; r++) s[r][kk] = cap_score(s[r][kk]);
        }
        [[unroll]] for (uint r = 0u; r < R; r++) {
            float mn = m[r];
            [[unroll]] for (int kk = 0; kk < KB; kk++) {
                int j = jb + kk;
                if (j >= jlo[r] && j <= jhi[r]) mn = max(mn, s[r][kk]);
            }
            float corr = exp(m[r] - mn), ps = 0.0;
            [[unroll]] for (int kk = 0; kk < KB; kk++) {
                int j = jb + kk;
                s[r][kk] = j >= jlo[r] && j <= jhi[r] ? exp(s[r][kk] - mn) : 0.0;
                ps += s[r][kk];
            }
            l[r] = l[r] * corr + ps;
            m[r] = mn;
            cr[r] = corr;
        }
        // The rescale and the block's KB value products in one update of each accumulator: on CPU devices the
        // accumulators live in memory, so each update is a load and a store.
        vec4 vown[KB][CW];
        [[unroll]] for (int kk = 0; kk < KB; kk++)
            row_own(tv, vvoff + int(kv_row(b, uint(min(jb + kk, j1)), g) / 4u), D4, vown[kk]);
        [[unroll]] for (uint d = 0u; d < DV4; d++) {
            vec4 vd[KB];
            [[unroll]] for (int kk = 0; kk < KB; kk++) vd[kk] = row_at(vown[kk], d);
            [[unroll]] for (uint r = 0u; r < R; r++) {
                vec4 a = acc[r][d] * cr[r];
                [[unroll]] for (int kk = 0; kk < KB; kk++) a += s[r][kk] * vd[kk];
                acc[r][d] = a;
            }
        }
    }

    [[unroll]] for (uint r = 0u; r < R; r++) {
        uint t = t0 + r;
        if (t >= p.T) break;
        float inv_l = l[r] > 0.0 ? 1.0 / l[r] : 0.0;
        uint ob = (p.out_off + q_row(b, t, h)) / 4u;
        [[unroll]] for (uint d = 0u; d < DV4; d++)
            if (d < D4) o[ob + d] = acc[r][d] * inv_l;
        if ((p.flags & HAS_LSE) != 0u)
            lse[lse_idx(b, h, t)] = l[r] > 0.0 ? m[r] + log(l[r]) : uintBitsToFloat(0xff800000u);
    }
}
