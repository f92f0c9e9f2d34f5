/*
 * distance.c — the one Euclidean distance transform of Eosin: exact squared
 * distances by Felzenszwalb & Huttenlocher's lower envelope of parabolas
 * ("Distance transforms of sampled functions", Theory of Computing 2012),
 * one pass down the columns, then one along the rows. Nucleus detection
 * splits nuclei and grows cells on it (as floats); the CAMELYON16
 * evaluation grows truth lesions by 75 µm on it (squared, as doubles).
 * Every value is a whole number computed in doubles, so both get the
 * distances the original code of each computed.
 */
#include "cells/cells-private.h"

#include <math.h>

/* One pass of the exact squared Euclidean distance transform over the @n
 * values of @f into @d; @v (n) and @z (n + 1) are scratch. */
static void distance_1d(const double *f, int n, double *d, int *v, double *z) {
  int k = 0;
  v[0] = 0;
  z[0] = -INFINITY, z[1] = INFINITY;
  for (int q = 1; q < n; q++) {
    double s;
    for (;;) {
      int p = v[k];
      s = ((f[q] + (double) q * q) - (f[p] + (double) p * p)) / (2.0 * (q - p));
      if (s > z[k])
        break;
      k--; /* z[0] = -inf ends this */
    }
    k++;
    v[k] = q, z[k] = s, z[k + 1] = INFINITY;
  }
  k = 0;
  for (int q = 0; q < n; q++) {
    while (z[k + 1] < q)
      k++;
    d[q] = (double) (q - v[k]) * (q - v[k]) + f[v[k]];
  }
}

void _eosin_edt_sq(const uint8_t *is_source, int W, int H, double *out) {
  /* "infinitely far": more than any squared distance on a grid */
  const double BIG = 1e20;
  int n = MAX(W, H);
  g_autofree double *f = g_new(double, n), *d = g_new(double, n), *z = g_new(double, n + 1);
  g_autofree int *v = g_new(int, n);
  for (int x = 0; x < W; x++) {
    for (int y = 0; y < H; y++)
      f[y] = is_source[(size_t) y * W + x] ? 0 : BIG;
    distance_1d(f, H, d, v, z);
    for (int y = 0; y < H; y++)
      out[(size_t) y * W + x] = d[y];
  }
  for (int y = 0; y < H; y++) {
    double *row = out + (size_t) y * W;
    memcpy(f, row, sizeof(double) * W);
    distance_1d(f, W, row, v, z);
  }
}

void _eosin_edt(const uint8_t *is_source, int W, int H, float *out) {
  size_t n = (size_t) W * H;
  g_autofree double *sq = g_new(double, n);
  _eosin_edt_sq(is_source, W, H, sq);
  for (size_t i = 0; i < n; i++)
    out[i] = (float) sqrt(sq[i]);
}
