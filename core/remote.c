/* remote.c: the trainer's Unix socket (see remote.h): the lock and socket files, the server thread
 * (one poll() loop over a wake-up pipe, the listening socket and the clients, each with its own
 * line buffer) and the client calls. The status goes through JSON by one table of train_status's
 * members, checked against the struct's layout so that a member added later cannot be forgotten. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"

#define RMT_DIR ".visage"
#define RMT_SOCK "trainer.sock"
#define RMT_LOCK "trainer.lock"
/* the longest reply a client takes: a status whose messages are all escapes is about 24 KiB */
#define RMT_REPLY_MAX (64 * 1024)
#define RMT_REFUSED_OTHER_USER "refused: the trainer belongs to another user"
#define RMT_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(17))

static const char *const state_names[] = {"running", "paused", "done", "failed", "stopped"};
static const char *const phase_names[] = {"loading", "running", "saving", "finished"};
static const char *const cmd_names[] = {"pause", "resume", "stop", "save"};
#define N_OF(a) ((int)(sizeof(a) / sizeof(a)[0]))

/* ---- the status as JSON -------------------------------------------------------------------- */

typedef enum field_type { F_INT, F_LONG, F_SIZE, F_DOUBLE, F_STR, F_PHASE } field_type;

/* one member of train_status: count elements (an array when count > 1) of size / count bytes */
typedef struct field {
    const char *name;
    field_type type;
    size_t off, size;
    int count;
} field;

/* clang-format off */
#define FIELD(m, t, n) {#m, t, offsetof(train_status, m), sizeof(((train_status *)0)->m), n}
/* clang-format on */

/* every member of train_status, in declaration order (fields_check holds the table to it) */
static const field fields[] = {
    FIELD(phase, F_PHASE, 1),
    FIELD(arch, F_STR, 1),
    FIELD(params, F_SIZE, 1),
    FIELD(faces, F_INT, 2),
    FIELD(batch, F_INT, 1),
    FIELD(iteration, F_LONG, 1),
    FIELD(start_iteration, F_LONG, 1),
    FIELD(target, F_LONG, 1),
    FIELD(loss, F_DOUBLE, 2),
    FIELD(it_s, F_DOUBLE, 1),
    FIELD(egs_s, F_DOUBLE, 1),
    FIELD(gpu_mem, F_SIZE, 1),
    FIELD(gpu_mem_peak, F_SIZE, 1),
    FIELD(gpu_util, F_INT, 1),
    FIELD(elapsed, F_DOUBLE, 1),
    FIELD(trained, F_DOUBLE, 1),
    FIELD(saved_iteration, F_LONG, 1),
    FIELD(saves, F_LONG, 1),
    FIELD(preview_serial, F_LONG, 1),
    FIELD(events, F_LONG, 1),
    FIELD(event, F_STR, TRAIN_EVENTS),
    FIELD(event_warning, F_INT, TRAIN_EVENTS),
};

static size_t type_size(field_type t)
{
    switch (t) {
    case F_INT: return sizeof(int);
    case F_LONG: return sizeof(long);
    case F_SIZE: return sizeof(size_t);
    case F_DOUBLE: return sizeof(double);
    case F_STR: return 1;
    case F_PHASE: return sizeof(train_phase);
    }
    return 0;
}

static size_t type_align(field_type t)
{
    switch (t) {
    case F_INT: return _Alignof(int);
    case F_LONG: return _Alignof(long);
    case F_SIZE: return _Alignof(size_t);
    case F_DOUBLE: return _Alignof(double);
    case F_STR: return 1;
    case F_PHASE: return _Alignof(train_phase);
    }
    return 1;
}

static size_t align_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

/* The table tiles train_status: each member starts where the previous one ends (plus alignment
 * padding) and the last one ends the struct, so a member missing from the table is a bug here. */
static void fields_check(void)
{
    size_t end = 0;
    for (int i = 0; i < N_OF(fields); i++) {
        const field *f = &fields[i];
        VS_CHECK(f->count >= 1 && f->size % (size_t)f->count == 0);
        VS_CHECK(f->type == F_STR || f->size / (size_t)f->count == type_size(f->type));
        VS_CHECK(f->off == align_up(end, type_align(f->type)));
        end = f->off + f->size;
    }
    VS_CHECK(align_up(end, _Alignof(train_status)) == sizeof(train_status));
}

