/* panel_convert.c: the Convert panel: the input (a side's source), the options, a before/after
 * preview of one frame and the conversion itself into output/, with its progress: the conversion
 * job of `visage convert` (core/convert_job.h), run in this process. */
#ifdef VS_HAVE_NCURSES
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/fsutil.h"
#include "../core/video.h"
#include "wb.h"

static const char *const colour_names[] = {"avg", "rct", "hist", "none"};
static const cv_color colours[] = {CV_COLOR_AVG, CV_COLOR_RCT, CV_COLOR_HIST, CV_COLOR_NONE};
static const char *const mask_names[] = {"extended", "components", "box"};
static const cv_mask masks[] = {CV_MASK_EXTENDED, CV_MASK_COMPONENTS, CV_MASK_BOX};
#define N_COLOURS 4
#define N_MASKS 3
#define PREVIEW_FRAME 0
#define PREVIEW_PATH "output/.preview.png"

/* output/NAME-a2b.mp4 for a video, .png for an image, a folder for a folder */
static int output_for(char *out, size_t n, const char *input, int swap, vs_err *e)
{
    vs_media kind;
    if (vid_probe(&kind, input, e)) return -1;
    if (kind == VS_MEDIA_NONE) return vs_fail(e, "%s: not a video, an image or a folder", input);
    const char *base = fs_basename(input);
    const char *dot = strrchr(base, '.');
    int len = dot && kind != VS_MEDIA_DIR ? (int)(dot - base) : (int)strlen(base);
    const char *ext = kind == VS_MEDIA_VIDEO ? ".mp4" : kind == VS_MEDIA_IMAGE ? ".png" : "";
    snprintf(out, n, "output/%.*s-%s%s", len, base, swap ? "b2a" : "a2b", ext);
    return 0;
}

static void start(wb *w, int preview)
{
    wb_convert *cv = &w->conv;
    if (cv->running) {
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
    const vs_config *c = &w->c->cfg;
    cvjob_request *rq = &cv->rq;
    memset(rq, 0, sizeof *rq);
    snprintf(cv->input_path, sizeof cv->input_path, "%s", input);
    if (preview)
        snprintf(cv->output, sizeof cv->output, "%s", PREVIEW_PATH);
    else if (output_for(cv->output, sizeof cv->output, input, cv->swap, &e))
        goto fail;
    if (fs_mkdirs("output", &e) || wb_job_backend(w, &rq->be, "the conversion", &e)) goto fail;
    rq->cfg = *c;
    rq->exe_dir = w->c->exe_dir;
    rq->input = cv->input_path;
    rq->output = cv->output;
    rq->model_dir = "model";
    cv_opts_default(&rq->co);
    rq->co.color = colours[cv->colour];
    rq->co.mask = masks[cv->mask];
    if (cv->swap) rq->co.side = 0;
    vout_opts_default(&rq->vo);
    rq->smooth = 1.0f;
    rq->preview_frame = preview ? PREVIEW_FRAME : -1;
    rq->mark = 1;
    memset(&cv->st, 0, sizeof cv->st);
    job_start(&cv->j, cvjob_run, rq, &cv->st, sizeof cv->st);
    cv->running = 1;
    cv->previewing = preview;
    wb_log(w, WB_INFO, "%s %s into %s (colour %s, mask %s%s)",
           preview ? "previewing" : "converting", input, cv->output, colour_names[cv->colour],
           mask_names[cv->mask], cv->swap ? ", B to A" : "");
    return;
fail:
    wb_log(w, WB_ERROR, "%s", e.msg);
}

void wb_convert_poll(wb *w)
{
    wb_convert *cv = &w->conv;
    if (!cv->running) return;
    job_state s = job_snapshot(&cv->j, &cv->st);
    if (s == JOB_RUNNING || s == JOB_PAUSED) return;
    vs_err e;
    int rc = job_wait(&cv->j, &e);
    cv->running = 0;
    for (int k = cv->st.warnings > CVJOB_WARNINGS ? cv->st.warnings - CVJOB_WARNINGS : 0;
         k < cv->st.warnings; k++)
        wb_log(w, WB_WARN, "%s", cv->st.warning[k % CVJOB_WARNINGS]);
    if (rc) {
        wb_log(w, strstr(e.msg, "stopped") ? WB_INFO : WB_ERROR, "%s", e.msg);
    } else if (cv->previewing) {
        img *im;
        if (img_load(&im, cv->output, &e) == 0) {
            img_free(cv->preview);
            cv->preview = im;
            w->full_redraw = 1;
        }
        unlink(cv->output);
        wb_log(w, WB_INFO, "preview of frame %d: before | after (%lld face%s swapped)",
               PREVIEW_FRAME, (long long)cv->st.faces, cv->st.faces == 1 ? "" : "s");
    } else {
        wb_log(w, WB_INFO, "converted: %s (%lld %s, %lld faces swapped)", cv->st.written,
               (long long)cv->st.done, cv->st.kind == VS_MEDIA_VIDEO ? "frames" : "images",
               (long long)cv->st.faces);
    }
}

void wb_convert_finish(wb *w)
{
    if (!w->conv.running) return;
    job_command(&w->conv.j, JOB_CMD_STOP);
    vs_err e;
    job_wait(&w->conv.j, &e);
    w->conv.running = 0;
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
        if (cv->running) job_command(&cv->j, JOB_CMD_STOP);
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
    wb_print(win, 2, 2, "colour (c) %-6s mask (M) %-10s direction (S) %s", colour_names[cv->colour],
             mask_names[cv->mask], cv->swap ? "B to A" : "A to B");
    const cvjob_status *st = &cv->st;
    if (cv->running && st->phase == CVJOB_LOADING) {
        wb_print(win, 3, 2, "%s: loading the model", cv->previewing ? "previewing" : "converting");
    } else if (cv->running) {
        double work = st->elapsed - st->work_started;
        double rate = work > 0 ? (double)st->done / work : 0;
        wb_print(win, 3, 2, "%s %lld/%lld, %lld faces, %.1f/s",
                 cv->previewing ? "previewing" : "converting", (long long)st->done,
                 (long long)st->total, (long long)st->faces, rate);
        wb_bar(win, 3, 48, wd - 50, st->total > 0 ? (double)st->done / (double)st->total : 0);
    } else {
        wb_print(win, 3, 2, "P previews frame %d, R converts into output/", PREVIEW_FRAME);
    }
    if (cv->preview && h > 6)
        wb_draw_image(w, win, 4, 1, h - 5, wd - 2, cv->preview, (long)(intptr_t)cv->preview);
}

void wb_convert_free(wb *w)
{
    img_free(w->conv.preview);
}

#endif
