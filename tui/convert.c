/* convert.c: `visage convert`: swaps the faces of an image, or of every image in a folder, with a
 * trained model. The faces come from the input's alignments file when there is one (so faces
 * deleted while curating are not swapped), otherwise from detection on the fly. Each output is a
 * PNG that says what it is: its "visage" text chunk records that faces in it were synthesised,
 * with the model, its iteration and the date; a video keeps its resolution, frame count, timing
 * and audio (copied packet for packet), and its container's comment says the same. */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/alignments.h"
#include "../core/convert.h"
#include "../core/extract.h"
#include "../core/facenet.h"
#include "../core/frame_queue.h"
#include "../core/fsutil.h"
#include "../core/smooth.h"
#include "../core/train.h"
#include "../core/video.h"
#include "../core/video_out.h"
#include "cli.h"

static void help_convert(void)
{
    printf("Usage: visage convert INPUT -m MODEL -o OUTPUT [options]\n"
           "Swaps the faces in INPUT (a video, an image or a folder of images) with the model\n"
           "trained in MODEL: side A's faces become side B's (--swap: the other way). OUTPUT is a\n"
           "video (.mp4, .mkv ...) for a video, a PNG for an image, a folder for a folder.\n"
           "Faces come from INPUT's alignments file when there is one (faces deleted after\n"
           "extraction are left alone), else they are detected.\n\n"
           "  -m, --model-dir DIR     the model folder (its checkpoint)\n"
           "  -o, --output PATH       the converted video, image, or folder of images\n"
           "      --swap              B -> A instead of A -> B\n"
           "      --alignments FILE   the alignments file (default: alignments/NAME.json, as a\n"
           "                          project keeps them, when it exists)\n"
           "      --mask M            extended (from the landmarks), components (the same, the\n"
           "                          eyebrows not raised), learned (the model's own:\n"
           "                          --learn-mask models), box (the crop) (extended)\n"
           "      --erode P           shrink the mask by P%% of the face (negative: grow) (0)\n"
           "      --blur P            feather the mask's edge over P%% of the face (5)\n"
           "      --color C           avg, rct (Reinhard LAB), hist, none (avg)\n"
           "      --sharpen A         unsharp-mask amount on the new face, 0-2 (0)\n"
           "      --device DEV        auto, cpu, cuda:N\n"
           "      --threads N         CPU threads (0: all)\n"
           "      --models DIR        the face networks, for detection without alignments\n"
           "      --no-metadata       do not say in the output that its faces are synthesised\n"
           "  -q, --quiet             no progress line\n\n"
           "A video keeps its size, frame count, timing and audio (copied as it is):\n"
           "      --frames RANGES     swap only in these frames (10-50,90-100); copy the rest\n"
           "      --crf N             H.264 quality, 0-51 (18)\n"
           "      --preset P          x264 speed preset (medium)\n"
           "      --lossless          FFV1 in RGB, bit-exact (needs a .mkv OUTPUT)\n"
           "An OUTPUT folder (or ending in /) for a video gets one PNG a frame instead.\n"
           "      --filter REF        swap only faces like REF (a face PNG or a picture of one\n"
           "                          person; repeatable)\n"
           "      --nfilter REF       leave faces like REF alone (repeatable)\n"
           "      --similarity D      the identity distance that counts as alike (as extract)\n"
           "      --preview N         only frame N (0 for an image), before and after side by\n"
           "                          side, into OUTPUT (a PNG): try settings in seconds\n"
           "      --smooth HZ         steady the landmarks of a still face over time: the\n"
           "                          cutoff of the filter, lower is steadier; 0: off (1)\n");
}

/* The text chunk key of a converted image (not the face PNGs' "visage": this is no face record). */
#define CONVERT_META_KEY "visage-synthesized"

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
    if (ex_nets_load(&fs->nets, fs->models, fs->cfg->threads, e)) return -1;
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

