/*
 * eval.c — `eosin eval`: reads predictions and ground truth from disk and
 * scores them with eval-camelyon16.c / eval-camelyon17.c, writing the FROC
 * curve as CSV and PNG. File layouts follow the challenges' submissions:
 * CAMELYON16 detections are one CSV per slide (`confidence,X,Y`, no
 * header), slide probabilities one CSV `name,probability`; CAMELYON17
 * rows are `patient_XXX.zip,<pN stage>` and `patient_XXX_node_Y.tif,<category>`.
 */
#include "eval-private.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Splits a small CSV into rows of trimmed fields; blank lines and '#'
 * comments dropped. Returns a GPtrArray of GStrv. */
static GPtrArray *read_rows(const char *path, GError **err) {
  g_autofree char *text = NULL;
  if (!g_file_get_contents(path, &text, NULL, err))
    return NULL;
  GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify) g_strfreev);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (char **l = lines; *l; l++) {
    g_strstrip(*l);
    if (!**l || **l == '#')
      continue;
    char **f = g_strsplit(*l, ",", -1);
    for (char **x = f; *x; x++)
      g_strstrip(*x);
    g_ptr_array_add(rows, f);
  }
  return rows;
}

static bool parse_num(const char *s, double *v) {
  char *end;
  errno = 0;
  *v = g_ascii_strtod(s, &end);
  return *s && !*end && !errno && isfinite(*v);
}

/* A slide's detections: DIR/<name>.csv or DIR/<name>/detections.csv; a
 * missing file means no detections (the slide was called negative). */
static GArray *read_detections(const char *dir, const char *name, GError **err) {
  g_autofree char *a = g_strdup_printf("%s/%s.csv", dir, name);
  g_autofree char *b = g_build_filename(dir, name, "detections.csv", NULL);
  const char *path = g_file_test(a, G_FILE_TEST_EXISTS) ? a : b;
  GArray *det = g_array_new(FALSE, FALSE, sizeof(EosinDetection));
  if (!g_file_test(path, G_FILE_TEST_EXISTS))
    return det;
  g_autoptr(GPtrArray) rows = read_rows(path, err);
  if (!rows) {
    g_array_unref(det);
    return NULL;
  }
  for (guint i = 0; i < rows->len; i++) {
    char **f = rows->pdata[i];
    EosinDetection d;
    if (g_strv_length(f) < 3 || !parse_num(f[0], &d.p) || !parse_num(f[1], &d.x) ||
        !parse_num(f[2], &d.y)) {
      if (i == 0 && g_strv_length(f) >= 1 && !parse_num(f[0], &d.p))
        continue;  /* tolerate a header line */
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO,
                  "%s row %u: expected confidence,X,Y (numbers)", path, i + 1);
      g_array_unref(det);
      return NULL;
    }
    g_array_append_val(det, d);
  }
  return det;
}

/* The level-5 tumour mask of @name: TRUTH/<name>.xml (ASAP polygons, the
 * grid sized to cover them and the detections) or TRUTH/<name>_mask.png /
 * .tif (a level-5 mask image, tumour > 0). NULL *mask: a normal slide. */
