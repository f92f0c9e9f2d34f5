/*
 * test-kernels.c — the kernels of kernels/ (the .cu files) that no inference op runs
 * (colour deconvolution, per-tile stain means, the overlay's colour map),
 * each against its CPU twin on random data: _eosin_stain_deconvolve, the
 * mean of that over a tile, _eosin_grid_colorize. The inference kernels of
 * kernels/ops.cu and preprocess.cu are checked op by op (test-ops.c) and
 * whole-model (test-backend.c). Without a GPU these skip, naming the
 * reason; with EOSIN_REQUIRE_CUDA=1 (scripts/device-check) they fail.
 * Only this test file sees CUDA's runtime header (the Makefile adds it).
 */
#include "test-cuda.h"
#include "cells/eosin-cells.h"
#include "eosin-private.h"

#ifdef EOSIN_HAVE_CUDA
#include "eosin-kernels.h"

#include <cuda_runtime_api.h>
#include <math.h>

/* Skips (or with EOSIN_REQUIRE_CUDA=1 fails) unless a GPU is usable. */
static void require_gpu(void) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaSuccess && n > 0 && cudaSetDevice(0) == cudaSuccess)
    return;
  const char *why = e != cudaSuccess ? cudaGetErrorString(e) : "no device";
  if (cuda_required())
    cr_assert_fail("EOSIN_REQUIRE_CUDA=1, but no GPU is usable: %s", why);
  cr_skip_test("no GPU here (EOSIN_REQUIRE_CUDA=1 makes this a failure): %s", why);
}

/* Device memory holding @n bytes of @host (NULL: uninitialised, filled
 * with 0xff so an unwritten output shows). Caller frees with cudaFree. */
static void *to_device(const void *host, size_t n) {
  void *d = NULL;
  cr_assert_eq(cudaMalloc(&d, n), cudaSuccess, "cudaMalloc %zu", n);
  if (host)
    cr_assert_eq(cudaMemcpy(d, host, n, cudaMemcpyHostToDevice), cudaSuccess);
  else
    cr_assert_eq(cudaMemset(d, 0xff, n), cudaSuccess);
  return d;
}

static void from_device(void *host, const void *d, size_t n) {
  cr_assert_eq(cudaDeviceSynchronize(), cudaSuccess, "%s", cudaGetErrorString(cudaGetLastError()));
  cr_assert_eq(cudaMemcpy(host, d, n, cudaMemcpyDeviceToHost), cudaSuccess);
}

/* The H&E-DAB matrix of scikit-image (rgb_from_hed), inverted as the
 * stain analyzer does. */
static void hed_matrix(double m[3][3]) {
  const double rgb_from_hed[3][3] = {
      {0.65, 0.70, 0.29}, {0.07, 0.99, 0.11}, {0.27, 0.57, 0.78}};
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_stain_matrix_invert(rgb_from_hed, m, &err), "%s", err ? err->message : "");
}

static uint8_t *random_rgb(size_t n_pixels, guint32 seed) {
  g_autoptr(GRand) r = g_rand_new_with_seed(seed);
  uint8_t *rgb = g_malloc(n_pixels * 3);
  for (size_t i = 0; i < n_pixels * 3; i++)
    rgb[i] = (uint8_t) g_rand_int_range(r, 0, 256);
  return rgb;
}

Test(kernels, stain_deconvolve_equals_cpu) {
  require_gpu();
  double m[3][3];
  hed_matrix(m);
  const size_t n = 1000003; /* not a multiple of the block */
  g_autofree uint8_t *rgb = random_rgb(n, 11);
  g_autofree float *want = g_new(float, n * 3), *got = g_new(float, n * 3);
  _eosin_stain_deconvolve(rgb, n, m, want);
  void *d_rgb = to_device(rgb, n * 3), *d_out = to_device(NULL, n * 3 * sizeof(float));
  cr_assert_eq(eosin_cuda_stain_deconvolve(d_rgb, n, m, d_out, NULL), 0);
  from_device(got, d_out, n * 3 * sizeof(float));
  cudaFree(d_rgb), cudaFree(d_out);
  double worst = 0;
  for (size_t i = 0; i < n * 3; i++) {
    cr_assert(isfinite(got[i]), "value %zu not written or not finite", i);
    worst = fmax(worst, fabs(got[i] - want[i]) / fmax(1.0, fabs(want[i])));
  }
  cr_expect_leq(worst, 1e-5, "max relative difference %g", worst);
}

