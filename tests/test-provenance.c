/*
 * test-provenance.c — a result says what made it: the slide's and models'
 * hashes are those of the files (recomputed here with GChecksum and
 * OpenSlide), model paths are absolute, overlay.tif and heatmap.tif carry
 * the hashes in their ImageDescription, the effective config in
 * report.json holds every key the parser knows and re-runs to the same
 * bytes, and `eosin version`, `eosin info` and the report's command line
 * say what they should.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <glib/gstdio.h>
#include <openslide.h>
#include <tiffio.h>

static JsonObject *load_report(JsonParser *p, const char *outdir) {
  g_autofree char *path = g_build_filename(outdir, "report.json", NULL);
  g_autoptr(GError) e = NULL;
  cr_assert(json_parser_load_from_file(p, path, &e), "%s: %s", path, e ? e->message : "");
  return json_node_get_object(json_parser_get_root(p));
}

static char *sha256_of(const char *path) {
  g_autofree char *data = NULL;
  gsize len = 0;
  cr_assert(g_file_get_contents(path, &data, &len, NULL), "%s", path);
  return g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *) data, len);
}

static char *quickhash_of(const char *slide) {
  openslide_t *osr = openslide_open(slide);
  cr_assert(osr && !openslide_get_error(osr), "%s", slide);
  const char *q = openslide_get_property_value(osr, "openslide.quickhash-1");
  cr_assert(q, "%s has no quickhash-1", slide);
  char *h = g_strconcat("openslide-quickhash-1:", q, NULL);
  openslide_close(osr);
  return h;
}

static char *real(const char *path) {
  char *r = realpath(path, NULL);
  cr_assert(r, "realpath %s", path);
  char *g = g_strdup(r);
  free(r);
  return g;
}

/* The ImageDescription of @tif's first directory. Caller frees. */
static char *tiff_description(const char *tif) {
  TIFF *t = TIFFOpen(tif, "r");
  cr_assert(t, "%s", tif);
  const char *d = NULL;
  cr_assert(TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &d), "%s has no ImageDescription", tif);
  char *copy = g_strdup(d);
  TIFFClose(t);
  return copy;
}

/* The CNN config of the lesion tests with its model copied beside it and
 * named by a relative path, so "absolute" has something to prove. */
static char *cnn_config_relative_model(char **model_out) {
  g_autofree char *src = td("cnn/colour-classifier.onnx");
  g_autofree char *dir = tmp_dir();
  g_autofree char *data = NULL;
  gsize len = 0;
  cr_assert(g_file_get_contents(src, &data, &len, NULL));
  *model_out = g_build_filename(dir, "classifier.onnx", NULL);
  cr_assert(g_file_set_contents(*model_out, data, len, NULL));
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = prov-cnn\nanalyzer = cnn\n"
      "[tiling]\ntile_size = 64\nmpp = 0.5\n"
      "[tissue]\nmin_fraction = 0.5\nthumbnail_mpp = 4\nmin_object_um2 = 5000\n"
      "[model]\npath = classifier.onnx\nclasses = blue, green, red\nactivation = softmax\n"
      "device = cpu\nmean = 0.3, 0.4, 0.5\nstd = 0.5, 0.4, 0.6\nchannel_order = bgr\n"
      "[lesions]\nchannel = red\nthreshold = 0.4\n");
  char *cfg = g_build_filename(dir, "prov-cnn.ini", NULL);
  cr_assert(g_file_set_contents(cfg, text, -1, NULL));
  return cfg;
}

