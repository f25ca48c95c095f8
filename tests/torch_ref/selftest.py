#!/usr/bin/python3
# Checks of the PyTorch reference itself, so that the C suite can trust it: forward against the published NLL
# of stories260K, LoRA gradients against finite differences, accumulation, clipping + AdamW against torch.optim;
# then, on tiny random GGUFs of every architecture (tiny_gguf.py), the forward against a second loop-by-loop
# implementation (naive_np.py), every feature against a closed form, and gradients of every module kind.
#
#   /usr/bin/python3 tests/torch_ref/selftest.py [--data DIR]     exit status 0 when every check passes
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import gguf_np  # noqa: E402
import llama_lora as ref  # noqa: E402
import naive_np  # noqa: E402
import tiny_gguf  # noqa: E402

failures = []


def check(name, ok, detail):
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if not ok:
        failures.append(name)


def all_slots(model, r, modules=None):
    """Slots for every layer x module, packed A then B, in the flat layout the SPEC describes."""
    slots, off = [], 0
    modules = sorted(model.modules) if modules is None else modules
    for l in range(model.hp.L):
        for m in modules:
            fin, fout = model.module_shape(m)
            slots.append({"layer": l, "module": m, "in": fin, "out": fout, "a_off": off, "b_off": off + r * fin})
            off += r * fin + fout * r
    return slots, off


def random_flat(slots, n, r, rng, b_zero, b_std=0.05):
    """A ~ U(-1/sqrt(in), 1/sqrt(in)) like a kaiming init; B zero or N(0, b_std^2)."""
    flat = np.zeros(n, np.float32)
    for s in slots:
        bound = 1 / math.sqrt(s["in"])
        flat[s["a_off"]:s["a_off"] + r * s["in"]] = rng.uniform(-bound, bound, r * s["in"])
        if not b_zero:
            flat[s["b_off"]:s["b_off"] + s["out"] * r] = rng.normal(0, b_std, s["out"] * r)
    return flat


