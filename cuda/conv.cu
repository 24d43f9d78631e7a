/* conv.cu: convolutions on the GPU. conv2d forward and both backward passes go to cuDNN with
 * NHWC tensors and kernels kept in cuDNN's NHWC filter layout ([cout, kh, kw, cin], the backend's
 * conv_layout: model.c converts on the way in and out). cuDNN pads symmetrically; the
 * TF "same" padding of a stride-2 layer puts the extra row and column at the bottom and right, so
 * those layers run on an explicitly zero-padded copy of the input. Each shape's descriptors and
 * the fastest deterministic algorithms are found once and kept. Depthwise convolution and
 * pooling are visage's own kernels. Semantics as core/nn/cpu_conv.c and cpu_conv_bwd.c. */
#include <string.h>

#include "common.cuh"

/* ---- explicit padding ----------------------------------------------------------------------- */

/* xp: [n, h + pt + pb, w + pl + pr, c] = x with a zero border */
static __global__ void pad_kernel(float *xp, const float *x, nn_dtype dt, int h, int w, int c,
                                  int ph, int pw, int pt, int pl, size_t total)
{
    CU_FOR(i, total)
    {
        size_t img;
        int py, px, ch;
        cu_unravel(i, ph, pw, c, &img, &py, &px, &ch);
        int iy = py - pt, ix = px - pl;
        cu_st(xp, dt, i,
              iy >= 0 && iy < h && ix >= 0 && ix < w
                  ? cu_ld(x, dt, ((img * h + iy) * w + ix) * (size_t)c + ch)
                  : 0.0f);
    }
}

/* dx (+)= the interior of dxp (the inverse of pad_kernel) */
static __global__ void crop_kernel(float *dx, const float *dxp, nn_dtype dt, int h, int w, int c,
                                   int ph, int pw, int pt, int pl, size_t total, int accumulate)
{
    CU_FOR(i, total)
    {
        size_t img;
        int iy, ix, ch;
        cu_unravel(i, h, w, c, &img, &iy, &ix, &ch);
        float v = cu_ld(dxp, dt, ((img * ph + iy + pt) * pw + ix + pl) * (size_t)c + ch);
        cu_st(dx, dt, i, accumulate ? cu_ld(dx, dt, i) + v : v);
    }
}

static int symmetric(const nn_conv_desc *d)
{
    return d->pad_t == d->pad_b && d->pad_l == d->pad_r;
}

/* x padded by d's margins into scratch `slot` (a view with the padded shape) */
static nn_tensor padded(const nn_tensor *x, const nn_conv_desc *d, cu_scratch_slot slot)
{
    nn_tensor p = {NULL, x->n, x->h + d->pad_t + d->pad_b, x->w + d->pad_l + d->pad_r, x->c, x->dt};
    p.d = (float *)cu_scratch(slot, nn_numel(&p) * nn_dtype_size(p.dt));
    return p;
}

static nn_tensor pad_input(const nn_tensor *x, const nn_conv_desc *d)
{
    nn_tensor p = padded(x, d, CU_SCR_PAD);
    size_t total = nn_numel(&p);
    if (total)
        pad_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
            p.d, x->d, x->dt, x->h, x->w, x->c, p.h, p.w, d->pad_t, d->pad_l, total);
    KERNEL_CHECK();
    return p;
}

/* ---- cuDNN plans ---------------------------------------------------------------------------- */

enum { PLAN_FWD, PLAN_BWD_DATA, PLAN_BWD_FILTER };

typedef struct conv_plan {
    int key[14];
    nn_dtype dt;
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int found[3];
    int algo[3];
    size_t ws[3];
    cudnnMathType_t math[3];
} conv_plan;

/* Every shape a process convolves, batch sizes included: a model's layers, and the face
 * networks' at each of their batch sizes (powers of two, facenet_input.c) */
#define MAX_PLANS 2048
static conv_plan plans[MAX_PLANS];
static int n_plans;
/* plans by the hash of their key: open addressing, 0 empty, else the plan's index + 1 */
#define PLAN_SLOTS (2 * MAX_PLANS)
static int plan_slot[PLAN_SLOTS];

