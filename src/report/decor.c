/*
 * decor.c — the legend band under preview.png (and the other images a
 * report shows): the slide's name, a colour bar of the overlay's colour map
 * with the channel, its units and range (and the floor below which nothing
 * is drawn), a scale bar in µm at the image's scale, and the lesions'
 * outlines numbered by rank over the image. Drawn with cairo (antialiased
 * lines) and pango (text), so a figure can go into a report as it is.
 */
#include "report/report.h"
#include "cells/eosin-cells.h"

#include <cairo.h>
#include <math.h>
#include <pango/pangocairo.h>
#include <vips/vips.h>

#define BAND_H 76
#define MARGIN 16

void _eosin_outline_free(gpointer o) {
  EosinOutline *ol = o;
  if (ol->xy)
    g_array_unref(ol->xy);
  g_free(ol);
}

/* The scale bar's length: 1, 2 or 5 x 10^k µm, the longest that is at
 * most a quarter of the image's width. */
static double nice_length(double max_um) {
  double p = pow(10, floor(log10(max_um)));
  for (double m = 5; m >= 1; m = m == 5 ? 2 : m == 2 ? 1 : 0)
    if (m * p <= max_um)
      return m * p;
  return p;
}

void _eosin_decor_layout(int w, int h, double um_per_px, EosinDecorLayout *out) {
  memset(out, 0, sizeof *out);
  out->band_y = h;
  out->height = h + BAND_H;
  out->bar_w = CLAMP(w / 3, 64, 256);
  out->bar_h = 14;
  out->bar_x = w - MARGIN - out->bar_w;
  out->bar_y = h + 30;
  if (um_per_px > 0) {
    out->scale_um = nice_length(w / 4.0 * um_per_px);
    out->scale_x0 = MARGIN;
    out->scale_x1 = MARGIN + (int) lround(out->scale_um / um_per_px);
    out->scale_y = h + 50;
  }
}

void _eosin_cairo_text(cairo_t *cr, const char *markup, double x, double y, int size,
                      bool right) {
  PangoLayout *l = pango_cairo_create_layout(cr);
  g_autofree char *font = g_strdup_printf("DejaVu Sans %d", size);
  PangoFontDescription *fd = pango_font_description_from_string(font);
  pango_layout_set_font_description(l, fd);
  pango_layout_set_markup(l, markup, -1);
  int tw, th;
  pango_layout_get_pixel_size(l, &tw, &th);
  cairo_move_to(cr, right ? x - tw : x, y);
  pango_cairo_show_layout(cr, l);
  pango_font_description_free(fd);
  g_object_unref(l);
}

static char *fmt_value(double v) {
  return g_strdup_printf("%g", fabs(v) < 1e-9 ? 0 : round(v * 1000) / 1000);
}

static void draw_colour_bar(cairo_t *cr, const EosinDecor *d, const EosinDecorLayout *L) {
  for (int i = 0; i < L->bar_w; i++) {
    double v = d->vmin + (d->vmax - d->vmin) * i / MAX(L->bar_w - 1, 1);
    int idx = (int) lround(255.0 * i / MAX(L->bar_w - 1, 1));
    bool hidden = !isnan(d->floor) && v < d->floor;
    /* below the floor: not drawn on the slide, so grey here */
    const uint8_t *c = d->cm->lut[idx];
    if (hidden)
      cairo_set_source_rgb(cr, 0.86, 0.86, 0.86);
    else
      cairo_set_source_rgb(cr, c[0] / 255.0, c[1] / 255.0, c[2] / 255.0);
    cairo_rectangle(cr, L->bar_x + i, L->bar_y, 1, L->bar_h);
    cairo_fill(cr);
  }
  cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, L->bar_x - 0.5, L->bar_y - 0.5, L->bar_w + 1, L->bar_h + 1);
  cairo_stroke(cr);
  g_autofree char *name = g_markup_escape_text(d->channel, -1);
  g_autofree char *head = d->units ? g_strdup_printf("<b>%s</b> (%s)", name, d->units)
                                   : g_strdup_printf("<b>%s</b>", name);
  _eosin_cairo_text(cr, head, L->bar_x, L->bar_y - 18, 9, false);
  g_autofree char *lo = fmt_value(d->vmin), *hi = fmt_value(d->vmax);
  _eosin_cairo_text(cr, lo, L->bar_x, L->bar_y + L->bar_h + 1, 8, false);
  _eosin_cairo_text(cr, hi, L->bar_x + L->bar_w, L->bar_y + L->bar_h + 1, 8, true);
  if (!isnan(d->floor) && d->floor > d->vmin && d->floor < d->vmax) {
    double fx = L->bar_x + (d->floor - d->vmin) / (d->vmax - d->vmin) * (L->bar_w - 1);
    g_autofree char *f = fmt_value(d->floor);
    g_autofree char *fl = g_strdup_printf("not drawn below %s", f);
    _eosin_cairo_text(cr, fl, fx, L->bar_y + L->bar_h + 1, 8, true);
  }
}

