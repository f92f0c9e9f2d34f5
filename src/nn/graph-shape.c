/*
 * graph-shape.c — shape inference: one rule per op (a table indexed by
 * EosinOpType, as ggml and ONNX Runtime keep theirs), each computing the
 * output shape from the input shapes and the attributes, checking the
 * op's constant inputs, and resolving what the backends then read as
 * plain attributes (negative axes made non-negative, Clip's bounds, a
 * convolution's kernel from its weights, Resize's scales, Pad's pads).
 * graph.c runs the rules in execution order; an error names the node.
 */
#include "nn/graph-private.h"

#include <math.h>

/* A rule: @x is the node's first input (shape known), @y its output, @d
 * a copy of x's dims to edit into y's. */
typedef bool (*ShapeRule)(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                          int64_t *d, GError **err);

static EosinTensor *T(EosinModel *m, int i) {
  return i >= 0 ? m->tensors->pdata[i] : NULL;
}

/* A constant input as floats (int64 constants converted), or NULL. */
static bool const_floats(EosinTensor *t, int64_t want, float *out) {
  if (!t || _eosin_tensor_numel(t) != want)
    return false;
  for (int64_t i = 0; i < want; i++)
    out[i] = t->data ? t->data[i] : (float) t->idata[i];
  return true;
}

static bool spatial_out(EosinModel *m, const EosinNode *n, int64_t in, int64_t k, int64_t s,
                        int64_t d, int64_t pb, int64_t pe, bool ceil_mode, int64_t *out,
                        GError **err) {
  int64_t span = in + pb + pe - d * (k - 1) - 1;
  if (k < 1 || span < 0)
    return _eosin_node_error(err, m, n, "kernel %" G_GINT64_FORMAT " does not fit an input of %"
                             G_GINT64_FORMAT, k, in);
  *out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  return true;
}

/* Conv and ConvTranspose: constant 4-D weights; the kernel taken from them. */
static bool shape_conv(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                       int64_t *d, GError **err) {
  EosinAttrs *a = &n->a;
  EosinTensor *w = T(m, n->in[1]);
  if (x->ndim != 4 || !w || w->ndim != 4 || !w->data)
    return _eosin_node_error(err, m, n, "needs a 4-D input and constant 4-D float weights");
  bool tr = n->op == EOSIN_OP_CONV_TRANSPOSE;
  int64_t cin = tr ? w->dims[0] : w->dims[1] * a->group;
  int64_t cout = tr ? w->dims[1] * a->group : w->dims[0];
  if (cin != x->dims[1] || cout % a->group)
    return _eosin_node_error(err, m, n, "weights %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                             " with group %" G_GINT64_FORMAT " do not fit %" G_GINT64_FORMAT
                             " input channels", w->dims[0], w->dims[1], a->group, x->dims[1]);
  if (n->n_in > 2 && n->in[2] >= 0 &&
      (!T(m, n->in[2])->data || _eosin_tensor_numel(T(m, n->in[2])) != cout))
    return _eosin_node_error(err, m, n, "bias must be a constant of %" G_GINT64_FORMAT " values",
                             cout);
  for (int i = 0; i < 2; i++) {
    int64_t k = w->dims[2 + i];
    if (a->kernel[i] && a->kernel[i] != k)
      return _eosin_node_error(err, m, n, "kernel_shape disagrees with the weights");
    a->kernel[i] = k;
    if (tr) {
      d[2 + i] = a->strides[i] * (x->dims[2 + i] - 1) + a->output_padding[i] +
                 (k - 1) * a->dilations[i] + 1 - a->pads[i] - a->pads[i + 2];
      if (d[2 + i] < 1)
        return _eosin_node_error(err, m, n, "output would be empty");
    } else if (!spatial_out(m, n, x->dims[2 + i], k, a->strides[i], a->dilations[i],
                            a->pads[i], a->pads[i + 2], false, &d[2 + i], err)) {
      return false;
    }
  }
  d[1] = cout;
  _eosin_tensor_set_shape(y, 4, d);
  return true;
}

static bool shape_batch_norm(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                             int64_t *d, GError **err) {
  for (int i = 1; i < 5; i++)
    if (!T(m, n->in[i]) || !T(m, n->in[i])->data ||
        _eosin_tensor_numel(T(m, n->in[i])) != x->dims[1])
      return _eosin_node_error(err, m, n, "scale, bias, mean and var must be constants of %"
                               G_GINT64_FORMAT " values", x->dims[1]);
  _eosin_tensor_set_shape(y, x->ndim, d);
  return true;
}

