/*
 * pipeline-report.c — report.json of one slide's run: what ran (versions,
 * command, identity of slide, config and models), on what (the slide, the
 * effective config, the domain check, tiling, tissue, QC), how long each
 * stage took, the overlay's encoding, the analyzer's scores, the files
 * written and every warning. Written last, so its "status": "complete"
 * is only ever seen beside the finished outputs.
 */
#include "pipeline-private.h"

/* The config as run: its main keys and every key resolved ("effective"). */
static void report_config(const Run *r, JsonBuilder *b) {
  const EosinConfig *cfg = r->cfg;
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
}

/* Domain, tiling, tissue, QC and tile counts: where the analysis looked. */
static void report_plan(const Run *r, JsonBuilder *b) {
  const EosinConfig *cfg = r->cfg;
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
}

/* Seconds per stage (the readers' time summed over threads). */
static void report_timing(const Run *r, JsonBuilder *b, double wall_s) {
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
}

/* Channels, the overlay's encoding, the scores and how the analyzer ran. */
static void report_overlay(const Run *r, JsonBuilder *b) {
  const EosinConfig *cfg = r->cfg;
  json_builder_set_member_name(b, "channels");
  json_builder_begin_array(b);
  for (int c = 0; c < r->ainfo.n_channels; c++)
    json_builder_add_string_value(b, r->ainfo.channel_names[c]);
  json_builder_end_array(b);

  json_builder_set_member_name(b, "overlay");
  json_builder_begin_object(b);
  _eosin_json_str(b, "channel", r->ainfo.channel_names[r->channel]);
  _eosin_json_str(b, "colormap", cfg->colormap);
  _eosin_json_num(b, "alpha", cfg->overlay_alpha);
  if (isnan(cfg->overlay_floor))
    _eosin_json_str(b, "floor", "off");
  else
    _eosin_json_num(b, "floor", cfg->overlay_floor);
  _eosin_json_str(b, "opacity", cfg->overlay_opacity);
  _eosin_json_str(b, "compression", cfg->overlay_compression);
  _eosin_json_str(b, "tiles_geojson", cfg->tiles_geojson);
  _eosin_json_num(b, "min", r->vmin);
  _eosin_json_num(b, "max", r->vmax);
  _eosin_json_str(b, "heatmap_encoding", "0 = no tissue / not analysed; 1..255 = min..max linearly");
  _eosin_json_num(b, "cell_level0_px", r->grid.cell_x);
  json_builder_end_object(b);

  json_builder_set_member_name(b, "scores");
  json_builder_add_value(b, json_node_ref(r->scores));

  if (r->inference) {
    json_builder_set_member_name(b, "inference");
    json_builder_add_value(b, json_node_ref(r->inference));
  }
}

/* Every file of the output folder, the analyzer's own included. */
static void report_outputs(const Run *r, JsonBuilder *b) {
  const EosinConfig *cfg = r->cfg;
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
}

bool _eosin_run_write_report(Run *r, double wall_s, const char *path, GError **err) {
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
  report_config(r, b);
  report_plan(r, b);
  report_timing(r, b, wall_s);
  report_overlay(r, b);
  report_outputs(r, b);
  json_builder_set_member_name(b, "warnings");
  json_builder_begin_array(b);
  for (guint w = 0; w < r->warnings->len; w++)
    json_builder_add_string_value(b, r->warnings->pdata[w]);
  json_builder_end_array(b);
  json_builder_end_object(b);

  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return _eosin_write_json(path, root, err);
}
