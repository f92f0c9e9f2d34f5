/*
 * test-cnn.c — networks in the slide pipeline and on patch folders, on
 * models whose answers are computed here by hand (scripts/test/make-test-cnn.py):
 * the cnn analyzer classifying and segmenting the tiles of a generated
 * slide (values read back from heatmap.tif at known blocks), `eosin
 * predict` against float64 references, bad inputs, and the device
 * selection with its retry-smaller-then-CPU path driven by fake GPUs.
 */
#include "test-util.h"

#include "nn/backend.h"

#include <math.h>

/* The preprocessing make-test-cnn.py's references assume (network order BGR). */
#define MODEL_PRE "mean = 0.3, 0.4, 0.5\nstd = 0.5, 0.4, 0.6\nchannel_order = bgr\n"
static const double MEAN[3] = {0.3, 0.4, 0.5}, STD[3] = {0.5, 0.4, 0.6};

/* The normalised network input of one pixel, in BGR order. */
static void normalise(const uint8_t rgb[3], double x[3]) {
  for (int c = 0; c < 3; c++)
    x[c] = (rgb[2 - c] / 255.0 - MEAN[c]) / STD[c];
}

/* A cnn task on 64 px tiles at 0.5 µm/px; @overlap px; with @all_tiles
 * every tile is analysed, glass included, so block edges show in the map. */
static char *cnn_config(const char *kind, const char *model, const char *classes,
                        const char *channel, int overlap, bool all_tiles, const char *extra) {
  g_autofree char *m = td(model);
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = cnn-test\nanalyzer = cnn\n"
      "[tiling]\ntile_size = 64\noverlap = %d\nmpp = 0.5\n"
      "[tissue]\nmin_fraction = %s\nthumbnail_mpp = 4\nmin_object_um2 = 5000\n"
      "[scheduler]\nreaders = 2\nbatch_size = 8\nqueue_depth = 2\n"
      "[overlay]\nchannel = %s\n"
      "[model]\npath = %s\nkind = %s\nclasses = %s\nactivation = softmax\ndevice = cpu\n" MODEL_PRE
      "%s",
      overlap, all_tiles ? "0" : "0.5", channel, m, kind, classes, extra ? extra : "");
  return write_config(text);
}

static JsonObject *load_json(JsonParser *p, const char *path) {
  cr_assert(json_parser_load_from_file(p, path, NULL), "%s", path);
  return json_node_get_object(json_parser_get_root(p));
}

/* Runs @cfgpath on blocks-aperio.svs and checks heatmap.tif at three points
 * of every block against @expect(block colour), and with @edge > 0 also
 * @edge px inside each of its four sides: a map drawn shifted, flipped or
 * transposed shows the neighbour's value there. */
