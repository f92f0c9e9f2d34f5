/*
 * tiling.c — the tile plan: a grid of tile_size x tile_size tiles at the
 * task's µm/px laid over the slide bounds, with the level to read them from,
 * keeping the tiles that hold enough tissue. Everything downstream (stitch,
 * overlay) derives its geometry from this one plan.
 */
#include "slide/slide.h"    /* eosin_choose_level */
#include "tasks/analyzer.h" /* EosinTileIndex */

#include <math.h>

void eosin_tile_plan_clear(EosinTilePlan *plan) {
  if (plan->tiles)
    g_array_unref(plan->tiles);
  plan->tiles = NULL;
}

EosinLevelChoice _eosin_plan_level(const EosinSlideInfo *info, const EosinConfig *cfg,
                                   double *dx_out, double *dy_out) {
  double want = cfg->mpp / info->mpp_x;
  g_autofree double *ds = g_new(double, info->n_levels);
  for (int l = 0; l < info->n_levels; l++)
    ds[l] = info->levels[l].downsample;
  EosinLevelChoice c = eosin_choose_level(ds, info->n_levels, want);
  /* A level read as it is (within 5 %) sets the true pixel size, so the
   * geometry is what was really read, not what was asked for. */
  double dx = c.resample ? want : ds[c.level];
  /* level-0 pixels per output pixel down: a pixel mpp_y tall covers
   * mpp_x/mpp_y of what one mpp_x wide does */
  double dy = dx * info->mpp_x / info->mpp_y;
  if (fabs(dy / dx - 1) > 1e-3) {
    /* pixels that are not square are resampled to square ones, never read
     * as they are */
    c = eosin_choose_level(ds, info->n_levels, MIN(dx, dy) * 0.99);
    c.resample = true;
    c.scale = dx / ds[c.level];
    c.scale_y = dy / ds[c.level];
  }
  if (dx_out)
    *dx_out = dx;
  if (dy_out)
    *dy_out = dy;
  return c;
}

bool eosin_tile_plan(const EosinSlideInfo *info, const EosinConfig *cfg,
                     const EosinTissueMask *mask, EosinTilePlan *plan, GError **err) {
  memset(plan, 0, sizeof *plan);
  plan->tile_size = cfg->tile_size;
  plan->overlap = cfg->overlap;
  double dx, dy;
  plan->level = _eosin_plan_level(info, cfg, &dx, &dy);
  plan->mpp = dx * info->mpp_x;
  plan->tile_l0_x = cfg->tile_size * dx;
  plan->tile_l0_y = cfg->tile_size * dy;
  plan->stride_l0_x = (cfg->tile_size - cfg->overlap) * dx;
  plan->stride_l0_y = (cfg->tile_size - cfg->overlap) * dy;
  plan->origin_x = info->bounds_x;
  plan->origin_y = info->bounds_y;
  /* enough tiles to cover the bounds; the last ones may reach past them */
  plan->cols = info->bounds_w <= plan->tile_l0_x
                   ? 1
                   : (int) ceil((info->bounds_w - plan->tile_l0_x) / plan->stride_l0_x) + 1;
  plan->rows = info->bounds_h <= plan->tile_l0_y
                   ? 1
                   : (int) ceil((info->bounds_h - plan->tile_l0_y) / plan->stride_l0_y) + 1;
  if ((int64_t) plan->cols * plan->rows > G_MAXINT / 2) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "slide %s: %d x %d tiles of %d px at %g µm/px is too many; raise tile_size",
                info->path, plan->cols, plan->rows, cfg->tile_size, cfg->mpp);
    return false;
  }
  plan->planned = plan->cols * plan->rows;
  plan->tiles = g_array_new(FALSE, FALSE, sizeof(EosinTile));
  for (int r = 0; r < plan->rows; r++)
    for (int c = 0; c < plan->cols; c++) {
      double x = plan->origin_x + c * plan->stride_l0_x;
      double y = plan->origin_y + r * plan->stride_l0_y;
      double f = mask ? eosin_tissue_fraction(mask, x, y, plan->tile_l0_x, plan->tile_l0_y) : 1;
      if (f < cfg->tissue_min_fraction) {
        plan->skipped++;
        continue;
      }
      EosinTile t = {(int64_t) floor(x), (int64_t) floor(y), c, r, (float) f};
      g_array_append_val(plan->tiles, t);
    }
  return true;
}

void _eosin_tile_index_init(EosinTileIndex *ix, const EosinTilePlan *plan) {
  g_free(ix->tile_at);
  ix->cols = plan->cols, ix->rows = plan->rows;
  ix->tile_at = g_new(int, (size_t) ix->cols * ix->rows);
  for (size_t i = 0; i < (size_t) ix->cols * ix->rows; i++)
    ix->tile_at[i] = -1;
  const EosinTile *tiles = (const EosinTile *) plan->tiles->data;
  for (guint t = 0; t < plan->tiles->len; t++)
    ix->tile_at[(size_t) tiles[t].row * ix->cols + tiles[t].col] = t;
}

void _eosin_tile_index_clear(EosinTileIndex *ix) {
  g_clear_pointer(&ix->tile_at, g_free);
  ix->cols = ix->rows = 0;
}

int _eosin_tile_at(const EosinTileIndex *ix, const EosinTilePlan *plan, double gx, double gy) {
  int col = (int) floor((gx - plan->origin_x) / plan->stride_l0_x);
  int row = (int) floor((gy - plan->origin_y) / plan->stride_l0_y);
  if (!ix->tile_at || col < 0 || row < 0 || col >= ix->cols || row >= ix->rows)
    return -1;
  return ix->tile_at[(size_t) row * ix->cols + col];
}

int _eosin_tile_owner(const EosinTileIndex *ix, const EosinTilePlan *plan, double gx, double gy) {
  const EosinTile *tiles = (const EosinTile *) plan->tiles->data;
  int cc = (int) floor((gx - plan->origin_x) / plan->stride_l0_x);
  int rr = (int) floor((gy - plan->origin_y) / plan->stride_l0_y);
  int best = -1;
  double bd = INFINITY;
  for (int r = rr - 2; r <= rr + 1; r++)
    for (int col = cc - 2; col <= cc + 1; col++) {
      if (r < 0 || col < 0 || r >= ix->rows || col >= ix->cols)
        continue;
      int idx = ix->tile_at[(size_t) r * ix->cols + col];
      if (idx < 0)
        continue;
      const EosinTile *t = &tiles[idx];
      if (gx < t->x || gy < t->y || gx >= t->x + plan->tile_l0_x || gy >= t->y + plan->tile_l0_y)
        continue;
      double dx = gx - (t->x + plan->tile_l0_x / 2), dy = gy - (t->y + plan->tile_l0_y / 2);
      double d = dx * dx + dy * dy;
      if (d < bd || (d == bd && idx < best))
        bd = d, best = idx;
    }
  return best;
}
