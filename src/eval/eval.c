/*
 * eval.c — `eosin eval camelyon16`: reads predictions and ground truth from
 * disk (tables.c) and scores them with eval-camelyon16.c, writing the FROC
 * curve as CSV and PNG. File layouts follow the challenges' submissions:
 * CAMELYON16 detections are one CSV per slide (`confidence,X,Y`, the
 * challenge's without a header), slide probabilities one CSV
 * `name,probability` (eosin batch writes that header); CAMELYON17
 * rows are `patient_XXX.zip,<pN stage>` and `patient_XXX_node_Y.tif,<category>`.
 *
 * Input is read strictly, since a lenient reader turns a malformed file
 * into a wrong score with exit 0: every row must parse (a first row is a
 * header only when it names the columns), names are unique, probabilities
 * lie in [0, 1], coordinates in [0, EOSIN_EVAL_MAX_COORD]. A malformed file
 * is an EOSIN_ERROR_CONFIG error naming file, line and value (`eosin eval`
 * exits 2); one that cannot be read is EOSIN_ERROR_IO (exit 1).
 */
#include "eval/eval-private.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The column names a header row may use. */
static const char *const DET_P[] = {"confidence", "probability", "prob", "p", "score", NULL};
static const char *const DET_X[] = {"x", "coord_x", "x_coord", NULL};
static const char *const DET_Y[] = {"y", "coord_y", "y_coord", NULL};
static const char *const *const DET_HEADER[] = {DET_P, DET_X, DET_Y, NULL};
static const char *const SLIDE_NAME[] = {NAME_COLUMN, NULL};
static const char *const SLIDE_P[] = {"probability", "prob", "p", "score", "confidence",
                                      "tumor_probability", NULL};
static const char *const *const SLIDES_HEADER[] = {SLIDE_NAME, SLIDE_P, NULL};
static const char *const REF_LABEL[] = {"type", "label", "class", "category", "diagnosis",
                                        "ground_truth", "truth", NULL};
static const char *const *const REF_HEADER[] = {SLIDE_NAME, REF_LABEL, NULL};

/* ------------------------------------------------------------ CAMELYON16 */

#define DET_WANT "confidence,X,Y: a probability in [0, 1] and level-0 px from 0 to 4194304"

/* A slide's detections: DIR/<name>.csv or DIR/<name>/detections.csv; a
 * missing file means no detections (the slide was called negative).
 * *@path_out: the file (for messages), even when missing. */
static GArray *read_detections(const char *dir, const char *name, char **path_out,
                               GError **err) {
  g_autofree char *a = g_strdup_printf("%s/%s.csv", dir, name);
  g_autofree char *b = g_build_filename(dir, name, "detections.csv", NULL);
  bool has_a = g_file_test(a, G_FILE_TEST_EXISTS);
  *path_out = g_strdup(has_a ? a : b);
  if (has_a && g_file_test(b, G_FILE_TEST_EXISTS)) {
    /* which one was meant is anybody's guess: a stale copy scores silently */
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "slide %s has detections in both %s and %s: keep one", name, a, b);
    return NULL;
  }
  const char *path = *path_out;
  GArray *det = g_array_new(FALSE, FALSE, sizeof(EosinDetection));
  if (!g_file_test(path, G_FILE_TEST_EXISTS))
    return det;
  g_autoptr(GPtrArray) rows = _eosin_eval_read_table(path, "detections", err);
  if (!rows) {
    g_array_unref(det);
    return NULL;
  }
  for (guint i = 0; i < rows->len; i++) {
    const EosinCsvRow *r = rows->pdata[i];
    if (i == 0 && _eosin_eval_is_header(r, DET_HEADER, true))
      continue;
    EosinDetection d = {.line = r->line};
    const char *why = NULL, *what = NULL, *val = NULL;
    if (r->n != 3) {
      _eosin_eval_bad_row(err, path, r, DET_WANT, "%d field%s", r->n, r->n == 1 ? "" : "s");
      g_array_unref(det);
      return NULL;
    }
    if ((why = _eosin_eval_prob_problem(r->fields[0], &d.p)))
      what = "confidence", val = r->fields[0];
    else if ((why = _eosin_eval_coord_problem(r->fields[1], &d.x)))
      what = "X", val = r->fields[1];
    else if ((why = _eosin_eval_coord_problem(r->fields[2], &d.y)))
      what = "Y", val = r->fields[2];
    if (why) {
      _eosin_eval_bad_row(err, path, r, DET_WANT, "%s %s %s", what, val, why);
      g_array_unref(det);
      return NULL;
    }
    g_array_append_val(det, d);
  }
  return det;
}

