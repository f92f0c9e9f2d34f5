/*
 * ihc.c — the "ihc" analyzer: IHC quantification by counting
 * cells, as QuPath's positive cell detection does. Every tile is
 * deconvolved into haematoxylin and DAB optical density (QuPath's H-DAB
 * vectors, custom ones, or vectors estimated from the slide), nuclei and
 * cells are found (nuclei.c), each cell is measured (nucleus, cytoplasm,
 * membrane, whole cell) and classified negative / 1+ / 2+ / 3+ on the
 * [ihc] compartment's mean DAB. Tiles overlap; a cell belongs to the
 * analysed tile nearest to its centroid, so a cell on a seam is counted
 * once, measured where it lies whole.
 *
 * Per-tile values (the overlay): positive and all cells per mm², positive
 * %, H-score and mean nucleus DAB of the cells whose centroids fall in the
 * tile's grid cell. Slide scores (scores.c): counts per class,
 * positive %, H-score, and by [ihc] marker the Ki-67 index with its hot
 * spot, the Allred score, or the HER2 category; the same per tissue
 * fragment. Outputs: cells.geojson (QuPath), cells.csv.
 */
#include "tasks/ihc/ihc-private.h"

#include <math.h>

static const char *const IHC_KEYS[] = {
    "marker", "stains", "vectors", "detection_image", "threshold", "background_radius_um",
    "max_background", "median_radius_um", "sigma_um", "min_area_um2", "max_area_um2",
    "split_by_shape", "cell_expansion_um", "compartment", "threshold_1plus", "threshold_2plus",
    "threshold_3plus", "single_threshold", "hotspot_area_mm2", "hotspot_min_cells",
    "hotspot_step_um", "membrane_complete_fraction", "estimate_tiles", NULL};
static const char *const MARKERS[] = {"ki67", "er-pr", "her2", "generic", NULL};
static const char *const STAINS[] = {"default", "custom", "estimate", NULL};
static const char *const DETECTION[] = {"hematoxylin", "od_sum", NULL};
static const char *const COMPARTMENTS[] = {"nucleus", "cytoplasm", "membrane", "cell", NULL};
static const char *const BOOLS[] = {"true", "false", NULL};

static const char *const CHANNELS[N_CH] = {"positive_per_mm2", "cells_per_mm2",
                                           "positive_percent", "h_score", "dab_mean"};


static void ihc_destroy(void *ctx) {
  IhcCtx *c = ctx;
  if (!c)
    return;
  g_free(c->marker);
  g_free(c->stains_mode);
  g_free(c->compartment_name);
  g_free(c->stain_note);
  for (int i = 0; i < N_CH; i++)
    g_free(c->names[i]);
  if (c->cells)
    g_array_unref(c->cells);
  if (c->tile_of)
    g_array_unref(c->tile_of);
  if (c->vertices)
    g_array_unref(c->vertices);
  _eosin_tile_index_clear(&c->tiles);
  g_free(c->region_of);
  g_free(c);
}

static bool get_bool(const EosinConfig *cfg, const char *key, bool def, bool *out,
                     GError **err) {
  g_autofree char *v = NULL;
  if (!eosin_config_get_choice(cfg, "ihc", key, def ? "true" : "false", BOOLS, &v, err))
    return false;
  *out = !strcmp(v, "true");
  return true;
}

static bool set_stains(IhcCtx *c, const double rgb_from[3][3], GError **err) {
  memcpy(c->rgb_from, rgb_from, sizeof c->rgb_from);
  /* the OD sum QuPath detects on is OD r + g + b of the pixel, which the
   * (complete) stain basis rebuilds from the three concentrations */
  for (int k = 0; k < 3; k++)
    c->np.od_sum_weight[k] = rgb_from[k][0] + rgb_from[k][1] + rgb_from[k][2];
  return _eosin_stain_matrix_invert(c->rgb_from, c->stain_from, err);
}

