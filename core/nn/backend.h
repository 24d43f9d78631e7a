/* backend.h: the backend interface. All tensor arithmetic goes through one of these structs of
 * function pointers; the CPU backend (core/nn/cpu_*.c) is the reference, the CUDA backend
 * (cuda/) implements the same calls. Weights are laid out as TensorFlow stores them (conv2d
 * kernels in the backend's conv_layout, below):
 *   conv2d     w: [kh, kw, cin, cout]   b: [cout]
 *   depthwise  w: [kh, kw, c]           b: [c]      (channel multiplier 1)
 *   dense      w: [in, out]             b: [out]
 * Outputs first, then inputs, then sizes/descriptors. y must already have the output shape.
 *
 * Element types: activations and their gradients (the tensors of conv2d, depthwise, pool, dense,
 * act, add, the shuffles and their backward passes) are fp32, or bf16 on a backend whose
 * train_dtype is NN_BF16 or NN_F16, all the tensors of one call alike; the weights a call reads
 * (w) are then in that type too (the model's 16-bit copy of its parameters), and so are the weight
 * and bias gradients the backward passes write (a 16-bit model's gradient arena is 16-bit, as
 * PyTorch's autocast rounds them). Everything else is fp32 whatever the backend: biases, the loss
 * and its inputs, augmentation, Adam's weights and moments. convert moves between types. */
#ifndef NN_BACKEND_H
#define NN_BACKEND_H

#include <stdint.h>
#include <stdio.h>

#include "tensor.h"

typedef enum nn_act {
    NN_ACT_NONE,
    NN_ACT_RELU,
    NN_ACT_RELU6,
    NN_ACT_LEAKY,   /* x > 0 ? x : alpha * x */
    NN_ACT_SIGMOID, /* 1 / (1 + exp(-x)) */
} nn_act;

/* Whether an operation adds into its output or replaces it. */
typedef enum nn_accum { NN_OVERWRITE, NN_ACCUMULATE } nn_accum;

typedef enum nn_loss_kind { NN_LOSS_MAE, NN_LOSS_MSE, NN_LOSS_SSIM } nn_loss_kind;

/* Adam as Keras implements it (the "epsilon hat" form Faceswap trains with):
 * lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t); m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr_t * m / (sqrt(v) + eps). t counts from 1. */
typedef struct nn_adam {
    float lr, beta1, beta2, eps;
    long t;
} nn_adam;

/* lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), computed in double (t >= 1). */
float nn_adam_step_size(const nn_adam *h);

typedef enum nn_pad_mode {
    NN_PAD_VALID,
    NN_PAD_SAME, /* TensorFlow "same": extra padding goes bottom/right */
} nn_pad_mode;

typedef struct nn_conv_desc {
    int kh, kw;
    int sh, sw;
    int pad_t, pad_l, pad_b, pad_r;
    nn_act act;  /* fused after the bias */
    float alpha; /* slope for NN_ACT_LEAKY */
    /* conv2d forward only: r > 1 writes y as depth_to_space(act(conv + b), r), so y is
     * [n, oh*r, ow*r, cout/(r*r)] (Faceswap's upscale block in one pass); 0 or 1: none */
    int shuffle;
} nn_conv_desc;

typedef enum nn_pool_kind { NN_POOL_MAX, NN_POOL_AVG } nn_pool_kind;

typedef struct nn_pool_desc {
    nn_pool_kind kind;
    int kh, kw;
    int sh, sw;
    int pad_t, pad_l, pad_b, pad_r; /* padded cells are ignored (TF: not counted in the average) */
} nn_pool_desc;

/* How a backend keeps conv2d kernels in its memory. Weight files and checkpoints hold HWIO
 * (TensorFlow's [kh, kw, cin, cout]); cuDNN wants OHWI ([cout, kh, kw, cin]), the same matrix
 * [kh*kw*cin, cout] transposed. Whoever copies kernels in or out converts (model.c,
 * facenet_input.c). Depthwise and dense weights are the same everywhere. */
