/* image_pixels.c: the pixel arithmetic of image.h (allocation, affine warps, resizing, the blur
 * score), kept apart from image.c's codecs so that what links no media library (the GPU tests and
 * benchmarks, the CPU backend's image kernels) can use it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

img *img_new(int w, int h, int c)
{
    VS_CHECK(w > 0 && h > 0 && c > 0 && c <= 4);
    img *im = vs_malloc(sizeof *im);
    im->w = w;
    im->h = h;
    im->c = c;
    im->px = vs_calloc((size_t)w * (size_t)h * (size_t)c, 1);
    return im;
}

void img_free(img *im)
{
    if (!im) return;
    free(im->px);
    free(im);
}

img *img_clone(const img *im)
{
    img *o = img_new(im->w, im->h, im->c);
    memcpy(o->px, im->px, (size_t)im->w * (size_t)im->h * (size_t)im->c);
    return o;
}

/* ---- resampling --------------------------------------------------------------------------- */

/* OpenCV's BORDER_REFLECT: fedcba|abcdefgh|hgfedcba */
static int reflect(int i, int n)
{
    if (n == 1) return 0;
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

static inline uint8_t clamp_u8(float v)
{
    return v <= 0.f ? 0 : v >= 255.f ? 255 : (uint8_t)(v + 0.5f);
}

void img_warp_affine(img *dst, const img *src, const double m[6], img_border border)
{
    VS_CHECK(dst->c == src->c);
    const int c = src->c, sw = src->w, sh = src->h;
    for (int y = 0; y < dst->h; y++) {
        uint8_t *o = dst->px + (size_t)y * (size_t)dst->w * (size_t)c;
        for (int x = 0; x < dst->w; x++, o += c) {
            double sx = m[0] * x + m[1] * y + m[2];
            double sy = m[3] * x + m[4] * y + m[5];
            /* bring far-away positions near the image (also keeps the int conversions safe) */
            if (border == IMG_BORDER_ZERO) {
                if (!(sx > -1.0 && sx < sw && sy > -1.0 && sy < sh)) {
                    memset(o, 0, (size_t)c);
                    continue;
                }
            } else if (border == IMG_BORDER_REPLICATE) {
                sx = fmin(fmax(sx, -1.0), (double)sw); /* fmax drops a NaN */
                sy = fmin(fmax(sy, -1.0), (double)sh);
            } else { /* reflection repeats with period 2n */
                sx = isfinite(sx) ? sx - floor(sx / (2.0 * sw)) * 2.0 * sw : 0.0;
                sy = isfinite(sy) ? sy - floor(sy / (2.0 * sh)) * 2.0 * sh : 0.0;
            }
            double fx0 = floor(sx), fy0 = floor(sy);
            int x0 = (int)fx0, y0 = (int)fy0;
            float ax = (float)(sx - fx0), ay = (float)(sy - fy0);
            const float wt[4] = {(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay};
            const uint8_t *p[4];
            int inside = x0 >= 0 && y0 >= 0 && x0 + 1 < sw && y0 + 1 < sh;
            for (int k = 0; k < 4; k++) {
                int xi = x0 + (k & 1), yi = y0 + (k >> 1);
                if (!inside && (xi < 0 || yi < 0 || xi >= sw || yi >= sh)) {
                    if (border == IMG_BORDER_ZERO) {
                        p[k] = NULL;
                        continue;
                    }
                    if (border == IMG_BORDER_REPLICATE) {
                        xi = xi < 0 ? 0 : xi >= sw ? sw - 1 : xi;
                        yi = yi < 0 ? 0 : yi >= sh ? sh - 1 : yi;
                    } else {
                        xi = reflect(xi, sw);
                        yi = reflect(yi, sh);
                    }
                }
                p[k] = src->px + ((size_t)yi * (size_t)sw + (size_t)xi) * (size_t)c;
            }
            for (int ch = 0; ch < c; ch++) {
                float v = 0.f;
                for (int k = 0; k < 4; k++)
                    if (p[k]) v += wt[k] * p[k][ch];
                o[ch] = clamp_u8(v);
            }
        }
    }
}

/* Resampling weights along one axis: output i = sum over taps of w * input[idx]. */
typedef struct axis_taps {
    int *count; /* [n_out] */
    int *idx;   /* [n_out * max_taps] */
    float *w;
    int max_taps;
} axis_taps;

static void axis_taps_build(axis_taps *t, int n_out, int n_in)
{
    double scale = (double)n_in / n_out;
    t->max_taps = n_out < n_in ? (int)ceil(scale) + 2 : 2;
    t->count = vs_malloc((size_t)n_out * sizeof *t->count);
    t->idx = vs_malloc((size_t)n_out * (size_t)t->max_taps * sizeof *t->idx);
    t->w = vs_malloc((size_t)n_out * (size_t)t->max_taps * sizeof *t->w);
    for (int i = 0; i < n_out; i++) {
        int *idx = t->idx + (size_t)i * (size_t)t->max_taps;
        float *w = t->w + (size_t)i * (size_t)t->max_taps;
        int n = 0;
        if (n_out < n_in) {
            /* area: output pixel i covers input [i*scale, (i+1)*scale) */
            double a = i * scale, b = (i + 1) * scale;
            for (int j = (int)floor(a); j < n_in && j < b; j++) {
                double lo = j > a ? j : a, hi = j + 1 < b ? j + 1 : b;
                if (hi <= lo) continue;
                VS_CHECK(n < t->max_taps);
                idx[n] = j;
                w[n++] = (float)((hi - lo) / scale);
            }
        } else {
            /* bilinear between pixel centres, edges replicated */
            double s = (i + 0.5) * scale - 0.5;
            if (s < 0) s = 0;
            if (s > n_in - 1) s = n_in - 1;
            int j = (int)floor(s);
            float f = (float)(s - j);
            idx[n] = j;
            w[n++] = 1.f - f;
            if (j + 1 < n_in) {
                idx[n] = j + 1;
                w[n++] = f;
            }
        }
        t->count[i] = n;
    }
}

static void axis_taps_free(axis_taps *t)
{
    free(t->count);
    free(t->idx);
    free(t->w);
}

void img_resize(img *dst, const img *src)
{
    VS_CHECK(dst->c == src->c);
    const int c = src->c;
    if (dst->w == src->w && dst->h == src->h) {
        memcpy(dst->px, src->px, (size_t)src->w * (size_t)src->h * (size_t)c);
        return;
    }
    axis_taps tx, ty;
    axis_taps_build(&tx, dst->w, src->w);
    axis_taps_build(&ty, dst->h, src->h);
    /* horizontal pass: tmp [src->h][dst->w][c] float, then vertical into dst */
    float *tmp = vs_malloc((size_t)src->h * (size_t)dst->w * (size_t)c * sizeof *tmp);
    for (int y = 0; y < src->h; y++) {
        const uint8_t *row = src->px + (size_t)y * (size_t)src->w * (size_t)c;
        float *o = tmp + (size_t)y * (size_t)dst->w * (size_t)c;
        for (int x = 0; x < dst->w; x++, o += c) {
            const int *idx = tx.idx + (size_t)x * (size_t)tx.max_taps;
            const float *w = tx.w + (size_t)x * (size_t)tx.max_taps;
            for (int ch = 0; ch < c; ch++) o[ch] = 0.f;
            for (int k = 0; k < tx.count[x]; k++)
                for (int ch = 0; ch < c; ch++) o[ch] += w[k] * row[(size_t)idx[k] * c + ch];
        }
    }
    size_t trow = (size_t)dst->w * (size_t)c;
    float *acc = vs_malloc(trow * sizeof *acc);
    for (int y = 0; y < dst->h; y++) {
        const int *idx = ty.idx + (size_t)y * (size_t)ty.max_taps;
        const float *w = ty.w + (size_t)y * (size_t)ty.max_taps;
        for (size_t i = 0; i < trow; i++) acc[i] = 0.f;
        for (int k = 0; k < ty.count[y]; k++) {
            const float *r = tmp + (size_t)idx[k] * trow;
            for (size_t i = 0; i < trow; i++) acc[i] += w[k] * r[i];
        }
        uint8_t *o = dst->px + (size_t)y * trow;
        for (size_t i = 0; i < trow; i++) o[i] = clamp_u8(acc[i]);
    }
    free(acc);
    free(tmp);
    axis_taps_free(&tx);
    axis_taps_free(&ty);
}

double img_blur_score(const img *im)
{
    const int w = im->w, h = im->h, c = im->c;
    if (w < 3 || h < 3) return 0.0;
    float *g = vs_malloc((size_t)w * (size_t)h * sizeof *g);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) {
        const uint8_t *p = im->px + i * (size_t)c;
        g[i] = c >= 3 ? 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2] : p[0];
    }
    /* [0 1 0; 1 -4 1; 0 1 0] with mirrored edges (gfedcb|abcdefgh|gfedcba), as cv2.Laplacian */
    double sum = 0.0, sum2 = 0.0;
    for (int y = 0; y < h; y++) {
        const float *up = g + (size_t)(y > 0 ? y - 1 : 1) * (size_t)w;
        const float *mid = g + (size_t)y * (size_t)w;
        const float *dn = g + (size_t)(y < h - 1 ? y + 1 : h - 2) * (size_t)w;
        for (int x = 0; x < w; x++) {
            int xl = x > 0 ? x - 1 : 1, xr = x < w - 1 ? x + 1 : w - 2;
            double l = (double)up[x] + dn[x] + mid[xl] + mid[xr] - 4.0 * mid[x];
            sum += l;
            sum2 += l * l;
        }
    }
    free(g);
    double n = (double)w * h, mean = sum / n;
    return sum2 / n - mean * mean;
}
