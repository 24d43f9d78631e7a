/* step.c: one training step (see step.h). */
#include <math.h>

#include "err.h"
#include "step.h"

void step_set_scale(step *s, double scale)
{
    VS_CHECK(s->scaled && scale >= 1.0);
    float v[4] = {(float)scale, (float)scale, (float)scale, (float)scale};
    s->scale = scale;
    s->be->copy_in(s->scale_vec, v, 4);
}

void step_init(step *s, model *m, int n, const loss_cfg *lc, const nn_adam *h)
{
    const nn_backend *be = m->be;
    const int S = m->arch->input_size;
    const size_t per = (size_t)S * S * 3, px = (size_t)S * S;
    *s = (step){.be = be, .m = m, .n = n, .lc = *lc, .h = *h};
    s->x = (nn_tensor){be->alloc(2 * n * per), 2 * n, S, S, 3, NN_F32};
    for (int k = 0; k < 2; k++) {
        s->tgt[k] = (nn_tensor){be->alloc(n * per), n, S, S, 3, NN_F32};
        for (int q = 0; q < 3; q++) s->mask[k][q] = be->alloc(n * px);
    }
    s->ctl = be->alloc(8);
    be->fill(s->ctl, 8, 0.0f);
    if (m->dt == NN_F16) {
        s->scaled = 1;
        s->scale_vec = be->alloc(4);
        step_set_scale(s, STEP_SCALE_INIT);
    } else {
        s->scale = 1.0;
    }
}

void step_free(step *s)
{
    const nn_backend *be = s->be;
    if (!be) return;
    if (s->graph) be->graph_free(s->graph);
    be->free(s->x.d);
    for (int k = 0; k < 2; k++) {
        be->free(s->tgt[k].d);
        for (int q = 0; q < 3; q++) be->free(s->mask[k][q]);
    }
    be->free(s->ctl);
    if (s->scale_vec) be->free(s->scale_vec);
    *s = (step){0};
}

void step_set_augment(step *s, const uint8_t *const px[2], const uint8_t *const masks[2], int P,
                      const nn_aug_image *ims)
{
    const int S = s->m->arch->input_size;
    const size_t per = (size_t)S * S * 3;
    for (int k = 0; k < 2; k++)
        s->aug[k] = (nn_aug_batch){
            .input = s->x.d + (size_t)k * s->n * per,
            .target = s->tgt[k].d,
            .mask = {s->mask[k][0], s->mask[k][1], s->mask[k][2]},
            .px = px[k],
            .masks = masks[k],
            .img = ims + (size_t)k * s->n,
            .n = s->n,
            .P = P,
            .si = S,
            .st = S,
        };
    s->augment = 1;
}

static void enqueue(step *s, const nn_adam *h, int poison)
{
    const nn_backend *be = s->be;
    model *m = s->m;
    float *loss = s->ctl + 4;
    if (s->augment) {
        be->augment(&s->aug[0]);
        be->augment(&s->aug[1]);
    }
    model_forward(m, &s->x);
    be->fill(s->ctl + 1, 1, 0.0f);
    be->fill(loss, 2, 0.0f);
    for (int k = 0; k < 2; k++) {
        nn_tensor *g = model_output_grad(m, k, 0);
        loss_face(be, g->d, loss + k, model_output(m, k, 0), &s->tgt[k], s->mask[k][0],
                  s->mask[k][1], s->mask[k][2], &s->lc);
        nn_tensor *gm = model_output_grad(m, k, 1);
        if (gm) loss_mask(be, gm->d, loss + k, model_output(m, k, 1), s->mask[k][0]);
        if (s->scaled) {
            be->scale_bias(g, s->scale_vec, NULL);
            if (gm) be->scale_bias(gm, s->scale_vec, NULL);
        }
    }
    model_backward(m);
    if (poison) {
        float nan = NAN; /* a NaN in any type (a 16-bit gradient arena: the second element) */
        be->copy_in(nn_at(m->g, m->dt, m->params[0].offset), &nan, 1);
    }
    nn_tensor lt = nn_flat(loss, 2, NN_F32), g = nn_flat(m->g, m->n_floats, m->dt),
              pw = nn_flat(m->pw, m->n_floats, m->dt);
    be->flag_nonfinite(s->ctl + 1, &lt);
    if (s->scaled) be->flag_nonfinite(s->ctl + 1, &g); /* before Adam touches the weights */
    be->adam_ctl(m->p, m->m, m->v, &g, h, s->ctl, m->pw ? &pw : NULL); /* checks g itself */
}

int step_run(step *s, double loss[2], step_mode mode, int poison)
{
    const nn_backend *be = s->be;
    model *m = s->m;
    nn_adam h = s->h;
    h.t = m->adam_t + 1;
    VS_CHECK(m->n_floats <= INT32_MAX);
    for (;;) {
        float head[3] = {nn_adam_step_size(&h), 0.0f, (float)(1.0 / s->scale)};
        be->copy_in(s->ctl, head, 3);
        if (mode == STEP_DIRECT || !be->capture_begin || poison || s->runs == 0) {
            enqueue(s, &h, poison);
        } else {
            if (!s->graph) {
                be->capture_begin();
                enqueue(s, &h, 0);
                s->graph = be->capture_end();
            }
            be->graph_run(s->graph);
        }
        s->runs++;
        float c[6];
        be->copy_out(c, s->ctl, 6);
        loss[0] = c[4], loss[1] = c[5];
        if (c[1] == 0.0f) {
            m->adam_t = h.t;
            if (s->scaled && ++s->good >= STEP_SCALE_GROWTH) {
                if (s->scale < STEP_SCALE_MAX) step_set_scale(s, 2 * s->scale);
                s->good = 0;
            }
            return 1;
        }
        /* a NaN loss, or a gradient that is not finite at the lowest scale, is a failure */
        if (!s->scaled || poison || !isfinite(c[4]) || !isfinite(c[5]) || s->scale <= 1.0) return 0;
        s->good = 0;
        step_set_scale(s, s->scale / 2); /* an fp16 overflow: the weights are as they were */
    }
}
