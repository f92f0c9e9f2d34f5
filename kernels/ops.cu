/*
 * ops.cu — the CUDA inference backend's own kernels: everything cuDNN and
 * cuBLAS do not cover (elementwise ops with fused activations, broadcasting
 * Add/Mul, Concat, Pad/crop, pooling geometry cuDNN cannot express, Resize,
 * float <-> half). Each kernel is templated on the activation type (float
 * or __half), computes in float (double where src/backend-ref.c does, so
 * the two round alike), and walks its elements with size_t grid-stride
 * loops, so any tensor size works with a bounded grid.
 */
#include "eosin-kernels.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>

namespace {

constexpr unsigned kThreads = 256;
/* Grid-stride loops need no more blocks than this to fill any GPU. */
constexpr size_t kMaxBlocks = 65535u * 8u;

unsigned blocks_for(size_t n) {
  size_t b = (n + kThreads - 1) / kThreads;
  return (unsigned) (b < kMaxBlocks ? (b > 0 ? b : 1) : kMaxBlocks);
}

#define GRID_STRIDE(i, n)                                                          \
  for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < (size_t) (n); \
       i += (size_t) gridDim.x * blockDim.x)

__device__ __forceinline__ float ld(const float *p, size_t i) { return p[i]; }
__device__ __forceinline__ float ld(const __half *p, size_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void st(float *p, size_t i, float v) { p[i] = v; }
/* round to nearest even, as cuDNN and cuBLAS store half results */
__device__ __forceinline__ void st(__half *p, size_t i, float v) { p[i] = __float2half_rn(v); }

/* The reference's activations (src/backend-ref.c unary()), same order of
 * operations: fminf/fmaxf return the other operand for a NaN, like C. */
__device__ __forceinline__ float activate(float v, int act, float p0, float p1) {
  switch (act) {
  case EOSIN_ACT_RELU: return v > 0 ? v : 0;
  case EOSIN_ACT_CLIP: return fminf(fmaxf(v, p0), p1);
  case EOSIN_ACT_SIGMOID: return (float) (1 / (1 + exp(-(double) v)));
  case EOSIN_ACT_HARD_SIGMOID: return fmaxf(0.0f, fminf(1.0f, p0 * v + p1));
  case EOSIN_ACT_HARD_SWISH: return v * fmaxf(0.0f, fminf(1.0f, v / 6 + 0.5f));
  default: return v;
  }
}

/* No __restrict__: y may be x (a convolution's bias applied in place). */
template <typename T>
__global__ void affine_kernel(const T *x, T *y, size_t n, size_t inner, size_t channels,
                              const float *sub, const float *mul, const float *add, int act,
                              float p0, float p1) {
  GRID_STRIDE(i, n) {
    float v = ld(x, i);
    if (sub || mul || add) {
      size_t c = (i / inner) % channels;
      if (sub)
        v -= sub[c];
      if (mul)
        v *= mul[c];
      if (add)
        v += add[c];
    }
    st(y, i, activate(v, act, p0, p1));
  }
}

constexpr int kMaxDims = 6;

/* Per output dimension: its size and each operand's stride (0 where the
 * operand repeats along it). */
struct Bcast {
  int ndim;
  long long dims[kMaxDims], sa[kMaxDims], sb[kMaxDims];
};

template <typename T>
__global__ void binary_kernel(const T *a, const T *b, T *y, size_t n, Bcast g, int mul) {
  GRID_STRIDE(i, n) {
    size_t r = i, ia = 0, ib = 0;
    for (int d = g.ndim - 1; d >= 0; d--) {
      size_t p = r % (size_t) g.dims[d];
      r /= (size_t) g.dims[d];
      ia += p * (size_t) g.sa[d];
      ib += p * (size_t) g.sb[d];
    }
    float va = ld(a, ia), vb = ld(b, ib);
    st(y, i, mul ? va * vb : va + vb);
  }
}

template <typename T>
__global__ void binary_same_kernel(const T *a, const T *b, T *y, size_t n, int mul) {
  GRID_STRIDE(i, n) {
    float va = ld(a, i), vb = ld(b, i);
    st(y, i, mul ? va * vb : va + vb);
  }
}

/* Raw element copies: W is a same-sized integer type (bits, no rounding). */
template <typename W>
__global__ void copy_rows_kernel(const W *src, W *dst, size_t outer, size_t len_src,
                                 size_t len_dst, size_t offset) {
  GRID_STRIDE(i, outer * len_src) {
    size_t o = i / len_src, j = i % len_src;
    dst[o * len_dst + offset + j] = src[i];
  }
}

template <typename W>
__global__ void pad2d_kernel(const W *x, W *y, size_t planes, long long h, long long w,
                             long long oh, long long ow, long long top, long long left) {
  GRID_STRIDE(i, planes * (size_t) oh * (size_t) ow) {
    long long ox = (long long) (i % (size_t) ow), oy = (long long) ((i / (size_t) ow) % oh);
    size_t p = i / ((size_t) ow * (size_t) oh);
    long long iy = oy - top, ix = ox - left;
    y[i] = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(p * (size_t) h + iy) * (size_t) w + ix]
                                                  : W(0); /* 0 bits: +0.0 in float and half */
  }
}

