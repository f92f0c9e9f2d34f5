/*
 * test-tiles.c — tiles.geojson, the per-tile results as QuPath detections,
 * read back from real runs of the eosin binary: one Feature per tiles.csv
 * row in its order, each a closed 5-point Polygon over that row's tile in
 * QuPath's coordinates (level-0 less the slide's bounds offset: checked on
 * the Leica slide, whose bounds start at 700,450), objectType detection,
 * measurements equal to the csv's numbers and absent where the csv field
 * is empty; the zip variant holding the same bytes; off writing nothing;
 * a result without the file counted as stale; the key's bad values
 * refused naming file, key and value.
 */
#include "test-util.h"

#include <math.h>
#include <zlib.h>

/* A stain (or, @ihc, Ki-67) config with @overlay_extra appended to [overlay]. */
static char *config_with(bool ihc, const char *overlay_extra) {
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = tiles-test\nanalyzer = %s\n"
      "[tiling]\ntile_size = %d\noverlap = %d\nmpp = %s\n"
      "[tissue]\nmin_fraction = %s\nthumbnail_mpp = 4\nmin_object_um2 = 5000\n"
      "[scheduler]\nreaders = 2\nbatch_size = 8\nqueue_depth = 2\n"
      "[overlay]\nchannel = %s\ncolormap = viridis\nalpha = 0.8\n%s"
      "%s",
      ihc ? "ihc" : "stain", ihc ? 768 : 128, ihc ? 96 : 0, ihc ? "0.5" : "1.0",
      ihc ? "0.05" : "0.25", ihc ? "positive_per_mm2" : "hematoxylin",
      overlay_extra ? overlay_extra : "",
      ihc ? "[ihc]\nmarker = ki67\ndetection_image = od_sum\nthreshold = 0.2\n"
            "background_radius_um = 0\nsigma_um = 2\nmin_area_um2 = 10\nmax_area_um2 = 400\n"
            "cell_expansion_um = 5\nthreshold_1plus = 0.2\nsingle_threshold = true\n"
          : "[stain]\nmatrix = hed\n");
  return write_config(text);
}

/* Runs `eosin run --task @cfg -o @out @slide`, expecting success. */
static void run_cli(const char *cfg, const char *slide, const char *out) {
  const char *argv[] = {"run", "--task", cfg, "-o", out, slide, NULL};
  g_autofree char *so = NULL, *se = NULL;
  cr_assert_eq(run_eosin(argv, &so, &se), 0, "eosin run failed: %s", se);
}

static JsonNode *parse_json(const char *text, gsize len) {
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GError) err = NULL;
  cr_assert(json_parser_load_from_data(p, text, (gssize) len, &err), "tiles.geojson: %s",
            err ? err->message : "");
  return json_node_copy(json_parser_get_root(p));
}

/* The slide's bounds offset as report.json states it. */
static void report_bounds(const char *dir, gint64 *bx, gint64 *by) {
  g_autofree char *path = g_build_filename(dir, "report.json", NULL);
  g_autofree char *text = slurp(path);
  g_autoptr(JsonNode) root = parse_json(text, strlen(text));
  JsonObject *b = json_object_get_object_member(
      json_object_get_object_member(json_node_get_object(root), "slide"), "bounds");
  *bx = json_object_get_int_member(b, "x");
  *by = json_object_get_int_member(b, "y");
}

static double num(const char *s) {
  char *end;
  double v = g_ascii_strtod(s, &end);
  cr_assert(*s && !*end, "'%s' is not a number", s);
  return v;
}

/* Checks @geojson (its text) against the tiles.csv of @dir: returns the
 * number of empty csv fields seen (measurements that must be absent). */
