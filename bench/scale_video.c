/* scale_video.c: a video rescaled (area down, bilinear up) with its timing and audio, for the
 * conversion benchmark's 1280x720 input (bench/convert.sh): no ffmpeg command line needed.
 * Usage: build/bench/scale_video IN OUT W H */
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "video.h"
#include "video_out.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s IN OUT W H\n", argv[0]);
        return 2;
    }
    int w = atoi(argv[3]), h = atoi(argv[4]);
    vs_err e;
    vid_reader *r = NULL;
    vout *v = NULL;
    if (vid_open(&r, argv[1], &e)) goto fail;
    const vid_info *in = vid_get_info(r);
    vout_opts o;
    vout_opts_default(&o);
    o.preset = "veryfast";
    if (vout_open(&v, argv[2], w, h, in->tb_num, in->tb_den, in->fps, argv[1], &o, &e)) goto fail;
    img *f = NULL, *s = img_new(w, h, 3);
    int64_t idx;
    int got;
    while ((got = vid_read(r, &f, &idx, &e)) == 1) {
        img_resize(s, f);
        if (vout_write(v, s, vid_frame_pts(r), &e)) goto fail;
    }
    if (got < 0 || vout_close(v, &e)) {
        v = NULL;
        goto fail;
    }
    img_free(f), img_free(s);
    vid_close(r);
    return 0;
fail:
    fprintf(stderr, "scale_video: %s\n", e.msg);
    vout_abort(v);
    vid_close(r);
    return 1;
}
