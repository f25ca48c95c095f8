#!/usr/bin/python3
# Independent PyTorch (CPU) reference of vklora's LoRA training step on a GGUF model (llama, mistral3, qwen2,
# qwen3, gemma2, gemma3, phi3): forward from the GGUF weights, LoRA adapters, cross-entropy with gradient
# accumulation, global-norm clipping and AdamW.
#
#   llama_lora.py SPEC.json OUT.json [--dtype float64|float32]
#
# The exact semantics, the SPEC/OUT formats and how the C tests use this are in README.md next to this file.
# Run with /usr/bin/python3 (Debian's python3-torch); float64 by default so that it is the accurate side of
# every comparison.
import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # keep the source tree clean when the C suite runs this
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_np  # noqa: E402

# LoRA module ids as used in SPEC "slots": index -> (target name, GGUF tensor name inside blk.N). 7 and 8 are
# Phi-3's fused projections: attn_qkv (q rows, then k rows, then v rows) and ffn_up of 2F rows (gate, then up).
MODULES = (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_output"),
           ("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down"),
           ("qkv", "attn_qkv"), ("gate_up", "ffn_up"))
M_Q, M_K, M_V, M_O, M_GATE, M_UP, M_DOWN, M_QKV, M_GATE_UP = range(len(MODULES))
MODULE_ID = {name: i for i, (name, _) in enumerate(MODULES)}
DTYPES = {"float64": torch.float64, "float32": torch.float32}
# Upper bound on the flat parameter vector read from "init": far beyond any test, small enough that a
# wrong file cannot make us allocate gigabytes.
MAX_FLAT = 1 << 28
LOGITS_FIRST_ROWS = 8

