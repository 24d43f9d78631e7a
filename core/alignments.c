/* alignments.c: reading, writing and pruning alignments files (see alignments.h). */
#include "alignments.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"

#define AL_SCHEMA 1

void al_init(al_file *a, const char *input)
{
    memset(a, 0, sizeof *a);
    snprintf(a->input, sizeof a->input, "%s", input);
}

void al_free(al_file *a)
{
    free(a->faces);
    memset(a, 0, sizeof *a);
}

void al_add(al_file *a, const vs_face *f)
{
    if (a->n_faces == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->faces = vs_realloc(a->faces, (size_t)a->cap * sizeof *a->faces);
    }
    a->faces[a->n_faces++] = *f;
}

void al_path(char *out, size_t n, const char *dir, const char *input)
{
    char name[1024];
    snprintf(name, sizeof name, "%s", input);
    size_t len = strlen(name);
    while (len > 1 && name[len - 1] == '/') name[--len] = 0;
    snprintf(out, n, "%s/%s.json", dir, fs_basename(name));
}

int al_save(const char *path, const al_file *a, vs_err *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "schema", json_integer(AL_SCHEMA));
    json_object_set_new(o, "input", json_string(a->input)); /* UTF-8: extract checks */
    json_object_set_new(o, "width", json_integer(a->width));
    json_object_set_new(o, "height", json_integer(a->height));
    json_object_set_new(o, "fps", json_real(a->fps));
    json_object_set_new(o, "frames_read", json_integer(a->frames_read));
    json_object_set_new(o, "complete", json_boolean(a->complete));
    json_object_set_new(o, "size", json_integer(a->size));
    json_object_set_new(o, "centering", json_string(a->centering));
    json_object_set_new(o, "faces_dir", json_string(a->faces_dir));
    json_t *frames = json_object();
    for (int i = 0; i < a->n_faces; i++) {
        const vs_face *f = &a->faces[i];
        char key[1100];
        /* a folder input has several sources; key by source file and frame */
        if (strcmp(f->source, a->input))
            snprintf(key, sizeof key, "%s:%lld", fs_basename(f->source), (long long)f->frame);
        else
            snprintf(key, sizeof key, "%lld", (long long)f->frame);
        json_t *list = json_object_get(frames, key);
        if (!list) {
            list = json_array();
            json_object_set_new(frames, key, list);
        }
        json_array_append_new(list, face_to_json_obj(f));
    }
    json_object_set_new(o, "frames", frames);

    fs_atomic w;
    if (fs_atomic_open(&w, path, e)) {
        json_decref(o);
        return -1;
    }
    /* compact: an hour of video is some 100,000 faces */
    int bad = json_dumpf(o, w.f, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
    json_decref(o);
    fputc('\n', w.f);
    if (bad && !fs_atomic_failed(&w)) {
        fs_atomic_abort(&w);
        return vs_fail(e, "%s: could not write the alignments file", path);
    }
    return fs_atomic_commit(&w, e); /* names the cause of a failed write (a full disk) */
}

int al_load(al_file *a, const char *path, vs_err *e)
{
    json_error_t je;
    json_t *o = json_load_file(path, 0, &je);
    if (!o) {
        struct stat st;
        if (stat(path, &st)) return vs_fail(e, "%s: no such alignments file", path);
        return vs_fail(e, "%s:%d: alignments file is not valid JSON: %s", path, je.line, je.text);
    }
    int rc = -1;
    json_t *schema = json_object_get(o, "schema");
    const char *input = json_string_value(json_object_get(o, "input"));
    json_t *frames = json_object_get(o, "frames");
    if (!json_is_integer(schema) || json_integer_value(schema) != AL_SCHEMA || !input ||
        !json_is_object(frames)) {
        vs_fail(e, "%s: not a visage alignments file (schema %d)", path, AL_SCHEMA);
        goto out;
    }
    al_init(a, input);
    a->width = (int)json_integer_value(json_object_get(o, "width"));
    a->height = (int)json_integer_value(json_object_get(o, "height"));
    a->fps = json_number_value(json_object_get(o, "fps"));
    a->frames_read = json_integer_value(json_object_get(o, "frames_read"));
    a->complete = json_is_true(json_object_get(o, "complete"));
    a->size = (int)json_integer_value(json_object_get(o, "size"));
    const char *cen = json_string_value(json_object_get(o, "centering"));
    snprintf(a->centering, sizeof a->centering, "%s", cen ? cen : "");
    const char *fdir = json_string_value(json_object_get(o, "faces_dir"));
    snprintf(a->faces_dir, sizeof a->faces_dir, "%s", fdir ? fdir : "");
    const char *key;
    json_t *list;
    json_object_foreach(frames, key, list)
    {
        size_t i;
        json_t *fo;
        json_array_foreach(list, i, fo)
        {
            vs_face f;
            char where[1200];
            snprintf(where, sizeof where, "%s: frame %s", path, key);
            if (face_from_json_obj(&f, fo, where, e)) {
                al_free(a);
                goto out;
            }
            al_add(a, &f);
        }
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

int al_same_face(const vs_face *x, const vs_face *y)
{
    return x->frame == y->frame && x->index == y->index && !strcmp(x->source, y->source);
}

int al_belongs_to(const al_file *a, const char *faces_dir, const vs_face *present, int n_present)
{
    char real[PATH_MAX];
    if (a->faces_dir[0] && realpath(faces_dir, real) && !strcmp(real, a->faces_dir)) return 1;
    if (a->faces_dir[0] && fs_is_dir(a->faces_dir)) return 0; /* another folder that still exists */
    for (int k = 0; k < n_present; k++)
        for (int i = 0; i < a->n_faces; i++)
            if (!strcmp(present[k].source, a->faces[i].source)) return 1;
    return 0;
}

static int face_key_cmp(const void *pa, const void *pb)
{
    const vs_face *x = *(const vs_face *const *)pa, *y = *(const vs_face *const *)pb;
    if (x->frame != y->frame) return x->frame < y->frame ? -1 : 1;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    return strcmp(x->source, y->source);
}

int al_prune(al_file *a, const vs_face *present, int n_present)
{
    /* sorted pointers to the present faces, so a 100,000-face file prunes in n log n */
    const vs_face **keys = vs_calloc((size_t)n_present + 1, sizeof *keys);
    for (int k = 0; k < n_present; k++) keys[k] = &present[k];
    qsort(keys, (size_t)n_present, sizeof *keys, face_key_cmp);
    int kept = 0, dropped = 0;
    for (int i = 0; i < a->n_faces; i++) {
        const vs_face *f = &a->faces[i];
        if (bsearch(&f, keys, (size_t)n_present, sizeof *keys, face_key_cmp))
            a->faces[kept++] = a->faces[i];
        else
            dropped++;
    }
    free(keys);
    a->n_faces = kept;
    return dropped;
}
