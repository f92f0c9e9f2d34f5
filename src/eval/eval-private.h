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
/* Where froc.png puts @fps false positives per slide and @sens sensitivity. */
double _eosin_froc_px(double fps);
double _eosin_froc_py(double sens);

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

/* ---------------------------------------------------------------- tables (tables.c) */

/* The names a header's first column may have. */
#define NAME_COLUMN "name", "image", "slide", "filename", "file", "id", "image_id", "slide_id"

/* @path read as CSV (_eosin_csv_read, strict: quoting, CRLF, a BOM, '#'
 * comment lines; FIFOs, devices and folders refused): EosinCsvRow rows,
 * freed by the caller; @what names the table in errors. */
GPtrArray *_eosin_eval_read_table(const char *path, const char *what, GError **err);
/* Row @r as the user wrote it (fields joined by commas). Caller frees. */
char *_eosin_eval_row_text(const EosinCsvRow *r);
/* Whether @r names the columns: each field one of @cols' names
 * (case-insensitive), every column when @exact, else at least the first. */
bool _eosin_eval_is_header(const EosinCsvRow *r, const char *const *const *cols, bool exact);
/* An EOSIN_ERROR_CONFIG error naming @path, @r's line and text, what was
 * wanted and what was found (printf @fmt). */
void _eosin_eval_bad_row(GError **err, const char *path, const EosinCsvRow *r, const char *want,
                         const char *fmt, ...) G_GNUC_PRINTF(5, 6);
/* False with an error when @name (a @kind) was seen before in @path. */
bool _eosin_eval_check_unique(GHashTable *seen, const char *path, const char *kind,
                              const char *name, int line, GError **err);
/* A finite number in all of @s. */
bool _eosin_eval_parse_num(const char *s, double *v);
/* NULL when @s is a probability in [0, 1] (into @v), else what is wrong. */
const char *_eosin_eval_prob_problem(const char *s, double *v);
/* NULL when @s is a coordinate in [0, EOSIN_EVAL_MAX_COORD], else what is wrong. */
const char *_eosin_eval_coord_problem(const char *s, double *v);

G_END_DECLS
