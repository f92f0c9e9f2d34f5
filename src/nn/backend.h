/*
 * backend.h — the inference backend interface (ggml-backend style: an ops
 * struct plus a context). A backend says which nodes it supports, loads a
 * prepared graph once (weights, primitives, buffers for its batch size) and
 * runs it on batches. Backends: "ref" (plain C, the oracle every other
 * backend is tested against), then oneDNN (CPU) and cuDNN (GPU).
 */
#pragma once

#include "nn/graph-private.h"

G_BEGIN_DECLS

/* What the caller asks of a backend when starting it. */
typedef struct {
  int device;   /* GPU index for GPU backends (cuda:N); ignored on the CPU */
  bool fp16;    /* compute in half precision where the backend can */
} EosinBackendOptions;

/* Plain C preprocessing of @n tiles of size^2 HWC RGB into NCHW floats:
 * the reference for every backend's run_rgb. */
void _eosin_preprocess(const uint8_t *rgb, int n, int size, const EosinPreprocess *pp,
                       float *nchw);

typedef struct {
  const char *name;
  /* Starts the backend (device, library handles); false with a reason if
   * it is unavailable here (no GPU, no driver), never aborting. */
  bool (*init)(void **ctx, const EosinBackendOptions *opt, GError **err);
  /* Whether this backend can run @node of @model. */
  bool (*supports)(void *ctx, const EosinModel *model, const EosinNode *node);
  /* Prepares @model for repeated runs. */
  bool (*load)(void *ctx, const EosinModel *model, GError **err);
  /* Runs the model on @input (the input tensor's shape, NCHW float32) and
   * writes the first output (its shape) to @output. */
  bool (*run)(void *ctx, const float *input, float *output, GError **err);
  /* Optional (NULL: the caller preprocesses with _eosin_preprocess and calls
   * run): the same from @n uint8 RGB tiles (n <= the model's batch, the rest
   * of the batch is zero), preprocessed on the device. */
  bool (*run_rgb)(void *ctx, const uint8_t *rgb, int n, const EosinPreprocess *pp,
                  float *output, GError **err);
  void (*destroy)(void *ctx);
  /* Optional (NULL: never): after a EOSIN_ERROR_DEVICE failure of load,
   * run or run_rgb, whether the device is lost for the rest of the process
   * (a sticky CUDA fault such as an illegal address: every later call
   * fails, re-initialising does not help). Called before destroy. */
  bool (*lost)(void *ctx);
} EosinBackendOps;

extern const EosinBackendOps _eosin_backend_ref;
extern const EosinBackendOps _eosin_backend_cpu;
#ifdef EOSIN_HAVE_CUDA
extern const EosinBackendOps _eosin_backend_cuda;
#endif

/* eosin_infer_new with @gpu as the GPU backend (tests use a failing one to
 * check the retry and fallback path). */
EosinInfer *_eosin_infer_new_with(const char *model_path, const EosinInferOptions *opts,
                                  const EosinBackendOps *gpu, GError **err);

#ifdef EOSIN_HAVE_CUDA
/* Test hooks of the CUDA backend (tests/test-backend.c, test-ops.c), for a
 * context between init and load: make cuDNN's fused convolution, the first
 * algorithm of each convolution, or cuDNN pooling count as refused in the
 * trial run, so the fallbacks it exists for run on any GPU. */
enum {
  EOSIN_CUDA_REFUSE_FUSED = 1 << 0,
  EOSIN_CUDA_REFUSE_FIRST_ALGO = 1 << 1,
  EOSIN_CUDA_REFUSE_POOL = 1 << 2,
};
void _eosin_cuda_test_refuse(void *ctx, unsigned what);
/* What the trial run of a loaded context moved: convolutions now unfused,
 * convolutions on a later algorithm, pooling steps on the own kernel. */
void _eosin_cuda_test_fallbacks(void *ctx, int *unfused, int *next_algo, int *own_pool);
/* Device bytes a context holds, as EOSIN_CUDA_MAX_MEMORY_MB counts them. */
size_t _eosin_cuda_test_mem_used(void *ctx);
/* The CUDA runtime's, the driver's ("none" without one) and cuDNN's
 * versions as "12.4"-style text (backend-cuda-info.c; g_free each). No GPU
 * is needed. */
void _eosin_cuda_versions(char **runtime, char **driver, char **cudnn);
/* GPU @device as one JSON object value: name, compute capability, memory
 * and the versions above (report.json "inference" when CUDA ran). */
void _eosin_cuda_describe(int device, JsonBuilder *b);
#endif

/* EOSIN_CUDA_MAX_MEMORY_MB (@value, may be NULL: no cap) as bytes in
 * *@bytes (0: no cap): a positive whole number of MiB; anything else is a
 * EOSIN_ERROR_CONFIG error naming the variable and the value. Host-only
 * (backend-cuda-plan.c), so checked in every build. */
bool _eosin_cuda_parse_max_memory(const char *value, size_t *bytes, GError **err);

/* The reference implementation of one node over per-tensor buffers: what
 * the other backends run for ops they do not accelerate. */
void _eosin_ref_node(const EosinModel *m, float **buf, const EosinNode *n);
void _eosin_ref_buffers(const EosinModel *m, float ***buf, bool **owned);

G_END_DECLS
