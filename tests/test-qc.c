/*
 * test-qc.c — the quality gate (src/qc.c) on real slides from ../shared
 * (skipped with a message without it) and on the generated test data: pen
 * strokes of four colours drawn onto a real H&E slide are found and left
 * out of the tiles; a real slide blurred on one half has its blurred tiles
 * flagged; fluorescence and the wrong stain pair fail with a reason and no
 * score; HistoQC's hand-drawn pen and coverslip masks agree with the
 * classes; [qc] is strict.
 */
#include "test-util.h"

#include "eosin-private.h"

#include <math.h>

/* A real H&E slide (CMU-1-Small-Region, 0.5 µm/px) with @blur_px of
 * Gaussian blur on its left half (0: none) and, with @strokes, four pen
 * strokes painted over it multiplicatively (ink absorbs, as on glass):
 * written as a tiled pyramidal TIFF in a temporary folder. */
typedef struct {
  double x0, y0, x1, y1, r; /* level-0 pixels */
  uint8_t rgb[3];
} Stroke;

static const Stroke STROKES[4] = {
    /* colours of real marker ink over glass (HistoQC's examples; blue a
     * typical blue marker) */
    {300, 200, 500, 2700, 28, {30, 60, 185}},   /* blue */
    {900, 300, 1000, 2800, 28, {95, 200, 170}}, /* green */
    {1500, 250, 1400, 2750, 28, {200, 40, 80}}, /* red */
    {1900, 400, 2050, 2600, 28, {28, 22, 16}},  /* black */
};

static double seg_dist(const Stroke *s, double x, double y) {
  double dx = s->x1 - s->x0, dy = s->y1 - s->y0;
  double t = CLAMP(((x - s->x0) * dx + (y - s->y0) * dy) / (dx * dx + dy * dy), 0, 1);
  return hypot(x - (s->x0 + t * dx), y - (s->y0 + t * dy));
}

static char *real_slide(double blur_px, bool strokes) {
  g_autofree char *src = shared_data("slides/CMU-1-Small-Region.svs");
  if (!src)
    return NULL;
  VipsImage *in = vips_image_new_from_file(src, NULL);
  cr_assert(in, "%s", vips_error_buffer());
  VipsImage *rgb = NULL;
  cr_assert(!vips_extract_band(in, &rgb, 0, "n", 3, NULL));
  g_object_unref(in);
  if (blur_px > 0) {
    VipsImage *half = NULL, *blurred = NULL, *cast = NULL, *out = NULL;
    int w = rgb->Xsize / 2;
    cr_assert(!vips_extract_area(rgb, &half, 0, 0, w, rgb->Ysize, NULL));
    cr_assert(!vips_gaussblur(half, &blurred, blur_px, NULL));
    cr_assert(!vips_cast_uchar(blurred, &cast, NULL));
    cr_assert(!vips_insert(rgb, cast, &out, 0, 0, NULL));
    g_object_unref(half), g_object_unref(blurred), g_object_unref(cast), g_object_unref(rgb);
    rgb = out;
  }
  size_t len;
  uint8_t *px = vips_image_write_to_memory(rgb, &len);
  int w = rgb->Xsize, h = rgb->Ysize;
  g_object_unref(rgb);
  for (int k = 0; strokes && k < 4; k++)
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        if (seg_dist(&STROKES[k], x, y) < STROKES[k].r)
          for (int c = 0; c < 3; c++) {
            uint8_t *p = px + ((size_t) y * w + x) * 3 + c;
            *p = (uint8_t) (*p * STROKES[k].rgb[c] / 255);
          }
  VipsImage *img = vips_image_new_from_memory(px, len, w, h, 3, VIPS_FORMAT_UCHAR);
  g_autofree char *dir = tmp_dir();
  char *path = g_build_filename(dir, "cmu1-qc.tif", NULL);
  /* 2000 px/mm = 0.5 µm/px */
  cr_assert(!vips_tiffsave(img, path, "tile", TRUE, "pyramid", TRUE, "compression",
                           VIPS_FOREIGN_TIFF_COMPRESSION_JPEG, "Q", 92, "xres", 2000.0,
                           "yres", 2000.0, "resunit", VIPS_FOREIGN_TIFF_RESUNIT_CM, NULL),
            "%s", vips_error_buffer());
  g_object_unref(img);
  g_free(px);
  return path;
}

