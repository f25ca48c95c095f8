#!/usr/bin/python3
# Independent check of vklora's PEFT export (used by tests/test_adapter.c): reads adapter_model.safetensors with
# numpy and compares it with the flat parameter vector, re-deriving llama.cpp's q/k row permutation from its HF
# converter's formula rather than from vklora's code.
# usage: ref_adapter.py PEFT_DIR PARAMS.bin LAYOUT.json   (prints "ok N" and exits 0 when every tensor matches)
import json
import struct
import sys

import numpy as np

ATTN = {"q_proj", "k_proj", "v_proj", "o_proj"}


def read_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    if (8 + n) % 8:
        raise SystemExit("header not padded to 8 bytes")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise SystemExit(f"{name}: dtype {e['dtype']}, expected F32")
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"])
    return header.get("__metadata__", {}), out


def hf_to_gguf_permute(w, n_head):
    # convert_hf_to_gguf.py's LlamaModel.permute: rotary halves of each head interleaved.
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    peft_dir, params_path, layout_path = sys.argv[1:4]
    layout = json.load(open(layout_path))
    params = np.fromfile(params_path, dtype="<f4")
    meta, tensors = read_safetensors(peft_dir + "/adapter_model.safetensors")
    if meta.get("format") != "pt":
        raise SystemExit(f"__metadata__ format {meta.get('format')!r}, expected 'pt'")
    r = layout["r"]
    expected = set()
    checked = 0
    for s in layout["slots"]:
        group = "self_attn" if s["module"] in ATTN else "mlp"
        prefix = f"base_model.model.model.layers.{s['layer']}.{group}.{s['module']}"
        ka, kb = prefix + ".lora_A.weight", prefix + ".lora_B.weight"
        expected |= {ka, kb}
        A = params[s["a_off"]:s["a_off"] + r * s["in"]].reshape(r, s["in"])
        B_gguf = params[s["b_off"]:s["b_off"] + s["out"] * r].reshape(s["out"], r)
        if tensors[ka].shape != (r, s["in"]) or tensors[kb].shape != (s["out"], r):
            raise SystemExit(f"{prefix}: shapes {tensors[ka].shape} {tensors[kb].shape}")
        if not np.array_equal(tensors[ka], A):
            raise SystemExit(f"{ka} differs from A")
        B_hf = tensors[kb]
        if layout["arch"] == "llama" and s["module"] in ("q_proj", "k_proj"):
            n_head = layout["n_head"] if s["module"] == "q_proj" else layout["n_head_kv"]
            if not np.array_equal(hf_to_gguf_permute(B_hf, n_head), B_gguf):
                raise SystemExit(f"{kb}: permute(B_hf) != B in GGUF order")
            if np.array_equal(B_hf, B_gguf):
                raise SystemExit(f"{kb}: llama q/k rows were not permuted at all")
        elif not np.array_equal(B_hf, B_gguf):
            raise SystemExit(f"{kb}: differs from B (no permutation expected for {layout['arch']} {s['module']})")
        checked += 2
    if set(tensors) != expected:
        raise SystemExit(f"unexpected or missing keys: {sorted(set(tensors) ^ expected)[:4]}")
    print(f"ok {checked}")


main()
