/* half_backend.h: the CPU backend with activations, their gradients and the weights the layers
 * read in a 16-bit type (train_dtype NN_BF16 or NN_F16), as the CUDA backend keeps them in its
 * bf16 and fp16 precisions: every operation widens its 16-bit operands to fp32, runs the CPU's
 * operation and rounds what it writes back. It is the reference for what 16-bit training means,
 * and it lets model.c's and step.c's 16-bit paths (the weight copy, the input and output copies,
 * the typed offsets, fp16's loss scaling) be tested on every machine, GPU or not. */
#ifndef VS_TEST_HALF_BACKEND_H
#define VS_TEST_HALF_BACKEND_H

#include <stdlib.h>

#include "nn/backend.h"

static nn_backend half_be;
static nn_dtype half_dt = NN_BF16; /* the 16-bit type of the table half_backend last gave */

static const nn_backend *h16_cpu(void)
{
    return nn_cpu_backend();
}

/* t (16-bit) widened into a new fp32 tensor of its shape */
static nn_tensor h16_wide(const nn_tensor *t)
{
    if (t->dt != half_dt) abort(); /* the interface says the training type here */
    nn_tensor w = nn_tensor_new(t->n, t->h, t->w, t->c);
    h16_cpu()->convert(&w, t);
    return w;
}

/* fp32 r rounded into t (16-bit); r freed */
static void h16_narrow(nn_tensor *t, nn_tensor *r)
{
    h16_cpu()->convert(t, r);
    nn_tensor_free(r);
}

/* n 16-bit weights widened into a new fp32 buffer */
static float *h16_wide_w(const float *w, size_t n)
{
    nn_tensor src = nn_rows((float *)w, 1, (int)n);
    src.dt = half_dt;
    nn_tensor t = h16_wide(&src);
    return t.d;
}

/* n 16-bit values at d (may be NULL) as an fp32 tensor: what the CPU's operation adds into
 * (accumulate) or overwrites */
static nn_tensor h16_grad_in(const float *d, size_t n, nn_accum mode)
{
    nn_tensor src = nn_flat((float *)d, n, half_dt);
    if (d && mode == NN_ACCUMULATE) return h16_wide(&src);
    return nn_tensor_new(1, 1, 1, (int)n);
}

/* fp32 t rounded into n 16-bit values at d (may be NULL); t freed */
static void h16_grad_out(float *d, nn_tensor *t)
{
    if (d) {
        nn_tensor dst = nn_flat(d, nn_numel(t), half_dt);
        h16_narrow(&dst, t);
    }
    nn_tensor_free(t);
}

/* an output: its current values (accumulate) or its shape (overwrite), in fp32 */
static nn_tensor h16_out(const nn_tensor *t, nn_accum mode)
{
    if (mode == NN_ACCUMULATE) return h16_wide(t);
    return nn_tensor_new(t->n, t->h, t->w, t->c);
}

static void h16_conv2d(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                       const nn_conv_desc *d)
{
    const int r = d->shuffle > 1 ? d->shuffle : 1;
    nn_tensor wx = h16_wide(x), wy = h16_out(y, NN_OVERWRITE);
    float *ww = h16_wide_w(w, (size_t)d->kh * d->kw * x->c * y->c * r * r);
    h16_cpu()->conv2d(&wy, &wx, ww, b, d);
    h16_narrow(y, &wy);
    nn_tensor_free(&wx), free(ww);
}

static void h16_depthwise(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                          const nn_conv_desc *d)
{
    nn_tensor wx = h16_wide(x), wy = h16_out(y, NN_OVERWRITE);
    float *ww = h16_wide_w(w, (size_t)d->kh * d->kw * x->c);
    h16_cpu()->depthwise(&wy, &wx, ww, b, d);
    h16_narrow(y, &wy);
    nn_tensor_free(&wx), free(ww);
}

static void h16_pool(nn_tensor *y, const nn_tensor *x, const nn_pool_desc *d)
{
    nn_tensor wx = h16_wide(x), wy = h16_out(y, NN_OVERWRITE);
    h16_cpu()->pool(&wy, &wx, d);
    h16_narrow(y, &wy);
    nn_tensor_free(&wx);
}

