/*
 * backend-cpu.c — the CPU backend on oneDNN (Debian's libdnnl-dev 2.6): the
 * execution plan built once per model at load, its memory, and running it.
 * backend-cpu-conv.c and backend-cpu-ops.c turn nodes into primitives
 * (convolutions with fused activations and residual sums:
 * backend-cpu-fuse.c; pooling, eltwise, binary, inner product,
 * concat, softmax, pad; wide 3x3 convolutions as Winograd: oneDNN's on
 * AVX-512, Eosin's in backend-cpu-winograd.c below it); nodes it does not
 * map run on the reference implementation with reorders to plain NCHW
 * around them. Activations stay in the layouts oneDNN picks (nChw8c on
 * AVX2, nChw16c on AVX-512) between oneDNN primitives,
 * and every activation lives in one arena whose ranges are reused once the
 * tensor in them is dead (see backend-cpu.h for the model of the plan).
 */
#include "nn/backend-cpu.h"

#include <stdlib.h>

#define ALIGN 64

static bool cpu_init(void **ctx, const EosinBackendOptions *opt, GError **err) {
  CpuCtx *c = g_new0(CpuCtx, 1);
  *ctx = c;
  if (dnnl_engine_create(&c->engine, dnnl_cpu, 0) != dnnl_success ||
      dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags) != dnnl_success) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "oneDNN: cannot start the CPU engine");
    return false;
  }
  /* EOSIN_CPU_WINOGRAD=0: oneDNN's direct kernels only, neither Eosin's
   * Winograd nor oneDNN's (comparisons) */
  c->winograd = g_strcmp0(g_getenv("EOSIN_CPU_WINOGRAD"), "0") != 0;
  return true;
}

static bool cpu_supports(void *ctx, const EosinModel *m, const EosinNode *n) {
  return n->op >= 0 && n->op < EOSIN_OP_COUNT; /* the rest runs on the reference */
}

static void destroy_mem(gpointer p) {
  dnnl_memory_destroy(p);
}

static void cpu_destroy(void *ctx) {
  CpuCtx *c = ctx;
  if (c->steps) {
    for (guint i = 0; i < c->steps->len; i++) {
      CpuStep *s = &g_array_index(c->steps, CpuStep, i);
      if (s->prim)
        dnnl_primitive_destroy(s->prim);
      _cpu_wino_free(s->wino);
      if (s->scratch)
        dnnl_memory_destroy(s->scratch);
      g_array_unref(s->args);
      g_free(s->exec);
    }
    g_array_unref(c->steps);
  }
  if (c->vals) {
    for (guint i = 0; i < c->vals->len; i++)
      if (cpu_val(c, i)->mem)
        dnnl_memory_destroy(cpu_val(c, i)->mem);
    g_array_unref(c->vals);
  }
  if (c->stores)
    g_array_unref(c->stores);
  if (c->consts)
    g_ptr_array_unref(c->consts);
  if (c->blobs)
    g_ptr_array_unref(c->blobs);
  free(c->arena);
  free(c->scratch);
  g_free(c->rep);
  g_free(c->fused);
  g_free(c->exec_at);
  g_free(c->pad_of);
  g_free(c->buf);
  if (c->shadow_tensors)
    g_ptr_array_unref(c->shadow_tensors);
  if (c->stream)
    dnnl_stream_destroy(c->stream);
  if (c->engine)
    dnnl_engine_destroy(c->engine);
  g_free(c);
}

/* The dense row-major (NCHW for 4-D) layout of @t. */
void _cpu_plain_md(const EosinTensor *t, dnnl_memory_desc_t *md) {
  dnnl_dims_t d = {1};
  for (int k = 0; k < t->ndim; k++)
    d[k] = t->dims[k];
  dnnl_memory_desc_init_by_strides(md, MAX(t->ndim, 1), d, dnnl_f32, NULL);
}

/* A new value of @tensor in layout @md, in @storage or (-1) a new one. */
int _cpu_new_value(CpuCtx *c, int tensor, const dnnl_memory_desc_t *md, int storage) {
  if (storage < 0) {
    CpuStorage s = {.size = dnnl_memory_desc_get_size(md), .first = G_MAXINT, .last = -1};
    g_array_append_val(c->stores, s);
    storage = c->stores->len - 1;
  }
  CpuValue v = {.tensor = tensor, .md = *md, .storage = storage, .next_rep = -1};
  g_array_append_val(c->vals, v);
  int id = c->vals->len - 1;
  if (tensor >= 0) {
    /* the first value of a tensor is its primary one; others are copies */
    int *link = &c->rep[tensor];
    while (*link >= 0)
      link = &cpu_val(c, *link)->next_rep;
    *link = id;
  }
  return id;
}