static unsigned key_hash(const int *key, int n)
{
    unsigned h = 2166136261u;
    for (int i = 0; i < n; i++) h = (h ^ (unsigned)key[i]) * 16777619u;
    return h;
}
static nn_precision conv_prec = NN_PREC_FP32;
static int conv_deterministic = 1;

void nn_cuda_deterministic(int on)
{
    conv_deterministic = on;
}

void cu_conv_set_precision(nn_precision p)
{
    conv_prec = p;
}

/* x: [n, h, w, cin] (already padded when the padding is asymmetric), y: [n, oh, ow, cout], of one
 * element type */
static conv_plan *plan_for(const nn_tensor *x, const nn_tensor *y, const nn_conv_desc *d, int pad_h,
                           int pad_w)
{
    VS_CHECK(x->dt == y->dt);
    int key[14] = {x->n,
                   x->h,
                   x->w,
                   x->c,
                   y->c,
                   d->kh,
                   d->kw,
                   d->sh,
                   d->sw,
                   pad_h,
                   pad_w,
                   (int)conv_prec,
                   conv_deterministic,
                   (int)x->dt};
    unsigned at = key_hash(key, 14) % PLAN_SLOTS;
    for (; plan_slot[at]; at = (at + 1) % PLAN_SLOTS)
        if (memcmp(plans[plan_slot[at] - 1].key, key, sizeof key) == 0)
            return &plans[plan_slot[at] - 1];
    VS_CHECK(n_plans < MAX_PLANS);
    plan_slot[at] = n_plans + 1;
    conv_plan *p = &plans[n_plans++];
    memset(p, 0, sizeof *p);
    memcpy(p->key, key, sizeof key);
    p->dt = x->dt;
    const cudnnDataType_t t = x->dt == NN_BF16  ? CUDNN_DATA_BFLOAT16
                              : x->dt == NN_F16 ? CUDNN_DATA_HALF
                                                : CUDNN_DATA_FLOAT;
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->xd));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->yd));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->wd));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->cd));
    CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(p->xd, CUDNN_TENSOR_NHWC, t, x->n, x->c, x->h, x->w));
    CUDNN_CHECK(
        cudnnSetTensor4dDescriptor(p->yd, CUDNN_TENSOR_NHWC, t, y->n, y->c, y->h, y->w));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->wd, t, CUDNN_TENSOR_NHWC, y->c, x->c, d->kh, d->kw));
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->cd, pad_h, pad_w, d->sh, d->sw, 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    int oh = 0, ow = 0, on = 0, oc = 0;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->cd, p->xd, p->wd, &on, &oc, &oh, &ow));
    VS_CHECK(on == y->n && oc == y->c && oh == y->h && ow == y->w);
    return p;
}

/* One result of cudnnFind*, whichever pass it timed. */
typedef struct algo_perf {
    int algo;
    cudnnStatus_t status;
    size_t memory;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
} algo_perf;

/* Whether plan p's products must stay IEEE fp32 (fp32 tensors in FP32 precision). */
static int strict_fp32(const conv_plan *p)
{
    return p->dt == NN_F32 && conv_prec == NN_PREC_FP32;
}

/* The fastest result that ran, within the workspace cap, and, for strict fp32, does not round
 * through TF32; a deterministic one (the same answer every time, so captured and uncaptured steps
 * agree) when there is one. */
static int pick_algo(const conv_plan *p, const algo_perf *r, int n)
{
    for (int strict = conv_deterministic; strict >= 0; strict--)
        for (int i = 0; i < n; i++) {
            if (r[i].status != CUDNN_STATUS_SUCCESS || r[i].memory > NN_GPU_WORKSPACE_MAX) continue;
            if (strict && r[i].determinism != CUDNN_DETERMINISTIC) continue;
            if (strict_fp32(p) && r[i].math != CUDNN_FMA_MATH) continue;
            return i;
        }
    return -1;
}

/* Picks plan p's algorithm for `kind` once, by timing every candidate (cudnnFind*, which
 * allocates its own memory and so runs outside graph capture only). */
