#!/usr/bin/env python3
# A second, numpy implementation of the GGUF block formats used by tests/test_quant.c to cross-check
# src/ref/quant.c: decoders written from the format description, and llama.cpp's reference quantizers
# (q8_0, q4_0, q4_K, q5_K, q6_K) in explicit float32 scalar arithmetic.
#
#   ref_quant.py dequant <type> <blocks.bin> <out.f32>   decode all blocks, write float32 little-endian
#   ref_quant.py quant   <type> <in.f32> <out.bin>       quantize (q8_0 q4_0 q4_K q5_K q6_K)
import sys

import numpy as np

# type name -> (elements per block, bytes per block)
LAYOUT = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18),
    "q4_K": (256, 144), "q5_K": (256, 176), "q6_K": (256, 210),
}


def half(b, off):
    """fp16 field at byte `off` of every block row, as float32 (numpy's float16 is IEEE binary16)."""
    return b[:, off:off + 2].copy().view("<f2").astype(np.float32)[:, 0]


def k_scales(sc):
    """6-bit scales and mins of the 8 sub-blocks of Q4_K/Q5_K blocks: (nb, 8) each.
    Sub-blocks 0-3: low 6 bits of bytes 0-3 (scale) and 4-7 (min). Sub-blocks 4-7: nibbles of bytes 8-11
    (low: scale, high: min) with the two high bits taken from the top bits of bytes 0-3 (scale) and 4-7 (min)."""
    sc = sc.astype(np.uint32)
    scale = np.empty((sc.shape[0], 8), np.uint32)
    mn = np.empty_like(scale)
    scale[:, :4] = sc[:, 0:4] & 63
    mn[:, :4] = sc[:, 4:8] & 63
    scale[:, 4:] = (sc[:, 8:12] & 15) | ((sc[:, 0:4] >> 6) << 4)
    mn[:, 4:] = (sc[:, 8:12] >> 4) | ((sc[:, 4:8] >> 6) << 4)
    return scale.astype(np.float32), mn.astype(np.float32)


def dequant(t, raw):
    bs, nbytes = LAYOUT[t]
    b = np.frombuffer(raw, np.uint8).reshape(-1, nbytes)
    nb = b.shape[0]
    f32 = np.float32
    if t == "f32":
        return b.copy().view("<f4").reshape(-1)
    if t == "f16":
        return b.copy().view("<f2").astype(f32).reshape(-1)
    if t == "bf16":
        return (b.copy().view("<u2").astype(np.uint32) << 16).view(f32).reshape(-1)
    if t == "q8_0":
        d = half(b, 0)
        q = b[:, 2:].view(np.int8).astype(f32)
        return (q * d[:, None]).reshape(-1)
    if t == "q4_0":
        d = half(b, 0)
        qs = b[:, 2:18]
        q = np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int32) - 8
        return (q.astype(f32) * d[:, None]).reshape(-1)
    if t in ("q4_K", "q5_K"):
        d, dmin = half(b, 0), half(b, 2)
        scale, mn = k_scales(b[:, 4:16])
        qs = b[:, 16:144] if t == "q4_K" else b[:, 48:176]
        q = np.empty((nb, 256), np.uint32)
        for c in range(4):  # chunk c of 64 values: sub-block 2c from the low nibbles, 2c+1 from the high
            chunk = qs[:, 32 * c:32 * c + 32].astype(np.uint32)
            q[:, 64 * c:64 * c + 32] = chunk & 15
            q[:, 64 * c + 32:64 * c + 64] = chunk >> 4
        if t == "q5_K":
            qh = b[:, 16:48].astype(np.uint32)
            for s in range(8):  # bit s of qh[l] is the fifth bit of value l of sub-block s
                q[:, 32 * s:32 * s + 32] |= ((qh >> s) & 1) << 4
        sub_d = d[:, None] * scale  # (nb, 8), float32 products
        sub_m = dmin[:, None] * mn
        y = sub_d[:, :, None] * q.reshape(nb, 8, 32).astype(f32) - sub_m[:, :, None]
        return y.astype(f32).reshape(-1)
    if t == "q6_K":
        ql, qh = b[:, 0:128].astype(np.uint32), b[:, 128:192].astype(np.uint32)
        sc = b[:, 192:208].view(np.int8).astype(f32)
        d = half(b, 208)
        q = np.empty((nb, 256), np.int32)
        for h in range(2):  # two halves of 128 values
            for k in range(4):  # quarters of 32
                low = ql[:, 64 * h + 32 * (k & 1):64 * h + 32 * (k & 1) + 32]
                low = (low >> 4) if k >= 2 else (low & 15)
                high = (qh[:, 32 * h:32 * h + 32] >> (2 * k)) & 3
                q[:, 128 * h + 32 * k:128 * h + 32 * k + 32] = (low | (high << 4)).astype(np.int32) - 32
        sd = d[:, None] * sc  # (nb, 16)
        y = sd[:, :, None] * q.reshape(nb, 16, 16).astype(f32)
        return y.astype(f32).reshape(-1)
    raise SystemExit(f"ref_quant.py: unknown type {t}")


