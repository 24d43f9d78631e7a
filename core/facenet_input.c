/* facenet_input.c: face crops and network input tensors exactly as face-api builds them from an
 * image tensor (see facenet_input.h), plus the backend-memory bookkeeping of the face networks. */
#include "facenet_input.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

nn_crop fni_crop(const fn_image *im, const fni_rect *r, fni_pad pad, const float mean[3], float div,
                 float sub)
{
    return (nn_crop){.px = im->px,
                     .iw = im->w,
                     .ih = im->h,
                     .x = r->x,
                     .y = r->y,
                     .w = r->w,
                     .h = r->h,
                     .centre = pad == FNI_PAD_CENTRE,
                     .mean = {mean[0], mean[1], mean[2]},
                     .div = div,
                     .sub = sub};
}

fn_image fni_stage_image(nn_buf *st, const nn_backend *be, const img *im)
{
    VS_CHECK(im->c == 3);
    size_t bytes = (size_t)im->w * im->h * 3;
    if (be->host_memory) return (fn_image){im->px, im->w, im->h};
    float *d = nn_buf_grow(st, be, nn_byte_words(bytes));
    nn_copy_in_bytes(be, d, im->px, bytes);
    return (fn_image){(const uint8_t *)d, im->w, im->h};
}

int fni_batch(const nn_backend *be, int gpu_batch, int cpu_batch)
{
    return be->host_memory ? cpu_batch : gpu_batch;
}

int fni_pass(nn_crop *crops, const nn_backend *be, int n, int cap)
{
    if (be->host_memory || n <= 0) return n;
    int p = 1;
    while (p < n) p *= 2;
    if (p > cap) p = cap;
    for (int i = n; i < p; i++) crops[i] = crops[n - 1];
    return p;
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

int fni_box_rect(fni_rect *r, const fn_box *box, int img_w, int img_h)
{
    double rw = 1.0 / img_w, rh = 1.0 / img_h;
    return fni_clip(r, box->x * rw * img_w, box->y * rh * img_h, box->w * rw * img_w,
                    box->h * rh * img_h, img_w, img_h);
}
