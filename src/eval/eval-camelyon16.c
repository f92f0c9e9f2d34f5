/*
 * eval-camelyon16.c — CAMELYON16 evaluation, exactly as the challenge's
 * Evaluation_FROC.py computes it (../shared/notes/camelyon-evaluation.md):
 * lesion masks at level 5 (ASAP XML polygons rasterised, groups _2 and
 * Exclusion subtracted), a 75 µm margin by Euclidean distance, holes
 * filled, 8-connected lesions (distance, holes and labels by cells/), isolated tumour cells (major axis < 275 µm)
 * ignored, detections matched to lesions with the TP maxima stored as
 * float32 like the original, the FROC curve and its 6-point score, and the
 * slide-level ROC AUC with ties counting one half.
 */
#include "cells/eosin-cells.h"
#include "eval/eval-private.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define LEVEL_SCALE 32.0          /* level 5 of a 0.243 µm/px scan */
#define RES_UM 0.243
#define T_DIST (75.0 / (RES_UM * LEVEL_SCALE * 2))  /* 4.822530864 px */
#define T_ITC (275.0 / (RES_UM * LEVEL_SCALE))      /* 35.36522634 px */

/* ------------------------------------------------------------ ASAP XML */

typedef struct {
  GArray *polys;   /* EosinPolygon */
  EosinPolygon *cur;
  int cur_line;    /* where the current Annotation starts */
  char *cur_name;  /* its Name, for messages */
  int depth;       /* element nesting: the root is checked */
  char *file;
} XmlState;

static void poly_clear(gpointer p) {
  EosinPolygon *poly = p;
  g_free(poly->group);
  if (poly->xy)
    g_array_unref(poly->xy);
  if (poly->line)
    g_array_unref(poly->line);
}

static const char *attr(const char **names, const char **values, const char *want) {
  for (int i = 0; names[i]; i++)
    if (!g_ascii_strcasecmp(names[i], want))
      return values[i];
  return NULL;
}

/* CAMELYON16's tumour groups; _2 and Exclusion are holes cut out of them. */
int _eosin_asap_group_kind(const char *g) {
  if (!g_ascii_strcasecmp(g, "_2") || !g_ascii_strcasecmp(g, "Exclusion"))
    return -1;
  if (!g_ascii_strcasecmp(g, "Tumor") || !strcmp(g, "_0") || !strcmp(g, "_1") ||
      !g_ascii_strcasecmp(g, "metastases") || !g_ascii_strcasecmp(g, "Tumour"))
    return 1;
  return 0;
}

/* One Coordinate value: a finite number in [0, EOSIN_EVAL_MAX_COORD], so
 * that the grid size and every pixel index computed from it fit an int
 * (X="1e15" once overflowed into a 1.8e19-byte allocation). */
static bool coord_value(XmlState *s, int line, const char *axis, const char *text, double *v,
                        GError **err) {
  char *end = NULL;
  *v = text ? g_ascii_strtod(text, &end) : NAN;
  const char *why = !text                              ? "is missing"
                    : !*text || *end || !isfinite(*v)  ? "is not a finite number"
                    : *v < 0                           ? "is negative (level-0 px start at 0)"
                    : *v > EOSIN_EVAL_MAX_COORD        ? "is past 4194304 px, the largest "
                                                         "level-0 coordinate eval accepts"
                                                       : NULL;
  if (!why)
    return true;
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
              "%s line %d: Annotation \"%s\": Coordinate %s=\"%s\" %s",
              s->file, line, s->cur_name ? s->cur_name : "", axis, text ? text : "", why);
  return false;
}

static void xml_start(GMarkupParseContext *ctx, const char *el, const char **names,
                      const char **values, gpointer data, GError **err) {
  XmlState *s = data;
  int line, col;
  g_markup_parse_context_get_position(ctx, &line, &col);
  if (s->depth++ == 0 && strcmp(el, "ASAP_Annotations")) {
    /* another XML file (or HTML) would otherwise read as "no annotations" */
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s line %d: the root element is <%s>, not <ASAP_Annotations>: not an ASAP "
                "annotation file",
                s->file, line, el);
    return;
  }
  if (!strcmp(el, "Annotation")) {
    EosinPolygon p = {.group = g_strdup(attr(names, values, "PartOfGroup")),
                      .xy = g_array_new(FALSE, FALSE, sizeof(double)),
                      .line = g_array_new(FALSE, FALSE, sizeof(int))};
    if (!p.group)
      p.group = g_strdup("");
    g_array_append_val(s->polys, p);
    s->cur = &g_array_index(s->polys, EosinPolygon, s->polys->len - 1);
    s->cur_line = line;
    g_free(s->cur_name);
    s->cur_name = g_strdup(attr(names, values, "Name"));
  } else if (!strcmp(el, "Coordinate")) {
    if (!s->cur) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "%s line %d: a Coordinate outside an Annotation", s->file, line);
      return;
    }
    double v[2];
    if (!coord_value(s, line, "X", attr(names, values, "X"), &v[0], err) ||
        !coord_value(s, line, "Y", attr(names, values, "Y"), &v[1], err))
      return;
    g_array_append_vals(s->cur->xy, v, 2);
    g_array_append_val(s->cur->line, line);
  }
}

