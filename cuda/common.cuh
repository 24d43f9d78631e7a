/* common.cuh: what every file of the CUDA backend shares: the check macros (a failed CUDA, cuDNN
 * or cuBLAS call is a bug: it is reported with the statement, function, file:line and device,
 * the cleanup hooks run and the process aborts), the backend's one stream and library handles,
 * the scratch workspace, and launch helpers. Everything is enqueued on cu_ctx.stream, so a whole
 * training step can be captured as one CUDA graph. */
#ifndef CUDA_COMMON_CUH
#define CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stddef.h>

extern "C" {
#include "err.h"
#include "nn/backend.h"
}

/* Reports a failed call and aborts through vs_bug (which runs the cleanup hooks). */
[[noreturn]] void cu_fail(const char *lib, const char *what, const char *stmt, const char *func,
                          const char *file, int line);

#define CUDA_CHECK(stmt)                                                                           \
    do {                                                                                           \
        cudaError_t cu_e_ = (stmt);                                                                \
        if (cu_e_ != cudaSuccess)                                                                  \
            cu_fail("CUDA", cudaGetErrorString(cu_e_), #stmt, __func__, __FILE__, __LINE__);       \
    } while (0)

#define CUDNN_CHECK(stmt)                                                                          \
    do {                                                                                           \
        cudnnStatus_t cu_s_ = (stmt);                                                              \
        if (cu_s_ != CUDNN_STATUS_SUCCESS)                                                         \
            cu_fail("cuDNN", cudnnGetErrorString(cu_s_), #stmt, __func__, __FILE__, __LINE__);     \
    } while (0)

#define CUBLAS_CHECK(stmt)                                                                         \
    do {                                                                                           \
        cublasStatus_t cu_s_ = (stmt);                                                             \
        if (cu_s_ != CUBLAS_STATUS_SUCCESS)                                                        \
            cu_fail("cuBLAS", cublasGetStatusString(cu_s_), #stmt, __func__, __FILE__, __LINE__);  \
    } while (0)

/* after every kernel launch */
#define KERNEL_CHECK() CUDA_CHECK(cudaGetLastError())

/* Scratch buffers, one per use, so that operations running one after the other on the stream
 * can share them without overlapping. */
typedef enum cu_scratch_slot {
    CU_SCR_CUDNN,    /* cuDNN's workspace */
    CU_SCR_PAD,      /* a zero-padded copy of an input (asymmetric TF "same" padding) */
    CU_SCR_PAD_GRAD, /* the gradient of that padded input */
    CU_SCR_LOSS,     /* the SSIM maps */
    CU_SCR_CONV_OUT, /* a convolution's output before its pixel shuffle */
    CU_SCR_PARTIAL,  /* per-block partial sums of the reductions */
    CU_SCR_IMAGE,    /* the image kernels' descriptors (crops, warps), copied from the host */
    CU_SCR_SLOTS
} cu_scratch_slot;

typedef struct cu_context {
    int device;
    nn_precision prec; /* FP32, TF32, BF16 or FP16 once resolved */
    cudaDeviceProp prop;
    cudaStream_t stream;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    void *scratch[CU_SCR_SLOTS];
    size_t scratch_size[CU_SCR_SLOTS];
} cu_context;

extern cu_context cu_ctx;

/* At least `bytes` of scratch in `slot`. Growing synchronises and reallocates, so it must not
 * happen while a graph is being captured: the first, uncaptured step sizes every slot. */
void *cu_scratch(cu_scratch_slot slot, size_t bytes);

/* Blocks for n threads of `threads` each, capped so grid-stride loops cover the rest. */
static inline unsigned cu_blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    const size_t cap = 65535u * 8u;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}

#define CU_THREADS 256

/* grid-stride loop over [0, n) */
#define CU_FOR(i, n)                                                                               \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
         i += (size_t)blockDim.x * gridDim.x)

/* Element i of memory holding elements of type dt (nn_dtype), as fp32, and storing one (rounded
 * to nearest even). The type is the same for every thread, so the branch costs nothing. */
static __device__ __forceinline__ float cu_ld(const float *p, nn_dtype dt, size_t i)
{
    if (dt == NN_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    if (dt == NN_F16) return __half2float(((const __half *)p)[i]);
    return p[i];
}

static __device__ __forceinline__ void cu_st(float *p, nn_dtype dt, size_t i, float v)
{
    if (dt == NN_BF16)
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else if (dt == NN_F16)
        ((__half *)p)[i] = __float2half_rn(v);
    else
        p[i] = v;
}

/* Element i of an NHWC tensor [n, h, w, c] as (image, y, x, channel). */
static __device__ __forceinline__ void cu_unravel(size_t i, int h, int w, int c, size_t *img,
                                                  int *y, int *x, int *ch)
{
    *ch = (int)(i % (size_t)c);
    i /= (size_t)c;
    *x = (int)(i % (size_t)w);
    i /= (size_t)w;
    *y = (int)(i % (size_t)h);
    *img = i / (size_t)h;
}

/* The activation, and its slope from its output (as core/nn/cpu_train.c's act_bwd_span). */
static __device__ __forceinline__ float cu_act(float x, nn_act act, float alpha)
{
    switch (act) {
    case NN_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case NN_ACT_RELU6: return fminf(fmaxf(x, 0.0f), 6.0f);
    case NN_ACT_LEAKY: return x > 0.0f ? x : alpha * x;
    case NN_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    default: return x;
    }
}

static __device__ __forceinline__ float cu_act_grad(float g, float y, nn_act act, float alpha)
{
    switch (act) {
    case NN_ACT_RELU: return y > 0.0f ? g : 0.0f;
    case NN_ACT_RELU6: return y > 0.0f && y < 6.0f ? g : 0.0f;
    case NN_ACT_LEAKY: return y > 0.0f ? g : alpha * g;
    case NN_ACT_SIGMOID: return g * (y * (1.0f - y));
    default: return g;
    }
}

/* Sum of v over the block (every thread gets it); blockDim.x a multiple of 32, at most 1024. */
static __device__ __forceinline__ float cu_block_sum(float v)
{
    __shared__ float part[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads(); /* part[] may still be read by a previous call */
    if (lane == 0) part[warp] = v;
    __syncthreads();
    const int warps = (blockDim.x + 31) >> 5;
    v = lane < warps ? part[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* *out (device) += offset + scale * (the sum of partial[0 .. n)), summed in one fixed order (so the
 * result does not depend on timing), in double. */
void cu_sum_partials(float *out, const float *partial, int n, double offset, double scale);

/* ---- the operations, by file (the backend table in backend.cu points at them) ---- */
/* elementwise.cu */
void cu_act_fw(nn_tensor *x, nn_act act, float alpha);
void cu_add(nn_tensor *y, const nn_tensor *a, const nn_tensor *b);
void cu_convert(nn_tensor *dst, const nn_tensor *src);
void cu_scale_bias(nn_tensor *x, const float *scale, const float *bias);
/* y: [rows, c] of type dt = act(y + bias) */
void cu_bias_act(float *y, nn_dtype dt, const float *bias, size_t rows, int c, nn_act act,
                 float alpha);
void cu_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, nn_act act, float alpha);
/* db: [c] (+)= the column sums of dy: [rows, c], both of type dt (summed in fp32) */
void cu_bias_grad(float *db, const float *dy, nn_dtype dt, size_t rows, int c, nn_accum mode);
void cu_depth_to_space(nn_tensor *y, const nn_tensor *x, int r);
/* y: [n, h*r, w*r, C] = depth_to_space(act(x + bias), r), x: [n, h, w, r*r*C] */
void cu_bias_act_shuffle(nn_tensor *y, const nn_tensor *x, const float *bias, int r, nn_act act,
                         float alpha);
void cu_shuffle_act_bwd(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, int r, nn_act act,
                        float alpha);
void cu_space_to_depth(nn_tensor *y, const nn_tensor *x, int r);
void cu_fill(float *x, size_t n, float value);
int cu_all_finite(const float *x, size_t n);
void cu_adam(float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h);
void cu_adam_ctl(float *p, float *m, float *v, const nn_tensor *g, const nn_adam *h, float *ctl,
                 nn_tensor *pw);
void cu_flag_nonfinite(float *flag, const nn_tensor *x);
/* n elements of type dt set to 0 (zero bits) */
void cu_zero(float *x, nn_dtype dt, size_t n);
/* profile.cu: the same table with every operation timed by events */
void cu_profile_table(nn_backend *t);
int cu_profiling(void);
/* augment.cu */
void cu_augment(const nn_aug_batch *b);
/* conv.cu */
void cu_conv2d(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
               const nn_conv_desc *d);
void cu_conv2d_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, const nn_conv_desc *d,
                        nn_accum mode);
void cu_conv2d_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                          const nn_conv_desc *d, nn_accum mode);
void cu_depthwise(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                  const nn_conv_desc *d);
void cu_depthwise_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w,
                           const nn_conv_desc *d, nn_accum mode);
void cu_depthwise_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                             const nn_conv_desc *d, nn_accum mode);
void cu_pool(nn_tensor *y, const nn_tensor *x, const nn_pool_desc *d);
void cu_conv_set_precision(nn_precision p);
/* the cuDNN algorithm the last convolution call ran (type, number, math, workspace): profiling */
const char *cu_conv_last_algo(void);
/* dense.cu */
void cu_dense(nn_tensor *y, const nn_tensor *x, const float *w, const float *b, nn_act act,
              float alpha);
void cu_dense_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, nn_accum mode);
void cu_dense_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                         nn_accum mode);
/* image.cu */
/* y: [n, h, w, c] = act(a' + b'), a and b zero-padded at the end of h, w and c to y's shape */
void cu_add_padded(nn_tensor *y, const nn_tensor *a, const nn_tensor *b, nn_act act, float alpha);
/* y: [n, size, size, 3] from crops[0 .. n) (a host array) */
void cu_crop_resize(nn_tensor *y, const nn_crop *crops);
/* dst: n images [size, size, 3] bytes from w[0 .. n) (a host array) */
void cu_warp(uint8_t *dst, const nn_warp *w, int n, int size);
/* y = x / div, 8-bit to fp32 */
void cu_from_u8(nn_tensor *y, const uint8_t *x, float div);
/* b[0 .. n) (a host array) blended in order */
void cu_blend(const nn_blend *b, int n);
/* page-locked host memory; NULL when out of memory */
void *cu_host_alloc(size_t bytes);
void cu_host_free(void *p);
/* loss.cu */
void cu_loss(float *dpred, float *loss, const nn_tensor *pred, const nn_tensor *target,
             const float *mask, nn_loss_kind kind, float weight);

#endif
