/*
 * eosin.h — the one public header of the Eosin whole-slide analysis engine.
 *
 * A slide is opened (OpenSlide, or libvips for plain images), its tissue is
 * found on a thumbnail, a grid of tiles at the task's µm/px is planned, reader
 * threads stream the tiles through a bounded queue into an analyzer, and the
 * per-tile values are stitched into a grid that is written as pyramidal
 * overlay TIFFs aligned with the slide, plus CSV and JSON reports.
 *
 * Conventions: every fallible function takes `GError **err` last and returns
 * bool or a pointer; coordinates are level-0 pixels of the slide unless a name
 * says otherwise; objects are freed with their `_free` function or g_autoptr.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

#define EOSIN_ERROR (eosin_error_quark())
GQuark eosin_error_quark(void);

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

/* Process exit codes of the `eosin` CLI (documented in README.md). */
enum {
  EOSIN_EXIT_OK = 0,
  EOSIN_EXIT_FAILED = 1,      /* the slide / job failed; message on stderr */
  EOSIN_EXIT_USAGE = 2,       /* bad command line or config */
  EOSIN_EXIT_PARTIAL = 3,     /* batch finished, some slides failed */
  EOSIN_EXIT_INTERRUPTED = 130,
};

const char *eosin_version(void);
/* Eosin's version and those of the libraries it runs on (OpenSlide,
 * libvips, oneDNN, protobuf-c, glib, json-glib, libtiff, zlib, zstd,
 * libdeflate; the CUDA runtime, driver and cuDNN in a CUDA build) as
 * NULL-terminated pairs: name, version, name, version... g_strfreev. */
char **eosin_versions(void);

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

typedef struct _EosinSlide EosinSlide;

/* Opens @path with OpenSlide, or through libvips for plain images that
 * OpenSlide does not read. @mpp_override > 0 is used only when the file has
 * no µm/px of its own. Returns a new slide, freed with eosin_slide_free. */
EosinSlide *eosin_slide_open(const char *path, double mpp_override, GError **err);
/* A second, independent handle on the same slide, for another thread. */
EosinSlide *eosin_slide_reopen(EosinSlide *slide, GError **err);
void eosin_slide_free(EosinSlide *slide);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinSlide, eosin_slide_free)

typedef struct _EosinCancel EosinCancel;
/* Long operations on @slide (a thumbnail of a level without a pyramid
 * reads every pixel) stop with EOSIN_ERROR_CANCELLED within a second of
 * @cancel being set. @cancel (may be NULL) must outlive the slide. */
void eosin_slide_set_cancel(EosinSlide *slide, const EosinCancel *cancel);

/* Borrowed: valid while the slide is open. */
const EosinSlideInfo *eosin_slide_get_info(EosinSlide *slide);
/* Adds @info as a JSON object value to @b (report.json's "slide" and
 * `eosin info --json`). */
void eosin_slide_info_json(const EosinSlideInfo *info, JsonBuilder *b);
/* The slide's content hash as report.json "identity" has it:
 * "openslide-quickhash-1:HEX" for what OpenSlide opens (its properties and
 * smallest level, read in a moment), else "sha256:HEX" of the whole file.
 * Caller frees; NULL with @err when the file cannot be read. */
char *eosin_slide_hash(const char *path, GError **err);

/* Reads a @w x @h region of @level whose top-left is (@x, @y) in level-0
 * pixels into @rgb (w*h*3 bytes), transparent areas composited on white. */
bool eosin_slide_read_region(EosinSlide *slide, int level, int64_t x, int64_t y,
                             int w, int h, uint8_t *rgb, GError **err);

/* A whole-slide RGB thumbnail whose longer side is at most @max_side and
 * whose pixels are at least @min_mpp µm (unless that needs more than
 * @max_side). Returned pixels are owned by the caller (g_free). */
