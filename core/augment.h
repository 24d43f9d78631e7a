/* augment.h: the training data generator, as Faceswap's (lib/training/generator.py and
 * augmentation.py): from the uint8 crops of a faceset, a batch of float images for the model. Per
 * image: LAB colour jitter; random rotate, zoom, shift and flip (the target is taken here); then a
 * random warp of a 5x5 control grid for the input. Transform and warp are composed into one
 * bilinear resampling from the processing-size crop to the model's size. Every random number of
 * image i comes from its own stream (seed, iteration, side, i), so a batch is the same whatever
 * the thread count, and again after a resume. */
#ifndef VS_AUGMENT_H
#define VS_AUGMENT_H

#include <stdint.h>

#include "faceset.h"
#include "nn/backend.h"

/* Every amount; 0 turns that augmentation off. Defaults (augment_config_default) are Faceswap's. */
typedef struct augment_config {
    float rotation_deg;  /* rotation uniform in [-r, r] degrees (10) */
    float zoom;          /* scale uniform in [1 - z, 1 + z] (0.05) */
    float shift;         /* translation uniform in [-s, s] of the size, each axis (0.05) */
    float flip_chance;   /* chance of a horizontal flip (0.5) */
    float lab_lightness; /* LAB L adjustment uniform in [-l, l] (0.30) */
    float lab_ab;        /* LAB a and b adjustments uniform in [-c, c] (0.08) */
    float warp_sigma;    /* std of the warp grid's offsets, fraction of the size (5/256) */
    int input_size;      /* side of input; 0 = the faceset's model size */
    int target_size;     /* side of target and masks; 0 = the faceset's model size */
} augment_config;

void augment_config_default(augment_config *c);

#define AUGMENT_GRID 5

/* The random draws of one image (augment_draw), or chosen by hand (tests, previews). */
typedef struct augment_params {
    float angle_deg;                           /* counter-clockwise on screen, about the centre */
    float scale;                               /* zoom, 1 = none */
    float tx, ty;                              /* shift, fractions of the size (right, down) */
    int flip;                                  /* mirrored left-right after the transform */
    float lab[3];                              /* L, a, b adjustments in [-1, 1] */
    float warp[2][AUGMENT_GRID][AUGMENT_GRID]; /* x, y offsets of the control points, fractions
                                                  of the size; the grid spans the image edges */
} augment_params;

/* p = the draws of image `index` of `side` at `iteration` under seed. */
void augment_draw(augment_params *p, const augment_config *c, uint64_t seed, int64_t iteration,
                  int side, int index);

/* Identity: no transform, no warp, no colour change. */
void augment_params_identity(augment_params *p);

typedef struct augment_out {
    float *input;      /* [n, Si, Si, 3] in [0, 1]: warped */
    float *target;     /* [n, St, St, 3] in [0, 1]: not warped */
    float *mask_face;  /* [n, St, St] in [0, 1], transformed as the target; may be NULL */
    float *mask_eye;   /* [n, St, St]; may be NULL */
    float *mask_mouth; /* [n, St, St]; may be NULL */
} augment_out;

/* The backend's form of image `face`'s draws p (P: the crops' side). */
void augment_prepare(nn_aug_image *im, const augment_params *p, int face, int P);
/* Draws of a whole batch (faces idx[0 .. n) of fs), in the backend's form. */
void augment_draw_batch(nn_aug_image *ims, const faceset *fs, const int *idx, int n,
                        const augment_config *c, uint64_t seed, int64_t iteration, int side);

/* Image b of the outputs from face fs[face] with the draws p (one image, on this thread). */
void augment_image(const augment_out *out, int b, const faceset *fs, int face,
                   const augment_params *p, const augment_config *c);

/* The batch of faces idx [n] of fs: draws per image from (seed, iteration, side, b), in parallel
 * on the CPU pool. */
void augment_batch(const augment_out *out, const faceset *fs, const int *idx, int n,
                   const augment_config *c, uint64_t seed, int64_t iteration, int side);

#endif
