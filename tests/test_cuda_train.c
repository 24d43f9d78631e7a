/* test_cuda_train.c: training on the GPU against the CPU. One full step (forward, the configured
 * loss, backward, Adam) of each model on the same weights and batch gives the same losses,
 * outputs, gradients and updated weights; 200 iterations on a small synthetic face set follow
 * the CPU's loss curve; and the step recorded as a CUDA graph gives what the step run call by
 * call gives. In bf16 and fp16 the CPU's step is tests/half_backend.h's (the CPU rounding where
 * the GPU does, with fp16's loss scale), compared loosely. Skipped without a GPU. Links no media
 * library (so it runs on a bare GPU machine). */
#include <stdint.h>

#include "augment.h"
#include "blocks_arch.h"
#include "check.h"
#include "err.h"
#include "half_backend.h"
#include "loss.h"
#include "model.h"
#include "model_state.h"
#include "nn/backend.h"
#include "nn/half.h"
#include "rng.h"
#include "step.h"

static const nn_backend *cpu, *gpu;

/* A batch of both sides in host memory: x [2n, S, S, 3] (A then B), targets and the three masks
 * per side. */
typedef struct batch {
    int n, S;
    float *x, *tgt[2], *mask[2][3];
} batch;

static void batch_free(batch *b)
{
    free(b->x);
    for (int s = 0; s < 2; s++) {
        free(b->tgt[s]);
        for (int k = 0; k < 3; k++) free(b->mask[s][k]);
    }
}

/* A synthetic face: a background and three soft blobs whose colours depend on the side, an
 * elliptical face mask, eye and mouth boxes. The input is the target with a little noise. */
static void synth_face(float *x, float *tgt, float *mf, float *me, float *mm, int S, int side,
                       uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    float bg[3], col[3][3], cx[3], cy[3], rad[3];
    for (int c = 0; c < 3; c++) bg[c] = 0.2f + 0.3f * (float)rng_uniform(&r);
    for (int k = 0; k < 3; k++) {
        for (int c = 0; c < 3; c++)
            col[k][c] = side ? 0.3f + 0.6f * (float)rng_uniform(&r)
                             : 0.9f - 0.5f * (float)rng_uniform(&r) * (c == 2);
        cx[k] = S * (0.25f + 0.5f * (float)rng_uniform(&r));
        cy[k] = S * (0.25f + 0.5f * (float)rng_uniform(&r));
        rad[k] = S * (0.08f + 0.15f * (float)rng_uniform(&r));
    }
    for (int y = 0; y < S; y++)
        for (int xx = 0; xx < S; xx++) {
            size_t px = (size_t)y * S + xx;
            for (int c = 0; c < 3; c++) {
                float v = bg[c];
                for (int k = 0; k < 3; k++) {
                    float dx = xx - cx[k], dy = y - cy[k];
                    float w = expf(-(dx * dx + dy * dy) / (2 * rad[k] * rad[k]));
                    v = v * (1 - w) + col[k][c] * w;
                }
                tgt[px * 3 + c] = v;
                float noisy = v + 0.05f * (float)(rng_uniform(&r) - 0.5);
                x[px * 3 + c] = noisy < 0 ? 0 : noisy > 1 ? 1 : noisy;
            }
            float ex = (xx - S / 2.0f) / (0.4f * S), ey = (y - S / 2.0f) / (0.45f * S);
            mf[px] = ex * ex + ey * ey < 1.0f ? 1.0f : 0.0f;
            me[px] = y > S * 0.3 && y < S * 0.45 && xx > S * 0.2 && xx < S * 0.8 ? 1.0f : 0.0f;
            mm[px] = y > S * 0.65 && y < S * 0.8 && xx > S * 0.3 && xx < S * 0.7 ? 1.0f : 0.0f;
        }
}

/* n faces per side; face i of side s is synthetic face (s, ids[i]) */
static batch make_batch(int n, int S, const int *ids_a, const int *ids_b)
{
    batch b = {.n = n, .S = S};
    size_t per = (size_t)S * S * 3, px = (size_t)S * S;
    b.x = malloc(2 * n * per * sizeof(float));
    for (int s = 0; s < 2; s++) {
        b.tgt[s] = malloc(n * per * sizeof(float));
        for (int k = 0; k < 3; k++) b.mask[s][k] = malloc(n * px * sizeof(float));
        for (int i = 0; i < n; i++) {
            int id = s ? ids_b[i] : ids_a[i];
            synth_face(b.x + (s * n + i) * per, b.tgt[s] + i * per, b.mask[s][0] + i * px,
                       b.mask[s][1] + i * px, b.mask[s][2] + i * px, S, s,
                       0x5eed0000u + (uint64_t)s * 1000 + (uint64_t)id);
        }
    }
    return b;
}

