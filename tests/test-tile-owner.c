/*
 * test-tile-owner.c — which tile an object belongs to (src/tiling.c:
 * _eosin_tile_index_init, _eosin_tile_at, _eosin_tile_owner) on a plan of
 * overlapping tiles with a bounds offset: the owner is, of the analysed
 * tiles containing the point, the one whose centre is nearest, ties to the
 * first in plan order; so every point of the analysed area has exactly one
 * owner, which contains it, the same whichever tile asks. Points outside
 * every analysed tile (before the origin, past the last tile, in a tile
 * that was not analysed) have none (-1). _eosin_tile_at is the tile whose
 * stride cell holds the point.
 *
 * The plan: 100 px tiles overlapping by 20 (stride 80) at the slide's own
 * µm/px, bounds 420 x 420 at (1000, 500): cols = rows = ceil((420 - 100) /
 * 80) + 1 = 5; tile (c, r) covers level-0 [1000 + 80 c, 1100 + 80 c) x
 * [500 + 80 r, 600 + 80 r), its centre at (1050 + 80 c, 550 + 80 r).
 */
#include "test-util.h"
#include "eosin-private.h"

#include <math.h>

enum { N = 5, OX = 1000, OY = 500 };

/* The plan of the file comment, all 25 tiles analysed; the caller clears
 * it with eosin_tile_plan_clear. */
static void owner_plan(EosinTilePlan *plan) {
  EosinLevel level = {2000, 2000, 1};
  EosinSlideInfo info = {
      .path = "fake.svs", .name = "fake", .width = 2000, .height = 2000, .n_levels = 1,
      .levels = &level, .mpp_x = 0.5, .mpp_y = 0.5, .has_bounds = true,
      .bounds_x = OX, .bounds_y = OY, .bounds_w = 420, .bounds_h = 420,
  };
  g_autofree char *path = stain_config(100, 0.5, 20, 0, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(path, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  cr_assert(eosin_tile_plan(&info, cfg, NULL, plan, &err), "%s", err ? err->message : "");
  cr_assert_eq(plan->cols, N);
  cr_assert_eq(plan->rows, N);
  cr_assert_eq(plan->tiles->len, N * N);
  cr_assert_float_eq(plan->stride_l0_x, 80, 1e-9);
  cr_assert_float_eq(plan->tile_l0_x, 100, 1e-9);
}

/* The index in @plan of tile (@col, @row), or -1 when it is not analysed. */
static int index_of(const EosinTilePlan *plan, int col, int row) {
  for (guint i = 0; i < plan->tiles->len; i++) {
    const EosinTile *t = &g_array_index(plan->tiles, EosinTile, i);
    if (t->col == col && t->row == row)
      return (int) i;
  }
  return -1;
}

/* The documented rule, by brute force over every tile of @plan. */
static int owner_by_rule(const EosinTilePlan *plan, double gx, double gy) {
  int best = -1;
  double bd = INFINITY;
  for (guint i = 0; i < plan->tiles->len; i++) {
    const EosinTile *t = &g_array_index(plan->tiles, EosinTile, i);
    if (gx < t->x || gy < t->y || gx >= t->x + 100 || gy >= t->y + 100)
      continue;
    double dx = gx - (t->x + 50), dy = gy - (t->y + 50);
    if (dx * dx + dy * dy < bd) /* strictly nearer: a tie keeps the earlier tile */
      bd = dx * dx + dy * dy, best = (int) i;
  }
  return best;
}

/* Every point of a 2.5 px lattice over the bounds and a margin around
 * them (half-pixel positions included) against the rule; the first
 * disagreement is reported (one assertion, not one per point). */
static void expect_rule_everywhere(const EosinTileIndex *ix, const EosinTilePlan *plan) {
  int owned = 0, bad = 0, uncontained = 0;
  double bx = 0, by = 0;
  int bgot = 0, bwant = 0;
  for (double gy = OY - 20; gy < OY + 440; gy += 2.5)
    for (double gx = OX - 20; gx < OX + 440; gx += 2.5) {
      int want = owner_by_rule(plan, gx, gy);
      int got = _eosin_tile_owner(ix, plan, gx, gy);
      if (got != want && !bad++)
        bx = gx, by = gy, bgot = got, bwant = want;
      if (got >= 0) {
        const EosinTile *t = &g_array_index(plan->tiles, EosinTile, got);
        uncontained += !(gx >= t->x && gx < t->x + 100 && gy >= t->y && gy < t->y + 100);
        owned++;
      }
    }
  cr_expect_eq(bad, 0, "%d points against the rule, first (%g, %g): owner %d, rule %d", bad, bx,
               by, bgot, bwant);
  cr_expect_eq(uncontained, 0, "%d points owned by a tile that does not contain them",
               uncontained);
  cr_expect_gt(owned, 20000);
}

Test(tile_owner, nearest_centre_ties_to_the_first_tile) {
  EosinTilePlan plan;
  owner_plan(&plan);
  EosinTileIndex ix = {0};
  _eosin_tile_index_init(&ix, &plan);
  cr_expect_eq(ix.cols, N);
  cr_expect_eq(ix.rows, N);
  /* tiles (0, 0) and (1, 0) overlap on x in [1080, 1100); their centres
   * 1050 and 1130 are equally far at x = 1090 */
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1089.5, 510), index_of(&plan, 0, 0));
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1090.5, 510), index_of(&plan, 1, 0));
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1090, 510), index_of(&plan, 0, 0), "tie: first");
  /* (1090, 590) is as far from the centres of (0,0), (1,0), (0,1) and (1,1) */
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1090, 590), index_of(&plan, 0, 0), "4-way tie");
  /* (1095, 595): (1, 1)'s centre (1130, 630) is 35 px away on each axis, (0, 0)'s 45 */
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1095, 595), index_of(&plan, 1, 1));
  /* inside one tile only */
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1210, 710), index_of(&plan, 2, 2));
  /* the last tile reaches x = 1420, past nothing else */
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1419.9, 919.9), index_of(&plan, 4, 4));
  expect_rule_everywhere(&ix, &plan);
  _eosin_tile_index_clear(&ix);
  eosin_tile_plan_clear(&plan);
}

