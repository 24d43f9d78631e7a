/* convert.c: swapping one face of a frame (see convert.h). */
#include "convert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "align.h"
#include "faceset.h"
#include "nn/colour.h"
#include "nn/cpu_image.h"

void cv_opts_default(cv_opts *o)
{
    *o = (cv_opts){.side = 1, .mask = CV_MASK_EXTENDED, .blur = 5.0f, .color = CV_COLOR_AVG};
}

static const char *const mask_names[] = {"extended", "learned", "box", "components"};
static const char *const color_names[] = {"avg", "rct", "hist", "none"};

static int parse_name(int *out, const char *s, const char *const *names, int n)
{
    for (int i = 0; s && i < n; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    return -1;
}

int cv_mask_parse(cv_mask *m, const char *s)
{
    int i;
    if (parse_name(&i, s, mask_names, 4)) return -1;
    *m = (cv_mask)i;
    return 0;
}

int cv_color_parse(cv_color *c, const char *s)
{
    int i;
    if (parse_name(&i, s, color_names, 4)) return -1;
    *c = (cv_color)i;
    return 0;
}

const char *cv_mask_name(cv_mask m)
{
    return m >= 0 && m <= CV_MASK_COMPONENTS ? mask_names[m] : "?";
}

const char *cv_color_name(cv_color c)
{
    return c >= 0 && c <= CV_COLOR_NONE ? color_names[c] : "?";
}

/* ---- colour -------------------------------------------------------------------------------- */

static float clamp01(float v)
{
    return v > 0.f ? (v < 1.f ? v : 1.f) : 0.f; /* a NaN goes to 0 */
}

/* weighted mean and standard deviation of channel c of n 3-channel pixels */
static void weighted_stats(double *mean, double *sd, const float *x, const float *w, int n, int c)
{
    double sw = 0, s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        double wi = w ? w[i] : 1.0, v = x[3 * i + c];
        sw += wi, s += wi * v, s2 += wi * v * v;
    }
    *mean = sw > 0 ? s / sw : 0;
    double var = sw > 0 ? s2 / sw - *mean * *mean : 0;
    *sd = var > 0 ? sqrt(var) : 0;
}

#define HIST_BINS 256

/* the cumulative weighted histogram of channel c, normalised to end at 1 */
static void weighted_cdf(double cdf[HIST_BINS], const float *x, const float *w, int n, int c)
{
    memset(cdf, 0, sizeof(double) * HIST_BINS);
    for (int i = 0; i < n; i++) {
        int b = (int)(clamp01(x[3 * i + c]) * HIST_BINS);
        cdf[b < HIST_BINS ? b : HIST_BINS - 1] += w ? w[i] : 1.0;
    }
    for (int b = 1; b < HIST_BINS; b++) cdf[b] += cdf[b - 1];
    double total = cdf[HIST_BINS - 1];
    for (int b = 0; b < HIST_BINS && total > 0; b++) cdf[b] /= total;
}

/* Histogram matching of channel c: each bin of face goes to the value of ref's distribution at
 * the same quantile (linear between ref's bins). */
static void match_histogram(float *face, const float *ref, const float *w, int n, int c)
{
    double cf[HIST_BINS], cr[HIST_BINS];
    weighted_cdf(cf, face, w, n, c);
    weighted_cdf(cr, ref, w, n, c);
    float map[HIST_BINS];
    int j = 0;
    for (int b = 0; b < HIST_BINS; b++) {
        double q = cf[b];
        while (j < HIST_BINS - 1 && cr[j] < q) j++;
        double lo = j > 0 ? cr[j - 1] : 0, t = cr[j] > lo ? (q - lo) / (cr[j] - lo) : 1;
        map[b] = (float)((j + (t < 0 ? 0 : t > 1 ? 1 : t)) / HIST_BINS);
    }
    for (int i = 0; i < n; i++) {
        int b = (int)(clamp01(face[3 * i + c]) * HIST_BINS);
        face[3 * i + c] = map[b < HIST_BINS ? b : HIST_BINS - 1];
    }
}

