/*
 * test-cli.c — the eosin command as a lab runs it: every bad input gives a
 * clear message and a non-zero exit with nothing partial left behind; a
 * batch goes on past bad slides, resumes after SIGKILL with identical
 * outputs, and stops cleanly on SIGTERM.
 */
#include "test-util.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* No staging folder or temporary file anywhere below @dir. */
static void expect_no_partial(const char *dir) {
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  if (!d)
    return;
  const char *name;
  while ((name = g_dir_read_name(d))) {
    cr_expect_not(g_str_has_suffix(name, ".partial") || g_str_has_suffix(name, ".tmp") ||
                      g_str_has_suffix(name, ".old"),
                  "leftover %s in %s", name, dir);
    g_autofree char *child = g_build_filename(dir, name, NULL);
    if (g_file_test(child, G_FILE_TEST_IS_DIR))
      expect_no_partial(child);
  }
}

static void expect_fails(const char *slide, int code, const char *needle) {
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *out = tmp_dir();
  g_autofree char *err = NULL;
  const char *argv[] = {"run", "--task", cfg, slide, "-o", out, NULL};
  int rc = run_eosin(argv, NULL, &err);
  cr_expect_eq(rc, code, "%s: exit %d, expected %d (%s)", slide, rc, code, err);
  cr_expect(strstr(err, needle), "%s: stderr '%s' lacks '%s'", slide, err, needle);
  expect_no_partial(out);
  g_autoptr(GDir) d = g_dir_open(out, 0, NULL);
  cr_expect_null(g_dir_read_name(d), "nothing written for a failed slide");
}

Test(cli, bad_inputs_give_clear_errors) {
  g_autofree char *missing = td("no-such-slide.svs");
  g_autofree char *text = td("not-a-slide.svs");
  g_autofree char *trunc = td("truncated.svs");
  g_autofree char *blank = td("blank.svs");
  expect_fails(missing, 1, "no such file");
  /* a scanner's extension is a slide OpenSlide must read, never libvips */
  expect_fails(text, 1, "OpenSlide cannot open it");
  g_autofree char *dir = tmp_dir();
  g_autofree char *tif = g_build_filename(dir, "text.tif", NULL);
  cr_assert(g_file_set_contents(tif, "this is not a slide\n", -1, NULL));
  expect_fails(tif, 1, "neither OpenSlide nor libvips recognises this file");
  expect_fails(trunc, 1, "truncated.svs");
  expect_fails(blank, 1, "no tissue found");
}

Test(cli, config_errors_exit_2_and_name_file_key_value) {
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *out = tmp_dir();
  g_autofree char *unknown = write_config(
      "[task]\nname = t\nanalyzer = stain\n[tiling]\nmpp = 1\n[overlay]\nopacity = 3\n");
  g_autofree char *range = write_config(
      "[task]\nname = t\nanalyzer = stain\n[tiling]\nmpp = 1\n[scheduler]\nreaders = 0\n");
  struct {
    const char *cfg, *needle;
  } cases[] = {{unknown, "opacity"}, {range, "[scheduler] readers = '0': out of range [1, 64]"}};
  for (int i = 0; i < 2; i++) {
    g_autofree char *err = NULL;
    const char *argv[] = {"run", "--task", cases[i].cfg, slide, "-o", out, NULL};
    cr_expect_eq(run_eosin(argv, NULL, &err), 2);
    cr_expect(strstr(err, cases[i].needle), "'%s' lacks '%s'", err, cases[i].needle);
    cr_expect(strstr(err, cases[i].cfg), "names the file: %s", err);
  }
  /* usage errors */
  const char *noargs[] = {"run", NULL};
  cr_expect_eq(run_eosin(noargs, NULL, NULL), 2);
  const char *bogus[] = {"frobnicate", NULL};
  cr_expect_eq(run_eosin(bogus, NULL, NULL), 2);
  g_autofree char *help = NULL;
  const char *h[] = {"batch", "--help", NULL};
  cr_expect_eq(run_eosin(h, &help, NULL), 0);
  cr_expect(strstr(help, "--manifest"), "%s", help);
}