static void h16_dense(nn_tensor *y, const nn_tensor *x, const float *w, const float *b, nn_act act,
                      float alpha)
{
    nn_tensor wx = h16_wide(x), wy = h16_out(y, NN_OVERWRITE);
    float *ww = h16_wide_w(w, (size_t)x->h * x->w * x->c * y->h * y->w * y->c);
    h16_cpu()->dense(&wy, &wx, ww, b, act, alpha);
    h16_narrow(y, &wy);
    nn_tensor_free(&wx), free(ww);
}

static void h16_act(nn_tensor *x, nn_act act, float alpha)
{
    nn_tensor wx = h16_wide(x);
    h16_cpu()->act(&wx, act, alpha);
    h16_narrow(x, &wx);
}

static void h16_add(nn_tensor *y, const nn_tensor *a, const nn_tensor *b)
{
    nn_tensor wa = h16_wide(a), wb = h16_wide(b), wy = h16_out(y, NN_OVERWRITE);
    h16_cpu()->add(&wy, &wa, &wb);
    h16_narrow(y, &wy);
    nn_tensor_free(&wa), nn_tensor_free(&wb);
}

static void h16_conv2d_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                                const nn_conv_desc *d, nn_accum mode)
{
    nn_tensor wdy = h16_wide(dy), wdx = h16_out(dx, mode);
    float *ww = h16_wide_w(w, (size_t)d->kh * d->kw * dx->c * dy->c);
    h16_cpu()->conv2d_bwd_data(&wdx, &wdy, ww, d, mode);
    h16_narrow(dx, &wdx);
    nn_tensor_free(&wdy), free(ww);
}

static void h16_conv2d_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                  const nn_conv_desc *d, nn_accum mode)
{
    nn_tensor wdy = h16_wide(dy), wx = h16_wide(x);
    nn_tensor tw = h16_grad_in(dw, (size_t)d->kh * d->kw * x->c * dy->c, mode),
              tb = h16_grad_in(db, (size_t)dy->c, mode);
    h16_cpu()->conv2d_bwd_filter(tw.d, db ? tb.d : NULL, &wdy, &wx, d, mode);
    h16_grad_out(dw, &tw), h16_grad_out(db, &tb);
    nn_tensor_free(&wdy), nn_tensor_free(&wx);
}

static void h16_depthwise_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                                   const nn_conv_desc *d, nn_accum mode)
{
    nn_tensor wdy = h16_wide(dy), wdx = h16_out(dx, mode);
    float *ww = h16_wide_w(w, (size_t)d->kh * d->kw * dx->c);
    h16_cpu()->depthwise_bwd_data(&wdx, &wdy, ww, d, mode);
    h16_narrow(dx, &wdx);
    nn_tensor_free(&wdy), free(ww);
}

static void h16_depthwise_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                     const nn_conv_desc *d, nn_accum mode)
{
    nn_tensor wdy = h16_wide(dy), wx = h16_wide(x);
    nn_tensor tw = h16_grad_in(dw, (size_t)d->kh * d->kw * x->c, mode),
              tb = h16_grad_in(db, (size_t)x->c, mode);
    h16_cpu()->depthwise_bwd_filter(tw.d, db ? tb.d : NULL, &wdy, &wx, d, mode);
    h16_grad_out(dw, &tw), h16_grad_out(db, &tb);
    nn_tensor_free(&wdy), nn_tensor_free(&wx);
}

static void h16_dense_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, nn_accum mode)
{
    nn_tensor wdy = h16_wide(dy), wdx = h16_out(dx, mode);
    float *ww = h16_wide_w(w, (size_t)dx->h * dx->w * dx->c * dy->h * dy->w * dy->c);
    h16_cpu()->dense_bwd_data(&wdx, &wdy, ww, mode);
    h16_narrow(dx, &wdx);
    nn_tensor_free(&wdy), free(ww);
}

static void h16_dense_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                 nn_accum mode)
{
    nn_tensor wdy = h16_wide(dy), wx = h16_wide(x);
    const size_t out = (size_t)dy->h * dy->w * dy->c;
    nn_tensor tw = h16_grad_in(dw, (size_t)x->h * x->w * x->c * out, mode),
              tb = h16_grad_in(db, out, mode);
    h16_cpu()->dense_bwd_filter(tw.d, db ? tb.d : NULL, &wdy, &wx, mode);
    h16_grad_out(dw, &tw), h16_grad_out(db, &tb);
    nn_tensor_free(&wdy), nn_tensor_free(&wx);
}

