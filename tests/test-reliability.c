/*
 * test-reliability.c — the hostile review's cases (issue "Lose nothing,
 * harm nothing"), each through the eosin command as a lab would hit it:
 * Eosin never deletes what it did not write, never calls a broken result
 * complete, never reuses another slide's, config's or model's result,
 * refuses a second process on one OUTDIR, refuses damaged scanner slides
 * and decompression bombs in bounded memory, stops within a second, tiles
 * non-square pixels correctly, refuses configs it cannot hold in memory,
 * parses configs strictly, and keeps the smaller promises (CSV escaping,
 * FIFOs, empty -o, --mpp nan, exit codes, manifest comments).
 */
#include "test-util.h"
#include "eosin-private.h"

#include <glib/gstdio.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void copy(const char *src, const char *dst) {
  g_autofree char *data = NULL;
  gsize len;
  cr_assert(g_file_get_contents(src, &data, &len, NULL), "read %s", src);
  cr_assert(g_file_set_contents(dst, data, len, NULL), "write %s", dst);
}

static bool same_bytes(const char *a, const char *b) {
  g_autofree char *x = NULL, *y = NULL;
  gsize lx, ly;
  return g_file_get_contents(a, &x, &lx, NULL) && g_file_get_contents(b, &y, &ly, NULL) &&
         lx == ly && !memcmp(x, y, lx);
}

static char *file_in(const char *dir, const char *name) {
  return g_build_filename(dir, name, NULL);
}

static char *summary_status(const char *out, const char *name) {
  g_autofree char *p = file_in(out, "batch-summary.csv");
  g_autoptr(GPtrArray) rows = _eosin_csv_read(p, "summary", EOSIN_CSV_PLAIN, NULL);
  cr_assert(rows, "%s", p);
  for (guint i = 1; i < rows->len; i++) {
    EosinCsvRow *r = rows->pdata[i];
    if (r->n >= 3 && !strcmp(r->fields[1], name))
      return g_strdup(r->fields[2]);
  }
  return g_strdup("(absent)");
}

/* ------------------------------------------------------------ 1. never delete */

Test(reliability, never_deletes_a_folder_it_did_not_write) {
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *slide = td("tissue-a.svs");
  /* the review's case: the slide and a note in OUTDIR/<slide> */
  g_autofree char *d = tmp_dir();
  g_autofree char *case1 = file_in(d, "case1");
  cr_assert_eq(g_mkdir(case1, 0755), 0);
  g_autofree char *svs = file_in(case1, "case1.svs"), *notes = file_in(case1, "notes.txt");
  copy(slide, svs);
  cr_assert(g_file_set_contents(notes, "x\n", -1, NULL));
  const char *run[] = {"run", "--task", cfg, svs, "-o", d, NULL};
  expect_run(run, 1, case1, "run into the slide's own folder");
  cr_expect(same_bytes(svs, slide), "the input slide is intact");
  cr_expect(g_file_test(notes, G_FILE_TEST_EXISTS), "the user's notes are intact");
  /* the same through batch */
  g_autofree char *mdir = tmp_dir();
  g_autofree char *manifest = file_in(mdir, "slides.csv");
  g_autofree char *mtext = g_strdup_printf("path\n%s\n", svs);
  cr_assert(g_file_set_contents(manifest, mtext, -1, NULL));
  const char *batch[] = {"batch", "--task", cfg, "--manifest", manifest, "-o", d, NULL};
  expect_run(batch, 3, NULL, "batch into the slide's own folder");
  cr_expect(same_bytes(svs, slide) && g_file_test(notes, G_FILE_TEST_EXISTS),
            "batch left the slide and the notes alone");
  g_autofree char *sumpath = file_in(d, "batch-summary.csv");
  g_autofree char *summary = slurp(sumpath);
  cr_expect(strstr(summary, "not replacing it"), "the summary says why: %s", summary);

  /* a plain file where the output folder goes */
  g_autofree char *d2 = tmp_dir();
  g_autofree char *plain = file_in(d2, "tissue-a");
  cr_assert(g_file_set_contents(plain, "a lab's file\n", -1, NULL));
  const char *run2[] = {"run", "--task", cfg, slide, "-o", d2, NULL};
  expect_run(run2, 1, "is a file", "a file named like the output folder");
  g_autofree char *ptext = slurp(plain);
  cr_expect_str_eq(ptext, "a lab's file\n");

  /* rerunning slide A must not touch the result of a slide named A.old */
  g_autofree char *d3 = tmp_dir(), *src = tmp_dir();
  g_autofree char *a = file_in(src, "A.svs"), *aold = file_in(src, "A.old.svs");
  copy(slide, a);
  g_autofree char *slide_b = td("tissue-b.svs");
  copy(slide_b, aold);
  const char *ra[] = {"run", "--task", cfg, a, "-o", d3, NULL};
  const char *rold[] = {"run", "--task", cfg, aold, "-o", d3, NULL};
  expect_run(rold, 0, NULL, "slide A.old");
  expect_run(ra, 0, NULL, "slide A");
  g_autofree char *old_report = file_in(d3, "A.old/report.json");
  g_autofree char *before = slurp(old_report);
  expect_run(ra, 0, NULL, "slide A again (replaces its own result)");
  g_autofree char *after = slurp(old_report);
  cr_expect_str_eq(before, after, "A.old's result is untouched");

  /* an Eosin result with a user's file added is no longer Eosin's alone */
  g_autofree char *added = file_in(d3, "A/my-annotations.geojson");
  cr_assert(g_file_set_contents(added, "{}", -1, NULL));
  g_autofree char *a_report = file_in(d3, "A/report.json");
  g_autofree char *a_before = slurp(a_report);
  expect_run(ra, 1, "my-annotations.geojson", "a result holding a user's file");
  g_autofree char *a_after = slurp(a_report);
  cr_expect(g_file_test(added, G_FILE_TEST_EXISTS), "the user's file is intact");
  cr_expect_str_eq(a_before, a_after, "the previous result is intact");
  g_unlink(added);
  expect_no_leftovers(d3);
}

/* A second hostile look at the marker and the lock: a marker copied into a
 * user's folder, a user's file named like a temporary one, a lock file
 * that is a user's file (or a hard link to one) are not Eosin's; a result
 * edited in place with its size kept is not complete; a slide named like a
 * batch file fails alone; a report nested to overflow the parser's stack
 * is refused, not followed. */
