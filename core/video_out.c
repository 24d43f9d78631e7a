/* video_out.c: writing a video with another's timing and audio (see video_out.h). The muxer
 * writes through an AVIOContext onto fsutil's atomic file, so the output appears under its name
 * only when it is complete and synced. */
#include "video_out.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "fsutil.h"

#define IO_BUF 65536
#define MAX_AUDIO 8

struct vout {
    char *path;
    fs_atomic file;
    AVIOContext *io;
    uint8_t *io_buf;
    AVFormatContext *oc;
    AVCodecContext *enc;
    AVStream *vst;
    AVFrame *frame;
    AVPacket *pkt;
    struct SwsContext *sws;
    int w, h;
    int header_written;
    /* the audio source: its streams' packets copied as they come, interleaved by time */
    AVFormatContext *ic;
    int amap[64]; /* input stream -> output stream, -1: not copied */
    AVPacket *apkt;
    int apkt_ready, audio_done;
};

static const char *averr_str(int err, char *buf, size_t n)
{
    av_strerror(err, buf, n);
    return buf;
}

static int fail_av(vs_err *e, const vout *v, const char *what, int err)
{
    char eb[AV_ERROR_MAX_STRING_SIZE];
    if (err == AVERROR(ENOSPC) || err == AVERROR(EFBIG) || err == AVERROR(EIO) ||
        fs_atomic_failed(&v->file))
        return vs_fail(e, "%s: cannot write (%s)", v->path,
                       fs_strerror(err < 0 && err > -4096 ? -err : ENOSPC));
    return vs_fail(e, "%s: %s (%s)", v->path, what, averr_str(err, eb, sizeof eb));
}

void vout_opts_default(vout_opts *o)
{
    *o = (vout_opts){.codec = VOUT_H264, .crf = 18, .preset = "medium"};
}

/* ---- the file under the muxer ---------------------------------------------------------------- */

/* FFmpeg 7 made the buffer const */
#if LIBAVFORMAT_VERSION_MAJOR >= 61
#define IO_BUF_CONST const
#else
#define IO_BUF_CONST
#endif

static int io_write(void *opaque, IO_BUF_CONST uint8_t *buf, int n)
{
    vout *v = opaque;
    if (fwrite(buf, 1, (size_t)n, v->file.f) != (size_t)n || fs_atomic_failed(&v->file))
        return AVERROR(errno ? errno : EIO);
    return n;
}

static int64_t io_seek(void *opaque, int64_t off, int whence)
{
    vout *v = opaque;
    if (whence == AVSEEK_SIZE) {
        off_t here = ftello(v->file.f);
        if (fseeko(v->file.f, 0, SEEK_END)) return AVERROR(errno);
        off_t size = ftello(v->file.f);
        if (fseeko(v->file.f, here, SEEK_SET)) return AVERROR(errno);
        return size;
    }
    if (fseeko(v->file.f, (off_t)off, whence & ~AVSEEK_FORCE)) return AVERROR(errno);
    return ftello(v->file.f);
}

/* ---- audio copied from the source --------------------------------------------------------------
 */

static int open_audio(vout *v, const char *src, vs_err *e)
{
    for (int i = 0; i < 64; i++) v->amap[i] = -1;
    v->audio_done = 1;
    if (!src) return 0;
    if (avformat_open_input(&v->ic, src, NULL, NULL) < 0) return 0; /* read by the caller */
    if (avformat_find_stream_info(v->ic, NULL) < 0) return 0;
    int n = 0;
    for (unsigned i = 0; i < v->ic->nb_streams && i < 64 && n < MAX_AUDIO; i++) {
        const AVStream *is = v->ic->streams[i];
        if (is->codecpar->codec_type != AVMEDIA_TYPE_AUDIO) continue;
        AVStream *os = avformat_new_stream(v->oc, NULL);
        if (!os) return vs_fail(e, "%s: out of memory", v->path);
        int ret = avcodec_parameters_copy(os->codecpar, is->codecpar);
        if (ret < 0) return fail_av(e, v, "cannot copy the audio stream", ret);
        os->codecpar->codec_tag = 0; /* the output container chooses its own */
        os->time_base = is->time_base;
        av_dict_copy(&os->metadata, is->metadata, 0);
        v->amap[i] = os->index;
        n++;
    }
    if (n) {
        v->apkt = av_packet_alloc();
        v->audio_done = 0;
    }
    return 0;
}

/* the next audio packet of the source into v->apkt; 0 at the end */
static int next_audio(vout *v)
{
    while (!v->audio_done) {
        if (av_read_frame(v->ic, v->apkt) < 0) {
            v->audio_done = 1;
            return 0;
        }
        int si = v->apkt->stream_index;
        if (si >= 0 && si < 64 && v->amap[si] >= 0) return 1;
        av_packet_unref(v->apkt);
    }
    return 0;
}