/* The largest level-0 coordinate on one axis of a slide and where it came from. */
typedef struct {
  double v;
  const char *file;
  int line;
} Extent;

static void extent_add(Extent *e, double v, const char *file, int line) {
  if (v > e->v || !e->file)
    *e = (Extent){MAX(v, e->v), file, line};
}

static char *extent_text(const char *axis, const Extent *e) {
  return e->file ? g_strdup_printf("%s reaches %g (%s line %d)", axis, e->v, e->file, e->line)
                 : g_strdup_printf("%s reaches 0", axis);
}

/* "Tumor, _2" for messages. */
static char *groups_text(GArray *polys) {
  g_autoptr(GPtrArray) seen = g_ptr_array_new();
  for (guint i = 0; i < polys->len; i++) {
    const char *g = g_array_index(polys, EosinPolygon, i).group;
    bool dup = false;
    for (guint k = 0; k < seen->len && !dup; k++)
      dup = !strcmp(seen->pdata[k], g);
    if (!dup)
      g_ptr_array_add(seen, (char *) g);
  }
  if (!seen->len)
    return g_strdup("no Annotation at all");
  g_ptr_array_add(seen, NULL);
  g_autofree char *list = g_strjoinv("\", \"", (char **) seen->pdata);
  return g_strdup_printf("groups found: \"%s\"", list);
}

/* The level-5 tumour mask of @name: TRUTH/<name>.xml (ASAP polygons, the
 * grid sized to cover them and the detections, read from @det_path) or
 * TRUTH/<name>_mask.png / .tif (a level-5 mask image, tumour > 0). NULL
 * *mask: no truth file. A truth that would give the tumour slide no lesion
 * at all (no tumour polygon, no tumour pixel) is an error: the reference
 * or the truth is wrong, and the FROC would quietly count the slide's
 * detections as false positives. */
