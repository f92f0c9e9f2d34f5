/*
 * backend-cuda-steps.c — the CUDA backend's plan of steps and its own-kernel
 * steps: which nodes it can run, the nodes made steps at load (a
 * Relu/Clip/Sigmoid/HardSigmoid/HardSwish that alone reads a convolution's
 * or BatchNormalization's output folded into it; Identity, Dropout,
 * Flatten and Reshape views of their input), the parameters and launches
 * of the steps on Eosin's kernels (kernels/ops.cu: affine passes,
 * broadcasts, concat, resize, pad), and the enqueueing of every step, the
 * trial run waiting after each so a fault names its step.
 */
#include "nn/backend-cuda-private.h"

#include <math.h>

#define T(i) _eosin_cuda_tensor(c, (i))

/* The inputs @n reads as activations (not weights, biases or shapes). */
int _eosin_cuda_data_inputs(const EosinNode *n) {
  switch (n->op) {
  case EOSIN_OP_CONSTANT: return 0;
  case EOSIN_OP_ADD:
  case EOSIN_OP_MUL: return 2;
  case EOSIN_OP_CONCAT: return n->n_in;
  default: return 1;
  }
}

/* Why the backend cannot run @n, or NULL. */
const char *_eosin_cuda_unsupported(const EosinModel *m, const EosinNode *n) {
  if (n->op < 0 || n->op >= EOSIN_OP_COUNT)
    return "unknown op";
  for (int k = 0; k < _eosin_cuda_data_inputs(n); k++) {
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
bool _eosin_cuda_make_steps(CudaCtx *c, GError **err) {
  const EosinModel *m = c->m;
  g_autofree bool *folded = g_new0(bool, m->nodes->len);
  c->steps = g_new0(CudaStep, MAX(m->nodes->len, 1));
  for (guint i = 0; i < m->nodes->len; i++) {
    const EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (!runs(n) || folded[i])
      continue;
    const char *why = _eosin_cuda_unsupported(m, n);
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

/* Parameters of the steps that run on the own kernels. */
bool _eosin_cuda_prepare_own(CudaCtx *c, CudaStep *s, GError **err) {
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
bool _eosin_cuda_exec_all(CudaCtx *c, bool probe, GError **err) {
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
