/* cpu_train.c: the CPU backend's training operations other than the convolutions: activation
 * backward, pixel shuffle, the loss terms (MAE, MSE, SSIM, with their gradients), Adam, the
 * finiteness check and fill. Work is split over the cpu_pool workers in fixed pieces (chunks of
 * TR_CHUNK floats, or one image), and every reduction sums per-piece partials in piece order, so
 * results are the same for any thread count. Shapes and semantics as in backend.h. */
/* -O2's cheap vectoriser skips loops with a remainder */
#pragma GCC optimize("O3")

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../err.h"
#include "cpu_pool.h"
#include "cpu_train.h"

#define TR_CHUNK 32768 /* floats per element-wise task (as EW_CHUNK in cpu_backend.c) */

#define SSIM_K 11      /* Gaussian window side (tf.image.ssim's filter_size) */
#define SSIM_SIGMA 1.5 /* its filter_sigma */
#define SSIM_C1 1e-4f  /* (k1 * max_val)^2 with k1 = 0.01, max_val = 1 */
#define SSIM_C2 9e-4f  /* (k2 * max_val)^2 with k2 = 0.03 */
#define SSIM_MAPS 4    /* filtered maps: x, y, x^2 + y^2, x*y */
#define SSIM_GRADS 3   /* their gradients that reach x: d/dmu_x, d/dE[x^2+y^2], d/dE[xy] */

static int n_chunks(size_t n)
{
    return (int)((n + TR_CHUNK - 1) / TR_CHUNK);
}

/* [*i0, *i1): the elements of chunk `task` of n */
static void chunk_range(size_t *i0, size_t *i1, int task, size_t n)
{
    *i0 = (size_t)task * TR_CHUNK;
    *i1 = n - *i0 < TR_CHUNK ? n : *i0 + TR_CHUNK;
}

/* ---- activation backward ------------------------------------------------------------------- */

typedef struct act_job {
    float *dx;
    const float *dy, *y;
    size_t n;
    nn_act act;
    float alpha;
} act_job;

/* g = g * act'(x), from y = act(x): every act is monotonic, so y's sign or range gives the slope
 * (at a kink the slope is TF's: 0 for relu/relu6, alpha for leaky). */
CPU_CLONES static void act_bwd_span(float *restrict g, const float *restrict y, size_t n,
                                    nn_act act, float alpha)
{
    switch (act) {
    case NN_ACT_NONE: break;
    case NN_ACT_RELU:
        for (size_t i = 0; i < n; i++) g[i] = y[i] > 0.0f ? g[i] : 0.0f;
        break;
    case NN_ACT_RELU6:
        for (size_t i = 0; i < n; i++) g[i] = y[i] > 0.0f && y[i] < 6.0f ? g[i] : 0.0f;
        break;
    case NN_ACT_LEAKY:
        for (size_t i = 0; i < n; i++) g[i] = y[i] > 0.0f ? g[i] : alpha * g[i];
        break;
    case NN_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) g[i] *= y[i] * (1.0f - y[i]);
        break;
    }
}

static void act_bwd_task(void *ctx, int task, int worker)
{
    const act_job *j = ctx;
    size_t i0, i1;
    chunk_range(&i0, &i1, task, j->n);
    if (j->dx != j->dy) memcpy(j->dx + i0, j->dy + i0, (i1 - i0) * sizeof(float));
    act_bwd_span(j->dx + i0, j->y + i0, i1 - i0, j->act, j->alpha);
}

/* dx = dy * act'(.), all [n]; dx may alias dy (the same pointer, not a partial overlap) */
void cpu_act_bwd(float *dx, const float *dy, const float *y, size_t n, nn_act act, float alpha)
{
    VS_CHECK(act >= NN_ACT_NONE && act <= NN_ACT_SIGMOID);
    if (n == 0) return;
    act_job j = {.dx = dx, .dy = dy, .y = y, .n = n, .act = act, .alpha = alpha};
    cpu_pool_run(act_bwd_task, &j, n_chunks(n));
}

/* ---- pixel shuffle ------------------------------------------------------------------------- */

typedef enum shuffle_dir { SHUFFLE_TO_SPACE, SHUFFLE_TO_DEPTH } shuffle_dir;

