/* main.c: the visage command line. Each subcommand parses its flags over the configuration
 * (defaults < ~/.config/visage/visage.ini < PROJECT/visage.ini < --config FILE < flags) and calls
 * into core/; long work runs as a job whose status this front end prints. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/alignments.h"
#include "../core/config.h"
#include "../core/curate.h"
#include "../core/extract.h"
#include "../core/facenet.h"
#include "../core/fsutil.h"
#include "../core/image.h"
#include "../core/video.h"
#include "cli.h"
#include "workbench.h"

volatile sig_atomic_t got_stop_signal;

void on_stop_signal(int sig)
{
    (void)sig;
    got_stop_signal = 1;
}

void catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
}

int usage_error(const char *cmd, const char *fmt, const char *arg)
{
    fprintf(stderr, "visage %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'visage %s --help'.\n", cmd);
    return EXIT_USAGE;
}

int fail(const char *cmd, const vs_err *e)
{
    fprintf(stderr, "visage %s: %s\n", cmd, e->msg);
    return EXIT_BAD_INPUT;
}

/* Applies a flag to the configuration through the option table (range and type checked). */
int set_opt(cli *c, const char *cmd, const char *section, const char *key, const char *value)
{
    char where[64];
    snprintf(where, sizeof where, "--%s", key);
    for (char *p = where; *p; p++)
        if (*p == '_') *p = '-';
    vs_err e;
    if (cfg_set(&c->cfg, section, key, value, where, &e)) {
        fprintf(stderr, "visage %s: %s\n", cmd, e.msg);
        return -1;
    }
    return 0;
}

/* ---- progress ------------------------------------------------------------------------------ */

