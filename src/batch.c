/*
 * batch.c — a night's queue of slides (from a manifest or a folder,
 * manifest.c): one output folder per slide, finished slides skipped on rerun, failures
 * recorded in batch-summary.csv without stopping the others, progress, ETA
 * and notes through the caller's observer and note function (the library
 * never prints), and a clean stop on SIGINT/SIGTERM (via EosinCancel).
 * With a [lesions] group it also keeps camelyon-slides.csv, the slide-level
 * probabilities of all finished slides.
 */
#include "eosin-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>

typedef struct {
  char *path, *name, *status, *error;
  char *qc;            /* the QC verdict (pass / warn / fail), or NULL when unknown */
  double seconds, tiles_per_s;
  double probability;  /* scores.lesions.slide_probability of a finished slide, else NaN */
  int tiles;
} Row;

static void row_clear(gpointer p) {
  Row *r = p;
  g_free(r->path);
  g_free(r->name);
  g_free(r->status);
  g_free(r->error);
  g_free(r->qc);
}

/* CSV field: always quoted (as earlier summaries were), inner quotes
 * doubled; a newline stays inside the quotes, as RFC 4180 has it. */
static void csv_field(GString *s, const char *v) {
  g_string_append_c(s, '"');
  for (const char *c = v ? v : ""; *c; c++) {
    if (*c == '"')
      g_string_append_c(s, '"');
    g_string_append_c(s, *c);
  }
  g_string_append_c(s, '"');
}

static bool write_summary(const char *outdir, GArray *rows, GError **err) {
  g_autoptr(GString) s = g_string_new("slide,name,status,seconds,tiles,tiles_per_s,error,qc\n");
  for (guint i = 0; i < rows->len; i++) {
    Row *r = &g_array_index(rows, Row, i);
    csv_field(s, r->path);
    g_string_append_c(s, ',');
    csv_field(s, r->name);
    g_string_append_printf(s, ",%s,%.2f,%d,%.1f,", r->status, r->seconds, r->tiles,
                           r->tiles_per_s);
    csv_field(s, r->error);
    g_string_append_c(s, ',');
    csv_field(s, r->qc);
    g_string_append_c(s, '\n');
  }
  g_autofree char *path = g_build_filename(outdir, "batch-summary.csv", NULL);
  return _eosin_write_atomic(path, s->str, s->len, err);
}

/* scores.lesions.slide_probability from a slide's scores object, or NaN
 * (a config without [lesions]). */
static double scores_probability(JsonNode *scores) {
  JsonObject *o = scores && JSON_NODE_HOLDS_OBJECT(scores) ? json_node_get_object(scores) : NULL;
  JsonNode *l = o ? json_object_get_member(o, "lesions") : NULL;
  o = l && JSON_NODE_HOLDS_OBJECT(l) ? json_node_get_object(l) : NULL;
  JsonNode *v = o ? json_object_get_member(o, "slide_probability") : NULL;
  return v && JSON_NODE_HOLDS_VALUE(v) ? json_node_get_double(v) : NAN;
}

/* The same from a finished slide's report.json (a slide skipped as complete). */
static double report_probability(const char *outdir, const char *name) {
  g_autofree char *path = g_build_filename(outdir, name, "report.json", NULL);
  g_autoptr(JsonNode) root = _eosin_read_json_file(path, "report", EOSIN_REPORT_MAX_BYTES,
                                                   EOSIN_REPORT_MAX_DEPTH, NULL);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  return scores_probability(o ? json_object_get_member(o, "scores") : NULL);
}

/* qc.verdict of a finished slide's report.json (caller frees), or NULL. */
static char *report_qc(const char *outdir, const char *name) {
  g_autofree char *path = g_build_filename(outdir, name, "report.json", NULL);
  g_autoptr(JsonNode) root = _eosin_read_json_file(path, "report", EOSIN_REPORT_MAX_BYTES,
                                                   EOSIN_REPORT_MAX_DEPTH, NULL);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  JsonNode *q = o ? json_object_get_member(o, "qc") : NULL;
  o = q && JSON_NODE_HOLDS_OBJECT(q) ? json_node_get_object(q) : NULL;
  JsonNode *v = o ? json_object_get_member(o, "verdict") : NULL;
  return v && JSON_NODE_HOLDS_VALUE(v) && json_node_get_value_type(v) == G_TYPE_STRING
             ? g_strdup(json_node_get_string(v))
             : NULL;
}

/* OUTDIR/camelyon-slides.csv: `name,probability` of every finished slide
 * (CAMELYON16's slide-level format, what `eosin eval camelyon16` reads),
 * from the probabilities kept in @rows, so a night's batch reads each
 * report.json at most once. Failed slides are left out rather than given a
 * made-up probability. */
