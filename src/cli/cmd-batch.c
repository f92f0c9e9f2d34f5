/*
 * cmd-batch.c — `eosin batch --task CONFIG (--manifest FILE | DIR) -o OUTDIR`:
 * a queue of slides, resumable, one bad slide never stopping the rest.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* This process's shard of @items: --shard K/N, else the Slurm array
 * task's (its environment), else all (*@k = *@n = 0); says which on
 * stderr. False (after the message) when either is malformed. */
static bool select_shard(const char *shard, GPtrArray *items, int *k, int *n) {
  g_autoptr(GError) err = NULL;
  *k = *n = 0;
  bool found = shard != NULL;
  const char *from = "--shard";
  if (shard) {
    if (!_eosin_shard_parse(shard, k, n, &err)) {
      fprintf(stderr, "eosin batch: %s\n", err->message);
      return false;
    }
  } else {
    EosinSlurmArray env = {g_getenv("SLURM_ARRAY_TASK_ID"), g_getenv("SLURM_ARRAY_TASK_MIN"),
                           g_getenv("SLURM_ARRAY_TASK_MAX"), g_getenv("SLURM_ARRAY_TASK_STEP"),
                           g_getenv("SLURM_ARRAY_TASK_COUNT")};
    if (!_eosin_shard_from_slurm(&env, k, n, &found, &err)) {
      fprintf(stderr, "eosin batch: %s\n", err->message);
      return false;
    }
    from = "the Slurm array task";
  }
  if (!found) {
    *k = *n = 0;
    return true;
  }
  g_autoptr(GArray) mine = _eosin_shard_indices(items, *k, *n);
  fprintf(stderr, "eosin: shard %d/%d (from %s): %u of %u slides\n", *k, *n, from, mine->len,
          items->len);
  return true;
}

/* `eosin batch --merge OUTDIR`: the summaries rebuilt from every worker's
 * rows (what the merge job of `eosin slurm submit` runs). Exit 0 when
 * every slide is done, 3 when some failed or have no result yet. */
static int merge_only(const char *outdir) {
  g_autoptr(GError) err = NULL;
  EosinBatchSurvey sv = {0};
  if (!eosin_batch_merge(outdir, &sv, &err)) {
    fprintf(stderr, "eosin batch --merge: %s\n", err->message);
    return eosin_cli_exit_code(err);
  }
  printf("batch %s: %d slides: %d done, %d failed, %d running, %d pending; summary in "
         "%s/batch-summary.csv\n",
         sv.id, sv.slides, sv.done, sv.failed, sv.running, sv.pending, outdir);
  int rc = sv.failed || sv.running || sv.pending ? EOSIN_EXIT_PARTIAL : EOSIN_EXIT_OK;
  _eosin_batch_survey_clear(&sv);
  return rc;
}

/* The devices of --workers N / --devices LIST: NULL (one process, as
 * before) when neither is given; else one per worker (g_strfreev). False
 * after a message when they are malformed. */
static bool worker_devices(int workers, const char *devices, const char *device, char ***out) {
  *out = NULL;
  if (!workers && !devices)
    return true;
  if (workers && devices) {
    fprintf(stderr, "eosin batch: give --workers N or --devices LIST, not both\n");
    return false;
  }
  if (devices && device) {
    fprintf(stderr, "eosin batch: give --devices LIST or --device DEV, not both\n");
    return false;
  }
  if (workers) {
    if (workers < 1 || workers > 64) {
      fprintf(stderr, "eosin batch: --workers %d: give 1..64\n", workers);
      return false;
    }
    g_autoptr(GPtrArray) d = g_ptr_array_new();
    for (int i = 0; i < workers; i++)
      g_ptr_array_add(d, g_strdup(device ? device : "cpu"));
    g_ptr_array_add(d, NULL);
    *out = (char **) g_ptr_array_free(g_steal_pointer(&d), FALSE);
    return true;
  }
  g_auto(GStrv) list = !strcmp(devices, "auto") ? eosin_cli_visible_gpus()
                                                : g_strsplit(devices, ",", -1);
  if (!list[0]) {
    fprintf(stderr, "eosin batch: --devices auto: no GPU is visible (CUDA_VISIBLE_DEVICES "
                    "or /dev/nvidia*); give --workers N for CPU workers\n");
    return false;
  }
  if (g_strv_length(list) > 64) {
    fprintf(stderr, "eosin batch: --devices: at most 64 workers\n");
    return false;
  }
  for (int i = 0; list[i]; i++) {
    g_strstrip(list[i]);
    EosinDevice dev;
    g_autoptr(GError) e = NULL;
    if (!eosin_device_parse(list[i], &dev, &e)) {
      fprintf(stderr, "eosin batch: --devices %s: %s\n", devices, e->message);
      return false;
    }
  }
  *out = g_steal_pointer(&list);
  return true;
}

