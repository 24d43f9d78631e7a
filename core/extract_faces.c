/* extract_faces.c: the face-finding half of extraction (see extract_faces.h). */
#include "extract_faces.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "facenet.h"
#include "facenet_input.h"

/* Frames and aligned crops in the networks' backend memory. */
struct ex_scratch {
    nn_buf frame[EX_MAX_BATCH];
    nn_buf crops; /* [n, size, size, 3] bytes */
    uint8_t *crops_host;
    size_t crops_host_bytes;
};

int ex_nets_open(ex_nets *n, const char *models_dir, const nn_backend *be, vs_err *e)
{
    memset(n, 0, sizeof *n);
    n->be = be ? be : nn_cpu_backend();
    n->batch = fni_batch(n->be, EX_MAX_BATCH, 1);
    n->scratch = vs_calloc(1, sizeof *n->scratch);
    if (fn_detector_load(&n->det, models_dir, n->be, e) ||
        fn_landmarker_load(&n->lmk, models_dir, n->be, e) ||
        fn_embedder_load(&n->emb, models_dir, n->be, e)) {
        ex_nets_free(n);
        return -1;
    }
    return 0;
}

void ex_nets_free(ex_nets *n)
{
    if (n->det) fn_detector_free(n->det);
    if (n->lmk) fn_landmarker_free(n->lmk);
    if (n->emb) fn_embedder_free(n->emb);
    if (n->scratch) {
        for (int i = 0; i < EX_MAX_BATCH; i++) nn_buf_free(&n->scratch->frame[i], n->be);
        nn_buf_free(&n->scratch->crops, n->be);
        free(n->scratch->crops_host);
        free(n->scratch);
    }
    memset(n, 0, sizeof *n);
}

static float nearest(const float emb[128], float (*refs)[128], int n)
{
    float best = INFINITY;
    for (int i = 0; i < n; i++) {
        float d = fn_distance(emb, refs[i]);
        if (d < best) best = d;
    }
    return best;
}

int ex_identity_passes(const float emb[128], float (*keep)[128], int n_keep, float (*drop)[128],
                       int n_drop, float similarity)
{
    return !(n_keep && nearest(emb, keep, n_keep) > similarity) &&
           !(n_drop && nearest(emb, drop, n_drop) <= similarity);
}

fn_box ex_found_box(const ex_found *f)
{
    return (fn_box){f->box[0], f->box[1], f->box[2], f->box[3], f->score};
}

/* Detection, landmarks and their checks on the nf frames fi (backend memory): frame i's
 * detections in out[i * max ...], counts[i] of them. The landmarks of every face of every frame
 * are found in one batch. */
static void find_faces(ex_found *out, int *counts, int max, ex_nets *n, const fn_image *fi, int nf,
                       const vs_config *cfg)
{
    fn_box *boxes = vs_malloc(sizeof *boxes * (size_t)max * nf);
    fn_detect_batch(boxes, counts, max, n->det, fi, nf, cfg->threshold);
    int total = 0;
    for (int i = 0; i < nf; i++) total += counts[i];
    fn_image *ims = vs_malloc(sizeof *ims * (size_t)(total + 1));
    fn_box *which = vs_malloc(sizeof *which * (size_t)(total + 1));
    float(*lm)[136] = vs_malloc(sizeof *lm * (size_t)(total + 1));
    int *at = vs_malloc(sizeof *at * (size_t)(total + 1)), m = 0;
    for (int i = 0; i < nf; i++)
        for (int k = 0; k < counts[i]; k++) {
            ex_found *f = &out[i * max + k];
            const fn_box *b = &boxes[i * max + k];
            f->box[0] = b->x, f->box[1] = b->y, f->box[2] = b->w, f->box[3] = b->h;
            f->score = b->score;
            f->verdict = EX_KEEP;
            if ((b->w > b->h ? b->w : b->h) < cfg->min_size) {
                f->verdict = EX_TOO_SMALL;
                continue;
            }
            ims[m] = fi[i], which[m] = *b, at[m++] = i * max + k;
        }
    fn_landmarks_batch(lm, n->lmk, ims, which, m);
    for (int j = 0; j < m; j++) {
        ex_found *f = &out[at[j]];
        memcpy(f->lm, lm[j], sizeof f->lm);
        if (cfg->landmark_filter &&
            (!align_plausible(f->lm, ALIGN_MAX_LANDMARK_ERROR) || !align_fills_box(f->lm, f->box)))
            f->verdict = EX_NOT_A_FACE;
    }
    free(boxes), free(ims), free(which), free(lm), free(at);
}

int ex_find_faces(ex_found *out, int max, ex_nets *n, const img *frame, const vs_config *cfg)
{
    if (max > EX_MAX_DETECTIONS) max = EX_MAX_DETECTIONS;
    fn_image fi = fni_stage_image(&n->scratch->frame[0], n->be, frame);
    int count;
    find_faces(out, &count, max, n, &fi, 1, cfg);
    return count;
}

/* n aligned crops [size, size, 3] of the frames, on the host: warps w (backend memory frames)
 * through the backend, copied out in one go. */
