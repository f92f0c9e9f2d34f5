/*
 * test-tissue.c — the tissue detector: masks on generated slides with known
 * tissue (the blocks slide's blocks, the blank slide's none) and on real
 * slides from ../shared (skipped when absent: CAMELYON16's tumour inside the
 * tissue, CMU-1's tissue and glass); and tissue found where there is no
 * glass to split it from: a generated crop that is all tissue, and
 * he-crop-ome.tif, with every shipped config.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <math.h>

/* The tissue fraction and analysable tiles @cfg finds on @path (µm/px
 * @mpp when it has none). */
static double tissue_with(const EosinConfig *cfg, const char *path, double mpp, int *tiles,
                          bool *glass) {
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) s = eosin_slide_open(path, mpp, &err);
  cr_assert(s, "%s", err ? err->message : "");
  EosinThumbnail t;
  EosinTissueMask m;
  EosinTilePlan plan;
  cr_assert(eosin_slide_thumbnail(s, cfg->tissue_max_side, cfg->tissue_thumbnail_mpp, &t, &err));
  cr_assert(eosin_tissue_detect(&t, eosin_slide_get_info(s), cfg, &m, &err));
  cr_assert(eosin_tile_plan(eosin_slide_get_info(s), cfg, &m, &plan, &err));
  double f = m.fraction;
  *tiles = plan.tiles->len;
  if (glass)
    *glass = m.glass;
  eosin_tile_plan_clear(&plan);
  eosin_tissue_clear(&m);
  eosin_thumbnail_clear(&t);
  return f;
}

/* Every shipped config (the .ini files in configs/), loaded. */
static GPtrArray *shipped_configs(void) {
  GPtrArray *a = g_ptr_array_new_with_free_func((GDestroyNotify) eosin_config_free);
  g_autoptr(GDir) d = g_dir_open("configs", 0, NULL);
  cr_assert(d, "run from the repository root (configs/)");
  const char *name;
  while ((name = g_dir_read_name(d))) {
    if (!g_str_has_suffix(name, ".ini"))
      continue;
    g_autofree char *p = g_build_filename("configs", name, NULL);
    g_autoptr(GError) err = NULL;
    EosinConfig *cfg = eosin_config_load(p, &err);
    cr_assert(cfg, "%s", err ? err->message : "");
    g_ptr_array_add(a, cfg);
  }
  cr_assert_geq(a->len, 6);
  return a;
}

/* A 1000 x 1000 px field at 0.25 µm/px (250 µm) that is tissue to its
 * edges, no glass: pale pink stroma on its left 45 % (saturation about
 * 0.33), purple cellular tissue on the rest (about 0.55), each varying
 * smoothly over 20-60 µm. Otsu alone splits it at the boundary, and the
 * stroma touching the edge is no gap a closing fills. */
static char *all_tissue_crop(const char *dir) {
  enum { N = 1000, G = 12 };
  g_autoptr(GRand) rnd = g_rand_new_with_seed(18);
  double grid[G + 1][G + 1];
  for (int j = 0; j <= G; j++)
    for (int i = 0; i <= G; i++)
      grid[j][i] = g_rand_double(rnd);
  const double pink[3] = {232, 160, 205}, purple[3] = {115, 60, 165};
  g_autofree uint8_t *px = g_malloc((size_t) N * N * 3);
  for (int y = 0; y < N; y++)
    for (int x = 0; x < N; x++) {
      double gx = (double) x * G / N, gy = (double) y * G / N;
      int i = (int) gx, j = (int) gy;
      double fx = gx - i, fy = gy - j;
      double noise = grid[j][i] * (1 - fx) * (1 - fy) + grid[j][i + 1] * fx * (1 - fy) +
                     grid[j + 1][i] * (1 - fx) * fy + grid[j + 1][i + 1] * fx * fy;
      double t = CLAMP((x < 0.45 * N ? 0.15 : 0.85) + 0.2 * (noise - 0.5), 0, 1);
      for (int c = 0; c < 3; c++)
        px[((size_t) y * N + x) * 3 + c] = (uint8_t) lround(pink[c] + t * (purple[c] - pink[c]));
    }
  g_autoptr(VipsImage) img = vips_image_new_from_memory(px, (size_t) N * N * 3, N, N, 3,
                                                        VIPS_FORMAT_UCHAR);
  char *path = g_build_filename(dir, "all-tissue.tif", NULL);
  cr_assert(!vips_tiffsave(img, path, "xres", 1000 / 0.25, "yres", 1000 / 0.25, "tile", TRUE,
                           NULL),
            "%s", vips_error_buffer());
  return path;
}

