/* video.c: frames from any video or still image FFmpeg reads (see video.h), converted to RGB the
 * way the ffmpeg CLI's auto-inserted scale filter converts them and turned upright by the stream's
 * display matrix as its autorotate does, so a frame here equals
 * `ffmpeg -i f -f rawvideo -pix_fmt rgb24 -` byte for byte (tests/test_media.c checks it). A
 * still image's orientation (a JPEG's EXIF tag) comes as its frame's display matrix and is
 * applied the same way (the FFmpeg 5.1 CLI leaves those pictures as stored). */
#include "video.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "fsutil.h"

/* The ffmpeg CLI scales with "flags=bicubic" (fftools sets sws_flags so); same-size YUV -> RGB
 * then takes libswscale's unscaled converter, which is what we want to reproduce. */
#define VID_SWS_FLAGS SWS_BICUBIC

/* How a coded picture (sw x sh) becomes the displayed one: displayed pixel (x, y) is coded pixel
 * (sx, sy) with, when transposed (displayed size sh x sw), sx = y, sy = x, and otherwise sx = x,
 * sy = y; then flip_x: sx = sw-1-sx, flip_y: sy = sh-1-sy. The eight cases are the CLI's
 * autorotate filters: transpose=cclock_flip|clock|cclock|clock_flip, hflip and/or vflip. */
typedef struct vid_orient {
    int transpose, flip_x, flip_y;
} vid_orient;

struct vid_reader {
    char *path;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int stream;
    AVPacket *pkt;
    AVFrame *frame;
    vid_info info;

    /* RGB conversion, rebuilt when the decoded format, size or colour description changes */
    struct SwsContext *sws;
    int sws_w, sws_h, sws_fmt, sws_space, sws_range;
    /* [h][rgb_stride]: libswscale's x86 yuv2rgb converts 8-pixel groups and leaves out the last
     * group when the row stride cannot hold it whole (a packed 22-pixel row loses 6 pixels), so
     * it converts into padded rows, as the CLI's frames have, and we copy out */
    uint8_t *rgb;
    int rgb_stride;
    size_t rgb_size;

    double expect_end;  /* seconds the stream should last (Matroska DURATION tag); 0: unknown */
    double last_end;    /* end of the last decoded frame, seconds from the stream start */
    int64_t next_index; /* decoded frames so far */
    int64_t packets;    /* packets of our stream read */
    int flushing;       /* sent the end-of-stream packet to the decoder */
    int ended;
    int damaged;
    int last_err;      /* AVERROR of the first damage seen, for messages */
    vid_orient orient; /* from the display matrix; all zero: as coded */
    int64_t last_pts;  /* of the frame delivered last (vid_frame_pts) */
    int have_pts;

    /* A still image is decoded by vid_open, since its orientation comes with its frame: held = 1
     * while r->frame holds that picture, -1 (and held_err) when it could not be decoded; the
     * first vid_read or vid_skip delivers what vid_open found. */
    int held;
    vs_err held_err;
};

static void quiet_ffmpeg(void)
{
    av_log_set_level(AV_LOG_QUIET); /* we report errors ourselves, naming the file */
}

static void ffmpeg_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, quiet_ffmpeg);
}

static const char *averr(int err, char *buf, size_t n)
{
    if (av_strerror(err, buf, n) < 0) snprintf(buf, n, "error %d", err);
    return buf;
}

/* "FILE: no such file or directory" and friends, before FFmpeg sees the path */
static int check_path(const char *path, struct stat *st, vs_err *e)
{
    if (stat(path, st) != 0) return vs_fail(e, "%s: %s", path, fs_strerror(errno));
    return 0;
}

/* An image container (image2 and its *_pipe probes, which read one picture per file) or a
 * still-picture codec holding a single frame. */
static int is_still_image(const AVFormatContext *fmt, const AVStream *st)
{
    const char *name = fmt->iformat->name;
    size_t n = strlen(name);
    if (strcmp(name, "image2") == 0 || (n > 5 && strcmp(name + n - 5, "_pipe") == 0)) return 1;
    static const enum AVCodecID still[] = {
        AV_CODEC_ID_MJPEG, AV_CODEC_ID_PNG,      AV_CODEC_ID_BMP, AV_CODEC_ID_PPM,
        AV_CODEC_ID_PGM,   AV_CODEC_ID_PBM,      AV_CODEC_ID_PAM, AV_CODEC_ID_WEBP,
        AV_CODEC_ID_TIFF,  AV_CODEC_ID_JPEG2000,
    };
    for (size_t i = 0; i < sizeof still / sizeof still[0]; i++)
        if (st->codecpar->codec_id == still[i]) return st->nb_frames == 1;
    return 0;
}

