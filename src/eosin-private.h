/*
 * eosin-private.h — the spine's own header (the files of src/, output/, slide/,
 * eval/, the CLI): identity, output folders, the pipeline's phases, the
 * scheduler, stitching, the quality gate, the output writers. It sees
 * every layer below: the core types (eosin-core.h), the slide reader
 * (slide/slide.h), the analyzer interface (tasks/analyzer.h), cells/ and
 * nn/. A task never includes it.
 */
#pragma once

#include "eosin-core.h"
#include "slide/slide.h"
#include "tasks/analyzer.h"

#include <stdio.h>
#include <vips/vips.h>

G_BEGIN_DECLS

/* ---------------------------------------------------------------- identity (identity.c) */

/* What a result belongs to (report.json "identity"). */
typedef struct {
  char *slide_path;     /* absolute, symlinks resolved */
  gint64 slide_size;
  gint64 slide_mtime_us; /* modification time, µs since 1970 (not compared: the
                            hash says whether the content changed) */
  char *slide_hash;     /* "openslide-quickhash-1:HEX" or "sha256:HEX" */
  double mpp_user;      /* --mpp / manifest mpp, 0 when none */
  char *task;
  char *config_sha256;  /* of the canonical effective config */
  char **model_paths;   /* NULL-terminated, absolute */
  char **model_sha256;  /* one per path */
  /* files beyond every task's own that this config writes (tiles.geojson),
   * NULL-terminated: a result without one is not this config's (an
   * earlier Eosin did not write it); not part of report.json's identity */
  char **outputs;
} EosinIdentity;
void _eosin_identity_clear(EosinIdentity *id);
/* SHA-256 of a file as lower-case hex; @cancel may be NULL. Caller frees. */
char *_eosin_sha256_file(const char *path, const char *what, const EosinCancel *cancel,
                         GError **err);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(EosinIdentity, _eosin_identity_clear)
/* Fills the config part: the config's keys in a canonical order (groups
 * and keys sorted, values trimmed, model paths absolute, --model/--device
 * applied; speed-only [scheduler] keys left out) hashed, and the SHA-256
 * of every model file ([model] path and the analyzer's model_keys). */
bool _eosin_identity_config(const EosinConfig *cfg, EosinIdentity *id, GError **err);
/* Fills the slide part (path, size, quickhash-1 or SHA-256, @mpp_user). */
bool _eosin_identity_slide(const char *path, double mpp_user, const EosinCancel *cancel,
                           EosinIdentity *id, GError **err);
/* Adds @id as one JSON object value. */
void _eosin_identity_json(const EosinIdentity *id, JsonBuilder *b);
/* NULL when report.json's identity object @got is @want's, else why not
 * (caller frees). */
char *_eosin_identity_differs(const EosinIdentity *want, JsonObject *got);


/* eosin_versions() as one JSON object value {name: version} (provenance.c). */
void _eosin_versions_json(JsonBuilder *b);
/* The command line @argv (NULL-terminated) as one JSON object value: argv,
 * the line as a shell would take it, and the working folder it ran in. */
void _eosin_command_json(const char *const *argv, JsonBuilder *b);

/* ---------------------------------------------------------------- output folders */

/* The marker file's name (".eosin-output"). */
const char *_eosin_marker_name(void);
/* True for a name Eosin writes into an output folder (core outputs,
 * lesions, every analyzer's outputs). */
bool _eosin_is_output_name(const char *name);
/* Writes the marker into the new folder @dir: first, before any output. */
bool _eosin_marker_begin(const char *dir, const char *slide_path, GError **err);
/* Rewrites the marker with the name and size of every file in @dir (all
 * must be Eosin's names) and "sealed": the folder is finished. */
bool _eosin_marker_seal(const char *dir, GError **err);
/* True when @dir is a real folder with Eosin's marker holding only what
 * Eosin wrote (sealed: the listed files at their sizes; not sealed: Eosin's
 * names and temporary files) and not the file @slide_path (may be NULL);
 * else an EOSIN_ERROR_EXISTS error naming the folder and what is in the way. */