static void check_blocks(const char *cfgpath, double (*expect)(const uint8_t rgb[3]), int tol,
                         double cell_px, int64_t edge) {
  g_autofree char *slide = td("blocks-aperio.svs");
  g_autofree char *json = g_strconcat(slide, ".json", NULL);
  int64_t w, h;
  g_autoptr(GArray) blocks = load_blocks(json, &w, &h);
  EosinRunResult res;
  run_config_ok(cfgpath, slide, NULL, NULL, &res);
  g_autofree char *heatmap = g_build_filename(res.outdir, "heatmap.tif", NULL);
  for (guint i = 0; i < blocks->len; i++) {
    Block *b = &g_array_index(blocks, Block, i);
    int want = 1 + (int) lround(254 * expect(b->rgb));
    int64_t pts[][2] = {{b->x + b->w / 2, b->y + b->h / 2},
                        {b->x + b->w / 3, b->y + b->h / 3},
                        {b->x + 2 * b->w / 3, b->y + 2 * b->h / 3},
                        {b->x + edge, b->y + b->h / 2},
                        {b->x + b->w - 1 - edge, b->y + b->h / 2},
                        {b->x + b->w / 2, b->y + edge},
                        {b->x + b->w / 2, b->y + b->h - 1 - edge}};
    for (int p = 0; p < (edge ? 7 : 3); p++) {
      uint8_t got[4];
      cr_assert(openslide_pixel(heatmap, pts[p][0], pts[p][1], got));
      cr_expect(abs(got[0] - want) <= tol, "block %u (%d,%d,%d) at (%ld,%ld): heatmap %d, want %d",
                i, b->rgb[0], b->rgb[1], b->rgb[2], (long) pts[p][0], (long) pts[p][1], got[0],
                want);
    }
  }
  g_autofree char *report = g_build_filename(res.outdir, "report.json", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  JsonObject *o = load_json(p, report);
  JsonObject *inf = json_object_get_object_member(o, "inference");
  cr_assert(inf, "report.json has an inference block");
  cr_expect_str_eq(json_object_get_string_member(inf, "backend"), "cpu-onednn");
  cr_expect_str_eq(json_object_get_string_member(inf, "device_requested"), "cpu");
  cr_expect_str_eq(json_object_get_string_member(inf, "precision"), "fp32");
  JsonObject *ov = json_object_get_object_member(o, "overlay");
  cr_expect_float_eq(json_object_get_double_member(ov, "cell_level0_px"), cell_px, 1e-9);
  eosin_run_result_clear(&res);
}

static double p_red(const uint8_t rgb[3]) {
  double x[3], z[3], sum = 0;
  normalise(rgb, x);
  for (int c = 0; c < 3; c++)
    sum += z[c] = exp(2 * x[c]);
  return z[2] / sum;  /* classes blue, green, red */
}

static double p_dark(const uint8_t rgb[3]) {
  double x[3];
  normalise(rgb, x);
  return 1 / (1 + exp(-(0.5 - x[0] - x[1] - x[2])));
}

Test(cnn, classification_heatmap_matches_hand_computed_probabilities, .timeout = 300) {
  g_autofree char *cfg = cnn_config("classification", "cnn/colour-classifier.onnx",
                                    "blue, green, red", "red", 0, false, NULL);
  /* tile-mean colours of JPEG-compressed blocks: a few levels of 255 */
  check_blocks(cfg, p_red, 3, 64, 0);
}

Test(cnn, segmentation_stitched_at_cell_resolution_with_blended_overlaps, .timeout = 300) {
  /* 32 x 32 output maps, cells of 4 output px = 8 level-0 px; overlapping
   * tiles (16 px) blended */
  g_autofree char *cfg = cnn_config("segmentation", "cnn/colour-segmenter.onnx", "dark, light",
                                    "dark", 16, true, "cell = 4\n");
  check_blocks(cfg, p_dark, 4, 8, 16);
}

Test(cnn, config_and_model_mismatches_are_named) {
  g_autoptr(GError) err = NULL;
  struct {
    const char *kind, *model, *classes, *extra, *words;
  } cases[] = {
      {"classification", "cnn/colour-classifier.onnx", "a, b", NULL, "classes names 2 classes"},
      {"segmentation", "cnn/colour-classifier.onnx", "a, b, c", NULL, "needs an output of"},
      {"segmentation", "cnn/colour-segmenter.onnx", "dark, light", "cell = 5\n", "cell = 5"},
      {"classification", "onnx/tiny-cnn.onnx", "a, b", NULL, "tile_size = 64"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *path = cnn_config(cases[i].kind, cases[i].model, cases[i].classes, "a", 0,
                                       false, cases[i].extra);
    g_autoptr(EosinConfig) cfg = eosin_config_load(path, &err);
    cr_assert(cfg, "%s", err ? err->message : "");
    void *ctx = NULL;
    EosinAnalyzerInfo info = {0};
    const EosinAnalyzerOps *ops = eosin_analyzer_find("cnn");
    cr_expect_not(ops->init(cfg, &ctx, &info, &err), "case %zu must fail", i);
    cr_expect(err && strstr(err->message, cases[i].words) && strstr(err->message, path),
              "case %zu: '%s' should name the config and say '%s'", i, err ? err->message : "",
              cases[i].words);
    ops->destroy(ctx);
    g_clear_error(&err);
  }
  /* strict [model] group: a bad value names file, key and value */
  g_autofree char *bad = cnn_config("classification", "cnn/colour-classifier.onnx", "a, a, b",
                                    "a", 0, false, NULL);
  cr_expect_null(eosin_config_load(bad, &err));
  cr_expect(err && strstr(err->message, "[model] classes") && strstr(err->message, "twice"));
  g_clear_error(&err);
  g_autofree char *text = g_strdup_printf("[task]\nname = t\nanalyzer = cnn\n[tiling]\nmpp = 1\n"
                                          "[model]\nclasses = a\ndevice = gpu0\n");
  g_autofree char *devcfg = write_config(text);
  cr_expect_null(eosin_config_load(devcfg, &err));
  cr_expect(err && strstr(err->message, "[model] device = 'gpu0'"), "%s", err ? err->message : "");
}

/* ------------------------------------------------------------ predict */

static GHashTable *read_csv(const char *path, char **header) {
  g_autofree char *text = slurp(path);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  *header = g_strdup(lines[0]);
  GHashTable *rows = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  for (int i = 1; lines[i] && *lines[i]; i++) {
    char *comma = strchr(lines[i], ',');
    cr_assert(comma, "row %s", lines[i]);
    g_hash_table_insert(rows, g_strndup(lines[i], comma - lines[i]), g_strdup(comma + 1));
  }
  return rows;
}

static char *predict_config(const char *classes) {
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = patches\nanalyzer = cnn\n[tiling]\ntile_size = 64\nmpp = 0.5\n"
      "[scheduler]\nbatch_size = 5\n"
      "[model]\nclasses = %s\nactivation = softmax\n" MODEL_PRE,
      classes);
  return write_config(text);
}

Test(cnn, predict_writes_probabilities_per_image_in_class_order, .timeout = 120) {
  g_autofree char *cfg = predict_config("blue, green, red");
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  g_autofree char *dir = td("cnn/patches");
  g_autofree char *tmp = tmp_dir();
  g_autofree char *csv = g_build_filename(tmp, "preds.csv", NULL);
  char *out = NULL, *errs = NULL;
  const char *argv[] = {"predict", "--config", cfg, "--model", model, "--device", "cpu",
                        dir, "-o", csv, NULL};
  int rc = run_eosin(argv, &out, &errs);
  cr_assert_eq(rc, 0, "exit %d: %s", rc, errs);
  cr_expect(strstr(out, "27 images") && strstr(out, "3 resized") && strstr(out, "cpu-onednn"),
            "%s", out);
  g_free(out);
  g_free(errs);

  g_autofree char *header = NULL, *ref_header = NULL;
  g_autoptr(GHashTable) got = read_csv(csv, &header);
  g_autofree char *ref_path = td("cnn/patches-ref.csv");
  g_autoptr(GHashTable) want = read_csv(ref_path, &ref_header);
  cr_expect_str_eq(header, "path,blue,green,red");
  cr_expect_eq(g_hash_table_size(got), 27, "every image below the folder, recursively");
  cr_expect_eq(g_hash_table_size(want), 24);
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init(&it, want);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    const char *row = g_hash_table_lookup(got, k);
    cr_assert(row, "%s missing from the CSV", (char *) k);
    g_auto(GStrv) a = g_strsplit(row, ",", -1), b = g_strsplit(v, ",", -1);
    for (int c = 0; c < 3; c++)
      /* float32 means of 4096 pixels against float64: a few 1e-6 */
      cr_expect(fabs(g_ascii_strtod(a[c], NULL) - g_ascii_strtod(b[c], NULL)) < 2e-5,
                "%s class %d: %s vs reference %s", (char *) k, c, a[c], b[c]);
  }
  /* the resized JPEGs: three probabilities summing to 1 */
  const char *big = g_hash_table_lookup(got, "big0.jpg");
  cr_assert(big);
  g_auto(GStrv) f = g_strsplit(big, ",", -1);
  cr_expect_float_eq(g_ascii_strtod(f[0], NULL) + g_ascii_strtod(f[1], NULL) +
                         g_ascii_strtod(f[2], NULL), 1.0, 1e-5);
  /* rows sorted by path, so reruns diff cleanly */
  g_autofree char *text = slurp(csv);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (int i = 2; lines[i] && *lines[i]; i++)
    cr_expect_lt(strcmp(lines[i - 1], lines[i]), 0, "sorted: %s / %s", lines[i - 1], lines[i]);
}