static void draw_scale_bar(cairo_t *cr, const EosinDecorLayout *L) {
  cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
  cairo_rectangle(cr, L->scale_x0, L->scale_y - 2, L->scale_x1 - L->scale_x0, 4);
  cairo_fill(cr);
  g_autofree char *label = L->scale_um >= 1000 ? g_strdup_printf("%g mm", L->scale_um / 1000)
                                               : g_strdup_printf("%g µm", L->scale_um);
  _eosin_cairo_text(cr, label, L->scale_x0, L->scale_y - 20, 9, false);
}

static void draw_outlines(cairo_t *cr, const EosinDecor *d) {
  for (guint i = 0; d->outlines && i < d->outlines->len; i++) {
    const EosinOutline *o = d->outlines->pdata[i];
    const double *xy = (const double *) o->xy->data;
    guint n = o->xy->len / 2;
    if (n < 2)
      continue;
    cairo_new_path(cr);
    for (guint k = 0; k < n; k++) {
      double x = xy[2 * k] / d->scale_x, y = xy[2 * k + 1] / d->scale_y;
      k ? cairo_line_to(cr, x, y) : cairo_move_to(cr, x, y);
    }
    cairo_close_path(cr);
    /* a dark halo under a cyan line: visible on pink tissue and on the map */
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_source_rgb(cr, 0.05, 0.05, 0.2);
    cairo_set_line_width(cr, 4);
    cairo_stroke_preserve(cr);
    cairo_set_source_rgb(cr, 0.0, 0.9, 1.0);
    cairo_set_line_width(cr, 2);
    cairo_stroke(cr);
    if (o->number > 0) {
      g_autofree char *num = g_strdup_printf("<b>%d</b>", o->number);
      /* at the ring's first vertex (the tracer starts at its top-left) */
      double cx = MAX(xy[0] / d->scale_x, 10), cy = MAX(xy[1] / d->scale_y - 12, 10);
      cairo_arc(cr, cx, cy, 9, 0, 2 * G_PI);
      cairo_set_source_rgb(cr, 0.05, 0.05, 0.2);
      cairo_fill(cr);
      cairo_set_source_rgb(cr, 1, 1, 1);
      _eosin_cairo_text(cr, num, cx - (o->number >= 10 ? 7 : 4), cy - 8, 9, false);
    }
  }
}

void _eosin_html_append(GString *s, const char *text) {
  g_autofree char *e = g_markup_escape_text(text ? text : "", -1);
  g_string_append(s, e);
}

bool _eosin_cairo_write_png(cairo_surface_t *s, const char *path, GError **err) {
  /* encoded by libvips at zlib level 1, as the preview always was: cairo's
   * own PNG writer (zlib's default level) took 0.3 s more a slide */
  cairo_surface_flush(s);
  int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
  int stride = cairo_image_surface_get_stride(s);
  const uint8_t *px = cairo_image_surface_get_data(s);
  if (!px) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "%s: cairo: no image data", path);
    return false;
  }
  g_autofree uint8_t *rgb = g_malloc((size_t) w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      uint32_t v = ((const uint32_t *) (px + (size_t) y * stride))[x];
      uint8_t *o = rgb + 3 * ((size_t) y * w + x);
      o[0] = (uint8_t) (v >> 16), o[1] = (uint8_t) (v >> 8), o[2] = (uint8_t) v;
    }
  g_autoptr(VipsImage) img =
      vips_image_new_from_memory(rgb, (size_t) w * h * 3, w, h, 3, VIPS_FORMAT_UCHAR);
  void *buf = NULL;
  size_t len = 0;
  if (!img || vips_pngsave_buffer(img, &buf, &len, "compression", 1, "filter",
                                  VIPS_FOREIGN_PNG_FILTER_ALL, NULL)) {
    _eosin_set_vips_error(err, path);
    return false;
  }
  bool ok = _eosin_write_atomic(path, buf, len, err);
  g_free(buf);
  return ok;
}