/* Converts the image at in into out: the number of faces swapped, or -1 with a message. */
static int convert_image(const char *in, const char *out, face_source *fs, model *m,
                         const cv_opts *co, const char *model_dir, long iteration, int mark,
                         vs_err *e)
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
    for (int i = 0; i < n && rc >= 0; i++) {
        vs_err fe;
        if (cv_swap_face(im, lm[i], m, co, &fe)) rc = vs_fail(e, "%s: face %d: %s", in, i, fe.msg);
    }
    if (rc >= 0) {
        char *meta = mark ? output_meta(model_dir, iteration, in, n) : NULL;
        if (img_save_png(out, im, meta ? CONVERT_META_KEY : NULL, meta, e)) rc = -1;
        free(meta);
    }
    free(lm);
    img_free(im);
    return rc;
}

/* --preview N: frame N of input (0 for an image) before and after, side by side, into out (a PNG),
 * so settings can be tried in seconds. The number of faces swapped, or -1 with a message. */
static int preview(const char *input, int64_t n, const char *out, face_source *fs, model *m,
                   const cv_opts *co, const char *model_dir, long iteration, int mark, vs_err *e)
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
    if (k < 0) goto out;
    for (int i = 0; i < k; i++) {
        vs_err fe;
        if (cv_swap_face(f, lm[i], m, co, &fe)) {
            vs_fail(e, "%s: face %d: %s", input, i, fe.msg);
            goto out;
        }
    }
    for (int y = 0; y < f->h; y++)
        memcpy(both->px + ((size_t)y * both->w + f->w) * 3, f->px + (size_t)y * f->w * 3,
               (size_t)f->w * 3);
    char *meta = mark ? output_meta(model_dir, iteration, input, k) : NULL;
    rc = img_save_png(out, both, meta ? CONVERT_META_KEY : NULL, meta, e) ? -1 : k;
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

/* --frames "10-50,90-100,7": the frames (inclusive ranges) whose faces are swapped */
typedef struct frame_ranges {
    int n;
    int64_t lo[64], hi[64];
} frame_ranges;

static int parse_ranges(frame_ranges *r, const char *s)
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

static int in_ranges(const frame_ranges *r, int64_t f)
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
    model *m;
    const cv_opts *co;
    const vout_opts *vo;
    const frame_ranges *ranges;
    float smooth; /* the still-face cutoff, Hz; 0: no smoothing */
    int png;      /* out is a folder: one PNG a frame */
    int mark;     /* say in each output what it is (on unless --no-metadata) */
    int quiet;
} video_job;

/* seconds since t0 (CLOCK_MONOTONIC), for the progress line */
/* Whether to write the progress line (rewritten in place with \r) to fd: to a terminal, or for
 * the workbench, which runs conversions as a child with VISAGE_PROGRESS=1 and reads the line. */
