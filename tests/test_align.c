/* test_align.c: alignment (Umeyama, crops, pose, plausibility), face metadata, alignments files
 * and curation, on synthetic landmarks where the right answer is known. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "align.h"
#include "alignments.h"
#include "check.h"
#include "curate.h"
#include "extract.h"
#include "face.h"
#include "fsutil.h"

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

static void test_umeyama(void)
{
    float src[136], dst[136];
    memcpy(src, align_mean_face, sizeof src);
    place(dst, 1.7, 20, 33, -12);
    double m[6];
    CHECK(align_umeyama(m, src, dst, 68) == 0);
    double r = 20 * M_PI / 180;
    CHECK_NEAR(m[0], 1.7 * cos(r), 1e-5);
    CHECK_NEAR(m[3], 1.7 * sin(r), 1e-5);
    CHECK_NEAR(m[2], 33, 1e-4);
    CHECK_NEAR(m[5], -12, 1e-4);
    float same[136] = {0};
    CHECK(align_umeyama(m, same, dst, 68) == -1); /* degenerate: all points equal */

    double inv[6], id[6] = {2, 0.5, 3, -0.5, 2, 7}, back[6];
    CHECK(align_invert(inv, id) == 0);
    CHECK(align_invert(back, inv) == 0);
    for (int i = 0; i < 6; i++) CHECK_NEAR(back[i], id[i], 1e-9);
}

static void test_matrix_and_crop(void)
{
    float lm[136];
    place(lm, 120, -25, 300, 200);
    double m[6];
    for (int c = ALIGN_FACE; c <= ALIGN_LEGACY; c++) {
        CHECK(align_matrix(m, lm, (align_centering)c, 256) == 0);
        float q[136];
        memcpy(q, lm, sizeof q);
        align_apply(q, 68, m);
        /* eyes level in the crop, face upright and inside it */
        CHECK_NEAR(q[2 * 36 + 1], q[2 * 45 + 1], 0.01);
        CHECK(q[2 * 36] < q[2 * 45]);
        CHECK(q[2 * 27 + 1] < q[2 * 57 + 1]);
        for (int i = 17; i < 68; i++)
            CHECK(q[2 * i] > 0 && q[2 * i] < 256 && q[2 * i + 1] > 0 && q[2 * i + 1] < 256);
        /* the nose is horizontally centred */
        CHECK_NEAR(q[2 * 30], 128, 1.0);
    }
    /* head centring shows more around the face than face centring, legacy less */
    double mf[6], mh[6], ml[6];
    align_matrix(mf, lm, ALIGN_FACE, 256);
    align_matrix(mh, lm, ALIGN_HEAD, 256);
    align_matrix(ml, lm, ALIGN_LEGACY, 256);
    double sf = hypot(mf[0], mf[3]), sh = hypot(mh[0], mh[3]), sl = hypot(ml[0], ml[3]);
    CHECK(sh < sf && sf < sl);

    /* the crop samples the frame where the matrix says: a frame whose red channel is x and green
     * channel y gives back, at crop pixel p, the frame point inverse(m) * p */
    img *frame = img_new(600, 400, 3);
    for (int y = 0; y < 400; y++)
        for (int x = 0; x < 600; x++) {
            frame->px[(y * 600 + x) * 3] = (uint8_t)(x % 251);
            frame->px[(y * 600 + x) * 3 + 1] = (uint8_t)(y % 251);
        }
    float small[136];
    place(small, 60, 0, 270, 170);
    CHECK(align_matrix(m, small, ALIGN_FACE, 64) == 0);
    img *crop = img_new(64, 64, 3);
    align_crop(crop, frame, m);
    double inv[6];
    align_invert(inv, m);
    double fx = inv[0] * 32 + inv[1] * 32 + inv[2], fy = inv[3] * 32 + inv[4] * 32 + inv[5];
    CHECK_NEAR(crop->px[(32 * 64 + 32) * 3], fmod(fx, 251), 1.01);
    CHECK_NEAR(crop->px[(32 * 64 + 32) * 3 + 1], fmod(fy, 251), 1.01);
    img_free(crop);
    img_free(frame);
}