/* length of the valid UTF-8 sequence at s (n bytes left; as strict as jansson), 0 if invalid */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0], cp;
    size_t len;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* a C string of at most cap bytes as a JSON string; bytes that are not UTF-8 become '?' */
static json_t *text_to_json(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    char *t = vs_malloc(n + 1);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k) {
            memcpy(t + i, s + i, k);
            i += k;
        } else {
            t[i++] = '?';
        }
    }
    json_t *j = json_stringn(t, n);
    free(t);
    VS_CHECK(j != NULL);
    return j;
}

static json_t *real_to_json(double v)
{
    if (isnan(v)) return json_string("nan");
    if (isinf(v)) return json_string(v > 0 ? "inf" : "-inf");
    return json_real(v);
}

static json_t *size_to_json(size_t v)
{
    return json_integer((json_int_t)v); /* sizes of this world fit in 63 bits */
}

static json_t *elem_to_json(const field *f, const char *p)
{
    switch (f->type) {
    case F_INT: return json_integer(*(const int *)p);
    case F_LONG: return json_integer(*(const long *)p);
    case F_SIZE: return size_to_json(*(const size_t *)p);
    case F_DOUBLE: return real_to_json(*(const double *)p);
    case F_STR: return text_to_json(p, f->size / (size_t)f->count);
    case F_PHASE: {
        train_phase ph = *(const train_phase *)p;
        VS_CHECK((int)ph >= 0 && (int)ph < N_OF(phase_names));
        return json_string(phase_names[ph]);
    }
    }
    return NULL;
}

static json_t *train_to_json(const train_status *st)
{
    json_t *o = json_object();
    for (int i = 0; i < N_OF(fields); i++) {
        const field *f = &fields[i];
        const char *base = (const char *)st + f->off;
        size_t esize = f->size / (size_t)f->count;
        json_t *v;
        if (f->count == 1) {
            v = elem_to_json(f, base);
        } else {
            v = json_array();
            for (int k = 0; k < f->count; k++)
                json_array_append_new(v, elem_to_json(f, base + (size_t)k * esize));
        }
        json_object_set_new(o, f->name, v);
    }
    return o;
}

char *rmt_status_to_json(const rmt_status *s)
{
    fields_check();
    VS_CHECK((int)s->state >= 0 && (int)s->state < N_OF(state_names));
    json_t *o = json_object();
    json_object_set_new(o, "starting", json_boolean(s->starting));
    json_object_set_new(o, "state", json_string(state_names[s->state]));
    json_object_set_new(o, "pid", json_integer(s->pid));
    json_object_set_new(o, "train", train_to_json(&s->st));
    char *text = json_dumps(o, RMT_JSON_FLAGS);
    json_decref(o);
    VS_CHECK(text != NULL); /* only without memory */
    return text;
}

static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

static int integer_from_json(json_int_t *out, const json_t *v, json_int_t lo, json_int_t hi)
{
    if (!json_is_integer(v)) return -1;
    *out = json_integer_value(v);
    return *out < lo || *out > hi ? -1 : 0;
}

/* one element of f from v into p; -1 (without a message) if v does not fit */
static int elem_from_json(char *p, const field *f, const json_t *v)
{
    json_int_t i;
    switch (f->type) {
    case F_INT:
        if (integer_from_json(&i, v, INT_MIN, INT_MAX)) return -1;
        *(int *)p = (int)i;
        return 0;
    case F_LONG:
        if (integer_from_json(&i, v, LONG_MIN, LONG_MAX)) return -1;
        *(long *)p = (long)i;
        return 0;
    case F_SIZE:
        if (integer_from_json(&i, v, 0, LLONG_MAX)) return -1;
        *(size_t *)p = (size_t)i;
        return 0;
    case F_DOUBLE: {
        const char *s = json_string_value(v);
        if (json_is_number(v))
            *(double *)p = json_number_value(v);
        else if (s && strcmp(s, "nan") == 0)
            *(double *)p = NAN;
        else if (s && strcmp(s, "inf") == 0)
            *(double *)p = INFINITY;
        else if (s && strcmp(s, "-inf") == 0)
            *(double *)p = -INFINITY;
        else
            return -1;
        return 0;
    }
    case F_STR: {
        size_t cap = f->size / (size_t)f->count;
        if (!json_is_string(v) || json_string_length(v) >= cap) return -1;
        memcpy(p, json_string_value(v), json_string_length(v)); /* the rest stays zero */
        return 0;
    }
    case F_PHASE: {
        int k = name_index(phase_names, N_OF(phase_names), json_string_value(v));
        if (k < 0) return -1;
        *(train_phase *)p = (train_phase)k;
        return 0;
    }
    }
    return -1;
}

