/*
 * eosin-cells.h — the face of cells/: the cell and stain maths the tasks,
 * the quality gate, the lesion writer and the evaluation use. Nucleus and
 * cell detection on a tile of stain optical densities (nuclei.c), the one
 * connected-component labeller (label.c), hole filling (reconstruct.c), the
 * one Euclidean distance transform (distance.c), outlines of labelled
 * pixels (outline.c), Ruifrok–Johnston colour deconvolution and stain
 * matrices (stain.c) and stain vectors estimated from a slide (Macenko,
 * stain-estimate.c).
 *
 * Everything here works on plain arrays: nothing depends on the slide
 * readers, the config or the pipeline, so cells/ can be tested (and
 * reused) on generated images alone. What only cells/ files share is in
 * cells/cells-private.h.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

/* ---------------------------------------------------------------- nuclei */

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
 * nuclei grown by cell_expansion_um without overlap. Fills @out, whose
 * arrays the caller frees with _eosin_nuclei_labels_clear (also after a
 * failure: they are then NULL). Fails (EOSIN_ERROR_FAILED) on an image
 * under 3 x 3 or a µm/px that is not positive. */
bool _eosin_nuclei_detect(const EosinNucleiParams *p, const float *stains, int width,
                          int height, EosinNucleiLabels *out, GError **err);
void _eosin_nuclei_labels_clear(EosinNucleiLabels *l);

/* ---------------------------------------------------------------- labels */

/* Labels the 4- or 8-connected components of the pixels set in @bin
 * (W x H, row-major) 1..n into @labels (the caller's W*H ints; 0 where
 * @bin is 0), numbered in the row-major order of each component's first
 * pixel; returns n. The one labeller of Eosin: nuclei, tissue regions,
 * heatmap lesion candidates and CAMELYON16 truth lesions. */
int _eosin_label_components(const uint8_t *bin, int W, int H, bool conn8, int *labels);

/* Fills the holes of @bin (W x H, 0/1, in place): background pixels not
 * connected through background to the image border become 1. The
 * background's connectivity is @conn8 (8) or 4 (scipy's binary_fill_holes,
 * as CAMELYON16's evaluation fills lesions). */
void _eosin_fill_holes(uint8_t *bin, int W, int H, bool conn8);

/* ---------------------------------------------------------------- distance */

/* The exact squared Euclidean distance (Felzenszwalb & Huttenlocher 2012)
 * of every pixel of a W x H grid to the nearest pixel where @is_source is
 * set, into @out (the caller's W*H doubles): whole numbers, about 1e20
 * everywhere when no pixel is a source. */
void _eosin_edt_sq(const uint8_t *is_source, int W, int H, double *out);
/* The same distances, not squared, as floats (the square root of the
 * double above, rounded once) into the caller's W*H @out. */
void _eosin_edt(const uint8_t *is_source, int W, int H, float *out);

/* ---------------------------------------------------------------- outlines */

/* Chains the boundary edges of the pixels (cells) labelled @id in @label
 * (W x H, row-major), looking only inside the box x0..x1, y0..y1
 * (inclusive), into closed rings of vertex coordinates (pixel corners):
 * interior on the right, so outer rings run clockwise on screen and holes
 * the other way; collinear vertices dropped. Returns a GPtrArray of
 * GArray(int x, y), owned by the caller. (outline.c) */
GPtrArray *_eosin_trace_rings(const int *label, int W, int H, int id, int x0, int y0, int x1,
                              int y1);
/* The largest outer ring of label @id (holes and smaller pieces left out);
 * an empty array when the label is absent. Caller unrefs. */
GArray *_eosin_trace_outer(const int *label, int W, int H, int id, int x0, int y0, int x1,
                           int y1);
/* Twice the signed shoelace area of a ring (positive: clockwise on screen). */
double _eosin_ring_area2(const GArray *ring);

/* ---------------------------------------------------------------- stains */

/* Ruifrok–Johnston colour deconvolution: optical density -log10(I/255),
 * clamped at I >= 1e-6*255 like scikit-image, times the inverse of the
 * stain matrix (rows = stain RGB vectors), clamped at 0. Writes 3 values
 * per pixel into the caller's @out. Equals 6 x scikit-image's
 * separate_stains(), whose OD is divided by -log10(1e-6). */
void _eosin_stain_deconvolve(const uint8_t *rgb, size_t n_pixels,
                             const double stain_from_rgb[3][3], float *out);
/* Inverts a stain matrix (rows = stain RGB vectors) into @stain_from_rgb;
 * an EOSIN_ERROR_CONFIG error when the vectors are linearly dependent. */
bool _eosin_stain_matrix_invert(const double rgb_from_stain[3][3],
                                double stain_from_rgb[3][3], GError **err);
/* Deconvolution of @n RGB pixels with a per-channel optical density table
 * @od (so the blank can differ from 255 per channel) and @stain_from (OD
 * row vector -> stains), not clamped: 3 floats per pixel into @out. */
void _eosin_stain_deconvolve_lut(const uint8_t *rgb, size_t n, const float od[3][256],
                                 const double stain_from[3][3], float *out);
/* Parses @text, "r,g,b; r,g,b; r,g,b", into three stain vectors (rows) of
 * non-negative finite numbers. Otherwise an EOSIN_ERROR_CONFIG error
 * "'@text': expected ...", which a caller reading a config prefixes with
 * where the value came from (file, group and key). */
bool _eosin_stain_parse_vectors(const char *text, double m[3][3], GError **err);
/* Row 2 of @m becomes the cross product of rows 0 and 1, not normalised
 * (scikit-image's rgb_from_hdx). */
void _eosin_stain_cross(double m[3][3]);
/* Scales the three rows of @m to unit length (a zero row stays zero). */
void _eosin_stain_normalise(double m[3][3]);
/* Completes two stain vectors with a third, their cross product (QuPath's
 * residual), and normalises all three rows. */
void _eosin_stain_complete(double m[3][3]);
/* QuPath's optical density of an 8-bit value: max(0, -log10(max(v, 1) / 255)). */
void _eosin_stain_od_table(double od[256]);

/* Estimates the haematoxylin and DAB vectors from @n RGB pixels
 * (Macenko et al. 2009): optical densities above @min_od in every channel
 * are projected on the plane of their two main directions, and the
 * @percentile-th and (100 - @percentile)-th angles give the two stains; the
 * one with the larger blue share is DAB. Writes rows 0 (haematoxylin) and 1
 * (DAB) of @m, completed by _eosin_stain_complete. Fails (naming why) when
 * fewer than 1000 pixels qualify or the two directions coincide.
 * (stain-estimate.c) */
bool _eosin_stain_estimate(const uint8_t *rgb, size_t n, double min_od, double percentile,
                           double m[3][3], GError **err);

G_END_DECLS
