/*
 * onnx-load.c — reads an .onnx file with protobuf-c (C code generated at
 * build time from the onnx.proto Debian's libonnx-dev installs) into
 * Eosin's graph: initializers become constant tensors, nodes keep their
 * attributes with ONNX's defaults. Anything Eosin cannot run faithfully is
 * refused here, with the node and the reason, before any backend sees it.
 */
#include "nn/graph-private.h"
#include "eosin-util.h" /* _eosin_read_input_file */

#include "onnx.pb-c.h"

#include <math.h>

/* ONNX TensorProto data types Eosin reads */
enum { ONNX_FLOAT = 1, ONNX_INT64 = 7 };
/* Largest tensor accepted (elements): a guard against corrupt dims. */
#define MAX_ELEMENTS (INT64_C(1) << 31)
#define MAX_MODEL_BYTES (INT64_C(2) << 30)

static void tensor_free(gpointer p) {
  EosinTensor *t = p;
  g_free(t->name);
  g_free(t->data);
  g_free(t->idata);
  g_free(t);
}

void eosin_model_free(EosinModel *m) {
  if (!m)
    return;
  g_free(m->path);
  if (m->tensors)
    g_ptr_array_unref(m->tensors);
  if (m->nodes) {
    for (guint i = 0; i < m->nodes->len; i++)
      g_free(g_array_index(m->nodes, EosinNode, i).name);
    g_array_unref(m->nodes);
  }
  if (m->by_name)
    g_hash_table_unref(m->by_name);
  g_free(m);
}

int _eosin_graph_tensor(EosinModel *m, const char *name) {
  gpointer v = g_hash_table_lookup(m->by_name, name);
  if (v)
    return GPOINTER_TO_INT(v) - 1;
  EosinTensor *t = g_new0(EosinTensor, 1);
  t->name = g_strdup(name);
  t->producer = -1;
  g_ptr_array_add(m->tensors, t);
  g_hash_table_insert(m->by_name, t->name, GINT_TO_POINTER(m->tensors->len));
  return m->tensors->len - 1;
}

static bool load_error(GError **err, const EosinModel *m, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static bool load_error(GError **err, const EosinModel *m, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "model %s: %s", m->path, msg);
  return false;
}

/* Copies an ONNX tensor's dims and float32/int64 data into @t. */
static bool read_tensor(EosinModel *m, const Onnx__TensorProto *p, EosinTensor *t,
                        const char *what, GError **err) {
  if (t->data || t->idata || t->is_input)
    return load_error(err, m, "%s '%s' is defined twice", what, t->name);
  if (p->n_dims > EOSIN_MAX_DIMS)
    return load_error(err, m, "%s '%s': %zu dimensions (at most %d)", what, t->name, p->n_dims,
                      EOSIN_MAX_DIMS);
  int64_t n = 1;
  for (size_t d = 0; d < p->n_dims; d++) {
    if (p->dims[d] < 0 || (p->dims[d] > 0 && n > MAX_ELEMENTS / p->dims[d]))
      return load_error(err, m, "%s '%s': dimension %zu is %" G_GINT64_FORMAT
                        " (negative or too large)", what, t->name, d, p->dims[d]);
    n *= p->dims[d];
    t->dims[d] = p->dims[d];
  }
  t->ndim = (int) p->n_dims;
  t->shape_known = true;
  if (p->n_external_data || (p->has_data_location && p->data_location != 0))
    return load_error(err, m, "%s '%s': external data files are not supported", what, t->name);
  int type = p->has_data_type ? p->data_type : 0;
  /* check the data is all there before allocating: dims come from the
   * file and may claim gigabytes the file does not hold */
  if (type == ONNX_FLOAT) {
    size_t have = p->has_raw_data ? p->raw_data.len / 4 : p->n_float_data;
    if (have != (size_t) n || (p->has_raw_data && p->raw_data.len % 4))
      return load_error(err, m, "%s '%s': %" G_GINT64_FORMAT " float values expected, found %zu",
                        what, t->name, n, have);
    t->data = g_new(float, MAX(n, 1));
    if (n) /* an empty tensor may have no data (NULL): not copied */
      memcpy(t->data, p->has_raw_data ? (const void *) p->raw_data.data : p->float_data,
             (size_t) n * 4); /* raw data is little-endian, like this machine */
    for (int64_t i = 0; i < n; i++)
      if (!isfinite(t->data[i]))
        return load_error(err, m, "%s '%s': value %" G_GINT64_FORMAT " is not finite", what,
                          t->name, i);
  } else if (type == ONNX_INT64) {
    size_t have = p->has_raw_data ? p->raw_data.len / 8 : p->n_int64_data;
    if (have != (size_t) n || (p->has_raw_data && p->raw_data.len % 8))
      return load_error(err, m, "%s '%s': %" G_GINT64_FORMAT " int64 values expected, found %zu",
                        what, t->name, n, have);
    t->idata = g_new(int64_t, MAX(n, 1));
    if (n)
      memcpy(t->idata, p->has_raw_data ? (const void *) p->raw_data.data : p->int64_data,
             (size_t) n * 8);
  } else {
    return load_error(err, m, "%s '%s': data type %d is not supported (float32 and int64 only)",
                      what, t->name, type);
  }
  return true;
}

