/* identity.c: face-api's FaceRecognitionNet (face_recognition_model), the dlib ResNet-34 port:
 * the crop of the landmark-aligned box (FaceLandmarks.alignDlib) padded to a centred square,
 * resized to 150x150, mean-RGB subtracted and divided by 255, a 7x7/2 conv, a 3x3/2 max pool,
 * 14 residual layers (scale layers folded into the conv weights at load), a global average and a
 * 256x128 matrix: the 128-D descriptor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenet.h"
#include "facenet_input.h"

#define ID_SIZE 150
#define ID_LAYERS 14
#define ID_GPU_BATCH 64 /* faces a pass takes on a GPU */
#define ID_CPU_BATCH 8

typedef struct rconv {
    const float *w, *b; /* conv weights and bias with the scale layer folded in */
    nn_conv_desc d;
} rconv;

/* residual (3x3 convs, y = relu(conv2(relu(conv1(x))) + x)) or residualDown (conv1 3x3/2 valid;
 * the shortcut is a 2x2/2 average pool, zero-padded in channels; conv2's output is zero-padded
 * at the bottom/right when it comes out one smaller than the pool). */
typedef struct res_layer {
    int down;
    rconv c1, c2;
    nn_tensor t, u, pooled, y;
} res_layer;

struct fn_embedder {
    const nn_backend *be;
    fni_mem mem;
    int batch;        /* faces a pass takes */
    nn_tensor x;      /* [batch, 150, 150, 3] */
    rconv c0;         /* conv32_down: 7x7/2 valid */
    nn_tensor c0_out; /* [batch, 72, 72, 32] */
    nn_tensor pool0;  /* [batch, 35, 35, 32] after the 3x3/2 max pool */
    res_layer res[ID_LAYERS];
    nn_tensor avg;   /* [batch, 1, 1, 256] */
    const float *fc; /* [256, 128] */
    float *zeros;    /* backend [128] (fc has no bias) */
    float *desc;     /* backend [batch, 128] */
    nn_crop *crops;  /* [batch] */
    nn_buf stage;    /* the picture of the one-face calls */
};

static nn_tensor view(float *d, int h, int w, int c)
{
    return (nn_tensor){.d = d, .n = 1, .h = h, .w = w, .c = c};
}

/* convLayer.ts: conv + bias, then scale (x * weights + biases), folded: w' = w * s,
 * b' = b * s + sb. */
static int load_rconv(rconv *c, fn_embedder *m, nn_weights *wt, const char *prefix, int k, int cin,
                      int cout, int stride, nn_pad_mode pad, int x_h, int x_w, nn_act act,
                      vs_err *e)
{
    char n[4][128];
    snprintf(n[0], sizeof n[0], "%s/conv/filters", prefix);
    snprintf(n[1], sizeof n[1], "%s/conv/bias", prefix);
    snprintf(n[2], sizeof n[2], "%s/scale/weights", prefix);
    snprintf(n[3], sizeof n[3], "%s/scale/biases", prefix);
    const float *w = fni_get(wt, n[0], e, 4, (int[]){k, k, cin, cout});
    const float *b = fni_get(wt, n[1], e, 1, (int[]){cout});
    const float *s = fni_get(wt, n[2], e, 1, (int[]){cout});
    const float *sb = fni_get(wt, n[3], e, 1, (int[]){cout});
    if (!w || !b || !s || !sb) return -1;
    size_t nw = (size_t)k * k * cin * cout;
    float *fw = vs_malloc(nw * sizeof *fw), *fb = vs_malloc((size_t)cout * sizeof *fb);
    for (size_t i = 0; i < nw; i++) fw[i] = w[i] * s[i % cout];
    for (int o = 0; o < cout; o++) fb[o] = b[o] * s[o] + sb[o];
    c->w = fni_upload_conv(&m->mem, fw, (size_t)k * k * cin, cout);
    c->b = fni_upload(&m->mem, fb, (size_t)cout);
    free(fw);
    free(fb);
    nn_conv_geometry(&c->d, x_h, x_w, k, k, stride, stride, pad);
    c->d.act = act;
    return 0;
}

