/* init.c: `visage init DIR`: a new project folder (DESIGN.md's layout) with a visage.ini that
 * names the sources of sides A and B. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/fsutil.h"
#include "workbench.h"

static void help_init(void)
{
    printf("Usage: visage init DIR [-A SOURCE] [-B SOURCE]\n"
           "Makes a project folder: visage.ini, faces/a, faces/b, alignments, model, output.\n"
           "Then 'visage -C DIR' opens the workbench on it.\n\n"
           "  -A, --source-a SRC   the video, image or folder the faces of side A come from\n"
           "  -B, --source-b SRC   the same for side B\n");
}

int cmd_init(cli *c, int argc, char **argv)
{
    (void)c;
    static const struct option opts[] = {{"source-a", required_argument, 0, 'A'},
                                         {"source-b", required_argument, 0, 'B'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *src[2] = {NULL, NULL};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "A:B:h", opts, NULL)) != -1) {
        switch (o) {
        case 'A': src[0] = optarg; break;
        case 'B': src[1] = optarg; break;
        case 'h': help_init(); return 0;
        default: fprintf(stderr, "Try 'visage init --help'.\n"); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) return usage_error("init", "%s", "give one project folder");
    const char *dir = argv[optind];
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/visage.ini", dir);
    if (fs_exists(path)) {
        fprintf(stderr, "visage init: %s already exists: %s is a project already\n", path, dir);
        return EXIT_BAD_INPUT;
    }
    /* a source is kept as given if absolute, else made absolute (the project is its own cwd) */
    char abs[2][PATH_MAX];
    for (int s = 0; s < 2; s++) {
        abs[s][0] = 0;
        if (!src[s]) continue;
        if (!fs_exists(src[s])) {
            fprintf(stderr, "visage init: %s: no such file or folder (source %c)\n", src[s],
                    'A' + s);
            return EXIT_BAD_INPUT;
        }
        if (!realpath(src[s], abs[s])) snprintf(abs[s], sizeof abs[s], "%s", src[s]);
        if (strchr(abs[s], '\n') || strchr(abs[s], ';') || strchr(abs[s], '#')) {
            fprintf(stderr,
                    "visage init: %s: a path with ';', '#' or a newline cannot go into "
                    "visage.ini\n",
                    src[s]);
            return EXIT_BAD_INPUT;
        }
    }
    vs_err e;
    static const char *const sub[] = {"faces/a", "faces/b", "alignments", "model", "output"};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        char d[PATH_MAX + 64];
        snprintf(d, sizeof d, "%s/%s", dir, sub[i]);
        if (fs_mkdirs(d, &e)) {
            fprintf(stderr, "visage init: %s\n", e.msg);
            return EXIT_BAD_INPUT;
        }
    }
    fs_atomic a;
    if (fs_atomic_open(&a, path, &e)) {
        fprintf(stderr, "visage init: %s\n", e.msg);
        return EXIT_BAD_INPUT;
    }
    fprintf(a.f,
            "; visage project settings: over ~/.config/visage/visage.ini, under command-line "
            "flags.\n; Every option, its default and help: visage config --defaults, or "
            "visage.ini(5).\n\n[project]\nsource_a = %s\nsource_b = %s\n",
            abs[0], abs[1]);
    if (fs_atomic_commit(&a, &e)) {
        fprintf(stderr, "visage init: %s\n", e.msg);
        return EXIT_BAD_INPUT;
    }
    printf("%s: a project (faces/a, faces/b, alignments, model, output). Open it with: visage -C "
           "%s\n",
           dir, dir);
    return 0;
}
