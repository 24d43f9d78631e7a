/* extract.h: the extraction job. For each input (video, image or folder of images): detect faces,
 * find their 68 landmarks, reject what is not a face, align and crop, score blur, compute the
 * identity embedding, keep or drop by identity (--filter / --nfilter), save one PNG per face with
 * its metadata, and write the input's alignments file. */
#ifndef VS_EXTRACT_H
#define VS_EXTRACT_H

#include <stdint.h>

#include "config.h"
#include "extract_faces.h"
#include "image.h"
#include "job.h"

typedef struct ex_request {
    vs_config cfg;
    const struct nn_backend *be; /* the face networks run there (--device); NULL: the CPU */
    const char *models_dir;
    const char *const *inputs;
    int n_inputs;
    const char *out_dir;
    const char *align_dir;          /* where alignments files go */
    const char *const *filter_refs; /* keep only faces like these */
    int n_filter;
    const char *const *nfilter_refs; /* drop faces like these */
    int n_nfilter;
    int skip_existing; /* skip inputs whose alignments file is complete */
    int overwrite;     /* extract them again (else refuse: faces deleted since
                          would come back) */
} ex_request;

#define EX_WARNINGS 16

typedef struct ex_status {
    char input[256]; /* the input being read */
    int input_index, n_inputs;
    int64_t frame;        /* position in the current input */
    int64_t frames_total; /* of the current input, estimated; 0 if unknown */
    int64_t frames_read;  /* all inputs so far */
    int64_t faces_found;  /* detections above the threshold */
    int64_t kept;         /* saved */
    int64_t filtered_identity, filtered_landmarks, filtered_size, filtered_blur, filtered_max;
    int inputs_skipped;
    int warnings;                    /* how many so far; the latest EX_WARNINGS are kept: */
    char warning[EX_WARNINGS][1100]; /* [i % EX_WARNINGS]: a damaged file, an unreadable image */
    double elapsed;                  /* seconds since the job started */
    double load_seconds;             /* of that, loading the networks and references */
    double input_started;            /* elapsed when the current input was opened */
} ex_status;

/* The three face networks, loaded together: ex_nets_open (extract_faces.h) after checking the
 * weights' checksums (models_verify). be NULL: the CPU (threads: its worker threads, 0 one per
 * CPU). */
int ex_nets_load(ex_nets *n, const char *models_dir, const struct nn_backend *be, int threads,
                 vs_err *e);

/* Identity embedding of a reference: the metadata of a face PNG made by visage, or the one face
 * in any other picture (none or several is an error naming the file). */
int ex_reference_embedding(float out[128], ex_nets *n, const char *path, const vs_config *cfg,
                           vs_err *e);

/* The job function (job.h): arg is an ex_request. */
int ex_run(job *j, void *arg, vs_err *e);

/* Finds the face models: configured (if non-empty) else $VISAGE_MODELS, ./models,
 * EXE_DIR/models, EXE_DIR/../models, EXE_DIR/../share/visage/models. Message names `make models`
 * when absent. */
int ex_find_models(char *out, size_t n, const char *configured, const char *exe_dir, vs_err *e);

/* The default folder for alignments files of faces written to out_dir: PROJECT/alignments when
 * out_dir is PROJECT/faces/X and PROJECT has a visage.ini, else out_dir/alignments. */
void ex_default_align_dir(char *out, size_t n, const char *out_dir);

#endif
