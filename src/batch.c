/*
 * batch.c — a night's queue of slides: from a manifest or a folder, one
 * output folder per slide, finished slides skipped on rerun, failures
 * recorded in batch-summary.csv without stopping the others, progress and
 * ETA on stderr, and a clean stop on SIGINT/SIGTERM (via EosinCancel).
 * With a [lesions] group it also keeps camelyon-slides.csv, the slide-level
 * probabilities of all finished slides.
 */
#include "eosin-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>

static const char *const SLIDE_EXTS[] = {".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu",
                                         ".scn", ".mrxs", ".svslide", ".bif", ".png", ".jpg",
                                         ".jpeg", NULL};

static void item_free(gpointer p) {
  EosinBatchItem *it = p;
  g_free(it->path);
  g_free(it);
}

static void add_item(GPtrArray *a, const char *path, double mpp) {
  EosinBatchItem *it = g_new0(EosinBatchItem, 1);
  it->path = g_strdup(path);
  it->mpp = mpp;
  g_ptr_array_add(a, it);
}

GPtrArray *eosin_batch_from_manifest(const char *path, GError **err) {
  g_autofree char *text = NULL;
  g_autoptr(GError) ferr = NULL;
  if (!g_file_get_contents(path, &text, NULL, &ferr)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "manifest %s: %s", path, ferr->message);
    return NULL;
  }
  g_autofree char *dir = g_path_get_dirname(path);
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(item_free);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (int n = 0; lines[n]; n++) {
    char *line = g_strstrip(lines[n]);
    if (!*line || *line == '#' || !strcmp(line, "path") || !strcmp(line, "path,mpp"))
      continue;
    g_auto(GStrv) f = g_strsplit(line, ",", -1);
    double mpp = 0;
    if (g_strv_length(f) > 2 || (f[1] && !*g_strstrip(f[1]))) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "manifest %s, line %d: '%s': expected 'path' or 'path,mpp'", path, n + 1,
                  line);
      return NULL;
    }
    if (f[1]) {
      char *end;
      mpp = g_ascii_strtod(f[1], &end);
      if (*end || !(mpp > 0) || !isfinite(mpp)) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                    "manifest %s, line %d: mpp '%s' is not a positive number", path, n + 1,
                    f[1]);
        return NULL;
      }
    }
    char *p = g_strstrip(f[0]);
    g_autofree char *full = g_path_is_absolute(p) ? g_strdup(p) : g_build_filename(dir, p, NULL);
    add_item(items, full, mpp);
  }
  if (!items->len) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "manifest %s: lists no slides", path);
    return NULL;
  }
  return g_steal_pointer(&items);
}

static gint cmp_str(gconstpointer a, gconstpointer b) {
  return strcmp(*(char *const *) a, *(char *const *) b);
}

GPtrArray *eosin_batch_from_dir(const char *dirpath, GError **err) {
  g_autoptr(GError) derr = NULL;
  g_autoptr(GDir) dir = g_dir_open(dirpath, 0, &derr);
  if (!dir) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "slide folder %s: %s", dirpath, derr->message);
    return NULL;
  }
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *name;
  while ((name = g_dir_read_name(dir))) {
    g_autofree char *lower = g_ascii_strdown(name, -1);
    for (int e = 0; SLIDE_EXTS[e]; e++)
      if (g_str_has_suffix(lower, SLIDE_EXTS[e]) && name[0] != '.') {
        g_ptr_array_add(names, g_build_filename(dirpath, name, NULL));
        break;
      }
  }
  g_ptr_array_sort(names, cmp_str);
  if (!names->len) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "slide folder %s: no slide files", dirpath);
    return NULL;
  }
  GPtrArray *items = g_ptr_array_new_with_free_func(item_free);
  for (guint i = 0; i < names->len; i++)
    add_item(items, names->pdata[i], 0);
  return items;
}

typedef struct {
  char *path, *name, *status, *error;
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
}

/* CSV field: quoted, inner quotes doubled, newlines flattened. */
static void csv_field(GString *s, const char *v) {
  g_string_append_c(s, '"');
  for (const char *c = v ? v : ""; *c; c++) {
    if (*c == '"')
      g_string_append(s, "\"\"");
    else
      g_string_append_c(s, *c == '\n' ? ' ' : *c);
  }
  g_string_append_c(s, '"');
}

