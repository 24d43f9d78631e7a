/* train.c: the training job. State that makes a run resumable exactly is all in the checkpoint:
 * parameters, Adam moments and step, iteration, seed and both data cursors; every random draw of
 * an iteration comes from (seed, iteration, side, image), so a resumed run repeats the batches of
 * an uninterrupted one bit for bit. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "fsutil.h"
#include "image.h"
#include "model_state.h"
#include "step.h"
#include "train.h"

#define CKPT_FORMAT "visage-model-1"
#define NAN_WINDOW_MIN                                                                             \
    100 /* a second non-finite step this soon after a rollback stops training                      \
         */
#define PREVIEW_ROWS 4

_Static_assert(FACESET_MASKS == NN_AUG_MASKS, "the backend augments the face set's masks");
_Static_assert(sizeof(nn_aug_image) % sizeof(float) == 0, "transforms travel as floats");

typedef struct trainer {
    const train_opts *o;
    job *j;
    const nn_backend *be;
    model *m;
    faceset fs[2];
    faceset_cursor cur[2];
    uint64_t seed;
    long iteration;
    double trained_before; /* seconds of training before this run */
    int n, S;              /* batch per side, model size */
    float *in_host;        /* [2n, S, S, 3] augmented inputs, A then B */
    float *tgt_host[2];    /* [n, S, S, 3] */
    float *mask_host[2][3];
    step step; /* the batch in backend memory and the step's state */
    /* augmentation on the device: the crops and masks there (both whole face sets, or with
     * `stream` only each batch's faces, copied in per iteration through stage), and the batch's
     * transforms (host and backend copies); NULL when the CPU augments */
    uint8_t *fs_dev[2][2];
    nn_aug_image *aug_host, *aug_dev;
    int stream;
    uint8_t *stage[2]; /* [n, P, P, 3] crops, then [n, P, P, masks] */
    char *log;         /* loss rows since the last save */
    size_t log_len, log_cap;
    long rollback_at; /* iteration of the last rollback, -1 none */
    /* an fp16 model's loss scale and good steps since it last changed, from the checkpoint
     * (0: none saved), so that a resumed run goes on where it was instead of finding the scale
     * again from STEP_SCALE_INIT */
    double saved_scale;
    long saved_good;
    int nan_used[4];
    char ckpt[4096];
    train_status st;
    double t0;
} trainer;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void train_ckpt_path(char *buf, size_t n, const char *model_dir)
{
    snprintf(buf, n, "%s/%s", model_dir, TRAIN_CKPT_NAME);
}

int train_opts_from_config(train_opts *o, const vs_config *c, vs_err *e)
{
    memset(o, 0, sizeof *o);
    o->arch = c->model;
    mdl_options_default(&o->mopt);
    o->mopt.lowmem = c->lowmem;
    o->mopt.learn_mask = c->learn_mask;
    o->mopt.shrink = c->shrink;
    o->mopt.coverage = c->coverage / 100.0f;
    if (align_centering_parse(&o->mopt.centering, c->train_centering))
        return vs_fail(e, "unknown centering '%s'", c->train_centering);
    o->batch = c->batch;
    o->iterations = c->iterations;
    o->save_every = c->save_every;
    o->snapshot_every = c->snapshot_every;
    o->keep_backups = c->keep_backups;
    o->lr = c->learning_rate;
    o->eps = c->epsilon;
    loss_cfg *l = &o->loss;
    if (loss_kind_parse(&l->kind[0], c->loss)) return vs_fail(e, "unknown loss '%s'", c->loss);
    l->weight[0] = 1.0f;
    l->n_funcs = 1;
    if (strcmp(c->loss2, "none") != 0 && c->loss2_weight > 0) {
        if (loss_kind_parse(&l->kind[1], c->loss2))
            return vs_fail(e, "unknown loss '%s'", c->loss2);
        l->weight[1] = c->loss2_weight / 100.0f;
        l->n_funcs = 2;
    }
    l->penalized_mask = c->penalized_mask_loss;
    l->eye = c->eye_multiplier;
    l->mouth = c->mouth_multiplier;
    augment_config_default(&o->aug);
    o->aug.rotation_deg = c->rotation;
    o->aug.zoom = c->zoom / 100.0f;
    o->aug.shift = c->shift / 100.0f;
    o->aug.flip_chance = c->flip / 100.0f;
    o->aug.lab_lightness = c->color_lightness / 100.0f;
    o->aug.lab_ab = c->color_ab / 100.0f;
    if (!c->warp) o->aug.warp_sigma = 0.0f;
    return 0;
}

