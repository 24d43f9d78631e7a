/* train.h: the trainer, a job (job.h). It opens the model folder (resuming the checkpoint there,
 * or creating a new model), loads the two face sets once, and runs iterations: augmentation,
 * forward through the shared encoder and both decoders, the loss of each side, backward, Adam.
 * It saves (checkpoint, loss log, preview grid) every save_every iterations, on request and when
 * it stops, and never lets a non-finite loss or gradient reach a checkpoint. */
#ifndef VS_TRAIN_H
#define VS_TRAIN_H

#include <stdint.h>

#include "augment.h"
#include "config.h"
#include "job.h"
#include "loss.h"
#include "model.h"

#define TRAIN_CKPT_NAME "model.vsk"
#define TRAIN_LOG_NAME "loss.tsv"
#define TRAIN_PREVIEW_NAME "preview.png"
#define TRAIN_EVENTS 8

typedef struct train_opts {
    const char *dir_a, *dir_b, *model_dir;
    /* a new model's architecture and options; with arch_given an existing model must match */
    const char *arch;
    int arch_given;
    mdl_options mopt;
    int batch;
    long iterations; /* stop after this iteration, 0 = until stopped */
    long save_every, snapshot_every;
    int keep_backups;
    float lr, eps;
    loss_cfg loss;
    augment_config aug;
    uint64_t seed; /* of a new model; 0 = from the clock */
    const nn_backend *be;
    /* Testing: make the gradients non-finite the first time each listed iteration is reached. */
    long nan_at[4];
    int n_nan_at;
    /* Testing: on a device, stream the batch's face crops as if the face sets did not fit. */
    int stream_faces;
} train_opts;

/* Fills o from the [train] section of c (paths, backend and seed left empty). An unknown loss or
 * architecture name is -1 with a message. */
int train_opts_from_config(train_opts *o, const vs_config *c, vs_err *e);

typedef enum train_phase { TRAIN_LOADING, TRAIN_RUNNING, TRAIN_SAVING, TRAIN_FINISHED } train_phase;

typedef struct train_status {
    train_phase phase;
    char arch[32];
    size_t params;
    int faces[2];
    int batch;
    long iteration;       /* completed iterations */
    long start_iteration; /* where this run started (resumed from) */
    long target;          /* the iteration training stops at, 0 = none */
    double loss[2];       /* of the last iteration, sides A and B */
    double it_s, egs_s;   /* recent rate; EGs/s = 2 x batch x it/s */
    size_t gpu_mem;       /* bytes of GPU memory in use (0 on the CPU) */
    size_t gpu_mem_peak;  /* and the most so far */
    int gpu_util;         /* percent busy, -1 unknown */
    double elapsed;       /* seconds in this run */
    double trained;       /* seconds over the model's whole life */
    long saved_iteration; /* -1 before the first save of this run */
    long saves;
    long preview_serial; /* changes whenever model/preview.png is rewritten */
    /* messages: the last TRAIN_EVENTS of them, message i (counting from 0) in slot
     * i % TRAIN_EVENTS; events is how many there have been */
    long events;
    char event[TRAIN_EVENTS][384];
    int event_warning[TRAIN_EVENTS]; /* a warning (shown even when quiet) */
} train_status;

/* The job function: arg is a train_opts, status a train_status. */
int train_run(job *j, void *arg, vs_err *e);

/* The checkpoint path of a model folder (into buf). */
void train_ckpt_path(char *buf, size_t n, const char *model_dir);

/* The trained model in model_dir (its checkpoint) on backend be, for conversion: *iteration gets
 * its iteration (may be NULL). A folder without a checkpoint, a damaged or foreign one: -1 with a
 * message naming it. */
int train_load_model(model **out, long *iteration, const char *model_dir, const nn_backend *be,
                     vs_err *e);

#endif
