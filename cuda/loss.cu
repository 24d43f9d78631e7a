/* loss.cu: the loss terms on the GPU with their gradients: MAE, MSE and SSIM (11x11 Gaussian,
 * sigma 1.5, valid positions, as tf.image.ssim), each optionally on pred and target times a
 * mask. SSIM runs as four passes over maps in scratch: the horizontal Gaussian of x, y,
 * x^2 + y^2 and xy; the vertical one with the SSIM map S and its derivatives a, b, c; then the
 * transposed filter G^T over a, b, c, vertically and horizontally, combined into the gradient.
 * Sums end in per-block partials added in a fixed order. Semantics and the formulas: cpu_loss in
 * core/nn/cpu_train.c. */
#include <math.h>

#include "common.cuh"

#define SSIM_K 11
#define SSIM_SIGMA 1.5
#define SSIM_C1 1e-4f
#define SSIM_C2 9e-4f
#define LOSS_BLOCKS 1024 /* reduction blocks at most (grid-stride beyond) */

typedef struct gauss11 {
    float g[SSIM_K];
} gauss11;

static unsigned loss_blocks(size_t n)
{
    unsigned b = cu_blocks(n, CU_THREADS);
    return b < LOSS_BLOCKS ? b : LOSS_BLOCKS;
}

/* ---- MAE / MSE ------------------------------------------------------------------------------ */

