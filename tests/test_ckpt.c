/* test_ckpt.c: the checkpoint file and the model folder's rolling saves: CRC32C, round trips,
 * every single-byte corruption and truncation refused with a message naming the file, backups
 * and snapshots, a full disk during a save, and kill -9 at random moments of saving.
 * `test_ckpt --bench [MB]` measures write and verify speed on a file of MB megabytes (300). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ckpt.h"
#include "fsutil.h"
#include "full_disk.h"

static char tmpdir[256];

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rng_float(void)
{
    return (float)rng() / 4294967296.0f * 2.0f - 1.0f;
}

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    char *s = NULL;
    vs_err e;
    if (fs_read_all(&s, n, path, &e)) return NULL;
    return (uint8_t *)s;
}

/* Temporary files of atomic writes (hidden, ".tmp-") in folder; the first one's name in first. */
static int count_temps(const char *folder, char *first, size_t n)
{
    DIR *d = opendir(folder);
    if (!d) return 0;
    int cnt = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp-")) {
            if (!cnt && first) snprintf(first, n, "%s", de->d_name);
            cnt++;
        }
    closedir(d);
    return cnt;
}

static int count_temps_model(const char *dir)
{
    char p[600];
    int n = count_temps(dir, NULL, 0);
    snprintf(p, sizeof p, "%s/backups", dir);
    n += count_temps(p, NULL, 0);
    snprintf(p, sizeof p, "%s/snapshots", dir);
    return n + count_temps(p, NULL, 0);
}

/* ---- a model to save ------------------------------------------------------------------------- */

#define MAX_T 8

typedef struct model {
    int n;
    ckpt_tensor t[MAX_T];
    float *data[MAX_T];
} model;

static size_t elems(const ckpt_tensor *t)
{
    size_t n = 1;
    for (int k = 0; k < t->ndim; k++) n *= (size_t)t->shape[k];
    return n;
}

static void model_add(model *m, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2,
                      int64_t d3)
{
    ckpt_tensor *t = &m->t[m->n];
    *t = (ckpt_tensor){name, ndim, {d0, d1, d2, d3}, NULL};
    for (int k = ndim; k < 4; k++) t->shape[k] = 0;
    size_t n = elems(t);
    m->data[m->n] = malloc(n ? n * sizeof(float) : 1);
    for (size_t i = 0; i < n; i++) m->data[m->n][i] = rng_float();
    t->data = m->data[m->n];
    m->n++;
}

static void model_free(model *m)
{
    for (int i = 0; i < m->n; i++) free(m->data[i]);
    m->n = 0;
}

/* Several shapes: a 4-D weight, a bias whose 12 bytes leave padding, an empty tensor in the
 * middle, a scalar, a 2-D matrix. */
static void small_model(model *m)
{
    memset(m, 0, sizeof *m);
    model_add(m, "enc.conv1.w", 4, 4, 3, 3, 5);
    model_add(m, "enc.conv1.b", 1, 3, 0, 0, 0);
    model_add(m, "empty", 2, 0, 7, 0, 0);
    model_add(m, "scale", 0, 0, 0, 0, 0);
    model_add(m, "dec_a.dense.w", 2, 17, 9, 0, 0);
}

/* Data of iteration it, recognisable later: element i of tensor k is it + k * 0.25 + i. */
static void fill_for_iteration(model *m, long it)
{
    for (int k = 0; k < m->n; k++) {
        size_t n = elems(&m->t[k]);
        for (size_t i = 0; i < n; i++) m->data[k][i] = (float)(it % 100000) + k * 0.25f + i;
    }
}

static int matches_iteration(const ckpt *c, const model *m, long it)
{
    for (int k = 0; k < m->n; k++) {
        size_t n = elems(&m->t[k]);
        float *buf = malloc(n ? n * sizeof(float) : 1);
        vs_err e;
        int ok = ckpt_read(c, m->t[k].name, buf, m->t[k].ndim, m->t[k].shape, &e) == 0;
        for (size_t i = 0; i < n && ok; i++) ok = buf[i] == (float)(it % 100000) + k * 0.25f + i;
        free(buf);
        if (!ok) return 0;
    }
    return 1;
}

