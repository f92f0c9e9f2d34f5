/*
 * slide-access.c — what an analyzer's prepare() may ask of the slide
 * (EosinSlideAccess): a thumbnail, the pixels of a planned tile, the
 * fragments of tissue, a note for the user. The pipeline holds the slide
 * open and answers; the analyzer never reads the slide or labels the mask
 * itself, so a task depends only on the analyzer interface.
 */
#include "eosin-private.h"

#include "cells/eosin-cells.h"

static EosinSlideAccessImpl *impl(const EosinSlideAccess *s) {
  return s->data;
}

static bool access_thumbnail(const EosinSlideAccess *s, int max_side, EosinThumbnail *out,
                             GError **err) {
  return eosin_slide_thumbnail(impl(s)->slide, max_side, 0, out, err);
}

static bool access_read_tile(const EosinSlideAccess *s, int id, uint8_t *rgb, GError **err) {
  if (id < 0 || (guint) id >= s->plan->tiles->len) {
    g_set_error(err, EOSIN_ERROR, EOSIN_ERROR_FAILED, "slide %s: no planned tile %d",
                s->info->path, id);
    return false;
  }
  return eosin_tile_read(impl(s)->slide, s->plan, &g_array_index(s->plan->tiles, EosinTile, id),
                         rgb, err);
}

/* Labelled when asked (only the IHC task asks), straight into the array
 * the analyzer keeps. */
static int *access_fragments(const EosinSlideAccess *s, int *n) {
  *n = 0;
  if (!s->mask || !s->mask->mask)
    return NULL;
  int *labels = g_try_new(int, (size_t) s->mask->width * s->mask->height);
  if (labels)
    *n = _eosin_label_components(s->mask->mask, s->mask->width, s->mask->height, true, labels);
  return labels;
}

static void access_note(const EosinSlideAccess *s, const char *text) {
  const EosinRunOptions *o = impl(s)->opts;
  if (o && o->note)
    o->note(EOSIN_NOTE_INFO, text, o->note_data);
}

void _eosin_slide_access_init(EosinSlideAccessImpl *a, EosinSlide *slide,
                              const EosinTilePlan *plan, const EosinTissueMask *mask,
                              const EosinRunOptions *opts) {
  *a = (EosinSlideAccessImpl){
      .access = {.info = eosin_slide_get_info(slide), .plan = plan, .mask = mask,
                 .thumbnail = access_thumbnail, .read_tile = access_read_tile,
                 .fragments = access_fragments, .note = access_note, .data = a},
      .slide = slide,
      .opts = opts,
  };
}