/* A picture too large to hold as RGB is bad input, said before anything is allocated. */
static int check_size(const char *path, int w, int h, vs_err *e)
{
    if ((int64_t)w * (int64_t)h <= IMG_MAX_PIXELS) return 0;
    return vs_fail(e, "%s: picture too large (%d x %d); visage reads up to %lld megapixels", path,
                   w, h, (long long)(IMG_MAX_PIXELS / 1000000));
}

/* Opens the container and finds its best video stream. The path, a local file (check_path),
 * goes to FFmpeg as "file:PATH": FFmpeg takes a leading "word:" as a protocol, so "clip:1.jpg"
 * would fail ("Protocol not found"), "http:x.mp4" would be fetched and "file:x.png" would open
 * x.png. The protocol whitelist keeps what the file refers to (an HLS or concat list, a mov
 * reference) local too: nothing is downloaded at run time. */
static int open_input(AVFormatContext **out, int *stream, const AVCodec **codec, const char *path,
                      vs_err *e)
{
    ffmpeg_init();
    *out = NULL;
    struct stat st;
    if (check_path(path, &st, e)) return -1;
    if (S_ISDIR(st.st_mode)) return vs_fail(e, "%s: is a folder, not a video or image", path);

    char eb[AV_ERROR_MAX_STRING_SIZE];
    AVFormatContext *fmt = NULL;
    AVDictionary *opt = NULL;
    av_dict_set(&opt, "pattern_type", "none", 0); /* image2: "100%.jpg" is a name, not a pattern */
    av_dict_set(&opt, "protocol_whitelist", "file", 0);
    size_t n = strlen(path) + sizeof "file:";
    char *url = vs_malloc(n);
    snprintf(url, n, "file:%s", path);
    int ret = avformat_open_input(&fmt, url, NULL, &opt);
    free(url);
    av_dict_free(&opt);
    if (ret < 0) {
        if (ret == AVERROR(EACCES) || ret == AVERROR(EIO) || ret == AVERROR(ENOENT))
            return vs_fail(e, "%s: cannot open (%s)", path, averr(ret, eb, sizeof eb));
        return vs_fail(e, "%s: not a video or image FFmpeg can read (%s)", path,
                       averr(ret, eb, sizeof eb));
    }
    ret = avformat_find_stream_info(fmt, NULL);
    if (ret < 0) {
        avformat_close_input(&fmt);
        return vs_fail(e, "%s: not a video or image FFmpeg can read (%s)", path,
                       averr(ret, eb, sizeof eb));
    }
    ret = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, codec, 0);
    if (ret < 0) {
        avformat_close_input(&fmt);
        if (ret == AVERROR_DECODER_NOT_FOUND)
            return vs_fail(e, "%s: this FFmpeg has no decoder for its video codec", path);
        return vs_fail(e, "%s: has no video stream or picture", path);
    }
    *stream = ret;
    *out = fmt;
    return 0;
}

/* Matroska keeps per-track durations in a "DURATION" tag, "HH:MM:SS.nnnnnnnnn"; 0 if absent. */
static double duration_tag(const AVStream *st)
{
    const AVDictionaryEntry *t = av_dict_get(st->metadata, "DURATION", NULL, 0);
    int hh, mm;
    double ss;
    if (!t || sscanf(t->value, "%d:%d:%lf", &hh, &mm, &ss) != 3) return 0.0;
    return hh * 3600.0 + mm * 60.0 + ss;
}

/* The stream's display matrix (3x3, 16.16 and 2.30 fixed point, see libavutil/display.h), NULL
 * if it has none. FFmpeg 6.1 (lavc 60.30) moved stream side data into the codec parameters and
 * deprecated av_stream_get_side_data(); 5.1 has only the latter. */
static const int32_t *display_matrix(const AVStream *st)
{
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 30, 100)
    const AVPacketSideData *sd = av_packet_side_data_get(
        st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data, AV_PKT_DATA_DISPLAYMATRIX);
    if (!sd || sd->size < 9 * sizeof(int32_t)) return NULL;
    return (const int32_t *)sd->data;
#else
    size_t size = 0;
    const uint8_t *sd = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    if (!sd || size < 9 * sizeof(int32_t)) return NULL;
    return (const int32_t *)sd;
#endif
}

