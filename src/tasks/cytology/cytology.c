/*
 * cytology.c — the "cytology" analyzer: cervical (Pap, liquid-based)
 * screening on whole slides and fields.
 *
 * Per tile (a whole multiple of the tile model's input side, read at a
 * whole fraction of its µm/px):
 *   -> the tile model ([model], classes NL, LSIL, HSIL, SCC) on the tile,
 *      box-averaged to its input: the tile's class probabilities
 *   -> nuclei found on the haematoxylin OD (H&E colour deconvolution, the
 *      watershed detector of nuclei.c, sizes in µm); each cell is owned by
 *      the analysed tile whose centre is nearest, so a cell on a seam is
 *      counted once
 *   -> every owned cell cropped ([cytology] cell_window_um around its
 *      nucleus), resized to the cell model's input and classified in one
 *      batch ([cytology] cell_model, e.g. the Herlev classes): its class
 *      and abnormal probability (the sum of the cell_abnormal classes)
 * Slide: the triage of triage.c, the most suspicious cells for
 * gallery.png and suspicious-cells.geojson, every cell in cells.csv.
 * Slides that are not brightfield (fluorescence: a dark background) or
 * hold too few cells get no triage, and the report says why.
 */
#include "tasks/cytology/cytology-private.h"

#include <math.h>

static const char *const CYTO_KEYS[] = {
    "cell_model", "cell_classes", "cell_abnormal", "cell_window_um", "threshold", "sigma_um",
    "min_area_um2", "max_area_um2", "background_radius_um", "top_tile_fraction",
    "min_top_tiles", "cell_weight", "abnormal_threshold", "triage_rule", "field_fp_rate",
    "alpha", "min_cells",
    "min_cells_for_triage", "adequacy_exclude", "gallery_cells", "geojson_min_probability", "geojson_max_cells",
    NULL};

/* QuPath's H&E default vectors (Ruifrok and Johnston), completed */
static const double HE_DEFAULT[3][3] = {
    {0.651, 0.701, 0.290}, {0.216, 0.801, 0.558}, {0, 0, 0}};


const char *const _eosin_cyto_triage_names[EOSIN_CYTO_FIELD_CLASSES] = {"NILM", "LSIL", "HSIL",
                                                                         "SCC"};

static void clear_gallery(CytoCtx *c) {
  for (int i = 0; i < c->n_gallery; i++)
    g_free(c->gallery[i].rgb);
  c->n_gallery = 0;
}

static void cyto_destroy(void *ctx) {
  CytoCtx *c = ctx;
  if (!c)
    return;
  eosin_infer_free(c->tile_inf);
  eosin_infer_free(c->cell_inf);
  g_free(c->tile_activation);
  g_strfreev(c->cell_classes);
  for (int i = 0; i < N_CH; i++)
    g_free(c->names[i]);
  _eosin_tile_index_clear(&c->tiles);
  g_free(c->not_brightfield);
  if (c->cells)
    g_array_unref(c->cells);
  clear_gallery(c);
  g_free(c->gallery);
  g_free(c->tile_probs);
  g_free(c);
}

/* A comma-separated list of names, stripped: at least one, none empty or
 * twice, none with characters the JSON, GeoJSON and CSV outputs would have
 * to escape (quotes, backslash, comma, control characters). Caller frees. */
static char **split_names(const EosinConfig *cfg, const char *key, const char *v, GError **err) {
  g_auto(GStrv) parts = g_strsplit(v, ",", -1);
  const char *why = !parts[0] ? "no names" : NULL;
  for (char **p = parts; *p && !why; p++) {
    g_strstrip(*p);
    if (!**p)
      why = "an empty name";
    for (const char *q = *p; *q && !why; q++)
      if (*q == '"' || *q == '\\' || (unsigned char) *q < 0x20)
        why = "a name with a quote, backslash or control character";
    for (char **d = parts; d < p && !why; d++)
      if (!strcmp(*d, *p))
        why = "a name given twice";
  }
  if (why) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s: [cytology] %s = '%s': %s", cfg->path,
                key, v, why);
    return NULL;
  }
  return g_steal_pointer(&parts);
}

