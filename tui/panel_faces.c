/* panel_faces.c: the Faces panel: extraction of a side's source with a progress bar, and review
 * of the faces as a grid of thumbnails: mark, delete into trash/ (undo), sort, reject faces unlike
 * the one under the cursor, and the frame a face came from with its box and landmarks. */
#ifdef VS_HAVE_NCURSES
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/fsutil.h"
#include "../core/video.h"
#include "wb.h"

#define THUMB_COLS 14 /* cells of one thumbnail; a label row goes under it */
#define THUMB_ROWS 7
#define THUMB_PX 96

static const char *const order_name[] = {"identity", "blur", "size", "pose", "face"};

static void faces_dir(char *out, size_t n, int side)
{
    snprintf(out, n, "faces/%c", side ? 'b' : 'a');
}

/* faces/a/NAME or faces/b/NAME */
static void face_path(char *out, size_t n, int side, const char *name)
{
    snprintf(out, n, "faces/%c/%s", side ? 'b' : 'a', name);
}

static int is_png(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcmp(name + n - 4, ".png") && name[0] != '.';
}

int wb_faces_count(const char *dir)
{
    char **names;
    int n;
    vs_err e;
    if (!fs_is_dir(dir) || fs_list_dir(&names, &n, dir, is_png, &e)) return 0;
    fs_free_list(names, n);
    return n;
}

static void drop_thumbs(wb_faces *f)
{
    for (int i = 0; i < f->n && f->thumb; i++) img_free(f->thumb[i]);
    if (f->thumb) memset(f->thumb, 0, sizeof f->thumb[0] * (size_t)f->n);
}

static void clear_list(wb_faces *f)
{
    drop_thumbs(f);
    free(f->thumb);
    free(f->marked);
    free(f->v);
    f->v = NULL, f->thumb = NULL, f->marked = NULL;
    f->n = f->n_other = 0;
}

static void load_side(wb *w)
{
    wb_faces *f = &w->faces;
    clear_list(f);
    char dir[64];
    faces_dir(dir, sizeof dir, f->side);
    f->loaded_side = f->side;
    f->cursor = f->top = 0;
    if (!fs_is_dir(dir)) return;
    vs_err e;
    char **others = NULL;
    if (cu_load(&f->v, &f->n, &others, &f->n_other, dir, &e)) {
        wb_log(w, WB_ERROR, "%s", e.msg);
        return;
    }
    if (others) fs_free_list(others, f->n_other);
    f->thumb = vs_calloc((size_t)f->n + 1, sizeof *f->thumb);
    f->marked = vs_calloc((size_t)f->n + 1, 1);
    if (f->order >= 0) cu_sort(f->v, f->n, (cu_order)f->order, NULL);
}

static img *thumbnail(wb *w, int i)
{
    wb_faces *f = &w->faces;
    if (f->thumb[i]) return f->thumb[i];
    char path[PATH_MAX];
    face_path(path, sizeof path, f->side, f->v[i].name);
    img *im;
    vs_err e;
    img *t = img_new(THUMB_PX, THUMB_PX, 3);
    if (img_load(&im, path, &e)) { /* gone or damaged: a grey square, not a load every frame */
        memset(t->px, 96, (size_t)THUMB_PX * THUMB_PX * 3);
        wb_log(w, WB_WARN, "%s", e.msg);
    } else {
        img_resize(t, im);
        img_free(im);
    }
    return f->thumb[i] = t;
}

/* ---- moving faces into trash/ and back --------------------------------------------------------
 */

static int trash_one(wb *w, wb_trashed *t, const cu_face *face, int index)
{
    int side = w->faces.side;
    char from[PATH_MAX], dir[64];
    snprintf(dir, sizeof dir, "trash/%c", side ? 'b' : 'a');
    face_path(from, sizeof from, side, face->name);
    vs_err e;
    if (fs_mkdirs(dir, &e)) {
        wb_log(w, WB_ERROR, "%s", e.msg);
        return -1;
    }
    snprintf(t->trash_path, sizeof t->trash_path, "%s/%s", dir, face->name);
    for (int k = 1; fs_exists(t->trash_path) && k < 10000; k++)
        snprintf(t->trash_path, sizeof t->trash_path, "%s/%s~%d", dir, face->name, k);
    if (rename(from, t->trash_path)) {
        wb_log(w, WB_ERROR, "%s: cannot move it to %s: %s", from, dir, fs_strerror(errno));
        return -1;
    }
    t->f = *face;
    t->index = index;
    return 0;
}

