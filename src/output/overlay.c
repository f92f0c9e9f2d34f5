/*
 * overlay.c — the stitched grid drawn as images that line up with
 * the slide: colour maps, the painter that draws any rectangle of the
 * cells at any scale (overlay.tif and heatmap.tif are painted tile by tile
 * in pyramid.c, so a 100k x 100k overlay costs no more memory than
 * a small one), preview.png over the thumbnail, and the check that a
 * written overlay re-opens in OpenSlide with the slide's size and µm/px.
 */
#include "eosin-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>
#include <math.h>

typedef struct {
  double at;
  uint8_t rgb[3];
} Stop;

/* Nine samples of matplotlib's perceptually uniform maps, linearly
 * interpolated to 256 entries. */
static const Stop VIRIDIS[] = {
    {0.000, {68, 1, 84}},     {0.125, {71, 44, 122}},  {0.250, {59, 81, 139}},
    {0.375, {44, 113, 142}},  {0.500, {33, 144, 141}}, {0.625, {39, 173, 129}},
    {0.750, {92, 200, 99}},   {0.875, {170, 220, 50}}, {1.000, {253, 231, 37}}};
static const Stop INFERNO[] = {
    {0.000, {0, 0, 4}},       {0.125, {31, 12, 72}},   {0.250, {85, 15, 109}},
    {0.375, {136, 34, 106}},  {0.500, {186, 54, 85}},  {0.625, {227, 89, 51}},
    {0.750, {249, 140, 10}},  {0.875, {249, 201, 50}}, {1.000, {252, 255, 164}}};

static void from_stops(const Stop *s, int n, EosinColormap *cm) {
  for (int i = 0; i < 256; i++) {
    double v = i / 255.0;
    int k = 0;
    while (k < n - 2 && v > s[k + 1].at)
      k++;
    double f = (v - s[k].at) / (s[k + 1].at - s[k].at);
    for (int c = 0; c < 3; c++)
      cm->lut[i][c] = (uint8_t) lround(s[k].rgb[c] + f * (s[k + 1].rgb[c] - s[k].rgb[c]));
  }
}

bool _eosin_colormap_get(const char *name, EosinColormap *cm, GError **err) {
  cm->name = name;
  if (!strcmp(name, "viridis")) {
    from_stops(VIRIDIS, G_N_ELEMENTS(VIRIDIS), cm);
  } else if (!strcmp(name, "inferno")) {
    from_stops(INFERNO, G_N_ELEMENTS(INFERNO), cm);
  } else if (!strcmp(name, "jet")) {
    for (int i = 0; i < 256; i++) {
      double v = i / 255.0;
      double rgb[3] = {1.5 - fabs(4 * v - 3), 1.5 - fabs(4 * v - 2), 1.5 - fabs(4 * v - 1)};
      for (int c = 0; c < 3; c++)
        cm->lut[i][c] = (uint8_t) lround(255 * CLAMP(rgb[c], 0, 1));
    }
  } else if (!strcmp(name, "gray")) {
    for (int i = 0; i < 256; i++)
      cm->lut[i][0] = cm->lut[i][1] = cm->lut[i][2] = (uint8_t) i;
  } else {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "unknown colour map '%s'", name);
    return false;
  }
  return true;
}

static double unit(double v, double vmin, double vmax) {
  return CLAMP((v - vmin) / (vmax - vmin), 0.0, 1.0);
}

uint8_t _eosin_overlay_opacity(double v, double vmin, double vmax, double alpha, double floor,
                               bool ramp) {
  if (isnan(v) || (!isnan(floor) && v < floor))
    return 0;
  if (!ramp)
    return (uint8_t) lround(255 * alpha);
  /* from a fifth of @alpha at the floor (or min) to @alpha at max: the
   * lowest cells drawn still show, the highest stand out */
  double lo = isnan(floor) ? vmin : MAX(floor, vmin);
  double t = vmax > lo ? CLAMP((v - lo) / (vmax - lo), 0.0, 1.0) : 1.0;
  return (uint8_t) lround(255 * alpha * (0.2 + 0.8 * t));
}

