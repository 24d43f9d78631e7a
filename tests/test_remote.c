/* test_remote.c: the trainer's Unix socket (core/remote.c): the status's JSON round trip, exact to
 * the bit, and bad JSON refused; a fake trainer driven by a client (status, save, pause, resume,
 * stop); the files' permissions; the lock (busy, a crashed server's stale socket, a hung server);
 * other users refused; bad paths; clients that misbehave without disturbing the others. */
#include <errno.h>
#include <float.h>
#include <grp.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "check.h"
#include "fsutil.h"
#include "remote.h"

#define OTHER_UID 65534 /* nobody */

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* a new project folder under /tmp (short, for sun_path) */
static void make_project(char *dir, size_t n)
{
    snprintf(dir, n, "/tmp/vs-rmt-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

static void project_file(char *buf, size_t n, const char *dir, const char *name)
{
    snprintf(buf, n, "%s/.visage/%s", dir, name);
}

/* ---- 1: the status as JSON ----------------------------------------------------------------- */

/* distinctive values in every member, messages included */
static void fill_status(rmt_status *s)
{
    memset(s, 0, sizeof *s);
    s->state = JOB_PAUSED;
    s->pid = 123457;
    train_status *t = &s->st;
    t->phase = TRAIN_SAVING;
    snprintf(t->arch, sizeof t->arch, "dfl-h128 \"\xc3\xbc\"\\/");
    t->params = ((size_t)1 << 40) | 12345;
    t->faces[0] = 1234, t->faces[1] = 4321;
    t->batch = 17;
    t->iteration = 9876543210L;
    t->start_iteration = 1234567;
    t->target = 20000000001L;
    t->loss[0] = 0.1, t->loss[1] = 1.0 / 3.0;
    t->it_s = 4.9406564584124654e-324; /* the smallest subnormal */
    t->egs_s = DBL_MAX;
    t->gpu_mem = (size_t)81920 << 20;
    t->gpu_mem_peak = (size_t)LLONG_MAX;
    t->gpu_util = 97;
    t->elapsed = 12345.678901234567;
    t->trained = 1.2345e300;
    t->saved_iteration = -1;
    t->saves = 42;
    t->preview_serial = LONG_MAX;
    t->events = 13;
    for (int i = 0; i < TRAIN_EVENTS; i++) {
        /* (split where a hex escape would swallow the next letter) */
        snprintf(t->event[i], sizeof t->event[i],
                 "event %d: line\nbreak, \"quotes\", tab\t, \xc3\xbcn\xc3\xaf"
                 "c\xc3\xb6"
                 "de \xe2\x9c\x93 "
                 "\x01 and \xf0\x9f\x98\x80",
                 i);
        t->event_warning[i] = 3 * i + 1;
    }
    memset(t->event[7], 'z', sizeof t->event[7] - 1); /* the longest message that fits */
}

/* json with one member of "train" (or "state") replaced by v (NULL: removed), through from_json:
 * its message (or "" if it parsed) */
static void parse_edited(char *msg, size_t n, const char *json, const char *key, json_t *v)
{
    json_t *o = json_loads(json, 0, NULL);
    json_t *train = json_object_get(o, "train");
    if (strcmp(key, "state") == 0)
        json_object_set_new(o, key, v);
    else if (v)
        json_object_set_new(train, key, v);
    else
        json_object_del(train, key);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    rmt_status s;
    vs_err e = {{0}};
    int rc = rmt_status_from_json(&s, text, &e);
    free(text);
    snprintf(msg, n, "%s", rc ? e.msg : "");
}

static void test_json(void)
{
    rmt_status a, b;
    vs_err e = {{0}};
    fill_status(&a);
    char *json = rmt_status_to_json(&a);
    CHECKF(!strchr(json, '\n'), "not one line: %s", json);
    memset(&b, 0xAB, sizeof b); /* from_json zeroes it first */
    CHECKF(rmt_status_from_json(&b, json, &e) == 0, "%s", e.msg);
    CHECKF(memcmp(&a, &b, sizeof a) == 0, "round trip differs:\n%s", json);
    CHECK(b.st.it_s == a.st.it_s && b.st.egs_s == DBL_MAX && b.st.loss[1] == 1.0 / 3.0);
    CHECK(b.st.event_warning[7] == 22 && strcmp(b.st.event[3], a.st.event[3]) == 0);
    char *again = rmt_status_to_json(&b);
    CHECK(strcmp(json, again) == 0);
    free(again);

    /* the "starting" status of a server without a job */
    memset(&a, 0, sizeof a);
    a.starting = 1, a.pid = 42;
    char *j2 = rmt_status_to_json(&a);
    CHECK(rmt_status_from_json(&b, j2, &e) == 0 && memcmp(&a, &b, sizeof a) == 0);
    CHECK(b.starting == 1 && b.pid == 42);
    free(j2);

    /* non-finite numbers and a negative zero keep their values (and sign) */
    memset(&a, 0, sizeof a);
    a.st.loss[0] = NAN, a.st.loss[1] = -0.0, a.st.it_s = INFINITY, a.st.egs_s = -INFINITY;
    j2 = rmt_status_to_json(&a);
    CHECKF(rmt_status_from_json(&b, j2, &e) == 0, "%s", e.msg);
    CHECK(isnan(b.st.loss[0]) && b.st.loss[1] == 0 && signbit(b.st.loss[1]));
    CHECK(isinf(b.st.it_s) && b.st.it_s > 0 && isinf(b.st.egs_s) && b.st.egs_s < 0);
    free(j2);

    /* bytes that are not UTF-8 become '?' (jansson would refuse the string); UTF-8 stays */
    memset(&a, 0, sizeof a);
    snprintf(a.st.event[0], sizeof a.st.event[0], "bad \xff\xfe \xc3 \xed\xa0\x80 ok \xc3\xbc");
    j2 = rmt_status_to_json(&a);
    CHECKF(rmt_status_from_json(&b, j2, &e) == 0, "%s", e.msg);
    CHECKF(strcmp(b.st.event[0], "bad ?? ? ??? ok \xc3\xbc") == 0, "%s", b.st.event[0]);
    free(j2);

    /* bad input: -1 with a message naming the field */
    char msg[1024];
    CHECK(rmt_status_from_json(&b, "{\"state\":", &e) == -1 && strstr(e.msg, "bad JSON"));
    CHECK(rmt_status_from_json(&b, "[1,2]", &e) == -1 && strstr(e.msg, "not a JSON object"));
    parse_edited(msg, sizeof msg, json, "iteration", NULL);
    CHECKF(strstr(msg, "\"train.iteration\" is missing"), "%s", msg);
    parse_edited(msg, sizeof msg, json, "loss", json_pack("[f]", 1.0));
    CHECKF(strstr(msg, "\"train.loss\" is not an array of 2"), "%s", msg);
    parse_edited(msg, sizeof msg, json, "arch", json_string("0123456789012345678901234567890x"));
    CHECKF(strstr(msg, "\"train.arch\" is not a string that fits"), "%s", msg);
    parse_edited(msg, sizeof msg, json, "phase", json_string("dancing"));
    CHECKF(strstr(msg, "\"train.phase\""), "%s", msg);
    parse_edited(msg, sizeof msg, json, "faces", json_pack("[I,i]", (json_int_t)1 << 40, 1));
    CHECKF(strstr(msg, "\"train.faces\""), "%s", msg);
    parse_edited(msg, sizeof msg, json, "params", json_integer(-1));
    CHECKF(strstr(msg, "\"train.params\""), "%s", msg);
    parse_edited(msg, sizeof msg, json, "elapsed", json_string("soon"));
    CHECKF(strstr(msg, "\"train.elapsed\""), "%s", msg);
    parse_edited(msg, sizeof msg, json, "state", json_string("sleeping"));
    CHECKF(strstr(msg, "\"state\""), "%s", msg);
    parse_edited(msg, sizeof msg, json, "iteration", json_integer(7)); /* and a good edit */
    CHECKF(msg[0] == 0, "%s", msg);
    free(json);
}

/* ---- a fake trainer ------------------------------------------------------------------------ */

/* publishes an increasing iteration every millisecond, counts saves */
static int fake_train(job *j, void *arg, vs_err *e)
{
    train_status st;
    memset(&st, 0, sizeof st);
    st.phase = TRAIN_RUNNING;
    snprintf(st.arch, sizeof st.arch, "fake");
    st.saved_iteration = -1;
    for (;;) {
        if (job_take_save(j)) {
            st.saves++;
            st.saved_iteration = st.iteration;
        }
        st.iteration++;
        if (job_publish(j, &st)) break;
        sleep_ms(1);
    }
    return 0;
}

typedef int (*status_pred)(const rmt_status *s, long arg);

static int iteration_above(const rmt_status *s, long n)
{
    return !s->starting && s->st.iteration > n;
}

static int saves_above(const rmt_status *s, long n)
{
    return s->st.saves > n;
}

static int state_is(const rmt_status *s, long state)
{
    return !s->starting && s->state == (job_state)state;
}

static int running_above(const rmt_status *s, long n)
{
    return s->state == JOB_RUNNING && s->st.iteration > n;
}

/* polls c's status until pred holds (1) or 3 s pass (0); the last status in *s */
static int wait_status(rmt_status *s, rmt_client *c, status_pred pred, long arg)
{
    double t0 = seconds();
    vs_err e = {{0}};
    while (seconds() - t0 < 3) {
        if (rmt_status_get(s, c, &e)) {
            fprintf(stderr, "  status: %s\n", e.msg);
            return 0;
        }
        if (pred(s, arg)) return 1;
        sleep_ms(5);
    }
    return 0;
}

/* ---- 2: a trainer driven by a client ------------------------------------------------------- */

static void test_drive(void)
{
    char dir[64], sock[128];
    make_project(dir, sizeof dir);
    project_file(sock, sizeof sock, dir, "trainer.sock");
    vs_err e = {{0}};
    rmt_server *srv;
    int busy = -1;
    CHECKF(rmt_server_open(&srv, &busy, dir, &e) == 0, "%s", e.msg);
    CHECK(busy == 0);

    rmt_client *c;
    CHECKF(rmt_connect(&c, dir, &e) == 1, "%s", e.msg);
    rmt_status s;
    CHECK(rmt_status_get(&s, c, &e) == 0 && s.starting == 1 && s.pid == (int)getpid());
    /* commands wait for the job; the connection survives the refusal */
    CHECK(rmt_command(c, JOB_CMD_SAVE, &e) == -1 && strstr(e.msg, "still starting"));
    CHECK(rmt_status_get(&s, c, &e) == 0 && s.starting == 1);

    job j;
    train_status jst;
    memset(&jst, 0, sizeof jst);
    job_start(&j, fake_train, NULL, &jst, sizeof jst);
    rmt_server_attach(srv, &j);

    CHECK(wait_status(&s, c, iteration_above, 5));
    CHECK(strcmp(s.st.arch, "fake") == 0 && s.state == JOB_RUNNING);
    long it = s.st.iteration;
    CHECKF(wait_status(&s, c, iteration_above, it + 5), "iteration stuck at %ld", it);

    long saves = s.st.saves;
    CHECKF(rmt_command(c, JOB_CMD_SAVE, &e) == 0, "%s", e.msg);
    CHECK(wait_status(&s, c, saves_above, saves));
    CHECK(s.st.saves == saves + 1 && s.st.saved_iteration > 0);

    CHECKF(rmt_command(c, JOB_CMD_PAUSE, &e) == 0, "%s", e.msg);
    CHECK(wait_status(&s, c, state_is, JOB_PAUSED));
    it = s.st.iteration;
    sleep_ms(100);
    CHECK(rmt_status_get(&s, c, &e) == 0 && s.state == JOB_PAUSED);
    CHECKF(s.st.iteration == it, "paused, yet %ld -> %ld", it, s.st.iteration);

    CHECKF(rmt_command(c, JOB_CMD_RESUME, &e) == 0, "%s", e.msg);
    CHECK(wait_status(&s, c, running_above, it + 5));

    /* a second client sees the same trainer */
    rmt_client *c2;
    rmt_status s2;
    CHECKF(rmt_connect(&c2, dir, &e) == 1, "%s", e.msg);
    CHECK(rmt_status_get(&s2, c2, &e) == 0 && s2.st.iteration >= s.st.iteration);

    /* the owner sees the job end (as the workbench does, by its own snapshots), detaches it and
     * joins it; the server still answers with the job's last status */
    CHECKF(rmt_command(c2, JOB_CMD_STOP, &e) == 0, "%s", e.msg);
    double t0 = seconds();
    while (job_snapshot(&j, NULL) != JOB_STOPPED && seconds() - t0 < 3) sleep_ms(1);
    CHECK(job_snapshot(&j, NULL) == JOB_STOPPED);
    job_command(&j, JOB_CMD_STOP); /* (if the remote stop failed, so that job_wait returns) */
    rmt_server_attach(srv, NULL);  /* before job_wait */
    CHECKF(job_wait(&j, &e) == 0, "%s", e.msg);
    /* the last word stays */
    CHECK(rmt_status_get(&s2, c, &e) == 0 && s2.state == JOB_STOPPED && !s2.starting);
    CHECK(s2.st.iteration == jst.iteration && s2.st.saves == saves + 1);
    CHECK(rmt_command(c2, JOB_CMD_SAVE, &e) == -1 && strstr(e.msg, "ended"));

    rmt_server_close(srv);
    CHECK(!fs_exists(sock));
    /* the server went away under a connected client */
    CHECK(rmt_status_get(&s, c, &e) == -1 && strstr(e.msg, "went away"));
    CHECK(rmt_status_get(&s, c, &e) == -1 && strstr(e.msg, "lost"));
    rmt_close(c);
    rmt_close(c2);
    CHECK(rmt_connect(&c, dir, &e) == 0);
    check_rm_rf(dir);
}

/* ---- 3: permissions ------------------------------------------------------------------------ */

static void test_permissions(void)
{
    char dir[64], vdir[96], sock[128], lock[128];
    make_project(dir, sizeof dir);
    snprintf(vdir, sizeof vdir, "%s/.visage", dir);
    project_file(sock, sizeof sock, dir, "trainer.sock");
    project_file(lock, sizeof lock, dir, "trainer.lock");
    /* a folder left too open is closed */
    CHECK(mkdir(vdir, 0755) == 0 && chmod(vdir, 0755) == 0);
    vs_err e = {{0}};
    rmt_server *srv;
    CHECKF(rmt_server_open(&srv, NULL, dir, &e) == 0, "%s", e.msg);
    struct stat st;
    CHECK(stat(vdir, &st) == 0 && S_ISDIR(st.st_mode));
    CHECKF((st.st_mode & 07777) == 0700, "folder mode %o", (unsigned)(st.st_mode & 07777));
    CHECK(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode));
    CHECKF((st.st_mode & 07777) == 0600, "socket mode %o", (unsigned)(st.st_mode & 07777));
    CHECK(stat(lock, &st) == 0 && (st.st_mode & 07777) == 0600);
    char *text = NULL;
    CHECK(fs_read_all(&text, NULL, lock, &e) == 0 && text && atoi(text) == (int)getpid());
    free(text);
    rmt_server_close(srv);
    CHECK(!fs_exists(sock) && fs_exists(lock));

    /* .visage that is not a folder */
    check_rm_rf(vdir);
    FILE *f = fopen(vdir, "w");
    if (f) fclose(f);
    CHECK(rmt_server_open(&srv, NULL, dir, &e) == -1 && strstr(e.msg, "not a folder"));
    rmt_client *c;
    CHECK(rmt_connect(&c, dir, &e) == 0);
    check_rm_rf(dir);
}

/* ---- 4: the lock, stale and hung sockets --------------------------------------------------- */

static void test_lock(void)
{
    char dir[64], sock[128];
    make_project(dir, sizeof dir);
    project_file(sock, sizeof sock, dir, "trainer.sock");
    vs_err e = {{0}};
    rmt_server *s1, *s2 = NULL;
    int busy = -1;
    CHECKF(rmt_server_open(&s1, &busy, dir, &e) == 0, "%s", e.msg);
    CHECK(rmt_server_open(&s2, &busy, dir, &e) == 1 && s2 == NULL && busy == (int)getpid());
    rmt_server_close(s1);

    /* a trainer in another process: busy with its pid, reachable, then it crashes */
    int ready[2], quit[2];
    CHECK(pipe(ready) == 0 && pipe(quit) == 0);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        rmt_server *s;
        close(ready[0]), close(quit[1]);
        if (rmt_server_open(&s, NULL, dir, NULL) != 0) _exit(1);
        (void)!write(ready[1], "r", 1);
        char b;
        (void)!read(quit[0], &b, 1);
        _exit(0); /* no rmt_server_close: as if it crashed */
    }
    close(ready[1]), close(quit[0]);
    char b = 0;
    CHECK(read(ready[0], &b, 1) == 1 && b == 'r');
    CHECK(rmt_server_open(&s2, &busy, dir, &e) == 1 && busy == (int)child);
    rmt_client *c;
    rmt_status s;
    CHECKF(rmt_connect(&c, dir, &e) == 1, "%s", e.msg);
    CHECK(rmt_status_get(&s, c, &e) == 0 && s.starting && s.pid == (int)child);
    rmt_close(c);
    close(quit[1]);
    int ws;
    CHECK(waitpid(child, &ws, 0) == child && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    close(ready[0]);

    CHECK(fs_exists(sock)); /* stale */
    e.msg[0] = 0;
    CHECKF(rmt_connect(&c, dir, &e) == 0, "%s", e.msg);
    CHECKF(rmt_server_open(&s2, &busy, dir, &e) == 0, "%s", e.msg);
    CHECKF(rmt_connect(&c, dir, &e) == 1, "%s", e.msg);
    CHECK(rmt_status_get(&s, c, &e) == 0 && s.pid == (int)getpid());
    rmt_close(c);
    rmt_server_close(s2);

    /* a socket that listens but never answers: the client gives up in time */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0);
    double t0 = seconds();
    CHECK(rmt_connect(&c, dir, &e) == -1 && strstr(e.msg, "did not answer in time"));
    double dt = seconds() - t0;
    CHECKF(dt > 1.5 && dt < 4, "gave up after %.2f s", dt);
    close(fd);
    /* its socket is stale now, and the lock is free */
    CHECKF(rmt_server_open(&s2, &busy, dir, &e) == 0, "%s", e.msg);
    rmt_server_close(s2);
    check_rm_rf(dir);
}

