/*
 * backend-ref.c — the reference backend: every supported operator written
 * out in plain C, NCHW float32, straight from the ONNX operator definitions
 * with no tiling or vectorising. It is slow on purpose: it is the oracle the
 * oneDNN and cuDNN backends are compared with, op by op, and the fallback
 * of last resort.
 */
#include "nn/backend.h"

#include <math.h>

typedef struct {
  const EosinModel *m;
  float **buf;   /* per tensor: activations (owned) or constants (borrowed) */
  bool *owned;
} RefCtx;

/* Tensor buffers for @m: constants borrowed, activations allocated.
 * Caller frees the owned ones (see ref_destroy). */
void _eosin_ref_buffers(const EosinModel *m, float ***buf, bool **owned) {
  guint nt = m->tensors->len;
  *buf = g_new0(float *, nt);
  *owned = g_new0(bool, nt);
  for (guint i = 0; i < nt; i++) {
    EosinTensor *t = m->tensors->pdata[i];
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
      n *= t->dims[d];
    if (t->data) {
      (*buf)[i] = t->data;
    } else if (t->shape_known && (t->producer >= 0 || t->is_input)) {
      (*buf)[i] = g_new0(float, MAX(n, 1));
      (*owned)[i] = true;
    }
  }
}

static bool ref_init(void **ctx, const EosinBackendOptions *opt, GError **err) {
  *ctx = g_new0(RefCtx, 1);
  return true;
}

static bool ref_supports(void *ctx, const EosinModel *m, const EosinNode *n) {
  return n->op >= 0 && n->op < EOSIN_OP_COUNT;
}

static void ref_destroy(void *ctx) {
  RefCtx *c = ctx;
  if (c->buf)
    for (guint i = 0; i < c->m->tensors->len; i++)
      if (c->owned[i])
        g_free(c->buf[i]);
  g_free(c->buf);
  g_free(c->owned);
  g_free(c);
}

static bool ref_load(void *ctx, const EosinModel *m, GError **err) {
  RefCtx *c = ctx;
  c->m = m;
  _eosin_ref_buffers(m, &c->buf, &c->owned);
  return true;
}

#define TN(i) ((const EosinTensor *) c->m->tensors->pdata[i])

/* What Conv and ConvTranspose both need: buffers and sizes. */
typedef struct {
  const float *X, *W, *B;
  float *Y;
  int64_t N, C, H, Wd, M, OH, OW, CG, MG, KH, KW;
} ConvGeom;

static ConvGeom conv_geom(RefCtx *c, const EosinNode *n) {
  const EosinTensor *x = TN(n->in[0]), *w = TN(n->in[1]), *y = TN(n->out);
  ConvGeom g = {
      .X = c->buf[n->in[0]], .W = c->buf[n->in[1]],
      .B = n->n_in > 2 && n->in[2] >= 0 ? c->buf[n->in[2]] : NULL, .Y = c->buf[n->out],
      .N = x->dims[0], .C = x->dims[1], .H = x->dims[2], .Wd = x->dims[3],
      .M = y->dims[1], .OH = y->dims[2], .OW = y->dims[3],
      .KH = w->dims[2], .KW = w->dims[3]};
  g.CG = g.C / n->a.group;
  g.MG = g.M / n->a.group;
  return g;
}

static void conv(RefCtx *c, const EosinNode *n) {
  ConvGeom q = conv_geom(c, n);
  const float *X = q.X, *W = q.W, *B = q.B;
  float *Y = q.Y;
  const EosinAttrs *a = &n->a;
  int64_t N = q.N, C = q.C, H = q.H, Wd = q.Wd, M = q.M, OH = q.OH, OW = q.OW;
  int64_t CG = q.CG, MG = q.MG, KH = q.KH, KW = q.KW;
  for (int64_t b = 0; b < N; b++)
    for (int64_t o = 0; o < M; o++) {
      int64_t g = o / MG;
      for (int64_t oy = 0; oy < OH; oy++)
        for (int64_t ox = 0; ox < OW; ox++) {
          double s = B ? B[o] : 0;
          for (int64_t ci = 0; ci < CG; ci++)
            for (int64_t ky = 0; ky < KH; ky++) {
              int64_t iy = oy * a->strides[0] - a->pads[0] + ky * a->dilations[0];
              if (iy < 0 || iy >= H)
                continue;
              for (int64_t kx = 0; kx < KW; kx++) {
                int64_t ix = ox * a->strides[1] - a->pads[1] + kx * a->dilations[1];
                if (ix < 0 || ix >= Wd)
                  continue;
                s += (double) X[((b * C + g * CG + ci) * H + iy) * Wd + ix] *
                     W[((o * CG + ci) * KH + ky) * KW + kx];
              }
            }
          Y[((b * M + o) * OH + oy) * OW + ox] = (float) s;
        }
    }
}

