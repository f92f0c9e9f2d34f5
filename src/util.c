/*
 * util.c — the error domain, version string and small file helpers every
 * other file uses: atomic writes (temporary name + rename) and recursive
 * removal of a staging folder.
 */
#include "eosin-private.h"

#include <math.h>

#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>

#ifndef EOSIN_VERSION
#define EOSIN_VERSION "0.1"
#endif

G_DEFINE_QUARK(eosin-error-quark, eosin_error)

const char *eosin_version(void) {
  return EOSIN_VERSION;
}

bool _eosin_write_atomic(const char *path, const void *data, gsize len, GError **err) {
  /* g_file_set_contents already writes to a temporary file beside @path,
   * fsyncs and renames, which is exactly the guarantee we want. */
  g_autoptr(GError) tmp_err = NULL;
  if (!g_file_set_contents(path, data, (gssize) len, &tmp_err)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", path, tmp_err->message);
    return false;
  }
  return true;
}

void _eosin_json_num(JsonBuilder *b, const char *k, double v) {
  json_builder_set_member_name(b, k);
  if (isfinite(v))
    json_builder_add_double_value(b, v);
  else
    json_builder_add_null_value(b);
}

void _eosin_json_int(JsonBuilder *b, const char *k, gint64 v) {
  json_builder_set_member_name(b, k);
  json_builder_add_int_value(b, v);
}

void _eosin_json_str(JsonBuilder *b, const char *k, const char *v) {
  json_builder_set_member_name(b, k);
  json_builder_add_string_value(b, v);
}

void _eosin_json_bool(JsonBuilder *b, const char *k, bool v) {
  json_builder_set_member_name(b, k);
  json_builder_add_boolean_value(b, v);
}

void _eosin_set_vips_error(GError **err, const char *what) {
  g_autofree char *msg = g_strstrip(g_strdup(vips_error_buffer()));
  vips_error_clear();
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "%s: %s", what,
              *msg ? msg : "libvips failed");
}

bool _eosin_rm_rf(const char *path, GError **err) {
  if (!g_file_test(path, G_FILE_TEST_EXISTS | G_FILE_TEST_IS_SYMLINK))
    return true;
  if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
    g_autoptr(GDir) dir = g_dir_open(path, 0, err);
    if (!dir)
      return false;
    const char *name;
    while ((name = g_dir_read_name(dir))) {
      g_autofree char *child = g_build_filename(path, name, NULL);
      if (!_eosin_rm_rf(child, err))
        return false;
    }
    if (g_rmdir(path) != 0) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "removing %s: %s", path, g_strerror(errno));
      return false;
    }
    return true;
  }
  if (g_unlink(path) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "removing %s: %s", path, g_strerror(errno));
    return false;
  }
  return true;
}

static gpointer vips_init_once(gpointer unused) {
  (void) unused;
  return GINT_TO_POINTER(VIPS_INIT("eosin") == 0 ? 1 : 2);
}

bool _eosin_vips_init(GError **err) {
  /* libvips is process-wide state by its own design; VIPS_INIT must run
   * once and must not race, which is what GOnce guarantees. */
  static GOnce once = G_ONCE_INIT;
  g_once(&once, vips_init_once, NULL);
  if (GPOINTER_TO_INT(once.retval) != 1) {
    _eosin_set_vips_error(err, "starting libvips");
    return false;
  }
  return true;
}

char *eosin_slide_name_from_path(const char *path) {
  g_autofree char *base = g_path_get_basename(path);
  char *dot = strrchr(base, '.');
  /* ".ome.tif" is one extension for the purpose of a folder name */
  if (dot && dot != base) {
    *dot = 0;
    char *ome = g_str_has_suffix(base, ".ome") ? strrchr(base, '.') : NULL;
    if (ome && ome != base)
      *ome = 0;
  }
  return g_strdup(base);
}

typedef struct {
  int n;
  size_t scratch_bytes;
  void (*fn)(void *data, int k, void *scratch);
  void *data;
  gint next; /* atomic: the next k to take */
} ParallelFor;

static gpointer parallel_for_worker(gpointer data) {
  ParallelFor *p = data;
  g_autofree void *scratch = p->scratch_bytes ? g_malloc(p->scratch_bytes) : NULL;
  for (int k; (k = g_atomic_int_add(&p->next, 1)) < p->n;)
    p->fn(p->data, k, scratch);
  return NULL;
}

void _eosin_parallel_for(int n, size_t scratch_bytes, void (*fn)(void *data, int k, void *scratch),
                         void *data) {
  ParallelFor p = {n, scratch_bytes, fn, data, 0};
  int n_threads = MIN(n, (int) g_get_num_processors());
  g_autofree GThread **th = g_new0(GThread *, MAX(n_threads, 1));
  for (int t = 1; t < n_threads; t++)
    th[t] = g_thread_new("eosin-tiles", parallel_for_worker, &p);
  parallel_for_worker(&p);
  for (int t = 1; t < n_threads; t++)
    g_thread_join(th[t]);
}
