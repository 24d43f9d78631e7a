/* dense.cu: dense layers on cuBLAS. Row-major [rows, cols] arrays are column-major [cols, rows]
 * to cuBLAS, so each product below is written transposed: y^T = w^T x^T and so on. fp32 tensors
 * go through cublasSgemm (whose math mode the precision sets), bf16 and fp16 ones through
 * cublasGemmEx with fp32 accumulation, the weight gradient in their type too. Bias, activation and
 * the bias gradient are elementwise.cu's kernels. Semantics as cpu_dense. */
#include "common.cuh"

static cudaDataType_t cuda_type(nn_dtype dt)
{
    return dt == NN_BF16 ? CUDA_R_16BF : dt == NN_F16 ? CUDA_R_16F : CUDA_R_32F;
}

/* C [m, n] (column-major) = op(A) op(B) + beta C: A and B of type ab, C of type c */
static void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc, nn_dtype ab,
                 nn_dtype ct)
{
    const float one = 1.0f;
    if (ab == NN_F32 && ct == NN_F32) {
        CUBLAS_CHECK(
            cublasSgemm(cu_ctx.cublas, ta, tb, m, n, k, &one, a, lda, b, ldb, &beta, c, ldc));
        return;
    }
    CUBLAS_CHECK(cublasGemmEx(cu_ctx.cublas, ta, tb, m, n, k, &one, a, cuda_type(ab), lda, b,
                              cuda_type(ab), ldb, &beta, c, cuda_type(ct), ldc, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
}

/* samples of a dense layer's tensor, and values per sample */
static int dims(const nn_tensor *t, int *per)
{
    *per = t->h * t->w * t->c;
    return t->n;
}

/* y: [n, out] = act(x: [n, in] . w: [in, out] + b) */
void cu_dense(nn_tensor *yt, const nn_tensor *xt, const float *w, const float *b, nn_act act,
              float alpha)
{
    int in, out, n = dims(xt, &in);
    VS_CHECK(dims(yt, &out) == n && yt->dt == xt->dt);
    if (n <= 0 || out <= 0) return;
    if (in <= 0) {
        CUDA_CHECK(
            cudaMemsetAsync(yt->d, 0, (size_t)n * out * nn_dtype_size(yt->dt), cu_ctx.stream));
    } else {
        gemm(CUBLAS_OP_N, CUBLAS_OP_N, out, n, in, w, out, xt->d, in, 0.0f, yt->d, out, xt->dt,
             yt->dt);
    }
    cu_bias_act(yt->d, yt->dt, b, (size_t)n, out, act, alpha);
}

/* dx: [n, in] (+)= dy: [n, out] . w^T */
void cu_dense_bwd_data(nn_tensor *dx, const nn_tensor *dy, const float *w, nn_accum mode)
{
    int in, out, n = dims(dx, &in);
    VS_CHECK(dims(dy, &out) == n && dx->dt == dy->dt);
    if (n <= 0 || in <= 0) return;
    if (out <= 0) {
        if (mode == NN_OVERWRITE)
            CUDA_CHECK(cudaMemsetAsync(dx->d, 0, (size_t)n * in * nn_dtype_size(dx->dt),
                                       cu_ctx.stream));
        return;
    }
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, in, n, out, w, out, dy->d, out,
         mode == NN_ACCUMULATE ? 1.0f : 0.0f, dx->d, in, dx->dt, dx->dt);
}

/* dw: [in, out] (+)= x^T . dy, db: [out] (+)= the column sums of dy (in the type of x and dy) */
void cu_dense_bwd_filter(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                         nn_accum mode)
{
    int in, out, n = dims(x, &in);
    VS_CHECK(dims(dy, &out) == n && x->dt == dy->dt);
    if (out <= 0) return;
    if (db) cu_bias_grad(db, dy->d, dy->dt, (size_t)(n > 0 ? n : 0), out, mode);
    if (in <= 0) return;
    if (n <= 0) {
        if (mode == NN_OVERWRITE) cu_zero(dw, x->dt, (size_t)in * out);
        return;
    }
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, out, in, n, dy->d, out, x->d, in,
         mode == NN_ACCUMULATE ? 1.0f : 0.0f, dw, out, x->dt, x->dt);
}
