/*
 * nuclei.c — nuclei and cells on one tile of stain optical densities, the
 * way QuPath's watershed cell detection (the engine of its "Positive cell
 * detection") finds them, so Eosin's counts and QuPath's agree:
 *
 *   detection image (haematoxylin OD, or the OD sum)
 *   -> median (optional) -> minus a background by reconstruction
 *      (an opening of background_radius_um, regions darker than
 *      max_background cut out)
 *   -> negative Laplacian of a Gaussian of sigma_um; seeds = its regional
 *      maxima; seeded watershed over LoG > 0, lines where basins meet
 *   -> basins whose mean (background-subtracted) detection value exceeds
 *      the threshold are kept, merged across the lines (dilate, AND LoG > 0)
 *   -> holes filled, split by shape (watershed of the distance transform
 *      from maxima of prominence 0.5 px)
 *   -> one-pixel boundary refinement on a LoG of sigma 1 px, then
 *      4-connected nuclei filtered by mean >= threshold and area
 *   -> cells: nuclei grown by cell_expansion_um, nearest nucleus first,
 *      never into a neighbour (a distance-limited Voronoi partition).
 *
 * All sizes are in µm and converted with the tile's µm/px, so results do
 * not change with the scanner. The filters follow ImageJ's conventions
 * QuPath relies on (circular rank kernels, edges replicated).
 */
#include "cells/nuclei-private.h"

#include <math.h>

void _eosin_nuclei_labels_clear(EosinNucleiLabels *l) {
  g_clear_pointer(&l->nucleus, g_free);
  g_clear_pointer(&l->cell, g_free);
  l->n = 0;
}

/* ---------------------------------------------------------------- filters */

/* ImageJ RankFilters' circular kernel: half-width of each row dy = -k..k. */
static int kernel_rows(double r, int *hw) {
  if (r >= 1.5 && r < 1.75)
    r = 1.75;
  else if (r >= 2.5 && r < 2.85)
    r = 2.85;
  int r2 = (int) (r * r) + 1;
  int k = (int) sqrt((double) r2);
  for (int dy = -k; dy <= k; dy++)
    hw[dy + k] = (int) sqrt((double) (r2 - dy * dy));
  return k;
}

/* Running min (sign = 1) or max (sign = -1) of @in (n values) over windows
 * of half-width @h, edges replicated: van Herk / Gil-Werman, O(n). */
static void run_extreme(const float *in, int n, int h, float sign, float *out, float *f,
                        float *b) {
  int w = 2 * h + 1, m = n + 2 * h;
  /* padded sequence p[i] = in[clamp(i - h)] */
#define P(i) (sign * in[CLAMP((i) - h, 0, n - 1)])
  for (int s = 0; s < m; s += w) {
    int e = MIN(s + w, m);
    f[s] = P(s);
    for (int i = s + 1; i < e; i++)
      f[i] = MIN(f[i - 1], P(i));
    b[e - 1] = P(e - 1);
    for (int i = e - 2; i >= s; i--)
      b[i] = MIN(b[i + 1], P(i));
  }
#undef P
  for (int x = 0; x < n; x++) {
    /* window p[x .. x + 2h] */
    out[x] = sign * MIN(b[x], f[x + 2 * h]);
  }
}

/* Circular min (@max = false) or max filter of radius @r (pixels). */
static void rank_filter(const float *in, int W, int H, double r, bool max, float *out) {
  int hw[256];
  int k = kernel_rows(MIN(r, 120), hw);
  float sign = max ? -1.0f : 1.0f;
  size_t tmpn = (size_t) W + 2 * 128 + 2;
  g_autofree float *row = g_new(float, W), *f = g_new(float, tmpn), *b = g_new(float, tmpn);
  /* one running extreme per (source row, half-width), combined over dy */
  for (int y = 0; y < H; y++) {
    float *o = out + (size_t) y * W;
    for (int x = 0; x < W; x++)
      o[x] = max ? -INFINITY : INFINITY;
    for (int dy = -k; dy <= k; dy++) {
      int sy = CLAMP(y + dy, 0, H - 1);
      run_extreme(in + (size_t) sy * W, W, hw[dy + k], sign, row, f, b);
      for (int x = 0; x < W; x++)
        o[x] = max ? MAX(o[x], row[x]) : MIN(o[x], row[x]);
    }
  }
}

/* Median of radius @r (pixels), the same circular kernel. Only used when a
 * config asks for it, so a plain sort per pixel is enough. */