static bool read_truth(const char *truth, const char *name, const GArray *det, uint8_t **mask,
                       int *w, int *h, GError **err) {
  *mask = NULL;
  g_autofree char *xml = g_strdup_printf("%s/%s.xml", truth, name);
  if (g_file_test(xml, G_FILE_TEST_EXISTS)) {
    g_autoptr(GArray) polys = _eosin_asap_xml_load(xml, err);
    if (!polys)
      return false;
    double mx = 0, my = 0;
    for (guint i = 0; i < polys->len; i++) {
      EosinPolygon *p = &g_array_index(polys, EosinPolygon, i);
      for (guint k = 0; k + 1 < p->xy->len; k += 2) {
        mx = MAX(mx, g_array_index(p->xy, double, k));
        my = MAX(my, g_array_index(p->xy, double, k + 1));
      }
    }
    for (guint i = 0; i < det->len; i++) {
      mx = MAX(mx, g_array_index(det, EosinDetection, i).x);
      my = MAX(my, g_array_index(det, EosinDetection, i).y);
    }
    /* a margin so lesions never touch the grid's edge (hole filling) */
    *w = (int) ceil(mx / 32) + 16;
    *h = (int) ceil(my / 32) + 16;
    if ((double) *w * *h > 4e8) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s: coordinates too large (%g, %g)", xml,
                  mx, my);
      return false;
    }
    *mask = _eosin_c16_mask_from_polygons(polys, *w, *h);
    return true;
  }
  const char *ext[] = {"_mask.png", "_mask.tif", "_Mask.tif", NULL};
  for (int e = 0; ext[e]; e++) {
    g_autofree char *path = g_strdup_printf("%s/%s%s", truth, name, ext[e]);
    if (!g_file_test(path, G_FILE_TEST_EXISTS))
      continue;
    if (!_eosin_vips_init(err))
      return false;
    g_autoptr(VipsImage) in = vips_image_new_from_file(path, NULL);
    VipsImage *b0 = NULL, *u8 = NULL;
    if (!in || vips_extract_band(in, &b0, 0, NULL) ||
        vips_cast(b0, &u8, VIPS_FORMAT_UCHAR, NULL)) {
      if (b0)
        g_object_unref(b0);
      _eosin_set_vips_error(err, path);
      return false;
    }
    g_object_unref(b0);
    size_t len;
    uint8_t *px = vips_image_write_to_memory(u8, &len);
    *w = u8->Xsize, *h = u8->Ysize;
    g_object_unref(u8);
    if (!px) {
      _eosin_set_vips_error(err, path);
      return false;
    }
    for (size_t i = 0; i < len; i++)
      px[i] = px[i] > 0;
    *mask = g_memdup2(px, len);
    g_free(px);
    return true;
  }
  return true;
}

/* Slide names and labels: the reference CSV (name,Tumor|Normal,...), or
 * every TRUTH/<name>.xml / _mask image (tumour) plus every prediction
 * without one (normal). */
/* CSVs that `eosin batch` and `eosin eval` write beside the slides' results */
static const char *const NOT_SLIDES[] = {"camelyon-slides.csv", "batch-summary.csv", "froc.csv",
                                         NULL};

static GPtrArray *slide_list(const EosinC16Options *o, GHashTable *tumour, GError **err) {
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  if (o->reference) {
    g_autoptr(GPtrArray) rows = read_rows(o->reference, err);
    if (!rows)
      return g_ptr_array_unref(names), NULL;
    for (guint i = 0; i < rows->len; i++) {
      char **f = rows->pdata[i];
      if (g_strv_length(f) < 2 || (g_ascii_strcasecmp(f[1], "Tumor") &&
                                   g_ascii_strcasecmp(f[1], "Normal"))) {
        if (i == 0)
          continue;  /* a header */
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO,
                    "%s row %u: expected name,Tumor|Normal", o->reference, i + 1);
        return g_ptr_array_unref(names), NULL;
      }
      char *name = g_strdup(f[0]);
      char *dot = strrchr(name, '.');
      if (dot && !strcmp(dot, ".tif"))
        *dot = 0;
      g_ptr_array_add(names, name);
      if (!g_ascii_strcasecmp(f[1], "Tumor"))
        g_hash_table_add(tumour, g_strdup(name));
    }
    return names;
  }
  g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  const char *dirs[] = {o->truth, o->pred_dir};
  for (int d = 0; d < 2; d++) {
    g_autoptr(GDir) dir = g_dir_open(dirs[d], 0, err);
    if (!dir)
      return g_ptr_array_unref(names), NULL;
    const char *f;
    while ((f = g_dir_read_name(dir))) {
      g_autofree char *name = NULL;
      bool is_tumour = false;
      if (d == 0 && g_str_has_suffix(f, ".xml"))
        name = g_strndup(f, strlen(f) - 4), is_tumour = true;
      else if (d == 0 && (g_str_has_suffix(f, "_mask.png") || g_str_has_suffix(f, "_mask.tif")))
        name = g_strndup(f, strlen(f) - 9), is_tumour = true;
      else if (d == 1 && g_str_has_suffix(f, ".csv") && !g_strv_contains(NOT_SLIDES, f))
        name = g_strndup(f, strlen(f) - 4);
      else if (d == 1) {
        g_autofree char *det = g_build_filename(dirs[d], f, "detections.csv", NULL);
        if (g_file_test(det, G_FILE_TEST_EXISTS))
          name = g_strdup(f);
      }
      if (!name || g_hash_table_contains(seen, name))
        continue;
      if (is_tumour)
        g_hash_table_add(tumour, g_strdup(name));
      g_hash_table_add(seen, g_strdup(name));
      g_ptr_array_add(names, g_steal_pointer(&name));
    }
  }
  g_ptr_array_sort(names, (GCompareFunc) g_ascii_strcasecmp);
  return names;
}

