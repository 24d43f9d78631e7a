/* model.c: building a model from its architecture file, the parameter arenas and their
 * directory, Keras-style initialisation, and the forward and backward passes through the
 * encoder and the two decoders on a backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "rng.h"

extern const mdl_arch mdl_arch_original, mdl_arch_lightweight;

const mdl_arch *const model_archs[] = {&mdl_arch_original, &mdl_arch_lightweight, NULL};

const mdl_arch *model_arch_find(const char *name)
{
    for (int i = 0; model_archs[i]; i++)
        if (strcmp(model_archs[i]->name, name) == 0) return model_archs[i];
    return NULL;
}

void mdl_options_default(mdl_options *o)
{
    *o = (mdl_options){.shrink = 1, .coverage = 0.875f, .centering = ALIGN_FACE};
}

/* ---- building ------------------------------------------------------------------------------ */

void mdl_net_begin(mdl_net *n, const char *name, int h, int w, int c)
{
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    n->in_h = h, n->in_w = w, n->in_c = c;
    n->face_out = n->mask_out = -1;
}

int mdl_width(const model *m, int filters)
{
    int w = filters / (m->opt.shrink > 0 ? m->opt.shrink : 1);
    return w > 0 ? w : 1;
}

/* Appends l (op, in, in2, filters, k, stride, act, name set) and fills in its shapes. */
static int add_layer(mdl_net *n, mdl_layer l)
{
    VS_CHECK(n->n_layers < MDL_MAX_LAYERS);
    VS_CHECK(l.in >= -1 && l.in < n->n_layers);
    if (l.in < 0)
        l.ih = n->in_h, l.iw = n->in_w, l.ic = n->in_c;
    else
        l.ih = n->layers[l.in].h, l.iw = n->layers[l.in].w, l.ic = n->layers[l.in].c;
    l.pw = l.pb = -1;
    switch (l.op) {
    case MDL_CONV:
    case MDL_DEPTHWISE:
        nn_conv_geometry(&l.cd, l.ih, l.iw, l.k, l.k, l.stride, l.stride, NN_PAD_SAME);
        l.cd.act = l.act, l.cd.alpha = l.alpha;
        l.h = nn_out_size(l.ih, l.k, l.stride, NN_PAD_SAME);
        l.w = nn_out_size(l.iw, l.k, l.stride, NN_PAD_SAME);
        l.c = l.op == MDL_CONV ? l.filters : l.ic;
        break;
    case MDL_DENSE: break; /* h, w, c given */
    case MDL_SHUFFLE:
        VS_CHECK(l.ic % 4 == 0);
        l.h = l.ih * 2, l.w = l.iw * 2, l.c = l.ic / 4;
        break;
    case MDL_ADD: {
        VS_CHECK(l.in2 >= -1 && l.in2 < n->n_layers);
        const mdl_layer *b = &n->layers[l.in2];
        VS_CHECK(l.in2 >= 0 && b->h == l.ih && b->w == l.iw && b->c == l.ic);
        l.h = l.ih, l.w = l.iw, l.c = l.ic;
        break;
    }
    }
    n->layers[n->n_layers] = l;
    return n->n_layers++;
}

int mdl_conv(mdl_net *n, int in, const char *name, int filters, int k, int stride, nn_act act,
             float alpha)
{
    mdl_layer l = {.op = MDL_CONV,
                   .in = in,
                   .filters = filters,
                   .k = k,
                   .stride = stride,
                   .act = act,
                   .alpha = alpha};
    snprintf(l.name, sizeof l.name, "%s", name);
    return add_layer(n, l);
}

int mdl_dense(mdl_net *n, int in, const char *name, int h, int w, int c)
{
    mdl_layer l = {.op = MDL_DENSE, .in = in, .h = h, .w = w, .c = c, .act = NN_ACT_NONE};
    snprintf(l.name, sizeof l.name, "%s", name);
    return add_layer(n, l);
}

int mdl_shuffle(mdl_net *n, int in, const char *name)
{
    mdl_layer l = {.op = MDL_SHUFFLE, .in = in, .act = NN_ACT_NONE};
    snprintf(l.name, sizeof l.name, "%s", name);
    return add_layer(n, l);
}

