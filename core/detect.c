/* detect.c: face-api's SSD MobileNet v1 face detector (ssd_mobilenetv1_model): the image padded
 * to a square at the bottom/right, resized to 512x512, MobileNet v1 (batch norm folded into the
 * depthwise weights at load, ReLU6), the SSD prediction layer with six box predictors over 5118
 * anchors, box decoding, sigmoid scores and face-api's own greedy non-maximum suppression. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenet.h"
#include "facenet_input.h"

#define SSD_SIZE 512
#define SSD_ANCHORS 5118
#define SSD_IOU 0.5
#define SSD_BN_EPS 0.0010000000474974513f /* mobileNetV1.ts */
#define SSD_MAX_RESULTS 100               /* SsdMobilenetv1Options default */
#define SSD_GPU_BATCH 8                   /* pictures a pass takes on a GPU */

typedef enum layer_kind { LAYER_CONV, LAYER_DEPTHWISE } layer_kind;

typedef struct layer {
    layer_kind kind;
    const float *w, *b; /* backend memory */
    nn_conv_desc d;
    nn_tensor y; /* output (a view into the activation buffers) */
} layer;

struct fn_detector {
    const nn_backend *be;
    fni_mem mem;          /* weights, activations, outputs */
    int batch;            /* pictures a pass takes */
    nn_tensor x;          /* [batch, 512, 512, 3] */
    layer mobilenet[27];  /* conv_0, then depthwise/pointwise pairs conv_1..conv_13 */
    layer pred[8];        /* prediction_layer conv_0..conv_7 */
    layer box[6], cls[6]; /* box predictors; outputs are views into box_out / cls_out */
    int first[7];         /* anchors before predictor i (first[6] = 5118) */
    float *box_out; /* backend: predictor i's [n, anchors, 4] box encodings, n * first[i] in */
    float *cls_out; /* backend: likewise [n, anchors, 3] class logits */
    float *anchors; /* host [5118, 4] Output/extra_dim: ymin, xmin, ymax, xmax */
    float *box_host, *cls_host; /* host copies of box_out, cls_out */
    nn_crop *crops;             /* [batch] */
    nn_buf stage;               /* fn_detect's picture */
    struct cand {
        float score;
        int idx;
    } * cand;
    float (*dec)[4]; /* decoded boxes of the candidates, [5118][4] */
    int *selected;
};

static nn_tensor view(float *d, int h, int w, int c)
{
    return (nn_tensor){.d = d, .n = 1, .h = h, .w = w, .c = c};
}

/* Shape, weight upload and geometry of one convolution whose input is x_h x x_w. The output
 * buffer is set by the caller. */
static int load_layer(layer *l, fn_detector *d, nn_weights *wt, layer_kind kind, const char *wname,
                      const char *bname, int k, int cin, int cout, int stride, int x_h, int x_w,
                      nn_act act, vs_err *e)
{
    int wshape[4] = {k, k, cin, kind == LAYER_DEPTHWISE ? 1 : cout};
    const float *w = fni_get(wt, wname, e, 4, wshape);
    const float *b = fni_get(wt, bname, e, 1, (int[]){cout});
    if (!w || !b) return -1;
    l->kind = kind;
    l->w = fni_upload_conv(&d->mem, w, (size_t)k * k * cin, wshape[3]);
    l->b = fni_upload(&d->mem, b, (size_t)cout);
    nn_conv_geometry(&l->d, x_h, x_w, k, k, stride, stride, NN_PAD_SAME);
    l->d.act = act;
    l->y = view(NULL, nn_out_size(x_h, k, stride, NN_PAD_SAME),
                nn_out_size(x_w, k, stride, NN_PAD_SAME), cout);
    return 0;
}

