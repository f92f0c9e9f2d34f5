/*
 * config.c — task configs (GKeyFile .ini) parsed once, strictly, into an
 * EosinConfig. Every other file receives the struct, never key names; the
 * analyzer's own group is checked by the analyzer with the helpers here, so
 * an unknown key or a bad value anywhere is an error naming file, key, value.
 */
#include "eosin-core.h"
#include "tasks/analyzer.h" /* eosin_analyzer_find: the analyzer a config names */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static const char *const COMMON_GROUPS[] = {"task",    "domain", "tiling",  "tissue", "qc",
                                            "scheduler", "overlay", "model",  "lesions", NULL};

static const char *const TASK_KEYS[] = {"name", "analyzer", NULL};
static const char *const DOMAIN_KEYS[] = {"stain", "imaging", "specimen", "slide_mpp_min",
                                          "slide_mpp_max", "on_mismatch", NULL};
static const char *const STAINS[] = {"he", "hdab", "any", NULL};
static const char *const IMAGINGS[] = {"brightfield", "fluorescence", "any", NULL};
static const char *const ON_MISMATCH[] = {"refuse", "warn", NULL};
static const char *const QC_KEYS[] = {"enabled", "pen", "dark", "edge", "blur",
                                      "min_usable_fraction", "warn_fraction", "dark_lightness",
                                      "blur_threshold", "brightfield_min_median", NULL};
static const char *const QC_ACTIONS[] = {"exclude", "flag", "off", NULL};
static const char *const BLUR_ACTIONS[] = {"flag", "off", NULL};
static const char *const BOOLS[] = {"true", "false", NULL};
static const char *const TILING_KEYS[] = {"tile_size", "overlap", "mpp", NULL};
static const char *const TISSUE_KEYS[] = {"min_fraction", "thumbnail_mpp", "max_side",
                                          "min_saturation", "closing_um", "min_object_um2",
                                          "max_hole_um2", NULL};
static const char *const SCHED_KEYS[] = {"readers", "batch_size", "queue_depth",
                                          "max_memory_mb", NULL};
static const char *const OVERLAY_KEYS[] = {"channel", "colormap", "alpha", "min", "max",
                                           "compression", "tiles_geojson", "floor",
                                           "opacity", NULL};
static const char *const OPACITIES[] = {"constant", "ramp", NULL};
static const char *const MODEL_KEYS[] = {"path", "kind", "classes", "activation", "mean",
                                         "std", "channel_order", "device", "precision",
                                         "cell", "predict_center_crop", "tta", NULL};
static const char *const TTAS[] = {"none", "dihedral", NULL};
static const char *const LESION_KEYS[] = {"channel", "threshold", "min_area_um2", "top_k",
                                          "smooth_um", NULL};
static const char *const KINDS[] = {"classification", "segmentation", NULL};
static const char *const ACTIVATIONS[] = {"none", "softmax", "sigmoid", NULL};
static const char *const ORDERS[] = {"rgb", "bgr", NULL};
static const char *const PRECISIONS[] = {"fp32", "fp16", NULL};
static const char *const COMPRESSIONS[] = {"deflate", "zstd", "lzw", NULL};
/* QuPath imports .geojson and .zip files of them (File > Import objects), not .gz */
static const char *const TILES_GEOJSON[] = {"plain", "zip", "off", NULL};
static const char *const COLORMAPS[] = {"viridis", "jet", "inferno", "gray", NULL};

void eosin_config_free(EosinConfig *cfg) {
  if (!cfg)
    return;
  g_free(cfg->path);
  g_free(cfg->task);
  g_free(cfg->analyzer);
  g_free(cfg->domain.stain);
  g_free(cfg->domain.imaging);
  g_free(cfg->domain.specimen);
  g_free(cfg->domain.on_mismatch);
  g_free(cfg->qc.pen);
  g_free(cfg->qc.dark);
  g_free(cfg->qc.edge);
  g_free(cfg->qc.blur);
  g_free(cfg->overlay_channel);
  g_free(cfg->colormap);
  g_free(cfg->overlay_opacity);
  g_free(cfg->overlay_compression);
  g_free(cfg->tiles_geojson);
  g_free(cfg->model.path);
  g_free(cfg->model.kind);
  g_strfreev(cfg->model.classes);
  g_free(cfg->model.activation);
  g_free(cfg->model.device);
  g_free(cfg->lesions.channel);
  if (cfg->keyfile)
    g_key_file_free(cfg->keyfile);
  _eosin_config_record_free(cfg->effective);
  g_free(cfg);
}

