/* profile.cu: where a training step's GPU time goes, for the benchmark (bench/train_gpu.c,
 * BENCH_PROFILE=1). nn_cuda_profile(1) makes nn_cuda_backend hand out a table whose every
 * operation records a CUDA event before and after itself on the stream; nn_cuda_profile_report
 * waits for the GPU and prints the time per operation, summed over the calls since the last
 * report, largest first, then the convolutions one by one (operation, kernel, stride and
 * shapes: which layer costs what). Only for steps run call by call (events cannot be read back from
 * a recorded graph). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

#define PROF_MAX 65536

static struct {
    int on;
    int n;
    const char *op[PROF_MAX];
    char shape[PROF_MAX][96]; /* convolutions: kernel, stride, input and output, algorithm */
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
    prof.shape[i][0] = '\0';
    CUDA_CHECK(cudaEventRecord(prof.ev[i][0], cu_ctx.stream));
    return i;
}

/* the shape of convolution entry i: x [n, h, w, c] to y through d */
static void prof_shape(int i, const nn_tensor *x, const nn_tensor *y, const nn_conv_desc *d)
{
    if (i >= 0)
        snprintf(prof.shape[i], sizeof prof.shape[i], "k%d s%d %dx%dx%dx%d>%dx%dx%d%s", d->kh,
                 d->sh, x->n, x->h, x->w, x->c, y->h, y->w, y->c, d->shuffle > 1 ? " shuf" : "");
}

static void prof_end(int i)
{
    if (i >= 0) CUDA_CHECK(cudaEventRecord(prof.ev[i][1], cu_ctx.stream));
}

/* a convolution's end: the algorithm it ran goes with its shape */
static void prof_end_conv(int i)
{
    prof_end(i);
    if (i < 0) return;
    size_t len = strlen(prof.shape[i]);
    snprintf(prof.shape[i] + len, sizeof prof.shape[i] - len, " [%s]", cu_conv_last_algo());
}

#define PROF(name, params, args)                                                                   \
    static void prof_##name params                                                                 \
    {                                                                                              \
        int i_ = prof_begin(#name);                                                                \
        cu_##name args;                                                                            \
        prof_end(i_);                                                                              \
    }

static void prof_conv2d(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                        const nn_conv_desc *d)
{
    int i = prof_begin("conv2d");
    prof_shape(i, x, y, d);
    cu_conv2d(y, x, w, b, d);
    prof_end_conv(i);
}

static void prof_conv2d_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                                 const nn_conv_desc *d, nn_accum mode)
{
    int i = prof_begin("conv2d_bwd_data");
    prof_shape(i, dx, dy, d);
    cu_conv2d_bwd_data(dx, dy, w, d, mode);
    prof_end_conv(i);
}

static void prof_conv2d_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                   const nn_conv_desc *d, nn_accum mode)
{
    int i = prof_begin("conv2d_bwd_filter");
    prof_shape(i, x, dy, d);
    cu_conv2d_bwd_filter(dw, db, dy, x, d, mode);
    prof_end_conv(i);
}
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
     (nn_tensor * y, const nn_tensor *x, const float *w, const float *b, nn_act act, float alpha),
     (y, x, w, b, act, alpha))
PROF(dense_bwd_data, (nn_tensor * dx, const nn_tensor *dy, const float *w, nn_accum mode),
     (dx, dy, w, mode))
PROF(dense_bwd_filter,
     (float *dw, float *db, const nn_tensor *dy, const nn_tensor *x, nn_accum mode),
     (dw, db, dy, x, mode))
PROF(act_fw, (nn_tensor * x, nn_act act, float alpha), (x, act, alpha))
PROF(add, (nn_tensor * y, const nn_tensor *a, const nn_tensor *b), (y, a, b))
PROF(convert, (nn_tensor * dst, const nn_tensor *src), (dst, src))
PROF(add_padded, (nn_tensor * y, const nn_tensor *a, const nn_tensor *b, nn_act act, float alpha),
     (y, a, b, act, alpha))