static char *get_string(const EosinConfig *cfg, const char *key) {
  char *v = g_key_file_get_string(cfg->keyfile, "cytology", key, NULL);
  if (v)
    g_strstrip(v);
  return v;
}

/* Marks in @set the cell classes @key = @v names; each must be one of
 * cell_classes. */
static bool class_set(CytoCtx *c, const EosinConfig *cfg, const char *key, const char *v,
                      bool *set, GError **err) {
  g_auto(GStrv) names = split_names(cfg, key, v, err);
  if (!names)
    return false;
  for (char **a = names; *a; a++) {
    int k = 0;
    while (k < c->n_cell_classes && strcmp(c->cell_classes[k], *a))
      k++;
    if (k == c->n_cell_classes) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "%s: [cytology] %s = '%s': '%s' is not one of cell_classes", cfg->path, key,
                  v, *a);
      return false;
    }
    set[k] = true;
  }
  return true;
}

/* The cell model: same preprocessing (mean, std, channel order) as the
 * [model] tile model, softmax over cell_classes. */
static bool load_cell_model(CytoCtx *c, const EosinConfig *cfg, GError **err) {
  g_autofree char *path = get_string(cfg, "cell_model");
  g_autofree char *classes = get_string(cfg, "cell_classes");
  g_autofree char *abnormal = get_string(cfg, "cell_abnormal");
  if (!path || !*path || !classes || !abnormal) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [cytology] needs cell_model, cell_classes and cell_abnormal", cfg->path);
    return false;
  }
  g_autofree char *full = _eosin_config_resolve_path(cfg, path);
  c->cell_classes = split_names(cfg, "cell_classes", classes, err);
  if (!c->cell_classes)
    return false;
  c->n_cell_classes = g_strv_length(c->cell_classes);
  if (c->n_cell_classes < 2 || c->n_cell_classes > EOSIN_CYTO_MAX_CELL_CLASSES) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [cytology] cell_classes = '%s': 2 to %d names", cfg->path, classes,
                EOSIN_CYTO_MAX_CELL_CLASSES);
    return false;
  }
  if (!class_set(c, cfg, "cell_abnormal", abnormal, c->abnormal, err))
    return false;
  g_autofree char *excl = get_string(cfg, "adequacy_exclude");
  if (excl && *excl && !class_set(c, cfg, "adequacy_exclude", excl, c->not_squamous, err))
    return false;
  EosinInferOptions io = {.device = cfg->model.device, .fp16 = cfg->model.fp16, .batch = 64,
                          .cache = cfg->model.cache};
  c->cell_inf = eosin_infer_new(full, &io, err);
  if (!c->cell_inf) {
    g_prefix_error(err, "%s: [cytology] cell_model: ", cfg->path);
    return false;
  }
  int h, w;
  eosin_infer_input_size(c->cell_inf, &h, &w);
  size_t got = eosin_infer_output_per_image(c->cell_inf);
  if (h != w || h < 8 || got != (size_t) c->n_cell_classes) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [cytology] cell_model %s takes %d x %d images and gives %zu values; "
                "cell_classes names %d",
                cfg->path, full, h, w, got, c->n_cell_classes);
    return false;
  }
  c->cell_in = h;
  return true;
}

/* [cytology] triage_rule (mean | count), field_fp_rate (the tile model's
 * rate of normal fields called abnormal in its group-wise cross-validation
 * on training patients: 1.6 %, models/cytology-field.md) and alpha. */
