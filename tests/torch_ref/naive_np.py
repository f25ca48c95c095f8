# A second forward pass, for selftest.py only: token by token and head by head in float64 numpy, written from
# the formulas of README.md in Hugging Face's formulation where that differs in form from llama_lora.py:
#  - llama / mistral3: the q/k rows of the GGUF are put back into Hugging Face's order (the inverse of
#    convert_hf_to_gguf.py's LlamaModel.permute) and rotated with rotate_half pairs (j, j + D/2), instead of
#    rotating GGUF's interleaved pairs (2i, 2i+1);
#  - inverse frequencies as transformers' modeling_rope_utils computes them (default, linear, YaRN with
#    find_correction_range / linear_ramp_factor, longrope ext_factors), attention factor on cos and sin;
#  - LoRA merged into the weights (W + s B A) instead of a separate branch;
#  - explicit loops over keys for the causal / sliding-window mask and the soft-caps.
# It shares only the GGUF reader with the reference.
import math

import numpy as np

import gguf_np

NORMAL = ("llama", "mistral3")


def _unpermute(w, n_head):
    """Rows of a GGUF q/k weight [n_head*D, ...] back to Hugging Face order: HF row h*D/2 + j = GGUF row 2j + h."""
    D = w.shape[0] // n_head
    return w.reshape(n_head, D // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _yarn_inv_freq(base, dim, factor, beta_fast, beta_slow, n_orig):
    """transformers' _compute_yarn_parameters (truncate=True), without the attention factor."""
    def find_correction_dim(num_rotations):
        return (dim * math.log(n_orig / (num_rotations * 2 * math.pi))) / (2 * math.log(base))
    low = max(math.floor(find_correction_dim(beta_fast)), 0)
    high = min(math.ceil(find_correction_dim(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
    pos_freqs = base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    inv_extra = 1.0 / pos_freqs
    inv_inter = 1.0 / (factor * pos_freqs)
    extra_factor = 1 - ramp
    return inv_inter * (1 - extra_factor) + inv_extra * extra_factor


def logits(path, tokens, lora=None, n_ctx=None):
    """tokens: list of token ids (one row, positions 0..T-1). lora: None or (scale, {(layer, tensor): (A, B)})
    with A [r, in], B [out, r] float64 (tensor: GGUF name inside blk.N). Returns logits [T, V] float64."""
    g = gguf_np.GGUFFile(path)
    md = g.metadata
    arch = md["general.architecture"]

    def key(k, default=None):
        return md.get(f"{arch}.{k}", default)

    C, L, F = key("embedding_length"), key("block_count"), key("feed_forward_length")
    H = key("attention.head_count")
    KVH = key("attention.head_count_kv", H)
    eps = key("attention.layer_norm_rms_epsilon")
    D = key("attention.key_length", C // H)
    n_rot = key("rope.dimension_count", D)
    base = key("rope.freq_base", 10000.0)
    stype = key("rope.scaling.type", "linear")
    factor = key("rope.scaling.factor", 0.0) or 1.0
    if stype == "none":
        factor = 1.0
    n_orig = key("rope.scaling.original_context_length", key("context_length"))
    T = len(tokens)
    n_ctx = T if n_ctx is None else n_ctx

    def t(name):
        return g.tensor(name).astype(np.float64) if name in g.tensors else None

    def lin_w(l, name):
        w, b = t(f"blk.{l}.{name}.weight"), t(f"blk.{l}.{name}.bias")
        if lora is not None and (l, name) in lora[1]:
            A, B = lora[1][(l, name)]
            w = w + lora[0] * (B @ A)
        return w, b

    def rms(x, w):
        return x / math.sqrt(float(np.mean(x * x)) + eps) * w

    # Inverse frequencies (HF style) and the attention factor on cos/sin, per layer kind.
    def inv_freq_global():
        inv = 1.0 / base ** (np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)
        af = key("rope.scaling.attn_factor", 1.0)
        rf = t("rope_freqs.weight")
        lf, sf = t("rope_factors_long.weight"), t("rope_factors_short.weight")
        if rf is not None:                              # Llama 3.1: divisors from the converter
            inv = inv / rf
        if lf is not None or sf is not None:            # longrope: 1 / (ext_factors * base^(2j/d))
            ext = lf if n_ctx > n_orig else sf
            if ext is not None:
                inv = 1.0 / (ext * base ** (np.arange(0, n_rot, 2, dtype=np.float64) / n_rot))
        if stype == "yarn":
            beta_fast = key("rope.scaling.yarn_beta_fast", 32.0)
            beta_slow = key("rope.scaling.yarn_beta_slow", 1.0)
            inv = _yarn_inv_freq(base, n_rot, factor, beta_fast, beta_slow, n_orig)
            if rf is not None:
                raise NotImplementedError("rope_freqs with YaRN")
            mscale_all_dim = key("rope.scaling.yarn_log_multiplier", 0.0) if arch == "mistral3" else 0.0

            def get_mscale(s, m=1.0):
                return 1.0 if s <= 1 else 0.1 * m * math.log(s) + 1.0
            af *= get_mscale(factor) / (get_mscale(factor, mscale_all_dim) if mscale_all_dim else 1.0)
        elif stype in ("linear",):
            inv = inv / factor
        return inv, af

    inv_g, af_g = inv_freq_global()
    gemma = arch in ("gemma2", "gemma3")
    window, swa = None, [False] * L
    if arch == "gemma2":
        window = key("attention.sliding_window", 4096)
        swa = [l % 2 == 0 for l in range(L)]
        inv_l = 1.0 / key("rope.freq_base_swa", base) ** (np.arange(0, n_rot, 2, dtype=np.float64) / n_rot) / factor
        af_l = af_g
    elif arch == "gemma3" and key("attention.sliding_window", 0) > 0:
        window = key("attention.sliding_window")
        swa = [(l + 1) % 6 != 0 for l in range(L)]
        inv_l = 1.0 / key("rope.freq_base_swa", 10000.0) ** (np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)
        af_l = key("rope.scaling.attn_factor", 1.0)
    if isinstance(key("attention.sliding_window_pattern"), (int, list)):
        raise NotImplementedError("explicit sliding_window_pattern")
    scale = 1.0 / math.sqrt(D)
    if gemma and L == (46 if arch == "gemma2" else 62):
        scale = 1.0 / math.sqrt(C // H)
    attn_cap = key("attn_logit_softcapping", 50.0) if arch == "gemma2" else None
    final_cap = {"gemma2": key("final_logit_softcapping", 30.0),
                 "gemma3": key("final_logit_softcapping", 0.0) or None}.get(arch)
    temp_s = key("attention.temperature_scale", 0.0) if arch == "mistral3" else 0.0

    E = t("token_embd.weight")
    out_w = t("output.weight") if arch != "gemma2" and "output.weight" in g.tensors else E
    out_b = t("output.bias") if arch == "qwen2" else None
    h = [E[tok] * (math.sqrt(C) if gemma else 1.0) for tok in tokens]

    def rotate(x, pos, inv, af):
        """One head in HF layout: pairs (j, j + half) for j < n_rot/2, half = D/2 (normal archs, after the
        unpermute) or n_rot/2 (neox archs); entries outside the pairs pass."""
        half = D // 2 if arch in NORMAL else n_rot // 2
        y = x.copy()
        for j in range(n_rot // 2):
            c, s = math.cos(pos * inv[j]) * af, math.sin(pos * inv[j]) * af
            y[j] = x[j] * c - x[j + half] * s
            y[j + half] = x[j + half] * c + x[j] * s
        return y

    for l in range(L):
        inv, af = (inv_l, af_l) if swa[l] else (inv_g, af_g)
        win = window if swa[l] else None
        if f"blk.{l}.attn_qkv.weight" in g.tensors:
            wqkv, bqkv = lin_w(l, "attn_qkv")
            wq, wk, wv = wqkv[:H * D], wqkv[H * D:(H + KVH) * D], wqkv[(H + KVH) * D:]
            bq, bk, bv = (None,) * 3 if bqkv is None else (bqkv[:H * D], bqkv[H * D:(H + KVH) * D],
                                                           bqkv[(H + KVH) * D:])
        else:
            (wq, bq), (wk, bk), (wv, bv) = lin_w(l, "attn_q"), lin_w(l, "attn_k"), lin_w(l, "attn_v")
        if arch in NORMAL:
            wq, wk = _unpermute(wq, H), _unpermute(wk, KVH)
            bq = None if bq is None else _unpermute(bq, H)
            bk = None if bk is None else _unpermute(bk, KVH)
        wo, bo = lin_w(l, "attn_output")
        qn, kn = t(f"blk.{l}.attn_q_norm.weight"), t(f"blk.{l}.attn_k_norm.weight")
        Q, K, Vv = [], [], []
        for p in range(T):
            xn = rms(h[p], t(f"blk.{l}.attn_norm.weight"))
            q, k, v = wq @ xn, wk @ xn, wv @ xn
            q, k, v = (a if b is None else a + b for a, b in ((q, bq), (k, bk), (v, bv)))
            q, k, v = q.reshape(H, D), k.reshape(KVH, D), v.reshape(KVH, D)
            if qn is not None:
                q = np.stack([rms(x, qn) for x in q])
                k = np.stack([rms(x, kn) for x in k])
            q = np.stack([rotate(x, p, inv, af) for x in q])
            k = np.stack([rotate(x, p, inv, af) for x in k])
            if temp_s:
                q = q * (1.0 + temp_s * math.log(1.0 + math.floor(p / n_orig)))
            Q.append(q)
            K.append(k)
            Vv.append(v)
        new_h = []
        for p in range(T):
            heads = []
            for hh in range(H):
                kvh = hh // (H // KVH)
                js = [j for j in range(p + 1) if win is None or p - j < win]
                s = []
                for j in js:
                    sc = scale * float(Q[p][hh] @ K[j][kvh])
                    if attn_cap is not None:
                        sc = attn_cap * math.tanh(sc / attn_cap)
                    s.append(sc)
                m = max(s)
                e = [math.exp(x - m) for x in s]
                z = sum(e)
                heads.append(sum((e[i] / z) * Vv[j][kvh] for i, j in enumerate(js)))
            o = wo @ np.concatenate(heads)
            if bo is not None:
                o = o + bo
            if arch in ("gemma2", "gemma3"):
                o = rms(o, t(f"blk.{l}.post_attention_norm.weight"))
            x = h[p] + o
            xn = rms(x, t(f"blk.{l}.ffn_norm.weight"))
            if arch == "phi3":
                wu, bu = lin_w(l, "ffn_up")
                gu = wu @ xn
                gate, up = gu[:F], gu[F:]
            else:
                (wg, bg), (wu, bu) = lin_w(l, "ffn_gate"), lin_w(l, "ffn_up")
                gate, up = wg @ xn, wu @ xn
                gate = gate if bg is None else gate + bg
                up = up if bu is None else up + bu
            if gemma:
                act = 0.5 * gate * (1 + np.tanh(math.sqrt(2 / math.pi) * (gate + 0.044715 * gate ** 3)))
            else:
                act = gate / (1 + np.exp(-gate))
            wd, bd = lin_w(l, "ffn_down")
            f = wd @ (act * up)
            if bd is not None:
                f = f + bd
            if gemma:
                f = rms(f, t(f"blk.{l}.post_ffw_norm.weight"))
            new_h.append(x + f)
        h = new_h
    out = []
    for p in range(T):
        z = out_w @ rms(h[p], t("output_norm.weight"))
        if out_b is not None:
            z = z + out_b
        if final_cap:
            z = final_cap * np.tanh(z / final_cap)
        out.append(z)
    g.close()
    return np.stack(out)