/* A model and its step (batch buffers, control scalars) on one backend, trained as the trainer
 * does with Faceswap's default loss: SSIM + MSE on the masked face, eyes x3, mouth x2. */
typedef struct rig {
    const nn_backend *be;
    model *m;
    step st;
} rig;

static rig rig_new(const nn_backend *be, const mdl_arch *arch, int learn_mask, int shrink, int n)
{
    rig r = {.be = be};
    mdl_options o;
    mdl_options_default(&o);
    o.learn_mask = learn_mask, o.shrink = shrink;
    vs_err e;
    if (model_create_arch(&r.m, arch, &o, be, 1234, &e)) {
        fprintf(stderr, "model_create %s: %s\n", arch->name, e.msg);
        exit(1);
    }
    loss_cfg lc;
    loss_cfg_default(&lc);
    nn_adam h = {.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f};
    step_init(&r.st, r.m, n, &lc, &h);
    return r;
}

static void rig_free(rig *r)
{
    step_free(&r->st);
    model_free(r->m);
}

static void rig_load(rig *r, const batch *b)
{
    size_t per = (size_t)b->S * b->S * 3, px = (size_t)b->S * b->S;
    r->be->copy_in(r->st.x.d, b->x, 2 * b->n * per);
    for (int s = 0; s < 2; s++) {
        r->be->copy_in(r->st.tgt[s].d, b->tgt[s], b->n * per);
        for (int k = 0; k < 3; k++) r->be->copy_in(r->st.mask[s][k], b->mask[s][k], b->n * px);
    }
}

static int rig_step(rig *r, double loss[2], step_mode mode)
{
    return step_run(&r->st, loss, mode, 0);
}

static float *host_copy(const nn_backend *be, const float *d, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof(float));
    be->copy_out(h, d, n);
    return h;
}

/* One of m's arenas on the host, conv2d kernels in TensorFlow's layout (comparable across
 * backends) */
static float *arena_copy(const model *m, const float *arena)
{
    float *h = malloc(m->n_floats * sizeof(float));
    model_arena_download(m, h, arena);
    return h;
}

/* NaN into every parameter's gradient (not the arena's alignment padding, which no step
 * writes), so a gradient the step fails to write shows */
static void poison_grads(const model *m)
{
    /* a 16-bit arena: a NaN in both halves of each float (offsets are multiples of 16) */
    uint32_t bits = m->dt == NN_F32 ? 0x7fc00000u : m->dt == NN_BF16 ? 0x7fc07fc0u : 0x7e007e00u;
    float nan;
    memcpy(&nan, &bits, sizeof nan);
    for (int i = 0; i < m->n_params; i++)
        m->be->fill(nn_at(m->g, m->dt, m->params[i].offset),
                    nn_floats_for(m->params[i].count, m->dt), nan);
}

/* ||a - b|| / ||b|| of one tensor (NaN when a has a NaN) */
static double rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        d += e * e, r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

/* max |a - b| over max |b| of one tensor */
static double rel_err(const float *a, const float *b, size_t n, size_t *worst)
{
    double emax = 0, bmax = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= emax)) emax = e, *worst = i; /* NaN counts as worst */
        if (fabs(b[i]) > bmax) bmax = fabs(b[i]);
    }
    return bmax > 0 ? emax / bmax : emax;
}

/* Elements of a 16-bit model's weight copy that are not its parameters rounded to nearest even. */
static size_t weights_unrounded(const model *m)
{
    if (!m->pw) return m->n_floats;
    size_t nf = m->n_floats, bad = 0;
    float *p = host_copy(m->be, m->p, nf);
    uint16_t *w = (uint16_t *)host_copy(m->be, m->pw, nn_floats_for(nf, NN_BF16));
    for (size_t i = 0; i < nf; i++) bad += w[i] != nn_half_from_f32(m->dt == NN_BF16, p[i]);
    free(p), free(w);
    return bad;
}

/* ---- one full step against the CPU ------------------------------------------------------- */

