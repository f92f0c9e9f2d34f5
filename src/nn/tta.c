/*
 * tta.c — test-time augmentation over the 8 dihedral orientations of a
 * square image ([model] tta = dihedral, issue 22): each batch is run in
 * each orientation (4 rotations, with and without a mirror), each result
 * activated, and the probabilities averaged. Histology has no up or left:
 * a classifier should not care how the slide lay on the scanner, and where
 * it does its eight answers averaged are steadier than one. Classification
 * only: a segmentation map would have to be turned back first.
 */
#include "nn/eosin-nn.h"
#include "eosin.h"

#include <string.h>

void eosin_dihedral(const uint8_t *src, int side, int k, uint8_t *dst) {
  int r = k & 3;
  bool mirror = k >= 4;
  for (int y = 0; y < side; y++)
    for (int x = 0; x < side; x++) {
      /* the source pixel of destination (x, y): mirrored, then rotated
       * r quarter turns clockwise */
      int sx = x, sy = y;
      for (int t = 0; t < r; t++) {
        int nx = sy, ny = side - 1 - sx;
        sx = nx, sy = ny;
      }
      if (mirror)
        sx = side - 1 - sx;
      memcpy(dst + 3 * ((size_t) y * side + x), src + 3 * ((size_t) sy * side + sx), 3);
    }
}

bool eosin_infer_run_dihedral(EosinInfer *inf, const uint8_t *rgb, int n, int side,
                              const EosinPreprocess *pp, const char *activation, int C,
                              float *out, GError **err) {
  size_t img = (size_t) side * side * 3;
  g_autofree uint8_t *turned = g_malloc(img * MAX(n, 1));
  g_autofree float *one = g_new(float, (size_t) MAX(n, 1) * C);
  memset(out, 0, sizeof(float) * (size_t) n * C);
  for (int k = 0; k < 8; k++) {
    for (int i = 0; i < n; i++)
      eosin_dihedral(rgb + i * img, side, k, turned + i * img);
    if (!eosin_infer_run_rgb(inf, turned, n, pp, one, err)) {
      g_prefix_error(err, "tta orientation %d of 8: ", k + 1);
      return false;
    }
    _eosin_activate(activation, one, (size_t) n, C, 1);
    for (size_t v = 0; v < (size_t) n * C; v++)
      out[v] += one[v] / 8;
  }
  return true;
}