static void test_pose_and_plausibility(void)
{
    float lm[136];
    align_pose p;
    place(lm, 100, 0, 50, 50);
    align_estimate_pose(&p, lm);
    CHECK_NEAR(p.yaw, 0, 1);
    CHECK_NEAR(p.pitch, 0, 1);
    CHECK_NEAR(p.roll, 0, 0.1);
    place(lm, 100, 15, 50, 50);
    align_estimate_pose(&p, lm);
    CHECK_NEAR(p.roll, 15, 0.1);
    CHECK_NEAR(p.yaw, 0, 1);
    /* move the nose tip and the inner features to the image right: yaw > 0, and the mirror < 0 */
    place(lm, 100, 0, 50, 50);
    float right[136], left[136];
    memcpy(right, lm, sizeof lm);
    memcpy(left, lm, sizeof lm);
    for (int i = 27; i < 36; i++) right[2 * i] += 15, left[2 * i] -= 15;
    align_estimate_pose(&p, right);
    float yr = p.yaw;
    align_estimate_pose(&p, left);
    CHECK(yr > 10 && p.yaw < -10);
    CHECK_NEAR(yr, -p.yaw, 0.5);
    /* nose tip nearer the eyes: looking up */
    memcpy(right, lm, sizeof lm);
    right[2 * 30 + 1] -= 12;
    align_estimate_pose(&p, right);
    CHECK(p.pitch > 5);

    place(lm, 100, 30, 50, 50);
    CHECK(align_plausible(lm, ALIGN_MAX_LANDMARK_ERROR));
    CHECK(align_landmark_error(lm) < 0.01f);
    /* landmarks that fill the detection box are a face; shrunk to 60% of it, not */
    float box[4] = {45, 40, 0, 0};
    float x0 = 1e9f, x1 = -1e9f;
    for (int i = 0; i < 68; i++) x0 = fminf(x0, lm[2 * i]), x1 = fmaxf(x1, lm[2 * i]);
    box[2] = box[3] = (x1 - x0) / 1.05f;
    CHECK(align_fills_box(lm, box));
    box[2] = box[3] = (x1 - x0) / 0.6f;
    CHECK(!align_fills_box(lm, box));
    /* a scrambled set of points is not a face */
    srand(3);
    float junk[136];
    for (int i = 0; i < 136; i++) junk[i] = (float)(rand() % 100);
    CHECK(!align_plausible(junk, ALIGN_MAX_LANDMARK_ERROR));
    /* eyes below the mouth (upside-down features in an upright layout) is not a face */
    memcpy(junk, lm, sizeof lm);
    for (int i = 36; i < 48; i++) junk[2 * i + 1] += 120;
    CHECK(!align_plausible(junk, ALIGN_MAX_LANDMARK_ERROR));
}

static void make_face(vs_face *f, const char *src, int frame, int index)
{
    memset(f, 0, sizeof *f);
    snprintf(f->source, sizeof f->source, "%s", src);
    snprintf(f->file, sizeof f->file, "x_%06d_%d.png", frame, index);
    f->frame = frame, f->index = index;
    f->size = 64;
    snprintf(f->centering, sizeof f->centering, "face");
    place(f->lm, 50, 3, 10, 20);
    for (int i = 0; i < 4; i++) f->box[i] = 10.5f + i;
    for (int i = 0; i < 6; i++) f->matrix[i] = 0.25 * i - 0.3;
    f->score = 0.875f, f->yaw = -12.5f, f->pitch = 3, f->roll = 1.5f, f->blur = 321.5f;
    f->has_embedding = 1;
    for (int i = 0; i < 128; i++) f->embedding[i] = (float)sin(i + frame + index);
}

