#!/usr/bin/python3
# Independent PyTorch (CPU) reference of vklora's LoRA training step on a llama GGUF model: forward from the
# GGUF weights, LoRA adapters, cross-entropy with gradient accumulation, global-norm clipping and AdamW.
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

# LoRA module ids as used in SPEC "slots": index -> (target name, GGUF tensor name inside blk.N).
MODULES = (("q", "attn_q"), ("k", "attn_k"), ("v", "attn_v"), ("o", "attn_output"),
           ("gate", "ffn_gate"), ("up", "ffn_up"), ("down", "ffn_down"))
MODULE_ID = {name: i for i, (name, _) in enumerate(MODULES)}
DTYPES = {"float64": torch.float64, "float32": torch.float32}
# Upper bound on the flat parameter vector read from "init": far beyond any test, small enough that a
# wrong file cannot make us allocate gigabytes.
MAX_FLAT = 1 << 28
LOGITS_FIRST_ROWS = 8


class RefError(Exception):
    """Bad input (spec, model, data); main prints it and exits with status 2."""


# ----------------------------------------------------------------------------------------------------------
# model


class Hparams:
    """Shapes and constants from the GGUF metadata. C: embedding, L: layers, H / KVH: query / key-value
    heads, D: head dimension, F: feed-forward width, V: vocabulary."""

    def __init__(self, g):
        md = g.metadata
        arch = md.get("general.architecture")
        if arch != "llama":
            raise RefError(f"{g.path}: general.architecture is {arch!r}, expected 'llama'")

        def need(key, default=None):
            v = md.get(key, default)
            if v is None:
                raise RefError(f"{g.path}: metadata '{key}' is missing")
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise RefError(f"{g.path}: metadata '{key}' is {v!r}, expected a number")
            return v

        self.C = int(need("llama.embedding_length"))
        self.L = int(need("llama.block_count"))
        self.H = int(need("llama.attention.head_count"))
        self.KVH = int(need("llama.attention.head_count_kv", self.H))
        self.F = int(need("llama.feed_forward_length"))
        self.eps = float(need("llama.attention.layer_norm_rms_epsilon"))
        self.rope_base = float(need("llama.rope.freq_base", 10000.0))
        if self.H <= 0 or self.KVH <= 0 or self.C % self.H or self.H % self.KVH:
            raise RefError(f"{g.path}: head counts H={self.H}, KVH={self.KVH} do not divide C={self.C}")
        self.D = self.C // self.H
        if self.D % 2:
            raise RefError(f"{g.path}: head dimension {self.D} is odd; RoPE rotates pairs")
        n_rot = int(need("llama.rope.dimension_count", self.D))
        if n_rot != self.D:
            raise RefError(f"{g.path}: llama.rope.dimension_count is {n_rot}, but this reference rotates whole "
                           f"heads (D={self.D}) only")
        self.V = g.tensors["token_embd.weight"].ne[1] if "token_embd.weight" in g.tensors else 0


