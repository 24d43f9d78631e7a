/* cpu_conv_bwd.c: backward passes of conv2d, depthwise and dense for the CPU backend (NHWC, the
 * TF weight layouts of backend.h). conv2d's data gradient gathers rather than scatters: each input
 * pixel's gradient is a GEMM row over the dy pixels whose windows cover it, so tasks never write
 * the same dx values and no col2im reduction is needed. Weight gradients are GEMMs over the
 * im2col matrix split by weight rows (or, for few rows, into per-task partial sums reduced in task
 * order, so results do not depend on scheduling). Every GEMM is a one-threaded sgemm in a cpu_pool
 * task; tiles are kept large because each sgemm call repacks its whole B operand. */
#pragma GCC optimize("O3") /* -O2's cheap vectoriser skips loops with a remainder */

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "../err.h"
#include "cpu_conv.h"

/* Lowered-matrix (im2col) budget per task, and the fewest rows a tile is cut to: below ~256 rows
 * the repacking of B in every sgemm call costs more than the cache misses it avoids. */
#define COL_BYTES (4u << 20)
#define MIN_TILE_ROWS 256
#define MIN_PARALLEL_MACS 100000
#define MIN_TILE_MACS 2000000 /* tiles are not split below this much work */
#define KSLICE_MAX 2048       /* weight-gradient rows per task (weights are [k, cout]) */
#define FILTER_SMALL_K 256    /* fewer weight rows than this: split the pixels instead */
#define DENSE_TILE 262144     /* weight floats per dense task (1 MiB) */
#define PER_TAP_COUT 256      /* dy this deep: one sgemm per tap on w as stored (no transpose) */
#define NARROW_COUT 16        /* dy this shallow: weight gradients computed transposed */
#define SUM_CHUNK 65536       /* floats per partial-sum task */

static inline int imin(int a, int b)
{
    return a < b ? a : b;
}
static inline int imax(int a, int b)
{
    return a > b ? a : b;
}
static inline size_t zmin(size_t a, size_t b)
{
    return a < b ? a : b;
}
static inline size_t ceil_div(size_t a, size_t b)
{
    return (a + b - 1) / b;
}
static inline size_t align16(size_t v)
{
    return (v + 15) & ~(size_t)15;
}

static int conv_out(int in, int k, int s, int plo, int phi)
{
    return (in + plo + phi - k) / s + 1;
}

/* dy: [n, oh, ow, cout] is the output of a conv over x (or dx): [n, h, w, cin] */
static void check_geometry(const nn_tensor *dy, const nn_tensor *x, const nn_conv_desc *d)
{
    VS_CHECK(d->kh >= 1 && d->kw >= 1 && d->sh >= 1 && d->sw >= 1);
    VS_CHECK(d->pad_t >= 0 && d->pad_b >= 0 && d->pad_l >= 0 && d->pad_r >= 0);
    VS_CHECK(dy->n == x->n);
    VS_CHECK(dy->h == conv_out(x->h, d->kh, d->sh, d->pad_t, d->pad_b));
    VS_CHECK(dy->w == conv_out(x->w, d->kw, d->sw, d->pad_l, d->pad_r));
}

static int pool_threads(double macs)
{
    return macs < MIN_PARALLEL_MACS ? 1 : cpu_pool_threads();
}

/* ---- column sums (bias gradients) ------------------------------------------------------- */

typedef struct sum_job {
    float *part; /* [tasks, cols]: one partial sum per task */
    const float *y;
    size_t rows, cols, rows_per_task;
} sum_job;

static void colsum_task(void *ctx, int task, int worker)
{
    (void)worker;
    const sum_job *j = ctx;
    size_t r0 = (size_t)task * j->rows_per_task, r1 = zmin(r0 + j->rows_per_task, j->rows);
    float *restrict s = j->part + (size_t)task * j->cols;
    memset(s, 0, j->cols * sizeof(float));
    for (size_t r = r0; r < r1; r++) {
        const float *restrict v = j->y + r * j->cols;
        for (size_t i = 0; i < j->cols; i++) s[i] += v[i];
    }
}

/* db: [cols] (=, or += with NN_ACCUMULATE) the column sums of y: [rows, cols]. The partial sums
 * are added in task order, so the result does not depend on which worker ran what. */
static void cpu_colsum(float *db, const float *y, size_t rows, size_t cols, nn_accum mode)
{
    if (cols == 0) return;
    size_t tasks = zmin(zmin(ceil_div(rows * cols, SUM_CHUNK), 32), rows);
    if (tasks == 0) {
        if (mode == NN_OVERWRITE) memset(db, 0, cols * sizeof(float));
        return;
    }
    sum_job j = {.y = y, .rows = rows, .cols = cols, .rows_per_task = ceil_div(rows, tasks)};
    tasks = ceil_div(rows, j.rows_per_task);
    j.part = vs_malloc(tasks * cols * sizeof(float));
    cpu_pool_run(colsum_task, &j, (int)tasks);
    for (size_t i = 0; i < cols; i++) {
        float s = mode == NN_ACCUMULATE ? db[i] : 0.0f;
        for (size_t t = 0; t < tasks; t++) s += j.part[t * cols + i];
        db[i] = s;
    }
    free(j.part);
}

typedef struct reduce_job {
    float *dst;
    const float *part; /* [parts, n] */
    size_t n, parts;
    nn_accum mode;
} reduce_job;

