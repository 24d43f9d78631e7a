/* test_train_ops.c: the CPU backend's training operations of cpu_train.c. Every gradient against
 * central finite differences of a double-precision reference forward (and a perturbed gradient
 * must fail the same comparison); SSIM's value against a plain reference of tf.image.ssim; pixel
 * shuffle against its index formula; Adam against a double-precision Keras Adam; results equal
 * for 1, 2 and 3 threads; the finiteness check and fill. */
#include <float.h>
#include <stdint.h>
#include <time.h>

#include "check.h"
#include "err.h"
#include "nn/backend.h"
#include "flat_ops.h"

static const nn_backend *be;

/* ---- helpers ----------------------------------------------------------------------------- */

/* uniform in [lo, hi] with lo > 0: never zero */
static float frange(float lo, float hi)
{
    return lo + (hi - lo) * (float)check_urand();
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* How many got[i] are off want[i] by more than rtol |want[i]| + atol; reports the worst. */
static size_t count_off(const char *what, const float *got, const double *want, size_t n,
                        double rtol, double atol, int report)
{
    size_t bad = 0, worst = 0;
    double worst_err = -1;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= rtol * fabs(want[i]) + atol)) {
            bad++;
            if (!(err <= worst_err)) worst_err = err, worst = i;
        }
    }
    if (bad && report)
        fprintf(stderr, "%s: %zu of %zu values off, worst [%zu] got %.9g want %.9g\n", what, bad, n,
                worst, (double)got[worst], want[worst]);
    return bad;
}

/* A gradient against its numeric value: within rtol of each value plus atol_frac of the largest,
 * and the same comparison must fail once the largest value is off by 1%. */
static void check_grad(const char *what, const float *got, const double *want, size_t n,
                       double rtol, double atol_frac)
{
    double mx = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(want[i]) > mx) mx = fabs(want[i]), at = i;
    CHECKF(mx > 0, "%s: the numeric gradient is all zeros", what);
    double atol = atol_frac * mx;
    CHECKF(count_off(what, got, want, n, rtol, atol, 1) == 0, "%s", what);
    float *bent = vs_malloc(n * sizeof *bent);
    memcpy(bent, got, n * sizeof *bent);
    bent[at] += (float)(0.01 * want[at]);
    CHECKF(count_off(what, bent, want, n, rtol, atol, 0) == 1, "%s: a 1%% error passes", what);
    free(bent);
}

static nn_tensor tensor_of(float *d, int n, int h, int w, int c)
{
    nn_tensor t = {.d = d, .n = n, .h = h, .w = w, .c = c};
    return t;
}

/* ---- activation backward ----------------------------------------------------------------- */

