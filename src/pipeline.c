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
#include "pipeline-private.h"
#include "report/report.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdarg.h>


void eosin_run_result_clear(EosinRunResult *res) {
  g_clear_pointer(&res->outdir, g_free);
  g_clear_pointer(&res->scores, json_node_unref);
  g_clear_pointer(&res->warnings, g_strfreev);
}

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


void _eosin_run_warn(Run *r, const char *fmt, ...) {
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
    _eosin_run_warn(r, "QC: %s", (char *) r->qc.reasons->pdata[k]);
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
    _eosin_run_warn(r,
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

/* Where the result goes and what it will belong to, and whether its place
 * may be taken, before any work is done. Returns the output name (caller
 * frees), or NULL with @err set. */
static char *identify(Run *r, const char *outdir, const EosinIdentity *config_id, int readers,
                      GError **err) {
  const EosinConfig *cfg = r->cfg;
  const EosinRunOptions *o = &r->opts;
  const char *path = r->path;
  g_autofree char *name = output_name(path, err);
  if (!name)
    return NULL;
  if (!_eosin_config_check_memory(cfg, readers, err))
    return NULL;
  /* what this result will belong to, and whether its place may be taken,
   * before any work is done */
  if (config_id) {
    r->identity.task = g_strdup(config_id->task);
    r->identity.config_sha256 = g_strdup(config_id->config_sha256);
    r->identity.model_paths = g_strdupv(config_id->model_paths);
    r->identity.model_sha256 = g_strdupv(config_id->model_sha256);
  } else if (!_eosin_identity_config(cfg, &r->identity, err)) {
    return NULL;
  }
  if (config_id && config_id->slide_path) { /* the caller identified the slide too */
    r->identity.slide_path = g_strdup(config_id->slide_path);
    r->identity.slide_size = config_id->slide_size;
    r->identity.slide_mtime_us = config_id->slide_mtime_us;
    r->identity.slide_hash = g_strdup(config_id->slide_hash);
    r->identity.mpp_user = config_id->mpp_user;
  } else if (!_eosin_identity_slide(path, o->mpp_override, o->cancel, &r->identity, err)) {
    return NULL;
  }
  r->final = g_build_filename(outdir, name, NULL);
  if (!_eosin_output_check_replaceable(r->final, path, err))
    return NULL;

  return g_steal_pointer(&name);
}

/* Opens the slide and checks its µm/px against the task's domain. */
static bool open_slide(Run *r, gint64 t0, GError **err) {
  const EosinConfig *cfg = r->cfg;
  const EosinRunOptions *o = &r->opts;
  const char *path = r->path;
  r->slide = eosin_slide_open(path, o->mpp_override, err);
  if (!r->slide)
    return false;
  eosin_slide_set_cancel(r->slide, o->cancel);
  const EosinSlideInfo *info = eosin_slide_get_info(r->slide);
  r->timing.open_s = since(t0);
  /* the slide's own µm/px wins: a value given for it is said to be unused
   * rather than silently dropped (a manifest column meant for another
   * slide, a typo) */
  if (o->mpp_override > 0 && info->mpp_source != EOSIN_MPP_SOURCE_USER)
    _eosin_run_warn(r, "slide %s: --mpp %g (or the manifest's mpp) is not used: the slide states "
                       "%g x %g µm/px (%s)",
                    path, o->mpp_override, info->mpp_x, info->mpp_y,
                    eosin_mpp_source_name(info->mpp_source));
  double aspect = info->mpp_y / info->mpp_x;
  if (aspect > 1.01 || aspect < 1 / 1.01)
    _eosin_run_warn(r, "slide %s: pixels are not square (%g x %g µm/px, aspect %.3f); tiles are "
            "resampled to square %g µm pixels",
         path, info->mpp_x, info->mpp_y, aspect, cfg->mpp);
  /* the slide's µm/px against the model's, before anything is read */
  EosinLevelChoice level = _eosin_plan_level(info, cfg, NULL, NULL);
  g_autoptr(GPtrArray) dw = g_ptr_array_new_with_free_func(g_free);
  bool in_domain = _eosin_domain_check(cfg, info, &level, o->allow_upsample, dw, err);
  for (guint w = 0; w < dw->len; w++)
    _eosin_run_warn(r, "%s", (char *) dw->pdata[w]);
  if (!in_domain)
    return false;

  return true;
}

/* The analyzer, its overlay and lesion channels and the overlay's range. */
static bool init_analyzer(Run *r, GError **err) {
  const EosinConfig *cfg = r->cfg;
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

  return true;
}

/* Thumbnail, tissue mask, quality gate and tile plan: what will be read. */
static bool find_tissue(Run *r, GError **err) {
  const EosinConfig *cfg = r->cfg;
  const char *path = r->path;
  const EosinSlideInfo *info = eosin_slide_get_info(r->slide);
  gint64 t0 = g_get_monotonic_time();
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
  return true;
}

/* The analyzer over every planned tile: prepare, the tile stage, finish
 * (its scores) and write (its own files in the staging folder). */
static bool run_analyzer(Run *r, int readers, size_t per_tile, GError **err) {
  const EosinConfig *cfg = r->cfg;
  const EosinRunOptions *o = &r->opts;
  const char *path = r->path;
  const EosinSlideInfo *info = eosin_slide_get_info(r->slide);
  size_t n = r->plan.tiles->len;
  if (r->ops->prepare) {
    EosinSlideAccessImpl access;
    _eosin_slide_access_init(&access, r->slide, &r->plan, &r->usable, o);
    if (!r->ops->prepare(r->actx, &access.access, err))
      return false;
  }

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

  return true;
}

/* Releases the analyzer once what the outputs need of it is copied. */
static void release_analyzer(Run *r) {
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
}

/* The analysis phase of run_slide: everything up to the analyzer's scores
 * and own files in the staging folder. */
static bool analyse(Run *r, const char *outdir, const EosinIdentity *config_id, GError **err) {
  const EosinConfig *cfg = r->cfg;
  const EosinRunOptions *o = &r->opts;
  gint64 t0 = r->t_start = g_get_monotonic_time();
  int readers = o->readers_override > 0 ? o->readers_override : cfg->readers;
  g_autofree char *name = identify(r, outdir, config_id, readers, err);
  if (!name || !open_slide(r, t0, err) || !init_analyzer(r, err) || !find_tissue(r, err))
    return false;
  size_t per_tile = _eosin_values_per_tile(&r->ainfo);
  if (!check_plan(r, per_tile, err))
    return false;

  r->staging = _eosin_output_stage(outdir, name, r->path, err);
  if (!r->staging)
    return false;

  if (!run_analyzer(r, readers, per_tile, err))
    return false;
  release_analyzer(r);
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
                             info->mpp_y, &r->lesions, err))
      return false;
    _eosin_lesions_clip(&r->lesions, info);
    if (!_eosin_lesions_write(&r->lesions, r->staging, info, cfg->lesions.channel, err))
      return false;
    g_autoptr(JsonBuilder) lb = json_builder_new();
    _eosin_lesions_json(&r->lesions, &cfg->lesions, lb);
    json_object_set_member(json_node_get_object(r->scores), "lesions",
                           json_builder_get_root(lb));
  }
  EosinGridFiles files = {cfg,     r->slide,      &r->grid, &r->mask, &r->plan, &r->ainfo,
                          r->values, channel, vmin,   vmax,     r->staging, o->cancel,
                          &r->identity, cfg->lesions.present ? &r->lesions : NULL, r->scores};
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
  if (!_eosin_run_write_report(r, r->analyse_s + since(t_out), report, err) ||
      !_eosin_report_html(r->staging, err))
    return false;
  if (cancelled(o)) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "slide %s: cancelled", path);
    return false;
  }
  /* the last word before the result takes its place: a batch worker
   * whose slide another worker took over (it was presumed dead) must not
   * put its result there */
  if (o && o->fence && !o->fence(o->fence_data, err))
    return false;
  g_autofree char *warning = NULL;
  if (!_eosin_output_promote(r->staging, r->final, path, &warning, err))
    return false;
  g_clear_pointer(&r->staging, g_free);
  if (warning)
    _eosin_run_warn(r, "%s", warning);

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

