/* layout.h: where each panel of the workbench goes, as a pure function of the terminal's size and
 * the focused panel, so that it can be tested over every size without a terminal. Row 0 is the
 * tab bar, the last row the status line; on a large terminal every panel is visible at once,
 * otherwise the focused one fills the space between. */
#ifndef VS_TUI_LAYOUT_H
#define VS_TUI_LAYOUT_H

typedef enum tui_panel_id {
    TUI_PROJECT,
    TUI_FACES,
    TUI_TRAIN,
    TUI_CONVERT,
    TUI_LOG,
    TUI_NPANELS
} tui_panel_id;

/* A rectangle of cells; h == 0 (and w == 0) when hidden. */
typedef struct tui_rect {
    int y, x, h, w;
} tui_rect;

typedef struct tui_layout {
    int cols, rows;
    int too_small; /* under TUI_MIN_COLS x TUI_MIN_ROWS: only a message fits */
    int all;       /* every panel visible */
    tui_rect tabs, status;
    tui_rect panel[TUI_NPANELS];
} tui_layout;

#define TUI_MIN_COLS 40
#define TUI_MIN_ROWS 12
/* The size from which every panel is shown at once. */
#define TUI_ALL_COLS 160
#define TUI_ALL_ROWS 45

void tui_layout_compute(tui_layout *out, int cols, int rows, tui_panel_id focus);

/* Whether two rectangles share a cell (hidden ones share none). */
int tui_rect_overlap(tui_rect a, tui_rect b);
/* Panel names as the tab bar and help screen show them. */
const char *tui_panel_name(tui_panel_id p);

#endif
