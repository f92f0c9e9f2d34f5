/*
 * backend-cpu-winograd.c — 3x3 stride-1 convolutions as Winograd
 * F(4x4, 3x3) on the CPU backend's nChw8c activations, for the machines
 * oneDNN 2.6 leaves on its direct kernels: its own Winograd exists only for
 * AVX-512, and on AVX2 the 3x3 convolutions are 80 % of a ResNet's time.
 *
 * Each 4x4 block of outputs ("tile") is computed from a 6x6 input patch:
 * V = Bt d B per input channel, then for each of the 36 points of the
 * transformed tile a matrix product over channels, M = V U, then
 * Y = At M A. That is 36 multiplications per tile and channel pair instead
 * of 144, in the part that dominates. The products run on a register-
 * blocked AVX2 kernel over weights packed once at load. Tiles go in chunks
 * whose V and M stay in cache (plan_chunks), on oneDNN's own OpenMP
 * threads (libgomp). Bias, ReLU/Clip and the residual sum are applied as
 * each output tile is written, as oneDNN's post-ops would be.
 *
 * Accuracy: the transforms interpolate at 0, 1, -1, 2, -1/2 and infinity
 * rather than Lavin's 0, +-1, +-2: in fp32 that halves the mean error and
 * quarters the worst (simulated over 64 channels: 2.6e-6 and 6.4e-6 of a
 * unit output, against 4.6e-6 and 2.5e-5; the direct sum is 2e-7). The
 * parity tests hold whole networks to 1e-4 of PyTorch with it on.
 * EOSIN_CPU_WINOGRAD=0 turns it off (backend-cpu.c) for comparisons.
 */
#include "nn/backend-cpu.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
#define AVX2 __attribute__((target("avx2,fma")))
#define MAX_POST 4
#define GEMM_ROWS 6 /* tiles per register block of the product */

struct CpuWino {
  int n, c, k, h, w, oh, ow, pad_t, pad_l;
  int tiles_y, tiles_x, tiles, chunk;
  bool own_chunks; /* each thread runs whole chunks of its own (small weights) */
  int threads;
  size_t v_stride, m_stride; /* floats between two points */
  int n_post;
  dnnl_alg_kind_t post[MAX_POST]; /* relu, clip, or undef: the residual sum */
  float lo[MAX_POST], hi[MAX_POST];
  float *u;    /* transformed weights, packed for gemm_point */
  float *bias; /* [k] */
};

/* How the tiles are shared out. Where the transformed weights are small
 * (up to 128 x 128 channels: 2.4 MB), each thread takes chunks of 24 tiles
 * and runs all three phases on one before the next: its V and M (440 KB at
 * 64 channels) stay in its L2, and the transforms, which are bound by
 * memory, no longer go out to L3 (ResNet-18's layers on 2 cores, 8 images:
 * 9.3 ms instead of 13.3 at 64 channels, 6.9 instead of 9.6 at 128; 12 or
 * 36 tiles were slower). Larger weights would be read once per such chunk,
 * so there all threads share each chunk's phases, on chunks of up to 8 MB
 * of V and M that stay in L3 while the weights (up to 36 MB at 512
 * channels) stream through once per chunk. */
static void plan_chunks(CpuWino *g) {
  g->threads = MAX(1, omp_get_max_threads());
  g->own_chunks = (size_t) 36 * 4 * g->c * g->k <= (size_t) 5 << 19;
  int t = g->own_chunks ? 24 : (int) ((8u << 20) / (36 * 4 * (size_t) (g->c + g->k)));
  t = MAX(GEMM_ROWS, t / GEMM_ROWS * GEMM_ROWS);
  g->chunk = MIN(t, g->tiles);
  /* 64 bytes past a multiple of 4 KB: the 36 points of a tile would
   * otherwise fall in the same cache sets */
  g->v_stride = (size_t) g->chunk * g->c + 16;
  g->m_stride = (size_t) g->chunk * g->k + 16;
}

/* Whether Winograd runs this convolution: a plain 3x3 stride-1 one with at
 * least 64 input and output channels (below that the transforms cost more
 * than they save: at 32 channels it is 0.8x the direct kernel), multiples
 * of 8 (whole nChw8c blocks), post-ops it can apply, on a CPU with AVX2. */
