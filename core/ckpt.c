/* ckpt.c: the checkpoint file (writer, fully verifying reader, description) and the model folder's
 * rolling saves (model.vsk, backups/, snapshots/). See ckpt.h for the API.
 *
 * THE FILE FORMAT, version 1. All integers little-endian; offsets count from the file's start.
 *
 *   offset  size  field
 *   0       8     magic "VISAGECK"
 *   8       4     u32 format version = 1
 *   12      4     u32 header flags = 0 (no flag is defined; a reader refuses any other value)
 *   16      8     u64 L, the length of the key/value text
 *   24      L     key/value text: lines "key=value\n", keys [a-z0-9_.]+ (no duplicates), values
 *                 any bytes but '\n' and NUL; L = 0 or the text ends with '\n'; L <= 1 MiB
 *   24+L    4     u32 N, the tensor count, N <= 65536
 *   then N directory entries, each:
 *           2     u16 name length, 1..255
 *           n     name: bytes 0x21..0x7e (printable ASCII, no space), unique in the file
 *           1     u8 dtype: 0 = f32 (the only type)
 *           1     u8 ndim, 0..4 (0 is a scalar: one element)
 *           8*nd  u64 dims, outermost first (row-major)
 *           8     u64 data offset
 *           8     u64 byte size = 4 x the product of the dims
 *           4     u32 CRC32C of the tensor's data bytes
 *   H       4     u32 CRC32C of bytes [0, H): the fixed header, text, count and directory
 *   then the data blocks, in directory order. Block i starts at the first multiple of 64 at or
 *   after the end of block i-1 (block 0: at or after H + 4, the end of the header checksum); the
 *   bytes in between are zero. The file ends exactly at the end of the last block (with no
 *   tensors, at H + 4): a reader compares the file size with it, so truncation and appended bytes
 *   are both detected.
 *
 * CRC32C is the Castagnoli CRC (polynomial 0x1EDC6F41, reflected 0x82F63B78, initial value and
 * final XOR 0xFFFFFFFF) as in iSCSI and ext4: CRC32C("123456789") = 0xE3069283.
 *
 * A reader checks, in this order: magic, version, flags, L, that the directory fits in the file,
 * the header checksum, then the text, names, dtypes, dims, sizes and offsets against the layout
 * above, the file size, and finally streams the data once to check every block's CRC32C and the
 * zero padding. Only the header and directory are kept in memory (checkpoints reach ~1.5 GB). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ckpt.c writes f32 data as it lies in memory: add byte swapping for big-endian machines"
#endif

#define CKPT_MAGIC "VISAGECK"
#define CKPT_FIXED 24 /* magic, version, flags, L */
#define CKPT_ALIGN 64 /* data blocks start on multiples of this */
#define CKPT_ENTRY_MAX (2 + CKPT_MAX_NAME + 2 + 8 * CKPT_MAX_DIMS + 8 + 8 + 4)
#define CKPT_IO_CHUNK (8u << 20)   /* bytes per read while verifying */
#define CKPT_MAX_FILE (1ull << 60) /* a sanity bound on offsets, far beyond any real model */

/* ---- CRC32C --------------------------------------------------------------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_make_table(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][n] = c;
    }
    for (int n = 0; n < 256; n++)
        for (int k = 1; k < 8; k++)
            crc_table[k][n] = crc_table[0][crc_table[k - 1][n] & 0xff] ^ (crc_table[k - 1][n] >> 8);
}

/* Slicing-by-8: eight table look-ups per 8 bytes (~1-2 GB/s). */
uint32_t ckpt_crc32c_portable(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc_once, crc_make_table);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (n && ((uintptr_t)p & 7)) {
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        n--;
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= c;
        c = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^
            crc_table[5][(v >> 16) & 0xff] ^ crc_table[4][(v >> 24) & 0xff] ^
            crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
            crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
    }
    while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/* The SSE4.2 crc32 instruction has a latency of 3 cycles and a throughput of 1, so three
 * independent streams over thirds of each 24 KiB block run ~3x faster than one; the partial CRCs
 * are joined by shifting through zeros (crc_shift, a 32x32 GF(2) matrix per block size). */
#define CRC_LANE 8192 /* bytes per stream per block */

static uint32_t crc_lane_shift[4][256]; /* the operator "append CRC_LANE zero bytes", by byte */
static pthread_once_t crc_lane_once = PTHREAD_ONCE_INIT;

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
    uint32_t sum = 0;
    for (; vec; vec >>= 1, mat++)
        if (vec & 1) sum ^= *mat;
    return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
    for (int n = 0; n < 32; n++) sq[n] = gf2_times(mat, mat[n]);
}

/* Builds the table of the linear map x -> x * 2^(8 * CRC_LANE) mod P (raw register, no
 * inversion), i.e. the effect on a CRC register of CRC_LANE zero bytes. */
