/*
 * backend-cuda-private.h — what the CUDA backend's files share:
 * backend-cuda.c (the context: init, load, destroy), backend-cuda-steps.c
 * (nodes to steps, own-kernel steps), backend-cuda-mem.c (device memory),
 * backend-cuda-run.c (a batch through the device), backend-cuda-conv.c
 * and backend-cuda-dnn.c (cuDNN and cuBLAS steps). Only they include it:
 * they are the only C files that see CUDA, cuDNN or cuBLAS headers
 * (CUDA_CSRCS in the Makefile).
 */
#pragma once

#include "nn/backend.h"
#include "nn/backend-cuda-plan.h"
#include "eosin-kernels.h"

/* The backend uses cuDNN's legacy descriptor API (cudnnConvolutionForward,
 * cudnnPoolingForward, ...): deprecated in cuDNN 9 in favour of the graph
 * API, but present, documented and far simpler to review. cudnn.h marks it
 * only when CUDNN_WARN_DEPRECATED is defined; ignore the mark in these two
 * files so such a build still passes -Werror. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

/* Uploads are split into this many pieces along the batch so copying one
 * overlaps preprocessing/copying the one before. */
#define EOSIN_CUDA_CHUNKS 4
/* Convolution algorithms kept per step, best first, to fall back on. */
#define EOSIN_CUDA_MAX_ALGOS 8

typedef enum {
  STEP_NONE,      /* Identity, Dropout, Flatten, Reshape: the output aliases the input */
  STEP_CONV,      /* cuDNN forward convolution (+ bias, activation) */
  STEP_CONV_T,    /* ConvTranspose: cuDNN backward data (+ bias, activation) */
  STEP_POOL,      /* Max/Average/GlobalAveragePool: cuDNN, or own kernel */
  STEP_SOFTMAX,   /* cuDNN softmax over the channel of an (outer, len, inner, 1) view */
  STEP_GEMM,      /* Gemm / MatMul: cuBLAS */
  STEP_AFFINE,    /* unary ops, BatchNormalization: own kernel */
  STEP_BINARY,    /* Add, Mul: own kernel */
  STEP_CONCAT,    /* own kernel */
  STEP_RESIZE,    /* own kernel */
  STEP_PAD,       /* own kernel */
} CudaStepKind;

typedef struct {
  CudaStepKind kind;
  const EosinNode *node;  /* borrowed from the model */
  const EosinNode *act;   /* an activation node folded into this step, or NULL */
  int out;                /* tensor written: the folded activation's output, if any */
  int act_kind;           /* EosinCudaAct applied after the op */
  float act_p0, act_p1;

  /* cuDNN objects, NULL where unused; owned, freed by _eosin_cuda_step_free */
  cudnnTensorDescriptor_t x_desc, y_desc, bias_desc;
  cudnnFilterDescriptor_t w_desc;
  cudnnConvolutionDescriptor_t conv_desc;
  cudnnActivationDescriptor_t act_desc;
  cudnnPoolingDescriptor_t pool_desc;

  /* convolutions: algorithm candidates, best first, and the one in use */
  int n_algos, algo_at;
  int algos[EOSIN_CUDA_MAX_ALGOS]; /* cudnnConvolutionFwdAlgo_t or ...BwdDataAlgo_t */
  cudnnMathType_t maths[EOSIN_CUDA_MAX_ALGOS];
  size_t ws_bytes[EOSIN_CUDA_MAX_ALGOS];
  bool fused;             /* cudnnConvolutionBiasActivationForward does bias + Relu */
  bool use_scratch;       /* conv: input padded into the scratch; conv-T: output cropped from it */
  int64_t pre[4];         /* conv: explicit pads t, l, b, r; conv-T: crop at top, left */
  int64_t sdims[4];       /* the scratch tensor's NCHW dims */
  int64_t key[20];        /* geometry: steps with equal keys share the algorithm search */
  const void *w;          /* weights (Gemm: B) in the activation type; borrowed from c->dconst */
  const void *bias_t;     /* bias in the activation type, for the fused cuDNN call; borrowed */

  /* per-channel float parameters of the affine pass: (x - sub) * mul + add */
  float *params;          /* owned device memory holding sub/mul/add */
  const float *sub, *mul, *add; /* into params, or NULL */
  size_t channels, inner;

  /* pooling */
  bool own_pool;          /* cuDNN cannot express the geometry (or refused it) */
  EosinCudaPool pool;

  /* Gemm, in row-major terms: Y[M, N] = alpha op(A)[M, K] op(B)[K, N] + beta bias */
  int gm, gn, gk;
  bool ta, tb;
  float alpha, beta;
  size_t n_bias;

  /* Resize */
  int linear, coord, nearest;
  float scale_h, scale_w; /* the model's scales (out/in only when it gave sizes) */
} CudaStep;