static void reduce_task(void *ctx, int task, int worker)
{
    (void)worker;
    const reduce_job *j = ctx;
    size_t i0 = (size_t)task * SUM_CHUNK, i1 = zmin(i0 + SUM_CHUNK, j->n);
    float *restrict dst = j->dst;
    if (j->mode == NN_OVERWRITE) memset(dst + i0, 0, (i1 - i0) * sizeof(float));
    for (size_t p = 0; p < j->parts; p++) {
        const float *restrict s = j->part + p * j->n;
        for (size_t i = i0; i < i1; i++) dst[i] += s[i];
    }
}

/* dst: [n] (=, or +=) the sum of part: [parts, n], in part order */
static void reduce_parts(float *dst, const float *part, size_t n, size_t parts, nn_accum mode)
{
    reduce_job j = {.dst = dst, .part = part, .n = n, .parts = parts, .mode = mode};
    if (n) cpu_pool_run(reduce_task, &j, (int)ceil_div(n, SUM_CHUNK));
}

/* ---- conv2d, data gradient --------------------------------------------------------------
 * dx[n, iy, ix, ci] = sum over taps (ky, kx) and co of dy[n, oy, ox, co] * w[ky, kx, ci, co]
 * where oy * sh + ky = iy + pad_t (and the same for x). With a stride s the input pixels fall
 * into s x s phases by (iy + pad_t) mod sh and (ix + pad_l) mod sw; the pixels of one phase see
 * the same taps (ky = r, r + sh, ...), so each phase is a stride-1 correlation of dy with its
 * taps: a GEMM of the dy windows, lowered to [pixels, taps * cout], by the phase's weights
 * rearranged to [taps * cout, cin]. Taps are ordered by descending ky and kx so that a window's
 * dy pixels are ascending, and each of its rows is one copy. Across phases there are kh * kw taps
 * in all, so the GEMMs do exactly the forward pass's work. When cout is large the rearranged
 * weights are not built: one sgemm per tap, reading w[ky, kx] ([cin, cout]) transposed, costs
 * the same (OpenBLAS splits K into blocks of a few hundred anyway) and saves a copy of the
 * weights, which for the 4x4 layers is comparable to the GEMM's own memory traffic. */

typedef struct bd_phase {
    int ry, rx;        /* (iy + pad_t) mod sh, (ix + pad_l) mod sw of the phase's pixels */
    int ty, tx;        /* its taps per axis: ky = ry + a * sh, a < ty */
    int iy0, ix0;      /* its first input row and column */
    int ny, nx;        /* its rows and columns per image */
    size_t m, kp;      /* pixels (n * ny * nx) and lowered row length (ty * tx * cout) */
    const float *b;    /* [kp, cin], or with trans a single tap's w [cin, cout] */
    int trans;         /* one tap, or one sgemm per tap: w used transposed as it is */
    size_t rows, cols; /* tile: pixels by dx channels */
    int blocks, slices, task0;
} bd_phase;

typedef struct bd_job {
    float *dx;
    const float *dy, *w;
    float *wt; /* every phase's [kp, cin] weights, for phases of more than one tap */
    const nn_conv_desc *d;
    int n, h, w_in, cin, oh, ow, cout;
    nn_accum mode;
    int direct;     /* 1x1, stride 1, unpadded: dy is already the lowered matrix */
    int per_tap;    /* one sgemm per tap on w as it is (phases of several taps too) */
    int contiguous; /* stride 1: the one phase's pixels are dx's, in order */
    int nphase;
    bd_phase *ph;
} bd_job;

/* The phase holding tap (ky, kx) and the tap's row block in the phase's weights. */
static bd_phase *tap_phase(const bd_job *j, int ky, int kx, size_t *row)
{
    const nn_conv_desc *d = j->d;
    bd_phase *p = &j->ph[(ky % d->sh) * d->sw + kx % d->sw];
    int a = p->ty - 1 - ky / d->sh, b = p->tx - 1 - kx / d->sw;
    *row = ((size_t)a * p->tx + b) * j->cout;
    return p;
}

/* wt rows of tap (task / blocks): [cout, cin] = w[ky, kx]^T, for dx rows [co0, co1) */
#define WT_BLOCK 64
static void bd_transpose_task(void *ctx, int task, int worker)
{
    (void)worker;
    const bd_job *j = ctx;
    int nb = (int)ceil_div((size_t)j->cout, WT_BLOCK), tap = task / nb;
    int ky = tap / j->d->kw, kx = tap % j->d->kw;
    size_t row;
    bd_phase *p = tap_phase(j, ky, kx, &row);
    if (p->trans) return;
    const size_t cin = (size_t)j->cin, cout = (size_t)j->cout;
    const float *restrict src = j->w + (size_t)tap * cin * cout;
    float *restrict dst = (float *)p->b + row * cin;
    size_t co0 = (size_t)(task % nb) * WT_BLOCK, co1 = zmin(co0 + WT_BLOCK, cout);
    for (size_t ci0 = 0; ci0 < cin; ci0 += 16) {
        size_t ci1 = zmin(ci0 + 16, cin);
        for (size_t co = co0; co < co1; co++)
            for (size_t ci = ci0; ci < ci1; ci++) dst[co * cin + ci] = src[ci * cout + co];
    }
}