static bool read_truth(const char *truth, const char *name, const GArray *det,
                       const char *det_path, uint8_t **mask, int *w, int *h, GError **err) {
  *mask = NULL;
  g_autofree char *xml = g_strdup_printf("%s/%s.xml", truth, name);
  if (g_file_test(xml, G_FILE_TEST_EXISTS)) {
    g_autoptr(GArray) polys = _eosin_asap_xml_load(xml, err);
    if (!polys)
      return false;
    Extent ex = {0}, ey = {0};
    int n_tumour = 0;
    for (guint i = 0; i < polys->len; i++) {
      EosinPolygon *p = &g_array_index(polys, EosinPolygon, i);
      n_tumour += _eosin_asap_group_kind(p->group) > 0 && p->xy->len >= 6;
      for (guint k = 0; k + 1 < p->xy->len; k += 2) {
        int line = g_array_index(p->line, int, k / 2);
        extent_add(&ex, g_array_index(p->xy, double, k), xml, line);
        extent_add(&ey, g_array_index(p->xy, double, k + 1), xml, line);
      }
    }
    if (n_tumour == 0) {
      g_autofree char *groups = groups_text(polys);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "%s: no tumour polygon (an Annotation of PartOfGroup Tumor, _0, _1 or "
                  "metastases with 3 or more Coordinates; %s), so tumour slide %s would have no "
                  "lesion",
                  xml, groups, name);
      return false;
    }
    for (guint i = 0; i < det->len; i++) {
      const EosinDetection *d = &g_array_index(det, EosinDetection, i);
      extent_add(&ex, d->x, det_path, d->line);
      extent_add(&ey, d->y, det_path, d->line);
    }
    /* a margin so lesions never touch the grid's edge (hole filling); in
     * double, every coordinate being at most EOSIN_EVAL_MAX_COORD */
    double gw = ceil(ex.v / 32) + 16, gh = ceil(ey.v / 32) + 16;
    if (gw * gh > EOSIN_EVAL_MAX_CELLS) {
      g_autofree char *tx = extent_text("x", &ex), *ty = extent_text("y", &ey);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "%s: coordinates too large for slide %s: %s, %s: a %.0f x %.0f level-5 grid, "
                  "more than the %.0f cells eval allows",
                  xml, name, tx, ty, gw, gh, EOSIN_EVAL_MAX_CELLS);
      return false;
    }
    *w = (int) gw, *h = (int) gh;
    *mask = _eosin_c16_mask_from_polygons(polys, *w, *h);
    return true;
  }
  const char *ext[] = {"_mask.png", "_mask.tif", "_Mask.tif", NULL};
  for (int e = 0; ext[e]; e++) {
    g_autofree char *path = g_strdup_printf("%s/%s%s", truth, name, ext[e]);
    if (!g_file_test(path, G_FILE_TEST_EXISTS))
      continue;
    if (!_eosin_check_input_file(path, "truth mask", 0, NULL, err) || !_eosin_vips_init(err))
      return false;
    g_autoptr(VipsImage) in = vips_image_new_from_file(path, NULL);
    if (!in) {
      _eosin_set_vips_error(err, path);
      return false;
    }
    /* checked from the header, before a pixel is decoded: a 100000 x
     * 100000 image would be 1e10 bytes */
    if ((double) in->Xsize * in->Ysize > EOSIN_EVAL_MAX_CELLS) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "%s: %d x %d px is no level-5 mask (at most %.0f px; level 5 of a 220000 px "
                  "wide slide is about 6900 px wide)",
                  path, in->Xsize, in->Ysize, EOSIN_EVAL_MAX_CELLS);
      return false;
    }
    VipsImage *b0 = NULL, *u8 = NULL;
    if (vips_extract_band(in, &b0, 0, NULL) || vips_cast(b0, &u8, VIPS_FORMAT_UCHAR, NULL)) {
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
    bool any = false;
    for (size_t i = 0; i < len; i++)
      any |= (px[i] = px[i] > 0);
    if (!any) {
      g_free(px);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "%s: no tumour pixel (channel 0 > 0), so tumour slide %s would have no lesion",
                  path, name);
      return false;
    }
    *mask = px;
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

/* True when @f is a truth file name: *@stem_len is the slide name's length. */
static bool truth_suffix(const char *f, size_t *stem_len) {
  const char *ext[] = {".xml", "_mask.png", "_mask.tif", "_Mask.tif", NULL};
  for (int e = 0; ext[e]; e++)
    if (g_str_has_suffix(f, ext[e]) && strlen(f) > strlen(ext[e])) {
      *stem_len = strlen(f) - strlen(ext[e]);
      return true;
    }
  return false;
}

#define REF_WANT "name,Tumor|Normal[,...] as CAMELYON16's reference.csv"

