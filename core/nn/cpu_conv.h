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
/* y: [rows, c] in place: y = act(y + b) (b: [c], may be NULL). The GEMM epilogue. */
void cpu_bias_act(float *y, const float *b, size_t rows, size_t c, nn_act act, float alpha);

#endif
