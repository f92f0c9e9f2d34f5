/*
 * slide.h — the slide reader (slide.c, slide-openslide.c, slide-vips.c):
 * one handle per reader thread, regions and thumbnails as RGB, the level
 * a target µm/px is read from, µm/px from the file's properties, the
 * content hash of a result's identity. Only the spine includes it: a task
 * gets what it needs of the slide through EosinSlideAccess
 * (tasks/analyzer.h).
 */
#pragma once

#include "eosin-core.h"

#include <stdio.h>
#include <vips/vips.h>

/* The µm/px Eosin believes of a slide, stated or given: outside it a
 * scanner's value is a unit error and a user's a typo. */
#define EOSIN_MPP_MIN 0.02
#define EOSIN_MPP_MAX 50.0

/* eosin_slide_open for describing a slide (eosin info): a slide whose
 * µm/px is unknown opens too, its mpp 0 and mpp_source NONE, *@no_mpp
 * (caller frees; NULL when known) saying why and how to give it. */
EosinSlide *_eosin_slide_open_to_describe(const char *path, double mpp_override, char **no_mpp,
                                          GError **err);
/* A second, independent handle on the same slide, for another thread. */
EosinSlide *eosin_slide_reopen(EosinSlide *slide, GError **err);

/* Long operations on @slide (a thumbnail of a level without a pyramid
 * reads every pixel) stop with EOSIN_ERROR_CANCELLED within a second of
 * @cancel being set. @cancel (may be NULL) must outlive the slide. */
void eosin_slide_set_cancel(EosinSlide *slide, const EosinCancel *cancel);

/* Borrowed: valid while the slide is open. */
const EosinSlideInfo *eosin_slide_get_info(EosinSlide *slide);

/* Adds @info as a JSON object value to @b (report.json's "slide" and
 * `eosin info --json`). */
void eosin_slide_info_json(const EosinSlideInfo *info, JsonBuilder *b);
/* The slide's content hash as report.json "identity" has it:
 * "openslide-quickhash-1:HEX" for what OpenSlide opens (its properties and
 * smallest level, read in a moment), else "sha256:HEX" of the whole file.
 * Caller frees; NULL with @err when the file cannot be read. */
char *eosin_slide_hash(const char *path, GError **err);

/* Reads a @w x @h region of @level whose top-left is (@x, @y) in level-0
 * pixels into @rgb (w*h*3 bytes), transparent areas composited on white. */
bool eosin_slide_read_region(EosinSlide *slide, int level, int64_t x, int64_t y,
                             int w, int h, uint8_t *rgb, GError **err);

/* A whole-slide RGB thumbnail whose longer side is at most @max_side and
 * whose pixels are at least @min_mpp µm (unless that needs more than
 * @max_side). Returned pixels are owned by @out (eosin_thumbnail_clear). */
bool eosin_slide_thumbnail(EosinSlide *slide, int max_side, double min_mpp,
                           EosinThumbnail *out, GError **err);

/* Picks the level for @want_downsample (level-0 pixels per output pixel):
 * a level within 5 % is used directly; otherwise the next finer level is
 * read and resampled. Pure function of the downsample list. */
EosinLevelChoice eosin_choose_level(const double *downsamples, int n_levels,
                                    double want_downsample);

/* Resolves µm/px: openslide.mpp-x/y, else tiff.XResolution/YResolution with
 * tiff.ResolutionUnit (centimeter or inch), else @user_mpp > 0, else an
 * EOSIN_ERROR_NO_MPP error that names the slide and what was looked at.
 * @get returns a property value or NULL. Values outside 0.02–200 µm/px are
 * not physical (e.g. a 72 dpi default) and are passed over with a reason. */
typedef const char *(*EosinPropertyGetter)(void *data, const char *name);
bool eosin_resolve_mpp(const char *slide_name, EosinPropertyGetter get, void *data,
                       double user_mpp, double *mpp_x, double *mpp_y,
                       EosinMppSource *source, GError **err);

/* Reads tile @t of @plan into @rgb (tile_size^2 * 3 bytes). */
bool eosin_tile_read(EosinSlide *slide, const EosinTilePlan *plan, const EosinTile *t,
                     uint8_t *rgb, GError **err);

/* ---------------------------------------------------------------- slide backends */

/* A slide reader (OpenSlide or libvips): open fills slide->info (except µm/px,
 * resolved by slide.c from get_property) and slide->ctx. */
typedef struct {
  const char *name;
  bool (*open)(EosinSlide *slide, const char *path, GError **err);
  bool (*read_region)(EosinSlide *slide, int level, int64_t x, int64_t y, int w, int h,
                      uint8_t *rgb, GError **err);
  /* A lazy image of the whole of @level, RGB on white; caller unrefs.
   * @sequential: it will be read once top to bottom (a thumbnail), so a
   * reader may stream it in bounded memory. */
  VipsImage *(*level_image)(EosinSlide *slide, int level, bool sequential, GError **err);
  const char *(*get_property)(void *ctx, const char *name);
  void (*close)(void *ctx);
} EosinSlideOps;

struct _EosinSlide {
  const EosinSlideOps *ops;
  void *ctx;
  EosinSlideInfo info;
  double mpp_override;
  const EosinCancel *cancel; /* eosin_slide_set_cancel; may be NULL */
};

extern const EosinSlideOps _eosin_slide_openslide_ops;
extern const EosinSlideOps _eosin_slide_vips_ops;
/* True when OpenSlide recognises @path (its vendor, owned by OpenSlide). */
const char *_eosin_openslide_detect(const char *path);
/* When @path, which OpenSlide does not open, still is a whole-slide format
 * that only OpenSlide reads (a scanner's extension, an Aperio or Ventana
 * TIFF, Aperio's JPEG 2000 tiles): a description of what it looks like
 * (caller frees); NULL for a plain image libvips may read. */
char *_eosin_slide_format_only_openslide_reads(const char *path);
/* TIFFOpen(@path, "r") with libtiff's messages silenced for this file only
 * (never through its process-wide handlers); NULL when it does not open.
 * Close with TIFFClose. */
struct tiff *_eosin_tiff_open_quiet(const char *path);
