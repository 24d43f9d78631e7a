/* extract.c: the extraction job (see extract.h). */
#include "extract.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "align.h"
#include "alignments.h"
#include "face.h"
#include "facenet.h"
#include "frame_queue.h"
#include "fsutil.h"
#include "models.h"
#include "video.h"

#define READ_AHEAD 16 /* decoded frames waiting for the networks */
#define SAVE_AHEAD 64 /* faces waiting to be written */
#define GPU_WRITERS 4 /* threads writing faces when the networks run on a GPU */
/* A killed run (power cut, OOM) keeps most of its alignments: the file is saved every minute,
 * or less often when saving takes long (at most a tenth of the time goes to it, even for the
 * thousands of faces of an hour of video). The faces themselves are saved as they are found. */
#define SAVE_ALIGNMENTS_SECONDS 60.0

typedef struct ex_ctx {
    const ex_request *rq;
    job *j;
    ex_status st;
    double t0;
    ex_nets nets;
    align_centering centering;
    float (*filter)[128];
    float (*nfilter)[128];
    int n_filter, n_nfilter;
    ex_face *faces; /* of the batch (ex_find_batch) */
    int faces_cap;
    int64_t order; /* of the items given to the writers (ex_writer) */
} ex_ctx;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int ex_find_models(char *out, size_t n, const char *configured, const char *exe_dir, vs_err *e)
{
    const char *probe = "ssd_mobilenetv1_model-weights_manifest.json";
    char p[PATH_MAX + 64];
    if (configured && configured[0]) {
        snprintf(p, sizeof p, "%s/%s", configured, probe);
        if (!fs_exists(p))
            return vs_fail(e,
                           "%s: no face models here (configured models folder); run 'make models' "
                           "in the visage source folder, or fix [general] models",
                           configured);
        snprintf(out, n, "%s", configured);
        return 0;
    }
    const char *env = getenv("VISAGE_MODELS");
    char cands[5][PATH_MAX];
    int nc = 0;
    if (env && env[0]) snprintf(cands[nc++], PATH_MAX, "%s", env);
    snprintf(cands[nc++], PATH_MAX, "models");
    if (exe_dir) {
        snprintf(cands[nc++], PATH_MAX, "%s/models", exe_dir);
        snprintf(cands[nc++], PATH_MAX, "%s/../models",
                 exe_dir); /* build/visage in the source tree */
        snprintf(cands[nc++], PATH_MAX, "%s/../share/visage/models", exe_dir);
    }
    for (int i = 0; i < nc; i++) {
        snprintf(p, sizeof p, "%s/%s", cands[i], probe);
        if (fs_exists(p)) {
            snprintf(out, n, "%s", cands[i]);
            return 0;
        }
    }
    char looked[4096] = "";
    for (int i = 0; i < nc; i++)
        snprintf(looked + strlen(looked), sizeof looked - strlen(looked), "%s%s", i ? ", " : "",
                 cands[i]);
    return vs_fail(e,
                   "face models not found (looked in %s): run 'make models' in the visage "
                   "source folder, or set VISAGE_MODELS",
                   looked);
}

void ex_default_align_dir(char *out, size_t n, const char *out_dir)
{
    /* PROJECT/faces/X -> PROJECT/alignments, when PROJECT/visage.ini exists (textually: faces/X
     * need not exist yet) */
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", out_dir);
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/') p[--len] = 0;
    char *last = strrchr(p, '/');
    if (last) {
        *last = 0; /* p = PROJECT/faces */
        if (!strcmp(fs_basename(p), "faces")) {
            char *cut = strrchr(p, '/');
            char project[PATH_MAX], ini[PATH_MAX + 16];
            if (cut)
                snprintf(project, sizeof project, "%.*s", (int)(cut - p), p);
            else
                snprintf(project, sizeof project, ".");
            if (!project[0]) snprintf(project, sizeof project, "/");
            snprintf(ini, sizeof ini, "%s/visage.ini", project);
            if (fs_exists(ini)) {
                if (!strcmp(project, "."))
                    snprintf(out, n, "alignments");
                else
                    snprintf(out, n, "%s/alignments", project);
                return;
            }
        }
    }
    snprintf(out, n, "%s/alignments", out_dir);
}