/* The command line of `eosin batch`, as parsed. */
typedef struct {
  char *model, *device, *task, *outdir, *manifest, *shard, *batch_id, *devices;
  int readers, workers;
  double stale;
  gboolean refuse_stale, no_pipeline, allow_upsample, merge, no_progress;
} Args;

static void args_clear(Args *a) {
  g_free(a->model), g_free(a->device), g_free(a->task), g_free(a->outdir);
  g_free(a->manifest), g_free(a->shard), g_free(a->batch_id), g_free(a->devices);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Args, args_clear)

/* The values that need more than GOption's type check; an exit code (and
 * the message) when one is bad, else -1. */
static int check_args(const Args *a, int argc) {
  if (a->outdir && !*a->outdir) {
    fprintf(stderr, "eosin batch: -o is empty: give an output folder\n");
    return EOSIN_EXIT_USAGE;
  }
  if (a->merge) {
    if (!a->outdir || a->task || a->manifest || argc != 1) {
      fprintf(stderr, "eosin batch --merge: expected only -o OUTDIR\n");
      return EOSIN_EXIT_USAGE;
    }
    return -1;
  }
  if (a->stale < 0 || a->stale > 7 * 86400 || (a->stale > 0 && a->stale < 1)) {
    fprintf(stderr, "eosin batch: --stale-after %g: give 1..604800 seconds\n", a->stale);
    return EOSIN_EXIT_USAGE;
  }
  if (a->batch_id && (!*a->batch_id || strlen(a->batch_id) > 128)) {
    fprintf(stderr, "eosin batch: --batch-id '%s': give 1..128 characters\n", a->batch_id);
    return EOSIN_EXIT_USAGE;
  }
  if (!a->task || !a->outdir || (a->manifest ? argc != 1 : argc != 2)) {
    fprintf(stderr,
            "eosin batch: expected --task CONFIG, -o OUTDIR and either --manifest FILE or "
            "one DIR (see --help)\n");
    return EOSIN_EXIT_USAGE;
  }
  if (a->readers < 0 || a->readers > 64) {
    fprintf(stderr, "eosin batch: --readers must be 1..64\n");
    return EOSIN_EXIT_USAGE;
  }
  return -1;
}

/* One argv per worker of --workers / --devices (@wdev): this command for
 * one device, in the batch @bo names (this node's own id unless one was
 * given), with the options that shape a worker's results passed on. */
static GPtrArray *worker_argvs(const Args *a, const EosinBatchOptions *bo, char **wdev,
                               const char *dir) {
  g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
  g_autofree char *node_id = bo->batch_id ? g_strdup(bo->batch_id)
                                          : g_strdup_printf("%s-%d-%" G_GINT64_FORMAT,
                                                            g_get_host_name(), (int) getpid(),
                                                            g_get_real_time() / 1000000);
  g_autofree char *sh = bo->shard_n ? g_strdup_printf("%d/%d", bo->shard_k, bo->shard_n) : NULL;
  g_autofree char *rd = a->readers ? g_strdup_printf("%d", a->readers) : NULL;
  g_autofree char *stl = a->stale > 0 ? g_strdup_printf("%g", a->stale) : NULL;
  const char *pairs[][2] = {{"--manifest", a->manifest}, {"--model", a->model},
                            {"--readers", rd}, {"--shard", sh}, {"--stale-after", stl}};
  const struct {
    const char *flag;
    gboolean on;
  } flags[] = {{"--allow-upsample", a->allow_upsample}, {"--refuse-stale", a->refuse_stale},
               {"--no-pipeline", a->no_pipeline}};
  GPtrArray *argvs = g_ptr_array_new_with_free_func((GDestroyNotify) g_strfreev);
  for (int i = 0; wdev[i]; i++) {
    GPtrArray *v = g_ptr_array_new();
    const char *fixed[] = {self ? self : "/proc/self/exe", "batch", "--task", a->task, "-o",
                           a->outdir, "--device", wdev[i], "--batch-id", node_id, "--no-progress"};
    for (size_t j = 0; j < G_N_ELEMENTS(fixed); j++)
      g_ptr_array_add(v, g_strdup(fixed[j]));
    for (size_t j = 0; j < G_N_ELEMENTS(pairs); j++)
      if (pairs[j][1]) {
        g_ptr_array_add(v, g_strdup(pairs[j][0]));
        g_ptr_array_add(v, g_strdup(pairs[j][1]));
      }
    for (size_t j = 0; j < G_N_ELEMENTS(flags); j++)
      if (flags[j].on)
        g_ptr_array_add(v, g_strdup(flags[j].flag));
    if (dir)
      g_ptr_array_add(v, g_strdup(dir));
    g_ptr_array_add(v, NULL);
    g_ptr_array_add(argvs, g_ptr_array_free(v, FALSE));
  }
  return argvs;
}