Test(cnn, predict_reports_unreadable_images_and_bad_configs) {
  g_autofree char *cfg = predict_config("blue, green, red");
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  g_autofree char *dir = td("cnn/bad-patches");
  g_autofree char *tmp = tmp_dir();
  g_autofree char *csv = g_build_filename(tmp, "preds.csv", NULL);
  char *out = NULL, *errs = NULL;
  const char *argv[] = {"predict", "-c", cfg, "--model", model, dir, "-o", csv, NULL};
  int rc = run_eosin(argv, &out, &errs);
  cr_expect_eq(rc, 3, "some images unreadable: exit 3 (%d)", rc);
  cr_expect(strstr(errs, "broken.png"), "the bad file is named: %s", errs);
  g_autofree char *text = slurp(csv);
  cr_expect(strstr(text, "good.png") && !strstr(text, "broken.png"), "%s", text);
  g_free(out);
  g_free(errs);

  /* two classes named for a three-class model: usage error naming both */
  g_autofree char *two = predict_config("a, b");
  const char *argv2[] = {"predict", "-c", two, "--model", model, dir, "-o", csv, NULL};
  rc = run_eosin(argv2, &out, &errs);
  cr_expect_eq(rc, 2);
  cr_expect(strstr(errs, "classes names 2 classes") && strstr(errs, "3 values"), "%s", errs);
  g_free(out);
  g_free(errs);
  const char *argv3[] = {"predict", "-c", cfg, "--model", model, "--device", "tpu", dir, "-o",
                         csv, NULL};
  rc = run_eosin(argv3, &out, &errs);
  cr_expect_eq(rc, 2);
  cr_expect(strstr(errs, "--device 'tpu'"), "%s", errs);
  g_free(out);
  g_free(errs);
  g_autofree char *missing = g_build_filename(tmp, "none.onnx", NULL);
  const char *argv4[] = {"predict", "-c", cfg, "--model", missing, dir, "-o", csv, NULL};
  rc = run_eosin(argv4, &out, &errs);
  cr_expect_eq(rc, 2, "a missing --model is a bad command line: %s", errs);
  cr_expect(strstr(errs, "none.onnx"), "%s", errs);
  g_free(out);
  g_free(errs);
}

