/*
 * infer.c — a model running on a device, as the analyzers and `eosin
 * predict` see it: picks the backend (--device auto|cpu|cuda[:N]), feeds it
 * fixed-size batches, and keeps a night's batch going when the GPU fails:
 * a device error at load or run retries the same images with half the
 * batch (a GPU out of memory at 64 often runs at 32), down to one image,
 * then moves to the CPU; a GPU lost to a sticky fault is not retried at all.
 * Every decision is kept for report.json, so a lab can see which device
 * produced its numbers and why. An EosinInferCache keeps the loaded model
 * and its backend (for the GPU: handles, weights, cuDNN's algorithm search,
 * pinned buffers, the trial run) from one slide of a batch to the next.
 */
#include "nn/backend.h"
#include "eosin-util.h" /* _eosin_json_str/_int, for eosin_infer_report */

/* One backend left running by an EosinInfer of an earlier slide. */
typedef struct {
  char *key;                /* infer_key(): model, device, precision, batch asked */
  EosinModel *model;        /* owned, loaded for @batch */
  const EosinBackendOps *be;
  void *ctx;                /* owned: be->destroy */
  int batch;
  char *why_not_gpu;        /* owned, or NULL */
} CacheEntry;

/* The backends of a batch of slides, and whether the GPU was lost: kept
 * here, in an object the batch owns, not in a global, since a library
 * has no business holding process state its caller cannot release. (A
 * sticky CUDA fault is a fact of the whole process; a second batch in the
 * same process with a new cache finds it again at its first GPU call,
 * once, and records it the same way.) */
struct _EosinInferCache {
  GPtrArray *entries;       /* CacheEntry *, owned */
  char *gpu_lost;           /* why the GPU is gone for this process, or NULL */
  int reused;               /* entries taken so far */
};

struct _EosinInfer {
  char *path;
  char *requested;          /* the device string asked for */
  EosinDeviceKind kind;     /* what @requested asks for (eosin_device_parse) */
  int gpu;                  /* GPU index when a cuda device is wanted */
  bool fp16;
  int batch_asked;          /* opts->batch */
  int batch;                /* what the backend was loaded for now */
  EosinModel *model;        /* loaded for @batch */
  const EosinBackendOps *be;
  const EosinBackendOps *gpu_ops; /* the GPU backend of this build, or NULL */
  void *ctx;
  int height, width;
  int64_t out_dims[EOSIN_MAX_DIMS];
  int out_rank;
  size_t in_per, out_per;   /* floats per image */
  float *in, *out;          /* one batch, reused */
  GPtrArray *events;        /* char *: what happened, in order */
  char *why_not_gpu;        /* auto: why the CPU runs */
  EosinInferCache *cache;   /* borrowed from opts, or NULL */
  char *key;                /* the cache key, with @cache */
};

