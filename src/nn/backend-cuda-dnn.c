/*
 * backend-cuda-dnn.c — the CUDA backend's library-backed steps other than
 * the convolutions (backend-cuda-conv.c), and the dispatch to both:
 * pooling and GlobalAveragePool (cuDNN where its symmetric-pad geometry
 * says exactly what the model says, the own kernel otherwise), Softmax
 * (cuDNN) and Gemm/MatMul (cuBLAS). Descriptors and algorithms are made
 * once per step at load; running a step only enqueues work on the compute
 * stream. All tensors are NCHW, float or half (CudaCtx.dt).
 *
 * Precision: fp32 convolutions use CUDNN_FMA_MATH and cuBLAS its default
 * math, so no TF32 (fp32 must match the reference to 1e-4); fp16 uses half
 * tensors with float accumulation (cuDNN's PSEUDO_HALF_CONFIG, cuBLAS
 * CUBLAS_COMPUTE_32F) on tensor cores.
 */
#include "nn/backend-cuda-private.h"

#include <limits.h>

#define T(i) _eosin_cuda_tensor(c, (i))

static const float ONE = 1.0f, ZERO = 0.0f;

/* A 4-D NCHW tensor descriptor of the activation type; cuDNN's legacy API
 * takes int dims and at most 2^31 - 1 values per tensor, so a batch too
 * large for it is a device error the caller retries smaller. */
bool _eosin_cuda_tensor_desc(CudaCtx *c, const EosinNode *node, cudnnTensorDescriptor_t *d,
                             const int64_t dims[4], cudnnDataType_t dt, GError **err) {
  int64_t total = 1;
  for (int k = 0; k < 4; k++) {
    if (dims[k] < 1 || dims[k] > INT_MAX)
      return _eosin_cuda_fail(err, c, node, "tensor descriptor", "dimension out of cuDNN's range");
    total *= dims[k];
  }
  if (total > INT_MAX)
    return _eosin_cuda_fail(err, c, node, "tensor descriptor",
                            "more than 2^31 - 1 values: too large for cuDNN at this batch size");
  DNN_TRY(cudnnCreateTensorDescriptor(d), "cudnnCreateTensorDescriptor");
  DNN_TRY(cudnnSetTensor4dDescriptor(*d, CUDNN_TENSOR_NCHW, dt, (int) dims[0], (int) dims[1],
                                     (int) dims[2], (int) dims[3]),
          "cudnnSetTensor4dDescriptor");
  return true;
}

/* cuDNN pooling when its geometry (symmetric pads, no dilation, every
 * window inside the padding; no padding for max) is exactly the model's;
 * the own kernel, which mirrors the reference, otherwise or when cuDNN
 * refuses. */
static bool prepare_pool(CudaCtx *c, CudaStep *s, GError **err) {
  const EosinNode *node = s->node;
  const EosinAttrs *a = &node->a;
  const EosinTensor *x = T(node->in[0]), *y = T(node->out);
  EosinCudaPool *q = &s->pool;
  bool global = node->op == EOSIN_OP_GLOBAL_AVERAGE_POOL;
  *q = (EosinCudaPool){.planes = x->dims[0] * x->dims[1], .h = x->dims[2], .w = x->dims[3],
                       .oh = y->dims[2], .ow = y->dims[3],
                       .is_max = node->op == EOSIN_OP_MAX_POOL,
                       .count_include_pad = global || a->count_include_pad};
  for (int i = 0; i < 2; i++) {
    q->kernel[i] = global ? x->dims[2 + i] : a->kernel[i];
    q->strides[i] = global ? 1 : a->strides[i];
    q->dilations[i] = global ? 1 : a->dilations[i];
    q->pads[i] = global ? 0 : a->pads[i];
    q->pads[2 + i] = global ? 0 : a->pads[2 + i];
  }
  s->own_pool = true;
  EosinCudaPadPlan p[2];
  for (int i = 0; i < 2; i++)
    if (q->dilations[i] != 1 || q->kernel[i] > INT_MAX || q->strides[i] > INT_MAX ||
        !_eosin_cuda_pad_plan(i ? q->w : q->h, q->kernel[i], q->strides[i], 1,
                              q->pads[i], q->pads[2 + i], i ? q->ow : q->oh, &p[i]) ||
        p[i].pre_begin || p[i].pre_end || p[i].sym > INT_MAX ||
        /* what padding contributes to CUDNN_POOLING_MAX is not documented
         * (the model skips it; zeros would differ for negative inputs) */
        (q->is_max && p[i].sym))
      return true;
  if (!_eosin_cuda_tensor_desc(c, node, &s->x_desc, x->dims, c->dt, err) ||
      !_eosin_cuda_tensor_desc(c, node, &s->y_desc, y->dims, c->dt, err))
    return false;
  cudnnPoolingMode_t mode = q->is_max ? CUDNN_POOLING_MAX
                            : q->count_include_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                                   : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
  DNN_TRY(cudnnCreatePoolingDescriptor(&s->pool_desc), "cudnnCreatePoolingDescriptor");
  int d[4];
  if (cudnnSetPooling2dDescriptor(s->pool_desc, mode, CUDNN_NOT_PROPAGATE_NAN, (int) q->kernel[0],
                                  (int) q->kernel[1], (int) p[0].sym, (int) p[1].sym,
                                  (int) q->strides[0], (int) q->strides[1]) !=
          CUDNN_STATUS_SUCCESS ||
      cudnnGetPooling2dForwardOutputDim(s->pool_desc, s->x_desc, &d[0], &d[1], &d[2], &d[3]) !=
          CUDNN_STATUS_SUCCESS ||
      d[0] != y->dims[0] || d[1] != y->dims[1] || d[2] != y->dims[2] || d[3] != y->dims[3])
    return true; /* the own kernel it is */
  s->own_pool = false;
  return true;
}

