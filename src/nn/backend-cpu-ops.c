/*
 * backend-cpu-ops.c — the oneDNN CPU backend's builders for every op but
 * the convolutions (backend-cpu-conv.c): pooling, eltwise, binary, inner
 * product, concat, softmax, pad and an unfolded BatchNormalization, each
 * turning one node (and the activations after it, as post-ops:
 * backend-cpu-fuse.c) into oneDNN primitives created once at load; and
 * _cpu_build, which picks the builder. A builder that meets a case oneDNN
 * does not create a primitive for returns 0 and the node runs on the
 * reference.
 */
#include "nn/backend-cpu.h"

#define T(i) cpu_tensor(c, i)

/* MaxPool, AveragePool (with a folded Pad) and GlobalAveragePool. */
static int build_pool(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  const EosinAttrs *a = &n->a;
  int xt = c->pad_of[i] >= 0 ? cpu_node(c, c->pad_of[i])->in[0] : n->in[0];
  const EosinTensor *x = T(xt), *y = T(n->out);
  if (c->rep[xt] < 0)
    return 0;
  bool global = n->op == EOSIN_OP_GLOBAL_AVERAGE_POOL;
  dnnl_dims_t k, s, d = {0, 0}, pl = {0, 0}, pr = {0, 0}, dd;
  dnnl_alg_kind_t alg = n->op == EOSIN_OP_MAX_POOL            ? dnnl_pooling_max
                        : !global && a->count_include_pad ? dnnl_pooling_avg_include_padding
                                                          : dnnl_pooling_avg_exclude_padding;
  for (int j = 0; j < 2; j++) {
    k[j] = global ? x->dims[2 + j] : a->kernel[j];
    s[j] = global ? 1 : a->strides[j];
    if (global)
      continue;
    d[j] = a->dilations[j] - 1;
    pl[j] = a->pads[j];
    int64_t pe = a->pads[2 + j];
    if (c->pad_of[i] >= 0) {
      const int64_t *pp = cpu_node(c, c->pad_of[i])->a.pads;
      pl[j] += pp[j], pe += pp[2 + j];
      alg = dnnl_pooling_avg_include_padding; /* the padded zeros count */
    }
    /* ceil_mode: the right padding that gives the extra output */
    int64_t exact = (y->dims[2 + j] - 1) * s[j] + (k[j] - 1) * a->dilations[j] + 1 -
                    x->dims[2 + j] - pl[j];
    pr[j] = a->ceil_mode ? exact : pe;
    /* the reference counts only explicit padding in the divisor */
    if (alg == dnnl_pooling_avg_include_padding && exact > pe)
      return 0;
  }
  cpu_dims_of(y, dd);
  int xv = c->rep[xt];
  dnnl_memory_desc_t dst_md;
  dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, dnnl_format_tag_any);
  dnnl_pooling_v2_desc_t pdesc;
  if (dnnl_pooling_v2_forward_desc_init(&pdesc, dnnl_forward_inference, alg, &cpu_val(c, xv)->md,
                                        &dst_md, s, k, d, pl, pr) != dnnl_success)
    return 0;
  CpuChain ch = {0};
  _cpu_chain(c, n->out, &ch);
  dnnl_primitive_desc_t pd = _cpu_make_pd(c, &pdesc, &ch);
  if (!pd)
    return 0;
  if (!ch.n_nodes)
    ch.out = n->out;
  int yv = cpu_out_value(c, ch.out, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), -1);
  int st = _cpu_add_step(c, i, pd, err);
  if (st < 0)
    return -1;
  _cpu_step_arg(c, st, DNNL_ARG_SRC, xv, NULL);
  _cpu_step_arg(c, st, DNNL_ARG_DST, yv, NULL);
  _cpu_chain_commit(c, &ch, i);
  return 1;
}

/* Relu, Clip, Sigmoid (x * Sigmoid(x): swish), HardSigmoid, HardSwish,
 * with the activations after it as post-ops; in place when the input is
 * dead afterwards. */
