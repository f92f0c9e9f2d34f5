/*
 * test-firsthour.c — the faults a newcomer met in the first hour with the
 * README (issue 21): `eosin info` on a slide without µm/px, --help on
 * every command, bad --mpp values, --mpp beside a slide's own µm/px,
 * --device blamed on the config, `eosin run` over a finished result.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>
#include <vips/vips.h>

/* A 512 x 384 RGB PNG (no µm/px: PNG has no TIFF resolution tags) of
 * pink "tissue". Caller frees the path. */
static char *slide_without_mpp(void) {
  g_autofree char *dir = tmp_dir();
  char *path = g_build_filename(dir, "no-mpp.png", NULL);
  g_autofree guchar *px = g_malloc(512 * 384 * 3);
  for (int i = 0; i < 512 * 384; i++)
    px[i * 3] = 220, px[i * 3 + 1] = 140, px[i * 3 + 2] = 190;
  VipsImage *img = vips_image_new_from_memory(px, 512 * 384 * 3, 512, 384, 3, VIPS_FORMAT_UCHAR);
  cr_assert(img && vips_pngsave(img, path, NULL) == 0, "%s", vips_error_buffer());
  g_object_unref(img);
  return path;
}

Test(firsthour, info_describes_a_slide_without_mpp) {
  g_autofree char *slide = slide_without_mpp();
  const char *argv[] = {"info", slide, NULL};
  g_autofree char *out = NULL, *err = NULL;
  cr_expect_eq(run_eosin(argv, &out, &err), 0, "%s", err);
  const char *want[] = {"size:       512 x 384 px", "levels:", "hash:",
                        "µm/px:      unknown (", "give it with --mpp UM"};
  for (size_t i = 0; i < G_N_ELEMENTS(want); i++)
    cr_expect(out && strstr(out, want[i]), "stdout lacks '%s':\n%s", want[i], out);
  const char *jargv[] = {"info", slide, "--json", NULL};
  g_autofree char *jout = NULL;
  cr_expect_eq(run_eosin(jargv, &jout, NULL), 0);
  g_autoptr(JsonParser) p = json_parser_new();
  cr_assert(json_parser_load_from_data(p, jout, -1, NULL), "%s", jout);
  JsonObject *o = json_node_get_object(json_parser_get_root(p));
  cr_expect(JSON_NODE_HOLDS_NULL(json_object_get_member(o, "mpp_x")), "mpp_x is null: %s", jout);
  cr_expect(json_object_has_member(o, "mpp_problem"), "%s", jout);
  /* with --mpp it is known, from the user */
  const char *margv[] = {"info", slide, "--mpp", "0.5", NULL};
  g_autofree char *mout = NULL;
  cr_expect_eq(run_eosin(margv, &mout, NULL), 0);
  cr_expect(strstr(mout, "0.5000 x 0.5000 (from user)"), "%s", mout);
}

Test(firsthour, every_command_answers_help_with_exit_0) {
  const char *cmds[][3] = {{"--help", NULL},          {"help", NULL},
                           {"info", "--help"},        {"run", "--help"},
                           {"batch", "--help"},       {"predict", "--help"},
                           {"eval", "--help"},        {"eval", "camelyon16", "--help"},
                           {"eval", "camelyon17", "--help"},
                           {"version", "--help"},     {"slurm", "--help"},
                           {"slurm", "submit", "--help"},
                           {"slurm", "status", "--help"}};
  for (size_t i = 0; i < G_N_ELEMENTS(cmds); i++) {
    const char *argv[4] = {cmds[i][0], cmds[i][1], cmds[i][2], NULL};
    g_autofree char *out = NULL, *err = NULL;
    int rc = run_eosin(argv, &out, &err);
    cr_expect_eq(rc, 0, "eosin %s %s %s: exit %d: %s", cmds[i][0], cmds[i][1] ? cmds[i][1] : "",
                 cmds[i][2] ? cmds[i][2] : "", rc, err);
    cr_expect(out && strlen(out) > 40, "eosin %s %s: says something on stdout", cmds[i][0],
              cmds[i][1] ? cmds[i][1] : "");
  }
}

Test(firsthour, every_bad_mpp_is_exit_2_with_its_reason) {
  g_autofree char *slide = td("tissue-a.svs"), *out = tmp_dir();
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  const char *bad[] = {"abc", "0.001", "100", "-1", "nan", "inf"};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    const char *info[] = {"info", slide, "--mpp", bad[i], NULL};
    expect_run(info, 2, "--mpp", bad[i]);
    const char *run[] = {"run", "--task", cfg, slide, "-o", out, "--mpp", bad[i], NULL};
    expect_run(run, 2, "--mpp", bad[i]);
  }
  const char *range[] = {"info", slide, "--mpp", "100", NULL};
  expect_run(range, 2, "from 0.02 to 50", "the range is named");
  /* a slide with its own µm/px: --mpp is said to be unused, naming both */
  const char *own[] = {"run", "--task", cfg, slide, "-o", out, "--mpp", "0.3", NULL};
  expect_run(own, 0, "--mpp 0.3 (or the manifest's mpp) is not used: the slide states 0.5 x 0.5",
             "--mpp beside the slide's own");
}

