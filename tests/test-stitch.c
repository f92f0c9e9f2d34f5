/*
 * test-stitch.c — _eosin_stitch (src/stitch.c) on hand-made plans and
 * values: one value per tile lands in the cells one stride wide whose
 * centre the tile covers, each cell the mean of those tiles (no overlap:
 * cell = tile; overlap of a quarter: still one tile per cell; half: two;
 * three quarters: up to four), NaN where no analysed tile does; a map per
 * tile (cells_per_side s > 1) lands cell for cell, row-major with channels
 * innermost, overlapping maps blended with the tent weights min(i + 1/2,
 * s - i - 1/2) per axis; a tile and stride that are not whole numbers of
 * cells are refused. The grid's frame (origin, clip, cell size) is the
 * plan's and the slide's.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <math.h>

/* A slide description (no slide) of @w x @h px at 1 µm/px, bounds at
 * (@bx, @by), its one level in @level; nothing to free. */
static EosinSlideInfo slide_info(EosinLevel *level, int64_t w, int64_t h, int64_t bx,
                                 int64_t by) {
  *level = (EosinLevel){bx + w, by + h, 1};
  return (EosinSlideInfo){
      .path = "fake.svs", .name = "fake", .width = bx + w, .height = by + h, .n_levels = 1,
      .levels = level, .mpp_x = 1, .mpp_y = 1, .has_bounds = bx || by,
      .bounds_x = bx, .bounds_y = by, .bounds_w = w, .bounds_h = h,
  };
}

/* The plan of @tile px tiles overlapping by @overlap at 1 µm/px (level-0
 * pixels are tile pixels) over @info; the caller clears it. */
