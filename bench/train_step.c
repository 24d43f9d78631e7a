/* train_step.c: milliseconds per training iteration on the CPU backend, for bench/train_cpu.sh.
 * One iteration is what the trainer does after augmentation: side A and side B through the shared
 * encoder and their decoders, the loss, backward, one Adam step over every parameter. Inputs are
 * random (as in the PyTorch reference). Loss "mae" is the reference's (MAE, no masks); "default"
 * is visage's default (SSIM + MSE on the masked face, eye x3, mouth x2).
 * Usage: build/bench/train_step MODEL BATCH RUNS [mae|default]
 * Prints "visage MODEL BATCH LOSS MEDIAN_MS (OpenBLAS CORE)" after one warm-up iteration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "loss.h"
#include "model.h"
#include "rng.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL BATCH RUNS [mae|default]\n", argv[0]);
        return 2;
    }
    const char *arch = argv[1];
    int n = atoi(argv[2]), runs = atoi(argv[3]);
    int masked = argc > 4 && strcmp(argv[4], "default") == 0;
    nn_cpu_set_threads(0);
    const nn_backend *be = nn_cpu_backend();
    mdl_options o;
    mdl_options_default(&o);
    model *m;
    vs_err e;
    if (n < 1 || runs < 1 || model_create(&m, arch, &o, be, 1, &e)) {
        fprintf(stderr, "train_step: %s\n", n < 1 || runs < 1 ? "bad BATCH or RUNS" : e.msg);
        return 1;
    }
    const int S = m->arch->input_size;
    nn_tensor x = nn_tensor_new(2 * n, S, S, 3), tgt[2];
    float *mask[2][3];
    rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < nn_numel(&x); i++) x.d[i] = rng_uniform(&r);
    for (int s = 0; s < 2; s++) {
        tgt[s] = nn_tensor_new(n, S, S, 3);
        memcpy(tgt[s].d, x.d + (size_t)s * n * S * S * 3, sizeof(float) * n * S * S * 3);
        for (int k = 0; k < 3; k++) {
            mask[s][k] = malloc(sizeof(float) * n * S * S);
            for (int i = 0; i < n * S * S; i++) mask[s][k][i] = rng_uniform(&r);
        }
    }
    loss_cfg lc = {.n_funcs = 1, .kind = {NN_LOSS_MAE}, .weight = {1}};
    if (masked) loss_cfg_default(&lc);
    nn_adam h = {.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f};
    float loss[2];
    double *ms = malloc(sizeof(double) * runs);
    for (int it = -1; it < runs; it++) {
        double t0 = now_ms();
        model_forward(m, &x);
        be->fill(loss, 2, 0.0f);
        for (int s = 0; s < 2; s++) {
            nn_tensor *g = model_output_grad(m, s, 0);
            loss_face(be, g->d, loss + s, model_output(m, s, 0), &tgt[s], mask[s][0], mask[s][1],
                      mask[s][2], &lc);
        }
        model_backward(m);
        h.t = ++m->adam_t;
        be->adam(m->p, m->m, m->v, m->g, m->n_floats, &h);
        if (it >= 0) ms[it] = now_ms() - t0;
    }
    qsort(ms, (size_t)runs, sizeof *ms, cmp_double);
    printf("visage %s %d %s %.1f (OpenBLAS %s)\n", arch, n, masked ? "default" : "mae",
           ms[runs / 2], openblas_get_corename());
    return 0;
}
