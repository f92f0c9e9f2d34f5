/*
 * identity.c — what a result belongs to. A result in OUTDIR/<name> is only
 * "complete" for a rerun when it was made from the same slide (its path,
 * size and content hash: OpenSlide's quickhash-1, or SHA-256 of the file
 * for images libvips reads), the same effective config (every key that can
 * change a number, after --model/--device, hashed in a canonical order)
 * and the same model files (SHA-256). report.json carries this identity;
 * a batch compares it before skipping a slide, so a stain result is never
 * taken for a metastasis one, nor one x.svs for another.
 */
#include "eosin-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <openslide.h>
#include <unistd.h>

/* [scheduler] keys that change speed and memory, never a result (the
 * tests prove identical results for any number of readers and depth). */
static const char *const SPEED_ONLY[] = {"scheduler.readers", "scheduler.queue_depth",
                                         "scheduler.max_memory_mb", NULL};

void _eosin_identity_clear(EosinIdentity *id) {
  g_clear_pointer(&id->slide_path, g_free);
  g_clear_pointer(&id->slide_hash, g_free);
  g_clear_pointer(&id->config_sha256, g_free);
  g_clear_pointer(&id->task, g_free);
  g_clear_pointer(&id->model_paths, g_strfreev);
  g_clear_pointer(&id->model_sha256, g_strfreev);
  g_clear_pointer(&id->outputs, g_strfreev);
  memset(id, 0, sizeof *id);
}

/* SHA-256 of a whole file (lower-case hex), read in 1 MB blocks; @cancel
 * (may be NULL) is checked between blocks so a large image does not hold
 * up a stop. Caller frees. */
char *_eosin_sha256_file(const char *path, const char *what, const EosinCancel *cancel,
                         GError **err) {
  int fd = g_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s %s: %s", what, path, g_strerror(errno));
    return NULL;
  }
  g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
  g_autofree guint8 *buf = g_malloc(1 << 20);
  for (;;) {
    if (cancel && g_atomic_int_get(&cancel->cancelled)) {
      close(fd);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "%s %s: cancelled", what, path);
      return NULL;
    }
    ssize_t n = read(fd, buf, 1 << 20);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s %s: %s", what, path, g_strerror(e));
      return NULL;
    }
    if (n == 0)
      break;
    g_checksum_update(sum, buf, n);
  }
  close(fd);
  return g_strdup(g_checksum_get_string(sum));
}

/* An absolute path with symlinks resolved (the file itself as it is when
 * that fails). Caller frees. */
static char *real_path(const char *path) {
  char *r = realpath(path, NULL);
  if (r) {
    char *g = g_strdup(r);
    free(r);
    return g;
  }
  return g_canonicalize_filename(path, NULL);
}

bool _eosin_identity_slide(const char *path, double mpp_user, const EosinCancel *cancel,
                           EosinIdentity *id, GError **err) {
  gint64 size = 0;
  if (!_eosin_check_input_file(path, "slide", 0, &size, err))
    return false;
  g_clear_pointer(&id->slide_path, g_free);
  g_clear_pointer(&id->slide_hash, g_free);
  id->slide_path = real_path(path);
  id->slide_size = size;
  GStatBuf st;
  id->slide_mtime_us = g_stat(path, &st) == 0 ? (gint64) st.st_mtim.tv_sec * G_USEC_PER_SEC +
                                                    st.st_mtim.tv_nsec / 1000
                                              : 0;
  id->mpp_user = mpp_user > 0 ? mpp_user : 0;
  /* OpenSlide's quickhash-1 covers the slide's properties and its smallest
   * level, without reading gigabytes; other images are hashed whole */
  if (openslide_detect_vendor(path)) {
    openslide_t *osr = openslide_open(path);
    const char *q = osr && !openslide_get_error(osr)
                        ? openslide_get_property_value(osr, "openslide.quickhash-1")
                        : NULL;
    if (q)
      id->slide_hash = g_strconcat("openslide-quickhash-1:", q, NULL);
    if (osr)
      openslide_close(osr);
    if (q)
      return true;
  }
  g_autofree char *h = _eosin_sha256_file(path, "slide", cancel, err);
  if (!h)
    return false;
  id->slide_hash = g_strconcat("sha256:", h, NULL);
  return true;
}

