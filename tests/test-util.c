/*
 * test-util.c — see test-util.h.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <glib/gstdio.h>
#include <openslide.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

bool td_absent(const char *name) {
  const char *dir = g_getenv("EOSIN_TESTDATA");
  g_autofree char *list = dir ? g_build_filename(dir, ".bundle-absent", NULL) : NULL;
  g_autofree char *text = NULL;
  if (!list || !g_file_get_contents(list, &text, NULL, NULL))
    return false;
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (int i = 0; lines[i]; i++)
    if (!strcmp(g_strstrip(lines[i]), name))
      return true;
  return false;
}

char *td(const char *name) {
  const char *dir = g_getenv("EOSIN_TESTDATA");
  cr_assert(dir, "EOSIN_TESTDATA is not set: run the tests with `make test`");
  if (td_absent(name))
    cr_skip_test("%s is not carried by the device bundle (testdata/.bundle-absent): skipped", name);
  return g_build_filename(dir, name, NULL);
}

char *shared_data(const char *rel) {
  const char *root = g_getenv("EOSIN_SHARED");
  char *p = g_build_filename(root ? root : "../shared", "data", rel, NULL);
  if (!g_file_test(p, G_FILE_TEST_EXISTS)) {
    g_free(p);
    return NULL;
  }
  return p;
}

/* The test process's temporary folders, removed when it exits (each
 * Criterion test runs in its own process) unless EOSIN_KEEP_TMP is set. */
static GPtrArray *tmp_dirs;

static void remove_tmp_dirs(void) {
  for (guint i = 0; tmp_dirs && i < tmp_dirs->len; i++)
    _eosin_rm_rf(tmp_dirs->pdata[i], NULL);
  g_clear_pointer(&tmp_dirs, g_ptr_array_unref);
}

char *tmp_dir(void) {
  GError *e = NULL;
  char *d = g_dir_make_tmp("eosin-test-XXXXXX", &e);
  cr_assert(d, "tmp dir: %s", e ? e->message : "?");
  if (!g_getenv("EOSIN_KEEP_TMP")) {
    if (!tmp_dirs) {
      tmp_dirs = g_ptr_array_new_with_free_func(g_free);
      atexit(remove_tmp_dirs);
    }
    g_ptr_array_add(tmp_dirs, g_strdup(d));
  }
  return d;
}

char *write_config(const char *text) {
  g_autofree char *dir = tmp_dir();
  char *path = g_build_filename(dir, "task.ini", NULL);
  cr_assert(g_file_set_contents(path, text, -1, NULL));
  return path;
}

char *stain_config(int tile_size, double mpp, int overlap, double min_fraction, const char *tail) {
  char mppbuf[G_ASCII_DTOSTR_BUF_SIZE], fracbuf[G_ASCII_DTOSTR_BUF_SIZE];
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = stain-test\nanalyzer = stain\n"
      "[tiling]\ntile_size = %d\noverlap = %d\nmpp = %s\n"
      "[tissue]\nmin_fraction = %s\nthumbnail_mpp = 4\nmin_object_um2 = 5000\n"
      "[scheduler]\nreaders = 2\nbatch_size = 8\nqueue_depth = 2\n"
      "[overlay]\nchannel = hematoxylin\ncolormap = viridis\nalpha = 0.8\nmin = 0\nmax = 1.5\n"
      "[stain]\nmatrix = hed\n%s",
      tile_size, overlap, g_ascii_dtostr(mppbuf, sizeof mppbuf, mpp),
      g_ascii_dtostr(fracbuf, sizeof fracbuf, min_fraction), tail ? tail : "");
  return write_config(text);
}