static int expect_matches_csv(const char *geojson, gsize len, const char *dir, gint64 bx,
                              gint64 by) {
  g_autofree char *csvpath = g_build_filename(dir, "tiles.csv", NULL);
  g_autofree char *csv = slurp(csvpath);
  g_auto(GStrv) header = g_strsplit(csv, "\n", 2);
  g_auto(GStrv) cols = g_strsplit(header[0], ",", -1);
  g_autoptr(GPtrArray) rows = read_csv_rows(csvpath);
  cr_assert_str_eq(cols[3], "x");
  cr_assert_str_eq(cols[7], "tissue");
  int n_cols = g_strv_length(cols);

  g_autoptr(JsonNode) root = parse_json(geojson, len);
  JsonObject *o = json_node_get_object(root);
  cr_expect_str_eq(json_object_get_string_member(o, "type"), "FeatureCollection");
  JsonArray *feats = json_object_get_array_member(o, "features");
  cr_assert_eq(json_array_get_length(feats), rows->len, "%u features for %u tiles.csv rows",
               json_array_get_length(feats), rows->len);
  cr_assert_gt(rows->len, 0);
  int empty = 0;
  for (guint r = 0; r < rows->len; r++) {
    char **f = rows->pdata[r];
    JsonObject *ft = json_array_get_object_element(feats, r);
    cr_expect_str_eq(json_object_get_string_member(ft, "type"), "Feature");
    JsonObject *g = json_object_get_object_member(ft, "geometry");
    cr_expect_str_eq(json_object_get_string_member(g, "type"), "Polygon");
    JsonArray *rings = json_object_get_array_member(g, "coordinates");
    cr_assert_eq(json_array_get_length(rings), 1);
    JsonArray *ring = json_array_get_array_element(rings, 0);
    cr_assert_eq(json_array_get_length(ring), 5, "a closed ring of 4 corners");
    /* QuPath's pixel (0, 0) is level-0 (bounds x, bounds y) */
    gint64 x0 = (gint64) num(f[3]) - bx, y0 = (gint64) num(f[4]) - by;
    gint64 x1 = x0 + (gint64) num(f[5]), y1 = y0 + (gint64) num(f[6]);
    const gint64 want[5][2] = {{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}};
    for (int k = 0; k < 5; k++) {
      JsonArray *pt = json_array_get_array_element(ring, k);
      cr_expect_eq(json_array_get_int_element(pt, 0), want[k][0], "tile %s corner %d x", f[0], k);
      cr_expect_eq(json_array_get_int_element(pt, 1), want[k][1], "tile %s corner %d y", f[0], k);
    }
    JsonObject *pr = json_object_get_object_member(ft, "properties");
    cr_expect_str_eq(json_object_get_string_member(pr, "objectType"), "detection");
    JsonObject *m = json_object_get_object_member(pr, "measurements");
    cr_assert(m, "tile %s has measurements", f[0]);
    int n_m = 0;
    for (int c = 7; c < n_cols; c++) {
      if (!*f[c]) {
        empty++;
        cr_expect(!json_object_has_member(m, cols[c]), "tile %s: empty csv %s, a measurement",
                  f[0], cols[c]);
        continue;
      }
      n_m++;
      cr_assert(json_object_has_member(m, cols[c]), "tile %s has no %s", f[0], cols[c]);
      double want_v = num(f[c]), got = json_object_get_double_member(m, cols[c]);
      /* %.4g: 4 significant digits */
      cr_expect(fabs(got - want_v) <= 6e-4 * fabs(want_v) + 1e-12,
                "tile %s %s: %.9g in tiles.geojson, %.9g in tiles.csv", f[0], cols[c], got,
                want_v);
    }
    cr_expect_eq(json_object_get_size(m), (guint) n_m, "tile %s: no other measurements", f[0]);
  }
  return empty;
}

static char *file_in(const char *dir, const char *name, gsize *len) {
  g_autofree char *p = g_build_filename(dir, name, NULL);
  char *text = NULL;
  cr_assert(g_file_get_contents(p, &text, len, NULL), "cannot read %s", p);
  return text;
}

/* Every feature's polygon, measurements and order on the stain task. */
Test(tiles, geojson_matches_tiles_csv) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *cfg = config_with(false, NULL);
  g_autofree char *slide = td("tissue-a.svs");
  run_cli(cfg, slide, dir);
  g_autofree char *res = g_build_filename(dir, "tissue-a", NULL);
  gint64 bx, by;
  report_bounds(res, &bx, &by);
  cr_assert(bx == 0 && by == 0, "an Aperio slide has no bounds");
  gsize len;
  g_autofree char *gj = file_in(res, "tiles.geojson", &len);
  expect_matches_csv(gj, len, res, 0, 0);
  /* compact: one feature a line, no pretty printing */
  cr_expect(!strstr(gj, "  ") && !strstr(gj, ": "));
  /* listed among the outputs, and the result complete */
  g_autofree char *report = file_in(res, "report.json", NULL);
  cr_expect(strstr(report, "\"tiles.geojson\""), "report.json lists tiles.geojson");
  cr_expect(output_complete(cfg, slide, dir));
}

/* A Leica slide scanned from 700,450: QuPath shows it cropped to its
 * bounds, so every polygon is shifted by them from tiles.csv's level-0
 * numbers (one that is not sits 700 px off its tile in QuPath). */
