/*
 * folder.c — OUTDIR/<slide>/ and who may touch it. Eosin replaces
 * or removes only a folder it can prove it wrote: the first file written
 * into a new folder is a marker (.eosin-output, a format of its own), and
 * when the folder is finished the marker is rewritten with the name and
 * size of every file in it. A folder without that marker, with a file the
 * marker does not list (a user's notes, the input slide itself), with a
 * subfolder or a symlink, or a plain file where the folder should be, is an
 * error naming it — never moved aside, never deleted.
 *
 * A finished folder replaces the previous result in one atomic step
 * (renameat2 RENAME_EXCHANGE), so OUTDIR/<slide> is at every moment either
 * the old complete result or the new one; the old one is then removed file
 * by listed file.
 */
#include "eosin-private.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER ".eosin-output"
#define MAGIC "eosin-output 1"
#define MAX_MARKER_BYTES (64 << 10)

/* Every name the pipeline itself writes into an output folder. */
static const char *const CORE_OUTPUTS[] = {"overlay.tif",     "heatmap.tif",    "preview.png",
                                           "tissue.png",      "tiles.csv",      "report.json",
                                           "detections.csv",  "lesions.geojson", "lesions.xml",
                                           "tiles.geojson",   "tiles.geojson.zip", "qc.png",
                                           "report.html", NULL};

const char *_eosin_marker_name(void) {
  return MARKER;
}

bool _eosin_is_output_name(const char *name) {
  if (g_strv_contains(CORE_OUTPUTS, name))
    return true;
  for (int i = 0; _eosin_analyzer_nth(i); i++) {
    const char *const *o = _eosin_analyzer_nth(i)->outputs;
    if (o && g_strv_contains(o, name))
      return true;
  }
  return false;
}

/* The file name @base of a temporary file named exactly as files.c names
 * them, ".BASE.XXXXXX.tmp" with mkstemp's six characters, or NULL. Caller
 * frees. */
static char *temp_base(const char *name) {
  size_t n = strlen(name);
  if (name[0] != '.' || n < 13 || !g_str_has_suffix(name, ".tmp") || name[n - 11] != '.')
    return NULL;
  for (size_t i = n - 10; i < n - 4; i++)
    if (!g_ascii_isalnum(name[i]))
      return NULL;
  return g_strndup(name + 1, n - 12);
}

/* A writer's temporary file of an output or of the marker. Anything else
 * (".tiles.csv.mynotes.tmp") is not Eosin's. */
static bool is_temp_name(const char *name) {
  g_autofree char *base = temp_base(name);
  return base && (_eosin_is_output_name(base) || !strcmp(base, MARKER));
}

void _eosin_outdir_remove_stale_temps(const char *outdir, const char *const *names) {
  g_autoptr(GDir) d = g_dir_open(outdir, 0, NULL);
  if (!d)
    return;
  const char *name;
  while ((name = g_dir_read_name(d))) {
    g_autofree char *base = temp_base(name);
    g_autofree char *p = g_build_filename(outdir, name, NULL);
    GStatBuf st;
    if (base && g_strv_contains(names, base) && g_lstat(p, &st) == 0 && S_ISREG(st.st_mode))
      g_unlink(p);
  }
}

/* True when @dir is named as Eosin names its staging folders
 * (".NAME.partial"): only there may a marker be unsealed. */
static bool is_staging_name(const char *dir) {
  g_autofree char *base = g_path_get_basename(dir);
  return base[0] == '.' && strlen(base) > 9 && g_str_has_suffix(base, ".partial");
}

bool _eosin_marker_begin(const char *dir, const char *slide_path, GError **err) {
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *iso = g_date_time_format_iso8601(now);
  /* escaped, so a newline in the slide's path cannot start a line of its own */
  g_autofree char *slide = g_strescape(slide_path, NULL);
  g_autofree char *text =
      g_strdup_printf(MAGIC "\nwriter eosin %s on %s, pid %d\nslide %s\ncreated %s\n",
                      eosin_version(), g_get_host_name(), (int) getpid(), slide, iso);
  g_autofree char *path = g_build_filename(dir, MARKER, NULL);
  return _eosin_write_atomic(path, text, strlen(text), err);
}

