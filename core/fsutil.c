/* fsutil.c: atomic file writing, mkdir -p, folder listings and whole-file reads (see fsutil.h).
 * The atomic writer wraps its descriptor in a stdio stream (fopencookie) that remembers the errno
 * of the first failed write: stdio only keeps an error flag, and by the time a caller commits,
 * errno has long been overwritten, yet "no space left on device" is the message users need. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

struct fs_atomic_cookie {
    int fd;
    int err; /* errno of the first failed write; 0 while all went well */
};

const char *fs_strerror(int errnum)
{
    static _Thread_local char buf[256];
    if (errnum == ENOSPC || errnum == EFBIG || errnum == EDQUOT) return "no space left on device";
    const char *s = strerror_r(errnum, buf, sizeof buf); /* GNU variant: may return a static */
    if (s != buf) snprintf(buf, sizeof buf, "%s", s);
    /* "No such file" -> "no such file", but leave "I/O error" alone */
    if (buf[0] >= 'A' && buf[0] <= 'Z' && buf[1] >= 'a' && buf[1] <= 'z') buf[0] += 'a' - 'A';
    return buf;
}

/* ---- atomic writes ------------------------------------------------------------------------ */

static ssize_t cookie_write(void *c, const char *buf, size_t n)
{
    fs_atomic_cookie *ck = c;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(ck->fd, buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (!ck->err) ck->err = w < 0 ? errno : ENOSPC;
            return 0; /* stdio's convention for a failed write: 0, never negative */
        }
        done += (size_t)w;
    }
    return (ssize_t)n;
}

/* seeking (a muxer going back to patch a size): stdio flushes its buffer first */
static int cookie_seek(void *c, off64_t *pos, int whence)
{
    fs_atomic_cookie *ck = c;
    off_t r = lseek(ck->fd, (off_t)*pos, whence);
    if (r < 0) return -1;
    *pos = (off64_t)r;
    return 0;
}

static int cookie_close(void *c)
{
    (void)c; /* the descriptor is fsync'd and closed by fs_atomic_commit / fs_atomic_abort */
    return 0;
}

static mode_t umask_value = 022;

static void read_umask(void)
{
    /* umask() can only be read by changing it, which races with other threads creating files;
     * /proc/self/status has it since Linux 4.7. Otherwise assume the usual 022. */
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Umask:", 6) == 0) {
            umask_value = (mode_t)strtol(line + 6, NULL, 8) & 0777;
            break;
        }
    fclose(f);
}

static mode_t file_mode_from_umask(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, read_umask);
    return 0666 & ~umask_value;
}

/* "DIR/NAME" -> "DIR/.NAME.tmp-XXXXXX" (no DIR: ".NAME.tmp-XXXXXX") */
static char *tmp_template(const char *path)
{
    const char *base = fs_basename(path);
    size_t dir_len = (size_t)(base - path);
    size_t n = strlen(path) + 16;
    char *t = vs_malloc(n);
    snprintf(t, n, "%.*s.%s.tmp-XXXXXX", (int)dir_len, path, base);
    return t;
}

int fs_atomic_open(fs_atomic *a, const char *path, vs_err *e)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    const char *base = fs_basename(path);
    if (!*base) return vs_fail(e, "%s: not a file name (ends with '/')", path);

    char *tmp = tmp_template(path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int err = errno;
        free(tmp);
        if (err == ENOENT) return vs_fail(e, "%s: cannot write: its folder does not exist", path);
        return vs_fail(e, "%s: cannot write (%s)", path, fs_strerror(err));
    }
    (void)fchmod(fd, file_mode_from_umask()); /* mkstemp makes 0600; outputs are for sharing */

    fs_atomic_cookie *ck = vs_calloc(1, sizeof *ck);
    ck->fd = fd;
    cookie_io_functions_t io = {.write = cookie_write, .seek = cookie_seek, .close = cookie_close};
    FILE *f = fopencookie(ck, "w", io);
    VS_CHECK(f != NULL); /* fails only without memory */

    a->f = f;
    a->path = vs_strdup(path);
    a->tmp = tmp;
    a->fd = fd;
    a->cookie = ck;
    return 0;
}

int fs_atomic_failed(const fs_atomic *a)
{
    return a->f && (ferror(a->f) || (a->cookie && a->cookie->err));
}