def to_half_bits(v):
    return np.array([v], np.float32).astype(np.float16).view("<u2")[0]  # numpy rounds to nearest even


F = np.float32


def csum(a):
    """Sequential float32 sum, in index order as a C loop adds (np.sum would sum pairwise)."""
    return np.cumsum(a, dtype=F)[-1]


def rint(a):
    """Round to nearest, ties to even: ggml's nearest_int()."""
    return np.rint(a).astype(np.int64)


def half_of(v):
    return F(np.float16(F(v)))  # the value after storing as fp16 (nearest even)


def fit_scale_min(x, w, nmax, rmin, rdelta, nstep):
    """x ~ scale*L - the_min, L in 0..nmax: weighted least squares over nstep+1 trial inverse scales
    (llama.cpp make_qkx2_quants, squared error). Returns scale, L, the_min, all float32 scalar arithmetic."""
    mn, mx = F(x.min()), F(x.max())
    sum_w, sum_x = csum(w), csum(w * x)
    if mn > 0:
        mn = F(0)
    if mx == mn:
        return F(0), np.zeros(len(x), np.int64), F(-mn)
    iscale = F(F(nmax) / F(mx - mn))
    scale = F(F(1) / iscale)
    L = np.clip(rint(iscale * (x - mn)), 0, nmax)
    diff = scale * L.astype(F) + mn - x
    best = csum(w * (diff * diff))
    for step in range(nstep + 1):
        iscale = F(F(F(rmin + F(rdelta * F(step))) + F(nmax)) / F(mx - mn))
        La = np.clip(rint(iscale * (x - mn)), 0, nmax)
        Lf = La.astype(F)
        sum_l, sum_l2, sum_xl = csum(w * Lf), csum(w * Lf * Lf), csum(w * Lf * x)
        D = F(F(sum_w * sum_l2) - F(sum_l * sum_l))
        if D > 0:
            this_scale = F(F(F(sum_w * sum_xl) - F(sum_x * sum_l)) / D)
            this_min = F(F(F(sum_l2 * sum_x) - F(sum_l * sum_xl)) / D)
            if this_min > 0:
                this_min = F(0)
                this_scale = F(sum_xl / sum_l2)
            diff = this_scale * Lf + this_min - x
            cur = csum(w * (diff * diff))
            if cur < best:
                L, best, scale, mn = La, cur, this_scale, this_min
    return scale, L, F(-mn)


def quant_kx(x, nmax, rmin, rdelta, nstep):
    """Q4_K (nmax 15) / Q5_K (nmax 31) common part: d, dmin, 12 packed scale bytes, 256 codes."""
    scales, mins, L = [], [], np.zeros(256, np.int64)
    for j in range(8):
        xs = x[32 * j:32 * j + 32]
        av_x = F(np.sqrt(F(csum(xs * xs) / F(32))))
        sc, Lj, mn = fit_scale_min(xs, av_x + np.abs(xs), nmax, rmin, rdelta, nstep)
        scales.append(sc)
        mins.append(mn)
        L[32 * j:32 * j + 32] = Lj
    max_scale, max_min = F(0), F(0)
    for j in range(8):
        max_scale = scales[j] if scales[j] > max_scale else max_scale
        max_min = mins[j] if mins[j] > max_min else max_min
    inv_scale = F(F(63) / max_scale) if max_scale > 0 else F(0)
    inv_min = F(F(63) / max_min) if max_min > 0 else F(0)
    ls = [min(63, int(rint(F(inv_scale * scales[j]))) & 0xFF) for j in range(8)]
    lm = [min(63, int(rint(F(inv_min * mins[j]))) & 0xFF) for j in range(8)]
    sb = bytearray(12)
    for j in range(4):  # sub-blocks 0-3: 6 bits in bytes j / j+4; 4-7: nibbles of byte j+8 + 2 high bits
        sb[j] = ls[j] | ((ls[j + 4] >> 4) << 6)
        sb[j + 4] = lm[j] | ((lm[j + 4] >> 4) << 6)
        sb[j + 8] = (ls[j + 4] & 15) | ((lm[j + 4] & 15) << 4)
    d, dmin = F(max_scale / F(63)), F(max_min / F(63))
    for j in range(8):
        dj = F(half_of(d) * F(ls[j]))
        if dj == 0:
            continue
        dm = F(half_of(dmin) * F(lm[j]))
        L[32 * j:32 * j + 32] = np.clip(rint((x[32 * j:32 * j + 32] + dm) / dj), 0, nmax)
    hb = lambda v: int(np.array([v], F).astype(np.float16).view("<u2")[0]).to_bytes(2, "little")
    return hb(d) + hb(dmin) + bytes(sb), L