static void conv_transpose(RefCtx *c, const EosinNode *n) {
  ConvGeom q = conv_geom(c, n);
  const float *X = q.X, *W = q.W, *B = q.B;
  float *Y = q.Y;
  const EosinAttrs *a = &n->a;
  int64_t N = q.N, C = q.C, H = q.H, Wd = q.Wd, M = q.M, OH = q.OH, OW = q.OW;
  int64_t CG = q.CG, MG = q.MG, KH = q.KH, KW = q.KW;
  for (int64_t i = 0; i < N * M * OH * OW; i++)
    Y[i] = B ? B[(i / (OH * OW)) % M] : 0;
  /* scatter: each input pixel adds its kernel-weighted value to outputs */
  for (int64_t b = 0; b < N; b++)
    for (int64_t ci = 0; ci < C; ci++) {
      int64_t g = ci / CG;
      for (int64_t iy = 0; iy < H; iy++)
        for (int64_t ix = 0; ix < Wd; ix++) {
          float v = X[((b * C + ci) * H + iy) * Wd + ix];
          for (int64_t mo = 0; mo < MG; mo++)
            for (int64_t ky = 0; ky < KH; ky++) {
              int64_t oy = iy * a->strides[0] - a->pads[0] + ky * a->dilations[0];
              if (oy < 0 || oy >= OH)
                continue;
              for (int64_t kx = 0; kx < KW; kx++) {
                int64_t ox = ix * a->strides[1] - a->pads[1] + kx * a->dilations[1];
                if (ox < 0 || ox >= OW)
                  continue;
                int64_t o = g * MG + mo;
                Y[((b * M + o) * OH + oy) * OW + ox] +=
                    v * W[((ci * MG + mo) * KH + ky) * KW + kx];
              }
            }
        }
    }
}

static void pool(RefCtx *c, const EosinNode *n, bool is_max) {
  const EosinTensor *x = TN(n->in[0]), *y = TN(n->out);
  const float *X = c->buf[n->in[0]];
  float *Y = c->buf[n->out];
  const EosinAttrs *a = &n->a;
  int64_t NC = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3];
  int64_t OH = y->dims[2], OW = y->dims[3];
  for (int64_t p = 0; p < NC; p++)
    for (int64_t oy = 0; oy < OH; oy++)
      for (int64_t ox = 0; ox < OW; ox++) {
        double acc = is_max ? -INFINITY : 0;
        int64_t count = 0, padded = 0;
        for (int64_t ky = 0; ky < a->kernel[0]; ky++)
          for (int64_t kx = 0; kx < a->kernel[1]; kx++) {
            int64_t iy = oy * a->strides[0] - a->pads[0] + ky * a->dilations[0];
            int64_t ix = ox * a->strides[1] - a->pads[1] + kx * a->dilations[1];
            /* positions in the explicit padding count for count_include_pad */
            if (iy < -a->pads[0] || iy >= H + a->pads[2] || ix < -a->pads[1] ||
                ix >= W + a->pads[3])
              continue;
            padded++;
            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
              continue;
            float v = X[(p * H + iy) * W + ix];
            acc = is_max ? fmax(acc, v) : acc + v;
            count++;
          }
        Y[(p * OH + oy) * OW + ox] =
            (float) (is_max ? acc : acc / MAX(1, n->a.count_include_pad ? padded : count));
      }
}

/* Broadcast index: the flat index into @t for output position @pos. */
static int64_t bcast(const EosinTensor *t, const EosinTensor *y, const int64_t *pos) {
  int64_t idx = 0;
  int off = y->ndim - t->ndim;
  for (int d = 0; d < t->ndim; d++)
    idx = idx * t->dims[d] + (t->dims[d] == 1 ? 0 : pos[d + off]);
  return idx;
}