/* MobileNet depthwise layer with its batch norm folded in: w' = w * gamma / sqrt(var + eps). */
static int load_depthwise_bn(layer *l, fn_detector *d, nn_weights *wt, int idx, int c, int stride,
                             int x_h, int x_w, vs_err *e)
{
    char name[5][128];
    static const char *const part[5] = {"depthwise_weights", "BatchNorm/gamma", "BatchNorm/beta",
                                        "BatchNorm/moving_mean", "BatchNorm/moving_variance"};
    const float *p[5];
    for (int i = 0; i < 5; i++) {
        snprintf(name[i], sizeof name[i], "MobilenetV1/Conv2d_%d_depthwise/%s", idx, part[i]);
        p[i] = i == 0 ? fni_get(wt, name[i], e, 4, (int[]){3, 3, c, 1})
                      : fni_get(wt, name[i], e, 1, (int[]){c});
        if (!p[i]) return -1;
    }
    float *w = vs_malloc((size_t)9 * c * sizeof *w), *b = vs_malloc((size_t)c * sizeof *b);
    memcpy(w, p[0], (size_t)9 * c * sizeof *w);
    nn_fold_batchnorm(w, b, NULL, (size_t)9 * c, c, p[1], p[2], p[3], p[4], SSD_BN_EPS);
    l->kind = LAYER_DEPTHWISE;
    l->w = fni_upload(&d->mem, w, (size_t)9 * c);
    l->b = fni_upload(&d->mem, b, (size_t)c);
    free(w);
    free(b);
    nn_conv_geometry(&l->d, x_h, x_w, 3, 3, stride, stride, NN_PAD_SAME);
    l->d.act = NN_ACT_RELU6;
    l->y = view(NULL, nn_out_size(x_h, 3, stride, NN_PAD_SAME),
                nn_out_size(x_w, 3, stride, NN_PAD_SAME), c);
    return 0;
}

static int load_net(fn_detector *d, nn_weights *wt, vs_err *e)
{
    char wn[128], bn[128];
    /* MobileNet v1: conv_0 (3x3, stride 2), then 13 depthwise/pointwise pairs */
    static const int ch[14] = {32,  64,  128, 128, 256, 256,  512,
                               512, 512, 512, 512, 512, 1024, 1024};
    int h = SSD_SIZE, w = SSD_SIZE;
    layer *l = d->mobilenet;
    if (load_layer(l, d, wt, LAYER_CONV, "MobilenetV1/Conv2d_0_pointwise/weights",
                   "MobilenetV1/Conv2d_0_pointwise/convolution_bn_offset", 3, 3, ch[0], 2, h, w,
                   NN_ACT_RELU6, e))
        return -1;
    h = l->y.h, w = l->y.w, l++;
    for (int i = 1; i <= 13; i++) {
        int stride = i == 2 || i == 4 || i == 6 || i == 12 ? 2 : 1;
        if (load_depthwise_bn(l, d, wt, i, ch[i - 1], stride, h, w, e)) return -1;
        h = l->y.h, w = l->y.w, l++;
        snprintf(wn, sizeof wn, "MobilenetV1/Conv2d_%d_pointwise/weights", i);
        snprintf(bn, sizeof bn, "MobilenetV1/Conv2d_%d_pointwise/convolution_bn_offset", i);
        if (load_layer(l, d, wt, LAYER_CONV, wn, bn, 1, ch[i - 1], ch[i], 1, h, w, NN_ACT_RELU6, e))
            return -1;
        l++;
    }

    /* prediction layer: alternating 1x1 and 3x3/stride-2 pointwise layers on the 16x16 output */
    static const int pk[8] = {1, 3, 1, 3, 1, 3, 1, 3};
    static const int pc[9] = {1024, 256, 512, 128, 256, 128, 256, 64, 128};
    for (int i = 0; i < 8; i++) {
        snprintf(wn, sizeof wn, "Prediction/Conv2d_%d_pointwise/weights", i);
        snprintf(bn, sizeof bn, "Prediction/Conv2d_%d_pointwise/convolution_bn_offset", i);
        if (load_layer(&d->pred[i], d, wt, LAYER_CONV, wn, bn, pk[i], pc[i], pc[i + 1],
                       pk[i] == 3 ? 2 : 1, h, w, NN_ACT_RELU6, e))
            return -1;
        h = d->pred[i].y.h, w = d->pred[i].y.w;
    }

    /* box predictors on conv_11, the MobileNet output and prediction conv_1/3/5/7 */
    const nn_tensor *src[6] = {&d->mobilenet[22].y, &d->mobilenet[26].y, &d->pred[1].y,
                               &d->pred[3].y,       &d->pred[5].y,       &d->pred[7].y};
    size_t at = 0;
    for (int i = 0; i < 6; i++) {
        int a = i == 0 ? 3 : 6, cin = src[i]->c, sh = src[i]->h, sw = src[i]->w;
        snprintf(wn, sizeof wn, "Prediction/BoxPredictor_%d/BoxEncodingPredictor/weights", i);
        snprintf(bn, sizeof bn, "Prediction/BoxPredictor_%d/BoxEncodingPredictor/biases", i);
        if (load_layer(&d->box[i], d, wt, LAYER_CONV, wn, bn, 1, cin, a * 4, 1, sh, sw, NN_ACT_NONE,
                       e))
            return -1;
        snprintf(wn, sizeof wn, "Prediction/BoxPredictor_%d/ClassPredictor/weights", i);
        snprintf(bn, sizeof bn, "Prediction/BoxPredictor_%d/ClassPredictor/biases", i);
        if (load_layer(&d->cls[i], d, wt, LAYER_CONV, wn, bn, 1, cin, a * 3, 1, sh, sw, NN_ACT_NONE,
                       e))
            return -1;
        d->first[i] = (int)at;
        at += (size_t)sh * sw * a;
    }
    VS_CHECK(at == SSD_ANCHORS);
    d->first[6] = SSD_ANCHORS;

    const float *anchors = fni_get(wt, "Output/extra_dim", e, 3, (int[]){1, SSD_ANCHORS, 4});
    if (!anchors) return -1;
    memcpy(d->anchors, anchors, sizeof(float) * SSD_ANCHORS * 4);
    return 0;
}

