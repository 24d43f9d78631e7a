/* cpu_pool.h: internals shared by the CPU backend's files (core/nn/cpu_*.c), not a public API.
 * The pool is the backend's parallel-for: a few persistent pthreads (the calling thread is worker
 * 0) pull task indices from a shared counter; each worker owns a scratch buffer that stays valid
 * for the whole run (im2col blocks live there). Below it, the kernels cpu_conv.c gives
 * cpu_backend.c for its nn_backend struct. */
#ifndef NN_CPU_POOL_H
#define NN_CPU_POOL_H

#include <stddef.h>

#include "backend.h"

#define CPU_POOL_MAX_THREADS 64

/* Runs fn(ctx, task, worker) for every task in [0, n_tasks); worker is in [0, cpu_pool_threads()).
 * Runs are serialised across the process; calling it from inside a task is a bug. */
typedef void (*cpu_pool_fn)(void *ctx, int task, int worker);
void cpu_pool_run(cpu_pool_fn fn, void *ctx, int n_tasks);

/* n = 0: one per online CPU. Idle workers are stopped now and restarted by the next run. */
void cpu_pool_set_threads(int n);
int cpu_pool_threads(void);

/* A 64-byte aligned buffer of at least `bytes` owned by `worker`; valid inside a run, from that
 * worker's tasks only. Contents are undefined. */
void *cpu_pool_scratch(int worker, size_t bytes);

/* ---- kernels in cpu_conv.c (shapes and layouts as in backend.h) ---- */
void cpu_conv2d(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                const nn_conv_desc *d);
void cpu_depthwise(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                   const nn_conv_desc *d);
/* y: [rows, c] in place: y = act(y + b) (b: [c], may be NULL). The GEMM epilogue. */
void cpu_bias_act(float *y, const float *b, size_t rows, size_t c, nn_act act, float alpha);
/* Runs a pool whose tasks call cblas_sgemm, with OpenBLAS held to one thread meanwhile (the pool
 * already occupies every core; nested BLAS threads would only fight it). */
void cpu_run_gemm_tasks(cpu_pool_fn fn, void *ctx, int n_tasks);

#endif
