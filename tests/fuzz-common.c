/*
 * fuzz-common.c — helpers shared by the libFuzzer targets (`make fuzz`),
 * #included by each tests/fuzz-*.c (this file is not a fuzzer itself):
 * one temporary folder per fuzzer process (Eosin's readers take paths, so
 * each input is written to a file there first), the result contract every
 * fallible Eosin function keeps (true/non-NULL exactly when no error is
 * set, and an error always carries a message), quiet GLib logging with
 * criticals kept fatal, and extra feedback counters for what coverage
 * cannot see (OpenSlide, libtiff and libvips are not instrumented).
 * FUZZ_VERBOSE=1 in the environment prints every result (to read a
 * finding or a seed: build/fuzz/fuzz-NAME FILE).
 */
#include "eval/eval-private.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* libFuzzer reads these as extra coverage: a counter that becomes non-zero
 * is a new feature, so an input reaching a new error message of an
 * uninstrumented library (or a new vendor, level count...) is kept. */
#define FUZZ_EXTRA_COUNTERS 4096
__attribute__((used, section("__libfuzzer_extra_counters"))) static uint8_t
    fuzz_extra[FUZZ_EXTRA_COUNTERS];

/* Counts the feature @kind:@s, digits and the fuzzer's own paths ignored
 * (a message naming offset 1234 and one naming 1235 are one feature). */
G_GNUC_UNUSED static void fuzz_feature(const char *kind, const char *s) {
  uint32_t h = 2166136261u;
  for (const char *p = kind; *p; p++)
    h = (h ^ (uint8_t) *p) * 16777619u;
  for (const char *p = s ? s : "(null)"; *p; p++)
    if (!g_ascii_isdigit(*p))
      h = (h ^ (uint8_t) *p) * 16777619u;
  uint8_t *c = &fuzz_extra[h % FUZZ_EXTRA_COUNTERS];
  if (*c < 255)
    (*c)++;
}

G_GNUC_UNUSED static void fuzz_feature_int(const char *kind, long long v) {
  char buf[32];
  /* digits are ignored by fuzz_feature: spell the value as letters */
  int n = 0;
  if (v < 0)
    buf[n++] = '-', v = -v;
  do
    buf[n++] = (char) ('a' + v % 10), v /= 10;
  while (v && n < 30);
  buf[n] = 0;
  fuzz_feature(kind, buf);
}

static char *fuzz_dir;

static void fuzz_cleanup(void) {
  if (fuzz_dir)
    _eosin_rm_rf(fuzz_dir, NULL);
}

/* GLib messages: warnings and debug output of the libraries dropped (a
 * damaged file makes libvips and libtiff chatter); a critical or an error
 * is a misuse of an API, so it aborts and the fuzzer reports it. */
/* OpenSlide 3.4.1 (Debian 12) itself calls g_strchug(NULL) on some damaged
 * Aperio descriptions: a CRITICAL that GLib survives by returning, from
 * code Eosin does not own. The slide fuzzer sets this so such a message is
 * logged, not a finding; a real memory error still is (ASan). */
static bool fuzz_tolerate_glib_criticals;

static void fuzz_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data) {
  (void) data;
  if (fuzz_tolerate_glib_criticals && (level & G_LOG_LEVEL_CRITICAL) &&
      !g_strcmp0(domain, "GLib")) {
    fprintf(stderr, "fuzz: tolerated GLib-CRITICAL: %s\n", msg);
    return;
  }
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR | G_LOG_FLAG_FATAL)) {
    fprintf(stderr, "fuzz: %s-%s: %s\n", domain ? domain : "",
            level & G_LOG_LEVEL_ERROR ? "ERROR" : "CRITICAL", msg);
    abort();
  }
}

/* Once per process: the temporary folder and the log handler. */
static void fuzz_init(void) {
  if (fuzz_dir)
    return;
  g_log_set_default_handler(fuzz_log, NULL);
  GError *err = NULL;
  fuzz_dir = g_dir_make_tmp("eosin-fuzz-XXXXXX", &err);
  if (!fuzz_dir) {
    fprintf(stderr, "fuzz: no temporary folder: %s\n", err->message);
    abort();
  }
  atexit(fuzz_cleanup);
}

/* FUZZ_DIR/@rel (caller frees). */
static char *fuzz_path(const char *rel) {
  fuzz_init();
  return g_build_filename(fuzz_dir, rel, NULL);
}

/* Writes @len bytes to @path (created or truncated); aborts on failure,
 * which is the harness's, not Eosin's. */
static void fuzz_write(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
    fprintf(stderr, "fuzz: cannot write %s\n", path);
    abort();
  }
}

/* Writes @data to FUZZ_DIR/@rel; returns the path (caller frees). */
G_GNUC_UNUSED static char *fuzz_write_rel(const char *rel, const void *data, size_t len) {
  char *p = fuzz_path(rel);
  fuzz_write(p, data, len);
  return p;
}

/* An empty folder FUZZ_DIR/@rel (whatever was there removed); caller frees. */
G_GNUC_UNUSED static char *fuzz_fresh_dir(const char *rel) {
  char *p = fuzz_path(rel);
  GError *err = NULL;
  if (!_eosin_rm_rf(p, &err) || g_mkdir_with_parents(p, 0700) != 0) {
    fprintf(stderr, "fuzz: cannot make %s: %s\n", p, err ? err->message : g_strerror(errno));
    abort();
  }
  return p;
}

/* The contract of every fallible Eosin function: it succeeded exactly when
 * it set no error, and an error says something. Else a finding. */
static void fuzz_contract(bool ok, const GError *err, const char *what) {
  static int verbose = -1;
  if (verbose < 0)
    verbose = getenv("FUZZ_VERBOSE") != NULL;
  if (verbose)
    fprintf(stderr, "fuzz: %s: %s\n", what, err ? err->message : "ok");
  if (ok && err) {
    fprintf(stderr, "fuzz: %s succeeded but set an error: %s\n", what, err->message);
    __builtin_trap();
  }
  if (!ok && (!err || !err->message || !*err->message)) {
    fprintf(stderr, "fuzz: %s failed without an error message\n", what);
    __builtin_trap();
  }
}

/* Fails (a finding) with a message when @cond is false. */
#define FUZZ_ASSERT(cond, ...)                                                      \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "fuzz: %s:%d: assertion %s failed: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fprintf(stderr, "\n");                                                        \
      __builtin_trap();                                                             \
    }                                                                               \
  } while (0)
