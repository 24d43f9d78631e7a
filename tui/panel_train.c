/* panel_train.c: the Train panel: start, pause, save and stop the trainer (in this process, or
 * the one already running in the project, attached through its socket), the loss curves of A and
 * B drawn in the terminal, the rates, and the preview grid the trainer writes at each save. */
#ifdef VS_HAVE_NCURSES
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/fsutil.h"
#include "wb.h"

#define HISTORY_MAX 20000 /* points kept; older ones are averaged in pairs beyond that */

static const char model_dir[] = "model";

/* ---- the loss history ----------------------------------------------------------------------- */

static void history_add(wb_train *t, long it, float a, float b)
{
    if (t->n && it <= t->it[t->n - 1]) return;
    if (t->n == HISTORY_MAX) { /* halve: average neighbours */
        int k = 0;
        for (int i = 0; i + 1 < t->n; i += 2, k++) {
            t->it[k] = t->it[i + 1];
            for (int s = 0; s < 2; s++) t->loss[s][k] = 0.5f * (t->loss[s][i] + t->loss[s][i + 1]);
        }
        t->n = k;
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->it = vs_realloc(t->it, sizeof *t->it * (size_t)t->cap);
        for (int s = 0; s < 2; s++)
            t->loss[s] = vs_realloc(t->loss[s], sizeof *t->loss[s] * (size_t)t->cap);
    }
    t->it[t->n] = it;
    t->loss[0][t->n] = a;
    t->loss[1][t->n] = b;
    t->n++;
}

/* The curves so far: model/loss.tsv (written at each save). */
static void history_load(wb *w)
{
    wb_train *t = &w->train;
    t->n = 0;
    char path[64];
    snprintf(path, sizeof path, "%s/%s", model_dir, TRAIN_LOG_NAME);
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        long it;
        float a, b;
        if (sscanf(line, "%ld %f %f", &it, &a, &b) == 3 && isfinite(a) && isfinite(b))
            history_add(t, it, a, b);
    }
    fclose(f);
}

/* ---- the trainer: here or attached ---------------------------------------------------------- */

int wb_train_running_here(const wb *w)
{
    return w->train.local;
}

static void attach(wb *w, rmt_client *cl)
{
    wb_train *t = &w->train;
    t->cl = cl;
    rmt_status rs;
    vs_err e;
    if (rmt_status_get(&rs, cl, &e) == 0) {
        t->remote_pid = rs.pid;
        t->st = rs.st;
        t->state = rs.state;
        t->have_status = 1;
    }
    wb_log(w, WB_INFO, "attached to the trainer running in this project (pid %d)", t->remote_pid);
    history_load(w);
    t->preview_serial = -1;
}

static void start(wb *w)
{
    wb_train *t = &w->train;
    if (t->local || t->cl) {
        wb_log(w, WB_INFO, "training is already running%s",
               t->cl ? " (in another process: attached)" : "");
        return;
    }
    vs_err e;
    int busy_pid = 0;
    int rc = rmt_server_open(&t->srv, &busy_pid, ".", &e);
    if (rc < 0) {
        wb_log(w, WB_ERROR, "%s", e.msg);
        return;
    }
    if (rc == 1) { /* another process trains this project: attach, never a second trainer */
        rmt_client *cl;
        if (rmt_connect(&cl, ".", &e) == 1)
            attach(w, cl);
        else
            wb_log(w, WB_ERROR, "a trainer is running in this project (pid %d) but does not answer",
                   busy_pid);
        return;
    }
    const vs_config *c = &w->c->cfg;
    if (train_opts_from_config(&t->to, c, &e)) goto fail;
    t->to.dir_a = "faces/a", t->to.dir_b = "faces/b", t->to.model_dir = model_dir;
    nn_precision prec = NN_PREC_AUTO;
    if (nn_parse_precision(&prec, c->precision) || nn_backend_open(&t->to.be, c->device, prec, &e))
        goto fail;
    if (!t->to.be->host_memory && (w->faces.ex_running || w->conv.running)) {
        /* the CUDA backend serves one job at a time (wb_job_backend) */
        wb_log(w, WB_WARN, "the GPU is busy with this workbench's %s: train when it ends",
               w->faces.ex_running ? "extraction" : "conversion");
        rmt_server_close(t->srv);
        t->srv = NULL;
        return;
    }
    nn_cpu_set_threads(c->threads);
    memset(&t->st, 0, sizeof t->st);
    t->events_seen = 0;
    job_start(&t->j, train_run, &t->to, &t->st, sizeof t->st);
    rmt_server_attach(t->srv, &t->j);
    t->local = 1;
    t->state = JOB_RUNNING;
    t->have_status = 0;
    history_load(w);
    t->preview_serial = -1;
    wb_log(w, WB_INFO, "training started (model/, faces/a, faces/b, %s)", t->to.be->name);
    return;
fail:
    wb_log(w, WB_ERROR, "cannot start training: %s", e.msg);
    rmt_server_close(t->srv);
    t->srv = NULL;
}