static int progress_to(int fd)
{
    const char *p = getenv("VISAGE_PROGRESS");
    return isatty(fd) || (p && !strcmp(p, "1"));
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (t1.tv_nsec - t0->tv_nsec) * 1e-9;
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
            rc = img_save_png(path, it.frame, st->meta ? CONVERT_META_KEY : NULL, st->meta, &st->e);
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
    int tty = !j->quiet && progress_to(STDERR_FILENO);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fq_item it;
    int got;
    while ((got = fq_pop(qin, &it)) == 1) {
        if (got_stop_signal) {
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
            for (int i = 0; i < n; i++) {
                vs_err fe;
                if (cv_swap_face(it.frame, lm[i], j->m, j->co, &fe) == 0) faces++;
            }
        }
        if (fq_push(qout, it)) { /* the writer failed */
            img_free(it.frame);
            break;
        }
        done++;
        if (tty && (done % 10 == 0)) {
            double sec = seconds_since(&t0);
            double fps = sec > 0 ? done / sec : 0;
            char eta[32] = "--:--";
            if (in->frames > done && fps > 0)
                fmt_duration(eta, sizeof eta, (in->frames - done) / fps);
            fprintf(stderr,
                    "\r\033[Kframe %" PRId64 " of %" PRId64 ", %" PRId64
                    " faces, %.1f frames/s, ETA %s",
                    done, in->frames, faces, fps, eta);
        }
    }
    if (got == 1) fq_cancel(qin); /* the writer stopped early: so does the reader */
    fq_close(qout);
    pthread_join(rt, NULL);
    pthread_join(wt, NULL);
    threads = 0;
    if (tty) fputs("\r\033[K", stderr);
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

int cmd_convert(cli *c, int argc, char **argv)
{
    enum {
        O_SWAP = 256,
        O_ALIGN,
        O_MASK,
        O_ERODE,
        O_BLUR,
        O_COLOR,
        O_SHARPEN,
        O_DEVICE,
        O_THREADS,
        O_MODELS,
        O_FRAMES,
        O_LOSSLESS,
        O_CRF,
        O_PRESET,
        O_SMOOTH,
        O_FILTER,
        O_NFILTER,
        O_PREVIEW,
        O_NO_META
    };
    static const struct option opts[] = {{"model-dir", required_argument, 0, 'm'},
                                         {"output", required_argument, 0, 'o'},
                                         {"swap", no_argument, 0, O_SWAP},
                                         {"alignments", required_argument, 0, O_ALIGN},
                                         {"mask", required_argument, 0, O_MASK},
                                         {"erode", required_argument, 0, O_ERODE},
                                         {"blur", required_argument, 0, O_BLUR},
                                         {"color", required_argument, 0, O_COLOR},
                                         {"sharpen", required_argument, 0, O_SHARPEN},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"models", required_argument, 0, O_MODELS},
                                         {"frames", required_argument, 0, O_FRAMES},
                                         {"lossless", no_argument, 0, O_LOSSLESS},
                                         {"crf", required_argument, 0, O_CRF},
                                         {"preset", required_argument, 0, O_PRESET},
                                         {"smooth", required_argument, 0, O_SMOOTH},
                                         {"filter", required_argument, 0, O_FILTER},
                                         {"nfilter", required_argument, 0, O_NFILTER},
                                         {"similarity", required_argument, 0, 's'},
                                         {"preview", required_argument, 0, O_PREVIEW},
                                         {"no-metadata", no_argument, 0, O_NO_META},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cv_opts co;
    cv_opts_default(&co);
    vout_opts vo;
    vout_opts_default(&vo);
    frame_ranges ranges = {0};
    float smooth = 1.0f;
    const char *keep_refs[16], *drop_refs[16];
    long long preview_frame = -1;
    int mark = 1;
    int n_keep = 0, n_drop = 0;
    const char *model_dir = NULL, *out = NULL, *align = NULL;
    int quiet = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:o:qh", opts, NULL)) != -1) {
        const char *key = NULL, *section = "general";
        char *end = NULL;
        switch (o) {
        case 'm': model_dir = optarg; break;
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': help_convert(); return 0;
        case O_SWAP: co.side = 0; break;
        case O_ALIGN: align = optarg; break;
        case O_MASK:
            if (cv_mask_parse(&co.mask, optarg))
                return usage_error("convert", "--mask '%s': extended, components, learned or box",
                                   optarg);
            break;
        case O_COLOR:
            if (cv_color_parse(&co.color, optarg))
                return usage_error("convert", "--color '%s': avg, rct, hist or none", optarg);
            break;
        case O_ERODE:
        case O_BLUR:
        case O_SHARPEN: {
            float v = strtof(optarg, &end);
            float lo = o == O_ERODE ? -50 : 0, hi = o == O_SHARPEN ? 2 : 50;
            if (end == optarg || *end || !(v >= lo && v <= hi))
                return usage_error("convert",
                                   "'%s': a number in range (erode -50 to 50, blur 0 "
                                   "to 50, sharpen 0 to 2)",
                                   optarg);
            *(o == O_ERODE ? &co.erode : o == O_BLUR ? &co.blur : &co.sharpen) = v;
            break;
        }
        case O_FRAMES:
            if (parse_ranges(&ranges, optarg))
                return usage_error("convert", "--frames '%s': ranges like 10-50,90-100", optarg);
            break;
        case O_LOSSLESS: vo.codec = VOUT_LOSSLESS; break;
        case O_CRF: {
            long v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 0 || v > 51)
                return usage_error("convert", "--crf '%s': 0 to 51", optarg);
            vo.crf = (int)v;
            break;
        }
        case O_PRESET: vo.preset = optarg; break;
        case O_NO_META: mark = 0; break;
        case O_PREVIEW:
            preview_frame = strtoll(optarg, &end, 10);
            if (end == optarg || *end || preview_frame < 0)
                return usage_error("convert", "--preview '%s': a frame number from 0", optarg);
            break;
        case O_FILTER:
        case O_NFILTER:
            if ((o == O_FILTER ? n_keep : n_drop) == 16)
                return usage_error("convert", "at most 16 references each: '%s'", optarg);
            if (o == O_FILTER)
                keep_refs[n_keep++] = optarg;
            else
                drop_refs[n_drop++] = optarg;
            break;
        case 's':
            key = "similarity";
            section = "extract";
            break;
        case O_SMOOTH:
            smooth = strtof(optarg, &end);
            if (end == optarg || *end || !(smooth >= 0 && smooth <= 100))
                return usage_error("convert", "--smooth '%s': 0 (off) to 100 Hz", optarg);
            break;
        case O_DEVICE: key = "device"; break;
        case O_THREADS: key = "threads"; break;
        case O_MODELS: key = "models"; break;
        default: fprintf(stderr, "Try 'visage convert --help'.\n"); return EXIT_USAGE;
        }
        if (key && set_opt(c, "convert", section, key, optarg)) return EXIT_BAD_INPUT;
    }
    if (optind >= argc) return usage_error("convert", "%s", "no INPUT given (an image or folder)");
    if (optind + 1 < argc)
        return usage_error("convert", "one INPUT at a time, not '%s' too", argv[optind + 1]);
    if (!model_dir) return usage_error("convert", "%s", "no model given (-m DIR)");
    if (!out) return usage_error("convert", "%s", "no output given (-o PATH)");
    const char *input = argv[optind];
    vs_err e;
    vs_media kind;
    if (vid_probe(&kind, input, &e)) return fail("convert", &e);
    if (kind == VS_MEDIA_NONE) {
        vs_fail(&e, "%s: not a video, an image or a folder", input);
        return fail("convert", &e);
    }

    face_source fs;
    memset(&fs, 0, sizeof fs);
    fs.cfg = &c->cfg;
    char al_file_path[PATH_MAX];
    if (align)
        snprintf(al_file_path, sizeof al_file_path, "%s", align);
    else
        al_path(al_file_path, sizeof al_file_path, "alignments", input);
    if (align || fs_exists(al_file_path)) {
        if (al_load(&fs.al, al_file_path, &e)) return fail("convert", &e);
        fs.have_al = 1;
        snprintf(fs.al_path, sizeof fs.al_path, "%s", al_file_path);
    }
    if ((!fs.have_al || n_keep || n_drop) &&
        ex_find_models(fs.models, sizeof fs.models, c->cfg.models, c->exe_dir, &e)) {
        if (fs.have_al) al_free(&fs.al);
        return fail("convert", &e);
    }
    float refs[32][128];
    fs.keep = refs, fs.drop = refs + n_keep, fs.n_keep = n_keep, fs.n_drop = n_drop;
    for (int i = 0; i < n_keep + n_drop; i++) {
        const char *ref = i < n_keep ? keep_refs[i] : drop_refs[i - n_keep];
        if (load_nets(&fs, &e) || ex_reference_embedding(refs[i], &fs.nets, ref, &c->cfg, &e)) {
            if (fs.have_al) al_free(&fs.al);
            if (fs.have_nets) ex_nets_free(&fs.nets);
            return fail("convert", &e);
        }
    }

    const nn_backend *be;
    nn_precision prec = NN_PREC_AUTO;
    nn_parse_precision(&prec, c->cfg.precision);
    nn_cpu_set_threads(c->cfg.threads);
    model *m = NULL;
    long iteration = 0;
    int rc = 0;
    if (nn_backend_open(&be, c->cfg.device, prec, &e) ||
        train_load_model(&m, &iteration, model_dir, be, &e)) {
        rc = fail("convert", &e);
        goto done;
    }

    catch_stop_signals();
    if (preview_frame >= 0) {
        if (kind == VS_MEDIA_DIR) {
            vs_fail(&e, "%s: --preview takes a video or an image, not a folder", input);
            rc = fail("convert", &e);
            goto done;
        }
        int n = preview(input, preview_frame, out, &fs, m, &co, model_dir, iteration, mark, &e);
        if (n < 0) {
            rc = fail("convert", &e);
            goto done;
        }
        if (!quiet)
            fprintf(stderr, "visage convert: %s: frame %lld before and after, %d face%s swapped\n",
                    out, preview_frame, n, n == 1 ? "" : "s");
        goto done;
    }
    if (kind == VS_MEDIA_VIDEO) {
        video_job vj = {.input = input,
                        .out = out,
                        .model_dir = model_dir,
                        .iteration = iteration,
                        .fs = &fs,
                        .m = m,
                        .co = &co,
                        .vo = &vo,
                        .ranges = &ranges,
                        .smooth = smooth,
                        .png = fs_is_dir(out) || out[strlen(out) - 1] == '/',
                        .mark = mark,
                        .quiet = quiet};
        int64_t frames = 0, nfaces = 0;
        if (convert_video(&vj, &frames, &nfaces, &e)) {
            rc = got_stop_signal ? (fprintf(stderr, "visage convert: %s\n", e.msg), EXIT_STOPPED)
                                 : fail("convert", &e);
            goto done;
        }
        if (!quiet)
            fprintf(stderr, "visage convert: %s: %" PRId64 " frames, %" PRId64 " faces swapped\n",
                    out, frames, nfaces);
        goto done;
    }
    if (kind == VS_MEDIA_IMAGE) {
        char target[PATH_MAX + 300];
        if (fs_is_dir(out))
            snprintf(target, sizeof target, "%s/%.*s.png", out,
                     (int)(strrchr(fs_basename(input), '.')
                               ? strrchr(fs_basename(input), '.') - fs_basename(input)
                               : (long)strlen(fs_basename(input))),
                     fs_basename(input));
        else
            snprintf(target, sizeof target, "%s", out);
        int n = convert_image(input, target, &fs, m, &co, model_dir, iteration, mark, &e);
        if (n < 0) {
            rc = fail("convert", &e);
            goto done;
        }
        if (!quiet)
            fprintf(stderr, "visage convert: %s: %d face%s swapped\n", target, n,
                    n == 1 ? "" : "s");
        goto done;
    }

    char **names = NULL;
    int count = 0, failed = 0, faces = 0, done_n = 0;
    if (fs_list_dir(&names, &count, input, keep_image, &e) || fs_mkdirs(out, &e)) {
        rc = fail("convert", &e);
        goto done;
    }
    int tty = !quiet && progress_to(STDERR_FILENO);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < count && !got_stop_signal; i++) {
        char in[PATH_MAX + 300], target[PATH_MAX + 300];
        snprintf(in, sizeof in, "%s/%s", input, names[i]);
        const char *dot = strrchr(names[i], '.');
        snprintf(target, sizeof target, "%s/%.*s.png", out,
                 (int)(dot ? dot - names[i] : (long)strlen(names[i])), names[i]);
        int n = convert_image(in, target, &fs, m, &co, model_dir, iteration, mark, &e);
        if (n < 0) {
            if (tty) fputs("\r\033[K", stderr);
            fprintf(stderr, "visage convert: %s\n", e.msg);
            failed++;
            continue;
        }
        faces += n, done_n++;
        if (tty) {
            double s = seconds_since(&t0);
            fprintf(stderr, "\r\033[K%d of %d images, %d faces, %.1f images/s", i + 1, count, faces,
                    s > 0 ? (i + 1) / s : 0.0);
        }
    }
    if (tty) fputs("\r\033[K", stderr);
    if (!quiet)
        fprintf(stderr, "visage convert: %d image%s converted into %s (%d faces swapped)%s\n",
                done_n, done_n == 1 ? "" : "s", out, faces, got_stop_signal ? ", stopped" : "");
    fs_free_list(names, count);
    if (count == 0) {
        vs_fail(&e, "%s: no images in this folder", input);
        rc = fail("convert", &e);
    } else if (failed) {
        rc = EXIT_BAD_INPUT;
    } else if (got_stop_signal) {
        rc = EXIT_STOPPED;
    }
done:
    model_free(m);
    if (fs.have_al) al_free(&fs.al);
    if (fs.have_nets) ex_nets_free(&fs.nets);
    return rc;
}
