/* cpu_pool.h: the CPU backend's parallel-for, shared by its files (core/nn/cpu_*.c) and by the
 * CPU-side work of core/ that is not tensor arithmetic (loading face sets, augmentation); front
 * ends do not call it. A few persistent pthreads (the calling thread is worker 0) pull task indices
 * from a shared counter; each worker owns a scratch buffer that stays valid for the whole run
 * (im2col blocks live there). */
#ifndef NN_CPU_POOL_H
#define NN_CPU_POOL_H

#include <stddef.h>

#define CPU_POOL_MAX_THREADS 64

/* The hot element-wise loops (bias + activation, activation backward) are also compiled for AVX2
 * and AVX-512, and the loader picks the best the CPU runs (GCC's function multi-versioning; the
 * baseline build targets x86-64-v2). Every version gives the same bits: ISO C mode contracts
 * nothing into FMAs, and these loops do not reduce. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CPU_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define CPU_CLONES
#endif

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

#endif
