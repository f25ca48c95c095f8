# A small GGUF v3 writer in numpy and tiny random models of every architecture the reference supports, with the
# tensor names, shapes and metadata keys llama.cpp's loaders expect (F32 weights). Used only by selftest.py.
#
# Layout written (little-endian): "GGUF", u32 version 3, u64 tensor count, u64 key/value count; the pairs (string
# key, u32 value type, value); the tensor infos (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type 0 = F32,
# u64 offset relative to the data section); zero padding to a multiple of 32 (general.alignment's default); the
# tensors, each starting at a multiple of 32. A numpy array of shape (out, in) is written with ne = [in, out].
import struct

import numpy as np

ALIGN = 32
# Metadata value type ids of the GGUF specification.
T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR, T_U64, T_F64 = 4, 5, 6, 7, 8, 9, 10, 12


class Typed:
    """A metadata value with an explicit GGUF type (uint32 and float32 are the defaults for int / float)."""

    def __init__(self, vtype, value, etype=None):
        self.vtype, self.value, self.etype = vtype, value, etype


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _scalar(vtype, v):
    fmt = {T_U32: "<I", T_I32: "<i", T_F32: "<f", T_BOOL: "<B", T_U64: "<Q", T_F64: "<d"}[vtype]
    return struct.pack(fmt, int(v) if vtype in (T_U32, T_I32, T_BOOL, T_U64) else float(v))


def _infer(v):
    if isinstance(v, Typed):
        return v.vtype, v.etype
    if isinstance(v, bool):
        return T_BOOL, None
    if isinstance(v, int):
        return T_U32, None
    if isinstance(v, float):
        return T_F32, None
    if isinstance(v, str):
        return T_STR, None
    if isinstance(v, list):
        return T_ARR, _infer(v[0])[0] if v else T_U32
    raise TypeError(f"no GGUF type for {v!r}")


def _value(v):
    vtype, etype = _infer(v)
    raw = v.value if isinstance(v, Typed) else v
    if vtype == T_STR:
        return _str(raw)
    if vtype == T_ARR:
        out = struct.pack("<IQ", etype, len(raw))
        for x in raw:
            out += _str(x) if etype == T_STR else _scalar(etype, x)
        return out
    return _scalar(vtype, raw)


def write_gguf(path, metadata, tensors):
    """metadata: dict key -> value (int: uint32, float: float32, bool, str, list, or Typed); tensors: dict name ->
    numpy array (written as F32, ne = reversed shape)."""
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for k, v in metadata.items():
        head += _str(k) + struct.pack("<I", _infer(v)[0]) + _value(v)
    blobs, off = [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype="<f4")
        ne = list(reversed(a.shape))
        head += _str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        head += struct.pack("<IQ", 0, off)
        blob = a.tobytes()
        blob += b"\0" * (-len(blob) % ALIGN)
        blobs.append(blob)
        off += len(blob)
    head += b"\0" * (-len(head) % ALIGN)
    with open(path, "wb") as f:
        f.write(head)
        for b in blobs:
            f.write(b)


# ----------------------------------------------------------------------------------------------------------
# tiny models


def _vocab(V):
    """A minimal SentencePiece-style vocabulary so that llama.cpp's loader accepts the file."""
    toks = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(V - 3)]
    return {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": Typed(T_ARR, toks, T_STR),
            "tokenizer.ggml.scores": Typed(T_ARR, [0.0] * V, T_F32),
            "tokenizer.ggml.token_type": Typed(T_ARR, [2, 3, 3] + [1] * (V - 3), T_I32),
            "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.bos_token_id": 1,
            "tokenizer.ggml.eos_token_id": 2}