static void test_act_bwd(void)
{
    static const struct {
        nn_act act;
        float alpha;
        const char *name;
    } cases[] = {
        {NN_ACT_NONE, 0, "none"},          {NN_ACT_RELU, 0, "relu"},
        {NN_ACT_RELU6, 0, "relu6"},        {NN_ACT_LEAKY, 0.1f, "leaky 0.1"},
        {NN_ACT_LEAKY, 0.2f, "leaky 0.2"}, {NN_ACT_SIGMOID, 0, "sigmoid"},
    };
    const size_t n = 3 * 32768 + 101; /* several tasks and a partial one */
    float *x = vs_malloc(n * sizeof *x), *y = vs_malloc(n * sizeof *y);
    float *dy = vs_malloc(n * sizeof *dy), *dx = vs_malloc(n * sizeof *dx);
    double *want = vs_malloc(n * sizeof *want);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        nn_act act = cases[c].act;
        float alpha = cases[c].alpha;
        const double h = 1e-4; /* |x| and |x - 6| stay above it: no kink inside a difference */
        for (size_t i = 0; i < n; i++) {
            do x[i] = 8.0f * check_frand();
            while (fabsf(x[i]) < 1e-2f || fabsf(x[i] - 6.0f) < 1e-2f);
            dy[i] = check_frand();
            double num =
                (check_ref_act(x[i] + h, act, alpha) - check_ref_act(x[i] - h, act, alpha)) /
                (2 * h);
            want[i] = dy[i] * num;
        }
        memcpy(y, x, n * sizeof *y);
        be_act(be, y, n, act, alpha);
        for (size_t i = 0; i < n; i++) dx[i] = NAN;
        be_act_bwd(be, dx, dy, y, n, act, alpha);
        char what[64];
        snprintf(what, sizeof what, "act_bwd %s", cases[c].name);
        check_grad(what, dx, want, n, 1e-4, 1e-6);
        /* in place (dx == dy) gives the same bits */
        be_act_bwd(be, dy, dy, y, n, act, alpha);
        CHECKF(memcmp(dx, dy, n * sizeof *dx) == 0, "%s in place differs", what);
        if (act == NN_ACT_LEAKY) { /* the other slope must fail */
            for (size_t i = 0; i < n; i++) dy[i] = (float)(want[i] / (x[i] > 0 ? 1 : alpha));
            be_act_bwd(be, dx, dy, y, n, act, alpha == 0.1f ? 0.2f : 0.1f);
            CHECKF(count_off(what, dx, want, n, 1e-4, 1e-6, 0) > 0, "%s: wrong alpha passes", what);
        }
    }
    /* the kinks: TF's relu/relu6 gradient is 0 at y = 0 and y = 6, leaky's is alpha at 0 */
    float yk[3] = {0.0f, 6.0f, 3.0f}, gk[3] = {1, 1, 1}, dk[3];
    be_act_bwd(be, dk, gk, yk, 3, NN_ACT_RELU6, 0);
    CHECK(dk[0] == 0 && dk[1] == 0 && dk[2] == 1);
    be_act_bwd(be, dk, gk, yk, 1, NN_ACT_LEAKY, 0.2f);
    CHECK(dk[0] == 0.2f);
    free(x), free(y), free(dy), free(dx), free(want);
}

/* ---- pixel shuffle ----------------------------------------------------------------------- */

static void test_shuffle(int n, int h, int w, int C, int r)
{
    nn_tensor x = nn_tensor_new(n, h, w, r * r * C), y = nn_tensor_new(n, h * r, w * r, C);
    nn_tensor back = nn_tensor_new(n, h, w, r * r * C);
    for (size_t i = 0; i < nn_numel(&x); i++) x.d[i] = check_frand();
    for (size_t i = 0; i < nn_numel(&y); i++) y.d[i] = NAN;
    for (size_t i = 0; i < nn_numel(&back); i++) back.d[i] = NAN;
    be->depth_to_space(&y, &x, r);
    size_t bad = 0;
    /* y[n, yy*r+i, xx*r+j, c] = x[n, yy, xx, (i*r + j)*C + c] */
    for (int b = 0; b < n; b++)
        for (int yy = 0; yy < h; yy++)
            for (int i = 0; i < r; i++)
                for (int xx = 0; xx < w; xx++)
                    for (int j = 0; j < r; j++)
                        for (int c = 0; c < C; c++) {
                            size_t yi =
                                (((size_t)b * h * r + yy * r + i) * w * r + xx * r + j) * C + c;
                            size_t xi = (((size_t)b * h + yy) * w + xx) * r * r * C +
                                        ((size_t)i * r + j) * C + c;
                            bad += memcmp(&y.d[yi], &x.d[xi], sizeof(float)) != 0;
                        }
    CHECKF(bad == 0, "depth_to_space [%d,%d,%d,%d] r %d: %zu values misplaced", n, h, w, C, r, bad);
    be->space_to_depth(&back, &y, r);
    CHECKF(memcmp(back.d, x.d, nn_numel(&x) * sizeof(float)) == 0,
           "space_to_depth is not depth_to_space's inverse [%d,%d,%d,%d] r %d", n, h, w, C, r);
    nn_tensor_free(&x), nn_tensor_free(&y), nn_tensor_free(&back);
}

