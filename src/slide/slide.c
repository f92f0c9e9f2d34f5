/*
 * slide.c — the format-independent side of slides: choosing a reader
 * (OpenSlide first, libvips for plain images), resolving µm/px without ever
 * guessing, choosing the pyramid level for a target µm/px, thumbnails and
 * reading tiles at the task's resolution, and the slide's description as JSON.
 */
#include "eosin-private.h"

#include <math.h>
#include <stdlib.h>

/* Pixel sizes outside this range are not physical (a 72 dpi default is
 * 353 µm/px; a 300 dpi JPEG 85 µm/px): such values are passed over. */
#define MPP_MIN EOSIN_MPP_MIN
#define MPP_MAX EOSIN_MPP_MAX

/* The most pixels a thumbnail may read from one level: 8 Gpx, a 90k x 90k
 * level without a pyramid, is about a minute (and bounded memory). */
#define MAX_THUMBNAIL_SOURCE_PX 8e9

const char *eosin_mpp_source_name(EosinMppSource src) {
  switch (src) {
  case EOSIN_MPP_SOURCE_OPENSLIDE: return "openslide.mpp";
  case EOSIN_MPP_SOURCE_TIFF: return "tiff-resolution";
  case EOSIN_MPP_SOURCE_USER: return "user";
  default: return "none";
  }
}

static bool parse_positive(const char *s, double *out) {
  if (!s || !*s)
    return false;
  char *end = NULL;
  double d = g_ascii_strtod(s, &end);
  if (*end || !isfinite(d) || d <= 0)
    return false;
  *out = d;
  return true;
}

static bool plausible(double mpp) {
  return mpp >= MPP_MIN && mpp <= MPP_MAX;
}

bool eosin_resolve_mpp(const char *slide_name, EosinPropertyGetter get, void *data,
                       double user_mpp, double *mpp_x, double *mpp_y,
                       EosinMppSource *source, GError **err) {
  g_autoptr(GString) why = g_string_new(NULL);
  const char *sx = get(data, "openslide.mpp-x"), *sy = get(data, "openslide.mpp-y");
  double x, y;
  if (sx && sy) {
    if (parse_positive(sx, &x) && parse_positive(sy, &y) && plausible(x) && plausible(y)) {
      *mpp_x = x, *mpp_y = y, *source = EOSIN_MPP_SOURCE_OPENSLIDE;
      return true;
    }
    g_string_append_printf(why, "openslide.mpp-x/y = '%s'/'%s' is not a plausible µm/px; ",
                           sx, sy);
  } else {
    g_string_append(why, "no openslide.mpp-x/y; ");
  }

  const char *rx = get(data, "tiff.XResolution"), *ry = get(data, "tiff.YResolution");
  const char *unit = get(data, "tiff.ResolutionUnit");
  double per_unit_um = 0;
  if (unit && !g_ascii_strcasecmp(unit, "centimeter"))
    per_unit_um = 1e4;
  else if (unit && !g_ascii_strcasecmp(unit, "inch"))
    per_unit_um = 25400;
  if (!rx || !ry) {
    g_string_append(why, "no TIFF XResolution/YResolution; ");
  } else if (per_unit_um == 0) {
    g_string_append_printf(why, "TIFF ResolutionUnit is '%s', not centimeter or inch; ",
                           unit ? unit : "absent");
  } else if (parse_positive(rx, &x) && parse_positive(ry, &y) &&
             plausible(per_unit_um / x) && plausible(per_unit_um / y)) {
    *mpp_x = per_unit_um / x, *mpp_y = per_unit_um / y, *source = EOSIN_MPP_SOURCE_TIFF;
    return true;
  } else {
    g_string_append_printf(why, "TIFF resolution %s x %s per %s is not a plausible µm/px; ", rx,
                           ry, unit);
  }

  if (user_mpp > 0) {
    if (!plausible(user_mpp)) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_NO_MPP,
                  "slide %s: --mpp %g is outside %g–%g µm/px", slide_name, user_mpp, MPP_MIN,
                  MPP_MAX);
      return false;
    }
    *mpp_x = *mpp_y = user_mpp, *source = EOSIN_MPP_SOURCE_USER;
    return true;
  }
  g_string_truncate(why, why->len - 2);
  g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_NO_MPP,
              "slide %s: unknown µm/px (%s); give it with --mpp (or a manifest's mpp column)",
              slide_name, why->str);
  return false;
}