bool _eosin_output_is_ours(const char *dir, const char *slide_path, GError **err);
/* The files a batch writes into OUTDIR itself (no slide may take their
 * names). */
#define EOSIN_BATCH_FILES {"batch-summary.csv", "camelyon-slides.csv", "index.html", NULL}
/* Removes the temporary files (".NAME.XXXXXX.tmp", plain files) of the
 * OUTDIR-level files @names that a killed run left; call only while
 * holding OUTDIR's lock, which proves no writer is using them. */
void _eosin_outdir_remove_stale_temps(const char *outdir, const char *const *names);
/* True when @dir's marker is sealed and every file it lists is there at
 * its size; else *@why says what is wrong (caller frees). */
bool _eosin_output_sealed_intact(const char *dir, char **why);
/* Removes @dir after checking it is ours: its files, the marker last, the
 * folder. Anything else found there stops it with an error. */
bool _eosin_output_remove(const char *dir, GError **err);
/* OK when @final does not exist or is ours to replace. */
bool _eosin_output_check_replaceable(const char *final, const char *slide_path, GError **err);
/* Creates OUTDIR/.NAME.partial (removing a stale one of Eosin's, refusing
 * anything else) with its marker. Returns its path (caller frees). */
char *_eosin_output_stage(const char *outdir, const char *name, const char *slide_path,
                          GError **err);
/* Seals @staging and puts it at @final: renamed when @final is absent, else
 * swapped with the previous result (which must be ours) in one atomic
 * step, the old one then removed; *@warning (may be NULL) says if that
 * removal failed. The folder is fsync'd. */
bool _eosin_output_promote(const char *staging, const char *final, const char *slide_path,
                           char **warning, GError **err);

/* OUTDIR's lock (output/lock.c): held while a process writes into OUTDIR. */
typedef struct _EosinLock EosinLock;
/* Takes OUTDIR/.eosin-lock (creating it); an EOSIN_ERROR_BUSY error naming
 * the holder's host and PID when another process holds it. */
EosinLock *_eosin_lock_outdir(const char *outdir, GError **err);
void _eosin_lock_release(EosinLock *lock);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinLock, _eosin_lock_release)

/* ---------------------------------------------------------------- pipeline */

/* eosin_run_slide for a caller that holds OUTDIR's lock and made OUTDIR
 * (a batch), with the config's part of the identity computed once
 * (@config_id; NULL: computed here) and, when its slide_path is set, the
 * slide's part too. */
bool _eosin_run_slide_locked(const EosinConfig *cfg, const char *path, const char *outdir,
                             const EosinRunOptions *opts, const EosinIdentity *config_id,
                             EosinRunResult *res, GError **err);
/* A slide between the two phases of a run: analysed (tiles read and
 * scored, the analyzer's own files in the staging folder), its other
 * outputs not yet written. A batch writes one slide's outputs on a thread
 * of its own while it analyses the next (batch.c). */
typedef struct _EosinSlideRun EosinSlideRun;
/* The analysis phase of _eosin_run_slide_locked (same arguments): the
 * run to hand to _eosin_slide_write, or NULL with @err (and @res's
 * warnings: @res may be NULL; the caller clears it). @opts is copied; its
 * cancel and its callbacks' data must outlive the run. */
EosinSlideRun *_eosin_slide_analyse(const EosinConfig *cfg, const char *path, const char *outdir,
                                    const EosinRunOptions *opts, const EosinIdentity *config_id,
                                    EosinRunResult *res, GError **err);
/* The output phase: writes, verifies and promotes the folder, fills @res
 * (may be NULL; the caller clears it) and frees @run, whatever happens (a
 * failure removes the staging folder). May run on another thread than the
 * analysis, once the analysis has returned; it calls @opts' warning from
 * that thread, and never its progress. */
bool _eosin_slide_write(EosinSlideRun *run, EosinRunResult *res, GError **err);
/* Frees @run (may be NULL) without writing its outputs; its staging
 * folder is removed. */