/* ---- loss references (double) ------------------------------------------------------------ */

/* tf.image.ssim of one image pair [h, w, c], straight from its definition: the 11x11 window is
 * softmax(-(dy^2 + dx^2) / (2 sigma^2)), valid positions, per channel, compensation 1. */
static double ref_ssim_image(const double *x, const double *y, int h, int w, int c)
{
    double g[11][11], gs = 0;
    for (int a = 0; a < 11; a++)
        for (int b = 0; b < 11; b++) {
            g[a][b] = exp(-((a - 5.0) * (a - 5.0) + (b - 5.0) * (b - 5.0)) / (2 * 1.5 * 1.5));
            gs += g[a][b];
        }
    const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
    double sum = 0;
    for (int oy = 0; oy + 11 <= h; oy++)
        for (int ox = 0; ox + 11 <= w; ox++)
            for (int ch = 0; ch < c; ch++) {
                double mx = 0, my = 0, sq = 0, xy = 0;
                for (int a = 0; a < 11; a++)
                    for (int b = 0; b < 11; b++) {
                        size_t i = ((size_t)(oy + a) * w + ox + b) * c + ch;
                        double k = g[a][b] / gs;
                        mx += k * x[i], my += k * y[i];
                        sq += k * (x[i] * x[i] + y[i] * y[i]), xy += k * x[i] * y[i];
                    }
                double lum = (2 * mx * my + c1) / (mx * mx + my * my + c1);
                double cs = (2 * xy - 2 * mx * my + c2) / (sq - mx * mx - my * my + c2);
                sum += lum * cs;
            }
    return sum / ((double)(h - 10) * (w - 10) * c);
}

/* The loss term of image b alone (L is the mean of these over the batch): pred and target
 * [n, h, w, c] in double, mask [n, h, w] or NULL, both multiplied by the mask first. */
static double ref_image_loss(nn_loss_kind kind, const double *p, const float *t, const float *m,
                             int b, int h, int w, int c)
{
    size_t len = (size_t)h * w * c, off = (size_t)b * len;
    double *x = vs_malloc(len * sizeof *x), *y = vs_malloc(len * sizeof *y);
    for (size_t i = 0; i < len; i++) {
        double mk = m ? m[(off + i) / c] : 1.0;
        x[i] = p[off + i] * mk, y[i] = t[off + i] * mk;
    }
    double l = 0;
    if (kind == NN_LOSS_SSIM) {
        l = 1.0 - ref_ssim_image(x, y, h, w, c);
    } else {
        for (size_t i = 0; i < len; i++)
            l += kind == NN_LOSS_MAE ? fabs(x[i] - y[i]) : (x[i] - y[i]) * (x[i] - y[i]);
        l /= (double)len;
    }
    free(x), free(y);
    return l;
}

static double ref_loss(nn_loss_kind kind, const double *p, const float *t, const float *m, int n,
                       int h, int w, int c)
{
    double l = 0;
    for (int b = 0; b < n; b++) l += ref_image_loss(kind, p, t, m, b, h, w, c);
    return l / n;
}

static const char *loss_name(nn_loss_kind k)
{
    return k == NN_LOSS_MAE ? "mae" : k == NN_LOSS_MSE ? "mse" : "ssim";
}

typedef enum mask_kind { MASK_NONE, MASK_RANDOM, MASK_BINARY } mask_kind;
static const char *mask_name[] = {"no mask", "random mask", "binary mask"};

