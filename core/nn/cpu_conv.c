/* cpu_conv.c: convolutions for the CPU backend, NHWC. conv2d lowers a block of output pixels at
 * a time to a matrix (im2col, so the buffer stays small for big images) and multiplies it by the
 * weights with OpenBLAS; a 1x1 stride-1 unpadded conv is that GEMM on the input itself. Depthwise
 * is a direct loop whose innermost dimension is the contiguous channels. Work is split into row
 * blocks run on the cpu_pool workers, and bias + activation are applied while a block is hot. */
#pragma GCC optimize("O3") /* -O2's cheap vectoriser skips loops with a remainder */

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../err.h"
#include "cpu_conv.h"

/* im2col block budget per worker: about half a (1 MiB) L2, so the block, the weights panel and
 * the output rows it produces stay in cache between the copy and the GEMM. */
#define IM2COL_BYTES (512 * 1024)
/* Rows of a direct (1x1) GEMM task, and the least work worth a parallel run. */
#define DIRECT_ROWS 1024
#define MIN_PARALLEL_MACS 100000
#define MIN_GEMM_ROWS 256 /* least rows of one sgemm call (see cpu_conv2d) */
#define NARROW_COUT 16    /* below this, a cout that is not a multiple of 4 is padded */
#define DW_CB 16          /* channels per depthwise register block */

static inline int imin(int a, int b)
{
    return a < b ? a : b;
}
static inline int imax(int a, int b)
{
    return a > b ? a : b;
}

static int conv_out(int in, int k, int s, int plo, int phi)
{
    return (in + plo + phi - k) / s + 1;
}

static void check_desc(const nn_tensor *y, const nn_tensor *x, const nn_conv_desc *d)
{
    VS_CHECK(d->kh >= 1 && d->kw >= 1 && d->sh >= 1 && d->sw >= 1);
    VS_CHECK(d->pad_t >= 0 && d->pad_b >= 0 && d->pad_l >= 0 && d->pad_r >= 0);
    VS_CHECK(y->n == x->n);
    VS_CHECK(y->h == conv_out(x->h, d->kh, d->sh, d->pad_t, d->pad_b));
    VS_CHECK(y->w == conv_out(x->w, d->kw, d->sw, d->pad_l, d->pad_r));
}

int cpu_split_rows(size_t *rows_out, size_t total, size_t max_rows, size_t align, double macs)
{
    size_t th = macs < MIN_PARALLEL_MACS ? 1 : (size_t)cpu_pool_threads();
    if (max_rows < 1) max_rows = 1;
    size_t tasks = (total + max_rows - 1) / max_rows;
    tasks = (tasks + th - 1) / th * th;
    size_t rows = (total + tasks - 1) / tasks;
    if (rows > align) rows = (rows + align - 1) / align * align;
    *rows_out = rows;
    return (int)((total + rows - 1) / rows);
}

/* ---- epilogue ---------------------------------------------------------------------------- */

CPU_CLONES void cpu_bias_act(float *restrict y, const float *restrict b, size_t rows, size_t c,
                             nn_act act, float alpha)
{
    for (size_t r = 0; r < rows; r++) {
        float *restrict v = y + r * c;
        if (b)
            for (size_t i = 0; i < c; i++) v[i] += b[i];
        switch (act) {
        case NN_ACT_NONE: break;
        case NN_ACT_RELU:
            for (size_t i = 0; i < c; i++) v[i] = v[i] > 0.0f ? v[i] : 0.0f;
            break;
        case NN_ACT_RELU6:
            for (size_t i = 0; i < c; i++) {
                float t = v[i] > 0.0f ? v[i] : 0.0f;
                v[i] = t < 6.0f ? t : 6.0f;
            }
            break;
        case NN_ACT_LEAKY:
            for (size_t i = 0; i < c; i++) v[i] = v[i] > 0.0f ? v[i] : alpha * v[i];
            break;
        case NN_ACT_SIGMOID:
            for (size_t i = 0; i < c; i++) v[i] = 1.0f / (1.0f + expf(-v[i]));
            break;
        }
    }
}

/* ---- conv2d ------------------------------------------------------------------------------ */