static bool config_error(GError **err, const EosinConfig *cfg, const char *group,
                         const char *key, const char *value, const char *why) {
  if (value)
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s: [%s] %s = '%s': %s", cfg->path,
                group, key, value, why);
  else
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "%s: [%s] %s: %s", cfg->path, group,
                key, why);
  return false;
}

bool eosin_config_check_keys(const EosinConfig *cfg, const char *group,
                             const char *const *known, GError **err) {
  if (!g_key_file_has_group(cfg->keyfile, group))
    return true;
  g_auto(GStrv) keys = g_key_file_get_keys(cfg->keyfile, group, NULL, NULL);
  for (char **k = keys; k && *k; k++) {
    if (!g_strv_contains(known, *k)) {
      g_autofree char *v = g_key_file_get_value(cfg->keyfile, group, *k, NULL);
      g_autofree char *list = g_strjoinv(", ", (char **) known);
      g_autofree char *why = g_strdup_printf("unknown key (known keys: %s)", list);
      return config_error(err, cfg, group, *k, v, why);
    }
  }
  return true;
}

/* The raw value of @group.@key, or NULL when absent. Caller frees. */
static char *raw_value(const EosinConfig *cfg, const char *group, const char *key) {
  char *v = g_key_file_get_value(cfg->keyfile, group, key, NULL);
  if (v)
    g_strstrip(v);
  return v;
}

bool eosin_config_get_double(const EosinConfig *cfg, const char *group, const char *key,
                             double def, double min, double max, double *out, GError **err) {
  g_autofree char *v = raw_value(cfg, group, key);
  if (!v) {
    if (isnan(def))
      return config_error(err, cfg, group, key, NULL, "required key is missing");
    /* a default outside the range stands for "not set": no text says it */
    if (def >= min && def <= max)
      _eosin_config_record_double(cfg, group, key, def);
    *out = def;
    return true;
  }
  char *end = NULL;
  errno = 0;
  double d = g_ascii_strtod(v, &end);
  if (!*v || *end || errno || !isfinite(d))
    return config_error(err, cfg, group, key, v, "not a number");
  if (d < min || d > max) {
    g_autofree char *why = g_strdup_printf("out of range [%g, %g]", min, max);
    return config_error(err, cfg, group, key, v, why);
  }
  _eosin_config_record(cfg, group, key, v);
  *out = d;
  return true;
}

bool eosin_config_get_int(const EosinConfig *cfg, const char *group, const char *key, int def,
                          int min, int max, int *out, GError **err) {
  g_autofree char *v = raw_value(cfg, group, key);
  if (!v) {
    if (def >= min && def <= max) {
      g_autofree char *t = g_strdup_printf("%d", def);
      _eosin_config_record(cfg, group, key, t);
    }
    *out = def;
    return true;
  }
  char *end = NULL;
  errno = 0;
  long long n = g_ascii_strtoll(v, &end, 10);
  if (!*v || *end || errno)
    return config_error(err, cfg, group, key, v, "not an integer");
  if (n < min || n > max) {
    g_autofree char *why = g_strdup_printf("out of range [%d, %d]", min, max);
    return config_error(err, cfg, group, key, v, why);
  }
  _eosin_config_record(cfg, group, key, v);
  *out = (int) n;
  return true;
}

bool eosin_config_get_choice(const EosinConfig *cfg, const char *group, const char *key,
                             const char *def, const char *const *choices, char **out,
                             GError **err) {
  g_autofree char *v = raw_value(cfg, group, key);
  if (!v) {
    if (!def)
      return config_error(err, cfg, group, key, NULL, "required key is missing");
    /* "" stands for "not set" (the caller resolves it) and cannot be written */
    if (*def)
      _eosin_config_record(cfg, group, key, def);
    *out = g_strdup(def);
    return true;
  }
  if (choices && !g_strv_contains(choices, v)) {
    g_autofree char *list = g_strjoinv(", ", (char **) choices);
    g_autofree char *why = g_strdup_printf("must be one of: %s", list);
    return config_error(err, cfg, group, key, v, why);
  }
  if (!*v)
    return config_error(err, cfg, group, key, v, "must not be empty");
  _eosin_config_record(cfg, group, key, v);
  *out = g_steal_pointer(&v);
  return true;
}