static void xml_end(GMarkupParseContext *ctx, const char *el, gpointer data, GError **err) {
  XmlState *s = data;
  s->depth--;
  if (strcmp(el, "Annotation") || !s->cur)
    return;
  /* a tumour or exclusion Annotation without a single Coordinate is a
   * truncated or hand-edited file, not a shape; one or two vertices (a
   * degenerate polygon, as in CAMELYON16's Tumor_054) cover no pixel and
   * are kept, as the original's rasterisation does */
  if (s->cur->xy->len == 0 && _eosin_asap_group_kind(s->cur->group) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s line %d: Annotation \"%s\" (PartOfGroup \"%s\") has no Coordinate",
                s->file, s->cur_line, s->cur_name ? s->cur_name : "", s->cur->group);
    return;
  }
  s->cur = NULL;  /* a stray Coordinate after </Annotation> is an error */
}

GArray *_eosin_asap_xml_load(const char *path, GError **err) {
  g_autofree char *text = NULL;
  gsize len;
  if (!_eosin_read_input_file(path, "ASAP XML", EOSIN_MAX_TABLE_BYTES, &text, &len, err))
    return NULL;
  GArray *polys = g_array_new(FALSE, FALSE, sizeof(EosinPolygon));
  g_array_set_clear_func(polys, poly_clear);
  XmlState s = {.polys = polys, .file = (char *) path};
  GMarkupParser parser = {.start_element = xml_start, .end_element = xml_end};
  GMarkupParseContext *ctx = g_markup_parse_context_new(&parser, 0, &s, NULL);
  GError *e = NULL;
  bool ok = g_markup_parse_context_parse(ctx, text, len, &e) &&
            g_markup_parse_context_end_parse(ctx, &e);
  g_markup_parse_context_free(ctx);
  g_free(s.cur_name);
  if (!ok) {
    /* our own messages name the file already; GMarkup's say "line N char M" */
    if (e->domain == EOSIN_ERROR)
      g_propagate_error(err, e);
    else {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "ASAP XML %s: %s", path, e->message);
      g_error_free(e);
    }
    g_array_unref(polys);
    return NULL;
  }
  return polys;
}

/* Sets (or clears) the mask pixels whose centres lie inside @p (even-odd):
 * pixel (c, r) of the level-5 mask covers level-0 [32c, 32c+32). */
static void fill_polygon(uint8_t *mask, int w, int h, const EosinPolygon *p, uint8_t value) {
  int n = p->xy->len / 2;
  const double *v = (const double *) p->xy->data;
  if (n < 3)
    return;
  g_autofree double *xs = g_new(double, n);
  for (int r = 0; r < h; r++) {
    double y = (r + 0.5) * LEVEL_SCALE;
    int k = 0;
    for (int i = 0, j = n - 1; i < n; j = i++) {
      double yi = v[2 * i + 1], yj = v[2 * j + 1];
      if ((yi > y) != (yj > y))
        xs[k++] = v[2 * i] + (y - yi) * (v[2 * j] - v[2 * i]) / (yj - yi);
    }
    for (int a = 1; a < k; a++)  /* insertion sort: k is small */
      for (int b = a; b > 0 && xs[b - 1] > xs[b]; b--) {
        double t = xs[b];
        xs[b] = xs[b - 1], xs[b - 1] = t;
      }
    for (int a = 0; a + 1 < k; a += 2) {
      /* clamped to the grid as doubles, so no vertex converts out of range */
      double c0 = MAX(ceil(xs[a] / LEVEL_SCALE - 0.5), 0.0);
      double c1 = MIN(floor(xs[a + 1] / LEVEL_SCALE - 0.5), (double) (w - 1));
      if (!(c0 <= c1))  /* empty, or not finite: then 0 <= c0 <= c1 <= w - 1 */
        continue;
      for (int c = (int) c0; c <= (int) c1; c++)
        mask[(size_t) r * w + c] = value;
    }
  }
}

