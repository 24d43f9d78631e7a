/* faceset.c: loading a folder of face PNGs into model-ready crops and masks (see faceset.h). Each
 * face is resampled once, from its stored aligned image straight to the crop, supersampled so that
 * downscaling averages every source pixel (a box filter as wide as the scale) instead of skipping
 * some as plain bilinear sampling would. */
#include "faceset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "face.h"
#include "fsutil.h"
#include "image.h"
#include "nn/cpu_pool.h"
#include "rng.h"

/* ---- geometry ------------------------------------------------------------------------------ */

/* out = a after b (b applied first); 2x3 affine matrices */
static void compose(double out[6], const double a[6], const double b[6])
{
    double r[6];
    r[0] = a[0] * b[0] + a[1] * b[3];
    r[1] = a[0] * b[1] + a[1] * b[4];
    r[2] = a[0] * b[2] + a[1] * b[5] + a[2];
    r[3] = a[3] * b[0] + a[4] * b[3];
    r[4] = a[3] * b[1] + a[4] * b[4];
    r[5] = a[3] * b[2] + a[4] * b[5] + a[5];
    memcpy(out, r, sizeof r);
}

/* Bilinear sample of an 8-bit image at (sx, sy) (pixel centres at integers), borders replicated;
 * adds w * value to acc[0..c). */
static void sample_add(float *acc, const uint8_t *px, int w, int h, int c, double sx, double sy,
                       float wt)
{
    sx = sx >= 0 ? (sx < w - 1.0 ? sx : w - 1.0) : 0; /* a NaN goes to 0 */
    sy = sy >= 0 ? (sy < h - 1.0 ? sy : h - 1.0) : 0;
    int x0 = (int)sx, y0 = (int)sy;
    int x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
    float ax = (float)(sx - x0), ay = (float)(sy - y0);
    const uint8_t *p00 = px + ((size_t)y0 * w + x0) * c, *p01 = px + ((size_t)y0 * w + x1) * c;
    const uint8_t *p10 = px + ((size_t)y1 * w + x0) * c, *p11 = px + ((size_t)y1 * w + x1) * c;
    float w00 = (1 - ax) * (1 - ay) * wt, w01 = ax * (1 - ay) * wt, w10 = (1 - ax) * ay * wt,
          w11 = ax * ay * wt;
    for (int ch = 0; ch < c; ch++)
        acc[ch] += w00 * p00[ch] + w01 * p01[ch] + w10 * p10[ch] + w11 * p11[ch];
}

