/*
 * files.c — how Eosin touches files. Inputs are checked before they are
 * read (a regular file, not a FIFO, a device or a folder, and not larger
 * than the reader expects), so /dev/zero as a config or a FIFO as a model
 * is a clear error instead of a hang or a 16 GB read. Outputs are durable:
 * written under a temporary name in the same folder, fsync'd, renamed over
 * the final name and the folder fsync'd, so after a power cut a file is
 * either its old complete self or its new complete self.
 */
#include "eosin-core.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

bool _eosin_check_input_file(const char *path, const char *what, gint64 max_bytes,
                             gint64 *size, GError **err) {
  if (!path || !*path) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s: no file name given", what);
    return false;
  }
  GStatBuf st;
  if (g_stat(path, &st) != 0) {
    int e = errno;
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s %s: %s", what, path,
                e == ENOENT ? "no such file" : g_strerror(e));
    return false;
  }
  if (S_ISDIR(st.st_mode)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s %s: is a directory, not a file", what,
                path);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO,
                "%s %s: not a regular file (a %s): Eosin reads only regular files", what, path,
                S_ISFIFO(st.st_mode)   ? "FIFO"
                : S_ISCHR(st.st_mode)  ? "character device"
                : S_ISBLK(st.st_mode)  ? "block device"
                : S_ISSOCK(st.st_mode) ? "socket"
                                       : "special file");
    return false;
  }
  if (max_bytes > 0 && st.st_size > max_bytes) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO,
                "%s %s: %" G_GINT64_FORMAT " bytes, more than the %" G_GINT64_FORMAT
                " a %s may have",
                what, path, (gint64) st.st_size, max_bytes, what);
    return false;
  }
  if (size)
    *size = st.st_size;
  return true;
}

bool _eosin_read_input_file(const char *path, const char *what, gint64 max_bytes, char **text,
                            gsize *len, GError **err) {
  if (!_eosin_check_input_file(path, what, max_bytes, NULL, err))
    return false;
  /* read at most max_bytes + 1 even if the file grew after the check */
  int fd = g_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s %s: %s", what, path, g_strerror(errno));
    return false;
  }
  g_autoptr(GByteArray) buf = g_byte_array_new();
  guint8 chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s %s: %s", what, path, g_strerror(e));
      return false;
    }
    if (n == 0)
      break;
    g_byte_array_append(buf, chunk, (guint) n);
    if (max_bytes > 0 && (gint64) buf->len > max_bytes) {
      close(fd);
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO,
                  "%s %s: more than the %" G_GINT64_FORMAT " bytes a %s may have", what, path,
                  max_bytes, what);
      return false;
    }
  }
  close(fd);
  if (len)
    *len = buf->len;
  g_byte_array_append(buf, (const guint8 *) "", 1); /* NUL-terminated for text readers */
  *text = (char *) g_byte_array_free(g_steal_pointer(&buf), FALSE);
  return true;
}

/* write(2) until done, retrying interrupted calls. */
static bool write_all(int fd, const void *data, gsize len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      if (n == 0)
        errno = EIO;
      return false;
    }
    p += n;
    len -= (gsize) n;
  }
  return true;
}

bool _eosin_fsync_dir(const char *dir, GError **err) {
  int fd = g_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "opening folder %s: %s", dir,
                g_strerror(errno));
    return false;
  }
  /* some file systems cannot fsync a folder (EINVAL): they have nothing to flush */
  bool ok = fsync(fd) == 0 || errno == EINVAL || errno == EROFS;
  int e = errno;
  close(fd);
  if (!ok)
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "syncing folder %s: %s", dir, g_strerror(e));
  return ok;
}

bool _eosin_fsync_file(const char *path, GError **err) {
  int fd = g_open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "opening %s: %s", path, g_strerror(errno));
    return false;
  }
  bool ok = fsync(fd) == 0;
  int e = errno;
  close(fd);
  if (!ok)
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "syncing %s: %s", path, g_strerror(e));
  return ok;
}

char *_eosin_temp_name(const char *path) {
  g_autofree char *dir = g_path_get_dirname(path);
  g_autofree char *base = g_path_get_basename(path);
  return g_strdup_printf("%s/.%s.XXXXXX.tmp", dir, base);
}

bool _eosin_publish(const char *tmp, const char *path, GError **err) {
  if (!_eosin_fsync_file(tmp, err))
    return false;
  if (g_rename(tmp, path) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "renaming %s to %s: %s", tmp, path,
                g_strerror(errno));
    return false;
  }
  g_autofree char *dir = g_path_get_dirname(path);
  return _eosin_fsync_dir(dir, err);
}

