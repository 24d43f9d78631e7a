/* test_model.c: the model architectures and the training step through them. Parameter counts
 * must match Faceswap's exactly; the gradients of a full step (encoder, both decoders, learned
 * masks, the configured loss) must match central finite differences on shrunken models. */
#include <stdint.h>

#include "check.h"
#include "loss.h"
#include "model.h"
#include "nn/backend.h"
#include "rng.h"

#include "blocks_arch.h"
#include "half_backend.h"
#include "model_state.h"
#include "nn/half.h"
#include "ohwi_backend.h"
#include "step.h"

static model *make(const char *arch, int lowmem, int learn_mask, int shrink)
{
    mdl_options o;
    mdl_options_default(&o);
    o.lowmem = lowmem, o.learn_mask = learn_mask, o.shrink = shrink;
    model *m = NULL;
    vs_err e = {0};
    int rc = strcmp(arch, "blocks") == 0
                 ? model_create_arch(&m, &blocks_arch, &o, nn_cpu_backend(), 1234, &e)
                 : model_create(&m, arch, &o, nn_cpu_backend(), 1234, &e);
    if (rc) {
        fprintf(stderr, "model_create %s: %s\n", arch, e.msg);
        exit(1);
    }
    return m;
}

static void test_param_counts(void)
{
    static const struct {
        const char *arch;
        int lowmem;
        size_t want;
    } cases[] = {
        {"original", 0, 82062470},
        {"original", 1, 60565126},
        {"lightweight", 0, 51066374},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model *m = make(cases[i].arch, cases[i].lowmem, 0, 1);
        CHECKF(model_param_count(m) == cases[i].want, "%s lowmem=%d: %zu parameters, want %zu",
               cases[i].arch, cases[i].lowmem, model_param_count(m), cases[i].want);
        /* the mask branch adds parameters but not to the face-output count */
        model *mm = make(cases[i].arch, cases[i].lowmem, 1, 1);
        CHECK(model_param_count(mm) == cases[i].want);
        CHECK(mm->n_floats > m->n_floats);
        CHECK(mm->dec[0].mask_out >= 0 && m->dec[0].mask_out < 0);
        model_free(mm);
        model_free(m);
    }
    vs_err e = {0};
    model *m = NULL;
    mdl_options o;
    mdl_options_default(&o);
    CHECK(model_create(&m, "villain2", &o, nn_cpu_backend(), 1, &e) == -1 && !m);
    CHECK(strstr(e.msg, "villain2") && strstr(e.msg, "original"));
}

/* Keras initialisers: he_uniform convolutions within sqrt(6 / fan_in) and using most of that
 * range, glorot dense layers, zero biases. */
static void test_init(void)
{
    model *m = make("lightweight", 0, 0, 8);
    for (int i = 0; i < m->n_params; i++) {
        const mdl_param *p = &m->params[i];
        const float *w = m->p + p->offset;
        float mx = 0;
        for (size_t j = 0; j < p->count; j++) mx = fabsf(w[j]) > mx ? fabsf(w[j]) : mx;
        if (strstr(p->name, ".bias")) {
            CHECKF(mx == 0.0f, "%s not zero", p->name);
            continue;
        }
        double fan = p->ndim == 2 ? (double)(p->shape[0] + p->shape[1])
                                  : (double)p->shape[0] * p->shape[1] * p->shape[2];
        double limit = sqrt(6.0 / fan);
        CHECKF(mx <= limit && mx > 0.9 * limit, "%s: max |w| %g, limit %g", p->name, mx, limit);
    }
    model_free(m);
}

/* Inputs, targets and masks for a batch of n per side: random, never zeros. */
typedef struct batch {
    nn_tensor x, target[2];
    float *mask[2][3];
} batch;

