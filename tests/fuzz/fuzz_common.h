/* Shared by the libFuzzer harnesses: where the test material is, input as a file (for loaders that take a path),
 * and tokenizers loaded once per process. Built only with -Dfuzz=true (clang; see tools/fuzz.sh). */
#ifndef VKLORA_FUZZ_COMMON_H
#define VKLORA_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vklora/gguf.h"
#include "vklora/tokenizer.h"

/* ../shared/data next to the source tree, or VKL_DATA_DIR. */
static inline const char *fz_data_path(const char *rel) {
    static char buf[4][1024];
    static int k;
    const char *dir = getenv("VKL_DATA_DIR");
    char *b = buf[k++ % 4];
    snprintf(b, sizeof(buf[0]), "%s/%s", dir && *dir ? dir : VKL_SOURCE_ROOT "/../shared/data", rel);
    return b;
}

/* The input as an anonymous in-memory file; *path names it (/proc/self/fd/N). Close the fd when done. */
static inline int fz_memfile(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("vklora-fuzz", MFD_CLOEXEC);
    if (fd < 0) abort();
    size_t done = 0;
    while (done < size) {
        ssize_t k = write(fd, data + done, size - done);
        if (k <= 0) abort();
        done += (size_t)k;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/* A tokenizer of one of the test vocabularies, loaded on first use and kept (so leak checks ignore it). */
static inline vkl_tokenizer *fz_tokenizer(const char *vocab_rel) {
    vkl_err err = {0};
    vkl_gguf *g = NULL;
    vkl_tokenizer *tok = NULL;
    if (vkl_gguf_open(fz_data_path(vocab_rel), &g, &err) || vkl_tokenizer_load(g, &tok, &err)) {
        fprintf(stderr, "fuzz: cannot load %s: %s\n", vocab_rel, err.msg);
        abort();
    }
    vkl_gguf_close(g);
    return tok;
}

#endif