static int build_eltwise(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  int xt = n->in[0], rd[3], except = -1;
  if (c->rep[xt] < 0)
    return 0;
  CpuChain ch = {0};
  if (n->op == EOSIN_OP_SIGMOID && _cpu_readers(c, xt, rd, 3) == 2 &&
      (except = _cpu_swish_mul(c, xt, i)) >= 0) {
    _cpu_chain_add(&ch, dnnl_eltwise_swish, 1, 0);
    ch.nodes[ch.n_nodes++] = except;
    ch.out = cpu_node(c, except)->out;
  } else {
    _cpu_chain_eltwise(c, i, &ch);
    ch.out = n->out;
  }
  int own = ch.n, own_nodes = ch.n_nodes, own_out = ch.out;
  _cpu_chain(c, ch.out, &ch);
  int xv = c->rep[xt];
  const dnnl_memory_desc_t *md = &cpu_val(c, xv)->md;
  dnnl_eltwise_desc_t ed;
  if (dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_inference, ch.alg[0], md, ch.alpha[0],
                                     ch.beta[0]) != dnnl_success)
    return 0;
  /* the first item is the primitive itself, the rest post-ops: with the
   * activations after it if oneDNN fuses them, else only its own */
  CpuChain post = ch;
  post.n = ch.n - 1;
  memmove(post.alg, ch.alg + 1, post.n * sizeof ch.alg[0]);
  memmove(post.alpha, ch.alpha + 1, post.n * sizeof ch.alpha[0]);
  memmove(post.beta, ch.beta + 1, post.n * sizeof ch.beta[0]);
  dnnl_primitive_desc_t pd = _cpu_try_pd(c, &ed, &post);
  if (!pd && post.n > own - 1) {
    post.n = own - 1, post.n_nodes = own_nodes, post.out = own_out;
    pd = _cpu_try_pd(c, &ed, &post);
  }
  if (!pd)
    return 0;
  int yv = cpu_out_value(c, post.out, md, _cpu_can_overwrite(c, xv, i, except) ? xv : -1);
  int s = _cpu_add_step(c, i, pd, err);
  if (s < 0)
    return -1;
  _cpu_step_arg(c, s, DNNL_ARG_SRC, xv, NULL);
  _cpu_step_arg(c, s, DNNL_ARG_DST, yv, NULL);
  _cpu_chain_commit(c, &post, i);
  return 1;
}

/* Add and Mul: the operand of the output's shape is src0, the other
 * (same shape, or broadcast like squeeze-excite's N x C x 1 x 1) src1. */
static int build_binary(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  const EosinTensor *y = T(n->out);
  if (n->n_in != 2)
    return 0;
  int s0 = n->in[0], s1 = n->in[1];
  if (!(cpu_same_dims(T(s0), y) && cpu_is_act(c, s0))) {
    s0 = n->in[1], s1 = n->in[0];
    if (!(cpu_same_dims(T(s0), y) && cpu_is_act(c, s0)))
      return 0;
  }
  if (c->rep[s0] < 0 || (cpu_is_act(c, s1) && c->rep[s1] < 0) || (!cpu_is_act(c, s1) && !T(s1)->data))
    return 0;
  int v0 = c->rep[s0], v1 = -1;
  const dnnl_memory_desc_t *md0 = &cpu_val(c, v0)->md;
  dnnl_memory_desc_t md1;
  const EosinTensor *b = T(s1);
  bool view = false;
  if (cpu_is_act(c, s1) && cpu_same_dims(b, y)) {
    md1 = *md0; /* same layout as src0: the fast path */
  } else if (cpu_is_act(c, s1) && b->ndim == y->ndim) {
    md1 = cpu_val(c, c->rep[s1])->md; /* broadcast in its own layout */
  } else {
    /* constant or lower rank: plain, with leading 1s */
    dnnl_dims_t d;
    for (int k = 0; k < y->ndim; k++) {
      int kb = k - (y->ndim - b->ndim);
      d[k] = kb >= 0 ? b->dims[kb] : 1;
    }
    dnnl_memory_desc_init_by_strides(&md1, y->ndim, d, dnnl_f32, NULL);
    view = cpu_is_act(c, s1);
  }
  dnnl_binary_desc_t bd;
  if (dnnl_binary_desc_init(&bd, n->op == EOSIN_OP_ADD ? dnnl_binary_add : dnnl_binary_mul, md0,
                            &md1, md0) != dnnl_success)
    return 0;
  CpuChain ch = {0};
  _cpu_chain(c, n->out, &ch);
  dnnl_primitive_desc_t pd = _cpu_make_pd(c, &bd, &ch);
  if (!pd)
    return 0;
  if (!ch.n_nodes)
    ch.out = n->out;
  dnnl_memory_t m1 = NULL;
  if (!cpu_is_act(c, s1)) {
    m1 = _cpu_const_mem(c, &md1, b->data, err);
  } else if (view) {
    dnnl_memory_desc_t plain;
    _cpu_plain_md(b, &plain);
    int p = _cpu_get_rep(c, s1, &plain, err);
    v1 = p < 0 ? -1 : _cpu_new_value(c, -1, &md1, cpu_val(c, p)->storage);
  } else {
    v1 = _cpu_get_rep(c, s1, &md1, err);
  }
  if (!m1 && v1 < 0) {
    dnnl_primitive_desc_destroy(pd);
    return -1;
  }
  bool inplace = _cpu_can_overwrite(c, v0, i, -1) &&
                 (v1 < 0 || cpu_val(c, v1)->storage != cpu_val(c, v0)->storage);
  int yv = cpu_out_value(c, ch.out, md0, inplace ? v0 : -1);
  int s = _cpu_add_step(c, i, pd, err);
  if (s < 0)
    return -1;
  _cpu_step_arg(c, s, DNNL_ARG_SRC_0, v0, NULL);
  _cpu_step_arg(c, s, DNNL_ARG_SRC_1, v1, m1);
  _cpu_step_arg(c, s, DNNL_ARG_DST, yv, NULL);
  _cpu_chain_commit(c, &ch, i);
  return 1;
}

