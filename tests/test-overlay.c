/*
 * test-overlay.c — overlays line up with the slide. Generated slides with
 * blocks of known colour (odd sizes, a Leica bounds offset, µm/px from
 * Aperio and from TIFF tags, resampled and direct levels) run through the
 * stain task; overlay.tif and heatmap.tif are read back through OpenSlide
 * at each block's level-0 centre and must show the colour the block's
 * stain value maps to, and nothing outside tissue and outside the bounds.
 */
#include "test-util.h"

#include <math.h>
#include <openslide.h>
#include <tiffio.h>

#include "cells/eosin-cells.h"
#include "eosin-private.h"

/* The overlay colour the stain task must paint over a block of @rgb with
 * the test config (hematoxylin, viridis, 0..1.5, alpha 0.8). */
static void expected_colour(const uint8_t rgb[3], uint8_t out[4], uint8_t *q) {
  static const double HED[3][3] = {{0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, {0.27, 0.57, 0.78}};
  double inv[3][3];
  cr_assert(_eosin_stain_matrix_invert(HED, inv, NULL));
  float c[3];
  _eosin_stain_deconvolve(rgb, 1, inv, c);
  EosinColormap cm;
  cr_assert(_eosin_colormap_get("viridis", &cm, NULL));
  double u = CLAMP(c[0] / 1.5, 0.0, 1.0);
  int idx = (int) lround(255 * u);
  memcpy(out, cm.lut[idx], 3);
  out[3] = (uint8_t) lround(255 * 0.8);
  *q = (uint8_t) (1 + lround(254 * u));
}

static void check_alignment(const char *slide_name, int tile_size, double mpp, int overlap) {
  g_autofree char *slide = td(slide_name);
  g_autofree char *json = g_strconcat(slide, ".json", NULL);
  int64_t w, h;
  g_autoptr(GArray) blocks = load_blocks(json, &w, &h);
  cr_assert_gt(blocks->len, 4);

  g_autofree char *cfgpath = stain_config(tile_size, mpp, overlap, 0.5, NULL);
  EosinRunResult res;
  run_config_ok(cfgpath, slide, NULL, NULL, &res);
  g_autoptr(GError) err = NULL;
  g_autofree char *overlay = g_build_filename(res.outdir, "overlay.tif", NULL);
  g_autofree char *heatmap = g_build_filename(res.outdir, "heatmap.tif", NULL);
  cr_expect_gt(openslide_levels(overlay), 2, "overlay.tif is a pyramid");
  cr_expect_gt(openslide_levels(heatmap), 2, "heatmap.tif is a pyramid");

  g_autoptr(EosinSlide) s = eosin_slide_open(slide, 0, &err);
  const EosinSlideInfo *info = eosin_slide_get_info(s);
  g_autoptr(EosinSlide) ov = eosin_slide_open(overlay, 0, &err);
  cr_assert(ov, "%s", err ? err->message : "");
  const EosinSlideInfo *oi = eosin_slide_get_info(ov);
  cr_expect_eq(oi->width, info->width, "overlay width = slide level-0 width");
  cr_expect_eq(oi->height, info->height);
  cr_expect_float_eq(oi->mpp_x, info->mpp_x, 1e-4 * info->mpp_x);

  for (guint i = 0; i < blocks->len; i++) {
    Block *b = &g_array_index(blocks, Block, i);
    uint8_t want[4], got[4], q, hq[4];
    expected_colour(b->rgb, want, &q);
    /* JPEG tiles: colours within a few levels. The block centre and points
     * a third in from its corners: every tile covering them lies wholly
     * inside the block (blocks are 400 px, tiles at most 128 level-0 px
     * from these points) */
    int64_t pts[][2] = {{b->x + b->w / 2, b->y + b->h / 2},
                        {b->x + b->w / 3, b->y + b->h / 3},
                        {b->x + 2 * b->w / 3, b->y + 2 * b->h / 3}};
    /* with overlap a cell averages tiles reaching further: centre only */
    int n_pts = overlap ? 1 : 3;
    for (int p = 0; p < n_pts; p++) {
      cr_assert(openslide_pixel(overlay, pts[p][0], pts[p][1], got));
      for (int c = 0; c < 4; c++)
        cr_expect(abs(got[c] - want[c]) <= 3,
                  "%s block %u at (%ld, %ld): overlay %d,%d,%d,%d, expected %d,%d,%d,%d",
                  slide_name, i, (long) pts[p][0], (long) pts[p][1], got[0], got[1], got[2],
                  got[3], want[0], want[1], want[2], want[3]);
      cr_assert(openslide_pixel(heatmap, pts[p][0], pts[p][1], hq));
      cr_expect(abs(hq[0] - q) <= 2, "%s block %u heatmap %d expected %d", slide_name, i, hq[0],
                q);
    }
  }
  /* glass at the top-left of the scanned area and the last pixel: empty */
  uint8_t px[4];
  cr_assert(openslide_pixel(overlay, info->bounds_x + 20, info->bounds_y + 20, px));
  cr_expect_eq(px[3], 0, "no tissue, no colour");
  cr_assert(openslide_pixel(overlay, info->width - 1, info->height - 1, px));
  cr_expect_eq(px[3], 0);
  if (info->has_bounds) {
    /* left of and above the bounds nothing was scanned: transparent, even
     * in the rows and columns where blocks are */
    Block *b = &g_array_index(blocks, Block, 0);
    cr_assert(openslide_pixel(overlay, info->bounds_x - 5, b->y + b->h / 2, px));
    cr_expect_eq(px[3], 0, "outside the bounds");
    cr_assert(openslide_pixel(overlay, b->x + b->w / 2, info->bounds_y - 5, px));
    cr_expect_eq(px[3], 0, "outside the bounds");
  }
  eosin_run_result_clear(&res);
}

Test(overlay, aperio_odd_size_direct_level) {
  /* 0.5 µm/px slide, tiles at 1.0 µm/px: level 1 read as it is */
  check_alignment("blocks-aperio.svs", 64, 1.0, 0);
}

Test(overlay, aperio_resampled_with_overlap) {
  /* 1.5 µm/px is no level: level 1 resampled; overlapping tiles averaged */
  check_alignment("blocks-aperio.svs", 32, 1.5, 8);
}

Test(overlay, leica_bounds_offset) {
  check_alignment("blocks-leica.scn", 64, 1.0, 0);
}

Test(overlay, generic_tiff_mpp_from_tags) {
  /* 0.25 µm/px from TIFF resolution; 1.0 µm/px is level 2 */
  check_alignment("blocks-generic.tif", 32, 1.0, 8);
}

/* An Aperio-like slide whose levels go down by 4 (1, 4, 16), as real
 * scanners write them: tissue-a.svs's levels 0, 2 and 4 re-written with
 * libtiff (deflate tiles) under an Aperio ImageDescription. Returns its
 * path in a temporary folder (freed by the caller). */
static char *make_factor4_aperio(void) {
  g_autofree char *src = td("tissue-a.svs");
  openslide_t *osr = openslide_open(src);
  cr_assert(osr && !openslide_get_error(osr), "%s", src);
  g_autofree char *dir = tmp_dir();
  char *path = g_build_filename(dir, "factor4.svs", NULL);
  TIFF *tif = TIFFOpen(path, "w");
  cr_assert(tif);
  int64_t w0, h0;
  openslide_get_level_dimensions(osr, 0, &w0, &h0);
  int src_levels[] = {0, 2, 4};
  for (int l = 0; l < 3; l++) {
    int64_t w, h;
    openslide_get_level_dimensions(osr, src_levels[l], &w, &h);
    g_autofree uint32_t *argb = g_new(uint32_t, w * h);
    openslide_read_region(osr, argb, 0, 0, src_levels[l], w, h);
    cr_assert(!openslide_get_error(osr));
    g_autofree char *desc = g_strdup_printf(
        "Aperio Image Library v10.0.0\r\n%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
        " [0,0 %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "] (256x256) -> %" G_GINT64_FORMAT
        "x%" G_GINT64_FORMAT "|AppMag = 20|MPP = 0.5",
        w0, h0, w0, h0, w, h);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t) w);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t) h);
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, 256);
    TIFFSetField(tif, TIFFTAG_TILELENGTH, 256);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
    TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, desc);
    TIFFSetField(tif, TIFFTAG_SUBFILETYPE, l ? FILETYPE_REDUCEDIMAGE : 0);
    g_autofree uint8_t *tile = g_new(uint8_t, 256 * 256 * 3);
    for (int64_t ty = 0; ty < h; ty += 256)
      for (int64_t tx = 0; tx < w; tx += 256) {
        memset(tile, 255, 256 * 256 * 3);
        for (int64_t y = ty; y < MIN(h, ty + 256); y++)
          for (int64_t x = tx; x < MIN(w, tx + 256); x++) {
            uint32_t p = argb[y * w + x];
            uint8_t *o = tile + ((y - ty) * 256 + (x - tx)) * 3;
            o[0] = p >> 16, o[1] = p >> 8, o[2] = p;
          }
        cr_assert(TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, tx, ty, 0, 0), tile,
                                       256 * 256 * 3) > 0);
      }
    cr_assert(TIFFWriteDirectory(tif));
  }
  TIFFClose(tif);
  openslide_close(osr);
  return path;
}