static void make_batch(batch *b, int n, int size, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    b->x = nn_tensor_new(2 * n, size, size, 3);
    for (size_t i = 0; i < nn_numel(&b->x); i++) b->x.d[i] = 0.05f + 0.9f * rng_uniform(&r);
    for (int s = 0; s < 2; s++) {
        b->target[s] = nn_tensor_new(n, size, size, 3);
        for (size_t i = 0; i < nn_numel(&b->target[s]); i++)
            b->target[s].d[i] = 0.05f + 0.9f * rng_uniform(&r);
        for (int k = 0; k < 3; k++) {
            b->mask[s][k] = malloc(sizeof(float) * n * size * size);
            for (int i = 0; i < n * size * size; i++)
                b->mask[s][k][i] = rng_uniform(&r) < 0.3f ? 0.0f : 0.2f + 0.8f * rng_uniform(&r);
        }
    }
}

static void free_batch(batch *b)
{
    nn_tensor_free(&b->x);
    for (int s = 0; s < 2; s++) {
        nn_tensor_free(&b->target[s]);
        for (int k = 0; k < 3; k++) free(b->mask[s][k]);
    }
}

/* Forward, the objective of both sides and the gradients of the outputs. lc NULL: a random
 * projection sum(r * output) in double, exact enough to check tiny gradients; otherwise the
 * configured loss (Faceswap's terms), whose float sum limits the check to larger gradients. */
static double step_loss(model *m, const batch *b, const loss_cfg *lc, int with_grads)
{
    const nn_backend *be = m->be;
    model_forward(m, &b->x);
    double total = 0;
    if (!lc) {
        for (int s = 0; s < 2; s++)
            for (int which = 0; which < 2; which++) {
                nn_tensor *g = model_output_grad(m, s, which);
                if (!g) continue;
                const nn_tensor *y = model_output(m, s, which);
                rng r;
                rng_stream(&r, 5, (uint64_t)s, (uint64_t)which, 0);
                for (size_t i = 0; i < nn_numel(y); i++) {
                    g->d[i] = rng_uniform(&r) - 0.5f;
                    total += (double)g->d[i] * y->d[i];
                }
            }
        if (with_grads) model_backward(m);
        return total;
    }
    for (int s = 0; s < 2; s++) {
        float loss = 0;
        nn_tensor *g = model_output_grad(m, s, 0);
        loss_face(be, g->d, &loss, model_output(m, s, 0), &b->target[s], b->mask[s][0],
                  b->mask[s][1], b->mask[s][2], lc);
        nn_tensor *gm = model_output_grad(m, s, 1);
        if (gm) loss_mask(be, gm->d, &loss, model_output(m, s, 1), b->mask[s][0]);
        total += loss;
    }
    if (with_grads) model_backward(m);
    return total;
}

/* Every parameter tensor: the entries with the largest analytic gradients (where a float
 * finite difference is meaningful) against central differences of the whole step. */
