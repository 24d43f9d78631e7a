/* image.cu: the CUDA backend's image kernels, twins of core/nn/cpu_image.c: residualDown's padded
 * add, the face networks' input crops (TF's bilinear resize of a zero-padded square, normalised)
 * and the affine crops of aligned faces (img_warp_affine, borders replicated), one thread per
 * output pixel, and page-locked host memory. The arithmetic is the CPU's operation for operation,
 * each multiply and add rounded apart (__dmul_rn, __fadd_rn ...: nvcc would otherwise fuse them
 * into FMAs, which gcc does not do under -std=c11), so the results match it bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

extern "C" {
#include "nn/cpu_image.h"
}

#define CROP_MAX_SIZE 1024 /* largest network input side, as cpu_image.c */

/* ---- add_padded ------------------------------------------------------------------------------ */

/* element (s, i, j, c) of t: [n, th, tw, tc], or 0 outside it */
static __device__ __forceinline__ float padded_at(const float *t, int th, int tw, int tc, size_t s,
                                                  int i, int j, int c)
{
    if (i >= th || j >= tw || c >= tc) return 0.0f;
    return t[((s * (size_t)th + (size_t)i) * (size_t)tw + (size_t)j) * (size_t)tc + (size_t)c];
}

/* y: [n, h, w, c] = act(a' + b'), a: [n, ah, aw, ac], b: [n, bh, bw, bc] */
static __global__ void add_padded_kernel(float *y, const float *a, const float *b, size_t total,
                                         int h, int w, int c, int ah, int aw, int ac, int bh,
                                         int bw, int bc, nn_act act, float alpha)
{
    CU_FOR(idx, total)
    {
        size_t s;
        int i, j, ch;
        cu_unravel(idx, h, w, c, &s, &i, &j, &ch);
        float v =
            __fadd_rn(padded_at(a, ah, aw, ac, s, i, j, ch), padded_at(b, bh, bw, bc, s, i, j, ch));
        y[idx] = cu_act(v, act, alpha);
    }
}

void cu_add_padded(nn_tensor *y, const nn_tensor *a, const nn_tensor *b, nn_act act, float alpha)
{
    VS_CHECK(y->dt == NN_F32 && a->dt == NN_F32 && b->dt == NN_F32);
    VS_CHECK(a->n == y->n && b->n == y->n);
    VS_CHECK(a->h <= y->h && a->w <= y->w && a->c <= y->c);
    VS_CHECK(b->h <= y->h && b->w <= y->w && b->c <= y->c);
    size_t total = nn_numel(y);
    if (total == 0) return;
    add_padded_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        y->d, a->d, b->d, total, y->h, y->w, y->c, a->h, a->w, a->c, b->h, b->w, b->c, act, alpha);
    KERNEL_CHECK();
}

/* ---- host arrays of descriptors into device memory ------------------------------------------- */

/* `bytes` of descriptors into the image kernels' scratch, on the stream, from `staged`: pageable
 * memory of ours (malloc'd, freed here). A copy from pageable memory returns once its source has
 * been staged, so the caller's array may change at once; one the caller got from host_alloc
 * (page-locked) would still be read after the call returns, hence our own copy. The kernel that
 * reads the scratch follows on the same stream, and so does the next call's copy into it. */
static void *descriptors_to_device(void *staged, size_t bytes)
{
    void *d = cu_scratch(CU_SCR_IMAGE, bytes);
    CUDA_CHECK(cudaMemcpyAsync(d, staged, bytes, cudaMemcpyHostToDevice, cu_ctx.stream));
    free(staged);
    return d;
}

/* ---- crop_resize ----------------------------------------------------------------------------- */

/* One crop as the kernel reads it: nn_crop with its square worked out on the host. */
typedef struct crop_job {
    const uint8_t *px; /* the crop's top-left pixel */
    size_t stride;     /* bytes per image row */
    double scale;      /* side / size, as resize_taps computes it */
    int w, h, side, off_x, off_y;
    float mean[3], div, sub;
} crop_job;

/* Output row or column i's source cells in the crop (-1: outside it, a zero) and the weight of
 * the second: resize_taps of cpu_image.c for one i. */
static __device__ __forceinline__ void crop_tap(int *lo, int *hi, double *frac, int i, double scale,
                                                int side, int off, int len)
{
    double src = __dmul_rn(scale, (double)i);
    double fl = floor(src);
    int l = (int)fl, h = (int)ceil(src);
    if (h > side - 1) h = side - 1;
    *frac = __dsub_rn(src, fl);
    l -= off, h -= off;
    *lo = l >= 0 && l < len ? l : -1;
    *hi = h >= 0 && h < len ? h : -1;
}

