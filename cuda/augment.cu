/* augment.cu: augmentation on the GPU, the twin of core/nn/cpu_augment.c: one thread per output
 * pixel samples the uint8 crops (resident in GPU memory) bilinearly through the image's affine
 * map, after the bilinear warp for the input, and applies the LAB colour jitter. The per-image
 * transforms come from the host each iteration (a small copy before the step), so the recorded
 * step replays with new ones. The colour curves are computed exactly here (the CPU tabulates
 * them, within 2e-5). */
#include <math.h>

#include "common.cuh"

static __device__ float srgb_to_linear(float c)
{
    c = fminf(fmaxf(c, 0.f), 1.f);
    return c <= 0.04045f ? c / 12.92f : powf((c + 0.055f) / 1.055f, 2.4f);
}

static __device__ float linear_to_srgb(float c)
{
    c = fminf(fmaxf(c, 0.f), 1.f);
    return c <= 0.0031308f ? 12.92f * c : 1.055f * powf(c, 1.f / 2.4f) - 0.055f;
}

static __device__ float lab_f(float t)
{
    t = fminf(fmaxf(t, 0.f), 1.f);
    return t > 0.008856f ? cbrtf(t) : 7.787f * t + 16.f / 116.f;
}

#define AUG_FN static __device__
#include "nn/augment_math.h"

/* target pixels and masks (not warped): one thread per (image, y, x) of st x st */
static __global__ void target_kernel(nn_aug_batch b)
{
    const size_t total = (size_t)b.n * b.st * b.st;
    CU_FOR(i, total)
    {
        int x = (int)(i % b.st), y = (int)(i / b.st % b.st), img = (int)(i / ((size_t)b.st * b.st));
        const nn_aug_image *p = &b.img[img];
        const size_t face = (size_t)p->face * b.P * b.P;
        float ux = (float)((x + 0.5) / b.st), uy = (float)((y + 0.5) / b.st);
        float sx = (float)(p->h[0] * ux + p->h[1] * uy + p->h[2]);
        float sy = (float)(p->h[3] * ux + p->h[4] * uy + p->h[5]);
        if (b.target) {
            float *o = b.target + i * 3;
            float rgb[3];
            sample(rgb, b.px + face * 3, b.P, 3, sx, sy);
            if (p->colour) lab_adjust(rgb, p->lab);
            o[0] = rgb[0], o[1] = rgb[1], o[2] = rgb[2];
        }
        if (b.masks) {
            float m[NN_AUG_MASKS];
            sample(m, b.masks + face * NN_AUG_MASKS, b.P, NN_AUG_MASKS, sx, sy);
            for (int k = 0; k < NN_AUG_MASKS; k++)
                if (b.mask[k]) b.mask[k][i] = m[k];
        }
    }
}

/* input pixels (warped): one thread per (image, y, x) of si x si */
static __global__ void input_kernel(nn_aug_batch b)
{
    const size_t total = (size_t)b.n * b.si * b.si;
    CU_FOR(i, total)
    {
        int x = (int)(i % b.si), y = (int)(i / b.si % b.si), img = (int)(i / ((size_t)b.si * b.si));
        const nn_aug_image *p = &b.img[img];
        float ux = (float)((x + 0.5) / b.si), uy = (float)((y + 0.5) / b.si);
        if (p->warped) {
            float off[2];
            warp_offset(off, p, ux, uy);
            ux += off[0], uy += off[1];
        }
        float sx = (float)(p->h[0] * ux + p->h[1] * uy + p->h[2]);
        float sy = (float)(p->h[3] * ux + p->h[4] * uy + p->h[5]);
        float rgb[3];
        sample(rgb, b.px + (size_t)p->face * b.P * b.P * 3, b.P, 3, sx, sy);
        if (p->colour) lab_adjust(rgb, p->lab);
        float *o = b.input + i * 3;
        o[0] = rgb[0], o[1] = rgb[1], o[2] = rgb[2];
    }
}

void cu_augment(const nn_aug_batch *b)
{
    if (b->n <= 0) return;
    int masks = 0;
    for (int k = 0; k < NN_AUG_MASKS; k++) masks |= b->mask[k] != NULL;
    nn_aug_batch kb = *b;
    if (!masks) kb.masks = NULL;
    if (kb.target || kb.masks) {
        size_t total = (size_t)b->n * b->st * b->st;
        target_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(kb);
        KERNEL_CHECK();
    }
    if (kb.input) {
        size_t total = (size_t)b->n * b->si * b->si;
        input_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(kb);
        KERNEL_CHECK();
    }
}
