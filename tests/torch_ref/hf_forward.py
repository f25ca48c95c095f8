#!/usr/bin/python3
# Independent PyTorch (CPU, float64) forward of a Hugging Face model folder, written from the transformers
# modeling code's semantics (LlamaForCausalLM, MistralForCausalLM, Qwen2/Qwen3ForCausalLM, Gemma2ForCausalLM,
# Gemma3ForCausalLM, Phi3ForCausalLM, Mistral3's text model) and nothing of vklora or llama.cpp: config.json as
# transformers reads it, safetensors read here with numpy, rotate-half RoPE on the checkpoint's own q/k rows, the
# rope initialisations of transformers' modeling_rope_utils (default, linear, llama3, yarn, longrope), Gemma's
# (1 + w) RMSNorm and query_pre_attn_scalar, sliding windows from layer_types / sliding_window_pattern, soft-caps,
# Ministral's Llama-4 attention scaling.
#
#   hf_forward.py DIR TOKENS.json OUT.json      TOKENS: {"tokens": [ids...]}   OUT: {"logits": [[V floats] x T]}
#
# Exit status 2 with a message on bad input. The vklora tests compare their logits for a folder against these.
import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None, "F64": np.float64}


class RefError(Exception):
    pass


def read_safetensors(path):
    """name -> float64 numpy array, from the format's definition: u64 header length, JSON header, data."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack_from("<Q", buf, 0)
    header = json.loads(buf[8:8 + n])
    data = memoryview(buf)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[b:e]
        dt = info["dtype"]
        if dt == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            a = u.view(np.float32)
        elif dt in DTYPES:
            a = np.frombuffer(raw, dtype=DTYPES[dt])
        else:
            raise RefError(f"{path}: tensor {name}: dtype {dt}")
        out[name] = a.astype(np.float64).reshape(info["shape"])
    return out


def read_folder(d):
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    w = {}
    for fn in files:
        w.update(read_safetensors(os.path.join(d, fn)))
    return w


# ---- rope initialisation (transformers.modeling_rope_utils) ----

def rope_init(cfg, dim, base, rs, seq_len):
    """inv_freq (dim/2,) and attention_factor for one rope configuration rs (None = default)."""
    inv = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    rt = (rs or {}).get("rope_type", (rs or {}).get("type", "default"))
    if rt == "default":
        return inv, 1.0
    factor = rs.get("factor", 1.0)
    if rt == "linear":
        return inv / factor, 1.0
    if rt == "llama3":
        lo, hi = rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * math.pi / inv
        out = np.where(wl > lo_wl, inv / factor, inv)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        med = ~(wl < hi_wl) & ~(wl > lo_wl)
        return np.where(med, smoothed, out), 1.0
    if rt == "yarn":
        orig = rs.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
        af = rs.get("attention_factor")
        if af is None:
            af = 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0
        bf, bs = rs.get("beta_fast", 32), rs.get("beta_slow", 1)

        def corr_dim(n_rot):
            return (dim * math.log(orig / (n_rot * 2 * math.pi))) / (2 * math.log(base))
        low = max(math.floor(corr_dim(bf)), 0)
        high = min(math.ceil(corr_dim(bs)), dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extra_f = 1 - ramp
        return (inv / factor) * (1 - extra_f) + inv * extra_f, af
    if rt in ("longrope", "su"):
        orig = rs.get("original_max_position_embeddings") or cfg.get("original_max_position_embeddings")
        s = cfg["max_position_embeddings"] / orig
        af = rs.get("attention_factor")
        if af is None:
            af = 1.0 if s <= 1 else math.sqrt(1 + math.log(s) / math.log(orig))
        ext = np.array(rs["long_factor"] if seq_len > orig else rs["short_factor"], dtype=np.float64)
        return 1.0 / (ext * base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)), af
    raise RefError(f"rope_type {rt}")


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin, rot):
    """x (T, heads, D): the first `rot` dims rotate (Phi-3's partial rotary), the rest pass."""
    xr, xp = x[..., :rot], x[..., rot:]
    xr = xr * cos[:, None, :] + rotate_half(xr) * sin[:, None, :]
    return torch.cat((xr, xp), dim=-1)


def forward(d, tokens):
    with open(os.path.join(d, "config.json")) as f:
        root = json.load(f)
    arch = root["architectures"][0]
    cfg = root.get("text_config", root) if arch.endswith("ForConditionalGeneration") else root
    W = {k: torch.from_numpy(v) for k, v in read_folder(d).items()}
    pre = next(p for p in ("model.", "model.language_model.", "language_model.model.")
               if p + "embed_tokens.weight" in W)
    gemma = arch.startswith("Gemma")
    C, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    KVH = cfg.get("num_key_value_heads") or H
    D = cfg.get("head_dim") or C // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    rot = int(D * cfg.get("partial_rotary_factor", 1.0))
    T = len(tokens)
    rs = cfg.get("rope_parameters") or cfg.get("rope_scaling")
    theta = (rs or {}).get("rope_theta", cfg.get("rope_theta", 10000.0))

    def norm(x, w):
        w = (1.0 + w) if gemma else w
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def tables(base, r):
        inv, af = rope_init(cfg, rot, base, r, T)
        ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]
        emb = np.concatenate([ang, ang], axis=-1)
        return torch.from_numpy(np.cos(emb) * af), torch.from_numpy(np.sin(emb) * af)

    glob = tables(theta, rs)
    local = tables(cfg.get("rope_local_base_freq", 10000.0), None) if arch.startswith("Gemma3") else glob
    types = cfg.get("layer_types")
    if types is None:
        if arch.startswith("Gemma2"):
            types = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(L)]
        elif arch.startswith("Gemma3"):
            p = cfg.get("sliding_window_pattern", 6)
            types = ["sliding_attention" if (i + 1) % p else "full_attention" for i in range(L)]
        else:
            types = ["full_attention"] * L
    window = cfg.get("sliding_window") if gemma else None
    scale = (cfg.get("query_pre_attn_scalar") or D) ** -0.5 if gemma else D ** -0.5
    beta = (rs or {}).get("llama_4_scaling_beta")

    tok = torch.tensor(tokens)
    h = W[pre + "embed_tokens.weight"][tok]
    if gemma:
        h = h * torch.tensor(C ** 0.5, dtype=torch.float64)
    pos = torch.arange(T)
    for i in range(L):
        p = f"{pre}layers.{i}."
        x = norm(h, W[p + "input_layernorm.weight"])
        if p + "self_attn.qkv_proj.weight" in W:
            qkv = x @ W[p + "self_attn.qkv_proj.weight"].T
            q, k, v = qkv.split([H * D, KVH * D, KVH * D], dim=-1)
        else:
            q, k, v = (x @ W[p + f"self_attn.{n}_proj.weight"].T + W.get(p + f"self_attn.{n}_proj.bias", 0)
                       for n in "qkv")
        q, k, v = q.reshape(T, H, D), k.reshape(T, KVH, D), v.reshape(T, KVH, D)
        if p + "self_attn.q_norm.weight" in W:
            q, k = norm(q, W[p + "self_attn.q_norm.weight"]), norm(k, W[p + "self_attn.k_norm.weight"])
        sliding = types[i] == "sliding_attention"
        cos, sin = local if sliding else glob
        q, k = apply_rope(q, cos, sin, rot), apply_rope(k, cos, sin, rot)
        if beta is not None:
            orig = rs["original_max_position_embeddings"]
            q = q * (1 + beta * torch.log(1 + torch.floor(pos.double() / orig)))[:, None, None]
        k, v = k.repeat_interleave(H // KVH, dim=1), v.repeat_interleave(H // KVH, dim=1)
        s = torch.einsum("thd,jhd->htj", q, k) * scale
        cap = cfg.get("attn_logit_softcapping") if arch.startswith("Gemma2") else None
        if cap:
            s = cap * torch.tanh(s / cap)
        mask = pos[None, :] > pos[:, None]
        if sliding and window:
            mask = mask | (pos[:, None] - pos[None, :] >= window)
        a = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1)
        o = torch.einsum("htj,jhd->thd", a, v).reshape(T, H * D) @ W[p + "self_attn.o_proj.weight"].T
        if gemma:
            o = norm(o, W[p + "post_attention_layernorm.weight"])
            x = norm(h + o, W[p + "pre_feedforward_layernorm.weight"])
        else:
            x = norm(h + o, W[p + "post_attention_layernorm.weight"])
        h = h + o
        if p + "mlp.gate_up_proj.weight" in W:
            g, u = (x @ W[p + "mlp.gate_up_proj.weight"].T).chunk(2, dim=-1)
        else:
            g, u = x @ W[p + "mlp.gate_proj.weight"].T, x @ W[p + "mlp.up_proj.weight"].T
        act = torch.nn.functional.gelu(g, approximate="tanh") if gemma else torch.nn.functional.silu(g)
        f = (act * u) @ W[p + "mlp.down_proj.weight"].T
        if gemma:
            f = norm(f, W[p + "post_feedforward_layernorm.weight"])
        h = h + f
    h = norm(h, W[pre + "norm.weight"])
    head = next((W[n] for n in ("lm_head.weight", "language_model.lm_head.weight") if n in W),
                W[pre + "embed_tokens.weight"])
    logits = h @ head.T
    cap = cfg.get("final_logit_softcapping") if gemma else None
    if cap:
        logits = cap * torch.tanh(logits / cap)
    return logits


def main(argv):
    if len(argv) != 4:
        print("usage: hf_forward.py DIR TOKENS.json OUT.json", file=sys.stderr)
        return 2
    torch.set_num_threads(2)
    try:
        with open(argv[2]) as f:
            tokens = json.load(f)["tokens"]
        logits = forward(argv[1], tokens)
    except (OSError, KeyError, ValueError, RefError) as e:
        print(f"hf_forward: {e!r}", file=sys.stderr)
        return 2
    with open(argv[3], "w") as f:
        json.dump({"logits": logits.tolist()}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