static void gradcheck_model(const char *arch, int learn_mask, int shrink, nn_loss_kind k1,
                            int with_loss)
{
    model *m = make(arch, 0, learn_mask, shrink);
    batch b;
    make_batch(&b, 2, 64, 99);
    loss_cfg lc = {.n_funcs = 2,
                   .kind = {k1, NN_LOSS_MSE},
                   .weight = {1, 1},
                   .penalized_mask = 1,
                   .eye = 3,
                   .mouth = 2};
    const loss_cfg *lcp = with_loss ? &lc : NULL;
    const double floor = with_loss ? 2e-3 : 1e-6; /* smallest gradient the objective resolves */
    step_loss(m, &b, lcp, 1);
    float *g = malloc(sizeof(float) * m->n_floats);
    memcpy(g, m->g, sizeof(float) * m->n_floats);
    int checked = 0, bad = 0;
    double worst = 0;
    for (int i = 0; i < m->n_params; i++) {
        const mdl_param *p = &m->params[i];
        /* the 3 largest |g| of this tensor */
        size_t top[3] = {0, 0, 0};
        for (size_t j = 0; j < p->count; j++) {
            float a = fabsf(g[p->offset + j]);
            if (a > fabsf(g[p->offset + top[2]])) {
                top[2] = j;
                for (int t = 2; t > 0 && a > fabsf(g[p->offset + top[t - 1]]); t--) {
                    size_t sw = top[t];
                    top[t] = top[t - 1], top[t - 1] = sw;
                }
            }
        }
        for (int t = 0; t < 3; t++) {
            size_t at = p->offset + top[t];
            double ana = g[at];
            if (fabs(ana) < floor) continue;
            /* Two step sizes: the small one stays clear of the LeakyReLU kinks, the larger one of
             * the float rounding of the outputs (which swamps a gradient that is a sum of many
             * cancelling terms, like an output bias's). A wrong gradient fails both. */
            double err = 1e9, num = 0;
            for (int k = 0; k < 2 && err > 0.05; k++) {
                float keep = m->p[at];
                float h =
                    (with_loss ? 2e-3f : 2e-4f) * (k ? 10.0f : 1.0f) * fmaxf(1.0f, fabsf(keep));
                m->p[at] = keep + h;
                double lp = step_loss(m, &b, lcp, 0);
                m->p[at] = keep - h;
                double lm = step_loss(m, &b, lcp, 0);
                m->p[at] = keep;
                double nk = (lp - lm) / (2.0 * h);
                double ek = fabs(nk - ana) / fmax(fabs(nk), fabs(ana));
                if (ek < err) err = ek, num = nk;
            }
            checked++;
            if (err > worst) worst = err;
            if (err > 0.05) {
                bad++;
                fprintf(stderr, "%s %s[%zu]: analytic %g numeric %g\n", arch, p->name, top[t], ana,
                        num);
            }
        }
    }
    printf("%s learn_mask=%d shrink=%d %s: %d gradients checked, worst relative error %.3g\n", arch,
           learn_mask, shrink, with_loss ? loss_kind_name(k1) : "projection", checked, worst);
    CHECKF(bad == 0, "%d of %d gradients wrong", bad, checked);
    CHECKF(checked >= (with_loss ? m->n_params : 2 * m->n_params), "only %d checked", checked);
    free(g);
    free_batch(&b);
    model_free(m);
}

/* The memory plan: its parameter part is the arenas' size; every activation a step allocates
 * is inside its batch part (the model's act/grad buffers after a step at batch n, counted here on
 * the CPU); it grows with the batch; and the largest batch that fits a budget is exact. */
