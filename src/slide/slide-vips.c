/*
 * slide-vips.c — the libvips reader for images OpenSlide does not open:
 * PNG, JPEG, plain or OME-TIFF fields and TMA cores. One level (the full
 * image); µm/px only from TIFF resolution tags, never from PNG/JPEG dpi,
 * which is a print setting rather than a pixel size.
 */
#include "eosin-private.h"

#include <stdarg.h>
#include <tiffio.h>

typedef struct {
  VipsImage *img;          /* sRGB, uchar, 3 bands */
  char *xres, *yres, *unit; /* tiff.* properties when the loader read a TIFF */
  bool ycbcr;              /* JPEG-in-TIFF that holds YCbCr (tiff_jpeg_is_ycbcr) */
} VipsCtx;

/* The loaders a plain image may come through: libvips's own, well-fuzzed
 * decoders. Others (and every loader libvips marks untrusted: SVG, PDF,
 * ImageMagick...) are blocked at start-up (util.c). */
static const char *const LOADERS[] = {"VipsForeignLoadPng", "VipsForeignLoadJpeg",
                                      "VipsForeignLoadTiff", "VipsForeignLoadWebp", NULL};

/* One decoded unit (a TIFF tile or strip), and one row of them, must fit
 * in this: a 530 KB TIFF can declare 1,000,000 x 1,000,000 pixels in 4096 x
 * 4096 tiles that all point at one compressed tile. */
#define MAX_UNIT_BYTES ((gint64) 256 << 20)
#define MAX_UNIT_ROW_BYTES ((gint64) 1 << 30)
/* Formats that cannot be read a region at a time (PNG, JPEG, WebP) are
 * decoded whole; above this many decoded bytes they are refused. */
#define MAX_WHOLE_BYTES ((gint64) 1 << 30)

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
  TIFF *t = _eosin_tiff_open_quiet(path);
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

static bool slide_error(GError **err, const char *path, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static bool slide_error(GError **err, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE, "slide %s: %s", path, msg);
  return false;
}

/* libvips's error as an EOSIN_ERROR_SLIDE error about @path. */
static bool vips_slide_error(GError **err, const char *path, const char *what) {
  g_autofree char *msg = g_strstrip(g_strdup(vips_error_buffer()));
  vips_error_clear();
  return slide_error(err, path, "%s: %s", what, *msg ? msg : "libvips failed");
}

/* Refuses a TIFF whose decoding units are too large to decode in bounded
 * memory (the decompression bomb above). */
static bool check_tiff_units(const char *path, int64_t width, GError **err) {
  TIFF *t = _eosin_tiff_open_quiet(path);
  if (!t)
    return true; /* libvips will say what is wrong with it */
  uint16_t spp = 1, bps = 8;
  uint32_t tw = 0, th = 0, rps = 0;
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bps);
  gint64 px_bytes = MAX(1, (gint64) spp * bps / 8);
  gint64 unit = 0, row = 0;
  const char *kind;
  if (TIFFIsTiled(t)) {
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    unit = (gint64) tw * th * px_bytes;
    row = (gint64) th * MAX(width, (gint64) tw) * px_bytes;
    kind = "tiles";
  } else {
    TIFFGetFieldDefaulted(t, TIFFTAG_ROWSPERSTRIP, &rps);
    uint32_t h = 0;
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h);
    rps = MIN(rps, MAX(h, 1));
    unit = row = (gint64) rps * width * px_bytes;
    kind = "strips";
  }
  TIFFClose(t);
  if (unit > MAX_UNIT_BYTES || row > MAX_UNIT_ROW_BYTES)
    return slide_error(err, path,
                       "its %s decode to %.0f MB each (%.0f MB a row of them), more than the "
                       "%d MB (%d MB) Eosin decodes at once: not read (save it as a tiled "
                       "pyramidal TIFF, e.g. vips tiffsave --tile --pyramid)",
                       kind, unit / 1e6, row / 1e6, (int) (MAX_UNIT_BYTES >> 20),
                       (int) (MAX_UNIT_ROW_BYTES >> 20));
  return true;
}