typedef enum nn_weight_layout { NN_LAYOUT_HWIO, NN_LAYOUT_OHWI } nn_weight_layout;

/* dst = src (k = kh * kw * cin rows of cout) from layout `from` to layout `to`; host memory. */
void nn_conv_weights_convert(float *dst, const float *src, size_t k, int cout,
                             nn_weight_layout from, nn_weight_layout to);

/* ---- augmentation: the per-pixel half of core/augment.c (which draws the numbers) ---- */
#define NN_AUG_GRID 5
#define NN_AUG_MASKS 3 /* channels of the source masks: face, eye, mouth */

/* One image of a batch: its source face and its transform. Output position u (normalised,
 * [0, 1] edge to edge) maps to crop pixel (h0 ux + h1 uy + h2, h3 ux + h4 uy + h5) (pixel centres
 * at integers, borders replicated); the input's u first moves by the warp, bilinear in a 5x5 grid
 * of offsets spanning the image; colour is Faceswap's LAB jitter (lab[] in [-1, 1], 0 none). */
typedef struct nn_aug_image {
    double h[6];
    float lab[3];
    float warp[2][NN_AUG_GRID][NN_AUG_GRID]; /* x, y offsets, [row y][column x] */
    int face;
    int colour, warped; /* whether lab and warp are not all zero */
    int pad_;
} nn_aug_image;

/* A batch: images img[0 .. n) (backend memory, a whole number of floats: rewritten before each
 * step, so a recorded step reads the new ones) from the uint8 crops px [faces, P, P, 3] and masks
 * [faces, P, P, NN_AUG_MASKS] (backend memory) into input [n, si, si, 3] (warped), target
 * [n, st, st, 3] and mask[k] [n, st, st] (not warped), each in [0, 1] and each may be NULL. */
typedef struct nn_aug_batch {
    float *input, *target, *mask[NN_AUG_MASKS];
    const uint8_t *px, *masks;
    const nn_aug_image *img;
    int n, P, si, st;
} nn_aug_batch;

/* ---- image kernels: extraction and conversion keep their frames in backend memory -------------
 * An 8-bit image there is [h, w, 3] RGB bytes, rows packed, in nn_byte_words(h * w * 3) floats of
 * backend memory (nn_copy_in_bytes / nn_copy_out_bytes move it). */

/* A network input cut from an image as face-api builds it: the crop (x, y, w, h), inside the
 * image, padded to a square with zeros (centre 0: all the padding after the crop, bottom/right,
 * as the detector does; 1: centred, the odd pixel after), resized with TensorFlow's bilinear rule
 * (output pixel i reads the square at i * side / size: no half-pixel shift, the last row and
 * column clamped; positions and interpolation in double, which matches face-api's fp32 results
 * within its tests' bar), then each value v becomes (v - mean[c]) / div - sub in fp32. */
typedef struct nn_crop {
    const uint8_t *px; /* the image [ih, iw, 3], backend memory */
    int iw, ih;
    int x, y, w, h;
    int centre;
    float mean[3], div, sub;
} nn_crop;

/* An affine crop of an image: output pixel (x, y) is the bilinear sample of the image at
 * (m0 x + m1 y + m2, m3 x + m4 y + m5) (pixel centres at integer coordinates; the image's edge
 * replicated outwards), rounded to 8 bits: img_warp_affine with IMG_BORDER_REPLICATE. */
typedef struct nn_warp {
    const uint8_t *px; /* the image [ih, iw, 3], backend memory */
    int iw, ih;
    double m[6];
} nn_warp;

/* A face blended back into an 8-bit image (conversion's last step): every image pixel (x, y) of
 * the rectangle [x0, x1] x [y0, y1] (the crop's footprint, inside the image) at crop position
 * (u, v) = (m0 x + m1 y + m2, m3 x + m4 y + m5) takes the mask's bilinear value a there (zero
 * outside the crop); where a > 0 (capped at 1) it becomes image * (1 - a) + face * a, rounded,
 * the face sampled bicubically (Keys, a = -0.5, edges replicated) where step (crop pixels per
 * image pixel) <= 1, else as the mean of k x k bilinear samples over the pixel's footprint
 * (k = ceil(step), at most 8), each clamped to [0, 1]. Other pixels are not written. */
