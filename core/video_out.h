/* video_out.h: writing a video through FFmpeg (libavformat, libavcodec, libswscale) with the
 * timing of the video it was made from, and that video's audio copied packet for packet (not
 * re-encoded). H.264 at a constant quality by default (libx264, CRF 18), or lossless FFV1 in
 * planar RGB (.mkv), whose frames decode back to the RGB written bit for bit. The container's
 * comment says what the video is. Written to a temporary name in the output's folder, synced and
 * renamed when complete, so no half-written video ever has the final name (a full disk, an error
 * or a stop leaves nothing behind). */
#ifndef VS_VIDEO_OUT_H
#define VS_VIDEO_OUT_H

#include <stdint.h>

#include "err.h"
#include "image.h"

typedef struct vout vout;

typedef enum vout_codec { VOUT_H264, VOUT_LOSSLESS } vout_codec;

typedef struct vout_opts {
    vout_codec codec;    /* VOUT_H264 */
    int crf;             /* H.264 quality, 0 (lossless) - 51; 18 */
    const char *preset;  /* x264's speed preset; "medium" */
    const char *comment; /* the container's comment (may be NULL) */
} vout_opts;

void vout_opts_default(vout_opts *o);

/* Opens `path` (the container from its extension: .mp4, .mkv, .mov, .avi ...) for frames of
 * w x h whose timestamps count in tb_num / tb_den at about fps frames a second, with the audio
 * streams of `audio_from` (a media file; NULL or one without audio: none). A container that
 * cannot hold the codec (lossless needs .mkv), a folder that cannot be written, or a codec this
 * FFmpeg lacks: -1 with a message naming the file. */
int vout_open(vout **out, const char *path, int w, int h, int tb_num, int tb_den, double fps,
              const char *audio_from, const vout_opts *o, vs_err *e);

/* One RGB frame (w x h) presented at pts (tb units, increasing). */
int vout_write(vout *v, const img *frame, int64_t pts, vs_err *e);

/* Flushes the encoder, copies the rest of the audio, writes the trailer, syncs and renames the
 * file into place; frees v either way. */
int vout_close(vout *v, vs_err *e);

/* Drops everything written (the temporary file) and frees v. NULL is allowed. */
void vout_abort(vout *v);

#endif
