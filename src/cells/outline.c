/*
 * outline.c — outlines of labelled pixels (or grid cells) along their
 * edges: every boundary edge of a label is chained into rings, turning
 * right first where two pixels touch only at a corner, so each ring is
 * simple (diagonal neighbours get separate rings) and holes come out as
 * rings of opposite orientation. Used for lesion outlines (cells of the
 * heatmap grid) and for nuclei and cells (pixels of a tile).
 */
#include "cells/cells-private.h"

/* Directions in grid (y-down) coordinates: a right turn is d + 1. */
enum { DIR_E, DIR_S, DIR_W, DIR_N };
static const int DX[4] = {1, 0, -1, 0}, DY[4] = {0, 1, 0, -1};

double _eosin_ring_area2(const GArray *ring) {
  const int *v = (const int *) ring->data;
  int n = ring->len / 2;
  double a = 0;
  for (int i = 0; i < n; i++) {
    int j = (i + 1) % n;
    a += (double) v[2 * i] * v[2 * j + 1] - (double) v[2 * j] * v[2 * i + 1];
  }
  return a;
}

/* Chains the boundary edges of the cells labelled @id (interior on the
 * right, so outer rings run clockwise on screen and holes the other way)
 * into closed rings of vertex coordinates, collinear vertices dropped.
 * Returns a GPtrArray of GArray(int x, y), owned by the caller. */
GPtrArray *_eosin_trace_rings(const int *label, int W, int H, int id, int x0, int y0, int x1,
                              int y1) {
  /* out-edges per vertex of the bounding box (+1), as bit masks */
  int VW = x1 - x0 + 2, VH = y1 - y0 + 2;
  g_autofree uint8_t *out = g_new0(uint8_t, (size_t) VW * VH);
  g_autofree uint8_t *used = g_new0(uint8_t, (size_t) VW * VH);
#define IN(x, y) ((x) >= 0 && (y) >= 0 && (x) < W && (y) < H && label[(size_t) (y) * W + (x)] == id)
#define V(x, y) ((size_t) ((y) - y0) * VW + ((x) - x0))
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) {
      if (!IN(x, y))
        continue;
      if (!IN(x, y - 1))
        out[V(x, y)] |= 1 << DIR_E;
      if (!IN(x + 1, y))
        out[V(x + 1, y)] |= 1 << DIR_S;
      if (!IN(x, y + 1))
        out[V(x + 1, y + 1)] |= 1 << DIR_W;
      if (!IN(x - 1, y))
        out[V(x, y + 1)] |= 1 << DIR_N;
    }
#undef IN
  GPtrArray *rings = g_ptr_array_new_with_free_func((GDestroyNotify) g_array_unref);
  for (int vy = y0; vy <= y1 + 1; vy++)
    for (int vx = x0; vx <= x1 + 1; vx++) {
      uint8_t free_edges = out[V(vx, vy)] & ~used[V(vx, vy)];
      if (!free_edges)
        continue;
      int d = 0;
      while (!(free_edges & (1 << d)))
        d++;
      GArray *ring = g_array_new(FALSE, FALSE, sizeof(int));
      int x = vx, y = vy;
      for (;;) {
        used[V(x, y)] |= 1 << d;
        int nx = x + DX[d], ny = y + DY[d];
        /* right, straight, left: the first the vertex has; used = closed */
        int nd = -1;
        for (int turn = 1; turn >= -1 && nd < 0; turn--) {
          int c = (d + turn + 4) % 4;
          if (out[V(nx, ny)] & (1 << c))
            nd = c;
        }
        g_assert(nd >= 0);  /* every in-edge has an out-edge */
        if (nd != d) {      /* a corner: keep the vertex */
          int xy[2] = {nx, ny};
          g_array_append_vals(ring, xy, 2);
        }
        x = nx, y = ny, d = nd;
        if (used[V(x, y)] & (1 << d))
          break;
      }
      g_ptr_array_add(rings, ring);
    }
#undef V
  return rings;
}

GArray *_eosin_trace_outer(const int *label, int W, int H, int id, int x0, int y0, int x1,
                           int y1) {
  g_autoptr(GPtrArray) rings = _eosin_trace_rings(label, W, H, id, x0, y0, x1, y1);
  GArray *best = NULL;
  double best_area = 0;
  for (guint i = 0; i < rings->len; i++) {
    double a = _eosin_ring_area2(rings->pdata[i]);
    if (a > best_area)
      best_area = a, best = rings->pdata[i];
  }
  return best ? g_array_ref(best) : g_array_new(FALSE, FALSE, sizeof(int));
}