typedef struct shuffle_job {
    float *space, *depth; /* space: [n, h*r, w*r, c]   depth: [n, h, w, r*r*c] */
    int h, w, c, r;
    size_t rows, rows_per_task; /* depth rows: n * h */
    shuffle_dir dir;
} shuffle_job;

/* space[n, yy*r+i, xx*r+j, :] <-> depth[n, yy, xx, (i*r+j)*c : (i*r+j+1)*c], for the depth rows of
 * one task (each depth row (n, yy) is r space rows) */
static void shuffle_task(void *ctx, int task, int worker)
{
    const shuffle_job *s = ctx;
    const int r = s->r, w = s->w;
    const size_t c = (size_t)s->c, bytes = c * sizeof(float);
    const size_t depth_row = (size_t)w * r * r * c, space_row = (size_t)w * r * c;
    size_t r0 = (size_t)task * s->rows_per_task;
    size_t r1 = r0 + s->rows_per_task < s->rows ? r0 + s->rows_per_task : s->rows;
    for (size_t row = r0; row < r1; row++) { /* row = n * h + yy */
        float *dep = s->depth + row * depth_row;
        float *spc = s->space + row * r * space_row; /* space row (n * h + yy) * r + 0 */
        for (int i = 0; i < r; i++)
            for (int xx = 0; xx < w; xx++)
                for (int jj = 0; jj < r; jj++) {
                    float *sp = spc + i * space_row + ((size_t)xx * r + jj) * c;
                    float *dp = dep + (size_t)xx * r * r * c + ((size_t)i * r + jj) * c;
                    if (s->dir == SHUFFLE_TO_SPACE)
                        memcpy(sp, dp, bytes);
                    else
                        memcpy(dp, sp, bytes);
                }
    }
}

static void shuffle(float *space, float *depth, int n, int h, int w, int c, int r, shuffle_dir dir)
{
    shuffle_job s = {
        .space = space,
        .depth = depth,
        .h = h,
        .w = w,
        .c = c,
        .r = r,
        .rows = (size_t)n * h,
        .dir = dir,
    };
    size_t row_floats = (size_t)w * r * r * c;
    if (s.rows == 0 || row_floats == 0) return;
    s.rows_per_task = TR_CHUNK / row_floats + 1;
    cpu_pool_run(shuffle_task, &s, (int)((s.rows + s.rows_per_task - 1) / s.rows_per_task));
}

/* y: [n, h*r, w*r, C]   x: [n, h, w, r*r*C] */
void cpu_depth_to_space(nn_tensor *y, const nn_tensor *x, int r)
{
    VS_CHECK(r >= 1);
    VS_CHECK(y->n == x->n && y->h == x->h * r && y->w == x->w * r && x->c == r * r * y->c);
    shuffle(y->d, x->d, x->n, x->h, x->w, y->c, r, SHUFFLE_TO_SPACE);
}

/* y: [n, h, w, r*r*C]   x: [n, h*r, w*r, C] */
void cpu_space_to_depth(nn_tensor *y, const nn_tensor *x, int r)
{
    VS_CHECK(r >= 1);
    VS_CHECK(y->n == x->n && x->h == y->h * r && x->w == y->w * r && y->c == r * r * x->c);
    shuffle(x->d, y->d, y->n, y->h, y->w, x->c, r, SHUFFLE_TO_DEPTH);
}

/* ---- loss ---------------------------------------------------------------------------------- */

typedef struct loss_job {
    float *dpred;           /* [n, h, w, c], accumulated into */
    const float *p, *t, *m; /* pred, target: [n, h, w, c]; mask: [n, h, w] or NULL */
    int n, h, w, c;
    size_t pix_per_task; /* MAE/MSE: pixels per task */
    nn_loss_kind kind;
    float coef;      /* factor of the per-element gradient (weight and the mean's 1/N) */
    float g[SSIM_K]; /* SSIM: the normalised 1-D Gaussian */
    double *part;    /* per task: MAE/MSE sum of |d| or d^2; SSIM the image's SSIM sum */
} loss_job;

