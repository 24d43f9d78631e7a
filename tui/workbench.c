/* workbench.c: the ncurses workbench: one loop that reads keys, polls the jobs, lays the panels
 * out for the terminal's size, draws them and then the images (sixel or half blocks). Signal
 * handlers only set flags; a lost terminal (SIGHUP) leaves a running trainer going, detached. */
#include "workbench.h"

#ifdef VS_HAVE_NCURSES

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/fsutil.h"
#include "../core/nn/backend.h"
#include "termimg.h"
#include "wb.h"

static volatile sig_atomic_t got_hup, got_winch;

static void on_hup(int sig)
{
    (void)sig;
    got_hup = 1;
}

static void on_winch(int sig)
{
    (void)sig;
    got_winch = 1;
}

static int curses_on;

/* Every exit path, a bug's abort included, gives the terminal back first. */
static void restore_terminal(void)
{
    if (curses_on) {
        curses_on = 0;
        endwin();
    }
}

/* ---- the log ------------------------------------------------------------------------------- */

void wb_log(wb *w, int level, const char *fmt, ...)
{
    wb_log_line *l = &w->log[w->n_log % WB_LOG_LINES];
    w->n_log++;
    l->t = time(NULL);
    l->level = level;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text, sizeof l->text, fmt, ap);
    va_end(ap);
    if (w->logf) {
        char ts[32];
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", localtime(&l->t));
        fprintf(w->logf, "%s %s%s\n", ts,
                level == WB_ERROR  ? "error: "
                : level == WB_WARN ? "warning: "
                                   : "",
                l->text);
        fflush(w->logf);
    }
    if (level != WB_INFO || !w->status_msg[0] || time(NULL) >= w->status_until) {
        snprintf(w->status_msg, sizeof w->status_msg, "%s", l->text);
        w->status_level = level;
        w->status_until = time(NULL) + (level == WB_INFO ? 4 : 10);
    }
}

/* ---- drawing helpers ----------------------------------------------------------------------- */

void wb_print(WINDOW *win, int y, int x, const char *fmt, ...)
{
    int h, wd;
    getmaxyx(win, h, wd);
    if (y < 0 || y >= h || x >= wd - 1) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    mvwaddnstr(win, y, x, buf, wd - 1 - x);
}

void wb_bar(WINDOW *win, int y, int x, int width, double frac)
{
    if (width < 3) return;
    if (!(frac >= 0)) frac = 0;
    if (frac > 1) frac = 1;
    int fill = (int)(frac * (width - 2) + 0.5);
    mvwaddch(win, y, x, '[');
    for (int i = 0; i < width - 2; i++) waddch(win, i < fill ? '#' : '-');
    waddch(win, ']');
}

void wb_frame(wb *w, tui_panel_id p, const char *title)
{
    WINDOW *win = w->win[p];
    werase(win);
    int focused = w->lay.all && p == w->focus;
    if (focused) wattron(win, COLOR_PAIR(WB_PAIR_FOCUS) | A_BOLD);
    box(win, 0, 0);
    if (focused) wattroff(win, COLOR_PAIR(WB_PAIR_FOCUS) | A_BOLD);
    wattron(win, A_BOLD);
    wb_print(win, 0, 2, " %d %s ", (int)p + 1, title);
    wattroff(win, A_BOLD);
}

void wb_draw_image(wb *w, WINDOW *win, int y, int x, int h, int wd, const img *im, long serial)
{
    if (!im || h < 1 || wd < 1 || w->n_img >= WB_MAX_IMAGES) return;
    int by, bx;
    getbegyx(win, by, bx);
    w->img[w->n_img++] = (wb_image){by + y, bx + x, h, wd, im, serial};
}