/* The reference's pool(): double accumulation, positions past the padding
 * skipped, the divisor as count_include_pad says. */
template <typename T>
__global__ void pool_kernel(const T *x, T *y, EosinCudaPool q) {
  GRID_STRIDE(i, (size_t) q.planes * q.oh * q.ow) {
    long long ox = (long long) (i % (size_t) q.ow), oy = (long long) ((i / (size_t) q.ow) % q.oh);
    size_t p = i / ((size_t) q.ow * (size_t) q.oh);
    double acc = q.is_max ? -INFINITY : 0;
    long long count = 0, padded = 0;
    for (long long ky = 0; ky < q.kernel[0]; ky++)
      for (long long kx = 0; kx < q.kernel[1]; kx++) {
        long long iy = oy * q.strides[0] - q.pads[0] + ky * q.dilations[0];
        long long ix = ox * q.strides[1] - q.pads[1] + kx * q.dilations[1];
        if (iy < -q.pads[0] || iy >= q.h + q.pads[2] || ix < -q.pads[1] || ix >= q.w + q.pads[3])
          continue;
        padded++;
        if (iy < 0 || iy >= q.h || ix < 0 || ix >= q.w)
          continue;
        double v = ld(x, (p * (size_t) q.h + iy) * (size_t) q.w + ix);
        acc = q.is_max ? fmax(acc, v) : acc + v;
        count++;
      }
    long long div = q.count_include_pad ? padded : count;
    st(y, i, (float) (q.is_max ? acc : acc / (double) (div > 1 ? div : 1)));
  }
}

/* The reference's resize_coord() and nearest(): by the model's @scale and
 * in float, as ONNX Runtime computes them, so nearest picks the same pixel
 * on a rounding tie. __fdiv_rn/__fmul_rn keep the divisions IEEE (no
 * fast-math contraction) so the coordinate is the reference's bit for bit. */
__device__ float resize_coord(int mode, long long o, long long in, long long out, float scale) {
  if (mode == EOSIN_RESIZE_ALIGN_CORNERS)
    return out > 1 ? __fdiv_rn(__fmul_rn((float) o, (float) (in - 1)), (float) (out - 1)) : 0.f;
  if (mode == EOSIN_RESIZE_ASYMMETRIC)
    return __fdiv_rn((float) o, scale);
  if (mode == EOSIN_RESIZE_PYTORCH_HALF_PIXEL && out == 1)
    return 0.f;
  return __fsub_rn(__fdiv_rn(__fadd_rn((float) o, 0.5f), scale), 0.5f);
}

__device__ long long nearest_index(int mode, float v, long long in) {
  float r;
  if (mode == EOSIN_NEAREST_FLOOR)
    r = floorf(v);
  else if (mode == EOSIN_NEAREST_CEIL)
    r = ceilf(v);
  else if (mode == EOSIN_NEAREST_ROUND_PREFER_CEIL)
    r = floorf(__fadd_rn(v, 0.5f));
  else
    r = ceilf(__fsub_rn(v, 0.5f));
  long long k = (long long) r;
  return k < 0 ? 0 : k > in - 1 ? in - 1 : k;
}