static long header_iteration(const ckpt *c)
{
    const char *v = ckpt_get(c, "iteration");
    return v ? strtol(v, NULL, 10) : -1;
}

/* ---- CRC32C ---------------------------------------------------------------------------------- */

static void test_crc32c(void)
{
    CHECK(ckpt_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(ckpt_crc32c_portable(0, "123456789", 9) == 0xE3069283u);
    CHECK(ckpt_crc32c(0, "", 0) == 0);
    /* 32 zero bytes: the iSCSI test vector (RFC 3720 B.4) */
    uint8_t z[32] = {0};
    CHECK(ckpt_crc32c(0, z, 32) == 0x8A9136AAu);

    /* the fast path (three interleaved streams past 24 KiB) against the tables, at every
     * alignment and across the block boundaries; chaining equals one pass */
    size_t cap = 200000;
    uint8_t *buf = malloc(cap + 8);
    for (size_t i = 0; i < cap + 8; i++) buf[i] = (uint8_t)rng();
    size_t lens[] = {1, 7, 8, 9, 63, 64, 4095, 24575, 24576, 24577, 49152 + 13, 100000, 199999};
    int agree = 1, chained = 1;
    for (size_t l = 0; l < sizeof lens / sizeof *lens; l++)
        for (int a = 0; a < 8; a++) {
            uint32_t x = ckpt_crc32c(0, buf + a, lens[l]);
            agree &= x == ckpt_crc32c_portable(0, buf + a, lens[l]);
            size_t cut = lens[l] / 3;
            chained &= x == ckpt_crc32c(ckpt_crc32c(0, buf + a, cut), buf + a + cut, lens[l] - cut);
        }
    CHECK(agree);
    CHECK(chained);
    free(buf);
}

/* ---- the file ------------------------------------------------------------------------------- */

static const ckpt_kv small_kv[] = {
    {"model", "df"},          {"iteration", "1234"}, {"resolution", "128"},
    {"rng.state", "0 1 2 3"}, {"empty_value", ""},
};
#define N_SMALL_KV ((int)(sizeof small_kv / sizeof *small_kv))

static void test_round_trip(void)
{
    char p[512];
    vs_err e = {{0}};
    model m;
    small_model(&m);
    tmp_path(p, sizeof p, "round.vsk");
    CHECKF(ckpt_write(p, small_kv, N_SMALL_KV, m.t, m.n, &e) == 0, "%s", e.msg);
    ckpt *c = ckpt_open(p, &e);
    CHECKF(c != NULL, "%s", e.msg);
    if (!c) return;
    for (int i = 0; i < N_SMALL_KV; i++) {
        const char *v = ckpt_get(c, small_kv[i].key);
        CHECKF(v && strcmp(v, small_kv[i].val) == 0, "%s", small_kv[i].key);
    }
    CHECK(ckpt_get(c, "nope") == NULL);
    CHECK(ckpt_n_tensors(c) == m.n);
    for (int i = 0; i < m.n && i < ckpt_n_tensors(c); i++) {
        int nd = -1;
        int64_t sh[4];
        const char *name = ckpt_tensor_name(c, i, &nd, sh);
        CHECK(strcmp(name, m.t[i].name) == 0);
        CHECK(nd == m.t[i].ndim);
        for (int k = 0; k < nd; k++) CHECK(sh[k] == m.t[i].shape[k]);
        size_t n = elems(&m.t[i]);
        float *buf = malloc(n * sizeof(float) + 4);
        CHECKF(ckpt_read(c, name, buf, nd, sh, &e) == 0, "%s", e.msg);
        CHECK(memcmp(buf, m.data[i], n * sizeof(float)) == 0);
        free(buf);
    }

    /* wrong shape, wrong rank, missing tensor: refused, naming file and tensor */
    float dst[64 * 64];
    int64_t wrong[4] = {4, 3, 3, 6};
    CHECK(ckpt_read(c, "enc.conv1.w", dst, 4, wrong, &e) == -1);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "enc.conv1.w") && strstr(e.msg, "[4, 3, 3, 5]"), "%s",
           e.msg);
    CHECK(ckpt_read(c, "enc.conv1.w", dst, 3, wrong, &e) == -1);
    CHECK(ckpt_read(c, "enc.conv2.w", dst, 4, m.t[0].shape, &e) == -1);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "enc.conv2.w"), "%s", e.msg);

    char *d = ckpt_describe(c);
    CHECK(d && strstr(d, p) && strstr(d, "version 1") && strstr(d, "iteration=1234") &&
          strstr(d, "rng.state=0 1 2 3") && strstr(d, "dec_a.dense.w") && strstr(d, "[17, 9]") &&
          strstr(d, "5, 337 parameters"));
    free(d);
    ckpt_close(c);
    ckpt_close(NULL);

    /* no header keys, no tensors; an empty tensor last */
    CHECKF(ckpt_write(p, NULL, 0, NULL, 0, &e) == 0, "%s", e.msg);
    c = ckpt_open(p, &e);
    CHECKF(c && ckpt_n_tensors(c) == 0 && !ckpt_get(c, "iteration"), "%s", e.msg);
    ckpt_close(c);
    CHECKF(ckpt_write(p, small_kv, 1, m.t + 1, 2, &e) == 0, "%s", e.msg);
    c = ckpt_open(p, &e);
    CHECKF(c && ckpt_n_tensors(c) == 2, "%s", e.msg);
    ckpt_close(c);

    /* what the writer refuses, leaving no file */
    tmp_path(p, sizeof p, "refused.vsk");
    ckpt_kv bad_key[] = {{"Bad-Key", "1"}};
    ckpt_kv bad_val[] = {{"k", "two\nlines"}};
    ckpt_kv dup_key[] = {{"k", "1"}, {"k", "2"}};
    CHECK(ckpt_write(p, bad_key, 1, m.t, 1, &e) == -1 && strstr(e.msg, "Bad-Key"));
    CHECK(ckpt_write(p, bad_val, 1, m.t, 1, &e) == -1 && strstr(e.msg, p));
    CHECK(ckpt_write(p, dup_key, 2, m.t, 1, &e) == -1 && strstr(e.msg, "twice"));
    ckpt_tensor bad_t[2] = {m.t[0], m.t[0]};
    CHECK(ckpt_write(p, NULL, 0, bad_t, 2, &e) == -1 && strstr(e.msg, "used twice"));
    bad_t[0].ndim = 5;
    CHECK(ckpt_write(p, NULL, 0, bad_t, 1, &e) == -1 && strstr(e.msg, "dimensions"));
    bad_t[0] = m.t[0];
    bad_t[0].name = "has space";
    CHECK(ckpt_write(p, NULL, 0, bad_t, 1, &e) == -1 && strstr(e.msg, p));
    CHECK(!fs_exists(p));
    tmp_path(p, sizeof p, "no-such-folder/x.vsk");
    CHECK(ckpt_write(p, NULL, 0, m.t, 1, &e) == -1 && strstr(e.msg, p));

    /* not a checkpoint, missing */
    tmp_path(p, sizeof p, "text.vsk");
    write_bytes(p, "hello, this is not a checkpoint at all\n", 39);
    CHECK(ckpt_open(p, &e) == NULL);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "not a visage checkpoint"), "%s", e.msg);
    tmp_path(p, sizeof p, "missing.vsk");
    CHECK(ckpt_open(p, &e) == NULL);
    CHECKF(strstr(e.msg, p) && strstr(e.msg, "no such file"), "%s", e.msg);
    model_free(&m);
}