void eosin_config_set_model(EosinConfig *cfg, const char *path, const char *device) {
  if (path) {
    g_free(cfg->model.path);
    cfg->model.path = g_canonicalize_filename(path, NULL);
    cfg->model.path_given = true;
    _eosin_config_record(cfg, "model", "path", cfg->model.path);
  }
  if (device) {
    g_free(cfg->model.device);
    cfg->model.device = g_strdup(device);
    cfg->model.device_given = true;
    _eosin_config_record(cfg, "model", "device", cfg->model.device);
  }
}

void _eosin_config_prefix_model_error(const EosinConfig *cfg, GError **err) {
  if (err && *err && (*err)->domain == EOSIN_ERROR && (*err)->code == EOSIN_ERROR_DEVICE &&
      cfg->model.device_given)
    g_prefix_error(err, "--device %s (command line): ", cfg->model.device);
  else if (cfg->model.path_given)
    g_prefix_error(err, "--model %s (command line): ", cfg->model.path);
  else
    g_prefix_error(err, "%s: [model] path: ", cfg->path);
}

/* Reads "a, b, c" at @group.@key into exactly three numbers in [min, max]. */
static bool get_triple(const EosinConfig *cfg, const char *group, const char *key, float def,
                       double min, double max, float out[3], GError **err) {
  g_autofree char *v = raw_value(cfg, group, key);
  if (!v) {
    /* def is 0 or 1 */
    g_autofree char *t = g_strdup_printf("%g, %g, %g", def, def, def);
    _eosin_config_record(cfg, group, key, t);
    out[0] = out[1] = out[2] = def;
    return true;
  }
  g_auto(GStrv) parts = g_strsplit(v, ",", -1);
  if (g_strv_length(parts) != 3)
    return config_error(err, cfg, group, key, v, "expected three comma-separated numbers");
  for (int i = 0; i < 3; i++) {
    char *end;
    g_strstrip(parts[i]);
    errno = 0;
    double d = g_ascii_strtod(parts[i], &end);
    if (!*parts[i] || *end || errno || !isfinite(d))
      return config_error(err, cfg, group, key, v, "not a number");
    if (d < min || d > max) {
      g_autofree char *why = g_strdup_printf("each value must be in [%g, %g]", min, max);
      return config_error(err, cfg, group, key, v, why);
    }
    out[i] = (float) d;
  }
  _eosin_config_record(cfg, group, key, v);
  return true;
}