static void add_event(EosinInfer *inf, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void add_event(EosinInfer *inf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_ptr_array_add(inf->events, g_strdup_vprintf(fmt, ap));
  va_end(ap);
}

static bool on_gpu(const EosinInfer *inf) {
  return inf->be && inf->be == inf->gpu_ops;
}

static void stop_backend(EosinInfer *inf) {
  if (inf->be && inf->ctx)
    inf->be->destroy(inf->ctx);
  inf->ctx = NULL;
  inf->be = NULL;
}

static void entry_free(gpointer p) {
  CacheEntry *e = p;
  if (e->be && e->ctx)
    e->be->destroy(e->ctx);
  g_clear_pointer(&e->model, eosin_model_free);
  g_free(e->key);
  g_free(e->why_not_gpu);
  g_free(e);
}

EosinInferCache *eosin_infer_cache_new(void) {
  EosinInferCache *c = g_new0(EosinInferCache, 1);
  c->entries = g_ptr_array_new_with_free_func(entry_free);
  return c;
}

void eosin_infer_cache_free(EosinInferCache *cache) {
  if (!cache)
    return;
  g_ptr_array_unref(cache->entries);
  g_free(cache->gpu_lost);
  g_free(cache);
}

int eosin_infer_cache_reused(const EosinInferCache *cache) {
  return cache ? cache->reused : 0;
}

/* The key of what @inf was asked for. Caller frees. */
static char *infer_key(const EosinInfer *inf) {
  return g_strdup_printf("%s\n%s\n%d\n%d", inf->path, inf->requested, inf->fp16,
                         inf->batch_asked);
}

/* Takes the backend an earlier slide left in the cache for @inf's key,
 * if any: true when @inf now runs it. */
static bool take_cached(EosinInfer *inf) {
  GPtrArray *a = inf->cache->entries;
  for (guint i = 0; i < a->len; i++) {
    CacheEntry *e = a->pdata[i];
    if (strcmp(e->key, inf->key))
      continue;
    inf->model = g_steal_pointer(&e->model);
    inf->be = e->be;
    inf->ctx = g_steal_pointer(&e->ctx);
    inf->batch = e->batch;
    inf->why_not_gpu = g_steal_pointer(&e->why_not_gpu);
    g_ptr_array_remove_index(a, i);
    inf->cache->reused++;
    return true;
  }
  return false;
}

/* Hands @inf's running backend and model to its cache (replacing an
 * entry of the same key); @inf keeps neither. */
static void give_to_cache(EosinInfer *inf) {
  GPtrArray *a = inf->cache->entries;
  for (guint i = 0; i < a->len; i++)
    if (!strcmp(((CacheEntry *) a->pdata[i])->key, inf->key)) {
      g_ptr_array_remove_index(a, i);
      break;
    }
  CacheEntry *e = g_new0(CacheEntry, 1);
  e->key = g_strdup(inf->key);
  e->model = g_steal_pointer(&inf->model);
  e->be = inf->be;
  e->ctx = g_steal_pointer(&inf->ctx);
  e->batch = inf->batch;
  e->why_not_gpu = g_strdup(inf->why_not_gpu);
  inf->be = NULL;
  g_ptr_array_add(a, e);
}

void eosin_infer_free(EosinInfer *inf) {
  if (!inf)
    return;
  if (inf->cache && inf->be && inf->ctx && inf->model)
    give_to_cache(inf);
  stop_backend(inf);
  g_clear_pointer(&inf->model, eosin_model_free);
  g_free(inf->path);
  g_free(inf->requested);
  g_free(inf->in);
  g_free(inf->out);
  g_ptr_array_unref(inf->events);
  g_free(inf->why_not_gpu);
  g_free(inf->key);
  g_free(inf);
}

/* How start_backend failed. */
typedef enum {
  START_FAILED_INIT,  /* the backend did not start (no device, bad setting) */
  START_FAILED_LOAD,  /* it started but could not load the model (a smaller batch may) */
  START_LOST,         /* as LOAD, and the device is lost for the process */
} StartFailure;

/* Starts @be on the model loaded for @batch (loading it again when the
 * batch changes); on failure no backend is left running and *@how (may
 * be NULL) says at which stage. */
static bool start_backend(EosinInfer *inf, const EosinBackendOps *be, int batch,
                          StartFailure *how, GError **err) {
  StartFailure dummy;
  how = how ? how : &dummy;
  *how = START_FAILED_INIT;
  stop_backend(inf);
  if (!inf->model || inf->model->batch != batch) {
    g_clear_pointer(&inf->model, eosin_model_free);
    inf->model = eosin_model_load(inf->path, batch, err);
    if (!inf->model)
      return false;
  }
  EosinBackendOptions bo = {.device = inf->gpu, .fp16 = inf->fp16};
  void *ctx = NULL;
  bool ok = be->init(&ctx, &bo, err);
  for (guint i = 0; ok && i < inf->model->nodes->len; i++) {
    const EosinNode *n = &g_array_index(inf->model->nodes, EosinNode, i);
    if (!n->removed && !be->supports(ctx, inf->model, n)) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL,
                  "model %s: node %s (%s): not supported by the %s backend", inf->path,
                  n->name, _eosin_op_name(n->op), be->name);
      ok = false;
    }
  }
  if (ok && !be->load(ctx, inf->model, err)) {
    ok = false;
    if (err && g_error_matches(*err, EOSIN_ERROR, EOSIN_ERROR_DEVICE))
      *how = be->lost && be->lost(ctx) ? START_LOST : START_FAILED_LOAD;
  }
  if (!ok) {
    if (ctx)
      be->destroy(ctx);
    return false;
  }
  inf->be = be;
  inf->ctx = ctx;
  inf->batch = batch;
  return true;
}

