/* test_grad.c: the CPU backend's backward passes of conv2d, depthwise and dense. Small cases are
 * checked against central finite differences of the forward op (a random projection sum(r * y),
 * so dy = r), with a deliberately perturbed gradient that must fail the same comparison; medium
 * cases, big enough to reach every tiling branch, against plain double-precision loops. Each runs
 * with 1 and 2 threads, in both NN_OVERWRITE (outputs poisoned with NaN) and NN_ACCUMULATE modes.
 */
#include <stdint.h>

#include "check.h"
#include "err.h"
#include "nn/backend.h"
#include "flat_ops.h"

static const nn_backend *be;

/* ---- helpers ----------------------------------------------------------------------------- */

static nn_tensor rand_tensor(int n, int h, int w, int c)
{
    nn_tensor t = nn_tensor_new(n, h, w, c);
    for (size_t i = 0; i < nn_numel(&t); i++) t.d[i] = check_frand();
    return t;
}

/* Fills an output before a backward call: NaN for NN_OVERWRITE (a value the op forgets to write
 * fails), random for NN_ACCUMULATE (kept in `prior` so the expected value is prior + gradient). */
static void prefill(float *out, double *prior, size_t n, nn_accum mode)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = mode == NN_OVERWRITE ? NAN : check_frand();
        prior[i] = mode == NN_OVERWRITE ? 0 : out[i];
    }
}

static const char *mode_name(nn_accum mode)
{
    return mode == NN_OVERWRITE ? "overwrite" : "accumulate";
}

/* Number of got[i] off want[i] by more than rel * mag[i] + abs_tol (mag NULL: rel * (|want| + 1)).
 * Reports the worst one when `what` is not NULL. */
static size_t count_bad(const char *what, const float *got, const double *want, const double *mag,
                        size_t n, double rel, double abs_tol)
{
    size_t bad = 0, worst = 0;
    double worst_err = -1;
    for (size_t i = 0; i < n; i++) {
        double tol = (mag ? rel * mag[i] : rel * (fabs(want[i]) + 1)) + abs_tol;
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= tol)) {
            bad++;
            if (!(err <= worst_err)) worst_err = err, worst = i;
        }
    }
    if (bad && what)
        fprintf(stderr, "  %s: %zu of %zu values off, worst [%zu] got %.7g want %.7g\n", what, bad,
                n, worst, (double)got[worst], want[worst]);
    return bad;
}

/* ---- conv2d and depthwise: finite differences -------------------------------------------- */

typedef struct conv_case {
    int n, h, w, cin, cout, kh, kw, sh, sw;
    int same; /* 1: TF same padding, 0: the explicit pads below */
    int pt, pl, pb, pr;
} conv_case;

static void case_desc(nn_conv_desc *d, const conv_case *c)
{
    if (c->same)
        nn_conv_geometry(d, c->h, c->w, c->kh, c->kw, c->sh, c->sw, NN_PAD_SAME);
    else
        *d = (nn_conv_desc){.kh = c->kh,
                            .kw = c->kw,
                            .sh = c->sh,
                            .sw = c->sw,
                            .pad_t = c->pt,
                            .pad_l = c->pl,
                            .pad_b = c->pb,
                            .pad_r = c->pr};
    d->act = NN_ACT_NONE;
}

static void case_name(char *buf, size_t len, const char *op, const conv_case *c, int cout,
                      const nn_conv_desc *d, nn_accum mode, int with_db)
{
    snprintf(buf, len, "%s %dx%dx%dx%d -> %d k %dx%d s %dx%d pad t%d l%d b%d r%d, %s%s, %d threads",
             op, c->n, c->h, c->w, c->cin, cout, d->kh, d->kw, d->sh, d->sw, d->pad_t, d->pad_l,
             d->pad_b, d->pad_r, mode_name(mode), with_db ? "" : ", db NULL", nn_cpu_threads());
}