static void find_algo(conv_plan *p, int kind)
{
    if (p->found[kind]) return;
    cudaStreamCaptureStatus cap;
    CUDA_CHECK(cudaStreamIsCapturing(cu_ctx.stream, &cap));
    VS_CHECK(cap == cudaStreamCaptureStatusNone); /* a new shape inside a captured step */
    /* 16-bit tensors: tensor cores; fp32: TF32 allowed unless strict */
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd, strict_fp32(p)      ? CUDNN_FMA_MATH
                                                   : p->dt != NN_F32 ? CUDNN_TENSOR_OP_MATH
                                                                     : CUDNN_DEFAULT_MATH));
    CUDA_CHECK(cudaStreamSynchronize(cu_ctx.stream));
    enum { N = 16 };
    algo_perf r[N];
    int got = 0;
#define COPY_PERF(res)                                                                             \
    for (int i = 0; i < got; i++)                                                                  \
        r[i] = (algo_perf){(int)res[i].algo, res[i].status, res[i].memory, res[i].determinism,     \
                           res[i].mathType};
    if (kind == PLAN_FWD) {
        cudnnConvolutionFwdAlgoPerf_t res[N];
        CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(cu_ctx.cudnn, p->xd, p->wd, p->cd, p->yd,
                                                         N, &got, res));
        COPY_PERF(res);
    } else if (kind == PLAN_BWD_DATA) {
        cudnnConvolutionBwdDataAlgoPerf_t res[N];
        CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(cu_ctx.cudnn, p->wd, p->yd, p->cd,
                                                              p->xd, N, &got, res));
        COPY_PERF(res);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t res[N];
        CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(cu_ctx.cudnn, p->xd, p->yd, p->cd,
                                                                p->wd, N, &got, res));
        COPY_PERF(res);
    }
#undef COPY_PERF
    int pick = pick_algo(p, r, got);
    VS_CHECK(pick >= 0); /* cuDNN has no algorithm for this shape and precision */
    p->algo[kind] = r[pick].algo, p->ws[kind] = r[pick].memory, p->math[kind] = r[pick].math;
    p->found[kind] = 1;
    cu_scratch(CU_SCR_CUDNN, p->ws[kind]); /* sized now, outside any capture */
}

static char last_algo[40];

const char *cu_conv_last_algo(void)
{
    return last_algo;
}

static void *use_algo(conv_plan *p, int kind)
{
    find_algo(p, kind);
    static const char *math[] = {"default", "tensor-op", "tensor-op+conv", "fma"};
    const int mi = (int)p->math[kind];
    snprintf(last_algo, sizeof last_algo, "%s algo %d %s ws %zuM",
             p->dt == NN_F32 ? "fp32" : p->dt == NN_BF16 ? "bf16" : "fp16", p->algo[kind],
             mi >= 0 && mi < 4 ? math[mi] : "?", p->ws[kind] >> 20);
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->cd, p->math[kind]));
    return cu_scratch(CU_SCR_CUDNN, p->ws[kind]);
}

static void check_geometry(const nn_tensor *y, const nn_tensor *x, const nn_conv_desc *d)
{
    VS_CHECK(d->kh >= 1 && d->kw >= 1 && d->sh >= 1 && d->sw >= 1);
    VS_CHECK(y->n == x->n);
    VS_CHECK(y->h == (x->h + d->pad_t + d->pad_b - d->kh) / d->sh + 1);
    VS_CHECK(y->w == (x->w + d->pad_l + d->pad_r - d->kw) / d->sw + 1);
}

/* ---- conv2d --------------------------------------------------------------------------------- */

/* y: [n, oh, ow, cout] = act(conv(x, w) + b), or its pixel shuffle with d->shuffle > 1 (through
 * scratch of the convolution's shape) */