EosinLevelChoice eosin_choose_level(const double *ds, int n, double want) {
  EosinLevelChoice c = {0, want / ds[0], true, want / ds[0]};
  double best = INFINITY;
  for (int i = 0; i < n; i++) {
    double rel = fabs(ds[i] - want) / want;
    if (rel <= 0.05 && rel < best) {
      best = rel;
      c.level = i, c.scale = c.scale_y = 1.0, c.resample = false;
    }
  }
  if (!c.resample)
    return c;
  /* the next finer level: the largest downsample below the target */
  for (int i = 0; i < n; i++) {
    if (ds[i] < want && ds[i] >= ds[c.level]) {
      c.level = i;
    }
  }
  c.scale = want / ds[c.level];
  c.scale_y = c.scale;
  return c;
}

void eosin_slide_free(EosinSlide *slide) {
  if (!slide)
    return;
  if (slide->ops && slide->ctx)
    slide->ops->close(slide->ctx);
  EosinSlideInfo *i = &slide->info;
  g_free(i->path);
  g_free(i->name);
  g_free(i->backend);
  g_free(i->vendor);
  g_free(i->levels);
  g_strfreev(i->associated);
  g_free(slide);
}

/* @no_mpp (may be NULL): a slide whose µm/px is unknown opens anyway,
 * with mpp_source NONE and the reason in *@no_mpp (caller frees), for
 * describing it (eosin info); otherwise that is an EOSIN_ERROR_NO_MPP
 * error. */
static EosinSlide *open_with(const char *path, double mpp_override, char **no_mpp,
                             GError **err) {
  /* a FIFO or a device would hang a reader or feed it forever */
  if (!_eosin_check_input_file(path, "slide", 0, NULL, err))
    return NULL;
  if (!_eosin_vips_init(err))
    return NULL;
  g_autoptr(EosinSlide) slide = g_new0(EosinSlide, 1);
  slide->mpp_override = mpp_override;
  slide->info.path = g_strdup(path);
  slide->info.name = eosin_slide_name_from_path(path);
  if (_eosin_openslide_detect(path)) {
    slide->ops = &_eosin_slide_openslide_ops;
  } else {
    /* the libvips reader is for plain images: a scanner's format that
     * OpenSlide cannot open is damaged, and libvips would decode what it
     * can of it (Aperio's JPEG 2000 tiles in false colours) */
    g_autofree char *looks = _eosin_slide_format_only_openslide_reads(path);
    if (looks) {
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE,
                  "slide %s: %s, but OpenSlide cannot open it (truncated or damaged?): not "
                  "read",
                  path, looks);
      return NULL;
    }
    slide->ops = &_eosin_slide_vips_ops;
  }
  slide->info.backend = g_strdup(slide->ops->name);
  if (!slide->ops->open(slide, path, err))
    return NULL;
  EosinSlideInfo *i = &slide->info;
  if (!i->has_bounds) {
    i->bounds_x = i->bounds_y = 0;
    i->bounds_w = i->width, i->bounds_h = i->height;
  }
  g_autoptr(GError) e = NULL;
  if (!eosin_resolve_mpp(path, slide->ops->get_property, slide->ctx, mpp_override,
                         &i->mpp_x, &i->mpp_y, &i->mpp_source, &e)) {
    if (!no_mpp || !g_error_matches(e, EOSIN_ERROR, EOSIN_ERROR_NO_MPP)) {
      g_propagate_error(err, g_steal_pointer(&e));
      return NULL;
    }
    i->mpp_x = i->mpp_y = 0;
    i->mpp_source = EOSIN_MPP_SOURCE_NONE;
    /* the reason alone: eosin_resolve_mpp above writes "slide S: unknown
     * µm/px (REASON); give it with ..." */
    const char *a = strstr(e->message, "unknown µm/px (");
    const char *z = a ? strstr(a, "); give it with") : NULL;
    *no_mpp = a && z ? g_strndup(a + strlen("unknown µm/px ("), z - a - strlen("unknown µm/px ("))
                     : g_strdup(e->message);
  }
  return g_steal_pointer(&slide);
}

