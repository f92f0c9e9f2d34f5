/*
 * test-tta.c — [model] tta = dihedral (issue 22): the 8 orientations are
 * the dihedral group (identity first, four quarter turns back to the
 * start, all eight different), and `eosin predict` with it gives, for each
 * image, the mean of the 8 plain predictions of the image turned each way;
 * a segmentation model refuses it, naming file, key and value.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <math.h>
#include <vips/vips.h>

Test(tta, the_eight_orientations_are_the_dihedral_group) {
  const int S = 3;
  uint8_t src[27], a[27], b[27], seen[8][27];
  for (int i = 0; i < 27; i++)
    src[i] = (uint8_t) (i * 7 + 1);
  eosin_dihedral(src, S, 0, a);
  cr_expect(!memcmp(a, src, 27), "orientation 0 is the image itself");
  memcpy(a, src, 27);
  for (int t = 0; t < 4; t++) {
    eosin_dihedral(a, S, 1, b);
    memcpy(a, b, 27);
  }
  cr_expect(!memcmp(a, src, 27), "four quarter turns come back to the start");
  for (int k = 0; k < 8; k++) {
    eosin_dihedral(src, S, k, seen[k]);
    for (int j = 0; j < k; j++)
      cr_expect(memcmp(seen[j], seen[k], 27), "orientations %d and %d differ", j, k);
  }
  /* the mirror: pixel (0, 0) of orientation 4 is the source's (2, 0) */
  cr_expect(!memcmp(seen[4], src + 3 * 2, 3));
}

/* The probabilities of predict's CSV @path: path -> float[C]. */
static GHashTable *read_preds(const char *path, int *C) {
  g_autoptr(GError) err = NULL;
  g_autoptr(GPtrArray) rows = _eosin_csv_read(path, "predictions", EOSIN_CSV_PLAIN, &err);
  cr_assert(rows && rows->len > 1, "%s: %s", path, err ? err->message : "");
  *C = ((EosinCsvRow *) rows->pdata[0])->n - 1;
  GHashTable *h = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  for (guint i = 1; i < rows->len; i++) {
    EosinCsvRow *r = rows->pdata[i];
    double *v = g_new(double, *C);
    for (int k = 0; k < *C; k++)
      v[k] = g_ascii_strtod(r->fields[k + 1], NULL);
    g_hash_table_insert(h, g_strdup(r->fields[0]), v);
  }
  return h;
}

static void write_png(const uint8_t *rgb, int side, const char *path) {
  VipsImage *img = vips_image_new_from_memory(rgb, (size_t) side * side * 3, side, side, 3,
                                              VIPS_FORMAT_UCHAR);
  cr_assert(img && vips_pngsave(img, path, NULL) == 0, "%s", vips_error_buffer());
  g_object_unref(img);
}

