/*
 * provenance.c — what a result was made with, beyond the slide, config and
 * models (identity.c, config-effective.c): the command line, and the
 * libraries this Eosin runs on, by name and version, for report.json
 * "versions" and `eosin version`. A result is only reproducible
 * if one knows which OpenSlide decoded the slide, which oneDNN (or cuDNN)
 * ran the network and which libtiff/zlib wrote the overlay. Versions are
 * those of the libraries loaded at run time where the library can say
 * (json-glib and libdeflate only tell the headers Eosin was built with).
 */
#include "eosin-private.h"
#include "nn/backend.h"

#include <dnnl.h>
#include <libdeflate.h>
#include <openslide.h>
#include <protobuf-c/protobuf-c.h>
#include <tiffio.h>
#include <zlib.h>
#include <zstd.h>

/* "LIBTIFF, Version 4.5.1\nCopyright ..." -> "4.5.1". Caller frees. */
static char *tiff_version(void) {
  const char *v = TIFFGetVersion();
  const char *p = v ? strstr(v, "Version ") : NULL;
  p = p ? p + strlen("Version ") : v;
  if (!p)
    return g_strdup("unknown");
  return g_strndup(p, strcspn(p, "\n"));
}

char **eosin_versions(void) {
  GPtrArray *a = g_ptr_array_new();
#define ADD(name, value)                                                                 \
  do {                                                                                   \
    g_ptr_array_add(a, g_strdup(name));                                                  \
    g_ptr_array_add(a, value);                                                           \
  } while (0)
  ADD("eosin", g_strdup(eosin_version()));
  ADD("openslide", g_strdup(openslide_get_version()));
  ADD("libvips", g_strdup(vips_version_string()));
  const dnnl_version_t *d = dnnl_version();
  bool hash = d->hash && *d->hash && strcmp(d->hash, "N/A"); /* a distribution's build has none */
  ADD("onednn", g_strdup_printf("%d.%d.%d%s%s%s", d->major, d->minor, d->patch,
                                hash ? " (" : "", hash ? d->hash : "", hash ? ")" : ""));
  ADD("protobuf-c", g_strdup(protobuf_c_version()));
  ADD("glib", g_strdup_printf("%u.%u.%u", glib_major_version, glib_minor_version,
                              glib_micro_version));
  ADD("json-glib", g_strdup(JSON_VERSION_S));
  ADD("libtiff", tiff_version());
  ADD("zlib", g_strdup(zlibVersion()));
  ADD("zstd", g_strdup(ZSTD_versionString()));
  ADD("libdeflate", g_strdup(LIBDEFLATE_VERSION_STRING));
#ifdef EOSIN_HAVE_CUDA
  char *runtime = NULL, *driver = NULL, *cudnn = NULL;
  _eosin_cuda_versions(&runtime, &driver, &cudnn);
  ADD("cuda-runtime", runtime);
  ADD("cuda-driver", driver);
  ADD("cudnn", cudnn);
#endif
#undef ADD
  g_ptr_array_add(a, NULL);
  return (char **) g_ptr_array_free(a, FALSE);
}

void _eosin_versions_json(JsonBuilder *b) {
  g_auto(GStrv) v = eosin_versions();
  json_builder_begin_object(b);
  for (int i = 0; v[i]; i += 2)
    _eosin_json_str(b, v[i], v[i + 1]);
  json_builder_end_object(b);
}

void _eosin_command_json(const char *const *argv, JsonBuilder *b) {
  json_builder_begin_object(b);
  json_builder_set_member_name(b, "argv");
  json_builder_begin_array(b);
  g_autoptr(GString) line = g_string_new(NULL);
  for (int i = 0; argv[i]; i++) {
    json_builder_add_string_value(b, argv[i]);
    g_autofree char *q = g_shell_quote(argv[i]);
    /* plain words as they are, the rest quoted for a POSIX shell */
    bool plain = *argv[i] && argv[i][strspn(argv[i], "abcdefghijklmnopqrstuvwxyz"
                                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                     "0123456789-_./=:,+@%")] == 0;
    g_string_append_printf(line, "%s%s", i ? " " : "", plain ? argv[i] : q);
  }
  json_builder_end_array(b);
  _eosin_json_str(b, "line", line->str);
  g_autofree char *cwd = g_get_current_dir();
  _eosin_json_str(b, "cwd", cwd);
  json_builder_end_object(b);
}