static void test_step(const mdl_arch *arch, int learn_mask, int shrink, int n, nn_precision prec,
                      double tol, double tol_grad)
{
    vs_err e;
    VS_CHECK(nn_cuda_backend(0, prec, &e));
    const int half = prec == NN_PREC_BF16 || prec == NN_PREC_FP16;
    const nn_dtype dt = prec == NN_PREC_BF16 ? NN_BF16 : prec == NN_PREC_FP16 ? NN_F16 : NN_F32;
    CHECK(gpu->train_dtype == dt);
    rig c = rig_new(half ? half_backend(dt) : cpu, arch, learn_mask, shrink, n);
    const size_t base = nn_cuda_mem_used();
    nn_cuda_mem_reset_peak();
    rig g = rig_new(gpu, arch, learn_mask, shrink, n);
    int ids[64];
    for (int i = 0; i < n; i++) ids[i] = i;
    batch b = make_batch(n, arch->input_size, ids, ids);
    rig_load(&c, &b);
    rig_load(&g, &b);
    /* poison the GPU's gradients: every one must be written */
    poison_grads(g.m);
    double lc[2], lg[2];
    int okc = rig_step(&c, lc, STEP_DIRECT), okg = rig_step(&g, lg, STEP_DIRECT);
    CHECK(okc && okg);
    /* the memory plan the trainer checks before it starts is an upper bound of what a step takes
     * on the card */
    mdl_plan plan;
    CHECK(model_plan(&plan, arch, &g.m->opt, n, NULL) == 0);
    const size_t used = nn_cuda_mem_peak() - base;
    CHECKF(used <= plan.total, "a step took %zu bytes of GPU memory, the plan says %zu", used,
           plan.total);
    printf("memory %s %s: used %.3f GiB, planned %.3f GiB\n", arch->name, nn_precision_name(prec),
           (double)used / (1 << 30), (double)plan.total / (1 << 30));
    const char *pn = nn_precision_name(prec);
    char what[96];
    snprintf(what, sizeof what, "%s%s shrink %d batch %d %s", arch->name,
             learn_mask ? " +mask" : "", shrink, n, pn);
    for (int s = 0; s < 2; s++)
        CHECKF(fabs(lg[s] - lc[s]) <= tol * fabs(lc[s]), "%s: loss %c GPU %.7g CPU %.7g", what,
               'A' + s, lg[s], lc[s]);
    /* outputs of both decoders */
    double out_worst = 0;
    for (int s = 0; s < 2; s++) {
        for (int k = 0; k < 2; k++) {
            const nn_tensor *tc = model_output(c.m, s, k), *tg = model_output(g.m, s, k);
            if (!tc) continue;
            float *hg = host_copy(gpu, tg->d, nn_numel(tg));
            size_t wi = 0;
            double r = rel_err(hg, tc->d, nn_numel(tc), &wi);
            if (r > out_worst) out_worst = r;
            CHECKF(r <= tol, "%s: decoder %c output %d: rel err %.3g at %zu", what, 'A' + s, k, r,
                   wi);
            free(hg);
        }
    }
    /* gradients, tensor by tensor, as the relative L2 error (single elements can differ far
     * more: a pre-activation within rounding of 0 takes LeakyReLU's other slope on one device,
     * which moves the gradient of every weight it feeds), and the weights after Adam, in units
     * of the learning rate (a gradient whose sign differs moves its weight by up to 2 lr) */
    float *gg = arena_copy(g.m, g.m->g), *pg = arena_copy(g.m, g.m->p);
    float *gc = arena_copy(c.m, c.m->g), *pc = arena_copy(c.m, c.m->p); /* widened, HWIO */
    double g_worst = 0, g_max_elem = 0, p_worst = 0, p_sum = 0;
    size_t p_far = 0, p_count = 0;
    const char *g_worst_name = "";
    for (int i = 0; i < c.m->n_params; i++) {
        const mdl_param *p = &c.m->params[i];
        size_t wi = 0;
        double r = rel_l2(gg + p->offset, gc + p->offset, p->count);
        double re = rel_err(gg + p->offset, gc + p->offset, p->count, &wi);
        if (!(r <= g_worst)) g_worst = r, g_worst_name = p->name;
        if (!(re <= g_max_elem)) g_max_elem = re;
        CHECKF(r <= tol_grad,
               "%s: gradient of %s: relative L2 error %.3g (worst element %zu: GPU "
               "%g CPU %g)",
               what, p->name, r, wi, gg[p->offset + wi], gc[p->offset + wi]);
        for (size_t j = 0; j < p->count; j++) {
            double d = fabs((double)pg[p->offset + j] - pc[p->offset + j]) / c.st.h.lr;
            if (!(d <= p_worst)) p_worst = d;
            p_sum += d;
            p_far += !(d <= 0.1);
        }
        p_count += p->count;
    }
    /* Adam's first step moves nearly every weight by about lr whatever the gradient's size, so
     * TF32's rounding of small gradients shows in more weights than FP32's */
    const double far_frac = prec == NN_PREC_FP32 ? 1e-3
                            : half               ? 0.1
                                                 : 5e-2,
                 mean_lr = prec == NN_PREC_FP32 ? 0.01
                           : half               ? 0.1
                                                : 0.05;
    /* fp16: both steps' gradients are multiples of one loss scale */
    CHECKF(c.st.scale == g.st.scale, "%s: loss scale GPU %g CPU %g", what, g.st.scale, c.st.scale);
    if (half)
        CHECKF(weights_unrounded(g.m) == 0,
               "%s: %zu of the 16-bit weight copy's %zu elements are not "
               "the parameters rounded after Adam",
               what, weights_unrounded(g.m), g.m->n_floats);
    CHECKF(p_far <= (size_t)(far_frac * (double)p_count),
           "%s: %zu of %zu weights differ by more than 0.1 lr after Adam", what, p_far, p_count);
    CHECKF(p_sum / p_count <= mean_lr, "%s: weights after Adam differ by %.3g lr on average", what,
           p_sum / p_count);
    printf("step %-36s losses %.6f %.6f (CPU %.6f %.6f)  outputs %.2g  gradients L2 %.2g (%s; "
           "worst element %.2g)  weights: mean %.2g lr, %zu of %zu beyond 0.1 lr, worst %.2g lr\n",
           what, lg[0], lg[1], lc[0], lc[1], out_worst, g_worst, g_worst_name, g_max_elem,
           p_sum / p_count, p_far, p_count, p_worst);
    free(gg), free(pg), free(gc), free(pc);
    batch_free(&b);
    rig_free(&c);
    rig_free(&g);
}

