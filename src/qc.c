/*
 * qc.c — the quality gate between tissue detection and tiling. On the
 * tissue detector's thumbnail it classifies every pixel inside the slide
 * bounds into artefact classes by colour in CIE L*a*b* and HSV (pen ink of
 * four colours, very dark folds or thick tissue, grey glass edges and
 * bubble rims), tells brightfield from fluorescence by the slide's median
 * brightness, estimates the two stain vectors of the tissue (Macenko) and
 * names the stain pair (H&E or H-DAB) they are closest to. It then judges
 * the slide against the task's declared domain ([domain]) and the [qc]
 * limits: pass, warn (with reasons) or fail (no score, the reason said).
 * Artefacts set to `exclude` are taken out of the tissue mask the tiles are
 * planned on, so inked or edged regions are never analysed.
 *
 * The colour classes were calibrated on HistoQC's hand-drawn pen and
 * coverslip masks (../shared/data/qc/histoqc) and checked for false alarms
 * on clean tissue (CAMELYON16 tumor_001, CMU-1): docs/BENCHMARKS.md.
 */
#include "cells/eosin-cells.h"
#include "eosin-private.h"

#include <math.h>

const char *const EOSIN_QC_CLASS_NAMES[EOSIN_QC_N_CLASSES] = {
    "clean", "pen_blue", "pen_green", "pen_red", "pen_black", "dark", "edge"};

/* RGB for qc.png, per class (clean is not drawn) */
static const uint8_t CLASS_RGB[EOSIN_QC_N_CLASSES][3] = {
    {0, 0, 0}, {0, 90, 255}, {0, 200, 60}, {255, 0, 40}, {20, 20, 20}, {255, 150, 0},
    {0, 220, 220}};

void _eosin_qc_clear(EosinQc *qc) {
  g_clear_pointer(&qc->classes, g_free);
  g_clear_pointer(&qc->reasons, g_ptr_array_unref);
  memset(qc, 0, sizeof *qc);
}

/* sRGB 0..255 to linear light, the first step of rgb_to_lab. */
static void linear_table(float lin[256]) {
  for (int v = 0; v < 256; v++) {
    double c = v / 255.0;
    lin[v] = (float) (c > 0.04045 ? pow((c + 0.055) / 1.055, 2.4) : c / 12.92);
  }
}

static bool is_pen(int c) {
  return c >= EOSIN_QC_PEN_BLUE && c <= EOSIN_QC_PEN_BLACK;
}

/* sRGB 0..255 to CIE L*a*b* (D65), as scikit-image's rgb2lab. */
static void rgb_to_lab(const uint8_t *p, const float lin[256], double lab[3]) {
  double r = lin[p[0]], g = lin[p[1]], b = lin[p[2]];
  double x = (0.412453 * r + 0.357580 * g + 0.180423 * b) / 0.950456;
  double y = 0.212671 * r + 0.715160 * g + 0.072169 * b;
  double z = (0.019334 * r + 0.119193 * g + 0.950227 * b) / 1.088754;
  double f[3], v[3] = {x, y, z};
  for (int i = 0; i < 3; i++)
    f[i] = v[i] > 0.008856 ? cbrt(v[i]) : 7.787 * v[i] + 16.0 / 116;
  lab[0] = y > 0.008856 ? 116 * f[1] - 16 : 903.3 * y;
  lab[1] = 500 * (f[0] - f[1]);
  lab[2] = 200 * (f[1] - f[2]);
}

/* The artefact class of one pixel. Thresholds from the HistoQC masks:
 * green ink is the only green (a* < -10) on a slide, red ink is redder and
 * yellower than eosin (a* > 36 with b* > 0; eosin has b* < 0), blue ink's
 * hue (180-250°) lies below haematoxylin's purple (green ink over tissue
 * reads teal there too), and on an IHC slide, whose haematoxylin
 * counterstain is blue, only ink's higher saturation (@blue_s) tells it;
 * red ink over dense tissue is nearly black but still of a pure red; black ink and markers
 * are near black and brownish or grey, where dense nuclei stay purple;
 * folds and thick tissue are stained tissue darker than @dark_l; glass
 * edges and bubble rims are grey (unsaturated) and darker than glass. */
