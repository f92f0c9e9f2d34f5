/*
 * test-cytology.c — the cytology task: the triage rules on hand-made
 * evidence, strict [cytology] errors, cells drawn on every tile seam
 * counted once with gallery.png and QuPath-importable GeoJSON, a glass-only
 * slide refused (no tissue), a fluorescence slide given no triage, and (with ../shared)
 * mosaic slides of real LBC fields triaged end to end.
 */
#include "tasks/cytology/cytology-private.h"
#include "test-util.h"

#include <math.h>

/* ---------------------------------------------------------------- triage */

static EosinTriageRule rule(void) {
  return (EosinTriageRule){.top_tile_fraction = 1, .min_top_tiles = 3, .cell_weight = 0,
                           .threshold = 0.5};
}

/* @n tiles, all NL (P(NL) 0.9) except @k of class @cls (P 1.0) */
static float *tiles_with(int n, int k, int cls) {
  float *p = g_new(float, 4 * n);
  for (int t = 0; t < n; t++) {
    float *v = p + 4 * t;
    int c = t < k ? cls : 0;
    for (int q = 0; q < 4; q++)
      v[q] = q == c ? (c ? 1.0f : 0.9f) : (c ? 0.0f : 0.1f / 3);
  }
  return p;
}

static EosinCytoCell *cells_with(int n, float p_abn) {
  EosinCytoCell *c = g_new0(EosinCytoCell, n);
  for (int i = 0; i < n; i++)
    c[i].p_abnormal = c[i].suspicion = p_abn, c[i].tile = i;
  return c;
}

Test(cytology, normal_slide_is_nilm) {
  EosinTriageRule r = rule();
  g_autofree float *p = tiles_with(100, 0, 0);
  g_autofree EosinCytoCell *c = cells_with(50, 0.9f);
  EosinTriage t;
  _eosin_cyto_triage(&r, p, 4, 100, c, 50, &t);
  cr_assert(t.assessable);
  cr_expect_eq(t.category, 0, "category %d", t.category);
  cr_expect_float_eq(t.tile_abnormal, 0.1, 1e-6);
  cr_expect_float_eq(t.abnormal, 0.1, 1e-6, "cell_weight 0: the cells do not count");
  cr_expect_eq(t.lesion_tiles, 0);
  cr_expect_float_eq(t.prob[0] + t.prob[1] + t.prob[2] + t.prob[3], 1, 1e-6);
}

/* The tile evidence is the mean over every tile by default: a lesion must
 * cover enough of the slide; top_tile_fraction narrows it to the most
 * abnormal part; the grade comes from the lesion tiles alone. */
Test(cytology, lesion_size_and_top_tile_fraction) {
  EosinTriageRule r = rule();
  g_autofree float *small = tiles_with(100, 10, 2);
  EosinTriage t;
  _eosin_cyto_triage(&r, small, 4, 100, NULL, 0, &t);
  cr_expect_float_eq(t.tile_abnormal, 0.9 * 0.1 + 0.1 * 1.0, 1e-6);
  cr_expect_eq(t.category, 0, "10 %% of the tiles, mean over all: NILM");
  cr_expect_eq(t.lesion_tiles, 10);
  cr_expect_float_eq(t.grade[2], 1.0, 1e-6, "the grade is the lesion tiles'");
  r.top_tile_fraction = 0.1;
  _eosin_cyto_triage(&r, small, 4, 100, NULL, 0, &t);
  cr_expect_eq(t.top_tiles, 10);
  cr_expect_eq(t.category, 2, "top 10 %%: HSIL, got %d", t.category);
  r.top_tile_fraction = 1;
  g_autofree float *large = tiles_with(100, 60, 3);
  _eosin_cyto_triage(&r, large, 4, 100, NULL, 0, &t);
  cr_expect_float_eq(t.abnormal, 0.4 * 0.1 + 0.6, 1e-6);
  cr_expect_eq(t.category, 3, "60 %% SCC tiles: SCC, got %d", t.category);
  cr_expect_float_eq(t.prob[3], t.abnormal, 1e-6);
}

