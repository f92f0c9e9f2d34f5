/*
 * eosin-core.h — the library's own types and the API its layers share, on
 * top of the public eosin.h: what a slide, a config, a tissue mask and a
 * tile plan are, the config's strict getters, a run's options and result,
 * models and inference, batches, predict and evaluation as the CLI calls
 * them; and the file, CSV and JSON helpers every layer writes with. Not
 * installed: a program embedding Eosin includes only eosin.h. The slide
 * reader (slide/slide.h), the analyzer interface (tasks/analyzer.h) and
 * the spine's internals (eosin-private.h) are in their own headers.
 *
 * Conventions: coordinates are level-0 pixels of the slide unless a name
 * says otherwise.
 */
#pragma once

#include "eosin.h"
#include "eosin-util.h"
#include "nn/eosin-nn.h"

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <vips/vips.h>

G_BEGIN_DECLS

/* Process exit codes of the `eosin` CLI (documented in README.md). */
enum {
  EOSIN_EXIT_OK = 0,
  EOSIN_EXIT_FAILED = 1,      /* the slide / job failed; message on stderr */
  EOSIN_EXIT_USAGE = 2,       /* bad command line or config */
  EOSIN_EXIT_PARTIAL = 3,     /* batch finished, some slides failed */
  EOSIN_EXIT_INTERRUPTED = 130,
};

/* libvips only declares g_autoptr support for its types from 8.15 on. */
#if VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION < 15
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VipsImage, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(VipsRegion, g_object_unref)
#endif

/* Sets @err from libvips's error buffer, prefixed with @what, and clears it. */
void _eosin_set_vips_error(GError **err, const char *what);

/* Removes @path and everything below it; missing is not an error. */
bool _eosin_rm_rf(const char *path, GError **err);

/* Calls vips_init once per process; safe from any thread. */
bool _eosin_vips_init(GError **err);

/* Makes @img stop computing (libvips's kill flag) within a fraction of a
 * second of @cancel being set, wherever it is being evaluated: a
 * thumbnail, a pyramid being written. @cancel may be NULL. */
void _eosin_vips_watch_cancel(VipsImage *img, const EosinCancel *cancel);
/* @in passed through unchanged, but each region it is asked for fails once
 * @cancel is set: a source that decodes slowly (strips of a huge image)
 * stops between two reads. A new reference (to @in itself when @cancel is
 * NULL); NULL with libvips's error set on failure. */
VipsImage *_eosin_vips_cancellable(VipsImage *in, const EosinCancel *cancel);

/* strcmp on two char * elements, for qsort of a GStrv. */
int _eosin_strv_cmp(const void *a, const void *b);

/* ---------------------------------------------------------------- slides */

typedef enum {
  EOSIN_MPP_SOURCE_NONE,
  EOSIN_MPP_SOURCE_OPENSLIDE,  /* openslide.mpp-x / -y */
  EOSIN_MPP_SOURCE_TIFF,       /* TIFF XResolution + ResolutionUnit */
  EOSIN_MPP_SOURCE_USER,       /* --mpp on the command line / manifest */
} EosinMppSource;

const char *eosin_mpp_source_name(EosinMppSource src);

typedef struct {
  int64_t width, height;  /* pixels at this level */
  double downsample;      /* level-0 pixels per pixel of this level */
} EosinLevel;

typedef struct {
  char *path;
  char *name;            /* file name without extension: the output folder */
  char *backend;         /* "openslide" or "vips" */
  char *vendor;          /* OpenSlide vendor, or the libvips loader */
  int64_t width, height; /* level 0 */
  int n_levels;
  EosinLevel *levels;
  double mpp_x, mpp_y;
  EosinMppSource mpp_source;
  double objective_power;  /* 0 when the slide does not say */
  bool has_bounds;         /* openslide.bounds-* present */
  int64_t bounds_x, bounds_y, bounds_w, bounds_h;  /* the whole slide if not */
  char **associated;       /* NULL-terminated names of associated images */
} EosinSlideInfo;


/* A whole-slide RGB thumbnail (eosin_slide_thumbnail); its pixels are
 * freed with eosin_thumbnail_clear. */
typedef struct {
  int width, height;
  double scale_x, scale_y;  /* level-0 pixels per thumbnail pixel */
  uint8_t *rgb;
} EosinThumbnail;
void eosin_thumbnail_clear(EosinThumbnail *thumb);