static int load_net(fn_embedder *m, nn_weights *wt, vs_err *e)
{
    static const struct {
        const char *name;
        int cout, down;
    } spec[ID_LAYERS] = {
        {"conv32_1", 32, 0},    {"conv32_2", 32, 0},          {"conv32_3", 32, 0},
        {"conv64_down", 64, 1}, {"conv64_1", 64, 0},          {"conv64_2", 64, 0},
        {"conv64_3", 64, 0},    {"conv128_down", 128, 1},     {"conv128_1", 128, 0},
        {"conv128_2", 128, 0},  {"conv256_down", 256, 1},     {"conv256_1", 256, 0},
        {"conv256_2", 256, 0},  {"conv256_down_out", 256, 1},
    };
    if (load_rconv(&m->c0, m, wt, "conv32_down", 7, 3, 32, 2, NN_PAD_VALID, ID_SIZE, ID_SIZE,
                   NN_ACT_RELU, e))
        return -1;
    int h = nn_out_size(ID_SIZE, 7, 2, NN_PAD_VALID), w = h;
    m->c0_out = fni_tensor(&m->mem, m->batch, h, w, 32);
    h = nn_out_size(h, 3, 2, NN_PAD_VALID), w = h;
    m->pool0 = fni_tensor(&m->mem, m->batch, h, w, 32);

    /* shared buffers, sized for the largest layer (35x35x32) */
    size_t big = (size_t)h * w * 32 * m->batch;
    float *t = fni_alloc(&m->mem, big), *u = fni_alloc(&m->mem, big);
    float *p = fni_alloc(&m->mem, big), *y[2] = {fni_alloc(&m->mem, big), fni_alloc(&m->mem, big)};

    int cin = 32;
    for (int i = 0; i < ID_LAYERS; i++) {
        res_layer *r = &m->res[i];
        int cout = spec[i].cout;
        char prefix[64];
        r->down = spec[i].down;
        snprintf(prefix, sizeof prefix, "%s/conv1", spec[i].name);
        int stride = r->down ? 2 : 1;
        nn_pad_mode pad1 = r->down ? NN_PAD_VALID : NN_PAD_SAME;
        if (load_rconv(&r->c1, m, wt, prefix, 3, cin, cout, stride, pad1, h, w, NN_ACT_RELU, e))
            return -1;
        int oh = nn_out_size(h, 3, stride, pad1), ow = nn_out_size(w, 3, stride, pad1);
        snprintf(prefix, sizeof prefix, "%s/conv2", spec[i].name);
        if (load_rconv(&r->c2, m, wt, prefix, 3, cout, cout, 1, NN_PAD_SAME, oh, ow, NN_ACT_NONE,
                       e))
            return -1;
        r->t = view(t, oh, ow, cout);
        r->u = view(u, oh, ow, cout);
        if (r->down) {
            int ph = nn_out_size(h, 2, 2, NN_PAD_VALID), pw = nn_out_size(w, 2, 2, NN_PAD_VALID);
            VS_CHECK(ph >= oh && ph <= oh + 1 && pw >= ow && pw <= ow + 1 && cout >= cin);
            r->pooled = view(p, ph, pw, cin);
            r->y = view(y[i % 2], ph, pw, cout);
        } else {
            VS_CHECK(cin == cout);
            r->y = view(y[i % 2], oh, ow, cout);
        }
        h = r->y.h, w = r->y.w, cin = cout;
    }
    m->avg = fni_tensor(&m->mem, m->batch, 1, 1, 256);
    const float *fc = fni_get(wt, "fc", e, 2, (int[]){256, 128});
    if (!fc) return -1;
    m->fc = fni_upload(&m->mem, fc, 256 * 128);
    const char *unused;
    if (nn_weights_unused(wt, &unused))
        return vs_fail(e, "%s: tensor %s is not part of the face recognition net (wrong file?)",
                       nn_weights_path(wt), unused);
    return 0;
}

