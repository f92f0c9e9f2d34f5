/*
 * output-pyramid.c — overlay.tif and heatmap.tif written with libtiff: a
 * tiled BigTIFF of 256 px tiles with a level per level of the slide, at
 * the slide's own downsamples (rounded to whole factors), then levels
 * halving below the slide's smallest until one 256 px tile would hold the
 * whole image (levels narrower than a tile get tiles that fit them);
 * each level painted straight from the stitched grid at its own scale
 * (nearest cell, so no value is ever blended) and carrying its own
 * resolution. Levels that mirror the slide's let a viewer show the overlay
 * at the same level as the slide, with no resampling of either.
 *
 * A tile whose bytes equal an earlier tile of its level is stored once: an
 * overlay is mostly tiles of one value (glass, and tissue of one class).
 * libtiff has no call to point a tile at bytes already written
 * (TIFFWriteRawTile always appends, and TileOffsets cannot be set through
 * TIFFSetField), so repeats are left unwritten (libtiff records them as
 * sparse, offset 0) and, once libtiff has flushed the file, their
 * TileOffsets/TileByteCounts entries are patched in place to the first
 * copy's. Several entries naming the same bytes is plain TIFF: OpenSlide
 * and libtiff read such files as any other.
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

#include <glib.h>

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
  /* what makes two tiles' stored bytes equal: 'U' and the pixel of a
   * uniform tile (its bytes come from one cache), else 'S' and the SHA-256
   * of the compressed bytes (of the painted tile for LZW, which libtiff
   * compresses the same way every time) */
  uint8_t key[33];
  size_t key_len;
  bool failed;
} Encoded;

typedef struct {
  const EosinPaint *paint;
  int bands;
  double scale_x, scale_y;  /* level-0 px per pixel of this level */
  int width, height;        /* of this level */
  int tw, th;               /* its tile size */
  int tiles_across;
  int first;                /* index of the chunk's first tile */
  Codec codec;
  Encoded *enc;
  uint8_t *raw;             /* LZW: the chunk's painted tiles for libtiff */
} Chunk;

static void set_digest_key(Encoded *e, const uint8_t *data, size_t len) {
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sum, data, (gssize) len);
  gsize n = 32;
  e->key[0] = 'S';
  g_checksum_get_digest(sum, e->key + 1, &n);
  e->key_len = 1 + n;
}

static void encode_tile(void *data, int k, void *scratch) {
  Chunk *c = data;
  int t = c->first + k;
  int tx = (t % c->tiles_across) * c->tw, ty = (t / c->tiles_across) * c->th;
  size_t bytes = (size_t) c->tw * c->th * c->bands;
  uint8_t *px = c->codec == CODEC_LZW ? c->raw + bytes * k : scratch;
  memset(px, 0, bytes);
  _eosin_paint_rect(c->paint, c->scale_x, c->scale_y, tx, ty, MIN(c->tw, c->width - tx),
                    MIN(c->th, c->height - ty), px, (size_t) c->tw * c->bands);
  Encoded *e = &c->enc[k];
  e->uniform = true;
  for (size_t i = c->bands; i < bytes && e->uniform; i += c->bands)
    e->uniform = !memcmp(px + i, px, c->bands);
  memcpy(e->value, px, c->bands);
  if (e->uniform) {
    e->key[0] = 'U';
    memcpy(e->key + 1, px, c->bands);
    e->key_len = 1 + c->bands;
    return;
  }
  if (c->codec == CODEC_LZW) {
    set_digest_key(e, px, bytes);
    return;
  }
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
  if (!e->failed)
    set_digest_key(e, e->bytes, e->len);
}

/* The compressed bytes of a tile all of one @value, made once per value. */
static const GBytes *uniform_tile(GHashTable *cache, Codec codec, int bands, size_t bytes,
                                  const uint8_t *value) {
  guint32 key = 0;
  memcpy(&key, value, bands);
  GBytes *b = g_hash_table_lookup(cache, GUINT_TO_POINTER(key));
  if (b)
    return b;
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

static bool set_level_tags(TIFF *tif, int level, int factor, int w, int h, int tw, int th,
                           int bands,
                           Codec codec, double mpp_x, double mpp_y, const char *description) {
  double f = factor; /* this level's pixels are @factor level-0 px */
  bool ok = TIFFSetField(tif, TIFFTAG_SUBFILETYPE, level ? FILETYPE_REDUCEDIMAGE : 0) &&
            TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t) w) &&
            TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t) h) &&
            TIFFSetField(tif, TIFFTAG_TILEWIDTH, (uint32_t) tw) &&
            TIFFSetField(tif, TIFFTAG_TILELENGTH, (uint32_t) th) &&
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