/* col: [m1 - m0, kp]: the dy windows of phase pixels [m0, m1) (zeros outside dy) */
static void bd_lower(float *restrict col, const bd_job *j, const bd_phase *p, size_t m0, size_t m1)
{
    const nn_conv_desc *d = j->d;
    const size_t cout = (size_t)j->cout, seg = (size_t)p->tx * cout;
    int b = (int)(m0 % (size_t)p->nx), a = (int)(m0 / (size_t)p->nx % (size_t)p->ny);
    size_t n = m0 / ((size_t)p->nx * p->ny);
    for (size_t m = m0; m < m1; m++) {
        float *row = col + (m - m0) * p->kp;
        int qy = (p->iy0 + a * d->sh + d->pad_t - p->ry) / d->sh;
        int qx = (p->ix0 + b * d->sw + d->pad_l - p->rx) / d->sw;
        int ox_first = qx - p->tx + 1; /* the window's dy columns: [ox_first, qx] */
        int ox_lo = imax(0, ox_first), ox_hi = imin(j->ow, qx + 1);
        for (int t = 0; t < p->ty; t++) {
            int oy = qy - p->ty + 1 + t;
            float *dst = row + (size_t)t * seg;
            if (oy < 0 || oy >= j->oh || ox_lo >= ox_hi) {
                memset(dst, 0, seg * sizeof(float));
                continue;
            }
            size_t lead = (size_t)(ox_lo - ox_first) * cout, len = (size_t)(ox_hi - ox_lo) * cout;
            if (lead) memset(dst, 0, lead * sizeof(float));
            memcpy(dst + lead, j->dy + ((n * j->oh + oy) * j->ow + ox_lo) * cout,
                   len * sizeof(float));
            if (lead + len < seg) memset(dst + lead + len, 0, (seg - lead - len) * sizeof(float));
        }
        if (++b == p->nx) {
            b = 0;
            if (++a == p->ny) a = 0, n++;
        }
    }
}

/* dx pixel of phase row m */
static float *bd_pixel(const bd_job *j, const bd_phase *p, size_t m)
{
    size_t b = m % (size_t)p->nx, a = m / (size_t)p->nx % (size_t)p->ny;
    size_t n = m / ((size_t)p->nx * p->ny);
    size_t iy = (size_t)p->iy0 + a * (size_t)j->d->sh, ix = (size_t)p->ix0 + b * (size_t)j->d->sw;
    return j->dx + ((n * j->h + iy) * j->w_in + ix) * j->cin;
}

static void bd_task(void *ctx, int task, int worker)
{
    const bd_job *j = ctx;
    const bd_phase *p = j->ph;
    while (task >= p->task0 + p->blocks * p->slices) p++;
    int t = task - p->task0;
    size_t m0 = (size_t)(t / p->slices) * p->rows, m1 = zmin(m0 + p->rows, p->m);
    size_t c0 = (size_t)(t % p->slices) * p->cols, c1 = zmin(c0 + p->cols, (size_t)j->cin);
    size_t rows = m1 - m0, cols = c1 - c0;
    if (p->kp == 0) { /* no tap reaches these pixels (kernel smaller than the stride) */
        if (j->mode == NN_OVERWRITE)
            for (size_t m = m0; m < m1; m++)
                memset(bd_pixel(j, p, m) + c0, 0, cols * sizeof(float));
        return;
    }
    size_t col_n = j->direct ? 0 : align16(rows * p->kp), out_n = j->contiguous ? 0 : rows * cols;
    float *scratch = cpu_pool_scratch(worker, (col_n + out_n) * sizeof(float));
    const float *a = j->dy + m0 * (size_t)j->cout;
    if (!j->direct) {
        bd_lower(scratch, j, p, m0, m1);
        a = scratch;
    }
    float *c = j->dx + m0 * (size_t)j->cin + c0, *out = scratch + col_n;
    size_t ldc = (size_t)j->cin;
    float beta = j->mode == NN_ACCUMULATE ? 1.0f : 0.0f;
    if (!j->contiguous) c = out, ldc = cols, beta = 0.0f;
    if (!j->per_tap || p->ty * p->tx == 1) {
        const float *b = p->trans ? p->b + c0 * (size_t)j->cout : p->b + c0;
        size_t ldb = p->trans ? (size_t)j->cout : (size_t)j->cin;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, p->trans ? CblasTrans : CblasNoTrans, (int)rows,
                    (int)cols, (int)p->kp, 1.0f, a, (int)p->kp, b, (int)ldb, beta, c, (int)ldc);
    } else {
        const nn_conv_desc *d = j->d;
        const size_t tap_n = (size_t)j->cin * j->cout;
        for (int a_y = 0; a_y < p->ty; a_y++)
            for (int a_x = 0; a_x < p->tx; a_x++) {
                int ky = p->ry + (p->ty - 1 - a_y) * d->sh, kx = p->rx + (p->tx - 1 - a_x) * d->sw;
                const float *b = j->w + ((size_t)ky * d->kw + kx) * tap_n + c0 * (size_t)j->cout;
                size_t at = ((size_t)a_y * p->tx + a_x) * (size_t)j->cout;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, j->cout,
                            1.0f, a + at, (int)p->kp, b, j->cout, beta, c, (int)ldc);
                beta = 1.0f;
            }
    }
    if (j->contiguous) return;
    for (size_t m = m0; m < m1; m++) {
        float *restrict dst = bd_pixel(j, p, m) + c0;
        const float *restrict src = out + (m - m0) * cols;
        if (j->mode == NN_ACCUMULATE)
            for (size_t i = 0; i < cols; i++) dst[i] += src[i];
        else
            memcpy(dst, src, cols * sizeof(float));
    }
}

/* Tiles phase p for about `target` tasks: first rows (to the lowering budget), then whichever
 * of rows and columns keeps the tile squarest (overheads go as 1/cols + 2/rows). */
