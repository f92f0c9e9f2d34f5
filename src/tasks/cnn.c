/*
 * cnn.c — the "cnn" analyzer: an ONNX network from the config's
 * [model] group run on every tile through the inference runtime (infer.c:
 * GPU when there is one, else oneDNN on the CPU).
 *
 * classification: one probability per class per tile (the heatmap
 *   channels are the classes);
 * segmentation: a probability map per tile (N x classes x H x W output),
 *   averaged over cells of [model] cell output pixels and stitched at that
 *   resolution, overlapping tiles blended (stitch.c).
 *
 * Slide scores (report.json "scores"): per class the mean and maximum over
 * tiles (classification) or cells (segmentation) and how many tiles/cells
 * the class wins; task-specific scores (e.g. metastasis) build on these.
 */
#include "tasks/analyzer.h"

typedef struct {
  EosinInfer *inf;
  EosinPreprocess pre;
  bool segmentation;
  bool tta; /* [model] tta = dihedral */
  int C;           /* classes */
  int map;         /* segmentation: output map side; 1 for classification */
  int cell;        /* output pixels per cell side */
  int s;           /* cells per tile side */
  char *activation; /* none | softmax | sigmoid */
  float *out;      /* one scheduler batch of network outputs */
  size_t out_per;
  char **names;
  double *dmin, *dmax;
  char *model;     /* path, for messages */
} CnnCtx;

static void cnn_destroy(void *ctx) {
  CnnCtx *c = ctx;
  if (!c)
    return;
  eosin_infer_free(c->inf);
  g_free(c->activation);
  g_free(c->out);
  g_strfreev(c->names);
  g_free(c->dmin);
  g_free(c->dmax);
  g_free(c->model);
  g_free(c);
}

/* Checks the network's shapes against the config: input = tile, output =
 * the classes (and a square map for segmentation). */
static bool check_shapes(CnnCtx *c, const EosinConfig *cfg, GError **err) {
  const char *model = cfg->model.path;
  int h, w;
  eosin_infer_input_size(c->inf, &h, &w);
  if (h != cfg->tile_size) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [tiling] tile_size = %d but model %s takes %d x %d images", cfg->path,
                cfg->tile_size, model, h, w);
    return false;
  }
  int64_t d[6];
  int r = eosin_infer_output_shape(c->inf, d);
  if (!c->segmentation) {
    EosinClassifierExpect want = {.config = cfg->path, .model = cfg->model.path,
                                  .n_classes = cfg->model.n_classes};
    if (!_eosin_check_classifier(c->inf, &want, err))
      return false;
    c->map = 1, c->cell = 1, c->s = 1;
    return true;
  }
  if (r != 3 || d[0] != c->C || d[1] != d[2] || d[1] < 1) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [model] kind = segmentation with %d classes needs an output of N x %d x "
                "S x S; model %s gives rank %d",
                cfg->path, c->C, c->C, model, r + 1);
    return false;
  }
  c->map = (int) d[1];
  c->cell = cfg->model.cell;
  if (c->map % c->cell || cfg->tile_size % c->map) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [model] cell = %d must divide the model's %d x %d output map, which "
                "must divide the %d px tile",
                cfg->path, c->cell, c->map, c->map, cfg->tile_size);
    return false;
  }
  c->s = c->map / c->cell;
  return true;
}

static bool cnn_init(const EosinConfig *cfg, void **ctx, EosinAnalyzerInfo *info,
                     GError **err) {
  if (!cfg->model.present || !cfg->model.path) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: the cnn analyzer needs a [model] group with a path (or --model)",
                cfg->path);
    return false;
  }
  CnnCtx *c = g_new0(CnnCtx, 1);
  *ctx = c;
  c->pre = cfg->model.pre;
  c->segmentation = !strcmp(cfg->model.kind, "segmentation");
  c->tta = cfg->model.tta_dihedral;
  c->C = cfg->model.n_classes;
  c->activation = g_strdup(cfg->model.activation);
  c->model = g_strdup(cfg->model.path);
  EosinInferOptions io = {.device = cfg->model.device, .fp16 = cfg->model.fp16,
                          .batch = cfg->batch_size, .cache = cfg->model.cache};
  c->inf = eosin_infer_new(cfg->model.path, &io, err);
  if (!c->inf) {
    _eosin_config_prefix_model_error(cfg, err);
    return false;
  }
  if (!check_shapes(c, cfg, err))
    return false;
  c->out_per = eosin_infer_output_per_image(c->inf);
  c->out = g_new(float, c->out_per * cfg->batch_size);
  c->names = g_strdupv(cfg->model.classes);
  c->dmin = g_new0(double, c->C);
  c->dmax = g_new(double, c->C);
  for (int k = 0; k < c->C; k++)
    c->dmax[k] = 1;
  info->n_channels = c->C;
  info->channel_names = c->names;
  info->default_min = c->dmin;
  info->default_max = c->dmax;
  info->cells_per_side = c->s;
  return true;
}

