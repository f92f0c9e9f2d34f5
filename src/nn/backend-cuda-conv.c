/*
 * backend-cuda-conv.c — the CUDA backend's convolution steps on cuDNN:
 * Conv as cuDNN's forward convolution (bias + Relu in its fused call where
 * it can), ConvTranspose as the backward-data pass of the convolution it
 * inverts; padding cuDNN cannot express (asymmetric) done explicitly
 * through the scratch buffer. Algorithms are measured once per geometry
 * at load, kept best first so the trial run can move a refused step to
 * the next one.
 *
 * Precision: fp32 convolutions use CUDNN_FMA_MATH (no TF32: fp32 must
 * match the reference to 1e-4) and no FFT or Winograd algorithm (they
 * round in their transforms); fp16 uses half tensors with float
 * accumulation on tensor cores.
 */
#include "nn/backend-cuda-private.h"

#include <limits.h>

#define T(i) _eosin_cuda_tensor(c, (i))

static const float ONE = 1.0f, ZERO = 0.0f;

/* Workspace one convolution may ask for: a quarter of the free memory,
 * at most 1 GiB. */
static size_t ws_limit(void) {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
    return 256u << 20;
  return MIN(free_b / 4, (size_t) 1 << 30);
}

static bool is_tensor_op(cudnnMathType_t m) {
  return m == CUDNN_TENSOR_OP_MATH || m == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
}

/* FFT and Winograd algorithms round in their transforms, which adds up
 * over a deep network beyond fp32's 1e-4; the GEMM family does not. */
static bool transform_algo(CudaStepKind kind, int algo) {
  if (kind == STEP_CONV)
    return algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT || algo == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
           algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD ||
           algo == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
  return algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT ||
         algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
         algo == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}

/* What cudnnFind* / _v7 said of one algorithm (forward and backward-data
 * results in one form). */
typedef struct {
  int algo;
  cudnnStatus_t status;
  size_t memory;
  cudnnMathType_t math;
  cudnnDeterminism_t det;
} Found;

/* Keeps the found algorithms that ran and fit the workspace limit, best
 * first. @strict also asks for the same bits every run (some
 * backward-data algorithms accumulate with atomics) and, in fp32, no FFT
 * or Winograd; fp32 never takes tensor cores (TF32). */
static void keep_algos(CudaCtx *c, CudaStep *s, const Found *f, int n, size_t limit,
                       bool strict) {
  for (int i = 0; i < n && s->n_algos < EOSIN_CUDA_MAX_ALGOS; i++) {
    if (f[i].status != CUDNN_STATUS_SUCCESS || f[i].memory > limit)
      continue;
    if (!c->fp16 && is_tensor_op(f[i].math))
      continue;
    if (strict && (f[i].det != CUDNN_DETERMINISTIC ||
                   (!c->fp16 && transform_algo(s->kind, f[i].algo))))
      continue;
    s->algos[s->n_algos] = f[i].algo;
    s->maths[s->n_algos] = c->fp16 ? f[i].math : CUDNN_FMA_MATH;
    s->ws_bytes[s->n_algos] = f[i].memory;
    s->n_algos++;
  }
}

/* The math type and workspace of the algorithm in use: the descriptor must
 * carry the math type the algorithm was found with. */
static bool use_algo(CudaCtx *c, CudaStep *s, GError **err) {
  const EosinNode *node = s->node;
  DNN_TRY(cudnnSetConvolutionMathType(s->conv_desc, s->maths[s->algo_at]),
          "cudnnSetConvolutionMathType");
  size_t bytes = 0;
  if (s->kind == STEP_CONV)
    DNN_TRY(cudnnGetConvolutionForwardWorkspaceSize(c->dnn, s->x_desc, s->w_desc, s->conv_desc,
                                                    s->y_desc,
                                                    (cudnnConvolutionFwdAlgo_t) s->algos[s->algo_at],
                                                    &bytes),
            "cudnnGetConvolutionForwardWorkspaceSize");
  else
    DNN_TRY(cudnnGetConvolutionBackwardDataWorkspaceSize(
                c->dnn, s->w_desc, s->x_desc, s->conv_desc, s->y_desc,
                (cudnnConvolutionBwdDataAlgo_t) s->algos[s->algo_at], &bytes),
            "cudnnGetConvolutionBackwardDataWorkspaceSize");
  s->ws_bytes[s->algo_at] = MAX(s->ws_bytes[s->algo_at], bytes);
  return true;
}

/* Algorithm candidates for convolution step @s, best first: copied from an
 * earlier step of the same geometry, else measured by cudnnFind* (the
 * heuristics when that fails). */