/* A decoded frame's display matrix (a JPEG's EXIF orientation), NULL if it has none. */
static const int32_t *frame_display_matrix(const AVFrame *f)
{
    const AVFrameSideData *sd = av_frame_get_side_data(f, AV_FRAME_DATA_DISPLAYMATRIX);
    if (!sd || sd->size < 9 * sizeof(int32_t)) return NULL;
    return (const int32_t *)sd->data;
}

/* What the ffmpeg CLI's autorotate does with a display matrix (fftools: get_rotation() and the
 * filters configure_input_video_filter() inserts): the clockwise angle -rotation_get, rounded and
 * taken into [0, 360), picks a transpose for 90 and 270, flips for 180, a vertical flip for 0
 * when m[4] < 0. Other angles (the CLI's rotate filter, which interpolates and pads) are left as
 * coded: phones write only right angles. */
static vid_orient orientation(const int32_t *m)
{
    vid_orient o = {0, 0, 0};
    if (!m) return o;
    double theta = -round(av_display_rotation_get(m));
    if (isnan(theta)) return o; /* a degenerate matrix (zero scale) */
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    if (fabs(theta - 90) < 1.0) {
        o.transpose = 1;
        o.flip_y = m[3] <= 0; /* m[3] > 0: cclock_flip (a plain transpose), else clock */
    } else if (fabs(theta - 180) < 1.0) {
        o.flip_x = m[0] < 0;
        o.flip_y = m[4] < 0;
    } else if (fabs(theta - 270) < 1.0) {
        o.transpose = 1;
        o.flip_x = 1;
        o.flip_y = m[3] < 0; /* clock_flip, else cclock */
    } else if (fabs(theta) < 1.0) {
        o.flip_y = m[4] < 0;
    }
    return o;
}

static void fill_info(vid_info *in, const AVFormatContext *fmt, const AVStream *st,
                      vid_orient orient)
{
    memset(in, 0, sizeof *in);
    in->w = orient.transpose ? st->codecpar->height : st->codecpar->width;
    in->h = orient.transpose ? st->codecpar->width : st->codecpar->height;
    in->is_image = is_still_image(fmt, st);
    in->tb_num = st->time_base.num, in->tb_den = st->time_base.den;
    if (in->is_image) {
        in->frames = 1;
        return;
    }
    AVRational fr = st->avg_frame_rate;
    if (fr.num > 0 && fr.den > 0) in->fps = av_q2d(fr);
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0)
        in->duration = (double)st->duration * av_q2d(st->time_base);
    else if (duration_tag(st) > 0)
        in->duration = duration_tag(st);
    else if (fmt->duration != AV_NOPTS_VALUE && fmt->duration > 0)
        in->duration = (double)fmt->duration / AV_TIME_BASE;
    if (st->nb_frames > 0)
        in->frames = st->nb_frames;
    else if (in->duration > 0 && in->fps > 0)
        in->frames = (int64_t)(in->duration * in->fps + 0.5);
}

static int next_frame(vid_reader *r, vs_err *e);

int vid_open(vid_reader **out, const char *path, vs_err *e)
{
    *out = NULL;
    AVFormatContext *fmt;
    int stream;
    const AVCodec *codec = NULL;
    if (open_input(&fmt, &stream, &codec, path, e)) return -1;

    for (unsigned i = 0; i < fmt->nb_streams; i++)
        if ((int)i != stream) fmt->streams[i]->discard = AVDISCARD_ALL;
    AVStream *st = fmt->streams[stream];

    char eb[AV_ERROR_MAX_STRING_SIZE];
    AVCodecContext *dec = avcodec_alloc_context3(codec);
    VS_CHECK(dec != NULL);
    int ret = avcodec_parameters_to_context(dec, st->codecpar);
    if (ret >= 0) {
        dec->pkt_timebase = st->time_base;
        dec->thread_count = 0; /* auto: one per core */
        if (is_still_image(fmt, st))
            dec->err_recognition |= AV_EF_EXPLODE; /* a truncated photo is an error, not grey */
        ret = avcodec_open2(dec, codec, NULL);
    }
    if (ret < 0) {
        avcodec_free_context(&dec);
        avformat_close_input(&fmt);
        return vs_fail(e, "%s: cannot start the %s decoder (%s)", path, codec->name,
                       averr(ret, eb, sizeof eb));
    }
    if (check_size(path, st->codecpar->width, st->codecpar->height, e)) {
        avcodec_free_context(&dec);
        avformat_close_input(&fmt);
        return -1;
    }

    vid_reader *r = vs_calloc(1, sizeof *r);
    r->path = vs_strdup(path);
    r->fmt = fmt;
    r->dec = dec;
    r->stream = stream;
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    VS_CHECK(r->pkt && r->frame);
    r->sws_fmt = -1;
    r->expect_end = duration_tag(st);
    fill_info(&r->info, fmt, st, r->orient); /* as coded, for next_frame */

    /* A still image carries its orientation (EXIF) on its decoded frame, not on the stream:
     * decode it now, so vid_info gives the displayed size as it does for a rotated clip. A
     * video's per-frame matrices (an H.264 display-orientation SEI) are not applied: they may
     * change from frame to frame, and every frame must have vid_info's size. */
    const int32_t *m = display_matrix(st);
    if (!m && r->info.is_image) {
        r->held = next_frame(r, &r->held_err);
        if (r->held == 1) m = frame_display_matrix(r->frame);
    }
    r->orient = orientation(m);
    fill_info(&r->info, fmt, st, r->orient);
    *out = r;
    return 0;
}

