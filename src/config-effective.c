/*
 * config-effective.c — the config a run really used, every key of it.
 * A task file states some keys and leaves the rest to defaults that an
 * Eosin release may change; a report that echoes only the file cannot be
 * re-run to the same numbers later. So every strict getter (config.c, and
 * the analyzers' reads of their own group through it) records the value it
 * resolved — the file's text, or the default — into a GKeyFile held by the
 * config, with model paths made absolute. report.json carries it as JSON
 * and as .ini text that `eosin run --task` takes back unchanged.
 *
 * Analyzers read their group in init(), once per slide, and a batch may
 * run one slide's init while another slide's report is written, so the
 * record has its own lock; every slide records the same values.
 */
#include "eosin-core.h"
#include "tasks/analyzer.h" /* the analyzer's model keys */

#include <math.h>

struct _EosinConfigRecord {
  GMutex lock;
  GKeyFile *kf; /* group -> key -> the resolved value, as .ini text */
};

EosinConfigRecord *_eosin_config_record_new(void) {
  EosinConfigRecord *r = g_new0(EosinConfigRecord, 1);
  g_mutex_init(&r->lock);
  r->kf = g_key_file_new();
  return r;
}

void _eosin_config_record_free(EosinConfigRecord *r) {
  if (!r)
    return;
  g_key_file_free(r->kf);
  g_mutex_clear(&r->lock);
  g_free(r);
}

void _eosin_config_record(const EosinConfig *cfg, const char *group, const char *key,
                          const char *value) {
  EosinConfigRecord *r = cfg->effective;
  /* no [model] group: its defaults are not part of the run (writing them
   * would make a re-run's config name a model it never had) */
  if (!r || !value || (!strcmp(group, "model") && !cfg->model.present))
    return;
  g_mutex_lock(&r->lock);
  g_key_file_set_value(r->kf, group, key, value);
  g_mutex_unlock(&r->lock);
}

void _eosin_config_record_double(const EosinConfig *cfg, const char *group, const char *key,
                                 double v) {
  /* the shortest text that reads back to @v (0.4, not 0.40000000000000002) */
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  for (int digits = 6; digits <= 17; digits++) {
    char fmt[8];
    g_snprintf(fmt, sizeof fmt, "%%.%dg", digits);
    g_ascii_formatd(buf, sizeof buf, fmt, v);
    if (g_ascii_strtod(buf, NULL) == v)
      break;
  }
  _eosin_config_record(cfg, group, key, buf);
}

void _eosin_config_record_overlay(const EosinConfig *cfg, const char *channel, double vmin,
                                  double vmax) {
  _eosin_config_record(cfg, "overlay", "channel", channel);
  if (cfg->overlay_range_set)
    return; /* min and max are the file's, recorded as it says them */
  _eosin_config_record_double(cfg, "overlay", "min", vmin);
  _eosin_config_record_double(cfg, "overlay", "max", vmax);
}

char *_eosin_config_resolve_path(const EosinConfig *cfg, const char *path) {
  if (g_path_is_absolute(path))
    return g_canonicalize_filename(path, NULL);
  g_autofree char *dir = g_path_get_dirname(cfg->path);
  g_autofree char *abs_dir = g_canonicalize_filename(dir, NULL);
  return g_canonicalize_filename(path, abs_dir);
}

/* The record, plus any key of the file no getter read (an analyzer's own
 * parse of a list, say), the analyzer's model files made absolute. Caller
 * frees. */
static GKeyFile *effective_keyfile(const EosinConfig *cfg) {
  GKeyFile *kf = g_key_file_new();
  if (cfg->effective) {
    g_mutex_lock(&cfg->effective->lock);
    gsize len = 0;
    g_autofree char *text = g_key_file_to_data(cfg->effective->kf, &len, NULL);
    g_mutex_unlock(&cfg->effective->lock);
    g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, NULL);
  }
  const EosinAnalyzerOps *ops = eosin_analyzer_find(cfg->analyzer);
  g_auto(GStrv) groups = g_key_file_get_groups(cfg->keyfile, NULL);
  for (char **g = groups; *g; g++) {
    g_auto(GStrv) keys = g_key_file_get_keys(cfg->keyfile, *g, NULL, NULL);
    for (char **k = keys; k && *k; k++) {
      if (g_key_file_has_key(kf, *g, *k, NULL))
        continue;
      g_autofree char *v = g_key_file_get_value(cfg->keyfile, *g, *k, NULL);
      g_strstrip(v);
      bool is_model = ops && ops->model_keys && !strcmp(*g, cfg->analyzer) &&
                      g_strv_contains(ops->model_keys, *k) && *v;
      g_autofree char *abs = is_model ? _eosin_config_resolve_path(cfg, v) : NULL;
      g_key_file_set_value(kf, *g, *k, abs ? abs : v);
    }
  }
  return kf;
}

void _eosin_config_effective_json(const EosinConfig *cfg, JsonBuilder *b) {
  g_autoptr(GKeyFile) kf = effective_keyfile(cfg);
  json_builder_set_member_name(b, "effective");
  json_builder_begin_object(b);
  g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
  for (char **g = groups; *g; g++) {
    json_builder_set_member_name(b, *g);
    json_builder_begin_object(b);
    g_auto(GStrv) keys = g_key_file_get_keys(kf, *g, NULL, NULL);
    for (char **k = keys; k && *k; k++) {
      g_autofree char *v = g_key_file_get_value(kf, *g, *k, NULL);
      _eosin_json_str(b, *k, v);
    }
    json_builder_end_object(b);
  }
  json_builder_end_object(b);
  g_autofree char *head = g_strdup_printf(
      " The effective config of %s as Eosin %s ran it: every key, defaults included;\n"
      " eosin run --task THIS_FILE re-runs it.",
      cfg->path, eosin_version());
  g_key_file_set_comment(kf, NULL, NULL, head, NULL);
  g_autofree char *ini = g_key_file_to_data(kf, NULL, NULL);
  _eosin_json_str(b, "ini", ini);
}