/* A protobuf string attribute (bytes, not NUL-terminated) into @dst. */
static void copy_bytes(char *dst, size_t size, const ProtobufCBinaryData *b) {
  size_t n = MIN(size - 1, b->len);
  if (n) /* an empty string may have no data (NULL), and memcpy from NULL is undefined */
    memcpy(dst, b->data, n);
  dst[n] = 0;
}

static void ints2(const Onnx__AttributeProto *a, int64_t out[2]) {
  for (size_t i = 0; i < 2 && i < a->n_ints; i++)
    out[i] = a->ints[i];
  if (a->n_ints == 1)
    out[1] = out[0];
}

/* Fills @n's attributes from the ONNX node, with ONNX's defaults. */
static bool read_attrs(EosinModel *m, const Onnx__NodeProto *p, EosinNode *n, GError **err) {
  EosinAttrs *a = &n->a;
  a->strides[0] = a->strides[1] = 1;
  a->dilations[0] = a->dilations[1] = 1;
  a->group = 1;
  /* Softmax's default axis is -1 from opset 13, 1 before it (where the
   * input is then coerced to 2-D at the axis: the backends read m->opset) */
  a->axis = n->op == EOSIN_OP_SOFTMAX && m->opset >= 13 ? -1 : 1;
  a->alpha = n->op == EOSIN_OP_HARD_SIGMOID ? 0.2f : 1.0f;
  a->beta = n->op == EOSIN_OP_HARD_SIGMOID ? 0.5f : 1.0f;
  a->epsilon = 1e-5f;
  a->clip_min = -INFINITY, a->clip_max = INFINITY;
  g_strlcpy(a->mode, n->op == EOSIN_OP_PAD ? "constant" : "nearest", sizeof a->mode);
  g_strlcpy(a->coord_mode, "half_pixel", sizeof a->coord_mode);
  g_strlcpy(a->nearest_mode, "round_prefer_floor", sizeof a->nearest_mode);
  for (size_t i = 0; i < p->n_attribute; i++) {
    const Onnx__AttributeProto *at = p->attribute[i];
    const char *k = at->name ? at->name : "";
    if (!strcmp(k, "kernel_shape")) {
      if (at->n_ints != 2)
        return load_error(err, m, "node %s (%s): kernel_shape has %zu values; only 2-D is supported",
                          n->name, p->op_type, at->n_ints);
      ints2(at, a->kernel);
    } else if (!strcmp(k, "strides")) {
      ints2(at, a->strides);
    } else if (!strcmp(k, "dilations")) {
      ints2(at, a->dilations);
    } else if (!strcmp(k, "output_padding")) {
      ints2(at, a->output_padding);
    } else if (!strcmp(k, "pads") && n->op != EOSIN_OP_PAD) {
      if (at->n_ints != 4)
        return load_error(err, m, "node %s (%s): pads has %zu values, expected 4", n->name,
                          p->op_type, at->n_ints);
      /* ONNX: [top, left, bottom, right] for 2-D */
      memcpy(a->pads, at->ints, 4 * sizeof(int64_t));
    } else if (!strcmp(k, "auto_pad")) {
      g_autofree char *v = g_strndup((const char *) at->s.data, at->s.len);
      if (strcmp(v, "NOTSET") && strcmp(v, "VALID"))
        return load_error(err, m, "node %s (%s): auto_pad %s is not supported (export with "
                          "explicit pads)", n->name, p->op_type, v);
    } else if (!strcmp(k, "group")) {
      a->group = at->i;
    } else if (!strcmp(k, "axis")) {
      a->axis = at->i;
    } else if (!strcmp(k, "alpha")) {
      a->alpha = at->f;
    } else if (!strcmp(k, "beta")) {
      a->beta = at->f;
    } else if (!strcmp(k, "epsilon")) {
      a->epsilon = at->f;
    } else if (!strcmp(k, "min")) {
      a->clip_min = at->f;
    } else if (!strcmp(k, "max")) {
      a->clip_max = at->f;
    } else if (!strcmp(k, "transA")) {
      a->trans_a = at->i;
    } else if (!strcmp(k, "transB")) {
      a->trans_b = at->i;
    } else if (!strcmp(k, "ceil_mode")) {
      a->ceil_mode = at->i;
    } else if (!strcmp(k, "count_include_pad")) {
      a->count_include_pad = at->i;
    } else if (!strcmp(k, "mode")) {
      copy_bytes(a->mode, sizeof a->mode, &at->s);
    } else if (!strcmp(k, "coordinate_transformation_mode")) {
      copy_bytes(a->coord_mode, sizeof a->coord_mode, &at->s);
    } else if (!strcmp(k, "nearest_mode")) {
      copy_bytes(a->nearest_mode, sizeof a->nearest_mode, &at->s);
    } else if (!strcmp(k, "value") && n->op == EOSIN_OP_CONSTANT) {
      if (!at->t)
        return load_error(err, m, "node %s (Constant): value is not a tensor", n->name);
      EosinTensor *t = m->tensors->pdata[n->out];
      if (!read_tensor(m, at->t, t, "Constant", err))
        return false;
    }
    /* other attributes (e.g. Dropout's seed, MaxPool's storage_order) do
     * not change what inference computes */
  }
  /* integer attributes within sane bounds, so shape arithmetic cannot overflow */
  const int64_t lim = INT64_C(1) << 20;
  bool bad = a->group < 1 || a->group > lim;
  for (int i = 0; i < 2; i++)
    bad |= a->strides[i] < 1 || a->strides[i] > lim || a->dilations[i] < 1 ||
           a->dilations[i] > lim || a->kernel[i] < 0 || a->kernel[i] > lim ||
           a->output_padding[i] < 0 || a->output_padding[i] > lim;
  for (int i = 0; i < 4; i++)
    bad |= a->pads[i] < 0 || a->pads[i] > lim;
  if (bad)
    return load_error(err, m, "node %s (%s): group, kernel_shape, strides, dilations, pads or "
                      "output_padding out of range", n->name, p->op_type);
  if (n->op == EOSIN_OP_RESIZE && strcmp(a->mode, "nearest") && strcmp(a->mode, "linear"))
    return load_error(err, m, "node %s (Resize): mode %s is not supported (nearest, linear)",
                      n->name, a->mode);
  static const char *const COORD[] = {"half_pixel", "pytorch_half_pixel", "align_corners",
                                      "asymmetric", NULL};
  static const char *const NEAREST[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
                                        "ceil", NULL};
  if (n->op == EOSIN_OP_RESIZE &&
      (!g_strv_contains(COORD, a->coord_mode) || !g_strv_contains(NEAREST, a->nearest_mode)))
    return load_error(err, m, "node %s (Resize): coordinate_transformation_mode %s / "
                      "nearest_mode %s is not supported", n->name, a->coord_mode,
                      a->nearest_mode);
  if (n->op == EOSIN_OP_PAD && strcmp(a->mode, "constant"))
    return load_error(err, m, "node %s (Pad): mode %s is not supported (constant)", n->name,
                      a->mode);
  return true;
}