/* ---- events and status --------------------------------------------------------------------- */

typedef enum event_level { EVENT_INFO, EVENT_WARNING } event_level;

static void event(trainer *t, event_level lv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void event(trainer *t, event_level lv, const char *fmt, ...)
{
    int slot = (int)(t->st.events % TRAIN_EVENTS);
    t->st.event_warning[slot] = lv == EVENT_WARNING;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->st.event[slot], sizeof t->st.event[slot], fmt, ap);
    va_end(ap);
    t->st.events++;
}

/* ---- checkpoints --------------------------------------------------------------------------- */

typedef struct kv_buf {
    ckpt_kv kv[40];
    char val[40][96];
    int n;
} kv_buf;

static void kv_add(kv_buf *b, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void kv_add(kv_buf *b, const char *key, const char *fmt, ...)
{
    VS_CHECK(b->n < 40);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->val[b->n], sizeof b->val[b->n], fmt, ap);
    va_end(ap);
    b->kv[b->n].key = key;
    b->kv[b->n].val = b->val[b->n];
    b->n++;
}

static int host_is_backend(const nn_backend *be)
{
    return be == nn_cpu_backend();
}

static int save(trainer *t, vs_err *e)
{
    const model *m = t->m;
    t->st.phase = TRAIN_SAVING;
    job_publish(t->j, &t->st);
    double ts = now_s();
    char stamp[32];
    time_t wall = time(NULL);
    struct tm tmv;
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&wall, &tmv));
    kv_buf kv = {0};
    kv_add(&kv, "format", CKPT_FORMAT);
    kv_add(&kv, "model", "%s", m->arch->name);
    kv_add(&kv, "input_size", "%d", m->arch->input_size);
    kv_add(&kv, "output_size", "%d", m->arch->output_size);
    kv_add(&kv, "lowmem", "%d", m->opt.lowmem);
    kv_add(&kv, "learn_mask", "%d", m->opt.learn_mask);
    kv_add(&kv, "shrink", "%d", m->opt.shrink);
    kv_add(&kv, "coverage", "%.9g", (double)m->opt.coverage);
    kv_add(&kv, "centering", "%s", align_centering_name(m->opt.centering));
    kv_add(&kv, "params", "%zu", model_param_count(m));
    kv_add(&kv, "iteration", "%ld", t->iteration);
    kv_add(&kv, "adam_t", "%ld", m->adam_t);
    kv_add(&kv, "seed", "%" PRIu64, t->seed);
    kv_add(&kv, "cursor_a", "%" PRId64 ":%" PRId64, t->cur[0].epoch, t->cur[0].pos);
    kv_add(&kv, "cursor_b", "%" PRId64 ":%" PRId64, t->cur[1].epoch, t->cur[1].pos);
    kv_add(&kv, "faces_a", "%d", t->fs[0].n);
    kv_add(&kv, "faces_b", "%d", t->fs[1].n);
    kv_add(&kv, "batch", "%d", t->n);
    kv_add(&kv, "learning_rate", "%.9g", (double)t->o->lr);
    kv_add(&kv, "epsilon", "%.9g", (double)t->o->eps);
    kv_add(&kv, "loss_a", "%.9g", t->st.loss[0]);
    kv_add(&kv, "loss_b", "%.9g", t->st.loss[1]);
    kv_add(&kv, "trained_seconds", "%.1f", t->trained_before + (now_s() - t->t0));
    kv_add(&kv, "saved", "%s", stamp);
    kv_add(&kv, "backend", "%s", t->be->name);
    kv_add(&kv, "visage_version", "%s", VISAGE_VERSION);
    if (t->step.scaled) {
        kv_add(&kv, "loss_scale", "%.17g", t->step.scale);
        kv_add(&kv, "loss_scale_good", "%ld", t->step.good);
    }

    ckpt_tensor *tens;
    char(*names)[MDL_STATE_NAME];
    float *host;
    int nt = model_state_tensors(&tens, &names, &host, m);
    ckpt_snapshot snap =
        t->o->snapshot_every > 0 && t->iteration > 0 && t->iteration % t->o->snapshot_every == 0
            ? CKPT_SNAPSHOT
            : CKPT_NO_SNAPSHOT;
    int rc = ckpt_save(t->o->model_dir, t->iteration, kv.kv, kv.n, tens, nt, t->o->keep_backups,
                       snap, e);
    free(names);
    free(tens);
    free(host);
    if (rc) return -1;

    /* the loss rows of the iterations this save covers */
    if (t->log_len) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", t->o->model_dir, TRAIN_LOG_NAME);
        int fresh = !fs_exists(path);
        FILE *f = fopen(path, "a");
        if (!f) return vs_fail(e, "%s: %s", path, fs_strerror(errno));
        if (fresh) fputs("iteration\tloss_a\tloss_b\n", f);
        fwrite(t->log, 1, t->log_len, f);
        if (fclose(f)) return vs_fail(e, "%s: %s", path, fs_strerror(errno));
        t->log_len = 0;
    }
    t->st.saved_iteration = t->iteration;
    t->st.saves++;
    event(t, EVENT_INFO, "saved iteration %ld in %.1f s", t->iteration, now_s() - ts);
    t->st.phase = TRAIN_RUNNING;
    return 0;
}

