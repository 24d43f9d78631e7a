/* test_cuda_ops.c: every operation of the CUDA backend (cuda/) against its CPU twin, the
 * reference backend of core/nn/cpu_*.c, on the same random inputs. Outputs an op overwrites start
 * as NaN on the GPU, so an element it forgets to write fails; outputs an op accumulates into start
 * from the same random values on both sides. Errors are measured against the largest value of the
 * CPU's tensor: 1e-5 in fp32 mode (up to 5e-5 for long sums), 1e-2 for the convolutions and GEMMs
 * run again in TF32 mode; data movement (pixel shuffle, fill, add) must match exactly. Every
 * branch of each launcher is reached: symmetric and asymmetric padding, both accumulation modes,
 * NULL bias and bias gradient, every activation. Last, a training step (conv, filter gradient,
 * flag_nonfinite, adam_ctl) captured as a graph and replayed. Then, in bf16 and fp16, every
 * operation a 16-bit model runs against tests/half_backend.h (the CPU rounding where the GPU
 * does). One line per op family with its worst error; crop_resize, warp and host_alloc print
 * their own (how many values differ from the CPU's at all). And the three face networks end to end
 * on faces_gt photos (PPM copies that make gpu-bundle writes into .device/faces, or
 * $VISAGE_GPU_FACES), in fp32 and in the card's 16-bit precision, against the CPU: boxes IoU >=
 * 0.95, landmarks within 1 px, embeddings cosine >= 0.999. Skipped where there is no GPU. */
#include <stdarg.h>

#include "align.h"
#include "augment.h"
#include "check.h"
#include "convert.h"
#include "err.h"
#include "facenet_compare.h"
#include "flat_ops.h"
#include "half_backend.h"
#include "nn/backend.h"
#include "nn/half.h"
#include "ppm.h"

static const nn_backend *cpu, *gpu;
static int tf32; /* the GPU is in TF32 mode: convolution and GEMM tolerances are 1e-2 */

/* ---- op families: the worst error of each, printed once per precision --------------------- */

/* clang-format off */
enum {
    F_CONV, F_CONV_BD, F_CONV_BF, F_DW, F_DW_BD, F_DW_BF, F_POOL, F_DENSE, F_DENSE_BD, F_DENSE_BF,
    F_ACT, F_ACT_BWD, F_ADD, F_SCALE_BIAS, F_SHUFFLE, F_LOSS, F_ADAM, F_FINITE, F_FILL, F_GRAPH,
    F_AUGMENT, F_CONVERT, F_ADD_PADDED, F_COUNT
};
static const char *fam_name[F_COUNT] = {
    "conv2d fwd", "conv2d bwd_data", "conv2d bwd_filter",
    "depthwise fwd", "depthwise bwd_data", "depthwise bwd_filter",
    "pool", "dense fwd", "dense bwd_data", "dense bwd_filter",
    "act", "act_bwd", "add", "scale_bias", "depth_to_space/space_to_depth",
    "loss", "adam", "all_finite", "fill", "captured step", "augment", "convert", "add_padded",
};
/* clang-format on */
static double fam_worst[F_COUNT];
static int fam_cases[F_COUNT];
static int fam; /* the family close_enough records into */

static void report_families(const char *prec)
{
    for (int f = 0; f < F_COUNT; f++) {
        if (!fam_cases[f]) continue;
        printf("%s %s: worst rel err %.2g over %d comparisons\n", fam_name[f], prec, fam_worst[f],
               fam_cases[f]);
        fam_worst[f] = 0, fam_cases[f] = 0;
    }
}

/* A result of an op with an exact answer (all_finite's verdict): counted, error 0 or 1. */
static void note_exact(int ok)
{
    fam_cases[fam]++;
    if (!ok) fam_worst[fam] = 1;
}

/* ---- comparison ---------------------------------------------------------------------------- */

/* The GPU's values against the CPU's: the largest |gpu - cpu| over the tensor, relative to the
 * largest |cpu| (1 when that is 0), must be within rtol (0: exact). NaN anywhere fails. */
static int close_enough(const float *g, const float *c, size_t n, double rtol, const char *what)
{
    double mx = 0, worst = -1;
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)c[i]) > mx) mx = fabs((double)c[i]);
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)g[i] - (double)c[i]);
        if (isnan(err)) err = INFINITY;
        if (err > worst) worst = err, at = i;
    }
    double scale = mx > 0 && isfinite(mx) ? mx : 1.0;
    double rel = n ? worst / scale : 0.0;
    int ok = rel <= rtol;
    fam_cases[fam]++;
    if (!(rel <= fam_worst[fam])) fam_worst[fam] = rel;
    CHECKF(ok,
           "%s: worst rel err %.3g at [%zu] of %zu: gpu %.9g cpu %.9g (max |cpu| %.4g, rtol %g)",
           what, rel, at, n, (double)g[at], (double)c[at], mx, rtol);
    return ok;
}

/* close_enough, its name formatted from fmt and ap */
static int close_enough_v(const float *g, const float *c, size_t n, double rtol, const char *fmt,
                          va_list ap)
{
    char what[256];
    vsnprintf(what, sizeof what, fmt, ap);
    return close_enough(g, c, n, rtol, what);
}

/* fp32: 1e-5 of the tensor's largest value, more for sums over len terms; tf32: 1e-2 */
static double tol_sum(size_t len)
{
    if (tf32) return 1e-2;
    return len < 100 ? 1e-5 : len < 1000 ? 2e-5 : 5e-5;
}

#define RTOL 1e-5

/* ---- device helpers ------------------------------------------------------------------------ */

static float *to_gpu(const float *h, size_t n)
{
    if (!h) return NULL;
    float *d = gpu->alloc(n);
    gpu->copy_in(d, h, n);
    return d;
}

static float *nan_gpu(size_t n)
{
    float *d = gpu->alloc(n);
    gpu->fill(d, n, NAN);
    return d;
}

/* The start of an output on the GPU: NaN where the op overwrites, else the CPU's start. */
static float *gpu_out(const float *start, size_t n, nn_accum mode)
{
    return mode == NN_OVERWRITE ? nan_gpu(n) : to_gpu(start, n);
}

static float *from_gpu(const float *d, size_t n)
{
    float *h = vs_malloc((n ? n : 1) * sizeof *h);
    gpu->copy_out(h, d, n);
    return h;
}

/* A conv2d kernel (k = kh * kw * cin rows of cout, TensorFlow's layout on the host) to the GPU in
 * the backend's kernel layout, and back. */
static float *to_gpu_k(const float *h, size_t k, int cout)
{
    float *t = vs_malloc(k * (size_t)cout * sizeof *t);
    nn_conv_weights_convert(t, h, k, cout, NN_LAYOUT_HWIO, gpu->conv_layout);
    float *d = to_gpu(t, k * (size_t)cout);
    free(t);
    return d;
}

static float *from_gpu_k(const float *d, size_t k, int cout)
{
    float *t = from_gpu(d, k * (size_t)cout), *h = vs_malloc(k * (size_t)cout * sizeof *h);
    nn_conv_weights_convert(h, t, k, cout, gpu->conv_layout, NN_LAYOUT_HWIO);
    free(t);
    return h;
}

static void gpu_free(float *d)
{
    if (d) gpu->free(d);
}

static nn_tensor ten(float *d, int n, int h, int w, int c)
{
    nn_tensor t = {.d = d, .n = n, .h = h, .w = w, .c = c};
    return t;
}

/* The device tensor dev against the CPU's ref. */
__attribute__((format(printf, 5, 6))) static int
check_dev(const float *dev, const float *ref, size_t n, double rtol, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    float *got = from_gpu(dev, n);
    int ok = close_enough_v(got, ref, n, rtol, fmt, ap);
    va_end(ap);
    free(got);
    return ok;
}

/* The same for a conv2d kernel kept in the backend's layout. */
__attribute__((format(printf, 6, 7))) static int check_dev_k(const float *dev, const float *ref,
                                                             size_t k, int cout, double rtol,
                                                             const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    float *got = from_gpu_k(dev, k, cout);
    int ok = close_enough_v(got, ref, k * (size_t)cout, rtol, fmt, ap);
    va_end(ap);
    free(got);
    return ok;
}

static const struct {
    nn_act act;
    float alpha;
    const char *name;
} acts[] = {
    {NN_ACT_NONE, 0, "none"},          {NN_ACT_RELU, 0, "relu"},
    {NN_ACT_RELU6, 0, "relu6"},        {NN_ACT_LEAKY, 0.1f, "leaky 0.1"},
    {NN_ACT_LEAKY, 0.2f, "leaky 0.2"}, {NN_ACT_SIGMOID, 0, "sigmoid"},
};
#define N_ACTS (int)(sizeof acts / sizeof acts[0])

static const char *act_str(nn_act act, float alpha)
{
    for (int i = 0; i < N_ACTS; i++)
        if (acts[i].act == act && (act != NN_ACT_LEAKY || acts[i].alpha == alpha))
            return acts[i].name;
    return "leaky";
}

static const char *mode_name(nn_accum m)
{
    return m == NN_OVERWRITE ? "overwrite" : "accumulate";
}

/* ---- conv2d and depthwise: forward, backward data, backward filter ------------------------ */

typedef struct conv_case {
    int n, h, w, cin, cout, k, s; /* depthwise: cout unused (= cin) */
    nn_pad_mode pad;
    nn_act act;
    float alpha;
    int no_bias;
} conv_case;

static void run_conv(const conv_case *c, int depthwise)
{
    nn_conv_desc d;
    nn_conv_geometry(&d, c->h, c->w, c->k, c->k, c->s, c->s, c->pad);
    d.act = c->act, d.alpha = c->alpha; /* the backward passes must ignore it */
    int oh = nn_out_size(c->h, c->k, c->s, c->pad), ow = nn_out_size(c->w, c->k, c->s, c->pad);
    int cout = depthwise ? c->cin : c->cout;
    size_t nx = (size_t)c->n * c->h * c->w * c->cin, ny = (size_t)c->n * oh * ow * cout;
    size_t nw = (size_t)c->k * c->k * c->cin * (depthwise ? 1 : (size_t)cout), nb = (size_t)cout;
    float *x = check_rand_buf(nx), *w = check_rand_buf(nw), *dy = check_rand_buf(ny);
    float *b = c->no_bias ? NULL : check_rand_buf(nb);
    /* conv2d kernels live in the backend's layout; depthwise ones are the same everywhere */
    const size_t kk = (size_t)c->k * c->k * c->cin;
    float *gx = to_gpu(x, nx), *gdy = to_gpu(dy, ny), *gb = to_gpu(b, nb);
    float *gw = depthwise ? to_gpu(w, nw) : to_gpu_k(w, kk, cout);
    nn_tensor tx = ten(x, c->n, c->h, c->w, c->cin), gtx = ten(gx, c->n, c->h, c->w, c->cin);
    nn_tensor tdy = ten(dy, c->n, oh, ow, cout), gtdy = ten(gdy, c->n, oh, ow, cout);
    char tag[160];
    snprintf(tag, sizeof tag, "%s [%d,%d,%d,%d]->%d k%d s%d pad t%d l%d b%d r%d %s%s%s",
             depthwise ? "depthwise" : "conv2d", c->n, c->h, c->w, c->cin, cout, c->k, c->s,
             d.pad_t, d.pad_l, d.pad_b, d.pad_r, act_str(c->act, c->alpha), b ? "" : " no bias",
             tf32 ? " tf32" : "");
    size_t red_fwd = (size_t)c->k * c->k * (depthwise ? 1 : (size_t)c->cin);
    size_t red_bd = (size_t)c->k * c->k * (depthwise ? 1 : (size_t)cout);
    size_t red_bf = (size_t)c->n * oh * ow;

    float *y = vs_malloc(ny * sizeof *y), *gy = nan_gpu(ny);
    nn_tensor ty = ten(y, c->n, oh, ow, cout), gty = ten(gy, c->n, oh, ow, cout);
    (depthwise ? cpu->depthwise : cpu->conv2d)(&ty, &tx, w, b, &d);
    (depthwise ? gpu->depthwise : gpu->conv2d)(&gty, &gtx, gw, gb, &d);
    fam = depthwise ? F_DW : F_CONV;
    check_dev(gy, y, ny, tol_sum(red_fwd), "%s fwd", tag);
    free(y), gpu_free(gy);

    for (int m = 0; m < 2; m++) {
        nn_accum mode = m ? NN_ACCUMULATE : NN_OVERWRITE;
        float *dx = check_rand_buf(nx), *gdx = gpu_out(dx, nx, mode);
        nn_tensor tdx = ten(dx, c->n, c->h, c->w, c->cin),
                  gtdx = ten(gdx, c->n, c->h, c->w, c->cin);
        (depthwise ? cpu->depthwise_bwd_data : cpu->conv2d_bwd_data)(&tdx, &tdy, w, &d, mode);
        (depthwise ? gpu->depthwise_bwd_data : gpu->conv2d_bwd_data)(&gtdx, &gtdy, gw, &d, mode);
        fam = depthwise ? F_DW_BD : F_CONV_BD;
        check_dev(gdx, dx, nx, tol_sum(red_bd), "%s bwd_data %s", tag, mode_name(mode));
        free(dx), gpu_free(gdx);

        for (int with_db = 0; with_db < 2; with_db++) {
            float *dw = check_rand_buf(nw);
            float *gdw =
                depthwise || mode == NN_OVERWRITE ? gpu_out(dw, nw, mode) : to_gpu_k(dw, kk, cout);
            float *db = with_db ? check_rand_buf(nb) : NULL;
            float *gdb = with_db ? gpu_out(db, nb, mode) : NULL;
            (depthwise ? cpu->depthwise_bwd_filter : cpu->conv2d_bwd_filter)(dw, db, &tdy, &tx, &d,
                                                                             mode);
            (depthwise ? gpu->depthwise_bwd_filter : gpu->conv2d_bwd_filter)(gdw, gdb, &gtdy, &gtx,
                                                                             &d, mode);
            fam = depthwise ? F_DW_BF : F_CONV_BF;
            if (depthwise)
                check_dev(gdw, dw, nw, tol_sum(red_bf), "%s bwd_filter dw %s%s", tag,
                          mode_name(mode), with_db ? "" : " (db NULL)");
            else
                check_dev_k(gdw, dw, kk, cout, tol_sum(red_bf), "%s bwd_filter dw %s%s", tag,
                            mode_name(mode), with_db ? "" : " (db NULL)");
            if (with_db)
                check_dev(gdb, db, nb, tol_sum(red_bf), "%s bwd_filter db %s", tag,
                          mode_name(mode));
            free(dw), free(db), gpu_free(gdw), gpu_free(gdb);
        }
    }
    free(x), free(w), free(dy), free(b);
    gpu_free(gx), gpu_free(gw), gpu_free(gdy), gpu_free(gb);
}

