/* cpu_backend.c: the CPU backend, the reference every other backend is tested against. Host
 * memory, OpenBLAS for dense layers, the conv kernels of cpu_conv.c, and element-wise ops and
 * pooling split over the cpu_pool workers. */
#pragma GCC optimize("O3") /* -O2's cheap vectoriser skips loops with a remainder */

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../err.h"
#include "half.h"
#include "cpu_conv.h"
#include "cpu_image.h"
#include "cpu_train.h"

#define EW_CHUNK 32768 /* floats per element-wise task */
#define POOL_CB 16     /* channels per pooling register block */

static inline int imin(int a, int b)
{
    return a < b ? a : b;
}
static inline int imax(int a, int b)
{
    return a > b ? a : b;
}

/* ---- memory -------------------------------------------------------------------------------- */

static float *cpu_alloc(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    VS_CHECK(p != NULL);
    return p;
}

static void cpu_free(float *p)
{
    free(p);
}

static void cpu_copy(float *dst, const float *src, size_t n)
{
    if (n) memcpy(dst, src, n * sizeof(float));
}

static void cpu_sync(void)
{
}

/* ---- element-wise ops, in chunks of EW_CHUNK floats ---------------------------------------- */

typedef struct ew_job {
    float *y;
    const float *a, *b;
    size_t n;
    nn_act act;
    float alpha;
} ew_job;

static int ew_tasks(size_t n)
{
    return (int)((n + EW_CHUNK - 1) / EW_CHUNK);
}

static void act_task(void *ctx, int task, int worker)
{
    const ew_job *j = ctx;
    size_t i0 = (size_t)task * EW_CHUNK, len = j->n - i0 < EW_CHUNK ? j->n - i0 : EW_CHUNK;
    cpu_bias_act(j->y + i0, NULL, 1, len, j->act, j->alpha);
}

/* The CPU computes in fp32 only (tests/bf16_backend.h emulates a bf16 one over it). */
static void f32(const nn_tensor *t)
{
    VS_CHECK(t->dt == NN_F32);
}

static void cpu_act(nn_tensor *t, nn_act act, float alpha)
{
    f32(t);
    float *x = t->d;
    size_t n = nn_numel(t);
    if (act == NN_ACT_NONE || n == 0) return;
    ew_job j = {.y = x, .n = n, .act = act, .alpha = alpha};
    cpu_pool_run(act_task, &j, ew_tasks(n));
}

static void add_task(void *ctx, int task, int worker)
{
    const ew_job *j = ctx;
    size_t i0 = (size_t)task * EW_CHUNK, i1 = j->n - i0 < EW_CHUNK ? j->n : i0 + EW_CHUNK;
    float *y = j->y;
    const float *a = j->a, *b = j->b; /* y may alias a or b: element i is read before written */
    for (size_t i = i0; i < i1; i++) y[i] = a[i] + b[i];
}

static void cpu_add(nn_tensor *y, const nn_tensor *a, const nn_tensor *b)
{
    f32(y), f32(a), f32(b);
    size_t n = nn_numel(y);
    VS_CHECK(nn_numel(a) == n && nn_numel(b) == n);
    if (n == 0) return;
    ew_job j = {.y = y->d, .a = a->d, .b = b->d, .n = n};
    cpu_pool_run(add_task, &j, ew_tasks(n));
}

typedef struct sb_job {
    float *x;
    const float *scale, *bias;
    size_t rows, c, rows_per_task;
} sb_job;

static void scale_bias_task(void *ctx, int task, int worker)
{
    const sb_job *j = ctx;
    size_t r0 = (size_t)task * j->rows_per_task;
    size_t r1 = r0 + j->rows_per_task < j->rows ? r0 + j->rows_per_task : j->rows;
    const size_t c = j->c;
    const float *restrict s = j->scale, *restrict bias = j->bias;
    for (size_t r = r0; r < r1; r++) {
        float *restrict v = j->x + r * c;
        if (s && bias)
            for (size_t i = 0; i < c; i++) v[i] = v[i] * s[i] + bias[i];
        else if (s)
            for (size_t i = 0; i < c; i++) v[i] *= s[i];
        else if (bias)
            for (size_t i = 0; i < c; i++) v[i] += bias[i];
    }
}

