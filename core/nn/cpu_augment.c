/* cpu_augment.c: the CPU backend's augmentation, the per-pixel half of core/augment.c: LAB
 * colour jitter, the transform (rotate, zoom, shift, flip) as one affine map from output to crop
 * pixels, and for the input the random warp before it, all sampled bilinearly from the uint8
 * crops. One task per image. Semantics as backend.h's nn_aug_batch. */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "../err.h"
#include "colour.h"
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

#define AUG_FN static
#include "augment_math.h"

void nn_rgb_to_lab(float *lab, const float *rgb, size_t n)
{
    pthread_once(&lut_once, lut_init);
    for (size_t i = 0; i < n; i++) lab_from_rgb(lab + 3 * i, rgb + 3 * i);
}

void nn_lab_to_rgb(float *rgb, const float *lab, size_t n)
{
    pthread_once(&lut_once, lut_init);
    for (size_t i = 0; i < n; i++) rgb_from_lab(rgb + 3 * i, lab + 3 * i);
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
