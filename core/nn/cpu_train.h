/* cpu_train.h: the CPU backend's element-wise training operations (cpu_train.c): activation
 * backward, pixel shuffle, the loss terms, Adam, the finiteness check. Internal to
 * core/nn/cpu_*.c; shapes and semantics as in backend.h. */
#ifndef NN_CPU_TRAIN_H
#define NN_CPU_TRAIN_H

#include <stddef.h>

#include "backend.h"

void cpu_act_bwd(float *dx, const float *dy, const float *y, size_t n, nn_act act, float alpha);
void cpu_depth_to_space(nn_tensor *y, const nn_tensor *x, int r);
void cpu_space_to_depth(nn_tensor *y, const nn_tensor *x, int r);
void cpu_loss(float *dpred, float *loss, const nn_tensor *pred, const nn_tensor *target,
              const float *mask, nn_loss_kind kind, float weight);
void cpu_adam(float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h);
int cpu_all_finite(const float *x, size_t n);
void cpu_adam_ctl(float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h,
                  float *ctl);
void cpu_flag_nonfinite(float *flag, const float *x, size_t n);
/* cpu_augment.c: the whole batch over the pool, or image i of it on this thread */
void cpu_augment(const nn_aug_batch *b);
void cpu_augment_image(const nn_aug_batch *b, int i);
void cpu_fill(float *x, size_t n, float value);

#endif