static void median_filter(const float *in, int W, int H, double r, float *out) {
  int hw[256];
  int k = kernel_rows(MIN(r, 50), hw);
  g_autofree float *buf = g_new(float, (2 * k + 1) * (2 * k + 1));
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int n = 0;
      for (int dy = -k; dy <= k; dy++)
        for (int dx = -hw[dy + k]; dx <= hw[dy + k]; dx++)
          buf[n++] = in[(size_t) CLAMP(y + dy, 0, H - 1) * W + CLAMP(x + dx, 0, W - 1)];
      /* insertion sort is fine for the small kernels medians use */
      for (int i = 1; i < n; i++) {
        float v = buf[i];
        int j = i - 1;
        for (; j >= 0 && buf[j] > v; j--)
          buf[j + 1] = buf[j];
        buf[j + 1] = v;
      }
      out[(size_t) y * W + x] = buf[n / 2];
    }
}

/* Gaussian blur (ImageJ's kernel reach: ceil(sigma sqrt(-2 ln 0.0002)) + 1),
 * separable, edges replicated. In place. */
static void gaussian(float *img, int W, int H, double sigma) {
  int k = (int) ceil(sigma * sqrt(-2 * log(0.0002))) + 1;
  g_autofree double *kern = g_new(double, 2 * k + 1);
  double sum = 0;
  for (int i = -k; i <= k; i++)
    sum += kern[i + k] = exp(-0.5 * i * i / (sigma * sigma));
  for (int i = 0; i <= 2 * k; i++)
    kern[i] /= sum;
  /* rows: a line padded by k replicated pixels each side; each tap is
   * added to the whole row in turn (the same sums in the same order as
   * pixel by pixel, but a loop the compiler vectorises) */
  g_autofree float *line = g_new(float, W + 2 * k);
  g_autofree double *acc = g_new(double, W);
  for (int y = 0; y < H; y++) {
    float *r = img + (size_t) y * W;
    for (int i = 0; i < k; i++)
      line[i] = r[0], line[k + W + i] = r[W - 1];
    memcpy(line + k, r, sizeof(float) * W);
    memset(acc, 0, sizeof(double) * W);
    for (int i = 0; i <= 2 * k; i++) {
      const float *src = line + i;
      double w = kern[i];
      for (int x = 0; x < W; x++)
        acc[x] += w * src[x];
    }
    for (int x = 0; x < W; x++)
      r[x] = (float) acc[x];
  }
  /* columns, a row at a time (the same sums in the same order, but over
   * whole rows, which the compiler vectorises and the cache likes) */
  g_autofree float *copy = g_memdup2(img, sizeof(float) * W * H);
  for (int y = 0; y < H; y++) {
    memset(acc, 0, sizeof(double) * W);
    for (int i = -k; i <= k; i++) {
      const float *src = copy + (size_t) CLAMP(y + i, 0, H - 1) * W;
      double w = kern[i + k];
      for (int x = 0; x < W; x++)
        acc[x] += w * src[x];
    }
    float *r = img + (size_t) y * W;
    for (int x = 0; x < W; x++)
      r[x] = (float) acc[x];
  }
}

/* The negative Laplacian of a Gaussian of @sigma: positive on blobs. */
static void neg_log(const float *in, int W, int H, double sigma, float *out) {
  size_t n = (size_t) W * H;
  g_autofree float *g = g_memdup2(in, n * sizeof(float));
  gaussian(g, W, H, sigma);
#define G(x, y) g[(size_t) CLAMP(y, 0, H - 1) * W + CLAMP(x, 0, W - 1)]
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++)
      out[(size_t) y * W + x] =
          4 * G(x, y) - G(x - 1, y) - G(x + 1, y) - G(x, y - 1) - G(x, y + 1);
#undef G
}

/* Grayscale reconstruction by dilation of @marker (<= @mask) under @mask,
 * 8-connected (Vincent 1993: two raster scans, then a FIFO for the rest).
 * @marker is replaced by the result. */