/* MAE / MSE over the pixels of one task; d = p*m - t*m (Faceswap masks both before the loss) */
static void elem_loss_task(void *ctx, int task, int worker)
{
    const loss_job *j = ctx;
    const size_t c = (size_t)j->c, npix = (size_t)j->n * j->h * j->w;
    size_t p0 = (size_t)task * j->pix_per_task;
    size_t p1 = p0 + j->pix_per_task < npix ? p0 + j->pix_per_task : npix;
    const float *restrict p = j->p, *restrict t = j->t, *restrict m = j->m;
    float *restrict dp = j->dpred;
    const float coef = j->coef;
    double sum = 0.0;
    for (size_t px = p0; px < p1; px++) {
        const float mk = m ? m[px] : 1.0f;
        float s = 0.0f; /* at most c terms in float, then into the double */
        for (size_t i = px * c; i < (px + 1) * c; i++) {
            float d = p[i] * mk - t[i] * mk;
            if (j->kind == NN_LOSS_MAE) {
                s += fabsf(d);
                dp[i] += coef * (float)((d > 0.0f) - (d < 0.0f)) * mk; /* TF: sign(0) = 0 */
            } else {
                s += d * d;
                dp[i] += coef * 2.0f * d * mk;
            }
        }
        sum += s;
    }
    j->part[task] = sum;
}

/* out[i] = sum_k g[k] x[i + k step], i < n: one 11-tap pass of the separable Gaussian, taps
 * in registers (the k loop unrolls, the i loop vectorises). Horizontal passes step over the
 * interleaved channels (step C), vertical ones over ring rows (step: the slot size). */
static inline void gauss11(float *restrict out, const float *restrict x, size_t step,
                           const float *restrict g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float s = g[0] * x[i];
        for (int k = 1; k < SSIM_K; k++) s += g[k] * x[i + k * step];
        out[i] = s;
    }
}

static inline double row_sum(const float *restrict x, size_t n)
{
    float acc[8] = {0}; /* 8 lanes so it vectorises; each holds n / 8 terms at most */
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    double s = 0.0;
    for (; i < n; i++) s += x[i];
    for (int k = 0; k < 8; k++) s += acc[k];
    return s;
}

/* floats of one scratch row rounded up to 16 (64 bytes), so every row stays aligned */
static size_t pad16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* One SSIM task's rows, in its worker's scratch. Channels stay interleaved: a horizontal filter
 * steps by C floats, so both filter passes are contiguous loops over a row of w * C floats. The
 * two rings hold each row twice (slots i and i + 11), so the 11 rows of a window always sit at
 * one stride from slot (first row % 11), whatever row the ring has reached. */
typedef struct ssim_rows {
    size_t wc, owc, pad; /* floats in an input row, an output row, G^T's zero margin */
    size_t rw, ro, rb;   /* strides of those rows, rounded up to 64 bytes */
    float *mrow;         /* [wc] the mask of one row spread over its channels */
    float *prod;         /* [SSIM_MAPS][wc] x, y, x^2 + y^2, x y of one input row */
    float *hb;           /* [SSIM_GRADS][wc] G^T's horizontal pass */
    float *hring;        /* [2 SSIM_K][SSIM_MAPS][owc] horizontally filtered rows, slot r % 11 */
    float *v;            /* [SSIM_MAPS][owc] mx, my, e2, exy of one output row (then S) */
    float *aring;        /* [2 SSIM_K][SSIM_GRADS][owc] a, b, c of output rows, slot oy % 11 */
    float *vb;           /* [SSIM_GRADS][pad + owc + pad] G^T's vertical pass, zero margins */
} ssim_rows;

static size_t ssim_scratch_floats(const ssim_rows *s)
{
    return (1 + SSIM_MAPS + SSIM_GRADS) * s->rw +
           (2 * SSIM_K * SSIM_MAPS + SSIM_MAPS + 2 * SSIM_K * SSIM_GRADS) * s->ro +
           SSIM_GRADS * s->rb;
}