static bool write_summary(const char *outdir, GArray *rows, GError **err) {
  g_autoptr(GString) s = g_string_new("slide,name,status,seconds,tiles,tiles_per_s,error\n");
  for (guint i = 0; i < rows->len; i++) {
    Row *r = &g_array_index(rows, Row, i);
    csv_field(s, r->path);
    g_string_append_c(s, ',');
    csv_field(s, r->name);
    g_string_append_printf(s, ",%s,%.2f,%d,%.1f,", r->status, r->seconds, r->tiles,
                           r->tiles_per_s);
    csv_field(s, r->error);
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
  g_autoptr(JsonParser) p = json_parser_new();
  if (!json_parser_load_from_file(p, path, NULL))
    return NAN;
  JsonNode *root = json_parser_get_root(p);
  JsonObject *o = root && JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  return scores_probability(o ? json_object_get_member(o, "scores") : NULL);
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
    if (!isnan(r->probability))
      g_string_append_printf(s, "%s,%.6f\n", r->name, r->probability);
  }
  g_autofree char *path = g_build_filename(outdir, "camelyon-slides.csv", NULL);
  return _eosin_write_atomic(path, s->str, s->len, err);
}

typedef struct {
  int index, total;
  const char *name;
  gint64 batch_start, last_print;
  int slides_done;
} Progress;

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
  fprintf(stderr, "\r[%d/%d] %s: %d/%d tiles, %.0f tiles/s, ETA %dm%02ds   ", p->index + 1,
          p->total, p->name, done, total, tps, (int) eta / 60, (int) eta % 60);
  fflush(stderr);
}

bool eosin_batch_run(const EosinConfig *cfg, GPtrArray *items, const char *outdir,
                     const EosinRunOptions *opts, bool progress, EosinBatchResult *res,
                     GError **err) {
  memset(res, 0, sizeof *res);
  res->total = items->len;
  if (g_mkdir_with_parents(outdir, 0755) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "output folder %s: %s", outdir,
                g_strerror(errno));
    return false;
  }
  g_autoptr(GArray) rows = g_array_new(FALSE, TRUE, sizeof(Row));
  g_array_set_clear_func(rows, row_clear);
  g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  Progress prog = {.total = items->len, .batch_start = g_get_monotonic_time()};

  for (guint i = 0; i < items->len; i++) {
    EosinBatchItem *it = items->pdata[i];
    if (opts && opts->cancel && g_atomic_int_get(&opts->cancel->cancelled)) {
      res->interrupted = true;
      break;
    }
    Row row = {.path = g_strdup(it->path), .name = eosin_slide_name_from_path(it->path),
               .probability = NAN};
    const char *first = g_hash_table_lookup(names, row.name);
    gint64 t0 = g_get_monotonic_time();
    if (first) {
      row.status = g_strdup("failed");
      row.error = g_strdup_printf("output name '%s' is already used by %s", row.name, first);
      res->failed++;
    } else if (eosin_output_is_complete(outdir, row.name)) {
      g_hash_table_insert(names, g_strdup(row.name), g_strdup(it->path));
      row.status = g_strdup("skipped-complete");
      row.probability = report_probability(outdir, row.name);
      res->skipped++;
    } else {
      g_hash_table_insert(names, g_strdup(row.name), g_strdup(it->path));
      EosinRunOptions o = opts ? *opts : (EosinRunOptions){0};
      if (it->mpp > 0)
        o.mpp_override = it->mpp;
      prog.index = i, prog.name = row.name, prog.last_print = 0;
      if (progress) {
        o.progress = progress_cb;
        o.progress_data = &prog;
      }
      EosinRunResult rr;
      g_autoptr(GError) e = NULL;
      if (eosin_run_slide(cfg, it->path, outdir, &o, &rr, &e)) {
        row.status = g_strdup("done");
        row.tiles = rr.tiles_analyzed;
        row.tiles_per_s = rr.tiles_per_s;
        row.probability = scores_probability(rr.scores);
        res->done++;
        eosin_run_result_clear(&rr);
      } else if (g_error_matches(e, EOSIN_ERROR, EOSIN_ERROR_CANCELLED)) {
        row_clear(&row);
        res->interrupted = true;
        break;
      } else {
        row.status = g_strdup("failed");
        row.error = g_strdup(e->message);
        res->failed++;
        if (progress)
          fprintf(stderr, "\n");
        fprintf(stderr, "eosin: %s\n", e->message);
      }
    }
    row.seconds = (g_get_monotonic_time() - t0) / 1e6;
    g_array_append_val(rows, row);
    prog.slides_done++;
    if (progress)
      fprintf(stderr, "\r[%d/%d] %s: %s%*s\n", i + 1, res->total, row.name, row.status, 30, "");
    if (!write_summary(outdir, rows, err) ||
        (cfg->lesions.present && !write_camelyon_slides(outdir, rows, err)))
      return false;
  }
  return write_summary(outdir, rows, err) &&
         (!cfg->lesions.present || write_camelyon_slides(outdir, rows, err));
}