/* conv2d with its pixel shuffle in one pass (Faceswap's upscale block), and the backward pass of
 * the shuffle with the conv's activation: against the CPU, every activation, cout/4 of 1 and 5 */
static void run_conv_shuffle(int n, int h, int w, int cin, int cout, int k, nn_act act, float alpha)
{
    nn_conv_desc d;
    nn_conv_geometry(&d, h, w, k, k, 1, 1, NN_PAD_SAME);
    d.act = act, d.alpha = alpha, d.shuffle = 2;
    const int c = cout / 4;
    size_t nx = (size_t)n * h * w * cin, ny = (size_t)n * h * w * cout, kk = (size_t)k * k * cin;
    float *x = check_rand_buf(nx), *wt = check_rand_buf(kk * cout), *b = check_rand_buf(cout);
    float *gx = to_gpu(x, nx), *gw = to_gpu_k(wt, kk, cout), *gb = to_gpu(b, cout);
    float *y = vs_malloc(ny * sizeof *y), *gy = nan_gpu(ny);
    nn_tensor tx = ten(x, n, h, w, cin), gtx = ten(gx, n, h, w, cin);
    nn_tensor ty = ten(y, n, 2 * h, 2 * w, c), gty = ten(gy, n, 2 * h, 2 * w, c);
    cpu->conv2d(&ty, &tx, wt, b, &d);
    gpu->conv2d(&gty, &gtx, gw, gb, &d);
    fam = F_CONV;
    check_dev(gy, y, ny, tol_sum(kk), "conv2d+shuffle [%d,%d,%d,%d]->%d k%d %s", n, h, w, cin, cout,
              k, act_str(act, alpha));
    /* backward through the shuffle and the activation, from the layer's real output */
    float *dy = check_rand_buf(ny), *dx = vs_malloc(ny * sizeof *dx);
    float *gdy = to_gpu(dy, ny), *gdx = nan_gpu(ny), *gy_cpu = to_gpu(y, ny);
    nn_tensor tdy = ten(dy, n, 2 * h, 2 * w, c), gtdy = ten(gdy, n, 2 * h, 2 * w, c);
    nn_tensor tdx = ten(dx, n, h, w, cout), gtdx = ten(gdx, n, h, w, cout);
    nn_tensor gty_cpu = ten(gy_cpu, n, 2 * h, 2 * w, c);
    cpu->shuffle_act_bwd(&tdx, &tdy, &ty, 2, act, alpha);
    gpu->shuffle_act_bwd(&gtdx, &gtdy, &gty_cpu, 2, act, alpha);
    fam = F_SHUFFLE;
    check_dev(gdx, dx, ny, 0, "shuffle_act_bwd [%d,%d,%d,%d] %s", n, 2 * h, 2 * w, c,
              act_str(act, alpha));
    free(x), free(wt), free(b), free(y), free(dy), free(dx);
    gpu_free(gx), gpu_free(gw), gpu_free(gb), gpu_free(gy), gpu_free(gdy), gpu_free(gdx);
    gpu_free(gy_cpu);
}

static void test_conv_shuffle(void)
{
    for (int a = 0; a < N_ACTS; a++)
        run_conv_shuffle(2, 6, 5, 7, a % 2 ? 20 : 4, 3, acts[a].act, acts[a].alpha);
    run_conv_shuffle(1, 8, 8, 16, 64, 3, NN_ACT_LEAKY, 0.1f);
}

#define SAME NN_PAD_SAME
#define VALID NN_PAD_VALID

static const conv_case conv_cases[] = {
    /* symmetric padding (pad_t == pad_b, pad_l == pad_r) */
    {2, 16, 16, 8, 12, 3, 1, SAME, NN_ACT_RELU, 0, 0},
    {1, 16, 16, 5, 7, 5, 1, SAME, NN_ACT_LEAKY, 0.1f, 0},
    {3, 12, 10, 7, 5, 3, 1, VALID, NN_ACT_NONE, 0, 0},
    {2, 12, 12, 4, 6, 3, 2, VALID, NN_ACT_RELU6, 0, 0},   /* the last row and column unused */
    {2, 10, 10, 16, 24, 1, 1, VALID, NN_ACT_NONE, 0, 1},  /* pointwise, no bias */
    {2, 8, 8, 12, 3, 5, 1, SAME, NN_ACT_SIGMOID, 0, 0},   /* the RGB output */
    {2, 8, 8, 12, 1, 5, 1, SAME, NN_ACT_SIGMOID, 0, 1},   /* the mask output, no bias */
    {1, 8, 8, 64, 48, 3, 1, SAME, NN_ACT_LEAKY, 0.2f, 0}, /* K = 576 */
    /* asymmetric padding (TF "same", stride 2, the extra row/column bottom/right) */
    {2, 16, 16, 3, 16, 5, 2, SAME, NN_ACT_LEAKY, 0.1f, 0},  /* the RGB input, pad 1/2 */
    {3, 9, 14, 5, 7, 3, 2, SAME, NN_ACT_RELU6, 0, 0},       /* t1 b1, l0 r1 */
    {1, 10, 9, 3, 1, 3, 2, SAME, NN_ACT_SIGMOID, 0, 1},     /* t0 b1, l1 r1 */
    {1, 16, 16, 8, 8, 3, 2, SAME, NN_ACT_RELU, 0, 1},       /* 0/1 */
    {1, 12, 12, 48, 40, 5, 2, SAME, NN_ACT_LEAKY, 0.2f, 0}, /* 1/2, K = 1200 */
};

static const conv_case dw_cases[] = {
    {2, 16, 16, 8, 0, 3, 1, SAME, NN_ACT_RELU, 0, 0},
    {2, 16, 16, 3, 0, 5, 1, SAME, NN_ACT_LEAKY, 0.1f, 0},
    {2, 12, 12, 6, 0, 3, 2, VALID, NN_ACT_SIGMOID, 0, 0},
    {1, 10, 10, 32, 0, 3, 1, VALID, NN_ACT_RELU6, 0, 1},
    {1, 16, 16, 5, 0, 3, 2, SAME, NN_ACT_NONE, 0, 1},    /* 0/1 */
    {3, 9, 14, 7, 0, 5, 2, SAME, NN_ACT_LEAKY, 0.2f, 0}, /* t2 b2, l1 r2 */
};

/* ---- dense --------------------------------------------------------------------------------- */

static void run_dense(int n, int in, int out, nn_act act, float alpha, int no_bias)
{
    size_t nx = (size_t)n * in, ny = (size_t)n * out, nw = (size_t)in * out, nb = (size_t)out;
    float *x = check_rand_buf(nx), *w = check_rand_buf(nw), *dy = check_rand_buf(ny);
    float *b = no_bias ? NULL : check_rand_buf(nb);
    float *gx = to_gpu(x, nx), *gw = to_gpu(w, nw), *gdy = to_gpu(dy, ny), *gb = to_gpu(b, nb);
    char tag[128];
    snprintf(tag, sizeof tag, "dense n %d in %d out %d %s%s%s", n, in, out, act_str(act, alpha),
             b ? "" : " no bias", tf32 ? " tf32" : "");

    float *y = vs_malloc(ny * sizeof *y), *gy = nan_gpu(ny);
    be_dense(cpu, y, x, w, b, n, in, out, act, alpha);
    be_dense(gpu, gy, gx, gw, gb, n, in, out, act, alpha);
    fam = F_DENSE;
    check_dev(gy, y, ny, tol_sum((size_t)in), "%s fwd", tag);
    free(y), gpu_free(gy);

    for (int m = 0; m < 2; m++) {
        nn_accum mode = m ? NN_ACCUMULATE : NN_OVERWRITE;
        float *dx = check_rand_buf(nx), *gdx = gpu_out(dx, nx, mode);
        be_dense_bwd_data(cpu, dx, dy, w, n, in, out, mode);
        be_dense_bwd_data(gpu, gdx, gdy, gw, n, in, out, mode);
        fam = F_DENSE_BD;
        check_dev(gdx, dx, nx, tol_sum((size_t)out), "%s bwd_data %s", tag, mode_name(mode));
        free(dx), gpu_free(gdx);
        for (int with_db = 0; with_db < 2; with_db++) {
            float *dw = check_rand_buf(nw), *gdw = gpu_out(dw, nw, mode);
            float *db = with_db ? check_rand_buf(nb) : NULL;
            float *gdb = with_db ? gpu_out(db, nb, mode) : NULL;
            be_dense_bwd_filter(cpu, dw, db, dy, x, n, in, out, mode);
            be_dense_bwd_filter(gpu, gdw, gdb, gdy, gx, n, in, out, mode);
            fam = F_DENSE_BF;
            check_dev(gdw, dw, nw, tol_sum((size_t)n), "%s bwd_filter dw %s%s", tag,
                      mode_name(mode), with_db ? "" : " (db NULL)");
            if (with_db)
                check_dev(gdb, db, nb, tol_sum((size_t)n), "%s bwd_filter db %s", tag,
                          mode_name(mode));
            free(dw), free(db), gpu_free(gdw), gpu_free(gdb);
        }
    }
    free(x), free(w), free(dy), free(b);
    gpu_free(gx), gpu_free(gw), gpu_free(gdy), gpu_free(gb);
}

/* Every convolution, depthwise and dense case (run once per precision). */
static void test_layers(void)
{
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
        run_conv(&conv_cases[i], 0);
    for (size_t i = 0; i < sizeof dw_cases / sizeof dw_cases[0]; i++) run_conv(&dw_cases[i], 1);
    static const int ns[] = {1, 5}, ins[] = {7, 300}, outs[] = {1, 33};
    int k = 0;
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 2; c++, k++)
                run_dense(ns[a], ins[b], outs[c], acts[k % N_ACTS].act, acts[k % N_ACTS].alpha,
                          k % 3 == 1);
}

/* ---- pool ---------------------------------------------------------------------------------- */

static void run_pool(int n, int h, int w, int c, nn_pool_kind kind, int k, int s, nn_pad_mode pad)
{
    nn_pool_desc d = {.kind = kind, .kh = k, .kw = k, .sh = s, .sw = s};
    nn_pad_for(&d.pad_t, &d.pad_b, h, k, s, pad);
    nn_pad_for(&d.pad_l, &d.pad_r, w, k, s, pad);
    int oh = nn_out_size(h, k, s, pad), ow = nn_out_size(w, k, s, pad);
    size_t nx = (size_t)n * h * w * c, ny = (size_t)n * oh * ow * c;
    float *x = check_rand_buf(nx), *gx = to_gpu(x, nx);
    float *y = vs_malloc(ny * sizeof *y), *gy = nan_gpu(ny);
    nn_tensor tx = ten(x, n, h, w, c), gtx = ten(gx, n, h, w, c);
    nn_tensor ty = ten(y, n, oh, ow, c), gty = ten(gy, n, oh, ow, c);
    cpu->pool(&ty, &tx, &d);
    gpu->pool(&gty, &gtx, &d);
    fam = F_POOL;
    check_dev(gy, y, ny, RTOL, "pool %s [%d,%d,%d,%d] k%d s%d pad t%d l%d b%d r%d",
              kind == NN_POOL_MAX ? "max" : "avg", n, h, w, c, k, s, d.pad_t, d.pad_l, d.pad_b,
              d.pad_r);
    free(x), free(y), gpu_free(gx), gpu_free(gy);
}

static void test_pool(void)
{
    for (int kind = NN_POOL_MAX; kind <= NN_POOL_AVG; kind++) {
        nn_pool_kind pk = (nn_pool_kind)kind;
        run_pool(2, 16, 16, 5, pk, 3, 2, SAME); /* pad 0/1 */
        run_pool(3, 9, 14, 3, pk, 3, 2, SAME);  /* t1 b1, l0 r1 */
        run_pool(1, 10, 10, 8, pk, 3, 1, SAME); /* 1/1 */
        run_pool(2, 16, 16, 5, pk, 2, 2, VALID);
        run_pool(2, 9, 11, 7, pk, 2, 2, VALID); /* the last row and column dropped */
    }
}

/* ---- elementwise: act, act_bwd, add, scale_bias -------------------------------------------- */

static void test_act(void)
{
    const size_t n = 100003;
    for (int a = 0; a < N_ACTS; a++) {
        nn_act act = acts[a].act;
        float alpha = acts[a].alpha;
        /* [-8, 8]: relu6 clips a good part to exactly 6, relu to exactly 0 */
        float *x = vs_malloc(n * sizeof *x);
        for (size_t i = 0; i < n; i++) x[i] = 8.0f * check_frand();
        float *gx = to_gpu(x, n);
        be_act(cpu, x, n, act, alpha);
        be_act(gpu, gx, n, act, alpha);
        fam = F_ACT;
        check_dev(gx, x, n, RTOL, "act %s", acts[a].name);

        /* backward from the CPU's outputs on both sides */
        float *dy = check_rand_buf(n), *dx = vs_malloc(n * sizeof *dx);
        float *gy = to_gpu(x, n), *gdy = to_gpu(dy, n), *gdx = nan_gpu(n);
        be_act_bwd(cpu, dx, dy, x, n, act, alpha);
        be_act_bwd(gpu, gdx, gdy, gy, n, act, alpha);
        fam = F_ACT_BWD;
        check_dev(gdx, dx, n, RTOL, "act_bwd %s", acts[a].name);
        be_act_bwd(cpu, dy, dy, x, n, act, alpha); /* dx aliasing dy */
        be_act_bwd(gpu, gdy, gdy, gy, n, act, alpha);
        check_dev(gdy, dy, n, RTOL, "act_bwd %s, dx == dy", acts[a].name);
        free(x), free(dy), free(dx);
        gpu_free(gx), gpu_free(gy), gpu_free(gdy), gpu_free(gdx);
    }
}