/* The batch in this process: signals watched, progress on a terminal, the
 * totals printed; returns the exit code. */
static int run_here(const Args *a, const EosinConfig *cfg, GPtrArray *items,
                    const EosinBatchOptions *bo, char **command) {
  g_autoptr(GError) err = NULL;
  EosinCancel cancel = {0};
  /* progress lines only on a terminal: a log file gets the slides' notes */
  bool progress = !a->no_progress && isatty(STDERR_FILENO);
  EosinRunOptions opts = {.readers_override = a->readers, .cancel = &cancel,
                          .argv = (const char *const *) command,
                          .allow_upsample = a->allow_upsample, .note = eosin_cli_note,
                          .note_data = &progress};
  EosinBatchObserver obs = {eosin_cli_batch_progress, eosin_cli_batch_slide_done, NULL};
  EosinSignals *sig = eosin_cli_signals_start(&cancel);
  EosinBatchResult res;
  bool ok = eosin_batch_run(cfg, items, a->outdir, &opts, progress ? &obs : NULL, bo, &res, &err);
  eosin_cli_signals_stop(sig);
  if (!ok) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return eosin_cli_exit_code(err);
  }
  g_autofree char *elsewhere =
      res.elsewhere ? g_strdup_printf(", %d left to other workers", res.elsewhere) : g_strdup("");
  printf("batch: %d slides: %d done, %d already complete, %d failed%s%s; summary in "
         "%s/batch-summary.csv\n",
         res.total, res.done, res.skipped, res.failed, elsewhere,
         res.interrupted ? ", interrupted" : "", a->outdir);
  /* what sharing OUTDIR cost (claims, rows, summaries), for the curious
   * and for `make bench`; stderr, so the line above stays one line */
  fprintf(stderr, "eosin: %.1f s, of which %.3f s (%.2f %%) claims, rows and summaries\n",
          res.seconds, res.shared_s, res.seconds > 0 ? 100 * res.shared_s / res.seconds : 0);
  if (res.interrupted)
    return EOSIN_EXIT_INTERRUPTED;
  return res.failed ? EOSIN_EXIT_PARTIAL : EOSIN_EXIT_OK;
}