/* y: [n, size, size, 3], one thread per output pixel */
static __global__ void crop_kernel(float *y, const crop_job *jobs, int size, size_t total)
{
    CU_FOR(i, total)
    {
        const int ox = (int)(i % (size_t)size);
        const int oy = (int)(i / (size_t)size % (size_t)size);
        const crop_job *j = &jobs[i / ((size_t)size * (size_t)size)];
        int x0, x1, y0, y1;
        double fx, fy;
        crop_tap(&x0, &x1, &fx, ox, j->scale, j->side, j->off_x, j->w);
        crop_tap(&y0, &y1, &fy, oy, j->scale, j->side, j->off_y, j->h);
        const uint8_t *row0 = y0 >= 0 ? j->px + (size_t)y0 * j->stride : NULL;
        const uint8_t *row1 = y1 >= 0 ? j->px + (size_t)y1 * j->stride : NULL;
        float *out = y + i * 3;
        for (int c = 0; c < 3; c++) {
            int tl = row0 && x0 >= 0 ? row0[x0 * 3 + c] : 0;
            int tr = row0 && x1 >= 0 ? row0[x1 * 3 + c] : 0;
            int bl = row1 && x0 >= 0 ? row1[x0 * 3 + c] : 0;
            int br = row1 && x1 >= 0 ? row1[x1 * 3 + c] : 0;
            double top = __dadd_rn((double)tl, __dmul_rn((double)(tr - tl), fx));
            double bot = __dadd_rn((double)bl, __dmul_rn((double)(br - bl), fx));
            float v = __double2float_rn(__dadd_rn(top, __dmul_rn(__dsub_rn(bot, top), fy)));
            out[c] = __fsub_rn(__fdiv_rn(__fsub_rn(v, j->mean[c]), j->div), j->sub);
        }
    }
}

void cu_crop_resize(nn_tensor *y, const nn_crop *crops)
{
    VS_CHECK(y->dt == NN_F32 && y->c == 3 && y->h == y->w);
    if (y->n == 0) return;
    const int size = y->h;
    VS_CHECK(size > 0 && size <= CROP_MAX_SIZE);
    crop_job *jobs = (crop_job *)vs_malloc((size_t)y->n * sizeof *jobs);
    for (int k = 0; k < y->n; k++) {
        const nn_crop *r = &crops[k];
        VS_CHECK(r->x >= 0 && r->y >= 0 && r->w > 0 && r->h > 0);
        VS_CHECK(r->x + r->w <= r->iw && r->y + r->h <= r->ih);
        crop_job *j = &jobs[k];
        nn_crop_square(&j->side, &j->off_x, &j->off_y, r->w, r->h, r->centre);
        j->stride = (size_t)r->iw * 3;
        j->px = r->px + (size_t)r->y * j->stride + (size_t)r->x * 3;
        j->scale = (double)j->side / size;
        j->w = r->w, j->h = r->h;
        for (int c = 0; c < 3; c++) j->mean[c] = r->mean[c];
        j->div = r->div, j->sub = r->sub;
    }
    const crop_job *dj = (const crop_job *)descriptors_to_device(jobs, (size_t)y->n * sizeof *jobs);
    const size_t total = (size_t)y->n * (size_t)size * (size_t)size;
    crop_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(y->d, dj, size,
                                                                                total);
    KERNEL_CHECK();
}

/* ---- warp ------------------------------------------------------------------------------------ */

/* image_pixels.c's clamp_u8 */
static __device__ __forceinline__ uint8_t warp_clamp_u8(float v)
{
    return v <= 0.f ? 0 : v >= 255.f ? 255 : (uint8_t)(int)__fadd_rn(v, 0.5f);
}

/* dst: n images [size, size, 3], one thread per output pixel: img_warp_affine with
 * IMG_BORDER_REPLICATE, step for step */