template <typename T>
__global__ void resize_kernel(const T *x, T *y, size_t planes, long long h, long long w,
                              long long oh, long long ow, float sh, float sw, int linear,
                              int coord, int nearest) {
  GRID_STRIDE(i, planes * (size_t) oh * (size_t) ow) {
    long long ox = (long long) (i % (size_t) ow), oy = (long long) ((i / (size_t) ow) % oh);
    size_t p = i / ((size_t) ow * (size_t) oh);
    const T *P = x + p * (size_t) h * (size_t) w;
    double fy = resize_coord(coord, oy, h, oh, sh), fx = resize_coord(coord, ox, w, ow, sw);
    float v;
    if (!linear) {
      v = ld(P, (size_t) nearest_index(nearest, (float) fy, h) * w +
                    nearest_index(nearest, (float) fx, w));
    } else {
      fy = fmin(fmax(fy, 0.0), (double) (h - 1));
      fx = fmin(fmax(fx, 0.0), (double) (w - 1));
      long long y0 = (long long) floor(fy), x0 = (long long) floor(fx);
      long long y1 = y0 + 1 < h - 1 ? y0 + 1 : h - 1, x1 = x0 + 1 < w - 1 ? x0 + 1 : w - 1;
      double dy = fy - y0, dx = fx - x0;
      v = (float) ((1 - dy) * ((1 - dx) * ld(P, y0 * w + x0) + dx * ld(P, y0 * w + x1)) +
                   dy * ((1 - dx) * ld(P, y1 * w + x0) + dx * ld(P, y1 * w + x1)));
    }
    st(y, i, v);
  }
}

template <typename S, typename D>
__global__ void convert_kernel(const S *src, D *dst, size_t n) {
  GRID_STRIDE(i, n) st(dst, i, ld(src, i));
}

template <typename T>
__global__ void fill_rows_kernel(T *y, size_t rows, size_t cols, const float *bias,
                                 size_t n_bias) {
  GRID_STRIDE(i, rows * cols) st(y, i, bias[n_bias == 1 ? 0 : i % cols]);
}

bool valid_type(int type) {
  return type == EOSIN_CUDA_F32 || type == EOSIN_CUDA_F16;
}

}  // namespace

extern "C" int eosin_cuda_affine(const void *d_x, void *d_y, size_t n, size_t inner,
                                 size_t channels, const float *d_sub, const float *d_mul,
                                 const float *d_add, int act, float p0, float p1, int type,
                                 void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_x || !d_y || !inner || !channels || !valid_type(type))
    return cudaErrorInvalidValue;
  if (!n)
    return 0;
  cudaStream_t s = (cudaStream_t) stream;
  if (type == EOSIN_CUDA_F16)
    affine_kernel<<<blocks_for(n), kThreads, 0, s>>>((const __half *) d_x, (__half *) d_y, n,
                                                    inner, channels, d_sub, d_mul, d_add, act,
                                                    p0, p1);
  else
    affine_kernel<<<blocks_for(n), kThreads, 0, s>>>((const float *) d_x, (float *) d_y, n, inner,
                                                    channels, d_sub, d_mul, d_add, act, p0, p1);
  return cudaGetLastError();
}

