/*
 * cmd-run.c — `eosin run --task CONFIG SLIDE -o OUTDIR`: one slide.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <unistd.h>

static void progress(int done, int total, double tps, void *data) {
  gint64 *last = data, now = g_get_monotonic_time();
  if (done < total && now - *last < 250000)
    return;
  *last = now;
  double eta = tps > 0 ? (total - done) / tps : 0;
  fprintf(stderr, "\r%d/%d tiles, %.0f tiles/s, ETA %dm%02ds   ", done, total, tps,
          (int) eta / 60, (int) eta % 60);
  if (done == total)
    fprintf(stderr, "\n");
}

int eosin_cmd_run(int argc, char **argv) {
  g_auto(GStrv) command = eosin_cli_command_line(argc, argv); /* before parsing */
  g_autofree char *model = NULL, *device = NULL;
  g_autofree char *task = NULL, *outdir = NULL;
  double mpp = 0;
  int readers = 0;
  gboolean allow_upsample = FALSE, force = FALSE;
  GOptionEntry entries[] = {
      {"task", 't', 0, G_OPTION_ARG_FILENAME, &task, "Task config (configs/*.ini)", "CONFIG"},
      {"output", 'o', 0, G_OPTION_ARG_FILENAME, &outdir, "Output folder", "OUTDIR"},
      {"mpp", 0, 0, G_OPTION_ARG_DOUBLE, &mpp, "µm/px when the slide has none", "UM"},
      {"readers", 'j', 0, G_OPTION_ARG_INT, &readers, "Reader threads (overrides the config)",
       "N"},
      {"model", 0, 0, G_OPTION_ARG_FILENAME, &model, "ONNX model (replaces [model] path)",
       "M.onnx"},
      {"device", 0, 0, G_OPTION_ARG_STRING, &device,
       "auto (GPU if it starts, else CPU), cpu, cuda or cuda:N (replaces [model] device)",
       "DEV"},
      {"allow-upsample", 0, 0, G_OPTION_ARG_NONE, &allow_upsample,
       "Analyse a slide whose pixels are more than 2x coarser than the model's (by default "
       "refused; with this, a warning)", NULL},
      {"force", 'f', 0, G_OPTION_ARG_NONE, &force,
       "Recompute a result already complete in OUTDIR for this slide, config and model (by "
       "default it is kept, as eosin batch keeps it)", NULL},
      {NULL}};
  g_autoptr(GOptionContext) ctx = g_option_context_new("SLIDE - analyse one slide");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(
      ctx, "Writes OUTDIR/<slide>/: every task overlay.tif, heatmap.tif, preview.png,\n"
           "tissue.png, qc.png, tiles.csv, tiles.geojson (as [overlay] tiles_geojson says),\n"
           "report.json and the marker .eosin-output; with [lesions] (metastasis) also\n"
           "detections.csv, lesions.geojson and lesions.xml; ihc cells.geojson and cells.csv;\n"
           "cytology cells.csv, gallery.png and suspicious-cells.geojson. What each holds: the\n"
           "README's table \"Outputs\".\n"
           "A result already complete there for this slide, config and model is kept (exit 0,\n"
           "said on stdout); --force recomputes it. A result of another slide, config or\n"
           "model is recomputed.\n"
           "Exit codes: 0 ok, 1 the slide failed, 2 usage or config, 130 interrupted.");
  if (!eosin_cli_parse(ctx, &argc, &argv))
    return EOSIN_EXIT_USAGE;
  if (argc != 2 || !task || !outdir) {
    fprintf(stderr, "eosin run: expected --task CONFIG, -o OUTDIR and one SLIDE (see --help)\n");
    return EOSIN_EXIT_USAGE;
  }
  if (readers < 0 || readers > 64) {
    fprintf(stderr, "eosin run: --readers must be 1..64\n");
    return EOSIN_EXIT_USAGE;
  }
  if (!eosin_cli_check_mpp("run", mpp))
    return EOSIN_EXIT_USAGE;
  if (!*outdir) {
    fprintf(stderr, "eosin run: -o is empty: give an output folder\n");
    return EOSIN_EXIT_USAGE;
  }
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_cli_load_task(task, model, device);
  if (!cfg)
    return EOSIN_EXIT_USAGE;
  EosinCancel cancel = {0};
  gint64 last = 0;
  EosinRunOptions opts = {.readers_override = readers, .mpp_override = mpp, .cancel = &cancel,
                          .warning = eosin_cli_warning, .note = eosin_cli_note,
                          .allow_upsample = allow_upsample, .argv = (const char *const *) command,
                          .skip_complete = !force};
  if (isatty(STDERR_FILENO)) {
    opts.progress = progress;
    opts.progress_data = &last;
  }
  EosinSignals *sig = eosin_cli_signals_start(&cancel);
  EosinRunResult res;
  bool ok = eosin_run_slide(cfg, argv[1], outdir, &opts, &res, &err);
  eosin_cli_signals_stop(sig);
  if (!ok) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return eosin_cli_exit_code(err);
  }
  if (res.already_complete) {
    printf("%s: already complete for this slide, config and model: kept, not recomputed "
           "(--force recomputes it)\n",
           res.outdir);
    eosin_run_result_clear(&res);
    return EOSIN_EXIT_OK;
  }
  printf("%s: %d tiles analysed (%d planned, %d without tissue) in %.1f s, %.0f tiles/s\n",
         res.outdir, res.tiles_analyzed, res.tiles_planned, res.tiles_skipped, res.seconds,
         res.tiles_per_s);
  eosin_run_result_clear(&res);
  return EOSIN_EXIT_OK;
}