/* pred in (0, 1), target near it (or independent) like a reconstruction, mask per kind */
static void loss_data(float *p, float *t, float *m, size_t numel, size_t npix, mask_kind mk,
                      int correlated)
{
    for (size_t i = 0; i < numel; i++) {
        p[i] = frange(0.02f, 0.98f);
        t[i] = correlated ? fminf(fmaxf(p[i] + 0.15f * check_frand(), 0.01f), 0.99f)
                          : frange(0.02f, 0.98f);
    }
    for (size_t i = 0; m && i < npix; i++)
        m[i] = mk == MASK_BINARY ? (check_urand() < 0.6 ? 1.0f : 0.0f) : frange(0.05f, 1.0f);
}

/* The gradient of one loss term against central differences of the reference, at `count`
 * elements (all when count is 0), and its value; weight != 1 and a loss that starts non-zero. */
static void check_loss(nn_loss_kind kind, int n, int h, int w, int c, mask_kind mk, float weight,
                       size_t count, int correlated)
{
    size_t numel = (size_t)n * h * w * c, npix = (size_t)n * h * w;
    float *p = vs_malloc(numel * sizeof *p), *t = vs_malloc(numel * sizeof *t);
    float *m = mk == MASK_NONE ? NULL : vs_malloc(npix * sizeof *m);
    float *d = vs_malloc(numel * sizeof *d);
    double *pd = vs_malloc(numel * sizeof *pd);
    loss_data(p, t, m, numel, npix, mk, correlated);
    for (size_t i = 0; i < numel; i++) pd[i] = p[i];

    nn_tensor tp = tensor_of(p, n, h, w, c), tt = tensor_of(t, n, h, w, c);
    be->fill(d, numel, 0.0f);
    float loss = 0.25f;
    be->loss(d, &loss, &tp, &tt, m, kind, weight);
    double want = 0.25 + weight * ref_loss(kind, pd, t, m, n, h, w, c);
    char what[128];
    snprintf(what, sizeof what, "%s [%d,%d,%d,%d] %s weight %g", loss_name(kind), n, h, w, c,
             mask_name[mk], (double)weight);
    CHECKF(fabs(loss - want) <= 2e-6 * fabs(want) + 1e-6, "%s: loss %.9g want %.9g", what,
           (double)loss, want);

    /* numeric gradient: only the term of the perturbed element's image changes */
    size_t k = count ? count : numel;
    float *got = vs_malloc(k * sizeof *got);
    double *num = vs_malloc(k * sizeof *num);
    const double eps = kind == NN_LOSS_MAE ? 1e-6 : 1e-5;
    for (size_t s = 0; s < k; s++) {
        size_t i = count ? (size_t)(check_urand() * (double)(numel - 1)) : s;
        int b = (int)(i / ((size_t)h * w * c));
        double keep = pd[i];
        pd[i] = keep + eps;
        double lp = ref_image_loss(kind, pd, t, m, b, h, w, c);
        pd[i] = keep - eps;
        double lm = ref_image_loss(kind, pd, t, m, b, h, w, c);
        pd[i] = keep;
        num[s] = weight * (lp - lm) / (2 * eps) / n;
        got[s] = d[i];
    }
    check_grad(what, got, num, k, 2e-3, 2e-4);

    /* accumulation: a second call adds the same again */
    float *d1 = vs_malloc(numel * sizeof *d1);
    memcpy(d1, d, numel * sizeof *d1);
    be->loss(d, &loss, &tp, &tt, m, kind, weight);
    size_t bad = 0;
    for (size_t i = 0; i < numel; i++) bad += d[i] != 2.0f * d1[i];
    CHECKF(bad == 0, "%s: the second call did not add the same gradient (%zu values)", what, bad);
    want = 0.25 + 2.0 * (want - 0.25);
    CHECKF(fabs(loss - want) <= 2e-6 * fabs(want) + 1e-6, "%s: twice: loss %.9g want %.9g", what,
           (double)loss, want);
    free(p), free(t), free(m), free(d), free(d1), free(pd), free(got), free(num);
}

