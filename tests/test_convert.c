/* test_convert.c: the pieces of swapping a face (core/convert.c): colour matching moves the new
 * face's statistics to the original's (mean, Reinhard LAB mean and deviation, histogram
 * quantiles) counting only the masked pixels; masks (box, extended from landmarks, learned) with
 * erosion, growth and feathering; blending writes only where the mask reaches and gives the new
 * face where it is whole; a whole swap with a small model leaves every pixel outside the face's
 * mask as it was (synthetic frames: no data needed); and smoothing over time steadies a still
 * face's landmarks without lagging behind a moving one, measured on noise and (with
 * ../shared/data and the face networks) on a real talking head. */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "align.h"
#include "alignments.h"
#include "check.h"
#include "convert.h"
#include "extract.h"
#include "facenet.h"
#include "faceset.h"
#include "fsutil.h"
#include "nn/colour.h"
#include "smooth.h"
#include "train.h"
#include "video.h"
#include "video_out.h"

/* n pixels in [lo, hi] */
static float *rand_pixels(int n, float lo, float hi)
{
    float *p = vs_malloc((size_t)n * 3 * sizeof *p);
    for (int i = 0; i < 3 * n; i++) p[i] = lo + (hi - lo) * (float)check_urand();
    return p;
}

static void stats(double *mean, double *sd, const float *x, const float *w, int n, int c)
{
    double sw = 0, s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        double wi = w ? w[i] : 1, v = x[3 * i + c];
        sw += wi, s += wi * v, s2 += wi * v * v;
    }
    *mean = s / sw;
    *sd = sqrt(fmax(0, s2 / sw - *mean * *mean));
}

/* the weighted q-quantile of channel c */
static double quantile(const float *x, const float *w, int n, int c, double q)
{
    double total = 0;
    for (int i = 0; i < n; i++) total += w ? w[i] : 1;
    for (double v = 0; v <= 1.0001; v += 1.0 / 512) {
        double below = 0;
        for (int i = 0; i < n; i++)
            if (x[3 * i + c] <= v) below += w ? w[i] : 1;
        if (below >= q * total) return v;
    }
    return 1;
}

static void test_color(void)
{
    const int n = 4000;
    /* ref: pixels where w > 0 around one colour, and outliers where w = 0 that must not count */
    float *ref = rand_pixels(n, 0.45f, 0.85f), *w = vs_malloc(n * sizeof *w);
    for (int i = 0; i < n; i++) {
        w[i] = i % 4 == 0 ? 0.f : (float)check_urand();
        if (w[i] == 0.f)
            for (int c = 0; c < 3; c++) ref[3 * i + c] = 0.02f;
    }
    for (int i = 0; i < n; i++) ref[3 * i + 2] *= 0.7f; /* a colour cast */
    for (int kind = CV_COLOR_AVG; kind <= CV_COLOR_NONE; kind++) {
        float *face = rand_pixels(n, 0.15f, 0.55f), *orig = vs_malloc((size_t)n * 3 * 4);
        memcpy(orig, face, (size_t)n * 3 * 4);
        cv_color_match(face, ref, w, n, (cv_color)kind);
        const char *name = cv_color_name((cv_color)kind);
        if (kind == CV_COLOR_NONE) {
            CHECK(!memcmp(face, orig, (size_t)n * 3 * 4));
        } else if (kind == CV_COLOR_AVG) {
            for (int c = 0; c < 3; c++) {
                double mf, sf, mr, sr, mo, so;
                stats(&mf, &sf, face, w, n, c), stats(&mr, &sr, ref, w, n, c);
                stats(&mo, &so, orig, w, n, c);
                CHECKF(fabs(mf - mr) < 1e-3, "avg channel %d: mean %.4f, ref %.4f", c, mf, mr);
                CHECKF(fabs(sf - so) < 1e-3, "avg channel %d changed the spread", c);
            }
        } else if (kind == CV_COLOR_RCT) {
            float *lf = vs_malloc((size_t)n * 3 * 4), *lr = vs_malloc((size_t)n * 3 * 4);
            nn_rgb_to_lab(lf, face, (size_t)n), nn_rgb_to_lab(lr, ref, (size_t)n);
            for (int c = 0; c < 3; c++) {
                double mf, sf, mr, sr;
                stats(&mf, &sf, lf, w, n, c), stats(&mr, &sr, lr, w, n, c);
                CHECKF(fabs(mf - mr) < 5e-3 && fabs(sf - sr) < 5e-3,
                       "rct LAB channel %d: mean %.4f sd %.4f, ref %.4f %.4f", c, mf, sf, mr, sr);
            }
            free(lf), free(lr);
        } else {
            for (int c = 0; c < 3; c++)
                for (double q = 0.1; q < 0.95; q += 0.4) {
                    double a = quantile(face, w, n, c, q), b = quantile(ref, w, n, c, q);
                    CHECKF(fabs(a - b) < 2.0 / 256, "hist channel %d quantile %.1f: %.4f, ref %.4f",
                           c, q, a, b);
                }
        }
        int out = 0;
        for (int i = 0; i < 3 * n; i++) out += !(face[i] >= 0 && face[i] <= 1);
        CHECKF(out == 0, "%s: %d values out of [0, 1]", name, out);
        /* all weights zero: nothing to match, nothing changes */
        memcpy(face, orig, (size_t)n * 3 * 4);
        float *zero = vs_calloc(n, sizeof *zero);
        cv_color_match(face, ref, zero, n, (cv_color)kind);
        CHECKF(!memcmp(face, orig, (size_t)n * 3 * 4), "%s with an empty mask changed the face",
               name);
        free(zero), free(face), free(orig);
    }
    free(ref), free(w);
}