static uint8_t classify(const uint8_t *p, const float lin[256], double dark_l, double blue_s) {
  int mx = MAX(p[0], MAX(p[1], p[2])), mn = MIN(p[0], MIN(p[1], p[2]));
  double s = mx ? (double) (mx - mn) / mx : 0, hue = 0;
  if (mx > mn) {
    double d = mx - mn;
    if (mx == p[0])
      hue = 60 * fmod((p[1] - p[2]) / d + 6, 6);
    else if (mx == p[1])
      hue = 60 * ((p[2] - p[0]) / d + 2);
    else
      hue = 60 * ((p[0] - p[1]) / d + 4);
  }
  double lab[3];
  rgb_to_lab(p, lin, lab);
  double L = lab[0], a = lab[1], b = lab[2];
  if (a < -10 && s > 0.12)
    return EOSIN_QC_PEN_GREEN;
  if (hue >= 180 && hue < 250 && s > blue_s)
    return EOSIN_QC_PEN_BLUE;
  if ((a > 36 && b > 0) || (s > 0.8 && (hue >= 330 || hue < 20)))
    return EOSIN_QC_PEN_RED;
  if (L < 35 && (s < 0.3 || (hue >= 15 && hue < 90)))
    return EOSIN_QC_PEN_BLACK;
  if (L < dark_l && s > 0.3)
    return EOSIN_QC_DARK;
  if (s < 0.12 && L >= 35 && L < 70)
    return EOSIN_QC_EDGE;
  return EOSIN_QC_CLEAN;
}

/* The saturation above which a blue pixel is ink: haematoxylin on H&E is
 * purple, so moderately saturated blue is ink; an IHC counterstain is
 * blue itself. */
static double blue_saturation(const EosinConfig *cfg) {
  return !strcmp(cfg->domain.stain, "hdab") ? 0.45 : 0.3;
}

/* What [qc] says to do with class @c. */
static const char *action(const EosinConfig *cfg, int c) {
  switch (c) {
  case EOSIN_QC_PEN_BLUE:
  case EOSIN_QC_PEN_GREEN:
  case EOSIN_QC_PEN_RED:
  case EOSIN_QC_PEN_BLACK:
    return cfg->qc.pen;
  case EOSIN_QC_DARK:
    return cfg->qc.dark;
  case EOSIN_QC_EDGE:
    return cfg->qc.edge;
  default:
    return "off";
  }
}

/* Per class, whether [qc] turns it off or excludes it (looked up once, not
 * per pixel). */
static void actions(const EosinConfig *cfg, bool off[EOSIN_QC_N_CLASSES],
                    bool exclude[EOSIN_QC_N_CLASSES]) {
  for (int c = 0; c < EOSIN_QC_N_CLASSES; c++) {
    off[c] = !strcmp(action(cfg, c), "off");
    exclude[c] = !strcmp(action(cfg, c), "exclude");
  }
}

static void G_GNUC_PRINTF(3, 4) reason(EosinQc *qc, int verdict, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_ptr_array_add(qc->reasons, g_strdup_vprintf(fmt, ap));
  va_end(ap);
  qc->verdict = MAX(qc->verdict, verdict);
}

/* Cosine between two 3-vectors. */
static double cosine(const double a[3], const double b[3]) {
  double d = 0, na = 0, nb = 0;
  for (int i = 0; i < 3; i++)
    d += a[i] * b[i], na += a[i] * a[i], nb += b[i] * b[i];
  return na > 0 && nb > 0 ? d / sqrt(na * nb) : 0;
}

/* The stain pair of the tissue: Macenko's two vectors on a finer
 * thumbnail (about 512 px: the tissue thumbnail of a small slide holds
 * too few stained pixels), the one nearer haematoxylin taken as it. The
 * other is eosin or DAB by its blue-to-green absorbance: eosin absorbs
 * green and little blue (0.11 / 0.99 in Ruifrok-Johnston's vector), DAB's
 * brown absorbs blue most (0.78 / 0.57). Cosines to the reference vectors
 * do not separate them (a real eosin vector is often as near DAB's). */
