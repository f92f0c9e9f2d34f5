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
 * caps the device memory alloc() hands out (to force the retry at load).
 *
 * Not done yet (issue 16, item 8): the scheduler's tile buffers are still
 * copied into pin_in before the DMA (registering them with cudaHostRegister
 * needs the scheduler to own their registration: they are reused and
 * freed outside this file); batch i + 1 does not upload while batch i
 * computes (run_rgb is synchronous; double-buffering needs two staging
 * sets and an asynchronous run/collect pair in backend.h); no NHWC, CUDA
 * graphs or further fusions. This file is past the ~600-line guideline:
 * the run side (upload/download, run, run_rgb) is the part to split out,
 * which needs a Makefile line (CUDA_CSRCS).
 */
#include "nn/backend-cuda-private.h"

#include <limits.h>
#include <math.h>

#define T(i) _eosin_cuda_tensor(c, (i))

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

/* cudaMalloc (or, with @pinned, cudaHostAlloc) of @bytes into *@dst,
 * which is set only on success: CUDA does not promise to leave it NULL on
 * failure, and destroy frees whatever is non-NULL. The caller owns *@dst
 * (cudaFree / cudaFreeHost, or device_free). Device memory counts against
 * EOSIN_CUDA_MAX_MEMORY_MB (c->mem_cap): beyond it, the same out-of-memory
 * error a full GPU gives, so the retry at a smaller batch can be forced on
 * any GPU (scripts/device-check). A failed call's error is cleared, or the
 * next kernel launch would report it as its own. */
static bool alloc(CudaCtx *c, const EosinNode *node, void **dst, size_t bytes, bool pinned,
                  const char *what, GError **err) {
  void *p = NULL;
  cudaError_t e;
  if (!pinned && c->mem_cap && (bytes > c->mem_cap || c->mem_used > c->mem_cap - bytes))
    e = cudaErrorMemoryAllocation;
  else
    e = pinned ? cudaHostAlloc(&p, MAX(bytes, 1), cudaHostAllocDefault)
               : cudaMalloc(&p, MAX(bytes, 1));
  if (e != cudaSuccess) {
    cudaGetLastError();
    g_autofree char *msg =
        c->mem_cap && !pinned && !p
            ? g_strdup_printf("%s of %zu bytes (%zu in use, EOSIN_CUDA_MAX_MEMORY_MB caps at %zu)",
                              what, bytes, c->mem_used, c->mem_cap)
            : g_strdup_printf("%s of %zu bytes", what, bytes);
    return _eosin_cuda_fail(err, c, node, msg, cudaGetErrorString(e));
  }
  if (!pinned)
    c->mem_used += bytes;
  *dst = p;
  return true;
}

/* Frees @p (device memory of @bytes from alloc; NULL is ignored) during
 * load, keeping the count the cap is checked against. */
