/*
 * infer.c — a model running on a device, as the analyzers and `eosin
 * predict` see it: picks the backend (--device auto|cpu|cuda[:N]), feeds it
 * fixed-size batches, and keeps a night's batch going when the GPU fails:
 * a device error retries the same images with half the batch (a GPU out of
 * memory at 64 often runs at 32), down to one image, then moves to the CPU.
 * Every decision is kept for report.json, so a lab can see which device
 * produced its numbers and why.
 */
#include "backend.h"
#include "eosin-private.h"

#include <errno.h>
#include <stdlib.h>

struct _EosinInfer {
  char *path;
  char *requested;          /* the device string asked for */
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

void eosin_infer_free(EosinInfer *inf) {
  if (!inf)
    return;
  stop_backend(inf);
  g_clear_pointer(&inf->model, eosin_model_free);
  g_free(inf->path);
  g_free(inf->requested);
  g_free(inf->in);
  g_free(inf->out);
  g_ptr_array_unref(inf->events);
  g_free(inf->why_not_gpu);
  g_free(inf);
}

/* Starts @be on the model loaded for @batch (loading it again when the
 * batch changes); on failure no backend is left running. */
static bool start_backend(EosinInfer *inf, const EosinBackendOps *be, int batch,
                          GError **err) {
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
  ok = ok && be->load(ctx, inf->model, err);
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

/* Parses "auto" / "cpu" / "ref" / "cuda" / "cuda:N". */
static bool parse_device(const char *dev, char *kind, int *gpu, GError **err) {
  *gpu = 0;
  if (!dev || !*dev || !strcmp(dev, "auto"))
    return *kind = 'a', true;
  if (!strcmp(dev, "cpu"))
    return *kind = 'c', true;
  if (!strcmp(dev, "ref")) /* the plain-C reference: slow, for checking */
    return *kind = 'r', true;
  if (g_str_has_prefix(dev, "cuda")) {
    const char *p = dev + 4;
    if (!*p)
      return *kind = 'g', true;
    char *end;
    errno = 0;
    long v = *p == ':' ? strtol(p + 1, &end, 10) : -1;
    if (*p == ':' && p[1] && !*end && !errno && v >= 0 && v < 64) {
      *gpu = (int) v;
      return *kind = 'g', true;
    }
  }
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
              "device '%s': expected auto, cpu, cuda or cuda:N", dev);
  return false;
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
  char kind;
  int gpu;
  if (!parse_device(opts->device, &kind, &gpu, err))
    return NULL;
  if (opts->batch < 1) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "batch %d: must be at least 1",
                opts->batch);
    return NULL;
  }
  g_autoptr(EosinInfer) inf = g_new0(EosinInfer, 1);
  inf->path = g_strdup(model_path);
  inf->requested = g_strdup(opts->device && *opts->device ? opts->device : "auto");
  inf->gpu = gpu;
  inf->fp16 = opts->fp16;
  inf->batch_asked = opts->batch;
  inf->events = g_ptr_array_new_with_free_func(g_free);

  /* a model that does not load fails the same on every device: say so first */
  inf->model = eosin_model_load(model_path, opts->batch, err);
  if (!inf->model)
    return NULL;
  inf->gpu_ops = cuda;
  if (kind == 'g' || kind == 'a') {
    g_autoptr(GError) gerr = NULL;
    if (!cuda || !start_backend(inf, cuda, opts->batch, &gerr)) {
      const char *why = cuda ? gerr->message : "this build of Eosin has no CUDA backend (CUDA=0)";
      if (kind == 'g') {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "device %s: %s", inf->requested, why);
        return NULL;
      }
      inf->why_not_gpu = g_strdup(why);
      add_event(inf, "auto: GPU not used: %s", why);
    }
  }
  if (!inf->be &&
      !start_backend(inf, kind == 'r' ? &_eosin_backend_ref : &_eosin_backend_cpu, opts->batch,
                     err))
    return NULL;

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
    g_clear_error(&gerr);
    while (smaller >= 1 && !start_backend(inf, gpu, smaller, &gerr)) {
      add_event(inf, "%s could not restart at batch %d: %s", gpu->name, smaller, gerr->message);
      g_clear_error(&gerr);
      smaller /= 2;
    }
    if (smaller >= 1) {
      add_event(inf, "retrying on %s at batch %d", gpu->name, smaller);
      continue;
    }
    if (!start_backend(inf, &_eosin_backend_cpu, inf->batch_asked, err)) {
      g_prefix_error(err, "falling back to the CPU after a GPU failure: ");
      return false;
    }
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