static void command(wb *w, job_cmd cmd)
{
    wb_train *t = &w->train;
    vs_err e;
    if (t->local)
        job_command(&t->j, cmd);
    else if (t->cl && rmt_command(t->cl, cmd, &e))
        wb_log(w, WB_ERROR, "%s", e.msg);
    else if (!t->cl)
        wb_log(w, WB_INFO, "no training is running (t starts it)");
}

static void finished_here(wb *w)
{
    wb_train *t = &w->train;
    vs_err e;
    rmt_server_attach(t->srv, NULL); /* before job_wait, which ends the job's mutex */
    if (job_wait(&t->j, &e))
        wb_log(w, WB_ERROR, "training stopped: %s", e.msg);
    else
        wb_log(w, WB_INFO, "training ended at iteration %ld (saved)", t->st.iteration);
    rmt_server_close(t->srv);
    t->srv = NULL;
    t->local = 0;
    t->state = JOB_DONE;
}

static void load_preview(wb *w)
{
    wb_train *t = &w->train;
    char path[64];
    snprintf(path, sizeof path, "%s/%s", model_dir, TRAIN_PREVIEW_NAME);
    struct stat sb;
    if (stat(path, &sb)) return;
    img *im;
    vs_err e;
    if (img_load(&im, path, &e)) return; /* being replaced: the next poll sees it */
    img_free(t->preview);
    t->preview = im;
    t->preview_mtime = sb.st_mtime;
    w->full_redraw = 1;
}

void wb_train_poll(wb *w)
{
    wb_train *t = &w->train;
    static time_t last_try;
    long serial_before = t->st.preview_serial;
    if (t->local) {
        train_status st;
        job_state s = job_snapshot(&t->j, &st);
        t->st = st, t->state = s;
        t->have_status = 1;
        if (st.events - t->events_seen > TRAIN_EVENTS) t->events_seen = st.events - TRAIN_EVENTS;
        for (; t->events_seen < st.events; t->events_seen++) {
            int slot = (int)(t->events_seen % TRAIN_EVENTS);
            wb_log(w, st.event_warning[slot] ? WB_WARN : WB_INFO, "train: %s", st.event[slot]);
        }
        if (s != JOB_RUNNING && s != JOB_PAUSED) finished_here(w);
    } else if (t->cl) {
        rmt_status rs;
        vs_err e;
        if (rmt_status_get(&rs, t->cl, &e)) {
            wb_log(w, WB_INFO, "the trainer (pid %d) ended at iteration %ld", t->remote_pid,
                   t->st.iteration);
            rmt_close(t->cl);
            t->cl = NULL;
            t->state = JOB_DONE;
        } else {
            t->st = rs.st, t->state = rs.state;
            t->have_status = !rs.starting;
        }
    } else if (time(NULL) != last_try) { /* someone may start training in this project */
        last_try = time(NULL);
        rmt_client *cl;
        vs_err e;
        int rc = rmt_connect(&cl, ".", &e);
        if (rc == 1)
            attach(w, cl);
        else if (rc < 0 && !t->have_status) {
            wb_log(w, WB_ERROR, "%s", e.msg);
            t->have_status = 1; /* say it once */
        }
    }
    if (t->have_status && t->st.phase == TRAIN_RUNNING && t->st.iteration > 0)
        history_add(t, t->st.iteration, (float)t->st.loss[0], (float)t->st.loss[1]);
    /* the preview grid: at each save, whoever wrote it */
    struct stat sb;
    char path[64];
    snprintf(path, sizeof path, "%s/%s", model_dir, TRAIN_PREVIEW_NAME);
    if (t->preview_serial < 0 || t->st.preview_serial != serial_before ||
        (stat(path, &sb) == 0 && sb.st_mtime != t->preview_mtime)) {
        t->preview_serial = t->st.preview_serial;
        load_preview(w);
    }
}