/* SSIM's value alone at a real size against the reference (the gradient is checked above) */
static void check_ssim_value(int n, int h, int w, int c, mask_kind mk, int correlated)
{
    size_t numel = (size_t)n * h * w * c, npix = (size_t)n * h * w;
    float *p = vs_malloc(numel * sizeof *p), *t = vs_malloc(numel * sizeof *t);
    float *m = mk == MASK_NONE ? NULL : vs_malloc(npix * sizeof *m);
    float *d = vs_malloc(numel * sizeof *d);
    double *pd = vs_malloc(numel * sizeof *pd);
    loss_data(p, t, m, numel, npix, mk, correlated);
    for (size_t i = 0; i < numel; i++) pd[i] = p[i];
    nn_tensor tp = tensor_of(p, n, h, w, c), tt = tensor_of(t, n, h, w, c);
    float loss = 0.0f;
    be->loss(d, &loss, &tp, &tt, m, NN_LOSS_SSIM, 1.0f);
    double want = ref_loss(NN_LOSS_SSIM, pd, t, m, n, h, w, c);
    CHECKF(fabs(loss - want) <= 1e-5 * want, "ssim [%d,%d,%d,%d] %s: %.9g want %.9g", n, h, w, c,
           mask_name[mk], (double)loss, want);
    free(p), free(t), free(m), free(d), free(pd);
}

/* The same bits for 1, 2 and 3 threads. */
static void check_loss_threads(nn_loss_kind kind, int n, int h, int w, int c)
{
    size_t numel = (size_t)n * h * w * c, npix = (size_t)n * h * w;
    float *p = vs_malloc(numel * sizeof *p), *t = vs_malloc(numel * sizeof *t);
    float *m = vs_malloc(npix * sizeof *m);
    float *d[3], loss[3];
    loss_data(p, t, m, numel, npix, MASK_RANDOM, 1);
    nn_tensor tp = tensor_of(p, n, h, w, c), tt = tensor_of(t, n, h, w, c);
    int keep = nn_cpu_threads();
    for (int k = 0; k < 3; k++) {
        nn_cpu_set_threads(k + 1);
        d[k] = vs_malloc(numel * sizeof *d[k]);
        be->fill(d[k], numel, 0.5f);
        loss[k] = 1.0f;
        be->loss(d[k], &loss[k], &tp, &tt, m, kind, 0.3f);
    }
    nn_cpu_set_threads(keep);
    for (int k = 1; k < 3; k++) {
        CHECKF(loss[k] == loss[0] && memcmp(d[k], d[0], numel * sizeof(float)) == 0,
               "%s: %d threads differ from 1", loss_name(kind), k + 1);
    }
    free(p), free(t), free(m), free(d[0]), free(d[1]), free(d[2]);
}

static void test_loss(void)
{
    static const nn_loss_kind kinds[] = {NN_LOSS_MAE, NN_LOSS_MSE, NN_LOSS_SSIM};
    for (int k = 0; k < 3; k++)
        for (int mk = MASK_NONE; mk <= MASK_BINARY; mk++) {
            float weight = mk == MASK_NONE ? 1.0f : mk == MASK_RANDOM ? 0.7f : 2.5f;
            /* every element: SSIM on 14x13 has valid rows 0..3 and columns 0..2, so the window
             * edges and the 'full' transposed filter's clipping are all reached */
            if (kinds[k] == NN_LOSS_SSIM) {
                check_loss(kinds[k], 2, 14, 13, 3, (mask_kind)mk, weight, 0, 1);
                check_loss(kinds[k], 2, 14, 13, 3, (mask_kind)mk, weight, 0, 0);
            } else {
                check_loss(kinds[k], 3, 5, 7, 3, (mask_kind)mk, weight, 0, 1);
            }
        }
    /* other channel counts and shapes: one valid position; one channel; wide rows */
    check_loss(NN_LOSS_SSIM, 2, 11, 11, 4, MASK_RANDOM, 1.3f, 0, 1);
    check_loss(NN_LOSS_SSIM, 1, 12, 17, 1, MASK_BINARY, 0.5f, 0, 1);
    check_loss(NN_LOSS_SSIM, 3, 30, 26, 3, MASK_RANDOM, 1.0f, 400, 1);
    check_loss(NN_LOSS_MSE, 2, 64, 80, 3, MASK_RANDOM, 1.5f, 400, 1); /* several tasks */
    check_loss(NN_LOSS_MAE, 2, 64, 80, 3, MASK_BINARY, 0.5f, 400, 1);

    check_ssim_value(4, 64, 64, 3, MASK_NONE, 1);
    check_ssim_value(2, 70, 66, 3, MASK_RANDOM, 1);
    check_ssim_value(2, 64, 64, 3, MASK_BINARY, 0);

    check_loss_threads(NN_LOSS_SSIM, 5, 40, 36, 3);
    check_loss_threads(NN_LOSS_MSE, 4, 64, 64, 3);
    check_loss_threads(NN_LOSS_MAE, 4, 64, 64, 3);
}