static void binary(RefCtx *c, const EosinNode *n, bool mul) {
  const EosinTensor *A = TN(n->in[0]), *B = TN(n->in[1]), *y = TN(n->out);
  const float *a = c->buf[n->in[0]], *b = c->buf[n->in[1]];
  float *Y = c->buf[n->out];
  int64_t pos[EOSIN_MAX_DIMS] = {0}, total = _eosin_tensor_numel(y);
  if (_eosin_tensor_numel(A) == total && _eosin_tensor_numel(B) == total) {
    /* same shapes (residual connections): no index arithmetic */
    for (int64_t i = 0; i < total; i++)
      Y[i] = mul ? a[i] * b[i] : a[i] + b[i];
    return;
  }
  for (int64_t i = 0; i < total; i++) {
    int64_t r = i;
    for (int d = y->ndim - 1; d >= 0; d--)
      pos[d] = r % y->dims[d], r /= y->dims[d];
    float va = a[bcast(A, y, pos)], vb = b[bcast(B, y, pos)];
    Y[i] = mul ? va * vb : va + vb;
  }
}

static void concat(RefCtx *c, const EosinNode *n) {
  const EosinTensor *y = TN(n->out);
  int64_t axis = n->a.axis, outer = 1, inner = 1;
  for (int d = 0; d < axis; d++)
    outer *= y->dims[d];
  for (int d = axis + 1; d < y->ndim; d++)
    inner *= y->dims[d];
  float *Y = c->buf[n->out];
  int64_t at = 0;
  for (int k = 0; k < n->n_in; k++) {
    const EosinTensor *t = TN(n->in[k]);
    int64_t len = t->dims[axis] * inner;
    for (int64_t o = 0; o < outer; o++)
      memcpy(Y + o * y->dims[axis] * inner + at, c->buf[n->in[k]] + o * len, len * sizeof(float));
    at += len;
  }
}

static void gemm(RefCtx *c, const EosinNode *n) {
  const EosinTensor *A = TN(n->in[0]), *B = TN(n->in[1]), *y = TN(n->out);
  const float *a = c->buf[n->in[0]], *b = c->buf[n->in[1]];
  bool is_gemm = n->op == EOSIN_OP_GEMM;
  const float *bias = is_gemm && n->n_in > 2 && n->in[2] >= 0 ? c->buf[n->in[2]] : NULL;
  int64_t nb = bias ? _eosin_tensor_numel(TN(n->in[2])) : 0;
  bool ta = is_gemm && n->a.trans_a, tb = is_gemm && n->a.trans_b;
  float alpha = is_gemm ? n->a.alpha : 1, beta = is_gemm ? n->a.beta : 1;
  int64_t M = y->dims[0], N = y->dims[1], K = ta ? A->dims[0] : A->dims[1];
  float *Y = c->buf[n->out];
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++)
        s += (double) a[ta ? k * M + i : i * K + k] * b[tb ? j * K + k : k * N + j];
      Y[i * N + j] = (float) (alpha * s + (bias ? beta * bias[nb == 1 ? 0 : j] : 0));
    }
  (void) B;
}

static void softmax(RefCtx *c, const EosinNode *n) {
  const EosinTensor *x = TN(n->in[0]);
  int64_t axis = n->a.axis < 0 ? n->a.axis + x->ndim : n->a.axis;
  /* opset 13 normalises one axis; 11-12 the flattened trailing dims */
  int64_t outer = 1, len = 1, inner = 1;
  for (int d = 0; d < x->ndim; d++) {
    if (d < axis)
      outer *= x->dims[d];
    else if (d == axis || c->m->opset < 13)
      len *= x->dims[d];
    else
      inner *= x->dims[d];
  }
  const float *X = c->buf[n->in[0]];
  float *Y = c->buf[n->out];
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      const float *xp = X + o * len * inner + i;
      float *yp = Y + o * len * inner + i;
      double mx = -INFINITY, sum = 0;
      for (int64_t k = 0; k < len; k++)
        mx = fmax(mx, xp[k * inner]);
      for (int64_t k = 0; k < len; k++)
        sum += exp(xp[k * inner] - mx);
      for (int64_t k = 0; k < len; k++)
        yp[k * inner] = (float) (exp(xp[k * inner] - mx) / sum);
    }
}

