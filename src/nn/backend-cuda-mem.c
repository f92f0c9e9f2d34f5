/*
 * backend-cuda-mem.c — the CUDA backend's device memory: every allocation
 * counted against EOSIN_CUDA_MAX_MEMORY_MB, the activation arena placed by
 * liveness once at load, weights and per-channel parameters uploaded once
 * (converted to half on the device in fp16), the shared cuDNN workspace,
 * and the pinned host staging of input and output.
 */
#include "nn/backend-cuda-private.h"

#include <limits.h>

#define T(i) _eosin_cuda_tensor(c, (i))

/* cudaMalloc (or, with @pinned, cudaHostAlloc) of @bytes into *@dst,
 * which is set only on success: CUDA does not promise to leave it NULL on
 * failure, and destroy frees whatever is non-NULL. The caller owns *@dst
 * (cudaFree / cudaFreeHost, or device_free). Device memory counts against
 * EOSIN_CUDA_MAX_MEMORY_MB (c->mem_cap): beyond it, the same out-of-memory
 * error a full GPU gives, so the retry at a smaller batch can be forced on
 * any GPU (scripts/device-check). A failed call's error is cleared, or the
 * next kernel launch would report it as its own. */
bool _eosin_cuda_alloc(CudaCtx *c, const EosinNode *node, void **dst, size_t bytes, bool pinned,
                       const char *what, GError **err) {
  void *p = NULL;
  cudaError_t e;
  if (!pinned && c->mem_cap && (bytes > c->mem_cap || c->mem_used > c->mem_cap - bytes))
    e = cudaErrorMemoryAllocation;
  else
    e = pinned ? cudaHostAlloc(&p, MAX(bytes, 1), cudaHostAllocDefault)
               : cudaMalloc(&p, MAX(bytes, 1));
  if (e != cudaSuccess) {
    cudaGetLastError();
    g_autofree char *msg =
        c->mem_cap && !pinned && !p
            ? g_strdup_printf("%s of %zu bytes (%zu in use, EOSIN_CUDA_MAX_MEMORY_MB caps at %zu)",
                              what, bytes, c->mem_used, c->mem_cap)
            : g_strdup_printf("%s of %zu bytes", what, bytes);
    return _eosin_cuda_fail(err, c, node, msg, cudaGetErrorString(e));
  }
  if (!pinned)
    c->mem_used += bytes;
  *dst = p;
  return true;
}

/* Frees @p (device memory of @bytes from _eosin_cuda_alloc; NULL is
 * ignored) during load, keeping the count the cap is checked against. */
static void device_free(CudaCtx *c, void *p, size_t bytes) {
  if (!p)
    return;
  cudaFree(p);
  c->mem_used -= MIN(bytes, c->mem_used);
}

/* Places every activation in the arena by liveness (views share their
 * source's place, constants live in c->dconst) and points c->dev at it. */
bool _eosin_cuda_plan_memory(CudaCtx *c, GError **err) {
  const EosinModel *m = c->m;
  const EosinNode *node = NULL;
  int nt = (int) m->tensors->len;
  g_autofree int *root = g_new(int, nt);
  g_autofree int *first = g_new(int, nt);
  g_autofree int *last = g_new(int, nt);
  g_autofree size_t *size = g_new0(size_t, nt);
  g_autofree size_t *offset = g_new0(size_t, nt);
  for (int t = 0; t < nt; t++)
    root[t] = t, first[t] = last[t] = -1;
  /* the input is written before step 0 */
  size[m->input] = _eosin_cuda_numel(T(m->input)) * c->es;
  for (int i = 0; i < c->n_steps; i++) {
    const CudaStep *s = &c->steps[i];
    const EosinNode *n = s->node;
    for (int k = 0; k < _eosin_cuda_data_inputs(n); k++) {
      int r = root[n->in[k]];
      last[r] = MAX(last[r], i);
      if (T(r)->data && !_eosin_cuda_const(c, r, err))
        return false;
    }
    if (s->kind == STEP_NONE) {
      root[s->out] = root[n->in[0]];
    } else {
      first[s->out] = last[s->out] = i;
      size[s->out] = _eosin_cuda_numel(T(s->out)) * c->es;
    }
  }
  last[root[m->output]] = c->n_steps; /* read after the last step */
  size_t total = _eosin_cuda_plan_arena(nt, size, first, last, 256, offset);
  if (total) {
    if (!_eosin_cuda_alloc(c, node, &c->arena, total, false, "allocating the activation arena",
                           err))
      return false;
    c->arena_bytes = total;
    /* zeros, so no step ever reads uninitialised bits (NaNs) */
    CUDA_TRY(cudaMemsetAsync(c->arena, 0, total, c->compute), "cudaMemsetAsync");
  }
  for (int t = 0; t < nt; t++) {
    int r = root[t];
    c->dev[t] = size[r] ? (char *) c->arena + offset[r] : c->dconst[r];
  }
  g_debug("cuda: model %s: %d steps, activation arena %.1f MiB", m->path, c->n_steps,
          total / 1048576.0);
  return true;
}

