/* train_gpu.c: training iterations per second on the GPU, for bench/train_gpu.sh. One iteration
 * is the trainer's step (step.c): sides A and B through the shared encoder and their decoders,
 * the loss, backward, the finiteness check and one Adam step over every parameter, replayed as
 * one CUDA graph (or call by call), with the losses read back each iteration as the trainer
 * does. Inputs are random, as in ../shared/bench/faceswap_torch_bench.py, and the loss is that
 * reference's (MAE, no masks) unless the mode says "default" (SSIM + MSE on the masked face,
 * eye x3, mouth x2).
 * Usage: build/bench/train_gpu [PLAN]   PLAN: "original:16:tf32,original:64:fp32_calls,..."
 * (mode: fp32 | tf32 | bf16, then _calls for no graph, _default for visage's default loss, _any for
 * cuDNN's fastest algorithms deterministic or not). Prints one
 * line per row and a table; with BENCH_PROFILE set, also the GPU time of each operation in a step.
 * Links no media library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "model.h"
#include "rng.h"
#include "step.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Multiply-adds x 2 of one iteration: forward, the gradient of every layer's input (but the
 * images') and of its weights. */
static double net_flops(const mdl_net *net, int b, int is_encoder)
{
    double f = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const mdl_layer *l = &net->layers[i];
        double fwd = 0;
        if (l->op == MDL_CONV)
            fwd = 2.0 * b * l->h * l->w * l->c * l->k * l->k * l->ic;
        else if (l->op == MDL_DEPTHWISE)
            fwd = 2.0 * b * l->h * l->w * l->c * l->k * l->k;
        else if (l->op == MDL_DENSE)
            fwd = 2.0 * b * ((double)l->ih * l->iw * l->ic) * ((double)l->h * l->w * l->c);
        int input_grad = !(is_encoder && l->in < 0);
        f += fwd * (2 + input_grad);
    }
    return f;
}

/* Dense peak of the card in TFLOP/s for fp32 (CUDA cores) and tf32 (tensor cores), from its
 * name; 0 when not known. bf16's is twice tf32's on these cards. */
static void card_peak(double *fp32, double *tf32, const char *name)
{
    *fp32 = *tf32 = 0;
    if (strstr(name, "H100") && strstr(name, "PCIe"))
        *fp32 = 51.2, *tf32 = 378;
    else if (strstr(name, "H100") || strstr(name, "H200") || strstr(name, "H800"))
        *fp32 = 66.9, *tf32 = 494.7;
    else if (strstr(name, "A100"))
        *fp32 = 19.5, *tf32 = 156;
}

typedef struct row {
    char model[32], mode[32];
    int batch;
    double it_s, ms, tflops, gib, loss;
    int ok;
} row;

static row run_row(const char *arch, int n, const char *mode, double seconds)
{
    row r = {.batch = n};
    snprintf(r.model, sizeof r.model, "%s", arch);
    snprintf(r.mode, sizeof r.mode, "%s", mode);
    nn_precision prec = strncmp(mode, "fp32", 4) == 0   ? NN_PREC_FP32
                        : strncmp(mode, "bf16", 4) == 0 ? NN_PREC_BF16
                                                        : NN_PREC_TF32;
    step_mode sm = strstr(mode, "_calls") ? STEP_DIRECT : STEP_AUTO;
    int def_loss = strstr(mode, "_default") != NULL;
    nn_cuda_deterministic(strstr(mode, "_any") == NULL);
    vs_err e;
    const nn_backend *be = nn_cuda_backend(0, prec, &e);
    if (!be) {
        fprintf(stderr, "train_gpu: %s\n", e.msg);
        return r;
    }
    nn_cuda_mem_reset_peak();
    mdl_options o;
    mdl_options_default(&o);
    model *m;
    if (model_create(&m, arch, &o, be, 1, &e)) {
        fprintf(stderr, "train_gpu: %s\n", e.msg);
        return r;
    }
    loss_cfg lc = {.n_funcs = 1, .kind = {NN_LOSS_MAE}, .weight = {1.0f}};
    if (def_loss) loss_cfg_default(&lc);
    nn_adam h = {.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f};
    step st;
    step_init(&st, m, n, &lc, &h);
    const int S = m->arch->input_size;
    const size_t per = (size_t)S * S * 3, px = (size_t)S * S;
    float *host = vs_malloc(2 * n * per * sizeof(float));
    rng g;
    rng_seed(&g, 1);
    for (size_t i = 0; i < 2 * n * per; i++) host[i] = (float)rng_uniform(&g);
    be->copy_in(st.x.d, host, 2 * n * per);
    for (int s = 0; s < 2; s++) {
        be->copy_in(st.tgt[s].d, host + s * n * per, n * per);
        for (size_t i = 0; i < n * px; i++) host[i] = (i % S > (size_t)S / 8) ? 1.0f : 0.0f;
        for (int k = 0; k < 3; k++) be->copy_in(st.mask[s][k], host, n * px);
    }
    free(host);
    double loss[2];
    for (int i = 0; i < 5; i++) step_run(&st, loss, sm, 0); /* algorithms, graph, clocks */
    double t0 = now_s();
    for (int i = 0; i < 10; i++) step_run(&st, loss, sm, 0);
    double per_it = (now_s() - t0) / 10;
    int iters = (int)(seconds / (per_it > 1e-5 ? per_it : 1e-5));
    iters = iters < 10 ? 10 : iters > 5000 ? 5000 : iters;
    double times[3];
    for (int rep = 0; rep < 3; rep++) {
        t0 = now_s();
        for (int i = 0; i < iters; i++) step_run(&st, loss, sm, 0);
        times[rep] = (now_s() - t0) / iters;
    }
    qsort(times, 3, sizeof times[0], cmp_double);
    double t = times[1];
    double flops =
        net_flops(&m->enc, 2 * n, 1) + net_flops(&m->dec[0], n, 0) + net_flops(&m->dec[1], n, 0);
    r.it_s = 1 / t, r.ms = t * 1e3, r.tflops = flops / t / 1e12;
    r.gib = (double)nn_cuda_mem_peak() / (1u << 30);
    r.loss = (loss[0] + loss[1]) / 2;
    r.ok = 1;
    if (getenv("BENCH_PROFILE")) { /* where the time goes: a few steps call by call, timed */
        nn_cuda_profile(1);
        const nn_backend *pb = nn_cuda_backend(0, prec, &e);
        m->be = st.be = pb;
        for (int i = 0; i < 3; i++) step_run(&st, loss, STEP_DIRECT, 0);
        nn_cuda_profile_report(stdout, 3);
        nn_cuda_profile(0);
        m->be = st.be = be;
    }
    printf("{\"model\": \"%s\", \"batch\": %d, \"mode\": \"%s\", \"it_s\": %.2f, \"egs_s\": %.0f, "
           "\"ms_it\": %.3f, \"tflop_it\": %.4f, \"tflops\": %.1f, \"gpu_mem_GiB\": %.2f, "
           "\"loss\": %.5f, \"iters\": %d}\n",
           arch, n, mode, r.it_s, 2 * n * r.it_s, r.ms, flops / 1e12, r.tflops, r.gib, r.loss,
           iters);
    fflush(stdout);
    step_free(&st);
    model_free(m);
    return r;
}

