/* weights.c: TF.js weights manifests (see weights.h). The manifest is a JSON array of groups
 * {paths: [shard, ...], weights: [{name, shape, dtype, quantization?}, ...]}; a group's tensors
 * lie back to back in the concatenation of its shards, in manifest order. Everything is
 * dequantised into one float arena at load time, so a lookup is a name search and a shape check. */
#include "weights.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "weights.c reads TF.js shards (little-endian) in place; add byte swapping for this host"
#endif

#define MAX_DIMS 8

typedef enum stored_kind { ST_F32, ST_I32, ST_U8, ST_U16, ST_F16 } stored_kind;

typedef struct wtensor {
    char *name;
    int ndim;
    int shape[MAX_DIMS];
    size_t count;
    float *data; /* into the arena */
    int used;    /* returned by nn_weights_get */
    stored_kind kind;
    double qmin, qscale;
    size_t offset; /* bytes into its group's shards */
} wtensor;

struct nn_weights {
    char *path;
    wtensor *t;
    int n;
    float *arena;
};

static const size_t stored_bytes[] = {
    [ST_F32] = 4, [ST_I32] = 4, [ST_U8] = 1, [ST_U16] = 2, [ST_F16] = 2};

static void shape_str(char *buf, size_t cap, int ndim, const int *shape)
{
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%d", i ? "," : "", shape[i]);
    if (at < cap) snprintf(buf + at, cap - at, "]");
}