static bool ihc_init(const EosinConfig *cfg, void **ctx, EosinAnalyzerInfo *info,
                     GError **err) {
  if (!eosin_config_check_keys(cfg, "ihc", IHC_KEYS, err))
    return false;
  IhcCtx *c = g_new0(IhcCtx, 1);
  g_autofree char *det = NULL;
  double t1, t2, t3;
  bool ok =
      eosin_config_get_choice(cfg, "ihc", "marker", NULL, MARKERS, &c->marker, err) &&
      eosin_config_get_choice(cfg, "ihc", "stains", "default", STAINS, &c->stains_mode, err) &&
      eosin_config_get_choice(cfg, "ihc", "detection_image", "hematoxylin", DETECTION, &det,
                              err) &&
      eosin_config_get_double(cfg, "ihc", "threshold", 0.1, 0, 10, &c->np.threshold, err) &&
      eosin_config_get_double(cfg, "ihc", "background_radius_um", 8, 0, 100,
                              &c->np.background_radius_um, err) &&
      eosin_config_get_double(cfg, "ihc", "max_background", 2, 0, 10, &c->np.max_background,
                              err) &&
      eosin_config_get_double(cfg, "ihc", "median_radius_um", 0, 0, 10,
                              &c->np.median_radius_um, err) &&
      eosin_config_get_double(cfg, "ihc", "sigma_um", 1.5, 0.1, 20, &c->np.sigma_um, err) &&
      eosin_config_get_double(cfg, "ihc", "min_area_um2", 10, 0, 1e4, &c->np.min_area_um2,
                              err) &&
      eosin_config_get_double(cfg, "ihc", "max_area_um2", 400, 1, 1e5, &c->np.max_area_um2,
                              err) &&
      get_bool(cfg, "split_by_shape", true, &c->np.split_by_shape, err) &&
      eosin_config_get_double(cfg, "ihc", "cell_expansion_um", 5, 0, 25,
                              &c->np.cell_expansion_um, err);
  if (ok) {
    bool her2 = !strcmp(c->marker, "her2");
    ok = eosin_config_get_choice(cfg, "ihc", "compartment", her2 ? "membrane" : "nucleus",
                                 COMPARTMENTS, &c->compartment_name, err) &&
         eosin_config_get_double(cfg, "ihc", "threshold_1plus", 0.2, 0, 5, &t1, err) &&
         eosin_config_get_double(cfg, "ihc", "threshold_2plus", 0.4, 0, 5, &t2, err) &&
         eosin_config_get_double(cfg, "ihc", "threshold_3plus", 0.6, 0, 5, &t3, err) &&
         get_bool(cfg, "single_threshold", !strcmp(c->marker, "ki67"),
                  &c->rule.single_threshold, err) &&
         eosin_config_get_double(cfg, "ihc", "hotspot_area_mm2", 1, 0.01, 100,
                                 &c->hotspot_area_mm2, err) &&
         eosin_config_get_int(cfg, "ihc", "hotspot_min_cells", 500, 0, 10000000,
                              &c->hotspot_min_cells, err) &&
         eosin_config_get_double(cfg, "ihc", "hotspot_step_um", 50, 1, 1000,
                                 &c->hotspot_step_um, err) &&
         eosin_config_get_double(cfg, "ihc", "membrane_complete_fraction", 0.9, 0.1, 1,
                                 &c->complete_fraction, err) &&
         eosin_config_get_int(cfg, "ihc", "estimate_tiles", 16, 1, 1000, &c->estimate_tiles,
                              err);
  }
  if (ok && !c->rule.single_threshold && !(t1 < t2 && t2 < t3)) {
    g_autofree char *v = g_strdup_printf("%g, %g, %g", t1, t2, t3);
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [ihc] threshold_1plus/2plus/3plus = '%s': must increase", cfg->path, v);
    ok = false;
  }
  if (ok && c->np.min_area_um2 >= c->np.max_area_um2) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [ihc] min_area_um2 = '%g': must be below max_area_um2 (%g)", cfg->path,
                c->np.min_area_um2, c->np.max_area_um2);
    ok = false;
  }
  bool has_vectors = g_key_file_has_key(cfg->keyfile, "ihc", "vectors", NULL);
  if (ok && has_vectors != !strcmp(c->stains_mode, "custom")) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [ihc] vectors must be given exactly when stains = custom (stains = '%s')",
                cfg->path, c->stains_mode);
    ok = false;
  }
  if (!ok) {
    ihc_destroy(c);
    return false;
  }
  c->rule.thresholds[0] = t1, c->rule.thresholds[1] = t2, c->rule.thresholds[2] = t3;
  c->np.detect_od_sum = !strcmp(det, "od_sum");
  /* COMPARTMENTS lists the names in EOSIN_COMP_* order */
  for (int i = 0; COMPARTMENTS[i]; i++)
    if (!strcmp(COMPARTMENTS[i], c->compartment_name))
      c->compartment = i;

  double m[3][3];
  if (!strcmp(c->stains_mode, "custom")) {
    g_autofree char *v = g_key_file_get_value(cfg->keyfile, "ihc", "vectors", NULL);
    if (!_eosin_stain_parse_vectors(v, m, err)) {
      g_prefix_error(err, "%s: [ihc] vectors = ", cfg->path);
      ihc_destroy(c);
      return false;
    }
    _eosin_stain_normalise(m); /* unit vectors, as QuPath's StainVector */
    c->stain_note = g_strdup("custom vectors from the config");
  } else {
    /* QuPath's default H-DAB: (0.65, 0.70, 0.29), (0.27, 0.57, 0.78), residual = cross */
    const double def[2][3] = {{0.65, 0.70, 0.29}, {0.27, 0.57, 0.78}};
    memcpy(m, def, sizeof def);
    _eosin_stain_complete(m);
    c->stain_note = g_strdup("QuPath's default H-DAB vectors");
  }
  if (!set_stains(c, m, err)) {
    g_prefix_error(err, "%s: [ihc] ", cfg->path);
    ihc_destroy(c);
    return false;
  }
  double od[256];
  _eosin_stain_od_table(od);
  for (int v = 0; v < 256; v++)
    c->od_lut[0][v] = c->od_lut[1][v] = c->od_lut[2][v] = (float) od[v];
  for (int i = 0; i < N_CH; i++) {
    c->names[i] = g_strdup(CHANNELS[i]);
    c->dmin[i] = 0;
  }
  c->dmax[CH_POS_DENSITY] = 2000, c->dmax[CH_DENSITY] = 6000;
  c->dmax[CH_POS_PERCENT] = 100, c->dmax[CH_HSCORE] = 300, c->dmax[CH_DAB] = 1;
  c->cells = g_array_new(FALSE, FALSE, sizeof(EosinCell));
  c->tile_of = g_array_new(FALSE, FALSE, sizeof(uint32_t));
  c->vertices = g_array_new(FALSE, FALSE, sizeof(float));
  info->n_channels = N_CH;
  info->channel_names = c->names;
  info->default_min = c->dmin;
  info->default_max = c->dmax;
  *ctx = c;
  return true;
}