const vid_info *vid_get_info(const vid_reader *r)
{
    return &r->info;
}

int vid_damaged(const vid_reader *r)
{
    return r->damaged;
}

static void note_damage(vid_reader *r, int err)
{
    if (!r->damaged) r->last_err = err;
    r->damaged = 1;
}

/* The decoder has returned its last frame: decide whether the stream ended early. */
static int finish(vid_reader *r, vs_err *e)
{
    r->ended = 1;
    const AVStream *st = r->fmt->streams[r->stream];
    if (r->fmt->pb && r->fmt->pb->error) note_damage(r, r->fmt->pb->error);
    /* mp4/mov and avi index every frame up front; a file cut short loses the tail silently */
    if (!r->info.is_image && st->nb_frames > 0 && r->packets < st->nb_frames)
        note_damage(r, AVERROR_INVALIDDATA);
    /* Matroska has no frame count; a stream stopping well short of its duration tag was cut */
    if (r->expect_end > 0 && r->last_end < r->expect_end - fmax(0.5, 0.02 * r->expect_end))
        note_damage(r, AVERROR_INVALIDDATA);
    /* a still image that yields no picture (a PNG cut short decodes to nothing) */
    if (r->info.is_image && r->next_index == 0) note_damage(r, AVERROR_INVALIDDATA);
    if (r->damaged && r->next_index == 0) {
        char eb[AV_ERROR_MAX_STRING_SIZE];
        return vs_fail(e, "%s: no frame could be decoded: damaged or truncated file (%s)", r->path,
                       averr(r->last_err, eb, sizeof eb));
    }
    return 0;
}

/* Decodes the next frame into r->frame: 1, 0 at the end, -1 if the file yields no frame. */
static int next_frame(vid_reader *r, vs_err *e)
{
    if (r->ended) return 0;
    int errors = 0;
    for (;;) {
        int ret = avcodec_receive_frame(r->dec, r->frame);
        if (ret == 0) {
            const AVStream *st = r->fmt->streams[r->stream];
            int64_t ts = r->frame->best_effort_timestamp;
            if (ts != AV_NOPTS_VALUE) {
                if (st->start_time != AV_NOPTS_VALUE) ts -= st->start_time;
                r->last_end = ts * av_q2d(st->time_base) + (r->info.fps > 0 ? 1 / r->info.fps : 0);
            }
            if (r->frame->decode_error_flags || (r->frame->flags & AV_FRAME_FLAG_CORRUPT))
                note_damage(r, AVERROR_INVALIDDATA);
            return 1;
        }
        if (ret == AVERROR_EOF) return finish(r, e);
        if (ret != AVERROR(EAGAIN)) {
            note_damage(r, ret); /* a bad frame: carry on with the next, like the CLI */
            if (++errors > 1000) return finish(r, e);
            continue;
        }
        if (r->flushing) return finish(r, e); /* cannot happen: a flushed decoder ends in EOF */

        ret = av_read_frame(r->fmt, r->pkt);
        if (ret < 0) {
            if (ret != AVERROR_EOF) note_damage(r, ret);
            avcodec_send_packet(r->dec, NULL);
            r->flushing = 1;
            continue;
        }
        if (r->pkt->stream_index != r->stream) {
            av_packet_unref(r->pkt);
            continue;
        }
        r->packets++;
        if (r->pkt->flags & AV_PKT_FLAG_CORRUPT) note_damage(r, AVERROR_INVALIDDATA);
        ret = avcodec_send_packet(r->dec, r->pkt);
        av_packet_unref(r->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN)) {
            note_damage(r, ret);
            if (++errors > 1000) {
                avcodec_send_packet(r->dec, NULL);
                r->flushing = 1;
            }
        }
    }
}