void wb_ago(char *buf, size_t n, time_t t)
{
    long s = (long)(time(NULL) - t);
    if (s < 0) s = 0;
    if (s < 90)
        snprintf(buf, n, "%lds ago", s);
    else if (s < 90 * 60)
        snprintf(buf, n, "%ldm ago", s / 60);
    else if (s < 48 * 3600)
        snprintf(buf, n, "%ldh ago", s / 3600);
    else
        snprintf(buf, n, "%ldd ago", s / 86400);
}

const char *wb_source(const wb *w, int side)
{
    return side ? w->c->cfg.source_b : w->c->cfg.source_a;
}

/* Writes the queued images to the terminal, after doupdate. ncurses does not know they are
 * there, so when the set of images changes at all the whole screen is repainted first (the
 * caller sets full_redraw) and every image drawn again. */
static void emit_images(wb *w, int all)
{
    int same = w->n_img == w->n_shown;
    for (int i = 0; same && i < w->n_img; i++)
        same = memcmp(&w->img[i], &w->shown[i], sizeof w->img[i]) == 0;
    if (same && !all) return;
    if (!same && !all) { /* stale pictures would stay where ncurses thinks there are blanks */
        clearok(curscr, TRUE);
        doupdate();
    }
    FILE *out = stdout;
    for (int i = 0; i < w->n_img; i++) {
        const wb_image *m = &w->img[i];
        if (w->sixel) {
            char *seq;
            size_t len;
            vs_err e;
            if (timg_sixel(&seq, &len, m->im->px, m->im->w, m->im->h, m->im->w * 3,
                           m->w * w->cell_w, m->h * w->cell_h, &e) == 0) {
                fprintf(out, "\033[%d;%dH", m->y + 1, m->x + 1);
                if (w->passthrough) {
                    size_t wl;
                    char *wrapped = timg_tmux_wrap(seq, len, &wl);
                    fwrite(wrapped, 1, wl, out);
                    free(wrapped);
                } else {
                    fwrite(seq, 1, len, out);
                }
                free(seq);
                continue;
            }
        }
        int oc, orow;
        char *s = timg_halfblock(m->im->px, m->im->w, m->im->h, m->im->w * 3, m->w, m->h,
                                 w->truecolour ? TIMG_TRUECOLOUR : TIMG_256, &oc, &orow);
        if (!s) continue;
        int row = 0;
        for (char *line = s, *next; line && row < m->h; line = next, row++) {
            next = strchr(line, '\n');
            if (next) *next++ = 0;
            fprintf(out, "\033[%d;%dH%s", m->y + 1 + row, m->x + 1 + (m->w - oc) / 2, line);
        }
        free(s);
    }
    /* the cursor back where ncurses left it, attributes reset */
    int cy, cx;
    getyx(curscr, cy, cx);
    fprintf(out, "\033[0m\033[%d;%dH", cy + 1, cx + 1);
    fflush(out);
    memcpy(w->shown, w->img, sizeof w->img[0] * (size_t)w->n_img);
    w->n_shown = w->n_img;
}

/* ---- layout and the fixed parts of the screen ---------------------------------------------- */

static void relayout(wb *w)
{
    int rows, cols;
    getmaxyx(stdscr, rows, cols);
    tui_layout_compute(&w->lay, cols, rows, w->focus);
    for (int p = 0; p < TUI_NPANELS; p++) {
        if (w->win[p]) delwin(w->win[p]);
        w->win[p] = NULL;
        tui_rect r = w->lay.panel[p];
        if (r.h) w->win[p] = newwin(r.h, r.w, r.y, r.x);
    }
    struct winsize ws;
    w->cell_w = 10, w->cell_h = 20;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_xpixel && ws.ws_col && ws.ws_row) {
        w->cell_w = ws.ws_xpixel / ws.ws_col;
        w->cell_h = ws.ws_ypixel / ws.ws_row;
    }
    w->full_redraw = 1;
}