Test(cytology, cell_weight_mixes_in_the_cells) {
  EosinTriageRule r = rule();
  r.cell_weight = 0.5;
  g_autofree float *p = tiles_with(100, 10, 1);
  g_autofree EosinCytoCell *c = cells_with(40, 1.0f);
  EosinTriage t;
  _eosin_cyto_triage(&r, p, 4, 100, c, 40, &t);
  cr_expect_float_eq(t.cell_abnormal, 1.0, 1e-6);
  cr_expect_float_eq(t.abnormal, 0.5 * 0.19 + 0.5, 1e-6);
  cr_expect_eq(t.category, 1, "LSIL, got %d", t.category);
  /* no cells: tile evidence alone, whatever the weight */
  _eosin_cyto_triage(&r, p, 4, 100, NULL, 0, &t);
  cr_expect(isnan(t.cell_abnormal));
  cr_expect_float_eq(t.abnormal, t.tile_abnormal, 1e-9);
  _eosin_cyto_triage(&r, p, 4, 0, NULL, 0, &t);
  cr_expect(!t.assessable, "no tiles: nothing to triage");
}

Test(cytology, suspicion_order_is_total) {
  EosinCytoCell a = {.p_abnormal = 0.9f, .suspicion = 0.5f, .tile = 3, .x = 1, .y = 1};
  EosinCytoCell b = a;
  b.tile = 2;
  cr_expect_gt(_eosin_cyto_cell_cmp(&a, &b), 0, "equal scores: the lower tile first");
  b = a, b.p_abnormal = 0.95f;
  cr_expect_gt(_eosin_cyto_cell_cmp(&a, &b), 0, "equal suspicion: the more abnormal first");
  b = a, b.p_abnormal = 0.5f, b.suspicion = 0.6f;
  cr_expect_gt(_eosin_cyto_cell_cmp(&a, &b), 0, "the more suspicious first");
  cr_expect_eq(_eosin_cyto_cell_cmp(&a, &a), 0);
}

/* ---------------------------------------------------------------- slides */

static char *model_path(const char *name) {
  g_autofree char *cwd = g_get_current_dir();
  return g_build_filename(cwd, "models", name, NULL);
}

/* A cytology config on the reference models; @min_fraction 0 analyses
 * every tile of a slide with tissue. */
static char *cyto_config_full(int batch, double min_fraction, const char *model_extra,
                              const char *extra) {
  g_autofree char *field = model_path("cytology-field.onnx");
  g_autofree char *cell = model_path("cytology-cell.onnx");
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = cyto-test\nanalyzer = cytology\n"
      "[tiling]\ntile_size = 256\noverlap = 80\nmpp = 0.7\n"
      "[tissue]\nmin_fraction = %g\nmin_saturation = 0.02\nthumbnail_mpp = 4\n"
      "[scheduler]\nreaders = 2\nbatch_size = %d\nqueue_depth = 2\n"
      "[overlay]\nchannel = abnormal\n"
      "[model]\npath = %s\nclasses = NL, LSIL, HSIL, SCC\nactivation = softmax\n"
      "mean = 0.5, 0.5, 0.5\nstd = 0.25, 0.25, 0.25\ndevice = cpu\n%s"
      "[cytology]\ncell_model = %s\n"
      "cell_classes = normal_superficiel, normal_intermediate, normal_columnar, "
      "light_dysplastic, moderate_dysplastic, severe_dysplastic, carcinoma_in_situ\n"
      "cell_abnormal = light_dysplastic, moderate_dysplastic, severe_dysplastic, "
      "carcinoma_in_situ\nbackground_radius_um = 8\nmin_cells_for_triage = 10\n%s",
      min_fraction, batch, field, model_extra, cell, extra);
  return write_config(text);
}

static char *cyto_config(int batch, double min_fraction, const char *extra) {
  return cyto_config_full(batch, min_fraction, "", extra);
}

#define FIELD 1000
#define TILE 256
#define OVERLAP 80
#define RADIUS 7

static int seam_grid(int *pos) {
  return seam_positions(FIELD, TILE, OVERLAP, 3 * RADIUS, pos);
}

/* A field at 0.7 µm/px: bluish LBC glass, dark blue nuclei in pale
 * cytoplasm discs on every seam position. */
