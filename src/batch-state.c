/*
 * batch-state.c — what the workers of one batch share in OUTDIR/.eosin-batch/
 * (issue 20), so that any number of `eosin batch` processes (array tasks
 * of a Slurm job, one per GPU of a node, or started by hand) work on one
 * output folder and every slide is settled exactly once:
 *
 *   batch.json      the batch: its id, the SHA-256 of its manifest, its
 *                   slides (path and output name, in manifest order) and
 *                   whether it keeps camelyon-slides.csv
 *   workers/        one claim (claim.c) per live worker: host, PID, heartbeat
 *   rows/<i>.json   slide i's row of batch-summary.csv, with the batch's id
 *   .join.claim-G, .merge.claim-G   the two short critical sections
 *
 * Why one row file per slide: a slide's row is written by the one worker
 * holding the slide's claim, atomically (temporary name, fsync, rename),
 * so no two writers ever share a file; batch-summary.csv and
 * camelyon-slides.csv are rebuilt from the rows (never appended to) under
 * the merge claim, so a row can be neither torn nor duplicated, on NFS as
 * on a local disk. A row of this batch also means "settled": a worker
 * finding one moves on, so a slide is not analysed twice, not even one
 * that failed.
 *
 * Which batch a worker belongs to: the one named by its batch id (a Slurm
 * job's id, the parent of --workers), or with none the one whose workers
 * are live; otherwise it starts a new one (a rerun after a finished or
 * killed batch is a new batch, whose summary says what it did). A worker
 * of a batch with another manifest is an error: its shards would not
 * partition the same list.
 */
#include "batch-state-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD "batch.json"
#define RECORD_FORMAT "eosin-batch/1"
#define RECORD_MAX_BYTES (512 << 20) /* 100,000s of slides */

/* A folder of the batch state: made if missing; a symlink or a file in its
 * place is refused (it would lead our writes elsewhere). */
static bool state_dir(const char *path, GError **err) {
  if (g_mkdir(path, 0755) != 0 && errno != EEXIST) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "creating %s: %s", path, g_strerror(errno));
    return false;
  }
  GStatBuf st;
  if (g_lstat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_EXISTS,
                "%s is not a folder of Eosin's (a link or a file): not touching it", path);
    return false;
  }
  return true;
}

static EosinBatchState *state_new(const char *outdir, double stale_s) {
  EosinBatchState *st = g_new0(EosinBatchState, 1);
  st->outdir = g_strdup(outdir);
  st->dir = g_build_filename(outdir, EOSIN_BATCH_STATE_DIR, NULL);
  st->rows = g_build_filename(st->dir, "rows", NULL);
  st->workers = g_build_filename(st->dir, "workers", NULL);
  st->paths = g_ptr_array_new_with_free_func(g_free);
  st->names = g_ptr_array_new_with_free_func(g_free);
  st->first = g_array_new(FALSE, FALSE, sizeof(guint));
  st->stale_s = stale_s > 0 ? stale_s : EOSIN_CLAIM_STALE_S;
  return st;
}

void _eosin_batch_leave(EosinBatchState *st) {
  if (!st)
    return;
  _eosin_claim_keeper_stop(st->keeper);
  _eosin_claim_release(st->me);
  g_free(st->outdir);
  g_free(st->dir);
  g_free(st->rows);
  g_free(st->workers);
  g_free(st->id);
  g_free(st->sha);
  g_ptr_array_unref(st->paths);
  g_ptr_array_unref(st->names);
  g_array_unref(st->first);
  g_free(st);
}

/* Every slide's output name and the first slide with that name. */
static void index_names(EosinBatchState *st) {
  g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
  g_array_set_size(st->first, st->names->len);
  for (guint i = 0; i < st->names->len; i++) {
    gpointer at;
    if (g_hash_table_lookup_extended(seen, st->names->pdata[i], NULL, &at)) {
      g_array_index(st->first, guint, i) = GPOINTER_TO_UINT(at);
    } else {
      g_hash_table_insert(seen, st->names->pdata[i], GUINT_TO_POINTER(i));
      g_array_index(st->first, guint, i) = i;
    }
  }
}

static int by_text(const void *a, const void *b) {
  return strcmp(*(char *const *) a, *(char *const *) b);
}

/* One slide's entry in the manifest's hash. */
static char *hash_entry(const EosinBatchItem *it) {
  char mpp[G_ASCII_DTOSTR_BUF_SIZE];
  g_ascii_dtostr(mpp, sizeof mpp, it->mpp);
  return g_strdup_printf("%s\t%s", it->path, mpp);
}