static void reconstruct(float *marker, const float *mask, int W, int H) {
  float *J = marker;
  for (size_t i = 0; i < (size_t) W * H; i++)
    J[i] = MIN(J[i], mask[i]);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      size_t i = (size_t) y * W + x;
      float v = J[i];
      if (x > 0) v = MAX(v, J[i - 1]);
      if (y > 0) {
        v = MAX(v, J[i - W]);
        if (x > 0) v = MAX(v, J[i - W - 1]);
        if (x < W - 1) v = MAX(v, J[i - W + 1]);
      }
      J[i] = MIN(v, mask[i]);
    }
  GQueue q = G_QUEUE_INIT;
  for (int y = H - 1; y >= 0; y--)
    for (int x = W - 1; x >= 0; x--) {
      size_t i = (size_t) y * W + x;
      float v = J[i];
      if (x < W - 1) v = MAX(v, J[i + 1]);
      if (y < H - 1) {
        v = MAX(v, J[i + W]);
        if (x < W - 1) v = MAX(v, J[i + W + 1]);
        if (x > 0) v = MAX(v, J[i + W - 1]);
      }
      J[i] = MIN(v, mask[i]);
      /* a forward neighbour that could still rise goes to the queue */
      static const int fdx[4] = {1, -1, 0, 1}, fdy[4] = {0, 1, 1, 1};
      for (int k = 0; k < 4; k++) {
        int nx = x + fdx[k], ny = y + fdy[k];
        if (nx < 0 || nx >= W || ny >= H)
          continue;
        size_t j = (size_t) ny * W + nx;
        if (J[j] < J[i] && J[j] < mask[j]) {
          g_queue_push_tail(&q, GSIZE_TO_POINTER(i + 1));
          break;
        }
      }
    }
  while (!g_queue_is_empty(&q)) {
    size_t i = GPOINTER_TO_SIZE(g_queue_pop_head(&q)) - 1;
    int x = i % W, y = i / W;
    for (int dy = -1; dy <= 1; dy++)
      for (int dx = -1; dx <= 1; dx++) {
        int nx = x + dx, ny = y + dy;
        if ((!dx && !dy) || nx < 0 || ny < 0 || nx >= W || ny >= H)
          continue;
        size_t j = (size_t) ny * W + nx;
        if (J[j] < J[i] && J[j] != mask[j]) {
          J[j] = MIN(J[i], mask[j]);
          g_queue_push_tail(&q, GSIZE_TO_POINTER(j + 1));
        }
      }
  }
}

/* One pass of the exact squared Euclidean distance transform
 * (Felzenszwalb & Huttenlocher 2012): the lower envelope of parabolas. */
static void distance_1d(const double *f, int n, double *d, int *v, double *z) {
  int k = 0;
  v[0] = 0;
  z[0] = -INFINITY, z[1] = INFINITY;
  for (int q = 1; q < n; q++) {
    double s;
    for (;;) {
      int p = v[k];
      s = ((f[q] + (double) q * q) - (f[p] + (double) p * p)) / (2.0 * (q - p));
      if (s > z[k])
        break;
      k--; /* z[0] = -inf ends this */
    }
    k++;
    v[k] = q, z[k] = s, z[k + 1] = INFINITY;
  }
  k = 0;
  for (int q = 0; q < n; q++) {
    while (z[k + 1] < q)
      k++;
    d[q] = (double) (q - v[k]) * (q - v[k]) + f[v[k]];
  }
}

/* Euclidean distance of every pixel to the nearest pixel where @is_source
 * is set (1e10 when there is none). */
static void edt(const uint8_t *is_source, int W, int H, float *out) {
  const double BIG = 1e20;
  int n = MAX(W, H);
  g_autofree double *f = g_new(double, n), *d = g_new(double, n), *z = g_new(double, n + 1);
  g_autofree double *tmp = g_new(double, (size_t) W * H);
  g_autofree int *v = g_new(int, n);
  for (int x = 0; x < W; x++) {
    for (int y = 0; y < H; y++)
      f[y] = is_source[(size_t) y * W + x] ? 0 : BIG;
    distance_1d(f, H, d, v, z);
    for (int y = 0; y < H; y++)
      tmp[(size_t) y * W + x] = d[y];
  }
  for (int y = 0; y < H; y++) {
    memcpy(f, tmp + (size_t) y * W, sizeof(double) * W);
    distance_1d(f, W, d, v, z);
    for (int x = 0; x < W; x++)
      out[(size_t) y * W + x] = (float) sqrt(d[x]);
  }
}

/* ---------------------------------------------------------------- watershed */

/* The flood's queue: a binary min-heap of 64-bit keys, the value mapped to
 * an order-preserving integer (negated: higher values first) above a
 * push counter (equal values first in, first out), one compare per step. */
typedef struct {
  uint64_t key;
  uint32_t i;
} HeapItem;

typedef struct {
  HeapItem *a;
  size_t n, cap;
  uint32_t counter;
} Heap;