static void test_add(void)
{
    static const size_t sizes[] = {7, 100003};
    fam = F_ADD;
    for (int s = 0; s < 2; s++) {
        size_t n = sizes[s];
        float *a = check_rand_buf(n), *b = check_rand_buf(n), *y = vs_malloc(n * sizeof *y);
        float *ga = to_gpu(a, n), *gb = to_gpu(b, n), *gy = nan_gpu(n);
        be_add(cpu, y, a, b, n);
        be_add(gpu, gy, ga, gb, n);
        check_dev(gy, y, n, 0, "add n %zu", n);
        be_add(cpu, a, a, b, n); /* y aliasing a */
        be_add(gpu, ga, ga, gb, n);
        check_dev(ga, a, n, 0, "add n %zu, y == a", n);
        be_add(cpu, b, a, b, n); /* y aliasing b */
        be_add(gpu, gb, ga, gb, n);
        check_dev(gb, b, n, 0, "add n %zu, y == b", n);
        free(a), free(b), free(y), gpu_free(ga), gpu_free(gb), gpu_free(gy);
    }
}

static void test_scale_bias(void)
{
    static const int cs[] = {1, 37};
    static const char *which_name[] = {"scale and bias", "bias only", "scale only"};
    fam = F_SCALE_BIAS;
    for (int k = 0; k < 2; k++)
        for (int which = 0; which < 3; which++) {
            int c = cs[k];
            size_t n = (size_t)3 * 17 * 13 * c;
            float *x = check_rand_buf(n), *gx = to_gpu(x, n);
            float *s = which == 1 ? NULL : check_rand_buf((size_t)c);
            float *b = which == 2 ? NULL : check_rand_buf((size_t)c);
            float *gs = to_gpu(s, (size_t)c), *gb = to_gpu(b, (size_t)c);
            nn_tensor tx = ten(x, 3, 17, 13, c), gtx = ten(gx, 3, 17, 13, c);
            cpu->scale_bias(&tx, s, b);
            gpu->scale_bias(&gtx, gs, gb);
            check_dev(gx, x, n, RTOL, "scale_bias c %d %s", c, which_name[which]);
            free(x), free(s), free(b), gpu_free(gx), gpu_free(gs), gpu_free(gb);
        }
}

/* ---- pixel shuffle: exact ------------------------------------------------------------------ */

static void run_shuffle(int n, int h, int w, int c, int r)
{
    size_t num = (size_t)n * h * w * r * r * c;
    fam = F_SHUFFLE;
    for (int inverse = 0; inverse < 2; inverse++) {
        /* depth_to_space: [n, h, w, r*r*c] -> [n, h*r, w*r, c]; space_to_depth the other way */
        nn_tensor depth = ten(NULL, n, h, w, r * r * c), space = ten(NULL, n, h * r, w * r, c);
        float *x = check_rand_buf(num), *gx = to_gpu(x, num);
        float *y = vs_malloc(num * sizeof *y), *gy = nan_gpu(num);
        nn_tensor tx = inverse ? space : depth, ty = inverse ? depth : space;
        nn_tensor gtx = tx, gty = ty;
        tx.d = x, ty.d = y, gtx.d = gx, gty.d = gy;
        (inverse ? cpu->space_to_depth : cpu->depth_to_space)(&ty, &tx, r);
        (inverse ? gpu->space_to_depth : gpu->depth_to_space)(&gty, &gtx, r);
        check_dev(gy, y, num, 0, "%s [%d,%d,%d,%d] r %d",
                  inverse ? "space_to_depth" : "depth_to_space", n, h, w, c, r);
        free(x), free(y), gpu_free(gx), gpu_free(gy);
    }
}

/* ---- loss ---------------------------------------------------------------------------------- */

static void run_loss(nn_loss_kind kind, int n, int h, int w, int c, int masked)
{
    size_t num = (size_t)n * h * w * c, npix = (size_t)n * h * w;
    const float weight = 0.7f;
    float *p = vs_malloc(num * sizeof *p), *t = vs_malloc(num * sizeof *t);
    float *m = masked ? vs_malloc(npix * sizeof *m) : NULL;
    for (size_t i = 0; i < num; i++) p[i] = (float)check_urand(), t[i] = (float)check_urand();
    for (size_t i = 0; m && i < npix; i++) m[i] = (float)check_urand();
    /* dpred starts at about the size of the gradient (weight / numel), so errors in it show */
    float *dp = vs_malloc(num * sizeof *dp);
    for (size_t i = 0; i < num; i++) dp[i] = check_frand() / (float)num;
    float loss = 0.25f;
    float *gp = to_gpu(p, num), *gt = to_gpu(t, num), *gm = to_gpu(m, npix);
    float *gdp = to_gpu(dp, num), *gl = to_gpu(&loss, 1);
    nn_tensor tp = ten(p, n, h, w, c), tt = ten(t, n, h, w, c);
    nn_tensor gtp = ten(gp, n, h, w, c), gtt = ten(gt, n, h, w, c);
    cpu->loss(dp, &loss, &tp, &tt, m, kind, weight);
    gpu->loss(gdp, gl, &gtp, &gtt, gm, kind, weight);
    const char *kn = kind == NN_LOSS_MAE ? "mae" : kind == NN_LOSS_MSE ? "mse" : "ssim";
    fam = F_LOSS;
    check_dev(gdp, dp, num, 2e-5, "loss %s [%d,%d,%d,%d] %s: dpred", kn, n, h, w, c,
              m ? "masked" : "no mask");
    check_dev(gl, &loss, 1, 5e-5, "loss %s [%d,%d,%d,%d] %s: value", kn, n, h, w, c,
              m ? "masked" : "no mask");
    free(p), free(t), free(m), free(dp);
    gpu_free(gp), gpu_free(gt), gpu_free(gm), gpu_free(gdp), gpu_free(gl);
}

static void test_loss(void)
{
    for (int k = NN_LOSS_MAE; k <= NN_LOSS_SSIM; k++)
        for (int masked = 0; masked < 2; masked++) {
            run_loss((nn_loss_kind)k, 2, 16, 16, 3, masked);
            run_loss((nn_loss_kind)k, 3, 13, 21, 1, masked);
        }
}

/* ---- adam ---------------------------------------------------------------------------------- */

/* via_ctl: adam_ctl with lr_t from ctl[0], the middle step flagged (ctl[1] = 1: skipped), the
 * last one's gradients halved (ctl[2], an fp16 step's 1 / loss scale) */
static void run_adam(size_t n, long t0, int via_ctl)
{
    nn_adam hp = {.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f};
    /* p small, so its rounding does not hide the steps (about lr each) */
    float *p = vs_malloc(n * sizeof *p), *m = vs_malloc(n * sizeof *m);
    float *v = vs_malloc(n * sizeof *v), *g = vs_malloc(n * sizeof *g);
    for (size_t i = 0; i < n; i++) {
        double u = check_urand();
        p[i] = 1e-3f * check_frand(), m[i] = 0.1f * check_frand(), v[i] = (float)(0.01 * u * u);
    }
    float *gp = to_gpu(p, n), *gm = to_gpu(m, n), *gv = to_gpu(v, n), *gg = gpu->alloc(n);
    float *gctl = gpu->alloc(3);
    for (long step = 0; step < 3; step++) {
        for (size_t i = 0; i < n; i++) g[i] = check_frand();
        gpu->copy_in(gg, g, n);
        hp.t = t0 + step;
        if (via_ctl) {
            float ctl[3] = {nn_adam_step_size(&hp), step == 1 ? 1.0f : 0.0f,
                            step == 2 ? 0.5f : 1.0f};
            gpu->copy_in(gctl, ctl, 3);
            be_adam_ctl(cpu, p, m, v, g, n, &hp, ctl, NULL);
            be_adam_ctl(gpu, gp, gm, gv, gg, n, &hp, gctl, NULL);
        } else {
            cpu->adam(p, m, v, g, n, &hp);
            gpu->adam(gp, gm, gv, gg, n, &hp);
        }
    }
    fam = F_ADAM;
    const char *op = via_ctl ? "adam_ctl (t+1 skipped)" : "adam";
    check_dev(gp, p, n, RTOL, "%s n %zu t %ld..%ld: p", op, n, t0, t0 + 2);
    check_dev(gm, m, n, RTOL, "%s n %zu t %ld..%ld: m", op, n, t0, t0 + 2);
    check_dev(gv, v, n, RTOL, "%s n %zu t %ld..%ld: v", op, n, t0, t0 + 2);
    free(p), free(m), free(v), free(g);
    gpu_free(gp), gpu_free(gm), gpu_free(gv), gpu_free(gg), gpu_free(gctl);
}

/* Adam on arrays that start one float past an aligned address (the kernel goes four at a time
 * only where all four arrays are 16-byte aligned) */
static void test_adam_unaligned(void)
{
    const size_t n = 1001;
    nn_adam hp = {.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f, .t = 3};
    float *p = check_rand_buf(n), *m = check_rand_buf(n), *v = check_rand_buf(n);
    float *g = check_rand_buf(n);
    for (size_t i = 0; i < n; i++) p[i] *= 1e-3f, v[i] *= v[i];
    float *gp = to_gpu(p, n), *gm = to_gpu(m, n), *gv = to_gpu(v, n), *gg = to_gpu(g, n);
    cpu->adam(p + 1, m + 1, v + 1, g + 1, n - 1, &hp);
    gpu->adam(gp + 1, gm + 1, gv + 1, gg + 1, n - 1, &hp);
    fam = F_ADAM;
    check_dev(gp, p, n, RTOL, "adam unaligned: p");
    check_dev(gm, m, n, RTOL, "adam unaligned: m");
    check_dev(gv, v, n, RTOL, "adam unaligned: v");
    free(p), free(m), free(v), free(g);
    gpu_free(gp), gpu_free(gm), gpu_free(gv), gpu_free(gg);
}

/* adam_ctl flags a gradient that is NaN or infinite itself (the step has no other pass over
 * the gradients), wherever it is */
static void test_adam_flag(void)
{
    const size_t n = 100003, where[3] = {0, n / 2, n - 1};
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    nn_adam hp = {.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f, .t = 1};
    float *g = check_rand_buf(n), *z = vs_calloc(n, sizeof *z);
    float *gp = to_gpu(z, n), *gm = to_gpu(z, n), *gv = to_gpu(z, n), *gg = gpu->alloc(n);
    for (int k = 0; k < 3; k++) {
        float *p = vs_calloc(n, sizeof *p), *m = vs_calloc(n, sizeof *m),
              *v = vs_calloc(n, sizeof *v);
        float keep = g[where[k]];
        g[where[k]] = bad[k];
        gpu->copy_in(gg, g, n);
        float ctl[3] = {nn_adam_step_size(&hp), 0.0f, 1.0f}, gctl_h[3];
        float *gctl = to_gpu(ctl, 3);
        be_adam_ctl(cpu, p, m, v, g, n, &hp, ctl, NULL);
        be_adam_ctl(gpu, gp, gm, gv, gg, n, &hp, gctl, NULL);
        gpu->copy_out(gctl_h, gctl, 2);
        fam = F_ADAM;
        CHECKF(ctl[1] == 1.0f && gctl_h[1] == 1.0f,
               "adam_ctl with %g at %zu of %zu: flag cpu %g gpu %g", (double)bad[k], where[k], n,
               (double)ctl[1], (double)gctl_h[1]);
        g[where[k]] = keep;
        free(p), free(m), free(v), gpu_free(gctl);
    }
    free(g), free(z);
    gpu_free(gp), gpu_free(gm), gpu_free(gv), gpu_free(gg);
}

/* ---- augmentation ------------------------------------------------------------------------- */

/* n bytes to the GPU (the backend allocates floats: a whole number of them, the tail padded) */
static void *bytes_to_gpu(const void *h, size_t n)
{
    size_t nf = (n + 3) / 4;
    float *t = vs_calloc(nf ? nf : 1, sizeof *t);
    memcpy(t, h, n);
    float *d = to_gpu(t, nf);
    free(t);
    return d;
}

/* The batch from Faceswap's default draws (rotation, zoom, shift, flip, LAB, warp), one image
 * with none, one with a flip alone and one with colour alone; input 64 and target 64 from 128 px
 * crops, then input 64 and target 32 (Faceswap's sizes differ for some models), masks on and
 * off. */