void fmt_duration(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 360000) {
        snprintf(buf, n, "--:--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

static void print_progress(const ex_status *st, int tty, double *last_line)
{
    double work = st->elapsed - st->load_seconds;
    double fps = work > 0 ? st->frames_read / work : 0;
    double frac = st->frames_total > 0 ? (double)st->frame / st->frames_total : 0;
    if (frac > 1) frac = 1;
    /* ETA of the current input from how far into it we are (counts skipped frames, --every) */
    double in_input = st->elapsed - st->input_started; /* set after the networks loaded */
    char eta[32];
    fmt_duration(eta, sizeof eta,
                 (st->frames_total > 0 && st->frame > 0)
                     ? in_input * (double)(st->frames_total - st->frame) / (double)st->frame
                     : -1);
    if (tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '-';
        bar[30] = 0;
        fprintf(stderr,
                "\r\033[K%d/%d %.30s [%s] %3.0f%% %lld/%lld  %.1f frames/s  faces %lld  ETA %s",
                st->input_index + 1, st->n_inputs, st->input, bar, frac * 100, (long long)st->frame,
                (long long)st->frames_total, fps, (long long)st->kept, eta);
        fflush(stderr);
    } else if (st->elapsed - *last_line >= 10) {
        *last_line = st->elapsed;
        fprintf(stderr, "%s: %lld/%lld frames, %.1f frames/s, %lld faces kept, ETA %s\n", st->input,
                (long long)st->frame, (long long)st->frames_total, fps, (long long)st->kept, eta);
    }
}

/* ---- extract ------------------------------------------------------------------------------- */

static void help_extract(void)
{
    printf("Usage: visage extract INPUT... -o DIR [options]\n"
           "Finds the faces in videos, images or folders of images, aligns them and saves one PNG\n"
           "per face (with its metadata) in DIR, and an alignments file per input.\n\n"
           "  -o, --output DIR        where the face PNGs go (created)\n"
           "      --alignments DIR    where alignments files go (default: the project's\n"
           "                          alignments/ for PROJECT/faces/X, else DIR/alignments)\n"
           "      --every N           every Nth frame of a video\n"
           "      --min-size PX       ignore faces smaller than PX pixels\n"
           "      --max-faces N       keep at most N faces per frame (best first; 0 = all)\n"
           "      --threshold S       detector score needed, 0.05-1\n"
           "      --size PX           size of the aligned faces\n"
           "      --centering C       face, head or legacy\n"
           "      --filter REF        keep only faces of the person in REF (repeatable)\n"
           "      --nfilter REF       drop faces of the person in REF (repeatable)\n"
           "      --similarity D      largest identity distance counted as the same person\n"
           "                          (lower is stricter; 0.6 is the usual threshold)\n"
           "      --no-landmark-filter  keep detections whose landmarks are not a plausible face\n"
           "      --min-blur B        drop faces blurrier than B (variance of the Laplacian)\n"
           "      --skip-existing     skip inputs already extracted into DIR completely\n"
           "      --overwrite         extract them again (faces deleted since come back)\n"
           "      --device DEV        where the face networks run: auto (the first GPU, else\n"
           "                          the CPU), cpu, cuda:N\n"
           "      --threads N         CPU threads (0 = all)\n"
           "      --models DIR        face-network weights (default: found by 'make models')\n"
           "  -q, --quiet             no progress, only the summary\n"
           "REF is a face PNG made by visage or any picture with that person alone.\n"
           "Defaults come from visage.ini: see 'visage config --dump'.\n");
}

/* Prints the warnings after the first `seen`; returns the new count seen. */
static int print_warnings(const ex_status *st, int seen)
{
    if (st->warnings - seen > EX_WARNINGS) {
        fprintf(stderr, "visage extract: warning: %d more warnings\n",
                st->warnings - seen - EX_WARNINGS);
        seen = st->warnings - EX_WARNINGS;
    }
    for (; seen < st->warnings; seen++)
        fprintf(stderr, "visage extract: warning: %s\n", st->warning[seen % EX_WARNINGS]);
    return seen;
}

static void print_summary(const ex_status *st, const ex_request *rq, int stopped)
{
    double work = st->elapsed - st->load_seconds;
    printf("visage extract: %s%lld frames read from %d input%s in %.1f s (%.1f frames/s)",
           stopped ? "stopped; " : "", (long long)st->frames_read, st->n_inputs,
           st->n_inputs == 1 ? "" : "s", st->elapsed, work > 0 ? st->frames_read / work : 0.0);
    if (st->inputs_skipped) printf(", %d skipped (complete already)", st->inputs_skipped);
    printf("\n  faces found %lld, kept %lld; filtered by identity %lld, not a face %lld, too small "
           "%lld, blurry %lld, over --max-faces %lld\n",
           (long long)st->faces_found, (long long)st->kept, (long long)st->filtered_identity,
           (long long)st->filtered_landmarks, (long long)st->filtered_size,
           (long long)st->filtered_blur, (long long)st->filtered_max);
    if (st->warnings)
        printf("  %d warning%s (above)\n", st->warnings, st->warnings == 1 ? "" : "s");
    printf("  faces in %s, alignments in %s\n", rq->out_dir, rq->align_dir);
}

static int cmd_extract(cli *c, int argc, char **argv)
{
    enum {
        O_ALIGN = 256,
        O_EVERY,
        O_MIN_SIZE,
        O_MAX_FACES,
        O_THRESHOLD,
        O_SIZE,
        O_CENTERING,
        O_FILTER,
        O_NFILTER,
        O_SIMILARITY,
        O_SKIP,
        O_NO_LMF,
        O_MIN_BLUR,
        O_THREADS,
        O_MODELS,
        O_OVERWRITE,
        O_DEVICE
    };
    static const struct option opts[] = {{"output", required_argument, 0, 'o'},
                                         {"alignments", required_argument, 0, O_ALIGN},
                                         {"every", required_argument, 0, O_EVERY},
                                         {"min-size", required_argument, 0, O_MIN_SIZE},
                                         {"max-faces", required_argument, 0, O_MAX_FACES},
                                         {"threshold", required_argument, 0, O_THRESHOLD},
                                         {"size", required_argument, 0, O_SIZE},
                                         {"centering", required_argument, 0, O_CENTERING},
                                         {"filter", required_argument, 0, O_FILTER},
                                         {"nfilter", required_argument, 0, O_NFILTER},
                                         {"similarity", required_argument, 0, O_SIMILARITY},
                                         {"skip-existing", no_argument, 0, O_SKIP},
                                         {"overwrite", no_argument, 0, O_OVERWRITE},
                                         {"no-landmark-filter", no_argument, 0, O_NO_LMF},
                                         {"min-blur", required_argument, 0, O_MIN_BLUR},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"models", required_argument, 0, O_MODELS},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    ex_request rq;
    memset(&rq, 0, sizeof rq);
    const char **filters = calloc((size_t)argc, sizeof *filters);
    const char **nfilters = calloc((size_t)argc, sizeof *nfilters);
    const char *out = NULL, *align = NULL;
    int quiet = 0, o, rc = EXIT_USAGE;
    optind = 1;
    while ((o = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        const char *key = NULL, *section = "extract";
        switch (o) {
        case 'o': out = optarg; break;
        case 'q': quiet = 1; break;
        case 'h':
            help_extract();
            rc = 0;
            goto done;
        case O_ALIGN: align = optarg; break;
        case O_EVERY: key = "every"; break;
        case O_MIN_SIZE: key = "min_size"; break;
        case O_MAX_FACES: key = "max_faces"; break;
        case O_THRESHOLD: key = "threshold"; break;
        case O_SIZE: key = "size"; break;
        case O_CENTERING: key = "centering"; break;
        case O_SIMILARITY: key = "similarity"; break;
        case O_MIN_BLUR: key = "min_blur"; break;
        case O_FILTER: filters[rq.n_filter++] = optarg; break;
        case O_NFILTER: nfilters[rq.n_nfilter++] = optarg; break;
        case O_SKIP: rq.skip_existing = 1; break;
        case O_NO_LMF: c->cfg.landmark_filter = 0; break;
        case O_OVERWRITE: rq.overwrite = 1; break;
        case O_THREADS: section = "general", key = "threads"; break;
        case O_MODELS: section = "general", key = "models"; break;
        case O_DEVICE: section = "general", key = "device"; break;
        default: fprintf(stderr, "Try 'visage extract --help'.\n"); goto done;
        }
        if (key && set_opt(c, "extract", section, key, optarg)) {
            rc = EXIT_BAD_INPUT; /* a bad value, like a bad value in visage.ini */
            goto done;
        }
    }
    if (optind >= argc) {
        rc = usage_error("extract", "%s",
                         "no INPUT given (a video, an image or a folder of images)");
        goto done;
    }
    if (!out) {
        rc = usage_error("extract", "%s", "no output folder given (-o DIR)");
        goto done;
    }
    char models[PATH_MAX], align_dir[PATH_MAX];
    vs_err e;
    if (ex_find_models(models, sizeof models, c->cfg.models, c->exe_dir, &e)) {
        rc = fail("extract", &e);
        goto done;
    }
    if (align)
        snprintf(align_dir, sizeof align_dir, "%s", align);
    else
        ex_default_align_dir(align_dir, sizeof align_dir, out);
    rq.cfg = c->cfg;
    rq.models_dir = models;
    rq.inputs = (const char *const *)argv + optind;
    rq.n_inputs = argc - optind;
    rq.out_dir = out;
    rq.align_dir = align_dir;
    rq.filter_refs = filters;
    rq.nfilter_refs = nfilters;
    nn_precision prec = NN_PREC_AUTO;
    nn_parse_precision(&prec, c->cfg.precision);
    if (nn_backend_open(&rq.be, c->cfg.device, prec, &e)) {
        rc = fail("extract", &e);
        goto done;
    }

    /* Ctrl-C and SIGTERM stop the job cleanly (faces and alignments kept); a second Ctrl-C
     * kills at once. A dropped SSH link (SIGHUP) does not stop the extraction. */
    catch_stop_signals();
    ex_status st;
    memset(&st, 0, sizeof st);
    job j;
    job_start(&j, ex_run, &rq, &st, sizeof st);
    int tty = !quiet && isatty(STDERR_FILENO);
    double last_line = 0;
    int stopping = 0, warnings_seen = 0;
    for (;;) {
        ex_status snap;
        job_state s = job_snapshot(&j, &snap);
        if (s != JOB_RUNNING && s != JOB_PAUSED) break;
        if (got_stop_signal && !stopping) {
            stopping = 1;
            job_command(&j, JOB_CMD_STOP);
            if (tty) fputc('\n', stderr);
            fprintf(stderr,
                    "visage extract: stopping; the faces so far and the alignments are kept\n");
        }
        if (snap.warnings > warnings_seen) {
            if (tty) fputs("\r\033[K", stderr);
            warnings_seen = print_warnings(&snap, warnings_seen);
        }
        if (!quiet && snap.load_seconds > 0) print_progress(&snap, tty, &last_line);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int jrc = job_wait(&j, &e);
    if (tty) fputs("\r\033[K", stderr);
    print_warnings(&st, warnings_seen);
    if (jrc) {
        if (st.frames_read) print_summary(&st, &rq, 0);
        rc = fail("extract", &e);
        goto done;
    }
    print_summary(&st, &rq, stopping);
    rc = stopping ? 130 : 0;
done:
    free(filters);
    free(nfilters);
    return rc;
}

/* ---- faces, sort, prune -------------------------------------------------------------------- */

/* Reference embedding for --ref / face:REF (networks loaded only when REF is not a face PNG). */
static int reference_embedding(float out[128], cli *c, const char *path, vs_err *e)
{
    vs_face f;
    vs_err ignore;
    ex_nets nets = {0};
    char models[PATH_MAX];
    if (face_load(&f, NULL, path, &ignore) &&
        (ex_find_models(models, sizeof models, c->cfg.models, c->exe_dir, e) ||
         ex_nets_load(&nets, models, NULL, c->cfg.threads, e)))
        return -1;
    int rc = ex_reference_embedding(out, &nets, path, &c->cfg, e);
    ex_nets_free(&nets);
    return rc;
}

static int cmd_faces(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"ref", required_argument, 0, 'r'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *ref = NULL;
    int json = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "r:jh", opts, NULL)) != -1) {
        switch (o) {
        case 'r': ref = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            printf("Usage: visage faces DIR [--ref FACE] [--json]\n"
                   "Lists the faces in DIR: file, source, frame, size, blur, yaw/pitch/roll and,\n"
                   "with --ref, the identity distance to FACE (lower = more alike).\n");
            return 0;
        default: fprintf(stderr, "Try 'visage faces --help'.\n"); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) return usage_error("faces", "%s", "give one folder of faces");
    const char *dir = argv[optind];
    cu_face *v;
    int n, other;
    vs_err e;
    if (cu_load(&v, &n, NULL, &other, dir, &e)) return fail("faces", &e);
    float refv[128];
    if (ref) {
        if (reference_embedding(refv, c, ref, &e)) {
            free(v);
            return fail("faces", &e);
        }
        cu_distances(v, n, refv);
    }
    if (!json)
        printf("%-36s %-24s %7s %5s %9s %6s %6s %6s%s\n", "file", "source", "frame", "size", "blur",
               "yaw", "pitch", "roll", ref ? " distance" : "");
    for (int i = 0; i < n; i++) {
        const vs_face *f = &v[i].f;
        float size = fmaxf(f->box[2], f->box[3]);
        if (json) {
            json_t *rec =
                json_pack("{s:s,s:s,s:I,s:i,s:f,s:f,s:f,s:f,s:f}", "file", v[i].name, "source",
                          f->source, "frame", (json_int_t)f->frame, "index", f->index, "size",
                          (double)size, "blur", (double)f->blur, "yaw", (double)f->yaw, "pitch",
                          (double)f->pitch, "roll", (double)f->roll);
            VS_CHECK(rec != NULL);
            if (ref) /* null for a face without an embedding */
                json_object_set_new(rec, "distance",
                                    isfinite(v[i].key) ? json_real(v[i].key) : json_null());
            char *line =
                json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
            VS_CHECK(line != NULL);
            puts(line);
            free(line);
            json_decref(rec);
        } else {
            printf("%-36s %-24.24s %7lld %5.0f %9.1f %6.1f %6.1f %6.1f", v[i].name,
                   fs_basename(f->source), (long long)f->frame, size, f->blur, f->yaw, f->pitch,
                   f->roll);
            if (ref) printf(" %8.3f", v[i].key);
            printf("\n");
        }
    }
    if (!json) {
        printf("%d face%s", n, n == 1 ? "" : "s");
        if (other)
            printf(" (%d other PNG%s without visage metadata)", other, other == 1 ? "" : "s");
        printf("\n");
    }
    free(v);
    return 0;
}

static int cmd_sort(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"by", required_argument, 0, 'b'},
                                         {"dry-run", no_argument, 0, 'n'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *by = NULL;
    int dry = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "b:nh", opts, NULL)) != -1) {
        switch (o) {
        case 'b': by = optarg; break;
        case 'n': dry = 1; break;
        case 'h':
            printf("Usage: visage sort DIR --by identity|blur|size|yaw|face:REF [--dry-run]\n"
                   "Renames the faces in DIR with a rank prefix (00001_...) in the chosen order:\n"
                   "identity (similar faces together), blur (sharpest first), size (largest\n"
                   "first), yaw (left to right), face:REF (most like REF first). Outliers, other\n"
                   "people and false detections end up together, ready to delete.\n");
            return 0;
        default: fprintf(stderr, "Try 'visage sort --help'.\n"); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) return usage_error("sort", "%s", "give one folder of faces");
    if (!by) return usage_error("sort", "%s", "say the order with --by");
    cu_order order;
    char ref_path[PATH_MAX];
    float refv[128];
    vs_err e;
    if (cu_parse_order(&order, ref_path, sizeof ref_path, by, &e)) {
        fprintf(stderr, "visage sort: %s\n", e.msg);
        return EXIT_USAGE;
    }
    if (order == CU_BY_FACE && reference_embedding(refv, c, ref_path, &e)) return fail("sort", &e);
    const char *dir = argv[optind];
    cu_face *v;
    int n, other;
    if (cu_load(&v, &n, NULL, &other, dir, &e)) return fail("sort", &e);
    cu_sort(v, n, order, refv);
    int rc = 0;
    if (dry) {
        for (int i = 0; i < n; i++) printf("%5d %s %.3f\n", i + 1, v[i].name, v[i].key);
    } else if (cu_rename_ranked(v, n, dir, &e)) {
        rc = fail("sort", &e);
    } else {
        printf("visage sort: %d faces in %s renamed in %s order\n", n, dir, by);
    }
    free(v);
    return rc;
}