static void bd_plan(bd_phase *p, size_t cin, int target)
{
    size_t rows = p->m, cols = cin;
    if (p->kp) {
        size_t cap = COL_BYTES / (sizeof(float) * p->kp);
        if (cap < MIN_TILE_ROWS) cap = MIN_TILE_ROWS;
        if (rows > cap) rows = align16(ceil_div(p->m, ceil_div(p->m, cap)));
    }
    for (;;) {
        size_t tiles = ceil_div(p->m, rows) * ceil_div(cin, cols);
        double macs = (double)rows * cols * (double)p->kp;
        if (tiles >= (size_t)target || macs < 2.0 * MIN_TILE_MACS) break;
        if (2 * rows >= cols && rows >= 32)
            rows = align16(ceil_div(rows, 2));
        else if (cols >= 32)
            cols = align16(ceil_div(cols, 2));
        else
            break;
    }
    p->rows = rows ? rows : 1;
    p->cols = cols ? cols : 1;
    p->blocks = (int)ceil_div(p->m, p->rows);
    p->slices = (int)ceil_div(cin, p->cols);
}

/* dx: [n, h, w, cin] (=, or += with NN_ACCUMULATE) <- dy: [n, oh, ow, cout], w: [kh, kw, cin, cout]
 */
void cpu_conv2d_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, const nn_conv_desc *d,
                         nn_accum mode)
{
    check_geometry(dy, dx, d);
    if (nn_numel(dx) == 0) return;
    if (dy->c == 0 || nn_numel(dy) == 0) { /* no path from dx to the loss */
        if (mode == NN_OVERWRITE) memset(dx->d, 0, nn_numel(dx) * sizeof(float));
        return;
    }
    bd_job j = {
        .dx = dx->d,
        .dy = dy->d,
        .w = w,
        .d = d,
        .n = dx->n,
        .h = dx->h,
        .w_in = dx->w,
        .cin = dx->c,
        .oh = dy->h,
        .ow = dy->w,
        .cout = dy->c,
        .mode = mode,
        .nphase = d->sh * d->sw,
    };
    j.contiguous = d->sh == 1 && d->sw == 1;
    j.direct = j.contiguous && d->kh == 1 && d->kw == 1 && d->pad_t == 0 && d->pad_l == 0 &&
               d->pad_b == 0 && d->pad_r == 0;
    j.per_tap = j.cout >= PER_TAP_COUT;
    j.ph = vs_calloc((size_t)j.nphase, sizeof *j.ph);
    size_t wt_n = 0;
    int active = 0;
    for (int py = 0; py < d->sh; py++)
        for (int px = 0; px < d->sw; px++) {
            bd_phase *p = &j.ph[py * d->sw + px];
            p->ry = py, p->rx = px;
            p->ty = py < d->kh ? (d->kh - py + d->sh - 1) / d->sh : 0;
            p->tx = px < d->kw ? (d->kw - px + d->sw - 1) / d->sw : 0;
            p->iy0 = ((py - d->pad_t) % d->sh + d->sh) % d->sh;
            p->ix0 = ((px - d->pad_l) % d->sw + d->sw) % d->sw;
            p->ny = p->iy0 < j.h ? (j.h - 1 - p->iy0) / d->sh + 1 : 0;
            p->nx = p->ix0 < j.w_in ? (j.w_in - 1 - p->ix0) / d->sw + 1 : 0;
            p->m = (size_t)j.n * p->ny * p->nx;
            p->kp = (size_t)p->ty * p->tx * j.cout;
            p->trans = p->ty * p->tx == 1 || j.per_tap;
            if (!p->trans) wt_n += p->kp * (size_t)j.cin;
            active += p->m > 0;
        }
    j.wt = wt_n ? vs_malloc(wt_n * sizeof(float)) : NULL;
    double macs = (double)nn_numel(dy) * d->kh * d->kw * j.cin;
    int threads = pool_threads(macs), target = (int)ceil_div(2 * (size_t)threads, (size_t)active);
    size_t wt_at = 0;
    int tasks = 0;
    for (int i = 0; i < j.nphase; i++) {
        bd_phase *p = &j.ph[i];
        if (p->trans) { /* (per-tap phases find their taps' weights in w themselves) */
            p->b = w + ((size_t)p->ry * d->kw + p->rx) * j.cin * j.cout;
        } else if (p->kp) {
            p->b = j.wt + wt_at;
            wt_at += p->kp * (size_t)j.cin;
        }
        bd_plan(p, (size_t)j.cin, target);
        p->task0 = tasks;
        if (p->m)
            tasks += p->blocks * p->slices;
        else
            p->blocks = 0;
    }
    if (j.wt)
        cpu_pool_run(bd_transpose_task, &j,
                     d->kh * d->kw * (int)ceil_div((size_t)j.cout, WT_BLOCK));
    cpu_pool_run(bd_task, &j, tasks);
    free(j.wt);
    free(j.ph);
}

/* ---- conv2d, weight gradient ------------------------------------------------------------
 * dw [k, cout] = col^T [k, m] . dy [m, cout], col the im2col matrix of x (k = kh * kw * cin,
 * m = n * oh * ow). With many weight rows each task owns a slice of them and runs over all the
 * pixels in chunks, accumulating into its slice of dw; with few (the RGB input layer) each task
 * owns a range of pixels and a partial dw, and the partials are summed in task order. With a
 * narrow dy (the k5 RGB output layers, cout 3) the GEMM is run as dw^T = dy^T . col with dy
 * padded with zero columns to a multiple of 4: OpenBLAS's Haswell kernel runs N = 4 nearly three
 * times as fast as N = 3 (measured 61 vs 22 GFLOP/s, one thread). */