/* Activation buffers for d->batch pictures, all allocated once: the MobileNet layers ping-pong
 * between two buffers sized for the largest (256x256x64), except conv_11 (kept for box predictor
 * 0) and the final output; every prediction-layer output has its own small buffer. */
static void alloc_activations(fn_detector *d)
{
    const size_t nb = (size_t)d->batch;
    size_t big = 0;
    for (int i = 0; i < 27; i++) {
        size_t n = nn_numel(&d->mobilenet[i].y);
        if (n > big) big = n;
    }
    float *ping = fni_alloc(&d->mem, big * nb), *pong = fni_alloc(&d->mem, big * nb);
    for (int i = 0; i < 27; i++) {
        layer *l = &d->mobilenet[i];
        if (i == 22 || i == 26)
            l->y.d = fni_alloc(&d->mem, nn_numel(&l->y) * nb);
        else
            l->y.d = i % 2 ? pong : ping;
    }
    for (int i = 0; i < 8; i++) d->pred[i].y.d = fni_alloc(&d->mem, nn_numel(&d->pred[i].y) * nb);
}

int fn_detector_load(fn_detector **out, const char *models_dir, const nn_backend *be, vs_err *e)
{
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/ssd_mobilenetv1_model-weights_manifest.json", models_dir);
    nn_weights *wt;
    if (nn_weights_load(&wt, path, e)) return -1;

    fn_detector *d = vs_calloc(1, sizeof *d);
    d->be = be;
    d->mem.be = be;
    d->batch = fni_batch(be, SSD_GPU_BATCH, 1);
    d->box_out = fni_alloc(&d->mem, (size_t)d->batch * SSD_ANCHORS * 4);
    d->cls_out = fni_alloc(&d->mem, (size_t)d->batch * SSD_ANCHORS * 3);
    d->anchors = vs_malloc(sizeof(float) * SSD_ANCHORS * 4);
    if (load_net(d, wt, e)) {
        nn_weights_free(wt);
        fn_detector_free(d);
        return -1;
    }
    nn_weights_free(wt);
    d->x = fni_tensor(&d->mem, d->batch, SSD_SIZE, SSD_SIZE, 3);
    alloc_activations(d);
    d->box_host = vs_malloc(sizeof(float) * SSD_ANCHORS * 4 * d->batch);
    d->cls_host = vs_malloc(sizeof(float) * SSD_ANCHORS * 3 * d->batch);
    d->crops = vs_malloc(sizeof *d->crops * d->batch);
    d->cand = vs_malloc(sizeof *d->cand * SSD_ANCHORS);
    d->dec = vs_malloc(sizeof *d->dec * SSD_ANCHORS);
    d->selected = vs_malloc(sizeof *d->selected * SSD_ANCHORS);
    *out = d;
    return 0;
}