static void rewrite_marker_entry(const char *dir, const char *name) {
  g_autofree char *mpath = file_in(dir, ".eosin-output"), *fpath = file_in(dir, name);
  g_autofree char *marker = slurp(mpath), *data = NULL;
  gsize len;
  cr_assert(g_file_get_contents(fpath, &data, &len, NULL));
  g_autofree char *sum = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (guchar *) data, len);
  g_autoptr(GString) out = g_string_new(NULL);
  g_auto(GStrv) lines = g_strsplit(marker, "\n", -1);
  g_autofree char *suffix = g_strdup_printf(" %s", name);
  bool found = false;
  for (int i = 0; lines[i]; i++) {
    if (g_str_has_prefix(lines[i], "file ") && g_str_has_suffix(lines[i], suffix)) {
      g_string_append_printf(out, "file %" G_GSIZE_FORMAT " %s %s", len, sum, name);
      found = true;
    } else {
      g_string_append(out, lines[i]);
    }
    if (lines[i + 1])
      g_string_append_c(out, '\n');
  }
  cr_assert(found, "the marker lists %s: %s", name, marker);
  cr_assert(g_file_set_contents(mpath, out->str, out->len, NULL));
}

Test(reliability, copied_markers_user_temp_files_and_edits_are_not_trusted) {
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *slide = td("tissue-a.svs");
  const char *run[] = {"run", "--task", cfg, slide, "-o", NULL, NULL};

  /* an unsealed marker copied into a user's folder of output names */
  g_autofree char *d1 = tmp_dir();
  g_autofree char *f1 = file_in(d1, "tissue-a");
  cr_assert_eq(g_mkdir(f1, 0755), 0);
  g_autofree char *m1 = file_in(f1, ".eosin-output"), *r1 = file_in(f1, "report.json");
  cr_assert(g_file_set_contents(m1, "eosin-output 1\n", -1, NULL));
  cr_assert(g_file_set_contents(r1, "a lab's notes\n", -1, NULL));
  run[5] = d1;
  expect_run(run, 1, "never sealed", "a copied unsealed marker");
  g_autofree char *r1text = slurp(r1);
  cr_expect_str_eq(r1text, "a lab's notes\n", "the user's report.json is intact");

  /* a user's file named like a temporary file, inside a finished result */
  g_autofree char *d2 = tmp_dir();
  run[5] = d2;
  expect_run(run, 0, NULL, "a first result");
  g_autofree char *mine = file_in(d2, "tissue-a/.tiles.csv.mynotes.tmp");
  g_autofree char *mine6 = file_in(d2, "tissue-a/.tiles.csv.Ab12Cd.tmp");
  cr_assert(g_file_set_contents(mine, "mine\n", -1, NULL));
  expect_run(run, 1, ".tiles.csv.mynotes.tmp", "a user's .tmp file in a result");
  cr_expect(g_file_test(mine, G_FILE_TEST_EXISTS), "the user's file is intact");
  g_unlink(mine);
  cr_assert(g_file_set_contents(mine6, "mine\n", -1, NULL));
  expect_run(run, 1, ".tiles.csv.Ab12Cd.tmp", "a temporary name in a sealed result");
  cr_expect(g_file_test(mine6, G_FILE_TEST_EXISTS), "the user's file is intact");
  g_unlink(mine6);

  /* the lock: a hard link to a user's file, a user's file of that name */
  g_autofree char *d3 = tmp_dir(), *ud = tmp_dir();
  g_autofree char *user = file_in(ud, "userfile"), *lock = file_in(d3, ".eosin-lock");
  cr_assert(g_file_set_contents(user, "important\n", -1, NULL));
  cr_assert_eq(link(user, lock), 0);
  run[5] = d3;
  expect_run(run, 1, "not a lock file", "a lock hard-linked to a user's file");
  g_autofree char *utext = slurp(user);
  cr_expect_str_eq(utext, "important\n", "the user's file is intact");
  cr_expect(g_file_test(lock, G_FILE_TEST_EXISTS), "the link is left alone");
  g_unlink(lock);
  cr_assert(g_file_set_contents(lock, "my lock\n", -1, NULL));
  expect_run(run, 1, "not a lock file", "a user's file named .eosin-lock");
  g_autofree char *ltext = slurp(lock);
  cr_expect_str_eq(ltext, "my lock\n");
  g_unlink(lock);
  expect_run(run, 0, NULL, "then the run goes ahead");

  /* a slide named like a file the batch writes fails alone */
  g_autofree char *sd = tmp_dir(), *d4 = tmp_dir();
  g_autofree char *bad = file_in(sd, "batch-summary.csv.svs"), *zz = file_in(sd, "zz.svs");
  copy(slide, bad);
  copy(slide, zz);
  const char *b4[] = {"batch", "--task", cfg, sd, "-o", d4, NULL};
  for (int round = 0; round < 2; round++) {
    expect_run(b4, 3, "batch-summary.csv", "a slide named like the summary");
    g_autofree char *st = summary_status(d4, "zz");
    cr_expect(!strcmp(st, round ? "skipped-complete" : "done"), "round %d: zz is %s", round,
              st);
  }
  g_unlink(bad);

  /* a report edited in place, its size kept: recomputed, or refused */
  g_autofree char *rep = file_in(d4, "zz/report.json");
  g_autofree char *text = slurp(rep);
  char *status = strstr(text, "\"complete\"");
  cr_assert(status);
  char *digit = strpbrk(text, "0123456789");
  cr_assert(digit);
  *digit = *digit == '9' ? '8' : '9';
  cr_assert(g_file_set_contents(rep, text, -1, NULL));
  const char *b4r[] = {"batch", "--task", cfg, sd, "-o", d4, "--refuse-stale", NULL};
  expect_run(b4r, 3, "checksum", "an edited report with --refuse-stale");
  g_autofree char *still = slurp(rep);
  cr_expect_str_eq(still, text, "--refuse-stale left the edited result alone");
  expect_run(b4, 0, "checksum", "an edited report is recomputed");
  g_autofree char *st5 = summary_status(d4, "zz");
  cr_expect_str_eq(st5, "done-replaced");

  /* a report nested to overflow json-glib's stack, the marker made to match */
  g_autofree char *deep = g_strnfill(4 << 20, '[');
  cr_assert(g_file_set_contents(rep, deep, -1, NULL));
  g_autofree char *zzdir = file_in(d4, "zz");
  rewrite_marker_entry(zzdir, "report.json");
  expect_run(b4, 0, "recomputing", "a deeply nested report");
  g_autofree char *st6 = summary_status(d4, "zz");
  cr_expect_str_eq(st6, "done-replaced");

  /* the summary's temporary file from a batch killed as it wrote goes; a
   * user's file that only looks like one stays */
  g_autofree char *stale = file_in(d4, ".batch-summary.csv.Xy12Zw.tmp");
  g_autofree char *notmine = file_in(d4, ".batch-summary.csv.notes.tmp");
  cr_assert(g_file_set_contents(stale, "slide,name\n", -1, NULL));
  cr_assert(g_file_set_contents(notmine, "mine\n", -1, NULL));
  expect_run(b4, 0, NULL, "a batch after a killed one");
  cr_expect_not(g_file_test(stale, G_FILE_TEST_EXISTS), "the stale temporary file is removed");
  cr_expect(g_file_test(notmine, G_FILE_TEST_EXISTS), "the user's file stays");
  g_unlink(notmine);
  expect_no_leftovers(d4);
}

