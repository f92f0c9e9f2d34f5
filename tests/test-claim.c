/*
 * test-claim.c — the claim a worker takes on one slide of a shared output
 * folder (src/claim.c): one holder at a time, a live holder respected, a
 * dead one's claim (gone PID here, silent heartbeat elsewhere) taken over
 * by the next generation, a holder that was taken over told so by its
 * heartbeat, released claims leaving nothing behind.
 */
#include "test-util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* A claim file as another worker would have written it. */
static void write_claim(const char *dir, const char *name, int gen, const char *host, long pid,
                        gint64 mtime_age_s) {
  g_autofree char *base = g_strdup_printf(".%s.claim-%d", name, gen);
  g_autofree char *path = g_build_filename(dir, base, NULL);
  g_autofree char *text =
      g_strdup_printf("host %s\npid %ld\nstarted 2026-12-03T00:00:00Z\n", host, pid);
  cr_assert(g_file_set_contents(path, text, -1, NULL));
  if (mtime_age_s) {
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= mtime_age_s;
    t[1] = t[0];
    cr_assert(utimensat(AT_FDCWD, path, t, 0) == 0);
  }
}

static bool exists(const char *dir, const char *name, int gen) {
  g_autofree char *base = g_strdup_printf(".%s.claim-%d", name, gen);
  g_autofree char *path = g_build_filename(dir, base, NULL);
  return g_file_test(path, G_FILE_TEST_EXISTS);
}

/* The PID of a process that has exited (and been reaped). */
static long dead_pid(void) {
  pid_t p = fork();
  cr_assert(p >= 0);
  if (p == 0)
    _exit(0);
  int st;
  cr_assert(waitpid(p, &st, 0) == p);
  return p;
}

Test(claim, one_holder_at_a_time_and_release_leaves_nothing) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *who = NULL;
  g_autoptr(GError) err = NULL;
  EosinClaim *a = _eosin_claim_take(dir, "slide-1", 60, &who, &err);
  cr_assert(a, "%s", err ? err->message : "");
  cr_expect(exists(dir, "slide-1", 1));
  /* a second worker (this live process, as far as the claim says) is refused */
  g_autofree char *who2 = NULL;
  cr_expect_null(_eosin_claim_take(dir, "slide-1", 60, &who2, &err));
  cr_expect(!err);
  cr_assert(who2);
  g_autofree char *me = g_strdup_printf("pid %ld", (long) getpid());
  cr_expect(strstr(who2, g_get_host_name()) && strstr(who2, me), "holder: %s", who2);
  /* another slide is free */
  g_autofree char *who3 = NULL;
  EosinClaim *b = _eosin_claim_take(dir, "slide-2", 60, &who3, &err);
  cr_assert(b);
  cr_expect(_eosin_claim_heartbeat(a, &err), "%s", err ? err->message : "");
  _eosin_claim_release(a);
  _eosin_claim_release(b);
  cr_expect(!exists(dir, "slide-1", 1) && !exists(dir, "slide-2", 1));
  expect_no_leftovers(dir);
}

Test(claim, a_dead_holders_claim_is_taken_over) {
  g_autofree char *dir = tmp_dir();
  /* this host, a PID that is gone */
  write_claim(dir, "s", 1, g_get_host_name(), dead_pid(), 0);
  g_autofree char *who = NULL;
  g_autoptr(GError) err = NULL;
  EosinClaim *c = _eosin_claim_take(dir, "s", 60, &who, &err);
  cr_assert(c, "the dead holder's claim was not taken over: %s",
            who ? who : err ? err->message : "");
  cr_expect(exists(dir, "s", 2), "taken over as generation 2");
  cr_expect(!exists(dir, "s", 1), "the dead holder's generation is removed");
  _eosin_claim_release(c);

  /* another host, silent for 10 minutes with a 5-minute limit: dead;
   * heard from a minute ago: alive */
  write_claim(dir, "t", 1, "node-17.cluster", 4242, 600);
  g_autofree char *who2 = NULL;
  c = _eosin_claim_take(dir, "t", 300, &who2, &err);
  cr_assert(c);
  _eosin_claim_release(c);
  write_claim(dir, "u", 1, "node-17.cluster", 4242, 60);
  g_autofree char *who3 = NULL;
  cr_expect_null(_eosin_claim_take(dir, "u", 300, &who3, &err));
  cr_expect(who3 && strstr(who3, "node-17.cluster pid 4242"), "%s", who3);
}

Test(claim, a_holder_taken_over_learns_it_from_its_heartbeat) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *who = NULL;
  g_autoptr(GError) err = NULL;
  EosinClaim *c = _eosin_claim_take(dir, "s", 60, &who, &err);
  cr_assert(c);
  /* another worker judged us dead and took generation 2 */
  write_claim(dir, "s", 2, "node-3.cluster", 99, 0);
  cr_expect(!_eosin_claim_heartbeat(c, &err));
  cr_expect(err && err->code == EOSIN_ERROR_BUSY && strstr(err->message, "taken over"), "%s",
            err ? err->message : "no error");
  _eosin_claim_release(c);
  cr_expect(exists(dir, "s", 2), "the successor's claim stays");
  cr_expect(exists(dir, "s", 1), "ours is left for the successor to remove");
}

/* Several live processes race for the same slides: each slide is held by
 * exactly one of them. */
