#!/usr/bin/env python3
"""Seed corpora for the libFuzzer harnesses (tests/fuzz/), written from the test material in ../shared/data and
the repository's configs, so no binary seed is committed. Usage: fuzz_seeds.py OUT_DIR [DATA_DIR]
Writes OUT_DIR/<harness>/<name> for gguf, model, safetensors, config, data and tokenizer."""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = sys.argv[1]
DATA = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("VKL_DATA_DIR", os.path.join(ROOT, "..", "shared", "data"))
CAP = 4096  # keep seeds small: libFuzzer mutates faster and -max_len follows the largest seed


def put(harness, name, data):
    d = os.path.join(OUT, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- GGUF: a writer for small valid files ----
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B", U64: "<Q",
          I64: "<q", F64: "<d"}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gval(t, v):
    if t == STR:
        return gstr(v)
    if t == ARR:
        et, items = v
        out = struct.pack("<IQ", et, len(items))
        for it in items:
            out += gval(et, it)
        return out
    return struct.pack(SCALAR[t], v)


def gguf(kvs, tensors, align=32):
    """kvs: [(key, type, value)]; tensors: [(name, ggml_type, ne, bytes)] laid out as llama.cpp requires."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gstr(k) + struct.pack("<I", t) + gval(t, v)
    off = 0
    offs = []
    for name, ty, ne, data in tensors:
        offs.append(off)
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", ty, off)
        off = (off + len(data) + align - 1) // align * align
    if tensors:
        out += b"\0" * (-len(out) % align)
    base = len(out)
    for (name, ty, ne, data), o in zip(tensors, offs):
        out += b"\0" * (base + o - len(out)) + data
    return out + b"\0" * (-len(out) % align if tensors else 0)


def f32(n, seed):
    return b"".join(struct.pack("<f", ((i * 7919 + seed * 104729) % 2000) / 1000.0 - 1.0) for i in range(n))


def q8_0(rows, cols):  # blocks of 32: f16 scale + 32 int8
    blk = struct.pack("<e", 0.01) + bytes((i * 37) % 256 for i in range(32))
    return blk * (rows * cols // 32)


def tiny_llama(n_layer=1, dim=32, ff=64, vocab=16, heads=2, wtype=0):
    kvs = [("general.architecture", STR, "llama"), ("general.name", STR, "fuzz seed"),
           ("llama.block_count", U32, n_layer), ("llama.context_length", U32, 64), ("llama.embedding_length", U32, dim),
           ("llama.feed_forward_length", U32, ff), ("llama.attention.head_count", U32, heads),
           ("llama.attention.head_count_kv", U32, heads), ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
           ("llama.rope.freq_base", F32, 10000.0), ("llama.vocab_size", U32, vocab),
           ("tokenizer.ggml.model", STR, "llama"),
           ("tokenizer.ggml.tokens", ARR, (STR, ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(vocab - 3)])),
           ("tokenizer.ggml.scores", ARR, (F32, [0.0] * vocab)),
           ("tokenizer.ggml.token_type", ARR, (I32, [2, 3, 3] + [6] * (vocab - 3))),
           ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2)]
    w = (lambda r, c, s: (0, [c, r], f32(r * c, s))) if wtype == 0 else (lambda r, c, s: (8, [c, r], q8_0(r, c)))
    ts = [("token_embd.weight", 0, [dim, vocab], f32(dim * vocab, 1)), ("output_norm.weight", 0, [dim], f32(dim, 2))]
    for layer in range(n_layer):
        p = "blk.%d." % layer
        ts.append((p + "attn_norm.weight", 0, [dim], f32(dim, 3)))
        for j, n in enumerate(["attn_q", "attn_k", "attn_v", "attn_output"]):
            ty, ne, d = w(dim, dim, 10 + j)
            ts.append((p + n + ".weight", ty, ne, d))
        ts.append((p + "ffn_norm.weight", 0, [dim], f32(dim, 4)))
        for n, (r, c) in [("ffn_gate", (ff, dim)), ("ffn_up", (ff, dim)), ("ffn_down", (dim, ff))]:
            ty, ne, d = w(r, c, 20)
            ts.append((p + n + ".weight", ty, ne, d))
    return gguf(kvs, ts)


all_types = [("u8", U8, 7), ("i8", I8, -3), ("u16", U16, 65535), ("i16", I16, -2), ("u32", U32, 1 << 31),
             ("i32", I32, -5), ("f32", F32, 1.5), ("b", BOOL, 1), ("s", STR, "hello"), ("u64", U64, 1 << 40),
             ("i64", I64, -(1 << 40)), ("f64", F64, 2.25), ("arr", ARR, (ARR, [(I32, [1, 2]), (I32, [3])])),
             ("strs", ARR, (STR, ["a", "bc", ""]))]
for name, data in [("kv_types", gguf(all_types, [])),
                   ("tensors", gguf([("general.alignment", U32, 64)],
                                    [("a", 0, [8, 3], f32(24, 5)), ("b", 8, [32, 2], q8_0(2, 32)),
                                     ("c", 1, [8], b"\x00\x3c" * 8)], align=64)),
                   ("llama_f32", tiny_llama()), ("llama_q8_0", tiny_llama(n_layer=2, wtype=8))]:
    put("gguf", name, data)
    put("model", name, data)
# vocabulary-only files of both tokenizer kinds (the GGUF harness also builds a tokenizer from what it accepts)
bpe_tokens = ["a", "b", "c", "ab", "abc", "\u0120", "<|endoftext|>"]
put("gguf", "vocab_bpe", gguf([("general.architecture", STR, "gpt2"), ("tokenizer.ggml.model", STR, "gpt2"),
                               ("tokenizer.ggml.pre", STR, "gpt-2"), ("tokenizer.ggml.tokens", ARR, (STR, bpe_tokens)),
                               ("tokenizer.ggml.token_type", ARR, (I32, [1] * 6 + [3])),
                               ("tokenizer.ggml.merges", ARR, (STR, ["a b", "ab c"])),
                               ("tokenizer.ggml.eos_token_id", U32, 6)], []))
spm_tokens = ["<unk>", "<s>", "</s>", "\u2581", "a", "b", "\u2581a", "ab"] + ["<0x%02X>" % i for i in range(256)]
put("gguf", "vocab_spm", gguf([("general.architecture", STR, "llama"), ("tokenizer.ggml.model", STR, "llama"),
                               ("tokenizer.ggml.tokens", ARR, (STR, spm_tokens)),
                               ("tokenizer.ggml.scores", ARR, (F32, [0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -1.5, -2.5]
                                                               + [-9.0] * 256)),
                               ("tokenizer.ggml.token_type", ARR, (I32, [2, 3, 3] + [1] * 5 + [6] * 256))], []))
for rel in ["models/stories260K.gguf", "vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-gpt-2.gguf"]:
    p = os.path.join(DATA, rel)
    if os.path.exists(p):
        with open(p, "rb") as f:
            head = f.read(CAP)
        put("gguf", "head_" + os.path.basename(rel), head)

# ---- safetensors ----


def safetensors(tensors, meta=None):
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


put("safetensors", "plain", safetensors([("w", "F32", [2, 3], f32(6, 1)), ("h", "F16", [4], b"\x00\x3c" * 4),
                                         ("z", "BF16", [1, 2], b"\x80\x3f" * 2)], {"format": "pt"}))
lora = []
for layer in range(2):
    for m in ["q_proj", "v_proj"]:
        pre = "base_model.model.model.layers.%d.self_attn.%s." % (layer, m)
        lora.append((pre + "lora_A.weight", "F32", [2, 8], f32(16, layer)))
        lora.append((pre + "lora_B.weight", "F32", [8, 2], f32(16, layer + 1)))
put("safetensors", "peft", safetensors(lora, {"format": "pt"}))
put("safetensors", "empty", safetensors([]))

# ---- config ----
for fn in sorted(os.listdir(os.path.join(ROOT, "configs"))):
    if fn.endswith(".json"):
        with open(os.path.join(ROOT, "configs", fn), "rb") as f:
            put("config", fn, f.read()[:CAP])
put("config", "flat", b'{"model": "m.gguf", "dataset": "d.json", "lora_r": 8, "lora_alpha": 16, "max_steps": 3, '
                      b'"target_modules": ["q_proj", "v_proj"], "use_gradient_checkpointing": "unsloth"}')
put("config", "set", b'--set lora.r=4\n{"model": {"path": "m.gguf", "quantization": "q4_k_m"}, "dataset": '
                     b'{"path": "d.jsonl", "template": "chatml", "eval_ratio": 0.1}, "loftq_config": '
                     b'{"loftq_bits": 4, "loftq_iter": 1}}')

# ---- datasets: 3 selector bytes (format, template, vocabulary and flags), then the file ----
for i, fn in enumerate(sorted(os.listdir(os.path.join(DATA, "datasets")))):
    with open(os.path.join(DATA, "datasets", fn), "rb") as f:
        body = f.read(CAP)
    if fn.endswith(".json"):  # whole records: cut at the last complete one
        cut = body.rfind(b"},")
        body = body[:cut + 1] + b"]" if cut > 0 else body
    fmt = 1 if fn.endswith(".txt") else {"alpaca": 2, "sharegpt": 3, "messages": 4}.get(fn.split("_")[0], 3)
    for tmpl in (0, 1 + i % 5, 7 + i):
        put("data", "%s_t%d" % (fn, tmpl), bytes([fmt, tmpl, (i * 53) & 0xFF]) + body)
put("data", "jsonl_messages", bytes([4, 2, 0x80]) + b'{"messages": [{"role": "system", "content": "Be brief."}, '
    b'{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n')

# ---- tokenizer: 1 selector byte, then text (llama.cpp's tokenizer test inputs) ----
for v, fn in enumerate(["ggml-vocab-llama-spm.gguf.inp", "ggml-vocab-llama-bpe.gguf.inp", "ggml-vocab-gpt-2.gguf.inp",
                        "ggml-vocab-qwen2.gguf.inp"]):
    p = os.path.join(DATA, "vocab", fn)
    if not os.path.exists(p):
        continue
    with open(p, "rb") as f:
        cases = f.read().split(b"\n__ggml_vocab_test__\n")
    for j, c in enumerate(cases[:24]):
        put("tokenizer", "%d_%02d" % (v, j), bytes([v | (0x30 if j % 3 == 0 else 0)]) + c[:CAP])
put("tokenizer", "special", bytes([0x21]) + b"<s>[INST] hi [/INST]</s><|im_start|>user\n<|endoftext|>")

# ---- tokenizer_hf: selector byte even = a tokenizer.json (the hand-built ones of tests/hf_tokenizer_vectors);
# odd = text for those tokenizers or the real Llama 3.1 file (their test texts) ----
for k, name in enumerate(["synthetic-flags", "synthetic-metaspace", "synthetic-bytelevel"]):
    p = os.path.join(ROOT, "tests", "hf_tokenizer_vectors", name + ".json")
    if not os.path.exists(p):
        continue
    with open(p, encoding="utf-8") as f:
        v = json.load(f)
    put("tokenizer_hf", name, b"\x00" + json.dumps(v["tokenizer_json"]).encode())
    for j, c in enumerate(v["cases"][:12]):
        put("tokenizer_hf", "%s_%02d" % (name, j), bytes([1 | (k << 1) | (0x30 if j % 2 else 0)]) + c["text"].encode())
p = os.path.join(ROOT, "tests", "hf_tokenizer_vectors", "llama-3.1.json")
if os.path.exists(p):
    with open(p, encoding="utf-8") as f:
        v = json.load(f)
    for j, c in enumerate(v["cases"][:40]):
        put("tokenizer_hf", "llama31_%02d" % j, bytes([7 | (0x30 if j % 2 else 0)]) + c["text"].encode()[:CAP])