static __global__ void warp_kernel(uint8_t *dst, const nn_warp *ws, int size, size_t total)
{
    CU_FOR(i, total)
    {
        const int x = (int)(i % (size_t)size);
        const int y = (int)(i / (size_t)size % (size_t)size);
        const nn_warp *w = &ws[i / ((size_t)size * (size_t)size)];
        const int sw = w->iw, sh = w->ih;
        const double *m = w->m;
        double sx =
            __dadd_rn(__dadd_rn(__dmul_rn(m[0], (double)x), __dmul_rn(m[1], (double)y)), m[2]);
        double sy =
            __dadd_rn(__dadd_rn(__dmul_rn(m[3], (double)x), __dmul_rn(m[4], (double)y)), m[5]);
        /* far-away positions brought near the image; fmax drops a NaN, as C's does */
        sx = fmin(fmax(sx, -1.0), (double)sw);
        sy = fmin(fmax(sy, -1.0), (double)sh);
        const double fx0 = floor(sx), fy0 = floor(sy);
        const int x0 = (int)fx0, y0 = (int)fy0;
        const float ax = __double2float_rn(__dsub_rn(sx, fx0));
        const float ay = __double2float_rn(__dsub_rn(sy, fy0));
        const float bx = __fsub_rn(1.0f, ax), by = __fsub_rn(1.0f, ay);
        const float wt[4] = {__fmul_rn(bx, by), __fmul_rn(ax, by), __fmul_rn(bx, ay),
                             __fmul_rn(ax, ay)};
        const uint8_t *p[4];
        for (int k = 0; k < 4; k++) {
            /* replicated edges: clamping leaves an index inside the image as it is, so it can
             * run for every corner (the CPU skips it when all four are inside) */
            int xi = x0 + (k & 1), yi = y0 + (k >> 1);
            xi = xi < 0 ? 0 : xi >= sw ? sw - 1 : xi;
            yi = yi < 0 ? 0 : yi >= sh ? sh - 1 : yi;
            p[k] = w->px + ((size_t)yi * (size_t)sw + (size_t)xi) * 3;
        }
        uint8_t *o = dst + i * 3;
        for (int ch = 0; ch < 3; ch++) {
            float v = 0.f;
            for (int k = 0; k < 4; k++) v = __fadd_rn(v, __fmul_rn(wt[k], (float)p[k][ch]));
            o[ch] = warp_clamp_u8(v);
        }
    }
}

void cu_warp(uint8_t *dst, const nn_warp *w, int n, int size)
{
    VS_CHECK(n >= 0 && size >= 0);
    if (n == 0 || size == 0) return;
    for (int k = 0; k < n; k++) VS_CHECK(w[k].px && w[k].iw > 0 && w[k].ih > 0);
    nn_warp *staged = (nn_warp *)vs_malloc((size_t)n * sizeof *w);
    memcpy(staged, w, (size_t)n * sizeof *w);
    const nn_warp *dw = (const nn_warp *)descriptors_to_device(staged, (size_t)n * sizeof *w);
    const size_t total = (size_t)n * (size_t)size * (size_t)size;
    warp_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(dst, dw, size,
                                                                                total);
    KERNEL_CHECK();
}

/* ---- conversion: 8-bit to [0, 1], blending a face back ----------------------------------------
 */

static __global__ void from_u8_kernel(float *y, const uint8_t *x, float div, size_t n)
{
    CU_FOR(i, n) y[i] = __fdiv_rn((float)x[i], div);
}

void cu_from_u8(nn_tensor *y, const uint8_t *x, float div)
{
    VS_CHECK(y->dt == NN_F32);
    size_t n = nn_numel(y);
    if (n == 0) return;
    from_u8_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(y->d, x, div, n);
    KERNEL_CHECK();
}

/* cpu_image.c's blend, step for step: the same operations in the same order, each rounded apart */

static __device__ __forceinline__ float blend_clamp01(float v)
{
    return v > 0.f ? (v < 1.f ? v : 1.f) : 0.f; /* a NaN goes to 0 */
}

/* bilinear sample of plane p [size, size] (stride `step` floats, offset `off`) at (u, v); outside
 * the crop zero (zero_out) or the nearest edge value */
static __device__ float blend_sample(const float *p, int size, int step, int off, double u,
                                     double v, int zero_out)
{
    if (zero_out && (u <= -1 || v <= -1 || u >= size || v >= size)) return 0.f;
    int x0 = (int)floor(u), y0 = (int)floor(v);
    double fx = __dsub_rn(u, (double)x0), fy = __dsub_rn(v, (double)y0);
    float acc = 0.f;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int x = x0 + i, y = y0 + j;
            double wgt = __dmul_rn(i ? fx : __dsub_rn(1.0, fx), j ? fy : __dsub_rn(1.0, fy));
            if (x < 0 || y < 0 || x >= size || y >= size) {
                if (zero_out) continue;
                x = x < 0 ? 0 : x >= size ? size - 1 : x;
                y = y < 0 ? 0 : y >= size ? size - 1 : y;
            }
            acc = __fadd_rn(
                acc, __fmul_rn(__double2float_rn(wgt), p[((size_t)y * size + x) * step + off]));
        }
    return acc;
}

