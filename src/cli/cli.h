/*
 * cli.h — what the `eosin` subcommands share: their entry points and the
 * signal watcher that turns SIGINT/SIGTERM into a clean cancel.
 */
#pragma once

#include "eosin-private.h"

int eosin_cmd_info(int argc, char **argv);
int eosin_cmd_run(int argc, char **argv);
int eosin_cmd_batch(int argc, char **argv);
int eosin_cmd_predict(int argc, char **argv);
int eosin_cmd_eval(int argc, char **argv);
int eosin_cmd_slurm(int argc, char **argv);

/* The GPUs CUDA would show this process ("cuda:0", ...; NULL-terminated,
 * g_strfreev): CUDA_VISIBLE_DEVICES when set, else the driver's device
 * nodes /dev/nvidiaN. */
char **eosin_cli_visible_gpus(void);
/* Runs one worker process per @argvs entry (each a NULL-terminated argv,
 * @devices[i] its device, for messages), forwards SIGINT/SIGTERM to them,
 * waits, then merges OUTDIR's summaries and prints the node's totals.
 * Returns the exit code (the worst of the workers', 3 when slides failed
 * or were left undone). */
int eosin_cli_run_workers(GPtrArray *argvs, const char *const *devices, const char *outdir);

/* Applies --model / --device to @cfg (NULL: keep the config's); false with a
 * message on stderr when --device is not auto, cpu, cuda or cuda:N
 * (eosin_device_parse). */
bool eosin_cli_model_options(EosinConfig *cfg, const char *model, const char *device);

/* Watches SIGINT and SIGTERM on a thread of its own and sets @cancel when
 * one arrives. Stop with eosin_cli_signals_stop. */
typedef struct _EosinSignals EosinSignals;
EosinSignals *eosin_cli_signals_start(EosinCancel *cancel);
void eosin_cli_signals_stop(EosinSignals *s);

/* The exit code for a failed run's error: 2 for what the command line or
 * config got wrong (a bad config, model or device), 130 when stopped by a
 * signal, 1 otherwise (README, "Command line"). */
int eosin_cli_exit_code(const GError *err);
/* Prints @root to stdout as indented JSON and a newline (`--json` outputs). */
void eosin_cli_print_json(JsonNode *root);
/* An EosinWarningFunc printing "eosin: warning: MESSAGE" on stderr. */
void eosin_cli_warning(const char *message, void *data);
/* An EosinNoteFunc printing "eosin: TEXT" on stderr; @data (may be NULL)
 * is a const bool *: true when a progress line is being rewritten in place,
 * which an error first ends. */
void eosin_cli_note(EosinNoteKind kind, const char *text, void *data);
/* An EosinBatchObserver's functions: the progress line rewritten in place
 * ("[i/n] slide: done/total tiles, rate, ETA"), a line per slide done. */
void eosin_cli_batch_progress(const EosinBatchProgress *p, void *data);
void eosin_cli_batch_slide_done(int index, int total, const char *name, const char *status,
                                void *data);
/* "eosin: note: model made for ..." on stderr once per command when the
 * config declares a specimen (eosin_domain_note). */
void eosin_cli_domain_note(const EosinConfig *cfg);
/* The task config @task with --model / --device applied and its domain
 * note said (eosin_cli_domain_note); NULL after the message on stderr when
 * the config or an option is bad (exit 2). Caller frees. */
EosinConfig *eosin_cli_load_task(const char *task, const char *model, const char *device);
/* A --mpp value: 0 (not given) or EOSIN_MPP_MIN..EOSIN_MPP_MAX µm/px; else a
 * message naming the range (the caller exits 2). */
bool eosin_cli_check_mpp(const char *cmd, double mpp);

/* The command line a subcommand was given (@argv[0] is the subcommand) as
 * report.json keeps it: "eosin", then @argv's words, copied before option
 * parsing rearranges them. NULL-terminated; g_strfreev. */
char **eosin_cli_command_line(int argc, char **argv);

/* Parses @ctx over argv, printing the error and --help hint on failure. */
bool eosin_cli_parse(GOptionContext *ctx, int *argc, char ***argv);
