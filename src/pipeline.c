/*
 * pipeline.c — one slide, end to end: open, tissue mask, tile plan,
 * scheduler + analyzer, stitch, outputs, verification, report. Outputs are
 * built in OUTDIR/.<slide>.partial and the folder is moved to OUTDIR/<slide>
 * only when every file is written and the overlay re-opened correctly, so
 * a crash, a kill or a failure never leaves a partial result behind.
 *
 * A slide runs in two phases, so that a batch can write one slide's
 * outputs while the next slide is read and analysed (batch.c): the
 * analysis (_eosin_slide_analyse: open, tissue, plan, tiles, the
 * analyzer's scores and own files) and the outputs (_eosin_slide_write:
 * stitch, lesions, overlays, preview, tissue mask, tiles.csv, verify,
 * report, promote). `eosin run` does one after the other.
 */
#include "eosin-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdarg.h>


void eosin_run_result_clear(EosinRunResult *res) {
  g_clear_pointer(&res->outdir, g_free);
  g_clear_pointer(&res->scores, json_node_unref);
  g_clear_pointer(&res->warnings, g_strfreev);
}

typedef struct {
  double open_s, tissue_s, qc_s, write_s, verify_s;
} Timing;

static double since(gint64 t0) {
  return (g_get_monotonic_time() - t0) / 1e6;
}

/* The index of channel @name ([@group] channel), or -1 with an error. */
static int find_channel(const EosinConfig *cfg, const EosinAnalyzerInfo *ai, const char *group,
                        const char *name, GError **err) {
  if (!*name)
    return 0;
  for (int c = 0; c < ai->n_channels; c++)
    if (!strcmp(ai->channel_names[c], name))
      return c;
  g_autofree char *list = g_strjoinv(", ", ai->channel_names);
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
              "%s: [%s] channel = '%s': the %s analyzer has channels %s", cfg->path, group, name,
              cfg->analyzer, list);
  return -1;
}

/* One slide between its two phases. The analysis phase fills it on the
 * caller's thread; the output phase may run on another thread, but never
 * at the same time as anything else touches this run. */
struct _EosinSlideRun {
  const EosinConfig *cfg;
  EosinRunOptions opts;     /* a copy: cancel, warning and their data must outlive the run */
  char *path;               /* the slide */
  char *final;              /* OUTDIR/<slide> */
  EosinSlide *slide;
  EosinThumbnail thumb;     /* at the tissue detector's µm/px */
  EosinTissueMask mask;     /* the tissue detected (tissue.png) */
  EosinQc qc;               /* the quality gate's findings (qc.png, report "qc") */
  EosinTissueMask usable;   /* mask without excluded artefacts: what tiles are planned on */
  float *sharpness;         /* per analysed tile, from the tile stage */
  EosinTilePlan plan;
  const EosinAnalyzerOps *ops;
  void *actx;               /* released at the end of the analysis */
  EosinAnalyzerInfo ainfo;  /* channel_names: @channel_names once actx is gone */
  char **channel_names;     /* copied from the analyzer */
  JsonNode *inference;      /* the analyzer's describe(), or NULL */
  int channel, lesion_channel;
  double vmin, vmax;        /* the overlay's range */
  gint64 t_start;           /* when the analysis began */
  double analyse_s;         /* how long it took */
  float *values;
  EosinGrid grid;
  EosinSchedStats sched;
  Timing timing;
  JsonNode *scores;
  EosinLesionSet lesions;
  GPtrArray *analyzer_files; /* the analyzer's own outputs (write op) */
  char *staging;
  EosinIdentity identity;
  GPtrArray *warnings;      /* char *, report.json "warnings" */
};
typedef EosinSlideRun Run;

/* Keeps a warning for report.json and passes it to the caller's callback. */
static void G_GNUC_PRINTF(2, 3) warn(Run *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_ptr_array_add(r->warnings, msg);
  if (r->opts.warning)
    r->opts.warning(msg, r->opts.warning_data);
}

/* The QC's reasons from @from on, as warnings. */
static void warn_qc(Run *r, guint from) {
  for (guint k = from; k < r->qc.reasons->len; k++)
    warn(r, "QC: %s", (char *) r->qc.reasons->pdata[k]);
}