/* Marks the GPU lost (for @inf and the batch's later slides): @why. */
static void gpu_lost(EosinInfer *inf, const char *why) {
  add_event(inf, "%s lost for this process: %s", inf->gpu_ops->name, why);
  if (inf->cache && !inf->cache->gpu_lost)
    inf->cache->gpu_lost = g_strdup(why);
}

/* Starts the GPU backend at @batch, and when loading fails with a device
 * error (out of memory, a refused descriptor), at half of it down to 1,
 * recording each try. On failure *err is the last reason. */
static bool start_gpu(EosinInfer *inf, int batch, GError **err) {
  for (;;) {
    StartFailure how;
    g_autoptr(GError) e = NULL;
    if (start_backend(inf, inf->gpu_ops, batch, &how, &e)) {
      if (batch != inf->batch_asked)
        add_event(inf, "%s loaded at batch %d", inf->gpu_ops->name, batch);
      return true;
    }
    if (how == START_LOST)
      gpu_lost(inf, e->message);
    if (how != START_FAILED_LOAD || batch == 1) {
      g_propagate_error(err, g_steal_pointer(&e));
      return false;
    }
    add_event(inf, "%s could not load at batch %d: %s", inf->gpu_ops->name, batch, e->message);
    batch /= 2;
  }
}

static const EosinBackendOps *gpu_backend(void) {
#ifdef EOSIN_HAVE_CUDA
  return &_eosin_backend_cuda;
#else
  return NULL;
#endif
}

EosinInfer *eosin_infer_new(const char *model_path, const EosinInferOptions *opts,
                            GError **err) {
  return _eosin_infer_new_with(model_path, opts, gpu_backend(), err);
}

