/*
 * cmd-slurm.c — `eosin slurm submit` and `eosin slurm status` (issue 20):
 * a night's batch as a Slurm array job whose tasks are shards of the
 * manifest (cmd-batch.c takes the shard from SLURM_ARRAY_TASK_*), each a
 * worker of one batch (the array's job id), plus a merge job that runs
 * after the array however it ended (--dependency=afterany) and rebuilds
 * the summaries; status reads the claims and rows the workers leave.
 *
 * The scripts are written into OUTDIR/.eosin-batch/slurm/ (with the
 * tasks' logs), where no slide's output folder can be, and shown with
 * --dry-run instead of being submitted.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Whether @v is made only of @allowed (and is not empty). */
static bool only(const char *v, const char *allowed) {
  return v && *v && strspn(v, allowed) == strlen(v);
}

/* The values sbatch would take, checked here so that a typo fails before
 * anything is submitted (sbatch's own message comes only at submission). */
static bool check_values(const char *partition, const char *time_, const char *mem, int gpus,
                         int cpus, int array) {
  const char *bad = NULL, *why = NULL;
  if (partition && !only(partition, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,-"))
    bad = "--partition", why = "letters, digits, '_', '.', '-' (',' between several)";
  else if (time_ && !only(time_, "0123456789:-"))
    bad = "--time", why = "minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS";
  else if (mem && (!only(mem, "0123456789KMGTkmgt") || !g_ascii_isdigit(mem[0]) ||
                   strspn(mem, "0123456789") < strlen(mem) - 1))
    bad = "--mem", why = "a size in MB, or with a K, M, G or T suffix (16G)";
  if (bad) {
    fprintf(stderr, "eosin slurm submit: %s '%s': expected %s\n", bad,
            !strcmp(bad, "--partition") ? partition : !strcmp(bad, "--time") ? time_ : mem, why);
    return false;
  }
  if (gpus < 0 || gpus > 64 || cpus < 1 || cpus > 1024 || array < 0 || array > EOSIN_MAX_SHARDS) {
    fprintf(stderr, "eosin slurm submit: --gpus-per-task 0..64, --cpus-per-task 1..1024, "
                    "--array-size 1..%d\n", EOSIN_MAX_SHARDS);
    return false;
  }
  return true;
}

/* @path made absolute (the jobs run in another folder). Caller frees. */
static char *absolute(const char *path) {
  if (g_path_is_absolute(path))
    return g_strdup(path);
  g_autofree char *cwd = g_get_current_dir();
  return g_build_filename(cwd, path, NULL);
}

static void sbatch_line(GString *s, const char *opt, const char *v) {
  if (v) {
    g_autofree char *q = g_shell_quote(v);
    g_string_append_printf(s, "#SBATCH --%s=%s\n", opt, v[strcspn(v, " \t'\"")] ? q : v);
  }
}

/* Runs `sbatch --parsable [--dependency=afterany:@after] @script` and
 * returns the job id (caller frees), or NULL after a message. */
static char *submit(const char *sbatch, const char *script, const char *after) {
  g_autofree char *dep = after ? g_strdup_printf("--dependency=afterany:%s", after) : NULL;
  const char *argv[] = {sbatch, "--parsable", dep ? dep : script, dep ? script : NULL, NULL};
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  g_autoptr(GError) e = NULL;
  if (!g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                    &e)) {
    fprintf(stderr, "eosin slurm submit: running %s: %s\n", sbatch, e->message);
    return NULL;
  }
  if (!g_spawn_check_wait_status(status, NULL)) {
    fprintf(stderr, "eosin slurm submit: sbatch %s refused: %s", script, err ? err : "");
    return NULL;
  }
  /* --parsable: "jobid" or "jobid;cluster" */
  g_strstrip(out);
  out[strcspn(out, ";")] = 0;
  if (!only(out, "0123456789")) {
    fprintf(stderr, "eosin slurm submit: sbatch said '%s', not a job id\n", out);
    return NULL;
  }
  return g_steal_pointer(&out);
}

/* The command line of `eosin slurm submit`, as parsed. */
typedef struct {
  char *task, *outdir, *manifest, *partition, *time_, *mem, *model, *device;
  int gpus, cpus, array;
  gboolean dry;
} Args;

static void args_clear(Args *a) {
  g_free(a->task), g_free(a->outdir), g_free(a->manifest), g_free(a->partition);
  g_free(a->time_), g_free(a->mem), g_free(a->model), g_free(a->device);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Args, args_clear)

/* What the scripts name: absolute paths (the jobs run elsewhere). */
typedef struct {
  char *self, *out, *cfg, *list, *model, *dir, *iso, *jobname;
  const char *device; /* borrowed */
  int tasks;
  guint slides;
} Plan;

static void plan_clear(Plan *p) {
  g_free(p->self), g_free(p->out), g_free(p->cfg), g_free(p->list), g_free(p->model);
  g_free(p->dir), g_free(p->iso), g_free(p->jobname);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Plan, plan_clear)

/* The array job: each task the shard SLURM_ARRAY_TASK_ID of the manifest. */
static GString *array_script(const Args *a, const Plan *p) {
  GString *s = g_string_new("#!/bin/sh\n");
  g_string_append_printf(s, "# written by eosin slurm submit, %s: %d tasks over %u slides of %s\n",
                         p->iso, p->tasks, p->slides, p->list);
  g_autofree char *range = g_strdup_printf("1-%d", p->tasks);
  g_autofree char *log = g_build_filename(p->dir, "array-%A_%a.log", NULL);
  g_autofree char *cpus = g_strdup_printf("%d", a->cpus), *gpus = g_strdup_printf("%d", a->gpus);
  sbatch_line(s, "job-name", p->jobname);
  sbatch_line(s, "array", range);
  sbatch_line(s, "output", log);
  sbatch_line(s, "cpus-per-task", cpus);
  sbatch_line(s, "partition", a->partition);
  sbatch_line(s, "time", a->time_);
  sbatch_line(s, "mem", a->mem);
  sbatch_line(s, "gpus-per-task", a->gpus > 0 ? gpus : NULL);
  /* a task on a node that failed is run again; its finished slides stay */
  g_string_append(s, "#SBATCH --requeue\n#SBATCH --open-mode=append\n");
  g_string_append(s, "# each task is the shard SLURM_ARRAY_TASK_ID of the manifest and a worker of\n"
                     "# batch SLURM_ARRAY_JOB_ID (eosin batch reads both)\n");
  g_autoptr(GPtrArray) cmd = g_ptr_array_new_with_free_func(g_free);
  const char *head[] = {p->self, "batch", "--task", p->cfg, "-o", p->out, "--no-progress"};
  for (size_t i = 0; i < G_N_ELEMENTS(head); i++)
    g_ptr_array_add(cmd, g_shell_quote(head[i]));
  if (a->manifest)
    g_ptr_array_add(cmd, g_strdup("--manifest"));
  g_ptr_array_add(cmd, g_shell_quote(p->list));
  if (p->model) {
    g_ptr_array_add(cmd, g_strdup("--model"));
    g_ptr_array_add(cmd, g_shell_quote(p->model));
  }
  if (p->device) {
    g_ptr_array_add(cmd, g_strdup("--device"));
    g_ptr_array_add(cmd, g_shell_quote(p->device));
  }
  g_ptr_array_add(cmd, NULL);
  g_autofree char *line = g_strjoinv(" ", (char **) cmd->pdata);
  g_string_append_printf(s, "exec %s\n", line);
  return s;
}

/* The merge job, run after the array however it ended. */
static GString *merge_script(const Args *a, const Plan *p) {
  GString *s = g_string_new("#!/bin/sh\n");
  g_string_append_printf(s, "# written by eosin slurm submit, %s: the summaries of the array, "
                            "after it ends\n", p->iso);
  g_autofree char *name = g_strdup_printf("%s-merge", p->jobname);
  g_autofree char *log = g_build_filename(p->dir, "merge-%j.log", NULL);
  sbatch_line(s, "job-name", name);
  sbatch_line(s, "output", log);
  sbatch_line(s, "cpus-per-task", "1");
  sbatch_line(s, "partition", a->partition);
  g_autofree char *qself = g_shell_quote(p->self), *qout = g_shell_quote(p->out);
  g_string_append_printf(s, "exec %s batch --merge -o %s\n", qself, qout);
  return s;
}

/* The plan's paths, and the folder of the scripts made. False after a
 * message. */
static bool make_plan(const Args *a, const char *input, const EosinConfig *cfg, guint slides,
                      Plan *p) {
  p->out = absolute(a->outdir);
  p->cfg = absolute(a->task);
  p->list = absolute(input);
  p->model = a->model ? absolute(a->model) : NULL;
  p->device = a->device ? a->device : a->gpus > 0 ? "cuda" : NULL;
  p->slides = slides;
  p->tasks = a->array ? MIN(a->array, (int) slides) : MIN((int) slides, 100);
  p->dir = g_build_filename(p->out, EOSIN_BATCH_STATE_DIR, "slurm", NULL);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  p->iso = g_date_time_format_iso8601(now);
  p->jobname = g_strdup_printf("eosin-%s", eosin_config_get_task(cfg));
  if (g_mkdir_with_parents(p->dir, 0755) != 0) {
    fprintf(stderr, "eosin slurm submit: creating %s: %s\n", p->dir, g_strerror(errno));
    return false;
  }
  p->self = g_file_read_link("/proc/self/exe", NULL);
  if (!p->self) {
    fprintf(stderr, "eosin slurm submit: cannot tell where this eosin is (/proc/self/exe)\n");
    return false;
  }
  return true;
}

/* Writes both scripts; shows them (@sbatch NULL: a dry run) or submits the
 * array, then the merge after it. Returns the exit code. */
static int write_and_submit(const Args *a, const Plan *p, const char *sbatch) {
  g_autoptr(GString) as = array_script(a, p), ms = merge_script(a, p);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *stamp = g_date_time_format(now, "%Y%m%dT%H%M%SZ");
  g_autofree char *ab = g_strdup_printf("array-%s.sbatch", stamp);
  g_autofree char *mb = g_strdup_printf("merge-%s.sbatch", stamp);
  g_autofree char *ap = g_build_filename(p->dir, ab, NULL), *mp = g_build_filename(p->dir, mb, NULL);
  g_autoptr(GError) err = NULL;
  if (!_eosin_write_atomic(ap, as->str, as->len, &err) ||
      !_eosin_write_atomic(mp, ms->str, ms->len, &err)) {
    fprintf(stderr, "eosin slurm submit: %s\n", err->message);
    return EOSIN_EXIT_FAILED;
  }
  if (!sbatch) {
    printf("# %s\n%s\n# %s (submitted with --dependency=afterany:<array job>)\n%s", ap, as->str,
           mp, ms->str);
    return EOSIN_EXIT_OK;
  }
  g_autofree char *job = submit(sbatch, ap, NULL);
  if (!job)
    return EOSIN_EXIT_FAILED;
  g_autofree char *mjob = submit(sbatch, mp, job);
  if (!mjob) {
    fprintf(stderr, "eosin slurm submit: the array job %s is submitted; run `eosin batch "
                    "--merge -o %s` when it ends\n", job, p->out);
    return EOSIN_EXIT_FAILED;
  }
  printf("submitted array job %s (%d task%s over %u slides) and merge job %s (after it)\n"
         "scripts and logs in %s\nfollow it with: eosin slurm status %s\n",
         job, p->tasks, p->tasks == 1 ? "" : "s", p->slides, mjob, p->dir, p->out);
  return EOSIN_EXIT_OK;
}

static int slurm_submit(int argc, char **argv) {
  g_auto(Args) a = {.cpus = 2};
  GOptionEntry entries[] = {
      {"task", 't', 0, G_OPTION_ARG_FILENAME, &a.task, "Task config (configs/*.ini)", "CONFIG"},
      {"manifest", 'm', 0, G_OPTION_ARG_FILENAME, &a.manifest,
       "Slide list: one 'path' or 'path,mpp' per line", "FILE"},
      {"output", 'o', 0, G_OPTION_ARG_FILENAME, &a.outdir, "Output folder (shared by the nodes)",
       "OUTDIR"},
      {"partition", 'p', 0, G_OPTION_ARG_STRING, &a.partition, "Slurm partition", "P"},
      {"time", 0, 0, G_OPTION_ARG_STRING, &a.time_, "Time limit of each array task", "T"},
      {"gpus-per-task", 0, 0, G_OPTION_ARG_INT, &a.gpus, "GPUs per array task (default 0)", "G"},
      {"cpus-per-task", 'c', 0, G_OPTION_ARG_INT, &a.cpus, "CPUs per array task (default 2)", "C"},
      {"mem", 0, 0, G_OPTION_ARG_STRING, &a.mem, "Memory per array task (sbatch --mem)", "M"},
      {"array-size", 0, 0, G_OPTION_ARG_INT, &a.array,
       "Array tasks, each a shard of the manifest (default: one per slide, at most 100)", "N"},
      {"model", 0, 0, G_OPTION_ARG_FILENAME, &a.model, "ONNX model (replaces [model] path)",
       "M.onnx"},
      {"device", 0, 0, G_OPTION_ARG_STRING, &a.device,
       "Device of each task (default: the config's; with --gpus-per-task, cuda)", "DEV"},
      {"dry-run", 'n', 0, G_OPTION_ARG_NONE, &a.dry,
       "Write and show the scripts; submit nothing", NULL},
      {NULL}};
  g_autoptr(GOptionContext) ctx =
      g_option_context_new("--task CONFIG (--manifest FILE | DIR) -o OUTDIR - submit a batch");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(
      ctx, "Writes an sbatch array script (each task a shard of the manifest and a worker of\n"
           "one batch: `eosin batch` claims each slide, so a requeued or duplicated task never\n"
           "redoes a finished slide) and a merge job that runs after the array however it\n"
           "ended (--dependency=afterany) and rebuilds OUTDIR/batch-summary.csv. Both go in\n"
           "OUTDIR/.eosin-batch/slurm/ with the tasks' logs. Prints the job ids; follow the\n"
           "batch with `eosin slurm status OUTDIR`. OUTDIR must be on storage every node sees.");
  if (!eosin_cli_parse(ctx, &argc, &argv))
    return EOSIN_EXIT_USAGE;
  if (!a.task || !a.outdir || !*a.outdir || (a.manifest ? argc != 1 : argc != 2)) {
    fprintf(stderr, "eosin slurm submit: expected --task CONFIG, -o OUTDIR and either "
                    "--manifest FILE or one DIR (see --help)\n");
    return EOSIN_EXIT_USAGE;
  }
  if (!check_values(a.partition, a.time_, a.mem, a.gpus, a.cpus, a.array))
    return EOSIN_EXIT_USAGE;
  /* the config, the model options and the slide list, checked now rather
   * than on every node */
  g_autoptr(EosinConfig) cfg = eosin_cli_load_task(a.task, a.model, a.device);
  if (!cfg)
    return EOSIN_EXIT_USAGE;
  const char *input = a.manifest ? a.manifest : argv[1];
  g_autoptr(GError) err = NULL;
  g_autoptr(GPtrArray) items = a.manifest ? eosin_batch_from_manifest(input, &err)
                                          : eosin_batch_from_dir(input, NULL, &err);
  if (!items || !items->len) {
    fprintf(stderr, "eosin slurm submit: %s\n", items ? "no slides there" : err->message);
    return EOSIN_EXIT_USAGE;
  }
  g_autofree char *sbatch = g_find_program_in_path("sbatch");
  if (!sbatch && !a.dry) {
    fprintf(stderr, "eosin slurm submit: sbatch is not on PATH: run this on a Slurm submit "
                    "host (Debian: slurm-client), or give --dry-run to write and show the "
                    "scripts only\n");
    return EOSIN_EXIT_FAILED;
  }
  g_auto(Plan) p = {0};
  if (!make_plan(&a, input, cfg, items->len, &p))
    return EOSIN_EXIT_FAILED;
  return write_and_submit(&a, &p, a.dry ? NULL : sbatch);
}

static int slurm_status(int argc, char **argv) {
  gboolean all = FALSE;
  GOptionEntry entries[] = {
      {"all", 'a', 0, G_OPTION_ARG_NONE, &all, "List every slide, done ones too", NULL},
      {NULL}};
  g_autoptr(GOptionContext) ctx = g_option_context_new("OUTDIR - where a batch's slides are");
  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(
      ctx, "Counts the batch's slides done, failed (a row of this batch), running (claimed by a\n"
           "live worker) and pending, from what the workers leave in OUTDIR, and lists the\n"
           "slides not done. Works for any eosin batch, under Slurm or not.");
  if (!eosin_cli_parse(ctx, &argc, &argv))
    return EOSIN_EXIT_USAGE;
  if (argc != 2) {
    fprintf(stderr, "eosin slurm status: expected one OUTDIR\n");
    return EOSIN_EXIT_USAGE;
  }
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinBatchState) st = _eosin_batch_open(argv[1], 0, &err);
  EosinBatchSurvey sv = {0};
  if (!st || !_eosin_batch_survey(st, &sv, &err)) {
    fprintf(stderr, "eosin slurm status: %s\n", err->message);
    return eosin_cli_exit_code(err);
  }
  printf("batch %s: %d slides: %d done, %d failed, %d running, %d pending; %d workers live\n",
         sv.id, sv.slides, sv.done, sv.failed, sv.running, sv.pending, sv.workers);
  for (guint i = 0; i < sv.lines->len; i++) {
    const char *l = sv.lines->pdata[i];
    const char *tab = strchr(l, '\t');
    if (all || !g_str_has_prefix(tab + 1, "done\t"))
      printf("%s\n", l);
  }
  _eosin_batch_survey_clear(&sv);
  return EOSIN_EXIT_OK;
}

int eosin_cmd_slurm(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "submit"))
    return slurm_submit(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "status"))
    return slurm_status(argc - 1, argv + 1);
  if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("Usage: eosin slurm submit --task CONFIG (--manifest FILE | DIR) -o OUTDIR [OPTION…]\n"
           "       eosin slurm status OUTDIR [--all]\n"
           "Each takes --help.\n");
    return EOSIN_EXIT_OK;
  }
  fprintf(stderr, "eosin slurm: expected submit or status (see eosin slurm --help)\n");
  return EOSIN_EXIT_USAGE;
}
