/*
 * backend.h — the inference backend interface (ggml-backend style: an ops
 * struct plus a context). A backend says which nodes it supports, loads a
 * prepared graph once (weights, primitives, buffers for its batch size) and
 * runs it on batches. Backends: "ref" (plain C, the oracle every other
 * backend is tested against), then oneDNN (CPU) and cuDNN (GPU).
 */
#pragma once

#include "graph-private.h"

G_BEGIN_DECLS

typedef struct {
  const char *name;
  /* Starts the backend (device, library handles); false if unavailable. */
  bool (*init)(void **ctx, GError **err);
  /* Whether this backend can run @node of @model. */
  bool (*supports)(void *ctx, const EosinModel *model, const EosinNode *node);
  /* Prepares @model for repeated runs. */
  bool (*load)(void *ctx, const EosinModel *model, GError **err);
  /* Runs the model on @input (the input tensor's shape, NCHW float32) and
   * writes the first output (its shape) to @output. */
  bool (*run)(void *ctx, const float *input, float *output, GError **err);
  void (*destroy)(void *ctx);
} EosinBackendOps;

extern const EosinBackendOps _eosin_backend_ref;
extern const EosinBackendOps _eosin_backend_cpu;

/* The reference implementation of one node over per-tensor buffers: what
 * the other backends run for ops they do not accelerate. */
void _eosin_ref_node(const EosinModel *m, float **buf, const EosinNode *n);
void _eosin_ref_buffers(const EosinModel *m, float ***buf, bool **owned);

G_END_DECLS
