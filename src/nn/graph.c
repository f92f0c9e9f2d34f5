/*
 * graph.c — makes a loaded model runnable: every node input must exist,
 * nodes are put in execution order (Kahn's algorithm; a cycle is an error
 * naming a node on it), every tensor's shape is inferred from the input
 * shape so backends can create their primitives once (graph-shape.c's
 * rules, run here in that order), and each
 * BatchNormalization that only follows a convolution is folded into its
 * weights and bias (one op fewer per layer, as every inference engine does).
 */
#include "nn/graph-private.h"

#include <math.h>

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

/* *@err is the caller's; nothing else is kept. */
bool _eosin_node_error(GError **err, const EosinModel *m, const EosinNode *n, const char *fmt,
                       ...) {
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
  int64_t cout = w->dims[0], per = _eosin_tensor_numel(w) / cout;
  /* new tensors, so weights shared with another node stay untouched */
  g_autofree char *wn = g_strdup_printf("%s.bn_folded_weight", conv->name);
  g_autofree char *bname = g_strdup_printf("%s.bn_folded_bias", conv->name);
  int wi = _eosin_graph_tensor(m, wn), bi = _eosin_graph_tensor(m, bname);
  EosinTensor *nw = T(m, wi), *nb = T(m, bi);
  w = T(m, conv->in[1]); /* the array may have moved */
  const float *oldb = conv->n_in > 2 && conv->in[2] >= 0 ? T(m, conv->in[2])->data : NULL;
  _eosin_tensor_set_shape(nw, w->ndim, w->dims);
  nw->data = g_new(float, _eosin_tensor_numel(w));
  int64_t bd[1] = {cout};
  _eosin_tensor_set_shape(nb, 1, bd);
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
    int64_t count = _eosin_tensor_numel(x);
    if (x->data)
      y->data = g_memdup2(x->data, MAX(count, 1) * sizeof(float));
    if (x->idata)
      y->idata = g_memdup2(x->idata, MAX(count, 1) * sizeof(int64_t));
    _eosin_tensor_set_shape(y, x->ndim, x->dims);
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
      return _eosin_node_error(err, m, n, "%d inputs, needs at least %d", n->n_in, MIN_INPUTS[n->op]);
    for (int k = 0; k < n->n_in; k++) {
      EosinTensor *t = T(m, n->in[k]);
      if (!t) {
        if (k == 0)
          return _eosin_node_error(err, m, n, "its first input is empty");
        continue;
      }
      if (t->producer < 0 && !is_const(t) && !t->is_input)
        return _eosin_node_error(err, m, n, "input '%s' is produced by no node and is not an "
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
        return _eosin_node_error(err, m, &g_array_index(m->nodes, EosinNode, i),
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
    if (!_eosin_graph_infer_shape(m, n, err))
      return false;
    const EosinTensor *y = T(m, n->out);
    int64_t total = 1;
    for (int k = 0; k < y->ndim; k++)
      if (y->dims[k] < 1 || y->dims[k] > EOSIN_GRAPH_MAX_DIM ||
          __builtin_mul_overflow(total, y->dims[k], &total) || total > EOSIN_GRAPH_MAX_ELEMENTS)
        return _eosin_node_error(err, m, n, "output '%s' would have an impossible shape", y->name);
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