/* The one image input: a float32 4-D tensor whose dims are numbers except,
 * perhaps, the batch dimension, which becomes @batch. */
static bool read_input(EosinModel *m, const Onnx__ValueInfoProto *vi, int batch, GError **err) {
  const char *name = vi->name ? vi->name : "";
  const Onnx__TypeProto *tp = vi->type;
  if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
    return load_error(err, m, "input '%s' is not a tensor", name);
  const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
  if (!tt->has_elem_type || tt->elem_type != ONNX_FLOAT)
    return load_error(err, m, "input '%s' has data type %d; only float32 is supported", name,
                      tt->has_elem_type ? tt->elem_type : 0);
  if (!tt->shape || tt->shape->n_dim != 4)
    return load_error(err, m, "input '%s' must be 4-D (N, C, H, W); it has %zu dimensions", name,
                      tt->shape ? tt->shape->n_dim : 0);
  int idx = _eosin_graph_tensor(m, name);
  EosinTensor *t = m->tensors->pdata[idx];
  t->ndim = 4;
  for (int d = 0; d < 4; d++) {
    const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
    bool has_value = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    if (d == 0) {
      /* a symbolic batch takes @batch; a fixed one must equal it */
      if (has_value && dim->dim_value != batch)
        return load_error(err, m, "input '%s' has a fixed batch of %" G_GINT64_FORMAT
                          ", not %d; export it with a dynamic batch axis",
                          name, dim->dim_value, batch);
      t->dims[0] = batch;
      continue;
    }
    if (!has_value || dim->dim_value <= 0 || dim->dim_value > 65536)
      return load_error(err, m, "input '%s' dimension %d ('%s') cannot be resolved: export "
                        "with a fixed C, H and W", name, d,
                        has_value ? "invalid" : (dim->dim_param ? dim->dim_param : "?"));
    t->dims[d] = dim->dim_value;
  }
  t->shape_known = true;
  t->is_input = true;
  m->input = idx;
  return true;
}