/* Frees @r and everything it holds; its staging folder is removed. */
static void run_free(Run *r) {
  eosin_thumbnail_clear(&r->thumb);
  eosin_tissue_clear(&r->mask);
  eosin_tissue_clear(&r->usable);
  _eosin_qc_clear(&r->qc);
  g_free(r->sharpness);
  eosin_tile_plan_clear(&r->plan);
  if (r->ops && r->actx)
    r->ops->destroy(r->actx);
  g_free(r->values);
  _eosin_grid_clear(&r->grid);
  _eosin_lesion_set_clear(&r->lesions);
  if (r->analyzer_files)
    g_ptr_array_unref(r->analyzer_files);
  if (r->scores)
    json_node_unref(r->scores);
  if (r->staging)
    _eosin_output_remove(r->staging, NULL); /* nothing partial survives a failure */
  g_free(r->staging);
  eosin_slide_free(r->slide);
  _eosin_identity_clear(&r->identity);
  g_ptr_array_unref(r->warnings);
  g_strfreev(r->channel_names);
  if (r->inference)
    json_node_unref(r->inference);
  g_free(r->path);
  g_free(r->final);
  g_free(r);
}

static bool write_report(Run *r, double wall_s, const char *path, GError **err) {
  int channel = r->channel;
  double vmin = r->vmin, vmax = r->vmax;
  const EosinConfig *cfg = r->cfg;
  const EosinSlideInfo *i = eosin_slide_get_info(r->slide);
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  _eosin_json_str(b, "status", "complete");
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *iso = g_date_time_format_iso8601(now);
  _eosin_json_str(b, "created", iso);
  json_builder_set_member_name(b, "versions");
  _eosin_versions_json(b);
  if (r->opts.argv) {
    json_builder_set_member_name(b, "command");
    _eosin_command_json(r->opts.argv, b);
  }

  json_builder_set_member_name(b, "identity");
  _eosin_identity_json(&r->identity, b);

  json_builder_set_member_name(b, "slide");
  eosin_slide_info_json(i, b);

  json_builder_set_member_name(b, "config");
  json_builder_begin_object(b);
  g_autofree char *cfg_path = g_canonicalize_filename(cfg->path, NULL);
  _eosin_json_str(b, "path", cfg_path);
  _eosin_json_str(b, "task", cfg->task);
  _eosin_json_str(b, "analyzer", cfg->analyzer);
  _eosin_json_int(b, "tile_size", cfg->tile_size);
  _eosin_json_int(b, "overlap", cfg->overlap);
  _eosin_json_num(b, "mpp", cfg->mpp);
  _eosin_json_num(b, "tissue_min_fraction", cfg->tissue_min_fraction);
  _eosin_json_num(b, "tissue_min_saturation", cfg->tissue_min_saturation);
  _eosin_json_int(b, "readers", r->sched.readers);
  _eosin_json_int(b, "batch_size", cfg->batch_size);
  _eosin_json_int(b, "queue_depth", cfg->queue_depth);
  _eosin_config_effective_json(cfg, b);
  json_builder_end_object(b);

  json_builder_set_member_name(b, "domain");
  _eosin_domain_json(cfg, &r->plan.level, r->opts.allow_upsample, b);

  json_builder_set_member_name(b, "tiling");
  json_builder_begin_object(b);
  _eosin_json_num(b, "mpp_effective", r->plan.mpp);
  _eosin_json_int(b, "level", r->plan.level.level);
  _eosin_json_bool(b, "resampled", r->plan.level.resample);
  _eosin_json_num(b, "level_pixels_per_tile_pixel", r->plan.level.scale);
  _eosin_json_num(b, "tile_level0_px", r->plan.tile_l0_x);
  _eosin_json_num(b, "stride_level0_px", r->plan.stride_l0_x);
  _eosin_json_int(b, "columns", r->plan.cols);
  _eosin_json_int(b, "rows", r->plan.rows);
  json_builder_end_object(b);

  json_builder_set_member_name(b, "tissue");
  json_builder_begin_object(b);
  _eosin_json_num(b, "saturation_threshold", r->mask.threshold);
  _eosin_json_bool(b, "glass_found", r->mask.glass);
  _eosin_json_num(b, "fraction", r->mask.fraction);
  _eosin_json_num(b, "thumbnail_level0_px_per_px", r->thumb.scale_x);
  json_builder_end_object(b);

  json_builder_set_member_name(b, "qc");
  _eosin_qc_json(&r->qc, cfg, b);

  json_builder_set_member_name(b, "tiles");
  json_builder_begin_object(b);
  _eosin_json_int(b, "planned", r->plan.planned);
  _eosin_json_int(b, "skipped_no_tissue", r->plan.skipped);
  _eosin_json_int(b, "analyzed", r->plan.tiles->len);
  json_builder_end_object(b);

  json_builder_set_member_name(b, "timing");
  json_builder_begin_object(b);
  _eosin_json_num(b, "open_s", r->timing.open_s);
  _eosin_json_num(b, "tissue_s", r->timing.tissue_s);
  _eosin_json_num(b, "qc_s", r->timing.qc_s); /* of tissue_s; the tiles' focus is in the tile stage */
  _eosin_json_num(b, "read_s_all_readers", r->sched.read_s);
  _eosin_json_num(b, "analyze_s", r->sched.analyze_s);
  _eosin_json_num(b, "tiles_wall_s", r->sched.wall_s);
  _eosin_json_num(b, "write_s", r->timing.write_s);
  _eosin_json_num(b, "verify_s", r->timing.verify_s);
  _eosin_json_num(b, "wall_s", wall_s);
  _eosin_json_num(b, "tiles_per_s", r->sched.wall_s > 0 ? r->plan.tiles->len / r->sched.wall_s : 0);
  json_builder_end_object(b);

  json_builder_set_member_name(b, "channels");
  json_builder_begin_array(b);
  for (int c = 0; c < r->ainfo.n_channels; c++)
    json_builder_add_string_value(b, r->ainfo.channel_names[c]);
  json_builder_end_array(b);

  json_builder_set_member_name(b, "overlay");
  json_builder_begin_object(b);
  _eosin_json_str(b, "channel", r->ainfo.channel_names[channel]);
  _eosin_json_str(b, "colormap", cfg->colormap);
  _eosin_json_num(b, "alpha", cfg->overlay_alpha);
  _eosin_json_str(b, "compression", cfg->overlay_compression);
  _eosin_json_str(b, "tiles_geojson", cfg->tiles_geojson);
  _eosin_json_num(b, "min", vmin);
  _eosin_json_num(b, "max", vmax);
  _eosin_json_str(b, "heatmap_encoding", "0 = no tissue / not analysed; 1..255 = min..max linearly");
  _eosin_json_num(b, "cell_level0_px", r->grid.cell_x);
  json_builder_end_object(b);

  json_builder_set_member_name(b, "scores");
  json_builder_add_value(b, json_node_ref(r->scores));

  if (r->inference) {
    json_builder_set_member_name(b, "inference");
    json_builder_add_value(b, json_node_ref(r->inference));
  }

  json_builder_set_member_name(b, "outputs");
  json_builder_begin_array(b);
  const char *files[] = {"overlay.tif", "heatmap.tif", "preview.png", "tissue.png",
                         "tiles.csv", "report.json", NULL};
  for (int f = 0; files[f]; f++)
    json_builder_add_string_value(b, files[f]);
  if (r->qc.enabled)
    json_builder_add_string_value(b, "qc.png");
  if (_eosin_tiles_geojson_name(cfg))
    json_builder_add_string_value(b, _eosin_tiles_geojson_name(cfg));
  const char *lesion_files[] = {"detections.csv", "lesions.geojson", "lesions.xml", NULL};
  for (int f = 0; cfg->lesions.present && lesion_files[f]; f++)
    json_builder_add_string_value(b, lesion_files[f]);
  for (guint f = 0; r->analyzer_files && f < r->analyzer_files->len; f++)
    json_builder_add_string_value(b, r->analyzer_files->pdata[f]);
  json_builder_end_array(b);

  json_builder_set_member_name(b, "warnings");
  json_builder_begin_array(b);
  for (guint w = 0; w < r->warnings->len; w++)
    json_builder_add_string_value(b, r->warnings->pdata[w]);
  json_builder_end_array(b);
  json_builder_end_object(b);

  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return _eosin_write_json(path, root, err);
}

