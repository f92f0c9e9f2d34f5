/*
 * test-eval.c — CAMELYON evaluation on cases computed by hand
 * (../shared/notes/camelyon-evaluation.md): slide AUC with ties, the
 * 0.4444 FROC case with isolated tumour cells, the float32 TP quirk,
 * exclusion (_2) groups in ASAP XML through the CLI, and the CAMELYON17
 * pN stages and quadratic kappa.
 */
#include "test-util.h"

#include "../src/eval-private.h"

#include <math.h>

Test(eval, slide_auc_counts_ties_as_half) {
  double s[] = {.5, .5, .2, .9};
  bool y[] = {false, true, false, true};
  cr_expect_float_eq(_eosin_roc_auc(s, y, 4), 0.875, 1e-12);
  double all_tied[] = {.3, .3, .3};
  bool y2[] = {true, false, false};
  cr_expect_float_eq(_eosin_roc_auc(all_tied, y2, 3), 0.5, 1e-12);
  cr_expect(isnan(_eosin_roc_auc(s, (bool[]){true, true, true, true}, 4)), "one class: NaN");
}

/* A 200 x 300 level-5 mask: three 40 x 40 lesions and two 3 x 3 specks
 * (isolated tumour cells once grown by 75 µm: major axis ~15 < 35.4 px). */
static uint8_t *five_components(void) {
  uint8_t *m = g_new0(uint8_t, 200 * 300);
  int sq[][3] = {{20, 20, 40}, {20, 120, 40}, {120, 20, 40}, {150, 200, 3}, {60, 250, 3}};
  for (int k = 0; k < 5; k++)
    for (int r = sq[k][0]; r < sq[k][0] + sq[k][2]; r++)
      for (int c = sq[k][1]; c < sq[k][1] + sq[k][2]; c++)
        m[r * 300 + c] = 1;
  return m;
}

/* Level-0 coordinates of level-5 pixel (row, col). */
static EosinDetection at(double p, int row, int col) {
  return (EosinDetection){p, col * 32 + 16, row * 32 + 16};
}

Test(eval, froc_hand_computed_case_scores_0_4444) {
  g_autofree uint8_t *mask = five_components();
  EosinLesions les;
  cr_assert(_eosin_c16_lesions(mask, 300, 200, &les, NULL));
  cr_expect_eq(les.n_labels, 5);
  cr_expect_eq(les.n_tumours, 3, "two of five are isolated tumour cells");
  /* labels in row-major order of first pixel: (20,20), (20,120), (60,250) ITC, (120,20), (150,200) ITC */
  cr_expect(les.itc[2] && les.itc[4] && !les.itc[0] && !les.itc[1] && !les.itc[3]);
  /* the 75 µm margin: 4 px outside a lesion still hits it, 6 px does not */
  cr_expect_eq(les.label[20 * 300 + 16], 1);
  cr_expect_eq(les.label[20 * 300 + 14], 0);

  g_autoptr(GArray) fp = g_array_new(FALSE, FALSE, sizeof(double));
  g_autoptr(GArray) tp = g_array_new(FALSE, FALSE, sizeof(float));
  EosinDetection tumour_slide[] = {
      at(0.9, 40, 40),   /* lesion 1 */
      at(0.5, 41, 41),   /* lesion 1 again: one TP per lesion, the maximum */
      at(0.6, 40, 140),  /* lesion 2; lesion 4 is missed */
      at(0.95, 151, 201), /* an ITC: neither TP nor FP */
      at(0.7, 100, 100), /* background: FP */
  };
  EosinDetection normal_slide[] = {at(0.95, 10, 10), at(0.8, 100, 100)};
  cr_assert(_eosin_c16_match(&les, tumour_slide, 5, "tumour", fp, tp, NULL));
  cr_assert(_eosin_c16_match(NULL, normal_slide, 2, "normal", fp, tp, NULL));
  cr_expect_eq(fp->len, 3);
  cr_expect_eq(tp->len, 5, "one entry per label, ITC and missed ones 0");
  EosinFroc f;
  cr_assert(_eosin_froc(fp, tp, 2, les.n_tumours, &f, NULL));
  double want[6] = {0, 1.0 / 3, 1.0 / 3, 2.0 / 3, 2.0 / 3, 2.0 / 3};
  for (int i = 0; i < 6; i++)
    cr_expect_float_eq(f.at_rate[i], want[i], 1e-12, "rate %g: %g", EOSIN_FROC_RATES[i],
                       f.at_rate[i]);
  cr_expect_float_eq(f.score, 4.0 / 9, 1e-12, "score %.6f", f.score);
  _eosin_froc_clear(&f);

  /* a detection outside the mask is an error naming slide and point */
  g_autoptr(GError) err = NULL;
  EosinDetection far = {0.5, 1e6, 10};
  cr_expect_not(_eosin_c16_match(&les, &far, 1, "tumour", fp, tp, &err));
  cr_expect(err && strstr(err->message, "slide tumour") && strstr(err->message, "outside"));
  _eosin_lesions_clear(&les);
}