void _eosin_slide_discard(EosinSlideRun *run);
/* Refuses an empty output folder name and creates the folder. */
bool _eosin_prepare_outdir(const char *outdir, GError **err);
/* What OUTDIR/<name> holds for a run whose identity is @want. */
EosinOutputState _eosin_output_state(const char *final, const EosinIdentity *want, char **why);

/* ---------------------------------------------------------------- slide access (slide-access.c) */

/* The pipeline's side of an EosinSlideAccess: the slide it holds open.
 * @access.data points back here. */
typedef struct {
  EosinSlideAccess access;
  EosinSlide *slide;            /* borrowed */
  const EosinRunOptions *opts;  /* borrowed: its note function; may be NULL */
} EosinSlideAccessImpl;

/* Sets up @a over @slide, @plan and @mask (all borrowed, outliving @a);
 * it holds nothing of its own to free. */
void _eosin_slide_access_init(EosinSlideAccessImpl *a, EosinSlide *slide,
                              const EosinTilePlan *plan, const EosinTissueMask *mask,
                              const EosinRunOptions *opts);

/* ---------------------------------------------------------------- scheduler */

typedef struct {
  double read_s;        /* summed over reader threads */
  double analyze_s;     /* consumer time inside the analyzer */
  double wall_s;
  int readers;
  int batches;
} EosinSchedStats;

/* Reads every tile of @plan with @readers threads (each its own handle on
 * @slide) into batches of @batch_size held in at most @queue_depth+@readers
 * preallocated buffers, and runs @ops on each batch in one consumer thread
 * (the caller's). @values receives plan->tiles->len * @per_tile floats. */
bool _eosin_schedule(EosinSlide *slide, const EosinTilePlan *plan,
                     const EosinAnalyzerOps *ops, void *actx, int per_tile,
                     int readers, int batch_size, int queue_depth,
                     const EosinRunOptions *opts, float *values, float *sharpness,
                     EosinSchedStats *stats, GError **err);


/* ---------------------------------------------------------------- stitch */

/* Per-tile values on a grid of cells one tile stride wide; a cell's value is
 * the mean of the tiles that cover its centre; NaN where none does. */
typedef struct {
  int width, height;        /* cells */
  double cell_x, cell_y;    /* level-0 pixels per cell (the stride) */
  int64_t origin_x, origin_y;
  int64_t clip_x, clip_y, clip_w, clip_h;  /* the slide bounds */
  int n_channels;
  float *values;            /* width*height*n_channels, NaN = empty */
} EosinGrid;

/* @cells_per_side > 1: each tile brings an s x s map (EosinAnalyzerInfo);
 * the grid's cells are tile/s wide and overlapping tiles are blended with
 * weights that fall towards each tile's border. */
bool _eosin_stitch(const EosinTilePlan *plan, const float *values, int n_channels,
                   int cells_per_side, const EosinSlideInfo *info, EosinGrid *grid,
                   GError **err);
/* Values per tile of an analyzer: n_channels x cells_per_side^2. */
size_t _eosin_values_per_tile(const EosinAnalyzerInfo *ai);



/* ---------------------------------------------------------------- domain (domain.c) */

/* How much the plan's level is enlarged to give tile pixels (1 when it is
 * read as it is or reduced): 1 / the smaller of its two scales. */
double _eosin_upsample_factor(const EosinLevelChoice *level);
/* The slide against the config's [domain] µm/px range and the resolution
 * guard, before any tile is read: an EOSIN_ERROR_SLIDE error naming the
 * slide, its µm/px, the model's and the bound, or warnings appended to
 * @warnings (char *, owned by the array). @level is the plan's. */
bool _eosin_domain_check(const EosinConfig *cfg, const EosinSlideInfo *info,
                         const EosinLevelChoice *level, bool allow_upsample,
                         GPtrArray *warnings, GError **err);
/* report.json "domain": the declared domain, the upsampling read and the
 * specimen note. */
void _eosin_domain_json(const EosinConfig *cfg, const EosinLevelChoice *level,
                        bool allow_upsample, JsonBuilder *b);

void _eosin_grid_clear(EosinGrid *grid);