/* The tissue fragments and, with stains = estimate, the stain vectors. */
static bool ihc_prepare(void *ctx, const EosinSlideAccess *slide, GError **err) {
  IhcCtx *c = ctx;
  const EosinSlideInfo *info = slide->info;
  const EosinTilePlan *plan = slide->plan;
  const EosinTissueMask *mask = slide->mask;
  c->mpp_x = info->mpp_x, c->mpp_y = info->mpp_y;
  c->bounds[0] = info->bounds_x, c->bounds[1] = info->bounds_y;
  c->bounds[2] = info->bounds_w, c->bounds[3] = info->bounds_h;
  _eosin_tile_index_init(&c->tiles, plan);
  if (mask && mask->mask) {
    c->mask_w = mask->width, c->mask_h = mask->height;
    c->mask_sx = mask->scale_x, c->mask_sy = mask->scale_y;
    g_free(c->region_of);
    c->region_of = slide->fragments(slide, &c->n_regions);
    if (!c->region_of) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                  "slide %s: the tissue fragments do not fit in memory", info->path);
      return false;
    }
  }
  if (strcmp(c->stains_mode, "estimate") || !plan->tiles->len)
    return true;
  /* pixels of up to estimate_tiles tiles spread evenly over the plan */
  int n = MIN((int) plan->tiles->len, c->estimate_tiles);
  size_t px = (size_t) plan->tile_size * plan->tile_size;
  g_autofree uint8_t *rgb = g_try_malloc(px * 3 * n);
  if (!rgb) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "slide %s: stain estimation: %d tiles do not fit in memory", info->path, n);
    return false;
  }
  for (int k = 0; k < n; k++) {
    int id = (int) ((k + 0.5) * plan->tiles->len / n);
    if (!slide->read_tile(slide, id, rgb + k * px * 3, err)) {
      g_prefix_error(err, "slide %s: stain estimation: ", info->path);
      return false;
    }
  }
  double m[3][3];
  g_autoptr(GError) e = NULL;
  g_free(c->stain_note);
  if (_eosin_stain_estimate(rgb, px * n, 0.15, 1.0, m, &e) && set_stains(c, m, &e)) {
    c->stain_note = g_strdup_printf("estimated from %d tiles (Macenko)", n);
  } else {
    /* a slide with too little of one stain: keep the defaults and say so */
    c->stain_note = g_strdup_printf("estimation failed (%s): QuPath's default H-DAB vectors used",
                                    e ? e->message : "?");
    g_autofree char *note = g_strdup_printf("slide %s: stain %s", info->path, c->stain_note);
    slide->note(slide, note);
  }
  return true;
}

