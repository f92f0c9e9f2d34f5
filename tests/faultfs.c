/*
 * faultfs.c — an LD_PRELOAD shim that makes one file-system call fail, for
 * tests/test-faults.c. Not a test file itself (tests/test-*.c are linked
 * into the Criterion binary; this one is built as build/libfaultfs.so).
 *
 * It wraps, through dlsym(RTLD_NEXT), every call by which Eosin, glib,
 * libvips or libtiff create, write, flush, sync, rename or remove a file,
 * grouped in families:
 *
 *   open      open, open64, openat, openat64 that create or open for writing
 *   write     write, pwrite, pwrite64, writev, pwritev
 *   truncate  ftruncate, ftruncate64
 *   flush     fflush, fclose of a stream open for writing
 *   fsync     fsync, fdatasync
 *   close     close of a descriptor written through and not fsync'd since:
 *             the closes that can lose data (on NFS a close is where a failed
 *             write shows)
 *   rename    rename, renameat, renameat2
 *   mkdir     mkdir, mkdirat
 *   unlink    unlink, unlinkat, rmdir
 *
 * Only calls on a path (either path, for a rename) or descriptor under
 * EOSIN_FAULT_DIR count; a descriptor's path is read from /proc/self/fd/N,
 * so the slide being read, stderr and a pipe are never counted. Calls
 * that stdio makes inside libc (fwrite, fprintf filling and flushing a
 * buffer) do not go through the PLT and are not seen: for a FILE* writer
 * the fault lands in its fflush or fclose.
 *
 *   EOSIN_FAULT=FAMILY:N      the Nth counted call of FAMILY (from 1) fails,
 *                             without doing anything (close and fclose still
 *                             release the descriptor, as the kernel does);
 *                             write, open, flush and mkdir with ENOSPC, the
 *                             rest with EIO; the failure is said on stderr
 *   EOSIN_FAULT=FAMILY:N:TERM instead, SIGTERM is sent to the process just
 *                             before that call, which then goes ahead
 *   EOSIN_FAULT_DIR=DIR       where calls count (required; absolute)
 *   EOSIN_FAULT_COUNT=FILE    at exit, "FAMILY COUNT" lines appended to FILE,
 *                             and "unsynced COUNT"
 *   EOSIN_FAULT_TRACE=1       every counted call said on stderr
 *   EOSIN_FAULT_NO_EXCHANGE=1 renameat2(RENAME_EXCHANGE) under the folder
 *                             fails with EINVAL, uncounted, as on a file
 *                             system without it
 *
 * It also checks the order Eosin promises, written, fsync'd, renamed: a
 * rename of a file written through a descriptor (write family) and not
 * fsync'd since is said on stderr ("faultfs: unsynced ...") and counted.
 *
 * Counters are atomics: Eosin and libvips write from several threads.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { F_OPEN, F_WRITE, F_TRUNCATE, F_FLUSH, F_FSYNC, F_CLOSE, F_RENAME, F_MKDIR, F_UNLINK, N_FAM };
static const char *const FAMILY[N_FAM] = {"open",  "write", "truncate", "flush", "fsync",
                                          "close", "rename", "mkdir",   "unlink"};
static const int ERRNO[N_FAM] = {ENOSPC, ENOSPC, EIO, ENOSPC, EIO, EIO, EIO, ENOSPC, EIO};

static char dir[PATH_MAX], rdir[PATH_MAX]; /* as given, and resolved */
static int fail_family = -1, fail_signal;
static long fail_index;
static int trace, no_exchange;
static const char *count_file;
static atomic_long counts[N_FAM];
/* descriptors under the folder written through since opened or synced */
#define MAX_FD 65536
static atomic_char written[MAX_FD];

#define REAL(name) static __typeof__(name) *real_##name
REAL(open);
REAL(open64);
REAL(openat);
REAL(openat64);
REAL(write);
REAL(pwrite);
REAL(pwrite64);
REAL(writev);
REAL(pwritev);
REAL(ftruncate);
REAL(ftruncate64);
REAL(fflush);
REAL(fclose);
REAL(fsync);
REAL(fdatasync);
REAL(close);
REAL(rename);
REAL(renameat);
REAL(renameat2);
REAL(mkdir);
REAL(mkdirat);
REAL(unlink);
REAL(unlinkat);
REAL(rmdir);

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Files under the folder written and not fsync'd since, by device and
 * inode (a new file through open clears its entry: inodes are reused). */
#define MAX_DIRTY 256
static struct {
  dev_t dev;
  ino_t ino;
} dirty[MAX_DIRTY];
static int n_dirty;
static pthread_mutex_t dirty_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_long unsynced;