typedef struct conv_job {
    float *y;       /* [m, cout], m = n * oh * ow */
    const float *x; /* [n, h, w, cin] */
    const float *w; /* [k, cout], k = kh * kw * cin (ky, kx, ci order, as TF stores it) */
    const float *b;
    const nn_conv_desc *d;
    int h, w_in, cin, oh, ow, cout, k;
    size_t m, rows;   /* output pixels, pixels per task */
    int cols, slices; /* output channels per task, and tasks per row block */
    int direct;       /* 1x1, stride 1, no padding: the input is already the matrix */
    int cpad;         /* narrow layers: cout rounded up to 4, with w4 the weights padded */
    const float *w4;  /* [k, cpad] with zero columns, or NULL */
} conv_job;

void cpu_im2col(float *restrict col, size_t ld, const float *restrict x, int h, int w, int cin,
                int oh, int ow, const nn_conv_desc *d, size_t m0, size_t m1, size_t k0, size_t k1)
{
    const int kw = d->kw;
    const size_t krow = (size_t)kw * cin;
    const int ky0 = (int)(k0 / krow), ky1 = k1 > k0 ? (int)((k1 - 1) / krow) + 1 : ky0;
    int ox = (int)(m0 % (size_t)ow);
    int oy = (int)(m0 / (size_t)ow % (size_t)oh);
    size_t n = m0 / ((size_t)ow * oh);
    for (size_t m = m0; m < m1; m++) {
        float *row = col + (m - m0) * ld;
        int iy0 = oy * d->sh - d->pad_t, ix0 = ox * d->sw - d->pad_l;
        int kx_lo = imax(0, -ix0), kx_hi = imin(kw, w - ix0);
        for (int ky = ky0; ky < ky1; ky++) {
            /* this kernel row's part of [k0, k1): [a, b) within the row; [v0, v1) is valid */
            size_t base = (size_t)ky * krow;
            size_t a = k0 > base ? k0 - base : 0, b = k1 - base < krow ? k1 - base : krow;
            float *dst = row + base + a - k0;
            int iy = iy0 + ky;
            size_t v0 = a, v1 = a;
            if (iy >= 0 && iy < h && kx_lo < kx_hi) {
                v0 = (size_t)kx_lo * cin, v1 = (size_t)kx_hi * cin;
                v0 = v0 < a ? a : v0 > b ? b : v0;
                v1 = v1 < v0 ? v0 : v1 > b ? b : v1;
            }
            if (v0 > a) memset(dst, 0, (v0 - a) * sizeof(float));
            if (v1 > v0) {
                /* ix0 may be negative; v0 >= kx_lo * cin keeps the sum in the image */
                ptrdiff_t at = ((ptrdiff_t)(n * h + iy) * w + ix0) * cin + (ptrdiff_t)v0;
                memcpy(dst + (v0 - a), x + at, (v1 - v0) * sizeof(float));
            }
            if (b > v1) memset(dst + (v1 - a), 0, (b - v1) * sizeof(float));
        }
        if (++ox == ow) {
            ox = 0;
            if (++oy == oh) oy = 0, n++;
        }
    }
}

static void conv_task(void *ctx, int task, int worker)
{
    const conv_job *j = ctx;
    size_t m0 = (size_t)(task / j->slices) * j->rows;
    size_t m1 = m0 + j->rows < j->m ? m0 + j->rows : j->m;
    int rows = (int)(m1 - m0);
    int c0 = (task % j->slices) * j->cols;
    int cols = imin(j->cols, j->cout - c0);
    const float *a = j->x + m0 * (size_t)j->cin;
    if (!j->direct) {
        /* the narrow case keeps its [rows, cpad] block after the columns */
        size_t extra = j->w4 ? (size_t)rows * j->cpad + 16 : 0;
        float *col = cpu_pool_scratch(worker, ((size_t)rows * j->k + extra) * sizeof(float));
        cpu_im2col(col, (size_t)j->k, j->x, j->h, j->w_in, j->cin, j->oh, j->ow, j->d, m0, m1, 0,
                   (size_t)j->k);
        a = col;
    }
    if (j->w4) { /* narrow: through a [rows, cpad] block, then the real columns */
        size_t col_n = j->direct ? 0 : ((size_t)rows * j->k + 15) & ~(size_t)15;
        float *col = cpu_pool_scratch(worker, (col_n + (size_t)rows * j->cpad) * sizeof(float));
        float *y4 = col + col_n;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, j->cpad, j->k, 1.0f, a, j->k,
                    j->w4, j->cpad, 0.0f, y4, j->cpad);
        float *y = j->y + m0 * (size_t)j->cout;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < j->cout; c++)
                y[(size_t)r * j->cout + c] = y4[(size_t)r * j->cpad + c];
        cpu_bias_act(y, j->b, (size_t)rows, (size_t)j->cout, j->d->act, j->d->alpha);
        return;
    }
    float *y = j->y + m0 * (size_t)j->cout + c0;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, j->k, 1.0f, a, j->k,
                j->w + c0, j->cout, 0.0f, y, j->cout);
    if (cols == j->cout) {
        cpu_bias_act(y, j->b, (size_t)rows, (size_t)j->cout, j->d->act, j->d->alpha);
    } else {
        for (int r = 0; r < rows; r++)
            cpu_bias_act(y + (size_t)r * j->cout, j->b ? j->b + c0 : NULL, 1, (size_t)cols,
                         j->d->act, j->d->alpha);
    }
}

