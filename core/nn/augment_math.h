/* augment_math.h: the per-pixel arithmetic of augmentation, shared by the CPU backend
 * (core/nn/cpu_augment.c) and its CUDA twin (cuda/augment.cu) so the two cannot drift: LAB colour
 * jitter (and the sRGB <-> LAB conversion core/convert.c's colour transfer uses), the bilinear
 * sample of a uint8 crop, the warp offset. The includer defines AUG_FN (the
 * functions' qualifiers) and the colour curves srgb_to_linear, linear_to_srgb and lab_f first
 * (the CPU tabulates them, the GPU computes them). */
#ifndef NN_AUGMENT_MATH_H
#define NN_AUGMENT_MATH_H

#include "backend.h"

AUG_FN float lab_finv(float t)
{
    return t > 0.206893f ? t * t * t : (t - 16.f / 116.f) / 7.787f;
}

/* sRGB (D65, as OpenCV converts) to LAB normalised to [0, 1]: L / 100, (a + 128) / 255,
 * (b + 128) / 255; and back. */
AUG_FN void lab_from_rgb(float lab[3], const float rgb[3])
{
    float r = srgb_to_linear(rgb[0]), g = srgb_to_linear(rgb[1]), b = srgb_to_linear(rgb[2]);
    float x = (0.412453f * r + 0.357580f * g + 0.180423f * b) / 0.950456f;
    float y = 0.212671f * r + 0.715160f * g + 0.072169f * b;
    float z = (0.019334f * r + 0.119193f * g + 0.950227f * b) / 1.088754f;
    float fx = lab_f(x), fy = lab_f(y), fz = lab_f(z);
    lab[0] = (116.f * fy - 16.f) / 100.f;
    lab[1] = (500.f * (fx - fy) + 128.f) / 255.f;
    lab[2] = (200.f * (fy - fz) + 128.f) / 255.f;
}

AUG_FN void rgb_from_lab(float rgb[3], const float lab[3])
{
    float fy = (lab[0] * 100.f + 16.f) / 116.f;
    float fx = fy + (lab[1] * 255.f - 128.f) / 500.f;
    float fz = fy - (lab[2] * 255.f - 128.f) / 200.f;
    float x = lab_finv(fx) * 0.950456f, y = lab_finv(fy), z = lab_finv(fz) * 1.088754f;
    rgb[0] = linear_to_srgb(3.240479f * x - 1.537150f * y - 0.498535f * z);
    rgb[1] = linear_to_srgb(-0.969256f * x + 1.875991f * y + 0.041556f * z);
    rgb[2] = linear_to_srgb(0.055648f * x - 0.204043f * y + 1.057311f * z);
}

/* Faceswap's random LAB adjustment (ImageAugmentation._random_lab) on one pixel: in normalised
 * LAB, an adjustment d > 0 moves a channel towards 1 by the fraction d, d < 0 scales it by
 * 1 + d. */
AUG_FN void lab_adjust(float rgb[3], const float adj[3])
{
    float lab[3];
    lab_from_rgb(lab, rgb);
    for (int i = 0; i < 3; i++) {
        float d = adj[i], v = lab[i];
        lab[i] = d > 0 ? (1.f - v) * d + v : v * (1.f + d);
    }
    rgb_from_lab(rgb, lab);
}

/* ---- geometry ------------------------------------------------------------------------------ */

/* out[0..c) = bilinear sample of px [h=size, w=size, c] at crop pixel (sx, sy) (pixel centres at
 * integers), borders replicated (as Faceswap's transform), scaled by 1 / 255 */
AUG_FN void sample(float *out, const uint8_t *px, int size, int c, float sx, float sy)
{
    const float hi = (float)(size - 1);
    sx = sx >= 0.f ? (sx < hi ? sx : hi) : 0.f; /* a NaN goes to 0 */
    sy = sy >= 0.f ? (sy < hi ? sy : hi) : 0.f;
    int x0 = (int)sx, y0 = (int)sy;
    int x1 = x0 + 1 < size ? x0 + 1 : x0, y1 = y0 + 1 < size ? y0 + 1 : y0;
    float ax = sx - (float)x0, ay = sy - (float)y0;
    const uint8_t *p00 = px + ((size_t)y0 * size + x0) * c,
                  *p01 = px + ((size_t)y0 * size + x1) * c;
    const uint8_t *p10 = px + ((size_t)y1 * size + x0) * c,
                  *p11 = px + ((size_t)y1 * size + x1) * c;
    const float s = 1.f / 255.f;
    float w00 = (1 - ax) * (1 - ay) * s, w01 = ax * (1 - ay) * s, w10 = (1 - ax) * ay * s,
          w11 = ax * ay * s;
    for (int ch = 0; ch < c; ch++)
        out[ch] = w00 * p00[ch] + w01 * p01[ch] + w10 * p10[ch] + w11 * p11[ch];
}

/* the warp offset at normalised u: bilinear in the control grid, whose nodes sit at i / 4 from
 * edge to edge (Faceswap resizes its 5x5 map to 1.25 P and keeps the central P) */
AUG_FN void warp_offset(float off[2], const nn_aug_image *p, float ux, float uy)
{
    const int g = NN_AUG_GRID - 1;
    float gx = ux * g, gy = uy * g;
    gx = gx >= 0.f ? (gx < g ? gx : (float)g) : 0.f;
    gy = gy >= 0.f ? (gy < g ? gy : (float)g) : 0.f;
    int i0 = (int)gx, k0 = (int)gy;
    if (i0 > g - 1) i0 = g - 1;
    if (k0 > g - 1) k0 = g - 1;
    float ax = gx - (float)i0, ay = gy - (float)k0;
    for (int a = 0; a < 2; a++) {
        const float(*w)[NN_AUG_GRID] = p->warp[a]; /* [row y][column x] */
        off[a] = (1 - ay) * ((1 - ax) * w[k0][i0] + ax * w[k0][i0 + 1]) +
                 ay * ((1 - ax) * w[k0 + 1][i0] + ax * w[k0 + 1][i0 + 1]);
    }
}

#endif
