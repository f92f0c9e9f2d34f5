/*
 * preprocess.c — tiles to network input on the CPU: uint8 HWC RGB to float
 * NCHW with per-channel mean/std scaling and optional BGR order. This is the
 * reference the GPU kernel (kernels/preprocess.cu) must equal.
 */
#include "nn/backend.h"

void _eosin_preprocess(const uint8_t *rgb, int n, int size, const EosinPreprocess *pp,
                       float *nchw) {
  size_t plane = (size_t) size * size;
  /* a 256-entry table per output channel, computed exactly as the CUDA
   * kernel does ((v / 255 - mean) * (1 / std)), so both give the same bits;
   * mean and std are in the network's channel order (BGR when @bgr) */
  float lut[3][256];
  for (int c = 0; c < 3; c++) {
    float inv = 1.0f / pp->std[c];
    for (int v = 0; v < 256; v++)
      lut[c][v] = (v / 255.0f - pp->mean[c]) * inv;
  }
  for (int i = 0; i < n; i++) {
    const uint8_t *src = rgb + (size_t) i * plane * 3;
    float *dst = nchw + (size_t) i * plane * 3;
    for (int c = 0; c < 3; c++) {
      int sc = pp->bgr ? 2 - c : c;
      float *d = dst + (size_t) c * plane;
      for (size_t p = 0; p < plane; p++)
        d[p] = lut[c][src[3 * p + sc]];
    }
  }
}