uint8_t *_eosin_c16_mask_from_polygons(GArray *polys, int w, int h) {
  uint8_t *mask = g_new0(uint8_t, (size_t) w * h);
  for (guint i = 0; i < polys->len; i++) {
    EosinPolygon *p = &g_array_index(polys, EosinPolygon, i);
    if (_eosin_asap_group_kind(p->group) > 0)
      fill_polygon(mask, w, h, p, 1);
  }
  for (guint i = 0; i < polys->len; i++) {
    EosinPolygon *p = &g_array_index(polys, EosinPolygon, i);
    if (_eosin_asap_group_kind(p->group) < 0)
      fill_polygon(mask, w, h, p, 0);
  }
  return mask;
}

/* ------------------------------------------------------------ lesions */

void _eosin_truth_lesions_clear(EosinTruthLesions *l) {
  g_clear_pointer(&l->label, g_free);
  g_clear_pointer(&l->itc, g_free);
}

/* Whether each of the @n lesions of @label (w x h) is made of isolated
 * tumour cells, as Evaluation_FROC.py's regionprops says: a major axis
 * (4 sqrt of the inertia tensor's larger eigenvalue of the (row, col)
 * coordinates) under 275 µm. Caller frees. The moments are whole numbers,
 * summed exactly in 64 bits (in doubles, as the original, they are the
 * same until a sum passes 2^53: a lesion larger than any slide). */
static bool *itc_flags(const int *label, int w, int h, int n) {
  typedef struct {
    int64_t m00, sr, sc, srr, scc, src;
  } Moments;
  g_autofree Moments *m = g_new0(Moments, (size_t) n + 1);
  for (int r = 0; r < h; r++)
    for (int c = 0; c < w; c++) {
      int l = label[(size_t) r * w + c];
      if (!l)
        continue;
      Moments *k = &m[l];
      k->m00++, k->sr += r, k->sc += c, k->srr += (int64_t) r * r, k->scc += (int64_t) c * c,
          k->src += (int64_t) r * c;
    }
  bool *itc = g_new0(bool, MAX(n, 1));
  for (int l = 1; l <= n; l++) {
    const Moments *k = &m[l];
    double m00 = (double) k->m00, mr = (double) k->sr / m00, mc = (double) k->sc / m00;
    double a = (double) k->srr / m00 - mr * mr, c = (double) k->scc / m00 - mc * mc,
           b = (double) k->src / m00 - mr * mc;
    double l1 = (a + c) / 2 + sqrt(((a - c) / 2) * ((a - c) / 2) + b * b);
    itc[l - 1] = 4 * sqrt(MAX(l1, 0)) < T_ITC;
  }
  return itc;
}

bool _eosin_c16_lesions(const uint8_t *mask, int w, int h, EosinTruthLesions *out,
                        GError **err) {
  memset(out, 0, sizeof *out);
  out->width = w, out->height = h;
  size_t n = (size_t) w * h;
  /* the tumour grown by 75 µm: pixels nearer than T_DIST to a tumour pixel */
  g_autofree uint8_t *bin = g_new(uint8_t, n);
  bool any = false;
  {
    g_autofree double *d2 = g_new(double, n);
    _eosin_edt_sq(mask, w, h, d2);
    for (size_t i = 0; i < n; i++)
      any |= (bin[i] = sqrt(d2[i]) < T_DIST);
  }
  out->label = g_new0(int, n);
  if (any) {
    /* holes filled (background not 4-connected to the border), then
     * 8-connected lesions numbered in raster order of their first pixel */
    _eosin_fill_holes(bin, w, h, false);
    out->n_labels = _eosin_label_components(bin, w, h, true, out->label);
  }
  out->itc = itc_flags(out->label, w, h, out->n_labels);
  out->n_tumours = 0;
  for (int i = 0; i < out->n_labels; i++)
    out->n_tumours += !out->itc[i];
  return true;
}

/* ------------------------------------------------------------ FROC */

bool _eosin_c16_match(const EosinTruthLesions *les, const EosinDetection *det, int n_det,
                      const char *slide, GArray *fp, GArray *tp, GError **err) {
  if (!les) { /* a normal slide: every detection is a false positive */
    for (int i = 0; i < n_det; i++)
      g_array_append_val(fp, det[i].p);
    return true;
  }
  g_autofree float *best = g_new0(float, MAX(les->n_labels, 1));
  for (int i = 0; i < n_det; i++) {
    /* compared as doubles: converting 1e300 / 32 to an integer is undefined */
    double r = floor(det[i].y / LEVEL_SCALE), c = floor(det[i].x / LEVEL_SCALE);
    if (!(r >= 0 && c >= 0 && r < les->height && c < les->width)) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "slide %s: detection %d at (%g, %g) lies outside the %d x %d level-5 mask",
                  slide, i + 1, det[i].x, det[i].y, les->width, les->height);
      return false;
    }
    int h = les->label[(size_t) r * les->width + (size_t) c];
    if (h == 0)
      g_array_append_val(fp, det[i].p);
    else if (!les->itc[h - 1] && det[i].p > (double) best[h - 1])
      best[h - 1] = (float) det[i].p;  /* float32, like the original */
  }
  for (int i = 0; i < les->n_labels; i++)
    g_array_append_val(tp, best[i]);  /* ITC and missed lesions: 0 */
  return true;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* The first index of sorted @v (@n values) holding a value >= @t. */