int mdl_add(mdl_net *n, int in, int in2, const char *name, nn_act act, float alpha)
{
    mdl_layer l = {.op = MDL_ADD, .in = in, .in2 = in2, .act = act, .alpha = alpha};
    snprintf(l.name, sizeof l.name, "%s", name);
    return add_layer(n, l);
}

int mdl_separable(mdl_net *n, int in, const char *name, int filters, int k, int stride, nn_act act,
                  float alpha)
{
    char dw[40];
    snprintf(dw, sizeof dw, "%.30s_dw", name);
    mdl_layer l = {.op = MDL_DEPTHWISE, .in = in, .k = k, .stride = stride, .act = NN_ACT_NONE};
    snprintf(l.name, sizeof l.name, "%s", dw);
    int d = add_layer(n, l);
    return mdl_conv(n, d, name, filters, 1, 1, act, alpha);
}

int mdl_conv_block(mdl_net *n, int in, int filters)
{
    char name[40];
    snprintf(name, sizeof name, "conv_%d_%d", filters, n->n_layers);
    return mdl_conv(n, in, name, filters, 5, 2, NN_ACT_LEAKY, 0.1f);
}

int mdl_upscale_block(mdl_net *n, int in, int filters)
{
    char name[40];
    snprintf(name, sizeof name, "upscale_%d_%d", filters, n->n_layers);
    int c = mdl_conv(n, in, name, filters * 4, 3, 1, NN_ACT_LEAKY, 0.1f);
    snprintf(name, sizeof name, "shuffle_%d", n->n_layers);
    return mdl_shuffle(n, c, name);
}

int mdl_conv_output(mdl_net *n, int in, const char *name, int filters)
{
    return mdl_conv(n, in, name, filters, 5, 1, NN_ACT_SIGMOID, 0.0f);
}

void mdl_plain_decoders(model *m, int hw, int in_c, const int *widths, int n_widths)
{
    static const char *names[2] = {"decoder_a", "decoder_b"};
    for (int s = 0; s < 2; s++) {
        mdl_net *d = &m->dec[s];
        mdl_net_begin(d, names[s], hw, hw, mdl_width(m, in_c));
        int x = -1;
        for (int i = 0; i < n_widths; i++) x = mdl_upscale_block(d, x, mdl_width(m, widths[i]));
        d->face_out = mdl_conv_output(d, x, "face_out", 3);
        if (!m->opt.learn_mask) continue;
        x = -1;
        for (int i = 0; i < n_widths; i++) x = mdl_upscale_block(d, x, mdl_width(m, widths[i]));
        d->mask_out = mdl_conv_output(d, x, "mask_out", 1);
    }
}

/* ---- the parameter directory and the arenas ------------------------------------------------ */

static int add_param(model *m, const char *net, const char *layer, const char *what, int ndim,
                     const int64_t *shape)
{
    VS_CHECK(m->n_params < MDL_MAX_PARAMS);
    mdl_param *p = &m->params[m->n_params];
    snprintf(p->name, sizeof p->name, "%s.%s.%s", net, layer, what);
    p->ndim = ndim;
    p->count = 1;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i], p->count *= (size_t)shape[i];
    p->offset = m->n_floats;
    m->n_floats += (p->count + 15) & ~(size_t)15; /* 64-byte aligned in every arena */
    return m->n_params++;
}

static void register_params(model *m, mdl_net *n)
{
    for (int i = 0; i < n->n_layers; i++) {
        mdl_layer *l = &n->layers[i];
        switch (l->op) {
        case MDL_CONV:
            l->pw = add_param(m, n->name, l->name, "kernel", 4,
                              (int64_t[]){l->k, l->k, l->ic, l->filters});
            m->params[l->pw].conv_cout = l->filters;
            l->pb = add_param(m, n->name, l->name, "bias", 1, (int64_t[]){l->filters});
            break;
        case MDL_DEPTHWISE:
            l->pw = add_param(m, n->name, l->name, "kernel", 3, (int64_t[]){l->k, l->k, l->ic});
            break;
        case MDL_DENSE:
            l->pw =
                add_param(m, n->name, l->name, "kernel", 2,
                          (int64_t[]){(int64_t)l->ih * l->iw * l->ic, (int64_t)l->h * l->w * l->c});
            l->pb =
                add_param(m, n->name, l->name, "bias", 1, (int64_t[]){(int64_t)l->h * l->w * l->c});
            break;
        case MDL_SHUFFLE:
        case MDL_ADD: break;
        }
    }
}