static char *write_seam_field(const char *dir, int *n_nuclei) {
  int pos[64], np = seam_grid(pos);
  g_autofree uint8_t *px = g_new(uint8_t, FIELD * FIELD * 3);
  for (int i = 0; i < FIELD * FIELD; i++)
    px[3 * i] = 200, px[3 * i + 1] = 214, px[3 * i + 2] = 224;
  *n_nuclei = np * np;
  for (int pass = 0; pass < 2; pass++)
    for (int j = 0; j < np; j++)
      for (int i = 0; i < np; i++) {
        int r = pass ? RADIUS : 3 * RADIUS;
        const uint8_t cyto[3] = {170, 190, 215}, nuc[3] = {60, 60, 130};
        for (int y = pos[j] - r; y <= pos[j] + r; y++)
          for (int x = pos[i] - r; x <= pos[i] + r; x++)
            if ((x - pos[i]) * (x - pos[i]) + (y - pos[j]) * (y - pos[j]) <= r * r)
              memcpy(px + 3 * ((size_t) y * FIELD + x), pass ? nuc : cyto, 3);
      }
  char *path = g_build_filename(dir, "lbc-seams.tif", NULL);
  g_autoptr(VipsImage) img =
      vips_image_new_from_memory(px, FIELD * FIELD * 3, FIELD, FIELD, 3, VIPS_FORMAT_UCHAR);
  cr_assert(img);
  /* 0.7 µm/px = 1428.57 px/mm */
  cr_assert(!vips_tiffsave(img, path, "xres", 1000 / 0.7, "yres", 1000 / 0.7, "resunit",
                           VIPS_FOREIGN_TIFF_RESUNIT_CM, "tile", TRUE, NULL),
            "%s", vips_error_buffer());
  return path;
}

Test(cytology, cells_on_tile_seams_are_counted_once, .timeout = 300) {
  cr_assert(vips_init("eosin-tests") == 0);
  g_autofree char *dir = tmp_dir();
  int n;
  g_autofree char *field = write_seam_field(dir, &n);
  g_autofree char *cfg = cyto_config(3, 0, "");
  g_autofree char *out = g_build_filename(dir, "out", NULL);
  EosinRunResult res;
  run_config_ok(cfg, field, out, NULL, &res);
  JsonObject *s = json_node_get_object(res.scores);
  cr_expect_gt(res.tiles_analyzed, 16, "the field spans several tiles");
  cr_expect_eq(json_object_get_int_member(s, "cells"), n, "cells %" G_GINT64_FORMAT " of %d",
               json_object_get_int_member(s, "cells"), n);
  /* each nucleus once, where it was drawn */
  g_autofree char *csv = g_build_filename(res.outdir, "cells.csv", NULL);
  g_autoptr(GPtrArray) rows = read_csv_rows(csv);
  int pos[64], np = seam_grid(pos);
  g_autofree int *nucleus = expect_seam_nuclei_once(rows, pos, np);
  /* the gallery: a PNG of the top cells; the GeoJSON parses */
  g_autofree char *gal = g_build_filename(res.outdir, "gallery.png", NULL);
  g_autoptr(VipsImage) g = vips_image_new_from_file(gal, NULL);
  cr_assert(g, "gallery.png: %s", vips_error_buffer());
  cr_expect_gt(g->Xsize, 600);
  cr_expect_gt(g->Ysize, 4 * 96, "24 cells in rows of 6");
  g_autofree char *gj = g_build_filename(res.outdir, "suspicious-cells.geojson", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GError) err = NULL;
  cr_expect(json_parser_load_from_file(p, gj, &err), "%s", err ? err->message : "");
  JsonObject *tri = json_object_get_object_member(s, "triage");
  cr_expect(json_object_get_boolean_member(tri, "assessable"));
  JsonArray *top = json_object_get_array_member(s, "top_cells");
  cr_expect_eq(json_array_get_length(top), 24);
  /* one ranking, the gallery's (issue 21: gallery #7 was report rank 8):
   * one per place (no two within half the 48 µm window), most suspicious
   * first, ranks 1.. in order */
  double r = 24 / 0.7;
  for (guint i = 0; i < json_array_get_length(top); i++) {
    JsonObject *a = json_array_get_object_element(top, i);
    cr_expect_eq(json_object_get_int_member(a, "rank"), (gint64) i + 1);
    if (i)
      cr_expect_leq(json_object_get_double_member(a, "suspicion"),
                    json_object_get_double_member(json_array_get_object_element(top, i - 1),
                                                  "suspicion"));
    for (guint j = 0; j < i; j++) {
      JsonObject *b = json_array_get_object_element(top, j);
      double dx = json_object_get_double_member(a, "x") - json_object_get_double_member(b, "x");
      double dy = json_object_get_double_member(a, "y") - json_object_get_double_member(b, "y");
      cr_expect_geq(dx * dx + dy * dy, r * r, "top cells %u and %u are one place", j + 1, i + 1);
    }
  }
  eosin_run_result_clear(&res);
}

