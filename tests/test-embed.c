/*
 * test-embed.c — Eosin embedded by another program through eosin.h alone:
 * tests/embed/run-slide.c, built against libeosin.so with pkg-config
 * (make test builds it, EOSIN_EMBED names it), runs a task on a slide and
 * its result is the one `eosin run` writes; its errors come back as
 * GErrors with the library's codes, nothing printed by the library.
 */
#include "test-util.h"

#include <sys/wait.h>

/* Runs the embedding program; its exit status, stdout and stderr. */
static int run_embed(const char *config, const char *slide, const char *outdir, char **out,
                     char **err) {
  const char *bin = g_getenv("EOSIN_EMBED");
  cr_assert(bin, "EOSIN_EMBED is not set: run the tests with `make test`");
  const char *argv[] = {bin, config, slide, outdir, NULL};
  int status = -1;
  g_autoptr(GError) e = NULL;
  cr_assert(g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, out, err,
                         &status, &e),
            "spawn %s: %s", bin, e ? e->message : "?");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Test(embed, runs_a_slide_through_the_public_api) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *a = g_build_filename(dir, "embedded", NULL);
  g_autofree char *b = g_build_filename(dir, "cli", NULL);
  g_autofree char *out = NULL, *err = NULL;
  int rc = run_embed("configs/stain.ini", slide, a, &out, &err);
  cr_assert_eq(rc, 0, "run-slide exit %d:\n%s%s", rc, out, err);
  cr_expect(strstr(out, "4000 x 3000 px, 0.5000 um/px, 5 levels, aperio"), "%s", out);
  cr_expect(strstr(out, "task stain: 24 tiles analysed (48 planned, 24 without tissue)"), "%s",
            out);
  cr_expect(strstr(out, "\"mean_od_hematoxylin\""), "%s", out);
  /* the progress callback reached the program; the library printed nothing */
  cr_expect(strstr(err, "run-slide: 24/24 tiles"), "%s", err);
  cr_expect(!strstr(err, "eosin:"), "the library wrote to stderr: %s", err);
  cr_assert(output_complete("configs/stain.ini", slide, a));

  /* the same result as the CLI's, file for file (report.json aside: its
   * command line and timings differ) */
  const char *argv[] = {"run", "--task", "configs/stain.ini", slide, "-o", b, NULL};
  cr_assert_eq(run_eosin(argv, NULL, NULL), 0);
  const char *files[] = {"overlay.tif", "heatmap.tif", "tiles.csv", "tiles.geojson", "tissue.png",
                         NULL};
  for (int i = 0; files[i]; i++) {
    g_autofree char *pa = g_build_filename(a, "tissue-a", files[i], NULL);
    g_autofree char *pb = g_build_filename(b, "tissue-a", files[i], NULL);
    g_autofree char *da = NULL, *db = NULL;
    gsize la = 0, lb = 0;
    cr_assert(g_file_get_contents(pa, &da, &la, NULL), "%s", pa);
    cr_assert(g_file_get_contents(pb, &db, &lb, NULL), "%s", pb);
    cr_expect(la == lb && !memcmp(da, db, la), "%s differs from the CLI's", files[i]);
  }
}

Test(embed, errors_come_back_with_their_codes) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *bad = write_config("[task]\nname = x\nanalyzer = stain\n[tiling]\nmpp = 1\n"
                                      "colour = red\n");
  g_autofree char *out = NULL, *err = NULL;
  cr_expect_eq(run_embed(bad, slide, dir, &out, &err), 2, "%s", err);
  cr_expect(strstr(err, "colour"), "the error names the key: %s", err);
  g_free(out), g_free(err);
  out = err = NULL;
  g_autofree char *missing = g_build_filename(dir, "no-such.svs", NULL);
  cr_expect_eq(run_embed("configs/stain.ini", missing, dir, &out, &err), 1, "%s", err);
  cr_expect(strstr(err, "no-such.svs"), "the error names the slide: %s", err);
}