/* Keras defaults: he_uniform for the convolutions (Faceswap's nn_blocks), glorot_uniform for
 * dense layers, zero biases. Filled on the host in directory order from one seeded stream. */
static void init_params(model *m, float *host, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    memset(host, 0, m->n_floats * sizeof(float));
    mdl_net *nets[3] = {&m->enc, &m->dec[0], &m->dec[1]};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < nets[k]->n_layers; i++) {
            const mdl_layer *l = &nets[k]->layers[i];
            if (l->pw < 0) continue;
            const mdl_param *p = &m->params[l->pw];
            double limit;
            if (l->op == MDL_DENSE)
                limit = sqrt(6.0 / (double)(p->shape[0] + p->shape[1]));
            else /* fan in = receptive field x input channels, as Keras computes it */
                limit = sqrt(6.0 / ((double)l->k * l->k * l->ic));
            float *w = host + p->offset;
            for (size_t j = 0; j < p->count; j++)
                w[j] = (float)((2.0 * rng_uniform(&r) - 1.0) * limit);
        }
}

int model_create(model **out, const char *arch, const mdl_options *o, const nn_backend *be,
                 uint64_t seed, vs_err *e)
{
    *out = NULL;
    const mdl_arch *a = model_arch_find(arch);
    if (!a) {
        char list[256] = "";
        for (int i = 0; model_archs[i]; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     model_archs[i]->name);
        return vs_fail(e, "unknown model '%s' (models: %s)", arch, list);
    }
    return model_create_arch(out, a, o, be, seed, e);
}

/* The layer lists and the parameter directory of a on be, nothing allocated on the backend. */
static model *build(const mdl_arch *a, const mdl_options *o, const nn_backend *be)
{
    model *m = vs_calloc(1, sizeof *m);
    m->arch = a;
    m->opt = *o;
    m->be = be;
    a->build(m);
    register_params(m, &m->enc);
    register_params(m, &m->dec[0]);
    register_params(m, &m->dec[1]);
    VS_CHECK(m->dec[0].face_out >= 0 && m->dec[1].face_out >= 0);
    return m;
}

static int check_options(const mdl_options *o, vs_err *e)
{
    if (o->shrink < 1 || o->shrink > 64)
        return vs_fail(e, "model width divisor %d is out of range (1-64)", o->shrink);
    if (!(o->coverage >= 0.5f && o->coverage <= 1.0f))
        return vs_fail(e, "coverage %g is out of range (0.5-1)", (double)o->coverage);
    return 0;
}

/* floats of the activations and their gradients of net n at batch b, and the largest padded
 * input of a convolution (what a backend that pads explicitly copies) */
static size_t net_floats(const mdl_net *n, size_t b, size_t *pad_max)
{
    size_t f = 0;
    for (int i = 0; i < n->n_layers; i++) {
        const mdl_layer *l = &n->layers[i];
        f += 2 * b * (size_t)l->h * l->w * l->c;
        if (l->op != MDL_CONV) continue;
        const nn_conv_desc *d = &l->cd;
        size_t padded = b * (size_t)(l->ih + d->pad_t + d->pad_b) * (l->iw + d->pad_l + d->pad_r) *
                        (size_t)l->ic;
        if (padded > *pad_max) *pad_max = padded;
    }
    return f;
}

int model_plan(mdl_plan *p, const mdl_arch *a, const mdl_options *o, int n, vs_err *e)
{
    memset(p, 0, sizeof *p);
    if (check_options(o, e)) return -1;
    model *m = build(a, o, NULL); /* the directory only: nothing is allocated */
    const size_t S = (size_t)a->input_size, b = (size_t)n;
    size_t pad_max = 0;
    size_t act = net_floats(&m->enc, 2 * b, &pad_max) + net_floats(&m->dec[0], b, &pad_max) +
                 net_floats(&m->dec[1], b, &pad_max);
    const size_t So = (size_t)a->output_size;
    /* the four arenas and, for a backend that trains in bf16, the parameters' bf16 copy */
    p->params = (4 * m->n_floats + nn_floats_for(m->n_floats, NN_BF16)) * sizeof(float);
    /* the step's inputs, targets and masks, then the activations and gradients (counted as fp32,
     * and with a bf16 model's fp32 copies of its input and outputs and their gradients) */
    p->batch = (4 * b * S * S * 3 + 6 * b * S * S + act + 2 * b * S * S * 3 + 4 * b * So * So * 4) *
               sizeof(float);
    /* scratch, each grown by a quarter when it grows: two padded inputs, the SSIM maps (7 per
     * pixel and channel at most) */
    p->scratch = (size_t)(1.25 * (double)((2 * pad_max + 7 * b * S * S * 3) * sizeof(float))) +
                 (size_t)(1.25 * (double)NN_GPU_WORKSPACE_MAX) + /* the convolutions' */
                 (64u << 20); /* partial sums, cuBLAS's workspace */
    p->total = p->params + p->batch + p->scratch;
    free(m);
    return 0;
}