static double mask_sum(const float *m, int size)
{
    double s = 0;
    for (int i = 0; i < size * size; i++) s += m[i];
    return s;
}

/* the mean face's landmarks placed in a crop of `size` (inner features over the middle half) */
static void crop_landmarks(float lm[136], int size)
{
    for (int i = 0; i < 136; i++) lm[i] = (0.25f + 0.5f * align_mean_face[i]) * (float)size;
}

static void test_mask(void)
{
    const int S = 64;
    float *m = vs_malloc(S * S * sizeof *m), *m2 = vs_malloc(S * S * sizeof *m2);
    float lm[136];
    crop_landmarks(lm, S);
    /* box: one inside its margin, zero outside */
    cv_make_mask(m, S, lm, CV_MASK_BOX, NULL, 0, 0);
    CHECK(m[(S / 2) * S + S / 2] == 1.f && m[2 * S + 2] == 0.f && m[(S / 16) * S + S / 16] == 1.f);
    CHECK_NEAR(mask_sum(m, S), (double)(S - 2 * (S / 16)) * (S - 2 * (S / 16)), 0.5);
    /* erosion shrinks it, growth grows it, feathering softens the edge and keeps the area */
    double base = mask_sum(m, S);
    cv_make_mask(m2, S, lm, CV_MASK_BOX, NULL, 5, 0);
    CHECK(mask_sum(m2, S) < base - 4 * (S - 8));
    cv_make_mask(m2, S, lm, CV_MASK_BOX, NULL, -5, 0);
    CHECK(mask_sum(m2, S) > base + 4 * (S - 8));
    cv_make_mask(m2, S, lm, CV_MASK_BOX, NULL, 0, 10);
    int soft = 0;
    for (int i = 0; i < S * S; i++) soft += m2[i] > 0.05f && m2[i] < 0.95f;
    CHECKF(soft > 4 * S, "feathering left %d soft pixels", soft);
    CHECK(fabs(mask_sum(m2, S) - base) < 0.05 * base);
    /* extended: the face from the landmarks, whole at the nose, empty at the corners */
    cv_make_mask(m, S, lm, CV_MASK_EXTENDED, NULL, 0, 0);
    int nx = (int)lroundf(lm[2 * 30]), ny = (int)lroundf(lm[2 * 30 + 1]);
    CHECK(m[ny * S + nx] > 0.99f && m[1 * S + 1] == 0.f);
    CHECK(mask_sum(m, S) > 0.15 * S * S && mask_sum(m, S) < 0.8 * S * S);
    /* components: the same hulls with the eyebrows where they are, so less forehead */
    cv_make_mask(m2, S, lm, CV_MASK_COMPONENTS, NULL, 0, 0);
    CHECK(mask_sum(m2, S) > 0.5 * mask_sum(m, S) && mask_sum(m2, S) < mask_sum(m, S) - S);
    int brow_y = (int)lroundf(lm[2 * 19 + 1]) - 2, bx = (int)lroundf(lm[2 * 19]);
    CHECK(m[brow_y * S + bx] > 0.5f && m2[brow_y * S + bx] < 0.5f);
    /* learned: the model's values, clamped; the border always zero */
    float *learned = vs_malloc(S * S * sizeof *learned);
    for (int i = 0; i < S * S; i++) learned[i] = 1.5f * (float)check_urand() - 0.25f;
    cv_make_mask(m, S, lm, CV_MASK_LEARNED, learned, 0, 0);
    int ok = 1;
    for (int y = 1; y < S - 1; y++)
        for (int x = 1; x < S - 1; x++) {
            float v = learned[y * S + x], want = v < 0 ? 0 : v > 1 ? 1 : v;
            ok &= m[y * S + x] == want;
        }
    for (int i = 0; i < S; i++) ok &= m[i] == 0 && m[i * S] == 0 && m[(S - 1) * S + i] == 0;
    CHECK(ok);
    free(m), free(m2), free(learned);
}

