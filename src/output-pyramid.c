/*
 * output-pyramid.c — overlay.tif and heatmap.tif written with libtiff: a
 * tiled BigTIFF of 256 px tiles whose levels halve until one tile holds
 * the whole image, each level painted straight from the stitched grid at
 * its own scale (nearest cell, so no value is ever blended) and carrying
 * its own resolution.
 *
 * Why not libvips's tiffsave: libvips 8.14.1 (Debian 12) frees a pyramid's
 * smaller levels before closing them when a save fails (a use-after-free,
 * fixed in 8.14.3), so a write that a stop or a full disk interrupts could
 * crash the run; and an overlay is mostly tiles of one value that it
 * compresses again and again. Here every tile of one value is compressed
 * once, tiles are painted and compressed on all cores a chunk at a time
 * (memory fixed, whatever the slide's size), written in order, a stop is
 * seen between two chunks, and every write error is reported.
 */
#include "eosin-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <math.h>
#include <tiffio.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#define TILE 256
#define CHUNK 64 /* tiles painted and compressed together */

typedef enum { CODEC_DEFLATE, CODEC_ZSTD, CODEC_LZW } Codec;

typedef struct {
  const char *path;
  GString *error;  /* libtiff's messages */
} Writer;

static int on_tiff_error(TIFF *tif, void *data, const char *module, const char *fmt,
                         va_list ap) {
  Writer *w = data;
  if (w->error->len)
    g_string_append(w->error, "; ");
  g_string_append_vprintf(w->error, fmt, ap);
  return 1;
}

static int on_tiff_warning(TIFF *tif, void *data, const char *module, const char *fmt,
                           va_list ap) {
  return 1; /* libtiff's warnings about its own choices are not the lab's */
}

/* One tile of a chunk: painted, then compressed (or found uniform). */
typedef struct {
  uint8_t *bytes;   /* compressed tile, or NULL when uniform / LZW */
  size_t len;
  bool uniform;
  uint8_t value[4]; /* the pixel of a uniform tile */
  bool failed;
} Encoded;

typedef struct {
  const EosinPaint *paint;
  int bands;
  double scale_x, scale_y;  /* level-0 px per pixel of this level */
  int width, height;        /* of this level */
  int tiles_across;
  int first;                /* index of the chunk's first tile */
  Codec codec;
  Encoded *enc;
  uint8_t *raw;             /* LZW: the chunk's painted tiles for libtiff */
} Chunk;

static void encode_tile(void *data, int k, void *scratch) {
  Chunk *c = data;
  int t = c->first + k;
  int tx = (t % c->tiles_across) * TILE, ty = (t / c->tiles_across) * TILE;
  size_t bytes = (size_t) TILE * TILE * c->bands;
  uint8_t *px = c->codec == CODEC_LZW ? c->raw + bytes * k : scratch;
  memset(px, 0, bytes);
  _eosin_paint_rect(c->paint, c->scale_x, c->scale_y, tx, ty, MIN(TILE, c->width - tx),
                    MIN(TILE, c->height - ty), px, (size_t) TILE * c->bands);
  Encoded *e = &c->enc[k];
  e->uniform = true;
  for (size_t i = c->bands; i < bytes && e->uniform; i += c->bands)
    e->uniform = !memcmp(px + i, px, c->bands);
  memcpy(e->value, px, c->bands);
  if (e->uniform || c->codec == CODEC_LZW)
    return;
  if (c->codec == CODEC_DEFLATE) {
    uLongf len = compressBound(bytes);
    e->bytes = g_malloc(len);
    e->failed = compress2(e->bytes, &len, px, bytes, 6) != Z_OK;
    e->len = len;
  } else {
    size_t cap = ZSTD_compressBound(bytes);
    e->bytes = g_malloc(cap);
    size_t n = ZSTD_compress(e->bytes, cap, px, bytes, 9);
    e->failed = ZSTD_isError(n);
    e->len = e->failed ? 0 : n;
  }
}