int run_eosin(const char *const *argv, char **out, char **err) {
  const char *bin = g_getenv("EOSIN_BIN");
  cr_assert(bin, "EOSIN_BIN is not set: run the tests with `make test`");
  g_autoptr(GPtrArray) a = g_ptr_array_new();
  g_ptr_array_add(a, (char *) bin);
  for (int i = 0; argv[i]; i++)
    g_ptr_array_add(a, (char *) argv[i]);
  g_ptr_array_add(a, NULL);
  int status = -1;
  GError *e = NULL;
  char *o = NULL, *r = NULL;
  cr_assert(g_spawn_sync(NULL, (char **) a->pdata, NULL, G_SPAWN_DEFAULT, NULL, NULL, &o, &r,
                         &status, &e),
            "spawn %s: %s", bin, e ? e->message : "?");
  if (out)
    *out = o;
  else
    g_free(o);
  if (err)
    *err = r;
  else
    g_free(r);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool openslide_pixel(const char *path, int64_t x, int64_t y, uint8_t rgba[4]) {
  openslide_t *osr = openslide_open(path);
  if (!osr)
    return false;
  uint32_t px = 0;
  openslide_read_region(osr, &px, x, y, 0, 1, 1);
  bool ok = openslide_get_error(osr) == NULL;
  openslide_close(osr);
  uint8_t a = px >> 24;
  rgba[3] = a;
  for (int c = 0; c < 3; c++) {
    uint8_t v = (px >> (16 - 8 * c)) & 0xff;
    /* OpenSlide returns premultiplied ARGB */
    rgba[c] = a ? (uint8_t) MIN(255, (v * 255 + a / 2) / a) : 0;
  }
  return ok;
}

int openslide_levels(const char *path) {
  openslide_t *osr = openslide_open(path);
  if (!osr)
    return 0;
  int n = openslide_get_error(osr) ? 0 : openslide_get_level_count(osr);
  openslide_close(osr);
  return n;
}

char *slurp(const char *path) {
  char *text = NULL;
  cr_assert(g_file_get_contents(path, &text, NULL, NULL), "cannot read %s", path);
  return text;
}

GArray *load_blocks(const char *json_path, int64_t *width, int64_t *height) {
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_file(p, json_path, NULL), "%s", json_path);
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  *width = json_object_get_int_member(o, "width");
  *height = json_object_get_int_member(o, "height");
  JsonArray *a = json_object_get_array_member(o, "blocks");
  GArray *blocks = g_array_new(FALSE, FALSE, sizeof(Block));
  for (guint i = 0; i < json_array_get_length(a); i++) {
    JsonObject *b = json_array_get_object_element(a, i);
    JsonArray *rgb = json_object_get_array_member(b, "rgb");
    Block blk = {json_object_get_int_member(b, "x"), json_object_get_int_member(b, "y"),
                 json_object_get_int_member(b, "width"), json_object_get_int_member(b, "height"),
                 {json_array_get_int_element(rgb, 0), json_array_get_int_element(rgb, 1),
                  json_array_get_int_element(rgb, 2)}};
    g_array_append_val(blocks, blk);
  }
  return blocks;
}


GPtrArray *read_csv_rows(const char *path) {
  g_autofree char *text = slurp(path);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  GPtrArray *rows = g_ptr_array_new_with_free_func((GDestroyNotify) g_strfreev);
  for (int i = 1; lines[i]; i++)
    if (*lines[i])
      g_ptr_array_add(rows, g_strsplit(lines[i], ",", -1));
  return rows;
}

void run_config_ok(const char *cfgpath, const char *slide, const char *outdir,
                   const EosinRunOptions *opts, EosinRunResult *res) {
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  g_autofree char *tmp = outdir ? NULL : tmp_dir();
  cr_assert(eosin_run_slide(cfg, slide, outdir ? outdir : tmp, opts, res, &err), "%s",
            err ? err->message : "");
}