char *eosin_slide_hash(const char *path, GError **err) {
  g_auto(EosinIdentity) id = {0};
  if (!_eosin_identity_slide(path, 0, NULL, &id, err))
    return NULL;
  return g_steal_pointer(&id.slide_hash);
}

/* A model file's path as the analyzer resolves it (relative to the
 * config's folder), absolute. */
static char *resolve(const EosinConfig *cfg, const char *v) {
  g_autofree char *full = _eosin_config_resolve_path(cfg, v);
  return real_path(full);
}

bool _eosin_identity_config(const EosinConfig *cfg, EosinIdentity *id, GError **err) {
  const EosinAnalyzerOps *ops = eosin_analyzer_find(cfg->analyzer);
  g_autoptr(GString) canon = g_string_new("eosin-config 1\n");
  g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
  gsize ng = 0;
  g_auto(GStrv) groups = g_key_file_get_groups(cfg->keyfile, &ng);
  qsort(groups, ng, sizeof(char *), _eosin_strv_cmp);
  for (gsize g = 0; g < ng; g++) {
    gsize nk = 0;
    g_auto(GStrv) keys = g_key_file_get_keys(cfg->keyfile, groups[g], &nk, NULL);
    qsort(keys, nk, sizeof(char *), _eosin_strv_cmp);
    for (gsize k = 0; k < nk; k++) {
      g_autofree char *full = g_strdup_printf("%s.%s", groups[g], keys[k]);
      if (g_strv_contains(SPEED_ONLY, full))
        continue;
      g_autofree char *v = g_key_file_get_value(cfg->keyfile, groups[g], keys[k], NULL);
      g_strstrip(v);
      /* --model and --device replace what the file says: added below */
      if (!strcmp(full, "model.path") || !strcmp(full, "model.device"))
        continue;
      bool is_model = ops && ops->model_keys && !strcmp(groups[g], cfg->analyzer) &&
                      g_strv_contains(ops->model_keys, keys[k]);
      if (is_model && *v) {
        char *p = resolve(cfg, v);
        g_string_append_printf(canon, "%s=%s\n", full, p);
        g_ptr_array_add(paths, p);
      } else {
        g_string_append_printf(canon, "%s=%s\n", full, v);
      }
    }
  }
  if (cfg->model.path) {
    /* already resolved against the config's folder (or given by --model) */
    char *p = real_path(cfg->model.path);
    g_string_append_printf(canon, "model.path=%s\n", p);
    g_ptr_array_insert(paths, 0, p);
  }
  if (cfg->model.present || cfg->model.path)
    g_string_append_printf(canon, "model.device=%s\n", cfg->model.device);
  g_clear_pointer(&id->config_sha256, g_free);
  g_clear_pointer(&id->task, g_free);
  g_clear_pointer(&id->model_paths, g_strfreev);
  g_clear_pointer(&id->model_sha256, g_strfreev);
  id->config_sha256 = g_compute_checksum_for_string(G_CHECKSUM_SHA256, canon->str, canon->len);
  id->task = g_strdup(cfg->task);
  g_clear_pointer(&id->outputs, g_strfreev);
  const char *geojson = _eosin_tiles_geojson_name(cfg);
  id->outputs = g_new0(char *, 2);
  id->outputs[0] = g_strdup(geojson);
  g_autoptr(GPtrArray) sums = g_ptr_array_new_with_free_func(g_free);
  for (guint i = 0; i < paths->len; i++) {
    /* a model that cannot be read is a model error (exit 2), as in the loader */
    g_autoptr(GError) e = NULL;
    char *h = NULL;
    if (_eosin_check_input_file(paths->pdata[i], "model", EOSIN_MAX_MODEL_BYTES, NULL, &e))
      h = _eosin_sha256_file(paths->pdata[i], "model", NULL, &e);
    if (!h) {
      g_set_error_literal(err, EOSIN_ERROR, EOSIN_ERROR_MODEL, e->message);
      return false;
    }
    g_ptr_array_add(sums, h);
  }
  g_ptr_array_add(paths, NULL);
  g_ptr_array_add(sums, NULL);
  id->model_paths = (char **) g_ptr_array_free(g_steal_pointer(&paths), FALSE);
  id->model_sha256 = (char **) g_ptr_array_free(g_steal_pointer(&sums), FALSE);
  return true;
}

