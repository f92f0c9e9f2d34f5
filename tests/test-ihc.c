/*
 * test-ihc.c — IHC quantification: the score rules (H-score, Allred,
 * HER2 ASCO/CAP 2018, hot spot) on hand-made cells; nuclei placed on the
 * tile seams of a generated field, each counted exactly once with its
 * class; strict [ihc] config errors; and on the real Ki-67 crop of
 * ../shared (skipped without it) QuPath's reference counts and the same
 * field at 0.25 and 0.5 µm/px.
 */
#include "test-util.h"

#include "tasks/ihc/ihc-private.h"

#include <math.h>

static EosinCell cell_at(double x, double y, int cls) {
  EosinCell c = {0};
  c.x = x, c.y = y, c.intensity = cls;
  return c;
}

Test(ihc, intensity_classes_and_h_score) {
  EosinIntensityRule r = {{0.2, 0.4, 0.6}, false};
  cr_expect_eq(_eosin_intensity_class(&r, 0.19), 0);
  cr_expect_eq(_eosin_intensity_class(&r, 0.2), 1, "a value at the threshold counts (QuPath's >=)");
  cr_expect_eq(_eosin_intensity_class(&r, 0.45), 2);
  cr_expect_eq(_eosin_intensity_class(&r, 0.6), 3);
  cr_expect_eq(_eosin_intensity_class(&r, NAN), 0);
  r.single_threshold = true;
  cr_expect_eq(_eosin_intensity_class(&r, 0.9), 1);
  EosinCellCounts k = {.total = 200, .by_class = {100, 50, 30, 20}};
  cr_expect_float_eq(_eosin_positive_percent(&k), 50.0, 1e-12);
  cr_expect_float_eq(_eosin_h_score(&k), (50 + 60 + 60) / 2.0, 1e-12);
  EosinCellCounts none = {0};
  cr_expect(isnan(_eosin_h_score(&none)));
}

Test(ihc, allred_proportion_and_intensity) {
  struct {
    int64_t neg, c1, c2, c3;
    int ps, is;
  } cases[] = {
      {100, 0, 0, 0, 0, 0},      /* none */
      {995, 5, 0, 0, 1, 1},      /* 0.5 %: < 1 % */
      {90, 10, 0, 0, 2, 1},      /* 10 %: 1-10 % */
      {89, 0, 11, 0, 3, 2},      /* 11 % */
      {67, 0, 0, 33, 3, 3},      /* 33 % */
      {60, 20, 10, 10, 4, 2},    /* 40 %, mean class 1.75 -> 2 */
      {10, 45, 45, 0, 5, 2},     /* 90 %, mean class 1.5 rounds half up */
      {30, 70, 0, 0, 5, 1},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    EosinCellCounts k = {cases[i].neg + cases[i].c1 + cases[i].c2 + cases[i].c3,
                         {cases[i].neg, cases[i].c1, cases[i].c2, cases[i].c3}};
    EosinAllred a = _eosin_allred(&k);
    cr_expect_eq(a.proportion, cases[i].ps, "case %zu: proportion %d", i, a.proportion);
    cr_expect_eq(a.intensity, cases[i].is, "case %zu: intensity %d", i, a.intensity);
    cr_expect_eq(a.total, a.proportion + a.intensity);
  }
}

/* @n cells with membrane DAB @dab, complete (1.0) or not (0.4) */
static void add_membrane(GArray *a, int n, double dab, bool complete) {
  for (int i = 0; i < n; i++) {
    EosinCell c = {0};
    c.dab[EOSIN_COMP_MEMBRANE] = dab;
    c.membrane_complete = complete ? 1.0f : 0.4f;
    g_array_append_val(a, c);
  }
}

