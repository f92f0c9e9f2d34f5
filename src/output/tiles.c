/*
 * tiles.c — the per-tile outputs of a slide, one entry per analysed
 * tile in plan order: tiles.csv (level-0 geometry, tissue fraction and
 * every channel — the mean over the tile's map for analyzers that give
 * one) and tiles.geojson, the same tiles as QuPath detections whose
 * measurements are those numbers, so a lab sees a task's results in
 * QuPath with Measure > Show measurement maps (QuPath cannot lay a raster
 * such as overlay.tif over a slide). [overlay] tiles_geojson = zip writes
 * tiles.geojson.zip instead, a zip archive holding tiles.geojson, which
 * QuPath imports as it is (it reads .geojson, .json and .zip, not .gz).
 *
 * tiles.geojson is streamed through a small buffer into a temporary file
 * (files.c), never built as a JSON tree: a whole slide's 100k tiles cost
 * 64 KB of memory, and no half-written file is ever left in place.
 */
#include "eosin-private.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <zlib.h>

/* bytes gathered before they go to the file (or through deflate) */
#define CHUNK (64 << 10)
/* the name of the one entry in tiles.geojson.zip */
#define ZIP_ENTRY "tiles.geojson"

/* Channel @c of tile @t: the mean over the tile's @cells cells, NaN or
 * infinite when the analyzer gave no value (a tile without cells). Both
 * files take their numbers from here, so they always agree. */
static double tile_value(const float *values, guint t, size_t cells, int n_channels, int c) {
  const float *v = values + (size_t) t * cells * n_channels;
  double sum = 0;
  for (size_t k = 0; k < cells; k++)
    sum += v[k * n_channels + c];
  return sum / cells;
}

static int tile_width(const EosinTilePlan *plan) {
  return (int) (plan->tile_l0_x + 0.5);
}

static int tile_height(const EosinTilePlan *plan) {
  return (int) (plan->tile_l0_y + 0.5);
}

bool _eosin_write_tiles_csv(const char *path, const EosinTilePlan *plan,
                            const EosinAnalyzerInfo *ai, const float *values, GError **err) {
  g_autoptr(GString) s = g_string_new("tile,col,row,x,y,width,height,tissue");
  for (int c = 0; c < ai->n_channels; c++)
    g_string_append_printf(s, ",%s", ai->channel_names[c]);
  g_string_append_c(s, '\n');
  const EosinTile *tiles = (const EosinTile *) plan->tiles->data;
  int w = tile_width(plan), h = tile_height(plan);
  char num[G_ASCII_DTOSTR_BUF_SIZE];
  size_t cells = _eosin_values_per_tile(ai) / ai->n_channels;
  for (guint t = 0; t < plan->tiles->len; t++) {
    g_string_append_printf(s, "%u,%d,%d,%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%d,%d,%s", t,
                           tiles[t].col, tiles[t].row, tiles[t].x, tiles[t].y, w, h,
                           g_ascii_formatd(num, sizeof num, "%.4f", tiles[t].tissue));
    for (int c = 0; c < ai->n_channels; c++) {
      double m = tile_value(values, t, cells, ai->n_channels, c);
      /* an analyzer's "no value" (a tile without cells) is an empty field */
      g_string_append_printf(s, ",%s",
                             isfinite(m) ? g_ascii_formatd(num, sizeof num, "%.9g", m) : "");
    }
    g_string_append_c(s, '\n');
  }
  return _eosin_write_atomic(path, s->str, s->len, err);
}

const char *_eosin_tiles_geojson_name(const EosinConfig *cfg) {
  if (!cfg->tiles_geojson || !strcmp(cfg->tiles_geojson, "plain"))
    return "tiles.geojson";
  return !strcmp(cfg->tiles_geojson, "zip") ? "tiles.geojson.zip" : NULL;
}

/* ------------------------------------------------------------ the stream */

/* Where the GeoJSON text goes: straight into @f, or deflated into the one
 * entry of a zip archive whose local header @f already holds. */
typedef struct {
  FILE *f;
  const char *path;
  bool zip;
  z_stream z;
  bool z_open;
  uLong crc;
  guint64 raw, packed;
  GString *buf;
  guint8 out[CHUNK];
} Sink;

