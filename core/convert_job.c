/* convert_job.c: the conversion job (convert_job.h): where each frame's faces come from
 * (alignments or detection, then the identity filter), the preview, one image, a folder of
 * images, and a video as three stages on bounded queues: decoding, swapping, encoding. */
#include "convert_job.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alignments.h"
#include "curate.h"
#include "extract.h"
#include "facenet.h"
#include "frame_queue.h"
#include "fsutil.h"
#include "smooth.h"
#include "train.h"

/* s as the inside of a JSON string: quotes and backslashes escaped, control characters dropped */
static void json_escape(char *out, size_t n, const char *s)
{
    size_t j = 0;
    for (; *s && j + 2 < n; s++) {
        if ((unsigned char)*s < 0x20) continue;
        if (*s == '"' || *s == '\\') out[j++] = '\\';
        out[j++] = *s;
    }
    out[j] = 0;
}

/* what a converted image says of itself */
static char *output_meta(const char *model_dir, long iteration, const char *source, int faces)
{
    char date[32], abs_model[PATH_MAX], qm[2 * PATH_MAX], qs[2 * PATH_MAX];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!realpath(model_dir, abs_model)) snprintf(abs_model, sizeof abs_model, "%s", model_dir);
    json_escape(qm, sizeof qm, abs_model);
    json_escape(qs, sizeof qs, source);
    size_t n = strlen(qm) + strlen(qs) + 512;
    char *s = malloc(n);
    if (!s) abort();
    char nf[32] = "";
    if (faces >= 0) snprintf(nf, sizeof nf, "\"faces\": %d, ", faces);
    snprintf(s, n,
             "{\"synthesized\": true, \"by\": \"visage %s\", \"what\": \"faces swapped by a "
             "face-swap model\", \"model\": \"%s\", \"iteration\": %ld, \"source\": \"%s\", "
             "%s\"date\": \"%s\"}",
             VISAGE_VERSION, qm, iteration, qs, nf, date);
    return s;
}

/* Where the faces come from: the alignments (matched by the input's file name and the frame),
 * or the face networks; and --filter / --nfilter, which keep only the right people. */
typedef struct face_source {
    al_file al;
    int have_al;
    ex_nets nets;
    int have_nets;
    char models[PATH_MAX];
    const nn_backend *be; /* the networks', the model's */
    const vs_config *cfg;
    char al_path[PATH_MAX];
    float (*keep)[128], (*drop)[128]; /* reference embeddings */
    int n_keep, n_drop;
} face_source;

#define MAX_FACES 64

/* a face found in a frame, before the identity filter */
typedef struct candidate {
    float lm[136];
    float box[4];
    float emb[128];
    int has_emb;
} candidate;

static int load_nets(face_source *fs, vs_err *e)
{
    if (fs->have_nets) return 0;
    if (ex_nets_load(&fs->nets, fs->models, fs->be, fs->cfg->threads, e)) return -1;
    fs->have_nets = 1;
    return 0;
}

/* the landmarks of the candidates --filter and --nfilter let through, into lm; their count */
/* Whether the alignments were made from frames of this size (a file of another video, or of this
 * one at another resolution, would put every face in the wrong place). */
static int check_alignments(const face_source *fs, int w, int h, const char *input, vs_err *e)
{
    if (!fs->have_al || !fs->al.width || (fs->al.width == w && fs->al.height == h)) return 0;
    return vs_fail(e,
                   "%s: the alignments are of %dx%d frames and %s's are %dx%d: extract it again, "
                   "or give its own alignments (--alignments)",
                   fs->al_path, fs->al.width, fs->al.height, input, w, h);
}

static int select_faces(float (*lm)[136], face_source *fs, const img *im, candidate *c, int n,
                        vs_err *e)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (fs->n_keep || fs->n_drop) {
            if (!c[i].has_emb) {
                if (load_nets(fs, e)) return -1;
                fn_box b = {c[i].box[0], c[i].box[1], c[i].box[2], c[i].box[3], 1.f};
                fn_embed(c[i].emb, fs->nets.emb, im, &b, c[i].lm);
            }
            if (!ex_identity_passes(c[i].emb, fs->keep, fs->n_keep, fs->drop, fs->n_drop,
                                    fs->cfg->similarity))
                continue;
        }
        memcpy(lm[k++], c[i].lm, sizeof lm[0]);
    }
    return k;
}