static bool shape_clip(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                       int64_t *d, GError **err) {
  EosinAttrs *a = &n->a;
  /* opset >= 11: min and max are optional constant inputs */
  if (n->n_in > 1 && n->in[1] >= 0 && !const_floats(T(m, n->in[1]), 1, &a->clip_min))
    return _eosin_node_error(err, m, n, "min must be a constant scalar");
  if (n->n_in > 2 && n->in[2] >= 0 && !const_floats(T(m, n->in[2]), 1, &a->clip_max))
    return _eosin_node_error(err, m, n, "max must be a constant scalar");
  _eosin_tensor_set_shape(y, x->ndim, d);
  return true;
}

/* Relu, Sigmoid, HardSigmoid, HardSwish, Identity, Dropout. */
static bool shape_same(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                       int64_t *d, GError **err) {
  _eosin_tensor_set_shape(y, x->ndim, d);
  return true;
}

static bool shape_softmax(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                          int64_t *d, GError **err) {
  EosinAttrs *a = &n->a;
  /* made non-negative here, so no backend resolves it on its own; at
   * opset < 13 it still means "every dim from axis on" (m->opset) */
  int64_t axis = a->axis < 0 ? a->axis + x->ndim : a->axis;
  if (axis < 0 || axis >= x->ndim)
    return _eosin_node_error(err, m, n, "axis %" G_GINT64_FORMAT " is out of range", a->axis);
  a->axis = axis;
  _eosin_tensor_set_shape(y, x->ndim, d);
  return true;
}

/* Mul and Add: numpy broadcasting. */
static bool shape_binary(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                         int64_t *d, GError **err) {
  EosinTensor *b = T(m, n->in[1]);
  if (!b || !b->shape_known)
    return _eosin_node_error(err, m, n, "the shape of the second input is unknown");
  int nd = MAX(x->ndim, b->ndim);
  for (int i = 0; i < nd; i++) {
    int ia = i - (nd - x->ndim), ib = i - (nd - b->ndim);
    int64_t da = ia >= 0 ? x->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return _eosin_node_error(err, m, n, "shapes do not broadcast (dimension %d: %"
                               G_GINT64_FORMAT " vs %" G_GINT64_FORMAT ")", i, da, db);
    d[i] = MAX(da, db);
  }
  _eosin_tensor_set_shape(y, nd, d);
  return true;
}

static bool shape_concat(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                         int64_t *d, GError **err) {
  EosinAttrs *a = &n->a;
  int64_t axis = a->axis < 0 ? a->axis + x->ndim : a->axis;
  if (axis < 0 || axis >= x->ndim)
    return _eosin_node_error(err, m, n, "axis %" G_GINT64_FORMAT " is out of range", a->axis);
  a->axis = axis;
  d[axis] = 0;
  for (int i = 0; i < n->n_in; i++) {
    EosinTensor *t = T(m, n->in[i]);
    if (!t || !t->shape_known || t->ndim != x->ndim)
      return _eosin_node_error(err, m, n, "input %d has another rank or an unknown shape", i);
    for (int k = 0; k < x->ndim; k++)
      if (k != axis && t->dims[k] != x->dims[k])
        return _eosin_node_error(err, m, n, "input %d differs outside the concat axis", i);
    d[axis] += t->dims[axis];
  }
  _eosin_tensor_set_shape(y, x->ndim, d);
  return true;
}

/* MaxPool and AveragePool. */
static bool shape_pool(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                       int64_t *d, GError **err) {
  const EosinAttrs *a = &n->a;
  if (x->ndim != 4 || !a->kernel[0])
    return _eosin_node_error(err, m, n, "needs a 4-D input and kernel_shape");
  for (int i = 0; i < 2; i++)
    if (!spatial_out(m, n, x->dims[2 + i], a->kernel[i], a->strides[i], a->dilations[i],
                     a->pads[i], a->pads[i + 2], a->ceil_mode, &d[2 + i], err))
      return false;
  _eosin_tensor_set_shape(y, 4, d);
  return true;
}

static bool shape_global_pool(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                              int64_t *d, GError **err) {
  if (x->ndim != 4)
    return _eosin_node_error(err, m, n, "needs a 4-D input");
  d[2] = d[3] = 1;
  _eosin_tensor_set_shape(y, 4, d);
  return true;
}

