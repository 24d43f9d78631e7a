/* convert.c: swapping one face of a frame (see convert.h). */
#include "convert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "align.h"
#include "faceset.h"
#include "nn/colour.h"

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

/* bilinear sample of plane p [size, size] (stride `step` floats, offset `off`) at (u, v); outside
 * the crop zero (zero_out) or the nearest edge value */
static float sample(const float *p, int size, int step, int off, double u, double v, int zero_out)
{
    if (zero_out && (u <= -1 || v <= -1 || u >= size || v >= size)) return 0.f;
    int x0 = (int)floor(u), y0 = (int)floor(v);
    double fx = u - x0, fy = v - y0;
    float acc = 0.f;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 2; i++) {
            int x = x0 + i, y = y0 + j;
            double wgt = (i ? fx : 1 - fx) * (j ? fy : 1 - fy);
            if (x < 0 || y < 0 || x >= size || y >= size) {
                if (zero_out) continue;
                x = x < 0 ? 0 : x >= size ? size - 1 : x;
                y = y < 0 ? 0 : y >= size ? size - 1 : y;
            }
            acc += (float)wgt * p[((size_t)y * size + x) * step + off];
        }
    return acc;
}

/* Keys' cubic (a = -0.5, as OpenCV's INTER_CUBIC) weights of the four taps around fraction t */
static void cubic_weights(float w[4], double t)
{
    const double a = -0.5;
    for (int i = 0; i < 4; i++) {
        double x = fabs(t - (i - 1));
        w[i] = (float)(x <= 1  ? ((a + 2) * x - (a + 3)) * x * x + 1
                       : x < 2 ? ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
                               : 0);
    }
}

/* channel c of the face [size, size, 3] at (u, v), bicubic, borders replicated */
static float sample_cubic(const float *p, int size, int c, double u, double v)
{
    int x0 = (int)floor(u), y0 = (int)floor(v);
    float wx[4], wy[4], acc = 0.f;
    cubic_weights(wx, u - x0), cubic_weights(wy, v - y0);
    for (int j = 0; j < 4; j++) {
        int y = y0 - 1 + j;
        y = y < 0 ? 0 : y >= size ? size - 1 : y;
        for (int i = 0; i < 4; i++) {
            int x = x0 - 1 + i;
            x = x < 0 ? 0 : x >= size ? size - 1 : x;
            acc += wx[i] * wy[j] * p[((size_t)y * size + x) * 3 + c];
        }
    }
    return acc;
}

/* channel c of the face at (u, v) for a frame pixel covering `step` crop pixels each way:
 * bicubic when the frame enlarges the face (step <= 1), else the mean of step x step bilinear
 * samples over the pixel's footprint (an area average, as a downscale should be) */
static float sample_face(const float *face, int size, int c, double u, double v, double step)
{
    if (step <= 1.0) return sample_cubic(face, size, c, u, v);
    int k = (int)ceil(step);
    if (k > 8) k = 8;
    float acc = 0.f;
    for (int j = 0; j < k; j++)
        for (int i = 0; i < k; i++)
            acc += sample(face, size, 3, c, u + step * ((i + 0.5) / k - 0.5),
                          v + step * ((j + 0.5) / k - 0.5), 0);
    return acc / (float)(k * k);
}