static uint64_t heap_key(float v, uint32_t order) {
  v += 0.0f; /* -0 is +0, as the float compare has it */
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  u = (u & 0x80000000u) ? ~u : u | 0x80000000u; /* ascending with v */
  return (uint64_t) ~u << 32 | order;
}

static void heap_push(Heap *h, float v, uint32_t i) {
  if (h->n == h->cap) {
    h->cap = MAX(1024, h->cap * 2);
    h->a = g_renew(HeapItem, h->a, h->cap);
  }
  size_t c = h->n++;
  HeapItem it = {heap_key(v, h->counter++), i};
  while (c > 0) {
    size_t p = (c - 1) / 2;
    if (it.key >= h->a[p].key)
      break;
    h->a[c] = h->a[p];
    c = p;
  }
  h->a[c] = it;
}

static HeapItem heap_pop(Heap *h) {
  HeapItem top = h->a[0], last = h->a[--h->n];
  size_t c = 0, n = h->n;
  for (;;) {
    size_t l = 2 * c + 1;
    if (l >= n)
      break;
    size_t m = l + 1 < n && h->a[l + 1].key < h->a[l].key ? l + 1 : l;
    if (h->a[m].key >= last.key)
      break;
    h->a[c] = h->a[m];
    c = m;
  }
  if (n)
    h->a[c] = last;
  return top;
}

static const int N4X[4] = {1, -1, 0, 0}, N4Y[4] = {0, 0, 1, -1};

/* The flood's queue, highest priority first and equal priorities first in,
 * first out: the heap above for float priorities, or, when the caller has
 * integer levels (squared distances), one FIFO per level, O(1) a pixel. */
typedef struct {
  const uint32_t *level; /* NULL: the heap on img */
  int32_t *head, *tail, *next;
  int64_t cur;           /* highest level that may be non-empty */
  size_t n;
  Heap heap;
} Queue;

static void queue_push(Queue *q, float v, uint32_t i) {
  if (!q->level) {
    heap_push(&q->heap, v, i);
    return;
  }
  uint32_t l = q->level[i];
  q->next[i] = -1;
  if (q->head[l] < 0)
    q->head[l] = (int32_t) i;
  else
    q->next[q->tail[l]] = (int32_t) i;
  q->tail[l] = (int32_t) i;
  q->cur = MAX(q->cur, (int64_t) l);
  q->n++;
}

static size_t queue_pop(Queue *q) {
  if (!q->level)
    return heap_pop(&q->heap).i;
  while (q->head[q->cur] < 0)
    q->cur--;
  int32_t i = q->head[q->cur];
  q->head[q->cur] = q->next[i];
  q->n--;
  return (size_t) i;
}

static bool queue_empty(const Queue *q) {
  return q->level ? q->n == 0 : q->heap.n == 0;
}

typedef struct {
  const float *img;
  const int *labels;
  const uint8_t *mask;
  uint8_t *queued;
  float min_value;
  int W, H;
  Queue q;
} Flood;

/* Queues the 4-neighbours of pixel (@x, @y) the flood may still reach. */
static void push_neighbours(Flood *f, int x, int y) {
  for (int k = 0; k < 4; k++) {
    int nx = x + N4X[k], ny = y + N4Y[k];
    if (nx < 0 || ny < 0 || nx >= f->W || ny >= f->H)
      continue;
    size_t j = (size_t) ny * f->W + nx;
    if (!f->labels[j] && !f->queued[j] && f->img[j] > f->min_value && (!f->mask || f->mask[j])) {
      f->queued[j] = 1;
      queue_push(&f->q, f->img[j], j);
    }
  }
}

/* Seeded watershed on @img, highest first: @labels (> 0 = seeds) grow
 * 4-connected into pixels with img > @min_value (and @mask set, when
 * given); a pixel whose labelled 4-neighbours disagree stays 0, a line.
 * @level (or NULL) gives every pixel the flood can reach an integer in
 * 0..@n_levels-1 that orders pixels exactly as @img does (equal levels for
 * equal values), for a bucket queue instead of the heap. */
