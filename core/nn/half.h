/* half.h: the two 16-bit float formats on the host. bfloat16: the top 16 bits of an IEEE fp32 (8
 * exponent bits, 7 mantissa bits). fp16: IEEE binary16 (5 exponent bits, 10 mantissa bits,
 * largest finite 65504, subnormals down to 2^-24). Rounding is to nearest, ties to even, as the
 * GPU's __float2bfloat16_rn and __float2half_rn; a NaN stays a NaN (quiet), what is too large for
 * fp16 becomes infinity. */
#ifndef NN_HALF_H
#define NN_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint16_t nn_bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float nn_f32_from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* f rounded to bf16 and back */
static inline float nn_bf16_round(float f)
{
    return nn_f32_from_bf16(nn_bf16_from_f32(f));
}

static inline float nn_f32_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t nn_bits_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline uint16_t nn_f16_from_f32(float f)
{
    uint32_t u = nn_bits_f32(f);
    const uint32_t sign = (u >> 16) & 0x8000u;
    u &= 0x7fffffffu;
    if (u > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
    if (u >= 0x47800000u) return (uint16_t)(sign | 0x7c00u); /* 2^16 and up: infinity */
    if (u < 0x38800000u) {
        /* below 2^-14: a subnormal, in units of 2^-24. Adding 0.5 (2^-1) puts the value's units
         * of 2^-24 in the low mantissa bits of a float in [0.5, 1), the FPU rounding them to
         * nearest even as it adds. */
        float v = nn_f32_bits(u) + 0.5f;
        return (uint16_t)(sign | (nn_bits_f32(v) - 0x3f000000u));
    }
    /* normal: rebias the exponent (127 -> 15), round the 13 dropped bits to nearest even (a carry
     * into the exponent is right, up to infinity at 65520) */
    uint32_t odd = (u >> 13) & 1u;
    u += 0xc8000fffu + odd; /* -(127 - 15) << 23, plus the rounding */
    return (uint16_t)(sign | (u >> 13));
}

static inline float nn_f32_from_f16(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) return nn_f32_bits(sign | nn_bits_f32((float)m * 0x1p-24f)); /* exact */
    if (e == 31) return nn_f32_bits(sign | 0x7f800000u | (m << 13));
    return nn_f32_bits(sign | ((e + 112u) << 23) | (m << 13));
}

/* either 16-bit type (bf16: 1 for bfloat16, 0 for fp16) */
static inline uint16_t nn_half_from_f32(int bf16, float f)
{
    return bf16 ? nn_bf16_from_f32(f) : nn_f16_from_f32(f);
}

static inline float nn_f32_from_half(int bf16, uint16_t h)
{
    return bf16 ? nn_f32_from_bf16(h) : nn_f32_from_f16(h);
}

#endif
