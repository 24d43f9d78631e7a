/* models.h: the face-network weights on disk. `make models` writes SHA256SUMS beside them; the
 * weights are checked against it when they are loaded, so a damaged shard (flipped bytes, the
 * right size) is refused by name instead of detecting nothing. */
#ifndef VS_MODELS_H
#define VS_MODELS_H

#include "err.h"

/* Checks every file listed in dir/SHA256SUMS ("HEX  NAME" lines, as sha256sum writes them).
 * A folder without SHA256SUMS (weights put there by hand) is not checked. */
int models_verify(const char *dir, vs_err *e);

#endif
