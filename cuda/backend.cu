/* backend.cu: the CUDA backend's context (device, stream, cuDNN and cuBLAS handles, scratch),
 * device queries for `visage gpus`, memory (with the use and peak the status line shows), and
 * the table of operations that core/ calls through nn_backend. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

cu_context cu_ctx = {.device = -1};

static char cu_fail_msg[1024];

void cu_fail(const char *lib, const char *what, const char *stmt, const char *func,
             const char *file, int line)
{
    snprintf(cu_fail_msg, sizeof cu_fail_msg, "%s (%s error: %s, device %d%s%s)", stmt, lib, what,
             cu_ctx.device, cu_ctx.device >= 0 ? " " : "",
             cu_ctx.device >= 0 ? cu_ctx.prop.name : "");
    vs_bug(cu_fail_msg, func, file, line);
}

/* ---- memory: every allocation's size, for the use and the peak ---------------------------- */

#define MEM_SLOTS 4096 /* open addressing; the trainer holds a few hundred buffers */

static struct {
    pthread_mutex_t lock;
    void *ptr[MEM_SLOTS];
    size_t size[MEM_SLOTS];
    size_t used, peak;
} mem = {.lock = PTHREAD_MUTEX_INITIALIZER};

static size_t mem_slot(const void *p)
{
    return (size_t)(((uintptr_t)p >> 8) * 0x9e3779b97f4a7c15ull >> 52) % MEM_SLOTS;
}

static void mem_note(void *p, size_t bytes)
{
    pthread_mutex_lock(&mem.lock);
    size_t i = mem_slot(p);
    for (size_t k = 0; k < MEM_SLOTS && mem.ptr[i]; k++) i = (i + 1) % MEM_SLOTS;
    VS_CHECK(!mem.ptr[i]); /* more live buffers than MEM_SLOTS */
    mem.ptr[i] = p, mem.size[i] = bytes;
    mem.used += bytes;
    if (mem.used > mem.peak) mem.peak = mem.used;
    pthread_mutex_unlock(&mem.lock);
}

static void mem_forget(void *p)
{
    pthread_mutex_lock(&mem.lock);
    size_t i = mem_slot(p), k = 0;
    for (; k < MEM_SLOTS && mem.ptr[i] != p; k++) i = (i + 1) % MEM_SLOTS;
    VS_CHECK(k < MEM_SLOTS); /* freeing what this backend did not allocate */
    mem.used -= mem.size[i];
    mem.ptr[i] = NULL;
    /* re-insert the rest of the probe run so lookups still find them */
    for (size_t j = (i + 1) % MEM_SLOTS; mem.ptr[j]; j = (j + 1) % MEM_SLOTS) {
        void *q = mem.ptr[j];
        size_t s = mem.size[j];
        mem.ptr[j] = NULL;
        size_t t = mem_slot(q);
        while (mem.ptr[t]) t = (t + 1) % MEM_SLOTS;
        mem.ptr[t] = q, mem.size[t] = s;
    }
    pthread_mutex_unlock(&mem.lock);
}

size_t nn_cuda_mem_used(void)
{
    return mem.used;
}

size_t nn_cuda_mem_peak(void)
{
    return mem.peak;
}

void nn_cuda_mem_reset_peak(void)
{
    pthread_mutex_lock(&mem.lock);
    mem.peak = mem.used;
    pthread_mutex_unlock(&mem.lock);
}

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 256));
    mem_note(p, bytes ? bytes : 256);
    return p;
}

static void dev_free(void *p)
{
    if (!p) return;
    mem_forget(p);
    CUDA_CHECK(cudaFree(p));
}

static float *cu_alloc(size_t n_floats)
{
    return (float *)dev_alloc(n_floats * sizeof(float));
}

static void cu_free(float *p)
{
    dev_free(p);
}

