/* step.c: one training step (see step.h). */
#include <math.h>

#include "err.h"
#include "step.h"

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
    s->ctl = be->alloc(4);
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
    float *loss = s->ctl + 2;
    if (s->augment) {
        be->augment(&s->aug[0]);
        be->augment(&s->aug[1]);
    }
    model_forward(m, &s->x);
    be->fill(s->ctl + 1, 3, 0.0f);
    for (int k = 0; k < 2; k++) {
        nn_tensor *g = model_output_grad(m, k, 0);
        loss_face(be, g->d, loss + k, model_output(m, k, 0), &s->tgt[k], s->mask[k][0],
                  s->mask[k][1], s->mask[k][2], &s->lc);
        nn_tensor *gm = model_output_grad(m, k, 1);
        if (gm) loss_mask(be, gm->d, loss + k, model_output(m, k, 1), s->mask[k][0]);
    }
    model_backward(m);
    if (poison) {
        float nan = NAN;
        be->copy_in(m->g + m->params[0].offset, &nan, 1);
    }
    be->flag_nonfinite(s->ctl + 1, loss, 2);
    be->adam_ctl(m->p, m->m, m->v, m->g, m->n_floats, h, s->ctl, m->pw); /* flags a bad gradient */
}

int step_run(step *s, double loss[2], step_mode mode, int poison)
{
    const nn_backend *be = s->be;
    model *m = s->m;
    nn_adam h = s->h;
    h.t = m->adam_t + 1;
    float lr_t = nn_adam_step_size(&h);
    be->copy_in(s->ctl, &lr_t, 1);
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
    float c[4];
    be->copy_out(c, s->ctl, 4);
    loss[0] = c[2], loss[1] = c[3];
    if (c[1] != 0.0f) return 0;
    m->adam_t = h.t;
    return 1;
}
