/* faces_gpu.c: the GPU's stages of extraction and conversion against the CPU's, frames/s side by
 * side in one run, at 1280x720 and 1920x1080, for bench/extract.sh and bench/convert.sh (and
 * bench/gpu_check.sh on a lent machine, which has no media libraries: this links none).
 *   extract: ex_find_batch, all of extraction but decoding and writing PNGs: detection,
 *            landmarks, the checks, the aligned crops, blur, embeddings; the frames go to the
 *            networks' memory as extraction sends them (8 a batch on a GPU).
 *   convert: cv_swap_frame with Faceswap's Original (64 px, weights from a seed): the frame into
 *            the model's memory and back, crops, the model on every face, mask, colour, blend.
 * Frames: the PPM copies of the faces_gt photos (test_facenet --write-ppm; $VISAGE_GPU_FACES,
 * default .device/faces), each cut around its largest face (one person a frame, as in most
 * footage), scaled to the frame's height and centred on grey; the faces to swap are those the
 * CPU's networks find (the same for both columns).
 * Usage: faces_gpu [extract|convert|both] [SECONDS per measurement, default 3]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tests/ppm.h"
#include "align.h"
#include "convert.h"
#include "err.h"
#include "extract_faces.h"
#include "model.h"
#include "nn/backend.h"

#define FRAMES 3 /* distinct frames, cycled */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* photo scaled to h rows, centred in a w x h grey frame */
static img *frame_of(const img *photo, int w, int h)
{
    img *f = img_new(w, h, 3);
    memset(f->px, 96, (size_t)w * h * 3);
    int pw = (int)((long)photo->w * h / photo->h), ph = h;
    if (pw > w) pw = w, ph = (int)((long)photo->h * w / photo->w);
    img *s = img_new(pw, ph, 3);
    img_resize(s, photo);
    int ox = (w - pw) / 2, oy = (h - ph) / 2;
    for (int y = 0; y < ph; y++)
        memcpy(f->px + ((size_t)(y + oy) * w + ox) * 3, s->px + (size_t)y * pw * 3, (size_t)pw * 3);
    img_free(s);
    return f;
}

/* The photo around its largest face (3 times its size each way, inside the photo), so that a
 * frame holds one person as most footage does. */
static img *one_face(const img *photo, ex_nets *nets, const vs_config *cfg)
{
    ex_found found[EX_MAX_DETECTIONS];
    int n = ex_find_faces(found, EX_MAX_DETECTIONS, nets, photo, cfg), best = -1;
    for (int i = 0; i < n; i++)
        if (best < 0 || found[i].box[2] * found[i].box[3] > found[best].box[2] * found[best].box[3])
            best = i;
    if (best < 0) return img_clone(photo);
    const float *b = found[best].box;
    float side = 3 * (b[2] > b[3] ? b[2] : b[3]), cx = b[0] + b[2] / 2, cy = b[1] + b[3] / 2;
    int x0 = (int)(cx - side / 2), y0 = (int)(cy - side / 2), x1 = (int)(cx + side / 2),
        y1 = (int)(cy + side / 2);
    x0 = x0 < 0 ? 0 : x0, y0 = y0 < 0 ? 0 : y0;
    x1 = x1 > photo->w ? photo->w : x1, y1 = y1 > photo->h ? photo->h : y1;
    img *c = img_new(x1 - x0, y1 - y0, 3);
    for (int y = y0; y < y1; y++)
        memcpy(c->px + (size_t)(y - y0) * c->w * 3, photo->px + ((size_t)y * photo->w + x0) * 3,
               (size_t)c->w * 3);
    return c;
}

/* frames/s of ex_find_batch on nets over the frames, for about `seconds`; faces found per frame */
static double extract_rate(ex_nets *nets, img **frames, const vs_config *cfg, double seconds,
                           double *faces_per_frame)
{
    ex_face *faces = NULL;
    int count = 0, cap = 0, b = nets->batch;
    img *batch[EX_MAX_BATCH];
    ex_filter none = {0};
    long done = 0, found = 0;
    double t0 = 0;
    for (int round = 0;; round++) {
        if (round == 2) t0 = now_s(), done = found = 0; /* two warm-up batches */
        for (int i = 0; i < b; i++) batch[i] = frames[(round * b + i) % FRAMES];
        ex_find_batch(&faces, &count, &cap, nets, batch, b, cfg, ALIGN_FACE, &none);
        done += b, found += count;
        if (round >= 2 && now_s() - t0 >= seconds) break;
    }
    double t = now_s() - t0;
    free(faces);
    *faces_per_frame = (double)found / done;
    return done / t;
}

/* frames/s of cv_swap_frame on model m over the frames (their faces' landmarks lm[f], n[f]) */
static double convert_rate(model *m, img **frames, float (*const *lm)[136], const int *n,
                           double seconds)
{
    cv_opts co;
    cv_opts_default(&co);
    cv_swapper *sw = cv_swapper_new(m, &co);
    img *work[FRAMES];
    for (int f = 0; f < FRAMES; f++) work[f] = img_clone(frames[f]);
    long done = 0;
    double t0 = 0;
    vs_err e;
    for (int round = 0;; round++) {
        if (round == 2) t0 = now_s(), done = 0;
        int f = round % FRAMES, bad;
        memcpy(work[f]->px, frames[f]->px, (size_t)frames[f]->w * frames[f]->h * 3);
        VS_CHECK(cv_swap_frame(sw, work[f], lm[f], n[f], &bad, &e) == n[f]);
        done++;
        if (round >= 2 && now_s() - t0 >= seconds) break;
    }
    double t = now_s() - t0;
    for (int f = 0; f < FRAMES; f++) img_free(work[f]);
    cv_swapper_free(sw);
    return done / t;
}