/* Softmax over one axis (opset 13) or the flattened trailing axes (opset
 * < 13), as the reference: cuDNN's CHANNEL mode on an (outer, len, inner,
 * 1) view of the tensor. */
static bool prepare_softmax(CudaCtx *c, CudaStep *s, GError **err) {
  const EosinNode *node = s->node;
  const EosinTensor *x = T(node->in[0]);
  int64_t axis = node->a.axis < 0 ? node->a.axis + x->ndim : node->a.axis;
  if (axis < 0 || axis >= x->ndim)
    return _eosin_cuda_fail(err, c, node, "softmax", "axis out of range");
  int64_t v[4] = {1, 1, 1, 1};
  for (int d = 0; d < x->ndim; d++)
    v[d < axis ? 0 : d == axis || c->m->opset < 13 ? 1 : 2] *= x->dims[d];
  return _eosin_cuda_tensor_desc(c, node, &s->x_desc, v, c->dt, err);
}

static bool prepare_gemm(CudaCtx *c, CudaStep *s, GError **err) {
  const EosinNode *node = s->node;
  const EosinTensor *A = T(node->in[0]), *y = T(node->out);
  bool gemm = node->op == EOSIN_OP_GEMM;
  s->ta = gemm && node->a.trans_a;
  s->tb = gemm && node->a.trans_b;
  s->alpha = gemm ? node->a.alpha : 1;
  s->beta = gemm ? node->a.beta : 0;
  int64_t M = y->dims[0], N = y->dims[1], K = s->ta ? A->dims[0] : A->dims[1];
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX)
    return _eosin_cuda_fail(err, c, node, "GEMM", "dimension out of cuBLAS's int range");
  s->gm = (int) M, s->gn = (int) N, s->gk = (int) K;
  if (!(s->w = _eosin_cuda_const(c, node->in[1], err)))
    return false;
  if (gemm && node->n_in > 2 && node->in[2] >= 0) {
    const EosinTensor *b = T(node->in[2]);
    s->n_bias = _eosin_cuda_numel(b);
    if (!_eosin_cuda_upload_f32(c, node, b->data, s->n_bias, &s->params, err))
      return false;
    s->add = s->params;
  }
  return true;
}

bool _eosin_cuda_prepare_dnn(CudaCtx *c, CudaStep *s, size_t *ws_need, size_t *scratch_need,
                             GError **err) {
  switch (s->kind) {
  case STEP_CONV: return _eosin_cuda_prepare_conv(c, s, ws_need, scratch_need, err);
  case STEP_CONV_T: return _eosin_cuda_prepare_conv_t(c, s, ws_need, scratch_need, err);
  case STEP_POOL: return prepare_pool(c, s, err);
  case STEP_SOFTMAX: return prepare_softmax(c, s, err);
  case STEP_GEMM: return prepare_gemm(c, s, err);
  default: return true;
  }
}

