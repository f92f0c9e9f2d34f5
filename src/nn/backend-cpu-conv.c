/*
 * backend-cpu-conv.c — the oneDNN CPU backend's convolution builders.
 * Conv takes in its Pad (as padding), the activations after it (post-ops)
 * and a residual Add whose other addend is already computed and dead
 * afterwards (the in-place sum post-op). Wide 3x3 convolutions run as
 * Winograd: oneDNN's own on AVX-512 (nChw16c), Eosin's
 * (backend-cpu-winograd.c) below it (nChw8c). ConvTranspose is oneDNN's
 * deconvolution with its activations. A convolution oneDNN has no
 * primitive for returns 0 and runs on the reference.
 */
#include "nn/backend-cpu.h"

#define T(i) cpu_tensor(c, i)

/* A convolution in oneDNN's terms, its folded Pad in the left padding. */
typedef struct {
  int xt;                       /* the tensor read: the folded Pad's input, else the node's */
  const EosinTensor *x, *w, *y;
  dnnl_dims_t pl, pr, strides, dil, sd, dd;
  dnnl_memory_desc_t wei_any, wei_user, bias_md;
  bool has_bias;
} ConvGeom;

/* Fills @g (zeroed by the caller) for Conv node @i. */
static void conv_geom(CpuCtx *c, int i, ConvGeom *g) {
  const EosinNode *n = cpu_node(c, i);
  const EosinAttrs *a = &n->a;
  g->xt = c->pad_of[i] >= 0 ? cpu_node(c, c->pad_of[i])->in[0] : n->in[0];
  const EosinTensor *x = g->x = T(g->xt), *w = g->w = T(n->in[1]), *y = g->y = T(n->out);
  int64_t G = a->group;
  dnnl_dims_t bd = {y->dims[1]};
  for (int k = 0; k < 2; k++) {
    g->pl[k] = a->pads[k];
    g->strides[k] = a->strides[k];
    g->dil[k] = a->dilations[k] - 1;
  }
  if (c->pad_of[i] >= 0) {
    const int64_t *pp = cpu_node(c, c->pad_of[i])->a.pads;
    g->pl[0] += pp[0], g->pl[1] += pp[1];
  }
  /* oneDNN wants the right padding that makes the output size exact */
  for (int k = 0; k < 2; k++)
    g->pr[k] = (y->dims[2 + k] - 1) * a->strides[k] + (a->kernel[k] - 1) * a->dilations[k] + 1 -
               x->dims[2 + k] - g->pl[k];
  cpu_dims_of(x, g->sd);
  cpu_dims_of(y, g->dd);
  if (G == 1) {
    dnnl_dims_t wd = {w->dims[0], w->dims[1], w->dims[2], w->dims[3]};
    dnnl_memory_desc_init_by_tag(&g->wei_user, 4, wd, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&g->wei_any, 4, wd, dnnl_f32, dnnl_format_tag_any);
  } else {
    dnnl_dims_t wd = {G, w->dims[0] / G, w->dims[1], w->dims[2], w->dims[3]};
    dnnl_memory_desc_init_by_tag(&g->wei_user, 5, wd, dnnl_f32, dnnl_goihw);
    dnnl_memory_desc_init_by_tag(&g->wei_any, 5, wd, dnnl_f32, dnnl_format_tag_any);
  }
  g->has_bias = n->n_in > 2 && n->in[2] >= 0;
  dnnl_memory_desc_init_by_tag(&g->bias_md, 1, bd, dnnl_f32, dnnl_x);
}

/* Fills @chain (zeroed by the caller) with the activations after Conv
 * node @i, then a residual Add of an addend already computed that nothing
 * reads later (the sum writes over it), then the activations after that.
 * Returns the Add node (its other addend in *@z), or -1. */