/* ------------------------------------------------------------ 2. non-finite */

static char *broken_model_config(const char *model, const char *extra) {
  g_autofree char *m = td(model);
  g_autofree char *text = g_strdup_printf(
      "[task]\nname = nan-test\nanalyzer = cnn\n"
      "[tiling]\ntile_size = 64\noverlap = 0\nmpp = 1\n"
      "[tissue]\nmin_fraction = 0.25\nthumbnail_mpp = 4\nmin_object_um2 = 5000\n"
      "[scheduler]\nreaders = 2\nbatch_size = 8\nqueue_depth = 2\n"
      "[overlay]\nchannel = b\n"
      "[model]\npath = %s\nclasses = a, b, c\nactivation = softmax\ndevice = cpu\n"
      "mean = 0.3, 0.4, 0.5\nstd = 0.5, 0.4, 0.6\nchannel_order = bgr\n%s",
      m, extra ? extra : "");
  return write_config(text);
}

Test(reliability, non_finite_model_outputs_are_an_error_never_a_score) {
  g_autofree char *slide = td("tissue-a.svs");
  const char *models[] = {"cnn/nan-classifier.onnx", "cnn/inf-classifier.onnx"};
  for (int m = 0; m < 2; m++) {
    g_autofree char *cfg = broken_model_config(models[m], "[lesions]\nchannel = b\n");
    g_autofree char *out = tmp_dir();
    const char *run[] = {"run", "--task", cfg, slide, "-o", out, NULL};
    g_autofree char *err = NULL;
    int rc = run_eosin(run, NULL, &err);
    cr_expect_eq(rc, 1, "%s: exit %d: %s", models[m], rc, err);
    cr_expect(strstr(err, "not finite") && strstr(err, "tile ") && strstr(err, "level-0"),
              "%s: names the problem and the tile: %s", models[m], err);
    g_autofree char *final = file_in(out, "tissue-a");
    cr_expect_not(g_file_test(final, G_FILE_TEST_EXISTS), "%s: no result", models[m]);
    expect_no_leftovers(out);
    /* a batch records the failure and gives no slide probability */
    g_autofree char *bout = tmp_dir();
    g_autofree char *list = file_in(bout, "list.csv");
    g_autofree char *ltext = g_strdup_printf("%s\n", slide);
    cr_assert(g_file_set_contents(list, ltext, -1, NULL));
    const char *b2[] = {"batch", "--task", cfg, "--manifest", list, "-o", bout, NULL};
    cr_expect_eq(run_eosin(b2, NULL, NULL), 3, "%s: batch exit 3", models[m]);
    g_autofree char *st = summary_status(bout, "tissue-a");
    cr_expect_str_eq(st, "failed", "%s", models[m]);
    g_autofree char *csv = file_in(bout, "camelyon-slides.csv");
    g_autofree char *ctext = slurp(csv);
    cr_expect_str_eq(ctext, "name,probability\n", "%s: no probability for a NaN slide",
                     models[m]);
  }
}

/* Every JSON and GeoJSON file of a finished result parses. */
static void expect_json_parses(const char *dir) {
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  cr_assert(d, "%s", dir);
  const char *name;
  int n = 0;
  while ((name = g_dir_read_name(d))) {
    if (!g_str_has_suffix(name, ".json") && !g_str_has_suffix(name, ".geojson"))
      continue;
    g_autofree char *p = file_in(dir, name);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) e = NULL;
    cr_expect(json_parser_load_from_file(parser, p, &e), "%s does not parse: %s", p,
              e ? e->message : "");
    n++;
  }
  cr_expect_geq(n, 1, "JSON files in %s", dir);
}