Test(provenance, hashes_are_those_of_the_files_and_paths_are_absolute) {
  g_autofree char *model = NULL;
  g_autofree char *cfg = cnn_config_relative_model(&model);
  g_autofree char *slide = td("blocks-aperio.svs");
  EosinRunResult res;
  run_config_ok(cfg, slide, NULL, NULL, &res);
  g_autoptr(JsonParser) p = json_parser_new();
  JsonObject *o = load_report(p, res.outdir);
  JsonObject *id = json_object_get_object_member(o, "identity");
  JsonObject *s = json_object_get_object_member(id, "slide");
  g_autofree char *qh = quickhash_of(slide), *slide_real = real(slide);
  cr_expect_str_eq(json_object_get_string_member(s, "hash"), qh);
  cr_expect_str_eq(json_object_get_string_member(s, "path"), slide_real);
  GStatBuf st;
  cr_assert(g_stat(slide, &st) == 0);
  cr_expect_eq(json_object_get_int_member(s, "size"), (gint64) st.st_size);
  g_autoptr(GDateTime) mt =
      g_date_time_new_from_iso8601(json_object_get_string_member(s, "mtime"), NULL);
  cr_assert(mt, "mtime '%s' is ISO 8601", json_object_get_string_member(s, "mtime"));
  cr_expect_eq(g_date_time_to_unix(mt), (gint64) st.st_mtime);

  JsonArray *models = json_object_get_array_member(id, "models");
  cr_assert_eq(json_array_get_length(models), 1);
  JsonObject *m = json_array_get_object_element(models, 0);
  g_autofree char *sum = sha256_of(model), *model_real = real(model);
  cr_expect_str_eq(json_object_get_string_member(m, "sha256"), sum);
  cr_expect_str_eq(json_object_get_string_member(m, "path"), model_real);

  /* no relative model path anywhere the report names one */
  JsonObject *c = json_object_get_object_member(o, "config");
  cr_expect(g_path_is_absolute(json_object_get_string_member(c, "path")));
  JsonObject *eff = json_object_get_object_member(c, "effective");
  const char *mp = json_object_get_string_member(json_object_get_object_member(eff, "model"),
                                                 "path");
  cr_expect(g_path_is_absolute(mp) && g_str_has_suffix(mp, "/classifier.onnx"), "%s", mp);
  const char *im = json_object_get_string_member(json_object_get_object_member(o, "inference"),
                                                 "model");
  cr_expect(g_path_is_absolute(im), "inference model %s", im);

  /* the overlays say whose they are (first directory: the one viewers show) */
  g_autofree char *want_slide = g_strdup_printf("eosin slide=%s ", qh);
  g_autofree char *want_model = g_strdup_printf(" model=sha256:%s ", sum);
  const char *names[] = {"overlay.tif", "heatmap.tif"};
  for (int i = 0; i < 2; i++) {
    g_autofree char *tif = g_build_filename(res.outdir, names[i], NULL);
    g_autofree char *d = tiff_description(tif);
    cr_expect(g_str_has_prefix(d, "Eosin "), "%s: %s", names[i], d);
    cr_expect(strstr(d, want_slide), "%s: %s", names[i], d);
    cr_expect(strstr(d, want_model), "%s: %s", names[i], d);
    cr_expect(g_str_has_suffix(d, " task=prov-cnn"), "%s: %s", names[i], d);
  }
  g_autofree char *hd = NULL;
  {
    g_autofree char *tif = g_build_filename(res.outdir, "heatmap.tif", NULL);
    hd = tiff_description(tif);
  }
  cr_expect(strstr(hd, "8-bit values: 0 = no data, 1..255 = "), "%s", hd);
  /* and OpenSlide still takes overlay.tif for a generic TIFF, not Aperio */
  g_autofree char *overlay = g_build_filename(res.outdir, "overlay.tif", NULL);
  openslide_t *osr = openslide_open(overlay);
  cr_assert(osr && !openslide_get_error(osr));
  cr_expect_str_eq(openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_VENDOR),
                   "generic-tiff");
  openslide_close(osr);
  eosin_run_result_clear(&res);
}