class Llama:
    """The frozen base model: every weight as a torch tensor of `dtype` in torch (row-major) layout, so a
    linear weight with ggml ne=[in, out] is a matrix [out, in] and y = x @ W.T."""

    def __init__(self, path, dtype=torch.float64):
        self.dtype = dtype
        try:
            g = gguf_np.GGUFFile(path)
        except (OSError, gguf_np.GGUFError) as e:
            raise RefError(f"model: {e}")
        with g:
            self.hp = hp = Hparams(g)

            def w(name, shape):
                if name not in g.tensors:
                    raise RefError(f"{path}: tensor '{name}' is missing")
                try:
                    a = g.tensor(name)
                except gguf_np.GGUFError as e:
                    raise RefError(str(e))
                if a.shape != shape:
                    raise RefError(f"{path}: tensor '{name}' has torch shape {a.shape}, expected {shape}")
                return torch.from_numpy(a).to(dtype)

            C, F, V, D = hp.C, hp.F, hp.V, hp.D
            self.token_embd = w("token_embd.weight", (V, C))      # (V, C)
            self.output_norm = w("output_norm.weight", (C,))      # (C,)
            # Tied embeddings: models without output.weight reuse token_embd as the classifier.
            self.output = w("output.weight", (V, C)) if "output.weight" in g.tensors else self.token_embd
            self.layers = []
            for l in range(hp.L):
                p = f"blk.{l}."
                self.layers.append({
                    "attn_norm": w(p + "attn_norm.weight", (C,)),            # (C,)
                    "attn_q": w(p + "attn_q.weight", (hp.H * D, C)),         # (H*D, C)
                    "attn_k": w(p + "attn_k.weight", (hp.KVH * D, C)),       # (KVH*D, C)
                    "attn_v": w(p + "attn_v.weight", (hp.KVH * D, C)),       # (KVH*D, C)
                    "attn_output": w(p + "attn_output.weight", (C, hp.H * D)),  # (C, H*D)
                    "ffn_norm": w(p + "ffn_norm.weight", (C,)),              # (C,)
                    "ffn_gate": w(p + "ffn_gate.weight", (F, C)),            # (F, C)
                    "ffn_up": w(p + "ffn_up.weight", (F, C)),                # (F, C)
                    "ffn_down": w(p + "ffn_down.weight", (C, F)),            # (C, F)
                })

    def module_shape(self, module):
        """(in, out) of LoRA module id `module`, the same for every layer."""
        W = self.layers[0][MODULES[module][1]]
        return W.shape[1], W.shape[0]

    def forward(self, tokens, lora=None):
        """tokens: LongTensor (B, T), each row starting at position 0. Returns logits (B, T, V)."""
        hp = self.hp
        B, T = tokens.shape
        h = self.token_embd[tokens]                                   # (B, T, C)
        cos, sin = rope_tables(T, hp.D, hp.rope_base, self.dtype)
        for l, lw in enumerate(self.layers):
            def lin(x, name):
                y = x @ lw[name].T
                return y if lora is None else lora.add(l, name, x, y)

            xn = rmsnorm(h, lw["attn_norm"], hp.eps)
            q = lin(xn, "attn_q").view(B, T, hp.H, hp.D)
            k = lin(xn, "attn_k").view(B, T, hp.KVH, hp.D)
            v = lin(xn, "attn_v").view(B, T, hp.KVH, hp.D)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            a = attention(q, k, v)                                    # (B, T, H*D)
            h = h + lin(a, "attn_output")
            xn = rmsnorm(h, lw["ffn_norm"], hp.eps)
            g = lin(xn, "ffn_gate")
            u = lin(xn, "ffn_up")
            h = h + lin(torch.nn.functional.silu(g) * u, "ffn_down")
        return rmsnorm(h, self.output_norm, hp.eps) @ self.output.T


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_tables(T, D, base, dtype):
    """cos/sin (T, D/2) of angle pos * base^(-2i/D), computed in float64 then cast."""
    i = torch.arange(D // 2, dtype=torch.float64)
    theta = base ** (-2.0 * i / D)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * theta[None, :]
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def rope(x, cos, sin):
    """x (B, T, heads, D): GGUF "normal" layout, pair (2i, 2i+1) of every head rotates by angle i."""
    xe, xo = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    return torch.stack((xe * c - xo * s, xe * s + xo * c), dim=-1).flatten(-2)


def attention(q, k, v):
    """Causal grouped-query attention: q (B, T, H, D), k/v (B, T, KVH, D); head h reads kv head h // (H/KVH)."""
    B, T, H, D = q.shape
    group = H // k.shape[2]
    k = k.repeat_interleave(group, dim=2)
    v = v.repeat_interleave(group, dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))                 # (B, H, T, D)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
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
            self.by_key[(s["layer"], MODULES[s["module"]][1])] = i

    def params(self):
        return [p for pair in zip(self.A, self.B) for p in pair]

    def add(self, layer, tensor_name, x, y):
        i = self.by_key.get((layer, tensor_name))
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
    """Validates SPEC; returns (model, dict of parsed fields). model_loader(path) -> Llama."""
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
    model, p = parse_spec(spec, model_loader or (lambda path: Llama(path, dtype)))
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