static void print_pair(const char *what, double gpu, double cpu)
{
    if (gpu > 0)
        printf("  %-10s gpu %8.1f   cpu %7.2f   gpu/cpu %6.1fx\n", what, gpu, cpu, gpu / cpu);
    else
        printf("  %-10s gpu        -   cpu %7.2f\n", what, cpu);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "both";
    double seconds = argc > 2 ? atof(argv[2]) : 3;
    if (seconds <= 0) seconds = 3;
    const char *models = getenv("VISAGE_MODELS"), *dir = getenv("VISAGE_GPU_FACES");
    if (!models) models = "models";
    if (!dir) dir = ".device/faces";
    img photos[FRAMES];
    for (int i = 0; i < FRAMES; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/face%d.ppm", dir, i);
        if (read_ppm(&photos[i], path)) {
            printf("faces_gpu: skipped: no %s (test_facenet --write-ppm DIR, then "
                   "VISAGE_GPU_FACES=DIR)\n",
                   path);
            return 0;
        }
    }
    vs_err e;
    const nn_backend *gpu = NULL, *cpu = nn_cpu_backend();
    const char *why = "";
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    nn_cpu_set_threads(0);
    if (nn_cuda_device_count(&why) > 0) gpu = nn_cuda_backend(0, NN_PREC_AUTO, &e);
    nn_gpu_info gi;
    if (gpu && nn_cuda_device_info(&gi, 0) == 0)
        printf("GPU: %s (%s), CPU: %ld cores\n", gi.name, nn_precision_name(nn_cuda_precision()),
               cores);
    else
        printf("GPU: none (%s), CPU: %ld cores\n", gpu ? "cannot be queried" : why, cores);

    ex_nets ng = {0}, nc;
    if (ex_nets_open(&nc, models, cpu, &e) || (gpu && ex_nets_open(&ng, models, gpu, &e))) {
        printf("faces_gpu: skipped: %s\n", e.msg);
        return 0;
    }
    vs_config cfg; /* [extract]'s defaults (config.c, which this does not link: inih) */
    memset(&cfg, 0, sizeof cfg);
    cfg.threshold = 0.5f, cfg.size = 256, cfg.similarity = 0.6f, cfg.landmark_filter = 1;
    for (int i = 0; i < FRAMES; i++) { /* one person a frame */
        img *c = one_face(&photos[i], &nc, &cfg);
        free(photos[i].px);
        photos[i] = *c;
        free(c);
    }
    static const int sizes[2][2] = {{1280, 720}, {1920, 1080}};
    int do_extract = strcmp(what, "convert") != 0, do_convert = strcmp(what, "extract") != 0;
    for (int s = 0; s < 2; s++) {
        int w = sizes[s][0], h = sizes[s][1];
        img *frames[FRAMES];
        for (int i = 0; i < FRAMES; i++) frames[i] = frame_of(&photos[i], w, h);
        char label[32];
        snprintf(label, sizeof label, "%dx%d", w, h);
        if (do_extract) {
            double fg = 0, fc, gr = gpu ? extract_rate(&ng, frames, &cfg, seconds, &fg) : 0;
            double cr = extract_rate(&nc, frames, &cfg, seconds, &fc);
            printf("extract, frames/s (detection, landmarks, checks, crops, blur, embeddings; "
                   "%.1f faces a frame):\n",
                   fc);
            print_pair(label, gr, cr);
        }
        if (do_convert) {
            /* every face the CPU's networks find, swapped by Original (64 px) */
            float(*lm[FRAMES])[136];
            int n[FRAMES];
            for (int i = 0; i < FRAMES; i++) {
                ex_found found[EX_MAX_DETECTIONS];
                int k = ex_find_faces(found, EX_MAX_DETECTIONS, &nc, frames[i], &cfg);
                lm[i] = vs_malloc(sizeof *lm[i] * (size_t)(k + 1));
                n[i] = 0;
                for (int j = 0; j < k; j++)
                    if (found[j].verdict == EX_KEEP)
                        memcpy(lm[i][n[i]++], found[j].lm, sizeof lm[i][0]);
            }
            mdl_options o;
            mdl_options_default(&o);
            const mdl_arch *arch = model_arch_find("original");
            model *mc = NULL, *mg = NULL;
            if (model_create_arch(&mc, arch, &o, cpu, 7, &e) ||
                (gpu && model_create_arch(&mg, arch, &o, gpu, 7, &e))) {
                printf("faces_gpu: %s\n", e.msg);
                return 1;
            }
            double gr = mg ? convert_rate(mg, frames, (float(*const *)[136])lm, n, seconds) : 0;
            double cr = convert_rate(mc, frames, (float(*const *)[136])lm, n, seconds);
            printf("convert, frames/s (Original 64 px, mask, avg colour, blend; %.1f faces a "
                   "frame):\n",
                   (n[0] + n[1] + n[2]) / 3.0);
            print_pair(label, gr, cr);
            model_free(mc), model_free(mg);
            for (int i = 0; i < FRAMES; i++) free(lm[i]);
        }
        for (int i = 0; i < FRAMES; i++) img_free(frames[i]);
    }
    ex_nets_free(&nc);
    if (gpu) ex_nets_free(&ng);
    for (int i = 0; i < FRAMES; i++) free(photos[i].px);
    return 0;
}