/* The colour matrix and range the CLI's scale filter uses: the frame's own (in_color_matrix and
 * in_range default to "auto"), BT.601 when unspecified. */
static void set_colorspace(struct SwsContext *sws, const AVFrame *f)
{
    int *inv, *tab, src_full, dst_full, bri, con, sat;
    sws_getColorspaceDetails(sws, &inv, &src_full, &tab, &dst_full, &bri, &con, &sat);
    const int *coef = sws_getCoefficients(f->colorspace);
    if (f->color_range != AVCOL_RANGE_UNSPECIFIED) src_full = f->color_range == AVCOL_RANGE_JPEG;
    sws_setColorspaceDetails(sws, coef, src_full, coef, dst_full, bri, con, sat);
}

static int make_sws(vid_reader *r, const AVFrame *f, vs_err *e)
{
    sws_freeContext(r->sws);
    r->sws = sws_alloc_context();
    VS_CHECK(r->sws != NULL);
    struct SwsContext *s = r->sws;
    av_opt_set_int(s, "srcw", f->width, 0);
    av_opt_set_int(s, "srch", f->height, 0);
    av_opt_set_int(s, "src_format", f->format, 0);
    av_opt_set_int(s, "dstw", f->width, 0);
    av_opt_set_int(s, "dsth", f->height, 0);
    av_opt_set_int(s, "dst_format", AV_PIX_FMT_RGB24, 0);
    av_opt_set_int(s, "sws_flags", VID_SWS_FLAGS, 0);
    /* as vf_scale: MPEG-2 chroma siting (centred vertically) for plain yuv420p */
    if (f->format == AV_PIX_FMT_YUV420P) av_opt_set_int(s, "src_v_chr_pos", 128, 0);
    int ret = sws_init_context(s, NULL, NULL);
    if (ret < 0) {
        char eb[AV_ERROR_MAX_STRING_SIZE];
        sws_freeContext(r->sws);
        r->sws = NULL;
        r->sws_fmt = -1;
        return vs_fail(e, "%s: cannot convert %s pictures to RGB (%s)", r->path,
                       av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "?",
                       averr(ret, eb, sizeof eb));
    }
    set_colorspace(s, f);
    r->sws_w = f->width;
    r->sws_h = f->height;
    r->sws_fmt = f->format;
    r->sws_space = f->colorspace;
    r->sws_range = f->color_range;

    r->rgb_stride = FFALIGN(3 * f->width + 3 * 16, 64);
    size_t need = (size_t)r->rgb_stride * (size_t)f->height + 64;
    if (need > r->rgb_size) {
        av_free(r->rgb);
        r->rgb = av_malloc(need);
        VS_CHECK(r->rgb != NULL);
        r->rgb_size = need;
    }
    return 0;
}

/* im (the displayed picture) from the coded picture src ([sh][stride] RGB, sw x sh pixels) turned
 * by o. Each displayed row walks the source by a fixed step: 3 bytes (or -3) along a row, or
 * one source row (+-stride) down a column when transposed; transposed rows go in bands of 64
 * columns so the 64 source rows they touch stay in cache from one displayed row to the next. */
static void orient_copy(img *im, const uint8_t *src, int stride, int sw, int sh, vid_orient o)
{
    const int band = o.transpose ? 64 : im->w;
    for (int x0 = 0; x0 < im->w; x0 += band) {
        int x1 = x0 + band < im->w ? x0 + band : im->w;
        for (int y = 0; y < im->h; y++) {
            ptrdiff_t at, step; /* source offset of displayed pixel (0, y), and per x */
            if (o.transpose) {
                int sx = o.flip_x ? sw - 1 - y : y;
                at = (ptrdiff_t)(o.flip_y ? sh - 1 : 0) * stride + 3 * sx;
                step = o.flip_y ? -(ptrdiff_t)stride : stride;
            } else {
                int sy = o.flip_y ? sh - 1 - y : y;
                at = (ptrdiff_t)sy * stride + (o.flip_x ? 3 * (ptrdiff_t)(sw - 1) : 0);
                step = o.flip_x ? -3 : 3;
            }
            uint8_t *d = im->px + ((size_t)y * im->w + x0) * 3;
            if (step == 3) {
                memcpy(d, src + at + 3 * x0, (size_t)(x1 - x0) * 3);
                continue;
            }
            for (int x = x0; x < x1; x++, d += 3) {
                const uint8_t *s = src + at + step * x;
                d[0] = s[0];
                d[1] = s[1];
                d[2] = s[2];
            }
        }
    }
}