static int cmp_name(gconstpointer a, gconstpointer b) {
  return strcmp(*(char *const *) a, *(char *const *) b);
}

bool eosin_eval_camelyon16(const EosinC16Options *o, EosinC16Result *res, GError **err) {
  memset(res, 0, sizeof *res);
  res->auc = NAN;
  g_autoptr(GHashTable) tumour = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) names = slide_list(o, tumour, err);
  if (!names)
    return false;
  g_ptr_array_sort(names, cmp_name);

  /* slide level: PRED/camelyon-slides.csv (name,probability) */
  g_autofree char *slides_csv = g_build_filename(o->pred_dir, "camelyon-slides.csv", NULL);
  if (g_file_test(slides_csv, G_FILE_TEST_EXISTS)) {
    g_autoptr(GPtrArray) rows = read_rows(slides_csv, err);
    if (!rows)
      return false;
    g_autoptr(GHashTable) prob = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (guint i = 0; i < rows->len; i++) {
      char **f = rows->pdata[i];
      double p;
      if (g_strv_length(f) < 2 || !parse_num(f[1], &p)) {
        if (i == 0)
          continue;
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s row %u: expected name,probability",
                    slides_csv, i + 1);
        return false;
      }
      g_hash_table_insert(prob, g_strdup(f[0]), g_memdup2(&p, sizeof p));
    }
    g_autoptr(GArray) sc = g_array_new(FALSE, FALSE, sizeof(double));
    g_autoptr(GArray) pos = g_array_new(FALSE, FALSE, sizeof(bool));
    for (guint i = 0; i < names->len; i++) {
      const char *n = names->pdata[i];
      if (!strcmp(n, "Test_049"))  /* a duplicate slide, dropped by the challenge */
        continue;
      double *p = g_hash_table_lookup(prob, n);
      if (!p) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s: no probability for slide %s",
                    slides_csv, n);
        return false;
      }
      bool t = g_hash_table_contains(tumour, n);
      g_array_append_val(sc, *p);
      g_array_append_val(pos, t);
    }
    res->auc = _eosin_roc_auc((double *) sc->data, (bool *) pos->data, sc->len);
    res->n_slides_auc = sc->len;
  }

  /* lesion level */
  g_autoptr(GArray) fp = g_array_new(FALSE, FALSE, sizeof(double));
  g_autoptr(GArray) tp = g_array_new(FALSE, FALSE, sizeof(float));
  int n_slides = 0, n_tumours = 0;
  for (guint i = 0; i < names->len; i++) {
    const char *n = names->pdata[i];
    if (!strcmp(n, "Test_049") || !strcmp(n, "Test_114"))
      continue;
    g_autoptr(GArray) det = read_detections(o->pred_dir, n, err);
    if (!det)
      return false;
    g_autofree uint8_t *mask = NULL;
    int w = 0, h = 0;
    if (g_hash_table_contains(tumour, n)) {
      if (!read_truth(o->truth, n, det, &mask, &w, &h, err))
        return false;
      if (!mask) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO,
                    "slide %s is a tumour slide but %s has no %s.xml or %s_mask.png/.tif", n,
                    o->truth, n, n);
        return false;
      }
    }
    EosinLesions les = {0};
    bool ok = (!mask || _eosin_c16_lesions(mask, w, h, &les, err)) &&
              _eosin_c16_match(mask ? &les : NULL, (EosinDetection *) det->data, det->len, n, fp,
                               tp, err);
    n_tumours += les.n_tumours;
    res->n_itc += les.n_labels - les.n_tumours;
    _eosin_lesions_clear(&les);
    if (!ok)
      return false;
    n_slides++;
  }
  res->n_slides_froc = n_slides;
  res->n_tumours = n_tumours;
  EosinFroc froc;
  if (!_eosin_froc(fp, tp, n_slides, n_tumours, &froc, err))
    return false;
  memcpy(res->sensitivity, froc.at_rate, sizeof froc.at_rate);
  res->froc = froc.score;
  bool ok = true;
  if (o->out_dir) {
    g_autofree char *csv = g_build_filename(o->out_dir, "froc.csv", NULL);
    g_autofree char *png = g_build_filename(o->out_dir, "froc.png", NULL);
    g_autoptr(GString) s = g_string_new("threshold,fps_per_slide,sensitivity\n");
    char a[G_ASCII_DTOSTR_BUF_SIZE], b[G_ASCII_DTOSTR_BUF_SIZE], c[G_ASCII_DTOSTR_BUF_SIZE];
    for (int i = froc.n - 1; i >= 0; i--)
      g_string_append_printf(s, "%s,%s,%s\n",
                             isfinite(froc.threshold[i])
                                 ? g_ascii_formatd(a, sizeof a, "%.9g", froc.threshold[i])
                                 : "inf",
                             g_ascii_formatd(b, sizeof b, "%.9g", froc.fps[i]),
                             g_ascii_formatd(c, sizeof c, "%.9g", froc.sensitivity[i]));
    ok = g_mkdir_with_parents(o->out_dir, 0755) == 0 &&
         _eosin_write_atomic(csv, s->str, s->len, err) &&
         _eosin_froc_plot(&froc, res->auc, png, err);
    if (ok) {
      res->curve_csv = g_steal_pointer(&csv);
      res->curve_png = g_steal_pointer(&png);
    } else if (err && !*err) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "creating %s: %s", o->out_dir,
                  g_strerror(errno));
    }
  }
  _eosin_froc_clear(&froc);
  return ok;
}

