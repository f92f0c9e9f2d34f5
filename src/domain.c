/*
 * domain.c — what a task's model was made for ([domain] in its config) held
 * against the slide before any tile is read: the slide's level-0 µm/px
 * against the declared range, and the resolution guard (a level enlarged to
 * the model's µm/px shows it detail that is not there: more than 1.25x is a
 * warning, more than 2x an error unless --allow-upsample). Stain and imaging
 * are judged from the pixels by the QC stage; the specimen cannot be judged
 * from them and is said instead (report.json "domain", a note on stderr).
 */
#include "eosin-private.h"

#include <math.h>
#include <stdarg.h>

/* above this a level is read enlarged enough to say so; above the second,
 * the model sees interpolated detail at least twice its training scale */
#define UPSAMPLE_WARN 1.25
#define UPSAMPLE_REFUSE 2.0

double _eosin_upsample_factor(const EosinLevelChoice *level) {
  double s = MIN(level->scale, level->scale_y > 0 ? level->scale_y : level->scale);
  return s > 0 && s < 1 ? 1 / s : 1;
}

/* Where the slide's µm/px came from, in words for a message. */
static const char *mpp_origin(const EosinSlideInfo *info) {
  switch (info->mpp_source) {
  case EOSIN_MPP_SOURCE_OPENSLIDE: return "from the slide's openslide.mpp";
  case EOSIN_MPP_SOURCE_TIFF: return "from the TIFF resolution";
  case EOSIN_MPP_SOURCE_USER: return "given with --mpp";
  default: return "of unknown origin";
  }
}

static void G_GNUC_PRINTF(2, 3) add_warning(GPtrArray *warnings, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  g_ptr_array_add(warnings, g_strdup_vprintf(fmt, ap));
  va_end(ap);
}

/* "[domain] slide_mpp_min = A, slide_mpp_max = B" with only the bounds set.
 * Caller frees. */
static char *range_words(const EosinConfig *cfg) {
  double lo = cfg->domain.slide_mpp_min, hi = cfg->domain.slide_mpp_max;
  if (lo > 0 && hi > 0)
    return g_strdup_printf("[domain] slide_mpp_min = %g, slide_mpp_max = %g", lo, hi);
  return lo > 0 ? g_strdup_printf("[domain] slide_mpp_min = %g", lo)
                : g_strdup_printf("[domain] slide_mpp_max = %g", hi);
}

static bool outside(double v, double lo, double hi) {
  return (lo > 0 && v < lo * (1 - 1e-9)) || (hi > 0 && v > hi * (1 + 1e-9));
}

bool _eosin_domain_check(const EosinConfig *cfg, const EosinSlideInfo *info,
                         const EosinLevelChoice *level, bool allow_upsample,
                         GPtrArray *warnings, GError **err) {
  double lo = cfg->domain.slide_mpp_min, hi = cfg->domain.slide_mpp_max;
  if (outside(info->mpp_x, lo, hi) || outside(info->mpp_y, lo, hi)) {
    g_autofree char *range = range_words(cfg);
    g_autofree char *mpp = fabs(info->mpp_x - info->mpp_y) > 1e-9 * info->mpp_x
                               ? g_strdup_printf("%g x %g", info->mpp_x, info->mpp_y)
                               : g_strdup_printf("%g", info->mpp_x);
    if (!strcmp(cfg->domain.on_mismatch, "refuse")) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE,
                  "slide %s: %s µm/px (%s) is outside the level-0 µm/px the task's model "
                  "accepts (%s in %s); refused ([domain] on_mismatch = refuse)",
                  info->path, mpp, mpp_origin(info), range, cfg->path);
      return false;
    }
    add_warning(warnings,
                "slide %s: %s µm/px (%s) is outside the level-0 µm/px the task's model "
                "accepts (%s in %s); analysed anyway ([domain] on_mismatch = warn)",
                info->path, mpp, mpp_origin(info), range, cfg->path);
  }

  double f = _eosin_upsample_factor(level);
  if (f <= UPSAMPLE_WARN)
    return true;
  double level_mpp = info->mpp_x * info->levels[level->level].downsample;
  if (f > UPSAMPLE_REFUSE && !allow_upsample) {
    g_autofree char *fix = info->mpp_source == EOSIN_MPP_SOURCE_USER
                               ? g_strdup_printf("if --mpp %g is wrong, give the right one; ",
                                                 info->mpp_x)
                               : g_strdup("");
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE,
                "slide %s: its finest pixels are %g µm (%s) and the model sees %g µm/px "
                "([tiling] mpp in %s): tiles would be read upsampled %.2fx, more than %gx, "
                "showing the model enlarged, blurred tissue; refused (%sto run anyway, give "
                "--allow-upsample)",
                info->path, level_mpp, mpp_origin(info), cfg->mpp, cfg->path, f,
                UPSAMPLE_REFUSE, fix);
    return false;
  }
  add_warning(warnings,
              "slide %s: tiles are read upsampled %.2fx: its finest pixels are %g µm (%s) and "
              "the model sees %g µm/px ([tiling] mpp); detail finer than the slide's pixels is "
              "missing, results may be less reliable%s",
              info->path, f, level_mpp, mpp_origin(info), cfg->mpp,
              f > UPSAMPLE_REFUSE ? " (more than 2x, allowed by --allow-upsample)" : "");
  return true;
}

char *eosin_domain_note(const EosinConfig *cfg) {
  if (!cfg->domain.specimen || !strcmp(cfg->domain.specimen, "any"))
    return NULL;
  return g_strdup_printf("%s made for %s: the specimen is not checked from the pixels, and on "
                         "other tissue its results are outside what it was made for",
                         cfg->model.present ? "model" : "task", cfg->domain.specimen);
}

void _eosin_domain_json(const EosinConfig *cfg, const EosinLevelChoice *level,
                        bool allow_upsample, JsonBuilder *b) {
  json_builder_begin_object(b);
  _eosin_json_bool(b, "declared", cfg->domain.present);
  _eosin_json_str(b, "stain", cfg->domain.stain);
  _eosin_json_str(b, "imaging", cfg->domain.imaging);
  _eosin_json_str(b, "specimen", cfg->domain.specimen);
  _eosin_json_num(b, "slide_mpp_min", cfg->domain.slide_mpp_min);
  _eosin_json_num(b, "slide_mpp_max", cfg->domain.slide_mpp_max);
  _eosin_json_str(b, "on_mismatch", cfg->domain.on_mismatch);
  _eosin_json_num(b, "model_mpp", cfg->mpp);
  _eosin_json_num(b, "upsample_factor", _eosin_upsample_factor(level));
  _eosin_json_bool(b, "allow_upsample", allow_upsample);
  g_autofree char *note = eosin_domain_note(cfg);
  if (note)
    _eosin_json_str(b, "note", note);
  json_builder_end_object(b);
}