EosinInfer *_eosin_infer_new_with(const char *model_path, const EosinInferOptions *opts,
                                  const EosinBackendOps *cuda, GError **err) {
  /* an empty string is "auto" here, as NULL is */
  EosinDevice dev;
  if (!eosin_device_parse(opts->device && *opts->device ? opts->device : NULL, &dev, err))
    return NULL;
  EosinDeviceKind kind = dev.kind;
  if (opts->batch < 1) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "batch %d: must be at least 1",
                opts->batch);
    return NULL;
  }
  g_autoptr(EosinInfer) inf = g_new0(EosinInfer, 1);
  inf->path = g_canonicalize_filename(model_path, NULL); /* absolute, for the report */
  inf->requested = g_strdup(opts->device && *opts->device ? opts->device : "auto");
  inf->kind = kind;
  inf->gpu = dev.gpu;
  inf->fp16 = opts->fp16;
  inf->batch_asked = opts->batch;
  inf->events = g_ptr_array_new_with_free_func(g_free);
  inf->gpu_ops = cuda;
  inf->cache = opts->cache;
  inf->key = infer_key(inf);

  if (inf->cache && take_cached(inf)) {
    add_event(inf, "reused %s at batch %d, set up for an earlier slide", inf->be->name,
              inf->batch);
  } else {
    /* a model that does not load fails the same on every device: say so first */
    inf->model = eosin_model_load(model_path, opts->batch, err);
    if (!inf->model)
      return NULL;
    if (kind == EOSIN_DEVICE_CUDA || kind == EOSIN_DEVICE_AUTO) {
      g_autoptr(GError) gerr = NULL;
      const char *lost = inf->cache ? inf->cache->gpu_lost : NULL;
      if (lost)
        gerr = g_error_new(EOSIN_ERROR, EOSIN_ERROR_DEVICE,
                           "the GPU was lost earlier in this process: %s", lost);
      else if (!cuda)
        gerr = g_error_new_literal(EOSIN_ERROR, EOSIN_ERROR_DEVICE,
                                   "this build of Eosin has no CUDA backend (CUDA=0)");
      else if (!start_gpu(inf, opts->batch, &gerr) &&
               g_error_matches(gerr, EOSIN_ERROR, EOSIN_ERROR_CONFIG)) {
        /* a bad setting (EOSIN_CUDA_MAX_MEMORY_MB) is the user's to fix */
        g_propagate_error(err, g_steal_pointer(&gerr));
        return NULL;
      }
      if (gerr && kind == EOSIN_DEVICE_CUDA) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "device %s: %s", inf->requested,
                    gerr->message);
        return NULL;
      }
      if (gerr) {
        inf->why_not_gpu = g_strdup(gerr->message);
        add_event(inf, "auto: GPU not used: %s", gerr->message);
      }
    }
    const EosinBackendOps *cpu =
        kind == EOSIN_DEVICE_REF ? &_eosin_backend_ref : &_eosin_backend_cpu;
    if (!inf->be && !start_backend(inf, cpu, opts->batch, NULL, err))
      return NULL;
  }

  const EosinTensor *x = inf->model->tensors->pdata[inf->model->input];
  const EosinTensor *y = inf->model->tensors->pdata[inf->model->output];
  if (x->ndim != 4 || x->dims[1] != 3 || x->dims[2] != x->dims[3]) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_MODEL,
                "model %s: input %s must be N x 3 x S x S (square RGB images)", model_path,
                x->name);
    return NULL;
  }
  inf->height = (int) x->dims[2];
  inf->width = (int) x->dims[3];
  inf->in_per = (size_t) 3 * inf->height * inf->width;
  inf->out_per = 1;
  inf->out_rank = y->ndim - 1;
  for (int d = 1; d < y->ndim; d++) {
    inf->out_dims[d - 1] = y->dims[d];
    inf->out_per *= y->dims[d];
  }
  inf->in = g_new(float, inf->in_per * opts->batch);
  inf->out = g_new(float, inf->out_per * opts->batch);
  return g_steal_pointer(&inf);
}

void eosin_infer_input_size(const EosinInfer *inf, int *height, int *width) {
  *height = inf->height;
  *width = inf->width;
}

int eosin_infer_output_shape(const EosinInfer *inf, int64_t dims[6]) {
  for (int d = 0; d < inf->out_rank; d++)
    dims[d] = inf->out_dims[d];
  return inf->out_rank;
}

size_t eosin_infer_output_per_image(const EosinInfer *inf) {
  return inf->out_per;
}

const char *eosin_infer_backend(const EosinInfer *inf) {
  return inf->be ? inf->be->name : "none";
}

/* One backend call on @n <= inf->batch images; the rest of the batch is zero. */
static bool run_chunk(EosinInfer *inf, const uint8_t *rgb, int n, const EosinPreprocess *pp,
                      float *out, GError **err) {
  if (inf->be->run_rgb) {
    if (!inf->be->run_rgb(inf->ctx, rgb, n, pp, inf->out, err))
      return false;
  } else {
    _eosin_preprocess(rgb, n, inf->width, pp, inf->in);
    if (n < inf->batch)
      memset(inf->in + inf->in_per * n, 0, inf->in_per * (inf->batch - n) * sizeof(float));
    if (!inf->be->run(inf->ctx, inf->in, inf->out, err))
      return false;
  }
  memcpy(out, inf->out, inf->out_per * n * sizeof(float));
  return true;
}

