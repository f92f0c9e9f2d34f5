/*
 * test-lesions.c — lesion candidates from a heatmap ([lesions]): components,
 * peaks, areas, extents and slide scores on a hand-drawn grid; outlines
 * that follow cell edges exactly, with holes and corner-touching cells,
 * read back through the CAMELYON16 evaluation's own XML rasteriser and as
 * GeoJSON; and the whole path on a generated slide through `eosin batch`,
 * whose camelyon-slides.csv and detections feed `eosin eval camelyon16`.
 */
#include "test-util.h"

#include "eval/eval-private.h"

#include <math.h>

/* A 12 x 10 grid, one channel, NaN (not analysed) around:
 *   A: a 4 x 4 ring of 0.8 around a 2 x 2 hole of 0.1, peak 0.95 at (4,4)
 *   B: (7,1) = 0.6 and (8,2) = 0.7, touching only at a corner
 *   C: (10,8) = 0.4, below the threshold */
static void draw(EosinGrid *g, double cell, int64_t ox, int64_t oy) {
  memset(g, 0, sizeof *g);
  g->width = 12, g->height = 10, g->n_channels = 1;
  g->cell_x = g->cell_y = cell;
  g->origin_x = ox, g->origin_y = oy;
  g->values = g_new(float, 120);
  for (int i = 0; i < 120; i++)
    g->values[i] = (i / 12 >= 1 && i / 12 <= 8) ? 0.05f : NAN;
#define AT(x, y) g->values[(y) * 12 + (x)]
  for (int y = 1; y <= 4; y++)
    for (int x = 1; x <= 4; x++)
      AT(x, y) = (x == 2 || x == 3) && (y == 2 || y == 3) ? 0.1f : 0.8f;
  AT(4, 4) = 0.95f;
  AT(7, 1) = 0.6f;
  AT(8, 2) = 0.7f;
  AT(10, 8) = 0.4f;
#undef AT
}

static const EosinLesionParams PARAMS = {.present = true, .channel = "tumor", .threshold = 0.5,
                                         .min_area_um2 = 0, .top_k = 1};

Test(lesions, components_peaks_areas_and_scores) {
  EosinGrid g;
  draw(&g, 128, 1000, 2000);
  EosinLesionSet s;
  g_autoptr(GError) err = NULL;
  /* 128 level-0 px of 0.25 µm: cells of 32 x 32 µm */
  cr_assert(_eosin_lesions_find(&g, 0, &PARAMS, 0.25, 0.25, &s, &err));
  cr_assert_eq(s.lesions->len, 2);
  EosinLesion *a = &g_array_index(s.lesions, EosinLesion, 0);
  EosinLesion *b = &g_array_index(s.lesions, EosinLesion, 1);
  cr_expect_float_eq(a->probability, 0.95, 1e-6);
  cr_expect_float_eq(a->x, 1000 + 4.5 * 128, 1e-9);
  cr_expect_float_eq(a->y, 2000 + 4.5 * 128, 1e-9);
  cr_expect_eq(a->cells, 12);
  cr_expect_float_eq(a->area_um2, 12 * 1024.0, 1e-6);
  cr_expect_float_eq(a->extent_um, 4 * 32 * sqrt(2), 1e-6);
  cr_expect_eq(a->rings->len, 2, "outer ring and hole");
  cr_expect_float_eq(b->probability, 0.7, 1e-6);
  cr_expect_float_eq(b->x, 1000 + 8.5 * 128, 1e-9);
  cr_expect_eq(b->cells, 2);
  cr_expect_eq(b->rings->len, 2, "one ring per cell touching at a corner");
  cr_expect_float_eq(b->extent_um, 2 * 32 * sqrt(2), 1e-6);
  cr_expect_float_eq(s.slide_score, 0.95, 1e-6);
  cr_expect_str_eq(_eosin_node_category_name(a->extent_um), "itc");  /* 181 µm < 200 µm */
  _eosin_lesion_set_clear(&s);

  /* min_area drops B (2048 µm²); top_k = 3 averages 0.95, 0.8, 0.8 */
  EosinLesionParams p = PARAMS;
  p.min_area_um2 = 3000;
  p.top_k = 3;
  cr_assert(_eosin_lesions_find(&g, 0, &p, 0.25, 0.25, &s, &err));
  cr_expect_eq(s.lesions->len, 1);
  cr_expect_float_eq(s.slide_score, (0.95 + 0.8 + 0.8) / 3, 1e-6);
  _eosin_lesion_set_clear(&s);

  /* at 2 µm per level-0 px, A spans 4 x 256 µm: micro */
  cr_assert(_eosin_lesions_find(&g, 0, &PARAMS, 2, 2, &s, &err));
  cr_expect_str_eq(
      _eosin_node_category_name(g_array_index(s.lesions, EosinLesion, 0).extent_um), "micro");
  _eosin_lesion_set_clear(&s);
  _eosin_grid_clear(&g);
}