static void from_record(candidate *c, const vs_face *f)
{
    memcpy(c->lm, f->lm, sizeof c->lm);
    memcpy(c->box, f->box, sizeof c->box);
    memcpy(c->emb, f->embedding, sizeof c->emb);
    c->has_emb = f->has_embedding;
}

/* the faces the networks find in im */
static int detect(candidate *c, face_source *fs, const img *im, vs_err *e)
{
    if (load_nets(fs, e)) return -1;
    ex_found found[MAX_FACES];
    int k = ex_find_faces(found, MAX_FACES, &fs->nets, im, fs->cfg), n = 0;
    for (int i = 0; i < k; i++)
        if (found[i].verdict == EX_KEEP) {
            memcpy(c[n].lm, found[i].lm, sizeof c[n].lm);
            memcpy(c[n].box, found[i].box, sizeof c[n].box);
            c[n++].has_emb = 0;
        }
    return n;
}

/* The faces of an image (frame 0 of its file in the alignments), or of frame `frame` of a video
 * (its faces are sorted by source, frame and index: *cursor walks them as the frames go by). */
static int faces_of(float (*lm)[136], face_source *fs, const img *im, const char *path,
                    int64_t frame, int *cursor, vs_err *e)
{
    candidate *c = malloc(sizeof *c * MAX_FACES);
    if (!c) abort();
    int n = 0;
    if (!fs->have_al) {
        n = detect(c, fs, im, e);
    } else {
        const char *base = fs_basename(path);
        int start = cursor ? *cursor : 0;
        for (int i = start; i < fs->al.n_faces; i++) {
            const vs_face *f = &fs->al.faces[i];
            if (strcmp(fs_basename(f->source), base)) continue;
            if (cursor && f->frame > frame) break;
            if (cursor) *cursor = i + 1;
            if (f->frame == frame && n < MAX_FACES) from_record(&c[n++], f);
        }
    }
    if (n > 0) n = select_faces(lm, fs, im, c, n, e);
    free(c);
    return n;
}

static int imax(int a, int b)
{
    return a > b ? a : b;
}

/* All n faces of im swapped: n, or -1 with a message naming `what` and the face. */
static int swap_all(cv_swapper *sw, img *im, float (*lm)[136], int n, const char *what, vs_err *e)
{
    vs_err fe;
    int bad, k = cv_swap_frame(sw, im, (const float(*)[136])lm, n, &bad, &fe);
    if (k < 0 || bad >= 0) return vs_fail(e, "%s: %s", what, fe.msg);
    return k;
}

/* Converts the image at in into out: the number of faces swapped, or -1 with a message. */
static int convert_image(const char *in, const char *out, face_source *fs, cv_swapper *sw,
                         const char *model_dir, long iteration, int mark, vs_err *e)
{
    img *im = NULL;
    if (img_load(&im, in, e)) return -1;
    if (check_alignments(fs, im->w, im->h, in, e)) {
        img_free(im);
        return -1;
    }
    float(*lm)[136] = malloc(sizeof(float[136]) * MAX_FACES);
    if (!lm) abort();
    int n = faces_of(lm, fs, im, in, 0, NULL, e), rc = n;
    if (n > 0) rc = swap_all(sw, im, lm, n, in, e);
    if (rc >= 0) {
        char *meta = mark ? output_meta(model_dir, iteration, in, n) : NULL;
        if (img_save_png(out, im, meta ? CVJOB_META_KEY : NULL, meta, e)) rc = -1;
        free(meta);
    }
    free(lm);
    img_free(im);
    return rc;
}

/* --preview N: frame N of input (0 for an image) before and after, side by side, into out (a PNG),
 * so settings can be tried in seconds. The number of faces swapped, or -1 with a message. */