typedef struct fwd_ctx {
    int depthwise;
    nn_tensor *y, *x;
    float *w, *b;
    const nn_conv_desc *d;
    const float *r; /* the projection: f = sum(r * y), so dL/dy = r */
} fwd_ctx;

static double fwd_proj(const fwd_ctx *f)
{
    (f->depthwise ? be->depthwise : be->conv2d)(f->y, f->x, f->w, f->b, f->d);
    double s = 0;
    for (size_t i = 0; i < nn_numel(f->y); i++) s += (double)f->r[i] * f->y->d[i];
    return s;
}

/* num[i] = d f / d p[i] by central differences */
static void numeric_grad(double *num, float *p, size_t n, const fwd_ctx *f)
{
    const float eps = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float keep = p[i], hi = keep + eps, lo = keep - eps;
        p[i] = hi;
        double fp = fwd_proj(f);
        p[i] = lo;
        double fm = fwd_proj(f);
        p[i] = keep;
        num[i] = (fp - fm) / ((double)hi - lo);
    }
}

/* Compares an analytic gradient (out - prior) with the numeric one at 1e-2, and checks that the
 * same comparison rejects the gradient with one value 5% off. */
static void check_fd(const char *what, const char *which, const float *out, const double *prior,
                     const double *num, size_t n)
{
    float *g = vs_malloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) g[i] = (float)(out[i] - prior[i]);
    char label[400];
    snprintf(label, sizeof label, "%s: %s", what, which);
    size_t bad = count_bad(label, g, num, NULL, n, 1e-2, 0);
    CHECKF(bad == 0, "%s: %zu values off the finite differences", label, bad);
    size_t at = (size_t)((check_frand() * 0.5f + 0.5f) * (float)(n - 1));
    g[at] += 0.05f * (fabsf(g[at]) + 1.0f);
    CHECKF(count_bad(NULL, g, num, NULL, n, 1e-2, 0) == 1, "%s: a 5%% error at [%zu] passed", label,
           at);
    free(g);
}

static void fd_conv_case(const conv_case *c, int depthwise, nn_accum mode, int with_db)
{
    nn_conv_desc d;
    case_desc(&d, c);
    int cout = depthwise ? c->cin : c->cout;
    int oh = (c->h + d.pad_t + d.pad_b - d.kh) / d.sh + 1;
    int ow = (c->w + d.pad_l + d.pad_r - d.kw) / d.sw + 1;
    nn_tensor x = rand_tensor(c->n, c->h, c->w, c->cin), y = nn_tensor_new(c->n, oh, ow, cout);
    nn_tensor dy = rand_tensor(c->n, oh, ow, cout), dx = nn_tensor_new(c->n, c->h, c->w, c->cin);
    size_t wn = (size_t)c->kh * c->kw * c->cin * (depthwise ? 1 : cout), xn = nn_numel(&x);
    float *w = check_rand_buf(wn), *b = check_rand_buf((size_t)cout), *dw = check_rand_buf(wn);
    float *db = check_rand_buf((size_t)cout);
    double *px = vs_malloc(xn * sizeof *px), *pw = vs_malloc(wn * sizeof *pw);
    double *pb = vs_malloc((size_t)cout * sizeof *pb), *num = vs_malloc((xn + wn) * sizeof *num);
    char what[300];
    case_name(what, sizeof what, depthwise ? "depthwise" : "conv2d", c, cout, &d, mode, with_db);

    prefill(dx.d, px, xn, mode);
    prefill(dw, pw, wn, mode);
    prefill(db, pb, (size_t)cout, mode);
    if (depthwise) {
        be->depthwise_bwd_data(&dx, &dy, w, &d, mode);
        be->depthwise_bwd_filter(dw, with_db ? db : NULL, &dy, &x, &d, mode);
    } else {
        be->conv2d_bwd_data(&dx, &dy, w, &d, mode);
        be->conv2d_bwd_filter(dw, with_db ? db : NULL, &dy, &x, &d, mode);
    }
    fwd_ctx f = {.depthwise = depthwise, .y = &y, .x = &x, .w = w, .b = b, .d = &d, .r = dy.d};
    numeric_grad(num, x.d, xn, &f);
    check_fd(what, "dx", dx.d, px, num, xn);
    numeric_grad(num, w, wn, &f);
    check_fd(what, "dw", dw, pw, num, wn);
    if (with_db) {
        numeric_grad(num, b, (size_t)cout, &f);
        check_fd(what, "db", db, pb, num, (size_t)cout);
    } else {
        for (int i = 0; i < cout; i++) /* untouched */
            CHECKF(mode == NN_OVERWRITE ? isnan(db[i]) : db[i] == (float)pb[i], "%s: db written",
                   what);
    }
    nn_tensor_free(&x), nn_tensor_free(&y), nn_tensor_free(&dy), nn_tensor_free(&dx);
    free(w), free(b), free(dw), free(db), free(px), free(pw), free(pb), free(num);
}

