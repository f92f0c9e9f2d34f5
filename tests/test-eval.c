/*
 * test-eval.c — CAMELYON evaluation on cases computed by hand
 * (../shared/notes/camelyon-evaluation.md): slide AUC with ties, the
 * 0.4444 FROC case with isolated tumour cells, the float32 TP quirk,
 * exclusion (_2) groups in ASAP XML through the CLI, and the CAMELYON17
 * pN stages and quadratic kappa.
 */
#include "test-util.h"
#include <vips/vips.h>

#include "eval/eval-private.h"

#include <glib/gstdio.h>
#include <math.h>
#include <sys/stat.h>

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
  EosinTruthLesions les;
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
  _eosin_truth_lesions_clear(&les);
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
  /* froc.png (cairo): the dots of the six rates where the curve says, the
   * one at 1/4 FP on 0, the one at 2 FP on 1 */
  cr_assert(vips_init("eosin-tests") == 0);
  g_autoptr(VipsImage) plot = vips_image_new_from_file(png, NULL);
  cr_assert(plot, "%s", vips_error_buffer());
  const double at[][2] = {{0.25, 0}, {2, 1}, {8, 1}};
  for (int k = 0; k < 3; k++) {
    double *v = NULL;
    int n = 0;
    cr_assert(vips_getpoint(plot, &v, &n, (int) lround(_eosin_froc_px(at[k][0])),
                            (int) lround(_eosin_froc_py(at[k][1])), NULL) == 0);
    cr_expect(v[0] < 80 && v[2] > 140, "a blue dot at %g FP, sensitivity %g: %g %g %g", at[k][0],
              at[k][1], v[0], v[1], v[2]);
    g_free(v);
  }
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

/* Random cases scored by scripts/reference/camelyon-reference.py with scipy /
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

/* ------------------------------------------------- hostile input files */

/* A 3200 px tumour square in level-0 px [1000, 4200)^2 as ASAP XML. */
#define SQUARE_XML(X2)                                                                      \
  "<?xml version=\"1.0\"?><ASAP_Annotations><Annotations>"                                  \
  "<Annotation Name=\"A\" Type=\"Polygon\" PartOfGroup=\"Tumor\"><Coordinates>"              \
  "<Coordinate Order=\"0\" X=\"1000\" Y=\"1000\"/><Coordinate Order=\"1\" X=\"" X2 "\" "     \
  "Y=\"1000\"/><Coordinate Order=\"2\" X=\"4200\" Y=\"4200\"/><Coordinate Order=\"3\" "      \
  "X=\"1000\" Y=\"4200\"/></Coordinates></Annotation></Annotations></ASAP_Annotations>"

/* A CAMELYON16 case in a new temporary folder: truth/tumor_001.xml (the
 * square), pred/tumor_001.csv with a TP and an FP, pred/normal_001.csv with
 * an FP, pred/camelyon-slides.csv. Tests overwrite files to break it. */
typedef struct {
  char *tmp, *pred, *truth;
} C16Case;

static void c16_case(C16Case *c) {
  c->tmp = tmp_dir();
  c->pred = g_build_filename(c->tmp, "pred", NULL);
  c->truth = g_build_filename(c->tmp, "truth", NULL);
  g_mkdir_with_parents(c->pred, 0755);
  g_mkdir_with_parents(c->truth, 0755);
  write_file(c->truth, "tumor_001.xml", SQUARE_XML("4200"));
  write_file(c->pred, "tumor_001.csv", "0.8,1500,2500\n0.9,8000,8000\n");
  write_file(c->pred, "normal_001.csv", "0.3,500,500\n");
  write_file(c->pred, "camelyon-slides.csv", "name,probability\ntumor_001,0.8\nnormal_001,0.3\n");
}

static void c16_case_clear(C16Case *c) {
  g_free(c->tmp);
  g_free(c->pred);
  g_free(c->truth);
}

/* Runs `eosin eval camelyon16` on @c (with --reference @ref when not
 * NULL); returns the exit status, stdout and stderr (caller frees). */
static int c16_run(const C16Case *c, const char *ref, char **out, char **errs) {
  const char *argv[] = {"eval", "camelyon16", "--pred", c->pred, "--truth", c->truth,
                        ref ? "--reference" : NULL, ref, NULL};
  return run_eosin(argv, out, errs);
}

/* Expects `eval camelyon16` on @c to fail with exit @rc and a message
 * holding every string of @want (NULL-terminated). */
