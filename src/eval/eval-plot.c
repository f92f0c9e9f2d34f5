/*
 * eval-plot.c — froc.png: the FROC curve drawn with libvips (axes, grid at
 * the six evaluation rates, the curve as a step-free polyline through its
 * points, the score as text), so a lab can look at a run without Python.
 */
#include "eval/eval-private.h"

#include <math.h>

#define W 720
#define H 480
#define L 70   /* margins */
#define R 20
#define T 40
#define B 60
#define XMAX 8.0

static int px(double fps) {
  return L + (int) lround(MIN(fps, XMAX) / XMAX * (W - L - R));
}
static int py(double sens) {
  return H - B - (int) lround(sens * (H - T - B));
}

/* Draws @text at (x, y); text needs pango in libvips, so a failure only
 * loses the label. */
static void label(VipsImage *img, const char *text, int x, int y) {
  VipsImage *t = NULL;
  double ink[] = {0, 0, 0};
  if (!vips_text(&t, text, "dpi", 96, NULL)) {
    vips_draw_mask(img, ink, 3, t, x, y, NULL);  /* t: 0..255 glyph coverage */
    g_object_unref(t);
  }
  vips_error_clear();
}

bool _eosin_froc_plot(const EosinFroc *f, double auc, const char *path, GError **err) {
  if (!_eosin_vips_init(err))
    return false;
  g_autofree uint8_t *white = g_malloc((size_t) W * H * 3);
  memset(white, 255, (size_t) W * H * 3);
  VipsImage *mem = vips_image_new_from_memory(white, (size_t) W * H * 3, W, H, 3,
                                              VIPS_FORMAT_UCHAR);
  VipsImage *img = NULL;
  if (!mem || vips_copy(mem, &img, NULL) || vips_image_wio_input(img)) {
    if (mem)
      g_object_unref(mem);
    if (img)
      g_object_unref(img);
    _eosin_set_vips_error(err, "froc.png");
    return false;
  }
  g_object_unref(mem);
  double black[] = {0, 0, 0}, grey[] = {200, 200, 200}, blue[] = {31, 119, 180};
  for (int r = 0; r < 6; r++) {
    vips_draw_line(img, grey, 3, px(EOSIN_FROC_RATES[r]), T, px(EOSIN_FROC_RATES[r]), H - B,
                   NULL);
    if (r == 0)
      continue;  /* 1/4 and 1/2 are 12 px apart: one label */
    g_autofree char *t = g_strdup_printf("%g", EOSIN_FROC_RATES[r]);
    label(img, t, px(EOSIN_FROC_RATES[r]) - 8, H - B + 8);
  }
  for (int k = 1; k <= 4; k++)
    vips_draw_line(img, grey, 3, L, py(k / 4.0), W - R, py(k / 4.0), NULL);
  vips_draw_line(img, black, 3, L, H - B, W - R, H - B, NULL);
  vips_draw_line(img, black, 3, L, T, L, H - B, NULL);
  for (int k = 0; k <= 4; k++) {
    g_autofree char *t = g_strdup_printf("%.2f", k / 4.0);
    label(img, t, 20, py(k / 4.0) - 8);
  }
  /* the curve from (0, 0) in increasing FP order; past 8 FP it is clipped */
  for (int i = f->n - 1; i >= 0; i--) {
    int x0 = px(f->fps[i]), y0 = py(f->sensitivity[i]);
    /* past the last point the curve stays flat, as numpy.interp reads it */
    int x1 = i ? px(f->fps[i - 1]) : px(XMAX), y1 = i ? py(f->sensitivity[i - 1]) : y0;
    for (int d = -1; d <= 1; d++) {
      vips_draw_line(img, blue, 3, x0, y0 + d, x1, y1 + d, NULL);
      vips_draw_line(img, blue, 3, x0 + d, y0, x1 + d, y1, NULL);
    }
    if (i && f->fps[i - 1] > XMAX)
      break;
  }
  for (int r = 0; r < 6; r++)
    vips_draw_circle(img, blue, 3, px(EOSIN_FROC_RATES[r]), py(f->at_rate[r]), 4, "fill", TRUE,
                     NULL);
  g_autofree char *title =
      isnan(auc) ? g_strdup_printf("FROC score %.4f", f->score)
                 : g_strdup_printf("FROC score %.4f   slide AUC %.4f", f->score, auc);
  label(img, title, L + 140, 10);
  label(img, "average false positives per slide", W / 2 - 120, H - 28);
  label(img, "sensitivity", 4, T - 30);
  void *buf = NULL;
  size_t len = 0;
  bool ok = !vips_pngsave_buffer(img, &buf, &len, NULL);
  g_object_unref(img);
  if (!ok) {
    _eosin_set_vips_error(err, path);
    return false;
  }
  ok = _eosin_write_atomic(path, buf, len, err);
  g_free(buf);
  return ok;
}
