/* profile.cu: where a training step's GPU time goes, for the benchmark (bench/train_gpu.c,
 * BENCH_PROFILE=1). nn_cuda_profile(1) makes nn_cuda_backend hand out a table whose every
 * operation records a CUDA event before and after itself on the stream; nn_cuda_profile_report
 * waits for the GPU and prints the time per operation, summed over the calls since the last
 * report, largest first. Only for steps run call by call (events cannot be read back from a
 * recorded graph). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

#define PROF_MAX 65536

static struct {
    int on;
    int n;
    const char *op[PROF_MAX];
    cudaEvent_t ev[PROF_MAX][2];
    int created;
} prof;

static int prof_begin(const char *op)
{
    if (prof.n >= PROF_MAX) return -1;
    int i = prof.n++;
    if (i >= prof.created) {
        CUDA_CHECK(cudaEventCreate(&prof.ev[i][0]));
        CUDA_CHECK(cudaEventCreate(&prof.ev[i][1]));
        prof.created = i + 1;
    }
    prof.op[i] = op;
    CUDA_CHECK(cudaEventRecord(prof.ev[i][0], cu_ctx.stream));
    return i;
}

static void prof_end(int i)
{
    if (i >= 0) CUDA_CHECK(cudaEventRecord(prof.ev[i][1], cu_ctx.stream));
}

#define PROF(name, params, args)                                                                   \
    static void prof_##name params                                                                 \
    {                                                                                              \
        int i_ = prof_begin(#name);                                                                \
        cu_##name args;                                                                            \
        prof_end(i_);                                                                              \
    }

PROF(conv2d,
     (nn_tensor * y, const nn_tensor *x, const float *w, const float *b, const nn_conv_desc *d),
     (y, x, w, b, d))
PROF(conv2d_bwd_data,
     (nn_tensor * dx, const nn_tensor *dy, const float *w, const nn_conv_desc *d, nn_accum mode),
     (dx, dy, w, d, mode))
PROF(conv2d_bwd_filter,
     (float *dw, float *db, const nn_tensor *dy, const nn_tensor *x, const nn_conv_desc *d,
      nn_accum mode),
     (dw, db, dy, x, d, mode))
PROF(depthwise,
     (nn_tensor * y, const nn_tensor *x, const float *w, const float *b, const nn_conv_desc *d),
     (y, x, w, b, d))
PROF(depthwise_bwd_data,
     (nn_tensor * dx, const nn_tensor *dy, const float *w, const nn_conv_desc *d, nn_accum mode),
     (dx, dy, w, d, mode))
PROF(depthwise_bwd_filter,
     (float *dw, float *db, const nn_tensor *dy, const nn_tensor *x, const nn_conv_desc *d,
      nn_accum mode),
     (dw, db, dy, x, d, mode))
PROF(dense,
     (float *y, const float *x, const float *w, const float *b, int n, int in, int out, nn_act act,
      float alpha),
     (y, x, w, b, n, in, out, act, alpha))
PROF(dense_bwd_data,
     (float *dx, const float *dy, const float *w, int n, int in, int out, nn_accum mode),
     (dx, dy, w, n, in, out, mode))
PROF(dense_bwd_filter,
     (float *dw, float *db, const float *dy, const float *x, int n, int in, int out, nn_accum mode),
     (dw, db, dy, x, n, in, out, mode))
PROF(act_fw, (float *x, size_t n, nn_act act, float alpha), (x, n, act, alpha))
PROF(add, (float *y, const float *a, const float *b, size_t n), (y, a, b, n))
PROF(act_bwd, (float *dx, const float *dy, const float *y, size_t n, nn_act act, float alpha),
     (dx, dy, y, n, act, alpha))
PROF(depth_to_space, (nn_tensor * y, const nn_tensor *x, int r), (y, x, r))
PROF(space_to_depth, (nn_tensor * y, const nn_tensor *x, int r), (y, x, r))
PROF(shuffle_act_bwd,
     (nn_tensor * dx, const nn_tensor *dy, const nn_tensor *y, int r, nn_act act, float alpha),
     (dx, dy, y, r, act, alpha))
PROF(loss,
     (float *dpred, float *loss, const nn_tensor *pred, const nn_tensor *target, const float *mask,
      nn_loss_kind kind, float weight),
     (dpred, loss, pred, target, mask, kind, weight))
PROF(fill, (float *x, size_t n, float value), (x, n, value))
PROF(augment, (const nn_aug_batch *b), (b))
PROF(flag_nonfinite, (float *flag, const float *x, size_t n), (flag, x, n))
PROF(adam_ctl,
     (float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h, float *ctl),
     (p, m, v, g, n, h, ctl))

void cu_profile_table(nn_backend *t)
{
    t->conv2d = prof_conv2d;
    t->conv2d_bwd_data = prof_conv2d_bwd_data;
    t->conv2d_bwd_filter = prof_conv2d_bwd_filter;
    t->depthwise = prof_depthwise;
    t->depthwise_bwd_data = prof_depthwise_bwd_data;
    t->depthwise_bwd_filter = prof_depthwise_bwd_filter;
    t->dense = prof_dense;
    t->dense_bwd_data = prof_dense_bwd_data;
    t->dense_bwd_filter = prof_dense_bwd_filter;
    t->act = prof_act_fw;
    t->add = prof_add;
    t->act_bwd = prof_act_bwd;
    t->depth_to_space = prof_depth_to_space;
    t->space_to_depth = prof_space_to_depth;
    t->shuffle_act_bwd = prof_shuffle_act_bwd;
    t->loss = prof_loss;
    t->fill = prof_fill;
    t->augment = prof_augment;
    t->flag_nonfinite = prof_flag_nonfinite;
    t->adam_ctl = prof_adam_ctl;
}

int cu_profiling(void)
{
    return prof.on;
}

void nn_cuda_profile(int on)
{
    prof.on = on;
    prof.n = 0;
}

void nn_cuda_profile_report(FILE *f, int steps)
{
    CUDA_CHECK(cudaStreamSynchronize(cu_ctx.stream));
    enum { MAX_OPS = 32 };
    const char *name[MAX_OPS];
    double ms[MAX_OPS] = {0}, total = 0;
    int calls[MAX_OPS] = {0}, k = 0;
    for (int i = 0; i < prof.n; i++) {
        float t = 0;
        CUDA_CHECK(cudaEventElapsedTime(&t, prof.ev[i][0], prof.ev[i][1]));
        int j = 0;
        while (j < k && strcmp(name[j], prof.op[i])) j++;
        if (j == k && k < MAX_OPS) name[k++] = prof.op[i];
        if (j < k) ms[j] += t, calls[j]++;
        total += t;
    }
    steps = steps > 0 ? steps : 1;
    for (int a = 0; a < k; a++) /* largest first */
        for (int b = a + 1; b < k; b++)
            if (ms[b] > ms[a]) {
                double tm = ms[a];
                ms[a] = ms[b], ms[b] = tm;
                int tc = calls[a];
                calls[a] = calls[b], calls[b] = tc;
                const char *tn = name[a];
                name[a] = name[b], name[b] = tn;
            }
    fprintf(f, "  per step (%d steps call by call): %.3f ms in operations\n", steps, total / steps);
    for (int j = 0; j < k; j++)
        fprintf(f, "  %-22s %8.3f ms %5.1f%%  %4d calls\n", name[j], ms[j] / steps,
                100 * ms[j] / (total > 0 ? total : 1), calls[j] / steps);
    prof.n = 0;
}