/* A plain 3 x 3 NaN-skipping mean at (x, y) (cell value NaN stays NaN). */
static double naive_mean3(const EosinGrid *g, int x, int y) {
  if (isnan(g->values[y * g->width + x]))
    return NAN;
  double s = 0;
  int n = 0;
  for (int dy = -1; dy <= 1; dy++)
    for (int dx = -1; dx <= 1; dx++) {
      int u = x + dx, v = y + dy;
      if (u < 0 || v < 0 || u >= g->width || v >= g->height)
        continue;
      float a = g->values[v * g->width + u];
      if (!isnan(a))
        s += a, n++;
    }
  return s / n;
}

Test(lesions, smoothing_averages_over_tissue_only) {
  EosinGrid g;
  draw(&g, 128, 0, 0);
  /* 96 µm over cells of 32 µm: a 3 x 3 window */
  EosinLesionParams p = PARAMS;
  p.smooth_um = 96;
  p.threshold = 0.45;
  double best = 0;
  int bx = 0, by = 0;
  for (int y = 0; y < g.height; y++)
    for (int x = 0; x < g.width; x++) {
      double m = naive_mean3(&g, x, y);
      if (!isnan(m) && m > best)
        best = m, bx = x, by = y;
    }
  EosinLesionSet s;
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_lesions_find(&g, 0, &p, 0.25, 0.25, &s, &err));
  cr_expect_eq(s.smooth_cells, 3);
  cr_expect_float_eq(s.slide_score, best, 1e-6);
  cr_assert_geq(s.lesions->len, 1);
  EosinLesion *top = &g_array_index(s.lesions, EosinLesion, 0);
  cr_expect_float_eq(top->probability, best, 1e-6);
  cr_expect_float_eq(top->x, (bx + 0.5) * 128, 1e-9);
  cr_expect_float_eq(top->y, (by + 0.5) * 128, 1e-9);
  /* B's two cells average out below 0.45 with their neighbours */
  for (guint i = 0; i < s.lesions->len; i++)
    cr_expect_lt(g_array_index(s.lesions, EosinLesion, i).x, 6 * 128);
  _eosin_lesion_set_clear(&s);
  _eosin_grid_clear(&g);
}

/* Writes @s into @dir and reads lesions.xml back through the CAMELYON16
 * evaluation's parser and level-5 rasteriser on a @w x @h grid; the number
 * of polygons goes to @n_polys. Caller frees the mask. */
static uint8_t *written_mask(const EosinLesionSet *s, const char *dir, int w, int h,
                             guint *n_polys) {
  g_autoptr(GError) err = NULL;
  EosinSlideInfo info = {.name = "grid"};
  cr_assert(_eosin_lesions_write(s, dir, &info, "tumor", &err), "%s", err ? err->message : "");
  g_autofree char *xml = g_build_filename(dir, "lesions.xml", NULL);
  g_autoptr(GArray) polys = _eosin_asap_xml_load(xml, &err);
  cr_assert(polys, "%s", err ? err->message : "");
  *n_polys = polys->len;
  return _eosin_c16_mask_from_polygons(polys, w, h);
}