/* ---- 200 iterations against the CPU's loss curve ----------------------------------------- */

#define CURVE_ITERS 200
#define CURVE_FACES 24

/* The batch of iteration it: faces drawn from CURVE_FACES per side by a fixed sequence. */
static batch curve_batch(int n, int S, int it)
{
    int ids[2][64];
    rng r;
    rng_seed(&r, 77 + (uint64_t)it);
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < n; i++) ids[s][i] = (int)(rng_uniform(&r) * CURVE_FACES) % CURVE_FACES;
    return make_batch(n, S, ids[0], ids[1]);
}

static void run_curve(double *loss, const nn_backend *be, const mdl_arch *arch, int shrink, int n,
                      step_mode mode)
{
    rig r = rig_new(be, arch, 0, shrink, n);
    for (int it = 0; it < CURVE_ITERS; it++) {
        batch b = curve_batch(n, arch->input_size, it);
        rig_load(&r, &b);
        batch_free(&b);
        double l[2];
        CHECK(rig_step(&r, l, mode));
        loss[it] = (l[0] + l[1]) / 2;
    }
    rig_free(&r);
}

static double mean(const double *x, int a, int b)
{
    double s = 0;
    for (int i = a; i < b; i++) s += x[i];
    return s / (b - a);
}

static void test_curve(const mdl_arch *arch, int shrink, int n)
{
    static double lc[CURVE_ITERS], lg[CURVE_ITERS], lt[CURVE_ITERS], lb[CURVE_ITERS],
        lh[CURVE_ITERS];
    vs_err e;
    run_curve(lc, cpu, arch, shrink, n, STEP_DIRECT);
    VS_CHECK(nn_cuda_backend(0, NN_PREC_FP32, &e));
    run_curve(lg, gpu, arch, shrink, n, STEP_AUTO);
    VS_CHECK(nn_cuda_backend(0, NN_PREC_TF32, &e));
    run_curve(lt, gpu, arch, shrink, n, STEP_AUTO);
    VS_CHECK(nn_cuda_backend(0, NN_PREC_BF16, &e));
    run_curve(lb, gpu, arch, shrink, n, STEP_AUTO);
    VS_CHECK(nn_cuda_backend(0, NN_PREC_FP16, &e));
    run_curve(lh, gpu, arch, shrink, n, STEP_AUTO);
    VS_CHECK(nn_cuda_backend(0, NN_PREC_FP32, &e));
    double c0 = mean(lc, 0, 10), c1 = mean(lc, CURVE_ITERS - 20, CURVE_ITERS);
    double g1 = mean(lg, CURVE_ITERS - 20, CURVE_ITERS),
           t1 = mean(lt, CURVE_ITERS - 20, CURVE_ITERS),
           b1 = mean(lb, CURVE_ITERS - 20, CURVE_ITERS),
           h1 = mean(lh, CURVE_ITERS - 20, CURVE_ITERS);
    double worst = 0;
    for (int i = 0; i < CURVE_ITERS; i++)
        if (fabs(lg[i] - lc[i]) / lc[i] > worst) worst = fabs(lg[i] - lc[i]) / lc[i];
    printf("curve %s shrink %d batch %d: CPU %.5f -> %.5f, GPU fp32 -> %.5f (worst step %.2g), "
           "GPU tf32 -> %.5f, GPU bf16 -> %.5f, GPU fp16 -> %.5f\n",
           arch->name, shrink, n, c0, c1, g1, worst, t1, b1, h1);
    CHECKF(c1 < 0.8 * c0, "the CPU did not learn: %.5f -> %.5f", c0, c1);
    CHECKF(fabs(g1 - c1) <= 0.02 * c1, "fp32 GPU ends at %.5f, CPU at %.5f", g1, c1);
    CHECKF(fabs(t1 - c1) <= 0.05 * c1, "tf32 GPU ends at %.5f, CPU at %.5f", t1, c1);
    CHECKF(fabs(b1 - c1) <= 0.05 * c1, "bf16 GPU ends at %.5f, CPU (fp32) at %.5f", b1, c1);
    CHECKF(fabs(h1 - c1) <= 0.05 * c1, "fp16 GPU ends at %.5f, CPU (fp32) at %.5f", h1, c1);
    CHECKF(worst <= 0.05, "fp32 GPU's loss strays %.3g from the CPU's", worst);
}

