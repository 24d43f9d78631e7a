/* flat_ops.h: the tensor operations of the backend interface called on flat fp32 buffers, as the
 * operation tests hold their data (n samples of `in` or `out` values, or n values). */
#ifndef TESTS_FLAT_OPS_H
#define TESTS_FLAT_OPS_H

#include "nn/backend.h"

static inline void be_dense(const nn_backend *be, float *y, const float *x, const float *w,
                            const float *b, int n, int in, int out, nn_act act, float alpha)
{
    nn_tensor ty = nn_rows(y, n, out), tx = nn_rows((float *)x, n, in);
    be->dense(&ty, &tx, w, b, act, alpha);
}

static inline void be_dense_bwd_data(const nn_backend *be, float *dx, const float *dy,
                                     const float *w, int n, int in, int out, nn_accum mode)
{
    nn_tensor tdx = nn_rows(dx, n, in), tdy = nn_rows((float *)dy, n, out);
    be->dense_bwd_data(&tdx, &tdy, w, mode);
}

static inline void be_dense_bwd_filter(const nn_backend *be, float *dw, float *db, const float *dy,
                                       const float *x, int n, int in, int out, nn_accum mode)
{
    nn_tensor tdy = nn_rows((float *)dy, n, out), tx = nn_rows((float *)x, n, in);
    be->dense_bwd_filter(dw, db, &tdy, &tx, mode);
}

static inline void be_act(const nn_backend *be, float *x, size_t n, nn_act act, float alpha)
{
    nn_tensor t = nn_rows(x, 1, (int)n);
    be->act(&t, act, alpha);
}

static inline void be_add(const nn_backend *be, float *y, const float *a, const float *b, size_t n)
{
    nn_tensor ty = nn_rows(y, 1, (int)n), ta = nn_rows((float *)a, 1, (int)n),
              tb = nn_rows((float *)b, 1, (int)n);
    be->add(&ty, &ta, &tb);
}

static inline void be_act_bwd(const nn_backend *be, float *dx, const float *dy, const float *y,
                              size_t n, nn_act act, float alpha)
{
    nn_tensor tdx = nn_rows(dx, 1, (int)n), tdy = nn_rows((float *)dy, 1, (int)n),
              ty = nn_rows((float *)y, 1, (int)n);
    be->act_bwd(&tdx, &tdy, &ty, act, alpha);
}

static inline void be_flag_nonfinite(const nn_backend *be, float *flag, const float *x, size_t n)
{
    nn_tensor t = nn_flat((float *)x, n, NN_F32);
    be->flag_nonfinite(flag, &t);
}

static inline void be_adam_ctl(const nn_backend *be, float *p, float *m, float *v, const float *g,
                               size_t n, const nn_adam *h, float *ctl, nn_tensor *pw)
{
    nn_tensor t = nn_flat((float *)g, n, NN_F32);
    be->adam_ctl(p, m, v, &t, h, ctl, pw);
}

#endif
