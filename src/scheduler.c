/*
 * scheduler.c — the tile scheduler. Reader threads, each with its own slide
 * handle, claim batches of the plan in order, fill a preallocated buffer
 * from a free pool and hand it to the consumer (the calling thread), which
 * runs the analyzer and returns the buffer. Memory is fixed by the config
 * (batch_size x tile bytes x (queue_depth + readers)), never by the slide.
 * Values are written at their tile index, so the result is the same for any
 * number of readers and any arrival order.
 */
#include "eosin-private.h"

typedef struct {
  int index;          /* batch number; -1 marks a reader that failed */
  int n;
  int *tile_ids;
  uint8_t *pixels;
} Batch;

typedef struct {
  EosinSlide *slide;            /* the caller's handle, reopened per reader */
  const EosinTilePlan *plan;
  int batch_size, n_batches;
  GAsyncQueue *free_q, *ready_q;
  gint next_batch;              /* atomic: the next batch to claim */
  gint stop;                    /* atomic: a failure or cancel was seen */
  gint active_readers;          /* atomic */
  EosinCancel *cancel;
  float *sharpness;             /* per tile, or NULL: written by the reader of its batch */
  GMutex lock;                  /* guards error and read_s */
  GError *error;
  double read_s;
} Sched;

static bool stopping(Sched *s) {
  return g_atomic_int_get(&s->stop) || (s->cancel && g_atomic_int_get(&s->cancel->cancelled));
}

static void set_error(Sched *s, GError *e) {
  g_mutex_lock(&s->lock);
  if (!s->error)
    s->error = e;
  else
    g_error_free(e);
  g_mutex_unlock(&s->lock);
  g_atomic_int_set(&s->stop, 1);
}

static gpointer reader_main(gpointer data) {
  Sched *s = data;
  GError *e = NULL;
  size_t tile_bytes = (size_t) s->plan->tile_size * s->plan->tile_size * 3;
  double busy = 0;
  EosinSlide *own = eosin_slide_reopen(s->slide, &e);
  if (!own) {
    set_error(s, e);
  } else {
    const EosinTile *tiles = (const EosinTile *) s->plan->tiles->data;
    int n_tiles = s->plan->tiles->len;
    while (!stopping(s)) {
      int b = g_atomic_int_add(&s->next_batch, 1);
      if (b >= s->n_batches)
        break;
      Batch *batch = g_async_queue_pop(s->free_q);
      if (stopping(s)) {
        g_async_queue_push(s->free_q, batch);
        break;
      }
      gint64 t0 = g_get_monotonic_time();
      batch->index = b;
      batch->n = MIN(s->batch_size, n_tiles - b * s->batch_size);
      bool ok = true;
      int k = 0;
      for (; k < batch->n && ok && !stopping(s); k++) {
        int id = b * s->batch_size + k;
        batch->tile_ids[k] = id;
        ok = eosin_tile_read(own, s->plan, &tiles[id], batch->pixels + k * tile_bytes, &e);
        /* the QC's focus measure, here where the pixels already are */
        if (ok && s->sharpness)
          s->sharpness[id] =
              _eosin_qc_tile_sharpness(batch->pixels + k * tile_bytes, s->plan->tile_size);
      }
      busy += (g_get_monotonic_time() - t0) / 1e6;
      if (!ok)
        set_error(s, e);
      if (!ok || k < batch->n) {
        /* never hand the analyzer a half-filled batch */
        g_async_queue_push(s->free_q, batch);
        break;
      }
      g_async_queue_push(s->ready_q, batch);
    }
    eosin_slide_free(own);
  }
  g_mutex_lock(&s->lock);
  s->read_s += busy;
  g_mutex_unlock(&s->lock);
  g_atomic_int_add(&s->active_readers, -1);
  return NULL;
}