static void plan_of(const EosinSlideInfo *info, int tile, int overlap, EosinTilePlan *plan) {
  g_autofree char *path = stain_config(tile, 1.0, overlap, 0, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(path, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  cr_assert(eosin_tile_plan(info, cfg, NULL, plan, &err), "%s", err ? err->message : "");
}

/* Channel @ch of grid cell (@x, @y). */
static float cell(const EosinGrid *g, int x, int y, int ch) {
  return g->values[((size_t) y * g->width + x) * g->n_channels + ch];
}

Test(stitch, one_value_per_tile_without_overlap_is_the_tile_grid) {
  /* 300 x 200 px at (40, 30), 100 px tiles: 3 x 2 tiles, one cell each */
  EosinLevel level;
  EosinSlideInfo info = slide_info(&level, 300, 200, 40, 30);
  EosinTilePlan plan;
  plan_of(&info, 100, 0, &plan);
  cr_assert_eq(plan.cols, 3);
  cr_assert_eq(plan.rows, 2);
  /* (1, 1) not analysed: its cell stays empty */
  g_array_remove_index(plan.tiles, 4);
  cr_assert_eq(plan.tiles->len, 5);
  float values[5 * 2];
  for (int t = 0; t < 5; t++) {
    values[t * 2] = 10 * t + 1;
    values[t * 2 + 1] = -t;
  }
  EosinGrid g;
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_stitch(&plan, values, 2, 1, &info, &g, &err), "%s", err ? err->message : "");
  cr_expect_eq(g.width, 3);
  cr_expect_eq(g.height, 2);
  cr_expect_eq(g.n_channels, 2);
  cr_expect_float_eq(g.cell_x, 100, 1e-12);
  cr_expect_float_eq(g.cell_y, 100, 1e-12);
  cr_expect_eq(g.origin_x, 40);
  cr_expect_eq(g.origin_y, 30);
  cr_expect_eq(g.clip_x, 40);
  cr_expect_eq(g.clip_y, 30);
  cr_expect_eq(g.clip_w, 300);
  cr_expect_eq(g.clip_h, 200);
  for (int t = 0; t < 5; t++) {
    const EosinTile *tl = &g_array_index(plan.tiles, EosinTile, t);
    cr_expect_eq(cell(&g, tl->col, tl->row, 0), 10 * t + 1, "tile %d at (%d, %d)", t, tl->col,
                 tl->row);
    cr_expect_eq(cell(&g, tl->col, tl->row, 1), -t, "tile %d, channel 1", t);
  }
  cr_expect(isnan(cell(&g, 1, 1, 0)) && isnan(cell(&g, 1, 1, 1)), "no tile: NaN, not 0");
  _eosin_grid_clear(&g);
  eosin_tile_plan_clear(&plan);
}

Test(stitch, overlapping_tiles_average_over_the_cells_whose_centre_they_cover) {
  EosinLevel level;
  EosinGrid g;
  g_autoptr(GError) err = NULL;
  const float v[3] = {1, 2, 4};
  struct {
    int overlap, stride, width;
    float cells[6];
  } cases[] = {
      /* stride 75: cell c's centre 75 c + 37.5 lies in tile c only; the
       * last tile reaches 25 px into cell 3, which no tile follows: it
       * takes the last tile's value (issue 21: no unshaded strip at the
       * slide's right and bottom edges) */
      {25, 75, 4, {1, 2, 4, 4}},
      /* stride 50: tile i covers the centres of cells i and i + 1 */
      {50, 50, 4, {1, 1.5f, 3, 4}},
      /* stride 25: tile i covers cells i .. i + 3 */
      {75, 25, 6, {1, 1.5f, 7.0f / 3, 7.0f / 3, 3, 4}},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    /* three tiles in a row: 100 + 2 strides wide, one tile tall */
    EosinSlideInfo info = slide_info(&level, 100 + 2 * cases[i].stride, 100, 0, 0);
    EosinTilePlan plan;
    plan_of(&info, 100, cases[i].overlap, &plan);
    cr_assert_eq(plan.cols, 3, "overlap %d: %d columns", cases[i].overlap, plan.cols);
    cr_assert_eq(plan.rows, 1);
    cr_assert(_eosin_stitch(&plan, v, 1, 1, &info, &g, &err), "%s", err ? err->message : "");
    cr_expect_eq(g.width, cases[i].width, "overlap %d: %d cells across", cases[i].overlap,
                 g.width);
    /* the rows the same way: each cell row of the one tile row */
    cr_expect_eq(g.height, cases[i].width - 2, "overlap %d: %d cells down", cases[i].overlap,
                 g.height);
    cr_expect_float_eq(g.cell_x, cases[i].stride, 1e-12);
    for (int y = 0; y < g.height; y++)
      for (int x = 0; x < g.width && x < cases[i].width; x++)
        cr_expect_float_eq(cell(&g, x, y, 0), cases[i].cells[x], 1e-6,
                           "overlap %d, cell (%d, %d): %g, expected %g", cases[i].overlap, x, y,
                           cell(&g, x, y, 0), cases[i].cells[x]);
    _eosin_grid_clear(&g);
    eosin_tile_plan_clear(&plan);
  }
}

Test(stitch, maps_land_cell_for_cell_row_major_channels_innermost) {
  /* 300 x 200 px, 100 px tiles without overlap, 4 x 4 cells of 25 px per
   * tile: a 12 x 8 grid, tile (c, r)'s cell (x, y) at (4 c + x, 4 r + y) */
  EosinLevel level;
  EosinSlideInfo info = slide_info(&level, 300, 200, 0, 0);
  EosinTilePlan plan;
  plan_of(&info, 100, 0, &plan);
  cr_assert_eq(plan.tiles->len, 6);
  enum { S = 4, C = 2 };
  float values[6 * S * S * C];
  for (int t = 0; t < 6; t++)
    for (int k = 0; k < S * S; k++)
      for (int ch = 0; ch < C; ch++)
        values[(t * S * S + k) * C + ch] = 1000 * t + 10 * k + ch;
  EosinGrid g;
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_stitch(&plan, values, C, S, &info, &g, &err), "%s", err ? err->message : "");
  cr_expect_eq(g.width, 12);
  cr_expect_eq(g.height, 8);
  cr_expect_float_eq(g.cell_x, 25, 1e-12);
  cr_expect_float_eq(g.cell_y, 25, 1e-12);
  int bad = 0;
  for (int t = 0; t < 6; t++) {
    const EosinTile *tl = &g_array_index(plan.tiles, EosinTile, t);
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++)
        for (int ch = 0; ch < C; ch++) {
          float want = 1000 * t + 10 * (y * S + x) + ch;
          float got = cell(&g, tl->col * S + x, tl->row * S + y, ch);
          if (fabsf(got - want) > 1e-3f && !bad++)
            cr_expect_fail("tile %d cell (%d, %d) channel %d: %g, expected %g", t, x, y, ch, got,
                           want);
        }
  }
  cr_expect_eq(bad, 0, "%d values misplaced", bad);
  _eosin_grid_clear(&g);
  eosin_tile_plan_clear(&plan);
}

