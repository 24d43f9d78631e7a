/* fsutil.h: the file-system helpers every writer and reader in visage shares: atomic file writing
 * (temporary name in the same folder, fsync, rename, fsync of the folder, so a crash or a full
 * disk never leaves a partial file under the final name), mkdir -p, sorted folder listings and
 * whole-file reads, all reporting bad input as -1 with a message naming the path. */
#ifndef VS_FSUTIL_H
#define VS_FSUTIL_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

typedef struct fs_atomic_cookie fs_atomic_cookie;

typedef struct fs_atomic {
    FILE *f;    /* write here (buffered); NULL when not open */
    char *path; /* final name */
    char *tmp;  /* "DIR/.NAME.tmp-XXXXXX" while open */
    int fd;
    fs_atomic_cookie *cookie; /* remembers the first write error's errno */
} fs_atomic;

/* Creates "DIR/.NAME.tmp-XXXXXX" (mode 0666 less the umask) and opens a->f for writing. */
int fs_atomic_open(fs_atomic *a, const char *path, vs_err *e);

/* fflush, write-error check, fsync, fclose, rename to the final name, fsync of the folder. On any
 * failure the temporary file is removed and the message names the final path and the cause (a
 * full disk or file-size limit, ENOSPC/EFBIG/EDQUOT, reads "no space left on device"). Either way
 * a is closed afterwards. */
int fs_atomic_commit(fs_atomic *a, vs_err *e);

/* Closes and removes the temporary file; safe on a closed or zeroed fs_atomic. */
void fs_atomic_abort(fs_atomic *a);

/* Non-zero once a write to a->f has failed (the cause is reported by fs_atomic_commit). */
int fs_atomic_failed(const fs_atomic *a);

/* strerror with a lower-case first letter for messages ("no such file or directory"); ENOSPC,
 * EFBIG and EDQUOT all read "no space left on device". Thread-safe (thread-local buffer). */
const char *fs_strerror(int errnum);

/* mkdir -p (mode 0777 less the umask). Fails, naming the path, if a component is not a folder,
 * cannot be created, or if the final folder is not writable (every caller writes into it). */
int fs_mkdirs(const char *path, vs_err *e);

int fs_is_dir(const char *path);
int fs_exists(const char *path);

/* Names (not paths) of the entries of dir for which keep(name) is non-zero (keep NULL: all),
 * sorted by strcmp. Hidden names (leading '.', including in-progress atomic writes) are never
 * listed. Free with fs_free_list. */
int fs_list_dir(char ***names, int *n, const char *dir, int (*keep)(const char *name), vs_err *e);
void fs_free_list(char **names, int n);

/* Reads the whole file into *out (NUL-terminated, free()); *len (may be NULL) excludes the NUL. */
int fs_read_all(char **out, size_t *len, const char *path, vs_err *e);

/* The part after the last '/' (the whole string if none); points into path. */
const char *fs_basename(const char *path);

#endif