Test(lesions, outlines_round_trip_through_the_evaluation_rasteriser) {
  /* cells of 32 level-0 px = one level-5 pixel: the evaluation's mask of
   * lesions.xml must be exactly the cells at or above the threshold, the
   * hole (an Exclusion polygon) cut out */
  EosinGrid g;
  draw(&g, 32, 0, 0);
  EosinLesionSet s;
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_lesions_find(&g, 0, &PARAMS, 0.243, 0.243, &s, &err));
  g_autofree char *dir = tmp_dir();
  guint n_polys;
  g_autofree uint8_t *mask = written_mask(&s, dir, 12, 10, &n_polys);
  cr_expect_eq(n_polys, 4, "A outer, A hole, two cells of B");
  for (int i = 0; i < 120; i++) {
    bool want = !isnan(g.values[i]) && g.values[i] >= 0.5;
    cr_expect_eq(mask[i], want, "cell (%d,%d): mask %d", i % 12, i / 12, mask[i]);
  }

  g_autofree char *csv_path = g_build_filename(dir, "detections.csv", NULL);
  g_autofree char *csv = slurp(csv_path);
  cr_expect_str_eq(csv, "0.950000,144,144\n0.700000,272,80\n");

  g_autofree char *geo = g_build_filename(dir, "lesions.geojson", NULL);
  g_autoptr(JsonParser) jp = json_parser_new();
  cr_assert(json_parser_load_from_file(jp, geo, &err), "%s", err ? err->message : "");
  JsonArray *f = json_object_get_array_member(json_node_get_object(json_parser_get_root(jp)),
                                              "features");
  cr_assert_eq(json_array_get_length(f), 2);
  JsonObject *ga = json_object_get_object_member(json_array_get_object_element(f, 0), "geometry");
  cr_expect_str_eq(json_object_get_string_member(ga, "type"), "Polygon");
  JsonArray *rings = json_object_get_array_member(ga, "coordinates");
  cr_expect_eq(json_array_get_length(rings), 2, "outer ring + hole");
  JsonArray *outer = json_array_get_array_element(rings, 0);
  cr_expect_eq(json_array_get_length(outer), 5, "a square, closed");
  double xs[5], ys[5];
  for (int k = 0; k < 5; k++) {
    JsonArray *pt = json_array_get_array_element(outer, k);
    xs[k] = json_array_get_double_element(pt, 0);
    ys[k] = json_array_get_double_element(pt, 1);
  }
  cr_expect(xs[0] == xs[4] && ys[0] == ys[4]);
  for (int k = 0; k < 4; k++)
    cr_expect((xs[k] == 32 || xs[k] == 160) && (ys[k] == 32 || ys[k] == 160),
              "corner (%g,%g)", xs[k], ys[k]);
  JsonObject *gb = json_object_get_object_member(json_array_get_object_element(f, 1), "geometry");
  cr_expect_str_eq(json_object_get_string_member(gb, "type"), "MultiPolygon");
  JsonObject *props =
      json_object_get_object_member(json_array_get_object_element(f, 0), "properties");
  cr_expect_str_eq(json_object_get_string_member(
                       json_object_get_object_member(props, "classification"), "name"),
                   "tumor");
  cr_expect_float_eq(json_object_get_double_member(
                         json_object_get_object_member(props, "measurements"), "probability"),
                     0.95, 1e-6);
  _eosin_lesion_set_clear(&s);
  _eosin_grid_clear(&g);
}

/* Appends every number under @n (nested coordinate arrays) to @v. */
static void flatten(JsonNode *n, GArray *v) {
  if (JSON_NODE_HOLDS_ARRAY(n)) {
    JsonArray *a = json_node_get_array(n);
    for (guint i = 0; i < json_array_get_length(a); i++)
      flatten(json_array_get_element(a, i), v);
  } else {
    double d = json_node_get_double(n);
    g_array_append_val(v, d);
  }
}