static void stain_check(EosinQc *qc, EosinSlide *slide, const EosinConfig *cfg,
                        double sat_threshold) {
  static const double HEM[3] = {0.65, 0.70, 0.29}, EOS[3] = {0.07, 0.99, 0.11},
                      DAB[3] = {0.27, 0.57, 0.78};
  g_strlcpy(qc->stain, "unknown", sizeof qc->stain);
  EosinThumbnail th = {0};
  g_autoptr(GError) e = NULL;
  if (!eosin_slide_thumbnail(slide, 512, 0, &th, &e)) {
    g_strlcpy(qc->stain_note, e->message, sizeof qc->stain_note);
    return;
  }
  size_t all = (size_t) th.width * th.height, n = 0;
  g_autofree uint8_t *px = g_malloc(all * 3 + 3);
  float lin[256];
  linear_table(lin);
  for (size_t i = 0; i < all; i++) {
    const uint8_t *p = th.rgb + 3 * i;
    int mx = MAX(p[0], MAX(p[1], p[2])), mn = MIN(p[0], MIN(p[1], p[2]));
    /* stained tissue, without the ink and edges the classes would find */
    if (mx && (double) (mx - mn) / mx > sat_threshold && classify(p, lin, 0, blue_saturation(cfg)) == EOSIN_QC_CLEAN)
      memcpy(px + 3 * n++, p, 3);
  }
  eosin_thumbnail_clear(&th);
  double m[3][3];
  if (!_eosin_stain_estimate(px, n, 0.15, 1.0, m, &e)) {
    g_snprintf(qc->stain_note, sizeof qc->stain_note, "%s", e->message);
    return;
  }
  int h = cosine(m[0], HEM) >= cosine(m[1], HEM) ? 0 : 1;
  memcpy(qc->stain_vectors[0], m[h], sizeof m[h]);
  memcpy(qc->stain_vectors[1], m[1 - h], sizeof m[h]);
  const double *v = m[1 - h];
  qc->stain_similarity_eosin = cosine(v, EOS), qc->stain_similarity_dab = cosine(v, DAB);
  qc->stain_blue_green = v[1] > 0 ? v[2] / v[1] : 99;
  qc->stain_estimated = true;
  g_strlcpy(qc->stain, qc->stain_blue_green < 0.9 ? "he" : "hdab", sizeof qc->stain);
  g_snprintf(qc->stain_note, sizeof qc->stain_note,
             "Macenko on %zu pixels of a 512 px thumbnail; second stain blue/green "
             "absorbance %.2f (eosin 0.11, DAB 1.37; below 0.9 is eosin)",
             n, qc->stain_blue_green);
}

static const char *stain_words(const char *s) {
  return !strcmp(s, "he") ? "H&E" : !strcmp(s, "hdab") ? "H-DAB (IHC)" : s;
}