/* The regions of a checkpoint, found by a reader written from the format comment in ckpt.c. */
typedef struct layout {
    size_t text, text_len, count, dir, crc, pad, pad_len;
    size_t data[MAX_T], bytes[MAX_T];
    int n;
} layout;

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void parse_layout(layout *l, const uint8_t *f)
{
    memset(l, 0, sizeof *l);
    l->text = 24;
    l->text_len = le(f + 16, 8);
    l->count = 24 + l->text_len;
    l->n = (int)le(f + l->count, 4);
    size_t p = l->dir = l->count + 4;
    for (int i = 0; i < l->n; i++) {
        size_t nl = le(f + p, 2);
        int nd = f[p + 2 + nl + 1];
        p += 2 + nl + 2 + 8 * nd;
        l->data[i] = le(f + p, 8);
        l->bytes[i] = le(f + p + 8, 8);
        p += 20;
    }
    l->crc = p;
    l->pad = p + 4;
    l->pad_len = l->data[0] - l->pad;
}

/* Flips bits of the byte at off, opens, restores; returns 1 if refused with a message naming the
 * file and containing want (NULL: any). */
static int refused_with_flip(const char *p, uint8_t *f, size_t n, size_t off, uint8_t mask,
                             const char *want)
{
    vs_err e = {{0}};
    f[off] ^= mask;
    write_bytes(p, f, n);
    f[off] ^= mask;
    ckpt *c = ckpt_open(p, &e);
    int ok = !c && strstr(e.msg, p) && (!want || strstr(e.msg, want));
    if (!ok) fprintf(stderr, "  byte %zu ^ 0x%02x: %s\n", off, mask, c ? "accepted" : e.msg);
    ckpt_close(c);
    return ok;
}

