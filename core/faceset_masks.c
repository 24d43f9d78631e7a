/* faceset_masks.c: the pixel geometry of faceset.h: the crop matrix of a face at a model's size
 * and coverage, and the face, eye and mouth masks drawn from its landmarks, kept apart from the
 * loading (faceset.c) so that what links no media library (conversion's GPU test) can use them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "faceset.h"

/* ---- geometry ------------------------------------------------------------------------------ */

int faceset_crop_matrix(double m[6], const float lm[136], align_centering c, float coverage,
                        int size)
{
    /* align_matrix is linear in its size: the full aligned face at size P / coverage, less the
     * border (1 - coverage) / 2 of it on each side, is the central `coverage` part at size P */
    const int ref = 1 << 16;
    if (align_matrix(m, lm, c, ref)) return -1;
    double full = size / (double)coverage, k = full / ref, off = (1.0 - coverage) / 2.0 * full;
    for (int i = 0; i < 6; i++) m[i] *= k;
    m[2] -= off;
    m[5] -= off;
    return 0;
}

/* ---- masks --------------------------------------------------------------------------------- */

#define MAX_HULL 32

static double cross(const float *o, const float *a, const float *b)
{
    return ((double)a[0] - o[0]) * ((double)b[1] - o[1]) -
           ((double)a[1] - o[1]) * ((double)b[0] - o[0]);
}