bool _eosin_qc_run(EosinSlide *slide, const EosinThumbnail *th, const EosinConfig *cfg,
                   const EosinTissueMask *mask, EosinQc *qc, GError **err) {
  const EosinSlideInfo *info = eosin_slide_get_info(slide);
  memset(qc, 0, sizeof *qc);
  qc->reasons = g_ptr_array_new_with_free_func(g_free);
  qc->enabled = cfg->qc.enabled;
  int w = th->width, h = th->height;
  qc->width = w, qc->height = h;
  qc->classes = g_malloc0((size_t) w * h);
  int bb[4];
  _eosin_thumbnail_bounds(th, info, bb);
  int bx0 = bb[0], by0 = bb[1], bx1 = bb[2], by1 = bb[3];
  if (bx1 <= bx0 || by1 <= by0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE, "slide %s: QC: empty slide bounds",
                info->path);
    return false;
  }
  /* brightfield or not: the median luminance of the scanned area (glass is
   * bright in brightfield, the background of a fluorescence scan is dark) */
  int64_t hist[256] = {0}, all = 0;
  for (int y = by0; y < by1; y++)
    for (int x = bx0; x < bx1; x++) {
      const uint8_t *p = th->rgb + ((size_t) y * w + x) * 3;
      hist[(299 * p[0] + 587 * p[1] + 114 * p[2]) / 1000]++;
      all++;
    }
  int64_t acc = 0;
  int median = 0;
  while (median < 255 && (acc += hist[median]) < all / 2)
    median++;
  qc->median_brightness = median;
  g_strlcpy(qc->imaging, median < cfg->qc.brightfield_min_median ? "fluorescence" : "brightfield",
            sizeof qc->imaging);
  if (!qc->enabled)
    return true;

  float lin[256];
  linear_table(lin);
  int64_t count[EOSIN_QC_N_CLASSES] = {0}, tissue = 0;
  bool bright = !strcmp(qc->imaging, "brightfield");
  double blue_s = blue_saturation(cfg);
  bool off[EOSIN_QC_N_CLASSES], exclude[EOSIN_QC_N_CLASSES];
  actions(cfg, off, exclude);
  for (int y = by0; y < by1 && bright; y++)
    for (int x = bx0; x < bx1; x++) {
      size_t i = (size_t) y * w + x;
      uint8_t c = classify(th->rgb + 3 * i, lin, cfg->qc.dark_lightness, blue_s);
      /* ink and folds count where they lie on tissue (ink is coloured, so
       * the saturation mask holds it); edges anywhere on the glass */
      if ((c == EOSIN_QC_DARK && !mask->mask[i]) || off[c])
        c = EOSIN_QC_CLEAN;
      qc->classes[i] = c;
      count[c]++;
      tissue += mask->mask[i] != 0 || is_pen(c);
    }
  qc->tissue_px = tissue;
  for (int c = 1; c < EOSIN_QC_N_CLASSES; c++)
    qc->fraction[c] = tissue ? (double) count[c] / tissue : 0;
  /* the usable tissue: detected tissue without the excluded artefacts */
  int64_t usable = 0;
  for (int y = by0; y < by1; y++)
    for (int x = bx0; x < bx1; x++) {
      size_t i = (size_t) y * w + x;
      usable += mask->mask[i] && !exclude[qc->classes[i]];
    }
  qc->usable_fraction = tissue ? (double) usable / tissue : 0;
  if (bright)
    stain_check(qc, slide, cfg, mask->threshold);

  /* the verdict */
  const char *want_img = cfg->domain.imaging, *want_stain = cfg->domain.stain;
  int mismatch = !g_strcmp0(cfg->domain.on_mismatch, "refuse") ? EOSIN_QC_FAIL : EOSIN_QC_WARN;
  if (strcmp(want_img, "any") && strcmp(want_img, qc->imaging))
    reason(qc, mismatch,
           "the slide looks %s (median brightness %d of 255) but the task's model is made for "
           "%s slides",
           qc->imaging, median, want_img);
  if (!bright) {
    if (!strcmp(want_img, "any"))
      reason(qc, EOSIN_QC_WARN,
             "the slide looks like fluorescence (median brightness %d of 255): colour QC and "
             "the stain check were not run",
             median);
    return true;
  }
  if (qc->stain_estimated && strcmp(want_stain, "any") && strcmp(want_stain, qc->stain))
    reason(qc, mismatch,
           "the tissue's stains look %s (second stain's blue/green absorbance %.2f: eosin "
           "0.11, DAB 1.37) but the task's model is made for %s",
           stain_words(qc->stain), qc->stain_blue_green, stain_words(want_stain));
  else if (!qc->stain_estimated && strcmp(want_stain, "any"))
    reason(qc, EOSIN_QC_WARN, "the stains could not be estimated (%s): the %s check was not "
                              "made", qc->stain_note, stain_words(want_stain));
  for (int c = 1; c < EOSIN_QC_N_CLASSES; c++)
    if (qc->fraction[c] >= cfg->qc.warn_fraction)
      reason(qc, EOSIN_QC_WARN, "%s covers %.1f%% of the tissue (%s)",
             EOSIN_QC_CLASS_NAMES[c], 100 * qc->fraction[c], action(cfg, c));
  if (tissue && qc->usable_fraction < cfg->qc.min_usable_fraction)
    reason(qc, EOSIN_QC_FAIL,
           "only %.1f%% of the tissue is usable after excluding artefacts ([qc] "
           "min_usable_fraction = %g)",
           100 * qc->usable_fraction, cfg->qc.min_usable_fraction);
  return true;
}