bool _eosin_write_atomic(const char *path, const void *data, gsize len, GError **err) {
  g_autofree char *tmp = _eosin_temp_name(path);
  int fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", path, g_strerror(errno));
    return false;
  }
  bool ok = write_all(fd, data, len) && fsync(fd) == 0;
  int e = errno;
  if (close(fd) != 0 && ok)
    ok = false, e = errno;
  if (!ok) {
    g_unlink(tmp);
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", path, g_strerror(e));
    return false;
  }
  if (g_rename(tmp, path) != 0) {
    e = errno;
    g_unlink(tmp);
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "renaming %s to %s: %s", tmp, path,
                g_strerror(e));
    return false;
  }
  g_autofree char *dir = g_path_get_dirname(path);
  return _eosin_fsync_dir(dir, err);
}

bool _eosin_write_json(const char *path, JsonNode *root, GError **err) {
  g_autoptr(JsonGenerator) gen = json_generator_new();
  json_generator_set_root(gen, root);
  json_generator_set_pretty(gen, TRUE);
  gsize len;
  g_autofree char *text = json_generator_to_data(gen, &len);
  /* json-glib writes a NaN or infinity as "nan"/"inf", which no JSON reader
   * takes: every JSON file Eosin writes is parsed back before it is kept */
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GError) perr = NULL;
  if (!json_parser_load_from_data(p, text, (gssize) len, &perr)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "%s: Eosin built JSON that does not parse (%s); not written", path,
                perr->message);
    return false;
  }
  return _eosin_write_atomic(path, text, len, err);
}

/* True when no array or object in @text nests deeper than @max_depth.
 * json-glib's parser recurses once per level, so a file of millions of '['
 * would overflow the stack before it could say no. Brackets inside strings
 * do not count. */
static bool json_depth_ok(const char *text, gsize len, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (gsize i = 0; i < len; i++) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return false;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
  return true;
}

JsonNode *_eosin_read_json_file(const char *path, const char *what, gint64 max_bytes,
                                int max_depth, GError **err) {
  g_autofree char *text = NULL;
  gsize len = 0;
  if (!_eosin_read_input_file(path, what, max_bytes, &text, &len, err))
    return NULL;
  if (!json_depth_ok(text, len, max_depth)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "%s %s: nested deeper than %d levels: not read", what, path, max_depth);
    return NULL;
  }
  g_autoptr(JsonParser) p = json_parser_new();
  g_autoptr(GError) perr = NULL;
  if (!json_parser_load_from_data(p, text, (gssize) len, &perr)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "%s %s does not parse: %s", what, path,
                perr->message);
    return NULL;
  }
  JsonNode *root = json_parser_get_root(p);
  if (!root) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "%s %s is empty", what, path);
    return NULL;
  }
  return json_node_copy(root);
}

struct _EosinOutFile {
  FILE *f;
  char *path, *tmp;
};

EosinOutFile *_eosin_out_open(const char *path, GError **err) {
  g_autofree char *tmp = _eosin_temp_name(path);
  int fd = g_mkstemp_full(tmp, O_RDWR | O_CLOEXEC, 0644);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    int e = errno;
    if (fd >= 0) {
      close(fd);
      g_unlink(tmp);
    }
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", path, g_strerror(e));
    return NULL;
  }
  EosinOutFile *o = g_new0(EosinOutFile, 1);
  o->f = f;
  o->path = g_strdup(path);
  o->tmp = g_steal_pointer(&tmp);
  return o;
}

FILE *_eosin_out_stream(EosinOutFile *o) {
  return o->f;
}

bool _eosin_out_close(EosinOutFile *o, bool ok, GError **err) {
  if (!o)
    return false;
  /* a full disk shows up in ferror, fflush or fsync, not in fprintf's
   * return values nobody checks */
  bool bad = ferror(o->f) || fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
  int e = errno;
  if (fclose(o->f) != 0 && !bad)
    bad = true, e = errno;
  if (ok && bad) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "writing %s: %s", o->path,
                g_strerror(e ? e : EIO));
    ok = false;
  }
  if (ok) {
    if (g_rename(o->tmp, o->path) != 0) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "renaming %s to %s: %s", o->tmp, o->path,
                  g_strerror(errno));
      ok = false;
    } else {
      g_autofree char *dir = g_path_get_dirname(o->path);
      ok = _eosin_fsync_dir(dir, err);
    }
  }
  if (!ok)
    g_unlink(o->tmp);
  g_free(o->path);
  g_free(o->tmp);
  g_free(o);
  return ok;
}
