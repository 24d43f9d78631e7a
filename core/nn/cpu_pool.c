/* cpu_pool.c: the CPU backend's parallel-for (see cpu_pool.h). A run bumps a generation counter;
 * the workers and the caller take task indices from an atomic counter, and the caller waits until
 * every worker has checked out. Between runs a worker spins briefly (a network's layers follow
 * each other within microseconds, and a futex wake-up costs tens of them), then sleeps on a
 * condition variable. */
#include "cpu_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "../err.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER; /* one run (or resize) at a time */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;       /* for sleeping on the cvs */
static pthread_cond_t cv_start = PTHREAD_COND_INITIALIZER;
static pthread_cond_t cv_done = PTHREAD_COND_INITIALIZER;

/* pause-loop iterations a waiting thread spins before it sleeps: some 50-100 us */
#define SPIN_ITERS 4000

static atomic_int n_threads; /* workers including the caller */
static int n_started;        /* pthreads running (excluding the caller) */
static pthread_t tids[CPU_POOL_MAX_THREADS];
static unsigned long start_gen[CPU_POOL_MAX_THREADS];
static atomic_ulong generation; /* written under mu, read by spinning workers without it */
static atomic_int stopping;
static atomic_int busy; /* workers not yet done with the current generation */

static cpu_pool_fn job_fn;
static void *job_ctx;
static int job_tasks;
static atomic_int next_task;

static void *scratch[CPU_POOL_MAX_THREADS];
static size_t scratch_cap[CPU_POOL_MAX_THREADS];

static _Thread_local int in_task;

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > CPU_POOL_MAX_THREADS) n = CPU_POOL_MAX_THREADS;
    return (int)n;
}

static void init_threads(void)
{
    atomic_store(&n_threads, online_cpus());
}

static void work(int worker)
{
    in_task = 1;
    for (;;) {
        int t = atomic_fetch_add(&next_task, 1);
        if (t >= job_tasks) break;
        job_fn(job_ctx, t, worker);
    }
    in_task = 0;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&mu);
    unsigned long seen = start_gen[id];
    pthread_mutex_unlock(&mu);
    for (;;) {
        unsigned long g = atomic_load(&generation);
        for (int i = 0; g == seen && !atomic_load(&stopping) && i < SPIN_ITERS; i++) {
            cpu_relax();
            g = atomic_load(&generation);
        }
        if (g == seen && !atomic_load(&stopping)) {
            pthread_mutex_lock(&mu);
            while ((g = atomic_load(&generation)) == seen && !atomic_load(&stopping))
                pthread_cond_wait(&cv_start, &mu);
            pthread_mutex_unlock(&mu);
        }
        if (atomic_load(&stopping)) break;
        seen = g;
        work(id);
        if (atomic_fetch_sub(&busy, 1) == 1) {
            pthread_mutex_lock(&mu);
            pthread_cond_signal(&cv_done);
            pthread_mutex_unlock(&mu);
        }
    }
    return NULL;
}

/* Called with run_lock held and no run in progress. */
static void stop_workers(void)
{
    pthread_mutex_lock(&mu);
    atomic_store(&stopping, 1);
    pthread_cond_broadcast(&cv_start);
    pthread_mutex_unlock(&mu);
    for (int i = 1; i <= n_started; i++) VS_CHECK(pthread_join(tids[i], NULL) == 0);
    atomic_store(&stopping, 0);
    n_started = 0;
}

static void start_workers(int n)
{
    for (int i = n_started + 1; i < n; i++) {
        start_gen[i] = atomic_load(&generation);
        VS_CHECK(pthread_create(&tids[i], NULL, worker_main, (void *)(intptr_t)i) == 0);
        n_started = i;
    }
}

void cpu_pool_run(cpu_pool_fn fn, void *ctx, int n_tasks)
{
    VS_CHECK(!in_task); /* nested runs would deadlock on run_lock */
    if (n_tasks <= 0) return;
    pthread_once(&init_once, init_threads);
    pthread_mutex_lock(&run_lock);
    int n = atomic_load(&n_threads);
    job_fn = fn, job_ctx = ctx, job_tasks = n_tasks;
    atomic_store(&next_task, 0);
    if (n == 1 || n_tasks == 1) {
        work(0);
    } else {
        if (n_started < n - 1) start_workers(n);
        atomic_store(&busy, n - 1);
        pthread_mutex_lock(&mu);
        atomic_fetch_add(&generation, 1); /* publishes the job fields above */
        pthread_cond_broadcast(&cv_start);
        pthread_mutex_unlock(&mu);
        work(0);
        for (int i = 0; atomic_load(&busy) > 0 && i < SPIN_ITERS; i++) cpu_relax();
        if (atomic_load(&busy) > 0) {
            pthread_mutex_lock(&mu);
            while (atomic_load(&busy) > 0) pthread_cond_wait(&cv_done, &mu);
            pthread_mutex_unlock(&mu);
        }
    }
    pthread_mutex_unlock(&run_lock);
}

void cpu_pool_set_threads(int n)
{
    VS_CHECK(!in_task);
    pthread_once(&init_once, init_threads);
    if (n <= 0) n = online_cpus();
    if (n > CPU_POOL_MAX_THREADS) n = CPU_POOL_MAX_THREADS;
    pthread_mutex_lock(&run_lock);
    if (n != atomic_load(&n_threads)) {
        stop_workers();
        atomic_store(&n_threads, n);
    }
    pthread_mutex_unlock(&run_lock);
}

int cpu_pool_threads(void)
{
    pthread_once(&init_once, init_threads);
    return atomic_load(&n_threads);
}

void *cpu_pool_scratch(int worker, size_t bytes)
{
    VS_CHECK(worker >= 0 && worker < CPU_POOL_MAX_THREADS);
    if (scratch_cap[worker] < bytes) {
        size_t cap = (bytes + 65535) & ~(size_t)65535;
        free(scratch[worker]);
        scratch[worker] = aligned_alloc(64, cap);
        VS_CHECK(scratch[worker] != NULL);
        scratch_cap[worker] = cap;
    }
    return scratch[worker];
}
