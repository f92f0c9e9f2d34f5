/*
 * test-workers.c — many `eosin batch` workers on one OUTDIR (issue 20):
 * three processes over eight slides, one SIGKILLed mid-slide and started
 * again, settle every slide exactly once with the files of a one-process
 * batch; shards with a manifest that changed between workers are refused;
 * `batch --merge` rebuilds the summary from the workers' rows; the batch
 * bookkeeping is never followed through a link.
 */
#include "test-util.h"
#include "eosin-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

/* A folder of @n slides (symlinks w1..wn to the three tissue slides). */
static char *slide_dir(int n) {
  char *dir = tmp_dir();
  const char *src[] = {"tissue-a.svs", "tissue-b.svs", "tissue-c.svs"};
  for (int i = 0; i < n; i++) {
    g_autofree char *s = td(src[i % 3]);
    g_autofree char *base = g_strdup_printf("w%d.svs", i + 1);
    g_autofree char *d = g_build_filename(dir, base, NULL);
    cr_assert_eq(symlink(s, d), 0);
  }
  return dir;
}

/* The lines of @out's summary without their times; asserts @rows rows. */
static char **summary_lines(const char *out, int rows) {
  g_autofree char *s = summary_sans_timing(out);
  char **lines = g_strsplit(g_strstrip(s), "\n", -1);
  cr_assert_eq(g_strv_length(lines), (guint) rows + 1, "%d rows expected:\n%s", rows, s);
  return lines;
}

static bool claimed(const char *dir) {
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *e;
  while (d && (e = g_dir_read_name(d)))
    if (e[0] == '.' && strstr(e, ".claim-"))
      return true;
  return false;
}

Test(workers, three_workers_one_killed_settle_every_slide_once, .timeout = 300) {
  g_autofree char *dir = slide_dir(8), *cfg = stain_config(32, 0.5, 0, 0.25, NULL);
  g_autofree char *ref = tmp_dir(), *out = tmp_dir();
  const char *one[] = {"batch", "--task", cfg, dir, "-o", ref, "--readers", "1", NULL};
  g_autofree char *e0 = NULL;
  cr_assert_eq(run_eosin(one, NULL, &e0), 0, "%s", e0);
  /* one batch id: the worker started again joins the same batch even if
   * the others have finished by then */
  const char *w[] = {"batch", "--task", cfg, dir, "-o", out, "--readers", "1",
                     "--batch-id", "night-1", NULL};
  GPid pids[3];
  for (int i = 0; i < 3; i++)
    pids[i] = spawn_eosin(w);
  /* the first worker dies mid-slide: a claim is there, no result yet for it */
  for (int i = 0; i < 60000 && !claimed(out); i++)
    g_usleep(1000);
  cr_assert(claimed(out), "no worker claimed a slide");
  g_usleep(300000);
  kill(pids[0], SIGKILL);
  int st;
  cr_assert_eq(waitpid(pids[0], &st, 0), pids[0]);
  g_spawn_close_pid(pids[0]);
  cr_assert(WIFSIGNALED(st), "the victim was killed, not finished");
  pids[0] = spawn_eosin(w);
  for (int i = 0; i < 3; i++)
    cr_expect_eq(reap_eosin(pids[i]), 0, "worker %d", i);
  g_auto(GStrv) lines = summary_lines(out, 8);
  for (int i = 1; lines[i]; i++)
    cr_expect(strstr(lines[i], "|done|"), "every slide done once, by one worker: %s", lines[i]);
  cr_expect_eq(expect_same_results(ref, out, false), 8);
  /* the summaries in manifest order, as one process writes them */
  g_autofree char *a = summary_sans_timing(ref), *b = summary_sans_timing(out);
  cr_expect_str_eq(a, b);
  expect_no_leftovers(out);
  /* --merge rebuilds the summary from the rows alone */
  g_autofree char *sp = g_build_filename(out, "batch-summary.csv", NULL);
  cr_assert_eq(g_unlink(sp), 0);
  const char *m[] = {"batch", "--merge", "-o", out, NULL};
  g_autofree char *mo = NULL;
  cr_expect_eq(run_eosin(m, &mo, NULL), 0);
  cr_expect(strstr(mo, "batch night-1: 8 slides: 8 done, 0 failed, 0 running, 0 pending"), "%s",
            mo);
  g_autofree char *c = summary_sans_timing(out);
  cr_expect_str_eq(a, c);
  /* a worker of the same batch is started again: nothing to do */
  g_autofree char *again = NULL;
  cr_expect_eq(run_eosin(w, &again, NULL), 0);
  cr_expect(strstr(again, "0 done, 0 already complete, 0 failed, 8 left to other workers"), "%s",
            again);
}

