/* image.c: 8-bit images (see image.h): loading through FFmpeg (via the video reader, so a still
 * image decodes exactly as `ffmpeg -i f -frames:v 1 -pix_fmt rgb24` does), PNG files with a
 * metadata chunk through libpng. Allocation and resampling are in image_pixels.c. */
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