/* Cells of tile t come before those of tile t + 1, each tile's in the order
 * found: the same order whatever order the batches ran in. */
static void sort_cells(IhcCtx *c) {
  size_t n = c->cells->len;
  const uint32_t *tile = (const uint32_t *) c->tile_of->data;
  uint32_t max_tile = 0;
  for (size_t i = 0; i < n; i++)
    max_tile = MAX(max_tile, tile[i]);
  g_autofree size_t *start = g_new0(size_t, (size_t) max_tile + 2);
  for (size_t i = 0; i < n; i++)
    start[tile[i] + 1]++;
  for (uint32_t t = 1; t <= max_tile + 1; t++)
    start[t] += start[t - 1];
  GArray *sorted = g_array_sized_new(FALSE, FALSE, sizeof(EosinCell), n);
  g_array_set_size(sorted, n);
  for (size_t i = 0; i < n; i++)
    g_array_index(sorted, EosinCell, start[tile[i]]++) = g_array_index(c->cells, EosinCell, i);
  g_array_unref(c->cells);
  c->cells = sorted;
  g_array_set_size(c->tile_of, 0);
}

static const char *class_name(const IhcCtx *c, int k) {
  static const char *const multi[4] = {"Negative", "1+", "2+", "3+"};
  static const char *const single[4] = {"Negative", "Positive", "Positive", "Positive"};
  return c->rule.single_threshold ? single[k] : multi[k];
}

static bool wants(const IhcCtx *c, const char *marker) {
  return !strcmp(c->marker, marker) || !strcmp(c->marker, "generic");
}

/* Counts, positive %, H-score and the marker's own scores of @cells. */
static void add_scores(const IhcCtx *c, JsonBuilder *b, const EosinCell *cells, size_t n) {
  EosinCellCounts k = {0};
  for (size_t i = 0; i < n; i++)
    k.total++, k.by_class[cells[i].intensity]++;
  _eosin_json_int(b, "cells", k.total);
  json_builder_set_member_name(b, "cells_by_class");
  json_builder_begin_object(b);
  _eosin_json_int(b, "Negative", k.by_class[0]);
  if (c->rule.single_threshold) {
    _eosin_json_int(b, "Positive", k.by_class[1] + k.by_class[2] + k.by_class[3]);
  } else {
    for (int j = 1; j <= 3; j++)
      _eosin_json_int(b, class_name(c, j), k.by_class[j]);
  }
  json_builder_end_object(b);
  _eosin_json_int(b, "positive_cells", k.by_class[1] + k.by_class[2] + k.by_class[3]);
  _eosin_json_num(b, "positive_percent", _eosin_positive_percent(&k));
  if (!c->rule.single_threshold)
    _eosin_json_num(b, "h_score", _eosin_h_score(&k));
  if (wants(c, "ki67"))
    _eosin_json_num(b, "ki67_index", _eosin_positive_percent(&k));
  if (wants(c, "er-pr") && !c->rule.single_threshold) {
    EosinAllred a = _eosin_allred(&k);
    json_builder_set_member_name(b, "allred");
    json_builder_begin_object(b);
    _eosin_json_int(b, "proportion", a.proportion);
    _eosin_json_int(b, "intensity", a.intensity);
    _eosin_json_int(b, "total", a.total);
    json_builder_end_object(b);
  }
  if (wants(c, "her2") && !c->rule.single_threshold) {
    EosinHer2 h = _eosin_her2(cells, n, &c->rule, c->complete_fraction);
    static const char *const cat[4] = {"0", "1+", "2+", "3+"};
    json_builder_set_member_name(b, "her2_category");
    if (h.category >= 0)
      json_builder_add_string_value(b, cat[h.category]);
    else
      json_builder_add_null_value(b);
    json_builder_set_member_name(b, "her2");
    json_builder_begin_object(b);
    _eosin_json_num(b, "complete_intense_membrane_percent", h.complete_intense_percent);
    _eosin_json_num(b, "complete_membrane_percent", h.complete_percent);
    _eosin_json_num(b, "any_membrane_percent", h.any_membrane_percent);
    json_builder_end_object(b);
  }
}