/* dst [P, P, 3] = src through m (dst pixel -> src pixel), k x k samples per destination pixel */
static void resample(uint8_t *dst, int size, const img *src, const double m[6], int k)
{
    const float wt = 1.0f / (float)(k * k);
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            float acc[3] = {0, 0, 0};
            for (int j = 0; j < k; j++)
                for (int i = 0; i < k; i++) {
                    double cx = x + (i + 0.5) / k - 0.5, cy = y + (j + 0.5) / k - 0.5;
                    sample_add(acc, src->px, src->w, src->h, 3, m[0] * cx + m[1] * cy + m[2],
                               m[3] * cx + m[4] * cy + m[5], wt);
                }
            uint8_t *o = dst + ((size_t)y * size + x) * 3;
            for (int ch = 0; ch < 3; ch++) {
                float v = acc[ch] + 0.5f;
                o[ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

/* ---- loading ------------------------------------------------------------------------------- */

static int keep_png(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcasecmp(name + n - 4, ".png");
}

typedef struct load_job {
    faceset *fs;
    const char *dir;
    char **errors; /* [n]: the message of a face that failed, else NULL */
} load_job;

static void load_task(void *ctx, int i, int worker)
{
    load_job *j = ctx;
    faceset *fs = j->fs;
    const int size = fs->size;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", j->dir, fs->names[i]);
    vs_face f;
    img *im = NULL;
    vs_err e;
    if (face_load(&f, &im, path, &e)) {
        j->errors[i] = vs_strdup(e.msg);
        return;
    }
    double crop[6], inv[6], w[6], fm[6];
    if (im->c != 3 || im->w != im->h || f.size <= 0) {
        snprintf(e.msg, sizeof e.msg, "%s: face image is %dx%d, not square (was it edited?)", path,
                 im->w, im->h);
        j->errors[i] = vs_strdup(e.msg);
        img_free(im);
        return;
    }
    /* the stored image may have been resized since extraction: scale its matrix with it */
    double s = (double)im->w / f.size;
    for (int k = 0; k < 6; k++) fm[k] = f.matrix[k] * s;
    if (faceset_crop_matrix(crop, f.lm, fs->centering, fs->coverage, size) ||
        align_invert(inv, crop)) {
        snprintf(e.msg, sizeof e.msg, "%s: degenerate landmarks in the metadata", path);
        j->errors[i] = vs_strdup(e.msg);
        img_free(im);
        return;
    }
    compose(w, fm, inv); /* crop pixels -> stored face pixels */
    double scale = sqrt(fabs(w[0] * w[4] - w[1] * w[3]));
    int k = (int)ceil(scale - 1e-6);
    k = k < 1 ? 1 : k > 8 ? 8 : k;
    resample(fs->px + (size_t)i * size * size * 3, size, im, w, k);
    img_free(im);

    float *lm = fs->lm + (size_t)i * 136;
    memcpy(lm, f.lm, 136 * sizeof *lm);
    align_apply(lm, 68, crop);
    faceset_make_masks(fs->mask + (size_t)i * size * size * FACESET_MASKS, lm, size);
}

int faceset_load(faceset *fs, const char *dir, const faceset_spec *spec, vs_err *e)
{
    memset(fs, 0, sizeof *fs);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int S = spec->model_size, P = spec->proc_size ? spec->proc_size : 2 * spec->model_size;
    float cov = spec->coverage > 0 ? spec->coverage : FACESET_DEFAULT_COVERAGE;
    if (S < 8 || S > 4096 || P < 8 || P > 4096)
        return vs_fail(e, "%s: model size %d / processing size %d out of range (8-4096)", dir, S,
                       P);
    if (!(cov > 0.1f && cov <= 1.0f))
        return vs_fail(e, "%s: coverage %g out of range (0.1-1]", dir, (double)cov);
    if ((unsigned)spec->centering > ALIGN_LEGACY)
        return vs_fail(e, "%s: unknown centering %d", dir, (int)spec->centering);
    if (!fs_is_dir(dir)) {
        if (!fs_exists(dir))
            return vs_fail(e, "%s: no such folder (extract faces into it with visage extract)",
                           dir);
        return vs_fail(e, "%s: not a folder (give the folder of extracted face PNGs)", dir);
    }
    char **names;
    int n;
    if (fs_list_dir(&names, &n, dir, keep_png, e)) return -1;
    if (n == 0) {
        fs_free_list(names, n);
        return vs_fail(e,
                       "%s: no face PNGs in the folder (extract faces into it with visage "
                       "extract)",
                       dir);
    }
    fs->n = n, fs->size = P, fs->model_size = S, fs->centering = spec->centering;
    fs->coverage = cov, fs->names = names;
    size_t np = (size_t)P * P;
    fs->px = vs_malloc((size_t)n * np * 3);
    fs->mask = vs_malloc((size_t)n * np * FACESET_MASKS);
    fs->lm = vs_malloc((size_t)n * 136 * sizeof *fs->lm);
    load_job j = {fs, dir, vs_calloc((size_t)n, sizeof(char *))};
    cpu_pool_run(load_task, &j, n);
    int bad = -1, n_bad = 0;
    for (int i = 0; i < n; i++)
        if (j.errors[i]) {
            if (bad < 0) bad = i;
            n_bad++;
        }
    if (bad >= 0) {
        if (n_bad > 1)
            vs_fail(e, "%s (and %d more faces in %s that cannot be used)", j.errors[bad], n_bad - 1,
                    dir);
        else
            vs_fail(e, "%s", j.errors[bad]);
    }
    for (int i = 0; i < n; i++) free(j.errors[i]);
    free(j.errors);
    if (bad >= 0) {
        faceset_free(fs);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fs->load_seconds = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    return 0;
}

void faceset_free(faceset *fs)
{
    if (fs->names) fs_free_list(fs->names, fs->n);
    free(fs->px);
    free(fs->mask);
    free(fs->lm);
    memset(fs, 0, sizeof *fs);
}

/* ---- the cursor ---------------------------------------------------------------------------- */

#define SHUFFLE_STREAM 0x73687566666c65ULL /* "shuffle": apart from any iteration number */

void faceset_permutation(int *perm, int n, uint64_t seed, int64_t epoch)
{
    rng r;
    rng_stream(&r, seed, SHUFFLE_STREAM, (uint64_t)epoch, 0);
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int k = (int)rng_below(&r, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[k], perm[k] = t;
    }
}

void faceset_cursor_next(int *out, faceset_cursor *c, int n, int batch, uint64_t seed)
{
    VS_CHECK(n > 0);
    int *perm = vs_malloc((size_t)n * sizeof *perm);
    if (c->pos < 0) c->pos = 0;
    if (c->pos >= n) c->epoch++, c->pos = 0;
    faceset_permutation(perm, n, seed, c->epoch);
    for (int i = 0; i < batch; i++) {
        if (c->pos >= n) {
            c->epoch++, c->pos = 0;
            faceset_permutation(perm, n, seed, c->epoch);
        }
        out[i] = perm[c->pos++];
    }
    if (c->pos >= n) c->epoch++, c->pos = 0; /* an epoch ends as its last face is taken */
    free(perm);
}