void cu_conv2d(nn_tensor *y_out, const nn_tensor *x, const float *w, const float *b,
               const nn_conv_desc *d)
{
    const int r = d->shuffle > 1 ? d->shuffle : 1;
    nn_tensor yc = {NULL, y_out->n, y_out->h / r, y_out->w / r, y_out->c * r * r, y_out->dt};
    VS_CHECK(yc.h * r == y_out->h && yc.w * r == y_out->w);
    yc.d = r > 1 ? (float *)cu_scratch(CU_SCR_CONV_OUT, nn_numel(&yc) * nn_dtype_size(yc.dt))
                 : y_out->d;
    nn_tensor *y = &yc;
    check_geometry(y, x, d);
    if (nn_numel(y) == 0) return;
    nn_tensor xin = symmetric(d) ? *x : pad_input(x, d);
    int ph = symmetric(d) ? d->pad_t : 0, pw = symmetric(d) ? d->pad_l : 0;
    conv_plan *p = plan_for(&xin, y, d, ph, pw);
    void *ws = use_algo(p, PLAN_FWD);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnConvolutionForward(cu_ctx.cudnn, &one, p->xd, xin.d, p->wd, w, p->cd,
                                        (cudnnConvolutionFwdAlgo_t)p->algo[PLAN_FWD], ws,
                                        p->ws[PLAN_FWD], &zero, p->yd, y->d));
    if (r > 1)
        cu_bias_act_shuffle(y_out, y, b, r, d->act, d->alpha);
    else
        cu_bias_act(y->d, y->dt, b, nn_numel(y) / (size_t)y->c, y->c, d->act, d->alpha);
}

/* dx: [n, h, w, cin] (+)= conv^T(dy, w) */
void cu_conv2d_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, const nn_conv_desc *d,
                        nn_accum mode)
{
    check_geometry(dy, dx, d);
    if (nn_numel(dx) == 0) return;
    const float one = 1.0f, zero = 0.0f;
    if (symmetric(d)) {
        conv_plan *p = plan_for(dx, dy, d, d->pad_t, d->pad_l);
        void *ws = use_algo(p, PLAN_BWD_DATA);
        CUDNN_CHECK(cudnnConvolutionBackwardData(
            cu_ctx.cudnn, &one, p->wd, w, p->yd, dy->d, p->cd,
            (cudnnConvolutionBwdDataAlgo_t)p->algo[PLAN_BWD_DATA], ws, p->ws[PLAN_BWD_DATA],
            mode == NN_ACCUMULATE ? &one : &zero, p->xd, dx->d));
        return;
    }
    nn_tensor dxp = padded(dx, d, CU_SCR_PAD_GRAD);
    conv_plan *p = plan_for(&dxp, dy, d, 0, 0);
    void *ws = use_algo(p, PLAN_BWD_DATA);
    CUDNN_CHECK(cudnnConvolutionBackwardData(cu_ctx.cudnn, &one, p->wd, w, p->yd, dy->d, p->cd,
                                             (cudnnConvolutionBwdDataAlgo_t)p->algo[PLAN_BWD_DATA],
                                             ws, p->ws[PLAN_BWD_DATA], &zero, p->xd, dxp.d));
    size_t total = nn_numel(dx);
    crop_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        dx->d, dxp.d, dx->dt, dx->h, dx->w, dx->c, dxp.h, dxp.w, d->pad_t, d->pad_l, total,
        mode == NN_ACCUMULATE);
    KERNEL_CHECK();
}

/* dw: [cout, kh, kw, cin] (+)= the weight gradient, db: [cout] (+)= the sum of dy, both in the
 * type of x and dy */
void cu_conv2d_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                          const nn_conv_desc *d, nn_accum mode)
{
    check_geometry(dy, x, d);
    const int k = d->kh * d->kw * x->c, cout = dy->c;
    if (db) cu_bias_grad(db, dy->d, dy->dt, nn_numel(dy) / (size_t)(cout ? cout : 1), cout, mode);
    if (nn_numel(dy) == 0 || nn_numel(x) == 0) {
        if (mode == NN_OVERWRITE) cu_zero(dw, x->dt, (size_t)k * cout);
        return;
    }
    nn_tensor xin = symmetric(d) ? *x : pad_input(x, d);
    int ph = symmetric(d) ? d->pad_t : 0, pw = symmetric(d) ? d->pad_l : 0;
    conv_plan *p = plan_for(&xin, dy, d, ph, pw);
    void *ws = use_algo(p, PLAN_BWD_FILTER);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        cu_ctx.cudnn, &one, p->xd, xin.d, p->yd, dy->d, p->cd,
        (cudnnConvolutionBwdFilterAlgo_t)p->algo[PLAN_BWD_FILTER], ws, p->ws[PLAN_BWD_FILTER],
        mode == NN_ACCUMULATE ? &one : &zero, p->wd, dw));
}

/* ---- depthwise (channel multiplier 1) ------------------------------------------------------- */