static void ssim_rows_init(ssim_rows *s, const loss_job *j, int worker)
{
    s->wc = (size_t)j->w * j->c;
    s->owc = (size_t)(j->w - (SSIM_K - 1)) * j->c;
    s->pad = (size_t)(SSIM_K - 1) * j->c;
    s->rw = pad16(s->wc), s->ro = pad16(s->owc), s->rb = pad16(s->owc + 2 * s->pad);
    float *f = cpu_pool_scratch(worker, ssim_scratch_floats(s) * sizeof(float));
    s->mrow = f, f += s->rw;
    s->prod = f, f += SSIM_MAPS * s->rw;
    s->hb = f, f += SSIM_GRADS * s->rw;
    s->hring = f, f += 2 * SSIM_K * SSIM_MAPS * s->ro;
    s->v = f, f += SSIM_MAPS * s->ro;
    s->aring = f, f += 2 * SSIM_K * SSIM_GRADS * s->ro;
    s->vb = f;
    /* output rows -10..-1 (before the image) are zeros for G^T's first rows */
    memset(s->aring, 0, 2 * SSIM_K * SSIM_GRADS * s->ro * sizeof(float));
    for (int q = 0; q < SSIM_GRADS; q++) {
        memset(s->vb + q * s->rb, 0, s->pad * sizeof(float));
        memset(s->vb + q * s->rb + s->pad + s->owc, 0, s->pad * sizeof(float));
    }
}

/* x = pred * mask, y = target * mask of row `row` of image `img` (mask spread into s->mrow) */
static void ssim_load_row(float *restrict x, float *restrict y, const ssim_rows *s,
                          const loss_job *j, int img, int row)
{
    const size_t off = ((size_t)img * j->h + row) * s->wc;
    const float *restrict p = j->p + off, *restrict t = j->t + off;
    if (!j->m) {
        memcpy(x, p, s->wc * sizeof(float));
        memcpy(y, t, s->wc * sizeof(float));
        return;
    }
    const float *m = j->m + ((size_t)img * j->h + row) * j->w;
    float *restrict mrow = s->mrow;
    for (int xx = 0; xx < j->w; xx++)
        for (int ch = 0; ch < j->c; ch++) mrow[(size_t)xx * j->c + ch] = m[xx];
    for (size_t i = 0; i < s->wc; i++) x[i] = p[i] * mrow[i], y[i] = t[i] * mrow[i];
}

/* Input row r: its four maps, filtered horizontally ('valid') into ring slots r % 11 (+ 11). */
static void ssim_hpass(const ssim_rows *s, const loss_job *j, int img, int r)
{
    const size_t rw = s->rw, ro = s->ro, slot_size = SSIM_MAPS * ro;
    float *restrict x = s->prod, *restrict y = x + rw, *restrict e2 = y + rw,
                    *restrict xy = e2 + rw;
    ssim_load_row(x, y, s, j, img, r);
    for (size_t i = 0; i < s->wc; i++) e2[i] = x[i] * x[i] + y[i] * y[i], xy[i] = x[i] * y[i];
    float *slot = s->hring + (size_t)(r % SSIM_K) * slot_size;
    for (int q = 0; q < SSIM_MAPS; q++)
        gauss11(slot + q * ro, s->prod + q * rw, (size_t)j->c, j->g, s->owc);
    memcpy(slot + SSIM_K * slot_size, slot, slot_size * sizeof(float));
}

/* Per position of an output row: S = l cs into exy (which it replaces) and its gradients
 * a = dS/dmx, b = 2 dS/de2, c = dS/dexy. */
static void ssim_map(float *restrict ga, float *restrict gb, float *restrict gc,
                     const float *restrict mx, const float *restrict my, const float *restrict e2,
                     float *restrict exy, size_t n)
{
    const float c1 = SSIM_C1, c2 = SSIM_C2;
    for (size_t i = 0; i < n; i++) {
        float mxy = mx[i] * my[i], mm = mx[i] * mx[i] + my[i] * my[i];
        float ib1 = 1.0f / (mm + c1), ib2 = 1.0f / (e2[i] - mm + c2);
        float l = (2.0f * mxy + c1) * ib1, cs = (2.0f * exy[i] - 2.0f * mxy + c2) * ib2;
        /* dl/dmx = 2 (my - l mx) / b1, dcs/dmx = 2 (cs mx - my) / b2 */
        ga[i] = 2.0f * ((my[i] - l * mx[i]) * ib1 * cs + l * (cs * mx[i] - my[i]) * ib2);
        gb[i] = -2.0f * l * cs * ib2; /* dS/de2 = -l cs / b2, times d(x^2)/dx = 2 x */
        gc[i] = 2.0f * l * ib2;       /* dS/dexy */
        exy[i] = l * cs;
    }
}