static int conv_chain(CpuCtx *c, int i, CpuChain *chain, int *z) {
  const EosinNode *n = cpu_node(c, i);
  _cpu_chain(c, n->out, chain);
  int add = -1, r[2];
  if (!T(chain->out)->is_output && _cpu_readers(c, chain->out, r, 2) == 1) {
    const EosinNode *an = cpu_node(c, r[0]);
    *z = an->in[0] == chain->out ? an->in[1] : an->in[0];
    if (an->op == EOSIN_OP_ADD && an->n_in == 2 && *z != chain->out && cpu_is_act(c, *z) &&
        c->rep[*z] >= 0 && cpu_same_dims(T(*z), T(chain->out)) &&
        cpu_same_dims(T(an->out), T(chain->out)) &&
        _cpu_can_overwrite(c, c->rep[*z], i, r[0]) && chain->n < CPU_MAX_POST) {
      add = r[0];
      _cpu_chain_add(chain, dnnl_alg_kind_undef, 0, 0);
      chain->nodes[chain->n_nodes++] = add;
      _cpu_chain(c, an->out, chain);
    }
  }
  return add;
}

/* The convolution's primitive descriptor (owned by the caller), with the
 * part of @chain oneDNN fuses in *@ch; NULL when oneDNN has none.
 *
 * First, for a wide 3x3 one, oneDNN's Winograd with the whole chain: it
 * has one only for AVX-512 (F(4x4, 3x3), or F(2x2, 3x3) on small
 * images), where nChw16c rules out Eosin's. There the direct kernel is
 * 95 % of a ResNet's time, and without Winograd Eosin only ties ONNX
 * Runtime (ResNet-18, 2 cores: 1.15x faster with it, a quarter less CPU
 * time, 1e-6 of the output apart). Elsewhere, or with a post-op it lacks
 * (Clip), the layouts oneDNN prefers for its direct kernel; where that is
 * its slow reference implementation (odd group sizes), plain NCHW and its
 * GEMM-based one. */
static dnnl_primitive_desc_t conv_pd(CpuCtx *c, const EosinNode *n, const ConvGeom *g,
                                     const CpuChain *chain, CpuChain *ch) {
  const EosinAttrs *a = &n->a;
  static const struct {
    dnnl_alg_kind_t alg;
    dnnl_format_tag_t tag;
  } tries[] = {{dnnl_convolution_winograd, dnnl_format_tag_any},
               {dnnl_convolution_direct, dnnl_format_tag_any},
               {dnnl_convolution_direct, dnnl_nchw}};
  bool wide = c->winograd && a->kernel[0] == 3 && a->kernel[1] == 3 && a->strides[0] == 1 &&
              a->strides[1] == 1 && a->dilations[0] == 1 && a->dilations[1] == 1 &&
              a->group == 1 && g->x->dims[1] >= 64 && g->y->dims[1] >= 64;
  dnnl_primitive_desc_t pd = NULL;
  for (size_t k = wide ? 0 : 1; k < G_N_ELEMENTS(tries); k++) {
    dnnl_memory_desc_t src_md, dst_md;
    dnnl_memory_desc_init_by_tag(&src_md, 4, g->sd, dnnl_f32, tries[k].tag);
    dnnl_memory_desc_init_by_tag(&dst_md, 4, g->dd, dnnl_f32, tries[k].tag);
    dnnl_convolution_desc_t cd;
    if (dnnl_dilated_convolution_forward_desc_init(
            &cd, dnnl_forward_inference, tries[k].alg, &src_md, &g->wei_any,
            g->has_bias ? &g->bias_md : NULL, &dst_md, g->strides, g->dil, g->pl,
            g->pr) != dnnl_success)
      continue;
    CpuChain try_ch = *chain;
    bool wino = tries[k].alg == dnnl_convolution_winograd;
    dnnl_primitive_desc_t got = wino ? _cpu_try_pd(c, &cd, &try_ch) : _cpu_make_pd(c, &cd, &try_ch);
    if (got && wino && _cpu_pd_is_ref(got)) {
      dnnl_primitive_desc_destroy(got);
      got = NULL;
    }
    if (!got)
      continue;
    if (pd && _cpu_pd_is_ref(got)) {
      dnnl_primitive_desc_destroy(got);
      continue;
    }
    if (pd)
      dnnl_primitive_desc_destroy(pd);
    pd = got, *ch = try_ch;
    if (!_cpu_pd_is_ref(got))
      break;
  }
  return pd;
}

