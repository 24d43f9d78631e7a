/* convert_job.h: the conversion job (job.h): a video, an image or a folder of images with their
 * faces swapped by a trained model, or one frame before and after (a preview). The faces come
 * from the input's alignments file when there is one (faces deleted while curating are left
 * alone), else from the face networks; --filter / --nfilter keep the right people. A video keeps
 * its size, frame count, timing and audio, and decoding, swapping and encoding run at once. */
#ifndef VS_CONVERT_JOB_H
#define VS_CONVERT_JOB_H

#include <limits.h>
#include <stdint.h>

#include "config.h"
#include "convert.h"
#include "job.h"
#include "video.h"
#include "video_out.h"

/* The text chunk key of a converted image (not the face PNGs' "visage": this is no face record). */
#define CVJOB_META_KEY "visage-synthesized"

/* --frames "10-50,90-100,7": the frames (inclusive ranges) whose faces are swapped; none = all */
typedef struct cvjob_ranges {
    int n;
    int64_t lo[64], hi[64];
} cvjob_ranges;

int cvjob_parse_ranges(cvjob_ranges *r, const char *s);

typedef struct cvjob_request {
    vs_config cfg;       /* similarity, models, threads */
    const char *exe_dir; /* where to look for the face networks */
    const char *input, *output, *model_dir;
    const char *alignments; /* NULL: alignments/NAME.json when it exists */
    const nn_backend *be;
    cv_opts co;
    vout_opts vo;
    cvjob_ranges ranges;
    float smooth;                                    /* landmark smoothing cutoff, Hz; 0: off */
    const char *const *keep_refs, *const *drop_refs; /* --filter, --nfilter */
    int n_keep, n_drop;
    int64_t preview_frame; /* >= 0: only this frame, before and after side by side, as a PNG */
    int mark;              /* say in the output that its faces are synthesised */
} cvjob_request;

#define CVJOB_WARNINGS 8

typedef enum cvjob_phase { CVJOB_LOADING, CVJOB_RUNNING, CVJOB_DONE } cvjob_phase;

typedef struct cvjob_status {
    cvjob_phase phase;
    vs_media kind;                /* of the input */
    int png_frames;               /* a video into a folder of PNGs */
    int64_t done;                 /* frames or images converted */
    int64_t total;                /* of the input (a video's is estimated); 0 unknown */
    int64_t faces;                /* swapped */
    int failed;                   /* images of a folder that could not be converted */
    int deleted;                  /* faces of the alignments whose PNG was deleted: left alone */
    double elapsed;               /* seconds since the job started */
    double work_started;          /* elapsed when the model and networks were loaded */
    char written[PATH_MAX + 300]; /* the output file (an image's target) */
    /* the images of a folder that failed: the last CVJOB_WARNINGS of them, [i % CVJOB_WARNINGS] */
    int warnings;
    char warning[CVJOB_WARNINGS][1100];
} cvjob_status;

/* The job function: arg is a cvjob_request, status a cvjob_status. A stop leaves no video and no
 * preview behind (the images of a folder done so far stay); it returns -1 with "stopped" in its
 * message for a video, 0 otherwise. */
int cvjob_run(job *j, void *arg, vs_err *e);

#endif