static void device_free(CudaCtx *c, void *p, size_t bytes) {
  if (!p)
    return;
  cudaFree(p);
  c->mem_used -= MIN(bytes, c->mem_used);
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

/* The inputs @n reads as activations (not weights, biases or shapes). */
static int data_inputs(const EosinNode *n) {
  switch (n->op) {
  case EOSIN_OP_CONSTANT: return 0;
  case EOSIN_OP_ADD:
  case EOSIN_OP_MUL: return 2;
  case EOSIN_OP_CONCAT: return n->n_in;
  default: return 1;
  }
}

/* Why the backend cannot run @n, or NULL. */
static const char *unsupported(const EosinModel *m, const EosinNode *n) {
  if (n->op < 0 || n->op >= EOSIN_OP_COUNT)
    return "unknown op";
  for (int k = 0; k < data_inputs(n); k++) {
    const EosinTensor *t = n->in[k] >= 0 ? m->tensors->pdata[n->in[k]] : NULL;
    if (!t || !t->shape_known)
      return "an input has no known shape";
    if (t->idata && !t->data)
      return "reads an int64 constant as data";
  }
  if (n->op == EOSIN_OP_CONV_TRANSPOSE)
    for (int i = 0; i < 2; i++)
      if (n->a.output_padding[i] < 0 || n->a.output_padding[i] >= n->a.strides[i])
        return "output_padding must be below the stride";
  return NULL;
}

static bool cuda_supports(void *ctx, const EosinModel *m, const EosinNode *n) {
  return unsupported(m, n) == NULL;
}

static CudaStepKind kind_of(EosinOpType op) {
  switch (op) {
  case EOSIN_OP_CONV: return STEP_CONV;
  case EOSIN_OP_CONV_TRANSPOSE: return STEP_CONV_T;
  case EOSIN_OP_MAX_POOL:
  case EOSIN_OP_AVERAGE_POOL:
  case EOSIN_OP_GLOBAL_AVERAGE_POOL: return STEP_POOL;
  case EOSIN_OP_SOFTMAX: return STEP_SOFTMAX;
  case EOSIN_OP_GEMM:
  case EOSIN_OP_MATMUL: return STEP_GEMM;
  case EOSIN_OP_ADD:
  case EOSIN_OP_MUL: return STEP_BINARY;
  case EOSIN_OP_CONCAT: return STEP_CONCAT;
  case EOSIN_OP_RESIZE: return STEP_RESIZE;
  case EOSIN_OP_PAD: return STEP_PAD;
  case EOSIN_OP_FLATTEN:
  case EOSIN_OP_RESHAPE:
  case EOSIN_OP_IDENTITY:
  case EOSIN_OP_DROPOUT: return STEP_NONE;
  default: return STEP_AFFINE; /* BatchNormalization and the activations */
  }
}

/* The activation @n computes (EOSIN_ACT_NONE if it is not one). */
static int act_of(const EosinNode *n, float *p0, float *p1) {
  *p0 = *p1 = 0;
  switch (n->op) {
  case EOSIN_OP_RELU: return EOSIN_ACT_RELU;
  case EOSIN_OP_CLIP: *p0 = n->a.clip_min, *p1 = n->a.clip_max; return EOSIN_ACT_CLIP;
  case EOSIN_OP_SIGMOID: return EOSIN_ACT_SIGMOID;
  case EOSIN_OP_HARD_SIGMOID: *p0 = n->a.alpha, *p1 = n->a.beta; return EOSIN_ACT_HARD_SIGMOID;
  case EOSIN_OP_HARD_SWISH: return EOSIN_ACT_HARD_SWISH;
  default: return EOSIN_ACT_NONE;
  }
}

static bool runs(const EosinNode *n) {
  return !n->removed && n->op != EOSIN_OP_CONSTANT;
}

/* The activation node that alone reads the output of node @i, or -1. */
static int foldable_activation(const EosinModel *m, guint i) {
  const EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
  const EosinTensor *t = m->tensors->pdata[n->out];
  if (t->is_output)
    return -1;
  int found = -1, reads = 0;
  for (guint j = 0; j < m->nodes->len; j++) {
    const EosinNode *r = &g_array_index(m->nodes, EosinNode, j);
    if (!runs(r))
      continue;
    for (int k = 0; k < r->n_in; k++)
      if (r->in[k] == n->out)
        reads++, found = j;
  }
  if (reads != 1)
    return -1;
  const EosinNode *r = &g_array_index(m->nodes, EosinNode, found);
  float p0, p1;
  return r->in[0] == n->out && act_of(r, &p0, &p1) != EOSIN_ACT_NONE ? found : -1;
}

/* Nodes to steps, folding activations into the step before them. */
static bool make_steps(CudaCtx *c, GError **err) {
  const EosinModel *m = c->m;
  g_autofree bool *folded = g_new0(bool, m->nodes->len);
  c->steps = g_new0(CudaStep, MAX(m->nodes->len, 1));
  for (guint i = 0; i < m->nodes->len; i++) {
    const EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (!runs(n) || folded[i])
      continue;
    const char *why = unsupported(m, n);
    if (why) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL,
                  "model %s: node %s (%s): not supported by the CUDA backend: %s", m->path,
                  n->name, _eosin_op_name(n->op), why);
      return false;
    }
    CudaStep *s = &c->steps[c->n_steps++];
    s->node = n;
    s->kind = kind_of(n->op);
    s->out = n->out;
    s->act_kind = act_of(n, &s->act_p0, &s->act_p1);
    /* convolutions and a BatchNormalization not folded into one (DenseNet)
     * apply the activation in their own per-channel pass */
    if (s->kind == STEP_CONV || s->kind == STEP_CONV_T || n->op == EOSIN_OP_BATCH_NORM) {
      int j = foldable_activation(m, i);
      if (j >= 0) {
        folded[j] = true;
        s->act = &g_array_index(m->nodes, EosinNode, j);
        s->out = s->act->out;
        s->act_kind = act_of(s->act, &s->act_p0, &s->act_p1);
      }
    }
  }
  return true;
}