static int cmd_prune(cli *c, int argc, char **argv)
{
    static const struct option opts[] = {{"alignments", required_argument, 0, 'a'},
                                         {"force", no_argument, 0, 'f'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *align = NULL;
    int o, force = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "a:fh", opts, NULL)) != -1) {
        switch (o) {
        case 'a': align = optarg; break;
        case 'f': force = 1; break;
        case 'h':
            printf(
                "Usage: visage prune DIR [--alignments DIR] [--force]\n"
                "After faces were deleted from DIR, removes them from the alignments files too,\n"
                "so conversion does not swap them. Faces are matched by their own metadata, so\n"
                "sorted or renamed files still count. A PNG without visage metadata (a face\n"
                "re-saved by an image editor) cannot be matched: prune refuses to run while\n"
                "there is one, unless --force (its face is then dropped from the alignments).\n");
            return 0;
        default: fprintf(stderr, "Try 'visage prune --help'.\n"); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) return usage_error("prune", "%s", "give one folder of faces");
    const char *dir = argv[optind];
    char align_dir[PATH_MAX];
    if (align)
        snprintf(align_dir, sizeof align_dir, "%s", align);
    else
        ex_default_align_dir(align_dir, sizeof align_dir, dir);
    cu_face *v;
    int n, other;
    char **others;
    vs_err e;
    if (cu_load(&v, &n, &others, &other, dir, &e)) return fail("prune", &e);
    if (other && !force) {
        fprintf(stderr,
                "visage prune: %s/%s%s has no visage metadata (re-saved by an image editor?), "
                "so its face cannot be matched; %d such PNG%s in %s. Restore or remove %s, or "
                "run with --force to drop %s from the alignments.\n",
                dir, others[0], other > 1 ? " and others" : "", other, other == 1 ? "" : "s", dir,
                other == 1 ? "it" : "them", other == 1 ? "its face" : "their faces");
        fs_free_list(others, other);
        free(v);
        return EXIT_BAD_INPUT;
    }
    fs_free_list(others, other);
    vs_face *present = calloc((size_t)n + 1, sizeof *present);
    for (int i = 0; i < n; i++) present[i] = v[i].f;
    free(v);
    char **names;
    int nn, rc = 0;
    if (fs_list_dir(&names, &nn, align_dir, NULL, &e)) {
        free(present);
        return fail("prune", &e);
    }
    int files = 0;
    for (int i = 0; i < nn && rc == 0; i++) {
        size_t len = strlen(names[i]);
        if (len < 6 || strcmp(names[i] + len - 5, ".json")) continue;
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", align_dir, names[i]);
        al_file a;
        if (al_load(&a, path, &e)) {
            rc = fail("prune", &e);
            break;
        }
        if (!al_belongs_to(&a, dir, present, n)) { /* another face folder's (faces/b) */
            al_free(&a);
            continue;
        }
        int before = a.n_faces, dropped = al_prune(&a, present, n);
        if (dropped && al_save(path, &a, &e)) rc = fail("prune", &e);
        if (rc == 0)
            printf("%s: %d of %d faces removed (their PNGs are gone)\n", path, dropped, before);
        al_free(&a);
        files++;
    }
    if (rc == 0 && files == 0) {
        vs_fail(&e,
                "%s: no alignments file of the faces in %s here (give the folder with "
                "--alignments)",
                align_dir, dir);
        rc = fail("prune", &e);
    }
    fs_free_list(names, nn);
    free(present);
    return rc;
}