/* The manifest's SHA-256: every slide's path and µm/px, sorted, so that
 * workers given one list in another line order (which shards allow) agree. */
static char *manifest_sha(GPtrArray *items) {
  g_autoptr(GPtrArray) e = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < items->len; i++)
    g_ptr_array_add(e, hash_entry(items->pdata[i]));
  qsort(e->pdata, e->len, sizeof(gpointer), by_text);
  g_autoptr(GChecksum) c = g_checksum_new(G_CHECKSUM_SHA256);
  for (guint i = 0; i < e->len; i++)
    g_checksum_update(c, (const guchar *) e->pdata[i], strlen(e->pdata[i]) + 1);
  return g_strdup(g_checksum_get_string(c));
}

void _eosin_batch_align(const EosinBatchState *st, GPtrArray *items) {
  /* path -> the batch's places for it, in order (a path listed twice) */
  g_autoptr(GHashTable) at = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                                   (GDestroyNotify) g_queue_free);
  for (guint i = 0; i < st->paths->len; i++) {
    GQueue *q = g_hash_table_lookup(at, st->paths->pdata[i]);
    if (!q)
      g_hash_table_insert(at, st->paths->pdata[i], q = g_queue_new());
    g_queue_push_tail(q, GUINT_TO_POINTER(i));
  }
  g_autofree gpointer *order = g_new0(gpointer, MAX(items->len, 1));
  for (guint i = 0; i < items->len; i++) {
    const EosinBatchItem *it = items->pdata[i];
    GQueue *q = g_hash_table_lookup(at, it->path);
    order[GPOINTER_TO_UINT(g_queue_pop_head(q))] = items->pdata[i];
  }
  memcpy(items->pdata, order, items->len * sizeof(gpointer));
}

/* Reads batch.json into @st (id, manifest hash, slides). False with @err
 * when it is missing or not one of ours. */
static bool read_record(EosinBatchState *st, GError **err) {
  g_autofree char *path = g_build_filename(st->dir, RECORD, NULL);
  g_autoptr(JsonNode) root = _eosin_read_json_file(path, "batch record", RECORD_MAX_BYTES, 8, err);
  if (!root)
    return false;
  JsonObject *o = JSON_NODE_HOLDS_OBJECT(root) ? json_node_get_object(root) : NULL;
  JsonNode *sl = o ? json_object_get_member(o, "slides") : NULL;
  const char *fmt = _eosin_json_string_at(o, "format"), *id = _eosin_json_string_at(o, "id"), *sha = _eosin_json_string_at(o, "manifest_sha256");
  if (!fmt || strcmp(fmt, RECORD_FORMAT) || !id || !sha || !sl || !JSON_NODE_HOLDS_ARRAY(sl)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s is not a batch record of Eosin's",
                path);
    return false;
  }
  g_free(st->id);
  g_free(st->sha);
  st->id = g_strdup(id);
  st->sha = g_strdup(sha);
  JsonNode *cam = json_object_get_member(o, "camelyon");
  st->camelyon = cam && JSON_NODE_HOLDS_VALUE(cam) && json_node_get_boolean(cam);
  g_ptr_array_set_size(st->paths, 0);
  g_ptr_array_set_size(st->names, 0);
  JsonArray *a = json_node_get_array(sl);
  for (guint i = 0; i < json_array_get_length(a); i++) {
    JsonNode *e = json_array_get_element(a, i);
    JsonObject *eo = JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
    const char *p = _eosin_json_string_at(eo, "path"), *n = _eosin_json_string_at(eo, "name");
    if (!p || !n) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s: slide %u has no path or name",
                  path, i + 1);
      return false;
    }
    g_ptr_array_add(st->paths, g_strdup(p));
    g_ptr_array_add(st->names, g_strdup(n));
  }
  index_names(st);
  return true;
}