typedef struct nn_blend {
    uint8_t *px; /* the image [ih, iw, 3], backend memory */
    int iw, ih;
    const float *face; /* [size, size, 3] in [0, 1], backend memory */
    const float *mask; /* [size, size] */
    int size;
    double m[6];
    double step;
    int x0, y0, x1, y1;
} nn_blend;

typedef struct nn_backend {
    const char *name;
    nn_weight_layout conv_layout; /* of conv2d kernels (w and dw) in this backend's memory */
    nn_dtype train_dtype;         /* of a model's activations and their gradients when it trains */
    int host_memory;              /* 1: its memory is the host's (the CPU backend): no copies */

    float *(*alloc)(size_t n_floats);
    void (*free)(float *p);
    void (*copy_in)(float *dst_dev, const float *src_host, size_t n_floats);
    void (*copy_out)(float *dst_host, const float *src_dev, size_t n_floats);
    void (*sync)(void);

    /* y: [n, oh, ow, cout]   x: [n, h, w, cin] */
    void (*conv2d)(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                   const nn_conv_desc *d);
    /* y: [n, oh, ow, c]      x: [n, h, w, c] */
    void (*depthwise)(nn_tensor *y, const nn_tensor *x, const float *w, const float *b,
                      const nn_conv_desc *d);
    void (*pool)(nn_tensor *y, const nn_tensor *x, const nn_pool_desc *d);
    /* y: [n, out]   x: [n, in], each of any shape with n samples (flattened per sample) */
    void (*dense)(nn_tensor *y, const nn_tensor *x, const float *w, const float *b, nn_act act,
                  float alpha);
    /* in place */
    void (*act)(nn_tensor *x, nn_act act, float alpha);
    /* y = a + b, all of one size (y may alias a or b) */
    void (*add)(nn_tensor *y, const nn_tensor *a, const nn_tensor *b);
    /* dst = src, element by element (any shapes of one size): widened or rounded to nearest
     * even when the types differ, copied when they agree */
    void (*convert)(nn_tensor *dst, const nn_tensor *src);
    /* x[.., ch] = x[.., ch] * scale[ch] + bias[ch], in place; scale may be NULL (bias only) */
    void (*scale_bias)(nn_tensor *x, const float *scale, const float *bias);

    /* y = act(a' + b') (y: [n, h, w, c]), a' and b' being a and b ([n, ...] each no larger than
     * y along h, w and c) padded with zeros at the end of each of those axes to y's shape: the
     * join of face-api's residualDown block (zero channels added to the pooled input, a zero row
     * and column to the convolved one). fp32. */
    void (*add_padded)(nn_tensor *y, const nn_tensor *a, const nn_tensor *b, nn_act act,
                       float alpha);

    /* ---- image kernels (core/nn/cpu_image.c, cuda/image.cu) --------------------------------
     * y: [n, size, size, 3] fp32 <- crops[0 .. n) (host array): the face networks' inputs */
    void (*crop_resize)(nn_tensor *y, const nn_crop *crops);
    /* dst: n images [size, size, 3] bytes one after another (backend memory) <- w[0 .. n) (host
     * array): the aligned faces extraction saves and conversion swaps */
    void (*warp)(uint8_t *dst, const nn_warp *w, int n, int size);
    /* y = x / div (fp32; y's elements from as many bytes x, backend memory): 8-bit pixels to
     * the [0, 1] the models take */
    void (*from_u8)(nn_tensor *y, const uint8_t *x, float div);
    /* b[0 .. n) (host array) one after the other, each seeing the ones before it */
    void (*blend)(const nn_blend *b, int n);
    /* Page-locked host memory, which the GPU copies to and from at full speed (and malloc on
     * the CPU). NULL when out of memory. A copy_in from it may still be reading it when the call
     * returns: rewrite it only after sync or a copy_out. crop_resize and warp copy their host
     * arrays and may grow scratch memory, so neither may be recorded in a graph. */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);

    /* ---- training (core/nn/cpu_train.c, cpu_loss.c on the CPU) ----------------------------
     * Backward passes take the gradient with respect to the layer's pre-activation output
     * (act_bwd turns the gradient of the activation's output into that). Weight gradients have
     * the weights' layout; `mode` says whether they are added to or replace what is there. */

    /* dx: [n, h, w, cin] <- dy: [n, oh, ow, cout] through w: [kh, kw, cin, cout] */
    void (*conv2d_bwd_data)(nn_tensor *dx, const nn_tensor *dy, const float *w,
                            const nn_conv_desc *d, nn_accum mode);
    /* dw: [kh, kw, cin, cout], db: [cout] (may be NULL) <- dy, x: the layer's input */
    void (*conv2d_bwd_filter)(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                              const nn_conv_desc *d, nn_accum mode);
    /* depthwise (channel multiplier 1): dx: [n, h, w, c]; dw: [kh, kw, c], db: [c] */
    void (*depthwise_bwd_data)(nn_tensor *dx, const nn_tensor *dy, const float *w,
                               const nn_conv_desc *d, nn_accum mode);
    void (*depthwise_bwd_filter)(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                                 const nn_conv_desc *d, nn_accum mode);
    /* dense: dx: [n, in] <- dy: [n, out] w: [in, out];  dw: [in, out], db: [out] (may be NULL) */
    void (*dense_bwd_data)(nn_tensor *dx, const nn_tensor *dy, const float *w, nn_accum mode);
    void (*dense_bwd_filter)(float *dw, float *db, const nn_tensor *dy, const nn_tensor *x,
                             nn_accum mode);
    /* dx = dy * act'(.), from the activation's output y (every act here is monotonic, so y is
     * enough); dx may alias dy. */
    void (*act_bwd)(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, nn_act act,
                    float alpha);
    /* Pixel shuffle in TensorFlow's depth_to_space order (what Faceswap's PixelShuffler does):
     * y[n, y*r+i, x*r+j, c] = x[n, y, x, (i*r + j)*C + c],  y: [n, h*r, w*r, C], x: [n, h, w,
     * r*r*C]. space_to_depth is its inverse (and so its backward pass). */
    void (*depth_to_space)(nn_tensor *y, const nn_tensor *x, int r);
    void (*space_to_depth)(nn_tensor *y, const nn_tensor *x, int r);
    /* The backward pass of a conv2d with shuffle r: dx: [n, h, w, r*r*C] (overwritten) =
     * space_to_depth(dy * act'(.), r) from dy and the layer's output y: [n, h*r, w*r, C]. */
    void (*shuffle_act_bwd)(nn_tensor *dx, const nn_tensor *dy, const nn_tensor *y, int r,
                            nn_act act, float alpha);
    /* One loss term. pred, target: [n, h, w, c]; mask: [n, h, w] or NULL. With a mask, pred and
     * target are both multiplied by it first (Faceswap's penalised mask loss). Adds weight * L to
     * *loss (a device scalar) and weight * dL/dpred to dpred ([n, h, w, c]), where L is the mean
     * over the batch of: MAE mean |p - t|; MSE mean (p - t)^2; SSIM 1 - mean SSIM map (11x11
     * Gaussian window, sigma 1.5, valid positions, per channel, k1 0.01, k2 0.03, range 1). */
    void (*loss)(float *dpred, float *loss, const nn_tensor *pred, const nn_tensor *target,
                 const float *mask, nn_loss_kind kind, float weight);
    /* One Adam step over n parameters (a whole arena at once). */
    void (*adam)(float *p, float *m, float *v, const float *g, size_t n, const nn_adam *h);
    /* 1 when every x[i] is finite (no NaN, no Inf). */
    int (*all_finite)(const float *x, size_t n);
    void (*fill)(float *x, size_t n, float value);
    /* the batch's images (a recorded step may include it) */
    void (*augment)(const nn_aug_batch *b);

    /* ---- one training step as one replayable graph ----------------------------------------
     * The step's loss, finiteness and optimiser take their per-step values from backend memory
     * (ctl), so the same recorded step serves every iteration:
     * ctl[0] = lr_t, Adam's step size lr sqrt(1 - b2^t) / (1 - b1^t), written before each step;
     * ctl[1] = 0, set to 1 by flag_nonfinite when a loss is NaN or Inf (adam_ctl then changes
     * nothing), and by adam_ctl itself when a gradient is: it checks them as it reads them, so
     * the step needs no pass of its own over the gradients, and the weights and moments are
     * then unspecified (the GPU has written some of them): the caller reloads them, as the
     * trainer's rollback to its last save does;
     * ctl[2] = what adam_ctl multiplies the gradients by first: 1, or 1 / the loss scale of an
     * fp16 step (whose gradients are flag_nonfinite'd before Adam, so that an overflow leaves
     * the weights as they were). */
    void (*flag_nonfinite)(float *flag, const nn_tensor *x);
    /* p, m, v: the numel(g) fp32 weights and moments; g: their gradients (fp32 or 16-bit);
     * pw (may be NULL; as many elements): also writes the new parameters there, rounded to its
     * type (the copy a 16-bit model's layers read) */
    void (*adam_ctl)(float *p, float *m, float *v, const nn_tensor *g, const nn_adam *h, float *ctl,
                     nn_tensor *pw);
    /* Between capture_begin and capture_end, calls are recorded rather than run (nothing may
     * allocate, find a new algorithm or copy to the host in between: an uncaptured step first
     * sizes everything); graph_run replays the recording. NULL on the CPU, which runs each call
     * at once. */
    void (*capture_begin)(void);
    void *(*capture_end)(void);
    void (*graph_run)(void *graph);
    void (*graph_free)(void *graph);
} nn_backend;

