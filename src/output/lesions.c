/*
 * lesions.c — lesion candidates on one channel of the stitched
 * heatmap (the [lesions] group; metastasis detection), optionally averaged
 * over a window of smooth_um first: the slide score,
 * 8-connected components of the cells at or above a threshold, each with
 * its probability (the highest cell), location (that cell's centre), area,
 * largest extent and outline, and the files a lab opens them with:
 * detections.csv (CAMELYON16 `confidence,X,Y`, level-0 px, no header),
 * lesions.geojson (QuPath: File > Import objects; in QuPath's coordinates,
 * which start at the slide's bounds) and lesions.xml (ASAP, level-0 px).
 *
 * Outlines follow cell edges exactly (outline.c): simple rings, holes of
 * opposite orientation.
 */
#include "cells/eosin-cells.h"
#include "eosin-private.h"

#include <math.h>

void _eosin_lesion_set_clear(EosinLesionSet *s) {
  if (s->lesions) {
    for (guint i = 0; i < s->lesions->len; i++) {
      EosinLesion *l = &g_array_index(s->lesions, EosinLesion, i);
      g_clear_pointer(&l->rings, g_ptr_array_unref);
    }
    g_clear_pointer(&s->lesions, g_array_unref);
  }
}

static double max_extent(const GPtrArray *rings, double sx, double sy) {
  double best = 0;
  for (guint a = 0; a < rings->len; a++)
    for (guint b = a; b < rings->len; b++) {
      const GArray *ra = rings->pdata[a], *rb = rings->pdata[b];
      const int *va = (const int *) ra->data, *vb = (const int *) rb->data;
      for (guint i = 0; i < ra->len; i += 2)
        for (guint j = 0; j < rb->len; j += 2) {
          double dx = (va[i] - vb[j]) * sx, dy = (va[i + 1] - vb[j + 1]) * sy;
          best = MAX(best, dx * dx + dy * dy);
        }
    }
  return sqrt(best);
}

static int cmp_lesion(gconstpointer a, gconstpointer b) {
  const EosinLesion *x = a, *y = b;
  if (x->probability != y->probability)
    return x->probability > y->probability ? -1 : 1;
  return x->y != y->y ? (x->y < y->y ? -1 : 1) : (x->x < y->x ? -1 : x->x > y->x);
}

static int cmp_desc(const void *a, const void *b) {
  float x = *(const float *) a, y = *(const float *) b;
  return (x < y) - (x > y);
}

const char *_eosin_node_category_name(double extent_um) {
  /* CAMELYON17 / AJCC: macro > 2 mm, micro > 0.2 mm, else isolated tumour cells */
  return extent_um > 2000 ? "macro" : extent_um > 200 ? "micro" : "itc";
}

/* Channel @channel of @g as a single-channel grid, averaged over a square
 * window of @side cells (odd) centred on each cell. Empty (NaN) cells are
 * left out of the means and stay empty, so glass never dilutes a lesion at
 * the tissue's edge. Uses summed-area tables: O(cells) whatever the side. */
static float *box_mean(const EosinGrid *g, int channel, int side) {
  int W = g->width, H = g->height, C = g->n_channels, r = side / 2;
  size_t n = (size_t) W * H;
  float *v = g_new(float, n);
  g_autofree double *sum = g_new0(double, (size_t) (W + 1) * (H + 1));
  g_autofree int *cnt = g_new0(int, (size_t) (W + 1) * (H + 1));
#define S(x, y) ((size_t) (y) * (W + 1) + (x))
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      float a = g->values[((size_t) y * W + x) * C + channel];
      bool ok = !isnan(a);
      sum[S(x + 1, y + 1)] = sum[S(x, y + 1)] + sum[S(x + 1, y)] - sum[S(x, y)] + (ok ? a : 0);
      cnt[S(x + 1, y + 1)] = cnt[S(x, y + 1)] + cnt[S(x + 1, y)] - cnt[S(x, y)] + ok;
    }
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      size_t i = (size_t) y * W + x;
      if (isnan(g->values[i * C + channel]) || side <= 1) {
        v[i] = g->values[i * C + channel];
        continue;
      }
      int x0 = MAX(0, x - r), y0 = MAX(0, y - r), x1 = MIN(W, x + r + 1), y1 = MIN(H, y + r + 1);
      double s = sum[S(x1, y1)] - sum[S(x0, y1)] - sum[S(x1, y0)] + sum[S(x0, y0)];
      int c = cnt[S(x1, y1)] - cnt[S(x0, y1)] - cnt[S(x1, y0)] + cnt[S(x0, y0)];
      v[i] = (float) (s / c);
    }
