/*
 * eosin-util.h — the bottom layer every other includes: how Eosin reads a
 * small input file (size limits, no FIFOs or devices), writes one durably
 * (temporary name, fsync, rename), parses CSV strictly and builds JSON
 * with non-finite numbers as null (files.c, csv.c, util.c). It knows
 * nothing of slides, configs or tasks, so nn/ and cells/ may use it.
 */
#pragma once

#include "eosin.h"

#include <json-glib/json-glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

G_BEGIN_DECLS

/* ---------------------------------------------------------------- files (files.c) */

/* Size limits of the small files Eosin reads whole. */
#define EOSIN_MAX_CONFIG_BYTES (1 << 20)        /* a task config */
#define EOSIN_MAX_TABLE_BYTES (256 << 20)       /* a manifest, list or CAMELYON table */
#define EOSIN_MAX_MODEL_BYTES ((gint64) 2 << 30) /* an ONNX model (protobuf's limit) */

/* @path is a regular file (symlinks followed; not a FIFO, device or folder)
 * of at most @max_bytes (0: any size); else an EOSIN_ERROR_IO error naming
 * @what ("config", "manifest", ...) and the path. *@size may be NULL. */
bool _eosin_check_input_file(const char *path, const char *what, gint64 max_bytes,
                             gint64 *size, GError **err);
/* The whole of a checked input file, NUL-terminated (*@text, g_free) and
 * its length (*@len, may be NULL). */
bool _eosin_read_input_file(const char *path, const char *what, gint64 max_bytes, char **text,
                            gsize *len, GError **err);

/* Writes @len bytes to @path durably: a temporary file in the same folder
 * (.NAME.XXXXXX.tmp), fsync'd, renamed over @path, the folder fsync'd. On
 * failure @path is untouched and no temporary file is left. */
bool _eosin_write_atomic(const char *path, const void *data, gsize len, GError **err);
/* @root as pretty JSON, parsed back first (a NaN would make it invalid),
 * written with _eosin_write_atomic. */
bool _eosin_write_json(const char *path, JsonNode *root, GError **err);
/* A JSON file Eosin reads back (a report a batch resumes from): at most
 * @max_bytes, nested at most @max_depth deep (json-glib recurses per
 * level), parsed. NULL with @err naming the file otherwise. Caller frees
 * with json_node_unref. */
JsonNode *_eosin_read_json_file(const char *path, const char *what, gint64 max_bytes,
                                int max_depth, GError **err);
/* The string / number at dotted @path ("slide.mpp_x") of @o (may be NULL):
 * NULL / NaN when a step is missing or the value is of another type.
 * Borrowed from @o. */
const char *_eosin_json_string_at(JsonObject *o, const char *path);
double _eosin_json_number_at(JsonObject *o, const char *path);
/* The bounds Eosin reads its own report.json with: far above any report it
 * writes, far below what would exhaust memory or the stack. */
#define EOSIN_REPORT_MAX_BYTES (16 << 20)
#define EOSIN_REPORT_MAX_DEPTH 64
/* The temporary name a writer of @path uses: "DIR/.BASE.XXXXXX.tmp", a
 * template for g_mkstemp. Caller frees. */
char *_eosin_temp_name(const char *path);
/* fsyncs the written file @tmp, renames it to @path and fsyncs the folder. */
bool _eosin_publish(const char *tmp, const char *path, GError **err);
bool _eosin_fsync_file(const char *path, GError **err);
bool _eosin_fsync_dir(const char *dir, GError **err);

/* A file written as a stream (a whole slide's cells): to a temporary name,
 * fsync'd and renamed over @path by _eosin_out_close(o, true, err), which
 * also reports a write that failed on the way (a full disk); with @ok
 * false (or on any failure) the temporary file is removed and @path is
 * untouched. _eosin_out_close always frees @o. */
typedef struct _EosinOutFile EosinOutFile;
EosinOutFile *_eosin_out_open(const char *path, GError **err);
FILE *_eosin_out_stream(EosinOutFile *o);
bool _eosin_out_close(EosinOutFile *o, bool ok, GError **err);

/* ---------------------------------------------------------------- csv (csv.c) */

typedef struct {
  char **fields;  /* NULL-terminated; unquoted fields trimmed */
  int n;          /* number of fields */
  int line;       /* 1-based line where the row starts */
} EosinCsvRow;
void _eosin_csv_row_free(gpointer row);

typedef enum {
  EOSIN_CSV_PLAIN = 0,
  EOSIN_CSV_COMMENTS = 1 << 0,          /* a row starting with '#' is a comment */
  EOSIN_CSV_TRAILING_COMMENTS = 1 << 1, /* also: an unquoted '#' after a blank ends the row */
} EosinCsvFlags;

/* Parses RFC 4180 CSV (@name is used in messages): comma-separated,
 * double-quoted fields may hold commas, newlines and "" for a quote; CRLF
 * accepted, a UTF-8 BOM skipped, blank rows dropped. Returns a GPtrArray
 * of EosinCsvRow, or NULL with an EOSIN_ERROR_CONFIG error naming the line
 * (an unclosed quote, text after a closing quote, a stray quote, NUL). */
GPtrArray *_eosin_csv_parse(const char *name, const char *text, gsize len, EosinCsvFlags flags,
                            GError **err);
/* The same from a checked input file (at most EOSIN_MAX_TABLE_BYTES). */
GPtrArray *_eosin_csv_read(const char *path, const char *what, EosinCsvFlags flags,
                           GError **err);
/* Appends @v (NULL = "") as one field: quoted, inner quotes doubled, when
 * it holds a comma, quote, CR, LF or '#' or starts or ends with a blank. */
void _eosin_csv_append_field(GString *s, const char *v);

/* One member of the JSON object being built: "@k": @v. A number that is
 * not finite is written as null (JSON has no NaN). */
void _eosin_json_num(JsonBuilder *b, const char *k, double v);
/* A number as a value (an array element, a member whose name is set):
 * null when it is not finite. */
void _eosin_json_value(JsonBuilder *b, double v);
void _eosin_json_int(JsonBuilder *b, const char *k, gint64 v);
void _eosin_json_str(JsonBuilder *b, const char *k, const char *v);
void _eosin_json_bool(JsonBuilder *b, const char *k, bool v);

G_END_DECLS
