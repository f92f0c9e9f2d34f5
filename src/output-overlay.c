/*
 * output-overlay.c — the stitched grid drawn as images that line up with
 * the slide: overlay.tif (colour map + alpha, transparent where empty) and
 * heatmap.tif (8-bit values) at the slide's level-0 size and µm/px, as
 * tiled pyramidal BigTIFFs, and preview.png over the thumbnail. The level-0
 * images are lazy libvips images painted region by region from the cell
 * array, so a 100k x 100k overlay costs no more memory than a small one.
 * After writing, the overlay is re-opened with OpenSlide and checked.
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

uint8_t *_eosin_grid_colorize(const EosinGrid *g, int channel, const EosinColormap *cm,
                              double vmin, double vmax, double alpha) {
  size_t cells = (size_t) g->width * g->height;
  uint8_t *out = g_malloc0(cells * 4);
  uint8_t a = (uint8_t) lround(255 * alpha);
  for (size_t c = 0; c < cells; c++) {
    float v = g->values[c * g->n_channels + channel];
    if (isnan(v))
      continue;
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

typedef struct {
  uint8_t *cells;
  int gw, gh, bands;
  double origin_x, origin_y, cell_x, cell_y;
  double clip_x0, clip_y0, clip_x1, clip_y1;
  double scale_x, scale_y;
} Paint;

static void paint_free(gpointer data) {
  Paint *p = data;
  g_free(p->cells);
  g_free(p);
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
static void fill_run(VipsPel *dst, const uint8_t *px, int bands, int n) {
  size_t total = (size_t) n * bands, done = bands;
  memcpy(dst, px, bands);
  while (done < total) {
    size_t step = MIN(done, total - done);
    memcpy(dst + done, dst, step);
    done += step;
  }
}

/* Paints a region: cells are large constant rectangles, so each row is a
 * few runs of one colour and consecutive rows in one cell row are copies. */
static int paint_generate(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop) {
  const Paint *p = a;
  const VipsRect *r = &out->valid;
  size_t row_bytes = (size_t) r->width * p->bands;
  g_autofree int *cx = g_new(int, r->width);
  for (int x = 0; x < r->width; x++)
    cx[x] = cell_of(r->left + x, p->scale_x, p->origin_x, p->cell_x, p->clip_x0, p->clip_x1,
                    p->gw);
  static const uint8_t empty[4] = {0, 0, 0, 0};
  int prev_cy = -2;
  VipsPel *prev_row = NULL;
  for (int y = 0; y < r->height; y++) {
    VipsPel *row = VIPS_REGION_ADDR(out, r->left, r->top + y);
    int cy = cell_of(r->top + y, p->scale_y, p->origin_y, p->cell_y, p->clip_y0, p->clip_y1,
                     p->gh);
    if (prev_row && cy == prev_cy) {
      memcpy(row, prev_row, row_bytes);
    } else if (cy < 0) {
      memset(row, 0, row_bytes);
    } else {
      const uint8_t *src = p->cells + (size_t) cy * p->gw * p->bands;
      for (int x = 0; x < r->width;) {
        int start = x, c = cx[x];
        while (x < r->width && cx[x] == c)
          x++;
        fill_run(row + (size_t) start * p->bands, c < 0 ? empty : src + (size_t) c * p->bands,
                 p->bands, x - start);
      }
    }
    prev_cy = cy;
    prev_row = row;
  }
  return 0;
}