/* ---- the graph gives what the calls give ------------------------------------------------- */

static void test_graph(const mdl_arch *arch, int learn_mask, int shrink, int n, nn_precision prec)
{
    vs_err e;
    VS_CHECK(nn_cuda_backend(0, prec, &e));
    rig g = rig_new(gpu, arch, learn_mask, shrink, n);
    int ids[64];
    for (int i = 0; i < n; i++) ids[i] = i;
    batch b = make_batch(n, arch->input_size, ids, ids);
    rig_load(&g, &b);
    double l0[2], l1[2], l2[2];
    CHECK(rig_step(&g, l0, STEP_DIRECT)); /* allocates, finds the algorithms */
    size_t nf = g.m->n_floats;
    const size_t nw = g.m->pw ? nn_floats_for(nf, g.m->dt) : 0; /* a 16-bit model's weight copy */
    float *p0 = host_copy(gpu, g.m->p, nf), *m0 = host_copy(gpu, g.m->m, nf),
          *v0 = host_copy(gpu, g.m->v, nf), *w0 = nw ? host_copy(gpu, g.m->pw, nw) : NULL;
    long t0 = g.m->adam_t;
    CHECK(rig_step(&g, l1, STEP_DIRECT));
    float *p1 = host_copy(gpu, g.m->p, nf), *v1 = host_copy(gpu, g.m->v, nf);
    gpu->copy_in(g.m->p, p0, nf); /* back, and the same step again from the graph */
    gpu->copy_in(g.m->m, m0, nf);
    gpu->copy_in(g.m->v, v0, nf);
    if (nw) gpu->copy_in(g.m->pw, w0, nw);
    poison_grads(g.m);
    g.m->adam_t = t0;
    CHECK(rig_step(&g, l2, STEP_AUTO));
    CHECK(g.st.graph != NULL);
    float *p2 = host_copy(gpu, g.m->p, nf), *v2 = host_copy(gpu, g.m->v, nf);
    size_t same = 0, wi = 0;
    for (size_t i = 0; i < nf; i++) same += p1[i] == p2[i] && v1[i] == v2[i];
    double r = rel_err(p2, p1, nf, &wi);
    printf("graph %s %s: losses %.7g %.7g (calls %.7g %.7g), weights %zu of %zu bit-identical, "
           "worst rel %.2g\n",
           arch->name, nn_precision_name(prec), l2[0], l2[1], l1[0], l1[1], same, nf, r);
    CHECKF(l1[0] == l2[0] && l1[1] == l2[1], "graph losses %.9g %.9g, calls %.9g %.9g", l2[0],
           l2[1], l1[0], l1[1]);
    CHECKF(r <= 1e-6, "graph weights differ from the calls' by %.3g", r);
    /* and a second replay moves on from there, as a second call would */
    double l3[2];
    CHECK(rig_step(&g, l3, STEP_AUTO));
    CHECKF(l3[0] != l2[0] || l3[1] != l2[1], "a second replay gave the same losses");
    free(p0), free(m0), free(v0), free(w0), free(p1), free(v1), free(p2), free(v2);
    batch_free(&b);
    rig_free(&g);
}

