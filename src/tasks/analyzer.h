/*
 * analyzer.h — the interface every task implements (EosinAnalyzerOps, in
 * ggml-backend style: ops + context) and all a task may use of the rest
 * of Eosin besides cells/ and nn/: the core types and helpers
 * (eosin-core.h), where each tile lies (EosinTileIndex), what the pipeline
 * gives of the slide (EosinSlideAccess). A task includes this header, its
 * own folder's, cells/ and nn/ — never another task, the slide reader or
 * the spine's eosin-private.h (scripts/test/check-structure checks it).
 */
#pragma once

#include "eosin-core.h"

G_BEGIN_DECLS

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
   * (0 = no tissue), a new array the caller frees (g_free); NULL (and
   * *@n = 0) without a mask, or when it does not fit in memory */
  int *(*fragments)(const EosinSlideAccess *s, int *n);
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
/* The @i-th analyzer of the table, NULL past the last (registry.c). */
const EosinAnalyzerOps *_eosin_analyzer_nth(int i);

/* A model's raw outputs (@n images x @per values) must be finite: a NaN
 * or an infinity is an EOSIN_ERROR_NUMERIC error naming the model, the
 * count, and the first tile of @b (level-0 place) or image (@b NULL) that
 * had one. Eosin never turns such outputs into a score. */
bool _eosin_check_model_outputs(const char *model, const float *v, int n, size_t per,
                                const EosinTileBatch *b, GError **err);

/* Where a plan's analysed tiles lie on its grid, for analyzers that own
 * objects by tile (tiling.c). */
typedef struct {
  int *tile_at;  /* rows x cols: tile index, -1 = not analysed */
  int cols, rows;
} EosinTileIndex;
void _eosin_tile_index_init(EosinTileIndex *ix, const EosinTilePlan *plan);
void _eosin_tile_index_clear(EosinTileIndex *ix);
/* The analysed tile whose stride cell holds level-0 (@gx, @gy), or -1. */
int _eosin_tile_at(const EosinTileIndex *ix, const EosinTilePlan *plan, double gx, double gy);
/* The analysed tile an object at level-0 (@gx, @gy) belongs to: of the
 * tiles containing the point, the one whose centre is nearest (ties: the
 * first in plan order); -1 when none does. Every tile computes the same
 * answer, so an object seen by two overlapping tiles is kept by exactly
 * one, where it lies whole. */
int _eosin_tile_owner(const EosinTileIndex *ix, const EosinTilePlan *plan, double gx, double gy);

/* Calls @fn(@data, k, scratch) for k = 0..@n-1 on up to one thread per
 * processor (the caller's included), each thread with its own @scratch_bytes
 * buffer, and returns when all are done. For analyzers whose tiles of a
 * batch are independent: @fn must write only what belongs to its k. */
void _eosin_parallel_for(int n, size_t scratch_bytes, void (*fn)(void *data, int k, void *scratch),
                         void *data);

G_END_DECLS