/* ---- config -------------------------------------------------------------------------------- */

static int cmd_config(cli *c, int argc, char **argv)
{
    if (argc == 1 || !strcmp(argv[1], "--dump")) {
        cfg_write_ini(stdout, &c->cfg, CFG_DUMP_VALUES);
        return 0;
    }
    if (!strcmp(argv[1], "--defaults")) {
        vs_config d;
        cfg_defaults(&d);
        cfg_write_ini(stdout, &d, CFG_DUMP_DEFAULTS);
        return 0;
    }
    if (!strcmp(argv[1], "--check")) {
        if (argc != 3) return usage_error("config", "%s", "--check needs a FILE");
        vs_config t;
        cfg_defaults(&t);
        vs_err e;
        if (cfg_load(&t, argv[2], &e)) return fail("config", &e);
        printf("%s: ok\n", argv[2]);
        return 0;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("Usage: visage config [--dump | --defaults | --check FILE | SECTION.KEY]\n"
               "  --dump       the effective settings as a visage.ini (the default)\n"
               "  --defaults   the built-in defaults (config/visage.ini)\n"
               "  --check FILE read FILE and report its first error\n"
               "  SECTION.KEY  print one setting, e.g. extract.size\n");
        return 0;
    }
    char sec[64];
    const char *dot = strchr(argv[1], '.');
    if (!dot || (size_t)(dot - argv[1]) >= sizeof sec)
        return usage_error("config", "%s: not SECTION.KEY (e.g. extract.size)", argv[1]);
    memcpy(sec, argv[1], (size_t)(dot - argv[1]));
    sec[dot - argv[1]] = 0;
    const cfg_option *opt = cfg_find(sec, dot + 1);
    if (!opt)
        return usage_error("config", "%s: no such setting (see 'visage config --dump')", argv[1]);
    char buf[1100];
    cfg_format(buf, sizeof buf, &c->cfg, opt);
    printf("%s\n", buf);
    return 0;
}