Test(reliability, every_json_eosin_writes_parses) {
  g_autofree char *slide = td("tissue-b.svs");
  g_autofree char *stain = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *cnn = broken_model_config("cnn/colour-classifier.onnx",
                                             "[lesions]\nchannel = b\nthreshold = 0.2\n");
  const char *cfgs[] = {stain, cnn};
  for (int i = 0; i < 2; i++) {
    g_autofree char *out = tmp_dir();
    const char *run[] = {"run", "--task", cfgs[i], slide, "-o", out, NULL};
    expect_run(run, 0, NULL, cfgs[i]);
    g_autofree char *res = file_in(out, "tissue-b");
    expect_json_parses(res);
  }
  /* a NaN in scores is JSON's null, and the writer refuses what would not parse */
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  _eosin_json_num(b, "x", NAN);
  json_builder_set_member_name(b, "raw");
  json_builder_add_double_value(b, NAN);
  json_builder_end_object(b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  g_autofree char *dir = tmp_dir();
  g_autofree char *path = file_in(dir, "x.json");
  g_autoptr(GError) e = NULL;
  cr_expect_not(_eosin_write_json(path, root, &e), "JSON with a raw NaN was written");
  cr_expect(e && strstr(e->message, "does not parse"), "%s", e ? e->message : "");
  cr_expect_not(g_file_test(path, G_FILE_TEST_EXISTS));
}

/* ------------------------------------------------------------ 3. resume identity */

Test(reliability, resume_reuses_only_the_same_slide_config_and_model) {
  g_autofree char *dir = tmp_dir(), *out = tmp_dir();
  g_autofree char *slide = file_in(dir, "x.svs");
  g_autofree char *src = td("tissue-a.svs");
  copy(src, slide);
  g_autofree char *stain = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *mdir = tmp_dir();
  g_autofree char *model = file_in(mdir, "model.onnx");
  g_autofree char *orig = td("cnn/colour-classifier.onnx");
  copy(orig, model);
  g_autofree char *mtext = g_strdup_printf(
      "[task]\nname = metastasis-like\nanalyzer = cnn\n"
      "[tiling]\ntile_size = 64\noverlap = 0\nmpp = 1\n"
      "[tissue]\nmin_fraction = 0.25\nthumbnail_mpp = 4\nmin_object_um2 = 5000\n"
      "[overlay]\nchannel = b\n"
      "[model]\npath = %s\nclasses = a, b, c\nactivation = softmax\ndevice = cpu\n"
      "mean = 0.3, 0.4, 0.5\nstd = 0.5, 0.4, 0.6\nchannel_order = bgr\n"
      "[lesions]\nchannel = b\n",
      model);
  g_autofree char *meta = write_config(mtext);
  const char *b_stain[] = {"batch", "--task", stain, dir, "-o", out, NULL};
  const char *b_meta[] = {"batch", "--task", meta, dir, "-o", out, NULL};
  expect_run(b_stain, 0, NULL, "stain batch");
  /* another task into the same OUTDIR: recomputed, not skipped */
  expect_run(b_meta, 0, "recomputing", "metastasis batch after stain");
  g_autofree char *st = summary_status(out, "x");
  cr_expect_str_eq(st, "done-replaced");
  g_autofree char *cpath = file_in(out, "camelyon-slides.csv");
  g_autofree char *camelyon = slurp(cpath);
  cr_expect(strstr(camelyon, "x,"), "the slide has its probability: %s", camelyon);
  /* the same again: skipped */
  expect_run(b_meta, 0, NULL, "metastasis again");
  g_autofree char *st2 = summary_status(out, "x");
  cr_expect_str_eq(st2, "skipped-complete");
  /* another x.svs from another folder: not the same slide */
  g_autofree char *dir2 = tmp_dir();
  g_autofree char *other = file_in(dir2, "x.svs");
  g_autofree char *src_b = td("tissue-b.svs");
  copy(src_b, other);
  const char *b_other[] = {"batch", "--task", meta, dir2, "-o", out, NULL};
  expect_run(b_other, 0, "another slide", "another x.svs");
  /* with --refuse-stale the first x.svs now fails, its place untouched */
  g_autofree char *rep = file_in(out, "x/report.json");
  g_autofree char *kept = slurp(rep);
  const char *b_refuse[] = {"batch", "--task", meta, dir, "-o", out, "--refuse-stale", NULL};
  expect_run(b_refuse, 3, "--refuse-stale", "refuse a stale result");
  g_autofree char *kept2 = slurp(rep);
  cr_expect_str_eq(kept, kept2, "--refuse-stale left the result alone");
  /* a changed model file at the same path: recomputed */
  expect_run(b_other, 0, NULL, "back to the other x");
  g_autofree char *mdata = NULL;
  gsize mlen;
  cr_assert(g_file_get_contents(orig, &mdata, &mlen, NULL));
  /* the same network with its producer string changed: other bytes */
  char *pos = memmem(mdata, mlen, "eosin-make-test-cnn", 19);
  cr_assert(pos);
  pos[0] = 'E';
  cr_assert(g_file_set_contents(model, mdata, mlen, NULL));
  expect_run(b_other, 0, "model", "a changed model");
  g_autofree char *st3 = summary_status(out, "x");
  cr_expect_str_eq(st3, "done-replaced");
}

/* ------------------------------------------------------------ 4. workers sharing an OUTDIR */

/* The name of a claim file (".<slide>.claim-<G>") in @dir, waiting up to
 * @seconds for one to appear; NULL if none did. Caller frees. */
static char *wait_for_claim(const char *dir, int seconds) {
  for (int i = 0; i < seconds * 1000; i++) {
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *e;
    while (d && (e = g_dir_read_name(d)))
      if (e[0] == '.' && strstr(e, ".claim-"))
        return g_strdup(e);
    g_usleep(1000);
  }
  return NULL;
}

/* A claim file as a worker writes it: host, PID, start. */
static void write_claim(const char *out, const char *slide, long pid) {
  g_autofree char *base = g_strdup_printf(".%s.claim-1", slide);
  g_autofree char *path = g_build_filename(out, base, NULL);
  g_autofree char *text =
      g_strdup_printf("host %s\npid %ld\nstarted 2026-01-01T00:00:00Z\n", g_get_host_name(), pid);
  cr_assert(g_file_set_contents(path, text, -1, NULL));
}

/* A PID that no process has: a child's, once reaped. */
static long dead_pid(void) {
  GPid pid;
  char *argv[] = {"/bin/true", NULL};
  cr_assert(g_spawn_async(NULL, argv, NULL, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, NULL));
  int st;
  waitpid(pid, &st, 0);
  g_spawn_close_pid(pid);
  return (long) pid;
}

Test(reliability, workers_share_one_outdir_and_respect_live_claims, .timeout = 300) {
  g_autofree char *dir = tmp_dir(), *out = tmp_dir();
  const char *names[] = {"tissue-a.svs", "tissue-b.svs", "tissue-c.svs"};
  for (int i = 0; i < 3; i++) {
    g_autofree char *s = td(names[i]);
    g_autofree char *d = file_in(dir, names[i]);
    cr_assert_eq(symlink(s, d), 0);
  }
  g_autofree char *cfg = stain_config(32, 0.5, 0, 0.25, NULL);
  const char *first[] = {"batch", "--task", cfg, "-o", out, dir, "--readers", "1", NULL};
  GPid pid = spawn_eosin(first);
  g_autofree char *claim = wait_for_claim(out, 60);
  cr_assert(claim, "the first batch never claimed a slide");
  /* a second worker joins: the slide claimed is left to the first */
  g_autofree char *out2 = NULL;
  const char *second[] = {"batch", "--task", cfg, "-o", out, dir, NULL};
  cr_expect_eq(run_eosin(second, &out2, NULL), 0);
  cr_expect_eq(reap_eosin(pid), 0, "the first batch finished undisturbed");
  cr_expect(strstr(out2, "left to other workers"), "%s", out2);
  for (int i = 0; i < 3; i++) {
    g_autofree char *name = g_strndup(names[i], 8);
    g_autofree char *st = summary_status(out, name);
    cr_expect_str_eq(st, "done", "%s: each slide done once, in one batch", name);
  }
  /* a live claim (this test's own PID) holds off a run and a batch */
  write_claim(out, "tissue-c", (long) getpid());
  g_autofree char *one = g_build_filename(dir, "tissue-c.svs", NULL);
  const char *run[] = {"run", "--task", cfg, one, "-o", out, NULL};
  expect_run(run, 1, "being analysed", "a run on a slide a live worker holds");
  g_autofree char *pidstr = g_strdup_printf("pid %ld", (long) getpid());
  expect_run(run, 1, pidstr, "the holder is named");
  g_autofree char *rep = file_in(out, "tissue-c/report.json");
  g_autofree char *before = slurp(rep);
  g_autofree char *so = NULL;
  const char *again[] = {"batch", "--task", cfg, "-o", out, dir, NULL};
  cr_expect_eq(run_eosin(again, &so, NULL), 0);
  cr_expect(strstr(so, "0 done, 2 already complete, 0 failed, 1 left to other workers"), "%s", so);
  g_autofree char *after = slurp(rep);
  cr_expect_str_eq(before, after, "the held slide was not touched");
  /* a stale claim (its PID dead) is taken over */
  g_autofree char *cpath = file_in(out, ".tissue-c.claim-1");
  g_unlink(cpath);
  write_claim(out, "tissue-c", dead_pid());
  g_unlink(rep); /* so that the slide must be redone, not skipped */
  g_free(so);
  so = NULL;
  cr_expect_eq(run_eosin(again, &so, NULL), 0);
  cr_expect(strstr(so, "1 done, 2 already complete, 0 failed;"), "%s", so);
  cr_expect(g_file_test(rep, G_FILE_TEST_EXISTS), "the slide of a dead holder was redone");
  cr_expect_not(g_file_test(cpath, G_FILE_TEST_EXISTS), "the dead holder's claim is gone");
  /* a holder killed outright leaves nothing that blocks a rerun */
  g_autofree char *out3 = tmp_dir();
  const char *k[] = {"batch", "--task", cfg, "-o", out3, dir, "--readers", "1", NULL};
  GPid victim = spawn_eosin(k);
  g_autofree char *c3 = wait_for_claim(out3, 60);
  cr_assert(c3);
  g_usleep(200000);
  kill(victim, SIGKILL);
  reap_eosin(victim);
  const char *k2[] = {"batch", "--task", cfg, "-o", out3, dir, NULL};
  g_autofree char *e3 = NULL;
  cr_expect_eq(run_eosin(k2, NULL, &e3), 0, "after SIGKILL: %s", e3);
  expect_no_leftovers(out3);
}

/* ------------------------------------------------------------ 5. damaged slides */

Test(reliability, damaged_scanner_slides_and_renamed_files_are_not_read) {
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *svs = td("aperio-truncated.svs"), *tif = td("aperio-truncated.tif");
  g_autofree char *out = tmp_dir();
  const char *r1[] = {"run", "--task", cfg, svs, "--mpp", "0.5", "-o", out, NULL};
  expect_run(r1, 1, "OpenSlide cannot open it", "a truncated .svs");
  const char *r2[] = {"run", "--task", cfg, tif, "--mpp", "0.5", "-o", out, NULL};
  expect_run(r2, 1, "an Aperio TIFF", "a truncated Aperio TIFF named .tif");
  /* an SVG is not a slide, whatever it is called */
  g_autofree char *dir = tmp_dir();
  const char *svg = "<svg xmlns='http://www.w3.org/2000/svg' width='4000' height='3000'>"
                    "<rect width='4000' height='3000' fill='#e896be'/></svg>";
  const char *exts[] = {"svg-slide.svs", "svg-slide.png", "svg-slide.svg"};
  for (int i = 0; i < 3; i++) {
    g_autofree char *p = file_in(dir, exts[i]);
    cr_assert(g_file_set_contents(p, svg, -1, NULL));
    const char *r[] = {"run", "--task", cfg, p, "--mpp", "0.5", "-o", out, NULL};
    expect_run(r, 1, "slide", exts[i]);
  }
  g_autoptr(GDir) d = g_dir_open(out, 0, NULL);
  cr_expect_null(g_dir_read_name(d), "nothing written");
}

Test(reliability, a_truncated_tcga_slide_is_an_error) {
  g_autofree char *tcga = shared_data("slides/tcga-cr-7395-01a-01-ts1.svs");
  REQUIRE_SHARED(tcga, "slides/tcga-cr-7395-01a-01-ts1.svs");
  g_autofree char *dir = tmp_dir(), *out = tmp_dir();
  g_autofree char *t = file_in(dir, "t.svs");
  g_autofree char *data = NULL;
  gsize len;
  cr_assert(g_file_get_contents(tcga, &data, &len, NULL));
  cr_assert(g_file_set_contents(t, data, MIN(len, 2800000), NULL));
  g_autofree char *stain = stain_config(64, 1.0, 0, 0.25, NULL);
  const char *r[] = {"run", "--task", stain, t, "--mpp", "0.25", "-o", out, NULL};
  expect_run(r, 1, "OpenSlide cannot open it", "the review's truncated TCGA slide");
}

/* ------------------------------------------------------------ 6. bombs */

/* Runs eosin with @args, sends SIGTERM after @after_s (0: never) and
 * returns its exit code, the seconds from the signal to its exit and its
 * peak resident memory (sampled every 20 ms). */
static int run_watched(const char *const *args, double after_s, double *stop_s, double *peak_mb) {
  GPid pid = spawn_eosin(args);
  gint64 t0 = g_get_monotonic_time(), sent = 0;
  *peak_mb = 0;
  *stop_s = 0;
  int status = 0;
  for (;;) {
    g_autofree char *st = NULL;
    g_autofree char *path = g_strdup_printf("/proc/%d/status", (int) pid);
    if (g_file_get_contents(path, &st, NULL, NULL)) {
      char *rss = strstr(st, "VmRSS:");
      if (rss)
        *peak_mb = MAX(*peak_mb, g_ascii_strtod(rss + 6, NULL) / 1024);
    }
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      break;
    double el = (g_get_monotonic_time() - t0) / 1e6;
    if (after_s > 0 && !sent && el >= after_s) {
      kill(pid, SIGTERM);
      sent = g_get_monotonic_time();
    }
    if (el > 240) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      break;
    }
    g_usleep(20000);
  }
  g_spawn_close_pid(pid);
  if (sent)
    *stop_s = (g_get_monotonic_time() - sent) / 1e6;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Test(reliability, decompression_bombs_in_bounded_memory_and_stoppable, .timeout = 300) {
  g_autofree char *cfg = stain_config(256, 1.0, 0, 0.25, NULL);
  double stop_s, peak;
  /* refused before any pixel is decoded */
  const char *refused[] = {"bomb-huge.tif", "bomb-wide-strips.tif"};
  for (int i = 0; i < 2; i++) {
    g_autofree char *b = td(refused[i]);
    g_autofree char *out = tmp_dir();
    const char *args[] = {"run", "--task", cfg, b, "-o", out, NULL};
    expect_run(args, 1, "Eosin", refused[i]);
    int rc = run_watched(args, 0, &stop_s, &peak);
    cr_expect_eq(rc, 1, "%s: exit %d", refused[i], rc);
    cr_expect_lt(peak, 1024, "%s: %.0f MB resident", refused[i], peak);
  }
  /* streamed (libvips, strips) or read through OpenSlide (tiles): a long
   * thumbnail, in bounded memory, and SIGTERM stops it within a second */
  const char *slow[] = {"bomb-strips.tif", "bomb-tiles.tif"};
  for (int i = 0; i < 2; i++) {
    g_autofree char *b = td(slow[i]);
    g_autofree char *out = tmp_dir();
    const char *args[] = {"run", "--task", cfg, b, "-o", out, NULL};
    int rc = run_watched(args, 3.0, &stop_s, &peak);
    cr_expect_eq(rc, 130, "%s: exit %d after SIGTERM", slow[i], rc);
    cr_expect_lt(stop_s, 1.0, "%s: stopped %.2f s after SIGTERM", slow[i], stop_s);
    cr_expect_lt(peak, 1024, "%s: %.0f MB resident", slow[i], peak);
    expect_no_leftovers(out);
  }
}

/* ------------------------------------------------------------ 8. non-square pixels */

Test(reliability, non_square_pixels_give_the_right_rows) {
  EosinLevel lvl = {4000, 3000, 1.0};
  EosinSlideInfo info = {.path = "synthetic", .width = 4000, .height = 3000, .n_levels = 1,
                         .levels = &lvl, .mpp_x = 0.5, .mpp_y = 5.0, .bounds_w = 4000,
                         .bounds_h = 3000};
  g_autofree char *cfgpath = stain_config(256, 1.0, 0, 0, NULL);
  g_autoptr(GError) err = NULL;
  g_autoptr(EosinConfig) cfg = eosin_config_load(cfgpath, &err);
  cr_assert(cfg);
  EosinTilePlan plan;
  cr_assert(eosin_tile_plan(&info, cfg, NULL, &plan, &err), "%s", err ? err->message : "");
  /* 256 px of 1 µm: 512 level-0 px across (0.5 µm), 51.2 down (5 µm) */
  cr_expect_float_eq(plan.tile_l0_x, 512, 1e-9);
  cr_expect_float_eq(plan.tile_l0_y, 51.2, 1e-9);
  cr_expect_eq(plan.rows, 59, "rows: %d", plan.rows);
  cr_expect_eq(plan.cols, 8, "cols: %d", plan.cols);
  cr_expect(plan.level.resample, "non-square pixels are resampled");
  cr_expect_float_eq(plan.level.scale, 2.0, 1e-9);
  cr_expect_float_eq(plan.level.scale_y, 0.2, 1e-9);
  eosin_tile_plan_clear(&plan);
}

Test(reliability, non_square_pixels_are_read_and_warned_about) {
  /* a generic TIFF of 0.5 x 1.0 µm pixels whose left half is pink */
  if (!_eosin_vips_init(NULL))
    cr_assert_fail("libvips");
  int W = 1200, H = 600;
  g_autofree uint8_t *px = g_malloc((size_t) W * H * 3);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint8_t *p = px + 3 * ((size_t) y * W + x);
      bool pink = x < W / 2;
      p[0] = pink ? 232 : 244, p[1] = pink ? 150 : 244, p[2] = pink ? 190 : 244;
    }
  g_autoptr(VipsImage) img = vips_image_new_from_memory(px, (size_t) W * H * 3, W, H, 3,
                                                        VIPS_FORMAT_UCHAR);
  g_autofree char *dir = tmp_dir(), *out = tmp_dir();
  g_autofree char *tif = file_in(dir, "aniso.tif");
  cr_assert_eq(vips_tiffsave(img, tif, "tile", TRUE, "xres", 2000.0, "yres", 1000.0, NULL), 0);
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  const char *r[] = {"run", "--task", cfg, tif, "-o", out, NULL};
  g_autofree char *err = NULL;
  cr_assert_eq(run_eosin(r, NULL, &err), 0, "%s", err);
  cr_expect(strstr(err, "not square"), "a warning: %s", err);
  g_autofree char *rep = file_in(out, "aniso/report.json");
  g_autofree char *text = slurp(rep);
  cr_expect(strstr(text, "not square"), "the warning is in report.json");
  /* 600 rows of 1 µm: 600 µm = 9.4 tiles of 64 µm down; 1200 x 0.5 µm across */
  g_autofree char *csv = file_in(out, "aniso/tiles.csv");
  g_autoptr(GPtrArray) rows = read_csv_rows(csv);
  int max_row = 0;
  for (guint i = 0; i < rows->len; i++)
    max_row = MAX(max_row, atoi(((char **) rows->pdata[i])[2]));
  cr_expect_eq(max_row, 9, "the plan reaches the bottom (row %d)", max_row);
}