int ex_nets_load(ex_nets *n, const char *models_dir, const nn_backend *be, int threads, vs_err *e)
{
    memset(n, 0, sizeof *n);
    nn_cpu_set_threads(threads);
    if (models_verify(models_dir, e)) return -1;
    return ex_nets_open(n, models_dir, be, e);
}

static void warn(ex_ctx *c, const char *msg)
{
    snprintf(c->st.warning[c->st.warnings % EX_WARNINGS], sizeof c->st.warning[0], "%s", msg);
    c->st.warnings++;
}

static int publish(ex_ctx *c)
{
    c->st.elapsed = now() - c->t0;
    return job_publish(c->j, &c->st);
}

int ex_reference_embedding(float out[128], ex_nets *n, const char *path, const vs_config *cfg,
                           vs_err *e)
{
    vs_face f;
    vs_err ignore;
    if (face_load(&f, NULL, path, &ignore) == 0) {
        if (!f.has_embedding) return vs_fail(e, "%s: this face has no identity embedding", path);
        memcpy(out, f.embedding, sizeof f.embedding);
        return 0;
    }
    img *im = NULL;
    if (img_load(&im, path, e)) return vs_failctx(e, "reference face");
    ex_found found[EX_MAX_DETECTIONS];
    int count = ex_find_faces(found, EX_MAX_DETECTIONS, n, im, cfg), faces = 0, which = -1;
    for (int i = 0; i < count; i++)
        if (found[i].verdict == EX_KEEP) faces++, which = which < 0 ? i : which;
    int rc = 0;
    if (faces != 1)
        rc = vs_fail(
            e,
            "%s: %s; give a picture of the reference person alone (or a face PNG made "
            "by visage extract)",
            path, faces ? "more than one face in this picture" : "no face found in this picture");
    else {
        fn_box b = ex_found_box(&found[which]);
        fn_embed(out, n->emb, im, &b, found[which].lm);
    }
    img_free(im);
    return rc;
}

static void stem_of(char *out, size_t n, const char *path)
{
    const char *base = fs_basename(path);
    while (*base == '.') base++; /* never a hidden name */
    snprintf(out, n, "%s", base);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

/* FNV-1a: a short, stable tag of a path for names that would otherwise collide. */
static uint32_t path_hash(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (const char *s = a; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    h = (h ^ '\n') * 16777619u;
    for (const char *s = b; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The file name of a face: STEM_FRAME_INDEX.png, or STEM-TAG_FRAME_INDEX.png when the plain name
 * is already the face of another source in this folder (clip.mp4 and clip.mkv, two folders'
 * x.jpg): a face is never overwritten by another source's. */
static int face_file_name(char *out, size_t n, const char *dir, const char *source, int64_t frame,
                          int index, vs_err *e)
{
    char stem[256];
    stem_of(stem, sizeof stem, source);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt)
            snprintf(out, n, "%.200s-%06x_%06lld_%d.png", stem,
                     (unsigned)(path_hash(source, "") & 0xffffff), (long long)frame, index);
        else
            snprintf(out, n, "%.200s_%06lld_%d.png", stem, (long long)frame, index);
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, out);
        if (!fs_exists(path)) return 0;
        vs_face old;
        vs_err ignore;
        if (face_load(&old, NULL, path, &ignore) == 0 && !strcmp(old.source, source)) return 0;
    }
    return vs_fail(e, "%s/%s: a face of another source already has this name", dir, out);
}

/* Whether s is valid UTF-8 (the metadata is JSON, which holds only UTF-8 text). */
static int utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80             ? 0
                : (*p & 0xe0) == 0xc0 ? 1
                : (*p & 0xf0) == 0xe0 ? 2
                : (*p & 0xf8) == 0xf0 ? 3
                                      : -1;
        if (n < 0 || (n == 1 && *p < 0xc2)) return 0;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xc0) != 0x80) return 0;
    }
    return 1;
}

/* The faces of the frames it[0 .. n) (one batch, ex_find_batch), counted, and frame by frame in
 * order each saved face (its crop and metadata) to the writer, and after them a marker saying the
 * frame is done (frame NULL). folder: it[i].data is the image's path, its faces are frame 0 of
 * it; otherwise the frames are it[i].index of `source`. 0, or -1 when the writer has stopped. */