/* The compressed bytes of a tile all of one @value, made once per value. */
static const GBytes *uniform_tile(GHashTable *cache, Codec codec, int bands,
                                  const uint8_t *value) {
  guint32 key = 0;
  memcpy(&key, value, bands);
  GBytes *b = g_hash_table_lookup(cache, GUINT_TO_POINTER(key));
  if (b)
    return b;
  size_t bytes = (size_t) TILE * TILE * bands;
  g_autofree uint8_t *px = g_malloc(bytes);
  for (size_t i = 0; i < bytes; i += bands)
    memcpy(px + i, value, bands);
  void *out = NULL;
  size_t len = 0;
  if (codec == CODEC_DEFLATE) {
    uLongf l = compressBound(bytes);
    out = g_malloc(l);
    if (compress2(out, &l, px, bytes, 6) != Z_OK)
      return g_free(out), NULL;
    len = l;
  } else {
    size_t cap = ZSTD_compressBound(bytes);
    out = g_malloc(cap);
    len = ZSTD_compress(out, cap, px, bytes, 9);
    if (ZSTD_isError(len))
      return g_free(out), NULL;
  }
  b = g_bytes_new_take(out, len);
  g_hash_table_insert(cache, GUINT_TO_POINTER(key), b);
  return b;
}

static bool set_level_tags(TIFF *tif, int level, int w, int h, int bands, Codec codec,
                           double mpp_x, double mpp_y, const char *description) {
  double f = ldexp(1.0, level); /* this level's pixels are 2^level level-0 px */
  bool ok = TIFFSetField(tif, TIFFTAG_SUBFILETYPE, level ? FILETYPE_REDUCEDIMAGE : 0) &&
            TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t) w) &&
            TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t) h) &&
            TIFFSetField(tif, TIFFTAG_TILEWIDTH, (uint32_t) TILE) &&
            TIFFSetField(tif, TIFFTAG_TILELENGTH, (uint32_t) TILE) &&
            TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8) &&
            TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, bands) &&
            TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
            TIFFSetField(tif, TIFFTAG_PHOTOMETRIC,
                         bands >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK) &&
            TIFFSetField(tif, TIFFTAG_COMPRESSION,
                         codec == CODEC_ZSTD    ? COMPRESSION_ZSTD
                         : codec == CODEC_LZW ? COMPRESSION_LZW
                                              : COMPRESSION_ADOBE_DEFLATE) &&
            TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER) &&
            TIFFSetField(tif, TIFFTAG_XRESOLUTION, (float) (1e4 / (mpp_x * f))) &&
            TIFFSetField(tif, TIFFTAG_YRESOLUTION, (float) (1e4 / (mpp_y * f))) &&
            TIFFSetField(tif, TIFFTAG_SOFTWARE, "Eosin");
  if (ok && bands == 4) {
    uint16_t extra = EXTRASAMPLE_UNASSALPHA;
    ok = TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, &extra);
  }
  if (ok && level == 0 && description)
    ok = TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, description);
  return ok;
}