VipsImage *_eosin_grid_image(const EosinGrid *g, const uint8_t *cells, int bands, int width,
                             int height, double scale_x, double scale_y) {
  Paint *p = g_new0(Paint, 1);
  p->cells = g_memdup2(cells, (size_t) g->width * g->height * bands);
  p->gw = g->width, p->gh = g->height, p->bands = bands;
  p->origin_x = g->origin_x, p->origin_y = g->origin_y;
  p->cell_x = g->cell_x, p->cell_y = g->cell_y;
  p->clip_x0 = g->clip_x, p->clip_y0 = g->clip_y;
  p->clip_x1 = g->clip_x + g->clip_w, p->clip_y1 = g->clip_y + g->clip_h;
  p->scale_x = scale_x, p->scale_y = scale_y;
  VipsImage *img = vips_image_new();
  vips_image_init_fields(img, width, height, bands, VIPS_FORMAT_UCHAR, VIPS_CODING_NONE,
                         bands >= 3 ? VIPS_INTERPRETATION_sRGB : VIPS_INTERPRETATION_B_W, 1.0,
                         1.0);
  g_object_set_data_full(G_OBJECT(img), "eosin-paint", p, paint_free);
  if (vips_image_pipelinev(img, VIPS_DEMAND_STYLE_ANY, NULL) ||
      vips_image_generate(img, NULL, paint_generate, NULL, p, NULL)) {
    g_object_unref(img);
    return NULL;
  }
  return img;
}

/* libvips writes a pyramid through this target onto Eosin's own file, so
 * that no failed write is lost or crashes the run. libvips 8.14.1 (Debian
 * 12) lets some failed writes pass (a save that succeeds with tiles
 * missing), and when a pyramidal tiffsave does fail it frees the smaller
 * levels before closing them, a use-after-free (fixed in 8.14.3) that
 * crashed eosin and left its staging folder. Here libvips never sees a
 * failed write: the first error is kept and said after the save, later
 * writes are skipped but keep their offsets (libtiff reads back what it
 * wrote; a skipped part reads as zeros). A target without a file name also
 * makes libvips build the smaller levels in memory (compressed, a third of
 * the file at most) rather than in temporary files whose writes nobody
 * checks. */
typedef struct {
  int fd, error;
  gint64 pos, end;
} PyramidFile;

static gint64 pyramid_write(VipsTargetCustom *t, const void *data, gint64 len, PyramidFile *f) {
  for (gint64 done = 0; !f->error && done < len;) {
    ssize_t n = pwrite(f->fd, (const char *) data + done, len - done, f->pos + done);
    if (n > 0)
      done += n;
    else if (n == 0 || errno != EINTR)
      f->error = n == 0 ? EIO : errno;
  }
  f->pos += len;
  f->end = MAX(f->end, f->pos);
  return len;
}

static gint64 pyramid_read(VipsTargetCustom *t, void *buf, gint64 len, PyramidFile *f) {
  gint64 want = CLAMP(f->end - f->pos, 0, len), got = 0;
  while (got < want) {
    ssize_t n = pread(f->fd, (char *) buf + got, want - got, f->pos + got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && !f->error)
      f->error = errno;
    if (n <= 0)
      break;
    got += n;
  }
  memset((char *) buf + got, 0, want - got);
  f->pos += want;
  return want;
}

static gint64 pyramid_seek(VipsTargetCustom *t, gint64 off, int whence, PyramidFile *f) {
  gint64 base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? f->pos : f->end;
  if ((whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END) || base + off < 0)
    return -1;
  return f->pos = base + off;
}

static bool stopped(const EosinCancel *cancel) {
  return cancel && g_atomic_int_get(&cancel->cancelled);
}