bool _eosin_marker_seal(const char *dir, GError **err) {
  g_autofree char *path = g_build_filename(dir, MARKER, NULL);
  g_autofree char *old = NULL;
  gsize len = 0;
  if (!_eosin_read_input_file(path, "output marker", MAX_MARKER_BYTES, &old, &len, err))
    return false;
  g_autoptr(GString) s = g_string_new(NULL);
  /* the header lines as written, then the folder's files */
  g_auto(GStrv) lines = g_strsplit(old, "\n", -1);
  for (int i = 0; lines[i]; i++)
    if (*lines[i] && !g_str_has_prefix(lines[i], "file ") && strcmp(lines[i], "sealed"))
      g_string_append_printf(s, "%s\n", lines[i]);
  g_autoptr(GDir) d = g_dir_open(dir, 0, err);
  if (!d)
    return false;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
  const char *name;
  while ((name = g_dir_read_name(d)))
    if (strcmp(name, MARKER))
      g_ptr_array_add(names, g_strdup(name));
  g_ptr_array_sort(names, _eosin_strv_cmp);
  for (guint i = 0; i < names->len; i++) {
    const char *n = names->pdata[i];
    g_autofree char *p = g_build_filename(dir, n, NULL);
    GStatBuf st;
    if (g_lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || !_eosin_is_output_name(n)) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                  "output folder %s: '%s' is not a file Eosin writes", dir, n);
      return false;
    }
    /* the content's hash, so a result edited in place (same size) is not
     * taken for the one Eosin wrote */
    g_autofree char *sum = _eosin_sha256_file(p, "output", NULL, err);
    if (!sum)
      return false;
    g_string_append_printf(s, "file %" G_GINT64_FORMAT " %s %s\n", (gint64) st.st_size, sum, n);
  }
  g_string_append(s, "sealed\n");
  return _eosin_write_atomic(path, s->str, s->len, err);
}

/* One file a marker lists: its size and, from markers sealed since
 * checksums were added, its SHA-256 (hex; empty when not recorded). */
typedef struct {
  gint64 size;
  char sha256[65];
} Listed;

/* The files a marker lists (name -> Listed), or NULL when the marker is
 * absent or foreign (@why says which); *@sealed tells whether it was
 * sealed. */
static GHashTable *read_marker(const char *dir, bool *sealed, char **why) {
  *sealed = false;
  g_autofree char *path = g_build_filename(dir, MARKER, NULL);
  GStatBuf st;
  if (g_lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
    *why = g_strdup("it was not written by Eosin (no " MARKER " marker in it)");
    return NULL;
  }
  g_autofree char *text = NULL;
  if (!_eosin_read_input_file(path, "output marker", MAX_MARKER_BYTES, &text, NULL, NULL) ||
      !g_str_has_prefix(text, MAGIC "\n")) {
    *why = g_strdup("its " MARKER " is not an Eosin marker");
    return NULL;
  }
  GHashTable *files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
  for (int i = 1; lines[i]; i++) {
    if (!strcmp(lines[i], "sealed")) {
      *sealed = true;
      continue;
    }
    if (!g_str_has_prefix(lines[i], "file "))
      continue;
    char *end;
    Listed l = {.size = g_ascii_strtoll(lines[i] + 5, &end, 10)};
    if (*end != ' ' || !end[1])
      continue;
    const char *name = end + 1;
    /* "file SIZE HEX64 NAME"; "file SIZE NAME" from markers without sums */
    if (strspn(name, "0123456789abcdef") == 64 && name[64] == ' ' && name[65]) {
      memcpy(l.sha256, name, 64);
      name += 65;
    }
    g_hash_table_insert(files, g_strdup(name), g_memdup2(&l, sizeof l));
  }
  return files;
}