static int preview(const char *input, int64_t n, const char *out, face_source *fs, cv_swapper *sw,
                   const char *model_dir, long iteration, int mark, vs_err *e)
{
    vid_reader *r = NULL;
    img *f = NULL, *both = NULL;
    int64_t idx;
    int rc = -1, cursor = 0;
    float(*lm)[136] = malloc(sizeof(float[136]) * MAX_FACES);
    if (!lm) abort();
    if (vid_open(&r, input, e)) goto out;
    int got = n > 0 ? vid_skip(r, n, e) : 1;
    if (got == 1) got = vid_read(r, &f, &idx, e);
    if (got <= 0) {
        if (got == 0) vs_fail(e, "%s: has no frame %" PRId64, input, n);
        goto out;
    }
    both = img_new(2 * f->w, f->h, 3);
    for (int y = 0; y < f->h; y++)
        memcpy(both->px + (size_t)y * both->w * 3, f->px + (size_t)y * f->w * 3, (size_t)f->w * 3);
    int k = faces_of(lm, fs, f, input, idx, &cursor, e);
    if (k < 0 || (k > 0 && swap_all(sw, f, lm, k, input, e) < 0)) goto out;
    for (int y = 0; y < f->h; y++)
        memcpy(both->px + ((size_t)y * both->w + f->w) * 3, f->px + (size_t)y * f->w * 3,
               (size_t)f->w * 3);
    char *meta = mark ? output_meta(model_dir, iteration, input, k) : NULL;
    rc = img_save_png(out, both, meta ? CVJOB_META_KEY : NULL, meta, e) ? -1 : k;
    free(meta);
out:
    img_free(f), img_free(both);
    vid_close(r);
    free(lm);
    return rc;
}

static int keep_image(const char *name)
{
    return name[0] != '.' && vid_is_image_name(name);
}

int cvjob_parse_ranges(cvjob_ranges *r, const char *s)
{
    r->n = 0;
    while (*s) {
        char *end;
        long long a = strtoll(s, &end, 10), b = a;
        if (end == s || a < 0) return -1;
        s = end;
        if (*s == '-') {
            b = strtoll(s + 1, &end, 10);
            if (end == s + 1 || b < a) return -1;
            s = end;
        }
        if (r->n == 64) return -1;
        r->lo[r->n] = a, r->hi[r->n] = b, r->n++;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return r->n ? 0 : -1;
}

static int in_ranges(const cvjob_ranges *r, int64_t f)
{
    if (!r->n) return 1;
    for (int i = 0; i < r->n; i++)
        if (f >= r->lo[i] && f <= r->hi[i]) return 1;
    return 0;
}

typedef struct video_job {
    const char *input, *out, *model_dir;
    long iteration;
    face_source *fs;
    cv_swapper *sw;
    const vout_opts *vo;
    const cvjob_ranges *ranges;
    float smooth; /* the still-face cutoff, Hz; 0: no smoothing */
    int png;      /* out is a folder: one PNG a frame */
    int mark;     /* say in each output what it is (on unless --no-metadata) */
    job *j;       /* progress and stop */
    cvjob_status *st;
    const struct timespec *t0;
} video_job;

/* seconds since t0 (CLOCK_MONOTONIC) */
static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) * 1e-9;
}

static void publish(job *j, cvjob_status *st, const struct timespec *t0)
{
    st->elapsed = seconds_since(t0);
    job_publish(j, st);
}

/* the decoding stage: frames into q, in order; the error, if one stops it, in e */
typedef struct reader_stage {
    vid_reader *r;
    frame_queue *q;
    vs_err e;
    int failed;
} reader_stage;

static void *reader_main(void *arg)
{
    reader_stage *st = arg;
    for (;;) {
        fq_item it = {0};
        int got = vid_read(st->r, &it.frame, &it.index, &st->e);
        if (got <= 0) {
            img_free(it.frame);
            st->failed = got < 0;
            break;
        }
        it.pts = vid_frame_pts(st->r);
        if (fq_push(st->q, it)) { /* cancelled */
            img_free(it.frame);
            break;
        }
    }
    if (st->failed)
        fq_cancel(st->q);
    else
        fq_close(st->q);
    return NULL;
}

/* the encoding stage */
typedef struct writer_stage {
    vout *w;
    const char *png_dir, *png_stem, *meta; /* PNG frames instead of a video */
    frame_queue *q;
    vs_err e;
    int failed;
    int64_t written;
} writer_stage;