static void watershed(const float *img, int W, int H, int *labels, float min_value,
                      const uint8_t *mask, const uint32_t *level, uint32_t n_levels) {
  size_t n = (size_t) W * H;
  g_autofree uint8_t *queued = g_new0(uint8_t, n);
  g_autofree int32_t *head = NULL, *tail = NULL, *next = NULL;
  Flood f = {img, labels, mask, queued, min_value, W, H, {0}};
  if (level && n_levels) {
    head = g_new(int32_t, n_levels), tail = g_new(int32_t, n_levels);
    next = g_new(int32_t, n);
    memset(head, 0xff, sizeof(int32_t) * n_levels);
    f.q = (Queue){level, head, tail, next, -1, 0, {0}};
  }
  for (size_t i = 0; i < n; i++)
    if (labels[i] > 0)
      push_neighbours(&f, i % W, i / W);
  while (!queue_empty(&f.q)) {
    size_t i = queue_pop(&f.q);
    int x = i % W, y = i / W, lab = 0;
    bool conflict = false;
    for (int k = 0; k < 4; k++) {
      int nx = x + N4X[k], ny = y + N4Y[k];
      if (nx < 0 || ny < 0 || nx >= W || ny >= H)
        continue;
      int l = labels[(size_t) ny * W + nx];
      if (l > 0) {
        if (lab && l != lab)
          conflict = true;
        lab = l;
      }
    }
    if (conflict || !lab)
      continue; /* a line between basins */
    labels[i] = lab;
    push_neighbours(&f, x, y);
  }
  g_free(f.q.heap.a);
}

/* Integer levels for a flood on a distance map @d (edt's output: square
 * roots of whole squared distances), over the pixels where @use is set
 * (all when NULL): the squared distance, or its complement when @nearest_first.
 * Returns the number of levels. */
static uint32_t distance_levels(const float *d, size_t n, const uint8_t *use, float max_d,
                                bool nearest_first, uint32_t *level) {
  uint32_t top = 0;
  for (size_t i = 0; i < n; i++) {
    bool ok = (!use || use[i]) && d[i] <= max_d;
    level[i] = ok ? (uint32_t) lrint((double) d[i] * d[i]) : 0;
    top = MAX(top, level[i]);
  }
  if (nearest_first)
    for (size_t i = 0; i < n; i++)
      level[i] = top - level[i];
  return top + 1;
}

int _eosin_label_components(const uint8_t *bin, int W, int H, bool conn8, int *labels) {
  size_t n = (size_t) W * H;
  memset(labels, 0, n * sizeof(int));
  g_autofree uint32_t *stack = g_new(uint32_t, n);
  int count = 0;
  for (size_t s = 0; s < n; s++) {
    if (!bin[s] || labels[s])
      continue;
    count++;
    size_t top = 0;
    stack[top++] = s;
    labels[s] = count;
    while (top) {
      size_t i = stack[--top];
      int x = i % W, y = i / W;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          if ((!dx && !dy) || (!conn8 && dx && dy))
            continue;
          int nx = x + dx, ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= W || ny >= H)
            continue;
          size_t j = (size_t) ny * W + nx;
          if (bin[j] && !labels[j]) {
            labels[j] = count;
            stack[top++] = j;
          }
        }
    }
  }
  return count;
}

/* Fills the holes of @bin: background not 8-connected to the image border. */
static void fill_holes(uint8_t *bin, int W, int H) {
  size_t n = (size_t) W * H;
  g_autofree uint8_t *outside = g_new0(uint8_t, n);
  g_autofree uint32_t *stack = g_new(uint32_t, n);
  size_t top = 0;
  for (int x = 0; x < W; x++)
    for (int e = 0; e < 2; e++) {
      size_t i = (size_t) (e ? H - 1 : 0) * W + x;
      if (!bin[i] && !outside[i])
        outside[i] = 1, stack[top++] = i;
    }
  for (int y = 0; y < H; y++)
    for (int e = 0; e < 2; e++) {
      size_t i = (size_t) y * W + (e ? W - 1 : 0);
      if (!bin[i] && !outside[i])
        outside[i] = 1, stack[top++] = i;
    }
  while (top) {
    size_t i = stack[--top];
    int x = i % W, y = i / W;
    for (int dy = -1; dy <= 1; dy++)
      for (int dx = -1; dx <= 1; dx++) {
        int nx = x + dx, ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= W || ny >= H)
          continue;
        size_t j = (size_t) ny * W + nx;
        if (!bin[j] && !outside[j])
          outside[j] = 1, stack[top++] = j;
      }
  }
  for (size_t i = 0; i < n; i++)
    if (!outside[i])
      bin[i] = 1;
}

/* Regional maxima of @img (8-connected plateaus with no higher neighbour,
 * at least @min_value; away from the 1-px frame when @skip_frame, as
 * QuPath's seeds), labelled 4-connected into @seeds; returns the count. */