/* ---- gpus ---------------------------------------------------------------------------------- */

static int cmd_gpus(cli *c, int argc, char **argv)
{
    (void)c;
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("Usage: visage gpus\n"
               "Lists the CUDA devices visage can train on (--device cuda:N): name, compute\n"
               "capability, memory, and the driver's and this build's CUDA versions.\n");
        return 0;
    }
    if (argc > 1) return usage_error("gpus", "unexpected argument '%s'", argv[1]);
    const char *why = "";
    int n = nn_cuda_device_count(&why);
    if (n == 0) {
        printf("no GPU: %s; visage runs on the CPU\n", why);
        return 0;
    }
    for (int d = 0; d < n; d++) {
        nn_gpu_info g;
        if (nn_cuda_device_info(&g, d)) {
            printf("cuda:%d  (cannot be queried)\n", d);
            continue;
        }
        printf("cuda:%d  %s  compute %d.%d  %d SMs  %.1f GiB (%.1f free)  driver %d.%d  runtime "
               "%d.%d\n",
               d, g.name, g.major, g.minor, g.sms, (double)g.mem_total / (1 << 30),
               (double)g.mem_free / (1 << 30), g.driver / 1000, g.driver % 1000 / 10,
               g.runtime / 1000, g.runtime % 1000 / 10);
    }
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static const struct command {
    const char *name;
    int (*fn)(cli *c, int argc, char **argv);
    const char *summary;
} commands[] = {
    {"extract", cmd_extract, "find, align and save the faces in videos, images or folders"},
    {"faces", cmd_faces, "list a folder of faces with their metadata"},
    {"sort", cmd_sort, "order a folder of faces by identity, blur, size, yaw or likeness"},
    {"prune", cmd_prune, "remove deleted faces from the alignments files"},
    {"train", cmd_train, "train a face-swap model on two folders of faces"},
    {"init", cmd_init, "make a project folder (then 'visage -C DIR' opens the workbench)"},
    {"model", cmd_model, "describe a model folder or checkpoint and check it is intact"},
    {"convert", cmd_convert, "swap the faces of images with a trained model"},
    {"gpus", cmd_gpus, "list the GPUs visage can train on"},
    {"config", cmd_config, "show or check the settings"},
};

