#!/usr/bin/python3
# Write a Hugging Face tokenizer.json + tokenizer_config.json for a GGUF's SentencePiece ("llama") vocabulary, the
# way transformers' LlamaConverter turns a Llama / TinyLlama tokenizer.model into a fast tokenizer: a BPE model with
# byte_fallback whose merges are every split of a vocabulary piece into two vocabulary pieces, ranked by the merged
# piece's score (SentencePieceExtractor); normalizer Prepend("▁") + Replace(" ", "▁"); decoder Replace("▁", " "),
# ByteFallback, Fuse, Strip(1 left); <unk> <s> </s> as special added tokens; the post-processor adds <s>.
# Used by the tests to turn stories260K into a complete Hugging Face model folder.
#
#   mk_hf_tokenizer.py MODEL.gguf DIR
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_ref"))
import gguf_np  # noqa: E402


def main(argv):
    if len(argv) != 3:
        print("usage: mk_hf_tokenizer.py MODEL.gguf DIR", file=sys.stderr)
        return 2
    md = gguf_np.GGUFFile(argv[1]).metadata
    if md.get("tokenizer.ggml.model") != "llama":
        print(f"{argv[1]}: not a SentencePiece (llama) vocabulary", file=sys.stderr)
        return 2
    tokens, scores = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.scores"]
    types = md["tokenizer.ggml.token_type"]
    vocab = {t: i for i, t in enumerate(tokens)}
    bos = tokens[md.get("tokenizer.ggml.bos_token_id", 1)]
    eos = tokens[md.get("tokenizer.ggml.eos_token_id", 2)]
    unk = tokens[md.get("tokenizer.ggml.unknown_token_id", 0)]
    merges = []
    for piece, i in vocab.items():
        if types[i] != 1:  # normal pieces only: control, byte and unknown tokens are never merged into
            continue
        local = [(piece[:k], piece[k:], scores[i]) for k in range(1, len(piece))
                 if piece[:k] in vocab and piece[k:] in vocab]
        merges.extend(sorted(local, key=lambda m: (vocab[m[0]], vocab[m[1]])))
    merges.sort(key=lambda m: m[2], reverse=True)
    specials = [(i, t) for i, t in enumerate(tokens) if types[i] in (2, 3)]
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i, t in specials],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [vocab[bos]], "tokens": [bos]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [[left, right] for left, right, _ in merges]},
    }
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": bos, "eos_token": eos, "unk_token": unk,
           "legacy": True, "tokenizer_class": "LlamaTokenizer", "model_max_length": 2048}
    with open(os.path.join(argv[2], "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    with open(os.path.join(argv[2], "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
