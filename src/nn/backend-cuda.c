/*
 * backend-cuda.c — the GPU backend ("cuda") on cuDNN 9, cuBLAS and Eosin's
 * own kernels (kernels/ops.cu). At load, once for the model's batch size:
 * the nodes become steps (a Relu/Clip/Sigmoid/HardSigmoid/HardSwish that
 * alone reads a convolution's or BatchNormalization's output is folded
 * into it; Identity, Dropout, Flatten and Reshape become views of their
 * input), every activation gets
 * a place in one device arena planned by liveness, weights are uploaded
 * once, cuDNN descriptors and algorithms are chosen, and one trial run
 * checks every step on the device (moving a step that cuDNN refuses to
 * its next candidate). A run then only enqueues work.
 *
 * Streams: a copy stream uploads the input through pinned host memory in
 * EOSIN_CUDA_CHUNKS pieces along the batch, recording an event per piece;
 * the compute stream waits on each event and converts / preprocesses that
 * piece while the next one is being copied, then runs the graph and
 * downloads the output. The API is synchronous (run returns the output),
 * so overlap is within a call.
 *
 * fp16 (EosinBackendOptions.fp16): activations and weights are half, with
 * float accumulation everywhere (cuDNN on tensor cores, cuBLAS
 * CUBLAS_COMPUTE_32F, own kernels compute in float); the float input is
 * converted on the device and the output converted back before download.
 *
 * Errors: CUDA/cuDNN/cuBLAS failures during init/load/run are
 * EOSIN_ERROR_DEVICE (the caller retries smaller, then on the CPU) naming
 * the model, node and library error; an op the backend cannot run is
 * EOSIN_ERROR_MODEL. Nothing aborts. One context is used by one thread at
 * a time. The trial run waits after each step, so a kernel fault names its
 * step; a failed runtime call clears its error so the next launch does not
 * report it; lost() tells a sticky fault (the device is gone for the
 * process) from one a smaller batch may survive. EOSIN_CUDA_MAX_MEMORY_MB
 * caps the device memory _eosin_cuda_alloc hands out (to force the retry
 * at load).
 *
 * Not done yet (issue 16, item 8): the scheduler's tile buffers are still
 * copied into pin_in before the DMA (registering them with cudaHostRegister
 * needs the scheduler to own their registration: they are reused and
 * freed outside this file); batch i + 1 does not upload while batch i
 * computes (run_rgb is synchronous; double-buffering needs two staging
 * sets and an asynchronous run/collect pair in backend.h); no NHWC, CUDA
 * graphs or further fusions.
 *
 * Files: this one holds the context (init, load, destroy, the ops table);
 * backend-cuda-steps.c turns nodes into steps and runs the own-kernel
 * ones; backend-cuda-mem.c is device memory (the arena plan, weights,
 * staging); backend-cuda-run.c uploads, runs and downloads a batch;
 * backend-cuda-conv.c and backend-cuda-dnn.c are the cuDNN and cuBLAS
 * steps.
 */
#include "nn/backend-cuda-private.h"

bool _eosin_cuda_fail(GError **err, const CudaCtx *c, const EosinNode *node, const char *what,
                      const char *detail) {
  int dev = c ? c->device : 0;
  if (c && c->m && node)
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "cuda:%d: model %s: node %s (%s): %s: %s",
                dev, c->m->path, node->name, _eosin_op_name(node->op), what, detail);
  else if (c && c->m)
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "cuda:%d: model %s: %s: %s", dev,
                c->m->path, what, detail);
  else
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "cuda:%d: %s: %s", dev, what, detail);
  return false;
}

static void cuda_destroy(void *ctx) {
  CudaCtx *c = ctx;
  if (!c)
    return;
  /* errors are ignored here: after a failed run the device may be in an
   * error state, and everything must still be released */
  cudaSetDevice(c->device);
  if (c->compute)
    cudaStreamSynchronize(c->compute);
  if (c->copy)
    cudaStreamSynchronize(c->copy);
  for (int i = 0; i < c->n_steps; i++)
    _eosin_cuda_step_free(&c->steps[i]);
  g_free(c->steps);
  if (c->dconst)
    for (guint t = 0; t < c->m->tensors->len; t++)
      if (c->dconst[t])
        cudaFree(c->dconst[t]);
  g_free(c->dconst);
  g_free(c->dev);
  void *dmem[] = {c->arena, c->ws, c->scratch, c->stage_in, c->stage_out, c->rgb};
  for (size_t k = 0; k < G_N_ELEMENTS(dmem); k++)
    if (dmem[k])
      cudaFree(dmem[k]);
  if (c->pin_in)
    cudaFreeHost(c->pin_in);
  if (c->pin_out)
    cudaFreeHost(c->pin_out);
  for (int k = 0; k < EOSIN_CUDA_CHUNKS; k++)
    if (c->ev[k])
      cudaEventDestroy(c->ev[k]);
  if (c->dnn)
    cudnnDestroy(c->dnn);
  if (c->blas)
    cublasDestroy(c->blas);
  if (c->compute)
    cudaStreamDestroy(c->compute);
  if (c->copy)
    cudaStreamDestroy(c->copy);
  g_free(c);
}

