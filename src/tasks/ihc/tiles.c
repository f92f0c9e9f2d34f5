/*
 * tiles.c — the IHC analyzer's tile stage (run): colour deconvolution,
 * nuclei and cells on each tile of a batch on all cores, each cell
 * measured (stain means per compartment, the intensity class) and kept by
 * the one tile that owns it, its outline simplified (Douglas-Peucker) into
 * the slide's vertex list.
 */
#include "tasks/ihc/ihc-private.h"

#include <math.h>
#include <string.h>

/* Douglas-Peucker on the open polyline v[a..b] (pairs of doubles): marks
 * the vertices to keep. */
static void dp_mark(const double *v, int a, int b, double tol2, uint8_t *keep) {
  if (b <= a + 1)
    return;
  double ax = v[2 * a], ay = v[2 * a + 1], bx = v[2 * b], by = v[2 * b + 1];
  double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
  int far = -1;
  double fd = tol2;
  for (int i = a + 1; i < b; i++) {
    double px = v[2 * i] - ax, py = v[2 * i + 1] - ay, d2;
    if (len2 > 0) {
      double cr = px * dy - py * dx;
      d2 = cr * cr / len2;
    } else {
      d2 = px * px + py * py;
    }
    if (d2 > fd)
      fd = d2, far = i;
  }
  if (far < 0)
    return;
  keep[far] = 1;
  dp_mark(v, a, far, tol2, keep);
  dp_mark(v, far, b, tol2, keep);
}

/* Appends @ring (pixel-corner vertices of the tile) to @vertices in
 * level-0 coordinates, simplified to within half a pixel; returns the
 * number of vertices appended (0 for a degenerate ring). */
static uint16_t append_ring(GArray *vertices, const GArray *ring, double ox, double oy,
                            double scale) {
  int n = ring->len / 2;
  if (n < 3)
    return 0;
  const int *iv = (const int *) ring->data;
  /* the ring closed at its first vertex and the vertex farthest from it */
  g_autofree double *v = g_new(double, 2 * (n + 1));
  for (int i = 0; i <= n; i++)
    v[2 * i] = iv[2 * (i % n)], v[2 * i + 1] = iv[2 * (i % n) + 1];
  int far = 0;
  double fd = -1;
  for (int i = 1; i < n; i++) {
    double dx = v[2 * i] - v[0], dy = v[2 * i + 1] - v[1];
    if (dx * dx + dy * dy > fd)
      fd = dx * dx + dy * dy, far = i;
  }
  g_autofree uint8_t *keep = g_new0(uint8_t, n + 1);
  keep[0] = keep[far] = 1;
  dp_mark(v, 0, far, 0.25, keep);
  dp_mark(v, far, n, 0.25, keep);
  uint16_t out = 0;
  for (int i = 0; i < n && out < 65535; i++)
    if (keep[i]) {
      float xy[2] = {(float) (ox + v[2 * i] * scale), (float) (oy + v[2 * i + 1] * scale)};
      g_array_append_vals(vertices, xy, 2);
      out++;
    }
  return out;
}

typedef struct {
  int64_t npx[4];             /* per compartment */
  double sh[4], sd[4];        /* haematoxylin / DAB sums per compartment */
  double sx, sy, dmax;
  int64_t membrane_on;        /* membrane pixels with local DAB >= threshold_1plus */
  int bx0, by0, bx1, by1;     /* nucleus box */
  int cx0, cy0, cx1, cy1;     /* cell box */
} Acc;

static void box_add(int *x0, int *y0, int *x1, int *y1, int x, int y) {
  *x0 = MIN(*x0, x), *y0 = MIN(*y0, y), *x1 = MAX(*x1, x), *y1 = MAX(*y1, y);
}

/* Measures the nuclei and cells of one tile and keeps those it owns. */
/* The cells one tile owns, with their outlines (vertex indices local to
 * @vertices until merged into the context). */
typedef struct {
  int tile_id;
  GArray *cells;    /* EosinCell */
  GArray *vertices; /* float level-0 x, y */
  GError *error;
} TileCells;

