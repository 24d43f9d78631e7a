/* termimg.c: RGB images as terminal bytes (see termimg.h): half blocks with truecolour or xterm-256
 * escapes, sixel through libsixel, tmux passthrough and the DA1 sixel query. Both kinds of image
 * share one area-average resample, so a preview looks the same whichever the terminal draws. */
#include "termimg.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifdef VS_HAVE_SIXEL
#include <sixel.h>
#endif

/* ---- fitting and resampling --------------------------------------------------------------- */

/* (*ow, *oh): w x h scaled to fit bw x bh with its aspect ratio kept, rounded, at least 1. */
static void fit_box(int *ow, int *oh, int w, int h, int bw, int bh)
{
    if ((int64_t)bw * h <= (int64_t)bh * w) { /* the width limits */
        *ow = bw;
        *oh = (int)((2 * (int64_t)h * bw + w) / (2 * (int64_t)w));
    } else {
        *oh = bh;
        *ow = (int)((2 * (int64_t)w * bh + h) / (2 * (int64_t)h));
    }
    if (*ow < 1) *ow = 1;
    if (*oh < 1) *oh = 1;
    if (*ow > bw) *ow = bw;
    if (*oh > bh) *oh = bh;
}

/* Output pixel o of n_dst covers source [o * n_src / n_dst, (o + 1) * n_src / n_dst); source pixel
 * i weighs by how much of [i, i + 1) lies inside. Shrinking, that is the mean of the pixels under
 * it (so the mean colour of the image is kept); enlarging, nearest with a blend at the seams. */
static double cover(int i, double a, double b)
{
    double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
    return hi - lo;
}

/* dst: [dh][dw][3] packed, src: [h][stride] RGB. -1 when out of memory. */
static int resample_area(uint8_t *dst, int dw, int dh, const uint8_t *src, int w, int h, int stride)
{
    float *tmp = malloc((size_t)h * dw * 3 * sizeof *tmp); /* [h][dw][3], rows resampled */
    double *acc = malloc((size_t)dw * 3 * sizeof *acc);
    if (!tmp || !acc) {
        free(tmp);
        free(acc);
        return -1;
    }
    double sx = (double)w / dw, sy = (double)h / dh;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src + (size_t)y * stride;
        float *t = tmp + (size_t)y * dw * 3;
        for (int ox = 0; ox < dw; ox++) {
            double a = ox * sx, b = (ox + 1) * sx, r = 0, g = 0, bl = 0, sum = 0;
            int end = b < w ? (int)b + 1 : w;
            for (int i = (int)a; i < end; i++) {
                double wt = cover(i, a, b);
                if (wt <= 0) continue;
                r += wt * row[3 * i], g += wt * row[3 * i + 1], bl += wt * row[3 * i + 2];
                sum += wt;
            }
            t[3 * ox] = (float)(r / sum), t[3 * ox + 1] = (float)(g / sum);
            t[3 * ox + 2] = (float)(bl / sum);
        }
    }
    for (int oy = 0; oy < dh; oy++) {
        double a = oy * sy, b = (oy + 1) * sy, sum = 0;
        int end = b < h ? (int)b + 1 : h;
        memset(acc, 0, (size_t)dw * 3 * sizeof *acc);
        for (int i = (int)a; i < end; i++) {
            double wt = cover(i, a, b);
            if (wt <= 0) continue;
            const float *t = tmp + (size_t)i * dw * 3;
            for (int k = 0; k < dw * 3; k++) acc[k] += wt * t[k];
            sum += wt;
        }
        uint8_t *d = dst + (size_t)oy * dw * 3;
        for (int k = 0; k < dw * 3; k++) {
            double v = acc[k] / sum + 0.5;
            d[k] = v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
        }
    }
    free(tmp);
    free(acc);
    return 0;
}

/* ---- half blocks -------------------------------------------------------------------------- */

static const uint8_t cube_level[6] = {0, 95, 135, 175, 215, 255};

static int nearest_cube(int v)
{
    int best = 0;
    for (int i = 1; i < 6; i++)
        if (abs(v - cube_level[i]) < abs(v - cube_level[best])) best = i;
    return best;
}

static int sq(int v)
{
    return v * v;
}

int timg_nearest_256(uint8_t r, uint8_t g, uint8_t b)
{
    int ri = nearest_cube(r), gi = nearest_cube(g), bi = nearest_cube(b);
    int dc = sq(r - cube_level[ri]) + sq(g - cube_level[gi]) + sq(b - cube_level[bi]);
    /* ramp entry k is 8 + 10k; the distance to a grey v is least at v = mean, so take the entry
     * nearest the mean: round((r + g + b - 24) / 30) */
    int s = r + g + b, k = s <= 24 ? 0 : (s - 24 + 15) / 30;
    if (k > 23) k = 23;
    int v = 8 + 10 * k, dg = sq(r - v) + sq(g - v) + sq(b - v);
    return dg < dc ? 232 + k : 16 + 36 * ri + 6 * gi + bi;
}