Test(ihc, her2_categories_follow_asco_cap_2018) {
  EosinIntensityRule r = {{0.15, 0.3, 0.5}, false};
  struct {
    int intense_complete, moderate_complete, faint_incomplete, unstained, want;
  } cases[] = {
      {11, 0, 0, 89, 3},  /* > 10 % complete intense: 3+ */
      {10, 0, 0, 90, 0},  /* exactly 10 % stained at all: 0 */
      {10, 1, 0, 89, 2},  /* 10 % intense (not > 10 %), 11 % complete: 2+ */
      {5, 6, 0, 89, 2},   /* complete (any intensity) 11 %: 2+ */
      {0, 0, 11, 89, 1},  /* faint incomplete in 11 %: 1+ */
      {0, 0, 10, 90, 0},  /* 10 %: 0 */
      {0, 0, 0, 100, 0},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autoptr(GArray) a = g_array_new(FALSE, TRUE, sizeof(EosinCell));
    add_membrane(a, cases[i].intense_complete, 0.7, true);
    add_membrane(a, cases[i].moderate_complete, 0.35, true);
    add_membrane(a, cases[i].faint_incomplete, 0.2, false);
    add_membrane(a, cases[i].unstained, 0.02, false);
    EosinHer2 h = _eosin_her2((EosinCell *) a->data, a->len, &r, 0.9);
    int want = cases[i].want;
    cr_expect_eq(h.category, want, "case %zu: category %d (intense %.1f%%, complete %.1f%%, "
                 "any %.1f%%)", i, h.category, h.complete_intense_percent, h.complete_percent,
                 h.any_membrane_percent);
  }
  EosinHer2 none = _eosin_her2(NULL, 0, &r, 0.9);
  cr_expect_eq(none.category, -1);
}

Test(ihc, hotspot_finds_the_densest_positive_window) {
  /* 1 µm/px; a 3 x 3 mm box; cells every 20 µm; positive only in
   * [2000, 2600) x [1000, 1600) µm; window 0.25 mm^2 (500 µm) */
  g_autoptr(GArray) a = g_array_new(FALSE, FALSE, sizeof(EosinCell));
  for (int y = 10; y < 3000; y += 20)
    for (int x = 10; x < 3000; x += 20) {
      bool pos = x >= 2000 && x < 2600 && y >= 1000 && y < 1600;
      EosinCell c = cell_at(x, y, pos);
      g_array_append_val(a, c);
    }
  EosinHotspot h = _eosin_hotspot((EosinCell *) a->data, a->len, 1, 1, 0, 0, 3000, 3000, 0.25,
                                  50, 100);
  cr_assert(h.found);
  cr_expect_float_eq(h.index, 100.0, 1e-9);
  cr_expect_eq(h.cells, 625);
  cr_expect(h.x >= 2000 && h.x + h.w <= 2600 && h.y >= 1000 && h.y + h.h <= 1600,
            "window %g,%g %gx%g", h.x, h.y, h.w, h.h);
  cr_expect(!h.clipped);
  /* too few cells anywhere: no hot spot */
  EosinHotspot none = _eosin_hotspot((EosinCell *) a->data, a->len, 1, 1, 0, 0, 3000, 3000,
                                     0.25, 50, 100000);
  cr_expect(!none.found);
  /* a box smaller than the window is taken whole */
  EosinHotspot small = _eosin_hotspot((EosinCell *) a->data, 30, 1, 1, 0, 0, 600, 20, 1, 50, 1);
  cr_expect(small.found && small.clipped);
  cr_expect_eq(small.cells, 30);
}

/* ---------------------------------------------------------------- seams */

#define FIELD 1000
#define TILE 256
#define OVERLAP 64
#define RADIUS 9

static int seam_grid(int *pos) {
  return seam_positions(FIELD, TILE, OVERLAP, 2 * RADIUS, pos);
}

/* Writes the field as a TIFF at 0.5 µm/px: light blue cytoplasm, blue
 * nuclei, every third one brown (Ki-67 positive). */