static bool choose_algos(CudaCtx *c, CudaStep *s, GError **err) {
  const EosinNode *node = s->node;
  for (CudaStep *p = c->steps; p < s; p++)
    if (p->kind == s->kind && p->n_algos && !memcmp(p->key, s->key, sizeof s->key)) {
      memcpy(s->algos, p->algos, sizeof s->algos);
      memcpy(s->maths, p->maths, sizeof s->maths);
      memcpy(s->ws_bytes, p->ws_bytes, sizeof s->ws_bytes);
      s->n_algos = p->n_algos;
      return use_algo(c, s, err);
    }
  int max = 0, got = 0;
  Found found[16];
  cudnnStatus_t st;
  if (s->kind == STEP_CONV) {
    DNN_TRY(cudnnGetConvolutionForwardAlgorithmMaxCount(c->dnn, &max),
            "cudnnGetConvolutionForwardAlgorithmMaxCount");
    max = CLAMP(max, 1, 16);
    cudnnConvolutionFwdAlgoPerf_t perf[16];
    st = cudnnFindConvolutionForwardAlgorithm(c->dnn, s->x_desc, s->w_desc, s->conv_desc,
                                              s->y_desc, max, &got, perf);
    if (st != CUDNN_STATUS_SUCCESS)
      DNN_TRY(cudnnGetConvolutionForwardAlgorithm_v7(c->dnn, s->x_desc, s->w_desc, s->conv_desc,
                                                     s->y_desc, max, &got, perf),
              "cudnnGetConvolutionForwardAlgorithm_v7");
    got = CLAMP(got, 0, max);
    for (int i = 0; i < got; i++)
      found[i] = (Found){perf[i].algo, perf[i].status, perf[i].memory, perf[i].mathType,
                         perf[i].determinism};
  } else {
    DNN_TRY(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(c->dnn, &max),
            "cudnnGetConvolutionBackwardDataAlgorithmMaxCount");
    max = CLAMP(max, 1, 16);
    cudnnConvolutionBwdDataAlgoPerf_t perf[16];
    st = cudnnFindConvolutionBackwardDataAlgorithm(c->dnn, s->w_desc, s->x_desc, s->conv_desc,
                                                   s->y_desc, max, &got, perf);
    if (st != CUDNN_STATUS_SUCCESS)
      DNN_TRY(cudnnGetConvolutionBackwardDataAlgorithm_v7(c->dnn, s->w_desc, s->x_desc,
                                                          s->conv_desc, s->y_desc, max, &got,
                                                          perf),
              "cudnnGetConvolutionBackwardDataAlgorithm_v7");
    got = CLAMP(got, 0, max);
    for (int i = 0; i < got; i++)
      found[i] = (Found){perf[i].algo, perf[i].status, perf[i].memory, perf[i].mathType,
                         perf[i].determinism};
  }
  size_t limit = ws_limit();
  keep_algos(c, s, found, got, limit, true);
  if (!s->n_algos) {
    /* better a GPU result that may differ in the last bits run to run */
    g_debug("cuda: node %s: no deterministic GEMM-family algorithm; relaxing", node->name);
    keep_algos(c, s, found, got, limit, false);
  }
  if (!s->n_algos)
    return _eosin_cuda_fail(err, c, node, "choosing a convolution algorithm",
                            "cuDNN offers none that runs within the workspace limit");
  return use_algo(c, s, err);
}