/* Stores tile @t of the chunk: compressed bytes of its own, the cached
 * bytes of its uniform value, or (when its key was seen earlier in the
 * level, in @seen) nothing but a (t, first) pair on @dups. @raw is the
 * painted tile for LZW. Frees nothing; false with w->error. */
static bool store_tile(TIFF *tif, Writer *w, const Encoded *e, uint32_t t, int level,
                       Codec codec, int bands, uint8_t *raw, size_t tile_bytes,
                       GHashTable *cache, GHashTable *seen, GArray *dups) {
  if (e->failed) {
    g_string_append_printf(w->error, "compressing tile %u of level %d failed", t, level);
    return false;
  }
  g_autoptr(GBytes) key = g_bytes_new(e->key, e->key_len);
  guint32 first_copy = GPOINTER_TO_UINT(g_hash_table_lookup(seen, key));
  if (first_copy) {
    guint32 pair[2] = {t, first_copy - 1};
    g_array_append_vals(dups, pair, 2);
    return true; /* patch_repeats points it at the first copy */
  }
  g_hash_table_insert(seen, g_bytes_ref(key), GUINT_TO_POINTER(t + 1));
  if (codec == CODEC_LZW)
    return TIFFWriteEncodedTile(tif, t, raw, (tmsize_t) tile_bytes) >= 0;
  if (e->uniform) {
    const GBytes *b = uniform_tile(cache, codec, bands, tile_bytes, e->value);
    gsize len = 0;
    const void *data = b ? g_bytes_get_data((GBytes *) b, &len) : NULL;
    return data && TIFFWriteRawTile(tif, t, (void *) data, (tmsize_t) len) >= 0;
  }
  return TIFFWriteRawTile(tif, t, e->bytes, (tmsize_t) e->len) >= 0;
}

/* The tile side for a level @side px across: TILE, or for a level narrower
 * than that the largest multiple of 16 (TIFF's tile rule) within it. Why:
 * libtiff 4.5.0's TIFFReadRGBATile, which OpenSlide reads deflate, zstd and
 * LZW tiles through, returns a blank tile when the tile is wider or taller
 * than the whole image ("Raster width of 256 shall not be larger than image
 * width"), so the smallest levels showed nothing. */
static int tile_side(int side) {
  return side >= TILE ? TILE : MAX(16, side / 16 * 16);
}

/* Writes one level at @factor level-0 px per pixel; false with w->error or
 * a cancel. Tiles repeating an earlier tile of the level are not written:
 * (repeat, first) tile index pairs are appended to @dups, which the caller
 * owns, for patch_repeats. */
static bool write_level(TIFF *tif, Writer *w, const EosinPaint *paint, int level, int factor,
                        int64_t width0, int64_t height0, int bands, Codec codec, double mpp_x,
                        double mpp_y, const char *description, const EosinCancel *cancel,
                        GArray *dups, bool *stopped) {
  double f = factor;
  int lw = (int) ceil(width0 / f), lh = (int) ceil(height0 / f);
  int tw = tile_side(lw), th = tile_side(lh);
  if (!set_level_tags(tif, level, factor, lw, lh, tw, th, bands, codec, mpp_x, mpp_y,
                      description))
    return false;
  /* the compressed bytes of each uniform value, made once for the level
   * (its tile size is the level's own) */
  g_autoptr(GHashTable) cache =
      g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, (GDestroyNotify) g_bytes_unref);
  /* key bytes -> 1 + index of the tile first written with them */
  g_autoptr(GHashTable) seen =
      g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref, NULL);
  int across = (lw + tw - 1) / tw, down = (lh + th - 1) / th;
  int n = across * down;
  size_t tile_bytes = (size_t) tw * th * bands;
  g_autofree Encoded *enc = g_new0(Encoded, CHUNK);
  g_autofree uint8_t *raw = codec == CODEC_LZW ? g_malloc(tile_bytes * CHUNK) : NULL;
  for (int first = 0; first < n; first += CHUNK) {
    if (cancel && g_atomic_int_get(&cancel->cancelled)) {
      *stopped = true;
      return false;
    }
    int m = MIN(CHUNK, n - first);
    memset(enc, 0, sizeof(Encoded) * CHUNK);
    Chunk c = {paint, bands, f, f, lw, lh, tw, th, across, first, codec, enc, raw};
    _eosin_parallel_for(m, tile_bytes, encode_tile, &c);
    bool ok = true;
    for (int k = 0; k < m; k++) {
      Encoded *e = &enc[k];
      uint32_t t = (uint32_t) (first + k);
      if (ok)
        ok = store_tile(tif, w, e, t, level, codec, bands, raw + (raw ? tile_bytes * k : 0),
                        tile_bytes, cache, seen, dups);
      g_free(e->bytes); /* every tile's, also after a failure */
    }
    if (!ok)
      return false;
  }
  return TIFFWriteDirectory(tif) != 0;
}