int main(int argc, char **argv)
{
    const char *plan = argc > 1 ? argv[1]
                                : "original:16:bf16,original:16:bf16_calls,original:16:tf32,"
                                  "original:16:fp32,original:64:bf16,original:64:tf32,"
                                  "original:64:fp32,original:256:bf16,original:256:tf32,"
                                  "lightweight:64:bf16,lightweight:64:tf32,lightweight:64:fp32,"
                                  "original:16:bf16_default";
    const char *why = "";
    if (nn_cuda_device_count(&why) == 0) {
        printf("skipped: no GPU: %s\n", why);
        return 0;
    }
    const char *secs = getenv("BENCH_SECONDS");
    double seconds = secs ? atof(secs) : 3.0;
    nn_gpu_info gi;
    vs_err e;
    if (!nn_cuda_backend(0, NN_PREC_AUTO, &e) || nn_cuda_device_info(&gi, 0)) {
        fprintf(stderr, "train_gpu: %s\n", e.msg);
        return 1;
    }
    double pk_fp32, pk_tf32;
    card_peak(&pk_fp32, &pk_tf32, gi.name);
    printf("GPU: %s, compute %d.%d, %d SMs, %.0f GiB, driver %d.%d, runtime %d.%d\n", gi.name,
           gi.major, gi.minor, gi.sms, (double)gi.mem_total / (1 << 30), gi.driver / 1000,
           gi.driver % 1000 / 10, gi.runtime / 1000, gi.runtime % 1000 / 10);
    row rows[32];
    int nr = 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", plan);
    for (char *tok = strtok(buf, ","); tok && nr < 32; tok = strtok(NULL, ",")) {
        char model_name[32], mode[32];
        int batch;
        if (sscanf(tok, "%31[^:]:%d:%31s", model_name, &batch, mode) != 3) {
            fprintf(stderr, "train_gpu: bad plan entry '%s' (MODEL:BATCH:MODE)\n", tok);
            return 2;
        }
        rows[nr++] = run_row(model_name, batch, mode, seconds);
    }
    printf("\n| model | batch | mode | it/s | EGs/s | ms/it | TFLOP/s | %% of peak | GiB |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < nr; i++) {
        const row *r = &rows[i];
        if (!r->ok) {
            printf("| %s | %d | %s | error | | | | | |\n", r->model, r->batch, r->mode);
            continue;
        }
        double pk = strncmp(r->mode, "fp32", 4) == 0   ? pk_fp32
                    : strncmp(r->mode, "bf16", 4) == 0 ? 2 * pk_tf32
                                                       : pk_tf32;
        char pct[16] = "?";
        if (pk > 0) snprintf(pct, sizeof pct, "%.1f", 100 * r->tflops / pk);
        printf("| %s | %d | %s | %.1f | %.0f | %.2f | %.1f | %s | %.2f |\n", r->model, r->batch,
               r->mode, r->it_s, 2 * r->batch * r->it_s, r->ms, r->tflops, pct, r->gib);
    }
    return 0;
}