bool _eosin_output_is_ours(const char *dir, const char *slide_path, GError **err) {
  GStatBuf st;
  if (g_lstat(dir, &st) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "output folder %s: %s", dir,
                g_strerror(errno));
    return false;
  }
  if (!S_ISDIR(st.st_mode)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_EXISTS,
                "%s exists and is %s, not an Eosin output folder: not replacing it (move it "
                "away or choose another -o)",
                dir, S_ISLNK(st.st_mode) ? "a symbolic link" : "a file");
    return false;
  }
  bool sealed;
  g_autofree char *why = NULL;
  g_autoptr(GHashTable) listed = read_marker(dir, &sealed, &why);
  if (!listed) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_EXISTS,
                "%s exists and %s: not replacing it (move it away or choose another -o)", dir,
                why);
    return false;
  }
  /* Eosin seals every folder before it takes a slide's name: an unsealed
   * marker belongs only in a staging folder (a copied marker does not make
   * a user's folder Eosin's) */
  if (!sealed && !is_staging_name(dir)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_EXISTS,
                "%s exists and its " MARKER " was never sealed, which no result of Eosin's "
                "is: not replacing it (move it away or choose another -o)",
                dir);
    return false;
  }
  GStatBuf slide_st;
  bool have_slide = slide_path && g_stat(slide_path, &slide_st) == 0;
  g_autoptr(GDir) d = g_dir_open(dir, 0, err);
  if (!d)
    return false;
  g_autoptr(GString) foreign = g_string_new(NULL);
  int n_foreign = 0;
  const char *name;
  while ((name = g_dir_read_name(d))) {
    if (!strcmp(name, MARKER))
      continue;
    g_autofree char *p = g_build_filename(dir, name, NULL);
    GStatBuf e;
    const char *what = NULL;
    if (g_lstat(p, &e) != 0)
      continue; /* gone meanwhile */
    if (have_slide && e.st_dev == slide_st.st_dev && e.st_ino == slide_st.st_ino)
      what = "the input slide";
    else if (!S_ISREG(e.st_mode))
      what = S_ISDIR(e.st_mode) ? "a folder" : "not a plain file";
    else if (sealed) {
      /* nothing writes into a sealed folder, so not even a temporary
       * file of Eosin's belongs there */
      Listed *l = g_hash_table_lookup(listed, name);
      if (!l)
        what = "not written by Eosin";
      else if (l->size != (gint64) e.st_size)
        what = "changed since Eosin wrote it";
    } else if (!_eosin_is_output_name(name) && !is_temp_name(name)) {
      what = "not written by Eosin";
    }
    if (what) {
      if (n_foreign++ < 5)
        g_string_append_printf(foreign, "%s%s (%s)", n_foreign > 1 ? ", " : "", name, what);
    }
  }
  if (n_foreign) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_EXISTS,
                "%s holds files Eosin did not write: %s%s: not replacing it (move them away "
                "or choose another -o)",
                dir, foreign->str, n_foreign > 5 ? ", ..." : "");
    return false;
  }
  return true;
}

bool _eosin_output_sealed_intact(const char *dir, char **why) {
  bool sealed;
  g_autofree char *w = NULL;
  g_autoptr(GHashTable) listed = read_marker(dir, &sealed, &w);
  if (!listed || !sealed) {
    *why = listed ? g_strdup("it was never finished") : g_steal_pointer(&w);
    return false;
  }
  if (!g_hash_table_contains(listed, "report.json")) {
    *why = g_strdup("its marker does not list a report.json");
    return false;
  }
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init(&it, listed);
  while (g_hash_table_iter_next(&it, &k, &v)) {
    const Listed *l = v;
    g_autofree char *p = g_build_filename(dir, (char *) k, NULL);
    GStatBuf st;
    if (g_lstat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
      *why = g_strdup_printf("its %s is missing", (char *) k);
      return false;
    }
    if ((gint64) st.st_size != l->size) {
      *why = g_strdup_printf("its %s has changed since it was written", (char *) k);
      return false;
    }
    if (!l->sha256[0]) {
      *why = g_strdup("its marker has no checksums (written by an earlier Eosin)");
      return false;
    }
    g_autoptr(GError) e = NULL;
    g_autofree char *sum = _eosin_sha256_file(p, "output", NULL, &e);
    if (!sum || strcmp(sum, l->sha256)) {
      *why = sum ? g_strdup_printf("its %s has changed since it was written (checksum)",
                                   (char *) k)
                 : g_strdup(e->message);
      return false;
    }
  }
  return true;
}

bool _eosin_output_remove(const char *dir, GError **err) {
  if (!_eosin_output_is_ours(dir, NULL, err))
    return false;
  g_autoptr(GDir) d = g_dir_open(dir, 0, err);
  if (!d)
    return false;
  const char *name;
  while ((name = g_dir_read_name(d))) {
    if (!strcmp(name, MARKER))
      continue;
    g_autofree char *p = g_build_filename(dir, name, NULL);
    if (g_unlink(p) != 0 && errno != ENOENT) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "removing %s: %s", p, g_strerror(errno));
      return false;
    }
  }
  /* the marker last: a folder half removed is still recognised as Eosin's */
  g_autofree char *m = g_build_filename(dir, MARKER, NULL);
  if ((g_unlink(m) != 0 && errno != ENOENT) || g_rmdir(dir) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "removing %s: %s", dir, g_strerror(errno));
    return false;
  }
  return true;
}

/* Removes @dir when it is a folder holding nothing or only a temporary
 * file of the marker: a staging folder whose run was killed before its
 * marker was in place. rmdir(2) removes only empty folders, so nothing
 * else can go. */
