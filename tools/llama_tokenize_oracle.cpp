// Reference ids for tests/tokenizer_vectors: tokenizes strings with llama.cpp's llama_tokenize (add_special off),
// used by tools/gen_tokenizer_vectors.py. Not part of the build: compile it against a llama.cpp build B of
// source S with g++ -std=c++17 -IS/include -IS/ggml/include tools/llama_tokenize_oracle.cpp -LB/bin -lllama
// -lggml -lggml-base -Wl,-rpath,B/bin -o llama-tokenize-oracle
// Usage: llama-tokenize-oracle VOCAB.gguf STRINGS PARSE_SPECIAL(0|1); STRINGS holds strings each followed by
// "\n__ggml_vocab_test__\n" (as llama.cpp's .inp files); one line of space-separated ids per string on stdout.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char ** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s VOCAB.gguf STRINGS PARSE_SPECIAL\n", argv[0]);
        return 2;
    }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "%s: cannot load\n", argv[1]);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::ifstream in(argv[2], std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string raw = ss.str(), sep = "\n__ggml_vocab_test__\n";
    const bool parse_special = atoi(argv[3]) != 0;
    for (size_t pos = 0; pos < raw.size();) {
        size_t next = raw.find(sep, pos);
        if (next == std::string::npos) next = raw.size();
        const std::string s = raw.substr(pos, next - pos);
        pos = next + sep.size();
        std::vector<llama_token> ids(s.size() + 16);
        int n = llama_tokenize(vocab, s.data(), (int) s.size(), ids.data(), (int) ids.size(), false, parse_special);
        if (n < 0) {
            ids.resize(-n);
            n = llama_tokenize(vocab, s.data(), (int) s.size(), ids.data(), (int) ids.size(), false, parse_special);
        }
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    llama_model_free(model);
    return 0;
}
