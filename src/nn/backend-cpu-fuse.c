/*
 * backend-cpu-fuse.c — what the oneDNN CPU backend's builders share:
 * fusion (a chain of activations after an op becomes its post-ops, x *
 * Sigmoid(x) becomes swish; a zero Pad before a convolution or average
 * pooling becomes its padding), primitive descriptors with the fallback
 * from a fused primitive oneDNN only has as its slow reference
 * implementation to the plain one, and the one-time reorder of weights
 * into the layout a primitive wants. The builders themselves:
 * backend-cpu-conv.c (Conv, ConvTranspose), backend-cpu-ops.c (the rest).
 */
#include "nn/backend-cpu.h"

#define T(i) cpu_tensor(c, i)

bool _cpu_chain_add(CpuChain *ch, dnnl_alg_kind_t alg, float alpha, float beta) {
  if (ch->n == CPU_MAX_POST)
    return false;
  ch->alg[ch->n] = alg, ch->alpha[ch->n] = alpha, ch->beta[ch->n] = beta;
  ch->n++;
  return true;
}

/* Appends node @i as post-ops when it is an activation; false otherwise. */
bool _cpu_chain_eltwise(const CpuCtx *c, int i, CpuChain *ch) {
  const EosinNode *n = cpu_node(c, i);
  if (ch->n + 2 > CPU_MAX_POST)
    return false;
  switch (n->op) {
  case EOSIN_OP_RELU: return _cpu_chain_add(ch, dnnl_eltwise_relu, 0, 0);
  case EOSIN_OP_CLIP: return _cpu_chain_add(ch, dnnl_eltwise_clip, n->a.clip_min, n->a.clip_max);
  case EOSIN_OP_SIGMOID: return _cpu_chain_add(ch, dnnl_eltwise_logistic, 0, 0);
  case EOSIN_OP_HARD_SWISH: return _cpu_chain_add(ch, dnnl_eltwise_hardswish, 0, 0);
  case EOSIN_OP_HARD_SIGMOID: /* max(0, min(1, alpha x + beta)) */
    _cpu_chain_add(ch, dnnl_eltwise_linear, n->a.alpha, n->a.beta);
    return _cpu_chain_add(ch, dnnl_eltwise_clip, 0, 1);
  default: return false;
  }
}

/* The Mul of x * Sigmoid(x) when @sig is that Sigmoid of tensor @t and
 * nothing else reads either; -1 otherwise. */
int _cpu_swish_mul(const CpuCtx *c, int t, int sig) {
  const EosinNode *s = cpu_node(c, sig);
  int r[3];
  if (s->op != EOSIN_OP_SIGMOID || s->in[0] != t || T(s->out)->is_output ||
      _cpu_readers(c, s->out, r, 2) != 1)
    return -1;
  const EosinNode *m = cpu_node(c, r[0]);
  if (m->op != EOSIN_OP_MUL || m->n_in != 2 || c->fused[r[0]] ||
      !((m->in[0] == t && m->in[1] == s->out) || (m->in[1] == t && m->in[0] == s->out)))
    return -1;
  int rt[3];
  if (_cpu_readers(c, t, rt, 3) != 2)
    return -1;
  return r[0];
}

/* Extends @ch with the activations that follow tensor @t, each read only by
 * the next (a Sigmoid and a Mul of x * Sigmoid(x) count as one). */
void _cpu_chain(CpuCtx *c, int t, CpuChain *ch) {
  ch->out = t;
  for (;;) {
    int r[3];
    if (T(t)->is_output || ch->n_nodes + 2 > 2 * CPU_MAX_POST)
      return;
    int nr = _cpu_readers(c, t, r, 3);
    if (nr == 1 && cpu_node(c, r[0])->in[0] == t && !c->fused[r[0]] &&
        _cpu_chain_eltwise(c, r[0], ch)) {
      ch->nodes[ch->n_nodes++] = r[0];
      t = cpu_node(c, r[0])->out;
    } else if (nr == 2 && ch->n < CPU_MAX_POST) {
      int sig = cpu_node(c, r[0])->op == EOSIN_OP_SIGMOID ? r[0] : r[1];
      int mul = _cpu_swish_mul(c, t, sig);
      if (mul < 0)
        return;
      _cpu_chain_add(ch, dnnl_eltwise_swish, 1, 0);
      ch->nodes[ch->n_nodes++] = sig;
      ch->nodes[ch->n_nodes++] = mul;
      t = cpu_node(c, mul)->out;
    } else {
      return;
    }
    ch->out = t;
  }
}