extern "C" int eosin_cuda_binary(const void *d_a, const int64_t *adims, int andim,
                                 const void *d_b, const int64_t *bdims, int bndim, void *d_y,
                                 const int64_t *ydims, int yndim, int mul, int type,
                                 void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_a || !d_b || !d_y || !valid_type(type) || yndim < 0 || yndim > kMaxDims || andim < 0 ||
      bndim < 0 || andim > yndim || bndim > yndim)
    return cudaErrorInvalidValue;
  Bcast g = {};
  g.ndim = yndim;
  size_t n = 1, na = 1, nb = 1;
  for (int d = 0; d < yndim; d++) {
    if (ydims[d] < 1)
      return cudaErrorInvalidValue;
    g.dims[d] = ydims[d];
    n *= (size_t) ydims[d];
  }
  /* strides from the innermost dimension out; right-aligned shapes */
  long long stride_a = 1, stride_b = 1;
  for (int d = yndim - 1; d >= 0; d--) {
    int ia = d - (yndim - andim), ib = d - (yndim - bndim);
    long long da = ia >= 0 ? adims[ia] : 1, db = ib >= 0 ? bdims[ib] : 1;
    if ((da != 1 && da != ydims[d]) || (db != 1 && db != ydims[d]))
      return cudaErrorInvalidValue;
    g.sa[d] = da == 1 ? 0 : stride_a;
    g.sb[d] = db == 1 ? 0 : stride_b;
    stride_a *= da;
    stride_b *= db;
    na *= (size_t) da;
    nb *= (size_t) db;
  }
  cudaStream_t s = (cudaStream_t) stream;
  bool same = na == n && nb == n;
  if (type == EOSIN_CUDA_F16) {
    const __half *a = (const __half *) d_a, *b = (const __half *) d_b;
    if (same)
      binary_same_kernel<<<blocks_for(n), kThreads, 0, s>>>(a, b, (__half *) d_y, n, mul);
    else
      binary_kernel<<<blocks_for(n), kThreads, 0, s>>>(a, b, (__half *) d_y, n, g, mul);
  } else {
    const float *a = (const float *) d_a, *b = (const float *) d_b;
    if (same)
      binary_same_kernel<<<blocks_for(n), kThreads, 0, s>>>(a, b, (float *) d_y, n, mul);
    else
      binary_kernel<<<blocks_for(n), kThreads, 0, s>>>(a, b, (float *) d_y, n, g, mul);
  }
  return cudaGetLastError();
}

extern "C" int eosin_cuda_copy_rows(const void *d_src, void *d_dst, size_t outer, size_t len_src,
                                    size_t len_dst, size_t offset, int type, void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_src || !d_dst || !valid_type(type) || offset > len_dst || len_src > len_dst - offset)
    return cudaErrorInvalidValue;
  if (!outer || !len_src)
    return 0;
  cudaStream_t s = (cudaStream_t) stream;
  unsigned blocks = blocks_for(outer * len_src);
  if (type == EOSIN_CUDA_F16)
    copy_rows_kernel<<<blocks, kThreads, 0, s>>>((const uint16_t *) d_src, (uint16_t *) d_dst,
                                                 outer, len_src, len_dst, offset);
  else
    copy_rows_kernel<<<blocks, kThreads, 0, s>>>((const uint32_t *) d_src, (uint32_t *) d_dst,
                                                 outer, len_src, len_dst, offset);
  return cudaGetLastError();
}

extern "C" int eosin_cuda_pad2d(const void *d_x, void *d_y, size_t planes, int64_t h, int64_t w,
                                int64_t oh, int64_t ow, int64_t top, int64_t left, int type,
                                void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_x || !d_y || !valid_type(type) || h < 1 || w < 1 || oh < 1 || ow < 1)
    return cudaErrorInvalidValue;
  if (!planes)
    return 0;
  cudaStream_t s = (cudaStream_t) stream;
  unsigned blocks = blocks_for(planes * (size_t) oh * (size_t) ow);
  if (type == EOSIN_CUDA_F16)
    pad2d_kernel<<<blocks, kThreads, 0, s>>>((const uint16_t *) d_x, (uint16_t *) d_y, planes, h,
                                             w, oh, ow, top, left);
  else
    pad2d_kernel<<<blocks, kThreads, 0, s>>>((const uint32_t *) d_x, (uint32_t *) d_y, planes, h,
                                             w, oh, ow, top, left);
  return cudaGetLastError();
}