def fit_scale_sym(x, nmax):
    """x ~ scale*(L - nmax), weights x^2, 19 trial inverse scales (llama.cpp make_qx_quants, rmse_type 1)."""
    i = int(np.argmax(np.abs(x)))
    if abs(x[i]) < F(1e-15):
        return F(0), np.zeros(len(x), np.int64)
    mx = x[i]
    w = x * x

    def trial(iscale):
        l = np.clip(rint(iscale * x), -nmax, nmax - 1)
        lf = l.astype(F)
        return l, csum(w * x * lf), csum(w * lf * lf)

    l, sumlx, suml2 = trial(F(F(-nmax) / mx))
    L = l + nmax
    scale = F(sumlx / suml2) if suml2 != 0 else F(0)
    best = F(scale * sumlx)
    for step in range(-9, 10):
        if step == 0:
            continue
        l, sumlx, suml2 = trial(F(-F(F(nmax) + F(F(0.1) * F(step))) / mx))
        if suml2 > 0 and F(sumlx * sumlx) > F(best * suml2):
            L, scale = l + nmax, F(sumlx / suml2)
            best = F(scale * sumlx)
    return scale, L


def quant_q6_K(x):
    scales, L = [], np.zeros(256, np.int64)
    for g in range(16):
        sc, Lg = fit_scale_sym(x[16 * g:16 * g + 16], 32)
        scales.append(sc)
        L[16 * g:16 * g + 16] = Lg
    max_scale, max_abs = F(0), F(0)
    for sc in scales:
        if abs(sc) > max_abs:
            max_abs, max_scale = F(abs(sc)), sc
    if max_abs < F(1e-15):
        return bytes(210)
    iscale = F(F(-128) / max_scale)
    d = F(F(1) / iscale)
    isc = [min(127, int(rint(F(iscale * sc)))) for sc in scales]
    for g in range(16):
        dg = F(half_of(d) * F(isc[g]))
        if dg == 0:
            continue
        L[16 * g:16 * g + 16] = np.clip(rint(x[16 * g:16 * g + 16] / dg), -32, 31) + 32
    ql, qh = bytearray(128), bytearray(64)
    for i in range(256):  # half h, quarter k, lane l: see dequant()
        h, k, l = i // 128, (i % 128) // 32, i % 32
        ql[64 * h + 32 * (k & 1) + l] |= (int(L[i]) & 15) << (4 * (k // 2))
        qh[32 * h + l] |= (int(L[i]) >> 4) << (2 * k)
    d16 = int(np.array([d], F).astype(np.float16).view("<u2")[0]).to_bytes(2, "little")
    return bytes(ql) + bytes(qh) + bytes(np.array(isc, np.int8).view(np.uint8)) + d16


def quant(t, x):
    x = x.astype(F)
    out = bytearray()
    if t in ("q4_K", "q5_K", "q6_K"):
        for blk in x.reshape(-1, 256):
            if t == "q6_K":
                out += quant_q6_K(blk)
                continue
            nmax = 15 if t == "q4_K" else 31
            head, L = quant_kx(blk, nmax, *((F(-1), F(0.1), 20) if t == "q4_K" else (F(-0.5), F(0.1), 15)))
            qs = bytearray(128)
            for i in range(256):  # value i: byte 32*(i//64) + i%32, high nibble for the odd sub-blocks
                qs[32 * (i // 64) + i % 32] |= (int(L[i]) & 15) << (4 * ((i // 32) & 1))
            if t == "q4_K":
                out += head + bytes(qs)
            else:
                qh = bytearray(32)
                for i in range(256):
                    qh[i % 32] |= (int(L[i]) >> 4) << (i // 32)
                out += head + bytes(qh) + bytes(qs)
        return bytes(out)
    for blk in x.reshape(-1, 32):
        if t == "q8_0":
            amax = F(np.max(np.abs(blk)))
            d = F(amax / F(127))
            idv = F(1) / d if d != 0 else F(0)
            out += int(to_half_bits(d)).to_bytes(2, "little")
            for v in blk:
                p = float(F(v * idv))  # the float32 product, then C roundf (half away from zero)
                q = int(np.floor(abs(p) + 0.5)) * (1 if p >= 0 else -1)
                out += int(q & 0xFF).to_bytes(1, "little")
        elif t == "q4_0":
            i = int(np.argmax(np.abs(blk)))  # first index of the largest magnitude
            d = F(blk[i] / F(-8))
            idv = F(1) / d if d != 0 else F(0)
            out += int(to_half_bits(d)).to_bytes(2, "little")
            q = [min(15, int(float(F(F(v * idv) + F(8.5))))) for v in blk]  # int() truncates
            out += bytes(q[j] | (q[j + 16] << 4) for j in range(16))
        else:
            raise SystemExit(f"ref_quant.py: no quantizer for {t}")
    return bytes(out)


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("dequant", "quant"):
        raise SystemExit(__doc__ or "usage: ref_quant.py dequant|quant TYPE IN OUT")
    mode, t, src, dst = sys.argv[1:]
    with open(src, "rb") as f:
        raw = f.read()
    if mode == "dequant":
        res = dequant(t, raw).astype("<f4").tobytes()
    else:
        res = quant(t, np.frombuffer(raw, "<f4"))
    with open(dst, "wb") as f:
        f.write(res)


if __name__ == "__main__":
    main()