#undef S
  return v;
}

/* What a lesion candidate is made of: its cells, their bounding box and
 * its peak, the highest cell. */
typedef struct {
  int cells;
  int x0, y0, x1, y1;
  size_t best;
} Component;

/* The components 1..@n of @label on the single-channel grid @g, index 0
 * unused; caller frees. One raster scan: a component's first cell is its
 * first peak, and a later cell replaces the peak only when higher, so
 * ties go to the first cell in raster order, the same on every run. */
static Component *components(const EosinGrid *g, const int *label, int n) {
  int W = g->width, H = g->height;
  Component *comp = g_new(Component, (size_t) n + 1);
  for (int id = 0; id <= n; id++)
    comp[id] = (Component){0, W, H, -1, -1, SIZE_MAX};
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      size_t c = (size_t) y * W + x;
      if (!label[c])
        continue;
      Component *k = &comp[label[c]];
      k->cells++;
      k->x0 = MIN(k->x0, x), k->x1 = MAX(k->x1, x), k->y0 = MIN(k->y0, y), k->y1 = MAX(k->y1, y);
      if (k->best == SIZE_MAX || g->values[c] > g->values[k->best])
        k->best = c;
    }
  return comp;
}

bool _eosin_lesions_find(const EosinGrid *grid, int channel, const EosinLesionParams *p,
                         double mpp_x, double mpp_y, EosinLesionSet *out, GError **err) {
  memset(out, 0, sizeof *out);
  if (channel < 0 || channel >= grid->n_channels) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "lesions: channel %d of %d", channel,
                grid->n_channels);
    return false;
  }
  /* the rest works on the (smoothed) channel alone */
  int side = (int) lround(p->smooth_um / (grid->cell_x * mpp_x));
  side = side <= 1 ? 1 : side | 1;
  out->smooth_cells = side;
  g_autofree float *smoothed = box_mean(grid, channel, side);
  EosinGrid one = *grid;
  one.n_channels = 1;
  one.values = smoothed;
  const EosinGrid *g = &one;
  channel = 0;
  int W = g->width, H = g->height, C = 1;
  size_t n = (size_t) W * H;
  out->origin_x = g->origin_x, out->origin_y = g->origin_y;
  out->cell_x = g->cell_x, out->cell_y = g->cell_y;
  out->threshold = p->threshold;

  /* slide score: the highest cell, or the mean of the k highest */
  g_autofree float *vals = g_new(float, n);
  size_t nv = 0;
  for (size_t i = 0; i < n; i++)
    if (!isnan(g->values[i * C + channel]))
      vals[nv++] = g->values[i * C + channel];
  int k = p->top_k > 0 ? p->top_k : 1;
  if (nv) {
    qsort(vals, nv, sizeof *vals, cmp_desc);
    double s = 0;
    int m = (int) MIN((size_t) k, nv);
    for (int i = 0; i < m; i++)
      s += vals[i];
    out->slide_score = s / m;
  }

  /* 8-connected components of the cells at or above the threshold, numbered
   * in raster order by the cells/ labeller */
  g_autofree uint8_t *bin = g_new(uint8_t, n);
  for (size_t i = 0; i < n; i++) {
    float v = g->values[i * C + channel];
    bin[i] = !isnan(v) && v >= p->threshold;
  }
  g_autofree int *label = g_new(int, n);
  int n_labels = _eosin_label_components(bin, W, H, true, label);
  g_autofree Component *comp = components(g, label, n_labels);
  double px_um2 = g->cell_x * mpp_x * g->cell_y * mpp_y;
  out->lesions = g_array_new(FALSE, TRUE, sizeof(EosinLesion));
  for (int id = 1; id <= n_labels; id++) {
    const Component *cc = &comp[id];
    double area = cc->cells * px_um2;
    if (area < p->min_area_um2)
      continue;
    EosinLesion l = {
        .probability = g->values[cc->best * C + channel],
        .x = g->origin_x + ((double) (cc->best % W) + 0.5) * g->cell_x,
        .y = g->origin_y + ((double) (cc->best / W) + 0.5) * g->cell_y,
        .area_um2 = area,
        .cells = cc->cells,
        .rings = _eosin_trace_rings(label, W, H, id, cc->x0, cc->y0, cc->x1, cc->y1),
    };
    l.extent_um = max_extent(l.rings, g->cell_x * mpp_x, g->cell_y * mpp_y);
    g_array_append_val(out->lesions, l);
  }
  g_array_sort(out->lesions, cmp_lesion);
  return true;
}

