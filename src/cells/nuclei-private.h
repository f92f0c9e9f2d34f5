/*
 * nuclei-private.h — nucleus detection (nuclei.c), shared by the analyzers
 * that count cells: ihc and cytology.
 */
#pragma once

#include "eosin-core.h"

typedef struct {
  double mpp;                  /* µm per pixel of the image given */
  bool detect_od_sum;          /* detect on the OD sum (r+g+b) instead of haematoxylin */
  double od_sum_weight[3];     /* OD sum = sum_k weight_k stain_k: each stain vector's r+g+b */
  double background_radius_um; /* > 0: subtract an opening of this radius */
  double max_background;       /* nuclei on a background above this are dropped */
  double median_radius_um;     /* > 0: median filter first */
  double sigma_um;             /* Gaussian smoothing */
  double threshold;            /* on the smoothed detection image */
  double min_area_um2, max_area_um2;
  bool split_by_shape;         /* split touching nuclei on the distance transform */
  double cell_expansion_um;    /* cytoplasm: nuclei grown by this, never into a neighbour */
} EosinNucleiParams;

/* Nuclei and cells of one image: label images (0 = none, 1..n), the cell
 * label of nucleus i is i too. */
typedef struct {
  int width, height;
  int n;
  int *nucleus;  /* width*height */
  int *cell;     /* width*height: nucleus grown by cell_expansion_um */
} EosinNucleiLabels;

/* Finds nuclei on @stains (width*height*3 floats per pixel: haematoxylin,
 * DAB, third stain, optical density units) as QuPath's watershed cell
 * detection does: optional median filter and background subtraction, a
 * Gaussian of sigma_um, threshold, split at the watershed lines of the
 * smoothed image (and by shape), holes filled, area filters; then cells as
 * nuclei grown by cell_expansion_um without overlap. Fills @out (cleared
 * with _eosin_nuclei_labels_clear). */
bool _eosin_nuclei_detect(const EosinNucleiParams *p, const float *stains, int width,
                          int height, EosinNucleiLabels *out, GError **err);
void _eosin_nuclei_labels_clear(EosinNucleiLabels *l);
/* Labels the 4- or 8-connected components of @bin (W x H) 1..n in @labels;
 * returns n. */
int _eosin_label_components(const uint8_t *bin, int W, int H, bool conn8, int *labels);

