/*
 * backend-cuda-info.c — what CUDA a run used, for provenance: the runtime,
 * driver and cuDNN versions (`eosin version`, report.json "versions") and
 * the device's name and compute capability (report.json "inference" when
 * the CUDA backend ran). Kept apart from the backend so that asking needs
 * no context; none of these calls makes one.
 */
#include "nn/backend.h"
#include "eosin-util.h" /* _eosin_json_str/_int */

#include <cuda_runtime.h>
#include <cudnn.h>

/* CUDA's 1000 * major + 10 * minor as "major.minor". */
static char *cuda_number(int v) {
  return g_strdup_printf("%d.%d", v / 1000, (v % 1000) / 10);
}

void _eosin_cuda_versions(char **runtime, char **driver, char **cudnn) {
  int rt = 0, drv = 0;
  *runtime = cudaRuntimeGetVersion(&rt) == cudaSuccess ? cuda_number(rt) : g_strdup("unknown");
  /* without a driver this succeeds with 0 */
  *driver = cudaDriverGetVersion(&drv) == cudaSuccess && drv > 0 ? cuda_number(drv)
                                                                 : g_strdup("none");
  cudaGetLastError(); /* neither error is sticky: clear it */
  size_t v = cudnnGetVersion();
  /* cuDNN 9 numbers its versions 10000 * major + 100 * minor + patch, 8 and
   * before 1000 * major + 100 * minor + patch */
  if (v >= 90000)
    *cudnn = g_strdup_printf("%zu.%zu.%zu", v / 10000, (v % 10000) / 100, v % 100);
  else
    *cudnn = g_strdup_printf("%zu.%zu.%zu", v / 1000, (v % 1000) / 100, v % 100);
}

void _eosin_cuda_describe(int device, JsonBuilder *b) {
  g_autofree char *runtime = NULL, *driver = NULL, *cudnn = NULL;
  _eosin_cuda_versions(&runtime, &driver, &cudnn);
  json_builder_begin_object(b);
  _eosin_json_int(b, "device", device);
  struct cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, device) == cudaSuccess) {
    _eosin_json_str(b, "name", p.name);
    g_autofree char *cc = g_strdup_printf("%d.%d", p.major, p.minor);
    _eosin_json_str(b, "compute_capability", cc);
    _eosin_json_int(b, "memory_mb", (gint64) (p.totalGlobalMem >> 20));
  } else {
    cudaGetLastError();
  }
  _eosin_json_str(b, "runtime", runtime);
  _eosin_json_str(b, "driver", driver);
  _eosin_json_str(b, "cudnn", cudnn);
  json_builder_end_object(b);
}