typedef struct bf_job {
    float *dw; /* [k, cout], or the partials [tasks, k, cout] */
    const float *dy, *x;
    const nn_conv_desc *d;
    int h, w_in, cin, oh, ow, cout;
    size_t k, m;
    int direct;    /* 1x1, stride 1, unpadded: x is already col */
    int overwrite; /* the first chunk of a task replaces its output */
    size_t kslice; /* weight rows per task (slices), or k (partials) */
    size_t mtask;  /* pixels per task: m (slices) or a range (partials) */
    size_t chunk;  /* pixels per sgemm */
    int partials;
    int narrow; /* cout < NARROW_COUT: sums kept transposed, [cpad, kslice] */
    int cpad;   /* cout rounded up to a multiple of 4 (narrow only) */
} bf_job;

static void bf_task(void *ctx, int task, int worker)
{
    const bf_job *j = ctx;
    size_t k0 = 0, k1 = j->k, p0 = 0, p1 = j->m;
    float *out;
    if (j->partials) {
        p0 = (size_t)task * j->mtask, p1 = zmin(p0 + j->mtask, j->m);
        out = j->dw + (size_t)task * j->k * j->cout;
    } else {
        k0 = (size_t)task * j->kslice, k1 = zmin(k0 + j->kslice, j->k);
        out = j->dw + k0 * j->cout;
    }
    const size_t kk = k1 - k0, cout = (size_t)j->cout;
    const int assign = j->overwrite || j->partials; /* the task's first GEMM replaces out */
    const size_t cpad = (size_t)j->cpad;
    size_t col_n = j->direct ? 0 : align16(j->chunk * kk);
    size_t acc_n = j->narrow ? align16(cpad * kk) : 0, pad_n = j->narrow ? j->chunk * cpad : 0;
    float *scratch = cpu_pool_scratch(worker, (col_n + acc_n + pad_n) * sizeof(float));
    float *col = scratch, *acc = scratch + col_n; /* acc: [cpad, kk], the narrow case's sums */
    float *gpad = acc + acc_n;                    /* [chunk, cpad]: dy with zero columns */
    int first = 1;
    for (size_t m0 = p0; m0 < p1; m0 += j->chunk) {
        size_t m1 = zmin(m0 + j->chunk, p1);
        const float *a;
        size_t lda;
        if (j->direct) {
            a = j->x + m0 * (size_t)j->cin + k0, lda = (size_t)j->cin;
        } else {
            cpu_im2col(col, kk, j->x, j->h, j->w_in, j->cin, j->oh, j->ow, j->d, m0, m1, k0, k1);
            a = col, lda = kk;
        }
        const float *g = j->dy + m0 * cout;
        if (j->narrow) {
            if (cpad != cout) {
                for (size_t r = 0; r < m1 - m0; r++)
                    for (size_t co = 0; co < cpad; co++)
                        gpad[r * cpad + co] = co < cout ? g[r * cout + co] : 0.0f;
                g = gpad;
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cpad, (int)kk, (int)(m1 - m0),
                        1.0f, g, (int)cpad, a, (int)lda, first ? 0.0f : 1.0f, acc, (int)kk);
        } else {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kk, j->cout, (int)(m1 - m0),
                        1.0f, a, (int)lda, g, j->cout, first && assign ? 0.0f : 1.0f, out, j->cout);
        }
        first = 0;
    }
    if (j->narrow && !first) {
        for (size_t r = 0; r < kk; r++)
            for (size_t co = 0; co < cout; co++)
                out[r * cout + co] = (assign ? 0.0f : out[r * cout + co]) + acc[co * kk + r];
    } else if (first && assign) { /* no pixels */
        for (size_t r = 0; r < kk; r++) memset(out + r * cout, 0, cout * sizeof(float));
    }
}

/* ---- conv2d, weight gradient of the narrow layers ---------------------------------------
 * The RGB output layers (cpu_conv_is_narrow) skip im2col here too: each task owns a range of
 * output rows and a partial [taps, cout, cin] (dw's layout transposed, so the inner loop over cin
 * is contiguous and vectorises), adds x window * dy for each of its pixels, and the partials are
 * summed in task order. The task count is fixed, so the bits do not depend on the threads. */
#define NARROW_BF_TASKS 16

typedef struct nbf_job {
    float *part; /* [tasks, taps, cout, cin] */
    const float *x, *dy;
    const nn_conv_desc *d;
    int h, w_in, cin, oh, ow, cout;
    size_t rows, total, part_n; /* output rows per task and in all; floats per partial */
} nbf_job;

static inline __attribute__((always_inline)) void nbf_row(float *restrict part, const nbf_job *j,
                                                          size_t r, const int cout)
{
    const nn_conv_desc *d = j->d;
    const int cin = j->cin, kw = d->kw;
    const size_t n = r / (size_t)j->oh;
    const int oy = (int)(r % (size_t)j->oh), iy0 = oy * d->sh - d->pad_t;
    const int ky_lo = imax(0, -iy0), ky_hi = imin(d->kh, j->h - iy0);
    for (int ox = 0; ox < j->ow; ox++) {
        const int ix0 = ox * d->sw - d->pad_l;
        const int kx_lo = imax(0, -ix0), kx_hi = imin(kw, j->w_in - ix0);
        const float *g = j->dy + (r * (size_t)j->ow + (size_t)ox) * cout;
        for (int ky = ky_lo; ky < ky_hi; ky++)
            for (int kx = kx_lo; kx < kx_hi; kx++) {
                const float *restrict xp =
                    j->x + ((n * j->h + (size_t)(iy0 + ky)) * j->w_in + (size_t)(ix0 + kx)) * cin;
                float *restrict pp = part + (size_t)(ky * kw + kx) * cout * cin;
                for (int c = 0; c < cout; c++) {
                    const float gc = g[c];
                    float *restrict pc = pp + (size_t)c * cin;
                    for (int i = 0; i < cin; i++) pc[i] += xp[i] * gc;
                }
            }
    }
}