/* The [model] group; absent is fine (analyzers that need it say so). */
static bool load_model_group(EosinConfig *cfg, GError **err) {
  cfg->model.present = g_key_file_has_group(cfg->keyfile, "model");
  g_autofree char *precision = NULL, *order = NULL, *classes = NULL, *path = NULL, *tta = NULL;
  if (!eosin_config_check_keys(cfg, "model", MODEL_KEYS, err) ||
      !eosin_config_get_choice(cfg, "model", "kind", "classification", KINDS, &cfg->model.kind,
                               err) ||
      !eosin_config_get_choice(cfg, "model", "activation", "none", ACTIVATIONS,
                               &cfg->model.activation, err) ||
      !eosin_config_get_choice(cfg, "model", "channel_order", "rgb", ORDERS, &order, err) ||
      !eosin_config_get_choice(cfg, "model", "precision", "fp32", PRECISIONS, &precision, err) ||
      !eosin_config_get_choice(cfg, "model", "device", "auto", NULL, &cfg->model.device, err) ||
      !get_triple(cfg, "model", "mean", 0, -10, 10, cfg->model.pre.mean, err) ||
      !get_triple(cfg, "model", "std", 1, 1e-6, 1e6, cfg->model.pre.std, err) ||
      !eosin_config_get_int(cfg, "model", "cell", 4, 1, 256, &cfg->model.cell, err) ||
      !eosin_config_get_double(cfg, "model", "predict_center_crop", 1, 0.01, 1,
                               &cfg->model.predict_center_crop, err) ||
      !eosin_config_get_choice(cfg, "model", "tta", "none", TTAS, &tta, err))
    return false;
  cfg->model.tta_dihedral = !strcmp(tta, "dihedral");
  if (cfg->model.tta_dihedral && strcmp(cfg->model.kind, "classification"))
    return config_error(err, cfg, "model", "tta", tta,
                        "test-time augmentation is for classification models (a segmentation "
                        "map would have to be turned back)");
  EosinDevice dev; /* the grammar inference runs by (nn/device.c): what loads here runs */
  if (!eosin_device_parse(cfg->model.device, &dev, NULL))
    return config_error(err, cfg, "model", "device", cfg->model.device,
                        "expected " EOSIN_DEVICE_GRAMMAR);
  cfg->model.pre.bgr = !strcmp(order, "bgr");
  cfg->model.fp16 = !strcmp(precision, "fp16");
  path = raw_value(cfg, "model", "path");
  if (path && *path) {
    cfg->model.path = _eosin_config_resolve_path(cfg, path);
    _eosin_config_record(cfg, "model", "path", cfg->model.path);
  }
  classes = raw_value(cfg, "model", "classes");
  if (cfg->model.present && !classes)
    return config_error(err, cfg, "model", "classes", NULL,
                        "required key is missing (the names of the model's outputs)");
  if (classes) {
    cfg->model.classes = g_strsplit(classes, ",", -1);
    for (char **c = cfg->model.classes; *c; c++) {
      g_strstrip(*c);
      if (!**c)
        return config_error(err, cfg, "model", "classes", classes, "empty class name");
      for (char **d = cfg->model.classes; d < c; d++)
        if (!strcmp(*c, *d))
          return config_error(err, cfg, "model", "classes", classes, "class named twice");
    }
    cfg->model.n_classes = g_strv_length(cfg->model.classes);
    _eosin_config_record(cfg, "model", "classes", classes);
  }
  return true;
}

/* The [domain] group: what the model was made for. Absent, nothing is
 * declared: any stain, imaging and specimen, no µm/px bounds, warn. */
static bool load_domain_group(EosinConfig *cfg, GError **err) {
  cfg->domain.present = g_key_file_has_group(cfg->keyfile, "domain");
  if (!eosin_config_check_keys(cfg, "domain", DOMAIN_KEYS, err) ||
      !eosin_config_get_choice(cfg, "domain", "stain", "any", STAINS, &cfg->domain.stain, err) ||
      !eosin_config_get_choice(cfg, "domain", "imaging", "any", IMAGINGS, &cfg->domain.imaging,
                               err) ||
      !eosin_config_get_choice(cfg, "domain", "specimen", "any", NULL, &cfg->domain.specimen,
                               err) ||
      !eosin_config_get_double(cfg, "domain", "slide_mpp_min", 0, 0, 200,
                               &cfg->domain.slide_mpp_min, err) ||
      !eosin_config_get_double(cfg, "domain", "slide_mpp_max", 0, 0, 200,
                               &cfg->domain.slide_mpp_max, err) ||
      !eosin_config_get_choice(cfg, "domain", "on_mismatch", "warn", ON_MISMATCH,
                               &cfg->domain.on_mismatch, err))
    return false;
  if (cfg->domain.slide_mpp_max > 0 && cfg->domain.slide_mpp_min > cfg->domain.slide_mpp_max) {
    g_autofree char *v = g_strdup_printf("%g", cfg->domain.slide_mpp_max);
    return config_error(err, cfg, "domain", "slide_mpp_max", v,
                        "must not be below slide_mpp_min (0 = no bound)");
  }
  return true;
}

/* The [qc] group: the quality gate (qc.c). On unless `enabled = false`;
 * per artefact, `exclude` takes it out of the tiles, `flag` only reports it. */