/* ---- resume across devices ----------------------------------------------------------------- */

#define LEG 10 /* steps on each device */

/* Saves m's state (as the trainer does) into dir at iteration `it`. */
static void save_state(const char *dir, const model *m, long it)
{
    ckpt_tensor *t;
    char(*names)[MDL_STATE_NAME];
    float *host;
    int nt = model_state_tensors(&t, &names, &host, m);
    char adam_t[32];
    snprintf(adam_t, sizeof adam_t, "%ld", m->adam_t);
    ckpt_kv kv[] = {{"adam_t", adam_t}};
    vs_err e;
    if (ckpt_save(dir, it, kv, 1, t, nt, 1, CKPT_NO_SNAPSHOT, &e)) {
        fprintf(stderr, "save: %s\n", e.msg);
        exit(1);
    }
    free(t), free(names), free(host);
}

/* Opens dir's checkpoint into a new rig on be: the same state (weights and both Adam moments
 * bit for bit, and the step count) as the saved model. */
static rig resume_on(const nn_backend *be, const char *dir, const model *saved, int n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/model.vsk", dir);
    vs_err e;
    ckpt *c = ckpt_open(path, &e);
    VS_CHECK(c);
    rig r = rig_new(be, saved->arch, saved->opt.learn_mask, saved->opt.shrink, n);
    poison_grads(r.m);
    be->fill(r.m->p, r.m->n_floats, NAN), be->fill(r.m->m, r.m->n_floats, NAN);
    be->fill(r.m->v, r.m->n_floats, NAN);
    CHECKF(model_state_read(r.m, c, &e) == 0, "%s", e.msg);
    r.m->adam_t = atol(ckpt_get(c, "adam_t"));
    CHECK(r.m->adam_t == saved->adam_t);
    ckpt_close(c);
    float *a = arena_copy(saved, saved->p), *b = arena_copy(r.m, r.m->p);
    float *am = arena_copy(saved, saved->v), *bm = arena_copy(r.m, r.m->v);
    size_t diff = 0;
    for (int i = 0; i < saved->n_params; i++) {
        const mdl_param *q = &saved->params[i];
        diff += memcmp(a + q->offset, b + q->offset, q->count * sizeof(float)) != 0;
        diff += memcmp(am + q->offset, bm + q->offset, q->count * sizeof(float)) != 0;
    }
    CHECKF(diff == 0, "%zu tensors changed between the save on %s and the resume on %s", diff,
           saved->be->name, be->name);
    free(a), free(b), free(am), free(bm);
    return r;
}

static void run_leg(double *loss, rig *r, int from, int n)
{
    for (int it = from; it < from + LEG; it++) {
        batch b = curve_batch(n, r->m->arch->input_size, it);
        rig_load(r, &b);
        batch_free(&b);
        double l[2];
        CHECK(rig_step(r, l, STEP_AUTO));
        loss[it] = (l[0] + l[1]) / 2;
    }
}

/* GPU for LEG steps, save; resume on the CPU for LEG steps, save; resume on the GPU for LEG
 * steps: the losses follow a run that stayed on the CPU throughout, and Adam's step count goes
 * on. */
static void test_resume(const mdl_arch *arch, int shrink, int n, nn_precision prec, double tol)
{
    vs_err e;
    VS_CHECK(nn_cuda_backend(0, prec, &e));
    double ref[3 * LEG], got[3 * LEG];
    rig c = rig_new(cpu, arch, 0, shrink, n);
    run_leg(ref, &c, 0, n);
    run_leg(ref, &c, LEG, n);
    run_leg(ref, &c, 2 * LEG, n);
    rig_free(&c);
    char dir[] = "/tmp/visage-test-resume-XXXXXX";
    VS_CHECK(mkdtemp(dir));
    rig g = rig_new(gpu, arch, 0, shrink, n);
    run_leg(got, &g, 0, n);
    save_state(dir, g.m, LEG);
    rig h = resume_on(cpu, dir, g.m, n);
    rig_free(&g);
    run_leg(got, &h, LEG, n);
    save_state(dir, h.m, 2 * LEG);
    rig g2 = resume_on(gpu, dir, h.m, n);
    rig_free(&h);
    run_leg(got, &g2, 2 * LEG, n);
    CHECK(g2.m->adam_t == 3 * LEG);
    double worst = 0;
    for (int i = 0; i < 3 * LEG; i++)
        if (fabs(got[i] - ref[i]) / ref[i] > worst) worst = fabs(got[i] - ref[i]) / ref[i];
    printf(
        "resume %s %s shrink %d: GPU %d steps, CPU %d, GPU %d: loss %.5f -> %.5f, CPU throughout "
        "%.5f -> %.5f, worst step %.2g\n",
        arch->name, nn_precision_name(prec), shrink, LEG, LEG, LEG, got[0], got[3 * LEG - 1],
        ref[0], ref[3 * LEG - 1], worst);
    CHECKF(worst <= tol, "the resumed run's loss strays %.3g from the CPU's", worst);
    rig_free(&g2);
    check_rm_rf(dir);
}

