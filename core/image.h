/* image.h: 8-bit interleaved images (RGB, rows packed: stride = w * c), loading any still image
 * FFmpeg can decode, PNG writing with a visage iTXt metadata chunk (atomically: temporary name,
 * fsync, rename), and the resampling used by cropping and alignment. */
#ifndef VS_IMAGE_H
#define VS_IMAGE_H

#include <stdint.h>

#include "err.h"

typedef struct img {
    int w, h, c; /* c = 3 (RGB) unless stated */
    uint8_t *px; /* [h][w][c] */
} img;

/* The most pixels a loaded picture may have (268 megapixels: 805 MB as RGB; about FFmpeg's own
 * limit, and above any camera's). A header claiming more is refused before anything is
 * allocated: a bogus or hostile file is bad input, not an out-of-memory abort. */
#define IMG_MAX_PIXELS ((int64_t)1 << 28)

img *img_new(int w, int h, int c); /* zeroed */
void img_free(img *im);
img *img_clone(const img *im);

/* JPEG, PNG, PPM/PGM, BMP, WebP, TIFF ... anything FFmpeg decodes; result is RGB (c = 3),
 * upright: turned as its EXIF orientation says (see vid_open). More than IMG_MAX_PIXELS:
 * "FILE: picture too large (W x H) ...". */
int img_load(img **out, const char *path, vs_err *e);

/* Writes a PNG (RGB) with, when meta_json is non-NULL, an iTXt chunk keyed meta_key. Written to
 * "DIR/.NAME.tmp-XXXXXX" in the same folder, fsync'd and renamed, so no partial file ever has the
 * final name (a full disk leaves nothing behind). */
int img_save_png(const char *path, const img *im, const char *meta_key, const char *meta_json,
                 vs_err *e);
/* The same with a zlib compression level (0-9; img_save_png uses 3). */
int img_save_png_level(const char *path, const img *im, const char *meta_key, const char *meta_json,
                       int level, vs_err *e);

/* Reads a PNG and the text of its iTXt/tEXt chunk meta_key (*meta_json = NULL if absent; free()).
 * out or meta_json may be NULL to skip the pixels / the text. Without out, only the chunks before
 * the pixels are read (visage writes its text there), so any PNG, however large or bogus, is
 * quick: text placed after the pixels by another writer then counts as absent. With out, a
 * header of more than IMG_MAX_PIXELS is refused: "FILE: picture too large (W x H) ...". */
int img_load_png(img **out, char **meta_json, const char *path, const char *meta_key, vs_err *e);

typedef enum img_border { IMG_BORDER_ZERO, IMG_BORDER_REPLICATE, IMG_BORDER_REFLECT } img_border;

/* dst(x, y) = src(M * (x, y, 1)) with bilinear sampling; m = [a b tx; c d ty] maps DESTINATION
 * pixel centres to SOURCE coordinates (pixel centres at integer coordinates). */
void img_warp_affine(img *dst, const img *src, const double m[6], img_border border);

/* Area-averaging (down) / bilinear (up) resize into dst's size. */
void img_resize(img *dst, const img *src);

/* Variance of the Laplacian of the grey image: low means blurred. */
double img_blur_score(const img *im);

#endif
