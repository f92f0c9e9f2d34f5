/*
 * backend-cpu.c — the CPU backend on oneDNN (Debian's libdnnl-dev).
 * First cut: convolutions (the bulk of the work in every network Eosin
 * runs) are oneDNN primitives created once per model at load, with weights
 * reordered once into the layout oneDNN picks and a following Relu or Clip
 * fused as a post-op; activations stay plain NCHW so every other operator
 * runs through the reference implementation. Blocked activation layouts,
 * more fused ops and pooling/inner-product primitives are the next steps.
 */
#include "backend.h"

#include <oneapi/dnnl/dnnl.h>

typedef struct {
  dnnl_primitive_t prim;
  dnnl_memory_t src, wei, bias, dst;
  int skip_node;    /* index of a fused Relu/Clip node, or -1 */
} ConvPrim;

typedef struct {
  const EosinModel *m;
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  float **buf;
  bool *owned;
  ConvPrim *conv;   /* per node; prim NULL where the reference runs */
  bool *fused;      /* per node: folded into the convolution before it */
} CpuCtx;

#define CHECK(call, what)                                                               \
  do {                                                                                  \
    dnnl_status_t st_ = (call);                                                         \
    if (st_ != dnnl_success) {                                                          \
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "oneDNN %s failed (status %d)", \
                  what, (int) st_);                                                     \
      return false;                                                                     \
    }                                                                                   \
  } while (0)

static bool cpu_init(void **ctx, const EosinBackendOptions *opt, GError **err) {
  CpuCtx *c = g_new0(CpuCtx, 1);
  *ctx = c;
  CHECK(dnnl_engine_create(&c->engine, dnnl_cpu, 0), "engine");
  CHECK(dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags), "stream");
  return true;
}

static bool cpu_supports(void *ctx, const EosinModel *m, const EosinNode *n) {
  return n->op >= 0 && n->op < EOSIN_OP_COUNT; /* the rest runs on the reference */
}

static void cpu_destroy(void *ctx) {
  CpuCtx *c = ctx;
  if (c->conv)
    for (guint i = 0; i < c->m->nodes->len; i++) {
      ConvPrim *p = &c->conv[i];
      if (p->prim)
        dnnl_primitive_destroy(p->prim);
      dnnl_memory_t mems[] = {p->src, p->wei, p->bias, p->dst};
      for (int k = 0; k < 4; k++)
        if (mems[k])
          dnnl_memory_destroy(mems[k]);
    }
  if (c->buf)
    for (guint i = 0; i < c->m->tensors->len; i++)
      if (c->owned[i])
        g_free(c->buf[i]);
  g_free(c->buf);
  g_free(c->owned);
  g_free(c->conv);
  g_free(c->fused);
  if (c->stream)
    dnnl_stream_destroy(c->stream);
  if (c->engine)
    dnnl_engine_destroy(c->engine);
  g_free(c);
}

static const EosinTensor *TT(const CpuCtx *c, int i) {
  return c->m->tensors->pdata[i];
}

/* The only node reading tensor @t, or -1. */
static int sole_consumer(const CpuCtx *c, int t) {
  int found = -1;
  for (guint i = 0; i < c->m->nodes->len; i++) {
    const EosinNode *n = &g_array_index(c->m->nodes, EosinNode, i);
    for (int k = 0; k < n->n_in; k++)
      if (n->in[k] == t) {
        if (found >= 0)
          return -1;
        found = i;
      }
  }
  return found;
}

