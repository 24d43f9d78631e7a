/* elementwise.cu: the CUDA backend's element-wise and data-movement kernels: activation and its
 * backward, residual add, scale and bias, bias + activation after a GEMM or convolution, the
 * bias gradient, pixel shuffle both ways, fill, the finiteness check, one fused Adam step over a
 * whole arena, and the ordered sum of per-block partials that the reductions end with. Every
 * kernel is launched on cu_ctx.stream and checked. Semantics as core/nn/cpu_*.c. */
#include <math.h>

#include "common.cuh"

/* ---- activation, add, scale/bias ------------------------------------------------------------ */

static __global__ void act_kernel(float *x, nn_dtype dt, size_t n, nn_act act, float alpha)
{
    CU_FOR(i, n) cu_st(x, dt, i, cu_act(cu_ld(x, dt, i), act, alpha));
}

void cu_act_fw(nn_tensor *x, nn_act act, float alpha)
{
    size_t n = nn_numel(x);
    if (n == 0 || act == NN_ACT_NONE) return;
    act_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(x->d, x->dt, n, act,
                                                                           alpha);
    KERNEL_CHECK();
}

static __global__ void add_kernel(float *y, const float *a, const float *b, nn_dtype dt, size_t n)
{
    CU_FOR(i, n) cu_st(y, dt, i, cu_ld(a, dt, i) + cu_ld(b, dt, i));
}

/* the element types of the tensors of one call agree */
static void same_dtype(const nn_tensor *a, const nn_tensor *b)
{
    VS_CHECK(a->dt == b->dt);
}

void cu_add(nn_tensor *y, const nn_tensor *a, const nn_tensor *b)
{
    size_t n = nn_numel(y);
    VS_CHECK(nn_numel(a) == n && nn_numel(b) == n);
    same_dtype(y, a), same_dtype(y, b);
    if (n == 0) return;
    add_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(y->d, a->d, b->d, y->dt,
                                                                           n);
    KERNEL_CHECK();
}

static __global__ void convert_kernel(float *dst, nn_dtype dt_dst, const float *src,
                                      nn_dtype dt_src, size_t n)
{
    CU_FOR(i, n) cu_st(dst, dt_dst, i, cu_ld(src, dt_src, i));
}

void cu_convert(nn_tensor *dst, const nn_tensor *src)
{
    size_t n = nn_numel(dst);
    VS_CHECK(nn_numel(src) == n);
    if (n == 0 || (dst->d == src->d && dst->dt == src->dt)) return;
    if (dst->dt == src->dt) {
        CUDA_CHECK(cudaMemcpyAsync(dst->d, src->d, n * nn_dtype_size(dst->dt),
                                   cudaMemcpyDeviceToDevice, cu_ctx.stream));
        return;
    }
    convert_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(dst->d, dst->dt,
                                                                               src->d, src->dt, n);
    KERNEL_CHECK();
}

static __global__ void scale_bias_kernel(float *x, const float *scale, const float *bias, size_t n,
                                         int c)
{
    CU_FOR(i, n)
    {
        int ch = (int)(i % (size_t)c);
        float v = x[i];
        if (scale) v *= scale[ch];
        if (bias) v += bias[ch];
        x[i] = v;
    }
}

void cu_scale_bias(nn_tensor *x, const float *scale, const float *bias)
{
    size_t n = nn_numel(x);
    if (n == 0 || (!scale && !bias)) return;
    scale_bias_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(x->d, scale, bias,
                                                                                  n, x->c);
    KERNEL_CHECK();
}

static __global__ void bias_act_kernel(float *y, nn_dtype dt, const float *bias, size_t n, int c,
                                       nn_act act, float alpha)
{
    CU_FOR(i, n)
    {
        float v = cu_ld(y, dt, i);
        if (bias) v += bias[i % (size_t)c];
        cu_st(y, dt, i, cu_act(v, act, alpha));
    }
}