typedef struct {
  int width, height;
  double scale_x, scale_y;  /* level-0 pixels per thumbnail pixel */
  uint8_t *rgb;
} EosinThumbnail;
bool eosin_slide_thumbnail(EosinSlide *slide, int max_side, double min_mpp,
                           EosinThumbnail *out, GError **err);
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

/* Picks the level for @want_downsample (level-0 pixels per output pixel):
 * a level within 5 % is used directly; otherwise the next finer level is
 * read and resampled. Pure function of the downsample list. */
EosinLevelChoice eosin_choose_level(const double *downsamples, int n_levels,
                                    double want_downsample);

/* Resolves µm/px: openslide.mpp-x/y, else tiff.XResolution/YResolution with
 * tiff.ResolutionUnit (centimeter or inch), else @user_mpp > 0, else an
 * EOSIN_ERROR_NO_MPP error that names the slide and what was looked at.
 * @get returns a property value or NULL. Values outside 0.02–200 µm/px are
 * not physical (e.g. a 72 dpi default) and are passed over with a reason. */
typedef const char *(*EosinPropertyGetter)(void *data, const char *name);
bool eosin_resolve_mpp(const char *slide_name, EosinPropertyGetter get, void *data,
                       double user_mpp, double *mpp_x, double *mpp_y,
                       EosinMppSource *source, GError **err);

/* ---------------------------------------------------------------- config */

/* [model] below holds an EosinPreprocess and an EosinInferCache: the
 * neural runtime's face (nn/eosin-nn.h) declares them. */
#include "nn/eosin-nn.h"


/* [lesions]: lesion candidates on one channel of the stitched heatmap
 * (output-lesions.c). */
typedef struct {
  bool present;             /* the file has a [lesions] group */
  char *channel;            /* the heatmap channel (e.g. a [model] class) */
  double threshold;         /* cells at or above it form candidates */
  double min_area_um2;      /* smaller candidates are dropped */
  double smooth_um;         /* > 0: the channel is first averaged over a square
                               window this wide (an odd number of cells) */
  int top_k;                /* slide score: mean of the k highest cells (1 = max) */
} EosinLesionParams;

typedef struct {
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
  double overlay_alpha;     /* 0..1 opacity of drawn cells */
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
    bool fp16;              /* precision = fp16 (GPU only) */
    int cell;               /* segmentation: output pixels per stitched cell */
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
} EosinConfig;
typedef struct _EosinConfigRecord EosinConfigRecord;

/* Loads @path strictly: an unknown group or key, a missing required key or
 * a bad value is an EOSIN_ERROR_CONFIG error naming file, key and value.
 * Groups other than the common ones belong to the analyzer, which checks
 * them in its init. Free with eosin_config_free. */
EosinConfig *eosin_config_load(const char *path, GError **err);
void eosin_config_free(EosinConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinConfig, eosin_config_free)

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
/* Replaces [model] path / device (the command line's --model, --device). */
void eosin_config_set_model(EosinConfig *cfg, const char *path, const char *device);
/* "model made for <[domain] specimen>: ..." (a note for the user: the
 * specimen cannot be checked from the pixels), or NULL when the config
 * declares none ("any"). Caller frees. */
char *eosin_domain_note(const EosinConfig *cfg);

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
bool eosin_tissue_save_png(const EosinTissueMask *mask, const char *path, GError **err);
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

/* Reads tile @t of @plan into @rgb (tile_size^2 * 3 bytes). */
bool eosin_tile_read(EosinSlide *slide, const EosinTilePlan *plan, const EosinTile *t,
                     uint8_t *rgb, GError **err);

/* ---------------------------------------------------------------- analyzers */

typedef struct {
  int n;                  /* tiles in this batch */
  int tile_size;          /* each tile is tile_size^2 RGB */
  const int *tile_ids;    /* indices into plan->tiles */
  const uint8_t *pixels;  /* n * tile_size^2 * 3, row-major RGB */
  const EosinTilePlan *plan;  /* the plan the tiles come from: where each one lies */
} EosinTileBatch;