/* Gemm (not transA) and MatMul with constant weights as inner product:
 * alpha folded into the weights, beta into the bias. */
static int build_inner_product(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  bool gemm = n->op == EOSIN_OP_GEMM;
  if (gemm && n->a.trans_a)
    return 0;
  const EosinTensor *x = T(n->in[0]), *w = T(n->in[1]), *y = T(n->out);
  bool tb = gemm && n->a.trans_b;
  float alpha = gemm ? n->a.alpha : 1, beta = gemm ? n->a.beta : 1;
  int64_t M = y->dims[0], N = y->dims[1], K = x->dims[1];
  dnnl_dims_t sd = {M, K}, wd = {N, K}, dd = {M, N}, bd = {N};
  dnnl_memory_desc_t src_md, wei_user, wei_any, bias_md, dst_md;
  dnnl_memory_desc_init_by_tag(&src_md, 2, sd, dnnl_f32, dnnl_ab);
  dnnl_memory_desc_init_by_tag(&wei_user, 2, wd, dnnl_f32, tb ? dnnl_oi : dnnl_io);
  dnnl_memory_desc_init_by_tag(&wei_any, 2, wd, dnnl_f32, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_x);
  dnnl_memory_desc_init_by_tag(&dst_md, 2, dd, dnnl_f32, dnnl_ab);
  bool has_bias = gemm && n->n_in > 2 && n->in[2] >= 0;
  dnnl_inner_product_desc_t ipd;
  if (dnnl_inner_product_forward_desc_init(&ipd, dnnl_forward_inference, &src_md, &wei_any,
                                           has_bias ? &bias_md : NULL, &dst_md) != dnnl_success)
    return 0;
  CpuChain ch = {0};
  _cpu_chain(c, n->out, &ch);
  dnnl_primitive_desc_t pd = _cpu_make_pd(c, &ipd, &ch);
  if (!pd)
    return 0;
  if (!ch.n_nodes)
    ch.out = n->out;
  const float *wdata = w->data;
  if (alpha != 1) {
    float *scaled = g_new(float, N * K);
    for (int64_t k = 0; k < N * K; k++)
      scaled[k] = alpha * w->data[k];
    g_ptr_array_add(c->blobs, scaled);
    wdata = scaled;
  }
  dnnl_memory_t wm = _cpu_load_weights(c, &wei_user, wdata,
                                  dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), err);
  dnnl_memory_t bm = NULL;
  if (wm && has_bias) {
    const EosinTensor *bt = T(n->in[2]);
    float *bias = g_new(float, N);
    for (int64_t k = 0; k < N; k++)
      bias[k] = beta * bt->data[bt->dims[0] == N && bt->ndim ? k : 0];
    g_ptr_array_add(c->blobs, bias);
    bm = _cpu_const_mem(c, &bias_md, bias, err);
  }
  int xv = wm && (!has_bias || bm) ? _cpu_get_rep(c, n->in[0], &src_md, err) : -1;
  if (xv < 0) {
    dnnl_primitive_desc_destroy(pd);
    return -1;
  }
  int yv = cpu_out_value(c, ch.out, &dst_md, -1);
  int s = _cpu_add_step(c, i, pd, err);
  if (s < 0)
    return -1;
  _cpu_step_arg(c, s, DNNL_ARG_SRC, xv, NULL);
  _cpu_step_arg(c, s, DNNL_ARG_WEIGHTS, -1, wm);
  if (bm)
    _cpu_step_arg(c, s, DNNL_ARG_BIAS, -1, bm);
  _cpu_step_arg(c, s, DNNL_ARG_DST, yv, NULL);
  _cpu_chain_commit(c, &ch, i);
  return 1;
}