static char *put_uint(char *p, unsigned v)
{
    char digits[12];
    int n = 0;
    do digits[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n) *p++ = digits[--n];
    return p;
}

/* ESC[<layer>;2;R;G;Bm or ESC[<layer>;5;Nm, layer 38 (foreground) or 48 (background) */
static char *put_colour(char *p, int layer, const uint8_t *px, timg_colour mode, int idx)
{
    *p++ = '\033', *p++ = '[';
    p = put_uint(p, (unsigned)layer);
    if (mode == TIMG_256) {
        memcpy(p, ";5;", 3), p += 3;
        p = put_uint(p, (unsigned)idx);
    } else {
        memcpy(p, ";2;", 3), p += 3;
        p = put_uint(p, px[0]), *p++ = ';';
        p = put_uint(p, px[1]), *p++ = ';';
        p = put_uint(p, px[2]);
    }
    *p++ = 'm';
    return p;
}

/* What decides whether a colour escape repeats the previous one: the index in 256 mode (two
 * near colours print the same), the RGB triple otherwise. */
static int colour_key(const uint8_t *px, timg_colour mode)
{
    return mode == TIMG_256 ? timg_nearest_256(px[0], px[1], px[2])
                            : px[0] << 16 | px[1] << 8 | px[2];
}

char *timg_halfblock(const uint8_t *rgb, int w, int h, int stride, int cols, int rows,
                     timg_colour mode, int *out_cols, int *out_rows)
{
    *out_cols = *out_rows = 0;
    if (w <= 0 || h <= 0 || cols <= 0 || rows <= 0) return calloc(1, 1);
    VS_CHECK(rgb && stride >= 3 * w);
    int pw, ph;
    fit_box(&pw, &ph, w, h, cols, 2 * rows);
    ph += ph & 1; /* a whole number of cells; 2 * rows is even, so this stays inside */
    uint8_t *px = malloc((size_t)pw * ph * 3);
    /* a cell at most: two "ESC[38;2;255;255;255m" (19 bytes) and "▀" (3); a row: ESC[0m '\n' */
    size_t row_max = (size_t)pw * (2 * 19 + 3) + 4 + 1;
    char *s = malloc(row_max * (size_t)(ph / 2) + 1);
    if (!px || !s || resample_area(px, pw, ph, rgb, w, h, stride) < 0) {
        free(px);
        free(s);
        return NULL;
    }
    char *p = s;
    for (int r = 0; r < ph / 2; r++) {
        const uint8_t *top = px + (size_t)(2 * r) * pw * 3, *bot = top + (size_t)pw * 3;
        int prev_fg = -1, prev_bg = -1;
        if (r) *p++ = '\n';
        for (int c = 0; c < pw; c++) {
            int fg = colour_key(top + 3 * c, mode), bg = colour_key(bot + 3 * c, mode);
            if (fg != prev_fg) p = put_colour(p, 38, top + 3 * c, mode, fg);
            if (bg != prev_bg) p = put_colour(p, 48, bot + 3 * c, mode, bg);
            prev_fg = fg, prev_bg = bg;
            memcpy(p, "\xe2\x96\x80", 3), p += 3; /* U+2580 UPPER HALF BLOCK */
        }
        memcpy(p, "\033[0m", 4), p += 4;
    }
    *p = '\0';
    free(px);
    *out_cols = pw, *out_rows = ph / 2;
    return s;
}

/* ---- sixel -------------------------------------------------------------------------------- */

#ifdef VS_HAVE_SIXEL
/* libsixel's output callback: appends to a growing buffer; a failed allocation is remembered and
 * reported once sixel_encode returns. */
typedef struct sixel_sink {
    char *buf;
    size_t len, cap;
    int oom;
} sixel_sink;

static int sink_write(char *data, int size, void *priv)
{
    sixel_sink *k = priv;
    if (k->oom || size <= 0) return k->oom ? -1 : 0;
    if (k->len + (size_t)size + 1 > k->cap) {
        size_t cap = k->cap ? k->cap : 4096;
        while (cap < k->len + (size_t)size + 1) cap *= 2;
        char *b = realloc(k->buf, cap);
        if (!b) {
            k->oom = 1;
            return -1;
        }
        k->buf = b, k->cap = cap;
    }
    memcpy(k->buf + k->len, data, (size_t)size);
    k->len += (size_t)size;
    k->buf[k->len] = '\0';
    return size;
}
#endif

