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
 * Slide: the triage of cytology-triage.c, the most suspicious cells for
 * gallery.png and suspicious-cells.geojson, every cell in cells.csv.
 * Slides that are not brightfield (fluorescence: a dark background) or
 * hold too few cells get no triage, and the report says why.
 */
#include "tasks/cytology/cytology-private.h"

#include <math.h>

static const char *const CYTO_KEYS[] = {
    "cell_model", "cell_classes", "cell_abnormal", "cell_window_um", "threshold", "sigma_um",
    "min_area_um2", "max_area_um2", "background_radius_um", "top_tile_fraction",
    "min_top_tiles", "cell_weight", "abnormal_threshold", "min_cells",
    "min_cells_for_triage", "adequacy_exclude", "gallery_cells", "geojson_min_probability", "geojson_max_cells",
    NULL};

enum { CH_NL, CH_LSIL, CH_HSIL, CH_SCC, CH_ABNORMAL, CH_CELLS, CH_ABN_CELLS, N_CH };
static const char *const TRIAGE_NAMES[EOSIN_CYTO_FIELD_CLASSES] = {"NILM", "LSIL", "HSIL",
                                                                    "SCC"};

/* QuPath's H&E default vectors (Ruifrok and Johnston), completed */
static const double HE_DEFAULT[3][3] = {
    {0.651, 0.701, 0.290}, {0.216, 0.801, 0.558}, {0, 0, 0}};

typedef struct {
  /* the tile model */
  EosinInfer *tile_inf;
  EosinPreprocess pre;
  int tile_in, tile_factor;   /* model input side; tile px per input px */
  char *tile_activation;
  /* the cell model */
  EosinInfer *cell_inf;
  int cell_in, n_cell_classes;
  char **cell_classes;
  bool abnormal[EOSIN_CYTO_MAX_CELL_CLASSES];
  bool not_squamous[EOSIN_CYTO_MAX_CELL_CLASSES]; /* adequacy_exclude */
  double window_um;
  /* nuclei */
  EosinNucleiParams np;
  double stain_from[3][3];
  float od_lut[3][256];       /* per channel, against the slide's glass */
  double glass[3];            /* the slide's background RGB, from prepare */
  /* triage and outputs */
  EosinTriageRule rule;
  int min_cells, min_cells_triage, gallery_n, geojson_max;
  double geojson_min_p;
  /* heatmap channels */
  char *names[N_CH + 1];
  double dmin[N_CH], dmax[N_CH];
  /* per slide */
  EosinTileIndex tiles;
  double mpp_x, mpp_y;
  char *not_brightfield;      /* why the slide is not triaged, from prepare */
  GArray *cells;              /* EosinCytoCell, sorted in finish */
  EosinCytoCrop *gallery;     /* the pool: pool_n best so far, unsorted; after
                                 finish, the gallery, most suspicious first */
  int n_gallery, pool_n;
  float *tile_probs;          /* tiles x 4, written by run */
  size_t n_tiles;
  EosinTriage triage;
  bool finished;
} CytoCtx;

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
    g_prefix_error(err, "%s: [model] path: ", cfg->path);
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
  if (!eosin_stain_matrix_invert(m, c->stain_from, err))
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

/* ---------------------------------------------------------------- per tile */

typedef struct {
  GArray *cells;   /* EosinCytoCell (class fields filled later) */
  GArray *crops;   /* uint8: win x win RGB per cell, at the tile's µm/px */
  GError *error;
} TileCells;

typedef struct {
  const CytoCtx *c;
  const EosinTileBatch *b;
  TileCells *res;
  int win;
} Work;

/* The @win x @win window of tile @rgb (@S x @S) centred at (@cx, @cy),
 * white outside the tile. */
static void crop_window(const uint8_t *rgb, int S, double cx, double cy, int win, uint8_t *out) {
  int x0 = (int) lround(cx - win / 2.0), y0 = (int) lround(cy - win / 2.0);
  for (int y = 0; y < win; y++)
    for (int x = 0; x < win; x++) {
      int sx = x0 + x, sy = y0 + y;
      uint8_t *o = out + 3 * ((size_t) y * win + x);
      if (sx < 0 || sy < 0 || sx >= S || sy >= S)
        o[0] = o[1] = o[2] = 255;
      else
        memcpy(o, rgb + 3 * ((size_t) sy * S + sx), 3);
    }
}