static void draw_tabs(wb *w)
{
    tui_rect r = w->lay.tabs;
    move(r.y, 0);
    clrtoeol();
    int x = 0;
    for (int p = 0; p < TUI_NPANELS; p++) {
        int on = p == (int)w->focus;
        if (on) attron(A_REVERSE | A_BOLD);
        mvprintw(r.y, x, " %d %s ", p + 1, tui_panel_name((tui_panel_id)p));
        if (on) attroff(A_REVERSE | A_BOLD);
        x += (int)strlen(tui_panel_name((tui_panel_id)p)) + 4;
    }
    const char *hint = "? help  q quit";
    if (x + (int)strlen(hint) + 2 < r.w) mvaddstr(r.y, r.w - (int)strlen(hint) - 1, hint);
}

static void draw_status(wb *w)
{
    tui_rect r = w->lay.status;
    move(r.y, 0);
    clrtoeol();
    char right[160] = "";
    const train_status *st = &w->train.st;
    if (w->train.local || w->train.cl) {
        const char *what = w->train.state == JOB_PAUSED ? "paused" : "training";
        snprintf(right, sizeof right, "%s%s: iteration %ld  %.1f it/s", what,
                 w->train.cl ? " (attached)" : "", st->iteration, st->it_s);
    }
    if (w->faces.ex_running) {
        size_t l = strlen(right);
        snprintf(right + l, sizeof right - l, "%sextracting %lld faces", l ? "  |  " : "",
                 (long long)w->faces.ex_st.kept);
    }
    if (w->conv.running) {
        size_t l = strlen(right);
        snprintf(right + l, sizeof right - l, "%sconverting", l ? "  |  " : "");
    }
    int rl = (int)strlen(right);
    if (w->status_msg[0] && time(NULL) < w->status_until) {
        int pair = w->status_level == WB_ERROR  ? WB_PAIR_ERROR
                   : w->status_level == WB_WARN ? WB_PAIR_WARN
                                                : 0;
        if (pair) attron(COLOR_PAIR(pair) | A_BOLD);
        mvaddnstr(r.y, 0, w->status_msg, r.w - rl - 2 > 0 ? r.w - rl - 2 : 0);
        if (pair) attroff(COLOR_PAIR(pair) | A_BOLD);
    } else {
        mvaddnstr(r.y, 0, w->project, r.w - rl - 2 > 0 ? r.w - rl - 2 : 0);
    }
    if (rl < r.w) mvaddstr(r.y, r.w - rl, right);
}

/* The help: the key table, grouped by where each key works. */
static void draw_help(wb *w)
{
    int rows = w->lay.rows, cols = w->lay.cols;
    int hw = cols - 4 < 84 ? cols - 4 : 84, hh = rows - 4;
    WINDOW *h = newwin(hh, hw, 2, (cols - hw) / 2);
    werase(h);
    box(h, 0, 0);
    wattron(h, A_BOLD);
    wb_print(h, 0, 2, " visage %s: keys (any key closes; j/k scroll) ", VISAGE_VERSION);
    wattroff(h, A_BOLD);
    int line = 0, where = -2;
    int y = 1;
    for (const tui_key *k = tui_keys; k->key && y < hh - 1; k++) {
        if (k->where != where) {
            where = k->where;
            if (line++ >= w->help_top && y < hh - 1) {
                wattron(h, A_BOLD | COLOR_PAIR(WB_PAIR_TITLE));
                wb_print(h, y++, 2, "%s",
                         where == TUI_ANYWHERE ? "Anywhere" : tui_panel_name((tui_panel_id)where));
                wattroff(h, A_BOLD | COLOR_PAIR(WB_PAIR_TITLE));
            }
        }
        /* keys for one action share a line: "Up k  move up" */
        char names[64] = "";
        const tui_key *last = k;
        for (const tui_key *o = k; o->key && o->action == k->action && o->where == k->where; o++) {
            char name[32];
            tui_key_name(name, sizeof name, o->key);
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", l ? " " : "", name);
            last = o;
        }
        if (line++ >= w->help_top) wb_print(h, y++, 4, "%-10s %s", names, last->help);
        k = last;
    }
    wnoutrefresh(h);
    delwin(h);
}