/* x: [n, h, w, c]; scale, bias: [c] */
static void cpu_scale_bias(nn_tensor *x, const float *scale, const float *bias)
{
    sb_job j = {.x = x->d, .scale = scale, .bias = bias, .c = (size_t)x->c};
    if (j.c == 0 || nn_numel(x) == 0 || (!scale && !bias)) return;
    j.rows = nn_numel(x) / j.c;
    j.rows_per_task = EW_CHUNK / j.c + 1;
    cpu_pool_run(scale_bias_task, &j, (int)((j.rows + j.rows_per_task - 1) / j.rows_per_task));
}

/* ---- pooling ------------------------------------------------------------------------------- */

typedef struct pool_job {
    float *y;       /* [n, oh, ow, c] */
    const float *x; /* [n, h, w, c] */
    const nn_pool_desc *d;
    int h, w, c, oh, ow;
    size_t rows, total; /* output rows per task, n * oh */
} pool_job;

/* One output pixel, channels [0, nc): max or mean over the ny x nx valid cells from x0. */
static inline void pool_block(float *restrict out, const float *restrict x0, int nc, int ny, int nx,
                              size_t x_row, int c, nn_pool_kind kind)
{
    float acc[POOL_CB];
    if (kind == NN_POOL_MAX) {
        for (int i = 0; i < nc; i++) acc[i] = -INFINITY;
        for (int ky = 0; ky < ny; ky++)
            for (int kx = 0; kx < nx; kx++) {
                const float *restrict xr = x0 + ky * x_row + (size_t)kx * c;
                for (int i = 0; i < nc; i++) acc[i] = xr[i] > acc[i] ? xr[i] : acc[i];
            }
        for (int i = 0; i < nc; i++) out[i] = acc[i];
    } else {
        for (int i = 0; i < nc; i++) acc[i] = 0.0f;
        for (int ky = 0; ky < ny; ky++)
            for (int kx = 0; kx < nx; kx++) {
                const float *restrict xr = x0 + ky * x_row + (size_t)kx * c;
                for (int i = 0; i < nc; i++) acc[i] += xr[i];
            }
        float inv = 1.0f / (float)(ny * nx); /* TF: padded cells do not count */
        for (int i = 0; i < nc; i++) out[i] = acc[i] * inv;
    }
}

static void pool_task(void *ctx, int task, int worker)
{
    const pool_job *j = ctx;
    const nn_pool_desc *d = j->d;
    const int c = j->c;
    const size_t x_row = (size_t)j->w * c;
    size_t r0 = (size_t)task * j->rows, r1 = r0 + j->rows < j->total ? r0 + j->rows : j->total;
    for (size_t r = r0; r < r1; r++) {
        size_t n = r / (size_t)j->oh;
        int oy = (int)(r % (size_t)j->oh);
        int iy0 = oy * d->sh - d->pad_t;
        int ky_lo = imax(0, -iy0), ky_hi = imin(d->kh, j->h - iy0);
        float *yrow = j->y + r * (size_t)j->ow * c;
        for (int ox = 0; ox < j->ow; ox++) {
            int ix0 = ox * d->sw - d->pad_l;
            int kx_lo = imax(0, -ix0), kx_hi = imin(d->kw, j->w - ix0);
            float *out = yrow + (size_t)ox * c;
            if (ky_lo >= ky_hi || kx_lo >= kx_hi) { /* only padding under the window */
                memset(out, 0, (size_t)c * sizeof(float));
                continue;
            }
            const float *x0 =
                j->x + ((n * j->h + (size_t)(iy0 + ky_lo)) * j->w + (size_t)(ix0 + kx_lo)) * c;
            for (int cb = 0; cb < c; cb += POOL_CB)
                pool_block(out + cb, x0 + cb, imin(POOL_CB, c - cb), ky_hi - ky_lo, kx_hi - kx_lo,
                           x_row, c, d->kind);
        }
    }
}

