/*
 * cli.h — what the `eosin` subcommands share: their entry points and the
 * signal watcher that turns SIGINT/SIGTERM into a clean cancel.
 */
#pragma once

#include "eosin.h"

int eosin_cmd_info(int argc, char **argv);
int eosin_cmd_run(int argc, char **argv);
int eosin_cmd_batch(int argc, char **argv);
int eosin_cmd_predict(int argc, char **argv);
int eosin_cmd_eval(int argc, char **argv);

/* Applies --model / --device to @cfg (NULL: keep the config's); false with a
 * message on stderr when --device is not auto, cpu, cuda or cuda:N. */
bool eosin_cli_model_options(EosinConfig *cfg, const char *model, const char *device);

/* Watches SIGINT and SIGTERM on a thread of its own and sets @cancel when
 * one arrives. Stop with eosin_cli_signals_stop. */
typedef struct _EosinSignals EosinSignals;
EosinSignals *eosin_cli_signals_start(EosinCancel *cancel);
void eosin_cli_signals_stop(EosinSignals *s);

/* Parses @ctx over argv, printing the error and --help hint on failure. */
bool eosin_cli_parse(GOptionContext *ctx, int *argc, char ***argv);