/* ---------------------------------------------------------------- lesions */

/* One lesion candidate: an 8-connected component of heatmap cells at or
 * above the threshold (labelled and outlined by cells/, eosin-cells.h).
 * A prediction, with its probability and outline:
 * not the CAMELYON16 truth lesions the evaluation matches candidates
 * against (EosinTruthLesions, eval/eval-private.h: a label image of the
 * annotated tumour grown by 75 µm, with ITC flags). */
typedef struct {
  double probability;   /* its highest cell */
  double x, y;          /* level-0 centre of that cell */
  double area_um2;
  double extent_um;     /* largest distance between two outline vertices */
  int cells;
  GPtrArray *rings;     /* GArray(int x, y) of grid vertices: outer rings with
                           positive shoelace area (clockwise on screen), holes
                           negative */
} EosinLesion;

/* The lesion candidates of one slide's heatmap ([lesions]). */
typedef struct {
  GArray *lesions;      /* EosinLesion, by probability, highest first */
  double slide_score;   /* EosinLesionParams.top_k rule; 0 on an empty grid */
  double threshold;
  int smooth_cells;     /* side of the averaging window (1: none) */
  int64_t origin_x, origin_y;
  double cell_x, cell_y;
  /* the slide's level-0 bounds the outlines are clipped to (the last
   * column and row of tiles may reach past the slide's edge); set by
   * _eosin_lesions_clip, 0 (no clip) before */
  double clip_x0, clip_y0, clip_x1, clip_y1;
} EosinLesionSet;

/* Finds the lesion candidates of channel @channel of @grid (cells are
 * @mpp_x x @mpp_y µm per level-0 pixel). Fills @out; clear it with
 * _eosin_lesion_set_clear. */
bool _eosin_lesions_find(const EosinGrid *grid, int channel, const EosinLesionParams *p,
                         double mpp_x, double mpp_y, EosinLesionSet *out, GError **err);
void _eosin_lesion_set_clear(EosinLesionSet *set);
/* Level-0 (*@x, *@y) of grid vertex (@gx, @gy) of @set's outlines, clipped
 * to the slide (as the written outlines are). */
void _eosin_lesion_vertex(const EosinLesionSet *set, int gx, int gy, double *x, double *y);
/* Keeps @set inside @info's slide: outlines (when written) and peaks. */
void _eosin_lesions_clip(EosinLesionSet *set, const EosinSlideInfo *info);
/* CAMELYON17 category of a lesion of largest extent @extent_um. */
const char *_eosin_node_category_name(double extent_um);
/* Writes @dir/detections.csv and lesions.xml in level-0 pixels and
 * lesions.geojson in QuPath's (_eosin_qupath_origin of @info), named after
 * @info's slide. */
bool _eosin_lesions_write(const EosinLesionSet *set, const char *dir, const EosinSlideInfo *info,
                          const char *class_name, GError **err);
/* Adds the lesions object (slide probability, rule, lesions) as one value. */
void _eosin_lesions_json(const EosinLesionSet *set, const EosinLesionParams *p, JsonBuilder *b);

/* ---------------------------------------------------------------- outputs */

typedef struct {
  const char *name;   /* viridis, jet, inferno, gray */
  uint8_t lut[256][3];
} EosinColormap;

bool _eosin_colormap_get(const char *name, EosinColormap *out, GError **err);

/* Colourises channel @channel of @grid into cells of RGBA (width*height*4),
 * empty cells transparent. Caller frees with g_free. */
/* The opacity (0..255) overlay.tif and preview.png give a cell of value
 * @v ([overlay] alpha, floor, opacity = ramp): 0 below the floor or NaN. */
uint8_t _eosin_overlay_opacity(double v, double vmin, double vmax, double alpha, double floor,
                               bool ramp);
uint8_t *_eosin_grid_colorize(const EosinGrid *grid, int channel, const EosinColormap *cmap,
                              double vmin, double vmax, double alpha, double floor, bool ramp);
/* Quantises channel @channel into 8 bits: 0 = empty, 1..255 = vmin..vmax. */
uint8_t *_eosin_grid_quantize(const EosinGrid *grid, int channel, double vmin, double vmax);