/* Parses one manifest entry into t (name, shape, storage) without reading any data. */
static int parse_tensor(wtensor *t, json_t *jw, const char *manifest, int gi, int wi, vs_err *e)
{
    const char *name = json_string_value(json_object_get(jw, "name"));
    if (!json_is_object(jw) || !name)
        return vs_fail(e, "%s: group %d, weight %d: no \"name\"", manifest, gi, wi);
    json_t *jshape = json_object_get(jw, "shape");
    const char *dtype = json_string_value(json_object_get(jw, "dtype"));
    if (!json_is_array(jshape) || !dtype)
        return vs_fail(e, "%s: tensor '%s': needs \"shape\" (array) and \"dtype\" (string)",
                       manifest, name);
    if (json_array_size(jshape) > MAX_DIMS)
        return vs_fail(e, "%s: tensor '%s': %zu dimensions, at most %d supported", manifest, name,
                       json_array_size(jshape), MAX_DIMS);
    t->ndim = (int)json_array_size(jshape);
    t->count = 1;
    for (int i = 0; i < t->ndim; i++) {
        json_t *jd = json_array_get(jshape, (size_t)i);
        json_int_t v = json_is_integer(jd) ? json_integer_value(jd) : -1;
        if (v < 0 || v > INT32_MAX || (v && t->count > ((size_t)1 << 40) / (size_t)v))
            return vs_fail(e, "%s: tensor '%s': bad shape (dimension %d)", manifest, name, i);
        t->shape[i] = (int)v;
        t->count *= (size_t)v;
    }
    if (strcmp(dtype, "float32") != 0 && strcmp(dtype, "int32") != 0)
        return vs_fail(e, "%s: tensor '%s': unknown dtype '%s' (visage reads float32 and int32)",
                       manifest, name, dtype);
    t->kind = dtype[0] == 'f' ? ST_F32 : ST_I32;

    json_t *jq = json_object_get(jw, "quantization");
    if (jq && !json_is_null(jq)) {
        const char *qd = json_string_value(json_object_get(jq, "dtype"));
        if (!json_is_object(jq) || !qd)
            return vs_fail(e, "%s: tensor '%s': quantization without a dtype", manifest, name);
        if (!strcmp(qd, "uint8"))
            t->kind = ST_U8;
        else if (!strcmp(qd, "uint16"))
            t->kind = ST_U16;
        else if (!strcmp(qd, "float16"))
            t->kind = ST_F16;
        else
            return vs_fail(e,
                           "%s: tensor '%s': unknown quantization dtype '%s' (expected uint8, "
                           "uint16 or float16)",
                           manifest, name, qd);
        if (t->kind != ST_F16) {
            json_t *jmin = json_object_get(jq, "min"), *jscale = json_object_get(jq, "scale");
            if (!json_is_number(jmin) || !json_is_number(jscale))
                return vs_fail(e, "%s: tensor '%s': %s quantization needs numeric min and scale",
                               manifest, name, qd);
            t->qmin = json_number_value(jmin);
            t->qscale = json_number_value(jscale);
        }
    }
    t->name = vs_strdup(name);
    return 0;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man) { /* subnormal: renormalise */
        exp = 113;
        while (!(man & 0x400)) man <<= 1, exp--;
        bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* dst[count] = the tensor's values from its stored bytes src. */
static void dequantise(float *restrict dst, const unsigned char *restrict src, const wtensor *t)
{
    const float qmin = (float)t->qmin, qscale = (float)t->qscale;
    for (size_t i = 0; i < t->count; i++) {
        switch (t->kind) {
        case ST_F32: memcpy(&dst[i], src + 4 * i, 4); break;
        case ST_I32: {
            int32_t v;
            memcpy(&v, src + 4 * i, 4);
            dst[i] = (float)v;
            break;
        }
        case ST_U8: dst[i] = qmin + (float)src[i] * qscale; break;
        case ST_U16: {
            uint16_t q;
            memcpy(&q, src + 2 * i, 2);
            dst[i] = qmin + (float)q * qscale;
            break;
        }
        case ST_F16: {
            uint16_t hbits;
            memcpy(&hbits, src + 2 * i, 2);
            dst[i] = half_to_float(hbits);
            break;
        }
        }
    }
}

/* "DIR/NAME" of shard s of a group into path; -1 with a message if the entry is not a string. */
static int shard_path(char *path, size_t cap, json_t *jpaths, size_t s, const char *dir,
                      const char *manifest, int gi, vs_err *e)
{
    const char *name = json_string_value(json_array_get(jpaths, s));
    if (!name) return vs_fail(e, "%s: group %d: shard path %zu is not a string", manifest, gi, s);
    snprintf(path, cap, "%s%s", dir, name);
    return 0;
}

/* Checks, by their sizes alone, that a group's shards together hold exactly need bytes: a manifest
 * whose shapes were edited (terabytes claimed) is reported, naming it, before anything is
 * allocated for it. */
static int check_shards(json_t *jpaths, const char *dir, size_t need, const char *manifest, int gi,
                        vs_err *e)
{
    size_t n_shards = json_array_size(jpaths), total = 0;
    char path[4096] = "";
    for (size_t s = 0; s < n_shards; s++) {
        if (shard_path(path, sizeof path, jpaths, s, dir, manifest, gi, e)) return -1;
        struct stat st;
        if (stat(path, &st) != 0)
            return vs_fail(e, "%s: cannot open weight shard (listed in %s): %s", path, manifest,
                           strerror(errno));
        if (!S_ISREG(st.st_mode))
            return vs_fail(e, "%s: weight shard (listed in %s) is not a file", path, manifest);
        size_t size = (size_t)st.st_size;
        total = size > SIZE_MAX - total ? SIZE_MAX : total + size;
    }
    if (total == need) return 0;
    const char *what = total < need ? "truncated: " : "";
    const char *why = total < need ? "" : " (shard and manifest do not belong together)";
    if (n_shards == 1)
        return vs_fail(e, "%s: %s%zu bytes, %s needs %zu%s", path, what, total, manifest, need,
                       why);
    return vs_fail(e,
                   "%s: %sthe %zu shards of group %d (the last: %s) hold %zu bytes, it needs %zu%s",
                   manifest, what, n_shards, gi, path, total, need, why);
}

/* Reads a group's shards, concatenated, into *out: need bytes, which check_shards found them to
 * hold (a shard that changed since is an error). */
static int read_shards(unsigned char **out, json_t *jpaths, const char *dir, size_t need,
                       const char *manifest, int gi, vs_err *e)
{
    size_t n_shards = json_array_size(jpaths), have = 0;
    unsigned char *buf = malloc(need ? need : 1);
    if (!buf)
        return vs_fail(e, "%s: not enough memory for group %d of its weights (%zu MB)", manifest,
                       gi, need >> 20);
    char path[4096];
    for (size_t s = 0; s < n_shards; s++) {
        if (shard_path(path, sizeof path, jpaths, s, dir, manifest, gi, e)) {
            free(buf);
            return -1;
        }
        FILE *f = fopen(path, "rb");
        if (!f) {
            int err = errno;
            free(buf);
            return vs_fail(e, "%s: cannot open weight shard (listed in %s): %s", path, manifest,
                           strerror(err));
        }
        /* what is left, then one byte more: a shard that grew since check_shards shows too */
        size_t got = fread(buf + have, 1, need - have, f);
        int extra = got == need - have && fgetc(f) != EOF;
        int err = ferror(f) ? errno : 0;
        fclose(f);
        if (err || extra || (s == n_shards - 1 && have + got != need)) {
            free(buf);
            return vs_fail(e, "%s: %s (listed in %s)", path,
                           err ? strerror(err) : "changed while it was read", manifest);
        }
        have += got;
    }
    *out = buf;
    return 0;
}

void nn_weights_free(nn_weights *w)
{
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->t[i].name);
    free(w->t);
    free(w->arena);
    free(w->path);
    free(w);
}