int timg_sixel(char **out, size_t *len, const uint8_t *rgb, int w, int h, int stride, int px_w,
               int px_h, vs_err *e)
{
    *out = NULL;
    *len = 0;
    if (w <= 0 || h <= 0 || px_w <= 0 || px_h <= 0)
        return vs_fail(e, "sixel image: nothing to draw (%dx%d picture into %dx%d pixels)", w, h,
                       px_w, px_h);
#ifndef VS_HAVE_SIXEL
    (void)rgb, (void)stride;
    return vs_fail(e, "sixel image: visage was built without libsixel (install libsixel-dev and "
                      "rebuild); previews use half blocks");
#else
    VS_CHECK(rgb && stride >= 3 * w);
    int ow, oh;
    fit_box(&ow, &oh, w, h, px_w, px_h);
    /* our own copy: libsixel's error diffusion writes into the pixels it is given */
    uint8_t *px = malloc((size_t)ow * oh * 3);
    if (!px || resample_area(px, ow, oh, rgb, w, h, stride) < 0) {
        free(px);
        return vs_fail(e, "sixel image: out of memory for %dx%d pixels", ow, oh);
    }
    sixel_sink sink = {0};
    sixel_output_t *output = NULL;
    sixel_dither_t *dither = NULL;
    const char *step = "sixel_output_new";
    SIXELSTATUS st = sixel_output_new(&output, sink_write, &sink, NULL);
    if (!SIXEL_FAILED(st)) step = "sixel_dither_new", st = sixel_dither_new(&dither, 256, NULL);
    if (!SIXEL_FAILED(st)) { /* the palette from every pixel, not left to QUALITY_AUTO */
        step = "sixel_dither_initialize";
        st = sixel_dither_initialize(dither, px, ow, oh, SIXEL_PIXELFORMAT_RGB888, SIXEL_LARGE_AUTO,
                                     SIXEL_REP_AUTO, SIXEL_QUALITY_AUTO);
    }
    if (!SIXEL_FAILED(st)) step = "sixel_encode", st = sixel_encode(px, ow, oh, 3, dither, output);
    if (dither) sixel_dither_unref(dither);
    if (output) sixel_output_unref(output);
    free(px);
    if (SIXEL_FAILED(st) || sink.oom || !sink.len) {
        free(sink.buf);
        if (SIXEL_FAILED(st))
            return vs_fail(e, "sixel image (%dx%d): %s failed: %s", ow, oh, step,
                           sixel_helper_format_error(st));
        return vs_fail(e, "sixel image (%dx%d): %s", ow, oh,
                       sink.oom ? "out of memory" : "libsixel wrote nothing");
    }
    *out = sink.buf;
    *len = sink.len;
    return 0;
#endif
}

/* ---- tmux and the terminal's answer ------------------------------------------------------- */

char *timg_tmux_wrap(const char *seq, size_t len, size_t *out_len)
{
    size_t n_esc = 0;
    for (size_t i = 0; i < len; i++) n_esc += seq[i] == '\033';
    size_t n = 7 + len + n_esc + 2;
    char *s = malloc(n + 1), *p = s;
    if (!s) return NULL;
    memcpy(p, "\033Ptmux;", 7), p += 7;
    for (size_t i = 0; i < len; i++) {
        if (seq[i] == '\033') *p++ = '\033';
        *p++ = seq[i];
    }
    memcpy(p, "\033\\", 2), p += 2;
    *p = '\0';
    if (out_len) *out_len = n;
    return s;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int timg_da1_has_sixel(const char *reply)
{
    const char *p = reply ? strstr(reply, "\033[?") : NULL;
    if (!p) return 0;
    int sixel = 0;
    for (p += 3;;) {
        if (!is_digit(*p)) return 0;
        int v = 0;
        for (; is_digit(*p); p++)
            if (v < 100000) v = v * 10 + (*p - '0');
        sixel |= v == 4;
        if (*p == 'c') return sixel;
        if (*p++ != ';') return 0;
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A whole DA1 reply has arrived: its CSI ? and, after it, the final 'c'. */
static int da1_complete(const char *buf)
{
    const char *p = strstr(buf, "\033[?");
    return p && strchr(p, 'c');
}

/* Sends ESC[c (wrapped in tmux's passthrough when via_tmux, so that the terminal outside tmux
 * answers) and reads until a whole DA1 reply or timeout_ms; 1 when it lists sixel. */
static int ask_da1(int fd, int timeout_ms, int via_tmux)
{
    static const char plain[] = "\033[c", wrapped[] = "\033Ptmux;\033\033[c\033\\";
    const char *q = via_tmux ? wrapped : plain;
    size_t len = strlen(q);
    for (size_t sent = 0; sent < len;) {
        ssize_t k = write(fd, q + sent, len - sent);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return 0;
        sent += (size_t)k;
    }
    char buf[256];
    size_t n = 0;
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    while (n < sizeof buf - 1) {
        int64_t left = deadline - now_ms();
        if (left <= 0) return 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
        if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (k <= 0) return 0;
        n += (size_t)k;
        buf[n] = '\0';
        if (da1_complete(buf)) return timg_da1_has_sixel(buf);
    }
    return 0;
}

int timg_query_sixel(int tty_fd, int timeout_ms, int via_tmux)
{
    struct termios saved, raw;
    if (tcgetattr(tty_fd, &saved) != 0) return 0;
    raw = saved;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(tty_fd, TCSANOW, &raw) != 0) return 0;
    int has = ask_da1(tty_fd, timeout_ms, via_tmux);
    tcsetattr(tty_fd, TCSANOW, &saved);
    return has;
}
