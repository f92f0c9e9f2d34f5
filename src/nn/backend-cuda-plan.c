/*
 * backend-cuda-plan.c — the CUDA backend's host-only arithmetic (see
 * backend-cuda-plan.h): explicit padding for cuDNN's symmetric-only pads,
 * the liveness-based placement of activations in one device arena, and
 * the parsing of EOSIN_CUDA_MAX_MEMORY_MB. No CUDA here, so the tests check it everywhere.
 */
#include "nn/backend-cuda-plan.h"
#include "nn/backend.h"

#include <glib.h>
#include <errno.h>
#include <stdlib.h>

bool _eosin_cuda_pad_plan(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe,
                          int64_t out, EosinCudaPadPlan *plan) {
  *plan = (EosinCudaPadPlan){0};
  if (in < 1 || k < 1 || s < 1 || d < 1 || pb < 0 || pe < 0 || out < 1)
    return false;
  int64_t eff = d * (k - 1) + 1; /* the window's extent */
  int64_t sym = MIN(pb, pe), pre_begin = pb - sym;
  /* the last window ends at (out - 1) s + eff (from the padded start):
   * the least end padding that still holds it */
  int64_t need = (out - 1) * s + eff, have = pre_begin + in + 2 * sym;
  int64_t pre_end = MAX(0, need - have);
  int64_t len = have + pre_end;
  /* cuDNN's output size must then be exactly @out: one more window
   * fitting means the caller's @out is not the floor/ceil of these numbers */
  if (len < eff || (len - eff) / s + 1 != out)
    return false;
  plan->sym = sym;
  plan->pre_begin = pre_begin;
  plan->pre_end = pre_end;
  plan->overhang = pre_end > pe - sym;
  return true;
}

typedef struct {
  const size_t *size;
  const int *first;
} SortCtx;

static int by_size_desc(const void *a, const void *b, void *user) {
  const SortCtx *s = user;
  int i = *(const int *) a, j = *(const int *) b;
  if (s->size[i] != s->size[j])
    return s->size[i] > s->size[j] ? -1 : 1;
  if (s->first[i] != s->first[j])
    return s->first[i] < s->first[j] ? -1 : 1;
  return i < j ? -1 : i > j;
}

static int by_offset(const void *a, const void *b, void *user) {
  const size_t *offset = user;
  int i = *(const int *) a, j = *(const int *) b;
  if (offset[i] != offset[j])
    return offset[i] < offset[j] ? -1 : 1;
  return i < j ? -1 : i > j;
}

size_t _eosin_cuda_plan_arena(int n, const size_t *size, const int *first, const int *last,
                              size_t align, size_t *offset) {
  g_autofree int *order = g_new(int, MAX(n, 1));
  g_autofree int *placed = g_new(int, MAX(n, 1)); /* indices placed so far */
  g_autofree int *clash = g_new(int, MAX(n, 1));
  int n_placed = 0;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    order[i] = i;
    offset[i] = 0;
  }
  SortCtx sc = {size, first};
  g_qsort_with_data(order, n, sizeof(int), by_size_desc, &sc);
  for (int oi = 0; oi < n; oi++) {
    int i = order[oi];
    if (!size[i])
      continue;
    size_t bytes = (size[i] + align - 1) & ~(align - 1);
    /* the placed buffers live at some step where this one is */
    int n_clash = 0;
    for (int k = 0; k < n_placed; k++) {
      int j = placed[k];
      if (first[j] <= last[i] && first[i] <= last[j])
        clash[n_clash++] = j;
    }
    g_qsort_with_data(clash, n_clash, sizeof(int), by_offset, offset);
    /* the lowest gap between them that holds it */
    size_t at = 0;
    for (int k = 0; k < n_clash; k++) {
      int j = clash[k];
      if (at + bytes <= offset[j])
        break;
      size_t end = (offset[j] + size[j] + align - 1) & ~(align - 1);
      at = MAX(at, end);
    }
    offset[i] = at;
    placed[n_placed++] = i;
    total = MAX(total, at + bytes);
  }
  return total;
}

/* Caller owns nothing new; *err is set on a bad value. */
bool _eosin_cuda_parse_max_memory(const char *value, size_t *bytes, GError **err) {
  *bytes = 0;
  if (!value || !*value)
    return true;
  char *end = NULL;
  errno = 0;
  guint64 mb = g_ascii_strtoull(value, &end, 10);
  /* a whole number of MiB, at least 1, that fits size_t as bytes */
  if (errno || !g_ascii_isdigit(value[0]) || *end || mb < 1 ||
      mb > SIZE_MAX / 1048576) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "EOSIN_CUDA_MAX_MEMORY_MB='%s': expected a whole number of MiB, at least 1",
                value);
    return false;
  }
  *bytes = (size_t) mb * 1048576;
  return true;
}