/* Measures the cells of one tile's labels and keeps those it owns in @out.
 * Reads @c only, so tiles of a batch can be measured at once. */
static void measure_tile(const IhcCtx *c, const EosinTilePlan *plan, int tile_id,
                         const float *st, const EosinNucleiLabels *L, TileCells *out) {
  const EosinTile *t = &g_array_index(plan->tiles, EosinTile, tile_id);
  int W = L->width, H = L->height, n = L->n;
  if (!n)
    return;
  double scale = plan->tile_l0_x / plan->tile_size;
  double px_area_um2 = (scale * c->mpp_x) * (scale * c->mpp_y);
  g_autofree Acc *acc = g_new0(Acc, n + 1);
  for (int l = 1; l <= n; l++) {
    acc[l].bx0 = acc[l].cx0 = W, acc[l].by0 = acc[l].cy0 = H;
    acc[l].bx1 = acc[l].cx1 = acc[l].by1 = acc[l].cy1 = -1;
  }
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      size_t i = (size_t) y * W + x;
      int cl = L->cell[i];
      if (!cl)
        continue;
      Acc *a = &acc[cl];
      float h = st[3 * i], d = st[3 * i + 1];
      box_add(&a->cx0, &a->cy0, &a->cx1, &a->cy1, x, y);
      int comp[3], nc = 0;
      comp[nc++] = EOSIN_COMP_CELL;
      if (L->nucleus[i] == cl) {
        comp[nc++] = EOSIN_COMP_NUCLEUS;
        a->sx += x + 0.5, a->sy += y + 0.5;
        a->dmax = a->npx[EOSIN_COMP_NUCLEUS] ? MAX(a->dmax, d) : d;
        box_add(&a->bx0, &a->by0, &a->bx1, &a->by1, x, y);
      } else {
        comp[nc++] = EOSIN_COMP_CYTOPLASM;
      }
      bool edge = x == 0 || y == 0 || x == W - 1 || y == H - 1 ||
                  L->cell[i - 1] != cl || L->cell[i + 1] != cl || L->cell[i - W] != cl ||
                  L->cell[i + W] != cl;
      if (edge) {
        /* the membrane: the cell's boundary pixels; staining judged on a
         * 3 x 3 mean so one noisy pixel does not break or make a ring */
        double m = 0;
        int k = 0;
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) {
            int nx = x + dx, ny = y + dy;
            if (nx >= 0 && ny >= 0 && nx < W && ny < H)
              m += st[3 * ((size_t) ny * W + nx) + 1], k++;
          }
        if (m / k >= c->rule.thresholds[0])
          a->membrane_on++;
        comp[nc++] = EOSIN_COMP_MEMBRANE;
      }
      for (int k = 0; k < nc; k++)
        a->npx[comp[k]]++, a->sh[comp[k]] += h, a->sd[comp[k]] += d;
    }
  for (int l = 1; l <= n; l++) {
    Acc *a = &acc[l];
    int64_t nn = a->npx[EOSIN_COMP_NUCLEUS];
    if (!nn)
      continue;
    double cx = a->sx / nn, cy = a->sy / nn;
    double gx = t->x + cx * scale, gy = t->y + cy * scale;
    if (_eosin_tile_owner(&c->tiles, plan, gx, gy) != tile_id)
      continue;
    EosinCell cell = {0};
    cell.x = gx, cell.y = gy;
    cell.nucleus_area_um2 = (float) (nn * px_area_um2);
    cell.cell_area_um2 = (float) (a->npx[EOSIN_COMP_CELL] * px_area_um2);
    for (int k = 0; k < 4; k++) {
      cell.hem[k] = a->npx[k] ? (float) (a->sh[k] / a->npx[k]) : NAN;
      cell.dab[k] = a->npx[k] ? (float) (a->sd[k] / a->npx[k]) : NAN;
    }
    cell.nucleus_dab_max = (float) a->dmax;
    cell.membrane_complete =
        a->npx[EOSIN_COMP_MEMBRANE]
            ? (float) ((double) a->membrane_on / a->npx[EOSIN_COMP_MEMBRANE])
            : 0;
    float v = cell.dab[c->compartment];
    cell.intensity = (uint8_t) _eosin_intensity_class(&c->rule, isnan(v) ? -INFINITY : v);
    cell.vertex = out->vertices->len / 2;
    g_autoptr(GArray) nr = _eosin_trace_outer(L->nucleus, W, H, l, a->bx0, a->by0, a->bx1, a->by1);
    cell.n_nucleus = append_ring(out->vertices, nr, t->x, t->y, scale);
    g_autoptr(GArray) cr = _eosin_trace_outer(L->cell, W, H, l, a->cx0, a->cy0, a->cx1, a->cy1);
    cell.n_cell = append_ring(out->vertices, cr, t->x, t->y, scale);
    g_array_append_val(out->cells, cell);
  }
}