/* copies the source's audio packets up to time t (seconds; +inf: all) */
static int copy_audio(vout *v, double t, vs_err *e)
{
    for (;;) {
        if (!v->apkt_ready) {
            if (!next_audio(v)) return 0;
            v->apkt_ready = 1;
        }
        AVStream *is = v->ic->streams[v->apkt->stream_index];
        int64_t ts = v->apkt->dts != AV_NOPTS_VALUE ? v->apkt->dts : v->apkt->pts;
        if (ts != AV_NOPTS_VALUE && ts * av_q2d(is->time_base) > t) return 0;
        AVStream *os = v->oc->streams[v->amap[v->apkt->stream_index]];
        av_packet_rescale_ts(v->apkt, is->time_base, os->time_base);
        v->apkt->stream_index = os->index;
        v->apkt->pos = -1;
        int ret = av_interleaved_write_frame(v->oc, v->apkt); /* takes the packet */
        v->apkt_ready = 0;
        if (ret < 0) return fail_av(e, v, "cannot write the audio", ret);
    }
}

/* ---- opening -----------------------------------------------------------------------------------
 */

static const AVCodec *find_encoder(vout_codec c)
{
    if (c == VOUT_LOSSLESS) return avcodec_find_encoder(AV_CODEC_ID_FFV1);
    const AVCodec *x = avcodec_find_encoder_by_name("libx264");
    return x ? x : avcodec_find_encoder(AV_CODEC_ID_H264);
}

static int supports(const AVCodec *c, enum AVPixelFormat p)
{
    for (const enum AVPixelFormat *f = c->pix_fmts; f && *f != AV_PIX_FMT_NONE; f++)
        if (*f == p) return 1;
    return 0;
}

/* the pixel format: RGB for lossless (planar, else packed), 4:2:0 for H.264 (4:4:4 for odd
 * sizes, which 4:2:0 cannot hold) */
static enum AVPixelFormat pick_format(const AVCodec *c, vout_codec kind, int w, int h)
{
    static const enum AVPixelFormat rgb[] = {AV_PIX_FMT_GBRP, AV_PIX_FMT_BGR0, AV_PIX_FMT_0RGB32,
                                             AV_PIX_FMT_RGB24};
    if (kind == VOUT_LOSSLESS) {
        for (int i = 0; i < 4; i++)
            if (supports(c, rgb[i])) return rgb[i];
        return AV_PIX_FMT_NONE;
    }
    enum AVPixelFormat want = w % 2 == 0 && h % 2 == 0 ? AV_PIX_FMT_YUV420P : AV_PIX_FMT_YUV444P;
    return !c->pix_fmts || supports(c, want) ? want : c->pix_fmts[0];
}

int vout_open(vout **out, const char *path, int w, int h, int tb_num, int tb_den, double fps,
              const char *audio_from, const vout_opts *o, vs_err *e)
{
    *out = NULL;
    av_log_set_level(AV_LOG_QUIET); /* errors are reported here, naming the file */
    vout *v = calloc(1, sizeof *v);
    if (!v) abort();
    v->path = strdup(path);
    v->w = w, v->h = h;
    v->file.fd = -1;
    int ret;
    const AVOutputFormat *fmt = av_guess_format(NULL, path, NULL);
    if (!fmt) {
        vs_fail(e, "%s: no container for this file name (use .mp4, .mkv, .mov or .avi)", path);
        goto fail;
    }
    const AVCodec *codec = find_encoder(o->codec);
    if (!codec) {
        vs_fail(e, "%s: this FFmpeg has no %s encoder", path,
                o->codec == VOUT_LOSSLESS ? "FFV1" : "H.264");
        goto fail;
    }
    if (avformat_query_codec(fmt, codec->id, FF_COMPLIANCE_NORMAL) == 0) {
        vs_fail(e, "%s: a %s file cannot hold %s video%s", path, fmt->name, codec->name,
                o->codec == VOUT_LOSSLESS ? " (lossless output needs .mkv)" : "");
        goto fail;
    }
    if (avformat_alloc_output_context2(&v->oc, fmt, NULL, path) < 0 || !v->oc) {
        vs_fail(e, "%s: cannot set up the container", path);
        goto fail;
    }
    v->enc = avcodec_alloc_context3(codec);
    v->enc->width = w, v->enc->height = h;
    v->enc->time_base = (AVRational){tb_num, tb_den};
    if (fps > 0) v->enc->framerate = av_d2q(fps, 1 << 20);
    v->enc->pix_fmt = pick_format(codec, o->codec, w, h);
    if (v->enc->pix_fmt == AV_PIX_FMT_NONE) {
        vs_fail(e, "%s: this FFmpeg's %s encoder takes no RGB", path, codec->name);
        goto fail;
    }
    v->enc->sample_aspect_ratio = (AVRational){1, 1};
    if (v->oc->oformat->flags & AVFMT_GLOBALHEADER) v->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary *eo = NULL;
    if (o->codec == VOUT_H264) {
        char crf[16];
        snprintf(crf, sizeof crf, "%d", o->crf);
        av_dict_set(&eo, "crf", crf, 0);
        av_dict_set(&eo, "preset", o->preset ? o->preset : "medium", 0);
    } else {
        av_dict_set(&eo, "level", "3", 0);
        av_dict_set(&eo, "slicecrc", "1", 0);
    }
    ret = avcodec_open2(v->enc, codec, &eo);
    av_dict_free(&eo);
    if (ret < 0) {
        fail_av(e, v, "cannot open the video encoder", ret);
        goto fail;
    }
    v->vst = avformat_new_stream(v->oc, NULL);
    avcodec_parameters_from_context(v->vst->codecpar, v->enc);
    v->vst->time_base = v->enc->time_base;
    if (fps > 0) v->vst->avg_frame_rate = v->enc->framerate;
    if (open_audio(v, audio_from, e)) goto fail;
    if (o->comment) av_dict_set(&v->oc->metadata, "comment", o->comment, 0);
    av_dict_set(&v->oc->metadata, "encoder", "visage", 0);

    if (fs_atomic_open(&v->file, path, e)) goto fail;
    v->io_buf = av_malloc(IO_BUF);
    v->io = avio_alloc_context(v->io_buf, IO_BUF, 1, v, NULL, io_write, io_seek);
    v->io->seekable = AVIO_SEEKABLE_NORMAL; /* a plain file: the muxer may go back (MP4) */
    v->oc->pb = v->io;
    v->oc->flags |= AVFMT_FLAG_CUSTOM_IO;
    ret = avformat_write_header(v->oc, NULL);
    if (ret < 0) {
        fail_av(e, v, "cannot write the header", ret);
        goto fail;
    }
    v->header_written = 1;
    v->frame = av_frame_alloc();
    v->frame->format = v->enc->pix_fmt, v->frame->width = w, v->frame->height = h;
    v->pkt = av_packet_alloc();
    if (av_frame_get_buffer(v->frame, 0) < 0) {
        vs_fail(e, "%s: out of memory", path);
        goto fail;
    }
    v->sws = sws_getContext(w, h, AV_PIX_FMT_RGB24, w, h, v->enc->pix_fmt, SWS_BICUBIC, NULL, NULL,
                            NULL);
    if (!v->sws) {
        vs_fail(e, "%s: cannot convert RGB to %s", path, av_get_pix_fmt_name(v->enc->pix_fmt));
        goto fail;
    }
    *out = v;
    return 0;
fail:
    vout_abort(v);
    return -1;
}