static void draw(wb *w)
{
    w->n_img = 0;
    if (w->lay.too_small) {
        erase();
        mvaddstr(0, 0, "terminal too small for the workbench");
        wnoutrefresh(stdscr);
        doupdate();
        return;
    }
    if (w->full_redraw) {
        clearok(curscr, TRUE);
        erase();
    }
    draw_tabs(w);
    draw_status(w);
    wnoutrefresh(stdscr);
    for (int p = 0; p < TUI_NPANELS; p++) {
        if (!w->win[p]) continue;
        switch ((tui_panel_id)p) {
        case TUI_PROJECT: wb_project_draw(w); break;
        case TUI_FACES: wb_faces_draw(w); break;
        case TUI_TRAIN: wb_train_draw(w); break;
        case TUI_CONVERT: wb_convert_draw(w); break;
        case TUI_LOG: wb_log_draw(w); break;
        default: break;
        }
        wnoutrefresh(w->win[p]);
    }
    if (w->help) {
        w->n_img = 0; /* the help covers the pictures */
        draw_help(w);
    }
    if (w->quit_asked) {
        WINDOW *q = newwin(5, 62, w->lay.rows / 2 - 2,
                           (w->lay.cols - 62) / 2 > 0 ? (w->lay.cols - 62) / 2 : 0);
        werase(q);
        box(q, 0, 0);
        wb_print(q, 1, 2, "A job is running here. Quit and stop it?");
        wb_print(q, 2, 2, "Training saves first. y: quit   any other key: stay");
        wnoutrefresh(q);
        delwin(q);
        w->n_img = 0;
    }
    doupdate();
    emit_images(w, w->full_redraw);
    w->full_redraw = 0;
}

/* ---- keys ---------------------------------------------------------------------------------- */

static void focus(wb *w, tui_panel_id p)
{
    if (p == w->focus) return;
    w->focus = p;
    relayout(w);
}

static int jobs_here(const wb *w)
{
    return wb_train_running_here(w) || w->faces.ex_running || w->conv.running;
}

int wb_job_backend(wb *w, const nn_backend **out, const char *what, vs_err *e)
{
    nn_precision prec = NN_PREC_AUTO;
    if (nn_parse_precision(&prec, w->c->cfg.precision))
        return vs_fail(e, "unknown precision '%s' in visage.ini [train]", w->c->cfg.precision);
    if (nn_backend_open(out, w->c->cfg.device, prec, e)) return -1;
    if (!(*out)->host_memory && jobs_here(w)) {
        *out = nn_cpu_backend();
        wb_log(w, WB_INFO, "%s runs on the CPU: another job of this workbench has the GPU", what);
    }
    return 0;
}