static const uint8_t *crop_faces(ex_nets *nets, const nn_warp *w, int n, int size)
{
    struct ex_scratch *s = nets->scratch;
    const nn_backend *be = nets->be;
    size_t bytes = (size_t)n * size * size * 3;
    uint8_t *dev = (uint8_t *)nn_buf_grow(&s->crops, be, nn_byte_words(bytes));
    if (bytes > s->crops_host_bytes) {
        free(s->crops_host);
        s->crops_host_bytes = bytes * 2;
        s->crops_host = vs_malloc(s->crops_host_bytes);
    }
    if (n == 0) return s->crops_host;
    be->warp(dev, w, n, size);
    nn_copy_out_bytes(be, s->crops_host, dev, bytes);
    return s->crops_host;
}

void ex_find_batch(ex_face **faces, int *count, int *cap, ex_nets *nets, img *const *frames, int n,
                   const vs_config *cfg, align_centering centering, const ex_filter *flt)
{
    fn_image fi[EX_MAX_BATCH];
    int counts[EX_MAX_BATCH];
    VS_CHECK(n >= 0 && n <= nets->batch && n <= EX_MAX_BATCH);
    for (int i = 0; i < n; i++)
        fi[i] = fni_stage_image(&nets->scratch->frame[i], nets->be, frames[i]);
    ex_found *found = vs_malloc(sizeof *found * EX_MAX_DETECTIONS * (size_t)(n ? n : 1));
    find_faces(found, counts, EX_MAX_DETECTIONS, nets, fi, n, cfg);
    int total = 0;
    for (int i = 0; i < n; i++) total += counts[i];
    if (total > *cap) {
        *cap = total * 2;
        *faces = vs_realloc(*faces, sizeof **faces * (size_t)*cap);
    }
    ex_face *x = *faces;
    *count = total;

    /* every face that passed the size and landmark checks: aligned, cropped, scored for blur,
     * and embedded when sharp enough (the --max-faces cut is made afterwards, in order) */
    nn_warp *warps = vs_malloc(sizeof *warps * (size_t)(total + 1));
    int *crop_of = vs_malloc(sizeof *crop_of * (size_t)(total + 1)), nw = 0;
    for (int i = 0, k = 0; i < n; i++)
        for (int j = 0; j < counts[i]; j++, k++) {
            ex_face *f = &x[k];
            memset(f, 0, sizeof *f);
            f->frame = i;
            f->found = found[i * EX_MAX_DETECTIONS + j];
            f->fate = f->found.verdict == EX_TOO_SMALL    ? EX_DROP_SIZE
                      : f->found.verdict == EX_NOT_A_FACE ? EX_DROP_LANDMARKS
                                                          : EX_SAVED;
            crop_of[k] = -1;
            double inv[6];
            if (f->fate != EX_SAVED || align_matrix(f->matrix, f->found.lm, centering, cfg->size) ||
                align_invert(inv, f->matrix))
                continue;
            warps[nw] = (nn_warp){.px = fi[i].px, .iw = fi[i].w, .ih = fi[i].h};
            memcpy(warps[nw].m, inv, sizeof inv);
            crop_of[k] = nw++;
        }
    const size_t per = (size_t)cfg->size * cfg->size * 3;
    const uint8_t *crops = crop_faces(nets, warps, nw, cfg->size);
    fn_image *eims = vs_malloc(sizeof *eims * (size_t)(total + 1));
    fn_box *edet = vs_malloc(sizeof *edet * (size_t)(total + 1));
    float(*elm)[136] = vs_malloc(sizeof *elm * (size_t)(total + 1));
    float(*emb)[128] = vs_malloc(sizeof *emb * (size_t)(total + 1));
    int *eat = vs_malloc(sizeof *eat * (size_t)(total + 1)), ne = 0;
    for (int k = 0; k < total; k++) {
        if (crop_of[k] < 0) continue;
        ex_face *f = &x[k];
        f->crop = crops + per * (size_t)crop_of[k];
        img view = {cfg->size, cfg->size, 3, (uint8_t *)f->crop};
        f->blur = (float)img_blur_score(&view);
        if (cfg->min_blur > 0 && f->blur < cfg->min_blur) continue;
        eims[ne] = fi[f->frame], edet[ne] = ex_found_box(&f->found);
        memcpy(elm[ne], f->found.lm, sizeof elm[0]);
        eat[ne++] = k;
    }
    fn_embed_batch(emb, nets->emb, eims, edet, (const float(*)[136])elm, ne);
    for (int j = 0; j < ne; j++) memcpy(x[eat[j]].embedding, emb[j], sizeof emb[0]);

    /* the decisions, one frame at a time in detection order */
    for (int k = 0, kept = 0; k < total; k++) {
        ex_face *f = &x[k];
        if (k == 0 || f->frame != x[k - 1].frame) kept = 0;
        if (f->fate != EX_SAVED) continue;
        if (cfg->max_faces && kept >= cfg->max_faces)
            f->fate = EX_DROP_MAX;
        else if (crop_of[k] < 0)
            f->fate = EX_DROP_LANDMARKS;
        else if (cfg->min_blur > 0 && f->blur < cfg->min_blur)
            f->fate = EX_DROP_BLUR;
        else if (!ex_identity_passes(f->embedding, flt->keep, flt->n_keep, flt->drop, flt->n_drop,
                                     cfg->similarity))
            f->fate = EX_DROP_IDENTITY;
        else
            f->index = kept++;
        if (f->fate != EX_SAVED) f->crop = NULL;
    }
    free(found), free(warps), free(crop_of), free(eims), free(edet), free(elm), free(emb),
        free(eat);
}