static bool cancelled(const EosinRunOptions *o) {
  return o && o->cancel && g_atomic_int_get(&o->cancel->cancelled);
}

/* The output name of @path, refused when it could not be a folder of its
 * own: empty, "." or "..", hidden (".x" is how Eosin names its staging
 * folders and its lock), or a file a batch writes into OUTDIR itself. */
static char *output_name(const char *path, GError **err) {
  static const char *const BATCH_FILES[] = EOSIN_BATCH_FILES;
  g_autofree char *name = eosin_slide_name_from_path(path);
  const char *why = g_strv_contains(BATCH_FILES, name)
                        ? "the name of a file a batch writes into the output folder"
                    : !*name || name[0] == '.' ? "names that are empty or begin with '.' are not used"
                                               : NULL;
  if (why) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE,
                "slide %s: its output folder would be named '%s': %s (rename the file)", path,
                name, why);
    return NULL;
  }
  return g_steal_pointer(&name);
}

/* The tile plan's cost, said before the work starts: heavy overlap
 * multiplies the tiles, and the per-tile values must fit the memory the
 * config allows. */
static bool check_plan(Run *r, size_t per_tile, GError **err) {
  const EosinConfig *cfg = r->cfg;
  double stride = cfg->tile_size - cfg->overlap;
  double cover = (cfg->tile_size / stride) * (cfg->tile_size / stride);
  if (cover > 4.01)
    warn(r,
         "[tiling] overlap = %d of tile_size = %d: every point is analysed by %.0f tiles, "
         "%d tiles planned for this slide (%.0f x the work of tiles side by side)",
         cfg->overlap, cfg->tile_size, cover, r->plan.planned, cover);
  /* per tile: its plan entry, its values, and the stitched grid's cells
   * (values, weight sums) over the whole planned grid */
  gint64 bytes = (gint64) r->plan.tiles->len * (sizeof(EosinTile) + per_tile * sizeof(float)) +
                 (gint64) r->plan.planned * per_tile * sizeof(float) * 3;
  if (bytes > cfg->max_memory_bytes / 2) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG,
                "%s: slide %s needs %u tiles x %zu values (%.2f GB with the stitched grid) "
                "with [tiling] tile_size = %d, overlap = %d at %g µm/px, more than half the "
                "%.2f GB allowed ([scheduler] max_memory_mb): lower the overlap",
                cfg->path, eosin_slide_get_info(r->slide)->path, r->plan.tiles->len, per_tile,
                bytes / 1e9, cfg->tile_size, cfg->overlap, cfg->mpp, cfg->max_memory_bytes / 1e9);
    return false;
  }
  return true;
}

