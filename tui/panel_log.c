/* panel_log.c: the Log panel: what the jobs said, the errors and warnings first, then the rest,
 * newest last. Everything is also in PROJECT/visage.log. */
#ifdef VS_HAVE_NCURSES
#include <stdio.h>
#include <time.h>

#include "wb.h"

void wb_log_draw(wb *w)
{
    WINDOW *win = w->win[TUI_LOG];
    int h, wd;
    getmaxyx(win, h, wd);
    (void)wd;
    wb_frame(w, TUI_LOG, "Log");
    long first = w->n_log > WB_LOG_LINES ? w->n_log - WB_LOG_LINES : 0;
    int rows = h - 2, y = 1;
    /* errors and warnings (the latest few), then the newest messages that still fit */
    int n_bad = 0;
    for (long i = first; i < w->n_log; i++) n_bad += w->log[i % WB_LOG_LINES].level != WB_INFO;
    int show_bad = n_bad < rows / 2 ? n_bad : rows / 2;
    int skip = n_bad - show_bad;
    for (long i = first; i < w->n_log && y <= show_bad; i++) {
        const wb_log_line *l = &w->log[i % WB_LOG_LINES];
        if (l->level == WB_INFO || skip-- > 0) continue;
        char ts[16];
        strftime(ts, sizeof ts, "%H:%M:%S", localtime(&l->t));
        wattron(win, COLOR_PAIR(l->level == WB_ERROR ? WB_PAIR_ERROR : WB_PAIR_WARN) | A_BOLD);
        wb_print(win, y++, 2, "%s %s %s", ts,
                 l->level == WB_ERROR ? "error:" : "warning:", l->text);
        wattroff(win, COLOR_PAIR(l->level == WB_ERROR ? WB_PAIR_ERROR : WB_PAIR_WARN) | A_BOLD);
    }
    int left = rows - (y - 1);
    long start = w->n_log - left > first ? w->n_log - left : first;
    for (long i = start; i < w->n_log; i++) {
        const wb_log_line *l = &w->log[i % WB_LOG_LINES];
        char ts[16];
        strftime(ts, sizeof ts, "%H:%M:%S", localtime(&l->t));
        wb_print(win, y++, 2, "%s %s", ts, l->text);
    }
}

#endif
