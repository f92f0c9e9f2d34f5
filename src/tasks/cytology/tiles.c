/*
 * tiles.c — the cytology analyzer's tile stage (run): the tile model on
 * each tile, nuclei and a window around each on all cores, the cell model
 * on every cell of the batch, the gallery's candidates and the tile's
 * heatmap values.
 */
#include "tasks/cytology/cytology-private.h"

#include <math.h>

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

/* The tile model on each tile of @b, box-averaged to its input: four
 * class probabilities per tile into @probs (b->n * 4). */
static bool tile_model(const CytoCtx *c, const EosinTileBatch *b, float *probs, GError **err) {
  int S = b->tile_size, in = c->tile_in, f = c->tile_factor;
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
  if (c->tta) {
    /* [model] tta = dihedral: the mean of the 8 orientations' probabilities */
    if (!eosin_infer_run_dihedral(c->tile_inf, small, b->n, in, &c->pre, c->tile_activation, 4,
                                  probs, err)) {
      g_prefix_error(err, "tile model: ");
      return false;
    }
    return _eosin_check_model_outputs("(the [model] tile model)", probs, b->n, 4, b, err);
  }
  if (!eosin_infer_run_rgb(c->tile_inf, small, b->n, &c->pre, probs, err)) {
    g_prefix_error(err, "tile model: ");
    return false;
  }
  if (!_eosin_check_model_outputs("(the [model] tile model)", probs, b->n, 4, b, err))
    return false;
  _eosin_activate(c->tile_activation, probs, b->n, 4, 1);
  return true;
}

bool _eosin_cyto_run(void *ctx, const EosinTileBatch *b, float *values, GError **err) {
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
  int S = b->tile_size;

  /* 1. the tile model */
  g_autofree float *probs = g_new(float, (size_t) b->n * 4);
  if (!tile_model(c, b, probs, err))
    return false;

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
