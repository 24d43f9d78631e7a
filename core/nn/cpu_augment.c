/* cpu_augment.c: the CPU backend's augmentation, the per-pixel half of core/augment.c: LAB
 * colour jitter, the transform (rotate, zoom, shift, flip) as one affine map from output to crop
 * pixels, and for the input the random warp before it, all sampled bilinearly from the uint8
 * crops. One task per image. Semantics as backend.h's nn_aug_batch. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "../err.h"
#include "cpu_pool.h"
#include "cpu_train.h"

/* ---- colour -------------------------------------------------------------------------------- */

static float srgb_to_linear_exact(double c)
{
    return (float)(c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4));
}

static float linear_to_srgb_exact(double c)
{
    return (float)(c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1 / 2.4) - 0.055);
}

static float lab_f_exact(double t)
{
    return (float)(t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116.0);
}

/* The three curves tabulated over [0, 1] and interpolated (error below 2e-5): a pow per channel
 * and pixel made the colour jitter most of augment_batch's time. */
#define LUT_N 4096
static float lut[3][LUT_N + 2];
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static void lut_init(void)
{
    for (int i = 0; i <= LUT_N; i++) {
        double t = (double)i / LUT_N;
        lut[0][i] = srgb_to_linear_exact(t);
        lut[1][i] = linear_to_srgb_exact(t);
        lut[2][i] = lab_f_exact(t);
    }
    for (int k = 0; k < 3; k++) lut[k][LUT_N + 1] = lut[k][LUT_N];
}

static float lut_at(int k, float t)
{
    t = t >= 0.f ? (t < 1.f ? t : 1.f) : 0.f;
    float f = t * LUT_N;
    int i = (int)f;
    float a = f - (float)i;
    return lut[k][i] + a * (lut[k][i + 1] - lut[k][i]);
}

static float srgb_to_linear(float c)
{
    return lut_at(0, c);
}

static float linear_to_srgb(float c)
{
    return lut_at(1, c);
}

static float lab_f(float t)
{
    return lut_at(2, t);
}

static float lab_finv(float t)
{
    return t > 0.206893f ? t * t * t : (t - 16.f / 116.f) / 7.787f;
}

/* Faceswap's random LAB adjustment (ImageAugmentation._random_lab) on one pixel: sRGB (D65, as
 * OpenCV converts) to LAB normalised to [0, 1] (L / 100, (a + 128) / 255, (b + 128) / 255); an
 * adjustment d > 0 moves a channel towards 1 by the fraction d, d < 0 scales it by 1 + d. */
static void lab_adjust(float rgb[3], const float adj[3])
{
    float r = srgb_to_linear(rgb[0]), g = srgb_to_linear(rgb[1]), b = srgb_to_linear(rgb[2]);
    float x = (0.412453f * r + 0.357580f * g + 0.180423f * b) / 0.950456f;
    float y = 0.212671f * r + 0.715160f * g + 0.072169f * b;
    float z = (0.019334f * r + 0.119193f * g + 0.950227f * b) / 1.088754f;
    float fx = lab_f(x), fy = lab_f(y), fz = lab_f(z);
    float lab[3] = {(116.f * fy - 16.f) / 100.f, (500.f * (fx - fy) + 128.f) / 255.f,
                    (200.f * (fy - fz) + 128.f) / 255.f};
    for (int i = 0; i < 3; i++) {
        float d = adj[i], v = lab[i];
        lab[i] = d > 0 ? (1.f - v) * d + v : v * (1.f + d);
    }
    fy = (lab[0] * 100.f + 16.f) / 116.f;
    fx = fy + (lab[1] * 255.f - 128.f) / 500.f;
    fz = fy - (lab[2] * 255.f - 128.f) / 200.f;
    x = lab_finv(fx) * 0.950456f, y = lab_finv(fy), z = lab_finv(fz) * 1.088754f;
    rgb[0] = linear_to_srgb(3.240479f * x - 1.537150f * y - 0.498535f * z);
    rgb[1] = linear_to_srgb(-0.969256f * x + 1.875991f * y + 0.041556f * z);
    rgb[2] = linear_to_srgb(0.055648f * x - 0.204043f * y + 1.057311f * z);
}

/* ---- geometry ------------------------------------------------------------------------------ */

/* out[0..c) = bilinear sample of px [h=size, w=size, c] at crop pixel (sx, sy) (pixel centres at
 * integers), borders replicated (as Faceswap's transform), scaled by 1 / 255 */
static void sample(float *out, const uint8_t *px, int size, int c, float sx, float sy)
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
static void warp_offset(float off[2], const nn_aug_image *p, float ux, float uy)
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

/* image b of the batch */
static void augment_one(const nn_aug_batch *bt, int b)
{
    const nn_aug_image *p = &bt->img[b];
    const int P = bt->P, si = bt->si, st = bt->st;
    const uint8_t *px = bt->px + (size_t)p->face * P * P * 3;
    const uint8_t *mk = bt->masks ? bt->masks + (size_t)p->face * P * P * NN_AUG_MASKS : NULL;
    if (p->colour) pthread_once(&lut_once, lut_init);
    const double *h = p->h;

    /* target [st, st, 3] and masks [st, st] */
    float *tgt = bt->target ? bt->target + (size_t)b * st * st * 3 : NULL;
    float *m_out[NN_AUG_MASKS];
    int any_mask = 0;
    for (int k = 0; k < NN_AUG_MASKS; k++) {
        m_out[k] = bt->mask[k] && mk ? bt->mask[k] + (size_t)b * st * st : NULL;
        any_mask |= m_out[k] != NULL;
    }
    for (int y = 0; y < st && (tgt || any_mask); y++)
        for (int x = 0; x < st; x++) {
            /* as the input's positions below, so that without a warp both are the same */
            float ux = (float)((x + 0.5) / st), uy = (float)((y + 0.5) / st);
            float sx = (float)(h[0] * ux + h[1] * uy + h[2]);
            float sy = (float)(h[3] * ux + h[4] * uy + h[5]);
            size_t o = (size_t)y * st + x;
            if (tgt) {
                sample(tgt + 3 * o, px, P, 3, sx, sy);
                if (p->colour) lab_adjust(tgt + 3 * o, p->lab);
            }
            if (any_mask) {
                float m[NN_AUG_MASKS];
                sample(m, mk, P, NN_AUG_MASKS, sx, sy);
                for (int k = 0; k < NN_AUG_MASKS; k++)
                    if (m_out[k]) m_out[k][o] = m[k];
            }
        }

    /* input [si, si, 3]: the same transform after the warp */
    if (!bt->input) return;
    float *in = bt->input + (size_t)b * si * si * 3;
    for (int y = 0; y < si; y++)
        for (int x = 0; x < si; x++) {
            float ux = (float)((x + 0.5) / si), uy = (float)((y + 0.5) / si);
            if (p->warped) {
                float off[2];
                warp_offset(off, p, ux, uy);
                ux += off[0], uy += off[1];
            }
            float sx = (float)(h[0] * ux + h[1] * uy + h[2]);
            float sy = (float)(h[3] * ux + h[4] * uy + h[5]);
            float *o = in + ((size_t)y * si + x) * 3;
            sample(o, px, P, 3, sx, sy);
            if (p->colour) lab_adjust(o, p->lab);
        }
}

void cpu_augment_image(const nn_aug_batch *b, int i)
{
    augment_one(b, i);
}

static void augment_task(void *ctx, int b, int worker)
{
    augment_one(ctx, b);
}

void cpu_augment(const nn_aug_batch *b)
{
    if (b->n > 0) cpu_pool_run(augment_task, (void *)b, b->n);
}