static char *write_seam_field(const char *dir, int *n_nuclei, int *n_pos) {
  int pos[64], np = seam_grid(pos);
  g_autofree uint8_t *px = g_new(uint8_t, FIELD * FIELD * 3);
  for (int i = 0; i < FIELD * FIELD; i++)
    px[3 * i] = 205, px[3 * i + 1] = 215, px[3 * i + 2] = 235;
  *n_nuclei = *n_pos = 0;
  for (int j = 0; j < np; j++)
    for (int i = 0; i < np; i++) {
      bool brown = (i + j) % 3 == 0;
      (*n_nuclei)++, *n_pos += brown;
      const uint8_t blue[3] = {90, 110, 170}, dab[3] = {70, 50, 40};
      const uint8_t *col = brown ? dab : blue;
      for (int y = pos[j] - RADIUS; y <= pos[j] + RADIUS; y++)
        for (int x = pos[i] - RADIUS; x <= pos[i] + RADIUS; x++)
          if ((x - pos[i]) * (x - pos[i]) + (y - pos[j]) * (y - pos[j]) <= RADIUS * RADIUS)
            memcpy(px + 3 * ((size_t) y * FIELD + x), col, 3);
    }
  char *path = g_build_filename(dir, "seams.tif", NULL);
  g_autoptr(VipsImage) img =
      vips_image_new_from_memory(px, FIELD * FIELD * 3, FIELD, FIELD, 3, VIPS_FORMAT_UCHAR);
  cr_assert(img);
  /* libvips resolutions are pixels per mm: 0.5 µm/px = 2000 px/mm */
  cr_assert(!vips_tiffsave(img, path, "xres", 2000.0, "yres", 2000.0, "resunit",
                           VIPS_FOREIGN_TIFF_RESUNIT_CM, "tile", TRUE, NULL),
            "%s", vips_error_buffer());
  return path;
}

/* a format: the tile batch size, then extra [ihc] lines */
#define IHC_TEST_CONFIG \
    "[task]\nname = ihc-test\nanalyzer = ihc\n" \
    "[tiling]\ntile_size = 256\noverlap = 64\nmpp = 0.5\n" \
    "[tissue]\nmin_fraction = 0\nmin_saturation = 0.02\nthumbnail_mpp = 4\n" \
    "[scheduler]\nreaders = 2\nbatch_size = %d\nqueue_depth = 2\n" \
    "[overlay]\nchannel = positive_per_mm2\n" \
    "[ihc]\nmarker = ki67\nthreshold = 0.2\nbackground_radius_um = 0\n%s"

Test(ihc, nuclei_on_tile_seams_are_counted_once) {
  cr_assert(vips_init("eosin-tests") == 0);
  g_autofree char *dir = tmp_dir();
  int n_nuclei, n_pos;
  g_autofree char *field = write_seam_field(dir, &n_nuclei, &n_pos);
  g_autofree char *text = g_strdup_printf(IHC_TEST_CONFIG, 3, "");
  g_autofree char *cfgpath = write_config(text);
  g_autofree char *out = g_build_filename(dir, "out", NULL);
  EosinRunResult res;
  run_config_ok(cfgpath, field, out, NULL, &res);
  g_autoptr(GError) err = NULL;
  cr_expect_gt(res.tiles_analyzed, 16, "the field spans several tiles");
  JsonObject *s = json_node_get_object(res.scores);
  cr_expect_eq(json_object_get_int_member(s, "cells"), n_nuclei, "cells %" G_GINT64_FORMAT
               " of %d", json_object_get_int_member(s, "cells"), n_nuclei);
  cr_expect_eq(json_object_get_int_member(s, "positive_cells"), n_pos);

  /* every nucleus found exactly once, at its centre, with its class */
  g_autofree char *csv = g_build_filename(res.outdir, "cells.csv", NULL);
  g_autoptr(GPtrArray) rows = read_csv_rows(csv);
  int pos[64], np = seam_grid(pos);
  g_autofree int *nucleus = expect_seam_nuclei_once(rows, pos, np);
  for (guint r = 0; r < rows->len; r++) {
    char **f = rows->pdata[r];
    int best = nucleus[r];
    bool brown = (best % np + best / np) % 3 == 0;
    cr_expect_str_eq(f[2], brown ? "Positive" : "Negative", "nucleus at %d,%d", pos[best % np],
                     pos[best / np]);
    double area = g_ascii_strtod(f[4], NULL), want = G_PI * RADIUS * RADIUS * 0.25;
    cr_expect(fabs(area - want) < 0.25 * want, "nucleus area %.1f µm², drawn %.1f", area, want);
  }
  /* QuPath can import the cells */
  g_autofree char *gj = g_build_filename(res.outdir, "cells.geojson", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_file(p, gj, &err), "%s", err ? err->message : "");
  JsonArray *feats = json_object_get_array_member(json_node_get_object(json_parser_get_root(p)),
                                                  "features");
  int cells = 0;
  for (guint i = 0; i < json_array_get_length(feats); i++) {
    JsonObject *f = json_array_get_object_element(feats, i);
    JsonObject *pr = json_object_get_object_member(f, "properties");
    if (strcmp(json_object_get_string_member(pr, "objectType"), "cell"))
      continue;
    cells++;
    cr_expect(json_object_has_member(f, "nucleusGeometry"));
  }
  cr_expect_eq(cells, n_nuclei);
  eosin_run_result_clear(&res);
}