static bool sink_flush(Sink *s, bool last, GError **err) {
  if (!s->zip) {
    if (s->buf->len && fwrite(s->buf->str, 1, s->buf->len, s->f) != s->buf->len) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", s->path,
                  g_strerror(errno ? errno : EIO));
      return false;
    }
    g_string_truncate(s->buf, 0);
    return true;
  }
  s->crc = crc32(s->crc, (const Bytef *) s->buf->str, (uInt) s->buf->len);
  s->raw += s->buf->len;
  s->z.next_in = (Bytef *) s->buf->str;
  s->z.avail_in = (uInt) s->buf->len;
  int flush = last ? Z_FINISH : Z_NO_FLUSH, rc;
  do {
    s->z.next_out = s->out;
    s->z.avail_out = sizeof s->out;
    rc = deflate(&s->z, flush);
    if (rc == Z_STREAM_ERROR) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "writing %s: deflate failed", s->path);
      return false;
    }
    size_t n = sizeof s->out - s->z.avail_out;
    if (n && fwrite(s->out, 1, n, s->f) != n) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", s->path,
                  g_strerror(errno ? errno : EIO));
      return false;
    }
    s->packed += n;
  } while (s->z.avail_out == 0 || (last && rc != Z_STREAM_END));
  g_string_truncate(s->buf, 0);
  return true;
}

static void put16(guint8 *p, unsigned v) {
  p[0] = v & 0xff, p[1] = (v >> 8) & 0xff;
}

static void put32(guint8 *p, guint32 v) {
  put16(p, v & 0xffff), put16(p + 2, v >> 16);
}

/* The fields a zip's local and central headers share, from "version
 * needed" on: method deflate, a fixed date (1980-01-01, so the same result
 * is the same bytes), CRC-32, sizes, the name's length. */
static void zip_common(guint8 p[26], const Sink *s) {
  memset(p, 0, 26);
  put16(p, 20);        /* version needed: deflate */
  put16(p + 4, 8);     /* deflate */
  put16(p + 8, 0x21);  /* 1980-01-01; time 00:00 */
  put32(p + 10, (guint32) s->crc);
  put32(p + 14, (guint32) s->packed);
  put32(p + 18, (guint32) s->raw);
  put16(p + 22, sizeof ZIP_ENTRY - 1);
}

static bool zip_begin(Sink *s, GError **err) {
  memset(&s->z, 0, sizeof s->z);
  /* raw deflate (no zlib header): what a zip entry holds */
  if (deflateInit2(&s->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "writing %s: deflate init failed",
                s->path);
    return false;
  }
  s->z_open = true;
  s->crc = crc32(0, Z_NULL, 0);
  guint8 h[30];
  put32(h, 0x04034b50);
  zip_common(h + 4, s); /* CRC and sizes are filled in by zip_end */
  if (fwrite(h, 1, sizeof h, s->f) != sizeof h ||
      fwrite(ZIP_ENTRY, 1, sizeof ZIP_ENTRY - 1, s->f) != sizeof ZIP_ENTRY - 1) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", s->path,
                g_strerror(errno ? errno : EIO));
    return false;
  }
  return true;
}

/* After the last deflated byte: the local header's CRC and sizes written
 * in place (so no data descriptor is needed), then the central directory
 * and its end record. Zip64 is not written: a tiles.geojson of 4 GB would
 * be some 20 million tiles. */
static bool zip_end(Sink *s, GError **err) {
  if (s->raw >= 0xffffffffu || s->packed >= 0xffffffffu - 1024) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "writing %s: %" G_GUINT64_FORMAT " bytes of GeoJSON do not fit a zip without "
                "zip64: set [overlay] tiles_geojson = plain",
                s->path, s->raw);
    return false;
  }
  guint8 common[26];
  zip_common(common, s);
  long end = 30 + (long) sizeof ZIP_ENTRY - 1 + (long) s->packed;
  guint8 cd[46], eocd[22];
  memset(cd, 0, sizeof cd);
  put32(cd, 0x02014b50);
  put16(cd + 4, 20); /* made by: version 2.0 */
  memcpy(cd + 6, common, sizeof common);
  /* cd + 32..45: no extra field or comment, disk 0, attributes 0, the
   * local header at offset 0 */
  memset(eocd, 0, sizeof eocd);
  put32(eocd, 0x06054b50);
  put16(eocd + 8, 1);
  put16(eocd + 10, 1);
  put32(eocd + 12, sizeof cd + sizeof ZIP_ENTRY - 1);
  put32(eocd + 16, (guint32) end);
  bool ok = fseek(s->f, 14, SEEK_SET) == 0 && fwrite(common + 10, 1, 12, s->f) == 12 &&
            fseek(s->f, end, SEEK_SET) == 0 && fwrite(cd, 1, sizeof cd, s->f) == sizeof cd &&
            fwrite(ZIP_ENTRY, 1, sizeof ZIP_ENTRY - 1, s->f) == sizeof ZIP_ENTRY - 1 &&
            fwrite(eocd, 1, sizeof eocd, s->f) == sizeof eocd;
  if (!ok)
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", s->path,
                g_strerror(errno ? errno : EIO));
  return ok;
}

