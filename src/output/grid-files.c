/*
 * grid-files.c — the files a slide's stitched grid is drawn into:
 * overlay.tif (colour map) and heatmap.tif (raw 8-bit values), preview.png
 * (the overlay over a small image of the slide), tissue.png, tiles.csv and
 * tiles.geojson, all in the slide's staging folder. Two workers write them
 * side by side: overlay.tif in one, the rest in the other (about the same
 * time each). Why: each pyramid compresses its tiles on every core, but
 * between those bursts its writer runs alone (layout keys, libtiff, the
 * small levels), and the preview is libvips on one core; side by side
 * they keep the cores busy.
 */
#include "report/report.h"

/* preview.png's longer side: enough to see the tiles of a whole slide */
#define PREVIEW_SIDE 1600
#define PREVIEW_MIN_SIDE 1024
/* tissue.png's longer side at most */
#define TISSUE_SIDE 1024

/* preview.png's longer side: a level of the slide between PREVIEW_MIN_SIDE
 * and PREVIEW_SIDE px is taken as it is (no resampling, and the fewest
 * pixels decoded: this was a quarter of a metastasis slide's write time),
 * else PREVIEW_SIDE. */
static int preview_side(const EosinSlideInfo *info) {
  for (int l = info->n_levels - 1; l >= 0; l--) {
    int64_t side = MAX(info->levels[l].width, info->levels[l].height);
    if (side >= PREVIEW_MIN_SIDE && side <= PREVIEW_SIDE)
      return (int) side;
  }
  return PREVIEW_SIDE;
}

typedef struct {
  const EosinGridFiles *g;
  const EosinColormap *cm;
  const EosinPaint *ov, *hm;
  const uint8_t *rgba;
  const char *desc, *hdesc;
  GError *err[2]; /* each worker's failure */
} Job;

/* preview.png: the overlay over @thumb, the lesions outlined, and the
 * legend band: slide, colour bar with the channel and units, scale bar. */
static bool save_preview(const Job *j, const EosinThumbnail *thumb, const char *path,
                         GError **err) {
  const EosinGridFiles *g = j->g;
  const EosinConfig *cfg = g->cfg;
  const EosinSlideInfo *info = eosin_slide_get_info(g->slide);
  g_autofree uint8_t *rgb = _eosin_preview_rgb(thumb, g->grid, j->rgba, err);
  if (!rgb)
    return false;
  g_autoptr(GPtrArray) outlines = g->lesions ? _eosin_lesion_outlines(g->lesions)
                                             : g_ptr_array_new_with_free_func(_eosin_outline_free);
  /* a Ki-67 hot spot: its window, numbered 1 */
  JsonObject *so = g->scores && JSON_NODE_HOLDS_OBJECT(g->scores) ? json_node_get_object(g->scores)
                                                                  : NULL;
  JsonNode *hn = so ? json_object_get_member(so, "ki67_hotspot") : NULL;
  JsonObject *ho = hn && JSON_NODE_HOLDS_OBJECT(hn) ? json_node_get_object(hn) : NULL;
  if (ho && json_object_get_boolean_member_with_default(ho, "found", FALSE)) {
    double x = _eosin_json_number_at(ho, "x"), y = _eosin_json_number_at(ho, "y");
    double w = _eosin_json_number_at(ho, "width"), h = _eosin_json_number_at(ho, "height");
    EosinOutline *o = g_new0(EosinOutline, 1);
    o->xy = g_array_new(FALSE, FALSE, sizeof(double));
    const double box[] = {x, y, x + w, y, x + w, y + h, x, y + h};
    g_array_append_vals(o->xy, box, 8);
    o->number = 1;
    g_ptr_array_add(outlines, o);
  }
  EosinDecor d = {.title = info->name, .channel = g->ainfo->channel_names[g->channel],
                  .units = _eosin_channel_units(cfg, g->vmin, g->vmax), .cm = j->cm,
                  .vmin = g->vmin, .vmax = g->vmax, .floor = cfg->overlay_floor,
                  .um_per_px = info->mpp_x * thumb->scale_x, .scale_x = thumb->scale_x,
                  .scale_y = thumb->scale_y, .outlines = outlines};
  return _eosin_decor_png(rgb, thumb->width, thumb->height, &d, path, err);
}

