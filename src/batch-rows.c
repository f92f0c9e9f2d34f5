/*
 * batch-rows.c — the rows of a batch (OUTDIR/.eosin-batch/rows/<i>.json,
 * one per slide, written by the worker holding the slide's claim), the
 * summaries merged from them (batch-summary.csv, camelyon-slides.csv) and
 * the survey `eosin slurm status` prints. batch-state.c says why rows are
 * files of their own.
 */
#include "batch-state-private.h"
#include "report/report.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ROW_MAX_BYTES (1 << 20)

void _eosin_batch_row_clear(EosinBatchRow *r) {
  g_clear_pointer(&r->path, g_free);
  g_clear_pointer(&r->name, g_free);
  g_clear_pointer(&r->status, g_free);
  g_clear_pointer(&r->error, g_free);
  g_clear_pointer(&r->qc, g_free);
  g_clear_pointer(&r->score_label, g_free);
  g_clear_pointer(&r->category, g_free);
}

static char *row_path(const EosinBatchState *st, guint index) {
  g_autofree char *base = g_strdup_printf("%u.json", index);
  return g_build_filename(st->rows, base, NULL);
}

/* Slide @index's row of this batch into @row (cleared first); false when
 * it has none (not settled yet, or a row of an earlier batch). */
static bool read_row(const EosinBatchState *st, guint index, EosinBatchRow *row) {
  g_autofree char *path = row_path(st, index);
  if (!g_file_test(path, G_FILE_TEST_EXISTS))
    return false;
  g_autoptr(JsonNode) root = _eosin_read_json_file(path, "batch row", ROW_MAX_BYTES, 4, NULL);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  const char *batch = _eosin_json_string_at(o, "batch"), *status = _eosin_json_string_at(o, "status");
  if (!batch || strcmp(batch, st->id) || !status)
    return false;
  row->path = g_strdup(_eosin_json_string_at(o, "path"));
  row->name = g_strdup(_eosin_json_string_at(o, "name"));
  row->status = g_strdup(status);
  row->error = g_strdup(_eosin_json_string_at(o, "error"));
  row->qc = g_strdup(_eosin_json_string_at(o, "qc"));
  row->seconds = _eosin_json_number_at(o, "seconds");
  row->tiles = (int) _eosin_json_number_at(o, "tiles");
  row->tiles_per_s = _eosin_json_number_at(o, "tiles_per_s");
  row->probability = _eosin_json_number_at(o, "probability");
  row->score = _eosin_json_number_at(o, "score");
  row->score_label = g_strdup(_eosin_json_string_at(o, "score_label"));
  row->category = g_strdup(_eosin_json_string_at(o, "category"));
  return true;
}

bool _eosin_batch_settled(const EosinBatchState *st, guint index, char **status) {
  EosinBatchRow row = {0};
  bool got = read_row(st, index, &row);
  if (status)
    *status = got ? g_steal_pointer(&row.status) : NULL;
  _eosin_batch_row_clear(&row);
  return got;
}

static void member_str(JsonBuilder *b, const char *key, const char *v) {
  json_builder_set_member_name(b, key);
  if (v)
    json_builder_add_string_value(b, v);
  else
    json_builder_add_null_value(b);
}

static void member_num(JsonBuilder *b, const char *key, double v) {
  json_builder_set_member_name(b, key);
  if (isfinite(v))
    json_builder_add_double_value(b, v);
  else
    json_builder_add_null_value(b);
}

bool _eosin_batch_put_row(const EosinBatchState *st, guint index, const EosinBatchRow *row,
                          GError **err) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  member_str(b, "batch", st->id);
  g_autofree char *worker = g_strdup_printf("%s pid %ld", g_get_host_name(), (long) getpid());
  member_str(b, "worker", worker);
  member_str(b, "path", row->path);
  member_str(b, "name", row->name);
  member_str(b, "status", row->status);
  member_num(b, "seconds", row->seconds);
  member_num(b, "tiles", row->tiles);
  member_num(b, "tiles_per_s", row->tiles_per_s);
  member_str(b, "error", row->error);
  member_str(b, "qc", row->qc);
  member_num(b, "probability", row->probability);
  member_num(b, "score", row->score);
  member_str(b, "score_label", row->score_label);
  member_str(b, "category", row->category);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  g_autofree char *path = row_path(st, index);
  return _eosin_write_json(path, root, err);
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