/* How a tile at a target µm/px is read: from @level, scaled by @scale (level
 * pixels per output pixel); @resample is false when the level is within 5 %
 * of the target and is read as it is. */
typedef struct {
  int level;
  double scale;    /* level pixels per output pixel, across */
  bool resample;
  double scale_y;  /* the same down: differs from scale only for pixels that
                    * are not square (set by the tile plan) */
} EosinLevelChoice;


/* ---------------------------------------------------------------- config */



/* [lesions]: lesion candidates on one channel of the stitched heatmap
 * (output/lesions.c). */
typedef struct {
  bool present;             /* the file has a [lesions] group */
  char *channel;            /* the heatmap channel (e.g. a [model] class) */
  double threshold;         /* cells at or above it form candidates */
  double min_area_um2;      /* smaller candidates are dropped */
  double smooth_um;         /* > 0: the channel is first averaged over a square
                               window this wide (an odd number of cells) */
  int top_k;                /* slide score: mean of the k highest cells (1 = max) */
} EosinLesionParams;

typedef struct _EosinInferCache EosinInferCache;

struct _EosinConfig {
  char *path;               /* the config file */
  char *task;               /* [task] name */
  char *analyzer;           /* [task] analyzer */
  /* [domain]: what the model (or the task's method) was made for. Stain and
   * imaging are checked from the pixels by the QC stage, the slide's
   * µm/px by the pipeline (domain.c); the specimen cannot be checked and is
   * only said (report.json "domain", a note on stderr). Absent group:
   * any / any / any / 0 / 0 / warn. */
  struct {
    bool present;           /* the file has a [domain] group */
    char *stain;            /* he | hdab | any */
    char *imaging;          /* brightfield | fluorescence | any */
    char *specimen;         /* free text, e.g. "lymph-node sections", or "any" */
    double slide_mpp_min, slide_mpp_max; /* accepted level-0 µm/px of a slide;
                                            0 = no bound */
    char *on_mismatch;      /* refuse | warn: what a stain, imaging or µm/px
                               mismatch does */
  } domain;
  /* [tiling] */
  int tile_size;            /* pixels at mpp */
  int overlap;              /* pixels at mpp, < tile_size */
  double mpp;               /* µm per pixel the analyzer sees */
  /* [tissue] */
  double tissue_min_fraction;   /* tiles below are skipped */
  double tissue_thumbnail_mpp;  /* µm/px of the thumbnail */
  int tissue_max_side;          /* thumbnail size cap */
  double tissue_min_saturation; /* floor under the Otsu threshold */
  double tissue_closing_um;     /* closing radius */
  double tissue_min_object_um2; /* smaller objects removed */
  double tissue_max_hole_um2;   /* smaller holes filled */
  /* [scheduler] */
  int readers;              /* reader threads, each with its own slide handle */
  int batch_size;           /* tiles per batch */
  int queue_depth;          /* batches buffered between readers and analyzer */
  gint64 max_memory_bytes;  /* [scheduler] max_memory_mb, default half the machine's */
  /* [overlay] */
  char *overlay_channel;    /* which analyzer channel is drawn */
  char *colormap;           /* viridis, jet, inferno, gray */
  double overlay_alpha;     /* 0..1 opacity of drawn cells (the highest, with a ramp) */
  double overlay_floor;     /* cells below it are not drawn; NaN: off */
  char *overlay_opacity;    /* constant | ramp: opacity growing with the value */
  double overlay_min, overlay_max;  /* value range of the colour map */
  bool overlay_range_set;   /* false: the analyzer's default range */
  char *overlay_compression; /* deflate (any viewer), zstd (faster to write), lzw */
  char *tiles_geojson;      /* plain (tiles.geojson), zip (tiles.geojson.zip) or off */
  /* [model]: the network an analyzer (cnn) or `eosin predict` runs. The
   * command line's --model and --device replace path and device. */
  struct {
    bool present;           /* the file has a [model] group */
    char *path;             /* relative paths are taken from the config's folder */
    char *kind;             /* classification | segmentation */
    char **classes;         /* NULL-terminated class names, in output order */
    int n_classes;
    char *activation;       /* none (outputs are probabilities) | softmax | sigmoid */
    EosinPreprocess pre;    /* mean, std, channel order */
    char *device;           /* auto | cpu | cuda | cuda:N */
    bool path_given, device_given; /* set by eosin_config_set_model (--model, --device):
                                      errors name the command line, not the file */
    bool fp16;              /* precision = fp16 (GPU only) */
    int cell;               /* segmentation: output pixels per stitched cell */
    bool tta_dihedral;      /* tta = dihedral: the mean of the 8 orientations (nn/tta.c) */
    double predict_center_crop; /* `eosin predict`: the central fraction of each
                                   image (each side) the model sees, 1 = all */
    EosinInferCache *cache; /* not from the file: set (borrowed) by eosin_batch_run
                               on its copy of the config, so the analyzers of
                               its slides share backends; NULL otherwise */
  } model;
  EosinLesionParams lesions;
  /* [qc]: the quality gate before tiling (qc.c) */
  struct {
    bool enabled;
    char *pen, *dark, *edge, *blur; /* per artefact: exclude | flag | off */
    double min_usable_fraction;     /* less usable tissue than this: fail */
    double warn_fraction;           /* an artefact on more of the tissue: warn */
    double dark_lightness;          /* stained tissue darker (L*) than this: a fold */
    double blur_threshold;          /* tiles below this sharpness are blurred; 0 = off */
    int brightfield_min_median;     /* darker median brightness: fluorescence */
  } qc;
  GKeyFile *keyfile;        /* the whole file, for the analyzer's own group */
  /* every key as the getters resolved it, defaults included (report.json
   * "config"; config-effective.c); shared by shallow copies, freed with
   * the config */
  struct _EosinConfigRecord *effective;
};
typedef struct _EosinConfigRecord EosinConfigRecord;


