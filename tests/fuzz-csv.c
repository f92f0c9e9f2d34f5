/*
 * fuzz-csv.c — libFuzzer target for the CSV reader every table goes
 * through (`make fuzz`): the input is CSV text, parsed by _eosin_csv_parse
 * with each combination of flags (plain, '#' comment rows, trailing
 * comments). Rows must be well formed (fields, count and lines in order),
 * and every table that parses must survive a round trip: written again with
 * _eosin_csv_append_field (the writer of batch summaries and messages) and
 * parsed with the same flags, it gives the same fields.
 */
#include "fuzz-common.c"

static void check_rows(GPtrArray *rows, size_t size) {
  int last = 0;
  for (guint i = 0; i < rows->len; i++) {
    const EosinCsvRow *r = rows->pdata[i];
    FUZZ_ASSERT(r && r->fields && r->n >= 1, "row %u", i);
    FUZZ_ASSERT((int) g_strv_length(r->fields) == r->n, "row %u: %d fields, n = %d", i,
                (int) g_strv_length(r->fields), r->n);
    FUZZ_ASSERT(r->line > last && r->line <= (int) size + 1, "row %u line %d after %d", i,
                r->line, last);
    last = r->line;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const EosinCsvFlags FLAGS[] = {
      EOSIN_CSV_PLAIN, EOSIN_CSV_COMMENTS, EOSIN_CSV_TRAILING_COMMENTS,
      EOSIN_CSV_COMMENTS | EOSIN_CSV_TRAILING_COMMENTS};
  /* the parser takes a length: no NUL terminator to lean on */
  char *text = g_malloc(MAX(size, 1)); /* never NULL, as a file's text is not */
  memcpy(text, data, size);
  for (size_t f = 0; f < G_N_ELEMENTS(FLAGS); f++) {
    GError *err = NULL;
    GPtrArray *rows = _eosin_csv_parse("fuzz.csv", text, size, FLAGS[f], &err);
    fuzz_contract(rows != NULL, err, "_eosin_csv_parse");
    g_clear_error(&err);
    if (!rows)
      continue;
    check_rows(rows, size);

    /* the round trip; a row of one empty field is written "" (an empty
     * line is a blank row, dropped), and a first field that starts with a
     * byte order mark would lose it (a BOM is skipped at the start) */
    bool bom = rows->len && !strncmp(((EosinCsvRow *) rows->pdata[0])->fields[0],
                                      "\xEF\xBB\xBF", 3);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < rows->len; i++) {
      const EosinCsvRow *r = rows->pdata[i];
      if (r->n == 1 && !*r->fields[0])
        g_string_append(s, "\"\"");
      for (int k = 0; k < r->n; k++) {
        if (k)
          g_string_append_c(s, ',');
        _eosin_csv_append_field(s, r->fields[k]);
      }
      g_string_append_c(s, '\n');
    }
    GPtrArray *again = _eosin_csv_parse("again.csv", s->str, s->len, FLAGS[f], &err);
    FUZZ_ASSERT(bom || again, "what the writer wrote does not parse: %s\n%s",
                err ? err->message : "", s->str);
    g_clear_error(&err);
    if (again && !bom) {
      FUZZ_ASSERT(again->len == rows->len, "%u rows became %u:\n%s", rows->len, again->len,
                  s->str);
      for (guint i = 0; i < rows->len; i++) {
        const EosinCsvRow *a = rows->pdata[i], *b = again->pdata[i];
        FUZZ_ASSERT(a->n == b->n, "row %u: %d fields became %d", i, a->n, b->n);
        for (int k = 0; k < a->n; k++)
          FUZZ_ASSERT(!strcmp(a->fields[k], b->fields[k]), "row %u field %d: '%s' became '%s'",
                      i, k, a->fields[k], b->fields[k]);
      }
    }
    if (again)
      g_ptr_array_unref(again);
    g_string_free(s, TRUE);
    g_ptr_array_unref(rows);
  }
  g_free(text);
  return 0;
}
