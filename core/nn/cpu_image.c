/* cpu_image.c: the CPU backend's image kernels (backend.h): the face networks' input crops, the
 * affine crops of aligned faces, residualDown's padded add, conversion's 8-bit to [0, 1] and
 * blending, host memory, and the byte copies into
 * and out of any backend's memory. The references the CUDA kernels (cuda/image.cu) are held to. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../err.h"
#include "../image.h"
#include "backend.h"
#include "cpu_conv.h"
#include "cpu_image.h"

#define CROP_MAX_SIZE 1024 /* largest network input side */

/* One output row or column of TF's resize: the two source cells (-1 = outside the crop, a zero)
 * and the weight of the second. */
typedef struct tap {
    int lo, hi;
    double frac;
} tap;

static void resize_taps(tap *t, int size, int side, int off, int len)
{
    double scale = (double)side / size;
    for (int i = 0; i < size; i++) {
        double src = scale * i;
        double fl = floor(src);
        int lo = (int)fl;
        int hi = (int)ceil(src);
        if (hi > side - 1) hi = side - 1;
        t[i].frac = src - fl;
        lo -= off, hi -= off;
        t[i].lo = lo >= 0 && lo < len ? lo : -1;
        t[i].hi = hi >= 0 && hi < len ? hi : -1;
    }
}

void nn_crop_square(int *side, int *off_x, int *off_y, int w, int h, int centre)
{
    int diff = w > h ? w - h : h - w;
    /* padToSquare appends round(diff * (centre ? 0.5 : 1)) and prepends the rest */
    int after = centre ? (diff + 1) / 2 : diff;
    int before = diff - after;
    *side = w > h ? w : h;
    *off_x = w < h ? before : 0;
    *off_y = h < w ? before : 0;
}

/* dst [size, size, 3] from one crop */
static void crop_one(float *dst, const nn_crop *r, int size)
{
    VS_CHECK(size > 0 && size <= CROP_MAX_SIZE);
    VS_CHECK(r->x >= 0 && r->y >= 0 && r->w > 0 && r->h > 0);
    VS_CHECK(r->x + r->w <= r->iw && r->y + r->h <= r->ih);
    int side, off_x, off_y;
    nn_crop_square(&side, &off_x, &off_y, r->w, r->h, r->centre);
    tap tx[CROP_MAX_SIZE], ty[CROP_MAX_SIZE];
    resize_taps(tx, size, side, off_x, r->w);
    resize_taps(ty, size, side, off_y, r->h);

    static const uint8_t zero[3];
    size_t stride = (size_t)r->iw * 3;
    const uint8_t *base = r->px + (size_t)r->y * stride + (size_t)r->x * 3;
    for (int oy = 0; oy < size; oy++) {
        const uint8_t *row0 = ty[oy].lo >= 0 ? base + ty[oy].lo * stride : NULL;
        const uint8_t *row1 = ty[oy].hi >= 0 ? base + ty[oy].hi * stride : NULL;
        double fy = ty[oy].frac;
        float *out = dst + (size_t)oy * size * 3;
        for (int ox = 0; ox < size; ox++) {
            int x0 = tx[ox].lo, x1 = tx[ox].hi;
            double fx = tx[ox].frac;
            const uint8_t *tl = row0 && x0 >= 0 ? row0 + x0 * 3 : zero;
            const uint8_t *tr = row0 && x1 >= 0 ? row0 + x1 * 3 : zero;
            const uint8_t *bl = row1 && x0 >= 0 ? row1 + x0 * 3 : zero;
            const uint8_t *br = row1 && x1 >= 0 ? row1 + x1 * 3 : zero;
            for (int c = 0; c < 3; c++) {
                double top = tl[c] + (tr[c] - tl[c]) * fx;
                double bot = bl[c] + (br[c] - bl[c]) * fx;
                float v = (float)(top + (bot - top) * fy);
                out[ox * 3 + c] = (v - r->mean[c]) / r->div - r->sub;
            }
        }
    }
}

void nn_cpu_crop_resize(nn_tensor *y, const nn_crop *crops)
{
    VS_CHECK(y->dt == NN_F32 && y->c == 3 && y->h == y->w);
    const size_t per = (size_t)y->h * y->w * 3;
    for (int i = 0; i < y->n; i++) crop_one(y->d + per * i, &crops[i], y->h);
}