/* Every outline vertex and peak (x, y pairs) of lesions.geojson in @dir. */
static GArray *geojson_points(const char *dir) {
  g_autofree char *geo = g_build_filename(dir, "lesions.geojson", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_file(p, geo, NULL), "%s", geo);
  JsonArray *f = json_object_get_array_member(json_node_get_object(json_parser_get_root(p)),
                                              "features");
  GArray *v = g_array_new(FALSE, FALSE, sizeof(double));
  for (guint i = 0; i < json_array_get_length(f); i++) {
    JsonObject *ft = json_array_get_object_element(f, i);
    flatten(json_object_get_member(json_object_get_object_member(ft, "geometry"), "coordinates"),
            v);
    JsonObject *m = json_object_get_object_member(
        json_object_get_object_member(ft, "properties"), "measurements");
    double px = json_object_get_double_member(m, "peak_x");
    double py = json_object_get_double_member(m, "peak_y");
    g_array_append_val(v, px);
    g_array_append_val(v, py);
  }
  return v;
}

/* A slide scanned from level-0 700,450 (Leica, MIRAX) is shown by QuPath
 * cropped to its bounds: lesions.geojson's outlines and peaks are shifted
 * by them, detections.csv and lesions.xml (CAMELYON, ASAP: level 0) not. */
Test(lesions, geojson_is_in_qupath_coordinates_of_a_slide_with_bounds) {
  EosinGrid g;
  draw(&g, 32, 700, 450);
  EosinLesionSet s;
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_lesions_find(&g, 0, &PARAMS, 0.243, 0.243, &s, &err));
  g_autofree char *d0 = tmp_dir(), *d1 = tmp_dir();
  EosinSlideInfo none = {.name = "grid"};
  EosinSlideInfo leica = {.name = "grid", .has_bounds = true, .bounds_x = 700, .bounds_y = 450};
  cr_assert(_eosin_lesions_write(&s, d0, &none, "tumor", &err), "%s", err ? err->message : "");
  cr_assert(_eosin_lesions_write(&s, d1, &leica, "tumor", &err), "%s", err ? err->message : "");
  const char *same[] = {"detections.csv", "lesions.xml"};
  for (int i = 0; i < 2; i++) {
    g_autofree char *a = g_build_filename(d0, same[i], NULL);
    g_autofree char *b = g_build_filename(d1, same[i], NULL);
    g_autofree char *ta = slurp(a), *tb = slurp(b);
    cr_expect_str_eq(ta, tb, "%s is in level-0 pixels either way", same[i]);
  }
  g_autoptr(GArray) a = geojson_points(d0);
  g_autoptr(GArray) b = geojson_points(d1);
  cr_assert_eq(a->len, b->len);
  cr_assert_gt(a->len, 20);
  for (guint i = 0; i < a->len; i += 2) {
    double ax = g_array_index(a, double, i), ay = g_array_index(a, double, i + 1);
    cr_expect_float_eq(g_array_index(b, double, i), ax - 700, 1e-9, "x %g", ax);
    cr_expect_float_eq(g_array_index(b, double, i + 1), ay - 450, 1e-9, "y %g", ay);
    /* without bounds, the level-0 numbers: the grid starts at 700,450 */
    cr_expect(ax >= 700 && ay >= 450, "%g,%g", ax, ay);
  }
  _eosin_lesion_set_clear(&s);
  _eosin_grid_clear(&g);
}