bool _eosin_qc_usable_mask(const EosinTissueMask *mask, const EosinQc *qc,
                           const EosinConfig *cfg, EosinTissueMask *out) {
  int w = mask->width, h = mask->height;
  *out = *mask;
  out->mask = g_malloc((size_t) w * h);
  out->integral = g_new0(int64_t, (size_t) (w + 1) * (h + 1));
  bool off[EOSIN_QC_N_CLASSES], exclude[EOSIN_QC_N_CLASSES];
  actions(cfg, off, exclude);
  int64_t kept = 0;
  for (int y = 0; y < h; y++) {
    int64_t row = 0;
    for (int x = 0; x < w; x++) {
      size_t i = (size_t) y * w + x;
      bool drop = qc->classes && exclude[qc->classes[i]];
      uint8_t v = mask->mask[i] && !drop;
      out->mask[i] = v;
      row += v;
      out->integral[(size_t) (y + 1) * (w + 1) + x + 1] =
          out->integral[(size_t) y * (w + 1) + x + 1] + row;
    }
    kept += row;
  }
  int64_t before = mask->integral[(size_t) h * (w + 1) + w];
  out->fraction = before ? mask->fraction * kept / before : 0;
  return kept != before;
}

const char *_eosin_qc_verdict_name(int verdict) {
  return verdict == EOSIN_QC_FAIL ? "fail" : verdict == EOSIN_QC_WARN ? "warn" : "pass";
}

char *_eosin_qc_reasons(const EosinQc *qc) {
  GString *s = g_string_new(NULL);
  for (guint k = 0; k < qc->reasons->len; k++)
    g_string_append_printf(s, "%s%s", k ? "; " : "", (char *) qc->reasons->pdata[k]);
  return g_string_free(s, FALSE);
}

void _eosin_qc_json(const EosinQc *qc, const EosinConfig *cfg, JsonBuilder *b) {
  json_builder_begin_object(b);
  _eosin_json_bool(b, "enabled", qc->enabled);
  _eosin_json_str(b, "verdict", _eosin_qc_verdict_name(qc->verdict));
  json_builder_set_member_name(b, "reasons");
  json_builder_begin_array(b);
  for (guint i = 0; i < qc->reasons->len; i++)
    json_builder_add_string_value(b, qc->reasons->pdata[i]);
  json_builder_end_array(b);
  _eosin_json_str(b, "imaging", qc->imaging);
  _eosin_json_int(b, "median_brightness", qc->median_brightness);
  json_builder_set_member_name(b, "stain");
  json_builder_begin_object(b);
  _eosin_json_str(b, "pair", qc->stain);
  _eosin_json_str(b, "note", qc->stain_note);
  if (qc->stain_estimated) {
    const char *names[2] = {"hematoxylin", "second"};
    for (int k = 0; k < 2; k++) {
      json_builder_set_member_name(b, names[k]);
      json_builder_begin_array(b);
      for (int i = 0; i < 3; i++)
        json_builder_add_double_value(b, qc->stain_vectors[k][i]);
      json_builder_end_array(b);
    }
    _eosin_json_num(b, "second_cosine_eosin", qc->stain_similarity_eosin);
    _eosin_json_num(b, "second_cosine_dab", qc->stain_similarity_dab);
    _eosin_json_num(b, "second_blue_green", qc->stain_blue_green);
  }
  json_builder_end_object(b);
  json_builder_set_member_name(b, "artefacts");
  json_builder_begin_object(b);
  for (int c = 1; c < EOSIN_QC_N_CLASSES; c++) {
    json_builder_set_member_name(b, EOSIN_QC_CLASS_NAMES[c]);
    json_builder_begin_object(b);
    _eosin_json_num(b, "fraction_of_tissue", qc->fraction[c]);
    _eosin_json_str(b, "action", action(cfg, c));
    json_builder_end_object(b);
  }
  json_builder_end_object(b);
  _eosin_json_num(b, "usable_fraction", qc->usable_fraction);
  if (qc->sharpness_n) {
    json_builder_set_member_name(b, "sharpness");
    json_builder_begin_object(b);
    _eosin_json_str(b, "measure", "variance of the Laplacian of grey, per analysed tile");
    _eosin_json_int(b, "tiles", qc->sharpness_n);
    const char *pn[5] = {"p5", "p25", "p50", "p75", "p95"};
    for (int k = 0; k < 5; k++)
      _eosin_json_num(b, pn[k], qc->sharpness_pct[k]);
    _eosin_json_num(b, "blur_threshold", cfg->qc.blur_threshold);
    _eosin_json_num(b, "blurred_fraction", qc->blurred_fraction);
    _eosin_json_str(b, "action", cfg->qc.blur);
    json_builder_end_object(b);
  }
  json_builder_end_object(b);
}

