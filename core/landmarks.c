/* landmarks.c: face-api's FaceLandmark68Net (face_landmark_68_model): the detection box cut out
 * of the image (clipped and floored), padded to a centred square, resized to 112x112, four dense
 * blocks of separable convolutions, a 7x7 average pool and a fully connected layer giving 68
 * (x, y) points relative to the padded square, mapped back to image pixels as face-api does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenet.h"
#include "facenet_input.h"

#define LM_SIZE 112
#define LM_BLOCKS 4
#define LM_GPU_BATCH 64 /* faces a pass takes on a GPU */
#define LM_CPU_BATCH 8

/* tf.separableConv2d + bias: depthwise 3x3 (no bias), then 1x1 with bias. */
typedef struct sep_conv {
    const float *dw, *pw, *b;
    nn_conv_desc d_dw, d_pw;
    nn_tensor mid; /* depthwise output, a view into the scratch buffer */
} sep_conv;

/* denseBlock4: conv0 (a plain 3x3 conv in dense0, separable elsewhere; stride 2) and three
 * separable convs, each fed the ReLU of the sum of the outputs before it. */
typedef struct dense_block {
    const float *w0, *b0; /* dense0/conv0 only */
    nn_conv_desc d0;
    sep_conv conv[4];
    nn_tensor out[4]; /* out1..out4 of denseBlock.ts */
    nn_tensor sum, tmp;
    nn_tensor y; /* block output */
} dense_block;

struct fn_landmarker {
    const nn_backend *be;
    fni_mem mem;
    int batch;   /* faces a pass takes */
    nn_tensor x; /* [batch, 112, 112, 3] */
    dense_block block[LM_BLOCKS];
    nn_tensor pooled; /* [batch, 1, 1, 256] */
    const float *fc_w, *fc_b;
    float *fc_out;   /* backend [batch, 136] */
    float *zeros;    /* backend [256] zero bias for the depthwise halves */
    float *out_host; /* [batch, 136] */
    nn_crop *crops;  /* [batch] */
    fni_rect *rects; /* [batch]: each face's crop, for mapping the points back */
    nn_buf stage;    /* fn_landmarks's picture */
};

static nn_tensor view(float *d, int h, int w, int c)
{
    return (nn_tensor){.d = d, .n = 1, .h = h, .w = w, .c = c};
}

static int load_sep(sep_conv *s, fn_landmarker *l, nn_weights *wt, int blk, int idx, int cin,
                    int cout, int stride, int x_h, int x_w, float *scratch, vs_err *e)
{
    char dn[64], pn[64], bn[64];
    snprintf(dn, sizeof dn, "dense%d/conv%d/depthwise_filter", blk, idx);
    snprintf(pn, sizeof pn, "dense%d/conv%d/pointwise_filter", blk, idx);
    snprintf(bn, sizeof bn, "dense%d/conv%d/bias", blk, idx);
    const float *dw = fni_get(wt, dn, e, 4, (int[]){3, 3, cin, 1});
    const float *pw = fni_get(wt, pn, e, 4, (int[]){1, 1, cin, cout});
    const float *b = fni_get(wt, bn, e, 1, (int[]){cout});
    if (!dw || !pw || !b) return -1;
    s->dw = fni_upload(&l->mem, dw, (size_t)9 * cin);
    s->pw = fni_upload_conv(&l->mem, pw, (size_t)cin, cout);
    s->b = fni_upload(&l->mem, b, (size_t)cout);
    nn_conv_geometry(&s->d_dw, x_h, x_w, 3, 3, stride, stride, NN_PAD_SAME);
    int oh = nn_out_size(x_h, 3, stride, NN_PAD_SAME),
        ow = nn_out_size(x_w, 3, stride, NN_PAD_SAME);
    nn_conv_geometry(&s->d_pw, oh, ow, 1, 1, 1, 1, NN_PAD_SAME);
    s->mid = view(scratch, oh, ow, cin);
    return 0;
}

