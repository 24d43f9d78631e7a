/* models.c: checksums of the face-network weights (see models.h), SHA-256 from libavutil. */
#include "models.h"

#include <errno.h>
#include <libavutil/mem.h>
#include <libavutil/sha.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

static int sha256_file(char hex[65], const char *path, vs_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return vs_fail(e, "%s: %s (run 'make models' again)", path, fs_strerror(errno));
    struct AVSHA *sha = av_sha_alloc();
    VS_CHECK(sha != NULL);
    av_sha_init(sha, 256);
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) av_sha_update(sha, buf, n);
    int bad = ferror(f);
    fclose(f);
    unsigned char digest[32];
    av_sha_final(sha, digest);
    av_free(sha);
    if (bad) return vs_fail(e, "%s: read error", path);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    return 0;
}

int models_verify(const char *dir, vs_err *e)
{
    char list[PATH_MAX];
    snprintf(list, sizeof list, "%s/SHA256SUMS", dir);
    if (!fs_exists(list)) return 0;
    char *text;
    if (fs_read_all(&text, NULL, list, e)) return -1;
    int rc = 0;
    for (char *line = strtok(text, "\n"); line && rc == 0; line = strtok(NULL, "\n")) {
        char want[65], buf[257];
        int ok = sscanf(line, "%64[0-9a-f] %256[^\n]", want, buf) == 2;
        const char *name = buf[0] == '*' ? buf + 1 : buf; /* sha256sum's binary-mode mark */
        if (!ok || strlen(want) != 64 || !name[0] || strchr(name, '/')) {
            rc = vs_fail(e, "%s: not a sha256sum line: '%.60s' (run 'make models' again)", list, line);
            break;
        }
        char path[PATH_MAX + 256], got[65];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (sha256_file(got, path, e)) {
            rc = -1;
        } else if (strcmp(got, want)) {
            rc = vs_fail(e, "%s: damaged or changed since 'make models' (its SHA-256 is not the one "
                            "in SHA256SUMS); run 'make models' again",
                         path);
        }
    }
    free(text);
    return rc;
}