/* Bilinear resize of a square RGB image (pixel centres aligned). */
static void resize_square(const uint8_t *in, int n, uint8_t *out, int m) {
  double s = (double) n / m;
  for (int y = 0; y < m; y++) {
    double fy = CLAMP((y + 0.5) * s - 0.5, 0, n - 1);
    int y0 = (int) fy, y1 = MIN(y0 + 1, n - 1);
    double wy = fy - y0;
    for (int x = 0; x < m; x++) {
      double fx = CLAMP((x + 0.5) * s - 0.5, 0, n - 1);
      int x0 = (int) fx, x1 = MIN(x0 + 1, n - 1);
      double wx = fx - x0;
      for (int k = 0; k < 3; k++) {
        double a = in[3 * ((size_t) y0 * n + x0) + k], b = in[3 * ((size_t) y0 * n + x1) + k];
        double cc = in[3 * ((size_t) y1 * n + x0) + k], d = in[3 * ((size_t) y1 * n + x1) + k];
        double v = (a * (1 - wx) + b * wx) * (1 - wy) + (cc * (1 - wx) + d * wx) * wy;
        out[3 * ((size_t) y * m + x) + k] = (uint8_t) lround(v);
      }
    }
  }
}

typedef struct {
  int64_t n;
  double sx, sy, sh;
} NucAcc;

/* Finds the nuclei of tile @k of the batch and keeps the cells it owns,
 * with their windows (@scratch: the tile's stains). Reads the context
 * only, so tiles of a batch run at once. */
static void tile_cells(void *data, int k, void *scratch) {
  Work *w = data;
  float *st = scratch;
  const CytoCtx *c = w->c;
  const EosinTileBatch *b = w->b;
  TileCells *r = &w->res[k];
  int S = b->tile_size;
  size_t px = (size_t) S * S;
  const uint8_t *rgb = b->pixels + k * px * 3;
  _eosin_stain_deconvolve_lut(rgb, px, c->od_lut, c->stain_from, st);
  EosinNucleiParams np = c->np;
  np.mpp = b->plan->mpp;
  EosinNucleiLabels L;
  if (!_eosin_nuclei_detect(&np, st, S, S, &L, &r->error))
    return;
  g_autofree NucAcc *acc = g_new0(NucAcc, L.n + 1);
  for (size_t p = 0; p < px; p++) {
    int l = L.nucleus[p];
    if (!l)
      continue;
    acc[l].n++;
    acc[l].sx += p % S + 0.5, acc[l].sy += p / S + 0.5;
    acc[l].sh += st[3 * p];
  }
  const EosinTilePlan *plan = b->plan;
  const EosinTile *t = &g_array_index(plan->tiles, EosinTile, b->tile_ids[k]);
  double scale = plan->tile_l0_x / plan->tile_size;
  double px_um2 = np.mpp * np.mpp;
  size_t win_bytes = (size_t) w->win * w->win * 3;
  for (int l = 1; l <= L.n; l++) {
    if (!acc[l].n)
      continue;
    double cx = acc[l].sx / acc[l].n, cy = acc[l].sy / acc[l].n;
    double gx = t->x + cx * scale, gy = t->y + cy * scale;
    if (_eosin_tile_owner(&c->tiles, plan, gx, gy) != b->tile_ids[k])
      continue;
    EosinCytoCell cell = {0};
    cell.x = gx, cell.y = gy;
    cell.nucleus_area_um2 = (float) (acc[l].n * px_um2);
    cell.hematoxylin = (float) (acc[l].sh / acc[l].n);
    cell.tile = (uint32_t) b->tile_ids[k];
    g_array_append_val(r->cells, cell);
    guint at = r->crops->len;
    g_array_set_size(r->crops, at + win_bytes);
    crop_window(rgb, S, cx, cy, w->win, (uint8_t *) r->crops->data + at);
  }
  _eosin_nuclei_labels_clear(&L);
}