/* Streams, events and library handles on device c->device. */
static bool init_device(CudaCtx *c, GError **err) {
  const EosinNode *node = NULL;
  CUDA_TRY(cudaSetDevice(c->device), "cudaSetDevice");
  CUDA_TRY(cudaStreamCreateWithFlags(&c->compute, cudaStreamNonBlocking), "cudaStreamCreate");
  CUDA_TRY(cudaStreamCreateWithFlags(&c->copy, cudaStreamNonBlocking), "cudaStreamCreate");
  for (int k = 0; k < EOSIN_CUDA_CHUNKS; k++)
    CUDA_TRY(cudaEventCreateWithFlags(&c->ev[k], cudaEventDisableTiming), "cudaEventCreate");
  DNN_TRY(cudnnCreate(&c->dnn), "cudnnCreate");
  DNN_TRY(cudnnSetStream(c->dnn, c->compute), "cudnnSetStream");
  BLAS_TRY(cublasCreate(&c->blas), "cublasCreate");
  BLAS_TRY(cublasSetStream(c->blas, c->compute), "cublasSetStream");
  /* no TF32 for fp32 GEMMs (parity with the reference to 1e-4); half GEMMs
   * use tensor cores under the default math mode anyway */
  BLAS_TRY(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  return true;
}

static bool cuda_init(void **ctx, const EosinBackendOptions *opt, GError **err) {
  *ctx = NULL;
  int device = opt ? opt->device : 0, count = 0;
  /* a bad value is a config error whether or not there is a GPU */
  size_t cap = 0;
  if (!_eosin_cuda_parse_max_memory(g_getenv("EOSIN_CUDA_MAX_MEMORY_MB"), &cap, err))
    return false;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    cudaGetLastError(); /* not sticky: clear it */
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE,
                "cuda: no usable GPU: cudaGetDeviceCount: %s", cudaGetErrorString(e));
    return false;
  }
  if (count < 1) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "cuda: no CUDA device found");
    return false;
  }
  if (device < 0 || device >= count) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE,
                "cuda: device cuda:%d does not exist (%d device%s: cuda:0 to cuda:%d)", device,
                count, count == 1 ? "" : "s", count - 1);
    return false;
  }
  CudaCtx *c = g_new0(CudaCtx, 1);
  c->device = device;
  c->fp16 = opt && opt->fp16;
  c->ktype = c->fp16 ? EOSIN_CUDA_F16 : EOSIN_CUDA_F32;
  c->es = c->fp16 ? 2 : 4;
  c->dt = c->fp16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  c->mem_cap = cap;
  if (!init_device(c, err)) {
    cuda_destroy(c);
    return false;
  }
  *ctx = c;
  return true;
}

static bool cuda_supports(void *ctx, const EosinModel *m, const EosinNode *n) {
  return _eosin_cuda_unsupported(m, n) == NULL;
}

static bool cuda_load(void *ctx, const EosinModel *m, GError **err) {
  CudaCtx *c = ctx;
  const EosinNode *node = NULL;
  if (c->m) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "cuda: a context loads one model");
    return false;
  }
  c->m = m;
  c->dev = g_new0(void *, m->tensors->len);
  c->dconst = g_new0(void *, m->tensors->len);
  CUDA_TRY(cudaSetDevice(c->device), "cudaSetDevice");
  /* an error an earlier context left behind is not this load's */
  cudaGetLastError();
  if (!_eosin_cuda_make_steps(c, err) || !_eosin_cuda_plan_memory(c, err))
    return false;
  size_t ws_need = 0, scratch_need = 0;
  for (int i = 0; i < c->n_steps; i++) {
    CudaStep *s = &c->steps[i];
    if (!_eosin_cuda_prepare_own(c, s, err) ||
        !_eosin_cuda_prepare_dnn(c, s, &ws_need, &scratch_need, err))
      return false;
  }
  if (!_eosin_cuda_ensure_ws(c, NULL, ws_need, err))
    return false;
  if (scratch_need) {
    if (!_eosin_cuda_alloc(c, node, &c->scratch, scratch_need, false,
                           "allocating the scratch buffer", err))
      return false;
    c->scratch_bytes = scratch_need;
  }
  if (!_eosin_cuda_alloc_staging(c, err))
    return false;
  /* the trial run (zero input): lazy library loading happens now, and a
   * step cuDNN refuses moves to its next candidate here, not mid-slide */
  if (!_eosin_cuda_exec_all(c, true, err))
    return false;
  CUDA_TRY(cudaStreamSynchronize(c->compute), "trial run");
  c->loaded = true;
  return true;
}

/* Whether the device keeps failing after a fault: a sticky error (illegal
 * address, launch failure, ...) makes every later call fail, the
 * synchronisation included, until the process ends; an ordinary one (out
 * of memory, a refused launch) is cleared here. Remembered in c->lost. */
static bool cuda_lost(void *ctx) {
  CudaCtx *c = ctx;
  if (!c || c->lost)
    return c != NULL;
  cudaGetLastError();
  if (cudaSetDevice(c->device) != cudaSuccess || cudaDeviceSynchronize() != cudaSuccess) {
    cudaGetLastError();
    c->lost = cudaDeviceSynchronize() != cudaSuccess;
    cudaGetLastError();
  }
  return c->lost;
}

void _eosin_cuda_test_refuse(void *ctx, unsigned what) {
  ((CudaCtx *) ctx)->refuse = what;
}

void _eosin_cuda_test_fallbacks(void *ctx, int *unfused, int *next_algo, int *own_pool) {
  const CudaCtx *c = ctx;
  *unfused = c->n_unfused;
  *next_algo = c->n_next_algo;
  *own_pool = c->n_own_pool;
}

size_t _eosin_cuda_test_mem_used(void *ctx) {
  return ((const CudaCtx *) ctx)->mem_used;
}

const EosinBackendOps _eosin_backend_cuda = {
    .name = "cuda",
    .init = cuda_init,
    .supports = cuda_supports,
    .load = cuda_load,
    .run = _eosin_cuda_run,
    .run_rgb = _eosin_cuda_run_rgb,
    .destroy = cuda_destroy,
    .lost = cuda_lost,
};
