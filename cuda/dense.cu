/* dense.cu: dense layers on cuBLAS. Row-major [rows, cols] arrays are column-major [cols, rows]
 * to cuBLAS, so each product below is written transposed: y^T = w^T x^T and so on. Bias,
 * activation and the bias gradient are elementwise.cu's kernels. Semantics as cpu_dense. */
#include "common.cuh"

/* y: [n, out] = act(x: [n, in] . w: [in, out] + b) */
void cu_dense(float *y, const float *x, const float *w, const float *b, int n, int in, int out,
              nn_act act, float alpha)
{
    if (n <= 0 || out <= 0) return;
    if (in <= 0) {
        cu_fill(y, (size_t)n * out, 0.0f);
    } else {
        const float one = 1.0f, zero = 0.0f;
        CUBLAS_CHECK(cublasSgemm(cu_ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_N, out, n, in, &one, w, out,
                                 x, in, &zero, y, out));
    }
    cu_bias_act(y, b, (size_t)n, out, act, alpha);
}

/* dx: [n, in] (+)= dy: [n, out] . w^T */
void cu_dense_bwd_data(float *dx, const float *dy, const float *w, int n, int in, int out,
                       nn_accum mode)
{
    if (n <= 0 || in <= 0) return;
    if (out <= 0) {
        if (mode == NN_OVERWRITE) cu_fill(dx, (size_t)n * in, 0.0f);
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(cu_ctx.cublas, CUBLAS_OP_T, CUBLAS_OP_N, in, n, out, &one, w, out, dy,
                             out, mode == NN_ACCUMULATE ? &one : &zero, dx, in));
}

/* dw: [in, out] (+)= x^T . dy, db: [out] (+)= the column sums of dy */
void cu_dense_bwd_filter(float *dw, float *db, const float *dy, const float *x, int n, int in,
                         int out, nn_accum mode)
{
    if (out <= 0) return;
    if (db) cu_bias_grad(db, dy, (size_t)(n > 0 ? n : 0), out, mode);
    if (in <= 0) return;
    if (n <= 0) {
        if (mode == NN_OVERWRITE) cu_fill(dw, (size_t)in * out, 0.0f);
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(cu_ctx.cublas, CUBLAS_OP_N, CUBLAS_OP_T, out, in, n, &one, dy, out, x,
                             in, mode == NN_ACCUMULATE ? &one : &zero, dw, out));
}
