/*
 * test-stain.c — colour deconvolution against scikit-image (the reference
 * CSVs made by scripts/reference/stain-reference.py from Debian's python3-skimage):
 * per pixel, per tile, and through the whole pipeline's tiles.csv.
 * scikit-image divides optical density by -log10(1e-6) = 6; Eosin does not.
 */
#include "test-util.h"

#include "cells/eosin-cells.h"

#include <math.h>
#include <stdio.h>

#define SKIMAGE_SCALE 6.0

static const double RGB_FROM_HED[3][3] = {
    {0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, {0.27, 0.57, 0.78}};

Test(stain, pixels_match_scikit_image_hed) {
  double inv[3][3];
  cr_assert(_eosin_stain_matrix_invert(RGB_FROM_HED, inv, NULL));
  g_autofree char *ref = td("stain-ref-hed-pixels.csv");
  g_autoptr(GPtrArray) rows = read_csv_rows(ref);
  cr_assert_gt(rows->len, 2000);
  double worst = 0;
  for (guint i = 0; i < rows->len; i++) {
    char **f = rows->pdata[i];
    uint8_t rgb[3] = {atoi(f[1]), atoi(f[2]), atoi(f[3])};
    float out[3];
    _eosin_stain_deconvolve(rgb, 1, inv, out);
    for (int c = 0; c < 3; c++)
      worst = fmax(worst, fabs(out[c] - SKIMAGE_SCALE * g_ascii_strtod(f[4 + c], NULL)));
  }
  cr_expect_lt(worst, 1e-5, "largest difference to scikit-image: %g OD", worst);
}

/* Runs the stain task on ihc.png in 128-px tiles at its own µm/px and
 * compares tiles.csv with scikit-image's tile means. */
static void pipeline_matches(const char *matrix, const char *ref_name) {
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = t\nanalyzer = stain\n[tiling]\ntile_size = 128\nmpp = 0.5\n"
      "[tissue]\nmin_fraction = 0\n[overlay]\nchannel = hematoxylin\n[stain]\nmatrix = %s\n",
      matrix);
  g_autofree char *cfgpath = write_config(text);
  g_autofree char *png = td("ihc.png");
  EosinRunOptions opts = {.mpp_override = 0.5};
  EosinRunResult res;
  run_config_ok(cfgpath, png, NULL, &opts, &res);
  cr_expect_eq(res.tiles_analyzed, 16);
  g_autofree char *csv = g_build_filename(res.outdir, "tiles.csv", NULL);
  g_autoptr(GPtrArray) got = read_csv_rows(csv);
  g_autofree char *refp = td(ref_name);
  g_autoptr(GPtrArray) want = read_csv_rows(refp);
  cr_assert_eq(got->len, want->len);
  for (guint t = 0; t < got->len; t++) {
    char **g = got->pdata[t], **w = want->pdata[t];
    cr_assert_str_eq(g[3], w[1], "tile %u x", t);
    cr_assert_str_eq(g[4], w[2], "tile %u y", t);
    for (int c = 0; c < 3; c++) {
      double a = g_ascii_strtod(g[8 + c], NULL), b = SKIMAGE_SCALE * g_ascii_strtod(w[3 + c], NULL);
      cr_expect(fabs(a - b) <= 1e-5 + 1e-5 * fabs(b), "tile %u channel %d: eosin %.8f skimage %.8f",
                t, c, a, b);
    }
  }
  eosin_run_result_clear(&res);
}

Test(stain, tile_means_match_scikit_image_hed) {
  pipeline_matches("hed", "stain-ref-hed-tiles.csv");
}

Test(stain, tile_means_match_scikit_image_hdx) {
  pipeline_matches("hdx", "stain-ref-hdx-tiles.csv");
}

Test(stain, singular_custom_vectors_are_a_config_error) {
  g_autofree char *cfgpath = write_config(
      "[task]\nname = t\nanalyzer = stain\n[tiling]\nmpp = 1\n"
      "[stain]\nmatrix = custom\nvectors = 1,0,0; 2,0,0; 0,0,1\n");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cr_assert(cfg);
  const EosinAnalyzerOps *ops = eosin_analyzer_find("stain");
  void *ctx = NULL;
  EosinAnalyzerInfo info;
  cr_assert_not(ops->init(cfg, &ctx, &info, &err));
  cr_expect(strstr(err->message, "linearly dependent"), "%s", err->message);
  cr_expect(strstr(err->message, cfgpath), "%s", err->message);
}
