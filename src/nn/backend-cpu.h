/*
 * backend-cpu.h — private to the oneDNN CPU backend (backend-cpu.c: the
 * execution plan, memory planning and running; backend-cpu-conv.c and
 * backend-cpu-ops.c: one builder per operator that turns graph nodes into
 * oneDNN primitives; backend-cpu-fuse.c: the post-op fusion and primitive
 * descriptors they share; backend-cpu-winograd.c: Winograd 3x3
 * convolutions on AVX2).
 *
 * The plan is a list of steps in node order. Each step is a oneDNN
 * primitive (with its post-op fusions), a 3x3 convolution run as Winograd
 * (backend-cpu-winograd.c, with the same fusions) or a node run by the
 * reference implementation. Activations are "values": a tensor in one memory layout
 * (oneDNN's blocked layouts between oneDNN ops, plain NCHW around the
 * reference); a tensor may have several values when consumers need other
 * layouts (each made by a reorder step). Values live in "storages", byte
 * ranges of one arena placed by liveness at load; in-place ops (a
 * convolution's fused residual sum, eltwise, binary) give their output
 * value the storage of an input that is dead afterwards.
 */
#pragma once

#include "nn/backend.h"

#include <oneapi/dnnl/dnnl.h>

#define CPU_MAX_POST 16

typedef struct {
  int tensor;              /* the model tensor it holds; -1 for a step-private view */
  dnnl_memory_desc_t md;   /* its layout */
  int storage;
  int next_rep;            /* another value of the same tensor (other layout), or -1 */
  dnnl_memory_t mem;       /* made once the arena is placed */
} CpuValue;

typedef struct {
  size_t size, offset;
  int first, last;         /* the steps that touch it: its lifetime */
} CpuStorage;

typedef struct {
  int arg;                 /* DNNL_ARG_*; for reference steps only read/write matters */
  int val;                 /* a value, or -1 when mem is set */
  dnnl_memory_t mem;       /* weights/bias memory, owned by CpuCtx.consts */
} CpuArg;

/* A 3x3 convolution run as Winograd F(4x4, 3x3) (backend-cpu-winograd.c). */
typedef struct CpuWino CpuWino;

typedef struct {
  int node;                /* the node it runs (messages), -1 for a layout reorder */
  dnnl_primitive_t prim;   /* NULL: wino, else the reference, runs node */
  CpuWino *wino;           /* owned; its args are SRC and DST */
  GArray *args;            /* CpuArg */
  dnnl_memory_desc_t scratch_md;
  int zero_val;            /* a value zero-filled before the step (Pad), or -1 */
  dnnl_exec_arg_t *exec;   /* args resolved to memories at the end of load */
  int n_exec;
  dnnl_memory_t scratch;
} CpuStep;

typedef struct {
  const EosinModel *m;     /* &shadow: the model at the sub-batch size */
  const EosinModel *model; /* the caller's */
  EosinModel shadow;       /* the caller's with tensors of sub-batch dims */
  GPtrArray *shadow_tensors;
  int n_sub;               /* sub-batches per run */
  dnnl_engine_t engine;
  dnnl_stream_t stream;
  GArray *vals;            /* CpuValue */
  GArray *stores;          /* CpuStorage */
  GArray *steps;           /* CpuStep */
  int *rep;                /* per tensor: its first value, -1 while not computed */
  bool *fused;             /* per node: its work is done by another node's step */
  int *exec_at;            /* per node: the node whose step does its work */
  int *pad_of;             /* per node: a Pad node folded into it, or -1 */
  GPtrArray *consts;       /* dnnl_memory_t of weights and biases */
  GPtrArray *blobs;        /* g_malloc'd data some of those wrap */
  float **buf;             /* per tensor: the plain buffer the reference uses */
  void *arena, *scratch;
  size_t arena_size, scratch_size;
  int input_val, output_val;
  bool winograd;           /* 3x3 convolutions may run as Winograd */
} CpuCtx;

/* A list of post-ops and the nodes they fold away. */
typedef struct {
  int n;
  dnnl_alg_kind_t alg[CPU_MAX_POST]; /* dnnl_alg_kind_undef: a residual sum */
  float alpha[CPU_MAX_POST], beta[CPU_MAX_POST];
  int n_nodes, nodes[2 * CPU_MAX_POST];
  int out;                 /* the tensor the chain ends in */
} CpuChain;

static inline const EosinTensor *cpu_tensor(const CpuCtx *c, int i) {
  return c->m->tensors->pdata[i];
}

static inline const EosinNode *cpu_node(const CpuCtx *c, int i) {
  return &g_array_index(c->m->nodes, EosinNode, i);
}