int nn_weights_load(nn_weights **out, const char *manifest, vs_err *e)
{
    *out = NULL;
    FILE *f = fopen(manifest, "rb");
    if (!f) return vs_fail(e, "%s: cannot open: %s", manifest, strerror(errno));
    json_error_t je;
    json_t *root = json_loadf(f, 0, &je);
    fclose(f);
    if (!root)
        return vs_fail(e, "%s:%d: bad JSON (column %d): %s", manifest, je.line, je.column, je.text);
    if (!json_is_array(root)) {
        json_decref(root);
        return vs_fail(e, "%s: not a TF.js weights manifest (expected a JSON array of groups)",
                       manifest);
    }

    /* the shards' folder, with its slash: "models/x.json" -> "models/" */
    const char *slash = strrchr(manifest, '/');
    size_t dir_len = slash ? (size_t)(slash - manifest) + 1 : 0;
    char *dir = vs_malloc(dir_len + 1);
    memcpy(dir, manifest, dir_len);
    dir[dir_len] = '\0';

    nn_weights *w = vs_calloc(1, sizeof *w);
    w->path = vs_strdup(manifest);
    size_t n_groups = json_array_size(root), cap = 0, total = 0;
    size_t *need = vs_calloc(n_groups ? n_groups : 1, sizeof *need); /* bytes of each group */
    int rc = 0;

    /* pass 1: every entry, its offset within its group, the groups' sizes and the arena's (in
     * floats). A tensor holds at most 2^40 elements (parse_tensor), so only a manifest of
     * millions of them could overflow the sums; it is refused all the same. */
    for (size_t gi = 0; gi < n_groups && !rc; gi++) {
        json_t *g = json_array_get(root, gi);
        json_t *jpaths = json_object_get(g, "paths"), *jws = json_object_get(g, "weights");
        if (!json_is_array(jpaths) || !json_is_array(jws) || json_array_size(jpaths) == 0) {
            rc = vs_fail(e, "%s: group %zu: needs \"paths\" (non-empty array) and \"weights\"",
                         manifest, gi);
            break;
        }
        size_t offset = 0;
        for (size_t wi = 0; wi < json_array_size(jws); wi++) {
            if ((size_t)w->n == cap) {
                cap = cap ? 2 * cap : 64;
                w->t = vs_realloc(w->t, cap * sizeof *w->t);
            }
            wtensor *t = &w->t[w->n];
            memset(t, 0, sizeof *t);
            if ((rc = parse_tensor(t, json_array_get(jws, wi), manifest, (int)gi, (int)wi, e)))
                break;
            w->n++;
            for (int k = 0; k < w->n - 1 && !rc; k++)
                if (!strcmp(w->t[k].name, t->name))
                    rc = vs_fail(e, "%s: tensor '%s' listed twice", manifest, t->name);
            if (rc) break;
            size_t bytes = t->count * stored_bytes[t->kind];
            size_t floats = (t->count + 15) & ~(size_t)15; /* each tensor 64-byte aligned */
            if (bytes > SIZE_MAX - offset || floats > SIZE_MAX / sizeof(float) - total) {
                rc = vs_fail(e, "%s: tensor '%s': the sizes of the tensors overflow", manifest,
                             t->name);
                break;
            }
            t->offset = offset;
            offset += bytes;
            total += floats;
        }
        need[gi] = offset;
    }

    /* the shards' sizes against the manifest's, before the arena is allocated from it */
    for (size_t gi = 0; gi < n_groups && !rc; gi++)
        rc = check_shards(json_object_get(json_array_get(root, gi), "paths"), dir, need[gi],
                          manifest, (int)gi, e);

    /* pass 2: read each group's shards and dequantise its tensors into the arena */
    if (!rc) {
        w->arena = aligned_alloc(64, total ? total * sizeof(float) : 64);
        if (!w->arena)
            rc = vs_fail(e, "%s: not enough memory for its weights (%zu MB)", manifest,
                         total * sizeof(float) >> 20);
    }
    float *at = w->arena;
    int ti = 0;
    for (size_t gi = 0; gi < n_groups && !rc; gi++) {
        json_t *g = json_array_get(root, gi);
        size_t n_w = json_array_size(json_object_get(g, "weights"));
        unsigned char *bytes;
        if ((rc = read_shards(&bytes, json_object_get(g, "paths"), dir, need[gi], manifest, (int)gi,
                              e)))
            break;
        for (size_t k = 0; k < n_w; k++, ti++) {
            wtensor *t = &w->t[ti];
            t->data = at;
            dequantise(t->data, bytes + t->offset, t);
            at += (t->count + 15) & ~(size_t)15;
        }
        free(bytes);
    }

    free(need);
    free(dir);
    json_decref(root);
    if (rc) {
        nn_weights_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

const float *nn_weights_get(nn_weights *w, const char *name, int ndim, const int *shape, vs_err *e)
{
    for (int i = 0; i < w->n; i++) {
        wtensor *t = &w->t[i];
        if (strcmp(t->name, name) != 0) continue;
        int same = t->ndim == ndim;
        for (int k = 0; same && k < ndim; k++) same = t->shape[k] == shape[k];
        if (!same) {
            char found[128], want[128];
            shape_str(found, sizeof found, t->ndim, t->shape);
            shape_str(want, sizeof want, ndim, shape);
            vs_fail(e, "%s: tensor '%s' has shape %s, expected %s", w->path, name, found, want);
            return NULL;
        }
        t->used = 1;
        return t->data;
    }
    vs_fail(e, "%s: no tensor '%s' (wrong model file?)", w->path, name);
    return NULL;
}

int nn_weights_unused(const nn_weights *w, const char **first_unused)
{
    int n = 0;
    if (first_unused) *first_unused = NULL;
    for (int i = 0; i < w->n; i++)
        if (!w->t[i].used) {
            if (first_unused && !n) *first_unused = w->t[i].name;
            n++;
        }
    return n;
}

const char *nn_weights_path(const nn_weights *w)
{
    return w->path;
}