/* Builds the oneDNN convolution for node @i. */
static bool make_conv(CpuCtx *c, guint i, GError **err) {
  const EosinNode *n = &g_array_index(c->m->nodes, EosinNode, i);
  const EosinTensor *x = TT(c, n->in[0]), *w = TT(c, n->in[1]), *y = TT(c, n->out);
  const EosinAttrs *a = &n->a;
  ConvPrim *p = &c->conv[i];
  p->skip_node = -1;
  int64_t G = a->group;
  dnnl_memory_desc_t src_md, dst_md, wei_any, wei_user, bias_md;
  dnnl_dims_t sd = {x->dims[0], x->dims[1], x->dims[2], x->dims[3]};
  dnnl_dims_t dd = {y->dims[0], y->dims[1], y->dims[2], y->dims[3]};
  CHECK(dnnl_memory_desc_init_by_tag(&src_md, 4, sd, dnnl_f32, dnnl_nchw), "src desc");
  CHECK(dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, dnnl_nchw), "dst desc");
  if (G == 1) {
    dnnl_dims_t wd = {w->dims[0], w->dims[1], w->dims[2], w->dims[3]};
    CHECK(dnnl_memory_desc_init_by_tag(&wei_user, 4, wd, dnnl_f32, dnnl_oihw), "weights");
    CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 4, wd, dnnl_f32, dnnl_format_tag_any), "w");
  } else {
    dnnl_dims_t wd = {G, w->dims[0] / G, w->dims[1], w->dims[2], w->dims[3]};
    CHECK(dnnl_memory_desc_init_by_tag(&wei_user, 5, wd, dnnl_f32, dnnl_goihw), "weights");
    CHECK(dnnl_memory_desc_init_by_tag(&wei_any, 5, wd, dnnl_f32, dnnl_format_tag_any), "w");
  }
  bool has_bias = n->n_in > 2 && n->in[2] >= 0;
  dnnl_dims_t bd = {y->dims[1]};
  CHECK(dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_x), "bias desc");
  dnnl_dims_t strides = {a->strides[0], a->strides[1]};
  dnnl_dims_t dil = {a->dilations[0] - 1, a->dilations[1] - 1};
  dnnl_dims_t pl = {a->pads[0], a->pads[1]}, pr = {a->pads[2], a->pads[3]};
  /* oneDNN wants the right padding that makes the output size exact */
  for (int k = 0; k < 2; k++) {
    int64_t in = x->dims[2 + k], out = y->dims[2 + k], kk = a->kernel[k];
    pr[k] = (out - 1) * a->strides[k] + (kk - 1) * a->dilations[k] + 1 - in - pl[k];
  }
  dnnl_convolution_desc_t cd;
  CHECK(dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                   dnnl_convolution_direct, &src_md, &wei_any,
                                                   has_bias ? &bias_md : NULL, &dst_md, strides,
                                                   dil, pl, pr),
        "convolution desc");
  /* fuse a following Relu or Clip that nothing else reads */
  dnnl_primitive_attr_t attr;
  CHECK(dnnl_primitive_attr_create(&attr), "attr");
  int next = y->is_output ? -1 : sole_consumer(c, n->out);
  const EosinNode *nn = next >= 0 ? &g_array_index(c->m->nodes, EosinNode, next) : NULL;
  if (nn && (nn->op == EOSIN_OP_RELU || nn->op == EOSIN_OP_CLIP) && nn->in[0] == n->out) {
    dnnl_post_ops_t po;
    dnnl_post_ops_create(&po);
    if (nn->op == EOSIN_OP_RELU)
      dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0, 0);
    else
      dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, nn->a.clip_min, nn->a.clip_max);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
    p->skip_node = next;
    c->fused[next] = true;
  }
  dnnl_primitive_desc_t pd;
  dnnl_status_t st = dnnl_primitive_desc_create(&pd, &cd, attr, c->engine, NULL);
  dnnl_primitive_attr_destroy(attr);
  CHECK(st, "convolution primitive desc");
  const dnnl_memory_desc_t *wei_md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  int out_tensor = p->skip_node >= 0 ? g_array_index(c->m->nodes, EosinNode, p->skip_node).out
                                     : n->out;
  CHECK(dnnl_memory_create(&p->src, &src_md, c->engine, c->buf[n->in[0]]), "src memory");
  CHECK(dnnl_memory_create(&p->dst, &dst_md, c->engine, c->buf[out_tensor]), "dst memory");
  CHECK(dnnl_memory_create(&p->wei, wei_md, c->engine, DNNL_MEMORY_ALLOCATE), "weights memory");
  if (has_bias)
    CHECK(dnnl_memory_create(&p->bias, &bias_md, c->engine, c->buf[n->in[2]]), "bias memory");
  /* weights: reordered once into oneDNN's layout */
  dnnl_memory_t user;
  CHECK(dnnl_memory_create(&user, &wei_user, c->engine, w->data), "user weights");
  dnnl_primitive_desc_t rpd;
  dnnl_primitive_t reorder;
  CHECK(dnnl_reorder_primitive_desc_create(&rpd, &wei_user, c->engine, wei_md, c->engine, NULL),
        "weights reorder desc");
  CHECK(dnnl_primitive_create(&reorder, rpd), "weights reorder");
  dnnl_exec_arg_t rargs[] = {{DNNL_ARG_FROM, user}, {DNNL_ARG_TO, p->wei}};
  CHECK(dnnl_primitive_execute(reorder, c->stream, 2, rargs), "weights reorder run");
  dnnl_stream_wait(c->stream);
  dnnl_primitive_destroy(reorder);
  dnnl_primitive_desc_destroy(rpd);
  dnnl_memory_destroy(user);
  st = dnnl_primitive_create(&p->prim, pd);
  dnnl_primitive_desc_destroy(pd);
  CHECK(st, "convolution primitive");
  return true;
}

static bool cpu_load(void *ctx, const EosinModel *m, GError **err) {
  CpuCtx *c = ctx;
  c->m = m;
  _eosin_ref_buffers(m, &c->buf, &c->owned);
  c->conv = g_new0(ConvPrim, m->nodes->len);
  c->fused = g_new0(bool, m->nodes->len);
  for (guint i = 0; i < m->nodes->len; i++) {
    const EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (!n->removed && n->op == EOSIN_OP_CONV && !c->fused[i] && !make_conv(c, i, err)) {
      g_prefix_error(err, "model %s: node %s: ", m->path, n->name);
      return false;
    }
  }
  return true;
}

static bool cpu_run(void *ctx, const float *input, float *output, GError **err) {
  CpuCtx *c = ctx;
  const EosinModel *m = c->m;
  const EosinTensor *in = TT(c, m->input), *out = TT(c, m->output);
  int64_t nin = 1, nout = 1;
  for (int d = 0; d < in->ndim; d++)
    nin *= in->dims[d];
  for (int d = 0; d < out->ndim; d++)
    nout *= out->dims[d];
  memcpy(c->buf[m->input], input, nin * sizeof(float));
  for (guint i = 0; i < m->nodes->len; i++) {
    const EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (c->fused[i])
      continue;
    ConvPrim *p = &c->conv[i];
    if (!p->prim) {
      _eosin_ref_node(m, c->buf, n);
      continue;
    }
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->src}, {DNNL_ARG_WEIGHTS, p->wei},
                               {DNNL_ARG_DST, p->dst}, {DNNL_ARG_BIAS, p->bias}};
    CHECK(dnnl_primitive_execute(p->prim, c->stream, p->bias ? 4 : 3, args), n->name);
    CHECK(dnnl_stream_wait(c->stream), n->name);
  }
  memcpy(output, c->buf[m->output], nout * sizeof(float));
  return true;
}

const EosinBackendOps _eosin_backend_cpu = {
    .name = "cpu-onednn",
    .init = cpu_init,
    .supports = cpu_supports,
    .load = cpu_load,
    .run = cpu_run,
    .destroy = cpu_destroy,
};
