/*
 * test-cells.c — cells/ on its own, on generated images: nucleus detection
 * on discs of known centres and radii drawn in optical density units (how
 * many are found, where, how large, which are dropped, that touching ones
 * are split, that cells grow around them without overlap); the labeller's
 * 4- and 8-connectivity and its numbering against a union-find reference;
 * hole filling's background connectivity; the distance transform against
 * brute force; stain vectors parsed, completed and inverted.
 */
#include "test-util.h"

#include "cells/eosin-cells.h"

#include <math.h>

/* A deterministic generator, so a failure can be replayed. */
static uint32_t next_random(uint32_t *s) {
  *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
  return *s;
}

typedef struct {
  double x, y, r, od;  /* centre (px), radius (px), haematoxylin OD above the background */
} Disc;

/* W x H pixels of haematoxylin, DAB, residual OD: a pale background with a
 * little noise and @n discs of haematoxylin on it. Caller frees. */
static float *draw_discs(int W, int H, const Disc *d, int n) {
  float *s = g_new0(float, (size_t) W * H * 3);
  uint32_t seed = 12345;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      float *p = s + 3 * ((size_t) y * W + x);
      p[0] = 0.05f + 0.01f * (float) (next_random(&seed) % 1000) / 1000;
      p[1] = 0.02f;
      for (int k = 0; k < n; k++)
        if ((x - d[k].x) * (x - d[k].x) + (y - d[k].y) * (y - d[k].y) <= d[k].r * d[k].r)
          p[0] += (float) d[k].od;
    }
  return s;
}

/* QuPath's watershed cell detection defaults (Eosin's [ihc] ones) at 0.5 µm/px. */
static EosinNucleiParams default_params(void) {
  return (EosinNucleiParams){.mpp = 0.5,
                             .background_radius_um = 8,
                             .max_background = 2,
                             .sigma_um = 1.5,
                             .threshold = 0.1,
                             .min_area_um2 = 10,
                             .max_area_um2 = 400,
                             .split_by_shape = true,
                             .cell_expansion_um = 5};
}

typedef struct {
  int64_t area;
  double cx, cy;
  int first; /* index of the first pixel in raster order */
} Blob;

/* Area, centroid and first pixel of labels 1..n of @lab. Caller frees. */
static Blob *measure(const int *lab, int W, int H, int n) {
  Blob *b = g_new0(Blob, n + 1);
  for (int i = 0; i <= n; i++)
    b[i].first = -1;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int l = lab[(size_t) y * W + x];
      cr_assert(l >= 0 && l <= n, "label %d outside 0..%d", l, n);
      if (!l)
        continue;
      if (b[l].first < 0)
        b[l].first = y * W + x;
      b[l].area++, b[l].cx += x, b[l].cy += y;
    }
  for (int l = 1; l <= n; l++) {
    cr_assert_gt(b[l].area, 0, "label %d of 1..%d is empty", l, n);
    b[l].cx /= b[l].area, b[l].cy /= b[l].area;
  }
  return b;
}