Test(eval, float32_tp_is_not_counted_at_the_float64_threshold) {
  /* TP 0.95 is stored as float32 (0.949999988); an FP at 0.95 makes 0.95 a
   * threshold at which that TP no longer counts, as in the original */
  g_autoptr(GArray) fp = g_array_new(FALSE, FALSE, sizeof(double));
  g_autoptr(GArray) tp = g_array_new(FALSE, FALSE, sizeof(float));
  double f95 = 0.95;
  float t95 = 0.95f, zero = 0;
  g_array_append_val(fp, f95);
  g_array_append_val(tp, t95);
  g_array_append_val(tp, zero);
  EosinFroc f;
  cr_assert(_eosin_froc(fp, tp, 1, 2, &f, NULL));
  bool seen = false;
  for (int i = 0; i < f.n; i++)
    if (f.threshold[i] == 0.95) {
      seen = true;
      cr_expect_float_eq(f.sensitivity[i], 0.0, 1e-12, "the float32 TP is below 0.95");
      cr_expect_float_eq(f.fps[i], 1.0, 1e-12);
    }
  cr_expect(seen);
  _eosin_froc_clear(&f);
}

static void write_file(const char *dir, const char *name, const char *text) {
  g_autofree char *p = g_build_filename(dir, name, NULL);
  cr_assert(g_file_set_contents(p, text, -1, NULL));
}

Test(eval, camelyon16_cli_with_asap_xml_exclusion_groups) {
  g_autofree char *tmp = tmp_dir();
  g_autofree char *pred = g_build_filename(tmp, "pred", NULL);
  g_autofree char *truth = g_build_filename(tmp, "truth", NULL);
  g_mkdir_with_parents(pred, 0755);
  g_mkdir_with_parents(truth, 0755);
  /* a 3200 px tumour square whose right half is cut out by a _2 polygon */
  write_file(truth, "tumor_001.xml",
             "<?xml version=\"1.0\"?><ASAP_Annotations><Annotations>"
             "<Annotation Name=\"A\" Type=\"Polygon\" PartOfGroup=\"Tumor\"><Coordinates>"
             "<Coordinate Order=\"0\" X=\"1000\" Y=\"1000\"/><Coordinate Order=\"1\" X=\"4200\" "
             "Y=\"1000\"/><Coordinate Order=\"2\" X=\"4200\" Y=\"4200\"/><Coordinate Order=\"3\" "
             "X=\"1000\" Y=\"4200\"/></Coordinates></Annotation>"
             "<Annotation Name=\"B\" Type=\"Polygon\" PartOfGroup=\"_2\"><Coordinates>"
             "<Coordinate Order=\"0\" X=\"2600\" Y=\"900\"/><Coordinate Order=\"1\" X=\"4300\" "
             "Y=\"900\"/><Coordinate Order=\"2\" X=\"4300\" Y=\"4300\"/><Coordinate Order=\"3\" "
             "X=\"2600\" Y=\"4300\"/></Coordinates></Annotation>"
             "</Annotations><AnnotationGroups/></ASAP_Annotations>");
  /* hit in the kept half (0.8), one in the cut-out half (FP 0.9) */
  write_file(pred, "tumor_001.csv", "0.8,1500,2500\n0.9,3800,2500\n");
  write_file(pred, "normal_001.csv", "0.3,500,500\n");
  write_file(pred, "camelyon-slides.csv", "name,probability\ntumor_001,0.8\nnormal_001,0.3\n");
  char *out = NULL, *errs = NULL;
  const char *argv[] = {"eval", "camelyon16", "--pred", pred, "--truth", truth, NULL};
  int rc = run_eosin(argv, &out, &errs);
  cr_assert_eq(rc, 0, "%s", errs);
  /* FPs 0.9 and 0.3 over 2 slides; the lesion's TP 0.8: sensitivity 1 from
   * 1/2 FP per slide (threshold 0.8: one FP), 0 at 1/4 */
  cr_expect(strstr(out, "slide AUC 1.0000 over 2 slides"), "%s", out);
  cr_expect(strstr(out, "1 lesions"), "%s", out);
  cr_expect(strstr(out, "at 1/4 FP/slide: 0.0000") && strstr(out, "at 1/2 FP/slide: 1.0000"),
            "%s", out);
  cr_expect(strstr(out, "FROC 0.8333"), "%s", out);
  g_autofree char *png = g_build_filename(pred, "froc.png", NULL);
  g_autofree char *csv = g_build_filename(pred, "froc.csv", NULL);
  cr_expect(g_file_test(png, G_FILE_TEST_EXISTS) && g_file_test(csv, G_FILE_TEST_EXISTS));
  g_free(out);
  g_free(errs);

  /* a tumour slide named by the reference without truth: a clear error */
  g_autofree char *ref = g_build_filename(tmp, "ref.csv", NULL);
  cr_assert(g_file_set_contents(ref, "tumor_001,Tumor\nnormal_001,Normal\ntumor_002,Tumor\n",
                                -1, NULL));
  write_file(pred, "camelyon-slides.csv", "tumor_001,0.8\nnormal_001,0.3\ntumor_002,0.1\n");
  const char *argv2[] = {"eval", "camelyon16", "--pred", pred, "--truth", truth, "--reference",
                         ref, NULL};
  rc = run_eosin(argv2, &out, &errs);
  cr_expect_eq(rc, 1);
  cr_expect(strstr(errs, "tumor_002") && strstr(errs, "no tumor_002.xml"), "%s", errs);
  g_free(out);
  g_free(errs);
}