/* Adam and the finiteness flag over 16-bit gradients (fp32 ones pass straight through) */
static void h16_adam_ctl(float *p, float *m, float *v, const nn_tensor *g, const nn_adam *h,
                         float *ctl, nn_tensor *pw)
{
    if (g->dt == NN_F32) {
        h16_cpu()->adam_ctl(p, m, v, g, h, ctl, pw);
        return;
    }
    nn_tensor wg = h16_wide(g);
    h16_cpu()->adam_ctl(p, m, v, &wg, h, ctl, pw);
    nn_tensor_free(&wg);
}

static void h16_flag_nonfinite(float *flag, const nn_tensor *x)
{
    if (x->dt == NN_F32) {
        h16_cpu()->flag_nonfinite(flag, x);
        return;
    }
    nn_tensor wx = h16_wide(x);
    h16_cpu()->flag_nonfinite(flag, &wx);
    nn_tensor_free(&wx);
}

static void h16_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, nn_act act,
                        float alpha)
{
    nn_tensor wdy = h16_wide(dy), wy = h16_wide(y), wdx = h16_out(dx, NN_OVERWRITE);
    h16_cpu()->act_bwd(&wdx, &wdy, &wy, act, alpha);
    h16_narrow(dx, &wdx);
    nn_tensor_free(&wdy), nn_tensor_free(&wy);
}

static void h16_depth_to_space(nn_tensor *y, const nn_tensor *x, int r)
{
    nn_tensor wx = h16_wide(x), wy = h16_out(y, NN_OVERWRITE);
    h16_cpu()->depth_to_space(&wy, &wx, r);
    h16_narrow(y, &wy);
    nn_tensor_free(&wx);
}

static void h16_space_to_depth(nn_tensor *y, const nn_tensor *x, int r)
{
    nn_tensor wx = h16_wide(x), wy = h16_out(y, NN_OVERWRITE);
    h16_cpu()->space_to_depth(&wy, &wx, r);
    h16_narrow(y, &wy);
    nn_tensor_free(&wx);
}

static void h16_shuffle_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, int r,
                                nn_act act, float alpha)
{
    nn_tensor wdy = h16_wide(dy), wy = h16_wide(y), wdx = h16_out(dx, NN_OVERWRITE);
    h16_cpu()->shuffle_act_bwd(&wdx, &wdy, &wy, r, act, alpha);
    h16_narrow(dx, &wdx);
    nn_tensor_free(&wdy), nn_tensor_free(&wy);
}

/* the emulation in dt (NN_BF16 or NN_F16) */
static const nn_backend *half_backend(nn_dtype dt)
{
    if (dt == NN_F32) abort();
    half_dt = dt;
    half_be = *nn_cpu_backend();
    half_be.name = dt == NN_BF16 ? "cpu-bf16" : "cpu-fp16";
    half_be.train_dtype = dt;
    half_be.conv2d = h16_conv2d;
    half_be.depthwise = h16_depthwise;
    half_be.pool = h16_pool;
    half_be.dense = h16_dense;
    half_be.act = h16_act;
    half_be.add = h16_add;
    half_be.conv2d_bwd_data = h16_conv2d_bwd_data;
    half_be.conv2d_bwd_filter = h16_conv2d_bwd_filter;
    half_be.depthwise_bwd_data = h16_depthwise_bwd_data;
    half_be.depthwise_bwd_filter = h16_depthwise_bwd_filter;
    half_be.dense_bwd_data = h16_dense_bwd_data;
    half_be.dense_bwd_filter = h16_dense_bwd_filter;
    half_be.act_bwd = h16_act_bwd;
    half_be.depth_to_space = h16_depth_to_space;
    half_be.space_to_depth = h16_space_to_depth;
    half_be.shuffle_act_bwd = h16_shuffle_act_bwd;
    half_be.adam_ctl = h16_adam_ctl;
    half_be.flag_nonfinite = h16_flag_nonfinite;
    return &half_be;
}

#endif
