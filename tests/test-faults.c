/*
 * test-faults.c — the write path when the file system fails. The shim
 * tests/faultfs.c (built as BUILD/libfaultfs.so, named by EOSIN_FAULTFS) is
 * preloaded into `eosin run` and makes one call under the test's folder
 * fail: the Nth open for writing, write, ftruncate, fflush/fclose, fsync,
 * close of a file written and not synced, rename, mkdir or unlink (see
 * faultfs.c). A clean run counts each family's calls, then every call
 * fails in turn (a spread of them where a family has many). After each run:
 *
 *  - when it failed: the exit code is 1 (a failure said, never a crash),
 *    OUTDIR/<slide> is byte for byte the previous complete result, or absent
 *    when there was none, and nothing else is left: no .<slide>.partial, no
 *    .*.tmp, no .eosin-lock in OUTDIR, no libvips temporary file in TMPDIR;
 *  - when it succeeded: the failed call was one Eosin may tolerate
 *    (tolerated() says each case and why), the new result is complete
 *    (eosin_output_check) and its files byte for byte a clean run's (all
 *    but report.json and the marker, which hold times).
 *
 * Then SIGTERM arrives at the calls of the commit instead (every rename and
 * fsync, a spread of writes): exit 130 with the previous result intact and
 * nothing left, or exit 0 with the new result complete. In every run the
 * shim also says any file renamed without an fsync since it was written.
 *
 * The slide is ihc.png at 0.5 µm/px (512 x 512): a run takes a fraction
 * of a second, and its outputs go through every writer: the TIFF pyramids,
 * PNGs from memory, Eosin's atomic files, the marker, the folder swap (also
 * as on a file system without RENAME_EXCHANGE); the IHC task adds the FILE*
 * writers of cells.csv and cells.geojson.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <glib/gstdio.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>

#define N_FAM 9
static const char *const FAMILIES[N_FAM] = {"open",  "write",  "truncate", "flush", "fsync",
                                            "close", "rename", "mkdir",    "unlink"};

static const char *STAIN =
    "[task]\nname = faults-stain\nanalyzer = stain\n"
    "[tiling]\ntile_size = 64\noverlap = 0\nmpp = 1.0\n"
    "[tissue]\nmin_fraction = 0.25\nthumbnail_mpp = 4\nmin_object_um2 = 5000\n"
    "[scheduler]\nreaders = 2\nbatch_size = 8\nqueue_depth = 2\n"
    "[overlay]\nchannel = hematoxylin\ncolormap = viridis\nalpha = 0.8\nmin = 0\nmax = 1.5\n"
    "[stain]\nmatrix = hed\n";

static const char *IHC =
    "[task]\nname = faults-ihc\nanalyzer = ihc\n"
    "[tiling]\ntile_size = 768\noverlap = 96\nmpp = 0.5\n"
    "[tissue]\nmin_fraction = 0\n"
    "[overlay]\nchannel = positive_per_mm2\n"
    "[ihc]\nmarker = ki67\nbackground_radius_um = 0\n";

typedef struct {
  char *cfg, *slide, *name;    /* config, slide, its output folder's name */
  char *base, *out, *tmp;      /* EOSIN_FAULT_DIR, OUTDIR and TMPDIR under it */
  char *final;                 /* OUTDIR/<slide> */
  bool with_prev;              /* each run replaces a previous result */
  bool no_exchange;            /* as on a file system without RENAME_EXCHANGE */
  GHashTable *clean;           /* a clean run's files but report.json, marker */
  guint n_files;               /* how many files a result has */
  GHashTable *prev;            /* the previous result (name -> GBytes) */
  long counts[N_FAM];
  int runs, failed, tolerated, missed, cleaned; /* what the faulty runs did */
  int fam_runs[N_FAM], fam_ok[N_FAM];
} Case;

static const char *shim(void) {
  const char *s = g_getenv("EOSIN_FAULTFS");
  if (!s || !g_file_test(s, G_FILE_TEST_IS_REGULAR))
    cr_skip_test("EOSIN_FAULTFS is not set to the fault-injection shim (make test builds "
                 "BUILD/libfaultfs.so from tests/faultfs.c and sets it): skipped");
  return s;
}