static void run_augment(int si, int st, int with_masks)
{
    const int P = 128, faces = 5, n = 9;
    const size_t crop = (size_t)P * P;
    uint8_t *px = vs_malloc(faces * crop * 3), *mk = vs_malloc(faces * crop * NN_AUG_MASKS);
    for (size_t i = 0; i < faces * crop * 3; i++) px[i] = (uint8_t)(check_urand() * 255.999);
    for (size_t i = 0; i < faces * crop * NN_AUG_MASKS; i++)
        mk[i] = (uint8_t)(check_urand() * 255.999);
    augment_config c;
    augment_config_default(&c);
    nn_aug_image ims[9];
    for (int b = 0; b < n; b++) {
        augment_params p;
        augment_draw(&p, &c, 42, 7, 1, b);
        if (b == 0) augment_params_identity(&p);
        if (b == 1) augment_params_identity(&p), p.flip = 1;
        if (b == 2)
            augment_params_identity(&p), p.lab[0] = 0.3f, p.lab[1] = -0.08f, p.lab[2] = 0.05f;
        augment_prepare(&ims[b], &p, (b * 3) % faces, P);
    }
    size_t ni = (size_t)n * si * si * 3, nt = (size_t)n * st * st * 3, nm = (size_t)n * st * st;
    nn_aug_batch h = {.px = px, .masks = mk, .img = ims, .n = n, .P = P, .si = si, .st = st};
    h.input = vs_malloc(ni * sizeof(float)), h.target = vs_malloc(nt * sizeof(float));
    nn_aug_batch g = h;
    g.px = bytes_to_gpu(px, faces * crop * 3);
    g.masks = bytes_to_gpu(mk, faces * crop * NN_AUG_MASKS);
    g.img = bytes_to_gpu(ims, sizeof ims);
    g.input = nan_gpu(ni), g.target = nan_gpu(nt);
    for (int k = 0; k < NN_AUG_MASKS; k++) {
        h.mask[k] = with_masks ? vs_malloc(nm * sizeof(float)) : NULL;
        g.mask[k] = with_masks ? nan_gpu(nm) : NULL;
    }
    cpu->augment(&h);
    gpu->augment(&g);
    fam = F_AUGMENT;
    check_dev(g.input, h.input, ni, 2e-4, "augment %d->%d/%d input", P, si, st);
    check_dev(g.target, h.target, nt, 2e-4, "augment %d->%d/%d target", P, si, st);
    for (int k = 0; k < NN_AUG_MASKS && with_masks; k++)
        check_dev(g.mask[k], h.mask[k], nm, 2e-5, "augment %d->%d/%d mask %d", P, si, st, k);
    /* the identity image is the crop resampled at half size, so it must look like the crop */
    double d = 0;
    for (int y = 0; y < st; y++)
        for (int x = 0; x < st; x++) {
            double sx = (x + 0.5) * P / st - 0.5, sy = (y + 0.5) * P / st - 0.5;
            int x0 = (int)sx, y0 = (int)sy;
            double want =
                (px[((size_t)y0 * P + x0) * 3] + px[((size_t)y0 * P + x0 + 1) * 3] +
                 px[((size_t)(y0 + 1) * P + x0) * 3] + px[((size_t)(y0 + 1) * P + x0 + 1) * 3]) /
                (4 * 255.0);
            if (P / st == 2) d = fmax(d, fabs(h.target[((size_t)y * st + x) * 3] - want));
        }
    CHECKF(d < 1e-5, "the identity draw is not the crop resampled: %g", d);
    free(px), free(mk), free(h.input), free(h.target);
    for (int k = 0; k < NN_AUG_MASKS; k++) free(h.mask[k]), gpu_free(g.mask[k]);
    gpu_free((float *)g.px), gpu_free((float *)g.masks), gpu_free((float *)g.img);
    gpu_free(g.input), gpu_free(g.target);
}

/* ---- image kernels: add_padded, crop_resize, warp, host memory ----------------------------- */

typedef struct pad_case {
    int n, h, w, c; /* y */
    int ah, aw, ac; /* a */
    int bh, bw, bc; /* b */
} pad_case;

/* Every activation over each padding: exact but for sigmoid's expf (within 1e-6). */
static void test_add_padded(void)
{
    static const pad_case cases[] = {
        {1, 9, 11, 8, 9, 11, 5, 8, 10, 8},       /* a short of channels, b of a row and column */
        {3, 9, 11, 8, 9, 11, 8, 9, 11, 8},       /* no padding */
        {3, 6, 7, 16, 4, 5, 3, 6, 7, 2},         /* both padded along every axis */
        {2, 38, 38, 64, 38, 38, 32, 37, 37, 64}, /* residualDown's shapes */
    };
    fam = F_ADD_PADDED;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const pad_case *p = &cases[i];
        size_t ny = (size_t)p->n * p->h * p->w * p->c, na = (size_t)p->n * p->ah * p->aw * p->ac,
               nb = (size_t)p->n * p->bh * p->bw * p->bc;
        float *a = check_rand_buf(na), *b = check_rand_buf(nb), *y = vs_malloc(ny * sizeof *y);
        float *ga = to_gpu(a, na), *gb = to_gpu(b, nb);
        nn_tensor ta = ten(a, p->n, p->ah, p->aw, p->ac), tb = ten(b, p->n, p->bh, p->bw, p->bc);
        nn_tensor gta = ten(ga, p->n, p->ah, p->aw, p->ac),
                  gtb = ten(gb, p->n, p->bh, p->bw, p->bc);
        for (int k = 0; k < N_ACTS; k++) {
            float *gy = nan_gpu(ny);
            nn_tensor ty = ten(y, p->n, p->h, p->w, p->c), gty = ten(gy, p->n, p->h, p->w, p->c);
            cpu->add_padded(&ty, &ta, &tb, acts[k].act, acts[k].alpha);
            gpu->add_padded(&gty, &gta, &gtb, acts[k].act, acts[k].alpha);
            check_dev(gy, y, ny, 1e-6, "add_padded y [%d,%d,%d,%d] a [%d,%d,%d] b [%d,%d,%d] %s",
                      p->n, p->h, p->w, p->c, p->ah, p->aw, p->ac, p->bh, p->bw, p->bc,
                      acts[k].name);
            gpu_free(gy);
        }
        free(a), free(b), free(y), gpu_free(ga), gpu_free(gb);
    }
}

/* A random RGB image [h, w, 3] on both sides. */
typedef struct test_image {
    int w, h;
    uint8_t *px;  /* host */
    uint8_t *dev; /* GPU */
} test_image;

static test_image rand_image(int w, int h)
{
    test_image im = {w, h, vs_malloc((size_t)w * h * 3), NULL};
    for (size_t i = 0; i < (size_t)w * h * 3; i++) im.px[i] = (uint8_t)(check_urand() * 255.999);
    im.dev = bytes_to_gpu(im.px, (size_t)w * h * 3);
    return im;
}

static void free_image(test_image *im)
{
    free(im->px);
    gpu_free((float *)im->dev);
}

/* |g - c| over n values: the largest (NaN: infinite), how many differ in their bits, and the
 * largest |c| */
static double max_abs_diff(const float *g, const float *c, size_t n, size_t *differ, size_t *at,
                           double *max_ref)
{
    double worst = 0;
    *differ = 0, *at = 0, *max_ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - (double)c[i]);
        if (isnan(d)) d = INFINITY;
        if (memcmp(&g[i], &c[i], sizeof g[i])) ++*differ;
        if (d > worst) worst = d, *at = i;
        if (fabs((double)c[i]) > *max_ref) *max_ref = fabs((double)c[i]);
    }
    return worst;
}

typedef struct crop_def {
    int img, x, y, w, h;
} crop_def;

/* The face networks' inputs: crops from images of odd sizes, touching every border, whole
 * images, 1-pixel ones, tall and wide, each centred and not, resized to 112, 150, 512 and 7 with
 * face-api's two normalisations (mixed within a batch). fp32 within 1e-5 of the CPU's largest
 * value; the line printed says how many values differ at all (none is expected: the kernel does
 * the CPU's operations in the same order, each rounded alike). */
static void test_crop_resize(void)
{
    test_image ims[3] = {rand_image(37, 53), rand_image(640, 360), rand_image(17, 17)};
    static const crop_def batches[4][5] = {
        /* two images: whole ones (tall, wide), touching the bottom, the top and right, the left
         * and bottom */
        {{0, 0, 0, 37, 53},
         {1, 0, 0, 640, 360},
         {0, 5, 40, 20, 13},
         {1, 600, 0, 40, 100},
         {1, 0, 300, 250, 60}},
        {{2, 8, 8, 1, 1}}, /* one pixel */
        /* a whole square image, 1-pixel columns and rows along the edges, odd sizes */
        {{2, 0, 0, 17, 17},
         {0, 36, 0, 1, 53},
         {0, 0, 52, 37, 1},
         {2, 3, 2, 5, 14},
         {0, 10, 10, 17, 18}},
        {{1, 100, 50, 301, 299}},
    };
    static const int batch_n[4] = {5, 1, 5, 1};
    static const int sizes[] = {112, 150, 512, 7};
    /* face-api's: the recognition net's mean / 255, and the detector's / 127.5 - 1 */
    static const float norm_mean[2][3] = {{122.782f, 117.001f, 104.298f}, {0, 0, 0}};
    static const float norm_div[2] = {255.0f, 127.5f}, norm_sub[2] = {0.0f, 1.0f};
    double worst = 0;
    size_t values = 0, differ_all = 0;
    int runs = 0;
    for (int bi = 0; bi < 4; bi++)
        for (int s = 0; s < 4; s++)
            for (int cen = 0; cen < 2; cen++) {
                const int n = batch_n[bi], size = sizes[s];
                nn_crop hc[5], gc[5];
                for (int k = 0; k < n; k++) {
                    const crop_def *d = &batches[bi][k];
                    const test_image *im = &ims[d->img];
                    int norm = (k + s + cen) % 2;
                    nn_crop c = {.px = im->px, .iw = im->w, .ih = im->h, .centre = (k + cen) % 2};
                    c.x = d->x, c.y = d->y, c.w = d->w, c.h = d->h;
                    c.div = norm_div[norm], c.sub = norm_sub[norm];
                    memcpy(c.mean, norm_mean[norm], sizeof c.mean);
                    hc[k] = c, gc[k] = c;
                    gc[k].px = im->dev;
                }
                size_t total = (size_t)n * size * size * 3;
                float *y = vs_malloc(total * sizeof *y), *gy = nan_gpu(total);
                nn_tensor ty = ten(y, n, size, size, 3), gty = ten(gy, n, size, size, 3);
                cpu->crop_resize(&ty, hc);
                gpu->crop_resize(&gty, gc);
                float *got = from_gpu(gy, total);
                size_t differ, at;
                double max_ref, d = max_abs_diff(got, y, total, &differ, &at, &max_ref);
                size_t px = at / 3;
                CHECKF(d <= 1e-5 * (max_ref > 0 ? max_ref : 1.0),
                       "crop_resize batch %d size %d centre %d: |gpu - cpu| %.3g at crop %zu "
                       "(%zu, %zu) channel %zu: gpu %.9g cpu %.9g; %zu of %zu differ",
                       bi, size, cen, d, px / ((size_t)size * size), px % size, px / size % size,
                       at % 3, (double)got[at], (double)y[at], differ, total);
                if (!(d <= worst)) worst = d;
                values += total, differ_all += differ, runs++;
                free(y), free(got), gpu_free(gy);
            }
    printf("crop_resize: %d batches (n 1 and 5; sizes 112, 150, 512, 7): max |gpu - cpu| %.3g, %zu "
           "of %zu values differ\n",
           runs, worst, differ_all, values);
    for (int i = 0; i < 3; i++) free_image(&ims[i]);
}

/* m: output (x, y) -> source (scale * R(angle) (x - c, y - c) + (cx, cy)), c the output's centre */
static void warp_matrix(double m[6], int size, double angle, double scale, double cx, double cy)
{
    double c = (size - 1) / 2.0, co = scale * cos(angle), si = scale * sin(angle);
    m[0] = co, m[1] = -si, m[2] = cx - co * c + si * c;
    m[3] = si, m[4] = co, m[5] = cy - si * c - co * c;
}

/* Aligned-face crops: rotations, scales and shifts drawn at random (some reach outside), then
 * one partly outside, one wholly outside, a huge scale and a matrix with a NaN and an infinity;
 * sizes 64, 256 and 13. Within 1 of the CPU in at most 0.1% of the bytes (none is expected to
 * differ: the same operations run in the same order). */
static void test_warp(void)
{
    test_image ims[2] = {rand_image(640, 360), rand_image(37, 53)};
    static const int sizes[] = {64, 256, 13};
    int worst = 0, runs = 0;
    size_t bytes_all = 0, differ_all = 0;
    for (int s = 0; s < 3; s++)
        for (int special = 0; special < 2; special++) {
            const int n = 4, size = sizes[s];
            nn_warp hw[4], gw[4];
            for (int k = 0; k < n; k++) {
                const test_image *im = &ims[k % 2];
                nn_warp w = {.px = im->px, .iw = im->w, .ih = im->h};
                double side = im->w < im->h ? im->w : im->h;
                if (!special)
                    warp_matrix(w.m, size, (check_urand() - 0.5) * 1.2,
                                (0.3 + check_urand()) * side / size, check_urand() * im->w,
                                check_urand() * im->h);
                else if (k == 0) /* partly outside: centred on the bottom-left corner */
                    warp_matrix(w.m, size, 0.2, 0.5 * side / size, 0, im->h);
                else if (k == 1) /* wholly outside */
                    warp_matrix(w.m, size, 0.1, 1.0, -5000, 3000);
                else if (k == 2) /* a huge scale */
                    warp_matrix(w.m, size, 0.5, 1e7, im->w / 2.0, im->h / 2.0);
                else { /* a NaN (x) and an infinity (y) */
                    warp_matrix(w.m, size, 0.3, side / size, im->w / 2.0, im->h / 2.0);
                    w.m[1] = NAN, w.m[5] = INFINITY;
                }
                hw[k] = w, gw[k] = w;
                gw[k].px = im->dev;
            }
            size_t bytes = (size_t)n * size * size * 3;
            uint8_t *out = vs_malloc(bytes), *got = vs_malloc(bytes);
            float *gout = nan_gpu(nn_byte_words(bytes));
            cpu->warp(out, hw, n, size);
            gpu->warp((uint8_t *)gout, gw, n, size);
            nn_copy_out_bytes(gpu, got, gout, bytes);
            size_t differ = 0, at = 0;
            int d = 0;
            for (size_t i = 0; i < bytes; i++) {
                int e = abs((int)got[i] - (int)out[i]);
                differ += e != 0;
                if (e > d) d = e, at = i;
            }
            size_t px = at / 3;
            CHECKF(d <= 1 && differ <= bytes / 1000,
                   "warp size %d%s: %zu of %zu bytes differ, worst %d at image %zu (%zu, %zu) "
                   "channel %zu: gpu %d cpu %d",
                   size, special ? " (outside, huge, NaN)" : "", differ, bytes, d,
                   px / ((size_t)size * size), px % size, px / size % size, at % 3, got[at],
                   out[at]);
            if (d > worst) worst = d;
            bytes_all += bytes, differ_all += differ, runs++;
            free(out), free(got), gpu_free(gout);
        }
    printf("warp: %d batches of 4 (sizes 64, 256, 13): max |gpu - cpu| %d, %zu of %zu bytes "
           "differ\n",
           runs, worst, differ_all, bytes_all);
    for (int i = 0; i < 2; i++) free_image(&ims[i]);
}

