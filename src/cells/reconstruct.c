/*
 * reconstruct.c — morphological reconstruction: grayscale reconstruction by
 * dilation (the background nucleus detection subtracts: an opening
 * rebuilt under the image) and binary hole filling (nuclei, and CAMELYON16
 * truth lesions in the evaluation), the latter on the one labeller.
 */
#include "cells/cells-private.h"

/* Grayscale reconstruction by dilation of @marker (<= @mask) under @mask,
 * 8-connected (Vincent 1993: two raster scans, then a FIFO for the rest).
 * @marker is replaced by the result; @mask is not changed. */
void _eosin_cells_reconstruct(float *marker, const float *mask, int W, int H) {
  float *J = marker;
  for (size_t i = 0; i < (size_t) W * H; i++)
    J[i] = MIN(J[i], mask[i]);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      size_t i = (size_t) y * W + x;
      float v = J[i];
      if (x > 0) v = MAX(v, J[i - 1]);
      if (y > 0) {
        v = MAX(v, J[i - W]);
        if (x > 0) v = MAX(v, J[i - W - 1]);
        if (x < W - 1) v = MAX(v, J[i - W + 1]);
      }
      J[i] = MIN(v, mask[i]);
    }
  GQueue q = G_QUEUE_INIT;
  for (int y = H - 1; y >= 0; y--)
    for (int x = W - 1; x >= 0; x--) {
      size_t i = (size_t) y * W + x;
      float v = J[i];
      if (x < W - 1) v = MAX(v, J[i + 1]);
      if (y < H - 1) {
        v = MAX(v, J[i + W]);
        if (x < W - 1) v = MAX(v, J[i + W + 1]);
        if (x > 0) v = MAX(v, J[i + W - 1]);
      }
      J[i] = MIN(v, mask[i]);
      /* a forward neighbour that could still rise goes to the queue */
      static const int fdx[4] = {1, -1, 0, 1}, fdy[4] = {0, 1, 1, 1};
      for (int k = 0; k < 4; k++) {
        int nx = x + fdx[k], ny = y + fdy[k];
        if (nx < 0 || nx >= W || ny >= H)
          continue;
        size_t j = (size_t) ny * W + nx;
        if (J[j] < J[i] && J[j] < mask[j]) {
          g_queue_push_tail(&q, GSIZE_TO_POINTER(i + 1));
          break;
        }
      }
    }
  while (!g_queue_is_empty(&q)) {
    size_t i = GPOINTER_TO_SIZE(g_queue_pop_head(&q)) - 1;
    int x = i % W, y = i / W;
    for (int dy = -1; dy <= 1; dy++)
      for (int dx = -1; dx <= 1; dx++) {
        int nx = x + dx, ny = y + dy;
        if ((!dx && !dy) || nx < 0 || ny < 0 || nx >= W || ny >= H)
          continue;
        size_t j = (size_t) ny * W + nx;
        if (J[j] < J[i] && J[j] != mask[j]) {
          J[j] = MIN(J[i], mask[j]);
          g_queue_push_tail(&q, GSIZE_TO_POINTER(j + 1));
        }
      }
  }
}

void _eosin_fill_holes(uint8_t *bin, int W, int H, bool conn8) {
  size_t n = (size_t) W * H;
  /* the background's components; those with a pixel on the border are
   * outside, every other one is a hole */
  g_autofree uint8_t *bg = g_new(uint8_t, n);
  for (size_t i = 0; i < n; i++)
    bg[i] = !bin[i];
  g_autofree int *label = g_new(int, n);
  int nl = _eosin_label_components(bg, W, H, conn8, label);
  g_clear_pointer(&bg, g_free);
  g_autofree uint8_t *outside = g_new0(uint8_t, (size_t) nl + 1);
  for (int x = 0; x < W; x++)
    outside[label[x]] = outside[label[(size_t) (H - 1) * W + x]] = 1;
  for (int y = 0; y < H; y++)
    outside[label[(size_t) y * W]] = outside[label[(size_t) y * W + W - 1]] = 1;
  for (size_t i = 0; i < n; i++)
    if (label[i] && !outside[label[i]])
      bin[i] = 1;
}