static const char *type_words(const field *f)
{
    switch (f->type) {
    case F_INT:
    case F_LONG: return "an integer";
    case F_SIZE: return "a non-negative integer";
    case F_DOUBLE: return "a number";
    case F_STR: return "a string that fits";
    case F_PHASE: return "a phase name";
    }
    return "?";
}

static int status_from_obj(rmt_status *out, const json_t *o, vs_err *e)
{
    fields_check();
    memset(out, 0, sizeof *out);
    if (!json_is_object(o)) return vs_fail(e, "trainer status: not a JSON object");
    json_t *starting = json_object_get(o, "starting");
    json_int_t pid;
    int state =
        name_index(state_names, N_OF(state_names), json_string_value(json_object_get(o, "state")));
    const json_t *train = json_object_get(o, "train");
    if (!json_is_boolean(starting))
        return vs_fail(e, "trainer status: \"starting\" is missing or not true/false");
    if (state < 0) return vs_fail(e, "trainer status: \"state\" is missing or not a job state");
    if (integer_from_json(&pid, json_object_get(o, "pid"), 0, INT_MAX))
        return vs_fail(e, "trainer status: \"pid\" is missing or not a process id");
    if (!json_is_object(train))
        return vs_fail(e, "trainer status: \"train\" is missing or not an object");
    out->starting = json_is_true(starting);
    out->state = (job_state)state;
    out->pid = (int)pid;
    for (int i = 0; i < N_OF(fields); i++) {
        const field *f = &fields[i];
        char *base = (char *)&out->st + f->off;
        size_t esize = f->size / (size_t)f->count;
        const json_t *v = json_object_get(train, f->name);
        int bad;
        if (f->count == 1) {
            bad = !v || elem_from_json(base, f, v);
        } else {
            bad = !json_is_array(v) || json_array_size(v) != (size_t)f->count;
            for (int k = 0; !bad && k < f->count; k++)
                bad = elem_from_json(base + (size_t)k * esize, f, json_array_get(v, (size_t)k));
        }
        if (bad) {
            memset(out, 0, sizeof *out);
            if (!v) return vs_fail(e, "trainer status: \"train.%s\" is missing", f->name);
            if (f->count > 1)
                return vs_fail(e, "trainer status: \"train.%s\" is not an array of %d of %s",
                               f->name, f->count, type_words(f));
            return vs_fail(e, "trainer status: \"train.%s\" is not %s", f->name, type_words(f));
        }
    }
    return 0;
}

int rmt_status_from_json(rmt_status *out, const char *json, vs_err *e)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *o = json_loads(json, 0, &je);
    if (!o) return vs_fail(e, "trainer status: bad JSON (%s, column %d)", je.text, je.column);
    int rc = status_from_obj(out, o, e);
    json_decref(o);
    return rc;
}

/* ---- paths --------------------------------------------------------------------------------- */

/* dir/.visage into vdir and dir/.visage/trainer.sock into a; -1 if the socket's path is too long
 * for sun_path (108 bytes with its NUL on Linux) */