EosinModel *eosin_model_load(const char *path, int batch, GError **err) {
  g_autofree char *buf = NULL;
  gsize len = 0;
  g_autoptr(GError) ferr = NULL;
  /* a FIFO or /dev/zero named as a model would hang or be read forever */
  if (!_eosin_read_input_file(path, "model", MAX_MODEL_BYTES, &buf, &len, &ferr)) {
    g_set_error_literal(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, ferr->message);
    return NULL;
  }
  return eosin_model_load_from_memory(path, buf, len, batch, err);
}

EosinModel *eosin_model_load_from_memory(const char *name, const void *buf, size_t len,
                                         int batch, GError **err) {
  g_autoptr(EosinModel) m = g_new0(EosinModel, 1);
  m->path = g_strdup(name);
  m->tensors = g_ptr_array_new_with_free_func(tensor_free);
  m->nodes = g_array_new(FALSE, TRUE, sizeof(EosinNode));
  m->by_name = g_hash_table_new(g_str_hash, g_str_equal);
  m->input = m->output = -1;
  m->batch = batch;
  if (batch < 1 || batch > 4096)
    return load_error(err, m, "batch %d is outside 1-4096", batch), NULL;
  if ((int64_t) len > MAX_MODEL_BYTES)
    return load_error(err, m, "%zu bytes is larger than the 2 GiB ONNX protobuf limit", len), NULL;
  Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, (const uint8_t *) buf);
  if (!mp)
    return load_error(err, m, "not a valid ONNX file (corrupt or truncated protobuf)"), NULL;
  bool ok = false;
  const Onnx__GraphProto *g = mp->graph;
  if (!g || !g->n_node) {
    load_error(err, m, "the file holds no graph");
    goto done;
  }
  m->opset = -1;
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
    if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx"))
      m->opset = o->has_version ? o->version : -1;
  }
  if (m->opset < 11 || m->opset > 17) {
    load_error(err, m, "opset %" G_GINT64_FORMAT " is not supported (11-17)", m->opset);
    goto done;
  }
  for (size_t i = 0; i < g->n_initializer; i++) {
    const Onnx__TensorProto *p = g->initializer[i];
    int idx = _eosin_graph_tensor(m, p->name ? p->name : ""); /* may grow the array */
    EosinTensor *t = m->tensors->pdata[idx];
    if (!read_tensor(m, p, t, "initializer", err))
      goto done;
  }
  for (size_t i = 0; i < g->n_input; i++) {
    const char *input = g->input[i]->name ? g->input[i]->name : "";
    if (g_hash_table_contains(m->by_name, input))
      continue; /* an initializer listed as input (older exporters) */
    if (m->input >= 0) {
      load_error(err, m, "more than one input ('%s' and '%s'); Eosin feeds one image tensor",
                 ((EosinTensor *) m->tensors->pdata[m->input])->name, input);
      goto done;
    }
    if (!read_input(m, g->input[i], batch, err))
      goto done;
  }
  if (m->input < 0) {
    load_error(err, m, "no image input");
    goto done;
  }
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *p = g->node[i];
    EosinNode n = {0};
    n.name = p->name && *p->name ? g_strdup(p->name)
                                 : g_strdup_printf("%s#%zu", p->op_type ? p->op_type : "?", i);
    g_array_append_val(m->nodes, n);
    EosinNode *np = &g_array_index(m->nodes, EosinNode, m->nodes->len - 1);
    int op = p->op_type ? _eosin_op_from_name(p->op_type) : -1;
    if (op < 0 || (p->domain && *p->domain && strcmp(p->domain, "ai.onnx"))) {
      load_error(err, m, "node %s: operator %s%s%s is not supported", np->name,
                 p->domain && *p->domain ? p->domain : "", p->domain && *p->domain ? "." : "",
                 p->op_type ? p->op_type : "(none)");
      goto done;
    }
    np->op = op;
    if (p->n_input > EOSIN_MAX_NODE_INPUTS || p->n_output < 1) {
      load_error(err, m, "node %s (%s): %zu inputs, %zu outputs", np->name, p->op_type,
                 p->n_input, p->n_output);
      goto done;
    }
    np->n_in = (int) p->n_input;
    for (size_t k = 0; k < p->n_input; k++)
      np->in[k] = p->input[k] && *p->input[k] ? _eosin_graph_tensor(m, p->input[k]) : -1;
    np->out = _eosin_graph_tensor(m, p->output[0]);
    EosinTensor *out = m->tensors->pdata[np->out];
    if (out->producer >= 0 || out->data || out->idata || out->is_input) {
      load_error(err, m, "node %s (%s): output '%s' is already defined", np->name, p->op_type,
                 out->name);
      goto done;
    }
    out->producer = (int) i;
    if (!read_attrs(m, p, np, err))
      goto done;
    if (op == EOSIN_OP_CONSTANT) {
      if (!out->data && !out->idata) {
        load_error(err, m, "node %s (Constant): no tensor value", np->name);
        goto done;
      }
      out->producer = -1; /* a constant, not a computed tensor */
    }
  }
  if (!g->n_output || !g->output[0]->name ||
      !g_hash_table_contains(m->by_name, g->output[0]->name)) {
    load_error(err, m, "the graph output is not produced by any node");
    goto done;
  }
  m->output = _eosin_graph_tensor(m, g->output[0]->name);
  ((EosinTensor *) m->tensors->pdata[m->output])->is_output = true;
  ok = _eosin_graph_prepare(m, err);
done:
  onnx__model_proto__free_unpacked(mp, NULL);
  return ok ? g_steal_pointer(&m) : NULL;
}
