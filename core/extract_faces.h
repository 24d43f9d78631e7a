/* extract_faces.h: the face-finding half of extraction, on a batch of frames: the three face
 * networks on their backend, the checks (--min-size, the landmark filter, --max-faces, --min-blur,
 * --filter and --nfilter), alignment and the aligned crops. No files and no media code: the job
 * (extract.c) reads and writes, the GPU benchmark (bench/extract_gpu.c) links this alone. */
#ifndef VS_EXTRACT_FACES_H
#define VS_EXTRACT_FACES_H

#include "align.h"
#include "config.h"
#include "err.h"
#include "image.h"

struct nn_backend;
struct fn_box;

#define EX_MAX_BATCH 8       /* frames the networks take at once (on a GPU; 1 on the CPU) */
#define EX_MAX_DETECTIONS 64 /* faces a frame may have */

/* The three face networks, loaded together on one backend. */
typedef struct ex_nets {
    const struct nn_backend *be;
    int batch; /* frames extraction gives them at once */
    struct fn_detector *det;
    struct fn_landmarker *lmk;
    struct fn_embedder *emb;
    struct ex_scratch *scratch; /* frames and crops in the backend's memory */
} ex_nets;

/* Loads them onto be (NULL: the CPU). */
int ex_nets_open(ex_nets *n, const char *models_dir, const struct nn_backend *be, vs_err *e);
void ex_nets_free(ex_nets *n);

typedef enum ex_verdict { EX_KEEP, EX_TOO_SMALL, EX_NOT_A_FACE } ex_verdict;

typedef struct ex_found {
    float box[4]; /* x, y, w, h, frame pixels */
    float score;
    float lm[136]; /* only when verdict != EX_TOO_SMALL */
    ex_verdict verdict;
} ex_found;

/* The detection of f as the face networks take it. */
struct fn_box ex_found_box(const ex_found *f);

/* Detection, landmarks and the checks of extraction (--min-size, the landmark filter) on one
 * frame: every detection above cfg->threshold, best first, with its verdict. Returns the count. */
int ex_find_faces(ex_found *out, int max, ex_nets *n, const img *frame, const vs_config *cfg);

/* --filter and --nfilter: whether a face with identity embedding emb is like one of keep
 * (n_keep of them; none given: any face) and like none of drop, "like" meaning at most
 * `similarity` apart. */
int ex_identity_passes(const float emb[128], float (*keep)[128], int n_keep, float (*drop)[128],
                       int n_drop, float similarity);

/* What extraction does with a face. */
typedef enum ex_fate {
    EX_SAVED,          /* every check passed */
    EX_DROP_SIZE,      /* smaller than --min-size */
    EX_DROP_LANDMARKS, /* the landmark filter, or an alignment that failed */
    EX_DROP_MAX,       /* beyond --max-faces in its frame */
    EX_DROP_BLUR,      /* blurrier than --min-blur */
    EX_DROP_IDENTITY,  /* --filter or --nfilter */
} ex_fate;

/* The identity references of --filter (keep) and --nfilter (drop). */
typedef struct ex_filter {
    float (*keep)[128], (*drop)[128];
    int n_keep, n_drop;
} ex_filter;

/* One face found in a frame of a batch, in detection order within its frame. */
typedef struct ex_face {
    int frame; /* in the batch */
    ex_fate fate;
    ex_found found;       /* detection and landmarks */
    double matrix[6];     /* frame -> aligned face (EX_SAVED, EX_DROP_BLUR, EX_DROP_IDENTITY) */
    float blur;           /* of the aligned face (likewise) */
    float embedding[128]; /* EX_SAVED and EX_DROP_IDENTITY */
    int index;            /* EX_SAVED: its number among its frame's saved faces */
    const uint8_t *crop;  /* EX_SAVED: the aligned face [size, size, 3] (until the next batch) */
} ex_face;

/* Every face of frames[0 .. n) (n <= nets->batch), all the networks' work of the batch at once,
 * into *faces (grown as needed; free() it), *count of them, frame by frame. The decisions are
 * those of one frame at a time: the checks in the order above, --max-faces counting the faces
 * that pass the size and landmark checks. */
void ex_find_batch(ex_face **faces, int *count, int *cap, ex_nets *nets, img *const *frames, int n,
                   const vs_config *cfg, align_centering centering, const ex_filter *flt);

#endif
