/* cli.h: what the command-line files of tui/ share: the state every command sees, the exit
 * statuses, messages, flag handling and the stop-signal flag. main.c holds the dispatcher and the
 * face commands, train.c the model commands, convert.c conversion. */
#ifndef VS_TUI_CLI_H
#define VS_TUI_CLI_H

#include <limits.h>
#include <signal.h>
#include <stddef.h>

#include "../core/config.h"
#include "../core/err.h"

enum { EXIT_BAD_INPUT = 1, EXIT_USAGE = 2, EXIT_STOPPED = 130 };

/* State every command sees: the effective configuration and where the program lives. */
typedef struct cli {
    vs_config cfg;
    const char *project;
    char exe_dir[PATH_MAX];
} cli;

/* Set by the SIGINT/SIGTERM handler; the command's main loop acts on it. */
extern volatile sig_atomic_t got_stop_signal;
void on_stop_signal(int sig);
/* For a command that runs a job: the first SIGINT or SIGTERM sets got_stop_signal (a second one
 * kills); SIGHUP (a dropped SSH link) and SIGPIPE are ignored, so the job goes on. */
void catch_stop_signals(void);

/* "visage CMD: <fmt with arg>" and the --help hint; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, const char *arg);
/* "visage CMD: <message>"; returns EXIT_BAD_INPUT. */
int fail(const char *cmd, const vs_err *e);
/* Applies a flag through the option table (range and type checked); -1 after printing why. */
int set_opt(cli *c, const char *cmd, const char *section, const char *key, const char *value);
/* h:mm:ss or m:ss; "--:--" when unknown. */
void fmt_duration(char *buf, size_t n, double s);

int cmd_train(cli *c, int argc, char **argv);
int cmd_model(cli *c, int argc, char **argv);
int cmd_convert(cli *c, int argc, char **argv);

#endif
