/* loss.h: the training loss of one side as Faceswap composes it: each loss function of the
 * configuration (e.g. SSIM and MSE) taken on the face times its mask, and again on the eye and
 * mouth regions with their multipliers; with a learned mask, the mask output's MSE against the
 * face mask. The arithmetic is the backend's loss operation. */
#ifndef VS_LOSS_H
#define VS_LOSS_H

#include "nn/backend.h"

#define LOSS_MAX_FUNCS 2

typedef struct loss_cfg {
    int n_funcs;
    nn_loss_kind kind[LOSS_MAX_FUNCS];
    float weight[LOSS_MAX_FUNCS];
    int penalized_mask; /* take the loss on face x mask (and enable the multipliers) */
    float eye, mouth;   /* region multipliers; 1 = no extra term */
} loss_cfg;

/* Faceswap's default: SSIM + MSE on the masked face, eyes x3, mouth x2. */
void loss_cfg_default(loss_cfg *c);

/* Parses "mae" | "mse" | "ssim"; -1 if none. */
int loss_kind_parse(nn_loss_kind *k, const char *s);
const char *loss_kind_name(nn_loss_kind k);

/* One side's loss. dpred: [n, h, w, 3] is overwritten with dL/dpred; weight * L is added to
 * *loss (backend memory). masks: [n, h, w] each (face, eye, mouth; NULL without masks). */
void loss_face(const nn_backend *be, float *dpred, float *loss, const nn_tensor *pred,
               const nn_tensor *target, const float *mask_face, const float *mask_eye,
               const float *mask_mouth, const loss_cfg *c);

/* The learned mask's loss: MSE of pred ([n, h, w, 1]) against the face mask; dpred overwritten. */
void loss_mask(const nn_backend *be, float *dpred, float *loss, const nn_tensor *pred,
               const float *mask_face);

#endif