void _eosin_qupath_origin(const EosinSlideInfo *info, int64_t *x, int64_t *y) {
  /* QuPath's OpenSlide reader (OpenslideImageServer) shows the slide
   * cropped to openslide.bounds-* whenever a slide has them (MIRAX, Leica,
   * ...): its image is bounds_w x bounds_h and its pixel (0, 0) is level-0
   * pixel (bounds_x, bounds_y). Without bounds these are 0 (slide_open). */
  *x = info->bounds_x;
  *y = info->bounds_y;
}

EosinSlide *eosin_slide_open(const char *path, double mpp_override, GError **err) {
  return open_with(path, mpp_override, NULL, err);
}

EosinSlide *_eosin_slide_open_to_describe(const char *path, double mpp_override, char **no_mpp,
                                          GError **err) {
  *no_mpp = NULL;
  return open_with(path, mpp_override, no_mpp, err);
}

EosinSlide *eosin_slide_reopen(EosinSlide *slide, GError **err) {
  EosinSlide *s = open_with(slide->info.path, slide->mpp_override, NULL, err);
  if (s)
    s->cancel = slide->cancel;
  return s;
}

void eosin_slide_set_cancel(EosinSlide *slide, const EosinCancel *cancel) {
  slide->cancel = cancel;
}

const EosinSlideInfo *eosin_slide_get_info(EosinSlide *slide) {
  return &slide->info;
}

bool eosin_slide_read_region(EosinSlide *slide, int level, int64_t x, int64_t y, int w, int h,
                             uint8_t *rgb, GError **err) {
  if (level < 0 || level >= slide->info.n_levels || w <= 0 || h <= 0) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE,
                "slide %s: bad region request level %d size %dx%d", slide->info.path, level,
                w, h);
    return false;
  }
  return slide->ops->read_region(slide, level, x, y, w, h, rgb, err);
}

/* Copies @rect of @img (uchar, 3 bands) into @out, computing it in this
 * thread: vips_region_prepare runs the pipeline without a worker pool, so
 * reader threads do not multiply libvips's own threads. */
static bool region_to_rgb(VipsImage *img, int w, int h, uint8_t *out, GError **err) {
  g_autoptr(VipsRegion) reg = vips_region_new(img);
  VipsRect r = {0, 0, w, h};
  if (vips_region_prepare(reg, &r)) {
    _eosin_set_vips_error(err, "resampling tile");
    return false;
  }
  for (int row = 0; row < h; row++)
    memcpy(out + (size_t) row * w * 3, VIPS_REGION_ADDR(reg, 0, row), (size_t) w * 3);
  return true;
}

bool eosin_tile_read(EosinSlide *slide, const EosinTilePlan *plan, const EosinTile *t,
                     uint8_t *rgb, GError **err) {
  const EosinLevelChoice *c = &plan->level;
  int T = plan->tile_size;
  if (!c->resample)
    return eosin_slide_read_region(slide, c->level, t->x, t->y, T, T, rgb, err);

  /* Read a little more than the footprint at the finer level, resample, crop. */
  int sw = (int) ceil(T * c->scale) + 2, sh = (int) ceil(T * c->scale_y) + 2;
  g_autofree uint8_t *buf = g_malloc((size_t) sw * sh * 3);
  if (!eosin_slide_read_region(slide, c->level, t->x, t->y, sw, sh, buf, err))
    return false;
  g_autoptr(VipsImage) in = vips_image_new_from_memory(buf, (size_t) sw * sh * 3, sw, sh,
                                                       3, VIPS_FORMAT_UCHAR);
  VipsImage *out = NULL;
  if (!in || vips_resize(in, &out, 1.0 / c->scale, "vscale", 1.0 / c->scale_y, NULL)) {
    _eosin_set_vips_error(err, "resampling tile");
    return false;
  }
  g_autoptr(VipsImage) outp = out;
  if (out->Xsize < T || out->Ysize < T) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED,
                "slide %s: tile (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                ") resampled to %dx%d, smaller than %d",
                slide->info.path, t->x, t->y, out->Xsize, out->Ysize, T);
    return false;
  }
  return region_to_rgb(out, T, T, rgb, err);
}