PROF(crop_resize, (nn_tensor * y, const nn_crop *crops), (y, crops))
PROF(warp, (uint8_t * dst, const nn_warp *w, int n, int size), (dst, w, n, size))
PROF(from_u8, (nn_tensor * y, const uint8_t *x, float div), (y, x, div))
PROF(blend, (const nn_blend *b, int n), (b, n))
PROF(act_bwd, (nn_tensor * dx, const nn_tensor *dy, const nn_tensor *y, nn_act act, float alpha),
     (dx, dy, y, act, alpha))
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
PROF(flag_nonfinite, (float *flag, const nn_tensor *x), (flag, x))
PROF(adam_ctl,
     (float *p, float *m, float *v, const nn_tensor *g, const nn_adam *h, float *ctl,
      nn_tensor *pw),
     (p, m, v, g, h, ctl, pw))

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
    t->convert = prof_convert;
    t->add_padded = prof_add_padded;
    t->crop_resize = prof_crop_resize;
    t->warp = prof_warp;
    t->from_u8 = prof_from_u8;
    t->blend = prof_blend;
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

/* time per key (the op, or the op and its shape), summed; keys in order of first appearance */
typedef struct prof_sum {
    char key[128];
    double ms;
    int calls;
} prof_sum;

static int prof_sum_cmp(const void *a, const void *b)
{
    double x = ((const prof_sum *)a)->ms, y = ((const prof_sum *)b)->ms;
    return (x < y) - (x > y);
}

static int prof_add(prof_sum *s, int k, int max, const char *key, double ms)
{
    int j = 0;
    while (j < k && strcmp(s[j].key, key)) j++;
    if (j == k) {
        if (k == max) return k;
        snprintf(s[k].key, sizeof s[k].key, "%s", key);
        s[k].ms = 0, s[k].calls = 0;
        k++;
    }
    s[j].ms += ms, s[j].calls++;
    return k;
}

void nn_cuda_profile_report(FILE *f, int steps)
{
    CUDA_CHECK(cudaStreamSynchronize(cu_ctx.stream));
    enum { MAX_OPS = 32, MAX_LAYERS = 128, TOP_LAYERS = 20 };
    static prof_sum ops[MAX_OPS], layers[MAX_LAYERS];
    int k = 0, kl = 0;
    double total = 0;
    for (int i = 0; i < prof.n; i++) {
        float t = 0;
        CUDA_CHECK(cudaEventElapsedTime(&t, prof.ev[i][0], prof.ev[i][1]));
        k = prof_add(ops, k, MAX_OPS, prof.op[i], t);
        if (prof.shape[i][0]) {
            char key[128];
            snprintf(key, sizeof key, "%s %s", prof.op[i], prof.shape[i]);
            kl = prof_add(layers, kl, MAX_LAYERS, key, t);
        }
        total += t;
    }
    steps = steps > 0 ? steps : 1;
    qsort(ops, (size_t)k, sizeof ops[0], prof_sum_cmp);
    qsort(layers, (size_t)kl, sizeof layers[0], prof_sum_cmp);
    fprintf(f, "  per step (%d steps call by call): %.3f ms in operations\n", steps, total / steps);
    for (int j = 0; j < k; j++)
        fprintf(f, "  %-22s %8.3f ms %5.1f%%  %4d calls\n", ops[j].key, ops[j].ms / steps,
                100 * ops[j].ms / (total > 0 ? total : 1), ops[j].calls / steps);
    fprintf(f, "  the costliest convolutions (op, kernel, stride, input > output, [cuDNN's "
               "algorithm]):\n");
    for (int j = 0; j < kl && j < TOP_LAYERS; j++)
        fprintf(f, "    %-100s %8.3f ms %4d calls\n", layers[j].key, layers[j].ms / steps,
                layers[j].calls / steps);
    prof.n = 0;
}