/* Recorded graphs hold scratch addresses, so while one exists a scratch buffer that grows is
 * kept (retired) rather than freed; the retired ones go when the last graph does. */
#define MAX_RETIRED 64
static void *retired[MAX_RETIRED];
static int n_retired, graphs_alive;

static void retire(void *p)
{
    if (!p) return;
    if (graphs_alive == 0) {
        dev_free(p);
        return;
    }
    VS_CHECK(n_retired < MAX_RETIRED);
    retired[n_retired++] = p;
}

void *cu_scratch(cu_scratch_slot slot, size_t bytes)
{
    if (bytes <= cu_ctx.scratch_size[slot]) return cu_ctx.scratch[slot];
    cudaStreamCaptureStatus cap;
    CUDA_CHECK(cudaStreamIsCapturing(cu_ctx.stream, &cap));
    VS_CHECK(cap == cudaStreamCaptureStatusNone); /* sized by an uncaptured run first */
    CUDA_CHECK(cudaStreamSynchronize(cu_ctx.stream));
    retire(cu_ctx.scratch[slot]);
    size_t want = bytes + bytes / 4 + 4096;
    cu_ctx.scratch[slot] = dev_alloc(want);
    cu_ctx.scratch_size[slot] = want;
    return cu_ctx.scratch[slot];
}

/* Host to device: from pageable memory the call returns once the source has been staged, so the
 * caller may reuse it at once. */
static void cu_copy_in(float *dst, const float *src, size_t n)
{
    if (n)
        CUDA_CHECK(
            cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, cu_ctx.stream));
}

static void cu_copy_out(float *dst, const float *src, size_t n)
{
    if (n)
        CUDA_CHECK(
            cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, cu_ctx.stream));
    CUDA_CHECK(cudaStreamSynchronize(cu_ctx.stream));
}

static void cu_sync(void)
{
    CUDA_CHECK(cudaStreamSynchronize(cu_ctx.stream));
}

/* ---- step graphs ---------------------------------------------------------------------------- */

static void cu_capture_begin(void)
{
    /* relaxed: other threads may use the CUDA API meanwhile (it is our stream that records) */
    CUDA_CHECK(cudaStreamBeginCapture(cu_ctx.stream, cudaStreamCaptureModeRelaxed));
}

static void *cu_capture_end(void)
{
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CUDA_CHECK(cudaStreamEndCapture(cu_ctx.stream, &g));
    CUDA_CHECK(cudaGraphInstantiate(&ge, g, 0));
    CUDA_CHECK(cudaGraphDestroy(g));
    CUDA_CHECK(cudaGraphUpload(ge, cu_ctx.stream));
    graphs_alive++;
    return (void *)ge;
}

static void cu_graph_run(void *graph)
{
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)graph, cu_ctx.stream));
}

static void cu_graph_free(void *graph)
{
    if (!graph) return;
    CUDA_CHECK(cudaStreamSynchronize(cu_ctx.stream));
    CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)graph));
    if (--graphs_alive > 0) return;
    while (n_retired > 0) dev_free(retired[--n_retired]);
}