void nn_cpu_warp(uint8_t *dst, const nn_warp *w, int n, int size)
{
    for (int i = 0; i < n; i++) {
        img src = {w[i].iw, w[i].ih, 3, (uint8_t *)w[i].px};
        img out = {size, size, 3, dst + (size_t)i * size * size * 3};
        img_warp_affine(&out, &src, w[i].m, IMG_BORDER_REPLICATE);
    }
}

/* element (i, j, c) of sample s of t, or 0 outside it */
static float padded_at(const nn_tensor *t, int s, int i, int j, int c)
{
    if (i >= t->h || j >= t->w || c >= t->c) return 0.0f;
    return t->d[(((size_t)s * t->h + i) * t->w + j) * t->c + c];
}

void nn_cpu_add_padded(nn_tensor *y, const nn_tensor *a, const nn_tensor *b, nn_act act,
                       float alpha)
{
    VS_CHECK(y->dt == NN_F32 && a->dt == NN_F32 && b->dt == NN_F32);
    VS_CHECK(a->n == y->n && b->n == y->n);
    VS_CHECK(a->h <= y->h && a->w <= y->w && a->c <= y->c);
    VS_CHECK(b->h <= y->h && b->w <= y->w && b->c <= y->c);
    float *o = y->d;
    for (int s = 0; s < y->n; s++)
        for (int i = 0; i < y->h; i++)
            for (int j = 0; j < y->w; j++)
                for (int c = 0; c < y->c; c++)
                    *o++ = padded_at(a, s, i, j, c) + padded_at(b, s, i, j, c);
    cpu_bias_act(y->d, NULL, nn_numel(y) / (size_t)y->c, (size_t)y->c, act, alpha);
}

/* ---- conversion: 8-bit to [0, 1], blending a face back ----------------------------------------
 */

void nn_cpu_from_u8(nn_tensor *y, const uint8_t *x, float div)
{
    VS_CHECK(y->dt == NN_F32);
    size_t n = nn_numel(y);
    for (size_t i = 0; i < n; i++) y->d[i] = x[i] / div;
}

static float clamp01(float v)
{
    return v > 0.f ? (v < 1.f ? v : 1.f) : 0.f; /* a NaN goes to 0 */
}

/* bilinear sample of plane p [size, size] (stride `step` floats, offset `off`) at (u, v); outside
 * the crop zero (zero_out) or the nearest edge value */
static float sample(const float *p, int size, int step, int off, double u, double v, int zero_out)
{
    if (zero_out && (u <= -1 || v <= -1 || u >= size || v >= size)) return 0.f;
    int x0 = (int)floor(u), y0 = (int)floor(v);
    double fx = u - x0, fy = v - y0;
    float acc = 0.f;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int x = x0 + i, y = y0 + j;
            double wgt = (i ? fx : 1 - fx) * (j ? fy : 1 - fy);
            if (x < 0 || y < 0 || x >= size || y >= size) {
                if (zero_out) continue;
                x = x < 0 ? 0 : x >= size ? size - 1 : x;
                y = y < 0 ? 0 : y >= size ? size - 1 : y;
            }
            acc += (float)wgt * p[((size_t)y * size + x) * step + off];
        }
    return acc;
}

/* Keys' cubic (a = -0.5, as OpenCV's INTER_CUBIC) weights of the four taps around fraction t */
static void cubic_weights(float w[4], double t)
{
    const double a = -0.5;
    for (int i = 0; i < 4; i++) {
        double x = fabs(t - (i - 1));
        w[i] = (float)(x <= 1  ? ((a + 2) * x - (a + 3)) * x * x + 1
                       : x < 2 ? ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
                               : 0);
    }
}

