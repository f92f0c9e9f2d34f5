/*
 * batch.c — a night's queue of slides (from a manifest or a folder,
 * manifest.c): one output folder per slide, finished slides skipped on rerun, failures
 * recorded in batch-summary.csv without stopping the others, progress, ETA
 * and notes through the caller's observer and note function (the library
 * never prints), and a clean stop on SIGINT/SIGTERM (via EosinCancel).
 * With a [lesions] group it also keeps camelyon-slides.csv, the slide-level
 * probabilities of all finished slides.
 *
 * A batch process is one worker of OUTDIR's batch (batch-state.c): it
 * claims each slide (claim.c) before looking at it, so any number of
 * workers — a Slurm array, one per GPU, a rerun beside a running batch —
 * share one OUTDIR and every slide is settled by exactly one of them.
 */
#include "report/report.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>

typedef EosinBatchRow Row;

static void row_clear(gpointer p) {
  _eosin_batch_row_clear(p);
}

/* scores.lesions.slide_probability from a slide's scores object, or NaN
 * (a config without [lesions]). */
static double scores_probability(JsonNode *scores) {
  return _eosin_json_number_at(
      scores && JSON_NODE_HOLDS_OBJECT(scores) ? json_node_get_object(scores) : NULL,
      "lesions.slide_probability");
}

/* The row's headline from a slide's scores: the score it is known by,
 * what that is, its category (index.html shows them; report/html.c says
 * which for each task). */
static void row_headline(Row *row, JsonNode *scores) {
  double v;
  const char *label, *category;
  _eosin_report_headline(scores && JSON_NODE_HOLDS_OBJECT(scores) ? json_node_get_object(scores)
                                                                  : NULL,
                         &v, &label, &category);
  row->score = v;
  row->score_label = g_strdup(label);
  row->category = g_strdup(category);
}

/* What a finished slide's report.json says for its row (one read): the
 * slide probability (NaN without [lesions]; @probability may be NULL),
 * qc.verdict (*@qc, caller frees; NULL when absent) and, with @headline,
 * the row's headline. */
static void report_facts(const char *outdir, Row *row, double *probability, char **qc,
                         bool headline) {
  g_autofree char *path = g_build_filename(outdir, row->name, "report.json", NULL);
  g_autoptr(JsonNode) root = _eosin_read_json_file(path, "report", EOSIN_REPORT_MAX_BYTES,
                                                   EOSIN_REPORT_MAX_DEPTH, NULL);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  JsonNode *scores = o ? json_object_get_member(o, "scores") : NULL;
  if (probability)
    *probability = scores_probability(scores);
  if (headline)
    row_headline(row, scores);
  *qc = g_strdup(_eosin_json_string_at(o, "qc.verdict"));
}

/* The state of @it's output folder; false with @e set when the slide
 * cannot be identified (missing, not a file). */
static bool item_state(const char *outdir, const char *name, const EosinBatchItem *it,
                       EosinIdentity *id, const EosinCancel *cancel, EosinOutputState *state,
                       char **why, GError **e) {
  if (!_eosin_identity_slide(it->path, it->mpp, cancel, id, e))
    return false;
  g_autofree char *final = g_build_filename(outdir, name, NULL);
  *state = _eosin_output_state(final, id, why);
  return true;
}

/* What @it's output folder allows before any analysis: a slide that
 * cannot be identified, a folder Eosin may not replace (or, with
 * @refuse_stale, a stale one) set @row->error; otherwise *@state says what
 * is there (*@why, caller frees, why it is not complete). */
static void item_check(const char *outdir, const EosinBatchItem *it, EosinIdentity *id,
                       const EosinCancel *cancel, bool refuse_stale, Row *row,
                       EosinOutputState *state, char **why) {
  g_autoptr(GError) e = NULL;
  if (!item_state(outdir, row->name, it, id, cancel, state, why, &e))
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
 * output phase at once, on the main thread); only timings differ. A
 * slide's row is written when its outputs are done (batch-state.c keeps
 * the summaries in manifest order), and its claim is held until then.
 */