void eosin_c16_result_clear(EosinC16Result *r) {
  g_clear_pointer(&r->curve_csv, g_free);
  g_clear_pointer(&r->curve_png, g_free);
}

/* ------------------------------------------------------------ CAMELYON17 */

/* Patient stages from a CAMELYON17 CSV: patient rows as given, else
 * derived from the node rows. GHashTable name -> stage + 1. */
static GHashTable *read_stages(const char *path, GError **err) {
  g_autoptr(GPtrArray) rows = read_rows(path, err);
  if (!rows)
    return NULL;
  g_autoptr(GHashTable) stage = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GHashTable) nodes = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                                      (GDestroyNotify) g_array_unref);
  for (guint i = 0; i < rows->len; i++) {
    char **f = rows->pdata[i];
    if (g_strv_length(f) < 2)
      goto bad;
    const char *node = strstr(f[0], "_node_");
    if (node) {
      int c = _eosin_node_category_parse(f[1]);
      if (c < 0)
        goto bad;
      g_autofree char *patient = g_strndup(f[0], node - f[0]);
      GArray *a = g_hash_table_lookup(nodes, patient);
      if (!a) {
        a = g_array_new(FALSE, FALSE, sizeof(EosinNodeCat));
        g_hash_table_insert(nodes, g_strdup(patient), a);
      }
      EosinNodeCat cat = c;
      g_array_append_val(a, cat);
    } else {
      int s = _eosin_pn_stage_parse(f[1]);
      if (s < 0) {
        if (i == 0)
          continue;  /* a header */
        goto bad;
      }
      char *name = g_strdup(f[0]);
      char *dot = strrchr(name, '.');
      if (dot)
        *dot = 0;
      g_hash_table_insert(stage, name, GINT_TO_POINTER(s + 1));
    }
    continue;
  bad:
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO,
                "%s row %u: expected patient_X.zip,<pN0|pN0(i+)|pN1mi|pN1|pN2> or "
                "patient_X_node_Y.tif,<negative|itc|micro|macro>",
                path, i + 1);
    return NULL;
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
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s: no prediction for %s", pred,
                  (char *) l->data);
      return false;
    }
    int g = GPOINTER_TO_INT(got) - 1;
    g_array_append_val(a, want);
    g_array_append_val(b, g);
  }
  if (a->len == 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s: no patients", truth);
    return false;
  }
  *n_patients = a->len;
  *kappa = _eosin_quadratic_kappa((int *) a->data, (int *) b->data, a->len, 5);
  return true;
}
