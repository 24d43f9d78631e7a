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

static __device__ float lab_finv(float t)
{
    return t > 0.206893f ? t * t * t : (t - 16.f / 116.f) / 7.787f;
}

/* Faceswap's random LAB adjustment on one pixel, as cpu_augment.c's lab_adjust */
static __device__ void lab_adjust(float rgb[3], const float adj[3])
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

/* out[0..c) = bilinear sample of px [size, size, c] at (sx, sy), borders replicated, / 255 */
static __device__ void sample(float *out, const uint8_t *px, int size, int c, float sx, float sy)
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

static __device__ void warp_offset(float off[2], const nn_aug_image *p, float ux, float uy)
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
        const float(*w)[NN_AUG_GRID] = p->warp[a];
        off[a] = (1 - ay) * ((1 - ax) * w[k0][i0] + ax * w[k0][i0 + 1]) +
                 ay * ((1 - ax) * w[k0 + 1][i0] + ax * w[k0 + 1][i0 + 1]);
    }
}

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
