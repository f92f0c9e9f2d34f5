/*
 * nuclei.c — nuclei and cells on one tile of stain optical densities, the
 * way QuPath's watershed cell detection (the engine of its "Positive cell
 * detection") finds them, so Eosin's counts and QuPath's agree:
 *
 *   detection image (haematoxylin OD, or the OD sum)
 *   -> median (optional) -> minus a background by reconstruction
 *      (an opening of background_radius_um, regions darker than
 *      max_background cut out)
 *   -> negative Laplacian of a Gaussian of sigma_um; seeds = its regional
 *      maxima; seeded watershed over LoG > 0, lines where basins meet
 *   -> basins whose mean (background-subtracted) detection value exceeds
 *      the threshold are kept, merged across the lines (dilate, AND LoG > 0)
 *   -> holes filled, split by shape (watershed of the distance transform
 *      from maxima of prominence 0.5 px)
 *   -> one-pixel boundary refinement on a LoG of sigma 1 px, then
 *      4-connected nuclei filtered by mean >= threshold and area
 *   -> cells: nuclei grown by cell_expansion_um, nearest nucleus first,
 *      never into a neighbour (a distance-limited Voronoi partition).
 *
 * All sizes are in µm and converted with the tile's µm/px, so results do
 * not change with the scanner. This file is the recipe; its operations
 * are the other files of cells/ (filters, reconstruction, maxima,
 * watershed, distance transform, labeller).
 */
#include "cells/cells-private.h"

#include <math.h>

void _eosin_nuclei_labels_clear(EosinNucleiLabels *l) {
  g_clear_pointer(&l->nucleus, g_free);
  g_clear_pointer(&l->cell, g_free);
  l->n = 0;
}

/* The detection image into the caller's @det (W*H): haematoxylin, or the
 * weighted OD sum, median-filtered when the config asks. */
static void detection_image(const EosinNucleiParams *p, const float *stains, int W, int H,
                            float *det) {
  size_t n = (size_t) W * H;
  for (size_t i = 0; i < n; i++)
    det[i] = p->detect_od_sum ? (float) (p->od_sum_weight[0] * stains[3 * i] +
                                         p->od_sum_weight[1] * stains[3 * i + 1] +
                                         p->od_sum_weight[2] * stains[3 * i + 2])
                              : stains[3 * i];
  if (p->median_radius_um > 0) {
    g_autofree float *m = g_new(float, n);
    _eosin_cells_median(det, W, H, p->median_radius_um / p->mpp, m);
    memcpy(det, m, n * sizeof(float));
  }
}

/* Subtracts from @det (in place) its background: the opening of
 * background_radius_um rebuilt under it. Regions whose background is above
 * max_background are cut out (r x 2 around) and marked in the caller's
 * @bgmask (W*H, zeroed), so nuclei on them can be dropped. */
static void subtract_background(const EosinNucleiParams *p, float *det, int W, int H,
                                uint8_t *bgmask) {
  size_t n = (size_t) W * H;
  double r = p->background_radius_um / p->mpp;
  g_autofree float *bg = g_new(float, n);
  _eosin_cells_rank_filter(det, W, H, r, false, bg);
  bool any = false;
  for (size_t i = 0; i < n && p->max_background > 0; i++)
    if (bg[i] > p->max_background)
      any = true;
  if (any) {
    g_autofree float *hot = g_new(float, n), *grown = g_new(float, n);
    for (size_t i = 0; i < n; i++)
      hot[i] = bg[i] > p->max_background;
    _eosin_cells_rank_filter(hot, W, H, 2 * r, true, grown);
    for (size_t i = 0; i < n; i++)
      if (grown[i] > 0)
        bgmask[i] = 1, bg[i] = -INFINITY;
  }
  _eosin_cells_reconstruct(bg, det, W, H);
  for (size_t i = 0; i < n; i++)
    det[i] -= isfinite(bg[i]) ? bg[i] : 0;
}

/* The nucleus pixels before the split by shape into the caller's @bp
 * (W*H): watershed basins of the LoG @lg seeded at its regional maxima,
 * kept when their mean @det is above the threshold and none of their
 * pixels is cut-out background (@bgmask), then merged across the
 * watershed lines (3 x 3 dilation, AND LoG > 0). @lab (W*H) is scratch. */
