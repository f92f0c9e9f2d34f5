/*
 * pipeline-private.h — one slide's run between the files of the pipeline:
 * pipeline.c (the analysis phase and the outputs), pipeline-report.c
 * (report.json).
 */
#pragma once

#include "eosin-private.h"

typedef struct {
  double open_s, tissue_s, qc_s, write_s, verify_s;
} Timing;

/* One slide between its two phases. The analysis phase fills it on the
 * caller's thread; the output phase may run on another thread, but never
 * at the same time as anything else touches this run. */
struct _EosinSlideRun {
  const EosinConfig *cfg;
  EosinRunOptions opts;     /* a copy: cancel, warning and their data must outlive the run */
  char *path;               /* the slide */
  char *final;              /* OUTDIR/<slide> */
  EosinSlide *slide;
  EosinThumbnail thumb;     /* at the tissue detector's µm/px */
  EosinTissueMask mask;     /* the tissue detected (tissue.png) */
  EosinQc qc;               /* the quality gate's findings (qc.png, report "qc") */
  EosinTissueMask usable;   /* mask without excluded artefacts: what tiles are planned on */
  float *sharpness;         /* per analysed tile, from the tile stage */
  EosinTilePlan plan;
  const EosinAnalyzerOps *ops;
  void *actx;               /* released at the end of the analysis */
  EosinAnalyzerInfo ainfo;  /* channel_names: @channel_names once actx is gone */
  char **channel_names;     /* copied from the analyzer */
  JsonNode *inference;      /* the analyzer's describe(), or NULL */
  int channel, lesion_channel;
  double vmin, vmax;        /* the overlay's range */
  gint64 t_start;           /* when the analysis began */
  double analyse_s;         /* how long it took */
  float *values;
  EosinGrid grid;
  EosinSchedStats sched;
  Timing timing;
  JsonNode *scores;
  EosinLesionSet lesions;
  GPtrArray *analyzer_files; /* the analyzer's own outputs (write op) */
  char *staging;
  EosinIdentity identity;
  GPtrArray *warnings;      /* char *, report.json "warnings" */
};
typedef EosinSlideRun Run;

/* Keeps a warning for report.json and passes it to the caller's callback. */
void _eosin_run_warn(Run *r, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Writes report.json of @r to @path (atomically); @wall_s: the run's wall time. */
bool _eosin_run_write_report(Run *r, double wall_s, const char *path, GError **err);