Test(tta, predict_with_dihedral_tta_is_the_mean_of_the_eight_orientations, .timeout = 120) {
  cr_assert(vips_init("eosin-tests") == 0);
  /* the metastasis reference model (a CNN that does see orientation; the
   * colour classifier of the other tests pools it away), at its 96 px
   * input: no resizing */
  g_autofree char *here = g_path_get_dirname(__FILE__);
  g_autofree char *meta = g_build_filename(here, "..", "configs", "metastasis.ini", NULL);
  g_autofree char *onnx = g_build_filename(here, "..", "models", "metastasis-pcam-small.onnx", NULL);
  if (!g_file_test(meta, G_FILE_TEST_IS_REGULAR) || !g_file_test(onnx, G_FILE_TEST_IS_REGULAR))
    cr_skip_test("%s or %s is not here (a bundle without the source tree): skipped", meta, onnx);
  g_autofree char *onnx_abs = g_canonicalize_filename(onnx, NULL);
  const int S = 96, N = 6;
  g_autofree char *plain_dir = tmp_dir(), *turned_dir = tmp_dir();
  guint32 seed = 7;
  for (int i = 0; i < N; i++) {
    g_autofree uint8_t *px = g_malloc((size_t) S * S * 3), *t = g_malloc((size_t) S * S * 3);
    /* a colour gradient across and noise: every orientation looks different */
    for (int y = 0; y < S; y++)
      for (int x = 0; x < S; x++) {
        seed = seed * 1664525u + 1013904223u;
        uint8_t *p = px + 3 * ((size_t) y * S + x);
        p[0] = (uint8_t) (x * 4 * (i % 3 == 0) + (seed >> 26));
        p[1] = (uint8_t) (y * 4 * (i % 3 == 1) + (seed >> 27));
        p[2] = (uint8_t) ((x + y) * 2 * (i % 3 == 2) + (seed >> 28));
      }
    g_autofree char *name = g_strdup_printf("img%d.png", i);
    g_autofree char *path = g_build_filename(plain_dir, name, NULL);
    write_png(px, S, path);
    for (int k = 0; k < 8; k++) {
      eosin_dihedral(px, S, k, t);
      g_autofree char *tn = g_strdup_printf("img%d-k%d.png", i, k);
      g_autofree char *tp = g_build_filename(turned_dir, tn, NULL);
      write_png(t, S, tp);
    }
  }
  /* configs/metastasis.ini with its model's path made absolute, and again
   * with tta = dihedral */
  g_autofree char *mtext = slurp(meta);
  char *pl = strstr(mtext, "\npath = ");
  cr_assert(pl);
  char *eol = strchr(pl + 1, '\n');
  g_autofree char *text = g_strdup_printf("%.*s\npath = %s%s", (int) (pl - mtext), mtext,
                                          onnx_abs, eol);
  /* the config says tta = none (and why): the same with dihedral */
  char *none = strstr(text, "\ntta = none\n");
  cr_assert(none, "configs/metastasis.ini says whether TTA is on");
  g_autofree char *tta_text = g_strdup_printf("%.*s\ntta = dihedral\n%s", (int) (none - text),
                                              text, none + strlen("\ntta = none\n"));
  g_autofree char *dir = tmp_dir();
  g_autofree char *cfg = g_build_filename(dir, "plain.ini", NULL);
  g_autofree char *tta_cfg = g_build_filename(dir, "tta.ini", NULL);
  cr_assert(g_file_set_contents(cfg, text, -1, NULL));
  cr_assert(g_file_set_contents(tta_cfg, tta_text, -1, NULL));
  g_autofree char *csv_tta = g_build_filename(dir, "tta.csv", NULL);
  g_autofree char *csv_plain = g_build_filename(dir, "plain.csv", NULL);
  g_autofree char *csv_turned = g_build_filename(dir, "turned.csv", NULL);
  const char *a1[] = {"predict", "--config", tta_cfg, plain_dir, "-o", csv_tta, NULL};
  const char *a2[] = {"predict", "--config", cfg, plain_dir, "-o", csv_plain, NULL};
  const char *a3[] = {"predict", "--config", cfg, turned_dir, "-o", csv_turned, NULL};
  const char *const *runs[] = {a1, a2, a3};
  for (int r = 0; r < 3; r++) {
    g_autofree char *err = NULL;
    cr_assert_eq(run_eosin(runs[r], NULL, &err), 0, "%s", err);
  }
  int C, C2, C3;
  g_autoptr(GHashTable) tta = read_preds(csv_tta, &C);
  g_autoptr(GHashTable) plain = read_preds(csv_plain, &C2);
  g_autoptr(GHashTable) turned = read_preds(csv_turned, &C3);
  cr_assert(C == C2 && C == C3 && C == 2);
  double moved = 0;
  for (int i = 0; i < N; i++) {
    g_autofree char *name = g_strdup_printf("img%d.png", i);
    const double *t = g_hash_table_lookup(tta, name), *p = g_hash_table_lookup(plain, name);
    cr_assert(t && p, "%s predicted", name);
    for (int k = 0; k < C; k++) {
      double mean = 0;
      for (int o = 0; o < 8; o++) {
        g_autofree char *tn = g_strdup_printf("img%d-k%d.png", i, o);
        const double *v = g_hash_table_lookup(turned, tn);
        cr_assert(v, "%s predicted", tn);
        mean += v[k] / 8;
      }
      cr_expect_float_eq(t[k], mean, 2e-6, "%s class %d: tta %.6f, mean of the 8 %.6f", name, k,
                         t[k], mean);
      moved = MAX(moved, fabs(t[k] - p[k]));
    }
  }
  cr_expect_gt(moved, 1e-4, "TTA changes some prediction (else this test could not fail)");
}

Test(tta, segmentation_models_and_unknown_values_are_refused) {
  g_autofree char *seg = write_config(
      "[task]\nname = t\nanalyzer = cnn\n[tiling]\ntile_size = 64\nmpp = 0.5\n"
      "[model]\npath = m.onnx\nkind = segmentation\nclasses = a, b\ntta = dihedral\n");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) c1 = eosin_config_load(seg, &err);
  cr_expect_null(c1);
  cr_expect(err && strstr(err->message, "tta") && strstr(err->message, "dihedral") &&
                strstr(err->message, "classification"),
            "%s", err ? err->message : "");
  g_clear_error(&err);
  g_autofree char *bad = write_config(
      "[task]\nname = t\nanalyzer = cnn\n[tiling]\ntile_size = 64\nmpp = 0.5\n"
      "[model]\npath = m.onnx\nclasses = a, b\ntta = rotate\n");
  g_autoptr(EosinConfig) c2 = eosin_config_load(bad, &err);
  cr_expect_null(c2);
  cr_expect(err && strstr(err->message, "rotate"), "%s", err ? err->message : "");
}