uint8_t *_eosin_grid_colorize(const EosinGrid *g, int channel, const EosinColormap *cm,
                              double vmin, double vmax, double alpha, double floor, bool ramp) {
  size_t cells = (size_t) g->width * g->height;
  uint8_t *out = g_malloc0(cells * 4);
  for (size_t c = 0; c < cells; c++) {
    float v = g->values[c * g->n_channels + channel];
    uint8_t a = _eosin_overlay_opacity(v, vmin, vmax, alpha, floor, ramp);
    if (!a)
      continue; /* transparent, as a cell no tile covers */
    int idx = (int) lround(255 * unit(v, vmin, vmax));
    memcpy(out + c * 4, cm->lut[idx], 3);
    out[c * 4 + 3] = a;
  }
  return out;
}

uint8_t *_eosin_grid_quantize(const EosinGrid *g, int channel, double vmin, double vmax) {
  size_t cells = (size_t) g->width * g->height;
  uint8_t *out = g_malloc0(cells);
  for (size_t c = 0; c < cells; c++) {
    float v = g->values[c * g->n_channels + channel];
    if (!isnan(v))
      out[c] = (uint8_t) (1 + lround(254 * unit(v, vmin, vmax)));
  }
  return out;
}

struct _EosinPaint {
  uint8_t *cells;
  int gw, gh, bands;
  double origin_x, origin_y, cell_x, cell_y;
  double clip_x0, clip_y0, clip_x1, clip_y1;
};

EosinPaint *_eosin_paint_new(const EosinGrid *g, const uint8_t *cells, int bands) {
  EosinPaint *p = g_new0(EosinPaint, 1);
  p->cells = g_memdup2(cells, (size_t) g->width * g->height * bands);
  p->gw = g->width, p->gh = g->height, p->bands = bands;
  p->origin_x = g->origin_x, p->origin_y = g->origin_y;
  p->cell_x = g->cell_x, p->cell_y = g->cell_y;
  p->clip_x0 = g->clip_x, p->clip_y0 = g->clip_y;
  p->clip_x1 = g->clip_x + g->clip_w, p->clip_y1 = g->clip_y + g->clip_h;
  return p;
}

void _eosin_paint_free(EosinPaint *p) {
  if (!p)
    return;
  g_free(p->cells);
  g_free(p);
}

int _eosin_paint_bands(const EosinPaint *p) {
  return p->bands;
}

/* The cell under the centre of output pixel @i along one axis, or -1. */
static int cell_of(int i, double scale, double origin, double cell, double lo, double hi,
                   int n) {
  double l0 = (i + 0.5) * scale;
  if (l0 < lo || l0 >= hi)
    return -1;
  int c = (int) floor((l0 - origin) / cell);
  return c >= 0 && c < n ? c : -1;
}

/* Fills @n pixels of @bands bytes at @dst with @px by doubling copies. */
static void fill_run(uint8_t *dst, const uint8_t *px, int bands, int n) {
  size_t total = (size_t) n * bands, done = bands;
  memcpy(dst, px, bands);
  while (done < total) {
    size_t step = MIN(done, total - done);
    memcpy(dst + done, dst, step);
    done += step;
  }
}

int _eosin_paint_cell(const EosinPaint *p, int axis, double scale, int i) {
  return axis == 0 ? cell_of(i, scale, p->origin_x, p->cell_x, p->clip_x0, p->clip_x1, p->gw)
                   : cell_of(i, scale, p->origin_y, p->cell_y, p->clip_y0, p->clip_y1, p->gh);
}

void _eosin_paint_runs(const EosinPaint *p, int axis, double scale, int start, int valid,
                       int len, EosinPaintRuns *out) {
  int n = 0;
  for (int i = 0; i < len; i++) {
    int c = i < valid ? _eosin_paint_cell(p, axis, scale, start + i) : -1;
    if (n && out->cell[n - 1] == c) {
      out->len[n - 1]++;
      continue;
    }
    if (n == EOSIN_PAINT_MAX_RUNS) {
      out->n = -1;
      return;
    }
    out->cell[n] = c, out->len[n] = 1, n++;
  }
  out->n = n;
}

/* Appends @v as two bytes (tile sides and run counts are < 65536). */
static void key_u16(GByteArray *key, int v) {
  uint8_t b[2] = {(uint8_t) v, (uint8_t) (v >> 8)};
  g_byte_array_append(key, b, 2);
}