/* Loads a shipped config. */
static EosinConfig *shipped(const char *name) {
  g_autofree char *p = g_build_filename("configs", name, NULL);
  GError *e = NULL;
  EosinConfig *cfg = eosin_config_load(p, &e);
  cr_assert(cfg, "%s: %s", p, e ? e->message : "");
  return cfg;
}

Test(qc, pen_strokes_on_a_real_slide_are_found_and_left_out_of_the_tiles, .timeout = 120) {
  g_autofree char *path = real_slide(0, true);
  REQUIRE_SHARED(path, "slides/CMU-1-Small-Region.svs");
  g_autoptr(EosinConfig) cfg = shipped("metastasis.ini");
  GError *e = NULL;
  EosinSlide *slide = eosin_slide_open(path, 0.5, &e);
  cr_assert(slide, "%s", e ? e->message : "");
  const EosinSlideInfo *info = eosin_slide_get_info(slide);
  /* a thumbnail fine enough that a 28 µm stroke is several pixels wide */
  EosinThumbnail th = {0};
  EosinTissueMask mask = {0}, usable = {0};
  EosinQc qc = {0};
  cr_assert(eosin_slide_thumbnail(slide, 4096, 4, &th, &e), "%s", e ? e->message : "");
  cr_assert(eosin_tissue_detect(&th, info, cfg, &mask, &e));
  cr_assert(_eosin_qc_run(slide, &th, cfg, &mask, &qc, &e), "%s", e ? e->message : "");
  const int want[4] = {EOSIN_QC_PEN_BLUE, EOSIN_QC_PEN_GREEN, EOSIN_QC_PEN_RED,
                       EOSIN_QC_PEN_BLACK};
  int64_t core[4] = {0}, found[4] = {0}, exact[4] = {0}, clean = 0, clean_flagged = 0;
  for (int y = 0; y < th.height; y++)
    for (int x = 0; x < th.width; x++) {
      double lx = (x + 0.5) * th.scale_x, ly = (y + 0.5) * th.scale_y;
      int c = qc.classes[(size_t) y * th.width + x];
      bool pen = c >= EOSIN_QC_PEN_BLUE && c <= EOSIN_QC_PEN_BLACK;
      bool near = false;
      for (int k = 0; k < 4; k++) {
        double d = seg_dist(&STROKES[k], lx, ly);
        /* a pixel wholly inside the stroke, or wholly off every stroke */
        if (d < STROKES[k].r - th.scale_x) {
          core[k]++;
          /* ink over tissue mixes colours (green over pink reads teal):
           * found as pen of any colour */
          found[k] += pen;
          exact[k] += c == want[k];
        }
        near |= d < STROKES[k].r + 2 * th.scale_x;
      }
      if (!near && mask.mask[(size_t) y * th.width + x]) {
        clean++;
        clean_flagged += pen;
      }
    }
  for (int k = 0; k < 4; k++) {
    double recall = (double) found[k] / core[k];
    cr_log_info("qc pen %s: %.1f%% of %" G_GINT64_FORMAT " stroke pixels found as pen, "
                "%.1f%% as this colour",
                EOSIN_QC_CLASS_NAMES[want[k]], 100 * recall, core[k],
                100.0 * exact[k] / core[k]);
    cr_expect_geq(recall, 0.90, "%s stroke: %.1f%% found", EOSIN_QC_CLASS_NAMES[want[k]],
                  100 * recall);
  }
  double fp = (double) clean_flagged / clean;
  cr_log_info("qc pen: %.2f%% of %" G_GINT64_FORMAT " clean tissue pixels flagged", 100 * fp,
              clean);
  cr_expect_lt(fp, 0.02, "%.2f%% of clean tissue flagged as pen", 100 * fp);
  /* left out of the tiles: no planned tile lies mostly on a stroke */
  cr_assert(_eosin_qc_usable_mask(&mask, &qc, cfg, &usable), "nothing was excluded");
  EosinTilePlan with = {0}, without = {0};
  cr_assert(eosin_tile_plan(info, cfg, &mask, &without, &e));
  cr_assert(eosin_tile_plan(info, cfg, &usable, &with, &e));
  cr_expect_lt(with.tiles->len, without.tiles->len, "excluding ink removes tiles");
  int on_ink = 0;
  for (guint i = 0; i < with.tiles->len; i++) {
    const EosinTile *t = &g_array_index(with.tiles, EosinTile, i);
    double cx = t->x + with.tile_l0_x / 2, cy = t->y + with.tile_l0_y / 2;
    for (int k = 0; k < 4; k++)
      on_ink += seg_dist(&STROKES[k], cx, cy) < STROKES[k].r - with.tile_l0_x / 2;
  }
  cr_expect_eq(on_ink, 0, "%d tiles planned inside an ink stroke", on_ink);
  eosin_tile_plan_clear(&with);
  eosin_tile_plan_clear(&without);
  _eosin_qc_clear(&qc);
  eosin_tissue_clear(&mask);
  eosin_tissue_clear(&usable);
  eosin_thumbnail_clear(&th);
  eosin_slide_free(slide);
}