/* Moves the faces whose flag is set in del (n of them) into trash/, as one step to undo. */
static void trash_faces(wb *w, const unsigned char *del, const char *what)
{
    wb_faces *f = &w->faces;
    int count = 0;
    for (int i = 0; i < f->n; i++) count += del[i] != 0;
    if (!count) return;
    wb_undo u = {vs_calloc((size_t)count, sizeof(wb_trashed)), 0, f->side};
    int keep = 0;
    for (int i = 0; i < f->n; i++) {
        if (del[i] && trash_one(w, &u.v[u.n], &f->v[i], i) == 0) {
            u.n++;
            img_free(f->thumb[i]);
            continue;
        }
        f->v[keep] = f->v[i];
        f->thumb[keep] = f->thumb[i];
        f->marked[keep] = f->marked[i];
        keep++;
    }
    f->n = keep;
    if (f->cursor >= f->n) f->cursor = f->n ? f->n - 1 : 0;
    if (!u.n) {
        free(u.v);
        return;
    }
    f->undo = vs_realloc(f->undo, sizeof *f->undo * (size_t)(f->n_undo + 1));
    f->undo[f->n_undo++] = u;
    wb_log(w, WB_INFO, "%s %d face%s of side %c into trash/%c (u undoes)", what, u.n,
           u.n == 1 ? "" : "s", 'A' + f->side, f->side ? 'b' : 'a');
    w->full_redraw = 1;
}

static void undo(wb *w)
{
    wb_faces *f = &w->faces;
    if (!f->n_undo) {
        wb_log(w, WB_INFO, "nothing to undo");
        return;
    }
    wb_undo *u = &f->undo[f->n_undo - 1];
    if (u->side != f->side) {
        f->side = u->side;
        load_side(w);
    }
    int back = 0;
    for (int k = 0; k < u->n; k++) { /* in ascending index order, so each lands where it was */
        wb_trashed *t = &u->v[k];
        char to[PATH_MAX];
        face_path(to, sizeof to, u->side, t->f.name);
        if (fs_exists(to)) {
            wb_log(w, WB_WARN, "%s exists again: %s stays in trash", to, t->trash_path);
            continue;
        }
        if (rename(t->trash_path, to)) {
            wb_log(w, WB_ERROR, "%s: cannot move it back to %s: %s", t->trash_path, to,
                   fs_strerror(errno));
            continue;
        }
        int at = t->index < f->n ? t->index : f->n;
        f->v = vs_realloc(f->v, sizeof *f->v * (size_t)(f->n + 1));
        f->thumb = vs_realloc(f->thumb, sizeof *f->thumb * (size_t)(f->n + 1));
        f->marked = vs_realloc(f->marked, (size_t)(f->n + 1));
        memmove(f->v + at + 1, f->v + at, sizeof *f->v * (size_t)(f->n - at));
        memmove(f->thumb + at + 1, f->thumb + at, sizeof *f->thumb * (size_t)(f->n - at));
        memmove(f->marked + at + 1, f->marked + at, (size_t)(f->n - at));
        f->v[at] = t->f;
        f->thumb[at] = NULL;
        f->marked[at] = 0;
        f->n++;
        f->cursor = at;
        back++;
    }
    wb_log(w, WB_INFO, "undone: %d face%s back in faces/%c", back, back == 1 ? "" : "s",
           u->side ? 'b' : 'a');
    free(u->v);
    f->n_undo--;
    w->full_redraw = 1;
}

/* ---- sorting and rejecting ------------------------------------------------------------------ */

static int by_name(const void *a, const void *b)
{
    return strcmp(((const cu_face *)a)->name, ((const cu_face *)b)->name);
}

static void sort_faces(wb *w)
{
    wb_faces *f = &w->faces;
    /* name (-1) -> identity -> blur -> size -> pose (yaw) -> name: next[order + 1] */
    static const int next[] = {CU_BY_IDENTITY, CU_BY_BLUR, CU_BY_SIZE, CU_BY_YAW, -1};
    VS_CHECK(f->order >= -1 && f->order <= CU_BY_YAW);
    f->order = next[f->order + 1];
    /* the marks follow their faces; the thumbnails are loaded again as they are shown */
    char(*marked)[256] = NULL;
    int nm = 0;
    for (int i = 0; i < f->n; i++)
        if (f->marked[i]) {
            marked = vs_realloc(marked, sizeof *marked * (size_t)(nm + 1));
            memcpy(marked[nm++], f->v[i].name, 256);
        }
    char cur[256] = "";
    if (f->n) memcpy(cur, f->v[f->cursor].name, sizeof cur);
    drop_thumbs(f);
    if (f->order < 0)
        qsort(f->v, (size_t)f->n, sizeof *f->v, by_name);
    else
        cu_sort(f->v, f->n, (cu_order)f->order, NULL);
    memset(f->marked, 0, (size_t)f->n);
    for (int i = 0; i < f->n; i++) {
        for (int k2 = 0; k2 < nm; k2++)
            if (!strcmp(marked[k2], f->v[i].name)) f->marked[i] = 1;
        if (!strcmp(cur, f->v[i].name)) f->cursor = i;
    }
    free(marked);
    wb_log(w, WB_INFO, "faces of side %c sorted by %s", 'A' + f->side,
           f->order < 0 ? "name" : order_name[f->order]);
    w->full_redraw = 1;
}