/* ---- augmentation inside the step ----------------------------------------------------------- */

/* The step augmenting its own batch on the GPU from face crops there (recorded in the graph from
 * the second step on, with new transforms copied in before each) trains as the CPU does on the
 * batch the CPU augmented from the same crops and draws. */
static void test_augment_step(const mdl_arch *arch, int shrink, int n)
{
    vs_err e;
    VS_CHECK(nn_cuda_backend(0, NN_PREC_FP32, &e));
    const int P = 2 * arch->input_size, faces = 7, S = arch->input_size;
    const size_t crop = (size_t)P * P;
    uint8_t *px[2], *mk[2];
    const uint8_t *gpx[2], *gmk[2];
    for (int s = 0; s < 2; s++) {
        px[s] = malloc(faces * crop * 3), mk[s] = malloc(faces * crop * NN_AUG_MASKS);
        /* smooth pictures, so a bilinear sample a rounding error away changes little */
        for (int f = 0; f < faces; f++)
            for (size_t i = 0; i < crop; i++) {
                int x = (int)(i % P), y = (int)(i / P);
                for (int c = 0; c < 3; c++)
                    px[s][(f * crop + i) * 3 + c] =
                        (uint8_t)(127.5 + 127 * sin(0.05 * (x + 2 * y) * (c + 1) + f + 3 * s));
                for (int k = 0; k < NN_AUG_MASKS; k++)
                    mk[s][(f * crop + i) * NN_AUG_MASKS + k] =
                        (uint8_t)(abs(x - P / 2) + abs(y - P / 2) < P / (3 + k) ? 255 : 0);
            }
        float *d = gpu->alloc(faces * crop * 3 / 4),
              *dm = gpu->alloc(faces * crop * NN_AUG_MASKS / 4);
        gpu->copy_in(d, (const float *)px[s], faces * crop * 3 / 4);
        gpu->copy_in(dm, (const float *)mk[s], faces * crop * NN_AUG_MASKS / 4);
        gpx[s] = (const uint8_t *)d, gmk[s] = (const uint8_t *)dm;
    }
    rig c = rig_new(cpu, arch, 0, shrink, n), g = rig_new(gpu, arch, 0, shrink, n);
    const size_t img_floats = 2 * (size_t)n * sizeof(nn_aug_image) / sizeof(float);
    nn_aug_image *ims = calloc(2 * (size_t)n, sizeof *ims);
    nn_aug_image *gims = (nn_aug_image *)gpu->alloc(img_floats);
    step_set_augment(&g.st, gpx, gmk, P, gims);
    augment_config ac;
    augment_config_default(&ac);
    double worst = 0;
    for (int it = 0; it < 4; it++) {
        for (int s = 0; s < 2; s++)
            for (int b = 0; b < n; b++) {
                augment_params p;
                augment_draw(&p, &ac, 9, it, s, b);
                augment_prepare(&ims[s * n + b], &p, (b + 3 * it + s) % faces, P);
            }
        /* the CPU's batch, augmented on the CPU */
        const size_t per = (size_t)S * S * 3;
        for (int s = 0; s < 2; s++) {
            nn_aug_batch hb = {.input = c.st.x.d + s * n * per,
                               .target = c.st.tgt[s].d,
                               .mask = {c.st.mask[s][0], c.st.mask[s][1], c.st.mask[s][2]},
                               .px = px[s],
                               .masks = mk[s],
                               .img = ims + s * n,
                               .n = n,
                               .P = P,
                               .si = S,
                               .st = S};
            cpu->augment(&hb);
        }
        gpu->copy_in((float *)gims, (const float *)ims, img_floats);
        double lc[2], lg[2];
        CHECK(rig_step(&c, lc, STEP_DIRECT) && rig_step(&g, lg, STEP_AUTO));
        for (int s = 0; s < 2; s++) worst = fmax(worst, fabs(lg[s] - lc[s]) / lc[s]);
        CHECKF(fabs(lg[0] - lc[0]) <= 1e-3 * lc[0] && fabs(lg[1] - lc[1]) <= 1e-3 * lc[1],
               "step %d with augmentation on the GPU: losses %.7g %.7g, CPU %.7g %.7g", it, lg[0],
               lg[1], lc[0], lc[1]);
    }
    CHECK(g.st.graph != NULL);
    /* and the images it made are the CPU's */
    float *gx = host_copy(gpu, g.st.x.d, nn_numel(&g.st.x));
    size_t wi = 0;
    double r = rel_err(gx, c.st.x.d, nn_numel(&c.st.x), &wi);
    CHECKF(r <= 2e-4, "the GPU's augmented inputs differ from the CPU's by %.3g", r);
    printf("augment in the step %s shrink %d: 4 steps (3 replayed), losses within %.2g of the "
           "CPU's, inputs within %.2g\n",
           arch->name, shrink, worst, r);
    free(gx), free(ims);
    gpu->free((float *)gims);
    for (int s = 0; s < 2; s++) {
        gpu->free((float *)gpx[s]), gpu->free((float *)gmk[s]);
        free(px[s]), free(mk[s]);
    }
    rig_free(&c);
    rig_free(&g);
}

