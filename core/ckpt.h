/* ckpt.h: the checkpoint file (one self-describing, checksummed file per save: key/value header,
 * tensor directory, 64-byte-aligned f32 data; the format is described at the top of ckpt.c) and
 * the model folder's rolling saves (model.vsk, backups/, snapshots/). A damaged or truncated file
 * is refused with a message naming it; a save never leaves a partial model.vsk behind. */
#ifndef VS_CKPT_H
#define VS_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define CKPT_EXT ".vsk"
#define CKPT_VERSION 1
#define CKPT_MAX_NAME 255          /* bytes in a tensor name */
#define CKPT_MAX_DIMS 4            /* dimensions of a tensor */
#define CKPT_MAX_TENSORS 65536     /* tensors in a file */
#define CKPT_MAX_HEADER (1u << 20) /* bytes of key/value text */

/* One f32 tensor to write: shape[0..ndim) (ndim 0..4; 0 is a scalar), data in row-major order. */
typedef struct ckpt_tensor {
    const char *name;
    int ndim;
    int64_t shape[4];
    const float *data;
} ckpt_tensor;

/* One header entry: key matches [a-z0-9_.]+, val holds no newline. */
typedef struct ckpt_kv {
    const char *key;
    const char *val;
} ckpt_kv;

/* Writes one checkpoint file atomically (temporary name, fsync, rename, fsync of the folder).
 * Invalid keys, values, names or shapes, duplicate keys or names, and write errors (a full disk)
 * are -1 with a message naming the path. */
int ckpt_write(const char *path, const ckpt_kv *kv, int n_kv, const ckpt_tensor *t, int n_t,
               vs_err *e);

typedef struct ckpt ckpt; /* an opened, fully verified checkpoint */

/* Opens and verifies everything: magic, version, sizes, every offset, the header and directory
 * checksum, every tensor's CRC32C, zero padding and the file's exact length. Only the header and
 * directory stay in memory; tensor data is read by ckpt_read. Any failure: NULL and a message
 * naming the file and what is wrong ("checksum mismatch in tensor 'x'", "truncated: 1234 of 5678
 * bytes", "not a visage checkpoint"). */
ckpt *ckpt_open(const char *path, vs_err *e);

/* The value of header key `key`; NULL if absent. */
const char *ckpt_get(const ckpt *c, const char *key);

int ckpt_n_tensors(const ckpt *c);

/* The name of tensor i (0 <= i < ckpt_n_tensors, in file order) and, where not NULL, its
 * dimension count and shape (unused dimensions set to 0). */
const char *ckpt_tensor_name(const ckpt *c, int i, int *ndim, int64_t shape[4]);

/* Copies tensor `name` into dst (checking its CRC32C again on the way); fails, naming file and
 * tensor, if it is absent or its shape differs from ndim/shape. */
int ckpt_read(const ckpt *c, const char *name, float *dst, int ndim, const int64_t *shape,
              vs_err *e);

void ckpt_close(ckpt *c); /* NULL is fine */

/* A human-readable description (malloc'd text, free()): file, size, format version, every header
 * key=value, tensor count and total parameters, and a table of tensors (name, shape, MiB); used by
 * `visage model info`. */
char *ckpt_describe(const ckpt *c);

/* CRC32C (Castagnoli) of data, continuing from crc (0 to start; chainable like zlib's crc32):
 * ckpt_crc32c(0, "123456789", 9) == 0xE3069283. Uses the SSE4.2 instruction where the CPU has
 * it; ckpt_crc32c_portable is the table-driven version every machine can run (tests compare). */
uint32_t ckpt_crc32c(uint32_t crc, const void *data, size_t n);
uint32_t ckpt_crc32c_portable(uint32_t crc, const void *data, size_t n);

/* ---- the model folder -------------------------------------------------------------------------
 * DIR/model.vsk is the newest save; DIR/backups/model-ITER.vsk the previous `keep` saves;
 * DIR/snapshots/model-ITER.vsk one every K iterations (the caller decides which), kept forever.
 * Files are only ever replaced by rename and shared by hard links, never modified in place. */

typedef enum ckpt_snapshot { CKPT_NO_SNAPSHOT, CKPT_SNAPSHOT } ckpt_snapshot;

/* Saves a new newest checkpoint of iteration `iteration` (the header gets "iteration" if kv lacks
 * it). In order: removes stale temporary files of killed saves; writes DIR/model.vsk's new
 * contents to a temporary file; hard-links (or, where links fail, copies) the existing model.vsk
 * to backups/model-<its header iteration, 0 if absent>.vsk; renames the new file over model.vsk;
 * deletes backups beyond the `keep` newest (highest iteration); with CKPT_SNAPSHOT hard-links
 * (or copies) the new file to snapshots/model-<iteration>.vsk. At every instant a kill -9 leaves
 * either the old or the new model.vsk intact. A failed save (full disk) leaves model.vsk as it
 * was and no temporary file; -1 and a message naming the path. */
int ckpt_save(const char *dir, long iteration, const ckpt_kv *kv, int n_kv, const ckpt_tensor *t,
              int n_t, int keep, ckpt_snapshot snap, vs_err *e);

/* The path (malloc'd) of the newest backup in DIR/backups that passes ckpt_open: 0, or -1 and
 * *path NULL when there is none. For messages such as "model.vsk is damaged; the newest intact
 * backup is ...". */
int ckpt_newest_intact_backup(char **path, const char *dir);

#endif
