/* facenet_compare.h: the three face networks on one backend against the same networks on another
 * (the CPU), end to end on one image as extraction runs them: detection, then the landmarks of
 * each detected face, then its identity embedding. Each reference face is matched to the other
 * backend's best-overlapping detection; the worst IoU, landmark distance and embedding cosine
 * over all faces are kept. Used by test_facenet (the CPU in the GPU's weight layout) and
 * test_cuda_ops (the GPU); needs no media code, so the GPU test can link it. */
#ifndef VS_TEST_FACENET_COMPARE_H
#define VS_TEST_FACENET_COMPARE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenet.h"

typedef struct fnc_nets {
    fn_detector *det;
    fn_landmarker *lmk;
    fn_embedder *emb;
} fnc_nets;

typedef struct fnc_stats {
    int faces;        /* detected by the reference */
    int unmatched;    /* of those, with no detection of IoU >= 0.5 on the other backend */
    int count_diff;   /* detections the two backends disagree on the number of */
    double min_iou;   /* of the matched faces' boxes */
    double max_lm_px; /* largest distance between the two backends' landmark points */
    double min_cos;   /* smallest cosine between the two embeddings of a face */
} fnc_stats;

static void fnc_stats_init(fnc_stats *s)
{
    memset(s, 0, sizeof *s);
    s->min_iou = 1, s->min_cos = 1;
}

static int fnc_load(fnc_nets *n, const char *models, const nn_backend *be, vs_err *e)
{
    memset(n, 0, sizeof *n);
    return fn_detector_load(&n->det, models, be, e) || fn_landmarker_load(&n->lmk, models, be, e) ||
                   fn_embedder_load(&n->emb, models, be, e)
               ? -1
               : 0;
}

static void fnc_free(fnc_nets *n)
{
    if (n->det) fn_detector_free(n->det);
    if (n->lmk) fn_landmarker_free(n->lmk);
    if (n->emb) fn_embedder_free(n->emb);
}

static double fnc_iou(const fn_box *a, const fn_box *b)
{
    double x0 = fmax(a->x, b->x), y0 = fmax(a->y, b->y);
    double x1 = fmin(a->x + a->w, b->x + b->w), y1 = fmin(a->y + a->h, b->y + b->h);
    double in = x1 > x0 && y1 > y0 ? (x1 - x0) * (y1 - y0) : 0;
    double un = (double)a->w * a->h + (double)b->w * b->h - in;
    return un > 0 ? in / un : 0;
}

#define FNC_MAX 64

/* The other backend's detection of b that best overlaps a (IoU >= 0.5), or -1; counted in s. */
static int fnc_match(fnc_stats *s, const fn_box *a, const fn_box *b, int nb)
{
    int best = -1;
    double bi = 0;
    for (int k = 0; k < nb; k++) {
        double v = fnc_iou(a, &b[k]);
        if (v > bi) bi = v, best = k;
    }
    if (best < 0 || bi < 0.5) {
        s->unmatched++;
        return -1;
    }
    if (bi < s->min_iou) s->min_iou = bi;
    return best;
}

static void fnc_landmarks_agree(fnc_stats *s, const float la[136], const float lb[136])
{
    for (int p = 0; p < 68; p++) {
        double d = hypot(la[2 * p] - lb[2 * p], la[2 * p + 1] - lb[2 * p + 1]);
        if (d > s->max_lm_px) s->max_lm_px = d;
    }
}

static void fnc_embeddings_agree(fnc_stats *s, const float ea[128], const float eb[128])
{
    double dot = 0, qa = 0, qb = 0;
    for (int k = 0; k < 128; k++) dot += ea[k] * eb[k], qa += ea[k] * ea[k], qb += eb[k] * eb[k];
    double cs = qa > 0 && qb > 0 ? dot / sqrt(qa * qb) : 0;
    if (cs < s->min_cos) s->min_cos = cs;
}

/* Adds one image's comparison to s (detections of score >= min_score). */
static void fnc_compare(fnc_stats *s, fnc_nets *ref, fnc_nets *got, const img *im, float min_score)
{
    fn_box *a = malloc(sizeof(fn_box) * FNC_MAX), *b = malloc(sizeof(fn_box) * FNC_MAX);
    if (!a || !b) abort();
    int na = fn_detect(a, FNC_MAX, ref->det, im, min_score);
    int nb = fn_detect(b, FNC_MAX, got->det, im, min_score);
    s->faces += na;
    s->count_diff += abs(na - nb);
    for (int i = 0; i < na; i++) {
        int best = fnc_match(s, &a[i], b, nb);
        if (best < 0) continue;
        float la[136], lb[136], ea[128], eb[128];
        fn_landmarks(la, ref->lmk, im, &a[i]);
        fn_landmarks(lb, got->lmk, im, &b[best]);
        fnc_landmarks_agree(s, la, lb);
        fn_embed(ea, ref->emb, im, &a[i], la);
        fn_embed(eb, got->emb, im, &b[best], lb);
        fnc_embeddings_agree(s, ea, eb);
    }
    free(a), free(b);
}

