// Out-of-tree check for 'vklora convert' (tools/check-convert-llamacpp.sh): loads a GGUF with llama.cpp, tokenizes a
// text file (add_special), decodes it in one batch and prints the mean NLL of tokens 1..n-1 and the ids as JSON.
// Not part of the build: compile against a llama.cpp build B of source S with g++ -std=c++17 -IS/include
// -IS/ggml/include tools/llama_nll_oracle.cpp -LB/bin -lllama -lggml -lggml-base -Wl,-rpath,B/bin -o llama-nll-oracle
#include "llama.h"
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s MODEL.gguf TEXT\n", argv[0]); return 2; }
    llama_log_set([](ggml_log_level l, const char *t, void *) { if (l >= GGML_LOG_LEVEL_ERROR) fputs(t, stderr); }, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    std::ifstream f(argv[2]); std::stringstream ss; ss << f.rdbuf(); std::string text = ss.str();
    std::vector<llama_token> ids(text.size() + 16);
    int n = llama_tokenize(vocab, text.c_str(), (int)text.size(), ids.data(), (int)ids.size(), true, false);
    if (n < 0) { fprintf(stderr, "tokenize failed\n"); return 1; }
    ids.resize(n);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512; cp.n_batch = 512; cp.n_ubatch = 512; cp.n_threads = 2;
    llama_context *ctx = llama_init_from_model(model, cp);
    llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) { b.token[i] = ids[i]; b.pos[i] = i; b.n_seq_id[i] = 1; b.seq_id[i][0] = 0; b.logits[i] = 1; }
    b.n_tokens = n;
    if (llama_decode(ctx, b)) { fprintf(stderr, "decode failed\n"); return 1; }
    int V = llama_vocab_n_tokens(vocab);
    double nll = 0;
    for (int i = 0; i + 1 < n; i++) {
        const float *lg = llama_get_logits_ith(ctx, i);
        double mx = -1e30; for (int v = 0; v < V; v++) mx = std::max(mx, (double)lg[v]);
        double s = 0; for (int v = 0; v < V; v++) s += std::exp(lg[v] - mx);
        nll += mx + std::log(s) - lg[ids[i + 1]];
    }
    printf("{\"n_tokens\": %d, \"mean_nll\": %.8f, \"ids\": [", n, nll / (n - 1));
    for (int i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
    printf("]}\n");
    llama_batch_free(b); llama_free(ctx); llama_model_free(model);
    return 0;
}