/* Concat of activations in their own layouts; oneDNN picks the output's. */
static int build_concat(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  const EosinTensor *y = T(n->out);
  dnnl_memory_desc_t mds[EOSIN_MAX_NODE_INPUTS], dst_md;
  for (int k = 0; k < n->n_in; k++) {
    if (n->in[k] < 0 || !cpu_is_act(c, n->in[k]) || c->rep[n->in[k]] < 0)
      return 0;
    mds[k] = cpu_val(c, c->rep[n->in[k]])->md;
  }
  dnnl_dims_t dd;
  cpu_dims_of(y, dd);
  dnnl_memory_desc_init_by_tag(&dst_md, y->ndim, dd, dnnl_f32, dnnl_format_tag_any);
  dnnl_primitive_attr_t attr = _cpu_attr(NULL);
  dnnl_primitive_desc_t pd;
  dnnl_status_t st = dnnl_concat_primitive_desc_create(&pd, &dst_md, n->n_in, (int) n->a.axis,
                                                       mds, attr, c->engine);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success)
    return 0;
  int yv = cpu_out_value(c, n->out, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), -1);
  int s = _cpu_add_step(c, i, pd, err);
  if (s < 0)
    return -1;
  for (int k = 0; k < n->n_in; k++)
    _cpu_step_arg(c, s, DNNL_ARG_MULTIPLE_SRC + k, c->rep[n->in[k]], NULL);
  _cpu_step_arg(c, s, DNNL_ARG_DST, yv, NULL);
  return 1;
}

/* Softmax over one axis (opset 13, or the last axis before it, where the
 * flattened-trailing-dims rule gives the same). */
static int build_softmax(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  const EosinTensor *x = T(n->in[0]);
  int64_t axis = n->a.axis < 0 ? n->a.axis + x->ndim : n->a.axis;
  if (c->rep[n->in[0]] < 0 || axis < 0 || axis >= x->ndim ||
      (c->m->opset < 13 && axis != x->ndim - 1))
    return 0;
  int xv = c->rep[n->in[0]];
  const dnnl_memory_desc_t *md = &cpu_val(c, xv)->md;
  dnnl_softmax_desc_t sd;
  if (dnnl_softmax_forward_desc_init(&sd, dnnl_forward_inference, md, (int) axis) != dnnl_success)
    return 0;
  dnnl_primitive_desc_t pd = _cpu_make_pd(c, &sd, NULL);
  if (!pd)
    return 0;
  int yv = cpu_out_value(c, n->out, md, -1);
  int s = _cpu_add_step(c, i, pd, err);
  if (s < 0)
    return -1;
  _cpu_step_arg(c, s, DNNL_ARG_SRC, xv, NULL);
  _cpu_step_arg(c, s, DNNL_ARG_DST, yv, NULL);
  return 1;
}

/* Zero Pad of H and W: the output zero-filled, the input reordered into
 * its interior, in the input's layout when that is a known 4-D one. */
static int build_pad(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  const EosinTensor *x = T(n->in[0]), *y = T(n->out);
  if (c->rep[n->in[0]] < 0 || x->ndim != 4)
    return 0;
  static const dnnl_format_tag_t tags[] = {dnnl_nChw8c, dnnl_nChw16c, dnnl_nhwc, dnnl_nchw};
  dnnl_dims_t sd, dd, off = {0, 0, n->a.pads[0], n->a.pads[1]};
  cpu_dims_of(x, sd);
  cpu_dims_of(y, dd);
  int xv = c->rep[n->in[0]];
  dnnl_format_tag_t tag = dnnl_nchw;
  for (size_t k = 0; k < G_N_ELEMENTS(tags); k++) {
    dnnl_memory_desc_t md;
    dnnl_memory_desc_init_by_tag(&md, 4, sd, dnnl_f32, tags[k]);
    if (dnnl_memory_desc_equal(&md, &cpu_val(c, xv)->md)) {
      tag = tags[k];
      break;
    }
  }
  dnnl_memory_desc_t src_md, dst_md, sub;
  dnnl_memory_desc_init_by_tag(&src_md, 4, sd, dnnl_f32, tag);
  dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, tag);
  if (dnnl_memory_desc_init_submemory(&sub, &dst_md, sd, off) != dnnl_success)
    return 0;
  dnnl_primitive_attr_t attr = _cpu_attr(NULL);
  dnnl_primitive_desc_t pd;
  dnnl_status_t st =
      dnnl_reorder_primitive_desc_create(&pd, &src_md, c->engine, &sub, c->engine, attr);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success)
    return 0;
  if ((xv = _cpu_get_rep(c, n->in[0], &src_md, err)) < 0) {
    dnnl_primitive_desc_destroy(pd);
    return -1;
  }
  int yv = cpu_out_value(c, n->out, &dst_md, -1);
  int view = _cpu_new_value(c, -1, &sub, cpu_val(c, yv)->storage);
  int s = _cpu_add_step(c, i, pd, err);
  if (s < 0)
    return -1;
  g_array_index(c->steps, CpuStep, s).zero_val = yv;
  _cpu_step_arg(c, s, DNNL_ARG_FROM, xv, NULL);
  _cpu_step_arg(c, s, DNNL_ARG_TO, view, NULL);
  return 1;
}