static bool exec_pool(CudaCtx *c, CudaStep *s, bool probe, GError **err) {
  const EosinNode *node = s->node;
  const void *x = c->dev[node->in[0]];
  void *y = c->dev[s->out];
  if (!s->own_pool) {
    cudnnStatus_t st = probe && (c->refuse & EOSIN_CUDA_REFUSE_POOL)
                           ? CUDNN_STATUS_NOT_SUPPORTED
                           : cudnnPoolingForward(c->dnn, s->pool_desc, &ONE, s->x_desc, x,
                                                 &ZERO, s->y_desc, y);
    if (st == CUDNN_STATUS_SUCCESS)
      return true;
    if (!probe)
      return _eosin_cuda_fail(err, c, node, "cudnnPoolingForward", cudnnGetErrorString(st));
    g_debug("cuda: node %s: cudnnPoolingForward: %s; using the own kernel", node->name,
            cudnnGetErrorString(st));
    s->own_pool = true;
    c->n_own_pool++;
  }
  KERNEL_TRY(eosin_cuda_pool2d(x, y, &s->pool, c->ktype, c->compute), "pooling kernel");
  return true;
}

/* Row-major Y = op(A) op(B) through column-major cuBLAS: a row-major
 * matrix is its transpose column-major, so it computes
 * Y^T (N x M) = op(B)^T (N x K) op(A)^T (K x M). */
static bool exec_gemm(CudaCtx *c, CudaStep *s, GError **err) {
  const EosinNode *node = s->node;
  const void *A = c->dev[node->in[0]];
  void *Y = c->dev[s->out];
  float beta = 0;
  if (s->add) {
    /* the bias goes in Y first; the GEMM then adds alpha op(A) op(B) to beta Y */
    KERNEL_TRY(eosin_cuda_fill_rows(Y, (size_t) s->gm, (size_t) s->gn, s->add, s->n_bias,
                                    c->ktype, c->compute),
               "bias kernel");
    beta = s->beta;
  }
  cublasOperation_t op_b = s->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_a = s->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  /* leading dimensions of the stored matrices: B is K x N (N x K when
   * transposed), A is M x K (K x M when transposed), both row-major */
  int ldb = s->tb ? s->gk : s->gn, lda = s->ta ? s->gm : s->gk;
  if (c->fp16)
    BLAS_TRY(cublasGemmEx(c->blas, op_b, op_a, s->gn, s->gm, s->gk, &s->alpha, s->w, CUDA_R_16F,
                          ldb, A, CUDA_R_16F, lda, &beta, Y, CUDA_R_16F, s->gn,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
             "cublasGemmEx");
  else
    BLAS_TRY(cublasSgemm(c->blas, op_b, op_a, s->gn, s->gm, s->gk, &s->alpha, s->w, ldb, A, lda,
                         &beta, Y, s->gn),
             "cublasSgemm");
  return true;
}

bool _eosin_cuda_exec_dnn(CudaCtx *c, CudaStep *s, bool probe, GError **err) {
  const EosinNode *node = s->node;
  switch (s->kind) {
  case STEP_CONV:
  case STEP_CONV_T: return _eosin_cuda_exec_conv(c, s, probe, err);
  case STEP_POOL: return exec_pool(c, s, probe, err);
  case STEP_SOFTMAX:
    DNN_TRY(cudnnSoftmaxForward(c->dnn, CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_CHANNEL, &ONE,
                                s->x_desc, c->dev[node->in[0]], &ZERO, s->x_desc,
                                c->dev[s->out]),
            "cudnnSoftmaxForward");
    return true;
  case STEP_GEMM: return exec_gemm(c, s, err);
  default: return _eosin_cuda_fail(err, c, node, "internal", "not a cuDNN/cuBLAS step");
  }
}

void _eosin_cuda_step_free(CudaStep *s) {
  if (s->x_desc)
    cudnnDestroyTensorDescriptor(s->x_desc);
  if (s->y_desc)
    cudnnDestroyTensorDescriptor(s->y_desc);
  if (s->bias_desc)
    cudnnDestroyTensorDescriptor(s->bias_desc);
  if (s->w_desc)
    cudnnDestroyFilterDescriptor(s->w_desc);
  if (s->conv_desc)
    cudnnDestroyConvolutionDescriptor(s->conv_desc);
  if (s->act_desc)
    cudnnDestroyActivationDescriptor(s->act_desc);
  if (s->pool_desc)
    cudnnDestroyPoolingDescriptor(s->pool_desc);
  if (s->params)
    cudaFree(s->params);
  memset(s, 0, sizeof *s);
}
