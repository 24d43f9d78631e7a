/* faceset.h: the faces of one training side, loaded once into memory as uint8 crops ready for the
 * model: each face PNG is re-cropped from its metadata to the model's centering and coverage at a
 * processing size (twice the model's by default, as Faceswap's training cache), with three masks
 * made from its landmarks (the extended face hull, the eyes, the mouth). Also the data cursor that
 * walks the faces in a fresh shuffled order each epoch. */
#ifndef VS_FACESET_H
#define VS_FACESET_H

#include <stdint.h>

#include "align.h"
#include "err.h"

typedef struct faceset_spec {
    int model_size;            /* S: the model's input side, e.g. 64 */
    int proc_size;             /* P: side of the stored crops; 0 = 2 * model_size */
    align_centering centering; /* the model's centering */
    float coverage;            /* central part of the aligned face the model sees, (0, 1];
                                  0 = FACESET_DEFAULT_COVERAGE */
} faceset_spec;

#define FACESET_DEFAULT_COVERAGE 0.875f

/* The mask channels, interleaved in faceset.mask. */
enum { FACESET_MASK_FACE, FACESET_MASK_EYE, FACESET_MASK_MOUTH, FACESET_MASKS };

typedef struct faceset {
    int n;          /* faces */
    int size;       /* P */
    int model_size; /* S */
    align_centering centering;
    float coverage;
    uint8_t *px;   /* [n, P, P, 3] RGB crops */
    uint8_t *mask; /* [n, P, P, FACESET_MASKS] 0..255 */
    float *lm;     /* [n, 68, 2] landmarks in crop pixels (pixel centres at integers) */
    char **names;  /* [n] file names without folder, sorted */
    double load_seconds;
} faceset;

/* Loads every face PNG in dir (sorted by name; hidden files and other entries are skipped) in
 * parallel on the CPU pool. An empty folder, a missing one, a PNG without visage metadata or a
 * bad spec is an error naming the path. On failure fs is left empty (safe to faceset_free). */
int faceset_load(faceset *fs, const char *dir, const faceset_spec *spec, vs_err *e);
void faceset_free(faceset *fs);

/* Frame pixels -> crop pixels for landmarks lm under spec's centering, coverage and size P: the
 * matrix the stored crops are made with (for tests and previews). -1 if degenerate. */
int faceset_crop_matrix(double m[6], const float lm[136], align_centering c, float coverage,
                        int size);

/* The three masks of one face: mask [P, P, FACESET_MASKS] from landmarks lm (crop pixels).
 * face: union of the hulls of Faceswap's "extended" mask (jaw, cheeks, nose, eyebrows raised by
 * half their distance from the eyes); eye: both eyes' hulls; mouth: the outer lips' hull; eye and
 * mouth dilated by 3% of P and blurred with a Gaussian of kernel P / 16. */
void faceset_make_masks(uint8_t *mask, const float lm[136], int size);

/* The face channel alone, before its rounding to 8 bits: m [P, P] (zeroed by the caller) in
 * [0, 1]; with extended 0, Faceswap's "components" mask (the eyebrows where they are). */
void faceset_face_mask(float *m, const float lm[136], int size, int extended);
/* m [P, P] blurred in place by a Gaussian of kernel side ks (odd, below 128; sigma as OpenCV
 * derives it), borders replicated. */
void faceset_blur_mask(float *m, int size, int ks);

/* The data cursor: the faces of an epoch in an order shuffled from (seed, epoch); the whole state
 * is the two integers, so it is saved and restored as they are. */
typedef struct faceset_cursor {
    int64_t epoch; /* completed passes over the faces */
    int64_t pos;   /* faces of this epoch already taken, [0, n) */
} faceset_cursor;

/* perm [n] = the order of epoch `epoch` under seed. */
void faceset_permutation(int *perm, int n, uint64_t seed, int64_t epoch);

/* out [batch] = the next batch of face indices; crosses into the next epoch (reshuffled) when this
 * one runs out. n faces, n > 0. */
void faceset_cursor_next(int *out, faceset_cursor *c, int n, int batch, uint64_t seed);

#endif
