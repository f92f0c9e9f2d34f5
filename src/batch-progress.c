/*
 * batch-progress.c — what a batch tells its caller as it goes: notes under
 * one lock (the writer thread warns while the main thread reports
 * progress), per-slide warnings with the slide's name, and progress with an
 * ETA from the work left and the rate measured so far.
 */
#include "eosin-private.h"

#include <math.h>

/* The caller's note function, if any, under @p's lock. */
void _eosin_batch_note(EosinBatchProgressState *p, EosinNoteKind kind, const char *fmt, ...) {
  if (!p->opts || !p->opts->note)
    return;
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *text = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_mutex_lock(p->lock);
  p->opts->note(kind, text, p->opts->note_data);
  g_mutex_unlock(p->lock);
}

double _eosin_batch_eta(double elapsed_s, double tiles_done, double tiles_left_here,
                        double tiles_per_slide, int slides_left) {
  if (elapsed_s <= 0 || tiles_done <= 0)
    return NAN;
  /* seconds per tile over the whole batch so far (reading, analysis and
   * writing alike), times the tiles still to do: this slide's rest and,
   * for each slide not begun, the mean of the slides seen */
  return elapsed_s / tiles_done * (tiles_left_here + tiles_per_slide * MAX(slides_left, 0));
}

void _eosin_batch_progress_cb(int done, int total, double tps, void *data) {
  EosinBatchProgressState *p = data;
  gint64 now = g_get_monotonic_time();
  bool finished = done >= total;
  if (!finished && now - p->last_print < 250000)
    return;
  p->last_print = now;
  double el = (now - p->batch_start) / 1e6;
  double per_slide = (p->planned_before + total) / (p->slides_analysed + 1);
  double eta = _eosin_batch_eta(el, p->tiles_before + done, total - done, per_slide,
                                p->total - p->index - 1);
  EosinBatchProgress bp = {p->index, p->total, p->name, done, total, tps, isnan(eta) ? 0 : eta};
  g_mutex_lock(p->lock);
  p->obs->progress(&bp, p->obs->data);
  g_mutex_unlock(p->lock);
  if (finished && !p->counted) {
    /* the slide's tiles, counted once for the slides to come */
    p->tiles_before += total, p->planned_before += total, p->slides_analysed++;
    p->counted = true;
  }
}

/* A run's warnings as they arise: to the caller's warning function, or
 * else as a note naming the slide. The output phase warns from the writer
 * thread: @lock makes the caller's callback see one warning at a time, as
 * it did before pipelining. */

void _eosin_batch_warn_fwd(const char *msg, void *data) {
  EosinBatchWarnFwd *w = data;
  g_mutex_lock(w->lock);
  if (w->inner) {
    w->inner(msg, w->inner_data);
  } else if (w->note) {
    g_autofree char *text = g_strdup_printf("%s: warning: %s", w->name, msg);
    w->note(EOSIN_NOTE_WARNING, text, w->note_data);
  }
  g_mutex_unlock(w->lock);
}