/* Places every activation in the arena by liveness (views share their
 * source's place, constants live in c->dconst) and points c->dev at it. */
static bool plan_memory(CudaCtx *c, GError **err) {
  const EosinModel *m = c->m;
  const EosinNode *node = NULL;
  int nt = (int) m->tensors->len;
  g_autofree int *root = g_new(int, nt);
  g_autofree int *first = g_new(int, nt);
  g_autofree int *last = g_new(int, nt);
  g_autofree size_t *size = g_new0(size_t, nt);
  g_autofree size_t *offset = g_new0(size_t, nt);
  for (int t = 0; t < nt; t++)
    root[t] = t, first[t] = last[t] = -1;
  /* the input is written before step 0 */
  size[m->input] = _eosin_cuda_numel(T(m->input)) * c->es;
  for (int i = 0; i < c->n_steps; i++) {
    const CudaStep *s = &c->steps[i];
    const EosinNode *n = s->node;
    for (int k = 0; k < data_inputs(n); k++) {
      int r = root[n->in[k]];
      last[r] = MAX(last[r], i);
      if (T(r)->data && !_eosin_cuda_const(c, r, err))
        return false;
    }
    if (s->kind == STEP_NONE) {
      root[s->out] = root[n->in[0]];
    } else {
      first[s->out] = last[s->out] = i;
      size[s->out] = _eosin_cuda_numel(T(s->out)) * c->es;
    }
  }
  last[root[m->output]] = c->n_steps; /* read after the last step */
  size_t total = _eosin_cuda_plan_arena(nt, size, first, last, 256, offset);
  if (total) {
    if (!alloc(c, node, &c->arena, total, false, "allocating the activation arena", err))
      return false;
    c->arena_bytes = total;
    /* zeros, so no step ever reads uninitialised bits (NaNs) */
    CUDA_TRY(cudaMemsetAsync(c->arena, 0, total, c->compute), "cudaMemsetAsync");
  }
  for (int t = 0; t < nt; t++) {
    int r = root[t];
    c->dev[t] = size[r] ? (char *) c->arena + offset[r] : c->dconst[r];
  }
  g_debug("cuda: model %s: %d steps, activation arena %.1f MiB", m->path, c->n_steps,
          total / 1048576.0);
  return true;
}

static bool upload_async(CudaCtx *c, const EosinNode *node, void *dst, const void *src,
                         size_t bytes, GError **err) {
  /* on the compute stream, which every later use is ordered after; waited
   * for at once since @src may be a temporary */
  CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->compute), "upload");
  CUDA_TRY(cudaStreamSynchronize(c->compute), "upload");
  return true;
}

bool _eosin_cuda_upload_f32(CudaCtx *c, const EosinNode *node, const float *host, size_t n,
                            float **dst, GError **err) {
  *dst = NULL;
  if (!alloc(c, node, (void **) dst, n * sizeof(float), false, "allocating parameters", err))
    return false;
  return upload_async(c, node, *dst, host, n * sizeof(float), err);
}

static bool upload_const(CudaCtx *c, int t, GError **err) {
  const EosinNode *node = NULL;
  const EosinTensor *x = T(t);
  size_t n = _eosin_cuda_numel(x);
  if (!x->data)
    return _eosin_cuda_fail(err, c, node, "uploading a constant", "it has no float values");
  if (!alloc(c, node, &c->dconst[t], n * c->es, false, "allocating weights", err))
    return false;
  if (!c->fp16)
    return upload_async(c, node, c->dconst[t], x->data, n * sizeof(float), err);
  /* half: upload the floats, convert on the device */
  float *tmp = NULL;
  if (!alloc(c, node, (void **) &tmp, n * sizeof(float), false, "allocating weights", err))
    return false;
  bool ok = upload_async(c, node, tmp, x->data, n * sizeof(float), err);
  int e = ok ? eosin_cuda_convert(tmp, EOSIN_CUDA_F32, c->dconst[t], EOSIN_CUDA_F16, n,
                                  c->compute)
             : 0;
  if (ok && e == 0)
    e = cudaStreamSynchronize(c->compute);
  device_free(c, tmp, n * sizeof(float));
  if (ok && e != 0)
    cudaGetLastError(); /* not the next launch's error */
  if (ok && e != 0)
    return _eosin_cuda_fail(err, c, node, "converting weights to half",
                            cudaGetErrorString((cudaError_t) e));
  return ok;
}