bool _eosin_schedule(EosinSlide *slide, const EosinTilePlan *plan,
                     const EosinAnalyzerOps *ops, void *actx, int per_tile, int readers,
                     int batch_size, int queue_depth, const EosinRunOptions *opts,
                     float *values, float *sharpness, EosinSchedStats *stats, GError **err) {
  int n_tiles = plan->tiles->len;
  gint64 start = g_get_monotonic_time();
  Sched s = {
      .slide = slide,
      .plan = plan,
      .batch_size = batch_size,
      .n_batches = (n_tiles + batch_size - 1) / batch_size,
      .free_q = g_async_queue_new(),
      .ready_q = g_async_queue_new(),
      .cancel = opts ? opts->cancel : NULL,
      .sharpness = sharpness,
  };
  g_mutex_init(&s.lock);
  readers = CLAMP(readers, 1, MAX(1, s.n_batches));
  size_t tile_bytes = (size_t) plan->tile_size * plan->tile_size * 3;
  int n_buffers = queue_depth + readers;
  g_autofree Batch *pool = g_new0(Batch, n_buffers);
  for (int i = 0; i < n_buffers; i++) {
    pool[i].tile_ids = g_new(int, batch_size);
    /* the config's memory was checked, but the machine may still say no:
     * an error for this slide, not GLib's abort */
    pool[i].pixels = g_try_malloc(tile_bytes * batch_size);
    if (!pool[i].pixels) {
      for (int k = 0; k <= i; k++) {
        g_free(pool[k].tile_ids);
        g_free(pool[k].pixels);
      }
      g_async_queue_unref(s.free_q);
      g_async_queue_unref(s.ready_q);
      g_mutex_clear(&s.lock);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                  "slide %s: no memory for %d tile buffers of %zu MB",
                  eosin_slide_get_info(slide)->path, n_buffers,
                  tile_bytes * batch_size >> 20);
      return false;
    }
    g_async_queue_push(s.free_q, &pool[i]);
  }

  g_atomic_int_set(&s.active_readers, readers);
  g_autofree GThread **threads = g_new0(GThread *, readers);
  for (int r = 0; r < readers; r++)
    threads[r] = g_thread_new("eosin-reader", reader_main, &s);

  double analyze_s = 0;
  int done = 0, done_tiles = 0;
  while (done < s.n_batches && !stopping(&s)) {
    /* a timed pop so a failed or cancelled run is noticed promptly */
    Batch *b = g_async_queue_timeout_pop(s.ready_q, 50000);
    if (!b) {
      if (!g_atomic_int_get(&s.active_readers) && !g_async_queue_length(s.ready_q))
        break;  /* every reader is gone: they failed (error set) */
      continue;
    }
    gint64 t0 = g_get_monotonic_time();
    EosinTileBatch tb = {b->n, plan->tile_size, b->tile_ids, b->pixels, plan};
    float *dst = values + (size_t) b->index * batch_size * per_tile;
    GError *e = NULL;
    if (!ops->run(actx, &tb, dst, &e)) {
      g_prefix_error(&e, "analyzer %s, tiles %d-%d: ", ops->name, b->tile_ids[0],
                     b->tile_ids[b->n - 1]);
      set_error(&s, e);
    }
    analyze_s += (g_get_monotonic_time() - t0) / 1e6;
    g_async_queue_push(s.free_q, b);
    done++;
    done_tiles += b->n;
    if (opts && opts->progress) {
      double el = (g_get_monotonic_time() - start) / 1e6;
      opts->progress(done_tiles, n_tiles, el > 0 ? done_tiles / el : 0, opts->progress_data);
    }
  }
  /* Stop the readers: a reader waiting for a buffer gets one back and sees
   * the stop flag; batches still in flight are recycled. */
  g_atomic_int_set(&s.stop, 1);
  while (g_atomic_int_get(&s.active_readers) > 0) {
    Batch *b = g_async_queue_timeout_pop(s.ready_q, 10000);
    if (b)
      g_async_queue_push(s.free_q, b);
  }
  for (int r = 0; r < readers; r++)
    g_thread_join(threads[r]);
  for (int i = 0; i < n_buffers; i++) {
    g_free(pool[i].tile_ids);
    g_free(pool[i].pixels);
  }
  g_async_queue_unref(s.free_q);
  g_async_queue_unref(s.ready_q);
  g_mutex_clear(&s.lock);

  if (stats) {
    stats->read_s = s.read_s;
    stats->analyze_s = analyze_s;
    stats->wall_s = (g_get_monotonic_time() - start) / 1e6;
    stats->readers = readers;
    stats->batches = s.n_batches;
  }
  if (s.error) {
    g_propagate_error(err, s.error);
    return false;
  }
  if (done < s.n_batches) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "slide %s: cancelled after %d of %d tiles",
                eosin_slide_get_info(slide)->path, done_tiles, n_tiles);
    return false;
  }
  return true;
}