bool _cpu_wino_usable(const EosinAttrs *a, int64_t c, int64_t k, const CpuChain *ch) {
  if (a->kernel[0] != 3 || a->kernel[1] != 3 || a->strides[0] != 1 || a->strides[1] != 1 ||
      a->dilations[0] != 1 || a->dilations[1] != 1 || a->group != 1)
    return false;
  if (c < 64 || k < 64 || c % 8 || k % 8 || ch->n > MAX_POST)
    return false;
  for (int i = 0; i < ch->n; i++) {
    bool ok = ch->alg[i] == dnnl_alg_kind_undef || ch->alg[i] == dnnl_eltwise_clip ||
              (ch->alg[i] == dnnl_eltwise_relu && ch->alpha[i] == 0);
    if (!ok)
      return false;
  }
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Where U[point][c][k] lives: each point's c x k matrix in panels of 16
 * output channels (the last may be 8), each panel c rows of 16 floats, so
 * the product streams it in order and never repacks it. */
static size_t packed_at(const CpuWino *g, int x, int c, int k) {
  int p = k / 16, w = MIN(16, g->k - p * 16);
  return (size_t) x * g->c * g->k + (size_t) p * 16 * g->c + (size_t) c * w + k % 16;
}

/* U = G g Gt for each (input, output) channel pair, in double. */
static void transform_weights(CpuWino *g, const float *w) {
  static const double G[6][3] = {{1, 0, 0},
                                 {-1 / 3., -1 / 3., -1 / 3.},
                                 {1 / 3., -1 / 3., 1 / 3.},
                                 {1 / 15., 2 / 15., 4 / 15.},
                                 {-16 / 15., 8 / 15., -4 / 15.},
                                 {0, 0, 1}};
  for (int k = 0; k < g->k; k++)
    for (int c = 0; c < g->c; c++) {
      const float *f = w + ((size_t) k * g->c + c) * 9;
      double t[6][3];
      for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++)
          t[i][j] = G[i][0] * f[j] + G[i][1] * f[3 + j] + G[i][2] * f[6 + j];
      for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++)
          g->u[packed_at(g, i * 6 + j, c, k)] =
              (float) (t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2]);
    }
}

/* A new Winograd convolution of @x_dims (NCHW, nChw8c in memory) into
 * @y_dims with top/left padding @pad_t/@pad_l (the rest is implied by the
 * output size), weights @w (OIHW, copied and transformed), @bias (k floats
 * or NULL) and the post-ops of @ch; NULL when its buffers cannot be had.
 * Free with _cpu_wino_free. */
CpuWino *_cpu_wino_new(const int64_t *x_dims, const int64_t *y_dims, int pad_t, int pad_l,
                       const float *w, const float *bias, const CpuChain *ch) {
  CpuWino *g = g_new0(CpuWino, 1);
  g->n = x_dims[0], g->c = x_dims[1], g->h = x_dims[2], g->w = x_dims[3];
  g->k = y_dims[1], g->oh = y_dims[2], g->ow = y_dims[3];
  g->pad_t = pad_t, g->pad_l = pad_l;
  g->tiles_y = (g->oh + 3) / 4, g->tiles_x = (g->ow + 3) / 4;
  g->tiles = g->n * g->tiles_y * g->tiles_x;
  plan_chunks(g);
  g->n_post = ch->n;
  for (int i = 0; i < ch->n; i++) {
    g->post[i] = ch->alg[i];
    g->lo[i] = ch->alg[i] == dnnl_eltwise_clip ? ch->alpha[i] : 0;
    g->hi[i] = ch->alg[i] == dnnl_eltwise_clip ? ch->beta[i] : INFINITY;
  }
  if (posix_memalign((void **) &g->u, 64, sizeof(float) * 36 * g->c * g->k) ||
      posix_memalign((void **) &g->bias, 64, sizeof(float) * g->k)) {
    _cpu_wino_free(g);
    return NULL;
  }
  transform_weights(g, w);
  for (int k = 0; k < g->k; k++)
    g->bias[k] = bias ? bias[k] : 0;
  return g;
}

void _cpu_wino_free(CpuWino *g) {
  if (!g)
    return;
  free(g->u);
  free(g->bias);
  g_free(g);
}

/* Bytes of scratch _cpu_wino_run needs: one chunk's V and M, one per
 * thread when threads run their own. */
static size_t chunk_floats(const CpuWino *g) {
  return 36 * (g->v_stride + g->m_stride);
}

size_t _cpu_wino_scratch(const CpuWino *g) {
  return sizeof(float) * chunk_floats(g) * (g->own_chunks ? g->threads : 1) + 64;
}

/* Bt d for one column of 6 (each lane a channel). */
AVX2 static inline void input_1d(v8 d0, v8 d1, v8 d2, v8 d3, v8 d4, v8 d5, v8 *o) {
  o[0] = d0 + 1.5f * (d1 - d3) - 2 * d2 + d4;
  o[1] = d4 - d1 - 2.5f * d2 - 0.5f * d3;
  o[2] = d4 + d1 + 0.5f * d2 - 2.5f * d3;
  o[3] = d4 - d2 + 0.5f * (d3 - d1);
  o[4] = d4 - d2 + 2 * (d1 - d3);
  o[5] = d5 + d1 + 1.5f * (d2 - d4) - 2 * d3;
}