extern "C" int eosin_cuda_pool2d(const void *d_x, void *d_y, const EosinCudaPool *p, int type,
                                 void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_x || !d_y || !p || !valid_type(type) || p->h < 1 || p->w < 1 || p->oh < 1 ||
      p->ow < 1 || p->planes < 0)
    return cudaErrorInvalidValue;
  for (int k = 0; k < 2; k++)
    if (p->kernel[k] < 1 || p->strides[k] < 1 || p->dilations[k] < 1)
      return cudaErrorInvalidValue;
  if (!p->planes)
    return 0;
  cudaStream_t s = (cudaStream_t) stream;
  unsigned blocks = blocks_for((size_t) p->planes * p->oh * p->ow);
  if (type == EOSIN_CUDA_F16)
    pool_kernel<<<blocks, kThreads, 0, s>>>((const __half *) d_x, (__half *) d_y, *p);
  else
    pool_kernel<<<blocks, kThreads, 0, s>>>((const float *) d_x, (float *) d_y, *p);
  return cudaGetLastError();
}

extern "C" int eosin_cuda_resize(const void *d_x, void *d_y, size_t planes, int64_t h, int64_t w,
                                 int64_t oh, int64_t ow, float scale_h, float scale_w,
                                 int linear, int coord, int nearest, int type, void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_x || !d_y || !valid_type(type) || h < 1 || w < 1 || oh < 1 || ow < 1 ||
      !(scale_h > 0) || !(scale_w > 0))
    return cudaErrorInvalidValue;
  if (!planes)
    return 0;
  cudaStream_t s = (cudaStream_t) stream;
  unsigned blocks = blocks_for(planes * (size_t) oh * (size_t) ow);
  if (type == EOSIN_CUDA_F16)
    resize_kernel<<<blocks, kThreads, 0, s>>>((const __half *) d_x, (__half *) d_y, planes, h, w,
                                              oh, ow, scale_h, scale_w, linear, coord, nearest);
  else
    resize_kernel<<<blocks, kThreads, 0, s>>>((const float *) d_x, (float *) d_y, planes, h, w,
                                              oh, ow, scale_h, scale_w, linear, coord, nearest);
  return cudaGetLastError();
}

extern "C" int eosin_cuda_convert(const void *d_src, int src_type, void *d_dst, int dst_type,
                                  size_t n, void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_src || !d_dst || !valid_type(src_type) || !valid_type(dst_type))
    return cudaErrorInvalidValue;
  if (!n)
    return 0;
  cudaStream_t s = (cudaStream_t) stream;
  unsigned blocks = blocks_for(n);
  if (src_type == EOSIN_CUDA_F32 && dst_type == EOSIN_CUDA_F16)
    convert_kernel<<<blocks, kThreads, 0, s>>>((const float *) d_src, (__half *) d_dst, n);
  else if (src_type == EOSIN_CUDA_F16 && dst_type == EOSIN_CUDA_F32)
    convert_kernel<<<blocks, kThreads, 0, s>>>((const __half *) d_src, (float *) d_dst, n);
  else if (src_type == EOSIN_CUDA_F32)
    convert_kernel<<<blocks, kThreads, 0, s>>>((const float *) d_src, (float *) d_dst, n);
  else
    convert_kernel<<<blocks, kThreads, 0, s>>>((const __half *) d_src, (__half *) d_dst, n);
  return cudaGetLastError();
}

extern "C" int eosin_cuda_fill_rows(void *d_y, size_t rows, size_t cols, const float *d_bias,
                                    size_t n_bias, int type, void *stream) {
  (void) cudaGetLastError(); /* report this launch's error, not a stale one */
  if (!d_y || !d_bias || !valid_type(type) || !cols || (n_bias != 1 && n_bias != cols))
    return cudaErrorInvalidValue;
  if (!rows)
    return 0;
  cudaStream_t s = (cudaStream_t) stream;
  unsigned blocks = blocks_for(rows * cols);
  if (type == EOSIN_CUDA_F16)
    fill_rows_kernel<<<blocks, kThreads, 0, s>>>((__half *) d_y, rows, cols, d_bias, n_bias);
  else
    fill_rows_kernel<<<blocks, kThreads, 0, s>>>((float *) d_y, rows, cols, d_bias, n_bias);
  return cudaGetLastError();
}