static bool write_record(EosinBatchState *st, GError **err) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "format");
  json_builder_add_string_value(b, RECORD_FORMAT);
  json_builder_set_member_name(b, "id");
  json_builder_add_string_value(b, st->id);
  json_builder_set_member_name(b, "manifest_sha256");
  json_builder_add_string_value(b, st->sha);
  json_builder_set_member_name(b, "camelyon");
  json_builder_add_boolean_value(b, st->camelyon);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *iso = g_date_time_format_iso8601(now);
  json_builder_set_member_name(b, "started");
  json_builder_add_string_value(b, iso);
  json_builder_set_member_name(b, "slides");
  json_builder_begin_array(b);
  for (guint i = 0; i < st->paths->len; i++) {
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "path");
    json_builder_add_string_value(b, st->paths->pdata[i]);
    json_builder_set_member_name(b, "name");
    json_builder_add_string_value(b, st->names->pdata[i]);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  g_autofree char *path = g_build_filename(st->dir, RECORD, NULL);
  return _eosin_write_json(path, root, err);
}

/* The names of the workers registered in workers/ (their claims are
 * ".<worker>.claim-<G>"), each once. */
static GPtrArray *worker_names(EosinBatchState *st) {
  GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GDir) d = g_dir_open(st->workers, 0, NULL);
  const char *e;
  while (d && (e = g_dir_read_name(d))) {
    const char *cl = strstr(e, ".claim-");
    char *name = e[0] == '.' && cl ? g_strndup(e + 1, cl - e - 1) : NULL;
    if (name && !g_ptr_array_find_with_equal_func(names, name, g_str_equal, NULL))
      g_ptr_array_add(names, name);
    else
      g_free(name);
  }
  return names;
}

/* Whether a worker other than this one (@self, may be NULL) is live;
 * *@who (caller frees) names one. */
static bool other_worker_live(EosinBatchState *st, const char *self, char **who) {
  *who = NULL;
  g_autoptr(GPtrArray) names = worker_names(st);
  for (guint i = 0; i < names->len; i++)
    if ((!self || strcmp(names->pdata[i], self)) &&
        _eosin_claim_live(st->workers, names->pdata[i], st->stale_s, who))
      return true;
  return false;
}

/* A dead worker's registration goes (taken over, then given up: claim.c
 * removes the files), so workers/ holds only the live. Called holding the
 * join claim. */
static void sweep_dead_workers(EosinBatchState *st, const char *self) {
  g_autoptr(GPtrArray) names = worker_names(st);
  for (guint i = 0; i < names->len; i++) {
    g_autofree char *who = NULL, *holder = NULL;
    if (strcmp(names->pdata[i], self) &&
        !_eosin_claim_live(st->workers, names->pdata[i], st->stale_s, &who))
      _eosin_claim_release(
          _eosin_claim_take(st->workers, names->pdata[i], st->stale_s, &holder, NULL));
  }
}

int _eosin_batch_live_workers(EosinBatchState *st) {
  g_autoptr(GPtrArray) names = worker_names(st);
  int n = 0;
  for (guint i = 0; i < names->len; i++) {
    g_autofree char *who = NULL;
    n += _eosin_claim_live(st->workers, names->pdata[i], st->stale_s, &who);
  }
  return n;
}

/* The rows of earlier batches go when a new one starts (no worker of
 * theirs is live: the join claim and the registrations say so). Only
 * files named as Eosin names rows ("<digits>.json", their temporaries). */
static void clear_rows(EosinBatchState *st) {
  g_autoptr(GDir) d = g_dir_open(st->rows, 0, NULL);
  const char *e;
  g_autoptr(GPtrArray) gone = g_ptr_array_new_with_free_func(g_free);
  while (d && (e = g_dir_read_name(d))) {
    const char *p = e[0] == '.' ? e + 1 : e;
    size_t digits = strspn(p, "0123456789");
    if (digits && g_str_has_prefix(p + digits, ".json") &&
        (e[0] != '.' || g_str_has_suffix(e, ".tmp")))
      g_ptr_array_add(gone, g_build_filename(st->rows, e, NULL));
  }
  for (guint i = 0; i < gone->len; i++)
    g_unlink(gone->pdata[i]);
}