typedef struct {
  int device;
  bool fp16;
  int ktype;              /* EosinCudaType of activations */
  size_t es;              /* bytes per activation value */
  cudnnDataType_t dt;
  cudnnHandle_t dnn;      /* owned, on the compute stream */
  cublasHandle_t blas;    /* owned, on the compute stream */
  cudaStream_t compute, copy; /* owned */
  cudaEvent_t ev[EOSIN_CUDA_CHUNKS]; /* owned: "chunk k is on the device" */

  const EosinModel *m;    /* borrowed: the caller keeps it alive until destroy */
  bool loaded;            /* load finished, trial run included */
  CudaStep *steps;        /* owned */
  int n_steps;
  void **dev;             /* per tensor: its values on the device (into arena or dconst), or NULL */
  void **dconst;          /* per tensor: owned device copy of a constant, activation type */

  void *arena;            /* owned: every activation, placed by liveness */
  size_t arena_bytes;
  void *ws;               /* owned: cuDNN workspace shared by all steps */
  size_t ws_bytes;
  void *scratch;          /* owned: a step's padded input / uncropped output */
  size_t scratch_bytes;
  float *stage_in;        /* owned, fp16 only: the float input before conversion */
  float *stage_out;       /* owned, fp16 only: the float output before download */
  uint8_t *rgb;           /* owned: run_rgb's tiles (input N x 3 x S x S only) */
  void *pin_in, *pin_out; /* owned pinned host staging (cudaHostAlloc) */
  size_t n_in, n_out;     /* values in the input / first output tensor */

  size_t mem_cap;         /* EOSIN_CUDA_MAX_MEMORY_MB in bytes, 0: no cap */
  size_t mem_used;        /* device bytes _eosin_cuda_alloc handed out, less those freed */
  unsigned refuse;        /* EOSIN_CUDA_REFUSE_* test hooks (backend.h) */
  bool lost;              /* a sticky fault: the device is gone for this process */
  /* what the trial run moved (_eosin_cuda_test_fallbacks) */
  int n_unfused, n_next_algo, n_own_pool;
} CudaCtx;

/* Sets a EOSIN_ERROR_DEVICE error naming the model, @node (may be NULL),
 * @what failed and @detail (the CUDA/cuDNN/cuBLAS error string); false. */
bool _eosin_cuda_fail(GError **err, const CudaCtx *c, const EosinNode *node, const char *what,
                      const char *detail);

/* Checks of CUDA, kernel-launcher, cuDNN and cuBLAS results: on failure
 * they set *err and return false from the calling function, which must
 * have `GError **err`, `CudaCtx *c` and `const EosinNode *node` in scope. */
/* A failed runtime call leaves its error as the thread's last error, which
 * the next kernel launcher's cudaGetLastError() would report as its own:
 * CUDA_TRY clears it (a sticky fault cannot be cleared and stays). */
#define CUDA_TRY(call, what)                                                     \
  do {                                                                           \
    cudaError_t e_ = (call);                                                     \
    if (e_ != cudaSuccess) {                                                     \
      cudaGetLastError();                                                        \
      return _eosin_cuda_fail(err, c, node, what, cudaGetErrorString(e_));      \
    }                                                                            \
  } while (0)
#define KERNEL_TRY(call, what)                                                   \
  do {                                                                           \
    int e_ = (call);                                                             \
    if (e_ != 0)                                                                 \
      return _eosin_cuda_fail(err, c, node, what,                               \
                              cudaGetErrorString((cudaError_t) e_));             \
  } while (0)
#define DNN_TRY(call, what)                                                      \
  do {                                                                           \
    cudnnStatus_t e_ = (call);                                                   \
    if (e_ != CUDNN_STATUS_SUCCESS)                                              \
      return _eosin_cuda_fail(err, c, node, what, cudnnGetErrorString(e_));     \
  } while (0)
#define BLAS_TRY(call, what)                                                     \
  do {                                                                           \
    cublasStatus_t e_ = (call);                                                  \
    if (e_ != CUBLAS_STATUS_SUCCESS)                                             \
      return _eosin_cuda_fail(err, c, node, what, cublasGetStatusString(e_));   \
  } while (0)

static inline const EosinTensor *_eosin_cuda_tensor(const CudaCtx *c, int i) {
  return c->m->tensors->pdata[i];
}

static inline size_t _eosin_cuda_numel(const EosinTensor *t) {
  return (size_t) _eosin_tensor_numel(t);
}

/* ---- backend-cuda-mem.c: device memory ---- */