/* Draws the cells (@bands bytes each) of a grid at any scale: pixel (i, j)
 * of an image whose pixels are scale_x x scale_y level-0 px shows the cell
 * under its centre (transparent / 0 outside the grid and the slide's
 * bounds). Holds a copy of @cells. */
typedef struct _EosinPaint EosinPaint;
EosinPaint *_eosin_paint_new(const EosinGrid *grid, const uint8_t *cells, int bands);
void _eosin_paint_free(EosinPaint *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EosinPaint, _eosin_paint_free)
int _eosin_paint_bands(const EosinPaint *p);
/* Paints the @w x @h pixels at (@left, @top) into @dst (@stride bytes a row). */
void _eosin_paint_rect(const EosinPaint *p, double scale_x, double scale_y, int left, int top,
                       int w, int h, uint8_t *dst, size_t stride);

/* The cell index under output pixel @i along @axis (0 = x, 1 = y) at
 * @scale level-0 px per pixel, or -1 outside the grid and the bounds. */
int _eosin_paint_cell(const EosinPaint *p, int axis, double scale, int i);
/* The runs of one cell index along one axis of a tile: @len pixels from
 * @start at @scale, of which the first @valid are in the image (the rest,
 * like a pixel outside the grid, are cell -1); n = -1 past
 * EOSIN_PAINT_MAX_RUNS runs (the tile is then better painted and
 * compared). */
#define EOSIN_PAINT_MAX_RUNS 64
typedef struct {
  int n;
  int cell[EOSIN_PAINT_MAX_RUNS], len[EOSIN_PAINT_MAX_RUNS];
} EosinPaintRuns;
void _eosin_paint_runs(const EosinPaint *p, int axis, double scale, int start, int valid,
                       int len, EosinPaintRuns *out);
/* Appends to @key (the caller's) a description of the tile whose column
 * and row runs are @xr and @yr that is equal for two tiles exactly when
 * their painted bytes are: its blocks of one value and their values.
 * False (nothing appended) when either has too many runs. */
bool _eosin_paint_tile_key(const EosinPaint *p, const EosinPaintRuns *xr,
                           const EosinPaintRuns *yr, GByteArray *key);

/* The same as a lazy VipsImage of @width x @height pixels (for preview.png),
 * computed region by region. */
VipsImage *_eosin_grid_image(const EosinGrid *grid, const uint8_t *cells, int bands,
                             int width, int height, double scale_x, double scale_y);

/* Writes the slide's level 0 (@info's width x height) painted by @paint
 * as a tiled pyramidal BigTIFF at @path (output/pyramid.c): a level per
 * level of @info at its downsample (rounded to a whole factor), then
 * levels halving below them down to one tile, each with its own
 * resolution from @info's µm/px and tiles of 64..512 px chosen to lie in
 * one cell where the cells allow; a tile repeating an earlier one (of any
 * level) shares its bytes; @compression deflate, zstd or lzw,
 * @description on level 0; durable (a temporary name, fsync'd, renamed);
 * stops with EOSIN_ERROR_CANCELLED between two chunks of tiles once
 * @cancel is set. */
bool _eosin_write_pyramid(const EosinPaint *paint, const EosinSlideInfo *info,
                          const char *compression, const char *description,
                          const EosinCancel *cancel, const char *path, GError **err);

/* Re-opens a written overlay with OpenSlide and checks its level-0 size and
 * µm/px against the slide's. */
/* Points the repeated tiles of a BigTIFF written by libtiff through @fd at
 * their first copies: @dups holds one GArray of guint32 (repeat, source
 * directory, source tile) triples per directory (tiff-repeats.c). False
 * with a message appended to @error. */
bool _eosin_tiff_patch_repeats(int fd, GPtrArray *dups, GString *error);
bool _eosin_verify_overlay(const char *path, const EosinSlideInfo *info, GError **err);