static void expect_c16_error(const C16Case *c, const char *ref, int rc_want,
                             const char *const *want, const char *what) {
  char *out = NULL, *errs = NULL;
  int rc = c16_run(c, ref, &out, &errs);
  cr_expect_eq(rc, rc_want, "%s: exit %d, want %d; stdout %s stderr %s", what, rc, rc_want, out,
               errs);
  for (int i = 0; want[i]; i++)
    cr_expect(strstr(errs, want[i]), "%s: stderr lacks \"%s\": %s", what, want[i], errs);
  g_free(out);
  g_free(errs);
}

/* Expects `eval camelyon16` on @c to succeed with @want in its output. */
static void expect_c16_ok(const C16Case *c, const char *ref, const char *want, const char *what) {
  char *out = NULL, *errs = NULL;
  int rc = c16_run(c, ref, &out, &errs);
  cr_expect_eq(rc, 0, "%s: exit %d: %s", what, rc, errs);
  cr_expect(strstr(out, want), "%s: stdout lacks \"%s\": %s", what, want, out);
  g_free(out);
  g_free(errs);
}

#define WANT(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(eval, camelyon16_baseline_case_scores) {
  C16Case c;
  c16_case(&c);
  /* the lesion's TP 0.8, FPs 0.9 and 0.3 over 2 slides */
  expect_c16_ok(&c, NULL, "FROC 0.8333 over 2 slides, 1 lesions", "baseline");
  expect_c16_ok(&c, NULL, "slide AUC 1.0000 over 2 slides", "baseline");
  c16_case_clear(&c);
}

/* (int) ceil(1e15 / 32) overflowed past the grid-size check and g_new0
 * was asked for 1.8e19 bytes (an abort); now every coordinate is checked
 * in double before it is converted, and the error names file, line, value. */
Test(eval, camelyon16_huge_or_negative_coordinates_are_errors_not_aborts) {
  C16Case c;
  c16_case(&c);
  g_autofree char *xml = g_build_filename(c.truth, "tumor_001.xml", NULL);
  g_autofree char *det = g_build_filename(c.pred, "tumor_001.csv", NULL);

  write_file(c.truth, "tumor_001.xml", SQUARE_XML("1e15"));
  expect_c16_error(&c, NULL, 2, WANT(xml, "line 1", "1e15"), "XML X=1e15");
  write_file(c.truth, "tumor_001.xml", SQUARE_XML("-1e15"));
  expect_c16_error(&c, NULL, 2, WANT(xml, "line 1", "-1e15"), "XML X=-1e15");
  write_file(c.truth, "tumor_001.xml", SQUARE_XML("-3"));
  expect_c16_error(&c, NULL, 2, WANT(xml, "line 1", "-3", "negative"), "XML X=-3");
  /* each coordinate within bounds, but the grid they span is too large */
  write_file(c.truth, "tumor_001.xml",
             "<?xml version=\"1.0\"?><ASAP_Annotations><Annotations>\n"
             "<Annotation Name=\"A\" Type=\"Polygon\" PartOfGroup=\"Tumor\"><Coordinates>\n"
             "<Coordinate Order=\"0\" X=\"1000\" Y=\"1000\"/>\n"
             "<Coordinate Order=\"1\" X=\"4000000\" Y=\"1000\"/>\n"
             "<Coordinate Order=\"2\" X=\"4000000\" Y=\"4000000\"/>\n"
             "</Coordinates></Annotation></Annotations></ASAP_Annotations>\n");
  expect_c16_error(&c, NULL, 2, WANT(xml, "line 4", "4e+06", "too large"), "XML grid too large");

  write_file(c.truth, "tumor_001.xml", SQUARE_XML("4200"));
  write_file(c.pred, "tumor_001.csv", "0.8,1500,2500\n0.9,1e11,100\n");
  expect_c16_error(&c, NULL, 2, WANT(det, "line 2", "1e11"), "detection X=1e11");
  write_file(c.pred, "tumor_001.csv", "0.8,1500,2500\n0.9,100,-1e300\n");
  expect_c16_error(&c, NULL, 2, WANT(det, "line 2", "-1e300"), "detection Y=-1e300");
  write_file(c.pred, "tumor_001.csv", "0.8,1500,2500\n0.9,-0.5,100\n");
  expect_c16_error(&c, NULL, 2, WANT(det, "line 2", "-0.5"), "detection X=-0.5");
  write_file(c.pred, "tumor_001.csv", "0.8,1500,2500\n\n0.9,100,4000000\n0.9,4000000,100\n");
  expect_c16_error(&c, NULL, 2, WANT(det, "line 3", "line 4", "too large"),
                   "detections spanning too large a grid");
  /* a normal slide's detections are checked as well */
  write_file(c.pred, "tumor_001.csv", "0.8,1500,2500\n");
  write_file(c.pred, "normal_001.csv", "0.3,1e20,500\n");
  g_autofree char *ndet = g_build_filename(c.pred, "normal_001.csv", NULL);
  expect_c16_error(&c, NULL, 2, WANT(ndet, "line 1", "1e20"), "normal slide X=1e20");

  /* the library entry point converts nothing out of range either */
  g_autofree uint8_t *mask = g_new0(uint8_t, 10 * 10);
  mask[55] = 1;
  EosinTruthLesions les;
  cr_assert(_eosin_c16_lesions(mask, 10, 10, &les, NULL));
  g_autoptr(GArray) fp = g_array_new(FALSE, FALSE, sizeof(double));
  g_autoptr(GArray) tp = g_array_new(FALSE, FALSE, sizeof(float));
  EosinDetection bad[] = {{0.5, 1e300, 10}, {0.5, 10, -1e300}, {0.5, NAN, 10}};
  for (int i = 0; i < 3; i++) {
    g_autoptr(GError) err = NULL;
    cr_expect_not(_eosin_c16_match(&les, &bad[i], 1, "s", fp, tp, &err), "case %d", i);
    cr_expect(err && strstr(err->message, "outside"), "case %d", i);
  }
  _eosin_truth_lesions_clear(&les);
  c16_case_clear(&c);
}