/* 8-bit to [0, 1]: an odd number of bytes, exactly as the CPU divides. */
static void test_from_u8(void)
{
    const size_t n = 3 * 97 * 61;
    uint8_t *px = vs_malloc(n);
    for (size_t i = 0; i < n; i++) px[i] = (uint8_t)(check_urand() * 255.999);
    float *want = vs_malloc(n * sizeof *want);
    nn_tensor tc = {want, 1, 97, 61, 3, NN_F32};
    cpu->from_u8(&tc, px, 255.f);
    uint8_t *dpx = bytes_to_gpu(px, n);
    float *dy = nan_gpu(n);
    nn_tensor tg = {dy, 1, 97, 61, 3, NN_F32};
    gpu->from_u8(&tg, dpx, 255.f);
    float *got = from_gpu(dy, n);
    CHECKF(memcmp(got, want, n * sizeof *got) == 0, "from_u8 differs from the CPU");
    printf("from_u8: %zu bytes, %s\n", n,
           memcmp(got, want, n * sizeof *got) ? "DIFFER" : "same bits");
    free(px), free(want), free(got);
    gpu_free((float *)dpx), gpu_free(dy);
}

/* b's matrix: image pixel -> crop position for a crop of `size` shown at `shown` image pixels
 * wide, turned by angle, centred at (cx, cy); and the image rectangle it covers */
static void blend_case(nn_blend *b, int iw, int ih, int size, double shown, double angle, double cx,
                       double cy)
{
    double k = size / shown, c = cos(angle) * k, s = sin(angle) * k;
    /* u = c (x - cx) + s (y - cy) + size / 2, v = -s (x - cx) + c (y - cy) + size / 2 */
    double m[6] = {c, s, -c * cx - s * cy + size / 2.0, -s, c, s * cx - c * cy + size / 2.0};
    double det = m[0] * m[4] - m[1] * m[3];
    double inv[6] = {m[4] / det, -m[1] / det, 0, -m[3] / det, m[0] / det, 0};
    inv[2] = -(inv[0] * m[2] + inv[1] * m[5]), inv[5] = -(inv[3] * m[2] + inv[4] * m[5]);
    double lo[2] = {1e300, 1e300}, hi[2] = {-1e300, -1e300};
    for (int q = 0; q < 4; q++) {
        double u = q & 1 ? size : -1.0, v = q & 2 ? size : -1.0;
        double x = inv[0] * u + inv[1] * v + inv[2], y = inv[3] * u + inv[4] * v + inv[5];
        lo[0] = fmin(lo[0], x), hi[0] = fmax(hi[0], x), lo[1] = fmin(lo[1], y),
        hi[1] = fmax(hi[1], y);
    }
    memset(b, 0, sizeof *b);
    b->iw = iw, b->ih = ih, b->size = size;
    memcpy(b->m, m, sizeof m);
    b->step = sqrt(fabs(det));
    b->x0 = (int)fmax(0, floor(lo[0])), b->x1 = (int)fmin(iw - 1, ceil(hi[0]));
    b->y0 = (int)fmax(0, floor(lo[1])), b->y1 = (int)fmin(ih - 1, ceil(hi[1]));
}

/* Faces blended back, in order, each over the ones before: enlarged (bicubic), shrunk (the
 * area mean), turned, partly outside the image; face values beyond [0, 1] and masks above 1. */
static void test_blend(void)
{
    const int iw = 320, ih = 200, size = 64, n = 4;
    test_image im = rand_image(iw, ih);
    const size_t np = (size_t)size * size;
    float *face = vs_malloc(np * 3 * n * sizeof *face), *mask = vs_malloc(np * n * sizeof *mask);
    for (size_t i = 0; i < np * 3 * n; i++) face[i] = (float)(check_urand() * 1.2 - 0.1);
    for (size_t i = 0; i < np * n; i++) {
        double r = check_urand();
        mask[i] = r < 0.2 ? 0.f : (float)(r * 1.3 - 0.1);
    }
    float *dface = to_gpu(face, np * 3 * n), *dmask = to_gpu(mask, np * n);
    nn_blend hb[4], gb[4];
    blend_case(&hb[0], iw, ih, size, 150, 0.3, 120, 90); /* enlarged: bicubic */
    blend_case(&hb[1], iw, ih, size, 20, -0.2, 130, 95); /* shrunk: 4 x 4 samples */
    blend_case(&hb[2], iw, ih, size, 90, 2.5, 300, 20);  /* turned, partly outside */
    blend_case(&hb[3], iw, ih, size, 40.5, 0, 200, 150); /* step 1.58: 2 x 2 samples */
    for (int k = 0; k < n; k++) {
        gb[k] = hb[k];
        hb[k].px = im.px, hb[k].face = face + np * 3 * k, hb[k].mask = mask + np * k;
        gb[k].px = im.dev, gb[k].face = dface + np * 3 * k, gb[k].mask = dmask + np * k;
    }
    cpu->blend(hb, n);
    gpu->blend(gb, n);
    size_t bytes = (size_t)iw * ih * 3, differ = 0;
    uint8_t *got = vs_malloc(bytes);
    nn_copy_out_bytes(gpu, got, im.dev, bytes);
    int worst = 0;
    for (size_t i = 0; i < bytes; i++) {
        int d = abs((int)got[i] - (int)im.px[i]);
        differ += d != 0;
        if (d > worst) worst = d;
    }
    CHECKF(worst <= 1 && differ <= bytes / 1000, "blend: %zu of %zu bytes differ, worst %d", differ,
           bytes, worst);
    printf("blend: 4 faces in order (bicubic, area 4x4 and 2x2, turned, partly outside): max "
           "|gpu - cpu| %d, %zu of %zu bytes differ\n",
           worst, differ, bytes);
    free(face), free(mask), free(got);
    gpu_free(dface), gpu_free(dmask);
    free_image(&im);
}

/* A frame converted on the GPU against the CPU: the same model (created from one seed on each),
 * two overlapping faces placed from the mean face; every step of cv_swap_frame (crops, the
 * model, mask, colour, sharpening, blending), with the learned mask too. */
static void test_convert_frame(void)
{
    const mdl_arch *arch = model_arch_find("original");
    CHECK(arch != NULL);
    if (!arch) return;
    const int iw = 480, ih = 320;
    img *frame = img_new(iw, ih, 3);
    for (int y = 0; y < ih; y++)
        for (int x = 0; x < iw; x++)
            for (int c = 0; c < 3; c++)
                frame->px[((size_t)y * iw + x) * 3 + c] =
                    (uint8_t)((x * (c + 1) + y * (3 - c)) % 200 + check_urand() * 50);
    float lm[2][136];
    const double place[2][3] = {{200, 140, 150}, {290, 170, 90}}; /* x, y, size */
    for (int f = 0; f < 2; f++)
        for (int p = 0; p < 68; p++) {
            lm[f][2 * p] = (float)(place[f][0] + (align_mean_face[2 * p] - 0.5) * place[f][2]);
            lm[f][2 * p + 1] =
                (float)(place[f][1] + (align_mean_face[2 * p + 1] - 0.5) * place[f][2]);
        }
    for (int variant = 0; variant < 2; variant++) {
        mdl_options o;
        mdl_options_default(&o);
        o.learn_mask = variant;
        model *mc = NULL, *mg = NULL;
        vs_err e;
        if (model_create_arch(&mc, arch, &o, cpu, 77, &e) ||
            model_create_arch(&mg, arch, &o, gpu, 77, &e)) {
            CHECKF(0, "model_create: %s", e.msg);
            return;
        }
        cv_opts co;
        cv_opts_default(&co);
        if (variant) co.mask = CV_MASK_LEARNED, co.color = CV_COLOR_RCT, co.sharpen = 0.5f;
        cv_swapper *sc = cv_swapper_new(mc, &co), *sg = cv_swapper_new(mg, &co);
        img *a = img_clone(frame), *b = img_clone(frame);
        int bad_a, bad_b;
        int na = cv_swap_frame(sc, a, (const float(*)[136])lm, 2, &bad_a, &e);
        int nb = cv_swap_frame(sg, b, (const float(*)[136])lm, 2, &bad_b, &e);
        CHECK(na == 2 && nb == 2 && bad_a < 0 && bad_b < 0);
        size_t bytes = (size_t)iw * ih * 3, changed = 0;
        double sum = 0;
        int worst = 0;
        for (size_t i = 0; i < bytes; i++) {
            int d = abs((int)a->px[i] - (int)b->px[i]);
            sum += d, worst = d > worst ? d : worst;
            changed += a->px[i] != frame->px[i];
        }
        double mean = sum / (double)bytes;
        printf("converted frame (%s): %zu bytes swapped, mean |gpu - cpu| %.5f levels, max %d\n",
               variant ? "learned mask, rct, sharpen" : "extended mask, avg", changed, mean, worst);
        CHECK(changed > bytes / 50);
        CHECKF(mean < 0.05 && worst <= 8, "the GPU's converted frame differs from the CPU's");
        img_free(a), img_free(b);
        cv_swapper_free(sc), cv_swapper_free(sg);
        model_free(mc), model_free(mg);
    }
    img_free(frame);
}

/* Page-locked memory: 1 MiB through the GPU and back, whole floats and an odd byte count. */
static void test_host_alloc(void)
{
    const size_t bytes = (size_t)1 << 20, odd = bytes - 3;
    uint8_t *a = gpu->host_alloc(bytes), *b = gpu->host_alloc(bytes);
    CHECKF(a && b, "host_alloc of 1 MiB failed");
    if (!a || !b) return;
    for (size_t i = 0; i < bytes; i++) a[i] = (uint8_t)(check_urand() * 255.999);
    memset(b, 0, bytes);
    float *d = gpu->alloc(bytes / sizeof(float));
    gpu->copy_in(d, (const float *)a, bytes / sizeof(float));
    gpu->copy_out((float *)b, d, bytes / sizeof(float));
    int same = memcmp(a, b, bytes) == 0;
    CHECKF(same, "host_alloc: 1 MiB copy_in then copy_out differs");
    gpu->fill(d, bytes / sizeof(float), NAN);
    memset(b, 0, bytes);
    nn_copy_in_bytes(gpu, d, a + 1, odd);
    nn_copy_out_bytes(gpu, b, d, odd);
    int same_odd = memcmp(a + 1, b, odd) == 0 && b[odd] == 0;
    CHECKF(same_odd, "host_alloc: %zu bytes (not whole floats) in and out differ", odd);
    void *z = gpu->host_alloc(0);
    CHECKF(z != NULL, "host_alloc(0) returned NULL");
    gpu->host_free(z);
    gpu->host_free(NULL);
    printf("host_alloc: 1 MiB page-locked through the GPU and back: %s; %zu bytes: %s\n",
           same ? "identical" : "DIFFERS", odd, same_odd ? "identical" : "DIFFERS");
    gpu_free(d);
    gpu->host_free(a);
    gpu->host_free(b);
}

/* ---- all_finite, fill ---------------------------------------------------------------------- */

/* flag_nonfinite from f0 on both sides: 1 where x has a NaN or an Inf, else f0 left alone */
static void check_flag(const float *x, const float *gx, size_t n, float f0, float want,
                       const char *what)
{
    float f = f0, *gf = to_gpu(&f0, 1);
    be_flag_nonfinite(cpu, &f, x, n);
    be_flag_nonfinite(gpu, gf, gx, n);
    CHECKF(f == want, "cpu flag_nonfinite %s from %g: %g", what, (double)f0, (double)f);
    check_dev(gf, &f, 1, 0, "flag_nonfinite %s from %g", what, (double)f0);
    gpu_free(gf);
}

static void test_all_finite(void)
{
    static const size_t sizes[] = {1, 1000, (size_t)1 << 20};
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    static const char *bad_name[] = {"NaN", "+Inf", "-Inf"};
    fam = F_FINITE;
    for (int s = 0; s < 3; s++) {
        size_t n = sizes[s];
        float *x = check_rand_buf(n), *gx = to_gpu(x, n);
        int got = gpu->all_finite(gx, n), want = cpu->all_finite(x, n);
        CHECKF(got == 1 && want == 1, "all_finite n %zu random: gpu %d cpu %d", n, got, want);
        note_exact(got == 1 && want == 1);
        check_flag(x, gx, n, 0.0f, 0.0f, "random");
        check_flag(x, gx, n, 1.0f, 1.0f, "random");
        const size_t at[] = {0, n / 2, n - 1};
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++) {
                size_t i = at[a];
                float keep = x[i];
                x[i] = bad[b];
                gpu->copy_in(gx + i, &x[i], 1);
                got = gpu->all_finite(gx, n), want = cpu->all_finite(x, n);
                CHECKF(got == 0 && want == 0, "all_finite n %zu, %s at %zu: gpu %d cpu %d", n,
                       bad_name[b], i, got, want);
                note_exact(got == 0 && want == 0);
                char what[64];
                snprintf(what, sizeof what, "n %zu, %s at %zu", n, bad_name[b], i);
                check_flag(x, gx, n, 0.0f, 1.0f, what);
                x[i] = keep;
                gpu->copy_in(gx + i, &x[i], 1);
            }
        got = gpu->all_finite(gx, n);
        CHECKF(got == 1, "all_finite n %zu restored: gpu %d", n, got);
        note_exact(got == 1);
        free(x), gpu_free(gx);
    }
}