Test(tile_owner, points_outside_every_tile_have_none) {
  EosinTilePlan plan;
  owner_plan(&plan);
  EosinTileIndex ix = {0};
  _eosin_tile_index_init(&ix, &plan);
  const double outside[][2] = {
      {OX - 1, 510}, {1010, OY - 0.5}, {OX - 200, OY - 200}, {1420, 510},
      {1010, 920},   {1420, 920},      {5000, 5000},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(outside); i++) {
    cr_expect_eq(_eosin_tile_owner(&ix, &plan, outside[i][0], outside[i][1]), -1,
                 "(%g, %g) has no owner", outside[i][0], outside[i][1]);
    cr_expect_eq(_eosin_tile_at(&ix, &plan, outside[i][0], outside[i][1]), -1,
                 "(%g, %g) is in no stride cell", outside[i][0], outside[i][1]);
  }
  _eosin_tile_index_clear(&ix);
  eosin_tile_plan_clear(&plan);
}

Test(tile_owner, tile_at_is_the_stride_cell) {
  EosinTilePlan plan;
  owner_plan(&plan);
  EosinTileIndex ix = {0};
  _eosin_tile_index_init(&ix, &plan);
  /* cell c is [1000 + 80 c, 1080 + 80 c): 1079.9 is cell 0, 1080 cell 1,
   * though tile 0 reaches 1100 */
  cr_expect_eq(_eosin_tile_at(&ix, &plan, 1079.9, 500), index_of(&plan, 0, 0));
  cr_expect_eq(_eosin_tile_at(&ix, &plan, 1080, 500), index_of(&plan, 1, 0));
  cr_expect_eq(_eosin_tile_at(&ix, &plan, 1000, 660), index_of(&plan, 0, 2));
  /* the last cell is [1320, 1400): the last tile's remaining 20 px lie in no cell */
  cr_expect_eq(_eosin_tile_at(&ix, &plan, 1399.9, 899.9), index_of(&plan, 4, 4));
  cr_expect_eq(_eosin_tile_at(&ix, &plan, 1405, 510), -1);
  _eosin_tile_index_clear(&ix);
  eosin_tile_plan_clear(&plan);
}

Test(tile_owner, a_tile_not_analysed_owns_nothing) {
  EosinTilePlan plan;
  owner_plan(&plan);
  /* as if (1, 0) and (2, 2) held no tissue: later tiles move up the plan */
  g_array_remove_index(plan.tiles, index_of(&plan, 2, 2));
  g_array_remove_index(plan.tiles, index_of(&plan, 1, 0));
  cr_assert_eq(plan.tiles->len, N * N - 2);
  EosinTileIndex ix = {0};
  _eosin_tile_index_init(&ix, &plan);
  /* (1095, 510) is nearer (1, 0)'s centre but goes to (0, 0) */
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1095, 510), index_of(&plan, 0, 0));
  /* (1170, 510) lies in (1, 0) and (2, 0): (2, 0), now plan index 1 */
  cr_expect_eq(index_of(&plan, 2, 0), 1);
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1170, 510), 1);
  /* (1130, 520) lies only in (1, 0); (1210, 710) only in (2, 2) */
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1130, 520), -1);
  cr_expect_eq(_eosin_tile_owner(&ix, &plan, 1210, 710), -1);
  cr_expect_eq(_eosin_tile_at(&ix, &plan, 1130, 520), -1);
  cr_expect_eq(_eosin_tile_at(&ix, &plan, 1210, 710), -1);
  expect_rule_everywhere(&ix, &plan);
  _eosin_tile_index_clear(&ix);
  eosin_tile_plan_clear(&plan);
}
