/*
 * stain.c — the "stain" analyzer: Ruifrok–Johnston colour
 * deconvolution of every tile into three stain concentrations (optical
 * density units) and their mean per tile. H&E, H-DAB or custom stain
 * vectors from the [stain] group; the numbers equal scikit-image's
 * separate_stains() times 6 (see _eosin_stain_deconvolve). The stain
 * maths itself is cells/stain.c; this file is the analyzer: its config,
 * tile means and slide scores.
 */
#include "tasks/analyzer.h"
#include "cells/eosin-cells.h"

#include <math.h>

/* scikit-image's rgb_from_hed and rgb_from_hdx (the third H-DAB vector is
 * the cross product of the first two, as there). Rows are stains. */
static const double RGB_FROM_HED[3][3] = {
    {0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, {0.27, 0.57, 0.78}};
static const double RGB_FROM_HDX_12[2][3] = {{0.650, 0.704, 0.286}, {0.268, 0.570, 0.776}};

static const char *const STAIN_KEYS[] = {"matrix", "vectors", "names", NULL};
static const char *const MATRICES[] = {"hed", "hdx", "custom", NULL};

typedef struct {
  double stain_from_rgb[3][3];
  char *names[4];
  double dmin[3], dmax[3];
} StainCtx;

static void stain_destroy(void *ctx) {
  StainCtx *c = ctx;
  if (!c)
    return;
  for (int i = 0; i < 3; i++)
    g_free(c->names[i]);
  g_free(c);
}

static bool stain_init(const EosinConfig *cfg, void **ctx, EosinAnalyzerInfo *info,
                       GError **err) {
  if (!eosin_config_check_keys(cfg, "stain", STAIN_KEYS, err))
    return false;
  g_autofree char *matrix = NULL;
  if (!eosin_config_get_choice(cfg, "stain", "matrix", "hed", MATRICES, &matrix, err))
    return false;
  bool has_vectors = g_key_file_has_key(cfg->keyfile, "stain", "vectors", NULL);
  if (has_vectors != !strcmp(matrix, "custom")) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [stain] vectors must be given exactly when matrix = custom (matrix = '%s')",
                cfg->path, matrix);
    return false;
  }
  StainCtx *c = g_new0(StainCtx, 1);
  double rgb_from[3][3];
  const char *defaults[3];
  if (!strcmp(matrix, "hed")) {
    memcpy(rgb_from, RGB_FROM_HED, sizeof rgb_from);
    defaults[0] = "hematoxylin", defaults[1] = "eosin", defaults[2] = "dab";
  } else if (!strcmp(matrix, "hdx")) {
    /* the unnormalised cross product, exactly as scikit-image's rgb_from_hdx */
    memcpy(rgb_from, RGB_FROM_HDX_12, sizeof RGB_FROM_HDX_12);
    _eosin_stain_cross(rgb_from);
    defaults[0] = "hematoxylin", defaults[1] = "dab", defaults[2] = "residual";
  } else {
    g_autofree char *v = g_key_file_get_value(cfg->keyfile, "stain", "vectors", NULL);
    if (!_eosin_stain_parse_vectors(v, rgb_from, err)) {
      g_prefix_error(err, "%s: [stain] vectors = ", cfg->path);
      stain_destroy(c);
      return false;
    }
    defaults[0] = "stain1", defaults[1] = "stain2", defaults[2] = "stain3";
  }
  g_autofree char *names = g_key_file_get_value(cfg->keyfile, "stain", "names", NULL);
  g_auto(GStrv) parts = names ? g_strsplit(names, ",", -1) : NULL;
  if (parts && g_strv_length(parts) != 3) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [stain] names = '%s': expected three comma-separated names", cfg->path,
                names);
    stain_destroy(c);
    return false;
  }
  for (int i = 0; i < 3; i++) {
    c->names[i] = g_strstrip(g_strdup(parts ? parts[i] : defaults[i]));
    c->dmin[i] = 0;
    c->dmax[i] = 1.0;
  }
  g_autofree char *all = g_strjoinv(", ", c->names);
  _eosin_config_record(cfg, "stain", "names", all);
  if (!_eosin_stain_matrix_invert(rgb_from, c->stain_from_rgb, err)) {
    g_prefix_error(err, "%s: [stain] ", cfg->path);
    stain_destroy(c);
    return false;
  }
  info->n_channels = 3;
  info->channel_names = c->names;
  info->default_min = c->dmin;
  info->default_max = c->dmax;
  *ctx = c;
  return true;
}

static bool stain_run(void *ctx, const EosinTileBatch *batch, float *values, GError **err) {
  StainCtx *c = ctx;
  size_t px = (size_t) batch->tile_size * batch->tile_size;
  g_autofree float *conc = g_new(float, px * 3);
  for (int t = 0; t < batch->n; t++) {
    _eosin_stain_deconvolve(batch->pixels + t * px * 3, px, c->stain_from_rgb, conc);
    double sum[3] = {0, 0, 0};
    for (size_t p = 0; p < px; p++)
      for (int j = 0; j < 3; j++)
        sum[j] += conc[3 * p + j];
    for (int j = 0; j < 3; j++)
      values[t * 3 + j] = (float) (sum[j] / px);
  }
  return true;
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *) a, y = *(const float *) b;
  return (x > y) - (x < y);
}

/* Slide scores per stain: the mean of the tile means and their 90th
 * percentile (robust to a few dark artefact tiles, unlike the maximum). */
static bool stain_finish(void *ctx, const EosinTilePlan *plan, float *values,
                         JsonBuilder *b, GError **err) {
  StainCtx *c = ctx;
  int n = plan->tiles->len;
  g_autofree float *col = g_new(float, MAX(n, 1));
  for (int j = 0; j < 3; j++) {
    double sum = 0;
    for (int t = 0; t < n; t++)
      col[t] = values[t * 3 + j], sum += col[t];
    qsort(col, n, sizeof(float), cmp_float);
    g_autofree char *mean_key = g_strdup_printf("mean_od_%s", c->names[j]);
    g_autofree char *p90_key = g_strdup_printf("p90_od_%s", c->names[j]);
    json_builder_set_member_name(b, mean_key);
    _eosin_json_value(b, n ? sum / n : 0);
    json_builder_set_member_name(b, p90_key);
    _eosin_json_value(b, n ? col[MIN(n - 1, (int) floor(0.9 * (n - 1) + 0.5))] : 0);
  }
  return true;
}

const EosinAnalyzerOps _eosin_analyzer_stain = {
    .name = "stain",
    .init = stain_init,
    .run = stain_run,
    .finish = stain_finish,
    .destroy = stain_destroy,
};