/* A PNG file of @w x @h 8-bit grey pixels whose IDAT holds only one empty
 * row: enough for a header read, far too little to decode. */
static uint32_t crc32_of(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return c ^ 0xffffffffu;
}

static void png_chunk(GByteArray *b, const char *type, const uint8_t *data, uint32_t n) {
  uint8_t be[4] = {n >> 24, n >> 16, n >> 8, n};
  g_byte_array_append(b, be, 4);
  guint start = b->len;
  g_byte_array_append(b, (const uint8_t *) type, 4);
  if (n)
    g_byte_array_append(b, data, n);
  uint32_t crc = crc32_of(b->data + start, n + 4);
  uint8_t cb[4] = {crc >> 24, crc >> 16, crc >> 8, crc};
  g_byte_array_append(b, cb, 4);
}

static void write_png_header_only(const char *path, uint32_t w, uint32_t h) {
  g_autoptr(GByteArray) b = g_byte_array_new();
  g_byte_array_append(b, (const uint8_t *) "\x89PNG\r\n\x1a\n", 8);
  uint8_t ihdr[13] = {w >> 24, w >> 16, w >> 8, w, h >> 24, h >> 16, h >> 8, h, 8, 0, 0, 0, 0};
  png_chunk(b, "IHDR", ihdr, 13);
  /* zlib stream of one stored empty block */
  const uint8_t idat[] = {0x78, 0x01, 0x01, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01};
  png_chunk(b, "IDAT", idat, sizeof idat);
  png_chunk(b, "IEND", NULL, 0);
  cr_assert(g_file_set_contents(path, (const char *) b->data, b->len, NULL));
}

/* A level-5 mask image @w x @h with a @s x @s tumour square at (@r, @c). */
static void write_mask_png(const char *path, int w, int h, int r0, int c0, int s) {
  g_autofree uint8_t *px = g_new0(uint8_t, (size_t) w * h);
  for (int r = r0; r < r0 + s; r++)
    for (int c = c0; c < c0 + s; c++)
      px[(size_t) r * w + c] = 255;
  VipsImage *im = vips_image_new_from_memory(px, (size_t) w * h, w, h, 1, VIPS_FORMAT_UCHAR);
  cr_assert(im);
  cr_assert_eq(vips_pngsave(im, path, NULL), 0, "%s", vips_error_buffer());
  g_object_unref(im);
}

Test(eval, camelyon16_mask_images_absurd_or_empty_are_errors) {
  cr_assert_eq(VIPS_INIT("eosin-tests"), 0);
  C16Case c;
  c16_case(&c);
  g_autofree char *xml = g_build_filename(c.truth, "tumor_001.xml", NULL);
  g_unlink(xml);
  g_autofree char *png = g_build_filename(c.truth, "tumor_001_mask.png", NULL);
  /* the level-5 square [31, 131) of the XML case as a mask image */
  write_mask_png(png, 300, 300, 31, 31, 100);
  expect_c16_ok(&c, NULL, "FROC 0.8333 over 2 slides, 1 lesions", "mask image");
  /* 100000 x 100000 px would be 1e10 bytes: refused from the header */
  write_png_header_only(png, 100000, 100000);
  expect_c16_error(&c, NULL, 2, WANT(png, "100000 x 100000"), "absurd mask size");
  /* a tumour slide whose mask has no tumour pixel */
  write_mask_png(png, 300, 300, 0, 0, 0);
  expect_c16_error(&c, NULL, 2, WANT(png, "tumor_001", "no tumour"), "empty mask");
  /* the original's _Mask.tif name is found when listing the truth too */
  g_unlink(png);
  g_autofree char *tif = g_build_filename(c.truth, "tumor_001_Mask.tif", NULL);
  g_autofree char *tmp_png = g_build_filename(c.tmp, "m.png", NULL);
  write_mask_png(tmp_png, 300, 300, 31, 31, 100);
  VipsImage *im = vips_image_new_from_file(tmp_png, NULL);
  cr_assert(im);
  cr_assert_eq(vips_tiffsave(im, tif, NULL), 0);
  g_object_unref(im);
  expect_c16_ok(&c, NULL, "FROC 0.8333 over 2 slides, 1 lesions", "_Mask.tif");
  c16_case_clear(&c);
}

