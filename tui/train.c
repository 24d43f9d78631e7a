/* train.c: `visage train` (runs the trainer job and prints its status) and `visage model info`
 * (what a checkpoint holds and whether it is intact, with its backups and snapshots). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/ckpt.h"
#include "../core/fsutil.h"
#include "../core/remote.h"
#include "../core/train.h"
#include "cli.h"

static volatile sig_atomic_t got_save_signal;

static void on_save_signal(int sig)
{
    (void)sig;
    got_save_signal = 1;
}

static void help_train(void)
{
    printf("Usage: visage train [-A DIR] [-B DIR] [-m DIR] [options]\n"
           "Trains a face-swap model (a shared encoder and one decoder per side) on two folders\n"
           "of faces made by 'visage extract'. Running the same command again resumes the model\n"
           "in DIR exactly where it was saved. In a project (-C) the folders default to\n"
           "faces/a, faces/b and model.\n\n"
           "  -A, --faces-a DIR       faces of side A (the person to replace)\n"
           "  -B, --faces-b DIR       faces of side B (the person to put in)\n"
           "  -m, --model-dir DIR     the model folder: checkpoint, backups, snapshots, loss.tsv,\n"
           "                          preview.png\n"
           "      --model NAME        architecture of a new model: original, lightweight\n"
           "      --lowmem            Original with encoder width 512 (new models)\n"
           "      --learn-mask        also learn the face mask (new models)\n"
           "      --batch N           faces per side in one iteration (16)\n"
           "      --iterations N      stop after iteration N (0: until stopped)\n"
           "      --save-every N      iterations between saves (250)\n"
           "      --snapshot-every N  iterations between kept snapshots (25000; 0: none)\n"
           "      --keep-backups N    earlier saves kept in DIR/backups (3)\n"
           "      --shrink N          divide every layer's width by N: a small, fast model for\n"
           "                          trials and tests (new models; 1 = as published)\n"
           "      --seed N            seed of a new model (default: from the clock)\n"
           "      --device DEV        auto (the first GPU, else the CPU), cpu, cuda:N\n"
           "      --precision P       GPU arithmetic: auto, fp32, tf32, bf16, fp16\n"
           "      --threads N         CPU threads (0: all)\n"
           "  -q, --quiet             no status lines\n\n"
           "Ctrl-C or SIGTERM saves and stops; a second Ctrl-C stops without saving. SIGUSR1\n"
           "saves now. A dropped SSH connection (SIGHUP) does not stop training.\n"
           "Other settings ([train] in visage.ini): loss, loss2, eye_multiplier, augmentation.\n");
}

static void print_status(const train_status *st, int tty)
{
    char el[32];
    fmt_duration(el, sizeof el, st->elapsed);
    char target[32] = "";
    if (st->target > 0) snprintf(target, sizeof target, "/%ld", st->target);
    char saved[48] = "";
    if (st->saved_iteration >= 0) snprintf(saved, sizeof saved, "  saved %ld", st->saved_iteration);
    char gpu[48] = "";
    if (st->gpu_mem && st->gpu_util >= 0)
        snprintf(gpu, sizeof gpu, "  GPU %.1f GiB %d%%", (double)st->gpu_mem / (1 << 30),
                 st->gpu_util);
    else if (st->gpu_mem)
        snprintf(gpu, sizeof gpu, "  GPU %.1f GiB", (double)st->gpu_mem / (1 << 30));
    fprintf(stderr, "%siteration %ld%s  loss A %.5f B %.5f  %.2f it/s  %.0f EGs/s%s  %s%s%s",
            tty ? "\r\033[K" : "", st->iteration, target, st->loss[0], st->loss[1], st->it_s,
            st->egs_s, gpu, el, saved, tty ? "" : "\n");
    fflush(stderr);
}

/* Prints the messages after the first `seen` (warnings even when quiet); returns the count. */
static long print_events(const train_status *st, long seen, int quiet, int tty)
{
    if (st->events - seen > TRAIN_EVENTS) {
        fprintf(stderr, "%svisage train: (%ld messages not shown)\n", tty ? "\r\033[K" : "",
                st->events - seen - TRAIN_EVENTS);
        seen = st->events - TRAIN_EVENTS;
    }
    for (; seen < st->events; seen++) {
        int slot = (int)(seen % TRAIN_EVENTS);
        if (!quiet || st->event_warning[slot])
            fprintf(stderr, "%svisage train: %s\n", tty ? "\r\033[K" : "", st->event[slot]);
    }
    return seen;
}