Test(stitch, overlapping_maps_are_blended_with_tent_weights) {
  /* 200 x 100 px, 100 px tiles overlapping by 50: 3 tiles in a row; 4 x 4
   * cells of 25 px each, so neighbouring tiles are 2 cells apart and the
   * grid is (3 - 1) x 2 + 4 = 8 x 4 cells. Weights per axis for s = 4:
   * 0.5, 1.5, 1.5, 0.5 (the down-axis weight is the same for every tile
   * of a cell row and cancels). Uniform maps 0, 4, 8: cells 0-1 tile 0
   * alone; cell 2 (1.5 x 0 + 0.5 x 4) / 2 = 1; cell 3 (0.5 x 0 + 1.5 x 4) /
   * 2 = 3; cells 4 and 5 likewise 5 and 7; cells 6-7 tile 2 alone, 8. */
  EosinLevel level;
  EosinSlideInfo info = slide_info(&level, 200, 100, 0, 0);
  EosinTilePlan plan;
  plan_of(&info, 100, 50, &plan);
  cr_assert_eq(plan.cols, 3);
  cr_assert_eq(plan.rows, 1);
  enum { S = 4 };
  float values[3 * S * S];
  for (int t = 0; t < 3; t++)
    for (int k = 0; k < S * S; k++)
      values[t * S * S + k] = 4 * t;
  EosinGrid g;
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_stitch(&plan, values, 1, S, &info, &g, &err), "%s", err ? err->message : "");
  cr_expect_eq(g.width, 8);
  cr_expect_eq(g.height, 4);
  const float want[8] = {0, 0, 1, 3, 5, 7, 8, 8};
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 8; x++)
      cr_expect_float_eq(cell(&g, x, y, 0), want[x], 1e-5, "cell (%d, %d): %g, expected %g", x, y,
                         cell(&g, x, y, 0), want[x]);
  _eosin_grid_clear(&g);

  /* without the middle tile: cells 2-3 are tile 0's alone and 4-5 tile 2's */
  g_array_remove_index(plan.tiles, 1);
  float two[2 * S * S];
  for (int k = 0; k < S * S; k++)
    two[k] = 0, two[S * S + k] = 8;
  cr_assert(_eosin_stitch(&plan, two, 1, S, &info, &g, &err), "%s", err ? err->message : "");
  const float want2[8] = {0, 0, 0, 0, 8, 8, 8, 8};
  for (int x = 0; x < 8; x++)
    cr_expect_float_eq(cell(&g, x, 1, 0), want2[x], 1e-5, "cell %d: %g", x, cell(&g, x, 1, 0));
  _eosin_grid_clear(&g);
  eosin_tile_plan_clear(&plan);
}

Test(stitch, maps_that_are_not_whole_cells_are_refused) {
  EosinLevel level;
  EosinSlideInfo info = slide_info(&level, 300, 300, 0, 0);
  const struct {
    int overlap, s;
  } cases[] = {
      {0, 3},  /* 100 px tiles are not 3 whole cells */
      {30, 4}, /* cells of 25 px, but the stride is 70 */
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    EosinTilePlan plan;
    plan_of(&info, 100, cases[i].overlap, &plan);
    g_autofree float *values = g_new0(float, (size_t) plan.tiles->len * cases[i].s * cases[i].s);
    EosinGrid g;
    g_autoptr(GError) err = NULL;
    cr_expect_not(_eosin_stitch(&plan, values, 1, cases[i].s, &info, &g, &err));
    cr_assert(err);
    cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG), "%s", err->message);
    g_autofree char *want = g_strdup_printf("a map of %d x %d cells per tile", cases[i].s,
                                            cases[i].s);
    cr_expect(strstr(err->message, want), "%s", err->message);
    cr_expect_null(g.values);
    eosin_tile_plan_clear(&plan);
  }
}