bool _eosin_decor_png(const uint8_t *rgb, int w, int h, const EosinDecor *d, const char *path,
                      GError **err) {
  EosinDecorLayout L;
  _eosin_decor_layout(w, h, d->um_per_px, &L);
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, L.height);
  if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "%s: cairo: %s", path,
                cairo_status_to_string(cairo_surface_status(s)));
    cairo_surface_destroy(s);
    return false;
  }
  cairo_surface_flush(s);
  uint8_t *px = cairo_image_surface_get_data(s);
  int stride = cairo_image_surface_get_stride(s);
  for (int y = 0; y < L.height; y++)
    for (int x = 0; x < w; x++) {
      uint32_t *p = (uint32_t *) (px + (size_t) y * stride) + x;
      const uint8_t *c = y < h ? rgb + 3 * ((size_t) y * w + x) : NULL;
      *p = c ? (0xffu << 24) | ((uint32_t) c[0] << 16) | ((uint32_t) c[1] << 8) | c[2]
             : 0xffffffffu;
    }
  cairo_surface_mark_dirty(s);
  cairo_t *cr = cairo_create(s);
  draw_outlines(cr, d);
  cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
  cairo_rectangle(cr, 0, h, w, 1);
  cairo_fill(cr);
  if (d->title) {
    g_autofree char *t = g_markup_escape_text(d->title, -1);
    g_autofree char *tm = g_strdup_printf("<b>%s</b>", t);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    _eosin_cairo_text(cr, tm, MARGIN, h + 6, 10, false);
  }
  if (d->channel && d->cm)
    draw_colour_bar(cr, d, &L);
  if (d->um_per_px > 0)
    draw_scale_bar(cr, &L);
  cairo_destroy(cr);
  bool ok = _eosin_cairo_write_png(s, path, err);
  cairo_surface_destroy(s);
  return ok;
}

const char *_eosin_channel_units(const EosinConfig *cfg, double vmin, double vmax) {
  const char *a = cfg->model.present ? cfg->model.activation : NULL;
  if (a && (!strcmp(a, "softmax") || !strcmp(a, "sigmoid")) && vmin == 0 && vmax == 1)
    return "probability";
  return NULL;
}

GPtrArray *_eosin_lesion_outlines(const EosinLesionSet *set) {
  GPtrArray *out = g_ptr_array_new_with_free_func(_eosin_outline_free);
  for (guint i = 0; set && set->lesions && i < set->lesions->len; i++) {
    const EosinLesion *l = &g_array_index(set->lesions, EosinLesion, i);
    bool numbered = false;
    for (guint r = 0; r < l->rings->len; r++) {
      const GArray *ring = l->rings->pdata[r];
      if (_eosin_ring_area2(ring) <= 0)
        continue; /* holes are not outlined: the lesion's edge is */
      EosinOutline *o = g_new0(EosinOutline, 1);
      o->xy = g_array_sized_new(FALSE, FALSE, sizeof(double), ring->len);
      o->number = numbered ? 0 : (int) i + 1; /* the lesion's first outer ring */
      numbered = true;
      const int *v = (const int *) ring->data;
      for (guint k = 0; k < ring->len / 2; k++) {
        double x, y;
        _eosin_lesion_vertex(set, v[2 * k], v[2 * k + 1], &x, &y);
        g_array_append_val(o->xy, x);
        g_array_append_val(o->xy, y);
      }
      g_ptr_array_add(out, o);
    }
  }
  return out;
}