/* Small shapes reaching each branch: strides 1 and 2 (and mixed), odd and even sizes, VALID and
 * SAME (k5 s2 on 8: pad t1 b2), asymmetric explicit pads, 1x1 direct GEMMs, single-tap phases,
 * kernels smaller than the stride (pixels no tap reaches), cout 1. */
static const conv_case fd_cases[] = {
    {2, 5, 6, 3, 4, 3, 3, 1, 1, 1, 0, 0, 0, 0}, {1, 8, 8, 2, 3, 5, 5, 2, 2, 1, 0, 0, 0, 0},
    {2, 7, 9, 2, 3, 5, 5, 2, 2, 1, 0, 0, 0, 0}, {1, 9, 8, 3, 2, 3, 3, 2, 2, 0, 0, 0, 0, 0},
    {1, 7, 6, 2, 3, 3, 2, 2, 1, 0, 0, 2, 1, 0}, {2, 4, 5, 5, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    {1, 7, 5, 3, 4, 1, 1, 2, 2, 1, 0, 0, 0, 0}, {1, 8, 7, 2, 2, 2, 2, 3, 3, 0, 1, 0, 2, 1},
    {1, 6, 6, 3, 1, 3, 3, 1, 1, 1, 0, 0, 0, 0}, {1, 8, 6, 2, 3, 4, 4, 2, 2, 1, 0, 0, 0, 0},
    {1, 5, 7, 2, 2, 3, 5, 1, 2, 0, 2, 1, 0, 3},
    {1, 6, 6, 12, 3, 5, 5, 1, 1, 1, 0, 0, 0, 0}, /* a window of 300: the narrow direct path */
};

static void test_fd(void)
{
    for (size_t i = 0; i < sizeof fd_cases / sizeof *fd_cases; i++)
        for (int depthwise = 0; depthwise <= 1; depthwise++) {
            fd_conv_case(&fd_cases[i], depthwise, NN_OVERWRITE, 1);
            fd_conv_case(&fd_cases[i], depthwise, NN_ACCUMULATE, (int)(i & 1));
        }
}

/* ---- conv2d and depthwise: double-precision references ----------------------------------- */

/* Adds every term dy[n, oy, ox, co] * w[ky, kx, ci, co] (depthwise: ci == co) to its dx and dw
 * sums and dy to db, with the sums of magnitudes. */
static void ref_conv_bwd(double *dx, double *dxm, double *dw, double *dwm, double *db, double *dbm,
                         const nn_tensor *x, const nn_tensor *dy, const float *w,
                         const nn_conv_desc *d, int depthwise)
{
    const int cin = x->c, cout = dy->c;
    for (int n = 0; n < dy->n; n++)
        for (int oy = 0; oy < dy->h; oy++)
            for (int ox = 0; ox < dy->w; ox++) {
                const float *g = dy->d + (((size_t)n * dy->h + oy) * dy->w + ox) * cout;
                for (int co = 0; co < cout; co++) db[co] += g[co], dbm[co] += fabs(g[co]);
                for (int ky = 0; ky < d->kh; ky++)
                    for (int kx = 0; kx < d->kw; kx++) {
                        int iy = oy * d->sh - d->pad_t + ky, ix = ox * d->sw - d->pad_l + kx;
                        if (iy < 0 || iy >= x->h || ix < 0 || ix >= x->w) continue;
                        size_t xi = (((size_t)n * x->h + iy) * x->w + ix) * cin;
                        size_t tap = (size_t)ky * d->kw + kx;
                        for (int ci = 0; ci < cin; ci++) {
                            int c0 = depthwise ? ci : 0, c1 = depthwise ? ci + 1 : cout;
                            for (int co = c0; co < c1; co++) {
                                size_t wi =
                                    depthwise ? tap * cin + ci : (tap * cin + ci) * cout + co;
                                double vx = (double)g[co] * w[wi],
                                       vw = (double)g[co] * x->d[xi + ci];
                                dx[xi + ci] += vx, dxm[xi + ci] += fabs(vx);
                                dw[wi] += vw, dwm[wi] += fabs(vw);
                            }
                        }
                    }
            }
}

static void ref_conv_case(const conv_case *c, int depthwise, nn_accum mode)
{
    nn_conv_desc d;
    case_desc(&d, c);
    int cout = depthwise ? c->cin : c->cout;
    int oh = (c->h + d.pad_t + d.pad_b - d.kh) / d.sh + 1;
    int ow = (c->w + d.pad_l + d.pad_r - d.kw) / d.sw + 1;
    nn_tensor x = rand_tensor(c->n, c->h, c->w, c->cin), dy = rand_tensor(c->n, oh, ow, cout);
    nn_tensor dx = nn_tensor_new(c->n, c->h, c->w, c->cin);
    size_t wn = (size_t)c->kh * c->kw * c->cin * (depthwise ? 1 : cout), xn = nn_numel(&x);
    float *w = check_rand_buf(wn), *dw = check_rand_buf(wn), *db = check_rand_buf((size_t)cout);
    double *rx = vs_calloc(xn, sizeof *rx), *rxm = vs_calloc(xn, sizeof *rxm);
    double *rw = vs_calloc(wn, sizeof *rw), *rwm = vs_calloc(wn, sizeof *rwm);
    double *rb = vs_calloc((size_t)cout, sizeof *rb), *rbm = vs_calloc((size_t)cout, sizeof *rbm);
    double *px = vs_malloc(xn * sizeof *px), *pw = vs_malloc(wn * sizeof *pw);
    double *pb = vs_malloc((size_t)cout * sizeof *pb);
    char what[300], label[400];
    case_name(what, sizeof what, depthwise ? "depthwise" : "conv2d", c, cout, &d, mode, 1);

    prefill(dx.d, px, xn, mode);
    prefill(dw, pw, wn, mode);
    prefill(db, pb, (size_t)cout, mode);
    if (depthwise) {
        be->depthwise_bwd_data(&dx, &dy, w, &d, mode);
        be->depthwise_bwd_filter(dw, db, &dy, &x, &d, mode);
    } else {
        be->conv2d_bwd_data(&dx, &dy, w, &d, mode);
        be->conv2d_bwd_filter(dw, db, &dy, &x, &d, mode);
    }
    ref_conv_bwd(rx, rxm, rw, rwm, rb, rbm, &x, &dy, w, &d, depthwise);
    for (size_t i = 0; i < xn; i++) rx[i] += px[i], rxm[i] += fabs(px[i]);
    for (size_t i = 0; i < wn; i++) rw[i] += pw[i], rwm[i] += fabs(pw[i]);
    for (int i = 0; i < cout; i++) rb[i] += pb[i], rbm[i] += fabs(pb[i]);
    snprintf(label, sizeof label, "%s: dx", what);
    CHECKF(count_bad(label, dx.d, rx, rxm, xn, 5e-5, 1e-6) == 0, "%s", label);
    snprintf(label, sizeof label, "%s: dw", what);
    CHECKF(count_bad(label, dw, rw, rwm, wn, 5e-5, 1e-6) == 0, "%s", label);
    snprintf(label, sizeof label, "%s: db", what);
    CHECKF(count_bad(label, db, rb, rbm, (size_t)cout, 5e-5, 1e-6) == 0, "%s", label);

    nn_tensor_free(&x), nn_tensor_free(&dy), nn_tensor_free(&dx);
    free(w), free(dw), free(db), free(rx), free(rxm), free(rw), free(rwm), free(rb), free(rbm);
    free(px), free(pw), free(pb);
}

static void test_conv_ref(void)
{
    static const conv_case cases[] = {
        /* the model's shapes, scaled down: k5 s2 same on even sizes, k3 s1, the k5 s1 output */
        {2, 32, 32, 16, 32, 5, 5, 2, 2, 1, 0, 0, 0, 0},
        {2, 16, 16, 64, 128, 3, 3, 1, 1, 1, 0, 0, 0, 0},
        {2, 24, 24, 16, 3, 5, 5, 1, 1, 1, 0, 0, 0, 0},  /* tiny cout */
        {4, 32, 32, 3, 16, 5, 5, 2, 2, 1, 0, 0, 0, 0},  /* RGB input: partial weight sums */
        {2, 20, 20, 64, 48, 1, 1, 1, 1, 0, 0, 0, 0, 0}, /* 1x1 direct */
        {2, 4, 4, 512, 64, 3, 3, 1, 1, 1, 0, 0, 0, 0},  /* few pixels: dx split by channels */
        {2, 24, 24, 256, 8, 3, 3, 1, 1, 1, 0, 0, 0, 0}, /* weight gradient in several chunks */
        {3, 19, 23, 24, 20, 5, 5, 2, 2, 1, 0, 0, 0, 0}, /* odd sizes */
        {2, 21, 18, 40, 24, 3, 4, 2, 3, 0, 2, 1, 0, 2}, /* asymmetric */
        {2, 17, 17, 32, 16, 3, 3, 2, 2, 0, 0, 0, 0, 0}, /* VALID */
        {4, 32, 32, 3, 3, 5, 5, 2, 2, 1, 0, 0, 0, 0},   /* partial sums, narrow dy */
        {2, 9, 8, 16, 256, 5, 5, 2, 2, 1, 0, 0, 0, 0},  /* deep dy: one sgemm per tap */
        {2, 6, 5, 24, 272, 3, 3, 1, 1, 1, 0, 0, 0, 0},
        /* narrow direct path (cout <= 4, window >= 256): lanes plus a remainder, strides, pads */
        {2, 13, 11, 40, 3, 5, 5, 1, 1, 1, 0, 0, 0, 0},
        {1, 9, 12, 17, 1, 5, 5, 2, 2, 1, 0, 0, 0, 0},
        {1, 8, 8, 64, 4, 3, 3, 1, 1, 0, 2, 0, 1, 2},
        {3, 6, 7, 32, 2, 3, 3, 1, 2, 1, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        for (int mode = NN_OVERWRITE; mode <= NN_ACCUMULATE; mode++)
            ref_conv_case(&cases[i], 0, (nn_accum)mode);
    static const conv_case dw_cases[] = {
        {2, 20, 20, 40, 0, 3, 3, 2, 2, 1, 0, 0, 0, 0},
        {2, 33, 31, 5, 0, 5, 5, 1, 1, 1, 0, 0, 0, 0},
        {1, 64, 70, 32, 0, 3, 3, 1, 1, 1, 0, 0, 0, 0},
        {2, 15, 16, 17, 0, 3, 2, 2, 1, 0, 1, 2, 0, 1},
    };
    for (size_t i = 0; i < sizeof dw_cases / sizeof *dw_cases; i++)
        for (int mode = NN_OVERWRITE; mode <= NN_ACCUMULATE; mode++)
            ref_conv_case(&dw_cases[i], 1, (nn_accum)mode);
}

/* ---- dense ------------------------------------------------------------------------------- */

static double dense_proj(float *y, const float *x, const float *w, const float *b, const float *r,
                         int n, int in, int out)
{
    be_dense(be, y, x, w, b, n, in, out, NN_ACT_NONE, 0);
    double s = 0;
    for (size_t i = 0; i < (size_t)n * out; i++) s += (double)r[i] * y[i];
    return s;
}

static void dense_case(int n, int in, int out, nn_accum mode, int with_db, int fd)
{
    size_t xn = (size_t)n * in, wn = (size_t)in * out, yn = (size_t)n * out;
    float *x = check_rand_buf(xn), *w = check_rand_buf(wn), *b = check_rand_buf((size_t)out),
          *dy = check_rand_buf(yn);
    float *y = check_rand_buf(yn), *dx = check_rand_buf(xn), *dw = check_rand_buf(wn),
          *db = check_rand_buf((size_t)out);
    double *px = vs_malloc(xn * sizeof *px), *pw = vs_malloc(wn * sizeof *pw);
    double *pb = vs_malloc((size_t)out * sizeof *pb);
    char what[200], label[300];
    snprintf(what, sizeof what, "dense %dx%d -> %d, %s%s, %d threads", n, in, out, mode_name(mode),
             with_db ? "" : ", db NULL", nn_cpu_threads());
    prefill(dx, px, xn, mode);
    prefill(dw, pw, wn, mode);
    prefill(db, pb, (size_t)out, mode);
    be_dense_bwd_data(be, dx, dy, w, n, in, out, mode);
    be_dense_bwd_filter(be, dw, with_db ? db : NULL, dy, x, n, in, out, mode);

    if (fd) {
        double *num = vs_malloc((xn + wn) * sizeof *num);
        const float eps = 1e-2f;
        struct {
            float *p;
            size_t n;
            const char *name;
            const float *got;
            const double *prior;
        } params[] = {{x, xn, "dx", dx, px}, {w, wn, "dw", dw, pw}, {b, (size_t)out, "db", db, pb}};
        for (int k = 0; k < (with_db ? 3 : 2); k++) {
            for (size_t i = 0; i < params[k].n; i++) {
                float *p = params[k].p, keep = p[i], hi = keep + eps, lo = keep - eps;
                p[i] = hi;
                double fp = dense_proj(y, x, w, b, dy, n, in, out);
                p[i] = lo;
                double fm = dense_proj(y, x, w, b, dy, n, in, out);
                p[i] = keep;
                num[i] = (fp - fm) / ((double)hi - lo);
            }
            check_fd(what, params[k].name, params[k].got, params[k].prior, num, params[k].n);
        }
        free(num);
    } else {
        double *rx = vs_malloc(xn * sizeof *rx), *rxm = vs_malloc(xn * sizeof *rxm);
        double *rw = vs_malloc(wn * sizeof *rw), *rwm = vs_malloc(wn * sizeof *rwm);
        double *rb = vs_malloc((size_t)out * sizeof *rb),
               *rbm = vs_malloc((size_t)out * sizeof *rbm);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < in; k++) {
                double s = px[(size_t)i * in + k], m = fabs(s);
                for (int o = 0; o < out; o++) {
                    double v = (double)dy[(size_t)i * out + o] * w[(size_t)k * out + o];
                    s += v, m += fabs(v);
                }
                rx[(size_t)i * in + k] = s, rxm[(size_t)i * in + k] = m;
            }
        for (size_t i = 0; i < wn; i++) rw[i] = pw[i], rwm[i] = fabs(pw[i]);
        for (int o = 0; o < out; o++) rb[o] = pb[o], rbm[o] = fabs(pb[o]);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) {
                double g = dy[(size_t)i * out + o];
                rb[o] += g, rbm[o] += fabs(g);
                for (int k = 0; k < in; k++) {
                    double v = g * x[(size_t)i * in + k];
                    rw[(size_t)k * out + o] += v, rwm[(size_t)k * out + o] += fabs(v);
                }
            }
        snprintf(label, sizeof label, "%s: dx", what);
        CHECKF(count_bad(label, dx, rx, rxm, xn, 5e-5, 1e-6) == 0, "%s", label);
        snprintf(label, sizeof label, "%s: dw", what);
        CHECKF(count_bad(label, dw, rw, rwm, wn, 5e-5, 1e-6) == 0, "%s", label);
        if (with_db) {
            snprintf(label, sizeof label, "%s: db", what);
            CHECKF(count_bad(label, db, rb, rbm, (size_t)out, 5e-5, 1e-6) == 0, "%s", label);
        }
        free(rx), free(rxm), free(rw), free(rwm), free(rb), free(rbm);
    }
    if (!with_db)
        for (int i = 0; i < out; i++)
            CHECKF(mode == NN_OVERWRITE ? isnan(db[i]) : db[i] == (float)pb[i], "%s: db written",
                   what);
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
    free(px), free(pw), free(pb);
}

static void test_dense(void)
{
    for (int mode = NN_OVERWRITE; mode <= NN_ACCUMULATE; mode++) {
        nn_accum m = (nn_accum)mode;
        dense_case(3, 7, 5, m, 1, 1);
        dense_case(1, 9, 4, m, 0, 1);
        dense_case(4, 5, 1, m, 1, 1);
        /* several weight tiles each way: rows of w, and dw's column blocks */
        dense_case(32, 600, 300, m, 1, 0);
        dense_case(5, 2000, 40, m, m == NN_OVERWRITE, 0);
        dense_case(8, 300, 2500, m, 1, 0);
    }
}

/* ---- degenerate shapes ------------------------------------------------------------------- */

/* A batch of none gives zero weight gradients (overwrite) and leaves accumulators alone. */
static void test_empty(void)
{
    float dw[6], db[2] = {NAN, NAN};
    for (int i = 0; i < 6; i++) dw[i] = NAN;
    be_dense_bwd_filter(be, dw, db, NULL, NULL, 0, 3, 2, NN_OVERWRITE);
    int zero = 1;
    for (int i = 0; i < 6; i++) zero &= dw[i] == 0.0f;
    CHECK(zero && db[0] == 0.0f && db[1] == 0.0f);
    dw[0] = 1.5f, db[0] = 2.5f;
    be_dense_bwd_filter(be, dw, db, NULL, NULL, 0, 3, 2, NN_ACCUMULATE);
    CHECK(dw[0] == 1.5f && db[0] == 2.5f);

    nn_conv_desc d;
    nn_conv_geometry(&d, 4, 4, 3, 3, 1, 1, NN_PAD_SAME);
    nn_tensor x = {.d = NULL, .n = 0, .h = 4, .w = 4, .c = 1}, dy = x;
    float cw[9], cb[1] = {NAN};
    for (int i = 0; i < 9; i++) cw[i] = NAN;
    be->conv2d_bwd_filter(cw, cb, &dy, &x, &d, NN_OVERWRITE);
    zero = 1;
    for (int i = 0; i < 9; i++) zero &= cw[i] == 0.0f;
    CHECK(zero && cb[0] == 0.0f);
}

int main(void)
{
    be = nn_cpu_backend();
    for (int th = 1; th <= 2; th++) {
        nn_cpu_set_threads(th);
        test_fd();
        test_conv_ref();
        test_dense();
        test_empty();
    }
    return check_report("test_grad");
}