/* level-0 coordinate @v clipped to [@lo, @hi] (no clip when @hi <= @lo) */
static double clip(double v, double lo, double hi) {
  return hi > lo ? CLAMP(v, lo, hi) : v;
}

/* level-0 coordinates of grid vertex (x, y), inside the slide: an outline
 * traced on the grid of tiles follows the last tiles past the slide's
 * right and bottom edges, where there is no tissue to outline */
static double vx0(const EosinLesionSet *s, int x) {
  return clip(s->origin_x + x * s->cell_x, s->clip_x0, s->clip_x1);
}
static double vy0(const EosinLesionSet *s, int y) {
  return clip(s->origin_y + y * s->cell_y, s->clip_y0, s->clip_y1);
}

void _eosin_lesion_vertex(const EosinLesionSet *set, int gx, int gy, double *x, double *y) {
  *x = vx0(set, gx);
  *y = vy0(set, gy);
}

/* Is the point (px, py) (grid units) inside @ring? Even-odd ray casting. */
static bool ring_contains(const GArray *ring, double px, double py) {
  const int *v = (const int *) ring->data;
  int n = ring->len / 2;
  bool in = false;
  for (int i = 0, j = n - 1; i < n; j = i++) {
    double xi = v[2 * i], yi = v[2 * i + 1], xj = v[2 * j], yj = v[2 * j + 1];
    if ((yi > py) != (yj > py) && px < (xj - xi) * (py - yi) / (yj - yi) + xi)
      in = !in;
  }
  return in;
}

/* @ring in QuPath's coordinates: level-0 less (@ox, @oy) */
static void append_ring_json(GString *s, const EosinLesionSet *set, const GArray *ring, double ox,
                             double oy) {
  const int *v = (const int *) ring->data;
  int n = ring->len / 2;
  g_string_append_c(s, '[');
  /* GeoJSON rings repeat their first vertex at the end */
  for (int i = 0; i <= n; i++)
    g_string_append_printf(s, "%s[%.1f,%.1f]", i ? "," : "", vx0(set, v[2 * (i % n)]) - ox,
                           vy0(set, v[2 * (i % n) + 1]) - oy);
  g_string_append_c(s, ']');
}

/* One Feature per lesion: a Polygon (or MultiPolygon when its cells touch
 * only at corners), holes attached to the outer ring around them; outline
 * and peak in QuPath's coordinates (level-0 less @ox, @oy). */