static bool cnn_run(void *ctx, const EosinTileBatch *b, float *values, GError **err) {
  CnnCtx *c = ctx;
  if (c->tta) {
    /* activated and averaged over the 8 orientations */
    if (!eosin_infer_run_dihedral(c->inf, b->pixels, b->n, b->tile_size, &c->pre,
                                  c->activation, c->C, c->out, err) ||
        !_eosin_check_model_outputs(c->model, c->out, b->n, c->C, b, err))
      return false;
    memcpy(values, c->out, sizeof(float) * b->n * c->C);
    return true;
  }
  if (!eosin_infer_run_rgb(c->inf, b->pixels, b->n, &c->pre, c->out, err) ||
      !_eosin_check_model_outputs(c->model, c->out, b->n, c->out_per, b, err))
    return false;
  if (!c->segmentation) {
    _eosin_activate(c->activation, c->out, b->n, c->C, 1);
    memcpy(values, c->out, sizeof(float) * b->n * c->C);
    return true;
  }
  size_t plane = (size_t) c->map * c->map;
  for (int i = 0; i < b->n; i++) {
    float *o = c->out + i * c->out_per;
    _eosin_activate(c->activation, o, plane, c->C, plane);
    float *v = values + (size_t) i * c->s * c->s * c->C;
    double inv = 1.0 / ((double) c->cell * c->cell);
    for (int cy = 0; cy < c->s; cy++)
      for (int cx = 0; cx < c->s; cx++)
        for (int k = 0; k < c->C; k++) {
          double sum = 0;
          const float *m = o + k * plane;
          for (int y = cy * c->cell; y < (cy + 1) * c->cell; y++)
            for (int x = cx * c->cell; x < (cx + 1) * c->cell; x++)
              sum += m[(size_t) y * c->map + x];
          v[((size_t) cy * c->s + cx) * c->C + k] = (float) (sum * inv);
        }
  }
  return true;
}

static bool cnn_finish(void *ctx, const EosinTilePlan *plan, float *values,
                       JsonBuilder *b, GError **err) {
  CnnCtx *c = ctx;
  size_t n = (size_t) plan->tiles->len * c->s * c->s;  /* tiles or cells */
  g_autofree double *sum = g_new0(double, c->C);
  g_autofree double *mx = g_new0(double, c->C);
  g_autofree gint64 *wins = g_new0(gint64, c->C);
  for (size_t i = 0; i < n; i++) {
    const float *v = values + i * c->C;
    int best = 0;
    for (int k = 0; k < c->C; k++) {
      sum[k] += v[k];
      mx[k] = MAX(mx[k], v[k]);
      if (v[k] > v[best])
        best = k;
    }
    wins[best]++;
  }
  json_builder_set_member_name(b, "kind");
  json_builder_add_string_value(b, c->segmentation ? "segmentation" : "classification");
  json_builder_set_member_name(b, c->segmentation ? "cells" : "tiles");
  json_builder_add_int_value(b, n);
  json_builder_set_member_name(b, "classes");
  json_builder_begin_object(b);
  for (int k = 0; k < c->C; k++) {
    json_builder_set_member_name(b, c->names[k]);
    json_builder_begin_object(b);
    _eosin_json_num(b, "mean", n ? sum[k] / n : 0);
    _eosin_json_num(b, "max", mx[k]);
    _eosin_json_int(b, "argmax_count", wins[k]);
    _eosin_json_num(b, "argmax_fraction", n ? (double) wins[k] / n : 0);
    json_builder_end_object(b);
  }
  json_builder_end_object(b);
  return true;
}

static void cnn_describe(void *ctx, JsonBuilder *b) {
  eosin_infer_report(((CnnCtx *) ctx)->inf, b);
}

const EosinAnalyzerOps _eosin_analyzer_cnn = {
    .name = "cnn",
    .init = cnn_init,
    .run = cnn_run,
    .finish = cnn_finish,
    .describe = cnn_describe,
    .destroy = cnn_destroy,
};
