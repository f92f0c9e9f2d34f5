/*
 * test-tiling.c — eosin_tile_plan (src/tiling.c) on hand-made slide
 * descriptions, no slide file: columns, rows, extents and strides for a
 * tile size, overlap and µm/px, the bounds offset as the origin, one tile
 * for a slide smaller than a tile; the level it reads (a level within 5 %
 * read as it is and setting the true µm/px, else the next finer one
 * resampled, non-square pixels always resampled to square ones); and the
 * tiles kept by their tissue fraction in a hand-made mask. Every expected
 * number is worked out in the comments.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <math.h>

/* A slide description without a slide: the info and the levels it points to. */
typedef struct {
  EosinSlideInfo info;
  EosinLevel levels[4];
} FakeSlide;

/* Fills @s: @w x @h px at @mpp_x x @mpp_y µm/px with levels of downsample
 * @ds[0..n-1] (at most 4), its bounds @bounds (x, y, w, h) or the whole
 * slide when NULL. Nothing to free (static strings, @s's own levels). */
static void fake_slide(FakeSlide *s, int64_t w, int64_t h, double mpp_x, double mpp_y,
                       const double *ds, int n, const int64_t *bounds) {
  memset(s, 0, sizeof *s);
  cr_assert_leq(n, 4);
  s->info.path = "fake.svs";
  s->info.name = "fake";
  s->info.width = w, s->info.height = h;
  s->info.mpp_x = mpp_x, s->info.mpp_y = mpp_y;
  s->info.n_levels = n;
  s->info.levels = s->levels;
  for (int l = 0; l < n; l++)
    s->levels[l] = (EosinLevel){(int64_t) (w / ds[l]), (int64_t) (h / ds[l]), ds[l]};
  s->info.has_bounds = bounds != NULL;
  s->info.bounds_x = bounds ? bounds[0] : 0;
  s->info.bounds_y = bounds ? bounds[1] : 0;
  s->info.bounds_w = bounds ? bounds[2] : w;
  s->info.bounds_h = bounds ? bounds[3] : h;
}

/* A loaded stain config with these [tiling] keys and [tissue] min_fraction;
 * the caller frees it. */