/* Appends a step for @node with the primitive of @pd (consumed). */
int _cpu_add_step(CpuCtx *c, int node, dnnl_primitive_desc_t pd, GError **err) {
  CpuStep s = {.node = node, .zero_val = -1, .args = g_array_new(FALSE, FALSE, sizeof(CpuArg))};
  if (pd) {
    s.scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    dnnl_status_t st = dnnl_primitive_create(&s.prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
      g_array_unref(s.args);
      CPU_CHECK(st, "primitive creation");
    }
  }
  g_array_append_val(c->steps, s);
  return c->steps->len - 1;
}

void _cpu_step_arg(CpuCtx *c, int step, int arg, int val, dnnl_memory_t mem) {
  CpuArg a = {.arg = arg, .val = val, .mem = mem};
  g_array_append_val(g_array_index(c->steps, CpuStep, step).args, a);
}

/* A copy of value @from in layout @md, made by a reorder step appended now. */
int _cpu_copy_value(CpuCtx *c, int from, const dnnl_memory_desc_t *md, GError **err) {
  dnnl_primitive_attr_t attr = _cpu_attr(NULL);
  dnnl_primitive_desc_t pd;
  dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, &cpu_val(c, from)->md, c->engine,
                                                        md, c->engine, attr);
  dnnl_primitive_attr_destroy(attr);
  CPU_CHECK(st, "layout reorder");
  int s = _cpu_add_step(c, -1, pd, err);
  if (s < 0)
    return -1;
  int v = _cpu_new_value(c, cpu_val(c, from)->tensor, md, -1);
  _cpu_step_arg(c, s, DNNL_ARG_FROM, from, NULL);
  _cpu_step_arg(c, s, DNNL_ARG_TO, v, NULL);
  return v;
}

/* The value of tensor @t in layout @md: an existing one, or a reorder of
 * its primary value appended now. */
int _cpu_get_rep(CpuCtx *c, int t, const dnnl_memory_desc_t *md, GError **err) {
  if (c->rep[t] < 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "tensor %s is read before it is computed",
                cpu_tensor(c, t)->name);
    return -1;
  }
  for (int v = c->rep[t]; v >= 0; v = cpu_val(c, v)->next_rep)
    if (dnnl_memory_desc_equal(&cpu_val(c, v)->md, md))
      return v;
  return _cpu_copy_value(c, c->rep[t], md, err);
}

/* Up to @max distinct nodes reading tensor @t (into @r); their count. */
int _cpu_readers(const CpuCtx *c, int t, int *r, int max) {
  int n = 0;
  for (guint i = 0; i < c->m->nodes->len; i++) {
    const EosinNode *nd = cpu_node(c, i);
    if (nd->removed || nd->op == EOSIN_OP_CONSTANT)
      continue;
    for (int k = 0; k < nd->n_in; k++)
      if (nd->in[k] == t) {
        if (n < max)
          r[n] = i;
        n++;
        break;
      }
  }
  return n;
}

/* Whether node @node's step may write over value @v: no tensor held in its
 * storage is a graph output or is read by a step after @node's (a read by
 * node @except, the one being fused into @node, is allowed). */
bool _cpu_can_overwrite(const CpuCtx *c, int v, int node, int except) {
  int storage = cpu_val(c, v)->storage;
  for (guint w = 0; w < c->vals->len; w++) {
    const CpuValue *x = cpu_val(c, w);
    if (x->storage != storage || x->tensor < 0)
      continue;
    if (cpu_tensor(c, x->tensor)->is_output)
      return false;
    for (guint i = 0; i < c->m->nodes->len; i++) {
      const EosinNode *nd = cpu_node(c, i);
      if (nd->removed || (int) i == except || c->exec_at[i] <= node)
        continue;
      for (int k = 0; k < nd->n_in; k++)
        if (nd->in[k] == x->tensor)
          return false;
    }
  }
  return true;
}