bool _eosin_save_pyramid(VipsImage *img, const char *path, double mpp_x, double mpp_y,
                         const char *compression, const char *description,
                         const EosinCancel *cancel, GError **err) {
  /* deflate opens everywhere; zstd writes 1.1-1.6x faster but needs a
   * libtiff built with it (Debian's is) in the viewer */
  VipsForeignTiffCompression comp = !strcmp(compression, "zstd") ? VIPS_FOREIGN_TIFF_COMPRESSION_ZSTD
                                    : !strcmp(compression, "lzw") ? VIPS_FOREIGN_TIFF_COMPRESSION_LZW
                                                                  : VIPS_FOREIGN_TIFF_COMPRESSION_DEFLATE;
  if (stopped(cancel)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "writing %s: cancelled", path);
    return false;
  }
  g_autofree char *tmp = _eosin_temp_name(path);
  int fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", path, g_strerror(errno));
    return false;
  }
  g_autoptr(VipsImage) copy = NULL;
  if (vips_copy(img, &copy, NULL)) {
    _eosin_set_vips_error(err, path);
    close(fd);
    g_unlink(tmp);
    return false;
  }
  vips_image_set_string(copy, "image-description", description);
  /* writing a level-0-sized pyramid takes long on a large slide: a stop
   * kills the write where libvips survives a failing tiffsave (8.14.3 on);
   * before, the stop is seen when the write ends */
  if (vips_version(0) * 10000 + vips_version(1) * 100 + vips_version(2) >= 81403)
    _eosin_vips_watch_cancel(copy, cancel);
  PyramidFile pf = {.fd = fd};
  VipsTarget *target = VIPS_TARGET(vips_target_custom_new());
  g_signal_connect(target, "write", G_CALLBACK(pyramid_write), &pf);
  g_signal_connect(target, "read", G_CALLBACK(pyramid_read), &pf);
  g_signal_connect(target, "seek", G_CALLBACK(pyramid_seek), &pf);
  /* libvips takes resolution in pixels per millimetre; nearest-neighbour
   * pyramid levels keep empty cells empty and values unblended. */
  bool saved =
      !vips_tiffsave_target(copy, target, "tile", TRUE, "tile_width", 256, "tile_height", 256,
                            "pyramid", TRUE, "bigtiff", TRUE, "compression", comp, "predictor",
                            VIPS_FOREIGN_TIFF_PREDICTOR_NONE, "region_shrink",
                            VIPS_REGION_SHRINK_NEAREST, "xres", 1000.0 / mpp_x, "yres",
                            1000.0 / mpp_y, "resunit", VIPS_FOREIGN_TIFF_RESUNIT_CM, NULL);
  g_object_unref(target);
  int e = pf.error;
  if (close(fd) != 0 && !e)
    e = errno;
  if (!saved || stopped(cancel)) {
    g_unlink(tmp);
    if (stopped(cancel)) {
      vips_error_clear();
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "writing %s: cancelled", path);
      return false;
    }
    g_autofree char *msg = g_strstrip(g_strdup(vips_error_buffer()));
    vips_error_clear();
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", path,
                *msg ? msg : "libvips failed");
    return false;
  }
  if (e) {
    g_unlink(tmp);
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", path, g_strerror(e));
    return false;
  }
  if (!_eosin_publish(tmp, path, err)) {
    g_unlink(tmp);
    return false;
  }
  return true;
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

bool _eosin_save_preview(const EosinThumbnail *thumb, const EosinGrid *grid,
                         const uint8_t *rgba_cells, const char *path, GError **err) {
  g_autoptr(VipsImage) base = vips_image_new_from_memory(
      thumb->rgb, (size_t) thumb->width * thumb->height * 3, thumb->width, thumb->height, 3,
      VIPS_FORMAT_UCHAR);
  g_autoptr(VipsImage) over = _eosin_grid_image(grid, rgba_cells, 4, thumb->width,
                                                thumb->height, thumb->scale_x, thumb->scale_y);
  VipsImage *comp = NULL;
  if (!base || !over || vips_composite2(base, over, &comp, VIPS_BLEND_MODE_OVER, NULL)) {
    _eosin_set_vips_error(err, "preview.png");
    return false;
  }
  g_autoptr(VipsImage) compp = comp;
  VipsImage *flat = NULL;
  if (vips_flatten(comp, &flat, NULL)) {
    _eosin_set_vips_error(err, "preview.png");
    return false;
  }
  g_autoptr(VipsImage) flatp = flat;
  g_autoptr(VipsImage) u8 = NULL;
  void *buf = NULL;
  size_t len = 0;
  if (vips_cast_uchar(flat, &u8, NULL) || vips_image_write_to_buffer(u8, ".png", &buf, &len, NULL)) {
    _eosin_set_vips_error(err, "preview.png");
    return false;
  }
  bool ok = _eosin_write_atomic(path, buf, len, err);
  g_free(buf);
  return ok;
}