int eosin_cmd_batch(int argc, char **argv) {
  g_auto(GStrv) command = eosin_cli_command_line(argc, argv); /* before parsing */
  g_auto(Args) a = {0};
  GOptionEntry entries[] = {
      {"task", 't', 0, G_OPTION_ARG_FILENAME, &a.task, "Task config (configs/*.ini)", "CONFIG"},
      {"manifest", 'm', 0, G_OPTION_ARG_FILENAME, &a.manifest,
       "Slide list: one 'path' or 'path,mpp' per line", "FILE"},
      {"output", 'o', 0, G_OPTION_ARG_FILENAME, &a.outdir, "Output folder", "OUTDIR"},
      {"readers", 'j', 0, G_OPTION_ARG_INT, &a.readers, "Reader threads (overrides the config)",
       "N"},
      {"model", 0, 0, G_OPTION_ARG_FILENAME, &a.model, "ONNX model (replaces [model] path)",
       "M.onnx"},
      {"device", 0, 0, G_OPTION_ARG_STRING, &a.device,
       "auto (GPU if it starts, else CPU), cpu, cuda or cuda:N (replaces [model] device)",
       "DEV"},
      {"allow-upsample", 0, 0, G_OPTION_ARG_NONE, &a.allow_upsample,
       "Analyse a slide whose pixels are more than 2x coarser than the model's (by default "
       "refused; with this, a warning)", NULL},
      {"refuse-stale", 0, 0, G_OPTION_ARG_NONE, &a.refuse_stale,
       "A result in OUTDIR of another slide, config or model fails that slide instead of "
       "being recomputed", NULL},
      {"shard", 0, 0, G_OPTION_ARG_STRING, &a.shard,
       "Analyse shard K of N: every N-th slide of the manifest sorted by path, from the "
       "K-th (default inside a Slurm array job: its task's place in the array)",
       "K/N"},
      {"batch-id", 0, 0, G_OPTION_ARG_STRING, &a.batch_id,
       "The batch this worker belongs to: workers given one id share one manifest (default "
       "in a Slurm array job: its job id; otherwise the batch whose workers are running in "
       "OUTDIR, or a new one)", "ID"},
      {"stale-after", 0, 0, G_OPTION_ARG_DOUBLE, &a.stale,
       "Seconds without a heartbeat after which a slide claimed by a worker on another host "
       "is taken over (default 300; on this host a dead PID is enough)", "S"},
      {"workers", 0, 0, G_OPTION_ARG_INT, &a.workers,
       "Run N worker processes on this node sharing OUTDIR (on --device, default cpu)", "N"},
      {"devices", 0, 0, G_OPTION_ARG_STRING, &a.devices,
       "One worker process per device: cuda:0,cuda:1,... (cpu allowed), or auto: every GPU "
       "visible (CUDA_VISIBLE_DEVICES respected)", "LIST"},
      {"no-progress", 0, 0, G_OPTION_ARG_NONE, &a.no_progress,
       "No progress lines, even on a terminal", NULL},
      {"merge", 0, 0, G_OPTION_ARG_NONE, &a.merge,
       "Only rebuild OUTDIR's batch-summary.csv and camelyon-slides.csv from every worker's "
       "rows and say where each slide is (eosin batch --merge -o OUTDIR)", NULL},
      {"no-pipeline", 0, 0, G_OPTION_ARG_NONE, &a.no_pipeline,
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
           "Any number of batch processes may share OUTDIR (a Slurm array, one per GPU, or\n"
           "started by hand): each claims a slide before it works on it (OUTDIR/.NAME.claim-G,\n"
           "created with O_EXCL), so every slide is analysed once; a claim whose worker died is\n"
           "taken over. See docs/SCALING.md.\n"
           "Exit codes: 0 all slides done, 1 the batch could not run, 2 usage or config,\n"
           "3 finished with failed slides, 130 interrupted.");
  if (!eosin_cli_parse(ctx, &argc, &argv))
    return EOSIN_EXIT_USAGE;
  int rc = check_args(&a, argc);
  if (rc >= 0)
    return rc;
  if (a.merge)
    return merge_only(a.outdir);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_cli_load_task(a.task, a.model, a.device);
  if (!cfg)
    return EOSIN_EXIT_USAGE;
  g_autoptr(GPtrArray) skipped = NULL;
  g_autoptr(GPtrArray) items = a.manifest ? eosin_batch_from_manifest(a.manifest, &err)
                                          : eosin_batch_from_dir(argv[1], &skipped, &err);
  if (!items) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return EOSIN_EXIT_USAGE;
  }
  if (skipped && skipped->len) {
    fprintf(stderr, "eosin: %s: %u files that are not slides left out:", argv[1], skipped->len);
    for (guint i = 0; i < skipped->len; i++)
      fprintf(stderr, "%s %s", i ? "," : "", (const char *) skipped->pdata[i]);
    fprintf(stderr, "\n");
  }
  EosinBatchOptions bo = {.refuse_stale = a.refuse_stale, .pipeline = !a.no_pipeline,
                          .batch_id = a.batch_id, .stale_s = a.stale};
  if (!select_shard(a.shard, items, &bo.shard_k, &bo.shard_n))
    return EOSIN_EXIT_USAGE;
  /* a requeued or later task of the array joins its batch; the cluster's
   * name keeps apart two clusters (or a reinstalled one) counting job ids
   * from 1 */
  const char *job = g_getenv("SLURM_ARRAY_JOB_ID"), *cluster = g_getenv("SLURM_CLUSTER_NAME");
  g_autofree char *slurm_id =
      job && *job ? g_strdup_printf("slurm-%s-%s", cluster && *cluster ? cluster : "cluster", job)
                  : NULL;
  if (!bo.batch_id)
    bo.batch_id = slurm_id;
  g_auto(GStrv) wdev = NULL;
  if (!worker_devices(a.workers, a.devices, a.device, &wdev))
    return EOSIN_EXIT_USAGE;
  if (wdev) {
    /* this process only starts the workers and sums up */
    g_autoptr(GPtrArray) argvs = worker_argvs(&a, &bo, wdev, a.manifest ? NULL : argv[1]);
    return eosin_cli_run_workers(argvs, (const char *const *) wdev, a.outdir);
  }
  return run_here(&a, cfg, items, &bo, command);
}