/* Fractions of blurred-half and sharp-half tiles below the metastasis
 * config's blur threshold, reading each planned tile as the tile stage does. */
Test(qc, a_real_slide_blurred_on_one_half_has_its_blurred_tiles_flagged, .timeout = 120) {
  g_autofree char *path = real_slide(2.0 / 0.5, false); /* sigma 2 µm */
  REQUIRE_SHARED(path, "slides/CMU-1-Small-Region.svs");
  g_autoptr(EosinConfig) cfg = shipped("metastasis.ini");
  cr_assert_gt(cfg->qc.blur_threshold, 0);
  GError *e = NULL;
  EosinSlide *slide = eosin_slide_open(path, 0.5, &e);
  cr_assert(slide);
  const EosinSlideInfo *info = eosin_slide_get_info(slide);
  EosinThumbnail th = {0};
  EosinTissueMask mask = {0};
  cr_assert(eosin_slide_thumbnail(slide, cfg->tissue_max_side, cfg->tissue_thumbnail_mpp, &th,
                                  &e));
  cr_assert(eosin_tissue_detect(&th, info, cfg, &mask, &e));
  EosinTilePlan plan = {0};
  cr_assert(eosin_tile_plan(info, cfg, &mask, &plan, &e));
  g_autofree uint8_t *rgb = g_malloc((size_t) cfg->tile_size * cfg->tile_size * 3);
  int blurred = 0, blurred_flagged = 0, sharp = 0, sharp_flagged = 0;
  double half = info->width / 2.0;
  for (guint i = 0; i < plan.tiles->len; i++) {
    const EosinTile *t = &g_array_index(plan.tiles, EosinTile, i);
    cr_assert(eosin_tile_read(slide, &plan, t, rgb, &e));
    bool low = _eosin_qc_tile_sharpness(rgb, cfg->tile_size) < cfg->qc.blur_threshold;
    if (t->x + plan.tile_l0_x < half - 16)
      blurred++, blurred_flagged += low;
    else if (t->x > half + 16)
      sharp++, sharp_flagged += low;
  }
  cr_log_info("qc blur: %d/%d blurred tiles flagged, %d/%d sharp tiles", blurred_flagged,
              blurred, sharp_flagged, sharp);
  cr_assert_gt(blurred, 10);
  cr_assert_gt(sharp, 10);
  cr_expect_geq((double) blurred_flagged / blurred, 0.90);
  cr_expect_lt((double) sharp_flagged / sharp, 0.05);
  eosin_tile_plan_clear(&plan);
  eosin_tissue_clear(&mask);
  eosin_thumbnail_clear(&th);
  eosin_slide_free(slide);

  /* and through the pipeline: report.json says how many tiles are blurred */
  g_autofree char *out = tmp_dir(), *err = NULL;
  const char *argv[] = {"run", "--task", "configs/metastasis.ini", path, "-o", out, NULL};
  cr_assert_eq(run_eosin(argv, NULL, &err), 0, "%s", err);
  cr_expect(strstr(err, "out of focus"), "no blur warning: %s", err);
  g_autofree char *rep = g_build_filename(out, "cmu1-qc", "report.json", NULL);
  g_autofree char *text = slurp(rep);
  cr_expect(strstr(text, "\"blurred_fraction\""), "report.json has no sharpness block");
}

