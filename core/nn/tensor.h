/* tensor.h: the 4-D tensor every layer works on, NHWC (channels innermost), densely packed.
 * The data pointer belongs to the backend that allocated it (host memory for the CPU backend).
 * Elements are fp32 unless dt says bf16 or fp16 (a backend that trains in 16 bits:
 * core/nn/half.h); backend memory is addressed as float * either way, so offsets into a tensor go
 * through nn_at. */
#ifndef NN_TENSOR_H
#define NN_TENSOR_H

#include <stddef.h>

typedef enum nn_dtype {
    NN_F32,  /* IEEE fp32 (the default: a zeroed tensor is fp32) */
    NN_BF16, /* bfloat16: fp32's top 16 bits, 2 bytes an element */
    NN_F16,  /* IEEE binary16, 2 bytes an element */
} nn_dtype;

typedef struct nn_tensor {
    float *d; /* [n, h, w, c] */
    int n, h, w, c;
    nn_dtype dt;
} nn_tensor;

static inline size_t nn_numel(const nn_tensor *t)
{
    return (size_t)t->n * t->h * t->w * t->c;
}

static inline size_t nn_dtype_size(nn_dtype dt)
{
    return dt == NN_F32 ? 4 : 2;
}

/* The floats of backend memory that n elements of type dt take (what to ask alloc for). */
static inline size_t nn_floats_for(size_t n, nn_dtype dt)
{
    return dt == NN_F32 ? n : (n + 1) / 2;
}

/* Element i of memory holding elements of type dt, as a float * for the backend calls. */
static inline float *nn_at(float *d, nn_dtype dt, size_t i)
{
    return (float *)((char *)d + i * nn_dtype_size(dt));
}

/* n elements of type dt as one row (n < 2^31: arenas, flat buffers) */
static inline nn_tensor nn_flat(float *d, size_t n, nn_dtype dt)
{
    return (nn_tensor){d, 1, 1, 1, (int)n, dt};
}

/* An fp32 matrix [rows, cols] as a tensor [rows, 1, 1, cols] (dense layers' inputs and outputs,
 * flat buffers for element-wise calls). */
static inline nn_tensor nn_rows(float *d, int rows, int cols)
{
    return (nn_tensor){d, rows, 1, 1, cols, NN_F32};
}

/* Host tensors (64-byte aligned, zeroed); nn_tensor_free accepts a zeroed struct. */
nn_tensor nn_tensor_new(int n, int h, int w, int c);
void nn_tensor_free(nn_tensor *t);

/* Reuses t's buffer when it is large enough, otherwise reallocates; contents undefined. */
void nn_tensor_reshape(nn_tensor *t, int n, int h, int w, int c);

#endif
