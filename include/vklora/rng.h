/* Counter-based random numbers: a pure function of (key, counter), so any element of any stream can be drawn in
 * any order, on the host or in a shader (shaders/common/rng.glsl is the bit-identical GLSL twin). Used for LoRA
 * initialisation, dropout masks the backward regenerates instead of storing, and data shuffling. */
#ifndef VKLORA_RNG_H
#define VKLORA_RNG_H

#include <stdint.h>

/* Philox-2x32 with 10 rounds (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3"): 64-bit counter,
 * 32-bit key, two 32-bit outputs. Only 32-bit multiplies, so it ports to GLSL without 64-bit integers. */
static inline void vkl_philox2x32(uint32_t key, uint32_t ctr_lo, uint32_t ctr_hi, uint32_t out[2]) {
    uint32_t l = ctr_lo, h = ctr_hi, k = key;
    for (int i = 0; i < 10; i++) {
        uint64_t p = (uint64_t)0xD256D193u * l;
        uint32_t hi = (uint32_t)(p >> 32), lo = (uint32_t)p;
        l = hi ^ k ^ h;
        h = lo;
        k += 0x9E3779B9u;
    }
    out[0] = l;
    out[1] = h;
}

/* Mix a 64-bit seed and a stream id into one 32-bit Philox key (splitmix64 finaliser). */
static inline uint32_t vkl_rng_key(uint64_t seed, uint64_t stream) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + stream * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z ^ (z >> 32));
}

/* Uniform float in [0, 1) with 24 random bits, element `index` of stream `key`. */
static inline float vkl_rng_uniform(uint32_t key, uint64_t index) {
    uint32_t o[2];
    vkl_philox2x32(key, (uint32_t)index, (uint32_t)(index >> 32), o);
    return (float)(o[0] >> 8) * (1.0f / 16777216.0f);
}

static inline uint32_t vkl_rng_u32(uint32_t key, uint64_t index) {
    uint32_t o[2];
    vkl_philox2x32(key, (uint32_t)index, (uint32_t)(index >> 32), o);
    return o[0];
}

#endif