/* ------------------------------------------------------------ devices */

/* Fake GPUs wrapping the reference: one that never starts, one that runs
 * out of memory above batch 2, one whose every run fails. */
typedef struct {
  void *ref;
  int batch;
  int mode;
} Fake;

static bool fake_init(void **ctx, const EosinBackendOptions *o, int mode, GError **err) {
  if (mode == 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "fake GPU: no device");
    return false;
  }
  Fake *f = g_new0(Fake, 1);
  f->mode = mode;
  *ctx = f;
  return _eosin_backend_ref.init(&f->ref, o, err);
}
static bool init_none(void **c, const EosinBackendOptions *o, GError **e) {
  return fake_init(c, o, 0, e);
}
static bool init_small(void **c, const EosinBackendOptions *o, GError **e) {
  return fake_init(c, o, 1, e);
}
static bool init_broken(void **c, const EosinBackendOptions *o, GError **e) {
  return fake_init(c, o, 2, e);
}
static bool fake_supports(void *c, const EosinModel *m, const EosinNode *n) {
  return true;
}
static bool fake_load(void *c, const EosinModel *m, GError **err) {
  Fake *f = c;
  f->batch = m->batch;
  return _eosin_backend_ref.load(f->ref, m, err);
}
static bool fake_run(void *c, const float *x, float *y, GError **err) {
  Fake *f = c;
  if (f->mode == 2 || f->batch > 2) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE, "fake GPU: out of memory at batch %d",
                f->batch);
    return false;
  }
  return _eosin_backend_ref.run(f->ref, x, y, err);
}
static void fake_destroy(void *c) {
  Fake *f = c;
  if (f->ref)
    _eosin_backend_ref.destroy(f->ref);
  g_free(f);
}
#define FAKE(n, i) \
  {.name = n, .init = i, .supports = fake_supports, .load = fake_load, .run = fake_run, \
   .destroy = fake_destroy}
