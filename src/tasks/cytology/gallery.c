/*
 * gallery.c — the cytology task's files: gallery.png (the most
 * suspicious cells side by side, as the cleared screening systems show a
 * cytologist, each labelled so it can be found on the slide),
 * suspicious-cells.geojson (QuPath detections) and cells.csv.
 */
#include "tasks/cytology/cytology-private.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

#define G_COLS 6
#define G_SCALE 2      /* crops are shown at twice their pixels */
#define G_PAD 8
#define G_TEXT_H 46    /* three lines of label under each crop */
#define G_TITLE_H 28

/* Draws the 1-band text mask @t (0..255) in black on @canvas at (x, y). */
static void blit_text(uint8_t *canvas, int W, int H, VipsImage *t, int x, int y) {
  size_t len;
  g_autofree uint8_t *m = vips_image_write_to_memory(t, &len);
  if (!m || len < (size_t) t->Xsize * t->Ysize)
    return;
  for (int j = 0; j < t->Ysize && y + j < H; j++)
    for (int i = 0; i < t->Xsize && x + i < W; i++) {
      int a = m[(size_t) j * t->Xsize + i];
      uint8_t *p = canvas + 3 * ((size_t) (y + j) * W + x + i);
      for (int c = 0; c < 3; c++)
        p[c] = (uint8_t) (p[c] * (255 - a) / 255);
    }
}

static bool draw_text(uint8_t *canvas, int W, int H, const char *markup, int x, int y,
                      int width, GError **err) {
  VipsImage *t = NULL;
  if (vips_text(&t, markup, "font", "DejaVu Sans 8", "width", width, "dpi", 96, NULL)) {
    _eosin_set_vips_error(err, "gallery.png: drawing a label");
    return false;
  }
  blit_text(canvas, W, H, t, x, y);
  g_object_unref(t);
  return true;
}

bool _eosin_cyto_gallery_write(const char *path, const EosinCytoCrop *crops, size_t n,
                               char **class_names, const char *slide_name, GError **err) {
  int side = n ? crops[0].side : 64;
  int cw = side * G_SCALE + G_PAD, ch = side * G_SCALE + G_TEXT_H + G_PAD;
  int rows = n ? (int) ((n + G_COLS - 1) / G_COLS) : 1;
  int W = G_COLS * cw + G_PAD, H = G_TITLE_H + rows * ch + G_PAD;
  g_autofree uint8_t *canvas = g_malloc((size_t) W * H * 3);
  memset(canvas, 255, (size_t) W * H * 3);
  g_autofree char *esc = g_markup_escape_text(slide_name, -1);
  g_autofree char *title =
      n ? g_strdup_printf("<b>%s</b>: the %zu most suspicious cells, one per place (the "
                          "cell model's abnormal probability x its tile's; x, y in level-0 "
                          "pixels)",
                          esc, n)
        : g_strdup_printf("<b>%s</b>: no cells were found", esc);
  if (!draw_text(canvas, W, H, title, G_PAD, 6, W - 2 * G_PAD, err))
    return false;
  for (size_t k = 0; k < n; k++) {
    const EosinCytoCrop *c = &crops[k];
    int ox = G_PAD + (int) (k % G_COLS) * cw, oy = G_TITLE_H + (int) (k / G_COLS) * ch;
    for (int y = 0; y < side * G_SCALE; y++)
      for (int x = 0; x < side * G_SCALE; x++) {
        const uint8_t *s = c->rgb + 3 * ((size_t) (y / G_SCALE) * c->side + x / G_SCALE);
        memcpy(canvas + 3 * ((size_t) (oy + y) * W + ox + x), s, 3);
      }
    /* a grey frame, red when the cell model calls it abnormal */
    bool abn = c->cell.p_abnormal >= 0.5f;
    for (int i = -1; i <= side * G_SCALE; i++)
      for (int e = 0; e < 4; e++) {
        int x = e < 2 ? i : (e == 2 ? -1 : side * G_SCALE);
        int y = e < 2 ? (e == 0 ? -1 : side * G_SCALE) : i;
        uint8_t *p = canvas + 3 * ((size_t) (oy + y) * W + ox + x);
        p[0] = abn ? 200 : 150, p[1] = abn ? 30 : 150, p[2] = abn ? 30 : 150;
      }
    g_autofree char *name = g_markup_escape_text(class_names[c->cell.cls], -1);
    g_autofree char *label = g_strdup_printf(
        "<b>#%zu</b> %s\n%.2f · abnormal %.2f\nx %.0f, y %.0f", k + 1, name, c->cell.p_class,
        c->cell.p_abnormal, c->cell.x, c->cell.y);
    if (!draw_text(canvas, W, H, label, ox, oy + side * G_SCALE + 3, cw - 2, err))
      return false;
  }
  g_autoptr(VipsImage) img =
      vips_image_new_from_memory(canvas, (size_t) W * H * 3, W, H, 3, VIPS_FORMAT_UCHAR);
  void *buf = NULL;
  size_t len = 0;
  if (!img || vips_pngsave_buffer(img, &buf, &len, "compression", 6, NULL)) {
    _eosin_set_vips_error(err, path);
    return false;
  }
  bool ok = _eosin_write_atomic(path, buf, len, err);
  g_free(buf);
  return ok;
}