CPU_CLONES static void nbf_rows(float *part, const nbf_job *j, size_t r0, size_t r1)
{
    for (size_t r = r0; r < r1; r++) switch (j->cout) { /* constant widths unroll the c loop */
        case 1: nbf_row(part, j, r, 1); break;
        case 2: nbf_row(part, j, r, 2); break;
        case 3: nbf_row(part, j, r, 3); break;
        default: nbf_row(part, j, r, 4); break;
        }
}

static void nbf_task(void *ctx, int task, int worker)
{
    const nbf_job *j = ctx;
    float *part = j->part + (size_t)task * j->part_n;
    memset(part, 0, j->part_n * sizeof(float));
    size_t r0 = (size_t)task * j->rows;
    nbf_rows(part, j, r0, zmin(r0 + j->rows, j->total));
}

static void conv2d_bwd_filter_narrow(float *dw, const nn_tensor *dy, const nn_tensor *x,
                                     const nn_conv_desc *d, nn_accum mode)
{
    const int taps = d->kh * d->kw, cin = x->c, cout = dy->c;
    nbf_job j = {.x = x->d,
                 .dy = dy->d,
                 .d = d,
                 .h = x->h,
                 .w_in = x->w,
                 .cin = cin,
                 .oh = dy->h,
                 .ow = dy->w,
                 .cout = cout,
                 .total = (size_t)dy->n * dy->h,
                 .part_n = (size_t)taps * cout * cin};
    size_t tasks = zmin(NARROW_BF_TASKS, j.total ? j.total : 1);
    j.rows = ceil_div(j.total, tasks);
    tasks = j.total ? ceil_div(j.total, j.rows) : 1;
    j.part = vs_malloc(tasks * j.part_n * sizeof(float));
    cpu_pool_run(nbf_task, &j, (int)tasks);
    float *sum = vs_malloc(j.part_n * sizeof(float)); /* [taps, cout, cin] */
    reduce_parts(sum, j.part, j.part_n, tasks, NN_OVERWRITE);
    for (int t = 0; t < taps; t++)
        for (int ci = 0; ci < cin; ci++)
            for (int c = 0; c < cout; c++) {
                float v = sum[((size_t)t * cout + c) * cin + ci];
                float *o = &dw[((size_t)t * cin + ci) * cout + c];
                *o = mode == NN_ACCUMULATE ? *o + v : v;
            }
    free(sum);
    free(j.part);
}

/* dw: [kh, kw, cin, cout], db: [cout] or NULL (=, or +=) <- dy: [n, oh, ow, cout], x: [n, h, w,
 * cin] */
void cpu_conv2d_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                           const nn_conv_desc *d, nn_accum mode)
{
    check_geometry(dy, x, d);
    bf_job j = {
        .dw = dw,
        .dy = dy->d,
        .x = x->d,
        .d = d,
        .h = x->h,
        .w_in = x->w,
        .cin = x->c,
        .oh = dy->h,
        .ow = dy->w,
        .cout = dy->c,
        .k = (size_t)d->kh * d->kw * x->c,
        .m = (size_t)dy->n * dy->h * dy->w,
        .overwrite = mode == NN_OVERWRITE,
    };
    if (db) cpu_colsum(db, dy->d, j.m, (size_t)j.cout, mode);
    if (j.k == 0 || j.cout == 0) return;
    if (cpu_conv_is_narrow(j.cout, j.k)) {
        conv2d_bwd_filter_narrow(dw, dy, x, d, mode);
        return;
    }
    j.direct = d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->pad_t == 0 &&
               d->pad_l == 0 && d->pad_b == 0 && d->pad_r == 0;
    j.narrow = j.cout < NARROW_COUT;
    j.cpad = (j.cout + 3) & ~3;
    double macs = (double)j.m * j.k * j.cout;
    int threads = pool_threads(macs);
    if (j.k >= FILTER_SMALL_K || threads == 1 || j.m < 2 * MIN_TILE_ROWS) {
        size_t slices = threads == 1 ? 1 : threads * ceil_div(j.k, threads * (size_t)KSLICE_MAX);
        j.kslice = align16(ceil_div(j.k, slices));
        if (j.kslice > j.k) j.kslice = j.k;
        j.mtask = j.m;
        j.chunk = COL_BYTES / (sizeof(float) * j.kslice);
        if (j.chunk < MIN_TILE_ROWS) j.chunk = MIN_TILE_ROWS;
        if (j.m)
            j.chunk = ceil_div(j.m, ceil_div(j.m, j.chunk)); /* even chunks */
        else
            j.chunk = 1;
        cpu_pool_run(bf_task, &j, (int)ceil_div(j.k, j.kslice));
        return;
    }
    /* few weight rows: per-task partial sums over pixel ranges */
    size_t tasks = zmin(2 * (size_t)threads, j.m / MIN_TILE_ROWS);
    j.partials = 1;
    j.kslice = j.k;
    j.mtask = ceil_div(j.m, tasks);
    tasks = ceil_div(j.m, j.mtask);
    j.chunk = zmin(j.mtask, (size_t)COL_BYTES / (sizeof(float) * j.k));
    float *part = vs_malloc(tasks * j.k * j.cout * sizeof(float));
    j.dw = part;
    cpu_pool_run(bf_task, &j, (int)tasks);
    reduce_parts(dw, part, j.k * j.cout, tasks, mode);
    free(part);
}