/* Returns 1 when the workbench should end. */
static int on_key(wb *w, int key)
{
    if (w->quit_asked) {
        w->quit_asked = 0;
        w->full_redraw = 1;
        return key == 'y' || key == 'Y';
    }
    if (w->help) {
        if (key == 'j' || key == KEY_DOWN) {
            w->help_top++;
        } else if ((key == 'k' || key == KEY_UP) && w->help_top > 0) {
            w->help_top--;
        } else {
            w->help = 0;
            w->full_redraw = 1;
            /* a panel's key goes there: every panel is reachable from the help */
            tui_action a = tui_key_action(key, w->focus);
            if (a >= TUI_A_GOTO_PROJECT && a <= TUI_A_GOTO_LOG)
                focus(w, (tui_panel_id)(TUI_PROJECT + (a - TUI_A_GOTO_PROJECT)));
        }
        return 0;
    }
    if (w->faces.frame) { /* any key closes the frame view */
        img_free(w->faces.frame);
        w->faces.frame = NULL;
        w->full_redraw = 1;
        return 0;
    }
    if (key == KEY_RESIZE) {
        relayout(w);
        return 0;
    }
    tui_action a = tui_key_action(key, w->focus);
    switch (a) {
    case TUI_A_NONE: return 0;
    case TUI_A_QUIT:
        if (!jobs_here(w)) return 1;
        w->quit_asked = 1;
        return 0;
    case TUI_A_HELP: w->help = 1, w->help_top = 0; return 0;
    case TUI_A_REDRAW: relayout(w); return 0;
    case TUI_A_NEXT_PANEL: focus(w, (tui_panel_id)((w->focus + 1) % TUI_NPANELS)); return 0;
    case TUI_A_PREV_PANEL:
        focus(w, (tui_panel_id)((w->focus + TUI_NPANELS - 1) % TUI_NPANELS));
        return 0;
    case TUI_A_GOTO_PROJECT: focus(w, TUI_PROJECT); return 0;
    case TUI_A_GOTO_FACES: focus(w, TUI_FACES); return 0;
    case TUI_A_GOTO_TRAIN: focus(w, TUI_TRAIN); return 0;
    case TUI_A_GOTO_CONVERT: focus(w, TUI_CONVERT); return 0;
    case TUI_A_GOTO_LOG: focus(w, TUI_LOG); return 0;
    default: break;
    }
    switch (w->focus) {
    case TUI_FACES: wb_faces_action(w, a); break;
    case TUI_TRAIN: wb_train_action(w, a); break;
    case TUI_CONVERT: wb_convert_action(w, a); break;
    default: break;
    }
    return 0;
}

/* ---- the terminal going away ---------------------------------------------------------------- */

/* SIGHUP: nothing can be drawn any more. A trainer running here goes on (saving as it is told)
 * with its messages in PROJECT/visage.log, and another `visage` attaches to it through the
 * project's socket; everything else stops. */
static void detach(wb *w)
{
    w->detached = 1;
    restore_terminal();
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > 2) close(fd);
    }
    if (w->faces.ex_running) job_command(&w->faces.ex_job, JOB_CMD_STOP);
    if (w->conv.running) job_command(&w->conv.j, JOB_CMD_STOP);
    wb_log(w, WB_WARN, "the terminal went away (SIGHUP)%s",
           wb_train_running_here(w) ? ": training goes on; run visage in the project to attach"
                                    : "");
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void poll_jobs(wb *w)
{
    wb_faces_poll(w);
    wb_train_poll(w);
    wb_convert_poll(w);
}

static int start_terminal(wb *w)
{
    /* what the terminal can show, asked before curses takes it over */
    const char *ct = getenv("COLORTERM");
    w->truecolour = ct && (strstr(ct, "truecolor") || strstr(ct, "24bit"));
    const char *force = getenv("VISAGE_IMAGES"); /* sixel | blocks | (unset: ask) */
    int blocks = force && !strcmp(force, "blocks"), forced = force && !strcmp(force, "sixel");
    int ask = !blocks && isatty(STDIN_FILENO), in_tmux = getenv("TMUX") != NULL;
    /* the terminal draws sixel (or, under tmux, tmux itself does: then sixel goes to it as is);
     * else, under tmux, the terminal outside may, reached through tmux's passthrough */
    int direct = ask && timg_query_sixel(STDIN_FILENO, 300, 0);
    int outer = ask && in_tmux && !direct && timg_query_sixel(STDIN_FILENO, 300, 1);
    w->sixel = !blocks && (forced || direct || outer);
    w->passthrough = outer || (forced && in_tmux && !direct);
    if (!initscr()) return -1;
    curses_on = 1;
    vs_on_bug(restore_terminal);
    atexit(restore_terminal);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    timeout(100);
    set_escdelay(25);
    if (has_colors()) {
        start_color();
        use_default_colors();
        init_pair(WB_PAIR_TITLE, COLOR_CYAN, -1);
        init_pair(WB_PAIR_FOCUS, COLOR_CYAN, -1);
        init_pair(WB_PAIR_WARN, COLOR_YELLOW, -1);
        init_pair(WB_PAIR_ERROR, COLOR_RED, -1);
        init_pair(WB_PAIR_A, COLOR_CYAN, -1);
        init_pair(WB_PAIR_B, COLOR_YELLOW, -1);
    }
    return 0;
}