static void test_corruption(void)
{
    char p[512];
    vs_err e = {{0}};
    model m;
    small_model(&m);
    tmp_path(p, sizeof p, "corrupt.vsk");
    CHECK(ckpt_write(p, small_kv, N_SMALL_KV, m.t, m.n, &e) == 0);
    size_t n;
    uint8_t *f = read_bytes(p, &n);
    layout l;
    parse_layout(&l, f);
    CHECK(memcmp(f, "VISAGECK", 8) == 0 && le(f + 8, 4) == 1 && le(f + 12, 4) == 0);
    CHECK(l.n == m.n && l.pad_len > 0 && l.data[l.n - 1] + l.bytes[l.n - 1] == n);
    CHECK(le(f + l.crc, 4) == ckpt_crc32c(0, f, l.crc));
    for (int i = 0; i < l.n; i++) CHECK(l.data[i] % 64 == 0);

    /* every region, with the message it should give */
    CHECK(refused_with_flip(p, f, n, 0, 0x20, "not a visage checkpoint"));
    CHECK(refused_with_flip(p, f, n, 7, 0x01, "not a visage checkpoint"));
    CHECK(refused_with_flip(p, f, n, 8, 0x02, "version"));
    CHECK(refused_with_flip(p, f, n, 11, 0x80, "version"));
    CHECK(refused_with_flip(p, f, n, 12, 0x01, "flags"));
    CHECK(refused_with_flip(p, f, n, 16, 0x01, NULL)); /* text length */
    CHECK(refused_with_flip(p, f, n, 23, 0x40, NULL));
    CHECK(refused_with_flip(p, f, n, l.text + 3, 0x01, "checksum mismatch in the header"));
    CHECK(refused_with_flip(p, f, n, l.text + l.text_len - 1, 0x0a, NULL));
    CHECK(refused_with_flip(p, f, n, l.count, 0x01, NULL));
    CHECK(refused_with_flip(p, f, n, l.dir + 5, 0x01, "checksum mismatch in the header"));
    CHECK(refused_with_flip(p, f, n, l.crc - 1, 0x01, "checksum mismatch in the header"));
    CHECK(refused_with_flip(p, f, n, l.crc, 0x01, "checksum mismatch in the header"));
    CHECK(refused_with_flip(p, f, n, l.crc + 3, 0x80, "checksum mismatch in the header"));
    CHECK(refused_with_flip(p, f, n, l.pad, 0x01, "padding"));
    CHECK(refused_with_flip(p, f, n, l.pad + l.pad_len - 1, 0x10, "padding"));
    size_t gap = l.data[1] + l.bytes[1]; /* the bias's 12 bytes leave 52 of padding */
    CHECK(l.data[2] > gap && refused_with_flip(p, f, n, gap, 0x01, "padding"));
    for (int i = 0; i < l.n; i++) {
        if (!l.bytes[i]) continue;
        char want[300];
        snprintf(want, sizeof want, "checksum mismatch in tensor '%s'", m.t[i].name);
        CHECK(refused_with_flip(p, f, n, l.data[i], 0x01, want));
        CHECK(refused_with_flip(p, f, n, l.data[i] + l.bytes[i] - 1, 0x80, want));
    }

    /* and every single byte of the file */
    int refused = 0;
    for (size_t off = 0; off < n; off++)
        refused += refused_with_flip(p, f, n, off, (uint8_t)(1u << (off % 8)), NULL);
    CHECKF(refused == (int)n, "%d of %zu single-byte flips refused", refused, n);

    /* truncated at several lengths, and one byte appended */
    size_t cuts[] = {
        0,    5, 8, 20, l.text + 4, l.dir + 3, l.crc + 2, l.pad + 1, l.data[0] + 10, l.data[4] + 1,
        n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        write_bytes(p, f, cuts[i]);
        ckpt *c = ckpt_open(p, &e);
        CHECKF(!c && strstr(e.msg, p) && strstr(e.msg, "truncated"), "cut at %zu: %s", cuts[i],
               c ? "accepted" : e.msg);
        ckpt_close(c);
    }
    write_bytes(p, f, n - 1);
    ckpt *c = ckpt_open(p, &e);
    char want[128];
    snprintf(want, sizeof want, "truncated: %zu of %zu bytes", n - 1, n);
    CHECKF(!c && strstr(e.msg, want), "%s", e.msg);
    ckpt_close(c);
    uint8_t *g = malloc(n + 1);
    memcpy(g, f, n);
    g[n] = 0;
    write_bytes(p, g, n + 1);
    c = ckpt_open(p, &e);
    CHECKF(!c && strstr(e.msg, p) && strstr(e.msg, "unexpected bytes"), "%s", e.msg);
    ckpt_close(c);
    free(g);

    /* the pristine file still opens: the flips above were really the cause */
    write_bytes(p, f, n);
    c = ckpt_open(p, &e);
    CHECKF(c != NULL, "%s", e.msg);
    ckpt_close(c);
    free(f);
    model_free(&m);
}

