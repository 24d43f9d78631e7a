/* test_nn.c: the CPU backend's ops against plain-loop references (double precision, random data,
 * 1 and 2 threads), padding geometry against hand values, batch-norm folding, and the TF.js weight
 * loader on synthetic manifests (and on the real SSD manifest when the models are present). */
#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "err.h"
#include "flat_ops.h"
#include "nn/backend.h"
#include "nn/half.h"
#include "nn/weights.h"

static const nn_backend *be;

/* ---- helpers ----------------------------------------------------------------------------- */

static nn_tensor rand_tensor(int n, int h, int w, int c)
{
    nn_tensor t = nn_tensor_new(n, h, w, c);
    for (size_t i = 0; i < nn_numel(&t); i++) t.d[i] = check_frand();
    return t;
}

/* An output tensor full of NaN, so a value the op forgets to write fails the comparison. */
static nn_tensor nan_tensor(int n, int h, int w, int c)
{
    nn_tensor t = nn_tensor_new(n, h, w, c);
    for (size_t i = 0; i < nn_numel(&t); i++) t.d[i] = NAN;
    return t;
}

/* got vs want within fp32 accumulation error: 1e-5 of the sum of |terms| (mag), or relative. */
static void compare(const char *what, const float *got, const double *want, const double *mag,
                    size_t n)
{
    size_t bad = 0, worst = 0;
    double worst_err = -1;
    for (size_t i = 0; i < n; i++) {
        double tol = mag ? 1e-5 * mag[i] + 1e-6 : 1e-5 * (1 + fabs(want[i]));
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= tol)) {
            bad++;
            if (!(err <= worst_err)) worst_err = err, worst = i;
        }
    }
    CHECKF(bad == 0, "%s: %zu of %zu values off, first worst [%zu] got %g want %g", what, bad, n,
           worst, (double)got[worst], want[worst]);
}

static const char *act_name[] = {"none", "relu", "relu6", "leaky", "sigmoid"};

/* ---- conv2d and depthwise ---------------------------------------------------------------- */

typedef struct conv_case {
    int n, h, w, cin, cout, kh, kw, sh, sw;
    int same; /* 1: TF same padding, 0: the explicit pads below */
    int pt, pl, pb, pr;
    nn_act act;
    int no_bias;
} conv_case;

static void case_desc(nn_conv_desc *d, const conv_case *c)
{
    if (c->same) {
        nn_conv_geometry(d, c->h, c->w, c->kh, c->kw, c->sh, c->sw, NN_PAD_SAME);
    } else {
        *d = (nn_conv_desc){.kh = c->kh,
                            .kw = c->kw,
                            .sh = c->sh,
                            .sw = c->sw,
                            .pad_t = c->pt,
                            .pad_l = c->pl,
                            .pad_b = c->pb,
                            .pad_r = c->pr};
    }
    d->act = c->act;
    d->alpha = 0.1f;
}

/* ref, mag: [n, oh, ow, cout]; depthwise: cin == cout, w [kh, kw, c] */
static void ref_conv(double *ref, double *mag, const nn_tensor *x, const float *w, const float *b,
                     int cout, const nn_conv_desc *d, int oh, int ow, int depthwise)
{
    for (int n = 0; n < x->n; n++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int co = 0; co < cout; co++) {
                    double s = b ? b[co] : 0, m = fabs(s);
                    for (int ky = 0; ky < d->kh; ky++)
                        for (int kx = 0; kx < d->kw; kx++) {
                            int iy = oy * d->sh - d->pad_t + ky, ix = ox * d->sw - d->pad_l + kx;
                            if (iy < 0 || iy >= x->h || ix < 0 || ix >= x->w) continue;
                            const float *xp = x->d + (((size_t)n * x->h + iy) * x->w + ix) * x->c;
                            if (depthwise) {
                                double v = (double)xp[co] * w[(ky * d->kw + kx) * cout + co];
                                s += v, m += fabs(v);
                            } else {
                                for (int ci = 0; ci < x->c; ci++) {
                                    double v =
                                        (double)xp[ci] *
                                        w[((size_t)(ky * d->kw + kx) * x->c + ci) * cout + co];
                                    s += v, m += fabs(v);
                                }
                            }
                        }
                    size_t i = (((size_t)n * oh + oy) * ow + ox) * cout + co;
                    ref[i] = check_ref_act(s, d->act, d->alpha);
                    mag[i] = m;
                }
}

static void run_conv_case(const conv_case *c, int depthwise)
{
    nn_conv_desc d;
    case_desc(&d, c);
    int cout = depthwise ? c->cin : c->cout;
    int oh = (c->h + d.pad_t + d.pad_b - d.kh) / d.sh + 1;
    int ow = (c->w + d.pad_l + d.pad_r - d.kw) / d.sw + 1;
    if (c->same) {
        CHECK(oh == nn_out_size(c->h, c->kh, c->sh, NN_PAD_SAME));
        CHECK(ow == nn_out_size(c->w, c->kw, c->sw, NN_PAD_SAME));
    }
    nn_tensor x = rand_tensor(c->n, c->h, c->w, c->cin);
    nn_tensor y = nan_tensor(c->n, oh, ow, cout);
    size_t wn = (size_t)c->kh * c->kw * c->cin * (depthwise ? 1 : cout);
    float *w = check_rand_buf(wn), *b = c->no_bias ? NULL : check_rand_buf((size_t)cout);
    double *ref = vs_malloc(nn_numel(&y) * sizeof *ref),
           *mag = vs_malloc(nn_numel(&y) * sizeof *mag);

    (depthwise ? be->depthwise : be->conv2d)(&y, &x, w, b, &d);
    ref_conv(ref, mag, &x, w, b, cout, &d, oh, ow, depthwise);

    char what[256];
    snprintf(what, sizeof what,
             "%s %dx%dx%dx%d -> %d, k %dx%d s %dx%d pad t%d l%d b%d r%d act %s%s, %d threads",
             depthwise ? "depthwise" : "conv2d", c->n, c->h, c->w, c->cin, cout, c->kh, c->kw,
             c->sh, c->sw, d.pad_t, d.pad_l, d.pad_b, d.pad_r, act_name[c->act],
             b ? "" : " no bias", nn_cpu_threads());
    compare(what, y.d, ref, mag, nn_numel(&y));
    nn_tensor_free(&x);
    nn_tensor_free(&y);
    free(w), free(b), free(ref), free(mag);
}

