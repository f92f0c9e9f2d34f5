/*
 * eosin-kernels.h — host-callable launchers of Eosin's CUDA kernels (the
 * inference backend's: kernels/preprocess.cu, kernels/ops.cu). Plain C, no
 * CUDA headers, so C code (src/nn/backend-cuda*.c) can include it. Every
 * pointer named d_* is device memory; `stream` is a cudaStream_t passed as
 * void *. Each returns 0 on success or the cudaError_t of what failed (its
 * own: a stale error an earlier runtime call left is cleared first; a
 * sticky fault cannot be cleared and is returned); none aborts, so the
 * caller can fall back to the CPU.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Tiles of size^2 uint8 RGB (HWC) to float NCHW, (v/255 - mean) / std per
 * channel, channels swapped to BGR when @bgr: a network's input. */
int eosin_cuda_preprocess(const uint8_t *d_rgb, int n, int size, const float mean[3],
                          const float std[3], int bgr, float *d_nchw, void *stream);

/* ---- the CUDA inference backend's own kernels (kernels/ops.cu) ----
 * Activations are float or half (EosinCudaType); the arithmetic is float
 * (double where the reference backend, src/backend-ref.c, uses double, so
 * rounding decisions agree) and every kernel mirrors the reference op. */

typedef enum { EOSIN_CUDA_F32 = 0, EOSIN_CUDA_F16 = 1 } EosinCudaType;

/* Activations fused into a per-channel affine pass (reference semantics). */
typedef enum {
  EOSIN_ACT_NONE = 0,
  EOSIN_ACT_RELU,         /* v > 0 ? v : 0 */
  EOSIN_ACT_CLIP,         /* min(max(v, p0), p1) */
  EOSIN_ACT_SIGMOID,      /* 1 / (1 + exp(-v)), in double */
  EOSIN_ACT_HARD_SIGMOID, /* max(0, min(1, p0 v + p1)) */
  EOSIN_ACT_HARD_SWISH,   /* v max(0, min(1, v / 6 + 0.5)) */
} EosinCudaAct;

/* y = act((x - sub[c]) * mul[c] + add[c]) over @n values, c = (i / inner)
 * % channels; each of d_sub, d_mul, d_add may be NULL (0, 1, 0), and d_y
 * may be d_x. Convolution bias + activation, BatchNormalization, and the
 * plain unary ops (all three NULL). */
int eosin_cuda_affine(const void *d_x, void *d_y, size_t n, size_t inner, size_t channels,
                      const float *d_sub, const float *d_mul, const float *d_add, int act,
                      float p0, float p1, int type, void *stream);

/* y = a + b or a * b (@mul) with ONNX (numpy) broadcasting: shapes are
 * right-aligned and a dimension of 1 repeats; @ydims is the result's. */
int eosin_cuda_binary(const void *d_a, const int64_t *adims, int andim, const void *d_b,
                      const int64_t *bdims, int bndim, void *d_y, const int64_t *ydims,
                      int yndim, int mul, int type, void *stream);

/* Copies @outer rows of @len_src elements from d_src into rows of
 * @len_dst elements of d_dst at element @offset (Concat); raw bits. */
int eosin_cuda_copy_rows(const void *d_src, void *d_dst, size_t outer, size_t len_src,
                         size_t len_dst, size_t offset, int type, void *stream);

/* y[p][oy][ox] = x[p][oy - top][ox - left] inside x, else 0, for @planes
 * planes of h x w into oh x ow: zero padding, or a crop when top/left are
 * negative. */
int eosin_cuda_pad2d(const void *d_x, void *d_y, size_t planes, int64_t h, int64_t w,
                     int64_t oh, int64_t ow, int64_t top, int64_t left, int type, void *stream);

/* A pooling window as the reference runs it: dilations, asymmetric pads,
 * ceil_mode's windows past the end padding (those positions are skipped,
 * and not counted even with count_include_pad). */
typedef struct {
  int64_t planes, h, w, oh, ow;
  int64_t kernel[2], strides[2], dilations[2];
  int64_t pads[4]; /* top, left, bottom, right */
  int is_max, count_include_pad;
} EosinCudaPool;

int eosin_cuda_pool2d(const void *d_x, void *d_y, const EosinCudaPool *p, int type, void *stream);

/* Resize coordinate_transformation_mode and nearest_mode, as the reference
 * maps their names (anything else is half_pixel / round_prefer_floor). */
typedef enum {
  EOSIN_RESIZE_HALF_PIXEL = 0,
  EOSIN_RESIZE_ALIGN_CORNERS,
  EOSIN_RESIZE_ASYMMETRIC,
  EOSIN_RESIZE_PYTORCH_HALF_PIXEL,
} EosinCudaResizeCoord;
typedef enum {
  EOSIN_NEAREST_ROUND_PREFER_FLOOR = 0,
  EOSIN_NEAREST_ROUND_PREFER_CEIL,
  EOSIN_NEAREST_FLOOR,
  EOSIN_NEAREST_CEIL,
} EosinCudaNearest;

/* Resize of @planes h x w planes to oh x ow by the model's scales
 * (@scale_h, @scale_w), nearest or bilinear (@linear). */
int eosin_cuda_resize(const void *d_x, void *d_y, size_t planes, int64_t h, int64_t w,
                      int64_t oh, int64_t ow, float scale_h, float scale_w, int linear,
                      int coord, int nearest, int type, void *stream);

/* d_dst[i] = d_src[i] for @n values, converting between float and half. */
int eosin_cuda_convert(const void *d_src, int src_type, void *d_dst, int dst_type, size_t n,
                       void *stream);

/* Fills @rows x @cols row-major with d_bias[j] (or d_bias[0] when @n_bias
 * is 1): a Gemm's bias, before the GEMM accumulates onto it. */
int eosin_cuda_fill_rows(void *d_y, size_t rows, size_t cols, const float *d_bias, size_t n_bias,
                         int type, void *stream);

#ifdef __cplusplus
}
#endif
