/*
 * stain.cu — colour deconvolution on the GPU: the same optical density
 * table and stain matrix as the CPU analyzer, per pixel and as per-tile
 * means (one block per tile, double accumulation so the means agree with
 * the CPU's to float precision).
 */
#include "eosin-kernels.h"

#include <cuda_runtime.h>
#include <math.h>

namespace {

struct StainParams {
  float od[256];     /* -log10(max(v/255, 1e-6)) */
  float m[3][3];     /* stain_from_rgb */
};

/* The OD table and matrix, built on the host so GPU and CPU share one formula. */
StainParams make_params(const double stain_from_rgb[3][3]) {
  StainParams p;
  for (int v = 0; v < 256; v++)
    p.od[v] = (float) -log10(fmax(v / 255.0, 1e-6));
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++)
      p.m[i][j] = (float) stain_from_rgb[i][j];
  return p;
}

__device__ inline void deconvolve(const StainParams &p, const uint8_t *px, float c[3]) {
  float r = p.od[px[0]], g = p.od[px[1]], b = p.od[px[2]];
  for (int j = 0; j < 3; j++)
    c[j] = fmaxf(r * p.m[0][j] + g * p.m[1][j] + b * p.m[2][j], 0.0f);
}

__global__ void deconvolve_kernel(const uint8_t *rgb, size_t n, StainParams p, float *out) {
  size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n)
    return;
  float c[3];
  deconvolve(p, rgb + 3 * i, c);
  out[3 * i] = c[0];
  out[3 * i + 1] = c[1];
  out[3 * i + 2] = c[2];
}

constexpr int MEAN_THREADS = 256;

/* One block per tile: each thread sums a strided share of the pixels in
 * double, then a shared-memory tree reduction. */
__global__ void tile_means_kernel(const uint8_t *rgb, int px_per_tile, StainParams p,
                                  float *means) {
  __shared__ double sum[3][MEAN_THREADS];
  const uint8_t *tile = rgb + (size_t) blockIdx.x * px_per_tile * 3;
  double s[3] = {0, 0, 0};
  for (int i = threadIdx.x; i < px_per_tile; i += blockDim.x) {
    float c[3];
    deconvolve(p, tile + 3 * (size_t) i, c);
    s[0] += c[0], s[1] += c[1], s[2] += c[2];
  }
  for (int j = 0; j < 3; j++)
    sum[j][threadIdx.x] = s[j];
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride)
      for (int j = 0; j < 3; j++)
        sum[j][threadIdx.x] += sum[j][threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x < 3)
    means[blockIdx.x * 3 + threadIdx.x] = (float) (sum[threadIdx.x][0] / px_per_tile);
}

}  // namespace

extern "C" int eosin_cuda_stain_deconvolve(const uint8_t *d_rgb, size_t n_pixels,
                                           const double stain_from_rgb[3][3], float *d_out,
                                           void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_rgb || !d_out || !stain_from_rgb || n_pixels == 0)
    return cudaErrorInvalidValue;
  StainParams p = make_params(stain_from_rgb);
  unsigned blocks = (unsigned) ((n_pixels + 255) / 256);
  deconvolve_kernel<<<blocks, 256, 0, (cudaStream_t) stream>>>(d_rgb, n_pixels, p, d_out);
  return cudaGetLastError();
}

extern "C" int eosin_cuda_stain_tile_means(const uint8_t *d_rgb, int n_tiles, int tile_size,
                                           const double stain_from_rgb[3][3], float *d_means,
                                           void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_rgb || !d_means || !stain_from_rgb || n_tiles <= 0 || tile_size <= 0)
    return cudaErrorInvalidValue;
  StainParams p = make_params(stain_from_rgb);
  tile_means_kernel<<<n_tiles, MEAN_THREADS, 0, (cudaStream_t) stream>>>(
      d_rgb, tile_size * tile_size, p, d_means);
  return cudaGetLastError();
}
