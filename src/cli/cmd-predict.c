/*
 * cmd-predict.c — `eosin predict --config CONFIG [--model M.onnx]
 * (IMAGES_DIR | LIST) -o PREDS.csv`: class probabilities of patch images.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <unistd.h>

/* Progress on a terminal: "done/total images", rewritten in place; @data
 * is a bool *, set once a line is open. */
static void progress(int done, int total, void *data) {
  *(bool *) data = true;
  fprintf(stderr, "\r%d/%d images", done, total);
}

/* An image that cannot be read: "eosin predict: skipped PATH: why". */
static void note(EosinNoteKind kind, const char *text, void *data) {
  fprintf(stderr, "eosin predict: %s\n", text);
}

int eosin_cmd_predict(int argc, char **argv) {
  g_autofree char *config = NULL, *model = NULL, *device = NULL, *out = NULL;
  int batch = 0;
  GOptionEntry entries[] = {
      {"config", 'c', 0, G_OPTION_ARG_FILENAME, &config,
       "Task config with a [model] group (classes, mean, std...)", "CONFIG"},
      {"model", 0, 0, G_OPTION_ARG_FILENAME, &model, "ONNX model (replaces [model] path)",
       "M.onnx"},
      {"device", 0, 0, G_OPTION_ARG_STRING, &device,
       "auto (GPU if it starts, else CPU), cpu, cuda or cuda:N", "DEV"},
      {"batch", 'b', 0, G_OPTION_ARG_INT, &batch, "Images per batch (overrides the config)",
       "N"},
      {"output", 'o', 0, G_OPTION_ARG_FILENAME, &out, "CSV to write", "PREDS.csv"},
      {NULL}};
  g_autoptr(GOptionContext) ctx =
      g_option_context_new("(IMAGES_DIR | LIST) - class probabilities of patch images");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(
      ctx, "IMAGES_DIR is searched recursively for .png .jpg .jpeg .tif .tiff .bmp .webp; a\n"
           "LIST file names one image per line. PREDS.csv: a header 'path,<class>,...' in the\n"
           "config's class order, then one row per image (path relative to IMAGES_DIR or as\n"
           "listed), sorted by path. Images of another size than the model's input are\n"
           "resized. Unreadable images are reported and left out.\n"
           "Exit codes: 0 ok, 1 failed, 2 usage or config, 3 some images unreadable,\n"
           "130 interrupted.");
  if (!eosin_cli_parse(ctx, &argc, &argv))
    return EOSIN_EXIT_USAGE;
  if (out && !*out) {
    fprintf(stderr, "eosin predict: -o is empty: give a CSV file to write\n");
    return EOSIN_EXIT_USAGE;
  }
  if (argc != 2 || !config || !out) {
    fprintf(stderr, "eosin predict: expected --config CONFIG, -o PREDS.csv and one IMAGES_DIR "
                    "or LIST (see --help)\n");
    return EOSIN_EXIT_USAGE;
  }
  if (batch < 0 || batch > 1024) {
    fprintf(stderr, "eosin predict: --batch must be 1..1024\n");
    return EOSIN_EXIT_USAGE;
  }
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(config, &err);
  if (!cfg) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return EOSIN_EXIT_USAGE;
  }
  if (!eosin_cli_model_options(cfg, model, device))
    return EOSIN_EXIT_USAGE;
  if (batch)
    cfg->batch_size = batch;
  EosinCancel cancel = {0};
  bool line_open = false;
  EosinPredictOptions opts = {.cancel = &cancel, .note = note, .data = &line_open};
  if (isatty(STDERR_FILENO))
    opts.progress = progress;
  EosinSignals *sig = eosin_cli_signals_start(&cancel);
  EosinPredictResult res;
  bool ok = eosin_predict(cfg, argv[1], out, &opts, &res, &err);
  eosin_cli_signals_stop(sig);
  if (line_open)
    fputc('\n', stderr);
  if (!ok) {
    fprintf(stderr, "eosin: %s\n", err->message);
    eosin_predict_result_clear(&res);
    return eosin_cli_exit_code(err);
  }
  printf("%s: %d images (%d unreadable, %d resized) in %.1f s, %.0f images/s on %s\n", out,
         res.images, res.failed, res.resized, res.seconds,
         res.seconds > 0 ? res.images / res.seconds : 0, res.backend);
  eosin_predict_result_clear(&res);
  return res.failed ? EOSIN_EXIT_PARTIAL : EOSIN_EXIT_OK;
}