/* OpenSlide's level downsamples of @a and @b agree within rounding of the
 * level sizes (the overlay's are ceil(width / factor)). */
static void expect_same_levels(const char *a, const char *b) {
  openslide_t *oa = openslide_open(a), *ob = openslide_open(b);
  cr_assert(oa && ob && !openslide_get_error(oa) && !openslide_get_error(ob));
  int na = openslide_get_level_count(oa), nb = openslide_get_level_count(ob);
  cr_expect_geq(nb, na, "%s has a level per level of %s", b, a);
  for (int l = 0; l < MIN(na, nb); l++) {
    double da = openslide_get_level_downsample(oa, l), db = openslide_get_level_downsample(ob, l);
    cr_expect(fabs(db / da - 1) < 0.01, "level %d: %s downsample %g, slide's %g", l, b, db, da);
  }
  /* below the slide's smallest: halving, and the last level one tile */
  for (int l = na; l < nb; l++)
    cr_expect(fabs(openslide_get_level_downsample(ob, l) /
                       openslide_get_level_downsample(ob, l - 1) - 2) < 0.02);
  int64_t w, h;
  openslide_get_level_dimensions(ob, nb - 1, &w, &h);
  cr_expect(w <= 256 && h <= 256, "the last level is one tile: %ldx%ld", (long) w, (long) h);
  openslide_close(oa);
  openslide_close(ob);
}