/* ---- Adam -------------------------------------------------------------------------------- */

static void test_adam(float eps)
{
    const size_t n = 2 * 32768 + 77;
    nn_adam h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = eps};
    float *p = vs_malloc(n * sizeof *p), *m = vs_malloc(n * sizeof *m);
    float *v = vs_malloc(n * sizeof *v), *g = vs_malloc(n * sizeof *g);
    double *rp = vs_malloc(n * sizeof *rp), *rm = vs_malloc(n * sizeof *rm);
    double *rv = vs_malloc(n * sizeof *rv);
    for (size_t i = 0; i < n; i++)
        p[i] = check_frand(), rp[i] = p[i], m[i] = v[i] = 0, rm[i] = rv[i] = 0;
    for (long t = 1; t <= 5; t++) {
        for (size_t i = 0; i < n; i++) g[i] = check_frand() * (i % 3 == 0 ? 1e-3f : 1.0f);
        h.t = t;
        be->adam(p, m, v, g, n, &h);
        double b1 = h.beta1, b2 = h.beta2;
        double lr_t = h.lr * sqrt(1 - pow(b2, (double)t)) / (1 - pow(b1, (double)t));
        double step_max = 0;
        for (size_t i = 0; i < n; i++) {
            rm[i] = b1 * rm[i] + (1 - b1) * g[i];
            rv[i] = b2 * rv[i] + (1 - b2) * (double)g[i] * g[i];
            double step = lr_t * rm[i] / (sqrt(rv[i]) + h.eps);
            rp[i] -= step;
            step_max = fmax(step_max, fabs(step));
        }
        char what[64];
        snprintf(what, sizeof what, "adam eps %g t %ld", (double)eps, t);
        CHECKF(count_off(what, m, rm, n, 1e-5, 1e-7, 1) == 0, "%s: m", what); /* m cancels */
        CHECKF(count_off(what, v, rv, n, 1e-5, 1e-12, 1) == 0, "%s: v", what);
        /* p within float rounding of p plus 0.1% of the largest step */
        CHECKF(count_off(what, p, rp, n, 2e-7, 1e-3 * step_max, 1) == 0, "%s: p", what);
        if (t == 1) { /* t counted from 0 or lr without the bias correction must fail */
            float *q = vs_malloc(n * sizeof *q), *qm = vs_calloc(n, sizeof *qm);
            float *qv = vs_calloc(n, sizeof *qv);
            for (size_t i = 0; i < n; i++)
                q[i] = (float)(rp[i] + lr_t * rm[i] / (sqrt(rv[i]) + eps));
            nn_adam h2 = h;
            h2.t = 2;
            be->adam(q, qm, qv, g, n, &h2);
            CHECKF(count_off(what, q, rp, n, 2e-7, 1e-3 * step_max, 0) > 0,
                   "%s: t = 2 passes as t = 1", what);
            free(q), free(qm), free(qv);
        }
    }
    free(p), free(m), free(v), free(g), free(rp), free(rm), free(rv);
}