/* ---- depthwise --------------------------------------------------------------------------
 * Direct loops over the contiguous channels; only the separable convs use these, and they are
 * small next to the dense convs. */

typedef struct dwb_job {
    float *out;          /* dx [n, h, w, c], or the partials [tasks, kh * kw + 1, c] */
    const float *dy, *w; /* w for the data gradient */
    const float *x;      /* the input, for the weight gradient */
    const nn_conv_desc *d;
    int h, w_in, c, oh, ow;
    size_t rows, total; /* rows per task: dx rows (n * h) or dy rows (n * oh) */
    nn_accum mode;
} dwb_job;

static void dw_bwd_data_task(void *ctx, int task, int worker)
{
    (void)worker;
    const dwb_job *j = ctx;
    const nn_conv_desc *d = j->d;
    const size_t c = (size_t)j->c;
    size_t r0 = (size_t)task * j->rows, r1 = zmin(r0 + j->rows, j->total);
    for (size_t r = r0; r < r1; r++) {
        size_t n = r / (size_t)j->h;
        int iy = (int)(r % (size_t)j->h);
        float *xrow = j->out + r * (size_t)j->w_in * c;
        if (j->mode == NN_OVERWRITE) memset(xrow, 0, (size_t)j->w_in * c * sizeof(float));
        for (int ky = 0; ky < d->kh; ky++) {
            int ty = iy + d->pad_t - ky;
            if (ty < 0 || ty % d->sh) continue;
            int oy = ty / d->sh;
            if (oy >= j->oh) continue;
            const float *dyrow = j->dy + (n * j->oh + (size_t)oy) * j->ow * c;
            for (int ix = 0; ix < j->w_in; ix++) {
                float *restrict acc = xrow + (size_t)ix * c;
                for (int kx = 0; kx < d->kw; kx++) {
                    int tx = ix + d->pad_l - kx;
                    if (tx < 0 || tx % d->sw || tx / d->sw >= j->ow) continue;
                    const float *restrict g = dyrow + (size_t)(tx / d->sw) * c;
                    const float *restrict wk = j->w + ((size_t)ky * d->kw + kx) * c;
                    for (size_t i = 0; i < c; i++) acc[i] += g[i] * wk[i];
                }
            }
        }
    }
}

/* dx: [n, h, w, c] (=, or +=) <- dy: [n, oh, ow, c], w: [kh, kw, c] */
void cpu_depthwise_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                            const nn_conv_desc *d, nn_accum mode)
{
    check_geometry(dy, dx, d);
    VS_CHECK(dy->c == dx->c);
    dwb_job j = {
        .out = dx->d,
        .dy = dy->d,
        .w = w,
        .d = d,
        .h = dx->h,
        .w_in = dx->w,
        .c = dx->c,
        .oh = dy->h,
        .ow = dy->w,
        .total = (size_t)dx->n * dx->h,
        .mode = mode,
    };
    if (nn_numel(dx) == 0) return;
    double macs = (double)nn_numel(dy) * d->kh * d->kw;
    size_t max_rows = 32768 / ((size_t)j.w_in * j.c) + 1;
    int tasks = cpu_split_rows(&j.rows, j.total, max_rows, 1, macs);
    cpu_pool_run(dw_bwd_data_task, &j, tasks);
}

static void dw_bwd_filter_task(void *ctx, int task, int worker)
{
    (void)worker;
    const dwb_job *j = ctx;
    const nn_conv_desc *d = j->d;
    const size_t c = (size_t)j->c, taps = (size_t)d->kh * d->kw;
    float *restrict part = j->out + (size_t)task * (taps + 1) * c; /* [taps + 1, c]: dw, db */
    memset(part, 0, (taps + 1) * c * sizeof(float));
    size_t r0 = (size_t)task * j->rows, r1 = zmin(r0 + j->rows, j->total);
    for (size_t r = r0; r < r1; r++) {
        size_t n = r / (size_t)j->oh;
        int oy = (int)(r % (size_t)j->oh);
        const float *dyrow = j->dy + r * (size_t)j->ow * c;
        for (int ox = 0; ox < j->ow; ox++) {
            const float *restrict g = dyrow + (size_t)ox * c;
            float *restrict pb = part + taps * c;
            for (size_t i = 0; i < c; i++) pb[i] += g[i];
            for (int ky = 0; ky < d->kh; ky++) {
                int iy = oy * d->sh - d->pad_t + ky;
                if (iy < 0 || iy >= j->h) continue;
                for (int kx = 0; kx < d->kw; kx++) {
                    int ix = ox * d->sw - d->pad_l + kx;
                    if (ix < 0 || ix >= j->w_in) continue;
                    const float *restrict xv = j->x + ((n * j->h + iy) * j->w_in + ix) * c;
                    float *restrict pw = part + ((size_t)ky * d->kw + kx) * c;
                    for (size_t i = 0; i < c; i++) pw[i] += xv[i] * g[i];
                }
            }
        }
    }
}