/* Where oneDNN keeps nChw8c around it, a 3x3 convolution can run as
 * Winograd instead of the primitive, the layouts the same, with the whole
 * chain even where oneDNN took it apart. Sets *@wg (owned by the caller)
 * or leaves it NULL; false (with *@err) when its weights cannot be
 * allocated. */
static bool conv_winograd(CpuCtx *c, const EosinNode *n, const ConvGeom *g,
                          dnnl_primitive_desc_t pd, const CpuChain *chain, CpuWino **wg,
                          GError **err) {
  const dnnl_memory_desc_t *got_src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
  const dnnl_memory_desc_t *got_dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  dnnl_memory_desc_t blk_src, blk_dst;
  dnnl_memory_desc_init_by_tag(&blk_src, 4, g->sd, dnnl_f32, dnnl_nChw8c);
  dnnl_memory_desc_init_by_tag(&blk_dst, 4, g->dd, dnnl_f32, dnnl_nChw8c);
  *wg = NULL;
  if (!(c->winograd && _cpu_wino_usable(&n->a, g->x->dims[1], g->y->dims[1], chain) &&
        dnnl_memory_desc_equal(got_src, &blk_src) && dnnl_memory_desc_equal(got_dst, &blk_dst)))
    return true;
  *wg = _cpu_wino_new(g->x->dims, g->y->dims, g->pl[0], g->pl[1], g->w->data,
                      g->has_bias ? T(n->in[2])->data : NULL, chain);
  if (!*wg) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "cannot allocate Winograd weights");
    return false;
  }
  return true;
}

/* The value Conv node @i writes in layout @dst: with a residual Add
 * (@add >= 0, other addend @z) the sum reads the addend from dst, so a
 * value of it in dst's layout that is not the source (@xv), else a fresh
 * copy; -1 on an error. */
static int conv_out_value(CpuCtx *c, int i, int add, int z, int xv, const CpuChain *ch,
                          const dnnl_memory_desc_t *dst, GError **err) {
  if (add < 0)
    return cpu_out_value(c, ch->out, dst, -1);
  int zv = -1;
  for (int v = c->rep[z]; v >= 0 && zv < 0; v = cpu_val(c, v)->next_rep)
    if (dnnl_memory_desc_equal(&cpu_val(c, v)->md, dst) &&
        cpu_val(c, v)->storage != cpu_val(c, xv)->storage && _cpu_can_overwrite(c, v, i, add))
      zv = v;
  if (zv < 0 && (zv = _cpu_copy_value(c, c->rep[z], dst, err)) < 0)
    return -1;
  return cpu_out_value(c, ch->out, dst, zv);
}