Test(qc, fluorescence_fails_every_brightfield_task_with_a_reason, .timeout = 180) {
  const char *slides[] = {"slides/fluorescence-dapi.ndpi", "slides/fluorescence-tritc.ndpi"};
  const char *configs[] = {"metastasis.ini", "ihc-ki67.ini", "ihc-er-pr.ini", "ihc-her2.ini",
                           "cytology.ini"};
  for (size_t s = 0; s < G_N_ELEMENTS(slides); s++) {
    g_autofree char *path = shared_data(slides[s]);
    REQUIRE_SHARED(path, slides[s]);
    for (size_t c = 0; c < G_N_ELEMENTS(configs); c++) {
      g_autoptr(EosinConfig) cfg = shipped(configs[c]);
      cr_assert_str_eq(cfg->domain.imaging, "brightfield", "%s", configs[c]);
      g_autofree char *out = tmp_dir(), *err = NULL, *task = NULL;
      task = g_build_filename("configs", configs[c], NULL);
      const char *argv[] = {"run", "--task", task, path, "-o", out, NULL};
      cr_expect_eq(run_eosin(argv, NULL, &err), 1, "%s through %s: %s", slides[s], configs[c],
                   err);
      cr_expect(strstr(err, "QC fail") && strstr(err, "fluorescence"),
                "%s through %s: %s", slides[s], configs[c], err);
      g_autofree char *name = eosin_slide_name_from_path(path);
      g_autofree char *res = g_build_filename(out, name, NULL);
      cr_expect(!g_file_test(res, G_FILE_TEST_EXISTS), "a result was left: %s", res);
    }
  }
}

Test(qc, an_ihc_image_through_metastasis_and_he_through_ki67_fail, .timeout = 120) {
  g_autofree char *ihc = td("ihc.png"), *out = tmp_dir(), *err = NULL;
  const char *a1[] = {"run", "--task", "configs/metastasis.ini", "--mpp", "0.5", ihc, "-o",
                      out, NULL};
  cr_expect_eq(run_eosin(a1, NULL, &err), 1, "%s", err);
  cr_expect(strstr(err, "QC fail") && strstr(err, "H-DAB") && strstr(err, "H&E"), "%s", err);
  g_autofree char *he = shared_data("slides/CMU-1-Small-Region.svs");
  REQUIRE_SHARED(he, "slides/CMU-1-Small-Region.svs");
  g_autofree char *err2 = NULL, *err3 = NULL;
  const char *a2[] = {"run", "--task", "configs/ihc-ki67.ini", he, "-o", out, NULL};
  cr_expect_eq(run_eosin(a2, NULL, &err2), 1, "%s", err2);
  cr_expect(strstr(err2, "QC fail") && strstr(err2, "look H&E"), "%s", err2);
  /* and the right pairs pass */
  const char *a3[] = {"run", "--task", "configs/metastasis.ini", he, "-o", out, NULL};
  cr_expect_eq(run_eosin(a3, NULL, &err3), 0, "%s", err3);
  g_autofree char *rep = g_build_filename(out, "CMU-1-Small-Region", "report.json", NULL);
  g_autofree char *text = slurp(rep);
  cr_expect(strstr(text, "\"pair\" : \"he\""), "the stain pair is not he: %s", text);
  g_autofree char *png = g_build_filename(out, "CMU-1-Small-Region", "qc.png", NULL);
  cr_expect(g_file_test(png, G_FILE_TEST_IS_REGULAR), "no qc.png");
}

