/* wb.h: what the files of the workbench share (workbench.c and the panel_*.c files): its state,
 * the log, and drawing helpers. Internal to tui/; the public entry points are in workbench.h. */
#ifndef VS_TUI_WB_H
#define VS_TUI_WB_H

#include <curses.h>
#include <sys/types.h>
#include <time.h>

#include "../core/convert_job.h"
#include "../core/curate.h"
#include "../core/extract.h"
#include "../core/job.h"
#include "../core/remote.h"
#include "../core/train.h"
#include "cli.h"
#include "keys.h"
#include "layout.h"

enum { WB_INFO, WB_WARN, WB_ERROR };
/* colour pairs */
enum { WB_PAIR_TITLE = 1, WB_PAIR_FOCUS, WB_PAIR_WARN, WB_PAIR_ERROR, WB_PAIR_A, WB_PAIR_B };
#define WB_LOG_LINES 512
#define WB_MAX_IMAGES 256

typedef struct wb_log_line {
    time_t t;
    int level;
    char text[400];
} wb_log_line;

/* A deleted face: where it was in the list and where it went. */
typedef struct wb_trashed {
    cu_face f;
    int index;
    char trash_path[PATH_MAX];
} wb_trashed;

typedef struct wb_undo {
    wb_trashed *v;
    int n;
    int side;
} wb_undo;

typedef struct wb_faces {
    int side; /* 0 = A, 1 = B */
    int loaded_side;
    cu_face *v;
    int n, n_other;
    unsigned char *marked;
    img **thumb; /* per face, loaded when first shown; dropped on sort */
    int cursor, top;
    int order;       /* -1 = by name, else a cu_order */
    float threshold; /* r rejects faces further than this ([extract] similarity at first) */
    wb_undo *undo;
    int n_undo;
    /* extraction */
    job ex_job;
    int ex_running;
    ex_request ex_rq;
    ex_status ex_st;
    char ex_models[PATH_MAX], ex_out[PATH_MAX], ex_align[PATH_MAX], ex_input[1024];
    const char *ex_inputs[1];
    int ex_warnings_seen;
    /* the frame a face came from, with its box and landmarks, while shown */
    img *frame;
    char frame_title[512];
} wb_faces;

typedef struct wb_train {
    /* a trainer running in this process */
    job j;
    int local;
    train_opts to;
    train_status st;
    job_state state;
    rmt_server *srv;
    long events_seen;
    /* or one running in another process of this project */
    rmt_client *cl;
    int remote_pid;
    int have_status;
    /* the loss curves: loss.tsv, then what the status showed since */
    long *it;
    float *loss[2];
    int n, cap;
    int log_scale, smooth;
    img *preview;
    long preview_serial;
    time_t preview_mtime;
} wb_train;

typedef struct wb_convert {
    int input; /* 0 = source A, 1 = source B */
    int colour, mask, swap;
    /* the conversion job, while it runs */
    job j;
    int running, previewing;
    cvjob_request rq;
    cvjob_status st;
    char input_path[1024], output[PATH_MAX], models[PATH_MAX];
    img *preview;
} wb_convert;

/* An image to draw over a panel once ncurses has drawn the text. */
typedef struct wb_image {
    int y, x, h, w; /* cells, on the screen */
    const img *im;
    long serial;
} wb_image;

typedef struct wb {
    cli *c;
    char project[PATH_MAX]; /* absolute */
    tui_layout lay;
    tui_panel_id focus;
    WINDOW *win[TUI_NPANELS];
    int help, help_top;
    int quit_asked;
    int full_redraw;
    int detached; /* the terminal went away; no drawing */
    /* images: sixel when the terminal has it, else half blocks */
    int sixel, passthrough, truecolour; /* passthrough: sixel wrapped for tmux's outer terminal */
    int cell_w, cell_h;                 /* pixels of a cell, for sixel */
    wb_image img[WB_MAX_IMAGES], shown[WB_MAX_IMAGES];
    int n_img, n_shown;
    /* the log */
    wb_log_line log[WB_LOG_LINES];
    long n_log;
    FILE *logf;
    char status_msg[400];
    int status_level;
    time_t status_until;
    wb_faces faces;
    wb_train train;
    wb_convert conv;
} wb;

/* A message for the log panel and PROJECT/visage.log; warnings and errors also go to the status
 * line for a few seconds. */
void wb_log(wb *w, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Queues im to be drawn into the cells (y, x, h, w) of win once the text is on the screen;
 * serial tells a changed image from the one drawn before. */
void wb_draw_image(wb *w, WINDOW *win, int y, int x, int h, int wd, const img *im, long serial);
/* A panel's frame and title; the title of the focused panel stands out. */
void wb_frame(wb *w, tui_panel_id p, const char *title);
/* Text clipped to the width left on the window's line. */
void wb_print(WINDOW *win, int y, int x, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void wb_bar(WINDOW *win, int y, int x, int width, double frac);

void wb_faces_draw(wb *w);
void wb_faces_action(wb *w, tui_action a);
void wb_faces_poll(wb *w);
void wb_faces_free(wb *w);
int wb_faces_count(const char *dir);

void wb_train_draw(wb *w);
void wb_train_action(wb *w, tui_action a);
void wb_train_poll(wb *w);
/* Stops a trainer running here (saving) and waits for it. */
void wb_train_finish(wb *w);
void wb_train_free(wb *w);
int wb_train_running_here(const wb *w);
/* The backend a new extraction or conversion runs on: [general] device, or the CPU while another
 * job runs in this workbench (the CUDA backend is one stream whose buffers two jobs must not
 * share; said in the log, naming `what`). -1 with a message for a device that cannot be opened. */
struct nn_backend;
int wb_job_backend(wb *w, const struct nn_backend **out, const char *what, vs_err *e);

void wb_convert_draw(wb *w);
void wb_convert_action(wb *w, tui_action a);
void wb_convert_poll(wb *w);
/* Stops a conversion running here and waits for it. */
void wb_convert_finish(wb *w);
void wb_convert_free(wb *w);

void wb_project_draw(wb *w);
void wb_log_draw(wb *w);

/* Seconds-resolution "3m ago", "2h ago". */
void wb_ago(char *buf, size_t n, time_t t);
/* The configured source of a side ("" when none). */
const char *wb_source(const wb *w, int side);

#endif