static int rmt_paths(char *vdir, size_t n, struct sockaddr_un *a, const char *dir, vs_err *e)
{
    if (!*dir) dir = ".";
    const char *sep = dir[strlen(dir) - 1] == '/' ? "" : "/";
    if ((size_t)snprintf(vdir, n, "%s%s" RMT_DIR, dir, sep) >= n)
        return vs_fail(e, "%s: path too long", dir);
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    int len = snprintf(a->sun_path, sizeof a->sun_path, "%s/" RMT_SOCK, vdir);
    if ((size_t)len >= sizeof a->sun_path)
        return vs_fail(e,
                       "%s/" RMT_SOCK ": path too long for the trainer's socket (%d bytes, at most "
                       "%zu); move the project to a shorter path or start visage inside it",
                       vdir, len, sizeof a->sun_path - 1);
    return 0;
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the server ---------------------------------------------------------------------------- */

typedef struct rmt_conn {
    int fd;                    /* -1: a free slot */
    char in[RMT_LINE_MAX + 1]; /* received, not yet answered: a line of RMT_LINE_MAX and '\n' */
    size_t in_len;
    char *out; /* the reply being sent (with its '\n'), NULL when none */
    size_t out_len, out_off;
} rmt_conn;

struct rmt_server {
    char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int lock_fd, listen_fd, wake[2];
    pthread_t thread;
    pthread_mutex_t mu; /* guards j and last against rmt_server_attach */
    job *j;
    rmt_status last; /* what the last status request (or the detach) read */
    rmt_conn conns[RMT_MAX_CLIENTS];
};

/* dir/.visage: a folder of ours, mode 0700 */
static int make_private_dir(const char *vdir, vs_err *e)
{
    if (mkdir(vdir, 0700) != 0 && errno != EEXIST)
        return vs_fail(e, "%s: cannot create folder (%s)", vdir, fs_strerror(errno));
    struct stat st;
    if (lstat(vdir, &st) != 0) return vs_fail(e, "%s: %s", vdir, fs_strerror(errno));
    if (!S_ISDIR(st.st_mode)) return vs_fail(e, "%s: exists and is not a folder; remove it", vdir);
    if (st.st_uid != geteuid())
        return vs_fail(e, "%s: belongs to another user (uid %u); remove it or run visage as them",
                       vdir, (unsigned)st.st_uid);
    if ((st.st_mode & 07777) != 0700 && chmod(vdir, 0700) != 0)
        return vs_fail(e, "%s: cannot make it private (%s)", vdir, fs_strerror(errno));
    return 0;
}

/* the pid in a lock file another process holds; it writes it just after taking the lock, so
 * wait a moment for it; 0 if unknown */
static int read_holder_pid(int fd)
{
    for (int tries = 0; tries < 20; tries++) {
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        if (n > 0) {
            buf[n] = 0;
            int pid = atoi(buf);
            if (pid > 0) return pid;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static void send_now(int fd, const char *line)
{
    (void)!send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void conn_drop(rmt_conn *c)
{
    close(c->fd);
    free(c->out);
    c->fd = -1;
    c->out = NULL;
    c->in_len = c->out_len = c->out_off = 0;
}

/* text (malloc'd) with a '\n' added */
static char *with_newline(char *text)
{
    size_t n = strlen(text);
    text = vs_realloc(text, n + 2);
    text[n] = '\n', text[n + 1] = 0;
    return text;
}

/* a JSON object as a reply line (free()) */
static char *reply_line(json_t *o)
{
    char *text = json_dumps(o, RMT_JSON_FLAGS);
    json_decref(o);
    VS_CHECK(text != NULL);
    return with_newline(text);
}

static char *reply_error(const char *msg)
{
    return reply_line(json_pack("{s:s}", "error", msg));
}

/* the reply to one request line */
static char *handle_request(rmt_server *s, const char *line, size_t len)
{
    json_error_t je;
    json_t *req = json_loadb(line, len, 0, &je);
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    char *reply;
    if (!cmd) {
        reply = reply_error("bad request: expected one line {\"cmd\":\"status\"}, or \"save\", "
                            "\"pause\", \"resume\", \"stop\"");
    } else if (strcmp(cmd, "status") == 0) {
        pthread_mutex_lock(&s->mu);
        if (s->j) {
            s->last.state = job_snapshot(s->j, &s->last.st);
            s->last.starting = 0;
        }
        reply = with_newline(rmt_status_to_json(&s->last));
        pthread_mutex_unlock(&s->mu);
    } else {
        int k = name_index(cmd_names, N_OF(cmd_names), cmd);
        const char *err = NULL;
        pthread_mutex_lock(&s->mu);
        if (k < 0)
            err = "unknown command";
        else if (!s->j)
            err = s->last.starting ? "the trainer is still starting; try again"
                                   : "the training has ended";
        else
            job_command(s->j, (job_cmd)k);
        pthread_mutex_unlock(&s->mu);
        reply = err ? reply_error(err) : reply_line(json_pack("{s:b}", "ok", 1));
    }
    json_decref(req);
    return reply;
}

/* sends what it can of c's reply without blocking; -1 if the client is gone */
static int conn_flush(rmt_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (w < 0) return -1;
        c->out_off += (size_t)w;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return 0;
}

/* answers the complete lines in c's buffer, one reply at a time (a client that does not read
 * its replies is not read from either); -1 drops the client (a line too long) */
static int conn_process(rmt_server *s, rmt_conn *c)
{
    while (!c->out) {
        char *nl = memchr(c->in, '\n', c->in_len);
        if (!nl) return c->in_len > RMT_LINE_MAX ? -1 : 0;
        size_t used = (size_t)(nl - c->in) + 1;
        c->out = handle_request(s, c->in, used - 1);
        c->out_len = strlen(c->out);
        c->out_off = 0;
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (conn_flush(c)) return -1;
    }
    return 0;
}

static void conn_service(rmt_server *s, rmt_conn *c, short revents)
{
    if (c->out) { /* polled for POLLOUT only */
        if ((revents & (POLLERR | POLLHUP)) || conn_flush(c) || conn_process(s, c)) conn_drop(c);
        return;
    }
    ssize_t r = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r <= 0) { /* gone (a half-sent line is dropped with it) */
        conn_drop(c);
        return;
    }
    c->in_len += (size_t)r;
    if (conn_process(s, c)) conn_drop(c);
}

/* accepts every pending connection; -1 when out of descriptors (the caller backs off) */
static int accept_all(rmt_server *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        /* behind the 0700 folder and 0600 socket, in case someone loosened them */
        struct ucred cr;
        socklen_t cl = sizeof cr;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != geteuid()) {
            send_now(fd, "{\"error\":\"" RMT_REFUSED_OTHER_USER "\"}\n");
            close(fd);
            continue;
        }
        rmt_conn *c = NULL;
        for (int i = 0; i < RMT_MAX_CLIENTS && !c; i++)
            if (s->conns[i].fd < 0) c = &s->conns[i];
        if (!c) {
            send_now(fd, "{\"error\":\"too many clients\"}\n");
            close(fd);
            continue;
        }
        c->fd = fd;
        c->in_len = 0;
    }
}

static void *server_main(void *p)
{
    rmt_server *s = p;
    struct pollfd pf[2 + RMT_MAX_CLIENTS];
    int which[2 + RMT_MAX_CLIENTS]; /* pf index -> conns index */
    int backoff = 0;                /* out of descriptors: stop accepting for a moment */
    for (;;) {
        int n = 2;
        pf[0] = (struct pollfd){.fd = s->wake[0], .events = POLLIN};
        pf[1] = (struct pollfd){.fd = backoff ? -1 : s->listen_fd, .events = POLLIN};
        for (int i = 0; i < RMT_MAX_CLIENTS; i++) {
            rmt_conn *c = &s->conns[i];
            if (c->fd < 0) continue;
            which[n] = i;
            pf[n++] = (struct pollfd){.fd = c->fd, .events = c->out ? POLLOUT : POLLIN};
        }
        int r = poll(pf, (nfds_t)n, backoff ? 100 : -1);
        VS_CHECK(r >= 0 || errno == EINTR);
        backoff = 0;
        if (r <= 0) continue;
        if (pf[0].revents) break;
        for (int k = 2; k < n; k++)
            if (pf[k].revents) conn_service(s, &s->conns[which[k]], pf[k].revents);
        if (pf[1].revents && accept_all(s)) backoff = 1;
    }
    return NULL;
}

int rmt_server_open(rmt_server **out, int *busy_pid, const char *dir, vs_err *e)
{
    *out = NULL;
    if (busy_pid) *busy_pid = 0;
    char vdir[PATH_MAX], lock[PATH_MAX + 16];
    struct sockaddr_un a;
    if (rmt_paths(vdir, sizeof vdir, &a, dir, e) || make_private_dir(vdir, e)) return -1;

    snprintf(lock, sizeof lock, "%s/" RMT_LOCK, vdir);
    int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0) return vs_fail(e, "%s: cannot open (%s)", lock, fs_strerror(errno));
    if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        if (err == EWOULDBLOCK) {
            int pid = read_holder_pid(lfd);
            if (busy_pid) *busy_pid = pid;
            close(lfd);
            return 1;
        }
        close(lfd);
        return vs_fail(e, "%s: cannot lock (%s)", lock, fs_strerror(err));
    }
    char pid[32];
    int np = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(lfd, 0) != 0 || pwrite(lfd, pid, (size_t)np, 0) != np) {
        int err = errno;
        close(lfd);
        return vs_fail(e, "%s: cannot write (%s)", lock, fs_strerror(err));
    }

    /* the lock is ours, so a socket there is a crashed trainer's */
    if (unlink(a.sun_path) != 0 && errno != ENOENT) {
        int err = errno;
        close(lfd);
        return vs_fail(e, "%s: cannot remove the old socket (%s)", a.sun_path, fs_strerror(err));
    }
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0) {
        int err = errno;
        close(lfd);
        return vs_fail(e, "%s: cannot create a socket (%s)", a.sun_path, fs_strerror(err));
    }
    /* nobody can connect before listen(), so chmod after bind() leaves no window */
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || chmod(a.sun_path, 0600) != 0 ||
        listen(ls, 16) != 0) {
        int err = errno;
        close(ls);
        unlink(a.sun_path);
        close(lfd);
        return vs_fail(e, "%s: cannot listen (%s)", a.sun_path, fs_strerror(err));
    }
    int wake[2];
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        int err = errno;
        close(ls);
        unlink(a.sun_path);
        close(lfd);
        return vs_fail(e, "%s: cannot create a pipe (%s)", a.sun_path, fs_strerror(err));
    }

    rmt_server *s = vs_calloc(1, sizeof *s);
    memcpy(s->sock_path, a.sun_path, sizeof s->sock_path);
    s->lock_fd = lfd;
    s->listen_fd = ls;
    s->wake[0] = wake[0], s->wake[1] = wake[1];
    pthread_mutex_init(&s->mu, NULL);
    s->last.starting = 1;
    s->last.pid = (int)getpid();
    for (int i = 0; i < RMT_MAX_CLIENTS; i++) s->conns[i].fd = -1;
    VS_CHECK(pthread_create(&s->thread, NULL, server_main, s) == 0);
    *out = s;
    return 0;
}

