/*
 * test-batch-pipeline.c — `eosin batch` writing one slide's outputs while
 * it analyses the next (issue 17): the same files as --no-pipeline, byte
 * for byte but for timings; a SIGKILL at the overlap resumes to the clean
 * result; a bad slide in the middle fails alone; SIGINT stops within a
 * second; and a full disk (a real small tmpfs, as root) fails each slide
 * that does not fit with the file named, leaves nothing partial, and lets
 * the slides that fit finish.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>


/* A manifest in a new folder listing @slides (test data names, or absolute
 * paths). */
static char *manifest(const char *const *slides) {
  g_autofree char *dir = tmp_dir();
  g_autoptr(GString) s = g_string_new(NULL);
  for (int i = 0; slides[i]; i++) {
    g_autofree char *p = slides[i][0] == '/' ? g_strdup(slides[i]) : td(slides[i]);
    g_string_append_printf(s, "%s\n", p);
  }
  char *path = g_build_filename(dir, "slides.txt", NULL);
  cr_assert(g_file_set_contents(path, s->str, -1, NULL));
  return path;
}

/* `eosin batch` with one reader (as the stop tests run it, so that the
 * results compare: report.json records the readers). */
static int batch(const char *cfg, const char *list, const char *out, bool pipeline, char **err) {
  const char *argv[] = {"batch", "--task", cfg, "--manifest", list, "-o", out, "--readers", "1",
                        pipeline ? NULL : "--no-pipeline", NULL};
  return run_eosin(argv, NULL, err);
}

static const char *const FOUR[] = {"blocks-aperio.svs", "tissue-a.svs", "blocks-generic.tif",
                                   "tissue-b.svs", NULL};

Test(pipeline, batch_pipelined_and_not_give_the_same_files, .timeout = 300) {
  g_autofree char *cfg = cnn_lesions_config("pipeline-test"), *list = manifest(FOUR);
  g_autofree char *piped = tmp_dir(), *plain = tmp_dir();
  g_autofree char *e1 = NULL, *e2 = NULL;
  cr_assert_eq(batch(cfg, list, piped, true, &e1), 0, "%s", e1);
  cr_assert_eq(batch(cfg, list, plain, false, &e2), 0, "%s", e2);
  cr_expect_eq(expect_same_results(piped, plain, true), 4);
  /* the second slide on reused the first one's backend either way */
  g_autofree char *rep = g_build_filename(piped, "tissue-b", "report.json", NULL);
  g_autofree char *text = slurp(rep);
  cr_expect(strstr(text, "\"reused "), "%s", text);
  g_autofree char *csv = g_build_filename(piped, "camelyon-slides.csv", NULL);
  g_autofree char *slides = slurp(csv);
  g_auto(GStrv) lines = g_strsplit(g_strstrip(slides), "\n", -1);
  cr_expect_eq(g_strv_length(lines), 5, "4 slides in manifest order: %s", slides);
  cr_expect(g_str_has_prefix(lines[1], "blocks-aperio,") && g_str_has_prefix(lines[4], "tissue-b,"),
            "%s", slides);
  expect_no_leftovers(piped);
}

/* ---------------------------------------------------------------- stops */



/* Waits (every ms, up to a minute) until @path exists; false if it never does
 * or @pid ended first. */
static bool wait_for(GPid pid, const char *path) {
  for (int i = 0; i < 60000; i++) {
    if (g_file_test(path, G_FILE_TEST_EXISTS))
      return true;
    if (waitpid(pid, NULL, WNOHANG) == pid)
      return false;
    g_usleep(1000);
  }
  return false;
}

/* Small tiles with one reader: each slide's analysis takes a while, so
 * slide 2 is analysed while slide 1's outputs are written. */
static char *slow_config(void) {
  return stain_config(32, 0.5, 0, 0.25, "");
}

static const char *const THREE[] = {"tissue-a.svs", "tissue-b.svs", "tissue-c.svs", NULL};