/* y: [n, oh, ow, c]   x: [n, h, w, c] */
static void cpu_pool(nn_tensor *y, const nn_tensor *x, const nn_pool_desc *d)
{
    VS_CHECK(d->kh >= 1 && d->kw >= 1 && d->sh >= 1 && d->sw >= 1);
    VS_CHECK(y->n == x->n && y->c == x->c);
    VS_CHECK(y->h == (x->h + d->pad_t + d->pad_b - d->kh) / d->sh + 1);
    VS_CHECK(y->w == (x->w + d->pad_l + d->pad_r - d->kw) / d->sw + 1);
    pool_job j = {
        .y = y->d,
        .x = x->d,
        .d = d,
        .h = x->h,
        .w = x->w,
        .c = x->c,
        .oh = y->h,
        .ow = y->w,
        .total = (size_t)y->n * y->h,
    };
    if (j.total == 0 || j.ow == 0 || j.c == 0) return;
    j.rows = EW_CHUNK / ((size_t)j.ow * j.c) + 1;
    cpu_pool_run(pool_task, &j, (int)((j.total + j.rows - 1) / j.rows));
}

/* ---- dense --------------------------------------------------------------------------------- */

/* Samples of a dense layer's tensor and the values per sample. */
static int dense_dims(const nn_tensor *t, int *per)
{
    f32(t);
    *per = t->h * t->w * t->c;
    return t->n;
}

/* y: [n, out] = act(x [n, in] . w [in, out] + b). OpenBLAS threads it (called outside the pool). */
static void cpu_dense(nn_tensor *yt, const nn_tensor *xt, const float *w, const float *b,
                      nn_act act, float alpha)
{
    int in, out, n = dense_dims(xt, &in);
    VS_CHECK(dense_dims(yt, &out) == n);
    float *y = yt->d;
    const float *x = xt->d;
    if (n <= 0 || out <= 0) return;
    if (in <= 0) {
        memset(y, 0, (size_t)n * out * sizeof(float));
    } else if (n == 1) { /* y = w^T x; sgemm would pack all of w for one row */
        cblas_sgemv(CblasRowMajor, CblasTrans, in, out, 1.0f, w, out, x, 1, 0.0f, y, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, out, in, 1.0f, x, in, w, out,
                    0.0f, y, out);
    }
    cpu_bias_act(y, b, (size_t)n, (size_t)out, act, alpha);
}

/* ---- the backend --------------------------------------------------------------------------- */

/* conv2d, then the pixel shuffle when d asks for one (through a temporary of the conv's shape) */
static void cpu_conv2d_shuffle(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                               const nn_conv_desc *d)
{
    const int r = d->shuffle;
    if (r <= 1) {
        cpu_conv2d(y, x, w, b, d);
        return;
    }
    nn_tensor t = nn_tensor_new(y->n, y->h / r, y->w / r, y->c * r * r);
    cpu_conv2d(&t, x, w, b, d);
    cpu_depth_to_space(y, &t, r);
    nn_tensor_free(&t);
}

static void cpu_shuffle_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, int r,
                                nn_act act, float alpha)
{
    f32(dx), f32(dy), f32(y);
    nn_tensor ys = nn_tensor_new(dx->n, dx->h, dx->w, dx->c);
    cpu_space_to_depth(dx, dy, r);
    cpu_space_to_depth(&ys, y, r);
    cpu_act_bwd(dx->d, dx->d, ys.d, nn_numel(dx), act, alpha);
    nn_tensor_free(&ys);
}

static void be_dense_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, nn_accum mode)
{
    int in, out, n = dense_dims(dx, &in);
    VS_CHECK(dense_dims(dy, &out) == n);
    cpu_dense_bwd_data(dx->d, dy->d, w, n, in, out, mode);
}

static void be_dense_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                nn_accum mode)
{
    int in, out, n = dense_dims(x, &in);
    VS_CHECK(dense_dims(dy, &out) == n);
    cpu_dense_bwd_filter(dw, db, dy->d, x->d, n, in, out, mode);
}

static void be_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, nn_act act,
                       float alpha)
{
    f32(dx), f32(dy), f32(y);
    size_t n = nn_numel(dx);
    VS_CHECK(nn_numel(dy) == n && nn_numel(y) == n);
    cpu_act_bwd(dx->d, dy->d, y->d, n, act, alpha);
}

