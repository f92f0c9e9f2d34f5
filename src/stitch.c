/*
 * stitch.c — per-tile values into a grid of cells. One value per tile:
 * cells one tile stride wide, each the mean of the tiles covering its
 * centre, so with no overlap cell = tile, and with overlap each cell
 * averages its neighbours; past the last column and row the cells the
 * last tiles reach take their values. A map per tile (segmentation): cells tile/s wide,
 * and where tiles overlap a weighted mean whose weights fall towards each
 * tile's border, where a network sees least context, so seams do not show.
 * Cells no analysed tile covers stay NaN (empty, drawn transparent), never
 * 0. Tiles are summed in plan order, so the grid is bit-identical whatever
 * order the scheduler delivered them in.
 */
#include "eosin-private.h"

#include <math.h>

void _eosin_grid_clear(EosinGrid *g) {
  g_clear_pointer(&g->values, g_free);
}

size_t _eosin_values_per_tile(const EosinAnalyzerInfo *ai) {
  size_t s = ai->cells_per_side > 1 ? ai->cells_per_side : 1;
  return s * s * ai->n_channels;
}

static void grid_frame(const EosinTilePlan *plan, const EosinSlideInfo *info, int n_channels,
                       EosinGrid *g) {
  g->origin_x = plan->origin_x;
  g->origin_y = plan->origin_y;
  g->clip_x = info->bounds_x, g->clip_y = info->bounds_y;
  g->clip_w = info->bounds_w, g->clip_h = info->bounds_h;
  g->n_channels = n_channels;
}

/* Each tile an s x s map; tile/s pixels per cell must divide the stride. */
static bool stitch_maps(const EosinTilePlan *plan, const float *values, int n_channels, int s,
                        const EosinSlideInfo *info, EosinGrid *g, GError **err) {
  int T = plan->tile_size, S = plan->tile_size - plan->overlap;
  if (T % s || S % (T / s)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "tile %d px with overlap %d: a map of %d x %d cells per tile needs the tile "
                "and the stride to be whole numbers of cells (%g px)",
                T, plan->overlap, s, s, (double) T / s);
    return false;
  }
  int step = S / (T / s); /* cells between neighbouring tiles */
  grid_frame(plan, info, n_channels, g);
  g->width = (plan->cols - 1) * step + s;
  g->height = (plan->rows - 1) * step + s;
  g->cell_x = plan->tile_l0_x / s;
  g->cell_y = plan->tile_l0_y / s;
  size_t cells = (size_t) g->width * g->height;
  if (cells > ((size_t) 1 << 31) / MAX(n_channels, 1)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "a stitched map of %d x %d cells x %d channels is too large: use a larger "
                "[model] cell", g->width, g->height, n_channels);
    return false;
  }
  g_autofree double *sum = g_try_new0(double, cells * n_channels);
  g_autofree double *wsum = g_try_new0(double, cells);
  if (!sum || !wsum) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "stitching %d x %d cells: out of memory",
                g->width, g->height);
    return false;
  }
  /* a tent falling from the tile centre to half a cell at the border */
  g_autofree double *w1 = g_new(double, s);
  for (int i = 0; i < s; i++)
    w1[i] = MIN(i + 0.5, s - i - 0.5);
  const EosinTile *tiles = (const EosinTile *) plan->tiles->data;
  size_t per_tile = (size_t) s * s * n_channels;
  for (guint t = 0; t < plan->tiles->len; t++) {
    const float *v = values + t * per_tile;
    for (int y = 0; y < s; y++)
      for (int x = 0; x < s; x++) {
        size_t cell = (size_t) (tiles[t].row * step + y) * g->width + tiles[t].col * step + x;
        double w = w1[x] * w1[y];
        wsum[cell] += w;
        for (int ch = 0; ch < n_channels; ch++)
          sum[cell * n_channels + ch] += w * v[((size_t) y * s + x) * n_channels + ch];
      }
  }
  g->values = g_new(float, cells * n_channels);
  for (size_t c = 0; c < cells; c++)
    for (int ch = 0; ch < n_channels; ch++)
      g->values[c * n_channels + ch] =
          wsum[c] > 0 ? (float) (sum[c * n_channels + ch] / wsum[c]) : NAN;
  return true;
}

bool _eosin_stitch(const EosinTilePlan *plan, const float *values, int n_channels,
                   int cells_per_side, const EosinSlideInfo *info, EosinGrid *g,
                   GError **err) {
  memset(g, 0, sizeof *g);
  if (cells_per_side > 1)
    return stitch_maps(plan, values, n_channels, cells_per_side, info, g, err);
  int T = plan->tile_size, S = plan->tile_size - plan->overlap;
  /* cells c with centre (c + 0.5) S inside [i S, i S + T): c = i .. i + m - 1 */
  int m = (int) ceil((double) T / S - 0.5);
  m = MAX(m, 1);
  /* the last column's (row's) tiles reach past the last cell whose centre
   * they cover, where no tile follows: the cells there take those tiles'
   * values, else a strip of the slide that was analysed is left unshaded
   * at the right and bottom (an 80 px overlap of cytology's 256 px tiles) */
  int e = MAX(0, (int) ceil((double) (T - m * S) / S));
  g->width = plan->cols + m - 1 + e;
  g->height = plan->rows + m - 1 + e;
  g->cell_x = plan->stride_l0_x;
  g->cell_y = plan->stride_l0_y;
  grid_frame(plan, info, n_channels, g);
  size_t cells = (size_t) g->width * g->height;
  g_autofree double *sum = g_new0(double, cells * n_channels);
  g_autofree int *count = g_new0(int, cells);
  const EosinTile *tiles = (const EosinTile *) plan->tiles->data;
  for (guint t = 0; t < plan->tiles->len; t++) {
    int mx = m + (tiles[t].col == plan->cols - 1 ? e : 0);
    int my = m + (tiles[t].row == plan->rows - 1 ? e : 0);
    for (int dy = 0; dy < my; dy++)
      for (int dx = 0; dx < mx; dx++) {
        size_t cell = (size_t) (tiles[t].row + dy) * g->width + tiles[t].col + dx;
        count[cell]++;
        for (int ch = 0; ch < n_channels; ch++)
          sum[cell * n_channels + ch] += values[(size_t) t * n_channels + ch];
      }
  }
  g->values = g_new(float, cells * n_channels);
  for (size_t c = 0; c < cells; c++)
    for (int ch = 0; ch < n_channels; ch++)
      g->values[c * n_channels + ch] =
          count[c] ? (float) (sum[c * n_channels + ch] / count[c]) : NAN;
  return true;
}