/* cudaMalloc (or, with @pinned, cudaHostAlloc) of @bytes into *@dst,
 * which is set only on success. The caller owns *@dst (cudaFree /
 * cudaFreeHost; destroy frees what the context holds). Device memory
 * counts against EOSIN_CUDA_MAX_MEMORY_MB; @what names it in the error. */
bool _eosin_cuda_alloc(CudaCtx *c, const EosinNode *node, void **dst, size_t bytes, bool pinned,
                       const char *what, GError **err);

/* Places every activation in one arena by liveness (views share their
 * source's place, constants live in c->dconst) and points c->dev at it. */
bool _eosin_cuda_plan_memory(CudaCtx *c, GError **err);

/* The pinned host staging of input and output (and in fp16 the device
 * float buffers converted from and to; the tiles of run_rgb). */
bool _eosin_cuda_alloc_staging(CudaCtx *c, GError **err);

/* The device copy of constant tensor @t in the activation type, uploaded
 * on first use (owned by c->dconst); NULL with *err set on failure. */
const void *_eosin_cuda_const(CudaCtx *c, int t, GError **err);

/* Copies @n host floats into new device memory *@dst (owned by the caller). */
bool _eosin_cuda_upload_f32(CudaCtx *c, const EosinNode *node, const float *host, size_t n,
                            float **dst, GError **err);

/* Grows the shared cuDNN workspace to at least @bytes (load time only:
 * it waits for the compute stream before freeing the old one). */
bool _eosin_cuda_ensure_ws(CudaCtx *c, const EosinNode *node, size_t bytes, GError **err);

/* ---- backend-cuda-steps.c: the plan of steps, own-kernel steps ---- */

/* The inputs @n reads as activations (not weights, biases or shapes). */
int _eosin_cuda_data_inputs(const EosinNode *n);
/* Why the backend cannot run @n, or NULL. */
const char *_eosin_cuda_unsupported(const EosinModel *m, const EosinNode *n);
/* Nodes to c->steps (owned by @c), folding activations into the step
 * before them. */
bool _eosin_cuda_make_steps(CudaCtx *c, GError **err);
/* Parameters of the steps that run on the own kernels. */
bool _eosin_cuda_prepare_own(CudaCtx *c, CudaStep *s, GError **err);
/* Enqueues every step on the compute stream (@probe: the trial run, which
 * waits after each step). */
bool _eosin_cuda_exec_all(CudaCtx *c, bool probe, GError **err);

/* ---- backend-cuda-run.c: EosinBackendOps.run and run_rgb ---- */

bool _eosin_cuda_run(void *ctx, const float *input, float *output, GError **err);
bool _eosin_cuda_run_rgb(void *ctx, const uint8_t *rgb, int n, const EosinPreprocess *pp,
                         float *output, GError **err);

/* ---- backend-cuda-conv.c and backend-cuda-dnn.c: cuDNN/cuBLAS steps ---- */

/* A 4-D NCHW tensor descriptor (owned by the caller, cudnnDestroy...) of
 * type @dt; dims beyond cuDNN's int range are a device error. */
bool _eosin_cuda_tensor_desc(CudaCtx *c, const EosinNode *node, cudnnTensorDescriptor_t *d,
                             const int64_t dims[4], cudnnDataType_t dt, GError **err);
/* Conv / ConvTranspose steps: descriptors, algorithm candidates (raising
 * *ws_need and *scratch_need), and enqueueing (backend-cuda-conv.c). */
bool _eosin_cuda_prepare_conv(CudaCtx *c, CudaStep *s, size_t *ws_need, size_t *scratch_need,
                              GError **err);
bool _eosin_cuda_prepare_conv_t(CudaCtx *c, CudaStep *s, size_t *ws_need,
                                size_t *scratch_need, GError **err);
bool _eosin_cuda_exec_conv(CudaCtx *c, CudaStep *s, bool probe, GError **err);

/* cuDNN/cuBLAS steps (backend-cuda-dnn.c). Prepare builds descriptors and
 * chooses algorithms, raising *ws_need and *scratch_need to what the step
 * needs; exec enqueues the step on the compute stream. With @probe (the
 * load-time trial run), a cuDNN refusal moves the step to its next
 * candidate (another algorithm, the unfused path, the own pooling kernel)
 * instead of failing. */
bool _eosin_cuda_prepare_dnn(CudaCtx *c, CudaStep *s, size_t *ws_need, size_t *scratch_need,
                             GError **err);
bool _eosin_cuda_exec_dnn(CudaCtx *c, CudaStep *s, bool probe, GError **err);
/* Destroys the step's cuDNN descriptors and frees its parameters. */
void _eosin_cuda_step_free(CudaStep *s);