void cv_blend(img *frame, const float *face, const float *mask, int size, const double m[6])
{
    double inv[6];
    VS_CHECK(frame->c == 3 && align_invert(inv, m) == 0);
    /* the frame rectangle the crop covers */
    double lo[2] = {1e300, 1e300}, hi[2] = {-1e300, -1e300};
    for (int k = 0; k < 4; k++) {
        double u = k & 1 ? size : -1.0, v = k & 2 ? size : -1.0;
        double x = inv[0] * u + inv[1] * v + inv[2], y = inv[3] * u + inv[4] * v + inv[5];
        lo[0] = fmin(lo[0], x), hi[0] = fmax(hi[0], x), lo[1] = fmin(lo[1], y),
        hi[1] = fmax(hi[1], y);
    }
    int x0 = (int)fmax(0, floor(lo[0])), x1 = (int)fmin(frame->w - 1, ceil(hi[0]));
    int y0 = (int)fmax(0, floor(lo[1])), y1 = (int)fmin(frame->h - 1, ceil(hi[1]));
    const double step = sqrt(fabs(m[0] * m[4] - m[1] * m[3])); /* crop pixels per frame pixel */
    for (int y = y0; y <= y1; y++)
        for (int x = x0; x <= x1; x++) {
            double u = m[0] * x + m[1] * y + m[2], v = m[3] * x + m[4] * y + m[5];
            float a = sample(mask, size, 1, 0, u, v, 1);
            if (!(a > 0.f)) continue;
            if (a > 1.f) a = 1.f;
            uint8_t *px = frame->px + ((size_t)y * frame->w + x) * 3;
            for (int c = 0; c < 3; c++) {
                float f = clamp01(sample_face(face, size, c, u, v, step)) * 255.f;
                float o = (float)px[c] * (1.f - a) + f * a + 0.5f;
                px[c] = (uint8_t)(o < 0 ? 0 : o > 255 ? 255 : o);
            }
        }
}

/* ---- one face ------------------------------------------------------------------------------ */

/* crop (size x size) of frame through m, as floats in [0, 1] */
static float *crop_float(const img *frame, const double m[6], int size)
{
    img *c = img_new(size, size, 3);
    align_crop(c, frame, m);
    size_t n = (size_t)size * size * 3;
    float *f = vs_malloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = c->px[i] / 255.f;
    img_free(c);
    return f;
}

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

int cv_swap_face(img *frame, const float lm[136], model *m, const cv_opts *o, vs_err *e)
{
    const mdl_arch *a = m->arch;
    const int S = a->input_size, So = a->output_size, side = o->side ? 1 : 0;
    const int learned = m->dec[side].mask_out >= 0;
    if (o->mask == CV_MASK_LEARNED && !learned)
        return vs_fail(e, "the model has no learned mask (it was trained without --learn-mask): "
                          "use --mask extended or box");
    double mi[6], mo[6];
    if (faceset_crop_matrix(mi, lm, m->opt.centering, m->opt.coverage, S) ||
        faceset_crop_matrix(mo, lm, m->opt.centering, m->opt.coverage, So))
        return vs_fail(e, "degenerate landmarks (all in one point)");
    const nn_backend *be = m->be;
    float *x = crop_float(frame, mi, S);
    float *xd = be->alloc((size_t)S * S * 3);
    be->copy_in(xd, x, (size_t)S * S * 3);
    nn_tensor xt = {xd, 1, S, S, 3, NN_F32};
    nn_tensor y = nn_tensor_new(1, So, So, 3), mk = {0};
    if (learned) mk = nn_tensor_new(1, So, So, 1);
    model_infer(m, &y, learned ? &mk : NULL, &xt, side);
    be->free(xd);

    float lmc[136], *mask = vs_malloc((size_t)So * So * sizeof *mask);
    memcpy(lmc, lm, sizeof lmc);
    align_apply(lmc, 68, mo);
    cv_make_mask(mask, So, lmc, o->mask, learned ? mk.d : NULL, o->erode, o->blur);
    /* the original face at the output's size: the input crop itself when the sizes agree */
    float *ref = So == S ? x : crop_float(frame, mo, So);
    cv_color_match(y.d, ref, mask, So * So, o->color);
    if (o->sharpen > 0) sharpen(y.d, So, o->sharpen);
    cv_blend(frame, y.d, mask, So, mo);
    if (ref != x) free(ref);
    free(x), free(mask);
    nn_tensor_free(&y), nn_tensor_free(&mk);
    return 0;
}
