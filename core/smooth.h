/* smooth.h: a video's face landmarks smoothed over time before the crop, so that a still head's
 * swapped face does not jitter with the detector's noise from frame to frame. Each face is
 * followed from frame to frame by its position and filtered with the One-Euro filter (Casiez et
 * al., CHI 2012): a low-pass filter whose cutoff rises with the speed of the motion, so a still
 * face is held steady and a moving one follows without lag. Speeds count in face sizes per
 * second, so the settings do not depend on the resolution. */
#ifndef VS_SMOOTH_H
#define VS_SMOOTH_H

typedef struct lm_smoother lm_smoother;

/* min_cutoff: the cutoff of a still face, Hz (lower: steadier; 1 is a good start); beta: how much
 * the cutoff rises per face size per second of motion (5). */
lm_smoother *lms_new(float min_cutoff, float beta);
void lms_free(lm_smoother *s);

/* Smooths in place the landmarks (68 points, frame pixels) of the n faces of the frame shown at
 * time t (seconds, increasing). A face is matched to the nearest face of the previous frame
 * within half its size; a new face starts as it is. */
void lms_apply(lm_smoother *s, float (*lm)[136], int n, double t);

#endif