static void test_blend(void)
{
    const int S = 32, W = 120, H = 90;
    img *frame = img_new(W, H, 3), *orig;
    for (int i = 0; i < W * H * 3; i++) frame->px[i] = (uint8_t)(check_urand() * 256);
    orig = img_clone(frame);
    float *face = vs_malloc(S * S * 3 * sizeof *face), *mask = vs_malloc(S * S * sizeof *mask);
    for (int i = 0; i < S * S; i++)
        face[3 * i] = 1.f, face[3 * i + 1] = 0.f, face[3 * i + 2] = 0.5f;
    float lm[136];
    crop_landmarks(lm, S);
    cv_make_mask(mask, S, lm, CV_MASK_BOX, NULL, 0, 0);
    /* frame -> crop: the crop covers frame [40, 80) x [30, 70) at scale 0.8 */
    const double m[6] = {0.8, 0, -32, 0, 0.8, -24};
    cv_blend(frame, face, mask, S, m);
    int outside_same = 1, inside_face = 1, changed = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = 0.8 * x - 32, v = 0.8 * y - 24;
            const uint8_t *p = frame->px + (y * W + x) * 3, *q = orig->px + (y * W + x) * 3;
            changed += memcmp(p, q, 3) != 0;
            /* the box is 1 on crop pixels [e, S - e): bilinear, 0 beyond a pixel outside it
             * and 1 from its first to its last pixel */
            const int e = S / 16;
            if (u <= e - 1 || v <= e - 1 || u >= S - e || v >= S - e)
                outside_same &= !memcmp(p, q, 3);
            else if (u >= e && v >= e && u <= S - e - 1 && v <= S - e - 1)
                inside_face &= p[0] == 255 && p[1] == 0 && (p[2] == 128 || p[2] == 127);
        }
    CHECK(outside_same);
    CHECK(inside_face);
    CHECK(changed > 500);
    /* shown at half size (two crop pixels to a frame pixel), a one-pixel checkerboard averages to
     * grey rather than aliasing into stripes */
    for (int i = 0; i < S * S; i++) {
        float v = ((i % S) + (i / S)) % 2 ? 1.f : 0.f;
        face[3 * i] = face[3 * i + 1] = face[3 * i + 2] = v;
    }
    for (int i = 0; i < S * S; i++) mask[i] = 1.f;
    const double half[6] = {2, 0, -100, 0, 2, -80};
    cv_blend(frame, face, mask, S, half);
    int grey = 1;
    for (int y = 44; y < 52; y++)
        for (int x = 54; x < 62; x++) grey &= abs(frame->px[(y * W + x) * 3] - 128) <= 12;
    CHECK(grey);
    img_free(frame), img_free(orig), free(face), free(mask);
}

/* a whole swap with a small, untrained model on a synthetic frame: pixels outside the warped
 * mask are as they were, pixels inside changed; each side's decoder gives its own face; the
 * learned mask of a model without one and degenerate landmarks are errors */
