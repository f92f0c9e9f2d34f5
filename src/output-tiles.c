/*
 * output-tiles.c — the per-tile outputs of a slide, one entry per analysed
 * tile in plan order: tiles.csv (level-0 geometry, tissue fraction and
 * every channel — the mean over the tile's map for analyzers that give
 * one).
 */
#include "eosin-private.h"

#include <math.h>

/* Channel @c of tile @t: the mean over the tile's @cells cells, NaN or
 * infinite when the analyzer gave no value (a tile without cells). */
static double tile_value(const float *values, guint t, size_t cells, int n_channels, int c) {
  const float *v = values + (size_t) t * cells * n_channels;
  double sum = 0;
  for (size_t k = 0; k < cells; k++)
    sum += v[k * n_channels + c];
  return sum / cells;
}

static int tile_width(const EosinTilePlan *plan) {
  return (int) (plan->tile_l0_x + 0.5);
}

static int tile_height(const EosinTilePlan *plan) {
  return (int) (plan->tile_l0_y + 0.5);
}

bool _eosin_write_tiles_csv(const char *path, const EosinTilePlan *plan,
                            const EosinAnalyzerInfo *ai, const float *values, GError **err) {
  g_autoptr(GString) s = g_string_new("tile,col,row,x,y,width,height,tissue");
  for (int c = 0; c < ai->n_channels; c++)
    g_string_append_printf(s, ",%s", ai->channel_names[c]);
  g_string_append_c(s, '\n');
  const EosinTile *tiles = (const EosinTile *) plan->tiles->data;
  int w = tile_width(plan), h = tile_height(plan);
  char num[G_ASCII_DTOSTR_BUF_SIZE];
  size_t cells = _eosin_values_per_tile(ai) / ai->n_channels;
  for (guint t = 0; t < plan->tiles->len; t++) {
    g_string_append_printf(s, "%u,%d,%d,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%d,%d,%s", t,
                           tiles[t].col, tiles[t].row, tiles[t].x, tiles[t].y, w, h,
                           g_ascii_formatd(num, sizeof num, "%.4f", tiles[t].tissue));
    for (int c = 0; c < ai->n_channels; c++) {
      double m = tile_value(values, t, cells, ai->n_channels, c);
      /* an analyzer's "no value" (a tile without cells) is an empty field */
      g_string_append_printf(s, ",%s",
                             isfinite(m) ? g_ascii_formatd(num, sizeof num, "%.9g", m) : "");
    }
    g_string_append_c(s, '\n');
  }
  return _eosin_write_atomic(path, s->str, s->len, err);
}