static int process_batch(ex_ctx *c, const fq_item *it, int n, const char *source, int folder,
                         frame_queue *out)
{
    const vs_config *cfg = &c->rq->cfg;
    img *frames[EX_MAX_BATCH];
    VS_CHECK(n <= EX_MAX_BATCH);
    for (int i = 0; i < n; i++) frames[i] = it[i].frame;
    ex_filter flt = {c->filter, c->nfilter, c->n_filter, c->n_nfilter};
    int count;
    ex_find_batch(&c->faces, &count, &c->faces_cap, &c->nets, frames, n, cfg, c->centering, &flt);
    const size_t per = (size_t)cfg->size * cfg->size * 3;
    int rc = 0, k = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *src = folder ? (const char *)it[i].data : source;
        int64_t frame_index = folder ? 0 : it[i].index;
        c->st.frames_read++;
        for (; k < count && c->faces[k].frame == i && rc == 0; k++) {
            const ex_face *x = &c->faces[k];
            c->st.faces_found++;
            switch (x->fate) {
            case EX_DROP_SIZE: c->st.filtered_size++; continue;
            case EX_DROP_LANDMARKS: c->st.filtered_landmarks++; continue;
            case EX_DROP_MAX: c->st.filtered_max++; continue;
            case EX_DROP_BLUR: c->st.filtered_blur++; continue;
            case EX_DROP_IDENTITY: c->st.filtered_identity++; continue;
            case EX_SAVED: break;
            }
            vs_face *f = vs_calloc(1, sizeof *f);
            memcpy(f->lm, x->found.lm, sizeof f->lm);
            memcpy(f->matrix, x->matrix, sizeof f->matrix);
            f->blur = x->blur;
            memcpy(f->embedding, x->embedding, sizeof f->embedding);
            f->has_embedding = 1;
            snprintf(f->source, sizeof f->source, "%s", src);
            f->frame = frame_index;
            f->index = x->index;
            memcpy(f->box, x->found.box, sizeof f->box);
            f->score = x->found.score;
            f->size = cfg->size;
            snprintf(f->centering, sizeof f->centering, "%s", align_centering_name(c->centering));
            align_pose pose;
            align_estimate_pose(&pose, f->lm);
            f->yaw = pose.yaw, f->pitch = pose.pitch, f->roll = pose.roll;
            fq_item face = {.frame = img_new(cfg->size, cfg->size, 3),
                            .index = frame_index,
                            .pts = c->order++,
                            .data = f};
            memcpy(face.frame->px, x->crop, per);
            if (fq_push(out, face)) {
                img_free(face.frame), free(f);
                rc = -1;
                break;
            }
            c->st.kept++;
        }
        fq_item done = {.index = frame_index, .pts = c->order++};
        if (rc == 0 && fq_push(out, done)) rc = -1;
    }
    return rc;
}

/* ---- the stages around the networks ----------------------------------------------------------
 * A reader thread decodes (a video, with --every) or loads (a folder's images) into a bounded
 * queue; the job's own thread runs the networks on batches from it (process_batch); a writer
 * thread saves the faces and keeps the alignments, so decoding, the GPU (or the CPU's networks)
 * and PNG encoding go on at the same time. */

/* Saves the alignments now and then during a long input (see SAVE_ALIGNMENTS_SECONDS). */
typedef struct saver {
    double last, cost;
} saver;

static int maybe_save(saver *sv, const al_file *al, const char *path, vs_err *e)
{
    if (now() - sv->last <= fmax(SAVE_ALIGNMENTS_SECONDS, 10 * sv->cost)) return 0;
    double t = now();
    if (al_save(path, al, e)) return -1;
    sv->last = now();
    sv->cost = sv->last - t;
    return 0;
}

/* The writers: a few threads that save faces at the same time (PNG encoding and an fsync each),
 * and keep the alignments in order: each item carries its place in the order (fq_item.pts), and
 * what touches the alignments (adding a face, counting a frame, saving the file now and then)
 * waits for its turn. */
typedef struct ex_writer {
    const ex_request *rq;
    al_file *al;        /* the writers' alone until they are joined */
    const char *al_out; /* saved now and then there (videos); NULL: only at the end */
    frame_queue *q;
    pthread_mutex_t mu;
    pthread_cond_t turn;
    int64_t next; /* the place whose turn it is */
    saver sv;
    vs_err e; /* the first failure */
    int failed;
} ex_writer;