/* ---- the model folder ----------------------------------------------------------------------- */

static int n_files(const char *folder, int (*keep)(const char *name))
{
    char **names;
    int n;
    vs_err e;
    if (fs_list_dir(&names, &n, folder, keep, &e)) return -1;
    fs_free_list(names, n);
    return n;
}

static int opens_as_iteration(const char *path, const model *m, long it)
{
    vs_err e;
    ckpt *c = ckpt_open(path, &e);
    int ok = c && header_iteration(c) == it && matches_iteration(c, m, it);
    if (!ok) fprintf(stderr, "  %s: %s\n", path, c ? "wrong iteration or data" : e.msg);
    ckpt_close(c);
    return ok;
}

/* Rewrites path with one byte flipped under a new inode (snapshots may share the old one). */
static void corrupt_copy(const char *path)
{
    size_t n;
    uint8_t *f = read_bytes(path, &n);
    if (!f) return;
    f[n - 5] ^= 0x55;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    write_bytes(tmp, f, n);
    rename(tmp, path);
    free(f);
}

static void test_save_rotation(void)
{
    char dir[512], p[600], q[600];
    vs_err e = {{0}};
    model m;
    small_model(&m);
    tmp_path(dir, sizeof dir, "rot/model");
    ckpt_kv kv[] = {{"model", "df"}};
    struct stat st_prev = {0};
    for (long it = 100; it <= 500; it += 100) {
        if (it == 300) { /* leftovers of a killed save, and a file that is not a backup */
            snprintf(p, sizeof p, "%s/.model.vsk.tmp-AbC123", dir);
            write_bytes(p, "partial", 7);
            snprintf(p, sizeof p, "%s/backups/.model-200.vsk.tmp-xYz789", dir);
            write_bytes(p, "partial", 7);
            snprintf(p, sizeof p, "%s/backups/notes.txt", dir);
            write_bytes(p, "mine", 4);
            CHECK(count_temps_model(dir) == 2);
        }
        fill_for_iteration(&m, it);
        ckpt_snapshot snap = it % 200 == 0 ? CKPT_SNAPSHOT : CKPT_NO_SNAPSHOT;
        CHECKF(ckpt_save(dir, it, kv, 1, m.t, m.n, 2, snap, &e) == 0, "%s", e.msg);
        if (it == 300) CHECK(count_temps_model(dir) == 0);
        /* the previous model.vsk became a backup by a hard link, not a copy */
        snprintf(p, sizeof p, "%s/backups/model-%ld.vsk", dir, it - 100);
        struct stat st;
        if (it > 100) CHECK(stat(p, &st) == 0 && st.st_ino == st_prev.st_ino);
        snprintf(p, sizeof p, "%s/model.vsk", dir);
        stat(p, &st_prev);
    }
    snprintf(p, sizeof p, "%s/model.vsk", dir);
    CHECK(opens_as_iteration(p, &m, 500));
    ckpt *c = ckpt_open(p, &e);
    CHECK(c && ckpt_get(c, "model") && strcmp(ckpt_get(c, "model"), "df") == 0);
    ckpt_close(c);
    snprintf(p, sizeof p, "%s/backups", dir);
    CHECK(n_files(p, NULL) == 3); /* two backups and notes.txt */
    model mm;
    small_model(&mm);
    for (long it = 100; it <= 400; it += 100) {
        snprintf(p, sizeof p, "%s/backups/model-%ld.vsk", dir, it);
        CHECKF(fs_exists(p) == (it >= 300), "%s", p);
        if (it >= 300) CHECK(opens_as_iteration(p, &mm, it));
        snprintf(p, sizeof p, "%s/snapshots/model-%ld.vsk", dir, it);
        CHECKF(fs_exists(p) == (it % 200 == 0), "%s", p);
        if (it % 200 == 0) CHECK(opens_as_iteration(p, &mm, it));
    }
    snprintf(p, sizeof p, "%s/snapshots", dir);
    CHECK(n_files(p, NULL) == 2);
    snprintf(p, sizeof p, "%s/backups/notes.txt", dir);
    CHECK(fs_exists(p));

    /* the newest intact backup: 400, then 300 once 400 is damaged, then none */
    char *b = NULL;
    snprintf(q, sizeof q, "%s/backups/model-400.vsk", dir);
    CHECK(ckpt_newest_intact_backup(&b, dir) == 0 && b && strcmp(b, q) == 0);
    free(b);
    corrupt_copy(q);
    snprintf(q, sizeof q, "%s/backups/model-300.vsk", dir);
    CHECK(ckpt_newest_intact_backup(&b, dir) == 0 && b && strcmp(b, q) == 0);
    free(b);
    corrupt_copy(q);
    b = (char *)"x";
    CHECK(ckpt_newest_intact_backup(&b, dir) == -1 && b == NULL);
    snprintf(p, sizeof p, "%s/snapshots/model-400.vsk", dir);
    CHECK(opens_as_iteration(p, &mm, 400)); /* the snapshot did not share the damage */
    tmp_path(p, sizeof p, "rot/nothing-here");
    CHECK(ckpt_newest_intact_backup(&b, p) == -1 && b == NULL);

    /* keep = 0: no backups at all; an unwritable place: a message naming it */
    fill_for_iteration(&m, 600);
    CHECKF(ckpt_save(dir, 600, kv, 1, m.t, m.n, 0, CKPT_NO_SNAPSHOT, &e) == 0, "%s", e.msg);
    snprintf(p, sizeof p, "%s/backups", dir);
    CHECK(n_files(p, NULL) == 1);
    snprintf(p, sizeof p, "%s/model.vsk/sub", dir);
    CHECK(ckpt_save(p, 1, kv, 1, m.t, m.n, 2, CKPT_NO_SNAPSHOT, &e) == -1 && strstr(e.msg, dir));
    model_free(&m);
    model_free(&mm);
}