/* Marks (@on) or clears the file of @st; true when it was marked. */
static int mark(const struct stat *st, int on) {
  if (!S_ISREG(st->st_mode))
    return 0;
  pthread_mutex_lock(&dirty_lock);
  int i = 0;
  while (i < n_dirty && (dirty[i].dev != st->st_dev || dirty[i].ino != st->st_ino))
    i++;
  int was = i < n_dirty;
  if (on && !was && n_dirty < MAX_DIRTY)
    dirty[n_dirty].dev = st->st_dev, dirty[n_dirty++].ino = st->st_ino;
  else if (!on && was)
    dirty[i] = dirty[--n_dirty];
  pthread_mutex_unlock(&dirty_lock);
  return was;
}

static void mark_fd(int fd, int on) {
  struct stat st;
  int e = errno;
  if (fd >= 0 && fstat(fd, &st) == 0)
    mark(&st, on);
  errno = e;
}

/* Before a rename or an unlink of @path: whether it was written and not
 * synced (it is forgotten either way). */
static int forget_path(int dirfd, const char *path) {
  struct stat st;
  int e = errno, was = path && fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                       mark(&st, 0);
  errno = e;
  return was;
}

static void init(void) {
#define LOAD(name) real_##name = (__typeof__(real_##name)) dlsym(RTLD_NEXT, #name)
  LOAD(open), LOAD(open64), LOAD(openat), LOAD(openat64), LOAD(write), LOAD(pwrite);
  LOAD(pwrite64), LOAD(writev), LOAD(pwritev), LOAD(ftruncate), LOAD(ftruncate64);
  LOAD(fflush), LOAD(fclose), LOAD(fsync), LOAD(fdatasync), LOAD(close), LOAD(rename);
  LOAD(renameat), LOAD(renameat2), LOAD(mkdir), LOAD(mkdirat), LOAD(unlink), LOAD(unlinkat);
  LOAD(rmdir);
  const char *d = getenv("EOSIN_FAULT_DIR");
  if (d && d[0] == '/' && strlen(d) < sizeof dir) {
    strcpy(dir, d);
    while (strlen(dir) > 1 && dir[strlen(dir) - 1] == '/')
      dir[strlen(dir) - 1] = 0;
    if (!realpath(dir, rdir))
      strcpy(rdir, dir);
  }
  const char *f = getenv("EOSIN_FAULT");
  const char *colon = f ? strchr(f, ':') : NULL;
  for (int i = 0; colon && i < N_FAM; i++)
    if (strlen(FAMILY[i]) == (size_t) (colon - f) && !strncmp(f, FAMILY[i], colon - f))
      fail_family = i, fail_index = atol(colon + 1);
  fail_signal = colon && strstr(colon + 1, ":TERM") != NULL;
  trace = getenv("EOSIN_FAULT_TRACE") != NULL;
  no_exchange = getenv("EOSIN_FAULT_NO_EXCHANGE") != NULL;
  count_file = getenv("EOSIN_FAULT_COUNT");
}

#define INIT() pthread_once(&once, init)

/* A message on stderr, through the real write (it never counts: stderr is
 * not under the folder, but the real call also keeps this re-entrant). */
static void say(const char *fmt, ...) {
  char buf[PATH_MAX + 200];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0)
    real_write(2, buf, (size_t) n < sizeof buf ? (size_t) n : sizeof buf - 1);
}

static int is_under(const char *abs, const char *root) {
  size_t n = strlen(root);
  return n > 0 && !strncmp(abs, root, n) && (abs[n] == '/' || abs[n] == 0);
}

/* The absolute path of @path relative to @dirfd into @out, or "" when it
 * cannot be known. */
static void absolute(int dirfd, const char *path, char *out, size_t size) {
  char base[PATH_MAX] = "";
  out[0] = 0;
  if (!path)
    return;
  if (path[0] == '/') {
    snprintf(out, size, "%s", path);
    return;
  }
  if (dirfd == AT_FDCWD) {
    if (!getcwd(base, sizeof base))
      return;
  } else {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
    ssize_t n = readlink(link, base, sizeof base - 1);
    if (n <= 0)
      return;
    base[n] = 0;
  }
  snprintf(out, size, "%s/%s", base, path);
}

/* These look-ups leave errno as the caller had it. */
static int path_under(int dirfd, const char *path, char *abs) {
  int e = errno;
  absolute(dirfd, path, abs, PATH_MAX);
  errno = e;
  return dir[0] && (is_under(abs, dir) || is_under(abs, rdir));
}

static int fd_under(int fd, char *abs) {
  char link[64];
  abs[0] = 0;
  if (!dir[0] || fd < 0)
    return 0;
  int e = errno;
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, abs, PATH_MAX - 1);
  errno = e;
  if (n <= 0)
    return 0;
  abs[n] = 0;
  return is_under(abs, rdir) || is_under(abs, dir);
}

