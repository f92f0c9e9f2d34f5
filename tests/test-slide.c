/*
 * test-slide.c — µm/px resolution and its fallbacks, pyramid level choice,
 * and opening real and generated slides through OpenSlide and libvips.
 */
#include "test-util.h"

#include <math.h>

static const char *props(void *data, const char *name) {
  const char *const *kv = data;
  for (int i = 0; kv[i]; i += 2)
    if (!strcmp(kv[i], name))
      return kv[i + 1];
  return NULL;
}

static bool resolve(const char *const *kv, double user, double *mx, double *my,
                    EosinMppSource *src, GError **err) {
  return eosin_resolve_mpp("test.svs", props, (void *) kv, user, mx, my, src, err);
}

Test(mpp, openslide_property_wins) {
  const char *kv[] = {"openslide.mpp-x", "0.2498", "openslide.mpp-y", "0.2502",
                      "tiff.XResolution", "100", "tiff.YResolution", "100",
                      "tiff.ResolutionUnit", "centimeter", NULL};
  double mx, my;
  EosinMppSource src;
  cr_assert(resolve(kv, 0.5, &mx, &my, &src, NULL));
  cr_expect_float_eq(mx, 0.2498, 1e-12);
  cr_expect_float_eq(my, 0.2502, 1e-12);
  cr_expect_eq(src, EOSIN_MPP_SOURCE_OPENSLIDE);
}

Test(mpp, tiff_centimeter_and_inch) {
  const char *cm[] = {"tiff.XResolution", "40000", "tiff.YResolution", "20000",
                      "tiff.ResolutionUnit", "centimeter", NULL};
  const char *in[] = {"tiff.XResolution", "101600", "tiff.YResolution", "101600",
                      "tiff.ResolutionUnit", "inch", NULL};
  double mx, my;
  EosinMppSource src;
  cr_assert(resolve(cm, 0, &mx, &my, &src, NULL));
  cr_expect_float_eq(mx, 0.25, 1e-12);
  cr_expect_float_eq(my, 0.5, 1e-12);
  cr_expect_eq(src, EOSIN_MPP_SOURCE_TIFF);
  cr_assert(resolve(in, 0, &mx, &my, &src, NULL));
  cr_expect_float_eq(mx, 0.25, 1e-12);
}

Test(mpp, no_unit_or_print_dpi_falls_back_to_user) {
  /* a ResolutionUnit of none is no physical size, 72 dpi is a print setting */
  const char *none[] = {"tiff.XResolution", "40000", "tiff.YResolution", "40000",
                        "tiff.ResolutionUnit", "none", NULL};
  const char *dpi72[] = {"tiff.XResolution", "72", "tiff.YResolution", "72",
                         "tiff.ResolutionUnit", "inch", NULL};
  double mx, my;
  EosinMppSource src;
  cr_assert(resolve(none, 0.3, &mx, &my, &src, NULL));
  cr_expect_eq(src, EOSIN_MPP_SOURCE_USER);
  cr_expect_float_eq(mx, 0.3, 1e-12);
  g_autoptr(GError) err = NULL;
  cr_assert_not(resolve(dpi72, 0, &mx, &my, &src, &err));
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_NO_MPP));
  cr_expect(strstr(err->message, "not a plausible"), "%s", err->message);
  cr_expect(strstr(err->message, "test.svs"), "%s", err->message);
}

Test(mpp, nothing_is_a_clear_error_never_a_guess) {
  const char *kv[] = {NULL};
  double mx = -1, my = -1;
  EosinMppSource src = EOSIN_MPP_SOURCE_NONE;
  g_autoptr(GError) err = NULL;
  cr_assert_not(resolve(kv, 0, &mx, &my, &src, &err));
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_NO_MPP));
  cr_expect(strstr(err->message, "--mpp"), "%s", err->message);
  cr_expect_eq(mx, -1);
  g_clear_error(&err);
  cr_assert_not(resolve(kv, 500, &mx, &my, &src, &err), "an absurd --mpp is refused");
}

Test(level, within_five_percent_reads_the_level_as_it_is) {
  double ds[] = {1, 4.0008, 16.003, 32.1};
  EosinLevelChoice c = eosin_choose_level(ds, 4, 4.0);
  cr_expect_eq(c.level, 1);
  cr_expect_not(c.resample);
  c = eosin_choose_level(ds, 4, 4.19);  /* 4.5 % away: still level 1 */
  cr_expect_eq(c.level, 1);
  cr_expect_not(c.resample);
  c = eosin_choose_level(ds, 4, 1.03);
  cr_expect_eq(c.level, 0);
  cr_expect_not(c.resample);
}

Test(level, otherwise_the_next_finer_level_is_resampled) {
  double ds[] = {1, 4, 16};
  EosinLevelChoice c = eosin_choose_level(ds, 3, 8.0);
  cr_expect_eq(c.level, 1);
  cr_expect(c.resample);
  cr_expect_float_eq(c.scale, 2.0, 1e-12);
  c = eosin_choose_level(ds, 3, 4.3); /* 7.5 % off level 1: read level 1, resample */
  cr_expect_eq(c.level, 1);
  cr_expect(c.resample);
  c = eosin_choose_level(ds, 3, 40);
  cr_expect_eq(c.level, 2);
  cr_expect_float_eq(c.scale, 2.5, 1e-12);
  c = eosin_choose_level(ds, 3, 0.5); /* finer than level 0: upsample level 0 */
  cr_expect_eq(c.level, 0);
  cr_expect(c.resample);
  cr_expect_float_eq(c.scale, 0.5, 1e-12);
}