bool eosin_infer_run_rgb(EosinInfer *inf, const uint8_t *rgb, int n, const EosinPreprocess *pp,
                         float *out, GError **err) {
  if (!inf->be) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "model %s: no backend running", inf->path);
    return false;
  }
  size_t rgb_per = inf->in_per; /* bytes per image: 3 x H x W */
  int done = 0;
  while (done < n) {
    int k = MIN(inf->batch, n - done);
    g_autoptr(GError) gerr = NULL;
    if (run_chunk(inf, rgb + rgb_per * done, k, pp, out + inf->out_per * done, &gerr)) {
      done += k;
      continue;
    }
    if (gerr->code != EOSIN_ERROR_DEVICE || !on_gpu(inf)) {
      g_propagate_error(err, g_steal_pointer(&gerr));
      return false;
    }
    /* the GPU failed: smaller batches, then the CPU; the same images again */
    const EosinBackendOps *gpu = inf->be;
    int smaller = inf->batch / 2;
    add_event(inf, "%s at batch %d: %s", gpu->name, inf->batch, gerr->message);
    bool lost = gpu->lost && gpu->lost(inf->ctx);
    if (lost) {
      gpu_lost(inf, gerr->message);
      if (inf->kind == EOSIN_DEVICE_CUDA) {
        /* asked for by name: one clear error, not a CPU run nor a retry
         * on a device that cannot come back */
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "device %s: lost: %s",
                    inf->requested, gerr->message);
        stop_backend(inf);
        return false;
      }
      smaller = 0;
    }
    g_autofree char *last = g_strdup(gerr->message);
    g_clear_error(&gerr);
    StartFailure how = START_FAILED_LOAD;
    while (smaller >= 1 && !start_backend(inf, gpu, smaller, &how, &gerr)) {
      add_event(inf, "%s could not restart at batch %d: %s", gpu->name, smaller, gerr->message);
      g_free(last);
      last = g_strdup(gerr->message);
      if (how == START_LOST)
        gpu_lost(inf, gerr->message);
      g_clear_error(&gerr);
      smaller = how == START_FAILED_LOAD ? smaller / 2 : 0;
    }
    if (how == START_LOST && inf->kind == EOSIN_DEVICE_CUDA) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "device %s: lost: %s", inf->requested,
                  last);
      return false;
    }
    if (smaller >= 1) {
      add_event(inf, "retrying on %s at batch %d", gpu->name, smaller);
      continue;
    }
    if (!start_backend(inf, &_eosin_backend_cpu, inf->batch_asked, NULL, err)) {
      g_prefix_error(err, "falling back to the CPU after a GPU failure: ");
      return false;
    }
    if (!inf->why_not_gpu)
      inf->why_not_gpu = g_strdup_printf("%s failed: %s", gpu->name, last);
    add_event(inf, "moved to %s at batch %d", inf->be->name, inf->batch);
  }
  return true;
}

void eosin_infer_report(const EosinInfer *inf, JsonBuilder *b) {
  json_builder_begin_object(b);
  _eosin_json_str(b, "model", inf->path);
  _eosin_json_str(b, "device_requested", inf->requested);
  _eosin_json_str(b, "backend", eosin_infer_backend(inf));
  _eosin_json_str(b, "precision", on_gpu(inf) && inf->fp16 ? "fp16" : "fp32");
  _eosin_json_int(b, "batch", inf->batch);
  if (inf->why_not_gpu)
    _eosin_json_str(b, "gpu_not_used", inf->why_not_gpu);
#ifdef EOSIN_HAVE_CUDA
  if (on_gpu(inf) && inf->be == &_eosin_backend_cuda) {
    json_builder_set_member_name(b, "cuda");
    _eosin_cuda_describe(inf->gpu, b);
  }
#endif
  json_builder_set_member_name(b, "events");
  json_builder_begin_array(b);
  for (guint i = 0; i < inf->events->len; i++)
    json_builder_add_string_value(b, inf->events->pdata[i]);
  json_builder_end_array(b);
  json_builder_end_object(b);
}

char *eosin_infer_summary(const EosinInfer *inf) {
  g_autoptr(GString) s = g_string_new(NULL);
  g_string_printf(s, "%s, %s, batch %d", eosin_infer_backend(inf),
                  on_gpu(inf) && inf->fp16 ? "fp16" : "fp32",
                  inf->batch);
  for (guint i = 0; i < inf->events->len; i++)
    g_string_append_printf(s, "; %s", (char *) inf->events->pdata[i]);
  return g_string_free(g_steal_pointer(&s), FALSE);
}