static void *writer_main(void *arg)
{
    writer_stage *st = arg;
    fq_item it;
    while (fq_pop(st->q, &it) == 1) {
        int rc;
        if (st->png_dir) {
            char path[PATH_MAX + 300];
            snprintf(path, sizeof path, "%s/%s_%06" PRId64 ".png", st->png_dir, st->png_stem,
                     it.index);
            rc = img_save_png(path, it.frame, st->meta ? CVJOB_META_KEY : NULL, st->meta, &st->e);
        } else {
            rc = vout_write(st->w, it.frame, it.pts, &st->e);
        }
        img_free(it.frame);
        if (rc) {
            st->failed = 1;
            fq_cancel(st->q);
            break;
        }
        st->written++;
    }
    return NULL;
}

#define STAGE_QUEUE 4 /* frames between two stages */

/* Converts a video into j->out: decoding, swapping and encoding run at the same time, with
 * bounded queues between them. 0, or -1 with a message (nothing left behind). */
static int convert_video(const video_job *j, int64_t *frames_out, int64_t *faces_out, vs_err *e)
{
    vid_reader *r = NULL;
    vout *w = NULL;
    int rc = -1, cursor = 0, threads = 0;
    int64_t faces = 0, done = 0;
    float(*lm)[136] = malloc(sizeof(float[136]) * MAX_FACES);
    if (!lm) abort();
    lm_smoother *sm = lms_new(j->smooth, 5.0f);
    frame_queue *qin = fq_new(STAGE_QUEUE), *qout = fq_new(STAGE_QUEUE);
    reader_stage rs = {.q = qin};
    writer_stage ws = {.q = qout};
    pthread_t rt, wt;
    if (vid_open(&r, j->input, e)) goto out;
    const vid_info *in = vid_get_info(r);
    if (check_alignments(j->fs, in->w, in->h, j->input, e)) goto out;
    char *comment = j->mark ? output_meta(j->model_dir, j->iteration, j->input, -1) : NULL;
    char stem[256];
    const char *base = fs_basename(j->input), *dot = strrchr(base, '.');
    snprintf(stem, sizeof stem, "%.*s", (int)(dot ? dot - base : (long)strlen(base)), base);
    int orc;
    ws.meta = comment; /* freed at the end */
    if (j->png) {
        orc = fs_mkdirs(j->out, e);
        ws.png_dir = j->out, ws.png_stem = stem;
    } else {
        vout_opts vo = *j->vo;
        vo.comment = comment;
        orc =
            vout_open(&w, j->out, in->w, in->h, in->tb_num, in->tb_den, in->fps, j->input, &vo, e);
    }
    if (orc) goto out;
    rs.r = r, ws.w = w;
    VS_CHECK(pthread_create(&rt, NULL, reader_main, &rs) == 0);
    VS_CHECK(pthread_create(&wt, NULL, writer_main, &ws) == 0);
    threads = 1;
    j->st->total = in->frames;
    j->st->png_frames = j->png;
    fq_item it;
    int got;
    while ((got = fq_pop(qin, &it)) == 1) {
        if (job_should_stop(j->j)) {
            img_free(it.frame);
            vs_fail(e, "%s: stopped; nothing was written", j->out);
            goto out;
        }
        if (in_ranges(j->ranges, it.index)) {
            int n = faces_of(lm, j->fs, it.frame, j->input, it.index, &cursor, e);
            if (n < 0) {
                img_free(it.frame);
                goto out;
            }
            lms_apply(sm, lm, n, (double)it.pts * in->tb_num / in->tb_den);
            int bad;
            vs_err fe;
            if (n > 0)
                faces +=
                    imax(0, cv_swap_frame(j->sw, it.frame, (const float(*)[136])lm, n, &bad, &fe));
        }
        if (fq_push(qout, it)) { /* the writer failed */
            img_free(it.frame);
            break;
        }
        done++;
        j->st->done = done, j->st->faces = faces;
        publish(j->j, j->st, j->t0);
    }
    if (got == 1) fq_cancel(qin); /* the writer stopped early: so does the reader */
    fq_close(qout);
    pthread_join(rt, NULL);
    pthread_join(wt, NULL);
    threads = 0;
    if (rs.failed || got < 0) {
        *e = rs.failed ? rs.e : ws.e;
        goto out;
    }
    if (ws.failed) {
        *e = ws.e;
        goto out;
    }
    rc = w ? vout_close(w, e) : 0;
    w = NULL;
    *frames_out = done, *faces_out = faces;
out:
    if (threads) { /* stopped or failed here: stop the others, then wait for them */
        fq_cancel(qin);
        fq_cancel(qout);
        pthread_join(rt, NULL);
        pthread_join(wt, NULL);
    }
    vout_abort(w);
    free((char *)ws.meta);
    vid_close(r);
    fq_free(qin);
    fq_free(qout);
    free(lm);
    lms_free(sm);
    return rc;
}

