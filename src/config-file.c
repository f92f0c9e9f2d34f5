/*
 * config-file.c — a config file read as the text a person wrote: at most
 * EOSIN_MAX_CONFIG_BYTES, UTF-8 (a byte order mark dropped), no NUL byte,
 * every line one GKeyFile reads the way it looks (check_lines), duplicate
 * groups and keys refused; then parsed into the config's GKeyFile, which
 * config.c reads key by key.
 */
#include "eosin-core.h"

#include <string.h>

/* GKeyFile keeps the last of two equal keys or groups and reads key[locale]
 * as a translation: a config that says something twice would run with
 * whichever came last. This pass over the lines refuses both, with the
 * lines, before GKeyFile sees the text. */
static bool check_lines(const char *path, const char *text, GError **err) {
  g_autoptr(GHashTable) groups = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GHashTable) keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  g_autofree char *group = NULL;
  for (int n = 0; lines[n]; n++) {
    const char *l = lines[n];
    while (*l == ' ' || *l == '\t')
      l++;
    g_autofree char *line = g_strdup(l);
    g_strchomp(line);
    int at = n + 1;
    if (!*line || *line == '#')
      continue;
    if (*line == '[') {
      size_t len = strlen(line);
      if (line[len - 1] != ']') {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                    "config %s line %d: '%s': a group line must be [name]", path, at, line);
        return false;
      }
      g_free(group);
      group = g_strndup(line + 1, len - 2);
      gpointer first = g_hash_table_lookup(groups, group);
      if (first) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                    "config %s line %d: group [%s] appears twice (first at line %d)", path, at, group,
                    GPOINTER_TO_INT(first));
        return false;
      }
      g_hash_table_insert(groups, g_strdup(group), GINT_TO_POINTER(at));
      continue;
    }
    const char *eq = strchr(line, '=');
    if (!eq) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "config %s line %d: '%s': expected 'key = value', a [group] or a # comment", path, at,
                  line);
      return false;
    }
    g_autofree char *key = g_strstrip(g_strndup(line, eq - line));
    if (!group) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "config %s line %d: key '%s' before the first [group]", path, at, key);
      return false;
    }
    if (!*key || strpbrk(key, "[]")) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "config %s line %d: [%s] key '%s': %s", path, at, group, key,
                  *key ? "localized keys (key[locale]) are not supported" : "empty key");
      return false;
    }
    g_autofree char *full = g_strdup_printf("%s\n%s", group, key);
    gpointer first = g_hash_table_lookup(keys, full);
    if (first) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "config %s line %d: [%s] %s is set twice (first at line %d)", path, at, group, key,
                  GPOINTER_TO_INT(first));
      return false;
    }
    g_hash_table_insert(keys, g_steal_pointer(&full), GINT_TO_POINTER(at));
  }
  return true;
}

/* Reads cfg->path into cfg->keyfile: a UTF-8 text file of lines GKeyFile
 * reads the same way a person does (check_lines), nothing else. */
bool _eosin_config_read_keyfile(EosinConfig *cfg, GError **err) {
  g_autofree char *text = NULL;
  gsize len = 0;
  g_autoptr(GError) rerr = NULL;
  if (!_eosin_read_input_file(cfg->path, "config", EOSIN_MAX_CONFIG_BYTES, &text, &len, &rerr)) {
    g_set_error_literal(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, rerr->message);
    return false;
  }
  /* a UTF-8 byte order mark (Windows editors write one) is not part of the text */
  const char *body = len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? text + 3 : text;
  if (memchr(text, 0, len)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "config %s: not a text file (a NUL byte)",
                cfg->path);
    return false;
  }
  if (!g_utf8_validate(body, -1, NULL)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "config %s: not UTF-8 text", cfg->path);
    return false;
  }
  if (!check_lines(cfg->path, body, err))
    return false;
  g_autoptr(GError) kerr = NULL;
  if (!g_key_file_load_from_data(cfg->keyfile, body, -1, G_KEY_FILE_NONE, &kerr)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "config %s: %s", cfg->path, kerr->message);
    return false;
  }
  return true;
}
