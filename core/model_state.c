/* model_state.c: a model's parameters and Adam moments to and from checkpoint tensors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_state.h"

static const char *const prefix[3] = {"", "adam_m.", "adam_v."};

int model_state_tensors(ckpt_tensor **t, char (**names)[MDL_STATE_NAME], float **host,
                        const model *m)
{
    const float *arenas[3] = {m->p, m->m, m->v};
    *host = NULL;
    if (m->be != nn_cpu_backend()) {
        *host = vs_malloc(3 * m->n_floats * sizeof(float));
        for (int a = 0; a < 3; a++) {
            model_arena_download(m, *host + a * m->n_floats, arenas[a]);
            arenas[a] = *host + a * m->n_floats;
        }
    }
    *t = vs_malloc(sizeof(ckpt_tensor) * 3 * (size_t)m->n_params);
    *names = vs_malloc(MDL_STATE_NAME * 3 * (size_t)m->n_params);
    int k = 0;
    for (int a = 0; a < 3; a++)
        for (int i = 0; i < m->n_params; i++) {
            const mdl_param *q = &m->params[i];
            snprintf((*names)[k], MDL_STATE_NAME, "%s%s", prefix[a], q->name);
            (*t)[k] =
                (ckpt_tensor){.name = (*names)[k], .ndim = q->ndim, .data = arenas[a] + q->offset};
            memcpy((*t)[k].shape, q->shape, sizeof q->shape);
            k++;
        }
    return k;
}

int model_state_read(model *m, const ckpt *c, vs_err *e)
{
    float *host = m->be == nn_cpu_backend() ? NULL : vs_calloc(m->n_floats, sizeof(float));
    float *arenas[3] = {m->p, m->m, m->v};
    char name[MDL_STATE_NAME];
    for (int a = 0; a < 3; a++) {
        float *dst = host ? host : arenas[a];
        for (int i = 0; i < m->n_params; i++) {
            const mdl_param *q = &m->params[i];
            snprintf(name, sizeof name, "%s%s", prefix[a], q->name);
            if (ckpt_read(c, name, dst + q->offset, q->ndim, q->shape, e)) {
                free(host);
                return -1; /* the message names the file and the tensor */
            }
        }
        if (host) model_arena_upload(m, arenas[a], host);
    }
    free(host);
    return 0;
}