void cv_color_match(float *face, const float *ref, const float *w, int n, cv_color kind)
{
    if (kind == CV_COLOR_NONE || n <= 0) return;
    double sw = 0;
    for (int i = 0; w && i < n; i++) sw += w[i];
    if (w && sw < 1e-6) return; /* nothing to match against */
    if (kind == CV_COLOR_HIST) {
        for (int c = 0; c < 3; c++) match_histogram(face, ref, w, n, c);
        return;
    }
    float *f = face, *lf = NULL, *lr = NULL;
    const float *r = ref;
    if (kind == CV_COLOR_RCT) {
        lf = vs_malloc((size_t)n * 3 * sizeof *lf), lr = vs_malloc((size_t)n * 3 * sizeof *lr);
        nn_rgb_to_lab(lf, face, (size_t)n);
        nn_rgb_to_lab(lr, ref, (size_t)n);
        f = lf, r = lr;
    }
    for (int c = 0; c < 3; c++) {
        double mf, sf, mr, sr;
        weighted_stats(&mf, &sf, f, w, n, c);
        weighted_stats(&mr, &sr, r, w, n, c);
        double k = kind == CV_COLOR_RCT && sf > 1e-6 ? sr / sf : 1.0;
        for (int i = 0; i < n; i++) f[3 * i + c] = (float)((f[3 * i + c] - mf) * k + mr);
    }
    if (kind == CV_COLOR_RCT) nn_lab_to_rgb(face, lf, (size_t)n);
    for (int i = 0; i < 3 * n; i++) face[i] = clamp01(face[i]);
    free(lf), free(lr);
}

/* ---- the mask ------------------------------------------------------------------------------ */

/* m [size, size] through a square min (erode) or max (grow) filter of radius r, rows then
 * columns */
static void min_max_filter(float *m, int size, int r, int grow)
{
    float *tmp = vs_malloc((size_t)size * size * sizeof *tmp);
    for (int pass = 0; pass < 2; pass++) {
        const float *src = pass ? tmp : m;
        float *dst = pass ? m : tmp;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                float v = grow ? 0.f : 1.f;
                for (int k = -r; k <= r; k++) {
                    int xx = pass ? x : x + k, yy = pass ? y + k : y;
                    /* outside the crop counts as empty: erosion eats in from the edge */
                    float s = xx < 0 || xx >= size || yy < 0 || yy >= size
                                  ? 0.f
                                  : src[(size_t)yy * size + xx];
                    v = grow ? (s > v ? s : v) : (s < v ? s : v);
                }
                dst[(size_t)y * size + x] = v;
            }
    }
    free(tmp);
}

void cv_make_mask(float *out, int size, const float lm[136], cv_mask kind, const float *learned,
                  float erode, float blur)
{
    const size_t np = (size_t)size * size;
    memset(out, 0, np * sizeof *out);
    if (kind == CV_MASK_EXTENDED || kind == CV_MASK_COMPONENTS) {
        faceset_face_mask(out, lm, size, kind == CV_MASK_EXTENDED);
    } else if (kind == CV_MASK_LEARNED) {
        VS_CHECK(learned != NULL);
        for (size_t i = 0; i < np; i++) out[i] = clamp01(learned[i]);
    } else {
        int e = size / 16;
        for (int y = e; y < size - e; y++)
            for (int x = e; x < size - e; x++) out[(size_t)y * size + x] = 1.f;
    }
    int r = (int)lroundf(fabsf(erode) / 100.f * (float)size);
    if (r > 0) min_max_filter(out, size, r, erode < 0);
    int ks = (int)lroundf(blur / 100.f * (float)size) | 1;
    if (ks > 127) ks = 127;
    if (ks > 1) faceset_blur_mask(out, size, ks);
    for (int i = 0; i < size; i++)
        out[i] = out[(size_t)(size - 1) * size + i] = out[(size_t)i * size] =
            out[(size_t)i * size + size - 1] = 0.f;
}

/* ---- blending ------------------------------------------------------------------------------ */

/* The image rectangle a crop of `size` through m covers (clamped to the image), and the crop
 * pixels per image pixel: what the backend's blend needs besides the pixels. 0 when m cannot be
 * inverted. */
static int blend_geometry(nn_blend *b, int iw, int ih, int size, const double m[6])
{
    double inv[6];
    if (align_invert(inv, m)) return -1;
    double lo[2] = {1e300, 1e300}, hi[2] = {-1e300, -1e300};
    for (int k = 0; k < 4; k++) {
        double u = k & 1 ? size : -1.0, v = k & 2 ? size : -1.0;
        double x = inv[0] * u + inv[1] * v + inv[2], y = inv[3] * u + inv[4] * v + inv[5];
        lo[0] = fmin(lo[0], x), hi[0] = fmax(hi[0], x), lo[1] = fmin(lo[1], y),
        hi[1] = fmax(hi[1], y);
    }
    b->x0 = (int)fmax(0, floor(lo[0])), b->x1 = (int)fmin(iw - 1, ceil(hi[0]));
    b->y0 = (int)fmax(0, floor(lo[1])), b->y1 = (int)fmin(ih - 1, ceil(hi[1]));
    b->step = sqrt(fabs(m[0] * m[4] - m[1] * m[3]));
    b->iw = iw, b->ih = ih, b->size = size;
    memcpy(b->m, m, sizeof b->m);
    return 0;
}