Test(kernels, stain_tile_means_equal_cpu) {
  require_gpu();
  double m[3][3];
  hed_matrix(m);
  const int tiles = 37, size = 96;
  const size_t px = (size_t) size * size;
  g_autofree uint8_t *rgb = random_rgb(px * tiles, 12);
  g_autofree float *c = g_new(float, px * 3);
  float want[37 * 3], got[37 * 3];
  for (int t = 0; t < tiles; t++) {
    _eosin_stain_deconvolve(rgb + t * px * 3, px, m, c);
    double s[3] = {0, 0, 0};
    for (size_t i = 0; i < px; i++)
      for (int j = 0; j < 3; j++)
        s[j] += c[i * 3 + j];
    for (int j = 0; j < 3; j++)
      want[t * 3 + j] = (float) (s[j] / px);
  }
  void *d_rgb = to_device(rgb, px * tiles * 3), *d_means = to_device(NULL, sizeof got);
  cr_assert_eq(eosin_cuda_stain_tile_means(d_rgb, tiles, size, m, d_means, NULL), 0);
  from_device(got, d_means, sizeof got);
  cudaFree(d_rgb), cudaFree(d_means);
  for (int i = 0; i < tiles * 3; i++)
    cr_expect_float_eq(got[i], want[i], 1e-5 * fmax(1.0, fabs(want[i])), "mean %d: %g vs %g", i,
                       got[i], want[i]);
}

Test(kernels, colorize_equals_cpu) {
  require_gpu();
  EosinColormap cm;
  g_autoptr(GError) err = NULL;
  cr_assert(_eosin_colormap_get("viridis", &cm, &err), "%s", err ? err->message : "");
  const int w = 301, h = 203, channels = 3, channel = 1;
  g_autoptr(GRand) r = g_rand_new_with_seed(13);
  g_autofree float *values = g_new(float, (size_t) w * h * channels);
  for (int i = 0; i < w * h * channels; i++)
    values[i] = g_rand_int_range(r, 0, 10) == 0 ? NAN : (float) g_rand_double_range(r, -0.2, 1.2);
  EosinGrid g = {.width = w, .height = h, .n_channels = channels, .values = values};
  g_autofree uint8_t *want = _eosin_grid_colorize(&g, channel, &cm, 0.0, 1.0, 0.6);
  size_t bytes = (size_t) w * h * 4;
  g_autofree uint8_t *got = g_malloc(bytes);
  void *d_v = to_device(values, (size_t) w * h * channels * sizeof(float)),
       *d_rgba = to_device(NULL, bytes);
  cr_assert_eq(eosin_cuda_colorize(d_v, w * h, channels, channel,
                                   (const uint8_t(*)[3]) cm.lut, 0.0, 1.0, 0.6, d_rgba, NULL),
               0);
  from_device(got, d_rgba, bytes);
  cudaFree(d_v), cudaFree(d_rgba);
  size_t differ = 0, first = 0;
  for (size_t i = 0; i < bytes; i++)
    if (got[i] != want[i] && !differ++)
      first = i;
  cr_expect_eq(differ, 0, "%zu bytes differ, the first at cell %zu (%d vs %d)", differ,
               first / 4, got[first], want[first]);
}
#else
Test(kernels, built_without_cuda) {
  cr_skip_test("built without CUDA (CUDA=0): no kernels to check");
}
#endif
