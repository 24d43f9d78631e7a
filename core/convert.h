/* convert.h: swapping one face of a frame with a trained model, as Faceswap's converter does it:
 * the crop the model was trained on (its centering and coverage), through the encoder and the
 * other side's decoder, its colours matched to the original face's, a mask (from the landmarks,
 * a box, or the model's own), eroded or grown and feathered, warped back into the frame and
 * blended. Frame pixels the mask does not reach are left as they were, bit for bit. */
#ifndef VS_CONVERT_H
#define VS_CONVERT_H

#include "err.h"
#include "image.h"
#include "model.h"

typedef enum cv_mask {
    CV_MASK_EXTENDED,   /* Faceswap's "extended" hull from the landmarks (the default) */
    CV_MASK_LEARNED,    /* the model's own mask output (models trained with --learn-mask) */
    CV_MASK_BOX,        /* the whole crop but a margin of 1/16 */
    CV_MASK_COMPONENTS, /* Faceswap's "components": the same hull with the eyebrows where they are
                         */
} cv_mask;

typedef enum cv_color {
    CV_COLOR_AVG,  /* the mean of each channel shifted to the original face's */
    CV_COLOR_RCT,  /* Reinhard: mean and deviation of each LAB channel */
    CV_COLOR_HIST, /* each channel's histogram matched to the original face's */
    CV_COLOR_NONE,
} cv_color;

typedef struct cv_opts {
    int side;       /* the decoder: 1 (B: A -> B, the default), 0 for --swap (B -> A) */
    cv_mask mask;   /* CV_MASK_EXTENDED */
    float erode;    /* percent of the face's side: > 0 shrinks the mask, < 0 grows it; 0 */
    float blur;     /* percent of the face's side: the Gaussian that feathers its edge; 5 */
    cv_color color; /* CV_COLOR_AVG */
    float sharpen;  /* unsharp-mask amount on the new face, 0 (none) to 2; 0 */
} cv_opts;

void cv_opts_default(cv_opts *o);
/* "extended" | "learned" | "box" | "components"; "avg" | "rct" | "hist" | "none": 0, or -1 for
 * anything else */
int cv_mask_parse(cv_mask *m, const char *s);
int cv_color_parse(cv_color *c, const char *s);
const char *cv_mask_name(cv_mask m);
const char *cv_color_name(cv_color c);

/* Moves the colours of face (n RGB pixels in [0, 1]) towards those of ref (n pixels), each pixel
 * weighted by w (n values in [0, 1]; NULL: 1); results clamped to [0, 1]. */
void cv_color_match(float *face, const float *ref, const float *w, int n, cv_color kind);

/* out [size, size] in [0, 1]: the mask of a face crop with landmarks lm (crop pixels); learned
 * (CV_MASK_LEARNED: the model's mask output, [size, size]) may be NULL otherwise. erode and blur
 * as in cv_opts. Zero on the crop's outermost row and column, so that what is blended back has
 * no hard edge. */
void cv_make_mask(float *out, int size, const float lm[136], cv_mask kind, const float *learned,
                  float erode, float blur);

/* Blends face (RGB in [0, 1], [size, size, 3]) into frame through mask ([size, size]): m takes
 * frame pixels to crop pixels; each frame pixel whose crop position the mask covers becomes
 * frame * (1 - a) + face * a (a bilinear at that position; the face bicubic where the frame shows
 * it larger than the crop, averaged over the pixel's footprint where smaller); the others are not
 * written. */
void cv_blend(img *frame, const float *face, const float *mask, int size, const double m[6]);

/* Swaps the faces of frames, one frame after another, with one model and one set of options,
 * keeping its buffers between frames. */
typedef struct cv_swapper cv_swapper;
cv_swapper *cv_swapper_new(model *m, const cv_opts *o);
void cv_swapper_free(cv_swapper *s);

/* Swaps the n faces with landmarks lm[i] (frame pixels) in frame, in place, on the model's
 * backend: the frame goes into its memory once and comes back once, the model takes all the
 * faces at once; masks, colours and sharpening are computed on the host. Returns the number
 * swapped; a face whose landmarks are degenerate is left as it is, *first_bad being the first
 * such (-1: none) with its message in e. -1 with a message (nothing swapped) when o asks for the
 * learned mask of a model without one. */
int cv_swap_frame(cv_swapper *s, img *frame, const float (*lm)[136], int n, int *first_bad,
                  vs_err *e);

/* Swaps the face with landmarks lm (frame pixels) in frame, in place: 0, or -1 with a message
 * when its landmarks are degenerate, or o asks for the learned mask of a model without one. */
int cv_swap_face(img *frame, const float lm[136], model *m, const cv_opts *o, vs_err *e);

#endif
