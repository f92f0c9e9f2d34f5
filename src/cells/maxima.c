/*
 * maxima.c — the seeds of nucleus detection's watersheds: regional maxima
 * of the Laplacian of Gaussian (one seed per blob, as QuPath's), and the
 * maxima of the distance transform that stand out by a prominence (ImageJ's
 * MaximumFinder idea), which split touching round nuclei by their shape.
 */
#include "cells/cells-private.h"

/* Regional maxima of @img (8-connected plateaus with no higher neighbour,
 * at least @min_value; away from the 1-px frame when @skip_frame, as
 * QuPath's seeds), labelled 4-connected into the caller's @seeds (W*H);
 * returns the count. */
int _eosin_cells_regional_maxima(const float *img, int W, int H, float min_value,
                                 bool skip_frame, int *seeds) {
  size_t n = (size_t) W * H;
  g_autofree uint8_t *state = g_new0(uint8_t, n); /* 1 = visited */
  g_autofree uint8_t *is_max = g_new0(uint8_t, n);
  g_autofree uint32_t *stack = g_new(uint32_t, n), *plateau = g_new(uint32_t, n);
  int f = skip_frame ? 1 : 0;
  for (int y = f; y < H - f; y++)
    for (int x = f; x < W - f; x++) {
      size_t s = (size_t) y * W + x;
      float v = img[s];
      if (state[s] || v < min_value)
        continue;
      size_t top = 0, np = 0;
      bool ok = true;
      stack[top++] = s;
      state[s] = 1;
      while (top) {
        size_t i = stack[--top];
        plateau[np++] = i;
        int px = i % W, py = i / W;
        if (skip_frame && (px == 0 || py == 0 || px == W - 1 || py == H - 1))
          ok = false;
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) {
            int nx = px + dx, ny = py + dy;
            if ((!dx && !dy) || nx < 0 || ny < 0 || nx >= W || ny >= H)
              continue;
            size_t j = (size_t) ny * W + nx;
            if (img[j] > v)
              ok = false;
            else if (img[j] == v && !state[j]) {
              state[j] = 1;
              stack[top++] = j;
            }
          }
      }
      for (size_t k = 0; ok && k < np; k++)
        is_max[plateau[k]] = 1;
    }
  return _eosin_label_components(is_max, W, H, false, seeds);
}

static int cmp_height_desc(gconstpointer a, gconstpointer b, gpointer data) {
  const float *h = data;
  float x = h[*(const uint32_t *) a], y = h[*(const uint32_t *) b];
  return (x < y) - (x > y);
}

/* Maxima of the distance map @d inside @bin with a prominence above @tol
 * (ImageJ's MaximumFinder idea): from the highest down, each maximum floods
 * the pixels above (its height - tol); one that reaches a higher pixel or
 * the flood of a higher maximum belongs to that peak. Accepted maxima
 * (whole plateaus) are labelled 1..count in the caller's @seeds (W*H). */
int _eosin_cells_prominent_maxima(const float *d, const uint8_t *bin, int W, int H, float tol,
                                  int *seeds) {
  size_t n = (size_t) W * H;
  g_autofree int *reg = g_new(int, n);
  int nreg = _eosin_cells_regional_maxima(d, W, H, 0.5f, false, reg);
  memset(seeds, 0, n * sizeof(int));
  if (!nreg)
    return 0;
  /* the pixels of each regional maximum, grouped (CSR), and their height */
  g_autofree uint32_t *start = g_new0(uint32_t, nreg + 2);
  for (size_t i = 0; i < n; i++)
    if (reg[i])
      start[reg[i] + 1]++;
  for (int r = 1; r <= nreg + 1; r++)
    start[r] += start[r - 1];
  g_autofree uint32_t *pix = g_new(uint32_t, start[nreg + 1]);
  g_autofree uint32_t *fill = g_memdup2(start, (nreg + 2) * sizeof(uint32_t));
  for (size_t i = 0; i < n; i++)
    if (reg[i])
      pix[fill[reg[i]]++] = i;
  g_autofree float *height = g_new(float, nreg + 1);
  g_autofree uint32_t *order = g_new(uint32_t, nreg);
  for (int r = 1; r <= nreg; r++)
    height[r] = d[pix[start[r]]], order[r - 1] = r;
  g_qsort_with_data(order, nreg, sizeof(uint32_t), cmp_height_desc, height);

  g_autofree uint8_t *flooded = g_new0(uint8_t, n), *mark = g_new0(uint8_t, n);
  g_autofree uint32_t *stack = g_new(uint32_t, n), *seen = g_new(uint32_t, n);
  g_autofree uint8_t *taken = g_new0(uint8_t, nreg + 1);
  int count = 0;
  for (int k = 0; k < nreg; k++) {
    int r = order[k];
    if (taken[r])
      continue;
    float v = height[r], floor_v = v - tol;
    size_t top = 0, ns = 0;
    bool higher = false;
    for (uint32_t q = start[r]; q < start[r + 1]; q++)
      stack[top++] = pix[q], mark[pix[q]] = 1;
    while (top) {
      size_t i = stack[--top];
      seen[ns++] = i;
      int x = i % W, y = i / W;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          int nx = x + dx, ny = y + dy;
          if ((!dx && !dy) || nx < 0 || ny < 0 || nx >= W || ny >= H)
            continue;
          size_t j = (size_t) ny * W + nx;
          if (mark[j] || !bin[j] || d[j] <= floor_v)
            continue;
          if (d[j] > v || flooded[j])
            higher = true;
          mark[j] = 1;
          stack[top++] = j;
        }
    }
    for (size_t q = 0; q < ns; q++) {
      mark[seen[q]] = 0;
      flooded[seen[q]] = 1;
      if (reg[seen[q]])
        taken[reg[seen[q]]] = 1;
    }
    if (!higher) {
      count++;
      for (uint32_t q = start[r]; q < start[r + 1]; q++)
        seeds[pix[q]] = count;
    }
  }
  return count;
}