static bool remove_unmarked_start(const char *dir) {
  GStatBuf st;
  if (g_lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return false;
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  if (!d)
    return false;
  g_autoptr(GPtrArray) temps = g_ptr_array_new_with_free_func(g_free);
  const char *name;
  while ((name = g_dir_read_name(d))) {
    g_autofree char *p = g_build_filename(dir, name, NULL);
    g_autofree char *base = temp_base(name);
    if (!base || strcmp(base, MARKER) || g_lstat(p, &st) != 0 || !S_ISREG(st.st_mode))
      return false;
    g_ptr_array_add(temps, g_steal_pointer(&p));
  }
  for (guint i = 0; i < temps->len; i++)
    g_unlink(temps->pdata[i]);
  return g_rmdir(dir) == 0;
}

char *_eosin_output_stage(const char *outdir, const char *name, const char *slide_path,
                          GError **err) {
  g_autofree char *base = g_strdup_printf(".%s.partial", name);
  g_autofree char *staging = g_build_filename(outdir, base, NULL);
  GStatBuf st;
  /* a staging folder left by a killed run (the OUTDIR lock says no run is
   * writing it now) is removed, but only if it is one of Eosin's — or
   * empty but for a marker never finished (killed right after mkdir) */
  if (g_lstat(staging, &st) == 0 && !remove_unmarked_start(staging) &&
      !_eosin_output_remove(staging, err))
    return NULL;
  if (g_mkdir(staging, 0755) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "creating %s: %s", staging,
                g_strerror(errno));
    return NULL;
  }
  if (!_eosin_marker_begin(staging, slide_path, err)) {
    /* the marker may be in place even so: only the folder's sync failed */
    g_autofree char *marker = g_build_filename(staging, MARKER, NULL);
    g_unlink(marker);
    g_rmdir(staging);
    return NULL;
  }
  return g_steal_pointer(&staging);
}

bool _eosin_output_check_replaceable(const char *final, const char *slide_path, GError **err) {
  GStatBuf st;
  if (g_lstat(final, &st) != 0)
    return true; /* nothing there */
  return _eosin_output_is_ours(final, slide_path, err);
}

/* Syncs OUTDIR once the new result has taken its place. A rename is atomic
 * across a crash, synced or not, so OUTDIR/<slide> is the previous or the
 * new complete result either way: a failure here cannot take the new one
 * back, and is a warning that it may not survive a power cut. */
static void sync_placed(const char *outdir, char **warning) {
  g_autoptr(GError) e = NULL;
  if (!_eosin_fsync_dir(outdir, &e) && warning)
    *warning = g_strdup_printf("the result is in place but may not survive a power cut: %s",
                               e->message);
}

bool _eosin_output_promote(const char *staging, const char *final, const char *slide_path,
                           char **warning, GError **err) {
  g_autofree char *outdir = g_path_get_dirname(final);
  if (!_eosin_marker_seal(staging, err) || !_eosin_fsync_dir(staging, err))
    return false;
  GStatBuf st;
  if (g_lstat(final, &st) != 0) {
    if (g_rename(staging, final) != 0) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "moving %s to %s: %s", staging, final,
                  g_strerror(errno));
      return false;
    }
    sync_placed(outdir, warning);
    return true;
  }
  if (!_eosin_output_is_ours(final, slide_path, err))
    return false;
  g_autofree char *old_dir = g_strdup(staging);
  /* one atomic step: staging and final trade places */
  if (renameat2(AT_FDCWD, staging, AT_FDCWD, final, RENAME_EXCHANGE) != 0) {
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "replacing %s with %s: %s", final, staging,
                  g_strerror(errno));
      return false;
    }
    /* a file system without RENAME_EXCHANGE: the old result goes aside
     * under a name of Eosin's own, then the new one takes its place */
    g_autofree char *base = g_path_get_basename(final);
    g_autofree char *aside_base = g_strdup_printf(".%s.replaced", base);
    g_autofree char *aside = g_build_filename(outdir, aside_base, NULL);
    if (g_lstat(aside, &st) == 0 && !_eosin_output_remove(aside, err))
      return false;
    if (g_rename(final, aside) != 0) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "moving %s aside: %s", final,
                  g_strerror(errno));
      return false;
    }
    if (g_rename(staging, final) != 0) {
      int e = errno;
      g_rename(aside, final);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "moving %s to %s: %s", staging, final,
                  g_strerror(e));
      return false;
    }
    if (g_rename(aside, staging) != 0) {
      g_free(old_dir);
      old_dir = g_strdup(aside);
    }
  }
  sync_placed(outdir, warning);
  /* the old result now lies at the staging name; the new one is in place
   * whatever happens to the removal */
  g_autoptr(GError) rerr = NULL;
  if (!_eosin_output_remove(old_dir, &rerr) && warning) {
    char *w = g_strdup_printf("%s%sthe previous result was replaced but not removed: %s",
                              *warning ? *warning : "", *warning ? "; " : "", rerr->message);
    g_free(*warning);
    *warning = w;
  }
  return true;
}