void cu_bias_act(float *y, nn_dtype dt, const float *bias, size_t rows, int c, nn_act act,
                 float alpha)
{
    size_t n = rows * (size_t)c;
    if (n == 0 || (!bias && act == NN_ACT_NONE)) return;
    bias_act_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(y, dt, bias, n, c,
                                                                                act, alpha);
    KERNEL_CHECK();
}

static __global__ void act_bwd_kernel(float *dx, const float *dy, const float *y, nn_dtype dt,
                                      size_t n, nn_act act, float alpha)
{
    CU_FOR(i, n) cu_st(dx, dt, i, cu_act_grad(cu_ld(dy, dt, i), cu_ld(y, dt, i), act, alpha));
}

void cu_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, nn_act act, float alpha)
{
    VS_CHECK(act >= NN_ACT_NONE && act <= NN_ACT_SIGMOID);
    size_t n = nn_numel(dx);
    VS_CHECK(nn_numel(dy) == n && nn_numel(y) == n);
    same_dtype(dx, dy), same_dtype(dx, y);
    if (n == 0) return;
    if (act == NN_ACT_NONE) {
        cu_convert(dx, dy);
        return;
    }
    act_bwd_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        dx->d, dy->d, y->d, dx->dt, n, act, alpha);
    KERNEL_CHECK();
}

/* ---- bias gradient: column sums of [rows, c] ------------------------------------------------ */

#define BG_TX 32 /* channels per block */
#define BG_TY 8  /* row lanes per block */

/* partial[by * c + ch] = sum of dy[r, ch] over the rows r = (by * BG_TY + ty) + k * stride */
static __global__ void bias_grad_partial(float *partial, const float *dy, nn_dtype dt, size_t rows,
                                         int c)
{
    __shared__ float s[BG_TY][BG_TX + 1];
    const int ch = blockIdx.x * BG_TX + threadIdx.x;
    float acc = 0.0f;
    if (ch < c)
        for (size_t r = (size_t)blockIdx.y * BG_TY + threadIdx.y; r < rows;
             r += (size_t)gridDim.y * BG_TY)
            acc += cu_ld(dy, dt, r * c + ch);
    s[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && ch < c) {
        float t = 0.0f;
        for (int k = 0; k < BG_TY; k++) t += s[k][threadIdx.x];
        partial[(size_t)blockIdx.y * c + ch] = t;
    }
}

static __global__ void bias_grad_final(float *db, const float *partial, int parts, int c,
                                       nn_dtype dt, nn_accum mode)
{
    CU_FOR(ch, (size_t)c)
    {
        float t = 0.0f;
        for (int k = 0; k < parts; k++) t += partial[(size_t)k * c + ch];
        cu_st(db, dt, ch, mode == NN_ACCUMULATE ? cu_ld(db, dt, ch) + t : t);
    }
}

void cu_zero(float *x, nn_dtype dt, size_t n)
{
    if (n) CUDA_CHECK(cudaMemsetAsync(x, 0, n * nn_dtype_size(dt), cu_ctx.stream));
}

void cu_bias_grad(float *db, const float *dy, nn_dtype dt, size_t rows, int c, nn_accum mode)
{
    if (c == 0) return;
    if (rows == 0) {
        if (mode == NN_OVERWRITE) cu_zero(db, dt, (size_t)c);
        return;
    }
    size_t want = (rows + 8 * BG_TY - 1) / (8 * BG_TY); /* at least 8 rows per lane */
    int parts = (int)(want < 128 ? want : 128);
    float *partial = (float *)cu_scratch(CU_SCR_PARTIAL, (size_t)parts * c * sizeof(float));
    dim3 grid((unsigned)((c + BG_TX - 1) / BG_TX), (unsigned)parts), block(BG_TX, BG_TY);
    bias_grad_partial<<<grid, block, 0, cu_ctx.stream>>>(partial, dy, dt, rows, c);
    KERNEL_CHECK();
    bias_grad_final<<<cu_blocks((size_t)c, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        db, partial, parts, c, dt, mode);
    KERNEL_CHECK();
}

/* ---- pixel shuffle -------------------------------------------------------------------------- */

