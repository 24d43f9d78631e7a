/* align.h: face alignment. A similarity transform (Umeyama's least squares, no reflection) takes
 * the 68 landmarks to visage's mean face; the aligned crop is a square around that mean face,
 * centred on the face, the whole head, or the tight legacy crop of the inner features. Also a
 * pose estimate (yaw/pitch/roll) and the plausibility check that rejects detections whose
 * landmarks are not a face (a dog, a pattern in the wallpaper). */
#ifndef VS_ALIGN_H
#define VS_ALIGN_H

#include "image.h"

typedef enum align_centering { ALIGN_FACE, ALIGN_HEAD, ALIGN_LEGACY } align_centering;

/* The mean face: 68 points (x, y), iBUG order; the 51 inner points (17..67) span [0, 1]. */
extern const float align_mean_face[136];

/* Least-squares similarity transform m = [a -b tx; b a ty] taking src[i] to dst[i] (n points,
 * x/y interleaved). Returns 0, or -1 when the points are degenerate (all equal). */
int align_umeyama(double m[6], const float *src, const float *dst, int n);

/* Parses "face" | "head" | "legacy"; -1 if none. */
int align_centering_parse(align_centering *c, const char *s);
const char *align_centering_name(align_centering c);

/* Matrix from frame pixels to the pixels of a size x size aligned face. -1 if degenerate. */
int align_matrix(double m[6], const float lm[136], align_centering c, int size);

/* out (size x size, RGB) = the frame warped by m (frame -> face pixels). */
void align_crop(img *out, const img *frame, const double m[6]);

/* Applies m to n points in place. */
void align_apply(float *pts, int n, const double m[6]);

/* Inverts a 2x3 affine matrix. -1 if singular. */
int align_invert(double inv[6], const double m[6]);

typedef struct align_pose {
    float yaw, pitch, roll; /* degrees: yaw > 0 turned to the image right, pitch > 0 looking up,
                               roll > 0 clockwise in the image */
} align_pose;

void align_estimate_pose(align_pose *p, const float lm[136]);

/* How far the landmarks are from any face: mean distance of the similarity-aligned points from
 * the mean face, in units of its inner-feature size, and whether the layout is a face at all
 * (eyes above the nose above the mouth, in order left to right). */
float align_landmark_error(const float lm[136]);
int align_plausible(const float lm[136], float max_error);

/* Whether the landmarks spread over the detection box as a face's do: on a human face their
 * bounding box is 0.9-1.3 times as wide as the detector's box; on an animal or an object the
 * landmark net, finding no face, puts a shrunken face in the middle (the dog of faces_gt/dlib:
 * 0.64). box: x, y, w, h. */
int align_fills_box(const float lm[136], const float box[4]);

#define ALIGN_MIN_LANDMARK_SPREAD 0.75f

/* Default for align_plausible: rejects what is not a face, keeps profiles and expressions. */
#define ALIGN_MAX_LANDMARK_ERROR 0.2f

#endif
