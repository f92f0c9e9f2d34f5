/*
 * eval-private.h — the CAMELYON16/17 evaluation pieces (eval-camelyon16.c,
 * eval-camelyon17.c), exposed to eval.c and the tests: lesion masks and
 * labels, detection matching, FROC, ROC AUC and the pN-stage kappa.
 */
#pragma once

#include "eosin-private.h"

G_BEGIN_DECLS

/* Input limits. Level-0 coordinates are checked against EOSIN_EVAL_MAX_COORD
 * before any conversion to an integer: 2^22 px is about 1 m of glass at
 * 0.243 um/px (CAMELYON16's annotations reach 221056 px), and every level-5
 * index below it fits an int. A level-5 grid (XML truth) or mask image
 * has at most EOSIN_EVAL_MAX_CELLS pixels (lesion labelling needs about 18
 * bytes each). */
#define EOSIN_EVAL_MAX_COORD 4194304.0
#define EOSIN_EVAL_MAX_CELLS 4e8

/* One ASAP annotation: its group and level-0 (x, y) vertices. */
typedef struct {
  char *group;
  GArray *xy;    /* double x0, y0, x1, y1, ... (0 <= v <= EOSIN_EVAL_MAX_COORD) */
  GArray *line;  /* int: the XML line of each vertex, for messages */
} EosinPolygon;

/* The annotations of an ASAP XML file (GArray of EosinPolygon, freed with
 * g_array_unref), or NULL with an error naming the file and line: an
 * EOSIN_ERROR_IO one when it cannot be read (missing, a FIFO or folder),
 * EOSIN_ERROR_CONFIG when it is not ASAP XML, a Coordinate is not a number
 * in [0, EOSIN_EVAL_MAX_COORD] or a tumour or exclusion Annotation has no
 * Coordinate. */
GArray *_eosin_asap_xml_load(const char *path, GError **err);
/* 1: a tumour group (Tumor, _0, _1, metastases), -1: cut out of tumour
 * (_2, Exclusion), 0: anything else (ignored). */
int _eosin_asap_group_kind(const char *group);
/* The level-5 (1/32) tumour mask (1 = tumour) of @polys in a @w x @h grid:
 * pixels whose centre lies in a tumour polygon (Tumor, _0, _1, metastases)
 * and in no _2/Exclusion polygon. Caller frees. */
uint8_t *_eosin_c16_mask_from_polygons(GArray *polys, int w, int h);

/* A slide's truth lesions, what detections are matched against: 8-connected
 * lesions of the tumour mask grown by 75 µm with holes filled, numbered in
 * raster order of their first pixel; ITC lesions flagged. (Not the lesion
 * candidates Eosin finds on a heatmap, EosinLesionSet: those are
 * predictions with a probability and an outline, these a label image of
 * the annotation.) */
typedef struct {
  int width, height;
  int *label;        /* 0 = none, 1..n_labels */
  int n_labels;
  bool *itc;         /* per label - 1 */
  int n_tumours;     /* labels that are not ITC */
} EosinTruthLesions;
/* Fills @out from the level-5 tumour @mask (w x h); the caller frees its
 * arrays with _eosin_truth_lesions_clear. */
bool _eosin_c16_lesions(const uint8_t *mask, int w, int h, EosinTruthLesions *out,
                        GError **err);
void _eosin_truth_lesions_clear(EosinTruthLesions *l);

typedef struct {
  double p, x, y;    /* confidence, level-0 pixel */
  int line;          /* the CSV line it came from (0: none), for messages */
} EosinDetection;

/* Matches @det against @les (NULL: a normal slide), appending false
 * positive probabilities (double) to @fp and one float32 TP maximum per
 * lesion (0 for missed and ITC ones) to @tp. A detection outside the mask
 * (or not finite) is an EOSIN_ERROR_CONFIG error naming @slide. */
bool _eosin_c16_match(const EosinTruthLesions *les, const EosinDetection *det, int n_det,
                      const char *slide, GArray *fp, GArray *tp, GError **err);

extern const double EOSIN_FROC_RATES[6];
typedef struct {
  int n;                 /* curve points, the last is (0, 0) */
  double *threshold, *fps, *sensitivity;
  double at_rate[6];     /* sensitivity at 1/4, 1/2, 1, 2, 4, 8 FP per slide */
  double score;          /* their mean */
} EosinFroc;
bool _eosin_froc(GArray *fp, GArray *tp, int n_slides, int n_tumours, EosinFroc *out,
                 GError **err);
void _eosin_froc_clear(EosinFroc *f);

/* froc.png: the curve, the six evaluation rates, the score (and @auc if
 * not NaN). */
bool _eosin_froc_plot(const EosinFroc *f, double auc, const char *path, GError **err);

/* ROC AUC as Mann-Whitney U / (n_pos n_neg), ties counting one half; NaN
 * without both classes. */
double _eosin_roc_auc(const double *score, const bool *positive, int n);

/* CAMELYON17: node categories and patient stages. */
typedef enum { EOSIN_NODE_NEGATIVE, EOSIN_NODE_ITC, EOSIN_NODE_MICRO, EOSIN_NODE_MACRO } EosinNodeCat;
typedef enum { EOSIN_PN0, EOSIN_PN0_I, EOSIN_PN1MI, EOSIN_PN1, EOSIN_PN2 } EosinPnStage;
int _eosin_node_category_parse(const char *s);   /* -1 if unknown */
int _eosin_pn_stage_parse(const char *s);        /* -1 if unknown */
const char *_eosin_pn_stage_name(EosinPnStage s);
/* The pN stage of a patient from its nodes' categories. */
EosinPnStage _eosin_pn_stage(const EosinNodeCat *nodes, int n);
/* Quadratic weighted Cohen kappa of two ratings over @k categories. */
double _eosin_quadratic_kappa(const int *a, const int *b, int n, int k);

G_END_DECLS