Test(pipeline, batch_killed_at_the_overlap_resumes_to_the_clean_result, .timeout = 300) {
  g_autofree char *cfg = slow_config(), *list = manifest(THREE);
  g_autofree char *clean = tmp_dir(), *out = tmp_dir();
  g_autofree char *e = NULL;
  cr_assert_eq(batch(cfg, list, clean, true, &e), 0, "%s", e);
  /* killed while slide 2 is analysed (its staging folder is made once its
   * tiles are planned, while slide 1's outputs may still be written), then
   * again once slide 2's result is in place and slide 3 is under way */
  const char *marks[] = {".tissue-b.partial", "tissue-b", NULL};
  for (int k = 0; marks[k]; k++) {
    const char *argv[] = {"batch", "--task", cfg, "--manifest", list, "-o", out,
                          "--readers", "1", NULL};
    GPid pid = spawn_eosin(argv);
    g_autofree char *mark = g_build_filename(out, marks[k], NULL);
    bool seen = wait_for(pid, mark);
    if (seen)
      kill(pid, SIGKILL);
    int rc = reap_eosin(pid);
    cr_assert(seen, "never saw %s (exit %d)", mark, rc);
    cr_expect_eq(rc, 128 + SIGKILL, "killed at %s: exit %d", marks[k], rc);
  }
  g_autofree char *e2 = NULL;
  cr_assert_eq(batch(cfg, list, out, true, &e2), 0, "the rerun: %s", e2);
  for (int i = 0; THREE[i]; i++) {
    g_autofree char *slide = td(THREE[i]);
    cr_expect(output_complete(cfg, slide, out), "%s complete after the rerun", THREE[i]);
  }
  cr_expect_eq(expect_same_results(clean, out, false), 3);
  g_autofree char *summary = summary_sans_timing(out);
  cr_expect(!strstr(summary, "|failed|") && strstr(summary, "|skipped-complete|"), "%s", summary);
  expect_no_leftovers(out);
}

Test(pipeline, batch_with_a_bad_slide_in_the_middle, .timeout = 300) {
  g_autofree char *dir = tmp_dir();
  /* garbage under a slide's name, and a real slide cut short */
  g_autofree char *garbage = g_build_filename(dir, "garbage.svs", NULL);
  cr_assert(g_file_set_contents(garbage, "II*\0 not a slide at all", 24, NULL));
  g_autofree char *cut = g_build_filename(dir, "cut.svs", NULL);
  {
    g_autofree char *src = td("tissue-c.svs"), *data = NULL;
    gsize len;
    cr_assert(g_file_get_contents(src, &data, &len, NULL));
    cr_assert(g_file_set_contents(cut, data, len / 2, NULL));
  }
  g_autofree char *a = td("tissue-a.svs"), *b = td("tissue-b.svs");
  const char *slides[] = {a, garbage, cut, b, NULL};
  g_autofree char *cfg = slow_config(), *list = manifest(slides);
  for (int pipeline = 1; pipeline >= 0; pipeline--) {
    g_autofree char *out = tmp_dir(), *e = NULL;
    cr_expect_eq(batch(cfg, list, out, pipeline, &e), 3, "exit 3 (failed slides): %s", e);
    g_autofree char *p = g_build_filename(out, "batch-summary.csv", NULL);
    g_autoptr(GPtrArray) rows = _eosin_csv_read(p, "summary", EOSIN_CSV_PLAIN, NULL);
    cr_assert(rows && rows->len == 5, "%s: a header and 4 rows", p);
    const char *want[][2] = {{"tissue-a", "done"}, {"garbage", "failed"}, {"cut", "failed"},
                             {"tissue-b", "done"}};
    for (int i = 0; i < 4; i++) {
      EosinCsvRow *r = rows->pdata[i + 1];
      cr_expect_str_eq(r->fields[1], want[i][0], "row %d in manifest order", i);
      cr_expect_str_eq(r->fields[2], want[i][1], "%s (pipeline %d): %s", want[i][0], pipeline,
                       r->fields[6]);
      if (!strcmp(want[i][1], "failed"))
        cr_expect(strstr(r->fields[6], want[i][0]), "the error names the slide: %s",
                  r->fields[6]);
    }
    cr_expect(strstr(e, "garbage.svs") && strstr(e, "cut.svs"), "%s", e);
    expect_no_leftovers(out);
  }
}