/* `eosin run` with the shim preloaded; @fault as EOSIN_FAULT, @count as
 * EOSIN_FAULT_COUNT (either may be NULL). The exit code (128 + signal). */
static int run(Case *c, const char *fault, const char *count, char **errout) {
  const char *bin = g_getenv("EOSIN_BIN");
  cr_assert(bin, "EOSIN_BIN is not set: run the tests with `make test`");
  /* --force: the runs with a previous result are there to replace it */
  const char *argv[] = {bin, "run", "--task", c->cfg, "--mpp", "0.5", c->slide, "-o", c->out,
                        "--force", NULL};
  char **env = g_get_environ();
  env = g_environ_setenv(env, "LD_PRELOAD", shim(), TRUE);
  /* an ASan build wants its runtime first among the loaded libraries */
  const char *asan = g_environ_getenv(env, "ASAN_OPTIONS");
  g_autofree char *asan2 =
      g_strdup_printf("%s%sverify_asan_link_order=0", asan ? asan : "", asan ? ":" : "");
  env = g_environ_setenv(env, "ASAN_OPTIONS", asan2, TRUE);
  env = g_environ_setenv(env, "EOSIN_FAULT_DIR", c->base, TRUE);
  env = g_environ_setenv(env, "TMPDIR", c->tmp, TRUE); /* libvips' temporary files */
  env = g_environ_unsetenv(env, "EOSIN_FAULT_TRACE");
  env = c->no_exchange ? g_environ_setenv(env, "EOSIN_FAULT_NO_EXCHANGE", "1", TRUE)
                       : g_environ_unsetenv(env, "EOSIN_FAULT_NO_EXCHANGE");
  env = fault ? g_environ_setenv(env, "EOSIN_FAULT", fault, TRUE)
              : g_environ_unsetenv(env, "EOSIN_FAULT");
  env = count ? g_environ_setenv(env, "EOSIN_FAULT_COUNT", count, TRUE)
              : g_environ_unsetenv(env, "EOSIN_FAULT_COUNT");
  int status = -1;
  GError *e = NULL;
  char *err = NULL;
  gboolean ok = g_spawn_sync(NULL, (char **) argv, env, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                             NULL, &err, &status, &e);
  g_strfreev(env);
  cr_assert(ok, "spawn %s: %s", bin, e ? e->message : "?");
  if (errout)
    *errout = err;
  else
    g_free(err);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Every file of @dir, name -> contents (empty when @dir is absent). */
static GHashTable *snapshot(const char *dir) {
  GHashTable *h =
      g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_bytes_unref);
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *n;
  while (d && (n = g_dir_read_name(d))) {
    g_autofree char *p = g_build_filename(dir, n, NULL);
    char *data = NULL;
    gsize len = 0;
    if (!g_file_test(p, G_FILE_TEST_IS_REGULAR) || !g_file_get_contents(p, &data, &len, NULL))
      data = g_strdup("(not a readable file)"), len = strlen(data);
    g_hash_table_insert(h, g_strdup(n), g_bytes_new_take(data, len));
  }
  return h;
}

/* NULL when every file of @want is in @got with the same bytes (and, unless
 * @subset, @got has no other), else what differs. */
static char *differences(GHashTable *want, GHashTable *got, bool subset) {
  g_autoptr(GString) s = g_string_new(NULL);
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init(&it, want);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    GBytes *b = g_hash_table_lookup(got, k);
    if (!b)
      g_string_append_printf(s, " %s missing;", (char *) k);
    else if (!g_bytes_equal(b, v))
      g_string_append_printf(s, " %s changed (%zu bytes, was %zu);", (char *) k,
                             g_bytes_get_size(b), g_bytes_get_size(v));
  }
  g_hash_table_iter_init(&it, got);
  while (!subset && g_hash_table_iter_next(&it, &k, &v))
    if (!g_hash_table_contains(want, k))
      g_string_append_printf(s, " %s added;", (char *) k);
  return s->len ? g_strdup(s->str) : NULL;
}

/* What OUTDIR and TMPDIR hold besides OUTDIR/<slide>, and any temporary
 * file inside it; NULL when nothing. */