int *expect_seam_nuclei_once(GPtrArray *rows, const int *pos, int np) {
  int *best = g_new(int, MAX(rows->len, 1));
  g_autofree int *hits = g_new0(int, np * np);
  for (guint r = 0; r < rows->len; r++) {
    char **f = rows->pdata[r];
    double x = g_ascii_strtod(f[0], NULL), y = g_ascii_strtod(f[1], NULL), bd = INFINITY;
    for (int k = 0; k < np * np; k++) {
      double dx = x - (pos[k % np] + 0.5), dy = y - (pos[k / np] + 0.5);
      if (dx * dx + dy * dy < bd)
        bd = dx * dx + dy * dy, best[r] = k;
    }
    cr_expect_lt(sqrt(bd), 2.0, "cell at %.1f,%.1f is %.1f px from any nucleus", x, y,
                 sqrt(bd));
    hits[best[r]]++;
  }
  for (int k = 0; k < np * np; k++)
    cr_expect_eq(hits[k], 1, "nucleus at %d,%d counted %d times", pos[k % np], pos[k / np],
                 hits[k]);
  return best;
}

void expect_init_error(const char *analyzer, const char *cfgpath, const char *want,
                       const char *what) {
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cr_assert(cfg, "%s: %s", what, err ? err->message : "");
  const EosinAnalyzerOps *ops = eosin_analyzer_find(analyzer);
  cr_assert(ops, "no analyzer %s", analyzer);
  void *ctx = NULL;
  EosinAnalyzerInfo info = {0};
  bool ok = ops->init(cfg, &ctx, &info, &err);
  ops->destroy(ctx);
  cr_expect(!ok, "%s: accepted", what);
  cr_expect(err && strstr(err->message, want) && strstr(err->message, cfgpath), "%s: %s", what,
            err ? err->message : "(none)");
}

int seam_positions(int field, int tile, int overlap, int margin, int *pos) {
  int n = 0, stride = tile - overlap;
  for (int c = 1; c * stride + overlap < field - margin && n + 3 <= 64; c++)
    for (int d = 0; d <= overlap; d += overlap / 2)
      pos[n++] = c * stride + d;
  return n;
}

bool output_complete(const char *cfgpath, const char *slide, const char *outdir) {
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cr_assert(cfg, "%s", err ? err->message : "");
  EosinOutputState state;
  g_autofree char *why = NULL;
  cr_assert(eosin_output_check(cfg, slide, NULL, outdir, &state, &why, &err), "%s",
            err ? err->message : "");
  return state == EOSIN_OUTPUT_COMPLETE;
}

char *cnn_lesions_config(const char *task) {
  g_autofree char *model = td("cnn/colour-classifier.onnx");
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = %s\nanalyzer = cnn\n"
      "[tiling]\ntile_size = 64\noverlap = 0\nmpp = 0.5\n"
      "[tissue]\nmin_fraction = 0.5\nthumbnail_mpp = 4\nmin_object_um2 = 5000\n"
      "[overlay]\nchannel = red\n"
      "[model]\npath = %s\nclasses = blue, green, red\nactivation = softmax\ndevice = cpu\n"
      "mean = 0.3, 0.4, 0.5\nstd = 0.5, 0.4, 0.6\nchannel_order = bgr\n"
      "[lesions]\nchannel = red\nthreshold = 0.4\n",
      task, model);
  return write_config(text);
}

GPid spawn_eosin(const char *const *args) {
  g_autoptr(GPtrArray) a = g_ptr_array_new();
  g_ptr_array_add(a, (char *) g_getenv("EOSIN_BIN"));
  for (int i = 0; args[i]; i++)
    g_ptr_array_add(a, (char *) args[i]);
  g_ptr_array_add(a, NULL);
  GPid pid;
  GError *e = NULL;
  cr_assert(g_spawn_async(NULL, (char **) a->pdata, NULL,
                          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
                              G_SPAWN_STDERR_TO_DEV_NULL,
                          NULL, NULL, &pid, &e),
            "%s", e ? e->message : "");
  return pid;
}