Test(lesions, random_grids_round_trip_exactly) {
  /* random blobs with holes and corner contacts: the rasterised outlines
   * equal the thresholded cells every time */
  GRand *rng = g_rand_new_with_seed(7);
  for (int trial = 0; trial < 40; trial++) {
    EosinGrid g = {.width = 24, .height = 18, .n_channels = 1, .cell_x = 32, .cell_y = 32};
    g.values = g_new(float, 24 * 18);
    for (int i = 0; i < 24 * 18; i++) {
      int x = i % 24, y = i / 24;
      /* keep a border of empty cells: the rasteriser's grid ends there */
      g.values[i] = x == 0 || y == 0 || x == 23 || y == 17 ? NAN
                                                          : (float) g_rand_double(rng);
    }
    EosinLesionSet s;
    g_autoptr(GError) err = NULL;
    cr_assert(_eosin_lesions_find(&g, 0, &PARAMS, 0.243, 0.243, &s, &err));
    g_autofree char *dir = tmp_dir();
    guint n_polys;
    g_autofree uint8_t *mask = written_mask(&s, dir, 24, 18, &n_polys);
    int bad = 0, cells = 0;
    for (int i = 0; i < 24 * 18; i++) {
      bool want = !isnan(g.values[i]) && g.values[i] >= 0.5;
      bad += mask[i] != want;
      cells += want;
    }
    cr_expect_eq(bad, 0, "trial %d: %d of %d cells differ", trial, bad, cells);
    int sum = 0;
    for (guint l = 0; l < s.lesions->len; l++)
      sum += g_array_index(s.lesions, EosinLesion, l).cells;
    cr_expect_eq(sum, cells);
    _eosin_lesion_set_clear(&s);
    _eosin_grid_clear(&g);
  }
  g_rand_free(rng);
}