/* Directory @d of @tif made current, and its size, tile size and bands. */
typedef struct {
  uint32_t w, h, tw, th;
  uint16_t spp;
} Level;

static Level set_level(TIFF *tif, tdir_t d) {
  Level v = {0};
  cr_assert(TIFFSetDirectory(tif, d));
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &v.w);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &v.h);
  TIFFGetField(tif, TIFFTAG_TILEWIDTH, &v.tw);
  TIFFGetField(tif, TIFFTAG_TILELENGTH, &v.th);
  TIFFGetField(tif, TIFFTAG_SAMPLESPERPIXEL, &v.spp);
  return v;
}

/* Every level of @path read through OpenSlide equals libtiff's decode of
 * it near the corners, the middle and a third of the way in. */
static void expect_openslide_matches_libtiff(const char *path) {
  openslide_t *osr = openslide_open(path);
  cr_assert(osr && !openslide_get_error(osr), "%s", path);
  TIFF *tif = TIFFOpen(path, "r");
  cr_assert(tif);
  int levels = openslide_get_level_count(osr);
  cr_expect_eq(levels, TIFFNumberOfDirectories(tif));
  for (int l = 0; l < levels; l++) {
    Level v = set_level(tif, (tdir_t) l);
    uint32_t w = v.w, h = v.h, tw = v.tw, th = v.th;
    uint16_t spp = v.spp;
    double ds = openslide_get_level_downsample(osr, l);
    cr_expect(tw <= w && th <= h, "level %d: its tiles fit in it (OpenSlide reads them)", l);
    g_autofree uint8_t *tile = g_malloc(TIFFTileSize(tif));
    /* not the very last pixel: OpenSlide places a level at fractional
     * level-0 positions and blends the edge with what lies beyond it */
    uint32_t pts[][2] = {{0, 0}, {w / 3, h / 3}, {w / 2, h / 2}, {w - 2, h - 2}, {w / 2, h / 3}};
    for (int p = 0; p < 5; p++) {
      uint32_t x = pts[p][0], y = pts[p][1];
      cr_assert(TIFFReadEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), tile, -1) > 0);
      const uint8_t *t = tile + ((y % th) * tw + x % tw) * spp;
      uint8_t want[4] = {t[0], spp >= 3 ? t[1] : t[0], spp >= 3 ? t[2] : t[0],
                         spp == 4 ? t[3] : 255};
      uint32_t px = 0;
      /* the level-0 point whose level-l pixel is (x, y) */
      openslide_read_region(osr, &px, (int64_t) ceil(x * ds), (int64_t) ceil(y * ds), l, 1, 1);
      cr_assert(!openslide_get_error(osr));
      uint8_t a = px >> 24;
      cr_expect_eq(a, want[3], "%s level %d (%u, %u): alpha %d, libtiff %d", path, l, x, y, a,
                   want[3]);
      for (int c = 0; c < 3; c++) {
        int got = (px >> (16 - 8 * c)) & 0xff, pre = (want[c] * want[3] + 127) / 255;
        cr_expect(abs(got - pre) <= 1, "%s level %d (%u, %u) channel %d: OpenSlide %d, libtiff %d",
                  path, l, x, y, c, got, pre);
      }
    }
  }
  TIFFClose(tif);
  openslide_close(osr);
}

