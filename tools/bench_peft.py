#!/usr/bin/env python3
"""PyTorch + PEFT LoRA training-step benchmark, the reference `tools/gpu-check.sh` sets next to `vklora bench --train`.

Builds a randomly initialised Hugging Face LlamaForCausalLM in the shape of a preset (Llama-3.2-1B by default:
the shape `vklora-mkmodel --preset llama-3.2-1b` writes), wraps it with PEFT's LoRA (rank r on all seven
projections, alpha = r, no dropout), and times whole training steps: forward with the loss, backward, gradient
clipping at norm 1 and AdamW (lr 2e-4, weight decay 0.01), as vklora's trainer does. A few warm-up steps, then
timed steps with torch.cuda.synchronize around each; tokens/s from the median step; peak memory from
torch.cuda.max_memory_allocated (weights, optimizer state and activations together).

    python3 tools/bench_peft.py                                  # CUDA, bf16, Llama-3.2-1B shape, 1 x 512 tokens
    python3 tools/bench_peft.py --ctx 1024 --batch 4 --json      # one JSON line
    python3 tools/bench_peft.py --device cpu --preset tiny       # a CPU smoke run (fp32)

Needs torch, transformers and peft; installs nothing. Without peft/transformers, `--impl fallback` (chosen
automatically on the CPU only) runs the same loop on a small plain-torch llama with hand-written LoRA layers: it
exists so this script can be tested where PEFT is not installed, and it is labelled "fallback (plain torch, not
PEFT)" in every output; its figures are not PEFT's.
"""
import argparse
import json
import math
import platform
import resource
import statistics
import sys
import time

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# The shapes of tools/mkmodel.c's presets that this script knows (dim, layers, heads, kv heads, ff, vocab, ...).
PRESETS = {
    "llama-3.2-1b": dict(dim=2048, layers=16, heads=32, kv_heads=8, ff=8192, vocab=128256, rope_theta=500000.0,
                         eps=1e-5, tied=True, max_pos=131072,
                         rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    # a few-megabyte model for smoke tests on the CPU
    "tiny": dict(dim=64, layers=2, heads=4, kv_heads=2, ff=160, vocab=320, rope_theta=10000.0, eps=1e-5,
                 tied=True, max_pos=2048, rope_scaling=None),
}


def fail(msg, code=2):
    print(f"bench_peft: {msg}", file=sys.stderr)
    sys.exit(code)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], help="default: bf16 on cuda, fp32 on cpu")
    p.add_argument("--preset", default="llama-3.2-1b", choices=sorted(PRESETS))
    for k in ("layers", "dim", "heads", "kv-heads", "ff", "vocab"):
        p.add_argument(f"--{k}", type=int, help=f"override the preset's {k} (as vklora-mkmodel's --{k})")
    p.add_argument("--ctx", type=int, default=512, help="tokens per sequence (default 512)")
    p.add_argument("--batch", type=int, default=1, help="sequences per step (default 1)")
    p.add_argument("--r", type=int, default=16, help="LoRA rank (default 16; alpha = r)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--gradient-checkpointing", action="store_true",
                   help="recompute each layer in the backward (vklora's use_gradient_checkpointing=true)")
    p.add_argument("--impl", choices=["auto", "peft", "fallback"], default="auto",
                   help="peft (transformers + peft), fallback (plain torch, not PEFT; tests only), auto: peft, or "
                        "fallback on the CPU when peft is missing")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--json", action="store_true", help="one JSON object on one line")
    a = p.parse_args(argv)
    for k in ("ctx", "batch", "r", "steps", "layers", "dim", "heads", "kv_heads", "ff", "vocab"):
        if getattr(a, k) is not None and getattr(a, k) < 1:
            fail(f"--{k.replace('_', '-')} must be at least 1")
    if a.warmup < 0:
        fail("--warmup must be at least 0")
    return a


def have_peft():
    """(ok, why): whether transformers and peft import."""
    try:
        import peft  # noqa: F401
        import transformers  # noqa: F401
    except Exception as e:  # ImportError, or a broken install
        return False, f"{type(e).__name__}: {e}"
    return True, ""


def on_device(torch, device, make):
    """make() with parameters created on device directly where torch can (>= 2.0), else made on the CPU and moved."""
    if hasattr(torch.device, "__enter__"):
        with torch.device(device):
            return make()
    return make().to(device)