static inline CpuValue *cpu_val(const CpuCtx *c, int v) {
  return &g_array_index(c->vals, CpuValue, v);
}

/* Whether tensor @t is an activation (computed at run time). */
static inline bool cpu_is_act(const CpuCtx *c, int t) {
  const EosinTensor *x = cpu_tensor(c, t);
  return !x->data && !x->idata;
}

#define CPU_CHECK(call, what)                                                           \
  do {                                                                                  \
    dnnl_status_t st_ = (call);                                                         \
    if (st_ != dnnl_success) {                                                          \
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, "oneDNN %s failed (status %d)", \
                  what, (int) st_);                                                     \
      return -1;                                                                        \
    }                                                                                   \
  } while (0)

/* backend-cpu.c: the plan */
void _cpu_plain_md(const EosinTensor *t, dnnl_memory_desc_t *md);
int _cpu_new_value(CpuCtx *c, int tensor, const dnnl_memory_desc_t *md, int storage);
int _cpu_get_rep(CpuCtx *c, int t, const dnnl_memory_desc_t *md, GError **err);
int _cpu_copy_value(CpuCtx *c, int from, const dnnl_memory_desc_t *md, GError **err);
int _cpu_add_step(CpuCtx *c, int node, dnnl_primitive_desc_t pd, GError **err);
void _cpu_step_arg(CpuCtx *c, int step, int arg, int val, dnnl_memory_t mem);
bool _cpu_can_overwrite(const CpuCtx *c, int v, int node, int except);
int _cpu_readers(const CpuCtx *c, int t, int *r, int max);
dnnl_primitive_attr_t _cpu_attr(const CpuChain *ch);
dnnl_memory_t _cpu_const_mem(CpuCtx *c, const dnnl_memory_desc_t *md, void *data, GError **err);

/* backend-cpu-winograd.c */
bool _cpu_wino_usable(const EosinAttrs *a, int64_t c, int64_t k, const CpuChain *ch);
CpuWino *_cpu_wino_new(const int64_t *x_dims, const int64_t *y_dims, int pad_t, int pad_l,
                       const float *w, const float *bias, const CpuChain *ch);
size_t _cpu_wino_scratch(const CpuWino *g);
void _cpu_wino_run(const CpuWino *g, const float *src, float *dst, void *scratch);
void _cpu_wino_free(CpuWino *g);

static inline bool cpu_same_dims(const EosinTensor *a, const EosinTensor *b) {
  if (a->ndim != b->ndim)
    return false;
  for (int d = 0; d < a->ndim; d++)
    if (a->dims[d] != b->dims[d])
      return false;
  return true;
}

static inline void cpu_dims_of(const EosinTensor *t, dnnl_dims_t d) {
  for (int k = 0; k < t->ndim; k++)
    d[k] = t->dims[k];
}

/* The output value of a step that writes tensor @t in layout @md: in place
 * over value @in when given (>= 0), else in a storage of its own. */
static inline int cpu_out_value(CpuCtx *c, int t, const dnnl_memory_desc_t *md, int in) {
  return _cpu_new_value(c, t, md, in >= 0 ? cpu_val(c, in)->storage : -1);
}

/* backend-cpu-fuse.c: post-op chains, Pad folding, primitive descriptors */
bool _cpu_chain_add(CpuChain *ch, dnnl_alg_kind_t alg, float alpha, float beta);
bool _cpu_chain_eltwise(const CpuCtx *c, int i, CpuChain *ch);
int _cpu_swish_mul(const CpuCtx *c, int t, int sig);
void _cpu_chain(CpuCtx *c, int t, CpuChain *ch);
void _cpu_chain_commit(CpuCtx *c, const CpuChain *ch, int i);
void _cpu_fold_pads(CpuCtx *c);
dnnl_primitive_desc_t _cpu_try_pd(CpuCtx *c, const void *desc, const CpuChain *ch);
bool _cpu_pd_is_ref(const_dnnl_primitive_desc_t pd);
dnnl_primitive_desc_t _cpu_make_pd(CpuCtx *c, const void *desc, CpuChain *ch);
dnnl_memory_t _cpu_load_weights(CpuCtx *c, const dnnl_memory_desc_t *user, const float *data,
                                const dnnl_memory_desc_t *want, GError **err);

/* The builders: each returns 1 when the node became oneDNN steps, 0 when
 * it should run on the reference, -1 on an error. backend-cpu-conv.c: */
int _cpu_build_conv(CpuCtx *c, int i, GError **err);
int _cpu_build_deconv(CpuCtx *c, int i, GError **err);
/* backend-cpu-ops.c: the rest, and the one entry backend-cpu.c calls */
int _cpu_build(CpuCtx *c, int i, GError **err);
