/* termimg.h: an RGB image drawn in a terminal, for the workbench's face previews: half-block
 * characters with truecolour or 256-colour escapes, or a sixel image (libsixel), plus tmux
 * passthrough and the sixel capability query. No ncurses here: the caller writes the bytes after
 * doupdate(). */
#ifndef VS_TERMIMG_H
#define VS_TERMIMG_H

#include <stddef.h>
#include <stdint.h>

#include "../core/err.h"

typedef enum timg_colour {
    TIMG_TRUECOLOUR, /* ESC[38;2;R;G;Bm */
    TIMG_256         /* ESC[38;5;Nm, N from the xterm cube (16..231) or grey ramp (232..255) */
} timg_colour;

/* rgb: [h][stride] bytes, 3 per pixel (stride >= 3 * w). The image is fitted, aspect kept, into
 * cols x rows cells, one cell being one pixel wide and two tall (an area-average resample to at
 * most cols x 2*rows pixels; the height is rounded up to even). Each cell is U+2580 "▀" with the
 * top pixel as foreground and the bottom one as background; a colour escape equal to the previous
 * cell's on the same row is left out. Rows end with ESC[0m and are separated by one '\n' (none
 * after the last): the caller moves the cursor before each. *out_cols x *out_rows: the cells used
 * (0 x 0 and "" when the image or the box is empty). NULL only when out of memory; free(). */
char *timg_halfblock(const uint8_t *rgb, int w, int h, int stride, int cols, int rows,
                     timg_colour mode, int *out_cols, int *out_rows);

/* The xterm-256 index nearest to (r, g, b) in RGB distance: the 6x6x6 cube (16..231) or the grey
 * ramp (232..255); never 0..15, whose colours each terminal sets differently. */
int timg_nearest_256(uint8_t r, uint8_t g, uint8_t b);

/* *out (malloc'd, free(); NUL-terminated too) and *len: a sixel image (ESC P ... ESC \) of rgb
 * ([h][stride], 3 bytes a pixel) fitted, aspect kept, into px_w x px_h pixels, quantised to 256
 * colours. -1 with e set on bad sizes, a libsixel failure, or a build without libsixel. */
int timg_sixel(char **out, size_t *len, const uint8_t *rgb, int w, int h, int stride, int px_w,
               int px_h, vs_err *e);

/* seq (len bytes) inside tmux's passthrough: "ESC Ptmux;" + seq with every ESC doubled + "ESC \".
 * tmux only forwards it with `set -g allow-passthrough on`. *out_len: the result's length
 * (NUL-terminated as well). NULL only when out of memory; free(). */
char *timg_tmux_wrap(const char *seq, size_t len, size_t *out_len);

/* 1 when a Primary Device Attributes reply ("ESC[?62;4;22c": CSI ? Ps;...;Ps c) lists attribute 4
 * (sixel graphics); 0 when it does not or the reply is malformed. Bytes before the CSI (keys typed
 * meanwhile) are skipped. */
int timg_da1_has_sixel(const char *reply);

/* Asks the terminal on tty_fd (ESC[c) whether it draws sixel: the termios are saved, set to
 * non-canonical without echo for the question and restored. 1 when the reply lists sixel; 0 when
 * it does not, no reply comes within timeout_ms, or tty_fd is not a terminal. Under tmux the plain
 * question is answered by tmux itself (whether tmux draws sixel: 3.4 on, built with it); with
 * via_tmux it goes through tmux's passthrough to the terminal outside (allow-passthrough on),
 * whose sixel then has to be sent wrapped the same way (timg_tmux_wrap). A reply arriving after
 * the timeout is left for the caller's input. */
int timg_query_sixel(int tty_fd, int timeout_ms, int via_tmux);

#endif
