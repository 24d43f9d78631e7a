/* cpu_conv_bwd.c: backward passes of conv2d, depthwise and dense for the CPU backend.
 * PLACEHOLDER while being written: every function is a bug to call. */
#include "../err.h"
#include "cpu_conv.h"

void cpu_conv2d_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, const nn_conv_desc *d,
                         nn_accum mode)
{
    (void)dx, (void)dy, (void)w, (void)d, (void)mode;
    VS_CHECK(!"unimplemented");
}
void cpu_conv2d_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                           const nn_conv_desc *d, nn_accum mode)
{
    (void)dw, (void)db, (void)dy, (void)x, (void)d, (void)mode;
    VS_CHECK(!"unimplemented");
}
void cpu_depthwise_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                            const nn_conv_desc *d, nn_accum mode)
{
    (void)dx, (void)dy, (void)w, (void)d, (void)mode;
    VS_CHECK(!"unimplemented");
}
void cpu_depthwise_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                              const nn_conv_desc *d, nn_accum mode)
{
    (void)dw, (void)db, (void)dy, (void)x, (void)d, (void)mode;
    VS_CHECK(!"unimplemented");
}
void cpu_dense_bwd_data(float *dx, const float *dy, const float *w, int n, int in, int out,
                        nn_accum mode)
{
    (void)dx, (void)dy, (void)w, (void)n, (void)in, (void)out, (void)mode;
    VS_CHECK(!"unimplemented");
}
void cpu_dense_bwd_filter(float *dw, float *db, const float *dy, const float *x, int n, int in,
                          int out, nn_accum mode)
{
    (void)dw, (void)db, (void)dy, (void)x, (void)n, (void)in, (void)out, (void)mode;
    VS_CHECK(!"unimplemented");
}