/* At m for one column of 6. */
AVX2 static inline void output_1d(v8 m0, v8 m1, v8 m2, v8 m3, v8 m4, v8 m5, v8 *o) {
  v8 a = m1 + m2, b = m1 - m2;
  o[0] = m0 + a + m3 + m4;
  o[1] = b + 2 * m3 - 0.5f * m4;
  o[2] = a + 4 * m3 + 0.25f * m4;
  o[3] = b + 8 * m3 - 0.125f * m4 + m5;
}

/* V of tile @t (global index) into row @t - @t0 of each point's matrix. */
AVX2 static void input_tile(const CpuWino *g, const float *src, int t, int t0, float *v) {
  int per = g->tiles_y * g->tiles_x, b = t / per, ty = t % per / g->tiles_x,
      tx = t % per % g->tiles_x;
  int y0 = ty * 4 - g->pad_t, x0 = tx * 4 - g->pad_l, cb_n = g->c / 8;
  bool inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= g->h && x0 + 6 <= g->w;
  for (int cb = 0; cb < cb_n; cb++) {
    const float *plane = src + (size_t) (b * cb_n + cb) * g->h * g->w * 8;
    v8 d[6][6], e[6][6], o[6];
    for (int i = 0; i < 6; i++)
      for (int j = 0; j < 6; j++) {
        int y = y0 + i, x = x0 + j;
        if (inside || (y >= 0 && y < g->h && x >= 0 && x < g->w))
          memcpy(&d[i][j], plane + ((size_t) y * g->w + x) * 8, sizeof(v8));
        else
          d[i][j] = (v8){0};
      }
    for (int j = 0; j < 6; j++) {
      input_1d(d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j], o);
      for (int i = 0; i < 6; i++)
        e[i][j] = o[i];
    }
    float *row = v + (size_t) (t - t0) * g->c + cb * 8;
    for (int i = 0; i < 6; i++) {
      input_1d(e[i][0], e[i][1], e[i][2], e[i][3], e[i][4], e[i][5], o);
      for (int j = 0; j < 6; j++)
        memcpy(row + (i * 6 + j) * g->v_stride, &o[j], sizeof(v8));
    }
  }
}

/* Y of tile @t from M, with bias and post-ops, into @dst (which holds the
 * addend when a post-op is the residual sum). */
AVX2 static void output_tile(const CpuWino *g, const float *mm, int t, int t0, float *dst) {
  int per = g->tiles_y * g->tiles_x, b = t / per, ty = t % per / g->tiles_x,
      tx = t % per % g->tiles_x, kb_n = g->k / 8;
  for (int kb = 0; kb < kb_n; kb++) {
    const float *row = mm + (size_t) (t - t0) * g->k + kb * 8;
    v8 p[6][6], e[4][6], o[4], bias;
    for (int x = 0; x < 36; x++)
      memcpy(&p[x / 6][x % 6], row + x * g->m_stride, sizeof(v8));
    for (int j = 0; j < 6; j++) {
      output_1d(p[0][j], p[1][j], p[2][j], p[3][j], p[4][j], p[5][j], o);
      for (int i = 0; i < 4; i++)
        e[i][j] = o[i];
    }
    memcpy(&bias, g->bias + kb * 8, sizeof(v8));
    float *plane = dst + (size_t) (b * kb_n + kb) * g->oh * g->ow * 8;
    for (int i = 0; i < 4 && ty * 4 + i < g->oh; i++) {
      output_1d(e[i][0], e[i][1], e[i][2], e[i][3], e[i][4], e[i][5], o);
      for (int j = 0; j < 4 && tx * 4 + j < g->ow; j++) {
        float *at = plane + ((size_t) (ty * 4 + i) * g->ow + tx * 4 + j) * 8;
        v8 y = o[j] + bias;
        for (int q = 0; q < g->n_post; q++) {
          if (g->post[q] == dnnl_alg_kind_undef) {
            v8 z;
            memcpy(&z, at, sizeof(v8));
            y += z;
          } else {
            v8 lo = {0}, hi = {0};
            lo += g->lo[q], hi += g->hi[q];
            y = __builtin_ia32_minps256(__builtin_ia32_maxps256(y, lo), hi);
          }
        }
        memcpy(at, &y, sizeof(v8));
      }
    }
  }
}

/* One register block of a point's product: @rows (<= GEMM_ROWS) tiles of
 * V (row stride @ldv) times a panel of @nv x 8 output channels of U, into
 * M (row stride @ldm). Inlined with constant @rows and @nv, the
 * accumulators stay in 12 registers. */
