/*
 * ihc-private.h — IHC quantification internals shared by ihc.c (the
 * analyzer), scores.c (Ki-67, H-score, Allred, HER2, hot spot),
 * cells-geojson.c (cells GeoJSON / CSV) and the tests. Nucleus detection,
 * outlines and the stain maths (vectors estimated from the slide
 * included) are cells/ (cells/eosin-cells.h). Not part of the public API.
 */
#pragma once

#include "tasks/analyzer.h"
#include "cells/eosin-cells.h"

G_BEGIN_DECLS

/* ---------------------------------------------------------------- cells */

enum { EOSIN_COMP_NUCLEUS, EOSIN_COMP_CYTOPLASM, EOSIN_COMP_MEMBRANE, EOSIN_COMP_CELL };

/* One detected cell, measured in the tile that owns it. */
typedef struct {
  double x, y;              /* level-0 centroid of the nucleus */
  float nucleus_area_um2, cell_area_um2;
  float hem[4];             /* mean haematoxylin OD per compartment (EOSIN_COMP_*) */
  float dab[4];             /* mean DAB OD per compartment */
  float nucleus_dab_max;
  float membrane_complete;  /* fraction of the cell boundary with DAB >= threshold_1plus */
  uint8_t intensity;        /* 0 = negative, 1..3 = 1+..3+ on the scored compartment */
  uint32_t vertex;          /* first vertex in the pool: nucleus ring, then cell ring */
  uint16_t n_nucleus, n_cell;
} EosinCell;

/* ---------------------------------------------------------------- scores */

typedef struct {
  double thresholds[3];     /* DAB OD for 1+, 2+, 3+ */
  bool single_threshold;    /* positive / negative only (Ki-67) */
} EosinIntensityRule;

/* 0..3: the class of a compartment DAB OD @v (v >= threshold counts). */
int _eosin_intensity_class(const EosinIntensityRule *r, double v);

typedef struct {
  int64_t total, by_class[4];  /* negative, 1+, 2+, 3+ */
} EosinCellCounts;

/* Positive cells (any class >= 1) per 100 cells; NaN without cells. */
double _eosin_positive_percent(const EosinCellCounts *c);
/* H-score: 1 x %1+ + 2 x %2+ + 3 x %3+, 0..300; NaN without cells. */
double _eosin_h_score(const EosinCellCounts *c);

/* Allred score (Allred et al. 1998; the CAP ER/PR guideline): proportion
 * 0 (none), 1 (< 1 %), 2 (1-10 %), 3 (> 10-33 %), 4 (> 33-66 %), 5 (> 66 %);
 * intensity 0 (none), else the mean class of the positive cells rounded
 * half up to 1 weak, 2 intermediate, 3 strong; total = the sum (0, 2..8). */
typedef struct {
  int proportion, intensity, total;
} EosinAllred;
EosinAllred _eosin_allred(const EosinCellCounts *c);

/* HER2 IHC per ASCO/CAP 2018 from the cells' membrane staining: each cell's
 * membrane intensity class (0..3, the thresholds on membrane DAB) and
 * whether its staining is complete (membrane_complete >= @complete_fraction).
 * 3+: complete intense staining in > 10 % of the cells; else 2+: complete
 * staining (weak to moderate, or intense in <= 10 %) in > 10 %; else 1+:
 * faint or stronger incomplete staining in > 10 %; else 0. */
typedef struct {
  int category;             /* 0..3; -1 without cells */
  double complete_intense_percent, complete_percent, any_membrane_percent;
  int64_t cells;
} EosinHer2;
EosinHer2 _eosin_her2(const EosinCell *cells, size_t n, const EosinIntensityRule *membrane,
                      double complete_fraction);

/* The hot spot: the square window of @area_mm2 inside the box
 * (@x0, @y0, @w, @h, level-0 px) with the highest positive fraction
 * among windows holding at least @min_cells cells; windows step by @step_um.
 * A box smaller than the window is taken whole (clipped = true). */
typedef struct {
  bool found;
  bool clipped;             /* the window did not fit: the whole box was used */
  double index;             /* positive per 100 cells */
  int64_t cells, positive;
  double x, y, w, h;        /* level-0 window */
} EosinHotspot;
EosinHotspot _eosin_hotspot(const EosinCell *cells, size_t n, double mpp_x, double mpp_y,
                            double x0, double y0, double w, double h, double area_mm2,
                            double step_um, int64_t min_cells);

/* ---------------------------------------------------------------- outputs */

/* cells.geojson (QuPath File > Import objects: cell objects with their
 * nucleus, classification and measurements, in QuPath's coordinates:
 * level-0 less @info's bounds offset, _eosin_qupath_origin) and cells.csv
 * (one row per cell, level-0) in @dir. @vertices: the level-0 (x, y) float
 * pairs the cells point into. @class_names: per intensity 0..3. */
bool _eosin_cells_write(const char *dir, const EosinSlideInfo *info, const EosinCell *cells,
                        size_t n, const float *vertices, const char *const class_names[4],
                        const char *compartment, const EosinHotspot *hotspot,
                        GError **err);


/* ---------------------------------------------------------------- the analyzer (ihc.c) */

/* Heatmap channels: positive and all cells per mm², positive percent,
 * H-score, mean DAB. */
enum { CH_POS_DENSITY, CH_DENSITY, CH_POS_PERCENT, CH_HSCORE, CH_DAB, N_CH };

/* The analyzer's context: made by init and prepare (ihc.c), filled per
 * tile by run (tiles.c), scored by finish (ihc.c). */
typedef struct {
  char *marker, *stains_mode, *compartment_name;
  int compartment;
  EosinNucleiParams np;
  EosinIntensityRule rule;
  double hotspot_area_mm2, hotspot_step_um, complete_fraction;
  int hotspot_min_cells, estimate_tiles;
  double rgb_from[3][3], stain_from[3][3];
  char *stain_note;           /* how the vectors were chosen */
  float od_lut[3][256];        /* QuPath's OD table, the same for r, g, b */
  char *names[N_CH + 1];
  double dmin[N_CH], dmax[N_CH];
  /* cells kept so far (owned by their tile), in batch order */
  GArray *cells;              /* EosinCell */
  GArray *tile_of;            /* uint32 tile index per cell */
  GArray *vertices;           /* float level-0 x, y */
  EosinTileIndex tiles;       /* from prepare */
  /* tissue fragments (8-connected components of the mask), from prepare */
  int *region_of;             /* mask pixels -> fragment 1..n, 0 = none */
  int mask_w, mask_h, n_regions;
  double mask_sx, mask_sy;    /* level-0 px per mask px */
  double mpp_x, mpp_y;        /* the slide's level-0 µm/px */
  double bounds[4];           /* the slide bounds (level-0 x, y, w, h) */
  EosinHotspot hotspot;
} IhcCtx;

/* The tile stage of EosinAnalyzerOps (tiles.c). */
bool _eosin_ihc_run(void *ctx, const EosinTileBatch *b, float *values, GError **err);

G_END_DECLS