static void test_fill(void)
{
    static const size_t sizes[] = {5, (size_t)1 << 20};
    fam = F_FILL;
    for (int s = 0; s < 2; s++) {
        size_t n = sizes[s];
        float *x = vs_malloc((n + 1) * sizeof *x);
        for (size_t i = 0; i <= n; i++) x[i] = NAN;
        float *gx = to_gpu(x, n + 1); /* one NaN past the end: must stay */
        cpu->fill(x, n, 0.25f);
        gpu->fill(gx, n, 0.25f);
        check_dev(gx, x, n, 0, "fill n %zu", n);
        float *tail = from_gpu(gx + n, 1);
        CHECKF(isnan(tail[0]), "fill n %zu wrote past the end: %g", n, (double)tail[0]);
        free(x), free(tail), gpu_free(gx);
    }
}

/* ---- a step captured as a graph and replayed ------------------------------------------------ */

/* One side's buffers of the step: conv forward, filter gradient, flag, Adam from ctl */
typedef struct step_bufs {
    float *x, *w, *b, *y, *dy, *dw, *db, *m, *v, *ctl;
} step_bufs;

static void run_step(const nn_backend *be, step_bufs *s, const conv_case *c, const nn_conv_desc *d,
                     int oh, int ow, const nn_adam *hp)
{
    nn_tensor x = ten(s->x, c->n, c->h, c->w, c->cin), y = ten(s->y, c->n, oh, ow, c->cout);
    nn_tensor dy = ten(s->dy, c->n, oh, ow, c->cout);
    size_t nw = (size_t)c->k * c->k * c->cin * c->cout;
    be->conv2d(&y, &x, s->w, s->b, d);
    be->conv2d_bwd_filter(s->dw, s->db, &dy, &x, d, NN_OVERWRITE);
    be_flag_nonfinite(be, s->ctl + 1, s->dw, nw);
    be_adam_ctl(be, s->w, s->m, s->v, s->dw, nw, hp, s->ctl, NULL);
}

/* The first step uncaptured (it sizes everything), the second recorded, then replays with new
 * inputs copied in between; the third has a NaN in dy, so the flag is set and Adam skipped. */
static void test_graph(void)
{
    fam = F_GRAPH;
    CHECKF(gpu->capture_begin && gpu->capture_end && gpu->graph_run && gpu->graph_free,
           "the CUDA backend has no step graphs");
    if (!gpu->capture_begin) return;
    static const conv_case c = {2, 16, 16, 3, 8, 5, 2, SAME, NN_ACT_LEAKY, 0.1f, 0};
    nn_conv_desc d;
    nn_conv_geometry(&d, c.h, c.w, c.k, c.k, c.s, c.s, c.pad);
    d.act = c.act, d.alpha = c.alpha;
    int oh = nn_out_size(c.h, c.k, c.s, c.pad), ow = nn_out_size(c.w, c.k, c.s, c.pad);
    size_t nx = (size_t)c.n * c.h * c.w * c.cin, ny = (size_t)c.n * oh * ow * c.cout;
    size_t nw = (size_t)c.k * c.k * c.cin * c.cout, nb = (size_t)c.cout;
    nn_adam hp = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f};
    step_bufs h = {.x = check_rand_buf(nx),
                   .w = check_rand_buf(nw),
                   .b = check_rand_buf(nb),
                   .y = check_rand_buf(ny),
                   .dy = check_rand_buf(ny),
                   .dw = check_rand_buf(nw),
                   .db = check_rand_buf(nb),
                   .m = check_rand_buf(nw),
                   .v = check_rand_buf(nw),
                   .ctl = check_rand_buf(3)};
    for (size_t i = 0; i < nw; i++) h.v[i] = h.v[i] * h.v[i];
    const size_t kk = (size_t)c.k * c.k * c.cin;
    step_bufs g = {.x = to_gpu(h.x, nx),
                   .w = to_gpu_k(h.w, kk, c.cout),
                   .b = to_gpu(h.b, nb),
                   .y = nan_gpu(ny),
                   .dy = to_gpu(h.dy, ny),
                   .dw = nan_gpu(nw),
                   .db = nan_gpu(nb),
                   .m = to_gpu_k(h.m, kk, c.cout),
                   .v = to_gpu_k(h.v, kk, c.cout),
                   .ctl = gpu->alloc(3)};
    void *graph = NULL;
    for (int it = 0; it < 5; it++) {
        for (size_t i = 0; i < nx; i++) h.x[i] = check_frand();
        for (size_t i = 0; i < ny; i++) h.dy[i] = check_frand();
        if (it == 2) h.dy[ny / 2] = NAN;
        hp.t = it + 1;
        h.ctl[0] = nn_adam_step_size(&hp), h.ctl[1] = 0.0f, h.ctl[2] = 1.0f;
        gpu->copy_in(g.x, h.x, nx), gpu->copy_in(g.dy, h.dy, ny), gpu->copy_in(g.ctl, h.ctl, 3);
        run_step(cpu, &h, &c, &d, oh, ow, &hp);
        if (it == 0) {
            run_step(gpu, &g, &c, &d, oh, ow, &hp);
        } else {
            if (!graph) {
                gpu->capture_begin();
                run_step(gpu, &g, &c, &d, oh, ow, &hp);
                graph = gpu->capture_end();
            }
            gpu->graph_run(graph);
        }
        CHECKF(h.ctl[1] == (it == 2 ? 1.0f : 0.0f), "step %d: cpu flag %g", it, (double)h.ctl[1]);
        const char *how = it == 0 ? "uncaptured" : "replayed";
        check_dev(g.ctl, h.ctl, 2, 0, "step %d (%s): ctl", it, how);
        check_dev(g.y, h.y, ny, tol_sum((size_t)c.k * c.k * c.cin), "step %d (%s): y", it, how);
        check_dev_k(g.w, h.w, kk, c.cout, RTOL, "step %d (%s): w", it, how);
        check_dev_k(g.m, h.m, kk, c.cout, tol_sum((size_t)c.n * oh * ow), "step %d (%s): m", it,
                    how);
        check_dev_k(g.v, h.v, kk, c.cout, tol_sum((size_t)c.n * oh * ow), "step %d (%s): v", it,
                    how);
    }
    gpu->graph_free(graph);
    free(h.x), free(h.w), free(h.b), free(h.y), free(h.dy), free(h.dw), free(h.db), free(h.m);
    free(h.v), free(h.ctl);
    gpu_free(g.x), gpu_free(g.w), gpu_free(g.b), gpu_free(g.y), gpu_free(g.dy), gpu_free(g.dw);
    gpu_free(g.db), gpu_free(g.m), gpu_free(g.v), gpu_free(g.ctl);
}

/* ---- main ---------------------------------------------------------------------------------- */

/* ---- 16 bits: every operation a bf16 or fp16 model runs, against tests/half_backend.h ---------
 * hdt is the type under test. Both sides start from the same 16-bit values; the CPU widens them,
 * computes in fp32 and rounds what it writes, as the GPU does. Rounding the output once or twice
 * (the GPU rounds a convolution's sum before its bias) differs by an ulp (bf16's is the coarser):
 * 1e-2 of the tensor's largest value; data movement is exact. */

static nn_dtype hdt = NN_BF16;

#define H16_TOL 1e-2

/* n fp32 values as hdt in a host buffer of nn_floats_for(n) floats */
static float *h16_pack(const float *x, size_t n)
{
    float *b = vs_calloc(nn_floats_for(n, hdt) + 1, sizeof(float));
    uint16_t *h = (uint16_t *)b;
    for (size_t i = 0; i < n; i++) h[i] = nn_half_from_f32(hdt == NN_BF16, x[i]);
    return b;
}

static float *h16_unpack(const float *b, size_t n)
{
    float *x = vs_malloc((n ? n : 1) * sizeof *x);
    const uint16_t *h = (const uint16_t *)b;
    for (size_t i = 0; i < n; i++) x[i] = nn_f32_from_half(hdt == NN_BF16, h[i]);
    return x;
}

/* random 16-bit values (host) */
static float *h16_rand(size_t n)
{
    float *x = check_rand_buf(n), *b = h16_pack(x, n);
    free(x);
    return b;
}

static float *h16_to_gpu(const float *b, size_t n)
{
    return to_gpu(b, nn_floats_for(n, hdt));
}

/* an output the op overwrites: every element NaN (a 16-bit NaN in both halves of each float) */
static float *h16_nan_gpu(size_t n)
{
    uint32_t bits = hdt == NN_BF16 ? 0x7fc07fc0u : 0x7e007e00u;
    float v;
    memcpy(&v, &bits, sizeof v);
    float *d = gpu->alloc(nn_floats_for(n, hdt));
    gpu->fill(d, nn_floats_for(n, hdt), v);
    return d;
}

static nn_tensor t16(float *d, int n, int h, int w, int c)
{
    return (nn_tensor){d, n, h, w, c, hdt};
}

/* the device's 16-bit tensor against the CPU's (host) */
__attribute__((format(printf, 5, 6))) static int
check_16(const float *dev, const float *ref_b, size_t n, double rtol, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    float *raw = from_gpu(dev, nn_floats_for(n, hdt));
    float *got = h16_unpack(raw, n), *ref = h16_unpack(ref_b, n);
    int ok = close_enough_v(got, ref, n, rtol, fmt, ap);
    va_end(ap);
    free(raw), free(got), free(ref);
    return ok;
}

/* an output of n 16-bit values on the GPU: NaN where the op overwrites, else the CPU's start */
static float *h16_gpu_out(const float *start, size_t n, nn_accum mode)
{
    return mode == NN_OVERWRITE ? h16_nan_gpu(n) : h16_to_gpu(start, n);
}

/* a 16-bit conv2d kernel (host, HWIO) to the GPU in the backend's layout, and the device's
 * against the CPU's */
static float *h16_to_gpu_k(const float *b, size_t k, int cout)
{
    size_t n = k * (size_t)cout;
    float *w = h16_unpack(b, n), *t = vs_malloc(n * sizeof *t);
    nn_conv_weights_convert(t, w, k, cout, NN_LAYOUT_HWIO, gpu->conv_layout);
    float *tb = h16_pack(t, n), *d = h16_to_gpu(tb, n);
    free(w), free(t), free(tb);
    return d;
}

__attribute__((format(printf, 6, 7))) static int check_16_k(const float *dev, const float *ref_b,
                                                            size_t k, int cout, double rtol,
                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = k * (size_t)cout;
    float *raw = from_gpu(dev, nn_floats_for(n, hdt));
    float *got = h16_unpack(raw, n), *ref = h16_unpack(ref_b, n), *t = vs_malloc(n * sizeof *t);
    nn_conv_weights_convert(t, got, k, cout, gpu->conv_layout, NN_LAYOUT_HWIO);
    int ok = close_enough_v(t, ref, n, rtol, fmt, ap);
    va_end(ap);
    free(raw), free(got), free(ref), free(t);
    return ok;
}

/* conv2d forward (with and without its pixel shuffle), backward data in both modes and backward
 * filter (fp32 gradients) in 16 bits */