/* ------------------------------------------------------------ 9. memory a config implies */

Test(reliability, configs_beyond_memory_are_refused_before_work) {
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *out = tmp_dir();
  g_autofree char *huge = write_config(
      "[task]\nname = t\nanalyzer = stain\n[tiling]\ntile_size = 4096\nmpp = 1\n"
      "[scheduler]\nreaders = 64\nbatch_size = 1024\nqueue_depth = 256\n");
  const char *r[] = {"run", "--task", huge, slide, "-o", out, NULL};
  expect_run(r, 2, "GB", "4096 px x 1024 x (256 + 64)");
  expect_run(r, 2, "max_memory_mb", "names the key");
  /* --readers on the command line counts too */
  g_autofree char *mid = write_config(
      "[task]\nname = t\nanalyzer = stain\n[tiling]\ntile_size = 4096\nmpp = 1\n"
      "[scheduler]\nreaders = 1\nbatch_size = 4\nqueue_depth = 1\nmax_memory_mb = 4000\n");
  const char *r2[] = {"run", "--task", mid, slide, "-o", out, "--readers", "64", NULL};
  expect_run(r2, 2, "readers = 64", "--readers 64");
  /* overlap 254 of 256: a warning, and a plan beyond the memory allowed */
  g_autofree char *dense = write_config(
      "[task]\nname = t\nanalyzer = stain\n[tiling]\ntile_size = 256\noverlap = 254\nmpp = 1\n"
      "[tissue]\nmin_fraction = 0\n[scheduler]\nmax_memory_mb = 16\nbatch_size = 1\n"
      "queue_depth = 1\nreaders = 1\n");
  const char *r3[] = {"run", "--task", dense, slide, "-o", out, NULL};
  expect_run(r3, 2, "analysed by 16384 tiles", "overlap 254 of 256");
  expect_run(r3, 2, "lower the overlap", "the plan is refused");
  g_autoptr(GDir) d = g_dir_open(out, 0, NULL);
  cr_expect_null(g_dir_read_name(d), "nothing written");
}