static void add_vector(JsonBuilder *b, const char *k, const double *v) {
  json_builder_set_member_name(b, k);
  json_builder_begin_array(b);
  for (int j = 0; j < 3; j++)
    _eosin_json_value(b, v[j]);
  json_builder_end_array(b);
}

/* The heatmap's values: each tile's cells (by the grid cell their
 * centroid falls in) as densities, positive percent, H-score, mean DAB. */
static void density_map(const IhcCtx *c, const EosinTilePlan *plan, const EosinCell *cells,
                        size_t n, float *values) {
  size_t nt = plan->tiles->len;
  g_autofree int64_t *cnt = g_new0(int64_t, nt), *pos = g_new0(int64_t, nt),
                     *score = g_new0(int64_t, nt);
  g_autofree double *dab = g_new0(double, nt);
  for (size_t i = 0; i < n; i++) {
    int t = _eosin_tile_at(&c->tiles, plan, cells[i].x, cells[i].y);
    if (t < 0)
      continue;
    cnt[t]++;
    pos[t] += cells[i].intensity > 0;
    score[t] += cells[i].intensity;
    dab[t] += cells[i].dab[EOSIN_COMP_NUCLEUS];
  }
  double mm2 = plan->stride_l0_x * c->mpp_x * plan->stride_l0_y * c->mpp_y / 1e6;
  for (size_t t = 0; t < nt; t++) {
    float *v = values + t * N_CH;
    v[CH_POS_DENSITY] = (float) (pos[t] / mm2);
    v[CH_DENSITY] = (float) (cnt[t] / mm2);
    v[CH_POS_PERCENT] = cnt[t] ? (float) (100.0 * pos[t] / cnt[t]) : NAN;
    v[CH_HSCORE] = cnt[t] ? (float) (100.0 * score[t] / cnt[t]) : NAN;
    v[CH_DAB] = cnt[t] ? (float) (dab[t] / cnt[t]) : NAN;
  }
}

