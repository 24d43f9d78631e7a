/* ohwi_backend.h: the CPU backend with its conv2d kernels kept in OHWI ([cout, kh, kw, cin], the
 * CUDA backend's layout), so that the conversions model.c and the face networks make on the way
 * in and out are tested on every machine, GPU or not: it must train exactly as the CPU does. */
#ifndef VS_TEST_OHWI_BACKEND_H
#define VS_TEST_OHWI_BACKEND_H

#include <stdlib.h>

#include "nn/backend.h"

static nn_backend ohwi_be;

/* [cout, kh, kw, cin] -> [kh, kw, cin, cout] into a fresh buffer */
static float *ohwi_to_hwio(const float *w, const nn_conv_desc *d, int cin, int cout)
{
    size_t k = (size_t)d->kh * d->kw * cin;
    float *t = malloc(k * (size_t)cout * sizeof *t);
    if (!t) abort();
    nn_conv_weights_convert(t, w, k, cout, NN_LAYOUT_OHWI, NN_LAYOUT_HWIO);
    return t;
}

static void ohwi_conv2d(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                        const nn_conv_desc *d)
{
    const int r = d->shuffle > 1 ? d->shuffle : 1; /* y may be the pixel-shuffled output */
    float *t = ohwi_to_hwio(w, d, x->c, y->c * r * r);
    nn_cpu_backend()->conv2d(y, x, t, b, d);
    free(t);
}

static void ohwi_conv2d_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                                 const nn_conv_desc *d, nn_accum mode)
{
    float *t = ohwi_to_hwio(w, d, dx->c, dy->c);
    nn_cpu_backend()->conv2d_bwd_data(dx, dy, t, d, mode);
    free(t);
}

static void ohwi_conv2d_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                   const nn_conv_desc *d, nn_accum mode)
{
    size_t k = (size_t)d->kh * d->kw * x->c;
    float *t = ohwi_to_hwio(dw, d, x->c, dy->c);
    nn_cpu_backend()->conv2d_bwd_filter(t, db, dy, x, d, mode);
    nn_conv_weights_convert(dw, t, k, dy->c, NN_LAYOUT_HWIO, NN_LAYOUT_OHWI);
    free(t);
}

static const nn_backend *ohwi_backend(void)
{
    ohwi_be = *nn_cpu_backend();
    ohwi_be.name = "cpu-ohwi";
    ohwi_be.conv_layout = NN_LAYOUT_OHWI;
    ohwi_be.conv2d = ohwi_conv2d;
    ohwi_be.conv2d_bwd_data = ohwi_conv2d_bwd_data;
    ohwi_be.conv2d_bwd_filter = ohwi_conv2d_bwd_filter;
    return &ohwi_be;
}

#endif