/* ---- finiteness, fill -------------------------------------------------------------------- */

static void test_all_finite(void)
{
    const size_t n = 3 * 32768 + 17;
    float *x = vs_malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = check_frand() * (i % 7 == 0 ? 1e30f : 1.0f);
    x[5] = FLT_MAX, x[6] = -FLT_MAX, x[7] = FLT_MIN / 4, x[8] = -0.0f; /* finite extremes */
    CHECK(be->all_finite(x, n) == 1);
    CHECK(be->all_finite(x, 0) == 1);
    static const size_t at[] = {0, 1, 32767, 32768, 32769, 50000, 65535, 65536, 3 * 32768, n - 1};
    const float bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (size_t a = 0; a < sizeof at / sizeof at[0]; a++)
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            float keep = x[at[a]];
            x[at[a]] = bad[b];
            CHECKF(be->all_finite(x, n) == 0, "%g at %zu not found", (double)bad[b], at[a]);
            CHECKF(be->all_finite(x + at[a], 1) == 0, "%g alone not found", (double)bad[b]);
            if (at[a] > 0) CHECK(be->all_finite(x, at[a]) == 1); /* just before it: fine */
            x[at[a]] = keep;
        }
    CHECK(be->all_finite(x, n) == 1);
    free(x);
}

static void test_fill(void)
{
    const size_t n = 2 * 32768 + 5;
    float *x = vs_malloc((n + 1) * sizeof *x);
    for (size_t i = 0; i <= n; i++) x[i] = NAN;
    be->fill(x, n, 3.5f);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += x[i] != 3.5f;
    CHECKF(bad == 0, "fill: %zu values not set", bad);
    CHECK(isnan(x[n])); /* nothing past n */
    be->fill(x, 0, 1.0f);
    CHECK(x[0] == 3.5f);
    free(x);
}

/* ---- timing (printed, not checked) ------------------------------------------------------- */

static void time_loss(nn_loss_kind kind, int n, int h, int w, int c, int reps)
{
    size_t numel = (size_t)n * h * w * c, npix = (size_t)n * h * w;
    float *p = vs_malloc(numel * sizeof *p), *t = vs_malloc(numel * sizeof *t);
    float *m = vs_malloc(npix * sizeof *m), *d = vs_malloc(numel * sizeof *d);
    loss_data(p, t, m, numel, npix, MASK_RANDOM, 1);
    be->fill(d, numel, 0.0f);
    nn_tensor tp = tensor_of(p, n, h, w, c), tt = tensor_of(t, n, h, w, c);
    float loss = 0;
    be->loss(d, &loss, &tp, &tt, m, kind, 1.0f); /* warm-up */
    double t0 = now_s();
    for (int r = 0; r < reps; r++) be->loss(d, &loss, &tp, &tt, m, kind, 1.0f);
    printf("  %s [%d,%d,%d,%d] masked: %.3f ms (%d threads)\n", loss_name(kind), n, h, w, c,
           (now_s() - t0) / reps * 1e3, nn_cpu_threads());
    free(p), free(t), free(m), free(d);
}

int main(void)
{
    be = nn_cpu_backend();
    test_act_bwd();
    test_shuffle(2, 3, 5, 3, 2);
    test_shuffle(1, 4, 2, 2, 3);
    test_shuffle(3, 7, 6, 1, 1);
    test_shuffle(4, 16, 16, 64, 2); /* several tasks */
    test_loss();
    test_adam(1e-7f);
    test_adam(1e-3f);
    test_all_finite();
    test_fill();
    time_loss(NN_LOSS_SSIM, 16, 64, 64, 3, 10);
    time_loss(NN_LOSS_MAE, 16, 64, 64, 3, 10);
    return check_report("test_train_ops");
}