/* BatchNormalization not folded into a convolution (DenseNet's after a
 * Concat), with a Relu after it fused. */
static int build_bnorm(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  int xt = n->in[0];
  if (c->rep[xt] < 0 || T(xt)->ndim < 2)
    return 0;
  int xv = c->rep[xt], r[2];
  const dnnl_memory_desc_t *md = &cpu_val(c, xv)->md;
  unsigned flags = dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift;
  CpuChain ch = {.out = n->out};
  if (!T(n->out)->is_output && _cpu_readers(c, n->out, r, 2) == 1 &&
      cpu_node(c, r[0])->op == EOSIN_OP_RELU && !c->fused[r[0]]) {
    ch.nodes[ch.n_nodes++] = r[0];
    ch.out = cpu_node(c, r[0])->out;
  }
  dnnl_primitive_desc_t pd = NULL;
  for (int attempt = 0; attempt < 2 && !pd; attempt++) {
    if (attempt == 1) {
      if (!ch.n_nodes)
        break;
      ch.n_nodes = 0, ch.out = n->out;
    }
    dnnl_batch_normalization_desc_t bd;
    if (dnnl_batch_normalization_forward_desc_init(
            &bd, dnnl_forward_inference, md, n->a.epsilon,
            flags | (ch.n_nodes ? dnnl_fuse_norm_relu : 0)) == dnnl_success)
      pd = _cpu_try_pd(c, &bd, NULL);
  }
  if (!pd)
    return 0;
  static const int args[] = {DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
  dnnl_memory_t mem[4];
  dnnl_dims_t cd = {T(xt)->dims[1]};
  dnnl_memory_desc_t cmd;
  dnnl_memory_desc_init_by_tag(&cmd, 1, cd, dnnl_f32, dnnl_x);
  for (int k = 0; k < 4; k++)
    if (!(mem[k] = _cpu_const_mem(c, &cmd, T(n->in[1 + k])->data, err))) {
      dnnl_primitive_desc_destroy(pd);
      return -1;
    }
  int yv = cpu_out_value(c, ch.out, md, _cpu_can_overwrite(c, xv, i, -1) ? xv : -1);
  int s = _cpu_add_step(c, i, pd, err);
  if (s < 0)
    return -1;
  _cpu_step_arg(c, s, DNNL_ARG_SRC, xv, NULL);
  for (int k = 0; k < 4; k++)
    _cpu_step_arg(c, s, args[k], -1, mem[k]);
  _cpu_step_arg(c, s, DNNL_ARG_DST, yv, NULL);
  _cpu_chain_commit(c, &ch, i);
  return 1;
}

int _cpu_build(CpuCtx *c, int i, GError **err) {
  switch (cpu_node(c, i)->op) {
  case EOSIN_OP_CONV: return _cpu_build_conv(c, i, err);
  case EOSIN_OP_CONV_TRANSPOSE: return _cpu_build_deconv(c, i, err);
  case EOSIN_OP_BATCH_NORM: return build_bnorm(c, i, err);
  case EOSIN_OP_MAX_POOL:
  case EOSIN_OP_AVERAGE_POOL:
  case EOSIN_OP_GLOBAL_AVERAGE_POOL: return build_pool(c, i, err);
  case EOSIN_OP_RELU:
  case EOSIN_OP_CLIP:
  case EOSIN_OP_SIGMOID:
  case EOSIN_OP_HARD_SIGMOID:
  case EOSIN_OP_HARD_SWISH: return build_eltwise(c, i, err);
  case EOSIN_OP_ADD:
  case EOSIN_OP_MUL: return build_binary(c, i, err);
  case EOSIN_OP_GEMM:
  case EOSIN_OP_MATMUL: return build_inner_product(c, i, err);
  case EOSIN_OP_CONCAT: return build_concat(c, i, err);
  case EOSIN_OP_SOFTMAX: return build_softmax(c, i, err);
  case EOSIN_OP_PAD: return build_pad(c, i, err);
  default: return 0; /* Resize: the reference */
  }
}