/* Every level of @path decoded by libvips (in-process) and by Python's
 * tifffile (a reader of its own, when /usr/bin/python3 has it) equals
 * libtiff's decode at the same points as above: three readers, one
 * answer, on every level. */
static void expect_readers_agree(const char *path) {
  TIFF *tif = TIFFOpen(path, "r");
  cr_assert(tif);
  int levels = TIFFNumberOfDirectories(tif);
  g_autoptr(GString) pts = g_string_new(NULL);
  g_autoptr(GArray) want = g_array_new(FALSE, FALSE, sizeof(int));
  for (int l = 0; l < levels; l++) {
    Level v = set_level(tif, (tdir_t) l);
    uint32_t w = v.w, h = v.h, tw = v.tw, th = v.th;
    uint16_t spp = v.spp;
    g_autofree uint8_t *tile = g_malloc(TIFFTileSize(tif));
    g_autoptr(VipsImage) page = vips_image_new_from_file(path, "page", l, NULL);
    cr_assert(page, "libvips opens page %d of %s: %s", l, path, vips_error_buffer());
    cr_expect_eq(page->Xsize, (int) w);
    cr_expect_eq(page->Bands, spp);
    uint32_t at[][2] = {{0, 0}, {w / 3, h / 3}, {w / 2, h / 2}, {w - 1, h - 1}, {w / 2, h / 3}};
    for (int p = 0; p < 5; p++) {
      uint32_t x = at[p][0], y = at[p][1];
      cr_assert(TIFFReadEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), tile, -1) > 0);
      const uint8_t *t = tile + ((y % th) * tw + x % tw) * spp;
      double *px = NULL;
      int n = 0;
      cr_assert(!vips_getpoint(page, &px, &n, (int) x, (int) y, NULL));
      for (int c = 0; c < spp; c++) {
        cr_expect_eq((int) px[c], t[c], "%s level %d (%u, %u) band %d: libvips %d, libtiff %d",
                     path, l, x, y, c, (int) px[c], t[c]);
        int value = t[c];
        g_array_append_val(want, value);
      }
      g_free(px);
      g_string_append_printf(pts, "%s[%d,%u,%u]", pts->len ? "," : "", l, x, y);
    }
  }
  TIFFClose(tif);
  if (!g_file_test("/usr/bin/python3", G_FILE_TEST_IS_EXECUTABLE) ||
      system("/usr/bin/python3 -c 'import tifffile' 2>/dev/null") != 0) {
    cr_log_warn("tifffile is not installed for /usr/bin/python3 (Debian python3-tifffile): "
                "its reading of %s is not checked", path);
    return;
  }
  g_autofree char *script = g_strdup_printf(
      "import sys, tifffile\n"
      "pages = tifffile.TiffFile(sys.argv[1]).pages\n"
      "for l, x, y in [%s]:\n"
      "    a = pages[l].asarray()\n"
      "    v = a[y, x]\n"
      "    print(' '.join(str(int(b)) for b in (v if a.ndim == 3 else [v])))\n",
      pts->str);
  const char *argv[] = {"/usr/bin/python3", "-c", script, path, NULL};
  g_autofree char *out = NULL, *errs = NULL;
  int status = 0;
  g_autoptr(GError) err = NULL;
  cr_assert(g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &errs,
                         &status, &err),
            "%s", err ? err->message : "");
  cr_assert(g_spawn_check_wait_status(status, NULL), "tifffile failed on %s: %s", path, errs);
  g_auto(GStrv) words = g_strsplit_set(g_strstrip(out), " \n", -1);
  cr_assert_eq(g_strv_length(words), want->len, "tifffile gave %u values, libtiff %u",
               g_strv_length(words), want->len);
  for (guint i = 0; i < want->len; i++)
    cr_expect_eq(atoi(words[i]), g_array_index(want, int, i),
                 "%s value %u: tifffile %s, libtiff %d", path, i, words[i],
                 g_array_index(want, int, i));
}