static void run_conv_16(const conv_case *c, int shuffle)
{
    const nn_backend *ref = half_backend(hdt);
    nn_conv_desc d;
    nn_conv_geometry(&d, c->h, c->w, c->k, c->k, c->s, c->s, c->pad);
    d.act = c->act, d.alpha = c->alpha;
    int oh = nn_out_size(c->h, c->k, c->s, c->pad), ow = nn_out_size(c->w, c->k, c->s, c->pad);
    const int r = shuffle ? 2 : 1, cout = c->cout;
    size_t nx = (size_t)c->n * c->h * c->w * c->cin, ny = (size_t)c->n * oh * ow * cout;
    const size_t kk = (size_t)c->k * c->k * c->cin, nw = kk * cout;
    float *x = h16_rand(nx), *dy = h16_rand(ny), *b = c->no_bias ? NULL : check_rand_buf(cout);
    float *w32 = check_rand_buf(nw), *w = h16_pack(w32, nw);
    float *wo = vs_malloc(nw * sizeof *wo); /* the GPU's layout, then 16-bit */
    nn_conv_weights_convert(wo, w32, kk, cout, NN_LAYOUT_HWIO, gpu->conv_layout);
    float *gwo = h16_pack(wo, nw);
    float *gx = h16_to_gpu(x, nx), *gdy = h16_to_gpu(dy, ny), *gw = h16_to_gpu(gwo, nw);
    float *gb = to_gpu(b, (size_t)cout);
    char tag[160];
    snprintf(tag, sizeof tag, "16-bit conv2d [%d,%d,%d,%d]->%d k%d s%d pad t%d b%d %s%s", c->n,
             c->h, c->w, c->cin, cout, c->k, c->s, d.pad_t, d.pad_b, act_str(c->act, c->alpha),
             shuffle ? " +shuffle" : "");
    /* forward */
    d.shuffle = r;
    nn_tensor tx = t16(x, c->n, c->h, c->w, c->cin), gtx = t16(gx, c->n, c->h, c->w, c->cin);
    float *y = vs_calloc(nn_floats_for(ny, hdt) + 1, sizeof(float)), *gy = h16_nan_gpu(ny);
    nn_tensor ty = t16(y, c->n, oh * r, ow * r, cout / (r * r));
    nn_tensor gty = t16(gy, c->n, oh * r, ow * r, cout / (r * r));
    ref->conv2d(&ty, &tx, w, b, &d);
    gpu->conv2d(&gty, &gtx, gw, gb, &d);
    fam = F_CONV;
    check_16(gy, y, ny, H16_TOL, "%s fwd", tag);
    d.shuffle = 0;
    if (shuffle) { /* the shuffle's backward with the activation's, from the layer's output */
        float *gyr = h16_to_gpu(y, ny), *dx = vs_calloc(nn_floats_for(ny, hdt) + 1, 4);
        float *gdx = h16_nan_gpu(ny), *dys = h16_rand(ny), *gdys = h16_to_gpu(dys, ny);
        nn_tensor tdys = ty, gtdys = gty, tdx = t16(dx, c->n, oh, ow, cout),
                  gtdx = t16(gdx, c->n, oh, ow, cout), gtyr = gty;
        tdys.d = dys, gtdys.d = gdys, gtyr.d = gyr;
        ref->shuffle_act_bwd(&tdx, &tdys, &ty, 2, c->act, c->alpha);
        gpu->shuffle_act_bwd(&gtdx, &gtdys, &gtyr, 2, c->act, c->alpha);
        fam = F_SHUFFLE;
        check_16(gdx, dx, ny, H16_TOL, "%s shuffle_act_bwd", tag);
        free(dx), free(dys), gpu_free(gyr), gpu_free(gdx), gpu_free(gdys);
    }
    /* backward */
    nn_tensor tdy = t16(dy, c->n, oh, ow, cout), gtdy = t16(gdy, c->n, oh, ow, cout);
    for (int m = 0; m < 2; m++) {
        nn_accum mode = m ? NN_ACCUMULATE : NN_OVERWRITE;
        float *dx = h16_rand(nx),
              *gdx = mode == NN_OVERWRITE ? h16_nan_gpu(nx) : h16_to_gpu(dx, nx);
        nn_tensor tdx = t16(dx, c->n, c->h, c->w, c->cin),
                  gtdx = t16(gdx, c->n, c->h, c->w, c->cin);
        ref->conv2d_bwd_data(&tdx, &tdy, w, &d, mode);
        gpu->conv2d_bwd_data(&gtdx, &gtdy, gw, &d, mode);
        fam = F_CONV_BD;
        check_16(gdx, dx, nx, H16_TOL, "%s bwd_data %s", tag, mode_name(mode));
        /* the weight and bias gradients are 16-bit too */
        float *dw = h16_rand(nw),
              *gdw = mode == NN_OVERWRITE ? h16_nan_gpu(nw) : h16_to_gpu_k(dw, kk, cout);
        float *db = h16_rand((size_t)cout), *gdb = h16_gpu_out(db, (size_t)cout, mode);
        ref->conv2d_bwd_filter(dw, db, &tdy, &tx, &d, mode);
        gpu->conv2d_bwd_filter(gdw, gdb, &gtdy, &gtx, &d, mode);
        fam = F_CONV_BF;
        check_16_k(gdw, dw, kk, cout, H16_TOL, "%s bwd_filter dw %s", tag, mode_name(mode));
        check_16(gdb, db, (size_t)cout, H16_TOL, "%s bwd_filter db %s", tag, mode_name(mode));
        free(dx), free(dw), free(db), gpu_free(gdx), gpu_free(gdw), gpu_free(gdb);
    }
    free(x), free(dy), free(b), free(w32), free(w), free(wo), free(gwo), free(y);
    gpu_free(gx), gpu_free(gdy), gpu_free(gw), gpu_free(gb), gpu_free(gy);
}

/* depthwise forward and backward, and pooling, in 16 bits (weights [kh, kw, c] everywhere) */
static void run_depthwise_16(const conv_case *c)
{
    const nn_backend *ref = half_backend(hdt);
    nn_conv_desc d;
    nn_conv_geometry(&d, c->h, c->w, c->k, c->k, c->s, c->s, c->pad);
    d.act = c->act, d.alpha = c->alpha;
    int oh = nn_out_size(c->h, c->k, c->s, c->pad), ow = nn_out_size(c->w, c->k, c->s, c->pad);
    size_t nx = (size_t)c->n * c->h * c->w * c->cin, ny = (size_t)c->n * oh * ow * c->cin;
    size_t nw = (size_t)c->k * c->k * c->cin;
    float *x = h16_rand(nx), *w = h16_rand(nw), *dy = h16_rand(ny);
    float *b = c->no_bias ? NULL : check_rand_buf((size_t)c->cin);
    float *gx = h16_to_gpu(x, nx), *gw = h16_to_gpu(w, nw), *gdy = h16_to_gpu(dy, ny);
    float *gb = to_gpu(b, (size_t)c->cin);
    char tag[128];
    snprintf(tag, sizeof tag, "16-bit depthwise [%d,%d,%d,%d] k%d s%d %s", c->n, c->h, c->w, c->cin,
             c->k, c->s, act_str(c->act, c->alpha));
    nn_tensor tx = t16(x, c->n, c->h, c->w, c->cin), gtx = t16(gx, c->n, c->h, c->w, c->cin);
    nn_tensor tdy = t16(dy, c->n, oh, ow, c->cin), gtdy = t16(gdy, c->n, oh, ow, c->cin);
    float *y = vs_calloc(nn_floats_for(ny, hdt) + 1, 4), *gy = h16_nan_gpu(ny);
    nn_tensor ty = t16(y, c->n, oh, ow, c->cin), gty = t16(gy, c->n, oh, ow, c->cin);
    ref->depthwise(&ty, &tx, w, b, &d);
    gpu->depthwise(&gty, &gtx, gw, gb, &d);
    fam = F_DW;
    check_16(gy, y, ny, H16_TOL, "%s fwd", tag);
    for (int m = 0; m < 2; m++) {
        nn_accum mode = m ? NN_ACCUMULATE : NN_OVERWRITE;
        float *dx = h16_rand(nx),
              *gdx = mode == NN_OVERWRITE ? h16_nan_gpu(nx) : h16_to_gpu(dx, nx);
        nn_tensor tdx = t16(dx, c->n, c->h, c->w, c->cin),
                  gtdx = t16(gdx, c->n, c->h, c->w, c->cin);
        ref->depthwise_bwd_data(&tdx, &tdy, w, &d, mode);
        gpu->depthwise_bwd_data(&gtdx, &gtdy, gw, &d, mode);
        fam = F_DW_BD;
        check_16(gdx, dx, nx, H16_TOL, "%s bwd_data %s", tag, mode_name(mode));
        float *dw = h16_rand(nw), *gdw = h16_gpu_out(dw, nw, mode);
        ref->depthwise_bwd_filter(dw, NULL, &tdy, &tx, &d, mode);
        gpu->depthwise_bwd_filter(gdw, NULL, &gtdy, &gtx, &d, mode);
        fam = F_DW_BF;
        check_16(gdw, dw, nw, H16_TOL, "%s bwd_filter %s", tag, mode_name(mode));
        free(dx), free(dw), gpu_free(gdx), gpu_free(gdw);
    }
    /* pooling over the same input, max and average */
    for (int kind = NN_POOL_MAX; kind <= NN_POOL_AVG; kind++) {
        nn_pool_desc pd = {.kind = (nn_pool_kind)kind,
                           .kh = c->k,
                           .kw = c->k,
                           .sh = c->s,
                           .sw = c->s,
                           .pad_t = d.pad_t,
                           .pad_l = d.pad_l,
                           .pad_b = d.pad_b,
                           .pad_r = d.pad_r};
        float *py = vs_calloc(nn_floats_for(ny, hdt) + 1, 4), *gpy = h16_nan_gpu(ny);
        nn_tensor tpy = t16(py, c->n, oh, ow, c->cin), gtpy = t16(gpy, c->n, oh, ow, c->cin);
        ref->pool(&tpy, &tx, &pd);
        gpu->pool(&gtpy, &gtx, &pd);
        fam = F_POOL;
        check_16(gpy, py, ny, H16_TOL, "16-bit pool %s [%d,%d,%d,%d] k%d s%d",
                 kind == NN_POOL_MAX ? "max" : "avg", c->n, c->h, c->w, c->cin, c->k, c->s);
        free(py), gpu_free(gpy);
    }
    free(x), free(w), free(dy), free(b), free(y);
    gpu_free(gx), gpu_free(gw), gpu_free(gdy), gpu_free(gb), gpu_free(gy);
}

static void run_dense_16(int n, int in, int out, nn_act act, float alpha)
{
    const nn_backend *ref = half_backend(hdt);
    size_t nx = (size_t)n * in, ny = (size_t)n * out, nw = (size_t)in * out;
    float *x = h16_rand(nx), *w = h16_rand(nw), *dy = h16_rand(ny), *b = check_rand_buf(out);
    float *gx = h16_to_gpu(x, nx), *gw = h16_to_gpu(w, nw), *gdy = h16_to_gpu(dy, ny);
    float *gb = to_gpu(b, (size_t)out);
    float *y = vs_calloc(nn_floats_for(ny, hdt) + 1, 4), *gy = h16_nan_gpu(ny);
    nn_tensor tx = t16(x, n, 1, 1, in), gtx = t16(gx, n, 1, 1, in);
    nn_tensor ty = t16(y, n, 1, 1, out), gty = t16(gy, n, 1, 1, out);
    nn_tensor tdy = t16(dy, n, 1, 1, out), gtdy = t16(gdy, n, 1, 1, out);
    ref->dense(&ty, &tx, w, b, act, alpha);
    gpu->dense(&gty, &gtx, gw, gb, act, alpha);
    fam = F_DENSE;
    check_16(gy, y, ny, H16_TOL, "16-bit dense %d %d->%d %s fwd", n, in, out, act_str(act, alpha));
    for (int m = 0; m < 2; m++) {
        nn_accum mode = m ? NN_ACCUMULATE : NN_OVERWRITE;
        float *dx = h16_rand(nx),
              *gdx = mode == NN_OVERWRITE ? h16_nan_gpu(nx) : h16_to_gpu(dx, nx);
        nn_tensor tdx = t16(dx, n, 1, 1, in), gtdx = t16(gdx, n, 1, 1, in);
        ref->dense_bwd_data(&tdx, &tdy, w, mode);
        gpu->dense_bwd_data(&gtdx, &gtdy, gw, mode);
        fam = F_DENSE_BD;
        check_16(gdx, dx, nx, H16_TOL, "16-bit dense %d %d->%d bwd_data %s", n, in, out,
                 mode_name(mode));
        float *dw = h16_rand(nw), *gdw = h16_gpu_out(dw, nw, mode);
        float *db = h16_rand((size_t)out), *gdb = h16_gpu_out(db, (size_t)out, mode);
        ref->dense_bwd_filter(dw, db, &tdy, &tx, mode);
        gpu->dense_bwd_filter(gdw, gdb, &gtdy, &gtx, mode);
        fam = F_DENSE_BF;
        check_16(gdw, dw, nw, H16_TOL, "16-bit dense %d %d->%d bwd_filter dw %s", n, in, out,
                 mode_name(mode));
        check_16(gdb, db, (size_t)out, H16_TOL, "16-bit dense %d %d->%d bwd_filter db %s", n, in,
                 out, mode_name(mode));
        free(dx), free(dw), free(db), gpu_free(gdx), gpu_free(gdw), gpu_free(gdb);
    }
    free(x), free(w), free(dy), free(b), free(y);
    gpu_free(gx), gpu_free(gw), gpu_free(gdy), gpu_free(gb), gpu_free(gy);
}

/* act, act_bwd, add, the shuffles and convert in 16 bits; convert both ways bit for bit as the
 * host rounds (ties to even, NaN and infinities kept) */
