/*
 * slide-vips.c — the libvips reader for images OpenSlide does not open:
 * PNG, JPEG, plain or OME-TIFF fields and TMA cores. One level (the full
 * image); µm/px only from TIFF resolution tags, never from PNG/JPEG dpi,
 * which is a print setting rather than a pixel size.
 */
#include "eosin-private.h"

#include <tiffio.h>

typedef struct {
  VipsImage *img;          /* sRGB, uchar, 3 bands */
  char *xres, *yres, *unit; /* tiff.* properties when the loader read a TIFF */
} VipsCtx;

static void vc_close(void *ctx) {
  VipsCtx *c = ctx;
  if (c->img)
    g_object_unref(c->img);
  g_free(c->xres);
  g_free(c->yres);
  g_free(c->unit);
  g_free(c);
}

static const char *vc_get_property(void *ctx, const char *name) {
  VipsCtx *c = ctx;
  if (!strcmp(name, "tiff.XResolution"))
    return c->xres;
  if (!strcmp(name, "tiff.YResolution"))
    return c->yres;
  if (!strcmp(name, "tiff.ResolutionUnit"))
    return c->unit;
  return NULL;
}

/* Brings any loaded image to 3-band 8-bit sRGB on white. Steals @in. */
static VipsImage *to_rgb(VipsImage *in, GError **err) {
  g_autoptr(VipsImage) img = in;
  VipsImage *t = NULL;
  if (vips_image_hasalpha(img)) {
    double white[] = {255, 255, 255};
    VipsArrayDouble *bg = vips_array_double_new(white, 3);
    int r = vips_flatten(img, &t, "background", bg, NULL);
    vips_area_unref(VIPS_AREA(bg));
    if (r)
      goto fail;
    g_object_unref(img), img = t;
  }
  if (vips_colourspace(img, &t, VIPS_INTERPRETATION_sRGB, NULL))
    goto fail;
  g_object_unref(img), img = t;
  if (img->Bands > 3) {
    if (vips_extract_band(img, &t, 0, "n", 3, NULL))
      goto fail;
    g_object_unref(img), img = t;
  }
  if (img->BandFmt != VIPS_FORMAT_UCHAR) {
    if (vips_cast_uchar(img, &t, NULL))
      goto fail;
    g_object_unref(img), img = t;
  }
  return g_steal_pointer(&img);
fail:
  _eosin_set_vips_error(err, "converting to RGB");
  return NULL;
}

/* True when a JPEG-compressed TIFF says its pixels are RGB but its JPEG
 * streams hold YCbCr (as Bio-Formats writes OME-TIFFs: chroma subsampled,
 * no Adobe marker saying RGB). libtiff then hands out the YCbCr values as
 * if they were RGB (pink background, green nuclei); Bio-Formats and QuPath
 * decode them as YCbCr, so Eosin converts them. The first tile or strip's
 * own markers decide, as libjpeg's colour-space guess does: a JFIF marker,
 * subsampled chroma or an Adobe transform of 1 mean YCbCr; component ids
 * 'R','G','B' or an Adobe transform of 0 mean RGB. */
static bool tiff_jpeg_is_ycbcr(const char *path) {
  TIFFErrorHandler eh = TIFFSetErrorHandler(NULL), wh = TIFFSetWarningHandler(NULL);
  TIFF *t = TIFFOpen(path, "r");
  bool ycc = false;
  uint16_t comp = 0, photo = 0, spp = 0;
  if (t && TIFFGetField(t, TIFFTAG_COMPRESSION, &comp) && comp == COMPRESSION_JPEG &&
      TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &photo) && photo == PHOTOMETRIC_RGB &&
      TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp) && spp == 3) {
    tmsize_t cap = 1 << 20;
    g_autofree uint8_t *buf = g_malloc(cap);
    tmsize_t n = TIFFIsTiled(t) ? TIFFReadRawTile(t, 0, buf, cap) : TIFFReadRawStrip(t, 0, buf, cap);
    int adobe = -1;
    bool jfif = false, sub = false, rgb_ids = false, have_sof = false;
    for (tmsize_t i = 0; n > 0 && i + 4 < n; i++) {
      if (buf[i] != 0xFF)
        continue;
      uint8_t m = buf[i + 1];
      int len = (buf[i + 2] << 8) | buf[i + 3];
      if (m == 0xE0 && i + 8 < n && !memcmp(buf + i + 4, "JFIF", 4))
        jfif = true;
      else if (m == 0xEE && i + 15 < n && !memcmp(buf + i + 4, "Adobe", 5))
        adobe = buf[i + 15];
      else if ((m == 0xC0 || m == 0xC1 || m == 0xC2) && i + 10 + 3 * 3 <= n && buf[i + 9] == 3) {
        const uint8_t *c = buf + i + 10; /* id, sampling, table per component */
        sub = c[1] != c[4] || c[1] != c[7];
        rgb_ids = c[0] == 'R' && c[3] == 'G' && c[6] == 'B';
        have_sof = true;
        break;
      }
      if (m >= 0xC0 && m != 0xD8 && m != 0x01 && !(m >= 0xD0 && m <= 0xD7))
        i += len + 1; /* skip the segment */
    }
    /* without a frame header the stream is not one libjpeg would guess about */
    ycc = have_sof && (adobe == 1 || (adobe != 0 && (jfif || sub || !rgb_ids)));
  }
  if (t)
    TIFFClose(t);
  TIFFSetErrorHandler(eh), TIFFSetWarningHandler(wh);
  return ycc;
}

