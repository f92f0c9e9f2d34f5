/*
 * main.c — the `eosin` command: dispatches to a subcommand (info, run,
 * batch, slurm, predict, eval, version); what the subcommands share is in cli.c.
 */
#include "cli/cli.h"

#include <locale.h>
#include <stdio.h>
#include <unistd.h>

/* `eosin version [--json]`: Eosin's and its libraries' versions, one
 * "name version" a line (the first is "eosin VERSION", as it always was),
 * or as the JSON object report.json "versions" holds. */
static int version(int argc, char **argv) {
  if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("Usage: eosin version [--json]\n\n"
           "Eosin's version and those of the libraries it runs on, one \"name version\" a\n"
           "line (--json: the object report.json's \"versions\" holds).\n");
    return EOSIN_EXIT_OK;
  }
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
          "                                             analyse many slides, resumable; any number\n"
          "                                             of workers may share OUTDIR\n"
          "  slurm submit --task CONFIG (--manifest FILE | DIR) -o OUTDIR\n"
          "                                             a batch as a Slurm array job\n"
          "  slurm status OUTDIR                        where a batch's slides are\n"
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
  if (!strcmp(cmd, "slurm"))
    return eosin_cmd_slurm(argc - 1, argv + 1);
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