/* Helpers for analyzers reading their own group with the same strictness. */
bool eosin_config_check_keys(const EosinConfig *cfg, const char *group,
                             const char *const *known, GError **err);
bool eosin_config_get_double(const EosinConfig *cfg, const char *group,
                             const char *key, double def, double min, double max,
                             double *out, GError **err);
bool eosin_config_get_int(const EosinConfig *cfg, const char *group, const char *key, int def,
                          int min, int max, int *out, GError **err);
bool eosin_config_get_choice(const EosinConfig *cfg, const char *group,
                             const char *key, const char *def,
                             const char *const *choices, char **out, GError **err);
/* "model made for <[domain] specimen>: ..." (a note for the user: the
 * specimen cannot be checked from the pixels), or NULL when the config
 * declares none ("any"). Caller frees. */
char *eosin_domain_note(const EosinConfig *cfg);

/* The config's own machinery (config.c, config-file.c, config-effective.c). */

/* The effective config (config-effective.c): what every getter resolved.
 * _new/_free belong to eosin_config_load/_free. */
EosinConfigRecord *_eosin_config_record_new(void);
void _eosin_config_record_free(EosinConfigRecord *r);
/* What an empty [overlay] channel and an absent min/max stood for: the
 * analyzer's channel and range the run resolved them to. */
void _eosin_config_record_overlay(const EosinConfig *cfg, const char *channel, double vmin,
                                  double vmax);
/* Adds members "effective" ({group: {key: value}}, every key recorded and
 * every key of the file) and "ini" (the same as .ini text that re-runs it)
 * to the JSON object being built. */
void _eosin_config_effective_json(const EosinConfig *cfg, JsonBuilder *b);

/* Reads cfg->path into cfg->keyfile strictly (config-file.c): an
 * EOSIN_ERROR_CONFIG error naming the file and line otherwise. */
bool _eosin_config_read_keyfile(EosinConfig *cfg, GError **err);
/* Half of this machine's memory (or of its cgroup's limit). */
gint64 _eosin_default_memory_limit(void);
/* Bytes a run of @cfg with @readers reader threads holds for tiles in
 * flight, whatever the slide. */
gint64 _eosin_config_memory_estimate(const EosinConfig *cfg, int readers);
/* An EOSIN_ERROR_CONFIG error naming the file, the keys and the sizes when
 * that estimate is above cfg->max_memory_bytes. */
bool _eosin_config_check_memory(const EosinConfig *cfg, int readers, GError **err);

/* ---------------------------------------------------------------- tissue */

typedef struct {
  int width, height;       /* thumbnail pixels */
  double scale_x, scale_y; /* level-0 pixels per mask pixel */
  uint8_t *mask;           /* 1 = tissue */
  double threshold;        /* saturation threshold used */
  bool glass;              /* a glass population was found (the threshold is
                              Otsu's); false: all tissue, the floor is used */
  double fraction;         /* tissue pixels / pixels inside bounds */
  int64_t *integral;       /* (w+1)*(h+1) summed-area table of mask */
} EosinTissueMask;

