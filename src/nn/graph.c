/*
 * graph.c — makes a loaded model runnable: every node input must exist,
 * nodes are put in execution order (Kahn's algorithm; a cycle is an error
 * naming a node on it), every tensor's shape is inferred from the input
 * shape so backends can create their primitives once, and each
 * BatchNormalization that only follows a convolution is folded into its
 * weights and bias (one op fewer per layer, as every inference engine does).
 */
#include "nn/graph-private.h"

#include <math.h>

/* Bounds on computed shapes: overflow guards, far above any real network. */
#define MAX_DIM (INT64_C(1) << 31)
#define MAX_ELEMENTS (INT64_C(1) << 34)

static const char *const OP_NAMES[EOSIN_OP_COUNT] = {
    [EOSIN_OP_CONV] = "Conv",
    [EOSIN_OP_CONV_TRANSPOSE] = "ConvTranspose",
    [EOSIN_OP_BATCH_NORM] = "BatchNormalization",
    [EOSIN_OP_RELU] = "Relu",
    [EOSIN_OP_CLIP] = "Clip",
    [EOSIN_OP_SIGMOID] = "Sigmoid",
    [EOSIN_OP_HARD_SIGMOID] = "HardSigmoid",
    [EOSIN_OP_HARD_SWISH] = "HardSwish",
    [EOSIN_OP_MUL] = "Mul",
    [EOSIN_OP_ADD] = "Add",
    [EOSIN_OP_CONCAT] = "Concat",
    [EOSIN_OP_MAX_POOL] = "MaxPool",
    [EOSIN_OP_AVERAGE_POOL] = "AveragePool",
    [EOSIN_OP_GLOBAL_AVERAGE_POOL] = "GlobalAveragePool",
    [EOSIN_OP_GEMM] = "Gemm",
    [EOSIN_OP_MATMUL] = "MatMul",
    [EOSIN_OP_FLATTEN] = "Flatten",
    [EOSIN_OP_RESHAPE] = "Reshape",
    [EOSIN_OP_SOFTMAX] = "Softmax",
    [EOSIN_OP_RESIZE] = "Resize",
    [EOSIN_OP_PAD] = "Pad",
    [EOSIN_OP_IDENTITY] = "Identity",
    [EOSIN_OP_CONSTANT] = "Constant",
    [EOSIN_OP_DROPOUT] = "Dropout",
};

/* Inputs each op needs at least (optional ones may follow). */
static const int MIN_INPUTS[EOSIN_OP_COUNT] = {
    [EOSIN_OP_CONV] = 2, [EOSIN_OP_CONV_TRANSPOSE] = 2, [EOSIN_OP_BATCH_NORM] = 5,
    [EOSIN_OP_MUL] = 2,  [EOSIN_OP_ADD] = 2,            [EOSIN_OP_GEMM] = 2,
    [EOSIN_OP_MATMUL] = 2, [EOSIN_OP_RESHAPE] = 2,      [EOSIN_OP_RESIZE] = 1,
    [EOSIN_OP_PAD] = 1,  [EOSIN_OP_CONCAT] = 1,         [EOSIN_OP_CONSTANT] = 0,
    [EOSIN_OP_RELU] = 1, [EOSIN_OP_CLIP] = 1,           [EOSIN_OP_SIGMOID] = 1,
    [EOSIN_OP_HARD_SIGMOID] = 1, [EOSIN_OP_HARD_SWISH] = 1, [EOSIN_OP_MAX_POOL] = 1,
    [EOSIN_OP_AVERAGE_POOL] = 1, [EOSIN_OP_GLOBAL_AVERAGE_POOL] = 1, [EOSIN_OP_FLATTEN] = 1,
    [EOSIN_OP_SOFTMAX] = 1, [EOSIN_OP_IDENTITY] = 1,    [EOSIN_OP_DROPOUT] = 1,
};

const char *_eosin_op_name(EosinOpType op) {
  return op >= 0 && op < EOSIN_OP_COUNT ? OP_NAMES[op] : "?";
}

int _eosin_op_from_name(const char *name) {
  for (int i = 0; i < EOSIN_OP_COUNT; i++)
    if (!strcmp(OP_NAMES[i], name))
      return i;
  return -1;
}

static EosinTensor *T(EosinModel *m, int i) {
  return i >= 0 ? m->tensors->pdata[i] : NULL;
}

