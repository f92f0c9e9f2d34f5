/*
 * cytology-private.h — what the cytology analyzer (cytology.c), its triage
 * rules (triage.c) and its outputs (gallery.c) share. Nucleus detection and
 * the stain maths are cells/ (cells/eosin-cells.h).
 */
#pragma once

#include "tasks/analyzer.h"
#include "cells/eosin-cells.h"

#define EOSIN_CYTO_MAX_CELL_CLASSES 16
#define EOSIN_CYTO_FIELD_CLASSES 4 /* NL (NILM), LSIL, HSIL, SCC: the tile model's order */

/* One cell found on the slide and classified by the cell model. */
typedef struct {
  double x, y;              /* level-0 nucleus centroid */
  float nucleus_area_um2;
  float hematoxylin;        /* mean haematoxylin OD of the nucleus */
  float p_abnormal;         /* sum of the cell model's abnormal classes */
  float suspicion;          /* p_abnormal x its tile's abnormal probability: the
                               gallery's order (an abnormal-looking cell in a
                               region the tile model calls abnormal first) */
  float p_class;            /* probability of its class */
  uint8_t cls;              /* argmax of the cell model */
  uint32_t tile;            /* the tile that owns it */
} EosinCytoCell;

/* A suspicious cell kept for the gallery, with its picture. */
typedef struct {
  EosinCytoCell cell;
  int side;                 /* crop is side x side RGB at the tile's µm/px */
  uint8_t *rgb;             /* owned by the analyzer's pool (g_free) */
} EosinCytoCrop;

/* Total order of suspicion: higher suspicion first, then p_abnormal, then
 * tile, then position, so the kept cells do not depend on the order
 * batches came in. */
int _eosin_cyto_cell_cmp(const EosinCytoCell *a, const EosinCytoCell *b);

typedef struct {
  double top_tile_fraction; /* tile evidence: over the most abnormal fraction of tiles */
  int min_top_tiles;
  double cell_weight;       /* abnormal = (1-w) tile evidence + w cell evidence */
  double threshold;         /* abnormal >= this: not NILM */
  /* triage_rule = count: the fields the tile model calls abnormal against
   * the number a normal slide of this size would show by chance */
  bool count;
  double field_fp_rate;     /* the tile model's rate of normal fields called abnormal */
  double alpha;             /* chance probability below which the slide is abnormal */
} EosinTriageRule;

typedef struct {
  bool assessable;
  int top_tiles;            /* tiles the tile evidence is taken over */
  double tile_abnormal;     /* their mean P(abnormal) = 1 - P(NL) */
  int lesion_tiles;         /* tiles with P(abnormal) >= 0.5 */
  double grade[EOSIN_CYTO_FIELD_CLASSES]; /* mean class probabilities of the lesion
                                             tiles (of the top tiles when none) */
  double cell_abnormal;     /* mean p_abnormal of all cells (NaN without cells) */
  double abnormal;          /* the combined score */
  double prob[EOSIN_CYTO_FIELD_CLASSES];  /* NILM, LSIL, HSIL, SCC */
  int category;             /* index into the classes */
  /* triage_rule = count (NaN otherwise): fields expected abnormal on a
   * normal slide of this size, and the chance of lesion_tiles or more */
  double fields_expected, chance;
} EosinTriage;

/* Slide triage from per-tile class probabilities (@tile_probs: n_tiles x 4,
 * tile model order, @stride floats apart) and the cells' p_abnormal. The
 * rules are documented in the README and above each step. */
/* P(X >= @k) for X ~ Binomial(@n, @p). */
double _eosin_binomial_tail(int k, int n, double p);
void _eosin_cyto_triage(const EosinTriageRule *r, const float *tile_probs, size_t stride,
                        size_t n_tiles, const EosinCytoCell *cells, size_t n_cells,
                        EosinTriage *out);

/* gallery.png: the crops (most suspicious first) in a grid, each labelled
 * with its rank, class, score and level-0 coordinates. */
bool _eosin_cyto_gallery_write(const char *path, const EosinCytoCrop *crops, size_t n,
                               char **class_names, const char *slide_name, GError **err);

/* suspicious-cells.geojson: cells with p_abnormal >= @min_p (at most
 * @max_cells, most suspicious first) as QuPath detections: a circle of the
 * nucleus' area in QuPath's coordinates (level-0 less @info's bounds
 * offset, _eosin_qupath_origin), class = the cell model's class,
 * measurements. Writes *written. */
bool _eosin_cyto_geojson_write(const char *path, const EosinSlideInfo *info,
                               const EosinCytoCell *cells, size_t n, double min_p,
                               size_t max_cells, double mpp, char **class_names,
                               size_t *written, GError **err);

/* cells.csv: every cell. */
bool _eosin_cyto_csv_write(const char *path, const EosinCytoCell *cells, size_t n,
                           char **class_names, GError **err);

/* ---------------------------------------------------------------- the analyzer (cytology.c) */

/* Heatmap channels: the tile model's four classes, abnormal, cells and
 * abnormal cells per mm². */
enum { CH_NL, CH_LSIL, CH_HSIL, CH_SCC, CH_ABNORMAL, CH_CELLS, CH_ABN_CELLS, N_CH };
extern const char *const _eosin_cyto_triage_names[EOSIN_CYTO_FIELD_CLASSES];

/* The analyzer's context: made by init (cytology.c), filled per tile by
 * run (tiles.c) and per slide by finish (scores.c). */
typedef struct {
  /* the tile model */
  EosinInfer *tile_inf;
  EosinPreprocess pre;
  int tile_in, tile_factor;   /* model input side; tile px per input px */
  char *tile_activation;
  bool tta;                 /* [model] tta = dihedral, for the tile model */
  /* the cell model */
  EosinInfer *cell_inf;
  int cell_in, n_cell_classes;
  char **cell_classes;
  bool abnormal[EOSIN_CYTO_MAX_CELL_CLASSES];
  bool not_squamous[EOSIN_CYTO_MAX_CELL_CLASSES]; /* adequacy_exclude */
  double window_um;
  /* nuclei */
  EosinNucleiParams np;
  double stain_from[3][3];
  float od_lut[3][256];       /* per channel, against the slide's glass */
  double glass[3];            /* the slide's background RGB, from prepare */
  /* triage and outputs */
  EosinTriageRule rule;
  int min_cells, min_cells_triage, gallery_n, geojson_max;
  double geojson_min_p;
  /* heatmap channels */
  char *names[N_CH + 1];
  double dmin[N_CH], dmax[N_CH];
  /* per slide */
  EosinTileIndex tiles;
  double mpp_x, mpp_y;
  char *not_brightfield;      /* why the slide is not triaged, from prepare */
  GArray *cells;              /* EosinCytoCell, sorted in finish */
  EosinCytoCrop *gallery;     /* the pool: pool_n best so far, unsorted; after
                                 finish, the gallery, most suspicious first */
  int n_gallery, pool_n;
  float *tile_probs;          /* tiles x 4, written by run */
  size_t n_tiles;
  EosinTriage triage;
  bool finished;
} CytoCtx;

/* The tile stage and the slide stage of EosinAnalyzerOps (tiles.c, scores.c). */
bool _eosin_cyto_run(void *ctx, const EosinTileBatch *b, float *values, GError **err);
bool _eosin_cyto_finish(void *ctx, const EosinTilePlan *plan, float *values, JsonBuilder *b,
                        GError **err);