static void reject_unlike(wb *w)
{
    wb_faces *f = &w->faces;
    if (!f->n) return;
    const cu_face *ref = &f->v[f->cursor];
    if (!ref->f.has_embedding) {
        wb_log(w, WB_WARN, "%s has no identity embedding: nothing to compare with", ref->name);
        return;
    }
    float emb[128];
    memcpy(emb, ref->f.embedding, sizeof emb);
    char name[256];
    snprintf(name, sizeof name, "%s", ref->name);
    cu_distances(f->v, f->n, emb);
    unsigned char *del = vs_calloc((size_t)f->n + 1, 1);
    float lim = f->threshold;
    for (int i = 0; i < f->n; i++) del[i] = !(f->v[i].key <= lim);
    char what[400];
    snprintf(what, sizeof what, "rejected (further than %.2f from %s)", (double)lim, name);
    trash_faces(w, del, what);
    free(del);
}

/* ---- the frame a face came from ------------------------------------------------------------- */

static void dot(img *im, int x, int y, int r, const uint8_t c[3])
{
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++) {
            int px = x + dx, py = y + dy;
            if (px < 0 || py < 0 || px >= im->w || py >= im->h) continue;
            memcpy(im->px + ((size_t)py * im->w + px) * 3, c, 3);
        }
}

static void show_frame(wb *w)
{
    wb_faces *f = &w->faces;
    if (!f->n) return;
    const vs_face *face = &f->v[f->cursor].f;
    img *frame = NULL;
    vs_err e;
    vs_media kind;
    if (vid_probe(&kind, face->source, &e)) {
        wb_log(w, WB_ERROR, "%s", e.msg);
        return;
    }
    if (kind == VS_MEDIA_VIDEO) {
        vid_reader *r;
        if (vid_open(&r, face->source, &e)) {
            wb_log(w, WB_ERROR, "%s", e.msg);
            return;
        }
        int64_t idx;
        int rc = face->frame > 0 ? vid_skip(r, face->frame, &e) : 1;
        if (rc == 1) rc = vid_read(r, &frame, &idx, &e);
        vid_close(r);
        if (rc != 1) {
            wb_log(w, WB_ERROR, "%s: frame %lld: %s", face->source, (long long)face->frame,
                   rc < 0 ? e.msg : "past the end");
            img_free(frame);
            return;
        }
    } else if (img_load(&frame, face->source, &e)) {
        wb_log(w, WB_ERROR, "%s", e.msg);
        return;
    }
    static const uint8_t green[3] = {40, 230, 60}, red[3] = {240, 40, 40};
    int th = frame->w / 400 + 1;
    int x0 = (int)face->box[0], y0 = (int)face->box[1];
    int x1 = (int)(face->box[0] + face->box[2]), y1 = (int)(face->box[1] + face->box[3]);
    for (int x = x0; x <= x1; x++) dot(frame, x, y0, th, green), dot(frame, x, y1, th, green);
    for (int y = y0; y <= y1; y++) dot(frame, x0, y, th, green), dot(frame, x1, y, th, green);
    for (int k = 0; k < 68; k++)
        dot(frame, (int)lroundf(face->lm[2 * k]), (int)lroundf(face->lm[2 * k + 1]), th + 1, red);
    img_free(f->frame);
    f->frame = frame;
    snprintf(f->frame_title, sizeof f->frame_title, "%s, frame %lld, face %d (any key closes)",
             fs_basename(face->source), (long long)face->frame, face->index);
    w->full_redraw = 1;
}

/* ---- extraction ----------------------------------------------------------------------------- */