int cmd_train(cli *c, int argc, char **argv)
{
    enum {
        O_MODEL = 256,
        O_LOWMEM,
        O_MASK,
        O_BATCH,
        O_ITER,
        O_SAVE,
        O_SNAP,
        O_KEEP,
        O_SEED,
        O_THREADS,
        O_SHRINK,
        O_DEVICE,
        O_PRECISION,
    };
    static const struct option opts[] = {{"faces-a", required_argument, 0, 'A'},
                                         {"faces-b", required_argument, 0, 'B'},
                                         {"model-dir", required_argument, 0, 'm'},
                                         {"model", required_argument, 0, O_MODEL},
                                         {"lowmem", no_argument, 0, O_LOWMEM},
                                         {"learn-mask", no_argument, 0, O_MASK},
                                         {"batch", required_argument, 0, O_BATCH},
                                         {"iterations", required_argument, 0, O_ITER},
                                         {"save-every", required_argument, 0, O_SAVE},
                                         {"snapshot-every", required_argument, 0, O_SNAP},
                                         {"keep-backups", required_argument, 0, O_KEEP},
                                         {"seed", required_argument, 0, O_SEED},
                                         {"threads", required_argument, 0, O_THREADS},
                                         {"shrink", required_argument, 0, O_SHRINK},
                                         {"device", required_argument, 0, O_DEVICE},
                                         {"precision", required_argument, 0, O_PRECISION},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir_a = NULL, *dir_b = NULL, *model_dir = NULL;
    int quiet = 0, arch_given = 0, o;
    uint64_t seed = 0;
    optind = 1;
    while ((o = getopt_long(argc, argv, "A:B:m:qh", opts, NULL)) != -1) {
        const char *key = NULL, *section = "train";
        switch (o) {
        case 'A': dir_a = optarg; break;
        case 'B': dir_b = optarg; break;
        case 'm': model_dir = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': help_train(); return 0;
        case O_MODEL: key = "model", arch_given = 1; break;
        case O_LOWMEM: c->cfg.lowmem = 1; break;
        case O_MASK: c->cfg.learn_mask = 1; break;
        case O_BATCH: key = "batch"; break;
        case O_ITER: key = "iterations"; break;
        case O_SAVE: key = "save_every"; break;
        case O_SNAP: key = "snapshot_every"; break;
        case O_KEEP: key = "keep_backups"; break;
        case O_THREADS: section = "general", key = "threads"; break;
        case O_DEVICE: section = "general", key = "device"; break;
        case O_PRECISION: key = "precision"; break;
        case O_SHRINK: key = "shrink"; break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || v == 0)
                return usage_error("train", "--seed %s: not a positive integer", optarg);
            seed = v;
            break;
        }
        default: fprintf(stderr, "Try 'visage train --help'.\n"); return EXIT_USAGE;
        }
        if (key && set_opt(c, "train", section, key, optarg)) return EXIT_BAD_INPUT;
    }
    if (optind < argc) return usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!dir_a) dir_a = c->project ? "faces/a" : NULL;
    if (!dir_b) dir_b = c->project ? "faces/b" : NULL;
    if (!model_dir) model_dir = c->project ? "model" : NULL;
    if (!dir_a || !dir_b) return usage_error("train", "%s", "no faces given (-A DIR and -B DIR)");
    if (!model_dir) return usage_error("train", "%s", "no model folder given (-m DIR)");

    vs_err e;
    train_opts to;
    if (train_opts_from_config(&to, &c->cfg, &e)) return fail("train", &e);
    to.dir_a = dir_a, to.dir_b = dir_b, to.model_dir = model_dir;
    to.arch_given = arch_given;
    to.seed = seed;
    nn_precision prec = NN_PREC_AUTO;
    VS_CHECK(nn_parse_precision(&prec, c->cfg.precision) == 0); /* a CFG_CHOICE */
    if (nn_backend_open(&to.be, c->cfg.device, prec, &e)) return fail("train", &e);
    if (!quiet) {
        nn_gpu_info gi;
        if (to.be != nn_cpu_backend() && nn_cuda_device_info(&gi, nn_cuda_device()) == 0)
            fprintf(stderr, "visage train: on the GPU: %s, %.0f GiB, %s\n", gi.name,
                    (double)gi.mem_total / (1 << 30), nn_precision_name(nn_cuda_precision()));
        else
            fprintf(stderr, "visage train: on the CPU\n");
    }
    const char *nan_at = getenv("VISAGE_TEST_NAN_AT"); /* tests: "12,14" */
    for (const char *p = nan_at; p && *p && to.n_nan_at < 4;) {
        to.nan_at[to.n_nan_at++] = strtol(p, (char **)&p, 10);
        if (*p == ',')
            p++;
        else
            break;
    }
    nn_cpu_set_threads(c->cfg.threads);

    /* Ctrl-C / SIGTERM: save and stop; a second one kills at once (SA_RESETHAND). SIGUSR1:
     * save now. SIGHUP (the SSH link dropped) is ignored, and so are failed writes to a
     * terminal that went away: training goes on. */
    catch_stop_signals();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_save_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);

    /* In a project, the trainer answers on the project's socket (a workbench attaches to it),
     * and there is only ever one */
    rmt_server *srv = NULL;
    if (fs_exists("visage.ini") && !strcmp(model_dir, "model")) {
        int busy_pid = 0;
        int r = rmt_server_open(&srv, &busy_pid, ".", &e);
        if (r < 0) return fail("train", &e);
        if (r == 1) {
            vs_fail(&e,
                    "a trainer is already running in this project (pid %d): open the "
                    "workbench (visage) to watch or stop it",
                    busy_pid);
            return fail("train", &e);
        }
    }
    train_status st;
    memset(&st, 0, sizeof st);
    job j;
    job_start(&j, train_run, &to, &st, sizeof st);
    if (srv) rmt_server_attach(srv, &j);
    int tty = !quiet && isatty(STDERR_FILENO);
    int stopping = 0;
    long events_seen = 0;
    double last_line = -1e9;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        train_status snap;
        job_state s = job_snapshot(&j, &snap);
        if (s != JOB_RUNNING && s != JOB_PAUSED) break;
        if (got_stop_signal && !stopping) {
            stopping = 1;
            job_command(&j, JOB_CMD_STOP);
            if (tty) fputc('\n', stderr);
            fprintf(stderr, "visage train: saving and stopping (Ctrl-C again to stop without "
                            "saving)\n");
        }
        if (got_save_signal) {
            got_save_signal = 0;
            job_command(&j, JOB_CMD_SAVE);
        }
        events_seen = print_events(&snap, events_seen, quiet, tty);
        struct timespec tn;
        clock_gettime(CLOCK_MONOTONIC, &tn);
        double t = (double)(tn.tv_sec - t0.tv_sec) + (tn.tv_nsec - t0.tv_nsec) * 1e-9;
        if (!quiet && snap.phase == TRAIN_RUNNING && snap.iteration > snap.start_iteration &&
            t - last_line >= (tty ? 0.5 : 10.0)) {
            last_line = t;
            print_status(&snap, tty);
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (srv) rmt_server_attach(srv, NULL); /* before job_wait, which ends the job's mutex */
    int jrc = job_wait(&j, &e);
    rmt_server_close(srv);
    if (tty) fputs("\r\033[K", stderr);
    print_events(&st, events_seen, quiet, 0);
    if (jrc) return fail("train", &e);
    char ck[4200];
    train_ckpt_path(ck, sizeof ck, model_dir);
    char el[32];
    fmt_duration(el, sizeof el, st.elapsed);
    printf("%s: %s model at iteration %ld (%ld this run, %s), loss A %.5f B %.5f\n", ck, st.arch,
           st.iteration, st.iteration - st.start_iteration, el, st.loss[0], st.loss[1]);
    return stopping ? EXIT_STOPPED : 0;
}