int tui_workbench(cli *c)
{
    if (!fs_exists("visage.ini")) {
        char cwd[PATH_MAX];
        fprintf(stderr,
                "visage: %s is not a project folder (it has no visage.ini): make one with "
                "'visage init DIR', then 'visage -C DIR'\n",
                getcwd(cwd, sizeof cwd) ? cwd : ".");
        return EXIT_BAD_INPUT;
    }
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "visage: the workbench needs a terminal (run a command instead: visage "
                        "--help)\n");
        return EXIT_USAGE;
    }
    setlocale(LC_ALL, "");
    wb *w = vs_calloc(1, sizeof *w);
    w->c = c;
    if (!getcwd(w->project, sizeof w->project)) snprintf(w->project, sizeof w->project, ".");
    w->logf = fopen("visage.log", "a");
    w->focus = TUI_PROJECT;
    w->faces.order = -1;
    w->faces.threshold = c->cfg.similarity;
    w->faces.loaded_side = -1;
    w->train.log_scale = 1;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, NULL);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (start_terminal(w)) {
        fprintf(stderr, "visage: cannot start the terminal interface (TERM=%s)\n",
                getenv("TERM") ? getenv("TERM") : "");
        free(w);
        return EXIT_BAD_INPUT;
    }
    wb_log(w, WB_INFO, "workbench on %s (%s images)", w->project,
           w->sixel ? "sixel" : "half-block");
    relayout(w);
    wb_train_poll(w); /* attaches to a trainer already running in this project */
    int stopping = 0;
    for (;;) {
        if (got_hup && !w->detached) detach(w);
        if (got_stop_signal && !stopping) {
            stopping = 1;
            wb_log(w, WB_INFO, "stopping (signal)");
        }
        if (w->detached || stopping) {
            if (stopping) wb_train_finish(w);
            poll_jobs(w);
            if (!wb_train_running_here(w)) break;
            struct timespec ts = {0, 200 * 1000 * 1000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (got_winch) {
            got_winch = 0;
            /* ncurses sees the new size through KEY_RESIZE; this catches a resize it missed */
            struct winsize ws;
            if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) resizeterm(ws.ws_row, ws.ws_col);
            relayout(w);
        }
        poll_jobs(w);
        draw(w);
        int key = getch();
        if (key == ERR) continue;
        if (on_key(w, key)) break;
        /* drain what is queued, so holding a key does not lag */
        while (!w->help && (key = getch()) != ERR)
            if (on_key(w, key)) goto done;
    }
done:
    if (!w->detached) restore_terminal();
    wb_train_finish(w);
    if (w->faces.ex_running) {
        job_command(&w->faces.ex_job, JOB_CMD_STOP);
        vs_err e;
        job_wait(&w->faces.ex_job, &e);
        w->faces.ex_running = 0;
    }
    wb_convert_finish(w);
    wb_faces_free(w);
    wb_train_free(w);
    wb_convert_free(w);
    for (int p = 0; p < TUI_NPANELS; p++)
        if (w->win[p]) delwin(w->win[p]);
    if (w->logf) fclose(w->logf);
    free(w);
    return stopping ? EXIT_STOPPED : 0;
}

#else /* built without ncurses: the command line only */

#include <stdio.h>

int tui_workbench(cli *c)
{
    (void)c;
    fprintf(stderr,
            "visage: this visage was built without ncurses, so it has no workbench: install "
            "libncurses-dev (make deps) and run make again\n");
    return EXIT_BAD_INPUT;
}

#endif
