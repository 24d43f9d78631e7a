/* panel_convert.c: the Convert panel: the input (a side's source), the options, a before/after
 * preview of one frame and the conversion itself with its progress, into output/. The work is
 * `visage convert` run as a child process, so that a stop (or a crash in a codec) leaves the
 * workbench and nothing half-written behind. */
#ifdef VS_HAVE_NCURSES
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../core/fsutil.h"
#include "../core/video.h"
#include "wb.h"

static const char *const colours[] = {"avg", "rct", "hist", "none"};
static const char *const masks[] = {"extended", "components", "box"};
#define N_COLOURS 4
#define N_MASKS 3
#define PREVIEW_FRAME 0

/* output/NAME-swap.mp4 for a video, .png for an image, a folder for a folder */
static int output_for(char *out, size_t n, const char *input, int swap, vs_err *e)
{
    vs_media kind;
    if (vid_probe(&kind, input, e)) return -1;
    const char *base = fs_basename(input);
    const char *dot = strrchr(base, '.');
    int len = dot && kind != VS_MEDIA_DIR ? (int)(dot - base) : (int)strlen(base);
    const char *ext = kind == VS_MEDIA_VIDEO ? ".mp4" : kind == VS_MEDIA_IMAGE ? ".png" : "";
    snprintf(out, n, "output/%.*s-%s%s", len, base, swap ? "b2a" : "a2b", ext);
    return 0;
}

static void spawn(wb *w, const char *input, const char *output, int preview)
{
    wb_convert *cv = &w->conv;
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l <= 0) {
        wb_log(w, WB_ERROR, "cannot find the visage binary: %s", fs_strerror(errno));
        return;
    }
    exe[l] = 0;
    int p[2];
    if (pipe(p)) {
        wb_log(w, WB_ERROR, "cannot start the conversion: %s", fs_strerror(errno));
        return;
    }
    char frame[16];
    snprintf(frame, sizeof frame, "%d", PREVIEW_FRAME);
    const char *argv[20];
    int a = 0;
    argv[a++] = exe;
    argv[a++] = "convert";
    argv[a++] = input;
    argv[a++] = "-m";
    argv[a++] = "model";
    argv[a++] = "-o";
    argv[a++] = output;
    argv[a++] = "--color";
    argv[a++] = colours[cv->colour];
    argv[a++] = "--mask";
    argv[a++] = masks[cv->mask];
    if (cv->swap) argv[a++] = "--swap";
    if (preview) argv[a++] = "--preview", argv[a++] = frame;
    argv[a] = NULL;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]), close(p[1]);
        wb_log(w, WB_ERROR, "cannot start the conversion: %s", fs_strerror(errno));
        return;
    }
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        setenv("VISAGE_PROGRESS", "1", 1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    cv->pid = pid;
    cv->err_fd = p[0];
    cv->errlen = 0;
    cv->line[0] = 0;
    cv->previewing = preview;
    snprintf(cv->output, sizeof cv->output, "%s", output);
    wb_log(w, WB_INFO, "%s %s into %s (color %s, mask %s%s)", preview ? "previewing" : "converting",
           input, output, colours[cv->colour], masks[cv->mask], cv->swap ? ", B to A" : "");
}

static void start(wb *w, int preview)
{
    wb_convert *cv = &w->conv;
    if (cv->pid > 0) {
        wb_log(w, WB_WARN, "a conversion is running (x stops it)");
        return;
    }
    const char *input = wb_source(w, cv->input);
    if (!input[0]) {
        wb_log(w, WB_WARN, "no input: set source_%c in visage.ini [project]", 'a' + cv->input);
        return;
    }
    char ck[PATH_MAX];
    train_ckpt_path(ck, sizeof ck, "model");
    if (!fs_exists(ck)) {
        wb_log(w, WB_WARN, "no trained model yet (%s): train first", ck);
        return;
    }
    vs_err e;
    char out[PATH_MAX];
    if (output_for(out, sizeof out, input, cv->swap, &e)) {
        wb_log(w, WB_ERROR, "%s", e.msg);
        return;
    }
    if (preview) snprintf(out, sizeof out, "output/.preview.png");
    if (fs_mkdirs("output", &e)) {
        wb_log(w, WB_ERROR, "%s", e.msg);
        return;
    }
    spawn(w, input, out, preview);
}