typedef struct dw_geo {
    int n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pl;
    nn_dtype dt; /* of the tensors, the weights and their gradients */
} dw_geo;

static dw_geo dw_geometry(const nn_tensor *y, const nn_tensor *x, const nn_conv_desc *d)
{
    check_geometry(y, x, d);
    VS_CHECK(y->c == x->c && y->dt == x->dt);
    return (dw_geo){x->n,  x->h,  x->w,  x->c,     y->h,     y->w, d->kh,
                    d->kw, d->sh, d->sw, d->pad_t, d->pad_l, x->dt};
}

static __global__ void dw_fwd_kernel(float *y, const float *x, const float *w, const float *b,
                                     dw_geo g, nn_act act, float alpha, size_t total)
{
    CU_FOR(i, total)
    {
        size_t img;
        int oy, ox, ch;
        cu_unravel(i, g.oh, g.ow, g.c, &img, &oy, &ox, &ch);
        float s = 0.0f;
        for (int ky = 0; ky < g.kh; ky++) {
            int iy = oy * g.sh - g.pt + ky;
            if (iy < 0 || iy >= g.h) continue;
            for (int kx = 0; kx < g.kw; kx++) {
                int ix = ox * g.sw - g.pl + kx;
                if (ix < 0 || ix >= g.w) continue;
                s += cu_ld(x, g.dt, ((img * g.h + iy) * g.w + ix) * (size_t)g.c + ch) *
                     cu_ld(w, g.dt, ((size_t)ky * g.kw + kx) * g.c + ch);
            }
        }
        if (b) s += b[ch];
        cu_st(y, g.dt, i, cu_act(s, act, alpha));
    }
}

void cu_depthwise(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                  const nn_conv_desc *d)
{
    dw_geo g = dw_geometry(y, x, d);
    size_t total = nn_numel(y);
    if (total == 0) return;
    dw_fwd_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        y->d, x->d, w, b, g, d->act, d->alpha, total);
    KERNEL_CHECK();
}

/* dx[n, iy, ix, c] (+)= sum over the taps whose window covers (iy, ix) of dy * w */
static __global__ void dw_bwd_data_kernel(float *dx, const float *dy, const float *w, dw_geo g,
                                          size_t total, int accumulate)
{
    CU_FOR(i, total)
    {
        size_t img;
        int iy, ix, ch;
        cu_unravel(i, g.h, g.w, g.c, &img, &iy, &ix, &ch);
        float s = 0.0f;
        for (int ky = 0; ky < g.kh; ky++) {
            int ny = iy + g.pt - ky; /* = oy * sh */
            if (ny < 0 || ny % g.sh) continue;
            int oy = ny / g.sh;
            if (oy >= g.oh) continue;
            for (int kx = 0; kx < g.kw; kx++) {
                int nx = ix + g.pl - kx;
                if (nx < 0 || nx % g.sw) continue;
                int ox = nx / g.sw;
                if (ox >= g.ow) continue;
                s += cu_ld(dy, g.dt, ((img * g.oh + oy) * g.ow + ox) * (size_t)g.c + ch) *
                     cu_ld(w, g.dt, ((size_t)ky * g.kw + kx) * g.c + ch);
            }
        }
        cu_st(dx, g.dt, i, accumulate ? cu_ld(dx, g.dt, i) + s : s);
    }
}

void cu_depthwise_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                           const nn_conv_desc *d, nn_accum mode)
{
    dw_geo g = dw_geometry(dy, dx, d);
    size_t total = nn_numel(dx);
    if (total == 0) return;
    dw_bwd_data_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        dx->d, dy->d, w, g, total, mode == NN_ACCUMULATE);
    KERNEL_CHECK();
}

#define DWF_TX 32 /* channels per block */
#define DWF_TY 8  /* position lanes */

/* One block per (tap, 32 channels): dw[ky, kx, c] (+)= sum over n, oy, ox of dy * x, reduced over
 * the lanes in a fixed order */