/* QuPath shows a slide with bounds (here from 700,450) cropped to them:
 * suspicious-cells.geojson's circles are centred on the cells less the
 * bounds, cells.csv keeps level-0 pixels. */
Test(cytology, geojson_is_in_qupath_coordinates_of_a_slide_with_bounds) {
  EosinCytoCell cell = {.x = 1000, .y = 600, .nucleus_area_um2 = 50, .p_abnormal = 0.9f,
                        .p_class = 0.9f};
  char *classes[] = {"abnormal", NULL};
  EosinSlideInfo info = {.name = "leica", .has_bounds = true, .bounds_x = 700, .bounds_y = 450};
  g_autofree char *dir = tmp_dir();
  g_autofree char *gj = g_build_filename(dir, "suspicious-cells.geojson", NULL);
  g_autofree char *csv = g_build_filename(dir, "cells.csv", NULL);
  g_autoptr(GError) err = NULL;
  size_t written = 0;
  cr_assert(_eosin_cyto_geojson_write(gj, &info, &cell, 1, 0.5, 10, 0.25, classes, &written,
                                      &err),
            "%s", err ? err->message : "");
  cr_assert(_eosin_cyto_csv_write(csv, &cell, 1, classes, &err), "%s", err ? err->message : "");
  cr_expect_eq(written, 1);
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_file(p, gj, &err), "%s", err ? err->message : "");
  JsonArray *f = json_object_get_array_member(json_node_get_object(json_parser_get_root(p)),
                                              "features");
  cr_assert_eq(json_array_get_length(f), 1);
  JsonArray *ring = json_array_get_array_element(
      json_object_get_array_member(
          json_object_get_object_member(json_array_get_object_element(f, 0), "geometry"),
          "coordinates"),
      0);
  double cx = 0, cy = 0;
  for (guint k = 0; k < 16; k++) {
    JsonArray *pt = json_array_get_array_element(ring, k);
    cx += json_array_get_double_element(pt, 0) / 16;
    cy += json_array_get_double_element(pt, 1) / 16;
  }
  cr_expect(fabs(cx - 300) < 0.1 && fabs(cy - 150) < 0.1, "centre %.2f,%.2f", cx, cy);
  g_autoptr(GPtrArray) rows = read_csv_rows(csv);
  cr_assert_eq(rows->len, 1);
  cr_expect_str_eq(((char **) rows->pdata[0])[0], "1000.0", "cells.csv: level-0");
}

Test(cytology, config_errors_name_file_key_and_value) {
  struct {
    const char *extra, *want;
  } cases[] = {
      {"colour = blue\n", "[cytology] colour = 'blue': unknown key"},
      {"cell_weight = 2\n", "[cytology] cell_weight = '2'"},
      {"min_cells = many\n", "[cytology] min_cells = 'many'"},
      {"cell_window_um = 80\n", "[cytology] cell_window_um = 80 is 114 px"},
      {"adequacy_exclude = normal_columnar, normal_columnar\n",
       "adequacy_exclude = 'normal_columnar, normal_columnar': a name given twice"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *cfgpath = cyto_config(2, 0, cases[i].extra);
    g_autofree char *what = g_strdup_printf("case %zu", i);
    expect_init_error("cytology", cfgpath, cases[i].want, what);
  }
}

/* A config with only what init reads: [model] lines @model, [cytology]
 * lines @cyto; the cell classes are a..g. */
static char *bare_config(const char *model, const char *cyto) {
  g_autofree char *field = model_path("cytology-field.onnx");
  g_autofree char *cell = model_path("cytology-cell.onnx");
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = t\nanalyzer = cytology\n[tiling]\ntile_size = 256\noverlap = 80\n"
      "mpp = 0.7\n[model]\npath = %s\nclasses = NL, LSIL, HSIL, SCC\n%s"
      "[cytology]\ncell_model = %s\ncell_classes = a, b, c, d, e, f, g\n%s",
      field, model, cell, cyto);
  return write_config(text);
}

