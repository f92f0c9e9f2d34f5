/*
 * pipeline.c — one slide, end to end: open, tissue mask, tile plan,
 * scheduler + analyzer, stitch, outputs, verification, report. Outputs are
 * built in OUTDIR/.<slide>.partial and the folder is moved to OUTDIR/<slide>
 * only when every file is written and the overlay re-opened correctly, so
 * a crash, a kill or a failure never leaves a partial result behind.
 */
#include "eosin-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <openslide.h>

/* preview.png's longer side: enough to see the tiles of a whole slide */
#define PREVIEW_SIDE 1600

void eosin_run_result_clear(EosinRunResult *res) {
  g_clear_pointer(&res->outdir, g_free);
  g_clear_pointer(&res->scores, json_node_unref);
}

typedef struct {
  double open_s, tissue_s, write_s, verify_s;
} Timing;

static double since(gint64 t0) {
  return (g_get_monotonic_time() - t0) / 1e6;
}

/* The slide description shared by report.json and `eosin info --json`. */
void eosin_slide_info_json(const EosinSlideInfo *i, JsonBuilder *b) {
  json_builder_begin_object(b);
  _eosin_json_str(b, "path", i->path);
  _eosin_json_str(b, "name", i->name);
  _eosin_json_str(b, "backend", i->backend);
  _eosin_json_str(b, "vendor", i->vendor);
  _eosin_json_int(b, "width", i->width);
  _eosin_json_int(b, "height", i->height);
  _eosin_json_num(b, "mpp_x", i->mpp_x);
  _eosin_json_num(b, "mpp_y", i->mpp_y);
  _eosin_json_str(b, "mpp_source", eosin_mpp_source_name(i->mpp_source));
  if (i->objective_power > 0)
    _eosin_json_num(b, "objective_power", i->objective_power);
  json_builder_set_member_name(b, "bounds");
  json_builder_begin_object(b);
  _eosin_json_int(b, "x", i->bounds_x);
  _eosin_json_int(b, "y", i->bounds_y);
  _eosin_json_int(b, "width", i->bounds_w);
  _eosin_json_int(b, "height", i->bounds_h);
  _eosin_json_bool(b, "from_slide", i->has_bounds);
  json_builder_end_object(b);
  json_builder_set_member_name(b, "levels");
  json_builder_begin_array(b);
  for (int l = 0; l < i->n_levels; l++) {
    json_builder_begin_object(b);
    _eosin_json_int(b, "width", i->levels[l].width);
    _eosin_json_int(b, "height", i->levels[l].height);
    _eosin_json_num(b, "downsample", i->levels[l].downsample);
    json_builder_end_object(b);
  }
  json_builder_end_array(b);
  json_builder_set_member_name(b, "associated_images");
  json_builder_begin_array(b);
  for (char **a = i->associated; a && *a; a++)
    json_builder_add_string_value(b, *a);
  json_builder_end_array(b);
  json_builder_end_object(b);
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

/* Moves the finished @staging folder to @final, replacing an older result. */
static bool promote(const char *staging, const char *final, GError **err) {
  g_autofree char *old = NULL;
  if (g_file_test(final, G_FILE_TEST_EXISTS)) {
    old = g_strconcat(final, ".old", NULL);
    if (!_eosin_rm_rf(old, err))
      return false;
    if (g_rename(final, old) != 0) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "moving %s aside: %s", final,
                  g_strerror(errno));
      return false;
    }
  }
  if (g_rename(staging, final) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "moving %s to %s: %s", staging, final,
                g_strerror(errno));
    if (old)
      g_rename(old, final);
    return false;
  }
  return old ? _eosin_rm_rf(old, err) : true;
}