static void start_extract(wb *w)
{
    wb_faces *f = &w->faces;
    if (f->ex_running) {
        wb_log(w, WB_WARN, "an extraction is already running");
        return;
    }
    const char *src = wb_source(w, f->side);
    if (!src[0]) {
        wb_log(w, WB_WARN, "side %c has no source: set source_%c in visage.ini [project]",
               'A' + f->side, 'a' + f->side);
        return;
    }
    vs_err e;
    if (ex_find_models(f->ex_models, sizeof f->ex_models, w->c->cfg.models, w->c->exe_dir, &e)) {
        wb_log(w, WB_ERROR, "%s", e.msg);
        return;
    }
    memset(&f->ex_rq, 0, sizeof f->ex_rq);
    memset(&f->ex_st, 0, sizeof f->ex_st);
    snprintf(f->ex_input, sizeof f->ex_input, "%s", src);
    faces_dir(f->ex_out, sizeof f->ex_out, f->side);
    snprintf(f->ex_align, sizeof f->ex_align, "alignments");
    f->ex_inputs[0] = f->ex_input;
    f->ex_rq.cfg = w->c->cfg;
    f->ex_rq.models_dir = f->ex_models;
    f->ex_rq.inputs = f->ex_inputs;
    f->ex_rq.n_inputs = 1;
    f->ex_rq.out_dir = f->ex_out;
    f->ex_rq.align_dir = f->ex_align;
    f->ex_rq.skip_existing = 1;
    if (wb_job_backend(w, &f->ex_rq.be, "the extraction", &e)) {
        wb_log(w, WB_ERROR, "%s", e.msg);
        return;
    }
    f->ex_warnings_seen = 0;
    job_start(&f->ex_job, ex_run, &f->ex_rq, &f->ex_st, sizeof f->ex_st);
    f->ex_running = 1;
    wb_log(w, WB_INFO, "extracting the faces of %s into %s", src, f->ex_out);
}

void wb_faces_poll(wb *w)
{
    wb_faces *f = &w->faces;
    if (f->loaded_side != f->side) load_side(w);
    if (!f->ex_running) return;
    ex_status st;
    job_state s = job_snapshot(&f->ex_job, &st);
    f->ex_st = st;
    for (; f->ex_warnings_seen < st.warnings; f->ex_warnings_seen++)
        if (st.warnings - f->ex_warnings_seen <= EX_WARNINGS)
            wb_log(w, WB_WARN, "%s", st.warning[f->ex_warnings_seen % EX_WARNINGS]);
    if (s == JOB_RUNNING || s == JOB_PAUSED) return;
    vs_err e;
    if (job_wait(&f->ex_job, &e))
        wb_log(w, WB_ERROR, "extraction: %s", e.msg);
    else if (st.inputs_skipped)
        wb_log(w, WB_INFO, "%s was extracted before (its alignments file is complete)",
               f->ex_input);
    else
        wb_log(w, WB_INFO, "extracted %lld faces from %lld frames of %s", (long long)st.kept,
               (long long)st.frames_read, f->ex_input);
    f->ex_running = 0;
    if (!strcmp(f->ex_out, f->side ? "faces/b" : "faces/a")) load_side(w);
    w->full_redraw = 1;
}

/* ---- drawing and keys ----------------------------------------------------------------------- */

static void grid_size(const wb *w, int *gc, int *gr)
{
    int h, wd;
    getmaxyx(w->win[TUI_FACES], h, wd);
    *gc = (wd - 2) / (THUMB_COLS + 1);
    *gr = (h - 4) / (THUMB_ROWS + 1);
    if (*gc < 1) *gc = 1;
    if (*gr < 1) *gr = 1;
}

