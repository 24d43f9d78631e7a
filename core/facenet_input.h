/* facenet_input.h: what the three face networks (detect.c, landmarks.c, identity.c) share: cutting
 * a face out of an image the way face-api does (Box.clipAtImageBorders + tf.slice, then the
 * backend's crop_resize: padToSquare, tf.image.resizeBilinear with align_corners =
 * half_pixel_centers = false, normalisation into a float NHWC tensor), pictures in backend memory,
 * and the plumbing for loading weights onto a backend. Internal to core/. */
#ifndef VS_FACENET_INPUT_H
#define VS_FACENET_INPUT_H

#include <stddef.h>

#include "err.h"
#include "facenet.h"
#include "image.h"
#include "nn/backend.h"
#include "nn/weights.h"

typedef struct fni_rect {
    int x, y, w, h; /* image pixels */
} fni_rect;

/* How padToSquare fills the short side with zeros: all of it after the image (bottom/right, the
 * detector), or centred with the odd pixel after (nn_crop.centre). */
typedef enum fni_pad { FNI_PAD_END, FNI_PAD_CENTRE } fni_pad;

/* face-api's Box.clipAtImageBorders: x, y clamped at 0, right/bottom at the image border, then all
 * four floored. Returns 0 when the result is empty (face-api drops such faces), 1 otherwise. */
int fni_clip(fni_rect *out, double x, double y, double w, double h, int img_w, int img_h);

/* The backend's description of the network input cut from r of im (nn_crop: padded to a square
 * by pad, resized with TF's bilinear rule, then (v - mean[c]) / div - sub). */
nn_crop fni_crop(const fn_image *im, const fni_rect *r, fni_pad pad, const float mean[3], float div,
                 float sub);

/* A picture in backend memory: its own pixels on a host-memory backend, else a copy in st. */
fn_image fni_stage_image(nn_buf *st, const nn_backend *be, const img *im);

/* How many pictures or faces a network runs at once on be: large batches on a GPU, small on the
 * CPU (whose memory they would only take). */
int fni_batch(const nn_backend *be, int gpu_batch, int cpu_batch);

/* The size a pass of n pictures runs at (at most cap): n on a host-memory backend; on a GPU the
 * next power of two, the extra places repeating crops[n - 1] (written here; the caller ignores
 * their results), so that each network meets a handful of batch sizes and the convolutions'
 * algorithms are chosen once for each. */
int fni_pass(nn_crop *crops, const nn_backend *be, int n, int cap);

/* Backend memory owned by one network: every buffer it allocates is listed here and freed at once.
 */
typedef struct fni_mem {
    const nn_backend *be;
    float **bufs;
    int n, cap;
} fni_mem;

/* n floats of backend memory (contents undefined). */
float *fni_alloc(fni_mem *m, size_t n);
/* Backend copy of n host floats. */
float *fni_upload(fni_mem *m, const float *host, size_t n);
/* A conv2d kernel [kh, kw, cin, cout] (k = kh * kw * cin), in the backend's kernel layout. */
float *fni_upload_conv(fni_mem *m, const float *host, size_t k, int cout);
/* A backend tensor of the given shape, owned by m. */
nn_tensor fni_tensor(fni_mem *m, int n, int h, int w, int c);
void fni_mem_free(fni_mem *m);

/* nn_weights_get with a shape given inline: fni_get(w, name, e, 4, (int[]){3, 3, 3, 32}). */
const float *fni_get(nn_weights *w, const char *name, vs_err *e, int ndim, const int *shape);

/* The crop a detection box gives (extractFaceTensors: through relative coordinates and back,
 * clipped at the image borders, floored). 0 when nothing of the box is inside the image. Both the
 * landmark net's input and the descriptor's alignment (FaceLandmarks.alignDlib uses the landmark
 * crop's size) depend on it. */
int fni_box_rect(fni_rect *r, const fn_box *box, int img_w, int img_h);

#endif