Test(cytology, abnormal_class_must_be_a_cell_class) {
  g_autofree char *cfgpath =
      bare_config("activation = softmax\n", "cell_abnormal = a, koilocyte\n");
  expect_init_error("cytology", cfgpath, "'koilocyte' is not one of cell_classes",
                    "cell_abnormal");
}

/* Glass alone: no tissue, an error naming the slide, not a triage. */
Test(cytology, empty_slide_is_refused, .timeout = 120) {
  cr_assert(vips_init("eosin-tests") == 0);
  g_autofree char *dir = tmp_dir();
  g_autofree uint8_t *px = g_new(uint8_t, 600 * 600 * 3);
  for (int i = 0; i < 600 * 600 * 3; i++)
    px[i] = (uint8_t) (214 + i % 5);
  g_autofree char *path = g_build_filename(dir, "glass.tif", NULL);
  g_autoptr(VipsImage) img =
      vips_image_new_from_memory(px, 600 * 600 * 3, 600, 600, 3, VIPS_FORMAT_UCHAR);
  cr_assert(!vips_tiffsave(img, path, "xres", 1000 / 0.7, "yres", 1000 / 0.7, "resunit",
                           VIPS_FOREIGN_TIFF_RESUNIT_CM, "tile", TRUE, NULL));
  g_autofree char *cfg2 = cyto_config(2, 0.02, "");
  g_autofree char *out = g_build_filename(dir, "out", NULL);
  const char *argv[] = {"run", "--task", cfg2, path, "-o", out, NULL};
  g_autofree char *o = NULL, *e = NULL;
  int rc = run_eosin(argv, &o, &e);
  cr_expect_eq(rc, 1, "exit %d: %s", rc, e);
  cr_expect(e && strstr(e, "no tissue found") && strstr(e, "glass"), "%s", e);
}

/* A fluorescence scan (OpenSlide's DAPI NDPI): a report that says why,
 * no triage. */
Test(cytology, fluorescence_slide_gets_no_triage, .timeout = 300) {
  g_autofree char *slide = shared_data("slides/fluorescence-dapi.ndpi");
  REQUIRE_SHARED(slide, "slides/fluorescence-dapi.ndpi");
  g_autofree char *cfg = cyto_config(4, 0.02, "");
  g_autofree char *dir = tmp_dir();
  EosinRunResult res;
  run_config_ok(cfg, slide, dir, NULL, &res);
  JsonObject *s = json_node_get_object(res.scores);
  JsonObject *t = json_object_get_object_member(s, "triage");
  cr_expect(!json_object_get_boolean_member(t, "assessable"));
  cr_expect(json_object_get_null_member(t, "category"));
  const char *why = json_object_get_string_member(t, "reason");
  cr_expect(why && strstr(why, "fluorescence"), "%s", why);
  cr_expect_gt(json_array_get_length(json_object_get_array_member(s, "warnings")), 0);
  eosin_run_result_clear(&res);
}

/* `eosin predict` with [model] predict_center_crop = 0.5 sees the centre
 * of a field: a 512 px field with a noisy border predicts as its central
 * 256 px alone. */
