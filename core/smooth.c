/* smooth.c: One-Euro smoothing of face landmarks over time (see smooth.h). */
#include "smooth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

#define MAX_TRACKS 64
#define D_CUTOFF 1.0 /* Hz: the filter on the speed estimate */

typedef struct track {
    float x[136];  /* filtered landmarks */
    float dx[136]; /* filtered speed, pixels per second */
    double t;
    float cx, cy, size;
} track;

struct lm_smoother {
    float min_cutoff, beta;
    track tr[MAX_TRACKS];
    int n;
};

lm_smoother *lms_new(float min_cutoff, float beta)
{
    lm_smoother *s = vs_calloc(1, sizeof *s);
    s->min_cutoff = min_cutoff, s->beta = beta;
    return s;
}

void lms_free(lm_smoother *s)
{
    free(s);
}

/* centre and size (the larger side of the landmarks' box) of a face */
static void where(float *cx, float *cy, float *size, const float lm[136])
{
    float x0 = lm[0], x1 = lm[0], y0 = lm[1], y1 = lm[1];
    for (int i = 1; i < 68; i++) {
        x0 = fminf(x0, lm[2 * i]), x1 = fmaxf(x1, lm[2 * i]);
        y0 = fminf(y0, lm[2 * i + 1]), y1 = fmaxf(y1, lm[2 * i + 1]);
    }
    *cx = (x0 + x1) / 2, *cy = (y0 + y1) / 2, *size = fmaxf(fmaxf(x1 - x0, y1 - y0), 1.f);
}

/* the smoothing factor of a first-order low-pass filter at cutoff fc for a step dt */
static double alpha(double dt, double fc)
{
    double tau = 1.0 / (2 * M_PI * fc);
    return 1.0 / (1.0 + tau / dt);
}

static void filter(track *tr, const float lm[136], double t, const lm_smoother *s)
{
    double dt = t - tr->t;
    if (!(dt > 0)) dt = 1.0 / 30;
    /* the speed: filtered, then its mean over the points in face sizes per second sets the
     * cutoff (one cutoff for the whole face keeps its shape) */
    double ad = alpha(dt, D_CUTOFF), speed = 0;
    for (int i = 0; i < 136; i++) {
        double raw = (lm[i] - tr->x[i]) / dt;
        tr->dx[i] = (float)(ad * raw + (1 - ad) * tr->dx[i]);
    }
    for (int i = 0; i < 68; i++) speed += hypot(tr->dx[2 * i], tr->dx[2 * i + 1]);
    speed /= 68 * tr->size;
    double a = alpha(dt, s->min_cutoff + s->beta * speed);
    for (int i = 0; i < 136; i++) tr->x[i] = (float)(a * lm[i] + (1 - a) * tr->x[i]);
    tr->t = t;
}

void lms_apply(lm_smoother *s, float (*lm)[136], int n, double t)
{
    if (s->min_cutoff <= 0) return; /* off */
    track next[MAX_TRACKS];
    int used[MAX_TRACKS] = {0}, m = 0;
    for (int f = 0; f < n && m < MAX_TRACKS; f++) {
        float cx, cy, size;
        where(&cx, &cy, &size, lm[f]);
        int best = -1;
        float bd = 0.5f * size;
        for (int k = 0; k < s->n; k++) {
            float d = hypotf(cx - s->tr[k].cx, cy - s->tr[k].cy);
            if (!used[k] && d < bd) bd = d, best = k;
        }
        track *tr = &next[m++];
        if (best < 0) { /* a new face: as it is */
            memcpy(tr->x, lm[f], sizeof tr->x);
            memset(tr->dx, 0, sizeof tr->dx);
            tr->t = t;
        } else {
            used[best] = 1;
            *tr = s->tr[best];
            tr->size = size;
            filter(tr, lm[f], t, s);
            memcpy(lm[f], tr->x, sizeof tr->x);
        }
        where(&tr->cx, &tr->cy, &tr->size, lm[f]);
    }
    memcpy(s->tr, next, sizeof(track) * (size_t)m);
    s->n = m;
}