int model_plan_largest_batch(const mdl_arch *a, const mdl_options *o, size_t bytes, int most)
{
    int lo = 0, hi = most; /* plan(lo) fits (0 vacuously), find the largest */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        mdl_plan p;
        if (model_plan(&p, a, o, mid, NULL) || p.total > bytes)
            hi = mid - 1;
        else
            lo = mid;
    }
    return lo;
}

static double gib(size_t bytes)
{
    return (double)bytes / (1u << 30);
}

int model_plan_check(mdl_plan *p, const mdl_arch *a, const mdl_options *o, int n, size_t mem_free,
                     size_t mem_total, const char *card, vs_err *e)
{
    if (model_plan(p, a, o, n, e)) return -1;
    const size_t reserve = mem_total / 32 + ((size_t)256 << 20);
    const size_t usable = mem_free > reserve ? mem_free - reserve : 0;
    if (p->total <= usable) return 0;
    int fits = model_plan_largest_batch(a, o, usable, n - 1);
    if (fits == 0) {
        mdl_plan one;
        model_plan(&one, a, o, 1, NULL);
        return vs_fail(e,
                       "the %s model needs %.1f GiB of GPU memory at batch 1 and %s has %.1f GiB "
                       "free (%.1f usable): train it on the CPU (--device cpu) or a larger card",
                       a->name, gib(one.total), card, gib(mem_free), gib(usable));
    }
    return vs_fail(e,
                   "the %s model at batch %d needs %.1f GiB of GPU memory and %s has %.1f GiB "
                   "free (%.1f usable): the largest batch that fits is %d (--batch %d)",
                   a->name, n, gib(p->total), card, gib(mem_free), gib(usable), fits, fits);
}

int model_create_arch(model **out, const mdl_arch *a, const mdl_options *o, const nn_backend *be,
                      uint64_t seed, vs_err *e)
{
    *out = NULL;
    if (check_options(o, e)) return -1;
    model *m = build(a, o, be);
    m->dt = be->train_dtype;
    VS_CHECK(m->n_floats <= INT32_MAX);
    m->p = be->alloc(m->n_floats);
    if (m->dt != NN_F32) m->pw = be->alloc(nn_floats_for(m->n_floats, m->dt));
    m->g = be->alloc(nn_floats_for(m->n_floats, m->dt));
    m->m = be->alloc(m->n_floats);
    m->v = be->alloc(m->n_floats);
    float *host = vs_malloc(m->n_floats * sizeof(float));
    init_params(m, host, seed);
    model_arena_upload(m, m->p, host);
    free(host);
    be->fill(m->g, nn_floats_for(m->n_floats, m->dt), 0.0f); /* zero bits: 0 in every type */
    be->fill(m->m, m->n_floats, 0.0f);
    be->fill(m->v, m->n_floats, 0.0f);
    *out = m;
    return 0;
}

/* Each conv2d kernel of `src` (an arena image) converted between HWIO and the backend's
 * layout into dst; the other parameters copied. */
static void convert_kernels(const model *m, float *dst, const float *src, int to_backend)
{
    nn_weight_layout be = m->be->conv_layout;
    memcpy(dst, src, m->n_floats * sizeof(float));
    for (int i = 0; i < m->n_params; i++) {
        const mdl_param *p = &m->params[i];
        if (!p->conv_cout) continue;
        size_t k = p->count / (size_t)p->conv_cout;
        nn_conv_weights_convert(dst + p->offset, src + p->offset, k, p->conv_cout,
                                to_backend ? NN_LAYOUT_HWIO : be, to_backend ? be : NN_LAYOUT_HWIO);
    }
}