static void test_conv(void)
{
    static const conv_case cases[] = {
        /* 1x1 stride 1 unpadded: the direct-GEMM path; the second spans several row blocks */
        {2, 17, 19, 8, 12, 1, 1, 1, 1, 1, 0, 0, 0, 0, NN_ACT_RELU, 0},
        {2, 40, 41, 16, 24, 1, 1, 1, 1, 0, 0, 0, 0, 0, NN_ACT_NONE, 0},
        {1, 1, 1, 7, 5, 1, 1, 1, 1, 1, 0, 0, 0, 0, NN_ACT_LEAKY, 0},
        /* 1x1 through im2col: strided, padded (border pixels see only padding: bias alone) */
        {2, 15, 13, 6, 10, 1, 1, 2, 2, 1, 0, 0, 0, 0, NN_ACT_NONE, 0},
        {1, 6, 7, 5, 4, 1, 1, 1, 1, 0, 1, 2, 1, 1, NN_ACT_RELU6, 0},
        /* 3x3 */
        {2, 23, 17, 5, 9, 3, 3, 1, 1, 1, 0, 0, 0, 0, NN_ACT_RELU, 0},
        {1, 24, 24, 3, 8, 3, 3, 2, 2, 1, 0, 0, 0, 0, NN_ACT_RELU6, 0},
        {2, 25, 19, 7, 6, 3, 3, 2, 2, 1, 0, 0, 0, 0, NN_ACT_LEAKY, 1},
        {1, 11, 14, 4, 5, 3, 3, 1, 1, 0, 0, 0, 0, 0, NN_ACT_NONE, 0},
        {1, 12, 13, 4, 6, 3, 3, 2, 1, 0, 0, 2, 1, 0, NN_ACT_NONE, 0},   /* asymmetric */
        {1, 37, 45, 24, 16, 3, 3, 1, 1, 1, 0, 0, 0, 0, NN_ACT_RELU, 0}, /* several im2col blocks */
        /* 5x5, 7x7 (the ResNet stem), rectangular */
        {2, 21, 18, 3, 7, 5, 5, 2, 2, 1, 0, 0, 0, 0, NN_ACT_RELU, 0},
        {1, 19, 16, 4, 5, 5, 5, 1, 1, 0, 0, 0, 0, 0, NN_ACT_LEAKY, 0},
        {1, 31, 29, 3, 8, 7, 7, 2, 2, 1, 0, 0, 0, 0, NN_ACT_RELU, 0},
        {2, 9, 10, 2, 3, 7, 7, 1, 1, 0, 3, 1, 2, 4, NN_ACT_NONE, 0}, /* asymmetric */
        {1, 14, 11, 5, 4, 1, 3, 1, 2, 1, 0, 0, 0, 0, NN_ACT_NONE, 0},
        /* a deep layer on a small image: few row blocks, so output channels are split too (the
         * second with a last slice narrower than the others, and a sigmoid) */
        {2, 4, 4, 64, 256, 3, 3, 1, 1, 1, 0, 0, 0, 0, NN_ACT_LEAKY, 0},
        {1, 4, 5, 32, 200, 3, 3, 1, 1, 1, 0, 0, 0, 0, NN_ACT_SIGMOID, 0},
        /* narrow outputs over large windows (the RGB output layers): summed directly, cin in
         * 16 lanes plus a remainder; strided, padded by hand, every width from 1 to 4 */
        {2, 13, 11, 40, 3, 5, 5, 1, 1, 1, 0, 0, 0, 0, NN_ACT_SIGMOID, 0},
        {1, 9, 12, 17, 1, 5, 5, 2, 2, 1, 0, 0, 0, 0, NN_ACT_LEAKY, 0},
        {1, 8, 8, 64, 4, 3, 3, 1, 1, 0, 2, 0, 1, 2, NN_ACT_NONE, 0},
        {3, 6, 7, 32, 2, 3, 3, 1, 2, 1, 0, 0, 0, 0, NN_ACT_RELU, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_conv_case(&cases[i], 0);
}

static void test_depthwise(void)
{
    static const conv_case cases[] = {
        /* channels: whole register blocks (32), block + tail (20), tail only (5) */
        {2, 19, 21, 32, 0, 3, 3, 1, 1, 1, 0, 0, 0, 0, NN_ACT_RELU6, 0},
        {1, 18, 17, 20, 0, 3, 3, 2, 2, 1, 0, 0, 0, 0, NN_ACT_RELU, 0},
        {2, 13, 12, 5, 0, 3, 3, 2, 2, 1, 0, 0, 0, 0, NN_ACT_NONE, 1},
        {1, 16, 16, 48, 0, 3, 3, 2, 2, 1, 0, 0, 0, 0, NN_ACT_RELU6, 0},
        {1, 15, 17, 7, 0, 3, 3, 1, 1, 0, 0, 0, 0, 0, NN_ACT_LEAKY, 0},
        {1, 14, 15, 9, 0, 5, 5, 1, 1, 1, 0, 0, 0, 0, NN_ACT_NONE, 0},
        {2, 17, 13, 16, 0, 5, 5, 2, 2, 1, 0, 0, 0, 0, NN_ACT_RELU, 0},
        {1, 12, 11, 3, 0, 7, 7, 2, 2, 1, 0, 0, 0, 0, NN_ACT_NONE, 0},
        {1, 10, 9, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, NN_ACT_NONE, 0},
        {1, 9, 11, 17, 0, 3, 3, 2, 1, 0, 0, 2, 1, 0, NN_ACT_NONE, 0},   /* asymmetric */
        {1, 5, 6, 18, 0, 1, 1, 1, 1, 0, 2, 1, 1, 2, NN_ACT_LEAKY, 0},   /* padding-only windows */
        {1, 64, 70, 32, 0, 3, 3, 1, 1, 1, 0, 0, 0, 0, NN_ACT_RELU6, 0}, /* many tasks */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_conv_case(&cases[i], 1);
}

/* ---- pooling ----------------------------------------------------------------------------- */

typedef struct pool_case {
    nn_pool_kind kind;
    int n, h, w, c, kh, kw, sh, sw;
    int same, pt, pl, pb, pr;
} pool_case;

static void test_pool(void)
{
    static const pool_case cases[] = {
        {NN_POOL_MAX, 2, 15, 17, 17, 3, 3, 2, 2, 1, 0, 0, 0, 0},
        {NN_POOL_AVG, 2, 15, 17, 17, 3, 3, 2, 2, 1, 0, 0, 0, 0},
        {NN_POOL_MAX, 1, 16, 16, 40, 2, 2, 2, 2, 0, 0, 0, 0, 0},
        {NN_POOL_AVG, 1, 13, 12, 40, 2, 2, 2, 2, 0, 0, 0, 0, 0},
        {NN_POOL_AVG, 1, 9, 11, 5, 3, 3, 1, 1, 1, 0, 0, 0, 0}, /* border cells average fewer */
        {NN_POOL_MAX, 1, 9, 11, 5, 3, 3, 1, 1, 1, 0, 0, 0, 0},
        {NN_POOL_AVG, 2, 10, 8, 3, 5, 5, 2, 2, 1, 0, 0, 0, 0},
        {NN_POOL_AVG, 1, 8, 9, 6, 3, 2, 2, 1, 0, 2, 0, 1, 1}, /* asymmetric */
        {NN_POOL_MAX, 1, 8, 9, 6, 3, 2, 2, 1, 0, 2, 0, 1, 1},
        {NN_POOL_AVG, 1, 70, 66, 64, 3, 3, 2, 2, 1, 0, 0, 0, 0}, /* many tasks */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const pool_case *c = &cases[i];
        nn_pool_desc d = {.kind = c->kind,
                          .kh = c->kh,
                          .kw = c->kw,
                          .sh = c->sh,
                          .sw = c->sw,
                          .pad_t = c->pt,
                          .pad_l = c->pl,
                          .pad_b = c->pb,
                          .pad_r = c->pr};
        if (c->same) {
            nn_pad_for(&d.pad_t, &d.pad_b, c->h, c->kh, c->sh, NN_PAD_SAME);
            nn_pad_for(&d.pad_l, &d.pad_r, c->w, c->kw, c->sw, NN_PAD_SAME);
        }
        int oh = (c->h + d.pad_t + d.pad_b - d.kh) / d.sh + 1;
        int ow = (c->w + d.pad_l + d.pad_r - d.kw) / d.sw + 1;
        nn_tensor x = rand_tensor(c->n, c->h, c->w, c->c), y = nan_tensor(c->n, oh, ow, c->c);
        double *ref = vs_malloc(nn_numel(&y) * sizeof *ref);
        be->pool(&y, &x, &d);
        for (int n = 0; n < c->n; n++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    for (int ch = 0; ch < c->c; ch++) {
                        double acc = c->kind == NN_POOL_MAX ? -INFINITY : 0;
                        int cnt = 0;
                        for (int ky = 0; ky < d.kh; ky++)
                            for (int kx = 0; kx < d.kw; kx++) {
                                int iy = oy * d.sh - d.pad_t + ky, ix = ox * d.sw - d.pad_l + kx;
                                if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                                double v = x.d[(((size_t)n * c->h + iy) * c->w + ix) * c->c + ch];
                                acc = c->kind == NN_POOL_MAX ? fmax(acc, v) : acc + v;
                                cnt++;
                            }
                        if (c->kind == NN_POOL_AVG) acc /= cnt;
                        ref[(((size_t)n * oh + oy) * ow + ox) * c->c + ch] = acc;
                    }
        char what[200];
        snprintf(what, sizeof what,
                 "%s pool %dx%dx%dx%d k %dx%d s %dx%d pad t%d l%d b%d r%d, %d threads",
                 c->kind == NN_POOL_MAX ? "max" : "avg", c->n, c->h, c->w, c->c, d.kh, d.kw, d.sh,
                 d.sw, d.pad_t, d.pad_l, d.pad_b, d.pad_r, nn_cpu_threads());
        compare(what, y.d, ref, NULL, nn_numel(&y));
        nn_tensor_free(&x), nn_tensor_free(&y);
        free(ref);
    }
}

/* ---- dense and element-wise -------------------------------------------------------------- */

static void test_dense(void)
{
    static const int shapes[][3] = {
        {1, 37, 13}, {3, 37, 13}, {2, 512, 128}, {1, 256, 300}, {5, 1, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int act = NN_ACT_NONE; act <= NN_ACT_LEAKY; act++) {
            int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            float *x = check_rand_buf((size_t)n * in), *w = check_rand_buf((size_t)in * out);
            float *b = check_rand_buf((size_t)out), *y = check_rand_buf((size_t)n * out);
            double *ref = vs_malloc((size_t)n * out * sizeof *ref);
            double *mag = vs_malloc((size_t)n * out * sizeof *mag);
            be_dense(be, y, x, w, b, n, in, out, (nn_act)act, 0.2f);
            for (int i = 0; i < n; i++)
                for (int o = 0; o < out; o++) {
                    double acc = b[o], m = fabs(acc);
                    for (int k = 0; k < in; k++) {
                        double v = (double)x[i * in + k] * w[k * out + o];
                        acc += v, m += fabs(v);
                    }
                    ref[i * out + o] = check_ref_act(acc, (nn_act)act, 0.2f);
                    mag[i * out + o] = m;
                }
            char what[128];
            snprintf(what, sizeof what, "dense %dx%d -> %d act %s", n, in, out, act_name[act]);
            compare(what, y, ref, mag, (size_t)n * out);
            free(x), free(w), free(b), free(y), free(ref), free(mag);
        }
}

static void test_elementwise(void)
{
    const size_t n = 100003; /* several element-wise chunks and an odd tail */
    float *a = check_rand_buf(n), *b = check_rand_buf(n), *y = vs_malloc(n * sizeof *y);
    double *ref = vs_malloc(n * sizeof *ref);
    char what[128];

    for (int act = NN_ACT_NONE; act <= NN_ACT_LEAKY; act++) {
        for (size_t i = 0; i < n; i++) y[i] = a[i] * 8; /* reaches past relu6's 6 */
        be_act(be, y, n, (nn_act)act, 0.3f);
        for (size_t i = 0; i < n; i++)
            ref[i] = check_ref_act((double)(a[i] * 8), (nn_act)act, 0.3f);
        snprintf(what, sizeof what, "act %s", act_name[act]);
        compare(what, y, ref, NULL, n);
    }

    be_add(be, y, a, b, n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    compare("add", y, ref, NULL, n);
    memcpy(y, a, n * sizeof *y);
    be_add(be, y, y, b, n); /* in place */
    compare("add in place", y, ref, NULL, n);

    nn_tensor x = rand_tensor(2, 29, 31, 19);
    size_t xn = nn_numel(&x);
    float *orig = vs_malloc(xn * sizeof *orig), *scale = check_rand_buf(19),
          *bias = check_rand_buf(19);
    double *xref = vs_malloc(xn * sizeof *xref);
    memcpy(orig, x.d, xn * sizeof *orig);
    be->scale_bias(&x, scale, bias);
    for (size_t i = 0; i < xn; i++) xref[i] = (double)orig[i] * scale[i % 19] + bias[i % 19];
    compare("scale_bias", x.d, xref, NULL, xn);
    memcpy(x.d, orig, xn * sizeof *orig);
    be->scale_bias(&x, NULL, bias);
    for (size_t i = 0; i < xn; i++) xref[i] = (double)orig[i] + bias[i % 19];
    compare("scale_bias, bias only", x.d, xref, NULL, xn);

    nn_tensor_free(&x);
    free(a), free(b), free(y), free(ref), free(orig), free(scale), free(bias), free(xref);
}

/* ---- geometry and batch-norm folding ----------------------------------------------------- */

static void test_geometry(void)
{
    /* {in, k, stride, out, pad_lo, pad_hi} for TF "same", worked by hand */
    static const int same[][6] = {
        {224, 3, 2, 112, 0, 1}, {225, 3, 2, 113, 1, 1}, {150, 7, 2, 75, 2, 3},
        {112, 3, 2, 56, 0, 1},  {512, 3, 1, 512, 1, 1}, {5, 1, 2, 3, 0, 0},
        {4, 1, 2, 2, 0, 0},     {19, 5, 1, 19, 2, 2},   {10, 4, 3, 4, 1, 2},
        {1, 3, 2, 1, 1, 1},     {6, 2, 2, 3, 0, 0},
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        const int *s = same[i];
        int lo = -1, hi = -1;
        nn_pad_for(&lo, &hi, s[0], s[1], s[2], NN_PAD_SAME);
        CHECKF(nn_out_size(s[0], s[1], s[2], NN_PAD_SAME) == s[3] && lo == s[4] && hi == s[5],
               "same in %d k %d s %d: out %d pad %d/%d, want %d %d/%d", s[0], s[1], s[2],
               nn_out_size(s[0], s[1], s[2], NN_PAD_SAME), lo, hi, s[3], s[4], s[5]);
    }
    static const int valid[][4] = {{150, 3, 1, 148}, {7, 3, 2, 3}, {8, 3, 2, 3},
                                   {2, 3, 1, 0},     {3, 3, 1, 1}, {9, 1, 2, 5}};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++) {
        const int *s = valid[i];
        int lo = -1, hi = -1;
        nn_pad_for(&lo, &hi, s[0], s[1], s[2], NN_PAD_VALID);
        CHECKF(nn_out_size(s[0], s[1], s[2], NN_PAD_VALID) == s[3] && lo == 0 && hi == 0,
               "valid in %d k %d s %d: out %d pad %d/%d, want %d 0/0", s[0], s[1], s[2],
               nn_out_size(s[0], s[1], s[2], NN_PAD_VALID), lo, hi, s[3]);
    }
    nn_conv_desc d;
    memset(&d, 0x55, sizeof d);
    nn_conv_geometry(&d, 512, 511, 3, 3, 2, 2, NN_PAD_SAME);
    CHECK(d.kh == 3 && d.kw == 3 && d.sh == 2 && d.sw == 2);
    CHECK(d.pad_t == 0 && d.pad_b == 1 && d.pad_l == 1 && d.pad_r == 1);
    CHECK(d.act == NN_ACT_NONE);
    nn_conv_geometry(&d, 20, 20, 5, 5, 1, 1, NN_PAD_VALID);
    CHECK(d.pad_t == 0 && d.pad_b == 0 && d.pad_l == 0 && d.pad_r == 0 && d.kh == 5);
}

/* conv with folded weights == conv, then batch norm; for conv2d (with and without a bias) and
 * depthwise. */
static void test_fold_batchnorm(void)
{
    for (int variant = 0; variant < 3; variant++) {
        int depthwise = variant == 2, cin = 6, cout = depthwise ? cin : 10;
        const float eps = 1e-3f;
        nn_conv_desc d;
        nn_conv_geometry(&d, 13, 11, 3, 3, 1, 1, NN_PAD_SAME);
        nn_tensor x = rand_tensor(1, 13, 11, cin);
        nn_tensor y1 = nan_tensor(1, 13, 11, cout), y2 = nan_tensor(1, 13, 11, cout);
        size_t wn = (size_t)9 * cin * (depthwise ? 1 : cout);
        float *w = check_rand_buf(wn), *b = variant == 1 ? NULL : check_rand_buf((size_t)cout);
        float *gamma = check_rand_buf((size_t)cout), *beta = check_rand_buf((size_t)cout);
        float *mean = check_rand_buf((size_t)cout), *var = check_rand_buf((size_t)cout);
        for (int c = 0; c < cout; c++) var[c] = fabsf(var[c]) + 0.05f;
        const nn_backend *bk = be;
        void (*op)(nn_tensor *, const nn_tensor *, const float *, const float *,
                   const nn_conv_desc *) = depthwise ? bk->depthwise : bk->conv2d;

        op(&y1, &x, w, b, &d);
        double *ref = vs_malloc(nn_numel(&y1) * sizeof *ref);
        for (size_t i = 0; i < nn_numel(&y1); i++) {
            int c = (int)(i % (size_t)cout);
            ref[i] = ((double)y1.d[i] - mean[c]) * gamma[c] / sqrt((double)var[c] + eps) + beta[c];
        }
        float *bf = vs_malloc((size_t)cout * sizeof *bf);
        nn_fold_batchnorm(w, bf, b, wn, cout, gamma, beta, mean, var, eps);
        op(&y2, &x, w, bf, &d);
        compare(variant == 0   ? "fold batchnorm: conv2d"
                : variant == 1 ? "fold batchnorm: conv2d without bias"
                               : "fold batchnorm: depthwise",
                y2.d, ref, NULL, nn_numel(&y2));
        nn_tensor_free(&x), nn_tensor_free(&y1), nn_tensor_free(&y2);
        free(w), free(b), free(gamma), free(beta), free(mean), free(var), free(ref), free(bf);
    }
}

/* ---- weight loader: synthetic manifests -------------------------------------------------- */

static char tmp_dir[64];

static const char *tmp_path(const char *name)
{
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmp_dir, name);
    return p[k];
}

static void write_file(const char *name, const void *data, size_t n)
{
    FILE *f = fopen(tmp_path(name), "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static void write_text(const char *name, const char *s)
{
    write_file(name, s, strlen(s));
}

/* Loading must fail with a message that contains every one of the strings (NULL-terminated). */
static void expect_load_error(const char *manifest, const char *what, ...)
{
    nn_weights *w = (nn_weights *)1;
    vs_err e = {{0}};
    int rc = nn_weights_load(&w, tmp_path(manifest), &e);
    CHECKF(rc == -1 && w == NULL, "%s: load returned %d", what, rc);
    va_list ap;
    va_start(ap, what);
    for (const char *s; (s = va_arg(ap, const char *));)
        CHECKF(strstr(e.msg, s) != NULL, "%s: message \"%s\" lacks \"%s\"", what, e.msg, s);
    va_end(ap);
    if (rc == 0) nn_weights_free(w);
}

static const char *synth_manifest =
    "[{\"paths\": [\"a.bin\", \"b.bin\"], \"weights\": [\n"
    "  {\"name\": \"f\", \"shape\": [2, 3], \"dtype\": \"float32\"},\n"
    "  {\"name\": \"q8\", \"shape\": [5], \"dtype\": \"float32\",\n"
    "   \"quantization\": {\"dtype\": \"uint8\", \"min\": -1.5, \"scale\": 0.25}},\n"
    "  {\"name\": \"q16\", \"shape\": [3], \"dtype\": \"float32\",\n"
    "   \"quantization\": {\"dtype\": \"uint16\", \"min\": 2, \"scale\": 0.5}},\n"
    "  {\"name\": \"i\", \"shape\": [], \"dtype\": \"int32\"}]},\n"
    " {\"paths\": [\"c.bin\"], \"weights\": [\n"
    "  {\"name\": \"h\", \"shape\": [1, 2], \"dtype\": \"float32\",\n"
    "   \"quantization\": {\"dtype\": \"float16\"}}]}]\n";

static unsigned char group0[39];

static void write_synth(void)
{
    static const float f[6] = {1.5f, -2.25f, 3.0f, 0.125f, -7.0f, 1e-3f};
    static const unsigned char q8[5] = {0, 1, 6, 200, 255};
    static const uint16_t q16[3] = {0, 3, 65535};
    static const int32_t iv = -42;
    memcpy(group0, f, 24);
    memcpy(group0 + 24, q8, 5);
    memcpy(group0 + 29, q16, 6);
    memcpy(group0 + 35, &iv, 4);
    write_text("synth-weights_manifest.json", synth_manifest);
    write_file("a.bin", group0, 10); /* tensor f spans both shards */
    write_file("b.bin", group0 + 10, 29);
    static const uint16_t halves[2] = {0x3c00, 0xc100}; /* 1.0, -2.5 */
    write_file("c.bin", halves, 4);
}

static void test_weights_synthetic(void)
{
    write_synth();
    nn_weights *w = NULL;
    vs_err e = {{0}};
    int rc = nn_weights_load(&w, tmp_path("synth-weights_manifest.json"), &e);
    CHECKF(rc == 0, "%s", e.msg);
    if (rc) return;
    CHECK(strstr(nn_weights_path(w), "synth-weights_manifest.json") != NULL);
    const char *first = NULL;
    CHECK(nn_weights_unused(w, &first) == 5 && first && !strcmp(first, "f"));

    const float *f = nn_weights_get(w, "f", 2, (int[]){2, 3}, &e);
    CHECKF(f != NULL, "%s", e.msg);
    if (f)
        CHECK(f[0] == 1.5f && f[1] == -2.25f && f[3] == 0.125f && f[4] == -7.0f && f[5] == 1e-3f);
    const float *q8 = nn_weights_get(w, "q8", 1, (int[]){5}, &e);
    CHECKF(q8 != NULL, "%s", e.msg);
    if (q8)
        CHECK(q8[0] == -1.5f && q8[1] == -1.25f && q8[2] == 0.0f && q8[3] == 48.5f &&
              q8[4] == 62.25f);
    const float *q16 = nn_weights_get(w, "q16", 1, (int[]){3}, &e);
    CHECKF(q16 != NULL, "%s", e.msg);
    if (q16) CHECK(q16[0] == 2.0f && q16[1] == 3.5f && q16[2] == 2.0f + 65535 * 0.5f);
    const float *h = nn_weights_get(w, "h", 2, (int[]){1, 2}, &e);
    CHECKF(h != NULL, "%s", e.msg);
    if (h) CHECK(h[0] == 1.0f && h[1] == -2.5f);
    CHECK(nn_weights_unused(w, &first) == 1 && first && !strcmp(first, "i"));
    const float *iv = nn_weights_get(w, "i", 0, NULL, &e);
    CHECKF(iv != NULL && *iv == -42.0f, "%s", e.msg);
    CHECK(nn_weights_unused(w, &first) == 0 && first == NULL);

    /* wrong shape, wrong rank, missing tensor: NULL and a message naming file, tensor, shapes */
    e.msg[0] = 0;
    CHECK(nn_weights_get(w, "f", 2, (int[]){3, 2}, &e) == NULL);
    CHECKF(strstr(e.msg, "synth-weights_manifest.json") && strstr(e.msg, "'f'") &&
               strstr(e.msg, "[2,3]") && strstr(e.msg, "[3,2]"),
           "%s", e.msg);
    e.msg[0] = 0;
    CHECK(nn_weights_get(w, "q8", 2, (int[]){5, 1}, &e) == NULL);
    CHECKF(strstr(e.msg, "synth-weights_manifest.json") && strstr(e.msg, "[5]") &&
               strstr(e.msg, "[5,1]"),
           "%s", e.msg);
    e.msg[0] = 0;
    CHECK(nn_weights_get(w, "nope", 1, (int[]){1}, &e) == NULL);
    CHECKF(strstr(e.msg, "synth-weights_manifest.json") && strstr(e.msg, "nope"), "%s", e.msg);
    nn_weights_free(w);

    /* bad inputs */
    write_file("b.bin", group0 + 10, 28);
    expect_load_error("synth-weights_manifest.json", "short shard", "b.bin", "truncated", "38",
                      "39", (char *)NULL);
    write_file("b.bin", group0, 39); /* 10 bytes too many */
    expect_load_error("synth-weights_manifest.json", "long shard", "b.bin", "49", (char *)NULL);
    write_file("b.bin", group0 + 10, 29);
    remove(tmp_path("c.bin"));
    expect_load_error("synth-weights_manifest.json", "missing shard", "c.bin", (char *)NULL);

    write_text("dtype-weights_manifest.json",
               "[{\"paths\": [\"a.bin\"], \"weights\": [{\"name\": \"z\", \"shape\": [1], "
               "\"dtype\": \"complex64\"}]}]");
    expect_load_error("dtype-weights_manifest.json", "unknown dtype", "dtype-weights_manifest.json",
                      "complex64", (char *)NULL);
    write_text("qdtype-weights_manifest.json",
               "[{\"paths\": [\"a.bin\"], \"weights\": [{\"name\": \"z\", \"shape\": [1], "
               "\"dtype\": \"float32\", \"quantization\": {\"dtype\": \"int4\", \"min\": 0, "
               "\"scale\": 1}}]}]");
    expect_load_error("qdtype-weights_manifest.json", "unknown quantization",
                      "qdtype-weights_manifest.json", "int4", (char *)NULL);
    write_text("broken-weights_manifest.json",
               "[{\"paths\": [\"a.bin\"],\n  \"weights\": [{\"name\": \"z\",, }]}]\n");
    expect_load_error("broken-weights_manifest.json", "broken JSON",
                      "broken-weights_manifest.json:2", (char *)NULL);
    write_text("obj-weights_manifest.json", "{\"paths\": []}");
    expect_load_error("obj-weights_manifest.json", "not an array", "obj-weights_manifest.json",
                      (char *)NULL);
    write_text("shape-weights_manifest.json",
               "[{\"paths\": [\"a.bin\"], \"weights\": [{\"name\": \"z\", \"shape\": [2, -1], "
               "\"dtype\": \"float32\"}]}]");
    expect_load_error("shape-weights_manifest.json", "negative dimension",
                      "shape-weights_manifest.json", "'z'", (char *)NULL);
    expect_load_error("absent-weights_manifest.json", "missing manifest",
                      "absent-weights_manifest.json", (char *)NULL);
    write_text("dup-weights_manifest.json",
               "[{\"paths\": [\"a.bin\"], \"weights\": [{\"name\": \"z\", \"shape\": [1], "
               "\"dtype\": \"float32\"}, {\"name\": \"z\", \"shape\": [1], \"dtype\": "
               "\"float32\"}, {\"name\": \"y\", \"shape\": [1], \"dtype\": \"float32\"}]}]");
    expect_load_error("dup-weights_manifest.json", "tensor listed twice",
                      "dup-weights_manifest.json", "'z'", (char *)NULL);

    /* edited shapes: a message naming the manifest, never an allocation of what it claims (the
     * shards' sizes are checked first). 2^40 - 512 floats (4 TB) against the 10-byte a.bin; the
     * same as uint8; three such tensors (12 TB); one past 2^40 elements, one whose product
     * overflows 64 bits, a fraction, a negative one in the second group */
    write_text("huge-weights_manifest.json",
               "[{\"paths\": [\"a.bin\"], \"weights\": [{\"name\": \"z\", \"shape\": "
               "[2147483647, 512], \"dtype\": \"float32\"}]}]");
    expect_load_error("huge-weights_manifest.json", "huge shape", "huge-weights_manifest.json",
                      "a.bin", "4398046509056", (char *)NULL);
    write_text("hugeq-weights_manifest.json",
               "[{\"paths\": [\"a.bin\"], \"weights\": [{\"name\": \"z\", \"shape\": "
               "[2147483647, 512], \"dtype\": \"float32\", \"quantization\": {\"dtype\": "
               "\"uint8\", \"min\": 0, \"scale\": 1}}]}]");
    expect_load_error("hugeq-weights_manifest.json", "huge quantised shape",
                      "hugeq-weights_manifest.json", "a.bin", (char *)NULL);
    write_text("huge3-weights_manifest.json",
               "[{\"paths\": [\"c.bin\"], \"weights\": [{\"name\": \"h\", \"shape\": [1, 2], "
               "\"dtype\": \"float32\", \"quantization\": {\"dtype\": \"float16\"}}]},\n"
               " {\"paths\": [\"a.bin\"], \"weights\": [\n"
               "  {\"name\": \"x\", \"shape\": [1073741824, 1024], \"dtype\": \"float32\"},\n"
               "  {\"name\": \"y\", \"shape\": [1073741824, 1024], \"dtype\": \"float32\"},\n"
               "  {\"name\": \"z\", \"shape\": [1073741824, 1024], \"dtype\": \"float32\"}]}]");
    write_file("c.bin", (uint16_t[]){0x3c00, 0xc100}, 4);
    expect_load_error("huge3-weights_manifest.json", "three huge tensors",
                      "huge3-weights_manifest.json", "a.bin", (char *)NULL);
    static const char *const bad_shape[] = {"[1073741824, 1025]", "[65536, 65536, 65536, 65536]",
                                            "[2.5]", "[3, \"4\"]"};
    for (size_t i = 0; i < sizeof bad_shape / sizeof bad_shape[0]; i++) {
        char m[512];
        snprintf(m, sizeof m,
                 "[{\"paths\": [\"a.bin\"], \"weights\": [{\"name\": \"z\", \"shape\": %s, "
                 "\"dtype\": \"float32\"}]}]",
                 bad_shape[i]);
        write_text("bad-weights_manifest.json", m);
        expect_load_error("bad-weights_manifest.json", bad_shape[i], "bad-weights_manifest.json",
                          "'z'", "shape", (char *)NULL);
    }
    write_text("neg-weights_manifest.json",
               "[{\"paths\": [\"c.bin\"], \"weights\": [{\"name\": \"h\", \"shape\": [2], "
               "\"dtype\": \"float32\", \"quantization\": {\"dtype\": \"float16\"}}]},\n"
               " {\"paths\": [\"a.bin\"], \"weights\": [{\"name\": \"z\", \"shape\": [-4, 2], "
               "\"dtype\": \"float32\", \"quantization\": {\"dtype\": \"uint8\", \"min\": 0, "
               "\"scale\": 1}}]}]");
    expect_load_error("neg-weights_manifest.json", "negative dimension, second group",
                      "neg-weights_manifest.json", "'z'", (char *)NULL);
}

/* ---- weight loader: the real SSD MobileNet manifest -------------------------------------- */

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = vs_malloc(*n);
    if (fread(p, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return p;
}

static int test_weights_real(void)
{
    if (!check_have_models()) SKIP("no models (run make models)");
    char manifest[4096], bin[4096];
    snprintf(manifest, sizeof manifest, "%s/ssd_mobilenetv1_model-weights_manifest.json",
             check_models_dir());
    snprintf(bin, sizeof bin, "%s/ssd_mobilenetv1_model.bin", check_models_dir());

    nn_weights *w = NULL;
    vs_err e = {{0}};
    int rc = nn_weights_load(&w, manifest, &e);
    CHECKF(rc == 0, "%s", e.msg);
    if (rc) return 0;
    const float *c0 =
        nn_weights_get(w, "MobilenetV1/Conv2d_0_pointwise/weights", 4, (int[]){3, 3, 3, 32}, &e);
    CHECKF(c0 != NULL, "%s", e.msg);
    CHECK(nn_weights_get(w, "MobilenetV1/Conv2d_1_depthwise/depthwise_weights", 4,
                         (int[]){3, 3, 32, 1}, &e) != NULL);

    /* Every tensor, read back by an independent walk over the manifest and the .bin: uint8
     * values are exactly min + q * scale and so lie in [min, min + 255 * scale]. */
    json_t *root = json_load_file(manifest, 0, NULL);
    size_t bin_len = 0;
    unsigned char *raw = read_all(bin, &bin_len);
    CHECK(root && raw && json_array_size(root) == 1);
    size_t off = 0, n_checked = 0, n_bad = 0;
    const char *first_bad = "";
    json_t *ws = json_object_get(json_array_get(root, 0), "weights");
    for (size_t i = 0; raw && i < json_array_size(ws); i++) {
        json_t *jw = json_array_get(ws, i), *jq = json_object_get(jw, "quantization");
        json_t *js = json_object_get(jw, "shape");
        int shape[8], nd = (int)json_array_size(js);
        size_t count = 1;
        for (int k = 0; k < nd; k++)
            count *= (size_t)(shape[k] = (int)json_integer_value(json_array_get(js, k)));
        const char *name = json_string_value(json_object_get(jw, "name"));
        const float *v = nn_weights_get(w, name, nd, shape, &e);
        CHECKF(v != NULL, "%s", e.msg);
        int q8 = jq && !strcmp(json_string_value(json_object_get(jq, "dtype")), "uint8");
        double mn = q8 ? json_number_value(json_object_get(jq, "min")) : 0;
        double sc = q8 ? json_number_value(json_object_get(jq, "scale")) : 0;
        for (size_t k = 0; v && k < count && off + (q8 ? k : 4 * k + 3) < bin_len; k++) {
            float want;
            if (q8)
                want = (float)mn + (float)raw[off + k] * (float)sc;
            else
                memcpy(&want, raw + off + 4 * k, 4);
            int ok = fabsf(v[k] - want) <= 1e-6f * (1 + fabsf(want));
            double slack = 1e-6 * (1 + fabs(mn) + 255 * sc); /* float rounding */
            if (q8) ok = ok && v[k] >= mn - slack && v[k] <= mn + 255 * sc + slack;
            if (!ok && !n_bad++) first_bad = name;
            n_checked++;
        }
        off += count * (q8 ? 1 : 4);
    }
    CHECK(off == bin_len);
    CHECK(n_checked > 5000000);
    CHECKF(n_bad == 0, "%zu of %zu values differ from the .bin, first in %s", n_bad, n_checked,
           first_bad);
    CHECK(nn_weights_unused(w, NULL) == 0);
    e.msg[0] = 0;
    CHECK(nn_weights_get(w, "MobilenetV1/Conv2d_0_pointwise/weights", 4, (int[]){3, 3, 3, 16},
                         &e) == NULL);
    CHECKF(strstr(e.msg, "ssd_mobilenetv1_model-weights_manifest.json") &&
               strstr(e.msg, "Conv2d_0_pointwise/weights") && strstr(e.msg, "[3,3,3,32]") &&
               strstr(e.msg, "[3,3,3,16]"),
           "%s", e.msg);
    json_decref(root);
    nn_weights_free(w);

    /* the same manifest beside a .bin cut short */
    size_t man_len = 0;
    unsigned char *man = read_all(manifest, &man_len);
    if (man && raw && bin_len > 216) {
        write_file("ssd_mobilenetv1_model-weights_manifest.json", man, man_len);
        write_file("ssd_mobilenetv1_model.bin", raw, bin_len - 216);
        char want[256];
        snprintf(want, sizeof want, "%zu bytes, %s needs %zu", bin_len - 216,
                 tmp_path("ssd_mobilenetv1_model-weights_manifest.json"), bin_len);
        expect_load_error("ssd_mobilenetv1_model-weights_manifest.json", "truncated real .bin",
                          "ssd_mobilenetv1_model.bin: truncated", want, (char *)NULL);
        remove(tmp_path("ssd_mobilenetv1_model-weights_manifest.json"));
        remove(tmp_path("ssd_mobilenetv1_model.bin"));
    }
    free(man);
    free(raw);
    return 0;
}

static void remove_tmp(void)
{
    static const char *names[] = {"synth-weights_manifest.json",
                                  "a.bin",
                                  "b.bin",
                                  "c.bin",
                                  "dtype-weights_manifest.json",
                                  "qdtype-weights_manifest.json",
                                  "broken-weights_manifest.json",
                                  "obj-weights_manifest.json",
                                  "shape-weights_manifest.json",
                                  "dup-weights_manifest.json"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) remove(tmp_path(names[i]));
    rmdir(tmp_dir);
}

/* The host's 16-bit formats: every fp16 value survives fp32 and back; halfway between two
 * neighbours rounds to the even one and a hair off it to the nearer; overflow, NaN and bf16's
 * ties; and the CPU backend's convert gives the same bits both ways. */
static void test_half(void)
{
    size_t bad_rt = 0, bad_tie = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = nn_f32_from_f16((uint16_t)h);
        if (!isnan(f)) bad_rt += nn_f16_from_f32(f) != h;
    }
    for (uint16_t h = 0; h < 0x7bff; h++) {
        float a = nn_f32_from_f16(h), b = nn_f32_from_f16((uint16_t)(h + 1));
        float mid = (float)(((double)a + b) / 2);
        uint16_t even = h & 1 ? (uint16_t)(h + 1) : h;
        bad_tie += nn_f16_from_f32(mid) != even;
        bad_tie += nn_f16_from_f32(nextafterf(mid, INFINITY)) != h + 1;
        bad_tie += nn_f16_from_f32(nextafterf(mid, -INFINITY)) != h;
    }
    CHECKF(bad_rt == 0, "%zu fp16 values do not survive fp32 and back", bad_rt);
    CHECKF(bad_tie == 0, "%zu fp16 roundings are not to nearest even", bad_tie);
    CHECK(nn_f16_from_f32(65504.0f) == 0x7bff && nn_f16_from_f32(65519.0f) == 0x7bff);
    CHECK(nn_f16_from_f32(65520.0f) == 0x7c00 && nn_f16_from_f32(-1e9f) == 0xfc00);
    CHECK(isnan(nn_f32_from_f16(nn_f16_from_f32(NAN))));
    CHECK(nn_f16_from_f32(0x1p-25f) == 0 && nn_f16_from_f32(3 * 0x1p-25f) == 2);
    CHECK(nn_bf16_from_f32(1.00390625f) == 0x3f80 && nn_bf16_from_f32(1.01171875f) == 0x3f82);
    CHECK(nn_bf16_from_f32(-INFINITY) == 0xff80 && isnan(nn_f32_from_bf16(nn_bf16_from_f32(NAN))));
    /* the backend's convert */
    const int n = 1001;
    float *x = check_rand_buf(n), *back = vs_malloc(n * sizeof *back);
    uint16_t *h16 = vs_malloc(n * sizeof *h16);
    x[0] = 70000.0f, x[1] = NAN, x[2] = 1e-6f;
    for (int k = 0; k < 2; k++) {
        nn_dtype dt = k ? NN_F16 : NN_BF16;
        nn_tensor tx = nn_rows(x, 1, n), th = nn_rows((float *)h16, 1, n), tb = nn_rows(back, 1, n);
        th.dt = dt;
        be->convert(&th, &tx);
        be->convert(&tb, &th);
        size_t bad = 0;
        for (int i = 0; i < n; i++) {
            uint16_t want = k ? nn_f16_from_f32(x[i]) : nn_bf16_from_f32(x[i]);
            float wb = k ? nn_f32_from_f16(want) : nn_f32_from_bf16(want);
            bad += isnan(x[i]) ? !isnan(back[i]) : h16[i] != want || back[i] != wb;
        }
        CHECKF(bad == 0, "convert %s: %zu of %d differ", k ? "fp16" : "bf16", bad, n);
    }
    free(x), free(back), free(h16);
}

int main(void)
{
    be = nn_cpu_backend();
    CHECK(be && !strcmp(be->name, "cpu"));

    nn_cpu_set_threads(0);
    CHECK(nn_cpu_threads() == (int)sysconf(_SC_NPROCESSORS_ONLN));
    for (int th = 1; th <= 2; th++) {
        nn_cpu_set_threads(th);
        CHECK(nn_cpu_threads() == th);
        test_conv();
        test_depthwise();
        test_pool();
        test_dense();
        test_elementwise();
        test_fold_batchnorm();
    }
    test_geometry();
    test_half();

    /* backend memory: aligned, round trip */
    float *p = be->alloc(1000), host[1000], back[1000];
    CHECK(((uintptr_t)p & 63) == 0);
    for (int i = 0; i < 1000; i++) host[i] = check_frand();
    be->copy_in(p, host, 1000);
    be->sync();
    be->copy_out(back, p, 1000);
    CHECK(!memcmp(host, back, sizeof host));
    be->free(p);

    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/test_nn.XXXXXX");
    CHECK(mkdtemp(tmp_dir) != NULL);
    test_weights_synthetic();
    test_weights_real();
    remove_tmp();
    return check_report("test_nn");
}