static void append_feature(GString *s, const EosinLesionSet *set, const EosinLesion *l, int idx,
                           const char *class_name, double ox, double oy) {
  g_autoptr(GPtrArray) outer = g_ptr_array_new();
  for (guint r = 0; r < l->rings->len; r++)
    if (_eosin_ring_area2(l->rings->pdata[r]) > 0)
      g_ptr_array_add(outer, l->rings->pdata[r]);
  g_string_append_printf(s, "%s\n{\"type\":\"Feature\",\"id\":\"lesion-%d\",\"geometry\":{",
                         idx ? "," : "", idx + 1);
  g_string_append_printf(s, "\"type\":\"%s\",\"coordinates\":",
                         outer->len > 1 ? "MultiPolygon" : "Polygon");
  if (outer->len > 1)
    g_string_append_c(s, '[');
  for (guint o = 0; o < outer->len; o++) {
    g_string_append_printf(s, "%s[", o ? "," : "");
    append_ring_json(s, set, outer->pdata[o], ox, oy);
    for (guint r = 0; r < l->rings->len; r++) {
      const GArray *h = l->rings->pdata[r];
      if (_eosin_ring_area2(h) > 0)
        continue;
      /* a point a quarter cell to the right of the hole's first edge lies
       * in the lesion, next to the hole, on no boundary */
      const int *v = (const int *) h->data;
      double mx = (v[0] + v[2]) / 2.0, my = (v[1] + v[3]) / 2.0;
      double ex = v[2] - v[0], ey = v[3] - v[1], len = hypot(ex, ey);
      double px = mx - 0.25 * ey / len, py = my + 0.25 * ex / len;
      if (outer->len == 1 || ring_contains(outer->pdata[o], px, py)) {
        g_string_append_c(s, ',');
        append_ring_json(s, set, h, ox, oy);
      }
    }
    g_string_append_c(s, ']');
  }
  if (outer->len > 1)
    g_string_append_c(s, ']');
  g_string_append_printf(
      s,
      "},\"properties\":{\"objectType\":\"annotation\",\"name\":\"lesion %d\","
      "\"classification\":{\"name\":\"%s\",\"color\":[220,30,30]},\"isLocked\":false,"
      "\"measurements\":{\"probability\":%.6f,\"area_um2\":%.1f,\"extent_um\":%.1f,"
      "\"peak_x\":%.1f,\"peak_y\":%.1f}}}",
      idx + 1, class_name, l->probability, l->area_um2, l->extent_um, l->x - ox, l->y - oy);
}

void _eosin_lesions_clip(EosinLesionSet *set, const EosinSlideInfo *info) {
  set->clip_x0 = (double) info->bounds_x, set->clip_y0 = (double) info->bounds_y;
  set->clip_x1 = (double) (info->bounds_x + info->bounds_w);
  set->clip_y1 = (double) (info->bounds_y + info->bounds_h);
  for (guint i = 0; i < set->lesions->len; i++) {
    EosinLesion *l = &g_array_index(set->lesions, EosinLesion, i);
    l->x = clip(l->x, set->clip_x0, set->clip_x1 - 1);
    l->y = clip(l->y, set->clip_y0, set->clip_y1 - 1);
  }
}

