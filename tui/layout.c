/* layout.c: the workbench's panels placed on the terminal (see layout.h). Large terminals get
 * every panel: Project above Faces on the left, Train above Convert on the right, Log along the
 * bottom. */
#include "layout.h"

#include <string.h>

static tui_rect rect(int y, int x, int h, int w)
{
    tui_rect r = {y, x, h > 0 ? h : 0, w > 0 ? w : 0};
    if (!r.h || !r.w) r.h = r.w = 0;
    return r;
}

void tui_layout_compute(tui_layout *out, int cols, int rows, tui_panel_id focus)
{
    memset(out, 0, sizeof *out);
    out->cols = cols, out->rows = rows;
    if (cols < TUI_MIN_COLS || rows < TUI_MIN_ROWS) {
        out->too_small = 1;
        return;
    }
    out->tabs = rect(0, 0, 1, cols);
    out->status = rect(rows - 1, 0, 1, cols);
    int top = 1, h = rows - 2; /* the space between tab bar and status line */
    if (cols < TUI_ALL_COLS || rows < TUI_ALL_ROWS) {
        out->panel[focus] = rect(top, 0, h, cols);
        return;
    }
    out->all = 1;
    int log_h = h / 6 > 8 ? h / 6 : 8;
    int main_h = h - log_h;
    int left_w = cols * 9 / 20; /* 45%: the face grid */
    int proj_h = 9;
    int train_h = main_h * 3 / 5;
    out->panel[TUI_PROJECT] = rect(top, 0, proj_h, left_w);
    out->panel[TUI_FACES] = rect(top + proj_h, 0, main_h - proj_h, left_w);
    out->panel[TUI_TRAIN] = rect(top, left_w, train_h, cols - left_w);
    out->panel[TUI_CONVERT] = rect(top + train_h, left_w, main_h - train_h, cols - left_w);
    out->panel[TUI_LOG] = rect(top + main_h, 0, log_h, cols);
}

int tui_rect_overlap(tui_rect a, tui_rect b)
{
    if (!a.h || !b.h) return 0;
    return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

const char *tui_panel_name(tui_panel_id p)
{
    static const char *const names[TUI_NPANELS] = {"Project", "Faces", "Train", "Convert", "Log"};
    return p >= 0 && p < TUI_NPANELS ? names[p] : "?";
}
