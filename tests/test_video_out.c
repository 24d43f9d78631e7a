/* test_video_out.c: writing videos (core/video_out.c). Lossless FFV1 gives back every frame bit
 * for bit at the timestamps written (irregular ones too); H.264 keeps the frame count and the
 * timestamps and stays close to the frames; a container that cannot hold the codec, a folder that
 * is not there and a full disk are one message each with nothing left behind; and (with
 * ../shared/data) a real clip rewritten keeps its size, frame count, frame rate, time base and
 * every audio packet byte for byte. */
#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libavformat/avformat.h>

#include "check.h"
#include "fsutil.h"
#include "full_disk.h"
#include "video.h"
#include "video_out.h"

static char dir[256];

/* frame k of a synthetic clip: smooth waves that move */
static img *synth(int w, int h, int k)
{
    img *im = img_new(w, h, 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++)
                im->px[((size_t)y * w + x) * 3 + c] =
                    (uint8_t)(128 + 100 * sin((x * (c + 1) + y * 2 + k * 7) * 0.05));
    return im;
}

static int count_entries(const char *d)
{
    DIR *dp = opendir(d);
    int n = 0;
    struct dirent *de;
    while (dp && (de = readdir(dp)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    if (dp) closedir(dp);
    return n;
}

/* writes n synthetic frames at pts[i] into path; 0 or -1 with e */
static int write_clip(const char *path, int w, int h, int n, const int64_t *pts, vout_codec codec,
                      vs_err *e)
{
    vout_opts o;
    vout_opts_default(&o);
    o.codec = codec;
    o.preset = "veryfast";
    o.comment = "test clip";
    vout *v;
    if (vout_open(&v, path, w, h, 1, 1000, 25.0, NULL, &o, e)) return -1;
    for (int k = 0; k < n; k++) {
        img *f = synth(w, h, k);
        int rc = vout_write(v, f, pts[k], e);
        img_free(f);
        if (rc) {
            vout_abort(v);
            return -1;
        }
    }
    return vout_close(v, e);
}

static void test_round_trip(void)
{
    const int W = 96, H = 64, N = 12;
    int64_t pts[N];
    for (int k = 0; k < N; k++) pts[k] = k * 40 + (k > 6 ? 13 : 0); /* a jump: variable rate */
    for (int codec = VOUT_H264; codec <= VOUT_LOSSLESS; codec++) {
        char path[512];
        snprintf(path, sizeof path, "%s/clip.%s", dir, codec == VOUT_LOSSLESS ? "mkv" : "mp4");
        vs_err e;
        CHECKF(write_clip(path, W, H, N, pts, (vout_codec)codec, &e) == 0, "%s: %s", path, e.msg);
        vid_reader *r = NULL;
        CHECKF(vid_open(&r, path, &e) == 0, "%s: %s", path, e.msg);
        if (!r) continue;
        const vid_info *in = vid_get_info(r);
        CHECK(in->w == W && in->h == H);
        img *f = NULL;
        int64_t idx;
        int got = 0, same = 0, pts_ok = 0;
        double worst_psnr = 1e9;
        while (vid_read(r, &f, &idx, &e) == 1) {
            img *want = synth(W, H, got);
            size_t np = (size_t)W * H * 3;
            double se = 0;
            for (size_t i = 0; i < np; i++) {
                double d = (double)f->px[i] - want->px[i];
                se += d * d;
            }
            double psnr = se > 0 ? 10 * log10(255.0 * 255.0 / (se / np)) : 99;
            if (psnr < worst_psnr) worst_psnr = psnr;
            same += !memcmp(f->px, want->px, np);
            /* the timestamps as written, in the stream's own time base */
            int64_t t = vid_frame_pts(r);
            double sec = (double)t * in->tb_num / in->tb_den;
            pts_ok += got < N && fabs(sec - pts[got] / 1000.0) < 1e-6;
            img_free(want);
            got++;
        }
        CHECKF(got == N, "%s: %d frames read back, %d written", path, got, N);
        CHECKF(pts_ok == N, "%s: %d of %d timestamps as written", path, pts_ok, N);
        if (codec == VOUT_LOSSLESS)
            CHECKF(same == N, "lossless: %d of %d frames bit for bit", same, N);
        else
            CHECKF(worst_psnr > 30, "H.264 at CRF 18: worst PSNR %.1f dB", worst_psnr);
        img_free(f);
        vid_close(r);
        /* the comment is in the container */
        AVFormatContext *fc = NULL;
        CHECK(avformat_open_input(&fc, path, NULL, NULL) == 0);
        const AVDictionaryEntry *c = fc ? av_dict_get(fc->metadata, "comment", NULL, 0) : NULL;
        CHECKF(c && !strcmp(c->value, "test clip"), "%s: comment '%s'", path, c ? c->value : "");
        avformat_close_input(&fc);
    }
}

typedef struct full_clip {
    const char *path;
} full_clip;

/* 40 lossless frames of 160x120: far more than the full disk's 20 kB */
static int write_full_clip(void *arg, vs_err *e)
{
    int64_t many[40];
    for (int k = 0; k < 40; k++) many[k] = k * 40;
    return write_clip(((full_clip *)arg)->path, 160, 120, 40, many, VOUT_LOSSLESS, e);
}

static void test_bad_output(void)
{
    int64_t pts[2] = {0, 40};
    vs_err e;
    char p[512];
    snprintf(p, sizeof p, "%s/lossless.mp4", dir);
    CHECK(write_clip(p, 32, 32, 2, pts, VOUT_LOSSLESS, &e) == -1 && strstr(e.msg, p) &&
          strstr(e.msg, ".mkv"));
    snprintf(p, sizeof p, "%s/no/such/folder/x.mp4", dir);
    CHECK(write_clip(p, 32, 32, 2, pts, VOUT_H264, &e) == -1 && strstr(e.msg, p));
    snprintf(p, sizeof p, "%s/x.nonsense", dir);
    CHECK(write_clip(p, 32, 32, 2, pts, VOUT_H264, &e) == -1 && strstr(e.msg, p));
    /* a full disk (RLIMIT_FSIZE in a child): one message, no file, no temporary */
    char sub[300];
    snprintf(sub, sizeof sub, "%s/full", dir);
    CHECK(fs_mkdirs(sub, &e) == 0);
    snprintf(p, sizeof p, "%s/out.mkv", sub);
    char buf[1200];
    full_clip clip = {p};
    CHECK(check_full_disk(20000, write_full_clip, &clip, buf, sizeof buf) == 0);
    CHECKF(strncmp(buf, "-1 ", 3) == 0 && strstr(buf, p) && strstr(buf, "no space left"),
           "full disk: the writer said \"%s\"", buf);
    CHECKF(count_entries(sub) == 0, "a full disk left %d files in %s", count_entries(sub), sub);
}

/* every packet of the audio streams of a and b, compared */
static int same_audio(const char *a, const char *b, int *packets)
{
    AVFormatContext *fa = NULL, *fb = NULL;
    if (avformat_open_input(&fa, a, NULL, NULL) || avformat_open_input(&fb, b, NULL, NULL))
        return 0;
    avformat_find_stream_info(fa, NULL);
    avformat_find_stream_info(fb, NULL);
    AVPacket *pa = av_packet_alloc(), *pb = av_packet_alloc();
    int ok = 1, n = 0;
    for (;;) {
        int ra, rb;
        while ((ra = av_read_frame(fa, pa)) == 0 &&
               fa->streams[pa->stream_index]->codecpar->codec_type != AVMEDIA_TYPE_AUDIO)
            av_packet_unref(pa);
        while ((rb = av_read_frame(fb, pb)) == 0 &&
               fb->streams[pb->stream_index]->codecpar->codec_type != AVMEDIA_TYPE_AUDIO)
            av_packet_unref(pb);
        if (ra || rb) {
            ok &= ra != 0 && rb != 0; /* both ended */
            break;
        }
        ok &= pa->size == pb->size && !memcmp(pa->data, pb->data, (size_t)pa->size);
        n++;
        av_packet_unref(pa), av_packet_unref(pb);
    }
    *packets = n;
    av_packet_free(&pa), av_packet_free(&pb);
    avformat_close_input(&fa), avformat_close_input(&fb);
    return ok && n > 0;
}

static void test_real_clip(void)
{
    if (!check_have_data()) {
        printf("skipped: no ../shared/data (the real clip)\n");
        return;
    }
    char in[512], out[512];
    snprintf(in, sizeof in, "%s/video/retalking_4.mp4", check_data_dir());
    snprintf(out, sizeof out, "%s/retalking.mp4", dir);
    vs_err e;
    vid_reader *r = NULL;
    CHECKF(vid_open(&r, in, &e) == 0, "%s", e.msg);
    if (!r) return;
    const vid_info *vi = vid_get_info(r);
    vid_info info = *vi;
    vout_opts o;
    vout_opts_default(&o);
    o.preset = "ultrafast";
    vout *v = NULL;
    CHECKF(vout_open(&v, out, info.w, info.h, info.tb_num, info.tb_den, info.fps, in, &o, &e) == 0,
           "%s", e.msg);
    img *f = NULL;
    int64_t idx;
    int n_in = 0;
    while (v && vid_read(r, &f, &idx, &e) == 1) {
        CHECK(vout_write(v, f, vid_frame_pts(r), &e) == 0);
        n_in++;
    }
    vid_close(r);
    img_free(f);
    if (v) CHECKF(vout_close(v, &e) == 0, "%s", e.msg);
    vid_reader *r2 = NULL;
    CHECKF(vid_open(&r2, out, &e) == 0, "%s", e.msg);
    if (!r2) return;
    const vid_info *oi = vid_get_info(r2);
    CHECK(oi->w == info.w && oi->h == info.h && fabs(oi->fps - info.fps) < 1e-6);
    CHECK(oi->tb_num == info.tb_num && oi->tb_den == info.tb_den);
    int n_out = 0;
    f = NULL;
    while (vid_read(r2, &f, &idx, &e) == 1) n_out++;
    img_free(f);
    vid_close(r2);
    CHECKF(n_out == n_in && n_in > 0, "frames: %d written, %d read back", n_in, n_out);
    int packets = 0;
    CHECKF(same_audio(in, out, &packets), "the audio differs (%d packets compared)", packets);
    printf("retalking_4.mp4 rewritten: %d frames, %d audio packets identical\n", n_out, packets);
}

/* --compare A B (for tests/cli/convert.sh): one line per frame, "INDEX same" or "INDEX differs",
 * then "frames N M" (the counts of A and B) and "audio same PACKETS" or "audio differs" (no audio
 * in either counts as different) */
static int compare_videos(const char *a, const char *b)
{
    vid_reader *ra = NULL, *rb = NULL;
    vs_err e;
    if (vid_open(&ra, a, &e) || vid_open(&rb, b, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        vid_close(ra);
        return 1;
    }
    img *fa = NULL, *fb = NULL;
    int64_t ia, ib, na = 0, nb = 0;
    for (;;) {
        int ga = vid_read(ra, &fa, &ia, &e), gb = vid_read(rb, &fb, &ib, &e);
        na += ga == 1, nb += gb == 1;
        if (ga != 1 || gb != 1) {
            while (ga == 1 && vid_read(ra, &fa, &ia, &e) == 1) na++;
            while (gb == 1 && vid_read(rb, &fb, &ib, &e) == 1) nb++;
            break;
        }
        int same =
            fa->w == fb->w && fa->h == fb->h && !memcmp(fa->px, fb->px, (size_t)fa->w * fa->h * 3);
        printf("%" PRId64 " %s\n", ia, same ? "same" : "differs");
    }
    printf("frames %" PRId64 " %" PRId64 "\n", na, nb);
    int packets = 0;
    if (same_audio(a, b, &packets))
        printf("audio same %d\n", packets);
    else
        printf("audio differs\n");
    img_free(fa), img_free(fb);
    vid_close(ra), vid_close(rb);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--compare")) return compare_videos(argv[2], argv[3]);
    snprintf(dir, sizeof dir, "/tmp/test_video_out.XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    test_round_trip();
    test_bad_output();
    test_real_clip();
    check_rm_rf(dir);
    return check_report("test_video_out");
}