typedef struct {
  int n_channels;
  char **channel_names;     /* NULL-terminated, owned by the analyzer */
  double *default_min, *default_max;  /* per channel colour-map range */
  /* 0 or 1: one value per channel per tile. s > 1: each tile yields an
   * s x s map of cells (row-major, channels innermost: s*s*n_channels
   * values), stitched at that finer resolution with overlaps blended. */
  int cells_per_side;
} EosinAnalyzerInfo;

/* The interface every task implements (ggml-backend style: ops + context).
 * run() is called from one thread, batch by batch in any order; it must
 * write n * (values per tile: n_channels, times cells_per_side^2 when > 1)
 * values and depend only on the pixels (and where the tiles lie), so
 * results do not change with the thread count. finish() gets all values in
 * tile order and may rewrite them before they are stitched (an analyzer
 * whose tile values need every tile, such as cells counted once across
 * overlaps). Optional (may be NULL): prepare() runs after the tile plan and
 * before the first batch, with what the pipeline gives of the slide
 * (EosinSlideAccess: e.g. to estimate stain vectors from a few tiles); an
 * analyzer never opens or reads the slide itself. write() writes the analyzer's
 * own files into the output folder @dir after finish() and appends their
 * names to @files (GPtrArray of char *, report.json's "outputs");
 * describe() adds one JSON value, report.json's "inference": how the
 * analyzer ran (device, model). */
/* What prepare() may ask of the slide, from the pipeline, which holds the
 * slide open: its description, the tile plan and the usable tissue mask,
 * and, on request, a thumbnail, the pixels of a planned tile and the
 * fragments of tissue. A note (EosinNoteFunc, may be NULL) is a line for
 * the user, such as a fallback taken. Valid during prepare() only. */
typedef struct _EosinSlideAccess EosinSlideAccess;
struct _EosinSlideAccess {
  const EosinSlideInfo *info;
  const EosinTilePlan *plan;
  const EosinTissueMask *mask;  /* may be NULL */
  /* a whole-slide thumbnail whose longer side is at most @max_side
   * (eosin_slide_thumbnail, no µm/px floor); @out cleared with
   * eosin_thumbnail_clear by the caller */
  bool (*thumbnail)(const EosinSlideAccess *s, int max_side, EosinThumbnail *out, GError **err);
  /* planned tile @id (index into plan->tiles) into @rgb (tile_size^2 * 3) */
  bool (*read_tile)(const EosinSlideAccess *s, int id, uint8_t *rgb, GError **err);
  /* the 8-connected fragments of @mask: a label 1..*@n per mask pixel
   * (0 = no tissue), owned by the pipeline; NULL (and *@n = 0) without a
   * mask, or when it cannot be computed (out of memory) */
  const int *(*fragments)(const EosinSlideAccess *s, int *n);
  void (*note)(const EosinSlideAccess *s, const char *text);
  void *data;  /* the pipeline's */
};

typedef struct {
  const char *name;
  /* NULL-terminated names of the files write() may add (an output folder
   * holding any other file is not Eosin's to replace), or NULL */
  const char *const *outputs;
  /* NULL-terminated keys of the analyzer's own group that name model
   * files (relative to the config's folder), part of a result's identity */
  const char *const *model_keys;
  bool (*init)(const EosinConfig *cfg, void **ctx, EosinAnalyzerInfo *info, GError **err);
  bool (*prepare)(void *ctx, const EosinSlideAccess *slide, GError **err);
  bool (*run)(void *ctx, const EosinTileBatch *batch, float *values, GError **err);
  bool (*finish)(void *ctx, const EosinTilePlan *plan, float *values, JsonBuilder *scores,
                 GError **err);
  bool (*write)(void *ctx, const char *dir, const EosinSlideInfo *info, GPtrArray *files,
                GError **err);
  void (*describe)(void *ctx, JsonBuilder *b);
  void (*destroy)(void *ctx);
} EosinAnalyzerOps;

/* The analyzer named @name, or NULL. */
const EosinAnalyzerOps *eosin_analyzer_find(const char *name);