/* Saturation + Otsu when the image has glass (else only the floor),
 * floored at cfg->tissue_min_saturation, closing, small-object removal
 * (below min_object_um2 and 1 % of the image) and hole filling on @thumb,
 * inside the slide bounds. */
bool eosin_tissue_detect(const EosinThumbnail *thumb, const EosinSlideInfo *info,
                         const EosinConfig *cfg, EosinTissueMask *out, GError **err);
/* Fraction of tissue in a level-0 rectangle. */
double eosin_tissue_fraction(const EosinTissueMask *mask, double x, double y,
                             double w, double h);
void eosin_tissue_clear(EosinTissueMask *mask);

/* ---------------------------------------------------------------- tiling */

typedef struct {
  int64_t x, y;        /* level-0 top-left (rounded down) */
  int col, row;        /* grid position */
  float tissue;        /* tissue fraction */
} EosinTile;

typedef struct {
  int tile_size, overlap;  /* pixels at the target µm/px */
  double mpp;
  double tile_l0_x, tile_l0_y;      /* tile extent in level-0 pixels */
  double stride_l0_x, stride_l0_y;  /* tile stride in level-0 pixels */
  int64_t origin_x, origin_y;       /* level-0 top-left of tile (0,0) */
  int cols, rows;                   /* tiles across and down */
  int planned;                      /* cols * rows */
  int skipped;                      /* below the tissue fraction */
  EosinLevelChoice level;
  GArray *tiles;                    /* EosinTile, the tiles to analyse */
} EosinTilePlan;

/* Plans tiles of cfg->tile_size at cfg->mpp over the slide bounds and keeps
 * those with at least cfg->tissue_min_fraction tissue (all, if @mask is NULL). */
bool eosin_tile_plan(const EosinSlideInfo *info, const EosinConfig *cfg,
                     const EosinTissueMask *mask, EosinTilePlan *plan, GError **err);
void eosin_tile_plan_clear(EosinTilePlan *plan);

/* The level a plan at cfg->mpp reads and how it is scaled (the tile plan's
 * own choice, tiling.c); *@dx_out / *@dy_out (may be NULL): level-0 pixels
 * per tile pixel across and down. */
EosinLevelChoice _eosin_plan_level(const EosinSlideInfo *info, const EosinConfig *cfg,
                                   double *dx_out, double *dy_out);

/* ---------------------------------------------------------------- pipeline */

struct _EosinCancel {
  volatile gint cancelled;  /* set (g_atomic_int_set) to stop cleanly */
};

struct _EosinRunOptions {
  int readers_override;     /* > 0: replaces cfg->readers */
  double mpp_override;      /* > 0: used when the slide has no µm/px */
  bool allow_upsample;      /* --allow-upsample: a level read upsampled more
                               than 2x is a warning, not an error */
  EosinCancel *cancel;      /* may be NULL */
  EosinProgressFunc progress;
  void *progress_data;
  EosinWarningFunc warning; /* may be NULL: called as each warning arises */
  void *warning_data;
  EosinNoteFunc note;       /* may be NULL: notes (EosinNoteFunc) */
  void *note_data;
  const char *const *argv;  /* may be NULL: the command line (NULL-terminated), for
                               report.json "command"; borrowed, must outlive the run */
  bool skip_complete;       /* eosin_run_slide: a result in OUTDIR complete for this
                               slide, config and model is kept, not recomputed
                               (res->already_complete); `eosin run` without --force */
  /* may be NULL: asked just before the result is moved into place; false
   * (with its error) stops the run there, nothing placed */
  bool (*fence)(void *data, GError **err);
  void *fence_data;
};

typedef struct {
  char *outdir;         /* OUTDIR/<slide> on success */
  int tiles_analyzed;
  int tiles_planned;
  int tiles_skipped;
  double seconds;
  double tiles_per_s;
  JsonNode *scores;     /* the analyzer's slide-level scores */
  char **warnings;      /* NULL-terminated (empty when none) */
  bool already_complete; /* skip_complete found the result there: nothing was run */
} EosinRunResult;
void eosin_run_result_clear(EosinRunResult *res);