Test(lesions, bad_lesions_config_is_named) {
  g_autoptr(GError) err = NULL;
  g_autofree char *a = write_config("[task]\nname = t\nanalyzer = stain\n[tiling]\nmpp = 1\n"
                                    "[lesions]\nchannel = hematoxylin\nthreshhold = 0.5\n");
  cr_expect_null(eosin_config_load(a, &err));
  cr_expect(err && strstr(err->message, "[lesions] threshhold") && strstr(err->message, a),
            "%s", err ? err->message : "");
  g_clear_error(&err);
  g_autofree char *b = write_config("[task]\nname = t\nanalyzer = stain\n[tiling]\nmpp = 1\n"
                                    "[lesions]\nthreshold = 0.5\n");
  cr_expect_null(eosin_config_load(b, &err));
  cr_expect(err && strstr(err->message, "[lesions] channel"), "%s", err ? err->message : "");
  g_clear_error(&err);
  /* a channel the analyzer does not have fails the slide, naming both */
  g_autofree char *c = write_config("[task]\nname = t\nanalyzer = stain\n[tiling]\nmpp = 1\n"
                                    "[lesions]\nchannel = tumor\n");
  g_autoptr(EosinConfig) cfg = eosin_config_load(c, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  g_autofree char *slide = td("blocks-aperio.svs");
  g_autofree char *out = tmp_dir();
  cr_expect_not(eosin_run_slide(cfg, slide, out, NULL, NULL, &err));
  cr_expect(err && strstr(err->message, "[lesions] channel = 'tumor'") &&
                strstr(err->message, "hematoxylin"),
            "%s", err ? err->message : "");
}

/* ---------------------------------------------------------------- end to end */

/* p(red) of make-test-cnn.py's colour classifier for a pixel colour (BGR,
 * mean/std as below; logits 2x). */
static double p_red(const uint8_t rgb[3]) {
  const double mean[3] = {0.3, 0.4, 0.5}, std[3] = {0.5, 0.4, 0.6};
  double z[3], sum = 0;
  for (int c = 0; c < 3; c++)
    sum += z[c] = exp(2 * (rgb[2 - c] / 255.0 - mean[c]) / std[c]);
  return z[2] / sum;
}

Test(lesions, batch_finds_the_red_blocks_and_eval_scores_them, .timeout = 300) {
  g_autofree char *slide = td("blocks-aperio.svs");
  g_autofree char *json = g_strconcat(slide, ".json", NULL);
  int64_t w, h;
  g_autoptr(GArray) blocks = load_blocks(json, &w, &h);
  g_autofree char *cfg = cnn_lesions_config("lesions-test");
  g_autofree char *out = tmp_dir();
  g_autofree char *manifest = g_build_filename(out, "slides.txt", NULL);
  cr_assert(g_file_set_contents(manifest, slide, -1, NULL));
  g_autofree char *res_dir = g_build_filename(out, "res", NULL);
  /* --device replaces [model] device: the other config strings must survive */
  const char *argv[] = {"batch", "--task", cfg, "--device", "cpu", "--manifest", manifest,
                        "-o", res_dir, NULL};
  g_autofree char *so = NULL, *se = NULL;
  cr_assert_eq(run_eosin(argv, &so, &se), 0, "%s", se);

  /* every block with p(red) >= 0.4 (the DAB-brown ones) gives one
   * detection inside it, and nothing else does */
  g_autofree char *det_path = g_build_filename(res_dir, "blocks-aperio", "detections.csv", NULL);
  g_autofree char *det = slurp(det_path);
  g_auto(GStrv) rows = g_strsplit(g_strstrip(det), "\n", -1);
  int want = 0;
  double best = 0;
  for (guint i = 0; i < blocks->len; i++) {
    Block *b = &g_array_index(blocks, Block, i);
    if (p_red(b->rgb) < 0.4)
      continue;
    want++;
    best = MAX(best, p_red(b->rgb));
    int hits = 0;
    for (int r = 0; rows[r] && *rows[r]; r++) {
      double p, x, y;
      cr_assert_eq(sscanf(rows[r], "%lf,%lf,%lf", &p, &x, &y), 3, "row '%s'", rows[r]);
      hits += x >= b->x && x < b->x + b->w && y >= b->y && y < b->y + b->h;
    }
    cr_expect_eq(hits, 1, "block %u (%d,%d,%d): %d detections", i, b->rgb[0], b->rgb[1],
                 b->rgb[2], hits);
  }
  cr_assert_gt(want, 0, "the slide has red blocks");
  cr_expect_eq((int) g_strv_length(rows), want, "%s", det);

  /* the slide probability is the highest cell: a red block's p */
  g_autofree char *slides_csv = g_build_filename(res_dir, "camelyon-slides.csv", NULL);
  g_autofree char *sc = slurp(slides_csv);
  double p;
  cr_assert_eq(sscanf(sc, "name,probability\nblocks-aperio,%lf", &p), 1, "%s", sc);
  cr_expect(fabs(p - best) < 0.02, "slide probability %g, red block %g", p, best);
  /* a rerun skips the finished slide and keeps its probability */
  g_free(so), g_free(se);
  so = se = NULL;
  cr_assert_eq(run_eosin(argv, &so, &se), 0, "%s", se);
  g_autofree char *sc2 = slurp(slides_csv);
  cr_expect_str_eq(sc2, sc);

  /* each red block's outline (lesions.xml, as the evaluation reads it) is
   * the block to within one cell (64 px): cells half glass may go either way */
  g_autofree char *xml = g_build_filename(res_dir, "blocks-aperio", "lesions.xml", NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(GArray) polys = _eosin_asap_xml_load(xml, &err);
  cr_assert(polys, "%s", err ? err->message : "");
  cr_expect_eq((int) polys->len, want);
  for (guint i = 0; i < polys->len; i++) {
    EosinPolygon *pg = &g_array_index(polys, EosinPolygon, i);
    double x0 = 1e18, y0 = 1e18, x1 = -1, y1 = -1;
    for (guint k = 0; k + 1 < pg->xy->len; k += 2) {
      double x = g_array_index(pg->xy, double, k), y = g_array_index(pg->xy, double, k + 1);
      x0 = MIN(x0, x), x1 = MAX(x1, x), y0 = MIN(y0, y), y1 = MAX(y1, y);
    }
    bool matched = false;
    for (guint j = 0; j < blocks->len; j++) {
      Block *b = &g_array_index(blocks, Block, j);
      matched |= p_red(b->rgb) >= 0.4 && fabs(x0 - b->x) <= 64 && fabs(y0 - b->y) <= 64 &&
                 fabs(x1 - (b->x + b->w)) <= 64 && fabs(y1 - (b->y + b->h)) <= 64;
    }
    cr_expect(matched, "polygon %u (%g,%g)-(%g,%g) is no red block", i, x0, y0, x1, y1);
  }
  g_autofree char *report = g_build_filename(res_dir, "blocks-aperio", "report.json", NULL);
  g_autofree char *rep = slurp(report);
  cr_expect(strstr(rep, "\"lesions.geojson\"") && strstr(rep, "\"slide_probability\""));
}
