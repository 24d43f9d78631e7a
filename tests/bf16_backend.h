/* bf16_backend.h: the CPU backend with activations, their gradients and the weights the layers
 * read in bfloat16 (train_dtype NN_BF16), as the CUDA backend keeps them in its bf16 precision:
 * every operation widens its bf16 operands to fp32, runs the CPU's operation and rounds what it
 * writes back to bf16. It is the reference for what bf16 training means, and it lets model.c's
 * and step.c's bf16 paths (the weight copy, the input and output copies, the typed offsets) be
 * tested on every machine, GPU or not. */
#ifndef VS_TEST_BF16_BACKEND_H
#define VS_TEST_BF16_BACKEND_H

#include <stdlib.h>

#include "nn/backend.h"

static nn_backend bf16_be;

static const nn_backend *bf_cpu(void)
{
    return nn_cpu_backend();
}

/* t (bf16) widened into a new fp32 tensor of its shape */
static nn_tensor bf_wide(const nn_tensor *t)
{
    if (t->dt != NN_BF16) abort(); /* the interface says bf16 here */
    nn_tensor w = nn_tensor_new(t->n, t->h, t->w, t->c);
    bf_cpu()->convert(&w, t);
    return w;
}

/* fp32 r rounded into t (bf16); r freed */
static void bf_narrow(nn_tensor *t, nn_tensor *r)
{
    bf_cpu()->convert(t, r);
    nn_tensor_free(r);
}

/* n bf16 weights widened into a new fp32 buffer */
static float *bf_wide_w(const float *w, size_t n)
{
    nn_tensor src = nn_rows((float *)w, 1, (int)n);
    src.dt = NN_BF16;
    nn_tensor t = bf_wide(&src);
    return t.d;
}

/* an output: its current values (accumulate) or its shape (overwrite), in fp32 */
static nn_tensor bf_out(const nn_tensor *t, nn_accum mode)
{
    if (mode == NN_ACCUMULATE) return bf_wide(t);
    return nn_tensor_new(t->n, t->h, t->w, t->c);
}

static void bf_conv2d(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                      const nn_conv_desc *d)
{
    const int r = d->shuffle > 1 ? d->shuffle : 1;
    nn_tensor wx = bf_wide(x), wy = bf_out(y, NN_OVERWRITE);
    float *ww = bf_wide_w(w, (size_t)d->kh * d->kw * x->c * y->c * r * r);
    bf_cpu()->conv2d(&wy, &wx, ww, b, d);
    bf_narrow(y, &wy);
    nn_tensor_free(&wx), free(ww);
}

static void bf_depthwise(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                         const nn_conv_desc *d)
{
    nn_tensor wx = bf_wide(x), wy = bf_out(y, NN_OVERWRITE);
    float *ww = bf_wide_w(w, (size_t)d->kh * d->kw * x->c);
    bf_cpu()->depthwise(&wy, &wx, ww, b, d);
    bf_narrow(y, &wy);
    nn_tensor_free(&wx), free(ww);
}

static void bf_pool(nn_tensor *y, const nn_tensor *x, const nn_pool_desc *d)
{
    nn_tensor wx = bf_wide(x), wy = bf_out(y, NN_OVERWRITE);
    bf_cpu()->pool(&wy, &wx, d);
    bf_narrow(y, &wy);
    nn_tensor_free(&wx);
}

static void bf_dense(nn_tensor *y, const nn_tensor *x, const float *w, const float *b, nn_act act,
                     float alpha)
{
    nn_tensor wx = bf_wide(x), wy = bf_out(y, NN_OVERWRITE);
    float *ww = bf_wide_w(w, (size_t)x->h * x->w * x->c * y->h * y->w * y->c);
    bf_cpu()->dense(&wy, &wx, ww, b, act, alpha);
    bf_narrow(y, &wy);
    nn_tensor_free(&wx), free(ww);
}

static void bf_act(nn_tensor *x, nn_act act, float alpha)
{
    nn_tensor wx = bf_wide(x);
    bf_cpu()->act(&wx, act, alpha);
    bf_narrow(x, &wx);
}

static void bf_add(nn_tensor *y, const nn_tensor *a, const nn_tensor *b)
{
    nn_tensor wa = bf_wide(a), wb = bf_wide(b), wy = bf_out(y, NN_OVERWRITE);
    bf_cpu()->add(&wy, &wa, &wb);
    bf_narrow(y, &wy);
    nn_tensor_free(&wa), nn_tensor_free(&wb);
}

static void bf_conv2d_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                               const nn_conv_desc *d, nn_accum mode)
{
    nn_tensor wdy = bf_wide(dy), wdx = bf_out(dx, mode);
    float *ww = bf_wide_w(w, (size_t)d->kh * d->kw * dx->c * dy->c);
    bf_cpu()->conv2d_bwd_data(&wdx, &wdy, ww, d, mode);
    bf_narrow(dx, &wdx);
    nn_tensor_free(&wdy), free(ww);
}