/* Conv, with its Pad, activations and residual Add folded in. */
int _cpu_build_conv(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  ConvGeom g = {0};
  conv_geom(c, i, &g);
  CpuChain chain = {0}, ch;
  int z = -1, add = conv_chain(c, i, &chain, &z);
  dnnl_primitive_desc_t pd = conv_pd(c, n, &g, &chain, &ch);
  if (!pd)
    return 0;
  const dnnl_memory_desc_t *got_src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
  const dnnl_memory_desc_t *got_dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  const dnnl_memory_desc_t *got_wei = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  CpuWino *wg = NULL;
  if (!conv_winograd(c, n, &g, pd, &chain, &wg, err)) {
    dnnl_primitive_desc_destroy(pd);
    return -1;
  }
  if (wg)
    ch = chain;
  if (!ch.n_nodes)
    ch.out = n->out, add = -1;
  dnnl_memory_t wm = NULL, bm = NULL;
  if (!wg) {
    wm = _cpu_load_weights(c, &g.wei_user, g.w->data, got_wei, err);
    if (wm && g.has_bias)
      bm = _cpu_const_mem(c, &g.bias_md, T(n->in[2])->data, err);
  }
  int xv = wg || (wm && (!g.has_bias || bm)) ? _cpu_get_rep(c, g.xt, got_src, err) : -1;
  int yv = xv < 0 ? -1 : conv_out_value(c, i, add, z, xv, &ch, got_dst, err);
  if (yv < 0) {
    _cpu_wino_free(wg);
    dnnl_primitive_desc_destroy(pd);
    return -1;
  }
  if (wg) {
    dnnl_primitive_desc_destroy(pd);
    int s = _cpu_add_step(c, i, NULL, err);
    g_array_index(c->steps, CpuStep, s).wino = wg;
    _cpu_step_arg(c, s, DNNL_ARG_SRC, xv, NULL);
    _cpu_step_arg(c, s, DNNL_ARG_DST, yv, NULL);
    _cpu_chain_commit(c, &ch, i);
    return 1;
  }
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

/* ConvTranspose as a oneDNN deconvolution. */
int _cpu_build_deconv(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  const EosinAttrs *a = &n->a;
  const EosinTensor *x = T(n->in[0]), *w = T(n->in[1]), *y = T(n->out);
  int64_t G = a->group;
  dnnl_dims_t pl = {a->pads[0], a->pads[1]}, pr, strides = {a->strides[0], a->strides[1]};
  dnnl_dims_t dil = {a->dilations[0] - 1, a->dilations[1] - 1}, sd, dd, bd = {y->dims[1]};
  for (int k = 0; k < 2; k++)
    pr[k] = (x->dims[2 + k] - 1) * a->strides[k] + (a->kernel[k] - 1) * a->dilations[k] + 1 -
            y->dims[2 + k] - pl[k];
  cpu_dims_of(x, sd);
  cpu_dims_of(y, dd);
  dnnl_memory_desc_t src_md, dst_md, wei_any, wei_user, bias_md;
  dnnl_memory_desc_init_by_tag(&src_md, 4, sd, dnnl_f32, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&dst_md, 4, dd, dnnl_f32, dnnl_format_tag_any);
  /* ONNX weights are (C_in, C_out / group, kH, kW) */
  if (G == 1) {
    dnnl_dims_t wd = {w->dims[1], w->dims[0], w->dims[2], w->dims[3]};
    dnnl_memory_desc_init_by_tag(&wei_user, 4, wd, dnnl_f32, dnnl_iohw);
    dnnl_memory_desc_init_by_tag(&wei_any, 4, wd, dnnl_f32, dnnl_format_tag_any);
  } else {
    dnnl_dims_t wd = {G, w->dims[1], w->dims[0] / G, w->dims[2], w->dims[3]};
    dnnl_memory_desc_init_by_tag(&wei_user, 5, wd, dnnl_f32, dnnl_giohw);
    dnnl_memory_desc_init_by_tag(&wei_any, 5, wd, dnnl_f32, dnnl_format_tag_any);
  }
  bool has_bias = n->n_in > 2 && n->in[2] >= 0;
  dnnl_memory_desc_init_by_tag(&bias_md, 1, bd, dnnl_f32, dnnl_x);
  dnnl_deconvolution_desc_t dc;
  if (dnnl_dilated_deconvolution_forward_desc_init(&dc, dnnl_forward_inference,
                                                   dnnl_deconvolution_direct, &src_md, &wei_any,
                                                   has_bias ? &bias_md : NULL, &dst_md, strides,
                                                   dil, pl, pr) != dnnl_success)
    return 0;
  CpuChain ch = {0};
  _cpu_chain(c, n->out, &ch);
  dnnl_primitive_desc_t pd = _cpu_make_pd(c, &dc, &ch);
  if (!pd)
    return 0;
  if (!ch.n_nodes)
    ch.out = n->out;
  const dnnl_memory_desc_t *got_src = dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
  const dnnl_memory_desc_t *got_dst = dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  const dnnl_memory_desc_t *got_wei = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  dnnl_memory_t wm = _cpu_load_weights(c, &wei_user, w->data, got_wei, err), bm = NULL;
  if (wm && has_bias)
    bm = _cpu_const_mem(c, &bias_md, T(n->in[2])->data, err);
  int xv = wm && (!has_bias || bm) ? _cpu_get_rep(c, n->in[0], got_src, err) : -1;
  if (xv < 0) {
    dnnl_primitive_desc_destroy(pd);
    return -1;
  }
  int yv = cpu_out_value(c, ch.out, got_dst, -1);
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