def batch(tokens, B, T, start):
    """B rows of T next-token pairs cut from `tokens`, a few targets set to -1 (ignored)."""
    tok = torch.tensor([tokens[start + b * T: start + b * T + T] for b in range(B)])
    tgt = torch.tensor([tokens[start + b * T + 1: start + b * T + T + 1] for b in range(B)])
    tgt[0, 0] = -1
    tgt[-1, T // 2] = -1
    return {"tokens": tok, "targets": tgt}


def step_loss(model, lora, mbs):
    with torch.no_grad():
        count = sum(int((mb["targets"] >= 0).sum()) for mb in mbs)
        return sum(float(ref.token_nll(model.forward(mb["tokens"], lora), mb["targets"]).sum()) for mb in mbs) / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("VKL_TEST_DATA", "/work/shared/data"))
    a = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.time()
    model_path = os.path.join(a.data, "models", "stories260K.gguf")
    expected = json.load(open(os.path.join(a.data, "models", "stories260K.expected.json")))
    entry = next(e for e in expected["nll"] if e["window"] == 256)
    tokens = entry["tokens"]
    m64 = ref.Model(model_path, torch.float64)
    hp = m64.hp
    rng = np.random.default_rng(1234)
    r = 4

    # (1) forward: the published mean NLL over the 255 scored tokens, with every adapter present but B = 0.
    slots, n = all_slots(m64, r)
    flat0 = random_flat(slots, n, r, rng, b_zero=True)
    lora0 = ref.Lora(slots, r, 8.0, False, flat0, torch.float64)
    seq = {"tokens": torch.tensor([tokens[:-1]]), "targets": torch.tensor([tokens[1:]])}
    nll = step_loss(m64, lora0, [seq])
    rel = abs(nll / entry["mean_nll_nats"] - 1)
    check("forward float64 vs expected.json", rel < 1e-6,
          f"mean NLL {nll:.15f}, expected {entry['mean_nll_nats']:.15f}, rel err {rel:.2e}")
    m32 = ref.Model(model_path, torch.float32)
    nll32 = step_loss(m32, ref.Lora(slots, r, 8.0, False, flat0, torch.float32), [seq])
    rel32 = abs(nll32 / entry["mean_nll_nats"] - 1)
    check("forward float32 vs expected.json", rel32 < 1e-5, f"mean NLL {nll32:.9f}, rel err {rel32:.2e}")

    # With B = 0 the A gradients are exactly 0 and the B gradients are not (dL/dB = s * dL/dy^T (x A^T)).
    mbs = [batch(tokens, 2, 16, 0), batch(tokens, 1, 24, 40)]
    ref.accumulate_grads(m64, lora0, mbs)
    ga = max(float(p.grad.abs().max()) for p in lora0.A)
    gb = min(float(p.grad.abs().max()) for p in lora0.B)
    check("B=0: dA == 0, dB != 0", ga == 0 and gb > 0, f"max|dA| {ga:.1e}, min over slots of max|dB| {gb:.3e}")

    # (3) a nonzero B changes the loss; rsLoRA scales by alpha/sqrt(r) instead of alpha/r.
    flat = random_flat(slots, n, r, rng, b_zero=False)
    lora = ref.Lora(slots, r, 8.0, False, flat, torch.float64)
    base_loss = step_loss(m64, lora0, mbs)
    lora_loss = step_loss(m64, lora, mbs)
    check("nonzero B changes the loss", abs(lora_loss - base_loss) > 1e-3,
          f"B=0: {base_loss:.6f}, B random: {lora_loss:.6f}")
    rs = ref.Lora(slots, r, 8.0, True, flat, torch.float64)          # scale 8/sqrt(4) = 4
    plain16 = ref.Lora(slots, r, 16.0, False, flat, torch.float64)   # scale 16/4 = 4
    rs_loss, p16_loss = step_loss(m64, rs, mbs), step_loss(m64, plain16, mbs)
    check("rsLoRA scale alpha/sqrt(r)", rs.scale == 4.0 and abs(rs_loss - p16_loss) < 1e-13,
          f"rslora(alpha 8) {rs_loss:.12f} vs lora(alpha 16) {p16_loss:.12f}")

    # (2) autograd vs central differences, in float64, on random coordinates of A and B across modules/layers.
    loss, count, _ = ref.accumulate_grads(m64, lora, mbs)
    check("accumulated loss == direct loss", abs(loss - lora_loss) < 1e-12, f"{loss:.15f} vs {lora_loss:.15f}")
    params = lora.params()
    worst = 0.0
    h = 1e-5
    picks = []
    for j, s in enumerate(slots):
        if j % 5 == 0:  # 7 slots spread over all modules and layers
            picks.append((2 * j, rng.integers(params[2 * j].numel())))
            picks.append((2 * j + 1, rng.integers(params[2 * j + 1].numel())))
    for pi, ci in picks:
        p = params[pi].data.view(-1)
        old = float(p[ci])
        p[ci] = old + h
        lp = step_loss(m64, lora, mbs)
        p[ci] = old - h
        lm = step_loss(m64, lora, mbs)
        p[ci] = old
        fd = (lp - lm) / (2 * h)
        ad = float(params[pi].grad.view(-1)[ci])
        err = abs(fd - ad) / max(abs(fd), abs(ad), 1e-6)
        worst = max(worst, err)
    check(f"grads vs central differences ({len(picks)} coords, h={h})", worst < 1e-6, f"worst rel err {worst:.2e}")

    # Gradient accumulation: one (2, 16) micro-batch equals two (1, 16) ones (same global normalisation).
    whole = [batch(tokens, 2, 16, 100)]
    halves = [{k: v[i:i + 1] for k, v in whole[0].items()} for i in range(2)]
    l1, _, _ = ref.accumulate_grads(m64, lora, whole)
    g1 = lora.flat_grads()
    l2, _, _ = ref.accumulate_grads(m64, lora, halves)
    g2 = lora.flat_grads()
    gd = float(np.abs(g1 - g2).max() / np.abs(g1).max())
    check("accumulation: 1x(2,T) == 2x(1,T)", abs(l1 - l2) < 1e-13 and gd < 1e-12,
          f"loss diff {abs(l1 - l2):.1e}, grad rel diff {gd:.1e}")

    # Clipping + AdamW against torch.nn.utils.clip_grad_norm_ + torch.optim.AdamW over 3 steps with a
    # changing learning rate, once with the clip active and once without.
    for max_norm in (0.05, 0.0):
        la = ref.Lora(slots, r, 8.0, False, flat, torch.float64)
        lb = ref.Lora(slots, r, 8.0, False, flat, torch.float64)
        ours = ref.AdamW(la.params(), 0.9, 0.999, 1e-8, 0.01)
        theirs = torch.optim.AdamW(lb.params(), lr=1.0, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
        norms = []
        for k, lr in enumerate((1e-2, 5e-3, 2e-3)):
            step = [batch(tokens, 2, 12, 20 * k)]
            ref.accumulate_grads(m64, la, step)
            ref.accumulate_grads(m64, lb, step)
            na = ref.clip_grads(la.params(), max_norm)
            if max_norm > 0:
                nb = float(torch.nn.utils.clip_grad_norm_(lb.params(), max_norm))
            else:
                nb = float(torch.sqrt(sum((p.grad ** 2).sum() for p in lb.params())))
            norms.append(na)
            ours.step(lr)
            for g in theirs.param_groups:
                g["lr"] = lr
            theirs.step()
            if abs(na - nb) > 1e-12 * nb:
                break
        pa, pb = la.flat_params(flat), lb.flat_params(flat)
        dp = float(np.abs(pa - pb).max())
        moved = float(np.abs(pa - flat).max())
        check(f"clip({max_norm}) + AdamW vs torch.optim.AdamW, 3 steps", dp < 1e-12 and moved > 1e-3,
              f"pre-clip norms {[round(x, 4) for x in norms]}, max |param diff| {dp:.1e}, max move {moved:.3f}")

    # The command line: SPEC -> OUT.json + .f32 files, same numbers as the in-process run; bad input exits 2.
    with tempfile.TemporaryDirectory() as tmp:
        cli_slots, cn = all_slots(m64, r, (0, 3, 6))
        cli_flat = random_flat(cli_slots, cn, r, rng, b_zero=False)
        cli_flat.tofile(os.path.join(tmp, "init.f32"))
        mb = batch(tokens, 2, 10, 7)
        spec = {"model": model_path, "r": r, "alpha": 16.0, "use_rslora": False, "targets": ["q", "o", "down"],
                "slots": cli_slots, "init": os.path.join(tmp, "init.f32"),
                "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
                "max_grad_norm": 1.0,
                "steps": [{"lr": 1e-3, "micro_batches": [{k: v.tolist() for k, v in mb.items()}]},
                          {"lr": 5e-4, "micro_batches": [{k: v.tolist() for k, v in mb.items()}]}]}
        spec_path, out_path = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
        json.dump(spec, open(spec_path, "w"))
        cmd = [sys.executable, os.path.join(HERE, "llama_lora.py"), spec_path, out_path, "--threads", "2"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        ok = p.returncode == 0
        detail = p.stderr.strip()[-200:]
        if ok:
            out = json.load(open(out_path))
            g0 = np.fromfile(out["grads_step0"], "<f4")
            pf = np.fromfile(out["params_final"], "<f4")
            lg = np.fromfile(out["logits_mb0"], "<f4")
            lcli = ref.Lora(cli_slots, r, 16.0, False, cli_flat, torch.float64)
            l0, _, _ = ref.accumulate_grads(m64, lcli, [mb])
            gref = lcli.flat_grads()
            ok = (g0.size == cn and pf.size == cn and lg.size == 2 * 10 * hp.V and len(out["losses"]) == 2
                  and abs(out["losses"][0] - l0) < 1e-12 and np.abs(g0 - gref).max() < 1e-6 * np.abs(gref).max()
                  and out["nll_first_tokens"][0] is None and len(out["logits_first"]) == 8 * hp.V
                  and np.array_equal(np.float32(out["logits_first"]), lg[:8 * hp.V])
                  and np.abs(pf - cli_flat).max() > 0)
            detail = (f"losses {[round(x, 6) for x in out['losses']]}, grad norms "
                      f"{[round(x, 4) for x in out['grad_norms']]}")
        check("CLI run", ok, detail)

        bad = dict(spec, slots=[dict(cli_slots[0], out=cli_slots[0]["out"] + 1)] + cli_slots[1:])
        json.dump(bad, open(spec_path, "w"))
        p = subprocess.run(cmd, capture_output=True, text=True)
        check("CLI rejects a wrong slot shape", p.returncode == 2 and "$.slots[0]" in p.stderr,
              f"rc {p.returncode}: {p.stderr.strip()}")

        raw = open(model_path, "rb").read()
        for data, what in ((raw[:len(raw) // 2], "truncated"), (raw[:0x20], "cut in the metadata"),
                           (b"GGUG" + raw[4:], "with a bad magic")):
            trunc = os.path.join(tmp, "trunc.gguf")
            open(trunc, "wb").write(data)
            try:
                gguf_np.GGUFFile(trunc).close()
                check(f"GGUF {what} is rejected", False, "no error")
            except gguf_np.GGUFError as e:
                check(f"GGUF {what} is rejected", "byte offset" in str(e) or "past the end" in str(e), str(e))

    with tempfile.TemporaryDirectory() as tmp:
        tiny_checks(tmp)
        tiny_feature_checks(tmp)
    print(f"{len(failures)} failed, {time.time() - t0:.1f} s")
    return 1 if failures else 0


# ----------------------------------------------------------------------------------------------------------
# tiny random models of every architecture


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def naive_lora(slots, flat, r, scale):
    """The adapters as naive_np takes them: {(layer, GGUF tensor name): (A, B)} in float64."""
    d = {}
    for s in slots:
        A = flat[s["a_off"]:s["a_off"] + r * s["in"]].reshape(r, s["in"]).astype(np.float64)
        B = flat[s["b_off"]:s["b_off"] + s["out"] * r].reshape(s["out"], r).astype(np.float64)
        d[(s["layer"], ref.MODULES[s["module"]][1])] = (A, B)
    return scale, d


def naive_logits(path, tokens, lora=None, n_ctx=None):
    return np.stack([naive_np.logits(path, row, lora, n_ctx) for row in tokens.tolist()])


def tiny_batch(rng, V, B, T, holes=2):
    tok = torch.tensor(rng.integers(0, V, (B, T)))
    tgt = torch.tensor(rng.integers(0, V, (B, T)))
    for _ in range(holes):
        tgt[rng.integers(B), rng.integers(T)] = -1
    return {"tokens": tok, "targets": tgt}


def fd_check(model, lora, slots, mbs, rng, h=1e-5):
    """Autograd vs central differences on one A and one B coordinate of one slot of every module kind (random
    layer); coordinates are drawn among those whose gradient is not tiny. Returns (worst rel err, n coords)."""
    ref.accumulate_grads(model, lora, mbs)
    params = lora.params()
    worst, n = 0.0, 0
    for m in sorted(model.modules):
        cand = [j for j, s in enumerate(slots) if s["module"] == m]
        j = cand[rng.integers(len(cand))]
        for pi in (2 * j, 2 * j + 1):
            g = params[pi].grad.view(-1)
            big = torch.nonzero(g.abs() > 1e-2 * float(g.abs().max())).view(-1)
            ci = int(big[rng.integers(len(big))])
            p = params[pi].data.view(-1)
            old = float(p[ci])
            p[ci] = old + h
            lp = step_loss(model, lora, mbs)
            p[ci] = old - h
            lm = step_loss(model, lora, mbs)
            p[ci] = old
            fd = (lp - lm) / (2 * h)
            ad = float(g[ci])
            worst = max(worst, abs(fd - ad) / max(abs(fd), abs(ad), 1e-6))
            n += 1
    return worst, n


# Deliberate errors in the reference that the comparison with naive_np must notice (so it can fail).
MUTATIONS = {
    "llama": ("GGUF pairs rotated as NEOX", lambda m: setattr(m.hp, "rope_mode", "neox")),
    "llama_yarn": ("YaRN ramp dropped", lambda m: setattr(m.hp.rope_global, "yarn", None)),
    "qwen2": ("linear factor ignored", lambda m: setattr(m.hp.rope_global, "freq_scale", 1.0)),
    "qwen3": ("q/k norm skipped", lambda m: setattr(m.hp, "qk_norm", False)),
    "gemma2": ("window of layer 0 dropped", lambda m: m.hp.window.__setitem__(0, None)),
    "gemma3": ("local layers on the global base", lambda m: setattr(m.hp.rope_local, "base", 1000.0)),
    "phi3": ("attention factor dropped", lambda m: setattr(m.hp.rope_global, "mscale", 1.0)),
    "mistral3": ("temperature dropped", lambda m: setattr(m.hp, "temp_scale", None)),
}


def tiny_checks(tmp):
    r, alpha = 3, 6.0
    for k, name in enumerate(tiny_gguf.TINY):
        path = os.path.join(tmp, name + ".gguf")
        tiny_gguf.make_tiny(path, name, seed=100 + k)
        rng = np.random.default_rng(200 + k)
        m = ref.Model(path, torch.float64)
        hp = m.hp
        slots, n = all_slots(m, r)
        flat = random_flat(slots, n, r, rng, b_zero=False, b_std=0.3)
        lora = ref.Lora(slots, r, alpha, False, flat, torch.float64)
        mods = "/".join(ref.MODULES[i][0] for i in sorted(m.modules))

        # Forward with an adapter on every module of every layer vs the loop-by-loop numpy forward.
        tok = torch.tensor(rng.integers(0, hp.V, (2, 12)))
        with torch.no_grad():
            y = m.forward(tok, lora).numpy()
        z = naive_logits(path, tok, naive_lora(slots, flat, r, alpha / r))
        e = rel(y, z)
        check(f"{name}: forward with LoRA on {mods} vs naive_np", e < 1e-10, f"rel err {e:.1e}")

        # The comparison notices a deliberate error.
        what, mutate = MUTATIONS[name]
        mm = ref.Model(path, torch.float64)
        mutate(mm)
        with torch.no_grad():
            ym = mm.forward(tok, lora).numpy()
        em = rel(ym, z)
        check(f"{name}: naive_np notices '{what}'", em > 1e-3, f"rel diff {em:.1e}")

        # float32 run of the same model.
        m32 = ref.Model(path, torch.float32)
        with torch.no_grad():
            y32 = m32.forward(tok, ref.Lora(slots, r, alpha, False, flat, torch.float32)).double().numpy()
        e32 = rel(y32, y)
        check(f"{name}: float32 forward vs float64", e32 < 1e-5, f"rel err {e32:.1e}")

        # Gradients of every module kind, two micro-batches of different shapes with ignored targets.
        mbs = [tiny_batch(rng, hp.V, 2, 12), tiny_batch(rng, hp.V, 1, 9, holes=1)]
        worst, nc = fd_check(m, lora, slots, mbs, rng)
        check(f"{name}: grads vs central differences ({nc} coords over {mods})", worst < 1e-6,
              f"worst rel err {worst:.1e}")

        if name == "phi3":
            # longrope: short factors while n_ctx <= original_context_length (8), long ones beyond (the
            # default n_ctx is the row length, 12, so the checks above ran with the long factors).
            rg = hp.rope_global
            pick_ok = rg.freq_factors(8) is rg.factors[2] and rg.freq_factors(9) is rg.factors[1]
            nl = naive_lora(slots, flat, r, alpha / r)
            errs, ys = [], []
            for n_ctx in (8, 9):
                m.n_ctx = n_ctx
                with torch.no_grad():
                    ys.append(m.forward(tok, lora).numpy())
                errs.append(rel(ys[-1], naive_logits(path, tok, nl, n_ctx=n_ctx)))
            m.n_ctx = None
            check("phi3: n_ctx 8 -> rope_factors_short, 9 -> rope_factors_long (each vs naive_np)",
                  pick_ok and max(errs) < 1e-10 and rel(ys[0], ys[1]) > 1e-3 and rel(ys[1], y) == 0,
                  f"rel errs {errs[0]:.1e} / {errs[1]:.1e}, short vs long logits differ by {rel(ys[0], ys[1]):.1e}")


def tiny_feature_checks(tmp):
    """Each feature against a closed form computed here by hand."""
    rng = np.random.default_rng(7)
    dt = torch.float64

    # Sliding window + causal mask: with v = identity the attention output is the weight matrix.
    T, w, cap = 7, 3, 2.0
    q, k = torch.randn(1, T, 1, T, dtype=dt) * 2, torch.randn(1, T, 1, T, dtype=dt) * 2
    v = torch.eye(T, dtype=dt)[None, :, None, :]
    for window, softcap in ((w, None), (w, cap), (None, None)):
        P = ref.attention(q, k, v, 0.5, window, softcap)[0]
        want = np.zeros((T, T))
        for p in range(T):
            js = [j for j in range(T) if j <= p and (window is None or p - j < window)]
            s = np.array([0.5 * float(q[0, p, 0] @ k[0, j, 0]) for j in js])
            if softcap:
                s = softcap * np.tanh(s / softcap)
            e = np.exp(s - s.max())
            want[p, js] = e / e.sum()
        zero_ok = bool(((P.numpy() == 0) == (want == 0)).all())
        check(f"attention window={window} softcap={softcap} vs explicit softmax", zero_ok and rel(P, want) < 1e-13,
              f"masked entries exactly 0: {zero_ok}, rel err {rel(P, want):.1e}")

    # RoPE layouts on a partial rotary head (n_rot 6 of D 8) against explicit pair rotations.
    x = torch.randn(1, 3, 2, 8, dtype=dt)
    cos, sin = ref.Rope(6, 50.0).tables(3, 3, dt)
    for mode, pairs in (("normal", [(0, 1), (2, 3), (4, 5)]), ("neox", [(0, 3), (1, 4), (2, 5)])):
        y = ref.rope(x, cos, sin, mode)
        want = x.clone()
        for p in range(3):
            for i, (a, b) in enumerate(pairs):
                th = p * 50.0 ** (-2 * i / 6)
                want[0, p, :, a] = x[0, p, :, a] * math.cos(th) - x[0, p, :, b] * math.sin(th)
                want[0, p, :, b] = x[0, p, :, a] * math.sin(th) + x[0, p, :, b] * math.cos(th)
        check(f"rope {mode}, n_rot 6 < D 8, vs explicit rotation", rel(y, want) < 1e-14 and
              bool((y[..., 6:] == x[..., 6:]).all()), f"rel err {rel(y, want):.1e}, dims 6..7 unchanged")

    def hp_of(name, **kw):
        path = os.path.join(tmp, name + ".gguf")
        if kw or not os.path.exists(path):
            tiny_gguf.make_tiny(path, name, **kw)
        return ref.Model(path).hp

    # rope_freqs: theta = pos * base^(-2i/n_rot) / rope_freqs[i].
    path = os.path.join(tmp, "llama.gguf")
    hp = ref.Model(path).hp
    with gguf_np.GGUFFile(path) as g:
        rf = g.tensor("rope_freqs.weight").astype(np.float64)
    th = hp.rope_global.angles(5, 5)
    want = np.arange(5)[:, None] * 500.0 ** (-2 * np.arange(4) / 8)[None, :] / rf[None, :]
    check("llama rope_freqs: theta = pos base^(-2i/n_rot) / rope_freqs[i]", rel(th, want) < 1e-15, f"rel err "
          f"{rel(th, want):.1e}; head size {hp.D} from key_length (C/H = {hp.C // hp.H}), tied output")

    # YaRN (llama_yarn: n_rot 6, base 100, orig 64, beta 16/2, factor 4): by hand, corr(16) = 6 ln(64/(32 pi)) /
    # (2 ln 100) = -0.29 -> low 0, corr(2) = 6 ln(64/(4 pi)) / (2 ln 100) = 1.06 -> high 2; ramp [1, 0.5, 0];
    # attention factor 1 + 0.1 ln 4 on cos/sin.
    hp = hp_of("llama_yarn")
    rg = hp.rope_global
    lo, hi = rg.corr_dims()
    th = rg.angles(4, 4)
    base_th = np.arange(4)[:, None] * 100.0 ** (-2 * np.arange(3) / 6)[None, :]
    want = base_th * np.array([1.0, 0.5 * 0.25 + 0.5, 0.25])[None, :]
    ok = (lo, hi) == (0, 2) and rel(th, want) < 1e-15 and abs(rg.mscale - (1 + 0.1 * math.log(4))) < 1e-15
    check("YaRN corr dims, ramp and attention factor by hand", ok,
          f"low/high {lo}/{hi}, theta rel err {rel(th, want):.1e}, mscale {rg.mscale:.6f}")

    # linear (qwen2 factor 2): theta / 2; Phi-3 attention factor from rope.scaling.attn_factor.
    hp = hp_of("qwen2")
    th = hp.rope_global.angles(4, 4)
    want = np.arange(4)[:, None] * 1000.0 ** (-2 * np.arange(4) / 8)[None, :] / 2
    check("linear rope scaling: theta / factor", rel(th, want) < 1e-15, f"rel err {rel(th, want):.1e}")
    hp = hp_of("phi3")
    check("phi3: cos/sin times rope.scaling.attn_factor, NEOX, n_rot 4 of D 6",
          abs(hp.rope_global.mscale - np.float32(1.19)) == 0 and hp.rope_mode == "neox" and hp.n_rot == 4
          and hp.window == [None, None], f"mscale {hp.rope_global.mscale}, sliding_window key ignored")

    # mistral3: YaRN factor 16 with yarn_log_multiplier 1 -> attention factor 1; temperature 1 + 0.5 ln(1 +
    # floor(p / 4)).
    hp = hp_of("mistral3")
    tt = hp.temperature(12)
    want = np.array([1.0] * 4 + [1 + 0.5 * math.log(2)] * 4 + [1 + 0.5 * math.log(3)] * 4)
    check("mistral3: temperature 1 + s ln(1 + floor(pos / n_orig)), attention factor 1",
          rel(tt, want) < 1e-15 and hp.rope_global.mscale == 1.0 and hp.rope_mode == "normal",
          f"{[round(x, 4) for x in tt]}")

    # Gemma: windows per layer, local/global rope, embedding scale.
    hp = hp_of("gemma2")
    check("gemma2: window 3 on even layers, one rope for both kinds, softcaps 8/6",
          hp.window == [3, None, 3] and hp.rope[0].base == hp.rope[1].base == 10000.0
          and (hp.attn_softcap, hp.final_softcap) == (8.0, 6.0) and hp.embd_scale == math.sqrt(24),
          f"windows {hp.window}")
    hp = hp_of("gemma3")
    lr_, gr_ = hp.rope_local, hp.rope_global
    check("gemma3: window 4 unless (l+1) % 6 == 0; local base 10000 unscaled, global base 1000 / 8",
          hp.window == [4, 4, 4, 4, 4, None, 4] and (lr_.base, lr_.freq_scale) == (10000.0, 1.0)
          and (gr_.base, gr_.freq_scale) == (1000.0, 0.125) and hp.rope[5] is gr_ and hp.rope[4] is lr_,
          f"windows {hp.window}")

    # Hyper-parameters only (files without tensors).
    def meta(arch, L, **extra):
        p = os.path.join(tmp, "meta.gguf")
        tiny_gguf.make_meta_only(p, arch, L, C=16, H=4, extra=dict({"attention.key_length": 8,
                                                                      "attention.value_length": 8}, **extra))
        with gguf_np.GGUFFile(p) as g:
            return ref.Hparams(g)
    s46, s45 = meta("gemma2", 46).attn_scale, meta("gemma2", 45).attn_scale
    s62, s61 = meta("gemma3", 62).attn_scale, meta("gemma3", 61).attn_scale
    check("gemma 27B sizes (gemma2 46 / gemma3 62 layers): query scale 1/sqrt(C/H), else 1/sqrt(D)",
          s46 == s62 == 0.5 and s45 == s61 == 1 / math.sqrt(8), f"{s46} {s45:.4f} {s62} {s61:.4f}")
    w1 = meta("gemma3", 7).window
    w2 = meta("gemma2", 5, **{"attention.sliding_window_pattern": 3}).window
    w3 = meta("gemma3", 4, **{"attention.sliding_window": 5,
                              "attention.sliding_window_pattern": [True, False, False, True]}).window
    w4 = meta("gemma2", 3).window
    check("sliding_window_pattern: none without the key (gemma3), integer n (l % n < n-1), array, gemma2 default 4096",
          w1 == [None] * 7 and w2 == [4096, 4096, None, 4096, 4096] and w3 == [5, None, None, 5]
          and w4 == [4096, None, 4096], f"{w2} {w3}")

    # Errors: modules the architecture lacks, tensors it does not use, unsupported scaling.
    def spec_err(path, targets):
        m = ref.Model(path)
        spec = {"model": path, "r": 2, "alpha": 4.0, "use_rslora": False, "targets": targets, "slots": []}
        try:
            ref.parse_spec(spec, lambda p: m)
            return "no error"
        except ref.RefError as e:
            return str(e)
    e1 = spec_err(os.path.join(tmp, "phi3.gguf"), ["qkv", "q"])
    e2 = spec_err(os.path.join(tmp, "llama.gguf"), ["gate_up"])
    check("a module the architecture lacks is a spec error", "$.targets[1]" in e1 and "no module 'q'" in e1
          and "no module 'gate_up'" in e2, f"{e1} / {e2}")
    errs = []
    for name, kw in (("gemma2", {"tied": False}), ("gemma3", {"meta": {"rope.scaling.type": "yarn"}}),
                     ("qwen3", {"arch": "qwen9"}), ("qwen2", {"rope_freqs": True})):
        p = os.path.join(tmp, "bad.gguf")
        tiny_gguf.make_tiny(p, name, **kw)
        try:
            ref.Model(p)
            errs.append(None)
        except ref.RefError as e:
            errs.append(str(e))
    check("rejected: gemma2 output.weight, gemma3 YaRN, unknown arch, qwen2 rope_freqs", all(errs),
          " | ".join(str(e)[-70:] for e in errs))

    # The command line on phi3 with the fused modules: same numbers as in-process, n_ctx from SPEC.
    path = os.path.join(tmp, "phi3.gguf")
    m = ref.Model(path)
    slots, n = all_slots(m, 2, (ref.M_QKV, ref.M_O, ref.M_GATE_UP, ref.M_DOWN))
    flat = random_flat(slots, n, 2, rng, b_zero=False, b_std=0.2)
    flat.tofile(os.path.join(tmp, "init.f32"))
    mb = tiny_batch(rng, m.hp.V, 2, 8)
    spec = {"model": path, "r": 2, "alpha": 4.0, "use_rslora": False, "targets": ["qkv", "o", "gate_up", "down"],
            "slots": slots, "init": os.path.join(tmp, "init.f32"), "n_ctx": 9,
            "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}, "max_grad_norm": 0.0,
            "steps": [{"lr": 1e-2, "micro_batches": [{k: v.tolist() for k, v in mb.items()}]}]}
    sp, op = os.path.join(tmp, "spec.json"), os.path.join(tmp, "out.json")
    json.dump(spec, open(sp, "w"))
    cmd = [sys.executable, os.path.join(HERE, "llama_lora.py"), sp, op, "--threads", "2"]
    pr = subprocess.run(cmd, capture_output=True, text=True)
    ok, detail = pr.returncode == 0, pr.stderr.strip()[-200:]
    if ok:
        out = json.load(open(op))
        m.n_ctx = 9
        lo = ref.Lora(slots, 2, 4.0, False, flat, torch.float64)
        l0, _, _ = ref.accumulate_grads(m, lo, [mb])
        g0 = np.fromfile(out["grads_step0"], "<f4")
        gref = lo.flat_grads()
        ok = (out["arch"] == "phi3" and out["n_ctx"] == 9 and abs(out["losses"][0] - l0) < 1e-12
              and np.abs(g0 - gref).max() < 1e-6 * np.abs(gref).max())
        detail = f"loss {out['losses'][0]:.6f}, grad norm {out['grad_norms'][0]:.4f}"
    check("CLI run on phi3 with qkv/o/gate_up/down", ok, detail)
    json.dump(dict(spec, targets=["q", "o"]), open(sp, "w"))
    pr = subprocess.run(cmd, capture_output=True, text=True)
    check("CLI: a module phi3 lacks exits 2", pr.returncode == 2 and "no module 'q'" in pr.stderr,
          f"rc {pr.returncode}: {pr.stderr.strip()}")

if __name__ == "__main__":
    sys.exit(main())
