/*
 * eval-camelyon17.c — CAMELYON17's patient-level score: each lymph node's
 * category (negative, ITC, micro-, macro-metastasis) gives the patient's pN
 * stage by the challenge's rules, and predicted against true stages are
 * scored with the quadratic weighted Cohen kappa.
 */
#include "eval/eval-private.h"

static const char *const CATS[] = {"negative", "itc", "micro", "macro", NULL};
static const char *const STAGES[] = {"pN0", "pN0(i+)", "pN1mi", "pN1", "pN2", NULL};

int _eosin_node_category_parse(const char *s) {
  for (int i = 0; CATS[i]; i++)
    if (!g_ascii_strcasecmp(s, CATS[i]))
      return i;
  return -1;
}

int _eosin_pn_stage_parse(const char *s) {
  for (int i = 0; STAGES[i]; i++)
    if (!g_ascii_strcasecmp(s, STAGES[i]))
      return i;
  return -1;
}

const char *_eosin_pn_stage_name(EosinPnStage s) {
  return STAGES[s];
}

/* pN0: all negative; pN0(i+): only ITC; pN1mi: micro but no macro; pN1: a
 * macro and 1-3 positive (micro or macro) nodes; pN2: a macro and 4-9
 * positive nodes (the challenge's rules: pN1 and pN2 both need a macro). */
EosinPnStage _eosin_pn_stage(const EosinNodeCat *nodes, int n) {
  int itc = 0, micro = 0, macro = 0;
  for (int i = 0; i < n; i++) {
    itc += nodes[i] == EOSIN_NODE_ITC;
    micro += nodes[i] == EOSIN_NODE_MICRO;
    macro += nodes[i] == EOSIN_NODE_MACRO;
  }
  if (macro > 0)
    return micro + macro >= 4 ? EOSIN_PN2 : EOSIN_PN1;
  if (micro > 0)
    return EOSIN_PN1MI;
  return itc > 0 ? EOSIN_PN0_I : EOSIN_PN0;
}

/* kappa = 1 - sum W O / sum W E, W_ij = (i - j)^2, E = outer(row, col) / N. */
double _eosin_quadratic_kappa(const int *a, const int *b, int n, int k) {
  g_autofree double *O = g_new0(double, k * k);
  g_autofree double *row = g_new0(double, k), *col = g_new0(double, k);
  for (int i = 0; i < n; i++) {
    O[a[i] * k + b[i]]++;
    row[a[i]]++;
    col[b[i]]++;
  }
  double wo = 0, we = 0;
  for (int i = 0; i < k; i++)
    for (int j = 0; j < k; j++) {
      double w = (double) (i - j) * (i - j);
      wo += w * O[i * k + j];
      we += w * row[i] * col[j] / n;
    }
  return we > 0 ? 1 - wo / we : 1.0;
}
