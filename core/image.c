/* image.c: 8-bit images (see image.h): loading through FFmpeg (via the video reader, so a still
 * image decodes exactly as `ffmpeg -i f -frames:v 1 -pix_fmt rgb24` does), PNG files with a
 * metadata chunk through libpng, and the resampling used for crops and alignment. */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "fsutil.h"
#include "video.h"

img *img_new(int w, int h, int c)
{
    VS_CHECK(w > 0 && h > 0 && c > 0 && c <= 4);
    img *im = vs_malloc(sizeof *im);
    im->w = w;
    im->h = h;
    im->c = c;
    im->px = vs_calloc((size_t)w * (size_t)h * (size_t)c, 1);
    return im;
}

void img_free(img *im)
{
    if (!im) return;
    free(im->px);
    free(im);
}

img *img_clone(const img *im)
{
    img *o = img_new(im->w, im->h, im->c);
    memcpy(o->px, im->px, (size_t)im->w * (size_t)im->h * (size_t)im->c);
    return o;
}

int img_load(img **out, const char *path, vs_err *e)
{
    *out = NULL;
    vid_reader *r;
    if (vid_open(&r, path, e)) return -1;
    img *im = NULL;
    int rc = vid_read(r, &im, NULL, e);
    if (rc == 1 && vid_get_info(r)->is_image && vid_damaged(r))
        rc = vs_fail(e, "%s: damaged or truncated image", path);
    else if (rc == 0)
        rc = vs_fail(e, "%s: holds no picture", path);
    vid_close(r);
    if (rc != 1) {
        img_free(im);
        return -1;
    }
    *out = im;
    return 0;
}

/* ---- PNG ---------------------------------------------------------------------------------- */

typedef struct png_err {
    char msg[200];
} png_err;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_err *pe = png_get_error_ptr(png);
    snprintf(pe->msg, sizeof pe->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings (unknown chunks, sRGB profile quirks) are not the user's problem */
}

/* Everything the setjmp function changes lives here, outside its frame, so it survives longjmp. */
typedef struct png_job {
    const char *path;
    const img *im;
    const char *key, *json;
    int level; /* zlib, 0-9 */
    FILE *f;
    png_err err;
    /* reading */
    img *out;
    char *text;
    png_bytep *rows;
    int want_px, want_text;
    png_uint_32 too_w, too_h; /* set when the header claims more than IMG_MAX_PIXELS */
} png_job;

static int png_write_job(png_job *j)
{
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &j->err, png_on_error, png_on_warning);
    VS_CHECK(png != NULL);
    png_infop info = png_create_info_struct(png);
    VS_CHECK(info != NULL);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return -1;
    }
    png_init_io(png, j->f);
    png_set_compression_level(png, j->level);
    static const int types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_IHDR(png, info, (png_uint_32)j->im->w, (png_uint_32)j->im->h, 8, types[j->im->c],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (j->json) {
        png_text t;
        memset(&t, 0, sizeof t);
        t.compression = PNG_ITXT_COMPRESSION_NONE;
        t.key = (png_charp)j->key;
        t.text = (png_charp)j->json;
        t.itxt_length = strlen(j->json);
        png_set_text(png, info, &t, 1); /* before the pixels, so readers find it quickly */
    }
    png_write_info(png, info);
    size_t row = (size_t)j->im->w * (size_t)j->im->c;
    for (int y = 0; y < j->im->h; y++) png_write_row(png, j->im->px + (size_t)y * row);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return 0;
}

int img_save_png(const char *path, const img *im, const char *meta_key, const char *meta_json,
                 vs_err *e)
{
    return img_save_png_level(path, im, meta_key, meta_json, 3, e);
}

int img_save_png_level(const char *path, const img *im, const char *meta_key, const char *meta_json,
                       int level, vs_err *e)
{
    VS_CHECK(level >= 0 && level <= 9);
    VS_CHECK(im && im->px && im->c >= 1 && im->c <= 4);
    if (!meta_key) meta_key = "visage";
    size_t klen = strlen(meta_key);
    if (meta_json && (klen < 1 || klen > 79))
        return vs_fail(e, "%s: PNG text key \"%s\" must be 1 to 79 characters", path, meta_key);

    fs_atomic a;
    if (fs_atomic_open(&a, path, e)) return -1;
    png_job j = {
        .path = path, .im = im, .key = meta_key, .json = meta_json, .level = level, .f = a.f};
    if (png_write_job(&j) == 0 || fs_atomic_failed(&a))
        return fs_atomic_commit(&a, e); /* reports a full disk with the cause, removes the temp */
    fs_atomic_abort(&a);
    return vs_fail(e, "%s: cannot write PNG (%s)", path, j.err.msg);
}