/* A bf16 model's weight copy from its fp32 parameters. */
static void refresh_weights(const model *m)
{
    if (!m->pw) return;
    nn_tensor p = nn_flat(m->p, m->n_floats, NN_F32), w = nn_flat(m->pw, m->n_floats, m->dt);
    m->be->convert(&w, &p);
}

void model_arena_download(const model *m, float *host, const float *arena)
{
    const nn_backend *be = m->be;
    float *t = vs_malloc(m->n_floats * sizeof(float));
    if (arena == m->g && m->dt != NN_F32) { /* a 16-bit model's gradients: widened */
        float *w = be->alloc(m->n_floats);
        nn_tensor src = nn_flat(m->g, m->n_floats, m->dt), dst = nn_flat(w, m->n_floats, NN_F32);
        be->convert(&dst, &src);
        be->copy_out(t, w, m->n_floats);
        be->free(w);
    } else {
        be->copy_out(t, arena, m->n_floats);
    }
    if (be->conv_layout == NN_LAYOUT_HWIO)
        memcpy(host, t, m->n_floats * sizeof(float));
    else
        convert_kernels(m, host, t, 0);
    free(t);
}

void model_arena_upload(const model *m, float *arena, const float *host)
{
    if (m->be->conv_layout == NN_LAYOUT_HWIO) {
        m->be->copy_in(arena, host, m->n_floats);
    } else {
        float *t = vs_malloc(m->n_floats * sizeof(float));
        convert_kernels(m, t, host, 1);
        m->be->copy_in(arena, t, m->n_floats);
        free(t);
    }
    if (arena == m->p) refresh_weights(m);
}

static void free_net(const nn_backend *be, mdl_net *n)
{
    for (int i = 0; i < n->n_layers; i++) {
        if (n->act[i].d) be->free(n->act[i].d);
        if (n->grad[i].d) be->free(n->grad[i].d);
    }
}

void model_free(model *m)
{
    if (!m) return;
    free_net(m->be, &m->enc);
    free_net(m->be, &m->dec[0]);
    free_net(m->be, &m->dec[1]);
    m->be->free(m->p);
    m->be->free(m->g);
    m->be->free(m->m);
    m->be->free(m->v);
    if (m->pw) m->be->free(m->pw);
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++) {
            if (m->out[s][k].d) m->be->free(m->out[s][k].d);
            if (m->out_grad[s][k].d) m->be->free(m->out_grad[s][k].d);
        }
    if (m->x_conv.d) m->be->free(m->x_conv.d);
    free(m);
}

/* Layers that feed only the mask output (walking back from it until a layer the face output
 * also uses). */
static void mask_only_layers(int *only, const mdl_net *n)
{
    int face[MDL_MAX_LAYERS] = {0};
    memset(only, 0, sizeof(int) * MDL_MAX_LAYERS);
    for (int i = n->face_out; i >= 0; i = n->layers[i].in) face[i] = 1;
    for (int i = n->n_layers - 1; i >= 0; i--) {
        const mdl_layer *l = &n->layers[i];
        if (l->op == MDL_ADD && face[i] && l->in2 >= 0) /* residual sides of the face path */
            for (int j = l->in2; j >= 0 && !face[j]; j = n->layers[j].in) face[j] = 1;
    }
    if (n->mask_out < 0) return;
    for (int i = n->mask_out; i >= 0 && !face[i]; i = n->layers[i].in) only[i] = 1;
}

size_t model_param_count(const model *m)
{
    size_t total = 0;
    const mdl_net *nets[3] = {&m->enc, &m->dec[0], &m->dec[1]};
    for (int k = 0; k < 3; k++) {
        int only[MDL_MAX_LAYERS];
        mask_only_layers(only, nets[k]);
        for (int i = 0; i < nets[k]->n_layers; i++) {
            const mdl_layer *l = &nets[k]->layers[i];
            if (only[i]) continue;
            if (l->pw >= 0) total += m->params[l->pw].count;
            if (l->pb >= 0) total += m->params[l->pb].count;
        }
    }
    return total;
}

/* ---- forward and backward ------------------------------------------------------------------ */