static void *writer_main(void *arg)
{
    ex_writer *w = arg;
    fq_item it;
    while (fq_pop(w->q, &it) == 1) {
        int rc = 0;
        vs_face *f = it.data;
        vs_err le;
        if (it.frame) { /* a face: named and saved beside the other writers */
            char path[PATH_MAX + 256];
            rc = face_file_name(f->file, sizeof f->file, w->rq->out_dir, f->source, f->frame,
                                f->index, &le);
            if (rc == 0) {
                snprintf(path, sizeof path, "%s/%s", w->rq->out_dir, f->file);
                rc = face_save(path, it.frame, f, w->rq->cfg.png_compression, &le);
            }
        }
        pthread_mutex_lock(&w->mu);
        while (!w->failed && w->next != it.pts) pthread_cond_wait(&w->turn, &w->mu);
        if (!w->failed) {
            if (rc == 0 && it.frame)
                al_add(w->al, f);
            else if (rc == 0) { /* a frame is done */
                w->al->frames_read++;
                if (w->al_out) rc = maybe_save(&w->sv, w->al, w->al_out, &le);
            }
            if (rc) {
                w->failed = 1;
                w->e = le;
                fq_cancel(w->q);
            }
            w->next++;
        }
        int stop = w->failed;
        pthread_cond_broadcast(&w->turn);
        pthread_mutex_unlock(&w->mu);
        img_free(it.frame);
        free(it.data);
        if (stop) break;
    }
    return NULL;
}

typedef struct ex_reader {
    vid_reader *r;   /* a video or an image, or: */
    const char *dir; /* a folder of images */
    char **names;
    int n_names;
    int every; /* videos: every Nth frame */
    frame_queue *q;
    atomic_int stop; /* set by the job's thread: skip no further */
    int got;         /* videos: the last read's result (1 while not at the end) */
    vs_err e;        /* when got < 0 */
    int drained;     /* set by run_stages: every frame read went through the networks (the
                        reader runs ahead: at the end of a stopped run it may have read more) */
} ex_reader;

static void *reader_main(void *arg)
{
    ex_reader *rd = arg;
    if (rd->dir) { /* one bad picture in a folder of thousands: a warning (frame NULL), go on */
        for (int i = 0; i < rd->n_names && !atomic_load(&rd->stop); i++) {
            char path[PATH_MAX + 256];
            snprintf(path, sizeof path, "%s/%s", rd->dir, rd->names[i]);
            fq_item it = {.index = i};
            vs_err le;
            if (!utf8_valid(rd->names[i]))
                vs_fail(&le, "%s: skipped: its name is not valid UTF-8 (rename it)", path);
            else if (img_load(&it.frame, path, &le) == 0)
                le.msg[0] = 0;
            it.data = vs_strdup(it.frame ? path : le.msg);
            if (fq_push(rd->q, it)) {
                img_free(it.frame), free(it.data);
                break;
            }
        }
        fq_close(rd->q);
        return NULL;
    }
    while (!atomic_load(&rd->stop)) {
        fq_item it = {0};
        rd->got = vid_read(rd->r, &it.frame, &it.index, &rd->e);
        if (rd->got <= 0) break;
        if (fq_push(rd->q, it)) {
            img_free(it.frame);
            break;
        }
        /* --every: skip in steps, so that a stop never waits long */
        for (int64_t left = rd->every - 1; left > 0 && rd->got > 0 && !atomic_load(&rd->stop);
             left -= 25)
            rd->got = vid_skip(rd->r, left < 25 ? left : 25, &rd->e);
        if (rd->got <= 0) break;
    }
    fq_close(rd->q); /* the frames before an error are still extracted */
    return NULL;
}

/* Runs the three stages over one input until it ends, fails or the job is stopped. The faces go
 * into al. 0, or -1 when a face or the alignments could not be written (e); a stop is 0 with
 * al->frames_read short of the input. */