static void bright_basins(const EosinNucleiParams *p, const float *det, const float *lg,
                          const uint8_t *bgmask, int W, int H, int *lab, uint8_t *bp) {
  size_t n = (size_t) W * H;
  g_autofree uint8_t *lpos = g_new(uint8_t, n);
  for (size_t i = 0; i < n; i++)
    lpos[i] = lg[i] > 0;
  int nseeds = _eosin_cells_regional_maxima(lg, W, H, 0.001f, true, lab);
  _eosin_cells_watershed(lg, W, H, lab, 0.0f, NULL, NULL, 0);

  g_autofree double *sum = g_new0(double, nseeds + 1);
  g_autofree int64_t *cnt = g_new0(int64_t, nseeds + 1);
  g_autofree uint8_t *bad = g_new0(uint8_t, nseeds + 1);
  for (size_t i = 0; i < n; i++)
    if (lab[i] > 0) {
      sum[lab[i]] += det[i], cnt[lab[i]]++;
      if (bgmask[i])
        bad[lab[i]] = 1;
    }
  g_autofree uint8_t *kept = g_new0(uint8_t, n);
  for (size_t i = 0; i < n; i++) {
    int l = lab[i];
    kept[i] = l > 0 && !bad[l] && sum[l] / cnt[l] > p->threshold;
  }
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint8_t v = 0;
      for (int dy = -1; dy <= 1 && !v; dy++)
        for (int dx = -1; dx <= 1 && !v; dx++) {
          int nx = x + dx, ny = y + dy;
          if (nx >= 0 && ny >= 0 && nx < W && ny < H)
            v = kept[(size_t) ny * W + nx];
        }
      bp[(size_t) y * W + x] = v && lpos[(size_t) y * W + x];
    }
}

/* Holes of @bp filled, then touching nuclei split at the watershed lines
 * of their distance transform, seeded at maxima of prominence 0.5 px.
 * @bp is rewritten in place; @lab (W*H) is scratch. */
static void split_by_shape(uint8_t *bp, int W, int H, int *lab) {
  size_t n = (size_t) W * H;
  _eosin_fill_holes(bp, W, H, true);
  g_autofree float *d = g_new(float, n);
  g_autofree uint8_t *bg0 = g_new(uint8_t, n);
  for (size_t i = 0; i < n; i++)
    bg0[i] = !bp[i];
  _eosin_edt(bg0, W, H, d);
  _eosin_cells_prominent_maxima(d, bp, W, H, 0.5f, lab);
  g_autofree uint32_t *lv = g_new(uint32_t, n);
  uint32_t nl = _eosin_cells_distance_levels(d, n, bp, (float) (W + H), false, lv);
  _eosin_cells_watershed(d, W, H, lab, 0.0f, bp, lv, nl);
  for (size_t i = 0; i < n; i++)
    bp[i] = bp[i] && lab[i] > 0;
}

/* Boundary refinement of @bp (in place): edge pixels where a LoG of sigma
 * 1 px of the raw detection image @raw is not positive are dropped. */
static void refine_boundary(const float *raw, uint8_t *bp, int W, int H) {
  size_t n = (size_t) W * H;
  g_autofree float *fine = g_new(float, n);
  g_autofree uint8_t *tmp = g_new(uint8_t, n);
  _eosin_cells_neg_log(raw, W, H, 1.0, fine);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      size_t i = (size_t) y * W + x;
      bool inner = bp[i];
      for (int dy = -1; dy <= 1 && inner; dy++)
        for (int dx = -1; dx <= 1 && inner; dx++) {
          int nx = CLAMP(x + dx, 0, W - 1), ny = CLAMP(y + dy, 0, H - 1);
          inner = bp[(size_t) ny * W + nx];
        }
      tmp[i] = inner || (bp[i] && fine[i] > 0);
    }
  memcpy(bp, tmp, n);
}