void _eosin_identity_json(const EosinIdentity *id, JsonBuilder *b) {
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "slide");
  json_builder_begin_object(b);
  _eosin_json_str(b, "path", id->slide_path);
  _eosin_json_int(b, "size", id->slide_size);
  g_autoptr(GDateTime) sec =
      id->slide_mtime_us ? g_date_time_new_from_unix_utc(id->slide_mtime_us / G_USEC_PER_SEC)
                         : NULL;
  g_autoptr(GDateTime) mt = sec ? g_date_time_add(sec, id->slide_mtime_us % G_USEC_PER_SEC) : NULL;
  g_autofree char *mtime = mt ? g_date_time_format_iso8601(mt) : NULL;
  json_builder_set_member_name(b, "mtime");
  if (mtime)
    json_builder_add_string_value(b, mtime);
  else
    json_builder_add_null_value(b);
  _eosin_json_str(b, "hash", id->slide_hash);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "mpp_user");
  if (id->mpp_user > 0)
    _eosin_json_value(b, id->mpp_user);
  else
    json_builder_add_null_value(b);
  _eosin_json_str(b, "task", id->task);
  _eosin_json_str(b, "config_sha256", id->config_sha256);
  json_builder_set_member_name(b, "models");
  json_builder_begin_array(b);
  for (int i = 0; id->model_paths && id->model_paths[i]; i++) {
    json_builder_begin_object(b);
    _eosin_json_str(b, "path", id->model_paths[i]);
    _eosin_json_str(b, "sha256", id->model_sha256[i]);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_end_object(b);
}

static const char *str_member(JsonObject *o, const char *k) {
  JsonNode *n = o ? json_object_get_member(o, k) : NULL;
  return n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING
             ? json_node_get_string(n)
             : NULL;
}

static JsonObject *obj_member(JsonObject *o, const char *k) {
  JsonNode *n = o ? json_object_get_member(o, k) : NULL;
  return n && JSON_NODE_HOLDS_OBJECT(n) ? json_node_get_object(n) : NULL;
}

char *_eosin_identity_differs(const EosinIdentity *want, JsonObject *got) {
  if (!got)
    return g_strdup("its report.json has no identity (written by an older Eosin)");
  JsonObject *s = obj_member(got, "slide");
  const char *path = str_member(s, "path"), *hash = str_member(s, "hash");
  JsonNode *size = s ? json_object_get_member(s, "size") : NULL;
  if (g_strcmp0(path, want->slide_path))
    return g_strdup_printf("it is the result of another slide (%s, not %s)",
                           path ? path : "unknown", want->slide_path);
  if (!size || !JSON_NODE_HOLDS_VALUE(size) || json_node_get_int(size) != want->slide_size ||
      g_strcmp0(hash, want->slide_hash))
    return g_strdup_printf("slide %s has changed since (its size or content hash differs)",
                           want->slide_path);
  JsonNode *m = json_object_get_member(got, "mpp_user");
  double mpp = m && JSON_NODE_HOLDS_VALUE(m) ? json_node_get_double(m) : 0;
  if (mpp != want->mpp_user)
    return g_strdup_printf("it was made with another --mpp (%g, not %g)", mpp, want->mpp_user);
  const char *task = str_member(got, "task");
  if (g_strcmp0(task, want->task))
    return g_strdup_printf("it is the result of task '%s', not '%s'", task ? task : "?",
                           want->task);
  if (g_strcmp0(str_member(got, "config_sha256"), want->config_sha256))
    return g_strdup_printf("it was made with another config of task '%s' (a setting differs)",
                           want->task);
  JsonNode *mn = json_object_get_member(got, "models");
  JsonArray *ma = mn && JSON_NODE_HOLDS_ARRAY(mn) ? json_node_get_array(mn) : NULL;
  guint n = want->model_paths ? g_strv_length(want->model_paths) : 0;
  if (!ma || json_array_get_length(ma) != n)
    return g_strdup("it was made with other models");
  for (guint i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element(ma, i);
    JsonObject *eo = e && JSON_NODE_HOLDS_OBJECT(e) ? json_node_get_object(e) : NULL;
    if (g_strcmp0(str_member(eo, "path"), want->model_paths[i]) ||
        g_strcmp0(str_member(eo, "sha256"), want->model_sha256[i]))
      return g_strdup_printf("model %s differs from the one it was made with",
                             want->model_paths[i]);
  }
  return NULL;
}