/* The input coordinate of output coordinate @o for a resize of @in -> @out
 * by @scale (the given scale: out/in only when the model gave sizes). In
 * float, as ONNX Runtime computes it, so nearest picks the same pixel
 * where the coordinate lands on a rounding tie (3.5 / 0.7f is 5 in float,
 * 5.0000001 in double). */
static float resize_coord(const char *mode, int64_t o, int64_t in, int64_t out, float scale) {
  if (!strcmp(mode, "align_corners"))
    return out > 1 ? (float) o * (float) (in - 1) / (float) (out - 1) : 0;
  if (!strcmp(mode, "asymmetric"))
    return (float) o / scale;
  if (!strcmp(mode, "pytorch_half_pixel") && out == 1)
    return 0;
  return ((float) o + 0.5f) / scale - 0.5f;
}

static int64_t nearest(const char *mode, float v, int64_t in) {
  float r;
  if (!strcmp(mode, "floor"))
    r = floorf(v);
  else if (!strcmp(mode, "ceil"))
    r = ceilf(v);
  else if (!strcmp(mode, "round_prefer_ceil"))
    r = floorf(v + 0.5f);
  else
    r = ceilf(v - 0.5f); /* round_prefer_floor */
  return CLAMP((int64_t) r, 0, in - 1);
}

static void resize(RefCtx *c, const EosinNode *n) {
  const EosinTensor *x = TN(n->in[0]), *y = TN(n->out);
  const float *X = c->buf[n->in[0]];
  float *Y = c->buf[n->out];
  int64_t NC = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3];
  int64_t OH = y->dims[2], OW = y->dims[3];
  bool linear = !strcmp(n->a.mode, "linear");
  for (int64_t p = 0; p < NC; p++)
    for (int64_t oy = 0; oy < OH; oy++) {
      double fy = resize_coord(n->a.coord_mode, oy, H, OH, n->a.resize_scale[0]);
      for (int64_t ox = 0; ox < OW; ox++) {
        double fx = resize_coord(n->a.coord_mode, ox, W, OW, n->a.resize_scale[1]);
        const float *P = X + p * H * W;
        float v;
        if (!linear) {
          v = P[nearest(n->a.nearest_mode, (float) fy, H) * W +
                nearest(n->a.nearest_mode, (float) fx, W)];
        } else {
          fy = CLAMP(fy, 0, H - 1), fx = CLAMP(fx, 0, W - 1);
          int64_t y0 = (int64_t) floor(fy), x0 = (int64_t) floor(fx);
          int64_t y1 = MIN(y0 + 1, H - 1), x1 = MIN(x0 + 1, W - 1);
          double dy = fy - y0, dx = fx - x0;
          v = (float) ((1 - dy) * ((1 - dx) * P[y0 * W + x0] + dx * P[y0 * W + x1]) +
                       dy * ((1 - dx) * P[y1 * W + x0] + dx * P[y1 * W + x1]));
        }
        Y[(p * OH + oy) * OW + ox] = v;
      }
    }
}

static void pad(RefCtx *c, const EosinNode *n) {
  const EosinTensor *x = TN(n->in[0]), *y = TN(n->out);
  const float *X = c->buf[n->in[0]];
  float *Y = c->buf[n->out];
  int64_t NC = x->dims[0] * x->dims[1], H = x->dims[2], W = x->dims[3];
  int64_t OH = y->dims[2], OW = y->dims[3];
  memset(Y, 0, _eosin_tensor_numel(y) * sizeof(float));
  for (int64_t p = 0; p < NC; p++)
    for (int64_t iy = 0; iy < H; iy++)
      memcpy(Y + (p * OH + iy + n->a.pads[0]) * OW + n->a.pads[1], X + (p * H + iy) * W,
             W * sizeof(float));
}

