/*
 * cells-geojson.c — the cells of an IHC run as files a lab opens:
 * cells.geojson, QuPath cell objects (File > Import objects: the cell
 * outline as geometry, the nucleus as nucleusGeometry, the class and
 * QuPath-named measurements, in QuPath's coordinates) plus the Ki-67 hot
 * spot as an annotation, and cells.csv, one row per cell (level-0). Both are streamed to a temporary name and
 * renamed when complete, so a whole slide's million cells need no buffer
 * of the file's size and no half-written file is ever left in place.
 */
#include "tasks/ihc/ihc-private.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>

/* the level-0 ring @v of @n vertices, closed, less QuPath's origin @o */
static void ring(FILE *f, const float *v, int n, const double o[2]) {
  fputs("[[", f);
  for (int i = 0; i <= n; i++)
    fprintf(f, "%s[%.1f,%.1f]", i ? "," : "", v[2 * (i % n)] - o[0], v[2 * (i % n) + 1] - o[1]);
  fputs("]]", f);
}

/* One measurement, left out when it is not finite: QuPath reads the
 * measurements into a Map<String, Double> and a JSON null fails the
 * import (MeasurementList.putAll unboxes it); JSON has no NaN. @first: no
 * comma before it yet, cleared once one is written. */
static void num(FILE *f, const char *k, double v, bool *first) {
  if (!isfinite(v))
    return;
  fprintf(f, "%s\"%s\":%.5g", *first ? "" : ",", k, v);
  *first = false;
}

/* QuPath's colours for its standard intensity classes */
static const int COLOURS[4][3] = {{112, 112, 225}, {255, 215, 0}, {224, 142, 0}, {200, 50, 50}};

bool _eosin_cells_write(const char *dir, const EosinSlideInfo *info, const EosinCell *cells,
                        size_t n, const float *vertices, const char *const class_names[4],
                        const char *compartment, const EosinHotspot *hotspot, GError **err) {
  int64_t ox, oy;
  _eosin_qupath_origin(info, &ox, &oy);
  const double o[2] = {(double) ox, (double) oy};
  g_autofree char *gpath = g_build_filename(dir, "cells.geojson", NULL);
  g_autofree char *cpath = g_build_filename(dir, "cells.csv", NULL);
  EosinOutFile *g = _eosin_out_open(gpath, err);
  if (!g)
    return false;
  FILE *f = _eosin_out_stream(g);
  fputs("{\"type\":\"FeatureCollection\",\"features\":[\n", f);
  bool first_feature = true;
  if (hotspot && hotspot->found) {
    double x0 = hotspot->x - o[0], y0 = hotspot->y - o[1];
    double x1 = x0 + hotspot->w, y1 = y0 + hotspot->h;
    fprintf(f,
            "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
            "[[[%.1f,%.1f],[%.1f,%.1f],[%.1f,%.1f],[%.1f,%.1f],[%.1f,%.1f]]]},"
            "\"properties\":{\"objectType\":\"annotation\",\"name\":\"Ki-67 hot spot\","
            "\"classification\":{\"name\":\"Hotspot\",\"color\":[255,0,255]},"
            "\"measurements\":{\"Ki-67 index %%\":%.4g,\"Num cells\":%" G_GINT64_FORMAT
            ",\"Num positive\":%" G_GINT64_FORMAT "}}}",
            x0, y0, x1, y0, x1, y1, x0, y1, x0, y0, hotspot->index, hotspot->cells,
            hotspot->positive);
    first_feature = false;
  }
  for (size_t i = 0; i < n; i++) {
    const EosinCell *q = &cells[i];
    const float *nv = vertices + 2 * (size_t) q->vertex, *cv = nv + 2 * q->n_nucleus;
    if (q->n_nucleus < 3)
      continue;
    fputs(first_feature ? "" : ",\n", f);
    first_feature = false;
    fputs("{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":", f);
    if (q->n_cell >= 3)
      ring(f, cv, q->n_cell, o);
    else
      ring(f, nv, q->n_nucleus, o);
    fputs("},\"nucleusGeometry\":{\"type\":\"Polygon\",\"coordinates\":", f);
    ring(f, nv, q->n_nucleus, o);
    const int *col = COLOURS[q->intensity];
    fprintf(f,
            "},\"properties\":{\"objectType\":\"cell\",\"classification\":{\"name\":\"%s\","
            "\"color\":[%d,%d,%d]},\"measurements\":{",
            class_names[q->intensity], col[0], col[1], col[2]);
    bool first = true;
    num(f, "Nucleus: Area µm^2", q->nucleus_area_um2, &first);
    num(f, "Cell: Area µm^2", q->cell_area_um2, &first);
    num(f, "Nucleus: Hematoxylin OD mean", q->hem[EOSIN_COMP_NUCLEUS], &first);
    num(f, "Nucleus: DAB OD mean", q->dab[EOSIN_COMP_NUCLEUS], &first);
    num(f, "Nucleus: DAB OD max", q->nucleus_dab_max, &first);
    num(f, "Cytoplasm: DAB OD mean", q->dab[EOSIN_COMP_CYTOPLASM], &first);
    num(f, "Membrane: DAB OD mean", q->dab[EOSIN_COMP_MEMBRANE], &first);
    num(f, "Cell: DAB OD mean", q->dab[EOSIN_COMP_CELL], &first);
    num(f, "Membrane: stained fraction", q->membrane_complete, &first);
    fputs("}}}", f);
  }
  fputs("\n]}\n", f);
  if (!_eosin_out_close(g, true, err))
    return false;

  EosinOutFile *c = _eosin_out_open(cpath, err);
  if (!c)
    return false;
  f = _eosin_out_stream(c);
  fprintf(f, "x,y,class,scored_on,nucleus_area_um2,cell_area_um2,nucleus_hematoxylin_od,"
             "nucleus_dab_od,nucleus_dab_max,cytoplasm_dab_od,membrane_dab_od,cell_dab_od,"
             "membrane_stained_fraction\n");
  for (size_t i = 0; i < n; i++) {
    const EosinCell *q = &cells[i];
    fprintf(f, "%.1f,%.1f,%s,%s,%.3f,%.3f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.3f\n", q->x, q->y,
            class_names[q->intensity], compartment, q->nucleus_area_um2, q->cell_area_um2,
            q->hem[EOSIN_COMP_NUCLEUS], q->dab[EOSIN_COMP_NUCLEUS], q->nucleus_dab_max,
            q->dab[EOSIN_COMP_CYTOPLASM], q->dab[EOSIN_COMP_MEMBRANE], q->dab[EOSIN_COMP_CELL],
            q->membrane_complete);
  }
  return _eosin_out_close(c, true, err);
}