/* ------------------------------------------------------------ 10. strict configs */

Test(reliability, config_parser_is_strict) {
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *out = tmp_dir();
  const char *base = "[task]\nname = t\nanalyzer = stain\n[tiling]\nmpp = 1\n";
  struct {
    const char *tail, *needle;
  } cases[] = {
      {"tile_size = 64\ntile_size = 128\n", "[tiling] tile_size is set twice (first at line 6)"},
      {"[tiling]\noverlap = 2\n", "group [tiling] appears twice (first at line 4)"},
      {"tile_size[fr] = 64\n", "localized keys"},
      {"= 3\n", "empty key"},
      {"just words\n", "expected 'key = value'"},
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
    g_autofree char *text = g_strconcat(base, cases[i].tail, NULL);
    g_autofree char *cfg = write_config(text);
    const char *r[] = {"run", "--task", cfg, slide, "-o", out, NULL};
    g_autofree char *err = NULL;
    cr_expect_eq(run_eosin(r, NULL, &err), 2, "case %zu: %s", i, err);
    cr_expect(strstr(err, cases[i].needle) && strstr(err, cfg), "case %zu: '%s' lacks '%s'", i,
              err, cases[i].needle);
  }
  /* a UTF-8 byte order mark is read past, not part of "[task]" */
  g_autofree char *bom_text = g_strconcat("\xEF\xBB\xBF", base, "tile_size = 64\n", NULL);
  g_autofree char *bom = write_config(bom_text);
  const char *rb[] = {"run", "--task", bom, slide, "-o", out, NULL};
  expect_run(rb, 0, NULL, "a config with a BOM");
  /* a FIFO, /dev/zero and a folder are not configs */
  g_autofree char *dir = tmp_dir();
  g_autofree char *fifo = file_in(dir, "fifo.ini");
  cr_assert_eq(mkfifo(fifo, 0644), 0);
  const char *bad[] = {fifo, "/dev/zero", dir};
  for (int i = 0; i < 3; i++) {
    const char *r[] = {"run", "--task", bad[i], slide, "-o", out, NULL};
    expect_run(r, 2, "not", bad[i]);
  }
}

