/*
 * slide-openslide.c — the OpenSlide reader: every whole-slide format that
 * OpenSlide opens (Aperio, Hamamatsu, Leica, MIRAX, generic tiled TIFF, ...).
 * One openslide_t per EosinSlide; reader threads each open their own.
 */
#include "eosin-private.h"

#include <openslide.h>
#include <tiffio.h>

typedef struct {
  openslide_t *osr;
  uint32_t *argb;     /* scratch for read_region, grown as needed */
  size_t argb_len;
} OsCtx;

const char *_eosin_openslide_detect(const char *path) {
  return openslide_detect_vendor(path);
}

/* The extensions of formats only OpenSlide reads (not .tif: plain TIFFs
 * are libvips's too). */
static const char *const WSI_EXTS[] = {".svs", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs",
                                       ".svslide", ".bif", NULL};

static int tiff_quiet(TIFF *tif, void *data, const char *module, const char *fmt, va_list ap) {
  return 1; /* handled: libtiff calls no process-wide handler */
}

TIFF *_eosin_tiff_open_quiet(const char *path) {
  /* handlers of this open's own, not the process-wide ones: swapping those
   * out and back is a race when two threads probe files at once (a batch
   * opens the next slide while its writer thread re-opens an overlay) */
  TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(o, tiff_quiet, NULL);
  TIFFOpenOptionsSetWarningHandlerExtR(o, tiff_quiet, NULL);
  TIFF *t = TIFFOpenExt(path, "r", o);
  TIFFOpenOptionsFree(o);
  return t;
}

char *_eosin_slide_format_only_openslide_reads(const char *path) {
  g_autofree char *lower = g_ascii_strdown(path, -1);
  for (int e = 0; WSI_EXTS[e]; e++)
    if (g_str_has_suffix(lower, WSI_EXTS[e]))
      return g_strdup_printf("a %s file (a scanner's whole-slide format)", WSI_EXTS[e]);
  TIFF *t = _eosin_tiff_open_quiet(path); /* the first directory: no strip or tile is read */
  if (!t)
    return NULL;
  char *why = NULL;
  const char *desc = NULL;
  uint16_t comp = 0;
  if (TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &desc) && desc) {
    if (g_str_has_prefix(desc, "Aperio"))
      why = g_strdup("an Aperio TIFF");
    else if (strstr(desc, "iScan") || strstr(desc, "Ventana"))
      why = g_strdup("a Ventana TIFF");
    else if (strstr(desc, "leica.com/scn"))
      why = g_strdup("a Leica SCN TIFF");
  }
  /* Aperio's JPEG 2000 tiles, which only OpenSlide decodes in the right colours */
  if (!why && TIFFGetField(t, TIFFTAG_COMPRESSION, &comp) && (comp == 33003 || comp == 33005))
    why = g_strdup_printf("a TIFF with Aperio JPEG 2000 tiles (compression %u)", comp);
  TIFFClose(t);
  return why;
}

static void os_close(void *ctx) {
  OsCtx *c = ctx;
  if (c->osr)
    openslide_close(c->osr);
  g_free(c->argb);
  g_free(c);
}

static const char *os_get_property(void *ctx, const char *name) {
  return openslide_get_property_value(((OsCtx *) ctx)->osr, name);
}

static bool os_open(EosinSlide *slide, const char *path, GError **err) {
  OsCtx *c = g_new0(OsCtx, 1);
  slide->ctx = c;
  c->osr = openslide_open(path);
  if (!c->osr) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE, "slide %s: OpenSlide cannot open it",
                path);
    return false;
  }
  const char *oerr = openslide_get_error(c->osr);
  if (oerr) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE, "slide %s: OpenSlide: %s", path, oerr);
    return false;
  }
  EosinSlideInfo *i = &slide->info;
  const char *vendor = openslide_get_property_value(c->osr, OPENSLIDE_PROPERTY_NAME_VENDOR);
  i->vendor = g_strdup(vendor ? vendor : "unknown");
  i->n_levels = openslide_get_level_count(c->osr);
  if (i->n_levels < 1) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE, "slide %s: no levels", path);
    return false;
  }
  i->levels = g_new0(EosinLevel, i->n_levels);
  for (int l = 0; l < i->n_levels; l++) {
    openslide_get_level_dimensions(c->osr, l, &i->levels[l].width, &i->levels[l].height);
    i->levels[l].downsample = openslide_get_level_downsample(c->osr, l);
  }
  i->width = i->levels[0].width;
  i->height = i->levels[0].height;
  if (i->width <= 0 || i->height <= 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE, "slide %s: empty level 0", path);
    return false;
  }
  const char *op = openslide_get_property_value(c->osr, OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER);
  i->objective_power = op ? g_ascii_strtod(op, NULL) : 0;

  const char *bx = openslide_get_property_value(c->osr, OPENSLIDE_PROPERTY_NAME_BOUNDS_X);
  const char *by = openslide_get_property_value(c->osr, OPENSLIDE_PROPERTY_NAME_BOUNDS_Y);
  const char *bw = openslide_get_property_value(c->osr, OPENSLIDE_PROPERTY_NAME_BOUNDS_WIDTH);
  const char *bh = openslide_get_property_value(c->osr, OPENSLIDE_PROPERTY_NAME_BOUNDS_HEIGHT);
  if (bx && by && bw && bh) {
    i->bounds_x = g_ascii_strtoll(bx, NULL, 10);
    i->bounds_y = g_ascii_strtoll(by, NULL, 10);
    i->bounds_w = g_ascii_strtoll(bw, NULL, 10);
    i->bounds_h = g_ascii_strtoll(bh, NULL, 10);
    /* bounds outside the slide would misplace every tile: refuse them
     * (without adding: a Leica view offset can give a bounds-x near 2^63) */
    if (i->bounds_x < 0 || i->bounds_y < 0 || i->bounds_w <= 0 || i->bounds_h <= 0 ||
        i->bounds_w > i->width - i->bounds_x || i->bounds_h > i->height - i->bounds_y) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE,
                  "slide %s: bounds %s,%s %sx%s lie outside the %" G_GINT64_FORMAT
                  "x%" G_GINT64_FORMAT " slide",
                  path, bx, by, bw, bh, i->width, i->height);
      return false;
    }
    i->has_bounds = true;
  }
  const char *const *assoc = openslide_get_associated_image_names(c->osr);
  i->associated = g_strdupv((char **) assoc);
  return true;
}