Test(firsthour, a_device_given_on_the_command_line_is_blamed_there) {
  g_autofree char *slide = td("tissue-a.svs"), *out = tmp_dir();
  g_autofree char *cfg = cnn_lesions_config("device-test");
  /* no machine has 64 GPUs: the device cannot start anywhere */
  const char *argv[] = {"run", "--task", cfg, slide, "-o", out, "--device", "cuda:63", NULL};
  g_autofree char *err = NULL;
  int rc = run_eosin(argv, NULL, &err);
  cr_expect_neq(rc, 0);
  cr_expect(strstr(err, "--device cuda:63 (command line)"), "%s", err);
  cr_expect_not(strstr(err, "[model] path"), "the config is not blamed: %s", err);
}

Test(firsthour, run_keeps_a_finished_result_unless_forced) {
  g_autofree char *slide = td("tissue-a.svs"), *out = tmp_dir();
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  const char *argv[] = {"run", "--task", cfg, slide, "-o", out, NULL};
  g_autofree char *o1 = NULL, *e1 = NULL;
  cr_assert_eq(run_eosin(argv, &o1, &e1), 0, "%s", e1);
  g_autofree char *rep = g_build_filename(out, "tissue-a", "report.json", NULL);
  g_autofree char *before = slurp(rep);
  g_autofree char *o2 = NULL;
  cr_expect_eq(run_eosin(argv, &o2, NULL), 0);
  cr_expect(strstr(o2, "already complete") && strstr(o2, "--force"), "%s", o2);
  g_autofree char *kept = slurp(rep);
  cr_expect_str_eq(before, kept, "the finished result is kept, byte for byte");
  const char *force[] = {"run", "--task", cfg, slide, "-o", out, "--force", NULL};
  g_autofree char *o3 = NULL;
  cr_expect_eq(run_eosin(force, &o3, NULL), 0);
  cr_expect(strstr(o3, "tiles analysed"), "--force recomputes: %s", o3);
  g_autofree char *redone = slurp(rep);
  cr_expect_str_neq(before, redone, "a new report (its creation time)");
}

/* A 1000 x 700 px PNG of red "tissue" with some texture: the colour
 * classifier's "red" lesion covers it edge to edge, and 64 px tiles (at
 * --mpp 0.5 and [tiling] mpp 0.5) reach 24 px past its right edge and 4 px
 * past its bottom. */
static char *red_slide(void) {
  g_autofree char *dir = tmp_dir();
  char *path = g_build_filename(dir, "red.png", NULL);
  const int W = 1000, H = 700;
  g_autofree guchar *px = g_malloc((size_t) W * H * 3);
  guint32 seed = 1;
  for (int i = 0; i < W * H; i++) {
    seed = seed * 1664525u + 1013904223u;
    int d = (int) (seed >> 27) - 16;
    px[i * 3] = (guchar) (200 + d), px[i * 3 + 1] = (guchar) (40 + d), px[i * 3 + 2] = (guchar) (50 + d);
  }
  VipsImage *img = vips_image_new_from_memory(px, (size_t) W * H * 3, W, H, 3, VIPS_FORMAT_UCHAR);
  cr_assert(img && vips_pngsave(img, path, NULL) == 0, "%s", vips_error_buffer());
  g_object_unref(img);
  return path;
}

Test(firsthour, lesion_outlines_stay_inside_the_slide) {
  g_autofree char *slide = red_slide(), *out = tmp_dir();
  g_autofree char *cfg = cnn_lesions_config("lesion-clip");
  const char *argv[] = {"run", "--task", cfg, slide, "--mpp", "0.5", "-o", out, NULL};
  g_autofree char *err = NULL;
  cr_assert_eq(run_eosin(argv, NULL, &err), 0, "%s", err);
  g_autofree char *xml = g_build_filename(out, "red", "lesions.xml", NULL);
  g_autofree char *text = slurp(xml);
  int n = 0;
  double max_x = 0, max_y = 0;
  for (const char *p = strstr(text, " X=\""); p; p = strstr(p + 1, " X=\"")) {
    double x = g_ascii_strtod(p + 4, NULL);
    const char *q = strstr(p, " Y=\"");
    double y = q ? g_ascii_strtod(q + 4, NULL) : 0;
    max_x = MAX(max_x, x), max_y = MAX(max_y, y);
    n++;
  }
  cr_assert_gt(n, 3, "a lesion was outlined: %s", text);
  cr_expect_leq(max_x, 1000, "lesions.xml reaches X = %.1f on a 1000 px wide slide", max_x);
  cr_expect_leq(max_y, 700, "lesions.xml reaches Y = %.1f on a 700 px high slide", max_y);
  cr_expect_geq(max_x, 990, "the outline still reaches the edge (X %.1f)", max_x);
  g_autofree char *geo = g_build_filename(out, "red", "lesions.geojson", NULL);
  g_autofree char *gtext = slurp(geo);
  cr_expect_not(strstr(gtext, "[1024.0,") || strstr(gtext, ",704.0]"),
                "lesions.geojson is clipped too");
}

