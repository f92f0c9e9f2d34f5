/*
 * filters.c — the image filters of nucleus detection, following ImageJ's
 * conventions QuPath's cell detection relies on (so Eosin's nuclei are
 * QuPath's): circular rank kernels of RankFilters (min, max, median), the
 * Gaussian with ImageJ's kernel reach, and a negative Laplacian of a
 * Gaussian; edges replicated. Row-wide loops the compiler vectorises (the
 * Makefile gives cells/ -ftree-vectorize), with the same sums in the same
 * order as a pixel-by-pixel loop, so results do not depend on it.
 */
#include "cells/cells-private.h"

#include <math.h>

/* ImageJ RankFilters' circular kernel: half-width of each row dy = -k..k. */
static int kernel_rows(double r, int *hw) {
  if (r >= 1.5 && r < 1.75)
    r = 1.75;
  else if (r >= 2.5 && r < 2.85)
    r = 2.85;
  int r2 = (int) (r * r) + 1;
  int k = (int) sqrt((double) r2);
  for (int dy = -k; dy <= k; dy++)
    hw[dy + k] = (int) sqrt((double) (r2 - dy * dy));
  return k;
}

/* Running min (sign = 1) or max (sign = -1) of @in (n values) over windows
 * of half-width @h, edges replicated: van Herk / Gil-Werman, O(n). */
static void run_extreme(const float *in, int n, int h, float sign, float *out, float *f,
                        float *b) {
  int w = 2 * h + 1, m = n + 2 * h;
  /* padded sequence p[i] = in[clamp(i - h)] */
#define P(i) (sign * in[CLAMP((i) - h, 0, n - 1)])
  for (int s = 0; s < m; s += w) {
    int e = MIN(s + w, m);
    f[s] = P(s);
    for (int i = s + 1; i < e; i++)
      f[i] = MIN(f[i - 1], P(i));
    b[e - 1] = P(e - 1);
    for (int i = e - 2; i >= s; i--)
      b[i] = MIN(b[i + 1], P(i));
  }
#undef P
  for (int x = 0; x < n; x++) {
    /* window p[x .. x + 2h] */
    out[x] = sign * MIN(b[x], f[x + 2 * h]);
  }
}

/* Circular min (@max = false) or max filter of radius @r (pixels), the
 * radius capped at 120: @out is the caller's. */
void _eosin_cells_rank_filter(const float *in, int W, int H, double r, bool max, float *out) {
  int hw[256];
  int k = kernel_rows(MIN(r, 120), hw);
  float sign = max ? -1.0f : 1.0f;
  size_t tmpn = (size_t) W + 2 * 128 + 2;
  g_autofree float *row = g_new(float, W), *f = g_new(float, tmpn), *b = g_new(float, tmpn);
  /* one running extreme per (source row, half-width), combined over dy */
  for (int y = 0; y < H; y++) {
    float *o = out + (size_t) y * W;
    for (int x = 0; x < W; x++)
      o[x] = max ? -INFINITY : INFINITY;
    for (int dy = -k; dy <= k; dy++) {
      int sy = CLAMP(y + dy, 0, H - 1);
      run_extreme(in + (size_t) sy * W, W, hw[dy + k], sign, row, f, b);
      for (int x = 0; x < W; x++)
        o[x] = max ? MAX(o[x], row[x]) : MIN(o[x], row[x]);
    }
  }
}

/* Median of radius @r (pixels), the same circular kernel. Only used when a
 * config asks for it, so a plain sort per pixel is enough; the radius is
 * capped at 50. @out is the caller's. */
void _eosin_cells_median(const float *in, int W, int H, double r, float *out) {
  int hw[256];
  int k = kernel_rows(MIN(r, 50), hw);
  g_autofree float *buf = g_new(float, (2 * k + 1) * (2 * k + 1));
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int n = 0;
      for (int dy = -k; dy <= k; dy++)
        for (int dx = -hw[dy + k]; dx <= hw[dy + k]; dx++)
          buf[n++] = in[(size_t) CLAMP(y + dy, 0, H - 1) * W + CLAMP(x + dx, 0, W - 1)];
      /* insertion sort is fine for the small kernels medians use */
      for (int i = 1; i < n; i++) {
        float v = buf[i];
        int j = i - 1;
        for (; j >= 0 && buf[j] > v; j--)
          buf[j + 1] = buf[j];
        buf[j + 1] = v;
      }
      out[(size_t) y * W + x] = buf[n / 2];
    }
}

/* Gaussian blur (ImageJ's kernel reach: ceil(sigma sqrt(-2 ln 0.0002)) + 1),
 * separable, edges replicated. In place. */
void _eosin_cells_gaussian(float *img, int W, int H, double sigma) {
  int k = (int) ceil(sigma * sqrt(-2 * log(0.0002))) + 1;
  g_autofree double *kern = g_new(double, 2 * k + 1);
  double sum = 0;
  for (int i = -k; i <= k; i++)
    sum += kern[i + k] = exp(-0.5 * i * i / (sigma * sigma));
  for (int i = 0; i <= 2 * k; i++)
    kern[i] /= sum;
  /* rows: a line padded by k replicated pixels each side; each tap is
   * added to the whole row in turn (the same sums in the same order as
   * pixel by pixel, but a loop the compiler vectorises) */
  g_autofree float *line = g_new(float, W + 2 * k);
  g_autofree double *acc = g_new(double, W);
  for (int y = 0; y < H; y++) {
    float *r = img + (size_t) y * W;
    for (int i = 0; i < k; i++)
      line[i] = r[0], line[k + W + i] = r[W - 1];
    memcpy(line + k, r, sizeof(float) * W);
    memset(acc, 0, sizeof(double) * W);
    for (int i = 0; i <= 2 * k; i++) {
      const float *src = line + i;
      double w = kern[i];
      for (int x = 0; x < W; x++)
        acc[x] += w * src[x];
    }
    for (int x = 0; x < W; x++)
      r[x] = (float) acc[x];
  }
  /* columns, a row at a time (the same sums in the same order, but over
   * whole rows, which the compiler vectorises and the cache likes) */
  g_autofree float *copy = g_memdup2(img, sizeof(float) * W * H);
  for (int y = 0; y < H; y++) {
    memset(acc, 0, sizeof(double) * W);
    for (int i = -k; i <= k; i++) {
      const float *src = copy + (size_t) CLAMP(y + i, 0, H - 1) * W;
      double w = kern[i + k];
      for (int x = 0; x < W; x++)
        acc[x] += w * src[x];
    }
    float *r = img + (size_t) y * W;
    for (int x = 0; x < W; x++)
      r[x] = (float) acc[x];
  }
}

/* The negative Laplacian of a Gaussian of @sigma: positive on blobs. @out
 * is the caller's. */
void _eosin_cells_neg_log(const float *in, int W, int H, double sigma, float *out) {
  size_t n = (size_t) W * H;
  g_autofree float *g = g_memdup2(in, n * sizeof(float));
  _eosin_cells_gaussian(g, W, H, sigma);
#define G(x, y) g[(size_t) CLAMP(y, 0, H - 1) * W + CLAMP(x, 0, W - 1)]
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      out[(size_t) y * W + x] =
          4 * G(x, y) - G(x - 1, y) - G(x + 1, y) - G(x, y - 1) - G(x, y + 1);
#undef G
}