static void crc_make_lane_shift(void)
{
    uint32_t odd[32], even[32];
    odd[0] = 0x82F63B78u; /* one zero bit */
    for (int n = 1; n < 32; n++) odd[n] = 1u << (n - 1);
    gf2_square(even, odd); /* 2 bits */
    gf2_square(odd, even); /* 4 bits */
    gf2_square(even, odd); /* 1 byte */
    uint32_t *cur = even, *other = odd;
    for (uint32_t len = 1; len < CRC_LANE; len *= 2) { /* CRC_LANE is a power of two */
        gf2_square(other, cur);
        uint32_t *t = cur;
        cur = other;
        other = t;
    }
    for (int b = 0; b < 4; b++)
        for (uint32_t v = 0; v < 256; v++) crc_lane_shift[b][v] = gf2_times(cur, v << (8 * b));
}

static uint32_t crc_shift_lane(uint32_t c)
{
    return crc_lane_shift[0][c & 0xff] ^ crc_lane_shift[1][(c >> 8) & 0xff] ^
           crc_lane_shift[2][(c >> 16) & 0xff] ^ crc_lane_shift[3][c >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p,
                                                               size_t n)
{
    uint64_t c = ~crc;
    while (n && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        n--;
    }
    if (n >= 3 * CRC_LANE) pthread_once(&crc_lane_once, crc_make_lane_shift);
    while (n >= 3 * CRC_LANE) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *p1 = p + CRC_LANE, *p2 = p + 2 * CRC_LANE;
        for (size_t i = 0; i < CRC_LANE; i += 8) {
            uint64_t v0, v1, v2;
            memcpy(&v0, p + i, 8);
            memcpy(&v1, p1 + i, 8);
            memcpy(&v2, p2 + i, 8);
            c = _mm_crc32_u64(c, v0);
            c1 = _mm_crc32_u64(c1, v1);
            c2 = _mm_crc32_u64(c2, v2);
        }
        /* lanes 1 and 2 started from 0, so their registers are the plain remainders */
        c = crc_shift_lane(crc_shift_lane((uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
        p += 3 * CRC_LANE;
        n -= 3 * CRC_LANE;
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
    }
    while (n--) c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}
#endif

uint32_t ckpt_crc32c(uint32_t crc, const void *data, size_t n)
{
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2")) return crc32c_sse42(crc, data, n);
#endif
    return ckpt_crc32c_portable(crc, data, n);
}

/* ---- little helpers ------------------------------------------------------------------------- */

typedef struct ckpt_buf {
    uint8_t *p;
    size_t n, cap;
} ckpt_buf;

static void buf_put(ckpt_buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        while (b->n + n > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->p = vs_realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void buf_u8(ckpt_buf *b, unsigned v)
{
    uint8_t x = (uint8_t)v;
    buf_put(b, &x, 1);
}

static void buf_u16(ckpt_buf *b, unsigned v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    buf_put(b, x, 2);
}

static void buf_u32(ckpt_buf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 4);
}

static void buf_u64(ckpt_buf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    buf_put(b, x, 8);
}

static void buf_printf(ckpt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(ckpt_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    if (b->n + (size_t)n + 1 > b->cap) {
        while (b->n + (size_t)n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->p = vs_realloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf((char *)b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

static uint32_t get_u16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static uint64_t align_up(uint64_t x)
{
    return (x + CKPT_ALIGN - 1) & ~(uint64_t)(CKPT_ALIGN - 1);
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = vs_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int key_ok(const char *k)
{
    if (!*k) return 0;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_' || *k == '.'))
            return 0;
    return 1;
}

static int name_ok(const char *s, size_t n)
{
    if (n < 1 || n > CKPT_MAX_NAME) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return 0;
    return 1;
}

/* The element count of a shape; -1 if a dim is negative or the byte size overflows. */
static int64_t shape_elems(int ndim, const int64_t *shape)
{
    uint64_t n = 1;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0) return -1;
        if (__builtin_mul_overflow(n, (uint64_t)shape[k], &n)) return -1;
    }
    return n > (UINT64_MAX >> 4) ? -1 : (int64_t)n; /* x 4 bytes, plus room for offsets */
}

/* "1.5 KiB", "315.0 MiB", "1.41 GiB" */
static void size_str(char *buf, size_t n, uint64_t bytes)
{
    if (bytes < 1024)
        snprintf(buf, n, "%" PRIu64 " bytes", bytes);
    else if (bytes < (1u << 20))
        snprintf(buf, n, "%.1f KiB", bytes / 1024.0);
    else if (bytes < (1u << 30))
        snprintf(buf, n, "%.1f MiB", bytes / 1048576.0);
    else
        snprintf(buf, n, "%.2f GiB", bytes / 1073741824.0);
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < ndim && at < n; k++)
        at += (size_t)snprintf(buf + at, n - at, "%s%" PRId64, k ? ", " : "", shape[k]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

/* pread until n bytes or end of file: the count read, or -1 (errno set). */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

/* ---- writing -------------------------------------------------------------------------------- */

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Non-zero if two of the n strings are equal; *dup names one of them. */
static int has_duplicate(const char **dup, const char **s, int n)
{
    if (n < 2) return 0;
    const char **v = vs_malloc((size_t)n * sizeof *v);
    memcpy(v, s, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_str_ptr);
    int found = 0;
    for (int i = 1; i < n && !found; i++)
        if (strcmp(v[i - 1], v[i]) == 0) found = 1, *dup = v[i];
    free(v);
    return found;
}

static int check_inputs(const char *path, const ckpt_kv *kv, int n_kv, const ckpt_tensor *t,
                        int n_t, vs_err *e)
{
    VS_CHECK(n_kv >= 0 && n_t >= 0);
    if (n_t > CKPT_MAX_TENSORS)
        return vs_fail(e, "%s: cannot write %d tensors (at most %d)", path, n_t, CKPT_MAX_TENSORS);
    const char **names = vs_malloc(((size_t)(n_kv > n_t ? n_kv : n_t) + 1) * sizeof *names);
    const char *dup = NULL;
    int rc = 0;
    for (int i = 0; i < n_kv && !rc; i++) {
        if (!kv[i].key || !key_ok(kv[i].key))
            rc = vs_fail(e, "%s: header key '%s' is not [a-z0-9_.]+", path,
                         kv[i].key ? kv[i].key : "(null)");
        else if (!kv[i].val || strchr(kv[i].val, '\n'))
            rc = vs_fail(e, "%s: header value of '%s' is missing or holds a newline", path,
                         kv[i].key);
        names[i] = kv[i].key;
    }
    if (!rc && has_duplicate(&dup, names, n_kv))
        rc = vs_fail(e, "%s: header key '%s' given twice", path, dup);
    for (int i = 0; i < n_t && !rc; i++) {
        const ckpt_tensor *x = &t[i];
        if (!x->name || !name_ok(x->name, strlen(x->name)))
            rc = vs_fail(e, "%s: tensor name '%s' is empty, longer than %d bytes or not printable",
                         path, x->name ? x->name : "(null)", CKPT_MAX_NAME);
        else if (x->ndim < 0 || x->ndim > CKPT_MAX_DIMS)
            rc = vs_fail(e, "%s: tensor '%s' has %d dimensions (at most %d)", path, x->name,
                         x->ndim, CKPT_MAX_DIMS);
        else if (shape_elems(x->ndim, x->shape) < 0)
            rc = vs_fail(e, "%s: tensor '%s' has a negative or too large shape", path, x->name);
        else if (!x->data && shape_elems(x->ndim, x->shape) > 0)
            rc = vs_fail(e, "%s: tensor '%s' has no data", path, x->name);
        names[i] = x->name;
    }
    if (!rc && has_duplicate(&dup, names, n_t))
        rc = vs_fail(e, "%s: tensor name '%s' used twice", path, dup);
    free(names);
    return rc;
}

/* Writes the whole file to the open atomic writer a (not committed). */
static int write_contents(fs_atomic *a, const char *path, const ckpt_kv *kv, int n_kv,
                          const ckpt_tensor *t, int n_t, vs_err *e)
{
    if (check_inputs(path, kv, n_kv, t, n_t, e)) return -1;
    ckpt_buf text = {0}, head = {0};
    for (int i = 0; i < n_kv; i++) {
        buf_put(&text, kv[i].key, strlen(kv[i].key));
        buf_put(&text, "=", 1);
        buf_put(&text, kv[i].val, strlen(kv[i].val));
        buf_put(&text, "\n", 1);
    }
    if (text.n > CKPT_MAX_HEADER) {
        free(text.p);
        return vs_fail(e, "%s: header text of %zu bytes (at most %u)", path, text.n,
                       CKPT_MAX_HEADER);
    }

    /* where the directory ends decides where the data starts */
    uint64_t h = CKPT_FIXED + text.n + 4;
    for (int i = 0; i < n_t; i++) h += 2 + strlen(t[i].name) + 2 + 8 * (uint64_t)t[i].ndim + 20;
    uint64_t off = h + 4;

    buf_put(&head, CKPT_MAGIC, 8);
    buf_u32(&head, CKPT_VERSION);
    buf_u32(&head, 0);
    buf_u64(&head, text.n);
    buf_put(&head, text.p, text.n);
    buf_u32(&head, (uint32_t)n_t);
    for (int i = 0; i < n_t; i++) {
        uint64_t bytes = 4 * (uint64_t)shape_elems(t[i].ndim, t[i].shape);
        off = align_up(off);
        buf_u16(&head, (unsigned)strlen(t[i].name));
        buf_put(&head, t[i].name, strlen(t[i].name));
        buf_u8(&head, 0); /* f32 */
        buf_u8(&head, (unsigned)t[i].ndim);
        for (int k = 0; k < t[i].ndim; k++) buf_u64(&head, (uint64_t)t[i].shape[k]);
        buf_u64(&head, off);
        buf_u64(&head, bytes);
        buf_u32(&head, ckpt_crc32c(0, t[i].data, bytes));
        off += bytes;
    }
    VS_CHECK(head.n == h);
    buf_u32(&head, ckpt_crc32c(0, head.p, head.n));

    static const uint8_t zeros[CKPT_ALIGN];
    uint64_t pos = head.n;
    fwrite(head.p, 1, head.n, a->f);
    for (int i = 0; i < n_t && !fs_atomic_failed(a); i++) {
        uint64_t bytes = 4 * (uint64_t)shape_elems(t[i].ndim, t[i].shape);
        fwrite(zeros, 1, align_up(pos) - pos, a->f);
        pos = align_up(pos);
        /* large pieces go straight to write(2), past stdio's buffer */
        for (uint64_t done = 0; done < bytes && !fs_atomic_failed(a);) {
            size_t piece = bytes - done < (64u << 20) ? (size_t)(bytes - done) : (64u << 20);
            fwrite((const uint8_t *)t[i].data + done, 1, piece, a->f);
            done += piece;
        }
        pos += bytes;
    }
    free(text.p);
    free(head.p);
    return 0; /* write errors are reported by fs_atomic_commit */
}

int ckpt_write(const char *path, const ckpt_kv *kv, int n_kv, const ckpt_tensor *t, int n_t,
               vs_err *e)
{
    fs_atomic a;
    if (fs_atomic_open(&a, path, e)) return -1;
    if (write_contents(&a, path, kv, n_kv, t, n_t, e)) {
        fs_atomic_abort(&a);
        return -1;
    }
    return fs_atomic_commit(&a, e);
}

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct ckpt_entry {
    char *name;
    int ndim;
    int64_t shape[4];
    uint64_t offset, bytes;
    uint32_t crc;
} ckpt_entry;

struct ckpt {
    char *path;
    int fd;
    uint64_t size;
    uint32_t version;
    char *text; /* the key/value text, '=' and '\n' replaced by NULs */
    int n_kv;
    const char **keys, **vals;
    int n;
    ckpt_entry *t;
    int *by_name; /* tensor indices sorted by name, for ckpt_read */
};

typedef enum ckpt_verify { CKPT_VERIFY_ALL, CKPT_VERIFY_HEADER } ckpt_verify;

void ckpt_close(ckpt *c)
{
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    for (int i = 0; i < c->n; i++) free(c->t[i].name);
    free(c->t);
    free(c->by_name);
    free(c->keys);
    free(c->vals);
    free(c->text);
    free(c->path);
    free(c);
}

/* Splits the key/value text (held in c->text, len bytes) into keys and values. */
static int parse_text(ckpt *c, size_t len, vs_err *e)
{
    char *s = c->text;
    if (len && s[len - 1] != '\n')
        return vs_fail(e, "%s: damaged header text (no final newline)", c->path);
    int lines = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == 0) return vs_fail(e, "%s: damaged header text (NUL byte)", c->path);
        lines += s[i] == '\n';
    }
    c->keys = vs_malloc(((size_t)lines + 1) * sizeof *c->keys);
    c->vals = vs_malloc(((size_t)lines + 1) * sizeof *c->vals);
    for (char *line = s; line < s + len;) {
        char *nl = strchr(line, '\n'), *eq = memchr(line, '=', (size_t)(nl - line));
        if (!eq) return vs_fail(e, "%s: damaged header text (a line without '=')", c->path);
        *eq = *nl = 0;
        if (!key_ok(line))
            return vs_fail(e, "%s: damaged header text (bad key '%.40s')", c->path, line);
        for (int k = 0; k < c->n_kv; k++)
            if (strcmp(c->keys[k], line) == 0)
                return vs_fail(e, "%s: damaged header text (key '%s' twice)", c->path, line);
        c->keys[c->n_kv] = line;
        c->vals[c->n_kv++] = eq + 1;
        line = nl + 1;
    }
    return 0;
}

static int cmp_by_name(const void *a, const void *b, void *arg)
{
    const ckpt *c = arg;
    return strcmp(c->t[*(const int *)a].name, c->t[*(const int *)b].name);
}

/* Streams the data area once: every gap must be zero, every block must match its CRC32C. */
static int verify_data(const ckpt *c, uint64_t data_from, vs_err *e)
{
    uint64_t total = c->size - data_from;
    size_t cap = total < CKPT_IO_CHUNK ? (size_t)total : CKPT_IO_CHUNK;
    uint8_t *buf = vs_malloc(cap ? cap : 1);
    uint64_t pos = data_from; /* file offset of the next byte to check */
    int i = 0, rc = 0;
    uint32_t crc = 0;
    (void)posix_fadvise(c->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (pos < c->size && !rc) {
        size_t want = c->size - pos < cap ? (size_t)(c->size - pos) : cap;
        ssize_t got = pread_full(c->fd, buf, want, pos);
        if (got != (ssize_t)want) {
            rc = vs_fail(e, "%s: cannot read (%s)", c->path,
                         got < 0 ? fs_strerror(errno) : "the file shrank while being read");
            break;
        }
        /* hand the chunk [pos, pos + want) to padding checks and tensor CRCs */
        for (size_t at = 0; at < want && !rc && i < c->n;) {
            uint64_t fpos = pos + at;
            const ckpt_entry *t = &c->t[i];
            if (fpos < t->offset) { /* padding before tensor i */
                uint64_t gap = t->offset - fpos;
                size_t n = gap < want - at ? (size_t)gap : want - at;
                for (size_t k = 0; k < n && !rc; k++)
                    if (buf[at + k])
                        rc = vs_fail(e, "%s: damaged: non-zero padding byte at offset %" PRIu64,
                                     c->path, fpos + k);
                at += n;
                continue;
            }
            uint64_t left = t->offset + t->bytes - fpos;
            size_t n = left < want - at ? (size_t)left : want - at;
            crc = ckpt_crc32c(crc, buf + at, n);
            at += n;
            if (n == left) { /* the end of tensor i */
                if (crc != t->crc)
                    rc = vs_fail(e, "%s: checksum mismatch in tensor '%s' (the file is damaged)",
                                 c->path, t->name);
                crc = 0;
                i++;
            }
        }
        pos += want;
    }
    /* empty tensors at the very end of the file: their CRC32C is that of nothing, 0 */
    for (; i < c->n && !rc; i++)
        if (c->t[i].bytes || c->t[i].crc)
            rc = vs_fail(e, "%s: checksum mismatch in tensor '%s' (the file is damaged)", c->path,
                         c->t[i].name);
    free(buf);
    return rc;
}

static ckpt *open_mode(const char *path, ckpt_verify mode, vs_err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        vs_fail(e, "%s: %s", path, fs_strerror(errno));
        return NULL;
    }
    ckpt *c = vs_calloc(1, sizeof *c);
    c->fd = fd;
    c->path = vs_strdup(path);
    uint8_t *head = NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        vs_fail(e, "%s: not a regular file", path);
        goto fail;
    }
    c->size = (uint64_t)st.st_size;

    uint8_t fixed[CKPT_FIXED];
    size_t nfixed = c->size < CKPT_FIXED ? (size_t)c->size : CKPT_FIXED;
    if (pread_full(fd, fixed, nfixed, 0) != (ssize_t)nfixed) {
        vs_fail(e, "%s: cannot read (%s)", path, fs_strerror(errno));
        goto fail;
    }
    if (memcmp(fixed, CKPT_MAGIC, nfixed < 8 ? nfixed : 8) != 0) {
        vs_fail(e, "%s: not a visage checkpoint (it does not start with \"" CKPT_MAGIC "\")", path);
        goto fail;
    }
    if (c->size < CKPT_FIXED) {
        vs_fail(e, "%s: truncated: %" PRIu64 " bytes, less than the %d-byte fixed header", path,
                c->size, CKPT_FIXED);
        goto fail;
    }
    c->version = get_u32(fixed + 8);
    if (c->version != CKPT_VERSION) {
        vs_fail(e,
                "%s: checkpoint format version %" PRIu32 ", but this visage reads version %d "
                "(written by a newer visage, or damaged)",
                path, c->version, CKPT_VERSION);
        goto fail;
    }
    if (get_u32(fixed + 12) != 0) {
        vs_fail(e, "%s: damaged: unknown header flags 0x%" PRIx32, path, get_u32(fixed + 12));
        goto fail;
    }
    uint64_t L = get_u64(fixed + 16);
    if (L > CKPT_MAX_HEADER) {
        vs_fail(e, "%s: damaged: header text of %" PRIu64 " bytes (at most %u)", path, L,
                CKPT_MAX_HEADER);
        goto fail;
    }
    uint8_t cnt[4];
    if (c->size < CKPT_FIXED + L + 4 || pread_full(fd, cnt, 4, CKPT_FIXED + L) != 4) {
        vs_fail(e, "%s: truncated: %" PRIu64 " bytes, it ends inside the header", path, c->size);
        goto fail;
    }
    uint32_t n = get_u32(cnt);
    if (n > CKPT_MAX_TENSORS) {
        vs_fail(e, "%s: damaged: %" PRIu32 " tensors (at most %d)", path, n, CKPT_MAX_TENSORS);
        goto fail;
    }

    /* the header and directory, bounded by the largest directory n entries can make */
    uint64_t head_max = CKPT_FIXED + L + 4 + (uint64_t)n * CKPT_ENTRY_MAX + 4;
    size_t hn = (size_t)(c->size < head_max ? c->size : head_max);
    head = vs_malloc(hn);
    if (pread_full(fd, head, hn, 0) != (ssize_t)hn) {
        vs_fail(e, "%s: cannot read (%s)", path, fs_strerror(errno));
        goto fail;
    }
    c->t = vs_calloc(n ? n : 1, sizeof *c->t);
    size_t p = CKPT_FIXED + L + 4;
    /* first pass: only the lengths, to find the checksum */
    for (uint32_t i = 0; i < n; i++) {
        if (p + 2 > hn) goto cut;
        uint32_t nl = get_u16(head + p);
        if (nl < 1 || nl > CKPT_MAX_NAME) {
            vs_fail(e,
                    "%s: damaged tensor directory (entry %" PRIu32 ": name of %" PRIu32 " bytes)",
                    path, i, nl);
            goto fail;
        }
        if (p + 2 + nl + 2 > hn) goto cut;
        uint32_t nd = head[p + 2 + nl + 1];
        if (nd > CKPT_MAX_DIMS) {
            vs_fail(e, "%s: damaged tensor directory (entry %" PRIu32 ": %" PRIu32 " dimensions)",
                    path, i, nd);
            goto fail;
        }
        p += 2 + nl + 2 + 8 * nd + 20;
    }
    if (p + 4 > hn) goto cut;
    if (ckpt_crc32c(0, head, p) != get_u32(head + p)) {
        vs_fail(e, "%s: checksum mismatch in the header or tensor directory (the file is damaged)",
                path);
        goto fail;
    }
    uint64_t head_end = p + 4;

    /* the key/value text */
    c->text = vs_malloc(L + 1);
    memcpy(c->text, head + CKPT_FIXED, L);
    c->text[L] = 0;
    if (parse_text(c, L, e)) goto fail;

    /* second pass: the entries, against the layout */
    p = CKPT_FIXED + L + 4;
    uint64_t end = head_end;
    for (uint32_t i = 0; i < n; i++) {
        ckpt_entry *t = &c->t[i];
        size_t nl = get_u16(head + p);
        if (!name_ok((const char *)head + p + 2, nl)) {
            vs_fail(e, "%s: damaged tensor directory (entry %" PRIu32 ": name not printable)", path,
                    i);
            goto fail;
        }
        t->name = vs_malloc(nl + 1);
        memcpy(t->name, head + p + 2, nl);
        t->name[nl] = 0;
        c->n = (int)i + 1;
        p += 2 + nl;
        unsigned dtype = head[p], nd = head[p + 1];
        p += 2;
        t->ndim = (int)nd;
        int dims_ok = dtype == 0;
        for (unsigned k = 0; k < nd; k++, p += 8) {
            uint64_t d = get_u64(head + p);
            dims_ok &= d <= INT64_MAX;
            t->shape[k] = (int64_t)(d & INT64_MAX);
        }
        t->offset = get_u64(head + p);
        t->bytes = get_u64(head + p + 8);
        t->crc = get_u32(head + p + 16);
        p += 20;
        int64_t elems = shape_elems(t->ndim, t->shape);
        if (!dims_ok || elems < 0 || t->bytes != 4 * (uint64_t)elems) {
            vs_fail(e, "%s: damaged tensor directory (tensor '%s': bad dtype, shape or size)", path,
                    t->name);
            goto fail;
        }
        if (t->offset != align_up(end)) {
            vs_fail(e,
                    "%s: damaged tensor directory (tensor '%s' at offset %" PRIu64
                    ", expected %" PRIu64 ")",
                    path, t->name, t->offset, align_up(end));
            goto fail;
        }
        end = t->offset + t->bytes; /* no overflow: both are below 2^63 */
        if (end > CKPT_MAX_FILE) {
            vs_fail(e, "%s: damaged tensor directory (tensor '%s' ends past 2^60 bytes)", path,
                    t->name);
            goto fail;
        }
    }
    c->by_name = vs_malloc((n ? n : 1) * sizeof *c->by_name);
    for (uint32_t i = 0; i < n; i++) c->by_name[i] = (int)i;
    qsort_r(c->by_name, n, sizeof *c->by_name, cmp_by_name, c);
    for (uint32_t i = 1; i < n; i++)
        if (strcmp(c->t[c->by_name[i - 1]].name, c->t[c->by_name[i]].name) == 0) {
            vs_fail(e, "%s: damaged tensor directory (tensor '%s' twice)", path,
                    c->t[c->by_name[i]].name);
            goto fail;
        }

    if (c->size < end) {
        vs_fail(e, "%s: truncated: %" PRIu64 " of %" PRIu64 " bytes", path, c->size, end);
        goto fail;
    }
    if (c->size > end) {
        vs_fail(e,
                "%s: damaged: %" PRIu64 " unexpected bytes after the last tensor (%" PRIu64
                " bytes, should be %" PRIu64 ")",
                path, c->size - end, c->size, end);
        goto fail;
    }
    free(head);
    head = NULL;
    if (mode == CKPT_VERIFY_ALL && verify_data(c, head_end, e)) goto fail;
    return c;

cut:
    vs_fail(e, "%s: truncated: %" PRIu64 " bytes, it ends inside the tensor directory", path,
            c->size);
fail:
    free(head);
    ckpt_close(c);
    return NULL;
}

ckpt *ckpt_open(const char *path, vs_err *e)
{
    return open_mode(path, CKPT_VERIFY_ALL, e);
}

const char *ckpt_get(const ckpt *c, const char *key)
{
    for (int i = 0; i < c->n_kv; i++)
        if (strcmp(c->keys[i], key) == 0) return c->vals[i];
    return NULL;
}

int ckpt_n_tensors(const ckpt *c)
{
    return c->n;
}

const char *ckpt_tensor_name(const ckpt *c, int i, int *ndim, int64_t shape[4])
{
    VS_CHECK(i >= 0 && i < c->n);
    if (ndim) *ndim = c->t[i].ndim;
    if (shape)
        for (int k = 0; k < 4; k++) shape[k] = k < c->t[i].ndim ? c->t[i].shape[k] : 0;
    return c->t[i].name;
}

static const ckpt_entry *find_tensor(const ckpt *c, const char *name)
{
    int lo = 0, hi = c->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, r = strcmp(name, c->t[c->by_name[mid]].name);
        if (!r) return &c->t[c->by_name[mid]];
        if (r < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int ckpt_read(const ckpt *c, const char *name, float *dst, int ndim, const int64_t *shape,
              vs_err *e)
{
    const ckpt_entry *t = find_tensor(c, name);
    if (!t) return vs_fail(e, "%s: no tensor '%s' in this checkpoint", c->path, name);
    int same = t->ndim == ndim;
    for (int k = 0; k < ndim && same; k++) same = t->shape[k] == shape[k];
    if (!same) {
        char have[128], want[128];
        shape_str(have, sizeof have, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, shape);
        return vs_fail(e, "%s: tensor '%s' has shape %s, but %s was expected", c->path, name, have,
                       want);
    }
    ssize_t got = pread_full(c->fd, dst, t->bytes, t->offset);
    if (got != (ssize_t)t->bytes)
        return vs_fail(e, "%s: cannot read tensor '%s' (%s)", c->path, name,
                       got < 0 ? fs_strerror(errno) : "the file shrank");
    /* checked at open already; again here, since disks and page caches are not perfect */
    if (ckpt_crc32c(0, dst, t->bytes) != t->crc)
        return vs_fail(e, "%s: checksum mismatch in tensor '%s' (the file is damaged)", c->path,
                       name);
    return 0;
}

char *ckpt_describe(const ckpt *c)
{
    ckpt_buf b = {0};
    uint64_t params = 0;
    int w = 4;
    for (int i = 0; i < c->n; i++) {
        params += c->t[i].bytes / 4;
        int len = (int)strlen(c->t[i].name);
        if (len > w) w = len < 60 ? len : 60;
    }
    buf_printf(&b, "file      %s\n", c->path);
    char size[64];
    size_str(size, sizeof size, c->size);
    buf_printf(&b, "size      %s (%" PRIu64 " bytes)\n", size, c->size);
    buf_printf(&b, "format    visage checkpoint, version %" PRIu32 "\n", c->version);
    buf_printf(&b, "header    %d key%s\n", c->n_kv, c->n_kv == 1 ? "" : "s");
    for (int i = 0; i < c->n_kv; i++) buf_printf(&b, "  %s=%s\n", c->keys[i], c->vals[i]);
    buf_printf(&b, "tensors   %d, %" PRIu64 " parameters\n", c->n, params);
    if (c->n) buf_printf(&b, "  %-*s  %-22s %10s  %s\n", w, "name", "shape", "MiB", "crc32c");
    for (int i = 0; i < c->n; i++) {
        char shape[128];
        shape_str(shape, sizeof shape, c->t[i].ndim, c->t[i].shape);
        buf_printf(&b, "  %-*s  %-22s %10.3f  %08x\n", w, c->t[i].name, shape,
                   c->t[i].bytes / 1048576.0, (unsigned)c->t[i].crc);
    }
    buf_put(&b, "", 1);
    return (char *)b.p;
}

/* ---- the model folder ----------------------------------------------------------------------- */

/* "model-<digits>.vsk": its iteration, or -1 for any other name. */
static long backup_iteration(const char *name)
{
    if (strncmp(name, "model-", 6) != 0) return -1;
    const char *d = name + 6;
    if (*d < '0' || *d > '9') return -1;
    char *endp;
    errno = 0;
    long it = strtol(d, &endp, 10);
    if (errno || strcmp(endp, CKPT_EXT) != 0) return -1;
    return it;
}

static int is_backup_name(const char *name)
{
    return backup_iteration(name) >= 0;
}

typedef struct backup {
    char *name;
    long iteration;
} backup;

static int cmp_newest_first(const void *a, const void *b)
{
    long x = ((const backup *)a)->iteration, y = ((const backup *)b)->iteration;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The backups in folder bdir, newest (highest iteration) first; free with free_backups. */
static int list_backups(backup **out, int *n, const char *bdir)
{
    char **names;
    int cnt;
    vs_err e;
    *out = NULL;
    *n = 0;
    if (fs_list_dir(&names, &cnt, bdir, is_backup_name, &e)) return -1;
    backup *v = vs_malloc(((size_t)cnt + 1) * sizeof *v);
    for (int i = 0; i < cnt; i++) v[i] = (backup){names[i], backup_iteration(names[i])};
    free(names); /* the strings now belong to v */
    qsort(v, (size_t)cnt, sizeof *v, cmp_newest_first);
    *out = v;
    *n = cnt;
    return 0;
}

static void free_backups(backup *v, int n)
{
    for (int i = 0; i < n; i++) free(v[i].name);
    free(v);
}

/* Removes ".NAME.vsk.tmp-XXXXXX" files (fs_atomic's temporary names) left by killed saves. */
static void remove_stale_temps(const char *folder)
{
    DIR *d = opendir(folder);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] == '.' && strstr(de->d_name, CKPT_EXT ".tmp-"))
            (void)unlinkat(dirfd(d), de->d_name, 0);
    closedir(d);
}

static void fsync_folder(const char *folder)
{
    int fd = open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

/* Makes dst another name of src: a hard link, or where the file system refuses links, an atomic
 * copy. An existing dst that is not already src is replaced. */
static int link_or_copy(const char *dst, const char *src, vs_err *e)
{
    struct stat a, b;
    if (stat(src, &a) != 0) return vs_fail(e, "%s: %s", src, fs_strerror(errno));
    if (stat(dst, &b) == 0) {
        if (a.st_dev == b.st_dev && a.st_ino == b.st_ino) return 0;
        if (unlink(dst) != 0) return vs_fail(e, "%s: cannot replace (%s)", dst, fs_strerror(errno));
    }
    if (link(src, dst) == 0) return 0;

    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return vs_fail(e, "%s: %s", src, fs_strerror(errno));
    fs_atomic out;
    if (fs_atomic_open(&out, dst, e)) {
        close(in);
        return -1;
    }
    size_t cap = CKPT_IO_CHUNK;
    char *buf = vs_malloc(cap);
    ssize_t r;
    while ((r = read(in, buf, cap)) != 0) {
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) break;
        fwrite(buf, 1, (size_t)r, out.f);
        if (fs_atomic_failed(&out)) break;
    }
    int err = r < 0 ? errno : 0;
    free(buf);
    close(in);
    if (err) {
        fs_atomic_abort(&out);
        return vs_fail(e, "%s: cannot read (%s)", src, fs_strerror(err));
    }
    return fs_atomic_commit(&out, e);
}

/* The "iteration" of a checkpoint's header (checked up to the header checksum); 0 if absent or
 * unreadable. */
static long header_iteration(const char *path)
{
    vs_err e;
    ckpt *c = open_mode(path, CKPT_VERIFY_HEADER, &e);
    const char *v = c ? ckpt_get(c, "iteration") : NULL;
    long it = v ? strtol(v, NULL, 10) : 0;
    ckpt_close(c);
    return it < 0 ? 0 : it;
}

int ckpt_save(const char *dir, long iteration, const ckpt_kv *kv, int n_kv, const ckpt_tensor *t,
              int n_t, int keep, ckpt_snapshot snap, vs_err *e)
{
    char *model = path_join(dir, "model" CKPT_EXT);
    char *bdir = path_join(dir, "backups"), *sdir = path_join(dir, "snapshots");
    char *bpath = NULL, *spath = NULL;
    ckpt_kv *all = NULL;
    int rc = -1;
    if (fs_mkdirs(dir, e) || fs_mkdirs(bdir, e)) goto done;
    if (snap == CKPT_SNAPSHOT && fs_mkdirs(sdir, e)) goto done;
    remove_stale_temps(dir);
    remove_stale_temps(bdir);
    remove_stale_temps(sdir);

    /* the header always says which iteration this is: backups are named from it */
    char itbuf[32];
    snprintf(itbuf, sizeof itbuf, "%ld", iteration);
    all = vs_malloc(((size_t)(n_kv > 0 ? n_kv : 0) + 1) * sizeof *all);
    int n_all = 0, have_it = 0;
    for (int i = 0; i < n_kv; i++) {
        all[n_all++] = kv[i];
        have_it |= kv[i].key && strcmp(kv[i].key, "iteration") == 0;
    }
    if (!have_it) all[n_all++] = (ckpt_kv){"iteration", itbuf};

    fs_atomic a;
    if (fs_atomic_open(&a, model, e)) goto done;
    if (write_contents(&a, model, all, n_all, t, n_t, e)) {
        fs_atomic_abort(&a);
        goto done;
    }
    /* a write that already failed (full disk) is reported by the commit, before any link */
    (void)fflush(a.f);
    if (!fs_atomic_failed(&a) && fs_exists(model)) {
        size_t n = strlen(bdir) + 64;
        bpath = vs_malloc(n);
        snprintf(bpath, n, "%s/model-%ld" CKPT_EXT, bdir, header_iteration(model));
        if (link_or_copy(bpath, model, e)) {
            fs_atomic_abort(&a);
            goto done;
        }
        fsync_folder(bdir);
    }
    if (fs_atomic_commit(&a, e)) goto done;

    /* the new model.vsk is in place: what follows only tidies up */
    backup *v;
    int nb;
    if (list_backups(&v, &nb, bdir) == 0) {
        for (int i = keep > 0 ? keep : 0; i < nb; i++) {
            char *p = path_join(bdir, v[i].name);
            (void)unlink(p);
            free(p);
        }
        free_backups(v, nb);
    }
    if (snap == CKPT_SNAPSHOT) {
        size_t n = strlen(sdir) + 64;
        spath = vs_malloc(n);
        snprintf(spath, n, "%s/model-%ld" CKPT_EXT, sdir, iteration);
        if (link_or_copy(spath, model, e)) {
            vs_failctx(e, "%s: saved, but the snapshot failed", model);
            goto done;
        }
        fsync_folder(sdir);
    }
    rc = 0;
done:
    free(all);
    free(model);
    free(bdir);
    free(sdir);
    free(bpath);
    free(spath);
    return rc;
}

int ckpt_newest_intact_backup(char **path, const char *dir)
{
    *path = NULL;
    char *bdir = path_join(dir, "backups");
    backup *v;
    int n;
    if (list_backups(&v, &n, bdir) == 0) {
        for (int i = 0; i < n && !*path; i++) {
            char *p = path_join(bdir, v[i].name);
            vs_err e;
            ckpt *c = ckpt_open(p, &e);
            if (c)
                *path = p;
            else
                free(p);
            ckpt_close(c);
        }
        free_backups(v, n);
    }
    free(bdir);
    return *path ? 0 : -1;
}
