/* train_ops.c: times the CPU backend's conv2d and dense forward and backward passes at the
 * training shapes of the default model (encoder at batch 32, decoders at 16), to see which layer
 * a training iteration spends its time in. Built by `make bench` (or make build/bench/train_ops):
 *   build/bench/train_ops [threads]
 * Prints the best of a few runs in ms and GFLOP/s (2 flops per multiply-add). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "err.h"
#include "nn/backend.h"
#include "../tests/flat_ops.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void fill(float *p, size_t n)
{
    unsigned s = 12345;
    for (size_t i = 0; i < n; i++)
        s = s * 1103515245u + 12345u, p[i] = (float)(s >> 9) / 8388608.0f - 1;
}

/* best time of `reps` runs of the op, in ms */
#define BEST(reps, stmt)                                                                           \
    ({                                                                                             \
        double best_ = 1e30;                                                                       \
        for (int r_ = 0; r_ < (reps); r_++) {                                                      \
            double t0_ = now();                                                                    \
            stmt;                                                                                  \
            double t_ = (now() - t0_) * 1e3;                                                       \
            if (t_ < best_) best_ = t_;                                                            \
        }                                                                                          \
        best_;                                                                                     \
    })

static void conv(const nn_backend *be, int n, int h, int cin, int cout, int k, int s, int reps)
{
    nn_conv_desc d;
    nn_conv_geometry(&d, h, h, k, k, s, s, NN_PAD_SAME);
    int oh = nn_out_size(h, k, s, NN_PAD_SAME);
    nn_tensor x = nn_tensor_new(n, h, h, cin), dx = nn_tensor_new(n, h, h, cin);
    nn_tensor y = nn_tensor_new(n, oh, oh, cout), dy = nn_tensor_new(n, oh, oh, cout);
    size_t wn = (size_t)k * k * cin * cout;
    float *w = vs_malloc(wn * 4), *dw = vs_malloc(wn * 4), *b = vs_calloc((size_t)cout, 4);
    float *db = vs_malloc((size_t)cout * 4);
    fill(x.d, nn_numel(&x)), fill(dy.d, nn_numel(&dy)), fill(w, wn);
    double gf = 2.0 * nn_numel(&y) * k * k * cin * 1e-6; /* GFLOP per ms */
    double tf = BEST(reps, be->conv2d(&y, &x, w, b, &d));
    double td = BEST(reps, be->conv2d_bwd_data(&dx, &dy, w, &d, NN_OVERWRITE));
    double tw = BEST(reps, be->conv2d_bwd_filter(dw, db, &dy, &x, &d, NN_OVERWRITE));
    printf(
        "conv k%d s%d n%-2d %3dx%-3dx%-4d -> %3dx%-3dx%-4d  fwd %7.2f ms %4.0f  bwd_data %7.2f ms "
        "%4.0f  bwd_filter %7.2f ms %4.0f GFLOP/s\n",
        k, s, n, h, h, cin, oh, oh, cout, tf, gf / tf, td, gf / td, tw, gf / tw);
    nn_tensor_free(&x), nn_tensor_free(&dx), nn_tensor_free(&y), nn_tensor_free(&dy);
    free(w), free(dw), free(b), free(db);
}

static void dense(const nn_backend *be, int n, int in, int out, int reps)
{
    float *x = vs_malloc((size_t)n * in * 4), *dx = vs_malloc((size_t)n * in * 4);
    float *y = vs_malloc((size_t)n * out * 4), *dy = vs_malloc((size_t)n * out * 4);
    float *w = vs_malloc((size_t)in * out * 4), *dw = vs_malloc((size_t)in * out * 4);
    float *b = vs_calloc((size_t)out, 4), *db = vs_malloc((size_t)out * 4);
    fill(x, (size_t)n * in), fill(dy, (size_t)n * out), fill(w, (size_t)in * out);
    double gf = 2.0 * n * in * out * 1e-6;
    double tf = BEST(reps, be_dense(be, y, x, w, b, n, in, out, NN_ACT_NONE, 0));
    double td = BEST(reps, be_dense_bwd_data(be, dx, dy, w, n, in, out, NN_OVERWRITE));
    double tw = BEST(reps, be_dense_bwd_filter(be, dw, db, dy, x, n, in, out, NN_OVERWRITE));
    printf("dense n%-2d %6d -> %-6d                     fwd %7.2f ms %4.0f  bwd_data %7.2f ms "
           "%4.0f  bwd_filter %7.2f ms %4.0f GFLOP/s\n",
           n, in, out, tf, gf / tf, td, gf / td, tw, gf / tw);
    free(x), free(dx), free(y), free(dy), free(w), free(dw), free(b), free(db);
}

int main(int argc, char **argv)
{
    const nn_backend *be = nn_cpu_backend();
    nn_cpu_set_threads(argc > 1 ? atoi(argv[1]) : 0);
    printf("%d threads\n", nn_cpu_threads());
    int reps = 3;
    conv(be, 32, 64, 3, 128, 5, 2, reps);
    conv(be, 32, 32, 128, 256, 5, 2, reps);
    conv(be, 32, 16, 256, 512, 5, 2, reps);
    conv(be, 32, 8, 512, 1024, 5, 2, reps);
    dense(be, 32, 16384, 1024, reps);
    dense(be, 32, 1024, 16384, reps);
    dense(be, 32, 32768, 512, reps);
    conv(be, 32, 4, 1024, 2048, 3, 1, reps);
    conv(be, 16, 8, 512, 1024, 3, 1, reps);
    conv(be, 16, 16, 256, 512, 3, 1, reps);
    conv(be, 16, 32, 128, 256, 3, 1, reps);
    conv(be, 16, 8, 256, 2048, 3, 1, reps);
    conv(be, 16, 64, 64, 3, 5, 1, reps);
    conv(be, 16, 64, 128, 3, 5, 1, reps);
    return 0;
}
