/* face.c: face metadata as JSON (jansson) and face PNGs that carry it (see face.h). */
#include "face.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static json_t *float_array(const float *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

/* Strings must be UTF-8 (extract checks its inputs' names); a NULL here would silently drop the
 * key, so it is a bug. */
static json_t *str(const char *s)
{
    json_t *j = json_string(s);
    VS_CHECK(j != NULL);
    return j;
}

json_t *face_to_json_obj(const vs_face *f)
{
    json_t *o = json_object();
    json_object_set_new(o, "schema", json_integer(FACE_SCHEMA));
    json_object_set_new(o, "source", str(f->source));
    if (f->file[0]) json_object_set_new(o, "file", str(f->file));
    json_object_set_new(o, "frame", json_integer(f->frame));
    json_object_set_new(o, "index", json_integer(f->index));
    json_object_set_new(o, "box", float_array(f->box, 4));
    json_object_set_new(o, "score", json_real(f->score));
    json_object_set_new(o, "landmarks", float_array(f->lm, 136));
    json_t *m = json_array();
    for (int i = 0; i < 6; i++) json_array_append_new(m, json_real(f->matrix[i]));
    json_object_set_new(o, "matrix", m);
    json_object_set_new(o, "size", json_integer(f->size));
    json_object_set_new(o, "centering", str(f->centering));
    json_object_set_new(o, "pose",
                        json_pack("{s:f,s:f,s:f}", "yaw", (double)f->yaw, "pitch", (double)f->pitch,
                                  "roll", (double)f->roll));
    json_object_set_new(o, "blur", json_real(f->blur));
    if (f->has_embedding) json_object_set_new(o, "embedding", float_array(f->embedding, 128));
    return o;
}

char *face_to_json(const vs_face *f)
{
    json_t *o = face_to_json_obj(f);
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(7));
    json_decref(o);
    VS_CHECK(s != NULL);
    return s;
}

static int get_floats(float *out, int n, json_t *o, const char *key, const char *where, vs_err *e)
{
    json_t *a = json_object_get(o, key);
    if (!json_is_array(a) || (int)json_array_size(a) != n)
        return vs_fail(e, "%s: face metadata: '%s' is not an array of %d numbers", where, key, n);
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_number(v))
            return vs_fail(e, "%s: face metadata: '%s'[%d] is not a number", where, key, i);
        out[i] = (float)json_number_value(v);
    }
    return 0;
}

int face_from_json(vs_face *f, const char *text, const char *where, vs_err *e)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o) {
        memset(f, 0, sizeof *f);
        return vs_fail(e, "%s: face metadata is not valid JSON: %s", where, je.text);
    }
    int rc = face_from_json_obj(f, o, where, e);
    json_decref(o);
    return rc;
}

int face_from_json_obj(vs_face *f, json_t *o, const char *where, vs_err *e)
{
    memset(f, 0, sizeof *f);
    if (!json_is_object(o)) return vs_fail(e, "%s: face metadata is not a JSON object", where);
    int rc = -1;
    json_t *schema = json_object_get(o, "schema");
    if (!json_is_integer(schema) || json_integer_value(schema) != FACE_SCHEMA) {
        vs_fail(e, "%s: face metadata has schema %lld, this visage reads schema %d", where,
                json_is_integer(schema) ? (long long)json_integer_value(schema) : -1LL,
                FACE_SCHEMA);
        goto out;
    }
    const char *src = json_string_value(json_object_get(o, "source"));
    const char *file = json_string_value(json_object_get(o, "file"));
    const char *cen = json_string_value(json_object_get(o, "centering"));
    json_t *frame = json_object_get(o, "frame"), *idx = json_object_get(o, "index");
    json_t *size = json_object_get(o, "size");
    if (!src || !cen || !json_is_integer(frame) || !json_is_integer(idx) ||
        !json_is_integer(size)) {
        vs_fail(e, "%s: face metadata lacks source, frame, index, size or centering", where);
        goto out;
    }
    size_t flen = file ? strlen(file) : 0;
    if (strlen(src) >= sizeof f->source || flen >= sizeof f->file ||
        strlen(cen) >= sizeof f->centering) {
        vs_fail(e, "%s: face metadata: source, file or centering too long", where);
        goto out;
    }
    /* the file a face was saved as: a plain .png name in the faces folder */
    if (file &&
        (strchr(file, '/') || flen < 5 || strcasecmp(file + flen - 4, ".png") || file[0] == '.')) {
        vs_fail(e, "%s: face metadata: file '%s' is not a PNG name", where, file);
        goto out;
    }
    snprintf(f->source, sizeof f->source, "%s", src);
    if (file) snprintf(f->file, sizeof f->file, "%s", file);
    snprintf(f->centering, sizeof f->centering, "%s", cen);
    f->frame = json_integer_value(frame);
    f->index = (int)json_integer_value(idx);
    f->size = (int)json_integer_value(size);
    f->score = (float)json_number_value(json_object_get(o, "score"));
    f->blur = (float)json_number_value(json_object_get(o, "blur"));
    float mat[6];
    if (get_floats(f->box, 4, o, "box", where, e) ||
        get_floats(f->lm, 136, o, "landmarks", where, e) ||
        get_floats(mat, 6, o, "matrix", where, e))
        goto out;
    for (int i = 0; i < 6; i++) f->matrix[i] = mat[i];
    json_t *pose = json_object_get(o, "pose");
    f->yaw = (float)json_number_value(json_object_get(pose, "yaw"));
    f->pitch = (float)json_number_value(json_object_get(pose, "pitch"));
    f->roll = (float)json_number_value(json_object_get(pose, "roll"));
    if (json_object_get(o, "embedding")) {
        if (get_floats(f->embedding, 128, o, "embedding", where, e)) goto out;
        f->has_embedding = 1;
    }
    rc = 0;
out:
    return rc;
}

int face_save(const char *path, const img *aligned, const vs_face *f, int png_compression,
              vs_err *e)
{
    char *json = face_to_json(f);
    int rc = img_save_png_level(path, aligned, FACE_META_KEY, json, png_compression, e);
    free(json);
    return rc;
}

int face_load(vs_face *f, img **im, const char *path, vs_err *e)
{
    char *json = NULL;
    if (img_load_png(im, &json, path, FACE_META_KEY, e)) return -1;
    if (!json) {
        if (im) {
            img_free(*im);
            *im = NULL;
        }
        return vs_fail(e, "%s: not a face made by visage extract (no '%s' metadata in the PNG)",
                       path, FACE_META_KEY);
    }
    int rc = face_from_json(f, json, path, e);
    free(json);
    if (rc && im) {
        img_free(*im);
        *im = NULL;
    }
    return rc;
}