Test(cells, nuclei_are_found_where_drawn_and_as_large) {
  enum { W = 240, H = 200 };
  /* well apart: farther than two cell expansions (10 px each) plus radii */
  const Disc keep[] = {{30, 30, 8, 0.6},  {90, 28, 6, 0.4},   {160, 35, 10, 0.8},
                       {210, 40, 7, 0.5}, {40, 100, 9, 0.7},  {120, 110, 8, 0.3},
                       {200, 120, 6, 0.9}, {60, 170, 7, 0.6}, {150, 172, 9, 0.5}};
  const int n_keep = G_N_ELEMENTS(keep);
  Disc all[G_N_ELEMENTS(keep) + 2];
  memcpy(all, keep, sizeof keep);
  all[n_keep] = (Disc){100, 70, 1.6, 0.8};    /* ~8 px = 2 µm²: under min_area_um2 */
  all[n_keep + 1] = (Disc){170, 80, 8, 0.03}; /* too faint for the threshold */
  g_autofree float *st = draw_discs(W, H, all, n_keep + 2);
  EosinNucleiParams p = default_params();
  EosinNucleiLabels L;
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_nuclei_detect(&p, st, W, H, &L, &err), "%s", err ? err->message : "");
  cr_assert_eq(L.width, W);
  cr_assert_eq(L.height, H);
  cr_assert_eq(L.n, n_keep, "%d nuclei found, %d drawn big and dark enough", L.n, n_keep);
  g_autofree Blob *nb = measure(L.nucleus, W, H, L.n);
  g_autofree Blob *cb = measure(L.cell, W, H, L.n);
  bool seen[G_N_ELEMENTS(keep)] = {false};
  for (int l = 1; l <= L.n; l++) {
    /* the drawn disc nearest the nucleus' centroid */
    int k = 0;
    for (int j = 1; j < n_keep; j++)
      if (hypot(nb[l].cx - keep[j].x, nb[l].cy - keep[j].y) <
          hypot(nb[l].cx - keep[k].x, nb[l].cy - keep[k].y))
        k = j;
    cr_expect(!seen[k], "disc %d found twice", k);
    seen[k] = true;
    cr_expect_lt(hypot(nb[l].cx - keep[k].x, nb[l].cy - keep[k].y), 0.5,
                 "nucleus %d at (%.2f, %.2f), disc drawn at (%g, %g)", l, nb[l].cx, nb[l].cy,
                 keep[k].x, keep[k].y);
    /* the pixels drawn (the area of a digital disc) */
    int64_t drawn = 0;
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++)
        drawn += (x - keep[k].x) * (x - keep[k].x) + (y - keep[k].y) * (y - keep[k].y) <=
                 keep[k].r * keep[k].r;
    cr_expect_leq(llabs(nb[l].area - drawn), 2 + drawn / 30,
                  "nucleus %d: %" G_GINT64_FORMAT " px, disc of radius %g: %" G_GINT64_FORMAT
                  " px", l, nb[l].area, keep[k].r, drawn);
    /* its cell: the nucleus grown by 5 µm = 10 px all round, containing it */
    double grown = G_PI * (keep[k].r + 10) * (keep[k].r + 10);
    cr_expect_lt(fabs(cb[l].area - grown), 0.1 * grown, "cell %d: %" G_GINT64_FORMAT
                 " px, %.0f expected", l, cb[l].area, grown);
    cr_expect_lt(hypot(cb[l].cx - nb[l].cx, cb[l].cy - nb[l].cy), 0.5);
  }
  for (size_t i = 0; i < (size_t) W * H; i++)
    if (L.nucleus[i])
      cr_assert_eq(L.cell[i], L.nucleus[i], "a nucleus pixel lies in its own cell");
  /* numbered in raster order of their first pixel (the labeller's order) */
  for (int l = 2; l <= L.n; l++)
    cr_expect_lt(nb[l - 1].first, nb[l].first, "nucleus %d starts before %d", l - 1, l);
  _eosin_nuclei_labels_clear(&L);
  cr_expect_null(L.nucleus);
  cr_expect_null(L.cell);
  cr_expect_eq(L.n, 0);
}

Test(cells, touching_nuclei_are_split_and_cells_do_not_overlap) {
  enum { W = 120, H = 90 };
  /* two discs of radius 9 whose centres are 15 px apart overlap by 3 px */
  const Disc d[] = {{45, 45, 9, 0.6}, {60, 45, 9, 0.6}};
  g_autofree float *st = draw_discs(W, H, d, 2);
  EosinNucleiParams p = default_params();
  for (int split = 1; split >= 0; split--) {
    p.split_by_shape = split;
    p.sigma_um = split ? 1.5 : 4; /* a wide Gaussian sees one blob, one seed */
    EosinNucleiLabels L;
    cr_assert(_eosin_nuclei_detect(&p, st, W, H, &L, NULL));
    if (split) {
      cr_assert_eq(L.n, 2, "%d nuclei: the pair is split", L.n);
      g_autofree Blob *b = measure(L.nucleus, W, H, 2);
      cr_expect_lt(fabs(b[1].cx - 45) + fabs(b[2].cx - 60), 2, "halves at x %.1f and %.1f",
                   b[1].cx, b[2].cx);
      cr_expect_lt(fabs(b[1].cy - 45) + fabs(b[2].cy - 45), 1);
      /* the cells meet on the line between the two, row by row, and never
       * reach into each other */
      int rows_met = 0;
      for (int y = 0; y < H; y++) {
        int max1 = -1, min2 = W;
        for (int x = 0; x < W; x++) {
          int c = L.cell[y * W + x];
          if (c == 1)
            max1 = MAX(max1, x);
          if (c == 2)
            min2 = MIN(min2, x);
        }
        if (max1 < 0 || min2 == W)
          continue;
        rows_met++;
        cr_expect_lt(max1, min2, "row %d: cell 1 reaches x = %d, cell 2 starts at %d", y, max1,
                     min2);
        if (abs(y - 45) <= 10) /* where both reach the middle */
          cr_expect(max1 >= 51 && min2 <= 55 && min2 - max1 <= 2,
                    "row %d: the cells meet at x = %d..%d", y, max1, min2);
      }
      cr_expect_gt(rows_met, 25, "the cells meet over %d rows", rows_met);
    } else {
      cr_expect_eq(L.n, 1, "%d nuclei: a wide Gaussian without the shape split", L.n);
    }
    _eosin_nuclei_labels_clear(&L);
  }
}

