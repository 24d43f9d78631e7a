/* rng.c: xoshiro256** (Blackman and Vigna) seeded with splitmix64; see rng.h. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A 64-bit mix of h and v: keyed so that (a, b) and (b, a) differ. */
static uint64_t mix(uint64_t h, uint64_t v)
{
    uint64_t x = h ^ (v * 0xd1342543de82ef95ULL);
    return splitmix64(&x);
}

void rng_seed(rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    /* splitmix64 output is a bijection of distinct inputs, so the state is never all zero */
}

void rng_stream(rng *r, uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = mix(0x76697361676572ULL, seed); /* "visager" */
    h = mix(h, a);
    h = mix(h, b);
    h = mix(h, c);
    rng_seed(r, h);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_u64(rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

float rng_uniform(rng *r)
{
    return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

float rng_range(rng *r, float lo, float hi)
{
    return lo + (hi - lo) * rng_uniform(r);
}

uint32_t rng_below(rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection of the biased low products */
    uint64_t m = (uint64_t)(uint32_t)(rng_u64(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (lo < t) {
            m = (uint64_t)(uint32_t)(rng_u64(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float rng_normal(rng *r)
{
    /* u1 in (0, 1] so the log is finite */
    double u1 = ((double)(rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
