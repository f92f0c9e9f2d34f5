/*
 * eval-plot.c — froc.png: the FROC curve (axes, grid at the six evaluation
 * rates, the curve as a step-free polyline through its points, the six
 * rates' sensitivities as dots, the score as text), drawn with cairo
 * (antialiased) and pango (text), so a lab can look at a run without
 * Python.
 */
#include "eval/eval-private.h"
#include "report/report.h"

#include <cairo.h>
#include <math.h>

#define W 720
#define H 480
#define L 70   /* margins */
#define R 20
#define T 40
#define B 60
#define XMAX 8.0

double _eosin_froc_px(double fps) {
  return L + MIN(fps, XMAX) / XMAX * (W - L - R);
}
double _eosin_froc_py(double sens) {
  return H - B - sens * (H - T - B);
}

/* @text in black at (x, y) (numbers and fixed words: no markup in them) */
static void label(cairo_t *cr, const char *text, double x, double y) {
  cairo_set_source_rgb(cr, 0, 0, 0);
  _eosin_cairo_text(cr, text, x, y, 10, false);
}

static void line(cairo_t *cr, double x0, double y0, double x1, double y1) {
  cairo_move_to(cr, x0, y0);
  cairo_line_to(cr, x1, y1);
  cairo_stroke(cr);
}

bool _eosin_froc_plot(const EosinFroc *f, double auc, const char *path, GError **err) {
  cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
  cairo_t *cr = cairo_create(s);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  /* the grid: the six rates the score averages, and quarters of sensitivity */
  cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
  cairo_set_line_width(cr, 1);
  for (int r = 0; r < 6; r++)
    line(cr, _eosin_froc_px(EOSIN_FROC_RATES[r]), T, _eosin_froc_px(EOSIN_FROC_RATES[r]), H - B);
  for (int k = 1; k <= 4; k++)
    line(cr, L, _eosin_froc_py(k / 4.0), W - R, _eosin_froc_py(k / 4.0));
  cairo_set_source_rgb(cr, 0, 0, 0);
  line(cr, L, H - B, W - R, H - B);
  line(cr, L, T, L, H - B);
  for (int r = 1; r < 6; r++) { /* 1/4 and 1/2 are 12 px apart: one label */
    g_autofree char *t = g_strdup_printf("%g", EOSIN_FROC_RATES[r]);
    label(cr, t, _eosin_froc_px(EOSIN_FROC_RATES[r]) - 6, H - B + 6);
  }
  for (int k = 0; k <= 4; k++) {
    g_autofree char *t = g_strdup_printf("%.2f", k / 4.0);
    label(cr, t, 28, _eosin_froc_py(k / 4.0) - 8);
  }
  /* the curve from (0, 0) in increasing FP order; past 8 FP it is clipped,
   * past the last point it stays flat, as numpy.interp reads it */
  cairo_set_source_rgb(cr, 31 / 255.0, 119 / 255.0, 180 / 255.0);
  cairo_set_line_width(cr, 2.5);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  for (int i = f->n - 1; i >= 0; i--) {
    double x0 = _eosin_froc_px(f->fps[i]), y0 = _eosin_froc_py(f->sensitivity[i]);
    double x1 = i ? _eosin_froc_px(f->fps[i - 1]) : _eosin_froc_px(XMAX);
    double y1 = i ? _eosin_froc_py(f->sensitivity[i - 1]) : y0;
    i == f->n - 1 ? cairo_move_to(cr, x0, y0) : cairo_line_to(cr, x0, y0);
    cairo_line_to(cr, x1, y1);
    if (i && f->fps[i - 1] > XMAX)
      break;
  }
  cairo_stroke(cr);
  for (int r = 0; r < 6; r++) {
    cairo_arc(cr, _eosin_froc_px(EOSIN_FROC_RATES[r]), _eosin_froc_py(f->at_rate[r]), 4.5, 0,
              2 * G_PI);
    cairo_fill(cr);
  }
  g_autofree char *title =
      isnan(auc) ? g_strdup_printf("FROC score %.4f", f->score)
                 : g_strdup_printf("FROC score %.4f   slide AUC %.4f", f->score, auc);
  label(cr, title, L + 140, 10);
  label(cr, "average false positives per slide", W / 2.0 - 110, H - 28);
  label(cr, "sensitivity", 4, T - 30);
  cairo_destroy(cr);
  bool ok = _eosin_cairo_write_png(s, path, err);
  cairo_surface_destroy(s);
  return ok;
}