/* Runs @cfg on the slide at @path and writes OUTDIR/<slide>/: overlay.tif,
 * heatmap.tif, preview.png, tissue.png, tiles.csv, tiles.geojson (as
 * [overlay] tiles_geojson says) and report.json.
 * Outputs are built in OUTDIR/.<slide>.partial (each file durable: fsync'd
 * and renamed) and the folder takes the place of OUTDIR/<slide> in one
 * atomic step only when every file is written and overlay.tif re-opens
 * with the slide's size and µm/px; on failure or cancellation nothing is
 * left behind and a previous result stays as it was. OUTDIR/<slide> is
 * replaced only when Eosin wrote it (its marker lists every file in it);
 * otherwise the run stops with EOSIN_ERROR_EXISTS before any work. The run
 * holds OUTDIR's lock (EOSIN_ERROR_BUSY when another process has it). */
bool eosin_run_slide(const EosinConfig *cfg, const char *path, const char *outdir,
                     const EosinRunOptions *opts, EosinRunResult *res, GError **err);

/* What OUTDIR/<slide> holds for a run of a config on a slide. */
typedef enum {
  EOSIN_OUTPUT_ABSENT,   /* nothing there */
  EOSIN_OUTPUT_COMPLETE, /* Eosin's finished, intact result of this slide, config and models */
  EOSIN_OUTPUT_STALE,    /* Eosin's finished result of another slide, config or model */
  EOSIN_OUTPUT_BROKEN,   /* Eosin's, but unfinished or with a file missing or changed */
  EOSIN_OUTPUT_FOREIGN,  /* not Eosin's (or holding files it did not write): never replaced */
} EosinOutputState;

/* Which of these OUTDIR/<slide> is for running @cfg (after --model and
 * --device) on @slide with @opts' --mpp (@opts may be NULL); *@why (may be
 * NULL; caller frees) says why it is not complete. False with an error
 * when the slide or a model cannot be read to know its identity. */
bool eosin_output_check(const EosinConfig *cfg, const char *slide, const EosinRunOptions *opts,
                        const char *outdir, EosinOutputState *state, char **why, GError **err);

/* The output folder name of a slide path (basename without extension). */
char *eosin_slide_name_from_path(const char *path);

G_END_DECLS

G_BEGIN_DECLS
/* ---------------------------------------------------------------- batch */

typedef struct {
  char *path;
  double mpp;  /* > 0: used when the slide has none */
} EosinBatchItem;

/* A manifest: one slide per line, "path" or "path,mpp"; blank lines, '#'
 * comments and a "path[,mpp]" header are ignored; relative paths are taken
 * from the manifest's folder. Returns a GPtrArray of EosinBatchItem
 * (owned, with its free function). */
GPtrArray *eosin_batch_from_manifest(const char *path, GError **err);
/* Every slide directly in @dir, sorted by name: files with a slide's or
 * image's extension and files OpenSlide recognises, less the companions
 * that sit beside slides (truth masks named *_mask, XML, CSV, JSON,
 * text). @skipped (may be NULL): "name (why)" of every other file left
 * out (caller frees), for the caller to list. */
GPtrArray *eosin_batch_from_dir(const char *dir, GPtrArray **skipped, GError **err);

/* ---------------------------------------------------------------- claims (claim.c) */

/* One worker's claim on slide @name of a shared OUTDIR (claim.c says how:
 * O_EXCL generations, a heartbeat in the mtime). */
typedef struct _EosinClaim EosinClaim;
/* Claims @name in @outdir: a new claim (release with _eosin_claim_release),
 * taking over one whose holder is dead (on this host: its PID is gone; on
 * another: no heartbeat for @stale_s seconds); NULL with *@holder (caller
 * frees) naming the live holder; NULL with @err on an I/O error. */
EosinClaim *_eosin_claim_take(const char *outdir, const char *name, double stale_s,
                              char **holder, GError **err);
/* Whether @name's claim in @outdir is held by a live worker (*@holder,
 * caller frees, names it); probes, takes nothing. */
bool _eosin_claim_live(const char *outdir, const char *name, double stale_s, char **holder);
/* _eosin_claim_take, waiting (polling every 5 ms) while a live worker
 * holds it: for claims held for milliseconds, such as a batch's merge. An
 * EOSIN_ERROR_CANCELLED error when @cancel (may be NULL) is set. */
EosinClaim *_eosin_claim_wait(const char *outdir, const char *name, double stale_s,
                              const EosinCancel *cancel, GError **err);
/* Refreshes the heartbeat; an EOSIN_ERROR_BUSY error when another worker
 * has taken the slide over (this one must drop its work on it). */