/* ---- narrow conv2d: the RGB output layers --------------------------------------------------
 * With at most NARROW_DIRECT outputs and a large window (k5 over 64-128 channels: 1600-3200
 * values a pixel), lowering to a matrix writes and reads far more memory than the arithmetic
 * needs, and leaves a product of 3 columns. Each output pixel sums its taps directly instead,
 * vectorised over cin in CPU_LANES independent partial sums per output (so every vector width
 * gives the same bits), added in a fixed order at the end. */

typedef struct narrow_job {
    float *y;
    const float *x, *wt, *b; /* wt: [kh * kw, cout, cin], each tap's weights transposed */
    const nn_conv_desc *d;
    int h, w_in, cin, oh, ow, cout;
    size_t rows, total; /* output rows (n * oh) per task, and in all */
} narrow_job;

static inline __attribute__((always_inline)) void narrow_row(const narrow_job *j, size_t r,
                                                             const int cout)
{
    const nn_conv_desc *d = j->d;
    const int cin = j->cin, kw = d->kw;
    const size_t n = r / (size_t)j->oh;
    const int oy = (int)(r % (size_t)j->oh), iy0 = oy * d->sh - d->pad_t;
    const int ky_lo = imax(0, -iy0), ky_hi = imin(d->kh, j->h - iy0);
    float *yrow = j->y + r * (size_t)j->ow * cout;
    for (int ox = 0; ox < j->ow; ox++) {
        const int ix0 = ox * d->sw - d->pad_l;
        const int kx_lo = imax(0, -ix0), kx_hi = imin(kw, j->w_in - ix0);
        float acc[CPU_NARROW_DIRECT][CPU_LANES];
        memset(acc, 0, sizeof acc);
        for (int ky = ky_lo; ky < ky_hi; ky++)
            for (int kx = kx_lo; kx < kx_hi; kx++) {
                const float *restrict xp =
                    j->x + ((n * j->h + (size_t)(iy0 + ky)) * j->w_in + (size_t)(ix0 + kx)) * cin;
                const float *restrict wp = j->wt + (size_t)(ky * kw + kx) * cout * cin;
                for (int c = 0; c < cout; c++) {
                    const float *restrict wc = wp + (size_t)c * cin;
                    int i = 0;
                    for (; i + CPU_LANES <= cin; i += CPU_LANES)
                        for (int l = 0; l < CPU_LANES; l++) acc[c][l] += xp[i + l] * wc[i + l];
                    for (int l = 0; i < cin; i++, l++) acc[c][l] += xp[i] * wc[i];
                }
            }
        for (int c = 0; c < cout; c++) {
            float sum = 0.0f;
            for (int l = 0; l < CPU_LANES; l++) sum += acc[c][l];
            yrow[(size_t)ox * cout + c] = sum;
        }
    }
    cpu_bias_act(yrow, j->b, (size_t)j->ow, (size_t)cout, d->act, d->alpha);
}

CPU_CLONES static void narrow_rows(const narrow_job *j, size_t r0, size_t r1)
{
    for (size_t r = r0; r < r1; r++) switch (j->cout) { /* constant widths unroll the c loop */
        case 1: narrow_row(j, r, 1); break;
        case 2: narrow_row(j, r, 2); break;
        case 3: narrow_row(j, r, 3); break;
        default: narrow_row(j, r, 4); break;
        }
}

static void narrow_task(void *ctx, int task, int worker)
{
    const narrow_job *j = ctx;
    size_t r0 = (size_t)task * j->rows;
    narrow_rows(j, r0, r0 + j->rows < j->total ? r0 + j->rows : j->total);
}