/* The analysis phase of run_slide: everything up to the analyzer's scores
 * and own files in the staging folder. */
static bool analyse(Run *r, const char *outdir, const EosinIdentity *config_id, GError **err) {
  const EosinConfig *cfg = r->cfg;
  const EosinRunOptions *o = &r->opts;
  const char *path = r->path;
  gint64 t0 = r->t_start = g_get_monotonic_time();
  g_autofree char *name = output_name(path, err);
  if (!name)
    return false;
  int readers = o->readers_override > 0 ? o->readers_override : cfg->readers;
  if (!_eosin_config_check_memory(cfg, readers, err))
    return false;
  /* what this result will belong to, and whether its place may be taken,
   * before any work is done */
  if (config_id) {
    r->identity.task = g_strdup(config_id->task);
    r->identity.config_sha256 = g_strdup(config_id->config_sha256);
    r->identity.model_paths = g_strdupv(config_id->model_paths);
    r->identity.model_sha256 = g_strdupv(config_id->model_sha256);
  } else if (!_eosin_identity_config(cfg, &r->identity, err)) {
    return false;
  }
  if (config_id && config_id->slide_path) { /* the caller identified the slide too */
    r->identity.slide_path = g_strdup(config_id->slide_path);
    r->identity.slide_size = config_id->slide_size;
    r->identity.slide_mtime_us = config_id->slide_mtime_us;
    r->identity.slide_hash = g_strdup(config_id->slide_hash);
    r->identity.mpp_user = config_id->mpp_user;
  } else if (!_eosin_identity_slide(path, o->mpp_override, o->cancel, &r->identity, err)) {
    return false;
  }
  r->final = g_build_filename(outdir, name, NULL);
  if (!_eosin_output_check_replaceable(r->final, path, err))
    return false;

  r->slide = eosin_slide_open(path, o->mpp_override, err);
  if (!r->slide)
    return false;
  eosin_slide_set_cancel(r->slide, o->cancel);
  const EosinSlideInfo *info = eosin_slide_get_info(r->slide);
  r->timing.open_s = since(t0);
  double aspect = info->mpp_y / info->mpp_x;
  if (aspect > 1.01 || aspect < 1 / 1.01)
    warn(r, "slide %s: pixels are not square (%g x %g µm/px, aspect %.3f); tiles are "
            "resampled to square %g µm pixels",
         path, info->mpp_x, info->mpp_y, aspect, cfg->mpp);
  /* the slide's µm/px against the model's, before anything is read */
  EosinLevelChoice level = _eosin_plan_level(info, cfg, NULL, NULL);
  g_autoptr(GPtrArray) dw = g_ptr_array_new_with_free_func(g_free);
  bool in_domain = _eosin_domain_check(cfg, info, &level, o->allow_upsample, dw, err);
  for (guint w = 0; w < dw->len; w++)
    warn(r, "%s", (char *) dw->pdata[w]);
  if (!in_domain)
    return false;

  r->ops = eosin_analyzer_find(cfg->analyzer);
  if (!r->ops->init(cfg, &r->actx, &r->ainfo, err))
    return false;
  r->channel = find_channel(cfg, &r->ainfo, "overlay", cfg->overlay_channel, err);
  if (r->channel < 0)
    return false;
  r->lesion_channel = cfg->lesions.present
                          ? find_channel(cfg, &r->ainfo, "lesions", cfg->lesions.channel, err)
                          : 0;
  if (r->lesion_channel < 0)
    return false;
  r->vmin = cfg->overlay_range_set ? cfg->overlay_min : r->ainfo.default_min[r->channel];
  r->vmax = cfg->overlay_range_set ? cfg->overlay_max : r->ainfo.default_max[r->channel];
  _eosin_config_record_overlay(cfg, r->ainfo.channel_names[r->channel], r->vmin, r->vmax);

  t0 = g_get_monotonic_time();
  if (!eosin_slide_thumbnail(r->slide, cfg->tissue_max_side, cfg->tissue_thumbnail_mpp,
                             &r->thumb, err) ||
      !eosin_tissue_detect(&r->thumb, info, cfg, &r->mask, err))
    return false;
  gint64 t_qc = g_get_monotonic_time();
  if (!_eosin_qc_run(r->slide, &r->thumb, cfg, &r->mask, &r->qc, err))
    return false;
  r->timing.qc_s = since(t_qc);
  if (r->qc.verdict == EOSIN_QC_FAIL) {
    g_autofree char *why = _eosin_qc_reasons(&r->qc);
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_QC, "slide %s: QC fail, no score: %s", path, why);
    return false;
  }
  warn_qc(r, 0);
  _eosin_qc_usable_mask(&r->mask, &r->qc, cfg, &r->usable);
  if (!eosin_tile_plan(info, cfg, &r->usable, &r->plan, err))
    return false;
  r->timing.tissue_s = since(t0);
  /* min_fraction = 0 analyses every tile, but only of a slide with tissue */
  if (r->plan.tiles->len == 0 || r->mask.fraction == 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_NO_TISSUE,
                "slide %s: no tissue found (tissue fraction %.4f of the slide; none of %d "
                "tiles has %.0f%% tissue at saturation threshold %.3f)",
                path, r->mask.fraction, r->plan.planned, 100 * cfg->tissue_min_fraction,
                r->mask.threshold);
    return false;
  }
  size_t n = r->plan.tiles->len;
  size_t per_tile = _eosin_values_per_tile(&r->ainfo);
  if (!check_plan(r, per_tile, err))
    return false;

  r->staging = _eosin_output_stage(outdir, name, path, err);
  if (!r->staging)
    return false;

  if (r->ops->prepare && !r->ops->prepare(r->actx, r->slide, &r->plan, &r->usable, err))
    return false;

  r->sharpness = cfg->qc.enabled ? g_try_new0(float, n) : NULL;
  r->values = g_try_new0(float, n * per_tile);
  if (!r->values) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "slide %s: %zu tiles x %zu values do not fit in memory", path, n, per_tile);
    return false;
  }
  if (!_eosin_schedule(r->slide, &r->plan, r->ops, r->actx, (int) per_tile, readers,
                       cfg->batch_size, cfg->queue_depth, o, r->values, r->sharpness, &r->sched,
                       err))
    return false;
  if (r->sharpness && cfg->qc.enabled) {
    guint before = r->qc.reasons->len;
    _eosin_qc_sharpness(&r->qc, cfg, r->sharpness, (int) n);
    warn_qc(r, before);
  }

  g_autoptr(JsonBuilder) sb = json_builder_new();
  json_builder_begin_object(sb);
  if (!r->ops->finish(r->actx, &r->plan, r->values, sb, err))
    return false;
  json_builder_end_object(sb);
  r->scores = json_builder_get_root(sb);
  r->analyzer_files = g_ptr_array_new_with_free_func(g_free);
  if (r->ops->write && !r->ops->write(r->actx, r->staging, info, r->analyzer_files, err))
    return false;
  for (guint f = 0; f < r->analyzer_files->len; f++)
    if (!r->ops->outputs || !g_strv_contains(r->ops->outputs, r->analyzer_files->pdata[f])) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                  "analyzer %s wrote %s, which is not among its declared outputs", r->ops->name,
                  (char *) r->analyzer_files->pdata[f]);
      return false;
    }

  /* The outputs need of the analyzer only its channel names and its
   * description (report.json "inference"): both are copied and the
   * analyzer is released here, on the thread that made it. Its model's
   * backend goes back to the batch's EosinInferCache, which is not
   * thread-safe and from which the next slide's analyzer takes it; a
   * batch writing this slide's outputs on another thread then shares no
   * analyzer state with the next slide, and the next slide reuses the
   * backend exactly as it would after a sequential run. */
  r->channel_names = g_strdupv(r->ainfo.channel_names);
  r->ainfo.channel_names = r->channel_names;
  r->ainfo.default_min = r->ainfo.default_max = NULL; /* read above, into vmin/vmax */
  if (r->ops->describe) {
    g_autoptr(JsonBuilder) ib = json_builder_new();
    r->ops->describe(r->actx, ib);
    r->inference = json_builder_get_root(ib);
  }
  r->ops->destroy(r->actx);
  r->actx = NULL;
  r->analyse_s = since(r->t_start);
  return true;
}