ARCHS = ("llama", "mistral3", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")
# rope.scaling.type values each architecture accepts here (llama.cpp's default when the key is absent: linear).
SCALING_TYPES = {"llama": ("none", "linear", "yarn", "longrope"), "mistral3": ("none", "linear", "yarn", "longrope"),
                 "qwen2": ("none", "linear", "yarn"), "qwen3": ("none", "linear", "yarn"),
                 "gemma2": ("none", "linear"), "gemma3": ("none", "linear"), "phi3": ("none", "linear", "longrope")}
# Optional bias tensors (blk.N.<name>.bias) each architecture's llama.cpp loader accepts; they are added to the
# projection's output and never trained. attn_qkv.bias goes with a fused attn_qkv.weight.
BIASES = {"llama": ("attn_q", "attn_k", "attn_v", "attn_qkv", "attn_output", "ffn_gate", "ffn_up", "ffn_down"),
          "qwen2": ("attn_q", "attn_k", "attn_v", "attn_qkv"), "qwen3": ("attn_q", "attn_k", "attn_v", "attn_qkv"),
          "gemma2": ("attn_q", "attn_k", "attn_v", "attn_qkv"), "gemma3": ("attn_q", "attn_k", "attn_v", "attn_qkv"),
          "phi3": ("attn_q", "attn_k", "attn_v", "attn_qkv")}
BIASES["mistral3"] = BIASES["llama"]


class RefError(Exception):
    """Bad input (spec, model, data); main prints it and exits with status 2."""


# ----------------------------------------------------------------------------------------------------------
# model


def get_mscale(scale, mscale=1.0):
    """YaRN's magnitude correction (HF _compute_yarn_parameters / llama.cpp llama_context)."""
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


class Rope:
    """The rotary embedding of one layer. Pair i (0 <= i < n_rot/2) of a head rotates by

        theta_extrap = pos * base^(-2i/n_rot) / ff[i]          (ff: rope_freqs / longrope factors, else 1)
        theta_interp = freq_scale * theta_extrap
        theta        = theta_interp                              (no YaRN)
                     = theta_interp * (1 - ramp_i) + theta_extrap * ramp_i      (YaRN)
        ramp_i = 1 - clamp((i - low) / max(0.001, high - low), 0, 1)

    and cos/sin are multiplied by `mscale`. See README.md for where every constant comes from."""

    def __init__(self, n_rot, base, freq_scale=1.0, yarn=None, mscale=1.0, factors=None):
        self.n_rot, self.base, self.freq_scale, self.mscale = n_rot, float(base), float(freq_scale), float(mscale)
        self.yarn = yarn              # None or (beta_fast, beta_slow, n_orig)
        self.factors = factors        # None, an array [n_rot/2], or ("longrope", long|None, short|None, n_orig)

    def corr_dims(self):
        """YaRN's [low, high] pair range (ggml_rope_yarn_corr_dims)."""
        beta_fast, beta_slow, n_orig = self.yarn

        def corr(n_rotations):
            return self.n_rot * math.log(n_orig / (n_rotations * 2 * math.pi)) / (2 * math.log(self.base))
        return max(0.0, math.floor(corr(beta_fast))), min(self.n_rot - 1.0, math.ceil(corr(beta_slow)))

    def freq_factors(self, n_ctx):
        if isinstance(self.factors, tuple):
            _, long_f, short_f, n_orig = self.factors
            return long_f if n_ctx > n_orig else short_f
        return self.factors

    def angles(self, T, n_ctx):
        """theta (T, n_rot/2) in float64 for positions 0..T-1; n_ctx picks the longrope factors."""
        i = np.arange(self.n_rot // 2, dtype=np.float64)
        theta_e = np.arange(T, dtype=np.float64)[:, None] * (self.base ** (-2.0 * i / self.n_rot))[None, :]
        ff = self.freq_factors(n_ctx)
        if ff is not None:
            theta_e = theta_e / ff.astype(np.float64)[None, :]
        theta_i = self.freq_scale * theta_e
        if self.yarn is None:
            return theta_i
        low, high = self.corr_dims()
        ramp = 1.0 - np.clip((i - low) / max(0.001, high - low), 0.0, 1.0)
        return theta_i * (1.0 - ramp) + theta_e * ramp

    def tables(self, T, n_ctx, dtype):
        th = self.angles(T, n_ctx)
        return (torch.from_numpy(np.cos(th) * self.mscale).to(dtype),
                torch.from_numpy(np.sin(th) * self.mscale).to(dtype))


class Hparams:
    """Shapes and constants from the GGUF metadata (keys `<arch>.*`). C: embedding, L: layers, H / KVH: query /
    key-value heads, D: head dimension, F: feed-forward width, V: vocabulary. Per-layer: rope[l] (a Rope),
    window[l] (sliding window or None)."""

    def __init__(self, g):
        md = g.metadata
        arch = md.get("general.architecture")
        if arch not in ARCHS:
            raise RefError(f"{g.path}: general.architecture is {arch!r}, expected one of {list(ARCHS)}")
        self.arch = arch

        def num(key, default=None, required=True):
            v = md.get(f"{arch}.{key}", default)
            if v is None:
                if required:
                    raise RefError(f"{g.path}: metadata '{arch}.{key}' is missing")
                return None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RefError(f"{g.path}: metadata '{arch}.{key}' is {v!r}, expected a number")
            return v

        def has(key):
            return f"{arch}.{key}" in md

        def bad(what):
            raise RefError(f"{g.path}: {what}")

        self.C = int(num("embedding_length"))
        self.L = int(num("block_count"))
        self.H = int(num("attention.head_count"))
        self.KVH = int(num("attention.head_count_kv", self.H))
        self.F = int(num("feed_forward_length"))
        self.eps = float(num("attention.layer_norm_rms_epsilon"))
        if min(self.C, self.L, self.H, self.KVH, self.F) <= 0 or self.H % self.KVH:
            bad(f"sizes C={self.C} L={self.L} H={self.H} KVH={self.KVH} F={self.F}: expected positive, "
                f"H a multiple of KVH")
        # Head size: attention.key_length (Mistral-Nemo, Qwen3, Gemma: may differ from C/H), else C / H.
        self.D = int(num("attention.key_length", self.C // self.H))
        Dv = int(num("attention.value_length", self.C // self.H))
        if Dv != self.D or self.D <= 0:
            bad(f"attention.key_length {self.D} and value_length {Dv} must be equal and positive")
        self.QD, self.KVD = self.H * self.D, self.KVH * self.D
        self.n_rot = int(num("rope.dimension_count", self.D))
        if self.n_rot <= 0 or self.n_rot % 2 or self.n_rot > self.D:
            bad(f"rope.dimension_count {self.n_rot}: expected an even number in [2, {self.D}]")
        self.rope_mode = "normal" if arch in ("llama", "mistral3") else "neox"
        self.n_ctx_train = num("context_length", None, required=False)
        n_orig = num("rope.scaling.original_context_length", self.n_ctx_train, required=False)
        self.n_orig = int(n_orig) if n_orig is not None else None

        # --- RoPE (global layers) ---
        base = float(num("rope.freq_base", 10000.0))
        if base <= 0 or base == 1:
            bad(f"'{arch}.rope.freq_base' is {base}, expected > 0 and != 1")
        stype = md.get(f"{arch}.rope.scaling.type", "linear")
        if stype not in SCALING_TYPES[arch]:
            bad(f"metadata '{arch}.rope.scaling.type' is {stype!r}; this reference supports "
                f"{list(SCALING_TYPES[arch])} for {arch}")
        factor = num("rope.scaling.factor", None, required=False)
        if factor is None:
            factor = num("rope.scale_linear", 0.0)
        factor = float(factor)
        if factor < 0:
            bad(f"rope scaling factor {factor} is negative")
        factor = 1.0 if factor == 0 or stype == "none" else factor
        self.rope_factor = factor
        attn_factor = float(num("rope.scaling.attn_factor", 1.0))
        yarn, mscale = None, attn_factor
        if stype == "yarn":
            if self.n_orig is None or self.n_orig <= 0:
                bad(f"YaRN needs '{arch}.rope.scaling.original_context_length' or '{arch}.context_length'")
            yarn = (float(num("rope.scaling.yarn_beta_fast", 32.0)), float(num("rope.scaling.yarn_beta_slow", 1.0)),
                    self.n_orig)
            if min(yarn[:2]) <= 0:
                bad(f"YaRN betas {yarn[0]} / {yarn[1]}: expected > 0")
            ym = get_mscale(factor)
            log_mul = float(num("rope.scaling.yarn_log_multiplier", 0.0)) if arch == "mistral3" else 0.0
            if log_mul != 0:
                ym /= get_mscale(factor, log_mul)
            mscale = attn_factor * ym
        self.rope_type = stype
        glob = Rope(self.n_rot, base, 1.0 / factor, yarn, mscale)

        # --- attention: scale, soft-cap, sliding window ---
        self.attn_scale = 1.0 / math.sqrt(self.D)
        self.attn_softcap = self.final_softcap = None
        self.embd_scale = None
        self.qk_norm = arch in ("qwen3", "gemma3")
        self.post_norms = arch in ("gemma2", "gemma3")
        self.act = "gelu_tanh" if arch in ("gemma2", "gemma3") else "silu"
        self.fused_ffn = arch == "phi3"
        self.tied_only = arch == "gemma2"
        window, pattern_default = None, None
        if arch in ("gemma2", "gemma3"):
            self.embd_scale = math.sqrt(self.C)
            big = self.L == (46 if arch == "gemma2" else 62)       # the 27B sizes
            self.attn_scale = 1.0 / math.sqrt(self.C // self.H if big else self.D)
        if arch == "gemma2":
            self.attn_softcap = float(num("attn_logit_softcapping", 50.0))
            self.final_softcap = float(num("final_logit_softcapping", 30.0))
            window = int(num("attention.sliding_window", 4096))
            if window <= 0:
                bad(f"'{arch}.attention.sliding_window' is {window}, expected > 0")
            pattern_default = 2
        if arch == "gemma3":
            fs = float(num("final_logit_softcapping", 0.0))
            self.final_softcap = fs if fs != 0 else None
            w = int(num("attention.sliding_window", 0))
            if w > 0:
                window, pattern_default = w, 6
        for cap in (self.attn_softcap, self.final_softcap):
            if cap is not None and cap <= 0:
                bad(f"soft-capping value {cap}: expected > 0")

        # Which layers slide: attention.sliding_window_pattern as an array (one flag per layer) or an integer n
        # (layer l slides iff n == 0 or l % n < n - 1); default n = 2 (gemma2) / 6 (gemma3).
        self.swa = [False] * self.L
        if window is not None:
            pat = md.get(f"{arch}.attention.sliding_window_pattern", pattern_default)
            if isinstance(pat, list):
                if len(pat) != self.L or any(isinstance(x, float) or x not in (0, 1) for x in pat):
                    bad(f"'{arch}.attention.sliding_window_pattern' must have {self.L} entries of 0/1")
                self.swa = [bool(x) for x in pat]
            else:
                if isinstance(pat, bool) or not isinstance(pat, int) or pat < 0:
                    bad(f"'{arch}.attention.sliding_window_pattern' is {pat!r}, expected a non-negative integer")
                self.swa = [pat == 0 or l % pat < pat - 1 for l in range(self.L)]
        self.window = [window if s else None for s in self.swa]

        # Local (sliding) layers' RoPE: gemma2 keeps the global scaling with base rope.freq_base_swa (default
        # rope.freq_base); gemma3 uses rope.freq_base_swa (default 10000) and no scaling.
        if arch in ("gemma2", "gemma3"):
            base_swa = float(num("rope.freq_base_swa", base if arch == "gemma2" else 10000.0))
            if base_swa <= 0:
                bad(f"'{arch}.rope.freq_base_swa' is {base_swa}, expected > 0")
            local = (Rope(self.n_rot, base_swa, 1.0 / factor, None, mscale) if arch == "gemma2"
                     else Rope(self.n_rot, base_swa, 1.0, None, attn_factor))
        else:
            local = glob
        self.rope = [local if s else glob for s in self.swa]
        self.rope_global, self.rope_local = glob, local

        # --- attention temperature (mistral3): q *= 1 + s * ln(1 + floor(pos / n_orig)) ---
        self.temp_scale = None
        if arch == "mistral3":
            s = float(num("attention.temperature_scale", 0.0))
            if s != 0:
                if self.n_orig is None or self.n_orig <= 0:
                    bad(f"attention temperature needs '{arch}.rope.scaling.original_context_length' or "
                        f"'{arch}.context_length' > 0")
                self.temp_scale = s
        self.V = g.tensors["token_embd.weight"].ne[1] if "token_embd.weight" in g.tensors else 0

    def temperature(self, T):
        """(T,) float64 query multipliers of mistral3's attention temperature, or None."""
        if self.temp_scale is None:
            return None
        pos = np.arange(T, dtype=np.float64)
        return 1.0 + self.temp_scale * np.log(1.0 + np.floor(pos / self.n_orig))


class Model:
    """The frozen base model: every weight as a torch tensor of `dtype` in torch (row-major) layout, so a
    linear weight with ggml ne=[in, out] is a matrix [out, in] and y = x @ W.T. `modules` is the set of LoRA
    module ids this model has; `n_ctx` (None: each call's T) is the context that picks longrope factors."""

    def __init__(self, path, dtype=torch.float64):
        self.dtype = dtype
        self.n_ctx = None
        try:
            g = gguf_np.GGUFFile(path)
        except (OSError, gguf_np.GGUFError) as e:
            raise RefError(f"model: {e}")
        with g:
            self.hp = hp = Hparams(g)
            arch = hp.arch
            used = set()

            def w(name, shape, required=True, as_numpy=False):
                if name not in g.tensors:
                    if required:
                        raise RefError(f"{path}: tensor '{name}' is missing")
                    return None
                try:
                    a = g.tensor(name)
                except gguf_np.GGUFError as e:
                    raise RefError(str(e))
                if a.shape != shape:
                    raise RefError(f"{path}: tensor '{name}' has torch shape {a.shape}, expected {shape}")
                used.add(name)
                return a.copy() if as_numpy else torch.from_numpy(a).to(dtype)

            C, F, V, D = hp.C, hp.F, hp.V, hp.D
            QD, KVD = hp.QD, hp.KVD
            self.token_embd = w("token_embd.weight", (V, C))      # (V, C)
            self.output_norm = w("output_norm.weight", (C,))      # (C,)
            # Tied embeddings: models without output.weight reuse token_embd as the classifier (gemma2: always).
            out = None if hp.tied_only else w("output.weight", (V, C), required=False)
            self.output = out if out is not None else self.token_embd
            self.output_b = w("output.bias", (V,), required=False) if arch == "qwen2" else None

            # Rope frequency factors: rope_freqs (llama, mistral3 unless longrope), rope_factors_long/short
            # (phi3; llama, mistral3 with rope.scaling.type longrope), [n_rot/2] each.
            half = (hp.n_rot // 2,)
            if arch == "phi3" or (arch in ("llama", "mistral3") and hp.rope_type == "longrope"):
                lf = w("rope_factors_long.weight", half, required=False, as_numpy=True)
                sf = w("rope_factors_short.weight", half, required=False, as_numpy=True)
                if lf is not None or sf is not None:
                    if hp.n_orig is None:
                        raise RefError(f"{path}: longrope factors need '{arch}.rope.scaling.original_context_length' "
                                       f"or '{arch}.context_length'")
                    hp.rope_global.factors = ("longrope", lf, sf, hp.n_orig)
            elif arch in ("llama", "mistral3"):
                hp.rope_global.factors = w("rope_freqs.weight", half, required=False, as_numpy=True)

            self.layers = []
            fused_qkv = None
            for l in range(hp.L):
                p = f"blk.{l}."
                lw = {"attn_norm": w(p + "attn_norm.weight", (C,)),
                      "attn_output": w(p + "attn_output.weight", (C, QD)),
                      "ffn_norm": w(p + "ffn_norm.weight", (C,)),
                      "ffn_down": w(p + "ffn_down.weight", (C, F))}
                fq = p + "attn_qkv.weight" in g.tensors
                if fused_qkv is None:
                    fused_qkv = fq
                elif fq != fused_qkv:
                    raise RefError(f"{path}: layer {l} {'has' if fq else 'lacks'} attn_qkv.weight, layer 0 does "
                                   f"not agree")
                if fq:
                    lw["attn_qkv"] = w(p + "attn_qkv.weight", (QD + 2 * KVD, C))
                else:
                    lw["attn_q"] = w(p + "attn_q.weight", (QD, C))
                    lw["attn_k"] = w(p + "attn_k.weight", (KVD, C))
                    lw["attn_v"] = w(p + "attn_v.weight", (KVD, C))
                if hp.fused_ffn:
                    lw["ffn_up"] = w(p + "ffn_up.weight", (2 * F, C))
                else:
                    lw["ffn_gate"] = w(p + "ffn_gate.weight", (F, C))
                    lw["ffn_up"] = w(p + "ffn_up.weight", (F, C))
                if hp.qk_norm:
                    lw["attn_q_norm"] = w(p + "attn_q_norm.weight", (D,))
                    lw["attn_k_norm"] = w(p + "attn_k_norm.weight", (D,))
                if hp.post_norms:
                    lw["post_attention_norm"] = w(p + "post_attention_norm.weight", (C,))
                    lw["post_ffw_norm"] = w(p + "post_ffw_norm.weight", (C,))
                for b in BIASES[arch]:
                    if b in lw:
                        lw[b + ".bias"] = w(p + b + ".bias", (lw[b].shape[0],), required=False)
                self.layers.append(lw)
            self.fused_qkv = fused_qkv
            # llama.cpp refuses files with tensors its loader does not use; so does this reference, so that a
            # misnamed tensor cannot silently drop out of the graph.
            unused = sorted(set(g.tensors) - used)
            if unused:
                raise RefError(f"{path}: {len(unused)} tensor(s) that a {arch} model does not use, e.g. '{unused[0]}'")

        mods = {M_O, M_DOWN}
        mods |= {M_QKV} if fused_qkv else {M_Q, M_K, M_V}
        mods |= {M_GATE_UP} if hp.fused_ffn else {M_GATE, M_UP}
        self.modules = mods

    def module_shape(self, module):
        """(in, out) of LoRA module id `module`, the same for every layer; RefError if the model lacks it."""
        if module not in self.modules:
            raise RefError(f"module {module} ({MODULES[module][0]}) does not exist in this {self.hp.arch} model")
        W = self.layers[0][MODULES[module][1]]
        return W.shape[1], W.shape[0]

    def forward(self, tokens, lora=None):
        """tokens: LongTensor (B, T), each row starting at position 0. Returns logits (B, T, V)."""
        hp = self.hp
        B, T = tokens.shape
        dt = self.dtype
        n_ctx = self.n_ctx if self.n_ctx is not None else T
        h = self.token_embd[tokens]                                   # (B, T, C)
        if hp.embd_scale is not None:
            h = h * torch.tensor(hp.embd_scale, dtype=dt)             # sqrt(C) rounded to the run's dtype
        temp = hp.temperature(T)
        if temp is not None:
            temp = torch.from_numpy(temp).to(dt)[None, :, None, None]
        tables = {}
        for l, lw in enumerate(self.layers):
            def lin(x, module):
                name = MODULES[module][1]
                y = x @ lw[name].T
                b = lw.get(name + ".bias")
                if b is not None:
                    y = y + b
                return y if lora is None else lora.add(l, module, x, y)

            xn = rmsnorm(h, lw["attn_norm"], hp.eps)
            if self.fused_qkv:
                q, k, v = lin(xn, M_QKV).split([hp.QD, hp.KVD, hp.KVD], dim=-1)
            else:
                q, k, v = lin(xn, M_Q), lin(xn, M_K), lin(xn, M_V)
            q = q.reshape(B, T, hp.H, hp.D)
            k = k.reshape(B, T, hp.KVH, hp.D)
            v = v.reshape(B, T, hp.KVH, hp.D)
            if hp.qk_norm:
                q = rmsnorm(q, lw["attn_q_norm"], hp.eps)
                k = rmsnorm(k, lw["attn_k_norm"], hp.eps)
            r = hp.rope[l]
            if id(r) not in tables:
                tables[id(r)] = r.tables(T, n_ctx, dt)
            cos, sin = tables[id(r)]
            q, k = rope(q, cos, sin, hp.rope_mode), rope(k, cos, sin, hp.rope_mode)
            if temp is not None:
                q = q * temp
            a = attention(q, k, v, hp.attn_scale, hp.window[l], hp.attn_softcap)   # (B, T, H*D)
            o = lin(a, M_O)
            if hp.post_norms:
                o = rmsnorm(o, lw["post_attention_norm"], hp.eps)
            h = h + o
            xn = rmsnorm(h, lw["ffn_norm"], hp.eps)
            if hp.fused_ffn:
                gu = lin(xn, M_GATE_UP)
                g, u = gu[..., :hp.F], gu[..., hp.F:]
            else:
                g, u = lin(xn, M_GATE), lin(xn, M_UP)
            if hp.act == "silu":
                g = torch.nn.functional.silu(g)
            else:
                g = torch.nn.functional.gelu(g, approximate="tanh")
            f = lin(g * u, M_DOWN)
            if hp.post_norms:
                f = rmsnorm(f, lw["post_ffw_norm"], hp.eps)
            h = h + f
        logits = rmsnorm(h, self.output_norm, hp.eps) @ self.output.T
        if self.output_b is not None:
            logits = logits + self.output_b
        if hp.final_softcap is not None:
            logits = hp.final_softcap * torch.tanh(logits / hp.final_softcap)
        return logits


Llama = Model  # the name the first version of this reference used


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin, mode="normal"):
    """x (B, T, heads, D); cos/sin (T, n_rot/2). The first n_rot entries of every head rotate, the rest pass.
    "normal" (GGUF llama layout): pair (2i, 2i+1) rotates by angle i; "neox": pair (i, i + n_rot/2)."""
    n_rot = 2 * cos.shape[-1]
    xr, xp = x[..., :n_rot], x[..., n_rot:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    if mode == "normal":
        x0, x1 = xr[..., 0::2], xr[..., 1::2]
        out = torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)
    else:
        x0, x1 = xr[..., :n_rot // 2], xr[..., n_rot // 2:]
        out = torch.cat((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1)
    return torch.cat((out, xp), dim=-1) if xp.shape[-1] else out


def attention(q, k, v, scale=None, window=None, softcap=None):
    """Causal grouped-query attention: q (B, T, H, D), k/v (B, T, KVH, D); head h reads kv head h // (H/KVH).
    score = scale * q.k (scale default 1/sqrt(D)); with `softcap`: score = softcap * tanh(score / softcap);
    query p sees key j iff j <= p and (window is None or p - j < window)."""
    B, T, H, D = q.shape
    group = H // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))                 # (B, H, T, D)
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D) if scale is None else scale)
    if softcap is not None:
        scores = softcap * torch.tanh(scores / softcap)
    pos = torch.arange(T)
    mask = pos[None, :] > pos[:, None]                                 # [p, j]: j > p
    if window is not None:
        mask = mask | (pos[:, None] - pos[None, :] >= window)
    scores = scores.masked_fill(mask, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v                           # (B, H, T, D)
    return out.transpose(1, 2).reshape(B, T, H * D)


# ----------------------------------------------------------------------------------------------------------
# LoRA


class Lora:
    """Adapters A (r, in) and B (out, r) for each slot, as leaf tensors; y += s * (x A^T) B^T."""

    def __init__(self, slots, r, alpha, use_rslora, flat, dtype):
        self.slots = slots
        self.r = r
        self.scale = alpha / math.sqrt(r) if use_rslora else alpha / r
        self.n = flat.size
        self.A, self.B, self.by_key = [], [], {}
        for i, s in enumerate(slots):
            a = flat[s["a_off"]:s["a_off"] + r * s["in"]].reshape(r, s["in"])
            b = flat[s["b_off"]:s["b_off"] + s["out"] * r].reshape(s["out"], r)
            self.A.append(torch.tensor(a, dtype=dtype, requires_grad=True))
            self.B.append(torch.tensor(b, dtype=dtype, requires_grad=True))
            self.by_key[(s["layer"], s["module"])] = i

    def params(self):
        return [p for pair in zip(self.A, self.B) for p in pair]

    def add(self, layer, module, x, y):
        i = self.by_key.get((layer, module))
        if i is None:
            return y
        return y + self.scale * ((x @ self.A[i].T) @ self.B[i].T)

    def _flat(self, tensors, base):
        out = base.astype(np.float64).copy()
        for s, a, b in zip(self.slots, tensors[0::2], tensors[1::2]):
            out[s["a_off"]:s["a_off"] + a.numel()] = a.detach().reshape(-1).to(torch.float64).numpy()
            out[s["b_off"]:s["b_off"] + b.numel()] = b.detach().reshape(-1).to(torch.float64).numpy()
        return out

    def flat_params(self, base):
        """The flat vector: `base` with every slot's A and B written over it."""
        return self._flat(self.params(), base)

    def flat_grads(self):
        """Gradients in the flat layout; coordinates outside every slot are 0."""
        return self._flat([p.grad for p in self.params()], np.zeros(self.n))


# ----------------------------------------------------------------------------------------------------------
# one optimizer step


def token_nll(logits, targets):
    """Per-token NLL (B, T); positions with target -1 are 0."""
    logp = torch.log_softmax(logits, dim=-1)
    keep = targets >= 0
    nll = -logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(keep, nll, torch.zeros_like(nll))


def accumulate_grads(model, lora, micro_batches):
    """Forward + backward of every micro-batch; leaves d(step loss)/dp in p.grad, where step loss = sum of
    all per-token NLLs / count of all non-ignored targets of the step. Returns (loss, count, first) with
    first = (logits, nll) of micro-batch 0 (detached)."""
    count = sum(int((mb["targets"] >= 0).sum()) for mb in micro_batches)
    for p in lora.params():
        p.grad = None
    total = 0.0
    first = None
    for mb in micro_batches:
        logits = model.forward(mb["tokens"], lora)
        nll = token_nll(logits, mb["targets"])
        s = nll.sum()
        (s / count).backward()
        total += float(s.detach())
        if first is None:
            first = (logits.detach(), nll.detach())
    return total / count, count, first


def clip_grads(params, max_norm):
    """Global L2 norm over all gradients; scales them by max_norm / (norm + 1e-6) when max_norm > 0 and
    norm > max_norm. Returns the pre-clip norm."""
    norm = float(torch.sqrt(sum((p.grad.to(torch.float64) ** 2).sum() for p in params)))
    if max_norm > 0 and norm > max_norm:
        coef = max_norm / (norm + 1e-6)
        for p in params:
            p.grad.mul_(coef)
    return norm


class AdamW:
    """torch.optim.AdamW's update written out (amsgrad off, maximize off)."""

    def __init__(self, params, beta1, beta2, eps, weight_decay):
        self.params = params
        self.b1, self.b2, self.eps, self.wd = beta1, beta2, eps, weight_decay
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    @torch.no_grad()
    def step(self, lr):
        self.t += 1
        bc1 = 1 - self.b1 ** self.t
        bc2 = 1 - self.b2 ** self.t
        for p, m, v in zip(self.params, self.m, self.v):
            g = p.grad
            p.mul_(1 - lr * self.wd)
            m.mul_(self.b1).add_(g, alpha=1 - self.b1)
            v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
            denom = (v.sqrt() / math.sqrt(bc2)).add_(self.eps)
            p.addcdiv_(m, denom, value=-lr / bc1)


# ----------------------------------------------------------------------------------------------------------
# SPEC parsing: every message names the JSON path and what was expected


def _int(v, path, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, int):
        raise RefError(f"spec: {path}: expected an integer, got {json.dumps(v)[:40]}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise RefError(f"spec: {path}: expected an integer in [{lo}, {hi}], got {v}")
    return v


def _num(v, path):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RefError(f"spec: {path}: expected a finite number, got {json.dumps(v)[:40]}")
    return float(v)


def _get(obj, key, path):
    if not isinstance(obj, dict):
        raise RefError(f"spec: {path}: expected an object")
    if key not in obj:
        raise RefError(f"spec: {path}.{key}: missing")
    return obj[key]


def _list(v, path, nonempty=True):
    if not isinstance(v, list) or (nonempty and not v):
        raise RefError(f"spec: {path}: expected a non-empty array")
    return v


def _grid(v, path, lo, hi):
    """A rectangular (B, T) array of integers in [lo, hi)."""
    rows = _list(v, path)
    for b, row in enumerate(rows):
        _list(row, f"{path}[{b}]")
        if len(row) != len(rows[0]):
            raise RefError(f"spec: {path}[{b}]: has {len(row)} entries, row 0 has {len(rows[0])}")
        for t, x in enumerate(row):
            _int(x, f"{path}[{b}][{t}]", lo, hi - 1)
    return torch.tensor(rows, dtype=torch.long)


def parse_spec(spec, model_loader):
    """Validates SPEC; returns (model, dict of parsed fields). model_loader(path) -> Model."""
    if not isinstance(spec, dict):
        raise RefError("spec: top level: expected an object")
    out = {}
    model_path = _get(spec, "model", "$")
    if not isinstance(model_path, str):
        raise RefError("spec: $.model: expected a path string")
    model = model_loader(model_path)
    hp = model.hp

    out["r"] = r = _int(_get(spec, "r", "$"), "$.r", 1, 4096)
    out["alpha"] = _num(_get(spec, "alpha", "$"), "$.alpha")
    rs = _get(spec, "use_rslora", "$")
    if not isinstance(rs, bool):
        raise RefError("spec: $.use_rslora: expected true or false")
    out["use_rslora"] = rs

    targets = _list(_get(spec, "targets", "$"), "$.targets")
    for i, t in enumerate(targets):
        if t not in MODULE_ID:
            raise RefError(f"spec: $.targets[{i}]: expected one of {[m for m, _ in MODULES]}, got {json.dumps(t)}")
        if MODULE_ID[t] not in model.modules:
            have = [MODULES[m][0] for m in sorted(model.modules)]
            raise RefError(f"spec: $.targets[{i}]: this {hp.arch} model has no module '{t}' (it has {have})")
    if len(set(targets)) != len(targets):
        raise RefError("spec: $.targets: a module is listed twice")

    slots, seen = [], set()
    for i, s in enumerate(_list(_get(spec, "slots", "$"), "$.slots")):
        p = f"$.slots[{i}]"
        layer = _int(_get(s, "layer", p), p + ".layer", 0, hp.L - 1)
        module = _int(_get(s, "module", p), p + ".module", 0, len(MODULES) - 1)
        if MODULES[module][0] not in targets:
            raise RefError(f"spec: {p}.module: {module} ({MODULES[module][0]}) is not in $.targets")
        if (layer, module) in seen:
            raise RefError(f"spec: {p}: layer {layer} module {module} has a slot already")
        seen.add((layer, module))
        fin, fout = model.module_shape(module)
        d_in = _int(_get(s, "in", p), p + ".in")
        d_out = _int(_get(s, "out", p), p + ".out")
        if (d_in, d_out) != (fin, fout):
            raise RefError(f"spec: {p}: in/out are {d_in}/{d_out}, but {MODULES[module][1]} of this model has "
                           f"in={fin}, out={fout}")
        a_off = _int(_get(s, "a_off", p), p + ".a_off", 0, MAX_FLAT)
        b_off = _int(_get(s, "b_off", p), p + ".b_off", 0, MAX_FLAT)
        slots.append({"layer": layer, "module": module, "in": d_in, "out": d_out, "a_off": a_off, "b_off": b_off})
    out["slots"] = slots

    init = _get(spec, "init", "$")
    if not isinstance(init, str):
        raise RefError("spec: $.init: expected a path string")
    try:
        size = os.path.getsize(init)
    except OSError as e:
        raise RefError(f"spec: $.init: cannot read {init}: {e.strerror}")
    if size % 4 or size // 4 > MAX_FLAT:
        raise RefError(f"spec: $.init: {init} is {size} bytes, expected a multiple of 4 up to {MAX_FLAT * 4}")
    n = size // 4
    # Regions [start, end) of every A and B: all inside the vector, none overlapping.
    regions = []
    for i, s in enumerate(slots):
        regions.append((s["a_off"], s["a_off"] + r * s["in"], f"$.slots[{i}] A"))
        regions.append((s["b_off"], s["b_off"] + s["out"] * r, f"$.slots[{i}] B"))
    regions.sort()
    for j, (lo, hi, what) in enumerate(regions):
        if hi > n:
            raise RefError(f"spec: {what}: floats [{lo}, {hi}) run past the end of $.init ({n} floats)")
        if j and lo < regions[j - 1][1]:
            raise RefError(f"spec: {what}: floats [{lo}, {hi}) overlap {regions[j - 1][2]}")
    out["init"] = np.fromfile(init, dtype="<f4", count=n)
    if not np.all(np.isfinite(out["init"])):
        raise RefError(f"spec: $.init: {init} holds a non-finite value")

    ad = _get(spec, "adamw", "$")
    out["adamw"] = {k: _num(_get(ad, k, "$.adamw"), f"$.adamw.{k}") for k in ("beta1", "beta2", "eps",
                                                                               "weight_decay")}
    for k in ("beta1", "beta2"):
        if not 0 <= out["adamw"][k] < 1:
            raise RefError(f"spec: $.adamw.{k}: expected a number in [0, 1), got {out['adamw'][k]}")
    if out["adamw"]["eps"] <= 0 or out["adamw"]["weight_decay"] < 0:
        raise RefError("spec: $.adamw: expected eps > 0 and weight_decay >= 0")
    out["max_grad_norm"] = _num(_get(spec, "max_grad_norm", "$"), "$.max_grad_norm")

    steps = []
    for i, st in enumerate(_list(_get(spec, "steps", "$"), "$.steps")):
        p = f"$.steps[{i}]"
        lr = _num(_get(st, "lr", p), p + ".lr")
        mbs = []
        for j, mb in enumerate(_list(_get(st, "micro_batches", p), p + ".micro_batches")):
            q = f"{p}.micro_batches[{j}]"
            tok = _grid(_get(mb, "tokens", q), q + ".tokens", 0, hp.V)
            tgt = _grid(_get(mb, "targets", q), q + ".targets", -1, hp.V)
            if tok.shape != tgt.shape:
                raise RefError(f"spec: {q}: tokens are {list(tok.shape)} but targets are {list(tgt.shape)}")
            mbs.append({"tokens": tok, "targets": tgt})
        if not any(bool((mb["targets"] >= 0).any()) for mb in mbs):
            raise RefError(f"spec: {p}: every target is -1; the step's mean loss is undefined")
        steps.append({"lr": lr, "micro_batches": mbs})
    out["steps"] = steps
    # The context the run is configured for; it picks Phi-3's long or short rope factors (long iff
    # n_ctx > rope.scaling.original_context_length). Default: the longest micro-batch row of the spec.
    if "n_ctx" in spec:
        out["n_ctx"] = _int(spec["n_ctx"], "$.n_ctx", 1, 1 << 24)
    else:
        out["n_ctx"] = max(int(mb["tokens"].shape[1]) for st in steps for mb in st["micro_batches"])
    return model, out


# ----------------------------------------------------------------------------------------------------------
# driver


def run(spec, out_json, dtype_name=None, model_loader=None):
    """Runs SPEC (a dict) and writes OUT.json plus its .f32 files; returns the OUT dict."""
    if not isinstance(spec, dict):
        raise RefError("spec: top level: expected an object")
    dtype_name = dtype_name or spec.get("dtype", "float64")
    if dtype_name not in DTYPES:
        raise RefError(f"spec: $.dtype: expected one of {list(DTYPES)}, got {json.dumps(dtype_name)}")
    dtype = DTYPES[dtype_name]
    model, p = parse_spec(spec, model_loader or (lambda path: Model(path, dtype)))
    model.n_ctx = p["n_ctx"]
    lora = Lora(p["slots"], p["r"], p["alpha"], p["use_rslora"], p["init"], dtype)
    opt = AdamW(lora.params(), **{k: p["adamw"][k] for k in ("beta1", "beta2", "eps")},
                weight_decay=p["adamw"]["weight_decay"])

    losses, norms, counts = [], [], []
    grads0 = logits0 = nll0 = None
    for i, st in enumerate(p["steps"]):
        loss, count, first = accumulate_grads(model, lora, st["micro_batches"])
        if i == 0:
            grads0 = lora.flat_grads()
            logits0, nll0 = first
        norm = clip_grads(lora.params(), p["max_grad_norm"])
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise RefError(f"step {i}: loss {loss} / gradient norm {norm} is not finite")
        opt.step(st["lr"])
        losses.append(loss)
        norms.append(norm)
        counts.append(count)

    base = out_json[:-5] if out_json.endswith(".json") else out_json
    paths = {k: os.path.abspath(f"{base}.{k}.f32") for k in ("grads_step0", "params_final", "logits_mb0")}
    grads0.astype("<f4").tofile(paths["grads_step0"])
    lora.flat_params(p["init"]).astype("<f4").tofile(paths["params_final"])
    V = logits0.shape[-1]
    rows = logits0.reshape(-1, V).to(torch.float64)
    rows.numpy().astype("<f4").tofile(paths["logits_mb0"])
    mb0_targets = p["steps"][0]["micro_batches"][0]["targets"].reshape(-1)
    nll_list = [float(x) if t >= 0 else None for x, t in zip(nll0.reshape(-1).tolist(), mb0_targets.tolist())]
    result = {
        "dtype": dtype_name,
        "arch": model.hp.arch,
        "n_ctx": p["n_ctx"],
        "losses": losses,
        "grad_norms": norms,
        "n_targets": counts,
        "n_params": int(p["init"].size),
        "grads_step0": paths["grads_step0"],
        "params_final": paths["params_final"],
        "logits_mb0": paths["logits_mb0"],
        "logits_shape": list(logits0.shape),
        "logits_first_rows": min(LOGITS_FIRST_ROWS, rows.shape[0]),
        "logits_first": rows[:LOGITS_FIRST_ROWS].reshape(-1).tolist(),
        "nll_first_tokens": nll_list,
    }
    with open(out_json, "w") as f:
        json.dump(result, f, allow_nan=False)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch reference of vklora's LoRA training step (see README.md)")
    ap.add_argument("spec", help="SPEC.json")
    ap.add_argument("out", help="OUT.json (the .f32 arrays are written next to it)")
    ap.add_argument("--dtype", choices=sorted(DTYPES), help="overrides SPEC's dtype (default float64)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    try:
        try:
            with open(a.spec) as f:
                spec = json.load(f)
        except OSError as e:
            raise RefError(f"spec: cannot read {a.spec}: {e.strerror}")
        except ValueError as e:
            raise RefError(f"spec: {a.spec}: not valid JSON: {e}")
        run(spec, a.out, a.dtype)
    except RefError as e:
        print(f"llama_lora.py: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"llama_lora.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