Test(cli, ome_tiff_opened_through_libvips) {
  g_autofree char *ome = shared_data("slides/he-crop-ome.tif");
  REQUIRE_SHARED(ome, "slides/he-crop-ome.tif");
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *out = tmp_dir();
  g_autofree char *err = NULL;
  const char *argv[] = {"run", "--task", cfg, ome, "-o", out, NULL};
  cr_assert_eq(run_eosin(argv, NULL, &err), 0, "%s", err);
  g_autofree char *report = g_build_filename(out, "he-crop-ome", "report.json", NULL);
  g_autofree char *text = slurp(report);
  cr_expect(strstr(text, "\"backend\" : \"vips\""), "%s", text);
  g_autofree char *overlay = g_build_filename(out, "he-crop-ome", "overlay.tif", NULL);
  cr_expect_gt(openslide_levels(overlay), 0, "the overlay of a vips-read image opens in OpenSlide");
}

Test(cli, info_json) {
  g_autofree char *slide = td("blocks-leica.scn");
  g_autofree char *out = NULL;
  const char *argv[] = {"info", slide, "--json", NULL};
  cr_assert_eq(run_eosin(argv, &out, NULL), 0);
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_data(p, out, -1, NULL), "%s", out);
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  cr_expect_str_eq(json_object_get_string_member(o, "mpp_source"), "openslide.mpp");
  JsonObject *b = json_object_get_object_member(o, "bounds");
  cr_expect_eq(json_object_get_int_member(b, "x"), 700);
  cr_expect(json_object_get_boolean_member(b, "from_slide"));
}

static char *write_manifest(const char *const *lines) {
  g_autofree char *dir = tmp_dir();
  char *path = g_build_filename(dir, "slides.csv", NULL);
  g_autoptr(GString) s = g_string_new("path,mpp\n# a comment\n");
  for (int i = 0; lines[i]; i++)
    g_string_append_printf(s, "%s\n", lines[i]);
  cr_assert(g_file_set_contents(path, s->str, -1, NULL));
  return path;
}

Test(cli, batch_goes_on_past_bad_slides_and_resumes) {
  g_autofree char *a = td("tissue-a.svs"), *b = td("tissue-b.svs"), *bad = td("not-a-slide.svs");
  g_autofree char *blank = td("blank.svs"), *missing = td("missing.svs"), *png = td("ihc.png");
  g_autofree char *png_line = g_strconcat(png, ",0.5", NULL);
  const char *lines[] = {a, bad, blank, missing, b, png_line, NULL};
  g_autofree char *manifest = write_manifest(lines);
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *out = tmp_dir();
  g_autofree char *stdout_ = NULL, *err = NULL;
  const char *argv[] = {"batch", "--task", cfg, "--manifest", manifest, "-o", out, NULL};
  cr_assert_eq(run_eosin(argv, &stdout_, &err), 3, "exit 3 when some slides failed: %s", err);
  cr_expect(strstr(stdout_, "3 done, 0 already complete, 3 failed"), "%s", stdout_);
  g_autofree char *sumpath = g_build_filename(out, "batch-summary.csv", NULL);
  g_autofree char *summary = slurp(sumpath);
  cr_expect(strstr(summary, "\"tissue-a\",done"), "%s", summary);
  cr_expect(strstr(summary, "\"tissue-b\",done"), "%s", summary);
  cr_expect(strstr(summary, "\"ihc\",done"), "%s", summary);
  cr_expect(strstr(summary, "\"not-a-slide\",failed"), "%s", summary);
  cr_expect(strstr(summary, "no tissue found"), "%s", summary);
  cr_expect(strstr(summary, "no such file"), "%s", summary);
  cr_expect(output_complete(cfg, a, out));
  cr_expect(output_complete(cfg, b, out));
  expect_no_partial(out);

  /* rerun: finished slides are skipped, failures are tried again */
  g_free(stdout_), stdout_ = NULL;
  cr_assert_eq(run_eosin(argv, &stdout_, NULL), 3);
  cr_expect(strstr(stdout_, "0 done, 3 already complete, 3 failed"), "%s", stdout_);
}

/* Spawns a batch in the background and returns its pid. */
static GPid spawn_batch(const char *cfg, const char *dir, const char *out) {
  const char *argv[] = {g_getenv("EOSIN_BIN"), "batch", "--task", cfg, "-o", out, dir, "--readers", "1", NULL};
  GPid pid;
  GError *e = NULL;
  cr_assert(g_spawn_async(NULL, (char **) argv, NULL,
                          G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL |
                              G_SPAWN_STDERR_TO_DEV_NULL,
                          NULL, NULL, &pid, &e),
            "%s", e ? e->message : "");
  return pid;
}

