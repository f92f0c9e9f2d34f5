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
                      g_str_has_suffix(name, ".replaced") || !strcmp(name, ".eosin-lock"),
                  "leftover %s in %s", name, dir);
    g_autofree char *child = g_build_filename(dir, name, NULL);
    if (g_file_test(child, G_FILE_TEST_IS_DIR) && !g_file_test(child, G_FILE_TEST_IS_SYMLINK))
      expect_no_leftovers(child);
  }
}