/* The tiles of a batch are analysed on several threads: one tile per batch
 * (one thread) and three per batch give the same cells measured the same
 * (cells.csv byte for byte). Cells are put in tile order at the end, so
 * what this catches is scratch state shared between threads (a buffer
 * shared by the workers makes it fail). */
Test(ihc, cells_do_not_depend_on_the_thread_count) {
  cr_assert(vips_init("eosin-tests") == 0);
  g_autofree char *dir = tmp_dir();
  int n_nuclei, n_pos;
  g_autofree char *field = write_seam_field(dir, &n_nuclei, &n_pos);
  char *csv[2] = {NULL, NULL};
  const int batch[2] = {1, 3};
  for (int k = 0; k < 2; k++) {
    g_autofree char *text = g_strdup_printf(IHC_TEST_CONFIG, batch[k], "");
    g_autofree char *cfgpath = write_config(text);
    g_autofree char *name = g_strdup_printf("out-%d", batch[k]);
    g_autofree char *out = g_build_filename(dir, name, NULL);
    EosinRunResult res;
    run_config_ok(cfgpath, field, out, NULL, &res);
    g_autofree char *path = g_build_filename(res.outdir, "cells.csv", NULL);
    cr_assert(g_file_get_contents(path, &csv[k], NULL, NULL), "cannot read %s", path);
    eosin_run_result_clear(&res);
  }
  cr_expect(strchr(csv[0], '\n') && strlen(csv[0]) > 1000, "cells.csv has cells");
  cr_expect_str_eq(csv[0], csv[1], "cells.csv differs between 1 and 3 tiles per batch");
  g_free(csv[0]);
  g_free(csv[1]);
}

/* QuPath shows a slide with bounds (Leica, MIRAX: here from 700,450)
 * cropped to them: cells.geojson's cells and hot spot are shifted by the
 * bounds, cells.csv keeps level-0 pixels; a measurement that is not a
 * number is left out. */