static bool get_rule(const EosinConfig *cfg, EosinTriageRule *r, GError **err) {
  static const char *const RULES[] = {"mean", "count", NULL};
  g_autofree char *rule = NULL;
  if (!eosin_config_get_choice(cfg, "cytology", "triage_rule", "mean", RULES, &rule, err) ||
      !eosin_config_get_double(cfg, "cytology", "field_fp_rate", 0.016, 1e-6, 0.5,
                               &r->field_fp_rate, err) ||
      !eosin_config_get_double(cfg, "cytology", "alpha", 0.001, 1e-12, 0.5, &r->alpha, err))
    return false;
  r->count = !strcmp(rule, "count");
  return true;
}


static bool cyto_init(const EosinConfig *cfg, void **ctx, EosinAnalyzerInfo *info,
                      GError **err) {
  if (!eosin_config_check_keys(cfg, "cytology", CYTO_KEYS, err))
    return false;
  if (!cfg->model.present || !cfg->model.path || cfg->model.n_classes != 4 ||
      strcmp(cfg->model.kind, "classification")) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: the cytology analyzer needs a [model] classification model with four "
                "classes (normal, LSIL, HSIL, SCC, in that order)",
                cfg->path);
    return false;
  }
  if (strcmp(cfg->model.activation, "softmax")) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [model] activation = '%s': the cytology triage needs class "
                "probabilities (softmax)",
                cfg->path, cfg->model.activation);
    return false;
  }
  CytoCtx *c = g_new0(CytoCtx, 1);
  *ctx = c;
  c->pre = cfg->model.pre;
  c->tile_activation = g_strdup(cfg->model.activation);
  c->tta = cfg->model.tta_dihedral;
  bool ok =
      eosin_config_get_double(cfg, "cytology", "cell_window_um", 48, 5, 500, &c->window_um,
                              err) &&
      eosin_config_get_double(cfg, "cytology", "threshold", 0.15, 0, 5, &c->np.threshold, err) &&
      eosin_config_get_double(cfg, "cytology", "sigma_um", 1.5, 0.1, 20, &c->np.sigma_um, err) &&
      eosin_config_get_double(cfg, "cytology", "min_area_um2", 10, 0, 1e4, &c->np.min_area_um2,
                              err) &&
      eosin_config_get_double(cfg, "cytology", "max_area_um2", 400, 1, 1e5,
                              &c->np.max_area_um2, err) &&
      eosin_config_get_double(cfg, "cytology", "background_radius_um", 0, 0, 100,
                              &c->np.background_radius_um, err) &&
      eosin_config_get_double(cfg, "cytology", "top_tile_fraction", 1, 0, 1,
                              &c->rule.top_tile_fraction, err) &&
      eosin_config_get_int(cfg, "cytology", "min_top_tiles", 3, 1, 1000000,
                           &c->rule.min_top_tiles, err) &&
      eosin_config_get_double(cfg, "cytology", "cell_weight", 0, 0, 1, &c->rule.cell_weight,
                              err) &&
      eosin_config_get_double(cfg, "cytology", "abnormal_threshold", 0.5, 0, 1,
                              &c->rule.threshold, err) &&
      get_rule(cfg, &c->rule, err) &&
      eosin_config_get_int(cfg, "cytology", "min_cells", 5000, 0, G_MAXINT, &c->min_cells,
                           err) &&
      eosin_config_get_int(cfg, "cytology", "min_cells_for_triage", 100, 0, G_MAXINT,
                           &c->min_cells_triage, err) &&
      eosin_config_get_int(cfg, "cytology", "gallery_cells", 24, 0, 240, &c->gallery_n, err) &&
      eosin_config_get_double(cfg, "cytology", "geojson_min_probability", 0.5, 0, 1,
                              &c->geojson_min_p, err) &&
      eosin_config_get_int(cfg, "cytology", "geojson_max_cells", 5000, 0, G_MAXINT,
                           &c->geojson_max, err);
  if (!ok)
    return false;
  c->np.max_background = 2;
  c->np.split_by_shape = true;
  c->np.cell_expansion_um = 0;

  EosinInferOptions io = {.device = cfg->model.device, .fp16 = cfg->model.fp16,
                          .batch = cfg->batch_size, .cache = cfg->model.cache};
  c->tile_inf = eosin_infer_new(cfg->model.path, &io, err);
  if (!c->tile_inf) {
    _eosin_config_prefix_model_error(cfg, err);
    return false;
  }
  EosinClassifierExpect want = {.config = cfg->path, .model = cfg->model.path,
                                .n_classes = cfg->model.n_classes};
  if (!_eosin_check_classifier(c->tile_inf, &want, err))
    return false;
  int h, w;
  eosin_infer_input_size(c->tile_inf, &h, &w);
  if (h != w || h < 1 || cfg->tile_size % h) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [tiling] tile_size = %d must be a whole multiple of model %s's %d x %d "
                "input (tiles are box-averaged to it)",
                cfg->path, cfg->tile_size, cfg->model.path, h, w);
    return false;
  }
  c->tile_in = h, c->tile_factor = cfg->tile_size / h;
  /* a cell owned by a tile lies at least overlap/2 from its edge, so its
   * window lies whole in the tile only if it is no wider than the overlap */
  double win_px = c->window_um / cfg->mpp;
  if (win_px > cfg->overlap) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [cytology] cell_window_um = %g is %.0f px at %g µm/px, more than [tiling] "
                "overlap = %d: the windows of cells near a tile's edge would reach past it",
                cfg->path, c->window_um, win_px, cfg->mpp, cfg->overlap);
    return false;
  }
  if (!load_cell_model(c, cfg, err))
    return false;

  double m[3][3];
  memcpy(m, HE_DEFAULT, sizeof m);
  _eosin_stain_normalise(m);
  _eosin_stain_complete(m);
  if (!_eosin_stain_matrix_invert(m, c->stain_from, err))
    return false;

  const char *ch[N_CH] = {cfg->model.classes[0], cfg->model.classes[1], cfg->model.classes[2],
                          cfg->model.classes[3], "abnormal", "cells_per_mm2",
                          "abnormal_cells_per_mm2"};
  for (int i = 0; i < N_CH; i++) {
    c->names[i] = g_strdup(ch[i]);
    c->dmin[i] = 0, c->dmax[i] = 1;
  }
  c->dmax[CH_CELLS] = 2000, c->dmax[CH_ABN_CELLS] = 200;
  c->cells = g_array_new(FALSE, FALSE, sizeof(EosinCytoCell));
  /* candidates for the gallery: four per place, so that neighbours of a
   * cluster can be passed over for other places */
  c->pool_n = 4 * c->gallery_n;
  c->gallery = g_new0(EosinCytoCrop, MAX(c->pool_n, 1));
  info->n_channels = N_CH;
  info->channel_names = c->names;
  info->default_min = c->dmin;
  info->default_max = c->dmax;
  return true;
}

