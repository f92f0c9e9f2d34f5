/*
 * test-pipeline.c — the scheduler and tissue detector: identical results
 * for any number of reader threads, tissue masks on real slides (from
 * ../shared, skipped when absent) and on generated ones with known tissue,
 * and the config's strictness.
 */
#include "test-util.h"

#include <math.h>

static char *run_ok(const char *slide, int readers, int batch, char **outdir_out) {
  g_autofree char *cfgpath = stain_config(64, 1.0, 16, 0.25, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cr_assert(cfg);
  cfg->batch_size = batch;
  char *out = tmp_dir();
  EosinRunOptions o = {.readers_override = readers};
  EosinRunResult res;
  cr_assert(eosin_run_slide(cfg, slide, out, &o, &res, &err), "%s", err ? err->message : "");
  g_autofree char *csv = g_build_filename(res.outdir, "tiles.csv", NULL);
  char *text = slurp(csv);
  eosin_run_result_clear(&res);
  if (outdir_out)
    *outdir_out = out;
  else
    g_free(out);
  return text;
}

Test(pipeline, identical_results_for_any_thread_count) {
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *one = run_ok(slide, 1, 16, NULL);
  g_autofree char *three = run_ok(slide, 3, 5, NULL);
  g_autofree char *eight = run_ok(slide, 8, 1, NULL);
  cr_assert_gt(strlen(one), 1000);
  cr_expect_str_eq(one, three, "1 reader vs 3 readers, other batch size");
  cr_expect_str_eq(one, eight, "1 reader vs 8 readers, batch of 1");
}

Test(pipeline, report_is_complete_and_consistent) {
  g_autofree char *slide = td("tissue-b.svs");
  g_autofree char *out = NULL;
  g_autofree char *csv = run_ok(slide, 2, 16, &out);
  g_autofree char *report = g_build_filename(out, "tissue-b", "report.json", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_file(p, report, NULL));
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  cr_expect_str_eq(json_object_get_string_member(o, "status"), "complete");
  JsonObject *tiles = json_object_get_object_member(o, "tiles");
  gint64 analyzed = json_object_get_int_member(tiles, "analyzed");
  gint64 planned = json_object_get_int_member(tiles, "planned");
  gint64 skipped = json_object_get_int_member(tiles, "skipped_no_tissue");
  cr_expect_eq(analyzed + skipped, planned);
  int rows = 0;
  for (const char *c = csv; *c; c++)
    rows += *c == '\n';
  cr_expect_eq(rows - 1, analyzed, "one tiles.csv row per analysed tile");
  JsonObject *slide_o = json_object_get_object_member(o, "slide");
  cr_expect_float_eq(json_object_get_double_member(slide_o, "mpp_x"), 0.5, 1e-9);
  JsonObject *scores = json_object_get_object_member(o, "scores");
  /* the DAB-stained region exists: DAB is present but below haematoxylin+eosin */
  cr_expect_gt(json_object_get_double_member(scores, "mean_od_dab"), 0.01);
  JsonObject *timing = json_object_get_object_member(o, "timing");
  cr_expect_gt(json_object_get_double_member(timing, "tiles_per_s"), 0);
  /* nothing but the final folder is left in OUTDIR */
  g_autoptr(GDir) d = g_dir_open(out, 0, NULL);
  const char *name;
  int n = 0;
  while ((name = g_dir_read_name(d))) {
    n++;
    cr_expect_str_eq(name, "tissue-b");
  }
  cr_expect_eq(n, 1);
}

Test(tissue, generated_blocks_are_found_exactly) {
  g_autofree char *slide = td("blocks-aperio.svs");
  g_autofree char *cfgpath = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  g_autoptr(EosinSlide) s = eosin_slide_open(slide, 0, &err);
  cr_assert(s);
  EosinThumbnail t;
  EosinTissueMask m;
  cr_assert(eosin_slide_thumbnail(s, cfg->tissue_max_side, cfg->tissue_thumbnail_mpp, &t, &err));
  cr_assert(eosin_tissue_detect(&t, eosin_slide_get_info(s), cfg, &m, &err));
  /* the generator's sidecar lists the 400 x 400 px blocks */
  g_autofree char *json = g_strconcat(slide, ".json", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_file(p, json, NULL));
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  guint n_blocks = json_array_get_length(json_object_get_array_member(o, "blocks"));
  cr_assert_eq(n_blocks, 8);
  double want = n_blocks * 160000.0 / (3001.0 * 2003.0);
  cr_expect(fabs(m.fraction - want) < 0.05 * want, "tissue fraction %.4f, blocks %.4f",
            m.fraction, want);
  cr_expect_gt(eosin_tissue_fraction(&m, 300 + 100, 300 + 100, 200, 200), 0.98);
  cr_expect_lt(eosin_tissue_fraction(&m, 720, 320, 160, 160), 0.02, "the gap is glass");
  eosin_tissue_clear(&m);
  eosin_thumbnail_clear(&t);
}

static void tissue_of(const char *rel, double mpp, EosinTissueMask *m, EosinThumbnail *t,
                      EosinSlide **s) {
  g_autofree char *path = shared_data(rel);
  REQUIRE_SHARED(path, rel);
  g_autofree char *cfgpath = stain_config(256, 1.0, 0, 0.25, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cfg->tissue_thumbnail_mpp = 8;
  cfg->tissue_min_object_um2 = 50000;
  *s = eosin_slide_open(path, mpp, &err);
  cr_assert(*s, "%s", err ? err->message : "");
  cr_assert(eosin_slide_thumbnail(*s, cfg->tissue_max_side, cfg->tissue_thumbnail_mpp, t, &err));
  cr_assert(eosin_tissue_detect(t, eosin_slide_get_info(*s), cfg, m, &err));
}

Test(tissue, camelyon_tumour_lies_inside_tissue) {
  EosinTissueMask m;
  EosinThumbnail t;
  EosinSlide *s = NULL;
  /* the level-5 CAMELYON16 image carries no µm/px: 0.243 x 32 */
  tissue_of("slides/camelyon16-tumor_001-level5.tif", 7.78, &m, &t, &s);
  g_autofree char *maskpath = shared_data("slides/camelyon16-tumor_001-level5-tumor-mask.png");
  REQUIRE_SHARED(maskpath, "slides/camelyon16-tumor_001-level5-tumor-mask.png");
  g_autoptr(GError) err = NULL;
  /* read the official tumour mask through Eosin's own libvips reader */
  g_autoptr(EosinSlide) tm = eosin_slide_open(maskpath, 7.78, &err);
  cr_assert(tm, "%s", err ? err->message : "");
  const EosinSlideInfo *ti = eosin_slide_get_info(tm);
  g_autofree uint8_t *px = g_malloc(ti->width * ti->height * 3);
  cr_assert(eosin_slide_read_region(tm, 0, 0, 0, ti->width, ti->height, px, &err));
  int64_t tumour = 0, inside = 0;
  for (int64_t y = 0; y < ti->height; y += 2)
    for (int64_t x = 0; x < ti->width; x += 2)
      if (px[(y * ti->width + x) * 3] > 127) {
        tumour++;
        inside += eosin_tissue_fraction(&m, x, y, 1, 1) > 0.5;
      }
  cr_assert_gt(tumour, 1000);
  cr_expect_gt((double) inside / tumour, 0.97, "tumour pixels inside tissue: %.3f",
               (double) inside / tumour);
  cr_expect(m.fraction > 0.05 && m.fraction < 0.6, "tissue fraction %.3f", m.fraction);
  eosin_tissue_clear(&m);
  eosin_thumbnail_clear(&t);
  eosin_slide_free(s);
}

Test(tissue, cmu_small_region_has_tissue_and_glass) {
  EosinTissueMask m;
  EosinThumbnail t;
  EosinSlide *s = NULL;
  tissue_of("slides/CMU-1-Small-Region.svs", 0, &m, &t, &s);
  cr_expect(m.fraction > 0.2 && m.fraction < 0.8, "tissue fraction %.3f", m.fraction);
  eosin_tissue_clear(&m);
  eosin_thumbnail_clear(&t);
  eosin_slide_free(s);
}

Test(tissue, blank_slide_has_none) {
  g_autofree char *slide = td("blank.svs");
  g_autofree char *cfgpath = stain_config(64, 1.0, 0, 0.0, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  g_autofree char *out = tmp_dir();
  cr_assert_not(eosin_run_slide(cfg, slide, out, NULL, NULL, &err));
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_NO_TISSUE), "%s", err->message);
  cr_expect(strstr(err->message, "blank.svs"), "%s", err->message);
}

Test(config, strict_keys_and_values) {
  struct {
    const char *text, *needle;
  } cases[] = {
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\ntile_sise=256\n", "[tiling] tile_sise = '256': unknown key"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\ntile_size=8\n", "[tiling] tile_size = '8': out of range"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=abc\n", "[tiling] mpp = 'abc': not a number"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\ntile_size=256\n", "[tiling] mpp: required key is missing"},
      {"[task]\nname=t\nanalyzer=nope\n[tiling]\nmpp=1\n", "[task] analyzer = 'nope': no such analyzer"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[tilling]\nx=1\n", "unknown group [tilling]"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\noverlap=256\n", "[tiling] overlap = '256': must be smaller"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[overlay]\ncolormap=rainbow\n", "[overlay] colormap = 'rainbow': must be one of"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[overlay]\nmin=0\n", "[overlay] max: min and max must be given together"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[tissue]\nmin_fraction=1.5\n", "[tissue] min_fraction = '1.5': out of range"},
      {"[task]\nname=t\nanalyzer=stain\n[tiling]\nmpp=1\n[stain]\nmatrix=xyz\n", NULL},
      {"[task\n", "config"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *path = write_config(cases[i].text);
    g_autoptr(GError) err = NULL;
    g_autoptr(EosinConfig) cfg = eosin_config_load(path, &err);
    if (!cases[i].needle) {
      /* analyzer keys are checked when the analyzer starts */
      cr_assert(cfg, "case %zu", i);
      void *ctx;
      EosinAnalyzerInfo info;
      cr_assert_not(eosin_analyzer_find("stain")->init(cfg, &ctx, &info, &err));
      cr_expect(strstr(err->message, "[stain] matrix = 'xyz'"), "%s", err->message);
      continue;
    }
    cr_assert_null(cfg, "case %zu should fail: %s", i, cases[i].text);
    cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG));
    cr_expect(strstr(err->message, cases[i].needle), "case %zu: '%s' lacks '%s'", i, err->message,
              cases[i].needle);
    cr_expect(strstr(err->message, path), "names the file: %s", err->message);
  }
}
