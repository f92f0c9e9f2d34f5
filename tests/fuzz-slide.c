/*
 * fuzz-slide.c — libFuzzer target for the slide readers (`make fuzz`):
 * OpenSlide (Aperio, Leica, generic tiled TIFF, ... as OpenSlide detects
 * them) and libvips (PNG, JPEG, TIFF, WebP), with Eosin's checks around
 * them (format sniffing, tile-size bombs, bounds, µm/px, YCbCr JPEG in
 * TIFF, conversion to RGB).
 *
 * The input is a file: its first byte picks the extension it is saved
 * with (EXTS below: OpenSlide and Eosin also go by the name), the rest is
 * the file. It is opened with eosin_slide_open (--mpp 0.5 as a fallback),
 * its info checked, three small regions read (level 0 at the bounds, the
 * last level, across the bottom-right edge), a 256 px thumbnail made, the
 * tissue found on it and the first tiles of a plan read (resampled when no
 * level matches), as a run would.
 *
 * Seeds are small generated slides (scripts/data/make-fuzz-corpus). Eosin's
 * own limits allow a thumbnail to read a level of 8 Gpx (minutes, by
 * design; test-slide.c covers those bombs), so the thumbnail and tiles are
 * skipped when the level they would read has more than FUZZ_MAX_PIXELS.
 * The libraries are not instrumented: extra counters (fuzz-common.c) make
 * a new vendor, level count or error message a new feature.
 */
#include "fuzz-common.c"

#define FUZZ_MAX_PIXELS 16e6

static const char *const EXTS[] = {".svs", ".tif", ".scn", ".png", ".jpg",
                                   ".tiff", ".ndpi", ".bif", ".webp"};
static EosinConfig *cfg;

static void init_once(void) {
  if (cfg)
    return;
  fuzz_tolerate_glib_criticals = true; /* OpenSlide's own (fuzz-common.c) */
  GError *err = NULL;
  if (!_eosin_vips_init(&err))
    abort();
  vips_concurrency_set(1);
  /* the same path is rewritten for every input: no cached loads */
  vips_cache_set_max(0);
  static const char CFG[] = "[task]\nname = fuzz\nanalyzer = stain\n"
                            "[tiling]\ntile_size = 64\noverlap = 8\nmpp = 1.3\n"
                            "[tissue]\nmin_fraction = 0\nthumbnail_mpp = 1\n"
                            "min_object_um2 = 0\nmax_hole_um2 = 0\n";
  g_autofree char *p = fuzz_write_rel("slide.ini", CFG, strlen(CFG));
  cfg = eosin_config_load(p, &err);
  if (!cfg) {
    fprintf(stderr, "fuzz-slide: %s\n", err->message);
    abort();
  }
}

static void error_feature(const char *what, const GError *err) {
  if (!err)
    return;
  /* the start of the message: which check or library said no */
  g_autofree char *m = g_strndup(err->message, 72);
  fuzz_feature(what, m);
}