Test(workers, shards_of_one_batch_must_share_the_manifest) {
  g_autofree char *dir = slide_dir(3), *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *out = tmp_dir(), *mdir = tmp_dir();
  g_autofree char *m1 = g_build_filename(mdir, "a.txt", NULL), *m2 = g_build_filename(mdir, "b.txt", NULL);
  g_autofree char *t1 = g_strdup_printf("%s/w1.svs\n%s/w2.svs\n%s/w3.svs\n", dir, dir, dir);
  g_autofree char *t2 = g_strdup_printf("%s/w1.svs\n%s/w3.svs\n", dir, dir);
  cr_assert(g_file_set_contents(m1, t1, -1, NULL) && g_file_set_contents(m2, t2, -1, NULL));
  const char *s1[] = {"batch", "--task", cfg, "--manifest", m1, "-o", out, "--shard", "1/2",
                      "--batch-id", "job-7", NULL};
  expect_run(s1, 0, "shard 1/2", "shard 1 of the first manifest");
  /* shard 2 of the same job given an edited manifest */
  const char *s2[] = {"batch", "--task", cfg, "--manifest", m2, "-o", out, "--shard", "2/2",
                      "--batch-id", "job-7", NULL};
  expect_run(s2, 2, "another manifest", "a manifest that changed between workers");
  expect_run(s2, 2, "3 slides", "the batch's manifest is described");
  /* the same list in another line order completes the batch, in the
   * batch's order */
  g_autofree char *m1r = g_build_filename(mdir, "a-reversed.txt", NULL);
  g_autofree char *t1r = g_strdup_printf("%s/w3.svs\n%s/w2.svs\n%s/w1.svs\n", dir, dir, dir);
  cr_assert(g_file_set_contents(m1r, t1r, -1, NULL));
  const char *s3[] = {"batch", "--task", cfg, "--manifest", m1r, "-o", out, "--shard", "2/2",
                      "--batch-id", "job-7", NULL};
  expect_run(s3, 0, NULL, "shard 2 of the first manifest, lines reversed");
  g_auto(GStrv) lines = summary_lines(out, 3);
  for (int i = 1; lines[i]; i++) {
    g_autofree char *name = g_strdup_printf("|w%d|done|", i);
    cr_expect(strstr(lines[i], name), "row %d: %s", i, lines[i]);
  }
  /* bad shards */
  const char *b1[] = {"batch", "--task", cfg, "--manifest", m1, "-o", out, "--shard", "3/2", NULL};
  expect_run(b1, 2, "3/2", "--shard 3/2");
  const char *b2[] = {"batch", "--task", cfg, "--manifest", m1, "-o", out, "--shard", "0/0", NULL};
  expect_run(b2, 2, "0/0", "--shard 0/0");
  /* a later batch (another id, nobody live) may bring another manifest */
  const char *s4[] = {"batch", "--task", cfg, "--manifest", m2, "-o", out, "--batch-id", "job-8",
                      NULL};
  expect_run(s4, 0, NULL, "a new batch with another manifest");
  g_auto(GStrv) l4 = summary_lines(out, 2);
  cr_expect(strstr(l4[1], "|skipped-complete|"), "%s", l4[1]);
}