void rmt_server_attach(rmt_server *s, job *j)
{
    VS_CHECK(!j || j->status_size == sizeof(train_status));
    pthread_mutex_lock(&s->mu);
    if (s->j) { /* keep the old job's last word */
        s->last.state = job_snapshot(s->j, &s->last.st);
        s->last.starting = 0;
    }
    s->j = j;
    if (j) s->last.starting = 0;
    pthread_mutex_unlock(&s->mu);
}

void rmt_server_close(rmt_server *s)
{
    if (!s) return;
    char b = 1;
    ssize_t w;
    do w = write(s->wake[1], &b, 1);
    while (w < 0 && errno == EINTR);
    VS_CHECK(pthread_join(s->thread, NULL) == 0);
    for (int i = 0; i < RMT_MAX_CLIENTS; i++)
        if (s->conns[i].fd >= 0) conn_drop(&s->conns[i]);
    /* still holding the lock: no new trainer can have bound a socket of its own there yet */
    unlink(s->sock_path);
    close(s->listen_fd);
    close(s->wake[0]);
    close(s->wake[1]);
    (void)!ftruncate(s->lock_fd, 0);
    close(s->lock_fd); /* releases the lock; the file stays (unlinking it would race) */
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---- the client ---------------------------------------------------------------------------- */

struct rmt_client {
    int fd; /* -1 once the connection failed */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char buf[RMT_REPLY_MAX]; /* received, not yet taken */
    size_t len;
};

static int client_lost(rmt_client *c, vs_err *e, const char *why)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    return vs_fail(e, "%s: %s", c->path, why);
}

