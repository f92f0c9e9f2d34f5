/*
 * eval-camelyon17.c — CAMELYON17's patient-level score: each lymph node's
 * category (negative, ITC, micro-, macro-metastasis) gives the patient's pN
 * stage by the challenge's rules, and predicted against true stages are
 * scored with the quadratic weighted Cohen kappa; and `eosin eval
 * camelyon17`, which reads the stages (or node categories) of predictions
 * and truth (tables.c) and scores them.
 */
#include "eval/eval-private.h"

#include <string.h>

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

static const char *const C17_NAME[] = {"patient", "node", "case", NAME_COLUMN, NULL};
static const char *const C17_LABEL[] = {"stage", "pn_stage", "pn", "label", "category", "class",
                                        "prediction", NULL};
static const char *const *const C17_HEADER[] = {C17_NAME, C17_LABEL, NULL};

/* ------------------------------------------------------------ CAMELYON17 */

#define C17_WANT                                                                               \
  "patient_X.zip,<pN0|pN0(i+)|pN1mi|pN1|pN2> or patient_X_node_Y.tif,<negative|itc|micro|macro>"

/* @s without its extension (patient_000.zip, patient_000_node_0.tif). */
static char *strip_ext(const char *s) {
  char *n = g_strdup(s);
  char *dot = strrchr(n, '.');
  if (dot && dot != n)
    *dot = 0;
  return n;
}

/* Patient stages from a CAMELYON17 CSV: patient rows as given, else
 * derived from the node rows. GHashTable name -> stage + 1. A patient or
 * node named twice is an error naming both lines. */
static GHashTable *read_stages(const char *path, GError **err) {
  g_autoptr(GPtrArray) rows = _eosin_eval_read_table(path, "CAMELYON17 CSV", err);
  if (!rows)
    return NULL;
  g_autoptr(GHashTable) stage = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GHashTable) nodes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                                      (GDestroyNotify) g_array_unref);
  g_autoptr(GHashTable) seen_patient = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GHashTable) seen_node = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < rows->len; i++) {
    const EosinCsvRow *r = rows->pdata[i];
    if (i == 0 && _eosin_eval_is_header(r, C17_HEADER, true))
      continue;
    if (r->n != 2) {
      _eosin_eval_bad_row(err, path, r, C17_WANT, "%d field%s", r->n, r->n == 1 ? "" : "s");
      return NULL;
    }
    const char *name = r->fields[0], *value = r->fields[1];
    if (!*name) {
      _eosin_eval_bad_row(err, path, r, C17_WANT, "an empty name");
      return NULL;
    }
    const char *node = strstr(name, "_node_");
    g_autofree char *key = strip_ext(name);
    if (node == name) {
      _eosin_eval_bad_row(err, path, r, C17_WANT, "no patient before \"_node_\"");
      return NULL;
    }
    if (node) {
      int c = _eosin_node_category_parse(value);
      if (c < 0) {
        _eosin_eval_bad_row(err, path, r, C17_WANT, "node category \"%s\" unknown", value);
        return NULL;
      }
      if (!_eosin_eval_check_unique(seen_node, path, "node", key, r->line, err))
        return NULL;
      g_autofree char *patient = g_strndup(name, node - name);
      GArray *a = g_hash_table_lookup(nodes, patient);
      if (!a) {
        a = g_array_new(FALSE, FALSE, sizeof(EosinNodeCat));
        g_hash_table_insert(nodes, g_strdup(patient), a);
      }
      EosinNodeCat cat = c;
      g_array_append_val(a, cat);
    } else {
      int s = _eosin_pn_stage_parse(value);
      if (s < 0) {
        _eosin_eval_bad_row(err, path, r, C17_WANT, "pN stage \"%s\" unknown", value);
        return NULL;
      }
      if (!_eosin_eval_check_unique(seen_patient, path, "patient", key, r->line, err))
        return NULL;
      g_hash_table_insert(stage, g_steal_pointer(&key), GINT_TO_POINTER(s + 1));
    }
  }
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init(&it, nodes);
  while (g_hash_table_iter_next(&it, &k, &v))
    if (!g_hash_table_contains(stage, k))
      g_hash_table_insert(stage, g_strdup(k),
                          GINT_TO_POINTER(_eosin_pn_stage((EosinNodeCat *) ((GArray *) v)->data,
                                                          ((GArray *) v)->len) + 1));
  return g_steal_pointer(&stage);
}

bool eosin_eval_camelyon17(const char *pred, const char *truth, double *kappa, int *n_patients,
                           GError **err) {
  g_autoptr(GHashTable) p = read_stages(pred, err);
  if (!p)
    return false;
  g_autoptr(GHashTable) t = read_stages(truth, err);
  if (!t)
    return false;
  g_autoptr(GArray) a = g_array_new(FALSE, FALSE, sizeof(int));
  g_autoptr(GArray) b = g_array_new(FALSE, FALSE, sizeof(int));
  g_autoptr(GList) keys = g_hash_table_get_keys(t);
  for (GList *l = keys; l; l = l->next) {
    int want = GPOINTER_TO_INT(g_hash_table_lookup(t, l->data)) - 1;
    gpointer got = g_hash_table_lookup(p, l->data);
    if (!got) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s: no prediction for %s", pred,
                  (char *) l->data);
      return false;
    }
    int g = GPOINTER_TO_INT(got) - 1;
    g_array_append_val(a, want);
    g_array_append_val(b, g);
  }
  if (a->len == 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s: no patients (expected " C17_WANT ")",
                truth);
    return false;
  }
  *n_patients = a->len;
  *kappa = _eosin_quadratic_kappa((int *) a->data, (int *) b->data, a->len, 5);
  return true;
}
