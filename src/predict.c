/*
 * predict.c — `eosin predict`: a classification model on a folder (searched
 * recursively) or a list of patch images, one CSV row per image with the
 * class probabilities in the config's class order. This is how a lab checks
 * a model on a labelled patch set before trusting it on slides, so the rows
 * are sorted by path (reproducible), an unreadable image is reported and
 * left out rather than guessed, and the CSV appears only when complete.
 */
#include "eosin-private.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

/* no .bmp: libvips reads BMP only through ImageMagick, a loader it marks
 * untrusted and Eosin blocks */
static const char *const IMAGE_EXT[] = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", NULL};

void eosin_predict_result_clear(EosinPredictResult *res) {
  g_clear_pointer(&res->backend, g_free);
}

static bool is_image(const char *name) {
  g_autofree char *lower = g_ascii_strdown(name, -1);
  for (int i = 0; IMAGE_EXT[i]; i++)
    if (g_str_has_suffix(lower, IMAGE_EXT[i]))
      return true;
  return false;
}

/* Adds every image below @dir to @out as paths relative to @root. */
static bool walk(const char *root, const char *rel, GPtrArray *out, GError **err) {
  g_autofree char *dir = rel ? g_build_filename(root, rel, NULL) : g_strdup(root);
  g_autoptr(GDir) d = g_dir_open(dir, 0, err);
  if (!d)
    return false;
  const char *name;
  while ((name = g_dir_read_name(d))) {
    if (name[0] == '.')
      continue;
    g_autofree char *child_rel = rel ? g_build_filename(rel, name, NULL) : g_strdup(name);
    g_autofree char *child = g_build_filename(root, child_rel, NULL);
    if (g_file_test(child, G_FILE_TEST_IS_DIR)) {
      if (!walk(root, child_rel, out, err))
        return false;
    } else if (is_image(name)) {
      g_ptr_array_add(out, g_steal_pointer(&child_rel));
    }
  }
  return true;
}

static int cmp_str(gconstpointer a, gconstpointer b) {
  return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The images to predict, as written in the CSV; *base is what they are
 * relative to ("" when absolute). Caller frees both. */
static GPtrArray *list_inputs(const char *input, char **base, GError **err) {
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func(g_free);
  if (g_file_test(input, G_FILE_TEST_IS_DIR)) {
    if (!walk(input, NULL, out, err))
      return NULL;
    *base = g_strdup(input);
  } else {
    g_autofree char *text = NULL;
    if (!_eosin_read_input_file(input, "image list", EOSIN_MAX_TABLE_BYTES, &text, NULL, err))
      return NULL;
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
      g_strstrip(*l);
      if (**l && **l != '#')
        g_ptr_array_add(out, g_strdup(*l));
    }
    *base = g_path_get_dirname(input);
  }
  g_ptr_array_sort(out, cmp_str);
  if (out->len == 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s: no images (%s)", input,
                g_file_test(input, G_FILE_TEST_IS_DIR)
                    ? "searched for .png .jpg .jpeg .tif .tiff .webp"
                    : "the list is empty");
    return NULL;
  }
  return g_steal_pointer(&out);
}

/* Loads @path as @size x @size sRGB uint8 pixels into @rgb: alpha flattened
 * on white, its central @crop fraction (each side) kept, resized (both
 * axes) when that is another size. */
static bool load_image(const char *path, int size, double crop, uint8_t *rgb, bool *resized,
                       GError **err) {
  if (!_eosin_check_input_file(path, "image", EOSIN_MAX_TABLE_BYTES, NULL, err))
    return false;
  /* fail_on: a truncated or corrupt image is an error, not grey pixels scored */
  g_autoptr(VipsImage) in = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL,
                                                     "fail_on", VIPS_FAIL_ON_TRUNCATED, NULL);
  if (!in) {
    _eosin_set_vips_error(err, path);
    return false;
  }
  VipsImage *cur = g_object_ref(in);
  VipsImage *t = NULL;
