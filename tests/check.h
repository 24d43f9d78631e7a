/* check.h: the test macros. A failed CHECK prints file:line and the expression and counts a
 * failure; the test's main returns check_report(), which prints a summary and the exit status. */
#ifndef VS_TEST_CHECK_H
#define VS_TEST_CHECK_H

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/backend.h"

static int check_failures, check_count;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        check_count++;                                                                             \
        if (!(cond)) {                                                                             \
            check_failures++;                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double check_a_ = (a), check_b_ = (b);                                                     \
        CHECKF(fabs(check_a_ - check_b_) <= (tol), "%s = %g, %s = %g (tol %g)", #a, check_a_, #b,  \
               check_b_, (double)(tol));                                                           \
    } while (0)

/* Real-data tests: ../shared/data beside the checkout, or $VISAGE_DATA. */
static inline const char *check_data_dir(void)
{
    const char *d = getenv("VISAGE_DATA");
    return d ? d : "../shared/data";
}

static inline int check_have_data(void)
{
    struct stat st;
    return stat(check_data_dir(), &st) == 0 && S_ISDIR(st.st_mode);
}

static inline const char *check_models_dir(void)
{
    const char *d = getenv("VISAGE_MODELS");
    return d ? d : "models";
}

static inline int check_have_models(void)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/ssd_mobilenetv1_model-weights_manifest.json", check_models_dir());
    return stat(p, &st) == 0;
}

/* Test data from one fixed xorshift stream, so a failure reproduces. */
__attribute__((unused)) static uint64_t check_rng_state = 0x9e3779b97f4a7c15ull;

/* uniform in (0, 1] */
static inline double check_urand(void)
{
    check_rng_state ^= check_rng_state << 13;
    check_rng_state ^= check_rng_state >> 7;
    check_rng_state ^= check_rng_state << 17;
    return (double)((check_rng_state >> 40) + 1) / (double)(1u << 24);
}

/* uniform in [-1, 1], never exactly zero */
static inline float check_frand(void)
{
    float u = (float)check_urand();
    return (check_rng_state & 2) ? u : -u;
}

/* n floats from check_frand (free()) */
static inline float *check_rand_buf(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = check_frand();
    return p;
}

/* rm -rf path (folders made read-only by a test included) */
static inline void check_rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *de;
    char p[4096];
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            check_rm_rf(p);
        }
    closedir(d);
    chmod(path, 0700);
    rmdir(path);
}

/* An activation in double precision, the reference the kernels are checked against. */
static inline double check_ref_act(double v, nn_act act, double alpha)
{
    switch (act) {
    case NN_ACT_NONE: return v;
    case NN_ACT_RELU: return v > 0 ? v : 0;
    case NN_ACT_RELU6: return v < 0 ? 0 : v > 6 ? 6 : v;
    case NN_ACT_LEAKY: return v > 0 ? v : alpha * v;
    case NN_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    }
    return v;
}

#define SKIP(...)                                                                                  \
    do {                                                                                           \
        printf("skipped: " __VA_ARGS__);                                                           \
        printf("\n");                                                                              \
        return 0;                                                                                  \
    } while (0)

static inline int check_report(const char *name)
{
    if (check_failures) {
        fprintf(stderr, "%s: %d of %d checks FAILED\n", name, check_failures, check_count);
        return 1;
    }
    printf("%s: %d checks passed\n", name, check_count);
    return 0;
}

#endif
