/*
 * report.h — the face of src/report/: what a pathologist looks at rather
 * than reads. decor.c draws an image's legend band (slide name, a colour
 * bar with the channel and its units, a scale bar in µm) and numbered
 * outlines with cairo and pango; html.c writes report.html from a slide's
 * report.json; index.c writes a batch's index.html.
 */
#pragma once

#include "eosin-private.h"

#include <cairo.h>

/* What differs from one run of the same slide to the next (a time, a
 * command line, a batch id, a duration) sits between these comments in
 * report.html and index.html, so that a comparison of two runs can set it
 * aside as it sets aside report.json's "created", "timing", "command". */
#define RUN_BEGIN "<!--run-->"
#define RUN_END "<!--/run-->"

/* An outline to draw: a closed ring of level-0 (x, y) pairs and its number. */
typedef struct {
  GArray *xy;  /* double */
  int number;  /* 1, 2, ... drawn beside it; 0: none */
} EosinOutline;
void _eosin_outline_free(gpointer o);

/* What the legend band says and the outlines drawn over the image. */
typedef struct {
  const char *title;          /* the slide's name */
  const char *channel;        /* the colour bar's name; NULL: no colour bar */
  const char *units;          /* "probability", ...; may be NULL */
  const EosinColormap *cm;
  double vmin, vmax, floor;   /* floor NaN: off (values below it are not drawn) */
  double um_per_px;           /* µm per image pixel; <= 0: no scale bar */
  double scale_x, scale_y;    /* level-0 px per image pixel, for the outlines */
  const GPtrArray *outlines;  /* EosinOutline *; may be NULL */
} EosinDecor;

/* Where decor.c puts things in a w x h image (the band is below it): for
 * the tests' pixel checks. */
typedef struct {
  int band_y, height;                /* the band's top; the whole image's height */
  int bar_x, bar_y, bar_w, bar_h;    /* the colour bar */
  int scale_x0, scale_x1, scale_y;   /* the scale bar's ends and row */
  double scale_um;                   /* its length in µm */
} EosinDecorLayout;
void _eosin_decor_layout(int w, int h, double um_per_px, EosinDecorLayout *out);

/* @markup (pango markup) at (@x, @y) in DejaVu Sans @size, in the current
 * colour; @right: @x is its right end. */
void _eosin_cairo_text(cairo_t *cr, const char *markup, double x, double y, int size,
                       bool right);
/* @text appended to @s escaped for HTML (NULL: nothing). */
void _eosin_html_append(GString *s, const char *text);
/* @s as a PNG at @path, durably (a temporary name, fsync, rename). */
bool _eosin_cairo_write_png(cairo_surface_t *s, const char *path, GError **err);
/* @rgb (w x h, 3 bytes a pixel) with the outlines drawn over it and the
 * legend band below, as a PNG at @path (durably). */
bool _eosin_decor_png(const uint8_t *rgb, int w, int h, const EosinDecor *d, const char *path,
                      GError **err);

/* The outer rings of @set's lesions, numbered by rank (EosinOutline *,
 * caller frees). */
GPtrArray *_eosin_lesion_outlines(const EosinLesionSet *set);

/* The units of @channel of a run with @cfg: "probability" for a
 * classifier's softmax or sigmoid output on 0..1, else NULL. */
const char *_eosin_channel_units(const EosinConfig *cfg, double vmin, double vmax);

/* @dir/report.html from @dir/report.json (and the images beside it). */
bool _eosin_report_html(const char *dir, GError **err);
/* The score a slide is known by (*@value, NaN when none; *@label says what
 * it is) and its category (*@category; NULL when none), from report.json's
 * "scores". Borrowed strings. */
void _eosin_report_headline(JsonObject *scores, double *value, const char **label,
                            const char **category);
/* OUTDIR/index.html from the batch's rows so far (@n of @total slides;
 * @lesions: sorted by the slide probability, highest first). */
bool _eosin_report_index(const char *outdir, const char *batch_id, const EosinBatchRow *rows,
                         guint n, guint total, bool lesions, GError **err);