Test(workers, batch_state_is_not_followed_through_a_link) {
  g_autofree char *dir = slide_dir(1), *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *out = tmp_dir(), *elsewhere = tmp_dir();
  g_autofree char *state = g_build_filename(out, EOSIN_BATCH_STATE_DIR, NULL);
  cr_assert_eq(symlink(elsewhere, state), 0);
  const char *b[] = {"batch", "--task", cfg, dir, "-o", out, NULL};
  expect_run(b, 1, "not a folder of Eosin's", "a link in place of .eosin-batch");
  g_autoptr(GDir) d = g_dir_open(elsewhere, 0, NULL);
  cr_expect_null(g_dir_read_name(d), "nothing written through the link");
  /* --merge on a folder that never held a batch */
  g_autofree char *empty = tmp_dir();
  const char *m[] = {"batch", "--merge", "-o", empty, NULL};
  expect_run(m, 1, "holds no batch", "--merge of an empty folder");
}

/* `eosin ARGV...` with PATH=@path (no sbatch there); exit code, stderr. */
static int run_with_path(const char *const *argv, const char *path, char **out, char **err) {
  g_autoptr(GPtrArray) a = g_ptr_array_new();
  g_ptr_array_add(a, (char *) g_getenv("EOSIN_BIN"));
  for (int i = 0; argv[i]; i++)
    g_ptr_array_add(a, (char *) argv[i]);
  g_ptr_array_add(a, NULL);
  g_auto(GStrv) env = g_environ_setenv(g_get_environ(), "PATH", path, TRUE);
  int status = -1;
  cr_assert(g_spawn_sync(NULL, (char **) a->pdata, env, G_SPAWN_DEFAULT, NULL, NULL, out, err,
                         &status, NULL));
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(workers, slurm_submit_writes_an_array_and_a_merge_job) {
  g_autofree char *dir = slide_dir(5), *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  g_autofree char *out = tmp_dir();
  const char *dry[] = {"slurm", "submit", "--task", cfg, dir, "-o", out, "--array-size", "3",
                       "--partition", "gpu", "--time", "1-00:00", "--mem", "16G",
                       "--gpus-per-task", "1", "--dry-run", NULL};
  g_autofree char *so = NULL, *se = NULL;
  /* no sbatch on PATH: a dry run needs none */
  cr_assert_eq(run_with_path(dry, "/nonexistent", &so, &se), 0, "%s", se);
  const char *want[] = {"#SBATCH --array=1-3", "#SBATCH --partition=gpu", "#SBATCH --time=1-00:00",
                        "#SBATCH --mem=16G", "#SBATCH --gpus-per-task=1", "#SBATCH --requeue",
                        "--device 'cuda'", "batch --merge -o", "--dependency=afterany"};
  for (size_t i = 0; i < G_N_ELEMENTS(want); i++)
    cr_expect(strstr(so, want[i]), "the scripts lack '%s':\n%s", want[i], so);
  g_autofree char *sdir = g_build_filename(out, EOSIN_BATCH_STATE_DIR, "slurm", NULL);
  g_autoptr(GDir) d = g_dir_open(sdir, 0, NULL);
  int scripts = 0;
  const char *e;
  while (d && (e = g_dir_read_name(d)))
    scripts += g_str_has_suffix(e, ".sbatch");
  cr_expect_eq(scripts, 2, "the array and the merge script are written");
  /* without --dry-run and without sbatch: a clear error naming it */
  const char *real[] = {"slurm", "submit", "--task", cfg, dir, "-o", out, NULL};
  g_autofree char *so2 = NULL, *se2 = NULL;
  cr_expect_eq(run_with_path(real, "/nonexistent", &so2, &se2), 1);
  cr_expect(strstr(se2, "sbatch is not on PATH"), "%s", se2);
  /* values sbatch would refuse, refused before anything is written */
  const char *bad[][2] = {{"--time", "soon"}, {"--mem", "16X"}, {"--partition", "a b"},
                          {"--cpus-per-task", "0"}, {"--array-size", "-2"}};
  for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
    const char *argv[] = {"slurm", "submit", "--task", cfg, dir, "-o", out, bad[i][0], bad[i][1],
                          "--dry-run", NULL};
    expect_run(argv, 2, bad[i][0], bad[i][1]);
  }
  const char *none[] = {"slurm", "frobnicate", NULL};
  expect_run(none, 2, "expected submit or status", "an unknown subcommand");
  const char *help[] = {"slurm", "status", "--help", NULL};
  g_autofree char *ho = NULL;
  cr_expect_eq(run_eosin(help, &ho, NULL), 0);
  /* status of a batch run by hand, one slide held by a live worker */
  const char *b[] = {"batch", "--task", cfg, dir, "-o", out, NULL};
  expect_run(b, 0, NULL, "a batch to report on");
  g_autofree char *cl = g_build_filename(out, ".w2.claim-1", NULL);
  g_autofree char *text = g_strdup_printf("host %s\npid %d\nstarted x\n", g_get_host_name(),
                                          (int) getpid());
  cr_assert(g_file_set_contents(cl, text, -1, NULL));
  g_autofree char *rows = g_build_filename(out, EOSIN_BATCH_STATE_DIR, "rows", "1.json", NULL);
  cr_assert_eq(g_unlink(rows), 0);
  const char *st[] = {"slurm", "status", out, NULL};
  g_autofree char *sto = NULL;
  cr_expect_eq(run_eosin(st, &sto, NULL), 0);
  cr_expect(strstr(sto, ": 5 slides: 4 done, 0 failed, 1 running, 0 pending"), "%s", sto);
  g_autofree char *line = g_strdup_printf("w2\trunning\t%s pid %d", g_get_host_name(), (int) getpid());
  cr_expect(strstr(sto, line), "%s", sto);
  g_unlink(cl);
}