/* Ruifrok–Johnston colour deconvolution: optical density -log10(I/255),
 * clamped at I >= 1e-6*255 like scikit-image, times the inverse of the
 * stain matrix (rows = stain RGB vectors), clamped at 0. Writes 3 values
 * per pixel. Equals 6 x scikit-image's separate_stains(), whose OD is
 * divided by -log10(1e-6). */
void eosin_stain_deconvolve(const uint8_t *rgb, size_t n_pixels,
                            const double stain_from_rgb[3][3], float *out);
bool eosin_stain_matrix_invert(const double rgb_from_stain[3][3],
                               double stain_from_rgb[3][3], GError **err);

/* ---------------------------------------------------------------- pipeline */

struct _EosinCancel {
  volatile gint cancelled;  /* set (g_atomic_int_set) to stop cleanly */
};

typedef void (*EosinProgressFunc)(int done, int total, double tiles_per_s, void *data);
/* A warning about a run (also kept in report.json "warnings"). */
typedef void (*EosinWarningFunc)(const char *message, void *data);
/* A line for the user that is not one of a run's warnings (those are kept
 * in report.json): a slide that failed in a batch (the batch goes on), a
 * result recomputed, a fallback taken, a batch slide's warning with its
 * name. The library never writes to stderr: the CLI prints these. */
typedef enum {
  EOSIN_NOTE_INFO,
  EOSIN_NOTE_WARNING,
  EOSIN_NOTE_ERROR,
} EosinNoteKind;
typedef void (*EosinNoteFunc)(EosinNoteKind kind, const char *text, void *data);

typedef struct {
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
} EosinRunOptions;

typedef struct {
  char *outdir;         /* OUTDIR/<slide> on success */
  int tiles_analyzed;
  int tiles_planned;
  int tiles_skipped;
  double seconds;
  double tiles_per_s;
  JsonNode *scores;     /* the analyzer's slide-level scores */
  char **warnings;      /* NULL-terminated (empty when none) */
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
/* Every slide-like file (by extension) directly in @dir, sorted by name. */
GPtrArray *eosin_batch_from_dir(const char *dir, GError **err);

typedef struct {
  int total, done, skipped, failed;
  bool interrupted;
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

/* Runs every item holding OUTDIR's lock (EOSIN_ERROR_BUSY when another
 * process has it). A slide whose OUTDIR/<name> is COMPLETE for this
 * config is skipped (so a killed batch resumes); a STALE result (another
 * slide, config or model) is recomputed and says so, or with
 * @refuse_stale is a failure of that slide; a FOREIGN folder is a failure.
 * A failing slide is recorded in OUTDIR/batch-summary.csv with its error
 * and the batch goes on. The summary is rewritten after every slide.
 * @obs (may be NULL): progress and slides done. @pipeline: write each
 * slide's outputs on a thread of their own while the next slide is
 * analysed (at most one slide's outputs pending; the results are the same
 * byte for byte, only timings differ); @opts' warning may then be called
 * from that thread (never two calls at once). Returns false only when the
 * batch itself cannot run. */
bool eosin_batch_run(const EosinConfig *cfg, GPtrArray *items, const char *outdir,
                     const EosinRunOptions *opts, const EosinBatchObserver *obs,
                     bool refuse_stale, bool pipeline, EosinBatchResult *res, GError **err);
G_END_DECLS

G_BEGIN_DECLS
/* The model and inference API (EosinModel, EosinInfer, EosinInferCache):
 * nn/eosin-nn.h. */

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
 * src/eval-camelyon16.c and README. */
bool eosin_eval_camelyon16(const EosinC16Options *opts, EosinC16Result *res, GError **err);
/* CAMELYON17: patient pN stages (given, or from node categories) scored by
 * quadratic weighted kappa against @truth. */
bool eosin_eval_camelyon17(const char *pred, const char *truth, double *kappa, int *n_patients,
                           GError **err);
G_END_DECLS