const void *_eosin_cuda_const(CudaCtx *c, int t, GError **err) {
  if (!c->dconst[t] && !upload_const(c, t, err))
    return NULL;
  return c->dconst[t];
}

bool _eosin_cuda_ensure_ws(CudaCtx *c, const EosinNode *node, size_t bytes, GError **err) {
  if (bytes <= c->ws_bytes)
    return true;
  CUDA_TRY(cudaStreamSynchronize(c->compute), "cudaStreamSynchronize");
  device_free(c, c->ws, c->ws_bytes);
  c->ws = NULL;
  c->ws_bytes = 0;
  if (!alloc(c, node, &c->ws, bytes, false, "allocating the cuDNN workspace", err))
    return false;
  c->ws_bytes = bytes;
  return true;
}

/* Parameters of the steps that run on the own kernels. */
static bool prepare_own(CudaCtx *c, CudaStep *s, GError **err) {
  const EosinNode *node = s->node;
  const EosinTensor *x = T(node->in[0]);
  s->channels = s->inner = 1;
  if (node->op == EOSIN_OP_BATCH_NORM) {
    /* (x - mean) * scale / sqrt(var + eps) + bias, per channel as the reference */
    size_t C = (size_t) x->dims[1];
    g_autofree float *p = g_new(float, 3 * C);
    const float *scale = T(node->in[1])->data, *bias = T(node->in[2])->data;
    const float *mean = T(node->in[3])->data, *var = T(node->in[4])->data;
    for (size_t k = 0; k < C; k++) {
      p[k] = mean[k];
      p[C + k] = (float) (scale[k] / sqrt((double) var[k] + node->a.epsilon));
      p[2 * C + k] = bias[k];
    }
    if (!_eosin_cuda_upload_f32(c, node, p, 3 * C, &s->params, err))
      return false;
    s->sub = s->params, s->mul = s->params + C, s->add = s->params + 2 * C;
    s->channels = C;
    s->inner = _eosin_cuda_numel(x) / ((size_t) x->dims[0] * C);
  } else if (s->kind == STEP_RESIZE) {
    const EosinAttrs *a = &node->a;
    s->linear = !strcmp(a->mode, "linear");
    s->coord = !strcmp(a->coord_mode, "align_corners")        ? EOSIN_RESIZE_ALIGN_CORNERS
               : !strcmp(a->coord_mode, "asymmetric")         ? EOSIN_RESIZE_ASYMMETRIC
               : !strcmp(a->coord_mode, "pytorch_half_pixel") ? EOSIN_RESIZE_PYTORCH_HALF_PIXEL
                                                              : EOSIN_RESIZE_HALF_PIXEL;
    s->nearest = !strcmp(a->nearest_mode, "floor")               ? EOSIN_NEAREST_FLOOR
                 : !strcmp(a->nearest_mode, "ceil")              ? EOSIN_NEAREST_CEIL
                 : !strcmp(a->nearest_mode, "round_prefer_ceil") ? EOSIN_NEAREST_ROUND_PREFER_CEIL
                                                                 : EOSIN_NEAREST_ROUND_PREFER_FLOOR;
    s->scale_h = a->resize_scale[0], s->scale_w = a->resize_scale[1];
  }
  return true;
}

