/*
 * fuzz-eval.c — libFuzzer target for `eosin eval`'s inputs (`make fuzz`):
 * every CAMELYON16 and CAMELYON17 table and the ASAP XML / mask truth, as
 * eosin_eval_camelyon16 and eosin_eval_camelyon17 read them from disk.
 *
 * The input is a little archive of files, each introduced by a line
 * "=== NAME" (text before the first such line is pred/Tumor_001.csv):
 *   pred/<slide>.csv, pred/<slide>/detections.csv   detections (confidence,X,Y)
 *   pred/camelyon-slides.csv                        slide probabilities
 *   truth/<slide>.xml, truth/<slide>_mask.png|.tif  truth (ASAP XML, level-5 mask)
 *   reference.csv                                   name,Tumor|Normal
 *   c17-pred.csv, c17-truth.csv                     CAMELYON17 stages/categories
 * (<slide>: letters, digits, '_', '-', '.'; at most 16 files). They are
 * written to a fresh folder, and CAMELYON16 is evaluated over pred/ and
 * truth/ (with reference.csv when present), CAMELYON17 over the two c17
 * files (one of them for both when only one is there).
 *
 * Eval accepts level-5 grids of up to 4e8 cells (gigabytes, by design);
 * so that large-but-valid inputs do not take the fuzzer's time, CAMELYON16
 * is evaluated only when every coordinate in the XML and CSV files, and
 * every mask image, gives a grid of at most FUZZ_MAX_CELLS.
 */
#include "fuzz-common.c"

#define FUZZ_MAX_CELLS (1 << 18)
#define MAX_FILES 16

static bool segment_ok(const char *s) {
  if (!*s || *s == '.' || strlen(s) > 48)
    return false;
  for (const char *p = s; *p; p++)
    if (!g_ascii_isalnum(*p) && *p != '_' && *p != '-' && *p != '.')
      return false;
  return true;
}

/* True for the names above (so nothing is written outside the folder). */
static bool name_ok(const char *name) {
  static const char *const TOP[] = {"reference.csv", "c17-pred.csv", "c17-truth.csv", NULL};
  if (g_strv_contains(TOP, name))
    return true;
  g_auto(GStrv) parts = g_strsplit(name, "/", -1);
  guint n = g_strv_length(parts);
  if (n < 2 || n > 3)
    return false;
  for (guint i = 0; i < n; i++)
    if (!segment_ok(parts[i]))
      return false;
  if (!strcmp(parts[0], "pred"))
    return n == 2 ? g_str_has_suffix(parts[1], ".csv") : !strcmp(parts[2], "detections.csv");
  if (!strcmp(parts[0], "truth"))
    return n == 2;
  return false;
}

/* The largest number among the fields of CSV @path (0 if none or it does
 * not parse, when eval stops at it anyway). */
static double csv_max(const char *path) {
  g_autoptr(GPtrArray) rows = _eosin_csv_read(path, "fuzz", EOSIN_CSV_COMMENTS, NULL);
  double m = 0;
  for (guint i = 0; rows && i < rows->len; i++) {
    const EosinCsvRow *r = rows->pdata[i];
    for (int k = 0; k < r->n; k++) {
      char *end;
      double v = g_ascii_strtod(r->fields[k], &end);
      if (*r->fields[k] && !*end && isfinite(v))
        m = MAX(m, v);
    }
  }
  return m;
}

/* False when the truth or detections in @dir would make a grid larger
 * than FUZZ_MAX_CELLS (see above). */