/* tissue.png: the thumbnail with the tissue mask's edge drawn on it in
 * green (a bare mask was too small and too abstract to check against the
 * slide), outside the tissue dimmed, and the legend band. */
static bool save_tissue(const Job *j, const EosinThumbnail *full, const char *path,
                        GError **err) {
  const EosinGridFiles *g = j->g;
  const EosinTissueMask *m = g->mask;
  const EosinSlideInfo *info = eosin_slide_get_info(g->slide);
  /* at most TISSUE_SIDE px: enough to check the mask against the slide,
   * and a quarter of the preview's pixels to encode */
  EosinThumbnail small = *full, *thumb = &small;
  g_autofree uint8_t *shrunk = NULL;
  int side = MAX(full->width, full->height);
  if (side > TISSUE_SIDE) {
    double f = (double) TISSUE_SIDE / side;
    g_autoptr(VipsImage) in = vips_image_new_from_memory(
        full->rgb, (size_t) full->width * full->height * 3, full->width, full->height, 3,
        VIPS_FORMAT_UCHAR);
    VipsImage *out = NULL;
    if (!in || vips_resize(in, &out, f, NULL)) {
      _eosin_set_vips_error(err, "tissue.png");
      return false;
    }
    g_autoptr(VipsImage) outp = out;
    size_t len = 0;
    shrunk = vips_image_write_to_memory(out, &len);
    if (!shrunk || len != (size_t) out->Xsize * out->Ysize * 3) {
      _eosin_set_vips_error(err, "tissue.png");
      return false;
    }
    small.width = out->Xsize, small.height = out->Ysize, small.rgb = shrunk;
    small.scale_x = full->scale_x * full->width / out->Xsize;
    small.scale_y = full->scale_y * full->height / out->Ysize;
  }
  int W = thumb->width, H = thumb->height;
  g_autofree uint8_t *rgb = g_memdup2(thumb->rgb, (size_t) W * H * 3);
  g_autofree uint8_t *in = g_new0(uint8_t, (size_t) W * H);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      int mx = (int) ((x + 0.5) * thumb->scale_x / m->scale_x);
      int my = (int) ((y + 0.5) * thumb->scale_y / m->scale_y);
      in[(size_t) y * W + x] =
          mx >= 0 && my >= 0 && mx < m->width && my < m->height && m->mask[(size_t) my * m->width + mx];
    }
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      uint8_t *p = rgb + 3 * ((size_t) y * W + x);
      bool t = in[(size_t) y * W + x], edge = false;
      for (int dy = -1; dy <= 1 && !edge; dy++)
        for (int dx = -1; dx <= 1 && !edge; dx++) {
          int xx = x + dx, yy = y + dy;
          edge = xx >= 0 && yy >= 0 && xx < W && yy < H && in[(size_t) yy * W + xx] != t;
        }
      if (edge)
        p[0] = 0, p[1] = 200, p[2] = 83;
      else if (!t)
        for (int c = 0; c < 3; c++)
          p[c] = (uint8_t) (p[c] * 3 / 5 + 40);
    }
  g_autofree char *title = g_strdup_printf("%s: tissue outlined in green (%.1f %% of the slide)",
                                           info->name, 100 * m->fraction);
  EosinDecor d = {.title = title, .um_per_px = info->mpp_x * thumb->scale_x,
                  .scale_x = thumb->scale_x, .scale_y = thumb->scale_y};
  return _eosin_decor_png(rgb, W, H, &d, path, err);
}