static void test_plan(void)
{
    const mdl_arch *a = model_arch_find("original");
    mdl_options o;
    mdl_options_default(&o);
    o.shrink = 8, o.learn_mask = 1;
    model *m = make("original", 0, 1, 8);
    const int n = 3;
    mdl_plan p, p1, p2;
    CHECK(model_plan(&p, a, &o, n, NULL) == 0);
    /* four arenas and a bf16 copy of the parameters */
    CHECK(p.params == (4 * m->n_floats + (m->n_floats + 1) / 2) * sizeof(float));
    /* a step, then the bytes of every activation and gradient buffer it left */
    const int S = a->input_size;
    nn_tensor x = nn_tensor_new(2 * n, S, S, 3);
    for (size_t i = 0; i < nn_numel(&x); i++) x.d[i] = (float)check_urand();
    model_forward(m, &x);
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++) {
            nn_tensor *g = model_output_grad(m, s, k);
            for (size_t i = 0; g && i < nn_numel(g); i++) g->d[i] = check_frand() * 1e-3f;
        }
    model_backward(m);
    size_t used = 0;
    const mdl_net *nets[3] = {&m->enc, &m->dec[0], &m->dec[1]};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < nets[k]->n_layers; i++)
            used += (nn_numel(&nets[k]->act[i]) + nn_numel(&nets[k]->grad[i])) * sizeof(float);
    CHECKF(used <= p.batch, "a step used %zu bytes of activations, the plan says %zu", used,
           p.batch);
    CHECKF(used >= p.batch / 2, "the plan (%zu) is far above what a step uses (%zu)", p.batch,
           used);
    CHECK(model_plan(&p1, a, &o, 10, NULL) == 0 && model_plan(&p2, a, &o, 11, NULL) == 0);
    CHECK(p2.total > p1.total && p1.total > p.total);
    CHECK(model_plan_largest_batch(a, &o, p1.total, 1000) == 10);
    CHECK(model_plan_largest_batch(a, &o, p1.total - 1, 1000) == 9);
    CHECK(model_plan_largest_batch(a, &o, p1.total, 7) == 7);
    CHECK(model_plan_largest_batch(a, &o, p.params, 1000) == 0);
    /* the trainer's check: an 80 GiB card with room for exactly batch 10 beside its reserve
     * takes 10, refuses 11 naming 10, and refuses any batch when the weights alone do not fit */
    const size_t card = (size_t)80 << 30, reserve = card / 32 + ((size_t)256 << 20);
    mdl_plan pc;
    vs_err e;
    CHECK(model_plan_check(&pc, a, &o, 10, p1.total + reserve, card, "Test GPU", &e) == 0);
    CHECK(pc.total == p1.total);
    CHECK(model_plan_check(&pc, a, &o, 11, p1.total + reserve, card, "Test GPU", &e) == -1);
    CHECKF(strstr(e.msg, "the largest batch that fits is 10 (--batch 10)") &&
               strstr(e.msg, "Test GPU"),
           "%s", e.msg);
    CHECK(model_plan_check(&pc, a, &o, 4, p.params + reserve, card, "Small GPU", &e) == -1);
    CHECKF(strstr(e.msg, "--device cpu") != NULL, "%s", e.msg);
    nn_tensor_free(&x);
    model_free(m);
}

/* Two models of one architecture, options and seed on two backends, each with a step (batch 2)
 * loaded with the same batch: random inputs, each side's inputs as its targets, one mask. */
typedef struct twin {
    const mdl_arch *a;
    model *m[2];
    step st[2];
    float *x, *mask; /* host copies */
} twin;

static void twin_new(twin *t, const char *arch_name, int learn_mask, int shrink,
                     const nn_backend *be0, const nn_backend *be1)
{
    const nn_backend *bes[2] = {be0, be1};
    t->a = strcmp(arch_name, "blocks") ? model_arch_find(arch_name) : &blocks_arch;
    mdl_options o;
    mdl_options_default(&o);
    o.learn_mask = learn_mask, o.shrink = shrink;
    loss_cfg lc;
    loss_cfg_default(&lc);
    nn_adam h = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f};
    const int n = 2, S = t->a->input_size;
    const size_t per = (size_t)S * S * 3, px = (size_t)S * S;
    t->x = check_rand_buf(2 * n * per), t->mask = check_rand_buf(n * px);
    for (size_t i = 0; i < 2 * n * per; i++) t->x[i] = fabsf(t->x[i]);
    for (size_t i = 0; i < n * px; i++) t->mask[i] = fabsf(t->mask[i]);
    for (int k = 0; k < 2; k++) {
        vs_err e;
        CHECK(model_create_arch(&t->m[k], t->a, &o, bes[k], 99, &e) == 0);
        step_init(&t->st[k], t->m[k], n, &lc, &h);
        memcpy(t->st[k].x.d, t->x, 2 * n * per * sizeof(float));
        for (int s = 0; s < 2; s++) {
            memcpy(t->st[k].tgt[s].d, t->x + s * n * per, n * per * sizeof(float));
            for (int q = 0; q < 3; q++)
                memcpy(t->st[k].mask[s][q], t->mask, n * px * sizeof(float));
        }
    }
}

static void twin_free(twin *t)
{
    for (int k = 0; k < 2; k++) {
        step_free(&t->st[k]);
        model_free(t->m[k]);
    }
    free(t->x), free(t->mask);
}