void fn_detector_free(fn_detector *d)
{
    if (!d) return;
    nn_buf_free(&d->stage, d->be);
    fni_mem_free(&d->mem);
    free(d->anchors);
    free(d->crops);
    free(d->box_host);
    free(d->cls_host);
    free(d->cand);
    free(d->dec);
    free(d->selected);
    free(d);
}

static void run_layer(const nn_backend *be, layer *l, const nn_tensor *x)
{
    if (l->kind == LAYER_DEPTHWISE)
        be->depthwise(&l->y, x, l->w, l->b, &l->d);
    else
        be->conv2d(&l->y, x, l->w, l->b, &l->d);
}

/* the network on the first n pictures of d->x */
static void forward(fn_detector *d, int n)
{
    const nn_backend *be = d->be;
    d->x.n = n;
    const nn_tensor *x = &d->x;
    for (int i = 0; i < 27; i++) {
        d->mobilenet[i].y.n = n;
        run_layer(be, &d->mobilenet[i], x);
        x = &d->mobilenet[i].y;
    }
    for (int i = 0; i < 8; i++) {
        d->pred[i].y.n = n;
        run_layer(be, &d->pred[i], x);
        x = &d->pred[i].y;
    }
    const nn_tensor *src[6] = {&d->mobilenet[22].y, &d->mobilenet[26].y, &d->pred[1].y,
                               &d->pred[3].y,       &d->pred[5].y,       &d->pred[7].y};
    for (int i = 0; i < 6; i++) {
        d->box[i].y.n = d->cls[i].y.n = n;
        d->box[i].y.d = d->box_out + (size_t)n * d->first[i] * 4;
        d->cls[i].y.d = d->cls_out + (size_t)n * d->first[i] * 3;
        run_layer(be, &d->box[i], src[i]);
        run_layer(be, &d->cls[i], src[i]);
    }
}

/* outputLayer.ts, in float32 as TF computes it: anchor a = (ymin, xmin, ymax, xmax), encoding
 * t = (ty, tx, th, tw) scaled by 10, 10, 5, 5. */
static void decode_box(float out[4], const float a[4], const float t[4])
{
    float sy = a[2] - a[0], sx = a[3] - a[1];
    float cy = a[0] + sy / 2, cx = a[1] + sx / 2;
    float hh = expf(t[2] / 5) * sy / 2, hw = expf(t[3] / 5) * sx / 2;
    float y = t[0] / 10 * sy + cy, x = t[1] / 10 * sx + cx;
    out[0] = y - hh;
    out[1] = x - hw;
    out[2] = y + hh;
    out[3] = x + hw;
}

/* nonMaxSuppression.ts's IOU (double precision, corners in either order). */
static double iou(const float a[4], const float b[4])
{
    double ay0 = fmin(a[0], a[2]), ax0 = fmin(a[1], a[3]), ay1 = fmax(a[0], a[2]),
           ax1 = fmax(a[1], a[3]);
    double by0 = fmin(b[0], b[2]), bx0 = fmin(b[1], b[3]), by1 = fmax(b[0], b[2]),
           bx1 = fmax(b[1], b[3]);
    double area_a = (ay1 - ay0) * (ax1 - ax0), area_b = (by1 - by0) * (bx1 - bx0);
    if (area_a <= 0 || area_b <= 0) return 0;
    double ih = fmax(fmin(ay1, by1) - fmax(ay0, by0), 0);
    double iw = fmax(fmin(ax1, bx1) - fmax(ax0, bx0), 0);
    double inter = ih * iw;
    return inter / (area_a + area_b - inter);
}