Test(eval, camelyon16_asap_xml_without_usable_tumour_polygons_is_an_error) {
  C16Case c;
  c16_case(&c);
  g_autofree char *xml = g_build_filename(c.truth, "tumor_001.xml", NULL);
  /* a tumour Annotation with no Coordinate: a truncated or hand-edited file */
  write_file(c.truth, "tumor_001.xml",
             "<?xml version=\"1.0\"?>\n<ASAP_Annotations><Annotations>\n"
             "<Annotation Name=\"A\" Type=\"Polygon\" PartOfGroup=\"Tumor\"><Coordinates>"
             "</Coordinates></Annotation>\n</Annotations></ASAP_Annotations>\n");
  expect_c16_error(&c, NULL, 2, WANT(xml, "line 3", "\"A\"", "no Coordinate"),
                   "Annotation without Coordinates");
  /* only groups that are not tumour: the slide would have no lesion */
  write_file(c.truth, "tumor_001.xml",
             "<?xml version=\"1.0\"?><ASAP_Annotations><Annotations>"
             "<Annotation Name=\"A\" Type=\"Polygon\" PartOfGroup=\"metastasis\"><Coordinates>"
             "<Coordinate Order=\"0\" X=\"1000\" Y=\"1000\"/><Coordinate Order=\"1\" X=\"4200\" "
             "Y=\"1000\"/><Coordinate Order=\"2\" X=\"4200\" Y=\"4200\"/></Coordinates>"
             "</Annotation></Annotations></ASAP_Annotations>");
  expect_c16_error(&c, NULL, 2, WANT(xml, "no tumour polygon", "metastasis"), "unknown group");
  write_file(c.truth, "tumor_001.xml", "<?xml version=\"1.0\"?><ASAP_Annotations>"
                                       "<Annotations/></ASAP_Annotations>");
  expect_c16_error(&c, NULL, 2, WANT(xml, "no tumour polygon"), "no Annotation");
  write_file(c.truth, "tumor_001.xml", "");
  expect_c16_error(&c, NULL, 2, WANT(xml), "empty XML");
  write_file(c.truth, "tumor_001.xml", "<html><body>not ASAP</body></html>");
  expect_c16_error(&c, NULL, 2, WANT(xml, "ASAP_Annotations", "html"), "not ASAP XML");
  /* a 2-vertex tumour polygon beside a real one (CAMELYON16's Tumor_054
   * has one) covers no pixel and is no error */
  write_file(c.truth, "tumor_001.xml",
             "<?xml version=\"1.0\"?><ASAP_Annotations><Annotations>"
             "<Annotation Name=\"L\" Type=\"Polygon\" PartOfGroup=\"_0\"><Coordinates>"
             "<Coordinate Order=\"0\" X=\"9000\" Y=\"9000\"/><Coordinate Order=\"1\" X=\"9100\" "
             "Y=\"9100\"/></Coordinates></Annotation>"
             "<Annotation Name=\"A\" Type=\"Polygon\" PartOfGroup=\"Tumor\"><Coordinates>"
             "<Coordinate Order=\"0\" X=\"1000\" Y=\"1000\"/><Coordinate Order=\"1\" X=\"4200\" "
             "Y=\"1000\"/><Coordinate Order=\"2\" X=\"4200\" Y=\"4200\"/><Coordinate Order=\"3\" "
             "X=\"1000\" Y=\"4200\"/></Coordinates></Annotation></Annotations></ASAP_Annotations>");
  expect_c16_ok(&c, NULL, "FROC 0.8333 over 2 slides, 1 lesions", "2-vertex polygon");
  c16_case_clear(&c);
}

/* A first row that does not parse used to be taken for a header: a file
 * with semicolons lost its first detection and scored 0 with exit 0. */
