/*
 * pyramid.c — overlay.tif and heatmap.tif written with libtiff: a
 * tiled BigTIFF with a level per level of the slide, at the slide's own
 * downsamples (rounded to whole factors), then levels halving below the
 * slide's smallest until one tile would hold the whole image; each level
 * painted straight from the stitched grid at its own scale (nearest cell,
 * so no value is ever blended) and carrying its own resolution. Levels
 * that mirror the slide's let a viewer show the overlay at the same level
 * as the slide, with no resampling of either.
 *
 * Most of an overlay is tiles of one value (glass, and cells larger than a
 * tile), so the work is in not doing it again:
 *   - each level's tile side (128..512 px, or 64..112 px where cells are a
 *     whole number of tiles) is chosen so that as many tiles as the cell
 *     stride allows lie inside one cell (choose_side);
 *   - every tile gets a layout key (its blocks of one value, from the grid,
 *     before a pixel is painted): a tile whose key was seen before, at
 *     this level or an earlier one, is neither painted nor compressed, and
 *     its TileOffsets/TileByteCounts entries point at the first copy's
 *     bytes; only tiles of new keys are painted and compressed, on all
 *     cores, a chunk at a time (memory fixed, whatever the slide's size),
 *     and written in order;
 *   - deflate is libdeflate's (level 9 writes smaller tiles than zlib's
 *     level 6 in less time).
 * libtiff has no call to point a tile at bytes already written
 * (TIFFWriteRawTile always appends, and TileOffsets cannot be set through
 * TIFFSetField), so repeats are left unwritten (libtiff records them as
 * sparse, offset 0) and, once libtiff has flushed the file, their entries
 * are patched in place. Several entries naming the same bytes is plain
 * TIFF: OpenSlide, libvips, tifffile and libtiff read such files as any
 * other (tests/test-overlay.c reads every level with all four).
 *
 * Why not libvips's tiffsave: libvips 8.14.1 (Debian 12) frees a pyramid's
 * smaller levels before closing them when a save fails (a use-after-free,
 * fixed in 8.14.3), so a write that a stop or a full disk interrupts could
 * crash the run; and it compresses every tile, however often it repeats.
 * Here a stop is seen between two chunks, and every write error is
 * reported.
 */
#include "eosin-private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libdeflate.h>
#include <glib/gstdio.h>
#include <math.h>
#include <tiffio.h>
#include <unistd.h>
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

/* What a tile of a chunk needs. Most tiles are known from their layout
 * key (overlay.c's _eosin_paint_tile_key: the blocks of one value a
 * tile is made of) before any pixel is painted: a REPEAT of an earlier
 * tile of the level costs nothing, and only a NEW tile is painted and
 * compressed. A tile whose cells are too fine for a short key (the
 * smallest levels) is PAINTED, compressed, and compared with the level's
 * earlier tiles by a digest of its compressed bytes. */
typedef enum { TILE_NEW, TILE_REPEAT, TILE_PAINTED } TileKind;

typedef struct {
  TileKind kind;
  uint32_t first_dir, first; /* REPEAT: the tile first written with these bytes */
  uint8_t *bytes;   /* compressed tile (NEW, PAINTED), or NULL (LZW) */
  size_t len;
  /* PAINTED: 'S' and the SHA-256 of the compressed bytes (of the painted
   * tile for LZW, which libtiff compresses the same way every time) */
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
  const EosinPaintRuns *col_runs, *row_runs; /* of each tile column, row */
} Chunk;

static void set_digest_key(Encoded *e, const uint8_t *data, size_t len) {
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_checksum_update(sum, data, (gssize) len);
  gsize n = 32;
  e->key[0] = 'S';
  g_checksum_get_digest(sum, e->key + 1, &n);
  e->key_len = 1 + n;
}

/* @len bytes of @data compressed into e->bytes (zlib or zstd) through
 * @out, @cap bytes of scratch at least compress_bound(@len): the copy kept
 * is the size of the result (a few hundred bytes for most tiles) where a
 * buffer of the bound would be a fresh mapping of pages for every tile.
 * Deflate is libdeflate's, which makes the zlib stream TIFF's deflate
 * expects: on overlay tiles (blocks of one colour) its level 9 writes
 * fewer bytes than zlib's level 6, in less time. */
