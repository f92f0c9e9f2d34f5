/*
 * colorize.cu — the overlay's colour mapping on the GPU, cell by cell,
 * identical to _eosin_grid_colorize in src/output-overlay.c.
 */
#include "eosin-kernels.h"

#include <cuda_runtime.h>
#include <math.h>

namespace {

struct Lut {
  uint8_t rgb[256][3];
};

__global__ void colorize_kernel(const float *values, int n_cells, int n_channels, int channel,
                                Lut lut, double vmin, double vmax, uint8_t alpha,
                                uint8_t *rgba) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= n_cells)
    return;
  float v = values[(size_t) c * n_channels + channel];
  uint8_t *out = rgba + (size_t) c * 4;
  if (isnan(v)) {
    out[0] = out[1] = out[2] = out[3] = 0;
    return;
  }
  double u = fmin(fmax((v - vmin) / (vmax - vmin), 0.0), 1.0);
  int idx = (int) llround(255 * u);
  out[0] = lut.rgb[idx][0];
  out[1] = lut.rgb[idx][1];
  out[2] = lut.rgb[idx][2];
  out[3] = alpha;
}

}  // namespace

extern "C" int eosin_cuda_colorize(const float *d_values, int n_cells, int n_channels,
                                   int channel, const uint8_t lut[256][3], double vmin,
                                   double vmax, double alpha, uint8_t *d_rgba, void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_values || !d_rgba || !lut || n_cells <= 0 || n_channels <= 0 || channel < 0 ||
      channel >= n_channels || !(vmax > vmin))
    return cudaErrorInvalidValue;
  Lut l;
  for (int i = 0; i < 256; i++)
    for (int k = 0; k < 3; k++)
      l.rgb[i][k] = lut[i][k];
  uint8_t a = (uint8_t) llround(255 * fmin(fmax(alpha, 0.0), 1.0));
  colorize_kernel<<<(n_cells + 255) / 256, 256, 0, (cudaStream_t) stream>>>(
      d_values, n_cells, n_channels, channel, l, vmin, vmax, a, d_rgba);
  return cudaGetLastError();
}