/* dw: [kh, kw, c], db: [c] or NULL (=, or +=) <- dy: [n, oh, ow, c], x: [n, h, w, c] */
void cpu_depthwise_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                              const nn_conv_desc *d, nn_accum mode)
{
    check_geometry(dy, x, d);
    VS_CHECK(dy->c == x->c);
    const size_t c = (size_t)x->c, taps = (size_t)d->kh * d->kw;
    dwb_job j = {
        .dy = dy->d,
        .x = x->d,
        .d = d,
        .h = x->h,
        .w_in = x->w,
        .c = x->c,
        .oh = dy->h,
        .ow = dy->w,
        .total = (size_t)dy->n * dy->h,
    };
    if (c == 0) return;
    /* a fixed task count (not one per worker), so the sums do not depend on the thread count */
    size_t tasks = zmin(ceil_div(nn_numel(dy) * taps, SUM_CHUNK), 16);
    if (tasks > j.total) tasks = j.total;
    if (tasks == 0) {
        if (mode == NN_OVERWRITE) {
            memset(dw, 0, taps * c * sizeof(float));
            if (db) memset(db, 0, c * sizeof(float));
        }
        return;
    }
    j.rows = ceil_div(j.total, tasks);
    tasks = ceil_div(j.total, j.rows);
    j.out = vs_malloc(tasks * (taps + 1) * c * sizeof(float));
    cpu_pool_run(dw_bwd_filter_task, &j, (int)tasks);
    for (size_t i = 0; i < (taps + 1) * c; i++) {
        float *dst = i < taps * c ? &dw[i] : db ? &db[i - taps * c] : NULL;
        if (!dst) break;
        float s = mode == NN_ACCUMULATE ? *dst : 0.0f;
        for (size_t t = 0; t < tasks; t++) s += j.out[t * (taps + 1) * c + i];
        *dst = s;
    }
    free(j.out);
}

/* ---- dense ------------------------------------------------------------------------------
 * At batch 32 the weights ([in, out], up to 16384 x 1024) dominate: tasks own tiles of w or dw
 * and stream them once. Tiles are at least DENSE_MIN_ROWS weight rows (and DENSE_COLS wide for
 * dw), since each sgemm call also repacks its [n, .] slice of dy. */

#define DENSE_MIN_ROWS 256
#define DENSE_COLS 1024

typedef struct dense_job {
    float *out; /* dx [n, in] or dw [in, out] */
    const float *dy, *w, *x;
    int n, in, out_n;
    size_t rows, cols; /* weight tile: rows of in by columns of out */
    int col_blocks;
    float beta;
} dense_job;

/* dx[:, i0:i1] = dy [n, out] . w[i0:i1, :]^T */
static void dense_data_task(void *ctx, int task, int worker)
{
    (void)worker;
    const dense_job *j = ctx;
    size_t i0 = (size_t)task * j->rows, i1 = zmin(i0 + j->rows, (size_t)j->in);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->n, (int)(i1 - i0), j->out_n, 1.0f,
                j->dy, j->out_n, j->w + i0 * (size_t)j->out_n, j->out_n, j->beta, j->out + i0,
                j->in);
}

/* dw[i0:i1, o0:o1] = x[:, i0:i1]^T . dy[:, o0:o1] */
static void dense_filter_task(void *ctx, int task, int worker)
{
    (void)worker;
    const dense_job *j = ctx;
    size_t i0 = (size_t)(task / j->col_blocks) * j->rows, i1 = zmin(i0 + j->rows, (size_t)j->in);
    size_t o0 = (size_t)(task % j->col_blocks) * j->cols, o1 = zmin(o0 + j->cols, (size_t)j->out_n);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(i1 - i0), (int)(o1 - o0), j->n, 1.0f,
                j->x + i0, j->in, j->dy + o0, j->out_n, j->beta,
                j->out + i0 * (size_t)j->out_n + o0, j->out_n);
}

/* Splits the weight rows: tiles of about DENSE_TILE floats, at least DENSE_MIN_ROWS rows. */
static int dense_row_tasks(dense_job *j, size_t cols)
{
    double macs = (double)j->n * j->in * j->out_n;
    size_t max_rows = DENSE_TILE / cols;
    if (max_rows < DENSE_MIN_ROWS) max_rows = DENSE_MIN_ROWS;
    return cpu_split_rows(&j->rows, (size_t)j->in, max_rows, 16, macs);
}

/* dx: [n, in] (=, or +=) <- dy: [n, out], w: [in, out] */
void cpu_dense_bwd_data(float *dx, const float *dy, const float *w, int n, int in, int out,
                        nn_accum mode)
{
    if (n <= 0 || in <= 0) return;
    if (out <= 0) {
        if (mode == NN_OVERWRITE) memset(dx, 0, (size_t)n * in * sizeof(float));
        return;
    }
    dense_job j = {.out = dx, .dy = dy, .w = w, .n = n, .in = in, .out_n = out};
    j.beta = mode == NN_ACCUMULATE ? 1.0f : 0.0f;
    cpu_pool_run(dense_data_task, &j, dense_row_tasks(&j, (size_t)out));
}

/* dw: [in, out], db: [out] or NULL (=, or +=) <- dy: [n, out], x: [n, in] */
void cpu_dense_bwd_filter(float *dw, float *db, const float *dy, const float *x, int n, int in,
                          int out, nn_accum mode)
{
    if (out <= 0) return;
    if (db) cpu_colsum(db, dy, n > 0 ? (size_t)n : 0, (size_t)out, mode);
    if (in <= 0) return;
    if (n <= 0) {
        if (mode == NN_OVERWRITE) memset(dw, 0, (size_t)in * out * sizeof(float));
        return;
    }
    dense_job j = {.out = dw, .dy = dy, .x = x, .n = n, .in = in, .out_n = out};
    j.beta = mode == NN_ACCUMULATE ? 1.0f : 0.0f;
    j.cols = zmin((size_t)out, DENSE_COLS);
    j.col_blocks = (int)ceil_div((size_t)out, j.cols);
    int row_tasks = dense_row_tasks(&j, j.cols);
    cpu_pool_run(dense_filter_task, &j, row_tasks * j.col_blocks);
}