/* @k = 0: overlay.tif; 1: the rest. Files go to the staging folder. */
static void write_part(void *data, int k, void *scratch) {
  Job *j = data;
  const EosinGridFiles *g = j->g;
  const EosinConfig *cfg = g->cfg;
  const EosinSlideInfo *info = eosin_slide_get_info(g->slide);
  GError **err = &j->err[k];
  if (k == 0) {
    g_autofree char *overlay = g_build_filename(g->staging, "overlay.tif", NULL);
    _eosin_write_pyramid(j->ov, info, cfg->overlay_compression, j->desc, g->cancel, overlay,
                         err);
    return;
  }
  g_autofree char *heatmap = g_build_filename(g->staging, "heatmap.tif", NULL);
  g_autofree char *preview = g_build_filename(g->staging, "preview.png", NULL);
  g_autofree char *tissue = g_build_filename(g->staging, "tissue.png", NULL);
  g_autofree char *csv = g_build_filename(g->staging, "tiles.csv", NULL);
  const char *geojson_name = _eosin_tiles_geojson_name(cfg);
  g_autofree char *geojson =
      geojson_name ? g_build_filename(g->staging, geojson_name, NULL) : NULL;
  EosinThumbnail thumb = {0}; /* cleared below */
  (void) (_eosin_write_pyramid(j->hm, info, cfg->overlay_compression, j->hdesc, g->cancel,
                               heatmap, err) &&
          eosin_slide_thumbnail(g->slide, preview_side(info), 0, &thumb, err) &&
          save_preview(j, &thumb, preview, err) &&
          save_tissue(j, &thumb, tissue, err) &&
          _eosin_write_tiles_csv(csv, g->plan, g->ainfo, g->values, err) &&
          (!geojson || _eosin_write_tiles_geojson(geojson, !strcmp(cfg->tiles_geojson, "zip"),
                                                  g->plan, g->ainfo, g->values, info, err)));
  eosin_thumbnail_clear(&thumb);
}

/* "eosin slide=HASH model=sha256:HEX[,...] task=NAME": what the TIFFs'
 * ImageDescription ends with, so an overlay is never taken for another
 * slide's or model's (identity.c; "none" for a model-less task). Caller
 * frees. */
static char *provenance_tag(const EosinGridFiles *g) {
  const EosinIdentity *id = g->identity;
  g_autoptr(GString) s = g_string_new("eosin slide=");
  g_string_append(s, id && id->slide_hash ? id->slide_hash : "unknown");
  g_string_append(s, " model=");
  for (int i = 0; id && id->model_sha256 && id->model_sha256[i]; i++)
    g_string_append_printf(s, "%ssha256:%s", i ? "," : "", id->model_sha256[i]);
  if (!id || !id->model_sha256 || !id->model_sha256[0])
    g_string_append(s, "none");
  g_string_append_printf(s, " task=%s", g->cfg->task);
  return g_string_free(g_steal_pointer(&s), FALSE);
}

bool _eosin_write_grid_files(const EosinGridFiles *g, GError **err) {
  const EosinConfig *cfg = g->cfg;
  const EosinSlideInfo *info = eosin_slide_get_info(g->slide);
  const char *channel = g->ainfo->channel_names[g->channel];
  EosinColormap cm;
  if (!_eosin_colormap_get(cfg->colormap, &cm, err))
    return false;
  g_autofree uint8_t *rgba =
      _eosin_grid_colorize(g->grid, g->channel, &cm, g->vmin, g->vmax, cfg->overlay_alpha,
                           cfg->overlay_floor, !strcmp(cfg->overlay_opacity, "ramp"));
  g_autofree uint8_t *q = _eosin_grid_quantize(g->grid, g->channel, g->vmin, g->vmax);
  g_autofree char *tag = provenance_tag(g);
  g_autofree char *desc = g_strdup_printf(
      "Eosin %s overlay: task %s, channel %s, colour map %s, range %g..%g, slide %s; %s",
      eosin_version(), cfg->task, channel, cfg->colormap, g->vmin, g->vmax, info->name, tag);
  /* heatmap.tif holds raw values, which viewers map through their own table */
  g_autofree char *hdesc = g_strdup_printf(
      "Eosin %s heatmap: task %s, channel %s; 8-bit values: 0 = no data, 1..255 = %g..%g "
      "linearly; slide %s; %s",
      eosin_version(), cfg->task, channel, g->vmin, g->vmax, info->name, tag);
  g_autoptr(EosinPaint) ov = _eosin_paint_new(g->grid, rgba, 4);
  g_autoptr(EosinPaint) hm = _eosin_paint_new(g->grid, q, 1);
  /* the overlays' levels mirror the slide's, so a viewer pairs them 1:1 */
  Job j = {g, &cm, ov, hm, rgba, desc, hdesc, {NULL, NULL}};
  _eosin_parallel_for(2, 0, write_part, &j);
  /* the overlay's failure before the rest's */
  GError *e = j.err[0] ? j.err[0] : j.err[1];
  if (j.err[0] && j.err[1])
    g_error_free(j.err[1]);
  if (e)
    g_propagate_error(err, e);
  return !e;
}
