/*
 * manifest.c — the slides of a batch: a manifest (CSV, one "path" or
 * "path,mpp" a line, relative paths from the manifest's folder, '#'
 * comments) or every slide-like file directly in a folder, by name.
 */
#include "eosin-core.h"
#include "slide/slide.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>

static const char *const SLIDE_EXTS[] = {".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu",
                                         ".scn", ".mrxs", ".svslide", ".bif", ".png", ".jpg",
                                         ".jpeg", NULL};

static void item_free(gpointer p) {
  EosinBatchItem *it = p;
  g_free(it->path);
  g_free(it);
}

static void add_item(GPtrArray *a, const char *path, double mpp) {
  EosinBatchItem *it = g_new0(EosinBatchItem, 1);
  it->path = g_strdup(path);
  it->mpp = mpp;
  g_ptr_array_add(a, it);
}

GPtrArray *eosin_batch_from_manifest(const char *path, GError **err) {
  /* CSV: a path with a comma is quoted; '#' starts a comment at the start
   * of a line or after a blank (a path holding " #" is quoted) */
  g_autoptr(GPtrArray) rows =
      _eosin_csv_read(path, "manifest", EOSIN_CSV_COMMENTS | EOSIN_CSV_TRAILING_COMMENTS, err);
  if (!rows)
    return NULL;
  g_autofree char *dir = g_path_get_dirname(path);
  g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func(item_free);
  for (guint n = 0; n < rows->len; n++) {
    EosinCsvRow *r = rows->pdata[n];
    char **f = r->fields;
    if (n == 0 && !strcmp(f[0], "path") && (r->n == 1 || (r->n == 2 && !strcmp(f[1], "mpp"))))
      continue; /* the header */
    if (r->n > 2 || !*f[0] || (r->n == 2 && !*f[1])) {
      g_autoptr(GString) line = g_string_new(NULL);
      for (int k = 0; k < r->n; k++) {
        if (k)
          g_string_append_c(line, ',');
        _eosin_csv_append_field(line, f[k]);
      }
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "manifest %s, line %d: '%s': expected 'path' or 'path,mpp'", path, r->line,
                  line->str);
      return NULL;
    }
    double mpp = 0;
    if (r->n == 2) {
      char *end;
      mpp = g_ascii_strtod(f[1], &end);
      if (*end || !(mpp > 0) || !isfinite(mpp)) {
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                    "manifest %s, line %d: mpp '%s' is not a positive number", path, r->line,
                    f[1]);
        return NULL;
      }
    }
    g_autofree char *full =
        g_path_is_absolute(f[0]) ? g_strdup(f[0]) : g_build_filename(dir, f[0], NULL);
    add_item(items, full, mpp);
  }
  if (!items->len) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "manifest %s: lists no slides", path);
    return NULL;
  }
  return g_steal_pointer(&items);
}

static gint cmp_str(gconstpointer a, gconstpointer b) {
  return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Why @name (a file in a slide folder) is a slide's companion rather than
 * a slide, or NULL: truth masks and annotations sit beside the slides in
 * CAMELYON-style folders, and a PNG mask is an image libvips would read. */
static const char *companion(const char *lower) {
  static const char *const TEXT_EXTS[] = {".xml", ".csv", ".json", ".geojson", ".txt", ".md",
                                          ".log", ".ini", NULL};
  for (int e = 0; TEXT_EXTS[e]; e++)
    if (g_str_has_suffix(lower, TEXT_EXTS[e]))
      return "annotations, a table or notes";
  const char *dot = strrchr(lower, '.');
  g_autofree char *stem = dot ? g_strndup(lower, dot - lower) : g_strdup(lower);
  if (g_str_has_suffix(stem, "_mask") || g_str_has_suffix(stem, "-mask") ||
      g_str_has_suffix(stem, ".mask") || g_str_has_suffix(stem, "_tumor_mask"))
    return "a truth mask: named *_mask";
  return NULL;
}

GPtrArray *eosin_batch_from_dir(const char *dirpath, GPtrArray **skipped, GError **err) {
  if (skipped)
    *skipped = g_ptr_array_new_with_free_func(g_free);
  g_autoptr(GError) derr = NULL;
  g_autoptr(GDir) dir = g_dir_open(dirpath, 0, &derr);
  if (!dir) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "slide folder %s: %s", dirpath, derr->message);
    return NULL;
  }
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *name;
  while ((name = g_dir_read_name(dir))) {
    g_autofree char *lower = g_ascii_strdown(name, -1);
    g_autofree char *path = g_build_filename(dirpath, name, NULL);
    if (name[0] == '.' || g_file_test(path, G_FILE_TEST_IS_DIR))
      continue; /* hidden files; a MIRAX slide's data folder */
    const char *why = companion(lower);
    bool ext = false;
    for (int e = 0; SLIDE_EXTS[e] && !ext; e++)
      ext = g_str_has_suffix(lower, SLIDE_EXTS[e]);
    /* a slide by its name (a damaged one then fails in the batch, where
     * the lab sees it), or by OpenSlide recognising its content (formats
     * named otherwise: DICOM folders' files, .isyntax converted, ...) */
    if (!why && (ext || _eosin_openslide_detect(path))) {
      g_ptr_array_add(names, g_steal_pointer(&path));
      continue;
    }
    if (skipped)
      g_ptr_array_add(*skipped, g_strdup_printf("%s (%s)", name,
                                                why ? why : "not a slide OpenSlide or libvips reads"));
  }
  g_ptr_array_sort(names, cmp_str);
  if (skipped)
    g_ptr_array_sort(*skipped, cmp_str);
  if (!names->len) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "slide folder %s: no slide files", dirpath);
    return NULL;
  }
  GPtrArray *items = g_ptr_array_new_with_free_func(item_free);
  for (guint i = 0; i < names->len; i++)
    add_item(items, names->pdata[i], 0);
  return items;
}