Test(pipeline, batch_sigint_stops_within_a_second, .timeout = 300) {
  g_autofree char *cfg = slow_config(), *list = manifest(THREE);
  g_autofree char *out = tmp_dir();
  const char *argv[] = {"batch", "--task", cfg, "--manifest", list, "-o", out,
                        "--readers", "1", NULL};
  GPid pid = spawn_eosin(argv);
  /* slide 2's analysis, with slide 1's outputs being written or done */
  g_autofree char *mark = g_build_filename(out, ".tissue-b.partial", NULL);
  bool seen = wait_for(pid, mark);
  if (seen)
    g_usleep(100000);
  gint64 t0 = g_get_monotonic_time();
  kill(pid, SIGINT);
  int rc = reap_eosin(pid);
  double stop_s = (g_get_monotonic_time() - t0) / 1e6;
  cr_assert(seen, "never saw %s", mark);
  cr_expect_eq(rc, 130, "interrupted: exit %d", rc);
  cr_expect_lt(stop_s, 1.0, "stopped %.2f s after SIGINT", stop_s);
  expect_no_leftovers(out);
  /* the summary holds what was finished, nothing of slide 2 */
  g_autofree char *p = g_build_filename(out, "batch-summary.csv", NULL);
  g_autofree char *s = slurp(p);
  cr_expect_not(strstr(s, "tissue-b"), "%s", s);
}

/* ---------------------------------------------------------------- full disk */

static char *full_disk_mount;  /* this test process's tmpfs, unmounted in fini (owned) */

static void unmount_full_disk(void) {
  if (full_disk_mount)
    umount2(full_disk_mount, MNT_DETACH);
}

Test(pipeline, batch_on_a_full_disk_fails_each_slide_that_does_not_fit, .timeout = 300,
     .fini = unmount_full_disk) {
  g_autofree char *dir = tmp_dir();
  /* in a mount namespace of this test process's own (and the eosin it
   * starts), where it can: the tmpfs then goes with the process, even one
   * that crashes before fini */
  if (unshare(CLONE_NEWNS) == 0)
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  /* 1 MiB: a tissue slide's preview.png alone is about 2 MB; a blocks
   * slide's whole folder about 120 kB */
  if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") != 0)
    cr_skip_test("mounting a 1 MiB tmpfs failed (%s): needs root (CI and the dev box "
                 "run tests as root): skipped",
                 g_strerror(errno));
  full_disk_mount = g_strdup(dir); /* fini runs after @dir is freed */
  /* the blocks slides fit once a failed slide's staging folder is gone:
   * blocks-generic's outputs are written while only blocks-aperio's are
   * (space enough), blocks-aperio's staging folder is made while
   * tissue-a's outputs may be filling the disk (it may fail too, cleanly) */
  const char *slides[] = {"tissue-a.svs", "blocks-aperio.svs", "blocks-generic.tif",
                          "tissue-b.svs", NULL};
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, ""), *list = manifest(slides);
  g_autofree char *out = g_build_filename(dir, "out", NULL), *e = NULL;
  cr_expect_eq(batch(cfg, list, out, true, &e), 3, "exit 3 (failed slides): %s", e);
  g_autofree char *p = g_build_filename(out, "batch-summary.csv", NULL);
  g_autoptr(GPtrArray) rows = _eosin_csv_read(p, "summary", EOSIN_CSV_PLAIN, NULL);
  cr_assert(rows && rows->len == 5, "%s: a header and 4 rows; stderr: %s", p, e);
  for (int i = 0; i < 4; i++) {
    EosinCsvRow *r = rows->pdata[i + 1];
    g_autofree char *name = eosin_slide_name_from_path(slides[i]);
    g_autofree char *final = g_build_filename(out, name, NULL);
    g_autofree char *staged = g_strdup_printf("%s/.%s.partial/", out, name);
    bool fits = g_str_has_prefix(name, "blocks");
    if (fits && (i == 2 || !strcmp(r->fields[2], "done"))) {
      cr_expect_str_eq(r->fields[2], "done", "%s: %s", name, r->fields[6]);
      g_autofree char *slide = td(slides[i]);
      cr_expect(output_complete(cfg, slide, out), "%s complete", name);
      continue;
    }
    cr_expect_str_eq(r->fields[2], "failed", "%s", name);
    /* the file that did not fit, and why: a tissue slide's preview.png */
    g_autofree char *file = fits ? g_strdup(staged) : g_strconcat(staged, "preview.png", NULL);
    cr_expect(strstr(r->fields[6], file) && strstr(r->fields[6], g_strerror(ENOSPC)),
              "%s: the error names %s and the full disk: %s", name, file, r->fields[6]);
    cr_expect_not(g_file_test(final, G_FILE_TEST_EXISTS), "no %s", final);
  }
  expect_no_leftovers(out);
}
