/* cpu_image.h: the CPU backend's image kernels (cpu_image.c), for its table and the tests. */
#ifndef NN_CPU_IMAGE_H
#define NN_CPU_IMAGE_H

#include "backend.h"

void nn_cpu_crop_resize(nn_tensor *y, const nn_crop *crops);
void nn_cpu_warp(uint8_t *dst, const nn_warp *w, int n, int size);
void nn_cpu_add_padded(nn_tensor *y, const nn_tensor *a, const nn_tensor *b, nn_act act,
                       float alpha);
void nn_cpu_from_u8(nn_tensor *y, const uint8_t *x, float div);
void nn_cpu_blend(const nn_blend *b, int n);
void *nn_cpu_host_alloc(size_t bytes);
void nn_cpu_host_free(void *p);

/* Side of the square a w x h crop is padded to, and where the crop sits in it (nn_crop.centre). */
void nn_crop_square(int *side, int *off_x, int *off_y, int w, int h, int centre);

#endif