/* A backend that keeps conv2d kernels in OHWI (as the CUDA backend does) trains bit for bit as
 * the CPU does once model.c has converted its kernels in and out: the same losses, gradients and
 * weights after a step, and the same checkpoint tensors, which read back into the same state. */
static void test_layout(const char *arch_name, int learn_mask, int shrink)
{
    twin tw;
    twin_new(&tw, arch_name, learn_mask, shrink, nn_cpu_backend(), ohwi_backend());
    const mdl_arch *a = tw.a;
    const nn_backend *bes[2] = {tw.m[0]->be, tw.m[1]->be};
    mdl_options o = tw.m[0]->opt;
    model **m = tw.m;
    double loss[2][2];
    for (int k = 0; k < 2; k++) {
        CHECK(step_run(&tw.st[k], loss[k], STEP_AUTO, 0) == 1);
        CHECK(step_run(&tw.st[k], loss[k], STEP_AUTO, 0) == 1);
    }
    CHECK(loss[0][0] == loss[1][0] && loss[0][1] == loss[1][1]);
    float *g[2], *p[2];
    for (int k = 0; k < 2; k++) {
        g[k] = malloc(m[k]->n_floats * sizeof(float)),
        p[k] = malloc(m[k]->n_floats * sizeof(float));
        model_arena_download(m[k], g[k], m[k]->g);
        model_arena_download(m[k], p[k], m[k]->p);
    }
    CHECKF(!memcmp(g[0], g[1], m[0]->n_floats * sizeof(float)), "%s: gradients differ", arch_name);
    CHECKF(!memcmp(p[0], p[1], m[0]->n_floats * sizeof(float)), "%s: weights differ", arch_name);
    /* the checkpoint tensors are the same, and read back into an OHWI model give its weights */
    ckpt_tensor *t[2];
    char(*names[2])[MDL_STATE_NAME];
    float *host[2];
    int nt[2];
    for (int k = 0; k < 2; k++) nt[k] = model_state_tensors(&t[k], &names[k], &host[k], m[k]);
    CHECK(nt[0] == nt[1]);
    int same = 1;
    for (int i = 0; i < nt[0] && i < nt[1]; i++) {
        size_t cnt = 1;
        for (int d = 0; d < t[0][i].ndim; d++) cnt *= (size_t)t[0][i].shape[d];
        same &= !strcmp(t[0][i].name, t[1][i].name) &&
                !memcmp(t[0][i].data, t[1][i].data, cnt * sizeof(float));
    }
    CHECKF(same, "%s: checkpoint tensors differ between the layouts", arch_name);
    char dir[] = "/tmp/visage-test-layout-XXXXXX", path[64];
    vs_err e;
    CHECK(mkdtemp(dir) != NULL);
    CHECK(ckpt_save(dir, 2, NULL, 0, t[1], nt[1], 1, CKPT_NO_SNAPSHOT, &e) == 0);
    snprintf(path, sizeof path, "%s/model.vsk", dir);
    ckpt *c = ckpt_open(path, &e);
    model *back = NULL;
    CHECK(c && model_create_arch(&back, a, &o, bes[1], 5, &e) == 0);
    CHECK(c && back && model_state_read(back, c, &e) == 0);
    if (back) CHECK(!memcmp(back->p, m[1]->p, m[1]->n_floats * sizeof(float)));
    ckpt_close(c);
    check_rm_rf(dir);
    model_free(back);
    for (int k = 0; k < 2; k++) free(t[k]), free(names[k]), free(host[k]), free(g[k]), free(p[k]);
    twin_free(&tw);
}

