/*
 * slide-openslide.c — the OpenSlide reader: every whole-slide format that
 * OpenSlide opens (Aperio, Hamamatsu, Leica, MIRAX, generic tiled TIFF, ...).
 * One openslide_t per EosinSlide; reader threads each open their own.
 */
#include "eosin-private.h"

#include <openslide.h>

typedef struct {
  openslide_t *osr;
  uint32_t *argb;     /* scratch for read_region, grown as needed */
  size_t argb_len;
} OsCtx;

const char *_eosin_openslide_detect(const char *path) {
  return openslide_detect_vendor(path);
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
    /* bounds outside the slide would misplace every tile: refuse them */
    if (i->bounds_x < 0 || i->bounds_y < 0 || i->bounds_w <= 0 || i->bounds_h <= 0 ||
        i->bounds_x + i->bounds_w > i->width || i->bounds_y + i->bounds_h > i->height) {
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

static VipsImage *os_level_image(EosinSlide *slide, int level, GError **err) {
  /* libvips's own OpenSlide loader streams the level; it shows the whole
   * slide (no autocrop), so coordinates match level 0 including bounds. */
  VipsImage *img = NULL, *flat = NULL;
  if (vips_openslideload(slide->info.path, &img, "level", level, NULL)) {
    g_autofree char *what = g_strdup_printf("slide %s: level %d", slide->info.path, level);
    _eosin_set_vips_error(err, what);
    return NULL;
  }
  double white[] = {255, 255, 255};
  VipsArrayDouble *bg = vips_array_double_new(white, 3);
  int r = vips_flatten(img, &flat, "background", bg, NULL);
  vips_area_unref(VIPS_AREA(bg));
  g_object_unref(img);
  if (r) {
    _eosin_set_vips_error(err, "flattening slide level");
    return NULL;
  }
  return flat;
}

const EosinSlideOps _eosin_slide_openslide_ops = {
    .name = "openslide",
    .open = os_open,
    .read_region = os_read_region,
    .level_image = os_level_image,
    .get_property = os_get_property,
    .close = os_close,
};