bool _eosin_claim_heartbeat(EosinClaim *c, GError **err);
/* Gives the claim up (its file removed unless a successor took over). */
void _eosin_claim_release(EosinClaim *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinClaim, _eosin_claim_release)
/* A thread beating @c's heartbeat every @interval_s (a quarter of the
 * stale limit, say) while the slide is analysed and written; when another
 * worker takes the slide over it sets @on_loss, which the run honours as a
 * cancel. Both borrowed, outliving the keeper; stop it (joins the thread)
 * before releasing @c. */
typedef struct _EosinClaimKeeper EosinClaimKeeper;
EosinClaimKeeper *_eosin_claim_keep(EosinClaim *c, double interval_s, EosinCancel *on_loss);
void _eosin_claim_keeper_stop(EosinClaimKeeper *k);

/* ---------------------------------------------------------------- shards (shard.c) */

#define EOSIN_MAX_SHARDS 100000

/* "K/N" (1 <= K <= N <= EOSIN_MAX_SHARDS) into @k, @n; otherwise an
 * EOSIN_ERROR_CONFIG error naming the value. */
bool _eosin_shard_parse(const char *text, int *k, int *n, GError **err);

/* A Slurm array task's variables (SLURM_ARRAY_TASK_ID, _MIN, _MAX, _STEP,
 * _COUNT as the process got them; NULL when unset), borrowed. */
typedef struct {
  const char *task_id, *task_min, *task_max, *task_step, *task_count;
} EosinSlurmArray;
/* The shard of the array task @env describes: tasks MIN, MIN + STEP, ...
 * (COUNT of them, or up to MAX) are shards 1..N. *@found is false (and
 * nothing else set) outside an array job; an EOSIN_ERROR_CONFIG error
 * when the variables do not name one task of the array. */
bool _eosin_shard_from_slurm(const EosinSlurmArray *env, int *k, int *n, bool *found,
                             GError **err);
/* The places in @items (EosinBatchItem) of shard @k of @n: every n-th of
 * the list sorted by path, from the k-th, in manifest order (all of them
 * when @n <= 1). A GArray of guint, caller frees. */
GArray *_eosin_shard_indices(GPtrArray *items, int k, int n);
/* Keeps shard @k of @n of @items (EosinBatchItem, with its free function):
 * the slides at places k-1, k-1+n, ... of the list sorted by path, in
 * their manifest order; frees the others. */
void _eosin_batch_keep_shard(GPtrArray *items, int k, int n);


/* ---------------------------------------------------------------- shared batch state (batch-state.c) */

/* OUTDIR's folder of what the workers of a batch share (batch-state.c). */
#define EOSIN_BATCH_STATE_DIR ".eosin-batch"
/* Seconds without a heartbeat after which another host's claim is dead
 * (on this host a claim is dead as soon as its PID is). */
#define EOSIN_CLAIM_STALE_S 300.0

/* One row of batch-summary.csv (and camelyon-slides.csv). */
typedef struct {
  char *path, *name, *status, *error;
  char *qc;            /* the QC verdict (pass / warn / fail), or NULL when unknown */
  double seconds, tiles_per_s;
  double probability;  /* scores.lesions.slide_probability of a finished slide, else NaN */
  int tiles;
  /* the headline index.html shows: the score the slide is known by (NaN:
   * none), what it is, its category (each may be NULL) */
  double score;
  char *score_label, *category;
} EosinBatchRow;
void _eosin_batch_row_clear(EosinBatchRow *r);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(EosinBatchRow, _eosin_batch_row_clear)

typedef struct _EosinBatchState EosinBatchState;
typedef struct {
  const char *batch_id; /* NULL: join the batch whose workers are live, else start one */
  bool camelyon;        /* a new batch keeps camelyon-slides.csv ([lesions] tasks) */
  double stale_s;       /* <= 0: EOSIN_CLAIM_STALE_S */
  EosinCancel *cancel;  /* may be NULL: set when this worker is taken for dead */
} EosinBatchJoin;
/* Registers this process as a worker of @outdir's batch for @items (the
 * whole manifest, before any shard): joins the batch @j names (or, with
 * no id, the one whose workers are live), else starts one. *@note (caller
 * frees; may be NULL) says which batch was joined. Errors: another
 * manifest than the batch's (EOSIN_ERROR_CONFIG), another batch live in
 * @outdir (EOSIN_ERROR_BUSY), I/O. Free with _eosin_batch_leave. */
EosinBatchState *_eosin_batch_join(const char *outdir, GPtrArray *items, const EosinBatchJoin *j,
                                   char **note, GError **err);