/* ---- model info ---------------------------------------------------------------------------- */

static int keep_ckpt(const char *name)
{
    size_t n = strlen(name), e = strlen(CKPT_EXT);
    return n > e && strcmp(name + n - e, CKPT_EXT) == 0;
}

/* One line per checkpoint in dir/sub: name, iteration and intact or why not. */
static void list_saves(const char *dir, const char *sub)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    char **names;
    int n;
    vs_err e;
    if (!fs_is_dir(path) || fs_list_dir(&names, &n, path, keep_ckpt, &e)) return;
    printf("%s/ (%d):\n", sub, n);
    for (int i = n - 1; i >= 0; i--) {
        char f[4300];
        snprintf(f, sizeof f, "%s/%s", path, names[i]);
        ckpt *c = ckpt_open(f, &e);
        if (c) {
            const char *it = ckpt_get(c, "iteration");
            printf("  %-28s iteration %-10s intact\n", names[i], it ? it : "?");
            ckpt_close(c);
        } else {
            printf("  %-28s DAMAGED: %s\n", names[i], e.msg);
        }
    }
    fs_free_list(names, n);
}

int cmd_model(cli *c, int argc, char **argv)
{
    (void)c;
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        printf("Usage: visage model info DIR|FILE\n"
               "Prints what a model's checkpoint holds (architecture, options, iteration, seed,\n"
               "data cursors, tensors) after checking every checksum, and the state of its\n"
               "backups and snapshots. Exit status 1 when the checkpoint is damaged.\n");
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (strcmp(argv[1], "info") != 0)
        return usage_error("model", "unknown subcommand '%s' (try 'info')", argv[1]);
    if (argc != 3) return usage_error("model", "%s", "info takes one DIR or FILE");
    const char *arg = argv[2];
    char path[4200];
    int is_dir = fs_is_dir(arg);
    if (is_dir)
        train_ckpt_path(path, sizeof path, arg);
    else
        snprintf(path, sizeof path, "%s", arg);
    vs_err e;
    ckpt *ck = ckpt_open(path, &e);
    int rc = 0;
    if (ck) {
        char *d = ckpt_describe(ck);
        fputs(d, stdout);
        free(d);
        ckpt_close(ck);
        printf("state: intact (every checksum verified)\n");
    } else {
        fprintf(stderr, "visage model: %s\n", e.msg);
        rc = EXIT_BAD_INPUT;
    }
    if (is_dir) {
        list_saves(arg, "backups");
        list_saves(arg, "snapshots");
        if (rc) {
            char *bk = NULL;
            if (ckpt_newest_intact_backup(&bk, arg) == 0) {
                printf("newest intact backup: %s (copy it over %s to resume from it)\n", bk, path);
                free(bk);
            } else {
                printf("no intact backup\n");
            }
        }
    }
    return rc;
}