Test(tiles, geojson_is_in_qupath_coordinates_of_a_slide_with_bounds) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *cfg = config_with(false, NULL);
  g_autofree char *slide = td("blocks-leica.scn");
  run_cli(cfg, slide, dir);
  g_autofree char *res = g_build_filename(dir, "blocks-leica", NULL);
  gint64 bx, by;
  report_bounds(res, &bx, &by);
  cr_assert(bx == 700 && by == 450, "bounds %" G_GINT64_FORMAT ",%" G_GINT64_FORMAT, bx, by);
  gsize len;
  g_autofree char *gj = file_in(res, "tiles.geojson", &len);
  expect_matches_csv(gj, len, res, bx, by);
  /* and the tiles lie in the cropped image, from its top left */
  g_autoptr(JsonNode) root = parse_json(gj, len);
  JsonArray *feats = json_object_get_array_member(json_node_get_object(root), "features");
  gint64 min_x = G_MAXINT64, min_y = G_MAXINT64;
  for (guint i = 0; i < json_array_get_length(feats); i++) {
    JsonArray *ring = json_array_get_array_element(
        json_object_get_array_member(
            json_object_get_object_member(json_array_get_object_element(feats, i), "geometry"),
            "coordinates"),
        0);
    min_x = MIN(min_x, json_array_get_int_element(json_array_get_array_element(ring, 0), 0));
    min_y = MIN(min_y, json_array_get_int_element(json_array_get_array_element(ring, 0), 1));
  }
  cr_expect(min_x >= 0 && min_y >= 0 && min_x < 2501 && min_y < 1903,
            "first corner %" G_GINT64_FORMAT ",%" G_GINT64_FORMAT, min_x, min_y);
}

/* Ki-67 on blocks of plain colour: no cells, so the per-cell channels have
 * no value: empty in tiles.csv, absent in tiles.geojson (JSON has no NaN). */
Test(tiles, values_without_a_number_are_left_out, .timeout = 120) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *cfg = config_with(true, NULL);
  g_autofree char *slide = td("blocks-aperio.svs");
  run_cli(cfg, slide, dir);
  g_autofree char *res = g_build_filename(dir, "blocks-aperio", NULL);
  gsize len;
  g_autofree char *gj = file_in(res, "tiles.geojson", &len);
  int empty = expect_matches_csv(gj, len, res, 0, 0);
  cr_expect_gt(empty, 0, "some tiles.csv fields are empty");
  cr_expect(!strstr(gj, "nan") && !strstr(gj, "NaN") && !strstr(gj, "null") &&
            !strstr(gj, "inf"));
}

static guint32 le32(const guint8 *p) {
  return p[0] | (guint32) p[1] << 8 | (guint32) p[2] << 16 | (guint32) p[3] << 24;
}

static guint le16(const guint8 *p) {
  return p[0] | p[1] << 8;
}

/* The one entry of a zip archive (end record, central directory, local
 * header, raw deflate), its CRC-32 and sizes checked. Caller frees. */
static char *unzip_one(const guint8 *z, gsize n, char **name, gsize *len) {
  cr_assert_geq(n, 22 + 46 + 30);
  const guint8 *end = z + n - 22;
  cr_assert_eq(le32(end), 0x06054b50, "the end record closes the file");
  cr_assert_eq(le16(end + 10), 1, "one entry");
  const guint8 *cd = z + le32(end + 16);
  cr_assert_eq(le32(cd), 0x02014b50);
  cr_assert_eq(le16(cd + 10), 8, "deflate");
  guint32 crc = le32(cd + 16), csize = le32(cd + 20), usize = le32(cd + 24);
  guint nlen = le16(cd + 28);
  *name = g_strndup((const char *) cd + 46, nlen);
  const guint8 *lh = z + le32(cd + 42);
  cr_assert_eq(le32(lh), 0x04034b50);
  cr_assert_eq(le32(lh + 14), crc, "local header and central directory agree");
  cr_assert_eq(le32(lh + 18), csize);
  cr_assert_eq(le32(lh + 22), usize);
  const guint8 *data = lh + 30 + le16(lh + 26) + le16(lh + 28);
  cr_assert_leq(data + csize, cd);
  char *out = g_malloc(usize + 1);
  z_stream s = {0};
  cr_assert_eq(inflateInit2(&s, -15), Z_OK);
  s.next_in = (Bytef *) data, s.avail_in = csize;
  s.next_out = (Bytef *) out, s.avail_out = usize;
  cr_expect_eq(inflate(&s, Z_FINISH), Z_STREAM_END);
  cr_expect_eq(s.total_out, usize);
  inflateEnd(&s);
  out[usize] = 0;
  cr_expect_eq(crc32(0, (const Bytef *) out, usize), crc, "CRC-32");
  *len = usize;
  return out;
}

/* zip: tiles.geojson.zip (QuPath imports .zip, not .gz) holding exactly
 * the plain file's bytes; off: neither file, and the result complete. */