Test(qc, a_batch_goes_on_past_a_qc_failure_and_its_summary_says_the_verdicts, .timeout = 120) {
  g_autofree char *fl = shared_data("slides/fluorescence-dapi.ndpi");
  g_autofree char *he = shared_data("slides/CMU-1-Small-Region.svs");
  REQUIRE_SHARED(fl, "slides/fluorescence-dapi.ndpi");
  REQUIRE_SHARED(he, "slides/CMU-1-Small-Region.svs");
  g_autofree char *dir = tmp_dir(), *out = tmp_dir(), *err = NULL;
  g_autofree char *manifest = g_build_filename(dir, "slides.csv", NULL);
  g_autofree char *fla = g_canonicalize_filename(fl, NULL), *hea = g_canonicalize_filename(he, NULL);
  g_autofree char *text = g_strdup_printf("%s\n%s\n", fla, hea);
  cr_assert(g_file_set_contents(manifest, text, -1, NULL));
  const char *argv[] = {"batch", "--task", "configs/metastasis.ini", "--manifest", manifest,
                        "-o", out, NULL};
  cr_expect_eq(run_eosin(argv, NULL, &err), 3, "one slide failed: exit 3 (%s)", err);
  g_autofree char *sum = g_build_filename(out, "batch-summary.csv", NULL);
  g_autofree char *csv = slurp(sum);
  g_auto(GStrv) lines = g_strsplit(csv, "\n", -1);
  cr_assert_geq(g_strv_length(lines), 3, "%s", csv);
  cr_expect(g_str_has_suffix(lines[0], ",error,qc"), "header: %s", lines[0]);
  cr_expect(strstr(lines[1], "fluorescence-dapi") && strstr(lines[1], ",failed,") &&
                strstr(lines[1], "fluorescence (median") && g_str_has_suffix(lines[1], ",\"fail\""),
            "%s", lines[1]);
  cr_expect(strstr(lines[2], "CMU-1-Small-Region") && strstr(lines[2], ",done,") &&
                g_str_has_suffix(lines[2], ",\"pass\""),
            "%s", lines[2]);
}

/* Pixel agreement with HistoQC's hand-drawn masks (each image read as a
 * slide at its own pixels: the masks are drawn on these thumbnails). */