bool _eosin_paint_tile_key(const EosinPaint *p, const EosinPaintRuns *xr,
                           const EosinPaintRuns *yr, GByteArray *key) {
  if (xr->n < 0 || yr->n < 0)
    return false;
  int nx = xr->n, ny = yr->n, b = p->bands;
  int lx[EOSIN_PAINT_MAX_RUNS], ly[EOSIN_PAINT_MAX_RUNS];
  memcpy(lx, xr->len, sizeof(int) * nx);
  memcpy(ly, yr->len, sizeof(int) * ny);
  static const uint8_t empty[4] = {0, 0, 0, 0};
  /* the value of each (row run, column run) block */
  uint8_t v[EOSIN_PAINT_MAX_RUNS * EOSIN_PAINT_MAX_RUNS * 4];
  for (int j = 0; j < ny; j++)
    for (int i = 0; i < nx; i++) {
      const uint8_t *src = xr->cell[i] < 0 || yr->cell[j] < 0
                               ? empty
                               : p->cells + ((size_t) yr->cell[j] * p->gw + xr->cell[i]) * b;
      memcpy(v + ((size_t) j * nx + i) * b, src, b);
    }
  /* merge neighbouring column runs equal in every row, then row runs equal
   * in every column: what is left changes exactly where the pixels do, so
   * two tiles of equal pixels get equal keys however their cells lie */
  int mx = 0;
  for (int i = 0; i < nx; i++) {
    bool same = mx > 0;
    for (int j = 0; same && j < ny; j++)
      same = !memcmp(v + ((size_t) j * nx + i) * b, v + ((size_t) j * nx + mx - 1) * b, b);
    if (same) {
      lx[mx - 1] += lx[i];
      continue;
    }
    for (int j = 0; j < ny; j++)
      memmove(v + ((size_t) j * nx + mx) * b, v + ((size_t) j * nx + i) * b, b);
    lx[mx++] = lx[i];
  }
  int my = 0;
  for (int j = 0; j < ny; j++) {
    if (my > 0 && !memcmp(v + (size_t) j * nx * b, v + (size_t) (my - 1) * nx * b,
                          (size_t) mx * b)) {
      ly[my - 1] += ly[j];
      continue;
    }
    memmove(v + (size_t) my * nx * b, v + (size_t) j * nx * b, (size_t) mx * b);
    ly[my++] = ly[j];
  }
  g_byte_array_append(key, (const uint8_t *) "L", 1);
  key_u16(key, mx);
  for (int i = 0; i < mx; i++)
    key_u16(key, lx[i]);
  key_u16(key, my);
  for (int j = 0; j < my; j++)
    key_u16(key, ly[j]);
  for (int j = 0; j < my; j++)
    g_byte_array_append(key, v + (size_t) j * nx * b, (guint) (mx * b));
  return true;
}

/* Cells are large constant rectangles, so each row is a few runs of one
 * colour and consecutive rows in one cell row are copies. */
void _eosin_paint_rect(const EosinPaint *p, double scale_x, double scale_y, int left, int top,
                       int w, int h, uint8_t *dst, size_t stride) {
  size_t row_bytes = (size_t) w * p->bands;
  g_autofree int *cx = g_new(int, MAX(w, 1));
  for (int x = 0; x < w; x++)
    cx[x] = cell_of(left + x, scale_x, p->origin_x, p->cell_x, p->clip_x0, p->clip_x1, p->gw);
  static const uint8_t empty[4] = {0, 0, 0, 0};
  int prev_cy = -2;
  uint8_t *prev_row = NULL;
  for (int y = 0; y < h; y++) {
    uint8_t *row = dst + (size_t) y * stride;
    int cy = cell_of(top + y, scale_y, p->origin_y, p->cell_y, p->clip_y0, p->clip_y1, p->gh);
    if (prev_row && cy == prev_cy) {
      memcpy(row, prev_row, row_bytes);
    } else if (cy < 0) {
      memset(row, 0, row_bytes);
    } else {
      const uint8_t *src = p->cells + (size_t) cy * p->gw * p->bands;
      for (int x = 0; x < w;) {
        int start = x, c = cx[x];
        while (x < w && cx[x] == c)
          x++;
        fill_run(row + (size_t) start * p->bands, c < 0 ? empty : src + (size_t) c * p->bands,
                 p->bands, x - start);
      }
    }
    prev_cy = cy;
    prev_row = row;
  }
}

typedef struct {
  EosinPaint *paint;
  double scale_x, scale_y;
} PaintImage;