Test(provenance, an_image_openslide_does_not_read_is_hashed_whole) {
  g_autofree char *png = td("ihc.png");
  g_autofree char *cfg = stain_config(128, 0.5, 0, 0.1, NULL);
  EosinRunOptions o = {.mpp_override = 0.5};
  EosinRunResult res;
  run_config_ok(cfg, png, NULL, &o, &res);
  g_autoptr(JsonParser) p = json_parser_new();
  JsonObject *r = load_report(p, res.outdir);
  JsonObject *s = json_object_get_object_member(json_object_get_object_member(r, "identity"),
                                                "slide");
  g_autofree char *sum = sha256_of(png);
  g_autofree char *want = g_strconcat("sha256:", sum, NULL);
  cr_expect_str_eq(json_object_get_string_member(s, "hash"), want);
  g_autofree char *tif = g_build_filename(res.outdir, "overlay.tif", NULL);
  g_autofree char *d = tiff_description(tif);
  g_autofree char *tag = g_strdup_printf("eosin slide=%s model=none task=stain-test", want);
  cr_expect(g_str_has_suffix(d, tag), "%s", d);

  /* eosin info says the same hash, as text and as JSON */
  const char *argv[] = {"info", png, "--mpp", "0.5", NULL};
  g_autofree char *out = NULL;
  cr_assert_eq(run_eosin(argv, &out, NULL), 0);
  g_autofree char *line = g_strdup_printf("hash:       %s\n", want);
  cr_expect(strstr(out, line), "%s", out);
  const char *jargv[] = {"info", "--json", png, "--mpp", "0.5", NULL};
  g_autofree char *jout = NULL;
  cr_assert_eq(run_eosin(jargv, &jout, NULL), 0);
  g_autoptr(JsonParser) jp = json_parser_new();
  cr_assert(json_parser_load_from_data(jp, jout, -1, NULL), "%s", jout);
  cr_expect_str_eq(json_object_get_string_member(json_node_get_object(json_parser_get_root(jp)),
                                                 "hash"),
                   want);
  eosin_run_result_clear(&res);
}

Test(provenance, eosin_info_prints_the_quickhash) {
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *qh = quickhash_of(slide);
  const char *argv[] = {"info", slide, NULL};
  g_autofree char *out = NULL;
  cr_assert_eq(run_eosin(argv, &out, NULL), 0);
  g_autofree char *line = g_strdup_printf("hash:       %s\n", qh);
  cr_expect(strstr(out, line), "%s", out);
}

/* Every key of the common groups config.c knows, with [model] and
 * [lesions] when the file has them. */
static const char *const COMMON[] = {
    "task.name",           "task.analyzer",          "tiling.tile_size",
    "tiling.overlap",      "tiling.mpp",             "tissue.min_fraction",
    "tissue.thumbnail_mpp", "tissue.max_side",       "tissue.min_saturation",
    "tissue.closing_um",   "tissue.min_object_um2",  "tissue.max_hole_um2",
    "scheduler.readers",   "scheduler.batch_size",   "scheduler.queue_depth",
    "scheduler.max_memory_mb", "overlay.channel",    "overlay.colormap",
    "overlay.alpha",       "overlay.min",            "overlay.max",
    "overlay.compression", "overlay.tiles_geojson",  NULL};
static const char *const MODEL[] = {
    "model.path", "model.kind",  "model.classes",       "model.activation",
    "model.mean", "model.std",   "model.channel_order", "model.device",
    "model.precision", "model.cell", "model.predict_center_crop", "lesions.channel",
    "lesions.threshold", "lesions.min_area_um2", "lesions.top_k", "lesions.smooth_um", NULL};

static void expect_keys(JsonObject *eff, const char *const *keys) {
  for (int i = 0; keys[i]; i++) {
    g_auto(GStrv) gk = g_strsplit(keys[i], ".", 2);
    JsonObject *g = json_object_has_member(eff, gk[0])
                        ? json_object_get_object_member(eff, gk[0])
                        : NULL;
    cr_expect(g && json_object_has_member(g, gk[1]), "effective config lacks [%s] %s", gk[0],
              gk[1]);
  }
}

/* The effective config of the report in @outdir written to a new folder
 * (so nothing relative to the first config's folder can be found from it)
 * and loaded back. */
static char *write_effective(JsonObject *report) {
  JsonObject *c = json_object_get_object_member(report, "config");
  const char *ini = json_object_get_string_member(c, "ini");
  cr_assert(ini && *ini);
  g_autofree char *dir = tmp_dir();
  char *path = g_build_filename(dir, "effective.ini", NULL);
  cr_assert(g_file_set_contents(path, ini, -1, NULL));
  return path;
}

static void expect_same_file(const char *a_dir, const char *b_dir, const char *name) {
  g_autofree char *a = g_build_filename(a_dir, name, NULL);
  g_autofree char *b = g_build_filename(b_dir, name, NULL);
  g_autofree char *da = NULL, *db = NULL;
  gsize la = 0, lb = 0;
  cr_assert(g_file_get_contents(a, &da, &la, NULL), "%s", a);
  cr_assert(g_file_get_contents(b, &db, &lb, NULL), "%s", b);
  cr_expect(la == lb && !memcmp(da, db, la), "%s differs on the re-run (%zu vs %zu bytes)",
            name, (size_t) la, (size_t) lb);
}