Test(claim, racing_workers_hold_each_slide_once) {
  g_autofree char *dir = tmp_dir();
  const int workers = 4, slides = 20;
  g_autofree char *fifo = g_build_filename(dir, "results", NULL);
  g_autofree char *release = g_build_filename(dir, "release", NULL);
  pid_t pids[4];
  for (int w = 0; w < workers; w++) {
    pids[w] = fork();
    cr_assert(pids[w] >= 0);
    if (pids[w] == 0) {
      g_autoptr(GString) got = g_string_new(NULL);
      for (int s = 0; s < slides; s++) {
        g_autofree char *name = g_strdup_printf("slide-%02d", s);
        g_autofree char *who = NULL;
        EosinClaim *c = _eosin_claim_take(dir, name, 60, &who, NULL);
        if (c)
          g_string_append_printf(got, "%s\n", name); /* held: kept until exit */
      }
      g_autofree char *tmp = g_strdup_printf("%s-%d.tmp", fifo, w);
      g_autofree char *out = g_strdup_printf("%s-%d", fifo, w);
      if (!g_file_set_contents(tmp, got->str, -1, NULL) || rename(tmp, out) != 0)
        _exit(1);
      /* alive, holding its claims, until every worker has claimed: a
       * worker that exited would be a dead holder, rightly taken over */
      while (!g_file_test(release, G_FILE_TEST_EXISTS))
        g_usleep(2000);
      _exit(0);
    }
  }
  for (int w = 0; w < workers; w++) {
    g_autofree char *out = g_strdup_printf("%s-%d", fifo, w);
    for (int t = 0; t < 5000 && !g_file_test(out, G_FILE_TEST_EXISTS); t++)
      g_usleep(2000);
  }
  cr_assert(g_file_set_contents(release, "", 0, NULL));
  int held[20] = {0};
  for (int w = 0; w < workers; w++) {
    int st;
    cr_assert(waitpid(pids[w], &st, 0) == pids[w] && WIFEXITED(st) && !WEXITSTATUS(st));
    g_autofree char *out = g_strdup_printf("%s-%d", fifo, w);
    g_autofree char *text = NULL;
    cr_assert(g_file_get_contents(out, &text, NULL, NULL));
    for (int s = 0; s < slides; s++) {
      g_autofree char *line = g_strdup_printf("slide-%02d\n", s);
      held[s] += strstr(text, line) != NULL;
    }
  }
  for (int s = 0; s < slides; s++)
    cr_expect_eq(held[s], 1, "slide-%02d held by %d workers", s, held[s]);
}

/* The keeper beats the heartbeat while the work goes on, and turns a
 * takeover into a cancel of that work. */
Test(claim, the_keeper_beats_and_cancels_on_takeover) {
  g_autofree char *dir = tmp_dir();
  g_autofree char *who = NULL;
  EosinClaim *c = _eosin_claim_take(dir, "s", 60, &who, NULL);
  cr_assert(c);
  g_autofree char *path = g_build_filename(dir, ".s.claim-1", NULL);
  struct timespec old[2];
  clock_gettime(CLOCK_REALTIME, &old[0]);
  old[0].tv_sec -= 100;
  old[1] = old[0];
  cr_assert(utimensat(AT_FDCWD, path, old, 0) == 0);
  EosinCancel cancel = {0};
  EosinClaimKeeper *k = _eosin_claim_keep(c, 0.02, &cancel);
  g_usleep(150000);
  struct stat st;
  cr_assert(stat(path, &st) == 0);
  cr_expect(st.st_mtime > old[0].tv_sec + 50, "the heartbeat was not refreshed");
  cr_expect(!g_atomic_int_get(&cancel.cancelled));
  write_claim(dir, "s", 2, "node-3.cluster", 99, 0); /* taken over */
  for (int t = 0; t < 200 && !g_atomic_int_get(&cancel.cancelled); t++)
    g_usleep(5000);
  cr_expect(g_atomic_int_get(&cancel.cancelled), "the takeover did not cancel the work");
  _eosin_claim_keeper_stop(k);
  _eosin_claim_release(c);
}

Test(claim, an_empty_claim_is_a_starting_worker_until_its_heartbeat_is_old) {
  g_autofree char *dir = tmp_dir();
  /* created, its content not yet written (or lost in a crash: claims are
   * not fsync'd) */
  g_autofree char *path = g_build_filename(dir, ".s.claim-1", NULL);
  cr_assert(g_file_set_contents(path, "", 0, NULL));
  g_autofree char *who = NULL;
  g_autoptr(GError) err = NULL;
  cr_expect_null(_eosin_claim_take(dir, "s", 60, &who, &err), "a fresh empty claim is held");
  cr_expect(who && strstr(who, "starting"), "%s", who ? who : "(null)");
  struct timespec t[2];
  clock_gettime(CLOCK_REALTIME, &t[0]);
  t[0].tv_sec -= 120;
  t[1] = t[0];
  cr_assert(utimensat(AT_FDCWD, path, t, 0) == 0);
  g_autofree char *who2 = NULL;
  EosinClaim *c = _eosin_claim_take(dir, "s", 60, &who2, &err);
  cr_expect(c, "an empty claim with no heartbeat for 120 s > 60 s is dead");
  cr_expect(exists(dir, "s", 2) && !exists(dir, "s", 1));
  _eosin_claim_release(c);
  /* _eosin_claim_live probes without taking */
  write_claim(dir, "t", 1, g_get_host_name(), (long) getpid(), 0);
  g_autofree char *h = NULL;
  cr_expect(_eosin_claim_live(dir, "t", 60, &h) && strstr(h, g_get_host_name()));
  g_autofree char *h2 = NULL;
  write_claim(dir, "u", 1, g_get_host_name(), dead_pid(), 0);
  cr_expect_not(_eosin_claim_live(dir, "u", 60, &h2));
  cr_expect(exists(dir, "u", 1), "a probe takes nothing over");
}