/* Gemm and MatMul: a 2-D input times a constant 2-D weight. */
static bool shape_gemm(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                       int64_t *d, GError **err) {
  const EosinAttrs *a = &n->a;
  EosinTensor *b = T(m, n->in[1]);
  if (x->ndim != 2 || !b || b->ndim != 2 || !b->data)
    return _eosin_node_error(err, m, n, "needs a 2-D input and a constant 2-D weight");
  bool ta = n->op == EOSIN_OP_GEMM && a->trans_a, tb = n->op == EOSIN_OP_GEMM && a->trans_b;
  int64_t M = ta ? x->dims[1] : x->dims[0], K = ta ? x->dims[0] : x->dims[1];
  int64_t Kb = tb ? b->dims[1] : b->dims[0], N = tb ? b->dims[0] : b->dims[1];
  if (K != Kb)
    return _eosin_node_error(err, m, n, "inner dimensions differ (%" G_GINT64_FORMAT " vs %"
                             G_GINT64_FORMAT ")", K, Kb);
  if (n->op == EOSIN_OP_GEMM && n->n_in > 2 && n->in[2] >= 0) {
    EosinTensor *c = T(m, n->in[2]);
    if (!c->data || (_eosin_tensor_numel(c) != N && _eosin_tensor_numel(c) != 1))
      return _eosin_node_error(err, m, n, "bias must be a constant of %" G_GINT64_FORMAT
                               " values", N);
  }
  int64_t o[2] = {M, N};
  _eosin_tensor_set_shape(y, 2, o);
  return true;
}

static bool shape_flatten(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                          int64_t *d, GError **err) {
  const EosinAttrs *a = &n->a;
  int64_t axis = a->axis < 0 ? a->axis + x->ndim : a->axis, o[2] = {1, 1};
  if (axis < 0 || axis > x->ndim)
    return _eosin_node_error(err, m, n, "axis %" G_GINT64_FORMAT " is out of range", a->axis);
  for (int i = 0; i < x->ndim; i++)
    o[i < axis ? 0 : 1] *= x->dims[i];
  _eosin_tensor_set_shape(y, 2, o);
  return true;
}

/* Reshape to a constant shape: 0 keeps a dimension, one -1 is inferred. */
static bool shape_reshape(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                          int64_t *d, GError **err) {
  EosinTensor *s = T(m, n->in[1]);
  if (!s || !s->idata || s->ndim != 1 || s->dims[0] > EOSIN_MAX_DIMS)
    return _eosin_node_error(err, m, n, "the shape must be a constant 1-D int64 tensor");
  int nd = (int) s->dims[0], infer_at = -1;
  int64_t known = 1, total = _eosin_tensor_numel(x);
  for (int i = 0; i < nd; i++) {
    int64_t v = s->idata[i];
    if (v == 0 && i < x->ndim)
      v = x->dims[i];
    if (v == -1 && infer_at < 0) {
      infer_at = i;
      continue;
    }
    if (v <= 0 || __builtin_mul_overflow(known, v, &known))
      return _eosin_node_error(err, m, n, "shape value %" G_GINT64_FORMAT " is invalid",
                               s->idata[i]);
    d[i] = v;
  }
  if (infer_at >= 0)
    d[infer_at] = known ? total / known : 0;
  if (infer_at >= 0 ? total % known : known != total)
    return _eosin_node_error(err, m, n, "cannot reshape %" G_GINT64_FORMAT " values", total);
  _eosin_tensor_set_shape(y, nd, d);
  return true;
}

/* Resize of H and W by constant scales or sizes (opset 11+: X, roi,
 * scales, sizes); the scales an output coordinate maps back by are kept. */
static bool shape_resize(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                         int64_t *d, GError **err) {
  EosinAttrs *a = &n->a;
  float sc[4];
  EosinTensor *scales = n->n_in > 2 ? T(m, n->in[2]) : NULL;
  EosinTensor *sizes = n->n_in > 3 ? T(m, n->in[3]) : NULL;
  if (x->ndim != 4)
    return _eosin_node_error(err, m, n, "needs a 4-D input");
  if (sizes && sizes->idata && _eosin_tensor_numel(sizes) == 4) {
    memcpy(d, sizes->idata, 4 * sizeof(int64_t));
    for (int i = 2; i < 4; i++)
      if (d[i] < 1 || d[i] > EOSIN_GRAPH_MAX_DIM)
        return _eosin_node_error(err, m, n, "size %" G_GINT64_FORMAT " is invalid", d[i]);
    /* sizes: ONNX then maps coordinates by out/in */
    a->resize_scale[0] = (float) d[2] / (float) x->dims[2];
    a->resize_scale[1] = (float) d[3] / (float) x->dims[3];
  } else if (scales && _eosin_tensor_numel(scales) == 4 && const_floats(scales, 4, sc)) {
    for (int i = 0; i < 4; i++) {
      /* floor(in * scale) in float, as ONNX Runtime computes it: 10 x
       * 0.7f is 7 in float but 6.99999988 in double */
      float v = floorf((float) x->dims[i] * sc[i]);
      if (!(sc[i] > 0 && v >= 1 && v <= EOSIN_GRAPH_MAX_DIM))
        return _eosin_node_error(err, m, n, "scale %g gives an invalid size", sc[i]);
      d[i] = (int64_t) v;
    }
    a->resize_scale[0] = sc[2], a->resize_scale[1] = sc[3];
  } else {
    return _eosin_node_error(err, m, n, "needs constant scales or sizes (dynamic sizes cannot "
                             "be resolved)");
  }
  if (d[0] != x->dims[0] || d[1] != x->dims[1] || d[2] < 1 || d[3] < 1)
    return _eosin_node_error(err, m, n, "only resizes H and W");
  _eosin_tensor_set_shape(y, 4, d);
  return true;
}