/* The batch of @outdir, read only (merge, status): not registered. */
EosinBatchState *_eosin_batch_open(const char *outdir, double stale_s, GError **err);
void _eosin_batch_leave(EosinBatchState *st);
/* This worker is done: deregistered, and if no other worker is live the
 * summaries merged one last time (else the last one out does it). */
bool _eosin_batch_finish(EosinBatchState *st, GError **err);
/* Puts @items (the manifest this worker joined @st with: the same slides,
 * its hash says) in the batch's order, so that slide i is the batch's. */
void _eosin_batch_align(const EosinBatchState *st, GPtrArray *items);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinBatchState, _eosin_batch_leave)
const char *_eosin_batch_id(const EosinBatchState *st);
/* The first slide of the batch with slide @index's output name (@index
 * itself unless the name is used twice). */
guint _eosin_batch_first_named(const EosinBatchState *st, guint index);
/* Whether slide @index has a row of this batch (*@status, caller frees,
 * may be NULL: its status). */
bool _eosin_batch_settled(const EosinBatchState *st, guint index, char **status);
/* Writes slide @index's row (durably; call holding the slide's claim). */
bool _eosin_batch_put_row(const EosinBatchState *st, guint index, const EosinBatchRow *row,
                          GError **err);
/* Rebuilds OUTDIR/batch-summary.csv (and camelyon-slides.csv) from the
 * rows of this batch, in manifest order, under the merge claim; unless
 * @force, at most once a second and 50x the last merge's cost apart (a
 * merge reads every row: with 100,000 slides it is spaced out).
 * *@rows (may be NULL): the rows written. */
bool _eosin_batch_merge(EosinBatchState *st, bool force, const EosinCancel *cancel, int *rows,
                        GError **err);
/* Where every slide of the batch is: done / failed (a row), running (a
 * live claim), pending. */
typedef struct {
  char *id;
  int slides, done, failed, running, pending, workers;
  GPtrArray *lines;  /* char *: "name\tstate\tdetail" per slide, in manifest order */
} EosinBatchSurvey;
bool _eosin_batch_survey(EosinBatchState *st, EosinBatchSurvey *sv, GError **err);
void _eosin_batch_survey_clear(EosinBatchSurvey *sv);

/* ---------------------------------------------------------------- batches (batch.c) */

typedef struct {
  bool refuse_stale;    /* a result of another slide, config or model fails that slide
                           instead of being recomputed */
  bool pipeline;        /* write a slide's outputs while the next is analysed */
  int shard_k, shard_n; /* shard K of N of the manifest (0/0: all) */
  const char *batch_id; /* see EosinBatchJoin */
  double stale_s;       /* see EosinBatchJoin */
} EosinBatchOptions;

/* Runs @items (the whole manifest; @bo's shard of it) as one worker of
 * OUTDIR's batch (batch-state.c): each slide is claimed before it is
 * looked at (claim.c), so any number of workers share OUTDIR, each slide
 * settled by one of them; a slide claimed by a live worker or settled in
 * this batch is left to it (res->elsewhere), one whose holder died is
 * taken over and redone from scratch. A slide whose OUTDIR/<name> is
 * COMPLETE for this config is skipped (so a killed batch resumes); a
 * STALE result (another slide, config or model) is recomputed and says
 * so, or with refuse_stale is a failure of that slide; a FOREIGN folder
 * is a failure. A failing slide is recorded in OUTDIR/batch-summary.csv
 * with its error and the batch goes on; the summaries are merged from
 * every worker's rows as slides finish and when the worker ends.
 * @obs (may be NULL): progress and slides done. With pipeline the
 * results are the same byte for byte, only timings differ; @opts' warning
 * may then be called from the writer thread (never two calls at once).
 * @bo may be NULL (defaults). Returns false only when the batch itself
 * cannot run. */
bool eosin_batch_run(const EosinConfig *cfg, GPtrArray *items, const char *outdir,
                     const EosinRunOptions *opts, const EosinBatchObserver *obs,
                     const EosinBatchOptions *bo, EosinBatchResult *res, GError **err);
/* A batch's ETA in seconds: @elapsed_s for @tiles_done tiles so far, and
 * @tiles_left_here in the slide at hand plus @tiles_per_slide for each of
 * @slides_left slides not begun; NaN before anything is measured. */
double _eosin_batch_eta(double elapsed_s, double tiles_done, double tiles_left_here,
                        double tiles_per_slide, int slides_left);
