/*
 * shard.c — one worker's share of a batch: `--shard K/N`, or the Slurm
 * array task the process runs in. Shard K of N is every N-th slide of the
 * manifest sorted by path, from the K-th on, so every worker given the
 * same manifest splits it the same way whatever the order of its lines,
 * and the shards of 1..N together hold every slide exactly once.
 */
#include "eosin-core.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A whole decimal number in [@min, @max], all of @s. */
static bool parse_int(const char *s, gint64 min, gint64 max, gint64 *out) {
  if (!s || !g_ascii_isdigit(*s))
    return false;
  char *end = NULL;
  errno = 0;
  gint64 v = g_ascii_strtoll(s, &end, 10);
  if (errno || *end || v < min || v > max)
    return false;
  *out = v;
  return true;
}

bool _eosin_shard_parse(const char *text, int *k, int *n, GError **err) {
  g_auto(GStrv) parts = text ? g_strsplit(text, "/", -1) : NULL;
  gint64 kk = 0, nn = 0;
  if (!parts || g_strv_length(parts) != 2 || !parse_int(parts[1], 1, EOSIN_MAX_SHARDS, &nn) ||
      !parse_int(parts[0], 1, nn, &kk)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "--shard '%s': expected K/N, shard K of N with 1 <= K <= N <= %d",
                text ? text : "", EOSIN_MAX_SHARDS);
    return false;
  }
  *k = (int) kk, *n = (int) nn;
  return true;
}

bool _eosin_shard_from_slurm(const EosinSlurmArray *env, int *k, int *n, bool *found,
                             GError **err) {
  *found = env->task_id != NULL;
  if (!*found)
    return true;
  gint64 id = 0, lo = 0, hi = 0, step = 1, count = 0;
  const gint64 big = G_MAXINT32;
  bool ok = parse_int(env->task_id, 0, big, &id) && parse_int(env->task_min, 0, big, &lo) &&
            (!env->task_step || parse_int(env->task_step, 1, big, &step));
  if (ok && env->task_count)
    ok = parse_int(env->task_count, 1, EOSIN_MAX_SHARDS, &count);
  else if (ok)
    ok = parse_int(env->task_max, lo, big, &hi) && (count = (hi - lo) / step + 1) > 0 &&
         count <= EOSIN_MAX_SHARDS;
  /* the task's place among the array's: tasks lo, lo + step, ... */
  ok = ok && id >= lo && (id - lo) % step == 0 && (id - lo) / step < count;
  if (!ok) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "Slurm array task: SLURM_ARRAY_TASK_ID=%s with SLURM_ARRAY_TASK_MIN=%s, "
                "_MAX=%s, _STEP=%s, _COUNT=%s does not name one task of the array (give "
                "--shard K/N)",
                env->task_id, env->task_min ? env->task_min : "(unset)",
                env->task_max ? env->task_max : "(unset)",
                env->task_step ? env->task_step : "(unset)",
                env->task_count ? env->task_count : "(unset)");
    return false;
  }
  *k = (int) ((id - lo) / step) + 1;
  *n = (int) count;
  return true;
}

typedef struct {
  const char *path;
  guint index;
} Ranked;

static int by_path(const void *a, const void *b) {
  const Ranked *x = a, *y = b;
  int c = strcmp(x->path, y->path);
  return c ? c : (x->index > y->index) - (x->index < y->index);
}

GArray *_eosin_shard_indices(GPtrArray *items, int k, int n) {
  guint len = items->len;
  GArray *out = g_array_sized_new(FALSE, FALSE, sizeof(guint), n > 1 ? len / n + 1 : len);
  if (n <= 1) {
    for (guint i = 0; i < len; i++)
      g_array_append_val(out, i);
    return out;
  }
  g_autofree Ranked *r = g_new(Ranked, MAX(len, 1));
  for (guint i = 0; i < len; i++)
    r[i] = (Ranked){((EosinBatchItem *) items->pdata[i])->path, i};
  qsort(r, len, sizeof *r, by_path);
  g_autofree bool *keep = g_new0(bool, MAX(len, 1));
  for (guint j = (guint) k - 1; j < len; j += (guint) n)
    keep[r[j].index] = true;
  /* in manifest order: the batch's own order is the user's */
  for (guint i = 0; i < len; i++)
    if (keep[i])
      g_array_append_val(out, i);
  return out;
}

void _eosin_batch_keep_shard(GPtrArray *items, int k, int n) {
  if (n <= 1)
    return;
  guint len = items->len;
  g_autoptr(GArray) idx = _eosin_shard_indices(items, k, n);
  g_autofree bool *keep = g_new0(bool, MAX(len, 1));
  for (guint j = 0; j < idx->len; j++)
    keep[g_array_index(idx, guint, j)] = true;
  /* the kept ones first, in manifest order; set_size frees the rest with
   * the array's free function */
  g_autofree gpointer *dropped = g_new(gpointer, MAX(len, 1));
  guint w = 0, d = 0;
  for (guint i = 0; i < len; i++) {
    if (keep[i])
      items->pdata[w++] = items->pdata[i];
    else
      dropped[d++] = items->pdata[i];
  }
  memcpy(items->pdata + w, dropped, d * sizeof(gpointer));
  g_ptr_array_set_size(items, w);
}