static bool exec_own(CudaCtx *c, const CudaStep *s, GError **err) {
  const EosinNode *node = s->node;
  const EosinTensor *x = T(node->in[0]), *y = T(s->out);
  const void *X = c->dev[node->in[0]];
  void *Y = c->dev[s->out];
  switch (s->kind) {
  case STEP_AFFINE:
    KERNEL_TRY(eosin_cuda_affine(X, Y, _eosin_cuda_numel(y), s->inner, s->channels, s->sub,
                                 s->mul, s->add, s->act_kind, s->act_p0, s->act_p1, c->ktype,
                                 c->compute),
               "elementwise kernel");
    return true;
  case STEP_BINARY: {
    const EosinTensor *b = T(node->in[1]);
    KERNEL_TRY(eosin_cuda_binary(X, x->dims, x->ndim, c->dev[node->in[1]], b->dims, b->ndim, Y,
                                 y->dims, y->ndim, node->op == EOSIN_OP_MUL, c->ktype,
                                 c->compute),
               "broadcast kernel");
    return true;
  }
  case STEP_CONCAT: {
    int64_t axis = node->a.axis; /* made non-negative by the graph */
    size_t outer = 1, inner = 1, at = 0;
    for (int d = 0; d < axis; d++)
      outer *= (size_t) y->dims[d];
    for (int d = axis + 1; d < y->ndim; d++)
      inner *= (size_t) y->dims[d];
    for (int k = 0; k < node->n_in; k++) {
      size_t len = (size_t) T(node->in[k])->dims[axis] * inner;
      KERNEL_TRY(eosin_cuda_copy_rows(c->dev[node->in[k]], Y, outer, len,
                                      (size_t) y->dims[axis] * inner, at, c->ktype, c->compute),
                 "concat kernel");
      at += len;
    }
    return true;
  }
  case STEP_RESIZE:
    KERNEL_TRY(eosin_cuda_resize(X, Y, (size_t) (x->dims[0] * x->dims[1]), x->dims[2],
                                 x->dims[3], y->dims[2], y->dims[3], s->scale_h, s->scale_w,
                                 s->linear, s->coord, s->nearest, c->ktype, c->compute),
               "resize kernel");
    return true;
  case STEP_PAD:
    KERNEL_TRY(eosin_cuda_pad2d(X, Y, (size_t) (x->dims[0] * x->dims[1]), x->dims[2], x->dims[3],
                                y->dims[2], y->dims[3], node->a.pads[0], node->a.pads[1],
                                c->ktype, c->compute),
               "pad kernel");
    return true;
  default:
    return _eosin_cuda_fail(err, c, node, "internal", "not an own-kernel step");
  }
}

/* Enqueues every step on the compute stream (@probe: the trial run). */
static bool exec_all(CudaCtx *c, bool probe, GError **err) {
  for (int i = 0; i < c->n_steps; i++) {
    CudaStep *s = &c->steps[i];
    bool ok = true;
    switch (s->kind) {
    case STEP_NONE: break;
    case STEP_CONV:
    case STEP_CONV_T:
    case STEP_POOL:
    case STEP_SOFTMAX:
    case STEP_GEMM: ok = _eosin_cuda_exec_dnn(c, s, probe, err); break;
    default: ok = exec_own(c, s, err); break;
    }
    if (!ok)
      return false;
    /* the trial run waits for each step, so a kernel fault names the step
     * that caused it, not the one that happened to be waited on */
    cudaError_t e = probe ? cudaStreamSynchronize(c->compute) : cudaSuccess;
    if (e != cudaSuccess) {
      cudaGetLastError();
      g_autofree char *what =
          s->act ? g_strdup_printf("trial run (with %s (%s) folded in)", s->act->name,
                                   _eosin_op_name(s->act->op))
                 : g_strdup("trial run");
      return _eosin_cuda_fail(err, c, s->node, what, cudaGetErrorString(e));
    }
  }
  return true;
}

/* Staging for input and output: pinned host buffers, and in fp16 the
 * device float buffers that are converted from and to. */
