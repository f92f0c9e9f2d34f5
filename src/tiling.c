/*
 * tiling.c — the tile plan: a grid of tile_size x tile_size tiles at the
 * task's µm/px laid over the slide bounds, with the level to read them from,
 * keeping the tiles that hold enough tissue. Everything downstream (stitch,
 * overlay) derives its geometry from this one plan.
 */
#include "eosin-private.h"

#include <math.h>

void eosin_tile_plan_clear(EosinTilePlan *plan) {
  if (plan->tiles)
    g_array_unref(plan->tiles);
  plan->tiles = NULL;
}

bool eosin_tile_plan(const EosinSlideInfo *info, const EosinConfig *cfg,
                     const EosinTissueMask *mask, EosinTilePlan *plan, GError **err) {
  memset(plan, 0, sizeof *plan);
  plan->tile_size = cfg->tile_size;
  plan->overlap = cfg->overlap;
  double want = cfg->mpp / info->mpp_x;
  g_autofree double *ds = g_new(double, info->n_levels);
  for (int l = 0; l < info->n_levels; l++)
    ds[l] = info->levels[l].downsample;
  plan->level = eosin_choose_level(ds, info->n_levels, want);
  /* A level read as it is (within 5 %) sets the true pixel size, so the
   * geometry below is what was really read, not what was asked for. */
  double dx = plan->level.resample ? want : ds[plan->level.level];
  double dy = dx * info->mpp_y / info->mpp_x;
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
