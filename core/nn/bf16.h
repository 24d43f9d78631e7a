/* bf16.h: bfloat16 on the host: the top 16 bits of an IEEE fp32. Rounding is to nearest, ties to
 * even, as the GPU's __float2bfloat16_rn; a NaN stays a NaN (quiet). */
#ifndef NN_BF16_H
#define NN_BF16_H

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

#endif