/* @name as a JSON string, quotes included. Caller frees. */
static char *json_string(const char *name) {
  GString *s = g_string_new("\"");
  for (const unsigned char *c = (const unsigned char *) name; *c; c++) {
    if (*c == '"' || *c == '\\')
      g_string_append_printf(s, "\\%c", *c);
    else if (*c < 0x20)
      g_string_append_printf(s, "\\u%04x", *c);
    else
      g_string_append_c(s, (char) *c);
  }
  g_string_append_c(s, '"');
  return g_string_free(s, FALSE);
}

/* One tile as a QuPath detection: a closed 5-point ring in QuPath's pixel
 * coordinates, and its measurements, a value that is not finite left out
 * (JSON has no NaN; tiles.csv leaves the field empty). */
static void append_tile(GString *b, const EosinTile *tile, int64_t x0, int64_t y0, int w, int h,
                        const EosinAnalyzerInfo *ai, char **names, const float *values,
                        guint t, size_t cells) {
  int64_t x1 = x0 + w, y1 = y0 + h;
  g_string_append_printf(b,
                         "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\","
                         "\"coordinates\":[[[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
                         "],[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "],[%" G_GINT64_FORMAT
                         ",%" G_GINT64_FORMAT "],[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
                         "],[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT "]]]},"
                         "\"properties\":{\"objectType\":\"detection\",\"measurements\":{",
                         x0, y0, x1, y0, x1, y1, x0, y1, x0, y0);
  char num[G_ASCII_DTOSTR_BUF_SIZE];
  /* 4 significant digits: a measurement map's colours resolve far less */
  g_string_append_printf(b, "\"tissue\":%s",
                         g_ascii_formatd(num, sizeof num, "%.4g", tile->tissue));
  for (int c = 0; c < ai->n_channels; c++) {
    double m = tile_value(values, t, cells, ai->n_channels, c);
    if (isfinite(m))
      g_string_append_printf(b, ",%s:%s", names[c], g_ascii_formatd(num, sizeof num, "%.4g", m));
  }
  g_string_append(b, "}}}");
}

bool _eosin_write_tiles_geojson(const char *path, bool zip, const EosinTilePlan *plan,
                                const EosinAnalyzerInfo *ai, const float *values,
                                const EosinSlideInfo *info, GError **err) {
  int64_t ox, oy;
  _eosin_qupath_origin(info, &ox, &oy);
  EosinOutFile *o = _eosin_out_open(path, err);
  if (!o)
    return false;
  g_autofree Sink *s = g_new0(Sink, 1);
  s->f = _eosin_out_stream(o);
  s->path = path;
  s->zip = zip;
  s->buf = g_string_sized_new(CHUNK + 4096);
  g_auto(GStrv) names = g_new0(char *, ai->n_channels + 1);
  for (int c = 0; c < ai->n_channels; c++)
    names[c] = json_string(ai->channel_names[c]);
  const EosinTile *tiles = (const EosinTile *) plan->tiles->data;
  int w = tile_width(plan), h = tile_height(plan);
  size_t cells = _eosin_values_per_tile(ai) / ai->n_channels;
  bool ok = !zip || zip_begin(s, err);
  if (ok)
    g_string_append(s->buf, "{\"type\":\"FeatureCollection\",\"features\":[\n");
  for (guint t = 0; ok && t < plan->tiles->len; t++) {
    if (t)
      g_string_append(s->buf, ",\n");
    append_tile(s->buf, &tiles[t], tiles[t].x - ox, tiles[t].y - oy, w, h, ai, names, values, t,
                cells);
    if (s->buf->len >= CHUNK)
      ok = sink_flush(s, false, err);
  }
  if (ok) {
    g_string_append(s->buf, "\n]}\n");
    ok = sink_flush(s, true, err) && (!zip || zip_end(s, err));
  }
  if (s->z_open)
    deflateEnd(&s->z);
  g_string_free(s->buf, TRUE);
  return _eosin_out_close(o, ok, ok ? err : NULL) && ok;
}