static int _strv_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *) a, *(char *const *) b);
}

/* {group: {key: value}} as sorted "group.key=value" lines, whatever the
 * order the getters recorded them in. Caller frees. */
static char *canonical(JsonObject *eff) {
  g_autoptr(GPtrArray) lines = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GList) groups = json_object_get_members(eff);
  for (GList *g = groups; g; g = g->next) {
    JsonObject *go = json_object_get_object_member(eff, g->data);
    g_autoptr(GList) keys = json_object_get_members(go);
    for (GList *k = keys; k; k = k->next)
      g_ptr_array_add(lines, g_strdup_printf("%s.%s=%s", (char *) g->data, (char *) k->data,
                                             json_object_get_string_member(go, k->data)));
  }
  g_ptr_array_sort(lines, (GCompareFunc) _strv_cmp);
  g_ptr_array_add(lines, NULL);
  return g_strjoinv("\n", (char **) lines->pdata);
}

static void expect_rerun_identical(const char *cfg, const char *slide, const char *const *files,
                                   const char *const *keys) {
  EosinRunResult a, b;
  run_config_ok(cfg, slide, NULL, NULL, &a);
  g_autoptr(JsonParser) pa = json_parser_new();
  JsonObject *ra = load_report(pa, a.outdir);
  JsonObject *eff_a =
      json_object_get_object_member(json_object_get_object_member(ra, "config"), "effective");
  expect_keys(eff_a, COMMON);
  if (keys)
    expect_keys(eff_a, keys);
  g_autofree char *again = write_effective(ra);
  run_config_ok(again, slide, NULL, NULL, &b);
  g_autoptr(JsonParser) pb = json_parser_new();
  JsonObject *rb = load_report(pb, b.outdir);
  for (int i = 0; files[i]; i++)
    expect_same_file(a.outdir, b.outdir, files[i]);
  g_autoptr(JsonGenerator) gen = json_generator_new();
  json_generator_set_root(gen, json_object_get_member(ra, "scores"));
  g_autofree char *sa = json_generator_to_data(gen, NULL);
  json_generator_set_root(gen, json_object_get_member(rb, "scores"));
  g_autofree char *sb = json_generator_to_data(gen, NULL);
  cr_expect_str_eq(sa, sb, "scores differ on the re-run");
  /* and the re-run's effective config is the same again: a fixed point */
  g_autofree char *ea = canonical(eff_a);
  g_autofree char *eb = canonical(
      json_object_get_object_member(json_object_get_object_member(rb, "config"), "effective"));
  cr_expect_str_eq(ea, eb);
  eosin_run_result_clear(&a);
  eosin_run_result_clear(&b);
}

Test(provenance, the_effective_stain_config_reruns_to_the_same_bytes) {
  /* only what must be said: every default comes from the parser */
  g_autofree char *cfg = write_config("[task]\nname = prov-stain\nanalyzer = stain\n"
                                      "[tiling]\nmpp = 1.0\n[tissue]\nthumbnail_mpp = 4\n"
                                      "min_object_um2 = 5000\n");
  g_autofree char *slide = td("tissue-a.svs");
  const char *files[] = {"overlay.tif", "heatmap.tif", "tiles.csv", "tiles.geojson",
                         "preview.png", "tissue.png",  NULL};
  const char *stain[] = {"stain.matrix", "stain.names", NULL};
  expect_rerun_identical(cfg, slide, files, stain);
}

Test(provenance, the_effective_cnn_config_reruns_to_the_same_bytes) {
  g_autofree char *model = NULL;
  g_autofree char *cfg = cnn_config_relative_model(&model);
  g_autofree char *slide = td("blocks-aperio.svs");
  const char *files[] = {"overlay.tif", "heatmap.tif", "tiles.csv", "detections.csv",
                         "lesions.geojson", NULL};
  expect_rerun_identical(cfg, slide, files, MODEL);
}