static __global__ void elem_loss_kernel(float *partial, float *dp, const float *p, const float *t,
                                        const float *m, size_t n, int c, int mse, float coef)
{
    float s = 0.0f;
    CU_FOR(i, n)
    {
        const float mk = m ? m[i / (size_t)c] : 1.0f;
        float d = p[i] * mk - t[i] * mk;
        if (mse) {
            s += d * d;
            dp[i] += coef * 2.0f * d * mk;
        } else {
            s += fabsf(d);
            dp[i] += coef * (float)((d > 0.0f) - (d < 0.0f)) * mk; /* TF: sign(0) = 0 */
        }
    }
    s = cu_block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* ---- SSIM ----------------------------------------------------------------------------------- */

typedef struct ssim_geo {
    int n, h, w, c, oh, ow;
} ssim_geo;

/* hm[q][img][r][ox][ch], q = x, y, x^2 + y^2, xy: the horizontal 'valid' pass */
static __global__ void ssim_hpass(float *hm, const float *p, const float *t, const float *m,
                                  ssim_geo g, gauss11 gk)
{
    const size_t total = (size_t)g.n * g.h * g.ow * g.c;
    CU_FOR(i, total)
    {
        size_t u = i;
        int ch = (int)(u % (size_t)g.c);
        u /= (size_t)g.c;
        int ox = (int)(u % (size_t)g.ow);
        size_t row = u / (size_t)g.ow; /* img * h + r */
        float sx = 0.0f, sy = 0.0f, s2 = 0.0f, sxy = 0.0f;
        for (int k = 0; k < SSIM_K; k++) {
            size_t px = row * g.w + ox + k;
            float mk = m ? m[px] : 1.0f;
            float xv = p[px * g.c + ch] * mk, yv = t[px * g.c + ch] * mk;
            sx += gk.g[k] * xv;
            sy += gk.g[k] * yv;
            s2 += gk.g[k] * (xv * xv + yv * yv);
            sxy += gk.g[k] * (xv * yv);
        }
        hm[i] = sx, hm[total + i] = sy, hm[2 * total + i] = s2, hm[3 * total + i] = sxy;
    }
}

/* The vertical pass, S and its derivatives a = dS/dmx, b = 2 dS/de2, c = dS/dexy into
 * am[q][img][oy][ox][ch]; the block's sum of S into partial[blockIdx.x]. */
static __global__ void ssim_vpass(float *am, float *partial, const float *hm, ssim_geo g,
                                  gauss11 gk)
{
    const size_t htotal = (size_t)g.n * g.h * g.ow * g.c;
    const size_t total = (size_t)g.n * g.oh * g.ow * g.c;
    const size_t hrow = (size_t)g.ow * g.c;
    float ssum = 0.0f;
    CU_FOR(i, total)
    {
        size_t u = i;
        size_t col = u % hrow; /* ox * c + ch */
        u /= hrow;
        int oy = (int)(u % (size_t)g.oh);
        size_t img = u / (size_t)g.oh;
        size_t h0 = (img * g.h + oy) * hrow + col;
        float v[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int k = 0; k < SSIM_K; k++)
            for (int q = 0; q < 4; q++) v[q] += gk.g[k] * hm[q * htotal + h0 + (size_t)k * hrow];
        const float mx = v[0], my = v[1], e2 = v[2], exy = v[3];
        const float c1 = SSIM_C1, c2 = SSIM_C2;
        float mxy = mx * my, mm = mx * mx + my * my;
        float ib1 = 1.0f / (mm + c1), ib2 = 1.0f / (e2 - mm + c2);
        float l = (2.0f * mxy + c1) * ib1, cs = (2.0f * exy - 2.0f * mxy + c2) * ib2;
        am[i] = 2.0f * ((my - l * mx) * ib1 * cs + l * (cs * mx - my) * ib2);
        am[total + i] = -2.0f * l * cs * ib2;
        am[2 * total + i] = 2.0f * l * ib2;
        ssum += l * cs;
    }
    ssum = cu_block_sum(ssum);
    if (threadIdx.x == 0) partial[blockIdx.x] = ssum;
}

/* va[q][img][p][ox][ch] = sum_k g[k] am[q][img][p - k][ox][ch] (zero outside 0..oh-1) */
static __global__ void ssim_gt_vertical(float *va, const float *am, ssim_geo g, gauss11 gk)
{
    const size_t atotal = (size_t)g.n * g.oh * g.ow * g.c;
    const size_t total = (size_t)g.n * g.h * g.ow * g.c;
    const size_t row = (size_t)g.ow * g.c;
    CU_FOR(i, total)
    {
        size_t col = i % row, u = i / row;
        int p = (int)(u % (size_t)g.h);
        size_t img = u / (size_t)g.h;
        float s[3] = {0.0f, 0.0f, 0.0f};
        for (int k = 0; k < SSIM_K; k++) {
            int oy = p - k;
            if (oy < 0 || oy >= g.oh) continue;
            size_t a = (img * g.oh + oy) * row + col;
            for (int q = 0; q < 3; q++) s[q] += gk.g[k] * am[q * atotal + a];
        }
        for (int q = 0; q < 3; q++) va[q * total + i] = s[q];
    }
}

/* dpred[img, p, xx, ch] += coef * (G^T a + x G^T b + y G^T c) * mask, the horizontal half of G^T
 * taken here from va */
static __global__ void ssim_grad(float *dp, const float *va, const float *p, const float *t,
                                 const float *m, ssim_geo g, gauss11 gk, float coef)
{
    const size_t vtotal = (size_t)g.n * g.h * g.ow * g.c;
    const size_t total = (size_t)g.n * g.h * g.w * g.c;
    CU_FOR(i, total)
    {
        size_t u = i;
        int ch = (int)(u % (size_t)g.c);
        u /= (size_t)g.c;
        int xx = (int)(u % (size_t)g.w);
        size_t row = u / (size_t)g.w; /* img * h + p */
        float s[3] = {0.0f, 0.0f, 0.0f};
        for (int k = 0; k < SSIM_K; k++) {
            int ox = xx - k;
            if (ox < 0 || ox >= g.ow) continue;
            size_t a = (row * g.ow + ox) * g.c + ch;
            for (int q = 0; q < 3; q++) s[q] += gk.g[k] * va[q * vtotal + a];
        }
        float mk = m ? m[u] : 1.0f;
        float xv = p[i] * mk, yv = t[i] * mk;
        dp[i] += coef * (s[0] + xv * s[1] + yv * s[2]) * mk;
    }
}

static gauss11 ssim_gaussian(void)
{
    gauss11 gk;
    double e[SSIM_K], sum = 0.0;
    for (int k = 0; k < SSIM_K; k++) {
        double d = k - (SSIM_K - 1) / 2.0;
        e[k] = exp(-d * d / (2.0 * SSIM_SIGMA * SSIM_SIGMA));
        sum += e[k];
    }
    for (int k = 0; k < SSIM_K; k++) gk.g[k] = (float)(e[k] / sum);
    return gk;
}

/* ---- the operation -------------------------------------------------------------------------- */

void cu_loss(float *dpred, float *loss, const nn_tensor *pred, const nn_tensor *target,
             const float *mask, nn_loss_kind kind, float weight)
{
    VS_CHECK(kind == NN_LOSS_MAE || kind == NN_LOSS_MSE || kind == NN_LOSS_SSIM);
    VS_CHECK(pred->dt == NN_F32 && target->dt == NN_F32); /* the loss is fp32 always */
    VS_CHECK(pred->n == target->n && pred->h == target->h && pred->w == target->w &&
             pred->c == target->c);
    const size_t numel = nn_numel(pred);
    if (numel == 0) return;
    if (kind != NN_LOSS_SSIM) {
        unsigned nb = loss_blocks(numel);
        float *partial = (float *)cu_scratch(CU_SCR_PARTIAL, nb * sizeof(float));
        float coef = (float)((double)weight / (double)numel);
        elem_loss_kernel<<<nb, CU_THREADS, 0, cu_ctx.stream>>>(
            partial, dpred, pred->d, target->d, mask, numel, pred->c, kind == NN_LOSS_MSE, coef);
        KERNEL_CHECK();
        cu_sum_partials(loss, partial, (int)nb, 0.0, (double)weight / (double)numel);
        return;
    }
    VS_CHECK(pred->h >= SSIM_K && pred->w >= SSIM_K);
    ssim_geo g = {
        pred->n, pred->h, pred->w, pred->c, pred->h - (SSIM_K - 1), pred->w - (SSIM_K - 1)};
    const gauss11 gk = ssim_gaussian();
    const size_t hsz = (size_t)g.n * g.h * g.ow * g.c, asz = (size_t)g.n * g.oh * g.ow * g.c;
    /* hm (4 maps) and then va (3 maps) share the first part; am (3 maps) follows */
    float *hm = (float *)cu_scratch(CU_SCR_LOSS, (4 * hsz + 3 * asz) * sizeof(float));
    float *am = hm + 4 * hsz, *va = hm;
    const double norm = (double)asz;
    unsigned nb = loss_blocks(asz);
    float *partial = (float *)cu_scratch(CU_SCR_PARTIAL, nb * sizeof(float));
    ssim_hpass<<<cu_blocks(hsz, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(hm, pred->d, target->d,
                                                                             mask, g, gk);
    KERNEL_CHECK();
    ssim_vpass<<<nb, CU_THREADS, 0, cu_ctx.stream>>>(am, partial, hm, g, gk);
    KERNEL_CHECK();
    cu_sum_partials(loss, partial, (int)nb, (double)weight, -(double)weight / norm);
    ssim_gt_vertical<<<cu_blocks(hsz, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(va, am, g, gk);
    KERNEL_CHECK();
    const size_t total = nn_numel(pred);
    ssim_grad<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        dpred, va, pred->d, target->d, mask, g, gk, (float)(-(double)weight / norm));
    KERNEL_CHECK();
}