/* sends a request line and returns the reply object (json_decref()); a reply {"error":...} is -1
 * with its message. Within RMT_TIMEOUT_MS in all. */
static int client_call(json_t **reply, rmt_client *c, const char *req, vs_err *e)
{
    *reply = NULL;
    if (c->fd < 0) return vs_fail(e, "%s: the connection to the trainer was lost", c->path);
    long deadline = now_ms() + RMT_TIMEOUT_MS;
    size_t n = strlen(req), off = 0;
    while (off < n) {
        /* SO_SNDTIMEO bounds a send to a trainer that stopped reading */
        ssize_t w = send(c->fd, req + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return client_lost(c, e, "the trainer did not answer in time");
        if (w < 0) break; /* closed: a refusal may still be waiting to be read */
        off += (size_t)w;
    }
    char *nl;
    while (!(nl = memchr(c->buf, '\n', c->len))) {
        if (c->len == sizeof c->buf) return client_lost(c, e, "the trainer's reply is too long");
        long left = deadline - now_ms();
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int r = left > 0 ? poll(&pf, 1, (int)left) : 0;
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) return client_lost(c, e, "the trainer did not answer in time");
        ssize_t got = r < 0 ? -1 : recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return client_lost(c, e, "the trainer went away (connection closed)");
        c->len += (size_t)got;
    }
    size_t used = (size_t)(nl - c->buf) + 1;
    json_error_t je;
    json_t *o = json_loadb(c->buf, used - 1, 0, &je);
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    if (!json_is_object(o)) {
        json_decref(o);
        return client_lost(c, e, "not a visage trainer (its reply is not a JSON object)");
    }
    const char *err = json_string_value(json_object_get(o, "error"));
    if (err) {
        vs_fail(e, "%s: %s", c->path, err);
        json_decref(o);
        return -1;
    }
    if (off < n) {
        json_decref(o);
        return client_lost(c, e, "the trainer went away (connection closed)");
    }
    *reply = o;
    return 0;
}