static void cpu_convert(nn_tensor *dst, const nn_tensor *src)
{
    size_t n = nn_numel(dst);
    VS_CHECK(nn_numel(src) == n);
    if (dst->dt == src->dt) {
        if (n && dst->d != src->d) memmove(dst->d, src->d, n * nn_dtype_size(dst->dt));
        return;
    }
    /* through fp32: widen (exact), then round */
    const uint16_t *in = (const uint16_t *)src->d;
    uint16_t *o = (uint16_t *)dst->d;
    for (size_t i = 0; i < n; i++) {
        float v = src->dt == NN_F32 ? src->d[i]
                  : src->dt == NN_BF16 ? nn_f32_from_bf16(in[i])
                                       : nn_f32_from_f16(in[i]);
        if (dst->dt == NN_F32)
            dst->d[i] = v;
        else
            o[i] = dst->dt == NN_BF16 ? nn_bf16_from_f32(v) : nn_f16_from_f32(v);
    }
}

static void cpu_adam_ctl_copy(float *p, float *m, float *v, const nn_tensor *g, const nn_adam *h,
                              float *ctl, nn_tensor *pw)
{
    f32(g);
    const size_t n = nn_numel(g);
    cpu_adam_ctl(p, m, v, g->d, n, h, ctl);
    if (!pw || ctl[1] != 0.0f) return;
    VS_CHECK(nn_numel(pw) == n);
    nn_tensor src = nn_rows(p, 1, (int)n);
    cpu_convert(pw, &src);
}

static void be_flag_nonfinite(float *flag, const nn_tensor *x)
{
    f32(x);
    cpu_flag_nonfinite(flag, x->d, nn_numel(x));
}

static const nn_backend cpu_backend = {
    .name = "cpu",
    .conv_layout = NN_LAYOUT_HWIO,
    .train_dtype = NN_F32,
    .host_memory = 1,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .copy_in = cpu_copy,
    .copy_out = cpu_copy,
    .sync = cpu_sync,
    .conv2d = cpu_conv2d_shuffle,
    .depthwise = cpu_depthwise,
    .pool = cpu_pool,
    .dense = cpu_dense,
    .act = cpu_act,
    .add = cpu_add,
    .convert = cpu_convert,
    .scale_bias = cpu_scale_bias,
    .conv2d_bwd_data = cpu_conv2d_bwd_data,
    .conv2d_bwd_filter = cpu_conv2d_bwd_filter,
    .depthwise_bwd_data = cpu_depthwise_bwd_data,
    .depthwise_bwd_filter = cpu_depthwise_bwd_filter,
    .dense_bwd_data = be_dense_bwd_data,
    .dense_bwd_filter = be_dense_bwd_filter,
    .act_bwd = be_act_bwd,
    .depth_to_space = cpu_depth_to_space,
    .space_to_depth = cpu_space_to_depth,
    .shuffle_act_bwd = cpu_shuffle_act_bwd,
    .loss = cpu_loss,
    .adam = cpu_adam,
    .all_finite = cpu_all_finite,
    .fill = cpu_fill,
    .augment = cpu_augment,
    .flag_nonfinite = be_flag_nonfinite,
    .adam_ctl = cpu_adam_ctl_copy,
    .add_padded = nn_cpu_add_padded,
    .crop_resize = nn_cpu_crop_resize,
    .warp = nn_cpu_warp,
    .from_u8 = nn_cpu_from_u8,
    .blend = nn_cpu_blend,
    .host_alloc = nn_cpu_host_alloc,
    .host_free = nn_cpu_host_free,
};

const char *nn_precision_name(nn_precision p)
{
    switch (p) {
    case NN_PREC_FP32: return "fp32";
    case NN_PREC_TF32: return "tf32";
    case NN_PREC_BF16: return "bf16";
    case NN_PREC_FP16: return "fp16";
    default: return "auto";
    }
}

const nn_backend *nn_cpu_backend(void)
{
    return &cpu_backend;
}

void nn_cpu_set_threads(int n)
{
    cpu_pool_set_threads(n);
    /* The pool is the parallelism: every large GEMM is split into pool tasks that each call a
     * one-threaded sgemm. OpenBLAS's own threads would only compete with the pool's, and they
     * spin in sched_yield between calls (15% of the CPU time of an extraction, measured). */
    openblas_set_num_threads(1);
}

int nn_cpu_threads(void)
{
    return cpu_pool_threads();
}