/* ---- the job --------------------------------------------------------------------------------- */

static void warn(cvjob_status *st, const char *msg)
{
    snprintf(st->warning[st->warnings % CVJOB_WARNINGS], sizeof st->warning[0], "%s", msg);
    st->warnings++;
}

/* Faces deleted from the folder they were extracted into are not swapped: the alignments' faces
 * are kept to those whose PNG is still there (matched by their metadata, so sorted or renamed
 * files count), in memory; `visage prune` does the same to the file. When the folder is gone, or
 * holds a PNG without metadata that cannot be matched, every face stays. Returns how many left. */
static int leave_deleted_alone(al_file *al)
{
    if (!al->faces_dir[0] || !fs_is_dir(al->faces_dir)) return 0;
    cu_face *v;
    int n, n_other;
    char **others;
    vs_err e;
    if (cu_load(&v, &n, &others, &n_other, al->faces_dir, &e)) return 0;
    int dropped = 0;
    if (!n_other) {
        vs_face *present = vs_calloc((size_t)n + 1, sizeof *present);
        for (int i = 0; i < n; i++) present[i] = v[i].f;
        dropped = al_prune(al, present, n);
        free(present);
    }
    if (others) fs_free_list(others, n_other);
    free(v);
    return dropped;
}

/* The faces' source: the alignments file (given, or the project's for this input) or the face
 * networks, and the reference embeddings of --filter / --nfilter. */
static int open_faces(face_source *fs, int *left_alone, float (*refs)[128], const cvjob_request *rq,
                      vs_err *e)
{
    memset(fs, 0, sizeof *fs);
    fs->cfg = &rq->cfg;
    fs->be = rq->be;
    char path[PATH_MAX];
    if (rq->alignments)
        snprintf(path, sizeof path, "%s", rq->alignments);
    else
        al_path(path, sizeof path, "alignments", rq->input);
    if (rq->alignments || fs_exists(path)) {
        if (al_load(&fs->al, path, e)) return -1;
        fs->have_al = 1;
        snprintf(fs->al_path, sizeof fs->al_path, "%s", path);
        *left_alone = leave_deleted_alone(&fs->al);
    }
    int n_refs = rq->n_keep + rq->n_drop;
    if ((!fs->have_al || n_refs) &&
        ex_find_models(fs->models, sizeof fs->models, rq->cfg.models, rq->exe_dir, e))
        return -1;
    fs->keep = refs, fs->drop = refs + rq->n_keep, fs->n_keep = rq->n_keep, fs->n_drop = rq->n_drop;
    for (int i = 0; i < n_refs; i++) {
        const char *ref = i < rq->n_keep ? rq->keep_refs[i] : rq->drop_refs[i - rq->n_keep];
        if (load_nets(fs, e) || ex_reference_embedding(refs[i], &fs->nets, ref, &rq->cfg, e))
            return -1;
    }
    return 0;
}

static void close_faces(face_source *fs)
{
    if (fs->have_al) al_free(&fs->al);
    if (fs->have_nets) ex_nets_free(&fs->nets);
}