static void help(void)
{
    printf("visage %s: face-swap workbench\n\n"
           "Usage: visage [-C PROJECT] [--config FILE] COMMAND [ARGS]\n"
           "       visage [-C PROJECT]     the workbench on a project (see visage init)\n\n"
           "Commands:\n",
           VISAGE_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-9s %s\n", commands[i].name, commands[i].summary);
    printf("\nOptions:\n"
           "  -C PROJECT      run in the project folder (its visage.ini applies)\n"
           "      --config F  read settings from F as well (after the project's)\n"
           "  -h, --help      this help ('visage COMMAND --help' for a command)\n"
           "  -V, --version   the version\n\n"
           "Settings: defaults < ~/.config/visage/visage.ini < PROJECT/visage.ini < --config < "
           "flags.\n"
           "See visage(1) and visage.ini(5).\n");
}

static void find_exe_dir(char *out, size_t n)
{
    char p[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", p, sizeof p - 1);
    out[0] = 0;
    if (len <= 0) return;
    p[len] = 0;
    char *slash = strrchr(p, '/');
    if (slash) *slash = 0;
    snprintf(out, n, "%s", p);
}

int main(int argc, char **argv)
{
    cli c;
    memset(&c, 0, sizeof c);
    find_exe_dir(c.exe_dir, sizeof c.exe_dir);
    cfg_defaults(&c.cfg);
    const char *extra_config = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            help();
            return 0;
        } else if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
            printf("visage %s\n", VISAGE_VERSION);
            return 0;
        } else if (!strcmp(a, "-C") || !strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "visage: %s needs an argument\nTry 'visage --help'.\n", a);
                return EXIT_USAGE;
            }
            if (a[1] == 'C')
                c.project = argv[++i];
            else
                extra_config = argv[++i];
        } else {
            fprintf(stderr, "visage: unknown option '%s'\nTry 'visage --help'.\n", a);
            return EXIT_USAGE;
        }
    }
    if (c.project && chdir(c.project)) {
        fprintf(stderr, "visage: %s: cannot enter the project folder: %s\n", c.project,
                fs_strerror(errno));
        return EXIT_BAD_INPUT;
    }
    vs_err e;
    if (cfg_load_standard(&c.cfg, ".", &e) ||
        (extra_config && cfg_load(&c.cfg, extra_config, &e))) {
        fprintf(stderr, "visage: %s\n", e.msg);
        return EXIT_BAD_INPUT;
    }
    signal(SIGXFSZ, SIG_IGN); /* past a file-size limit, writes fail (EFBIG) and are reported */
    if (i >= argc) {          /* no command: the workbench, in a project */
        if (c.project || fs_exists("visage.ini")) return tui_workbench(&c);
        help();
        return EXIT_USAGE;
    }
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
        if (strcmp(argv[i], commands[k].name)) continue;
        /* getopt's own messages then read "visage extract: unrecognized option ..." */
        char name[64];
        snprintf(name, sizeof name, "visage %s", commands[k].name);
        argv[i] = name;
        int rc = commands[k].fn(&c, argc - i, argv + i);
        if (fflush(stdout) || ferror(stdout)) {
            fprintf(stderr, "visage %s: cannot write the output: %s\n", commands[k].name,
                    fs_strerror(errno));
            return EXIT_BAD_INPUT;
        }
        return rc;
    }
    fprintf(stderr, "visage: unknown command '%s'\nTry 'visage --help'.\n", argv[i]);
    return EXIT_USAGE;
}
