/* colour.h: sRGB <-> LAB on the CPU (D65, as OpenCV converts; LAB normalised to [0, 1]: L / 100,
 * (a + 128) / 255, (b + 128) / 255), the arithmetic of augmentation's colour jitter
 * (core/nn/augment_math.h), for conversion's colour transfer. n pixels, RGB in [0, 1]. */
#ifndef NN_COLOUR_H
#define NN_COLOUR_H

#include <stddef.h>

void nn_rgb_to_lab(float *lab, const float *rgb, size_t n);
void nn_lab_to_rgb(float *rgb, const float *lab, size_t n);

#endif