/* ---- frames ------------------------------------------------------------------------------------
 */

/* the encoder's packets out to the file, audio interleaved before each */
static int drain(vout *v, vs_err *e)
{
    for (;;) {
        int ret = avcodec_receive_packet(v->enc, v->pkt);
        if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) return 0;
        if (ret < 0) return fail_av(e, v, "cannot encode", ret);
        double t = v->pkt->dts * av_q2d(v->enc->time_base);
        if (copy_audio(v, t, e)) return -1;
        av_packet_rescale_ts(v->pkt, v->enc->time_base, v->vst->time_base);
        v->pkt->stream_index = v->vst->index;
        ret = av_interleaved_write_frame(v->oc, v->pkt);
        if (ret < 0) return fail_av(e, v, "cannot write the video", ret);
    }
}

int vout_write(vout *v, const img *frame, int64_t pts, vs_err *e)
{
    VS_CHECK(frame->w == v->w && frame->h == v->h && frame->c == 3);
    if (av_frame_make_writable(v->frame) < 0) return vs_fail(e, "%s: out of memory", v->path);
    const uint8_t *src[1] = {frame->px};
    const int stride[1] = {frame->w * 3};
    sws_scale(v->sws, src, stride, 0, v->h, v->frame->data, v->frame->linesize);
    v->frame->pts = pts;
    int ret = avcodec_send_frame(v->enc, v->frame);
    if (ret < 0) return fail_av(e, v, "cannot encode", ret);
    return drain(v, e);
}

int vout_close(vout *v, vs_err *e)
{
    int rc = 0, ret = avcodec_send_frame(v->enc, NULL);
    if (ret < 0 && ret != AVERROR_EOF) rc = fail_av(e, v, "cannot flush the encoder", ret);
    if (!rc) rc = drain(v, e);
    if (!rc) rc = copy_audio(v, 1e300, e);
    if (!rc && (ret = av_write_trailer(v->oc)) < 0) rc = fail_av(e, v, "cannot finish", ret);
    if (!rc) {
        avio_flush(v->io);
        if (v->io->error < 0) rc = fail_av(e, v, "cannot write", v->io->error);
    }
    v->header_written = 0;
    if (!rc) {
        rc = fs_atomic_commit(&v->file, e);
        v->file.fd = -1;
    }
    vout_abort(v); /* frees; after a commit there is no temporary file left to remove */
    return rc;
}

void vout_abort(vout *v)
{
    if (!v) return;
    if (v->file.f) fs_atomic_abort(&v->file);
    sws_freeContext(v->sws);
    av_frame_free(&v->frame);
    av_packet_free(&v->pkt);
    av_packet_free(&v->apkt);
    avcodec_free_context(&v->enc);
    if (v->io) {
        av_freep(&v->io->buffer);
        avio_context_free(&v->io);
    }
    avformat_free_context(v->oc);
    avformat_close_input(&v->ic);
    free(v->path);
    free(v);
}
