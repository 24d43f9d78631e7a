/* tensor.h: the 4-D float tensor every layer works on, NHWC (channels innermost), densely packed.
 * The data pointer belongs to the backend that allocated it (host memory for the CPU backend). */
#ifndef NN_TENSOR_H
#define NN_TENSOR_H

#include <stddef.h>

typedef struct nn_tensor {
    float *d; /* [n, h, w, c] */
    int n, h, w, c;
} nn_tensor;

static inline size_t nn_numel(const nn_tensor *t)
{
    return (size_t)t->n * t->h * t->w * t->c;
}

/* Host tensors (64-byte aligned, zeroed); nn_tensor_free accepts a zeroed struct. */
nn_tensor nn_tensor_new(int n, int h, int w, int c);
void nn_tensor_free(nn_tensor *t);

/* Reuses t's buffer when it is large enough, otherwise reallocates; contents undefined. */
void nn_tensor_reshape(nn_tensor *t, int n, int h, int w, int c);

#endif