/* `eosin batch --merge OUTDIR`: the summaries rebuilt from the batch's
 * rows; @survey (may be NULL) says where every slide is. */
bool eosin_batch_merge(const char *outdir, EosinBatchSurvey *survey, GError **err);
G_END_DECLS

G_BEGIN_DECLS
/* ---------------------------------------------------------------- predict */

typedef struct {
  EosinCancel *cancel;  /* may be NULL */
  /* each may be NULL: images done of @total after each batch; a note per
   * image that cannot be read (EOSIN_NOTE_WARNING) */
  void (*progress)(int done, int total, void *data);
  EosinNoteFunc note;
  void *data;
} EosinPredictOptions;

typedef struct {
  int images;      /* rows written */
  int failed;      /* unreadable images, noted and left out */
  int resized;     /* images not at the model's input size, resized */
  double seconds;
  char *backend;   /* eosin_infer_summary of the run */
} EosinPredictResult;
void eosin_predict_result_clear(EosinPredictResult *res);

/* Runs cfg's classification model on every image below the folder @input
 * (recursively) or listed in the file @input (one path per line, relative
 * to the list's folder), in path order, and writes @csv_path: a header
 * "path,<class>,..." then one row per image, the path relative to @input,
 * the probabilities in the config's class order. Images that cannot be
 * read are reported to @opts' note function, counted in res->failed and
 * left out. */
bool eosin_predict(const EosinConfig *cfg, const char *input, const char *csv_path,
                   const EosinPredictOptions *opts, EosinPredictResult *res, GError **err);

/* ---------------------------------------------------------------- evaluation */

typedef struct {
  const char *pred_dir;   /* <slide>.csv or <slide>/detections.csv (confidence,X,Y)
                           * and camelyon-slides.csv (name,probability) */
  const char *truth;      /* <slide>.xml (ASAP) or <slide>_mask.png/.tif (level 5) */
  const char *reference;  /* optional: name,Tumor|Normal,... for every slide */
  const char *out_dir;    /* optional: froc.csv and froc.png written there */
} EosinC16Options;

typedef struct {
  double auc;              /* slide-level ROC AUC; NaN without camelyon-slides.csv */
  int n_slides_auc;
  double froc;             /* mean sensitivity at 1/4 .. 8 FP per slide */
  double sensitivity[6];
  int n_slides_froc, n_tumours, n_itc;
  char *curve_csv, *curve_png;
} EosinC16Result;
void eosin_c16_result_clear(EosinC16Result *r);

/* CAMELYON16 evaluation as the challenge's Evaluation_FROC.py: see
 * src/eval/eval-camelyon16.c and README. */
bool eosin_eval_camelyon16(const EosinC16Options *opts, EosinC16Result *res, GError **err);
/* CAMELYON17: patient pN stages (given, or from node categories) scored by
 * quadratic weighted kappa against @truth. */
bool eosin_eval_camelyon17(const char *pred, const char *truth, double *kappa, int *n_patients,
                           GError **err);
/* ---------------------------------------------------------------- shared by layers */

/* Records @group.@key = @value (.ini text; NULL: nothing) as the run's;
 * thread-safe, through a const config. [model] keys only when the file has
 * that group. */
void _eosin_config_record(const EosinConfig *cfg, const char *group, const char *key,
                          const char *value);
/* The same for a number (shortest text that reads back to @v). */
void _eosin_config_record_double(const EosinConfig *cfg, const char *group, const char *key,
                                 double v);
/* Prefixes @err (a failure to set up [model]'s network) with where the
 * value at fault came from: "--device cuda (command line): " for a device
 * error when --device gave it, "--model M (command line): " when --model
 * gave the path, else "CONFIG: [model] path: ". */
void _eosin_config_prefix_model_error(const EosinConfig *cfg, GError **err);
/* A path named in @cfg made absolute: relative paths are taken from the
 * config file's folder. Caller frees. */
char *_eosin_config_resolve_path(const EosinConfig *cfg, const char *path);

/* Where QuPath's image pixel (0, 0) lies on @info's level 0: QuPath shows
 * a slide with bounds cropped to them. Every .geojson Eosin writes (files
 * QuPath imports) subtracts this from level-0 coordinates; detections.csv,
 * lesions.xml (ASAP, CAMELYON) and the .csv files keep level-0 ones. */
void _eosin_qupath_origin(const EosinSlideInfo *info, int64_t *x, int64_t *y);


G_END_DECLS