static char *leftovers(Case *c) {
  g_autoptr(GString) s = g_string_new(NULL);
  const char *n;
  g_autoptr(GDir) o = g_dir_open(c->out, 0, NULL);
  while (o && (n = g_dir_read_name(o)))
    if (strcmp(n, c->name))
      g_string_append_printf(s, " %s", n);
  g_autoptr(GDir) f = g_dir_open(c->final, 0, NULL);
  while (f && (n = g_dir_read_name(f)))
    if (n[0] == '.' && g_str_has_suffix(n, ".tmp"))
      g_string_append_printf(s, " %s/%s", c->name, n);
  g_autoptr(GDir) t = g_dir_open(c->tmp, 0, NULL);
  while (t && (n = g_dir_read_name(t)))
    g_string_append_printf(s, " TMPDIR/%s", n);
  return s->len ? g_strdup(s->str + 1) : NULL;
}

/* True when OUTDIR/<slide> is the complete result of this config and slide. */
static bool complete(Case *c, char **why) {
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(c->cfg, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  EosinRunOptions o = {.mpp_override = 0.5};
  EosinOutputState st;
  cr_assert(eosin_output_check(cfg, c->slide, &o, c->out, &st, why, &err), "%s",
            err ? err->message : "");
  return st == EOSIN_OUTPUT_COMPLETE;
}

/* Empty TMPDIR, no OUTDIR; with a previous result when the case has one. */
static void reset(Case *c) {
  _eosin_rm_rf(c->out, NULL);
  _eosin_rm_rf(c->tmp, NULL);
  cr_assert(g_mkdir_with_parents(c->tmp, 0755) == 0);
  g_clear_pointer(&c->prev, g_hash_table_unref);
  if (c->with_prev) {
    g_autofree char *err = NULL;
    int rc = run(c, NULL, NULL, &err);
    cr_assert_eq(rc, 0, "a clean run failed: %s", err);
    c->prev = snapshot(c->final);
  }
}

static Case *case_new(const char *config_text, bool with_prev, bool no_exchange) {
  Case *c = g_new0(Case, 1);
  c->no_exchange = no_exchange;
  c->cfg = write_config(config_text);
  c->slide = td("ihc.png");
  c->name = eosin_slide_name_from_path(c->slide);
  c->base = tmp_dir();
  c->out = g_build_filename(c->base, "out", NULL);
  c->tmp = g_build_filename(c->base, "tmp", NULL);
  c->final = g_build_filename(c->out, c->name, NULL);
  /* what a clean run writes, and how many calls of each family it makes */
  c->with_prev = false;
  reset(c);
  g_autofree char *err = NULL;
  cr_assert_eq(run(c, NULL, NULL, &err), 0, "a clean run failed: %s", err);
  g_autofree char *why = NULL;
  cr_assert(complete(c, &why), "a clean run is not complete: %s", why);
  c->clean = snapshot(c->final);
  c->n_files = g_hash_table_size(c->clean);
  g_hash_table_remove(c->clean, "report.json");
  g_hash_table_remove(c->clean, "report.html"); /* report.json as a page: its times too */
  g_hash_table_remove(c->clean, _eosin_marker_name());
  c->with_prev = with_prev;
  reset(c);
  g_autofree char *count = g_build_filename(c->base, "counts", NULL);
  g_autofree char *err2 = NULL;
  cr_assert_eq(run(c, NULL, count, &err2), 0, "the counting run failed: %s", err2);
  g_autofree char *text = slurp(count);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (int i = 0; lines[i]; i++)
    for (int f = 0; f < N_FAM; f++)
      if (g_str_has_prefix(lines[i], FAMILIES[f]) && lines[i][strlen(FAMILIES[f])] == ' ')
        c->counts[f] = atol(lines[i] + strlen(FAMILIES[f]) + 1);
  /* every file renamed into place was fsync'd after it was written */
  cr_expect(strstr(text, "\nunsynced 0\n"), "a clean run renamed a file it had not synced:\n%s",
            err2);
  g_unlink(count);
  reset(c);
  return c;
}

static void case_free(Case *c) {
  g_free(c->cfg), g_free(c->slide), g_free(c->name), g_free(c->base), g_free(c->out);
  g_free(c->tmp), g_free(c->final);
  g_hash_table_unref(c->clean);
  if (c->prev)
    g_hash_table_unref(c->prev);
  g_free(c);
}

/* The path of the call the shim failed (or signalled at), from its line on
 * stderr; NULL when the Nth call did not come in this run. */
static char *injected_at(const char *err) {
  for (const char *l = strstr(err, "faultfs: "); l; l = strstr(l + 1, "faultfs: ")) {
    const char *eol = strchrnul(l, '\n'), *mark = NULL;
    if (!(mark = g_strstr_len(l, eol - l, ": injected failure")) &&
        !(mark = g_strstr_len(l, eol - l, ": SIGTERM sent")))
      continue;
    const char *p = g_strstr_len(l, mark - l, " /");
    return p ? g_strndup(p + 1, mark - p - 1) : NULL;
  }
  return NULL;
}

/* Why a run may succeed although the call of @family on @path failed, or
 * NULL when it must not. */
static const char *tolerated(Case *c, const char *family, const char *path) {
  g_autofree char *lock = g_build_filename(c->out, ".eosin-lock", NULL);
  g_autofree char *old = g_strdup_printf("%s/.%s.partial", c->out, c->name);
  g_autofree char *aside = g_strdup_printf("%s/.%s.replaced", c->out, c->name);
  size_t n_old = strlen(old), n_aside = strlen(aside);
  /* OUTDIR's lock is an open file description lock: writing who holds it
   * (ftruncate + pwrite, for a refused second run's message), closing it
   * and removing the file at the end are best effort; the kernel drops the
   * lock with the descriptor whatever those calls say. */
  if (g_str_has_prefix(path, lock))
    return "OUTDIR's lock file";
  /* the slide's claim (claim.c) is removed and closed when the run ends,
   * best effort: one left behind names a PID that is gone, and the next
   * worker takes it over; its content is not fsync'd (O_EXCL decides) */
  g_autofree char *claim = g_strdup_printf("%s/.%s.claim-", c->out, c->name);
  if ((!strcmp(family, "unlink") || !strcmp(family, "close")) && g_str_has_prefix(path, claim))
    return "removing the slide's claim";
  /* after the swap, the replaced result lies at the staging name (without
   * RENAME_EXCHANGE: moved aside, then there) and is removed file by file:
   * the new result is in place, a failed removal is a warning and what is
   * left is Eosin's, removed by the next run */
  if (!strcmp(family, "unlink") &&
      ((!strncmp(path, old, n_old) && (path[n_old] == '/' || !path[n_old])) ||
       (!strncmp(path, aside, n_aside) && (path[n_aside] == '/' || !path[n_aside]))))
    return "removing the replaced result";
  /* without RENAME_EXCHANGE the replaced result, moved aside, is then
   * renamed to the staging name to be removed; where that fails it is
   * removed where it lies */
  if (!strcmp(family, "rename") && !strcmp(path, aside))
    return "moving the replaced result from aside to be removed";
  /* g_mkdir_with_parents tries mkdir a second time when the first fails
   * (and in the runs with a previous result OUTDIR is already there) */
  if (!strcmp(family, "mkdir") && !strcmp(path, c->out))
    return "creating OUTDIR";
  /* the sync of OUTDIR after the folder swap: a rename is atomic across a
   * crash, synced or not, so OUTDIR/<slide> is the old or the new complete
   * result either way; the new one is in place and the run says, as a
   * warning, that it may not survive a power cut */
  if (!strcmp(family, "fsync") && !strcmp(path, c->out))
    return "syncing OUTDIR after the swap";
  return NULL;
}

static void G_GNUC_PRINTF(5, 6)
    bad(Case *c, const char *fault, const char *at, const char *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  cr_expect_fail("%s (%s, %s): %s\n  stderr: %.600s", fault, at ? at : "never reached",
                 c->with_prev ? "replacing a result" : "first run", msg, err);
}

/* One run with the Nth call of @family failing (or, @term, SIGTERM sent
 * just before it), and the checks of what it left. */
static void one(Case *c, int fam, long n, bool term) {
  const char *family = FAMILIES[fam];
  g_autofree char *fault = g_strdup_printf("%s:%ld%s", family, n, term ? ":TERM" : "");
  if (!c->with_prev)
    _eosin_rm_rf(c->out, NULL);
  g_autofree char *err = NULL;
  int rc = run(c, fault, NULL, &err);
  c->runs++;
  c->fam_runs[fam]++;
  g_autofree char *at = injected_at(err);
  g_autofree char *left = leftovers(c);
  g_autofree char *why = NULL;
  bool good = true;
#define BAD(...) (bad(c, fault, at, err, __VA_ARGS__), good = false)
  if (strstr(err, "faultfs: unsynced"))
    BAD("a file was renamed into place without an fsync since it was written");
  if (!good) {
  } else if (!at) {
    /* the Nth call did not come this time (how many writes a library
     * makes may vary a little from run to run): a clean run */
    c->missed++;
    if (rc != 0 || !complete(c, &why) || left)
      BAD("not injected, yet exit %d, %s, left %s", rc, why ? why : "complete",
          left ? left : "nothing");
  } else if (rc == 0) {
    const char *ok = term ? "finished before the stop was seen" : tolerated(c, family, at);
    g_autoptr(GHashTable) now = snapshot(c->final);
    g_autofree char *diff = differences(c->clean, now, true);
    if (!ok)
      BAD("exit 0: a failed call that Eosin must not ignore");
    else if (!complete(c, &why))
      BAD("exit 0 but the new result is not complete: %s", why);
    else if (diff || g_hash_table_size(now) != c->n_files)
      BAD("exit 0 but the new result differs from a clean run's:%s (%u files)",
          diff ? diff : "", g_hash_table_size(now));
    else if (left && strcmp(family, "unlink"))
      BAD("exit 0 but left: %s", left);
    else if (left) {
      /* what a failed removal left must be Eosin's and go with the next run */
      g_autofree char *err2 = NULL;
      int rc2 = run(c, NULL, NULL, &err2);
      g_autofree char *left2 = leftovers(c);
      if (rc2 != 0 || left2)
        BAD("left %s, and a clean run after it: exit %d, left %s", left, rc2,
            left2 ? left2 : "nothing");
      else
        c->cleaned++;
    }
    if (good) {
      c->tolerated++;
      c->fam_ok[fam]++;
      cr_log_info("%s (%s): exit 0, tolerated: %s%s", fault, at, ok,
                  left ? " (what it left went with the next run)" : "");
    }
    if (c->with_prev) {
      g_clear_pointer(&c->prev, g_hash_table_unref);
      c->prev = snapshot(c->final);
    }
  } else {
    g_autoptr(GHashTable) now = snapshot(c->final);
    g_autofree char *diff = c->prev ? differences(c->prev, now, false) : NULL;
    if (rc != (term ? 130 : 1))
      BAD("exit %d, not %d%s", rc, term ? 130 : 1, rc > 128 ? " (killed by a signal)" : "");
    else if (!strstr(err, "eosin: "))
      BAD("exit %d without a message", rc);
    else if (c->prev && diff)
      BAD("the previous result was damaged:%s", diff);
    else if (!c->prev && g_file_test(c->final, G_FILE_TEST_EXISTS))
      BAD("failed, yet %s/ is there (%u files)", c->name, g_hash_table_size(now));
    else if (left)
      BAD("failed and left: %s", left);
    if (good) {
      c->failed++;
      c->fam_ok[fam]++;
    }
  }
  if (!good)
    reset(c); /* the next runs start from the state they were counted in */
  else if (!c->with_prev)
    _eosin_rm_rf(c->out, NULL);
}

/* Up to @max of 1..@n: all of them, or a spread with the first and last. */
static GArray *indices(long n, int max) {
  GArray *a = g_array_new(FALSE, FALSE, sizeof(long));
  for (int k = 0; n > 0 && k < MIN(n, max); k++) {
    long i = n <= max ? k + 1 : 1 + (long) ((double) k * (n - 1) / (max - 1) + 0.5);
    if (!a->len || g_array_index(a, long, a->len - 1) != i)
      g_array_append_val(a, i);
  }
  return a;
}

static void summary(Case *c, const char *what, gint64 t0) {
  g_autoptr(GString) s = g_string_new(NULL);
  for (int f = 0; f < N_FAM; f++)
    if (c->fam_runs[f])
      g_string_append_printf(s, " %s %d/%ld", FAMILIES[f], c->fam_runs[f], c->counts[f]);
  cr_log_info("faults %s: %d runs (calls failed/counted:%s): %d failed cleanly, %d succeeded "
              "where tolerated (%d left what the next run removed), %d not reached; %.1f s",
              what, c->runs, s->str, c->failed, c->tolerated, c->cleaned, c->missed,
              (g_get_monotonic_time() - t0) / 1e6);
}

/* Every family, each call in turn (at most @max of one family). */
static void every_call(Case *c, const int *max) {
  for (int f = 0; f < N_FAM; f++) {
    g_autoptr(GArray) idx = indices(c->counts[f], max[f]);
    for (guint i = 0; i < idx->len; i++)
      one(c, f, g_array_index(idx, long, i), false);
  }
}

/* open write truncate flush fsync close rename mkdir unlink: every call but
 * of the writes, a spread of 24 with the first and the last */
static const int ALL[N_FAM] = {99, 24, 99, 99, 99, 99, 99, 99, 99};

Test(faults, every_call_fails_in_turn_while_replacing_a_result, .timeout = 240) {
  shim();
  gint64 t0 = g_get_monotonic_time();
  Case *c = case_new(STAIN, true, false);
  for (int f = 0; f < N_FAM; f++)
    if (strcmp(FAMILIES[f], "flush") && strcmp(FAMILIES[f], "truncate"))
      cr_expect_gt(c->counts[f], 0, "no %s call was seen: is the shim working?", FAMILIES[f]);
  every_call(c, ALL);
  summary(c, "replacing a result", t0);
  case_free(c);
}

Test(faults, every_call_fails_in_turn_on_a_first_run, .timeout = 240) {
  shim();
  gint64 t0 = g_get_monotonic_time();
  Case *c = case_new(STAIN, false, false);
  /* the same writers as above: fewer of the many writes */
  static const int max[N_FAM] = {99, 12, 99, 99, 99, 99, 99, 99, 99};
  every_call(c, max);
  summary(c, "first run", t0);
  case_free(c);
}

/* The IHC task's cells.csv and cells.geojson are FILE* streams: their data
 * reaches the file inside libc, so their faults show in fflush/fclose;
 * with those, every fsync, close and rename of that run (its other calls
 * are those of the stain runs above). */
Test(faults, stream_writers_fail_in_turn, .timeout = 240) {
  shim();
  gint64 t0 = g_get_monotonic_time();
  Case *c = case_new(IHC, true, false);
  cr_expect_gt(c->counts[3], 0, "no fflush/fclose of cells.csv or cells.geojson was seen");
  static const int max[N_FAM] = {0, 0, 0, 99, 99, 99, 99, 0, 0};
  every_call(c, max);
  summary(c, "IHC streams", t0);
  case_free(c);
}

Test(faults, sigterm_at_each_step_of_the_commit, .timeout = 240) {
  shim();
  gint64 t0 = g_get_monotonic_time();
  Case *c = case_new(STAIN, true, false);
  static const int max[N_FAM] = {0, 8, 0, 0, 99, 0, 99, 0, 0};
  for (int f = 0; f < N_FAM; f++) {
    g_autoptr(GArray) idx = indices(c->counts[f], max[f]);
    for (guint i = 0; i < idx->len; i++)
      one(c, f, g_array_index(idx, long, i), true);
  }
  summary(c, "SIGTERM", t0);
  case_free(c);
}

/* The folder swap of a file system without RENAME_EXCHANGE: the previous
 * result goes aside, the new one takes its place, the old one is removed. */
Test(faults, replacing_without_rename_exchange, .timeout = 240) {
  shim();
  gint64 t0 = g_get_monotonic_time();
  Case *c = case_new(STAIN, true, true);
  /* the swap's calls; the syncs before it are those of the runs above */
  static const int max[N_FAM] = {0, 0, 0, 0, 3, 0, 99, 0, 99};
  every_call(c, max);
  summary(c, "without RENAME_EXCHANGE", t0);
  case_free(c);
}