/* Pixel shuffle (depth_to_space order) as an index map: element i of space [n, h*r, w*r, c]
 * is element *di of depth [n, h, w, r*r*c], whose channel is *dc. */
static __device__ __forceinline__ void shuffle_index(size_t *di, int *dc, size_t i, int h, int w,
                                                     int c, int r)
{
    size_t img;
    int sy, sx, ch;
    cu_unravel(i, h * r, w * r, c, &img, &sy, &sx, &ch);
    *dc = ((sy % r) * r + sx % r) * c + ch;
    *di = ((img * h + sy / r) * w + sx / r) * (size_t)r * r * c + *dc;
}

/* the shapes of a pixel shuffle: space [n, h*r, w*r, C], depth [n, h, w, r*r*C] */
static void check_shuffle(const nn_tensor *space, const nn_tensor *depth, int r)
{
    VS_CHECK(r >= 1);
    same_dtype(space, depth);
    VS_CHECK(space->n == depth->n && space->h == depth->h * r && space->w == depth->w * r &&
             depth->c == r * r * space->c);
}

/* space: [n, h*r, w*r, c], depth: [n, h, w, r*r*c]; one thread per space element */
static __global__ void shuffle_kernel(float *space, float *depth, nn_dtype dt, int h, int w, int c,
                                      int r, size_t n_elems, int to_space)
{
    CU_FOR(i, n_elems)
    {
        size_t di;
        int dc;
        shuffle_index(&di, &dc, i, h, w, c, r);
        if (dt != NN_F32) { /* a move of 2-byte elements: no need to go through fp32 */
            uint16_t *s = (uint16_t *)space, *d = (uint16_t *)depth;
            if (to_space)
                s[i] = d[di];
            else
                d[di] = s[i];
        } else if (to_space) {
            space[i] = depth[di];
        } else {
            depth[di] = space[i];
        }
    }
}

void cu_depth_to_space(nn_tensor *y, const nn_tensor *x, int r)
{
    check_shuffle(y, x, r);
    size_t n = nn_numel(y);
    if (n == 0) return;
    shuffle_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        y->d, x->d, y->dt, x->h, x->w, y->c, r, n, 1);
    KERNEL_CHECK();
}

void cu_space_to_depth(nn_tensor *y, const nn_tensor *x, int r)
{
    check_shuffle(x, y, r);
    size_t n = nn_numel(x);
    if (n == 0) return;
    shuffle_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        x->d, y->d, y->dt, y->h, y->w, x->c, r, n, 0);
    KERNEL_CHECK();
}

/* y (space order, one thread per element) = act(x + bias) from x in depth order */
static __global__ void bias_act_shuffle_kernel(float *y, const float *x, nn_dtype dt,
                                               const float *bias, int h, int w, int c, int r,
                                               size_t n_elems, nn_act act, float alpha)
{
    CU_FOR(i, n_elems)
    {
        size_t di;
        int dc;
        shuffle_index(&di, &dc, i, h, w, c, r);
        float v = cu_ld(x, dt, di);
        if (bias) v += bias[dc];
        cu_st(y, dt, i, cu_act(v, act, alpha));
    }
}

void cu_bias_act_shuffle(nn_tensor *y, const nn_tensor *x, const float *bias, int r, nn_act act,
                         float alpha)
{
    check_shuffle(y, x, r);
    size_t n = nn_numel(y);
    if (n == 0) return;
    bias_act_shuffle_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        y->d, x->d, y->dt, bias, x->h, x->w, y->c, r, n, act, alpha);
    KERNEL_CHECK();
}

/* dx (depth order) = dy * act'(y) (space order); one thread per space element */
static __global__ void shuffle_act_bwd_kernel(float *dx, const float *dy, const float *y,
                                              nn_dtype dt, int h, int w, int c, int r,
                                              size_t n_elems, nn_act act, float alpha)
{
    CU_FOR(i, n_elems)
    {
        size_t di;
        int dc;
        shuffle_index(&di, &dc, i, h, w, c, r);
        cu_st(dx, dt, di, cu_act_grad(cu_ld(dy, dt, i), cu_ld(y, dt, i), act, alpha));
    }
}