/* t: [n, h, w, c] of type dt in backend memory, reallocated only when it must grow (a tensor
 * keeps its type). */
static void ensure_dt(const nn_backend *be, nn_tensor *t, nn_dtype dt, int n, int h, int w, int c)
{
    size_t need = (size_t)n * h * w * c, have = nn_numel(t);
    VS_CHECK(!t->d || t->dt == dt);
    if (!t->d || need > have) {
        if (t->d) be->free(t->d);
        t->d = be->alloc(nn_floats_for(need, dt));
    }
    t->n = n, t->h = h, t->w = w, t->c = c, t->dt = dt;
}

/* an activation or its gradient: of the model's type */
static void ensure(const model *m, nn_tensor *t, int n, int h, int w, int c)
{
    ensure_dt(m->be, t, m->dt, n, h, w, c);
}

/* Samples [n0, n0 + n) of t. */
static nn_tensor batch_view(const nn_tensor *t, int n0, int n)
{
    nn_tensor v = *t;
    v.d = nn_at(t->d, t->dt, (size_t)n0 * t->h * t->w * t->c);
    v.n = n;
    return v;
}

/* a bias (fp32 always) */
static const float *param(const model *m, const float *arena, int idx)
{
    return idx < 0 ? NULL : arena + m->params[idx].offset;
}

/* the weights the layers read: the parameters, or a bf16 model's copy of them */
static const float *weights(const model *m, int idx)
{
    if (idx < 0) return NULL;
    return m->pw ? nn_at(m->pw, m->dt, m->params[idx].offset) : m->p + m->params[idx].offset;
}

/* Whether conv layer i and the pixel shuffle after it run as one (conv2d with shuffle): the
 * shuffle is layer i + 1 and the only user of layer i's output, which is not an output. Layer
 * i's activation then never exists; layer i + 1's holds the shuffled one. */
static int fused_shuffle(const mdl_net *n, int i)
{
    if (n->layers[i].op != MDL_CONV || i + 1 >= n->n_layers) return 0;
    if (n->layers[i + 1].op != MDL_SHUFFLE || n->layers[i + 1].in != i) return 0;
    if (i == n->face_out || i == n->mask_out) return 0;
    for (int j = i + 2; j < n->n_layers; j++)
        if (n->layers[j].in == i || (n->layers[j].op == MDL_ADD && n->layers[j].in2 == i)) return 0;
    return 1;
}

static void net_forward(model *m, mdl_net *n, const nn_tensor *x)
{
    const nn_backend *be = m->be;
    VS_CHECK(x->h == n->in_h && x->w == n->in_w && x->c == n->in_c);
    const int b = x->n;
    n->batch = b;
    n->in = *x;
    for (int i = 0; i < n->n_layers; i++) {
        const mdl_layer *l = &n->layers[i];
        nn_tensor *y = &n->act[i];
        const nn_tensor *in = l->in < 0 ? x : &n->act[l->in];
        const float *w = weights(m, l->pw), *bias = param(m, m->p, l->pb);
        if (fused_shuffle(n, i)) { /* straight into the shuffle's output */
            const mdl_layer *s = &n->layers[i + 1];
            y->n = b, y->h = l->h, y->w = l->w, y->c = l->c; /* its shape only: never written */
            nn_conv_desc d = l->cd;
            d.shuffle = 2;
            ensure(m, &n->act[i + 1], b, s->h, s->w, s->c);
            be->conv2d(&n->act[i + 1], in, w, bias, &d);
            i++;
            continue;
        }
        ensure(m, y, b, l->h, l->w, l->c);
        switch (l->op) {
        case MDL_CONV: be->conv2d(y, in, w, bias, &l->cd); break;
        case MDL_DEPTHWISE: be->depthwise(y, in, w, NULL, &l->cd); break;
        case MDL_DENSE: be->dense(y, in, w, bias, l->act, l->alpha); break;
        case MDL_SHUFFLE: be->depth_to_space(y, in, 2); break;
        case MDL_ADD:
            be->add(y, in, &n->act[l->in2]);
            be->act(y, l->act, l->alpha);
            break;
        }
    }
}

/* Sends gradient g (the gradient of a layer's input) into dst: replaced the first time,
 * added after. */