static bool alloc_staging(CudaCtx *c, GError **err) {
  const EosinNode *node = NULL;
  const EosinTensor *in = T(c->m->input);
  c->n_in = _eosin_cuda_numel(in);
  c->n_out = _eosin_cuda_numel(T(c->m->output));
  if (!alloc(c, node, &c->pin_in, c->n_in * sizeof(float), true, "pinning input staging", err) ||
      !alloc(c, node, &c->pin_out, c->n_out * sizeof(float), true, "pinning output staging", err))
    return false;
  if (c->fp16) {
    if (!alloc(c, node, (void **) &c->stage_in, c->n_in * sizeof(float), false,
               "allocating input staging", err) ||
        !alloc(c, node, (void **) &c->stage_out, c->n_out * sizeof(float), false,
               "allocating output staging", err))
      return false;
  }
  /* tiles for run_rgb when the input is an N x 3 x S x S image batch; the
   * uint8 tiles are a quarter of the float input, so pin_in holds them */
  if (in->ndim == 4 && in->dims[1] == 3 && in->dims[2] == in->dims[3] && in->dims[2] <= INT_MAX)
    if (!alloc(c, node, (void **) &c->rgb, c->n_in, false, "allocating tile staging", err))
      return false;
  return true;
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
  if (!make_steps(c, err) || !plan_memory(c, err))
    return false;
  size_t ws_need = 0, scratch_need = 0;
  for (int i = 0; i < c->n_steps; i++) {
    CudaStep *s = &c->steps[i];
    if (!prepare_own(c, s, err) || !_eosin_cuda_prepare_dnn(c, s, &ws_need, &scratch_need, err))
      return false;
  }
  if (!_eosin_cuda_ensure_ws(c, NULL, ws_need, err))
    return false;
  if (scratch_need) {
    if (!alloc(c, node, &c->scratch, scratch_need, false, "allocating the scratch buffer", err))
      return false;
    c->scratch_bytes = scratch_need;
  }
  if (!alloc_staging(c, err))
    return false;
  /* the trial run (zero input): lazy library loading happens now, and a
   * step cuDNN refuses moves to its next candidate here, not mid-slide */
  if (!exec_all(c, true, err))
    return false;
  CUDA_TRY(cudaStreamSynchronize(c->compute), "trial run");
  c->loaded = true;
  return true;
}

/* Batch items [b0, b1) of chunk k of @parts along a batch of @batch. */
static void chunk(size_t batch, int parts, int k, size_t *b0, size_t *b1) {
  *b0 = batch * k / parts;
  *b1 = batch * (k + 1) / parts;
}

/* Uploads the float input in pieces on the copy stream; the compute
 * stream waits for each (and converts it to half in fp16). */
static bool upload_input(CudaCtx *c, const float *input, GError **err) {
  const EosinNode *node = NULL;
  const EosinTensor *in = T(c->m->input);
  size_t batch = in->ndim ? (size_t) in->dims[0] : 1, per = c->n_in / MAX(batch, 1);
  int parts = (int) MIN(batch, EOSIN_CUDA_CHUNKS);
  void *din = c->dev[c->m->input];
  float *pin = c->pin_in;
  for (int k = 0; k < parts; k++) {
    size_t b0, b1;
    chunk(batch, parts, k, &b0, &b1);
    size_t off = b0 * per, n = (b1 - b0) * per;
    /* this copy into pinned memory overlaps the DMA of the piece before */
    memcpy(pin + off, input + off, n * sizeof(float));
    float *dst = c->fp16 ? c->stage_in + off : (float *) din + off;
    CUDA_TRY(cudaMemcpyAsync(dst, pin + off, n * sizeof(float), cudaMemcpyHostToDevice, c->copy),
             "uploading the input");
    CUDA_TRY(cudaEventRecord(c->ev[k], c->copy), "cudaEventRecord");
    CUDA_TRY(cudaStreamWaitEvent(c->compute, c->ev[k], 0), "cudaStreamWaitEvent");
    if (c->fp16)
      KERNEL_TRY(eosin_cuda_convert(c->stage_in + off, EOSIN_CUDA_F32, (char *) din + off * 2,
                                    EOSIN_CUDA_F16, n, c->compute),
                 "converting the input to half");
  }
  return true;
}

/* Converts (fp16) and downloads the first output, waits for the device. */
static bool download_output(CudaCtx *c, float *output, GError **err) {
  const EosinNode *node = NULL;
  const void *src = c->dev[c->m->output];
  if (c->fp16) {
    KERNEL_TRY(eosin_cuda_convert(src, EOSIN_CUDA_F16, c->stage_out, EOSIN_CUDA_F32, c->n_out,
                                  c->compute),
               "converting the output to float");
    src = c->stage_out;
  }
  CUDA_TRY(cudaMemcpyAsync(c->pin_out, src, c->n_out * sizeof(float), cudaMemcpyDeviceToHost,
                           c->compute),
           "downloading the output");
  CUDA_TRY(cudaStreamSynchronize(c->compute), "running the model");
  CUDA_TRY(cudaStreamSynchronize(c->copy), "uploading the input");
  memcpy(output, c->pin_out, c->n_out * sizeof(float));
  return true;
}