static char *find_text(png_structp png, png_infop info, const char *key)
{
    png_textp t;
    int n = 0;
    png_get_text(png, info, &t, &n);
    for (int i = 0; i < n; i++)
        if (strcmp(t[i].key, key) == 0) return vs_strdup(t[i].text ? t[i].text : "");
    return NULL;
}

static int png_read_job(png_job *j)
{
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &j->err, png_on_error, png_on_warning);
    VS_CHECK(png != NULL);
    png_infop info = png_create_info_struct(png);
    VS_CHECK(info != NULL);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1; /* the caller frees j->out, j->rows, j->text */
    }
    png_init_io(png, j->f);
    png_read_info(png, info);
    if (j->want_text) j->text = find_text(png, info, j->key); /* ours: before the pixels */

    /* Only the pixels are worth decoding: text after them (other writers) is not visage's, and
     * reading it would mean inflating a picture of any size just to skip it. */
    if (j->want_px) {
        png_uint_32 w0 = png_get_image_width(png, info), h0 = png_get_image_height(png, info);
        if ((int64_t)w0 * (int64_t)h0 > IMG_MAX_PIXELS) { /* both < 2^31: no overflow */
            j->too_w = w0;
            j->too_h = h0;
            png_destroy_read_struct(&png, &info, NULL);
            return -1;
        }
        png_set_expand(png); /* palette, low bit depths, tRNS */
        png_set_strip_16(png);
        png_set_strip_alpha(png);
        png_set_gray_to_rgb(png);
        png_set_interlace_handling(png);
        png_read_update_info(png, info);
        int w = (int)png_get_image_width(png, info), h = (int)png_get_image_height(png, info);
        VS_CHECK(png_get_rowbytes(png, info) == (size_t)w * 3);
        j->out = img_new(w, h, 3);
        j->rows = vs_malloc((size_t)h * sizeof *j->rows);
        for (int y = 0; y < h; y++) j->rows[y] = j->out->px + (size_t)y * (size_t)w * 3;
        png_read_image(png, j->rows);
        png_read_end(png, info);
        if (j->want_text && !j->text) j->text = find_text(png, info, j->key); /* after IDAT */
    }
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}

int img_load_png(img **out, char **meta_json, const char *path, const char *meta_key, vs_err *e)
{
    if (out) *out = NULL;
    if (meta_json) *meta_json = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return vs_fail(e, "%s: %s", path, fs_strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(f);
        return vs_fail(e, "%s: not a PNG file", path);
    }
    rewind(f);
    png_job j = {.path = path,
                 .key = meta_key ? meta_key : "visage",
                 .f = f,
                 .want_px = out != NULL,
                 .want_text = meta_json != NULL};
    int rc = png_read_job(&j);
    fclose(f);
    free(j.rows);
    if (rc || !out) {
        img_free(j.out);
        j.out = NULL;
    }
    if (rc) {
        free(j.text);
        if (j.too_w)
            return vs_fail(e, "%s: picture too large (%u x %u); visage reads up to %lld megapixels",
                           path, (unsigned)j.too_w, (unsigned)j.too_h,
                           (long long)(IMG_MAX_PIXELS / 1000000));
        return vs_fail(e, "%s: damaged PNG (%s)", path, j.err.msg);
    }
    if (out) *out = j.out;
    if (meta_json)
        *meta_json = j.text;
    else
        free(j.text);
    return 0;
}

/* ---- resampling --------------------------------------------------------------------------- */