/* Level 0 of @path: the top-left tile (glass) is stored once and another
 * glass tile points at the same bytes. */
static void expect_shared_tiles(const char *path) {
  TIFF *tif = TIFFOpen(path, "r");
  cr_assert(tif);
  uint64_t *off = NULL, *len = NULL;
  cr_assert(TIFFGetField(tif, TIFFTAG_TILEOFFSETS, &off));
  cr_assert(TIFFGetField(tif, TIFFTAG_TILEBYTECOUNTS, &len));
  uint32_t n = TIFFNumberOfTiles(tif), shared = 0, other = 0;
  for (uint32_t t = 1; t < n; t++) {
    cr_expect_neq(off[t], 0, "tile %u was written", t);
    if (off[t] == off[0]) {
      cr_expect_eq(len[t], len[0]);
      other = other ? other : t;
      shared++;
    }
  }
  cr_expect_gt(shared, 0, "%s: a glass tile shares tile 0's bytes", path);
  if (other) {
    /* the shared bytes decode to a uniform tile, as tile 0 */
    tmsize_t sz = TIFFTileSize(tif);
    g_autofree uint8_t *a = g_malloc(sz), *b = g_malloc(sz);
    cr_assert(TIFFReadEncodedTile(tif, 0, a, -1) == sz);
    cr_assert(TIFFReadEncodedTile(tif, other, b, -1) == sz);
    cr_expect(!memcmp(a, b, sz));
    uint16_t spp;
    TIFFGetField(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    bool uniform = true;
    for (tmsize_t i = spp; i < sz && uniform; i++)
      uniform = a[i] == a[i % spp];
    cr_expect(uniform, "tile 0 of %s is uniform", path);
  }
  TIFFClose(tif);
}

static void check_levels(const char *slide) {
  g_autofree char *cfgpath = stain_config(64, 1.0, 0, 0.5, NULL);
  EosinRunResult res;
  run_config_ok(cfgpath, slide, NULL, NULL, &res);
  g_autofree char *overlay = g_build_filename(res.outdir, "overlay.tif", NULL);
  g_autofree char *heatmap = g_build_filename(res.outdir, "heatmap.tif", NULL);
  expect_same_levels(slide, overlay);
  expect_same_levels(slide, heatmap);
  expect_shared_tiles(overlay);
  expect_shared_tiles(heatmap);
  expect_openslide_matches_libtiff(overlay);
  expect_openslide_matches_libtiff(heatmap);
  expect_readers_agree(overlay);
  expect_readers_agree(heatmap);
  TIFF *tif = TIFFOpen(heatmap, "r");
  cr_assert(tif);
  const char *desc = NULL;
  cr_assert(TIFFGetField(tif, TIFFTAG_IMAGEDESCRIPTION, &desc));
  cr_expect(strstr(desc, "8-bit values: 0 = no data, 1..255 = ") != NULL, "%s", desc);
  cr_expect(strstr(desc, "colour map") == NULL, "%s", desc);
  TIFFClose(tif);
  eosin_run_result_clear(&res);
}

Test(overlay, levels_mirror_a_factor4_aperio_slide) {
  g_autofree char *slide = make_factor4_aperio();
  openslide_t *osr = openslide_open(slide);
  cr_assert(osr && !openslide_get_error(osr));
  cr_assert_eq(openslide_get_level_count(osr), 3);
  cr_assert_str_eq(openslide_get_property_value(osr, OPENSLIDE_PROPERTY_NAME_VENDOR), "aperio");
  cr_assert(fabs(openslide_get_level_downsample(osr, 1) - 4) < 0.01);
  openslide_close(osr);
  check_levels(slide);
}

Test(overlay, levels_mirror_a_factor2_generic_tiff) {
  g_autofree char *slide = td("blocks-generic.tif");
  check_levels(slide);
}

/* The tiles of a level lie inside one cell each when the cell stride
 * allows it: 256 px cells (256 px tiles read at the slide's own 0.5 µm/px)
 * are 256 px tiles at level 0 and 128 px ones at level 1 (factor 2, cells
 * of 128 px), and every whole tile of both levels decodes to one value.
 * And a tile equal to one of an earlier level is stored once for both: a
 * level's TileOffsets point into an earlier level's bytes (from the IFDs). */
Test(overlay, tiles_inside_one_cell_and_shared_across_levels) {
  g_autofree char *slide = td("large-blocks.svs");
  g_autofree char *cfgpath = stain_config(256, 0.5, 0, 0.5, NULL);
  EosinRunResult res;
  run_config_ok(cfgpath, slide, NULL, NULL, &res);
  const char *names[] = {"overlay.tif", "heatmap.tif"};
  for (int f = 0; f < 2; f++) {
    g_autofree char *path = g_build_filename(res.outdir, names[f], NULL);
    TIFF *tif = TIFFOpen(path, "r");
    cr_assert(tif);
    for (tdir_t d = 0; d < 2; d++) {
      Level v = set_level(tif, d);
      uint32_t w = v.w, h = v.h, tw = v.tw, th = v.th, cell = 256 >> d;
      uint16_t spp = v.spp;
      cr_expect(tw == cell && th == cell, "%s level %d: tiles %ux%u, cells %u px", names[f], d,
                tw, th, cell);
      tmsize_t sz = TIFFTileSize(tif);
      g_autofree uint8_t *tile = g_malloc(sz);
      int whole = 0, uniform = 0;
      for (uint32_t y = 0; y + th <= h; y += th)
        for (uint32_t x = 0; x + tw <= w; x += tw) {
          cr_assert(TIFFReadEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), tile, -1) == sz);
          whole++;
          uniform += !memcmp(tile + spp, tile, sz - spp);
        }
      cr_expect_eq(uniform, whole, "%s level %d: %d of %d whole tiles are one value", names[f],
                   d, uniform, whole);
    }
    /* every offset of the levels before (offsets fit in a pointer here) */
    g_autoptr(GHashTable) earlier = g_hash_table_new(g_direct_hash, g_direct_equal);
    int shared_across = 0;
    for (tdir_t d = 0; d < TIFFNumberOfDirectories(tif); d++) {
      cr_assert(TIFFSetDirectory(tif, d));
      uint64_t *off = NULL;
      cr_assert(TIFFGetField(tif, TIFFTAG_TILEOFFSETS, &off));
      uint32_t n = TIFFNumberOfTiles(tif);
      for (uint32_t t = 0; t < n; t++)
        shared_across += g_hash_table_contains(earlier, (gpointer) (guintptr) off[t]);
      for (uint32_t t = 0; t < n; t++)
        g_hash_table_add(earlier, (gpointer) (guintptr) off[t]);
    }
    cr_expect_gt(shared_across, 0, "%s: some tile shares the bytes of an earlier level's",
                 names[f]);
    TIFFClose(tif);
  }
  eosin_run_result_clear(&res);
}