Test(eval, camelyon16_first_row_is_a_header_only_when_it_names_the_columns) {
  C16Case c;
  c16_case(&c);
  g_autofree char *det = g_build_filename(c.pred, "tumor_001.csv", NULL);
  g_autofree char *slides = g_build_filename(c.pred, "camelyon-slides.csv", NULL);
  write_file(c.pred, "tumor_001.csv", "0.8;1500;2500\n");
  expect_c16_error(&c, NULL, 2, WANT(det, "line 1", "0.8;1500;2500"), "semicolon detections");
  write_file(c.pred, "tumor_001.csv", "0.8,1500,2500,7\n");
  expect_c16_error(&c, NULL, 2, WANT(det, "line 1", "0.8,1500,2500,7"), "four fields");
  write_file(c.pred, "tumor_001.csv", "0.8,1500,2500\nconfidence,X,Y\n");
  expect_c16_error(&c, NULL, 2, WANT(det, "line 2", "confidence,X,Y"), "header not first");
  write_file(c.pred, "tumor_001.csv", "conf,X,Y\n0.8,1500,2500\n");
  expect_c16_error(&c, NULL, 2, WANT(det, "line 1", "conf,X,Y"), "unknown header");
  /* headers that name the columns are fine */
  write_file(c.pred, "tumor_001.csv", "confidence,X,Y\n0.8,1500,2500\n0.9,8000,8000\n");
  expect_c16_ok(&c, NULL, "FROC 0.8333", "confidence,X,Y header");
  write_file(c.pred, "tumor_001.csv", "# Eosin\nProbability,x,y\n0.8,1500,2500\n0.9,8000,8000\n");
  expect_c16_ok(&c, NULL, "FROC 0.8333", "comment and probability,x,y header");

  write_file(c.pred, "camelyon-slides.csv", "tumor_001;0.8\nnormal_001;0.3\n");
  expect_c16_error(&c, NULL, 2, WANT(slides, "line 1", "tumor_001;0.8"), "semicolon slides");
  write_file(c.pred, "camelyon-slides.csv", "tumor_001,0.8x\nnormal_001,0.3\n");
  expect_c16_error(&c, NULL, 2, WANT(slides, "line 1", "tumor_001,0.8x"), "bad first slide row");
  write_file(c.pred, "camelyon-slides.csv", "image,probability\ntumor_001,0.8\nnormal_001,0.3\n");
  expect_c16_ok(&c, NULL, "slide AUC 1.0000 over 2 slides", "image,probability header");
  write_file(c.pred, "camelyon-slides.csv", "tumor_001,0.8\nnormal_001,0.3\n");
  expect_c16_ok(&c, NULL, "slide AUC 1.0000 over 2 slides", "no header");

  /* the reference: no header (as CAMELYON16's), a header naming its
   * columns, or an error */
  g_autofree char *ref = g_build_filename(c.tmp, "ref.csv", NULL);
  write_file(c.tmp, "ref.csv", "tumor_001,Tumor,IDC,Macro\nnormal_001,Normal,DCIS,None\n");
  expect_c16_ok(&c, ref, "FROC 0.8333 over 2 slides", "reference without header");
  write_file(c.tmp, "ref.csv",
             "image,type,histotype,metastasis\ntumor_001,Tumor,IDC,Macro\nnormal_001,Normal\n");
  expect_c16_ok(&c, ref, "FROC 0.8333 over 2 slides", "reference with header");
  write_file(c.tmp, "ref.csv", "tumor_001,Tumour\nnormal_001,Normal\n");
  expect_c16_error(&c, ref, 2, WANT(ref, "line 1", "tumor_001,Tumour"), "bad first reference row");
  write_file(c.tmp, "ref.csv", "tumor_001,Tumor\nnormal_001\n");
  expect_c16_error(&c, ref, 2, WANT(ref, "line 2", "normal_001"), "one-field reference row");
  write_file(c.tmp, "ref.csv", "# nothing\n");
  expect_c16_error(&c, ref, 2, WANT(ref, "no slides"), "empty reference");
  c16_case_clear(&c);
}

Test(eval, camelyon16_duplicate_slides_are_errors_naming_both_lines) {
  C16Case c;
  c16_case(&c);
  g_autofree char *slides = g_build_filename(c.pred, "camelyon-slides.csv", NULL);
  write_file(c.pred, "camelyon-slides.csv",
             "name,probability\ntumor_001,0.8\nnormal_001,0.3\ntumor_001,0.1\n");
  expect_c16_error(&c, NULL, 2, WANT(slides, "line 4", "line 2", "tumor_001"),
                   "duplicate slide probability");
  write_file(c.pred, "camelyon-slides.csv", "tumor_001,0.8\nnormal_001,0.3\n");
  g_autofree char *ref = g_build_filename(c.tmp, "ref.csv", NULL);
  write_file(c.tmp, "ref.csv", "tumor_001,Tumor\nnormal_001,Normal\nnormal_001.tif,Tumor\n");
  expect_c16_error(&c, ref, 2, WANT(ref, "line 3", "line 2", "normal_001"),
                   "duplicate reference slide");
  c16_case_clear(&c);
}