Test(cells, nuclei_detect_refuses_a_tiny_image) {
  float st[2 * 2 * 3] = {0};
  EosinNucleiParams p = default_params();
  EosinNucleiLabels L;
  g_autoptr(GError) err = NULL;
  cr_expect(!_eosin_nuclei_detect(&p, st, 2, 2, &L, &err));
  cr_expect_not_null(err);
  cr_expect_null(L.nucleus);
  _eosin_nuclei_labels_clear(&L);
}

Test(cells, labeller_connectivity_and_numbering) {
  /* first pixels in raster order: (0,0), (4,0), (2,1), (1,2) */
  const uint8_t bin[3 * 5] = {1, 1, 0, 0, 1,
                              0, 0, 1, 0, 1,
                              0, 1, 0, 0, 0};
  const int want4[3 * 5] = {1, 1, 0, 0, 2,
                            0, 0, 3, 0, 2,
                            0, 4, 0, 0, 0};
  const int want8[3 * 5] = {1, 1, 0, 0, 2,
                            0, 0, 1, 0, 2,
                            0, 1, 0, 0, 0};
  int lab[3 * 5];
  cr_assert_eq(_eosin_label_components(bin, 5, 3, false, lab), 4);
  cr_expect_arr_eq(lab, want4, sizeof want4);
  cr_assert_eq(_eosin_label_components(bin, 5, 3, true, lab), 2);
  cr_expect_arr_eq(lab, want8, sizeof want8);
  /* a U whose right arm starts a row above its left: numbered by the
   * first pixel, not by where a flood would reach first */
  const uint8_t u[4 * 4] = {0, 0, 0, 1,
                            1, 0, 0, 1,
                            1, 0, 0, 1,
                            1, 1, 1, 1};
  int lu[16];
  cr_assert_eq(_eosin_label_components(u, 4, 4, false, lu), 1);
  cr_expect_eq(lu[3], 1);
  cr_expect_eq(lu[4], 1);
}

/* The components of @bin by union-find, numbered by their first pixel. */
static int reference_labels(const uint8_t *bin, int W, int H, bool conn8, int *lab) {
  int n = W * H;
  g_autofree int *parent = g_new(int, n);
  for (int i = 0; i < n; i++)
    parent[i] = i;
#define FIND(i) ({ int r_ = (i); while (parent[r_] != r_) r_ = parent[r_]; r_; })
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      if (!bin[y * W + x])
        continue;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          int nx = x + dx, ny = y + dy;
          if ((!dx && !dy) || (!conn8 && dx && dy) || nx < 0 || ny < 0 || nx >= W || ny >= H ||
              !bin[ny * W + nx])
            continue;
          int a = FIND(y * W + x), b = FIND(ny * W + nx);
          parent[MAX(a, b)] = MIN(a, b);
        }
    }
  g_autofree int *id = g_new0(int, n);
  int count = 0;
  for (int i = 0; i < n; i++) {
    lab[i] = 0;
    if (!bin[i])
      continue;
    int r = FIND(i);
    if (!id[r])
      id[r] = ++count;
    lab[i] = id[r];
  }
#undef FIND
  return count;
}

Test(cells, labeller_matches_union_find_on_random_masks) {
  uint32_t seed = 2024;
  for (int t = 0; t < 40; t++) {
    int W = 1 + next_random(&seed) % 60, H = 1 + next_random(&seed) % 40;
    int fill = 20 + next_random(&seed) % 50; /* percent set */
    g_autofree uint8_t *bin = g_new(uint8_t, W * H);
    for (int i = 0; i < W * H; i++)
      bin[i] = (int) (next_random(&seed) % 100) < fill;
    g_autofree int *got = g_new(int, W * H), *want = g_new(int, W * H);
    for (int conn8 = 0; conn8 <= 1; conn8++) {
      int n = _eosin_label_components(bin, W, H, conn8, got);
      cr_assert_eq(n, reference_labels(bin, W, H, conn8, want), "%d x %d, %s", W, H,
                   conn8 ? "8-connected" : "4-connected");
      cr_assert_arr_eq(got, want, sizeof(int) * W * H, "%d x %d, %s", W, H,
                       conn8 ? "8-connected" : "4-connected");
    }
  }
}