static __global__ void dw_bwd_filter_kernel(float *dw, const float *dy, const float *x, dw_geo g,
                                            int accumulate)
{
    __shared__ float s[DWF_TY][DWF_TX + 1];
    const int tap = blockIdx.y, ky = tap / g.kw, kx = tap % g.kw;
    const int ch = blockIdx.x * DWF_TX + threadIdx.x;
    const size_t positions = (size_t)g.n * g.oh * g.ow;
    float acc = 0.0f;
    if (ch < g.c)
        for (size_t pos = threadIdx.y; pos < positions; pos += DWF_TY) {
            int ox = (int)(pos % (size_t)g.ow);
            size_t t = pos / (size_t)g.ow;
            int oy = (int)(t % (size_t)g.oh);
            size_t img = t / (size_t)g.oh;
            int iy = oy * g.sh - g.pt + ky, ix = ox * g.sw - g.pl + kx;
            if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
            acc += cu_ld(dy, g.dt, pos * g.c + ch) *
                   cu_ld(x, g.dt, ((img * g.h + iy) * g.w + ix) * (size_t)g.c + ch);
        }
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && ch < g.c) {
        float t = 0.0f;
        for (int k = 0; k < DWF_TY; k++) t += s[k][threadIdx.x];
        size_t o = (size_t)tap * g.c + ch;
        cu_st(dw, g.dt, o, accumulate ? cu_ld(dw, g.dt, o) + t : t);
    }
}

void cu_depthwise_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                             const nn_conv_desc *d, nn_accum mode)
{
    dw_geo g = dw_geometry(dy, x, d);
    if (g.c == 0) return;
    if (db) cu_bias_grad(db, dy->d, dy->dt, nn_numel(dy) / (size_t)g.c, g.c, mode);
    dim3 grid((unsigned)((g.c + DWF_TX - 1) / DWF_TX), (unsigned)(g.kh * g.kw));
    dw_bwd_filter_kernel<<<grid, dim3(DWF_TX, DWF_TY), 0, cu_ctx.stream>>>(dw, dy->d, x->d, g,
                                                                           mode == NN_ACCUMULATE);
    KERNEL_CHECK();
}

/* ---- pooling -------------------------------------------------------------------------------- */

static __global__ void pool_kernel(float *y, const float *x, dw_geo g, nn_pool_kind kind,
                                   size_t total)
{
    CU_FOR(i, total)
    {
        size_t img;
        int oy, ox, ch;
        cu_unravel(i, g.oh, g.ow, g.c, &img, &oy, &ox, &ch);
        float acc = kind == NN_POOL_MAX ? -INFINITY : 0.0f;
        int cells = 0;
        for (int ky = 0; ky < g.kh; ky++) {
            int iy = oy * g.sh - g.pt + ky;
            if (iy < 0 || iy >= g.h) continue;
            for (int kx = 0; kx < g.kw; kx++) {
                int ix = ox * g.sw - g.pl + kx;
                if (ix < 0 || ix >= g.w) continue;
                float v = cu_ld(x, g.dt, ((img * g.h + iy) * g.w + ix) * (size_t)g.c + ch);
                acc = kind == NN_POOL_MAX ? fmaxf(acc, v) : acc + v;
                cells++;
            }
        }
        /* TF: padded cells do not count; a window over padding only gives 0 */
        cu_st(y, g.dt, i,
              cells == 0 ? 0.0f : kind == NN_POOL_MAX ? acc : acc * (1.0f / (float)cells));
    }
}

void cu_pool(nn_tensor *y, const nn_tensor *x, const nn_pool_desc *d)
{
    VS_CHECK(d->kh >= 1 && d->kw >= 1 && d->sh >= 1 && d->sw >= 1);
    VS_CHECK(y->n == x->n && y->c == x->c && y->dt == x->dt);
    VS_CHECK(y->h == (x->h + d->pad_t + d->pad_b - d->kh) / d->sh + 1);
    VS_CHECK(y->w == (x->w + d->pad_l + d->pad_r - d->kw) / d->sw + 1);
    dw_geo g = {x->n,  x->h,  x->w,  x->c,     y->h,     y->w, d->kh,
                d->kw, d->sh, d->sw, d->pad_t, d->pad_l, x->dt};
    size_t total = nn_numel(y);
    if (total == 0) return;
    pool_kernel<<<cu_blocks(total, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(y->d, x->d, g,
                                                                                d->kind, total);
    KERNEL_CHECK();
}
