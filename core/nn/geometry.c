/* geometry.c: output sizes and TensorFlow-style padding of convolutions and pools, folding a
 * batch norm into the convolution before it, and converting kernels between layouts (see
 * backend.h). */
#include "backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../err.h"

int nn_out_size(int in, int k, int stride, nn_pad_mode mode)
{
    VS_CHECK(in >= 0 && k >= 1 && stride >= 1);
    if (mode == NN_PAD_SAME) return (in + stride - 1) / stride; /* ceil(in / stride) */
    return in < k ? 0 : (in - k) / stride + 1;
}

/* TF "same": the total padding that makes out = ceil(in/stride) windows fit, the odd cell going
 * bottom/right. "valid" never pads. */
void nn_pad_for(int *pad_lo, int *pad_hi, int in, int k, int stride, nn_pad_mode mode)
{
    int total = 0;
    if (mode == NN_PAD_SAME) {
        int out = nn_out_size(in, k, stride, mode);
        total = (out - 1) * stride + k - in;
        if (total < 0) total = 0;
    }
    *pad_lo = total / 2;
    *pad_hi = total - total / 2;
}

void nn_conv_geometry(nn_conv_desc *d, int h, int w, int kh, int kw, int sh, int sw,
                      nn_pad_mode mode)
{
    *d = (nn_conv_desc){.kh = kh, .kw = kw, .sh = sh, .sw = sw, .act = NN_ACT_NONE};
    nn_pad_for(&d->pad_t, &d->pad_b, h, kh, sh, mode);
    nn_pad_for(&d->pad_l, &d->pad_r, w, kw, sw, mode);
}

/* w: [.., cout] with cout innermost, so element i belongs to output channel i % cout. */
void nn_fold_batchnorm(float *w, float *b_out, const float *b, size_t w_count, int cout,
                       const float *gamma, const float *beta, const float *mean, const float *var,
                       float eps)
{
    VS_CHECK(cout > 0 && w_count % (size_t)cout == 0);
    float *s = vs_malloc((size_t)cout * sizeof *s);
    for (int c = 0; c < cout; c++) {
        s[c] = gamma[c] / sqrtf(var[c] + eps);
        b_out[c] = beta[c] + ((b ? b[c] : 0.0f) - mean[c]) * s[c];
    }
    for (size_t i = 0; i < w_count; i += (size_t)cout)
        for (int c = 0; c < cout; c++) w[i + c] *= s[c];
    free(s);
}

void nn_conv_weights_convert(float *dst, const float *src, size_t k, int cout,
                             nn_weight_layout from, nn_weight_layout to)
{
    VS_CHECK(dst != src);
    const size_t n = (size_t)cout;
    if (from == to) {
        memcpy(dst, src, k * n * sizeof(float));
    } else if (from == NN_LAYOUT_HWIO) { /* [k, cout] -> [cout, k] */
        for (size_t i = 0; i < k; i++)
            for (size_t o = 0; o < n; o++) dst[o * k + i] = src[i * n + o];
    } else {
        for (size_t o = 0; o < n; o++)
            for (size_t i = 0; i < k; i++) dst[i * n + o] = src[o * k + i];
    }
}