static bool os_read_region(EosinSlide *slide, int level, int64_t x, int64_t y, int w, int h,
                           uint8_t *rgb, GError **err) {
  OsCtx *c = slide->ctx;
  size_t n = (size_t) w * h;
  if (c->argb_len < n) {
    g_free(c->argb);
    c->argb = g_malloc(n * 4);
    c->argb_len = n;
  }
  openslide_read_region(c->osr, c->argb, x, y, level, w, h);
  const char *oerr = openslide_get_error(c->osr);
  if (oerr) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE,
                "slide %s: level %d region (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                ") %dx%d: %s",
                slide->info.path, level, x, y, w, h, oerr);
    return false;
  }
  /* premultiplied ARGB over white: C + (255 - A) */
  for (size_t p = 0; p < n; p++) {
    uint32_t v = c->argb[p];
    uint8_t a = v >> 24;
    uint8_t add = 255 - a;
    rgb[3 * p + 0] = (uint8_t) (((v >> 16) & 0xff) + add);
    rgb[3 * p + 1] = (uint8_t) (((v >> 8) & 0xff) + add);
    rgb[3 * p + 2] = (uint8_t) ((v & 0xff) + add);
  }
  return true;
}

/* The level as a lazy libvips image computed from this slide's own
 * OpenSlide handle: each region is one openslide_read_region, and a stop
 * (eosin_slide_set_cancel) fails the next region, so even a thumbnail that
 * reads a whole level without a pyramid stops at once. The whole slide is
 * shown (no autocrop), so coordinates match level 0 including bounds. */
typedef struct {
  EosinSlide *slide;
  int level;
  double downsample;
} LevelSource;

static void *level_start(VipsImage *out, void *a, void *b) {
  return g_new0(uint32_t *, 1); /* per-thread ARGB scratch, grown as needed */
}

static int level_stop(void *seq, void *a, void *b) {
  uint32_t **buf = seq;
  g_free(*buf);
  g_free(buf);
  return 0;
}

static int level_generate(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop) {
  const LevelSource *src = a;
  OsCtx *c = src->slide->ctx;
  const VipsRect *r = &out->valid;
  const EosinCancel *cancel = src->slide->cancel;
  if (cancel && g_atomic_int_get(&cancel->cancelled)) {
    vips_error("eosin", "cancelled");
    return -1;
  }
  uint32_t **buf = seq;
  *buf = g_renew(uint32_t, *buf, (size_t) r->width * r->height);
  int64_t x0 = (int64_t) (r->left * src->downsample), y0 = (int64_t) (r->top * src->downsample);
  openslide_read_region(c->osr, *buf, x0, y0, src->level, r->width, r->height);
  const char *oerr = openslide_get_error(c->osr);
  if (oerr) {
    vips_error("eosin", "OpenSlide: %s", oerr);
    return -1;
  }
  for (int y = 0; y < r->height; y++) {
    uint8_t *d = VIPS_REGION_ADDR(out, r->left, r->top + y);
    const uint32_t *px = *buf + (size_t) y * r->width;
    for (int x = 0; x < r->width; x++) {
      uint32_t v = px[x];
      uint8_t add = 255 - (v >> 24); /* premultiplied ARGB over white */
      d[3 * x + 0] = (uint8_t) (((v >> 16) & 0xff) + add);
      d[3 * x + 1] = (uint8_t) (((v >> 8) & 0xff) + add);
      d[3 * x + 2] = (uint8_t) ((v & 0xff) + add);
    }
  }
  return 0;
}

static VipsImage *os_level_image(EosinSlide *slide, int level, bool sequential, GError **err) {
  const EosinLevel *l = &slide->info.levels[level];
  LevelSource *src = g_new0(LevelSource, 1);
  *src = (LevelSource){slide, level, l->downsample};
  VipsImage *img = vips_image_new();
  vips_image_init_fields(img, (int) l->width, (int) l->height, 3, VIPS_FORMAT_UCHAR,
                         VIPS_CODING_NONE, VIPS_INTERPRETATION_sRGB, 1.0, 1.0);
  g_object_set_data_full(G_OBJECT(img), "eosin-level", src, g_free);
  if (vips_image_pipelinev(img, VIPS_DEMAND_STYLE_SMALLTILE, NULL) ||
      vips_image_generate(img, level_start, level_generate, level_stop, src, NULL)) {
    g_object_unref(img);
    g_autofree char *what = g_strdup_printf("slide %s: level %d", slide->info.path, level);
    _eosin_set_vips_error(err, what);
    return NULL;
  }
  return img;
}

const EosinSlideOps _eosin_slide_openslide_ops = {
    .name = "openslide",
    .open = os_open,
    .read_region = os_read_region,
    .level_image = os_level_image,
    .get_property = os_get_property,
    .close = os_close,
};
