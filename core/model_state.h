/* model_state.h: a model's trained state (every parameter and both Adam moments) to and from a
 * checkpoint, through host copies when the model lives on the GPU, so a model saved on one
 * device resumes on another. Used by the trainer and, without the trainer, by the GPU tests. */
#ifndef VS_MODEL_STATE_H
#define VS_MODEL_STATE_H

#include "ckpt.h"
#include "model.h"

/* Tensor names are "<param>", "adam_m.<param>" and "adam_v.<param>". */
#define MDL_STATE_NAME 72

/* The state as checkpoint tensors: *t and *names are allocated (3 x n_params each) and the data
 * points into m's arenas, or into *host (3 x n_floats, allocated) when m's backend is not the
 * CPU. Returns the tensor count; free(*t), free(*names), free(*host) afterwards. */
int model_state_tensors(ckpt_tensor **t, char (**names)[MDL_STATE_NAME], float **host,
                        const model *m);

/* Reads every parameter and Adam moment from c into m's arenas (m built with the checkpoint's
 * architecture and options). -1 with a message naming the file for a missing or misshapen
 * tensor. */
int model_state_read(model *m, const ckpt *c, vs_err *e);

#endif
