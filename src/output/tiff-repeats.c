/*
 * tiff-repeats.c — pointing an overlay's repeated tiles at their first
 * copies (pyramid.c): libtiff has no call to point a tile at bytes already
 * written, so the writer leaves repeats sparse and, once libtiff has
 * flushed the file, their TileOffsets/TileByteCounts entries are patched
 * here in place, by reading and rewriting the BigTIFF's directories.
 */
#include "eosin-private.h"

#include <errno.h>
#include <unistd.h>

/* Little- or big-endian integers of the file, as libtiff wrote them. */
static uint64_t get_uint(const uint8_t *p, int size, bool big) {
  uint64_t v = 0;
  for (int i = 0; i < size; i++)
    v |= (uint64_t) p[big ? size - 1 - i : i] << (8 * i);
  return v;
}

static void put_uint(uint8_t *p, int size, bool big, uint64_t v) {
  for (int i = 0; i < size; i++)
    p[big ? size - 1 - i : i] = (uint8_t) (v >> (8 * i));
}

static bool pread_all(int fd, void *buf, size_t len, uint64_t off) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pread(fd, (uint8_t *) buf + done, len - done, (off_t) (off + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0)
      errno = 0; /* a short file, not a failed call */
    if (n <= 0)
      return false;
    done += (size_t) n;
  }
  return true;
}

static bool pwrite_all(int fd, const void *buf, size_t len, uint64_t off) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pwrite(fd, (const uint8_t *) buf + done, len - done, (off_t) (off + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    done += (size_t) n;
  }
  return true;
}

/* One directory's TileOffsets (k = 0) and TileByteCounts (k = 1) as
 * libtiff wrote them: where in the file, how many, of what size. */
typedef struct {
  uint64_t where[2], count[2];
  int size[2];
  uint8_t *arr[2];
} Tables;

static void tables_free(gpointer p) {
  Tables *t = p;
  g_free(t->arr[0]);
  g_free(t->arr[1]);
  g_free(t);
}

/* Reads directory @d at @ifd: its tile tables into a new Tables (freed by
 * the caller) and the offset of the next directory into @next. */
static Tables *read_tables(int fd, bool big, guint d, uint64_t ifd, uint64_t *next, GString *error) {
  uint8_t cnt[8];
  if (!ifd || !pread_all(fd, cnt, 8, ifd)) {
    g_string_append_printf(error, "re-reading directory %u failed", d);
    return NULL;
  }
  uint64_t n = get_uint(cnt, 8, big);
  if (n > 4096) {
    g_string_append_printf(error, "directory %u has %" G_GUINT64_FORMAT " tags", d, n);
    return NULL;
  }
  g_autofree uint8_t *entries = g_malloc(n * 20 + 8);
  if (!pread_all(fd, entries, n * 20 + 8, ifd + 8)) {
    g_string_append_printf(error, "re-reading directory %u failed", d);
    return NULL;
  }
  g_autoptr(GPtrArray) hold = g_ptr_array_new_with_free_func(tables_free);
  Tables *t = g_new0(Tables, 1);
  g_ptr_array_add(hold, t); /* freed on every failure below */
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *e = entries + i * 20;
    unsigned tag = (unsigned) get_uint(e, 2, big), type = (unsigned) get_uint(e + 2, 2, big);
    if (tag != 324 && tag != 325)
      continue;
    int k = tag - 324;
    t->size[k] = type == 3 ? 2 : type == 4 ? 4 : type == 16 ? 8 : 0;
    t->count[k] = get_uint(e + 4, 8, big);
    /* arrays of at most 8 bytes sit in the entry itself */
    t->where[k] = t->count[k] * t->size[k] <= 8 ? ifd + 8 + i * 20 + 12
                                                : get_uint(e + 12, 8, big);
  }
  for (int k = 0; k < 2; k++) {
    if (!t->size[k] || !t->where[k] || t->count[k] > G_MAXUINT32) {
      g_string_append_printf(error, "directory %u: no usable %s", d,
                             k ? "TileByteCounts" : "TileOffsets");
      return NULL;
    }
    t->arr[k] = g_malloc(t->count[k] * t->size[k]);
    if (!pread_all(fd, t->arr[k], t->count[k] * t->size[k], t->where[k])) {
      g_string_append_printf(error, "re-reading directory %u's tile table failed", d);
      return NULL;
    }
  }
  *next = get_uint(entries + n * 20, 8, big);
  return g_ptr_array_steal_index(hold, 0);
}

/* Points the repeated tiles of each directory at their first copies:
 * @dups holds one GArray of (repeat, source directory, source tile)
 * triples per directory, in the order they were written; a source is in
 * the same or an earlier directory. Reads and rewrites the BigTIFF's
 * TileOffsets and TileByteCounts arrays in place through @fd, after libtiff
 * has flushed them (libtiff offers no call that sets these entries). The
 * arrays keep their size and type: a value that would not fit the type
 * libtiff chose (not seen: libtiff writes BigTIFF tables as 8-byte
 * integers) is an error, never a truncation. Frees nothing; false with a
 * message appended to @error. */
bool _eosin_tiff_patch_repeats(int fd, GPtrArray *dups, GString *error) {
  uint8_t head[16];
  if (!pread_all(fd, head, sizeof head, 0)) {
    g_string_append_printf(error, "re-reading the header: %s",
                           errno ? g_strerror(errno) : "short file");
    return false;
  }
  bool big = head[0] == 'M';
  if (get_uint(head + 2, 2, big) != 43) {
    g_string_append(error, "re-reading the header: not a BigTIFF");
    return false;
  }
  uint64_t ifd = get_uint(head + 8, 8, big);
  g_autoptr(GPtrArray) tables = g_ptr_array_new_with_free_func(tables_free);
  for (guint d = 0; d < dups->len; d++) {
    GArray *triples = g_ptr_array_index(dups, d);
    Tables *t = read_tables(fd, big, d, ifd, &ifd, error);
    if (!t)
      return false;
    g_ptr_array_add(tables, t);
    for (guint j = 0; j + 2 < triples->len; j += 3) {
      guint32 r = g_array_index(triples, guint32, j), sd = g_array_index(triples, guint32, j + 1),
              st = g_array_index(triples, guint32, j + 2);
      const Tables *src = sd <= d ? g_ptr_array_index(tables, sd) : NULL;
      for (int k = 0; k < 2; k++) {
        if (!src || r >= t->count[k] || st >= src->count[k]) {
          g_string_append_printf(error, "directory %u: tile %u or its source out of range",
                                 d, r);
          return false;
        }
        uint64_t v = get_uint(src->arr[k] + (size_t) st * src->size[k], src->size[k], big);
        if (t->size[k] < 8 && v >> (8 * t->size[k])) {
          g_string_append_printf(error, "directory %u: tile %u's %s %" G_GUINT64_FORMAT
                                 " does not fit its table", d, r, k ? "byte count" : "offset", v);
          return false;
        }
        put_uint(t->arr[k] + (size_t) r * t->size[k], t->size[k], big, v);
      }
    }
    if (triples->len)
      for (int k = 0; k < 2; k++)
        if (!pwrite_all(fd, t->arr[k], t->count[k] * t->size[k], t->where[k])) {
          g_string_append_printf(error, "patching directory %u: %s", d, g_strerror(errno));
          return false;
        }
  }
  return true;
}