float *cpu_narrow_weights(const float *w, int taps, int cin, int cout)
{
    float *wt = vs_malloc((size_t)taps * cin * cout * sizeof(float));
    for (int t = 0; t < taps; t++)
        for (int ci = 0; ci < cin; ci++)
            for (int c = 0; c < cout; c++)
                wt[((size_t)t * cout + c) * cin + ci] = w[((size_t)t * cin + ci) * cout + c];
    return wt;
}

static void conv2d_narrow(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                          const nn_conv_desc *d)
{
    narrow_job j = {.y = y->d,
                    .x = x->d,
                    .b = b,
                    .d = d,
                    .h = x->h,
                    .w_in = x->w,
                    .cin = x->c,
                    .oh = y->h,
                    .ow = y->w,
                    .cout = y->c,
                    .total = (size_t)y->n * y->h};
    float *wt = cpu_narrow_weights(w, d->kh * d->kw, x->c, y->c);
    j.wt = wt;
    double macs = (double)nn_numel(y) * d->kh * d->kw * x->c;
    int tasks = cpu_split_rows(&j.rows, j.total, (j.total + 15) / 16, 1, macs);
    cpu_pool_run(narrow_task, &j, tasks);
    free(wt);
}

/* y: [n, oh, ow, cout] = act(conv(x, w) + b)   x: [n, h, w, cin]   w: [kh, kw, cin, cout] */
void cpu_conv2d(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                const nn_conv_desc *d)
{
    check_desc(y, x, d);
    conv_job j = {
        .y = y->d,
        .x = x->d,
        .w = w,
        .b = b,
        .d = d,
        .h = x->h,
        .w_in = x->w,
        .cin = x->c,
        .oh = y->h,
        .ow = y->w,
        .cout = y->c,
        .k = d->kh * d->kw * x->c,
        .m = (size_t)y->n * y->h * y->w,
    };
    if (j.m == 0 || j.cout == 0) return;
    if (cpu_conv_is_narrow(j.cout, j.k)) {
        conv2d_narrow(y, x, w, b, d);
        return;
    }
    j.direct = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->pad_t == 0 &&
               d->pad_l == 0 && d->pad_b == 0 && d->pad_r == 0;
    double macs = (double)j.m * j.k * j.cout;
    /* Every sgemm call packs all of its weight panel (k x cols), so a row block must be tall
     * enough to pay for that: at least MIN_GEMM_ROWS even when its im2col block then outgrows
     * the cache budget. When that leaves too few blocks for the workers (deep layers on small
     * images), the output channels are split between tasks as well. */
    size_t max_rows = j.direct ? DIRECT_ROWS : IM2COL_BYTES / (sizeof(float) * (size_t)j.k);
    if (max_rows < MIN_GEMM_ROWS) max_rows = MIN_GEMM_ROWS;
    int blocks = cpu_split_rows(&j.rows, j.m, max_rows, 16, macs);
    j.cols = j.cout, j.slices = 1;
    int want = 2 * cpu_pool_threads();
    if (macs >= MIN_PARALLEL_MACS && blocks < want && j.cout >= 128) {
        int slices = (want + blocks - 1) / blocks;
        j.cols = (j.cout + slices - 1) / slices;
        j.cols = (j.cols + 15) / 16 * 16;
        if (j.cols < 64) j.cols = 64;
        j.slices = (j.cout + j.cols - 1) / j.cols;
    }
    /* OpenBLAS's kernels handle a 3-column product (the RGB output layers) with their slow edge
     * code; multiplying by weights padded with zero columns to 4 and dropping them runs faster. */
    float *w4 = NULL;
    if (j.cout % 4 && j.cout < NARROW_COUT && j.slices == 1) {
        j.cpad = (j.cout + 3) & ~3;
        w4 = vs_calloc((size_t)j.k * j.cpad, sizeof(float));
        for (int r = 0; r < j.k; r++)
            memcpy(w4 + (size_t)r * j.cpad, w + (size_t)r * j.cout, (size_t)j.cout * sizeof(float));
        j.w4 = w4;
    }
    cpu_pool_run(conv_task, &j, blocks * j.slices);
    free(w4);
}

/* ---- depthwise --------------------------------------------------------------------------- */

typedef struct dw_job {
    float *y;
    const float *x, *w, *b;
    const nn_conv_desc *d;
    int h, w_in, c, oh, ow;
    size_t rows; /* output rows (n * oh of them) per task */
    size_t total;
} dw_job;

/* out[0..nc) = b + sum over the valid taps of x * w, for one output pixel and a block of channels.
 * x0 points at the first valid tap's channel block, w0 at its weights. */