/* Keeps @cell (and its window) if it is among the pool_n most suspicious
 * so far. */
static void gallery_offer(CytoCtx *c, const EosinCytoCell *cell, const uint8_t *win, int side) {
  if (c->gallery_n <= 0)
    return;
  int slot = c->n_gallery;
  if (c->n_gallery == c->pool_n) {
    int worst = 0;
    for (int i = 1; i < c->n_gallery; i++)
      if (_eosin_cyto_cell_cmp(&c->gallery[i].cell, &c->gallery[worst].cell) > 0)
        worst = i;
    if (_eosin_cyto_cell_cmp(cell, &c->gallery[worst].cell) >= 0)
      return;
    slot = worst;
    g_free(c->gallery[slot].rgb);
  } else {
    c->n_gallery++;
  }
  c->gallery[slot].cell = *cell;
  c->gallery[slot].side = side;
  c->gallery[slot].rgb = g_memdup2(win, (size_t) side * side * 3);
}

static bool cyto_run(void *ctx, const EosinTileBatch *b, float *values, GError **err) {
  CytoCtx *c = ctx;
  if (!b->plan || !c->tiles.tile_at) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "cytology: a batch without its tile plan, or before prepare()");
    return false;
  }
  for (size_t i = 0; i < (size_t) b->n * N_CH; i++)
    values[i] = NAN;
  if (c->not_brightfield)
    return true; /* nothing on such a slide means what the models learnt */
  int S = b->tile_size, in = c->tile_in, f = c->tile_factor;

  /* 1. the tile model on each tile, box-averaged to its input */
  g_autofree uint8_t *small = g_new(uint8_t, (size_t) b->n * in * in * 3);
  for (int k = 0; k < b->n; k++) {
    const uint8_t *src = b->pixels + (size_t) k * S * S * 3;
    uint8_t *dst = small + (size_t) k * in * in * 3;
    for (int y = 0; y < in; y++)
      for (int x = 0; x < in; x++)
        for (int ch = 0; ch < 3; ch++) {
          unsigned s = 0;
          for (int dy = 0; dy < f; dy++)
            for (int dx = 0; dx < f; dx++)
              s += src[3 * ((size_t) (y * f + dy) * S + x * f + dx) + ch];
          dst[3 * ((size_t) y * in + x) + ch] = (uint8_t) ((s + f * f / 2) / (f * f));
        }
  }
  g_autofree float *probs = g_new(float, (size_t) b->n * 4);
  if (!eosin_infer_run_rgb(c->tile_inf, small, b->n, &c->pre, probs, err)) {
    g_prefix_error(err, "tile model: ");
    return false;
  }
  if (!_eosin_check_model_outputs("(the [model] tile model)", probs, b->n, 4, b, err))
    return false;
  _eosin_activate(c->tile_activation, probs, b->n, 4, 1);

  /* 2. nuclei and cell windows, one thread per core */
  g_autofree TileCells *res = g_new0(TileCells, b->n);
  for (int k = 0; k < b->n; k++) {
    res[k].cells = g_array_new(FALSE, FALSE, sizeof(EosinCytoCell));
    res[k].crops = g_array_new(FALSE, FALSE, 1);
  }
  int win = MAX(8, (int) lround(c->window_um / b->plan->mpp));
  Work w = {c, b, res, win};
  _eosin_parallel_for(b->n, sizeof(float) * 3 * S * S, tile_cells, &w);

  /* 3. the cell model on every cell of the batch */
  bool ok = true;
  size_t n_cells = 0;
  for (int k = 0; k < b->n; k++) {
    if (res[k].error && ok) {
      g_propagate_prefixed_error(err, res[k].error, "tile %d: ", b->tile_ids[k]);
      res[k].error = NULL;
      ok = false;
    }
    g_clear_error(&res[k].error);
    n_cells += res[k].cells->len;
  }
  size_t in_bytes = (size_t) c->cell_in * c->cell_in * 3, win_bytes = (size_t) win * win * 3;
  g_autofree uint8_t *batch = ok ? g_try_malloc(MAX(n_cells, 1) * in_bytes) : NULL;
  g_autofree float *cp = ok ? g_try_malloc(MAX(n_cells, 1) * c->n_cell_classes * 4) : NULL;
  if (ok && (!batch || !cp)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "cytology: %zu cell windows do not fit in memory", n_cells);
    ok = false;
  }
  size_t j = 0;
  for (int k = 0; ok && k < b->n; k++)
    for (guint i = 0; i < res[k].cells->len; i++, j++)
      resize_square((const uint8_t *) res[k].crops->data + i * win_bytes, win,
                    batch + j * in_bytes, c->cell_in);
  if (ok && n_cells &&
      !eosin_infer_run_rgb(c->cell_inf, batch, (int) n_cells, &c->pre, cp, err)) {
    g_prefix_error(err, "cell model: ");
    ok = false;
  }
  if (ok && !_eosin_check_model_outputs("(the [cytology] cell_model)", cp, (int) n_cells,
                                        c->n_cell_classes, NULL, err)) {
    g_prefix_error(err, "tiles %d-%d: ", b->tile_ids[0], b->tile_ids[b->n - 1]);
    ok = false;
  }
  if (ok)
    _eosin_activate("softmax", cp, n_cells, c->n_cell_classes, 1);

  /* 4. cells, gallery candidates and the tile's values */
  double mm2 = b->plan->stride_l0_x * c->mpp_x * b->plan->stride_l0_y * c->mpp_y / 1e6;
  j = 0;
  for (int k = 0; k < b->n; k++) {
    int64_t n_abn = 0;
    for (guint i = 0; ok && i < res[k].cells->len; i++, j++) {
      EosinCytoCell *cell = &g_array_index(res[k].cells, EosinCytoCell, i);
      const float *p = cp + j * c->n_cell_classes;
      int best = 0;
      double pa = 0;
      for (int q = 0; q < c->n_cell_classes; q++) {
        if (p[q] > p[best])
          best = q;
        if (c->abnormal[q])
          pa += p[q];
      }
      cell->cls = (uint8_t) best, cell->p_class = p[best], cell->p_abnormal = (float) pa;
      cell->suspicion = (float) pa * (1 - probs[4 * k]);
      n_abn += pa >= 0.5;
      g_array_append_val(c->cells, *cell);
      gallery_offer(c, cell, (const uint8_t *) res[k].crops->data + i * win_bytes, win);
    }
    if (ok) {
      float *v = values + (size_t) k * N_CH;
      const float *pr = probs + 4 * k;
      for (int q = 0; q < 4; q++)
        v[q] = pr[q], c->tile_probs[(size_t) b->tile_ids[k] * 4 + q] = pr[q];
      v[CH_ABNORMAL] = 1 - pr[0];
      v[CH_CELLS] = (float) (res[k].cells->len / mm2);
      v[CH_ABN_CELLS] = (float) (n_abn / mm2);
    }
    g_array_unref(res[k].cells);
    g_array_unref(res[k].crops);
  }
  return ok;
}