void wb_train_finish(wb *w)
{
    wb_train *t = &w->train;
    if (!t->local) return;
    job_command(&t->j, JOB_CMD_STOP);
    finished_here(w);
}

void wb_train_action(wb *w, tui_action a)
{
    wb_train *t = &w->train;
    switch (a) {
    case TUI_A_TRAIN_START: start(w); break;
    case TUI_A_TRAIN_PAUSE:
        command(w, t->state == JOB_PAUSED ? JOB_CMD_RESUME : JOB_CMD_PAUSE);
        break;
    case TUI_A_TRAIN_STOP:
        if (t->local || t->cl) wb_log(w, WB_INFO, "saving and stopping the trainer");
        command(w, JOB_CMD_STOP);
        break;
    case TUI_A_TRAIN_SAVE:
        if (t->local || t->cl) wb_log(w, WB_INFO, "saving now");
        command(w, JOB_CMD_SAVE);
        break;
    case TUI_A_PREVIEW: load_preview(w); break;
    case TUI_A_LOG_SCALE: t->log_scale = !t->log_scale; break;
    case TUI_A_SMOOTH: t->smooth = !t->smooth; break;
    default: break;
    }
}

/* ---- drawing -------------------------------------------------------------------------------- */

/* The two curves in the cells (y0, x0, h, wd) of win: one column per bucket of iterations. */
static void plot(wb *w, WINDOW *win, int y0, int x0, int h, int wd)
{
    wb_train *t = &w->train;
    int lab = 9; /* the axis labels */
    int pw = wd - lab;
    if (h < 4 || pw < 10) return;
    if (t->n < 2) {
        wb_print(win, y0 + h / 2, x0 + lab, "(the loss curves appear as training runs)");
        return;
    }
    float *col[2];
    col[0] = vs_malloc(sizeof(float) * (size_t)pw);
    col[1] = vs_malloc(sizeof(float) * (size_t)pw);
    float lo = INFINITY, hi = -INFINITY;
    for (int s = 0; s < 2; s++) {
        double ema = t->loss[s][0];
        double alpha = 2.0 / (1.0 + (t->n / 40 > 5 ? t->n / 40 : 5));
        int i = 0;
        for (int c = 0; c < pw; c++) {
            int end = (int)((long long)t->n * (c + 1) / pw);
            double sum = 0;
            int cnt = 0;
            for (; i < end; i++) {
                ema += alpha * (t->loss[s][i] - ema);
                sum += t->smooth ? ema : t->loss[s][i];
                cnt++;
            }
            float v = cnt ? (float)(sum / cnt) : NAN;
            if (cnt && t->log_scale) v = v > 1e-12f ? log10f(v) : -12.0f;
            col[s][c] = v;
            if (cnt && v < lo) lo = v;
            if (cnt && v > hi) hi = v;
        }
    }
    if (!(hi > lo)) hi = lo + 1e-3f;
    for (int c = 0; c < pw; c++)
        for (int s = 0; s < 2; s++) {
            if (isnan(col[s][c])) continue;
            int r = (int)lroundf((hi - col[s][c]) / (hi - lo) * (float)(h - 1));
            chtype prev = mvwinch(win, y0 + r, x0 + lab + c) & A_CHARTEXT;
            wattron(win, COLOR_PAIR(s ? WB_PAIR_B : WB_PAIR_A));
            mvwaddch(win, y0 + r, x0 + lab + c, s && prev == '*' ? '#' : s ? '+' : '*');
            wattroff(win, COLOR_PAIR(s ? WB_PAIR_B : WB_PAIR_A));
        }
    double top = t->log_scale ? pow(10, hi) : hi, bot = t->log_scale ? pow(10, lo) : lo;
    wb_print(win, y0, x0, "%8.4g", top);
    wb_print(win, y0 + h - 1, x0, "%8.4g", bot);
    wb_print(win, y0 + h / 2, x0, "%s", t->log_scale ? "   (log)" : "   (lin)");
    free(col[0]);
    free(col[1]);
}

