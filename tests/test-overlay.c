/*
 * test-overlay.c — overlays line up with the slide. Generated slides with
 * blocks of known colour (odd sizes, a Leica bounds offset, µm/px from
 * Aperio and from TIFF tags, resampled and direct levels) run through the
 * stain task; overlay.tif and heatmap.tif are read back through OpenSlide
 * at each block's level-0 centre and must show the colour the block's
 * stain value maps to, and nothing outside tissue and outside the bounds.
 */
#include "test-util.h"

#include <math.h>

#include "../src/eosin-private.h"

/* The overlay colour the stain task must paint over a block of @rgb with
 * the test config (hematoxylin, viridis, 0..1.5, alpha 0.8). */
static void expected_colour(const uint8_t rgb[3], uint8_t out[4], uint8_t *q) {
  static const double HED[3][3] = {{0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, {0.27, 0.57, 0.78}};
  double inv[3][3];
  cr_assert(eosin_stain_matrix_invert(HED, inv, NULL));
  float c[3];
  eosin_stain_deconvolve(rgb, 1, inv, c);
  EosinColormap cm;
  cr_assert(_eosin_colormap_get("viridis", &cm, NULL));
  double u = CLAMP(c[0] / 1.5, 0.0, 1.0);
  int idx = (int) lround(255 * u);
  memcpy(out, cm.lut[idx], 3);
  out[3] = (uint8_t) lround(255 * 0.8);
  *q = (uint8_t) (1 + lround(254 * u));
}

static void check_alignment(const char *slide_name, int tile_size, double mpp, int overlap) {
  g_autofree char *slide = td(slide_name);
  g_autofree char *json = g_strconcat(slide, ".json", NULL);
  int64_t w, h;
  g_autoptr(GArray) blocks = load_blocks(json, &w, &h);
  cr_assert_gt(blocks->len, 4);

  g_autofree char *cfgpath = stain_config(tile_size, mpp, overlap, 0.5, NULL);
  EosinRunResult res;
  run_config_ok(cfgpath, slide, NULL, NULL, &res);
  g_autoptr(GError) err = NULL;
  g_autofree char *overlay = g_build_filename(res.outdir, "overlay.tif", NULL);
  g_autofree char *heatmap = g_build_filename(res.outdir, "heatmap.tif", NULL);
  cr_expect_gt(openslide_levels(overlay), 2, "overlay.tif is a pyramid");
  cr_expect_gt(openslide_levels(heatmap), 2, "heatmap.tif is a pyramid");

  g_autoptr(EosinSlide) s = eosin_slide_open(slide, 0, &err);
  const EosinSlideInfo *info = eosin_slide_get_info(s);
  g_autoptr(EosinSlide) ov = eosin_slide_open(overlay, 0, &err);
  cr_assert(ov, "%s", err ? err->message : "");
  const EosinSlideInfo *oi = eosin_slide_get_info(ov);
  cr_expect_eq(oi->width, info->width, "overlay width = slide level-0 width");
  cr_expect_eq(oi->height, info->height);
  cr_expect_float_eq(oi->mpp_x, info->mpp_x, 1e-4 * info->mpp_x);

  for (guint i = 0; i < blocks->len; i++) {
    Block *b = &g_array_index(blocks, Block, i);
    uint8_t want[4], got[4], q, hq[4];
    expected_colour(b->rgb, want, &q);
    /* JPEG tiles: colours within a few levels. The block centre and points
     * a third in from its corners: every tile covering them lies wholly
     * inside the block (blocks are 400 px, tiles at most 128 level-0 px
     * from these points) */
    int64_t pts[][2] = {{b->x + b->w / 2, b->y + b->h / 2},
                        {b->x + b->w / 3, b->y + b->h / 3},
                        {b->x + 2 * b->w / 3, b->y + 2 * b->h / 3}};
    /* with overlap a cell averages tiles reaching further: centre only */
    int n_pts = overlap ? 1 : 3;
    for (int p = 0; p < n_pts; p++) {
      cr_assert(openslide_pixel(overlay, pts[p][0], pts[p][1], got));
      for (int c = 0; c < 4; c++)
        cr_expect(abs(got[c] - want[c]) <= 3,
                  "%s block %u at (%ld, %ld): overlay %d,%d,%d,%d, expected %d,%d,%d,%d",
                  slide_name, i, (long) pts[p][0], (long) pts[p][1], got[0], got[1], got[2],
                  got[3], want[0], want[1], want[2], want[3]);
      cr_assert(openslide_pixel(heatmap, pts[p][0], pts[p][1], hq));
      cr_expect(abs(hq[0] - q) <= 2, "%s block %u heatmap %d expected %d", slide_name, i, hq[0],
                q);
    }
  }
  /* glass at the top-left of the scanned area and the last pixel: empty */
  uint8_t px[4];
  cr_assert(openslide_pixel(overlay, info->bounds_x + 20, info->bounds_y + 20, px));
  cr_expect_eq(px[3], 0, "no tissue, no colour");
  cr_assert(openslide_pixel(overlay, info->width - 1, info->height - 1, px));
  cr_expect_eq(px[3], 0);
  if (info->has_bounds) {
    /* left of and above the bounds nothing was scanned: transparent, even
     * in the rows and columns where blocks are */
    Block *b = &g_array_index(blocks, Block, 0);
    cr_assert(openslide_pixel(overlay, info->bounds_x - 5, b->y + b->h / 2, px));
    cr_expect_eq(px[3], 0, "outside the bounds");
    cr_assert(openslide_pixel(overlay, b->x + b->w / 2, info->bounds_y - 5, px));
    cr_expect_eq(px[3], 0, "outside the bounds");
  }
  eosin_run_result_clear(&res);
}

Test(overlay, aperio_odd_size_direct_level) {
  /* 0.5 µm/px slide, tiles at 1.0 µm/px: level 1 read as it is */
  check_alignment("blocks-aperio.svs", 64, 1.0, 0);
}

Test(overlay, aperio_resampled_with_overlap) {
  /* 1.5 µm/px is no level: level 1 resampled; overlapping tiles averaged */
  check_alignment("blocks-aperio.svs", 32, 1.5, 8);
}

Test(overlay, leica_bounds_offset) {
  check_alignment("blocks-leica.scn", 64, 1.0, 0);
}

Test(overlay, generic_tiff_mpp_from_tags) {
  /* 0.25 µm/px from TIFF resolution; 1.0 µm/px is level 2 */
  check_alignment("blocks-generic.tif", 32, 1.0, 8);
}