static int parse_long(long *out, const ckpt *c, const char *key)
{
    const char *s = ckpt_get(c, key);
    if (!s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

static int parse_cursor(faceset_cursor *cur, const ckpt *c, const char *key)
{
    const char *s = ckpt_get(c, key);
    int64_t ep, pos;
    if (!s || sscanf(s, "%" SCNd64 ":%" SCNd64, &ep, &pos) != 2 || ep < 0 || pos < 0) return -1;
    cur->epoch = ep, cur->pos = pos;
    return 0;
}

/* An fp16 step takes the loss scale the checkpoint had (once the step exists). */
static void restore_scale(trainer *t)
{
    if (!t->step.scaled || !t->saved_scale) return;
    step_set_scale(&t->step, t->saved_scale);
    t->step.good = t->saved_good;
}

/* Loads the state in the checkpoint at path into t->m (already built to match). */
static int load_state(trainer *t, const ckpt *c, const char *path, vs_err *e)
{
    model *m = t->m;
    long it, adam_t;
    if (parse_long(&it, c, "iteration") || parse_long(&adam_t, c, "adam_t") || it < 0 ||
        adam_t < 0 || parse_cursor(&t->cur[0], c, "cursor_a") ||
        parse_cursor(&t->cur[1], c, "cursor_b") || !ckpt_get(c, "seed"))
        return vs_fail(e,
                       "%s: the header lacks the training state (iteration, adam_t, seed, "
                       "cursors)",
                       path);
    t->seed = strtoull(ckpt_get(c, "seed"), NULL, 10);
    const char *tr = ckpt_get(c, "trained_seconds");
    t->trained_before = tr ? atof(tr) : 0.0;
    if (model_state_read(m, c, e)) return -1;
    t->iteration = it;
    m->adam_t = adam_t;
    /* fp16's loss scale: a power of two from 1 up; anything else (or a model saved in another
     * precision) leaves the step's own */
    const char *ls = ckpt_get(c, "loss_scale"), *lg = ckpt_get(c, "loss_scale_good");
    double scale = ls ? strtod(ls, NULL) : 0;
    int ex;
    t->saved_scale = scale >= 1 && scale <= STEP_SCALE_MAX && frexp(scale, &ex) == 0.5 ? scale : 0;
    t->saved_good = lg && t->saved_scale ? strtol(lg, NULL, 10) : 0;
    if (t->saved_good < 0 || t->saved_good >= STEP_SCALE_GROWTH) t->saved_good = 0;
    restore_scale(t);
    return 0;
}

/* The model options a checkpoint was created with. */
static int ckpt_options(mdl_options *o, const char **arch, const ckpt *c, const char *path,
                        vs_err *e)
{
    mdl_options_default(o);
    long lowmem, mask, shrink;
    const char *cov = ckpt_get(c, "coverage"), *cen = ckpt_get(c, "centering");
    *arch = ckpt_get(c, "model");
    const char *fmt = ckpt_get(c, "format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0)
        return vs_fail(e, "%s: not a visage face-swap model (format '%s', expected '%s')", path,
                       fmt ? fmt : "none", CKPT_FORMAT);
    if (!*arch || parse_long(&lowmem, c, "lowmem") || parse_long(&mask, c, "learn_mask") ||
        parse_long(&shrink, c, "shrink") || !cov || !cen ||
        align_centering_parse(&o->centering, cen))
        return vs_fail(e, "%s: the header lacks the model's options", path);
    if (!model_arch_find(*arch))
        return vs_fail(e, "%s: holds a '%s' model, which this version of visage does not know",
                       path, *arch);
    o->lowmem = (int)lowmem, o->learn_mask = (int)mask, o->shrink = (int)shrink;
    o->coverage = (float)atof(cov);
    return 0;
}

int train_load_model(model **out, long *iteration, const char *model_dir, const nn_backend *be,
                     vs_err *e)
{
    *out = NULL;
    char path[4200];
    train_ckpt_path(path, sizeof path, model_dir);
    if (!fs_exists(path))
        return vs_fail(e, "%s: no trained model there (no %s): train one with `visage train`",
                       model_dir, TRAIN_CKPT_NAME);
    ckpt *c = ckpt_open(path, e);
    if (!c) return -1;
    mdl_options mo;
    const char *arch;
    long it = 0;
    int rc = ckpt_options(&mo, &arch, c, path, e);
    if (!rc && parse_long(&it, c, "iteration"))
        rc = vs_fail(e, "%s: the header lacks the iteration", path);
    if (!rc) rc = model_create(out, arch, &mo, be, 1, e);
    if (!rc) rc = model_state_read(*out, c, e);
    ckpt_close(c);
    if (rc) {
        model_free(*out);
        *out = NULL;
        return -1;
    }
    if (iteration) *iteration = it;
    return 0;
}

static double gib(size_t bytes)
{
    return (double)bytes / (1u << 30);
}

/* On the GPU: says how much memory the model and batch will take, and refuses, naming the
 * largest batch that fits, when that is more than the card has free, rather than failing
 * mid-run. */
static int check_memory(trainer *t, const char *arch, const mdl_options *mo, vs_err *e)
{
    nn_gpu_info gi;
    const mdl_arch *a = model_arch_find(arch);
    if (!a || host_is_backend(t->be) || nn_cuda_device_info(&gi, nn_cuda_device())) return 0;
    mdl_plan p;
    if (model_plan_check(&p, a, mo, t->n, gi.mem_free, gi.mem_total, gi.name, e)) return -1;
    event(t, EVENT_INFO,
          "GPU memory: %.2f GiB planned (weights and optimiser %.2f, batch %.2f, scratch %.2f) of "
          "%.1f GiB free on %s",
          gib(p.total), gib(p.params), gib(p.batch), gib(p.scratch), gib(gi.mem_free), gi.name);
    return 0;
}

/* Opens the model folder: resumes its checkpoint, or creates a new model where there is none.
 * A damaged checkpoint is never replaced: the message names it and the newest intact backup. */
static int open_model(trainer *t, vs_err *e)
{
    const train_opts *o = t->o;
    train_ckpt_path(t->ckpt, sizeof t->ckpt, o->model_dir);
    if (fs_exists(t->ckpt)) {
        ckpt *c = ckpt_open(t->ckpt, e);
        if (!c) {
            char *bk = NULL;
            char why[1024];
            snprintf(why, sizeof why, "%s", e->msg);
            if (ckpt_newest_intact_backup(&bk, o->model_dir) == 0) {
                vs_fail(e,
                        "%s; it has been left as it is. The newest intact backup is %s: copy it "
                        "over %s to resume from it",
                        why, bk, t->ckpt);
                free(bk);
            } else {
                vs_fail(
                    e, "%s; it has been left as it is, and there is no intact backup in %s/backups",
                    why, o->model_dir);
            }
            return -1;
        }
        mdl_options mo;
        const char *arch;
        int rc = ckpt_options(&mo, &arch, c, t->ckpt, e);
        if (!rc && o->arch_given && strcmp(arch, o->arch) != 0)
            rc = vs_fail(e,
                         "%s holds a '%s' model; --model %s does not match (a model's "
                         "architecture is fixed when it is created: use another folder for a new "
                         "model)",
                         t->ckpt, arch, o->arch);
        if (!rc) rc = check_memory(t, arch, &mo, e);
        if (!rc) rc = model_create(&t->m, arch, &mo, t->be, 1, e);
        if (!rc) rc = load_state(t, c, t->ckpt, e);
        ckpt_close(c);
        if (rc) return -1;
        event(t, EVENT_INFO, "resumed %s at iteration %ld", t->ckpt, t->iteration);
        return 0;
    }
    char bdir[4200];
    snprintf(bdir, sizeof bdir, "%s/backups", o->model_dir);
    char *bk = NULL;
    if (ckpt_newest_intact_backup(&bk, o->model_dir) == 0) {
        vs_fail(e,
                "%s is missing but %s holds earlier saves: copy the newest, %s, to %s to resume "
                "from it, or use another folder for a new model",
                t->ckpt, bdir, bk, t->ckpt);
        free(bk);
        return -1;
    }
    if (check_memory(t, o->arch, &o->mopt, e) || fs_mkdirs(o->model_dir, e)) return -1;
    t->seed = o->seed ? o->seed : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    if (model_create(&t->m, o->arch, &o->mopt, t->be, t->seed, e)) return -1;
    t->iteration = 0;
    event(t, EVENT_INFO, "created a new %s model in %s", o->arch, o->model_dir);
    return 0;
}

/* ---- the preview grid ---------------------------------------------------------------------- */

/* model/preview.png: one row per sample, columns A, A->A, A->B | B, B->B, B->A (Faceswap's
 * layout), from the unwarped targets of the last batch. */
static int write_preview(trainer *t, vs_err *e)
{
    model *m = t->m;
    const int S = t->S, rows = t->n < PREVIEW_ROWS ? t->n : PREVIEW_ROWS;
    img *grid = img_new(6 * S, rows * S, 3);
    nn_tensor src = nn_tensor_new(rows, S, S, 3), out = nn_tensor_new(rows, S, S, 3);
    for (int s = 0; s < 2; s++) {
        if (t->aug_dev) /* the targets were made on the GPU */
            t->be->copy_out(t->tgt_host[s], t->step.tgt[s].d, nn_numel(&src));
        memcpy(src.d, t->tgt_host[s], nn_numel(&src) * sizeof(float));
        for (int k = 0; k < 3; k++) {
            const float *pix = src.d;
            if (k > 0) {
                int side = k == 1 ? s : 1 - s;
                nn_tensor x = src;
                nn_tensor dev = {0};
                if (!host_is_backend(t->be)) {
                    dev = (nn_tensor){t->be->alloc(nn_numel(&src)), rows, S, S, 3, NN_F32};
                    t->be->copy_in(dev.d, src.d, nn_numel(&src));
                    x = dev;
                }
                model_infer(m, &out, NULL, &x, side);
                if (dev.d) t->be->free(dev.d);
                pix = out.d;
            }
            for (int r = 0; r < rows; r++)
                for (int y = 0; y < S; y++)
                    for (int xx = 0; xx < S * 3; xx++) {
                        float v = pix[((size_t)r * S + y) * S * 3 + xx] * 255.0f + 0.5f;
                        grid->px[((size_t)(r * S + y) * grid->w + (size_t)(s * 3 + k) * S) * 3 +
                                 xx] = (uint8_t)(v < 0     ? 0
                                                 : v > 255 ? 255
                                                           : v);
                    }
        }
    }
    nn_tensor_free(&src);
    nn_tensor_free(&out);
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", t->o->model_dir, TRAIN_PREVIEW_NAME);
    int rc = img_save_png(path, grid, NULL, NULL, e);
    img_free(grid);
    if (!rc) t->st.preview_serial++;
    return rc;
}

/* ---- one iteration ------------------------------------------------------------------------- */

static void alloc_batch(trainer *t, const nn_adam *h)
{
    const size_t per = (size_t)t->S * t->S * 3, px = (size_t)t->S * t->S;
    const int n = t->n;
    t->in_host = vs_malloc(2 * n * per * sizeof(float));
    for (int s = 0; s < 2; s++) {
        t->tgt_host[s] = vs_malloc(n * per * sizeof(float));
        for (int k = 0; k < 3; k++) t->mask_host[s][k] = vs_malloc(n * px * sizeof(float));
    }
    step_init(&t->step, t->m, n, &t->o->loss, h);
    restore_scale(t);
}

/* On a device backend, where both face sets fit beside the model (on a GPU: in its free memory
 * less a reserve), they go there and the step augments its own batch; otherwise the CPU
 * augments and the batch is copied in. */
static void setup_gpu_augment(trainer *t)
{
    if (host_is_backend(t->be) || !t->be->augment) return;
    const size_t P = (size_t)t->fs[0].size;
    size_t bytes = 0;
    for (int s = 0; s < 2; s++) bytes += (size_t)t->fs[s].n * P * P * (3 + FACESET_MASKS);
    nn_gpu_info gi;
    t->stream =
        t->o->stream_faces || (nn_cuda_device_info(&gi, nn_cuda_device()) == 0 &&
                               bytes + gi.mem_total / 32 + ((size_t)512 << 20) > gi.mem_free);
    /* streaming: room for one batch's crops and masks a side, in whole floats */
    const size_t one = P * P * (3 + FACESET_MASKS);
    for (int s = 0; s < 2 && t->stream; s++) {
        t->stage[s] = vs_malloc((size_t)t->n * one + 4);
        float *dev = t->be->alloc(((size_t)t->n * one + 3) / 4);
        t->fs_dev[s][0] = (uint8_t *)dev;
        t->fs_dev[s][1] = (uint8_t *)dev + (size_t)t->n * P * P * 3;
    }
    for (int s = 0; s < 2 && !t->stream; s++) {
        const uint8_t *src[2] = {t->fs[s].px, t->fs[s].mask};
        size_t len[2] = {(size_t)t->fs[s].n * P * P * 3,
                         (size_t)t->fs[s].n * P * P * FACESET_MASKS};
        for (int k = 0; k < 2; k++) {
            float *dev = t->be->alloc(nn_byte_words(len[k]));
            nn_copy_in_bytes(t->be, dev, src[k], len[k]);
            t->fs_dev[s][k] = (uint8_t *)dev;
        }
    }
    const size_t img_words = 2 * (size_t)t->n * sizeof(nn_aug_image) / sizeof(float);
    t->aug_host = vs_calloc(2 * (size_t)t->n, sizeof(nn_aug_image));
    t->aug_dev = (nn_aug_image *)t->be->alloc(img_words);
    const uint8_t *px[2] = {t->fs_dev[0][0], t->fs_dev[1][0]};
    const uint8_t *mk[2] = {t->fs_dev[0][1], t->fs_dev[1][1]};
    step_set_augment(&t->step, px, mk, (int)P, t->aug_dev);
    if (t->stream)
        event(t, EVENT_INFO,
              "augmenting on the device (%s); the face sets (%.2f GiB) do not fit there, so each "
              "batch's faces are copied in",
              t->be->name, gib(bytes));
    else
        event(t, EVENT_INFO, "augmenting on the device (%s; the face sets, %.2f GiB, are there)",
              t->be->name, gib(bytes));
}

static void free_batch(trainer *t)
{
    for (int s = 0; s < 2; s++) {
        for (int k = 0; k < 2 - t->stream; k++) /* streamed: one buffer holds both */
            if (t->fs_dev[s][k]) t->be->free((float *)t->fs_dev[s][k]);
        free(t->stage[s]);
    }
    if (t->aug_dev) t->be->free((float *)t->aug_dev);
    free(t->aug_host);
    free(t->in_host);
    for (int s = 0; s < 2; s++) {
        free(t->tgt_host[s]);
        for (int k = 0; k < 3; k++) free(t->mask_host[s][k]);
    }
    step_free(&t->step);
}

/* Augments the next batch of both sides at the current iteration and moves it to the backend. */
static void next_batch(trainer *t)
{
    const int n = t->n, S = t->S;
    const size_t per = (size_t)S * S * 3, px = (size_t)S * S;
    int *idx = vs_malloc(sizeof(int) * n);
    if (t->aug_dev) { /* the step augments: only the transforms go over */
        for (int s = 0; s < 2; s++) {
            faceset_cursor_next(idx, &t->cur[s], t->fs[s].n, n, t->seed ^ (uint64_t)(s + 1));
            nn_aug_image *ims = t->aug_host + (size_t)s * n;
            augment_draw_batch(ims, &t->fs[s], idx, n, &t->o->aug, t->seed, t->iteration, s);
            if (!t->stream) continue;
            /* the batch's faces into the device's slots 0 .. n-1 */
            const faceset *fs = &t->fs[s];
            const size_t P = (size_t)fs->size, ci = P * P * 3, cm = P * P * FACESET_MASKS;
            for (int b = 0; b < n; b++) {
                memcpy(t->stage[s] + b * ci, fs->px + (size_t)ims[b].face * ci, ci);
                memcpy(t->stage[s] + n * ci + b * cm, fs->mask + (size_t)ims[b].face * cm, cm);
                ims[b].face = b;
            }
            t->be->copy_in((float *)t->fs_dev[s][0], (const float *)(const void *)t->stage[s],
                           ((size_t)n * (ci + cm) + 3) / 4);
        }
        t->be->copy_in((float *)t->aug_dev, (const float *)t->aug_host,
                       2 * (size_t)n * sizeof(nn_aug_image) / sizeof(float));
        free(idx);
        return;
    }
    for (int s = 0; s < 2; s++) {
        faceset_cursor_next(idx, &t->cur[s], t->fs[s].n, n, t->seed ^ (uint64_t)(s + 1));
        augment_out out = {
            .input = t->in_host + s * n * per,
            .target = t->tgt_host[s],
            .mask_face = t->mask_host[s][0],
            .mask_eye = t->mask_host[s][1],
            .mask_mouth = t->mask_host[s][2],
        };
        augment_batch(&out, &t->fs[s], idx, n, &t->o->aug, t->seed, t->iteration, s);
        t->be->copy_in(t->step.tgt[s].d, t->tgt_host[s], n * per);
        for (int k = 0; k < 3; k++) t->be->copy_in(t->step.mask[s][k], t->mask_host[s][k], n * px);
    }
    t->be->copy_in(t->step.x.d, t->in_host, 2 * n * per);
    free(idx);
}

/* One step on the batch in place (step.c); the tests' hook poisons a gradient at the listed
 * iterations. Returns 1 when the step was finite and applied. */
static int train_step(trainer *t, double loss[2])
{
    int poison = 0;
    for (int i = 0; i < t->o->n_nan_at; i++)
        if (!t->nan_used[i] && t->o->nan_at[i] == t->iteration + 1) t->nan_used[i] = poison = 1;
    return step_run(&t->step, loss, STEP_AUTO, poison);
}

/* Back to the last checkpoint after a non-finite step; stops (-1) if that checkpoint is the one
 * a recent rollback already went back to. */
static int rollback(trainer *t, const double loss[2], vs_err *e)
{
    long bad = t->iteration + 1;
    if (t->rollback_at >= 0 && bad - t->rollback_at <= NAN_WINDOW_MIN + t->o->save_every)
        return vs_fail(e,
                       "training diverged: non-finite %s at iteration %ld, again soon after the "
                       "rollback at iteration %ld. %s is intact (iteration %ld); try a lower "
                       "learning_rate",
                       isfinite(loss[0]) && isfinite(loss[1]) ? "gradient" : "loss", bad,
                       t->rollback_at, t->ckpt, t->st.saved_iteration);
    ckpt *c = ckpt_open(t->ckpt, e);
    if (!c) return vs_failctx(e, "rolling back after a non-finite gradient at iteration %ld", bad);
    int rc = load_state(t, c, t->ckpt, e);
    ckpt_close(c);
    if (rc) return -1;
    t->rollback_at = bad;
    t->log_len = 0; /* rows past the checkpoint are replayed */
    event(t, EVENT_WARNING, "non-finite %s at iteration %ld: rolled back to iteration %ld",
          isfinite(loss[0]) && isfinite(loss[1]) ? "gradient" : "loss", bad, t->iteration);
    return 0;
}

static void log_row(trainer *t, const double loss[2])
{
    if (t->log_len + 96 > t->log_cap) {
        t->log_cap = t->log_cap ? 2 * t->log_cap : 4096;
        t->log = vs_realloc(t->log, t->log_cap);
    }
    t->log_len += (size_t)snprintf(t->log + t->log_len, t->log_cap - t->log_len,
                                   "%ld\t%.7g\t%.7g\n", t->iteration, loss[0], loss[1]);
}

static int run(trainer *t, vs_err *e)
{
    const train_opts *o = t->o;
    t->st.phase = TRAIN_LOADING;
    job_publish(t->j, &t->st);
    if (open_model(t, e)) return -1;
    model *m = t->m;
    snprintf(t->st.arch, sizeof t->st.arch, "%s", m->arch->name);
    t->st.params = model_param_count(m);
    t->S = m->arch->input_size;
    VS_CHECK(m->arch->output_size == t->S); /* targets are taken at the input size */
    faceset_spec spec = {
        .model_size = t->S, .centering = m->opt.centering, .coverage = m->opt.coverage};
    const char *dirs[2] = {o->dir_a, o->dir_b};
    for (int s = 0; s < 2; s++) {
        if (job_should_stop(t->j)) return 0;
        if (faceset_load(&t->fs[s], dirs[s], &spec, e)) return -1;
        t->st.faces[s] = t->fs[s].n;
    }
    nn_adam h = {.lr = o->lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = o->eps};
    alloc_batch(t, &h);
    setup_gpu_augment(t);
    t->st.start_iteration = t->iteration;
    t->st.iteration = t->iteration;
    t->st.target = o->iterations;
    t->st.saved_iteration = -1;
    if (!fs_exists(t->ckpt) && save(t, e)) return -1; /* iteration 0: the state to roll back to */
    t->st.phase = TRAIN_RUNNING;
    double rate_t = now_s();
    long rate_it = t->iteration;
    for (;;) {
        int stop = job_publish(t->j, &t->st);
        if (stop || (o->iterations > 0 && t->iteration >= o->iterations)) break;
        if (job_take_save(t->j) && save(t, e)) return -1;
        next_batch(t);
        double loss[2];
        if (!train_step(t, loss)) {
            if (rollback(t, loss, e)) return -1;
            continue;
        }
        t->iteration++;
        log_row(t, loss);
        t->st.iteration = t->iteration;
        t->st.loss[0] = loss[0], t->st.loss[1] = loss[1];
        double tn = now_s();
        t->st.elapsed = tn - t->t0;
        t->st.trained = t->trained_before + t->st.elapsed;
        if (tn - rate_t >= 2.0 || t->iteration - rate_it >= 100 || t->st.it_s == 0) {
            if (t->iteration > rate_it && tn > rate_t) {
                t->st.it_s = (double)(t->iteration - rate_it) / (tn - rate_t);
                t->st.egs_s = 2.0 * t->n * t->st.it_s;
            }
            rate_t = tn, rate_it = t->iteration;
            if (!host_is_backend(t->be)) {
                t->st.gpu_mem = nn_cuda_mem_used();
                t->st.gpu_mem_peak = nn_cuda_mem_peak();
                t->st.gpu_util = nn_cuda_utilization();
            }
        }
        if (t->iteration % o->save_every == 0) {
            if (save(t, e) || write_preview(t, e)) return -1;
        }
    }
    if (t->st.saved_iteration != t->iteration) {
        if (save(t, e) || write_preview(t, e)) return -1;
    }
    t->st.phase = TRAIN_FINISHED;
    job_publish(t->j, &t->st);
    return 0;
}

int train_run(job *j, void *arg, vs_err *e)
{
    const train_opts *o = arg;
    VS_CHECK(o->batch >= 1 && o->save_every >= 1 && o->be);
    trainer t = {.o = o, .j = j, .be = o->be, .n = o->batch, .rollback_at = -1, .t0 = now_s()};
    t.st.batch = o->batch;
    int rc = run(&t, e);
    free_batch(&t);
    faceset_free(&t.fs[0]);
    faceset_free(&t.fs[1]);
    model_free(t.m);
    free(t.log);
    return rc;
}
