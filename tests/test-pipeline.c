/*
 * test-pipeline.c — a slide run end to end through eosin_run_slide:
 * identical tiles.csv for any number of reader threads and batch size, and
 * a report.json that is complete and agrees with it. (The tissue detector
 * is tests/test-tissue.c, the config's strictness tests/test-config.c, the
 * scheduler alone tests/test-scheduler.c.)
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