static int run_stages(ex_ctx *c, al_file *al, ex_reader *rd, const char *al_out, const char *source,
                      vs_err *e)
{
    frame_queue *qin = fq_new(READ_AHEAD), *qout = fq_new(SAVE_AHEAD);
    /* the first save of the alignments comes after a few seconds, so that even a short run
     * killed by a power cut leaves them */
    ex_writer w = {.rq = c->rq,
                   .al = al,
                   .al_out = al_out,
                   .q = qout,
                   .sv = {now() - SAVE_ALIGNMENTS_SECONDS + 5, 0}};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.turn, NULL);
    c->order = 0;
    rd->q = qin;
    rd->got = 1;
    /* one writer keeps up with the CPU's networks (and leaves them the cores); a GPU finds faces
     * faster than one thread can encode and fsync PNGs */
    const int writers = c->nets.be->host_memory ? 1 : GPU_WRITERS;
    pthread_t rt, wt[GPU_WRITERS];
    VS_CHECK(pthread_create(&rt, NULL, reader_main, rd) == 0);
    for (int i = 0; i < writers; i++) VS_CHECK(pthread_create(&wt[i], NULL, writer_main, &w) == 0);
    const int folder = rd->dir != NULL;
    int rc = 0, got = 1;
    fq_item batch[EX_MAX_BATCH];
    while (rc == 0 && got == 1 && !publish(c)) {
        int n = 0;
        while (n < c->nets.batch && (got = fq_pop(qin, &batch[n])) == 1) {
            if (!batch[n].frame) { /* a folder's picture that could not be read */
                warn(c, batch[n].data);
                free(batch[n].data);
                c->st.frame = batch[n].index + 1;
                continue;
            }
            c->st.frame = batch[n].index + 1;
            n++;
        }
        if (n) rc = process_batch(c, batch, n, source, folder, qout);
        for (int i = 0; i < n; i++) img_free(batch[i].frame), free(batch[i].data);
    }
    rd->drained = rc == 0 && got == 0;
    atomic_store(&rd->stop, 1);
    fq_cancel(qin); /* stopped or failed: the reader stops too (after the end: no matter) */
    if (rc == 0) fq_close(qout);
    pthread_join(rt, NULL);
    for (int i = 0; i < writers; i++) pthread_join(wt[i], NULL);
    pthread_cond_destroy(&w.turn);
    pthread_mutex_destroy(&w.mu);
    fq_free(qin);
    fq_free(qout);
    if (w.failed) {
        *e = w.e;
        return -1;
    }
    VS_CHECK(rc == 0); /* process_batch fails only when the writer has */
    return 0;
}

/* A video or a single image. Returns -1 for a failure that ends the run (an output that cannot be
 * written); a damaged or unreadable input sets *bad (its message in bad_msg) and returns 0, so the
 * other inputs are still extracted. */
static int extract_media(ex_ctx *c, al_file *al, const char *path, const char *al_out, int *bad,
                         vs_err *bad_msg, vs_err *e)
{
    ex_reader rd = {.every = c->rq->cfg.every};
    if (vid_open(&rd.r, path, bad_msg)) {
        *bad = 1;
        return 0;
    }
    const vid_info *info = vid_get_info(rd.r);
    al->width = info->w, al->height = info->h, al->fps = info->fps;
    c->st.frames_total = info->frames;
    int rc = run_stages(c, al, &rd, al_out, path, e);
    if (rc == 0 && rd.drained && rd.got == 0 && !vid_damaged(rd.r)) al->complete = 1;
    if (rc == 0 && rd.drained && (rd.got < 0 || vid_damaged(rd.r))) {
        *bad = 1;
        if (rd.got < 0)
            *bad_msg = rd.e;
        else
            vs_fail(bad_msg,
                    "%s: the file is damaged or cut short after frame %lld; the faces of "
                    "the frames before were kept",
                    path, (long long)c->st.frame);
        c->st.frames_total = c->st.frame;
    }
    vid_close(rd.r);
    return rc;
}

/* A folder of images: each image is a source of its own; one that cannot be read is a warning. */
static int extract_folder(ex_ctx *c, al_file *al, const char *dir, int *bad, vs_err *bad_msg,
                          vs_err *e)
{
    ex_reader rd = {.dir = dir};
    if (fs_list_dir(&rd.names, &rd.n_names, dir, vid_is_image_name, bad_msg)) {
        *bad = 1;
        return 0;
    }
    if (rd.n_names == 0) {
        fs_free_list(rd.names, rd.n_names);
        *bad = 1;
        vs_fail(bad_msg,
                "%s: no images in this folder (looked for .jpg, .jpeg, .png, .bmp, .ppm, "
                ".webp, .tif)",
                dir);
        return 0;
    }
    c->st.frames_total = rd.n_names;
    int rc = run_stages(c, al, &rd, NULL, dir, e);
    if (rc == 0 && rd.drained && c->st.frame == rd.n_names) al->complete = 1;
    fs_free_list(rd.names, rd.n_names);
    if (rc == 0 && al->frames_read == 0) {
        *bad = 1;
        vs_fail(bad_msg, "%s: none of the %d images in this folder could be read", dir, rd.n_names);
    }
    return rc;
}