/* Zero Pad of H and W by constant pads, kept in the attributes. */
static bool shape_pad(EosinModel *m, EosinNode *n, const EosinTensor *x, EosinTensor *y,
                      int64_t *d, GError **err) {
  EosinAttrs *a = &n->a;
  EosinTensor *p = n->n_in > 1 ? T(m, n->in[1]) : NULL;
  if (x->ndim != 4 || !p || !p->idata || _eosin_tensor_numel(p) != 8)
    return _eosin_node_error(err, m, n, "needs a 4-D input and constant pads of 8 values");
  const int64_t *v = p->idata; /* N, C, H, W begins then ends */
  for (int i = 0; i < 8; i++)
    if (v[i] < 0 || v[i] > EOSIN_GRAPH_MAX_DIM)
      return _eosin_node_error(err, m, n, "pad %" G_GINT64_FORMAT " is not supported", v[i]);
  if (v[0] || v[1] || v[4] || v[5])
    return _eosin_node_error(err, m, n, "only pads H and W");
  if (n->n_in > 2 && n->in[2] >= 0) {
    float cv;
    if (!const_floats(T(m, n->in[2]), 1, &cv) || cv != 0)
      return _eosin_node_error(err, m, n, "only pads with zeros");
  }
  a->pads[0] = v[2], a->pads[1] = v[3], a->pads[2] = v[6], a->pads[3] = v[7];
  d[2] += v[2] + v[6];
  d[3] += v[3] + v[7];
  _eosin_tensor_set_shape(y, 4, d);
  return true;
}

/* Constant has no rule (its output is its value); an op without one is
 * an error. */
static const ShapeRule RULES[EOSIN_OP_COUNT] = {
    [EOSIN_OP_CONV] = shape_conv,
    [EOSIN_OP_CONV_TRANSPOSE] = shape_conv,
    [EOSIN_OP_BATCH_NORM] = shape_batch_norm,
    [EOSIN_OP_RELU] = shape_same,
    [EOSIN_OP_CLIP] = shape_clip,
    [EOSIN_OP_SIGMOID] = shape_same,
    [EOSIN_OP_HARD_SIGMOID] = shape_same,
    [EOSIN_OP_HARD_SWISH] = shape_same,
    [EOSIN_OP_MUL] = shape_binary,
    [EOSIN_OP_ADD] = shape_binary,
    [EOSIN_OP_CONCAT] = shape_concat,
    [EOSIN_OP_MAX_POOL] = shape_pool,
    [EOSIN_OP_AVERAGE_POOL] = shape_pool,
    [EOSIN_OP_GLOBAL_AVERAGE_POOL] = shape_global_pool,
    [EOSIN_OP_GEMM] = shape_gemm,
    [EOSIN_OP_MATMUL] = shape_gemm,
    [EOSIN_OP_FLATTEN] = shape_flatten,
    [EOSIN_OP_RESHAPE] = shape_reshape,
    [EOSIN_OP_SOFTMAX] = shape_softmax,
    [EOSIN_OP_RESIZE] = shape_resize,
    [EOSIN_OP_PAD] = shape_pad,
    [EOSIN_OP_IDENTITY] = shape_same,
    [EOSIN_OP_DROPOUT] = shape_same,
};

bool _eosin_graph_infer_shape(EosinModel *m, EosinNode *n, GError **err) {
  EosinTensor *x = T(m, n->in[0]), *y = T(m, n->out);
  int64_t d[EOSIN_MAX_DIMS];
  if (n->op == EOSIN_OP_CONSTANT)
    return true;
  if (!x || !x->shape_known)
    return _eosin_node_error(err, m, n, "the shape of input '%s' is unknown", x ? x->name : "?");
  memcpy(d, x->dims, sizeof d);
  ShapeRule rule = n->op >= 0 && n->op < EOSIN_OP_COUNT ? RULES[n->op] : NULL;
  if (!rule)
    return _eosin_node_error(err, m, n, "no shape rule");
  return rule(m, n, x, y, d, err);
}
