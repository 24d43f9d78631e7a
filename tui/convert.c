/* convert.c: `visage convert`: its flags into a conversion job (core/convert_job.h), whose
 * progress it prints. Each output says what it is: a PNG's "visage-synthesized" text chunk and a
 * video container's comment record that its faces were synthesised, with the model, its
 * iteration and the date. */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/convert_job.h"
#include "../core/fsutil.h"
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

/* Prints the messages of the images that failed after the first `seen`; returns the count. */
static int print_warnings(const cvjob_status *s, int seen, int tty)
{
    if (s->warnings - seen > CVJOB_WARNINGS) seen = s->warnings - CVJOB_WARNINGS;
    for (; seen < s->warnings; seen++)
        fprintf(stderr, "%svisage convert: %s\n", tty ? "\r\033[K" : "",
                s->warning[seen % CVJOB_WARNINGS]);
    return seen;
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
    cvjob_ranges ranges = {0};
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
            if (cvjob_parse_ranges(&ranges, optarg))
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
    cvjob_request rq = {.cfg = c->cfg,
                        .exe_dir = c->exe_dir,
                        .input = input,
                        .output = out,
                        .model_dir = model_dir,
                        .alignments = align,
                        .co = co,
                        .vo = vo,
                        .ranges = ranges,
                        .smooth = smooth,
                        .keep_refs = keep_refs,
                        .drop_refs = drop_refs,
                        .n_keep = n_keep,
                        .n_drop = n_drop,
                        .preview_frame = preview_frame,
                        .mark = mark};
    nn_precision prec = NN_PREC_AUTO;
    nn_parse_precision(&prec, c->cfg.precision);
    nn_cpu_set_threads(c->cfg.threads);
    if (nn_backend_open(&rq.be, c->cfg.device, prec, &e)) return fail("convert", &e);

    catch_stop_signals();
    cvjob_status st;
    memset(&st, 0, sizeof st);
    job j;
    job_start(&j, cvjob_run, &rq, &st, sizeof st);
    int tty = !quiet && isatty(STDERR_FILENO), stopping = 0, warned = 0;
    double last = -1;
    for (;;) {
        cvjob_status s;
        job_state state = job_snapshot(&j, &s);
        if (state != JOB_RUNNING && state != JOB_PAUSED) break;
        if (got_stop_signal && !stopping) {
            stopping = 1;
            job_command(&j, JOB_CMD_STOP);
        }
        warned = print_warnings(&s, warned, tty);
        if (tty && s.phase == CVJOB_RUNNING && s.done > 0 && s.elapsed - last >= 0.25) {
            last = s.elapsed;
            double work = s.elapsed - s.work_started;
            double rate = work > 0 ? s.done / work : 0;
            char eta[32] = "--:--";
            if (s.total > s.done && rate > 0)
                fmt_duration(eta, sizeof eta, (double)(s.total - s.done) / rate);
            const char *unit = s.kind == VS_MEDIA_DIR ? "images" : "frames";
            fprintf(stderr,
                    "\r\033[K%" PRId64 " of %" PRId64 " %s, %" PRId64 " faces, %.1f %s/s, ETA %s",
                    s.done, s.total, unit, s.faces, rate, unit, eta);
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    int jrc = job_wait(&j, &e);
    if (tty) fputs("\r\033[K", stderr);
    print_warnings(&st, warned, 0);
    if (jrc) {
        if (got_stop_signal) {
            fprintf(stderr, "visage convert: %s\n", e.msg);
            return EXIT_STOPPED;
        }
        return fail("convert", &e);
    }
    if (!quiet && st.deleted)
        fprintf(stderr, "visage convert: %d face%s deleted after extraction left alone\n",
                st.deleted, st.deleted == 1 ? "" : "s");
    if (!quiet) {
        const char *s = st.faces == 1 ? "" : "s";
        if (preview_frame >= 0)
            fprintf(stderr,
                    "visage convert: %s: frame %lld before and after, %" PRId64 " face%s swapped\n",
                    st.written, preview_frame, st.faces, s);
        else if (st.kind == VS_MEDIA_VIDEO)
            fprintf(stderr, "visage convert: %s: %" PRId64 " frames, %" PRId64 " faces swapped\n",
                    st.written, st.done, st.faces);
        else if (st.kind == VS_MEDIA_IMAGE)
            fprintf(stderr, "visage convert: %s: %" PRId64 " face%s swapped\n", st.written,
                    st.faces, s);
        else
            fprintf(stderr,
                    "visage convert: %" PRId64 " image%s converted into %s (%" PRId64
                    " faces swapped)%s\n",
                    st.done, st.done == 1 ? "" : "s", st.written, st.faces,
                    stopping ? ", stopped" : "");
    }
    if (st.failed) return EXIT_BAD_INPUT;
    return stopping ? EXIT_STOPPED : 0;
}
