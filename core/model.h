/* model.h: a face-swap model: one shared encoder and two decoders (side A and side B), each a
 * short list of layers built from Faceswap's blocks. Parameters, their gradients and the two Adam
 * moments each live in one arena (backend memory) described by one named tensor directory, so
 * checkpoints, Adam and the finiteness check are one loop or one call each. Architectures are
 * one file each in core/arch/ and are found by name through model_arch_find. */
#ifndef VS_MODEL_H
#define VS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "align.h"
#include "err.h"
#include "nn/backend.h"

#define MDL_MAX_LAYERS 48
#define MDL_MAX_PARAMS 192

typedef enum mdl_op {
    MDL_CONV,      /* conv2d + bias + act */
    MDL_DEPTHWISE, /* depthwise conv (no bias, no act): the first half of a separable conv */
    MDL_DENSE,     /* flatten the input, dense + bias + act; output reshaped to (h, w, c) */
    MDL_SHUFFLE,   /* pixel shuffle, depth_to_space order */
    MDL_ADD,       /* in + in2, then act */
} mdl_op;

typedef struct mdl_layer {
    mdl_op op;
    char name[40];
    int in, in2; /* producing layer in the same net; -1 is the net's input */
    int filters, k, stride;
    nn_act act;
    float alpha;
    /* filled in when the layer is added: */
    int h, w, c;     /* output shape of one sample */
    int ih, iw, ic;  /* input shape of one sample */
    nn_conv_desc cd; /* MDL_CONV / MDL_DEPTHWISE geometry, act included */
    int pw, pb;      /* parameter directory indices of the weights and the bias, -1 if none */
} mdl_layer;

typedef struct mdl_net {
    char name[16]; /* encoder | decoder_a | decoder_b */
    int in_h, in_w, in_c;
    int n_layers;
    mdl_layer layers[MDL_MAX_LAYERS];
    int face_out, mask_out; /* output layers; mask_out -1 without a learned mask */
    nn_tensor in;           /* the input of the last forward pass (not owned) */
    /* activations and their gradients, per layer, for the batch of the last forward pass */
    nn_tensor act[MDL_MAX_LAYERS], grad[MDL_MAX_LAYERS];
    int batch;
} mdl_net;

typedef struct mdl_param {
    char name[64]; /* "encoder.conv_0.kernel" */
    int ndim;
    int64_t shape[4];
    size_t offset, count; /* in floats, into each arena */
    int conv_cout;        /* a conv2d kernel's cout (kept in the backend's layout), else 0 */
} mdl_param;

/* The options fixed when a model is created (saved in its checkpoint, not changeable later). */
typedef struct mdl_options {
    int lowmem;                /* Original: encoder width 512 and no fourth conv */
    int learn_mask;            /* decoders also learn the face mask */
    int shrink;                /* every layer's width divided by this (1 = as published) */
    float coverage;            /* fraction of the aligned face the model sees */
    align_centering centering; /* the crop the model trains on */
} mdl_options;

typedef struct model model;

/* An architecture: the name users type, its input/output size, and a function that adds its
 * layers to m's three nets according to m->opt. */
typedef struct mdl_arch {
    const char *name;
    const char *help;
    int input_size, output_size;
    void (*build)(model *m);
} mdl_arch;

struct model {
    const mdl_arch *arch;
    mdl_options opt;
    const nn_backend *be;
    mdl_net enc, dec[2]; /* dec[0] = side A, dec[1] = side B */
    int n_params;
    mdl_param params[MDL_MAX_PARAMS];
    size_t n_floats;
    /* parameters, gradients, Adam m and v: n_floats elements each, backend memory; the gradients
     * in the model's type dt, the rest fp32 */
    float *p, *g, *m, *v;
    long adam_t; /* Adam steps taken */
    /* The type of the activations, their gradients and the weight gradients (the backend's
     * train_dtype). A 16-bit model also keeps pw, the parameters rounded to its type (what its
     * layers read: Adam rewrites it), a copy of its input in its type, and fp32 copies of its
     * outputs and their gradients for the loss. */
    nn_dtype dt;
    float *pw;
    nn_tensor x_conv, out[2][2], out_grad[2][2];
};

const mdl_arch *model_arch_find(const char *name);
/* The architectures, NULL-terminated, for help texts. */
extern const mdl_arch *const model_archs[];

void mdl_options_default(mdl_options *o);

/* Builds the architecture named `arch` with options o on backend be, parameters initialised as
 * Keras does (he_uniform convolutions, glorot_uniform dense layers, zero biases) from seed. An
 * unknown name or a bad option is -1 with a message. */
int model_create(model **out, const char *arch, const mdl_options *o, const nn_backend *be,
                 uint64_t seed, vs_err *e);
/* The same for an architecture given directly (tests build their own). */
int model_create_arch(model **out, const mdl_arch *a, const mdl_options *o, const nn_backend *be,
                      uint64_t seed, vs_err *e);