void wb_faces_draw(wb *w)
{
    wb_faces *f = &w->faces;
    WINDOW *win = w->win[TUI_FACES];
    int h, wd;
    getmaxyx(win, h, wd);
    if (f->frame) {
        wb_frame(w, TUI_FACES, "Faces: frame");
        wb_print(win, 1, 2, "%s", f->frame_title);
        wb_draw_image(w, win, 2, 1, h - 3, wd - 2, f->frame, (long)(intptr_t)f->frame);
        return;
    }
    wb_frame(w, TUI_FACES, "Faces");
    char dir[64];
    faces_dir(dir, sizeof dir, f->side);
    wb_print(win, 1, 2, "side %c: %s  %d faces%s  sort: %s  reject > %.2f", 'A' + f->side, dir,
             f->n, f->n_other ? " (+ PNGs without metadata)" : "",
             f->order < 0 ? "name" : order_name[f->order], (double)f->threshold);
    if (f->ex_running) {
        const ex_status *st = &f->ex_st;
        double frac = st->frames_total > 0 ? (double)st->frame / (double)st->frames_total : 0;
        wb_print(win, 2, 2, "extracting %lld/%lld frames, %lld faces", (long long)st->frame,
                 (long long)st->frames_total, (long long)st->kept);
        wb_bar(win, 2, 48, wd - 50, frac);
    } else if (f->n) {
        const cu_face *c = &f->v[f->cursor];
        int marks = 0;
        for (int i = 0; i < f->n; i++) marks += f->marked[i];
        wb_print(win, 2, 2, "%d/%d %s  yaw %.0f  blur %.0f  %dpx%s", f->cursor + 1, f->n, c->name,
                 (double)c->f.yaw, (double)c->f.blur, (int)c->f.box[2],
                 marks ? "  (marked faces: d deletes them)" : "");
        if (marks) wb_print(win, 2, wd - 14, "%d marked", marks);
    } else {
        wb_print(win, 2, 2, "no faces: e extracts them from %s",
                 wb_source(w, f->side)[0] ? wb_source(w, f->side) : "(no source in visage.ini)");
    }
    int gc, gr;
    grid_size(w, &gc, &gr);
    if (f->cursor < f->top) f->top = f->cursor / gc * gc;
    if (f->cursor >= f->top + gc * gr) f->top = (f->cursor / gc - gr + 1) * gc;
    if (f->top < 0) f->top = 0;
    for (int k = 0; k < gc * gr && f->top + k < f->n; k++) {
        int i = f->top + k;
        int y = 3 + (k / gc) * (THUMB_ROWS + 1), x = 1 + (k % gc) * (THUMB_COLS + 1);
        img *t = thumbnail(w, i);
        if (t) wb_draw_image(w, win, y, x, THUMB_ROWS, THUMB_COLS, t, (long)(intptr_t)t);
        char label[THUMB_COLS + 1];
        snprintf(label, sizeof label, "%s%-*s", f->marked[i] ? "*" : "", THUMB_COLS, f->v[i].name);
        if (i == f->cursor) wattron(win, A_REVERSE);
        if (f->marked[i]) wattron(win, A_BOLD);
        mvwaddnstr(win, y + THUMB_ROWS, x, label, THUMB_COLS);
        if (f->marked[i]) wattroff(win, A_BOLD);
        if (i == f->cursor) wattroff(win, A_REVERSE);
    }
}

void wb_faces_action(wb *w, tui_action a)
{
    wb_faces *f = &w->faces;
    int gc, gr;
    grid_size(w, &gc, &gr);
    switch (a) {
    case TUI_A_LEFT: f->cursor--; break;
    case TUI_A_RIGHT: f->cursor++; break;
    case TUI_A_UP: f->cursor -= gc; break;
    case TUI_A_DOWN: f->cursor += gc; break;
    case TUI_A_PAGE_UP: f->cursor -= gc * gr; break;
    case TUI_A_PAGE_DOWN: f->cursor += gc * gr; break;
    case TUI_A_HOME: f->cursor = 0; break;
    case TUI_A_END: f->cursor = f->n - 1; break;
    case TUI_A_SIDE:
        f->side = !f->side;
        w->full_redraw = 1;
        return;
    case TUI_A_EXTRACT: start_extract(w); return;
    case TUI_A_MARK:
        if (f->n) f->marked[f->cursor] ^= 1;
        if (f->n) f->cursor++;
        break;
    case TUI_A_DELETE: {
        if (!f->n) return;
        unsigned char *del = vs_calloc((size_t)f->n, 1);
        int any = 0;
        for (int i = 0; i < f->n; i++) any |= del[i] = f->marked[i];
        if (!any) del[f->cursor] = 1;
        trash_faces(w, del, "deleted");
        free(del);
        return;
    }
    case TUI_A_UNDO: undo(w); return;
    case TUI_A_SORT: sort_faces(w); return;
    case TUI_A_REJECT: reject_unlike(w); return;
    case TUI_A_STRICTER:
    case TUI_A_LOOSER: {
        float t = f->threshold + (a == TUI_A_LOOSER ? 0.05f : -0.05f);
        f->threshold = t < 0.05f ? 0.05f : t > 2.0f ? 2.0f : t;
        return;
    }
    case TUI_A_FRAME: show_frame(w); return;
    default: return;
    }
    if (f->cursor >= f->n) f->cursor = f->n - 1;
    if (f->cursor < 0) f->cursor = 0;
}

void wb_faces_free(wb *w)
{
    wb_faces *f = &w->faces;
    clear_list(f);
    for (int i = 0; i < f->n_undo; i++) free(f->undo[i].v);
    free(f->undo);
    img_free(f->frame);
}

#endif