const nn_backend *nn_cpu_backend(void);

/* The floats of backend memory that `bytes` bytes take. */
static inline size_t nn_byte_words(size_t bytes)
{
    return (bytes + sizeof(float) - 1) / sizeof(float);
}
/* Backend memory kept from call to call and grown to the largest request (its contents are not
 * kept when it grows): the frames, crops and faces of extraction and conversion. */
typedef struct nn_buf {
    float *d;
    size_t words;
} nn_buf;
/* At least `words` floats of b. */
float *nn_buf_grow(nn_buf *b, const nn_backend *be, size_t words);
void nn_buf_free(nn_buf *b, const nn_backend *be);

/* Byte copies into and out of backend memory (dst_dev, src_dev: nn_byte_words(bytes) floats). */
void nn_copy_in_bytes(const nn_backend *be, void *dst_dev, const void *src_host, size_t bytes);
void nn_copy_out_bytes(const nn_backend *be, void *dst_host, const void *src_dev, size_t bytes);

/* ---- the CUDA backend (cuda/, the .cu files; a build without CUDA has cuda/none.c: no
 * devices) --------------------------------------------------------------------------------- */

/* Arithmetic of the GPU backend. FP32: IEEE fp32 everywhere (the tests' tight mode); TF32: fp32
 * tensors, convolutions and GEMMs on tensor cores with 10-bit mantissas (Ampere and newer);
 * BF16: mixed precision as PyTorch's autocast does it: activations, their gradients and a copy
 * of the weights in bfloat16, products summed in fp32 on tensor cores, the master weights, Adam,
 * the weight gradients and the loss in fp32 (Ampere and newer); FP16: the same in IEEE half
 * precision (Volta and Turing too), whose narrow range core/step.c makes up for with dynamic loss
 * scaling. */