static size_t lower_bound(const double *v, size_t n, double t) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v[mid] < t)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* numpy.interp(x, xp, fp) for increasing xp (duplicates allowed). */
static double np_interp(double x, const double *xp, const double *fp, int n) {
  if (x < xp[0])
    return fp[0];
  if (x > xp[n - 1])
    return fp[n - 1];
  int j = 0;
  while (j + 1 < n && xp[j + 1] <= x)
    j++;
  if (j == n - 1 || xp[j] == x)
    return fp[j];
  return (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]) * (x - xp[j]) + fp[j];
}

const double EOSIN_FROC_RATES[6] = {0.25, 0.5, 1, 2, 4, 8};

bool _eosin_froc(GArray *fp, GArray *tp, int n_slides, int n_tumours, EosinFroc *out,
                 GError **err) {
  memset(out, 0, sizeof *out);
  if (n_slides <= 0 || n_tumours <= 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "FROC needs at least one slide and one lesion that is not ITC (%d slides, %d "
                "lesions)", n_slides, n_tumours);
    return false;
  }
  const double *F = (const double *) fp->data;
  const float *T = (const float *) tp->data;
  size_t nu = fp->len + tp->len;
  g_autofree double *u = g_new(double, MAX(nu, 1));
  for (guint i = 0; i < fp->len; i++)
    u[i] = F[i];
  for (guint i = 0; i < tp->len; i++)
    u[fp->len + i] = (double) T[i];
  qsort(u, nu, sizeof(double), cmp_double);
  size_t k = 0;
  for (size_t i = 0; i < nu; i++)
    if (k == 0 || u[i] != u[k - 1])
      u[k++] = u[i];
  /* thresholds: the unique values but the smallest, then the point (0, 0) */
  int n = (int) (k > 0 ? k - 1 : 0) + 1;
  out->n = n;
  out->threshold = g_new(double, n);
  out->fps = g_new(double, n);
  out->sensitivity = g_new(double, n);
  /* #F >= t and #T >= t by binary search in sorted copies (the same
   * counts as a scan per threshold, which took minutes for 1e6 detections) */
  g_autofree double *fs = g_new(double, MAX(fp->len, 1)), *ts = g_new(double, MAX(tp->len, 1));
  if (fp->len) /* no false positive: fp->data is NULL, and memcpy from NULL is undefined */
    memcpy(fs, F, fp->len * sizeof(double));
  for (guint j = 0; j < tp->len; j++)
    ts[j] = (double) T[j];
  qsort(fs, fp->len, sizeof(double), cmp_double);
  qsort(ts, tp->len, sizeof(double), cmp_double);
  for (int i = 0; i + 1 < n; i++) {
    double t = u[i + 1];
    size_t nf = fp->len - lower_bound(fs, fp->len, t), nt = tp->len - lower_bound(ts, tp->len, t);
    out->threshold[i] = t;
    out->fps[i] = (double) nf / n_slides;
    out->sensitivity[i] = (double) nt / n_tumours;
  }
  out->threshold[n - 1] = INFINITY;
  out->fps[n - 1] = 0;
  out->sensitivity[n - 1] = 0;
  /* read in increasing FP order, as the curve was built decreasing */
  g_autofree double *xs = g_new(double, n), *ys = g_new(double, n);
  for (int i = 0; i < n; i++)
    xs[i] = out->fps[n - 1 - i], ys[i] = out->sensitivity[n - 1 - i];
  double sum = 0;
  for (int r = 0; r < 6; r++)
    sum += out->at_rate[r] = np_interp(EOSIN_FROC_RATES[r], xs, ys, n);
  out->score = sum / 6;
  return true;
}

void _eosin_froc_clear(EosinFroc *f) {
  g_clear_pointer(&f->threshold, g_free);
  g_clear_pointer(&f->fps, g_free);
  g_clear_pointer(&f->sensitivity, g_free);
}

double _eosin_roc_auc(const double *score, const bool *positive, int n) {
  double u = 0;
  int np = 0, nn = 0;
  for (int i = 0; i < n; i++) {
    if (!positive[i]) {
      nn++;
      continue;
    }
    np++;
    for (int j = 0; j < n; j++)
      if (!positive[j])
        u += score[i] > score[j] ? 1 : score[i] == score[j] ? 0.5 : 0;
  }
  return np && nn ? u / ((double) np * nn) : NAN;
}