static void paint_image_free(gpointer data) {
  PaintImage *pi = data;
  _eosin_paint_free(pi->paint);
  g_free(pi);
}

static int paint_generate(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop) {
  const PaintImage *pi = a;
  const VipsRect *r = &out->valid;
  _eosin_paint_rect(pi->paint, pi->scale_x, pi->scale_y, r->left, r->top, r->width, r->height,
                    VIPS_REGION_ADDR(out, r->left, r->top), VIPS_REGION_LSKIP(out));
  return 0;
}

VipsImage *_eosin_grid_image(const EosinGrid *g, const uint8_t *cells, int bands, int width,
                             int height, double scale_x, double scale_y) {
  PaintImage *pi = g_new0(PaintImage, 1);
  pi->paint = _eosin_paint_new(g, cells, bands);
  pi->scale_x = scale_x, pi->scale_y = scale_y;
  VipsImage *img = vips_image_new();
  vips_image_init_fields(img, width, height, bands, VIPS_FORMAT_UCHAR, VIPS_CODING_NONE,
                         bands >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W, 1.0,
                         1.0);
  g_object_set_data_full(G_OBJECT(img), "eosin-paint", pi, paint_image_free);
  if (vips_image_pipelinev(img, VIPS_DEMAND_STYLE_ANY, NULL) ||
      vips_image_generate(img, NULL, paint_generate, NULL, pi, NULL)) {
    g_object_unref(img);
    return NULL;
  }
  return img;
}

bool _eosin_verify_overlay(const char *path, const EosinSlideInfo *info, GError **err) {
  g_autoptr(GError) oerr = NULL;
  g_autoptr(EosinSlide) ov = eosin_slide_open(path, 0, &oerr);
  if (!ov) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_VERIFY, "verify %s: does not re-open: %s", path,
                oerr->message);
    return false;
  }
  const EosinSlideInfo *o = eosin_slide_get_info(ov);
  if (strcmp(o->backend, "openslide") != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_VERIFY,
                "verify %s: OpenSlide does not read it (opened by %s)", path, o->backend);
    return false;
  }
  if (o->width != info->width || o->height != info->height) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_VERIFY,
                "verify %s: size %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                " differs from the slide's %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
                path, o->width, o->height, info->width, info->height);
    return false;
  }
  /* TIFF stores the resolution as a 32-bit rational: allow its rounding */
  if (fabs(o->mpp_x / info->mpp_x - 1) > 1e-3 || fabs(o->mpp_y / info->mpp_y - 1) > 1e-3) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_VERIFY,
                "verify %s: %g x %g µm/px differs from the slide's %g x %g", path, o->mpp_x,
                o->mpp_y, info->mpp_x, info->mpp_y);
    return false;
  }
  return true;
}

uint8_t *_eosin_preview_rgb(const EosinThumbnail *thumb, const EosinGrid *grid,
                            const uint8_t *rgba_cells, GError **err) {
  g_autoptr(VipsImage) base = vips_image_new_from_memory(
      thumb->rgb, (size_t) thumb->width * thumb->height * 3, thumb->width, thumb->height, 3,
      VIPS_FORMAT_UCHAR);
  g_autoptr(VipsImage) over = _eosin_grid_image(grid, rgba_cells, 4, thumb->width,
                                                thumb->height, thumb->scale_x, thumb->scale_y);
  VipsImage *comp = NULL, *flat = NULL, *u8 = NULL;
  if (!base || !over || vips_composite2(base, over, &comp, VIPS_BLEND_MODE_OVER, NULL)) {
    _eosin_set_vips_error(err, "preview.png");
    return NULL;
  }
  g_autoptr(VipsImage) compp = comp;
  if (vips_flatten(comp, &flat, NULL)) {
    _eosin_set_vips_error(err, "preview.png");
    return NULL;
  }
  g_autoptr(VipsImage) flatp = flat;
  if (vips_cast_uchar(flat, &u8, NULL)) {
    _eosin_set_vips_error(err, "preview.png");
    return NULL;
  }
  g_autoptr(VipsImage) u8p = u8;
  size_t len = 0;
  uint8_t *rgb = vips_image_write_to_memory(u8, &len);
  if (!rgb || len != (size_t) thumb->width * thumb->height * 3) {
    g_free(rgb);
    _eosin_set_vips_error(err, "preview.png");
    return NULL;
  }
  return rgb;
}