void cu_shuffle_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, int r, nn_act act,
                        float alpha)
{
    VS_CHECK(act >= NN_ACT_NONE && act <= NN_ACT_SIGMOID);
    check_shuffle(dy, dx, r);
    VS_CHECK(y->n == dy->n && y->h == dy->h && y->w == dy->w && y->c == dy->c);
    same_dtype(y, dy);
    size_t n = nn_numel(dx);
    if (n == 0) return;
    shuffle_act_bwd_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        dx->d, dy->d, y->d, dx->dt, dx->h, dx->w, dy->c, r, n, act, alpha);
    KERNEL_CHECK();
}

/* ---- fill, finiteness ----------------------------------------------------------------------- */

static __global__ void fill_kernel(float *x, size_t n, float value)
{
    CU_FOR(i, n) x[i] = value;
}

void cu_fill(float *x, size_t n, float value)
{
    if (n == 0) return;
    fill_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(x, n, value);
    KERNEL_CHECK();
}

/* *flag = 1 when some x[i] is NaN or +-Inf (x * 0 is 0 exactly for the finite ones; a 16-bit
 * NaN or Inf widens to one) */
static __global__ void finite_kernel(float *flag, const float *x, nn_dtype dt, size_t n)
{
    int b = 0;
    CU_FOR(i, n) b |= !(cu_ld(x, dt, i) * 0.0f == 0.0f);
    if (__syncthreads_or(b) && threadIdx.x == 0) *flag = 1.0f; /* every writer writes 1 */
}

static void flag_nonfinite(float *flag, const float *x, nn_dtype dt, size_t n)
{
    if (n == 0) return;
    finite_kernel<<<cu_blocks(n, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(flag, x, dt, n);
    KERNEL_CHECK();
}

void cu_flag_nonfinite(float *flag, const nn_tensor *x)
{
    flag_nonfinite(flag, x->d, x->dt, nn_numel(x));
}

int cu_all_finite(const float *x, size_t n)
{
    if (n == 0) return 1;
    float *flag = (float *)cu_scratch(CU_SCR_PARTIAL, sizeof(float));
    CUDA_CHECK(cudaMemsetAsync(flag, 0, sizeof(float), cu_ctx.stream));
    flag_nonfinite(flag, x, NN_F32, n);
    float h = 0.0f;
    CUDA_CHECK(cudaMemcpyAsync(&h, flag, sizeof(float), cudaMemcpyDeviceToHost, cu_ctx.stream));
    CUDA_CHECK(cudaStreamSynchronize(cu_ctx.stream));
    return h == 0.0f;
}

/* ---- Adam ----------------------------------------------------------------------------------- */

/* Keras's order of operations, as cpu_adam. With ctl: lr_t from ctl[0], the gradients times
 * ctl[2], nothing done when ctl[1] != 0 on entry, and ctl[1] set when a gradient is not finite
 * (checked as it is read). With pw, the new parameters rounded to its type pw_dt there too. */
static __global__ void adam_kernel(float *p, float *m, float *v, const float *g, nn_dtype g_dt,
                                   size_t n, float lr_t, float *ctl, float *pw, nn_dtype pw_dt,
                                   float b1, float b2, float one_b1, float one_b2, float eps)
{
    float gmul = 1.0f;
    if (ctl) {
        if (ctl[1] != 0.0f) return;
        lr_t = ctl[0], gmul = ctl[2];
    }
    int bad = 0;
    /* four at a time where every array is 16-byte aligned (the arenas are), then the rest */
    const int vec = !(((uintptr_t)p | (uintptr_t)m | (uintptr_t)v | (uintptr_t)g) & 15);
    const size_t n4 = vec ? n / 4 : 0;
    CU_FOR(i, n4)
    {
        float4 m4 = ((float4 *)m)[i], v4 = ((float4 *)v)[i], p4 = ((float4 *)p)[i], g4;
        if (g_dt == NN_F32)
            g4 = ((const float4 *)g)[i];
        else
            g4 = make_float4(cu_ld(g, g_dt, 4 * i), cu_ld(g, g_dt, 4 * i + 1),
                             cu_ld(g, g_dt, 4 * i + 2), cu_ld(g, g_dt, 4 * i + 3));
        float *gs = &g4.x, *ms = &m4.x, *vs = &v4.x, *ps = &p4.x;
        for (int k = 0; k < 4; k++) {
            float gi = __fmul_rn(gs[k], gmul); /* exact for 1 */
            bad |= !(gi * 0.0f == 0.0f);
            float mi = __fadd_rn(__fmul_rn(b1, ms[k]), __fmul_rn(one_b1, gi));
            float vi = __fadd_rn(__fmul_rn(b2, vs[k]), __fmul_rn(one_b2, __fmul_rn(gi, gi)));
            ms[k] = mi, vs[k] = vi;
            ps[k] = __fsub_rn(ps[k], __fdiv_rn(__fmul_rn(lr_t, mi), __fadd_rn(sqrtf(vi), eps)));
        }
        ((float4 *)m)[i] = m4, ((float4 *)v)[i] = v4, ((float4 *)p)[i] = p4;
        if (pw)
            for (int k = 0; k < 4; k++) cu_st(pw, pw_dt, 4 * i + k, ps[k]);
    }
    for (size_t i = 4 * n4 + (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)blockDim.x * gridDim.x) {
        float gi = __fmul_rn(cu_ld(g, g_dt, i), gmul);
        bad |= !(gi * 0.0f == 0.0f);
        float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(one_b1, gi));
        float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(one_b2, __fmul_rn(gi, gi)));
        m[i] = mi, v[i] = vi;
        p[i] = __fsub_rn(p[i], __fdiv_rn(__fmul_rn(lr_t, mi), __fadd_rn(sqrtf(vi), eps)));
        if (pw) cu_st(pw, pw_dt, i, p[i]);
    }
    /* every block sees ctl[1] == 0 on entry: the flag only rises after all have read it (a block
     * that starts later and reads 1 skips, which is as unspecified as the rest) */
    if (ctl && __syncthreads_or(bad) && threadIdx.x == 0) ctl[1] = 1.0f;
}