# name -> configuration. C embedding, H/KVH heads, D head size (written as attention.key_length/value_length
# when it differs from C/H or when `kl` is set), F feed-forward width, L layers, V vocabulary; `meta` holds the
# extra metadata keys (without the "<arch>." prefix, except for keys starting with "!": written verbatim),
# `tied`: no output.weight, `bias`: optional bias tensors to write, `fused`: Phi-3's attn_qkv and 2F-row ffn_up.
TINY = {
    # Llama 3.1 style: head size != C/H (Mistral-Nemo), per-pair rope_freqs divisors, tied output, every optional
    # bias llama.cpp's llama loader accepts.
    "llama": dict(arch="llama", C=24, H=4, KVH=2, D=8, F=40, L=2, V=37, tied=True, rope_freqs=True,
                  bias=("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"),
                  meta={"rope.freq_base": 500.0}),
    # YaRN with non-default betas, partial rotary (dimension_count < D), untied output.
    "llama_yarn": dict(arch="llama", C=32, H=4, KVH=4, D=8, F=48, L=2, V=41, n_rot=6,
                       meta={"rope.freq_base": 100.0, "rope.scaling.type": "yarn", "rope.scaling.factor": 4.0,
                             "rope.scaling.original_context_length": 64, "rope.scaling.yarn_beta_fast": 16.0,
                             "rope.scaling.yarn_beta_slow": 2.0, "context_length": 256}),
    # q/k/v and output biases, linear rope scaling.
    "qwen2": dict(arch="qwen2", C=32, H=4, KVH=2, D=8, F=48, L=2, V=43, bias=("attn_q", "attn_k", "attn_v"),
                  output_bias=True, meta={"rope.freq_base": 1000.0, "rope.scaling.type": "linear",
                                          "rope.scaling.factor": 2.0}),
    # per-head q/k RMSNorm, head size != C/H, tied.
    "qwen3": dict(arch="qwen3", C=24, H=4, KVH=2, D=10, F=40, L=2, V=37, tied=True, qk_norm=True,
                  meta={"rope.freq_base": 1000.0}),
    # softcaps, sliding window 3 on even layers, post norms, gelu, embedding scale, head size != C/H.
    "gemma2": dict(arch="gemma2", C=24, H=4, KVH=2, D=10, F=40, L=3, V=37, tied=True, post_norms=True,
                   meta={"attn_logit_softcapping": 8.0, "final_logit_softcapping": 6.0,
                         "attention.sliding_window": 3}),
    # q/k norms, window 4 on layers with (l+1) % 6 != 0, local base 10000 (default), global base 1000 with linear
    # factor 8, final soft-cap present.
    "gemma3": dict(arch="gemma3", C=24, H=4, KVH=1, D=8, F=40, L=7, V=37, tied=True, post_norms=True,
                   qk_norm=True, meta={"rope.freq_base": 1000.0, "rope.scaling.type": "linear",
                                       "rope.scaling.factor": 8.0, "attention.sliding_window": 4,
                                       "final_logit_softcapping": 5.0}),
    # fused attn_qkv and ffn_up (gate rows then up rows), partial rotary, longrope factors and attention factor
    # (the converter writes no rope.scaling.type for Phi-3), a sliding_window key that llama.cpp ignores.
    "phi3": dict(arch="phi3", C=24, H=4, KVH=2, D=6, F=32, L=2, V=37, n_rot=4, fused=True, longrope=True,
                 meta={"rope.freq_base": 100.0, "context_length": 32, "rope.scaling.original_context_length": 8,
                       "rope.scaling.attn_factor": 1.19, "attention.sliding_window": 2}),
    # llama graph + YaRN with yarn_log_multiplier (attention factor 1) + attention temperature.
    "mistral3": dict(arch="mistral3", C=24, H=4, KVH=2, D=8, F=40, L=2, V=37,
                     meta={"rope.freq_base": 200.0, "rope.scaling.type": "yarn", "rope.scaling.factor": 16.0,
                           "rope.scaling.original_context_length": 4, "rope.scaling.yarn_beta_fast": 32.0,
                           "rope.scaling.yarn_beta_slow": 1.0, "rope.scaling.yarn_log_multiplier": 1.0,
                           "attention.temperature_scale": 0.5, "context_length": 64}),
}