static bool node_error(GError **err, EosinModel *m, const EosinNode *n, const char *fmt, ...)
    G_GNUC_PRINTF(4, 5);
static bool node_error(GError **err, EosinModel *m, const EosinNode *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "model %s: node %s (%s): %s", m->path,
              n->name, _eosin_op_name(n->op), msg);
  return false;
}

static bool is_const(const EosinTensor *t) {
  return t && (t->data || t->idata);
}

static int64_t numel(const EosinTensor *t) {
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++)
    n *= t->dims[d];
  return n;
}

static void set_shape(EosinTensor *t, int ndim, const int64_t *dims) {
  t->ndim = ndim;
  memcpy(t->dims, dims, ndim * sizeof(int64_t));
  t->shape_known = true;
}

/* A constant input as floats (int64 constants converted), or NULL. */
static bool const_floats(EosinTensor *t, int64_t want, float *out) {
  if (!t || numel(t) != want)
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
    return node_error(err, m, n, "kernel %" G_GINT64_FORMAT " does not fit an input of %"
                      G_GINT64_FORMAT, k, in);
  *out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  return true;
}

static bool infer(EosinModel *m, EosinNode *n, GError **err) {
  EosinTensor *x = T(m, n->in[0]), *y = T(m, n->out);
  EosinAttrs *a = &n->a;
  int64_t d[EOSIN_MAX_DIMS];
  if (n->op == EOSIN_OP_CONSTANT)
    return true;
  if (!x || !x->shape_known)
    return node_error(err, m, n, "the shape of input '%s' is unknown", x ? x->name : "?");
  memcpy(d, x->dims, sizeof d);
  switch (n->op) {
  case EOSIN_OP_CONV:
  case EOSIN_OP_CONV_TRANSPOSE: {
    EosinTensor *w = T(m, n->in[1]);
    if (x->ndim != 4 || !w || w->ndim != 4 || !w->data)
      return node_error(err, m, n, "needs a 4-D input and constant 4-D float weights");
    bool tr = n->op == EOSIN_OP_CONV_TRANSPOSE;
    int64_t cin = tr ? w->dims[0] : w->dims[1] * a->group;
    int64_t cout = tr ? w->dims[1] * a->group : w->dims[0];
    if (cin != x->dims[1] || cout % a->group)
      return node_error(err, m, n, "weights %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                        " with group %" G_GINT64_FORMAT " do not fit %" G_GINT64_FORMAT
                        " input channels", w->dims[0], w->dims[1], a->group, x->dims[1]);
    if (n->n_in > 2 && n->in[2] >= 0 && (!T(m, n->in[2])->data || numel(T(m, n->in[2])) != cout))
      return node_error(err, m, n, "bias must be a constant of %" G_GINT64_FORMAT " values", cout);
    for (int i = 0; i < 2; i++) {
      int64_t k = w->dims[2 + i];
      if (a->kernel[i] && a->kernel[i] != k)
        return node_error(err, m, n, "kernel_shape disagrees with the weights");
      a->kernel[i] = k;
      if (tr) {
        d[2 + i] = a->strides[i] * (x->dims[2 + i] - 1) + a->output_padding[i] +
                   (k - 1) * a->dilations[i] + 1 - a->pads[i] - a->pads[i + 2];
        if (d[2 + i] < 1)
          return node_error(err, m, n, "output would be empty");
      } else if (!spatial_out(m, n, x->dims[2 + i], k, a->strides[i], a->dilations[i],
                              a->pads[i], a->pads[i + 2], false, &d[2 + i], err)) {
        return false;
      }
    }
    d[1] = cout;
    set_shape(y, 4, d);
    return true;
  }
  case EOSIN_OP_BATCH_NORM:
    for (int i = 1; i < 5; i++)
      if (!T(m, n->in[i]) || !T(m, n->in[i])->data || numel(T(m, n->in[i])) != x->dims[1])
        return node_error(err, m, n, "scale, bias, mean and var must be constants of %"
                          G_GINT64_FORMAT " values", x->dims[1]);
    set_shape(y, x->ndim, d);
    return true;
  case EOSIN_OP_CLIP:
    /* opset >= 11: min and max are optional constant inputs */
    if (n->n_in > 1 && n->in[1] >= 0 && !const_floats(T(m, n->in[1]), 1, &a->clip_min))
      return node_error(err, m, n, "min must be a constant scalar");
    if (n->n_in > 2 && n->in[2] >= 0 && !const_floats(T(m, n->in[2]), 1, &a->clip_max))
      return node_error(err, m, n, "max must be a constant scalar");
    set_shape(y, x->ndim, d);
    return true;
  case EOSIN_OP_RELU:
  case EOSIN_OP_SIGMOID:
  case EOSIN_OP_HARD_SIGMOID:
  case EOSIN_OP_HARD_SWISH:
  case EOSIN_OP_IDENTITY:
  case EOSIN_OP_DROPOUT:
    set_shape(y, x->ndim, d);
    return true;
  case EOSIN_OP_SOFTMAX: {
    /* made non-negative here, so no backend resolves it on its own; at
     * opset < 13 it still means "every dim from axis on" (m->opset) */
    int64_t axis = a->axis < 0 ? a->axis + x->ndim : a->axis;
    if (axis < 0 || axis >= x->ndim)
      return node_error(err, m, n, "axis %" G_GINT64_FORMAT " is out of range", a->axis);
    a->axis = axis;
    set_shape(y, x->ndim, d);
    return true;
  }
  case EOSIN_OP_MUL:
  case EOSIN_OP_ADD: {
    EosinTensor *b = T(m, n->in[1]);
    if (!b || !b->shape_known)
      return node_error(err, m, n, "the shape of the second input is unknown");
    int nd = MAX(x->ndim, b->ndim);
    for (int i = 0; i < nd; i++) {
      int ia = i - (nd - x->ndim), ib = i - (nd - b->ndim);
      int64_t da = ia >= 0 ? x->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
      if (da != db && da != 1 && db != 1)
        return node_error(err, m, n, "shapes do not broadcast (dimension %d: %" G_GINT64_FORMAT
                          " vs %" G_GINT64_FORMAT ")", i, da, db);
      d[i] = MAX(da, db);
    }
    set_shape(y, nd, d);
    return true;
  }
  case EOSIN_OP_CONCAT: {
    int64_t axis = a->axis < 0 ? a->axis + x->ndim : a->axis;
    if (axis < 0 || axis >= x->ndim)
      return node_error(err, m, n, "axis %" G_GINT64_FORMAT " is out of range", a->axis);
    a->axis = axis;
    d[axis] = 0;
    for (int i = 0; i < n->n_in; i++) {
      EosinTensor *t = T(m, n->in[i]);
      if (!t || !t->shape_known || t->ndim != x->ndim)
        return node_error(err, m, n, "input %d has another rank or an unknown shape", i);
      for (int k = 0; k < x->ndim; k++)
        if (k != axis && t->dims[k] != x->dims[k])
          return node_error(err, m, n, "input %d differs outside the concat axis", i);
      d[axis] += t->dims[axis];
    }
    set_shape(y, x->ndim, d);
    return true;
  }
  case EOSIN_OP_MAX_POOL:
  case EOSIN_OP_AVERAGE_POOL:
    if (x->ndim != 4 || !a->kernel[0])
      return node_error(err, m, n, "needs a 4-D input and kernel_shape");
    for (int i = 0; i < 2; i++)
      if (!spatial_out(m, n, x->dims[2 + i], a->kernel[i], a->strides[i], a->dilations[i],
                       a->pads[i], a->pads[i + 2], a->ceil_mode, &d[2 + i], err))
        return false;
    set_shape(y, 4, d);
    return true;
  case EOSIN_OP_GLOBAL_AVERAGE_POOL:
    if (x->ndim != 4)
      return node_error(err, m, n, "needs a 4-D input");
    d[2] = d[3] = 1;
    set_shape(y, 4, d);
    return true;
  case EOSIN_OP_GEMM:
  case EOSIN_OP_MATMUL: {
    EosinTensor *b = T(m, n->in[1]);
    if (x->ndim != 2 || !b || b->ndim != 2 || !b->data)
      return node_error(err, m, n, "needs a 2-D input and a constant 2-D weight");
    bool ta = n->op == EOSIN_OP_GEMM && a->trans_a, tb = n->op == EOSIN_OP_GEMM && a->trans_b;
    int64_t M = ta ? x->dims[1] : x->dims[0], K = ta ? x->dims[0] : x->dims[1];
    int64_t Kb = tb ? b->dims[1] : b->dims[0], N = tb ? b->dims[0] : b->dims[1];
    if (K != Kb)
      return node_error(err, m, n, "inner dimensions differ (%" G_GINT64_FORMAT " vs %"
                        G_GINT64_FORMAT ")", K, Kb);
    if (n->op == EOSIN_OP_GEMM && n->n_in > 2 && n->in[2] >= 0) {
      EosinTensor *c = T(m, n->in[2]);
      if (!c->data || (numel(c) != N && numel(c) != 1))
        return node_error(err, m, n, "bias must be a constant of %" G_GINT64_FORMAT " values", N);
    }
    int64_t o[2] = {M, N};
    set_shape(y, 2, o);
    return true;
  }
  case EOSIN_OP_FLATTEN: {
    int64_t axis = a->axis < 0 ? a->axis + x->ndim : a->axis, o[2] = {1, 1};
    if (axis < 0 || axis > x->ndim)
      return node_error(err, m, n, "axis %" G_GINT64_FORMAT " is out of range", a->axis);
    for (int i = 0; i < x->ndim; i++)
      o[i < axis ? 0 : 1] *= x->dims[i];
    set_shape(y, 2, o);
    return true;
  }
  case EOSIN_OP_RESHAPE: {
    EosinTensor *s = T(m, n->in[1]);
    if (!s || !s->idata || s->ndim != 1 || s->dims[0] > EOSIN_MAX_DIMS)
      return node_error(err, m, n, "the shape must be a constant 1-D int64 tensor");
    int nd = (int) s->dims[0], infer_at = -1;
    int64_t known = 1, total = numel(x);
    for (int i = 0; i < nd; i++) {
      int64_t v = s->idata[i];
      if (v == 0 && i < x->ndim)
        v = x->dims[i];
      if (v == -1 && infer_at < 0) {
        infer_at = i;
        continue;
      }
      if (v <= 0 || __builtin_mul_overflow(known, v, &known))
        return node_error(err, m, n, "shape value %" G_GINT64_FORMAT " is invalid", s->idata[i]);
      d[i] = v;
    }
    if (infer_at >= 0)
      d[infer_at] = known ? total / known : 0;
    if (infer_at >= 0 ? total % known : known != total)
      return node_error(err, m, n, "cannot reshape %" G_GINT64_FORMAT " values", total);
    set_shape(y, nd, d);
    return true;
  }
  case EOSIN_OP_RESIZE: {
    /* opset 11+: X, roi, scales, sizes; scales or sizes is a constant */
    float sc[4];
    EosinTensor *scales = n->n_in > 2 ? T(m, n->in[2]) : NULL;
    EosinTensor *sizes = n->n_in > 3 ? T(m, n->in[3]) : NULL;
    if (x->ndim != 4)
      return node_error(err, m, n, "needs a 4-D input");
    if (sizes && sizes->idata && numel(sizes) == 4) {
      memcpy(d, sizes->idata, 4 * sizeof(int64_t));
      for (int i = 2; i < 4; i++)
        if (d[i] < 1 || d[i] > MAX_DIM)
          return node_error(err, m, n, "size %" G_GINT64_FORMAT " is invalid", d[i]);
      /* sizes: ONNX then maps coordinates by out/in */
      a->resize_scale[0] = (float) d[2] / (float) x->dims[2];
      a->resize_scale[1] = (float) d[3] / (float) x->dims[3];
    } else if (scales && numel(scales) == 4 && const_floats(scales, 4, sc)) {
      for (int i = 0; i < 4; i++) {
        /* floor(in * scale) in float, as ONNX Runtime computes it: 10 x
         * 0.7f is 7 in float but 6.99999988 in double */
        float v = floorf((float) x->dims[i] * sc[i]);
        if (!(sc[i] > 0 && v >= 1 && v <= MAX_DIM))
          return node_error(err, m, n, "scale %g gives an invalid size", sc[i]);
        d[i] = (int64_t) v;
      }
      a->resize_scale[0] = sc[2], a->resize_scale[1] = sc[3];
    } else {
      return node_error(err, m, n, "needs constant scales or sizes (dynamic sizes cannot be "
                        "resolved)");
    }
    if (d[0] != x->dims[0] || d[1] != x->dims[1] || d[2] < 1 || d[3] < 1)
      return node_error(err, m, n, "only resizes H and W");
    set_shape(y, 4, d);
    return true;
  }
  case EOSIN_OP_PAD: {
    EosinTensor *p = n->n_in > 1 ? T(m, n->in[1]) : NULL;
    if (x->ndim != 4 || !p || !p->idata || numel(p) != 8)
      return node_error(err, m, n, "needs a 4-D input and constant pads of 8 values");
    const int64_t *v = p->idata; /* N, C, H, W begins then ends */
    for (int i = 0; i < 8; i++)
      if (v[i] < 0 || v[i] > MAX_DIM)
        return node_error(err, m, n, "pad %" G_GINT64_FORMAT " is not supported", v[i]);
    if (v[0] || v[1] || v[4] || v[5])
      return node_error(err, m, n, "only pads H and W");
    if (n->n_in > 2 && n->in[2] >= 0) {
      float cv;
      if (!const_floats(T(m, n->in[2]), 1, &cv) || cv != 0)
        return node_error(err, m, n, "only pads with zeros");
    }
    a->pads[0] = v[2], a->pads[1] = v[3], a->pads[2] = v[6], a->pads[3] = v[7];
    d[2] += v[2] + v[6];
    d[3] += v[3] + v[7];
    set_shape(y, 4, d);
    return true;
  }
  default:
    return node_error(err, m, n, "no shape rule");
  }
}