/* train_dtype follows the precision (set_precision) */
static nn_backend cu_backend = {
    .name = "cuda",
    .conv_layout = NN_LAYOUT_OHWI,
    .train_dtype = NN_F32,
    .alloc = cu_alloc,
    .free = cu_free,
    .copy_in = cu_copy_in,
    .copy_out = cu_copy_out,
    .sync = cu_sync,
    .conv2d = cu_conv2d,
    .depthwise = cu_depthwise,
    .pool = cu_pool,
    .dense = cu_dense,
    .act = cu_act_fw,
    .add = cu_add,
    .convert = cu_convert,
    .scale_bias = cu_scale_bias,
    .add_padded = cu_add_padded,
    .crop_resize = cu_crop_resize,
    .warp = cu_warp,
    .from_u8 = cu_from_u8,
    .blend = cu_blend,
    .host_alloc = cu_host_alloc,
    .host_free = cu_host_free,
    .conv2d_bwd_data = cu_conv2d_bwd_data,
    .conv2d_bwd_filter = cu_conv2d_bwd_filter,
    .depthwise_bwd_data = cu_depthwise_bwd_data,
    .depthwise_bwd_filter = cu_depthwise_bwd_filter,
    .dense_bwd_data = cu_dense_bwd_data,
    .dense_bwd_filter = cu_dense_bwd_filter,
    .act_bwd = cu_act_bwd,
    .depth_to_space = cu_depth_to_space,
    .space_to_depth = cu_space_to_depth,
    .shuffle_act_bwd = cu_shuffle_act_bwd,
    .loss = cu_loss,
    .adam = cu_adam,
    .all_finite = cu_all_finite,
    .fill = cu_fill,
    .augment = cu_augment,
    .flag_nonfinite = cu_flag_nonfinite,
    .adam_ctl = cu_adam_ctl,
    .capture_begin = cu_capture_begin,
    .capture_end = cu_capture_end,
    .graph_run = cu_graph_run,
    .graph_free = cu_graph_free,
};

/* ---- utilisation, through NVML (the driver's library, opened when first asked) -------------- */

typedef struct nvml_util {
    unsigned int gpu, memory;
} nvml_util;

static struct {
    pthread_once_t once;
    void *dev; /* nvmlDevice_t of the open device, NULL when NVML is not there */
    int (*get_util)(void *dev, nvml_util *u);
} nvml = {.once = PTHREAD_ONCE_INIT};

static void nvml_open(void)
{
    void *lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    int (*init)(void) = (int (*)(void))dlsym(lib, "nvmlInit_v2");
    int (*by_bus)(const char *, void **) =
        (int (*)(const char *, void **))dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2");
    nvml.get_util = (int (*)(void *, nvml_util *))dlsym(lib, "nvmlDeviceGetUtilizationRates");
    char bus[32];
    if (!init || !by_bus || !nvml.get_util || init() != 0 ||
        cudaDeviceGetPCIBusId(bus, sizeof bus, cu_ctx.device) != cudaSuccess ||
        by_bus(bus, &nvml.dev) != 0)
        nvml.dev = NULL;
}

int nn_cuda_utilization(void)
{
    if (cu_ctx.device < 0) return -1;
    pthread_once(&nvml.once, nvml_open);
    nvml_util u;
    if (!nvml.dev || nvml.get_util(nvml.dev, &u) != 0) return -1;
    return (int)u.gpu;
}

/* ---- devices ------------------------------------------------------------------------------- */

int nn_cuda_device_count(const char **why)
{
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) {
        (void)cudaGetLastError(); /* clear it: no driver is not an error of later calls */
        static char msg[160];
        int rt = 0;
        cudaRuntimeGetVersion(&rt);
        if (rc == cudaErrorInsufficientDriver)
            snprintf(msg, sizeof msg, "no NVIDIA driver, or one older than this build's CUDA %d.%d",
                     rt / 1000, rt % 1000 / 10);
        else
            snprintf(msg, sizeof msg, "%s",
                     rc == cudaErrorNoDevice ? "no CUDA device" : cudaGetErrorString(rc));
        if (why) *why = msg;
        return 0;
    }
    if (n == 0 && why) *why = "no CUDA device";
    return n;
}

int nn_cuda_device_info(nn_gpu_info *out, int dev)
{
    memset(out, 0, sizeof *out);
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->major = p.major, out->minor = p.minor;
    out->sms = p.multiProcessorCount;
    out->mem_total = p.totalGlobalMem;
    cudaDriverGetVersion(&out->driver);
    cudaRuntimeGetVersion(&out->runtime);
    int cur = -1;
    cudaGetDevice(&cur);
    if (cur == dev || cu_ctx.device < 0) {
        size_t fr = 0, tot = 0;
        if (cudaSetDevice(dev) == cudaSuccess && cudaMemGetInfo(&fr, &tot) == cudaSuccess)
            out->mem_free = fr;
        if (cu_ctx.device >= 0) cudaSetDevice(cu_ctx.device);
    }
    (void)cudaGetLastError();
    return 0;
}

