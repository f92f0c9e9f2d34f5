/*
 * eosin.h — the public API of the Eosin whole-slide analysis engine, all a
 * program embedding Eosin needs: open a slide, load a task config, run it
 * on one slide or a batch, read the result. Link with libeosin.so
 * (`pkg-config --cflags --libs eosin`); only the functions declared here
 * are exported from it.
 *
 *   g_autoptr(GError) err = NULL;
 *   g_autoptr(EosinConfig) cfg = eosin_config_load("configs/stain.ini", &err);
 *   g_autoptr(EosinResult) res = cfg ? eosin_run(cfg, "slide.svs", "out", NULL, &err) : NULL;
 *   if (!res) { fprintf(stderr, "%s\n", err->message); ... }
 *   // out/slide/: overlay.tif, heatmap.tif, report.json, ... (README "Outputs")
 *
 * A slide is opened (OpenSlide, or libvips for plain images), its tissue
 * found and checked by a quality gate, a grid of tiles at the task's µm/px
 * streamed through the task's analyzer, and the tile results stitched into
 * pyramidal overlay TIFFs aligned with the slide, CSV and JSON reports.
 *
 * Conventions: every fallible function takes `GError **err` last (domain
 * EOSIN_ERROR, codes EosinError) and returns bool or a pointer; objects are
 * opaque, made by their `_new`/`_load`/`_open` function and freed by their
 * `_free` function or g_autoptr; strings returned as `char *` are freed by
 * the caller with g_free, `const char *` ones belong to the object. The
 * library never writes to stdout or stderr: warnings, notes and progress
 * reach the caller's functions (EosinRunOptions).
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

#define EOSIN_API __attribute__((visibility("default")))

#define EOSIN_ERROR (eosin_error_quark())
EOSIN_API GQuark eosin_error_quark(void);

typedef enum {
  EOSIN_ERROR_FAILED,      /* anything not below */
  EOSIN_ERROR_IO,          /* a file could not be read or written */
  EOSIN_ERROR_SLIDE,       /* the slide cannot be opened or read */
  EOSIN_ERROR_NO_MPP,      /* no trustworthy µm/px for the slide */
  EOSIN_ERROR_CONFIG,      /* bad config file, key or value */
  EOSIN_ERROR_NO_TISSUE,   /* nothing to analyse on the slide */
  EOSIN_ERROR_VERIFY,      /* a written output did not re-open as expected */
  EOSIN_ERROR_CANCELLED,   /* stopped by a signal or the caller */
  EOSIN_ERROR_MODEL,       /* a model file Eosin cannot run */
  EOSIN_ERROR_DEVICE,      /* the device failed mid-run (GPU out of memory, driver
                            * error): worth retrying smaller or on the CPU */
  EOSIN_ERROR_NUMERIC,     /* a model or an analysis gave numbers that are not finite */
  EOSIN_ERROR_EXISTS,      /* OUTDIR/<slide> holds something Eosin may not replace */
  EOSIN_ERROR_BUSY,        /* another eosin process is writing into OUTDIR */
  EOSIN_ERROR_QC,          /* the slide failed the quality gate ([qc], [domain]) */
} EosinError;

/* Eosin's version (git describe of the build). */
EOSIN_API const char *eosin_version(void);
/* Eosin's version and those of the libraries it runs on (OpenSlide,
 * libvips, oneDNN, protobuf-c, glib, json-glib, libtiff, zlib, zstd,
 * libdeflate; the CUDA runtime, driver and cuDNN in a CUDA build) as
 * NULL-terminated pairs: name, version, name, version... g_strfreev. */
EOSIN_API char **eosin_versions(void);

/* ---------------------------------------------------------------- configs */

/* A task: one of the files in configs/ (README "Tasks"). */
typedef struct _EosinConfig EosinConfig;

/* Loads @path strictly: an unknown group or key, a missing required key or
 * a bad value is an EOSIN_ERROR_CONFIG error naming file, key and value. */