/* ---- 5: other users ------------------------------------------------------------------------ */

/* rmt_connect to dir as OTHER_UID in a child: 0 if it failed with a message holding expect */
static int connect_as_other(const char *dir, const char *expect)
{
    fflush(stdout);
    fflush(stderr);
    pid_t p = fork();
    if (p == 0) {
        if (setgroups(0, NULL) || setgid(OTHER_UID) || setuid(OTHER_UID)) _exit(2);
        rmt_client *c;
        vs_err e = {{0}};
        int rc = rmt_connect(&c, dir, &e);
        printf("  as uid %d: rmt_connect = %d: %s\n", OTHER_UID, rc, e.msg);
        fflush(stdout);
        _exit(rc == -1 && strstr(e.msg, expect) ? 0 : 1);
    }
    int ws;
    if (waitpid(p, &ws, 0) != p || !WIFEXITED(ws)) return -1;
    return WEXITSTATUS(ws);
}

/* a stranger's trainer: a socket of OTHER_UID in dir that answers anyone with a good status */
static pid_t serve_as_other(const char *dir, int ready_fd)
{
    fflush(stdout);
    pid_t p = fork();
    if (p) return p;
    alarm(10); /* whatever the client does */
    if (setgroups(0, NULL) || setgid(OTHER_UID) || setuid(OTHER_UID)) _exit(2);
    char vdir[96];
    snprintf(vdir, sizeof vdir, "%s/.visage", dir);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/trainer.sock", vdir);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (mkdir(vdir, 0755) || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4)) _exit(3);
    (void)!write(ready_fd, "r", 1);
    int cfd = accept(fd, NULL, NULL);
    char buf[256];
    (void)!read(cfd, buf, sizeof buf);
    rmt_status s;
    memset(&s, 0, sizeof s);
    s.starting = 1, s.pid = (int)getpid();
    char *json = rmt_status_to_json(&s);
    (void)!write(cfd, json, strlen(json));
    (void)!write(cfd, "\n", 1);
    (void)!read(cfd, buf, sizeof buf); /* until the client hangs up */
    _exit(0);
}