/* ---------------------------------------------------------------- slide */

static int cell_cmp(gconstpointer a, gconstpointer b) {
  return _eosin_cyto_cell_cmp(a, b);
}

static int crop_cmp(const void *a, const void *b) {
  return _eosin_cyto_cell_cmp(&((const EosinCytoCrop *) a)->cell,
                              &((const EosinCytoCrop *) b)->cell);
}

/* The gallery from the sorted pool: most suspicious first, passing over a
 * cell within half a window of one already shown (the same cluster seen
 * again), up to gallery_n. */
static void select_gallery(CytoCtx *c) {
  double r = c->window_um / 2 / c->mpp_x, r2 = r * r;
  int kept = 0;
  for (int i = 0; i < c->n_gallery; i++) {
    bool near = kept >= c->gallery_n;
    for (int j = 0; j < kept && !near; j++) {
      double dx = c->gallery[i].cell.x - c->gallery[j].cell.x;
      double dy = c->gallery[i].cell.y - c->gallery[j].cell.y;
      near = dx * dx + dy * dy < r2;
    }
    if (near) {
      g_free(c->gallery[i].rgb);
      continue;
    }
    c->gallery[kept++] = c->gallery[i];
  }
  c->n_gallery = kept;
}

static void json_cell(JsonBuilder *b, const CytoCtx *c, const EosinCytoCell *cell, int rank) {
  json_builder_begin_object(b);
  _eosin_json_int(b, "rank", rank);
  _eosin_json_num(b, "x", round(cell->x * 10) / 10);
  _eosin_json_num(b, "y", round(cell->y * 10) / 10);
  _eosin_json_str(b, "class", c->cell_classes[cell->cls]);
  _eosin_json_num(b, "class_probability", cell->p_class);
  _eosin_json_num(b, "abnormal_probability", cell->p_abnormal);
  _eosin_json_num(b, "suspicion", cell->suspicion);
  _eosin_json_num(b, "nucleus_area_um2", cell->nucleus_area_um2);
  json_builder_end_object(b);
}