typedef struct {
  guint index;              /* the slide's place in the manifest */
  int pos;                  /* its place in this worker's share */
  Row row;                  /* its row, final once the outputs are done */
  EosinClaim *claim;        /* held until the row is written */
  EosinClaimKeeper *keeper; /* beats the claim's heartbeat meanwhile */
  gint64 *shared_us;        /* the batch's bookkeeping time (Batch.shared_us) */
  EosinOutputState state;
  double analyse_s;         /* the analysis, with the state check before it */
  EosinRunOptions opts;     /* what the run was given: lives as long as it */
  EosinBatchWarnFwd wf;
  EosinSlideRun *run;       /* the writer's until it returns; then freed */
  GThread *thread;          /* NULL when written on the main thread */
  /* set by the writer */
  bool ok;
  EosinRunResult rr;
  GError *error;
  double write_s;
} Pending;

static void pending_free(Pending *p) {
  _eosin_claim_keeper_stop(p->keeper);
  gint64 t0 = g_get_monotonic_time();
  _eosin_claim_release(p->claim);
  *p->shared_us += g_get_monotonic_time() - t0;
  row_clear(&p->row);
  g_free(p->wf.name);
  eosin_run_result_clear(&p->rr);
  g_clear_error(&p->error);
  g_free(p);
}

/* The fence before a result is placed: the slide is still ours. An I/O
 * error beating the heartbeat is not a loss (the next beat retries). */
static bool still_ours(void *data, GError **err) {
  Pending *p = data;
  g_autoptr(GError) e = NULL;
  if (!_eosin_claim_heartbeat(p->claim, &e) && g_error_matches(e, EOSIN_ERROR, EOSIN_ERROR_BUSY)) {
    g_propagate_error(err, g_steal_pointer(&e));
    return false;
  }
  return true;
}

/* The pending run of slide @it: the caller's options with the item's
 * µm/px, @cancel, the batch's progress (@prog, when @obs wants it), the
 * warnings forwarded under @lock with the slide's name and the claim's
 * fence. Takes @row and @claim. Freed by pending_free. */
static Pending *pending_new(const EosinRunOptions *opts, EosinCancel *cancel,
                            const EosinBatchObserver *obs, const EosinBatchItem *it,
                            EosinOutputState state, EosinBatchProgressState *prog, Row *row, EosinClaim *claim,
                            GMutex *lock) {
  Pending *p = g_new0(Pending, 1);
  p->state = state;
  p->row = *row;
  *row = (Row){0};
  p->claim = claim;
  p->opts = opts ? *opts : (EosinRunOptions){0};
  p->opts.cancel = cancel;
  if (it->mpp > 0)
    p->opts.mpp_override = it->mpp;
  if (obs && obs->progress) {
    p->opts.progress = _eosin_batch_progress_cb;
    p->opts.progress_data = prog;
  }
  p->wf = (EosinBatchWarnFwd){g_strdup(p->row.name), opts ? opts->warning : NULL,
                    opts ? opts->warning_data : NULL, opts ? opts->note : NULL,
                    opts ? opts->note_data : NULL, lock};
  p->opts.warning = _eosin_batch_warn_fwd;
  p->opts.warning_data = &p->wf;
  p->opts.fence = still_ours;
  p->opts.fence_data = p;
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
  GPtrArray *items;               /* the whole manifest */
  const EosinRunOptions *opts;    /* may be NULL */
  const EosinBatchObserver *obs;  /* may be NULL */
  const EosinBatchOptions *bo;
  EosinBatchState *st;
  EosinCancel *cancel;            /* the caller's, or the batch's own */
  EosinIdentity *id;              /* the config's part, each slide's filled in turn */
  EosinBatchProgressState *prog;
  GMutex *out_lock;
  EosinBatchResult *res;
  char *lost;                     /* a slide taken over from this worker (owned) */
  gint64 shared_us;               /* in claims, rows and summaries: what sharing costs */
} Batch;

/* The bookkeeping of sharing OUTDIR, timed (res->shared_s says what it
 * costs; docs/SCALING.md has it per slide). */
static bool settled(Batch *b, guint index) {
  gint64 t0 = g_get_monotonic_time();
  bool r = _eosin_batch_settled(b->st, index, NULL);
  b->shared_us += g_get_monotonic_time() - t0;
  return r;
}

static EosinClaim *claim(Batch *b, const char *name, char **holder, GError **err) {
  gint64 t0 = g_get_monotonic_time();
  EosinClaim *c = _eosin_claim_take(b->outdir, name, b->bo->stale_s, holder, err);
  b->shared_us += g_get_monotonic_time() - t0;
  return c;
}

static void unclaim(Batch *b, EosinClaim *c) {
  gint64 t0 = g_get_monotonic_time();
  _eosin_claim_release(c);
  b->shared_us += g_get_monotonic_time() - t0;
}