/* preview.png: the heatmap cells over the thumbnail. */
/* What output/grid-files.c draws a slide's stitched grid from: the
 * config, the open slide (for the preview's thumbnail), the grid, tissue
 * mask, tile plan, analyzer and per-tile values, the overlay's channel and
 * range, the staging folder the files go to and the run's cancel. Nothing
 * in it is owned. */
typedef struct {
  const EosinConfig *cfg;
  EosinSlide *slide;
  const EosinGrid *grid;
  const EosinTissueMask *mask;
  const EosinTilePlan *plan;
  const EosinAnalyzerInfo *ainfo;
  const float *values;
  int channel;
  double vmin, vmax;
  const char *staging;
  EosinCancel *cancel;
  const EosinIdentity *identity; /* the slide's and models' hashes, for the TIFFs' descriptions */
  const EosinLesionSet *lesions; /* [lesions]: outlined on preview.png; NULL without */
  JsonNode *scores;              /* the analyzer's: a Ki-67 hot spot is outlined; may be NULL */
} EosinGridFiles;
/* Writes overlay.tif, heatmap.tif, preview.png, tissue.png, tiles.csv and
 * (when the config asks) tiles.geojson[.zip] into g->staging, two workers
 * side by side; false with the first failure (the overlay's first). */
bool _eosin_write_grid_files(const EosinGridFiles *g, GError **err);

/* preview.png's pixels: @rgba_cells over @thumb, flattened to RGB
 * (thumb->width x thumb->height x 3, caller frees); NULL with @err. */
uint8_t *_eosin_preview_rgb(const EosinThumbnail *thumb, const EosinGrid *grid,
                            const uint8_t *rgba_cells, GError **err);


/* tiles.csv: one row per analysed tile (plan order), level-0 x, y, width,
 * height, tissue fraction and the mean of every channel over the tile (an
 * empty field where the analyzer gave no value). Durable. */
bool _eosin_write_tiles_csv(const char *path, const EosinTilePlan *plan,
                            const EosinAnalyzerInfo *ainfo, const float *values,
                            GError **err);
/* The per-tile GeoJSON's file name for [overlay] tiles_geojson
 * ("tiles.geojson" or "tiles.geojson.zip"), NULL when it is off. Static. */
const char *_eosin_tiles_geojson_name(const EosinConfig *cfg);
/* tiles.geojson (@zip: a zip archive holding it): the tiles of tiles.csv,
 * in its order, as QuPath detections, each a closed 5-point ring in the
 * coordinates QuPath shows @info in (level-0 pixels less the slide's
 * bounds offset) with measurements tissue and every channel (%.4g; a
 * value that is not finite is left out). Streamed; durable. */
bool _eosin_write_tiles_geojson(const char *path, bool zip, const EosinTilePlan *plan,
                                const EosinAnalyzerInfo *ainfo, const float *values,
                                const EosinSlideInfo *info, GError **err);

/* The slide's bounds in @th's pixels, x0, y0, x1, y1 (end exclusive),
 * clipped to the thumbnail: outside them nothing was scanned (tissue.c). */
void _eosin_thumbnail_bounds(const EosinThumbnail *th, const EosinSlideInfo *info, int b[4]);

/* ---------------------------------------------------------------- qc (qc.c) */

enum {
  EOSIN_QC_CLEAN, EOSIN_QC_PEN_BLUE, EOSIN_QC_PEN_GREEN, EOSIN_QC_PEN_RED, EOSIN_QC_PEN_BLACK,
  EOSIN_QC_DARK, /* folds, thick tissue */
  EOSIN_QC_EDGE, /* glass edges, coverslip edges, bubble rims */
  EOSIN_QC_N_CLASSES
};
enum { EOSIN_QC_PASS, EOSIN_QC_WARN, EOSIN_QC_FAIL };
extern const char *const EOSIN_QC_CLASS_NAMES[EOSIN_QC_N_CLASSES];

