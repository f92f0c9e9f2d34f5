/*
 * api.c — the public API of eosin.h over the library's own: opaque
 * options, cancel and result objects a program embedding Eosin builds with
 * functions instead of struct fields (so the library can grow a field
 * without breaking its callers), a slide's description, one slide and a
 * batch. Nothing here decides anything: it hands over to pipeline.c and
 * batch.c, which the `eosin` CLI calls directly.
 */
#include "eosin-private.h"


/* ---------------------------------------------------------------- config */

const char *eosin_config_get_task(const EosinConfig *cfg) {
  return cfg->task;
}

/* ---------------------------------------------------------------- slides */

void eosin_slide_get_size(EosinSlide *slide, int64_t *width, int64_t *height) {
  const EosinSlideInfo *i = eosin_slide_get_info(slide);
  if (width)
    *width = i->width;
  if (height)
    *height = i->height;
}

void eosin_slide_get_mpp(EosinSlide *slide, double *mpp_x, double *mpp_y) {
  const EosinSlideInfo *i = eosin_slide_get_info(slide);
  if (mpp_x)
    *mpp_x = i->mpp_x;
  if (mpp_y)
    *mpp_y = i->mpp_y;
}

const char *eosin_slide_get_vendor(EosinSlide *slide) {
  return eosin_slide_get_info(slide)->vendor;
}

int eosin_slide_get_level_count(EosinSlide *slide) {
  return eosin_slide_get_info(slide)->n_levels;
}

char *eosin_slide_describe_json(EosinSlide *slide) {
  g_autoptr(JsonBuilder) b = json_builder_new();
  eosin_slide_info_json(eosin_slide_get_info(slide), b);
  g_autoptr(JsonNode) root = json_builder_get_root(b);
  return json_to_string(root, TRUE);
}

/* ---------------------------------------------------------------- cancel */

EosinCancel *eosin_cancel_new(void) {
  return g_new0(EosinCancel, 1);
}

void eosin_cancel_free(EosinCancel *cancel) {
  g_free(cancel);
}

void eosin_cancel_request(EosinCancel *cancel) {
  g_atomic_int_set(&cancel->cancelled, 1);
}

bool eosin_cancel_is_requested(const EosinCancel *cancel) {
  return g_atomic_int_get(&cancel->cancelled) != 0;
}

/* ---------------------------------------------------------------- run options */

EosinRunOptions *eosin_run_options_new(void) {
  return g_new0(EosinRunOptions, 1);
}

void eosin_run_options_free(EosinRunOptions *opts) {
  g_free(opts);
}

void eosin_run_options_set_readers(EosinRunOptions *opts, int readers) {
  opts->readers_override = MAX(readers, 0);
}

void eosin_run_options_set_mpp(EosinRunOptions *opts, double mpp) {
  opts->mpp_override = mpp > 0 ? mpp : 0;
}

void eosin_run_options_set_allow_upsample(EosinRunOptions *opts, bool allow) {
  opts->allow_upsample = allow;
}

void eosin_run_options_set_cancel(EosinRunOptions *opts, EosinCancel *cancel) {
  opts->cancel = cancel;
}

void eosin_run_options_set_progress(EosinRunOptions *opts, EosinProgressFunc fn, void *data) {
  opts->progress = fn;
  opts->progress_data = data;
}

void eosin_run_options_set_warning(EosinRunOptions *opts, EosinWarningFunc fn, void *data) {
  opts->warning = fn;
  opts->warning_data = data;
}

void eosin_run_options_set_note(EosinRunOptions *opts, EosinNoteFunc fn, void *data) {
  opts->note = fn;
  opts->note_data = data;
}

/* ---------------------------------------------------------------- results */

struct _EosinResult {
  EosinRunResult r;
};

EosinResult *eosin_run(const EosinConfig *cfg, const char *slide, const char *outdir,
                       const EosinRunOptions *opts, GError **err) {
  EosinResult *res = g_new0(EosinResult, 1);
  if (!eosin_run_slide(cfg, slide, outdir, opts, &res->r, err)) {
    eosin_result_free(res);
    return NULL;
  }
  return res;
}

void eosin_result_free(EosinResult *res) {
  if (!res)
    return;
  eosin_run_result_clear(&res->r);
  g_free(res);
}

const char *eosin_result_get_outdir(const EosinResult *res) {
  return res->r.outdir;
}

int eosin_result_get_tiles(const EosinResult *res, int *planned, int *skipped) {
  if (planned)
    *planned = res->r.tiles_planned;
  if (skipped)
    *skipped = res->r.tiles_skipped;
  return res->r.tiles_analyzed;
}

double eosin_result_get_seconds(const EosinResult *res) {
  return res->r.seconds;
}

char *eosin_result_get_scores_json(const EosinResult *res) {
  return res->r.scores ? json_to_string(res->r.scores, TRUE) : g_strdup("{}");
}

const char *const *eosin_result_get_warnings(const EosinResult *res) {
  static const char *const none[] = {NULL};
  return res->r.warnings ? (const char *const *) res->r.warnings : none;
}

/* ---------------------------------------------------------------- batch */

bool eosin_run_batch(const EosinConfig *cfg, const char *slides, const char *outdir,
                     const EosinRunOptions *opts, const EosinBatchObserver *obs,
                     EosinBatchResult *res, GError **err) {
  g_autoptr(GPtrArray) items = g_file_test(slides, G_FILE_TEST_IS_DIR)
                                   ? eosin_batch_from_dir(slides, NULL, err)
                                   : eosin_batch_from_manifest(slides, err);
  if (!items)
    return false;
  return eosin_batch_run(cfg, items, outdir, opts, obs, NULL, res, err);
}
