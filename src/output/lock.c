/*
 * lock.c — one eosin process per output folder. Two batches writing
 * into one OUTDIR would replace each other's staging folders and
 * summaries, so the first takes OUTDIR/.eosin-lock with an open file
 * description lock (fcntl F_OFD_SETLK) and writes who it is into it; a
 * second process is refused with the holder's host and PID. The kernel
 * drops the lock when the holder dies, however it dies, so a stale lock
 * never blocks a rerun. The holder removes the file when it is done.
 */
#include "eosin-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_NAME ".eosin-lock"

struct _EosinLock {
  int fd;
  char *path;
};

static bool try_lock(const char *outdir, const char *path, int *out_fd, GError **err);
static void describe(int fd);

/* True when @path still names the file open on @fd. */
static bool same_file(int fd, const char *path) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

/* True when the file open on @fd can only be a lock file of Eosin's: a
 * plain file with no other name (a hard link to a user's file would be
 * overwritten through it), empty or holding what describe() writes. */
static bool is_our_lock_file(int fd) {
  struct stat st;
  char head[6] = "";
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_size > 4096)
    return false;
  return st.st_size == 0 || (pread(fd, head, 5, 0) == 5 && !memcmp(head, "host ", 5));
}

void _eosin_lock_release(EosinLock *lock) {
  if (!lock)
    return;
  /* unlinked while still held: a process waiting on this file finds, once
   * it has the lock, that the name no longer leads to it, and starts over */
  if (same_file(lock->fd, lock->path))
    g_unlink(lock->path);
  close(lock->fd); /* closing the description releases the lock */
  g_free(lock->path);
  g_free(lock);
}


EosinLock *_eosin_lock_outdir(const char *outdir, GError **err) {
  g_autofree char *path = g_build_filename(outdir, LOCK_NAME, NULL);
  for (int attempt = 0;; attempt++) {
    EosinLock *lock = NULL;
    int fd = -1;
    if (!try_lock(outdir, path, &fd, err))
      return NULL;
    if (attempt >= 100) {
      close(fd);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_BUSY,
                  "output folder %s: its lock %s keeps being replaced", outdir, path);
      return NULL;
    }
    if (same_file(fd, path) && !is_our_lock_file(fd)) {
      close(fd);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_EXISTS,
                  "output folder %s: %s is not a lock file of Eosin's (a file with other "
                  "names or content): not touching it (move it away or choose another -o)",
                  outdir, path);
      return NULL;
    }
    if (same_file(fd, path)) {
      lock = g_new0(EosinLock, 1);
      lock->fd = fd;
      lock->path = g_strdup(path);
      describe(fd);
      return lock;
    }
    close(fd); /* the holder removed it as we waited: take the new one */
  }
}

/* Opens and locks @path; false with an error when another process holds it. */
static bool try_lock(const char *outdir, const char *path, int *out_fd, GError **err) {
  int fd = g_open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "output folder %s: cannot open %s: %s", outdir,
                path, g_strerror(errno));
    return false;
  }
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    int e = errno;
    char holder[512] = "";
    ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
    close(fd);
    holder[n > 0 ? n : 0] = 0;
    g_strstrip(holder);
    if (e == EAGAIN || e == EACCES) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_BUSY,
                  "output folder %s is in use by another eosin (%s): two runs must not write "
                  "into one output folder; wait for it or choose another -o",
                  outdir, *holder ? holder : "holder unknown");
    } else {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "output folder %s: cannot lock %s: %s",
                  outdir, path, g_strerror(e));
    }
    return false;
  }
  *out_fd = fd;
  return true;
}

/* Says who holds the lock, for the message of a refused second run (a lock
 * file we cannot write into still locks). */
static void describe(int fd) {
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *iso = g_date_time_format_iso8601(now);
  g_autofree char *me =
      g_strdup_printf("host %s, PID %d, since %s\n", g_get_host_name(), (int) getpid(), iso);
  if (ftruncate(fd, 0) != 0 || pwrite(fd, me, strlen(me), 0) < 0)
    return;
}