/* Writes one level; false with w->error or a cancel. */
static bool write_level(TIFF *tif, Writer *w, const EosinPaint *paint, int level, int64_t width0,
                        int64_t height0, int bands, Codec codec, double mpp_x, double mpp_y,
                        const char *description, GHashTable *cache, const EosinCancel *cancel,
                        bool *stopped) {
  double f = ldexp(1.0, level);
  int lw = (int) ceil(width0 / f), lh = (int) ceil(height0 / f);
  if (!set_level_tags(tif, level, lw, lh, bands, codec, mpp_x, mpp_y, description))
    return false;
  int across = (lw + TILE - 1) / TILE, down = (lh + TILE - 1) / TILE;
  int n = across * down;
  size_t tile_bytes = (size_t) TILE * TILE * bands;
  g_autofree Encoded *enc = g_new0(Encoded, CHUNK);
  g_autofree uint8_t *raw = codec == CODEC_LZW ? g_malloc(tile_bytes * CHUNK) : NULL;
  for (int first = 0; first < n; first += CHUNK) {
    if (cancel && g_atomic_int_get(&cancel->cancelled)) {
      *stopped = true;
      return false;
    }
    int m = MIN(CHUNK, n - first);
    memset(enc, 0, sizeof(Encoded) * CHUNK);
    Chunk c = {paint, bands, f, f, lw, lh, across, first, codec, enc, raw};
    _eosin_parallel_for(m, tile_bytes, encode_tile, &c);
    bool ok = true;
    for (int k = 0; k < m; k++) {
      Encoded *e = &enc[k];
      uint32_t t = (uint32_t) (first + k);
      if (ok && e->failed) {
        g_string_append_printf(w->error, "compressing tile %u of level %d failed", t, level);
        ok = false;
      } else if (ok && codec == CODEC_LZW) {
        ok = TIFFWriteEncodedTile(tif, t, raw + tile_bytes * k, (tmsize_t) tile_bytes) >= 0;
      } else if (ok && e->uniform) {
        const GBytes *b = uniform_tile(cache, codec, bands, e->value);
        gsize len = 0;
        const void *data = b ? g_bytes_get_data((GBytes *) b, &len) : NULL;
        ok = data && TIFFWriteRawTile(tif, t, (void *) data, (tmsize_t) len) >= 0;
      } else if (ok) {
        ok = TIFFWriteRawTile(tif, t, e->bytes, (tmsize_t) e->len) >= 0;
      }
      g_free(e->bytes);
    }
    if (!ok)
      return false;
  }
  return TIFFWriteDirectory(tif) != 0;
}

bool _eosin_write_pyramid(const EosinPaint *paint, int64_t width, int64_t height, double mpp_x,
                          double mpp_y, const char *compression, const char *description,
                          const EosinCancel *cancel, const char *path, GError **err) {
  Codec codec = !strcmp(compression, "zstd")  ? CODEC_ZSTD
                : !strcmp(compression, "lzw") ? CODEC_LZW
                                              : CODEC_DEFLATE;
  int bands = _eosin_paint_bands(paint);
  g_autofree char *tmp = _eosin_temp_name(path);
  int fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", path, g_strerror(errno));
    return false;
  }
  close(fd);
  g_autoptr(GString) msg = g_string_new(NULL);
  Writer w = {path, msg};
  TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, on_tiff_error, &w);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, on_tiff_warning, &w);
  TIFF *tif = TIFFOpenExt(tmp, "w8", opts); /* BigTIFF: level 0 may pass 4 GB */
  TIFFOpenOptionsFree(opts);
  bool stopped = false, ok = tif != NULL;
  g_autoptr(GHashTable) cache =
      g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify) g_bytes_unref);
  for (int level = 0; ok; level++) {
    ok = write_level(tif, &w, paint, level, width, height, bands, codec, mpp_x, mpp_y,
                     description, cache, cancel, &stopped);
    double f = ldexp(1.0, level);
    if (ceil(width / f) <= TILE && ceil(height / f) <= TILE)
      break; /* this level is one tile */
  }
  /* libtiff reports a failed final flush only here */
  if (tif) {
    if (ok && !TIFFFlush(tif))
      ok = false;
    /* synced through libtiff's own descriptor while a failure still shows:
     * TIFFClose cannot say that its close failed (where NFS reports one) */
    if (ok && fsync(TIFFFileno(tif)) != 0) {
      g_string_append_printf(msg, "%s%s", msg->len ? "; " : "", g_strerror(errno));
      ok = false;
    }
    TIFFClose(tif);
  }
  if (!ok) {
    g_unlink(tmp);
    if (stopped || (cancel && g_atomic_int_get(&cancel->cancelled)))
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "writing %s: cancelled", path);
    else
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", path,
                  msg->len ? msg->str : "libtiff failed");
    return false;
  }
  if (!_eosin_publish(tmp, path, err)) {
    g_unlink(tmp);
    return false;
  }
  return true;
}