typedef enum nn_precision {
    NN_PREC_AUTO,
    NN_PREC_FP32,
    NN_PREC_TF32,
    NN_PREC_BF16,
    NN_PREC_FP16,
} nn_precision;

typedef struct nn_gpu_info {
    char name[128];
    int major, minor;           /* compute capability */
    size_t mem_total, mem_free; /* bytes */
    int sms;                    /* streaming multiprocessors */
    int driver, runtime;        /* CUDA versions, 1000 * major + 10 * minor */
} nn_gpu_info;

/* The most device memory a convolution's workspace may take (faster algorithms that need more
 * are passed over), so that memory can be planned. */
#define NN_GPU_WORKSPACE_MAX ((size_t)256 << 20)

/* Usable CUDA devices; 0 without CUDA, a driver or a card, with the reason in *why (may be
 * NULL). */
int nn_cuda_device_count(const char **why);
/* 0, or -1 for a device that cannot be queried. */
int nn_cuda_device_info(nn_gpu_info *out, int dev);
/* The CUDA backend on device dev (one device per process) with the given arithmetic (AUTO: BF16
 * where the card has it (compute 8.0 and up), FP16 on 7.x, else FP32; a precision the card
 * lacks falls back to FP32). Called again it switches the precision. NULL with a message when
 * there is no such device or it cannot be initialised. */