static int load_all(ex_ctx *c, vs_err *e)
{
    const ex_request *rq = c->rq;
    if (ex_nets_load(&c->nets, rq->models_dir, rq->be, rq->cfg.threads, e)) return -1;
    c->filter = vs_calloc((size_t)rq->n_filter + 1, sizeof *c->filter);
    c->nfilter = vs_calloc((size_t)rq->n_nfilter + 1, sizeof *c->nfilter);
    for (int i = 0; i < rq->n_filter; i++)
        if (ex_reference_embedding(c->filter[c->n_filter++], &c->nets, rq->filter_refs[i], &rq->cfg,
                                   e))
            return -1;
    for (int i = 0; i < rq->n_nfilter; i++)
        if (ex_reference_embedding(c->nfilter[c->n_nfilter++], &c->nets, rq->nfilter_refs[i],
                                   &rq->cfg, e))
            return -1;
    return 0;
}

/* One input, resolved before any work: its real path, kind and alignments file. */
typedef struct ex_input {
    char real[PATH_MAX];
    vs_media kind;
    char al_path[PATH_MAX + 300];
    int skip; /* complete already and --skip-existing */
} ex_input;

/* Resolves input i (probed already: in->kind): a name that is not UTF-8, and an input that
 * was completely extracted into this folder already (without --skip-existing or --overwrite) are
 * errors before any work. The alignments file is ALIGN/NAME.json, NAME = the input's name; when
 * that file belongs to another input or another faces folder (day1/clip.mp4 and day2/clip.mp4,
 * the same interview into faces/a and faces/b), or an earlier input of this run has the same
 * name, a tag of the path is added: nothing is ever overwritten by another extraction. */
static int resolve_input(ex_input *in, const ex_input *earlier, int n_earlier, const char *given,
                         const ex_request *rq, const char *faces_real, vs_err *e)
{
    if (!realpath(given, in->real)) return vs_fail(e, "%s: %s", given, fs_strerror(errno));
    if (!utf8_valid(in->real))
        return vs_fail(e,
                       "%s: the name is not valid UTF-8; rename it (face metadata is UTF-8 "
                       "JSON)",
                       given);
    if (strlen(in->real) >= sizeof((vs_face *)0)->source)
        return vs_fail(e, "%s: path too long", given);
    char name[256];
    const char *base = fs_basename(in->real);
    while (*base == '.') base++;
    snprintf(name, sizeof name, "%s", base[0] ? base : "input");
    /* the temporary file of an atomic write adds some 20 bytes to the name */
    if (strlen(name) > 200)
        return vs_fail(e, "%s: file name too long for its alignments file (at most 200 bytes)",
                       given);
    for (int attempt = 0; attempt < 2; attempt++) {
        char tagged[300];
        if (attempt)
            snprintf(tagged, sizeof tagged, "%s-%06x", name,
                     (unsigned)(path_hash(in->real, faces_real) & 0xffffff));
        else
            snprintf(tagged, sizeof tagged, "%s", name);
        al_path(in->al_path, sizeof in->al_path, rq->align_dir, tagged);
        int taken = 0;
        for (int k = 0; k < n_earlier && !taken; k++)
            taken = !strcmp(earlier[k].al_path, in->al_path);
        if (taken) continue;
        if (!fs_exists(in->al_path)) return 0;
        al_file old;
        vs_err ignore;
        if (al_load(&old, in->al_path, &ignore)) continue; /* not ours to overwrite */
        int same = !strcmp(old.input, in->real) && !strcmp(old.faces_dir, faces_real);
        int complete = old.complete;
        al_free(&old);
        if (!same) continue;
        if (complete && rq->skip_existing)
            in->skip = 1;
        else if (complete && !rq->overwrite)
            return vs_fail(e,
                           "%s was extracted into %s already (%s); --skip-existing skips it, "
                           "--overwrite extracts it again (faces deleted since come back)",
                           given, rq->out_dir, in->al_path);
        return 0;
    }
    return vs_fail(e, "%s: no free name for its alignments file in %s", given, rq->align_dir);
}