Test(eval, camelyon16_probabilities_outside_0_1_are_errors) {
  C16Case c;
  c16_case(&c);
  g_autofree char *det = g_build_filename(c.pred, "tumor_001.csv", NULL);
  g_autofree char *slides = g_build_filename(c.pred, "camelyon-slides.csv", NULL);
  const char *bad[] = {"1.5", "-0.1", "1e300", "nan", "inf", NULL};
  for (int i = 0; bad[i]; i++) {
    g_autofree char *d = g_strdup_printf("0.8,1500,2500\n%s,8000,8000\n", bad[i]);
    write_file(c.pred, "tumor_001.csv", d);
    expect_c16_error(&c, NULL, 2, WANT(det, "line 2", bad[i]), bad[i]);
  }
  write_file(c.pred, "tumor_001.csv", "0,1500,2500\n1,8000,8000\n");
  expect_c16_ok(&c, NULL, "FROC", "0 and 1 are probabilities");
  write_file(c.pred, "tumor_001.csv", "0.8,1500,2500\n0.9,8000,8000\n");
  for (int i = 0; bad[i]; i++) {
    g_autofree char *s = g_strdup_printf("tumor_001,0.8\nnormal_001,%s\n", bad[i]);
    write_file(c.pred, "camelyon-slides.csv", s);
    expect_c16_error(&c, NULL, 2, WANT(slides, "line 2", bad[i]), bad[i]);
  }
  c16_case_clear(&c);
}

/* `eosin batch` writes camelyon-slides.csv as RFC 4180 CSV: a name with a
 * comma is quoted; CRLF files from spreadsheets read the same. */
Test(eval, camelyon16_reads_quoted_names_and_crlf) {
  C16Case c;
  c16_case(&c);
  g_autofree char *x0 = g_build_filename(c.truth, "tumor_001.xml", NULL);
  g_autofree char *x1 = g_build_filename(c.truth, "tumor, \"001\".xml", NULL);
  cr_assert_eq(g_rename(x0, x1), 0);
  g_autofree char *d0 = g_build_filename(c.pred, "tumor_001.csv", NULL);
  g_unlink(d0);
  write_file(c.pred, "tumor, \"001\".csv", "confidence,X,Y\r\n0.8,1500,2500\r\n0.9,8000,8000\r\n");
  write_file(c.pred, "camelyon-slides.csv",
             "name,probability\r\n\"tumor, \"\"001\"\"\",0.8\r\nnormal_001,0.3\r\n");
  expect_c16_ok(&c, NULL, "FROC 0.8333 over 2 slides, 1 lesions", "quoted names");
  expect_c16_ok(&c, NULL, "slide AUC 1.0000 over 2 slides", "quoted names");
  g_autofree char *ref = g_build_filename(c.tmp, "ref.csv", NULL);
  write_file(c.tmp, "ref.csv", "\"tumor, \"\"001\"\"\",Tumor\r\nnormal_001,Normal\r\n");
  expect_c16_ok(&c, ref, "slide AUC 1.0000 over 2 slides", "quoted reference");
  /* eosin batch's layout, OUTDIR/<slide>/detections.csv, with the names
   * its manifest test uses: a comma, quotes, a line break */
  const char *odd[] = {"a,b", "say \"hi\"", "two\nlines"};
  g_autoptr(GString) sl = g_string_new("name,probability\n");
  for (int i = 0; i < 3; i++) {
    g_autofree char *xml = g_strconcat(odd[i], ".xml", NULL);
    write_file(c.truth, xml, SQUARE_XML("4200"));
    g_autofree char *sub = g_build_filename(c.pred, odd[i], NULL);
    g_mkdir_with_parents(sub, 0755);
    write_file(sub, "detections.csv", "0.8,1500,2500\n0.9,8000,8000\n");
    _eosin_csv_append_field(sl, odd[i]);
    g_string_append_printf(sl, ",0.%d\n", 7 + i);
  }
  g_string_append(sl, "\"tumor, \"\"001\"\"\",0.8\nnormal_001,0.3\n");
  write_file(c.pred, "camelyon-slides.csv", sl->str);
  /* 4 TPs at 0.8, FPs 4 x 0.9 and 0.3 over 5 slides: 0.8 FP per slide
   * before any TP counts, so 0 at 1/4 and 1/2, 1 from 1 on: 4/6 */
  expect_c16_ok(&c, NULL, "FROC 0.6667 over 5 slides, 4 lesions", "batch's odd names");
  expect_c16_ok(&c, NULL, "slide AUC 1.0000 over 5 slides", "batch's odd names");
  /* an unclosed quote is an error naming the file and line */
  g_autofree char *slides = g_build_filename(c.pred, "camelyon-slides.csv", NULL);
  write_file(c.pred, "camelyon-slides.csv", "name,probability\n\"tumor_001,0.8\n");
  expect_c16_error(&c, NULL, 2, WANT(slides, "line 2"), "unclosed quote");
  c16_case_clear(&c);
}