int fn_embedder_load(fn_embedder **out, const char *models_dir, const nn_backend *be, vs_err *e)
{
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/face_recognition_model-weights_manifest.json", models_dir);
    nn_weights *wt;
    if (nn_weights_load(&wt, path, e)) return -1;
    fn_embedder *m = vs_calloc(1, sizeof *m);
    m->be = be;
    m->mem.be = be;
    m->batch = fni_batch(be, ID_GPU_BATCH, ID_CPU_BATCH);
    int rc = load_net(m, wt, e);
    nn_weights_free(wt);
    if (rc) {
        fn_embedder_free(m);
        return -1;
    }
    m->x = fni_tensor(&m->mem, m->batch, ID_SIZE, ID_SIZE, 3);
    static const float zeros_host[128];
    m->zeros = fni_upload(&m->mem, zeros_host, 128);
    m->desc = fni_alloc(&m->mem, (size_t)m->batch * 128);
    m->crops = vs_malloc(sizeof *m->crops * m->batch);
    *out = m;
    return 0;
}

void fn_embedder_free(fn_embedder *m)
{
    if (!m) return;
    nn_buf_free(&m->stage, m->be);
    fni_mem_free(&m->mem);
    free(m->crops);
    free(m);
}

/* the network on the first n faces of m->x, descriptors into m->desc */
static void forward(fn_embedder *m, int n)
{
    const nn_backend *be = m->be;
    m->x.n = m->c0_out.n = m->pool0.n = m->avg.n = n;
    be->conv2d(&m->c0_out, &m->x, m->c0.w, m->c0.b, &m->c0.d);
    nn_pool_desc mp = {.kind = NN_POOL_MAX, .kh = 3, .kw = 3, .sh = 2, .sw = 2};
    be->pool(&m->pool0, &m->c0_out, &mp);
    const nn_tensor *x = &m->pool0;
    for (int i = 0; i < ID_LAYERS; i++) {
        res_layer *r = &m->res[i];
        r->t.n = r->u.n = r->pooled.n = r->y.n = n;
        be->conv2d(&r->t, x, r->c1.w, r->c1.b, &r->c1.d);
        be->conv2d(&r->u, &r->t, r->c2.w, r->c2.b, &r->c2.d);
        if (r->down) {
            /* residualDown's join: y = relu(pad_c(pooled) + pad_hw(u)) */
            nn_pool_desc ap = {.kind = NN_POOL_AVG, .kh = 2, .kw = 2, .sh = 2, .sw = 2};
            be->pool(&r->pooled, x, &ap);
            be->add_padded(&r->y, &r->pooled, &r->u, NN_ACT_RELU, 0);
        } else {
            be->add(&r->y, &r->u, x);
            be->act(&r->y, NN_ACT_RELU, 0);
        }
        x = &r->y;
    }
    /* global average over the final 2x2, then the 256x128 matrix */
    nn_pool_desc gp = {.kind = NN_POOL_AVG, .kh = x->h, .kw = x->w, .sh = 1, .sw = 1};
    be->pool(&m->avg, x, &gp);
    nn_tensor desc = nn_rows(m->desc, n, 128);
    be->dense(&desc, &m->avg, m->fc, m->zeros, NN_ACT_NONE, 0);
}

/* FaceLandmarks.alignDlib: a square of side floor(eye-to-mouth / 0.45) around the centre of the
 * eyes and mouth, its width and height capped at crop size + corner (sic: face-api adds where it
 * presumably meant to subtract; reproduced since the descriptors depend on it). */
