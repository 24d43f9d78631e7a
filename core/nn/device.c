/* device.c: choosing the backend from a device name, as `--device` and [general] device give
 * it: auto (the first GPU if there is one, else the CPU), cpu, cuda (= cuda:0) or cuda:N. */
#include <stdlib.h>
#include <string.h>

#include "../err.h"
#include "backend.h"

int nn_parse_precision(nn_precision *p, const char *s)
{
    static const struct {
        const char *name;
        nn_precision p;
    } names[] = {{"auto", NN_PREC_AUTO}, {"fp32", NN_PREC_FP32}, {"tf32", NN_PREC_TF32},
                 {"bf16", NN_PREC_BF16}, {"fp16", NN_PREC_FP16}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *p = names[i].p;
            return 0;
        }
    return -1;
}

int nn_backend_open(const nn_backend **out, const char *device, nn_precision prec, vs_err *e)
{
    *out = NULL;
    if (!device || !*device || strcmp(device, "auto") == 0) {
        if (nn_cuda_device_count(NULL) > 0 && (*out = nn_cuda_backend(0, prec, e))) return 0;
        *out = nn_cpu_backend();
        return 0;
    }
    if (strcmp(device, "cpu") == 0) {
        *out = nn_cpu_backend();
        return 0;
    }
    long n = 0;
    if (strncmp(device, "cuda", 4) == 0 && (device[4] == '\0' || device[4] == ':')) {
        char *end = (char *)device + 4;
        if (device[4] == ':') n = strtol(device + 5, &end, 10);
        if (*end == '\0' && end != device + 5 && n >= 0 && n < 1024) {
            *out = nn_cuda_backend((int)n, prec, e);
            return *out ? 0 : vs_failctx(e, "device '%s'", device);
        }
    }
    return vs_fail(e, "unknown device '%s' (auto, cpu, cuda or cuda:N)", device);
}
