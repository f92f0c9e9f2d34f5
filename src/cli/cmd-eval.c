/*
 * cmd-eval.c — `eosin eval camelyon16 --pred DIR --truth DIR [--reference
 * CSV] [-o OUTDIR]` and `eosin eval camelyon17 --pred CSV --truth CSV`.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>

/* A malformed input file (a row that does not parse, a duplicate name, a
 * value out of range) exits 2 like a bad config; a file that cannot be
 * read, a tumour slide without truth or a score that cannot be computed
 * exits 1. */
static int eval_exit(const GError *err) {
  return g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG) ? EOSIN_EXIT_USAGE
                                                               : EOSIN_EXIT_FAILED;
}

static int eval_c16(int argc, char **argv) {
  g_autofree char *pred = NULL, *truth = NULL, *ref = NULL, *out = NULL;
  GOptionEntry entries[] = {
      {"pred", 'p', 0, G_OPTION_ARG_FILENAME, &pred,
       "Predictions: <slide>.csv or <slide>/detections.csv (confidence,X,Y) and "
       "camelyon-slides.csv (name,probability)", "DIR"},
      {"truth", 't', 0, G_OPTION_ARG_FILENAME, &truth,
       "Ground truth: <slide>.xml (ASAP) or <slide>_mask.png/.tif, _Mask.tif (level 5)",
       "DIR"},
      {"reference", 'r', 0, G_OPTION_ARG_FILENAME, &ref,
       "Slide labels: name,Tumor|Normal,... (default: slides with truth are tumour)", "CSV"},
      {"output", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Where froc.csv and froc.png go "
       "(default: DIR)", "OUTDIR"},
      {NULL}};
  g_autoptr(GOptionContext) ctx = g_option_context_new("- CAMELYON16 slide AUC and lesion FROC");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(
      ctx, "Exactly as the challenge's Evaluation_FROC.py: level-5 masks, 75 um margin,\n"
           "isolated tumour cells ignored, float32 TP maxima; FROC score = mean sensitivity\n"
           "at 1/4, 1/2, 1, 2, 4, 8 false positives per slide. Test_049 is dropped and\n"
           "Test_114 left out of the FROC, as in the challenge.\n"
           "CSV files may have a header naming their columns (confidence,X,Y;\n"
           "name,probability; image,type,...); any other row that does not parse, a\n"
           "duplicate slide, a probability outside [0, 1] or a coordinate outside\n"
           "0..4194304 px is an error naming file and line.\n"
           "Exit codes: 0 scored, 1 a file could not be read or the score cannot be\n"
           "computed, 2 bad command line or a malformed input file.");
  if (!eosin_cli_parse(ctx, &argc, &argv))
    return EOSIN_EXIT_USAGE;
  if (!pred || !truth || argc != 1) {
    fprintf(stderr, "eosin eval camelyon16: expected --pred DIR and --truth DIR (see --help)\n");
    return EOSIN_EXIT_USAGE;
  }
  EosinC16Options o = {.pred_dir = pred, .truth = truth, .reference = ref,
                       .out_dir = out ? out : pred};
  EosinC16Result res;
  g_autoptr(GError) err = NULL;
  if (!eosin_eval_camelyon16(&o, &res, &err)) {
    fprintf(stderr, "eosin: %s\n", err->message);
    eosin_c16_result_clear(&res);
    return eval_exit(err);
  }
  if (!isnan(res.auc))
    printf("slide AUC %.4f over %d slides\n", res.auc, res.n_slides_auc);
  else
    printf("slide AUC: no %s/camelyon-slides.csv\n", pred);
  printf("FROC %.4f over %d slides, %d lesions (%d isolated-tumour-cell lesions ignored)\n",
         res.froc, res.n_slides_froc, res.n_tumours, res.n_itc);
  const char *rates[] = {"1/4", "1/2", "1", "2", "4", "8"};
  for (int i = 0; i < 6; i++)
    printf("  sensitivity at %s FP/slide: %.4f\n", rates[i], res.sensitivity[i]);
  printf("curve: %s, %s\n", res.curve_csv, res.curve_png);
  eosin_c16_result_clear(&res);
  return EOSIN_EXIT_OK;
}

static int eval_c17(int argc, char **argv) {
  g_autofree char *pred = NULL, *truth = NULL;
  GOptionEntry entries[] = {
      {"pred", 'p', 0, G_OPTION_ARG_FILENAME, &pred, "Predicted stages / node categories", "CSV"},
      {"truth", 't', 0, G_OPTION_ARG_FILENAME, &truth, "True stages / node categories", "CSV"},
      {NULL}};
  g_autoptr(GOptionContext) ctx = g_option_context_new("- CAMELYON17 pN-stage kappa");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(
      ctx, "Rows: patient_X.zip,<pN0|pN0(i+)|pN1mi|pN1|pN2> and patient_X_node_Y.tif,\n"
           "<negative|itc|micro|macro>; a patient without a stage row is staged from its\n"
           "nodes. Score: quadratic weighted Cohen kappa over the five stages.\n"
           "A header such as patient,stage is allowed; any other row that does not parse\n"
           "or a patient or node named twice is an error naming file and line.\n"
           "Exit codes: 0 scored, 1 a file could not be read, 2 bad command line or a\n"
           "malformed input file.");
  if (!eosin_cli_parse(ctx, &argc, &argv))
    return EOSIN_EXIT_USAGE;
  if (!pred || !truth || argc != 1) {
    fprintf(stderr, "eosin eval camelyon17: expected --pred CSV and --truth CSV\n");
    return EOSIN_EXIT_USAGE;
  }
  double kappa;
  int n;
  g_autoptr(GError) err = NULL;
  if (!eosin_eval_camelyon17(pred, truth, &kappa, &n, &err)) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return eval_exit(err);
  }
  printf("quadratic weighted kappa %.4f over %d patients\n", kappa, n);
  return EOSIN_EXIT_OK;
}

int eosin_cmd_eval(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "camelyon16"))
    return eval_c16(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "camelyon17"))
    return eval_c17(argc - 1, argv + 1);
  if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("Usage: eosin eval camelyon16 --pred DIR --truth DIR [--reference CSV] [-o OUTDIR]\n"
           "       eosin eval camelyon17 --pred CSV --truth CSV\n\n"
           "camelyon16: slide-level ROC AUC and the lesion FROC of the challenge's\n"
           "Evaluation_FROC.py; camelyon17: patient pN stages scored by quadratic weighted\n"
           "kappa. Each takes --help.\n");
    return EOSIN_EXIT_OK;
  }
  fprintf(stderr, "eosin eval: expected camelyon16 or camelyon17 (each takes --help)\n");
  return EOSIN_EXIT_USAGE;
}
