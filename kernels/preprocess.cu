/*
 * preprocess.cu — tiles as a network wants them: uint8 RGB HWC to float
 * NCHW, scaled to [0, 1], normalised by the model's mean/std, optionally
 * in BGR order. One thread per output pixel, writes coalesced per plane.
 */
#include "eosin-kernels.h"

#include <cuda_runtime.h>

namespace {

struct Norm {
  float mean[3], inv_std[3];
  int src_channel[3];  /* which RGB channel feeds output plane k */
};

__global__ void preprocess_kernel(const uint8_t *rgb, int n, int size, Norm norm, float *out) {
  size_t plane = (size_t) size * size;
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= plane * n)
    return;
  size_t tile = i / plane, p = i % plane;
  const uint8_t *px = rgb + (tile * plane + p) * 3;
  float *dst = out + tile * 3 * plane + p;
  for (int k = 0; k < 3; k++)
    dst[k * plane] = (px[norm.src_channel[k]] / 255.0f - norm.mean[k]) * norm.inv_std[k];
}

}  // namespace

extern "C" int eosin_cuda_preprocess(const uint8_t *d_rgb, int n, int size, const float mean[3],
                                     const float std[3], int bgr, float *d_nchw, void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_rgb || !d_nchw || !mean || !std || n <= 0 || size <= 0)
    return cudaErrorInvalidValue;
  Norm norm;
  for (int k = 0; k < 3; k++) {
    if (!(std[k] > 0))
      return cudaErrorInvalidValue;
    norm.mean[k] = mean[k];
    norm.inv_std[k] = 1.0f / std[k];
    norm.src_channel[k] = bgr ? 2 - k : k;
  }
  size_t total = (size_t) n * size * size;
  unsigned blocks = (unsigned) ((total + 255) / 256);
  preprocess_kernel<<<blocks, 256, 0, (cudaStream_t) stream>>>(d_rgb, n, size, norm, d_nchw);
  return cudaGetLastError();
}