static void align_dlib(double box[4], const float lm[136], int crop_w, int crop_h)
{
    double c[3][2];
    static const int from[3] = {36, 42, 48}, to[3] = {42, 48, 68};
    for (int k = 0; k < 3; k++) {
        double sx = 0, sy = 0;
        for (int i = from[k]; i < to[k]; i++) sx += lm[2 * i], sy += lm[2 * i + 1];
        c[k][0] = sx / (to[k] - from[k]);
        c[k][1] = sy / (to[k] - from[k]);
    }
    double d0 = hypot(c[2][0] - c[0][0], c[2][1] - c[0][1]);
    double d1 = hypot(c[2][0] - c[1][0], c[2][1] - c[1][1]);
    double size = floor((d0 + d1) / 2 / 0.45);
    double rx = (c[0][0] + c[1][0] + c[2][0]) / 3, ry = (c[0][1] + c[1][1] + c[2][1]) / 3;
    double x = floor(fmax(0, rx - 0.5 * size)), y = floor(fmax(0, ry - 0.43 * size));
    box[0] = x;
    box[1] = y;
    box[2] = fmin(size, crop_w + x);
    box[3] = fmin(size, crop_h + y);
}

/* The descriptors of n crops (r[i] of ims[i], r[i] NULL: none, a zero descriptor as
 * computeFaceDescriptor gives for an empty tensor): each padded to a centred square and resized
 * to 150x150. */
static void embed_rects(float (*out)[128], fn_embedder *m, const fn_image *ims, const fni_rect *r,
                        const int *valid, int n)
{
    static const float mean[3] = {122.782f, 117.001f, 104.298f};
    int *which = vs_malloc(sizeof *which * (size_t)m->batch);
    float *host = vs_malloc(sizeof(float) * 128 * (size_t)m->batch);
    for (int at = 0; at < n; at += m->batch) {
        int k = n - at < m->batch ? n - at : m->batch, run = 0;
        for (int i = at; i < at + k; i++) {
            if (!valid[i]) {
                memset(out[i], 0, sizeof out[i]);
                continue;
            }
            m->crops[run] = fni_crop(&ims[i], &r[i], FNI_PAD_CENTRE, mean, 255.0f, 0.0f);
            which[run++] = i;
        }
        if (!run) continue;
        const int pass = fni_pass(m->crops, m->be, run, m->batch);
        m->x.n = pass;
        m->be->crop_resize(&m->x, m->crops);
        forward(m, pass);
        m->be->copy_out(host, m->desc, (size_t)run * 128);
        m->be->sync();
        for (int j = 0; j < run; j++) memcpy(out[which[j]], host + (size_t)j * 128, sizeof out[0]);
    }
    free(host);
    free(which);
}

void fn_embed_batch(float (*out)[128], fn_embedder *m, const fn_image *ims, const fn_box *dets,
                    const float (*lm)[136], int n)
{
    fni_rect *r = vs_malloc(sizeof *r * (size_t)(n > 0 ? n : 1));
    int *valid = vs_malloc(sizeof *valid * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {
        fni_rect lr;
        int cw = ims[i].w, ch = ims[i].h;
        if (dets && fni_box_rect(&lr, &dets[i], ims[i].w, ims[i].h)) cw = lr.w, ch = lr.h;
        double box[4];
        align_dlib(box, lm[i], cw, ch);
        valid[i] = fni_clip(&r[i], box[0], box[1], box[2], box[3], ims[i].w, ims[i].h);
    }
    embed_rects(out, m, ims, r, valid, n);
    free(r);
    free(valid);
}

void fn_embed(float out[128], fn_embedder *m, const img *im, const fn_box *det, const float lm[136])
{
    fn_image fi = fni_stage_image(&m->stage, m->be, im);
    fn_embed_batch((float(*)[128])out, m, &fi, det, (const float(*)[136])lm, 1);
}

void fn_embed_image(float out[128], fn_embedder *m, const img *face)
{
    fn_image fi = fni_stage_image(&m->stage, m->be, face);
    fni_rect r = {0, 0, face->w, face->h};
    int valid = 1;
    embed_rects((float(*)[128])out, m, &fi, &r, &valid, 1);
}

float fn_distance(const float a[128], const float b[128])
{
    double s = 0;
    for (int i = 0; i < 128; i++) {
        double d = (double)a[i] - b[i];
        s += d * d;
    }
    return (float)sqrt(s);
}