typedef struct full_save {
    const char *dir;
    model *m;
} full_save;

/* iteration 20 saved with a snapshot (far more than the full disk's 256 kB) */
static int save_20(void *arg, vs_err *e)
{
    full_save *f = arg;
    return ckpt_save(f->dir, 20, NULL, 0, f->m->t, f->m->n, 3, CKPT_SNAPSHOT, e);
}

/* A full disk during a save (RLIMIT_FSIZE in a child, SIGXFSZ ignored so writes fail with
 * EFBIG): the save fails naming model.vsk, the previous model.vsk is untouched and loadable. */
static void test_full_disk(void)
{
    char dir[512], p[600];
    vs_err e = {{0}};
    model m;
    memset(&m, 0, sizeof m);
    model_add(&m, "big.w", 2, 512, 512, 0, 0); /* 1 MiB */
    model_add(&m, "big.b", 1, 512, 0, 0, 0);
    fill_for_iteration(&m, 10);
    tmp_path(dir, sizeof dir, "full");
    CHECKF(ckpt_save(dir, 10, NULL, 0, m.t, m.n, 3, CKPT_NO_SNAPSHOT, &e) == 0, "%s", e.msg);
    snprintf(p, sizeof p, "%s/model.vsk", dir);
    size_t n0;
    uint8_t *before = read_bytes(p, &n0);

    fill_for_iteration(&m, 20);
    char buf[1200];
    full_save fs = {dir, &m};
    CHECK(check_full_disk(256 << 10, save_20, &fs, buf, sizeof buf) == 0);
    CHECKF(strncmp(buf, "-1 ", 3) == 0 && strstr(buf, p) && strstr(buf, "no space left on device"),
           "%s", buf);
    size_t n1;
    uint8_t *after = read_bytes(p, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    CHECK(opens_as_iteration(p, &m, 10));
    CHECKF(count_temps_model(dir) == 0, "%d temporary files left", count_temps_model(dir));
    snprintf(p, sizeof p, "%s/snapshots/model-20.vsk", dir);
    CHECK(!fs_exists(p));
    snprintf(p, sizeof p, "%s/backups", dir);
    CHECK(n_files(p, NULL) == 0); /* the failed save made no backup of the unchanged model.vsk */
    free(before);
    free(after);

    /* with room again, the same save works */
    CHECKF(ckpt_save(dir, 20, NULL, 0, m.t, m.n, 3, CKPT_SNAPSHOT, &e) == 0, "%s", e.msg);
    snprintf(p, sizeof p, "%s/model.vsk", dir);
    CHECK(opens_as_iteration(p, &m, 20));
    snprintf(p, sizeof p, "%s/backups/model-10.vsk", dir);
    CHECK(opens_as_iteration(p, &m, 10));
    model_free(&m);
}

/* kill -9 at random moments of saving (writing, linking, renaming, rotating): model.vsk is always
 * one complete save, and the next save cleans up what the killed one left. */
static void test_crash_safety(void)
{
    char dir[512], p[600];
    vs_err e = {{0}};
    model m;
    memset(&m, 0, sizeof m);
    model_add(&m, "enc.w", 2, 700, 512, 0, 0); /* ~1.4 MB */
    model_add(&m, "enc.b", 1, 700, 0, 0, 0);
    model_add(&m, "dec.w", 2, 300, 512, 0, 0); /* ~0.6 MB */
    tmp_path(dir, sizeof dir, "crash");
    fill_for_iteration(&m, 1);
    CHECKF(ckpt_save(dir, 1, NULL, 0, m.t, m.n, 2, CKPT_NO_SNAPSHOT, &e) == 0, "%s", e.msg);
    snprintf(p, sizeof p, "%s/model.vsk", dir);

    int kills = 60, intact = 0, temps_seen = 0, advanced = 0;
    long last = 1;
    double t0 = seconds();
    for (int k = 0; k < kills; k++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            for (long it = (k + 1) * 1000L;; it++) {
                fill_for_iteration(&m, it);
                vs_err ce;
                if (ckpt_save(dir, it, NULL, 0, m.t, m.n, 2,
                              it % 3 == 0 ? CKPT_SNAPSHOT : CKPT_NO_SNAPSHOT, &ce))
                    _exit(1);
            }
        }
        usleep(rng() % 25000);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECKF(WIFSIGNALED(status), "the saving child stopped by itself (status %d)", status);
        temps_seen += count_temps_model(dir) > 0;
        ckpt *c = ckpt_open(p, &e);
        CHECKF(c != NULL, "after kill %d: %s", k, e.msg);
        if (c) {
            long it = header_iteration(c);
            intact += matches_iteration(c, &m, it);
            advanced += it != last;
            last = it;
        } else {
            char *b = NULL;
            CHECKF(ckpt_newest_intact_backup(&b, dir) == 0, "after kill %d: no intact backup", k);
            free(b);
        }
        ckpt_close(c);
    }
    CHECK(intact == kills);
    double dt = seconds() - t0;

    /* one clean save tidies everything */
    fill_for_iteration(&m, 999999);
    CHECKF(ckpt_save(dir, 999999, NULL, 0, m.t, m.n, 2, CKPT_NO_SNAPSHOT, &e) == 0, "%s", e.msg);
    CHECK(count_temps_model(dir) == 0);
    CHECK(opens_as_iteration(p, &m, 999999));
    snprintf(p, sizeof p, "%s/backups", dir);
    CHECK(n_files(p, NULL) == 2);
    char *b = NULL;
    CHECK(ckpt_newest_intact_backup(&b, dir) == 0);
    free(b);
    printf("crash safety: %d kills in %.1f s, model.vsk intact after %d; %d kills caught a save "
           "midway (temporary file left), the newest save changed %d times\n",
           kills, dt, intact, temps_seen, advanced);
    CHECK(advanced > 0); /* the children did save: the kills did not all land before a save */
    model_free(&m);
}