static int writable_fd(int fd) {
  int e = errno, fl = fcntl(fd, F_GETFL);
  errno = e;
  return fl >= 0 && (fl & O_ACCMODE) != O_RDONLY;
}

/* Counts a call of @fam on @what; true when this one is to fail (errno set). */
static int hit(int fam, const char *what) {
  long n = atomic_fetch_add(&counts[fam], 1) + 1;
  int chosen = fam == fail_family && n == fail_index;
  if (trace || chosen)
    say("faultfs: %s #%ld %s%s\n", FAMILY[fam], n, what,
        !chosen ? "" : fail_signal ? ": SIGTERM sent" : ": injected failure");
  if (chosen && fail_signal) {
    kill(getpid(), SIGTERM);
    return 0;
  }
  if (chosen)
    errno = ERRNO[fam];
  return chosen;
}

__attribute__((destructor)) static void report_counts(void) {
  INIT();
  if (!count_file)
    return;
  int fd = real_open(count_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0)
    return;
  for (int i = 0; i <= N_FAM; i++) {
    char line[64];
    int n = snprintf(line, sizeof line, "%s %ld\n", i < N_FAM ? FAMILY[i] : "unsynced",
                     atomic_load(i < N_FAM ? &counts[i] : &unsynced));
    if (real_write(fd, line, (size_t) n) != n)
      break;
  }
  real_close(fd);
}

/* ---- the wrappers ---- */

/* a new descriptor has not been written through (its number may be reused) */
static int fresh(int fd) {
  if (fd >= 0 && fd < MAX_FD)
    atomic_store(&written[fd], 0);
  char abs[PATH_MAX];
  if (fd >= 0 && fd_under(fd, abs))
    mark_fd(fd, 0);
  return fd;
}

static int creates(int flags) {
  return (flags & (O_CREAT | O_TRUNC)) || (flags & O_ACCMODE) != O_RDONLY;
}

#define OPEN_MODE(flags)                                                                  \
  mode_t mode = 0;                                                                        \
  if ((flags) & (O_CREAT | __O_TMPFILE)) {                                                \
    va_list ap;                                                                           \
    va_start(ap, flags);                                                                  \
    mode = va_arg(ap, mode_t);                                                            \
    va_end(ap);                                                                           \
  }                                                                                       \
  char abs[PATH_MAX];                                                                     \
  INIT()

int open(const char *path, int flags, ...) {
  OPEN_MODE(flags);
  if (creates(flags) && path_under(AT_FDCWD, path, abs) && hit(F_OPEN, abs))
    return -1;
  return fresh(real_open(path, flags, mode));
}

int open64(const char *path, int flags, ...) {
  OPEN_MODE(flags);
  if (creates(flags) && path_under(AT_FDCWD, path, abs) && hit(F_OPEN, abs))
    return -1;
  return fresh(real_open64(path, flags, mode));
}

int openat(int dirfd, const char *path, int flags, ...) {
  OPEN_MODE(flags);
  if (creates(flags) && path_under(dirfd, path, abs) && hit(F_OPEN, abs))
    return -1;
  return fresh(real_openat(dirfd, path, flags, mode));
}

int openat64(int dirfd, const char *path, int flags, ...) {
  OPEN_MODE(flags);
  if (creates(flags) && path_under(dirfd, path, abs) && hit(F_OPEN, abs))
    return -1;
  return fresh(real_openat64(dirfd, path, flags, mode));
}

/* a descriptor-based call of family @fam fails when counted as the one;
 * a write marks its descriptor as written through */
#define FD_FAULT(fam, fd, ret)                                                            \
  do {                                                                                    \
    char abs[PATH_MAX];                                                                   \
    INIT();                                                                               \
    if (fd_under(fd, abs)) {                                                              \
      if (hit(fam, abs))                                                                  \
        return ret;                                                                       \
      if (fam == F_WRITE && fd < MAX_FD)                                                  \
        atomic_store(&written[fd], 1);                                                    \
      if (fam == F_WRITE)                                                                 \
        mark_fd(fd, 1);                                                                   \
    }                                                                                     \
  } while (0)