/* The same comparison with got's networks run in batches on its backend gbe, as extraction runs
 * them: the n pictures (copied into gbe's memory) through one fn_detect_batch, then every matched
 * face `repeat` times over through fn_landmarks_batch and fn_embed_batch, so that the batches
 * take more than one pass. Each face is compared with the reference's one-picture calls into s,
 * and its copies with its first into self (a batch of another size may take other algorithms). */
static void fnc_compare_batch(fnc_stats *s, fnc_stats *self, fnc_nets *ref, fnc_nets *got,
                              const nn_backend *gbe, img *const *ims, int n, float min_score,
                              int repeat)
{
    fn_image *fi = calloc((size_t)n, sizeof *fi);
    fn_box *a = malloc(sizeof(fn_box) * FNC_MAX), *b = malloc(sizeof(fn_box) * FNC_MAX * n);
    int *nb = calloc((size_t)n, sizeof *nb), cap = FNC_MAX * n * repeat, m = 0;
    fn_image *fims = malloc(sizeof *fims * cap);
    fn_box *ra = malloc(sizeof *ra * cap), *rb = malloc(sizeof *rb * cap);
    const img **src = malloc(sizeof *src * cap);
    float(*la)[136] = malloc(sizeof *la * cap), (*lb)[136] = malloc(sizeof *lb * cap);
    float(*ea)[128] = malloc(sizeof *ea * cap), (*eb)[128] = malloc(sizeof *eb * cap);
    if (!fi || !a || !b || !nb || !fims || !ra || !rb || !src || !la || !lb || !ea || !eb) abort();
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)ims[i]->w * ims[i]->h * 3;
        float *d = gbe->alloc(nn_byte_words(bytes));
        nn_copy_in_bytes(gbe, d, ims[i]->px, bytes);
        fi[i] = (fn_image){(const uint8_t *)d, ims[i]->w, ims[i]->h};
    }
    fn_detect_batch(b, nb, FNC_MAX, got->det, fi, n, min_score);
    for (int i = 0; i < n; i++) {
        int na = fn_detect(a, FNC_MAX, ref->det, ims[i], min_score);
        s->faces += na;
        s->count_diff += abs(na - nb[i]);
        for (int k = 0; k < na; k++) {
            int best = fnc_match(s, &a[k], b + (size_t)i * FNC_MAX, nb[i]);
            if (best < 0) continue;
            for (int r = 0; r < repeat; r++, m++) {
                fims[m] = fi[i], src[m] = ims[i];
                ra[m] = a[k], rb[m] = b[(size_t)i * FNC_MAX + best];
            }
        }
    }
    fn_landmarks_batch(lb, got->lmk, fims, rb, m);
    fn_embed_batch(eb, got->emb, fims, rb, (const float(*)[136])lb, m);
    for (int f = 0; f < m; f += repeat) {
        fn_landmarks(la[f], ref->lmk, src[f], &ra[f]);
        fn_embed(ea[f], ref->emb, src[f], &ra[f], la[f]);
        fnc_landmarks_agree(s, la[f], lb[f]);
        fnc_embeddings_agree(s, ea[f], eb[f]);
        for (int r = 1; r < repeat; r++) {
            self->faces++;
            fnc_landmarks_agree(self, lb[f], lb[f + r]);
            fnc_embeddings_agree(self, eb[f], eb[f + r]);
        }
    }
    for (int i = 0; i < n; i++) gbe->free((float *)fi[i].px);
    free(fi), free(a), free(b), free(nb), free(fims), free(ra), free(rb), free(src);
    free(la), free(lb), free(ea), free(eb);
}

/* The bar: every face found by both, boxes IoU >= 0.95, landmarks within 1 px,
 * embeddings cosine >= 0.999. */
static int fnc_pass(const fnc_stats *s)
{
    return s->faces > 0 && !s->unmatched && !s->count_diff && s->min_iou >= 0.95 &&
           s->max_lm_px <= 1.0 && s->min_cos >= 0.999;
}

static void fnc_print(const char *what, const fnc_stats *s)
{
    printf("%s: %d faces, %d unmatched, %d count differences, worst IoU %.5f, landmarks within "
           "%.4f px, embeddings cosine >= %.6f\n",
           what, s->faces, s->unmatched, s->count_diff, s->min_iou, s->max_lm_px, s->min_cos);
}

#endif