#define DEFLATE_LEVEL 9
#define ZSTD_LEVEL 9
static size_t compress_bound(size_t len) {
  /* at least zstd's bound and libdeflate's for these sizes (compress_into
   * checks libdeflate's own before using it) */
  return MAX(ZSTD_compressBound(len), len + len / 8 + 1024);
}

static void compress_into(Encoded *e, Codec codec, const uint8_t *data, size_t len,
                          uint8_t *out, size_t cap) {
  size_t n = 0;
  if (codec == CODEC_DEFLATE) {
    struct libdeflate_compressor *z = libdeflate_alloc_compressor(DEFLATE_LEVEL);
    n = z && libdeflate_zlib_compress_bound(z, len) <= cap
            ? libdeflate_zlib_compress(z, data, len, out, cap)
            : 0;
    if (z)
      libdeflate_free_compressor(z);
  } else {
    n = ZSTD_compress(out, cap, data, len, ZSTD_LEVEL);
    n = ZSTD_isError(n) ? 0 : n;
  }
  e->failed = n == 0;
  e->bytes = e->failed ? NULL : g_memdup2(out, n);
  e->len = n;
}

/* Paints and compresses tile @k of the chunk when it is NEW or PAINTED. */
static void encode_tile(void *data, int k, void *scratch) {
  Chunk *c = data;
  Encoded *e = &c->enc[k];
  bool lzw = c->codec == CODEC_LZW;
  if (e->kind == TILE_REPEAT)
    return;
  int t = c->first + k;
  int tx = (t % c->tiles_across) * c->tw, ty = (t / c->tiles_across) * c->th;
  size_t bytes = (size_t) c->tw * c->th * c->bands;
  uint8_t *px = lzw ? c->raw + bytes * k : scratch;
  uint8_t *out = (uint8_t *) scratch + (lzw ? 0 : bytes); /* after the tile */
  memset(px, 0, bytes);
  _eosin_paint_rect(c->paint, c->scale_x, c->scale_y, tx, ty, MIN(c->tw, c->width - tx),
                    MIN(c->th, c->height - ty), px, (size_t) c->tw * c->bands);
  if (!lzw)
    compress_into(e, c->codec, px, bytes, out, compress_bound(bytes));
  if (e->kind == TILE_PAINTED && !e->failed)
    set_digest_key(e, lzw ? px : e->bytes, lzw ? bytes : e->len);
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

/* What @seen maps a key to: 1 + directory << 32 | tile (0 is "absent"). */
static gpointer tile_ref(guint dir, guint32 t) {
  return (gpointer) (guintptr) (((guint64) dir << 32 | t) + 1);
}

static void set_repeat(Encoded *e, gpointer ref) {
  guint64 v = (guint64) (guintptr) ref - 1;
  e->kind = TILE_REPEAT;
  e->first_dir = (uint32_t) (v >> 32);
  e->first = (uint32_t) v;
}

/* Stores tile @t of directory @level: its compressed bytes or (a repeat of
 * a tile written before, known from its layout key or, for a PAINTED
 * tile, its digest in @seen) nothing but a (t, source directory, source
 * tile) triple on @dups. @raw is the painted tile for LZW. Frees nothing;
 * false with w->error. */
static bool store_tile(TIFF *tif, Writer *w, Encoded *e, uint32_t t, int level, Codec codec,
                       uint8_t *raw, size_t tile_bytes, GHashTable *seen, GArray *dups) {
  if (e->failed) {
    g_string_append_printf(w->error, "compressing tile %u of level %d failed", t, level);
    return false;
  }
  if (e->kind == TILE_PAINTED) {
    g_autoptr(GBytes) key = g_bytes_new(e->key, e->key_len);
    gpointer ref = g_hash_table_lookup(seen, key);
    if (ref && t > 0) /* a level's first tile is always written, as above */
      set_repeat(e, ref);
    else if (!ref)
      g_hash_table_insert(seen, g_steal_pointer(&key), tile_ref(level, t));
  }
  if (e->kind == TILE_REPEAT) {
    guint32 triple[3] = {t, e->first_dir, e->first};
    g_array_append_vals(dups, triple, 3);
    return true; /* patch_repeats points it at the first copy */
  }
  if (codec == CODEC_LZW)
    return TIFFWriteEncodedTile(tif, t, raw, (tmsize_t) tile_bytes) >= 0;
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

/* The tile side along @axis of a level @side px across at @scale level-0
 * px per pixel: of the multiples of 16 from TILE_MIN to TILE_MAX (and
 * within the level), one whose tiles most often lie inside one cell along
 * that axis, of those within 2 % of the best the one nearest TILE (the
 * smaller of two as near). Why: a tile inside one cell on both axes is
 * one value, written once for all the level's tiles of that value, and
 * the cell stride is rarely a multiple of 256 (a metastasis cell on a
 * 0.2425 µm/px slide is 384 px: 256 px tiles are one value in 4 of 9
 * places, 192 or 384 px tiles in all; a stain cell on a 0.5 µm/px slide is
 * 512 px, 128 px at the slide's factor-4 level). Nearest TILE, because a
 * small tile means many tiles (each costs its key and table entries) and
 * a large one costs more to compress where it is not one value. Sides
 * from TILE_SMALL up to TILE_MIN are taken only where the cells are a
 * whole number of tiles (96 px metastasis cells at a factor-4 level: 96 px
 * tiles, each one value, instead of 256 px tiles of 3 x 3 cells to
 * compress). */
#define TILE_MIN 128
#define TILE_MAX 512
/* smaller sides (down to this), only where every tile then lies in one cell */
#define TILE_SMALL 64
static int choose_side(const EosinPaint *p, int axis, double scale, int side) {
  if (side < TILE_MIN)
    return tile_side(side);
  int best = TILE;
  double best_u = -1, u_of[TILE_MAX / 16 + 1] = {0};
  bool ok[TILE_MAX / 16 + 1] = {false};
  for (int t = TILE_SMALL; t <= MIN(TILE_MAX, side / 16 * 16); t += 16) {
    int n = (side + t - 1) / t, inside = 0;
    for (int k = 0; k < n; k++) {
      /* the tile's pixels in the image (the last one's padding is no
       * cell's: counting it would favour the side that leaves least) */
      int a = k * t, b = MIN(a + t, side) - 1;
      int ca = _eosin_paint_cell(p, axis, scale, a), cb = _eosin_paint_cell(p, axis, scale, b);
      inside += ca == cb; /* cells grow along the axis: ends equal, all equal */
    }
    u_of[t / 16] = (double) inside / n;
    /* a side below TILE_MIN only where cells are a whole number of tiles */
    ok[t / 16] = t >= TILE_MIN || u_of[t / 16] >= 0.98;
    if (ok[t / 16])
      best_u = MAX(best_u, u_of[t / 16]);
  }
  int best_d = INT_MAX;
  for (int t = TILE_SMALL; t <= MIN(TILE_MAX, side / 16 * 16); t += 16)
    if (ok[t / 16] && u_of[t / 16] >= best_u - 0.02 && abs(t - TILE) < best_d) {
      best = t;
      best_d = abs(t - TILE);
    }
  return best;
}

/* Finds the kind of each tile of chunk @c (of directory @level) from its
 * layout key, @seen holding the keys of the file's tiles so far (a tile
 * of a new key is entered at once: a later tile of the chunk repeats it).
 * A layout key holds the tile's size, so only tiles of equal size and
 * pixels share bytes, across levels too. */
static void classify_tiles(Chunk *c, int level, int m, GHashTable *seen, GByteArray *kb) {
  for (int k = 0; k < m; k++) {
    Encoded *e = &c->enc[k];
    int t = c->first + k;
    g_byte_array_set_size(kb, 0);
    if (!_eosin_paint_tile_key(c->paint, &c->col_runs[t % c->tiles_across],
                               &c->row_runs[t / c->tiles_across], kb)) {
      e->kind = TILE_PAINTED;
      continue;
    }
    g_autoptr(GBytes) key = g_bytes_new(kb->data, kb->len);
    gpointer ref = g_hash_table_lookup(seen, key);
    /* a level's first tile is always written: libtiff leaves out the tile
     * tables of a directory none of whose tiles it wrote */
    if (ref && t > 0) {
      set_repeat(e, ref);
      continue;
    }
    if (!ref)
      g_hash_table_insert(seen, g_steal_pointer(&key), tile_ref(level, t));
    e->kind = TILE_NEW;
  }
}

/* Writes one level at @factor level-0 px per pixel; false with w->error or
 * a cancel. Tiles repeating one written before (in @seen, the caller's,
 * shared by the levels) are not written: (repeat, source directory,
 * source tile) triples are appended to @dups, the caller's, for
 * patch_repeats. */
static bool write_level(TIFF *tif, Writer *w, const EosinPaint *paint, int level, int factor,
                        int64_t width0, int64_t height0, int bands, Codec codec, double mpp_x,
                        double mpp_y, const char *description, const EosinCancel *cancel,
                        GHashTable *seen, GArray *dups, bool *stopped) {
  double f = factor;
  int lw = (int) ceil(width0 / f), lh = (int) ceil(height0 / f);
  int tw = choose_side(paint, 0, f, lw), th = choose_side(paint, 1, f, lh);
  if (!set_level_tags(tif, level, factor, lw, lh, tw, th, bands, codec, mpp_x, mpp_y,
                      description))
    return false;
  g_autoptr(GByteArray) kb = g_byte_array_new();
  int across = (lw + tw - 1) / tw, down = (lh + th - 1) / th;
  int n = across * down;
  size_t tile_bytes = (size_t) tw * th * bands;
  g_autofree Encoded *enc = g_new0(Encoded, CHUNK);
  /* the runs of cells along each tile column and row, made once: a tile's
   * layout key needs only them and the cells' values */
  g_autofree EosinPaintRuns *col_runs = g_new(EosinPaintRuns, across);
  g_autofree EosinPaintRuns *row_runs = g_new(EosinPaintRuns, down);
  for (int i = 0; i < across; i++)
    _eosin_paint_runs(paint, 0, f, i * tw, MIN(tw, lw - i * tw), tw, &col_runs[i]);
  for (int j = 0; j < down; j++)
    _eosin_paint_runs(paint, 1, f, j * th, MIN(th, lh - j * th), th, &row_runs[j]);
  g_autofree uint8_t *raw = codec == CODEC_LZW ? g_malloc(tile_bytes * CHUNK) : NULL;
  for (int first = 0; first < n; first += CHUNK) {
    if (cancel && g_atomic_int_get(&cancel->cancelled)) {
      *stopped = true;
      return false;
    }
    int m = MIN(CHUNK, n - first);
    memset(enc, 0, sizeof(Encoded) * CHUNK);
    Chunk c = {paint, bands, f,     f,     lw,  lh,       tw,      th,
               across, first, codec, enc, raw, col_runs, row_runs};
    classify_tiles(&c, level, m, seen, kb);
    /* scratch of each worker: a painted tile and its compressed bytes */
    _eosin_parallel_for(m, tile_bytes + compress_bound(tile_bytes), encode_tile, &c);
    bool ok = true;
    for (int k = 0; k < m; k++) {
      Encoded *e = &enc[k];
      uint32_t t = (uint32_t) (first + k);
      if (ok)
        ok = store_tile(tif, w, e, t, level, codec, raw + (raw ? tile_bytes * k : 0),
                        tile_bytes, seen, dups);
      g_free(e->bytes); /* every tile's, also after a failure */
    }
    if (!ok)
      return false;
  }
  return TIFFWriteDirectory(tif) != 0;
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
  /* layout or digest key bytes -> tile_ref of the tile first written with
   * them (the two kinds of key begin with different letters) */
  g_autoptr(GHashTable) seen =
      g_hash_table_new_full(g_bytes_hash, g_bytes_equal, (GDestroyNotify) g_bytes_unref, NULL);
  for (guint level = 0; ok && level < factors->len; level++) {
    GArray *pairs = g_array_new(FALSE, FALSE, sizeof(guint32));
    g_ptr_array_add(dups, pairs);
    ok = write_level(tif, &w, paint, (int) level, g_array_index(factors, int, level),
                     info->width, info->height, bands, codec, info->mpp_x, info->mpp_y,
                     description, cancel, seen, pairs, &stopped);
  }
  /* libtiff reports a failed final flush only here */
  if (tif) {
    if (ok && !TIFFFlush(tif))
      ok = false;
    /* libtiff writes nothing after this flush: its tables can be patched */
    if (ok && !_eosin_tiff_patch_repeats(TIFFFileno(tif), dups, w.error))
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