static void unary(RefCtx *c, const EosinNode *n) {
  const float *X = c->buf[n->in[0]];
  float *Y = c->buf[n->out];
  int64_t total = _eosin_tensor_numel(TN(n->out));
  const EosinAttrs *a = &n->a;
  for (int64_t i = 0; i < total; i++) {
    float v = X[i];
    switch (n->op) {
    case EOSIN_OP_RELU: v = v > 0 ? v : 0; break;
    case EOSIN_OP_CLIP: v = fminf(fmaxf(v, a->clip_min), a->clip_max); break;
    case EOSIN_OP_SIGMOID: v = (float) (1 / (1 + exp(-(double) v))); break;
    case EOSIN_OP_HARD_SIGMOID: v = fmaxf(0, fminf(1, a->alpha * v + a->beta)); break;
    case EOSIN_OP_HARD_SWISH: v = v * fmaxf(0, fminf(1, v / 6 + 0.5f)); break;
    default: break; /* Identity, Dropout, Flatten, Reshape: a copy */
    }
    Y[i] = v;
  }
}

static void batch_norm(RefCtx *c, const EosinNode *n) {
  const EosinTensor *x = TN(n->in[0]);
  const float *X = c->buf[n->in[0]], *s = c->buf[n->in[1]], *b = c->buf[n->in[2]];
  const float *mean = c->buf[n->in[3]], *var = c->buf[n->in[4]];
  float *Y = c->buf[n->out];
  int64_t N = x->dims[0], C = x->dims[1], HW = _eosin_tensor_numel(x) / (N * C);
  for (int64_t i = 0; i < N * C; i++) {
    int64_t ch = i % C;
    double k = s[ch] / sqrt((double) var[ch] + n->a.epsilon);
    for (int64_t p = 0; p < HW; p++)
      Y[i * HW + p] = (float) ((X[i * HW + p] - mean[ch]) * k + b[ch]);
  }
}

void _eosin_ref_node(const EosinModel *m, float **buf, const EosinNode *n) {
  RefCtx cc = {.m = m, .buf = buf};
  RefCtx *c = &cc;
  if (n->removed || n->op == EOSIN_OP_CONSTANT)
    return;
  switch (n->op) {
  case EOSIN_OP_CONV: conv(c, n); break;
  case EOSIN_OP_CONV_TRANSPOSE: conv_transpose(c, n); break;
  case EOSIN_OP_BATCH_NORM: batch_norm(c, n); break;
  case EOSIN_OP_MUL: binary(c, n, true); break;
  case EOSIN_OP_ADD: binary(c, n, false); break;
  case EOSIN_OP_CONCAT: concat(c, n); break;
  case EOSIN_OP_MAX_POOL: pool(c, n, true); break;
  case EOSIN_OP_AVERAGE_POOL: pool(c, n, false); break;
  case EOSIN_OP_GLOBAL_AVERAGE_POOL: {
    EosinNode g = *n;
    const EosinTensor *x = TN(n->in[0]);
    g.a.kernel[0] = x->dims[2], g.a.kernel[1] = x->dims[3];
    g.a.strides[0] = g.a.strides[1] = 1;
    g.a.dilations[0] = g.a.dilations[1] = 1;
    memset(g.a.pads, 0, sizeof g.a.pads);
    pool(c, &g, false);
    break;
  }
  case EOSIN_OP_GEMM:
  case EOSIN_OP_MATMUL: gemm(c, n); break;
  case EOSIN_OP_SOFTMAX: softmax(c, n); break;
  case EOSIN_OP_RESIZE: resize(c, n); break;
  case EOSIN_OP_PAD: pad(c, n); break;
  default: unary(c, n); break;
  }
}

static bool ref_run(void *ctx, const float *input, float *output, GError **err) {
  RefCtx *c = ctx;
  const EosinModel *m = c->m;
  memcpy(c->buf[m->input], input, _eosin_tensor_numel(TN(m->input)) * sizeof(float));
  for (guint i = 0; i < m->nodes->len; i++)
    _eosin_ref_node(m, c->buf, &g_array_index(m->nodes, EosinNode, i));
  memcpy(output, c->buf[m->output], _eosin_tensor_numel(TN(m->output)) * sizeof(float));
  return true;
}

const EosinBackendOps _eosin_backend_ref = {
    .name = "ref",
    .init = ref_init,
    .supports = ref_supports,
    .load = ref_load,
    .run = ref_run,
    .destroy = ref_destroy,
};