/* A row now final: written as this batch's (its slide's claim, if any,
 * still held), counted, the observer told, the summaries merged. Clears
 * @row. */
static bool row_final(Batch *b, guint index, int pos, Row *row, GError **err) {
  gint64 t0 = g_get_monotonic_time();
  bool ok = _eosin_batch_put_row(b->st, index, row, err);
  b->shared_us += g_get_monotonic_time() - t0;
  const char *st = row->status;
  if (!strcmp(st, "done") || !strcmp(st, "done-replaced"))
    b->res->done++;
  else if (!strcmp(st, "skipped-complete"))
    b->res->skipped++;
  else
    b->res->failed++;
  b->prog->slides_done++;
  if (b->obs && b->obs->slide_done) {
    g_mutex_lock(b->prog->lock);
    b->obs->slide_done(pos, b->res->total, row->name, row->status, b->obs->data);
    g_mutex_unlock(b->prog->lock);
  }
  row_clear(row);
  t0 = g_get_monotonic_time();
  ok = ok && _eosin_batch_merge(b->st, false, NULL, NULL, err);
  b->shared_us += g_get_monotonic_time() - t0;
  return ok;
}

/* Waits for @p's outputs and makes its row final. A slide stopped by a
 * cancel gets no row (as a sequential batch stopped there would not) and
 * marks the batch interrupted; so does one another worker took over
 * (this one was taken for dead), which that worker redoes. Frees @p,
 * releasing its claim. */
static bool settle(Batch *b, Pending *p, GError **err) {
  if (p->thread)
    g_thread_join(p->thread);
  _eosin_claim_keeper_stop(g_steal_pointer(&p->keeper));
  g_autoptr(GError) lost = NULL;
  if (!p->ok && !_eosin_claim_heartbeat(p->claim, &lost) &&
      g_error_matches(lost, EOSIN_ERROR, EOSIN_ERROR_BUSY)) {
    if (!b->lost)
      b->lost = g_strdup(p->row.name);
    g_atomic_int_set(&b->cancel->cancelled, 1);
    b->res->interrupted = true;
    pending_free(p);
    return true;
  }
  if (!p->ok && g_error_matches(p->error, EOSIN_ERROR, EOSIN_ERROR_CANCELLED)) {
    b->res->interrupted = true;
    pending_free(p);
    return true;
  }
  Row *row = &p->row;
  row->seconds = p->analyse_s + p->write_s;
  if (p->ok) {
    row->status = g_strdup(p->state == EOSIN_OUTPUT_ABSENT ? "done" : "done-replaced");
    row->tiles = p->rr.tiles_analyzed;
    row->tiles_per_s = p->rr.tiles_per_s;
    row->probability = scores_probability(p->rr.scores);
    row_headline(row, p->rr.scores);
    report_facts(b->outdir, row, NULL, &row->qc, false);
  } else {
    row->status = g_strdup("failed");
    row->error = g_strdup(p->error->message);
    if (g_error_matches(p->error, EOSIN_ERROR, EOSIN_ERROR_QC))
      row->qc = g_strdup("fail");
    _eosin_batch_note(b->prog, EOSIN_NOTE_ERROR, "%s", p->error->message);
  }
  bool ok = row_final(b, p->index, p->pos, row, err);
  pending_free(p);
  return ok;
}

/* Slide @index of the manifest, place @pos of this worker's share: left
 * to another worker when settled in this batch or claimed by a live one
 * (@busy, when given, collects the claimed ones for a second look; else
 * they are counted elsewhere), otherwise claimed, checked and analysed,
 * its outputs written on the writer thread (*@pending) or at once. False
 * only when the batch must stop (@err set). */
