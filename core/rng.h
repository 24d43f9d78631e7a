/* rng.h: the seeded random numbers of training (augmentation, shuffling). xoshiro256** seeded
 * through splitmix64; rng_stream derives an independent stream from (seed, a, b, c) so that image
 * b of side a at iteration c (or any such triple) draws the same numbers whatever the thread
 * count, and a resumed run draws exactly what the uninterrupted one would have. */
#ifndef VS_RNG_H
#define VS_RNG_H

#include <stdint.h>

typedef struct rng {
    uint64_t s[4];
} rng;

/* A generator seeded from one 64-bit value (any value, zero included). */
void rng_seed(rng *r, uint64_t seed);

/* An independent stream for the tuple (seed, a, b, c): different tuples give unrelated streams. */
void rng_stream(rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c);

uint64_t rng_u64(rng *r);

/* Uniform in [0, 1) with 24 random bits. */
float rng_uniform(rng *r);

/* Uniform in [lo, hi). */
float rng_range(rng *r, float lo, float hi);

/* Uniform integer in [0, n), unbiased; n > 0. */
uint32_t rng_below(rng *r, uint32_t n);

/* Standard normal (Box-Muller; one of the pair is used, so each call draws two uniforms). */
float rng_normal(rng *r);

#endif
