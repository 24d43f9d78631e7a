/* tensor.c: host tensor allocation (see tensor.h). */
#include "tensor.h"

#include <stdlib.h>
#include <string.h>

#include "../err.h"

nn_tensor nn_tensor_new(int n, int h, int w, int c)
{
    nn_tensor t = {0};
    nn_tensor_reshape(&t, n, h, w, c);
    memset(t.d, 0, nn_numel(&t) * sizeof(float));
    return t;
}

void nn_tensor_reshape(nn_tensor *t, int n, int h, int w, int c)
{
    size_t have = t->d ? nn_numel(t) : 0;
    size_t need = (size_t)n * h * w * c;
    t->n = n, t->h = h, t->w = w, t->c = c;
    if (t->d && need <= have) return;
    free(t->d);
    size_t bytes = (need * sizeof(float) + 63) & ~(size_t)63;
    t->d = aligned_alloc(64, bytes ? bytes : 64);
    VS_CHECK(t->d != NULL);
}

void nn_tensor_free(nn_tensor *t)
{
    free(t->d);
    t->d = NULL;
    t->n = t->h = t->w = t->c = 0;
}