void eosin_thumbnail_clear(EosinThumbnail *thumb) {
  g_clear_pointer(&thumb->rgb, g_free);
}

bool eosin_slide_thumbnail(EosinSlide *slide, int max_side, double min_mpp,
                           EosinThumbnail *out, GError **err) {
  const EosinSlideInfo *i = &slide->info;
  double ds = MAX(min_mpp / i->mpp_x, 1.0);
  ds = MAX(ds, (double) MAX(i->width, i->height) / max_side);
  /* the coarsest level not coarser than the thumbnail */
  int level = 0;
  for (int l = 0; l < i->n_levels; l++)
    if (i->levels[l].downsample <= ds * 1.001)
      level = l;
  /* every pixel of that level is read: a level of 1,000,000 x 1,000,000
   * px with no pyramid below it (a 530 KB TIFF can declare one) would take
   * hours, so there is a limit */
  double src_px = (double) i->levels[level].width * i->levels[level].height;
  if (src_px > MAX_THUMBNAIL_SOURCE_PX) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_SLIDE,
                "slide %s: a thumbnail would read all %" G_GINT64_FORMAT " x %" G_GINT64_FORMAT
                " px of level %d (%.1f Gpx; no smaller level), more than the %.0f Gpx Eosin "
                "reads for one: give it a pyramid (e.g. vips tiffsave --tile --pyramid)",
                i->path, i->levels[level].width, i->levels[level].height, level, src_px / 1e9,
                MAX_THUMBNAIL_SOURCE_PX / 1e9);
    return false;
  }
  g_autoptr(VipsImage) lvl = slide->ops->level_image(slide, level, true, err);
  if (!lvl)
    return false;
  int tw = MAX(1, (int) floor(i->width / ds)), th = MAX(1, (int) floor(i->height / ds));
  double sx = (double) tw / lvl->Xsize, sy = (double) th / lvl->Ysize;
  VipsImage *small = NULL;
  if (vips_resize(lvl, &small, sx, "vscale", sy, NULL)) {
    g_autofree char *what = g_strdup_printf("slide %s: thumbnail of level %d", i->path, level);
    _eosin_set_vips_error(err, what);
    return false;
  }
  g_autoptr(VipsImage) smallp = small;
  size_t len = 0;
  /* a level without a pyramid below it is read whole: that can take
   * minutes, so a stop must reach it */
  _eosin_vips_watch_cancel(small, slide->cancel);
  /* vips may round the size by a pixel: keep what it made and its true scale */
  void *mem = vips_image_write_to_memory(small, &len);
  if (!mem) {
    if (slide->cancel && g_atomic_int_get(&slide->cancel->cancelled)) {
      vips_error_clear();
      g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_CANCELLED, "slide %s: cancelled", i->path);
      return false;
    }
    g_autofree char *what = g_strdup_printf("slide %s: thumbnail", i->path);
    _eosin_set_vips_error(err, what);
    return false;
  }
  out->width = small->Xsize;
  out->height = small->Ysize;
  out->scale_x = (double) i->width / small->Xsize;
  out->scale_y = (double) i->height / small->Ysize;
  out->rgb = mem;  /* vips_image_write_to_memory's buffer is g_free-able */
  return true;
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
