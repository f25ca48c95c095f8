#!/usr/bin/python3
# Writes tests/tokenizer_vectors/: extra.inp (strings that llama.cpp's own vectors leave out: special-token texts,
# user-defined tokens, whitespace runs, invalid UTF-8, every script, Unicode 15 code points, dataset text) and, per
# vocabulary, extra-<name>.out with llama.cpp's ids for each string: first every string with parse_special off,
# then every string with it on.
# The pre-tokenizers no vocabulary of llama.cpp's tests uses (tekken, gpt-4o) get cased.inp (mixed-case words in
# every script, contractions, digits, symbols, slashes, whitespace and newlines, broken UTF-8, dataset text) with
# split-<pre>.out (llama.cpp's unicode_regex_split over the pre-tokenizer's regex list: each piece's length in code
# points) and cased-<pre>-<vocab>.out (the ids of a copy of ggml-vocab-<vocab>.gguf whose tokenizer.ggml.pre is
# <pre>, with parse_special off then on). Run by hand with built tools/llama_tokenize_oracle.cpp and
# tools/llama_split_oracle.cpp:
#   tools/gen_tokenizer_vectors.py ./llama-tokenize-oracle ./llama-split-oracle [DATA_DIR]
"""The strings are drawn from fixed seeds, so a rerun with the same llama.cpp gives the same files."""

import os
import random
import struct
import subprocess
import sys
import tempfile

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


# llama.cpp's regex lists (src/llama-vocab.cpp) for LLAMA_VOCAB_PRE_TYPE_TEKKEN and _GPT4O (also llama4, kanana2,
# talkie, and minimax-m2's own type): tokenizer.json's regexes with the case classes rewritten into lookaheads.
CASED_PRE = {
    'tekken': [r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+"
               r"((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
    'gpt-4o': [r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|"
               r"'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|"
               r"'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"],
}
# (pre-tokenizer, vocabulary whose tokens and merges it runs with)
CASED_VOCABS = [('tekken', 'llama-bpe'), ('tekken', 'qwen2'), ('gpt-4o', 'llama-bpe'), ('gpt-4o', 'qwen2')]

CASED_WORDS = ["Hello", "HELLO", "hello", "HelloWorld", "helloWorld", "XMLHttpRequest", "iPhone", "McDonald", "ABCdef",
               "aBC", "A", "a", "Z", "I", "OK", "\u00dcBER", "\u00dcber", "\u00fcber", "\u00c4BC", "a\u00c4b",
               "\u00c4bC", "ABC\u00c4", "STRASSE", "Stra\u00dfe", "\u1e9e", "\u0414\u041e\u041c", "\u0414\u043e\u043c",
               "\u0434\u043e\u043c", "DOM\u0434\u043e\u043c", "\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3",
               "\u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2", "\u01c5", "\u01c6ungla", "\u01c4", "\u01c8", "\u1f88",
               "\u02b0", "\u1d43", "\u30fc", "\u4e2d\u6587", "\u65e5\u672c\u8a9eABC", "abc\u4e2d\u6587",
               "ABC\u4e2d\u6587def", "\u30ab\u30bf\u30ab\u30ca", "\u3072\u3089\u304c\u306a", "\ud55c\uad6d\uc5b4",
               "\ufb01", "\u216b", "\u217b", "\u0131", "\u0130stanbul", "\uff21\uff22\uff23", "\uff41\uff42\uff43",
               "e\u0301", "E\u0301", "x\u0301\u0302Y", "\u0915\u094d\u0937", "\u0e01\u0e34\u0e19",
               "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "\u05e2\u05d1", "\ua7f2", "\U0001d400\U0001d41a",
               "\U00010400\U00010428", "ABCDEFGHIJ", "abcdefghij", "aBcDeF", "AbCdEf", "\u00c9T\u00c9", "\u00e9t\u00e9"]
CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'rE", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'Ll", "'d",
                "'D", "'x", "'", "''", "\u2019s", "'r", "'l"]
NUMBERS = ["1", "12", "123", "1234", "12345", "1234567", "\u0663\u0664", "\u00b2\u00b3", "3.14", "1,000", "0x1F",
           "v2", "A1B2", "x86_64", "\u2167", "\uff11\uff12"]