EosinBatchState *_eosin_batch_join(const char *outdir, GPtrArray *items,
                                   const EosinBatchJoin *j, char **note, GError **err) {
  *note = NULL;
  g_autoptr(EosinBatchState) st = state_new(outdir, j->stale_s);
  if (!state_dir(st->dir, err) || !state_dir(st->rows, err) || !state_dir(st->workers, err))
    return NULL;
  g_autoptr(EosinClaim) join = _eosin_claim_wait(st->dir, "join", st->stale_s, j->cancel, err);
  if (!join)
    return NULL;
  /* registered while holding the join claim: a worker joining after this
   * one sees it live */
  g_autofree char *self = g_strdup_printf("%s-%ld-%08x", g_get_host_name(), (long) getpid(),
                                          g_random_int());
  g_autofree char *holder = NULL;
  st->me = _eosin_claim_take(st->workers, self, st->stale_s, &holder, err);
  if (!st->me) {
    if (holder)
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_BUSY, "registering in %s: %s holds %s",
                  st->workers, holder, self);
    return NULL;
  }
  sweep_dead_workers(st, self);
  g_autofree char *sha = manifest_sha(items);
  g_autofree char *record = g_build_filename(st->dir, RECORD, NULL);
  g_autoptr(GError) rerr = NULL;
  bool have = g_file_test(record, G_FILE_TEST_EXISTS) && read_record(st, &rerr);
  if (rerr) {
    g_propagate_error(err, g_steal_pointer(&rerr));
    return NULL;
  }
  g_autofree char *who = NULL;
  bool others = have && other_worker_live(st, self, &who);
  bool same = have && (j->batch_id ? !strcmp(st->id, j->batch_id) : others);
  if (same && strcmp(st->sha, sha)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: batch %s was started with another manifest (%u slides, SHA-256 %.12s; "
                "this worker's: %u slides, %.12s): the workers of one batch must be given the "
                "same slide list",
                outdir, st->id, st->paths->len, st->sha, items->len, sha);
    return NULL;
  }
  if (!same && others) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_BUSY,
                "%s is being worked on by batch %s (worker %s is live) and this worker belongs "
                "to batch %s: wait for it or choose another -o",
                outdir, st->id, who, j->batch_id);
    return NULL;
  }
  if (same) {
    int live = _eosin_batch_live_workers(st);
    *note = g_strdup_printf("joined batch %s in %s (%d worker%s live, this one included)", st->id,
                            outdir, live, live == 1 ? "" : "s");
  } else {
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_free(st->id);
    st->id = j->batch_id ? g_strdup(j->batch_id)
                         : g_date_time_format(now, "%Y%m%dT%H%M%SZ");
    if (!j->batch_id) {
      char *with = g_strdup_printf("%s-%08x", st->id, g_random_int());
      g_free(st->id);
      st->id = with;
    }
    g_free(st->sha);
    st->sha = g_steal_pointer(&sha);
    st->camelyon = j->camelyon;
    g_ptr_array_set_size(st->paths, 0);
    g_ptr_array_set_size(st->names, 0);
    for (guint i = 0; i < items->len; i++) {
      const EosinBatchItem *it = items->pdata[i];
      g_ptr_array_add(st->paths, g_strdup(it->path));
      g_ptr_array_add(st->names, eosin_slide_name_from_path(it->path));
    }
    index_names(st);
    clear_rows(st);
    if (!write_record(st, err))
      return NULL;
  }
  st->peers = MAX(1, _eosin_batch_live_workers(st));
  st->keeper = _eosin_claim_keep(st->me, st->stale_s / 4, j->cancel);
  return g_steal_pointer(&st);
}

bool _eosin_batch_finish(EosinBatchState *st, GError **err) {
  _eosin_claim_keeper_stop(g_steal_pointer(&st->keeper));
  _eosin_claim_release(g_steal_pointer(&st->me));
  /* deregistered first, then the look: of workers ending together the
   * last to deregister sees no one and merges (a worker killed on another
   * host looks live for --stale-after: then the merge job, or `eosin batch
   * --merge`, has the last word) */
  g_autofree char *who = NULL;
  if (other_worker_live(st, NULL, &who))
    return true;
  return _eosin_batch_merge(st, true, NULL, NULL, err);
}

EosinBatchState *_eosin_batch_open(const char *outdir, double stale_s, GError **err) {
  g_autoptr(EosinBatchState) st = state_new(outdir, stale_s);
  g_autofree char *record = g_build_filename(st->dir, RECORD, NULL);
  if (!g_file_test(record, G_FILE_TEST_EXISTS)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO,
                "%s holds no batch (no %s/%s): run eosin batch into it first", outdir,
                EOSIN_BATCH_STATE_DIR, RECORD);
    return NULL;
  }
  return read_record(st, err) ? g_steal_pointer(&st) : NULL;
}

const char *_eosin_batch_id(const EosinBatchState *st) {
  return st->id;
}

guint _eosin_batch_first_named(const EosinBatchState *st, guint index) {
  return g_array_index(st->first, guint, index);
}