/* Reads what the child wrote; the progress line is the text after the last \r. */
static void read_child(wb_convert *cv)
{
    char buf[1024];
    ssize_t n;
    while (cv->err_fd >= 0 && (n = read(cv->err_fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (ch == '\r' || ch == '\n') {
                if (cv->errlen) {
                    cv->errbuf[cv->errlen] = 0;
                    char *s = cv->errbuf;
                    if (!strncmp(s, "\033[K", 3)) s += 3;
                    if (*s) snprintf(cv->line, sizeof cv->line, "%s", s);
                }
                cv->errlen = 0;
            } else if (cv->errlen + 1 < sizeof cv->errbuf) {
                cv->errbuf[cv->errlen++] = ch;
            }
        }
    }
}

void wb_convert_poll(wb *w)
{
    wb_convert *cv = &w->conv;
    if (cv->pid <= 0) return;
    read_child(cv);
    int status;
    pid_t r = waitpid(cv->pid, &status, w->detached ? 0 : WNOHANG);
    if (r != cv->pid) return;
    read_child(cv);
    close(cv->err_fd);
    cv->err_fd = -1;
    cv->pid = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        if (cv->previewing) {
            img *im;
            vs_err e;
            if (img_load(&im, cv->output, &e) == 0) {
                img_free(cv->preview);
                cv->preview = im;
                w->full_redraw = 1;
            }
            unlink(cv->output);
            wb_log(w, WB_INFO, "preview of frame %d: before | after", PREVIEW_FRAME);
        } else {
            wb_log(w, WB_INFO, "converted: %s", cv->output);
        }
    } else if (WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_STOPPED)) {
        wb_log(w, WB_INFO, "conversion stopped; nothing was written");
    } else {
        wb_log(w, WB_ERROR, "%s", cv->line[0] ? cv->line : "the conversion failed");
    }
}

void wb_convert_action(wb *w, tui_action a)
{
    wb_convert *cv = &w->conv;
    switch (a) {
    case TUI_A_CONVERT_INPUT: cv->input = !cv->input; break;
    case TUI_A_CONVERT_COLOUR: cv->colour = (cv->colour + 1) % N_COLOURS; break;
    case TUI_A_CONVERT_MASK: cv->mask = (cv->mask + 1) % N_MASKS; break;
    case TUI_A_CONVERT_SWAP: cv->swap = !cv->swap; break;
    case TUI_A_CONVERT_PREVIEW: start(w, 1); break;
    case TUI_A_CONVERT_RUN: start(w, 0); break;
    case TUI_A_CONVERT_STOP:
        if (cv->pid > 0) kill(cv->pid, SIGTERM);
        break;
    default: break;
    }
}

void wb_convert_draw(wb *w)
{
    wb_convert *cv = &w->conv;
    WINDOW *win = w->win[TUI_CONVERT];
    int h, wd;
    getmaxyx(win, h, wd);
    wb_frame(w, TUI_CONVERT, "Convert");
    const char *in = wb_source(w, cv->input);
    wb_print(win, 1, 2, "input (i)  source %c: %s", 'A' + cv->input, in[0] ? in : "(none)");
    wb_print(win, 2, 2, "colour (c) %-6s mask (M) %-10s direction (S) %s", colours[cv->colour],
             masks[cv->mask], cv->swap ? "B to A" : "A to B");
    if (cv->pid > 0)
        wb_print(win, 3, 2, "%s: %s", cv->previewing ? "previewing" : "converting",
                 cv->line[0] ? cv->line : "starting");
    else
        wb_print(win, 3, 2, "P previews frame %d, R converts into output/", PREVIEW_FRAME);
    if (cv->preview && h > 6)
        wb_draw_image(w, win, 4, 1, h - 5, wd - 2, cv->preview, (long)(intptr_t)cv->preview);
}

void wb_convert_free(wb *w)
{
    if (w->conv.err_fd >= 0) close(w->conv.err_fd);
    img_free(w->conv.preview);
}

#endif