/* Whether a 16-bit model's weight copy is its parameters rounded to nearest even. */
static int weights_rounded(const model *m)
{
    size_t n = m->n_floats, bad = 0;
    float *p = malloc(n * sizeof *p);
    uint16_t *w = malloc(nn_floats_for(n, m->dt) * sizeof(float));
    m->be->copy_out(p, m->p, n);
    m->be->copy_out((float *)w, m->pw, nn_floats_for(n, m->dt));
    for (size_t i = 0; i < n; i++) bad += w[i] != nn_half_from_f32(m->dt == NN_BF16, p[i]);
    free(p), free(w);
    return m->dt != NN_F32 && bad == 0;
}

/* ||a - b|| / ||b|| */
static double rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

/* Training in 16 bits (tests/half_backend.h: what the CUDA backend's bf16 and fp16 precisions
 * compute; fp16 with its loss scale) against fp32 from the same weights and batch: the layers
 * read the parameters rounded (after creation and after every Adam step), one step's losses and
 * gradients agree loosely, inference agrees, and 30 steps follow the fp32 loss curve. */
static void test_half(nn_dtype dt, const char *arch_name, int learn_mask, int shrink)
{
    const char *tn = dt == NN_BF16 ? "bf16" : "fp16";
    twin tw;
    twin_new(&tw, arch_name, learn_mask, shrink, nn_cpu_backend(), half_backend(dt));
    const mdl_arch *a = tw.a;
    model **m = tw.m;
    step *st = tw.st;
    float *x = tw.x;
    const int n = 2, S = a->input_size, steps = 30;
    double loss[2][2], first[2][2] = {{0}};
    float *g[2];
    CHECK(m[0]->dt == NN_F32 && !m[0]->pw && m[1]->dt == dt);
    CHECK(st[1].scaled == (dt == NN_F16) && st[0].scale == 1.0);
    CHECKF(weights_rounded(m[1]), "%s: a new %s model's weight copy", arch_name, tn);
    /* inference */
    nn_tensor in = {x, n, S, S, 3, NN_F32}, y[2];
    const int So = a->output_size;
    for (int k = 0; k < 2; k++) {
        y[k] = nn_tensor_new(n, So, So, 3);
        model_infer(m[k], &y[k], NULL, &in, 1);
    }
    double ei = rel_l2(y[1].d, y[0].d, nn_numel(&y[0]));
    printf("%s %s: inference %.2g from fp32", arch_name, tn, ei);
    CHECKF(ei < 2e-2, "%s: %s inference is %.3g from fp32 (relative L2)", arch_name, tn, ei);
    /* one step */
    for (int k = 0; k < 2; k++) {
        CHECK(step_run(&st[k], first[k], STEP_AUTO, 0) == 1);
        g[k] = malloc(m[k]->n_floats * sizeof(float));
        model_arena_download(m[k], g[k], m[k]->g);
    }
    if (dt == NN_F16) /* the gradients are the scale's multiple */
        for (size_t i = 0; i < m[1]->n_floats; i++) g[1][i] = (float)(g[1][i] / st[1].scale);
    double eg = rel_l2(g[1], g[0], m[0]->n_floats);
    double el = fabs(first[1][0] - first[0][0]) / first[0][0];
    printf(", loss %.2g, gradients %.2g", el, eg);
    CHECKF(el < 1e-3, "%s: %s loss %g, fp32 %g", arch_name, tn, first[1][0], first[0][0]);
    CHECKF(eg < 0.1, "%s: %s gradients are %.3g from fp32 (relative L2)", arch_name, tn, eg);
    CHECKF(weights_rounded(m[1]), "%s: the weight copy after an Adam step", arch_name);
    /* the loss curve */
    for (int i = 1; i < steps; i++)
        for (int k = 0; k < 2; k++) CHECK(step_run(&st[k], loss[k], STEP_AUTO, 0) == 1);
    double ec = fabs(loss[1][0] + loss[1][1] - loss[0][0] - loss[0][1]) / (loss[0][0] + loss[0][1]);
    printf(", loss after %d steps %.4g (fp32 %.4g, from %.4g): %.2g\n", steps,
           loss[1][0] + loss[1][1], loss[0][0] + loss[0][1], first[0][0] + first[0][1], ec);
    CHECK(loss[0][0] + loss[0][1] < 0.9 * (first[0][0] + first[0][1])); /* it learned */
    CHECKF(ec < 1e-2, "%s: after %d steps %s loss is %.3g from fp32", arch_name, steps, tn, ec);
    for (int k = 0; k < 2; k++) free(g[k]), nn_tensor_free(&y[k]);
    twin_free(&tw);
}