/* From the slide's thumbnail: whether it is brightfield (its median
 * luminance: glass is bright, the background of a fluorescence or
 * dark-field scan near black) and the colour of its glass (the mean of the
 * brightest tenth of the pixels), against which optical density is taken,
 * as QuPath's "background" stain value: LBC glass is bluish grey, not
 * white, and read against white it looks like haematoxylin. */
static bool check_slide(CytoCtx *c, const EosinSlideAccess *slide, GError **err) {
  EosinThumbnail th = {0};
  if (!slide->thumbnail(slide, 512, &th, err))
    return false;
  size_t n = (size_t) th.width * th.height;
  int64_t hist[256] = {0};
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = th.rgb + 3 * i;
    hist[(299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000]++;
  }
  int64_t acc = 0;
  int median = 0, p90 = 255;
  while (median < 255 && (acc += hist[median]) < (int64_t) (n / 2))
    median++;
  for (acc = 0; p90 > 0 && (acc += hist[p90]) < (int64_t) (n / 10);)
    p90--;
  double sum[3] = {0};
  int64_t cnt = 0;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *p = th.rgb + 3 * i;
    if ((299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000 >= p90) {
      for (int k = 0; k < 3; k++)
        sum[k] += p[k];
      cnt++;
    }
  }
  eosin_thumbnail_clear(&th);
  for (int k = 0; k < 3; k++) {
    c->glass[k] = CLAMP(cnt ? sum[k] / cnt : 255, 100, 255);
    for (int v = 0; v < 256; v++)
      c->od_lut[k][v] = (float) MAX(0, -log10(MAX(v, 1) / c->glass[k]));
  }
  if (median < 100)
    c->not_brightfield = g_strdup_printf(
        "the slide's median brightness is %d of 255: a fluorescence or dark-field scan, not "
        "a brightfield Pap stain; no triage",
        median);
  return true;
}