/* The convolution descriptor shared by Conv and ConvTranspose. */
static bool conv_desc(CudaCtx *c, CudaStep *s, int64_t pad_h, int64_t pad_w, GError **err) {
  const EosinNode *node = s->node;
  const EosinAttrs *a = &node->a;
  int64_t v[] = {pad_h, pad_w, a->strides[0], a->strides[1], a->dilations[0], a->dilations[1],
                 a->group};
  for (size_t k = 0; k < G_N_ELEMENTS(v); k++)
    if (v[k] < 0 || v[k] > INT_MAX)
      return _eosin_cuda_fail(err, c, node, "convolution descriptor", "value out of range");
  DNN_TRY(cudnnCreateConvolutionDescriptor(&s->conv_desc), "cudnnCreateConvolutionDescriptor");
  /* ONNX Conv is a cross-correlation; accumulate in float also for half */
  DNN_TRY(cudnnSetConvolution2dDescriptor(s->conv_desc, (int) pad_h, (int) pad_w,
                                          (int) a->strides[0], (int) a->strides[1],
                                          (int) a->dilations[0], (int) a->dilations[1],
                                          CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
          "cudnnSetConvolution2dDescriptor");
  DNN_TRY(cudnnSetConvolutionGroupCount(s->conv_desc, (int) a->group),
          "cudnnSetConvolutionGroupCount");
  DNN_TRY(cudnnSetConvolutionMathType(s->conv_desc,
                                      c->fp16 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH),
          "cudnnSetConvolutionMathType");
  /* filter K x C/group x kh x kw: ONNX's Conv weights, and ConvTranspose's
   * (C_in x C_out/group x kh x kw) as the forward convolution it inverts */
  const EosinTensor *w = T(node->in[1]);
  for (int k = 0; k < 4; k++)
    if (w->dims[k] > INT_MAX)
      return _eosin_cuda_fail(err, c, node, "filter descriptor", "dimension out of range");
  DNN_TRY(cudnnCreateFilterDescriptor(&s->w_desc), "cudnnCreateFilterDescriptor");
  DNN_TRY(cudnnSetFilter4dDescriptor(s->w_desc, c->dt, CUDNN_TENSOR_NCHW, (int) w->dims[0],
                                     (int) w->dims[1], (int) w->dims[2], (int) w->dims[3]),
          "cudnnSetFilter4dDescriptor");
  s->w = _eosin_cuda_const(c, node->in[1], err);
  return s->w != NULL;
}

/* cuDNN's output size for (x_desc, w_desc, conv_desc) must be @want: a
 * cheap check of the padding arithmetic. */
static bool check_dims(CudaCtx *c, CudaStep *s, cudnnTensorDescriptor_t in, const int64_t want[4],
                       GError **err) {
  const EosinNode *node = s->node;
  int d[4];
  DNN_TRY(cudnnGetConvolution2dForwardOutputDim(s->conv_desc, in, s->w_desc, &d[0], &d[1], &d[2],
                                                &d[3]),
          "cudnnGetConvolution2dForwardOutputDim");
  for (int k = 0; k < 4; k++)
    if (d[k] != want[k]) {
      g_autofree char *msg = g_strdup_printf(
          "cuDNN computes %dx%dx%dx%d, the graph %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
          "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT, d[0], d[1], d[2], d[3], want[0], want[1],
          want[2], want[3]);
      return _eosin_cuda_fail(err, c, node, "internal check of the convolution's shape", msg);
    }
  return true;
}

/* The bias (if any) as float parameters of the affine pass after the
 * convolution. */
static bool conv_bias(CudaCtx *c, CudaStep *s, GError **err) {
  const EosinNode *node = s->node;
  if (node->n_in < 3 || node->in[2] < 0)
    return true;
  const EosinTensor *b = T(node->in[2]);
  if (!_eosin_cuda_upload_f32(c, node, b->data, _eosin_cuda_numel(b), &s->params, err))
    return false;
  s->add = s->params;
  return true;
}

/* Conv: cuDNN forward, asymmetric pads made explicit into the scratch,
 * bias + Relu in cuDNN's fused call where it takes them. */
bool _eosin_cuda_prepare_conv(CudaCtx *c, CudaStep *s, size_t *ws_need, size_t *scratch_need,
                              GError **err) {
  const EosinNode *node = s->node;
  const EosinAttrs *a = &node->a;
  const EosinTensor *x = T(node->in[0]), *w = T(node->in[1]), *y = T(node->out);
  EosinCudaPadPlan p[2];
  for (int i = 0; i < 2; i++)
    if (!_eosin_cuda_pad_plan(x->dims[2 + i], w->dims[2 + i], a->strides[i], a->dilations[i],
                              a->pads[i], a->pads[2 + i], y->dims[2 + i], &p[i]))
      return _eosin_cuda_fail(err, c, node, "planning the padding", "inconsistent geometry");
  /* cuDNN pads both ends alike: the rest is explicit, into the scratch */
  s->pre[0] = p[0].pre_begin, s->pre[1] = p[1].pre_begin;
  s->pre[2] = p[0].pre_end, s->pre[3] = p[1].pre_end;
  s->use_scratch = s->pre[0] || s->pre[1] || s->pre[2] || s->pre[3];
  int64_t xd[4] = {x->dims[0], x->dims[1], x->dims[2] + s->pre[0] + s->pre[2],
                   x->dims[3] + s->pre[1] + s->pre[3]};
  memcpy(s->sdims, xd, sizeof xd);
  if (s->use_scratch)
    *scratch_need = MAX(*scratch_need, (size_t) (xd[0] * xd[1] * xd[2] * xd[3]) * c->es);
  if (!_eosin_cuda_tensor_desc(c, node, &s->x_desc, xd, c->dt, err) ||
      !_eosin_cuda_tensor_desc(c, node, &s->y_desc, y->dims, c->dt, err) ||
      !conv_desc(c, s, p[0].sym, p[1].sym, err) || !check_dims(c, s, s->x_desc, y->dims, err) ||
      !conv_bias(c, s, err))
    return false;
  /* bias + Relu in cuDNN's fused call (it takes the bias in the data type) */
  if (s->add && s->act_kind == EOSIN_ACT_RELU) {
    int64_t bd[4] = {1, y->dims[1], 1, 1};
    if (!_eosin_cuda_tensor_desc(c, node, &s->bias_desc, bd, c->dt, err))
      return false;
    if (!(s->bias_t = _eosin_cuda_const(c, node->in[2], err)))
      return false;
    DNN_TRY(cudnnCreateActivationDescriptor(&s->act_desc), "cudnnCreateActivationDescriptor");
    DNN_TRY(cudnnSetActivationDescriptor(s->act_desc, CUDNN_ACTIVATION_RELU,
                                         CUDNN_NOT_PROPAGATE_NAN, 0.0),
            "cudnnSetActivationDescriptor");
    s->fused = true;
  }
  int64_t key[] = {STEP_CONV, xd[0], xd[1], xd[2], xd[3], w->dims[0], w->dims[1], w->dims[2],
                   w->dims[3], p[0].sym, p[1].sym, a->strides[0], a->strides[1],
                   a->dilations[0], a->dilations[1], a->group};
  memcpy(s->key, key, sizeof key);
  if (!choose_algos(c, s, err))
    return false;
  *ws_need = MAX(*ws_need, s->ws_bytes[s->algo_at]);
  return true;
}

/* ConvTranspose is the backward-data pass of the convolution it inverts:
 * dy = its input, dx = its output, same weights. cuDNN pads the output
 * symmetrically, so asymmetric pads compute the larger output into the
 * scratch and crop. */
bool _eosin_cuda_prepare_conv_t(CudaCtx *c, CudaStep *s, size_t *ws_need,
                                size_t *scratch_need, GError **err) {
  const EosinNode *node = s->node;
  const EosinAttrs *a = &node->a;
  const EosinTensor *x = T(node->in[0]), *w = T(node->in[1]), *y = T(node->out);
  int64_t sym[2], full[2];
  for (int i = 0; i < 2; i++) {
    sym[i] = MIN(a->pads[i], a->pads[2 + i]);
    /* the uncropped output: s (in - 1) + output_padding + d (k - 1) + 1 */
    full[i] = a->strides[i] * (x->dims[2 + i] - 1) + a->output_padding[i] +
              a->dilations[i] * (w->dims[2 + i] - 1) + 1 - 2 * sym[i];
    s->pre[i] = a->pads[i] - sym[i]; /* crop at the start */
    if (full[i] < y->dims[2 + i] + s->pre[i])
      return _eosin_cuda_fail(err, c, node, "planning the padding", "inconsistent geometry");
  }
  s->use_scratch = full[0] != y->dims[2] || full[1] != y->dims[3];
  int64_t od[4] = {y->dims[0], y->dims[1], full[0], full[1]};
  memcpy(s->sdims, od, sizeof od);
  if (s->use_scratch)
    *scratch_need = MAX(*scratch_need, (size_t) (od[0] * od[1] * od[2] * od[3]) * c->es);
  /* x_desc: dy (the input), y_desc: dx (the whole output) */
  if (!_eosin_cuda_tensor_desc(c, node, &s->x_desc, x->dims, c->dt, err) ||
      !_eosin_cuda_tensor_desc(c, node, &s->y_desc, od, c->dt, err) ||
      !conv_desc(c, s, sym[0], sym[1], err) || !check_dims(c, s, s->y_desc, x->dims, err) ||
      !conv_bias(c, s, err))
    return false;
  int64_t key[] = {STEP_CONV_T, x->dims[0], x->dims[1], x->dims[2], x->dims[3], w->dims[0],
                   w->dims[1], w->dims[2], w->dims[3], od[2], od[3], sym[0], sym[1],
                   a->strides[0], a->strides[1], a->dilations[0], a->dilations[1], a->group};
  memcpy(s->key, key, sizeof key);
  if (!choose_algos(c, s, err))
    return false;
  *ws_need = MAX(*ws_need, s->ws_bytes[s->algo_at]);
  return true;
}

/* One try of a convolution step's cuDNN call with its current choices. */
static cudnnStatus_t conv_call(CudaCtx *c, CudaStep *s, const void *x, void *y) {
  int at = s->algo_at;
  if (s->kind == STEP_CONV_T)
    return cudnnConvolutionBackwardData(c->dnn, &ONE, s->w_desc, s->w, s->x_desc, x, s->conv_desc,
                                        (cudnnConvolutionBwdDataAlgo_t) s->algos[at], c->ws,
                                        s->ws_bytes[at], &ZERO, s->y_desc, y);
  if (s->fused)
    /* y = relu(conv(x) + bias): alpha2 = 0 so z (y itself, as cuDNN
     * requires a z) does not contribute */
    return cudnnConvolutionBiasActivationForward(
        c->dnn, &ONE, s->x_desc, x, s->w_desc, s->w, s->conv_desc,
        (cudnnConvolutionFwdAlgo_t) s->algos[at], c->ws, s->ws_bytes[at], &ZERO, s->y_desc, y,
        s->bias_desc, s->bias_t, s->act_desc, s->y_desc, y);
  return cudnnConvolutionForward(c->dnn, &ONE, s->x_desc, x, s->w_desc, s->w, s->conv_desc,
                                 (cudnnConvolutionFwdAlgo_t) s->algos[at], c->ws, s->ws_bytes[at],
                                 &ZERO, s->y_desc, y);
}

/* Enqueues convolution step @s; in the trial run (@probe) a refusal moves
 * it to the unfused path, then to its next algorithm. */
bool _eosin_cuda_exec_conv(CudaCtx *c, CudaStep *s, bool probe, GError **err) {
  const EosinNode *node = s->node;
  const EosinTensor *xt = T(node->in[0]);
  const void *x = c->dev[node->in[0]];
  void *out = c->dev[s->out];
  void *y = out;
  if (s->kind == STEP_CONV && s->use_scratch) {
    KERNEL_TRY(eosin_cuda_pad2d(x, c->scratch, (size_t) (xt->dims[0] * xt->dims[1]), xt->dims[2],
                                xt->dims[3], s->sdims[2], s->sdims[3], s->pre[0], s->pre[1],
                                c->ktype, c->compute),
               "explicit padding kernel");
    x = c->scratch;
  }
  if (s->kind == STEP_CONV_T && s->use_scratch)
    y = c->scratch;
  for (;;) {
    /* the test hooks (backend.h) refuse in the trial run only, and only
     * where a next candidate exists */
    bool refused = probe && ((s->fused && (c->refuse & EOSIN_CUDA_REFUSE_FUSED)) ||
                             (!s->fused && s->algo_at == 0 && s->n_algos > 1 &&
                              (c->refuse & EOSIN_CUDA_REFUSE_FIRST_ALGO)));
    cudnnStatus_t st = refused ? CUDNN_STATUS_NOT_SUPPORTED : conv_call(c, s, x, y);
    if (st == CUDNN_STATUS_SUCCESS)
      break;
    const char *what = s->kind == STEP_CONV_T ? "cudnnConvolutionBackwardData"
                       : s->fused             ? "cudnnConvolutionBiasActivationForward"
                                              : "cudnnConvolutionForward";
    if (!probe)
      return _eosin_cuda_fail(err, c, node, what, cudnnGetErrorString(st));
    /* the trial run at load: the unfused path, then the next algorithm */
    g_debug("cuda: node %s: %s: %s; trying the next candidate", node->name, what,
            cudnnGetErrorString(st));
    if (s->fused) {
      s->fused = false;
      c->n_unfused++;
    } else if (s->algo_at + 1 < s->n_algos) {
      s->algo_at++;
      c->n_next_algo++;
      if (!use_algo(c, s, err) || !_eosin_cuda_ensure_ws(c, node, s->ws_bytes[s->algo_at], err))
        return false;
    } else {
      return _eosin_cuda_fail(err, c, node, what, cudnnGetErrorString(st));
    }
  }
  const EosinTensor *yt = T(s->out);
  if (s->kind == STEP_CONV_T && s->use_scratch)
    KERNEL_TRY(eosin_cuda_pad2d(c->scratch, out, (size_t) (yt->dims[0] * yt->dims[1]),
                                s->sdims[2], s->sdims[3], yt->dims[2], yt->dims[3], -s->pre[0],
                                -s->pre[1], c->ktype, c->compute),
               "crop kernel");
  if (!s->fused && (s->add || s->act_kind != EOSIN_ACT_NONE))
    KERNEL_TRY(eosin_cuda_affine(out, out, _eosin_cuda_numel(yt),
                                 (size_t) (yt->dims[2] * yt->dims[3]), (size_t) yt->dims[1], NULL,
                                 NULL, s->add, s->act_kind, s->act_p0, s->act_p1, c->ktype,
                                 c->compute),
               "bias/activation kernel");
  return true;
}