typedef struct {
  const EosinConfig *cfg;
  EosinSlide *slide;
  EosinThumbnail thumb;     /* at the tissue detector's µm/px */
  EosinThumbnail preview;   /* larger, for preview.png */
  EosinTissueMask mask;
  EosinTilePlan plan;
  const EosinAnalyzerOps *ops;
  void *actx;
  EosinAnalyzerInfo ainfo;
  float *values;
  EosinGrid grid;
  EosinSchedStats sched;
  Timing timing;
  JsonNode *scores;
  EosinLesionSet lesions;
  GPtrArray *analyzer_files; /* the analyzer's own outputs (write op) */
  char *staging;
} Run;

static void run_clear(Run *r) {
  eosin_thumbnail_clear(&r->thumb);
  eosin_thumbnail_clear(&r->preview);
  eosin_tissue_clear(&r->mask);
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
    _eosin_rm_rf(r->staging, NULL);  /* nothing partial survives a failure */
  g_free(r->staging);
  eosin_slide_free(r->slide);
}

static bool write_report(Run *r, int channel, double vmin, double vmax, double wall_s,
                         const char *path, GError **err) {
  const EosinConfig *cfg = r->cfg;
  const EosinSlideInfo *i = eosin_slide_get_info(r->slide);
  g_autoptr(JsonBuilder) b = json_builder_new();
  json_builder_begin_object(b);
  _eosin_json_str(b, "status", "complete");
  g_autoptr(GDateTime) now = g_date_time_new_now_utc();
  g_autofree char *iso = g_date_time_format_iso8601(now);
  _eosin_json_str(b, "created", iso);
  json_builder_set_member_name(b, "versions");
  json_builder_begin_object(b);
  _eosin_json_str(b, "eosin", eosin_version());
  _eosin_json_str(b, "openslide", openslide_get_version());
  _eosin_json_str(b, "libvips", vips_version_string());
  g_autofree char *glibv =
      g_strdup_printf("%u.%u.%u", glib_major_version, glib_minor_version, glib_micro_version);
  _eosin_json_str(b, "glib", glibv);
  json_builder_end_object(b);

  json_builder_set_member_name(b, "slide");
  eosin_slide_info_json(i, b);

  json_builder_set_member_name(b, "config");
  json_builder_begin_object(b);
  _eosin_json_str(b, "path", cfg->path);
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
  json_builder_end_object(b);

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
  _eosin_json_num(b, "fraction", r->mask.fraction);
  _eosin_json_num(b, "thumbnail_level0_px_per_px", r->thumb.scale_x);
  json_builder_end_object(b);

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
  _eosin_json_num(b, "min", vmin);
  _eosin_json_num(b, "max", vmax);
  _eosin_json_str(b, "heatmap_encoding", "0 = no tissue / not analysed; 1..255 = min..max linearly");
  _eosin_json_num(b, "cell_level0_px", r->grid.cell_x);
  json_builder_end_object(b);

  json_builder_set_member_name(b, "scores");
  json_builder_add_value(b, json_node_ref(r->scores));

  if (r->ops->describe) {
    json_builder_set_member_name(b, "inference");
    r->ops->describe(r->actx, b);
  }

  json_builder_set_member_name(b, "outputs");
  json_builder_begin_array(b);
  const char *files[] = {"overlay.tif", "heatmap.tif", "preview.png", "tissue.png",
                         "tiles.csv", "report.json", NULL};
  for (int f = 0; files[f]; f++)
    json_builder_add_string_value(b, files[f]);
  const char *lesion_files[] = {"detections.csv", "lesions.geojson", "lesions.xml", NULL};
  for (int f = 0; cfg->lesions.present && lesion_files[f]; f++)
    json_builder_add_string_value(b, lesion_files[f]);
  for (guint f = 0; r->analyzer_files && f < r->analyzer_files->len; f++)
    json_builder_add_string_value(b, r->analyzer_files->pdata[f]);
  json_builder_end_array(b);
  json_builder_end_object(b);

  g_autoptr(JsonGenerator) gen = json_generator_new();
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  json_generator_set_root(gen, root);
  json_generator_set_pretty(gen, TRUE);
  gsize len;
  g_autofree char *text = json_generator_to_data(gen, &len);
  return _eosin_write_atomic(path, text, len, err);
}