static void grad_into(const nn_backend *be, nn_tensor *dst, int *written, const nn_tensor *g)
{
    if (*written)
        be->add(dst, dst, g);
    else
        be->convert(dst, g);
    *written = 1;
}

/* Backward through net n. written[i] says which layers' output gradients hold something (the
 * caller sets the outputs'). dx (may be NULL): where the gradient of the net's input goes; it is
 * overwritten. */
static void net_backward(model *m, mdl_net *n, int *written, nn_tensor *dx)
{
    const nn_tensor *x = &n->in;
    const nn_backend *be = m->be;
    const int b = n->batch;
    int dx_written = 0;
    nn_tensor tmp = {0};
    for (int i = n->n_layers - 1; i >= 0; i--) {
        if (!written[i]) continue;
        const mdl_layer *l = &n->layers[i];
        nn_tensor *gy = &n->grad[i];
        const nn_tensor *y = &n->act[i];
        /* a conv fused with its shuffle had its activation's gradient taken with the shuffle's */
        if (l->act != NN_ACT_NONE && !fused_shuffle(n, i)) be->act_bwd(gy, gy, y, l->act, l->alpha);
        const nn_tensor *in = l->in < 0 ? x : &n->act[l->in];
        nn_tensor *gin = NULL;
        int *gin_written = &dx_written;
        if (l->in < 0) {
            gin = dx;
        } else {
            gin = &n->grad[l->in];
            gin_written = &written[l->in];
            ensure(m, gin, b, in->h, in->w, in->c);
        }
        nn_accum mode = *gin_written ? NN_ACCUMULATE : NN_OVERWRITE;
        /* the gradients, in the model's type */
        float *gw = nn_at(m->g, m->dt, l->pw >= 0 ? m->params[l->pw].offset : 0);
        float *gb = l->pb >= 0 ? nn_at(m->g, m->dt, m->params[l->pb].offset) : NULL;
        const float *w = weights(m, l->pw);
        switch (l->op) {
        case MDL_CONV:
            be->conv2d_bwd_filter(gw, gb, gy, in, &l->cd, NN_OVERWRITE);
            if (gin) be->conv2d_bwd_data(gin, gy, w, &l->cd, mode);
            break;
        case MDL_DEPTHWISE:
            be->depthwise_bwd_filter(gw, NULL, gy, in, &l->cd, NN_OVERWRITE);
            if (gin) be->depthwise_bwd_data(gin, gy, w, &l->cd, mode);
            break;
        case MDL_DENSE:
            be->dense_bwd_filter(gw, gb, gy, in, NN_OVERWRITE);
            if (gin) be->dense_bwd_data(gin, gy, w, mode);
            break;
        case MDL_SHUFFLE:
            if (!gin) break;
            if (l->in >= 0 && fused_shuffle(n, l->in)) { /* the conv's only user: overwrite */
                const mdl_layer *c = &n->layers[l->in];
                VS_CHECK(mode == NN_OVERWRITE);
                be->shuffle_act_bwd(gin, gy, &n->act[i], 2, c->act, c->alpha);
            } else if (mode == NN_OVERWRITE) {
                be->space_to_depth(gin, gy, 2);
            } else {
                ensure(m, &tmp, b, in->h, in->w, in->c);
                be->space_to_depth(&tmp, gy, 2);
                be->add(gin, gin, &tmp);
            }
            break;
        case MDL_ADD:
            if (gin) grad_into(be, gin, gin_written, gy);
            ensure(m, &n->grad[l->in2], b, l->h, l->w, l->c);
            grad_into(be, &n->grad[l->in2], &written[l->in2], gy);
            break;
        }
        if (gin) *gin_written = 1;
    }
    if (tmp.d) be->free(tmp.d);
}

/* x (fp32) in the model's type: x itself, or its copy */
static const nn_tensor *model_input(model *m, const nn_tensor *x)
{
    VS_CHECK(x->dt == NN_F32);
    if (m->dt == NN_F32) return x;
    ensure(m, &m->x_conv, x->n, x->h, x->w, x->c);
    m->be->convert(&m->x_conv, x);
    return &m->x_conv;
}

/* Output `which` (0 face, 1 mask) of decoder `side` after a forward pass, in fp32: the layer's
 * activation, or a bf16 model's fp32 copy of it (made here). NULL for a mask not learned. */
