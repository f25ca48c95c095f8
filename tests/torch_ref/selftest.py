#!/usr/bin/python3
# Checks of the PyTorch reference itself, so that the C suite can trust it: forward against the published NLL
# of stories260K, LoRA gradients against finite differences, accumulation, clipping + AdamW against torch.optim.
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


def random_flat(slots, n, r, rng, b_zero):
    """A ~ U(-1/sqrt(in), 1/sqrt(in)) like a kaiming init; B zero or N(0, 0.05^2)."""
    flat = np.zeros(n, np.float32)
    for s in slots:
        bound = 1 / math.sqrt(s["in"])
        flat[s["a_off"]:s["a_off"] + r * s["in"]] = rng.uniform(-bound, bound, r * s["in"])
        if not b_zero:
            flat[s["b_off"]:s["b_off"] + s["out"] * r] = rng.normal(0, 0.05, s["out"] * r)
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
    m64 = ref.Llama(model_path, torch.float64)
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
    m32 = ref.Llama(model_path, torch.float32)
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

    print(f"{len(failures)} failed, {time.time() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
