/* full_disk.h: a write run as if the disk were full: in a child process whose file-size limit
 * (RLIMIT_FSIZE) is `bytes`, with SIGXFSZ ignored, so that writes past it fail with EFBIG, which
 * visage reports as "no space left on device". */
#ifndef VS_TEST_FULL_DISK_H
#define VS_TEST_FULL_DISK_H

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"

/* Runs fn(arg, e) in such a child. Returns its result ("-1 MESSAGE" or "0 "), as the child
 * reports it through a pipe, in msg (n bytes); -1 if the child did not exit normally. */
static inline int check_full_disk(long bytes, int (*fn)(void *arg, vs_err *e), void *arg, char *msg,
                                  size_t n)
{
    int fds[2];
    if (pipe(fds)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {(rlim_t)bytes, (rlim_t)bytes};
        setrlimit(RLIMIT_FSIZE, &rl);
        vs_err ce = {{0}};
        int rc = fn(arg, &ce);
        dprintf(fds[1], "%d %s", rc, ce.msg);
        close(fds[1]);
        _exit(0);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    memset(msg, 0, n);
    while (got + 1 < n && (r = read(fds[0], msg + got, n - 1 - got)) > 0) got += (size_t)r;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

#endif
