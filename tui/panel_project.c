/* panel_project.c: the Project panel: the sources of A and B, their face counts, the model (its
 * architecture, iteration and last save) and the disk the project takes. */
#ifdef VS_HAVE_NCURSES
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../core/ckpt.h"
#include "../core/fsutil.h"
#include "wb.h"

/* Bytes under path (not following links). */
static long long disk_use(const char *path, int depth)
{
    struct stat sb;
    if (lstat(path, &sb)) return 0;
    long long n = (long long)sb.st_blocks * 512;
    if (!S_ISDIR(sb.st_mode) || depth > 8) return n;
    DIR *d = opendir(path);
    if (!d) return n;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        n += disk_use(sub, depth + 1);
    }
    closedir(d);
    return n;
}

static void human(char *buf, size_t n, long long bytes)
{
    if (bytes >= 1LL << 30)
        snprintf(buf, n, "%.1f GiB", (double)bytes / (1 << 30));
    else if (bytes >= 1 << 20)
        snprintf(buf, n, "%.1f MiB", (double)bytes / (1 << 20));
    else
        snprintf(buf, n, "%lld KiB", bytes >> 10);
}

void wb_project_draw(wb *w)
{
    /* what is slow to learn is learnt again only when it may have changed */
    static time_t counted, walked, ck_mtime = -1;
    static int faces[2], trash[2];
    static long long used;
    static char model_line[256];
    WINDOW *win = w->win[TUI_PROJECT];
    wb_frame(w, TUI_PROJECT, "Project");
    time_t now = time(NULL);
    if (now - counted >= 5) { /* not at every repaint: a scroll through the faces repaints */
        counted = now;
        faces[0] = wb_faces_count("faces/a"), faces[1] = wb_faces_count("faces/b");
        trash[0] = wb_faces_count("trash/a"), trash[1] = wb_faces_count("trash/b");
    }
    if (now - walked >= 30) { /* a walk of every file of the project */
        walked = now;
        used = disk_use(".", 0);
    }
    char ck[PATH_MAX];
    train_ckpt_path(ck, sizeof ck, "model");
    struct stat sb;
    time_t mt = stat(ck, &sb) == 0 ? sb.st_mtime : 0;
    const wb_train *t = &w->train;
    if ((t->local || t->cl) && t->have_status && t->st.arch[0]) {
        /* while a trainer runs, its status says it: a checkpoint of a large model is a
         * gigabyte, too much to read (and checksum) again at every save */
        snprintf(model_line, sizeof model_line, "%s, iteration %ld (training)", t->st.arch,
                 t->st.iteration);
        ck_mtime = -1; /* read the checkpoint again once training stops */
    } else if (mt != ck_mtime) {
        ck_mtime = mt;
        vs_err e;
        ckpt *c = mt ? ckpt_open(ck, &e) : NULL;
        if (c) {
            const char *arch = ckpt_get(c, "model"), *it = ckpt_get(c, "iteration");
            snprintf(model_line, sizeof model_line, "%s, iteration %s", arch ? arch : "?",
                     it ? it : "?");
            ckpt_close(c);
        } else {
            snprintf(model_line, sizeof model_line, "%s", mt ? e.msg : "none yet (Train: t)");
        }
    }
    wb_print(win, 1, 2, "%s", w->project);
    for (int s = 0; s < 2; s++) {
        const char *src = wb_source(w, s);
        char in_trash[32] = "";
        if (trash[s]) snprintf(in_trash, sizeof in_trash, " (%d in trash)", trash[s]);
        wb_print(win, 2 + s, 2, "%c: %-5d faces%s  from %s%s", 'A' + s, faces[s], in_trash,
                 src[0] ? src : "(no source: visage.ini [project])",
                 src[0] && !fs_exists(src) ? " (MISSING)" : "");
    }
    wb_print(win, 4, 2, "model: %s", model_line);
    char ago[32] = "never";
    if (mt) wb_ago(ago, sizeof ago, mt);
    wb_print(win, 5, 2, "last save: %s", ago);
    char u[32];
    human(u, sizeof u, used);
    wb_print(win, 6, 2, "disk: %s", u);
    wb_print(win, 7, 2, "2 faces  3 train  4 convert  5 log  ? keys");
}

#endif