static GPtrArray *slide_list(const EosinC16Options *o, GHashTable *tumour, GError **err) {
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  if (o->reference) {
    g_autoptr(GPtrArray) rows = _eosin_eval_read_table(o->reference, "reference CSV", err);
    if (!rows)
      return g_ptr_array_unref(names), NULL;
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < rows->len; i++) {
      const EosinCsvRow *r = rows->pdata[i];
      if (i == 0 && _eosin_eval_is_header(r, REF_HEADER, false))
        continue;
      const char *why = r->n < 2          ? "one field"
                        : !*r->fields[0]  ? "an empty name"
                        : g_ascii_strcasecmp(r->fields[1], "Tumor") &&
                                g_ascii_strcasecmp(r->fields[1], "Normal")
                            ? "a label that is neither Tumor nor Normal"
                            : NULL;
      if (why) {
        _eosin_eval_bad_row(err, o->reference, r, REF_WANT, "%s", why);
        return g_ptr_array_unref(names), NULL;
      }
      char *name = g_strdup(r->fields[0]);
      char *dot = strrchr(name, '.');
      if (dot && !strcmp(dot, ".tif"))
        *dot = 0;
      /* Test_001 and Test_001.tif are one slide */
      if (!_eosin_eval_check_unique(seen, o->reference, "slide", name, r->line, err)) {
        g_free(name);
        return g_ptr_array_unref(names), NULL;
      }
      g_ptr_array_add(names, name);
      if (!g_ascii_strcasecmp(r->fields[1], "Tumor"))
        g_hash_table_add(tumour, g_strdup(name));
    }
    if (!names->len) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "reference CSV %s: no slides (expected "
                  REF_WANT ")", o->reference);
      return g_ptr_array_unref(names), NULL;
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
      size_t stem;
      /* the names read_truth looks for, _Mask.tif (the challenge's) included */
      if (d == 0 && truth_suffix(f, &stem))
        name = g_strndup(f, stem), is_tumour = true;
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

/* Slide level: PRED/camelyon-slides.csv (name,probability), when there,
 * scored by ROC AUC against the tumour slides (res->auc, n_slides_auc). */
static bool slide_auc(const EosinC16Options *o, GPtrArray *names, GHashTable *tumour,
                      EosinC16Result *res, GError **err) {
  g_autofree char *slides_csv = g_build_filename(o->pred_dir, "camelyon-slides.csv", NULL);
  if (g_file_test(slides_csv, G_FILE_TEST_EXISTS)) {
    g_autoptr(GPtrArray) rows = _eosin_eval_read_table(slides_csv, "slide probabilities", err);
    if (!rows)
      return false;
    g_autoptr(GHashTable) prob = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    for (guint i = 0; i < rows->len; i++) {
      const EosinCsvRow *r = rows->pdata[i];
      if (i == 0 && _eosin_eval_is_header(r, SLIDES_HEADER, true))
        continue;
      const char *want = "name,probability: a probability in [0, 1]";
      if (r->n != 2) {
        _eosin_eval_bad_row(err, slides_csv, r, want, "%d field%s", r->n, r->n == 1 ? "" : "s");
        return false;
      }
      if (!*r->fields[0]) {
        _eosin_eval_bad_row(err, slides_csv, r, want, "an empty name");
        return false;
      }
      double p;
      const char *why = _eosin_eval_prob_problem(r->fields[1], &p);
      if (why) {
        _eosin_eval_bad_row(err, slides_csv, r, want, "probability %s %s", r->fields[1], why);
        return false;
      }
      if (!_eosin_eval_check_unique(seen, slides_csv, "slide", r->fields[0], r->line, err))
        return false;
      g_hash_table_insert(prob, g_strdup(r->fields[0]), g_memdup2(&p, sizeof p));
    }
    g_autoptr(GArray) sc = g_array_new(FALSE, FALSE, sizeof(double));
    g_autoptr(GArray) pos = g_array_new(FALSE, FALSE, sizeof(bool));
    for (guint i = 0; i < names->len; i++) {
      const char *n = names->pdata[i];
      if (!strcmp(n, "Test_049"))  /* a duplicate slide, dropped by the challenge */
        continue;
      double *p = g_hash_table_lookup(prob, n);
      if (!p) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s: no probability for slide %s",
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
  return true;
}

/* froc.csv and froc.png in o->out_dir (created if needed); their paths
 * into @res. */
static bool write_curve(const EosinC16Options *o, const EosinFroc *froc, EosinC16Result *res,
                        GError **err) {
  g_autofree char *csv = g_build_filename(o->out_dir, "froc.csv", NULL);
  g_autofree char *png = g_build_filename(o->out_dir, "froc.png", NULL);
  g_autoptr(GString) s = g_string_new("threshold,fps_per_slide,sensitivity\n");
  char a[G_ASCII_DTOSTR_BUF_SIZE], b[G_ASCII_DTOSTR_BUF_SIZE], c[G_ASCII_DTOSTR_BUF_SIZE];
  for (int i = froc->n - 1; i >= 0; i--)
    g_string_append_printf(s, "%s,%s,%s\n",
                           isfinite(froc->threshold[i])
                               ? g_ascii_formatd(a, sizeof a, "%.9g", froc->threshold[i])
                               : "inf",
                           g_ascii_formatd(b, sizeof b, "%.9g", froc->fps[i]),
                           g_ascii_formatd(c, sizeof c, "%.9g", froc->sensitivity[i]));
  bool ok = g_mkdir_with_parents(o->out_dir, 0755) == 0 &&
            _eosin_write_atomic(csv, s->str, s->len, err) &&
            _eosin_froc_plot(froc, res->auc, png, err);
  if (ok) {
    res->curve_csv = g_steal_pointer(&csv);
    res->curve_png = g_steal_pointer(&png);
  } else if (err && !*err) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "creating %s: %s", o->out_dir,
                g_strerror(errno));
  }
  return ok;
}

