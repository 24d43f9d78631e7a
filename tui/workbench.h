/* workbench.h: `visage` with no command: the ncurses workbench on a project folder, and
 * `visage init DIR`, which makes one. */
#ifndef VS_TUI_WORKBENCH_H
#define VS_TUI_WORKBENCH_H

#include "cli.h"

/* Runs the workbench in the current folder (a project: it has a visage.ini). */
int tui_workbench(cli *c);
/* visage init DIR [-A SOURCE] [-B SOURCE] */
int cmd_init(cli *c, int argc, char **argv);

#endif
