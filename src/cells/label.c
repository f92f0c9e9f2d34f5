/*
 * label.c — the one connected-component labeller of Eosin (nuclei, tissue
 * regions, heatmap lesion candidates, CAMELYON16 truth lesions, hole
 * filling). Components are numbered in the row-major order of their first
 * pixel, whatever order a flood visits them in, so every caller's numbering
 * (and what it derives from it: the order of lesions, of cells) is fixed by
 * the image alone. A pixel is labelled when it is pushed, so the explicit
 * stack never holds more than W*H pixels (grids of up to 2^32 pixels).
 */
#include "cells/cells-private.h"

int _eosin_label_components(const uint8_t *bin, int W, int H, bool conn8, int *labels) {
  size_t n = (size_t) W * H;
  memset(labels, 0, n * sizeof(int));
  g_autofree uint32_t *stack = g_new(uint32_t, n);
  int count = 0;
  for (size_t s = 0; s < n; s++) {
    if (!bin[s] || labels[s])
      continue;
    count++;
    size_t top = 0;
    stack[top++] = s;
    labels[s] = count;
    while (top) {
      size_t i = stack[--top];
      int x = i % W, y = i / W;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          if ((!dx && !dy) || (!conn8 && dx && dy))
            continue;
          int nx = x + dx, ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= W || ny >= H)
            continue;
          size_t j = (size_t) ny * W + nx;
          if (bin[j] && !labels[j]) {
            labels[j] = count;
            stack[top++] = j;
          }
        }
    }
  }
  return count;
}
