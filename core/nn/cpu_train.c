/* cpu_train.c: element-wise training operations of the CPU backend.
 * PLACEHOLDER while being written: every function is a bug to call. */
#include "../err.h"
#include "cpu_train.h"

void cpu_act_bwd(float *dx, const float *dy, const float *y, size_t n, nn_act act, float alpha)
{
    (void)dx, (void)dy, (void)y, (void)n, (void)act, (void)alpha;
    VS_CHECK(!"unimplemented");
}
void cpu_depth_to_space(nn_tensor *y, const nn_tensor *x, int r)
{
    (void)y, (void)x, (void)r;
    VS_CHECK(!"unimplemented");
}
void cpu_space_to_depth(nn_tensor *y, const nn_tensor *x, int r)
{
    (void)y, (void)x, (void)r;
    VS_CHECK(!"unimplemented");
}
void cpu_loss(float *dpred, float *loss, const nn_tensor *pred, const nn_tensor *target,
              const float *mask, nn_loss_kind kind, float weight)
{
    (void)dpred, (void)loss, (void)pred, (void)target, (void)mask, (void)kind, (void)weight;
    VS_CHECK(!"unimplemented");
}
void cpu_adam(float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h)
{
    (void)p, (void)m, (void)v, (void)g, (void)n, (void)h;
    VS_CHECK(!"unimplemented");
}
int cpu_all_finite(const float *x, size_t n)
{
    (void)x, (void)n;
    VS_CHECK(!"unimplemented");
    return 0;
}
void cpu_fill(float *x, size_t n, float value)
{
    (void)x, (void)n, (void)value;
    VS_CHECK(!"unimplemented");
}