def build_peft(torch, shape, a, dtype, device):
    import peft
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=shape["vocab"], hidden_size=shape["dim"], intermediate_size=shape["ff"],
                      num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                      num_key_value_heads=shape["kv_heads"], max_position_embeddings=shape["max_pos"],
                      rms_norm_eps=shape["eps"], rope_theta=shape["rope_theta"],
                      rope_scaling=shape["rope_scaling"], tie_word_embeddings=shape["tied"], use_cache=False)
    model = on_device(torch, device, lambda: LlamaForCausalLM(cfg)).to(dtype)
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lcfg = peft.LoraConfig(r=a.r, lora_alpha=a.r, lora_dropout=0.0, target_modules=TARGETS, bias="none",
                           task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lcfg)
    attn = getattr(model.config, "_attn_implementation", "?")
    info = {"impl": "peft", "peft": peft.__version__, "transformers": transformers.__version__, "attention": attn}

    def step_loss(x):
        return model(input_ids=x, labels=x).loss

    return model, step_loss, info


def build_fallback(torch, shape, a, dtype, device):
    """A plain-torch llama (RMSNorm, RoPE, grouped-query SDPA attention, SwiGLU, tied head) with LoRA on the seven
    projections: the same loop without PEFT, for smoke tests. Not a reference for PEFT's speed or memory."""
    import torch.utils.checkpoint
    nn, F = torch.nn, torch.nn.functional
    D, H, KV, FF, V = shape["dim"], shape["heads"], shape["kv_heads"], shape["ff"], shape["vocab"]
    hd = D // H

    class LoraLinear(nn.Module):
        def __init__(self, fin, fout):
            super().__init__()
            self.base = nn.Linear(fin, fout, bias=False)
            nn.init.normal_(self.base.weight, std=0.02)  # transformers' initializer_range
            self.base.weight.requires_grad_(False)
            self.lora_A = nn.Parameter(torch.empty(a.r, fin))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # PEFT's init of A; B starts at zero
            self.lora_B = nn.Parameter(torch.zeros(fout, a.r))
            self.scale = 1.0  # alpha / r with alpha = r

        def forward(self, x):
            return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(D), requires_grad=False)

        def forward(self, x):
            xf = x.float()
            return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + shape["eps"])).to(x.dtype) * self.w

    inv = 1.0 / (shape["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))

    def rope(x, T):
        ang = torch.outer(torch.arange(T, dtype=torch.float32), inv).to(x.device)
        cos, sin = torch.cat([ang.cos()] * 2, -1).to(x.dtype), torch.cat([ang.sin()] * 2, -1).to(x.dtype)
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + torch.cat([-x2, x1], -1) * sin

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = RMSNorm(), RMSNorm()
            self.q_proj, self.k_proj = LoraLinear(D, H * hd), LoraLinear(D, KV * hd)
            self.v_proj, self.o_proj = LoraLinear(D, KV * hd), LoraLinear(H * hd, D)
            self.gate_proj, self.up_proj, self.down_proj = LoraLinear(D, FF), LoraLinear(D, FF), LoraLinear(FF, D)

        def forward(self, x):
            B, T, _ = x.shape
            h = self.n1(x)
            q = rope(self.q_proj(h).view(B, T, H, hd).transpose(1, 2), T)
            k = rope(self.k_proj(h).view(B, T, KV, hd).transpose(1, 2), T)
            v = self.v_proj(h).view(B, T, KV, hd).transpose(1, 2)
            k, v = k.repeat_interleave(H // KV, 1), v.repeat_interleave(H // KV, 1)
            if hasattr(F, "scaled_dot_product_attention"):
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # torch < 2.0 (Debian 12's 1.13)
                s = (q @ k.transpose(-1, -2)).float() / math.sqrt(hd)
                s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=s.device).triu(1), float("-inf"))
                o = s.softmax(-1).to(v.dtype) @ v
            o = o.transpose(1, 2).reshape(B, T, H * hd)
            x = x + self.o_proj(o)
            h = self.n2(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, D)
            nn.init.normal_(self.emb.weight, std=0.02)
            self.emb.weight.requires_grad_(False)
            self.blocks = nn.ModuleList(Block() for _ in range(shape["layers"]))
            self.norm = RMSNorm()

        def forward(self, x):
            h = self.emb(x)
            for b in self.blocks:
                if a.gradient_checkpointing:
                    h = torch.utils.checkpoint.checkpoint(b, h, use_reentrant=False)
                else:
                    h = b(h)
            return self.norm(h) @ self.emb.weight.t()

    model = on_device(torch, device, Model).to(dtype)

    def step_loss(x):
        logits = model(x)
        return F.cross_entropy(logits[:, :-1].float().reshape(-1, V), x[:, 1:].reshape(-1))

    attn = "sdpa" if hasattr(F, "scaled_dot_product_attention") else "matmul-softmax"
    return model, step_loss, {"impl": "fallback (plain torch, not PEFT)", "attention": attn}


def main(argv=None):
    a = parse_args(argv if argv is not None else sys.argv[1:])
    try:
        import torch
    except Exception as e:
        fail(f"PyTorch is not installed for {sys.executable} ({e}); install it (e.g. Debian's python3-torch, or "
             "pip's torch with CUDA for a GPU)", 1)
    dev = a.device
    cuda = dev.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        fail(f"--device {dev}: torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False; "
             "a CPU-only torch build, or no NVIDIA driver)", 1)
    if not cuda and dev != "cpu":
        fail(f"--device: expected cuda, cuda:N or cpu, got {dev!r}")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[a.dtype or
                                                                                      ("bf16" if cuda else "fp32")]
    shape = dict(PRESETS[a.preset])
    for k in ("layers", "dim", "heads", "kv_heads", "ff", "vocab"):
        if getattr(a, k):
            shape[k] = getattr(a, k)
    if shape["dim"] % shape["heads"] or shape["heads"] % shape["kv_heads"] or (shape["dim"] // shape["heads"]) % 2:
        fail(f"shape: dim {shape['dim']} must split into {shape['heads']} heads of an even size, and the heads into "
             f"{shape['kv_heads']} kv heads")
    impl = a.impl
    if impl != "fallback":
        ok, why = have_peft()
        if not ok:
            if impl == "peft" or cuda:
                fail(f"peft and transformers are needed ({why}); install them (pip install peft) or, for a smoke "
                     "test on the CPU only, pass --impl fallback", 1)
            impl = "fallback"
            print("bench_peft: peft/transformers not importable: running the plain-torch fallback (NOT PEFT)",
                  file=sys.stderr)
        else:
            impl = "peft"
    torch.manual_seed(a.seed)
    if cuda:
        torch.cuda.set_device(torch.device(dev))
    build = build_peft if impl == "peft" else build_fallback
    model, step_loss, info = build(torch, shape, a, dtype, dev)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in params)
    n_all = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.01)
    gen = torch.Generator(device="cpu").manual_seed(a.seed)
    x = torch.randint(0, shape["vocab"], (a.batch, a.ctx), generator=gen).to(dev)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for i in range(a.warmup + a.steps):
        sync()
        t0 = time.perf_counter()
        loss = step_loss(x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        dt = time.perf_counter() - t0
        losses.append(float(loss.detach()))
        if i >= a.warmup:
            times.append(dt)
    if not all(math.isfinite(v) for v in losses):
        fail(f"a loss is not finite: {losses}", 1)
    med = statistics.median(times)
    tokens = a.batch * a.ctx
    if cuda:
        peak, peak_kind = torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
        dev_name = torch.cuda.get_device_name()
    else:
        # ru_maxrss is in KiB on Linux: the whole process (interpreter and torch included), an upper bound
        peak, peak_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host peak RSS (whole process)"
        dev_name = platform.processor() or platform.machine()
    out = {
        "bench": "peft_train", **info, "torch": torch.__version__, "device": dev_name, "dtype": str(dtype)[6:],
        "preset": a.preset, "layers": shape["layers"], "dim": shape["dim"], "vocab": shape["vocab"],
        "ctx": a.ctx, "batch": a.batch, "lora_r": a.r, "gradient_checkpointing": a.gradient_checkpointing,
        "params": n_all, "trainable_params": n_train, "adapter_dtype": str(params[0].dtype)[6:], "warmup": a.warmup, "steps": a.steps,
        "seconds_median": med, "seconds_mean": statistics.mean(times), "tokens_per_second": tokens / med,
        "peak_memory_bytes": peak, "peak_memory_kind": peak_kind, "loss_first": losses[0], "loss_last": losses[-1],
    }
    if a.json:
        print(json.dumps(out))
    else:
        print(f"train    {out['impl']} on {dev_name} ({out['dtype']}), {a.preset} shape, {n_all / 1e6:.1f} M params, "
              f"{n_train / 1e6:.2f} M trainable (r {a.r}, all seven projections)")
        print(f"shape    {a.batch} x {a.ctx} tokens, {a.warmup} warm-up + {a.steps} timed steps, median {med:.3f} s")
        print(f"speed    {out['tokens_per_second']:.1f} tokens/s")
        print(f"memory   peak {peak / 1048576:.1f} MiB ({peak_kind})")
        print(f"loss     {losses[0]:.4f} -> {losses[-1]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