#define STEP(call)                         \
  do {                                     \
    if (call) {                            \
      g_object_unref(cur);                 \
      _eosin_set_vips_error(err, path);    \
      return false;                        \
    }                                      \
    g_object_unref(cur);                   \
    cur = t;                               \
  } while (0)
  if (vips_image_hasalpha(cur))
    STEP(vips_flatten(cur, &t, "background", vips_array_double_newv(3, 255.0, 255.0, 255.0),
                      NULL));
  if (cur->Type != VIPS_INTERPRETATION_sRGB || cur->Bands != 3)
    STEP(vips_colourspace(cur, &t, VIPS_INTERPRETATION_sRGB, NULL));
  if (cur->BandFmt != VIPS_FORMAT_UCHAR)
    STEP(vips_cast(cur, &t, VIPS_FORMAT_UCHAR, NULL));
  if (crop < 1) {
    int w = MAX(1, (int) lround(cur->Xsize * crop)), h = MAX(1, (int) lround(cur->Ysize * crop));
    STEP(vips_extract_area(cur, &t, (cur->Xsize - w) / 2, (cur->Ysize - h) / 2, w, h, NULL));
  }
  *resized = cur->Xsize != size || cur->Ysize != size;
  if (*resized)
    STEP(vips_resize(cur, &t, (double) size / cur->Xsize, "vscale",
                     (double) size / cur->Ysize, NULL));
#undef STEP
  size_t len = 0;
  g_autofree uint8_t *mem = NULL;
  if (cur->Bands == 3 && cur->Xsize == size && cur->Ysize == size)
    mem = vips_image_write_to_memory(cur, &len);
  g_object_unref(cur);
  if (!mem || len != (size_t) size * size * 3) {
    if (mem)
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s: could not be made %dx%d RGB", path,
                  size, size);
    else
      _eosin_set_vips_error(err, path);
    return false;
  }
  memcpy(rgb, mem, len);
  return true;
}

/* A batch's outputs are all finite, else an EOSIN_ERROR_NUMERIC error
 * naming the first image that gave a non-finite one. */
static bool outputs_finite(const EosinConfig *cfg, GPtrArray *files, const int *idx,
                           const float *out, int n, int C, GError **err) {
  g_autoptr(GError) nerr = NULL;
  if (_eosin_check_model_outputs(cfg->model.path, out, n, C, NULL, &nerr))
    return true;
  const char *first = files->pdata[idx[0]];
  for (int i = 0; i < n; i++) {
    bool finite = true;
    for (int k = 0; k < C; k++)
      finite &= isfinite(out[(size_t) i * C + k]);
    if (!finite) {
      first = files->pdata[idx[i]];
      break;
    }
  }
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_NUMERIC, "%s (first: %s)", nerr->message, first);
  return false;
}

/* The CSV rows of a batch: the path (quoted when it must be), then the
 * class probabilities. */
static void append_rows(GString *csv, GPtrArray *files, const int *idx, const float *out, int n,
                        int C) {
  char num[G_ASCII_DTOSTR_BUF_SIZE];
  for (int i = 0; i < n; i++) {
    const char *rel = files->pdata[idx[i]];
    bool quote = strpbrk(rel, ",\"\n") != NULL;
    if (quote) {
      g_auto(GStrv) parts = g_strsplit(rel, "\"", -1);
      g_autofree char *esc = g_strjoinv("\"\"", parts);
      g_string_append_printf(csv, "\"%s\"", esc);
    } else {
      g_string_append(csv, rel);
    }
    for (int k = 0; k < C; k++)
      g_string_append_printf(csv, ",%s",
                             g_ascii_formatd(num, sizeof num, "%.6g", out[(size_t) i * C + k]));
    g_string_append_c(csv, '\n');
  }
}

