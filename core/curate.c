/* curate.c: listing, sorting and renaming face folders (see curate.h). */
#include "curate.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenet.h"
#include "fsutil.h"

static int is_png(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcasecmp(name + n - 4, ".png");
}

int cu_load(cu_face **out, int *n, char ***others, int *n_other, const char *dir, vs_err *e)
{
    char **names;
    int count;
    *out = NULL, *n = 0, *n_other = 0;
    if (others) *others = NULL;
    if (!fs_is_dir(dir)) {
        if (!fs_exists(dir)) return vs_fail(e, "%s: no such folder", dir);
        return vs_fail(e, "%s: not a folder", dir);
    }
    if (fs_list_dir(&names, &count, dir, is_png, e)) return -1;
    cu_face *v = vs_calloc((size_t)count + 1, sizeof *v);
    if (others) *others = vs_calloc((size_t)count + 1, sizeof **others);
    int k = 0;
    for (int i = 0; i < count; i++) {
        char path[PATH_MAX + 256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        vs_err ignore;
        if (face_load(&v[k].f, NULL, path, &ignore)) {
            if (others) (*others)[*n_other] = vs_strdup(names[i]);
            (*n_other)++;
            continue;
        }
        snprintf(v[k].name, sizeof v[k].name, "%s", names[i]);
        k++;
    }
    fs_free_list(names, count);
    *out = v, *n = k;
    return 0;
}

int cu_parse_order(cu_order *o, char *ref_path, size_t n, const char *s, vs_err *e)
{
    static const struct {
        const char *name;
        cu_order o;
    } names[] = {{"identity", CU_BY_IDENTITY},
                 {"blur", CU_BY_BLUR},
                 {"size", CU_BY_SIZE},
                 {"yaw", CU_BY_YAW}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) {
            *o = names[i].o;
            return 0;
        }
    if (!strncmp(s, "face:", 5) && s[5]) {
        *o = CU_BY_FACE;
        snprintf(ref_path, n, "%s", s + 5);
        return 0;
    }
    return vs_fail(e, "--by %s: unknown order (identity, blur, size, yaw or face:REF)", s);
}

void cu_distances(cu_face *v, int n, const float ref[128])
{
    for (int i = 0; i < n; i++)
        v[i].key = v[i].f.has_embedding ? fn_distance(v[i].f.embedding, ref) : INFINITY;
}

static int by_key_asc(const void *a, const void *b)
{
    const cu_face *x = a, *y = b;
    if (x->key < y->key) return -1;
    if (x->key > y->key) return 1;
    return strcmp(x->name, y->name);
}

/* Greedy nearest-neighbour chain: similar faces end up next to each other. */
static void chain(cu_face *v, int n)
{
    for (int i = 0; i + 1 < n; i++) {
        int best = -1;
        float bd = INFINITY;
        for (int k = i + 1; k < n; k++) {
            float d = (v[i].f.has_embedding && v[k].f.has_embedding)
                          ? fn_distance(v[i].f.embedding, v[k].f.embedding)
                          : INFINITY;
            if (best < 0 || d < bd) best = k, bd = d;
        }
        cu_face t = v[i + 1];
        v[i + 1] = v[best];
        v[best] = t;
        v[i + 1].key = bd;
    }
    if (n) v[0].key = 0;
}

void cu_sort(cu_face *v, int n, cu_order o, const float *ref)
{
    switch (o) {
    case CU_BY_IDENTITY: chain(v, n); return;
    case CU_BY_BLUR:
        for (int i = 0; i < n; i++) v[i].key = -v[i].f.blur;
        break;
    case CU_BY_SIZE:
        for (int i = 0; i < n; i++) v[i].key = -fmaxf(v[i].f.box[2], v[i].f.box[3]);
        break;
    case CU_BY_YAW:
        for (int i = 0; i < n; i++) v[i].key = v[i].f.yaw;
        break;
    case CU_BY_FACE: cu_distances(v, n, ref); break;
    }
    qsort(v, (size_t)n, sizeof *v, by_key_asc);
}

int cu_rename_ranked(cu_face *v, int n, const char *dir, vs_err *e)
{
    int width = 5;
    for (int m = n; m >= 100000; m /= 10) width++;
    char(*names)[256] = vs_calloc((size_t)n + 1, sizeof *names);
    int rc = 0;
    /* every new name first: a problem stops the sort before any file is renamed */
    for (int i = 0; i < n && rc == 0; i++) {
        const char *orig = v[i].f.file[0] ? v[i].f.file : v[i].name; /* a plain .png name */
        if (strlen(orig) + (size_t)width + 2 > sizeof names[i])
            rc = vs_fail(e, "%s/%s: name too long to rank", dir, v[i].name);
        else
            snprintf(names[i], sizeof names[i], "%0*d_%s", width, i + 1, orig);
        for (int k = 0; k < i && rc == 0; k++)
            if (!strcmp(names[k], names[i]))
                rc = vs_fail(e, "%s/%s and %s were saved under the same name; rename one", dir,
                             v[k].name, v[i].name);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        if (!strcmp(names[i], v[i].name)) continue;
        char from[PATH_MAX + 256], to[PATH_MAX + 256];
        snprintf(from, sizeof from, "%s/%s", dir, v[i].name);
        snprintf(to, sizeof to, "%s/%s", dir, names[i]);
        /* only another face of this folder can hold the new name; it moves on its own turn */
        if (fs_exists(to)) {
            int ours = 0;
            for (int k = i + 1; k < n && !ours; k++) ours = !strcmp(v[k].name, names[i]);
            if (!ours) {
                rc = vs_fail(e, "%s: already exists and is not one of the faces being sorted", to);
                break;
            }
            /* park the other face under a temporary name first */
            for (int k = i + 1; k < n; k++)
                if (!strcmp(v[k].name, names[i])) {
                    char park[PATH_MAX + 256], pname[256];
                    snprintf(pname, sizeof pname, ".sort-%d.png", k);
                    snprintf(park, sizeof park, "%s/%s", dir, pname);
                    if (rename(to, park)) {
                        rc = vs_fail(e, "%s: cannot rename: %s", to, fs_strerror(errno));
                        break;
                    }
                    snprintf(v[k].name, sizeof v[k].name, "%s", pname);
                }
            if (rc) break;
        }
        if (rename(from, to)) {
            rc = vs_fail(e, "%s: cannot rename to %s: %s", from, names[i], fs_strerror(errno));
            break;
        }
        snprintf(v[i].name, sizeof v[i].name, "%s", names[i]);
    }
    free(names);
    return rc;
}