bool _eosin_lesions_write(const EosinLesionSet *set, const char *dir, const EosinSlideInfo *info,
                          const char *class_name, GError **err) {
  const char *slide = info->name;
  int64_t ox, oy;
  _eosin_qupath_origin(info, &ox, &oy);
  g_autoptr(GString) csv = g_string_new(NULL);
  g_autoptr(GString) geo = g_string_new("{\"type\":\"FeatureCollection\",\"features\":[");
  g_autoptr(GString) xml = g_string_new("<?xml version=\"1.0\"?>\n<ASAP_Annotations>\n"
                                        "  <Annotations>\n");
  g_autofree char *esc_class = g_markup_escape_text(class_name, -1);
  g_autofree char *esc_slide = g_markup_escape_text(slide, -1);
  int n_xml = 0;
  bool holes = false;
  for (guint i = 0; i < set->lesions->len; i++) {
    const EosinLesion *l = &g_array_index(set->lesions, EosinLesion, i);
    g_string_append_printf(csv, "%.6f,%.0f,%.0f\n", l->probability, l->x, l->y);
    append_feature(geo, set, l, i, class_name, (double) ox, (double) oy);
    for (guint r = 0; r < l->rings->len; r++) {
      const GArray *ring = l->rings->pdata[r];
      bool hole = _eosin_ring_area2(ring) < 0;
      holes |= hole;
      /* ASAP has no holes: CAMELYON's convention is an _2 / Exclusion
       * polygon inside the lesion, which the evaluation cuts out */
      g_string_append_printf(xml,
                             "    <Annotation Name=\"lesion %u%s (p=%.3f)\" Type=\"Polygon\" "
                             "PartOfGroup=\"%s\" Color=\"%s\">\n      <Coordinates>\n",
                             i + 1, hole ? " hole" : "", l->probability,
                             hole ? "Exclusion" : esc_class, hole ? "#64FE2E" : "#F4FA58");
      const int *v = (const int *) ring->data;
      for (guint k = 0; k < ring->len / 2; k++)
        g_string_append_printf(xml, "        <Coordinate Order=\"%u\" X=\"%.1f\" Y=\"%.1f\" />\n",
                               k, vx0(set, v[2 * k]), vy0(set, v[2 * k + 1]));
      g_string_append(xml, "      </Coordinates>\n    </Annotation>\n");
      n_xml++;
    }
  }
  g_string_append(geo, "\n]}\n");
  g_string_append_printf(xml,
                         "  </Annotations>\n  <AnnotationGroups>\n"
                         "    <Group Name=\"%s\" PartOfGroup=\"None\" Color=\"#F4FA58\">"
                         "<Attributes /></Group>\n",
                         esc_class);
  if (holes)
    g_string_append(xml, "    <Group Name=\"Exclusion\" PartOfGroup=\"None\" "
                         "Color=\"#64FE2E\"><Attributes /></Group>\n");
  g_string_append_printf(xml, "  </AnnotationGroups>\n</ASAP_Annotations>\n<!-- Eosin %s: %d "
                              "polygons of %u lesions on slide %s -->\n",
                         eosin_version(), n_xml, set->lesions->len, esc_slide);
  g_autofree char *p1 = g_build_filename(dir, "detections.csv", NULL);
  g_autofree char *p2 = g_build_filename(dir, "lesions.geojson", NULL);
  g_autofree char *p3 = g_build_filename(dir, "lesions.xml", NULL);
  return _eosin_write_atomic(p1, csv->str, csv->len, err) &&
         _eosin_write_atomic(p2, geo->str, geo->len, err) &&
         _eosin_write_atomic(p3, xml->str, xml->len, err);
}

void _eosin_lesions_json(const EosinLesionSet *set, const EosinLesionParams *p, JsonBuilder *b) {
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "slide_probability");
  _eosin_json_value(b, set->slide_score);
  json_builder_set_member_name(b, "slide_score_rule");
  g_autofree char *rule =
      p->top_k > 1 ? g_strdup_printf("mean of the %d highest cells", p->top_k)
                   : g_strdup("highest cell");
  if (set->smooth_cells > 1) {
    char *r = g_strdup_printf("%s of the heatmap averaged over %d x %d cells", rule,
                              set->smooth_cells, set->smooth_cells);
    g_free(rule);
    rule = r;
  } else {
    char *r = g_strconcat(rule, " of the heatmap", NULL);
    g_free(rule);
    rule = r;
  }
  json_builder_add_string_value(b, rule);
  json_builder_set_member_name(b, "smoothing_window_cells");
  json_builder_add_int_value(b, set->smooth_cells);
  json_builder_set_member_name(b, "threshold");
  _eosin_json_value(b, p->threshold);
  json_builder_set_member_name(b, "count");
  json_builder_add_int_value(b, set->lesions->len);
  json_builder_set_member_name(b, "lesions");
  json_builder_begin_array(b);
  for (guint i = 0; i < set->lesions->len; i++) {
    const EosinLesion *l = &g_array_index(set->lesions, EosinLesion, i);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "probability");
    _eosin_json_value(b, l->probability);
    json_builder_set_member_name(b, "x");
    _eosin_json_value(b, l->x);
    json_builder_set_member_name(b, "y");
    _eosin_json_value(b, l->y);
    json_builder_set_member_name(b, "area_um2");
    _eosin_json_value(b, l->area_um2);
    json_builder_set_member_name(b, "extent_um");
    _eosin_json_value(b, l->extent_um);
    json_builder_set_member_name(b, "category");
    json_builder_add_string_value(b, _eosin_node_category_name(l->extent_um));
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_end_object(b);
}
