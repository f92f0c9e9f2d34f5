/*
 * util.c — the error domain, version string and small file helpers every
 * other file uses: atomic writes (temporary name + rename) and recursive
 * removal of a staging folder.
 */
#include "tasks/analyzer.h" /* EosinTileBatch, _eosin_parallel_for */

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

static void on_eval(VipsImage *img, VipsProgress *progress, gpointer data) {
  const EosinCancel *cancel = data;
  if (g_atomic_int_get(&cancel->cancelled))
    vips_image_set_kill(img, TRUE);
}

void _eosin_vips_watch_cancel(VipsImage *img, const EosinCancel *cancel) {
  if (!img || !cancel)
    return;
  /* libvips emits "eval" on the image being computed every few tiles */
  vips_image_set_progress(img, TRUE);
  g_signal_connect(img, "eval", G_CALLBACK(on_eval), (gpointer) cancel);
}

bool _eosin_check_model_outputs(const char *model, const float *v, int n, size_t per,
                                const EosinTileBatch *b, GError **err) {
  int bad = 0, first = -1;
  size_t values = 0;
  for (int i = 0; i < n; i++) {
    size_t here = 0;
    for (size_t k = 0; k < per; k++)
      here += !isfinite(v[(size_t) i * per + k]);
    if (here) {
      bad++;
      values += here;
      if (first < 0)
        first = i;
    }
  }
  if (!bad)
    return true;
  g_autofree char *where = NULL;
  if (b && b->plan) {
    const EosinTile *t = &g_array_index(b->plan->tiles, EosinTile, b->tile_ids[first]);
    where = g_strdup_printf("tile %d (column %d, row %d, level-0 x %" G_GINT64_FORMAT
                            ", y %" G_GINT64_FORMAT ")",
                            b->tile_ids[first], t->col, t->row, t->x, t->y);
  } else {
    where = g_strdup_printf("image %d of the batch", first);
  }
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_NUMERIC,
              "model %s gave %zu values that are not finite (NaN or infinity) for %d of %d %s, "
              "the first %s: no score is given from such a model",
              model, values, bad, n, b ? "tiles" : "images", where);
  return false;
}

static int cancel_generate(VipsRegion *out, void *seq, void *a, void *b, gboolean *stop) {
  VipsRegion *ir = seq;
  const EosinCancel *cancel = b;
  if (g_atomic_int_get(&cancel->cancelled)) {
    vips_error("eosin", "cancelled");
    return -1;
  }
  /* no copy: the output region points into the input's */
  return vips_region_prepare(ir, &out->valid) ||
                 vips_region_region(out, ir, &out->valid, out->valid.left, out->valid.top)
             ? -1
             : 0;
}

VipsImage *_eosin_vips_cancellable(VipsImage *in, const EosinCancel *cancel) {
  if (!cancel)
    return g_object_ref(in);
  VipsImage *out = vips_image_new();
  VipsImage *ins[] = {in, NULL};
  if (vips_image_pipeline_array(out, VIPS_DEMAND_STYLE_THINSTRIP, ins) ||
      vips_image_generate(out, vips_start_one, cancel_generate, vips_stop_one, in,
                          (void *) cancel)) {
    g_object_unref(out);
    return NULL;
  }
  /* the input must live as long as the output reads from it */
  g_object_set_data_full(G_OBJECT(out), "eosin-input", g_object_ref(in), g_object_unref);
  return out;
}

int _eosin_strv_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *) a, *(char *const *) b);
}

void _eosin_json_value(JsonBuilder *b, double v) {
  if (isfinite(v))
    json_builder_add_double_value(b, v);
  else
    json_builder_add_null_value(b);
}

void _eosin_json_num(JsonBuilder *b, const char *k, double v) {
  json_builder_set_member_name(b, k);
  _eosin_json_value(b, v);
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
  if (VIPS_INIT("eosin") != 0)
    return GINT_TO_POINTER(2);
  /* A renamed SVG, PDF or anything ImageMagick reads is not a slide: the
   * loaders libvips marks untrusted are blocked (OpenSlide's among them:
   * Eosin reads slides through its own OpenSlide handles). */
  vips_block_untrusted_set(TRUE);
  return GINT_TO_POINTER(1);
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

/* The node at dotted @path of @o ("slide.mpp_x": member slide, then its
 * member mpp_x), NULL when any step is missing or not an object. */
static JsonNode *node_at(JsonObject *o, const char *path) {
  g_auto(GStrv) parts = g_strsplit(path, ".", -1);
  JsonNode *n = NULL;
  for (int i = 0; parts[i] && o; i++) {
    n = json_object_get_member(o, parts[i]);
    o = parts[i + 1] && n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
    if (parts[i + 1] && !o)
      return NULL;
  }
  return n;
}

const char *_eosin_json_string_at(JsonObject *o, const char *path) {
  JsonNode *n = node_at(o, path);
  return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
             ? json_node_get_string(n)
             : NULL;
}

double _eosin_json_number_at(JsonObject *o, const char *path) {
  JsonNode *n = node_at(o, path);
  return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) != G_TYPE_STRING &&
                 json_node_get_value_type(n) != G_TYPE_BOOLEAN
             ? json_node_get_double(n)
             : NAN;
}