Test(tissue, a_generated_crop_that_is_all_tissue_is_tissue_with_every_config) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *crop = all_tissue_crop(dir);
  g_autoptr(GPtrArray) cfgs = shipped_configs();
  for (guint i = 0; i < cfgs->len; i++) {
    const EosinConfig *cfg = cfgs->pdata[i];
    int tiles;
    bool glass;
    double f = tissue_with(cfg, crop, 0, &tiles, &glass);
    cr_expect_gt(f, 0.99, "%s: tissue fraction %.3f of an all-tissue crop", cfg->path, f);
    cr_expect_gt(tiles, 0, "%s: tiles to analyse", cfg->path);
    cr_expect_not(glass, "%s: no glass in it", cfg->path);
  }
  /* the blank slide still has none */
  g_autofree char *blank = td("blank.svs");
  for (guint i = 0; i < cfgs->len; i++) {
    int tiles;
    double f = tissue_with(cfgs->pdata[i], blank, 0, &tiles, NULL);
    cr_expect_eq(f, 0, "%s: blank slide, tissue %.4f", ((EosinConfig *) cfgs->pdata[i])->path, f);
  }
}

Test(tissue, he_crop_ome_finds_tissue_with_every_shipped_config) {
  g_autofree char *crop = shared_data("slides/he-crop-ome.tif");
  REQUIRE_SHARED(crop, "slides/he-crop-ome.tif");
  g_autoptr(GPtrArray) cfgs = shipped_configs();
  for (guint i = 0; i < cfgs->len; i++) {
    const EosinConfig *cfg = cfgs->pdata[i];
    int tiles;
    double f = tissue_with(cfg, crop, 0, &tiles, NULL);
    cr_expect_gt(f, 0.95, "%s: tissue fraction %.3f of he-crop-ome.tif", cfg->path, f);
    cr_expect_gt(tiles, 0, "%s: no tiles on he-crop-ome.tif", cfg->path);
  }
}

Test(tissue, generated_blocks_are_found_exactly) {
  g_autofree char *slide = td("blocks-aperio.svs");
  g_autofree char *cfgpath = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  g_autoptr(EosinSlide) s = eosin_slide_open(slide, 0, &err);
  cr_assert(s);
  EosinThumbnail t;
  EosinTissueMask m;
  cr_assert(eosin_slide_thumbnail(s, cfg->tissue_max_side, cfg->tissue_thumbnail_mpp, &t, &err));
  cr_assert(eosin_tissue_detect(&t, eosin_slide_get_info(s), cfg, &m, &err));
  /* the generator's sidecar lists the 400 x 400 px blocks */
  g_autofree char *json = g_strconcat(slide, ".json", NULL);
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_file(p, json, NULL));
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  guint n_blocks = json_array_get_length(json_object_get_array_member(o, "blocks"));
  cr_assert_eq(n_blocks, 8);
  double want = n_blocks * 160000.0 / (3001.0 * 2003.0);
  cr_expect(fabs(m.fraction - want) < 0.05 * want, "tissue fraction %.4f, blocks %.4f",
            m.fraction, want);
  cr_expect_gt(eosin_tissue_fraction(&m, 300 + 100, 300 + 100, 200, 200), 0.98);
  cr_expect_lt(eosin_tissue_fraction(&m, 720, 320, 160, 160), 0.02, "the gap is glass");
  eosin_tissue_clear(&m);
  eosin_thumbnail_clear(&t);
}