int reap_eosin(GPid pid) {
  int status;
  waitpid(pid, &status, 0);
  g_spawn_close_pid(pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void expect_no_leftovers(const char *dir) {
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  if (!d)
    return;
  const char *name;
  while ((name = g_dir_read_name(d))) {
    cr_expect_not(g_str_has_suffix(name, ".partial") || g_str_has_suffix(name, ".tmp") ||
                      g_str_has_suffix(name, ".replaced") || !strcmp(name, ".eosin-lock") ||
                      strstr(name, ".claim-"),
                  "leftover %s in %s", name, dir);
    g_autofree char *child = g_build_filename(dir, name, NULL);
    if (g_file_test(child, G_FILE_TEST_IS_DIR) && !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
      expect_no_leftovers(child);
  }
}

/* report.json without what differs from run to run: "created", "timing",
 * "command". */
char *report_sans_timing(const char *path) {
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_file(p, path, NULL), "%s", path);
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  cr_assert(json_object_has_member(o, "timing") && json_object_has_member(o, "created"), "%s",
            path);
  json_object_remove_member(o, "created");
  json_object_remove_member(o, "timing");
  /* the runs compared were started with other options and output folders */
  json_object_remove_member(o, "command");
  return json_to_string(json_parser_get_root(p), TRUE);
}

/* The marker without its writer's pid ("writer" line), its time
 * ("created") and report.json's line (its size and SHA-256 follow the
 * timings); every other file's size and SHA-256 must agree. */
static char *marker_sans_run(const char *path) {
  g_autofree char *text = slurp(path);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autoptr(GString) s = g_string_new(NULL);
  int files = 0;
  for (int i = 0; lines[i]; i++) {
    if (g_str_has_prefix(lines[i], "writer ") || g_str_has_prefix(lines[i], "created ") ||
        (g_str_has_prefix(lines[i], "file ") && (g_str_has_suffix(lines[i], " report.json") ||
                                                 g_str_has_suffix(lines[i], " report.html"))))
      continue;
    files += g_str_has_prefix(lines[i], "file ");
    g_string_append_printf(s, "%s\n", lines[i]);
  }
  cr_assert_gt(files, 4, "%s lists the outputs: %s", path, text);
  return g_string_free(g_steal_pointer(&s), FALSE);
}

/* batch-summary.csv without the columns of time (seconds, tiles_per_s). */
char *summary_sans_timing(const char *out) {
  g_autofree char *p = g_build_filename(out, "batch-summary.csv", NULL);
  g_autoptr(GPtrArray) rows = _eosin_csv_read(p, "summary", EOSIN_CSV_PLAIN, NULL);
  cr_assert(rows, "%s", p);
  g_autoptr(GString) s = g_string_new(NULL);
  for (guint i = 0; i < rows->len; i++) {
    EosinCsvRow *r = rows->pdata[i];
    cr_assert_eq(r->n, 8, "%s row %u", p, i);
    g_string_append_printf(s, "%s|%s|%s|%s|%s|%s\n", r->fields[0], r->fields[1], r->fields[2],
                           r->fields[4], r->fields[6], r->fields[7]);
  }
  return g_string_free(g_steal_pointer(&s), FALSE);
}

/* An HTML page of Eosin's (report.html, index.html) without what differs
 * from run to run: the text between <!--run--> and <!--/run-->. */
static char *html_sans_run(const char *path) {
  g_autofree char *text = slurp(path);
  g_autoptr(GString) s = g_string_new(NULL);
  const char *p = text;
  for (const char *a; (a = strstr(p, "<!--run-->"));) {
    g_string_append_len(s, p, a - p);
    const char *z = strstr(a, "<!--/run-->");
    cr_assert(z, "%s: an unclosed <!--run-->", path);
    p = z + strlen("<!--/run-->");
  }
  g_string_append(s, p);
  return g_string_free(g_steal_pointer(&s), FALSE);
}

/* OUTDIR @a and @b hold the same results: the same entries, every file
 * byte-identical but for report.json's and the marker's per-run fields;
 * with @summary, the summary the same but for its times (a resumed batch's
 * says "skipped-complete" where the other says "done"). Returns the slide
 * folders seen. */
int expect_same_results(const char *a, const char *b, bool summary) {
  g_autoptr(GDir) d = g_dir_open(a, 0, NULL);
  cr_assert(d, "%s", a);
  int slides = 0, entries = 0;
  const char *name;
  while ((name = g_dir_read_name(d))) {
    if (!strcmp(name, EOSIN_BATCH_STATE_DIR))
      continue; /* the workers' bookkeeping: who, when */
    entries++;
    g_autofree char *pa = g_build_filename(a, name, NULL), *pb = g_build_filename(b, name, NULL);
    if (!strcmp(name, "index.html")) {
      if (!summary)
        continue; /* a resumed batch's says skipped-complete where the other says done */
      g_autofree char *x = html_sans_run(pa), *y = html_sans_run(pb);
      cr_expect_str_eq(x, y, "index.html but for its times and batch id");
      continue;
    }
    if (!strcmp(name, "batch-summary.csv")) {
      if (!summary)
        continue;
      g_autofree char *sa = summary_sans_timing(a), *sb = summary_sans_timing(b);
      cr_expect_str_eq(sa, sb, "batch-summary.csv");
      continue;
    }
    if (!g_file_test(pa, G_FILE_TEST_IS_DIR)) {
      g_autofree char *x = slurp(pa), *y = slurp(pb);
      cr_expect_str_eq(x, y, "%s", name);
      continue;
    }
    slides++;
    g_autoptr(GDir) sd = g_dir_open(pa, 0, NULL);
    int files_a = 0;
    const char *f;
    while ((f = g_dir_read_name(sd))) {
      files_a++;
      g_autofree char *fa = g_build_filename(pa, f, NULL), *fb = g_build_filename(pb, f, NULL);
      cr_assert(g_file_test(fb, G_FILE_TEST_IS_REGULAR), "%s/%s only in %s", name, f, a);
      if (!strcmp(f, "report.html")) {
        g_autofree char *x = html_sans_run(fa), *y = html_sans_run(fb);
        cr_expect_str_eq(x, y, "%s/report.html but for its times and command", name);
      } else if (!strcmp(f, "report.json")) {
        g_autofree char *x = report_sans_timing(fa), *y = report_sans_timing(fb);
        cr_expect_str_eq(x, y, "%s/report.json but for timings", name);
      } else if (!strcmp(f, ".eosin-output")) {
        g_autofree char *x = marker_sans_run(fa), *y = marker_sans_run(fb);
        cr_expect_str_eq(x, y, "%s/.eosin-output but for the writer and its time", name);
      } else {
        g_autofree char *x = NULL, *y = NULL;
        gsize lx, ly;
        cr_assert(g_file_get_contents(fa, &x, &lx, NULL) && g_file_get_contents(fb, &y, &ly, NULL));
        cr_expect(lx == ly && !memcmp(x, y, lx), "%s/%s differs (%zu vs %zu bytes)", name, f, lx,
                  ly);
      }
    }
    g_autoptr(GDir) sdb = g_dir_open(pb, 0, NULL);
    int files_b = 0;
    while (sdb && g_dir_read_name(sdb))
      files_b++;
    cr_expect_eq(files_a, files_b, "%s: %d files vs %d", name, files_a, files_b);
  }
  g_autoptr(GDir) db = g_dir_open(b, 0, NULL);
  int entries_b = 0;
  const char *nb;
  while (db && (nb = g_dir_read_name(db)))
    entries_b += strcmp(nb, EOSIN_BATCH_STATE_DIR) != 0;
  cr_expect_eq(entries, entries_b, "%s: %d entries, %s: %d", a, entries, b, entries_b);
  return slides;
}

/* Runs `eosin ARGV...` and expects exit @code with @needle on stderr. */
void expect_run(const char *const *argv, int code, const char *needle, const char *what) {
  g_autofree char *out = NULL, *err = NULL;
  int rc = run_eosin(argv, &out, &err);
  cr_expect_eq(rc, code, "%s: exit %d, want %d; stderr: %s", what, rc, code, err);
  if (needle)
    cr_expect(strstr(err, needle), "%s: stderr lacks '%s': %s", what, needle, err);
}