/* Little- or big-endian integers of the file, as libtiff wrote them. */
static uint64_t get_uint(const uint8_t *p, int size, bool big) {
  uint64_t v = 0;
  for (int i = 0; i < size; i++)
    v |= (uint64_t) p[big ? size - 1 - i : i] << (8 * i);
  return v;
}

static void put_uint(uint8_t *p, int size, bool big, uint64_t v) {
  for (int i = 0; i < size; i++)
    p[big ? size - 1 - i : i] = (uint8_t) (v >> (8 * i));
}

static bool pread_all(int fd, void *buf, size_t len, uint64_t off) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pread(fd, (uint8_t *) buf + done, len - done, (off_t) (off + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0)
      errno = 0; /* a short file, not a failed call */
    if (n <= 0)
      return false;
    done += (size_t) n;
  }
  return true;
}

static bool pwrite_all(int fd, const void *buf, size_t len, uint64_t off) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pwrite(fd, (const uint8_t *) buf + done, len - done, (off_t) (off + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += (size_t) n;
  }
  return true;
}

/* Points the repeated tiles of each directory at their first copies:
 * @dups holds one GArray of (repeat, first) tile pairs per directory, in
 * the order they were written. Reads and rewrites the BigTIFF's
 * TileOffsets and TileByteCounts arrays in place through @fd, after libtiff
 * has flushed them (libtiff offers no call that sets these entries). The
 * arrays keep their size and type: each new value is one already in them.
 * Frees nothing; false with a message on w->error. */