def make_tiny(path, name, seed=0, **override):
    """Writes the tiny model TINY[name] (with `override`s of its fields) to `path`; returns its configuration."""
    cfg = dict(TINY[name], **override)
    rng = np.random.default_rng(seed)
    arch, C, H, KVH, D, F, L, V = (cfg[k] for k in ("arch", "C", "H", "KVH", "D", "F", "L", "V"))
    n_rot = cfg.get("n_rot", D)
    QD, KVD = H * D, KVH * D

    md = {"general.architecture": arch, "general.name": f"tiny-{name}"}
    md[f"{arch}.context_length"] = 128
    md[f"{arch}.embedding_length"] = C
    md[f"{arch}.block_count"] = L
    md[f"{arch}.feed_forward_length"] = F
    md[f"{arch}.attention.head_count"] = H
    md[f"{arch}.attention.head_count_kv"] = KVH
    md[f"{arch}.attention.layer_norm_rms_epsilon"] = 1e-5
    if D * H != C or cfg.get("kl"):
        md[f"{arch}.attention.key_length"] = D
        md[f"{arch}.attention.value_length"] = D
    md[f"{arch}.rope.dimension_count"] = n_rot
    for k, v in cfg.get("meta", {}).items():
        md[k[1:] if k.startswith("!") else f"{arch}.{k}"] = v
    md.update(_vocab(V))

    def mat(rows, cols, std=None):
        return rng.normal(0, std if std is not None else 1.0 / np.sqrt(cols), (rows, cols))

    def norm(n):
        return 1.0 + 0.2 * rng.standard_normal(n)

    t = {"token_embd.weight": rng.normal(0, 0.5 if arch.startswith("gemma") else 1.0, (V, C)),
         "output_norm.weight": norm(C)}
    if not cfg.get("tied"):
        t["output.weight"] = mat(V, C, 2.0 / np.sqrt(C))
    if cfg.get("output_bias"):
        t["output.bias"] = 0.3 * rng.standard_normal(V)
    if cfg.get("rope_freqs"):
        t["rope_freqs.weight"] = rng.uniform(1.0, 8.0, n_rot // 2)
    if cfg.get("longrope"):
        t["rope_factors_long.weight"] = rng.uniform(1.0, 6.0, n_rot // 2)
        t["rope_factors_short.weight"] = rng.uniform(0.8, 1.5, n_rot // 2)
    for l in range(L):
        p = f"blk.{l}."
        t[p + "attn_norm.weight"] = norm(C)
        # Attention weights large enough that scores reach the soft-caps and the softmax is far from uniform.
        if cfg.get("fused"):
            t[p + "attn_qkv.weight"] = mat(QD + 2 * KVD, C, 2.0 / np.sqrt(C))
        else:
            t[p + "attn_q.weight"] = mat(QD, C, 2.0 / np.sqrt(C))
            t[p + "attn_k.weight"] = mat(KVD, C, 2.0 / np.sqrt(C))
            t[p + "attn_v.weight"] = mat(KVD, C)
        t[p + "attn_output.weight"] = mat(C, QD)
        if cfg.get("qk_norm"):
            t[p + "attn_q_norm.weight"] = norm(D)
            t[p + "attn_k_norm.weight"] = norm(D)
        if cfg.get("post_norms"):
            t[p + "post_attention_norm.weight"] = norm(C)
            t[p + "post_ffw_norm.weight"] = norm(C)
        t[p + "ffn_norm.weight"] = norm(C)
        if cfg.get("fused"):
            t[p + "ffn_up.weight"] = mat(2 * F, C)
        else:
            t[p + "ffn_gate.weight"] = mat(F, C)
            t[p + "ffn_up.weight"] = mat(F, C)
        t[p + "ffn_down.weight"] = mat(C, F)
        for b in cfg.get("bias", ()):
            t[p + b + ".bias"] = 0.2 * rng.standard_normal(t[p + b + ".weight"].shape[0])
    write_gguf(path, md, t)
    return cfg


def make_meta_only(path, arch, L, C=16, H=4, extra=None):
    """A GGUF with metadata only (no tensors): for checks of the hyper-parameters a loader derives."""
    md = {"general.architecture": arch, f"{arch}.context_length": 128, f"{arch}.embedding_length": C,
          f"{arch}.block_count": L, f"{arch}.feed_forward_length": 2 * C, f"{arch}.attention.head_count": H,
          f"{arch}.attention.head_count_kv": H, f"{arch}.attention.layer_norm_rms_epsilon": 1e-6}
    for k, v in (extra or {}).items():
        md[f"{arch}.{k}"] = v
    write_gguf(path, md, {})