static void test_elementwise_16(void)
{
    const nn_backend *ref = half_backend(hdt);
    const size_t n = 100003;
    for (int a = 0; a < N_ACTS; a++) {
        float *x32 = vs_malloc(n * sizeof *x32);
        for (size_t i = 0; i < n; i++) x32[i] = 8.0f * check_frand();
        float *x = h16_pack(x32, n), *gx = h16_to_gpu(x, n);
        nn_tensor tx = t16(x, 1, 1, 1, (int)n), gtx = t16(gx, 1, 1, 1, (int)n);
        ref->act(&tx, acts[a].act, acts[a].alpha);
        gpu->act(&gtx, acts[a].act, acts[a].alpha);
        fam = F_ACT;
        check_16(gx, x, n, H16_TOL, "16-bit act %s", acts[a].name);
        float *dy = h16_rand(n), *gdy = h16_to_gpu(dy, n), *gdx = h16_nan_gpu(n);
        float *dx = vs_calloc(nn_floats_for(n, hdt) + 1, 4);
        nn_tensor tdy = t16(dy, 1, 1, 1, (int)n), gtdy = t16(gdy, 1, 1, 1, (int)n);
        nn_tensor tdx = t16(dx, 1, 1, 1, (int)n), gtdx = t16(gdx, 1, 1, 1, (int)n);
        float *gyr = h16_to_gpu(x, n); /* backward from the CPU's output on both sides */
        nn_tensor gty = t16(gyr, 1, 1, 1, (int)n);
        ref->act_bwd(&tdx, &tdy, &tx, acts[a].act, acts[a].alpha);
        gpu->act_bwd(&gtdx, &gtdy, &gty, acts[a].act, acts[a].alpha);
        fam = F_ACT_BWD;
        check_16(gdx, dx, n, H16_TOL, "16-bit act_bwd %s", acts[a].name);
        free(x32), free(x), free(dy), free(dx);
        gpu_free(gx), gpu_free(gdy), gpu_free(gdx), gpu_free(gyr);
    }
    float *a = h16_rand(n), *b = h16_rand(n), *y = vs_calloc(nn_floats_for(n, hdt) + 1, 4);
    float *ga = h16_to_gpu(a, n), *gb = h16_to_gpu(b, n), *gy = h16_nan_gpu(n);
    nn_tensor ta = t16(a, 1, 1, 1, (int)n), tb = t16(b, 1, 1, 1, (int)n),
              ty = t16(y, 1, 1, 1, (int)n);
    nn_tensor gta = t16(ga, 1, 1, 1, (int)n), gtb = t16(gb, 1, 1, 1, (int)n),
              gty = t16(gy, 1, 1, 1, (int)n);
    ref->add(&ty, &ta, &tb);
    gpu->add(&gty, &gta, &gtb);
    fam = F_ADD;
    check_16(gy, y, n, H16_TOL, "16-bit add");
    /* the shuffles move elements: exact */
    nn_tensor depth = t16(a, 5, 9, 11, 4 * 37), space = t16(y, 5, 18, 22, 37);
    size_t ns = nn_numel(&space);
    VS_CHECK(ns <= n);
    nn_tensor gdepth = depth, gspace = space;
    gdepth.d = ga, gspace.d = gy;
    ref->depth_to_space(&space, &depth, 2);
    gpu->depth_to_space(&gspace, &gdepth, 2);
    fam = F_SHUFFLE;
    check_16(gy, y, ns, 0, "16-bit depth_to_space");
    gpu->fill(ga, nn_floats_for(ns, hdt), NAN);
    ref->space_to_depth(&depth, &space, 2);
    gpu->space_to_depth(&gdepth, &gspace, 2);
    check_16(ga, a, ns, 0, "16-bit space_to_depth");
    /* convert: fp32 -> 16-bit -> fp32 */
    float *f = check_rand_buf(n);
    f[0] = NAN, f[1] = INFINITY, f[2] = -INFINITY, f[3] = 1.00390625f; /* a tie: to even (1) */
    f[4] = 1.01171875f;                                                /* a tie: up */
    f[5] = 3.4e38f; /* past the largest bf16 (and fp16): infinity */
    float *gf = to_gpu(f, n), *gh = h16_nan_gpu(n), *gback = nan_gpu(n);
    nn_tensor tf = {gf, 1, 1, 1, (int)n, NN_F32}, th = t16(gh, 1, 1, 1, (int)n),
              tback = {gback, 1, 1, 1, (int)n, NN_F32};
    gpu->convert(&th, &tf);
    gpu->convert(&tback, &th);
    float *raw = from_gpu(gh, nn_floats_for(n, hdt)), *back = from_gpu(gback, n);
    const uint16_t *h = (const uint16_t *)raw;
    size_t bad = 0, bad_back = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t want = nn_half_from_f32(hdt == NN_BF16, f[i]);
        bad += isnan(f[i]) ? !isnan(nn_f32_from_half(hdt == NN_BF16, h[i])) : h[i] != want;
        float wb = nn_f32_from_half(hdt == NN_BF16, want);
        bad_back += isnan(wb) ? !isnan(back[i]) : back[i] != wb;
    }
    fam = F_CONVERT;
    note_exact(bad == 0 && bad_back == 0);
    CHECKF(bad == 0, "convert fp32 -> 16-bit: %zu of %zu differ from round to nearest even", bad,
           n);
    CHECKF(bad_back == 0, "convert 16-bit -> fp32: %zu of %zu not exact", bad_back, n);
    free(a), free(b), free(y), free(f), free(raw), free(back);
    gpu_free(ga), gpu_free(gb), gpu_free(gy), gpu_free(gf), gpu_free(gh), gpu_free(gback);
}

/* adam_ctl writing the 16-bit weight copy: the parameters as the CPU's Adam leaves them, the copy
 * their rounding, aligned and not */
static void test_adam_copy16(void)
{
    nn_adam hp = {.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f, .t = 3};
    for (int off = 0; off < 2; off++) {
        const size_t n = 100003;
        /* 16-bit gradients (the CPU reads them widened), times 1/2 as an fp16 step's are */
        float *p = check_rand_buf(n + 1), *m = check_rand_buf(n + 1), *v = check_rand_buf(n + 1),
              *gb = h16_rand(n + 1), *g = h16_unpack(gb, n + 1);
        for (size_t i = 0; i <= n; i++) v[i] = fabsf(v[i]);
        float ctl[4] = {nn_adam_step_size(&hp), 0, 0.5f, 0};
        float *gp = to_gpu(p, n + 1), *gm = to_gpu(m, n + 1), *gv = to_gpu(v, n + 1),
              *gg = h16_to_gpu(gb, n + 1), *gctl = to_gpu(ctl, 4), *gw = h16_nan_gpu(n + 2);
        /* off 1: every array starts one element in (the 16-bit ones 2 bytes in) */
        nn_tensor gw_at = t16(nn_at(gw, hdt, (size_t)off), 1, 1, 1, (int)n),
                  gg_at = t16(nn_at(gg, hdt, (size_t)off), 1, 1, 1, (int)n);
        be_adam_ctl(cpu, p + off, m + off, v + off, g + off, n, &hp, ctl, NULL);
        gpu->adam_ctl(gp + off, gm + off, gv + off, &gg_at, &hp, gctl, &gw_at);
        fam = F_ADAM;
        check_dev(gp + off, p + off, n, RTOL, "adam_ctl with a 16-bit copy, offset %d", off);
        float *raw = from_gpu(gw, nn_floats_for(n + 2, hdt)), *pg = from_gpu(gp, n + 1);
        const uint16_t *h = (const uint16_t *)raw;
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += h[i + off] != nn_half_from_f32(hdt == NN_BF16, pg[i + off]);
        CHECKF(bad == 0,
               "adam_ctl offset %d: %zu of %zu 16-bit copies are not the new weights "
               "rounded",
               off, bad, n);
        /* the finiteness flag reads 16-bit values: an infinity in the last one */
        float *gf = to_gpu(&ctl[3], 1);
        ((uint16_t *)gb)[n] = nn_half_from_f32(hdt == NN_BF16, INFINITY);
        float *gg2 = h16_to_gpu(gb, n + 1);
        nn_tensor tall = t16(gg2, 1, 1, 1, (int)(n + 1)), thead = t16(gg2, 1, 1, 1, (int)n);
        gpu->flag_nonfinite(gf, &thead);
        float f_head = 1, f_all = 0;
        gpu->copy_out(&f_head, gf, 1);
        gpu->flag_nonfinite(gf, &tall);
        gpu->copy_out(&f_all, gf, 1);
        fam = F_FINITE;
        note_exact(f_head == 0.0f && f_all == 1.0f);
        CHECKF(f_head == 0.0f && f_all == 1.0f,
               "16-bit flag_nonfinite: %g without the infinity, %g with", (double)f_head,
               (double)f_all);
        free(p), free(m), free(v), free(g), free(gb), free(raw), free(pg);
        gpu_free(gp), gpu_free(gm), gpu_free(gv), gpu_free(gg), gpu_free(gctl), gpu_free(gw);
        gpu_free(gf), gpu_free(gg2);
    }
}

static void test_16bit_ops(void)
{
    static const conv_case cases[] = {
        {2, 16, 16, 8, 12, 3, 1, SAME, NN_ACT_RELU, 0, 0},      /* symmetric padding */
        {2, 16, 16, 3, 16, 5, 2, SAME, NN_ACT_LEAKY, 0.1f, 0},  /* the RGB input, pad 1/2 */
        {1, 12, 12, 48, 40, 5, 2, SAME, NN_ACT_LEAKY, 0.2f, 0}, /* K = 1200 */
        {2, 8, 8, 12, 3, 5, 1, SAME, NN_ACT_SIGMOID, 0, 1},     /* the RGB output, no bias */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_16(&cases[i], 0);
    static const conv_case up = {2, 6, 5, 16, 64, 3, 1, SAME, NN_ACT_LEAKY, 0.1f, 0};
    run_conv_16(&up, 1); /* the upscale block */
    for (size_t i = 0; i < sizeof dw_cases / sizeof dw_cases[0]; i++)
        run_depthwise_16(&dw_cases[i]);
    run_dense_16(5, 300, 33, NN_ACT_LEAKY, 0.1f);
    run_dense_16(1, 7, 1, NN_ACT_NONE, 0);
    test_elementwise_16();
    test_adam_copy16();
}

/* ---- the face networks ------------------------------------------------------------------ */

/* Detection, landmarks and embeddings on the GPU against the CPU, as extraction runs them. */
static void test_face_networks(const char *what)
{
    const char *models = check_models_dir(), *dir = getenv("VISAGE_GPU_FACES");
    if (!dir) dir = ".device/faces";
    char path[4200];
    snprintf(path, sizeof path, "%s/face0.ppm", dir);
    if (!check_have_models() || access(path, R_OK) != 0) {
        printf("face networks (%s): skipped: no models in %s or no %s (make gpu-bundle puts "
               "both in .device; set VISAGE_MODELS and VISAGE_GPU_FACES)\n",
               what, models, path);
        return;
    }
    fnc_nets ref, dev;
    vs_err e;
    if (fnc_load(&ref, models, cpu, &e) || fnc_load(&dev, models, gpu, &e)) {
        CHECKF(0, "loading the face networks: %s", e.msg);
        return;
    }
    fnc_stats s, sb, self;
    fnc_stats_init(&s);
    fnc_stats_init(&sb);
    fnc_stats_init(&self);
    int images = 0;
    img ims[16], *imp[16];
    for (int i = 0; i < 16; i++) {
        snprintf(path, sizeof path, "%s/face%d.ppm", dir, i);
        if (read_ppm(&ims[i], path)) break;
        imp[i] = &ims[i];
        fnc_compare(&s, &ref, &dev, &ims[i], 0.5f);
        images++;
    }
    char title[128];
    snprintf(title, sizeof title, "face networks (%s, %d images)", what, images);
    fnc_print(title, &s);
    CHECKF(fnc_pass(&s), "the GPU's faces differ from the CPU's (%s)", what);
    /* as extraction runs them: every picture in one detection batch, each face 3 times over in
     * the landmark and embedding batches (more than one pass of 64) */
    fnc_compare_batch(&sb, &self, &ref, &dev, gpu, imp, images, 0.5f, 3);
    snprintf(title, sizeof title, "face networks in batches (%s, %d images)", what, images);
    fnc_print(title, &sb);
    snprintf(title, sizeof title, "the same faces elsewhere in the batches (%s)", what);
    fnc_print(title, &self);
    CHECKF(fnc_pass(&sb) && self.faces == 2 * sb.faces && fnc_pass(&self),
           "the GPU's batches differ from the CPU (%s)", what);
    for (int i = 0; i < images; i++) free(ims[i].px);
    fnc_free(&ref);
    fnc_free(&dev);
}

int main(void)
{
    const char *why = "";
    if (nn_cuda_device_count(&why) == 0) SKIP("no GPU: %s", why);
    vs_err e;
    gpu = nn_cuda_backend(0, NN_PREC_FP32, &e);
    if (!gpu) SKIP("no GPU: the CUDA backend cannot be opened: %s", e.msg);
    nn_cpu_set_threads(0);
    cpu = nn_cpu_backend();
    nn_gpu_info info;
    if (nn_cuda_device_info(&info, 0) == 0)
        printf("device 0: %s (sm %d.%d, %d SMs, %zu MiB)\n", info.name, info.major, info.minor,
               info.sms, info.mem_total >> 20);
    CHECK(nn_cuda_precision() == NN_PREC_FP32);

    test_layers();
    test_pool();
    test_act();
    test_add();
    test_scale_bias();
    for (int r = 2; r <= 3; r++) {
        run_shuffle(2, 5, 7, 1, r);
        run_shuffle(2, 5, 7, 5, r);
    }
    run_shuffle(3, 16, 16, 64, 2); /* a real layer's size */
    test_loss();
    for (int t = 0; t < 2; t++) {
        run_adam(1000, t ? 50 : 1, 0);
        run_adam(100003, t ? 50 : 1, 0);
    }
    run_adam(100003, 7, 1);
    test_adam_flag();
    test_adam_unaligned();
    test_conv_shuffle();
    run_augment(64, 64, 1);
    run_augment(64, 32, 0);
    test_add_padded();
    test_crop_resize();
    test_warp();
    test_from_u8();
    test_blend();
    test_host_alloc();
    test_convert_frame();
    test_all_finite();
    test_fill();
    test_graph();
    report_families("fp32");
    test_face_networks("fp32");

    /* the convolutions and GEMMs again on tensor cores (a no-op switch without TF32) */
    gpu = nn_cuda_backend(0, NN_PREC_TF32, &e);
    CHECKF(gpu != NULL, "switching to tf32: %s", e.msg);
    if (!gpu) return check_report("test_cuda_ops");
    tf32 = 1;
    int have_tf32 = nn_cuda_precision() == NN_PREC_TF32;
    test_layers();
    report_families(have_tf32 ? "tf32" : "tf32 (fp32 on this card)");

    /* and back: fp32 tolerances hold again */
    gpu = nn_cuda_backend(0, NN_PREC_FP32, &e);
    CHECKF(gpu != NULL, "switching back to fp32: %s", e.msg);
    if (!gpu) return check_report("test_cuda_ops");
    tf32 = 0;
    CHECK(nn_cuda_precision() == NN_PREC_FP32);
    run_conv(&conv_cases[sizeof conv_cases / sizeof conv_cases[0] - 1], 0);
    run_dense(5, 300, 33, NN_ACT_NONE, 0, 0);
    report_families("fp32 after tf32");

    /* bf16 (Ampere and newer) and fp16 (Volta and newer) */
    for (int k = 0; k < 2; k++) {
        nn_precision prec = k ? NN_PREC_FP16 : NN_PREC_BF16;
        gpu = nn_cuda_backend(0, prec, &e);
        CHECKF(gpu != NULL, "switching to %s: %s", nn_precision_name(prec), e.msg);
        if (!gpu) return check_report("test_cuda_ops");
        if (nn_cuda_precision() != prec) {
            printf("%s: skipped: compute %d.%d has no tensor cores for it\n",
                   nn_precision_name(prec), info.major, info.minor);
            continue;
        }
        hdt = k ? NN_F16 : NN_BF16;
        CHECK(gpu->train_dtype == hdt);
        test_16bit_ops();
        report_families(nn_precision_name(prec));
        test_face_networks(nn_precision_name(prec));
    }
    return check_report("test_cuda_ops");
}