static int regional_maxima(const float *img, int W, int H, float min_value, bool skip_frame,
                           int *seeds) {
  size_t n = (size_t) W * H;
  g_autofree uint8_t *state = g_new0(uint8_t, n); /* 1 = visited */
  g_autofree uint8_t *is_max = g_new0(uint8_t, n);
  g_autofree uint32_t *stack = g_new(uint32_t, n), *plateau = g_new(uint32_t, n);
  int f = skip_frame ? 1 : 0;
  for (int y = f; y < H - f; y++)
    for (int x = f; x < W - f; x++) {
      size_t s = (size_t) y * W + x;
      float v = img[s];
      if (state[s] || v < min_value)
        continue;
      size_t top = 0, np = 0;
      bool ok = true;
      stack[top++] = s;
      state[s] = 1;
      while (top) {
        size_t i = stack[--top];
        plateau[np++] = i;
        int px = i % W, py = i / W;
        if (skip_frame && (px == 0 || py == 0 || px == W - 1 || py == H - 1))
          ok = false;
        for (int dy = -1; dy <= 1; dy++)
          for (int dx = -1; dx <= 1; dx++) {
            int nx = px + dx, ny = py + dy;
            if ((!dx && !dy) || nx < 0 || ny < 0 || nx >= W || ny >= H)
              continue;
            size_t j = (size_t) ny * W + nx;
            if (img[j] > v)
              ok = false;
            else if (img[j] == v && !state[j]) {
              state[j] = 1;
              stack[top++] = j;
            }
          }
      }
      for (size_t k = 0; ok && k < np; k++)
        is_max[plateau[k]] = 1;
    }
  return _eosin_label_components(is_max, W, H, false, seeds);
}

static int cmp_height_desc(gconstpointer a, gconstpointer b, gpointer data) {
  const float *h = data;
  float x = h[*(const uint32_t *) a], y = h[*(const uint32_t *) b];
  return (x < y) - (x > y);
}

/* Maxima of the distance map @d inside @bin with a prominence above @tol
 * (ImageJ's MaximumFinder idea): from the highest down, each maximum floods
 * the pixels above (its height - tol); one that reaches a higher pixel or
 * the flood of a higher maximum belongs to that peak. Accepted maxima
 * (whole plateaus) are labelled 1..count in @seeds. */
static int prominent_maxima(const float *d, const uint8_t *bin, int W, int H, float tol,
                            int *seeds) {
  size_t n = (size_t) W * H;
  g_autofree int *reg = g_new(int, n);
  int nreg = regional_maxima(d, W, H, 0.5f, false, reg);
  memset(seeds, 0, n * sizeof(int));
  if (!nreg)
    return 0;
  /* the pixels of each regional maximum, grouped (CSR), and their height */
  g_autofree uint32_t *start = g_new0(uint32_t, nreg + 2);
  for (size_t i = 0; i < n; i++)
    if (reg[i])
      start[reg[i] + 1]++;
  for (int r = 1; r <= nreg + 1; r++)
    start[r] += start[r - 1];
  g_autofree uint32_t *pix = g_new(uint32_t, start[nreg + 1]);
  g_autofree uint32_t *fill = g_memdup2(start, (nreg + 2) * sizeof(uint32_t));
  for (size_t i = 0; i < n; i++)
    if (reg[i])
      pix[fill[reg[i]]++] = i;
  g_autofree float *height = g_new(float, nreg + 1);
  g_autofree uint32_t *order = g_new(uint32_t, nreg);
  for (int r = 1; r <= nreg; r++)
    height[r] = d[pix[start[r]]], order[r - 1] = r;
  g_qsort_with_data(order, nreg, sizeof(uint32_t), cmp_height_desc, height);

  g_autofree uint8_t *flooded = g_new0(uint8_t, n), *mark = g_new0(uint8_t, n);
  g_autofree uint32_t *stack = g_new(uint32_t, n), *seen = g_new(uint32_t, n);
  g_autofree uint8_t *taken = g_new0(uint8_t, nreg + 1);
  int count = 0;
  for (int k = 0; k < nreg; k++) {
    int r = order[k];
    if (taken[r])
      continue;
    float v = height[r], floor_v = v - tol;
    size_t top = 0, ns = 0;
    bool higher = false;
    for (uint32_t q = start[r]; q < start[r + 1]; q++)
      stack[top++] = pix[q], mark[pix[q]] = 1;
    while (top) {
      size_t i = stack[--top];
      seen[ns++] = i;
      int x = i % W, y = i / W;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          int nx = x + dx, ny = y + dy;
          if ((!dx && !dy) || nx < 0 || ny < 0 || nx >= W || ny >= H)
            continue;
          size_t j = (size_t) ny * W + nx;
          if (mark[j] || !bin[j] || d[j] <= floor_v)
            continue;
          if (d[j] > v || flooded[j])
            higher = true;
          mark[j] = 1;
          stack[top++] = j;
        }
    }
    for (size_t q = 0; q < ns; q++) {
      mark[seen[q]] = 0;
      flooded[seen[q]] = 1;
      if (reg[seen[q]])
        taken[reg[seen[q]]] = 1;
    }
    if (!higher) {
      count++;
      for (uint32_t q = start[r]; q < start[r + 1]; q++)
        seeds[pix[q]] = count;
    }
  }
  return count;
}