/* YCbCr (JPEG's full-range BT.601) to RGB, rounded and clipped. Steals @in. */
static VipsImage *ycbcr_to_rgb(VipsImage *in, GError **err) {
  g_autoptr(VipsImage) img = in;
  VipsImage *t = NULL;
  double a[3] = {1, 1, 1}, b[3] = {0, -128, -128};
  double m[9] = {1, 0, 1.402, 1, -0.344136, -0.714136, 1, 1.772, 0};
  g_autoptr(VipsImage) mat = vips_image_new_matrix_from_array(3, 3, m, 9);
  if (vips_linear(img, &t, a, b, 3, NULL))
    goto fail;
  g_object_unref(img), img = t;
  if (vips_recomb(img, &t, mat, NULL))
    goto fail;
  g_object_unref(img), img = t;
  if (vips_round(img, &t, VIPS_OPERATION_ROUND_RINT, NULL))
    goto fail;
  g_object_unref(img), img = t;
  if (vips_cast_uchar(img, &t, NULL)) /* clips to 0..255 */
    goto fail;
  g_object_unref(img), img = t;
  img->Type = VIPS_INTERPRETATION_sRGB;
  return g_steal_pointer(&img);
fail:
  _eosin_set_vips_error(err, "converting YCbCr to RGB");
  return NULL;
}

static bool vc_open(EosinSlide *slide, const char *path, GError **err) {
  VipsCtx *c = g_new0(VipsCtx, 1);
  slide->ctx = c;
  const char *loader = vips_foreign_find_load(path);
  if (!loader) {
    vips_error_clear();
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE,
                "slide %s: neither OpenSlide nor libvips recognises this file", path);
    return false;
  }
  /* fail_on: a truncated or corrupt file is an error, not grey pixels */
  VipsImage *raw = vips_image_new_from_file(path, "access", VIPS_ACCESS_RANDOM, "fail_on",
                                            VIPS_FAIL_ON_ERROR, NULL);
  if (!raw) {
    g_autofree char *what = g_strdup_printf("slide %s: libvips (%s)", path, loader);
    _eosin_set_vips_error(err, what);
    (*err)->code = EOSIN_ERROR_SLIDE;
    return false;
  }
  bool tiff = g_str_has_prefix(loader, "VipsForeignLoadTiff");
  if (tiff) {
    const char *unit = NULL;
    /* libvips reports xres/yres in pixels per mm whatever the file's unit,
     * and sets resolution-unit only when the TIFF says cm or inch. */
    if (vips_image_get_typeof(raw, "resolution-unit") &&
        !vips_image_get_string(raw, "resolution-unit", &unit) && unit) {
      c->unit = g_strdup("centimeter");
      c->xres = g_strdup_printf("%.6f", raw->Xres * 10.0);
      c->yres = g_strdup_printf("%.6f", raw->Yres * 10.0);
    }
  }
  if (tiff && raw->Bands == 3 && tiff_jpeg_is_ycbcr(path)) {
    raw = ycbcr_to_rgb(raw, err);
    if (!raw) {
      g_prefix_error(err, "slide %s: ", path);
      return false;
    }
  }
  c->img = to_rgb(raw, err);
  if (!c->img) {
    g_prefix_error(err, "slide %s: ", path);
    return false;
  }
  EosinSlideInfo *i = &slide->info;
  i->vendor = g_strdup(loader);
  i->width = c->img->Xsize;
  i->height = c->img->Ysize;
  i->n_levels = 1;
  i->levels = g_new0(EosinLevel, 1);
  i->levels[0] = (EosinLevel){i->width, i->height, 1.0};
  i->associated = g_new0(char *, 1);
  return true;
}

static bool vc_read_region(EosinSlide *slide, int level, int64_t x, int64_t y, int w, int h,
                           uint8_t *rgb, GError **err) {
  VipsCtx *c = slide->ctx;
  memset(rgb, 255, (size_t) w * h * 3);  /* outside the image is background */
  VipsRect want = {(int) x, (int) y, w, h};
  VipsRect all = {0, 0, c->img->Xsize, c->img->Ysize};
  VipsRect in;
  vips_rect_intersectrect(&want, &all, &in);
  if (vips_rect_isempty(&in))
    return true;
  g_autoptr(VipsRegion) reg = vips_region_new(c->img);
  if (vips_region_prepare(reg, &in)) {
    g_autofree char *what = g_strdup_printf(
        "slide %s: region (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ") %dx%d", slide->info.path,
        x, y, w, h);
    _eosin_set_vips_error(err, what);
    (*err)->code = EOSIN_ERROR_SLIDE;
    return false;
  }
  for (int row = 0; row < in.height; row++)
    memcpy(rgb + ((size_t) (in.top - want.top + row) * w + (in.left - want.left)) * 3,
           VIPS_REGION_ADDR(reg, in.left, in.top + row), (size_t) in.width * 3);
  return true;
}

static VipsImage *vc_level_image(EosinSlide *slide, int level, GError **err) {
  VipsCtx *c = slide->ctx;
  return g_object_ref(c->img);
}

const EosinSlideOps _eosin_slide_vips_ops = {
    .name = "vips",
    .open = vc_open,
    .read_region = vc_read_region,
    .level_image = vc_level_image,
    .get_property = vc_get_property,
    .close = vc_close,
};