static void adam(float *p, float *m, float *v, const float *g, nn_dtype g_dt, size_t n,
                 const nn_adam *h, float lr_t, float *ctl, nn_tensor *pw)
{
    if (n == 0) return;
    VS_CHECK(!pw || (nn_numel(pw) == n && pw->dt != NN_F32));
    adam_kernel<<<cu_blocks((n + 3) / 4, CU_THREADS), CU_THREADS, 0, cu_ctx.stream>>>(
        p, m, v, g, g_dt, n, lr_t, ctl, pw ? pw->d : NULL, pw ? pw->dt : NN_F32, h->beta1,
        h->beta2, 1.0f - h->beta1, 1.0f - h->beta2, h->eps);
    KERNEL_CHECK();
}

void cu_adam(float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h)
{
    adam(p, m, v, g, NN_F32, n, h, nn_adam_step_size(h), NULL, NULL);
}

void cu_adam_ctl(float *p, float *m, float *v, const nn_tensor *g, const nn_adam *h, float *ctl,
                 nn_tensor *pw)
{
    adam(p, m, v, g->d, g->dt, nn_numel(g), h, 0.0f, ctl, pw);
}

/* ---- ordered sums --------------------------------------------------------------------------- */

static __global__ void sum_partials_kernel(float *out, const float *partial, int n, double offset,
                                           double scale)
{
    __shared__ double s[256];
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partial[i];
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) *out = (float)((double)*out + (offset + scale * s[0]));
}

void cu_sum_partials(float *out, const float *partial, int n, double offset, double scale)
{
    sum_partials_kernel<<<1, 256, 0, cu_ctx.stream>>>(out, partial, n, offset, scale);
    KERNEL_CHECK();
}