/* After a failed run: nothing may still be using the staging buffers when
 * the next call refills them. Errors here are the ones already reported. */
static bool settle(CudaCtx *c, bool ok) {
  if (!ok) {
    cudaStreamSynchronize(c->copy);
    cudaStreamSynchronize(c->compute);
  }
  return ok;
}

static bool ready(CudaCtx *c, GError **err) {
  const EosinNode *node = NULL;
  if (!c->loaded) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "cuda: run before a successful load");
    return false;
  }
  CUDA_TRY(cudaSetDevice(c->device), "cudaSetDevice");
  return true;
}

static bool cuda_run(void *ctx, const float *input, float *output, GError **err) {
  CudaCtx *c = ctx;
  if (!ready(c, err))
    return false;
  return settle(c, upload_input(c, input, err) && exec_all(c, false, err) &&
                       download_output(c, output, err));
}

/* Uploads @n uint8 tiles in pieces on the copy stream; the compute stream
 * preprocesses each piece (eosin_cuda_preprocess) as it arrives and zeroes
 * the rest of the batch. */
static bool upload_rgb(CudaCtx *c, const uint8_t *rgb, int n, const EosinPreprocess *pp,
                       GError **err) {
  const EosinNode *node = NULL;
  const EosinTensor *in = T(c->m->input);
  int size = (int) in->dims[2];
  size_t tile = (size_t) size * size * 3; /* bytes of one tile, values of one input item */
  void *din = c->dev[c->m->input];
  uint8_t *pin = c->pin_in;
  int parts = MIN(n, EOSIN_CUDA_CHUNKS);
  for (int k = 0; k < parts; k++) {
    size_t t0, t1;
    chunk((size_t) n, parts, k, &t0, &t1);
    size_t off = t0 * tile, bytes = (t1 - t0) * tile;
    memcpy(pin + off, rgb + off, bytes);
    CUDA_TRY(cudaMemcpyAsync(c->rgb + off, pin + off, bytes, cudaMemcpyHostToDevice, c->copy),
             "uploading tiles");
    CUDA_TRY(cudaEventRecord(c->ev[k], c->copy), "cudaEventRecord");
    CUDA_TRY(cudaStreamWaitEvent(c->compute, c->ev[k], 0), "cudaStreamWaitEvent");
    /* a tile is @tile bytes in and @tile values out: off counts both */
    float *dst = c->fp16 ? c->stage_in : (float *) din;
    KERNEL_TRY(eosin_cuda_preprocess(c->rgb + off, (int) (t1 - t0), size, pp->mean, pp->std,
                                     pp->bgr, dst + off, c->compute),
               "preprocessing kernel");
    if (c->fp16)
      KERNEL_TRY(eosin_cuda_convert(c->stage_in + off, EOSIN_CUDA_F32, (char *) din + off * 2,
                                    EOSIN_CUDA_F16, bytes, c->compute),
                 "converting the input to half");
  }
  size_t done = (size_t) n * tile * c->es;
  if (done < c->n_in * c->es)
    CUDA_TRY(cudaMemsetAsync((char *) din + done, 0, c->n_in * c->es - done, c->compute),
             "zeroing the rest of the batch");
  return true;
}

static bool cuda_run_rgb(void *ctx, const uint8_t *rgb, int n, const EosinPreprocess *pp,
                         float *output, GError **err) {
  CudaCtx *c = ctx;
  if (!ready(c, err))
    return false;
  const EosinTensor *in = T(c->m->input);
  if (!c->rgb) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL,
                "model %s: run_rgb needs an N x 3 x S x S input", c->m->path);
    return false;
  }
  if (n < 0 || n > in->dims[0] || !pp || (n > 0 && !rgb)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "cuda: run_rgb: %d tiles for a batch of %" G_GINT64_FORMAT, n, in->dims[0]);
    return false;
  }
  return settle(c, upload_rgb(c, rgb, n, pp, err) && exec_all(c, false, err) &&
                       download_output(c, output, err));
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
    .run = cuda_run,
    .run_rgb = cuda_run_rgb,
    .destroy = cuda_destroy,
    .lost = cuda_lost,
};