/* The output phase of run_slide: every file of the folder but the
 * analyzer's, the verification, report.json, and the folder's promotion
 * to OUTDIR/<slide>. The slide stays open for preview.png's thumbnail. */
static bool write_outputs(Run *r, EosinRunResult *res, GError **err) {
  const EosinConfig *cfg = r->cfg;
  const EosinRunOptions *o = &r->opts;
  const char *path = r->path;
  const EosinSlideInfo *info = eosin_slide_get_info(r->slide);
  int channel = r->channel;
  double vmin = r->vmin, vmax = r->vmax;
  /* the run's own time: not the time this phase may have waited for the
   * previous slide's outputs (a pipelined batch) */
  gint64 t_out = g_get_monotonic_time(), t0 = t_out;
  if (!_eosin_stitch(&r->plan, r->values, r->ainfo.n_channels, r->ainfo.cells_per_side, info,
                     &r->grid, err))
    return false;
  if (cfg->lesions.present) {
    if (!_eosin_lesions_find(&r->grid, r->lesion_channel, &cfg->lesions, info->mpp_x,
                             info->mpp_y, &r->lesions, err) ||
        !_eosin_lesions_write(&r->lesions, r->staging, info, cfg->lesions.channel, err))
      return false;
    g_autoptr(JsonBuilder) lb = json_builder_new();
    _eosin_lesions_json(&r->lesions, &cfg->lesions, lb);
    json_object_set_member(json_node_get_object(r->scores), "lesions",
                           json_builder_get_root(lb));
  }
  EosinGridFiles files = {cfg,     r->slide,      &r->grid, &r->mask, &r->plan, &r->ainfo,
                          r->values, channel, vmin,   vmax,     r->staging, o->cancel,
                          &r->identity};
  g_autofree char *qc_png = g_build_filename(r->staging, "qc.png", NULL);
  if (!_eosin_write_grid_files(&files, err) ||
      (r->qc.enabled && !_eosin_qc_png(&r->thumb, &r->qc, qc_png, err)))
    return false;
  g_autofree char *overlay = g_build_filename(r->staging, "overlay.tif", NULL);
  g_autofree char *report = g_build_filename(r->staging, "report.json", NULL);
  r->timing.write_s = since(t0);
  t0 = g_get_monotonic_time();
  if (!_eosin_verify_overlay(overlay, info, err))
    return false;
  r->timing.verify_s = since(t0);
  if (cancelled(o)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "slide %s: cancelled", path);
    return false;
  }
  if (!write_report(r, r->analyse_s + since(t_out), report, err))
    return false;
  if (cancelled(o)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "slide %s: cancelled", path);
    return false;
  }
  g_autofree char *warning = NULL;
  if (!_eosin_output_promote(r->staging, r->final, path, &warning, err))
    return false;
  g_clear_pointer(&r->staging, g_free);
  if (warning)
    warn(r, "%s", warning);

  if (res) {
    res->outdir = g_strdup(r->final);
    res->tiles_analyzed = r->plan.tiles->len;
    res->tiles_planned = r->plan.planned;
    res->tiles_skipped = r->plan.skipped;
    res->seconds = r->analyse_s + since(t_out);
    res->tiles_per_s = r->sched.wall_s > 0 ? r->plan.tiles->len / r->sched.wall_s : 0;
    res->scores = json_node_ref(r->scores);
  }
  return true;
}