/* Attributes with user scratchpad and the post-ops of @ch (may be NULL). */
dnnl_primitive_attr_t _cpu_attr(const CpuChain *ch) {
  dnnl_primitive_attr_t attr;
  dnnl_primitive_attr_create(&attr);
  dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  if (ch && ch->n) {
    dnnl_post_ops_t po;
    dnnl_post_ops_create(&po);
    for (int k = 0; k < ch->n; k++)
      if (ch->alg[k] == dnnl_alg_kind_undef)
        dnnl_post_ops_append_sum(po, 1.0f);
      else
        dnnl_post_ops_append_eltwise(po, 1.0f, ch->alg[k], ch->alpha[k], ch->beta[k]);
    dnnl_primitive_attr_set_post_ops(attr, po);
    dnnl_post_ops_destroy(po);
  }
  return attr;
}

/* A memory of layout @md over @data (or oneDNN-allocated when @data is
 * DNNL_MEMORY_ALLOCATE), freed in destroy. */
dnnl_memory_t _cpu_const_mem(CpuCtx *c, const dnnl_memory_desc_t *md, void *data, GError **err) {
  dnnl_memory_t mem;
  if (dnnl_memory_create(&mem, md, c->engine, data) != dnnl_success) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "oneDNN memory creation failed");
    return NULL;
  }
  g_ptr_array_add(c->consts, mem);
  return mem;
}

/* Runs node @i on the reference: its activation inputs in plain layout,
 * its output a new plain value. */
static int add_ref_step(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  dnnl_memory_desc_t md;
  int ins[EOSIN_MAX_NODE_INPUTS], nin = 0;
  for (int k = 0; k < n->n_in; k++) {
    if (n->in[k] < 0 || !cpu_is_act(c, n->in[k]))
      continue;
    _cpu_plain_md(cpu_tensor(c, n->in[k]), &md);
    if ((ins[nin++] = _cpu_get_rep(c, n->in[k], &md, err)) < 0)
      return -1;
  }
  int s = _cpu_add_step(c, i, NULL, err);
  for (int k = 0; k < nin; k++)
    _cpu_step_arg(c, s, DNNL_ARG_SRC, ins[k], NULL);
  _cpu_plain_md(cpu_tensor(c, n->out), &md);
  _cpu_step_arg(c, s, DNNL_ARG_DST, _cpu_new_value(c, n->out, &md, -1), NULL);
  return 1;
}

/* Identity, Dropout, Flatten and Reshape: the output is the plain input
 * under another shape, sharing its storage. */
static int add_alias(CpuCtx *c, int i, GError **err) {
  const EosinNode *n = cpu_node(c, i);
  dnnl_memory_desc_t md;
  _cpu_plain_md(cpu_tensor(c, n->in[0]), &md);
  int v = _cpu_get_rep(c, n->in[0], &md, err);
  if (v < 0)
    return -1;
  _cpu_plain_md(cpu_tensor(c, n->out), &md);
  _cpu_new_value(c, n->out, &md, cpu_val(c, v)->storage);
  return 1;
}

