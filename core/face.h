/* face.h: one extracted face and its metadata. A face PNG is self-contained: an iTXt chunk named
 * "visage" holds this record as JSON (schema version, source, frame, index, box, 68 landmarks in
 * frame pixels, the alignment matrix, pose, blur and the identity embedding); the alignments file
 * of a source holds the same records grouped by frame. */
#ifndef VS_FACE_H
#define VS_FACE_H

#include <stdint.h>

#include "err.h"
#include "image.h"

#define FACE_SCHEMA 1
#define FACE_META_KEY "visage"

typedef struct vs_face {
    char source[1024];      /* the input file as given to extract */
    char file[256];         /* the face PNG's name (no folder); "" when not saved */
    int64_t frame;          /* frame index in the source (0 for an image) */
    int index;              /* face index within the frame, best detection first */
    float box[4];           /* x, y, w, h in frame pixels */
    float score;            /* detector score */
    float lm[136];          /* 68 landmarks (x, y), iBUG order, frame pixels */
    double matrix[6];       /* frame pixels -> aligned face pixels: [a b tx; c d ty] */
    int size;               /* aligned face size, pixels */
    char centering[16];     /* face | head | legacy */
    float yaw, pitch, roll; /* degrees */
    float blur;             /* variance of the Laplacian of the aligned face */
    int has_embedding;
    float embedding[128];
} vs_face;

/* JSON text of f (free() it). */
char *face_to_json(const vs_face *f);

/* Parses JSON made by face_to_json; `where` names the origin for messages. */
int face_from_json(vs_face *f, const char *json, const char *where, vs_err *e);

/* The same as jansson objects (the alignments file holds many of them). */
struct json_t;
struct json_t *face_to_json_obj(const vs_face *f);
int face_from_json_obj(vs_face *f, struct json_t *o, const char *where, vs_err *e);

/* Saves the aligned face image with f as its metadata (atomic). */
int face_save(const char *path, const img *aligned, const vs_face *f, int png_compression,
              vs_err *e);

/* Reads the metadata of a face PNG (and its pixels if im != NULL). A PNG without visage metadata
 * is an error naming the file. */
int face_load(vs_face *f, img **im, const char *path, vs_err *e);

#endif