/* Output row oy (input rows oy..oy+10 are in the ring): the vertical pass, S per position and
 * channel, and a, b, c into ring slots oy % 11 (+ 11). Returns the row's sum of S. */
static double ssim_vpass(const ssim_rows *s, const loss_job *j, int oy)
{
    const size_t ro = s->ro, owc = s->owc, hslot = SSIM_MAPS * ro, aslot = SSIM_GRADS * ro;
    const float *first = s->hring + (size_t)(oy % SSIM_K) * hslot;
    for (int q = 0; q < SSIM_MAPS; q++) gauss11(s->v + q * ro, first + q * ro, hslot, j->g, owc);
    float *ga = s->aring + (size_t)(oy % SSIM_K) * aslot;
    ssim_map(ga, ga + ro, ga + 2 * ro, s->v, s->v + ro, s->v + 2 * ro, s->v + 3 * ro, owc);
    memcpy(ga + SSIM_K * aslot, ga, aslot * sizeof(float));
    return row_sum(s->v + 3 * ro, owc); /* S */
}

/* Input row p (a, b, c of output rows p-10..p are in the ring, zeros outside 0..oh-1): G^T of
 * a, b, c, then dpred += coef * (G^T a + x G^T b + y G^T c) * mask. G^T is the 'full'
 * correlation: sum_k g[k] a[p - k] = sum_k g[10 - k] a[p - 10 + k], and g is symmetric, so it is
 * the same 11-tap pass from row p - 10 (and from column xx - 10 in the zero-margined row). */
static void ssim_grad_row(const ssim_rows *s, const loss_job *j, int img, int p)
{
    const size_t ro = s->ro, rw = s->rw, wc = s->wc, aslot = SSIM_GRADS * ro;
    const float *first = s->aring + (size_t)((p + 1) % SSIM_K) * aslot; /* (p - 10) % 11 */
    for (int q = 0; q < SSIM_GRADS; q++) {
        float *vq = s->vb + q * s->rb;
        gauss11(vq + s->pad, first + q * ro, aslot, j->g, s->owc);
        gauss11(s->hb + q * rw, vq, (size_t)j->c, j->g, wc);
    }
    float *restrict x = s->prod, *restrict y = x + rw;
    ssim_load_row(x, y, s, j, img, p);
    const float *restrict ha = s->hb, *restrict hb = ha + rw, *restrict hc = hb + rw;
    const float *restrict mrow = s->mrow;
    float *restrict d = j->dpred + ((size_t)img * j->h + p) * wc;
    const float coef = j->coef;
    if (j->m)
        for (size_t i = 0; i < wc; i++)
            d[i] += coef * (ha[i] + x[i] * hb[i] + y[i] * hc[i]) * mrow[i];
    else
        for (size_t i = 0; i < wc; i++) d[i] += coef * (ha[i] + x[i] * hb[i] + y[i] * hc[i]);
}

/* SSIM of image `img`, forward and backward in one sweep down its rows. With x = pred * mask,
 * y = target * mask and G the 11x11 Gaussian ('valid'), per position and channel:
 *   mx = G*x, my = G*y, e2 = G*(x^2 + y^2), exy = G*(x y)
 *   l = (2 mx my + c1) / (mx^2 + my^2 + c1), cs = (2 exy - 2 mx my + c2) / (e2 - mx^2 - my^2 + c2)
 *   S = l cs   (tf.image.ssim's _ssim_helper, compensation 1)
 * and dS/dx(p) = (G^T a)(p) + x(p) (G^T b)(p) + y(p) (G^T c)(p) with a = dS/dmx, b = 2 dS/de2,
 * c = dS/dexy, G^T the transposed ('full') filter. Input row r goes through the horizontal pass
 * into a ring of 11 rows; from r = 10 on output row oy = r - 10 is complete, its S is summed and
 * its a, b, c go into a second ring; input row p needs those of output rows p-10..p, so its
 * gradient follows output row p (the last 10 rows' after the sweep, with zero rows past oh). */