/* The nuclei: 4-connected components of @bp whose mean @det reaches the
 * threshold and whose area lies within the limits, numbered 1..kept in
 * the labeller's order, into out->nucleus (allocated here, the caller's);
 * @lab (W*H) is scratch. Returns how many were kept. */
static int keep_nuclei(const EosinNucleiParams *p, const uint8_t *bp, const float *det, int W,
                       int H, int *lab, EosinNucleiLabels *out) {
  size_t n = (size_t) W * H;
  double px_um2 = p->mpp * p->mpp;
  int nn = _eosin_label_components(bp, W, H, false, lab);
  g_autofree double *sum = g_new0(double, nn + 1);
  g_autofree int64_t *cnt = g_new0(int64_t, nn + 1);
  for (size_t i = 0; i < n; i++)
    if (lab[i])
      sum[lab[i]] += det[i], cnt[lab[i]]++;
  double min_px = p->min_area_um2 / px_um2, max_px = p->max_area_um2 / px_um2;
  g_autofree int *remap = g_new0(int, nn + 1);
  int kept = 0;
  for (int l = 1; l <= nn; l++) {
    bool ok = sum[l] / cnt[l] >= p->threshold && (p->min_area_um2 <= 0 || cnt[l] >= min_px) &&
              (p->max_area_um2 <= 0 || cnt[l] <= max_px);
    remap[l] = ok ? ++kept : 0;
  }
  out->nucleus = g_new(int, n);
  for (size_t i = 0; i < n; i++)
    out->nucleus[i] = remap[lab[i]];
  return kept;
}

/* The cells: out->cell (allocated here, the caller's) is out->nucleus
 * grown within cell_expansion_um, nearest nucleus first, never into a
 * neighbour. */
static void grow_cells(const EosinNucleiParams *p, int W, int H, EosinNucleiLabels *out) {
  size_t n = (size_t) W * H;
  out->cell = g_memdup2(out->nucleus, n * sizeof(int));
  double ex = p->cell_expansion_um / p->mpp;
  if (!(ex > 0 && out->n))
    return;
  g_autofree uint8_t *src = g_new(uint8_t, n);
  g_autofree float *d = g_new(float, n);
  for (size_t i = 0; i < n; i++)
    src[i] = out->nucleus[i] > 0;
  _eosin_edt(src, W, H, d);
  g_autofree uint32_t *lv = g_new(uint32_t, n);
  uint32_t nl = _eosin_cells_distance_levels(d, n, NULL, (float) ex, true, lv);
  for (size_t i = 0; i < n; i++)
    d[i] = -d[i];
  _eosin_cells_watershed(d, W, H, out->cell, (float) -ex, NULL, lv, nl);
}

bool _eosin_nuclei_detect(const EosinNucleiParams *p, const float *stains, int W, int H,
                          EosinNucleiLabels *out, GError **err) {
  memset(out, 0, sizeof *out);
  if (W < 3 || H < 3 || !(p->mpp > 0)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "nucleus detection: a %d x %d image at %g µm/px", W, H, p->mpp);
    return false;
  }
  size_t n = (size_t) W * H;
  g_autofree float *det = g_new(float, n);
  detection_image(p, stains, W, H, det);
  /* the raw (median-filtered) detection image, for the boundary refinement */
  g_autofree float *raw = g_memdup2(det, n * sizeof(float));
  g_autofree uint8_t *bgmask = g_new0(uint8_t, n);
  if (p->background_radius_um > 0)
    subtract_background(p, det, W, H, bgmask);
  /* det is now what is measured against the threshold */
  double sigma = p->sigma_um / p->mpp;
  g_autofree float *lg = g_new(float, n);
  _eosin_cells_neg_log(det, W, H, sigma, lg);
  g_autofree int *lab = g_new(int, n);
  g_autofree uint8_t *bp = g_new(uint8_t, n);
  bright_basins(p, det, lg, bgmask, W, H, lab, bp);
  if (p->split_by_shape)
    split_by_shape(bp, W, H, lab);
  if (sigma > 1.5)
    refine_boundary(raw, bp, W, H);
  out->width = W, out->height = H;
  out->n = keep_nuclei(p, bp, det, W, H, lab, out);
  grow_cells(p, W, H, out);
  return true;
}