Test(cytology, predict_center_crop_sees_the_centre, .timeout = 120) {
  cr_assert(vips_init("eosin-tests") == 0);
  g_autofree char *dir = tmp_dir();
  g_autofree char *in_dir = g_build_filename(dir, "fields", NULL);
  cr_assert(g_mkdir_with_parents(in_dir, 0755) == 0);
  g_autofree uint8_t *field = g_new(uint8_t, 512 * 512 * 3);
  g_autofree uint8_t *centre = g_new(uint8_t, 256 * 256 * 3);
  for (int y = 0; y < 512; y++)
    for (int x = 0; x < 512; x++) {
      uint8_t *p = field + 3 * (y * 512 + x);
      bool in = x >= 128 && x < 384 && y >= 128 && y < 384;
      /* a blocky pattern inside, noise outside */
      for (int k = 0; k < 3; k++)
        p[k] = in ? (uint8_t) (120 + ((x / 9 + y / 7 + k) % 5) * 25)
                  : (uint8_t) ((x * 31 + y * 17 + k * 7) % 256);
      if (in)
        memcpy(centre + 3 * ((y - 128) * 256 + x - 128), p, 3);
    }
  const char *names[2] = {"a-field.png", "b-centre.png"};
  const uint8_t *px[2] = {field, centre};
  const int side[2] = {512, 256};
  for (int i = 0; i < 2; i++) {
    g_autofree char *p = g_build_filename(in_dir, names[i], NULL);
    g_autoptr(VipsImage) im = vips_image_new_from_memory(px[i], (size_t) side[i] * side[i] * 3,
                                                         side[i], side[i], 3, VIPS_FORMAT_UCHAR);
    cr_assert(!vips_pngsave(im, p, NULL), "%s", vips_error_buffer());
  }
  double probs[2][2][4];
  for (int crop = 0; crop < 2; crop++) {
    /* crop = 1: the field with predict_center_crop 0.5, the centre whole;
     * crop = 0: both whole */
    for (int i = 0; i < 2; i++) {
      g_autofree char *crop_key =
          g_strdup_printf("predict_center_crop = %g\n", crop && i == 0 ? 0.5 : 1);
      g_autofree char *cfg2 = cyto_config_full(2, 0, crop_key, "");
      g_autoptr(GError) err = NULL;
      g_autoptr(EosinConfig) cfg = eosin_config_load(cfg2, &err);
      cr_assert(cfg, "%s", err ? err->message : "");
      g_autofree char *img = g_build_filename(in_dir, names[i], NULL);
      g_autofree char *list = g_build_filename(dir, "list.txt", NULL);
      cr_assert(g_file_set_contents(list, img, -1, NULL));
      g_autofree char *csv = g_build_filename(dir, "p.csv", NULL);
      EosinPredictResult res;
      cr_assert(eosin_predict(cfg, list, csv, NULL, &res, &err), "%s", err ? err->message : "");
      eosin_predict_result_clear(&res);
      g_autoptr(GPtrArray) rows = read_csv_rows(csv);
      cr_assert_eq(rows->len, 1);
      for (int q = 0; q < 4; q++)
        probs[crop][i][q] = g_ascii_strtod(((char **) rows->pdata[0])[1 + q], NULL);
    }
  }
  double same = 0, whole = 0;
  for (int q = 0; q < 4; q++) {
    same = MAX(same, fabs(probs[1][0][q] - probs[1][1][q]));
    whole = MAX(whole, fabs(probs[0][0][q] - probs[0][1][q]));
  }
  cr_expect_lt(same, 1e-4, "cropped field vs its centre: %g apart", same);
  cr_expect_gt(whole, 1e-3, "uncropped, the border must matter (%g apart)", whole);
}

/* Real LBC fields end to end (../shared): a slide of a normal patient's
 * fields is NILM, one of an HSIL patient's is HSIL. The reference models
 * saw these patients in training, so this checks the wiring (tile
 * averaging, normalisation, channel order, the triage), not accuracy:
 * that is scripts/bench/bench-cytology, on held-out patients. The category alone
 * survives a wrong normalisation or channel order, so the abnormal score
 * must be clear too (0.13 and 0.96 with the shipped models; BGR input
 * gives 0.31 and 0.63). */
Test(cytology, lbc_mosaics_triaged_end_to_end, .timeout = 300) {
  g_autofree char *lbc = shared_data("cytology/lbc/labels.csv");
  REQUIRE_SHARED(lbc, "cytology/lbc/labels.csv");
  g_autofree char *data = g_path_get_dirname(lbc);
  g_autofree char *dir = tmp_dir();
  const char *groups[2] = {"NL_10", "HSIL_2"}, *want[2] = {"NILM", "HSIL"};
  const double lo[2] = {0, 0.93}, hi[2] = {0.25, 1};
  for (int i = 0; i < 2; i++) {
    g_autofree char *name = g_strdup_printf("%s.svs", groups[i]);
    g_autofree char *slide = g_build_filename(dir, name, NULL);
    char *argv[] = {"scripts/data/make-lbc-slide", "--data", data, "--group", (char *) groups[i],
                    "--grid", "3", "--out", slide, NULL};
    g_autoptr(GError) err = NULL;
    int status = -1;
    cr_assert(g_spawn_sync(NULL, argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, NULL,
                           &status, &err),
              "%s", err ? err->message : "");
    cr_assert(g_spawn_check_wait_status(status, &err), "make-lbc-slide: %s", err->message);
    g_autofree char *cfg = cyto_config(4, 0.02, "");
    g_autofree char *out = g_build_filename(dir, "out", NULL);
    EosinRunResult res;
    run_config_ok(cfg, slide, out, NULL, &res);
    JsonObject *t = json_object_get_object_member(json_node_get_object(res.scores), "triage");
    cr_expect(json_object_get_boolean_member(t, "assessable"));
    cr_expect_str_eq(json_object_get_string_member(t, "category"), want[i], "%s: %s, abnormal %.3f",
                     groups[i], json_object_get_string_member(t, "category"),
                     json_object_get_double_member(t, "abnormal"));
    double a = json_object_get_double_member(t, "abnormal");
    cr_expect(a >= lo[i] && a <= hi[i], "%s: abnormal %.3f, expected %.2f..%.2f", groups[i], a,
              lo[i], hi[i]);
    eosin_run_result_clear(&res);
  }
}