/* One legend entry: a swatch of class @c's colour and its name with its
 * share of the tissue, black on white. Caller unrefs. */
static VipsImage *legend_row(const EosinQc *qc, int c) {
  g_autofree char *label = g_strdup_printf(" %s %.1f%%  ", EOSIN_QC_CLASS_NAMES[c],
                                           100 * qc->fraction[c]);
  VipsImage *t = NULL, *inv = NULL, *blk = NULL, *sw = NULL, *sw8 = NULL, *row = NULL;
  VipsImage *txt3 = NULL;
  double ink[3] = {CLASS_RGB[c][0], CLASS_RGB[c][1], CLASS_RGB[c][2]}, zero[3] = {0, 0, 0};
  bool ok = !vips_text(&t, label, "dpi", 96, NULL) && !vips_invert(t, &inv, NULL);
  if (ok) {
    VipsImage *bands[3] = {inv, inv, inv};
    ok = !vips_bandjoin(bands, &txt3, 3, NULL) &&
         !vips_black(&blk, 16, inv->Ysize, "bands", 3, NULL) &&
         !vips_linear(blk, &sw, zero, ink, 3, NULL) && !vips_cast_uchar(sw, &sw8, NULL);
  }
  if (ok) {
    VipsImage *pair[2] = {sw8, txt3};
    ok = !vips_arrayjoin(pair, &row, 2, NULL);
  }
  VipsImage *tmp[] = {t, inv, blk, sw, sw8, txt3};
  for (unsigned i = 0; i < G_N_ELEMENTS(tmp); i++)
    if (tmp[i])
      g_object_unref(tmp[i]);
  return ok ? row : NULL;
}

/* qc.png: the thumbnail, its artefacts painted over it, and a legend strip
 * of the classes (colour swatch, name and share of the tissue) below. */