/* Folds BatchNormalization @bn into the Conv producing its input, when
 * nothing else reads the convolution's output. */
static void fold_bn(EosinModel *m, EosinNode *bn) {
  EosinTensor *x = T(m, bn->in[0]);
  if (x->producer < 0 || x->consumers != 1 || x->is_output)
    return;
  EosinNode *conv = &g_array_index(m->nodes, EosinNode, x->producer);
  if (conv->op != EOSIN_OP_CONV || conv->removed)
    return;
  const float *scale = T(m, bn->in[1])->data, *beta = T(m, bn->in[2])->data;
  const float *mean = T(m, bn->in[3])->data, *var = T(m, bn->in[4])->data;
  EosinTensor *w = T(m, conv->in[1]);
  int64_t cout = w->dims[0], per = numel(w) / cout;
  /* new tensors, so weights shared with another node stay untouched */
  g_autofree char *wn = g_strdup_printf("%s.bn_folded_weight", conv->name);
  g_autofree char *bname = g_strdup_printf("%s.bn_folded_bias", conv->name);
  int wi = _eosin_graph_tensor(m, wn), bi = _eosin_graph_tensor(m, bname);
  EosinTensor *nw = T(m, wi), *nb = T(m, bi);
  w = T(m, conv->in[1]); /* the array may have moved */
  const float *oldb = conv->n_in > 2 && conv->in[2] >= 0 ? T(m, conv->in[2])->data : NULL;
  set_shape(nw, w->ndim, w->dims);
  nw->data = g_new(float, numel(w));
  int64_t bd[1] = {cout};
  set_shape(nb, 1, bd);
  nb->data = g_new(float, cout);
  for (int64_t o = 0; o < cout; o++) {
    double k = scale[o] / sqrt((double) var[o] + bn->a.epsilon);
    for (int64_t i = 0; i < per; i++)
      nw->data[o * per + i] = (float) (w->data[o * per + i] * k);
    nb->data[o] = (float) (((oldb ? oldb[o] : 0) - mean[o]) * k + beta[o]);
  }
  conv->in[1] = wi;
  conv->in[2] = bi;
  conv->n_in = 3;
  /* the convolution now writes the normalisation's output */
  conv->out = bn->out;
  T(m, bn->out)->producer = x->producer;
  bn->removed = true;
  m->folded_bn++;
}

