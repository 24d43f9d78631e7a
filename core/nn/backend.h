/* backend.h: the backend interface. All tensor arithmetic goes through one of these structs of
 * function pointers; the CPU backend (core/nn/cpu_*.c) is the reference, the CUDA backend
 * (cuda/) implements the same calls. Weights are laid out as TensorFlow stores them:
 *   conv2d     w: [kh, kw, cin, cout]   b: [cout]
 *   depthwise  w: [kh, kw, c]           b: [c]      (channel multiplier 1)
 *   dense      w: [in, out]             b: [out]
 * Outputs first, then inputs, then sizes/descriptors. y must already have the output shape. */
#ifndef NN_BACKEND_H
#define NN_BACKEND_H

#include "tensor.h"

typedef enum nn_act {
    NN_ACT_NONE,
    NN_ACT_RELU,
    NN_ACT_RELU6,
    NN_ACT_LEAKY, /* x > 0 ? x : alpha * x */
} nn_act;

typedef enum nn_pad_mode {
    NN_PAD_VALID,
    NN_PAD_SAME, /* TensorFlow "same": extra padding goes bottom/right */
} nn_pad_mode;

typedef struct nn_conv_desc {
    int kh, kw;
    int sh, sw;
    int pad_t, pad_l, pad_b, pad_r;
    nn_act act;  /* fused after the bias */
    float alpha; /* slope for NN_ACT_LEAKY */
} nn_conv_desc;

typedef enum nn_pool_kind { NN_POOL_MAX, NN_POOL_AVG } nn_pool_kind;

typedef struct nn_pool_desc {
    nn_pool_kind kind;
    int kh, kw;
    int sh, sw;
    int pad_t, pad_l, pad_b, pad_r; /* padded cells are ignored (TF: not counted in the average) */
} nn_pool_desc;

typedef struct nn_backend {
    const char *name;

    float *(*alloc)(size_t n_floats);
    void (*free)(float *p);
    void (*copy_in)(float *dst_dev, const float *src_host, size_t n_floats);
    void (*copy_out)(float *dst_host, const float *src_dev, size_t n_floats);
    void (*sync)(void);

    /* y: [n, oh, ow, cout]   x: [n, h, w, cin] */
    void (*conv2d)(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                   const nn_conv_desc *d);
    /* y: [n, oh, ow, c]      x: [n, h, w, c] */
    void (*depthwise)(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                      const nn_conv_desc *d);
    void (*pool)(nn_tensor *y, const nn_tensor *x, const nn_pool_desc *d);
    /* y: [n, out]   x: [n, in] */
    void (*dense)(float *y, const float *x, const float *w, const float *b, int n, int in, int out,
                  nn_act act, float alpha);
    /* in place */
    void (*act)(float *x, size_t n, nn_act act, float alpha);
    /* y = a + b (y may alias a or b) */
    void (*add)(float *y, const float *a, const float *b, size_t n);
    /* x[.., ch] = x[.., ch] * scale[ch] + bias[ch], in place; scale may be NULL (bias only) */
    void (*scale_bias)(nn_tensor *x, const float *scale, const float *bias);
} nn_backend;

const nn_backend *nn_cpu_backend(void);

/* Worker threads for the CPU backend (0 = one per online CPU). Also sets OpenBLAS's count. */
void nn_cpu_set_threads(int n);
int nn_cpu_threads(void);

/* Output size and padding of a convolution or pool along one axis. */
int nn_out_size(int in, int k, int stride, nn_pad_mode mode);
void nn_pad_for(int *pad_lo, int *pad_hi, int in, int k, int stride, nn_pad_mode mode);

/* Fills the geometry of d for a kh x kw kernel (act NONE). */
void nn_conv_geometry(nn_conv_desc *d, int h, int w, int kh, int kw, int sh, int sw,
                      nn_pad_mode mode);

/* Batch-norm folding: w' = w * gamma / sqrt(var + eps), b' = beta + (b - mean) * gamma / sqrt(..).
 * w: [.., cout] with cout innermost (conv2d [kh,kw,cin,cout], depthwise [kh,kw,c]); b may be NULL
 * (treated as zeros) and is written to b_out ([cout]). */
void nn_fold_batchnorm(float *w, float *b_out, const float *b, size_t w_count, int cout,
                       const float *gamma, const float *beta, const float *mean, const float *var,
                       float eps);

#endif
