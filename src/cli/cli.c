/*
 * cli.c — what the `eosin` subcommands share (cli.h): the signal watcher
 * that turns SIGINT/SIGTERM into a clean cancel, option parsing, the exit
 * code of an error, and how the library's warnings, notes and progress are
 * rendered on stderr (the library itself never writes there).
 */
#include "cli/cli.h"
#include "nn/eosin-nn.h"

#include <glib-unix.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>

struct _EosinSignals {
  GMainContext *ctx;
  GThread *thread;
  EosinCancel *cancel;
  gint stop;  /* atomic */
};

static gboolean on_signal(gpointer data) {
  EosinSignals *s = data;
  if (!g_atomic_int_get(&s->cancel->cancelled))
    fprintf(stderr, "\neosin: stopping (signal received); unfinished outputs are removed\n");
  g_atomic_int_set(&s->cancel->cancelled, 1);
  return G_SOURCE_CONTINUE;
}

static gpointer signal_thread(gpointer data) {
  EosinSignals *s = data;
  g_main_context_push_thread_default(s->ctx);
  /* a flag, not g_main_loop_quit: a quit before the loop runs would be lost */
  while (!g_atomic_int_get(&s->stop))
    g_main_context_iteration(s->ctx, TRUE);
  g_main_context_pop_thread_default(s->ctx);
  return NULL;
}

EosinSignals *eosin_cli_signals_start(EosinCancel *cancel) {
  EosinSignals *s = g_new0(EosinSignals, 1);
  s->cancel = cancel;
  s->ctx = g_main_context_new();
  int sigs[] = {SIGINT, SIGTERM};
  for (int i = 0; i < 2; i++) {
    GSource *src = g_unix_signal_source_new(sigs[i]);
    g_source_set_callback(src, on_signal, s, NULL);
    g_source_attach(src, s->ctx);
    g_source_unref(src);
  }
  s->thread = g_thread_new("eosin-signals", signal_thread, s);
  return s;
}

void eosin_cli_signals_stop(EosinSignals *s) {
  if (!s)
    return;
  g_atomic_int_set(&s->stop, 1);
  g_main_context_wakeup(s->ctx);
  g_thread_join(s->thread);
  g_main_context_unref(s->ctx);
  g_free(s);
}

bool eosin_cli_parse(GOptionContext *ctx, int *argc, char ***argv) {
  g_autoptr(GError) err = NULL;
  if (!g_option_context_parse(ctx, argc, argv, &err)) {
    fprintf(stderr, "eosin: %s (see --help)\n", err->message);
    return false;
  }
  return true;
}

bool eosin_cli_model_options(EosinConfig *cfg, const char *model, const char *device) {
  /* the grammar inference runs by (nn/device.c), so what passes here runs */
  EosinDevice dev;
  if (device && !eosin_device_parse(device, &dev, NULL)) {
    fprintf(stderr, "eosin: --device '%s': expected " EOSIN_DEVICE_GRAMMAR "\n", device);
    return false;
  }
  eosin_config_set_model(cfg, model, device);
  return true;
}

char **eosin_cli_command_line(int argc, char **argv) {
  char **v = g_new0(char *, argc + 2);
  v[0] = g_strdup("eosin");
  for (int i = 0; i < argc; i++)
    v[i + 1] = g_strdup(argv[i]);
  return v;
}

int eosin_cli_exit_code(const GError *err) {
  if (g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED))
    return EOSIN_EXIT_INTERRUPTED;
  if (g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG) ||
      g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_MODEL) ||
      g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_DEVICE))
    return EOSIN_EXIT_USAGE;
  return EOSIN_EXIT_FAILED;
}

void eosin_cli_print_json(JsonNode *root) {
  g_autoptr(JsonGenerator) gen = json_generator_new();
  json_generator_set_root(gen, root);
  json_generator_set_pretty(gen, TRUE);
  g_autofree char *text = json_generator_to_data(gen, NULL);
  printf("%s\n", text);
}

void eosin_cli_warning(const char *message, void *data) {
  fprintf(stderr, "eosin: warning: %s\n", message);
}

void eosin_cli_domain_note(const EosinConfig *cfg) {
  g_autofree char *note = eosin_domain_note(cfg);
  if (note)
    fprintf(stderr, "eosin: note: %s\n", note);
}

bool eosin_cli_check_mpp(const char *cmd, double mpp) {
  if (mpp == 0 || (mpp >= EOSIN_MPP_MIN && mpp <= EOSIN_MPP_MAX))
    return true;
  fprintf(stderr, "eosin %s: --mpp %g: expected µm per pixel from %g to %g\n", cmd, mpp,
          EOSIN_MPP_MIN, EOSIN_MPP_MAX);
  return false;
}

void eosin_cli_note(EosinNoteKind kind, const char *text, void *data) {
  const bool *progress_line = data;
  /* an error ends the progress line being rewritten in place */
  if (kind == EOSIN_NOTE_ERROR && progress_line && *progress_line)
    fputc('\n', stderr);
  fprintf(stderr, "eosin: %s\n", text);
}

void eosin_cli_batch_progress(const EosinBatchProgress *p, void *data) {
  fprintf(stderr, "\r[%d/%d] %s: %d/%d tiles, %.0f tiles/s, ETA %dm%02ds   ", p->index + 1,
          p->total, p->name, p->tiles_done, p->tiles_total, p->tiles_per_s, (int) p->eta_s / 60,
          (int) p->eta_s % 60);
  fflush(stderr);
}

void eosin_cli_batch_slide_done(int index, int total, const char *name, const char *status,
                                void *data) {
  fprintf(stderr, "\r[%d/%d] %s: %s%*s\n", index + 1, total, name, status, 30, "");
}

EosinConfig *eosin_cli_load_task(const char *task, const char *model, const char *device) {
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(task, &err);
  if (!cfg) {
    fprintf(stderr, "eosin: %s\n", err->message);
    return NULL;
  }
  if (!eosin_cli_model_options(cfg, model, device))
    return NULL;
  eosin_cli_domain_note(cfg);
  return g_steal_pointer(&cfg);
}
