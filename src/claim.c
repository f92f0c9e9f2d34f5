/*
 * claim.c — one worker's claim on one slide of an output folder that many
 * workers share: batch.c claims each slide before it looks at it, eosin run
 * the one it analyses, batch-state.c serialises its short critical sections
 * (joining a batch, merging the summaries) with claims of names of its own.
 *
 * A claim is a file OUTDIR/.<name>.claim-<G>, G = 1, 2, ... made with
 * open(O_CREAT | O_EXCL): exactly one creator succeeds, on a local
 * filesystem and on NFS v3 and later, where flock() may be local to one
 * client and is not relied on. The highest generation present is the
 * claim; it names its holder (host, PID, start time, a token) and its
 * mtime is the holder's heartbeat. A claim whose holder is dead (on this
 * host: its PID is gone; on another: no heartbeat for @stale_s) is taken
 * over by creating generation G + 1, again with O_EXCL, so of two workers
 * taking over at once one wins; a holder that finds a higher generation
 * than its own has lost the slide and must drop its work. Generations are
 * found by probing G = 1, 2, ... (stat), never by listing OUTDIR, so a
 * claim costs the same in a folder of 100,000 slides.
 */
#include "eosin-core.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_GENERATION 1000 /* takeovers of one slide before giving up */

struct _EosinClaim {
  char *path;  /* our generation's file */
  char *next;  /* the generation after ours: its existence means we lost */
  int fd;
};

static char *gen_path(const char *outdir, const char *name, int gen) {
  g_autofree char *base = g_strdup_printf(".%s.claim-%d", name, gen);
  return g_build_filename(outdir, base, NULL);
}

/* Whether the holder written in @path is alive; @who (caller frees) says
 * who it is. A claim that cannot be read yet is its creator's, being
 * written this instant, and alive, unless it has had no heartbeat for
 * @stale_s (its creator died between the create and the write, or a crash
 * lost the unsynced content: claims are not fsync'd, O_EXCL alone decides). */
static bool holder_alive(const char *path, double stale_s, char **who) {
  g_autofree char *text = NULL;
  GStatBuf st;
  if (g_stat(path, &st) != 0) {
    *who = g_strdup("a worker starting");
    return true; /* gone this instant: the loop looks again */
  }
  double age = (g_get_real_time() / 1e6) - (double) st.st_mtime;
  char host[256] = "", started[64] = "";
  long pid = 0;
  if (!g_file_get_contents(path, &text, NULL, NULL) ||
      sscanf(text, "host %255s\npid %ld\nstarted %63s", host, &pid, started) != 3) {
    *who = g_strdup("a worker starting");
    return age < stale_s;
  }
  *who = g_strdup_printf("%s pid %ld, since %s", host, pid, started);
  if (!strcmp(host, g_get_host_name()))
    return pid > 0 && (kill((pid_t) pid, 0) == 0 || errno == EPERM);
  return age < stale_s;
}

/* Creates the generation file @path with our name in it and returns its
 * descriptor; -1 with errno EEXIST when another worker created it first. */
static int create_gen(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *iso = g_date_time_format_iso8601(now);
  g_autofree char *text = g_strdup_printf("host %s\npid %ld\nstarted %s\n", g_get_host_name(),
                                          (long) getpid(), iso);
  size_t len = strlen(text);
  /* not fsync'd: who holds it matters only while the holder lives, and a
   * claim a crash left empty is dead once its heartbeat is old */
  if (write(fd, text, len) != (ssize_t) len) {
    int e = errno;
    close(fd);
    unlink(path);
    errno = e ? e : EIO;
    return -1;
  }
  return fd;
}

EosinClaim *_eosin_claim_take(const char *outdir, const char *name, double stale_s,
                              char **holder, GError **err) {
  *holder = NULL;
  for (int gen = 1; gen <= MAX_GENERATION; gen++) {
    g_autofree char *path = gen_path(outdir, name, gen);
    g_autofree char *next = gen_path(outdir, name, gen + 1);
    if (g_file_test(next, G_FILE_TEST_EXISTS))
      continue; /* superseded: the claim is a later generation */
    int fd = create_gen(path);
    if (fd >= 0) {
      EosinClaim *c = g_new0(EosinClaim, 1);
      c->path = g_steal_pointer(&path);
      c->next = g_steal_pointer(&next);
      c->fd = fd;
      /* the generations before ours are dead holders': remove them */
      for (int old = 1; old < gen; old++) {
        g_autofree char *p = gen_path(outdir, name, old);
        unlink(p);
      }
      return c;
    }
    if (errno != EEXIST) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "claiming %s: %s", path, g_strerror(errno));
      return NULL;
    }
    /* generation @gen exists: its holder keeps it while alive, unless a
     * later generation appeared meanwhile (the loop looks again) */
    g_autofree char *who = NULL;
    if (holder_alive(path, stale_s, &who) && !g_file_test(next, G_FILE_TEST_EXISTS)) {
      *holder = g_steal_pointer(&who);
      return NULL;
    }
  }
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
              "claiming %s in %s: taken over %d times; giving up", name, outdir, MAX_GENERATION);
  return NULL;
}

