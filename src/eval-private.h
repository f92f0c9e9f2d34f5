/*
 * eval-private.h — the CAMELYON16/17 evaluation pieces (eval-camelyon16.c,
 * eval-camelyon17.c), exposed to eval.c and the tests: lesion masks and
 * labels, detection matching, FROC, ROC AUC and the pN-stage kappa.
 */
#pragma once

#include "eosin-private.h"

G_BEGIN_DECLS

/* One ASAP annotation: its group and level-0 (x, y) vertices. */
typedef struct {
  char *group;
  GArray *xy;   /* double x0, y0, x1, y1, ... */
} EosinPolygon;

/* The annotations of an ASAP XML file (GArray of EosinPolygon, freed with
 * g_array_unref), or NULL with an error naming the file and line. */
GArray *_eosin_asap_xml_load(const char *path, GError **err);
/* The level-5 (1/32) tumour mask (1 = tumour) of @polys in a @w x @h grid:
 * pixels whose centre lies in a tumour polygon (Tumor, _0, _1, metastases)
 * and in no _2/Exclusion polygon. Caller frees. */
uint8_t *_eosin_c16_mask_from_polygons(GArray *polys, int w, int h);

/* A slide's evaluation mask: 8-connected lesions of the tumour mask grown
 * by 75 µm with holes filled; ITC lesions flagged. */
typedef struct {
  int width, height;
  int *label;        /* 0 = none, 1..n_labels */
  int n_labels;
  bool *itc;         /* per label - 1 */
  int n_tumours;     /* labels that are not ITC */
} EosinLesions;
bool _eosin_c16_lesions(const uint8_t *mask, int w, int h, EosinLesions *out, GError **err);
void _eosin_lesions_clear(EosinLesions *l);

typedef struct {
  double p, x, y;    /* confidence, level-0 pixel */
} EosinDetection;

/* Matches @det against @les (NULL: a normal slide), appending false
 * positive probabilities (double) to @fp and one float32 TP maximum per
 * lesion (0 for missed and ITC ones) to @tp. */
bool _eosin_c16_match(const EosinLesions *les, const EosinDetection *det, int n_det,
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