ssize_t write(int fd, const void *buf, size_t n) {
  FD_FAULT(F_WRITE, fd, -1);
  return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  FD_FAULT(F_WRITE, fd, -1);
  return real_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off) {
  FD_FAULT(F_WRITE, fd, -1);
  return real_pwrite64(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  FD_FAULT(F_WRITE, fd, -1);
  return real_writev(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
  FD_FAULT(F_WRITE, fd, -1);
  return real_pwritev(fd, iov, cnt, off);
}

int ftruncate(int fd, off_t len) {
  FD_FAULT(F_TRUNCATE, fd, -1);
  return real_ftruncate(fd, len);
}

int ftruncate64(int fd, off64_t len) {
  FD_FAULT(F_TRUNCATE, fd, -1);
  return real_ftruncate64(fd, len);
}

/* a descriptor synced has nothing left that its close could lose */
static int synced(int fd, int r) {
  if (r == 0 && fd >= 0 && fd < MAX_FD)
    atomic_store(&written[fd], 0);
  if (r == 0)
    mark_fd(fd, 0);
  return r;
}

int fsync(int fd) {
  FD_FAULT(F_FSYNC, fd, -1);
  return synced(fd, real_fsync(fd));
}

int fdatasync(int fd) {
  FD_FAULT(F_FSYNC, fd, -1);
  return synced(fd, real_fdatasync(fd));
}

int close(int fd) {
  char abs[PATH_MAX];
  INIT();
  int was_written = fd >= MAX_FD || (fd >= 0 && atomic_exchange(&written[fd], 0));
  if (was_written && fd_under(fd, abs) && hit(F_CLOSE, abs)) {
    real_close(fd); /* the descriptor is gone whatever close says */
    errno = ERRNO[F_CLOSE];
    return -1;
  }
  return real_close(fd);
}

/* a stream open for writing under the folder (fflush(NULL) never counts) */
static int stream_under(FILE *f, char *abs) {
  int fd = f ? fileno(f) : -1;
  return fd >= 0 && writable_fd(fd) && fd_under(fd, abs);
}

int fflush(FILE *f) {
  char abs[PATH_MAX];
  INIT();
  if (stream_under(f, abs) && hit(F_FLUSH, abs))
    return EOF;
  return real_fflush(f);
}

int fclose(FILE *f) {
  char abs[PATH_MAX];
  INIT();
  if (stream_under(f, abs) && hit(F_FLUSH, abs)) {
    real_fclose(f);
    errno = ERRNO[F_FLUSH];
    return EOF;
  }
  return real_fclose(f);
}

static int two_under(int d1, const char *p1, int d2, const char *p2, char *abs) {
  char a2[PATH_MAX];
  int u1 = path_under(d1, p1, abs), u2 = path_under(d2, p2, a2);
  if (!u1 && u2)
    strcpy(abs, a2);
  return u1 || u2;
}

/* A rename under the folder: counted, and said when its file was written
 * and not synced. */
static int renaming(int fd1, const char *from, int fd2, const char *to) {
  char abs[PATH_MAX];
  if (!two_under(fd1, from, fd2, to, abs))
    return 0;
  if (hit(F_RENAME, abs))
    return 1;
  if (forget_path(fd1, from)) {
    atomic_fetch_add(&unsynced, 1);
    say("faultfs: unsynced: %s renamed, not fsync'd since it was written\n", abs);
  }
  return 0;
}

int rename(const char *from, const char *to) {
  INIT();
  if (renaming(AT_FDCWD, from, AT_FDCWD, to))
    return -1;
  return real_rename(from, to);
}

int renameat(int fd1, const char *from, int fd2, const char *to) {
  INIT();
  if (renaming(fd1, from, fd2, to))
    return -1;
  return real_renameat(fd1, from, fd2, to);
}

int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned flags) {
  char abs[PATH_MAX];
  INIT();
  if (no_exchange && (flags & RENAME_EXCHANGE) && two_under(fd1, from, fd2, to, abs)) {
    errno = EINVAL;
    return -1;
  }
  if (renaming(fd1, from, fd2, to))
    return -1;
  return real_renameat2(fd1, from, fd2, to, flags);
}

/* a path-based call of family @fam */
#define PATH_FAULT(fam, dirfd, path)                                                      \
  do {                                                                                    \
    char abs[PATH_MAX];                                                                   \
    INIT();                                                                               \
    if (path_under(dirfd, path, abs) && hit(fam, abs))                                    \
      return -1;                                                                          \
  } while (0)

int mkdir(const char *path, mode_t mode) {
  PATH_FAULT(F_MKDIR, AT_FDCWD, path);
  return real_mkdir(path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode) {
  PATH_FAULT(F_MKDIR, dirfd, path);
  return real_mkdirat(dirfd, path, mode);
}

int unlink(const char *path) {
  PATH_FAULT(F_UNLINK, AT_FDCWD, path);
  forget_path(AT_FDCWD, path);
  return real_unlink(path);
}

int unlinkat(int dirfd, const char *path, int flags) {
  PATH_FAULT(F_UNLINK, dirfd, path);
  forget_path(dirfd, path);
  return real_unlinkat(dirfd, path, flags);
}

int rmdir(const char *path) {
  PATH_FAULT(F_UNLINK, AT_FDCWD, path);
  return real_rmdir(path);
}