static int load_net(fn_landmarker *l, nn_weights *wt, vs_err *e)
{
    /* buffer sizes: dense0 works at 56x56x32, the largest of all */
    size_t big = (size_t)(LM_SIZE / 2) * (LM_SIZE / 2) * 32 * l->batch;
    float *buf[7], *ybuf[2];
    for (int i = 0; i < 7; i++) buf[i] = fni_alloc(&l->mem, big);
    for (int i = 0; i < 2; i++) ybuf[i] = fni_alloc(&l->mem, big);

    int h = LM_SIZE, w = LM_SIZE, cin = 3;
    for (int b = 0; b < LM_BLOCKS; b++) {
        dense_block *blk = &l->block[b];
        int cout = 32 << b, oh = nn_out_size(h, 3, 2, NN_PAD_SAME),
            ow = nn_out_size(w, 3, 2, NN_PAD_SAME);
        if (b == 0) {
            const float *w0 = fni_get(wt, "dense0/conv0/filters", e, 4, (int[]){3, 3, 3, 32});
            const float *b0 = fni_get(wt, "dense0/conv0/bias", e, 1, (int[]){32});
            if (!w0 || !b0) return -1;
            blk->w0 = fni_upload_conv(&l->mem, w0, 9 * 3, 32);
            blk->b0 = fni_upload(&l->mem, b0, 32);
            nn_conv_geometry(&blk->d0, h, w, 3, 3, 2, 2, NN_PAD_SAME);
            blk->d0.act = NN_ACT_RELU;
        } else {
            if (load_sep(&blk->conv[0], l, wt, b, 0, cin, cout, 2, h, w, buf[6], e)) return -1;
            blk->conv[0].d_pw.act = NN_ACT_RELU; /* out1 = relu(conv0(x)) */
        }
        for (int i = 1; i < 4; i++)
            if (load_sep(&blk->conv[i], l, wt, b, i, cout, cout, 1, oh, ow, buf[6], e)) return -1;
        for (int i = 0; i < 4; i++) blk->out[i] = view(buf[i], oh, ow, cout);
        blk->sum = view(buf[4], oh, ow, cout);
        blk->tmp = view(buf[5], oh, ow, cout);
        blk->y = view(ybuf[b % 2], oh, ow, cout);
        h = oh, w = ow, cin = cout;
    }

    const float *fw = fni_get(wt, "fc/weights", e, 2, (int[]){256, 136});
    const float *fb = fni_get(wt, "fc/bias", e, 1, (int[]){136});
    if (!fw || !fb) return -1;
    l->fc_w = fni_upload(&l->mem, fw, 256 * 136);
    l->fc_b = fni_upload(&l->mem, fb, 136);
    const char *unused;
    if (nn_weights_unused(wt, &unused))
        return vs_fail(e, "%s: tensor %s is not part of the 68-point landmark net (wrong file?)",
                       nn_weights_path(wt), unused);
    return 0;
}

int fn_landmarker_load(fn_landmarker **out, const char *models_dir, const nn_backend *be, vs_err *e)
{
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/face_landmark_68_model-weights_manifest.json", models_dir);
    nn_weights *wt;
    if (nn_weights_load(&wt, path, e)) return -1;
    fn_landmarker *l = vs_calloc(1, sizeof *l);
    l->be = be;
    l->mem.be = be;
    l->batch = fni_batch(be, LM_GPU_BATCH, LM_CPU_BATCH);
    int rc = load_net(l, wt, e);
    nn_weights_free(wt);
    if (rc) {
        fn_landmarker_free(l);
        return -1;
    }
    l->x = fni_tensor(&l->mem, l->batch, LM_SIZE, LM_SIZE, 3);
    l->pooled = fni_tensor(&l->mem, l->batch, 1, 1, 256);
    l->fc_out = fni_alloc(&l->mem, (size_t)l->batch * 136);
    static const float zeros_host[256];
    l->zeros = fni_upload(&l->mem, zeros_host, 256);
    l->out_host = vs_malloc(sizeof(float) * 136 * l->batch);
    l->crops = vs_malloc(sizeof *l->crops * l->batch);
    l->rects = vs_malloc(sizeof *l->rects * l->batch);
    *out = l;
    return 0;
}

void fn_landmarker_free(fn_landmarker *l)
{
    if (!l) return;
    nn_buf_free(&l->stage, l->be);
    fni_mem_free(&l->mem);
    free(l->out_host);
    free(l->crops);
    free(l->rects);
    free(l);
}

/* The separable conv's depthwise half has no bias; it gets a zero vector. */
static void run_sep(const nn_backend *be, nn_tensor *y, const nn_tensor *x, sep_conv *s,
                    const float *zeros)
{
    be->depthwise(&s->mid, x, s->dw, zeros, &s->d_dw);
    be->conv2d(y, &s->mid, s->pw, s->b, &s->d_pw);
}