static bool small_enough(const char *in, GPtrArray *names) {
  double mx = 0;
  for (guint i = 0; i < names->len; i++) {
    const char *name = names->pdata[i];
    g_autofree char *p = g_build_filename(in, name, NULL);
    if (g_str_has_prefix(name, "pred/")) {
      mx = MAX(mx, csv_max(p));
    } else if (g_str_has_suffix(name, ".xml")) {
      g_autoptr(GArray) polys = _eosin_asap_xml_load(p, NULL);
      for (guint k = 0; polys && k < polys->len; k++) {
        const EosinPolygon *poly = &g_array_index(polys, EosinPolygon, k);
        for (guint j = 0; j < poly->xy->len; j++)
          mx = MAX(mx, g_array_index(poly->xy, double, j));
      }
    } else if (g_str_has_prefix(name, "truth/")) {
      g_autoptr(VipsImage) img = vips_image_new_from_file(p, NULL);
      vips_error_clear();
      if (img && (double) img->Xsize * img->Ysize > FUZZ_MAX_CELLS)
        return false;
    }
  }
  double side = ceil(mx / 32) + 16;
  return side * side <= FUZZ_MAX_CELLS;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool vips_ok;
  if (!vips_ok) {
    GError *err = NULL;
    if (!_eosin_vips_init(&err))
      abort();
    vips_concurrency_set(1);
    vips_ok = true;
  }
  g_autofree char *in = fuzz_fresh_dir("in");
  g_autofree char *pred = g_build_filename(in, "pred", NULL);
  g_autofree char *truth = g_build_filename(in, "truth", NULL);
  g_mkdir(pred, 0700);
  g_mkdir(truth, 0700);

  /* split the archive */
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *p = (const char *) data, *end = p + size;
  char *name = NULL; /* NULL: the text before the first header */
  while (p <= end) {
    const char *next = NULL;
    for (const char *q = p; q + 4 <= end; q++)
      if ((q == (const char *) data || q[-1] == '\n') && !memcmp(q, "=== ", 4)) {
        next = q;
        break;
      }
    const char *stop = next ? next : end;
    if (!name && stop > p)
      name = g_strdup("pred/Tumor_001.csv");
    if (name && name_ok(name) && names->len < MAX_FILES) {
      g_autofree char *path = g_build_filename(in, name, NULL);
      g_autofree char *dir = g_path_get_dirname(path);
      g_mkdir_with_parents(dir, 0700);
      FILE *f = g_file_test(path, G_FILE_TEST_EXISTS) ? NULL : fopen(path, "wb");
      if (f) {
        fwrite(p, 1, stop - p, f);
        fclose(f);
        g_ptr_array_add(names, g_strdup(name));
      }
    }
    g_clear_pointer(&name, g_free);
    if (!next)
      break;
    const char *nl = memchr(next, '\n', end - next);
    const char *name_end = nl ? nl : end;
    name = g_strndup(next + 4, name_end - next - 4);
    g_strchomp(name);
    p = nl ? nl + 1 : end;
    if (!nl) {
      /* a header at the very end: an empty file */
      if (name_ok(name) && names->len < MAX_FILES) {
        g_autofree char *path = g_build_filename(in, name, NULL);
        g_autofree char *dir = g_path_get_dirname(path);
        g_mkdir_with_parents(dir, 0700);
        if (!g_file_test(path, G_FILE_TEST_EXISTS))
          g_file_set_contents(path, "", 0, NULL);
      }
      break;
    }
  }
  g_free(name);

  GError *err = NULL;
  if (small_enough(in, names)) {
    g_autofree char *ref = g_build_filename(in, "reference.csv", NULL);
    EosinC16Options o = {.pred_dir = pred, .truth = truth,
                         .reference = g_file_test(ref, G_FILE_TEST_EXISTS) ? ref : NULL};
    EosinC16Result res;
    bool ok = eosin_eval_camelyon16(&o, &res, &err);
    fuzz_contract(ok, err, "eosin_eval_camelyon16");
    g_clear_error(&err);
    if (ok) {
      FUZZ_ASSERT(res.froc >= 0 && res.froc <= 1, "FROC %g", res.froc);
      for (int i = 0; i < 6; i++)
        FUZZ_ASSERT(res.sensitivity[i] >= 0 && res.sensitivity[i] <= 1, "sensitivity %g",
                    res.sensitivity[i]);
      FUZZ_ASSERT(isnan(res.auc) || (res.auc >= 0 && res.auc <= 1), "AUC %g", res.auc);
      FUZZ_ASSERT(res.n_slides_froc > 0 && res.n_tumours > 0 && res.n_itc >= 0, "counts");
    }
    eosin_c16_result_clear(&res);
  }

  g_autofree char *c17p = g_build_filename(in, "c17-pred.csv", NULL);
  g_autofree char *c17t = g_build_filename(in, "c17-truth.csv", NULL);
  bool hp = g_file_test(c17p, G_FILE_TEST_EXISTS), ht = g_file_test(c17t, G_FILE_TEST_EXISTS);
  if (hp || ht) {
    double kappa = NAN;
    int n = 0;
    bool ok = eosin_eval_camelyon17(hp ? c17p : c17t, ht ? c17t : c17p, &kappa, &n, &err);
    fuzz_contract(ok, err, "eosin_eval_camelyon17");
    g_clear_error(&err);
    if (ok)
      FUZZ_ASSERT(n > 0 && isfinite(kappa) && kappa <= 1 + 1e-9, "kappa %g over %d", kappa, n);
  }
  return 0;
}
