/*
 * tables.c — the strict CSV reading every `eosin eval` table goes through
 * (eval.c, eval-camelyon17.c): a row as the user wrote it, header rows
 * recognised by their column names, malformed rows named by file, line and
 * value, names unique, numbers finite and in range.
 */
#include "eval/eval-private.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>


/* Every eval table goes through _eosin_csv_read: RFC 4180 quoting (eosin
 * batch quotes a slide name holding a comma), CRLF, a BOM, '#' comment
 * lines; FIFOs, devices and folders refused. */
GPtrArray *_eosin_eval_read_table(const char *path, const char *what, GError **err) {
  return _eosin_csv_read(path, what, EOSIN_CSV_COMMENTS, err);
}

/* @r as CSV again, for messages: at most 80 bytes (cut at a UTF-8
 * character), line breaks and other control characters shown as '?'. */
char *_eosin_eval_row_text(const EosinCsvRow *r) {
  GString *s = g_string_new(NULL);
  for (int i = 0; i < r->n; i++) {
    if (i)
      g_string_append_c(s, ',');
    _eosin_csv_append_field(s, r->fields[i]);
  }
  if (s->len > 80) {
    gsize cut = 80;
    while (cut > 0 && ((guchar) s->str[cut] & 0xC0) == 0x80)
      cut--;
    g_string_truncate(s, cut);
    g_string_append(s, "...");
  }
  for (gsize i = 0; i < s->len; i++)
    if ((guchar) s->str[i] < 0x20 || s->str[i] == 0x7f)
      s->str[i] = '?';
  return g_string_free(s, FALSE);
}

/* A first row is a header only when its fields are the column names a
 * header of that file uses (case-insensitive; @cols: one NULL-terminated
 * list of alternatives per column, NULL-terminated): a first row that
 * merely fails to parse (semicolons, a typo) is an error like any other
 * row, not silently dropped. With @exact the row has exactly those
 * columns, else at least them (the reference's histotype, ...). */
bool _eosin_eval_is_header(const EosinCsvRow *r, const char *const *const *cols, bool exact) {
  int n = 0;
  while (cols[n])
    n++;
  if (exact ? r->n != n : r->n < n)
    return false;
  for (int i = 0; i < n; i++) {
    bool ok = false;
    for (const char *const *c = cols[i]; *c && !ok; c++)
      ok = !g_ascii_strcasecmp(r->fields[i], *c);
    if (!ok)
      return false;
  }
  return true;
}

/* The message for a bad row: "FILE line N: WHY in "ROW" (expected WANT)". */
void _eosin_eval_bad_row(GError **err, const char *path, const EosinCsvRow *r, const char *want,
                         const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *why = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_autofree char *text = _eosin_eval_row_text(r);
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s line %d: %s in \"%s\" (expected %s)",
              path, r->line, why, text, want);
}

/* "FILE line N: NAME again (first on line M)": a second probability or
 * stage for one name would silently replace the first. */
bool _eosin_eval_check_unique(GHashTable *seen, const char *path, const char *kind, const char *name,
                         int line, GError **err) {
  gpointer first;
  if (g_hash_table_lookup_extended(seen, name, NULL, &first)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s line %d: %s %s again (first on line %d)",
                path, line, kind, name, GPOINTER_TO_INT(first));
    return false;
  }
  g_hash_table_insert(seen, g_strdup(name), GINT_TO_POINTER(line));
  return true;
}

bool _eosin_eval_parse_num(const char *s, double *v) {
  char *end;
  errno = 0;
  *v = g_ascii_strtod(s, &end);
  return *s && !*end && !errno && isfinite(*v);
}

/* NULL when @s is a probability (a finite number in [0, 1]), else why not. */
const char *_eosin_eval_prob_problem(const char *s, double *v) {
  if (!_eosin_eval_parse_num(s, v))
    return "is not a finite number";
  return *v >= 0 && *v <= 1 ? NULL : "is outside [0, 1]";
}

/* NULL when @s is a level-0 coordinate eval accepts (a finite number in
 * [0, EOSIN_EVAL_MAX_COORD]: checked here, before the grid size or a pixel
 * index is computed from it), else why not. */
const char *_eosin_eval_coord_problem(const char *s, double *v) {
  if (!_eosin_eval_parse_num(s, v))
    return "is not a finite number";
  if (*v < 0)
    return "is negative";
  return *v <= EOSIN_EVAL_MAX_COORD ? NULL : "is past 4194304 px, the largest level-0 "
                                             "coordinate eval accepts";
}