/* fp16's dynamic loss scale: a step whose gradients overflow at a scale far too large leaves the
 * weights alone, halves the scale and runs again until they fit, then updates the weights as the
 * fp32 step does (and counts one Adam step); a scale of 1 that still overflows is a failure; the
 * scale doubles after STEP_SCALE_GROWTH good steps. */
static void test_loss_scale(void)
{
    twin tw;
    twin_new(&tw, "original", 0, 16, nn_cpu_backend(), half_backend(NN_F16));
    model **m = tw.m;
    step *st = tw.st;
    const size_t nf = m[0]->n_floats;
    step_set_scale(&st[1], 0x1p40); /* every gradient of fp16 overflows */
    double l[2][2];
    for (int k = 0; k < 2; k++) CHECK(step_run(&st[k], l[k], STEP_AUTO, 0) == 1);
    printf("loss scale: 2^40 came down to 2^%.0f\n", log2(st[1].scale));
    CHECKF(st[1].scale < 0x1p40 && st[1].scale >= 1.0, "scale %g", st[1].scale);
    CHECK(m[1]->adam_t == 1 && st[1].good == 1);
    float *p0 = malloc(nf * sizeof *p0), *p1 = malloc(nf * sizeof *p1);
    model_arena_download(m[0], p0, m[0]->p);
    model_arena_download(m[1], p1, m[1]->p);
    double mean = 0;
    size_t finite = 0;
    for (size_t i = 0; i < nf; i++) {
        mean += fabs((double)p1[i] - p0[i]) / st[1].h.lr;
        finite += isfinite(p1[i]);
    }
    mean /= (double)nf;
    CHECKF(finite == nf, "%zu of %zu weights are not finite after the retried step", nf - finite,
           nf);
    CHECKF(mean < 0.1, "after the retried step the weights differ from fp32's by %.3g lr", mean);
    /* the growth */
    const double s0 = st[1].scale;
    st[1].good = STEP_SCALE_GROWTH - 1;
    CHECK(step_run(&st[1], l[1], STEP_AUTO, 0) == 1);
    CHECK(st[1].scale == 2 * s0 && st[1].good == 0);
    /* at scale 1 an overflow fails (a poisoned gradient never retries) */
    CHECK(step_run(&st[1], l[1], STEP_AUTO, 1) == 0);
    free(p0), free(p1);
    twin_free(&tw);
}

int main(void)
{
    nn_cpu_set_threads(0);
    test_param_counts();
    test_init();
    test_plan();
    test_layout("blocks", 1, 1);
    test_layout("original", 1, 16);
    test_half(NN_BF16, "blocks", 1, 1);
    test_half(NN_BF16, "original", 1, 16);
    test_half(NN_BF16, "lightweight", 0, 16);
    test_half(NN_F16, "blocks", 1, 1);
    test_half(NN_F16, "original", 1, 16);
    test_loss_scale();
    gradcheck_model("blocks", 1, 1, NN_LOSS_SSIM, 0);
    gradcheck_model("blocks", 1, 1, NN_LOSS_SSIM, 1);
    gradcheck_model("original", 1, 16, NN_LOSS_SSIM, 0);
    gradcheck_model("lightweight", 1, 16, NN_LOSS_SSIM, 0);
    gradcheck_model("original", 1, 16, NN_LOSS_SSIM, 1);
    gradcheck_model("lightweight", 0, 16, NN_LOSS_MAE, 1);
    return check_report("test_model");
}