static bool write_camelyon_slides(const char *outdir, GArray *rows, GError **err) {
  g_autoptr(GString) s = g_string_new("name,probability\n");
  for (guint i = 0; i < rows->len; i++) {
    Row *r = &g_array_index(rows, Row, i);
    if (isfinite(r->probability)) {
      _eosin_csv_append_field(s, r->name);
      g_string_append_printf(s, ",%.6f\n", r->probability);
    }
  }
  g_autofree char *path = g_build_filename(outdir, "camelyon-slides.csv", NULL);
  return _eosin_write_atomic(path, s->str, s->len, err);
}

typedef struct {
  int index, total;
  const char *name;
  gint64 batch_start, last_print;
  int slides_done;
  const EosinBatchObserver *obs;   /* may be NULL */
  const EosinRunOptions *opts;     /* the caller's: its note function; may be NULL */
  GMutex *lock;  /* one callback at a time: the writer thread warns while the main thread
                    reports progress */
} Progress;

/* The caller's note function, if any, under @p's lock. */
static void note(Progress *p, EosinNoteKind kind, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void note(Progress *p, EosinNoteKind kind, const char *fmt, ...) {
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

static void progress_cb(int done, int total, double tps, void *data) {
  Progress *p = data;
  gint64 now = g_get_monotonic_time();
  if (done < total && now - p->last_print < 250000)
    return;
  p->last_print = now;
  double slide_eta = tps > 0 ? (total - done) / tps : 0;
  double el = (now - p->batch_start) / 1e6;
  double per_slide = p->slides_done ? el / p->slides_done : 0;
  double eta = slide_eta + per_slide * (p->total - p->index - 1);
  EosinBatchProgress bp = {p->index, p->total, p->name, done, total, tps, eta};
  g_mutex_lock(p->lock);
  p->obs->progress(&bp, p->obs->data);
  g_mutex_unlock(p->lock);
}

/* A run's warnings as they arise: to the caller's warning function, or
 * else as a note naming the slide. The output phase warns from the writer
 * thread: @lock makes the caller's callback see one warning at a time, as
 * it did before pipelining. */
typedef struct {
  char *name;  /* owned */
  EosinWarningFunc inner;
  void *inner_data;
  EosinNoteFunc note;
  void *note_data;
  GMutex *lock;
} WarnFwd;

static void warn_fwd(const char *msg, void *data) {
  WarnFwd *w = data;
  g_mutex_lock(w->lock);
  if (w->inner) {
    w->inner(msg, w->inner_data);
  } else if (w->note) {
    g_autofree char *text = g_strdup_printf("%s: warning: %s", w->name, msg);
    w->note(EOSIN_NOTE_WARNING, text, w->note_data);
  }
  g_mutex_unlock(w->lock);
}

/* The state of @it's output folder; false with @e set when the slide
 * cannot be identified (missing, not a file). */
static bool item_state(const char *outdir, const char *name, const EosinBatchItem *it,
                       EosinIdentity *id, const EosinRunOptions *opts, EosinOutputState *state,
                       char **why, GError **e) {
  if (!_eosin_identity_slide(it->path, it->mpp, opts ? opts->cancel : NULL, id, e))
    return false;
  g_autofree char *final = g_build_filename(outdir, name, NULL);
  *state = _eosin_output_state(final, id, why);
  return true;
}

/* What @it's output folder allows before any analysis: a name used twice
 * (@names: output name -> slide path), a slide that cannot be identified,
 * a folder Eosin may not replace (or, with @refuse_stale, a stale one) set
 * @row->error; otherwise *@state says what is there (*@why, caller frees,
 * why it is not complete). */
static void item_check(const char *outdir, GHashTable *names, const EosinBatchItem *it,
                       EosinIdentity *id, const EosinRunOptions *opts, bool refuse_stale,
                       Row *row, EosinOutputState *state, char **why) {
  const char *first = g_hash_table_lookup(names, row->name);
  if (first) {
    row->error = g_strdup_printf("output name '%s' is already used by %s", row->name, first);
    return;
  }
  g_hash_table_insert(names, g_strdup(row->name), g_strdup(it->path));
  g_autoptr(GError) e = NULL;
  if (!item_state(outdir, row->name, it, id, opts, state, why, &e))
    row->error = g_strdup(e->message);
  else if (*state == EOSIN_OUTPUT_FOREIGN)
    row->error = g_steal_pointer(why);
  else if ((*state == EOSIN_OUTPUT_STALE || *state == EOSIN_OUTPUT_BROKEN) && refuse_stale)
    row->error = g_strdup_printf("%s/%s holds a result Eosin will not replace "
                                 "(--refuse-stale): %s",
                                 outdir, row->name, *why);
}

/* Whether the analyzer accepts @cfg: a config or model it refuses would
 * fail every slide, so the batch says so once, before the first. */
static bool analyzer_accepts(const EosinConfig *cfg, GError **err) {
  const EosinAnalyzerOps *ops = eosin_analyzer_find(cfg->analyzer);
  void *actx = NULL;
  EosinAnalyzerInfo ai = {0};
  bool ok = ops->init(cfg, &actx, &ai, err);
  if (actx)
    ops->destroy(actx);
  return ok;
}

/*
 * Pipelining. A slide's run has two phases (pipeline.c): the analysis
 * (reading and scoring its tiles: reader threads, the model's threads)
 * and the outputs (stitching, the overlay pyramids painted and compressed
 * on all cores, preview, tiles.csv, verification, report, promotion). The
 * batch writes slide N's outputs on a writer thread while the main thread
 * analyses slide N+1, and waits for them before it starts N+1's: at most
 * one slide's outputs are pending, so the batch holds at most two slides
 * (one being analysed, one being written), each within the memory
 * check_plan allows a slide (half of [scheduler] max_memory_mb for its
 * values and stitched grid).
 *
 * Why this is safe to overlap: the two phases share no mutable state.
 * The analyzer, whose model backend lives in the batch's EosinInferCache
 * (not thread-safe), is released at the end of the analysis, on the main
 * thread; the writer gets a run of its own (slide handle, grid, staging
 * folder .NAME.partial, its own copy of the options). Both see the one
 * EosinCancel, so a stop ends both within a second. The writer's pool
 * (_eosin_parallel_for: plain GThreads per chunk) and OpenMP in the
 * analysis do not wait on each other, so nothing can deadlock; they do
 * share the cores, which is where the gain comes from when the analysis
 * leaves cores idle (waiting on reads, or on a GPU). OpenMP's threads
 * sleep when idle (main.c sets OMP_WAIT_POLICY=PASSIVE), so they do not
 * spin against the writer.
 *
 * Every slide's files are the same either way (--no-pipeline runs the
 * output phase at once, on the main thread); only timings differ. The
 * summary's rows keep the manifest order: a slide's row is a placeholder
 * (status NULL) until its outputs are done, and the summaries are written
 * up to the first placeholder, after each row becomes final.
 */
typedef struct {
  guint row;                /* its row in rows */
  int index;                /* its position in the batch */
  EosinOutputState state;
  double analyse_s;         /* the analysis, with the state check before it */
  EosinRunOptions opts;     /* what the run was given: lives as long as it */
  WarnFwd wf;
  EosinSlideRun *run;       /* the writer's until it returns; then freed */
  GThread *thread;          /* NULL when written on the main thread */
  /* set by the writer */
  bool ok;
  EosinRunResult rr;
  GError *error;
  double write_s;
} Pending;

static void pending_free(Pending *p) {
  g_free(p->wf.name);
  eosin_run_result_clear(&p->rr);
  g_clear_error(&p->error);
  g_free(p);
}

/* The pending run of slide @index (@it): the caller's options with the
 * item's µm/px, the batch's progress (@prog, when @obs wants it) and the
 * warnings forwarded under @lock with the slide's name. Freed by
 * pending_free. */
static Pending *pending_new(const EosinRunOptions *opts, const EosinBatchObserver *obs,
                            const EosinBatchItem *it, int index, EosinOutputState state,
                            Progress *prog, const char *name, GMutex *lock) {
  Pending *p = g_new0(Pending, 1);
  p->index = index;
  p->state = state;
  p->opts = opts ? *opts : (EosinRunOptions){0};
  if (it->mpp > 0)
    p->opts.mpp_override = it->mpp;
  if (obs && obs->progress) {
    p->opts.progress = progress_cb;
    p->opts.progress_data = prog;
  }
  p->wf = (WarnFwd){g_strdup(name), opts ? opts->warning : NULL,
                    opts ? opts->warning_data : NULL, opts ? opts->note : NULL,
                    opts ? opts->note_data : NULL, lock};
  p->opts.warning = warn_fwd;
  p->opts.warning_data = &p->wf;
  return p;
}

static gpointer write_slide(gpointer data) {
  Pending *p = data;
  gint64 t0 = g_get_monotonic_time();
  p->ok = _eosin_slide_write(g_steal_pointer(&p->run), &p->rr, &p->error);
  p->write_s = (g_get_monotonic_time() - t0) / 1e6;
  return NULL;
}

/* The batch's state between slides. */
typedef struct {
  const char *outdir;
  const EosinConfig *cfg;
  const EosinBatchObserver *obs;  /* may be NULL */
  GArray *rows;             /* Row, in manifest order */
  Progress *prog;
  EosinBatchResult *res;
} Batch;

/* OUTDIR's summaries, up to the first row whose slide is still being written. */
static bool write_summaries(Batch *b, GError **err) {
  guint n = 0;
  while (n < b->rows->len && g_array_index(b->rows, Row, n).status)
    n++;
  g_autoptr(GArray) done = g_array_sized_new(FALSE, FALSE, sizeof(Row), n);
  g_array_append_vals(done, b->rows->data, n); /* borrowed rows: no clear func */
  return write_summary(b->outdir, done, err) &&
         (!b->cfg->lesions.present || write_camelyon_slides(b->outdir, done, err));
}

/* A row now final: the observer's slide_done, and the summaries. */
static bool row_final(Batch *b, guint i, int index, GError **err) {
  Row *row = &g_array_index(b->rows, Row, i);
  b->prog->slides_done++;
  if (b->obs && b->obs->slide_done) {
    g_mutex_lock(b->prog->lock);
    b->obs->slide_done(index, b->res->total, row->name, row->status, b->obs->data);
    g_mutex_unlock(b->prog->lock);
  }
  return write_summaries(b, err);
}

/* Waits for @p's outputs and makes its row final; a slide stopped by a
 * cancel takes its row and every row after it away (as a sequential
 * batch, stopped there, would never have looked at them) and marks the
 * batch interrupted. Frees @p. */
static bool settle(Batch *b, Pending *p, GError **err) {
  if (p->thread)
    g_thread_join(p->thread);
  Row *row = &g_array_index(b->rows, Row, p->row);
  if (!p->ok && g_error_matches(p->error, EOSIN_ERROR, EOSIN_ERROR_CANCELLED)) {
    g_array_set_size(b->rows, p->row);
    b->res->interrupted = true;
    pending_free(p);
    return write_summaries(b, err);
  }
  row->seconds = p->analyse_s + p->write_s;
  if (p->ok) {
    row->status = g_strdup(p->state == EOSIN_OUTPUT_ABSENT ? "done" : "done-replaced");
    row->tiles = p->rr.tiles_analyzed;
    row->tiles_per_s = p->rr.tiles_per_s;
    row->probability = scores_probability(p->rr.scores);
    row->qc = report_qc(b->outdir, row->name);
  } else {
    row->status = g_strdup("failed");
    row->error = g_strdup(p->error->message);
    if (g_error_matches(p->error, EOSIN_ERROR, EOSIN_ERROR_QC))
      row->qc = g_strdup("fail");
    note(b->prog, EOSIN_NOTE_ERROR, "%s", p->error->message);
  }
  int index = p->index;
  guint i = p->row;
  pending_free(p);
  return row_final(b, i, index, err);
}

/* The counts of @res from the final rows (a cancel may have taken rows
 * back, so they are counted once, at the end). */
static void count_rows(GArray *rows, EosinBatchResult *res) {
  res->done = res->skipped = res->failed = 0;
  for (guint i = 0; i < rows->len; i++) {
    const char *st = g_array_index(rows, Row, i).status;
    if (!strcmp(st, "done") || !strcmp(st, "done-replaced"))
      res->done++;
    else if (!strcmp(st, "skipped-complete"))
      res->skipped++;
    else
      res->failed++;
  }
}

bool eosin_batch_run(const EosinConfig *cfg, GPtrArray *items, const char *outdir,
                     const EosinRunOptions *opts, const EosinBatchObserver *obs,
                     bool refuse_stale, bool pipeline, EosinBatchResult *res, GError **err) {
  memset(res, 0, sizeof *res);
  res->total = items->len;
  if (!_eosin_prepare_outdir(outdir, err))
    return false;
  /* one process per OUTDIR for the whole batch */
  g_autoptr(EosinLock) lock = _eosin_lock_outdir(outdir, err);
  if (!lock)
    return false;
  /* a batch killed while it wrote its summary left a temporary file */
  static const char *const BATCH_FILES[] = EOSIN_BATCH_FILES;
  _eosin_outdir_remove_stale_temps(outdir, BATCH_FILES);
  g_auto(EosinIdentity) id = {0};
  if (!_eosin_identity_config(cfg, &id, err))
    return false;
  /* the slides share one setup of each model's backend (and learn once
   * that a GPU is lost): a shallow copy of the config carries the cache,
   * released after the last slide */
  g_autoptr(EosinInferCache) cache = eosin_infer_cache_new();
  EosinConfig with_cache = *cfg;
  with_cache.model.cache = cache;
  cfg = &with_cache;
  if (!analyzer_accepts(cfg, err))
    return false;
  bool ok = true;
  g_autoptr(GArray) rows = g_array_new(FALSE, TRUE, sizeof(Row));
  g_array_set_clear_func(rows, row_clear);
  g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  GMutex out_lock;
  g_mutex_init(&out_lock);
  Progress prog = {.total = items->len, .batch_start = g_get_monotonic_time(), .obs = obs,
                   .opts = opts, .lock = &out_lock};
  Batch b = {outdir, cfg, obs, rows, &prog, res};
  Pending *pending = NULL; /* the slide whose outputs the writer is writing */

  for (guint i = 0; ok && i < items->len; i++) {
    EosinBatchItem *it = items->pdata[i];
    if (opts && opts->cancel && g_atomic_int_get(&opts->cancel->cancelled)) {
      res->interrupted = true;
      break;
    }
    Row row = {.path = g_strdup(it->path), .name = eosin_slide_name_from_path(it->path),
               .probability = NAN};
    gint64 t0 = g_get_monotonic_time();
    EosinOutputState state = EOSIN_OUTPUT_ABSENT;
    g_autofree char *why = NULL;
    g_autoptr(GError) e = NULL;
    item_check(outdir, names, it, &id, opts, refuse_stale, &row, &state, &why);
    if (row.error || state == EOSIN_OUTPUT_COMPLETE) {
      if (row.error) {
        row.status = g_strdup("failed");
        note(&prog, EOSIN_NOTE_ERROR, "%s", row.error);
      } else {
        row.status = g_strdup("skipped-complete");
        row.probability = report_probability(outdir, row.name);
        row.qc = report_qc(outdir, row.name);
      }
      row.seconds = (g_get_monotonic_time() - t0) / 1e6;
      g_array_append_val(rows, row);
      ok = row_final(&b, rows->len - 1, i, err);
      continue;
    }
    if (state == EOSIN_OUTPUT_STALE || state == EOSIN_OUTPUT_BROKEN)
      note(&prog, EOSIN_NOTE_INFO, "%s: recomputing %s/%s: %s", row.name, outdir, row.name, why);
    prog.index = i, prog.name = row.name, prog.last_print = 0;
    Pending *p = pending_new(opts, obs, it, i, state, &prog, row.name, &out_lock);
    /* the analysis, while the writer thread writes the previous slide */
    EosinRunResult failed_rr;
    p->run = _eosin_slide_analyse(cfg, it->path, outdir, &p->opts, &id, &failed_rr, &e);
    eosin_run_result_clear(&failed_rr);
    p->analyse_s = (g_get_monotonic_time() - t0) / 1e6;
    /* one slide's outputs pending at most: the previous slide's are
     * finished (and its row final) before this one's begin */
    if (pending)
      ok = settle(&b, g_steal_pointer(&pending), err);
    if (!ok || res->interrupted) {
      /* the summary could not be written, or the previous slide's outputs
       * were stopped: a sequential batch would not have analysed this one */
      row_clear(&row);
      _eosin_slide_discard(g_steal_pointer(&p->run));
      pending_free(p);
      break;
    }
    if (!p->run) {
      if (g_error_matches(e, EOSIN_ERROR, EOSIN_ERROR_CANCELLED)) {
        row_clear(&row);
        pending_free(p);
        res->interrupted = true;
        break;
      }
      row.status = g_strdup("failed");
      row.error = g_strdup(e->message);
      if (g_error_matches(e, EOSIN_ERROR, EOSIN_ERROR_QC))
        row.qc = g_strdup("fail");
      row.seconds = p->analyse_s;
      pending_free(p);
      note(&prog, EOSIN_NOTE_ERROR, "%s", e->message);
      g_array_append_val(rows, row);
      ok = row_final(&b, rows->len - 1, i, err);
      continue;
    }
    g_array_append_val(rows, row); /* status NULL until its outputs are done */
    p->row = rows->len - 1;
    /* a thread that cannot start (out of threads) costs only the overlap */
    if (pipeline && (p->thread = g_thread_try_new("eosin-writer", write_slide, p, NULL))) {
      pending = p;
    } else {
      write_slide(p);
      ok = settle(&b, p, err);
    }
  }
  if (pending && !settle(&b, g_steal_pointer(&pending), ok ? err : NULL))
    ok = false;
  g_mutex_clear(&out_lock);
  count_rows(rows, res);
  return ok && write_summaries(&b, err);
}