bool _eosin_cyto_geojson_write(const char *path, const EosinSlideInfo *info,
                               const EosinCytoCell *cells, size_t n, double min_p,
                               size_t max_cells, double mpp, char **class_names,
                               size_t *written, GError **err) {
  int64_t ox, oy;
  _eosin_qupath_origin(info, &ox, &oy);
  EosinOutFile *o = _eosin_out_open(path, err);
  if (!o)
    return false;
  FILE *f = _eosin_out_stream(o);
  fputs("{\"type\":\"FeatureCollection\",\"features\":[", f);
  size_t k = 0;
  for (size_t i = 0; i < n && k < max_cells; i++) {
    const EosinCytoCell *c = &cells[i];
    if (c->p_abnormal < min_p)
      continue;
    /* the nucleus as a 16-gon of its area */
    double r = sqrt(c->nucleus_area_um2 / G_PI) / mpp;
    fprintf(f, "%s{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[[",
            k ? "," : "");
    for (int v = 0; v <= 16; v++) {
      double a = 2 * G_PI * (v % 16) / 16;
      fprintf(f, "%s[%.1f,%.1f]", v ? "," : "", c->x - ox + r * cos(a), c->y - oy + r * sin(a));
    }
    fprintf(f,
            "]]},\"properties\":{\"objectType\":\"detection\",\"isLocked\":false,"
            "\"classification\":{\"name\":\"%s\",\"colorRGB\":-3670016},"
            "\"measurements\":{\"rank\":%zu,\"abnormal probability\":%.4f,"
            "\"class probability\":%.4f,\"nucleus area um2\":%.1f,"
            "\"nucleus hematoxylin OD mean\":%.4f}}}",
            class_names[c->cls], k + 1, c->p_abnormal, c->p_class, c->nucleus_area_um2,
            c->hematoxylin);
    k++;
  }
  fputs("]}\n", f);
  if (!_eosin_out_close(o, true, err))
    return false;
  *written = k;
  return true;
}

bool _eosin_cyto_csv_write(const char *path, const EosinCytoCell *cells, size_t n,
                           char **class_names, GError **err) {
  EosinOutFile *o = _eosin_out_open(path, err);
  if (!o)
    return false;
  FILE *f = _eosin_out_stream(o);
  fputs("x,y,class,class_probability,abnormal_probability,nucleus_area_um2,"
        "nucleus_hematoxylin_od,tile\n",
        f);
  for (size_t i = 0; i < n; i++) {
    const EosinCytoCell *c = &cells[i];
    fprintf(f, "%.1f,%.1f,%s,%.4f,%.4f,%.2f,%.4f,%u\n", c->x, c->y, class_names[c->cls],
            c->p_class, c->p_abnormal, c->nucleus_area_um2, c->hematoxylin, c->tile);
  }
  return _eosin_out_close(o, true, err);
}