static bool load_qc_group(EosinConfig *cfg, GError **err) {
  g_autofree char *enabled = NULL;
  int median = 0;
  if (!eosin_config_check_keys(cfg, "qc", QC_KEYS, err) ||
      !eosin_config_get_choice(cfg, "qc", "enabled", "true", BOOLS, &enabled, err) ||
      !eosin_config_get_choice(cfg, "qc", "pen", "exclude", QC_ACTIONS, &cfg->qc.pen, err) ||
      !eosin_config_get_choice(cfg, "qc", "dark", "flag", QC_ACTIONS, &cfg->qc.dark, err) ||
      !eosin_config_get_choice(cfg, "qc", "edge", "flag", QC_ACTIONS, &cfg->qc.edge, err) ||
      !eosin_config_get_choice(cfg, "qc", "blur", "flag", BLUR_ACTIONS, &cfg->qc.blur, err) ||
      !eosin_config_get_double(cfg, "qc", "min_usable_fraction", 0.5, 0, 1,
                               &cfg->qc.min_usable_fraction, err) ||
      !eosin_config_get_double(cfg, "qc", "warn_fraction", 0.05, 0, 1, &cfg->qc.warn_fraction,
                               err) ||
      !eosin_config_get_double(cfg, "qc", "dark_lightness", 20, 0, 100, &cfg->qc.dark_lightness,
                               err) ||
      !eosin_config_get_double(cfg, "qc", "blur_threshold", 0, 0, 1e9, &cfg->qc.blur_threshold,
                               err) ||
      !eosin_config_get_int(cfg, "qc", "brightfield_min_median", 100, 0, 255, &median, err))
    return false;
  cfg->qc.enabled = !strcmp(enabled, "true");
  cfg->qc.brightfield_min_median = median;
  return true;
}

/* The memory a machine gives one Eosin process by default: half of the
 * physical memory, or of the cgroup's limit when a container has one. */
gint64 _eosin_default_memory_limit(void) {
  gint64 phys = (gint64) sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
  g_autofree char *cg = NULL;
  if (g_file_get_contents("/sys/fs/cgroup/memory.max", &cg, NULL, NULL)) {
    char *end;
    gint64 v = g_ascii_strtoll(cg, &end, 10);
    if (end != cg && v > 0 && v < phys)
      phys = v;
  }
  return phys > 0 ? phys / 2 : (gint64) 4 << 30;
}

gint64 _eosin_config_memory_estimate(const EosinConfig *cfg, int readers) {
  gint64 tile = (gint64) cfg->tile_size * cfg->tile_size;
  /* tile buffers in flight; each reader's region and resampling scratch
   * (a finer level may be read at up to twice the tile's side, as ARGB and
   * RGB); the analyzer's batch as float network input */
  return (gint64) (cfg->queue_depth + readers) * cfg->batch_size * tile * 3 +
         (gint64) readers * 4 * tile * 7 + (gint64) cfg->batch_size * tile * 3 * 4;
}

bool _eosin_config_check_memory(const EosinConfig *cfg, int readers, GError **err) {
  gint64 need = _eosin_config_memory_estimate(cfg, readers);
  if (need <= cfg->max_memory_bytes)
    return true;
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
              "%s: [tiling] tile_size = %d, [scheduler] batch_size = %d, queue_depth = %d, "
              "readers = %d need about %.1f GB for tiles in flight ((queue_depth + readers) x "
              "batch_size tiles of %d x %d x 3 bytes, and the batch as network input), more "
              "than the %.1f GB allowed ([scheduler] max_memory_mb; default half of this "
              "machine's memory): lower batch_size, queue_depth, readers or tile_size",
              cfg->path, cfg->tile_size, cfg->batch_size, cfg->queue_depth, readers,
              need / 1e9, cfg->tile_size, cfg->tile_size, cfg->max_memory_bytes / 1e9);
  return false;
}

