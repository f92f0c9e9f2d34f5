/*
 * workers.c — `eosin batch --workers N` / `--devices LIST`: one worker
 * process per device on this node, sharing OUTDIR through the batch's
 * claims (batch-state.c), and the node's summary when they are done.
 *
 * Why processes and not threads: each worker has its own readers, model
 * backend and memory budget, exactly as a worker on another node has;
 * a worker that crashes (a driver fault on one GPU) takes only its slide
 * down, and the others, or the next run, take its claim over.
 */
#include "cli/cli.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char **eosin_cli_visible_gpus(void) {
  g_autoptr(GPtrArray) out = g_ptr_array_new();
  const char *v = g_getenv("CUDA_VISIBLE_DEVICES");
  int n = 0;
  if (v) {
    /* the CUDA runtime numbers the listed devices 0, 1, ...; an empty
     * list or an invalid entry hides the rest */
    g_auto(GStrv) parts = g_strsplit(v, ",", -1);
    for (int i = 0; parts[i]; i++) {
      const char *p = g_strstrip(parts[i]);
      if (!*p || !strcmp(p, "-1") || !strcmp(p, "NoDevFiles"))
        break;
      n++;
    }
  } else {
    /* the driver's device nodes, one per GPU: /dev/nvidia0, /dev/nvidia1, ... */
    g_autoptr(GDir) d = g_dir_open("/dev", 0, NULL);
    const char *e;
    while (d && (e = g_dir_read_name(d)))
      if (g_str_has_prefix(e, "nvidia") && e[6] && strspn(e + 6, "0123456789") == strlen(e + 6))
        n++;
  }
  for (int i = 0; i < n && i <= 63; i++)
    g_ptr_array_add(out, g_strdup_printf("cuda:%d", i));
  g_ptr_array_add(out, NULL);
  return (char **) g_ptr_array_free(g_steal_pointer(&out), FALSE);
}

/* The worst of the workers' exit codes: interrupted, then could not run,
 * then usage, then failed slides. */
static int worse(int a, int b) {
  static const int order[] = {EOSIN_EXIT_OK, EOSIN_EXIT_PARTIAL, EOSIN_EXIT_USAGE,
                              EOSIN_EXIT_FAILED, EOSIN_EXIT_INTERRUPTED};
  int ra = 3, rb = 3; /* an unknown code ranks with "could not run" */
  for (int i = 0; i < 5; i++) {
    if (a == order[i])
      ra = i;
    if (b == order[i])
      rb = i;
  }
  return rb > ra ? b : a;
}

int eosin_cli_run_workers(GPtrArray *argvs, const char *const *devices, const char *outdir) {
  int n = (int) argvs->len;
  g_autofree GPid *pids = g_new0(GPid, n);
  /* a CPU worker's OpenMP threads: the node's cores shared, unless the
   * user said */
  g_auto(GStrv) env = g_get_environ();
  if (!g_environ_getenv(env, "OMP_NUM_THREADS")) {
    g_autofree char *t = g_strdup_printf("%d", MAX(1, (int) g_get_num_processors() / n));
    env = g_environ_setenv(env, "OMP_NUM_THREADS", t, TRUE);
  }
  int started = 0, rc = EOSIN_EXIT_OK;
  for (int i = 0; i < n; i++) {
    g_autoptr(GError) e = NULL;
    if (!g_spawn_async(NULL, argvs->pdata[i], env,
                       G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                       &pids[i], &e)) {
      fprintf(stderr, "eosin batch: worker %d (%s) did not start: %s\n", i + 1, devices[i],
              e->message);
      rc = EOSIN_EXIT_FAILED;
      pids[i] = 0;
      continue;
    }
    started++;
    fprintf(stderr, "eosin: worker %d on %s: PID %d\n", i + 1, devices[i], (int) pids[i]);
  }
  EosinCancel cancel = {0};
  EosinSignals *sig = eosin_cli_signals_start(&cancel);
  bool forwarded = false;
  for (int left = started; left > 0;) {
    if (!forwarded && g_atomic_int_get(&cancel.cancelled)) {
      /* a stop for this process is one for its workers (a terminal's
       * Ctrl-C reaches them already; a scheduler's SIGTERM may not) */
      for (int i = 0; i < n; i++)
        if (pids[i])
          kill(pids[i], SIGTERM);
      forwarded = true;
    }
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      if (pid < 0 && errno == ECHILD)
        break;
      g_usleep(50000);
      continue;
    }
    for (int i = 0; i < n; i++) {
      if (pids[i] != pid)
        continue;
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : EOSIN_EXIT_FAILED;
      if (WIFSIGNALED(status))
        fprintf(stderr, "eosin batch: worker %d (%s) was killed by signal %d; its slide is "
                        "left to the others or the next run\n",
                i + 1, devices[i], WTERMSIG(status));
      else if (code != EOSIN_EXIT_OK)
        fprintf(stderr, "eosin batch: worker %d (%s) exited %d\n", i + 1, devices[i], code);
      rc = worse(rc, code);
      g_spawn_close_pid(pids[i]);
      pids[i] = 0;
      left--;
    }
  }
  eosin_cli_signals_stop(sig);
  g_autoptr(GError) err = NULL;
  EosinBatchSurvey sv = {0};
  if (!eosin_batch_merge(outdir, &sv, &err)) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return worse(rc, eosin_cli_exit_code(err));
  }
  printf("batch: %d slides on %d workers: %d done, %d failed, %d not done%s; summary in "
         "%s/batch-summary.csv\n",
         sv.slides, n, sv.done, sv.failed, sv.running + sv.pending,
         rc == EOSIN_EXIT_INTERRUPTED ? ", interrupted" : "", outdir);
  if (rc == EOSIN_EXIT_OK && (sv.failed || sv.running || sv.pending))
    rc = EOSIN_EXIT_PARTIAL;
  _eosin_batch_survey_clear(&sv);
  return rc;
}