/* Exporters share identical weights through Identity nodes: an Identity
 * (or Dropout) of a constant is itself a constant. */
static void fold_constant_copies(EosinModel *m) {
  for (guint i = 0; i < m->nodes->len; i++) {
    EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if ((n->op != EOSIN_OP_IDENTITY && n->op != EOSIN_OP_DROPOUT) || n->n_in < 1)
      continue;
    EosinTensor *x = T(m, n->in[0]), *y = T(m, n->out);
    if (!is_const(x) || y->is_output)
      continue;
    int64_t count = numel(x);
    if (x->data)
      y->data = g_memdup2(x->data, MAX(count, 1) * sizeof(float));
    if (x->idata)
      y->idata = g_memdup2(x->idata, MAX(count, 1) * sizeof(int64_t));
    set_shape(y, x->ndim, x->dims);
    y->producer = -1;
    n->op = EOSIN_OP_CONSTANT;
  }
}

bool _eosin_graph_prepare(EosinModel *m, GError **err) {
  fold_constant_copies(m);
  guint nn = m->nodes->len;
  /* every input exists and has enough of them */
  for (guint i = 0; i < nn; i++) {
    EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (n->n_in < MIN_INPUTS[n->op])
      return node_error(err, m, n, "%d inputs, needs at least %d", n->n_in, MIN_INPUTS[n->op]);
    for (int k = 0; k < n->n_in; k++) {
      EosinTensor *t = T(m, n->in[k]);
      if (!t) {
        if (k == 0)
          return node_error(err, m, n, "its first input is empty");
        continue;
      }
      if (t->producer < 0 && !is_const(t) && !t->is_input)
        return node_error(err, m, n, "input '%s' is produced by no node and is not an "
                          "initializer (a missing weight?)", t->name);
      t->consumers++;
    }
  }
  /* execution order: Kahn's algorithm over node dependencies */
  g_autofree int *pending = g_new0(int, nn);
  g_autofree int *order = g_new(int, nn);
  int head = 0, tail = 0;
  for (guint i = 0; i < nn; i++) {
    EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    for (int k = 0; k < n->n_in; k++)
      if (n->in[k] >= 0 && T(m, n->in[k])->producer >= 0)
        pending[i]++;
    if (!pending[i])
      order[tail++] = i;
  }
  while (head < tail) {
    int i = order[head++];
    const EosinNode *done = &g_array_index(m->nodes, EosinNode, i);
    if (done->op == EOSIN_OP_CONSTANT)
      continue; /* constants were not counted as dependencies */
    int out = done->out;
    for (guint j = 0; j < nn; j++) {
      EosinNode *n = &g_array_index(m->nodes, EosinNode, j);
      for (int k = 0; k < n->n_in; k++)
        if (n->in[k] == out && --pending[j] == 0)
          order[tail++] = j;
    }
  }
  if (tail < (int) nn) {
    for (guint i = 0; i < nn; i++)
      if (pending[i])
        return node_error(err, m, &g_array_index(m->nodes, EosinNode, i),
                          "the graph has a cycle through this node");
  }
  GArray *sorted = g_array_sized_new(FALSE, TRUE, sizeof(EosinNode), nn);
  for (guint i = 0; i < nn; i++)
    g_array_append_val(sorted, g_array_index(m->nodes, EosinNode, order[i]));
  g_array_unref(m->nodes);
  m->nodes = sorted;
  for (guint i = 0; i < nn; i++) {
    EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (n->op != EOSIN_OP_CONSTANT)
      T(m, n->out)->producer = i;
  }
  /* shapes, in order; every result within bounds, so later arithmetic
   * on them cannot overflow */
  for (guint i = 0; i < nn; i++) {
    EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (!infer(m, n, err))
      return false;
    const EosinTensor *y = T(m, n->out);
    int64_t total = 1;
    for (int k = 0; k < y->ndim; k++)
      if (y->dims[k] < 1 || y->dims[k] > MAX_DIM ||
          __builtin_mul_overflow(total, y->dims[k], &total) || total > MAX_ELEMENTS)
        return node_error(err, m, n, "output '%s' would have an impossible shape", y->name);
  }
  EosinTensor *out = T(m, m->output);
  if (!out->shape_known)
    return g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "model %s: output '%s' is not "
                       "computed", m->path, out->name), false;
  for (guint i = 0; i < nn; i++) {
    EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (n->op == EOSIN_OP_BATCH_NORM)
      fold_bn(m, n);
  }
  return true;
}

int eosin_model_input_shape(const EosinModel *m, int64_t dims[6]) {
  const EosinTensor *t = m->tensors->pdata[m->input];
  memcpy(dims, t->dims, t->ndim * sizeof(int64_t));
  return t->ndim;
}

int eosin_model_output_shape(const EosinModel *m, int64_t dims[6]) {
  const EosinTensor *t = m->tensors->pdata[m->output];
  memcpy(dims, t->dims, t->ndim * sizeof(int64_t));
  return t->ndim;
}

int eosin_model_n_nodes(const EosinModel *m) {
  int n = 0;
  for (guint i = 0; i < m->nodes->len; i++) {
    const EosinNode *node = &g_array_index(m->nodes, EosinNode, i);
    n += !node->removed && node->op != EOSIN_OP_CONSTANT;
  }
  return n;
}

int eosin_model_n_folded(const EosinModel *m) {
  return m->folded_bn;
}