static bool ihc_finish(void *ctx, const EosinTilePlan *plan, float *values, JsonBuilder *b,
                       GError **err) {
  IhcCtx *c = ctx;
  if (!c->tiles.tile_at) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "ihc: finish() before prepare()");
    return false;
  }
  sort_cells(c);
  const EosinCell *cells = (const EosinCell *) c->cells->data;
  size_t n = c->cells->len;

  density_map(c, plan, cells, n, values);

  _eosin_json_str(b, "marker", c->marker);
  add_scores(c, b, cells, n);
  if (wants(c, "ki67")) {
    c->hotspot = _eosin_hotspot(cells, n, c->mpp_x, c->mpp_y, c->bounds[0], c->bounds[1],
                                c->bounds[2], c->bounds[3], c->hotspot_area_mm2,
                                c->hotspot_step_um, c->hotspot_min_cells);
    _eosin_json_num(b, "ki67_hotspot_index", c->hotspot.found ? c->hotspot.index : NAN);
    json_builder_set_member_name(b, "ki67_hotspot");
    json_builder_begin_object(b);
    _eosin_json_bool(b, "found", c->hotspot.found);
    _eosin_json_num(b, "area_mm2", c->hotspot.w * c->mpp_x * c->hotspot.h * c->mpp_y / 1e6);
    _eosin_json_num(b, "window_area_mm2_asked", c->hotspot_area_mm2);
    _eosin_json_bool(b, "clipped_to_slide", c->hotspot.clipped);
    _eosin_json_int(b, "min_cells", c->hotspot_min_cells);
    _eosin_json_int(b, "cells", c->hotspot.cells);
    _eosin_json_int(b, "positive_cells", c->hotspot.positive);
    _eosin_json_num(b, "x", c->hotspot.x);
    _eosin_json_num(b, "y", c->hotspot.y);
    _eosin_json_num(b, "width", c->hotspot.w);
    _eosin_json_num(b, "height", c->hotspot.h);
    json_builder_end_object(b);
  }

  /* per tissue fragment */
  json_builder_set_member_name(b, "regions");
  json_builder_begin_array(b);
  if (c->region_of && c->n_regions) {
    g_autofree GArray **by = g_new0(GArray *, c->n_regions + 1);
    for (size_t i = 0; i < n; i++) {
      int mx = CLAMP((int) (cells[i].x / c->mask_sx), 0, c->mask_w - 1);
      int my = CLAMP((int) (cells[i].y / c->mask_sy), 0, c->mask_h - 1);
      int r = c->region_of[(size_t) my * c->mask_w + mx];
      if (!by[r])
        by[r] = g_array_new(FALSE, FALSE, sizeof(EosinCell));
      g_array_append_val(by[r], cells[i]);
    }
    int id = 0;
    for (int r = 0; r <= c->n_regions; r++) {
      if (!by[r])
        continue;
      json_builder_begin_object(b);
      json_builder_set_member_name(b, "region");
      if (r)
        json_builder_add_int_value(b, ++id);
      else
        json_builder_add_string_value(b, "outside the tissue mask");
      double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
      for (guint i = 0; i < by[r]->len; i++) {
        const EosinCell *q = &g_array_index(by[r], EosinCell, i);
        x0 = MIN(x0, q->x), y0 = MIN(y0, q->y), x1 = MAX(x1, q->x), y1 = MAX(y1, q->y);
      }
      json_builder_set_member_name(b, "cell_bounds");
      json_builder_begin_array(b);
      _eosin_json_value(b, x0);
      _eosin_json_value(b, y0);
      _eosin_json_value(b, x1 - x0);
      _eosin_json_value(b, y1 - y0);
      json_builder_end_array(b);
      add_scores(c, b, (const EosinCell *) by[r]->data, by[r]->len);
      json_builder_end_object(b);
      g_array_unref(by[r]);
    }
  }
  json_builder_end_array(b);

  json_builder_set_member_name(b, "method");
  json_builder_begin_object(b);
  g_autofree char *on = g_strdup_printf("%s: DAB OD mean", c->compartment_name);
  _eosin_json_str(b, "classified_on", on);
  json_builder_set_member_name(b, "thresholds");
  json_builder_begin_array(b);
  for (int j = 0; j < (c->rule.single_threshold ? 1 : 3); j++)
    _eosin_json_value(b, c->rule.thresholds[j]);
  json_builder_end_array(b);
  _eosin_json_str(b, "stains", c->stain_note);
  add_vector(b, "hematoxylin", c->rgb_from[0]);
  add_vector(b, "dab", c->rgb_from[1]);
  add_vector(b, "residual", c->rgb_from[2]);
  _eosin_json_num(b, "detection_threshold", c->np.threshold);
  _eosin_json_str(b, "detection_image",
                  c->np.detect_od_sum ? "optical density sum" : "hematoxylin OD");
  _eosin_json_str(b, "cells_are",
                  "every detected nucleus (tumour and non-tumour cells are not told apart)");
  json_builder_end_object(b);
  return true;
}

static bool ihc_write(void *ctx, const char *dir, const EosinSlideInfo *info, GPtrArray *files,
                      GError **err) {
  IhcCtx *c = ctx;
  const char *names[4] = {class_name(c, 0), class_name(c, 1), class_name(c, 2), class_name(c, 3)};
  if (!_eosin_cells_write(dir, info, (const EosinCell *) c->cells->data, c->cells->len,
                          (const float *) c->vertices->data, names, c->compartment_name,
                          wants(c, "ki67") ? &c->hotspot : NULL, err))
    return false;
  g_ptr_array_add(files, g_strdup("cells.geojson"));
  g_ptr_array_add(files, g_strdup("cells.csv"));
  return true;
}

static const char *const OUTPUTS[] = {"cells.geojson", "cells.csv", NULL};

const EosinAnalyzerOps _eosin_analyzer_ihc = {
    .name = "ihc",
    .outputs = OUTPUTS,
    .init = ihc_init,
    .prepare = ihc_prepare,
    .run = _eosin_ihc_run,
    .finish = ihc_finish,
    .write = ihc_write,
    .destroy = ihc_destroy,
};