static const nn_tensor *output_f32(model *m, int side, int which)
{
    const mdl_net *d = &m->dec[side];
    int l = which ? d->mask_out : d->face_out;
    if (l < 0) return NULL;
    const nn_tensor *y = &d->act[l];
    if (m->dt == NN_F32) return y;
    nn_tensor *o = &m->out[side][which];
    ensure_dt(m->be, o, NN_F32, y->n, y->h, y->w, y->c);
    m->be->convert(o, y);
    return o;
}

void model_forward(model *m, const nn_tensor *x)
{
    VS_CHECK(x->n % 2 == 0);
    const int n = x->n / 2;
    net_forward(m, &m->enc, model_input(m, x));
    const nn_tensor *code = &m->enc.act[m->enc.n_layers - 1];
    for (int s = 0; s < 2; s++) {
        nn_tensor half = batch_view(code, s * n, n);
        net_forward(m, &m->dec[s], &half);
        output_f32(m, s, 0);
        output_f32(m, s, 1);
    }
}

const nn_tensor *model_output(const model *m, int side, int which)
{
    const mdl_net *d = &m->dec[side];
    int l = which ? d->mask_out : d->face_out;
    if (l < 0) return NULL;
    return m->dt == NN_F32 ? &d->act[l] : &m->out[side][which];
}

nn_tensor *model_output_grad(model *m, int side, int which)
{
    mdl_net *d = &m->dec[side];
    int l = which ? d->mask_out : d->face_out;
    if (l < 0) return NULL;
    const nn_tensor *y = &d->act[l];
    if (m->dt == NN_F32) {
        ensure(m, &d->grad[l], y->n, y->h, y->w, y->c);
        return &d->grad[l];
    }
    nn_tensor *g = &m->out_grad[side][which];
    ensure_dt(m->be, g, NN_F32, y->n, y->h, y->w, y->c);
    return g;
}

void model_backward(model *m)
{
    mdl_net *enc = &m->enc;
    const int last = enc->n_layers - 1;
    const nn_tensor *code = &enc->act[last];
    ensure(m, &enc->grad[last], code->n, code->h, code->w, code->c);
    if (m->dt != NN_F32) /* the loss gradients into the model's type */
        for (int s = 0; s < 2; s++)
            for (int k = 0; k < 2; k++) {
                mdl_net *d = &m->dec[s];
                int l = k ? d->mask_out : d->face_out;
                if (l < 0) continue;
                const nn_tensor *y = &d->act[l];
                ensure(m, &d->grad[l], y->n, y->h, y->w, y->c);
                m->be->convert(&d->grad[l], &m->out_grad[s][k]);
            }
    const int n = code->n / 2;
    for (int s = 0; s < 2; s++) {
        mdl_net *d = &m->dec[s];
        int written[MDL_MAX_LAYERS] = {0};
        written[d->face_out] = 1;
        if (d->mask_out >= 0) written[d->mask_out] = 1;
        nn_tensor ghalf = batch_view(&enc->grad[last], s * n, n);
        net_backward(m, d, written, &ghalf);
    }
    int written[MDL_MAX_LAYERS] = {0};
    written[last] = 1;
    net_backward(m, enc, written, NULL);
}

const nn_tensor *model_infer_dev(model *m, const nn_tensor **mask, const nn_tensor *x, int side)
{
    VS_CHECK(side == 0 || side == 1);
    net_forward(m, &m->enc, model_input(m, x));
    mdl_net *d = &m->dec[side];
    net_forward(m, d, &m->enc.act[m->enc.n_layers - 1]);
    if (mask) *mask = output_f32(m, side, 1);
    return output_f32(m, side, 0);
}

void model_infer(model *m, nn_tensor *y, nn_tensor *mask, const nn_tensor *x, int side)
{
    const nn_tensor *mk = NULL;
    const nn_tensor *face = model_infer_dev(m, mask ? &mk : NULL, x, side);
    VS_CHECK(y->n == face->n && y->h == face->h && y->w == face->w && y->c == face->c);
    m->be->copy_out(y->d, face->d, nn_numel(face));
    if (mk) {
        VS_CHECK(nn_numel(mask) == nn_numel(mk));
        m->be->copy_out(mask->d, mk->d, nn_numel(mk));
    }
}