static bool patch_repeats(int fd, GPtrArray *dups, Writer *w) {
  uint8_t head[16];
  if (!pread_all(fd, head, sizeof head, 0)) {
    g_string_append_printf(w->error, "re-reading the header: %s",
                           errno ? g_strerror(errno) : "short file");
    return false;
  }
  bool big = head[0] == 'M';
  if (get_uint(head + 2, 2, big) != 43) {
    g_string_append(w->error, "re-reading the header: not a BigTIFF");
    return false;
  }
  uint64_t ifd = get_uint(head + 8, 8, big);
  for (guint d = 0; d < dups->len; d++) {
    GArray *pairs = g_ptr_array_index(dups, d);
    uint8_t cnt[8];
    if (!ifd || !pread_all(fd, cnt, 8, ifd)) {
      g_string_append_printf(w->error, "re-reading directory %u failed", d);
      return false;
    }
    uint64_t n = get_uint(cnt, 8, big);
    if (n > 4096) {
      g_string_append_printf(w->error, "directory %u has %" G_GUINT64_FORMAT " tags", d, n);
      return false;
    }
    g_autofree uint8_t *entries = g_malloc(n * 20 + 8);
    if (!pread_all(fd, entries, n * 20 + 8, ifd + 8)) {
      g_string_append_printf(w->error, "re-reading directory %u failed", d);
      return false;
    }
    if (pairs->len) {
      /* [0] TileOffsets (324), [1] TileByteCounts (325) */
      uint64_t where[2] = {0, 0}, count[2] = {0, 0};
      int size[2] = {0, 0};
      g_autofree uint8_t *offsets = NULL, *counts = NULL;
      uint8_t **arr[2] = {&offsets, &counts}; /* both freed on return */
      for (uint64_t i = 0; i < n; i++) {
        const uint8_t *e = entries + i * 20;
        unsigned tag = (unsigned) get_uint(e, 2, big), type = (unsigned) get_uint(e + 2, 2, big);
        if (tag != 324 && tag != 325)
          continue;
        int k = tag - 324;
        size[k] = type == 3 ? 2 : type == 4 ? 4 : type == 16 ? 8 : 0;
        count[k] = get_uint(e + 4, 8, big);
        /* arrays of at most 8 bytes sit in the entry itself */
        where[k] = count[k] * size[k] <= 8 ? ifd + 8 + i * 20 + 12 : get_uint(e + 12, 8, big);
      }
      for (int k = 0; k < 2; k++) {
        if (!size[k] || !where[k] || count[k] > G_MAXUINT32) {
          g_string_append_printf(w->error, "directory %u: no usable %s", d,
                                 k ? "TileByteCounts" : "TileOffsets");
          return false;
        }
        *arr[k] = g_malloc(count[k] * size[k]);
        if (!pread_all(fd, *arr[k], count[k] * size[k], where[k])) {
          g_string_append_printf(w->error, "re-reading directory %u's tile table failed", d);
          return false;
        }
      }
      for (guint j = 0; j + 1 < pairs->len; j += 2) {
        guint32 t = g_array_index(pairs, guint32, j), s = g_array_index(pairs, guint32, j + 1);
        for (int k = 0; k < 2; k++) {
          if (t >= count[k] || s >= count[k]) {
            g_string_append_printf(w->error, "directory %u: tile %u out of its table", d, t);
            return false;
          }
          put_uint(*arr[k] + (size_t) t * size[k], size[k], big,
                   get_uint(*arr[k] + (size_t) s * size[k], size[k], big));
        }
      }
      for (int k = 0; k < 2; k++)
        if (!pwrite_all(fd, *arr[k], count[k] * size[k], where[k])) {
          g_string_append_printf(w->error, "patching directory %u: %s", d, g_strerror(errno));
          return false;
        }
    }
    ifd = get_uint(entries + n * 20, 8, big);
  }
  return true;
}

/* The level factors (level-0 px per pixel) of the pyramid: the slide's
 * the downsamples of @info's levels rounded to whole factors >= 1 (level 0
 * always 1; a factor not above the one before is dropped), then doubling
 * below the smallest until one tile holds the image. Returns a new array,
 * freed by the caller. */
static GArray *plan_levels(const EosinSlideInfo *info) {
  int64_t width = info->width, height = info->height;
  GArray *f = g_array_new(FALSE, FALSE, sizeof(int));
  int one = 1;
  g_array_append_val(f, one);
  for (int i = 1; i < info->n_levels; i++) {
    double d = info->levels[i].downsample;
    if (!(d >= 1) || d > 1 << 30)
      continue; /* NaN or absurd: not a level to mirror */
    int v = (int) lround(d);
    if (v > g_array_index(f, int, f->len - 1))
      g_array_append_val(f, v);
  }
  for (;;) {
    int last = g_array_index(f, int, f->len - 1);
    if ((ceil((double) width / last) <= TILE && ceil((double) height / last) <= TILE) ||
        last > 1 << 29)
      break; /* one tile holds it */
    int next = last * 2;
    g_array_append_val(f, next);
  }
  return f;
}

bool _eosin_write_pyramid(const EosinPaint *paint, const EosinSlideInfo *info,
                          const char *compression, const char *description,
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
  g_autoptr(GArray) factors = plan_levels(info);
  g_autoptr(GPtrArray) dups = g_ptr_array_new_with_free_func((GDestroyNotify) g_array_unref);
  for (guint level = 0; ok && level < factors->len; level++) {
    GArray *pairs = g_array_new(FALSE, FALSE, sizeof(guint32));
    g_ptr_array_add(dups, pairs);
    ok = write_level(tif, &w, paint, (int) level, g_array_index(factors, int, level),
                     info->width, info->height, bands, codec, info->mpp_x, info->mpp_y,
                     description, cancel, pairs,
                     &stopped);
  }
  /* libtiff reports a failed final flush only here */
  if (tif) {
    if (ok && !TIFFFlush(tif))
      ok = false;
    /* libtiff writes nothing after this flush: its tables can be patched */
    if (ok && !patch_repeats(TIFFFileno(tif), dups, &w))
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