/* The end of a run that stops here (a failure, or its outputs written):
 * a stop that surfaced as another error is said as the stop it was,
 * @res gets the warnings, and @r is freed (its staging folder removed). */
static bool run_end(Run *r, bool ok, EosinRunResult *res, GError **err) {
  if (!ok && cancelled(&r->opts) && err && *err && (*err)->code != EOSIN_ERROR_CANCELLED) {
    /* a stop that surfaced as another error (a killed libvips operation) */
    g_autofree char *msg = g_strdup((*err)->message);
    g_clear_error(err);
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "slide %s: cancelled (%s)", r->path,
                msg);
  }
  if (res) {
    g_ptr_array_add(r->warnings, NULL);
    res->warnings = g_strdupv((char **) r->warnings->pdata);
    g_ptr_array_remove_index(r->warnings, r->warnings->len - 1);
  }
  run_free(r);
  g_assert(ok || !err || *err);  /* a failure always says why */
  return ok;
}

EosinSlideRun *_eosin_slide_analyse(const EosinConfig *cfg, const char *path, const char *outdir,
                                    const EosinRunOptions *opts, const EosinIdentity *config_id,
                                    EosinRunResult *res, GError **err) {
  if (res)
    memset(res, 0, sizeof *res);
  Run *r = g_new0(Run, 1);
  r->cfg = cfg;
  if (opts)
    r->opts = *opts;
  r->path = g_strdup(path);
  r->warnings = g_ptr_array_new_with_free_func(g_free);
  if (!analyse(r, outdir, config_id, err)) {
    run_end(r, false, res, err);
    return NULL;
  }
  return r;
}

