/* curate.h: command-line curation of a face folder: list the faces with their metadata, sort
 * them (renaming the files with a rank prefix so any file manager shows the order), and bring
 * alignments files in line after faces were deleted. */
#ifndef VS_CURATE_H
#define VS_CURATE_H

#include "err.h"
#include "face.h"

typedef struct cu_face {
    char name[256]; /* file name in the folder */
    vs_face f;
    float key; /* the sort key, or the distance to the reference */
} cu_face;

/* Reads the metadata of every PNG in dir (sorted by name). PNGs without (readable) visage
 * metadata, such as a face re-saved by an image editor, are skipped; their names go to *others
 * (when others is not NULL; free with fs_free_list) and their count to *n_other. No face at all
 * is not an error (*n = 0). */
int cu_load(cu_face **out, int *n, char ***others, int *n_other, const char *dir, vs_err *e);

typedef enum cu_order { CU_BY_IDENTITY, CU_BY_BLUR, CU_BY_SIZE, CU_BY_YAW, CU_BY_FACE } cu_order;

/* "identity" | "blur" | "size" | "yaw" | "face:REF" (REF copied to ref_path). */
int cu_parse_order(cu_order *o, char *ref_path, size_t n, const char *s, vs_err *e);

/* Sorts v in place: identity = chain of nearest neighbours (similar faces together), blur =
 * sharpest first, size = largest box first, yaw = most turned left to most turned right,
 * face = most similar to ref first. ref is the reference embedding (CU_BY_FACE, or NULL). */
void cu_sort(cu_face *v, int n, cu_order o, const float *ref);

/* Sets v[i].key to the identity distance to ref (INFINITY for a face without an embedding). */
void cu_distances(cu_face *v, int n, const float ref[128]);

/* Renames dir/v[i].name to dir/NNNNN_ORIGINAL.png in the order of v (ORIGINAL = the name the face
 * was saved with; more digits past 99,999 faces); updates v[i].name. Every new name is checked
 * before the first rename. */
int cu_rename_ranked(cu_face *v, int n, const char *dir, vs_err *e);

#endif