static int cmp_size_desc(const void *a, const void *b, void *data) {
  const CpuStorage *s = data;
  size_t x = s[*(const int *) a].size, y = s[*(const int *) b].size;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Places every storage in the arena: largest first, each at the lowest
 * offset not overlapping a storage already placed whose lifetime overlaps
 * its own (the greedy-by-size plan of TFLite's arena planner). */
static void place_storages(CpuCtx *c) {
  int ns = c->stores->len;
  CpuStorage *s = (CpuStorage *) c->stores->data;
  g_autofree int *order = g_new(int, ns);
  g_autofree int *placed = g_new(int, ns);
  int np = 0;
  for (int i = 0; i < ns; i++)
    order[i] = i;
  g_qsort_with_data(order, ns, sizeof(int), cmp_size_desc, s);
  c->arena_size = 0;
  for (int k = 0; k < ns; k++) {
    CpuStorage *x = &s[order[k]];
    if (x->last < 0)
      continue; /* never touched */
    size_t size = (x->size + ALIGN - 1) / ALIGN * ALIGN, at = 0;
    /* candidates in offset order: restart whenever a conflict moves @at */
    for (bool moved = true; moved;) {
      moved = false;
      for (int j = 0; j < np; j++) {
        CpuStorage *y = &s[placed[j]];
        size_t ysize = (y->size + ALIGN - 1) / ALIGN * ALIGN;
        if (y->last < x->first || x->last < y->first)
          continue;
        if (at < y->offset + ysize && y->offset < at + size) {
          at = y->offset + ysize;
          moved = true;
        }
      }
    }
    x->offset = at;
    placed[np++] = order[k];
    c->arena_size = MAX(c->arena_size, at + size);
  }
}

/* Lifetimes, arena, memories and execution arguments: the end of load. */
static int finish_plan(CpuCtx *c, GError **err) {
  guint nsteps = c->steps->len;
  CpuStorage *st = (CpuStorage *) c->stores->data;
  for (guint i = 0; i < nsteps; i++) {
    CpuStep *s = &g_array_index(c->steps, CpuStep, i);
    for (guint k = 0; k < s->args->len; k++) {
      int v = g_array_index(s->args, CpuArg, k).val;
      if (v < 0)
        continue;
      CpuStorage *x = &st[cpu_val(c, v)->storage];
      x->first = MIN(x->first, (int) i);
      x->last = MAX(x->last, (int) i);
    }
  }
  /* the input is written before the first step, the output read after the last */
  st[cpu_val(c, c->input_val)->storage].first = 0;
  st[cpu_val(c, c->input_val)->storage].last = MAX(st[cpu_val(c, c->input_val)->storage].last, 0);
  st[cpu_val(c, c->output_val)->storage].last = nsteps;
  st[cpu_val(c, c->output_val)->storage].first =
      MIN(st[cpu_val(c, c->output_val)->storage].first, (int) nsteps);
  place_storages(c);
  if (posix_memalign(&c->arena, 4096, MAX(c->arena_size, ALIGN))) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "cannot allocate %zu bytes of activations",
                c->arena_size);
    return -1;
  }
  for (guint v = 0; v < c->vals->len; v++) {
    CpuValue *x = cpu_val(c, v);
    if (st[x->storage].last < 0)
      continue;
    char *p = (char *) c->arena + st[x->storage].offset;
    CPU_CHECK(dnnl_memory_create(&x->mem, &x->md, c->engine, p), "memory creation");
    /* the reference reads a tensor's first plain value, as _cpu_get_rep
     * gives it (a later one can be a copy a fused sum writes over) */
    if (x->tensor >= 0 && !c->buf[x->tensor]) {
      dnnl_memory_desc_t plain;
      _cpu_plain_md(cpu_tensor(c, x->tensor), &plain);
      if (dnnl_memory_desc_equal(&plain, &x->md))
        c->buf[x->tensor] = (float *) p;
    }
  }
  /* one scratchpad for all primitives: steps run one at a time */
  for (guint i = 0; i < nsteps; i++) {
    CpuStep *s = &g_array_index(c->steps, CpuStep, i);
    if (s->prim)
      c->scratch_size = MAX(c->scratch_size, dnnl_memory_desc_get_size(&s->scratch_md));
    if (s->wino)
      c->scratch_size = MAX(c->scratch_size, _cpu_wino_scratch(s->wino));
  }
  if (c->scratch_size && posix_memalign(&c->scratch, 4096, c->scratch_size)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "cannot allocate the oneDNN scratchpad");
    return -1;
  }
  for (guint i = 0; i < nsteps; i++) {
    CpuStep *s = &g_array_index(c->steps, CpuStep, i);
    if (!s->prim)
      continue;
    s->exec = g_new(dnnl_exec_arg_t, s->args->len + 1);
    for (guint k = 0; k < s->args->len; k++) {
      CpuArg *a = &g_array_index(s->args, CpuArg, k);
      s->exec[s->n_exec++] = (dnnl_exec_arg_t){a->arg, a->val >= 0 ? cpu_val(c, a->val)->mem
                                                                   : a->mem};
    }
    if (dnnl_memory_desc_get_size(&s->scratch_md)) {
      CPU_CHECK(dnnl_memory_create(&s->scratch, &s->scratch_md, c->engine, c->scratch),
                "scratchpad memory");
      s->exec[s->n_exec++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch};
    }
  }
  return 1;
}