static bool cyto_finish(void *ctx, const EosinTilePlan *plan, float *values, JsonBuilder *b,
                        GError **err) {
  (void) values;
  CytoCtx *c = ctx;
  if (!c->tiles.tile_at) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "cytology: finish() before prepare()");
    return false;
  }
  g_array_sort(c->cells, cell_cmp);
  qsort(c->gallery, c->n_gallery, sizeof *c->gallery, crop_cmp);
  select_gallery(c);
  const EosinCytoCell *cells = (const EosinCytoCell *) c->cells->data;
  size_t n = c->cells->len;
  int64_t by_class[EOSIN_CYTO_MAX_CELL_CLASSES] = {0}, n_abn = 0, n_sq = 0;
  for (size_t i = 0; i < n; i++)
    by_class[cells[i].cls]++, n_abn += cells[i].p_abnormal >= 0.5f;
  for (int q = 0; q < c->n_cell_classes; q++)
    n_sq += c->not_squamous[q] ? 0 : by_class[q];

  g_autoptr(GPtrArray) warnings = g_ptr_array_new_with_free_func(g_free);
  const char *reason = NULL;
  if (c->not_brightfield) {
    reason = c->not_brightfield;
  } else if (n < (size_t) c->min_cells_triage) {
    g_ptr_array_add(warnings, g_strdup_printf("%zu cells found, fewer than the %d a triage "
                                              "needs (min_cells_for_triage): no triage",
                                              n, c->min_cells_triage));
    reason = warnings->pdata[warnings->len - 1];
  }
  if (n_sq < c->min_cells && !c->not_brightfield)
    g_ptr_array_add(warnings,
                    g_strdup_printf("%" G_GINT64_FORMAT " squamous cells (by the cell model): "
                                    "below the %d The Bethesda System asks of a liquid-based "
                                    "slide (adequacy: unsatisfactory)",
                                    n_sq, c->min_cells));
  if (c->not_brightfield)
    g_ptr_array_add(warnings, g_strdup(c->not_brightfield));
  memset(&c->triage, 0, sizeof c->triage);
  if (!reason)
    _eosin_cyto_triage(&c->rule, c->tile_probs, 4, c->n_tiles, cells, n, &c->triage);
  c->finished = true;

  _eosin_json_int(b, "cells", (gint64) n);
  _eosin_json_int(b, "abnormal_cells", n_abn);
  json_builder_set_member_name(b, "cells_by_class");
  json_builder_begin_object(b);
  for (int q = 0; q < c->n_cell_classes; q++)
    _eosin_json_int(b, c->cell_classes[q], by_class[q]);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "adequacy");
  json_builder_begin_object(b);
  _eosin_json_int(b, "squamous_cells", n_sq);
  _eosin_json_int(b, "min_cells", c->min_cells);
  _eosin_json_bool(b, "satisfactory", !c->not_brightfield && n_sq >= c->min_cells);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "glass_rgb");
  json_builder_begin_array(b);
  for (int k = 0; k < 3; k++)
    _eosin_json_value(b, isfinite(c->glass[k]) ? round(c->glass[k] * 10) / 10 : 0);
  json_builder_end_array(b);

  const EosinTriage *t = &c->triage;
  json_builder_set_member_name(b, "triage");
  json_builder_begin_object(b);
  _eosin_json_bool(b, "assessable", t->assessable);
  if (!t->assessable) {
    _eosin_json_str(b, "category", NULL);
    _eosin_json_str(b, "reason", reason);
  } else {
    _eosin_json_str(b, "category", TRIAGE_NAMES[t->category]);
    _eosin_json_num(b, "abnormal", t->abnormal);
    json_builder_set_member_name(b, "probabilities");
    json_builder_begin_object(b);
    for (int q = 0; q < EOSIN_CYTO_FIELD_CLASSES; q++)
      _eosin_json_num(b, TRIAGE_NAMES[q], t->prob[q]);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "tile_evidence");
    json_builder_begin_object(b);
    _eosin_json_int(b, "top_tiles", t->top_tiles);
    _eosin_json_num(b, "abnormal", t->tile_abnormal);
    _eosin_json_int(b, "lesion_tiles", t->lesion_tiles);
    json_builder_set_member_name(b, "grade");
    json_builder_begin_object(b);
    for (int q = 0; q < EOSIN_CYTO_FIELD_CLASSES; q++)
      _eosin_json_num(b, c->names[q], t->grade[q]);
    json_builder_end_object(b);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "cell_evidence");
    json_builder_begin_object(b);
    _eosin_json_int(b, "cells", (gint64) n);
    _eosin_json_num(b, "abnormal", t->cell_abnormal);
    json_builder_end_object(b);
    _eosin_json_num(b, "cell_weight", c->rule.cell_weight);
    _eosin_json_num(b, "threshold", c->rule.threshold);
  }
  json_builder_end_object(b);

  json_builder_set_member_name(b, "warnings");
  json_builder_begin_array(b);
  for (guint i = 0; i < warnings->len; i++)
    json_builder_add_string_value(b, warnings->pdata[i]);
  json_builder_end_array(b);

  /* the most suspicious cells and tiles, ranked */
  json_builder_set_member_name(b, "top_cells");
  json_builder_begin_array(b);
  for (size_t i = 0; i < MIN(n, (size_t) MAX(c->gallery_n, 10)); i++)
    json_cell(b, c, &cells[i], (int) i + 1);
  json_builder_end_array(b);
  json_builder_set_member_name(b, "top_tiles");
  json_builder_begin_array(b);
  g_autofree EosinCytoCell *rank = g_new0(EosinCytoCell, MAX(c->n_tiles, 1));
  size_t nr = 0;
  for (size_t i = 0; i < c->n_tiles; i++)
    if (!isnan(c->tile_probs[4 * i])) {
      const EosinTile *tl = &g_array_index(plan->tiles, EosinTile, i);
      float a = 1 - c->tile_probs[4 * i];
      rank[nr++] = (EosinCytoCell){.x = tl->x, .y = tl->y, .tile = (uint32_t) i,
                                   .p_abnormal = a, .suspicion = a};
    }
  qsort(rank, nr, sizeof *rank, cell_cmp);
  for (size_t i = 0; i < MIN(nr, (size_t) 10); i++) {
    const float *pr = c->tile_probs + 4 * rank[i].tile;
    int best = 0;
    for (int q = 1; q < 4; q++)
      if (pr[q] > pr[best])
        best = q;
    json_builder_begin_object(b);
    _eosin_json_int(b, "rank", (gint64) i + 1);
    _eosin_json_int(b, "x", (gint64) rank[i].x);
    _eosin_json_int(b, "y", (gint64) rank[i].y);
    _eosin_json_num(b, "abnormal", rank[i].p_abnormal);
    _eosin_json_str(b, "class", c->names[best]);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  return true;
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
    .run = cyto_run,
    .finish = cyto_finish,
    .write = cyto_write,
    .describe = cyto_describe,
    .destroy = cyto_destroy,
};