static inline void dw_block(float *restrict out, const float *restrict x0, const float *restrict w0,
                            const float *restrict b, int nc, int ntaps_y, int ntaps_x, size_t x_row,
                            size_t w_row, int c)
{
    if (nc == DW_CB) {
        float acc[DW_CB];
        for (int i = 0; i < DW_CB; i++) acc[i] = b ? b[i] : 0.0f;
        for (int ky = 0; ky < ntaps_y; ky++) {
            const float *restrict xr = x0 + ky * x_row;
            const float *restrict wr = w0 + ky * w_row;
            for (int kx = 0; kx < ntaps_x; kx++)
                for (int i = 0; i < DW_CB; i++)
                    acc[i] += xr[(size_t)kx * c + i] * wr[(size_t)kx * c + i];
        }
        for (int i = 0; i < DW_CB; i++) out[i] = acc[i];
        return;
    }
    for (int i = 0; i < nc; i++) out[i] = b ? b[i] : 0.0f;
    for (int ky = 0; ky < ntaps_y; ky++)
        for (int kx = 0; kx < ntaps_x; kx++) {
            const float *restrict xr = x0 + ky * x_row + (size_t)kx * c;
            const float *restrict wr = w0 + ky * w_row + (size_t)kx * c;
            for (int i = 0; i < nc; i++) out[i] += xr[i] * wr[i];
        }
}

static void dw_task(void *ctx, int task, int worker)
{
    const dw_job *j = ctx;
    const nn_conv_desc *d = j->d;
    const int c = j->c;
    const size_t x_row = (size_t)j->w_in * c, w_row = (size_t)d->kw * c;
    size_t r0 = (size_t)task * j->rows, r1 = r0 + j->rows < j->total ? r0 + j->rows : j->total;
    for (size_t r = r0; r < r1; r++) {
        size_t n = r / (size_t)j->oh;
        int oy = (int)(r % (size_t)j->oh);
        int iy0 = oy * d->sh - d->pad_t;
        int ky_lo = imax(0, -iy0), ky_hi = imin(d->kh, j->h - iy0);
        float *yrow = j->y + r * (size_t)j->ow * c;
        for (int ox = 0; ox < j->ow; ox++) {
            int ix0 = ox * d->sw - d->pad_l;
            int kx_lo = imax(0, -ix0), kx_hi = imin(d->kw, j->w_in - ix0);
            float *out = yrow + (size_t)ox * c;
            if (ky_lo >= ky_hi || kx_lo >= kx_hi) { /* window entirely in the padding */
                for (int i = 0; i < c; i++) out[i] = j->b ? j->b[i] : 0.0f;
                continue;
            }
            const float *x0 =
                j->x + ((n * j->h + (size_t)(iy0 + ky_lo)) * j->w_in + (size_t)(ix0 + kx_lo)) * c;
            const float *w0 = j->w + ((size_t)ky_lo * d->kw + kx_lo) * c;
            for (int cb = 0; cb < c; cb += DW_CB)
                dw_block(out + cb, x0 + cb, w0 + cb, j->b ? j->b + cb : NULL, imin(DW_CB, c - cb),
                         ky_hi - ky_lo, kx_hi - kx_lo, x_row, w_row, c);
        }
        cpu_bias_act(yrow, NULL, 1, (size_t)j->ow * c, d->act, d->alpha);
    }
}

/* y: [n, oh, ow, c] = act(depthwise(x, w) + b)   x: [n, h, w, c]   w: [kh, kw, c] */
void cpu_depthwise(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                   const nn_conv_desc *d)
{
    check_desc(y, x, d);
    VS_CHECK(y->c == x->c);
    dw_job j = {
        .y = y->d,
        .x = x->d,
        .w = w,
        .b = b,
        .d = d,
        .h = x->h,
        .w_in = x->w,
        .c = x->c,
        .oh = y->h,
        .ow = y->w,
        .total = (size_t)y->n * y->h,
    };
    if (j.total == 0 || j.ow == 0 || j.c == 0) return;
    double macs = (double)nn_numel(y) * d->kh * d->kw;
    /* ~32k outputs a task: enough tasks to balance, few enough that scheduling is free */
    size_t max_rows = 32768 / ((size_t)j.ow * j.c) + 1;
    int tasks = cpu_split_rows(&j.rows, j.total, max_rows, 1, macs);
    cpu_pool_run(dw_task, &j, tasks);
}