static void test_face_meta(const char *tmp)
{
    vs_face f, g;
    make_face(&f, "vidéo ünïcode.mp4", 42, 1);
    char *json = face_to_json(&f);
    vs_err e;
    CHECK(face_from_json(&g, json, "test", &e) == 0);
    free(json);
    CHECK(!strcmp(g.source, f.source) && g.frame == 42 && g.index == 1 && g.size == 64);
    CHECK(g.has_embedding);
    for (int i = 0; i < 136; i++) CHECK_NEAR(g.lm[i], f.lm[i], 1e-4);
    for (int i = 0; i < 128; i++) CHECK_NEAR(g.embedding[i], f.embedding[i], 1e-6);
    CHECK_NEAR(g.yaw, -12.5, 1e-6);
    CHECK(face_from_json(&g, "{\"schema\":99}", "x.png", &e) == -1 && strstr(e.msg, "x.png"));
    CHECK(face_from_json(&g, "{not json", "y.png", &e) == -1 && strstr(e.msg, "y.png"));

    /* a face PNG carries its metadata */
    char path[512];
    snprintf(path, sizeof path, "%s/face.png", tmp);
    img *im = img_new(64, 64, 3);
    for (int i = 0; i < 64 * 64 * 3; i++) im->px[i] = (uint8_t)(i * 7);
    CHECK(face_save(path, im, &f, 3, &e) == 0);
    img *back = NULL;
    CHECK(face_load(&g, &back, path, &e) == 0);
    CHECK(back && !memcmp(back->px, im->px, 64 * 64 * 3));
    CHECK(g.frame == 42 && !strcmp(g.file, f.file));
    img_free(back);
    /* a PNG without metadata is refused with its name */
    snprintf(path, sizeof path, "%s/plain.png", tmp);
    CHECK(img_save_png(path, im, NULL, NULL, &e) == 0);
    CHECK(face_load(&g, NULL, path, &e) == -1 && strstr(e.msg, "plain.png"));
    unlink(path);
    img_free(im);
}

static void test_alignments(const char *tmp)
{
    al_file a;
    al_init(&a, "clip.mp4");
    a.width = 640, a.height = 480, a.fps = 25, a.frames_read = 10, a.complete = 1, a.size = 64;
    vs_face f;
    for (int i = 0; i < 5; i++) {
        make_face(&f, "clip.mp4", i / 2, i % 2);
        al_add(&a, &f);
    }
    char path[512];
    al_path(path, sizeof path, tmp, "some/dir/clip.mp4");
    CHECK(!strcmp(fs_basename(path), "clip.mp4.json"));
    vs_err e;
    CHECK(al_save(path, &a, &e) == 0);
    al_file b;
    CHECK(al_load(&b, path, &e) == 0);
    CHECK(b.n_faces == 5 && b.complete == 1 && b.width == 640 && b.frames_read == 10);
    for (int i = 0; i < 5; i++) CHECK(al_same_face(&a.faces[i], &b.faces[i]));
    /* prune keeps exactly the faces still present */
    vs_face present[2] = {a.faces[1], a.faces[4]};
    CHECK(al_prune(&b, present, 2) == 3);
    CHECK(b.n_faces == 2 && al_same_face(&b.faces[0], &a.faces[1]) &&
          al_same_face(&b.faces[1], &a.faces[4]));
    al_free(&b);

    /* which face folder an alignments file belongs to: the one it names, else by source */
    char dir_a[600], dir_b[600];
    snprintf(dir_a, sizeof dir_a, "%s/fa", tmp);
    snprintf(dir_b, sizeof dir_b, "%s/fb", tmp);
    CHECK(fs_mkdirs(dir_a, &e) == 0 && fs_mkdirs(dir_b, &e) == 0);
    CHECK(realpath(dir_a, a.faces_dir) != NULL);
    CHECK(al_belongs_to(&a, dir_a, NULL, 0));
    CHECK(!al_belongs_to(&a, dir_b, present, 2)); /* names another folder that exists */
    snprintf(a.faces_dir, sizeof a.faces_dir, "%s/moved-away", tmp);
    CHECK(al_belongs_to(&a, dir_b, present, 2)); /* the folder moved: same source */
    vs_face other = present[0];
    snprintf(other.source, sizeof other.source, "other.mp4");
    CHECK(!al_belongs_to(&a, dir_b, &other, 1));
    al_free(&a);
    /* damaged files are refused with their name */
    FILE *fp = fopen(path, "w");
    fputs("{\"schema\": 1, \"input\": ", fp);
    fclose(fp);
    CHECK(al_load(&b, path, &e) == -1 && strstr(e.msg, "clip.mp4.json"));
    unlink(path);
}