AVX2 static inline __attribute__((always_inline)) void
gemm_block(int rows, int nv, int c, const float *v, size_t ldv, const float *u, float *m,
           size_t ldm) {
  v8 acc[GEMM_ROWS][2];
#pragma GCC unroll 6
  for (int r = 0; r < rows; r++)
    acc[r][0] = acc[r][1] = (v8){0};
  for (int i = 0; i < c; i++) {
    v8 u0, u1 = {0};
    memcpy(&u0, u + (size_t) i * nv * 8, sizeof(v8));
    if (nv == 2)
      memcpy(&u1, u + (size_t) i * 16 + 8, sizeof(v8));
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++) {
      float s = v[r * ldv + i];
      v8 b = {s, s, s, s, s, s, s, s};
      acc[r][0] = __builtin_ia32_vfmaddps256(b, u0, acc[r][0]);
      if (nv == 2)
        acc[r][1] = __builtin_ia32_vfmaddps256(b, u1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < rows; r++) {
    memcpy(m + r * ldm, &acc[r][0], sizeof(v8));
    if (nv == 2)
      memcpy(m + r * ldm + 8, &acc[r][1], sizeof(v8));
  }
}

/* M = V U for point @x over the chunk's @nt tiles. */
AVX2 static void gemm_point(const CpuWino *g, int x, int nt, const float *v, float *m) {
  const float *ux = g->u + (size_t) x * g->c * g->k;
  for (int p = 0; p * 16 < g->k; p++) {
    const float *panel = ux + (size_t) p * 16 * g->c;
    bool wide = g->k - p * 16 >= 16;
    int r = 0;
    for (; r + GEMM_ROWS <= nt; r += GEMM_ROWS) {
      const float *vr = v + (size_t) r * g->c;
      float *mr = m + (size_t) r * g->k + p * 16;
      if (wide)
        gemm_block(GEMM_ROWS, 2, g->c, vr, g->c, panel, mr, g->k);
      else
        gemm_block(GEMM_ROWS, 1, g->c, vr, g->c, panel, mr, g->k);
    }
    for (; r < nt; r++) { /* the chunk's last few tiles */
      const float *vr = v + (size_t) r * g->c;
      float *mr = m + (size_t) r * g->k + p * 16;
      if (wide)
        gemm_block(1, 2, g->c, vr, g->c, panel, mr, g->k);
      else
        gemm_block(1, 1, g->c, vr, g->c, panel, mr, g->k);
    }
  }
}

/* The three phases for the chunk of @nt tiles from @t0, with @v and @m. */
static void run_chunk(const CpuWino *g, const float *src, float *dst, int t0, int nt, float *v,
                      float *m) {
  for (int t = t0; t < t0 + nt; t++)
    input_tile(g, src, t, t0, v);
  for (int x = 0; x < 36; x++)
    gemm_point(g, x, nt, v + x * g->v_stride, m + x * g->m_stride);
  for (int t = t0; t < t0 + nt; t++)
    output_tile(g, m, t, t0, dst);
}

/* Runs the convolution: @src and @dst nChw8c, not overlapping; @scratch
 * _cpu_wino_scratch bytes. Called outside any parallel region. */
void _cpu_wino_run(const CpuWino *g, const float *src, float *dst, void *scratch) {
  float *base = (float *) (((uintptr_t) scratch + 63) & ~(uintptr_t) 63);
  if (g->own_chunks) {
#pragma omp parallel num_threads(g->threads)
    {
      float *v = base + (size_t) omp_get_thread_num() * chunk_floats(g);
      float *m = v + 36 * g->v_stride;
#pragma omp for schedule(dynamic, 1)
      for (int t0 = 0; t0 < g->tiles; t0 += g->chunk)
        run_chunk(g, src, dst, t0, MIN(g->chunk, g->tiles - t0), v, m);
    }
    return;
  }
  float *v = base, *m = base + 36 * g->v_stride;
  for (int t0 = 0; t0 < g->tiles; t0 += g->chunk) {
    int nt = MIN(g->chunk, g->tiles - t0);
#pragma omp parallel
    {
#pragma omp for schedule(static)
      for (int t = t0; t < t0 + nt; t++)
        input_tile(g, src, t, t0, v);
#pragma omp for schedule(static)
      for (int x = 0; x < 36; x++)
        gemm_point(g, x, nt, v + x * g->v_stride, m + x * g->m_stride);
#pragma omp for schedule(static)
      for (int t = t0; t < t0 + nt; t++)
        output_tile(g, m, t, t0, dst);
    }
  }
}