/* [tiling] and [tissue]. */
static bool load_tiling_tissue(EosinConfig *cfg, GError **err) {
  if (!eosin_config_get_int(cfg, "tiling", "tile_size", 256, 16, 4096, &cfg->tile_size, err) ||
      !eosin_config_get_int(cfg, "tiling", "overlap", 0, 0, 4095, &cfg->overlap, err) ||
      !eosin_config_get_double(cfg, "tiling", "mpp", NAN, 0.05, 100, &cfg->mpp, err))
    return false;
  if (cfg->overlap >= cfg->tile_size) {
    g_autofree char *v = g_strdup_printf("%d", cfg->overlap);
    return config_error(err, cfg, "tiling", "overlap", v, "must be smaller than tile_size");
  }

  if (!eosin_config_get_double(cfg, "tissue", "min_fraction", 0.25, 0, 1,
                               &cfg->tissue_min_fraction, err) ||
      !eosin_config_get_double(cfg, "tissue", "thumbnail_mpp", 16, 1, 200,
                               &cfg->tissue_thumbnail_mpp, err) ||
      !eosin_config_get_int(cfg, "tissue", "max_side", 4096, 256, 16384, &cfg->tissue_max_side, err) ||
      !eosin_config_get_double(cfg, "tissue", "min_saturation", 0.07, 0, 1,
                               &cfg->tissue_min_saturation, err) ||
      !eosin_config_get_double(cfg, "tissue", "closing_um", 50, 0, 5000,
                               &cfg->tissue_closing_um, err) ||
      !eosin_config_get_double(cfg, "tissue", "min_object_um2", 50000, 0, 1e12,
                               &cfg->tissue_min_object_um2, err) ||
      !eosin_config_get_double(cfg, "tissue", "max_hole_um2", 50000, 0, 1e12,
                               &cfg->tissue_max_hole_um2, err))
    return false;
  return true;
}

/* [scheduler], and whether its memory budget holds the readers. */
static bool load_scheduler(EosinConfig *cfg, GError **err) {
  if (!eosin_config_get_int(cfg, "scheduler", "readers", 2, 1, 64, &cfg->readers, err) ||
      !eosin_config_get_int(cfg, "scheduler", "batch_size", 16, 1, 1024, &cfg->batch_size, err) ||
      !eosin_config_get_int(cfg, "scheduler", "queue_depth", 4, 1, 256, &cfg->queue_depth, err))
    return false;
  /* 0 (the default, so that the effective config can say it): half of
   * whatever machine runs it */
  double max_mb = 0;
  if (!eosin_config_get_double(cfg, "scheduler", "max_memory_mb", 0, 0, 1 << 30, &max_mb, err))
    return false;
  if (max_mb > 0 && max_mb < 16) {
    g_autofree char *v = g_strdup_printf("%g", max_mb);
    return config_error(err, cfg, "scheduler", "max_memory_mb", v,
                        "out of range [16, 1073741824] (0: half of this machine's memory)");
  }
  cfg->max_memory_bytes = max_mb > 0 ? (gint64) (max_mb * 1048576.0) : _eosin_default_memory_limit();
  if (!_eosin_config_check_memory(cfg, cfg->readers, err))
    return false;
  return true;
}

/* [overlay]. */
static bool load_overlay(EosinConfig *cfg, GError **err) {
  if (!eosin_config_get_choice(cfg, "overlay", "channel", "", NULL, &cfg->overlay_channel,
                               err) ||
      !eosin_config_get_choice(cfg, "overlay", "colormap", "viridis", COLORMAPS,
                               &cfg->colormap, err) ||
      !eosin_config_get_double(cfg, "overlay", "alpha", 0.6, 0, 1, &cfg->overlay_alpha, err) ||
      !eosin_config_get_choice(cfg, "overlay", "compression", "deflate", COMPRESSIONS,
                               &cfg->overlay_compression, err) ||
      !eosin_config_get_choice(cfg, "overlay", "tiles_geojson", "plain", TILES_GEOJSON,
                               &cfg->tiles_geojson, err) ||
      !eosin_config_get_choice(cfg, "overlay", "opacity", "constant", OPACITIES,
                               &cfg->overlay_opacity, err))
    return false;
  /* floor: "off", or the value below which a cell is not drawn (a
   * probability map's many low cells would hide the few high ones) */
  g_autofree char *floor_s = NULL;
  if (!eosin_config_get_choice(cfg, "overlay", "floor", "off", NULL, &floor_s, err))
    return false;
  cfg->overlay_floor = NAN;
  if (strcmp(floor_s, "off")) {
    char *end = NULL;
    double f = g_ascii_strtod(floor_s, &end);
    if (!end || *end || !isfinite(f))
      return config_error(err, cfg, "overlay", "floor", floor_s, "must be off or a number");
    cfg->overlay_floor = f;
  }
  bool has_min = g_key_file_has_key(cfg->keyfile, "overlay", "min", NULL);
  bool has_max = g_key_file_has_key(cfg->keyfile, "overlay", "max", NULL);
  if (has_min != has_max)
    return config_error(err, cfg, "overlay", has_min ? "max" : "min", NULL,
                        "min and max must be given together");
  if (has_min) {
    if (!eosin_config_get_double(cfg, "overlay", "min", 0, -1e9, 1e9, &cfg->overlay_min, err) ||
        !eosin_config_get_double(cfg, "overlay", "max", 0, -1e9, 1e9, &cfg->overlay_max, err))
      return false;
    if (!(cfg->overlay_max > cfg->overlay_min)) {
      g_autofree char *v = g_strdup_printf("%g", cfg->overlay_max);
      return config_error(err, cfg, "overlay", "max", v, "must be greater than min");
    }
    cfg->overlay_range_set = true;
  }
  return true;
}

