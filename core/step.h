/* step.h: one training step of a model on its backend, the arithmetic the trainer runs each
 * iteration (and the GPU tests and benchmarks run without the trainer's files and threads):
 * optionally the batch's augmentation, forward through the encoder and both decoders, the
 * configured loss of each side, backward, and Adam, which checks the gradients as it reads them
 * (a step with a non-finite loss or gradient is flagged and its weights must be reloaded). The
 * per-step values live in backend memory, so on a backend with graphs the
 * step is recorded once (after one step run call by call, which allocates and chooses
 * algorithms) and replayed every iteration. */
#ifndef VS_STEP_H
#define VS_STEP_H

#include "loss.h"
#include "model.h"

#define STEP_SCALE_INIT 65536.0 /* 2^16, as PyTorch's GradScaler */
#define STEP_SCALE_MAX 16777216.0
#define STEP_SCALE_GROWTH 2000

typedef enum step_mode {
    STEP_AUTO,   /* replay the recorded step where the backend can */
    STEP_DIRECT, /* run the calls one by one */
} step_mode;

typedef struct step {
    const nn_backend *be;
    model *m;
    int n; /* faces per side */
    loss_cfg lc;
    nn_adam h; /* lr, betas, eps (t comes from the model) */
    /* the batch, in backend memory, written by the caller before each step: inputs [2n, S, S, 3]
     * (side A then B), targets [n, S, S, 3] and face, eye and mouth masks [n, S, S] per side */
    nn_tensor x, tgt[2];
    float *mask[2][3];
    /* [0] Adam's lr_t, [1] the non-finite flag, [2] what Adam multiplies the gradients by (1 /
     * scale), [4], [5] the losses of sides A and B */
    float *ctl;
    /* fp16 models (m->dt NN_F16): dynamic loss scaling. The loss gradients are multiplied by
     * `scale` (a power of two, so exactly) before backward, so that small gradients do not
     * vanish in fp16, and Adam divides it out. A gradient that overflows to Inf or NaN leaves the
     * weights as they were (the step checks them before Adam): the scale is halved and the step
     * run again; after STEP_SCALE_GROWTH good steps in a row it is doubled. */
    int scaled;
    double scale;
    long good;
    float *scale_vec; /* scale, per channel of the outputs (backend memory, 4) */
    /* with augmentation in the step (step_set_augment): side A's and B's images */
    int augment;
    nn_aug_batch aug[2];
    void *graph;
    long runs;
} step;

/* Batch buffers for n faces per side of model m (on m's backend). */
void step_init(step *s, model *m, int n, const loss_cfg *lc, const nn_adam *h);
void step_free(step *s);

/* Makes the batch part of the step: from then on every step first augments both sides' images
 * into x, tgt and mask from the uint8 crops px[k] and masks[k] (P x P, backend memory) with the
 * transforms ims[0 .. 2n) (backend memory, side A's n then side B's, rewritten by the caller
 * before each step). */
void step_set_augment(step *s, const uint8_t *const px[2], const uint8_t *const masks[2], int P,
                      const nn_aug_image *ims);

/* Sets an fp16 step's loss scale (a power of two; the trainer's, or a test's). */
void step_set_scale(step *s, double scale);

/* Runs one step. With `poison` (tests), a NaN goes into the first gradient after backward (the
 * step then runs call by call). Returns 1 when everything was finite and Adam was applied
 * (m->adam_t counts it); 0 when a loss or gradient was not finite, after which the weights and
 * moments are to be reloaded (on the CPU they are untouched; the GPU may have written some).
 * An fp16 step whose gradients overflow is run again at a lower scale first, and fails only
 * when the scale is down to 1. loss[] gets both sides' losses either way. */
int step_run(step *s, double loss[2], step_mode mode, int poison);

#endif
