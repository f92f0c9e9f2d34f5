/*
 * batch-state-private.h — what batch-state.c (who belongs to a batch: its
 * record, its workers) and batch-rows.c (the slides' rows, the merged
 * summaries, the survey) share: the state's layout.
 */
#pragma once

#include "eosin-private.h"

struct _EosinBatchState {
  char *outdir, *dir, *rows, *workers;
  char *id, *sha;
  GPtrArray *paths, *names; /* char *, every slide of the batch */
  GArray *first;            /* guint: the first slide with each slide's name */
  bool camelyon;
  double stale_s;
  EosinClaim *me;           /* this worker's registration (NULL: only reading) */
  EosinClaimKeeper *keeper;
  int peers;                /* workers live when this one joined, itself included */
  gint64 next_merge;        /* monotonic µs: merges are spaced by their cost */
};

/* The live workers registered in workers/ (this one included). */
int _eosin_batch_live_workers(EosinBatchState *st);
