/* facenet.h: the three face networks of face-api (@vladmandic/face-api 1.7.15 weights, run on
 * the backend interface): SSD MobileNet v1 face detector with non-maximum suppression, the
 * 68-point landmark net (iBUG order), and the ResNet-34 128-D identity descriptor. Each computes
 * what the package's JavaScript computes on the same input, number for number. */
#ifndef VS_FACENET_H
#define VS_FACENET_H

#include <stdint.h>

#include "err.h"
#include "image.h"
#include "nn/backend.h"

typedef struct fn_box {
    float x, y, w, h; /* image pixels */
    float score;
} fn_box;

typedef struct fn_detector fn_detector;
typedef struct fn_landmarker fn_landmarker;
typedef struct fn_embedder fn_embedder;

/* A picture as the face networks read it: 8-bit RGB [h, w, 3] in their backend's memory
 * (nn_copy_in_bytes; on a host-memory backend, the picture's own pixels). */
typedef struct fn_image {
    const uint8_t *px;
    int w, h;
} fn_image;

/* models_dir holds ssd_mobilenetv1_model-weights_manifest.json etc. (from `make models`). */
int fn_detector_load(fn_detector **out, const char *models_dir, const nn_backend *be, vs_err *e);
int fn_landmarker_load(fn_landmarker **out, const char *models_dir, const nn_backend *be,
                       vs_err *e);
int fn_embedder_load(fn_embedder **out, const char *models_dir, const nn_backend *be, vs_err *e);
void fn_detector_free(fn_detector *d);
void fn_landmarker_free(fn_landmarker *l);
void fn_embedder_free(fn_embedder *m);

/* Faces with score >= min_score after NMS (IoU 0.5), best first; at most max_faces written.
 * Returns the count. */
int fn_detect(fn_box *out, int max_faces, fn_detector *d, const img *im, float min_score);

/* 68 landmarks (x, y interleaved, image pixels) for the face in box, as face-api's
 * withFaceLandmarks computes them. */
void fn_landmarks(float out[136], fn_landmarker *l, const img *im, const fn_box *box);

/* 128-D descriptor of the face given its detection box and landmarks, as face-api's
 * withFaceDescriptors computes it (crop of the landmark-aligned box, resized to 150x150; the
 * alignment is capped by the size of the detection's crop, so the box is needed too; NULL uses
 * the image size, for landmarks that came from elsewhere). */
void fn_embed(float out[128], fn_embedder *m, const img *im, const fn_box *box,
              const float lm[136]);

/* 128-D descriptor of an image that is already a face crop (LFW-style, e.g. 150x150 aligned
 * faces): the whole image is the network input. */
void fn_embed_image(float out[128], fn_embedder *m, const img *face);

/* ---- batches: the calls above for n pictures or faces at once, as one pass of each network
 * (a GPU runs a batch in little more than the time of one); results as the calls above give. */

/* The faces of ims[i]: counts[i] of them in out[i * max_faces ...]. */
void fn_detect_batch(fn_box *out, int *counts, int max_faces, fn_detector *d, const fn_image *ims,
                     int n, float min_score);
/* Face i is boxes[i] of ims[i]. */
void fn_landmarks_batch(float (*out)[136], fn_landmarker *l, const fn_image *ims,
                        const fn_box *boxes, int n);
/* Face i: dets[i] (dets may be NULL, as fn_embed's box) and lm[i] of ims[i]. */
void fn_embed_batch(float (*out)[128], fn_embedder *m, const fn_image *ims, const fn_box *dets,
                    const float (*lm)[136], int n);

/* Euclidean distance of two descriptors (face-api's usual "same person" threshold: 0.6). */
float fn_distance(const float a[128], const float b[128]);

#endif