static void read_region(EosinSlide *s, int level, int64_t x, int64_t y, int w, int h) {
  g_autofree uint8_t *rgb = g_malloc((size_t) w * h * 3);
  GError *err = NULL;
  bool ok = eosin_slide_read_region(s, level, x, y, w, h, rgb, &err);
  fuzz_contract(ok, err, "eosin_slide_read_region");
  error_feature("region", err);
  fuzz_feature_int("region-ok", ok);
  g_clear_error(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init_once();
  if (size < 1)
    return 0;
  static char *paths[G_N_ELEMENTS(EXTS)];
  int e = data[0] % G_N_ELEMENTS(EXTS);
  if (!paths[e]) {
    g_autofree char *name = g_strconcat("slide", EXTS[e], NULL);
    paths[e] = fuzz_path(name);
  }
  for (size_t i = 0; i < G_N_ELEMENTS(EXTS); i++)
    if (paths[i] && (int) i != e)
      g_unlink(paths[i]);
  fuzz_write(paths[e], data + 1, size - 1);

  GError *err = NULL;
  EosinSlide *s = eosin_slide_open(paths[e], 0.5, &err);
  fuzz_contract(s != NULL, err, "eosin_slide_open");
  fuzz_feature_int("ext", e);
  error_feature("open", err);
  g_clear_error(&err);
  if (!s)
    return 0;

  const EosinSlideInfo *i = eosin_slide_get_info(s);
  fuzz_feature("vendor", i->vendor);
  fuzz_feature_int("levels", i->n_levels);
  fuzz_feature_int("mpp-source", i->mpp_source);
  fuzz_feature_int("bounds", i->has_bounds);
  FUZZ_ASSERT(i->width > 0 && i->height > 0 && i->n_levels >= 1 && i->levels, "%" G_GINT64_FORMAT
              " x %" G_GINT64_FORMAT ", %d levels", i->width, i->height, i->n_levels);
  FUZZ_ASSERT(i->mpp_x >= 0.02 && i->mpp_x <= 50 && i->mpp_y >= 0.02 && i->mpp_y <= 50,
              "mpp %g x %g", i->mpp_x, i->mpp_y);
  FUZZ_ASSERT(i->bounds_x >= 0 && i->bounds_y >= 0 && i->bounds_w > 0 && i->bounds_h > 0 &&
                  i->bounds_x + i->bounds_w <= i->width && i->bounds_y + i->bounds_h <= i->height,
              "bounds");
  FUZZ_ASSERT(i->name && i->path && i->backend && i->vendor && i->associated, "names");

  read_region(s, 0, i->bounds_x, i->bounds_y, 64, 48);
  read_region(s, i->n_levels - 1, 0, 0, 40, 40);
  read_region(s, 0, i->width - 16, i->height - 16, 32, 32);

  /* the level eosin_slide_thumbnail(s, 256, 0) reads */
  double ds = MAX(1.0, (double) MAX(i->width, i->height) / 256);
  int level = 0;
  for (int l = 0; l < i->n_levels; l++)
    if (i->levels[l].downsample <= ds * 1.001)
      level = l;
  if ((double) i->levels[level].width * i->levels[level].height > FUZZ_MAX_PIXELS)
    goto out;
  EosinThumbnail thumb = {0};
  bool ok = eosin_slide_thumbnail(s, 256, 0, &thumb, &err);
  fuzz_contract(ok, err, "eosin_slide_thumbnail");
  error_feature("thumbnail", err);
  fuzz_feature_int("thumbnail-ok", ok);
  g_clear_error(&err);
  if (!ok)
    goto out;
  FUZZ_ASSERT(thumb.rgb && thumb.width >= 1 && thumb.height >= 1 && thumb.width <= 258 &&
                  thumb.height <= 258,
              "thumbnail %d x %d", thumb.width, thumb.height);

  EosinTissueMask mask = {0};
  ok = eosin_tissue_detect(&thumb, i, cfg, &mask, &err);
  fuzz_contract(ok, err, "eosin_tissue_detect");
  g_clear_error(&err);
  /* the plan's grid, estimated first: a huge slide at a tiny µm/px is
   * millions of tiles, by design */
  double tile_l0 = cfg->tile_size * cfg->mpp / i->mpp_x;
  double n_tiles = (i->bounds_w / tile_l0 + 2) * (i->bounds_h / tile_l0 + 2);
  EosinTilePlan plan = {0};
  if (ok && n_tiles < 1e5) {
    ok = eosin_tile_plan(i, cfg, &mask, &plan, &err);
    fuzz_contract(ok, err, "eosin_tile_plan");
    g_clear_error(&err);
    if (ok) {
      fuzz_feature_int("resample", plan.level.resample);
      const EosinLevel *l = &i->levels[plan.level.level];
      if ((double) l->width * l->height <= FUZZ_MAX_PIXELS) {
        size_t px = (size_t) plan.tile_size * plan.tile_size * 3;
        g_autofree uint8_t *rgb = g_malloc(px);
        for (guint t = 0; t < MIN(plan.tiles->len, 3); t++) {
          const EosinTile *tile = &g_array_index(plan.tiles, EosinTile, t);
          bool tok = eosin_tile_read(s, &plan, tile, rgb, &err);
          fuzz_contract(tok, err, "eosin_tile_read");
          error_feature("tile", err);
          g_clear_error(&err);
        }
      }
    }
    eosin_tile_plan_clear(&plan);
  }
  eosin_tissue_clear(&mask);
  eosin_thumbnail_clear(&thumb);
out:
  eosin_slide_free(s);
  return 0;
}