static void ssim_task(void *ctx, int img, int worker)
{
    const loss_job *j = ctx;
    const int oh = j->h - (SSIM_K - 1);
    ssim_rows s;
    ssim_rows_init(&s, j, worker);
    double sum = 0.0;
    for (int r = 0; r < j->h; r++) {
        ssim_hpass(&s, j, img, r);
        int oy = r - (SSIM_K - 1);
        if (oy < 0) continue;
        sum += ssim_vpass(&s, j, oy);
        ssim_grad_row(&s, j, img, oy);
    }
    const size_t aslot = SSIM_GRADS * s.ro;
    for (int p = oh; p < j->h; p++) {
        float *slot = s.aring + (size_t)(p % SSIM_K) * aslot; /* output row p: none, zeros */
        memset(slot, 0, aslot * sizeof(float));
        memset(slot + SSIM_K * aslot, 0, aslot * sizeof(float));
        ssim_grad_row(&s, j, img, p);
    }
    j->part[img] = sum;
}

/* normalised 1-D Gaussian; tf's 2-D window softmax(-(i^2 + j^2) / (2 sigma^2)) is its outer
 * product with itself */
static void ssim_gaussian(float g[SSIM_K])
{
    double e[SSIM_K], sum = 0.0;
    for (int k = 0; k < SSIM_K; k++) {
        double d = k - (SSIM_K - 1) / 2.0;
        e[k] = exp(-d * d / (2.0 * SSIM_SIGMA * SSIM_SIGMA));
        sum += e[k];
    }
    for (int k = 0; k < SSIM_K; k++) g[k] = (float)(e[k] / sum);
}

/* pred, target, dpred: [n, h, w, c]; mask: [n, h, w] or NULL. *loss += weight * L,
 * dpred += weight * dL/dpred. */
void cpu_loss(float *dpred, float *loss, const nn_tensor *pred, const nn_tensor *target,
              const float *mask, nn_loss_kind kind, float weight)
{
    VS_CHECK(kind == NN_LOSS_MAE || kind == NN_LOSS_MSE || kind == NN_LOSS_SSIM);
    VS_CHECK(pred->n == target->n && pred->h == target->h && pred->w == target->w &&
             pred->c == target->c);
    loss_job j = {
        .dpred = dpred,
        .p = pred->d,
        .t = target->d,
        .m = mask,
        .n = pred->n,
        .h = pred->h,
        .w = pred->w,
        .c = pred->c,
        .kind = kind,
    };
    size_t numel = nn_numel(pred), npix = (size_t)j.n * j.h * j.w;
    if (numel == 0) return;
    int tasks;
    double norm; /* L = (sum of the partials) / norm, or 1 - that for SSIM */
    if (kind == NN_LOSS_SSIM) {
        VS_CHECK(j.h >= SSIM_K && j.w >= SSIM_K);
        ssim_gaussian(j.g);
        tasks = j.n;
        norm = (double)j.n * (j.h - (SSIM_K - 1)) * (j.w - (SSIM_K - 1)) * j.c;
        j.coef = (float)(-(double)weight / norm); /* d(1 - mean S)/dS */
    } else {
        j.pix_per_task = TR_CHUNK / (size_t)j.c + 1;
        tasks = (int)((npix + j.pix_per_task - 1) / j.pix_per_task);
        norm = (double)numel;
        j.coef = (float)((double)weight / norm);
    }
    j.part = vs_malloc((size_t)tasks * sizeof(double));
    cpu_pool_run(kind == NN_LOSS_SSIM ? ssim_task : elem_loss_task, &j, tasks);
    double sum = 0.0;
    for (int i = 0; i < tasks; i++) sum += j.part[i]; /* in order: the same for any thread count */
    free(j.part);
    double l = kind == NN_LOSS_SSIM ? 1.0 - sum / norm : sum / norm;
    *loss = (float)((double)*loss + (double)weight * l);
}

/* ---- Adam ---------------------------------------------------------------------------------- */

typedef struct adam_job {
    float *p, *m, *v;
    const float *g;
    size_t n;
    float lr_t, gmul, b1, b2, one_b1, one_b2, eps;
} adam_job;