/* ------------------------------------------------------------ 11. the smaller ones */

Test(reliability, predict_leaves_out_truncated_images) {
  g_autofree char *dir = tmp_dir(), *out = tmp_dir();
  g_autofree char *src = td("cnn/patches");
  /* a good JPEG and the same cut in half */
  g_autofree char *good = NULL;
  const char *name;
  g_autoptr(GPtrArray) stack = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(stack, g_strdup(src));
  while (stack->len && !good) {
    g_autofree char *cur = g_ptr_array_steal_index(stack, stack->len - 1);
    g_autoptr(GDir) dd = g_dir_open(cur, 0, NULL);
    while (dd && (name = g_dir_read_name(dd))) {
      g_autofree char *p = file_in(cur, name);
      if (g_file_test(p, G_FILE_TEST_IS_DIR))
        g_ptr_array_add(stack, g_steal_pointer(&p));
      else if (g_str_has_suffix(name, ".jpg") && !good)
        good = g_steal_pointer(&p);
    }
  }
  cr_assert(good, "a JPEG patch in %s", src);
  g_autofree char *data = NULL;
  gsize len;
  cr_assert(g_file_get_contents(good, &data, &len, NULL));
  g_autofree char *whole = file_in(dir, "whole.jpg"), *half = file_in(dir, "half.jpg");
  cr_assert(g_file_set_contents(whole, data, len, NULL));
  cr_assert(g_file_set_contents(half, data, len / 2, NULL));
  g_autofree char *cfg = broken_model_config("cnn/colour-classifier.onnx", NULL);
  g_autofree char *csv = file_in(out, "p.csv");
  const char *r[] = {"predict", "-c", cfg, dir, "-o", csv, NULL};
  expect_run(r, 3, "half.jpg", "a truncated JPEG");
  g_autofree char *text = slurp(csv);
  cr_expect(strstr(text, "whole.jpg") && !strstr(text, "half.jpg"), "%s", text);
}

Test(reliability, outputs_are_csv_that_eosin_reads_back) {
  /* slide names with a comma, a quote and a newline */
  g_autofree char *dir = tmp_dir(), *out = tmp_dir();
  g_autofree char *src = td("tissue-a.svs");
  const char *names[] = {"a,b", "say \"hi\"", "two\nlines"};
  g_autoptr(GString) manifest = g_string_new("path\n");
  for (int i = 0; i < 3; i++) {
    g_autofree char *base = g_strconcat(names[i], ".svs", NULL);
    g_autofree char *p = file_in(dir, base);
    cr_assert_eq(symlink(src, p), 0);
    _eosin_csv_append_field(manifest, p);
    g_string_append(manifest, "  # a comment after the path\n");
  }
  g_autofree char *mpath = file_in(dir, "slides.csv");
  cr_assert(g_file_set_contents(mpath, manifest->str, -1, NULL));
  g_autofree char *cfg = broken_model_config("cnn/colour-classifier.onnx",
                                             "[lesions]\nchannel = b\n");
  const char *b[] = {"batch", "--task", cfg, "--manifest", mpath, "-o", out, NULL};
  expect_run(b, 0, NULL, "odd slide names");
  g_autofree char *cs = file_in(out, "camelyon-slides.csv");
  g_autoptr(GError) e = NULL;
  g_autoptr(GPtrArray) rows = _eosin_csv_read(cs, "csv", EOSIN_CSV_PLAIN, &e);
  cr_assert(rows, "%s", e ? e->message : "");
  cr_expect_eq(rows->len, 4, "a header and three slides: %u rows", rows->len);
  for (guint i = 1; i < rows->len; i++) {
    EosinCsvRow *r = rows->pdata[i];
    cr_expect_eq(r->n, 2);
    bool known = false;
    for (int k = 0; k < 3; k++)
      known |= !strcmp(r->fields[0], names[k]);
    cr_expect(known, "name '%s' read back", r->fields[0]);
  }
  g_autofree char *ss = file_in(out, "batch-summary.csv");
  g_autoptr(GPtrArray) srows = _eosin_csv_read(ss, "csv", EOSIN_CSV_PLAIN, &e);
  cr_assert(srows);
  cr_expect_eq(srows->len, 4);
  bool newline_kept = false;
  for (guint i = 1; i < srows->len; i++)
    newline_kept |= !strcmp(((EosinCsvRow *) srows->pdata[i])->fields[1], "two\nlines");
  cr_expect(newline_kept, "the newline survives in batch-summary.csv");
}

Test(reliability, special_files_empty_output_and_nan_mpp) {
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *dir = tmp_dir(), *out = tmp_dir();
  g_autofree char *fifo = file_in(dir, "slide.svs");
  cr_assert_eq(mkfifo(fifo, 0644), 0);
  const char *r1[] = {"run", "--task", cfg, fifo, "-o", out, NULL};
  expect_run(r1, 1, "not a regular file", "a FIFO as the slide");
  const char *r2[] = {"info", "/dev/zero", NULL};
  expect_run(r2, 1, "not a regular file", "/dev/zero as the slide");
  g_autofree char *ccfg = broken_model_config("cnn/colour-classifier.onnx", NULL);
  const char *r3[] = {"run", "--task", ccfg, slide, "-o", out, "--model", "/dev/zero", NULL};
  expect_run(r3, 2, "not a regular file", "/dev/zero as the model");
  g_autofree char *mfifo = file_in(dir, "m.csv");
  cr_assert_eq(mkfifo(mfifo, 0644), 0);
  const char *r4[] = {"batch", "--task", cfg, "--manifest", mfifo, "-o", out, NULL};
  expect_run(r4, 2, "not a regular file", "a FIFO as the manifest");
  /* -o "" is not the current folder */
  g_autofree char *cwd = g_get_current_dir();
  const char *r5[] = {"run", "--task", cfg, slide, "-o", "", NULL};
  expect_run(r5, 2, "-o is empty", "-o ''");
  g_autofree char *stray = file_in(cwd, "tissue-a");
  cr_expect_not(g_file_test(stray, G_FILE_TEST_EXISTS), "nothing in the current folder");
  const char *r6[] = {"batch", "--task", cfg, "-o", "", dir, NULL};
  expect_run(r6, 2, "-o is empty", "batch -o ''");
  const char *r7[] = {"run", "--task", cfg, slide, "-o", out, "--mpp", "nan", NULL};
  expect_run(r7, 2, "--mpp", "--mpp nan");
  const char *r8[] = {"run", "--task", cfg, slide, "-o", out, "--mpp", "-1", NULL};
  expect_run(r8, 2, "--mpp", "--mpp -1");
  /* a bad model or device is a bad command line: exit 2 */
  g_autofree char *missing = file_in(dir, "none.onnx");
  const char *r9[] = {"run", "--task", ccfg, slide, "-o", out, "--model", missing, NULL};
  expect_run(r9, 2, "none.onnx", "a missing --model");
  g_autoptr(GDir) d = g_dir_open(out, 0, NULL);
  cr_expect_null(g_dir_read_name(d), "nothing written");
}