static void test_swap(void)
{
    model *m = NULL;
    mdl_options o;
    mdl_options_default(&o);
    o.shrink = 16;
    vs_err e;
    CHECK(model_create(&m, "original", &o, nn_cpu_backend(), 7, &e) == 0);
    if (!m) return;
    const int W = 200, H = 160;
    img *frame = img_new(W, H, 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++)
                frame->px[(y * W + x) * 3 + c] = (uint8_t)((x * 3 + y * 2 + c * 40) & 255);
    img *orig = img_clone(frame), *other = img_clone(frame);
    float lm[136];
    for (int i = 0; i < 68; i++) {
        lm[2 * i] = 70.f + 60.f * align_mean_face[2 * i];
        lm[2 * i + 1] = 50.f + 60.f * align_mean_face[2 * i + 1];
    }
    cv_opts co;
    cv_opts_default(&co);
    CHECK(cv_swap_face(frame, lm, m, &co, &e) == 0);
    /* the mask as the swap makes it, warped to the frame: outside it nothing may change */
    const int So = m->arch->output_size;
    double mo[6];
    CHECK(faceset_crop_matrix(mo, lm, m->opt.centering, m->opt.coverage, So) == 0);
    float lmc[136], *mask = vs_malloc((size_t)So * So * sizeof *mask);
    memcpy(lmc, lm, sizeof lmc);
    align_apply(lmc, 68, mo);
    cv_make_mask(mask, So, lmc, co.mask, NULL, co.erode, co.blur);
    int bad = 0, changed = 0, reach = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double u = mo[0] * x + mo[1] * y + mo[2], v = mo[3] * x + mo[4] * y + mo[5];
            int iu = (int)floor(u), iv = (int)floor(v), any = 0;
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < 2; i++) {
                    int xx = iu + i, yy = iv + j;
                    if (xx >= 0 && yy >= 0 && xx < So && yy < So && mask[yy * So + xx] > 0) any = 1;
                }
            int diff = memcmp(frame->px + (y * W + x) * 3, orig->px + (y * W + x) * 3, 3) != 0;
            bad += diff && !any;
            changed += diff;
            reach += any;
        }
    CHECKF(bad == 0, "%d pixels outside the mask changed", bad);
    CHECKF(changed > reach / 4, "only %d of the %d pixels under the mask changed", changed, reach);
    /* the other decoder */
    co.side = 0;
    CHECK(cv_swap_face(other, lm, m, &co, &e) == 0);
    CHECK(memcmp(other->px, frame->px, (size_t)W * H * 3) != 0);
    /* errors */
    co.mask = CV_MASK_LEARNED;
    CHECK(cv_swap_face(other, lm, m, &co, &e) == -1 && strstr(e.msg, "learned mask"));
    cv_opts_default(&co);
    float flat[136];
    for (int i = 0; i < 136; i++) flat[i] = 50.f;
    CHECK(cv_swap_face(other, flat, m, &co, &e) == -1 && strstr(e.msg, "degenerate"));
    free(mask);
    img_free(frame), img_free(orig), img_free(other);
    model_free(m);
}

/* mean movement of the points from frame to frame, frames [from, n) */
static double jitter(float (*seq)[136], int from, int n)
{
    double sum = 0;
    for (int k = from + 1; k < n; k++)
        for (int i = 0; i < 68; i++)
            sum +=
                hypot(seq[k][2 * i] - seq[k - 1][2 * i], seq[k][2 * i + 1] - seq[k - 1][2 * i + 1]);
    return sum / ((double)(n - from - 1) * 68);
}