bool _eosin_qc_png(const EosinThumbnail *th, const EosinQc *qc, const char *path, GError **err) {
  int w = th->width, h = th->height;
  g_autofree uint8_t *px = g_memdup2(th->rgb, (size_t) w * h * 3);
  for (size_t i = 0; qc->classes && i < (size_t) w * h; i++) {
    int c = qc->classes[i];
    if (c)
      for (int k = 0; k < 3; k++)
        px[3 * i + k] = (uint8_t) ((px[3 * i + k] + 3 * CLASS_RGB[c][k]) / 4);
  }
  g_autoptr(VipsImage) img = vips_image_new_from_memory(px, (size_t) w * h * 3, w, h, 3,
                                                        VIPS_FORMAT_UCHAR);
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(g_object_unref);
  for (int c = 1; img && c < EOSIN_QC_N_CLASSES; c++) {
    VipsImage *r = legend_row(qc, c);
    if (!r)
      break;
    g_ptr_array_add(rows, r);
  }
  double white[3] = {255, 255, 255};
  VipsArrayDouble *bg = vips_array_double_new(white, 3);
  VipsImage *legend = NULL, *out = NULL;
  bool ok = img && rows->len == EOSIN_QC_N_CLASSES - 1 &&
            !vips_arrayjoin((VipsImage **) rows->pdata, &legend, rows->len, "background", bg,
                            "shim", 8, NULL) &&
            !vips_join(img, legend, &out, VIPS_DIRECTION_VERTICAL, "expand", TRUE,
                       "background", bg, NULL);
  vips_area_unref(VIPS_AREA(bg));
  if (legend)
    g_object_unref(legend);
  g_autoptr(VipsImage) outp = out;
  void *buf = NULL;
  size_t len = 0;
  if (!ok || vips_image_write_to_buffer(out, ".png", &buf, &len, "compression", 1, NULL)) {
    _eosin_set_vips_error(err, "qc.png");
    return false;
  }
  bool done = _eosin_write_atomic(path, buf, len, err);
  g_free(buf);
  return done;
}

/* Luma of row @y of a @side px RGB tile into @out. */
static void grey_row(const uint8_t *rgb, int side, int y, float *out) {
  const uint8_t *p = rgb + (size_t) y * side * 3;
  for (int x = 0; x < side; x++, p += 3)
    out[x] = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
}

float _eosin_qc_tile_sharpness(const uint8_t *rgb, int side) {
  /* 4-neighbour Laplacian of luma on the inner pixels; its variance is
   * Pech-Pacheco's focus measure: edges of nuclei and fibres give large
   * second derivatives, which blur removes. Luma is computed once per
   * pixel into a ring of three rows (this runs on every tile, in the
   * readers); 3 x 4096 floats stay below malloc's mmap threshold. */
  if (side < 3)
    return 0;
  g_autofree float *ring = g_new(float, (size_t) 3 * side);
  float *row[3] = {ring, ring + side, ring + 2 * side};
  grey_row(rgb, side, 0, row[0]);
  grey_row(rgb, side, 1, row[1]);
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  for (int y = 1; y < side - 1; y++) {
    float *up = row[(y - 1) % 3], *mid = row[y % 3], *down = row[(y + 1) % 3];
    grey_row(rgb, side, y + 1, down);
    for (int x = 1; x < side - 1; x++) {
      float l = mid[x - 1] + mid[x + 1] + up[x] + down[x] - 4 * mid[x];
      sum += l, sum2 += (double) l * l;
      n++;
    }
  }
  double mean = sum / n;
  return (float) MAX(0, sum2 / n - mean * mean);
}

static int cmp_float(const void *a, const void *b) {
  float x = *(const float *) a, y = *(const float *) b;
  return (x > y) - (x < y);
}

void _eosin_qc_sharpness(EosinQc *qc, const EosinConfig *cfg, const float *sharpness, int n) {
  if (n <= 0)
    return;
  g_autofree float *s = g_memdup2(sharpness, (size_t) n * sizeof(float));
  qsort(s, n, sizeof(float), cmp_float);
  const double pct[5] = {5, 25, 50, 75, 95};
  for (int k = 0; k < 5; k++)
    qc->sharpness_pct[k] = s[(size_t) CLAMP(lround(pct[k] / 100 * (n - 1)), 0, n - 1)];
  qc->sharpness_n = n;
  int blurred = 0;
  if (cfg->qc.blur_threshold > 0 && strcmp(cfg->qc.blur, "off"))
    for (int i = 0; i < n; i++)
      blurred += sharpness[i] < cfg->qc.blur_threshold;
  qc->blurred_fraction = (double) blurred / n;
  if (qc->blurred_fraction >= cfg->qc.warn_fraction)
    reason(qc, EOSIN_QC_WARN,
           "%.1f%% of the analysed tiles are out of focus (sharpness below [qc] "
           "blur_threshold = %g)",
           100 * qc->blurred_fraction, cfg->qc.blur_threshold);
}
