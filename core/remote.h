/* remote.h: a project's trainer reachable from the other processes of the same user, so that a
 * workbench that lost its terminal keeps training and a second `visage` started in the project
 * attaches to it (live status, save, pause, stop) instead of starting a second trainer.
 *
 * Files, in the project folder dir: dir/.visage/ (mode 0700); dir/.visage/trainer.lock, held with
 * flock for as long as a trainer serves and holding its pid as text (a crashed process releases
 * it); dir/.visage/trainer.sock, the listening Unix socket (mode 0600). The protocol: a request is
 * one line of JSON, {"cmd":"status"} or {"cmd":"save"|"pause"|"resume"|"stop"}; the reply is one
 * line: the status (rmt_status_to_json), {"ok":true} or {"error":"..."}. */
#ifndef VS_REMOTE_H
#define VS_REMOTE_H

#include "err.h"
#include "job.h"
#include "train.h"

/* clients a server talks to at once; one more is answered {"error":"too many clients"} */
#define RMT_MAX_CLIENTS 32
/* a request longer than this without a newline gets its client dropped */
#define RMT_LINE_MAX 4096
/* how long a client call waits for the trainer (connect, send, reply) */
#define RMT_TIMEOUT_MS 2000

typedef struct rmt_server rmt_server;

/* Takes the project's trainer lock and starts serving dir/.visage/trainer.sock on a thread.
 * 0: opened (*out set). 1: busy, another live trainer holds the lock (*busy_pid gets its pid, 0
 * if unknown). -1: failed, with a message naming the file (dir/.visage not creatable, a socket
 * path longer than a Unix socket allows, ...). A stale socket left by a crash is replaced. */
int rmt_server_open(rmt_server **out, int *busy_pid, const char *dir, vs_err *e);

/* Serves job j (a train job: its status is a train_status) from now on. Until the first call,
 * status requests answer "starting" and commands an error. j NULL detaches: the server keeps
 * answering with the last status and state it read from the job, and no longer touches it. Detach
 * (or close) before job_wait, which destroys the job's mutex. */
void rmt_server_attach(rmt_server *s, job *j);

/* Stops the thread, closes the clients, removes the socket and releases the lock. NULL is a
 * no-op. */
void rmt_server_close(rmt_server *s);

/* The status as a client sees it. starting: the trainer has no job yet (state and st are then
 * zero). pid: the trainer's process. */
typedef struct rmt_status {
    int starting;
    job_state state;
    int pid;
    train_status st;
} rmt_status;

/* A connection to a trainer; use it from one thread at a time. */
typedef struct rmt_client rmt_client;

/* Connects to the trainer of dir and checks that it answers. 1: connected (*out set). 0: no
 * trainer runs in dir (no dir/.visage, no socket, or a stale socket nobody listens on). -1:
 * refused or failed, with a message naming the socket and why (another user's trainer, no
 * permission, no answer within RMT_TIMEOUT_MS, a socket path too long). */
int rmt_connect(rmt_client **out, const char *dir, vs_err *e);

/* The trainer's current status. -1 with a message when it went away or did not answer; the client
 * is then unusable (close it and connect again). */
int rmt_status_get(rmt_status *out, rmt_client *c, vs_err *e);

/* Sends a command (JOB_CMD_PAUSE, RESUME, STOP, SAVE) and waits for it to be accepted; its effect
 * shows in later statuses. -1 as rmt_status_get, or when the trainer refused it (no job yet). */
int rmt_command(rmt_client *c, job_cmd cmd, vs_err *e);

/* NULL is a no-op. */
void rmt_close(rmt_client *c);

/* The status as one line of JSON, no newline (free()). Every field of train_status goes through,
 * exactly: doubles with 17 significant digits, non-finite ones as "nan", "inf", "-inf"; bytes of
 * the messages that are not UTF-8 become '?'. */
char *rmt_status_to_json(const rmt_status *s);

/* Parses what rmt_status_to_json wrote into *out (zeroed first). Bad JSON, a missing or mistyped
 * field, an unknown name or an over-long string: -1 with a message naming the field. */
int rmt_status_from_json(rmt_status *out, const char *json, vs_err *e);

#endif