bool _eosin_slide_write(EosinSlideRun *run, EosinRunResult *res, GError **err) {
  if (res)
    memset(res, 0, sizeof *res);
  bool ok = write_outputs(run, res, err); /* @res is filled only once all is done */
  return run_end(run, ok, res, err);
}

void _eosin_slide_discard(EosinSlideRun *run) {
  if (run)
    run_free(run);
}

bool _eosin_run_slide_locked(const EosinConfig *cfg, const char *path, const char *outdir,
                             const EosinRunOptions *opts, const EosinIdentity *config_id,
                             EosinRunResult *res, GError **err) {
  EosinSlideRun *run = _eosin_slide_analyse(cfg, path, outdir, opts, config_id, res, err);
  return run && _eosin_slide_write(run, res, err);
}

bool _eosin_prepare_outdir(const char *outdir, GError **err) {
  if (!outdir || !*outdir) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CONFIG, "no output folder given (-o is empty)");
    return false;
  }
  if (g_mkdir_with_parents(outdir, 0755) != 0 || !g_file_test(outdir, G_FILE_TEST_IS_DIR)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "output folder %s: %s", outdir,
                errno ? g_strerror(errno) : "not a folder");
    return false;
  }
  return true;
}

bool eosin_run_slide(const EosinConfig *cfg, const char *path, const char *outdir,
                     const EosinRunOptions *opts, EosinRunResult *res, GError **err) {
  if (res)
    memset(res, 0, sizeof *res);
  if (!_eosin_prepare_outdir(outdir, err))
    return false;
  g_autoptr(EosinLock) lock = _eosin_lock_outdir(outdir, err);
  if (!lock)
    return false;
  return _eosin_run_slide_locked(cfg, path, outdir, opts, NULL, res, err);
}