void cv_blend(img *frame, const float *face, const float *mask, int size, const double m[6])
{
    VS_CHECK(frame->c == 3);
    nn_blend b;
    VS_CHECK(blend_geometry(&b, frame->w, frame->h, size, m) == 0);
    b.px = frame->px, b.face = face, b.mask = mask;
    nn_cpu_backend()->blend(&b, 1);
}

/* ---- the faces of a frame ---------------------------------------------------------------------
 */

/* face [size, size, 3] sharpened in place: face + amount (face - blurred) */
static void sharpen(float *face, int size, float amount)
{
    size_t np = (size_t)size * size;
    float *plane = vs_malloc(np * sizeof *plane);
    int ks = (size / 32) | 1;
    if (ks < 3) ks = 3;
    for (int c = 0; c < 3; c++) {
        for (size_t i = 0; i < np; i++) plane[i] = face[3 * i + c] + 1.f; /* non-zero everywhere */
        faceset_blur_mask(plane, size, ks);
        for (size_t i = 0; i < np; i++) {
            float f = face[3 * i + c];
            face[3 * i + c] = clamp01(f + amount * (f - (plane[i] - 1.f)));
        }
    }
    free(plane);
}

struct cv_swapper {
    model *m;
    cv_opts o;
    nn_buf frame, in8, out8, x, face, mask; /* backend memory */
    float *face_host, *mask_host, *ref_host, *learned_host;
    uint8_t *ref8_host;
    size_t host_faces; /* the host buffers hold this many faces */
};

cv_swapper *cv_swapper_new(model *m, const cv_opts *o)
{
    cv_swapper *s = vs_calloc(1, sizeof *s);
    s->m = m;
    s->o = *o;
    return s;
}

void cv_swapper_free(cv_swapper *s)
{
    if (!s) return;
    const nn_backend *be = s->m->be;
    nn_buf *b[] = {&s->frame, &s->in8, &s->out8, &s->x, &s->face, &s->mask};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) nn_buf_free(b[i], be);
    free(s->face_host), free(s->mask_host), free(s->ref_host), free(s->learned_host);
    free(s->ref8_host);
    free(s);
}

static void host_grow(cv_swapper *s, size_t faces, int So)
{
    if (faces <= s->host_faces) return;
    s->host_faces = faces * 2;
    size_t np = (size_t)So * So * s->host_faces;
    free(s->face_host), free(s->mask_host), free(s->ref_host), free(s->learned_host);
    free(s->ref8_host);
    s->face_host = vs_malloc(np * 3 * sizeof(float));
    s->ref_host = vs_malloc(np * 3 * sizeof(float));
    s->mask_host = vs_malloc(np * sizeof(float));
    s->learned_host = vs_malloc(np * sizeof(float));
    s->ref8_host = vs_malloc(np * 3);
}

/* warps of frame f (backend memory) through the inverses of the crop matrices m[0 .. n) */
static void crop_warps(nn_warp *w, const uint8_t *px, int iw, int ih, const double (*m)[6], int n)
{
    for (int i = 0; i < n; i++) {
        w[i] = (nn_warp){.px = px, .iw = iw, .ih = ih};
        VS_CHECK(align_invert(w[i].m, m[i]) == 0);
    }
}