typedef struct {
  const IhcCtx *c;
  const EosinTileBatch *b;
  TileCells *res;   /* b->n, filled at the tile's place in the batch */
} BatchWork;

/* Deconvolves, finds and measures tile @k of the batch (@scratch: the
 * tile's stains). Each tile's result goes to its own slot, so the merge
 * below sees the same cells in the same order for any number of threads. */
static void ihc_tile(void *data, int k, void *scratch) {
  BatchWork *w = data;
  const IhcCtx *c = w->c;
  const EosinTileBatch *b = w->b;
  size_t px = (size_t) b->tile_size * b->tile_size;
  float *st = scratch;
  EosinNucleiParams np = c->np;
  np.mpp = b->plan->mpp; /* the true pixel size the tiles were read at */
  TileCells *r = &w->res[k];
  /* haematoxylin, DAB and residual with QuPath's conventions, not
   * clamped: a blue nucleus has a slightly negative DAB */
  _eosin_stain_deconvolve_lut(b->pixels + k * px * 3, px, c->od_lut, c->stain_from, st);
  EosinNucleiLabels L;
  if (!_eosin_nuclei_detect(&np, st, b->tile_size, b->tile_size, &L, &r->error))
    return;
  measure_tile(c, b->plan, b->tile_ids[k], st, &L, r);
  _eosin_nuclei_labels_clear(&L);
}

/* Tiles of a batch are analysed on up to one thread per processor (the
 * pipeline calls run() from one thread); their cells are appended in batch
 * order. */
bool _eosin_ihc_run(void *ctx, const EosinTileBatch *b, float *values, GError **err) {
  IhcCtx *c = ctx;
  if (!b->plan || !c->tiles.tile_at) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "ihc: a batch without its tile plan, or before prepare()");
    return false;
  }
  g_autofree TileCells *res = g_new0(TileCells, b->n);
  for (int k = 0; k < b->n; k++) {
    res[k].tile_id = b->tile_ids[k];
    res[k].cells = g_array_new(FALSE, FALSE, sizeof(EosinCell));
    res[k].vertices = g_array_new(FALSE, FALSE, sizeof(float));
  }
  BatchWork w = {c, b, res};
  _eosin_parallel_for(b->n, sizeof(float) * 3 * b->tile_size * b->tile_size, ihc_tile, &w);
  bool ok = true;
  for (int k = 0; k < b->n; k++) {
    TileCells *r = &res[k];
    if (r->error && ok) {
      g_propagate_prefixed_error(err, r->error, "tile %d: ", r->tile_id);
      r->error = NULL;
      ok = false;
    }
    g_clear_error(&r->error);
    uint32_t base = c->vertices->len / 2, tid = r->tile_id;
    for (guint i = 0; ok && i < r->cells->len; i++) {
      EosinCell *cell = &g_array_index(r->cells, EosinCell, i);
      cell->vertex += base;
      g_array_append_val(c->tile_of, tid);
    }
    if (ok) {
      g_array_append_vals(c->cells, r->cells->data, r->cells->len);
      g_array_append_vals(c->vertices, r->vertices->data, r->vertices->len);
    }
    g_array_unref(r->cells);
    g_array_unref(r->vertices);
  }
  /* rewritten in finish, from every tile's cells */
  memset(values, 0, sizeof(float) * b->n * N_CH);
  return ok;
}
