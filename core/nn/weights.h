/* weights.h: loading a TF.js layers/graph weight manifest (model.json-style
 * `*-weights_manifest.json` plus its .bin shards, parsed with jansson). Every tensor is
 * dequantised to float32 (uint8/uint16 quantisation with min and scale, or plain float32) and
 * looked up by name with its shape checked against what the network expects. */
#ifndef NN_WEIGHTS_H
#define NN_WEIGHTS_H

#include "../err.h"

typedef struct nn_weights nn_weights;

/* manifest: path of the *-weights_manifest.json; shards are read from the same folder. */
int nn_weights_load(nn_weights **out, const char *manifest, vs_err *e);
void nn_weights_free(nn_weights *w);

/* Returns the float data of tensor `name` (owned by w) after checking that its shape is exactly
 * shape[0..ndim-1]; on a missing tensor or another shape, NULL and a message naming the file. */
const float *nn_weights_get(nn_weights *w, const char *name, int ndim, const int *shape, vs_err *e);

/* Marks every tensor nn_weights_get returned; the number of tensors never asked for (a network
 * that ignores part of a file is a mismatch worth reporting). */
int nn_weights_unused(const nn_weights *w, const char **first_unused);

const char *nn_weights_path(const nn_weights *w);

#endif