/* Keys' cubic (a = -0.5) weights of the four taps around fraction t */
static __device__ void blend_cubic_weights(float w[4], double t)
{
    const double a = -0.5;
    for (int i = 0; i < 4; i++) {
        double x = fabs(__dsub_rn(t, (double)(i - 1)));
        double r;
        if (x <= 1)
            r = __dadd_rn(__dmul_rn(__dmul_rn(__dsub_rn(__dmul_rn(a + 2, x), a + 3), x), x), 1.0);
        else if (x < 2)
            r = __dsub_rn(
                __dmul_rn(__dadd_rn(__dmul_rn(__dsub_rn(__dmul_rn(a, x), 5 * a), x), 8 * a), x),
                4 * a);
        else
            r = 0;
        w[i] = __double2float_rn(r);
    }
}

static __device__ float blend_sample_cubic(const float *p, int size, int c, double u, double v)
{
    int x0 = (int)floor(u), y0 = (int)floor(v);
    float wx[4], wy[4], acc = 0.f;
    blend_cubic_weights(wx, __dsub_rn(u, (double)x0));
    blend_cubic_weights(wy, __dsub_rn(v, (double)y0));
    for (int j = 0; j < 4; j++) {
        int y = y0 - 1 + j;
        y = y < 0 ? 0 : y >= size ? size - 1 : y;
        for (int i = 0; i < 4; i++) {
            int x = x0 - 1 + i;
            x = x < 0 ? 0 : x >= size ? size - 1 : x;
            acc = __fadd_rn(acc,
                            __fmul_rn(__fmul_rn(wx[i], wy[j]), p[((size_t)y * size + x) * 3 + c]));
        }
    }
    return acc;
}

static __device__ float blend_sample_face(const float *face, int size, int c, double u, double v,
                                          double step)
{
    if (step <= 1.0) return blend_sample_cubic(face, size, c, u, v);
    int k = (int)ceil(step);
    if (k > 8) k = 8;
    float acc = 0.f;
    for (int j = 0; j < k; j++)
        for (int i = 0; i < k; i++) {
            double du = __dmul_rn(step, __dsub_rn(__ddiv_rn(i + 0.5, (double)k), 0.5));
            double dv = __dmul_rn(step, __dsub_rn(__ddiv_rn(j + 0.5, (double)k), 0.5));
            acc = __fadd_rn(acc,
                            blend_sample(face, size, 3, c, __dadd_rn(u, du), __dadd_rn(v, dv), 0));
        }
    return __fdiv_rn(acc, (float)(k * k));
}

/* one thread per pixel of the rectangle [x0, x1] x [y0, y1] */
static __global__ void blend_kernel(nn_blend b, size_t total)
{
    const int bw = b.x1 - b.x0 + 1;
    CU_FOR(i, total)
    {
        const int x = b.x0 + (int)(i % (size_t)bw), y = b.y0 + (int)(i / (size_t)bw);
        const double *m = b.m;
        double u =
            __dadd_rn(__dadd_rn(__dmul_rn(m[0], (double)x), __dmul_rn(m[1], (double)y)), m[2]);
        double v =
            __dadd_rn(__dadd_rn(__dmul_rn(m[3], (double)x), __dmul_rn(m[4], (double)y)), m[5]);
        float a = blend_sample(b.mask, b.size, 1, 0, u, v, 1);
        if (!(a > 0.f)) continue;
        if (a > 1.f) a = 1.f;
        uint8_t *px = b.px + ((size_t)y * b.iw + x) * 3;
        for (int c = 0; c < 3; c++) {
            float f =
                __fmul_rn(blend_clamp01(blend_sample_face(b.face, b.size, c, u, v, b.step)), 255.f);
            float o = __fadd_rn(
                __fadd_rn(__fmul_rn((float)px[c], __fsub_rn(1.f, a)), __fmul_rn(f, a)), 0.5f);
            px[c] = (uint8_t)(o < 0 ? 0 : o > 255 ? 255 : o);
        }
    }
}

void cu_blend(const nn_blend *b, int n)
{
    for (int i = 0; i < n; i++) {
        VS_CHECK(b[i].x0 >= 0 && b[i].y0 >= 0 && b[i].x1 < b[i].iw && b[i].y1 < b[i].ih);
        if (b[i].x1 < b[i].x0 || b[i].y1 < b[i].y0) continue;
        size_t total = (size_t)(b[i].x1 - b[i].x0 + 1) * (size_t)(b[i].y1 - b[i].y0 + 1);
        /* by value: the launch copies it, so nothing of the host's is read later */
        blend_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(b[i], total);
        KERNEL_CHECK();
    }
}

/* ---- page-locked host memory ----------------------------------------------------------------- */

void *cu_host_alloc(size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError(); /* cleared, or the next launch's check would report it */
        return NULL;
    }
    CUDA_CHECK(e);
    return p;
}

void cu_host_free(void *p)
{
    if (p) CUDA_CHECK(cudaFreeHost(p));
}
