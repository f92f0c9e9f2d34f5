/*
 * stitch.c — per-tile values into a grid of cells one tile stride wide.
 * A cell takes the mean of the tiles covering its centre, so with no
 * overlap cell = tile, and with overlap each cell averages its neighbours;
 * cells no analysed tile covers stay NaN (empty, drawn transparent), never 0.
 * Tiles are summed in plan order, so the grid is bit-identical whatever
 * order the scheduler delivered them in.
 */
#include "eosin-private.h"

#include <math.h>

void _eosin_grid_clear(EosinGrid *g) {
  g_clear_pointer(&g->values, g_free);
}

bool _eosin_stitch(const EosinTilePlan *plan, const float *values, int n_channels,
                   const EosinSlideInfo *info, EosinGrid *g, GError **err) {
  memset(g, 0, sizeof *g);
  int T = plan->tile_size, S = plan->tile_size - plan->overlap;
  /* cells c with centre (c + 0.5) S inside [i S, i S + T): c = i .. i + m - 1 */
  int m = (int) ceil((double) T / S - 0.5);
  m = MAX(m, 1);
  g->width = plan->cols + m - 1;
  g->height = plan->rows + m - 1;
  g->cell_x = plan->stride_l0_x;
  g->cell_y = plan->stride_l0_y;
  g->origin_x = plan->origin_x;
  g->origin_y = plan->origin_y;
  g->clip_x = info->bounds_x, g->clip_y = info->bounds_y;
  g->clip_w = info->bounds_w, g->clip_h = info->bounds_h;
  g->n_channels = n_channels;
  size_t cells = (size_t) g->width * g->height;
  g_autofree double *sum = g_new0(double, cells * n_channels);
  g_autofree int *count = g_new0(int, cells);
  const EosinTile *tiles = (const EosinTile *) plan->tiles->data;
  for (guint t = 0; t < plan->tiles->len; t++) {
    for (int dy = 0; dy < m; dy++)
      for (int dx = 0; dx < m; dx++) {
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