Test(ihc, cells_geojson_is_in_qupath_coordinates_of_a_slide_with_bounds) {
  const float v[] = {800, 500, 810, 500, 810, 510, 800, 510};
  EosinCell cell = {.x = 805, .y = 505, .n_nucleus = 4, .nucleus_area_um2 = 25,
                    .cell_area_um2 = NAN};
  EosinHotspot hot = {.found = true, .index = 50, .cells = 2, .positive = 1,
                      .x = 750, .y = 460, .w = 100, .h = 100};
  EosinSlideInfo info = {.name = "leica", .has_bounds = true, .bounds_x = 700, .bounds_y = 450};
  const char *names[4] = {"Negative", "Positive", "Positive", "Positive"};
  g_autofree char *dir = tmp_dir();
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_cells_write(dir, &info, &cell, 1, v, names, "nucleus", &hot, &err), "%s",
            err ? err->message : "");
  g_autofree char *gj = g_build_filename(dir, "cells.geojson", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_file(p, gj, &err), "%s", err ? err->message : "");
  JsonArray *f = json_object_get_array_member(json_node_get_object(json_parser_get_root(p)),
                                              "features");
  cr_assert_eq(json_array_get_length(f), 2, "the hot spot and the cell");
  const char *geoms[3] = {"geometry", "geometry", "nucleusGeometry"};
  const double want[3][2] = {{50, 10}, {100, 50}, {100, 50}};
  for (int k = 0; k < 3; k++) {
    JsonObject *ft = json_array_get_object_element(f, k ? 1 : 0);
    JsonArray *ring = json_array_get_array_element(
        json_object_get_array_member(json_object_get_object_member(ft, geoms[k]),
                                     "coordinates"),
        0);
    JsonArray *pt = json_array_get_array_element(ring, 0);
    cr_expect_float_eq(json_array_get_double_element(pt, 0), want[k][0], 1e-9, "%s x",
                       geoms[k]);
    cr_expect_float_eq(json_array_get_double_element(pt, 1), want[k][1], 1e-9, "%s y",
                       geoms[k]);
  }
  /* a value that is not a number is left out: QuPath fails on a null */
  JsonObject *m = json_object_get_object_member(
      json_object_get_object_member(json_array_get_object_element(f, 1), "properties"),
      "measurements");
  cr_expect(!json_object_has_member(m, "Cell: Area µm^2"), "the NaN cell area is left out");
  cr_expect_float_eq(json_object_get_double_member(m, "Nucleus: Area µm^2"), 25, 1e-9);
  g_autofree char *text = slurp(gj);
  cr_expect(!strstr(text, "null") && !strstr(text, "nan"), "%s", text);
  g_autofree char *csv = g_build_filename(dir, "cells.csv", NULL);
  g_autoptr(GPtrArray) rows = read_csv_rows(csv);
  cr_assert_eq(rows->len, 1);
  cr_expect_str_eq(((char **) rows->pdata[0])[0], "805.0", "cells.csv: level-0");
  cr_expect_str_eq(((char **) rows->pdata[0])[1], "505.0");
}

Test(ihc, config_errors_name_file_key_and_value) {
  struct {
    const char *ihc, *want;
  } cases[] = {
      {"colour = brown\n", "[ihc] colour = 'brown': unknown key"},
      {"threshold_1plus = high\n", "[ihc] threshold_1plus = 'high': not a number"},
      {"single_threshold = false\nthreshold_1plus = 0.5\n",
       "threshold_1plus/2plus/3plus = '0.5, 0.4, 0.6': must increase"},
      {"compartment = nuclei\n", "[ihc] compartment = 'nuclei': must be one of"},
      {"stains = custom\n", "vectors must be given exactly when stains = custom"},
      {"stains = custom\nvectors = 1,0,0; 1,0,0; 0,0,1\n", "linearly dependent"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *text = g_strdup_printf(IHC_TEST_CONFIG, 3, cases[i].ihc);
    g_autofree char *cfgpath = write_config(text);
    g_autofree char *what = g_strdup_printf("case %zu", i);
    expect_init_error("ihc", cfgpath, cases[i].want, what);
  }
}

/* ---------------------------------------------------------------- real data */

static JsonNode *run_ki67(const char *slide, const char *extra, int *cells, double *pos_pct) {
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = k\nanalyzer = ihc\n[tiling]\ntile_size = 768\noverlap = 96\nmpp = 0.5\n"
      "[tissue]\nmin_fraction = 0\n[overlay]\nchannel = positive_per_mm2\n"
      "[ihc]\nmarker = ki67\nbackground_radius_um = 0\n%s",
      extra);
  g_autofree char *cfgpath = write_config(text);
  EosinRunResult res;
  run_config_ok(cfgpath, slide, NULL, NULL, &res);
  JsonObject *s = json_node_get_object(res.scores);
  *cells = json_object_get_int_member(s, "cells");
  *pos_pct = json_object_get_double_member(s, "positive_percent");
  JsonNode *n = json_node_ref(res.scores);
  eosin_run_result_clear(&res);
  return n;
}

#define KI67 "ihc/ki67-os2-ndpi-crop.ome.tif"

/* QuPath 0.3.2's positive cell detection on the same crop: the results
 * file came from Pete Bankhead's published script, which runs it on the
 * "Optical density sum" at 0.5 µm/px, sigma 2 µm, no background or median,
 * 10-400 µm², no cell expansion, positive on the nucleus' mean DAB OD; all
 * four of its rows (detection threshold 0.2 and 0.4, DAB 0.2 and 0.5). */