Test(slide, generated_formats_and_their_mpp_sources) {
  g_autofree char *aperio = td("blocks-aperio.svs");
  g_autofree char *leica = td("blocks-leica.scn");
  g_autofree char *generic = td("blocks-generic.tif");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) a = eosin_slide_open(aperio, 0, &err);
  cr_assert(a, "%s", err ? err->message : "");
  const EosinSlideInfo *i = eosin_slide_get_info(a);
  cr_expect_str_eq(i->vendor, "aperio");
  cr_expect_eq(i->width, 3001);
  cr_expect_eq(i->height, 2003);
  cr_expect_eq(i->mpp_source, EOSIN_MPP_SOURCE_OPENSLIDE);
  cr_expect_float_eq(i->mpp_x, 0.5, 1e-9);
  cr_expect_gt(i->n_levels, 1);

  g_autoptr(EosinSlide) l = eosin_slide_open(leica, 0, &err);
  cr_assert(l, "%s", err ? err->message : "");
  i = eosin_slide_get_info(l);
  cr_expect_str_eq(i->vendor, "leica");
  cr_expect(i->has_bounds);
  cr_expect_eq(i->bounds_x, 700);
  cr_expect_eq(i->bounds_y, 450);
  cr_expect_eq(i->bounds_w, 2501);
  cr_expect_eq(i->bounds_h, 1903);
  cr_expect_eq(i->width, 700 + 2501 + 300);

  g_autoptr(EosinSlide) g = eosin_slide_open(generic, 0, &err);
  cr_assert(g, "%s", err ? err->message : "");
  i = eosin_slide_get_info(g);
  cr_expect_str_eq(i->vendor, "generic-tiff");
  cr_expect_eq(i->mpp_source, EOSIN_MPP_SOURCE_TIFF);
  cr_expect_float_eq(i->mpp_x, 0.25, 1e-4);
}

Test(slide, real_slides_from_shared) {
  g_autofree char *cmu = shared_data("slides/CMU-1-Small-Region.svs");
  REQUIRE_SHARED(cmu, "slides/CMU-1-Small-Region.svs");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) s = eosin_slide_open(cmu, 0, &err);
  cr_assert(s, "%s", err ? err->message : "");
  const EosinSlideInfo *i = eosin_slide_get_info(s);
  cr_expect_float_eq(i->mpp_x, 0.499, 1e-6);
  cr_expect_eq(i->mpp_source, EOSIN_MPP_SOURCE_OPENSLIDE);
  cr_expect_float_eq(i->objective_power, 20, 1e-9);

  /* TCGA slide without MPP: an error naming the slide unless --mpp is given */
  g_autofree char *tcga = shared_data("slides/tcga-cr-7395-01a-01-ts1.svs");
  REQUIRE_SHARED(tcga, "slides/tcga-cr-7395-01a-01-ts1.svs");
  g_autoptr(EosinSlide) t = eosin_slide_open(tcga, 0, &err);
  cr_assert_null(t);
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_NO_MPP));
  cr_expect(strstr(err->message, "tcga-cr-7395"), "%s", err->message);
  g_clear_error(&err);
  g_autoptr(EosinSlide) t2 = eosin_slide_open(tcga, 0.25, &err);
  cr_assert(t2);
  cr_expect_eq(eosin_slide_get_info(t2)->mpp_source, EOSIN_MPP_SOURCE_USER);

  /* the OME-TIFF OpenSlide rejects is read through libvips, µm/px from TIFF */
  g_autofree char *ome = shared_data("slides/he-crop-ome.tif");
  REQUIRE_SHARED(ome, "slides/he-crop-ome.tif");
  g_autoptr(EosinSlide) o = eosin_slide_open(ome, 0, &err);
  cr_assert(o, "%s", err ? err->message : "");
  i = eosin_slide_get_info(o);
  cr_expect_str_eq(i->backend, "vips");
  cr_expect_eq(i->width, 1101);
  cr_expect_float_eq(i->mpp_x, 0.2271, 1e-3);
  cr_expect_eq(i->mpp_source, EOSIN_MPP_SOURCE_TIFF);
}

Test(slide, png_needs_mpp_and_reads_pixels) {
  g_autofree char *png = td("ihc.png");
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinSlide) s = eosin_slide_open(png, 0, &err);
  cr_assert_null(s, "a PNG has no trustworthy pixel size");
  cr_assert(g_error_matches(err, EOSIN_ERROR, EOSIN_ERROR_NO_MPP));
  g_clear_error(&err);
  g_autoptr(EosinSlide) s2 = eosin_slide_open(png, 0.5, &err);
  cr_assert(s2);
  /* a region reaching past the image is white there */
  uint8_t px[4 * 4 * 3];
  cr_assert(eosin_slide_read_region(s2, 0, 510, 510, 4, 4, px, &err));
  uint8_t inside[3];
  cr_assert(eosin_slide_read_region(s2, 0, 510, 510, 1, 1, inside, &err));
  cr_expect_arr_eq(px, inside, 3, "the part inside the image is the image");
  for (int k = 0; k < 3; k++)
    cr_expect_eq(px[(3 * 4 + 3) * 3 + k], 255, "past the edge is white");
  cr_expect_lt(inside[0] + inside[1] + inside[2], 3 * 250, "ihc.png is not white there");
}