static int build_plan(CpuCtx *c, GError **err) {
  const EosinModel *m = c->m;
  dnnl_memory_desc_t md;
  _cpu_plain_md(cpu_tensor(c, m->input), &md);
  c->input_val = _cpu_new_value(c, m->input, &md, -1);
  _cpu_fold_pads(c);
  for (guint i = 0; i < m->nodes->len; i++) {
    const EosinNode *n = cpu_node(c, i);
    if (n->removed || n->op == EOSIN_OP_CONSTANT || c->fused[i])
      continue;
    int r;
    if (n->op == EOSIN_OP_IDENTITY || n->op == EOSIN_OP_DROPOUT || n->op == EOSIN_OP_FLATTEN ||
        n->op == EOSIN_OP_RESHAPE) {
      r = add_alias(c, i, err);
    } else {
      r = _cpu_build(c, i, err);
      /* the folded Pad runs on its own after all, then the node itself
       * below (add_ref_step returns 1 on success, which must not skip it) */
      if (r == 0 && c->pad_of[i] >= 0)
        r = add_ref_step(c, c->pad_of[i], err) < 0 ? -1 : 0;
      if (r == 0)
        r = add_ref_step(c, i, err);
    }
    if (r < 0) {
      g_prefix_error(err, "model %s: node %s (%s): ", m->path, n->name, _eosin_op_name(n->op));
      return -1;
    }
  }
  _cpu_plain_md(cpu_tensor(c, m->output), &md);
  if ((c->output_val = _cpu_get_rep(c, m->output, &md, err)) < 0) {
    g_prefix_error(err, "model %s: output: ", m->path);
    return -1;
  }
  return finish_plan(c, err);
}

/* Whether node @n computes each batch element on its own (so the batch
 * can run as slices through primitives made for a smaller one). */
static bool per_sample(const EosinModel *m, const EosinNode *n) {
  const EosinTensor *x = m->tensors->pdata[n->in[0]], *y = m->tensors->pdata[n->out];
  int64_t axis = n->a.axis < 0 ? n->a.axis + x->ndim : n->a.axis;
  switch (n->op) {
  case EOSIN_OP_CONCAT:
  case EOSIN_OP_SOFTMAX:
  case EOSIN_OP_FLATTEN: return axis > 0;
  case EOSIN_OP_GEMM: return !n->a.trans_a;
  case EOSIN_OP_ADD:
  case EOSIN_OP_MUL:
    /* a constant operand with a batch dimension of its own */
    for (int k = 0; k < n->n_in; k++) {
      const EosinTensor *t = n->in[k] >= 0 ? m->tensors->pdata[n->in[k]] : NULL;
      if (t && t->data && t->ndim == y->ndim && t->dims[0] > 1)
        return false;
    }
    return true;
  default: return true;
  }
}

/* The sub-batch to run @m in: the smallest divisor of the batch from
 * SUB_BATCH on that also gives its largest activation SUB_BATCH_BYTES,
 * when every op is per sample and every activation has the batch as its
 * first dimension; else the batch. Slices keep the arena small (ResNet-18
 * batch 64: 174 MB peak RSS instead of 404) at the same speed: the
 * primitives still have mb x channel blocks x rows to share among the
 * threads. A small network on small images (a 64 px cell classifier) needs
 * more samples a slice, or each primitive call is too little work to share
 * and the threads wait on each other. */
#define SUB_BATCH 4
#define SUB_BATCH_BYTES (8u << 20)
static int sub_batch(const EosinModel *m) {
  int b = m->batch;
  int64_t largest = 1;
  for (guint i = 0; i < m->tensors->len; i++) {
    const EosinTensor *x = m->tensors->pdata[i];
    if (!x || x->data || x->idata || x->ndim < 1)
      continue;
    int64_t e = 1;
    for (int d = 1; d < x->ndim; d++)
      e *= MAX(x->dims[d], 1);
    largest = MAX(largest, e);
  }
  int s = MAX(SUB_BATCH, (int) MIN((int64_t) b, (int64_t) SUB_BATCH_BYTES / (4 * largest)));
  while (s < b && b % s)
    s++;
  if (s >= b)
    return b;
  for (guint i = 0; i < m->nodes->len; i++) {
    const EosinNode *n = &g_array_index(m->nodes, EosinNode, i);
    if (n->removed || n->op == EOSIN_OP_CONSTANT)
      continue;
    if (!per_sample(m, n))
      return b;
    for (int k = -1; k < n->n_in; k++) {
      int t = k < 0 ? n->out : n->in[k];
      const EosinTensor *x = t >= 0 ? m->tensors->pdata[t] : NULL;
      if (x && !x->data && !x->idata && (x->ndim < 1 || x->dims[0] != b))
        return b;
    }
  }
  return s;
}

