/* none.c: the CUDA backend's entry points in a build without CUDA (no nvcc, cuDNN or cuBLAS
 * found, CUDA=0, or the sanitiser build): there are no devices, and the CPU backend does all. */
#include <string.h>

#include "../core/err.h"
#include "../core/nn/backend.h"

int nn_cuda_device_count(const char **why)
{
    if (why) *why = "this visage was built without CUDA (nvcc, cuDNN and cuBLAS were not found)";
    return 0;
}

int nn_cuda_device_info(nn_gpu_info *out, int dev)
{
    memset(out, 0, sizeof *out);
    return -1;
}

const nn_backend *nn_cuda_backend(int dev, nn_precision prec, struct vs_err *e)
{
    vs_fail(e, "no GPU: this visage was built without CUDA (nvcc, cuDNN and cuBLAS were not "
               "found)");
    return NULL;
}

int nn_cuda_device(void)
{
    return -1;
}

nn_precision nn_cuda_precision(void)
{
    return NN_PREC_FP32;
}

void nn_cuda_deterministic(int on)
{
}

void nn_cuda_profile(int on)
{
}

void nn_cuda_profile_report(FILE *f, int steps)
{
}

int nn_cuda_utilization(void)
{
    return -1;
}

size_t nn_cuda_mem_used(void)
{
    return 0;
}

size_t nn_cuda_mem_peak(void)
{
    return 0;
}

void nn_cuda_mem_reset_peak(void)
{
}