SYMBOLS = ["/", "//", "/\n", ".\n", "!/", "\\", "-", "--", "...", "()", "{}", "[]", "<|", "|>", "#", "@", "$",
           "\u20ac", "\u00a9", "\u2026", "\u2014", "\u201c", "\u201d", "\u00ab", "\u00bb", "\u3002", "\u3001",
           "\uff01", "?", "?!", "/*", "*/", ":/", "https://x.org/a/b", "a/b/c", "C:\\Users", "\u0301", "\u200b",
           "\U0001f600", "\U0001f999", ".\r\n/", "//\n\n", "_", "__init__", "<s>", "<|endoftext|>", "<|im_start|>"]
CASED_SEPS = ["", "", "", " ", " ", " ", "  ", "   ", "\n", "\n\n", "\r\n", "\t", " \n", "\n ", "\u00a0",
              "\u3000", "\u2003", " \t\n", "\r", "\x85", "\x0b", "\x1c"]


def cased_string(rng):
    out = b''
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.45:
            item = rng.choice(CASED_WORDS)
            if rng.random() < 0.3:
                item += rng.choice(CONTRACTIONS)
        elif r < 0.55:
            item = rng.choice(CONTRACTIONS)
        elif r < 0.7:
            item = rng.choice(NUMBERS)
        elif r < 0.95:
            item = rng.choice(SYMBOLS)
        else:
            out += bytes([rng.randint(0x80, 0xFF)])  # invalid UTF-8
            continue
        out += item.encode() + rng.choice(CASED_SEPS).encode()
    return out


def with_pre(src, pre):
    """The GGUF file src with tokenizer.ggml.pre's value replaced (a string KV: u64 key length, key, u32 type 8,
    u64 value length, value); the vocabularies have no tensors, so nothing after the KVs needs moving."""
    key = struct.pack('<Q', 18) + b'tokenizer.ggml.pre' + struct.pack('<I', 8)
    i = src.find(key)
    assert i > 0 and src.count(key) == 1
    at = i + len(key)
    n = struct.unpack('<Q', src[at:at + 8])[0]
    return src[:at] + struct.pack('<Q', len(pre)) + pre.encode() + src[at + 8 + n:]


def tokenize(oracle, vocab, inp, n_strings):
    lines = []
    for special in ('0', '1'):
        out = subprocess.run([oracle, vocab, inp, special], check=True, capture_output=True).stdout
        got = out.decode().splitlines()
        assert len(got) == n_strings, (vocab, len(got))
        lines += got
    return lines


def write_lines(path, lines):
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def main():
    oracle, split_oracle = sys.argv[1], sys.argv[2]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data_dir = sys.argv[3] if len(sys.argv) > 3 else os.path.join(root, '..', 'shared', 'data')
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
        write_lines(os.path.join(out_dir, 'extra-%s.out' % v), tokenize(oracle, vocab, inp, len(strings)))

    rng = random.Random(20261207)
    strings = [cased_string(rng) for _ in range(240)] + [codepoint_string(rng) for _ in range(40)] + \
              [dataset_string(rng, data_dir) for _ in range(20)]
    strings = [s.replace(SEP, b'x') for s in strings]
    inp = os.path.join(out_dir, 'cased.inp')
    with open(inp, 'wb') as f:
        f.write(b''.join(s + SEP for s in strings))
    with tempfile.TemporaryDirectory() as tmp:
        for pre, regexes in CASED_PRE.items():
            re_file = os.path.join(tmp, pre + '.re')
            with open(re_file, 'w') as f:
                f.write(''.join(r + '\n' for r in regexes))
            out = subprocess.run([split_oracle, re_file, inp], check=True, capture_output=True).stdout
            got = out.decode().splitlines()
            assert len(got) == len(strings), (pre, len(got))
            write_lines(os.path.join(out_dir, 'split-%s.out' % pre), got)
        for pre, v in CASED_VOCABS:
            with open(os.path.join(data_dir, 'vocab', 'ggml-vocab-%s.gguf' % v), 'rb') as f:
                src = f.read()
            vocab = os.path.join(tmp, '%s-%s.gguf' % (pre, v))
            with open(vocab, 'wb') as f:
                f.write(with_pre(src, pre))
            write_lines(os.path.join(out_dir, 'cased-%s-%s.out' % (pre, v)),
                        tokenize(oracle, vocab, inp, len(strings)))


if __name__ == '__main__':
    main()