static bool cyto_prepare(void *ctx, const EosinSlideAccess *slide, GError **err) {
  CytoCtx *c = ctx;
  const EosinSlideInfo *info = slide->info;
  const EosinTilePlan *plan = slide->plan;
  c->mpp_x = info->mpp_x, c->mpp_y = info->mpp_y;
  _eosin_tile_index_init(&c->tiles, plan);
  g_array_set_size(c->cells, 0);
  clear_gallery(c);
  g_clear_pointer(&c->not_brightfield, g_free);
  c->n_tiles = plan->tiles->len;
  g_free(c->tile_probs);
  c->tile_probs = g_new(float, c->n_tiles * 4);
  for (size_t i = 0; i < c->n_tiles * 4; i++)
    c->tile_probs[i] = NAN;
  c->finished = false;
  return check_slide(c, slide, err);
}

static bool cyto_write(void *ctx, const char *dir, const EosinSlideInfo *info, GPtrArray *files,
                       GError **err) {
  CytoCtx *c = ctx;
  if (!c->finished) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "cytology: write() before finish()");
    return false;
  }
  const EosinCytoCell *cells = (const EosinCytoCell *) c->cells->data;
  size_t n = c->cells->len, written = 0;
  g_autofree char *gallery = g_build_filename(dir, "gallery.png", NULL);
  g_autofree char *geojson = g_build_filename(dir, "suspicious-cells.geojson", NULL);
  g_autofree char *csv = g_build_filename(dir, "cells.csv", NULL);
  if (!_eosin_cyto_gallery_write(gallery, c->gallery, c->n_gallery, c->cell_classes, info->name,
                                 err) ||
      !_eosin_cyto_geojson_write(geojson, info, cells, n, c->geojson_min_p, c->geojson_max,
                                 c->mpp_x, c->cell_classes, &written, err) ||
      !_eosin_cyto_csv_write(csv, cells, n, c->cell_classes, err))
    return false;
  g_ptr_array_add(files, g_strdup("gallery.png"));
  g_ptr_array_add(files, g_strdup("suspicious-cells.geojson"));
  g_ptr_array_add(files, g_strdup("cells.csv"));
  return true;
}

static void cyto_describe(void *ctx, JsonBuilder *b) {
  CytoCtx *c = ctx;
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "tile_model");
  eosin_infer_report(c->tile_inf, b);
  json_builder_set_member_name(b, "cell_model");
  eosin_infer_report(c->cell_inf, b);
  json_builder_end_object(b);
}

static const char *const OUTPUTS[] = {"gallery.png", "suspicious-cells.geojson", "cells.csv", NULL};
static const char *const MODEL_KEYS[] = {"cell_model", NULL};

const EosinAnalyzerOps _eosin_analyzer_cytology = {
    .name = "cytology",
    .outputs = OUTPUTS,
    .model_keys = MODEL_KEYS,
    .init = cyto_init,
    .prepare = cyto_prepare,
    .run = _eosin_cyto_run,
    .finish = _eosin_cyto_finish,
    .write = cyto_write,
    .describe = cyto_describe,
    .destroy = cyto_destroy,
};
