/* video.h: reading frames from a video or still image through FFmpeg (libavformat, libavcodec,
 * libswscale): any container and codec FFmpeg reads. Frames come out as RGB img, upright: turned
 * or flipped as the stream's display matrix says (a phone's portrait clip), as the ffmpeg CLI's
 * autorotate does (right angles only; other angles are left as coded), and a still image as its
 * frame's matrix says (a phone photo's EXIF orientation). A video's per-frame matrices are not
 * applied: they could change the size from frame to frame. Paths are always local files. */
#ifndef VS_VIDEO_H
#define VS_VIDEO_H

#include <stdint.h>

#include "err.h"
#include "image.h"

typedef struct vid_reader vid_reader;

typedef struct vid_info {
    int w, h;        /* displayed size: the coded one, swapped by a quarter-turn matrix */
    double fps;      /* average frame rate; 0 if unknown */
    int64_t frames;  /* estimated frame count (container or duration * fps); 0 if unknown */
    double duration; /* seconds; 0 if unknown */
    int is_image;    /* a single still image (image2 demuxer or one-frame stream) */
    int tb_num, tb_den; /* the video stream's time base (vid_frame_pts counts in it) */
} vid_info;

/* Opens path; a file FFmpeg cannot read as video or image gives a message naming it, and so does
 * a picture of more than IMG_MAX_PIXELS. A still image is decoded here (its orientation comes
 * with its picture), so vid_info's size is the displayed one for it too. */
int vid_open(vid_reader **out, const char *path, vs_err *e);
const vid_info *vid_get_info(const vid_reader *r);

/* Decodes the next frame into *frame (reused between calls when its size matches; the caller
 * frees it after the last call). Returns 1 with a frame, 0 at the end, -1 on a decode error
 * (a truncated file is an error only if no frame at all could be read; otherwise the frames
 * before the damage are delivered, then 0, and vid_damaged() says so). */
int vid_read(vid_reader *r, img **frame, int64_t *frame_index, vs_err *e);

/* The presentation time of the frame vid_read or vid_skip delivered last, in the stream's time
 * base (vid_info tb_num / tb_den), as the file has it; where the file has none, one frame after
 * the previous. For writing the same timing back (conversion). */
int64_t vid_frame_pts(const vid_reader *r);

/* Skips `n` frames without converting them to RGB (for --every). Same returns as vid_read. */
int vid_skip(vid_reader *r, int64_t n, vs_err *e);

/* Non-zero when the stream ended early because of a damaged or truncated file. */
int vid_damaged(const vid_reader *r);

void vid_close(vid_reader *r);

/* What a path names: a video, a still image, a folder, or something else (by FFmpeg probing,
 * not the extension: a text file named .mp4 is VS_MEDIA_OTHER). */
typedef enum vs_media { VS_MEDIA_NONE, VS_MEDIA_DIR, VS_MEDIA_IMAGE, VS_MEDIA_VIDEO } vs_media;
int vid_probe(vs_media *kind, const char *path, vs_err *e);

/* True if the file name has an image extension (.jpg .jpeg .png .ppm .pgm .bmp .webp .tif .tiff).
 */
int vid_is_image_name(const char *name);

#endif