bool eosin_predict(const EosinConfig *cfg, const char *input, const char *csv_path,
                   const EosinPredictOptions *o, EosinPredictResult *res, GError **err) {
  memset(res, 0, sizeof *res);
  gint64 t0 = g_get_monotonic_time();
  if (!_eosin_vips_init(err))
    return false;
  if (!cfg->model.path) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: no model: give --model or a [model] path", cfg->path);
    return false;
  }
  if (strcmp(cfg->model.kind, "classification")) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: [model] kind = %s: predict writes one row of class probabilities per "
                "image and needs kind = classification",
                cfg->path, cfg->model.kind);
    return false;
  }
  g_autofree char *base = NULL;
  g_autoptr(GPtrArray) files = list_inputs(input, &base, err);
  if (!files)
    return false;
  EosinInferOptions io = {.device = cfg->model.device, .fp16 = cfg->model.fp16,
                          .batch = cfg->batch_size};
  g_autoptr(EosinInfer) inf = eosin_infer_new(cfg->model.path, &io, err);
  if (!inf)
    return false;
  int C = cfg->model.n_classes, size, w;
  eosin_infer_input_size(inf, &size, &w);
  EosinClassifierExpect want = {.config = cfg->path, .model = cfg->model.path,
                                .n_classes = C};
  if (!_eosin_check_classifier(inf, &want, err))
    return false;

  g_autoptr(GString) csv = g_string_new("path");
  for (int k = 0; k < C; k++)
    g_string_append_printf(csv, ",%s", cfg->model.classes[k]);
  g_string_append_c(csv, '\n');
  int B = cfg->batch_size;
  size_t img = (size_t) size * size * 3;
  g_autofree uint8_t *rgb = g_new(uint8_t, img * B);
  g_autofree float *out = g_new(float, (size_t) C * B);
  g_autofree int *idx = g_new(int, B);
  for (guint next = 0; next < files->len;) {
    if (o && o->cancel && g_atomic_int_get(&o->cancel->cancelled)) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "predict: cancelled after %d images",
                  res->images);
      return false;
    }
    int n = 0;
    for (; n < B && next < files->len; next++) {
      const char *rel = files->pdata[next];
      g_autofree char *path = g_path_is_absolute(rel) ? g_strdup(rel)
                                                      : g_build_filename(base, rel, NULL);
      g_autoptr(GError) ierr = NULL;
      bool resized = false;
      if (!load_image(path, size, cfg->model.predict_center_crop, rgb + img * n, &resized, &ierr)) {
        if (o && o->note) {
          g_autofree char *text = g_strdup_printf("skipped %s: %s", path, ierr->message);
          o->note(EOSIN_NOTE_WARNING, text, o->data);
        }
        res->failed++;
        continue;
      }
      res->resized += resized;
      idx[n++] = next;
    }
    if (n == 0)
      continue;
    /* [model] tta = dihedral: the mean of the 8 orientations' probabilities */
    if (cfg->model.tta_dihedral
            ? !eosin_infer_run_dihedral(inf, rgb, n, size, &cfg->model.pre,
                                        cfg->model.activation, C, out, err)
            : !eosin_infer_run_rgb(inf, rgb, n, &cfg->model.pre, out, err))
      return false;
    if (!outputs_finite(cfg, files, idx, out, n, C, err))
      return false;
    if (!cfg->model.tta_dihedral) /* already activated, orientation by orientation */
      _eosin_activate(cfg->model.activation, out, n, C, 1);
    append_rows(csv, files, idx, out, n, C);
    res->images += n;
    if (o && o->progress)
      o->progress(res->images + res->failed, (int) files->len, o->data);
  }
  if (res->images == 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "%s: none of %u images could be read", input,
                files->len);
    return false;
  }
  if (!_eosin_write_atomic(csv_path, csv->str, csv->len, err))
    return false;
  res->backend = eosin_infer_summary(inf);
  res->seconds = (g_get_monotonic_time() - t0) / 1e6;
  return true;
}