/* Best score first; equal scores keep anchor order (JavaScript's sort is stable). */
static int cand_cmp(const void *pa, const void *pb)
{
    const struct cand *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? 1 : -1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* The faces of picture b of the pass just run (n pictures): NMS over its anchors, back to the
 * picture's pixels. */
static int select_faces(fn_box *out, int max_faces, fn_detector *d, int b, int n, int im_w,
                        int im_h, float min_score)
{
    /* predictor i's block holds [n, anchors_i, k]: anchor a of picture b is at
     * n * first[i] + b * anchors_i + (a - first[i]) */
    int m = 0, p = 0;
    const float *boxes = d->box_host, *cls = d->cls_host;
    for (int a = 0; a < SSD_ANCHORS; a++) {
        while (a >= d->first[p + 1]) p++;
        size_t at = (size_t)n * d->first[p] + (size_t)b * (d->first[p + 1] - d->first[p]) +
                    (size_t)(a - d->first[p]);
        float s = 1.0f / (1.0f + expf(-cls[at * 3 + 1]));
        if (s >= min_score) {
            d->cand[m++] = (struct cand){s, a};
            memcpy(d->dec[a], boxes + at * 4, sizeof d->dec[a]); /* the encoding, for now */
        }
    }
    qsort(d->cand, (size_t)m, sizeof *d->cand, cand_cmp);

    int limit = max_faces < SSD_MAX_RESULTS ? max_faces : SSD_MAX_RESULTS, n_sel = 0;
    for (int k = 0; k < m && n_sel < limit; k++) {
        int idx = d->cand[k].idx;
        float t[4];
        memcpy(t, d->dec[idx], sizeof t);
        decode_box(d->dec[idx], d->anchors + idx * 4, t);
        int keep = 1;
        for (int j = n_sel - 1; j >= 0 && keep; j--)
            if (iou(d->dec[idx], d->dec[d->selected[j]]) > SSD_IOU) keep = 0;
        if (keep) {
            out[n_sel].score = d->cand[k].score;
            d->selected[n_sel++] = idx;
        }
    }

    /* back to image pixels: the 512 input covered the padded square, so relative coordinates are
     * rescaled by 512 / (the image's side scaled into 512), as SsdMobilenetv1.locateFaces does */
    double scale = (double)SSD_SIZE / (im_w > im_h ? im_w : im_h);
    double pad_x = SSD_SIZE / floor(im_w * scale + 0.5);
    double pad_y = SSD_SIZE / floor(im_h * scale + 0.5);
    for (int k = 0; k < n_sel; k++) {
        const float *bx = d->dec[d->selected[k]];
        double top = fmax(0, bx[0]) * pad_y, bottom = fmin(1.0, bx[2]) * pad_y;
        double left = fmax(0, bx[1]) * pad_x, right = fmin(1.0, bx[3]) * pad_x;
        out[k].x = (float)(left * im_w);
        out[k].y = (float)(top * im_h);
        out[k].w = (float)((right - left) * im_w);
        out[k].h = (float)((bottom - top) * im_h);
    }
    return n_sel;
}

void fn_detect_batch(fn_box *out, int *counts, int max_faces, fn_detector *d, const fn_image *ims,
                     int n, float min_score)
{
    const nn_backend *be = d->be;
    static const float none[3] = {0, 0, 0}; /* x / 127.5 - 1 */
    for (int at = 0; at < n; at += d->batch) {
        int k = n - at < d->batch ? n - at : d->batch, run = 0;
        for (int i = 0; i < k; i++) {
            const fn_image *im = &ims[at + i];
            counts[at + i] = 0;
            if (max_faces <= 0 || im->w <= 0 || im->h <= 0) continue;
            fni_rect whole = {0, 0, im->w, im->h};
            d->crops[run++] = fni_crop(im, &whole, FNI_PAD_END, none, 127.5f, 1.0f);
        }
        if (!run) continue;
        const int pass = fni_pass(d->crops, be, run, d->batch);
        d->x.n = pass;
        be->crop_resize(&d->x, d->crops);
        forward(d, pass);
        be->copy_out(d->box_host, d->box_out, (size_t)pass * SSD_ANCHORS * 4);
        be->copy_out(d->cls_host, d->cls_out, (size_t)pass * SSD_ANCHORS * 3);
        be->sync();
        for (int i = 0, b = 0; i < k; i++) {
            const fn_image *im = &ims[at + i];
            if (max_faces <= 0 || im->w <= 0 || im->h <= 0) continue;
            counts[at + i] = select_faces(out + (size_t)(at + i) * max_faces, max_faces, d, b++,
                                          pass, im->w, im->h, min_score);
        }
    }
}

int fn_detect(fn_box *out, int max_faces, fn_detector *d, const img *im, float min_score)
{
    if (max_faces <= 0 || im->w <= 0 || im->h <= 0) return 0;
    fn_image fi = fni_stage_image(&d->stage, d->be, im);
    int count;
    fn_detect_batch(out, &count, max_faces, d, &fi, 1, min_score);
    return count;
}