/* Marks the nodes of @ch as done by node @i's step. */
void _cpu_chain_commit(CpuCtx *c, const CpuChain *ch, int i) {
  for (int k = 0; k < ch->n_nodes; k++) {
    c->fused[ch->nodes[k]] = true;
    c->exec_at[ch->nodes[k]] = i;
  }
}

/* Primitive descriptor for the op descriptor @desc with the post-ops of
 * @ch (may be NULL), or NULL when oneDNN has no such primitive. */
dnnl_primitive_desc_t _cpu_try_pd(CpuCtx *c, const void *desc, const CpuChain *ch) {
  dnnl_primitive_desc_t pd;
  dnnl_primitive_attr_t attr = _cpu_attr(ch);
  dnnl_status_t st = dnnl_primitive_desc_create(&pd, desc, attr, c->engine, NULL);
  dnnl_primitive_attr_destroy(attr);
  return st == dnnl_success ? pd : NULL;
}

bool _cpu_pd_is_ref(const_dnnl_primitive_desc_t pd) {
  const char *impl = "";
  dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
  return !strncmp(impl, "ref", 3);
}

/* try_pd, and when the fused primitive does not exist, or exists only as
 * oneDNN's reference implementation where the plain one has a kernel (its
 * AVX2 convolutions take no activation before a sum: the reference is 100x
 * slower), the plain one with *ch emptied (its nodes then run on their own). */
dnnl_primitive_desc_t _cpu_make_pd(CpuCtx *c, const void *desc, CpuChain *ch) {
  dnnl_primitive_desc_t pd = _cpu_try_pd(c, desc, ch);
  if (ch && ch->n && (!pd || _cpu_pd_is_ref(pd))) {
    CpuChain bare = *ch;
    bare.n = bare.n_nodes = 0;
    dnnl_primitive_desc_t plain = _cpu_try_pd(c, desc, &bare);
    if (plain && (!pd || !_cpu_pd_is_ref(plain))) {
      if (pd)
        dnnl_primitive_desc_destroy(pd);
      pd = plain, *ch = bare;
    } else if (plain) {
      dnnl_primitive_desc_destroy(plain);
    }
  }
  return pd;
}

/* A zero Pad read only by a Conv, or by an AveragePool without padding of
 * its own, becomes that node's padding: marked in c->pad_of. */
void _cpu_fold_pads(CpuCtx *c) {
  for (guint p = 0; p < c->m->nodes->len; p++) {
    const EosinNode *n = cpu_node(c, p);
    int r[2];
    if (n->removed || n->op != EOSIN_OP_PAD || T(n->out)->is_output ||
        _cpu_readers(c, n->out, r, 2) != 1)
      continue;
    const EosinNode *q = cpu_node(c, r[0]);
    bool ok = q->in[0] == n->out && q->in[1] != n->out &&
              (q->op == EOSIN_OP_CONV ||
               (q->op == EOSIN_OP_AVERAGE_POOL && !q->a.ceil_mode && !q->a.pads[0] &&
                !q->a.pads[1] && !q->a.pads[2] && !q->a.pads[3]));
    if (ok) {
      c->pad_of[r[0]] = p;
      c->fused[p] = true;
      c->exec_at[p] = r[0];
    }
  }
}

/* Weights: @data in layout @user reordered once into @want. */
dnnl_memory_t _cpu_load_weights(CpuCtx *c, const dnnl_memory_desc_t *user, const float *data,
                                const dnnl_memory_desc_t *want, GError **err) {
  dnnl_memory_t w = _cpu_const_mem(c, want, DNNL_MEMORY_ALLOCATE, err), u = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t r = NULL;
  bool ok = w && dnnl_memory_create(&u, user, c->engine, (void *) data) == dnnl_success &&
            dnnl_reorder_primitive_desc_create(&pd, user, c->engine, want, c->engine, NULL) ==
                dnnl_success &&
            dnnl_primitive_create(&r, pd) == dnnl_success;
  if (ok) {
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, u}, {DNNL_ARG_TO, w}};
    ok = dnnl_primitive_execute(r, c->stream, 2, args) == dnnl_success &&
         dnnl_stream_wait(c->stream) == dnnl_success;
  }
  if (r)
    dnnl_primitive_destroy(r);
  if (pd)
    dnnl_primitive_desc_destroy(pd);
  if (u)
    dnnl_memory_destroy(u);
  if (!ok && w)
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "oneDNN weights reorder failed");
  return ok ? w : NULL;
}