Test(tiles, zip_holds_the_plain_file_and_off_writes_none) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *slide = td("tissue-b.svs");
  const char *modes[] = {"plain", "zip", "off"};
  char *out[3];
  for (int m = 0; m < 3; m++) {
    g_autofree char *line = g_strdup_printf("tiles_geojson = %s\n", modes[m]);
    g_autofree char *cfg = config_with(false, line);
    out[m] = g_build_filename(dir, modes[m], NULL);
    run_cli(cfg, slide, out[m]);
    cr_expect(output_complete(cfg, slide, out[m]), "tiles_geojson = %s: complete", modes[m]);
  }
  g_autofree char *r0 = g_build_filename(out[0], "tissue-b", NULL);
  g_autofree char *r1 = g_build_filename(out[1], "tissue-b", NULL);
  g_autofree char *r2 = g_build_filename(out[2], "tissue-b", NULL);
  gsize plain_len, zip_len, len;
  g_autofree char *plain = file_in(r0, "tiles.geojson", &plain_len);
  g_autofree char *zip = file_in(r1, "tiles.geojson.zip", &zip_len);
  g_autofree char *name = NULL;
  g_autofree char *inner = unzip_one((const guint8 *) zip, zip_len, &name, &len);
  cr_expect_str_eq(name, "tiles.geojson");
  cr_expect_eq(len, plain_len);
  cr_expect(len == plain_len && !memcmp(inner, plain, len), "the zip holds tiles.geojson");
  cr_expect_lt(zip_len, plain_len / 3, "deflate shrinks it (%zu of %zu bytes)", zip_len,
               plain_len);
  expect_matches_csv(inner, len, r1, 0, 0);
  g_autofree char *p1 = g_build_filename(r1, "tiles.geojson", NULL);
  g_autofree char *p2 = g_build_filename(r2, "tiles.geojson", NULL);
  g_autofree char *p3 = g_build_filename(r2, "tiles.geojson.zip", NULL);
  cr_expect(!g_file_test(p1, G_FILE_TEST_EXISTS), "zip writes no plain file");
  cr_expect(!g_file_test(p2, G_FILE_TEST_EXISTS) && !g_file_test(p3, G_FILE_TEST_EXISTS),
            "off writes none");
  g_autofree char *report = file_in(r2, "report.json", NULL);
  cr_expect(!strstr(report, "\"tiles.geojson"), "off: not among the outputs");
  for (int m = 0; m < 3; m++)
    g_free(out[m]);
}

/* A result an earlier Eosin wrote (everything but tiles.geojson, sealed,
 * same config text) is stale for a config that writes it: a batch
 * recomputes it instead of skipping it. */
Test(tiles, a_result_without_tiles_geojson_is_stale) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *cfgpath = config_with(false, NULL);
  g_autofree char *slide = td("tissue-c.svs");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  /* the same config text, run as an Eosin without tiles.geojson would */
  g_free(cfg->tiles_geojson);
  cfg->tiles_geojson = g_strdup("off");
  EosinRunResult res;
  cr_assert(eosin_run_slide(cfg, slide, dir, NULL, &res, &err), "%s", err ? err->message : "");
  eosin_run_result_clear(&res);
  cr_expect(!output_complete(cfgpath, slide, dir));
  g_autoptr(EosinConfig) fresh = eosin_config_load(cfgpath, &err);
  EosinOutputState st;
  g_autofree char *why = NULL;
  cr_assert(eosin_output_check(fresh, slide, NULL, dir, &st, &why, &err));
  cr_expect_eq(st, EOSIN_OUTPUT_STALE);
  cr_expect(why && strstr(why, "tiles.geojson"), "why: %s", why ? why : "(none)");
  /* a batch recomputes it, and then it is complete */
  g_autofree char *list = g_build_filename(dir, "slides.txt", NULL);
  g_autofree char *line = g_strdup_printf("%s\n", slide);
  cr_assert(g_file_set_contents(list, line, -1, NULL));
  g_autofree char *outdir = g_strdup(dir);
  const char *argv[] = {"batch", "--task", cfgpath, "-o", outdir, "--manifest", list, NULL};
  g_autofree char *so = NULL, *se = NULL;
  cr_expect_eq(run_eosin(argv, &so, &se), 0, "batch: %s", se);
  cr_expect(output_complete(cfgpath, slide, dir), "after the batch: %s", se);
}

Test(tiles, bad_values_name_file_key_and_value) {
  const char *bad[] = {"gzip", "gz", "yes", "", "Plain"};
  g_autofree char *slide = td("tissue-a.svs");
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *line = g_strdup_printf("tiles_geojson = %s\n", bad[i]);
    g_autofree char *cfg = config_with(false, line);
    g_autofree char *dir = tmp_dir();
    const char *argv[] = {"run", "--task", cfg, "-o", dir, slide, NULL};
    g_autofree char *so = NULL, *se = NULL;
    cr_expect_eq(run_eosin(argv, &so, &se), 2, "'%s': exit 2 (usage or config)", bad[i]);
    g_autofree char *want = g_strdup_printf("[overlay] tiles_geojson = '%s'", bad[i]);
    cr_expect(strstr(se, cfg) && strstr(se, want) && strstr(se, "plain, zip, off"),
              "'%s': %s", bad[i], se);
  }
}