/* OpenCV's BORDER_REFLECT: fedcba|abcdefgh|hgfedcba */
static int reflect(int i, int n)
{
    if (n == 1) return 0;
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

static inline uint8_t clamp_u8(float v)
{
    return v <= 0.f ? 0 : v >= 255.f ? 255 : (uint8_t)(v + 0.5f);
}

void img_warp_affine(img *dst, const img *src, const double m[6], img_border border)
{
    VS_CHECK(dst->c == src->c);
    const int c = src->c, sw = src->w, sh = src->h;
    for (int y = 0; y < dst->h; y++) {
        uint8_t *o = dst->px + (size_t)y * (size_t)dst->w * (size_t)c;
        for (int x = 0; x < dst->w; x++, o += c) {
            double sx = m[0] * x + m[1] * y + m[2];
            double sy = m[3] * x + m[4] * y + m[5];
            /* bring far-away positions near the image (also keeps the int conversions safe) */
            if (border == IMG_BORDER_ZERO) {
                if (!(sx > -1.0 && sx < sw && sy > -1.0 && sy < sh)) {
                    memset(o, 0, (size_t)c);
                    continue;
                }
            } else if (border == IMG_BORDER_REPLICATE) {
                sx = fmin(fmax(sx, -1.0), (double)sw); /* fmax drops a NaN */
                sy = fmin(fmax(sy, -1.0), (double)sh);
            } else { /* reflection repeats with period 2n */
                sx = isfinite(sx) ? sx - floor(sx / (2.0 * sw)) * 2.0 * sw : 0.0;
                sy = isfinite(sy) ? sy - floor(sy / (2.0 * sh)) * 2.0 * sh : 0.0;
            }
            double fx0 = floor(sx), fy0 = floor(sy);
            int x0 = (int)fx0, y0 = (int)fy0;
            float ax = (float)(sx - fx0), ay = (float)(sy - fy0);
            const float wt[4] = {(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay};
            const uint8_t *p[4];
            int inside = x0 >= 0 && y0 >= 0 && x0 + 1 < sw && y0 + 1 < sh;
            for (int k = 0; k < 4; k++) {
                int xi = x0 + (k & 1), yi = y0 + (k >> 1);
                if (!inside && (xi < 0 || yi < 0 || xi >= sw || yi >= sh)) {
                    if (border == IMG_BORDER_ZERO) {
                        p[k] = NULL;
                        continue;
                    }
                    if (border == IMG_BORDER_REPLICATE) {
                        xi = xi < 0 ? 0 : xi >= sw ? sw - 1 : xi;
                        yi = yi < 0 ? 0 : yi >= sh ? sh - 1 : yi;
                    } else {
                        xi = reflect(xi, sw);
                        yi = reflect(yi, sh);
                    }
                }
                p[k] = src->px + ((size_t)yi * (size_t)sw + (size_t)xi) * (size_t)c;
            }
            for (int ch = 0; ch < c; ch++) {
                float v = 0.f;
                for (int k = 0; k < 4; k++)
                    if (p[k]) v += wt[k] * p[k][ch];
                o[ch] = clamp_u8(v);
            }
        }
    }
}

/* Resampling weights along one axis: output i = sum over taps of w * input[idx]. */
typedef struct axis_taps {
    int *count; /* [n_out] */
    int *idx;   /* [n_out * max_taps] */
    float *w;
    int max_taps;
} axis_taps;

static void axis_taps_build(axis_taps *t, int n_out, int n_in)
{
    double scale = (double)n_in / n_out;
    t->max_taps = n_out < n_in ? (int)ceil(scale) + 2 : 2;
    t->count = vs_malloc((size_t)n_out * sizeof *t->count);
    t->idx = vs_malloc((size_t)n_out * (size_t)t->max_taps * sizeof *t->idx);
    t->w = vs_malloc((size_t)n_out * (size_t)t->max_taps * sizeof *t->w);
    for (int i = 0; i < n_out; i++) {
        int *idx = t->idx + (size_t)i * (size_t)t->max_taps;
        float *w = t->w + (size_t)i * (size_t)t->max_taps;
        int n = 0;
        if (n_out < n_in) {
            /* area: output pixel i covers input [i*scale, (i+1)*scale) */
            double a = i * scale, b = (i + 1) * scale;
            for (int j = (int)floor(a); j < n_in && j < b; j++) {
                double lo = j > a ? j : a, hi = j + 1 < b ? j + 1 : b;
                if (hi <= lo) continue;
                VS_CHECK(n < t->max_taps);
                idx[n] = j;
                w[n++] = (float)((hi - lo) / scale);
            }
        } else {
            /* bilinear between pixel centres, edges replicated */
            double s = (i + 0.5) * scale - 0.5;
            if (s < 0) s = 0;
            if (s > n_in - 1) s = n_in - 1;
            int j = (int)floor(s);
            float f = (float)(s - j);
            idx[n] = j;
            w[n++] = 1.f - f;
            if (j + 1 < n_in) {
                idx[n] = j + 1;
                w[n++] = f;
            }
        }
        t->count[i] = n;
    }
}

static void axis_taps_free(axis_taps *t)
{
    free(t->count);
    free(t->idx);
    free(t->w);
}

void img_resize(img *dst, const img *src)
{
    VS_CHECK(dst->c == src->c);
    const int c = src->c;
    if (dst->w == src->w && dst->h == src->h) {
        memcpy(dst->px, src->px, (size_t)src->w * (size_t)src->h * (size_t)c);
        return;
    }
    axis_taps tx, ty;
    axis_taps_build(&tx, dst->w, src->w);
    axis_taps_build(&ty, dst->h, src->h);
    /* horizontal pass: tmp [src->h][dst->w][c] float, then vertical into dst */
    float *tmp = vs_malloc((size_t)src->h * (size_t)dst->w * (size_t)c * sizeof *tmp);
    for (int y = 0; y < src->h; y++) {
        const uint8_t *row = src->px + (size_t)y * (size_t)src->w * (size_t)c;
        float *o = tmp + (size_t)y * (size_t)dst->w * (size_t)c;
        for (int x = 0; x < dst->w; x++, o += c) {
            const int *idx = tx.idx + (size_t)x * (size_t)tx.max_taps;
            const float *w = tx.w + (size_t)x * (size_t)tx.max_taps;
            for (int ch = 0; ch < c; ch++) o[ch] = 0.f;
            for (int k = 0; k < tx.count[x]; k++)
                for (int ch = 0; ch < c; ch++) o[ch] += w[k] * row[(size_t)idx[k] * c + ch];
        }
    }
    size_t trow = (size_t)dst->w * (size_t)c;
    float *acc = vs_malloc(trow * sizeof *acc);
    for (int y = 0; y < dst->h; y++) {
        const int *idx = ty.idx + (size_t)y * (size_t)ty.max_taps;
        const float *w = ty.w + (size_t)y * (size_t)ty.max_taps;
        for (size_t i = 0; i < trow; i++) acc[i] = 0.f;
        for (int k = 0; k < ty.count[y]; k++) {
            const float *r = tmp + (size_t)idx[k] * trow;
            for (size_t i = 0; i < trow; i++) acc[i] += w[k] * r[i];
        }
        uint8_t *o = dst->px + (size_t)y * trow;
        for (size_t i = 0; i < trow; i++) o[i] = clamp_u8(acc[i]);
    }
    free(acc);
    free(tmp);
    axis_taps_free(&tx);
    axis_taps_free(&ty);
}

double img_blur_score(const img *im)
{
    const int w = im->w, h = im->h, c = im->c;
    if (w < 3 || h < 3) return 0.0;
    float *g = vs_malloc((size_t)w * (size_t)h * sizeof *g);
    for (size_t i = 0; i < (size_t)w * (size_t)h; i++) {
        const uint8_t *p = im->px + i * (size_t)c;
        g[i] = c >= 3 ? 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2] : p[0];
    }
    /* [0 1 0; 1 -4 1; 0 1 0] with mirrored edges (gfedcb|abcdefgh|gfedcba), as cv2.Laplacian */
    double sum = 0.0, sum2 = 0.0;
    for (int y = 0; y < h; y++) {
        const float *up = g + (size_t)(y > 0 ? y - 1 : 1) * (size_t)w;
        const float *mid = g + (size_t)y * (size_t)w;
        const float *dn = g + (size_t)(y < h - 1 ? y + 1 : h - 2) * (size_t)w;
        for (int x = 0; x < w; x++) {
            int xl = x > 0 ? x - 1 : 1, xr = x < w - 1 ? x + 1 : w - 2;
            double l = (double)up[x] + dn[x] + mid[xl] + mid[xr] - 4.0 * mid[x];
            sum += l;
            sum2 += l * l;
        }
    }
    free(g);
    double n = (double)w * h, mean = sum / n;
    return sum2 / n - mean * mean;
}