static bool visit(Batch *b, guint index, int pos, Pending **pending, GArray *busy, bool pipeline,
                  GError **err) {
  EosinBatchItem *it = b->items->pdata[index];
  EosinBatchResult *res = b->res;
  if (settled(b, index)) {
    res->elsewhere++;
    return true;
  }
  g_auto(EosinBatchRow) row = {.path = g_strdup(it->path), .name = eosin_slide_name_from_path(it->path),
                     .probability = NAN, .score = NAN};
  gint64 t0 = g_get_monotonic_time();
  guint first = _eosin_batch_first_named(b->st, index);
  if (first != index) {
    /* checked on the whole manifest, so shards agree on which one fails */
    const EosinBatchItem *f = b->items->pdata[first];
    row.status = g_strdup("failed");
    row.error = g_strdup_printf("output name '%s' is already used by %s", row.name, f->path);
    _eosin_batch_note(b->prog, EOSIN_NOTE_ERROR, "%s", row.error);
    return row_final(b, index, pos, &row, err);
  }
  g_autofree char *holder = NULL;
  g_autoptr(GError) e = NULL;
  EosinClaim *mine = claim(b, row.name, &holder, &e);
  if (!mine) {
    if (!holder) {
      g_propagate_error(err, g_steal_pointer(&e));
      return false;
    }
    if (busy)
      g_array_append_val(busy, index);
    else
      res->elsewhere++;
    return true;
  }
  /* settled by its holder between the look above and the claim */
  if (settled(b, index)) {
    unclaim(b, mine);
    res->elsewhere++;
    return true;
  }
  EosinOutputState state = EOSIN_OUTPUT_ABSENT;
  g_autofree char *why = NULL;
  item_check(b->outdir, it, b->id, b->cancel, b->bo->refuse_stale, &row, &state, &why);
  if (row.error || state == EOSIN_OUTPUT_COMPLETE) {
    if (row.error) {
      row.status = g_strdup("failed");
      _eosin_batch_note(b->prog, EOSIN_NOTE_ERROR, "%s", row.error);
    } else {
      row.status = g_strdup("skipped-complete");
      report_facts(b->outdir, &row, &row.probability, &row.qc, true);
    }
    row.seconds = (g_get_monotonic_time() - t0) / 1e6;
    bool ok = row_final(b, index, pos, &row, err);
    unclaim(b, mine);
    return ok;
  }
  if (state == EOSIN_OUTPUT_STALE || state == EOSIN_OUTPUT_BROKEN)
    _eosin_batch_note(b->prog, EOSIN_NOTE_INFO, "%s: recomputing %s/%s: %s", row.name, b->outdir, row.name,
         why);
  b->prog->index = pos, b->prog->name = it->path, b->prog->last_print = 0;
  b->prog->counted = false;
  Pending *p = pending_new(b->opts, b->cancel, b->obs, it, state, b->prog, &row, mine,
                           b->out_lock);
  p->shared_us = &b->shared_us;
  p->index = index;
  p->pos = pos;
  b->prog->name = p->row.name;
  double beat = (b->bo->stale_s > 0 ? b->bo->stale_s : EOSIN_CLAIM_STALE_S) / 4;
  p->keeper = _eosin_claim_keep(p->claim, beat, b->cancel);
  /* the analysis, while the writer thread writes the previous slide */
  EosinRunResult failed_rr;
  p->run = _eosin_slide_analyse(b->cfg, it->path, b->outdir, &p->opts, b->id, &failed_rr, &e);
  eosin_run_result_clear(&failed_rr);
  p->analyse_s = (g_get_monotonic_time() - t0) / 1e6;
  /* one slide's outputs pending at most: the previous slide's are
   * finished (and its row final) before this one's begin */
  bool ok = true;
  if (*pending)
    ok = settle(b, g_steal_pointer(pending), err);
  if (!ok || res->interrupted) {
    /* the summary could not be written, or the previous slide's outputs
     * were stopped: a sequential batch would not have analysed this one */
    _eosin_slide_discard(g_steal_pointer(&p->run));
    pending_free(p);
    return ok;
  }
  if (!p->run) {
    _eosin_claim_keeper_stop(g_steal_pointer(&p->keeper));
    g_autoptr(GError) lost = NULL;
    if (g_error_matches(e, EOSIN_ERROR, EOSIN_ERROR_CANCELLED)) {
      if (!_eosin_claim_heartbeat(p->claim, &lost) &&
          g_error_matches(lost, EOSIN_ERROR, EOSIN_ERROR_BUSY) && !b->lost)
        b->lost = g_strdup(p->row.name);
      pending_free(p);
      res->interrupted = true;
      return true;
    }
    p->row.status = g_strdup("failed");
    p->row.error = g_strdup(e->message);
    if (g_error_matches(e, EOSIN_ERROR, EOSIN_ERROR_QC))
      p->row.qc = g_strdup("fail");
    p->row.seconds = p->analyse_s;
    _eosin_batch_note(b->prog, EOSIN_NOTE_ERROR, "%s", e->message);
    ok = row_final(b, index, pos, &p->row, err);
    pending_free(p);
    return ok;
  }
  /* a thread that cannot start (out of threads) costs only the overlap */
  if (pipeline && (p->thread = g_thread_try_new("eosin-writer", write_slide, p, NULL))) {
    *pending = p;
    return true;
  }
  write_slide(p);
  return settle(b, p, err);
}

