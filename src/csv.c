/*
 * csv.c — CSV as RFC 4180 writes it, for every table Eosin reads or
 * writes (manifests, CAMELYON files, batch summaries): quoted fields may
 * hold commas, doubled quotes and newlines, so a slide name with a comma
 * or a newline survives a round trip through Eosin's own files. The
 * reader is strict: an unterminated quote, or text after a closing quote,
 * is an error naming the file and line, never a silently different table.
 */
#include "eosin-core.h"

void _eosin_csv_row_free(gpointer p) {
  EosinCsvRow *r = p;
  g_strfreev(r->fields);
  g_free(r);
}

/* True when the rest of the line from @p (outside quotes) is a comment:
 * '#' at the start of the row, or after white space when @trailing. */
static bool comment_at(const char *text, const char *p, const char *row_start, bool trailing) {
  if (*p != '#')
    return false;
  if (p == row_start)
    return true;
  for (const char *q = row_start; q < p; q++)
    if (*q != ' ' && *q != '\t')
      return trailing && (p[-1] == ' ' || p[-1] == '\t');
  return true; /* only blanks before it: a comment line */
}

GPtrArray *_eosin_csv_parse(const char *name, const char *text, gsize len, EosinCsvFlags flags,
                            GError **err) {
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func(_eosin_csv_row_free);
  const char *p = text, *end = text + len;
  if (len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) /* a UTF-8 byte order mark */
    p += 3;
  int line = 1;
  bool comments = flags & (EOSIN_CSV_COMMENTS | EOSIN_CSV_TRAILING_COMMENTS);
  bool trailing = flags & EOSIN_CSV_TRAILING_COMMENTS;
  while (p < end) {
    int row_line = line;
    const char *row_start = p;
    g_autoptr(GPtrArray) fields = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GString) f = g_string_new(NULL);
    bool quoted_row_content = false; /* any field was quoted: not a blank line */
    for (;;) {
      /* one field */
      g_string_truncate(f, 0);
      bool quoted = false;
      const char *q = p;
      while (q < end && (*q == ' ' || *q == '\t'))
        q++;
      if (q < end && *q == '"') {
        quoted = quoted_row_content = true;
        int open_line = line;
        q++;
        for (;;) {
          if (q >= end) {
            g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                        "%s line %d: a quoted field is never closed", name, open_line);
            return NULL;
          }
          if (*q == '"') {
            if (q + 1 < end && q[1] == '"') {
              g_string_append_c(f, '"');
              q += 2;
              continue;
            }
            q++;
            break;
          }
          if (*q == '\n')
            line++;
          if (*q == '\0') {
            g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s line %d: a NUL byte", name,
                        line);
            return NULL;
          }
          g_string_append_c(f, *q++);
        }
        while (q < end && (*q == ' ' || *q == '\t'))
          q++;
        if (q < end && *q == '\r' && q + 1 < end && q[1] == '\n')
          q++;
        if (q < end && *q != ',' && *q != '\n' && !(comments && trailing && *q == '#')) {
          g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                      "%s line %d: text after a closing quote (a quote inside a quoted field "
                      "is written \"\")",
                      name, line);
          return NULL;
        }
      } else {
        q = p;
        while (q < end && *q != ',' && *q != '\n' &&
               !(comments && comment_at(text, q, row_start, trailing))) {
          if (*q == '\0') {
            g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s line %d: a NUL byte", name,
                        line);
            return NULL;
          }
          if (*q == '"') {
            g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                        "%s line %d: a quote inside an unquoted field (quote the whole field "
                        "and double the quote)",
                        name, line);
            return NULL;
          }
          g_string_append_c(f, *q++);
        }
        if (f->len && f->str[f->len - 1] == '\r')
          g_string_truncate(f, f->len - 1);
      }
      if (!quoted)
        g_strstrip(f->str), g_string_set_size(f, strlen(f->str));
      g_ptr_array_add(fields, g_strdup(f->str));
      p = q;
      if (p < end && *p == ',') {
        p++;
        continue;
      }
      if (comments && p < end && *p == '#') /* the rest of the line is a comment */
        while (p < end && *p != '\n')
          p++;
      if (p < end && *p == '\n') {
        p++;
        line++;
      }
      break;
    }
    bool blank = !quoted_row_content && fields->len == 1 && !*(char *) fields->pdata[0];
    if (blank)
      continue;
    g_ptr_array_add(fields, NULL);
    EosinCsvRow *r = g_new0(EosinCsvRow, 1);
    r->line = row_line;
    r->n = fields->len - 1;
    r->fields = (char **) g_ptr_array_free(g_steal_pointer(&fields), FALSE);
    g_ptr_array_add(rows, r);
  }
  return g_steal_pointer(&rows);
}

GPtrArray *_eosin_csv_read(const char *path, const char *what, EosinCsvFlags flags,
                           GError **err) {
  g_autofree char *text = NULL;
  gsize len = 0;
  if (!_eosin_read_input_file(path, what, EOSIN_MAX_TABLE_BYTES, &text, &len, err))
    return NULL;
  return _eosin_csv_parse(path, text, len, flags, err);
}

void _eosin_csv_append_field(GString *s, const char *v) {
  if (!v)
    v = "";
  bool quote = strpbrk(v, ",\"\r\n#") != NULL || (*v && (g_ascii_isspace(v[0]) ||
                                                         g_ascii_isspace(v[strlen(v) - 1])));
  if (!quote) {
    g_string_append(s, v);
    return;
  }
  g_string_append_c(s, '"');
  for (const char *c = v; *c; c++) {
    if (*c == '"')
      g_string_append_c(s, '"');
    g_string_append_c(s, *c);
  }
  g_string_append_c(s, '"');
}