/* out/NAME.png for each image of the folder: failures are counted and said, the rest go on */
static int convert_folder(const cvjob_request *rq, face_source *fs, cv_swapper *sw, long iteration,
                          job *j, cvjob_status *st, const struct timespec *t0, vs_err *e)
{
    char **names = NULL;
    int count = 0;
    if (fs_list_dir(&names, &count, rq->input, keep_image, e) || fs_mkdirs(rq->output, e))
        return -1;
    if (count == 0) {
        fs_free_list(names, count);
        return vs_fail(e, "%s: no images in this folder", rq->input);
    }
    st->total = count;
    for (int i = 0; i < count && !job_should_stop(j); i++) {
        char in[PATH_MAX + 300], target[PATH_MAX + 300];
        snprintf(in, sizeof in, "%s/%s", rq->input, names[i]);
        const char *dot = strrchr(names[i], '.');
        snprintf(target, sizeof target, "%s/%.*s.png", rq->output,
                 (int)(dot ? dot - names[i] : (long)strlen(names[i])), names[i]);
        vs_err ie;
        int n = convert_image(in, target, fs, sw, rq->model_dir, iteration, rq->mark, &ie);
        if (n < 0) {
            warn(st, ie.msg);
            st->failed++;
        } else {
            st->faces += n, st->done++;
        }
        publish(j, st, t0);
    }
    fs_free_list(names, count);
    return 0;
}

int cvjob_run(job *j, void *arg, vs_err *e)
{
    const cvjob_request *rq = arg;
    cvjob_status st;
    memset(&st, 0, sizeof st);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (vid_probe(&st.kind, rq->input, e)) return -1;
    if (st.kind == VS_MEDIA_NONE)
        return vs_fail(e, "%s: not a video, an image or a folder", rq->input);
    if (rq->preview_frame >= 0 && st.kind == VS_MEDIA_DIR)
        return vs_fail(e, "%s: a preview takes a video or an image, not a folder", rq->input);
    publish(j, &st, &t0);

    face_source fs;
    float(*refs)[128] = vs_malloc(sizeof(float[128]) * (size_t)(rq->n_keep + rq->n_drop + 1));
    model *m = NULL;
    cv_swapper *sw = NULL;
    long iteration = 0;
    int rc = -1;
    if (open_faces(&fs, &st.deleted, refs, rq, e) ||
        train_load_model(&m, &iteration, rq->model_dir, rq->be, e))
        goto done;
    sw = cv_swapper_new(m, &rq->co);
    st.phase = CVJOB_RUNNING;
    st.work_started = seconds_since(&t0);
    publish(j, &st, &t0);
    if (rq->preview_frame >= 0) {
        st.total = 1;
        int n = preview(rq->input, rq->preview_frame, rq->output, &fs, sw, rq->model_dir, iteration,
                        rq->mark, e);
        if (n < 0) goto done;
        st.faces = n, st.done = 1;
        snprintf(st.written, sizeof st.written, "%s", rq->output);
        rc = 0;
    } else if (st.kind == VS_MEDIA_VIDEO) {
        const char *out = rq->output;
        video_job vj = {.input = rq->input,
                        .out = out,
                        .model_dir = rq->model_dir,
                        .iteration = iteration,
                        .fs = &fs,
                        .sw = sw,
                        .vo = &rq->vo,
                        .ranges = &rq->ranges,
                        .smooth = rq->smooth,
                        .png = fs_is_dir(out) || out[strlen(out) - 1] == '/',
                        .mark = rq->mark,
                        .j = j,
                        .st = &st,
                        .t0 = &t0};
        int64_t frames = 0, nfaces = 0;
        if (convert_video(&vj, &frames, &nfaces, e)) goto done;
        st.done = frames, st.faces = nfaces;
        snprintf(st.written, sizeof st.written, "%s", out);
        rc = 0;
    } else if (st.kind == VS_MEDIA_IMAGE) {
        const char *base = fs_basename(rq->input), *dot = strrchr(base, '.');
        if (fs_is_dir(rq->output))
            snprintf(st.written, sizeof st.written, "%s/%.*s.png", rq->output,
                     (int)(dot ? dot - base : (long)strlen(base)), base);
        else
            snprintf(st.written, sizeof st.written, "%s", rq->output);
        st.total = 1;
        int n =
            convert_image(rq->input, st.written, &fs, sw, rq->model_dir, iteration, rq->mark, e);
        if (n < 0) goto done;
        st.faces = n, st.done = 1;
        rc = 0;
    } else {
        snprintf(st.written, sizeof st.written, "%s", rq->output);
        rc = convert_folder(rq, &fs, sw, iteration, j, &st, &t0, e);
    }
done:
    st.phase = CVJOB_DONE;
    publish(j, &st, &t0);
    cv_swapper_free(sw);
    model_free(m);
    close_faces(&fs);
    free(refs);
    return rc;
}