static int cmp_point(const void *pa, const void *pb)
{
    const float *a = pa, *b = pb;
    if (a[0] != b[0]) return a[0] < b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

/* hull [h, 2] = convex hull of pts [n, 2] (Andrew's monotone chain); returns h */
static int convex_hull(float *hull, const float *pts, int n)
{
    float p[MAX_HULL * 2];
    VS_CHECK(n <= MAX_HULL);
    memcpy(p, pts, (size_t)n * 2 * sizeof *p);
    qsort(p, (size_t)n, 2 * sizeof *p, cmp_point);
    if (n < 3) {
        memcpy(hull, p, (size_t)n * 2 * sizeof *p);
        return n;
    }
    float h[2 * MAX_HULL * 2];
    int k = 0;
    for (int i = 0; i < n; i++) { /* lower */
        while (k >= 2 && cross(h + 2 * (k - 2), h + 2 * (k - 1), p + 2 * i) <= 0) k--;
        h[2 * k] = p[2 * i], h[2 * k + 1] = p[2 * i + 1], k++;
    }
    for (int i = n - 2, t = k + 1; i >= 0; i--) { /* upper */
        while (k >= t && cross(h + 2 * (k - 2), h + 2 * (k - 1), p + 2 * i) <= 0) k--;
        h[2 * k] = p[2 * i], h[2 * k + 1] = p[2 * i + 1], k++;
    }
    k--; /* the last point repeats the first */
    memcpy(hull, h, (size_t)k * 2 * sizeof *h);
    return k;
}

static double seg_dist(double px, double py, const float *a, const float *b)
{
    double dx = b[0] - a[0], dy = b[1] - a[1], l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? ((px - a[0]) * dx + (py - a[1]) * dy) / l2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double ex = a[0] + t * dx - px, ey = a[1] + t * dy - py;
    return sqrt(ex * ex + ey * ey);
}

/* A convex hull with its edge lines as unit normals pointing out: the distance of q from edge i's
 * line is nrm[i][0] qx + nrm[i][1] qy + nrm[i][2]. The largest over the edges is the exact signed
 * distance inside the hull and a lower bound of the distance outside it. */
typedef struct hull {
    int k;     /* points */
    int lines; /* k >= 3 and no edge of zero length: nrm is valid */
    float pt[MAX_HULL * 2];
    double nrm[MAX_HULL][3];
    float x0, x1, y0, y1; /* bounding box */
} hull;

static void hull_build(hull *h, const float *pts, int n)
{
    h->k = convex_hull(h->pt, pts, n);
    h->lines = h->k >= 3;
    for (int i = 0; h->lines && i < h->k; i++) {
        const float *a = h->pt + 2 * i, *b = h->pt + 2 * ((i + 1) % h->k);
        double dx = b[0] - a[0], dy = b[1] - a[1], l = sqrt(dx * dx + dy * dy);
        if (l < 1e-9) {
            h->lines = 0;
            break;
        }
        /* convex_hull turns so that cross(a, b, q) > 0 inside: (dy, -dx) points out */
        h->nrm[i][0] = dy / l, h->nrm[i][1] = -dx / l;
        h->nrm[i][2] = -(h->nrm[i][0] * a[0] + h->nrm[i][1] * a[1]);
    }
    h->x0 = h->x1 = h->pt[0], h->y0 = h->y1 = h->pt[1];
    for (int i = 1; i < h->k; i++) {
        h->x0 = fminf(h->x0, h->pt[2 * i]), h->x1 = fmaxf(h->x1, h->pt[2 * i]);
        h->y0 = fminf(h->y0, h->pt[2 * i + 1]), h->y1 = fmaxf(h->y1, h->pt[2 * i + 1]);
    }
}

static double hull_line_dist(const hull *h, double x, double y)
{
    double lo = -1e30;
    for (int i = 0; i < h->k; i++) {
        double d = h->nrm[i][0] * x + h->nrm[i][1] * y + h->nrm[i][2];
        if (d > lo) lo = d;
    }
    return lo;
}

/* pixels x0..x1, y0..y1 of a P x P image that lie within g of the box */
static void pixel_box(int b[4], float x0, float x1, float y0, float y1, float g, int size)
{
    b[0] = (int)fmaxf(0.f, floorf(x0 - g)), b[1] = (int)fminf(size - 1.f, ceilf(x1 + g));
    b[2] = (int)fmaxf(0.f, floorf(y0 - g)), b[3] = (int)fminf(size - 1.f, ceilf(y1 + g));
}

/* m [P, P] = max(m, coverage of the hull of pts [n, 2] grown by radius), anti-aliased over about
 * one pixel at the edge: coverage = clamp(radius + 1/2 - signed distance to the hull, 0, 1) */
static void fill_hull(float *m, int size, const float *pts, int n, float radius)
{
    hull h;
    if (n == 0) return;
    hull_build(&h, pts, n);
    int b[4];
    pixel_box(b, h.x0, h.x1, h.y0, h.y1, radius + 1.5f, size);
    for (int y = b[2]; y <= b[3]; y++)
        for (int x = b[0]; x <= b[1]; x++) {
            /* only pixels near the rim need the distances to the edge segments */
            double lo = h.lines ? hull_line_dist(&h, x, y) : 1e30, sd = lo;
            if (h.lines && lo >= radius + 0.5) continue;
            if (!h.lines || lo > 0) {
                sd = 1e30;
                for (int i = 0; i < h.k; i++) {
                    double d = seg_dist(x, y, h.pt + 2 * i, h.pt + 2 * ((i + 1) % h.k));
                    if (d < sd) sd = d;
                    if (h.k == 1) break;
                }
            }
            float v = (float)(radius + 0.5 - sd);
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            float *o = m + (size_t)y * size + x;
            if (v > *o) *o = v;
        }
}

/* m [P, P] = coverage of the union of hulls h [n]: 4 x 4 samples per pixel where an edge passes
 * (anti-aliasing each hull alone would leave seams where hulls meet) */
static void fill_union(float *m, int size, const hull *h, int n)
{
    float x0 = 1e30f, x1 = -1e30f, y0 = 1e30f, y1 = -1e30f;
    for (int p = 0; p < n; p++)
        if (h[p].lines) {
            x0 = fminf(x0, h[p].x0), x1 = fmaxf(x1, h[p].x1);
            y0 = fminf(y0, h[p].y0), y1 = fmaxf(y1, h[p].y1);
        }
    if (x1 < x0) return;
    int b[4];
    pixel_box(b, x0, x1, y0, y1, 1.5f, size);
    for (int y = b[2]; y <= b[3]; y++)
        for (int x = b[0]; x <= b[1]; x++) {
            /* a pixel (half side 1/2, so within 0.71 of its centre) wholly inside a hull is 1;
             * one at least that far from every hull is 0 */
            int near = 0, full = 0;
            for (int p = 0; p < n && !full; p++) {
                if (!h[p].lines) continue;
                double d = hull_line_dist(&h[p], x, y);
                full = d <= -0.75, near |= d < 0.75;
            }
            float v = full ? 1.f : 0.f;
            if (!full && near) {
                int in = 0;
                for (int j = 0; j < 4; j++)
                    for (int i = 0; i < 4; i++) {
                        double sx = x + (i + 0.5) / 4 - 0.5, sy = y + (j + 0.5) / 4 - 0.5;
                        for (int p = 0; p < n; p++)
                            if (h[p].lines && hull_line_dist(&h[p], sx, sy) <= 0) {
                                in++;
                                break;
                            }
                    }
                v = in / 16.f;
            }
            float *o = m + (size_t)y * size + x;
            if (v > *o) *o = v;
        }
}

/* m [P, P] blurred in place by a Gaussian of kernel side ks (odd), sigma as OpenCV derives it;
 * only the part that can be non-zero (m is zero outside rows y0..y1 and columns x0..x1) */
static void gauss_blur(float *m, float *tmp, int size, int ks, int x0, int x1, int y0, int y1)
{
    int r = ks / 2;
    float w[64];
    VS_CHECK(r < 64);
    double sigma = 0.3 * ((ks - 1) * 0.5 - 1) + 0.8, sum = 0;
    for (int i = -r; i <= r; i++) sum += w[i + r] = (float)exp(-(i * i) / (2 * sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) w[i] = (float)(w[i] / sum);
    int bx0 = x0 - r < 0 ? 0 : x0 - r, bx1 = x1 + r >= size ? size - 1 : x1 + r;
    int by0 = y0 - r < 0 ? 0 : y0 - r, by1 = y1 + r >= size ? size - 1 : y1 + r;
    /* rows m -> tmp over rows y0..y1 (the others are zero), then columns tmp -> m over rows
     * by0..by1; borders replicated */
    for (int y = y0; y <= y1; y++)
        for (int x = bx0; x <= bx1; x++) {
            float acc = 0;
            for (int i = -r; i <= r; i++) {
                int xx = x + i < 0 ? 0 : x + i >= size ? size - 1 : x + i;
                acc += w[i + r] * m[(size_t)y * size + xx];
            }
            tmp[(size_t)y * size + x] = acc;
        }
    for (int y = by0; y <= by1; y++)
        for (int x = bx0; x <= bx1; x++) {
            float acc = 0;
            for (int i = -r; i <= r; i++) {
                int yy = y + i < 0 ? 0 : y + i >= size ? size - 1 : y + i;
                if (yy >= y0 && yy <= y1) acc += w[i + r] * tmp[(size_t)yy * size + x];
            }
            m[(size_t)y * size + x] = acc;
        }
}

/* the rows and columns where m [P, P] is non-zero; -1 when it is zero */
static int nonzero_box(int box[4], const float *m, int size)
{
    box[0] = size, box[1] = -1, box[2] = size, box[3] = -1;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            if (m[(size_t)y * size + x] != 0) {
                if (x < box[0]) box[0] = x;
                if (x > box[1]) box[1] = x;
                if (y < box[2]) box[2] = y;
                if (y > box[3]) box[3] = y;
            }
    return box[1] < 0 ? -1 : 0;
}

/* pts [n, 2] = landmarks lm[from..to) then the listed extra ones */
static int gather(float *pts, const float *lm, int from, int to)
{
    int n = 0;
    for (int i = from; i < to; i++) pts[2 * n] = lm[2 * i], pts[2 * n + 1] = lm[2 * i + 1], n++;
    return n;
}

/* The hulls of Faceswap's "components" mask (plugins/extract/mask/components.py); for its
 * "extended" mask (extended.py) the eyebrows are first raised by half their distance from the top
 * of the eyes, so the forehead above them is kept. */
static void face_mask(float *m, const float lm_in[136], int size, int extended)
{
    float lm[136];
    memcpy(lm, lm_in, sizeof lm);
    if (extended) {
        float ml[2], mr[2], ql[2], qr[2];
        for (int a = 0; a < 2; a++) {
            ml[a] = (lm[2 * 36 + a] + lm[2 * 0 + a]) / 2,
            mr[a] = (lm[2 * 16 + a] + lm[2 * 45 + a]) / 2;
            ql[a] = (lm[2 * 36 + a] + ml[a]) / 2, qr[a] = (lm[2 * 45 + a] + mr[a]) / 2;
        }
        const float *bot_l[5] = {ql, lm_in + 2 * 36, lm_in + 2 * 37, lm_in + 2 * 38,
                                 lm_in + 2 * 39};
        const float *bot_r[5] = {lm_in + 2 * 42, lm_in + 2 * 43, lm_in + 2 * 44, lm_in + 2 * 45,
                                 qr};
        for (int i = 0; i < 5; i++)
            for (int a = 0; a < 2; a++) {
                lm[2 * (17 + i) + a] += (lm_in[2 * (17 + i) + a] - bot_l[i][a]) / 2;
                lm[2 * (22 + i) + a] += (lm_in[2 * (22 + i) + a] - bot_r[i][a]) / 2;
            }
    }
    /* parts: ranges of landmarks [from, to) */
    static const int parts[][4][2] = {
        {{0, 9}, {17, 18}},                     /* right jaw */
        {{8, 17}, {26, 27}},                    /* left jaw */
        {{17, 20}, {8, 9}},                     /* right cheek */
        {{24, 27}, {8, 9}},                     /* left cheek */
        {{19, 25}, {8, 9}},                     /* nose ridge */
        {{17, 22}, {27, 28}, {31, 36}, {8, 9}}, /* right eye */
        {{22, 27}, {27, 28}, {31, 36}, {8, 9}}, /* left eye */
        {{27, 31}, {31, 36}},                   /* nose */
    };
    enum { N_PARTS = sizeof parts / sizeof parts[0] };
    hull h[N_PARTS];
    for (int p = 0; p < N_PARTS; p++) {
        float pts[MAX_HULL * 2];
        int n = 0;
        for (int r = 0; r < 4 && parts[p][r][1] > 0; r++)
            n += gather(pts + 2 * n, lm, parts[p][r][0], parts[p][r][1]);
        hull_build(&h[p], pts, n);
    }
    fill_union(m, size, h, N_PARTS);
}

void faceset_face_mask(float *m, const float lm[136], int size, int extended)
{
    face_mask(m, lm, size, extended);
}

void faceset_blur_mask(float *m, int size, int ks)
{
    int box[4];
    if (ks <= 1 || nonzero_box(box, m, size)) return;
    float *tmp = vs_malloc((size_t)size * size * sizeof *tmp);
    gauss_blur(m, tmp, size, ks, box[0], box[1], box[2], box[3]);
    free(tmp);
}

void faceset_make_masks(uint8_t *mask, const float lm[136], int size)
{
    size_t np = (size_t)size * size;
    float *m = vs_calloc(np * FACESET_MASKS, sizeof *m), *tmp = vs_malloc(np * sizeof *tmp);
    face_mask(m, lm, size, 1);
    /* Faceswap's eye and mouth masks: the hulls, dilated, then blurred with kernel size / 16 */
    float radius = 0.03f * size;
    int ks = size / 16;
    if (ks % 2 == 0) ks++;
    float *eye = m + np, *mouth = m + 2 * np;
    fill_hull(eye, size, lm + 2 * 36, 6, radius);
    fill_hull(eye, size, lm + 2 * 42, 6, radius);
    fill_hull(mouth, size, lm + 2 * 48, 12, radius);
    int box[4];
    if (ks > 1 && !nonzero_box(box, eye, size))
        gauss_blur(eye, tmp, size, ks, box[0], box[1], box[2], box[3]);
    if (ks > 1 && !nonzero_box(box, mouth, size))
        gauss_blur(mouth, tmp, size, ks, box[0], box[1], box[2], box[3]);
    for (size_t i = 0; i < np; i++)
        for (int c = 0; c < FACESET_MASKS; c++) {
            float v = m[c * np + i] * 255.f + 0.5f;
            mask[i * FACESET_MASKS + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    free(tmp);
    free(m);
}