static bool upload_async(CudaCtx *c, const EosinNode *node, void *dst, const void *src,
                         size_t bytes, GError **err) {
  /* on the compute stream, which every later use is ordered after; waited
   * for at once since @src may be a temporary */
  CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->compute), "upload");
  CUDA_TRY(cudaStreamSynchronize(c->compute), "upload");
  return true;
}

bool _eosin_cuda_upload_f32(CudaCtx *c, const EosinNode *node, const float *host, size_t n,
                            float **dst, GError **err) {
  *dst = NULL;
  if (!_eosin_cuda_alloc(c, node, (void **) dst, n * sizeof(float), false,
                         "allocating parameters", err))
    return false;
  return upload_async(c, node, *dst, host, n * sizeof(float), err);
}

static bool upload_const(CudaCtx *c, int t, GError **err) {
  const EosinNode *node = NULL;
  const EosinTensor *x = T(t);
  size_t n = _eosin_cuda_numel(x);
  if (!x->data)
    return _eosin_cuda_fail(err, c, node, "uploading a constant", "it has no float values");
  if (!_eosin_cuda_alloc(c, node, &c->dconst[t], n * c->es, false, "allocating weights", err))
    return false;
  if (!c->fp16)
    return upload_async(c, node, c->dconst[t], x->data, n * sizeof(float), err);
  /* half: upload the floats, convert on the device */
  float *tmp = NULL;
  if (!_eosin_cuda_alloc(c, node, (void **) &tmp, n * sizeof(float), false, "allocating weights",
                         err))
    return false;
  bool ok = upload_async(c, node, tmp, x->data, n * sizeof(float), err);
  int e = ok ? eosin_cuda_convert(tmp, EOSIN_CUDA_F32, c->dconst[t], EOSIN_CUDA_F16, n,
                                  c->compute)
             : 0;
  if (ok && e == 0)
    e = cudaStreamSynchronize(c->compute);
  device_free(c, tmp, n * sizeof(float));
  if (ok && e != 0)
    cudaGetLastError(); /* not the next launch's error */
  if (ok && e != 0)
    return _eosin_cuda_fail(err, c, node, "converting weights to half",
                            cudaGetErrorString((cudaError_t) e));
  return ok;
}

const void *_eosin_cuda_const(CudaCtx *c, int t, GError **err) {
  if (!c->dconst[t] && !upload_const(c, t, err))
    return NULL;
  return c->dconst[t];
}

bool _eosin_cuda_ensure_ws(CudaCtx *c, const EosinNode *node, size_t bytes, GError **err) {
  if (bytes <= c->ws_bytes)
    return true;
  CUDA_TRY(cudaStreamSynchronize(c->compute), "cudaStreamSynchronize");
  device_free(c, c->ws, c->ws_bytes);
  c->ws = NULL;
  c->ws_bytes = 0;
  if (!_eosin_cuda_alloc(c, node, &c->ws, bytes, false, "allocating the cuDNN workspace", err))
    return false;
  c->ws_bytes = bytes;
  return true;
}

/* Staging for input and output: pinned host buffers, and in fp16 the
 * device float buffers that are converted from and to. */
bool _eosin_cuda_alloc_staging(CudaCtx *c, GError **err) {
  const EosinNode *node = NULL;
  const EosinTensor *in = T(c->m->input);
  c->n_in = _eosin_cuda_numel(in);
  c->n_out = _eosin_cuda_numel(T(c->m->output));
  if (!_eosin_cuda_alloc(c, node, &c->pin_in, c->n_in * sizeof(float), true,
                         "pinning input staging", err) ||
      !_eosin_cuda_alloc(c, node, &c->pin_out, c->n_out * sizeof(float), true,
                         "pinning output staging", err))
    return false;
  if (c->fp16) {
    if (!_eosin_cuda_alloc(c, node, (void **) &c->stage_in, c->n_in * sizeof(float), false,
                           "allocating input staging", err) ||
        !_eosin_cuda_alloc(c, node, (void **) &c->stage_out, c->n_out * sizeof(float), false,
                           "allocating output staging", err))
      return false;
  }
  /* tiles for run_rgb when the input is an N x 3 x S x S image batch; the
   * uint8 tiles are a quarter of the float input, so pin_in holds them */
  if (in->ndim == 4 && in->dims[1] == 3 && in->dims[2] == in->dims[3] && in->dims[2] <= INT_MAX)
    if (!_eosin_cuda_alloc(c, node, (void **) &c->rgb, c->n_in, false, "allocating tile staging",
                           err))
      return false;
  return true;
}
