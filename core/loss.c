/* loss.c: a side's loss from the configured terms (Faceswap's LossWrapper with its mask
 * channels: every face loss on the masked face, then times eye_multiplier on the eyes and
 * mouth_multiplier on the mouth). */
#include <string.h>

#include "err.h"
#include "loss.h"

static const char *const kind_names[] = {"mae", "mse", "ssim"};

void loss_cfg_default(loss_cfg *c)
{
    *c = (loss_cfg){.n_funcs = 2,
                    .kind = {NN_LOSS_SSIM, NN_LOSS_MSE},
                    .weight = {1.0f, 1.0f},
                    .penalized_mask = 1,
                    .eye = 3.0f,
                    .mouth = 2.0f};
}

int loss_kind_parse(nn_loss_kind *k, const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, kind_names[i]) == 0) {
            *k = (nn_loss_kind)i;
            return 0;
        }
    return -1;
}

const char *loss_kind_name(nn_loss_kind k)
{
    return k >= 0 && k < 3 ? kind_names[k] : "?";
}

void loss_face(const nn_backend *be, float *dpred, float *loss, const nn_tensor *pred,
               const nn_tensor *target, const float *mask_face, const float *mask_eye,
               const float *mask_mouth, const loss_cfg *c)
{
    VS_CHECK(c->n_funcs >= 1 && c->n_funcs <= LOSS_MAX_FUNCS);
    be->fill(dpred, nn_numel(pred), 0.0f);
    const int masked = c->penalized_mask && mask_face;
    for (int i = 0; i < c->n_funcs; i++) {
        const float w = c->weight[i];
        if (w == 0.0f) continue;
        be->loss(dpred, loss, pred, target, masked ? mask_face : NULL, c->kind[i], w);
        if (!masked) continue;
        if (c->eye > 1.0f && mask_eye)
            be->loss(dpred, loss, pred, target, mask_eye, c->kind[i], w * c->eye);
        if (c->mouth > 1.0f && mask_mouth)
            be->loss(dpred, loss, pred, target, mask_mouth, c->kind[i], w * c->mouth);
    }
}

void loss_mask(const nn_backend *be, float *dpred, float *loss, const nn_tensor *pred,
               const float *mask_face)
{
    VS_CHECK(pred->c == 1);
    be->fill(dpred, nn_numel(pred), 0.0f);
    nn_tensor target = *pred;
    target.d = (float *)mask_face;
    be->loss(dpred, loss, pred, &target, NULL, NN_LOSS_MSE, 1.0f);
}