Test(firsthour, batch_dir_takes_slides_not_their_masks_and_notes) {
  g_autofree char *dir = tmp_dir(), *out = tmp_dir(), *src = td("tissue-a.svs");
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *a = g_build_filename(dir, "a.svs", NULL);
  cr_assert_eq(symlink(src, a), 0);
  /* a CAMELYON-style folder: the slide's truth mask (an image libvips
   * reads), its annotations, a reference table, notes */
  g_autofree char *mask = slide_without_mpp();
  g_autofree char *mask_to = g_build_filename(dir, "a_mask.png", NULL);
  cr_assert_eq(symlink(mask, mask_to), 0);
  const char *others[] = {"a.xml", "reference.csv", "notes.txt"};
  for (size_t i = 0; i < G_N_ELEMENTS(others); i++) {
    g_autofree char *p = g_build_filename(dir, others[i], NULL);
    cr_assert(g_file_set_contents(p, "x\n", -1, NULL));
  }
  const char *argv[] = {"batch", "--task", cfg, dir, "-o", out, NULL};
  g_autofree char *so = NULL, *se = NULL;
  cr_expect_eq(run_eosin(argv, &so, &se), 0, "%s", se);
  cr_expect(strstr(so, "batch: 1 slides: 1 done"), "only a.svs is a slide: %s", so);
  cr_expect(strstr(se, "4 files that are not slides left out") && strstr(se, "a_mask.png") &&
                strstr(se, "a.xml") && strstr(se, "reference.csv") && strstr(se, "notes.txt"),
            "what was left out is listed: %s", se);
  g_autofree char *masked = g_build_filename(out, "a_mask", NULL);
  cr_expect_not(g_file_test(masked, G_FILE_TEST_EXISTS), "the mask was not analysed");
}

Test(firsthour, make_test_ends_with_passed_failed_skipped) {
  g_autofree char *here = g_path_get_dirname(__FILE__);
  g_autofree char *script = g_build_filename(here, "..", "scripts", "test", "run-tests", NULL);
  if (!g_file_test(script, G_FILE_TEST_IS_EXECUTABLE))
    cr_skip_test("%s is not here (a bundle without the source tree): skipped", script);
  g_autofree char *dir = tmp_dir();
  g_autofree char *log = g_build_filename(dir, "test.log", NULL);
  /* Criterion's output as it is: a skipped test prints [SKIP] and [PASS] */
  const char *fake = "printf '[PASS] a::one\\n[SKIP] a::two: no GPU\\n[PASS] a::two\\n"
                     "[FAIL] a::three\\n[====] Synthesis: Tested: 3 | Passing: 2 | Failing: 1 | "
                     "Crashing: 0 \\n'; exit 1";
  const char *argv[] = {script, log, "sh", "-c", fake, NULL};
  g_autofree char *out = NULL;
  int status = -1;
  cr_assert(g_spawn_sync(NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, NULL,
                         &status, NULL));
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1, "the tests' exit status is kept");
  cr_expect(strstr(out, "make test: 1 passed, 1 failed, 0 crashed, 1 skipped (of 3 tests)"), "%s",
            out);
}

Test(firsthour, the_batch_eta_counts_down_with_the_work_left) {
  /* 4 slides of 100 tiles at a steady 10 tiles/s (writing included): the
   * ETA must fall one second per second, from 40 s to 0 (issue 21: it
   * stayed at 0m22s from half way to the end) */
  cr_expect(isnan(_eosin_batch_eta(0, 0, 100, 100, 3)), "nothing measured yet");
  for (int t = 1; t < 40; t++) {
    int slide = t / 10, in_slide = (t % 10) * 10;
    double eta = _eosin_batch_eta(t, t * 10.0, 100 - in_slide, 100, 3 - slide);
    cr_expect_float_eq(eta, 40 - t, 1e-9, "at %d s: ETA %.2f s, expected %d", t, eta, 40 - t);
  }
  /* slides of different sizes: the mean of those seen stands for the rest */
  cr_expect_float_eq(_eosin_batch_eta(10, 100, 50, 75, 2), 0.1 * (50 + 150), 1e-9);
}