/* The triage needs probabilities: a tile model without softmax is refused
 * rather than turned into negative "probabilities". */
Test(cytology, tile_model_must_give_probabilities) {
  g_autofree char *cfgpath = bare_config("", "cell_abnormal = d\n");
  expect_init_error("cytology", cfgpath, "[model] activation = 'none'", "no activation");
}

/* A slide of @n fields: @fp of them normal fields the tile model calls
 * abnormal (P(NL) 0.3), @lesion of them HSIL, the rest normal. */
static float *slide_fields(int n, int fp, int lesion) {
  float *p = g_new(float, 4 * n);
  for (int t = 0; t < n; t++) {
    float *v = p + 4 * t;
    if (t < lesion)
      v[0] = 0.02f, v[1] = 0.08f, v[2] = 0.85f, v[3] = 0.05f;
    else if (t < lesion + fp)
      v[0] = 0.3f, v[1] = 0.6f, v[2] = 0.08f, v[3] = 0.02f;
    else
      v[0] = 0.97f, v[1] = 0.02f, v[2] = 0.007f, v[3] = 0.003f;
  }
  return p;
}

Test(cytology, the_count_rule_finds_a_small_lesion_the_mean_misses) {
  /* 600 fields; the tile model's 1.6 % of normal fields called abnormal
   * is 9.6 a normal slide: a clean slide with 10 such fields passes, the
   * same slide with a planted 30-field (5 %) HSIL lesion is flagged HSIL,
   * where the mean over every field stays NILM */
  EosinTriageRule r = rule();
  r.count = true, r.field_fp_rate = 0.016, r.alpha = 0.001;
  g_autofree float *clean = slide_fields(600, 10, 0), *lesion = slide_fields(600, 10, 30);
  EosinTriage t;
  _eosin_cyto_triage(&r, clean, 4, 600, NULL, 0, &t);
  cr_expect_eq(t.category, 0, "the clean slide is NILM (chance %g)", t.chance);
  cr_expect_float_eq(t.fields_expected, 9.6, 1e-9);
  cr_expect_eq(t.lesion_tiles, 10);
  cr_expect_gt(t.chance, 0.001);
  _eosin_cyto_triage(&r, lesion, 4, 600, NULL, 0, &t);
  cr_expect_eq(t.category, 2, "the planted lesion is HSIL (chance %g), got %d", t.chance,
               t.category);
  cr_expect_eq(t.lesion_tiles, 40);
  cr_expect_lt(t.chance, 1e-6);
  EosinTriageRule m = rule();
  _eosin_cyto_triage(&m, lesion, 4, 600, NULL, 0, &t);
  cr_expect_eq(t.category, 0, "the mean over every field dilutes it: NILM (abnormal %.3f)",
               t.abnormal);
  /* the tail itself: P(X >= 2), X ~ Bin(3, 0.5) = 1/2; P(X >= 0) = 1 */
  cr_expect_float_eq(_eosin_binomial_tail(2, 3, 0.5), 0.5, 1e-12);
  cr_expect_float_eq(_eosin_binomial_tail(0, 10, 0.1), 1.0, 1e-12);
  cr_expect_float_eq(_eosin_binomial_tail(1, 10, 0.1), 1 - pow(0.9, 10), 1e-12);
}