void wb_train_draw(wb *w)
{
    wb_train *t = &w->train;
    WINDOW *win = w->win[TUI_TRAIN];
    int h, wd;
    getmaxyx(win, h, wd);
    wb_frame(w, TUI_TRAIN, "Train");
    const train_status *st = &t->st;
    const char *state = t->local ? (t->state == JOB_PAUSED ? "paused" : "running here")
                        : t->cl  ? (t->state == JOB_PAUSED ? "paused (attached)" : "attached")
                                 : "stopped";
    if (!t->local && !t->cl && !t->have_status) {
        wb_print(win, 1, 2, "not training: t starts training on faces/a and faces/b into model/");
        wb_print(win, 2, 2, "(settings from [train] in visage.ini; ? lists the keys)");
    } else {
        char pid[32] = "";
        if (t->cl) snprintf(pid, sizeof pid, " pid %d", t->remote_pid);
        wb_print(win, 1, 2, "%s%s  %s  %.1fM parameters  batch %d  faces A %d B %d", state, pid,
                 st->arch[0] ? st->arch : "-", (double)st->params / 1e6, st->batch, st->faces[0],
                 st->faces[1]);
        char target[32] = "";
        if (st->target > 0) snprintf(target, sizeof target, "/%ld", st->target);
        wb_print(win, 2, 2, "iteration %ld%s  loss A %.5f  B %.5f%s", st->iteration, target,
                 st->loss[0], st->loss[1],
                 st->phase == TRAIN_LOADING && (t->local || t->cl) ? "  (loading)" : "");
        char el[32], tr[32], eta[32] = "";
        fmt_duration(el, sizeof el, st->elapsed);
        fmt_duration(tr, sizeof tr, st->trained);
        if (st->target > st->iteration && st->it_s > 0) {
            char d[32];
            fmt_duration(d, sizeof d, (double)(st->target - st->iteration) / st->it_s);
            snprintf(eta, sizeof eta, "  to target %s", d);
        }
        wb_print(win, 3, 2, "%.2f it/s  %.0f EGs/s  elapsed %s  trained %s%s", st->it_s, st->egs_s,
                 el, tr, eta);
        if (st->gpu_mem)
            wb_print(win, 4, 2, "GPU %.2f GiB (peak %.2f)%s", (double)st->gpu_mem / (1 << 30),
                     (double)st->gpu_mem_peak / (1 << 30), st->gpu_util >= 0 ? "" : "");
        else
            wb_print(win, 4, 2, "on the CPU");
        if (st->gpu_mem && st->gpu_util >= 0) wb_print(win, 4, 40, "busy %d%%", st->gpu_util);
        if (st->saved_iteration >= 0)
            wb_print(win, 5, 2, "saved at iteration %ld (%ld saves this run)", st->saved_iteration,
                     st->saves);
    }
    /* the preview grid on the right of a wide panel, else under the curves */
    int pv_w = 0, pv_h = 0;
    if (t->preview && wd >= 100)
        pv_w = wd * 2 / 5, pv_h = h - 8;
    else if (t->preview && h >= 30)
        pv_w = wd - 2, pv_h = (h - 8) / 2;
    int plot_w = (pv_w && wd >= 100) ? wd - pv_w - 3 : wd - 3;
    int plot_h = (pv_h && wd < 100) ? h - 8 - pv_h : h - 8;
    wattron(win, COLOR_PAIR(WB_PAIR_A));
    wb_print(win, 6, 2, "* A");
    wattroff(win, COLOR_PAIR(WB_PAIR_A));
    wattron(win, COLOR_PAIR(WB_PAIR_B));
    wb_print(win, 6, 6, "+ B");
    wattroff(win, COLOR_PAIR(WB_PAIR_B));
    wb_print(win, 6, 11, "loss, %s%s (L, m)", t->log_scale ? "log" : "linear",
             t->smooth ? ", smoothed" : "");
    plot(w, win, 7, 1, plot_h, plot_w);
    if (pv_w) {
        int py = 7 + (wd >= 100 ? 0 : plot_h), px = wd >= 100 ? wd - pv_w - 1 : 1;
        wb_draw_image(w, win, py, px, pv_h, pv_w, t->preview, (long)(intptr_t)t->preview);
    }
}

void wb_train_free(wb *w)
{
    wb_train *t = &w->train;
    if (t->cl) rmt_close(t->cl);
    free(t->it);
    free(t->loss[0]);
    free(t->loss[1]);
    img_free(t->preview);
}

#endif
