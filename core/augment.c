/* augment.c: the training data generator (see augment.h). Coordinates are normalised to the image,
 * [0, 1] edge to edge, so one transform serves the crop (P) and both outputs (input and target
 * sizes); pixel i covers [i / n, (i + 1) / n). */
#include "augment.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/cpu_pool.h"
#include "nn/cpu_train.h"
#include "rng.h"

void augment_config_default(augment_config *c)
{
    memset(c, 0, sizeof *c);
    c->rotation_deg = 10.f;
    c->zoom = 0.05f;
    c->shift = 0.05f;
    c->flip_chance = 0.5f;
    c->lab_lightness = 0.30f;
    c->lab_ab = 0.08f;
    c->warp_sigma = 5.f / 256.f;
}

void augment_params_identity(augment_params *p)
{
    memset(p, 0, sizeof *p);
    p->scale = 1.f;
}

void augment_draw(augment_params *p, const augment_config *c, uint64_t seed, int64_t iteration,
                  int side, int index)
{
    rng r;
    rng_stream(&r, seed, (uint64_t)iteration, (uint64_t)side, (uint64_t)index);
    augment_params_identity(p);
    /* every draw is made whether its amount is zero or not, so turning one augmentation off
     * leaves the others' numbers as they were */
    p->angle_deg = c->rotation_deg * rng_range(&r, -1.f, 1.f);
    p->scale = 1.f + c->zoom * rng_range(&r, -1.f, 1.f);
    p->tx = c->shift * rng_range(&r, -1.f, 1.f);
    p->ty = c->shift * rng_range(&r, -1.f, 1.f);
    p->flip = rng_uniform(&r) < c->flip_chance;
    p->lab[0] = c->lab_lightness * rng_range(&r, -1.f, 1.f);
    p->lab[1] = c->lab_ab * rng_range(&r, -1.f, 1.f);
    p->lab[2] = c->lab_ab * rng_range(&r, -1.f, 1.f);
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < AUGMENT_GRID; i++)
            for (int k = 0; k < AUGMENT_GRID; k++)
                p->warp[a][i][k] = c->warp_sigma * rng_normal(&r);
}

/* ---- from draws to the backend's per-image transform ------------------------------------- */

/* h: normalised output position u -> crop pixel, for the flip and the inverse of the transform
 * (cv2.getRotationMatrix2D's: dst = c + s R (src - c) + t, R = [cos sin; -sin cos], c the
 * centre): src = c + R^T (dst - c - t) / s; crop pixel = P src - 1/2. */
static void output_to_crop(double h[6], const augment_params *p, int P)
{
    double th = p->angle_deg * M_PI / 180.0, cs = cos(th), sn = sin(th), is = 1.0 / p->scale;
    /* v = flip(u): vx = fx * ux + fo */
    double fx = p->flip ? -1.0 : 1.0, fo = p->flip ? 1.0 : 0.0;
    /* src = c + is * R^T (v - c - t), R^T = [cos -sin; sin cos] */
    double a = is * cs, b = -is * sn, c = is * sn, d = is * cs;
    double ox = fo - 0.5 - p->tx, oy = -0.5 - p->ty; /* v - c - t = (fx ux + ox, uy + oy) */
    h[0] = P * a * fx, h[1] = P * b, h[2] = P * (0.5 + a * ox + b * oy) - 0.5;
    h[3] = P * c * fx, h[4] = P * d, h[5] = P * (0.5 + c * ox + d * oy) - 0.5;
}

static int has_warp(const augment_params *p)
{
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < AUGMENT_GRID; i++)
            for (int k = 0; k < AUGMENT_GRID; k++)
                if (p->warp[a][i][k] != 0.f) return 1;
    return 0;
}

void augment_prepare(nn_aug_image *im, const augment_params *p, int face, int P)
{
    memset(im, 0, sizeof *im);
    output_to_crop(im->h, p, P);
    im->face = face;
    memcpy(im->lab, p->lab, sizeof im->lab);
    memcpy(im->warp, p->warp, sizeof im->warp);
    im->colour = p->lab[0] != 0.f || p->lab[1] != 0.f || p->lab[2] != 0.f;
    im->warped = has_warp(p);
}

/* The batch of outputs out (host memory) from fs, images ims[0 .. n). */
static nn_aug_batch host_batch(const augment_out *out, const faceset *fs, const nn_aug_image *ims,
                               int n, const augment_config *c)
{
    nn_aug_batch b = {
        .input = out->input,
        .target = out->target,
        .mask = {out->mask_face, out->mask_eye, out->mask_mouth},
        .px = fs->px,
        .masks = fs->mask,
        .img = ims,
        .n = n,
        .P = fs->size,
        .si = c->input_size ? c->input_size : fs->model_size,
        .st = c->target_size ? c->target_size : fs->model_size,
    };
    return b;
}

void augment_image(const augment_out *out, int b, const faceset *fs, int face,
                   const augment_params *p, const augment_config *c)
{
    nn_aug_image im[1];
    augment_prepare(im, p, face, fs->size);
    /* image b of the outputs: a one-image batch whose outputs start at image b */
    augment_out o = *out;
    const int si = c->input_size ? c->input_size : fs->model_size,
              st = c->target_size ? c->target_size : fs->model_size;
    if (o.input) o.input += (size_t)b * si * si * 3;
    if (o.target) o.target += (size_t)b * st * st * 3;
    if (o.mask_face) o.mask_face += (size_t)b * st * st;
    if (o.mask_eye) o.mask_eye += (size_t)b * st * st;
    if (o.mask_mouth) o.mask_mouth += (size_t)b * st * st;
    nn_aug_batch bt = host_batch(&o, fs, im, 1, c);
    cpu_augment_image(&bt, 0);
}

void augment_draw_batch(nn_aug_image *ims, const faceset *fs, const int *idx, int n,
                        const augment_config *c, uint64_t seed, int64_t iteration, int side)
{
    for (int b = 0; b < n; b++) {
        VS_CHECK(idx[b] >= 0 && idx[b] < fs->n);
        augment_params p;
        augment_draw(&p, c, seed, iteration, side, b);
        augment_prepare(&ims[b], &p, idx[b], fs->size);
    }
}

void augment_batch(const augment_out *out, const faceset *fs, const int *idx, int n,
                   const augment_config *c, uint64_t seed, int64_t iteration, int side)
{
    nn_aug_image *ims = vs_malloc(sizeof *ims * (size_t)(n > 0 ? n : 1));
    augment_draw_batch(ims, fs, idx, n, c, seed, iteration, side);
    nn_aug_batch bt = host_batch(out, fs, ims, n, c);
    cpu_augment(&bt);
    free(ims);
}