bool eosin_eval_camelyon16(const EosinC16Options *o, EosinC16Result *res, GError **err) {
  memset(res, 0, sizeof *res);
  res->auc = NAN;
  g_autoptr(GHashTable) tumour = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) names = slide_list(o, tumour, err);
  if (!names)
    return false;
  g_ptr_array_sort(names, cmp_name);

  if (!slide_auc(o, names, tumour, res, err))
    return false;

  /* lesion level */
  g_autoptr(GArray) fp = g_array_new(FALSE, FALSE, sizeof(double));
  g_autoptr(GArray) tp = g_array_new(FALSE, FALSE, sizeof(float));
  int n_slides = 0, n_tumours = 0;
  for (guint i = 0; i < names->len; i++) {
    const char *n = names->pdata[i];
    if (!strcmp(n, "Test_049") || !strcmp(n, "Test_114"))
      continue;
    g_autofree char *det_path = NULL;
    g_autoptr(GArray) det = read_detections(o->pred_dir, n, &det_path, err);
    if (!det)
      return false;
    g_autofree uint8_t *mask = NULL;
    int w = 0, h = 0;
    if (g_hash_table_contains(tumour, n)) {
      if (!read_truth(o->truth, n, det, det_path, &mask, &w, &h, err))
        return false;
      if (!mask) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO,
                    "slide %s is a tumour slide but %s has no %s.xml or %s_mask.png/.tif", n,
                    o->truth, n, n);
        return false;
      }
    }
    /* a detection past a mask image's edge: named by file and line here
     * (the original indexes out of its array) */
    for (guint k = 0; mask && k < det->len; k++) {
      const EosinDetection *d = &g_array_index(det, EosinDetection, k);
      if (floor(d->x / 32) >= w || floor(d->y / 32) >= h) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                    "%s line %d: detection (%g, %g) of slide %s lies outside its %d x %d "
                    "level-5 mask (level-0 %.0f x %.0f px)",
                    det_path, d->line, d->x, d->y, n, w, h, w * 32.0, h * 32.0);
        return false;
      }
    }
    EosinTruthLesions les = {0};
    bool ok = (!mask || _eosin_c16_lesions(mask, w, h, &les, err)) &&
              _eosin_c16_match(mask ? &les : NULL, (EosinDetection *) det->data, det->len, n, fp,
                               tp, err);
    n_tumours += les.n_tumours;
    res->n_itc += les.n_labels - les.n_tumours;
    _eosin_truth_lesions_clear(&les);
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
  bool ok = !o->out_dir || write_curve(o, &froc, res, err);
  _eosin_froc_clear(&froc);
  return ok;
}

void eosin_c16_result_clear(EosinC16Result *r) {
  g_clear_pointer(&r->curve_csv, g_free);
  g_clear_pointer(&r->curve_png, g_free);
}