static char *ro_mount; /* this test's read-only tmpfs, unmounted in fini (owned) */

static void unmount_ro(void) {
  if (ro_mount)
    umount2(ro_mount, MNT_DETACH);
}

Test(workers, an_unwritable_outdir_is_a_clear_error, .fini = unmount_ro) {
  g_autofree char *dir = tmp_dir(), *slides = slide_dir(1);
  g_autofree char *cfg = stain_config(64, 1.0, 0, 0.25, NULL);
  /* a read-only file system (root ignores permission bits, not this) */
  if (unshare(CLONE_NEWNS) == 0)
    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
  if (mount("tmpfs", dir, "tmpfs", MS_RDONLY, "size=64k") != 0)
    cr_skip_test("mounting a read-only tmpfs failed (%s): needs root (CI and the dev box run "
                 "tests as root): skipped", g_strerror(errno));
  ro_mount = g_strdup(dir);
  g_autofree char *sub = g_build_filename(dir, "out", NULL);
  const char *b1[] = {"batch", "--task", cfg, slides, "-o", sub, NULL};
  expect_run(b1, 1, sub, "an OUTDIR that cannot be made");
  const char *b2[] = {"batch", "--task", cfg, slides, "-o", dir, NULL};
  expect_run(b2, 1, "Read-only file system", "a read-only OUTDIR");
  expect_run(b2, 1, EOSIN_BATCH_STATE_DIR, "the folder it could not make is named");
  const char *s1[] = {"slurm", "submit", "--task", cfg, slides, "-o", dir, "--dry-run", NULL};
  expect_run(s1, 1, "Read-only file system", "slurm submit into a read-only OUTDIR");
  const char *m[] = {"batch", "--merge", "-o", dir, NULL};
  expect_run(m, 1, "holds no batch", "--merge of a read-only folder with no batch");
}