int main(void)
{
    const char *why = "";
    if (nn_cuda_device_count(&why) == 0) SKIP("no GPU: %s", why);
    vs_err e;
    gpu = nn_cuda_backend(0, NN_PREC_FP32, &e);
    if (!gpu) SKIP("%s", e.msg);
    cpu = nn_cpu_backend();
    nn_cpu_set_threads(0);
    nn_gpu_info gi;
    nn_cuda_device_info(&gi, 0);
    printf("GPU: %s, compute %d.%d, %.0f GiB\n", gi.name, gi.major, gi.minor,
           (double)gi.mem_total / (1 << 30));
    const mdl_arch *orig = model_arch_find("original"), *light = model_arch_find("lightweight");
    test_step(orig, 0, 1, 4, NN_PREC_FP32, 2e-4, 5e-3);
    test_step(light, 0, 1, 4, NN_PREC_FP32, 2e-4, 5e-3);
    test_step(orig, 1, 4, 3, NN_PREC_FP32, 2e-4, 5e-3);
    test_step(&blocks_arch, 1, 1, 2, NN_PREC_FP32, 2e-4, 5e-3);
    test_step(orig, 0, 1, 4, NN_PREC_TF32, 2e-2, 3e-2);
    test_step(light, 0, 1, 4, NN_PREC_TF32, 2e-2, 3e-2);
    if (gi.major >= 8) { /* bf16 against the CPU rounding as the GPU does: loose */
        test_step(orig, 0, 1, 4, NN_PREC_BF16, 2e-2, 0.15);
        test_step(light, 0, 1, 4, NN_PREC_BF16, 2e-2, 0.15);
        test_step(orig, 1, 4, 3, NN_PREC_BF16, 2e-2, 0.15);
        test_step(&blocks_arch, 1, 1, 2, NN_PREC_BF16, 2e-2, 0.15);
    } else {
        printf("bf16: skipped: compute %d.%d has no bf16 tensor cores\n", gi.major, gi.minor);
    }
    if (gi.major >= 7) { /* fp16 with its loss scale, against the CPU's fp16 */
        test_step(orig, 0, 1, 4, NN_PREC_FP16, 2e-2, 0.15);
        test_step(light, 0, 1, 4, NN_PREC_FP16, 2e-2, 0.15);
        test_step(orig, 1, 4, 3, NN_PREC_FP16, 2e-2, 0.15);
    }
    test_graph(orig, 1, 4, 4, NN_PREC_FP32);
    test_graph(&blocks_arch, 1, 1, 2, NN_PREC_FP32);
    if (gi.major >= 8) test_graph(orig, 1, 4, 4, NN_PREC_BF16);
    if (gi.major >= 7) test_graph(orig, 1, 4, 4, NN_PREC_FP16);
    test_curve(orig, 4, 4);
    test_resume(orig, 8, 4, NN_PREC_FP32, 0.01);
    if (gi.major >= 8) test_resume(orig, 8, 4, NN_PREC_BF16, 0.05);
    if (gi.major >= 7) test_resume(orig, 8, 4, NN_PREC_FP16, 0.05);
    test_augment_step(orig, 8, 4);
    /* the status line's utilisation, through the driver's NVML */
    int util = nn_cuda_utilization();
    printf("utilisation (NVML): %d%%\n", util);
    CHECKF(util >= 0 && util <= 100, "NVML gave no utilisation: %d", util);
    return check_report("test_cuda_train");
}