/* Waits until @path exists (or 60 s pass). */
static bool wait_for(const char *path) {
  for (int i = 0; i < 60000; i++) {
    if (g_file_test(path, G_FILE_TEST_EXISTS))
      return true;
    g_usleep(1000);
  }
  return false;
}

static char *slides_dir(void) {
  /* three tissue slides in a folder of their own */
  char *dir = tmp_dir();
  const char *names[] = {"tissue-a.svs", "tissue-b.svs", "tissue-c.svs"};
  for (int i = 0; i < 3; i++) {
    g_autofree char *src = td(names[i]);
    g_autofree char *dst = g_build_filename(dir, names[i], NULL);
    cr_assert_eq(symlink(src, dst), 0);
  }
  return dir;
}

Test(cli, batch_killed_with_sigkill_resumes_to_identical_outputs, .timeout = 300) {
  g_autofree char *dir = slides_dir();
  /* small tiles make each slide take a while, so the kill lands mid-slide */
  g_autofree char *cfg = stain_config(32, 0.5, 0, 0.25, NULL);
  g_autofree char *ref = tmp_dir(), *out = tmp_dir();
  g_autofree char *err = NULL;
  const char *argv[] = {"batch", "--task", cfg, "-o", ref, dir, NULL};
  cr_assert_eq(run_eosin(argv, NULL, &err), 0, "%s", err);

  GPid pid = spawn_batch(cfg, dir, out);
  /* killed once the first slide's result is in place: the second slide is
   * then under way (a pipelined batch analyses it while it writes the
   * first, so its staging folder alone does not mean the first is done) */
  g_autofree char *a_final = g_build_filename(out, "tissue-a", NULL);
  cr_assert(wait_for(a_final), "the first slide never finished");
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  g_spawn_close_pid(pid);
  cr_assert(WIFSIGNALED(status));
  g_autofree char *a_slide = g_build_filename(dir, "tissue-a.svs", NULL);
  cr_expect(output_complete(cfg, a_slide, out), "the first slide was finished");
  g_autofree char *b_final = g_build_filename(out, "tissue-b", NULL);
  cr_expect_not(g_file_test(b_final, G_FILE_TEST_EXISTS), "no partial result under its name");

  g_autofree char *stdout_ = NULL;
  const char *again[] = {"batch", "--task", cfg, "-o", out, dir, NULL};
  cr_assert_eq(run_eosin(again, &stdout_, &err), 0, "%s", err);
  cr_expect(strstr(stdout_, "2 done, 1 already complete, 0 failed"), "%s", stdout_);
  expect_no_partial(out);
  const char *names[] = {"tissue-a", "tissue-b", "tissue-c"};
  for (int i = 0; i < 3; i++) {
    g_autofree char *x = g_build_filename(ref, names[i], "tiles.csv", NULL);
    g_autofree char *y = g_build_filename(out, names[i], "tiles.csv", NULL);
    g_autofree char *tx = slurp(x), *ty = slurp(y);
    cr_expect_str_eq(tx, ty, "%s: same tiles.csv as an uninterrupted run", names[i]);
    const char *files[] = {"overlay.tif", "heatmap.tif", "preview.png", "tissue.png"};
    for (int f = 0; f < 4; f++) {
      g_autofree char *fx = g_build_filename(ref, names[i], files[f], NULL);
      g_autofree char *fy = g_build_filename(out, names[i], files[f], NULL);
      gsize lx, ly;
      g_autofree char *cx = NULL, *cy = NULL;
      cr_assert(g_file_get_contents(fx, &cx, &lx, NULL) && g_file_get_contents(fy, &cy, &ly, NULL));
      cr_expect(lx == ly && !memcmp(cx, cy, lx), "%s/%s differs from the uninterrupted run",
                names[i], files[f]);
    }
  }
}

Test(cli, sigterm_stops_cleanly, .timeout = 120) {
  g_autofree char *dir = slides_dir();
  g_autofree char *cfg = stain_config(32, 0.5, 0, 0.25, NULL);
  g_autofree char *out = tmp_dir();
  GPid pid = spawn_batch(cfg, dir, out);
  g_autofree char *staging = g_build_filename(out, ".tissue-a.partial", NULL);
  cr_assert(wait_for(staging));
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
  g_spawn_close_pid(pid);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 130, "exit 130 after SIGTERM");
  expect_no_partial(out);
  g_autofree char *summary = g_build_filename(out, "batch-summary.csv", NULL);
  cr_expect(g_file_test(summary, G_FILE_TEST_EXISTS), "the summary is written on the way out");
}