bool _eosin_claim_live(const char *outdir, const char *name, double stale_s, char **holder) {
  *holder = NULL;
  for (int gen = 1; gen <= MAX_GENERATION; gen++) {
    g_autofree char *path = gen_path(outdir, name, gen);
    g_autofree char *next = gen_path(outdir, name, gen + 1);
    if (g_file_test(next, G_FILE_TEST_EXISTS))
      continue;
    if (!g_file_test(path, G_FILE_TEST_EXISTS))
      return false;
    g_autofree char *who = NULL;
    if (holder_alive(path, stale_s, &who)) {
      *holder = g_steal_pointer(&who);
      return true;
    }
    return false;
  }
  return false;
}

EosinClaim *_eosin_claim_wait(const char *outdir, const char *name, double stale_s,
                              const EosinCancel *cancel, GError **err) {
  for (;;) {
    g_autofree char *holder = NULL;
    EosinClaim *c = _eosin_claim_take(outdir, name, stale_s, &holder, err);
    if (c || !holder)
      return c;
    if (cancel && g_atomic_int_get(&cancel->cancelled)) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "stopped waiting for %s/%s (held by %s)",
                  outdir, name, holder);
      return NULL;
    }
    g_usleep(5000); /* held for milliseconds (a join, a merge) */
  }
}

bool _eosin_claim_heartbeat(EosinClaim *c, GError **err) {
  if (g_file_test(c->next, G_FILE_TEST_EXISTS)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_BUSY,
                "%s: taken over by another worker (%s exists): this worker's work on it is "
                "dropped",
                c->path, c->next);
    return false;
  }
  if (futimens(c->fd, NULL) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "heartbeat of %s: %s", c->path,
                g_strerror(errno));
    return false;
  }
  return true;
}

void _eosin_claim_release(EosinClaim *c) {
  if (!c)
    return;
  if (!g_file_test(c->next, G_FILE_TEST_EXISTS))
    unlink(c->path); /* a successor removes it itself */
  close(c->fd);
  g_free(c->path);
  g_free(c->next);
  g_free(c);
}

/* ---------------------------------------------------------------- the keeper */

struct _EosinClaimKeeper {
  EosinClaim *claim;    /* borrowed */
  EosinCancel *on_loss; /* borrowed: set when the claim is lost */
  gint64 interval_us;
  GMutex lock;
  GCond wake;
  bool stop;
  GThread *thread;
};

static gpointer keeper_thread(gpointer data) {
  EosinClaimKeeper *k = data;
  g_mutex_lock(&k->lock);
  while (!k->stop) {
    gint64 until = g_get_monotonic_time() + k->interval_us;
    while (!k->stop && g_cond_wait_until(&k->wake, &k->lock, until))
      ;
    if (k->stop)
      break;
    g_mutex_unlock(&k->lock);
    g_autoptr(GError) e = NULL;
    bool ok = _eosin_claim_heartbeat(k->claim, &e);
    g_mutex_lock(&k->lock);
    /* lost (or its folder gone): the work on the slide must stop; a
     * transient I/O error is retried at the next beat */
    if (!ok && g_error_matches(e, EOSIN_ERROR, EOSIN_ERROR_BUSY)) {
      g_atomic_int_set(&k->on_loss->cancelled, 1);
      break;
    }
  }
  g_mutex_unlock(&k->lock);
  return NULL;
}

EosinClaimKeeper *_eosin_claim_keep(EosinClaim *c, double interval_s, EosinCancel *on_loss) {
  EosinClaimKeeper *k = g_new0(EosinClaimKeeper, 1);
  k->claim = c;
  k->on_loss = on_loss;
  k->interval_us = (gint64) (MAX(interval_s, 0.01) * 1e6);
  g_mutex_init(&k->lock);
  g_cond_init(&k->wake);
  k->thread = g_thread_new("eosin-claim", keeper_thread, k);
  return k;
}

void _eosin_claim_keeper_stop(EosinClaimKeeper *k) {
  if (!k)
    return;
  g_mutex_lock(&k->lock);
  k->stop = true;
  g_cond_signal(&k->wake);
  g_mutex_unlock(&k->lock);
  g_thread_join(k->thread);
  g_mutex_clear(&k->lock);
  g_cond_clear(&k->wake);
  g_free(k);
}