static bool cancelled(const EosinRunOptions *o) {
  return o && o->cancel && g_atomic_int_get(&o->cancel->cancelled);
}

static bool run_slide(Run *r, const char *path, const char *outdir, const EosinRunOptions *o,
                      EosinRunResult *res, GError **err) {
  const EosinConfig *cfg = r->cfg;
  gint64 t_start = g_get_monotonic_time(), t0 = t_start;
  r->slide = eosin_slide_open(path, o ? o->mpp_override : 0, err);
  if (!r->slide)
    return false;
  const EosinSlideInfo *info = eosin_slide_get_info(r->slide);
  r->timing.open_s = since(t0);

  r->ops = eosin_analyzer_find(cfg->analyzer);
  if (!r->ops->init(cfg, &r->actx, &r->ainfo, err))
    return false;
  int channel = find_channel(cfg, &r->ainfo, "overlay", cfg->overlay_channel, err);
  if (channel < 0)
    return false;
  int lesion_channel = cfg->lesions.present
                           ? find_channel(cfg, &r->ainfo, "lesions", cfg->lesions.channel, err)
                           : 0;
  if (lesion_channel < 0)
    return false;
  double vmin = cfg->overlay_range_set ? cfg->overlay_min : r->ainfo.default_min[channel];
  double vmax = cfg->overlay_range_set ? cfg->overlay_max : r->ainfo.default_max[channel];

  t0 = g_get_monotonic_time();
  if (!eosin_slide_thumbnail(r->slide, cfg->tissue_max_side, cfg->tissue_thumbnail_mpp,
                             &r->thumb, err) ||
      !eosin_tissue_detect(&r->thumb, info, cfg, &r->mask, err) ||
      !eosin_tile_plan(info, cfg, &r->mask, &r->plan, err))
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

  r->staging = g_strdup_printf("%s/.%s.partial", outdir, info->name);
  if (!_eosin_rm_rf(r->staging, err))
    return false;
  if (g_mkdir_with_parents(r->staging, 0755) != 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_IO, "creating %s: %s", r->staging,
                g_strerror(errno));
    return false;
  }

  if (r->ops->prepare && !r->ops->prepare(r->actx, r->slide, &r->plan, &r->mask, err))
    return false;

  size_t n = r->plan.tiles->len;
  size_t per_tile = _eosin_values_per_tile(&r->ainfo);
  r->values = g_try_new0(float, n * per_tile);
  if (!r->values) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "slide %s: %zu tiles x %zu values do not fit in memory", path, n, per_tile);
    return false;
  }
  int readers = o && o->readers_override > 0 ? o->readers_override : cfg->readers;
  if (!_eosin_schedule(r->slide, &r->plan, r->ops, r->actx, (int) per_tile, readers,
                       cfg->batch_size, cfg->queue_depth, o, r->values, &r->sched, err))
    return false;

  g_autoptr(JsonBuilder) sb = json_builder_new();
  json_builder_begin_object(sb);
  if (!r->ops->finish(r->actx, &r->plan, r->values, sb, err))
    return false;
  json_builder_end_object(sb);
  r->scores = json_builder_get_root(sb);
  r->analyzer_files = g_ptr_array_new_with_free_func(g_free);
  if (r->ops->write && !r->ops->write(r->actx, r->staging, info, r->analyzer_files, err))
    return false;

  t0 = g_get_monotonic_time();
  if (!_eosin_stitch(&r->plan, r->values, r->ainfo.n_channels, r->ainfo.cells_per_side, info,
                     &r->grid, err))
    return false;
  if (cfg->lesions.present) {
    if (!_eosin_lesions_find(&r->grid, lesion_channel, &cfg->lesions, info->mpp_x, info->mpp_y,
                             &r->lesions, err) ||
        !_eosin_lesions_write(&r->lesions, r->staging, info->name, cfg->lesions.channel, err))
      return false;
    g_autoptr(JsonBuilder) lb = json_builder_new();
    _eosin_lesions_json(&r->lesions, &cfg->lesions, lb);
    json_object_set_member(json_node_get_object(r->scores), "lesions",
                           json_builder_get_root(lb));
  }
  EosinColormap cm;
  if (!_eosin_colormap_get(cfg->colormap, &cm, err))
    return false;
  g_autofree uint8_t *rgba = _eosin_grid_colorize(&r->grid, channel, &cm, vmin, vmax,
                                                  cfg->overlay_alpha);
  g_autofree uint8_t *q = _eosin_grid_quantize(&r->grid, channel, vmin, vmax);
  g_autofree char *desc = g_strdup_printf(
      "Eosin %s overlay: task %s, channel %s, colour map %s, range %g..%g, slide %s",
      eosin_version(), cfg->task, r->ainfo.channel_names[channel], cfg->colormap, vmin, vmax,
      info->name);
  g_autofree char *overlay = g_build_filename(r->staging, "overlay.tif", NULL);
  g_autofree char *heatmap = g_build_filename(r->staging, "heatmap.tif", NULL);
  g_autofree char *preview = g_build_filename(r->staging, "preview.png", NULL);
  g_autofree char *tissue = g_build_filename(r->staging, "tissue.png", NULL);
  g_autofree char *csv = g_build_filename(r->staging, "tiles.csv", NULL);
  g_autofree char *report = g_build_filename(r->staging, "report.json", NULL);
  g_autoptr(VipsImage) ov = _eosin_grid_image(&r->grid, rgba, 4, info->width, info->height, 1, 1);
  g_autoptr(VipsImage) hm = _eosin_grid_image(&r->grid, q, 1, info->width, info->height, 1, 1);
  if (!ov || !hm) {
    _eosin_set_vips_error(err, "building overlay images");
    return false;
  }
  if (cancelled(o) ||
      !_eosin_save_pyramid(ov, overlay, info->mpp_x, info->mpp_y, cfg->overlay_compression,
                           desc, err) ||
      cancelled(o) ||
      !_eosin_save_pyramid(hm, heatmap, info->mpp_x, info->mpp_y, cfg->overlay_compression,
                           desc, err) ||
      !eosin_slide_thumbnail(r->slide, PREVIEW_SIDE, 0, &r->preview, err) ||
      !_eosin_save_preview(&r->preview, &r->grid, rgba, preview, err) ||
      !eosin_tissue_save_png(&r->mask, tissue, err) ||
      !_eosin_write_tiles_csv(csv, &r->plan, &r->ainfo, r->values, err)) {
    if (cancelled(o) && (!err || !*err))
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "slide %s: cancelled", path);
    return false;
  }
  r->timing.write_s = since(t0);
  t0 = g_get_monotonic_time();
  if (!_eosin_verify_overlay(overlay, info, err))
    return false;
  r->timing.verify_s = since(t0);
  if (!write_report(r, channel, vmin, vmax, since(t_start), report, err))
    return false;
  if (cancelled(o)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "slide %s: cancelled", path);
    return false;
  }
  g_autofree char *final = g_build_filename(outdir, info->name, NULL);
  if (!promote(r->staging, final, err))
    return false;
  g_clear_pointer(&r->staging, g_free);

  if (res) {
    res->outdir = g_steal_pointer(&final);
    res->tiles_analyzed = n;
    res->tiles_planned = r->plan.planned;
    res->tiles_skipped = r->plan.skipped;
    res->seconds = since(t_start);
    res->tiles_per_s = r->sched.wall_s > 0 ? n / r->sched.wall_s : 0;
    res->scores = json_node_ref(r->scores);
  }
  return true;
}

bool eosin_run_slide(const EosinConfig *cfg, const char *path, const char *outdir,
                     const EosinRunOptions *opts, EosinRunResult *res, GError **err) {
  Run r = {.cfg = cfg};
  if (res)
    memset(res, 0, sizeof *res);
  bool ok = run_slide(&r, path, outdir, opts, res, err);
  run_clear(&r);
  g_assert(ok || !err || *err);  /* a failure always says why */
  return ok;
}
