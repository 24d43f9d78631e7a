/* facenet_input.c: face crops and network input tensors exactly as face-api builds them from an
 * image tensor (see facenet_input.h), plus the backend-memory bookkeeping of the face networks. */
#include "facenet_input.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FNI_MAX_SIZE 1024 /* largest network input side */

int fni_clip(fni_rect *out, double x, double y, double w, double h, int img_w, int img_h)
{
    double cx = fmax(x, 0), cy = fmax(y, 0);
    double cw = fmin(x + w - cx, img_w - cx), ch = fmin(y + h - cy, img_h - cy);
    out->x = (int)floor(cx);
    out->y = (int)floor(cy);
    /* a box far outside the image can have any width; clamp before converting to int */
    out->w = (int)floor(fmax(fmin(cw, img_w), -1));
    out->h = (int)floor(fmax(fmin(ch, img_h), -1));
    return out->w > 0 && out->h > 0 && out->x < img_w && out->y < img_h;
}

void fni_square(int *side, int *off_x, int *off_y, int w, int h, fni_pad pad)
{
    int diff = w > h ? w - h : h - w;
    /* padToSquare appends round(diff * (centre ? 0.5 : 1)) and prepends the rest */
    int after = pad == FNI_PAD_CENTRE ? (diff + 1) / 2 : diff;
    int before = diff - after;
    *side = w > h ? w : h;
    *off_x = w < h ? before : 0;
    *off_y = h < w ? before : 0;
}

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

void fni_crop_resize(float *dst, const img *im, const fni_rect *r, fni_pad pad, int size,
                     const fni_norm *norm)
{
    VS_CHECK(im->c == 3 && size > 0 && size <= FNI_MAX_SIZE);
    VS_CHECK(r->x >= 0 && r->y >= 0 && r->w > 0 && r->h > 0);
    VS_CHECK(r->x + r->w <= im->w && r->y + r->h <= im->h);
    int side, off_x, off_y;
    fni_square(&side, &off_x, &off_y, r->w, r->h, pad);
    tap tx[FNI_MAX_SIZE], ty[FNI_MAX_SIZE];
    resize_taps(tx, size, side, off_x, r->w);
    resize_taps(ty, size, side, off_y, r->h);

    static const uint8_t zero[3];
    size_t stride = (size_t)im->w * 3;
    const uint8_t *base = im->px + (size_t)r->y * stride + (size_t)r->x * 3;
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
                out[ox * 3 + c] = (v - norm->mean[c]) / norm->div - norm->sub;
            }
        }
    }
}

float *fni_alloc(fni_mem *m, size_t n)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->bufs = vs_realloc(m->bufs, (size_t)m->cap * sizeof *m->bufs);
    }
    float *p = m->be->alloc(n ? n : 1);
    VS_CHECK(p != NULL);
    m->bufs[m->n++] = p;
    return p;
}

float *fni_upload(fni_mem *m, const float *host, size_t n)
{
    float *p = fni_alloc(m, n);
    m->be->copy_in(p, host, n);
    return p;
}

float *fni_upload_conv(fni_mem *m, const float *host, size_t k, int cout)
{
    if (m->be->conv_layout == NN_LAYOUT_HWIO) return fni_upload(m, host, k * (size_t)cout);
    float *t = vs_malloc(k * (size_t)cout * sizeof *t);
    nn_conv_weights_convert(t, host, k, cout, NN_LAYOUT_HWIO, m->be->conv_layout);
    float *p = fni_upload(m, t, k * (size_t)cout);
    free(t);
    return p;
}

nn_tensor fni_tensor(fni_mem *m, int n, int h, int w, int c)
{
    nn_tensor t = {.n = n, .h = h, .w = w, .c = c};
    t.d = fni_alloc(m, nn_numel(&t));
    return t;
}

void fni_mem_free(fni_mem *m)
{
    for (int i = 0; i < m->n; i++) m->be->free(m->bufs[i]);
    free(m->bufs);
    m->bufs = NULL;
    m->n = m->cap = 0;
}

const float *fni_get(nn_weights *w, const char *name, vs_err *e, int ndim, const int *shape)
{
    return nn_weights_get(w, name, ndim, shape, e);
}

int fni_box_rect(fni_rect *r, const fn_box *box, const img *im)
{
    double rw = 1.0 / im->w, rh = 1.0 / im->h;
    return fni_clip(r, box->x * rw * im->w, box->y * rh * im->h, box->w * rw * im->w,
                    box->h * rh * im->h, im->w, im->h);
}
