// Reference pre-tokenizer splits for tests/tokenizer_vectors: runs llama.cpp's unicode_regex_split (the function
// its BPE tokenizer calls with a pre-tokenizer's regex list; exported by libllama, declared in its src/unicode.h)
// over strings, used by tools/gen_tokenizer_vectors.py. Not part of the build: compile it against a llama.cpp build
// B of source S with g++ -std=c++17 -IS/src tools/llama_split_oracle.cpp -LB/bin -lllama -Wl,-rpath,B/bin
// -o llama-split-oracle
// Usage: llama-split-oracle REGEXES STRINGS; REGEXES holds the regex list, one per line; STRINGS holds strings each
// followed by "\n__ggml_vocab_test__\n". One line per string on stdout: each piece's length in code points.
#include "unicode.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

static std::string slurp(const char * path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

int main(int argc, char ** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s REGEXES STRINGS\n", argv[0]);
        return 2;
    }
    std::vector<std::string> regexes;
    std::istringstream rs(slurp(argv[1]));
    for (std::string line; std::getline(rs, line);) {
        if (!line.empty()) regexes.push_back(line);
    }
    const std::string raw = slurp(argv[2]), sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0; pos < raw.size();) {
        size_t next = raw.find(sep, pos);
        if (next == std::string::npos) next = raw.size();
        const std::string s = raw.substr(pos, next - pos);
        pos = next + sep.size();
        const std::vector<std::string> words = unicode_regex_split(s, regexes, false);
        bool first = true;
        for (const std::string & w : words) {
            // pieces come back as valid UTF-8 (a broken byte became U+FFFD), so this counts code points
            printf(first ? "%zu" : " %zu", unicode_cpts_from_utf8(w).size());
            first = false;
        }
        printf("\n");
    }
    return 0;
}