int ex_run(job *j, void *arg, vs_err *e)
{
    ex_ctx c;
    memset(&c, 0, sizeof c);
    c.rq = arg;
    c.j = j;
    c.t0 = now();
    c.st.n_inputs = c.rq->n_inputs;
    const vs_config *cfg = &c.rq->cfg;
    int rc = -1;
    ex_input *inputs = NULL;
    if (align_centering_parse(&c.centering, cfg->centering)) {
        vs_fail(e, "unknown centering '%s' (face, head or legacy)", cfg->centering);
        goto out;
    }
    /* Check every input and the output folders before any work, so a typo in the last argument
     * does not cost an hour of extraction (and creates no folder). */
    inputs = vs_calloc((size_t)c.rq->n_inputs, sizeof *inputs);
    for (int i = 0; i < c.rq->n_inputs; i++) {
        const char *given = c.rq->inputs[i];
        if (strlen(given) >= sizeof((vs_face *)0)->source) {
            vs_fail(e, "%.80s...: path too long (at most %zu bytes)", given,
                    sizeof((vs_face *)0)->source - 1);
            goto out;
        }
        if (vid_probe(&inputs[i].kind, given, e) || inputs[i].kind == VS_MEDIA_NONE) goto out;
    }
    if (fs_mkdirs(c.rq->out_dir, e) || fs_mkdirs(c.rq->align_dir, e)) goto out;
    char faces_real[PATH_MAX];
    if (!realpath(c.rq->out_dir, faces_real)) {
        vs_fail(e, "%s: %s", c.rq->out_dir, fs_strerror(errno));
        goto out;
    }
    for (int i = 0; i < c.rq->n_inputs; i++)
        if (resolve_input(&inputs[i], inputs, i, c.rq->inputs[i], c.rq, faces_real, e)) goto out;
    if (load_all(&c, e)) goto out;
    c.st.load_seconds = now() - c.t0;
    rc = 0;
    int failed = 0;
    vs_err first_bad = {{0}};
    for (int i = 0; i < c.rq->n_inputs && rc == 0 && !job_should_stop(j); i++) {
        const ex_input *in = &inputs[i];
        c.st.input_index = i;
        c.st.frame = 0;
        c.st.frames_total = 0;
        c.st.input_started = now() - c.t0;
        snprintf(c.st.input, sizeof c.st.input, "%s", fs_basename(c.rq->inputs[i]));
        if (in->skip) {
            c.st.inputs_skipped++;
            continue;
        }
        al_file al;
        al_init(&al, in->real);
        al.size = cfg->size;
        snprintf(al.centering, sizeof al.centering, "%s", cfg->centering);
        snprintf(al.faces_dir, sizeof al.faces_dir, "%s", faces_real);
        int bad = 0;
        vs_err bad_msg = {{0}};
        if (in->kind == VS_MEDIA_DIR)
            rc = extract_folder(&c, &al, in->real, &bad, &bad_msg, e);
        else
            rc = extract_media(&c, &al, in->real, in->al_path, &bad, &bad_msg, e);
        if (bad) { /* say so now, go on with the next input, fail at the end */
            if (!failed++) first_bad = bad_msg;
            warn(&c, bad_msg.msg);
        }
        /* Whatever was extracted is recorded, also when the input turned out damaged. */
        vs_err se;
        if (al.frames_read > 0 && al_save(in->al_path, &al, &se) && rc == 0) {
            *e = se;
            rc = -1;
        }
        al_free(&al);
    }
    if (rc == 0 && failed == 1) {
        *e = first_bad;
        rc = -1;
    } else if (rc == 0 && failed > 1) {
        vs_fail(e, "%d of %d inputs could not be read completely; the first: %s", failed,
                c.rq->n_inputs, first_bad.msg);
        rc = -1;
    }
out:
    free(inputs);
    free(c.filter);
    free(c.nfilter);
    free(c.faces);
    ex_nets_free(&c.nets);
    c.st.elapsed = now() - c.t0;
    job_publish(j, &c.st); /* final numbers, also after a failure */
    return rc;
}