/* ---- speed ---------------------------------------------------------------------------------- */

static int bench(int mb)
{
    char p[512];
    vs_err e = {{0}};
    int nt = 64;
    size_t per = (size_t)mb * (1 << 20) / 4 / (size_t)nt;
    ckpt_tensor *t = calloc((size_t)nt, sizeof *t);
    char(*names)[32] = calloc((size_t)nt, 32);
    float *data = malloc(per * (size_t)nt * sizeof(float));
    for (size_t i = 0; i < per * (size_t)nt; i++) data[i] = (float)i * 1e-3f;
    for (int i = 0; i < nt; i++) {
        snprintf(names[i], 32, "layer%d.w", i);
        t[i] = (ckpt_tensor){names[i], 1, {(int64_t)per}, data + per * (size_t)i};
    }
    tmp_path(p, sizeof p, "bench.vsk");
    double t0 = seconds();
    int rc = ckpt_write(p, small_kv, N_SMALL_KV, t, nt, &e);
    double t1 = seconds();
    /* from the disk: drop this file's pages from the cache first */
    int fd = open(p, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
    double tc = seconds();
    ckpt *c = rc ? NULL : ckpt_open(p, &e);
    double tc2 = seconds();
    ckpt_close(c);
    c = rc ? NULL : ckpt_open(p, &e);
    double t2 = seconds();
    for (int i = 0; c && i < nt; i++)
        if (ckpt_read(c, names[i], data + per * (size_t)i, 1, t[i].shape, &e)) break;
    double t3 = seconds();
    size_t crc_n = per * (size_t)nt * 4;
    uint32_t x = ckpt_crc32c(0, data, crc_n);
    double t4 = seconds();
    x ^= ckpt_crc32c_portable(0, data, crc_n);
    double t5 = seconds();
    if (!c) fprintf(stderr, "%s\n", e.msg);
    double size = (double)per * nt * 4 / 1e6;
    printf("bench %s, %.0f MB:\n  write (fsync'd)          %6.0f MB/s\n"
           "  open+verify, from disk   %6.0f MB/s\n  open+verify, cached      %6.0f MB/s\n"
           "  ckpt_read of every tensor %5.0f MB/s\n  CRC32C %6.0f MB/s, portable %.0f MB/s%s\n",
           p, size, size / (t1 - t0), size / (tc2 - tc), size / (t2 - tc2), size / (t3 - t2),
           size / (t4 - t3), size / (t5 - t4), x ? " (DISAGREE)" : "");
    ckpt_close(c);
    free(data);
    free(names);
    free(t);
    return c ? 0 : 1;
}

int main(int argc, char **argv)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/visage-test-ckpt-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
        int rc = bench(argc > 2 ? atoi(argv[2]) : 300);
        check_rm_rf(tmpdir);
        return rc;
    }
    double t0 = seconds();
    test_crc32c();
    test_round_trip();
    test_corruption();
    test_save_rotation();
    test_full_disk();
    test_crash_safety();
    check_rm_rf(tmpdir);
    printf("test_ckpt: %.1f s\n", seconds() - t0);
    return check_report("test_ckpt");
}