struct vs_err;
const nn_backend *nn_cuda_backend(int dev, nn_precision prec, struct vs_err *e);
/* The device the backend is open on, -1 before nn_cuda_backend. */
int nn_cuda_device(void);
/* The precision in use (after AUTO is resolved), and its name ("fp32", "tf32", "bf16", "fp16"). */
nn_precision nn_cuda_precision(void);
const char *nn_precision_name(nn_precision p);
/* "auto" | "fp32" | "tf32" | "bf16" | "fp16" -> *p; -1 for anything else. */
int nn_parse_precision(nn_precision *p, const char *s);
/* The backend for a device name: "auto" (or NULL/""; the first GPU when there is one, else the
 * CPU), "cpu", "cuda" (device 0) or "cuda:N". -1 with a message for an unknown name or a GPU that
 * is not there. */
int nn_backend_open(const nn_backend **out, const char *device, nn_precision prec,
                    struct vs_err *e);
/* Whether the convolutions use only algorithms that give the same bits every run (the default:
 * a recorded step then matches the same step run call by call, and a run repeats exactly); off,
 * cuDNN's fastest, some of which add in a varying order. */
void nn_cuda_deterministic(int on);
/* Profiling (benchmarks): while on, nn_cuda_backend hands out a table whose operations time
 * themselves; the report prints the time per operation per step (of `steps` steps run call by
 * call since the last report), largest first. */
void nn_cuda_profile(int on);
void nn_cuda_profile_report(FILE *f, int steps);
/* Device memory: in use now by this process's backend allocations, and the peak since the last
 * reset. */
size_t nn_cuda_mem_used(void);
/* Percent of the last sample period the open device was busy (NVML), -1 when unknown. */
int nn_cuda_utilization(void);
size_t nn_cuda_mem_peak(void);
void nn_cuda_mem_reset_peak(void);

/* Worker threads for the CPU backend (0 = one per online CPU). Also sets OpenBLAS's count. */
void nn_cpu_set_threads(int n);
int nn_cpu_threads(void);

/* Output size and padding of a convolution or pool along one axis. */
int nn_out_size(int in, int k, int stride, nn_pad_mode mode);
void nn_pad_for(int *pad_lo, int *pad_hi, int in, int k, int stride, nn_pad_mode mode);

/* Fills the geometry of d for a kh x kw kernel (act NONE). */
void nn_conv_geometry(nn_conv_desc *d, int h, int w, int kh, int kw, int sh, int sw,
                      nn_pad_mode mode);

/* Batch-norm folding: w' = w * gamma / sqrt(var + eps), b' = beta + (b - mean) * gamma / sqrt(..).
 * w: [.., cout] with cout innermost (conv2d [kh,kw,cin,cout], depthwise [kh,kw,c]); b may be NULL
 * (treated as zeros) and is written to b_out ([cout]). */
void nn_fold_batchnorm(float *w, float *b_out, const float *b, size_t w_count, int cout,
                       const float *gamma, const float *beta, const float *mean, const float *var,
                       float eps);

#endif