/* Whether OUTDIR/<slide> already holds this slide's result for this
 * config and model (as a batch skips it); then @res (may be NULL) says so.
 * Anything less — absent, stale, broken, or the slide unreadable — is for
 * the run to deal with, as before. @id (the caller's, cleared by it) gets
 * the identity worked out, for the run to reuse rather than hash the slide
 * again. */
static bool complete_already(const EosinConfig *cfg, const char *path, const char *outdir,
                             const EosinRunOptions *opts, EosinIdentity *id,
                             EosinRunResult *res) {
  g_autofree char *name = eosin_slide_name_from_path(path);
  if (!*name || name[0] == '.' || !_eosin_identity_config(cfg, id, NULL) ||
      !_eosin_identity_slide(path, opts->mpp_override, opts->cancel, id, NULL))
    return false;
  g_autofree char *final = g_build_filename(outdir, name, NULL), *why = NULL;
  if (_eosin_output_state(final, id, &why) != EOSIN_OUTPUT_COMPLETE)
    return false;
  if (res) {
    res->outdir = g_steal_pointer(&final);
    res->already_complete = true;
    res->warnings = g_new0(char *, 1);
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
  /* a batch's workers do not take OUTDIR's lock (many share it): the
   * slide's claim keeps a run and a worker off one slide */
  g_autofree char *name = eosin_slide_name_from_path(path);
  g_autoptr(EosinClaim) claim = NULL;
  if (*name && name[0] != '.') { /* any other name is refused by the run itself */
    g_autofree char *holder = NULL;
    claim = _eosin_claim_take(outdir, name, EOSIN_CLAIM_STALE_S, &holder, err);
    if (!claim) {
      if (holder)
        g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_BUSY,
                    "slide %s is being analysed into %s by another eosin (%s): wait for it or "
                    "choose another -o",
                    path, outdir, holder);
      return false;
    }
  }
  g_auto(EosinIdentity) id = {0};
  if (opts && opts->skip_complete && complete_already(cfg, path, outdir, opts, &id, res))
    return true;
  /* the identity the check worked out, when it got as far as the slide */
  return _eosin_run_slide_locked(cfg, path, outdir, opts, id.slide_path ? &id : NULL, res, err);
}