static void run_block(const nn_backend *be, dense_block *b, const nn_tensor *x, const float *zeros)
{
    nn_tensor *o = b->out;
    for (int i = 0; i < 4; i++) o[i].n = b->conv[i].mid.n = x->n;
    b->sum.n = b->tmp.n = b->y.n = x->n;
    if (b->w0)
        be->conv2d(&o[0], x, b->w0, b->b0, &b->d0);
    else
        run_sep(be, &o[0], x, &b->conv[0], zeros);
    run_sep(be, &o[1], &o[0], &b->conv[1], zeros);
    /* in3 = relu(out1 + out2) */
    be->add(&b->sum, &o[0], &o[1]);
    be->act(&b->sum, NN_ACT_RELU, 0);
    run_sep(be, &o[2], &b->sum, &b->conv[2], zeros);
    /* in4 = relu(out1 + (out2 + out3)) */
    be->add(&b->tmp, &o[1], &o[2]);
    be->add(&b->sum, &o[0], &b->tmp);
    be->act(&b->sum, NN_ACT_RELU, 0);
    run_sep(be, &o[3], &b->sum, &b->conv[3], zeros);
    /* y = relu(out1 + (out2 + (out3 + out4))) */
    be->add(&b->tmp, &o[2], &o[3]);
    be->add(&b->tmp, &o[1], &b->tmp);
    be->add(&b->y, &o[0], &b->tmp);
    be->act(&b->y, NN_ACT_RELU, 0);
}

/* FaceLandmark68NetBase.postProcess (float32 tensors): undo the centred padding of the 112x112
 * square, relative to the crop's scaled size; then FaceLandmarks scales by the crop size and
 * shiftBy adds the detection box's corner. o: the network's 136 outputs for the crop r of box. */
static void to_image(float out[136], const float o[136], const fni_rect *rp, const fn_box *box)
{
    const fni_rect r = *rp;
    double scale = (double)LM_SIZE / (r.w > r.h ? r.w : r.h);
    double sw = r.w * scale, sh = r.h * scale;
    float pad_x = sw < sh ? (float)(fabs(sw - sh) / 2) : 0.0f;
    float pad_y = sh < sw ? (float)(fabs(sw - sh) / 2) : 0.0f;
    float fw = (float)sw, fh = (float)sh;
    for (int i = 0; i < 68; i++) {
        float rx = (o[2 * i] * (float)LM_SIZE - pad_x) / fw;
        float ry = (o[2 * i + 1] * (float)LM_SIZE - pad_y) / fh;
        double px = (double)rx * r.w, py = (double)ry * r.h;
        out[2 * i] = (float)(px / r.w * r.w + box->x);
        out[2 * i + 1] = (float)(py / r.h * r.h + box->y);
    }
}

void fn_landmarks_batch(float (*out)[136], fn_landmarker *l, const fn_image *ims,
                        const fn_box *boxes, int n)
{
    const nn_backend *be = l->be;
    static const float mean[3] = {122.782f, 117.001f, 104.298f};
    int *which = vs_malloc(sizeof *which * (size_t)l->batch);
    for (int at = 0; at < n; at += l->batch) {
        int k = n - at < l->batch ? n - at : l->batch, run = 0;
        for (int i = at; i < at + k; i++) {
            const fn_box *box = &boxes[i];
            if (!fni_box_rect(&l->rects[run], box, ims[i].w, ims[i].h)) {
                /* face-api drops such a face; give every point the box centre */
                for (int p = 0; p < 68; p++) {
                    out[i][2 * p] = box->x + box->w / 2;
                    out[i][2 * p + 1] = box->y + box->h / 2;
                }
                continue;
            }
            l->crops[run] = fni_crop(&ims[i], &l->rects[run], FNI_PAD_CENTRE, mean, 255.0f, 0.0f);
            which[run++] = i;
        }
        if (!run) continue;
        const int pass = fni_pass(l->crops, be, run, l->batch);
        l->x.n = pass;
        be->crop_resize(&l->x, l->crops);
        const nn_tensor *x = &l->x;
        for (int b = 0; b < LM_BLOCKS; b++) {
            run_block(be, &l->block[b], x, l->zeros);
            x = &l->block[b].y;
        }
        nn_pool_desc pd = {.kind = NN_POOL_AVG, .kh = 7, .kw = 7, .sh = 2, .sw = 2};
        l->pooled.n = pass;
        be->pool(&l->pooled, x, &pd);
        nn_tensor fc_out = nn_rows(l->fc_out, pass, 136);
        be->dense(&fc_out, &l->pooled, l->fc_w, l->fc_b, NN_ACT_NONE, 0);
        be->copy_out(l->out_host, l->fc_out, (size_t)run * 136);
        be->sync();
        for (int j = 0; j < run; j++)
            to_image(out[which[j]], l->out_host + (size_t)j * 136, &l->rects[j], &boxes[which[j]]);
    }
    free(which);
}

void fn_landmarks(float out[136], fn_landmarker *l, const img *im, const fn_box *box)
{
    fn_image fi = fni_stage_image(&l->stage, l->be, im);
    fn_landmarks_batch((float(*)[136])out, l, &fi, box, 1);
}