/* Opens @path with @access and converts it to 3-band 8-bit sRGB (YCbCr
 * JPEG-in-TIFF decoded as YCbCr when @ycbcr). */
static VipsImage *load_rgb(const char *path, VipsAccess access, bool ycbcr, GError **err) {
  /* fail_on: a truncated or corrupt file is an error, not grey pixels */
  VipsImage *raw = vips_image_new_from_file(path, "access", access, "fail_on",
                                            VIPS_FAIL_ON_ERROR, NULL);
  if (!raw) {
    vips_slide_error(err, path, "libvips");
    return NULL;
  }
  if (ycbcr && raw->Bands == 3) {
    raw = ycbcr_to_rgb(raw, err);
    if (!raw) {
      g_prefix_error(err, "slide %s: ", path);
      return NULL;
    }
  }
  VipsImage *img = to_rgb(raw, err);
  if (!img)
    g_prefix_error(err, "slide %s: ", path);
  return img;
}

static bool vc_open(EosinSlide *slide, const char *path, GError **err) {
  VipsCtx *c = g_new0(VipsCtx, 1);
  slide->ctx = c;
  const char *loader = vips_foreign_find_load(path);
  if (!loader) {
    vips_error_clear();
    return slide_error(err, path, "neither OpenSlide nor libvips recognises this file");
  }
  bool allowed = false;
  for (int l = 0; LOADERS[l]; l++)
    allowed |= g_str_has_prefix(loader, LOADERS[l]);
  if (!allowed)
    return slide_error(err, path,
                       "libvips would read it with %s; Eosin reads plain images only as PNG, "
                       "JPEG, TIFF or WebP",
                       loader);
  /* the header alone: sizes are checked before any pixel is decoded */
  g_autoptr(VipsImage) head = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL,
                                                       NULL);
  if (!head)
    return vips_slide_error(err, path, "libvips");
  bool tiff = g_str_has_prefix(loader, "VipsForeignLoadTiff");
  if (tiff && !check_tiff_units(path, head->Xsize, err))
    return false;
  gint64 whole = (gint64) head->Xsize * head->Ysize * head->Bands *
                 MAX(1, vips_format_sizeof(head->BandFmt));
  if (!tiff && whole > MAX_WHOLE_BYTES)
    return slide_error(err, path,
                       "%d x %d px in a format that is decoded whole (%.1f GB), more than the "
                       "%.0f GB Eosin decodes at once: save it as a tiled pyramidal TIFF",
                       head->Xsize, head->Ysize, whole / 1e9, MAX_WHOLE_BYTES / 1e9);
  c->ycbcr = tiff && head->Bands == 3 && tiff_jpeg_is_ycbcr(path);
  VipsImage *raw = vips_image_new_from_file(path, "access", VIPS_ACCESS_RANDOM, "fail_on",
                                            VIPS_FAIL_ON_ERROR, NULL);
  if (!raw)
    return vips_slide_error(err, path, "libvips");
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
  if (c->ycbcr && raw->Bands == 3) {
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
        "region (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ") %dx%d", x, y, w, h);
    return vips_slide_error(err, slide->info.path, what);
  }
  for (int row = 0; row < in.height; row++)
    memcpy(rgb + ((size_t) (in.top - want.top + row) * w + (in.left - want.left)) * 3,
           VIPS_REGION_ADDR(reg, in.left, in.top + row), (size_t) in.width * 3);
  return true;
}

static VipsImage *vc_level_image(EosinSlide *slide, int level, bool sequential, GError **err) {
  VipsCtx *c = slide->ctx;
  /* random access keeps what it decoded in a cache; a thumbnail of a large
   * image reads it once, top to bottom, through a handle of its own */
  if (sequential) {
    g_autoptr(VipsImage) img = load_rgb(slide->info.path, VIPS_ACCESS_SEQUENTIAL, c->ycbcr, err);
    if (!img)
      return NULL;
    VipsImage *out = _eosin_vips_cancellable(img, slide->cancel);
    if (!out)
      vips_slide_error(err, slide->info.path, "thumbnail");
    return out;
  }
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