Test(cells, fill_holes_background_connectivity) {
  /* a ring whose hole touches the outside only at a corner: for a
   * 4-connected background it is a hole, for an 8-connected one it is not */
  const uint8_t ring[5 * 5] = {0, 0, 0, 0, 0,
                               0, 1, 1, 1, 0,
                               0, 1, 0, 1, 0,
                               0, 1, 1, 0, 0,
                               0, 0, 0, 0, 0};
  uint8_t b[25];
  memcpy(b, ring, sizeof b);
  _eosin_fill_holes(b, 5, 5, true);
  cr_expect_arr_eq(b, ring, sizeof b, "8-connected: the hole leaks out at (3,3)");
  memcpy(b, ring, sizeof b);
  _eosin_fill_holes(b, 5, 5, false);
  cr_expect_eq(b[2 * 5 + 2], 1, "4-connected: the centre is a hole, filled");
  cr_expect_eq(b[3 * 5 + 3], 0, "the corner gap touches the border's background");
  cr_expect_eq(b[0], 0);
}

Test(cells, distance_transform_matches_brute_force) {
  uint32_t seed = 77;
  for (int t = 0; t < 12; t++) {
    int W = 1 + next_random(&seed) % 40, H = 1 + next_random(&seed) % 30;
    int per_mille = t < 2 ? 0 : 5 + next_random(&seed) % 100;
    g_autofree uint8_t *src = g_new(uint8_t, W * H);
    for (int i = 0; i < W * H; i++)
      src[i] = (int) (next_random(&seed) % 1000) < per_mille;
    g_autofree double *sq = g_new(double, W * H);
    g_autofree float *d = g_new(float, W * H);
    _eosin_edt_sq(src, W, H, sq);
    _eosin_edt(src, W, H, d);
    bool any = false;
    for (int i = 0; i < W * H; i++)
      any |= src[i];
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        double best = INFINITY;
        for (int j = 0; j < W * H; j++)
          if (src[j]) {
            double dx = x - j % W, dy = y - j / W;
            best = MIN(best, dx * dx + dy * dy);
          }
        int i = y * W + x;
        if (!any) {
          cr_assert_geq(sq[i], 1e19, "no source: (%d, %d) is far", x, y);
          continue;
        }
        cr_assert_eq(sq[i], best, "%d x %d: (%d, %d) squared %g, brute force %g", W, H, x, y,
                     sq[i], best);
        cr_assert_eq(d[i], (float) sqrt(best), "%d x %d: (%d, %d) %g", W, H, x, y, d[i]);
      }
  }
}

Test(cells, stain_vectors_parse_and_complete) {
  double m[3][3];
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_stain_parse_vectors(" 0.65, 0.70,0.29 ;0.27,0.57,0.78; 0,0,1", m, &err), "%s",
            err ? err->message : "");
  cr_expect_eq(m[0][1], 0.70);
  cr_expect_eq(m[1][2], 0.78);
  cr_expect_eq(m[2][2], 1.0);
  /* the third vector: the unit cross product of the first two */
  _eosin_stain_complete(m);
  for (int i = 0; i < 3; i++)
    cr_expect_float_eq(m[i][0] * m[i][0] + m[i][1] * m[i][1] + m[i][2] * m[i][2], 1.0, 1e-12);
  cr_expect_float_eq(m[0][0] * m[2][0] + m[0][1] * m[2][1] + m[0][2] * m[2][2], 0.0, 1e-12);
  double inv[3][3];
  cr_assert(_eosin_stain_matrix_invert(m, inv, NULL));
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      double s = 0;
      for (int k = 0; k < 3; k++)
        s += m[i][k] * inv[k][j];
      cr_expect_float_eq(s, i == j, 1e-12, "(M M^-1)[%d][%d] = %g", i, j, s);
    }
  const char *bad[] = {"1,0,0; 0,1,0", "1,0,0; 0,-1,0; 0,0,1", "1,0,0; 0,x,0; 0,0,1",
                       "1,0,0; 0,1,0; 0,0,1,0", "1,0,0; 0,nan,0; 0,0,1"};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    g_autoptr(GError) e = NULL;
    cr_expect(!_eosin_stain_parse_vectors(bad[i], m, &e), "'%s' accepted", bad[i]);
    g_autofree char *want = g_strdup_printf("'%s': expected three 'r,g,b' triplets", bad[i]);
    cr_expect(e && g_str_has_prefix(e->message, want), "%s", e ? e->message : "no error");
  }
}