static bool cpu_load(void *ctx, const EosinModel *model, GError **err) {
  CpuCtx *c = ctx;
  guint nt = model->tensors->len, nn = model->nodes->len;
  /* the plan is built for the sub-batch: a model whose activations have it
   * as their first dimension */
  int sub = sub_batch(model);
  c->model = model;
  c->n_sub = model->batch / sub;
  c->shadow = *model;
  c->shadow.batch = sub;
  c->shadow_tensors = g_ptr_array_new_full(nt, g_free);
  for (guint t = 0; t < nt; t++) {
    EosinTensor *x = g_memdup2(model->tensors->pdata[t], sizeof(EosinTensor));
    if (!x->data && !x->idata && x->ndim >= 1 && c->n_sub > 1)
      x->dims[0] = sub;
    g_ptr_array_add(c->shadow_tensors, x);
  }
  c->shadow.tensors = c->shadow_tensors;
  c->m = &c->shadow;
  c->vals = g_array_new(FALSE, TRUE, sizeof(CpuValue));
  c->stores = g_array_new(FALSE, TRUE, sizeof(CpuStorage));
  c->steps = g_array_new(FALSE, TRUE, sizeof(CpuStep));
  c->consts = g_ptr_array_new_with_free_func(destroy_mem);
  c->blobs = g_ptr_array_new_with_free_func(g_free);
  c->rep = g_new(int, nt);
  c->buf = g_new0(float *, nt);
  for (guint t = 0; t < nt; t++) {
    c->rep[t] = -1;
    c->buf[t] = cpu_tensor(c, t)->data; /* constants; activations once placed */
  }
  c->fused = g_new0(bool, nn);
  c->exec_at = g_new(int, nn);
  c->pad_of = g_new(int, nn);
  for (guint i = 0; i < nn; i++)
    c->exec_at[i] = i, c->pad_of[i] = -1;
  return build_plan(c, err) > 0;
}

/* One sub-batch: @input's slice in, every step, @output's slice out. */
static bool run_slice(CpuCtx *c, const float *input, float *output, GError **err) {
  const EosinModel *m = c->m;
  void *in, *out;
  dnnl_memory_get_data_handle(cpu_val(c, c->input_val)->mem, &in);
  dnnl_memory_get_data_handle(cpu_val(c, c->output_val)->mem, &out);
  memcpy(in, input, _eosin_tensor_numel(cpu_tensor(c, m->input)) * sizeof(float));
  for (guint i = 0; i < c->steps->len; i++) {
    CpuStep *s = &g_array_index(c->steps, CpuStep, i);
    if (s->zero_val >= 0) {
      void *p;
      dnnl_memory_get_data_handle(cpu_val(c, s->zero_val)->mem, &p);
      memset(p, 0, dnnl_memory_desc_get_size(&cpu_val(c, s->zero_val)->md));
    }
    if (s->prim) {
      dnnl_status_t st = dnnl_primitive_execute(s->prim, c->stream, s->n_exec, s->exec);
      if (st != dnnl_success) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "model %s: node %s: oneDNN failed "
                    "(status %d)", m->path, s->node >= 0 ? cpu_node(c, s->node)->name
                                                          : "(layout reorder)", (int) st);
        return false;
      }
    } else if (s->wino) {
      void *src = NULL, *dst = NULL;
      for (guint k = 0; k < s->args->len; k++) {
        const CpuArg *a = &g_array_index(s->args, CpuArg, k);
        dnnl_memory_get_data_handle(cpu_val(c, a->val)->mem, a->arg == DNNL_ARG_SRC ? &src : &dst);
      }
      dnnl_stream_wait(c->stream);
      _cpu_wino_run(s->wino, src, dst, c->scratch);
    } else {
      /* the reference reads what the primitives before it wrote */
      dnnl_stream_wait(c->stream);
      _eosin_ref_node(m, c->buf, cpu_node(c, s->node));
    }
  }
  dnnl_stream_wait(c->stream);
  memcpy(output, out, _eosin_tensor_numel(cpu_tensor(c, m->output)) * sizeof(float));
  return true;
}

static bool cpu_run(void *ctx, const float *input, float *output, GError **err) {
  CpuCtx *c = ctx;
  int64_t nin = _eosin_tensor_numel(cpu_tensor(c, c->m->input)), nout = _eosin_tensor_numel(cpu_tensor(c, c->m->output));
  for (int k = 0; k < c->n_sub; k++)
    if (!run_slice(c, input + k * nin, output + k * nout, err))
      return false;
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