bool eosin_batch_run(const EosinConfig *cfg, GPtrArray *items, const char *outdir,
                     const EosinRunOptions *opts, const EosinBatchObserver *obs,
                     const EosinBatchOptions *bo, EosinBatchResult *res, GError **err) {
  static const EosinBatchOptions defaults = {.pipeline = true};
  if (!bo)
    bo = &defaults;
  memset(res, 0, sizeof *res);
  if (!_eosin_prepare_outdir(outdir, err))
    return false;
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
  EosinCancel own = {0};
  EosinCancel *cancel = opts && opts->cancel ? opts->cancel : &own;
  GMutex out_lock;
  g_mutex_init(&out_lock);
  EosinBatchProgressState prog = {.total = res->total, .batch_start = g_get_monotonic_time(), .obs = obs,
                   .opts = opts, .lock = &out_lock};
  EosinBatchJoin join = {bo->batch_id, cfg->lesions.present, bo->stale_s, cancel};
  g_autofree char *joined = NULL;
  gint64 t_start = g_get_monotonic_time();
  g_autoptr(EosinBatchState) st = _eosin_batch_join(outdir, items, &join, &joined, err);
  gint64 join_us = g_get_monotonic_time() - t_start;
  if (!st) {
    g_mutex_clear(&out_lock);
    return false;
  }
  if (joined)
    _eosin_batch_note(&prog, EOSIN_NOTE_INFO, "%s", joined);
  /* the batch's order (this worker's list may be in another), then this
   * worker's shard of it (by path: the same whatever the order) */
  _eosin_batch_align(st, items);
  g_autoptr(GArray) share = _eosin_shard_indices(items, bo->shard_k, bo->shard_n);
  res->total = prog.total = (int) share->len;
  Batch b = {outdir, cfg, items, opts, obs, bo, st, cancel, &id, &prog, &out_lock, res, NULL,
             join_us};
  Pending *pending = NULL; /* the slide whose outputs the writer is writing */
  g_autoptr(GArray) busy = g_array_new(FALSE, FALSE, sizeof(guint));
  bool ok = true;
  for (guint i = 0; ok && i < share->len; i++) {
    if (g_atomic_int_get(&cancel->cancelled)) {
      res->interrupted = true;
      break;
    }
    ok = visit(&b, g_array_index(share, guint, i), (int) i, &pending, busy, bo->pipeline, err);
    if (res->interrupted)
      break;
  }
  /* a second look at the slides another worker held: a holder that died
   * meanwhile (killed, its node lost) left them to whoever comes by */
  for (guint i = 0; ok && !res->interrupted && i < busy->len; i++) {
    if (g_atomic_int_get(&cancel->cancelled)) {
      res->interrupted = true;
      break;
    }
    ok = visit(&b, g_array_index(busy, guint, i), (int) i, &pending, NULL, bo->pipeline, err);
  }
  if (pending && !settle(&b, g_steal_pointer(&pending), ok ? err : NULL))
    ok = false;
  if (b.lost)
    _eosin_batch_note(&prog, EOSIN_NOTE_ERROR,
         "%s: another worker took this slide over (this one was taken for dead: no heartbeat "
         "for %.0f s); this worker stops and leaves its slides to the others",
         b.lost, bo->stale_s > 0 ? bo->stale_s : EOSIN_CLAIM_STALE_S);
  g_free(b.lost);
  g_mutex_clear(&out_lock);
  /* the summaries as the batch's last worker leaves them, whatever stopped it */
  gint64 t_merge = g_get_monotonic_time();
  ok = _eosin_batch_finish(st, ok ? err : NULL) && ok;
  gint64 t_end = g_get_monotonic_time();
  res->shared_s = (b.shared_us + (t_end - t_merge)) / 1e6;
  res->seconds = (t_end - t_start) / 1e6;
  return ok;
}

bool eosin_batch_merge(const char *outdir, EosinBatchSurvey *survey, GError **err) {
  g_autoptr(EosinBatchState) st = _eosin_batch_open(outdir, 0, err);
  if (!st || !_eosin_batch_merge(st, true, NULL, NULL, err))
    return false;
  return !survey || _eosin_batch_survey(st, survey, err);
}
