/*
 * bench-inference.c — images/s of an ONNX model on one of Eosin's backends
 * (`make bench-inference`): load once for the batch size, one warm-up run,
 * then the mean of RUNS timed runs. Prints one JSON line, with the ISA
 * oneDNN dispatched to (ONEDNN_MAX_CPU_ISA caps it), since that decides
 * the CPU backend's kernels (nChw8c and Eosin's Winograd up to AVX2,
 * nChw16c and oneDNN's Winograd from AVX-512 on).
 *
 *   bench-inference MODEL.onnx BATCH RUNS [cpu|ref|cuda] [fp32|fp16]
 *
 * cuda (where built with it; scripts/device-check) times run() with the
 * host-to-device copy of the float input and the copy back of the output.
 */
#include "nn/backend.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The ISA oneDNN dispatches to, as ONEDNN_MAX_CPU_ISA spells it (lower case). */
static const char *isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
  case dnnl_cpu_isa_sse41: return "sse41";
  case dnnl_cpu_isa_avx: return "avx";
  case dnnl_cpu_isa_avx2: return "avx2";
  case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
  case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
  case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
  case dnnl_cpu_isa_avx512_core: return "avx512_core";
  case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
  case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
  case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
  default: return "unknown";
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: bench-inference MODEL.onnx BATCH RUNS [cpu|ref|cuda] [fp32|fp16]\n");
    return 2;
  }
  int batch = atoi(argv[2]), runs = atoi(argv[3]);
  const char *name = argc > 4 ? argv[4] : "cpu";
  const EosinBackendOps *be = !strcmp(name, "ref") ? &_eosin_backend_ref : &_eosin_backend_cpu;
#ifdef EOSIN_HAVE_CUDA
  if (!strcmp(name, "cuda"))
    be = &_eosin_backend_cuda;
#endif
  if (strcmp(name, be->name) && strcmp(name, "cpu") && strcmp(name, "ref")) {
    fprintf(stderr, "bench-inference: no %s backend in this build\n", name);
    return 1;
  }
  EosinBackendOptions opt = {.fp16 = argc > 5 && !strcmp(argv[5], "fp16")};
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinModel) m = eosin_model_load(argv[1], batch, &err);
  void *ctx = NULL;
  if (!m || !be->init(&ctx, &opt, &err) || !be->load(ctx, m, &err)) {
    fprintf(stderr, "bench-inference: %s\n", err ? err->message : "?");
    return 1;
  }
  int64_t nin = _eosin_tensor_numel(m->tensors->pdata[m->input]);
  int64_t nout = _eosin_tensor_numel(m->tensors->pdata[m->output]);
  g_autofree float *x = g_new(float, nin);
  g_autofree float *y = g_new(float, nout);
  GRand *r = g_rand_new_with_seed(1);
  for (int64_t i = 0; i < nin; i++)
    x[i] = (float) g_rand_double_range(r, -1, 1);
  g_rand_free(r);
  if (!be->run(ctx, x, y, &err)) { /* warm-up */
    fprintf(stderr, "bench-inference: %s\n", err->message);
    return 1;
  }
  gint64 t0 = g_get_monotonic_time();
  for (int i = 0; i < runs; i++)
    if (!be->run(ctx, x, y, &err)) {
      fprintf(stderr, "bench-inference: %s\n", err->message);
      return 1;
    }
  double s = (g_get_monotonic_time() - t0) / 1e6;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("{\"engine\":\"eosin-%s\",\"precision\":\"%s\",\"isa\":\"%s\",\"batch\":%d,\"runs\":%d,"
         "\"images_per_s\":%.1f,\"peak_rss_mb\":%.0f}\n",
         be->name, opt.fp16 ? "fp16" : "fp32", isa_name(dnnl_get_effective_cpu_isa()), batch, runs, batch * runs / s,
         ru.ru_maxrss / 1024.0);
  be->destroy(ctx);
  return 0;
}