static void summary_line(GString *s, const EosinBatchRow *r) {
  csv_field(s, r->path);
  g_string_append_c(s, ',');
  csv_field(s, r->name);
  g_string_append_printf(s, ",%s,%.2f,%d,%.1f,", r->status, isfinite(r->seconds) ? r->seconds : 0,
                         r->tiles, isfinite(r->tiles_per_s) ? r->tiles_per_s : 0);
  csv_field(s, r->error);
  g_string_append_c(s, ',');
  csv_field(s, r->qc);
  g_string_append_c(s, '\n');
}

bool _eosin_batch_merge(EosinBatchState *st, bool force, const EosinCancel *cancel,
                        int *rows_out, GError **err) {
  gint64 t0 = g_get_monotonic_time();
  if (!force && t0 < st->next_merge)
    return true;
  g_autoptr(EosinClaim) lock = _eosin_claim_wait(st->dir, "merge", st->stale_s, cancel, err);
  if (!lock)
    return false;
  /* holding the merge claim proves no worker is writing the summaries: a
   * temporary file of theirs is a killed merge's */
  static const char *const BATCH_FILES[] = EOSIN_BATCH_FILES;
  _eosin_outdir_remove_stale_temps(st->outdir, BATCH_FILES);
  g_autoptr(GString) sum = g_string_new("slide,name,status,seconds,tiles,tiles_per_s,error,qc\n");
  g_autoptr(GString) cam = g_string_new("name,probability\n");
  int n = 0;
  g_autoptr(GArray) rows = g_array_new(FALSE, TRUE, sizeof(EosinBatchRow));
  g_array_set_clear_func(rows, (GDestroyNotify) _eosin_batch_row_clear);
  for (guint i = 0; i < st->paths->len; i++) {
    EosinBatchRow r = {0};
    if (!read_row(st, i, &r))
      continue;
    n++;
    summary_line(sum, &r);
    /* failed slides are left out rather than given a made-up probability */
    if (isfinite(r.probability)) {
      _eosin_csv_append_field(cam, r.name);
      g_string_append_printf(cam, ",%.6f\n", r.probability);
    }
    g_array_append_val(rows, r); /* index.html's, freed with the array */
  }
  g_autofree char *sp = g_build_filename(st->outdir, "batch-summary.csv", NULL);
  g_autofree char *cp = g_build_filename(st->outdir, "camelyon-slides.csv", NULL);
  if (!_eosin_write_atomic(sp, sum->str, sum->len, err) ||
      (st->camelyon && !_eosin_write_atomic(cp, cam->str, cam->len, err)) ||
      !_eosin_report_index(st->outdir, st->id, (const EosinBatchRow *) rows->data, rows->len,
                           st->paths->len, st->camelyon, err))
    return false;
  if (rows_out)
    *rows_out = n;
  gint64 t1 = g_get_monotonic_time();
  /* at most once a second, and 50x the merge's cost apart per worker of
   * the batch (a 100,000-slide batch's merge reads 100,000 rows; with 800
   * workers the shared storage serves one merge at a time, not 800): the
   * summaries trail the rows while the batch runs; the last worker out
   * merges (_eosin_batch_finish) */
  st->next_merge = t1 + MAX(G_USEC_PER_SEC, 50 * (t1 - t0) * MAX(1, st->peers));
  return true;
}

bool _eosin_batch_survey(EosinBatchState *st, EosinBatchSurvey *sv, GError **err) {
  memset(sv, 0, sizeof *sv);
  sv->slides = (int) st->paths->len;
  sv->id = g_strdup(st->id);
  sv->lines = g_ptr_array_new_with_free_func(g_free);
  sv->workers = _eosin_batch_live_workers(st);
  for (guint i = 0; i < st->paths->len; i++) {
    EosinBatchRow r = {0};
    const char *name = st->names->pdata[i];
    g_autofree char *who = NULL;
    char *line;
    if (read_row(st, i, &r)) {
      bool failed = !strcmp(r.status, "failed");
      failed ? sv->failed++ : sv->done++;
      line = g_strdup_printf("%s\t%s\t%s%s%s", name, failed ? "failed" : "done", r.status,
                             r.error ? ": " : "", r.error ? r.error : "");
    } else if (_eosin_claim_live(st->outdir, name, st->stale_s, &who)) {
      sv->running++;
      line = g_strdup_printf("%s\trunning\t%s", name, who);
    } else {
      sv->pending++;
      line = g_strdup_printf("%s\tpending\t", name);
    }
    g_ptr_array_add(sv->lines, line);
    _eosin_batch_row_clear(&r);
  }
  (void) err;
  return true;
}

void _eosin_batch_survey_clear(EosinBatchSurvey *sv) {
  g_clear_pointer(&sv->id, g_free);
  g_clear_pointer(&sv->lines, g_ptr_array_unref);
}