Test(qc, histoqc_pen_and_coverslip_masks_agree, .timeout = 120) {
  const struct {
    const char *name;
    int cls[2];
    double min_recall;
  } cases[] = {
      {"pen-1k-pen_black", {EOSIN_QC_PEN_BLACK, -1}, 0.90},
      {"pen-1k-pen_green", {EOSIN_QC_PEN_GREEN, -1}, 0.90},
      {"pen-1k-pen_red", {EOSIN_QC_PEN_RED, -1}, 0.75},
      {"pen-he-pen_green", {EOSIN_QC_PEN_GREEN, -1}, 0.90},
      {"pen-he-pen_red", {EOSIN_QC_PEN_RED, -1}, 0.90},
      {"coverslip-he-coverslip_edge", {EOSIN_QC_EDGE, EOSIN_QC_PEN_BLACK}, 0.60},
  };
  g_autofree char *cfgp = stain_config(256, 16, 0, 0.25, "[qc]\nedge = flag\n");
  GError *e = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgp, &e);
  cr_assert(cfg, "%s", e ? e->message : "");
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *rel = g_strdup_printf("qc/histoqc/%s.png", cases[i].name);
    g_autofree char *mrel = g_strdup_printf("qc/histoqc/%s_mask.png", cases[i].name);
    g_autofree char *path = shared_data(rel), *mpath = shared_data(mrel);
    REQUIRE_SHARED(path, rel);
    EosinSlide *slide = eosin_slide_open(path, 16, &e);
    cr_assert(slide, "%s", e ? e->message : "");
    EosinThumbnail th = {0};
    EosinTissueMask mask = {0};
    EosinQc qc = {0};
    cr_assert(eosin_slide_thumbnail(slide, 16384, 16, &th, &e));
    cr_assert(eosin_tissue_detect(&th, eosin_slide_get_info(slide), cfg, &mask, &e));
    cr_assert(_eosin_qc_run(slide, &th, cfg, &mask, &qc, &e), "%s", e ? e->message : "");
    VipsImage *m = vips_image_new_from_file(mpath, NULL);
    cr_assert(m);
    cr_assert_eq(m->Xsize, th.width, "%s: mask %dx%d, image %dx%d", cases[i].name, m->Xsize,
                 m->Ysize, th.width, th.height);
    VipsImage *m1 = NULL;
    cr_assert(!vips_extract_band(m, &m1, 0, NULL));
    size_t len;
    g_autofree uint8_t *mp = vips_image_write_to_memory(m1, &len);
    g_object_unref(m1), g_object_unref(m);
    int64_t tp = 0, fn = 0, fp = 0;
    for (size_t p = 0; p < (size_t) th.width * th.height; p++) {
      bool truth = mp[p] > 127;
      bool got = qc.classes[p] == cases[i].cls[0] || qc.classes[p] == cases[i].cls[1];
      tp += truth && got, fn += truth && !got, fp += !truth && got;
    }
    double recall = (double) tp / (tp + fn), precision = tp + fp ? (double) tp / (tp + fp) : 0;
    cr_log_info("qc histoqc %s: recall %.3f precision %.3f dice %.3f", cases[i].name, recall,
                precision, 2.0 * tp / (2 * tp + fn + fp));
    cr_expect_geq(recall, cases[i].min_recall, "%s: recall %.3f", cases[i].name, recall);
    cr_expect_geq(precision, 0.75, "%s: precision %.3f", cases[i].name, precision);
    _eosin_qc_clear(&qc);
    eosin_tissue_clear(&mask);
    eosin_thumbnail_clear(&th);
    eosin_slide_free(slide);
  }
}

Test(qc, the_qc_group_is_strict) {
  const struct {
    const char *tail, *want;
  } bad[] = {
      {"[qc]\npens = exclude\n", "pens"},
      {"[qc]\npen = maybe\n", "maybe"},
      {"[qc]\nblur = exclude\n", "exclude"},
      {"[qc]\nmin_usable_fraction = 1.5\n", "1.5"},
      {"[qc]\nenabled = yes\n", "yes"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autofree char *p = stain_config(256, 1, 0, 0.25, bad[i].tail);
    GError *e = NULL;
    EosinConfig *cfg = eosin_config_load(p, &e);
    cr_expect_null(cfg, "accepted: %s", bad[i].tail);
    if (cfg)
      eosin_config_free(cfg);
    else {
      cr_expect(g_error_matches(e, EOSIN_ERROR, EOSIN_ERROR_CONFIG));
      cr_expect(strstr(e->message, p) && strstr(e->message, "qc") &&
                    strstr(e->message, bad[i].want),
                "%s", e->message);
      g_error_free(e);
    }
  }
  /* off: no classes, no qc.png, the run as before */
  g_autofree char *p = stain_config(256, 1, 0, 0.25, "[qc]\nenabled = false\n");
  GError *e = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(p, &e);
  cr_assert(cfg);
  cr_expect(!cfg->qc.enabled);
}