int nn_cuda_device(void)
{
    return cu_ctx.device;
}

nn_precision nn_cuda_precision(void)
{
    return cu_ctx.prec;
}

static void set_precision(nn_precision prec)
{
    const int major = cu_ctx.prop.major;
    if (prec == NN_PREC_AUTO)
        prec = major >= 8 ? NN_PREC_BF16 : major == 7 ? NN_PREC_FP16 : NN_PREC_FP32;
    if ((prec == NN_PREC_TF32 || prec == NN_PREC_BF16) && major < 8) prec = NN_PREC_FP32;
    if (prec == NN_PREC_FP16 && major < 7) prec = NN_PREC_FP32;
    cu_ctx.prec = prec;
    /* pedantic: no tensor-core rounding, so fp32 results compare with the CPU's tightly; 16-bit
     * products go to the tensor cores with fp32 sums */
    const int half = prec == NN_PREC_BF16 || prec == NN_PREC_FP16;
    CUBLAS_CHECK(cublasSetMathMode(cu_ctx.cublas, prec == NN_PREC_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                  : half               ? CUBLAS_DEFAULT_MATH
                                                                       : CUBLAS_PEDANTIC_MATH));
    cu_conv_set_precision(prec);
    cu_backend.train_dtype = prec == NN_PREC_BF16 ? NN_BF16 : prec == NN_PREC_FP16 ? NN_F16 : NN_F32;
}

/* the table handed out while profiling (profile.cu) */
static nn_backend cu_backend_prof;

static const nn_backend *table(void)
{
    if (!cu_profiling()) return &cu_backend;
    cu_backend_prof = cu_backend;
    cu_profile_table(&cu_backend_prof);
    return &cu_backend_prof;
}

const nn_backend *nn_cuda_backend(int dev, nn_precision prec, struct vs_err *e)
{
    if (cu_ctx.device >= 0) {
        if (dev != cu_ctx.device) {
            vs_fail(e, "the CUDA backend is already open on device %d (one device per process)",
                    cu_ctx.device);
            return NULL;
        }
        set_precision(prec);
        return table();
    }
    const char *why = "";
    int n = nn_cuda_device_count(&why);
    if (n == 0) {
        vs_fail(e, "no GPU: %s", why);
        return NULL;
    }
    if (dev < 0 || dev >= n) {
        vs_fail(e,
                "no CUDA device %d (this machine has %d: cuda:0 to cuda:%d; `visage gpus` "
                "lists them)",
                dev, n, n - 1);
        return NULL;
    }
    CUDA_CHECK(cudaSetDevice(dev));
    CUDA_CHECK(cudaGetDeviceProperties(&cu_ctx.prop, dev));
    cu_ctx.device = dev;
    CUDA_CHECK(cudaStreamCreateWithFlags(&cu_ctx.stream, cudaStreamNonBlocking));
    CUDNN_CHECK(cudnnCreate(&cu_ctx.cudnn));
    CUDNN_CHECK(cudnnSetStream(cu_ctx.cudnn, cu_ctx.stream));
    CUBLAS_CHECK(cublasCreate(&cu_ctx.cublas));
    CUBLAS_CHECK(cublasSetStream(cu_ctx.cublas, cu_ctx.stream));
    /* cuBLAS's own workspace, fixed, so captured GEMMs never allocate */
    size_t cublas_ws = 32u << 20;
    CUBLAS_CHECK(cublasSetWorkspace(cu_ctx.cublas, dev_alloc(cublas_ws), cublas_ws));
    set_precision(prec);
    return table();
}