static const EosinBackendOps FAKE_NONE = FAKE("fake-none", init_none);
static const EosinBackendOps FAKE_SMALL = FAKE("fake-small", init_small);
static const EosinBackendOps FAKE_BROKEN = FAKE("fake-broken", init_broken);

static float *infer_all(const EosinBackendOps *gpu, const char *device, const uint8_t *rgb,
                        int n, EosinInfer **keep) {
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  g_autoptr(GError) err = NULL;
  EosinInferOptions o = {.device = device, .batch = 8};
  EosinInfer *inf = _eosin_infer_new_with(model, &o, gpu, &err);
  cr_assert(inf, "%s", err ? err->message : "");
  EosinPreprocess pp = {{0.3f, 0.4f, 0.5f}, {0.5f, 0.4f, 0.6f}, true};
  float *out = g_new(float, 3 * n);
  cr_assert(eosin_infer_run_rgb(inf, rgb, n, &pp, out, &err), "%s", err ? err->message : "");
  *keep = inf;
  return out;
}

Test(cnn, gpu_failures_retry_smaller_then_fall_back_to_cpu_with_same_numbers) {
  int n = 13;
  g_autofree uint8_t *rgb = g_new(uint8_t, (size_t) n * 64 * 64 * 3);
  GRand *r = g_rand_new_with_seed(3);
  for (size_t i = 0; i < (size_t) n * 64 * 64 * 3; i++)
    rgb[i] = (uint8_t) g_rand_int_range(r, 0, 256);
  g_rand_free(r);
  EosinInfer *ref_inf, *inf;
  g_autofree float *want = infer_all(NULL, "ref", rgb, n, &ref_inf);
  cr_expect_str_eq(eosin_infer_backend(ref_inf), "ref");
  eosin_infer_free(ref_inf);

  /* a GPU that does not start: auto says why and runs on the CPU */
  g_autofree float *a = infer_all(&FAKE_NONE, "auto", rgb, n, &inf);
  cr_expect_str_eq(eosin_infer_backend(inf), "cpu-onednn");
  g_autofree char *s1 = eosin_infer_summary(inf);
  cr_expect(strstr(s1, "GPU not used: fake GPU: no device"), "%s", s1);
  eosin_infer_free(inf);

  /* out of memory at 8 and 4: retried at 2, the same images, the same numbers */
  g_autofree float *b = infer_all(&FAKE_SMALL, "cuda", rgb, n, &inf);
  cr_expect_str_eq(eosin_infer_backend(inf), "fake-small");
  g_autofree char *s2 = eosin_infer_summary(inf);
  cr_expect(strstr(s2, "batch 2") && strstr(s2, "out of memory at batch 8") &&
                strstr(s2, "retrying on fake-small at batch 4") &&
                strstr(s2, "retrying on fake-small at batch 2"),
            "%s", s2);
  eosin_infer_free(inf);

  /* every GPU run fails: down to batch 1, then the CPU finishes the job */
  g_autofree float *c = infer_all(&FAKE_BROKEN, "auto", rgb, n, &inf);
  cr_expect_str_eq(eosin_infer_backend(inf), "cpu-onednn");
  g_autofree char *s3 = eosin_infer_summary(inf);
  cr_expect(strstr(s3, "at batch 1") && strstr(s3, "moved to cpu-onednn"), "%s", s3);
  eosin_infer_free(inf);

  for (int i = 0; i < 3 * n; i++) {
    cr_expect(fabsf(a[i] - want[i]) < 1e-5 && fabsf(b[i] - want[i]) < 1e-5 &&
                  fabsf(c[i] - want[i]) < 1e-5,
              "value %d: %g %g %g vs ref %g", i, a[i], b[i], c[i], want[i]);
  }

  /* cuda asked for by name and not there: an error, not a silent CPU run */
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  g_autoptr(GError) err = NULL;
  EosinInferOptions o = {.device = "cuda:1", .batch = 4};
  cr_expect_null(_eosin_infer_new_with(model, &o, &FAKE_NONE, &err));
  cr_expect(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE) &&
                strstr(err->message, "device cuda:1: fake GPU: no device"),
            "%s", err ? err->message : "");
}