static double gauss(void)
{
    double u = check_urand() + 1e-12, v = check_urand();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

static void test_smooth(void)
{
    enum { N = 150 };
    static float raw[N][136], sm[N][136];
    float base[136];
    for (int i = 0; i < 136; i++) base[i] = 120.f * align_mean_face[i] + (i % 2 ? 100.f : 200.f);
    /* a still face with a pixel of noise: steadier, and where it is */
    lm_smoother *s = lms_new(1.0f, 5.0f);
    for (int k = 0; k < N; k++) {
        for (int i = 0; i < 136; i++) raw[k][i] = base[i] + (float)gauss();
        memcpy(sm[k], raw[k], sizeof sm[k]);
        lms_apply(s, &sm[k], 1, k / 30.0);
    }
    double jr = jitter(raw, 30, N), js = jitter(sm, 30, N), off = 0;
    for (int k = 30; k < N; k++)
        for (int i = 0; i < 136; i++) off += fabs(sm[k][i] - base[i]);
    off /= (N - 30) * 136.0;
    printf("still face, 1 px of noise: jitter %.3f px raw, %.3f smoothed; %.3f px from the face\n",
           jr, js, off);
    CHECKF(js < 0.4 * jr, "smoothing left jitter %.3f of %.3f", js, jr);
    CHECKF(off < 0.6, "the smoothed face sits %.3f px from the still one", off);
    lms_free(s);
    /* a face moving at 100 px/s (about one face size a second): follows within 6 px */
    s = lms_new(1.0f, 5.0f);
    double lag = 0;
    for (int k = 0; k < N; k++) {
        for (int i = 0; i < 136; i++) raw[k][i] = base[i] + (i % 2 ? 0.f : 100.f * k / 30.f);
        memcpy(sm[k], raw[k], sizeof sm[k]);
        lms_apply(s, &sm[k], 1, k / 30.0);
        if (k >= 30)
            for (int i = 0; i < 136; i++) lag += fabs(sm[k][i] - raw[k][i]) / ((N - 30) * 136.0);
    }
    printf("face moving 100 px/s: %.2f px behind\n", lag);
    CHECKF(lag < 6, "the smoothed face lags %.2f px", lag);
    lms_free(s);
    /* two faces: each keeps its own track (it never becomes the other) */
    s = lms_new(1.0f, 5.0f);
    float two[2][136];
    int kept = 1;
    for (int k = 0; k < 20; k++) {
        for (int i = 0; i < 136; i++) {
            two[k % 2][i] = base[i] + (float)gauss() * 0.5f;
            two[1 - k % 2][i] = base[i] + (i % 2 ? 0.f : 300.f) + (float)gauss() * 0.5f;
        }
        lms_apply(s, two, 2, k / 30.0);
        kept &= fabs(two[k % 2][0] - base[0]) < 5 && fabs(two[1 - k % 2][0] - base[0] - 300) < 5;
    }
    CHECK(kept);
    lms_free(s);
    /* off */
    s = lms_new(0.f, 5.0f);
    memcpy(two[0], raw[0], sizeof two[0]);
    lms_apply(s, two, 1, 0), lms_apply(s, two, 1, 0.1);
    CHECK(!memcmp(two[0], raw[0], sizeof two[0]));
    lms_free(s);
}

/* The landmarks the detector gives a real talking head, frame by frame, against the smoothed
 * ones: smoothing lowers the frame-to-frame movement. */
static void test_smooth_real(void)
{
    if (!check_have_data() || !check_have_models()) {
        printf("skipped: no ../shared/data or models (smoothing on a real clip)\n");
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/video/retalking_4.mp4", check_data_dir());
    vs_err e;
    ex_nets nets;
    vid_reader *r = NULL;
    if (ex_nets_load(&nets, check_models_dir(), NULL, 0, &e) || vid_open(&r, path, &e)) {
        CHECKF(0, "%s", e.msg);
        return;
    }
    vs_config cfg;
    cfg_defaults(&cfg);
    enum { N = 90 };
    static float raw[N][136], sm[N][136];
    lm_smoother *s = lms_new(1.0f, 5.0f);
    img *f = NULL;
    int64_t idx;
    int n = 0;
    const vid_info *in = vid_get_info(r);
    while (n < N && vid_read(r, &f, &idx, &e) == 1) {
        ex_found found[4];
        int k = ex_find_faces(found, 4, &nets, f, &cfg);
        if (k < 1 || found[0].verdict != EX_KEEP) continue;
        memcpy(raw[n], found[0].lm, sizeof raw[n]);
        memcpy(sm[n], raw[n], sizeof sm[n]);
        lms_apply(s, &sm[n], 1, (double)vid_frame_pts(r) * in->tb_num / in->tb_den);
        n++;
    }
    double jr = jitter(raw, 0, n), js = jitter(sm, 0, n);
    printf("retalking_4.mp4, %d frames: landmark movement %.3f px a frame as detected, %.3f "
           "smoothed\n",
           n, jr, js);
    CHECK(n >= 60);
    CHECKF(js < 0.8 * jr, "smoothing: %.3f px a frame, detected %.3f", js, jr);
    lms_free(s);
    img_free(f);
    vid_close(r);
    ex_nets_free(&nets);
}

static void test_names(void)
{
    cv_mask mk;
    cv_color cc;
    CHECK(cv_mask_parse(&mk, "box") == 0 && mk == CV_MASK_BOX);
    CHECK(cv_mask_parse(&mk, "learned") == 0 && !strcmp(cv_mask_name(mk), "learned"));
    CHECK(cv_mask_parse(&mk, "components") == 0 && mk == CV_MASK_COMPONENTS);
    CHECK(cv_mask_parse(&mk, "vgg-obstructed") == -1 && cv_mask_parse(&mk, NULL) == -1);
    CHECK(cv_color_parse(&cc, "rct") == 0 && cc == CV_COLOR_RCT);
    CHECK(cv_color_parse(&cc, "hist") == 0 && !strcmp(cv_color_name(cc), "hist"));
    CHECK(cv_color_parse(&cc, "seamless") == -1);
}

/* --identity CLIP ALIGNMENTS REFS (for tests/cli/train_mead.sh): the mean identity distance of
 * the faces the alignments file lists (taken from CLIP's frames at their landmarks, so faces the
 * detector would no longer find still count) to the mean embedding of the face PNGs in REFS.
 * Prints "distance D over N faces". */
static int identity_distance(const char *clip, const char *align, const char *refs)
{
    vs_err e;
    al_file al;
    fn_embedder *emb = NULL;
    vid_reader *r = NULL;
    char **names = NULL;
    int n_names = 0;
    if (al_load(&al, align, &e) ||
        fn_embedder_load(&emb, check_models_dir(), nn_cpu_backend(), &e) ||
        vid_open(&r, clip, &e) || fs_list_dir(&names, &n_names, refs, NULL, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    float mean[128] = {0};
    int nr = 0;
    for (int i = 0; i < n_names; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", refs, names[i]);
        vs_face f;
        if (!strstr(names[i], ".png") || face_load(&f, NULL, p, &e) || !f.has_embedding) continue;
        for (int k = 0; k < 128; k++) mean[k] += f.embedding[k];
        nr++;
    }
    double norm = 0;
    for (int k = 0; k < 128; k++) norm += (double)mean[k] * mean[k];
    for (int k = 0; k < 128; k++) mean[k] = (float)(mean[k] / sqrt(norm > 0 ? norm : 1));
    img *f = NULL;
    int64_t idx;
    double sum = 0;
    int n = 0, next = 0;
    while (vid_read(r, &f, &idx, &e) == 1) {
        for (; next < al.n_faces && al.faces[next].frame <= idx; next++) {
            const vs_face *rec = &al.faces[next];
            if (rec->frame != idx) continue;
            fn_box b = {rec->box[0], rec->box[1], rec->box[2], rec->box[3], 1};
            float out[128];
            fn_embed(out, emb, f, &b, rec->lm);
            sum += fn_distance(out, mean);
            n++;
        }
    }
    printf("distance %.4f over %d faces (references: %d)\n", n ? sum / n : -1.0, n, nr);
    img_free(f);
    vid_close(r);
    fn_embedder_free(emb);
    fs_free_list(names, n_names);
    al_free(&al);
    return n && nr ? 0 : 1;
}

/* --synth-track DIR (for tests/cli/convert.sh): a synthetic clip with a known face track,
 * DIR/track.mkv (lossless, 40 frames of 200x150 at 25 fps: a textured background and a face-like
 * blob that moves and grows), and its alignments file DIR/track.json listing the face's
 * landmarks in every frame. */
#define TRACK_FRAMES 40
static void track_landmarks(float lm[136], int k)
{
    float scale = 60.f + k, x0 = 50.f + 1.5f * k, y0 = 30.f + 0.5f * k;
    for (int i = 0; i < 68; i++) {
        lm[2 * i] = x0 + scale * align_mean_face[2 * i];
        lm[2 * i + 1] = y0 + scale * align_mean_face[2 * i + 1];
    }
}

static int synth_track(const char *dir)
{
    char path[4200], apath[4200];
    snprintf(path, sizeof path, "%s/track.mkv", dir);
    snprintf(apath, sizeof apath, "%s/track.json", dir);
    const int W = 200, H = 150;
    vs_err e;
    vout_opts o;
    vout_opts_default(&o);
    o.codec = VOUT_LOSSLESS;
    vout *v;
    if (vout_open(&v, path, W, H, 1, 25, 25.0, NULL, &o, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    al_file al;
    al_init(&al, path);
    al.width = W, al.height = H, al.fps = 25, al.frames_read = TRACK_FRAMES, al.complete = 1;
    img *f = img_new(W, H, 3);
    for (int k = 0; k < TRACK_FRAMES; k++) {
        float lm[136];
        track_landmarks(lm, k);
        float cx = 0, cy = 0;
        for (int i = 0; i < 68; i++) cx += lm[2 * i] / 68, cy += lm[2 * i + 1] / 68;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint8_t *p = f->px + ((size_t)y * W + x) * 3;
                double d = hypot(x - cx, (y - cy) * 0.8) / (30.0 + k / 2.0);
                int face = d < 1;
                p[0] = (uint8_t)(face ? 200 - 40 * d : 40 + ((x * 7 + y * 3) & 63));
                p[1] = (uint8_t)(face ? 150 - 30 * d : 90 + ((x + y * 5) & 31));
                p[2] = (uint8_t)(face ? 120 : 140 + ((x * 3 + y) & 31));
            }
        if (vout_write(v, f, k, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        vs_face face;
        memset(&face, 0, sizeof face);
        snprintf(face.source, sizeof face.source, "%s", path);
        face.frame = k;
        memcpy(face.lm, lm, sizeof lm);
        float x0 = lm[0], x1 = lm[0], y0 = lm[1], y1 = lm[1];
        for (int i = 1; i < 68; i++) {
            x0 = fminf(x0, lm[2 * i]), x1 = fmaxf(x1, lm[2 * i]);
            y0 = fminf(y0, lm[2 * i + 1]), y1 = fmaxf(y1, lm[2 * i + 1]);
        }
        face.box[0] = x0, face.box[1] = y0, face.box[2] = x1 - x0, face.box[3] = y1 - y0;
        face.score = 1, face.size = 64;
        snprintf(face.centering, sizeof face.centering, "face");
        al_add(&al, &face);
    }
    img_free(f);
    int rc = vout_close(v, &e) || al_save(apath, &al, &e);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    al_free(&al);
    return rc;
}

/* --outside ORIG CONV MODEL: frame by frame, how many pixels changed outside the square the
 * model's crop of the track's face covers (grown by 2 pixels: bilinear reaches one beyond) and
 * inside it. Prints "frames N outside CHANGED inside CHANGED". */
static int outside_changes(const char *orig, const char *conv, const char *model_dir)
{
    vs_err e;
    vid_reader *ra = NULL, *rb = NULL;
    model *m = NULL;
    if (vid_open(&ra, orig, &e) || vid_open(&rb, conv, &e) ||
        train_load_model(&m, NULL, model_dir, nn_cpu_backend(), &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    img *fa = NULL, *fb = NULL;
    int64_t ia, ib, frames = 0, outside = 0, inside = 0;
    const int So = m->arch->output_size;
    while (vid_read(ra, &fa, &ia, &e) == 1 && vid_read(rb, &fb, &ib, &e) == 1) {
        float lm[136];
        track_landmarks(lm, (int)ia);
        double mo[6];
        if (faceset_crop_matrix(mo, lm, m->opt.centering, m->opt.coverage, So)) return 1;
        for (int y = 0; y < fa->h; y++)
            for (int x = 0; x < fa->w; x++) {
                size_t o = ((size_t)y * fa->w + x) * 3;
                if (!memcmp(fa->px + o, fb->px + o, 3)) continue;
                double u = mo[0] * x + mo[1] * y + mo[2], v = mo[3] * x + mo[4] * y + mo[5];
                double margin = 2 * fabs(mo[0]) + 2 * fabs(mo[1]);
                int in = u > -1 - margin && v > -1 - margin && u < So + margin && v < So + margin;
                inside += in, outside += !in;
            }
        frames++;
    }
    printf("frames %" PRId64 " outside %" PRId64 " inside %" PRId64 "\n", frames, outside, inside);
    img_free(fa), img_free(fb);
    vid_close(ra), vid_close(rb);
    model_free(m);
    return 0;
}

int main(int argc, char **argv)
{
    nn_cpu_set_threads(0);
    if (argc == 5 && !strcmp(argv[1], "--identity"))
        return identity_distance(argv[2], argv[3], argv[4]);
    if (argc == 3 && !strcmp(argv[1], "--synth-track")) return synth_track(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "--outside"))
        return outside_changes(argv[2], argv[3], argv[4]);
    test_names();
    test_color();
    test_mask();
    test_blend();
    test_swap();
    test_smooth();
    test_smooth_real();
    return check_report("test_convert");
}