static void adam_task(void *ctx, int task, int worker)
{
    const adam_job *j = ctx;
    size_t i0, i1;
    chunk_range(&i0, &i1, task, j->n);
    float *restrict p = j->p, *restrict m = j->m, *restrict v = j->v;
    const float *restrict g = j->g;
    const float lr_t = j->lr_t, b1 = j->b1, b2 = j->b2, one_b1 = j->one_b1, one_b2 = j->one_b2;
    const float eps = j->eps, gmul = j->gmul;
    for (size_t i = i0; i < i1; i++) { /* Keras's order of operations */
        float gi = g[i] * gmul;           /* exact for gmul 1 */
        float mi = b1 * m[i] + one_b1 * gi;
        float vi = b2 * v[i] + one_b2 * (gi * gi);
        m[i] = mi, v[i] = vi;
        p[i] -= lr_t * mi / (sqrtf(vi) + eps);
    }
}

float nn_adam_step_size(const nn_adam *h)
{
    VS_CHECK(h->t >= 1);
    double t = (double)h->t;
    return (float)(h->lr * sqrt(1.0 - pow(h->beta2, t)) / (1.0 - pow(h->beta1, t)));
}

/* p, m, v, g: [n], one step of size lr_t */
static void adam_run(float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h,
                     float lr_t, float gmul)
{
    if (n == 0) return;
    adam_job j = {
        .p = p,
        .m = m,
        .v = v,
        .g = g,
        .n = n,
        .lr_t = lr_t,
        .gmul = gmul,
        .b1 = h->beta1,
        .b2 = h->beta2,
        .one_b1 = 1.0f - h->beta1,
        .one_b2 = 1.0f - h->beta2,
        .eps = h->eps,
    };
    cpu_pool_run(adam_task, &j, n_chunks(n));
}

/* t >= 1 */
void cpu_adam(float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h)
{
    adam_run(p, m, v, g, n, h, nn_adam_step_size(h), 1.0f);
}

/* The same step with lr_t from ctl[0] and the gradients times ctl[2]; nothing done when ctl[1]
 * flags a non-finite loss, or (flagged here) gradient. */
void cpu_adam_ctl(float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h,
                  float *ctl)
{
    if (ctl[1] != 0.0f) return;
    if (!cpu_all_finite(g, n)) {
        ctl[1] = 1.0f;
        return;
    }
    adam_run(p, m, v, g, n, h, ctl[0], ctl[2]);
}

/* ---- finiteness, fill ---------------------------------------------------------------------- */

typedef struct finite_job {
    const float *x;
    size_t n;
    unsigned char *ok; /* per task */
} finite_job;

/* x * 0 is 0 for every finite x and NaN for NaN and +-Inf; 16 lanes so the sum vectorises */
static void finite_task(void *ctx, int task, int worker)
{
    const finite_job *j = ctx;
    size_t i0, i1;
    chunk_range(&i0, &i1, task, j->n);
    const float *restrict x = j->x;
    float acc[16] = {0};
    size_t i = i0;
    for (; i + 16 <= i1; i += 16)
        for (int k = 0; k < 16; k++) acc[k] += x[i + k] * 0.0f;
    for (; i < i1; i++) acc[0] += x[i] * 0.0f;
    float s = 0.0f;
    for (int k = 0; k < 16; k++) s += acc[k];
    j->ok[task] = s == 0.0f;
}

int cpu_all_finite(const float *x, size_t n)
{
    if (n == 0) return 1;
    int tasks = n_chunks(n);
    finite_job j = {.x = x, .n = n, .ok = vs_malloc((size_t)tasks)};
    cpu_pool_run(finite_task, &j, tasks);
    int ok = 1;
    for (int i = 0; i < tasks; i++) ok &= j.ok[i];
    free(j.ok);
    return ok;
}

void cpu_flag_nonfinite(float *flag, const float *x, size_t n)
{
    if (!cpu_all_finite(x, n)) *flag = 1.0f;
}

typedef struct fill_job {
    float *x;
    size_t n;
    float value;
} fill_job;

static void fill_task(void *ctx, int task, int worker)
{
    const fill_job *j = ctx;
    size_t i0, i1;
    chunk_range(&i0, &i1, task, j->n);
    float *restrict x = j->x;
    for (size_t i = i0; i < i1; i++) x[i] = j->value;
}

void cpu_fill(float *x, size_t n, float value)
{
    if (n == 0) return;
    fill_job j = {.x = x, .n = n, .value = value};
    cpu_pool_run(fill_task, &j, n_chunks(n));
}