static void atomic_release(fs_atomic *a)
{
    free(a->path);
    free(a->tmp);
    free(a->cookie);
    a->path = a->tmp = NULL;
    a->cookie = NULL;
    a->f = NULL;
    a->fd = -1;
}

void fs_atomic_abort(fs_atomic *a)
{
    if (!a->f && !a->tmp) return;
    if (a->f) fclose(a->f);
    if (a->fd >= 0) close(a->fd);
    if (a->tmp) unlink(a->tmp);
    atomic_release(a);
}

static int fsync_dir_of(const char *path)
{
    const char *base = fs_basename(path);
    size_t n = (size_t)(base - path);
    char *dir = n ? vs_malloc(n + 1) : NULL;
    if (dir) memcpy(dir, path, n), dir[n] = 0;
    int fd = open(dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    /* some file systems cannot sync folders; the rename itself has happened */
    if (rc < 0 && (errno == EINVAL || errno == ENOTSUP)) rc = 0;
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

int fs_atomic_commit(fs_atomic *a, vs_err *e)
{
    VS_CHECK(a->f != NULL && a->tmp != NULL);
    int err = 0;
    if (fflush(a->f) != 0 || ferror(a->f) || a->cookie->err)
        err = a->cookie->err ? a->cookie->err : (errno ? errno : EIO);
    else if (fsync(a->fd) != 0)
        err = errno;
    fclose(a->f);
    a->f = NULL;
    if (!err && close(a->fd) != 0)
        err = errno; /* NFS reports write errors at close */
    else if (err)
        close(a->fd);
    a->fd = -1;
    if (!err && rename(a->tmp, a->path) != 0) err = errno;
    if (err) {
        unlink(a->tmp);
        vs_fail(e, "%s: cannot write (%s)", a->path, fs_strerror(err));
        atomic_release(a);
        return -1;
    }
    int rc = 0;
    if (fsync_dir_of(a->path) != 0)
        rc = vs_fail(e, "%s: written, but syncing its folder failed (%s)", a->path,
                     fs_strerror(errno));
    atomic_release(a);
    return rc;
}

/* ---- folders and files -------------------------------------------------------------------- */

int fs_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fs_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

const char *fs_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int fs_mkdirs(const char *path, vs_err *e)
{
    if (!*path) return vs_fail(e, "empty folder name");
    char *p = vs_strdup(path);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != 0) continue;
        char saved = *s;
        *s = 0;
        if (mkdir(p, 0777) != 0) {
            int err = errno;
            if (err != EEXIST || !fs_is_dir(p)) {
                if (err == EEXIST)
                    vs_fail(e, "%s: cannot create folder: %s exists and is not a folder", path, p);
                else
                    vs_fail(e, "%s: cannot create folder (%s)", p, fs_strerror(err));
                free(p);
                return -1;
            }
        }
        *s = saved;
        if (!saved) break;
        while (s[1] == '/') s++; /* "a//b" */
        if (!s[1]) break;        /* trailing '/' */
    }
    free(p);
    if (access(path, W_OK | X_OK) != 0)
        return vs_fail(e, "%s: folder is not writable (%s)", path, fs_strerror(errno));
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fs_list_dir(char ***names, int *n, const char *dir, int (*keep)(const char *name), vs_err *e)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return vs_fail(e, "%s: cannot list folder (%s)", dir, fs_strerror(errno));
    char **v = NULL;
    int cnt = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (keep && !keep(de->d_name)) continue;
        if (cnt == cap) {
            cap = cap ? 2 * cap : 64;
            v = vs_realloc(v, (size_t)cap * sizeof *v);
        }
        v[cnt++] = vs_strdup(de->d_name);
    }
    int err = errno;
    closedir(d);
    if (err) {
        fs_free_list(v, cnt);
        return vs_fail(e, "%s: cannot list folder (%s)", dir, fs_strerror(err));
    }
    if (cnt) qsort(v, (size_t)cnt, sizeof *v, cmp_names);
    *names = v;
    *n = cnt;
    return 0;
}

void fs_free_list(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int fs_read_all(char **out, size_t *len, const char *path, vs_err *e)
{
    *out = NULL;
    if (len) *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vs_fail(e, "%s: %s", path, fs_strerror(errno));
    size_t cap = 1 << 16, n = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) cap = (size_t)st.st_size + 1;
    char *buf = vs_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = vs_realloc(buf, cap *= 2);
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            free(buf);
            return vs_fail(e, "%s: cannot read (%s)", path, fs_strerror(err));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return 0;
}
