/*
 * main.c — the `eosin` command: dispatches to a subcommand (info, run,
 * batch) and owns the process-wide pieces a library must not touch:
 * signal handling and the exit code.
 */
#include "cli/cli.h"

#include <glib-unix.h>
#include <locale.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

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
  if (device && !g_regex_match_simple("^(auto|cpu|ref|cuda(:[0-9]{1,2})?)$", device, 0, 0)) {
    fprintf(stderr, "eosin: --device '%s': expected auto, cpu, cuda or cuda:N\n", device);
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
  if (mpp == 0 || (mpp > 0 && isfinite(mpp)))
    return true;
  fprintf(stderr, "eosin %s: --mpp %g: expected a positive number of µm per pixel\n", cmd, mpp);
  return false;
}

/* `eosin version [--json]`: Eosin's and its libraries' versions, one
 * "name version" a line (the first is "eosin VERSION", as it always was),
 * or as the JSON object report.json "versions" holds. */
static int version(int argc, char **argv) {
  bool json = argc == 2 && !strcmp(argv[1], "--json");
  if (argc > 2 || (argc == 2 && !json)) {
    fprintf(stderr, "eosin version: expected nothing or --json\n");
    return EOSIN_EXIT_USAGE;
  }
  g_auto(GStrv) v = eosin_versions();
  if (!json) {
    for (int i = 0; v[i]; i += 2)
      printf("%s %s\n", v[i], v[i + 1]);
    return EOSIN_EXIT_OK;
  }
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  for (int i = 0; v[i]; i += 2) {
    json_builder_set_member_name(b, v[i]);
    json_builder_add_string_value(b, v[i + 1]);
  }
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  eosin_cli_print_json(root);
  return EOSIN_EXIT_OK;
}

static void usage(FILE *f) {
  fprintf(f,
          "Usage: eosin COMMAND [OPTION…]\n\n"
          "Whole-slide pathology analysis.\n\n"
          "Commands:\n"
          "  info SLIDE [--json]                        describe a slide\n"
          "  run --task CONFIG SLIDE -o OUTDIR          analyse one slide\n"
          "  batch --task CONFIG (--manifest FILE | DIR) -o OUTDIR\n"
          "                                             analyse many slides, resumable\n"
          "  predict --config CONFIG [--model M.onnx] (IMAGES_DIR | LIST) -o PREDS.csv\n"
          "                                             class probabilities of patch images\n"
          "  eval camelyon16 --pred DIR --truth DIR     slide AUC and lesion FROC\n"
          "  eval camelyon17 --pred CSV --truth CSV     pN-stage kappa\n"
          "  version [--json]                           print Eosin's and its libraries' versions\n\n"
          "Each command takes --help. Exit codes: 0 success, 1 the slide or job failed,\n"
          "2 bad command line or config, 3 batch finished with failed slides,\n"
          "130 interrupted (SIGINT/SIGTERM; unfinished outputs are removed).\n");
}

/* oneDNN's OpenMP threads spin between primitives by default, taking the
 * cores from the tile readers and the analyzers' own threads running
 * beside them, or another job's (a cytology slide ran 1.9x slower beside
 * a 2-thread job; docs/BENCHMARKS.md). ACTIVE, for a machine running
 * nothing else, is a few per cent faster on a lone large network.
 * libgomp reads OMP_WAIT_POLICY once, when it is loaded, before main(), so
 * the process runs itself again once with it set; a policy the user set is
 * kept, and if the re-exec fails the run goes on as it is. */
static void set_omp_wait_policy(char **argv) {
  if (g_getenv("OMP_WAIT_POLICY"))
    return;
  g_setenv("OMP_WAIT_POLICY", "PASSIVE", TRUE);
  execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
  set_omp_wait_policy(argv);
  setlocale(LC_ALL, "");
  if (argc < 2) {
    usage(stderr);
    return EOSIN_EXIT_USAGE;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "info"))
    return eosin_cmd_info(argc - 1, argv + 1);
  if (!strcmp(cmd, "run"))
    return eosin_cmd_run(argc - 1, argv + 1);
  if (!strcmp(cmd, "batch"))
    return eosin_cmd_batch(argc - 1, argv + 1);
  if (!strcmp(cmd, "predict"))
    return eosin_cmd_predict(argc - 1, argv + 1);
  if (!strcmp(cmd, "eval"))
    return eosin_cmd_eval(argc - 1, argv + 1);
  if (!strcmp(cmd, "version") || !strcmp(cmd, "--version"))
    return version(argc - 1, argv + 1);
  if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
    usage(stdout);
    return EOSIN_EXIT_OK;
  }
  fprintf(stderr, "eosin: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return EOSIN_EXIT_USAGE;
}