Test(reliability, manifest_comments_and_quotes) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *src = td("tissue-a.svs");
  g_autofree char *a = file_in(dir, "x #1.svs"), *b = file_in(dir, "y.svs");
  cr_assert_eq(symlink(src, a), 0);
  cr_assert_eq(symlink(src, b), 0);
  g_autofree char *text = g_strdup_printf("path,mpp\n# the first\n\"%s\",0.5 # quoted: '#' is in the name\n"
                                          "y.svs   # a trailing comment\n",
                                          a);
  g_autofree char *m = file_in(dir, "list.csv");
  cr_assert(g_file_set_contents(m, text, -1, NULL));
  g_autoptr(GError) e = NULL;
  g_autoptr(GPtrArray) items = eosin_batch_from_manifest(m, &e);
  cr_assert(items, "%s", e ? e->message : "");
  cr_assert_eq(items->len, 2);
  EosinBatchItem *i0 = items->pdata[0], *i1 = items->pdata[1];
  cr_expect_str_eq(i0->path, a);
  cr_expect_float_eq(i0->mpp, 0.5, 1e-12);
  cr_expect_str_eq(i1->path, b);
  cr_expect_float_eq(i1->mpp, 0, 0);
  /* an unclosed quote names the line */
  g_autofree char *bad = file_in(dir, "bad.csv");
  cr_assert(g_file_set_contents(bad, "path\n\"a.svs\n", -1, NULL));
  g_autoptr(GError) e2 = NULL;
  cr_expect_null(eosin_batch_from_manifest(bad, &e2));
  cr_expect(e2 && strstr(e2->message, "line 2") && strstr(e2->message, bad), "%s",
            e2 ? e2->message : "");
}

/* ------------------------------------------------------------ stop within a second */

/* The first entry of @dir whose name contains @part, or NULL. */
static char *find_entry(const char *dir, const char *part) {
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d)))
    if (strstr(name, part))
      return file_in(dir, name);
  return NULL;
}

/* SIGTERM once @path's folder holds an entry containing @part (checked
 * every ms); the exit code and the seconds from the signal to the exit. */
static int stop_when(const char *const *args, const char *dir, const char *part, double *stop_s) {
  GPid pid = spawn_eosin(args);
  bool seen = false;
  for (int i = 0; i < 120000 && !seen; i++) {
    g_autofree char *e = find_entry(dir, part);
    seen = e != NULL;
    if (!seen)
      g_usleep(1000);
  }
  cr_assert(seen, "never saw '%s' in %s", part, dir);
  g_usleep(300000); /* well into that stage */
  gint64 t0 = g_get_monotonic_time();
  kill(pid, SIGTERM);
  int rc = reap_eosin(pid);
  *stop_s = (g_get_monotonic_time() - t0) / 1e6;
  return rc;
}

Test(reliability, sigterm_stops_every_stage_within_a_second, .timeout = 300) {
  double stop_s;
  /* the tile stage: small tiles of a tissue slide take a while */
  g_autofree char *slide = td("tissue-a.svs");
  g_autofree char *fine = stain_config(32, 0.5, 0, 0.25, NULL);
  g_autofree char *out = tmp_dir();
  g_autofree char *staging = file_in(out, ".tissue-a.partial");
  const char *tiles[] = {"run", "--task", fine, slide, "-o", out, "--readers", "1", NULL};
  int rc = stop_when(tiles, out, ".tissue-a.partial", &stop_s);
  cr_expect_eq(rc, 130, "tile stage: exit %d", rc);
  cr_expect_lt(stop_s, 1.0, "tile stage: stopped %.2f s after SIGTERM", stop_s);
  expect_no_leftovers(out);
  /* the write stage: the overlays of an 8000^2 slide (a fraction of a
   * second since tiles of one value are written once: the stop comes as
   * soon as the overlay's temporary file is there) */
  g_autofree char *large = td("large-blocks.svs");
  g_autofree char *coarse = write_config(
      "[task]\nname = s\nanalyzer = stain\n[tiling]\ntile_size = 256\nmpp = 8\n"
      "[stain]\nmatrix = hed\n");
  g_autofree char *out2 = tmp_dir();
  const char *write[] = {"run", "--task", coarse, large, "-o", out2, NULL};
  GPid pid = spawn_eosin(write);
  g_autofree char *stage2 = file_in(out2, ".large-blocks.partial");
  g_autofree char *tmp = NULL;
  for (int i = 0; i < 120000 && !tmp; i++) {
    tmp = find_entry(stage2, ".overlay.tif.");
    if (!tmp)
      g_usleep(1000);
  }
  cr_assert(tmp, "the overlay was never being written");
  gint64 t0 = g_get_monotonic_time();
  kill(pid, SIGTERM);
  rc = reap_eosin(pid);
  stop_s = (g_get_monotonic_time() - t0) / 1e6;
  cr_expect_eq(rc, 130, "write stage: exit %d", rc);
  cr_expect_lt(stop_s, 1.0, "write stage: stopped %.2f s after SIGTERM", stop_s);
  expect_no_leftovers(out2);
  (void) staging;
}

/* scripts/device/device-bundle replaces its staging folder only when it made it:
 * a folder of someone else's, named by mistake, is refused untouched. */
Test(reliability, device_bundle_never_replaces_a_folder_it_did_not_stage) {
  const char *bin = g_getenv("EOSIN_BIN");
  cr_assert(bin, "EOSIN_BIN is set by make test");
  g_autofree char *build = g_path_get_dirname(bin);
  g_autofree char *root = g_path_get_dirname(build);
  g_autofree char *script = g_build_filename(root, "scripts", "device", "device-bundle", NULL);
  g_autofree char *dir = tmp_dir();
  g_autofree char *mine = file_in(dir, "thesis.txt");
  cr_assert(g_file_set_contents(mine, "years of work\n", -1, NULL));
  const char *argv[] = {script, build, dir, NULL};
  g_autofree char *err = NULL;
  int status = 0;
  cr_assert(g_spawn_sync(NULL, (char **) argv, NULL, 0, NULL, NULL, NULL, &err, &status, NULL));
  cr_expect_neq(status, 0, "device-bundle into a user's folder must fail");
  cr_expect(strstr(err, "not staged by device-bundle"), "stderr: %s", err);
  g_autofree char *text = slurp(mine);
  cr_expect_str_eq(text, "years of work\n", "the user's file is intact");
}