/* channel c of the face [size, size, 3] at (u, v), bicubic, borders replicated */
static float sample_cubic(const float *p, int size, int c, double u, double v)
{
    int x0 = (int)floor(u), y0 = (int)floor(v);
    float wx[4], wy[4], acc = 0.f;
    cubic_weights(wx, u - x0), cubic_weights(wy, v - y0);
    for (int j = 0; j < 4; j++) {
        int y = y0 - 1 + j;
        y = y < 0 ? 0 : y >= size ? size - 1 : y;
        for (int i = 0; i < 4; i++) {
            int x = x0 - 1 + i;
            x = x < 0 ? 0 : x >= size ? size - 1 : x;
            acc += wx[i] * wy[j] * p[((size_t)y * size + x) * 3 + c];
        }
    }
    return acc;
}

/* channel c of the face at (u, v) for a frame pixel covering `step` crop pixels each way:
 * bicubic when the frame enlarges the face (step <= 1), else the mean of step x step bilinear
 * samples over the pixel's footprint (an area average, as a downscale should be) */
static float sample_face(const float *face, int size, int c, double u, double v, double step)
{
    if (step <= 1.0) return sample_cubic(face, size, c, u, v);
    int k = (int)ceil(step);
    if (k > 8) k = 8;
    float acc = 0.f;
    for (int j = 0; j < k; j++)
        for (int i = 0; i < k; i++)
            acc += sample(face, size, 3, c, u + step * ((i + 0.5) / k - 0.5),
                          v + step * ((j + 0.5) / k - 0.5), 0);
    return acc / (float)(k * k);
}

static void blend_one(const nn_blend *b)
{
    const int size = b->size;
    const double *m = b->m;
    for (int y = b->y0; y <= b->y1; y++)
        for (int x = b->x0; x <= b->x1; x++) {
            double u = m[0] * x + m[1] * y + m[2], v = m[3] * x + m[4] * y + m[5];
            float a = sample(b->mask, size, 1, 0, u, v, 1);
            if (!(a > 0.f)) continue;
            if (a > 1.f) a = 1.f;
            uint8_t *px = b->px + ((size_t)y * b->iw + x) * 3;
            for (int c = 0; c < 3; c++) {
                float f = clamp01(sample_face(b->face, size, c, u, v, b->step)) * 255.f;
                float o = (float)px[c] * (1.f - a) + f * a + 0.5f;
                px[c] = (uint8_t)(o < 0 ? 0 : o > 255 ? 255 : o);
            }
        }
}

void nn_cpu_blend(const nn_blend *b, int n)
{
    for (int i = 0; i < n; i++) {
        VS_CHECK(b[i].x0 >= 0 && b[i].y0 >= 0 && b[i].x1 < b[i].iw && b[i].y1 < b[i].ih);
        blend_one(&b[i]);
    }
}

void *nn_cpu_host_alloc(size_t bytes)
{
    return malloc(bytes ? bytes : 1);
}

void nn_cpu_host_free(void *p)
{
    free(p);
}

/* ---- backend memory: growing buffers, bytes through a backend that copies floats ------------ */

float *nn_buf_grow(nn_buf *b, const nn_backend *be, size_t words)
{
    if (words > b->words) {
        if (b->d) be->free(b->d);
        b->words = words + words / 2; /* room for a little more next time */
        b->d = be->alloc(b->words);
    }
    return b->d;
}

void nn_buf_free(nn_buf *b, const nn_backend *be)
{
    if (b->d) be->free(b->d);
    b->d = NULL;
    b->words = 0;
}

void nn_copy_in_bytes(const nn_backend *be, void *dst_dev, const void *src_host, size_t bytes)
{
    size_t words = bytes / sizeof(float), rest = bytes - words * sizeof(float);
    if (words) be->copy_in(dst_dev, src_host, words);
    if (rest) { /* the last word, padded with zeros */
        float tail = 0.0f;
        memcpy(&tail, (const char *)src_host + words * sizeof(float), rest);
        be->copy_in((float *)dst_dev + words, &tail, 1);
    }
}

void nn_copy_out_bytes(const nn_backend *be, void *dst_host, const void *src_dev, size_t bytes)
{
    size_t words = bytes / sizeof(float), rest = bytes - words * sizeof(float);
    if (words) be->copy_out(dst_host, src_dev, words);
    if (rest) {
        float tail;
        be->copy_out(&tail, (const float *)src_dev + words, 1);
        memcpy((char *)dst_host + words * sizeof(float), &tail, rest);
    }
}