/* [lesions]: the channel is checked against the analyzer's at run time. */
static bool load_lesions(EosinConfig *cfg, GError **err) {
  cfg->lesions.present = g_key_file_has_group(cfg->keyfile, "lesions");
  if (cfg->lesions.present &&
      (!eosin_config_check_keys(cfg, "lesions", LESION_KEYS, err) ||
       !eosin_config_get_choice(cfg, "lesions", "channel", NULL, NULL, &cfg->lesions.channel,
                                err) ||
       !eosin_config_get_double(cfg, "lesions", "threshold", 0.5, 0, 1e9,
                                &cfg->lesions.threshold, err) ||
       !eosin_config_get_double(cfg, "lesions", "min_area_um2", 0, 0, 1e12,
                                &cfg->lesions.min_area_um2, err) ||
       !eosin_config_get_double(cfg, "lesions", "smooth_um", 0, 0, 1e5,
                                &cfg->lesions.smooth_um, err) ||
       !eosin_config_get_int(cfg, "lesions", "top_k", 1, 1, 1000000, &cfg->lesions.top_k, err)))
    return false;
  return true;
}

EosinConfig *eosin_config_load(const char *path, GError **err) {
  g_autoptr(EosinConfig) cfg = g_new0(EosinConfig, 1);
  cfg->path = g_strdup(path);
  cfg->keyfile = g_key_file_new();
  cfg->effective = _eosin_config_record_new();
  if (!_eosin_config_read_keyfile(cfg, err))
    return NULL;

  if (!eosin_config_get_choice(cfg, "task", "name", NULL, NULL, &cfg->task, err) ||
      !eosin_config_get_choice(cfg, "task", "analyzer", NULL, NULL, &cfg->analyzer, err))
    return NULL;
  if (!eosin_analyzer_find(cfg->analyzer))
    return config_error(err, cfg, "task", "analyzer", cfg->analyzer, "no such analyzer"),
           NULL;

  /* Only the common groups and the analyzer's own group may appear. */
  g_auto(GStrv) groups = g_key_file_get_groups(cfg->keyfile, NULL);
  for (char **g = groups; *g; g++) {
    if (!g_strv_contains(COMMON_GROUPS, *g) && strcmp(*g, cfg->analyzer) != 0) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                  "%s: unknown group [%s] (known: task, domain, tiling, tissue, qc, scheduler, "
                  "overlay, model, lesions, %s)",
                  path, *g, cfg->analyzer);
      return NULL;
    }
  }
  if (!eosin_config_check_keys(cfg, "task", TASK_KEYS, err) ||
      !eosin_config_check_keys(cfg, "tiling", TILING_KEYS, err) ||
      !eosin_config_check_keys(cfg, "tissue", TISSUE_KEYS, err) ||
      !eosin_config_check_keys(cfg, "scheduler", SCHED_KEYS, err) ||
      !eosin_config_check_keys(cfg, "overlay", OVERLAY_KEYS, err) ||
      !load_domain_group(cfg, err) || !load_qc_group(cfg, err))
    return NULL;

  if (!load_tiling_tissue(cfg, err) || !load_scheduler(cfg, err) || !load_overlay(cfg, err) ||
      !load_model_group(cfg, err) || !load_lesions(cfg, err))
    return NULL;
  return g_steal_pointer(&cfg);
}