static int to_rgb(vid_reader *r, img **out, const AVFrame *f, vs_err *e)
{
    if (f->width <= 0 || f->height <= 0)
        return vs_fail(e, "%s: decoder gave an empty picture", r->path);
    if (check_size(r->path, f->width, f->height, e)) return -1;
    if (!r->sws || f->width != r->sws_w || f->height != r->sws_h || f->format != r->sws_fmt ||
        (int)f->colorspace != r->sws_space || (int)f->color_range != r->sws_range)
        if (make_sws(r, f, e)) return -1;

    uint8_t *dst[4] = {r->rgb};
    int dst_stride[4] = {r->rgb_stride};
    sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_stride);

    int w = r->orient.transpose ? f->height : f->width;
    int h = r->orient.transpose ? f->width : f->height;
    img *im = *out;
    if (!im || im->w != w || im->h != h || im->c != 3) {
        img_free(im);
        im = *out = img_new(w, h, 3);
    }
    orient_copy(im, r->rgb, r->rgb_stride, f->width, f->height, r->orient);
    return 0;
}

/* next_frame, after the picture or the failure vid_open found first */
static int pull_frame(vid_reader *r, vs_err *e)
{
    if (r->held) {
        int rc = r->held;
        r->held = 0;
        if (rc < 0 && e) *e = r->held_err;
        return rc;
    }
    return next_frame(r, e);
}

/* r->last_pts from the frame pulled last: its timestamp, or one frame on from the previous */
static void note_pts(vid_reader *r)
{
    int64_t ts = r->frame->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE || (r->have_pts && ts <= r->last_pts)) {
        const AVStream *st = r->fmt->streams[r->stream];
        int64_t step = 1;
        if (r->info.fps > 0)
            step = av_rescale_q(1, av_inv_q(st->avg_frame_rate), st->time_base);
        ts = r->have_pts ? r->last_pts + (step > 0 ? step : 1) : 0;
    }
    r->last_pts = ts, r->have_pts = 1;
}

int64_t vid_frame_pts(const vid_reader *r)
{
    return r->last_pts;
}

int vid_read(vid_reader *r, img **frame, int64_t *frame_index, vs_err *e)
{
    int rc = pull_frame(r, e);
    if (rc <= 0) return rc;
    note_pts(r);
    rc = to_rgb(r, frame, r->frame, e);
    av_frame_unref(r->frame);
    if (rc) return -1;
    if (frame_index) *frame_index = r->next_index;
    r->next_index++;
    return 1;
}

int vid_skip(vid_reader *r, int64_t n, vs_err *e)
{
    for (int64_t i = 0; i < n; i++) {
        int rc = pull_frame(r, e);
        if (rc <= 0) return rc;
        note_pts(r);
        av_frame_unref(r->frame);
        r->next_index++;
    }
    return 1;
}

void vid_close(vid_reader *r)
{
    if (!r) return;
    sws_freeContext(r->sws);
    av_free(r->rgb);
    av_frame_free(&r->frame);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
    free(r->path);
    free(r);
}

int vid_probe(vs_media *kind, const char *path, vs_err *e)
{
    *kind = VS_MEDIA_NONE;
    struct stat st;
    if (check_path(path, &st, e)) return -1;
    if (S_ISDIR(st.st_mode)) {
        *kind = VS_MEDIA_DIR;
        return 0;
    }
    AVFormatContext *fmt;
    int stream;
    const AVCodec *codec = NULL;
    if (open_input(&fmt, &stream, &codec, path, e)) return 0; /* e says why it is neither */
    *kind = is_still_image(fmt, fmt->streams[stream]) ? VS_MEDIA_IMAGE : VS_MEDIA_VIDEO;
    avformat_close_input(&fmt);
    return 0;
}

int vid_is_image_name(const char *name)
{
    static const char *const ext[] = {"jpg", "jpeg", "png", "ppm", "pgm",
                                      "bmp", "webp", "tif", "tiff"};
    const char *dot = strrchr(fs_basename(name), '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (strcasecmp(dot + 1, ext[i]) == 0) return 1;
    return 0;
}