static void test_other_user(void)
{
    if (geteuid() != 0) {
        printf("skipped: not root, cannot act as another user\n");
        return;
    }
    char dir[64], vdir[96], sock[128];
    make_project(dir, sizeof dir);
    chmod(dir, 0755); /* the project is readable; .visage is what keeps others out */
    snprintf(vdir, sizeof vdir, "%s/.visage", dir);
    project_file(sock, sizeof sock, dir, "trainer.sock");
    vs_err e = {{0}};
    rmt_server *srv;
    CHECKF(rmt_server_open(&srv, NULL, dir, &e) == 0, "%s", e.msg);
    CHECK(connect_as_other(dir, "permission denied") == 0);
    /* loosened by hand: the socket is reached, and the server's SO_PEERCRED check refuses */
    CHECK(chmod(vdir, 0755) == 0 && chmod(sock, 0666) == 0);
    CHECK(connect_as_other(dir, "trainer.sock: refused: the trainer belongs to another user") == 0);
    /* the owner still gets in, and the server did not suffer */
    rmt_client *c;
    CHECKF(rmt_connect(&c, dir, &e) == 1, "%s", e.msg);
    rmt_close(c);
    rmt_server_close(srv);
    check_rm_rf(dir);

    /* the other way round: a socket served by another user is refused by the client */
    make_project(dir, sizeof dir);
    CHECK(chown(dir, OTHER_UID, OTHER_UID) == 0);
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t p = serve_as_other(dir, ready[1]);
    close(ready[1]);
    char b = 0;
    CHECK(read(ready[0], &b, 1) == 1 && b == 'r');
    close(ready[0]);
    int rc = rmt_connect(&c, dir, &e);
    CHECKF(rc == -1 && strstr(e.msg, "runs as uid 65534"), "%d: %s", rc, e.msg);
    if (rc == 1) rmt_close(c); /* (the stranger waits for the hang-up) */
    int ws;
    CHECK(waitpid(p, &ws, 0) == p && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    check_rm_rf(dir);
}

/* ---- 6: paths ------------------------------------------------------------------------------ */

static void test_paths(void)
{
    char dir[64], longdir[256], vdir[300];
    make_project(dir, sizeof dir);
    vs_err e = {{0}};
    rmt_client *c;
    rmt_server *srv;
    CHECKF(rmt_connect(&c, dir, &e) == 0, "%s", e.msg); /* no .visage */
    snprintf(longdir, sizeof longdir, "%s/nothing/here", dir);
    CHECKF(rmt_connect(&c, longdir, &e) == 0, "%s", e.msg);

    /* "DIR/.visage/trainer.sock" of 107 bytes fits sun_path (108 with the NUL), 108 does not */
    size_t tail = strlen("/.visage/trainer.sock");
    int pad = (int)(107 - tail - strlen(dir) - 1);
    snprintf(longdir, sizeof longdir, "%s/%.*s", dir, pad,
             "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
             "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
    CHECK(strlen(longdir) + tail == 107 && mkdir(longdir, 0700) == 0);
    CHECKF(rmt_server_open(&srv, NULL, longdir, &e) == 0, "%s", e.msg);
    CHECKF(rmt_connect(&c, longdir, &e) == 1, "%s", e.msg);
    rmt_close(c);
    rmt_server_close(srv);
    strcat(longdir, "/");
    strcat(longdir, "d");
    CHECK(strlen(longdir) + tail == 109 && mkdir(longdir, 0700) == 0);
    CHECK(rmt_connect(&c, longdir, &e) == -1 && strstr(e.msg, "path too long") &&
          strstr(e.msg, "/.visage/trainer.sock"));
    CHECK(rmt_server_open(&srv, NULL, longdir, &e) == -1 && strstr(e.msg, "path too long"));
    snprintf(vdir, sizeof vdir, "%s/.visage", longdir);
    CHECK(!fs_exists(vdir));
    /* a project folder that does not exist cannot be served */
    snprintf(longdir, sizeof longdir, "%s/missing", dir);
    CHECK(rmt_server_open(&srv, NULL, longdir, &e) == -1 && strstr(e.msg, "cannot create"));
    check_rm_rf(dir);
}

/* ---- 7: misbehaving clients ---------------------------------------------------------------- */

static int raw_connect(const char *dir)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s/.visage/trainer.sock", dir);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* one reply line into buf (without '\n'): its length, 0 if the server closed, -1 after 2 s */
static int raw_line(char *buf, size_t n, int fd)
{
    size_t len = 0;
    double t0 = seconds();
    while (len + 1 < n) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int left = (int)((2 - (seconds() - t0)) * 1000);
        if (left <= 0 || poll(&pf, 1, left) <= 0) return -1;
        ssize_t r = recv(fd, buf + len, 1, 0); /* a byte at a time: stop at the newline */
        if (r <= 0) return 0;
        if (buf[len] == '\n') break;
        len++;
    }
    buf[len] = 0;
    return (int)len;
}

static int raw_send(int fd, const char *s, size_t n)
{
    return send(fd, s, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static void test_bad_clients(void)
{
    char dir[64];
    make_project(dir, sizeof dir);
    vs_err e = {{0}};
    rmt_server *srv;
    CHECKF(rmt_server_open(&srv, NULL, dir, &e) == 0, "%s", e.msg);
    job j;
    train_status jst;
    memset(&jst, 0, sizeof jst);
    job_start(&j, fake_train, NULL, &jst, sizeof jst);
    rmt_server_attach(srv, &j);
    rmt_client *c;
    rmt_status s;
    CHECKF(rmt_connect(&c, dir, &e) == 1, "%s", e.msg);
    CHECK(wait_status(&s, c, iteration_above, 0));

    static char buf[RMT_LINE_MAX + 2000];
    /* half a line, then gone */
    int half = raw_connect(dir);
    CHECK(half >= 0 && raw_send(half, "{\"cmd\":\"sta", 11) == 0);
    close(half);
    /* one that never says anything, kept open throughout */
    int idle = raw_connect(dir);
    CHECK(idle >= 0);
    /* a flood without a newline is dropped */
    int flood = raw_connect(dir);
    memset(buf, 'x', sizeof buf);
    CHECK(flood >= 0);
    (void)raw_send(flood, buf, RMT_LINE_MAX + 1000); /* may fail once dropped */
    CHECK(raw_line(buf, sizeof buf, flood) == 0);
    close(flood);
    /* a line of exactly RMT_LINE_MAX is answered (it is no request), and the client stays */
    int edge = raw_connect(dir);
    memset(buf, 'x', RMT_LINE_MAX);
    buf[RMT_LINE_MAX] = '\n';
    CHECK(edge >= 0 && raw_send(edge, buf, RMT_LINE_MAX + 1) == 0);
    CHECK(raw_line(buf, sizeof buf, edge) > 0 && strstr(buf, "\"error\":\"bad request"));
    CHECK(raw_send(edge, "{\"cmd\":\"status\"}\n", 17) == 0);
    CHECK(raw_line(buf, sizeof buf, edge) > 0 && strstr(buf, "\"state\":\"running\""));
    close(edge);
    /* three requests in one write: three replies, in order */
    int piped = raw_connect(dir);
    const char *three = "{\"cmd\":\"status\"}\n{\"cmd\":\"dance\"}\nnot json\n";
    CHECK(piped >= 0 && raw_send(piped, three, strlen(three)) == 0);
    CHECK(raw_line(buf, sizeof buf, piped) > 0 && strstr(buf, "\"train\":{"));
    CHECK(raw_line(buf, sizeof buf, piped) > 0 && strstr(buf, "unknown command"));
    CHECK(raw_line(buf, sizeof buf, piped) > 0 && strstr(buf, "bad request"));
    /* one that asks and asks and never reads its replies */
    int deaf = raw_connect(dir);
    CHECK(deaf >= 0);
    for (int i = 0; i < 2000; i++)
        if (send(deaf, "{\"cmd\":\"status\"}\n", 17, MSG_NOSIGNAL | MSG_DONTWAIT) != 17) break;

    /* through all of it the first client is served and sees training go on */
    long it = s.st.iteration;
    CHECKF(wait_status(&s, c, iteration_above, it + 5), "iteration stuck at %ld", it);

    /* clients up to RMT_MAX_CLIENTS (c, idle, piped, deaf and these), then "too many" */
    int extra[RMT_MAX_CLIENTS + 1], n_extra = 0, refused = 0;
    while (n_extra <= RMT_MAX_CLIENTS) {
        int fd = raw_connect(dir);
        if (fd < 0) break;
        extra[n_extra++] = fd;
        (void)raw_send(fd, "{\"cmd\":\"status\"}\n", 17); /* fails if refused already */
        if (raw_line(buf, sizeof buf, fd) <= 0) break;
        if (strstr(buf, "too many clients")) {
            refused = 1;
            break;
        }
    }
    CHECKF(refused && n_extra - 1 == RMT_MAX_CLIENTS - 4, "%d accepted, refused %d", n_extra - 1,
           refused);
    for (int i = 0; i < n_extra; i++) close(extra[i]);
    close(idle);
    close(piped);
    close(deaf);
    it = s.st.iteration;
    CHECKF(wait_status(&s, c, iteration_above, it + 5), "iteration stuck at %ld", it);

    CHECKF(rmt_command(c, JOB_CMD_STOP, &e) == 0, "%s", e.msg);
    CHECK(wait_status(&s, c, state_is, JOB_STOPPED));
    job_command(&j, JOB_CMD_STOP); /* (if the remote stop failed, so that job_wait returns) */
    rmt_server_attach(srv, NULL);
    CHECK(job_wait(&j, &e) == 0);
    rmt_close(c);
    rmt_server_close(srv);
    check_rm_rf(dir);
}

int main(void)
{
    double t0 = seconds();
    test_json();
    test_drive();
    test_permissions();
    test_lock();
    test_other_user();
    test_paths();
    test_bad_clients();
    printf("test_remote: %.1f s\n", seconds() - t0);
    return check_report("test_remote");
}
