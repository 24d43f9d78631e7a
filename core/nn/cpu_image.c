/* cpu_image.c: the CPU backend's image kernels (backend.h): the face networks' input crops, the
 * affine crops of aligned faces, residualDown's padded add, host memory, and the byte copies into
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

void *nn_cpu_host_alloc(size_t bytes)
{
    return malloc(bytes ? bytes : 1);
}

void nn_cpu_host_free(void *p)
{
    free(p);
}

/* ---- bytes through a backend that copies floats -------------------------------------------- */

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