static EosinConfig *tiling_config(int tile, int overlap, double mpp, double min_fraction) {
  g_autofree char *path = stain_config(tile, mpp, overlap, min_fraction, NULL);
  g_autoptr(GError) err = NULL;
  EosinConfig *cfg = eosin_config_load(path, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  cr_assert_eq(cfg->tile_size, tile);
  cr_assert_eq(cfg->overlap, overlap);
  return cfg;
}

/* Tile (@col, @row) of @p, borrowed from it, or NULL when it was skipped. */
static const EosinTile *tile_at(const EosinTilePlan *p, int col, int row) {
  for (guint i = 0; i < p->tiles->len; i++) {
    const EosinTile *t = &g_array_index(p->tiles, EosinTile, i);
    if (t->col == col && t->row == row)
      return t;
  }
  return NULL;
}

Test(tiling, grid_of_a_slide_read_at_its_own_resolution) {
  /* 3001 x 2003 px at 0.5 µm/px, 256 px tiles at 0.5, no overlap: level 0
   * as it is, 1 level-0 px per tile px; cols = ceil((3001 - 256) / 256) + 1
   * = ceil(10.72) + 1 = 12, rows = ceil((2003 - 256) / 256) + 1 = 8: the
   * last ones reach past the slide */
  FakeSlide s;
  fake_slide(&s, 3001, 2003, 0.5, 0.5, (double[]){1, 4}, 2, NULL);
  g_autoptr(EosinConfig) cfg = tiling_config(256, 0, 0.5, 0);
  EosinTilePlan p;
  g_autoptr(GError) err = NULL;
  cr_assert(eosin_tile_plan(&s.info, cfg, NULL, &p, &err), "%s", err ? err->message : "");
  cr_expect_eq(p.level.level, 0);
  cr_expect_not(p.level.resample);
  cr_expect_float_eq(p.mpp, 0.5, 1e-12);
  cr_expect_eq(p.tile_size, 256);
  cr_expect_eq(p.overlap, 0);
  cr_expect_float_eq(p.tile_l0_x, 256, 1e-9);
  cr_expect_float_eq(p.tile_l0_y, 256, 1e-9);
  cr_expect_float_eq(p.stride_l0_x, 256, 1e-9);
  cr_expect_float_eq(p.stride_l0_y, 256, 1e-9);
  cr_expect_eq(p.origin_x, 0);
  cr_expect_eq(p.origin_y, 0);
  cr_expect_eq(p.cols, 12);
  cr_expect_eq(p.rows, 8);
  cr_expect_eq(p.planned, 96);
  cr_expect_eq(p.skipped, 0);
  cr_assert_eq(p.tiles->len, 96, "no mask: every tile is kept");
  /* row-major: tile 13 is (1, 1) */
  const EosinTile *t = &g_array_index(p.tiles, EosinTile, 13);
  cr_expect_eq(t->col, 1);
  cr_expect_eq(t->row, 1);
  cr_expect_eq(t->x, 256);
  cr_expect_eq(t->y, 256);
  cr_expect_float_eq(t->tissue, 1.0f, 0);
  t = &g_array_index(p.tiles, EosinTile, 95);
  cr_expect_eq(t->col, 11);
  cr_expect_eq(t->row, 7);
  cr_expect_eq(t->x, 11 * 256);
  cr_expect_eq(t->y, 7 * 256);
  eosin_tile_plan_clear(&p);
}

Test(tiling, overlap_mpp_and_bounds_offset) {
  /* 0.25 µm/px with levels 1, 4, 16; 128 px tiles at 1 µm/px overlapping
   * by 32: downsample 4 is level 1 exactly, so a tile is 128 x 4 = 512
   * level-0 px and the stride (128 - 32) x 4 = 384. Bounds 2500 x 1900 at
   * (700, 450): cols = ceil((2500 - 512) / 384) + 1 = ceil(5.18) + 1 = 7,
   * rows = ceil((1900 - 512) / 384) + 1 = ceil(3.61) + 1 = 5. */
  FakeSlide s;
  fake_slide(&s, 4000, 3000, 0.25, 0.25, (double[]){1, 4, 16}, 3,
             (int64_t[]){700, 450, 2500, 1900});
  g_autoptr(EosinConfig) cfg = tiling_config(128, 32, 1.0, 0);
  EosinTilePlan p;
  g_autoptr(GError) err = NULL;
  cr_assert(eosin_tile_plan(&s.info, cfg, NULL, &p, &err), "%s", err ? err->message : "");
  cr_expect_eq(p.level.level, 1);
  cr_expect_not(p.level.resample);
  cr_expect_float_eq(p.mpp, 1.0, 1e-12);
  cr_expect_float_eq(p.tile_l0_x, 512, 1e-9);
  cr_expect_float_eq(p.tile_l0_y, 512, 1e-9);
  cr_expect_float_eq(p.stride_l0_x, 384, 1e-9);
  cr_expect_float_eq(p.stride_l0_y, 384, 1e-9);
  cr_expect_eq(p.origin_x, 700);
  cr_expect_eq(p.origin_y, 450);
  cr_expect_eq(p.cols, 7);
  cr_expect_eq(p.rows, 5);
  cr_expect_eq(p.planned, 35);
  cr_assert_eq(p.tiles->len, 35);
  const EosinTile *t = tile_at(&p, 2, 3);
  cr_assert(t);
  cr_expect_eq(t->x, 700 + 2 * 384);
  cr_expect_eq(t->y, 450 + 3 * 384);
  t = &g_array_index(p.tiles, EosinTile, 0);
  cr_expect_eq(t->x, 700);
  cr_expect_eq(t->y, 450);
  eosin_tile_plan_clear(&p);

  /* a slide no larger than one tile is one tile */
  fake_slide(&s, 500, 300, 0.25, 0.25, (double[]){1, 4, 16}, 3, NULL);
  cr_assert(eosin_tile_plan(&s.info, cfg, NULL, &p, &err));
  cr_expect_eq(p.cols, 1);
  cr_expect_eq(p.rows, 1);
  cr_expect_eq(p.tiles->len, 1);
  eosin_tile_plan_clear(&p);
}

Test(tiling, level_choice) {
  FakeSlide s;
  fake_slide(&s, 8000, 6000, 0.25, 0.25, (double[]){1, 4, 16}, 3, NULL);
  g_autoptr(GError) err = NULL;
  EosinTilePlan p;

  /* 0.5 µm/px: downsample 2, no level within 5 %: the next finer level (0)
   * reduced by 2, and the tile's extent is what was asked for */
  {
    g_autoptr(EosinConfig) cfg = tiling_config(100, 0, 0.5, 0);
    cr_assert(eosin_tile_plan(&s.info, cfg, NULL, &p, &err));
    cr_expect_eq(p.level.level, 0);
    cr_expect(p.level.resample);
    cr_expect_float_eq(p.level.scale, 2, 1e-12);
    cr_expect_float_eq(p.level.scale_y, 2, 1e-12);
    cr_expect_float_eq(p.mpp, 0.5, 1e-12);
    cr_expect_float_eq(p.tile_l0_x, 200, 1e-9);
    eosin_tile_plan_clear(&p);
  }
  /* 1.025 µm/px: downsample 4.1, level 1 (4) is 2.4 % off and read as it
   * is; the plan's µm/px is what is really read, 4 x 0.25 = 1.0 */
  {
    g_autoptr(EosinConfig) cfg = tiling_config(100, 0, 1.025, 0);
    cr_assert(eosin_tile_plan(&s.info, cfg, NULL, &p, &err));
    cr_expect_eq(p.level.level, 1);
    cr_expect_not(p.level.resample);
    cr_expect_float_eq(p.mpp, 1.0, 1e-12);
    cr_expect_float_eq(p.tile_l0_x, 400, 1e-9);
    eosin_tile_plan_clear(&p);
  }
  /* 2 µm/px: downsample 8, between levels 1 (4) and 2 (16): level 1
   * reduced by 2 */
  {
    g_autoptr(EosinConfig) cfg = tiling_config(100, 0, 2.0, 0);
    cr_assert(eosin_tile_plan(&s.info, cfg, NULL, &p, &err));
    cr_expect_eq(p.level.level, 1);
    cr_expect(p.level.resample);
    cr_expect_float_eq(p.level.scale, 2, 1e-12);
    cr_expect_float_eq(p.tile_l0_x, 800, 1e-9);
    eosin_tile_plan_clear(&p);
  }
  /* pixels 0.25 wide and 0.5 tall, 1 µm/px asked: 4 level-0 px across and
   * 4 x 0.25 / 0.5 = 2 down per tile px; never read as they are, so
   * resampled from the level finer than 0.99 x min(4, 2) = 1.98 (level 0)
   * at 4 across and 2 down */
  {
    FakeSlide ns;
    fake_slide(&ns, 8000, 6000, 0.25, 0.5, (double[]){1, 4, 16}, 3, NULL);
    g_autoptr(EosinConfig) cfg = tiling_config(100, 20, 1.0, 0);
    cr_assert(eosin_tile_plan(&ns.info, cfg, NULL, &p, &err));
    cr_expect_eq(p.level.level, 0);
    cr_expect(p.level.resample);
    cr_expect_float_eq(p.level.scale, 4, 1e-12);
    cr_expect_float_eq(p.level.scale_y, 2, 1e-12);
    cr_expect_float_eq(p.mpp, 1.0, 1e-12);
    cr_expect_float_eq(p.tile_l0_x, 400, 1e-9);
    cr_expect_float_eq(p.tile_l0_y, 200, 1e-9);
    cr_expect_float_eq(p.stride_l0_x, 320, 1e-9);
    cr_expect_float_eq(p.stride_l0_y, 160, 1e-9);
    /* cols = ceil((8000 - 400) / 320) + 1 = 25, rows = ceil((6000 - 200) / 160) + 1 = 38 */
    cr_expect_eq(p.cols, 25);
    cr_expect_eq(p.rows, 38);
    eosin_tile_plan_clear(&p);
  }
}

/* A @w x @h mask of @scale level-0 px per mask px, tissue in the mask
 * rectangle [x0, x1) x [y0, y1), with its summed-area table (as
 * eosin_tissue_detect builds it); the caller clears it with
 * eosin_tissue_clear. */
static void rect_mask(EosinTissueMask *m, int w, int h, double scale, int x0, int y0, int x1,
                      int y1) {
  memset(m, 0, sizeof *m);
  m->width = w, m->height = h;
  m->scale_x = m->scale_y = scale;
  m->mask = g_new0(uint8_t, (size_t) w * h);
  for (int y = y0; y < y1; y++)
    for (int x = x0; x < x1; x++)
      m->mask[(size_t) y * w + x] = 1;
  m->integral = g_new0(int64_t, (size_t) (w + 1) * (h + 1));
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      m->integral[(size_t) (y + 1) * (w + 1) + x + 1] =
          m->mask[(size_t) y * w + x] + m->integral[(size_t) y * (w + 1) + x + 1] +
          m->integral[(size_t) (y + 1) * (w + 1) + x] - m->integral[(size_t) y * (w + 1) + x];
}

Test(tiling, tiles_kept_by_their_tissue_fraction) {
  /* 3000 x 2000 px; 500 px tiles: 6 x 4 = 24 tiles. The mask is 30 x 20
   * at 100 level-0 px per mask px, tissue on level-0 [500, 1500) x
   * [400, 1000) (mask [5, 15) x [4, 10)); tile (c, r) covers mask
   * [5c, 5c + 5) x [5r, 5r + 5). Tiles (1, 1) and (2, 1) are all tissue;
   * (1, 0) and (2, 0) hold mask row 4 only: 5 of 25 px, 0.2; the rest none. */
  FakeSlide s;
  fake_slide(&s, 3000, 2000, 0.5, 0.5, (double[]){1}, 1, NULL);
  EosinTissueMask m;
  rect_mask(&m, 30, 20, 100, 5, 4, 15, 10);
  g_autoptr(GError) err = NULL;
  EosinTilePlan p;
  struct {
    double min_fraction;
    int kept;
    int cols[4], rows[4];
    float tissue[4];
  } cases[] = {
      {0.25, 2, {1, 2}, {1, 1}, {1, 1}},
      {0.15, 4, {1, 2, 1, 2}, {0, 0, 1, 1}, {0.2f, 0.2f, 1, 1}},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(EosinConfig) cfg = tiling_config(500, 0, 0.5, cases[i].min_fraction);
    cr_assert(eosin_tile_plan(&s.info, cfg, &m, &p, &err), "%s", err ? err->message : "");
    cr_expect_eq(p.cols, 6);
    cr_expect_eq(p.rows, 4);
    cr_expect_eq(p.planned, 24);
    cr_expect_eq(p.skipped, 24 - cases[i].kept, "min_fraction %g: %d skipped",
                 cases[i].min_fraction, p.skipped);
    cr_assert_eq(p.tiles->len, (guint) cases[i].kept, "min_fraction %g: %u kept",
                 cases[i].min_fraction, p.tiles->len);
    for (int k = 0; k < cases[i].kept; k++) {
      const EosinTile *t = &g_array_index(p.tiles, EosinTile, k);
      cr_expect_eq(t->col, cases[i].cols[k], "min_fraction %g, tile %d", cases[i].min_fraction, k);
      cr_expect_eq(t->row, cases[i].rows[k], "min_fraction %g, tile %d", cases[i].min_fraction, k);
      cr_expect_float_eq(t->tissue, cases[i].tissue[k], 1e-6, "tile (%d, %d): tissue %g", t->col,
                         t->row, t->tissue);
      cr_expect_eq(t->x, 500 * t->col);
      cr_expect_eq(t->y, 500 * t->row);
    }
    eosin_tile_plan_clear(&p);
  }
  /* min_fraction 0 keeps every tile, glass ones with tissue 0 */
  g_autoptr(EosinConfig) cfg = tiling_config(500, 0, 0.5, 0);
  cr_assert(eosin_tile_plan(&s.info, cfg, &m, &p, &err));
  cr_expect_eq(p.tiles->len, 24);
  cr_expect_eq(p.skipped, 0);
  cr_expect_float_eq(tile_at(&p, 0, 0)->tissue, 0, 0);
  cr_expect_float_eq(tile_at(&p, 2, 1)->tissue, 1, 0);
  eosin_tile_plan_clear(&p);
  eosin_tissue_clear(&m);
}