static void tissue_of(const char *rel, double mpp, EosinTissueMask *m, EosinThumbnail *t,
                      EosinSlide **s) {
  g_autofree char *path = shared_data(rel);
  REQUIRE_SHARED(path, rel);
  g_autofree char *cfgpath = stain_config(256, 1.0, 0, 0.25, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cfg->tissue_thumbnail_mpp = 8;
  cfg->tissue_min_object_um2 = 50000;
  *s = eosin_slide_open(path, mpp, &err);
  cr_assert(*s, "%s", err ? err->message : "");
  cr_assert(eosin_slide_thumbnail(*s, cfg->tissue_max_side, cfg->tissue_thumbnail_mpp, t, &err));
  cr_assert(eosin_tissue_detect(t, eosin_slide_get_info(*s), cfg, m, &err));
}

Test(tissue, camelyon_tumour_lies_inside_tissue) {
  EosinTissueMask m;
  EosinThumbnail t;
  EosinSlide *s = NULL;
  /* the level-5 CAMELYON16 image carries no µm/px: 0.243 x 32 */
  tissue_of("slides/camelyon16-tumor_001-level5.tif", 7.78, &m, &t, &s);
  g_autofree char *maskpath = shared_data("slides/camelyon16-tumor_001-level5-tumor-mask.png");
  REQUIRE_SHARED(maskpath, "slides/camelyon16-tumor_001-level5-tumor-mask.png");
  g_autoptr(GError) err = NULL;
  /* read the official tumour mask through Eosin's own libvips reader */
  g_autoptr(EosinSlide) tm = eosin_slide_open(maskpath, 7.78, &err);
  cr_assert(tm, "%s", err ? err->message : "");
  const EosinSlideInfo *ti = eosin_slide_get_info(tm);
  g_autofree uint8_t *px = g_malloc(ti->width * ti->height * 3);
  cr_assert(eosin_slide_read_region(tm, 0, 0, 0, ti->width, ti->height, px, &err));
  int64_t tumour = 0, inside = 0;
  for (int64_t y = 0; y < ti->height; y += 2)
    for (int64_t x = 0; x < ti->width; x += 2)
      if (px[(y * ti->width + x) * 3] > 127) {
        tumour++;
        inside += eosin_tissue_fraction(&m, x, y, 1, 1) > 0.5;
      }
  cr_assert_gt(tumour, 1000);
  cr_expect_gt((double) inside / tumour, 0.97, "tumour pixels inside tissue: %.3f",
               (double) inside / tumour);
  cr_expect(m.fraction > 0.05 && m.fraction < 0.6, "tissue fraction %.3f", m.fraction);
  eosin_tissue_clear(&m);
  eosin_thumbnail_clear(&t);
  eosin_slide_free(s);
}

Test(tissue, cmu_small_region_has_tissue_and_glass) {
  EosinTissueMask m;
  EosinThumbnail t;
  EosinSlide *s = NULL;
  tissue_of("slides/CMU-1-Small-Region.svs", 0, &m, &t, &s);
  cr_expect(m.fraction > 0.2 && m.fraction < 0.8, "tissue fraction %.3f", m.fraction);
  eosin_tissue_clear(&m);
  eosin_thumbnail_clear(&t);
  eosin_slide_free(s);
}

Test(tissue, blank_slide_has_none) {
  g_autofree char *slide = td("blank.svs");
  g_autofree char *cfgpath = stain_config(64, 1.0, 0, 0.0, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  g_autofree char *out = tmp_dir();
  cr_assert_not(eosin_run_slide(cfg, slide, out, NULL, NULL, &err));
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_NO_TISSUE), "%s", err->message);
  cr_expect(strstr(err->message, "blank.svs"), "%s", err->message);
}