Test(provenance, every_default_is_in_the_effective_config_and_no_model_group_is_invented) {
  g_autofree char *cfg = write_config("[task]\nname = prov-min\nanalyzer = stain\n"
                                      "[tiling]\nmpp = 1.0\n");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) c = eosin_config_load(cfg, &err);
  cr_assert(c, "%s", err ? err->message : "");
  /* the getters record at load, the run adds what the analyzer resolves
   * (the overlay's channel and range) */
  EosinRunResult res;
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *out = tmp_dir();
  g_autoptr(GError) e2 = NULL;
  cr_assert(eosin_run_slide(c, slide, out, NULL, &res, &e2), "%s", e2 ? e2->message : "");
  g_autoptr(JsonParser) p = json_parser_new();
  JsonObject *r = load_report(p, res.outdir);
  JsonObject *eff =
      json_object_get_object_member(json_object_get_object_member(r, "config"), "effective");
  expect_keys(eff, COMMON);
  JsonObject *tissue = json_object_get_object_member(eff, "tissue");
  cr_expect_str_eq(json_object_get_string_member(tissue, "min_object_um2"), "50000");
  cr_expect_str_eq(json_object_get_string_member(json_object_get_object_member(eff, "scheduler"),
                                                 "max_memory_mb"),
                   "0");
  cr_expect_not(json_object_has_member(eff, "model"), "a stain config has no [model]");
  cr_expect_not(json_object_has_member(eff, "lesions"), "nor [lesions]");
  eosin_run_result_clear(&res);
}

Test(provenance, max_memory_mb_zero_is_the_default_and_small_values_are_refused) {
  g_autofree char *ok = write_config("[task]\nname = t\nanalyzer = stain\n[tiling]\nmpp = 1\n"
                                     "[scheduler]\nmax_memory_mb = 0\n");
  g_autofree char *bad = write_config("[task]\nname = t\nanalyzer = stain\n[tiling]\nmpp = 1\n"
                                      "[scheduler]\nmax_memory_mb = 8\n");
  g_autoptr(GError) e = NULL;
  g_autoptr(EosinConfig) c = eosin_config_load(ok, &e);
  cr_assert(c, "%s", e ? e->message : "");
  cr_expect(c->max_memory_bytes > (gint64) 16 << 20);
  g_autoptr(GError) e2 = NULL;
  g_autoptr(EosinConfig) c2 = eosin_config_load(bad, &e2);
  cr_assert_null(c2);
  cr_expect(strstr(e2->message, "max_memory_mb = '8'"), "%s", e2->message);
}

/* name -> version from `eosin version` (lines "name version"). */
static GHashTable *version_lines(const char *out) {
  GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  g_auto(GStrv) lines = g_strsplit(out, "\n", -1);
  for (char **l = lines; *l; l++) {
    const char *sp = strchr(*l, ' ');
    if (sp)
      g_hash_table_insert(h, g_strndup(*l, sp - *l), g_strdup(sp + 1));
  }
  return h;
}

