/*
 * watershed.c — the seeded watershed of nucleus detection: basins grow from
 * their seeds over the image, highest values first, and a pixel where two
 * basins meet stays a line (QuPath's watershed cell detection splits
 * touching nuclei there). The flood's queue is a binary heap on float
 * values, or, where the caller has whole-number levels (squared distances:
 * splitting nuclei by shape, growing cells), one FIFO per level; both pop
 * the highest value first and equal values first in, first out, so the
 * two give the same labels.
 */
#include "cells/cells-private.h"

#include <math.h>

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
 * equal values), for a bucket queue instead of the heap. @labels is the
 * caller's, grown in place; nothing else is kept. */
void _eosin_cells_watershed(const float *img, int W, int H, int *labels, float min_value,
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

/* Integer levels for a flood on a distance map @d (_eosin_edt's output:
 * square roots of whole squared distances), over the pixels where @use is
 * set (all when NULL): the squared distance, or its complement when
 * @nearest_first, into the caller's @level. Returns the number of levels. */
uint32_t _eosin_cells_distance_levels(const float *d, size_t n, const uint8_t *use, float max_d,
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