int cv_swap_frame(cv_swapper *s, img *frame, const float (*lm)[136], int n, int *first_bad,
                  vs_err *e)
{
    model *m = s->m;
    const cv_opts *o = &s->o;
    const mdl_arch *a = m->arch;
    const int S = a->input_size, So = a->output_size, side = o->side ? 1 : 0;
    const int learned = m->dec[side].mask_out >= 0;
    const nn_backend *be = m->be;
    *first_bad = -1;
    VS_CHECK(frame->c == 3);
    if (o->mask == CV_MASK_LEARNED && !learned)
        return vs_fail(e, "the model has no learned mask (it was trained without --learn-mask): "
                          "use --mask extended or box");
    /* the faces whose crops can be made */
    double(*mi)[6] = vs_malloc(sizeof *mi * (size_t)(n + 1));
    double(*mo)[6] = vs_malloc(sizeof *mo * (size_t)(n + 1));
    int *which = vs_malloc(sizeof *which * (size_t)(n + 1)), k = 0;
    for (int i = 0; i < n; i++) {
        if (faceset_crop_matrix(mi[k], lm[i], m->opt.centering, m->opt.coverage, S) ||
            faceset_crop_matrix(mo[k], lm[i], m->opt.centering, m->opt.coverage, So)) {
            if (*first_bad < 0) {
                *first_bad = i;
                vs_fail(e, "face %d: degenerate landmarks (all in one point)", i);
            }
            continue;
        }
        which[k++] = i;
    }
    if (k == 0) {
        free(mi), free(mo), free(which);
        return 0;
    }
    const size_t np = (size_t)So * So, frame_bytes = (size_t)frame->w * frame->h * 3;

    /* the frame into backend memory (once), the crops the model takes and the reference crops the
     * colours are matched to */
    uint8_t *fpx = frame->px;
    if (!be->host_memory) {
        fpx = (uint8_t *)nn_buf_grow(&s->frame, be, nn_byte_words(frame_bytes));
        nn_copy_in_bytes(be, fpx, frame->px, frame_bytes);
    }
    nn_warp *w = vs_malloc(sizeof *w * (size_t)k);
    crop_warps(w, fpx, frame->w, frame->h, (const double(*)[6])mi, k);
    uint8_t *in8 = (uint8_t *)nn_buf_grow(&s->in8, be, nn_byte_words((size_t)k * S * S * 3));
    be->warp(in8, w, k, S);
    nn_tensor x = {nn_buf_grow(&s->x, be, (size_t)k * S * S * 3), k, S, S, 3, NN_F32};
    be->from_u8(&x, in8, 255.f);
    const uint8_t *ref8 = in8;
    if (So != S) {
        crop_warps(w, fpx, frame->w, frame->h, (const double(*)[6])mo, k);
        uint8_t *out8 = (uint8_t *)nn_buf_grow(&s->out8, be, nn_byte_words(np * 3 * k));
        be->warp(out8, w, k, So);
        ref8 = out8;
    }
    host_grow(s, (size_t)k, So);
    nn_copy_out_bytes(be, s->ref8_host, ref8, np * 3 * k);
    for (size_t i = 0; i < np * 3 * k; i++) s->ref_host[i] = s->ref8_host[i] / 255.f;

    /* the model on every face at once */
    const nn_tensor *mk = NULL;
    const nn_tensor *y = model_infer_dev(m, learned ? &mk : NULL, &x, side);
    be->copy_out(s->face_host, y->d, np * 3 * k);
    if (mk) be->copy_out(s->learned_host, mk->d, np * k);

    /* masks and colours on the host (face-sized work: the frame stays where it is) */
    for (int j = 0; j < k; j++) {
        float lmc[136], *face = s->face_host + np * 3 * j, *mask = s->mask_host + np * j;
        memcpy(lmc, lm[which[j]], sizeof lmc);
        align_apply(lmc, 68, mo[j]);
        cv_make_mask(mask, So, lmc, o->mask, learned ? s->learned_host + np * j : NULL, o->erode,
                     o->blur);
        cv_color_match(face, s->ref_host + np * 3 * j, mask, So * So, o->color);
        if (o->sharpen > 0) sharpen(face, So, o->sharpen);
    }
    float *face_d = s->face_host, *mask_d = s->mask_host;
    if (!be->host_memory) {
        face_d = nn_buf_grow(&s->face, be, np * 3 * k);
        mask_d = nn_buf_grow(&s->mask, be, np * k);
        be->copy_in(face_d, s->face_host, np * 3 * k);
        be->copy_in(mask_d, s->mask_host, np * k);
    }

    /* blended back in order (a later face over an earlier one), the frame out (once) */
    nn_blend *b = vs_malloc(sizeof *b * (size_t)k);
    for (int j = 0; j < k; j++) {
        VS_CHECK(blend_geometry(&b[j], frame->w, frame->h, So, mo[j]) == 0);
        b[j].px = fpx, b[j].face = face_d + np * 3 * j, b[j].mask = mask_d + np * j;
    }
    be->blend(b, k);
    if (!be->host_memory) nn_copy_out_bytes(be, frame->px, fpx, frame_bytes);
    free(b), free(w), free(mi), free(mo), free(which);
    return k;
}

int cv_swap_face(img *frame, const float lm[136], model *m, const cv_opts *o, vs_err *e)
{
    cv_swapper *s = cv_swapper_new(m, o);
    int bad, n = cv_swap_frame(s, frame, (const float(*)[136])lm, 1, &bad, e);
    cv_swapper_free(s);
    if (n < 0) return -1;
    if (bad >= 0) return vs_fail(e, "degenerate landmarks (all in one point)");
    return 0;
}