static void bf_conv2d_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                 const nn_conv_desc *d, nn_accum mode)
{
    nn_tensor wdy = bf_wide(dy), wx = bf_wide(x);
    bf_cpu()->conv2d_bwd_filter(dw, db, &wdy, &wx, d, mode);
    nn_tensor_free(&wdy), nn_tensor_free(&wx);
}

static void bf_depthwise_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                                  const nn_conv_desc *d, nn_accum mode)
{
    nn_tensor wdy = bf_wide(dy), wdx = bf_out(dx, mode);
    float *ww = bf_wide_w(w, (size_t)d->kh * d->kw * dx->c);
    bf_cpu()->depthwise_bwd_data(&wdx, &wdy, ww, d, mode);
    bf_narrow(dx, &wdx);
    nn_tensor_free(&wdy), free(ww);
}

static void bf_depthwise_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                    const nn_conv_desc *d, nn_accum mode)
{
    nn_tensor wdy = bf_wide(dy), wx = bf_wide(x);
    bf_cpu()->depthwise_bwd_filter(dw, db, &wdy, &wx, d, mode);
    nn_tensor_free(&wdy), nn_tensor_free(&wx);
}

static void bf_dense_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, nn_accum mode)
{
    nn_tensor wdy = bf_wide(dy), wdx = bf_out(dx, mode);
    float *ww = bf_wide_w(w, (size_t)dx->h * dx->w * dx->c * dy->h * dy->w * dy->c);
    bf_cpu()->dense_bwd_data(&wdx, &wdy, ww, mode);
    bf_narrow(dx, &wdx);
    nn_tensor_free(&wdy), free(ww);
}

static void bf_dense_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                nn_accum mode)
{
    nn_tensor wdy = bf_wide(dy), wx = bf_wide(x);
    bf_cpu()->dense_bwd_filter(dw, db, &wdy, &wx, mode);
    nn_tensor_free(&wdy), nn_tensor_free(&wx);
}

static void bf_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, nn_act act,
                       float alpha)
{
    nn_tensor wdy = bf_wide(dy), wy = bf_wide(y), wdx = bf_out(dx, NN_OVERWRITE);
    bf_cpu()->act_bwd(&wdx, &wdy, &wy, act, alpha);
    bf_narrow(dx, &wdx);
    nn_tensor_free(&wdy), nn_tensor_free(&wy);
}

static void bf_depth_to_space(nn_tensor *y, const nn_tensor *x, int r)
{
    nn_tensor wx = bf_wide(x), wy = bf_out(y, NN_OVERWRITE);
    bf_cpu()->depth_to_space(&wy, &wx, r);
    bf_narrow(y, &wy);
    nn_tensor_free(&wx);
}

static void bf_space_to_depth(nn_tensor *y, const nn_tensor *x, int r)
{
    nn_tensor wx = bf_wide(x), wy = bf_out(y, NN_OVERWRITE);
    bf_cpu()->space_to_depth(&wy, &wx, r);
    bf_narrow(y, &wy);
    nn_tensor_free(&wx);
}

static void bf_shuffle_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, int r,
                               nn_act act, float alpha)
{
    nn_tensor wdy = bf_wide(dy), wy = bf_wide(y), wdx = bf_out(dx, NN_OVERWRITE);
    bf_cpu()->shuffle_act_bwd(&wdx, &wdy, &wy, r, act, alpha);
    bf_narrow(dx, &wdx);
    nn_tensor_free(&wdy), nn_tensor_free(&wy);
}

static const nn_backend *bf16_backend(void)
{
    bf16_be = *nn_cpu_backend();
    bf16_be.name = "cpu-bf16";
    bf16_be.train_dtype = NN_BF16;
    bf16_be.conv2d = bf_conv2d;
    bf16_be.depthwise = bf_depthwise;
    bf16_be.pool = bf_pool;
    bf16_be.dense = bf_dense;
    bf16_be.act = bf_act;
    bf16_be.add = bf_add;
    bf16_be.conv2d_bwd_data = bf_conv2d_bwd_data;
    bf16_be.conv2d_bwd_filter = bf_conv2d_bwd_filter;
    bf16_be.depthwise_bwd_data = bf_depthwise_bwd_data;
    bf16_be.depthwise_bwd_filter = bf_depthwise_bwd_filter;
    bf16_be.dense_bwd_data = bf_dense_bwd_data;
    bf16_be.dense_bwd_filter = bf_dense_bwd_filter;
    bf16_be.act_bwd = bf_act_bwd;
    bf16_be.depth_to_space = bf_depth_to_space;
    bf16_be.space_to_depth = bf_space_to_depth;
    bf16_be.shuffle_act_bwd = bf_shuffle_act_bwd;
    return &bf16_be;
}

#endif