/* A FIFO used to block g_file_get_contents for ever. */
Test(eval, fifos_and_folders_are_refused, .timeout = 30) {
  C16Case c;
  c16_case(&c);
  g_autofree char *det = g_build_filename(c.pred, "tumor_001.csv", NULL);
  g_unlink(det);
  cr_assert_eq(mkfifo(det, 0644), 0);
  expect_c16_error(&c, NULL, 1, WANT(det, "FIFO"), "FIFO detections");
  g_unlink(det);
  write_file(c.pred, "tumor_001.csv", "0.8,1500,2500\n");
  g_autofree char *xml = g_build_filename(c.truth, "tumor_001.xml", NULL);
  g_unlink(xml);
  cr_assert_eq(mkfifo(xml, 0644), 0);
  expect_c16_error(&c, NULL, 1, WANT(xml, "FIFO"), "FIFO XML");
  g_unlink(xml);
  cr_assert_eq(g_mkdir(xml, 0755), 0);
  expect_c16_error(&c, NULL, 1, WANT(xml, "directory"), "folder XML");

  g_autofree char *c17 = g_build_filename(c.tmp, "c17.csv", NULL);
  cr_assert_eq(mkfifo(c17, 0644), 0);
  char *out = NULL, *errs = NULL;
  const char *argv[] = {"eval", "camelyon17", "--pred", c17, "--truth", c17, NULL};
  cr_expect_eq(run_eosin(argv, &out, &errs), 1);
  cr_expect(strstr(errs, c17) && strstr(errs, "FIFO"), "%s", errs);
  g_free(out);
  g_free(errs);
  c16_case_clear(&c);
}

/* Runs `eval camelyon17` on two CSV texts; returns the exit status. */
static int c17_run(const char *pred_text, const char *truth_text, char **out, char **errs,
                   char **pred_path, char **truth_path) {
  g_autofree char *tmp = tmp_dir();
  *truth_path = g_build_filename(tmp, "truth.csv", NULL);
  *pred_path = g_build_filename(tmp, "pred.csv", NULL);
  cr_assert(g_file_set_contents(*truth_path, truth_text, -1, NULL));
  cr_assert(g_file_set_contents(*pred_path, pred_text, -1, NULL));
  const char *argv[] = {"eval", "camelyon17", "--pred", *pred_path, "--truth", *truth_path, NULL};
  return run_eosin(argv, out, errs);
}

static void expect_c17(const char *pred_text, const char *truth_text, int rc_want,
                       const char *const *want, bool in_pred, const char *what) {
  char *out = NULL, *errs = NULL, *p = NULL, *t = NULL;
  int rc = c17_run(pred_text, truth_text, &out, &errs, &p, &t);
  cr_expect_eq(rc, rc_want, "%s: exit %d: %s %s", what, rc, out, errs);
  const char *stream = rc_want ? errs : out;
  if (rc_want)
    cr_expect(strstr(errs, in_pred ? p : t), "%s: no file named: %s", what, errs);
  for (int i = 0; want[i]; i++)
    cr_expect(strstr(stream, want[i]), "%s: lacks \"%s\": %s", what, want[i], stream);
  g_free(out);
  g_free(errs);
  g_free(p);
  g_free(t);
}