EOSIN_API EosinConfig *eosin_config_load(const char *path, GError **err);
EOSIN_API void eosin_config_free(EosinConfig *cfg);
/* [task] name. */
EOSIN_API const char *eosin_config_get_task(const EosinConfig *cfg);
/* Replaces [model] path and device (auto, cpu, cuda or cuda:N; either may
 * be NULL: kept); the device is checked when a run starts. */
EOSIN_API void eosin_config_set_model(EosinConfig *cfg, const char *path, const char *device);

/* ---------------------------------------------------------------- slides */

typedef struct _EosinSlide EosinSlide;

/* Opens a whole-slide image (any format OpenSlide reads) or a plain image
 * (libvips); @mpp_override > 0 is used when the file has no µm/px. */
EOSIN_API EosinSlide *eosin_slide_open(const char *path, double mpp_override, GError **err);
EOSIN_API void eosin_slide_free(EosinSlide *slide);
/* Level-0 size in pixels (of the whole image, not only its bounds). */
EOSIN_API void eosin_slide_get_size(EosinSlide *slide, int64_t *width, int64_t *height);
/* µm per level-0 pixel, across and down. */
EOSIN_API void eosin_slide_get_mpp(EosinSlide *slide, double *mpp_x, double *mpp_y);
/* The OpenSlide vendor, or the libvips loader of a plain image. */
EOSIN_API const char *eosin_slide_get_vendor(EosinSlide *slide);
EOSIN_API int eosin_slide_get_level_count(EosinSlide *slide);
/* Everything known of the slide as JSON (`eosin info --json`, report.json
 * "slide"). Caller frees. */
EOSIN_API char *eosin_slide_describe_json(EosinSlide *slide);

/* ---------------------------------------------------------------- running */

/* A stop request, safe to give from a signal handler or another thread:
 * a run stops within a second, removes what it had not finished and fails
 * with EOSIN_ERROR_CANCELLED; a batch finishes its summary and returns. */
typedef struct _EosinCancel EosinCancel;
EOSIN_API EosinCancel *eosin_cancel_new(void);
EOSIN_API void eosin_cancel_free(EosinCancel *cancel);
EOSIN_API void eosin_cancel_request(EosinCancel *cancel);
EOSIN_API bool eosin_cancel_is_requested(const EosinCancel *cancel);

/* Tiles analysed of @total, and the rate, as the tile stage goes. */
typedef void (*EosinProgressFunc)(int done, int total, double tiles_per_s, void *data);
/* A warning about a run (also kept in report.json "warnings"). */
typedef void (*EosinWarningFunc)(const char *message, void *data);
/* A line for the user that is not one of a run's warnings: a slide that
 * failed in a batch (the batch goes on), a result recomputed, a fallback
 * taken, a batch slide's warning with its name. */
typedef enum {
  EOSIN_NOTE_INFO,
  EOSIN_NOTE_WARNING,
  EOSIN_NOTE_ERROR,
} EosinNoteKind;
typedef void (*EosinNoteFunc)(EosinNoteKind kind, const char *text, void *data);

/* How a run goes; NULL options are the defaults: the config's reader
 * threads, the slide's own µm/px, no upsampling past 2x, no callbacks. */
typedef struct _EosinRunOptions EosinRunOptions;
EOSIN_API EosinRunOptions *eosin_run_options_new(void);
EOSIN_API void eosin_run_options_free(EosinRunOptions *opts);
/* > 0: reader threads instead of the config's [scheduler] readers */
EOSIN_API void eosin_run_options_set_readers(EosinRunOptions *opts, int readers);
/* > 0: µm/px for a slide that has none */
EOSIN_API void eosin_run_options_set_mpp(EosinRunOptions *opts, double mpp);
/* a slide more than 2x coarser than the task's µm/px: a warning, not an error */
EOSIN_API void eosin_run_options_set_allow_upsample(EosinRunOptions *opts, bool allow);
/* @cancel (borrowed) must outlive the runs */
EOSIN_API void eosin_run_options_set_cancel(EosinRunOptions *opts, EosinCancel *cancel);
EOSIN_API void eosin_run_options_set_progress(EosinRunOptions *opts, EosinProgressFunc fn,
                                              void *data);
