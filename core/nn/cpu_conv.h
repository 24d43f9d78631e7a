/* cpu_conv.h: the CPU backend's convolution kernels (cpu_conv.c), which cpu_backend.c puts in
 * its nn_backend struct; internal to core/nn/cpu_*.c, not a public API. Shapes and layouts as
 * in backend.h. */
#ifndef NN_CPU_CONV_H
#define NN_CPU_CONV_H

#include <stddef.h>

#include "backend.h"
#include "cpu_pool.h"

void cpu_conv2d(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                const nn_conv_desc *d);
void cpu_depthwise(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                   const nn_conv_desc *d);
/* Backward passes (cpu_conv_bwd.c); shapes and modes as in backend.h. */
void cpu_conv2d_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, const nn_conv_desc *d,
                         nn_accum mode);
void cpu_conv2d_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                           const nn_conv_desc *d, nn_accum mode);
void cpu_depthwise_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                            const nn_conv_desc *d, nn_accum mode);
void cpu_depthwise_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                              const nn_conv_desc *d, nn_accum mode);
void cpu_dense_bwd_data(float *dx, const float *dy, const float *w, int n, int in, int out,
                        nn_accum mode);
void cpu_dense_bwd_filter(float *dw, float *db, const float *dy, const float *x, int n, int in,
                          int out, nn_accum mode);
/* col: [m1 - m0, ld]: columns [k0, k1) of the im2col matrix of x [n, h, w, cin] for the output
 * pixels [m0, m1) of an [n, oh, ow, .] output. Column k = (ky * kw + kx) * cin + ci, as the
 * weights [kh, kw, cin, cout] are stored; zeros where the window hangs over the padding. */
void cpu_im2col(float *col, size_t ld, const float *x, int h, int w, int cin, int oh, int ow,
                const nn_conv_desc *d, size_t m0, size_t m1, size_t k0, size_t k1);
/* Splits `total` rows into tasks of at most max_rows (multiples of `align` where it can); returns
 * the task count and the rows per task. Unless the work (macs) is too small to share, the task
 * count is a multiple of the worker count so that no core idles through the last round. */
int cpu_split_rows(size_t *rows_out, size_t total, size_t max_rows, size_t align, double macs);
/* The RGB output layers (at most CPU_NARROW_DIRECT outputs over a window of at least
 * CPU_NARROW_MIN_K values) skip im2col forward and for the weight gradient: they sum each pixel's
 * window directly, vectorised over cin in CPU_LANES independent partial sums. */
#define CPU_NARROW_DIRECT 4
#define CPU_NARROW_MIN_K 256
#define CPU_LANES 16
static inline int cpu_conv_is_narrow(int cout, size_t k)
{
    return cout <= CPU_NARROW_DIRECT && k >= CPU_NARROW_MIN_K;
}
/* wt: [taps, cout, cin] (malloc'd) from w: [taps, cin, cout] */
float *cpu_narrow_weights(const float *w, int taps, int cin, int cout);

/* y: [rows, c] in place: y = act(y + b) (b: [c], may be NULL). The GEMM epilogue. */
void cpu_bias_act(float *y, const float *b, size_t rows, size_t c, nn_act act, float alpha);

#endif
