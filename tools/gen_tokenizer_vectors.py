#!/usr/bin/python3
# Writes tests/tokenizer_vectors/: extra.inp (strings that llama.cpp's own vectors leave out: special-token texts,
# user-defined tokens, whitespace runs, invalid UTF-8, every script, Unicode 15 code points, dataset text) and, per
# vocabulary, extra-<name>.out with llama.cpp's ids for each string: first every string with parse_special off,
# then every string with it on. Run by hand with a built tools/llama_tokenize_oracle.cpp:
#   tools/gen_tokenizer_vectors.py ./llama-tokenize-oracle [DATA_DIR]
"""The strings are drawn from a fixed seed, so a rerun with the same llama.cpp gives the same files."""

import os
import random
import subprocess
import sys

VOCABS = ['llama-spm', 'llama-bpe', 'gpt-2', 'qwen2', 'qwen35', 'phi-3', 'command-r', 'deepseek-coder', 'deepseek-llm',
          'falcon', 'gemma-4', 'mpt', 'refact', 'starcoder']
SEP = b'\n__ggml_vocab_test__\n'

WORDS = ["Hello", "world", "the", "I'm", "you'RE", "we'll", "it's", "DON'T", "na\u00efve", "caf\u00e9", "\u00dcber",
         "stra\u00dfe", "\u0414\u041e\u041c", "\u0434\u043e\u043c", "\u4e2d\u6587", "\u65e5\u672c\u8a9e",
         "\u3072\u3089\u304c\u306a", "\u30ab\u30bf\u30ab\u30ca", "\ud55c\uad6d\uc5b4", "\uff21\uff22\uff23",
         "\uff01\uff1f", "\u3000", "\u3002", "\u300c\u300d", "\u00bc\u00bd", "e\u0301", "x\u0301\u0302",
         "\u0915\u094d\u0937", "\u0e01\u0e34\u0e19", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u05e2\u05d1",
         "\u0395\u03bb\u03bb", "\u0390\u03b0", "\ufb01", "\u216b", "\u00b2\u00b3", "\u0663\u0664", "\u0967\u0968",
         "\U0001f999", "\U0001f600\U0001f642", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u2705", "\u2026",
         "\u2014", "\u2018q\u2019", "\u201cdq\u201d", "`code`", "$x+y^z|w~", "<=>", "->", "::", "#include",
         "std::vector<int>", "a_b", "foo.bar()", "0x1F", "3.14159", "1,234,567", "12345678901", "007", "\t", "\n",
         "\r\n", "\n\n\n", "  ", "    ", "\u00a0", "\u2003", "\u200b", "\u2581", "'s", "'", "\"", "\\", "x", "Z",
         "\U00031350", "\U00011f04", "\U0002ebf0", "\u2ffc", "\U00010d40", "\u1c89", "\x1c", "\x85", "\x0b", "\x7f"]
SPECIALS = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|begin_of_text|>",
            "<|start_header_id|>", "<|user|>", "<|end|>", "<|assistant|>", "[PAD151650]", "[PAD49153]",
            "<|tool_call>", "<|tool_response>", "<bos>", "<eos>", "<start_of_turn>", "<|START_OF_TURN_TOKEN|>",
            "<|END_OF_TURN_TOKEN|>", "<fim_prefix>", "<|fim_prefix|>", "\u00f5", "\u00f8", " " * 24, " " * 10,
            "<\uff5cbegin\u2581of\u2581sentence\uff5c>", "<|file_sep|>", "<|channel|>", "<mask>"]
SEPS = ["", " ", " ", " ", "  ", "\n", "\t", " \n", "", ""]


def words_string(rng):
    out = b''
    for _ in range(rng.randint(1, 10)):
        r = rng.random()
        if r < 0.2:
            out += rng.choice(SPECIALS).encode()
        elif r < 0.24:
            out += bytes([rng.randint(0x80, 0xFF)])  # invalid UTF-8
        else:
            out += rng.choice(WORDS).encode()
        out += rng.choice(SEPS).encode()
    return out


def codepoint_string(rng):
    ranges = [(0x09, 0x0D), (0x20, 0x7E), (0x20, 0x7E), (0x80, 0x2FF), (0x300, 0x36F), (0x370, 0x52F), (0x590, 0x6FF),
              (0x900, 0xDFF), (0x1E00, 0x1FFF), (0x2000, 0x2BFF), (0x2E80, 0x31FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7FF),
              (0xF900, 0xFFFF), (0x10000, 0x1FFFF), (0x1F300, 0x1FAFF), (0x20000, 0x10FFFF)]
    out = b''
    for _ in range(rng.randint(1, 24)):
        r = rng.random()
        if r < 0.1:
            out += rng.choice(SPECIALS).encode()
        elif r < 0.14:
            out += bytes([rng.randint(0x80, 0xFF)])
        else:
            lo, hi = rng.choice(ranges)
            c = rng.randint(lo, hi)
            out += chr(0x20 if 0xD800 <= c <= 0xDFFF else c).encode()
    return out


def dataset_string(rng, data_dir):
    name = rng.choice(['tinyshakespeare.txt', 'alpaca_en_demo.json', 'messages_kto_en_demo.json',
                       'sharegpt_glaive_toolcall_en_demo.json'])
    with open(os.path.join(data_dir, 'datasets', name), 'rb') as f:
        d = f.read()
    a = rng.randint(0, len(d) - 400)
    return d[a:a + rng.randint(40, 300)].decode('utf-8', 'ignore').encode()


def main():
    oracle = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(root, '..', 'shared', 'data')
    out_dir = os.path.join(root, 'tests', 'tokenizer_vectors')
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(20261206)
    strings = [words_string(rng) for _ in range(14)] + [codepoint_string(rng) for _ in range(12)] + \
              [dataset_string(rng, data_dir) for _ in range(10)]
    strings = [s.replace(SEP, b'x') for s in strings]
    inp = os.path.join(out_dir, 'extra.inp')
    with open(inp, 'wb') as f:
        f.write(b''.join(s + SEP for s in strings))
    for v in VOCABS:
        vocab = os.path.join(data_dir, 'vocab', 'ggml-vocab-%s.gguf' % v)
        lines = []
        for special in ('0', '1'):
            out = subprocess.run([oracle, vocab, inp, special], check=True, capture_output=True).stdout
            got = out.decode().splitlines()
            assert len(got) == len(strings), (v, len(got))
            lines += got
        with open(os.path.join(out_dir, 'extra-%s.out' % v), 'w') as f:
            f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    main()
