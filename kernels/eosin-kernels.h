/*
 * eosin-kernels.h — host-callable launchers of Eosin's CUDA kernels. Plain C,
 * no CUDA headers, so C code (the future CUDA backend) can include it. Every
 * pointer named d_* is device memory; `stream` is a cudaStream_t passed as
 * void *. Each returns 0 on success or the cudaError_t of what failed; none
 * aborts, so the caller can fall back to the CPU.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Ruifrok–Johnston deconvolution of @n_pixels RGB pixels, exactly as
 * eosin_stain_deconvolve (src/analyzer-stain.c): OD = -log10(max(v/255,
 * 1e-6)), c_j = sum_i OD_i M[i][j], clamped at 0; 3 floats per pixel. */
int eosin_cuda_stain_deconvolve(const uint8_t *d_rgb, size_t n_pixels,
                                const double stain_from_rgb[3][3], float *d_out, void *stream);

/* The stain analyzer's per-tile means: @n_tiles tiles of tile_size^2 RGB
 * pixels, 3 means per tile in @d_means, accumulated in double like the CPU. */
int eosin_cuda_stain_tile_means(const uint8_t *d_rgb, int n_tiles, int tile_size,
                                const double stain_from_rgb[3][3], float *d_means, void *stream);

/* _eosin_grid_colorize on the GPU: NaN cells transparent, others
 * lut[lround(255 clamp((v - vmin) / (vmax - vmin)))] with alpha. */
int eosin_cuda_colorize(const float *d_values, int n_cells, int n_channels, int channel,
                        const uint8_t lut[256][3], double vmin, double vmax, double alpha,
                        uint8_t *d_rgba, void *stream);

/* Tiles of size^2 uint8 RGB (HWC) to float NCHW, (v/255 - mean) / std per
 * channel, channels swapped to BGR when @bgr: a network's input. */
int eosin_cuda_preprocess(const uint8_t *d_rgb, int n, int size, const float mean[3],
                          const float std[3], int bgr, float *d_nchw, void *stream);

#ifdef __cplusplus
}
#endif
