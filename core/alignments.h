/* alignments.h: the alignments file of one extraction input (a video, an image or a folder of
 * images): JSON {schema, input, width, height, fps, frames_read, complete, settings, frames:
 * {"FRAME": [face, ...]}} where each face is the same record a face PNG carries (face.h).
 * Conversion reads it to know which faces to swap; deleting a face PNG and running
 * `visage prune` removes that face here too. */
#ifndef VS_ALIGNMENTS_H
#define VS_ALIGNMENTS_H

#include <limits.h>
#include <stdint.h>

#include "err.h"
#include "face.h"

typedef struct al_file {
    char input[1024];
    int width, height; /* of the frames (0 for a folder of images of several sizes) */
    double fps;
    int64_t frames_read;
    int complete; /* the whole input was read (a stopped run leaves 0) */
    int size;     /* aligned face size */
    char centering[16];
    char faces_dir[PATH_MAX]; /* where the face PNGs were written (absolute), "" if unknown */
    vs_face *faces;           /* sorted by source, frame, index */
    int n_faces, cap;
} al_file;

void al_init(al_file *a, const char *input);
void al_free(al_file *a);
void al_add(al_file *a, const vs_face *f);

int al_load(al_file *a, const char *path, vs_err *e);
int al_save(const char *path, const al_file *a, vs_err *e); /* atomic */

/* dir/NAME.json, NAME = the input's file name (a trailing slash of a folder ignored). */
void al_path(char *out, size_t n, const char *dir, const char *input);

/* Whether a is the alignments file of the faces in faces_dir: it says it was written for that
 * folder, or (a folder moved since) one of the faces there comes from a's input. Several face
 * folders (faces/a, faces/b) share a project's alignments/; pruning one must not touch the
 * others' files. */
int al_belongs_to(const al_file *a, const char *faces_dir, const vs_face *present, int n_present);

/* Keeps only the faces that are among present[0..n-1] (matched by source, frame and index, read
 * from the face PNGs' own metadata, so renamed or sorted files still match); returns how many
 * were dropped. */
int al_prune(al_file *a, const vs_face *present, int n_present);

/* Same source file, frame and face index. */
int al_same_face(const vs_face *x, const vs_face *y);

#endif
