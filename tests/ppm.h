/* ppm.h: reading the binary PPM copies of test photos that `test_facenet --write-ppm` makes, for
 * the GPU test and benchmark, which link no image decoder. */
#ifndef VS_TEST_PPM_H
#define VS_TEST_PPM_H

#include <stdio.h>
#include <stdlib.h>

#include "image.h"

/* im->px malloc'd; 0, or -1 when the file is missing or not an 8-bit P6 of at most 8192 a side */
static int read_ppm(img *im, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int w, h, maxv;
    int ok = fscanf(f, "P6 %d %d %d", &w, &h, &maxv) == 3 && maxv == 255 && w > 0 && h > 0 &&
             w <= 8192 && h <= 8192 && fgetc(f) != EOF;
    im->w = w, im->h = h, im->c = 3;
    im->px = ok ? malloc((size_t)w * h * 3) : NULL;
    ok = ok && im->px && fread(im->px, 3, (size_t)w * h, f) == (size_t)w * h;
    fclose(f);
    if (!ok) free(im->px);
    return ok ? 0 : -1;
}

#endif