void model_free(model *m);

/* The memory a training step needs, in bytes: parameters with their gradients and both Adam
 * moments; per batch the inputs, targets, masks, every activation and its gradient; and the
 * backends' scratch (padded inputs, loss maps, the GPU's convolution workspace up to its cap).
 * An upper bound: what the trainer checks against the card's free memory before it starts. */
typedef struct mdl_plan {
    size_t params, batch, scratch, total;
} mdl_plan;

int model_plan(mdl_plan *p, const mdl_arch *a, const mdl_options *o, int n_per_side, vs_err *e);
/* The largest batch (faces per side, at most `most`) whose plan fits in `bytes`; 0 if none. */
int model_plan_largest_batch(const mdl_arch *a, const mdl_options *o, size_t bytes, int most);
/* Whether a model and batch fit a card with mem_free of mem_total bytes free (less a reserve for
 * the libraries' own allocations: 1/32 of the card and 256 MiB): 0 with *p the plan, or -1 with
 * a message naming the card and the largest batch that fits (or the CPU, when none does). */
int model_plan_check(mdl_plan *p, const mdl_arch *a, const mdl_options *o, int n, size_t mem_free,
                     size_t mem_total, const char *card, vs_err *e);

/* One arena (m->p, m->g, m->m or m->v) to or from host memory (n_floats), every conv2d kernel in
 * TensorFlow's HWIO layout on the host whatever the backend keeps (checkpoints, tests). */
void model_arena_download(const model *m, float *host, const float *arena);
void model_arena_upload(const model *m, float *arena, const float *host);

/* Parameters of the face outputs only (what Faceswap's summary counts with learn_mask off). */
size_t model_param_count(const model *m);

/* Training forward pass. x: [2n, S, S, 3] (fp32), side A's n samples first, then side B's. The
 * encoder runs on all 2n, decoder A on the first n of its output, decoder B on the rest. */
void model_forward(model *m, const nn_tensor *x);
/* The outputs of the last forward pass (fp32, backend memory): the face [n, S', S', 3]
 * (which = 0) or the learned mask [n, S', S', 1] (which = 1) of decoder `side`; NULL for a mask
 * the model does not learn. */
const nn_tensor *model_output(const model *m, int side, int which);
/* Backward pass after model_forward: the caller has written the loss gradients of the outputs
 * into model_output_grad's tensors. Overwrites m->g. */
void model_backward(model *m);
/* Where the caller writes those gradients (fp32, the shape of model_output's). */
nn_tensor *model_output_grad(model *m, int side, int which);

/* Inference: y: [n, S', S', 3] = decoder `side` (0 = A, 1 = B) of encoder(x: [n, S, S, 3]);
 * mask (may be NULL): [n, S', S', 1] when the model learns masks. Uses the nets' activation
 * buffers (not re-entrant with a training step). */
void model_infer(model *m, nn_tensor *y, nn_tensor *mask, const nn_tensor *x, int side);
/* The same pass with its outputs left in backend memory (fp32, valid until the model's next pass):
 * the face [n, S, S, 3] is returned, the mask [n, S, S, 1] in *mask (NULL when the decoder has
 * none; mask may be NULL). */
const nn_tensor *model_infer_dev(model *m, const nn_tensor **mask, const nn_tensor *x, int side);

/* The network-building helpers the architecture files use (Faceswap's nn_blocks). Each returns
 * the new layer's index. */
int mdl_conv(mdl_net *n, int in, const char *name, int filters, int k, int stride, nn_act act,
             float alpha);
int mdl_dense(mdl_net *n, int in, const char *name, int h, int w, int c);
int mdl_shuffle(mdl_net *n, int in, const char *name);
int mdl_add(mdl_net *n, int in, int in2, const char *name, nn_act act, float alpha);
int mdl_separable(mdl_net *n, int in, const char *name, int filters, int k, int stride, nn_act act,
                  float alpha);
/* Conv2DBlock: conv k5 s2 "same" + LeakyReLU 0.1 */
int mdl_conv_block(mdl_net *n, int in, int filters);
/* UpscaleBlock: conv k3 to 4 x filters + LeakyReLU 0.1 + pixel shuffle x2 */
int mdl_upscale_block(mdl_net *n, int in, int filters);
/* Conv2DOutput: conv k5 "same" + sigmoid */
int mdl_conv_output(mdl_net *n, int in, const char *name, int filters);
/* Both decoders as Faceswap's plain models build them: from an hw x hw x in_c input (in_c before
 * shrinking), upscale blocks of the given widths, then Conv2DOutput to the 3-channel face; with
 * learn_mask the same chain again to a 1-channel mask. */
void mdl_plain_decoders(model *m, int hw, int in_c, const int *widths, int n_widths);
/* Starts a net with the given per-sample input shape. */
void mdl_net_begin(mdl_net *n, const char *name, int h, int w, int c);
/* Width after m->opt.shrink. */
int mdl_width(const model *m, int filters);

#endif