typedef struct {
  bool enabled;
  int width, height;          /* the thumbnail's */
  uint8_t *classes;           /* EOSIN_QC_* per thumbnail pixel */
  int64_t tissue_px;          /* tissue (and ink) pixels */
  double fraction[EOSIN_QC_N_CLASSES]; /* of the tissue */
  double usable_fraction;     /* tissue left after the excluded artefacts */
  char imaging[16];           /* brightfield | fluorescence */
  int median_brightness;
  char stain[16];             /* he | hdab | unknown */
  char stain_note[160];
  bool stain_estimated;
  double stain_vectors[2][3]; /* haematoxylin, second stain */
  double stain_similarity_eosin, stain_similarity_dab;
  double stain_blue_green;    /* the second stain's blue / green absorbance */
  int sharpness_n;            /* tiles measured in the tile stage */
  double sharpness_pct[5];    /* p5 p25 p50 p75 p95 */
  double blurred_fraction;
  int verdict;                /* EOSIN_QC_PASS / WARN / FAIL */
  GPtrArray *reasons;         /* char *, why not pass */
} EosinQc;

/* Classifies @th's pixels into artefact classes, checks imaging and stain
 * against cfg->domain and gives the verdict. @qc is the caller's; free its
 * contents with _eosin_qc_clear. False only on an internal failure. */
bool _eosin_qc_run(EosinSlide *slide, const EosinThumbnail *th, const EosinConfig *cfg,
                   const EosinTissueMask *mask, EosinQc *qc, GError **err);
/* @mask without the pixels of artefacts [qc] excludes, into @out (the
 * caller clears it with eosin_tissue_clear); true when anything was taken out. */
bool _eosin_qc_usable_mask(const EosinTissueMask *mask, const EosinQc *qc,
                           const EosinConfig *cfg, EosinTissueMask *out);
/* The sharpness of each analysed tile (from the tile stage) into @qc:
 * distribution, blurred fraction, a warning when many are blurred. */
void _eosin_qc_sharpness(EosinQc *qc, const EosinConfig *cfg, const float *sharpness, int n);
/* Variance of the Laplacian of a tile's grey values (@side^2 RGB): the
 * focus measure, low on blurred tiles. */
float _eosin_qc_tile_sharpness(const uint8_t *rgb, int side);
const char *_eosin_qc_verdict_name(int verdict);
/* The reasons joined by "; ". Caller frees. */
char *_eosin_qc_reasons(const EosinQc *qc);
void _eosin_qc_json(const EosinQc *qc, const EosinConfig *cfg, JsonBuilder *b);
bool _eosin_qc_png(const EosinThumbnail *th, const EosinQc *qc, const char *path, GError **err);
void _eosin_qc_clear(EosinQc *qc);

/* ---------------------------------------------------------------- batch progress (batch-progress.c) */

/* Where a batch is, for the caller's observer and notes. */
typedef struct {
  int index, total;
  const char *name;
  gint64 batch_start, last_print;
  int slides_done;
  /* for the ETA: tiles analysed and planned in the slides finished so far
   * (the current one's come with each progress call), and how many */
  double tiles_before, planned_before;
  int slides_analysed;
  bool counted;  /* the current slide's tiles are in tiles_before */
  const EosinBatchObserver *obs;   /* may be NULL */
  const EosinRunOptions *opts;     /* the caller's: its note function; may be NULL */
  GMutex *lock;  /* one callback at a time: the writer thread warns while the main thread
                    reports progress */
} EosinBatchProgressState;

/* A run's warnings forwarded with the slide's name (batch-progress.c). */
typedef struct {
  char *name;  /* owned */
  EosinWarningFunc inner;
  void *inner_data;
  EosinNoteFunc note;
  void *note_data;
  GMutex *lock;
} EosinBatchWarnFwd;
/* The caller's note function, if any, under @p's lock. */
void _eosin_batch_note(EosinBatchProgressState *p, EosinNoteKind kind, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* An EosinProgressFunc: the observer's progress, with the batch's ETA;
 * @data is the EosinBatchProgressState. */
void _eosin_batch_progress_cb(int done, int total, double tps, void *data);
/* An EosinWarningFunc: @data is the EosinBatchWarnFwd. */
void _eosin_batch_warn_fwd(const char *msg, void *data);

G_END_DECLS