Test(ihc, ki67_matches_qupath_on_os2, .timeout = 300) {
  g_autofree char *slide = shared_data(KI67);
  REQUIRE_SHARED(slide, KI67);
  struct {
    double det, dab, qupath_pct;
    int qupath_cells;
  } rows[] = {{0.2, 0.2, 16.5532879819, 1323},
              {0.2, 0.5, 11.8669690098, 1323},
              {0.4, 0.2, 20.5440900563, 1066},
              {0.4, 0.5, 14.7279549719, 1066}};
  for (size_t i = 0; i < G_N_ELEMENTS(rows); i++) {
    g_autofree char *extra = g_strdup_printf(
        "detection_image = od_sum\nsigma_um = 2\nmedian_radius_um = 0\n"
        "min_area_um2 = 10\nmax_area_um2 = 400\ncell_expansion_um = 0\n"
        "threshold = %g\nthreshold_1plus = %g\n",
        rows[i].det, rows[i].dab);
    int cells;
    double pct;
    g_autoptr(JsonNode) s = run_ki67(slide, extra, &cells, &pct);
    cr_expect(abs(cells - rows[i].qupath_cells) <= 0.15 * rows[i].qupath_cells,
              "detection %g, DAB %g: %d cells, QuPath %d", rows[i].det, rows[i].dab, cells,
              rows[i].qupath_cells);
    cr_expect(fabs(pct - rows[i].qupath_pct) <= 3,
              "detection %g, DAB %g: %.2f %% positive, QuPath %.2f %%", rows[i].det,
              rows[i].dab, pct, rows[i].qupath_pct);
  }
}

/* The crop resampled to 0.25 and 0.5 µm/px: sizes in µm, so the counts agree. */
Test(ihc, counts_do_not_change_with_the_scan_resolution, .timeout = 300) {
  g_autofree char *slide = shared_data(KI67);
  REQUIRE_SHARED(slide, KI67);
  cr_assert(vips_init("eosin-tests") == 0);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) s = eosin_slide_open(slide, 0, &err);
  cr_assert(s, "%s", err ? err->message : "");
  const EosinSlideInfo *info = eosin_slide_get_info(s);
  g_autofree uint8_t *rgb = g_new(uint8_t, info->width * info->height * 3);
  cr_assert(eosin_slide_read_region(s, 0, 0, 0, info->width, info->height, rgb, &err));
  g_autoptr(VipsImage) full = vips_image_new_from_memory(rgb, info->width * info->height * 3,
                                                         info->width, info->height, 3,
                                                         VIPS_FORMAT_UCHAR);
  g_autofree char *dir = tmp_dir();
  int cells[2];
  double pct[2];
  const double mpp[2] = {0.25, 0.5};
  for (int k = 0; k < 2; k++) {
    VipsImage *t = NULL;
    cr_assert(!vips_resize(full, &t, info->mpp_x / mpp[k], NULL), "%s", vips_error_buffer());
    g_autoptr(VipsImage) scaled = t;
    g_autofree char *name = g_strdup_printf("ki67-at-%g.tif", mpp[k]);
    g_autofree char *path = g_build_filename(dir, name, NULL);
    cr_assert(!vips_tiffsave(scaled, path, "xres", 1000 / mpp[k], "yres", 1000 / mpp[k],
                             "resunit", VIPS_FOREIGN_TIFF_RESUNIT_CM, "tile", TRUE, NULL),
              "%s", vips_error_buffer());
    g_autoptr(JsonNode) sc = run_ki67(
        path, "detection_image = od_sum\nsigma_um = 2\nthreshold = 0.2\n", &cells[k], &pct[k]);
  }
  cr_expect(abs(cells[0] - cells[1]) <= 0.1 * MAX(cells[0], cells[1]),
            "%d cells at 0.25 µm/px, %d at 0.5", cells[0], cells[1]);
  cr_expect(fabs(pct[0] - pct[1]) <= 3, "%.2f %% at 0.25 µm/px, %.2f %% at 0.5", pct[0], pct[1]);
}