Test(eval, camelyon17_stages_and_quadratic_kappa) {
  EosinNodeCat neg[] = {0, 0, 0, 0, 0}, itc[] = {0, 1, 0, 0, 0}, mi[] = {2, 1, 0, 0, 0},
               n1[] = {3, 2, 0, 0, 0}, n2[] = {3, 2, 2, 2, 0}, micro4[] = {2, 2, 2, 2, 0};
  cr_expect_eq(_eosin_pn_stage(neg, 5), EOSIN_PN0);
  cr_expect_eq(_eosin_pn_stage(itc, 5), EOSIN_PN0_I);
  cr_expect_eq(_eosin_pn_stage(mi, 5), EOSIN_PN1MI);
  cr_expect_eq(_eosin_pn_stage(n1, 5), EOSIN_PN1);
  cr_expect_eq(_eosin_pn_stage(n2, 5), EOSIN_PN2);
  cr_expect_eq(_eosin_pn_stage(micro4, 5), EOSIN_PN1MI, "pN2 needs a macro-metastasis");
  /* truth pN0 pN1 pN2 pN1mi vs predicted pN0 pN2 pN2 pN0: by hand
   * sum W O = 1 + 4 = 5, sum W E = 25, kappa = 0.8 */
  int a[] = {0, 3, 4, 2}, b[] = {0, 4, 4, 0};
  cr_expect_float_eq(_eosin_quadratic_kappa(a, b, 4, 5), 0.8, 1e-12);

  g_autofree char *tmp = tmp_dir();
  g_autofree char *truth = g_build_filename(tmp, "truth.csv", NULL);
  g_autofree char *pred = g_build_filename(tmp, "pred.csv", NULL);
  cr_assert(g_file_set_contents(truth, "patient,stage\npatient_000.zip,pN0\npatient_001.zip,pN1\n"
                                       "patient_002.zip,pN2\npatient_003.zip,pN1mi\n", -1, NULL));
  /* predictions as node categories: staged here */
  cr_assert(g_file_set_contents(
      pred, "patient_000_node_0.tif,negative\npatient_001_node_0.tif,macro\n"
            "patient_001_node_1.tif,micro\npatient_001_node_2.tif,micro\n"
            "patient_001_node_3.tif,micro\npatient_002_node_0.tif,macro\n"
            "patient_002_node_1.tif,macro\npatient_002_node_2.tif,macro\n"
            "patient_002_node_3.tif,macro\npatient_003_node_0.tif,negative\n", -1, NULL));
  char *out = NULL, *errs = NULL;
  const char *argv[] = {"eval", "camelyon17", "--pred", pred, "--truth", truth, NULL};
  int rc = run_eosin(argv, &out, &errs);
  cr_assert_eq(rc, 0, "%s", errs);
  cr_expect(strstr(out, "kappa 0.8000 over 4 patients"), "%s", out);
  g_free(out);
  g_free(errs);
}

/* Random cases scored by scripts/camelyon-reference.py with scipy /
 * scikit-image / numpy as the challenge's script does: Eosin must agree to
 * 1e-9 on the FROC score and the slide AUC. */
Test(eval, camelyon16_equals_independent_python_reference_on_random_cases) {
  g_autofree char *dir = td("camelyon");
  g_autofree char *list_path = g_build_filename(dir, "cases.txt", NULL);
  g_autofree char *list = slurp(list_path);
  g_auto(GStrv) cases = g_strsplit(list, "\n", -1);
  int n = 0;
  for (char **c = cases; *c && **c; c++) {
    g_autofree char *pred = g_build_filename(dir, *c, "pred", NULL);
    g_autofree char *truth = g_build_filename(dir, *c, "truth", NULL);
    g_autofree char *exp_path = g_build_filename(dir, *c, "expected.txt", NULL);
    g_autofree char *exp = slurp(exp_path);
    char *end;
    double froc = g_ascii_strtod(exp, &end), auc = g_ascii_strtod(end, NULL);
    EosinC16Options o = {.pred_dir = pred, .truth = truth};
    EosinC16Result r;
    g_autoptr(GError) err = NULL;
    cr_assert(eosin_eval_camelyon16(&o, &r, &err), "%s: %s", *c, err ? err->message : "");
    cr_expect(fabs(r.froc - froc) < 1e-9, "%s: FROC %.12f, reference %.12f", *c, r.froc, froc);
    cr_expect(fabs(r.auc - auc) < 1e-9, "%s: AUC %.12f, reference %.12f", *c, r.auc, auc);
    eosin_c16_result_clear(&r);
    n++;
  }
  cr_expect_eq(n, 8);
}