Test(eval, camelyon17_headers_duplicates_and_quoting) {
  const char *truth = "patient,stage\npatient_000.zip,pN0\npatient_001.zip,pN1\n";
  const char *pred = "patient_000.zip,pN0\npatient_001.zip,pN1\n";
  expect_c17(pred, truth, 0, WANT("kappa 1.0000 over 2 patients"), false, "baseline");
  /* a bad first row is not a header */
  expect_c17("patient_000.zip,pN9\npatient_001.zip,pN1\n", truth, 2,
             WANT("line 1", "patient_000.zip,pN9"), true, "bad first row");
  expect_c17("patient_000.zip;pN0\npatient_001.zip;pN1\n", truth, 2,
             WANT("line 1", "patient_000.zip;pN0"), true, "semicolons");
  expect_c17("patient_000.zip,pN0,\npatient_001.zip,pN1\n", truth, 2, WANT("line 1"), true,
             "three fields");
  expect_c17("Patient,Stage\npatient_000.zip,pN0\npatient_001.zip,pN1\n", truth, 0,
             WANT("kappa 1.0000 over 2 patients"), true, "header with other names");
  /* duplicates, naming both lines */
  expect_c17(pred, "patient,stage\npatient_000.zip,pN0\npatient_001.zip,pN1\npatient_000,pN2\n", 2,
             WANT("line 4", "line 2", "patient_000"), false, "duplicate patient");
  expect_c17("patient_000_node_0.tif,negative\npatient_000_node_1.tif,itc\n"
             "patient_000_node_0.tif,macro\npatient_001.zip,pN1\n",
             truth, 2, WANT("line 3", "line 1", "patient_000_node_0"), true, "duplicate node");
  expect_c17("_node_0.tif,macro\npatient_000.zip,pN0\npatient_001.zip,pN1\n", truth, 2,
             WANT("line 1", "no patient"), true, "node without patient");
  /* quoted fields and CRLF */
  expect_c17("\"patient_000.zip\",\"pN0\"\r\npatient_001_node_0.tif,macro\r\n", truth, 0,
             WANT("kappa 1.0000 over 2 patients"), true, "quoted and CRLF");
  expect_c17(pred, "patient,stage\n", 2, WANT("no patients"), false, "no patients");
}

/* DIR/<slide>.csv beside DIR/<slide>/detections.csv: which one counts was
 * silently the first; a stale copy would score without a word. */
Test(eval, camelyon16_detections_in_two_places_are_an_error) {
  C16Case c;
  c16_case(&c);
  g_autofree char *sub = g_build_filename(c.pred, "tumor_001", NULL);
  g_mkdir_with_parents(sub, 0755);
  write_file(sub, "detections.csv", "0.1,1500,2500\n");
  g_autofree char *a = g_build_filename(c.pred, "tumor_001.csv", NULL);
  g_autofree char *b = g_build_filename(sub, "detections.csv", NULL);
  expect_c16_error(&c, NULL, 2, WANT(a, b, "both"), "two detection files");
  g_unlink(a);
  write_file(sub, "detections.csv", "0.8,1500,2500\n0.9,8000,8000\n");
  expect_c16_ok(&c, NULL, "FROC 0.8333 over 2 slides, 1 lesions", "<slide>/detections.csv");
  c16_case_clear(&c);
}

/* The FROC counts by binary search: 10^6 detections score in well under
 * a second, with the counts a scan per threshold gives. */
Test(eval, froc_of_a_million_detections_is_fast_and_exact) {
  g_autoptr(GArray) fp = g_array_new(FALSE, FALSE, sizeof(double));
  g_autoptr(GArray) tp = g_array_new(FALSE, FALSE, sizeof(float));
  GRand *rng = g_rand_new_with_seed(17);
  for (int i = 0; i < 1000000; i++) {
    double p = g_rand_int_range(rng, 0, 100000) / 1e5;
    g_array_append_val(fp, p);
  }
  for (int i = 0; i < 300; i++) {
    float t = g_rand_int_range(rng, 0, 1000) / 1e3f;
    g_array_append_val(tp, t);
  }
  g_rand_free(rng);
  gint64 t0 = g_get_monotonic_time();
  EosinFroc f;
  cr_assert(_eosin_froc(fp, tp, 129, 300, &f, NULL));
  double s = (g_get_monotonic_time() - t0) / 1e6;
  cr_expect(s < 5, "%.1f s", s);
  /* a few thresholds checked by a plain scan */
  const double *F = (const double *) fp->data;
  const float *T = (const float *) tp->data;
  for (int i = 0; i + 1 < f.n; i += f.n / 7 + 1) {
    size_t nf = 0, nt = 0;
    for (guint j = 0; j < fp->len; j++)
      nf += F[j] >= f.threshold[i];
    for (guint j = 0; j < tp->len; j++)
      nt += (double) T[j] >= f.threshold[i];
    cr_expect_float_eq(f.fps[i], (double) nf / 129, 1e-12, "threshold %g", f.threshold[i]);
    cr_expect_float_eq(f.sensitivity[i], (double) nt / 300, 1e-12, "threshold %g", f.threshold[i]);
  }
  _eosin_froc_clear(&f);
}