static void test_default_align_dir(const char *tmp)
{
    char proj[512], faces[600], ini[600], out[1200];
    snprintf(proj, sizeof proj, "%s/proj", tmp);
    snprintf(faces, sizeof faces, "%s/faces/a", proj);
    vs_err e;
    CHECK(fs_mkdirs(faces, &e) == 0);
    char want[1200];
    ex_default_align_dir(out, sizeof out, faces);
    snprintf(want, sizeof want, "%s/alignments", faces);
    CHECK(!strcmp(out, want)); /* no visage.ini yet */
    snprintf(ini, sizeof ini, "%s/visage.ini", proj);
    FILE *fp = fopen(ini, "w");
    fclose(fp);
    ex_default_align_dir(out, sizeof out, faces);
    snprintf(want, sizeof want, "%s/alignments", proj);
    CHECK(!strcmp(out, want));
    /* decided from the names alone: faces/b need not exist yet */
    snprintf(faces, sizeof faces, "%s/faces/b/", proj);
    ex_default_align_dir(out, sizeof out, faces);
    CHECK(!strcmp(out, want));
    /* relative to a project that is the current folder */
    char cwd[1024];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(proj) == 0);
    ex_default_align_dir(out, sizeof out, "faces/a");
    CHECK(!strcmp(out, "alignments"));
    ex_default_align_dir(out, sizeof out, "elsewhere/a");
    CHECK(!strcmp(out, "elsewhere/a/alignments"));
    CHECK(chdir(cwd) == 0);
}

static void test_sort(void)
{
    cu_face v[4];
    memset(v, 0, sizeof v);
    for (int i = 0; i < 4; i++) {
        make_face(&v[i].f, "s.mp4", i, 0);
        snprintf(v[i].name, sizeof v[i].name, "f%d.png", i);
    }
    v[0].f.blur = 5, v[1].f.blur = 50, v[2].f.blur = 1, v[3].f.blur = 20;
    cu_sort(v, 4, CU_BY_BLUR, NULL);
    CHECK(!strcmp(v[0].name, "f1.png") && !strcmp(v[3].name, "f2.png"));
    /* identity: two people, A = f0/f2, B = f1/f3: the chain puts each pair together */
    for (int i = 0; i < 4; i++) {
        for (int k = 0; k < 128; k++) v[i].f.embedding[k] = 0;
        int person = !strcmp(v[i].name, "f1.png") || !strcmp(v[i].name, "f3.png");
        v[i].f.embedding[person] = 1;
        v[i].f.embedding[2] = 0.01f * i;
    }
    cu_sort(v, 4, CU_BY_IDENTITY, NULL);
    CHECK(v[0].f.embedding[0] == v[1].f.embedding[0] && v[2].f.embedding[0] == v[3].f.embedding[0]);
    float ref[128] = {0};
    ref[1] = 1;
    cu_sort(v, 4, CU_BY_FACE, ref);
    CHECK(v[0].f.embedding[1] == 1 && v[1].f.embedding[1] == 1 && v[2].f.embedding[0] == 1);
    CHECK(v[0].key <= v[1].key && v[1].key <= v[2].key);
    cu_order o;
    char refp[64];
    vs_err e;
    CHECK(cu_parse_order(&o, refp, sizeof refp, "face:me.png", &e) == 0 && o == CU_BY_FACE &&
          !strcmp(refp, "me.png"));
    CHECK(cu_parse_order(&o, refp, sizeof refp, "colour", &e) == -1);
}

int main(void)
{
    char tmp[] = "/tmp/visage-test-align-XXXXXX";
    if (!mkdtemp(tmp)) return 1;
    test_umeyama();
    test_matrix_and_crop();
    test_pose_and_plausibility();
    test_face_meta(tmp);
    test_alignments(tmp);
    test_default_align_dir(tmp);
    test_sort();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
    return check_report("test_align");
}