int rmt_connect(rmt_client **out, const char *dir, vs_err *e)
{
    *out = NULL;
    char vdir[PATH_MAX];
    struct sockaddr_un a;
    if (rmt_paths(vdir, sizeof vdir, &a, dir, e)) return -1;
    struct stat st;
    if (stat(a.sun_path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return 0;
        return vs_fail(e, "%s: cannot reach the trainer (%s)", a.sun_path, fs_strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode)) return 0; /* junk a new trainer will replace */

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return vs_fail(e, "%s: cannot create a socket (%s)", a.sun_path, fs_strerror(errno));
    /* connect() to a trainer whose backlog is full, and send(), wait at most this long */
    struct timeval tv = {RMT_TIMEOUT_MS / 1000, RMT_TIMEOUT_MS % 1000 * 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int err = errno;
        close(fd);
        if (err == ECONNREFUSED || err == ENOENT) return 0; /* a crashed trainer's socket */
        if (err == EAGAIN || err == EINPROGRESS)
            return vs_fail(e, "%s: the trainer did not answer in time", a.sun_path);
        return vs_fail(e, "%s: cannot reach the trainer (%s)", a.sun_path, fs_strerror(err));
    }
    rmt_client *c = vs_calloc(1, sizeof *c);
    c->fd = fd;
    memcpy(c->path, a.sun_path, sizeof c->path);

    /* a first status: a refusal or a stranger on the socket shows here */
    rmt_status s;
    if (rmt_status_get(&s, c, e)) {
        rmt_close(c);
        return -1;
    }
    struct ucred cr = {0};
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 || cr.uid != geteuid()) {
        vs_fail(e, "%s: refused: the trainer there runs as uid %u, not as you", c->path,
                (unsigned)cr.uid);
        rmt_close(c);
        return -1;
    }
    *out = c;
    return 1;
}

int rmt_status_get(rmt_status *out, rmt_client *c, vs_err *e)
{
    memset(out, 0, sizeof *out);
    json_t *o;
    if (client_call(&o, c, "{\"cmd\":\"status\"}\n", e)) return -1;
    int rc = status_from_obj(out, o, e);
    json_decref(o);
    if (rc) vs_failctx(e, "%s", c->path);
    return rc;
}

int rmt_command(rmt_client *c, job_cmd cmd, vs_err *e)
{
    VS_CHECK((int)cmd >= 0 && (int)cmd < N_OF(cmd_names));
    char req[64];
    snprintf(req, sizeof req, "{\"cmd\":\"%s\"}\n", cmd_names[cmd]);
    json_t *o;
    if (client_call(&o, c, req, e)) return -1;
    int ok = json_is_true(json_object_get(o, "ok"));
    json_decref(o);
    if (!ok) return vs_fail(e, "%s: unexpected reply to \"%s\"", c->path, cmd_names[cmd]);
    return 0;
}

void rmt_close(rmt_client *c)
{
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c);
}