EOSIN_API void eosin_run_options_set_warning(EosinRunOptions *opts, EosinWarningFunc fn,
                                             void *data);
EOSIN_API void eosin_run_options_set_note(EosinRunOptions *opts, EosinNoteFunc fn, void *data);

/* One slide's result. */
typedef struct _EosinResult EosinResult;

/* Runs @cfg on the slide at @path and writes OUTDIR/<slide>/ (README
 * "Outputs"). Outputs are built under a temporary name, each file fsync'd,
 * and take the place of OUTDIR/<slide> in one atomic step only when every
 * file is written and verified; on failure or cancellation nothing is left
 * behind and a previous result stays as it was. OUTDIR/<slide> is replaced
 * only when Eosin wrote it (EOSIN_ERROR_EXISTS otherwise). @opts may be
 * NULL. Returns the result (eosin_result_free) or NULL with @err set. */
EOSIN_API EosinResult *eosin_run(const EosinConfig *cfg, const char *path, const char *outdir,
                                 const EosinRunOptions *opts, GError **err);
EOSIN_API void eosin_result_free(EosinResult *res);
/* OUTDIR/<slide> */
EOSIN_API const char *eosin_result_get_outdir(const EosinResult *res);
/* Tiles analysed; @planned and @skipped (without tissue) may be NULL. */
EOSIN_API int eosin_result_get_tiles(const EosinResult *res, int *planned, int *skipped);
/* Wall time of the run in seconds. */
EOSIN_API double eosin_result_get_seconds(const EosinResult *res);
/* The task's slide-level scores as JSON (report.json "scores"). Caller frees. */
EOSIN_API char *eosin_result_get_scores_json(const EosinResult *res);
/* The run's warnings, NULL-terminated (empty when none). */
EOSIN_API const char *const *eosin_result_get_warnings(const EosinResult *res);

/* ---------------------------------------------------------------- batches */

typedef struct {
  int total, done, skipped, failed;
  bool interrupted;
  int elsewhere;  /* slides left to another worker of the batch (claimed by it,
                     or settled by it already) */
  double seconds;   /* the batch's wall time in this process */
  double shared_s;  /* of which sharing OUTDIR with other workers: joining, claims,
                       rows and summaries */
} EosinBatchResult;

/* Where a batch is: slide @index (from 0) of @total, its tiles. */
typedef struct {
  int index, total;
  const char *name;
  int tiles_done, tiles_total;
  double tiles_per_s;
  double eta_s;           /* the whole batch's, from the slides done so far */
} EosinBatchProgress;

/* What a batch tells its caller as it goes (each may be NULL; never two
 * calls at once): progress at most every 250 ms per slide and when its
 * tiles are done; slide_done once per slide with its final status (done,
 * done-replaced, skipped-complete, failed). Errors and notes go to the
 * run options' note function. */
typedef struct {
  void (*progress)(const EosinBatchProgress *p, void *data);
  void (*slide_done)(int index, int total, const char *name, const char *status, void *data);
  void *data;
} EosinBatchObserver;

/* Runs @cfg on every slide of @slides, a manifest (one "path" or
 * "path,mpp" a line, relative to its folder) or a folder of slides, into
 * OUTDIR/<slide>/ each, as one worker of OUTDIR's batch: each slide is
 * claimed first, so any number of processes (on any number of hosts
 * sharing OUTDIR) may run the same batch, each slide analysed by one of
 * them (docs/SCALING.md). A slide already complete there for this config
 * and model is skipped (a killed batch resumes); a failing slide is
 * recorded in OUTDIR/batch-summary.csv and the batch goes on; each slide's
 * outputs are written while the next is analysed. @opts and @obs may be
 * NULL. False only when the batch itself cannot run. */
EOSIN_API bool eosin_run_batch(const EosinConfig *cfg, const char *slides, const char *outdir,
                               const EosinRunOptions *opts, const EosinBatchObserver *obs,
                               EosinBatchResult *res, GError **err);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinConfig, eosin_config_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinSlide, eosin_slide_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinCancel, eosin_cancel_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinRunOptions, eosin_run_options_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinResult, eosin_result_free)

G_END_DECLS