/* ---------------------------------------------------------------- detection */

bool _eosin_nuclei_detect(const EosinNucleiParams *p, const float *stains, int W, int H,
                          EosinNucleiLabels *out, GError **err) {
  memset(out, 0, sizeof *out);
  if (W < 3 || H < 3 || !(p->mpp > 0)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "nucleus detection: a %d x %d image at %g µm/px", W, H, p->mpp);
    return false;
  }
  size_t n = (size_t) W * H;
  double px_um = p->mpp, px_um2 = p->mpp * p->mpp;
  g_autofree float *det = g_new(float, n);
  for (size_t i = 0; i < n; i++)
    det[i] = p->detect_od_sum ? (float) (p->od_sum_weight[0] * stains[3 * i] +
                                         p->od_sum_weight[1] * stains[3 * i + 1] +
                                         p->od_sum_weight[2] * stains[3 * i + 2])
                              : stains[3 * i];
  if (p->median_radius_um > 0) {
    g_autofree float *m = g_new(float, n);
    median_filter(det, W, H, p->median_radius_um / px_um, m);
    memcpy(det, m, n * sizeof(float));
  }
  /* the raw (median-filtered) detection image, for the boundary refinement */
  g_autofree float *raw = g_memdup2(det, n * sizeof(float));
  g_autofree uint8_t *bgmask = g_new0(uint8_t, n);
  if (p->background_radius_um > 0) {
    double r = p->background_radius_um / px_um;
    g_autofree float *bg = g_new(float, n);
    rank_filter(det, W, H, r, false, bg);
    bool any = false;
    for (size_t i = 0; i < n && p->max_background > 0; i++)
      if (bg[i] > p->max_background)
        any = true;
    if (any) {
      /* regions with a very dark background are cut out (r x 2 around) */
      g_autofree float *hot = g_new(float, n), *grown = g_new(float, n);
      for (size_t i = 0; i < n; i++)
        hot[i] = bg[i] > p->max_background;
      rank_filter(hot, W, H, 2 * r, true, grown);
      for (size_t i = 0; i < n; i++)
        if (grown[i] > 0)
          bgmask[i] = 1, bg[i] = -INFINITY;
    }
    reconstruct(bg, det, W, H);
    for (size_t i = 0; i < n; i++)
      det[i] -= isfinite(bg[i]) ? bg[i] : 0;
  }
  /* det is now what is measured against the threshold */
  double sigma = p->sigma_um / px_um;
  g_autofree float *lg = g_new(float, n);
  neg_log(det, W, H, sigma, lg);
  g_autofree uint8_t *lpos = g_new(uint8_t, n);
  for (size_t i = 0; i < n; i++)
    lpos[i] = lg[i] > 0;

  g_autofree int *lab = g_new(int, n);
  int nseeds = regional_maxima(lg, W, H, 0.001f, true, lab);
  watershed(lg, W, H, lab, 0.0f, NULL, NULL, 0);

  /* basins bright enough (and off the cut-out background) are kept */
  g_autofree double *sum = g_new0(double, nseeds + 1);
  g_autofree int64_t *cnt = g_new0(int64_t, nseeds + 1);
  g_autofree uint8_t *bad = g_new0(uint8_t, nseeds + 1);
  for (size_t i = 0; i < n; i++)
    if (lab[i] > 0) {
      sum[lab[i]] += det[i], cnt[lab[i]]++;
      if (bgmask[i])
        bad[lab[i]] = 1;
    }
  g_autofree uint8_t *bp = g_new0(uint8_t, n), *tmp = g_new(uint8_t, n);
  for (size_t i = 0; i < n; i++) {
    int l = lab[i];
    bp[i] = l > 0 && !bad[l] && sum[l] / cnt[l] > p->threshold;
  }
  /* merge across the watershed lines: 3 x 3 dilation, then AND LoG > 0 */
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint8_t v = 0;
      for (int dy = -1; dy <= 1 && !v; dy++)
        for (int dx = -1; dx <= 1 && !v; dx++) {
          int nx = x + dx, ny = y + dy;
          if (nx >= 0 && ny >= 0 && nx < W && ny < H)
            v = bp[(size_t) ny * W + nx];
        }
      tmp[(size_t) y * W + x] = v && lpos[(size_t) y * W + x];
    }
  memcpy(bp, tmp, n);

  if (p->split_by_shape) {
    fill_holes(bp, W, H);
    g_autofree float *d = g_new(float, n);
    g_autofree uint8_t *bg0 = g_new(uint8_t, n);
    for (size_t i = 0; i < n; i++)
      bg0[i] = !bp[i];
    edt(bg0, W, H, d);
    prominent_maxima(d, bp, W, H, 0.5f, lab);
    g_autofree uint32_t *lv = g_new(uint32_t, n);
    uint32_t nl = distance_levels(d, n, bp, (float) (W + H), false, lv);
    watershed(d, W, H, lab, 0.0f, bp, lv, nl);
    for (size_t i = 0; i < n; i++)
      bp[i] = bp[i] && lab[i] > 0;
  }

  /* boundary refinement: drop edge pixels where a fine LoG is not positive */
  if (sigma > 1.5) {
    g_autofree float *fine = g_new(float, n);
    neg_log(raw, W, H, 1.0, fine);
    for (int y = 0; y < H; y++)
      for (int x = 0; x < W; x++) {
        size_t i = (size_t) y * W + x;
        bool inner = bp[i];
        for (int dy = -1; dy <= 1 && inner; dy++)
          for (int dx = -1; dx <= 1 && inner; dx++) {
            int nx = CLAMP(x + dx, 0, W - 1), ny = CLAMP(y + dy, 0, H - 1);
            inner = bp[(size_t) ny * W + nx];
          }
        tmp[i] = inner || (bp[i] && fine[i] > 0);
      }
    memcpy(bp, tmp, n);
  }

  /* nuclei: 4-connected, holes filled, mean and area filters */
  int nn = _eosin_label_components(bp, W, H, false, lab);
  sum = g_renew(double, sum, nn + 1);
  cnt = g_renew(int64_t, cnt, nn + 1);
  memset(sum, 0, (nn + 1) * sizeof(double));
  memset(cnt, 0, (nn + 1) * sizeof(int64_t));
  for (size_t i = 0; i < n; i++)
    if (lab[i])
      sum[lab[i]] += det[i], cnt[lab[i]]++;
  double min_px = p->min_area_um2 / px_um2, max_px = p->max_area_um2 / px_um2;
  g_autofree int *remap = g_new0(int, nn + 1);
  int kept = 0;
  for (int l = 1; l <= nn; l++) {
    bool ok = sum[l] / cnt[l] >= p->threshold && (p->min_area_um2 <= 0 || cnt[l] >= min_px) &&
              (p->max_area_um2 <= 0 || cnt[l] <= max_px);
    remap[l] = ok ? ++kept : 0;
  }
  out->width = W, out->height = H, out->n = kept;
  out->nucleus = g_new(int, n);
  for (size_t i = 0; i < n; i++)
    out->nucleus[i] = remap[lab[i]];

  /* cells: nearest nucleus first within cell_expansion_um */
  out->cell = g_memdup2(out->nucleus, n * sizeof(int));
  double ex = p->cell_expansion_um / px_um;
  if (ex > 0 && kept) {
    g_autofree uint8_t *src = g_new(uint8_t, n);
    g_autofree float *d = g_new(float, n);
    for (size_t i = 0; i < n; i++)
      src[i] = out->nucleus[i] > 0;
    edt(src, W, H, d);
    g_autofree uint32_t *lv = g_new(uint32_t, n);
    uint32_t nl = distance_levels(d, n, NULL, (float) ex, true, lv);
    for (size_t i = 0; i < n; i++)
      d[i] = -d[i];
    watershed(d, W, H, out->cell, (float) -ex, NULL, lv, nl);
  }
  return true;
}
