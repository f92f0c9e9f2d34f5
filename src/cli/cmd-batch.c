/*
 * cmd-batch.c — `eosin batch --task CONFIG (--manifest FILE | DIR) -o OUTDIR`:
 * a queue of slides, resumable, one bad slide never stopping the rest.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <unistd.h>

/* Keeps this process's shard of @items: --shard K/N, else the Slurm array
 * task's (its environment), else all; says which on stderr. False (after
 * the message) when either is malformed. */
static bool select_shard(const char *shard, GPtrArray *items) {
  g_autoptr(GError) err = NULL;
  int k = 1, n = 1;
  bool found = shard != NULL;
  const char *from = "--shard";
  if (shard) {
    if (!_eosin_shard_parse(shard, &k, &n, &err)) {
      fprintf(stderr, "eosin batch: %s\n", err->message);
      return false;
    }
  } else {
    EosinSlurmArray env = {g_getenv("SLURM_ARRAY_TASK_ID"), g_getenv("SLURM_ARRAY_TASK_MIN"),
                           g_getenv("SLURM_ARRAY_TASK_MAX"), g_getenv("SLURM_ARRAY_TASK_STEP"),
                           g_getenv("SLURM_ARRAY_TASK_COUNT")};
    if (!_eosin_shard_from_slurm(&env, &k, &n, &found, &err)) {
      fprintf(stderr, "eosin batch: %s\n", err->message);
      return false;
    }
    from = "the Slurm array task";
  }
  if (!found)
    return true;
  guint total = items->len;
  _eosin_batch_keep_shard(items, k, n);
  fprintf(stderr, "eosin: shard %d/%d (from %s): %u of %u slides\n", k, n, from, items->len,
          total);
  return true;
}

int eosin_cmd_batch(int argc, char **argv) {
  g_auto(GStrv) command = eosin_cli_command_line(argc, argv); /* before parsing */
  g_autofree char *model = NULL, *device = NULL;
  g_autofree char *task = NULL, *outdir = NULL, *manifest = NULL;
  int readers = 0;
  g_autofree char *shard = NULL;
  gboolean refuse_stale = FALSE, no_pipeline = FALSE, allow_upsample = FALSE;
  GOptionEntry entries[] = {
      {"task", 't', 0, G_OPTION_ARG_FILENAME, &task, "Task config (configs/*.ini)", "CONFIG"},
      {"manifest", 'm', 0, G_OPTION_ARG_FILENAME, &manifest,
       "Slide list: one 'path' or 'path,mpp' per line", "FILE"},
      {"output", 'o', 0, G_OPTION_ARG_FILENAME, &outdir, "Output folder", "OUTDIR"},
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
      {"refuse-stale", 0, 0, G_OPTION_ARG_NONE, &refuse_stale,
       "A result in OUTDIR of another slide, config or model fails that slide instead of "
       "being recomputed", NULL},
      {"shard", 0, 0, G_OPTION_ARG_STRING, &shard,
       "Analyse shard K of N: every N-th slide of the manifest sorted by path, from the "
       "K-th (default inside a Slurm array job: its task's place in the array)",
       "K/N"},
      {"no-pipeline", 0, 0, G_OPTION_ARG_NONE, &no_pipeline,
       "Write each slide's outputs before the next slide is read (by default they are "
       "written while the next is analysed; the results are the same)", NULL},
      {NULL}};
  g_autoptr(GOptionContext) ctx = g_option_context_new("[DIR] - analyse many slides");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(
      ctx, "Slides come from --manifest or from the slide files in DIR. One folder per slide\n"
           "in OUTDIR; slides already complete there (for this slide, config and model) are\n"
           "skipped, so rerunning a killed batch resumes it; a result of another slide,\n"
           "config or model is recomputed (or, with --refuse-stale, fails that slide).\n"
           "Manifest: CSV, 'path' or 'path,mpp' per line; '#' starts a comment at the start\n"
           "of a line or after a blank (quote a path that holds one).\n"
           "A slide's outputs are written while the next slide is analysed (--no-pipeline:\n"
           "one after the other); the results are the same byte for byte.\n"
           "OUTDIR/batch-summary.csv lists every slide with its status and error.\n"
           "Exit codes: 0 all slides done, 1 the batch could not run, 2 usage or config,\n"
           "3 finished with failed slides, 130 interrupted.");
  if (!eosin_cli_parse(ctx, &argc, &argv))
    return EOSIN_EXIT_USAGE;
  if (outdir && !*outdir) {
    fprintf(stderr, "eosin batch: -o is empty: give an output folder\n");
    return EOSIN_EXIT_USAGE;
  }
  if (!task || !outdir || (manifest ? argc != 1 : argc != 2)) {
    fprintf(stderr,
            "eosin batch: expected --task CONFIG, -o OUTDIR and either --manifest FILE or "
            "one DIR (see --help)\n");
    return EOSIN_EXIT_USAGE;
  }
  if (readers < 0 || readers > 64) {
    fprintf(stderr, "eosin batch: --readers must be 1..64\n");
    return EOSIN_EXIT_USAGE;
  }
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_cli_load_task(task, model, device);
  if (!cfg)
    return EOSIN_EXIT_USAGE;
  g_autoptr(GPtrArray) items = manifest ? eosin_batch_from_manifest(manifest, &err)
                                        : eosin_batch_from_dir(argv[1], &err);
  if (!items) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return EOSIN_EXIT_USAGE;
  }
  if (!select_shard(shard, items))
    return EOSIN_EXIT_USAGE;
  EosinCancel cancel = {0};
  /* progress lines only on a terminal: a log file gets the slides' notes */
  bool progress = isatty(STDERR_FILENO);
  EosinRunOptions opts = {.readers_override = readers, .cancel = &cancel,
                          .argv = (const char *const *) command,
                          .allow_upsample = allow_upsample, .note = eosin_cli_note,
                          .note_data = &progress};
  EosinBatchObserver obs = {eosin_cli_batch_progress, eosin_cli_batch_slide_done, NULL};
  EosinSignals *sig = eosin_cli_signals_start(&cancel);
  EosinBatchResult res;
  bool ok = eosin_batch_run(cfg, items, outdir, &opts, progress ? &obs : NULL, refuse_stale,
                            !no_pipeline, &res, &err);
  eosin_cli_signals_stop(sig);
  if (!ok) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return eosin_cli_exit_code(err);
  }
  printf("batch: %d slides: %d done, %d already complete, %d failed%s; summary in "
         "%s/batch-summary.csv\n",
         res.total, res.done, res.skipped, res.failed, res.interrupted ? ", interrupted" : "",
         outdir);
  if (res.interrupted)
    return EOSIN_EXIT_INTERRUPTED;
  return res.failed ? EOSIN_EXIT_PARTIAL : EOSIN_EXIT_OK;
}