Test(provenance, eosin_version_lists_the_libraries_as_the_report_does) {
  const char *argv[] = {"version", NULL};
  g_autofree char *out = NULL;
  cr_assert_eq(run_eosin(argv, &out, NULL), 0);
  cr_expect(g_str_has_prefix(out, "eosin "), "%s", out);
  g_autoptr(GHashTable) v = version_lines(out);
  const char *libs[] = {"eosin", "openslide", "libvips", "onednn", "protobuf-c", "glib",
                        "json-glib", "libtiff", NULL};
  for (int i = 0; libs[i]; i++)
    cr_expect(g_hash_table_contains(v, libs[i]), "eosin version lacks %s:\n%s", libs[i], out);
  cr_expect_str_eq(g_hash_table_lookup(v, "openslide"), openslide_get_version());
  g_autofree char *glib = g_strdup_printf("%u.%u.%u", glib_major_version, glib_minor_version,
                                          glib_micro_version);
  cr_expect_str_eq(g_hash_table_lookup(v, "glib"), glib);

  /* --json and a report written by the CLI hold the same pairs, and the
   * report keeps the command line it was run with */
  const char *jargv[] = {"version", "--json", NULL};
  g_autofree char *jout = NULL;
  cr_assert_eq(run_eosin(jargv, &jout, NULL), 0);
  g_autoptr(JsonParser) jp = json_parser_new();
  cr_assert(json_parser_load_from_data(jp, jout, -1, NULL), "%s", jout);
  JsonObject *jo = json_node_get_object(json_parser_get_root(jp));
  cr_expect_eq(json_object_get_size(jo), g_hash_table_size(v));

  g_autofree char *cfg = stain_config(128, 1.0, 0, 0.5, NULL);
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *outdir = tmp_dir();
  const char *run[] = {"run", "--task", cfg, slide, "-o", outdir, "--readers", "1", NULL};
  g_autofree char *rerr = NULL;
  cr_assert_eq(run_eosin(run, NULL, &rerr), 0, "%s", rerr);
  g_autofree char *res = g_build_filename(outdir, "tissue-a", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  JsonObject *r = load_report(p, res);
  JsonObject *rv = json_object_get_object_member(r, "versions");
  GHashTableIter it;
  gpointer k, val;
  g_hash_table_iter_init(&it, v);
  while (g_hash_table_iter_next(&it, &k, &val))
    cr_expect_str_eq(json_object_get_string_member(rv, k), val, "report versions %s",
                     (char *) k);
  JsonObject *cmd = json_object_get_object_member(r, "command");
  cr_assert(cmd, "report.json has the command line");
  JsonArray *a = json_object_get_array_member(cmd, "argv");
  cr_assert_eq(json_array_get_length(a), 9);
  cr_expect_str_eq(json_array_get_string_element(a, 0), "eosin");
  for (int i = 0; run[i]; i++)
    cr_expect_str_eq(json_array_get_string_element(a, i + 1), run[i]);
  g_autofree char *cwd = g_get_current_dir();
  cr_expect_str_eq(json_object_get_string_member(cmd, "cwd"), cwd);
  cr_expect(strstr(json_object_get_string_member(cmd, "line"), "eosin run --task "));
}

Test(provenance, a_batch_report_keeps_its_command_line) {
  g_autofree char *cfg = stain_config(128, 1.0, 0, 0.5, NULL);
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *dir = tmp_dir();
  g_autofree char *manifest = g_build_filename(dir, "slides.txt", NULL);
  cr_assert(g_file_set_contents(manifest, slide, -1, NULL));
  g_autofree char *outdir = g_build_filename(dir, "out", NULL);
  const char *run[] = {"batch", "--task", cfg, "--manifest", manifest, "-o", outdir, NULL};
  g_autofree char *rerr = NULL;
  cr_assert_eq(run_eosin(run, NULL, &rerr), 0, "%s", rerr);
  g_autofree char *res = g_build_filename(outdir, "tissue-a", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  JsonObject *r = load_report(p, res);
  JsonArray *a = json_object_get_array_member(json_object_get_object_member(r, "command"),
                                              "argv");
  cr_assert_eq(json_array_get_length(a), 8);
  cr_expect_str_eq(json_array_get_string_element(a, 1), "batch");
  cr_expect_str_eq(json_array_get_string_element(a, 5), manifest);
}

Test(provenance, model_and_device_options_reach_the_effective_config) {
  g_autofree char *model = NULL;
  g_autofree char *cfgpath = cnn_config_relative_model(&model);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  /* a relative --model is taken from the working folder, as the shell means it */
  eosin_config_set_model(cfg, "models/other.onnx", "ref");
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  _eosin_config_effective_json(cfg, b);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  JsonObject *m = json_object_get_object_member(
      json_object_get_object_member(json_node_get_object(root), "effective"), "model");
  g_autofree char *cwd = g_get_current_dir();
  g_autofree char *want = g_build_filename(cwd, "models", "other.onnx", NULL);
  cr_expect_str_eq(json_object_get_string_member(m, "path"), want);
  cr_expect_str_eq(json_object_get_string_member(m, "device"), "ref");
  const char *ini = json_object_get_string_member(json_node_get_object(root), "ini");
  g_autofree char *line = g_strdup_printf("\npath=%s\n", want);
  cr_expect(strstr(ini, line), "%s", ini);
  cr_expect(strstr(ini, "\ndevice=ref\n"), "%s", ini);
}
